//! Every setting of difyctl, one row each: its field and parser, its difyctl.toml key, its
//! `DIFYCTL_*` variable, its flag and the commands that have it, the variable of Dify's
//! `.env` it falls back to, its default, and (the doc comment) what it does. Adding a setting
//! is a row here plus the code that reads the field. Precedence, for every row: flag >
//! variable > difyctl.toml > `.env` > default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ca::ChallengeKind;
use super::parse;
use super::row::{Kind, Setting, BACKUP, DOCTOR, EXPORT, GLOBAL, PROXY, RENEW, UP};
use super::LogFormat;
use crate::cidr::Cidr;
use crate::dify::dotenv;

crate::section! {
    /// What every command shares: the names served, the ACME contact, where state lives.
    pub struct General {
        /// Domain to serve and get a certificate for (repeatable; from the ACME CA unless
        /// `proxy` is given --cert/--key)
        domains: Vec<String> = parse::domains {
            key: "domains", var: "DIFYCTL_DOMAIN",
            flag: "domain" on UP | PROXY | EXPORT | DOCTOR,
            dotenv: dotenv::DOMAIN, kind: Kind::List, value: "D", default: "",
        }
        /// Contact e-mail for the ACME account
        email: Option<String> = parse::text {
            key: "email", var: "DIFYCTL_EMAIL", flag: "email" on UP | PROXY | RENEW | EXPORT,
            dotenv: dotenv::EMAIL, value: "E", default: "",
        }
        /// Where difyctl keeps certificates, keys and run state (default: /var/lib/difyctl
        /// as root, ~/.local/state/difyctl otherwise)
        state_dir: PathBuf = parse::state_dir {
            key: "state_dir", var: "DIFYCTL_STATE_DIR", flag: "state-dir" on GLOBAL,
            value: "DIR", default: "",
        }
        /// Where Dify's release archives are fetched (`{url}/{V}.tar.gz`): a mirror
        releases_url: String = parse::https_url {
            key: "releases.url", var: "DIFYCTL_RELEASES_URL", value: "URL",
            default: crate::dify::version::RELEASE_ARCHIVES,
        }
    }
    derived {}
}

crate::section! {
    /// The proxy's part of the configuration, parsed.
    pub struct ProxyConfig {
        /// Plain-HTTP listen address: redirects to HTTPS and answers HTTP-01 challenges
        http: SocketAddr = parse::listen {
            key: "proxy.http", var: "DIFYCTL_HTTP", flag: "http" on UP | PROXY | RENEW,
            dotenv: dotenv::HTTP_PORT, value: "ADDR", default: "0.0.0.0:80",
        }
        /// HTTPS listen address (and TLS-ALPN-01 challenges)
        https: SocketAddr = parse::listen {
            key: "proxy.https", var: "DIFYCTL_HTTPS", flag: "https" on UP | PROXY | RENEW,
            dotenv: dotenv::HTTPS_PORT, value: "ADDR", default: "0.0.0.0:443",
        }
        /// Largest request body accepted, like nginx's client_max_body_size (0: no limit);
        /// larger gets 413
        max_body: u64 = parse::body_size {
            key: "proxy.max_body", var: "DIFYCTL_MAX_BODY", flag: "max-body" on PROXY,
            dotenv: dotenv::MAX_BODY, value: "SIZE", default: "100M",
        }
        /// Longest wait for an upstream's answer, and longest silence in a stream
        read_timeout: Duration = parse::positive_duration {
            key: "proxy.read_timeout", var: "DIFYCTL_READ_TIMEOUT",
            flag: "read-timeout" on PROXY, dotenv: dotenv::READ_TIMEOUT,
            value: "DURATION", default: "3600s",
        }
        /// Time a client has to send its request headers (and finish its TLS handshake);
        /// also how long a new connection may stay silent before its first request
        header_timeout: Duration = parse::positive_duration {
            key: "proxy.header_timeout", var: "DIFYCTL_HEADER_TIMEOUT",
            value: "DURATION", default: "60s",
        }
        /// Largest request line plus header section (HTTP/2: the decoded header list);
        /// larger gets 431 on both protocols
        max_header_size: usize = parse::header_size {
            key: "proxy.max_header_size", var: "DIFYCTL_MAX_HEADER_SIZE",
            value: "SIZE", default: "64k",
        }
        /// How long a connection with no request in flight stays open (nginx's
        /// keepalive_timeout)
        idle_timeout: Duration = parse::positive_duration {
            key: "proxy.idle_timeout", var: "DIFYCTL_IDLE_TIMEOUT",
            dotenv: dotenv::KEEPALIVE_TIMEOUT, value: "DURATION", default: "75s",
        }
        /// Connections held at once, in all (0: no limit)
        max_connections: usize = parse::count {
            key: "proxy.max_connections", var: "DIFYCTL_MAX_CONNECTIONS",
            value: "N", default: "16384",
        }
        /// Connections held at once from one client address (IPv6: one /64; 0: no limit)
        max_connections_per_client: usize = parse::count {
            key: "proxy.max_connections_per_client", var: "DIFYCTL_MAX_CONNECTIONS_PER_CLIENT",
            value: "N", default: "256",
        }
        /// How long a connection to an upstream may take to open
        connect_timeout: Duration = parse::positive_duration {
            key: "proxy.connect_timeout", var: "DIFYCTL_CONNECT_TIMEOUT",
            value: "DURATION", default: "10s",
        }
        /// How long a request waits for an upstream that refuses connections (restarting,
        /// being recreated) before it gets a 502 (0: at once, like nginx)
        upstream_wait: Duration = parse::duration {
            key: "proxy.upstream_wait", var: "DIFYCTL_UPSTREAM_WAIT",
            value: "DURATION", default: "30s",
        }
        /// On SIGTERM/SIGINT, how long in-flight requests may take to finish
        shutdown_grace: Duration = parse::duration {
            key: "proxy.shutdown_grace", var: "DIFYCTL_SHUTDOWN_GRACE",
            flag: "shutdown-grace" on PROXY, value: "DURATION", default: "30s",
        }
        /// Send Strict-Transport-Security (1 year) on HTTPS
        hsts: bool = parse::boolean {
            key: "proxy.hsts", var: "DIFYCTL_NO_HSTS", flag: "no-hsts" on PROXY,
            kind: Kind::Switch { sets: false }, value: "BOOL", default: "true",
        }
        /// Peer address or CIDR whose X-Forwarded-* headers are trusted (repeatable), e.g. a
        /// load balancer
        trusted_proxies: Vec<Cidr> = parse::cidrs {
            key: "proxy.trusted_proxies", var: "DIFYCTL_TRUSTED_PROXY",
            flag: "trusted-proxy" on PROXY, kind: Kind::List, value: "CIDR", default: "",
        }
        /// Worker threads, each with its own listener and upstream pool (default: one per
        /// core)
        workers: usize = parse::workers {
            key: "proxy.workers", var: "DIFYCTL_WORKERS", flag: "workers" on PROXY,
            value: "N", default: "",
        }
        /// Certificate chain (PEM) to serve instead of managed ones; reloaded when the file
        /// changes or on SIGHUP
        cert: Option<PathBuf> = parse::path {
            key: "proxy.cert", var: "DIFYCTL_CERT", flag: "cert" on PROXY,
            value: "PEM", default: "",
        }
        /// Private key (PEM) of --cert
        key: Option<PathBuf> = parse::path {
            key: "proxy.key", var: "DIFYCTL_KEY", flag: "key" on PROXY,
            value: "PEM", default: "",
        }
    }
    derived {
        /// Whether `upstream_wait` was set (`proxy` alone waits only then).
        upstream_wait_set: bool = false,
        /// The access log follows the rest of the log (`--log-format`).
        access_log: LogFormat = LogFormat::Plain,
        /// The names served (lowercase): the :80 redirect only ever points at one of them.
        domains: Vec<String> = Vec::new(),
    }
}

crate::section! {
    /// Where certificates come from: the ACME CA, its challenge and the renewal rhythm.
    pub struct AcmeSettings {
        /// ACME directory: letsencrypt, letsencrypt-staging or a URL
        directory: String = parse::acme_directory {
            key: "acme.directory", var: "DIFYCTL_ACME_DIRECTORY",
            flag: "acme-directory" on UP | PROXY | RENEW | EXPORT,
            value: "URL", default: "letsencrypt",
        }
        /// Extra PEM root to trust for the ACME directory's TLS (a private CA)
        ca_root: Option<PathBuf> = parse::path {
            key: "acme.ca_root", var: "DIFYCTL_ACME_CA_ROOT",
            flag: "acme-ca-root" on UP | PROXY | RENEW, value: "PEM", default: "",
        }
        /// Challenge type: http-01 or tls-alpn-01 (the other is tried when one fails)
        challenge: ChallengeKind = parse::challenge {
            key: "acme.challenge", var: "DIFYCTL_CHALLENGE",
            flag: "challenge" on UP | PROXY | RENEW, value: "TYPE", default: "http-01",
        }
        /// ACME profile to ask for when the directory offers it (classic, tlsserver,
        /// shortlived)
        profile: Option<String> = parse::text {
            key: "acme.profile", var: "DIFYCTL_ACME_PROFILE", value: "NAME", default: "",
        }
        /// Command run after every certificate attempt, with DIFYCTL_CERT_* variables
        hook: Option<String> = parse::text {
            key: "acme.hook", var: "DIFYCTL_ACME_HOOK", value: "CMD", default: "",
        }
        /// How often the certificates are looked at (jittered by up to 10%)
        check_interval: Duration = parse::positive_duration {
            key: "acme.check_interval", var: "DIFYCTL_ACME_CHECK_INTERVAL",
            value: "DURATION", default: "10m",
        }
        /// First retry delay after a failure; doubles up to 6 hours
        retry_initial: Duration = parse::positive_duration {
            key: "acme.retry_initial", var: "DIFYCTL_ACME_RETRY_INITIAL",
            value: "DURATION", default: "60s",
        }
    }
    derived {}
}

crate::section! {
    /// Backups: where archives go, how many are kept, when `up` takes them, what runs after.
    pub struct BackupConfig {
        /// Folder for the archives (default: <state dir>/backups)
        dir: PathBuf = parse::backup_dir {
            key: "backup.dir", var: "DIFYCTL_BACKUP_DIR", flag: "to" on BACKUP,
            value: "DIR", default: "",
        }
        /// After a successful backup, keep only the N newest archives of this project
        keep: Option<usize> = parse::keep {
            key: "backup.keep", var: "DIFYCTL_BACKUP_KEEP", flag: "keep" on BACKUP,
            value: "N", default: "",
        }
        /// When `up` takes backups itself: five cron fields or @daily, in UTC
        schedule: Option<crate::cron::Schedule> = parse::schedule {
            key: "backup.schedule", var: "DIFYCTL_BACKUP_SCHEDULE", value: "CRON", default: "",
        }
        /// Command run after every backup, with DIFYCTL_BACKUP_* variables
        hook: Option<String> = parse::text {
            key: "backup.hook", var: "DIFYCTL_BACKUP_HOOK", value: "CMD", default: "",
        }
    }
    derived {}
}

crate::section! {
    /// Where `/metrics`, `/healthz`, `/readyz` and `/status` are served.
    pub struct AdminConfig {
        /// Admin listener for /metrics, /healthz, /readyz and /status, or `off`
        listen: Option<SocketAddr> = parse::listen_or_off {
            key: "admin.listen", var: "DIFYCTL_ADMIN", flag: "admin" on UP | PROXY,
            value: "ADDR", default: "127.0.0.1:2019",
        }
    }
    derived {
        /// The address was asked for (not the default): failing to bind it fails the
        /// start; the default taken by something else only costs a warning.
        explicit: bool = false,
    }
}

/// Every row, section by section.
pub fn all_rows() -> impl Iterator<Item = &'static Setting> {
    [
        General::ROWS,
        ProxyConfig::ROWS,
        AcmeSettings::ROWS,
        BackupConfig::ROWS,
        AdminConfig::ROWS,
    ]
    .into_iter()
    .flatten()
}

/// The row of a difyctl.toml key.
pub fn row_of(key: &str) -> Option<&'static Setting> {
    all_rows().find(|r| r.key == key)
}

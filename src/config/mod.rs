//! Configuration, merged once: command-line flags (and their `DIFYCTL_*` variables) over
//! `difyctl.toml` over the `NGINX_*`/`CERTBOT_*` values a Dify user already has in `.env`, over
//! defaults. Each component then gets its own typed part; nothing re-reads settings later.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod acme;
mod admin;
mod backup;
mod file;

pub use acme::{directory_url, AcmeConfig, ChallengeKind, LETSENCRYPT, LETSENCRYPT_STAGING};
pub use admin::{AdminConfig, DEFAULT_ADMIN};
pub use backup::BackupConfig;
pub use file::{AcmeFile, AdminFile, BackupFile, FileConfig, ProxyFile};

use acme::acme_config;

use crate::cidr::Cidr;
use crate::envfile::{EnvFile, EnvFileError};
use crate::units::{parse_duration, parse_size};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    #[error("{0}")]
    Missing(String),
}

/// Flags of the command line (already merged with their `DIFYCTL_*` variables by clap).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    /// `--env-file` (repeatable; none: `./.env`).
    pub env_file: Vec<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub domains: Vec<String>,
    pub http: Option<String>,
    pub https: Option<String>,
    pub max_body: Option<String>,
    pub read_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    /// `--admin` (`off` turns the admin listener off).
    pub admin: Option<String>,
    pub no_hsts: bool,
    pub trusted_proxies: Vec<String>,
    pub workers: Option<usize>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub log_format: LogFormat,
    pub email: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_ca_root: Option<PathBuf>,
    pub challenge: Option<String>,
    /// `backup --to`.
    pub backup_dir: Option<PathBuf>,
    /// `backup --keep`.
    pub backup_keep: Option<usize>,
    /// `DIFYCTL_RELEASES_URL` (a variable only: no flag).
    pub releases_url: Option<String>,
    /// Flags (long name, variable) whose value came from their `DIFYCTL_*` variable, so an
    /// error names the variable the user set rather than a flag they never typed.
    pub from_env: Vec<(String, String)>,
}

impl Flags {
    /// `--name`, or its variable when the value came from the environment.
    pub fn origin(&self, name: &str) -> String {
        match self.from_env.iter().find(|(f, _)| f == name) {
            Some((_, var)) => var.clone(),
            None => format!("--{name}"),
        }
    }
}

/// Log line format (the access log follows the rest of the log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// The proxy's part of the configuration, parsed.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// Largest request body accepted; larger gets 413.
    pub max_body: u64,
    /// Longest wait for an upstream's response headers, and longest silence inside a body.
    pub read_timeout: Duration,
    /// Time a client has to send its request headers (and finish its TLS handshake); also
    /// how long a new connection may stay silent before its first request.
    pub header_timeout: Duration,
    /// Largest request line plus header section (HTTP/2: the decoded header list); larger
    /// gets 431 on both protocols.
    pub max_header_size: usize,
    /// How long a connection with no request in flight stays open (nginx keepalive_timeout).
    pub idle_timeout: Duration,
    /// Connections held at once, in all (0: no limit).
    pub max_connections: usize,
    /// Connections held at once from one client address (IPv6: one /64; 0: no limit).
    pub max_connections_per_client: usize,
    pub connect_timeout: Duration,
    /// How long a request waits for an upstream that refuses connections (restarting,
    /// being recreated) before it gets a 502. Zero: fail at once, like nginx.
    pub upstream_wait: Duration,
    /// Whether `upstream_wait` was configured (`proxy` alone waits only then).
    pub upstream_wait_set: bool,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
    pub hsts: bool,
    /// Peers whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    pub workers: usize,
    pub access_log: LogFormat,
    /// The names served (lowercase): the :80 redirect only ever points at one of them.
    pub domains: Vec<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            http: SocketAddr::from(([0, 0, 0, 0], 80)),
            https: SocketAddr::from(([0, 0, 0, 0], 443)),
            max_body: 100 << 20,
            read_timeout: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            idle_timeout: Duration::from_secs(75),
            max_connections: 16384,
            max_connections_per_client: 256,
            connect_timeout: Duration::from_secs(10),
            upstream_wait: Duration::from_secs(30),
            upstream_wait_set: false,
            shutdown_grace: Duration::from_secs(30),
            hsts: true,
            trusted_proxies: Vec::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            access_log: LogFormat::Plain,
            domains: Vec::new(),
        }
    }
}

/// Certificate files given by the user (`--cert/--key`), served instead of managed ones.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything, merged.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub proxy: ProxyConfig,
    pub cert_files: Option<CertFiles>,
    /// Certificates from an ACME CA: set when there are domains and no `--cert/--key`.
    pub acme: Option<AcmeConfig>,
    /// Why a self-signed certificate is served instead, when it is.
    pub self_signed_reason: Option<String>,
    pub backup: BackupConfig,
    pub admin: AdminConfig,
    /// Where Dify's release archives come from (`DIFYCTL_RELEASES_URL`, `[releases] url`).
    pub releases_url: String,
    /// The difyctl.toml that was read, if any.
    pub config_file: Option<PathBuf>,
}

impl Config {
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let path = flags
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("difyctl.toml"));
        let file = FileConfig::read(&path, flags.config.is_some())?;
        let paths = if flags.env_file.is_empty() {
            vec![PathBuf::from(".env")]
        } else {
            flags.env_file.clone()
        };
        // Several files read as one, later values winning (as compose reads them).
        let mut env: Option<EnvFile> = None;
        for p in &paths {
            if let Some(file) = EnvFile::read_optional(p)? {
                env = Some(match env {
                    Some(mut all) => {
                        all.entries.extend(file.entries);
                        all.path = file.path;
                        all
                    }
                    None => file,
                });
            }
        }
        let mut config = Self::merge(flags, file, env.as_ref())?;
        config.config_file = path
            .is_file()
            .then(|| std::path::absolute(&path).unwrap_or(path));
        Ok(config)
    }

    pub fn merge(
        flags: &Flags,
        file: FileConfig,
        env: Option<&EnvFile>,
    ) -> Result<Config, ConfigError> {
        let config_origin = |key: &str| format!("difyctl.toml (proxy.{key})");
        let dotenv = |key: &str| {
            env.and_then(|e| e.get(key)).map(|e| {
                (
                    e.value.clone(),
                    env.map(|e| e.origin(key)).unwrap_or_default(),
                )
            })
        };
        // The first value present, with where it came from (for error messages).
        let pick = |flag: &Option<String>,
                    flag_name: &str,
                    key: &str,
                    file_value: &Option<String>,
                    env_key: Option<&str>| {
            if let Some(v) = flag {
                return Some((v.clone(), flags.origin(flag_name)));
            }
            if let Some(v) = file_value {
                return Some((v.clone(), config_origin(key)));
            }
            env_key.and_then(dotenv).filter(|(v, _)| !v.is_empty())
        };
        let invalid = |origin: String, message: String| ConfigError::Invalid { origin, message };

        let mut proxy = ProxyConfig {
            access_log: flags.log_format,
            ..ProxyConfig::default()
        };
        let p = &file.proxy;
        let addr = |value: Option<(String, String)>,
                    default: SocketAddr,
                    is_port_var: bool|
         -> Result<SocketAddr, ConfigError> {
            match value {
                None => Ok(default),
                Some((v, origin)) => parse_addr(&v, is_port_var).ok_or_else(|| {
                    invalid(
                        origin,
                        format!(
                            "`{v}` is not a listen address (like 0.0.0.0:443, [::]:443 or a port)"
                        ),
                    )
                }),
            }
        };
        proxy.http = addr(
            pick(&flags.http, "http", "http", &p.http, None),
            proxy.http,
            false,
        )?;
        if flags.http.is_none() && p.http.is_none() {
            proxy.http = addr(
                dotenv("EXPOSE_NGINX_PORT").filter(|(v, _)| !v.is_empty()),
                proxy.http,
                true,
            )?;
        }
        proxy.https = addr(
            pick(&flags.https, "https", "https", &p.https, None),
            proxy.https,
            false,
        )?;
        if flags.https.is_none() && p.https.is_none() {
            proxy.https = addr(
                dotenv("EXPOSE_NGINX_SSL_PORT").filter(|(v, _)| !v.is_empty()),
                proxy.https,
                true,
            )?;
        }
        if let Some((v, origin)) = pick(
            &flags.max_body,
            "max-body",
            "max_body",
            &p.max_body,
            Some("NGINX_CLIENT_MAX_BODY_SIZE"),
        ) {
            proxy.max_body = parse_size(&v).map_err(|e| invalid(origin, e.to_string()))?;
            // nginx: client_max_body_size 0 disables the check.
            if proxy.max_body == 0 {
                proxy.max_body = u64::MAX;
            }
        }
        let duration = |value: Option<(String, String)>, default: Duration| match value {
            None => Ok(default),
            Some((v, origin)) => parse_duration(&v).map_err(|e| invalid(origin, e.to_string())),
        };
        proxy.read_timeout = duration(
            pick(
                &flags.read_timeout,
                "read-timeout",
                "read_timeout",
                &p.read_timeout,
                Some("NGINX_PROXY_READ_TIMEOUT"),
            ),
            proxy.read_timeout,
        )?;
        proxy.header_timeout = duration(
            pick(&None, "", "header_timeout", &p.header_timeout, None),
            proxy.header_timeout,
        )?;
        if let Some((v, origin)) = pick(&None, "", "max_header_size", &p.max_header_size, None) {
            let size = parse_size(&v).map_err(|e| invalid(origin.clone(), e.to_string()))?;
            // Below 1 KiB no browser request fits; above 1 MiB is memory for nothing.
            proxy.max_header_size = usize::try_from(size)
                .ok()
                .filter(|s| (1024..=1 << 20).contains(s))
                .ok_or_else(|| invalid(origin, "must be between 1k and 1m".into()))?;
        }
        proxy.idle_timeout = duration(
            pick(
                &None,
                "",
                "idle_timeout",
                &p.idle_timeout,
                Some("NGINX_KEEPALIVE_TIMEOUT"),
            ),
            proxy.idle_timeout,
        )?;
        if let Some(n) = p.max_connections {
            proxy.max_connections = n;
        }
        if let Some(n) = p.max_connections_per_client {
            proxy.max_connections_per_client = n;
        }
        proxy.connect_timeout = duration(
            pick(&None, "", "connect_timeout", &p.connect_timeout, None),
            proxy.connect_timeout,
        )?;
        proxy.upstream_wait = duration(
            pick(&None, "", "upstream_wait", &p.upstream_wait, None),
            proxy.upstream_wait,
        )?;
        proxy.upstream_wait_set = p.upstream_wait.is_some();
        proxy.shutdown_grace = duration(
            pick(
                &flags.shutdown_grace,
                "shutdown-grace",
                "shutdown_grace",
                &p.shutdown_grace,
                None,
            ),
            proxy.shutdown_grace,
        )?;
        for (name, d) in [
            ("read_timeout", proxy.read_timeout),
            ("header_timeout", proxy.header_timeout),
            ("idle_timeout", proxy.idle_timeout),
            ("connect_timeout", proxy.connect_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(config_origin(name), "must be longer than 0".into()));
            }
        }
        proxy.hsts = !flags.no_hsts && p.hsts.unwrap_or(true);
        let (trusted, origin) = if !flags.trusted_proxies.is_empty() {
            (flags.trusted_proxies.clone(), flags.origin("trusted-proxy"))
        } else {
            (
                p.trusted_proxies.clone().unwrap_or_default(),
                config_origin("trusted_proxies"),
            )
        };
        proxy.trusted_proxies = trusted
            .iter()
            .map(|t| {
                t.parse::<Cidr>()
                    .map_err(|e| invalid(origin.clone(), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if let Some(w) = flags.workers.or(p.workers) {
            if w == 0 {
                return Err(invalid(
                    config_origin("workers"),
                    "must be at least 1".into(),
                ));
            }
            proxy.workers = w;
        }

        let cert_files = match (flags.cert.clone().or(p.cert.clone()), flags.key.clone().or(p.key.clone())) {
            (Some(cert), Some(key)) => Some(CertFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Missing(
                    "a certificate needs both files: give --cert and --key (or proxy.cert and proxy.key)".into(),
                ))
            }
        };

        let (domains, origin) = if !flags.domains.is_empty() {
            (flags.domains.clone(), flags.origin("domain"))
        } else if let Some(d) = file.domains {
            (d, "difyctl.toml (domains)".to_string())
        } else {
            // `your_domain.com` is Dify's .env.example placeholder: not a domain anyone set.
            match dotenv("CERTBOT_DOMAIN").filter(|(v, _)| !v.is_empty() && v != "your_domain.com")
            {
                Some((v, origin)) => (vec![v], origin),
                None => (Vec::new(), String::new()),
            }
        };
        let domains: Vec<String> = domains
            .into_iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        for d in &domains {
            check_domain(d).map_err(|message| invalid(origin.clone(), message))?;
        }
        let email = flags
            .email
            .clone()
            .or(file.email)
            // `your_email@example.com`: Dify's placeholder, which Let's Encrypt refuses.
            .or_else(|| {
                dotenv("CERTBOT_EMAIL")
                    .map(|(v, _)| v)
                    .filter(|v| v != "your_email@example.com")
            })
            .filter(|e| !e.is_empty());
        let state_dir = flags
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(default_state_dir);
        let (acme, self_signed_reason) = acme_config(
            flags,
            &file.acme,
            &domains,
            &email,
            &state_dir,
            cert_files.is_some(),
        )?;
        let backup = backup::backup_config(flags, &file.backup, &state_dir)?;
        let admin = admin::admin_config(flags, &file.admin)?;
        proxy.domains = domains.clone();
        Ok(Config {
            state_dir,
            domains,
            email,
            proxy,
            cert_files,
            acme,
            self_signed_reason,
            backup,
            admin,
            releases_url: releases_url(flags, file.releases.url)?,
            config_file: None,
        })
    }
}

/// `DIFYCTL_RELEASES_URL` over `[releases] url` over Dify's own archives; https only.
fn releases_url(flags: &Flags, file: Option<String>) -> Result<String, ConfigError> {
    let from_env = flags
        .releases_url
        .clone()
        .map(|v| (v, "DIFYCTL_RELEASES_URL".to_string()));
    let Some((url, origin)) =
        from_env.or_else(|| file.map(|u| (u, "difyctl.toml (releases.url)".to_string())))
    else {
        return Ok(crate::dify::version::RELEASE_ARCHIVES.to_string());
    };
    if !url.starts_with("https://") || url.parse::<http::Uri>().is_err() {
        return Err(ConfigError::Invalid {
            origin,
            message: format!("`{url}` is not an https:// URL (release archives are code run as root: plain http is refused)"),
        });
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A name to serve: a DNS name (`dify.example.com`, `*.example.com`, `localhost`) or an IP
/// address. A URL, a port or a space is a mistake a user makes; say which.
pub fn check_domain(d: &str) -> Result<(), String> {
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if d.contains("://") || d.contains('/') {
        return Err(format!(
            "`{d}` is a URL: give the name alone (dify.example.com, not https://dify.example.com/)"
        ));
    }
    if d.contains(':') {
        return Err(format!(
            "`{d}` has a port: give the name alone (the ports are proxy.http and proxy.https)"
        ));
    }
    let name = d.strip_prefix("*.").unwrap_or(d);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.trim_end_matches('.').split('.').all(label_ok) {
        return Err(format!(
            "`{d}` is not a domain name (letters, digits, `-` and dots, like dify.example.com)"
        ));
    }
    Ok(())
}

/// `0.0.0.0:443`, `[::]:443`, `:443` or (for `.env` port variables) a bare port.
fn parse_addr(text: &str, bare_port_ok: bool) -> Option<SocketAddr> {
    let t = text.trim();
    if let Ok(a) = t.parse() {
        return Some(a);
    }
    let port = t
        .strip_prefix(':')
        .or(bare_port_ok.then_some(t))
        .or_else(|| t.parse::<u16>().ok().map(|_| t))?;
    port.parse::<u16>()
        .ok()
        .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
}

/// `/var/lib/difyctl` for root (the systemd service), `~/.local/state/difyctl` otherwise.
fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    match std::env::var_os("HOME") {
        Some(home) if !root => PathBuf::from(home).join(".local/state/difyctl"),
        _ => PathBuf::from("/var/lib/difyctl"),
    }
}

#[cfg(test)]
mod tests;

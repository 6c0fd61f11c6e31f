//! Configuration, merged once: command-line flags (and their `DIFYCTL_*` variables) over
//! `difyctl.toml` over the `NGINX_*`/`CERTBOT_*` values a Dify user already has in `.env`, over
//! defaults. Each component then gets its own typed part; nothing re-reads settings later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cidr::Cidr;
use crate::stack::envfile::{EnvFile, EnvFileError};
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

/// `difyctl.toml` as written; every key optional, unknown keys refused with their name and line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub domains: Option<Vec<String>>,
    pub email: Option<String>,
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub proxy: ProxyFile,
    #[serde(default)]
    pub acme: AcmeFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeFile {
    /// `letsencrypt`, `letsencrypt-staging` or a directory URL.
    pub directory: Option<String>,
    pub ca_root: Option<PathBuf>,
    pub challenge: Option<String>,
    pub profile: Option<String>,
    /// Command run after each certificate attempt.
    pub hook: Option<String>,
    pub check_interval: Option<String>,
    pub retry_initial: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyFile {
    pub http: Option<String>,
    pub https: Option<String>,
    pub max_body: Option<String>,
    pub read_timeout: Option<String>,
    pub header_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub upstream_wait: Option<String>,
    pub shutdown_grace: Option<String>,
    pub hsts: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub workers: Option<usize>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl FileConfig {
    /// Reads `path`; with `required == false` a missing file is the empty config.
    pub fn read(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileConfig::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }
}

/// Flags of the command line (already merged with their `DIFYCTL_*` variables by clap).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub domains: Vec<String>,
    pub http: Option<String>,
    pub https: Option<String>,
    pub max_body: Option<String>,
    pub read_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
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
    /// Time a client has to send its request headers (and finish its TLS handshake).
    pub header_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long a request waits for an upstream that refuses connections (restarting,
    /// being recreated) before it gets a 502. Zero: fail at once, like nginx.
    pub upstream_wait: Duration,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
    pub hsts: bool,
    /// Peers whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    pub workers: usize,
    pub access_log: LogFormat,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            http: SocketAddr::from(([0, 0, 0, 0], 80)),
            https: SocketAddr::from(([0, 0, 0, 0], 443)),
            max_body: 100 << 20,
            read_timeout: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            upstream_wait: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            hsts: true,
            trusted_proxies: Vec::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            access_log: LogFormat::Plain,
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
}

impl Config {
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => FileConfig::read(path, true)?,
            None => FileConfig::read(Path::new("difyctl.toml"), false)?,
        };
        let env_path = flags
            .env_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(".env"));
        let env = EnvFile::read_optional(&env_path)?;
        Self::merge(flags, file, env.as_ref())
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
                return Some((v.clone(), format!("--{flag_name}")));
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
        proxy.connect_timeout = duration(
            pick(&None, "", "connect_timeout", &p.connect_timeout, None),
            proxy.connect_timeout,
        )?;
        proxy.upstream_wait = duration(
            pick(&None, "", "upstream_wait", &p.upstream_wait, None),
            proxy.upstream_wait,
        )?;
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
            ("connect_timeout", proxy.connect_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(config_origin(name), "must be longer than 0".into()));
            }
        }
        proxy.hsts = !flags.no_hsts && p.hsts.unwrap_or(true);
        let (trusted, origin) = if !flags.trusted_proxies.is_empty() {
            (flags.trusted_proxies.clone(), "--trusted-proxy".to_string())
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

        let domains = if !flags.domains.is_empty() {
            flags.domains.clone()
        } else if let Some(d) = file.domains {
            d
        } else {
            dotenv("CERTBOT_DOMAIN")
                .map(|(v, _)| v)
                .filter(|v| !v.is_empty())
                .into_iter()
                .collect()
        };
        let domains: Vec<String> = domains
            .into_iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let email = flags
            .email
            .clone()
            .or(file.email)
            .or_else(|| dotenv("CERTBOT_EMAIL").map(|(v, _)| v))
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
        Ok(Config {
            state_dir,
            domains,
            email,
            proxy,
            cert_files,
            acme,
            self_signed_reason,
        })
    }
}

/// The certificate manager's configuration, or why there is none (self-signed instead).
fn acme_config(
    flags: &Flags,
    file: &AcmeFile,
    domains: &[String],
    email: &Option<String>,
    state_dir: &Path,
    own_cert: bool,
) -> Result<(Option<AcmeConfig>, Option<String>), ConfigError> {
    if own_cert {
        return Ok((None, None));
    }
    if domains.is_empty() {
        return Ok((
            None,
            Some("no domain is configured (set `domains` or --domain)".into()),
        ));
    }
    if let Some(local) = domains.iter().find(|d| {
        d.parse::<std::net::IpAddr>().is_ok() || *d == "localhost" || d.ends_with(".localhost")
    }) {
        return Ok((
            None,
            Some(format!(
                "`{local}` is an IP address or localhost, which public CAs do not certify"
            )),
        ));
    }
    let directory = flags
        .acme_directory
        .clone()
        .or(file.directory.clone())
        .unwrap_or_default();
    let mut cfg = AcmeConfig::new(
        domains.to_vec(),
        directory_url(&directory),
        state_dir.to_path_buf(),
    );
    cfg.email = email.clone();
    cfg.ca_root = flags
        .acme_ca_root
        .clone()
        .or(file.ca_root.clone())
        .filter(|p| !p.as_os_str().is_empty());
    let (challenge, origin) = match (&flags.challenge, &file.challenge) {
        (Some(c), _) => (c.clone(), "--challenge".to_string()),
        (None, Some(c)) => (c.clone(), "difyctl.toml (acme.challenge)".to_string()),
        (None, None) => ("http-01".to_string(), String::new()),
    };
    cfg.challenge = match challenge.as_str() {
        "http-01" => ChallengeKind::Http01,
        "tls-alpn-01" => ChallengeKind::TlsAlpn01,
        other => {
            return Err(ConfigError::Invalid {
                origin,
                message: format!("`{other}` is not a challenge type: use http-01 or tls-alpn-01"),
            })
        }
    };
    cfg.profile = file.profile.clone().filter(|p| !p.is_empty());
    cfg.hook = file.hook.clone().filter(|h| !h.is_empty());
    let duration = |value: &Option<String>, key: &str, default: Duration| match value {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| ConfigError::Invalid {
            origin: format!("difyctl.toml (acme.{key})"),
            message: e.to_string(),
        }),
    };
    cfg.check_interval = duration(&file.check_interval, "check_interval", cfg.check_interval)?;
    cfg.retry_initial = duration(&file.retry_initial, "retry_initial", cfg.retry_initial)?;
    // Dify's certbot container keeps its certificates beside the compose file (and `.env`).
    let compose_dir = flags
        .env_file
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    cfg.certbot_live = Some(compose_dir.join("volumes/certbot/conf/live"));
    Ok((Some(cfg), None))
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

pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Which challenge proves control of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Http01,
    TlsAlpn01,
}

impl ChallengeKind {
    pub fn other(self) -> ChallengeKind {
        match self {
            ChallengeKind::Http01 => ChallengeKind::TlsAlpn01,
            ChallengeKind::TlsAlpn01 => ChallengeKind::Http01,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// The certificate manager's part of the configuration.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// Names on the certificate; the first one names it on disk.
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// Directory URL (`letsencrypt` and `letsencrypt-staging` already resolved).
    pub directory: String,
    /// Extra PEM root to trust for the directory's TLS (a private CA, Pebble).
    pub ca_root: Option<PathBuf>,
    pub challenge: ChallengeKind,
    /// ACME profile to ask for when the directory offers it.
    pub profile: Option<String>,
    /// Where accounts and certificates live.
    pub state_dir: PathBuf,
    /// How often to look at the certificates (jittered by up to 10%).
    pub check_interval: Duration,
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Command run after every attempt (success or failure), with DIFYCTL_CERT_* variables.
    pub hook: Option<String>,
    /// certbot's `live/` folder (Dify's `./volumes/certbot/conf/live`): a certificate there for
    /// our name is imported when it is newer than ours, so a migration starts with no new order.
    pub certbot_live: Option<PathBuf>,
}

impl AcmeConfig {
    /// Defaults for everything but the names and directory.
    pub fn new(domains: Vec<String>, directory: String, state_dir: PathBuf) -> AcmeConfig {
        AcmeConfig {
            domains,
            email: None,
            directory,
            ca_root: None,
            challenge: ChallengeKind::Http01,
            profile: None,
            state_dir,
            check_interval: Duration::from_secs(600),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            hook: None,
            certbot_live: None,
        }
    }

    /// The name this certificate is stored under.
    pub fn cert_name(&self) -> &str {
        self.domains.first().map_or("default", String::as_str)
    }
}

/// `letsencrypt`, `letsencrypt-staging` or a URL.
pub fn directory_url(name: &str) -> String {
    match name.trim() {
        "" | "letsencrypt" => LETSENCRYPT.to_string(),
        "letsencrypt-staging" => LETSENCRYPT_STAGING.to_string(),
        url => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> EnvFile {
        EnvFile::parse(Path::new("/srv/dify/.env"), text).unwrap()
    }

    #[test]
    fn dotenv_values_apply_below_flags_and_file() {
        let e = env("NGINX_CLIENT_MAX_BODY_SIZE=15M\nNGINX_PROXY_READ_TIMEOUT=600s\nEXPOSE_NGINX_PORT=8080\nCERTBOT_DOMAIN=dify.example.com\n");
        let c = Config::merge(&Flags::default(), FileConfig::default(), Some(&e)).unwrap();
        assert_eq!(c.proxy.max_body, 15 << 20);
        assert_eq!(c.proxy.read_timeout, Duration::from_secs(600));
        assert_eq!(c.proxy.http.port(), 8080);
        assert_eq!(c.domains, vec!["dify.example.com"]);

        let flags = Flags {
            max_body: Some("1G".into()),
            ..Flags::default()
        };
        let file: FileConfig = toml::from_str("[proxy]\nread_timeout = \"5m\"\n").unwrap();
        let c = Config::merge(&flags, file, Some(&e)).unwrap();
        assert_eq!(c.proxy.max_body, 1 << 30);
        assert_eq!(c.proxy.read_timeout, Duration::from_secs(300));
    }

    #[test]
    fn errors_name_their_origin() {
        let e = env("A=1\nNGINX_CLIENT_MAX_BODY_SIZE=lots\n");
        let err = Config::merge(&Flags::default(), FileConfig::default(), Some(&e)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/srv/dify/.env:2 (NGINX_CLIENT_MAX_BODY_SIZE): `lots` is not a size: write a number with an optional k, M or G suffix (like 100M)"
        );
        let flags = Flags {
            https: Some("nowhere".into()),
            ..Flags::default()
        };
        let err = Config::merge(&flags, FileConfig::default(), None).unwrap_err();
        assert!(err.to_string().starts_with("--https: `nowhere`"), "{err}");
    }

    #[test]
    fn unknown_toml_key_is_refused_with_its_line() {
        let dir = std::env::temp_dir().join(format!("difyctl-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("difyctl.toml");
        std::fs::write(&path, "domains = []\n[proxy]\nmax_bdy = \"1M\"\n").unwrap();
        let err = FileConfig::read(&path, true).unwrap_err().to_string();
        assert!(err.contains("max_bdy") && err.contains("line 3"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let file: FileConfig =
            toml::from_str(include_str!("../assets/difyctl.example.toml")).unwrap();
        let c = Config::merge(&Flags::default(), file, None).unwrap();
        assert_eq!(c.domains, vec!["dify.example.com"]);
        assert_eq!(c.proxy.max_body, 100 << 20);
        let acme = c.acme.expect("domains give an ACME configuration");
        assert_eq!(acme.directory, LETSENCRYPT);
        assert_eq!(acme.ca_root, None, "an empty ca_root means none");
        assert_eq!(acme.hook, None);
    }

    #[test]
    fn ip_or_localhost_domains_get_self_signed_with_a_reason() {
        for domain in ["203.0.113.7", "localhost", "dify.localhost"] {
            let flags = Flags {
                domains: vec![domain.into()],
                ..Flags::default()
            };
            let c = Config::merge(&flags, FileConfig::default(), None).unwrap();
            assert!(c.acme.is_none(), "{domain}");
            assert!(c.self_signed_reason.unwrap().contains(domain));
        }
        let c = Config::merge(&Flags::default(), FileConfig::default(), None).unwrap();
        assert!(c.self_signed_reason.unwrap().contains("no domain"));
    }

    #[test]
    fn acme_settings_are_checked() {
        let flags = Flags {
            domains: vec!["dify.example.com".into()],
            challenge: Some("dns-01".into()),
            ..Flags::default()
        };
        let err = Config::merge(&flags, FileConfig::default(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--challenge: `dns-01` is not a challenge type: use http-01 or tls-alpn-01"
        );
        let file: FileConfig = toml::from_str("domains = [\"a.example\"]\n[acme]\ndirectory = \"letsencrypt-staging\"\nchallenge = \"tls-alpn-01\"\n").unwrap();
        let acme = Config::merge(&Flags::default(), file, None)
            .unwrap()
            .acme
            .unwrap();
        assert_eq!(acme.directory, LETSENCRYPT_STAGING);
        assert_eq!(acme.challenge, ChallengeKind::TlsAlpn01);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_addr("127.0.0.1:8443", false),
            Some("127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(
            parse_addr(":8443", false),
            Some("0.0.0.0:8443".parse().unwrap())
        );
        assert_eq!(
            parse_addr("8080", true),
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(
            parse_addr("[::]:443", false),
            Some("[::]:443".parse().unwrap())
        );
        assert_eq!(parse_addr("x", false), None);
    }
}

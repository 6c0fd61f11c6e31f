//! The certificate manager's part of the configuration: which CA, which challenge, where the
//! account and certificates live; or why there is none (a self-signed certificate instead).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::AcmeFile;
use super::{ConfigError, Flags};
use crate::units::parse_duration;

/// The certificate manager's configuration, or why there is none (self-signed instead).
pub(super) fn acme_config(
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
        (Some(c), _) => (c.clone(), flags.origin("challenge")),
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
        .first()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    cfg.certbot_live = Some(compose_dir.join("volumes/certbot/conf/live"));
    Ok((Some(cfg), None))
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

//! The certificate manager's part of the configuration: which CA, which challenge, where the
//! account and certificates live; or why there is none (a self-signed certificate instead).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ca::ChallengeKind;
use super::settings::{AcmeSettings, General};
use super::sources::{Flags, Sources};
use super::ConfigError;

/// The certificate manager's configuration, or why there is none (self-signed instead).
pub(super) fn acme_config(
    src: &Sources,
    general: &General,
    own_cert: bool,
    flags: &Flags,
) -> Result<(Option<AcmeConfig>, Option<String>), ConfigError> {
    let settings = AcmeSettings::resolve(src)?;
    if own_cert {
        return Ok((None, None));
    }
    let domains = &general.domains;
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
    // Dify's certbot container keeps its certificates beside the compose file (and `.env`).
    let compose_dir = flags
        .env_file
        .first()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let cfg = AcmeConfig {
        domains: domains.clone(),
        email: general.email.clone(),
        directory: settings.directory,
        ca_root: settings.ca_root,
        challenge: settings.challenge,
        profile: settings.profile,
        state_dir: general.state_dir.clone(),
        check_interval: settings.check_interval,
        retry_initial: settings.retry_initial,
        retry_max: RETRY_MAX,
        hook: settings.hook,
        certbot_live: Some(compose_dir.join("volumes/certbot/conf/live")),
    };
    Ok((Some(cfg), None))
}

/// The longest wait between two attempts after failures.
const RETRY_MAX: Duration = Duration::from_secs(6 * 3600);

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
        let defaults = AcmeSettings::default();
        AcmeConfig {
            domains,
            email: None,
            directory,
            ca_root: None,
            challenge: defaults.challenge,
            profile: None,
            state_dir,
            check_interval: defaults.check_interval,
            retry_initial: defaults.retry_initial,
            retry_max: RETRY_MAX,
            hook: None,
            certbot_live: None,
        }
    }

    /// The name this certificate is stored under.
    pub fn cert_name(&self) -> &str {
        self.domains.first().map_or("default", String::as_str)
    }
}

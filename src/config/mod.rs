//! Configuration, merged once: command-line flags (and their `DIFYCTL_*` variables) over
//! `difyctl.toml` over the `NGINX_*`/`CERTBOT_*` values a Dify user already has in `.env`, over
//! defaults. Every setting is one row of `settings.rs`; each component then gets its own typed
//! part; nothing re-reads settings later.

use std::path::PathBuf;

mod acme;
mod ca;
pub mod file;
mod flags;
mod parse;
pub mod row;
mod section;
pub mod settings;
pub mod sources;

pub use acme::AcmeConfig;
pub use ca::{directory_url, ChallengeKind, LETSENCRYPT, LETSENCRYPT_STAGING};
pub use file::FileConfig;
pub use flags::SettingArgs;
pub use parse::check_domain;
pub use row::{Commands, Setting, Value};
pub use settings::{AcmeSettings, AdminConfig, BackupConfig, General, ProxyConfig};
pub use sources::{Flags, Sources};

use crate::envfile::{EnvFile, EnvFileError};

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

/// Reads a difyctl.toml (`required == false`: a missing one is empty), every key checked
/// against the settings' rows.
pub fn read_toml(path: &std::path::Path, required: bool) -> Result<FileConfig, ConfigError> {
    let rows: Vec<&Setting> = settings::all_rows().collect();
    FileConfig::read(path, required, &rows)
}

/// Log line format (the access log follows the rest of the log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
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
    /// Reads difyctl.toml and the `.env` files the flags name (or the defaults) and merges
    /// them under the flags, with the process environment's `DIFYCTL_*` variables.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let path = flags
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("difyctl.toml"));
        let file = read_toml(&path, flags.config.is_some())?;
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
        let vars = |name: &str| std::env::var(name).ok();
        let sources = Sources {
            flags,
            env: &vars,
            file: &file,
            dotenv: env.as_ref(),
        };
        let mut config = Self::from_sources(&sources, flags)?;
        config.config_file = path
            .is_file()
            .then(|| std::path::absolute(&path).unwrap_or(path));
        Ok(config)
    }

    /// The merge without the process environment (tests).
    pub fn merge(
        flags: &Flags,
        file: FileConfig,
        env: Option<&EnvFile>,
    ) -> Result<Config, ConfigError> {
        let none = |_: &str| None;
        let sources = Sources {
            flags,
            env: &none,
            file: &file,
            dotenv: env,
        };
        Self::from_sources(&sources, flags)
    }

    fn from_sources(src: &Sources, flags: &Flags) -> Result<Config, ConfigError> {
        let general = General::resolve(src)?;
        let mut proxy = ProxyConfig::resolve(src)?;
        proxy.upstream_wait_set = src.is_set(ProxyConfig::row("upstream_wait"));
        proxy.domains = general.domains.clone();
        proxy.access_log = flags.log_format;
        let cert_files = match (proxy.cert.clone(), proxy.key.clone()) {
            (Some(cert), Some(key)) => Some(CertFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Missing(
                    "a certificate needs both files: give --cert and --key (or proxy.cert and proxy.key)".into(),
                ))
            }
        };
        let mut backup = BackupConfig::resolve(src)?;
        if backup.dir.as_os_str().is_empty() {
            backup.dir = general.state_dir.join("backups");
        }
        let mut admin = AdminConfig::resolve(src)?;
        admin.explicit = src.is_set(AdminConfig::row("listen"));
        let (acme, self_signed_reason) =
            acme::acme_config(src, &general, cert_files.is_some(), flags)?;
        Ok(Config {
            state_dir: general.state_dir,
            domains: general.domains,
            email: general.email,
            proxy,
            cert_files,
            acme,
            self_signed_reason,
            backup,
            admin,
            releases_url: general.releases_url,
            config_file: None,
        })
    }
}

#[cfg(test)]
mod tests;

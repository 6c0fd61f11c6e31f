//! `difyctl.toml` as written: every key optional, unknown keys refused (with their line).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

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
    #[serde(default)]
    pub backup: BackupFile,
    #[serde(default)]
    pub admin: AdminFile,
    #[serde(default)]
    pub releases: ReleasesFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasesFile {
    /// Where Dify's tag archives are fetched (`{url}/{V}.tar.gz`): a mirror.
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// `127.0.0.1:2019` (the default) or `off`.
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// Where archives go.
    pub dir: Option<PathBuf>,
    /// Archives of the project kept after a successful backup.
    pub keep: Option<usize>,
    /// Cron expression (UTC) for `up`'s own backups.
    pub schedule: Option<String>,
    /// Command run after each backup.
    pub hook: Option<String>,
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
    pub max_header_size: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
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
        // The parser's own report quotes the offending line: a file given by mistake
        // (`--config /etc/shadow`) must not have its content printed. Line and problem only.
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::Toml {
                path: path.to_path_buf(),
                message: match line {
                    Some(l) => format!("line {l}: {}", e.message().trim_end()),
                    None => e.message().trim_end().to_string(),
                },
            }
        })
    }
}

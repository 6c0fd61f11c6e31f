//! A Dify release as a folder, wherever it comes from: a folder the user gives (`--from`), one
//! difyctl embeds (written out, offline; for installs of difyctl's own stack), or Dify's tag
//! archive fetched and cached (`difyctl::releases`). Shared by `init --version`, `upgrade --to`
//! and the three-way comparison of an upgrade.

use std::path::{Path, PathBuf};

use difyctl::config::Config;
use difyctl::releases::{self, ReleasesError};
use difyctl::upgrade::embedded;

/// A folder removed when dropped (an embedded release written out).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A release folder, and the scratch to remove with it.
pub struct ReleaseDir {
    pub dir: PathBuf,
    _scratch: Option<TempDir>,
}

/// Whether `compose` is the stack `difyctl init` writes (not Dify's own files).
pub fn is_embedded_stack(compose: &Path) -> bool {
    std::fs::read_to_string(compose).is_ok_and(|t| t.starts_with(embedded::MARKER))
}

/// Release `version`: the embedded one when `embedded_ok` and difyctl ships it, else Dify's
/// archive from the configured source (cached in the state dir).
pub async fn get(config: &Config, version: &str, embedded_ok: bool) -> anyhow::Result<ReleaseDir> {
    let version = releases::version(version).map_err(usage)?;
    if embedded_ok {
        if let Some(e) = embedded::find(&version) {
            let dir = config.state_dir.join("upgrades").join(format!(
                "release-{}-{}",
                e.version,
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            e.materialize(&dir)?;
            return Ok(ReleaseDir {
                dir: dir.clone(),
                _scratch: Some(TempDir(dir)),
            });
        }
    }
    if releases::cache::cached(&config.state_dir, &version).is_none() {
        println!(
            "fetching Dify {version} from {}",
            releases::archive_url(&config.releases_url, &version)
        );
    }
    let dir = releases::cache::fetch(&config.state_dir, &config.releases_url, &version)
        .await
        .map_err(usage)?;
    Ok(ReleaseDir {
        dir,
        _scratch: None,
    })
}

/// A version that does not exist or is not one is the user's mistake (exit 2).
fn usage(e: ReleasesError) -> anyhow::Error {
    match e {
        ReleasesError::BadVersion(_) | ReleasesError::NotFound { .. } => {
            super::UsageError(e.to_string()).into()
        }
        other => other.into(),
    }
}

/// The release files `install` was made from (`upgrade::base`), or, when it has no record,
/// those of `current` (embedded or fetched), so an upgrade can tell the user's edits from
/// Dify's own files. `None` when neither can be had (then every differing file is kept).
pub async fn base(
    config: &Config,
    install: &Path,
    compose: &Path,
    current: Option<&str>,
) -> Option<ReleaseDir> {
    if let Some((dir, version)) = difyctl::upgrade::base::read(&config.state_dir, install) {
        if Some(version.as_str()) == current || current.is_none() {
            return Some(ReleaseDir {
                dir,
                _scratch: None,
            });
        }
    }
    let current = current?;
    match get(config, current, is_embedded_stack(compose)).await {
        Ok(d) => Some(d),
        Err(e) => {
            println!(
                "note: the files of Dify {current} cannot be had ({e:#}): files that differ from the new release are kept as they are, with the release's version beside them"
            );
            None
        }
    }
}

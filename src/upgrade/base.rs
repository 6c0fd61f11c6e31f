//! The release files an install was made from, remembered in the state dir, so an upgrade is
//! three-way: a file the user never changed (it equals the remembered one) is replaced by the
//! new release's; a changed one is kept, the release's version written beside it and the
//! difference shown. `init` and every finished upgrade record it; an install without a record
//! (Dify's own folder, adopted) is compared with its release's files fetched or embedded.

use std::path::{Path, PathBuf};

use super::UpgradeError;

/// `<state_dir>/installs/<folder>-<hash of the install's absolute path>/release/`.
pub fn dir(state_dir: &Path, install: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(install).unwrap_or_else(|_| install.to_path_buf());
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        abs.as_os_str().as_encoded_bytes(),
    );
    let hash: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = abs
        .file_name()
        .map(|n| crate::fsutil::safe_name(&n.to_string_lossy()))
        .unwrap_or_default();
    state_dir
        .join("installs")
        .join(format!("{name}-{hash}"))
        .join("release")
}

/// The remembered release of `install`: its folder and version.
pub fn read(state_dir: &Path, install: &Path) -> Option<(PathBuf, String)> {
    let d = dir(state_dir, install);
    let version = std::fs::read_to_string(d.join(".difyctl-version")).ok()?;
    Some((d, version.trim().to_string()))
}

/// Remembers `release` (a release folder, `version`) as what `install` now runs: written to a
/// scratch folder and renamed over the old record, so a record is whole or absent.
pub fn record(
    state_dir: &Path,
    install: &Path,
    release: &Path,
    files: &[PathBuf],
    version: &str,
) -> Result<(), UpgradeError> {
    let target = dir(state_dir, install);
    let parent = target.parent().unwrap_or(state_dir);
    let io = |p: &Path, action: &str| {
        let (path, action) = (p.to_path_buf(), action.to_string());
        move |source| UpgradeError::Io {
            path,
            action,
            source,
        }
    };
    crate::fsutil::create_private_dir(parent).map_err(io(parent, "cannot create it"))?;
    let scratch = parent.join(format!(".release-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    for rel in files {
        let from = release.join(rel);
        let to = scratch.join(rel);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(io(p, "cannot create it"))?;
        }
        std::fs::copy(&from, &to).map_err(io(&from, "cannot copy it"))?;
    }
    crate::fsutil::write_atomic(&scratch.join(".difyctl-version"), version.as_bytes(), 0o600)
        .map_err(io(&scratch, "cannot write the version"))?;
    let old = parent.join(format!(".old-{}", std::process::id()));
    let _ = std::fs::rename(&target, &old);
    std::fs::rename(&scratch, &target).map_err(io(&target, "cannot put the record in place"))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

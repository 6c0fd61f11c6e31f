//! Writing an upgrade's files, with every file it replaces kept first under the rollback
//! folder (and a list of what was written, `applied.json`), so `undo` puts the install back
//! exactly: replaced files restored, added ones removed. Env files are written 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::UpgradeError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub install: PathBuf,
    pub rollback: PathBuf,
    /// Install-relative paths written, and whether each existed before (then its copy is in
    /// `rollback`).
    pub written: Vec<(PathBuf, bool)>,
}

fn mode_for(rel: &Path) -> u32 {
    let name = rel.to_string_lossy();
    if name == ".env" || name.ends_with(".env") {
        0o600
    } else {
        0o644
    }
}

/// Writes the plan into `install` (atomically, file by file), keeping what it replaces.
pub fn apply(install: &Path, plan: &Plan, rollback: &Path) -> Result<Applied, UpgradeError> {
    let io = |path: &Path, action: &str| {
        let (path, action) = (path.to_path_buf(), action.to_string());
        move |source| UpgradeError::Io {
            path,
            action,
            source,
        }
    };
    crate::fsutil::create_private_dir(rollback)
        .map_err(io(rollback, "cannot create the rollback folder"))?;
    let mut applied = Applied {
        install: install.to_path_buf(),
        rollback: rollback.to_path_buf(),
        written: Vec::new(),
    };
    for (rel, bytes) in plan.writes() {
        let target = install.join(rel);
        let existed = target.is_file();
        if existed {
            let copy = rollback.join(rel);
            let old =
                std::fs::read(&target).map_err(io(&target, "cannot read it to keep a copy"))?;
            let mode = std::fs::metadata(&target)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .unwrap_or(0o600);
            crate::fsutil::write_atomic(&copy, &old, mode)
                .map_err(io(&copy, "cannot keep a copy"))?;
        }
        applied.written.push((rel.to_path_buf(), existed));
        record(&applied)?;
        crate::fsutil::write_atomic(&target, bytes, mode_for(rel))
            .map_err(io(&target, "cannot write it"))?;
        if applied.written.len() == 1 {
            crate::journal::failpoint("upgrade:wrote-one");
        }
    }
    Ok(applied)
}

/// What `apply` wrote, from its record in the rollback folder.
pub fn read_applied(rollback: &Path) -> Result<Applied, UpgradeError> {
    let path = rollback.join("applied.json");
    let bytes = std::fs::read(&path).map_err(|source| UpgradeError::Io {
        path: path.clone(),
        action: "cannot read what the upgrade wrote".into(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| UpgradeError::Env {
        path,
        detail: e.to_string(),
    })
}

/// Puts every written file back as it was.
pub fn undo(applied: &Applied) -> Result<(), UpgradeError> {
    for (rel, existed) in applied.written.iter().rev() {
        let target = applied.install.join(rel);
        if *existed {
            let copy = applied.rollback.join(rel);
            let old = std::fs::read(&copy).map_err(|source| UpgradeError::Io {
                path: copy.clone(),
                action: "cannot read the kept copy".into(),
                source,
            })?;
            let mode = std::fs::metadata(&copy)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .unwrap_or(0o600);
            crate::fsutil::write_atomic(&target, &old, mode).map_err(|source| {
                UpgradeError::Io {
                    path: target.clone(),
                    action: "cannot put it back".into(),
                    source,
                }
            })?;
        } else {
            let _ = std::fs::remove_file(&target);
        }
    }
    Ok(())
}

fn record(applied: &Applied) -> Result<(), UpgradeError> {
    let path = applied.rollback.join("applied.json");
    let json = serde_json::to_vec_pretty(applied).unwrap_or_default();
    crate::fsutil::write_atomic(&path, &json, 0o600).map_err(|source| UpgradeError::Io {
        path,
        action: "cannot record what the upgrade wrote".into(),
        source,
    })
}

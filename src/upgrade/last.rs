//! The last upgrade of a project, kept in the state dir (`upgrades/<project>.last.json`) from
//! the moment its backup is taken: what it went from and to, where the previous files and the
//! backup are, and what only the new release has. `upgrade --undo` puts the previous release
//! back from it (files, database, containers) even after the upgrade finished or a later
//! command rolled a killed one forward; `upgrade --resume` runs an interrupted one again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::UpgradeError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Last {
    pub project: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `--from DIR`, when the release came from a folder.
    pub from_dir: Option<PathBuf>,
    /// The previous files (and `applied.json`).
    pub rollback: PathBuf,
    /// The backup taken before anything changed.
    pub backup: PathBuf,
    /// What only the new release has (removed again by an undo).
    pub new_services: Vec<String>,
    pub new_networks: Vec<String>,
    pub new_volumes: Vec<String>,
    /// `writing`, `switching`, `done`, `undone`.
    pub state: String,
}

pub fn path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir
        .join("upgrades")
        .join(format!("{}.last.json", crate::fsutil::safe_name(project)))
}

impl Last {
    pub fn read(state_dir: &Path, project: &str) -> Option<Last> {
        let bytes = std::fs::read(path(state_dir, project)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, state_dir: &Path) -> Result<(), UpgradeError> {
        let p = path(state_dir, &self.project);
        if let Some(parent) = p.parent() {
            crate::fsutil::create_private_dir(parent).map_err(|source| UpgradeError::Io {
                path: parent.to_path_buf(),
                action: "cannot create it".into(),
                source,
            })?;
        }
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        crate::fsutil::write_atomic(&p, &json, 0o600).map_err(|source| UpgradeError::Io {
            path: p,
            action: "cannot record the upgrade".into(),
            source,
        })
    }

    pub fn set_state(&mut self, state: &str, state_dir: &Path) -> Result<(), UpgradeError> {
        self.state = state.to_string();
        self.write(state_dir)
    }
}

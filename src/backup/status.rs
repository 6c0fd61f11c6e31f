//! The last backup's outcome, kept in `<state>/backup-status.json` (written atomically) so
//! `difyctl ps` and `status` can show it whoever took the backup, and passed to `[backup] hook`
//! in DIFYCTL_BACKUP_* variables.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LastBackup {
    /// RFC 3339, UTC.
    pub at: String,
    /// `success` or `failure`.
    pub result: String,
    pub archive: Option<PathBuf>,
    pub size: Option<u64>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
    /// `schedule` or `command`.
    pub by: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("backup-status.json")
}

pub fn read(state_dir: &Path) -> Option<LastBackup> {
    let text = std::fs::read(path(state_dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Records the outcome (a failure to record is logged: the backup itself stands).
pub fn record(state_dir: &Path, last: &LastBackup) {
    let write = serde_json::to_vec_pretty(last)
        .map_err(std::io::Error::other)
        .and_then(|json| crate::fsutil::write_atomic(&path(state_dir), &json, 0o600));
    if let Err(e) = write {
        tracing::warn!(
            "cannot record the backup's outcome in {}: {e}",
            path(state_dir).display()
        );
    }
}

/// Runs `[backup] hook` with the outcome.
pub async fn run_hook(hook: Option<&str>, project: &str, last: &LastBackup) {
    let env = [
        ("DIFYCTL_BACKUP_PROJECT", project.to_string()),
        ("DIFYCTL_BACKUP_RESULT", last.result.clone()),
        (
            "DIFYCTL_BACKUP_ARCHIVE",
            last.archive
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
        ),
        (
            "DIFYCTL_BACKUP_SIZE",
            last.size.map_or(String::new(), |s| s.to_string()),
        ),
        (
            "DIFYCTL_BACKUP_ERROR",
            last.error.clone().unwrap_or_default(),
        ),
    ];
    crate::hook::run(hook, &env, "backup").await;
}

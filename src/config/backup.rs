//! The backup part of the configuration: `[backup]` in difyctl.toml (`dir`, `keep`,
//! `schedule`, `hook`) under `--to`/`--keep` (and DIFYCTL_BACKUP_DIR, DIFYCTL_BACKUP_KEEP).

use std::path::{Path, PathBuf};

use super::file::BackupFile;
use super::{ConfigError, Flags};
use crate::cron::Schedule;

#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Where archives go (default `<state>/backups`).
    pub dir: PathBuf,
    /// How many archives of the project to keep after a successful backup (none: all).
    pub keep: Option<usize>,
    /// When `up` takes backups itself.
    pub schedule: Option<Schedule>,
    /// Run after every backup with DIFYCTL_BACKUP_* set.
    pub hook: Option<String>,
}

pub(super) fn backup_config(
    flags: &Flags,
    file: &BackupFile,
    state_dir: &Path,
) -> Result<BackupConfig, ConfigError> {
    let keep = match (flags.backup_keep, file.keep) {
        (Some(k), _) => Some((k, flags.origin("keep"))),
        (None, Some(k)) => Some((k, "difyctl.toml (backup.keep)".to_string())),
        (None, None) => None,
    };
    if let Some((0, origin)) = &keep {
        return Err(ConfigError::Invalid {
            origin: origin.clone(),
            message: "must be at least 1 (the backup just taken is always kept)".into(),
        });
    }
    let schedule = match file
        .schedule
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => Some(
            text.parse::<Schedule>()
                .map_err(|message| ConfigError::Invalid {
                    origin: "difyctl.toml (backup.schedule)".into(),
                    message,
                })?,
        ),
    };
    Ok(BackupConfig {
        dir: flags
            .backup_dir
            .clone()
            .or_else(|| file.dir.clone())
            .unwrap_or_else(|| state_dir.join("backups")),
        keep: keep.map(|(k, _)| k),
        schedule,
        hook: file.hook.clone().filter(|h| !h.trim().is_empty()),
    })
}

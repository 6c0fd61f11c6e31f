//! Backups that restore. `take` writes one verified archive of a running install (the
//! install folder, difyctl's state, each database as a logical dump, each data folder and
//! named volume); `restore` puts an archive back into an empty install on any machine and
//! brings the stack up; `schedule` runs backups from `up`.
//!
//! - `plan`: which parts a stack's backup has (pure)
//! - `archive`: the tar file itself: streamed members, SHA-256s, verification
//! - `manifest`: what the archive says about itself
//! - `hosttar`: host folders to tar streams and back
//! - `key`: the install's Ed25519 backup key; every archive's manifest is signed with it
//! - `databases`: pg_dump / pg_restore / mysqldump commands run in the database's container
//! - `quiesce`: pausing a folder's writers while it is copied
//! - `meter`: bytes and rate on a terminal, plain lines otherwise
//! - `names`: archive names and `--keep` pruning
//! - `status`: the last outcome (for `ps`), and `[backup] hook`
//! - the cron expressions of `[backup] schedule` are `crate::cron`

pub mod archive;
pub mod databases;
pub mod hosttar;
pub mod key;
pub mod manifest;
pub mod meter;
pub mod names;
pub mod plan;
pub mod quiesce;
pub mod restore;
pub mod status;
pub mod take;

use std::path::PathBuf;

pub use archive::ArchiveError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Key(#[from] key::KeyError),
    #[error("service {service} is not running, so its database cannot be dumped: start the stack (`difyctl up`) first")]
    NotRunning { service: String },
    #[error("service {service}: `{what}` failed (exit code {code}): {stderr}")]
    Dump {
        service: String,
        what: String,
        code: i64,
        stderr: String,
    },
    #[error("cannot copy {}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the manifest: {0}")]
    Manifest(String),
    #[error("stopped before it was complete: no archive was kept")]
    Cancelled,
}

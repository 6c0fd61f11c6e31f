//! `difyctl upgrade`: an install from one Dify release to the next with its data kept, and put
//! back as it was when anything fails.
//!
//! - `release`: a release's `docker/` folder (user's download or embedded) and its version
//! - `embedded`: the releases difyctl ships as its default stack (1.15.0, 1.16.0)
//! - `base`: the release files an install was made from (three-way upgrades)
//! - `diff`: a line diff for a person
//! - `envsync`: one env file brought to the release (user values kept, new keys added)
//! - `renames`: settings Dify renamed, carried over
//! - `plan`: every file change, decided before anything is touched (`--dry-run`)
//! - `apply`: writing the plan, with the previous files kept to put back
//! - `last`: the last upgrade of a project (`--undo`, `--resume`)
//! - `migration`: the database migration, judged by `alembic_version` against the image's head
//! - `stores`: data stores that cannot skip versions (Weaviate), refused before any change
//!
//! The order (`cmd/upgrade.rs`): plan, backup, pull the new images (nothing is stopped yet),
//! write the files, recreate what changed while watching the migration, wait for health; on
//! any failure the previous files, images and database (from the backup) are put back.

pub mod apply;
pub mod base;
pub mod diff;
pub mod embedded;
pub mod envsync;
pub mod last;
pub mod migration;
pub mod plan;
pub mod stores;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Release(#[from] crate::releases::release::ReleaseError),
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {detail}", path.display())]
    Env { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] Box<stores::SkipError>),
    #[error("the install runs Dify {from} and the release is {to}: a downgrade is refused, because Dify's database migrations only go forward (an older api on a newer schema fails); to go back, restore the backup taken before the upgrade (`difyctl restore`)")]
    Downgrade { from: String, to: String },
}

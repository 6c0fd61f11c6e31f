//! `difyctl restore ARCHIVE`: an archive back into an empty install, on this machine or any
//! other, then the stack up. In order:
//!
//! 1. the whole archive is verified (every member's SHA-256) before anything is touched;
//! 2. the target folder must be empty (or `--force`): the install folder's files go there,
//!    and the stack is read from them (so a new folder gives the new project name);
//! 3. `preflight`: containers, volumes, data folders, database files and state files that
//!    would be overwritten are named, and nothing is written unless `--force` (a refusal
//!    takes back the files of step 2, so nothing that was there changes);
//! 4. `parts`: data folders, difyctl's state, named volumes;
//! 5. `database`: the database services alone are started and each dump is loaded;
//! 6. every service is brought up, as `up --no-proxy` does.

pub mod database;
mod parts;
mod preflight;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::archive::{self, Verified};
use super::manifest::PartKind;
use super::meter::Meter;
use super::{hosttar, BackupError};
use crate::engine::progress::Progress;
use crate::engine::reconcile::{self, ServiceResult, UpOptions};
use crate::engine::{Engine, EngineError};
use crate::stack::compose::{LoadOptions, Project, StackError};
use crate::stack::model::Stack;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("{} is not empty ({}): restore into an empty folder (--dir), or give --force to overwrite what is there", dir.display(), examples.join(", "))]
    NotEmpty { dir: PathBuf, examples: Vec<String> },
    #[error("{} holds project {existing}, and the archive is a backup of project {archive}: restore into an empty folder (--dir), or give `-p {existing} --force` to replace {existing}'s data with the archive's", dir.display())]
    OtherProject {
        dir: PathBuf,
        existing: String,
        archive: String,
    },
    #[error("restoring would overwrite {}: give --force to replace them with the archive's", .0.join("; "))]
    WouldOverwrite(Vec<String>),
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("service {service}: `{what}` failed (exit code {code}): {stderr}")]
    Load {
        service: String,
        what: String,
        code: i64,
        stderr: String,
    },
}

pub struct Request {
    pub archive: PathBuf,
    /// The install folder to restore into.
    pub dir: PathBuf,
    pub force: bool,
    /// `-p`: the project name (else as compose derives it in `dir`).
    pub project_name: Option<String>,
    pub state_dir: PathBuf,
    pub process_env: std::collections::HashMap<String, String>,
    pub wait_timeout: Duration,
    /// Hide per-service progress (`--json`).
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub archive: PathBuf,
    pub project: String,
    pub from_project: String,
    pub dir: PathBuf,
    pub created_at: String,
    pub parts: Vec<String>,
    pub services: Vec<ServiceResult>,
    pub warnings: Vec<String>,
}

pub async fn restore(
    engine: &Engine,
    req: &Request,
    meter: &Meter,
) -> Result<Report, RestoreError> {
    meter.begin("verify");
    let verified = archive::verify(&req.archive).await?;
    meter.end(&format!(
        "{} parts, every SHA-256 matches",
        verified.manifest.parts.len()
    ));
    let dir = absolute(&req.dir)?;
    let was_empty = preflight::target_folder(&dir, &verified, req)?;
    unpack_member(&verified, "install.tar", &dir, meter).await?;
    // From here until the first write outside `dir`, a refusal takes the files back.
    let checked = async {
        let stack = load_stack(&verified, &dir, req)?;
        let images = Progress::hidden();
        crate::engine::images::ensure(engine, &stack, &images, false).await?;
        preflight::overwrites(engine, &verified, &stack, req).await?;
        Ok::<_, RestoreError>(stack)
    }
    .await;
    let stack = match checked {
        Ok(stack) => stack,
        Err(e) => {
            if was_empty {
                clear_folder(&dir);
            }
            return Err(e);
        }
    };
    let mut warnings = Vec::new();
    if stack.project != verified.manifest.project {
        meter.say(&format!(
            "restoring project {} as project {} (in {})",
            verified.manifest.project,
            stack.project,
            dir.display()
        ));
    }
    parts::write(engine, &verified, &stack, req, meter, &mut warnings).await?;
    let progress = if req.quiet {
        Progress::hidden()
    } else {
        Progress::new(width(&stack))
    };
    database::load_all(engine, &verified, &stack, req, &progress, meter).await?;
    let opts = up_options(&verified, &dir, req);
    let up = reconcile::up(engine, &stack, &opts, &progress).await?;
    warnings.extend(up.warnings);
    Ok(Report {
        archive: req.archive.clone(),
        project: stack.project.clone(),
        from_project: verified.manifest.project.clone(),
        dir,
        created_at: verified.manifest.created_at.clone(),
        parts: verified
            .manifest
            .parts
            .iter()
            .map(|p| p.name.clone())
            .collect(),
        services: up.services,
        warnings,
    })
}

/// The stack as it will run in `dir`: the archive's compose files and profiles, the project
/// name from `-p` or as compose derives it there.
fn load_stack(v: &Verified, dir: &Path, req: &Request) -> Result<Stack, RestoreError> {
    let files: Vec<PathBuf> = v
        .manifest
        .compose_files
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let (compose_file, overrides) = match files.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => crate::stack::compose::default_files(dir),
    };
    let mut env = req.process_env.clone();
    // The profiles the backup ran with, whatever this shell says.
    env.remove("COMPOSE_PROFILES");
    env.remove("COMPOSE_PROJECT_NAME");
    let opts = LoadOptions {
        compose_file,
        overrides,
        env_files: Vec::new(),
        project_name: req.project_name.clone(),
        profiles: v.manifest.profiles.clone(),
        process_env: env,
    };
    let project = Project::load(&opts)?;
    Ok(Stack::from_project(&project, &crate::dify::REPLACED)?)
}

fn up_options(v: &Verified, dir: &Path, req: &Request) -> UpOptions {
    UpOptions {
        timeout: req.wait_timeout,
        config_file: v
            .manifest
            .compose_files
            .iter()
            .map(|f| dir.join(f).display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        retired: crate::dify::replaced(),
    }
}

/// A tar member of the archive unpacked into `dest`.
async fn unpack_member(
    v: &Verified,
    name: &str,
    dest: &Path,
    meter: &Meter,
) -> Result<(), RestoreError> {
    let Some(member) = v.member(name) else {
        return Ok(());
    };
    meter.begin(name);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let handle = hosttar::unpack(dest.to_path_buf(), rx);
    let fed = parts::feed(v, member, meter, |chunk| {
        let tx = tx.clone();
        async move { tx.send(chunk).await.is_ok() }
    })
    .await;
    drop(tx);
    let unpacked = handle.await.map_err(|e| RestoreError::Io {
        path: dest.to_path_buf(),
        action: format!("cannot unpack {name}"),
        source: std::io::Error::other(e.to_string()),
    })?;
    fed?;
    unpacked.map_err(|source| RestoreError::Io {
        path: dest.to_path_buf(),
        action: format!("cannot unpack {name}"),
        source,
    })?;
    meter.end(&format!("into {}", dest.display()));
    Ok(())
}

/// Empties a folder restore filled (after a refusal): back to how it was.
fn clear_folder(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, RestoreError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .map_err(|source| RestoreError::Io {
            path: dir.to_path_buf(),
            action: "cannot resolve the folder".into(),
            source,
        })
}

fn width(stack: &Stack) -> usize {
    stack
        .services
        .iter()
        .map(|s| s.name.len().max(s.image.len()))
        .max()
        .unwrap_or(0)
}

/// The part's kind, for callers matching on what was restored.
pub fn is_database(kind: &PartKind) -> bool {
    matches!(
        kind,
        PartKind::PostgresDatabase { .. }
            | PartKind::PostgresGlobals { .. }
            | PartKind::MysqlDatabase { .. }
    )
}

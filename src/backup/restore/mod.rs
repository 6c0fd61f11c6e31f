//! `difyctl restore ARCHIVE`: an archive back into an empty install, on this machine or any
//! other, then the stack up. An archive is hostile input until proven otherwise. In order:
//!
//! 1. `prepare`: the whole archive is verified (every member's SHA-256) and its signature
//!    judged (`trust`: this install's key or a `--trust` key; else `--untrusted` is needed);
//!    every path it names is resolved inside its target and every tar member scanned
//!    (`confine`, `unpack::scan`); the archive's compose is read from a scratch copy and what
//!    it would do to this host listed (`trust::risks`), for the caller to show and ask about;
//! 2. `apply`: the target folder must be empty (or `--force`); the install folder's files go
//!    there; `preflight` names what would be overwritten (nothing is written unless `--force`);
//!    `parts`: data folders, difyctl's state, named volumes; `database`: the database services
//!    alone are started and each dump loaded (as a role that is not a superuser); every
//!    service brought up, as `up --no-proxy` does.
//!
//! Nothing is ever written through a symlink (`unpack`). A failure part way takes back what
//! this restore wrote: its files and folders, the volumes it made, the containers it started.

pub mod confine;
pub mod database;
pub mod globals;
mod parts;
mod preflight;
pub mod trust;
pub mod unpack;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::archive::{self, Verified};
use super::key::PublicKey;
use super::manifest::PartKind;
use super::meter::Meter;
use super::BackupError;
use crate::engine::progress::Progress;
use crate::engine::reconcile::{self, ServiceResult, UpOptions};
use crate::engine::{Engine, EngineError};
use crate::journal::fact;
use crate::journal::{Journal, Op};
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
    #[error(transparent)]
    Unpack(#[from] unpack::UnpackError),
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
    #[error("{}: {why}. Restore it only if you know where it comes from: `--trust KEY` with the backup key of the install that made it (`difyctl backup key` there), or `--untrusted` to see what it would do to this host and decide", archive.display())]
    Untrusted { archive: PathBuf, why: String },
    #[error("{}: member {member}: {detail}; the archive is refused, nothing was changed", archive.display())]
    Refused {
        archive: PathBuf,
        member: String,
        detail: String,
    },
    #[error("the archive needs {need} bytes at {} and {free} are free: make room first", dir.display())]
    NoRoom { dir: PathBuf, need: u64, free: u64 },
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
    /// `--trust`: backup keys of other installs whose archives are believed.
    pub trust: Vec<PublicKey>,
    /// `--untrusted`: an archive no trusted key signed may be restored (after its risks were
    /// shown and accepted).
    pub untrusted: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub archive: PathBuf,
    pub project: String,
    pub from_project: String,
    pub dir: PathBuf,
    pub created_at: String,
    /// `local`, `trusted key ...`, or why it was not believed.
    pub trust: String,
    pub parts: Vec<String>,
    pub services: Vec<ServiceResult>,
    pub warnings: Vec<String>,
}

/// An archive checked and read, not yet restored.
pub struct Prepared {
    verified: Verified,
    pub trust: trust::Trust,
    /// What the archive's stack would do to this host.
    pub risks: Vec<String>,
    scratch: PathBuf,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Step 1: everything about the archive checked, nothing outside the state dir's scratch
/// written.
pub async fn prepare(
    engine: &Engine,
    req: &Request,
    meter: &Meter,
) -> Result<Prepared, RestoreError> {
    meter.begin("verify");
    let verified = archive::verify(&req.archive).await?;
    let trust = trust::decide(&verified, &req.state_dir, &req.trust);
    meter.end(&format!(
        "{} parts, every SHA-256 matches; {}",
        verified.manifest.parts.len(),
        match &trust {
            trust::Trust::Local => "signed by this install's backup key".to_string(),
            trust::Trust::Given(k) => format!("signed by the trusted key {k}"),
            trust::Trust::Untrusted(why) => format!("NOT trusted: {why}"),
        }
    ));
    if let trust::Trust::Untrusted(why) = &trust {
        if !req.untrusted {
            return Err(RestoreError::Untrusted {
                archive: req.archive.clone(),
                why: why.clone(),
            });
        }
    }
    confine::manifest(&verified)?;
    confine::early_members(&verified)?;
    // Private scratch outside the target and the state dir (which may be inside the target:
    // `--state-dir state`, and must not make it look filled).
    let scratch = std::env::temp_dir().join(format!("difyctl-restore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    crate::fsutil::create_private_dir(&scratch).map_err(|source| RestoreError::Io {
        path: scratch.clone(),
        action: "cannot create a scratch folder".into(),
        source,
    })?;
    let mut prepared = Prepared {
        verified,
        trust,
        risks: Vec::new(),
        scratch: scratch.clone(),
    };
    let v = &prepared.verified;
    if let Some(member) = v.member("install.tar") {
        unpack::write(v, member, &scratch, unpack::Links::Inside, &mut Vec::new())?;
    }
    let stack = load_stack(v, &scratch, req, &absolute(&req.dir)?)?;
    let outside_ok = prepared.trust.trusted() || req.untrusted;
    let bytes = confine::parts(v, &stack, outside_ok)?;
    confine::room(&absolute(&req.dir)?, bytes)?;
    let mut missing = Vec::new();
    for s in &stack.services {
        if engine.docker.inspect_image(&s.image).await.is_err() && !missing.contains(&s.image) {
            missing.push(s.image.clone());
        }
    }
    prepared.risks = trust::risks(v, &stack, &missing);
    Ok(prepared)
}

/// Step 2: the archive into the install folder, its parts, databases, then the stack up. A
/// failure takes back what this restore wrote.
pub async fn apply(
    engine: &Engine,
    prepared: &Prepared,
    req: &Request,
    meter: &Meter,
) -> Result<Report, RestoreError> {
    let verified = &prepared.verified;
    let dir = absolute(&req.dir)?;
    let was_empty = preflight::target_folder(&dir, verified, req)?;
    let mut undo = Undo {
        dir: dir.clone(),
        was_empty,
        created: Vec::new(),
        volumes: Vec::new(),
        project: None,
    };
    // A restore killed part way is taken back by whoever comes next (`heal`).
    let project = req.project_name.clone().unwrap_or_else(|| {
        crate::stack::compose::normalize_project_name(
            &dir.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    let mut journal = Journal::begin(&req.state_dir, &project, Op::Restore, "restore:writing")
        .map_err(|e| RestoreError::Io {
            path: e.path,
            action: "cannot write the restore's journal".into(),
            source: e.source,
        })?;
    journal
        .record
        .facts
        .insert(fact::DIR.into(), dir.display().to_string());
    journal
        .record
        .facts
        .insert(fact::WAS_EMPTY.into(), was_empty.to_string());
    let _ = journal.save();
    let result = apply_into(engine, prepared, req, meter, &dir, &mut undo, &mut journal).await;
    if result.is_err() {
        undo.run(engine).await;
    }
    journal.end();
    result
}

async fn apply_into(
    engine: &Engine,
    prepared: &Prepared,
    req: &Request,
    meter: &Meter,
    dir: &Path,
    undo: &mut Undo,
    journal: &mut Journal,
) -> Result<Report, RestoreError> {
    let verified = &prepared.verified;
    if let Some(member) = verified.member("install.tar") {
        meter.begin("install.tar");
        unpack::write(
            verified,
            member,
            dir,
            unpack::Links::Inside,
            &mut undo.created,
        )?;
        meter.end(&format!("into {}", dir.display()));
    }
    let stack = load_stack(verified, dir, req, dir)?;
    let images = Progress::hidden();
    crate::engine::images::ensure(engine, &stack, &images, false).await?;
    preflight::overwrites(engine, verified, &stack, req).await?;
    undo.project = Some(stack.project.clone());
    let mut warnings = Vec::new();
    if stack.project != verified.manifest.project {
        meter.say(&format!(
            "restoring project {} as project {} (in {})",
            verified.manifest.project,
            stack.project,
            dir.display()
        ));
    }
    undo.volumes = parts::missing_volumes(engine, &stack).await;
    journal
        .record
        .facts
        .insert(fact::VOLUMES.into(), undo.volumes.join(","));
    let _ = journal.step("restore:parts");
    let outside_ok = prepared.trust.trusted() || req.untrusted;
    let ctx = parts::Context {
        stack: &stack,
        req,
        outside_ok,
    };
    parts::write(
        engine,
        verified,
        &ctx,
        meter,
        &mut warnings,
        &mut undo.created,
    )
    .await?;
    let progress = if req.quiet {
        Progress::hidden()
    } else {
        Progress::new(width(&stack))
    };
    database::load_all(engine, verified, &stack, req, &progress, meter).await?;
    let opts = up_options(verified, dir, req);
    let up = reconcile::up(engine, &stack, &opts, &progress).await?;
    warnings.extend(up.warnings);
    Ok(Report {
        archive: req.archive.clone(),
        project: stack.project.clone(),
        from_project: verified.manifest.project.clone(),
        dir: dir.to_path_buf(),
        created_at: verified.manifest.created_at.clone(),
        trust: match &prepared.trust {
            trust::Trust::Local => "local".into(),
            trust::Trust::Given(k) => format!("trusted key {k}"),
            trust::Trust::Untrusted(why) => format!("untrusted: {why}"),
        },
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

/// What a restore wrote, to take back when it fails part way.
struct Undo {
    dir: PathBuf,
    was_empty: bool,
    /// Files and folders this restore created (outside `dir` too: state, host folders).
    created: Vec<PathBuf>,
    /// Volumes that did not exist before.
    volumes: Vec<String>,
    /// The project, once its containers may have been started by this restore.
    project: Option<String>,
}

impl Undo {
    async fn run(&self, engine: &Engine) {
        if let Some(project) = &self.project {
            let _ = crate::engine::ops::down(engine, project, false, Duration::from_secs(10)).await;
        }
        for v in &self.volumes {
            let _ = engine
                .docker
                .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
        for path in self.created.iter().rev() {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir_all(path);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(path);
                }
                Err(_) => {}
            }
        }
        if self.was_empty {
            clear_folder(&self.dir);
        }
    }
}

/// The stack as it will run in `dir`: the archive's compose files and profiles, the project
/// name from `-p` or as compose derives it there.
/// `dir` holds the files; `target` is where the install will live (its name gives the project
/// name when `-p` does not).
fn load_stack(
    v: &Verified,
    dir: &Path,
    req: &Request,
    target: &Path,
) -> Result<Stack, RestoreError> {
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
        project_name: req.project_name.clone().or_else(|| {
            target
                .file_name()
                .map(|n| crate::stack::compose::normalize_project_name(&n.to_string_lossy()))
        }),
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
        journal: None,
    }
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

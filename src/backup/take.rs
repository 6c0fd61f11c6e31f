//! `difyctl backup`: one archive, written under a temporary name, verified by reading it back,
//! then renamed into place. Parts in order: the install folder, difyctl's state (and
//! difyctl.toml when it lives elsewhere), each database as a logical dump taken inside its
//! container (no pause: the dump is a consistent snapshot), then each data folder and named
//! volume with the services that write it paused for just that copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::archive::{self, ArchiveWriter, MemberSum};
use super::hosttar::Mode;
use super::key::BackupKey;
use super::manifest::{ImageRecord, Manifest, Part, PartKind, FORMAT};
use super::meter::Meter;
use super::plan::{self, DbKind, Plan};
use super::{databases, hosttar, names, quiesce, BackupError};
use crate::engine::reconcile::{project_containers, service_label};
use crate::engine::Engine;
use crate::journal::{Journal, Op};
use crate::stack::model::Stack;

/// What to back up and where.
pub struct Request<'a> {
    pub stack: &'a Stack,
    /// The compose files read (absolute).
    pub compose_files: Vec<PathBuf>,
    /// difyctl.toml, when there is one.
    pub config_file: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// The folder the archive goes to.
    pub to: PathBuf,
    pub keep: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub archive: PathBuf,
    pub size: u64,
    pub seconds: f64,
    pub parts: Vec<PartSummary>,
    /// Older archives removed by `keep`.
    pub pruned: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartSummary {
    pub name: String,
    pub size: u64,
    pub how: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
}

/// Takes a backup. `stop` turning true abandons it (nothing is left but what was there).
pub async fn take(
    engine: &Engine,
    req: &Request<'_>,
    meter: &Meter,
    stop: watch::Receiver<bool>,
) -> Result<Report, BackupError> {
    let started = Instant::now();
    let key = BackupKey::load_or_create(&req.state_dir)?;
    // A folder that exists keeps its mode and owner (a shared 1777 folder, another disk's
    // mount point); one made here is 0700.
    crate::fsutil::create_dir_private_if_missing(&req.to).map_err(|source| BackupError::Io {
        path: req.to.clone(),
        action: "cannot create the backup folder".into(),
        source,
    })?;
    let project = &req.stack.project;
    // One backup of a project at a time, whatever the destination; a second one (a scheduled
    // one meeting `difyctl backup`) waits for the first. The lock lives in the state dir: a
    // folder others can write gets no lock file of ours to plant a symlink at.
    let _lock = crate::lock::acquire(
        &req.state_dir
            .join("locks")
            .join(format!("backup-{}.lock", crate::fsutil::safe_name(project))),
        &format!("a backup of project {project}"),
        |pid| {
            meter.say(&format!(
                "waiting for the backup already running (pid {pid})"
            ))
        },
    )
    .await?;
    names::remove_partials(&req.to, project);
    let stamp = crate::timefmt::compact_utc(now_secs());
    let (final_path, partial) = names::unique(&req.to, project, &stamp);
    let result = write_archive(engine, req, &partial, meter, stop, &key).await;
    let (manifest, mut warnings) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    meter.begin("verify");
    if let Err(e) = archive::verify(&partial).await {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    let read = std::fs::metadata(&partial).map_or(0, |m| m.len());
    meter.end(&format!(
        "{} read back, every member's SHA-256 matches",
        indicatif::HumanBytes(read)
    ));
    std::fs::rename(&partial, &final_path)
        .and_then(|()| std::fs::File::open(&req.to)?.sync_all())
        .map_err(|source| BackupError::Io {
            path: final_path.clone(),
            action: "cannot move the finished archive into place".into(),
            source,
        })?;
    let pruned = match req.keep {
        Some(keep) => names::prune(&req.to, project, keep, &mut warnings),
        None => Vec::new(),
    };
    let size = std::fs::metadata(&final_path).map_or(0, |m| m.len());
    Ok(Report {
        archive: final_path,
        size,
        seconds: started.elapsed().as_secs_f64(),
        parts: manifest
            .parts
            .iter()
            .map(|p| PartSummary {
                name: p.name.clone(),
                size: p.size,
                how: p.how.clone(),
                paused: p.paused.clone(),
                paused_ms: p.paused_ms,
            })
            .collect(),
        pruned,
        warnings,
    })
}

/// Every part, then the manifest, into `partial`.
async fn write_archive(
    engine: &Engine,
    req: &Request<'_>,
    partial: &Path,
    meter: &Meter,
    stop: watch::Receiver<bool>,
    key: &BackupKey,
) -> Result<(Manifest, Vec<String>), BackupError> {
    let stack = req.stack;
    let containers = project_containers(engine, &stack.project, true).await?;
    let mut warnings = Vec::new();
    for name in quiesce::unpause_leftovers(engine, &containers).await {
        warnings.push(format!(
            "{name} was left paused (by a backup that was killed?): unpaused"
        ));
    }
    let container_of = |service: &str| -> Option<(String, bool)> {
        containers
            .iter()
            .find(|c| service_label(c) == Some(service))
            .map(|c| {
                (
                    c.id.clone().unwrap_or_default(),
                    c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                )
            })
    };
    let mut excluded = vec![absolute(&req.to), absolute(&req.state_dir)];
    excluded.extend(req.config_file.iter().cloned());
    let plan = plan::plan(stack, &excluded);
    for db in &plan.databases {
        match container_of(&db.service) {
            Some((_, true)) => {}
            _ => {
                return Err(BackupError::NotRunning {
                    service: db.service.clone(),
                })
            }
        }
    }
    let journal =
        Journal::begin(&req.state_dir, &stack.project, Op::Backup, "copying").map_err(|e| {
            BackupError::Io {
                path: e.path.clone(),
                action: "cannot write the backup's journal".into(),
                source: e.source,
            }
        })?;
    let mut w = Copier {
        writer: ArchiveWriter::create(partial).await?,
        meter,
        stop,
        parts: Vec::new(),
        journal,
    };
    install_parts(&mut w, req, &plan, &mut warnings).await?;
    for db in &plan.databases {
        let (id, _) = container_of(&db.service).unwrap_or_default();
        database_parts(engine, &mut w, db, &id).await?;
    }
    for folder in &plan.folders {
        let writers = running_writers(&folder.writers, &plan, &container_of);
        folder_parts(
            engine,
            &mut w,
            folder,
            &writers,
            &plan,
            &stack.dir,
            &mut warnings,
        )
        .await?;
    }
    for v in &plan.volumes {
        let Some((id, _)) = container_of(&v.service) else {
            warnings.push(format!(
                "volume {} is not backed up: service {} has no container",
                v.docker_name, v.service
            ));
            continue;
        };
        let writers = running_writers(&v.writers, &plan, &container_of);
        let paused = quiesce::pause(engine, &writers, &mut w.journal).await?;
        let services = paused.services();
        let name = format!("volumes/{}.tar", crate::fsutil::safe_name(&v.docker_name));
        w.meter.begin(&name);
        let copied = w.volume(engine, &name, &id, &v.target).await;
        let took = quiesce::resume(engine, paused, &mut w.journal).await;
        let sum = copied?;
        let kind = PartKind::Volume {
            key: v.key.clone(),
            docker_name: v.docker_name.clone(),
            external: v.external,
            service: v.service.clone(),
            target: v.target.clone(),
        };
        let how = format!("Docker's archive of {} in service {}", v.target, v.service);
        let note = paused_note(&services, took);
        w.push(sum, kind, how, services, took, &note);
    }
    let manifest = Manifest {
        format: FORMAT,
        difyctl_version: env!("CARGO_PKG_VERSION").to_string(),
        dify_version: dify_version(stack),
        project: stack.project.clone(),
        created_at: crate::timefmt::rfc3339_seconds(now_secs()),
        source_dir: stack.dir.clone(),
        compose_files: req
            .compose_files
            .iter()
            .map(|f| {
                f.strip_prefix(&stack.dir)
                    .unwrap_or(f)
                    .display()
                    .to_string()
            })
            .collect(),
        profiles: stack.profiles.clone(),
        services: stack.services.iter().map(|s| s.name.clone()).collect(),
        images: images(engine, stack).await,
        parts: w.parts,
        skipped: plan.skipped.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Manifest(e.to_string()))?;
    w.writer.add(archive::MANIFEST, &json).await?;
    let signature = serde_json::to_vec_pretty(&key.sign(&json))
        .map_err(|e| BackupError::Manifest(e.to_string()))?;
    w.writer.add(archive::SIGNATURE, &signature).await?;
    w.writer.finish().await?;
    Ok((manifest, warnings))
}

/// One data folder in two passes: all of it while its writers run, then, with them paused,
/// only what changed meanwhile, so the pause lasts as long as the catch-up, not the copy.
async fn folder_parts(
    engine: &Engine,
    w: &mut Copier<'_>,
    folder: &plan::Folder,
    writers: &[(String, String)],
    plan: &Plan,
    install: &Path,
    warnings: &mut Vec<String>,
) -> Result<(), BackupError> {
    let name = names::folder_member(&folder.path, install);
    let inner = below(&plan.excluded, &folder.path);
    let path = folder
        .path
        .strip_prefix(install)
        .map_or(folder.path.clone(), Path::to_path_buf);
    let mode = if writers.is_empty() {
        Mode::Full
    } else {
        Mode::Indexed
    };
    w.meter.begin(&name);
    let (sum, stats) = w.host_tar(&name, &folder.path, &inner, mode).await?;
    let kind = PartKind::Folder {
        path: path.clone(),
        services: folder.users.clone(),
    };
    if writers.is_empty() {
        note_changed(&stats, warnings);
        w.push(
            sum,
            kind,
            "tar of the folder on this host".into(),
            Vec::new(),
            Duration::ZERO,
            "",
        );
        return Ok(());
    }
    let how = "tar of the folder on this host while its services ran (the .delta part brings it up to date)";
    w.push(sum, kind, how.into(), Vec::new(), Duration::ZERO, "");
    let delta = names::delta_member(&name);
    let paused = quiesce::pause(engine, writers, &mut w.journal).await?;
    let services = paused.services();
    w.meter.begin(&delta);
    let copied = w
        .host_tar(
            &delta,
            &folder.path,
            &inner,
            Mode::Changed(Arc::new(stats.index)),
        )
        .await;
    let took = quiesce::resume(engine, paused, &mut w.journal).await;
    let (sum, stats) = copied?;
    note_changed(&stats, warnings);
    let note = paused_note(&services, took);
    let kind = PartKind::FolderDelta {
        path,
        removed: stats.removed,
    };
    let how = "what changed during the first pass, with the writing services paused";
    w.push(sum, kind, how.into(), services, took, &note);
    Ok(())
}

/// The install folder, difyctl.toml when it is elsewhere, and difyctl's state.
async fn install_parts(
    w: &mut Copier<'_>,
    req: &Request<'_>,
    plan: &Plan,
    warnings: &mut Vec<String>,
) -> Result<(), BackupError> {
    let dir = &req.stack.dir;
    w.meter.begin("install.tar");
    let (sum, stats) = w
        .host_tar("install.tar", dir, &plan.excluded, Mode::Full)
        .await?;
    note_changed(&stats, warnings);
    let how = format!("tar of {} without its data folders", dir.display());
    w.push(sum, PartKind::Install, how, Vec::new(), Duration::ZERO, "");
    if let Some(config) = req.config_file.as_ref().filter(|c| !c.starts_with(dir)) {
        w.meter.begin("difyctl.toml");
        let (sum, _) = w.host_tar("config.tar", config, &[], Mode::Full).await?;
        let kind = PartKind::Config {
            path: config.clone(),
        };
        w.push(sum, kind, "the file".into(), Vec::new(), Duration::ZERO, "");
    }
    let state = absolute(&req.state_dir);
    if state.is_dir() {
        w.meter.begin("state.tar");
        let mut skip = below(&plan.excluded, &state);
        skip.push(crate::control::socket_path(&state));
        // The signing key stays on this machine: whoever reads a backup must not be able to
        // sign forged ones.
        skip.push(state.join(super::key::FILE));
        let (sum, _) = w.host_tar("state.tar", &state, &skip, Mode::Full).await?;
        let how = format!("tar of {}", req.state_dir.display());
        w.push(sum, PartKind::State, how, Vec::new(), Duration::ZERO, "");
    }
    Ok(())
}

/// Each database of one server, dumped inside its container and streamed into the archive.
async fn database_parts(
    engine: &Engine,
    w: &mut Copier<'_>,
    db: &plan::Database,
    container: &str,
) -> Result<(), BackupError> {
    let service = &db.service;
    let dumps: Vec<(String, Vec<String>, PartKind)> = match db.kind {
        DbKind::Postgres => {
            let mut list = vec![(
                format!("databases/{service}/globals.sql"),
                databases::pg_globals_command(db),
                PartKind::PostgresGlobals {
                    service: service.clone(),
                },
            )];
            for name in databases::postgres_databases(engine, db, container).await? {
                list.push((
                    format!(
                        "databases/{service}/{}.dump",
                        crate::fsutil::safe_name(&name)
                    ),
                    databases::pg_dump_command(db, &name),
                    PartKind::PostgresDatabase {
                        service: service.clone(),
                        database: name,
                    },
                ));
            }
            list
        }
        DbKind::Mysql => {
            let name = db.database.clone().ok_or_else(|| BackupError::Dump {
                service: service.clone(),
                what: "mysqldump".into(),
                code: -1,
                stderr: "MYSQL_DATABASE is not set: which database to dump is unknown".into(),
            })?;
            vec![(
                format!(
                    "databases/{service}/{}.sql",
                    crate::fsutil::safe_name(&name)
                ),
                databases::mysqldump_command(&name),
                PartKind::MysqlDatabase {
                    service: service.clone(),
                    database: name,
                },
            )]
        }
    };
    for (member, cmd, kind) in dumps {
        w.meter.begin(&member);
        let sum = w.exec(engine, &member, db, container, &cmd).await?;
        let how = format!("{} inside service {service}", cmd.join(" "));
        w.push(sum, kind, how, Vec::new(), Duration::ZERO, "");
    }
    Ok(())
}

/// The archive being written, with the progress meter and the stop signal.
struct Copier<'a> {
    writer: ArchiveWriter,
    meter: &'a Meter,
    stop: watch::Receiver<bool>,
    parts: Vec<Part>,
    /// What is paused right now, for whoever comes after a killed backup.
    journal: Journal,
}

impl Copier<'_> {
    async fn chunk(&mut self, data: &[u8]) -> Result<(), BackupError> {
        if *self.stop.borrow() {
            return Err(BackupError::Cancelled);
        }
        self.writer.write(data).await?;
        self.meter.add(data.len() as u64);
        Ok(())
    }

    fn push(
        &mut self,
        sum: MemberSum,
        kind: PartKind,
        how: String,
        paused: Vec<String>,
        took: Duration,
        note: &str,
    ) {
        self.meter.end(note);
        let paused_ms = (!paused.is_empty()).then_some(took.as_millis() as u64);
        self.parts.push(Part {
            name: sum.name,
            size: sum.size,
            sha256: sum.sha256,
            kind,
            how,
            paused,
            paused_ms,
        });
    }

    async fn host_tar(
        &mut self,
        name: &str,
        root: &Path,
        excluded: &[PathBuf],
        mode: Mode,
    ) -> Result<(MemberSum, hosttar::TarStats), BackupError> {
        self.writer.begin(name).await?;
        let (mut rx, handle): (mpsc::Receiver<Bytes>, _) =
            hosttar::stream(root.to_path_buf(), excluded.to_vec(), mode);
        let mut failed = None;
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = self.chunk(&chunk).await {
                failed = Some(e);
                break;
            }
        }
        drop(rx);
        let stats = handle.await.map_err(|e| BackupError::Folder {
            path: root.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let stats = stats?.map_err(|source| BackupError::Folder {
            path: root.to_path_buf(),
            source,
        })?;
        Ok((self.writer.end().await?, stats))
    }

    async fn volume(
        &mut self,
        engine: &Engine,
        name: &str,
        container: &str,
        target: &str,
    ) -> Result<MemberSum, BackupError> {
        use futures_util::StreamExt;
        self.writer.begin(name).await?;
        let options = bollard::query_parameters::DownloadFromContainerOptions {
            path: target.to_string(),
        };
        let mut stream = engine
            .docker
            .download_from_container(container, Some(options));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| {
                BackupError::Engine(crate::engine::EngineError::Api {
                    object: format!("volume at {target}"),
                    action: "cannot read it through Docker".into(),
                    source,
                })
            })?;
            self.chunk(&chunk).await?;
        }
        Ok(self.writer.end().await?)
    }

    async fn exec(
        &mut self,
        engine: &Engine,
        name: &str,
        db: &plan::Database,
        container: &str,
        cmd: &[String],
    ) -> Result<MemberSum, BackupError> {
        self.writer.begin(name).await?;
        let mut exec = crate::engine::exec::start(
            engine,
            &db.service,
            container,
            cmd,
            &databases::env(db),
            false,
        )
        .await?;
        while let Some(chunk) = exec.next_stdout().await? {
            self.chunk(&chunk).await?;
        }
        let done = exec.finish(engine, false).await?;
        if done.code != 0 {
            return Err(BackupError::Dump {
                service: db.service.clone(),
                what: cmd.join(" "),
                code: done.code,
                stderr: done.stderr,
            });
        }
        Ok(self.writer.end().await?)
    }
}

/// The running containers of `writers`, less the database servers (their dump needs them).
fn running_writers(
    writers: &[String],
    plan: &Plan,
    container_of: &impl Fn(&str) -> Option<(String, bool)>,
) -> Vec<(String, String)> {
    writers
        .iter()
        .filter(|s| !plan.databases.iter().any(|d| &d.service == *s))
        .filter_map(|s| match container_of(s) {
            Some((id, true)) => Some((s.clone(), id)),
            _ => None,
        })
        .collect()
}

/// The excluded paths strictly below `root` (`root` itself is in the list when another part
/// covers it: the install folder's copy leaves it to this one).
fn below(excluded: &[PathBuf], root: &Path) -> Vec<PathBuf> {
    excluded
        .iter()
        .filter(|x| x.as_path() != root && x.starts_with(root))
        .cloned()
        .collect()
}

fn paused_note(services: &[String], took: Duration) -> String {
    if services.is_empty() {
        String::new()
    } else {
        format!(
            "{} paused for {:.1} s",
            services.join(", "),
            took.as_secs_f64()
        )
    }
}

fn note_changed(stats: &hosttar::TarStats, warnings: &mut Vec<String>) {
    for path in &stats.changed {
        warnings.push(format!(
            "{} changed while it was copied: its copy may be torn",
            path.display()
        ));
    }
}

/// Each service's image with its local ID and registry digests.
async fn images(engine: &Engine, stack: &Stack) -> Vec<ImageRecord> {
    let mut out = Vec::new();
    for s in &stack.services {
        let info = engine.docker.inspect_image(&s.image).await.ok();
        out.push(ImageRecord {
            service: s.name.clone(),
            image: s.image.clone(),
            id: info.as_ref().and_then(|i| i.id.clone()),
            digests: info.and_then(|i| i.repo_digests).unwrap_or_default(),
        });
    }
    out
}

/// Dify's release, from the api image's tag (`langgenius/dify-api:1.15.0`).
pub fn dify_version(stack: &Stack) -> Option<String> {
    let image = &stack.service("api")?.image;
    let (_, tag) = image.rsplit_once(':')?;
    (!tag.contains('/')).then(|| tag.to_string())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

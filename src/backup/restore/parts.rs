//! Writing an archive's files back: data folders and difyctl's state onto this host, named
//! volumes through Docker (a container made for the purpose, never started, mounts the volume
//! where its service mounts it and receives the archived tree).

use std::future::Future;
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::unpack::{self, Links};
use super::{confine, Request, RestoreError};
use crate::backup::archive::{Located, Verified};
use crate::backup::manifest::PartKind;
use crate::backup::meter::Meter;
use crate::engine::{Engine, EngineError};
use crate::stack::model::Stack;
use crate::stack::mounts::Source;

/// What the parts are written for.
pub struct Context<'a> {
    pub stack: &'a Stack,
    pub req: &'a Request,
    /// Host folders outside the install folder and external volumes may be filled.
    pub outside_ok: bool,
}

/// The stack's volumes that do not exist yet (a failed restore removes them again).
pub async fn missing_volumes(engine: &Engine, stack: &Stack) -> Vec<String> {
    let mut out = Vec::new();
    for v in stack.volumes.iter().filter(|v| !v.external) {
        if engine.docker.inspect_volume(&v.docker_name).await.is_err() {
            out.push(v.docker_name.clone());
        }
    }
    out
}

/// Folders, state, difyctl.toml and volumes, in the archive's order; every path resolved by
/// `confine`, every file written by `unpack` (never through a link). `created` collects what
/// did not exist before.
pub async fn write(
    engine: &Engine,
    v: &Verified,
    ctx: &Context<'_>,
    meter: &Meter,
    warnings: &mut Vec<String>,
    created: &mut Vec<PathBuf>,
) -> Result<(), RestoreError> {
    let (stack, req) = (ctx.stack, ctx.req);
    crate::engine::resources::ensure_volumes(engine, stack).await?;
    for part in &v.manifest.parts {
        let Some(member) = v.member(&part.name) else {
            continue;
        };
        match &part.kind {
            PartKind::Folder { path, .. } | PartKind::FolderDelta { path, .. } => {
                let dest = confine::folder(v, stack, &part.name, path, ctx.outside_ok)?;
                // A single file's tar holds the file by name: it goes into the parent.
                let into = if part_is_file(v, &part.name) {
                    dest.parent().unwrap_or(Path::new("/")).to_path_buf()
                } else {
                    dest.clone()
                };
                meter.begin(&part.name);
                unpack::write(v, member, &into, Links::Kept, created)?;
                if let PartKind::FolderDelta { removed, .. } = &part.kind {
                    remove_listed(&dest, removed)?;
                }
                meter.end(&format!("into {}", into.display()));
            }
            PartKind::State => {
                crate::fsutil::create_private_dir(&req.state_dir).map_err(|source| {
                    RestoreError::Io {
                        path: req.state_dir.clone(),
                        action: "cannot create the state directory".into(),
                        source,
                    }
                })?;
                meter.begin(&part.name);
                unpack::write(v, member, &req.state_dir, Links::Refused, created)?;
                meter.end(&format!("into {}", req.state_dir.display()));
            }
            PartKind::Config { .. } => {
                config_file(v, member, &stack.dir, &req.state_dir, created, warnings)?;
            }
            PartKind::Volume {
                key,
                target,
                service,
                ..
            } => {
                let name = confine::volume(v, stack, &part.name, key, ctx.outside_ok)?;
                let image = image_for(stack, key)
                    .or_else(|| stack.service(service).map(|s| s.image.clone()));
                let Some(image) = image else {
                    warnings.push(format!(
                        "volume {name} was not restored: no service of this stack mounts it"
                    ));
                    continue;
                };
                meter.begin(&part.name);
                upload_volume(engine, v, member, &image, &name, target, meter).await?;
                meter.end(&format!("into volume {name}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The archive's difyctl.toml (kept outside its install folder there) goes to the target's
/// own place, `<install>/difyctl.toml`: never to the path it had on the machine it came from,
/// where another install's settings may live.
fn config_file(
    v: &Verified,
    member: &Located,
    dir: &Path,
    state_dir: &Path,
    created: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<(), RestoreError> {
    let target = dir.join("difyctl.toml");
    if target.exists() {
        warnings.push(format!(
            "{} exists: the archive's difyctl.toml was not put there",
            target.display()
        ));
        return Ok(());
    }
    let scratch = state_dir.join(format!(".restore-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    unpack::write(v, member, &scratch, Links::Refused, &mut Vec::new())?;
    let file = std::fs::read_dir(&scratch)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file());
    let result = match file {
        Some(f) => std::fs::read(&f)
            .and_then(|bytes| crate::fsutil::write_atomic(&target, &bytes, 0o644))
            .map_err(|source| RestoreError::Io {
                path: target.clone(),
                action: "cannot write the archive's difyctl.toml".into(),
                source,
            }),
        None => Ok(()),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    created.push(target);
    Ok(())
}

/// Removes what a catch-up pass listed as deleted (plain paths, checked by `confine`), never
/// through a link: every folder on the way must be a real one.
fn remove_listed(dest: &Path, removed: &[PathBuf]) -> Result<(), RestoreError> {
    for rel in removed {
        let mut at = dest.to_path_buf();
        let parts: Vec<_> = rel.components().collect();
        let through_real_dirs = parts.iter().take(parts.len().saturating_sub(1)).all(|c| {
            at.push(c);
            std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir())
        });
        if !through_real_dirs {
            continue;
        }
        let path = dest.join(rel);
        let gone = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => Ok(()),
        };
        gone.map_err(|source| RestoreError::Io {
            path: path.clone(),
            action: "cannot remove what was deleted during the backup".into(),
            source,
        })?;
    }
    Ok(())
}

/// Whether a folder part holds one file (a bind-mounted file outside the install folder).
fn part_is_file(v: &Verified, name: &str) -> bool {
    let Some(member) = v.member(name) else {
        return false;
    };
    let Ok(mut file) = std::fs::File::open(&v.path) else {
        return false;
    };
    use std::io::{Read, Seek};
    let mut header = [0u8; 512];
    file.seek(std::io::SeekFrom::Start(member.offset)).is_ok()
        && file.read_exact(&mut header).is_ok()
        && tar::Header::from_byte_slice(&header).entry_type().is_file()
}

/// The image of a service that mounts volume `key`.
fn image_for(stack: &Stack, key: &str) -> Option<String> {
    stack
        .services
        .iter()
        .find(|s| {
            s.mounts
                .iter()
                .any(|m| m.source == Source::Volume(key.to_string()))
        })
        .map(|s| s.image.clone())
}

async fn upload_volume(
    engine: &Engine,
    v: &Verified,
    member: &Located,
    image: &str,
    volume: &str,
    target: &str,
    meter: &Meter,
) -> Result<(), RestoreError> {
    let helper = Helper::create(engine, image, volume, target).await?;
    let parent = Path::new(target)
        .parent()
        .map_or("/".to_string(), |p| p.display().to_string());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let body = bollard::body_try_stream(tokio_stream(rx));
    let upload = engine.docker.upload_to_container(
        &helper.id,
        Some(UploadToContainerOptions {
            path: parent,
            ..Default::default()
        }),
        body,
    );
    let feeding = async {
        let fed = feed(v, member, meter, |chunk| {
            let tx = tx.clone();
            async move { tx.send(Ok(chunk)).await.is_ok() }
        })
        .await;
        drop(tx);
        fed
    };
    let (uploaded, fed) = tokio::join!(upload, feeding);
    helper.remove(engine).await;
    fed?;
    uploaded.map_err(|e| {
        EngineError::api(
            format!("volume {volume}"),
            "cannot write the archived files into it",
        )(e)
    })?;
    Ok(())
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Reads a member in chunks and hands each to `send` (false: the receiver stopped early, and
/// its own error says why).
pub async fn feed<F, Fut>(
    v: &Verified,
    member: &Located,
    meter: &Meter,
    mut send: F,
) -> Result<(), RestoreError>
where
    F: FnMut(Bytes) -> Fut,
    Fut: Future<Output = bool>,
{
    each_chunk(v, member, meter, async |chunk: &[u8]| {
        send(Bytes::copy_from_slice(chunk)).await
    })
    .await
}

/// Reads a member into `out` (a program's stdin). A write error means the program stopped
/// reading: its exit code and stderr say why, so it is not reported here.
pub async fn feed_writer<W: tokio::io::AsyncWrite + Unpin + ?Sized>(
    v: &Verified,
    member: &Located,
    meter: &Meter,
    out: &mut W,
) -> Result<(), RestoreError> {
    use tokio::io::AsyncWriteExt;
    each_chunk(v, member, meter, async |chunk: &[u8]| {
        out.write_all(chunk).await.is_ok()
    })
    .await
}

/// The read loop of `feed` and `feed_writer`: each chunk counted, then handed to `take` until
/// the member ends or `take` says stop.
async fn each_chunk(
    v: &Verified,
    member: &Located,
    meter: &Meter,
    mut take: impl AsyncFnMut(&[u8]) -> bool,
) -> Result<(), RestoreError> {
    let mut reader = v.open(member).await?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|source| RestoreError::Io {
                path: v.path.clone(),
                action: format!("cannot read member {}", member.name),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        meter.add(n as u64);
        if !take(&buf[..n]).await {
            return Ok(());
        }
    }
}

/// A container that only exists to reach a volume through Docker's archive API.
pub struct Helper {
    pub id: String,
}

impl Helper {
    pub async fn create(
        engine: &Engine,
        image: &str,
        volume: &str,
        target: &str,
    ) -> Result<Helper, EngineError> {
        let name = format!(
            "difyctl-restore-{}-{}",
            std::process::id(),
            crate::fsutil::safe_name(volume)
        );
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // Never started; a command is only required to create it.
            cmd: Some(vec!["true".into()]),
            entrypoint: Some(vec![]),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{volume}:{target}")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = engine
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(EngineError::api(
                format!("volume {volume}"),
                "cannot create a container to reach it",
            ))?;
        Ok(Helper { id: created.id })
    }

    pub async fn remove(self, engine: &Engine) {
        let opts = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        if let Err(e) = engine.docker.remove_container(&self.id, Some(opts)).await {
            tracing::warn!("cannot remove the helper container {}: {e}", self.id);
        }
    }
}

//! Writing an archive's files back: data folders and difyctl's state onto this host, named
//! volumes through Docker (a container made for the purpose, never started, mounts the volume
//! where its service mounts it and receives the archived tree).

use std::future::Future;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::preflight::{folder_path, target_volume};
use super::{unpack_member, Request, RestoreError};
use crate::backup::archive::{Located, Verified};
use crate::backup::manifest::PartKind;
use crate::backup::meter::Meter;
use crate::engine::{Engine, EngineError};
use crate::stack::model::Stack;
use crate::stack::mounts::Source;

/// Folders, state, difyctl.toml and volumes, in the archive's order.
pub async fn write(
    engine: &Engine,
    v: &Verified,
    stack: &Stack,
    req: &Request,
    meter: &Meter,
    warnings: &mut Vec<String>,
) -> Result<(), RestoreError> {
    crate::engine::resources::ensure_volumes(engine, stack).await?;
    for part in &v.manifest.parts {
        match &part.kind {
            PartKind::Folder { path, .. } | PartKind::FolderDelta { path, .. } => {
                let dest = folder_path(stack, path);
                // A single file's tar holds the file by name: it goes into the parent.
                let into = if part_is_file(v, &part.name) {
                    dest.parent().unwrap_or(Path::new("/")).to_path_buf()
                } else {
                    dest.clone()
                };
                unpack_member(v, &part.name, &into, meter).await?;
                if let PartKind::FolderDelta { removed, .. } = &part.kind {
                    crate::backup::hosttar::remove_listed(&dest, removed).map_err(|source| {
                        RestoreError::Io {
                            path: dest.clone(),
                            action: "cannot remove what was deleted during the backup".into(),
                            source,
                        }
                    })?;
                }
            }
            PartKind::State => {
                crate::fsutil::create_private_dir(&req.state_dir).map_err(|source| {
                    RestoreError::Io {
                        path: req.state_dir.clone(),
                        action: "cannot create the state directory".into(),
                        source,
                    }
                })?;
                unpack_member(v, &part.name, &req.state_dir, meter).await?;
            }
            PartKind::Config { path } => {
                let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                unpack_member(v, &part.name, &parent, meter).await?;
            }
            PartKind::Volume {
                key,
                docker_name,
                target,
                service,
                ..
            } => {
                let name = target_volume(stack, key, docker_name);
                let image = image_for(stack, key)
                    .or_else(|| stack.service(service).map(|s| s.image.clone()));
                let Some(image) = image else {
                    warnings.push(format!(
                        "volume {name} was not restored: no service of this stack mounts it"
                    ));
                    continue;
                };
                let Some(member) = v.member(&part.name) else {
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

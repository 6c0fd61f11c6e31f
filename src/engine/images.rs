//! Images: pull the ones missing on this machine (all of them for `pull`), one progress line
//! per image, all at once. A pull that fails names the image and the services that need it.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::progress::Progress;
use super::{Engine, EngineError};
use crate::stack::model::Stack;

/// Pulls the stack's images: the missing ones, or every one with `always`. Returns the pulled.
pub async fn ensure(
    engine: &Engine,
    stack: &Stack,
    progress: &Progress,
    always: bool,
) -> Result<Vec<String>, EngineError> {
    let mut images: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in &stack.services {
        images.entry(&s.image).or_default().push(&s.name);
    }
    let pulls = images.into_iter().map(|(image, services)| async move {
        if !always && engine.docker.inspect_image(image).await.is_ok() {
            return Ok(None);
        }
        pull(engine, image, &services.join(", "), progress)
            .await
            .map(|()| Some(image.to_string()))
    });
    let done = futures_util::future::try_join_all(pulls).await?;
    Ok(done.into_iter().flatten().collect())
}

async fn pull(
    engine: &Engine,
    image: &str,
    services: &str,
    progress: &Progress,
) -> Result<(), EngineError> {
    let line = progress.line(image);
    line.set("pulling");
    // `name` alone means every tag to Docker; compose pulls `latest` then.
    let has_tag = image.contains('@')
        || image
            .rsplit_once(':')
            .is_some_and(|(_, tag)| !tag.contains('/'));
    let options = CreateImageOptions {
        from_image: Some(image.to_string()),
        tag: (!has_tag).then(|| "latest".to_string()),
        ..Default::default()
    };
    let fail = |detail: String| EngineError::Pull {
        image: image.to_string(),
        services: services.to_string(),
        detail,
    };
    let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
    let mut stream = engine.docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                line.finish("pull failed");
                return Err(fail(crate::error_chain(&e)));
            }
        };
        if let Some(err) = info.error_detail.and_then(|e| e.message) {
            line.finish("pull failed");
            return Err(fail(err));
        }
        if let (Some(id), Some(detail)) = (info.id, info.progress_detail) {
            if let (Some(cur), Some(total)) = (detail.current, detail.total) {
                layers.insert(id, (cur.max(0) as u64, total.max(0) as u64));
            }
        }
        let (cur, total) = layers
            .values()
            .fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
        line.bytes(info.status.as_deref().unwrap_or("pulling"), cur, total);
    }
    line.finish("pulled");
    Ok(())
}

/// The regular files under `path` in `image` (`relative path`, bytes), read through a
/// container created for it and never started (removed afterwards); at most `max` bytes in
/// all. `None` when the image has no such path.
pub async fn read_files(
    engine: &Engine,
    image: &str,
    path: &str,
    max: u64,
) -> Result<Option<Vec<(String, Vec<u8>)>>, EngineError> {
    use bollard::models::ContainerCreateBody;
    use bollard::query_parameters::{DownloadFromContainerOptions, RemoveContainerOptions};
    let what = format!("image {image}");
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // Never started; a command is only required to create it.
        cmd: Some(vec!["true".into()]),
        entrypoint: Some(vec![]),
        ..Default::default()
    };
    let created = engine
        .docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(EngineError::api(
            &what,
            "cannot create a container to read it",
        ))?;
    let options = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let mut stream = engine
        .docker
        .download_from_container(&created.id, Some(options));
    let mut tar = Vec::new();
    let mut result = Ok(Some(()));
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) if (tar.len() + bytes.len()) as u64 <= max => tar.extend_from_slice(&bytes),
            Ok(_) => {
                result = Err(EngineError::TooLarge {
                    object: format!("{what}: {path}"),
                    max,
                });
                break;
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                result = Ok(None);
                break;
            }
            Err(e) => {
                result = Err(EngineError::api(&what, format!("cannot read {path}"))(e));
                break;
            }
        }
    }
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    let _ = engine
        .docker
        .remove_container(&created.id, Some(remove))
        .await;
    if result?.is_none() {
        return Ok(None);
    }
    Ok(Some(regular_files(&tar)))
}

/// The regular files of a tar, paths relative to its top folder.
fn regular_files(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else {
        return out;
    };
    for mut entry in entries.flatten() {
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let Ok(path) = entry.path() else { continue };
        let rel: std::path::PathBuf = path.components().skip(1).collect();
        let rel = rel.to_string_lossy().into_owned();
        let mut data = Vec::new();
        if entry.read_to_end(&mut data).is_ok() {
            out.push((rel, data));
        }
    }
    out
}

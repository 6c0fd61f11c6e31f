//! What a restore would overwrite, found before anything outside the target folder is
//! written: the target folder itself, the project's containers, its volumes, data folders
//! outside the install folder, database files, and difyctl's state. Without `--force` any of
//! them stops the restore, named; with it, they are cleared for the archive's copy.

use std::path::{Path, PathBuf};

use bollard::query_parameters::DownloadFromContainerOptions;
use futures_util::StreamExt;

use super::{Request, RestoreError};
use crate::backup::archive::Verified;
use crate::backup::manifest::PartKind;
use crate::backup::plan;
use crate::engine::reconcile::{display_name, project_containers};
use crate::engine::resources::is_not_found;
use crate::engine::{Engine, EngineError};
use crate::stack::model::Stack;
use crate::stack::mounts::Source;

/// The target folder: empty (or missing), or `--force`. Returns whether it was empty. A
/// folder holding another project's install is refused even with `--force`, unless `-p`
/// names that project (replacing its data with the archive's on purpose).
pub fn target_folder(dir: &Path, v: &Verified, req: &Request) -> Result<bool, RestoreError> {
    let entries: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(true);
    }
    if !req.force {
        let mut examples: Vec<String> = entries.iter().take(4).cloned().collect();
        if entries.len() > 4 {
            examples.push(format!("{} more", entries.len() - 4));
        }
        return Err(RestoreError::NotEmpty {
            dir: dir.to_path_buf(),
            examples,
        });
    }
    let (compose, overrides) = crate::stack::compose::default_files(dir);
    if compose.is_file() {
        let opts = crate::stack::compose::LoadOptions {
            compose_file: compose,
            overrides,
            process_env: req.process_env.clone(),
            ..Default::default()
        };
        if let Ok(p) = crate::stack::compose::Project::load(&opts) {
            let named = req
                .project_name
                .as_deref()
                .map(crate::stack::compose::normalize_project_name);
            if p.name != v.manifest.project && named.as_deref() != Some(p.name.as_str()) {
                return Err(RestoreError::OtherProject {
                    dir: dir.to_path_buf(),
                    existing: p.name,
                    archive: v.manifest.project.clone(),
                });
            }
        }
    }
    Ok(false)
}

/// Everything else that would be overwritten; with `--force`, cleared.
pub async fn overwrites(
    engine: &Engine,
    v: &Verified,
    stack: &Stack,
    req: &Request,
) -> Result<(), RestoreError> {
    let mut found = Vec::new();
    let containers = project_containers(engine, &stack.project, true).await?;
    if !containers.is_empty() {
        let names: Vec<String> = containers.iter().map(display_name).collect();
        found.push(format!(
            "project {}'s containers ({})",
            stack.project,
            names.join(", ")
        ));
    }
    let mut volumes = Vec::new();
    for part in &v.manifest.parts {
        if let PartKind::Volume { key, .. } = &part.kind {
            volumes.extend(target_volume(stack, key));
        }
    }
    for db in plan::plan(stack, &[]).databases {
        for (name, _) in database_volumes(stack, &db) {
            volumes.push(name);
        }
    }
    for name in &volumes {
        if volume_has_data(engine, stack, name).await? {
            found.push(format!("volume {name} (not empty)"));
        }
    }
    let folders = folders(v, stack);
    for f in &folders {
        if has_entries(f) {
            found.push(format!("folder {} (not empty)", f.display()));
        }
    }
    let state = state_conflicts(v, &req.state_dir);
    found.extend(
        state
            .iter()
            .map(|p| format!("{} (difyctl state)", p.display())),
    );
    if found.is_empty() {
        return Ok(());
    }
    if !req.force {
        return Err(RestoreError::WouldOverwrite(found));
    }
    clear(engine, stack, &volumes, &folders).await
}

/// `--force`: the project's containers and networks go (as `down` does), the volumes and
/// folders are emptied for the archive's copy.
async fn clear(
    engine: &Engine,
    stack: &Stack,
    volumes: &[String],
    folders: &[PathBuf],
) -> Result<(), RestoreError> {
    crate::engine::ops::down(
        engine,
        &stack.project,
        false,
        std::time::Duration::from_secs(10),
    )
    .await?;
    for name in volumes {
        match engine
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(EngineError::api(
                    format!("volume {name}"),
                    "cannot remove it to restore it",
                )(e)
                .into())
            }
        }
    }
    for f in folders {
        if f.exists() {
            let removed = if f.is_dir() {
                std::fs::remove_dir_all(f)
            } else {
                std::fs::remove_file(f)
            };
            removed.map_err(|source| RestoreError::Io {
                path: f.clone(),
                action: "cannot clear it to restore it".into(),
                source,
            })?;
        }
    }
    Ok(())
}

/// A volume's Docker name in the restored project: by its key, which the archive names (never
/// the name it had there: another project's volume). `confine` refused unknown keys.
pub fn target_volume(stack: &Stack, key: &str) -> Option<String> {
    stack.volume(key).map(|v| v.docker_name.clone())
}

/// The named volumes that hold a database server's files.
pub fn database_volumes(stack: &Stack, db: &plan::Database) -> Vec<(String, String)> {
    let Some(spec) = stack.service(&db.service) else {
        return Vec::new();
    };
    spec.mounts
        .iter()
        .filter(|m| db.data_targets.contains(&m.target))
        .filter_map(|m| match &m.source {
            Source::Volume(key) => stack
                .volume(key)
                .map(|v| (v.docker_name.clone(), m.target.clone())),
            _ => None,
        })
        .collect()
}

/// Data folders the archive fills, and the database servers' bind-mounted files.
fn folders(v: &Verified, stack: &Stack) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = v
        .manifest
        .parts
        .iter()
        .filter_map(|p| match &p.kind {
            PartKind::Folder { path, .. } => Some(folder_path(stack, path)),
            _ => None,
        })
        .collect();
    for db in plan::plan(stack, &[]).databases {
        let spec = stack.service(&db.service);
        for m in spec.iter().flat_map(|s| &s.mounts) {
            if let (Source::Bind(p), true) = (&m.source, db.data_targets.contains(&m.target)) {
                out.push(p.clone());
            }
        }
    }
    out
}

/// Where an archived folder goes: relative paths into the install folder.
pub fn folder_path(stack: &Stack, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        stack.dir.join(path)
    }
}

fn has_entries(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some(),
        Err(_) => path.is_file(),
    }
}

/// Files of difyctl's state the archive has and this machine has differently.
fn state_conflicts(v: &Verified, state_dir: &Path) -> Vec<PathBuf> {
    // The state member is small (keys and certificates): its listing is read synchronously.
    let Some(member) = v.member("state.tar") else {
        return Vec::new();
    };
    let Ok(file) = std::fs::File::open(&v.path) else {
        return Vec::new();
    };
    use std::io::{Read, Seek};
    let mut file = file;
    if file.seek(std::io::SeekFrom::Start(member.offset)).is_err() {
        return Vec::new();
    }
    let mut archive = tar::Archive::new(file.take(member.size));
    let mut conflicts = Vec::new();
    let Ok(entries) = archive.entries() else {
        return conflicts;
    };
    for mut entry in entries.flatten() {
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().map(|p| p.into_owned()) else {
            continue;
        };
        let here = state_dir.join(&rel);
        let Ok(existing) = std::fs::read(&here) else {
            continue;
        };
        let mut archived = Vec::new();
        if entry.read_to_end(&mut archived).is_ok() && archived != existing {
            conflicts.push(here);
        }
    }
    conflicts
}

/// Whether a volume exists with something in it, looked at through a container made for
/// the purpose (not started) from an image the stack already has.
async fn volume_has_data(engine: &Engine, stack: &Stack, name: &str) -> Result<bool, RestoreError> {
    match engine.docker.inspect_volume(name).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => {
            return Err(EngineError::api(format!("volume {name}"), "cannot inspect it")(e).into())
        }
    }
    let Some(image) = stack.services.first().map(|s| s.image.clone()) else {
        return Ok(true);
    };
    let helper = super::parts::Helper::create(engine, &image, name, "/difyctl-volume").await?;
    let mut stream = engine.docker.download_from_container(
        &helper.id,
        Some(DownloadFromContainerOptions {
            path: "/difyctl-volume".into(),
        }),
    );
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => tar.extend_from_slice(&c),
            Err(_) => break,
        }
        // The root entry plus one more block is enough to know.
        if tar.len() > 4096 {
            break;
        }
    }
    drop(stream);
    helper.remove(engine).await;
    let mut entries = 0;
    let mut archive = tar::Archive::new(tar.as_slice());
    if let Ok(list) = archive.entries() {
        entries = list.take(2).count();
    }
    Ok(entries > 1 || tar.len() > 4096)
}

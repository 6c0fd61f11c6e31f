//! Fetched releases kept in the state dir, `<state_dir>/releases/<V>/` (the `docker/` folder
//! of the tag archive). A release is downloaded and unpacked into a private scratch folder and
//! renamed into place whole: a killed fetch leaves no half release for the next command, only
//! scratch that the next fetch removes.

use std::path::{Path, PathBuf};

use super::{archive_url, download, unpack, ReleasesError};

/// Largest archive downloaded (Dify's whole repository at a tag is ~100 MB compressed).
pub const MAX_ARCHIVE: u64 = 1 << 30;

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("releases")
}

/// The cached `docker/` folder of `version`, if fetched before.
pub fn cached(state_dir: &Path, version: &str) -> Option<PathBuf> {
    let d = dir(state_dir).join(version);
    d.join("docker-compose.yaml").is_file().then_some(d)
}

/// Versions in the cache.
pub fn versions(state_dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir(state_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && super::version(n).is_ok())
        .filter(|n| cached(state_dir, n).is_some())
        .collect();
    out.sort_by(|a, b| crate::dify::version::compare(a, b).unwrap_or(a.cmp(b)));
    out
}

/// Dify `version`'s `docker/` folder: from the cache, else fetched from `base` and checked
/// (the api image's tag must be `version`).
pub async fn fetch(state_dir: &Path, base: &str, version: &str) -> Result<PathBuf, ReleasesError> {
    let version = super::version(version)?;
    if let Some(d) = cached(state_dir, &version) {
        return Ok(d);
    }
    let root = dir(state_dir);
    crate::fsutil::create_private_dir(&root)
        .map_err(ReleasesError::io(&root, "cannot create it"))?;
    remove_scratch(&root);
    let scratch = root.join(format!(".fetch-{version}-{}", std::process::id()));
    crate::fsutil::create_private_dir(&scratch)
        .map_err(ReleasesError::io(&scratch, "cannot create it"))?;
    let result = fetch_into(&scratch, base, &version).await;
    let out = match result {
        Ok(docker) => {
            let target = root.join(&version);
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&docker, &target)
                .map_err(ReleasesError::io(
                    &target,
                    "cannot put the release in place",
                ))
                .map(|()| target)
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    out
}

async fn fetch_into(scratch: &Path, base: &str, version: &str) -> Result<PathBuf, ReleasesError> {
    let url = archive_url(base, version);
    let archive = scratch.join("archive.tar.gz");
    if !download::to_file(&url, &archive, MAX_ARCHIVE).await? {
        return Err(ReleasesError::NotFound {
            url,
            version: version.to_string(),
        });
    }
    let docker = scratch.join("docker");
    let (a, u, v, d) = (
        archive.clone(),
        url.clone(),
        version.to_string(),
        docker.clone(),
    );
    tokio::task::spawn_blocking(move || unpack::docker_folder(&a, &u, &v, &d, &unpack::LIMITS))
        .await
        .map_err(|e| ReleasesError::Http {
            url: url.clone(),
            detail: format!("unpacking stopped: {e}"),
        })??;
    let found = crate::releases::release::Release::read(&docker)
        .map_err(|e| ReleasesError::NotAnArchive {
            url: url.clone(),
            detail: crate::error_chain(&e),
        })?
        .version;
    if found.as_deref() != Some(version) {
        return Err(ReleasesError::WrongVersion {
            url,
            want: version.to_string(),
            found: found.map_or("an api image without a version tag".into(), |f| {
                format!("Dify {f} (its api image's tag)")
            }),
        });
    }
    Ok(docker)
}

/// Scratch of fetches whose process is gone.
fn remove_scratch(root: &Path) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".fetch-")
            .and_then(|r| r.rsplit('-').next())
        else {
            continue;
        };
        let alive = pid
            .parse::<i32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

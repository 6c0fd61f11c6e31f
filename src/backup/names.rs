//! Archive file names, and pruning. `difyctl-<project>-<UTC time>.tar` sorts by time; a backup
//! in progress is `.difyctl-<project>-<time>.tar.partial` (hidden, and never mistaken for a
//! finished one); member names for folders come from their path.

use std::path::{Path, PathBuf};

pub fn archive_name(project: &str, stamp: &str) -> String {
    format!("difyctl-{project}-{stamp}.tar")
}

pub fn partial_name(project: &str, stamp: &str) -> String {
    format!(".difyctl-{project}-{stamp}.tar.partial")
}

/// `path` for `archive_name`, made unique (`-2`, `-3`, ...) when a backup of the same second
/// is already there.
pub fn unique(dir: &Path, project: &str, stamp: &str) -> (PathBuf, PathBuf) {
    let mut n = 1;
    loop {
        let stamp = if n == 1 {
            stamp.to_string()
        } else {
            format!("{stamp}-{n}")
        };
        let done = dir.join(archive_name(project, &stamp));
        let partial = dir.join(partial_name(project, &stamp));
        if !done.exists() && !partial.exists() {
            return (done, partial);
        }
        n += 1;
    }
}

/// The finished archives of `project` in `dir`, oldest first.
pub fn archives(dir: &Path, project: &str) -> Vec<PathBuf> {
    let prefix = format!("difyctl-{project}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&prefix)
                    && n.ends_with(".tar")
                    // Another project whose name starts like this one's: `dify` vs `dify-2`.
                    && is_stamp(&n[prefix.len()..])
            })
        })
        .collect();
    // By time, then by the `-2`, `-3` of backups made in the same second (a plain sort puts
    // `...Z-2.tar` before `...Z.tar`).
    found.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let rest = name.get(prefix.len()..).unwrap_or_default();
        let rest = rest.trim_end_matches(".tar");
        let (stamp, n) = (rest.get(..16).unwrap_or(rest), rest.get(16..).unwrap_or(""));
        let n: u32 = n.trim_start_matches('-').parse().unwrap_or(1);
        (stamp.to_string(), n)
    });
    found
}

/// `20261201T101500Z...`: what follows the project in an archive's name.
fn is_stamp(rest: &str) -> bool {
    let b = rest.as_bytes();
    b.len() >= 16 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'T'
}

/// Removes what killed backups of `project` left (the caller holds the backup lock, so none
/// is in progress).
pub fn remove_partials(dir: &Path, project: &str) {
    let prefix = format!(".difyctl-{project}-");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tar.partial") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Keeps the `keep` newest archives of `project` (after a successful backup); returns those
/// removed.
pub fn prune(dir: &Path, project: &str, keep: usize, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let all = archives(dir, project);
    let excess = all.len().saturating_sub(keep.max(1));
    let mut removed = Vec::new();
    for old in all.into_iter().take(excess) {
        match std::fs::remove_file(&old) {
            Ok(()) => removed.push(old),
            Err(e) => warnings.push(format!(
                "cannot remove the old backup {}: {e}",
                old.display()
            )),
        }
    }
    removed
}

/// The member name of a data folder: `folders/<path>.tar`, its path relative to the install
/// folder when inside it (`folders/volumes/app/storage.tar`), else from the root.
pub fn folder_member(path: &Path, install: &Path) -> String {
    let rel = path.strip_prefix(install).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(crate::fsutil::safe_name(&s.to_string_lossy())),
            _ => None,
        })
        .collect();
    let inside = if path.starts_with(install) {
        ""
    } else {
        "_root/"
    };
    format!("folders/{inside}{}.tar", parts.join("/"))
}

/// The member of a folder's catch-up pass: `folders/x.tar` -> `folders/x.delta.tar`.
pub fn delta_member(member: &str) -> String {
    match member.strip_suffix(".tar") {
        Some(stem) => format!("{stem}.delta.tar"),
        None => format!("{member}.delta"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_members_keep_their_path() {
        let install = Path::new("/opt/dify/docker");
        assert_eq!(
            folder_member(Path::new("/opt/dify/docker/volumes/app/storage"), install),
            "folders/volumes/app/storage.tar"
        );
        assert_eq!(
            folder_member(Path::new("/srv/data/../x"), install),
            "folders/_root/srv/data/x.tar"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_and_leaves_other_projects_alone() {
        let dir = std::env::temp_dir().join(format!("difyctl-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "difyctl-dify-20261101T000000Z.tar",
            "difyctl-dify-20261102T000000Z.tar",
            "difyctl-dify-20261103T000000Z.tar",
            "difyctl-dify-2-20261101T000000Z.tar",
            ".difyctl-dify-20261104T000000Z.tar.partial",
        ] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let removed = prune(&dir, "dify", 2, &mut Vec::new());
        assert_eq!(removed, vec![dir.join("difyctl-dify-20261101T000000Z.tar")]);
        assert!(dir.join("difyctl-dify-2-20261101T000000Z.tar").exists());
        remove_partials(&dir, "dify");
        assert!(!dir
            .join(".difyctl-dify-20261104T000000Z.tar.partial")
            .exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

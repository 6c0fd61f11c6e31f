//! A tar member of an archive, read as hostile input: first `scan`ned whole (every entry's
//! path, kind and size checked, before anything is written), then `write`n into its folder
//! without ever following a link: every folder on the way is checked to be a real folder, every
//! file is opened with O_NOFOLLOW. Paths are plain names below the folder (no absolute paths,
//! no `..`); devices, fifos and sparse entries are refused; setuid and setgid bits are dropped;
//! a hard link must name an earlier file of the same member. Symlinks: under `Links::Inside`
//! (the install folder, difyctl's state) one that leaves the folder is refused; under
//! `Links::Kept` (data folders, whose programs run in containers with their own view of `/`:
//! a plugin's Python venv links to `/usr/local/bin/python3`) they are stored as they are, and
//! this writer never follows them.

use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::backup::archive::{Located, Verified};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Symlinks must stay inside the folder (relative, not climbing out).
    Inside,
    /// Symlinks are kept as data, never followed.
    Kept,
    /// No symlinks at all (difyctl's state).
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{}: member {member}, entry {entry}: {detail}; the archive is refused", archive.display())]
    Refused {
        archive: PathBuf,
        member: String,
        entry: String,
        detail: String,
    },
    #[error("{}: cannot restore it", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One entry as scanned.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub size: u64,
}

/// What a member holds: its entries and the bytes its files declare.
#[derive(Debug, Default)]
pub struct Scanned {
    pub entries: Vec<Entry>,
    pub bytes: u64,
}

fn reader(v: &Verified, member: &Located) -> io::Result<impl Read> {
    let mut file = fs::File::open(&v.path)?;
    file.seek(io::SeekFrom::Start(member.offset))?;
    Ok(io::BufReader::with_capacity(1 << 20, file).take(member.size))
}

/// Checks every entry of `member` against `links`; nothing is written.
pub fn scan(v: &Verified, member: &Located, links: Links) -> Result<Scanned, UnpackError> {
    let io_err = |source| UnpackError::Io {
        path: v.path.clone(),
        source,
    };
    let mut archive = tar::Archive::new(reader(v, member).map_err(io_err)?);
    let mut out = Scanned::default();
    let mut files: Vec<PathBuf> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| refuse(v, member, "(start)", &format!("not a tar stream: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| refuse(v, member, "(next)", &format!("unreadable: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let bad = |detail: &str| refuse(v, member, &raw, detail);
        let rel = plain_path(&raw).ok_or_else(|| bad("an absolute path or `..`"))?;
        let header = entry.header();
        let size = header.entry_size().map_err(|_| bad("no size"))?;
        if size > member.size {
            return Err(bad(&format!(
                "declares {size} bytes, more than its member holds ({})",
                member.size
            )));
        }
        use tar::EntryType as T;
        match header.entry_type() {
            T::Regular | T::Continuous => {
                out.bytes += size;
                files.push(rel.clone());
            }
            T::Directory => {}
            T::Symlink => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or_else(|| bad("a symlink without a target"))?;
                check_symlink(&rel, &target, links).map_err(|d| bad(&d))?;
            }
            T::Link => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .and_then(|t| plain_path(&t.to_string_lossy()))
                    .ok_or_else(|| bad("a hard link to a path outside the folder"))?;
                if !files.contains(&target) {
                    return Err(bad("a hard link to a file not earlier in the member"));
                }
            }
            T::GNUSparse => return Err(bad("a sparse file (declared sizes cannot be checked)")),
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            T::Char | T::Block => return Err(bad("a device file")),
            T::Fifo => return Err(bad("a fifo")),
            other => return Err(bad(&format!("an entry of type {other:?}"))),
        }
        out.entries.push(Entry { path: rel, size });
    }
    Ok(out)
}

/// `a/./b` -> `a/b`; `None` for absolute paths and `..`. The folder's own entry (`./`) is the
/// empty path.
fn plain_path(raw: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn check_symlink(rel: &Path, target: &Path, links: Links) -> Result<(), String> {
    match links {
        Links::Kept => Ok(()),
        Links::Refused => Err("a symlink (difyctl's state has none)".into()),
        Links::Inside => {
            if target.is_absolute() {
                return Err(format!(
                    "a symlink to {}, outside the folder",
                    target.display()
                ));
            }
            // Resolved lexically from the link's own folder, it must not climb out.
            let mut depth = rel.components().count() as i64 - 1;
            for c in target.components() {
                match c {
                    Component::ParentDir => depth -= 1,
                    Component::Normal(_) => depth += 1,
                    _ => {}
                }
                if depth < 0 {
                    return Err(format!(
                        "a symlink to {}, outside the folder",
                        target.display()
                    ));
                }
            }
            Ok(())
        }
    }
}

fn refuse(v: &Verified, member: &Located, entry: &str, detail: &str) -> UnpackError {
    UnpackError::Refused {
        archive: v.path.clone(),
        member: member.name.clone(),
        entry: entry.to_string(),
        detail: detail.to_string(),
    }
}

/// Writes `member` into `dest` (created when missing) after `scan` passed; the paths it
/// created that were not there before (for taking a failed restore back).
pub fn write(
    v: &Verified,
    member: &Located,
    dest: &Path,
    links: Links,
    created: &mut Vec<PathBuf>,
) -> Result<(), UnpackError> {
    scan(v, member, links)?;
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnpackError::Io { path, source }
    };
    real_dir(dest, created).map_err(io_at(dest))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut archive = tar::Archive::new(reader(v, member).map_err(io_at(&v.path))?);
    for entry in archive.entries().map_err(io_at(&v.path))? {
        let mut entry = entry.map_err(io_at(&v.path))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = plain_path(&raw) else {
            continue;
        };
        let target = dest.join(&rel);
        let header = entry.header().clone();
        use tar::EntryType as T;
        match header.entry_type() {
            T::Directory => {
                real_dir(&target, created).map_err(io_at(&target))?;
                set_meta(&target, &header, root, true).map_err(io_at(&target))?;
            }
            T::Regular | T::Continuous => {
                parent_dirs(dest, &rel, created).map_err(io_at(&target))?;
                write_file(&target, &mut entry, &header, created).map_err(io_at(&target))?;
                set_meta(&target, &header, root, false).map_err(io_at(&target))?;
            }
            T::Symlink => {
                parent_dirs(dest, &rel, created).map_err(io_at(&target))?;
                let link = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .into_owned();
                clear_non_dir(&target).map_err(io_at(&target))?;
                std::os::unix::fs::symlink(&link, &target).map_err(io_at(&target))?;
                created.push(target.clone());
                if root {
                    let (uid, gid) = owner(&header);
                    let _ = std::os::unix::fs::lchown(&target, uid, gid);
                }
            }
            T::Link => {
                parent_dirs(dest, &rel, created).map_err(io_at(&target))?;
                let link = entry.link_name().ok().flatten().unwrap_or_default();
                let from = dest.join(plain_path(&link.to_string_lossy()).unwrap_or_default());
                clear_non_dir(&target).map_err(io_at(&target))?;
                fs::hard_link(&from, &target).map_err(io_at(&target))?;
                created.push(target.clone());
            }
            _ => {}
        }
    }
    Ok(())
}

/// `path` is a real folder (made when missing; a symlink or file there is an error).
fn real_dir(path: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file or symlink is where a folder goes (it is not followed)",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                if !parent.as_os_str().is_empty() {
                    real_dir(parent, created)?;
                }
            }
            fs::create_dir(path)?;
            created.push(path.to_path_buf());
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Every folder between `dest` and the entry is a real folder.
fn parent_dirs(dest: &Path, rel: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut at = dest.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        at.push(c);
        real_dir(&at, created)?;
    }
    Ok(())
}

/// Removes a file or symlink at `path` (an older copy); a folder there is an error.
fn clear_non_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a folder is where a file goes",
        )),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

fn write_file(
    target: &Path,
    entry: &mut impl Read,
    header: &tar::Header,
    created: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let existed = fs::symlink_metadata(target).is_ok();
    clear_non_dir(target)?;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(target)?;
    if !existed {
        created.push(target.to_path_buf());
    }
    let size = header.entry_size()?;
    let copied = io::copy(&mut entry.take(size), &mut out)?;
    if copied != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the member ends inside this file",
        ));
    }
    if let Ok(mtime) = header.mtime() {
        let _ = out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
    }
    out.sync_all()
}

fn owner(header: &tar::Header) -> (Option<u32>, Option<u32>) {
    let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok());
    let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok());
    (uid, gid)
}

/// Mode without setuid/setgid, and (as root) the owner the archive recorded.
fn set_meta(path: &Path, header: &tar::Header, root: bool, dir: bool) -> io::Result<()> {
    let mode = header.mode().unwrap_or(if dir { 0o755 } else { 0o644 }) & 0o1777;
    if root {
        let (uid, gid) = owner(header);
        std::os::unix::fs::lchown(path, uid, gid)?;
    }
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || meta.mode() & 0o7777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_links_are_judged_before_anything_is_written() {
        assert_eq!(plain_path("./a/./b"), Some(PathBuf::from("a/b")));
        assert_eq!(plain_path("./"), Some(PathBuf::new()));
        assert_eq!(plain_path("../etc/passwd"), None);
        assert_eq!(plain_path("/etc/passwd"), None);
        assert_eq!(plain_path("a/../../b"), None);
        let inside = |rel: &str, target: &str| {
            check_symlink(Path::new(rel), Path::new(target), Links::Inside).is_ok()
        };
        assert!(inside("a/link", "b"));
        assert!(inside("a/link", "../c"));
        assert!(!inside("a/link", "../../c"));
        assert!(!inside("link", "/etc"));
        assert!(check_symlink(Path::new("x"), Path::new("/usr/bin/python3"), Links::Kept).is_ok());
        assert!(check_symlink(Path::new("x"), Path::new("y"), Links::Refused).is_err());
    }
}

//! Atomic file writes: the only way difyctl writes state, so a crash at any moment leaves the
//! old file or the new one, never a torn mix.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` through a temp file in the same directory: write, fsync, rename,
/// fsync the directory. `mode` applies from creation (0600 for secrets: never world-readable,
/// not even for an instant).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode given at creation is filtered by the umask; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and parents) readable by the owner only, as state directories must be.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    // Every folder made on the way is 0700 too: the state dir made for `<state>/locks` must
    // not come out 0755.
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Creates `dir` (and its parents) 0700 when it is missing; an existing folder (or a symlink
/// to one: another disk) keeps its mode and owner.
pub fn create_dir_private_if_missing(dir: &Path) -> std::io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "it exists and is not a folder",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dir(dir),
        Err(e) => Err(e),
    }
}

/// `text` as one safe path component: anything but ASCII letters, digits, `.` and `-`
/// becomes `_` (so a domain, a URL or a wildcard never escapes its folder).
pub fn safe_name(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // ".." and "." are not names.
    if safe.chars().all(|c| c == '.') {
        safe.replace('.', "_")
    } else {
        safe
    }
}

/// Bytes free for an unprivileged user on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs(2) with a NUL-terminated path and a zeroed out struct.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut fs) } == 0).then(|| fs.f_bavail * fs.f_frsize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_stay_in_their_folder() {
        assert_eq!(safe_name("dify.example.com"), "dify.example.com");
        assert_eq!(safe_name("*.example.com"), "_.example.com");
        assert_eq!(safe_name("localhost:14000/dir"), "localhost_14000_dir");
        assert_eq!(safe_name(".."), "__");
        assert_eq!(safe_name("../etc"), ".._etc");
    }

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = std::env::temp_dir().join(format!("difyctl-fsutil-{}", std::process::id()));
        let path = dir.join("secret.pem");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}

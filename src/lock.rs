//! An exclusive lock held through a file (`flock`): the kernel drops it when the process ends,
//! however it ends, so a killed difyctl never leaves a stale lock behind. The holder's pid is
//! written into the file so the next one can say who has it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is already running (pid {pid}, lock {})", path.display())]
    Held {
        what: String,
        pid: String,
        path: PathBuf,
    },
    #[error("cannot take the lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock at `path` without waiting; `what` names the holder in the error
    /// ("a backup of project docker").
    pub fn try_acquire(path: &Path, what: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::fsutil::create_private_dir(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A symlink planted where the lock goes is not followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        // SAFETY: the descriptor is open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Held {
                what: what.to_string(),
                pid: pid.trim().to_string(),
                path: path.to_path_buf(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Lock { _file: file })
    }
}

/// The lock of reconciles of `project` (`up`, the serving `up`'s repairs, heals).
pub fn project_path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir
        .join("locks")
        .join(format!("{}.lock", crate::fsutil::safe_name(project)))
}

/// Takes the lock at `path`, waiting while another process holds it; `waiting` is called
/// once, with the holder's pid, when it has to wait.
pub async fn acquire(
    path: &Path,
    what: &str,
    waiting: impl FnOnce(&str),
) -> Result<Lock, LockError> {
    let mut waiting = Some(waiting);
    loop {
        match Lock::try_acquire(path, what) {
            Err(LockError::Held { pid, .. }) => {
                if let Some(say) = waiting.take() {
                    say(&pid);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let path = std::env::temp_dir().join(format!("difyctl-lock-{}", std::process::id()));
        let first = Lock::try_acquire(&path, "a backup of project x").unwrap();
        let err = Lock::try_acquire(&path, "a backup of project x").unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        Lock::try_acquire(&path, "a backup of project x").unwrap();
        let _ = std::fs::remove_file(&path);
    }
}

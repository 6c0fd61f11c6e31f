//! Folders on this host as tar streams, and tar streams back into folders. The `tar` crate is
//! synchronous, so each runs in a blocking thread and talks to the async side over a bounded
//! channel of chunks: the data is never held whole in memory. Entries are relative to the
//! folder, whose own entry is `./` (so its mode and owner come back too); modes, owners,
//! times and symlinks are kept; sockets, pipes and devices are left out (they are not data).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const CHUNK: usize = 256 << 10;

/// What a copy saw besides the data.
#[derive(Debug, Default, Clone)]
pub struct TarStats {
    pub files: u64,
    pub bytes: u64,
    /// Sockets, pipes and devices left out.
    pub specials: u64,
    /// Files whose size changed while they were read (a writer that was not paused).
    pub changed: Vec<PathBuf>,
    /// `Mode::Indexed`: every entry as it was when copied, for the catch-up pass.
    pub index: Index,
    /// `Mode::Changed`: entries of the index that are gone now.
    pub removed: Vec<PathBuf>,
}

/// An entry's identity and times: any change to it shows in one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// Relative path -> stamp.
pub type Index = HashMap<PathBuf, Stamp>;

/// What a copy takes.
#[derive(Clone)]
pub enum Mode {
    /// Everything.
    Full,
    /// Everything, remembering each entry's stamp: the first pass of a folder whose writers
    /// keep running; entries that vanish meanwhile are skipped.
    Indexed,
    /// Only what is new or changed since the index (the second pass, writers paused), and
    /// the list of what is gone.
    Changed(Arc<Index>),
}

/// Streams a tar of `root` (a folder, or one file) leaving out `excluded` paths and what is
/// below them. The handle's result says how it went; the stream ends early on an error.
pub fn stream(
    root: PathBuf,
    excluded: Vec<PathBuf>,
    mode: Mode,
) -> (mpsc::Receiver<Bytes>, JoinHandle<io::Result<TarStats>>) {
    let (tx, rx) = mpsc::channel(8);
    let handle = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let stats = write_tar(&root, &excluded, &mode, &mut out)?;
        out.flush()?;
        Ok(stats)
    });
    (rx, handle)
}

/// Whether a change under the walk (an entry gone between listing and reading) is skipped.
fn vanished(e: &io::Error, mode: &Mode) -> bool {
    e.kind() == io::ErrorKind::NotFound && !matches!(mode, Mode::Full)
}

fn write_tar(
    root: &Path,
    excluded: &[PathBuf],
    mode: &Mode,
    out: &mut ChannelWriter,
) -> io::Result<TarStats> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut stats = TarStats::default();
    let mut visited: HashSet<PathBuf> = HashSet::new();
    let meta = fs::symlink_metadata(root).map_err(|e| at(root, e))?;
    if meta.is_file() {
        let name = root.file_name().map_or("file".into(), PathBuf::from);
        append_file(&mut builder, root, &name, &meta, &mut stats)?;
        builder.into_inner()?;
        return Ok(stats);
    }
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    builder
        .append_data(&mut header, "./", io::empty())
        .map_err(|e| at(root, e))?;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let listed = fs::read_dir(&dir).and_then(|d| d.collect::<Result<Vec<_>, _>>());
        let mut entries = match listed {
            Ok(entries) => entries,
            Err(e) if vanished(&e, mode) => continue,
            Err(e) => return Err(at(&dir, e)),
        };
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            if excluded.iter().any(|x| path.starts_with(x)) {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if vanished(&e, mode) => continue,
                Err(e) => return Err(at(&path, e)),
            };
            let kind = meta.file_type();
            let stamp = Stamp::of(&meta);
            let take = match mode {
                Mode::Full => true,
                Mode::Indexed => {
                    stats.index.insert(rel.clone(), stamp);
                    true
                }
                Mode::Changed(index) => {
                    visited.insert(rel.clone());
                    // A folder's own stamp changes with every file added or removed in it;
                    // only a new folder needs its entry again.
                    if kind.is_dir() {
                        !index.contains_key(&rel)
                    } else {
                        index.get(&rel) != Some(&stamp)
                    }
                }
            };
            let mut header = tar::Header::new_gnu();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            if kind.is_dir() {
                if take {
                    builder
                        .append_data(&mut header, &rel, io::empty())
                        .map_err(|e| at(&path, e))?;
                }
                pending.push(path);
            } else if !take {
            } else if kind.is_symlink() {
                let target = match fs::read_link(&path) {
                    Ok(t) => t,
                    Err(e) if vanished(&e, mode) => continue,
                    Err(e) => return Err(at(&path, e)),
                };
                builder
                    .append_link(&mut header, &rel, &target)
                    .map_err(|e| at(&path, e))?;
            } else if kind.is_file() {
                match append_file(&mut builder, &path, &rel, &meta, &mut stats) {
                    Err(e) if vanished(&e, mode) => {}
                    other => other?,
                }
            } else if kind.is_socket()
                || kind.is_fifo()
                || kind.is_block_device()
                || kind.is_char_device()
            {
                stats.specials += 1;
            }
        }
    }
    builder.into_inner()?;
    if let Mode::Changed(index) = mode {
        stats.removed = index
            .keys()
            .filter(|k| !visited.contains(*k))
            .cloned()
            .collect();
        stats.removed.sort();
    }
    Ok(stats)
}

/// One file, exactly as long as its header says even when a writer changes it meanwhile
/// (cut, or padded with zeros), so the tar stays readable; the change is reported.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    rel: &Path,
    meta: &fs::Metadata,
    stats: &mut TarStats,
) -> io::Result<()> {
    // NotFound passes through unwrapped: a file that vanished may be skipped by the caller.
    let file = fs::File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            e
        } else {
            at(path, e)
        }
    })?;
    let size = meta.len();
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    let mut exact = Exact {
        inner: file.take(size),
        left: size,
        short: false,
    };
    builder
        .append_data(&mut header, rel, &mut exact)
        .map_err(|e| at(path, e))?;
    let grew = fs::symlink_metadata(path).is_ok_and(|m| m.len() != size);
    if exact.short || grew {
        stats.changed.push(path.to_path_buf());
    }
    stats.files += 1;
    stats.bytes += size;
    Ok(())
}

/// Reads exactly `left` bytes: the inner reader's, then zeros if it ends early.
struct Exact<R> {
    inner: R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The blocking side of a chunk channel, as `Write`.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the archive writer stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(root: &Path, mode: Mode) -> (Vec<u8>, TarStats) {
        let (mut rx, handle) = stream(root.to_path_buf(), Vec::new(), mode);
        let mut tar = Vec::new();
        while let Some(chunk) = rx.recv().await {
            tar.extend_from_slice(&chunk);
        }
        (tar, handle.await.unwrap().unwrap())
    }

    /// The names of a tar's entries, and the text of its files.
    fn entries(tar: &[u8]) -> Vec<(String, String)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut text = String::new();
                let _ = e.read_to_string(&mut text);
                (name, text)
            })
            .collect()
    }

    /// The two passes of a folder whose writer keeps running: the catch-up holds exactly what
    /// changed, and lists what is gone.
    #[tokio::test]
    async fn catch_up_pass_holds_what_changed_and_lists_what_went() {
        let base = std::env::temp_dir().join(format!("difyctl-hosttar-{}", std::process::id()));
        let src = base.join("src");
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(src.join("sub")).unwrap();
        for (name, text) in [("a", "one"), ("b", "two"), ("sub/c", "three")] {
            fs::write(src.join(name), text).unwrap();
        }
        let (first, stats) = collect(&src, Mode::Indexed).await;
        assert_eq!(stats.index.len(), 4);
        let names: Vec<String> = entries(&first).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["./", "a", "b", "sub", "sub/c"]);
        // Meanwhile the service writes: a changes, b goes, a new folder and file appear.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(src.join("a"), "one, edited").unwrap();
        fs::remove_file(src.join("b")).unwrap();
        fs::create_dir_all(src.join("new")).unwrap();
        fs::write(src.join("new/d"), "four").unwrap();
        let (second, delta) = collect(&src, Mode::Changed(Arc::new(stats.index))).await;
        assert_eq!(delta.files, 2, "only a and new/d are copied again");
        assert_eq!(delta.removed, vec![PathBuf::from("b")]);
        let second = entries(&second);
        assert!(
            second.contains(&("a".to_string(), "one, edited".to_string())),
            "{second:?}"
        );
        assert!(
            second.contains(&("new/d".to_string(), "four".to_string())),
            "{second:?}"
        );
        assert!(
            !second.iter().any(|(n, _)| n == "sub/c"),
            "unchanged: not again"
        );
        fs::remove_dir_all(&base).unwrap();
    }
}

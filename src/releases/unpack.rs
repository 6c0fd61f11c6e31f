//! A release archive read as hostile input. Only `dify-{V}/docker/` is kept (GitHub's tag
//! archive holds the whole repository); every member must sit under the one top folder
//! `dify-{V}/` (another top folder: another release, refused); paths are plain names (no
//! `..`, no absolute paths); links, devices and fifos under `docker/` are refused; modes are
//! 0644 or 0755 (no setuid); the files kept, the bytes read and the members are bounded.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::ReleasesError;

/// Bounds on what one archive may hold.
pub struct Limits {
    /// Bytes of the whole decompressed tar stream (a gzip bomb stops here).
    pub stream: u64,
    /// Bytes kept under `docker/`, in all.
    pub kept: u64,
    /// Bytes of one kept file.
    pub file: u64,
    /// Members of the archive.
    pub members: usize,
}

pub const LIMITS: Limits = Limits {
    stream: 4 << 30,
    kept: 64 << 20,
    file: 16 << 20,
    members: 200_000,
};

/// Writes the `docker/` folder of `archive` (Dify `version`'s tag archive) into `into`
/// (which must not exist); returns the number of files written. `url` names the archive in
/// errors.
pub fn docker_folder(
    archive: &Path,
    url: &str,
    version: &str,
    into: &Path,
    limits: &Limits,
) -> Result<usize, ReleasesError> {
    let file =
        std::fs::File::open(archive).map_err(ReleasesError::io(archive, "cannot read it"))?;
    let not_archive = |detail: String| ReleasesError::NotAnArchive {
        url: url.to_string(),
        detail,
    };
    let mut magic = [0u8; 2];
    (&file)
        .take(2)
        .read_exact(&mut magic)
        .map_err(|_| not_archive("empty".into()))?;
    if magic != [0x1f, 0x8b] {
        return Err(not_archive(
            "not gzip-compressed (a tag archive is a .tar.gz)".into(),
        ));
    }
    let file =
        std::fs::File::open(archive).map_err(ReleasesError::io(archive, "cannot read it"))?;
    let stream = flate2::read::GzDecoder::new(file).take(limits.stream);
    let mut tar = tar::Archive::new(stream);
    let top = format!("dify-{version}");
    std::fs::create_dir_all(into).map_err(ReleasesError::io(into, "cannot create it"))?;
    let mut state = State {
        url,
        top: &top,
        into,
        limits,
        kept: 0,
        files: 0,
    };
    let entries = tar
        .entries()
        .map_err(|e| not_archive(format!("not a tar archive: {e}")))?;
    for (n, entry) in entries.enumerate() {
        if n >= limits.members {
            return Err(not_archive(format!("more than {} members", limits.members)));
        }
        let entry = entry
            .map_err(|e| not_archive(format!("truncated or damaged after {n} members ({e})")))?;
        state.member(entry)?;
    }
    if !into.join("docker-compose.yaml").is_file() {
        return Err(not_archive(format!(
            "no {top}/docker/docker-compose.yaml in it"
        )));
    }
    Ok(state.files)
}

struct State<'a> {
    url: &'a str,
    top: &'a str,
    into: &'a Path,
    limits: &'a Limits,
    kept: u64,
    files: usize,
}

impl State<'_> {
    fn member<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ReleasesError> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let url = self.url;
        let refuse = |detail: &str| ReleasesError::Member {
            url: url.to_string(),
            member: raw.clone(),
            detail: detail.to_string(),
        };
        let path = PathBuf::from(&raw);
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(refuse("an absolute path or `..`")),
            }
        }
        match parts.first() {
            Some(first) if first == self.top => {}
            Some(first) => {
                return Err(ReleasesError::WrongVersion {
                    url: self.url.to_string(),
                    want: self.top.trim_start_matches("dify-").to_string(),
                    found: format!("the folder {first}/"),
                })
            }
            None => return Ok(()),
        }
        if parts.get(1).map(String::as_str) != Some("docker") || parts.len() < 3 {
            return Ok(());
        }
        let rel: PathBuf = parts[2..].iter().collect();
        let target = self.into.join(&rel);
        match kind {
            T::Directory => std::fs::create_dir_all(&target)
                .map_err(ReleasesError::io(&target, "cannot create it")),
            T::Regular | T::Continuous => self.file(&mut entry, &target, &refuse),
            _ => Err(refuse("a link or special file in docker/")),
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        target: &Path,
        refuse: &dyn Fn(&str) -> ReleasesError,
    ) -> Result<(), ReleasesError> {
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > self.limits.file {
            return Err(refuse(&format!("larger than {} bytes", self.limits.file)));
        }
        self.kept += size;
        if self.kept > self.limits.kept {
            return Err(refuse(&format!(
                "docker/ holds more than {} bytes",
                self.limits.kept
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .take(self.limits.file + 1)
            .read_to_end(&mut data)
            .map_err(|e| {
                refuse(&format!(
                    "unreadable, the archive is truncated or damaged ({e})"
                ))
            })?;
        if data.len() as u64 != size {
            return Err(refuse("shorter or longer than its header says"));
        }
        let executable = entry.header().mode().unwrap_or(0) & 0o111 != 0;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(ReleasesError::io(parent, "cannot create it"))?;
        }
        crate::fsutil::write_atomic(target, &data, if executable { 0o755 } else { 0o644 })
            .map_err(ReleasesError::io(target, "cannot write it"))?;
        self.files += 1;
        Ok(())
    }
}

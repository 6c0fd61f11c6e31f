//! The archive file: a plain POSIX tar (readable with `tar tf`), one member per part of the
//! backup, `manifest.json` last. Members stream in (a database dump has no length until it
//! ends), so each member's header is written as a placeholder, the data follows, and the
//! header is rewritten in place once the size is known. A SHA-256 of every member is taken on
//! the way in; `verify` reads the whole file back and checks each member against the manifest.
//! Sizes past tar's 8 GiB octal field use GNU's base-256 form, as GNU tar and the `tar` crate
//! read it.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{Context, SHA256};
use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};

use super::manifest::{Manifest, FORMAT};

const BLOCK: u64 = 512;
pub const MANIFEST: &str = "manifest.json";
/// The signature of the manifest's bytes (`key::Signature`), the archive's last member.
pub const SIGNATURE: &str = "manifest.sig";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a difyctl backup: {detail}", path.display())]
    NotBackup { path: PathBuf, detail: String },
    #[error("{}: truncated: it ends inside member {member} (the backup was not complete)", path.display())]
    Truncated { path: PathBuf, member: String },
    #[error("{}: member {member} is damaged: its SHA-256 is {actual}, the manifest says {expected}", path.display())]
    Checksum {
        path: PathBuf,
        member: String,
        expected: String,
        actual: String,
    },
    #[error("{}: member {member}: {detail}", path.display())]
    Member {
        path: PathBuf,
        member: String,
        detail: String,
    },
    #[error("{}: made by a newer difyctl ({made_by}, archive format {format}); this difyctl reads format {FORMAT}: install a newer difyctl to restore it", path.display())]
    Newer {
        path: PathBuf,
        format: u32,
        made_by: String,
    },
}

/// A finished member: its name, length and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSum {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Writes an archive. Nothing it writes counts until `finish` (the caller renames the file).
pub struct ArchiveWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written so far (the end of the last complete block).
    pos: u64,
    open: Option<Open>,
}

struct Open {
    name: String,
    mode: u32,
    header_at: u64,
    size: u64,
    hash: Context,
}

impl ArchiveWriter {
    /// Creates `path` (which must not exist), 0600: a backup holds every secret of the install.
    pub async fn create(path: &Path) -> Result<ArchiveWriter, ArchiveError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .await
            .map_err(io(path, "cannot create the archive"))?;
        Ok(ArchiveWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            open: None,
        })
    }

    /// Starts member `name` (mode 0600 unless the data says otherwise, see `begin_mode`).
    pub async fn begin(&mut self, name: &str) -> Result<(), ArchiveError> {
        self.begin_mode(name, 0o600).await
    }

    pub async fn begin_mode(&mut self, name: &str, mode: u32) -> Result<(), ArchiveError> {
        debug_assert!(self.open.is_none(), "a member is already open");
        self.out
            .write_all(&[0u8; BLOCK as usize])
            .await
            .map_err(io(&self.path, &format!("cannot write member {name}")))?;
        self.open = Some(Open {
            name: name.to_string(),
            mode,
            header_at: self.pos,
            size: 0,
            hash: Context::new(&SHA256),
        });
        self.pos += BLOCK;
        Ok(())
    }

    /// Appends to the open member.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        open.size += data.len() as u64;
        open.hash.update(data);
        let name = open.name.clone();
        self.out
            .write_all(data)
            .await
            .map_err(io(&self.path, &format!("cannot write member {name}")))
    }

    /// Ends the open member: pads it to a block and writes its real header.
    pub async fn end(&mut self) -> Result<MemberSum, ArchiveError> {
        let Some(open) = self.open.take() else {
            return Err(ArchiveError::Member {
                path: self.path.clone(),
                member: String::new(),
                detail: "no member is open".into(),
            });
        };
        let err = io(&self.path, &format!("cannot write member {}", open.name));
        let pad = (BLOCK - open.size % BLOCK) % BLOCK;
        self.out
            .write_all(&vec![0u8; pad as usize])
            .await
            .map_err(&err)?;
        let header =
            header(&open.name, open.mode, open.size).map_err(|detail| ArchiveError::Member {
                path: self.path.clone(),
                member: open.name.clone(),
                detail,
            })?;
        let end = self.pos + open.size + pad;
        self.out
            .seek(SeekFrom::Start(open.header_at))
            .await
            .map_err(&err)?;
        self.out.write_all(&header).await.map_err(&err)?;
        self.out.seek(SeekFrom::Start(end)).await.map_err(&err)?;
        self.pos = end;
        Ok(MemberSum {
            name: open.name,
            size: open.size,
            sha256: hex(open.hash.finish().as_ref()),
        })
    }

    /// A whole member from bytes in memory (the manifest, small files).
    pub async fn add(&mut self, name: &str, data: &[u8]) -> Result<MemberSum, ArchiveError> {
        self.begin(name).await?;
        self.write(data).await?;
        self.end().await
    }

    /// Writes the end-of-archive blocks and fsyncs. The caller renames the file into place.
    pub async fn finish(mut self) -> Result<(), ArchiveError> {
        let err = io(&self.path, "cannot finish the archive");
        self.out
            .write_all(&[0u8; 2 * BLOCK as usize])
            .await
            .map_err(&err)?;
        self.out.flush().await.map_err(&err)?;
        self.out.get_mut().sync_all().await.map_err(&err)
    }
}

/// Where a verified member sits in the file.
#[derive(Debug, Clone)]
pub struct Located {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// A verified archive: its manifest and where each member is.
#[derive(Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub members: Vec<Located>,
    /// Who signed the manifest, and whether the signature holds (`None`: unsigned).
    pub signed: Option<(super::key::PublicKey, bool)>,
}

impl Verified {
    pub fn member(&self, name: &str) -> Option<&Located> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The member's bytes, read from the file as needed.
    pub async fn open(&self, member: &Located) -> Result<impl AsyncRead + Unpin, ArchiveError> {
        let err = io(&self.path, &format!("cannot read member {}", member.name));
        let mut file = File::open(&self.path).await.map_err(&err)?;
        file.seek(SeekFrom::Start(member.offset))
            .await
            .map_err(&err)?;
        Ok(BufReader::with_capacity(1 << 20, file).take(member.size))
    }
}

/// Reads the whole archive: every member's SHA-256 against the manifest, every manifest entry
/// present, nothing else in the file, and the manifest's signature. Nothing is trusted before
/// this (and only what the signature vouches for after it).
pub async fn verify(path: &Path) -> Result<Verified, ArchiveError> {
    let file = File::open(path)
        .await
        .map_err(io(path, "cannot open the archive"))?;
    let head = first_bytes(path)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut sums = Vec::new();
    let mut located = Vec::new();
    let (mut manifest_bytes, mut signature_bytes) = (None, None);
    let mut pos = 0u64;
    loop {
        let mut block = [0u8; BLOCK as usize];
        let last = sums
            .last()
            .map_or("the start", |s: &MemberSum| s.name.as_str());
        match reader.read_exact(&mut block).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                if pos == 0 {
                    return Err(not_backup(path, looks_like(&head)));
                }
                return Err(ArchiveError::Truncated {
                    path: path.to_path_buf(),
                    member: format!("(after {last})"),
                });
            }
            Err(e) => return Err(io(path, "cannot read the archive")(e)),
        }
        pos += BLOCK;
        if block.iter().all(|b| *b == 0) {
            break;
        }
        let (name, size) = parse_header(&block).map_err(|detail| {
            let what = if pos == BLOCK {
                looks_like(&head)
            } else {
                format!("bad tar header at byte {}: {detail}", pos - BLOCK)
            };
            not_backup(path, what)
        })?;
        let keep = name == MANIFEST || name == SIGNATURE;
        let (sum, kept) = read_member(&mut reader, path, &name, size, keep).await?;
        located.push(Located {
            name: name.clone(),
            offset: pos,
            size,
        });
        pos += size + (BLOCK - size % BLOCK) % BLOCK;
        match name.as_str() {
            MANIFEST if manifest_bytes.is_none() => manifest_bytes = Some(kept),
            SIGNATURE if manifest_bytes.is_some() && signature_bytes.is_none() => {
                signature_bytes = Some(kept)
            }
            _ if manifest_bytes.is_some() => {
                return Err(not_backup(
                    path,
                    format!("member {name} comes after the manifest"),
                ));
            }
            _ => {}
        }
        sums.push(sum);
    }
    let Some(manifest_raw) = manifest_bytes else {
        return Err(not_backup(
            path,
            "a tar archive, but without manifest.json: not one difyctl wrote".into(),
        ));
    };
    let manifest = Manifest::parse(&manifest_raw)
        .map_err(|detail| not_backup(path, format!("manifest.json: {detail}")))?;
    if manifest.format > FORMAT {
        return Err(ArchiveError::Newer {
            path: path.to_path_buf(),
            format: manifest.format,
            made_by: format!("difyctl {}", manifest.difyctl_version),
        });
    }
    check_sums(path, &manifest, &sums)?;
    let signed = signature_bytes.map(|raw| {
        serde_json::from_slice::<super::key::Signature>(&raw)
            .ok()
            .and_then(|sig| super::key::check(&manifest_raw, &sig))
            .unwrap_or((super::key::PublicKey([0; 32]), false))
    });
    located.retain(|m| m.name != MANIFEST && m.name != SIGNATURE);
    Ok(Verified {
        path: path.to_path_buf(),
        manifest,
        members: located,
        signed,
    })
}

/// One member's bytes read through a SHA-256 (kept in memory when `keep`, up to 16 MiB), and
/// its padding.
async fn read_member<R: AsyncRead + Unpin>(
    reader: &mut R,
    path: &Path,
    name: &str,
    size: u64,
    keep: bool,
) -> Result<(MemberSum, Vec<u8>), ArchiveError> {
    let truncated = || ArchiveError::Truncated {
        path: path.to_path_buf(),
        member: name.to_string(),
    };
    if keep && size > 16 << 20 {
        return Err(not_backup(
            path,
            format!("{name} is {size} bytes, far more than a manifest"),
        ));
    }
    let mut hash = Context::new(&SHA256);
    let mut buf = vec![0u8; (1 << 20).min(size.max(1) as usize)];
    let (mut left, mut kept) = (size, Vec::new());
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        match reader.read_exact(&mut buf[..n]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(truncated()),
            Err(e) => return Err(io(path, "cannot read the archive")(e)),
        }
        hash.update(&buf[..n]);
        if keep {
            kept.extend_from_slice(&buf[..n]);
        }
        left -= n as u64;
    }
    let mut padding = vec![0u8; ((BLOCK - size % BLOCK) % BLOCK) as usize];
    reader
        .read_exact(&mut padding)
        .await
        .map_err(|_| truncated())?;
    let sum = MemberSum {
        name: name.to_string(),
        size,
        sha256: hex(hash.finish().as_ref()),
    };
    Ok((sum, kept))
}

fn not_backup(path: &Path, detail: String) -> ArchiveError {
    ArchiveError::NotBackup {
        path: path.to_path_buf(),
        detail,
    }
}

/// The file's first 512 bytes (fewer when it is shorter).
fn first_bytes(path: &Path) -> Result<Vec<u8>, ArchiveError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(io(path, "cannot open the archive"))?;
    let mut head = Vec::with_capacity(BLOCK as usize);
    file.take(BLOCK)
        .read_to_end(&mut head)
        .map_err(io(path, "cannot read the archive"))?;
    Ok(head)
}

/// What a file that is not a difyctl archive looks like, from its first bytes.
fn looks_like(head: &[u8]) -> String {
    let what = if head.iter().all(|b| *b == 0) {
        "it is empty (or starts with nothing but zeros)"
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "it is gzip-compressed (difyctl archives are plain tar files: a .tar.gz is not one)"
    } else if head.starts_with(b"BZh") {
        "it is bzip2-compressed"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        "it is xz-compressed"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "it is zstd-compressed"
    } else if head.starts_with(b"age-encryption.org/") {
        "it is age-encrypted"
    } else if head.len() > 262 && &head[257..262] == b"ustar" {
        "it is a tar archive, but not one difyctl wrote (its first member is not a file)"
    } else if head
        .iter()
        .take(64)
        .all(|b| b.is_ascii() && (*b >= 0x20 || b"\n\r\t".contains(b)))
    {
        "it is text"
    } else {
        "it is not a tar archive"
    };
    what.to_string()
}

/// Every part the manifest lists is in the file with its size and hash; nothing else is.
fn check_sums(path: &Path, manifest: &Manifest, sums: &[MemberSum]) -> Result<(), ArchiveError> {
    for part in &manifest.parts {
        let Some(found) = sums.iter().find(|s| s.name == part.name) else {
            return Err(ArchiveError::Member {
                path: path.to_path_buf(),
                member: part.name.clone(),
                detail: "listed in the manifest but not in the archive".into(),
            });
        };
        if found.sha256 != part.sha256 || found.size != part.size {
            return Err(ArchiveError::Checksum {
                path: path.to_path_buf(),
                member: part.name.clone(),
                expected: format!("{} ({} bytes)", part.sha256, part.size),
                actual: format!("{} ({} bytes)", found.sha256, found.size),
            });
        }
    }
    if let Some(extra) = sums.iter().find(|s| {
        s.name != MANIFEST
            && s.name != SIGNATURE
            && !manifest.parts.iter().any(|p| p.name == s.name)
    }) {
        return Err(ArchiveError::Member {
            path: path.to_path_buf(),
            member: extra.name.clone(),
            detail: "in the archive but not in the manifest".into(),
        });
    }
    Ok(())
}

/// A ustar header for a regular file. Names up to 100 bytes go in `name`; longer ones are split
/// at a `/` into `prefix` (155) and `name` (100).
fn header(name: &str, mode: u32, size: u64) -> Result<[u8; 512], String> {
    let mut h = [0u8; 512];
    let bytes = name.as_bytes();
    if bytes.len() <= 100 {
        h[..bytes.len()].copy_from_slice(bytes);
    } else {
        let split = (0..bytes.len())
            .rev()
            .find(|&i| bytes[i] == b'/' && i <= 155 && bytes.len() - i - 1 <= 100)
            .ok_or_else(|| format!("name `{name}` is too long for a tar header"))?;
        h[345..345 + split].copy_from_slice(&bytes[..split]);
        h[..bytes.len() - split - 1].copy_from_slice(&bytes[split + 1..]);
    }
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size < 8u64.pow(11) {
        octal(&mut h[124..136], size);
    } else {
        // GNU base-256: high bit set, big-endian value in the rest of the field.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    Ok(h)
}

/// Name and size of a member, with the header checksum checked.
fn parse_header(h: &[u8; 512]) -> Result<(String, u64), String> {
    let stored = field_str(&h[148..156]);
    let stored = u32::from_str_radix(stored.trim(), 8).map_err(|_| "no checksum".to_string())?;
    let sum: u32 = h[..148]
        .iter()
        .chain(&[b' '; 8])
        .chain(&h[156..])
        .map(|b| u32::from(*b))
        .sum();
    if sum != stored {
        return Err("header checksum mismatch".into());
    }
    if h[156] != b'0' && h[156] != 0 {
        return Err(format!("member type `{}` is not a file", h[156] as char));
    }
    let name = field_str(&h[..100]);
    let prefix = field_str(&h[345..500]);
    let name = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    let size = if h[124] & 0x80 != 0 {
        let mut be = [0u8; 8];
        be.copy_from_slice(&h[128..136]);
        u64::from_be_bytes(be)
    } else {
        u64::from_str_radix(field_str(&h[124..136]).trim(), 8)
            .map_err(|_| "bad size field".to_string())?
    };
    Ok((name, size))
}

fn field_str(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io(path: &Path, action: &str) -> impl Fn(std::io::Error) -> ArchiveError {
    let (path, action) = (path.to_path_buf(), action.to_string());
    move |source| ArchiveError::Io {
        path: path.clone(),
        action: action.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_long_names_and_huge_sizes() {
        let long = format!("volumes/{}/{}.tar", "p".repeat(90), "v".repeat(90));
        for (name, size) in [
            ("manifest.json", 10u64),
            (long.as_str(), 9 << 30),
            ("install.tar", 0),
        ] {
            let h = header(name, 0o600, size).unwrap();
            assert_eq!(parse_header(&h).unwrap(), (name.to_string(), size));
        }
        assert!(header(&"x".repeat(300), 0o600, 1).is_err());
    }

    #[test]
    fn a_damaged_header_is_refused() {
        let mut h = header("install.tar", 0o600, 5).unwrap();
        h[0] = b'j';
        assert!(parse_header(&h).unwrap_err().contains("checksum"));
    }
}

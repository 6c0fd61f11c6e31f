//! Every path an archive names, resolved inside its target before anything is written: the
//! compose files and member names are plain relative paths; a data folder is a plain path
//! inside the install folder, or (only for a trusted archive, or one a person accepted after
//! seeing the risks) a host folder the archive's own stack bind-mounts; what a catch-up pass
//! removed is a plain path below its folder; a volume is one of the restored project's own (an
//! external one only when trusted or accepted); a database belongs to a database service of
//! the stack; difyctl.toml goes to the target's own place. Every tar member is scanned
//! (`unpack::scan`) and the bytes they declare must fit the free space.

use std::path::{Component, Path, PathBuf};

use super::unpack::{self, Links};
use super::RestoreError;
use crate::backup::archive::Verified;
use crate::backup::manifest::{Manifest, PartKind};
use crate::backup::plan;
use crate::stack::model::Stack;
use crate::stack::mounts::Source;

fn refuse(v: &Verified, member: &str, detail: String) -> RestoreError {
    RestoreError::Refused {
        archive: v.path.clone(),
        member: member.to_string(),
        detail,
    }
}

/// Whether `p` is a plain relative path (normal components only, at least one).
pub fn is_plain(p: &Path) -> bool {
    p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The manifest's own fields, before the stack is known: compose files and member names.
pub fn manifest(v: &Verified) -> Result<(), RestoreError> {
    let m: &Manifest = &v.manifest;
    for f in &m.compose_files {
        if !is_plain(Path::new(f)) {
            return Err(refuse(
                v,
                "manifest.json",
                format!("compose file `{f}` is not a path inside the install folder"),
            ));
        }
    }
    for part in &m.parts {
        if !is_plain(Path::new(&part.name)) {
            return Err(refuse(
                v,
                &part.name,
                "its name is not a plain relative path".into(),
            ));
        }
        if let PartKind::FolderDelta { removed, .. } = &part.kind {
            if let Some(bad) = removed.iter().find(|r| !is_plain(r)) {
                return Err(refuse(
                    v,
                    &part.name,
                    format!(
                        "its list of removed files names `{}`, outside its folder",
                        bad.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The members read before the stack is known, scanned with their rules.
pub fn early_members(v: &Verified) -> Result<(), RestoreError> {
    for part in &v.manifest.parts {
        let links = match part.kind {
            PartKind::Install => Links::Inside,
            PartKind::State | PartKind::Config { .. } => Links::Refused,
            _ => continue,
        };
        if let Some(member) = v.member(&part.name) {
            unpack::scan(v, member, links)?;
        }
    }
    Ok(())
}

/// Where a data folder goes: inside the install folder, or a host folder the stack mounts
/// (`outside_ok`: the archive is trusted, or a person accepted its risks).
pub fn folder(
    v: &Verified,
    stack: &Stack,
    member: &str,
    path: &Path,
    outside_ok: bool,
) -> Result<PathBuf, RestoreError> {
    if is_plain(path) {
        return Ok(stack.dir.join(path));
    }
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refuse(
            v,
            member,
            format!(
                "folder `{}` is not inside the install folder",
                path.display()
            ),
        ));
    }
    let mounted = stack
        .services
        .iter()
        .flat_map(|s| &s.mounts)
        .any(|m| m.source == Source::Bind(path.to_path_buf()));
    if !mounted {
        return Err(refuse(v, member, format!("folder {} is outside the install folder and no service of the archive's stack mounts it", path.display())));
    }
    if !outside_ok {
        return Err(refuse(v, member, format!("folder {} is outside the install folder: only an archive signed by a trusted key, or one restored with --untrusted after its risks were shown, may fill it", path.display())));
    }
    Ok(path.to_path_buf())
}

/// The Docker name of the volume a part fills: the restored project's own.
pub fn volume(
    v: &Verified,
    stack: &Stack,
    member: &str,
    key: &str,
    outside_ok: bool,
) -> Result<String, RestoreError> {
    let Some(spec) = stack.volume(key) else {
        return Err(refuse(
            v,
            member,
            format!("volume key `{key}` is not a volume of the archive's stack"),
        ));
    };
    if spec.external && !outside_ok {
        return Err(refuse(
            v,
            member,
            format!(
                "volume {} is external (not the project's own): only a trusted archive may fill it",
                spec.docker_name
            ),
        ));
    }
    Ok(spec.docker_name.clone())
}

/// Every part checked against the stack and every tar member scanned; the bytes they declare.
pub fn parts(v: &Verified, stack: &Stack, outside_ok: bool) -> Result<u64, RestoreError> {
    let servers = plan::plan(stack, &[]).databases;
    let mut bytes = 0u64;
    for part in &v.manifest.parts {
        let links = match &part.kind {
            PartKind::Folder { path, .. } | PartKind::FolderDelta { path, .. } => {
                folder(v, stack, &part.name, path, outside_ok)?;
                Links::Kept
            }
            PartKind::Volume { key, .. } => {
                volume(v, stack, &part.name, key, outside_ok)?;
                Links::Kept
            }
            PartKind::PostgresDatabase { service, .. }
            | PartKind::PostgresGlobals { service }
            | PartKind::MysqlDatabase { service, .. } => {
                if !servers.iter().any(|d| &d.service == service) {
                    return Err(refuse(
                        v,
                        &part.name,
                        format!(
                            "service {service} is not a database server of the archive's stack"
                        ),
                    ));
                }
                if matches!(part.kind, PartKind::MysqlDatabase { .. }) {
                    if let Some(member) = v.member(&part.name) {
                        mysql_dump(v, member)?;
                    }
                }
                bytes += part.size;
                continue;
            }
            PartKind::Install => Links::Inside,
            PartKind::State | PartKind::Config { .. } => Links::Refused,
        };
        if let Some(member) = v.member(&part.name) {
            bytes += unpack::scan(v, member, links)?.bytes;
        }
    }
    Ok(bytes)
}

/// A MySQL dump is fed to the `mysql` client, which also obeys its own commands (`\!` runs
/// a shell, `source` reads a file): mysqldump never writes them, so a dump that has one at the
/// start of a line is refused.
fn mysql_dump(v: &Verified, member: &crate::backup::archive::Located) -> Result<(), RestoreError> {
    use std::io::{BufRead, Read, Seek};
    let io = |source| RestoreError::Io {
        path: v.path.clone(),
        action: format!("cannot read member {}", member.name),
        source,
    };
    let mut file = std::fs::File::open(&v.path).map_err(io)?;
    file.seek(std::io::SeekFrom::Start(member.offset))
        .map_err(io)?;
    let mut reader = std::io::BufReader::new(file.take(member.size));
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            return Ok(());
        }
        number += 1;
        let start: Vec<u8> = line
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take(8)
            .map(u8::to_ascii_lowercase)
            .collect();
        if start.starts_with(b"\\")
            || start.starts_with(b"system ")
            || start.starts_with(b"source ")
        {
            return Err(refuse(
                v,
                &member.name,
                format!("line {number} is a command of the mysql client, not SQL"),
            ));
        }
    }
}

/// The restore needs `bytes` at `dir`: refused when the disk has less free.
pub fn room(dir: &Path, bytes: u64) -> Result<(), RestoreError> {
    let at = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let Some(free) = crate::fsutil::free_bytes(at) else {
        return Ok(());
    };
    if bytes > free {
        return Err(RestoreError::NoRoom {
            dir: at.to_path_buf(),
            need: bytes,
            free,
        });
    }
    Ok(())
}

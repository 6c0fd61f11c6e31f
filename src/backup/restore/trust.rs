//! Whose archive this is. An archive is believed when its manifest (which holds every member's
//! SHA-256) is signed by this install's backup key or by a key given with `--trust`. Anything
//! else (unsigned, signed by another key, a signature that does not match) needs `--untrusted`,
//! and then what the archive's compose would do to this host is shown before anything
//! changes: the `risks`.

use std::path::Path;

use crate::backup::archive::Verified;
use crate::backup::key::{BackupKey, PublicKey};
use crate::stack::model::Stack;
use crate::stack::mounts::Source;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Signed by this install's key.
    Local,
    /// Signed by a key given with `--trust`.
    Given(PublicKey),
    /// Not believed, and why.
    Untrusted(String),
}

impl Trust {
    pub fn trusted(&self) -> bool {
        !matches!(self, Trust::Untrusted(_))
    }
}

/// Judges the archive's signature against the state dir's key and `given`.
pub fn decide(v: &Verified, state_dir: &Path, given: &[PublicKey]) -> Trust {
    let Some((key, valid)) = &v.signed else {
        return Trust::Untrusted(
            "it is not signed (made by a difyctl before 0.2, or stripped)".into(),
        );
    };
    if !valid {
        return Trust::Untrusted(
            "its signature does not match its manifest: it was changed after it was signed".into(),
        );
    }
    let local = BackupKey::load(state_dir)
        .ok()
        .flatten()
        .map(|k| k.public());
    if local.as_ref() == Some(key) {
        return Trust::Local;
    }
    if given.contains(key) {
        return Trust::Given(key.clone());
    }
    Trust::Untrusted(format!(
        "it is signed by {key}, which is neither this install's backup key nor one given with --trust"
    ))
}

/// What the archive's stack would do to this host, for a person to judge before an untrusted
/// archive is restored: host folders it mounts or fills outside its own folder, privileges,
/// the Docker socket, the host's network, published ports, volumes it does not own, images
/// this machine does not have.
pub fn risks(v: &Verified, stack: &Stack, missing_images: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in &stack.services {
        let name = &s.name;
        for m in &s.mounts {
            if let Source::Bind(path) = &m.source {
                if path.ends_with("docker.sock") {
                    out.push(format!("{name}: mounts the Docker socket {} (control of every container, root on this host)", path.display()));
                } else if !path.starts_with(&stack.dir) {
                    let rw = if m.read_only { "read-only" } else { "writable" };
                    out.push(format!(
                        "{name}: mounts the host folder {} at {} ({rw})",
                        path.display(),
                        m.target
                    ));
                }
            }
        }
        if s.privileged {
            out.push(format!("{name}: runs privileged (root on this host)"));
        }
        if !s.cap_add.is_empty() {
            out.push(format!(
                "{name}: adds capabilities {}",
                s.cap_add.join(", ")
            ));
        }
        if s.network_mode.as_deref() == Some("host") {
            out.push(format!("{name}: uses the host's network"));
        }
        for opt in s.security_opt.iter().filter(|o| o.contains("unconfined")) {
            out.push(format!("{name}: security_opt {opt}"));
        }
        for p in &s.ports {
            out.push(format!(
                "{name}: publishes port {}/{} on {}:{}",
                p.target,
                p.protocol,
                p.host_ip.as_deref().unwrap_or("0.0.0.0"),
                p.host_port().unwrap_or_else(|| "(any)".into())
            ));
        }
    }
    for part in &v.manifest.parts {
        use crate::backup::manifest::PartKind;
        match &part.kind {
            PartKind::Folder { path, .. } if path.is_absolute() => out.push(format!(
                "archive member {}: fills the host folder {}",
                part.name,
                path.display()
            )),
            PartKind::Volume { key, external: true, docker_name, .. } => out.push(format!(
                "archive member {}: fills the external volume {docker_name} (key {key}), which other projects may use",
                part.name
            )),
            _ => {}
        }
    }
    for image in missing_images {
        out.push(format!(
            "image {image} is not on this machine: it would be pulled"
        ));
    }
    out
}

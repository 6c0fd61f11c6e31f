//! What an upgrade changes in the install folder, decided before anything is touched (and all
//! `--dry-run` shows): the release's compose file replaces the install's; every env file is
//! synced (`envsync`); env files the release requires and the install lacks are written from
//! their examples; the release's other files are added when missing, replaced when the user
//! never changed them (three-way, against `base`: the release the install was made from), and
//! kept with the release's version written beside them when the user did; the user's
//! override files are never touched.

use std::path::{Path, PathBuf};

use super::envsync::{self, Synced};
use super::UpgradeError;
use crate::dify::renames;
use crate::releases::release::{self, Release};

#[derive(Debug, Clone)]
pub struct Change {
    /// Relative to the install folder.
    pub path: PathBuf,
    pub what: What,
}

#[derive(Debug, Clone)]
pub enum What {
    /// Replaced by the release's file (the compose file).
    Replace {
        bytes: Vec<u8>,
        summary: Vec<String>,
    },
    /// A file the install did not have.
    Add {
        bytes: Vec<u8>,
        summary: Vec<String>,
    },
    /// An env file synced: the new text and what changed.
    Env(Synced),
    /// Left as the user has it, and why.
    Keep(String),
    /// The user changed the release's file: kept, the new release's version written beside it
    /// (`beside`, a separate `Add`), and how theirs differs from it.
    Edited {
        beside: PathBuf,
        diff: Vec<String>,
        /// What the `-` and `+` lines are.
        against: String,
    },
}

impl Change {
    /// The bytes to write, when the file changes.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.what {
            What::Replace { bytes, .. } | What::Add { bytes, .. } => Some(bytes),
            What::Env(s) if s.changed() => Some(s.text.as_bytes()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub from: Option<String>,
    pub to: Option<String>,
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn writes(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.changes
            .iter()
            .filter_map(|c| c.bytes().map(|b| (c.path.as_path(), b)))
    }
}

/// The changes that bring `install` (running `current`) to `release`. `base` is the release
/// folder the install was made from (`upgrade::base`), when known: a file equal to its copy
/// there was never changed by the user and is replaced.
pub fn plan(
    install: &Path,
    release: &Release,
    current: Option<&str>,
    base: Option<&Path>,
) -> Result<Plan, UpgradeError> {
    if let (Some(from), Some(to)) = (current, release.version.as_deref()) {
        if release::compare(to, from) == Some(std::cmp::Ordering::Less) {
            return Err(UpgradeError::Downgrade {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
    }
    let read = |p: &Path| -> Result<Option<Vec<u8>>, UpgradeError> {
        match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(UpgradeError::Io {
                path: p.to_path_buf(),
                action: "cannot read it".into(),
                source,
            }),
        }
    };
    let version = release
        .version
        .clone()
        .unwrap_or_else(|| "the new release".into());
    let renames = renames::for_release(&release.services, &release.example_keys());
    let required = required_env_files(release)?;
    let mut files = Vec::new();
    let mut secrets = envsync::Secrets::default();
    for (target, example) in release.env_examples() {
        let example_text = text(read(&example)?.unwrap_or_default());
        // The user's bytes stay theirs: a file that is not UTF-8 is refused, not mangled.
        let user = match read(&install.join(&target))? {
            Some(bytes) => Some(
                crate::envfile::utf8(&install.join(&target), &bytes)
                    .map_err(|e| UpgradeError::Env {
                        path: install.join(&target),
                        detail: crate::error_chain(&e),
                    })?
                    .to_string(),
            ),
            None => None,
        };
        if user.is_none() && target != Path::new(".env") && !required.contains(&target) {
            continue;
        }
        // The user's own values for Dify's public ones, from every file first.
        if let Some(u) = &user {
            let parse = |t: &str| crate::envfile::EnvFile::parse(&target, t);
            if let (Ok(u), Ok(x)) = (parse(u), parse(&example_text)) {
                secrets.learn(&u, &x);
            }
        }
        files.push((target, example_text, user));
    }
    let mut changes = Vec::new();
    for (target, example_text, user) in files {
        let synced = envsync::sync(
            &target,
            user.as_deref(),
            &example_text,
            &renames,
            &version,
            &mut secrets,
        )
        .map_err(|e| UpgradeError::Env {
            path: install.join(&target),
            detail: crate::error_chain(&e),
        })?;
        changes.push(Change {
            path: target,
            what: What::Env(synced),
        });
    }
    for rel in &release.files {
        let name = rel.to_string_lossy();
        if name.ends_with(".example") {
            continue;
        }
        let new = read(&release.dir.join(rel))?.unwrap_or_default();
        let old = read(&install.join(rel))?;
        let pristine = match (&old, base) {
            (Some(o), Some(b)) => read(&b.join(rel))?.is_some_and(|b| b == *o),
            _ => false,
        };
        let what = if name == "docker-compose.yaml" {
            match &old {
                Some(o) if *o == new => continue,
                _ => {
                    let mut summary = vec![format!(
                        "{} -> {}",
                        current.unwrap_or("?"),
                        release.version.as_deref().unwrap_or("?")
                    )];
                    if base.is_some() && old.is_some() && !pristine {
                        summary.push("your edits to it are not carried over (they are in the rollback copy): put them in docker-compose.override.yaml".into());
                    }
                    What::Replace {
                        summary,
                        bytes: new,
                    }
                }
            }
        } else {
            match old {
                None => What::Add {
                    bytes: new,
                    summary: Vec::new(),
                },
                Some(o) if o == new => continue,
                Some(_) if pristine => What::Replace {
                    summary: vec!["unchanged since it was installed".into()],
                    bytes: new,
                },
                Some(o) => {
                    let beside = beside_name(rel, &version);
                    // What the user changed (to carry over to the new file), when the file
                    // they started from is known; else how theirs differs from the new one.
                    let was = base.map(|b| read(&b.join(rel))).transpose()?.flatten();
                    let (diff, against) = match was {
                        Some(was) => (
                            super::diff::lines(&text(was), &text(o), 40),
                            format!("- {}, + yours", current.unwrap_or("the installed release")),
                        ),
                        None => (
                            super::diff::lines(&text(o), &text(new.clone()), 40),
                            "- yours, + the release's".to_string(),
                        ),
                    };
                    changes.push(Change {
                        path: beside.clone(),
                        what: What::Add {
                            bytes: new,
                            summary: Vec::new(),
                        },
                    });
                    What::Edited {
                        beside,
                        diff,
                        against,
                    }
                }
            }
        };
        changes.push(Change {
            path: rel.clone(),
            what,
        });
    }
    for over in [
        "docker-compose.override.yaml",
        "docker-compose.override.yml",
        "compose.override.yaml",
    ] {
        if install.join(over).is_file() {
            changes.push(Change {
                path: over.into(),
                what: What::Keep("your override, read over the new compose file".into()),
            });
        }
    }
    Ok(Plan {
        from: current.map(str::to_string),
        to: release.version.clone(),
        changes,
    })
}

/// Env files the release's compose file needs (an `env_file` entry without `required: false`).
fn required_env_files(release: &Release) -> Result<Vec<PathBuf>, UpgradeError> {
    let text =
        std::fs::read_to_string(release.dir.join("docker-compose.yaml")).map_err(|source| {
            UpgradeError::Io {
                path: release.dir.join("docker-compose.yaml"),
                action: "cannot read it".into(),
                source,
            }
        })?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::new();
    let mut lists: Vec<&serde_json::Value> = Vec::new();
    if let Some(map) = doc.as_object() {
        for (k, v) in map {
            if k.starts_with("x-") {
                lists.extend(v.get("env_file"));
            }
        }
    }
    if let Some(services) = doc.get("services").and_then(|s| s.as_object()) {
        lists.extend(services.values().filter_map(|s| s.get("env_file")));
    }
    for list in lists {
        let items: Vec<&serde_json::Value> = match list {
            serde_json::Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let (path, required) = match item {
                serde_json::Value::String(p) => (p.as_str(), true),
                serde_json::Value::Object(m) => (
                    m.get("path").and_then(|p| p.as_str()).unwrap_or(""),
                    m.get("required").and_then(|r| r.as_bool()).unwrap_or(true),
                ),
                _ => continue,
            };
            let path = PathBuf::from(path.trim_start_matches("./"));
            if required && !out.contains(&path) {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// `ssrf_proxy/squid.conf.template` -> `ssrf_proxy/squid.conf.template.dify-1.16.1`.
fn beside_name(rel: &Path, version: &str) -> PathBuf {
    let mut name = rel.as_os_str().to_owned();
    name.push(format!(".dify-{}", version.replace(' ', "-")));
    PathBuf::from(name)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

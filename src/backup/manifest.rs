//! `manifest.json`, the archive's last member: what was backed up, from where, how each part
//! was taken, and each part's size and SHA-256. `restore` trusts nothing it does not list.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The archive layout this difyctl writes (2: `manifest.sig` after the manifest; 1, unsigned,
/// is still read). A newer one is refused by `restore`, not guessed at.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub difyctl_version: String,
    /// From the api image's tag (`langgenius/dify-api:1.15.0`), when it has one.
    pub dify_version: Option<String>,
    pub project: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The install folder (where the compose file is) on the machine it came from.
    pub source_dir: PathBuf,
    /// The compose files, relative to the install folder.
    pub compose_files: Vec<String>,
    /// The profiles in effect (`--profile` and COMPOSE_PROFILES): a restore enables the same.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// The services that were enabled (profiles applied).
    pub services: Vec<String>,
    pub images: Vec<ImageRecord>,
    pub parts: Vec<Part>,
    /// What was deliberately not taken, and why.
    #[serde(default)]
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub service: String,
    pub image: String,
    /// The local image ID (`sha256:...`).
    pub id: Option<String>,
    /// Registry digests (`repo@sha256:...`), when the image was pulled from one.
    #[serde(default)]
    pub digests: Vec<String>,
}

/// One member of the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    #[serde(flatten)]
    pub kind: PartKind,
    /// How it was taken, for a person reading the manifest.
    pub how: String,
    /// Services paused while it was taken, and for how long (milliseconds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartKind {
    /// The install folder (compose files, `.env`, `envs/`, configuration) as a tar, without
    /// the data folders and database files taken as their own parts.
    Install,
    /// difyctl's state directory (ACME account, certificates) as a tar.
    State,
    /// `difyctl.toml`, when it lives outside the install folder.
    Config { path: PathBuf },
    /// A bind-mounted data folder as a tar whose root is the folder. `path` is relative to the
    /// install folder when it is inside it, else absolute.
    Folder {
        path: PathBuf,
        services: Vec<String>,
    },
    /// The second pass over a folder whose writers kept running during the first: what
    /// changed meanwhile, taken with them paused; restored over the `Folder` part, then
    /// `removed` (relative to the folder) deleted.
    FolderDelta {
        path: PathBuf,
        #[serde(default)]
        removed: Vec<PathBuf>,
    },
    /// A named volume, as Docker's archive API gives it (one top-level entry: the mount
    /// target's last component).
    Volume {
        key: String,
        docker_name: String,
        external: bool,
        /// The service whose container it was read through, and where it is mounted there.
        service: String,
        target: String,
    },
    /// `pg_dump -Fc` of one database.
    PostgresDatabase { service: String, database: String },
    /// `pg_dumpall --globals-only` (roles), applied before the databases.
    PostgresGlobals { service: String },
    /// `mysqldump --single-transaction` of one database (plain SQL).
    MysqlDatabase { service: String, database: String },
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        // Read the format first: a newer archive's parts may not parse as ours.
        let format = value
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .ok_or("no `format`")?;
        if format > u64::from(FORMAT) {
            return Ok(Manifest {
                format: u32::try_from(format).unwrap_or(u32::MAX),
                difyctl_version: value
                    .get("difyctl_version")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string(),
                dify_version: None,
                project: String::new(),
                created_at: String::new(),
                source_dir: PathBuf::new(),
                compose_files: Vec::new(),
                profiles: Vec::new(),
                services: Vec::new(),
                images: Vec::new(),
                parts: Vec::new(),
                skipped: Vec::new(),
            });
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    pub fn parts_of<'a>(
        &'a self,
        f: impl Fn(&PartKind) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Part> + 'a {
        self.parts.iter().filter(move |p| f(&p.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_format_is_recognised_even_when_its_parts_are_not() {
        let m = Manifest::parse(
            br#"{"format": 7, "difyctl_version": "9.0.0", "parts": [{"kind": "hologram"}]}"#,
        )
        .unwrap();
        assert_eq!(m.format, 7);
        assert_eq!(m.difyctl_version, "9.0.0");
    }

    #[test]
    fn parts_round_trip() {
        let part = Part {
            name: "databases/db/dify.dump".into(),
            size: 3,
            sha256: "ab".into(),
            kind: PartKind::PostgresDatabase {
                service: "db".into(),
                database: "dify".into(),
            },
            how: "pg_dump -Fc".into(),
            paused: vec![],
            paused_ms: None,
        };
        let text = serde_json::to_string(&part).unwrap();
        assert!(text.contains(r#""kind":"postgres_database""#), "{text}");
        let back: Part = serde_json::from_str(&text).unwrap();
        assert_eq!(back.kind, part.kind);
    }
}

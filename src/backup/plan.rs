//! What a backup of a stack consists of, decided from the stack model (no Docker; only whether
//! a bind source is a file is looked up): the databases dumped logically, the named volumes, the bind-mounted data
//! folders with the services that write them, and what the install folder's own copy leaves
//! out because another part covers it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::stack::model::Stack;
use crate::stack::mounts::Source;
use crate::stack::service::ServiceSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbKind {
    Postgres,
    Mysql,
}

/// A database server dumped inside its own container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub service: String,
    pub kind: DbKind,
    /// The account the dump runs as (POSTGRES_USER, root for MySQL).
    pub user: String,
    pub password: Option<String>,
    /// MySQL: the database to dump (MYSQL_DATABASE). PostgreSQL lists its databases live.
    pub database: Option<String>,
    /// Mounts holding the server's files: replaced by the dump, so never copied.
    pub data_targets: Vec<String>,
}

/// A bind-mounted folder (or a file outside the install folder) copied from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub path: PathBuf,
    /// Services that mount it writable: paused while it is copied.
    pub writers: Vec<String>,
    pub users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub key: String,
    pub docker_name: String,
    pub external: bool,
    /// The service it is read through, and where it is mounted there.
    pub service: String,
    pub target: String,
    pub writers: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub databases: Vec<Database>,
    pub folders: Vec<Folder>,
    pub volumes: Vec<Volume>,
    /// Paths the install folder's copy leaves out (data folders, database files).
    pub excluded: Vec<PathBuf>,
    /// What is not taken, and why (anonymous volumes, tmpfs, read-only system files).
    pub skipped: Vec<String>,
}

/// Decides the parts of a backup of `stack`. `extra_excluded` are folders never copied (the
/// backup folder itself, difyctl's state, taken as its own part).
pub fn plan(stack: &Stack, extra_excluded: &[PathBuf]) -> Plan {
    let mut plan = Plan {
        excluded: extra_excluded.to_vec(),
        ..Plan::default()
    };
    for spec in &stack.services {
        if let Some(db) = database(spec) {
            plan.databases.push(db);
        }
    }
    let mut folders: BTreeMap<PathBuf, Folder> = BTreeMap::new();
    let mut volumes: BTreeMap<String, Volume> = BTreeMap::new();
    for spec in &stack.services {
        let db = plan.databases.iter().find(|d| d.service == spec.name);
        for m in &spec.mounts {
            if db.is_some_and(|d| d.data_targets.contains(&m.target)) {
                if let Source::Bind(p) = &m.source {
                    plan.excluded.push(p.clone());
                }
                continue;
            }
            match &m.source {
                Source::Bind(path) => {
                    let inside = path.starts_with(&stack.dir);
                    // A configuration file in the install folder goes with the folder's copy
                    // (a missing source is a folder: `up` creates it as one).
                    if inside && path.is_file() {
                        continue;
                    }
                    if !inside && m.read_only {
                        plan.skipped.push(format!(
                            "{} (services.{}: a read-only bind mount outside the install folder)",
                            path.display(),
                            spec.name
                        ));
                        continue;
                    }
                    let f = folders.entry(path.clone()).or_insert_with(|| Folder {
                        path: path.clone(),
                        writers: Vec::new(),
                        users: Vec::new(),
                    });
                    push_unique(&mut f.users, &spec.name);
                    if !m.read_only {
                        push_unique(&mut f.writers, &spec.name);
                    }
                }
                Source::Volume(key) => {
                    let Some(v) = stack.volume(key) else { continue };
                    let entry = volumes.entry(key.clone()).or_insert_with(|| Volume {
                        key: key.clone(),
                        docker_name: v.docker_name.clone(),
                        external: v.external,
                        service: spec.name.clone(),
                        target: m.target.clone(),
                        writers: Vec::new(),
                    });
                    if !m.read_only {
                        push_unique(&mut entry.writers, &spec.name);
                    }
                }
                Source::Anonymous => plan.skipped.push(format!(
                    "an anonymous volume at {} (services.{}): give it a name to have it backed up",
                    m.target, spec.name
                )),
                Source::Tmpfs => {}
            }
        }
    }
    plan.folders = nest(folders.into_values().collect());
    for f in &plan.folders {
        if f.path.starts_with(&stack.dir) {
            plan.excluded.push(f.path.clone());
        }
    }
    plan.volumes = volumes.into_values().collect();
    plan
}

/// A folder inside another one is copied with it; its services join the outer one's.
fn nest(mut folders: Vec<Folder>) -> Vec<Folder> {
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out: Vec<Folder> = Vec::new();
    for f in folders {
        match out.iter_mut().find(|o| f.path.starts_with(&o.path)) {
            Some(outer) => {
                for w in &f.writers {
                    push_unique(&mut outer.writers, w);
                }
                for u in &f.users {
                    push_unique(&mut outer.users, u);
                }
            }
            None => out.push(f),
        }
    }
    out
}

/// A PostgreSQL or MySQL server, recognised by its image or its command.
fn database(spec: &ServiceSpec) -> Option<Database> {
    let image = spec
        .image
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let image = image.split([':', '@']).next().unwrap_or("");
    let program = spec
        .command
        .as_ref()
        .and_then(|c| c.first())
        .map(String::as_str)
        .unwrap_or("");
    let env = |k: &str| spec.environment.get(k).filter(|v| !v.is_empty()).cloned();
    let under = |dir: &str| -> Vec<String> {
        spec.mounts
            .iter()
            .filter(|m| Path::new(dir).starts_with(&m.target))
            .map(|m| m.target.clone())
            .collect()
    };
    if image.contains("postgres") || image.contains("pgvector") || program == "postgres" {
        let data = env("PGDATA").unwrap_or_else(|| "/var/lib/postgresql/data".into());
        return Some(Database {
            service: spec.name.clone(),
            kind: DbKind::Postgres,
            user: env("POSTGRES_USER").unwrap_or_else(|| "postgres".into()),
            password: env("POSTGRES_PASSWORD"),
            database: None,
            data_targets: under(&data),
        });
    }
    if image == "mysql" || image == "mariadb" || program == "mysqld" {
        return Some(Database {
            service: spec.name.clone(),
            kind: DbKind::Mysql,
            user: "root".into(),
            password: env("MYSQL_ROOT_PASSWORD").or_else(|| env("MARIADB_ROOT_PASSWORD")),
            database: env("MYSQL_DATABASE").or_else(|| env("MARIADB_DATABASE")),
            data_targets: under("/var/lib/mysql"),
        });
    }
    None
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

//! The database migration of an upgrade, judged by the database. Dify's api, worker,
//! worker_beat and api_websocket all run `flask upgrade-db` at start (MIGRATION_ENABLED) and
//! race for a Redis lock: whichever wins migrates ("Database migration successful!"), the
//! others print "Database migration skipped" and start at once. So one container's log proves
//! nothing. The truth is the database's `alembic_version` against the release's migration
//! head, read from the new api image (`/app/api/migrations/versions`). A failure is a failure
//! line in the log of any container of the api image, or the head not reached in time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;

use crate::backup::plan::{Database, DbKind};
use crate::engine::reconcile::{project_containers, service_label};
use crate::engine::{exec, Engine, EngineError};
use crate::stack::model::Stack;

/// Where Dify's api image keeps its Alembic revisions.
pub const VERSIONS_DIR: &str = "/app/api/migrations/versions";

/// Lines that mean a migration failed ("Database migration skipped" is not one: another
/// container of the same image holds the lock and migrates).
pub const FAILURE: &[&str] = &[
    "Failed to execute database migration",
    "Database migration failed",
    "alembic.util.exc",
    "Can't locate revision",
];

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("service {service}: cannot read the database's alembic_version: {detail}")]
    Query { service: String, detail: String },
    #[error("the database did not reach the release's migration head {want} within {secs}s (--wait-timeout): it is at {have}")]
    NotReached {
        want: String,
        have: String,
        secs: u64,
    },
}

/// The heads of a set of Alembic revision files: revisions no other revision names as its
/// `down_revision`. Empty when the files hold none.
pub fn heads<'a>(files: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut revisions = BTreeSet::new();
    let mut parents = BTreeSet::new();
    for text in files {
        for line in text.lines() {
            if let Some(rest) = assignment(line, "revision") {
                revisions.extend(quoted(rest).into_iter().take(1));
            } else if let Some(rest) = assignment(line, "down_revision") {
                parents.extend(quoted(rest));
            }
        }
    }
    revisions.difference(&parents).cloned().collect()
}

/// `name = ...` or `name: type = ...` at the start of a line: what follows `=`.
fn assignment<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?;
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix(':') {
        Some(typed) => typed.split_once('=')?.1,
        None => rest.strip_prefix('=')?,
    };
    Some(rest.trim())
}

/// The quoted strings in a Python literal (`'a'`, `("a", "b")`, `None`).
fn quoted(literal: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = literal;
    while let Some(start) = rest.find(['\'', '"']) {
        let quote = rest.as_bytes()[start] as char;
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// The migration heads `image` carries; `None` when it has no Alembic folder (not Dify's api:
/// the upgrade then judges the migration by the logs alone).
pub async fn image_heads(
    engine: &Engine,
    image: &str,
) -> Result<Option<BTreeSet<String>>, EngineError> {
    let files = crate::engine::images::read_files(engine, image, VERSIONS_DIR, 64 << 20).await?;
    Ok(files.and_then(|files| {
        let texts = files
            .iter()
            .filter(|(p, _)| p.ends_with(".py"))
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>();
        let h = heads(texts.iter().map(String::as_str));
        (!h.is_empty()).then_some(h)
    }))
}

/// The api's database: its server (the service `DB_HOST` names, found by the backup's plan)
/// and the database name (`DB_DATABASE`, default `dify`).
pub fn api_database(stack: &Stack) -> Option<(Database, String)> {
    let api = stack.service("api")?;
    let env = |k: &str| api.environment.get(k).filter(|v| !v.is_empty());
    let host = env("DB_HOST")?;
    let name = env("DB_DATABASE").cloned().unwrap_or_else(|| "dify".into());
    let plan = crate::backup::plan::plan(stack, &[]);
    let db = plan.databases.into_iter().find(|d| d.service == *host)?;
    Some((db, name))
}

/// The revisions in the database's `alembic_version` (empty before the first migration).
pub async fn database_revisions(
    engine: &Engine,
    project: &str,
    db: &Database,
    database: &str,
) -> Result<BTreeSet<String>, MigrationError> {
    let containers = project_containers(engine, project, false).await?;
    let container = containers
        .iter()
        .find(|c| service_label(c) == Some(db.service.as_str()))
        .and_then(|c| c.id.clone())
        .ok_or_else(|| MigrationError::Query {
            service: db.service.clone(),
            detail: "it is not running".into(),
        })?;
    let sql = "SELECT version_num FROM alembic_version";
    let cmd: Vec<String> = match db.kind {
        DbKind::Postgres => ["psql", "-U", &db.user, "-d", database, "-Atc", sql]
            .map(String::from)
            .to_vec(),
        DbKind::Mysql => ["mysql", "-uroot", "-N", "-B", "-D", database, "-e", sql]
            .map(String::from)
            .to_vec(),
    };
    let env = crate::backup::databases::env(db);
    let done = exec::run(engine, &db.service, &container, &cmd, &env).await?;
    if done.code != 0 {
        // Before the first migration the table does not exist: no revision yet.
        if done.stderr.contains("alembic_version") {
            return Ok(BTreeSet::new());
        }
        return Err(MigrationError::Query {
            service: db.service.clone(),
            detail: done.stderr,
        });
    }
    Ok(done
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Waits until the database is at `want` (checked every 2 s), at most `timeout`.
pub async fn wait_for_heads(
    engine: &Engine,
    project: &str,
    db: &Database,
    database: &str,
    want: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), MigrationError> {
    let start = Instant::now();
    loop {
        let have = database_revisions(engine, project, db, database).await;
        match &have {
            Ok(have) if have == want => return Ok(()),
            Err(e) if start.elapsed() > timeout => {
                return Err(MigrationError::Query {
                    service: db.service.clone(),
                    detail: crate::error_chain(e),
                })
            }
            _ => {}
        }
        if start.elapsed() > timeout {
            let have = have.ok().unwrap_or_default();
            return Err(MigrationError::NotReached {
                want: join(want),
                have: if have.is_empty() {
                    "no revision".into()
                } else {
                    join(&have)
                },
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Resolves with `service: line` for the first failure line in the log of a container of any
/// of `services` created after `since` (Unix seconds); never resolves when there is none (the
/// caller races it against the recreation).
pub async fn first_failure(
    engine: &Engine,
    project: &str,
    services: &[String],
    since: i64,
) -> String {
    let watches = services
        .iter()
        .map(|s| Box::pin(service_failure(engine, project, s, since)));
    if services.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(watches).await.0
}

async fn service_failure(engine: &Engine, project: &str, service: &str, since: i64) -> String {
    loop {
        let Some(id) = newer_container(engine, project, service, since).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        };
        let mut logs = engine.docker.logs(&id, Some(options));
        let mut partial = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            partial.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                if FAILURE.iter().any(|f| line.contains(f)) {
                    return format!("{service}: {}", line.trim());
                }
            }
        }
        // The container ended or was replaced: look again.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn newer_container(
    engine: &Engine,
    project: &str,
    service: &str,
    since: i64,
) -> Option<String> {
    let containers = project_containers(engine, project, true).await.ok()?;
    containers
        .into_iter()
        .filter(|c| service_label(c) == Some(service) && c.created.unwrap_or(0) >= since)
        .max_by_key(|c| c.created.unwrap_or(0))
        .and_then(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_the_revisions_nothing_builds_on() {
        let files = [
            "revision = 'a1'\ndown_revision = None\n",
            "revision = 'b2'\ndown_revision = 'a1'\n",
            "revision = \"c3\"\ndown_revision = 'a1'\n",
            "revision: str = 'd4'\ndown_revision: Union[str, None] = ('b2', \"c3\")\n",
            "# revision = 'zz' in a comment is not one\n",
        ];
        assert_eq!(heads(files), BTreeSet::from(["d4".to_string()]));
        assert_eq!(
            heads([
                "revision = 'x'\ndown_revision = None\n",
                "revision = 'y'\ndown_revision = None\n"
            ]),
            BTreeSet::from(["x".to_string(), "y".to_string()]),
            "two branches: two heads"
        );
        assert!(heads(["print('hello')"]).is_empty());
    }
}

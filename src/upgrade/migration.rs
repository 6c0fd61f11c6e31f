//! The api's database migration, watched through its log. Dify's api runs `flask upgrade-db`
//! at start (MIGRATION_ENABLED) and has gone on to serve after a failed migration (dify
//! #32021) or after skipping it with the database unreachable (#3234): being healthy is not
//! proof. Its first sign of failure in the log fails the upgrade.

use std::time::Duration;

use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;

use crate::engine::reconcile::{project_containers, service_label};
use crate::engine::Engine;

/// Lines that mean the migration failed.
pub const FAILURE: &[&str] = &[
    "Failed to execute database migration",
    "Database migration failed",
    "alembic.util.exc",
    "Can't locate revision",
    "Database migration skipped",
];

/// Resolves with the first failure line in the log of `service`'s container created after
/// `since` (Unix seconds); never resolves when there is none (the caller races it against
/// the recreation).
pub async fn first_failure(engine: &Engine, project: &str, service: &str, since: i64) -> String {
    loop {
        let id = newer_container(engine, project, service, since).await;
        let Some(id) = id else {
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
                    return line.trim().to_string();
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

//! Pausing the services that write a folder or volume while it is copied, so the copy is not
//! torn. `docker pause` freezes the processes where they are (their connections stay open,
//! requests to them wait in the kernel's queue and are answered once they are unpaused), so
//! the proxy in front holds requests meanwhile; nothing restarts. Unpausing always follows,
//! whatever the copy's outcome; a pause left behind by a killed difyctl is undone by the next
//! backup (`unpause_leftovers`).

use std::time::{Duration, Instant};

use bollard::models::ContainerStateStatusEnum;

use crate::engine::{Engine, EngineError};
use crate::journal::Journal;

/// The paused containers of one copy.
pub struct Paused {
    containers: Vec<(String, String)>,
    since: Instant,
}

impl Paused {
    pub fn services(&self) -> Vec<String> {
        self.containers.iter().map(|(s, _)| s.clone()).collect()
    }
}

/// Pauses each `(service, container)` that is running now. Each id goes into the journal
/// before it is paused: a backup killed while they are paused leaves the list for the next
/// difyctl, which unpauses them.
pub async fn pause(
    engine: &Engine,
    targets: &[(String, String)],
    journal: &mut Journal,
) -> Result<Paused, EngineError> {
    let mut paused = Paused {
        containers: Vec::new(),
        since: Instant::now(),
    };
    for (service, id) in targets {
        let running = engine
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.status)
            == Some(ContainerStateStatusEnum::RUNNING);
        if !running {
            continue;
        }
        journal.record.paused.push(id.clone());
        let _ = journal.save();
        if let Err(e) = pause_one(engine, id).await {
            resume(engine, paused, journal).await;
            return Err(EngineError::Api {
                object: format!("service {service}"),
                action: "cannot pause it for a consistent copy".into(),
                source: e,
            });
        }
        paused.containers.push((service.clone(), id.clone()));
    }
    paused.since = Instant::now();
    let names: Vec<String> = paused.services();
    let _ = journal.step(&format!("paused {}", names.join(", ")));
    crate::journal::failpoint("backup:paused");
    Ok(paused)
}

/// `docker pause`, tried again a few times: freezing fails ("unable to freeze") while a
/// process sits in uninterruptible I/O, which passes.
async fn pause_one(engine: &Engine, id: &str) -> Result<(), bollard::errors::Error> {
    let mut attempt = 0;
    loop {
        match engine.docker.pause_container(id).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 && e.to_string().contains("freeze") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Unpauses them; how long they were paused. A failure is logged: it is not the copy's.
pub async fn resume(engine: &Engine, paused: Paused, journal: &mut Journal) -> Duration {
    let took = paused.since.elapsed();
    for (service, id) in &paused.containers {
        if let Err(e) = engine.docker.unpause_container(id).await {
            tracing::error!(
                service,
                "cannot unpause it after the backup copy: {e}; run `docker unpause {id}`"
            );
        }
    }
    journal.record.paused.clear();
    let _ = journal.step("copying");
    took
}

/// Unpauses the containers a killed backup's journal lists (those still paused); names them.
pub async fn unpause_ids(engine: &Engine, ids: &[String]) -> Vec<String> {
    let mut done = Vec::new();
    for id in ids {
        let Ok(info) = engine.docker.inspect_container(id, None).await else {
            continue;
        };
        let paused = info.state.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused && engine.docker.unpause_container(id).await.is_ok() {
            done.push(
                info.name
                    .unwrap_or_else(|| id.clone())
                    .trim_start_matches('/')
                    .to_string(),
            );
        }
    }
    done
}

/// Unpauses the project's containers a killed backup left paused; names them.
pub async fn unpause_leftovers(
    engine: &Engine,
    containers: &[bollard::models::ContainerSummary],
) -> Vec<String> {
    let mut done = Vec::new();
    for c in containers {
        if c.state == Some(bollard::models::ContainerSummaryStateEnum::PAUSED) {
            let name = crate::engine::reconcile::display_name(c);
            if engine
                .docker
                .unpause_container(c.id.as_deref().unwrap_or_default())
                .await
                .is_ok()
            {
                done.push(name);
            }
        }
    }
    done
}

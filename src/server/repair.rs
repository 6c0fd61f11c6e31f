//! The serving `up` keeps its own stack whole. Every few seconds it finishes what a killed
//! difyctl left (`heal`: a paused service unpaused, a removed one created again, a half-written
//! upgrade settled) and brings back a service whose container is missing, or was created and
//! never started, when no live difyctl is working on the project and nobody took it down on
//! purpose (`difyctl down`). While it does, requests to the service wait (`Expected`, for as
//! long as this process runs); a service that keeps failing is reported and tried again later,
//! each time after a longer pause (10 s doubling to 5 min), never in a tight loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::engine::progress::Progress;
use crate::engine::reconcile::{self, service_label, UpOptions};
use crate::engine::Engine;
use crate::journal::{self, Op};
use crate::metrics::Metrics;
use crate::stack::model::Stack;
use crate::upstreams::Expected;

const TICK: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the repair needs to bring a service back as `up` would.
#[derive(Clone)]
pub struct Repair {
    pub stack: Stack,
    pub state_dir: PathBuf,
    pub timeout: Duration,
    pub config_file: String,
    pub retired: Vec<String>,
}

impl Repair {
    fn options(&self) -> UpOptions {
        UpOptions {
            timeout: self.timeout,
            config_file: self.config_file.clone(),
            retired: self.retired.clone(),
            journal: None,
        }
    }
}

struct Backoff {
    next: Instant,
    delay: Duration,
    failures: u32,
}

pub async fn run(
    engine: Engine,
    repair: Repair,
    expected: Expected,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff: HashMap<String, Backoff> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = crate::stopped(&mut stop) => return,
        }
        // Notices of processes that are gone end now, not when their time runs out.
        expected.poke.notify_one();
        let project = &repair.stack.project;
        // Only while nobody else reconciles the project (they heal it themselves first).
        let Ok(lock) = crate::lock::Lock::try_acquire(&lock_path(&repair), "a difyctl reconciling")
        else {
            continue;
        };
        for note in
            crate::heal::heal(&engine, &repair.state_dir, &repair.stack, &repair.options()).await
        {
            tracing::warn!(project = %project, "{note}");
        }
        drop(lock);
        let busy = journal::of_project(&repair.state_dir, project)
            .iter()
            .any(|j| j.op != Op::Backup && j.owner_alive());
        if busy || journal::is_down(&repair.state_dir, project) {
            continue;
        }
        let needed = needing(&engine, &repair.stack).await;
        // Every container gone at once is a `down` (from another state dir, say), not a
        // crash: not brought back behind the operator's back.
        if !needed.is_empty() && needed.len() == repair.stack.services.len() {
            continue;
        }
        for service in needed {
            if backoff
                .get(&service)
                .is_some_and(|b| Instant::now() < b.next)
            {
                continue;
            }
            bring_back(
                &engine,
                &repair,
                &expected,
                &metrics,
                &service,
                &mut backoff,
            )
            .await;
        }
    }
}

/// The lock every reconcile of the project takes (`up`'s).
fn lock_path(repair: &Repair) -> PathBuf {
    crate::lock::project_path(&repair.state_dir, &repair.stack.project)
}

/// Services whose container is missing, or created and never started.
async fn needing(engine: &Engine, stack: &Stack) -> Vec<String> {
    let Ok(containers) = reconcile::project_containers(engine, &stack.project, true).await else {
        return Vec::new();
    };
    stack
        .services
        .iter()
        .filter(|s| {
            let mine: Vec<_> = containers
                .iter()
                .filter(|c| service_label(c) == Some(s.name.as_str()))
                .collect();
            mine.is_empty()
                || mine
                    .iter()
                    .all(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::CREATED))
        })
        .map(|s| s.name.clone())
        .collect()
}

async fn bring_back(
    engine: &Engine,
    repair: &Repair,
    expected: &Expected,
    metrics: &Metrics,
    service: &str,
    backoff: &mut HashMap<String, Backoff>,
) {
    // Someone else is reconciling: their work, not ours.
    let Ok(_lock) = crate::lock::Lock::try_acquire(&lock_path(repair), "a difyctl reconciling")
    else {
        return;
    };
    let names = vec![service.to_string()];
    expected.expect_by(
        &names,
        repair.timeout + Duration::from_secs(30),
        Some(std::process::id()),
    );
    tracing::warn!(
        service,
        "its container is gone (and nothing is bringing it back): creating it again"
    );
    let result = reconcile::up(
        engine,
        &repair.stack.only(&names),
        &repair.options(),
        &Progress::hidden(),
    )
    .await;
    expected.clear(&names);
    match result {
        Ok(_) => {
            metrics.repair(service, true);
            backoff.remove(service);
            tracing::warn!(service, "brought back");
        }
        Err(e) => {
            metrics.repair(service, false);
            let b = backoff.entry(service.to_string()).or_insert(Backoff {
                next: Instant::now(),
                delay: FIRST_BACKOFF / 2,
                failures: 0,
            });
            b.failures += 1;
            b.delay = (b.delay * 2).min(MAX_BACKOFF);
            b.next = Instant::now() + b.delay;
            tracing::error!(
                service,
                failures = b.failures,
                "cannot bring it back: {}; next try in {}s",
                crate::error_chain(&e),
                b.delay.as_secs()
            );
        }
    }
}

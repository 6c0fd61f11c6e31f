//! Waiting on containers: each service publishes its status on a watch channel (started,
//! healthy, exited) and dependents wait for the condition their `depends_on` names. A service
//! that exits when it must not, or is not healthy by the end of the wait, fails with its name
//! and its last health-check output or log lines. Docker's "unhealthy" alone is not a failure
//! (compose waits through it too): a slow first start recovers.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::progress::Line;
use super::{Engine, EngineError};
use crate::stack::depends::Condition;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pending,
    Started,
    Healthy,
    Exited(i64),
    Failed,
}

/// Waits until `rx` satisfies `condition`; `false` when it never can (the service failed,
/// turned unhealthy or exited with an error).
pub async fn wait_for(mut rx: watch::Receiver<Status>, condition: Condition) -> bool {
    let settled = rx
        .wait_for(|s| match condition {
            Condition::Started => *s != Status::Pending,
            Condition::Healthy => matches!(s, Status::Healthy | Status::Exited(_) | Status::Failed),
            Condition::CompletedSuccessfully => matches!(s, Status::Exited(_) | Status::Failed),
        })
        .await
        .map(|s| s.clone());
    match (settled, condition) {
        (Ok(Status::Failed), _) | (Err(_), _) => false,
        (Ok(_), Condition::Started) => true,
        (Ok(s), Condition::Healthy) => s == Status::Healthy,
        (Ok(s), Condition::CompletedSuccessfully) => s == Status::Exited(0),
    }
}

/// What to wait for after a service's container is running.
pub struct Watch<'a> {
    pub service: &'a str,
    pub container: &'a str,
    pub has_healthcheck: bool,
    /// The healthcheck's command, run by difyctl itself every 200 ms while the service starts:
    /// Docker's first check only comes after a whole `interval`, and dependents need not wait
    /// for it. The same command passing is the same condition.
    pub probe: Option<Vec<String>>,
    /// A dependent waits for it to complete (`service_completed_successfully`).
    pub needs_exit: bool,
    /// The services waiting for it to be healthy (`service_healthy`), for the error when
    /// neither the compose file nor the image gives it a healthcheck.
    pub healthy_for: Vec<String>,
    pub timeout: Duration,
}

/// Follows the container until it is healthy (with a healthcheck), exited (when a dependent
/// waits for that), or just running; publishes each step on `tx`.
pub async fn follow(
    engine: &Engine,
    w: &Watch<'_>,
    tx: &watch::Sender<Status>,
    line: &Line,
) -> Result<(), EngineError> {
    let start = Instant::now();
    let mut seen = Seen::default();
    loop {
        let info = engine
            .docker
            .inspect_container(w.container, None)
            .await
            .map_err(EngineError::api(w.service, "cannot inspect its container"))?;
        let state = info.state.unwrap_or_default();
        if matches!(
            state.status,
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
        ) {
            return exited(engine, w, state.exit_code.unwrap_or(-1), tx, line).await;
        }
        // The image's own HEALTHCHECK counts too (compose waits on Docker's status).
        let from_image = info
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| !t.is_empty() && t[0] != "NONE");
        let checked = w.has_healthcheck || from_image;
        if !checked && !w.healthy_for.is_empty() {
            line.finish("no healthcheck");
            return Err(EngineError::NoHealthcheck {
                service: w.service.to_string(),
                dependents: w.healthy_for.join(", "),
            });
        }
        let health = state.health.clone().unwrap_or_default();
        if checked {
            let running = state.running == Some(true);
            if seen.step(engine, w, running, &health, tx).await && !w.needs_exit {
                line.finish("healthy");
                return Ok(());
            }
        } else if !w.needs_exit {
            line.finish("running");
            return Ok(());
        }
        if start.elapsed() > w.timeout {
            line.finish("timed out");
            return Err(seen.timed_out(w, checked, &health));
        }
        line.waiting(seen.waiting(checked, w.needs_exit), start.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The container exited: fine with code 0 (a dependent waited for that), else the failure
/// with its last log lines.
async fn exited(
    engine: &Engine,
    w: &Watch<'_>,
    code: i64,
    tx: &watch::Sender<Status>,
    line: &Line,
) -> Result<(), EngineError> {
    tx.send_replace(Status::Exited(code));
    if code != 0 {
        line.finish(&format!("exited with code {code}"));
        return Err(EngineError::Exited {
            service: w.service.to_string(),
            code,
            logs: last_logs(engine, w.container, 10).await,
        });
    }
    line.finish("completed");
    Ok(())
}

/// What `follow` has seen of a service with a healthcheck.
#[derive(Default)]
struct Seen {
    /// Dependents were told it is healthy (by Docker, or by difyctl's own probe).
    announced_healthy: bool,
    /// Docker called it unhealthy (and the probe agreed) at some point.
    unhealthy_seen: bool,
}

impl Seen {
    /// One look at its health; `true` when Docker reports it healthy.
    async fn step(
        &mut self,
        engine: &Engine,
        w: &Watch<'_>,
        running: bool,
        health: &bollard::models::Health,
        tx: &watch::Sender<Status>,
    ) -> bool {
        let docker_healthy = health.status == Some(HealthStatusEnum::HEALTHY);
        let docker_unhealthy = health.status == Some(HealthStatusEnum::UNHEALTHY);
        // difyctl's own probe lets dependents start as soon as the check passes; `up` still
        // waits for Docker's status to agree (what `docker ps` shows right after). Docker's
        // "unhealthy" can be stale (a container paused by a backup fails its checks
        // meanwhile): it counts only when the check fails now too.
        let probed = !docker_healthy
            && (!self.announced_healthy || docker_unhealthy)
            && running
            && match &w.probe {
                Some(cmd) => probe(engine, w.container, cmd).await,
                None => false,
            };
        if !self.announced_healthy && (docker_healthy || probed) {
            self.announced_healthy = true;
            tx.send_replace(Status::Healthy);
        }
        // Docker's "unhealthy" is not the end: compose does not give up on it, and a slow
        // first start (Dify's api migrating for minutes on a small VM) turns healthy later.
        // It fails only when it has not recovered by the end of the wait.
        if docker_unhealthy && !probed {
            self.unhealthy_seen = true;
        }
        docker_healthy
    }

    fn timed_out(
        &self,
        w: &Watch<'_>,
        checked: bool,
        health: &bollard::models::Health,
    ) -> EngineError {
        let what = if w.needs_exit && self.announced_healthy || !checked {
            "did not complete"
        } else if self.unhealthy_seen {
            "Docker's healthcheck gave up on it and it did not recover"
        } else if self.announced_healthy {
            "its healthcheck passed when difyctl ran it, but Docker's own check did not report healthy"
        } else {
            "not healthy"
        };
        EngineError::Unhealthy {
            service: w.service.to_string(),
            detail: format!(
                "{what} after {}s (--wait-timeout); last health check: {}",
                w.timeout.as_secs(),
                last_check(&health.log)
            ),
        }
    }

    fn waiting(&self, checked: bool, needs_exit: bool) -> &'static str {
        match (checked, self.announced_healthy) {
            (true, false) if self.unhealthy_seen => {
                "unhealthy by Docker's check; waiting for it to recover"
            }
            (true, false) => "waiting to be healthy",
            (true, true) if !needs_exit => "healthy; waiting for Docker's check to agree",
            _ => "waiting to complete",
        }
    }
}

/// Runs the healthcheck command in the container; `true` when it exits 0 within 5 s.
async fn probe(engine: &Engine, container: &str, cmd: &[String]) -> bool {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let run = async {
        let exec = engine
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        if let StartExecResults::Attached { mut output, .. } =
            engine.docker.start_exec(&exec.id, None).await.ok()?
        {
            while output.next().await.is_some() {}
        }
        engine.docker.inspect_exec(&exec.id).await.ok()?.exit_code
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), run).await,
        Ok(Some(0))
    )
}

/// The command difyctl runs to probe a healthcheck: `CMD` as is, `CMD-SHELL` through `sh -c`.
pub fn probe_command(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, [line])) if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), line.clone()])
        }
        _ => None,
    }
}

fn last_check(log: &Option<Vec<bollard::models::HealthcheckResult>>) -> String {
    match log.as_ref().and_then(|l| l.last()) {
        Some(r) => format!(
            "exit code {}: {}",
            r.exit_code.unwrap_or(-1),
            r.output.as_deref().unwrap_or("").trim()
        ),
        None => "none ran yet".into(),
    }
}

/// The container's last `n` log lines, as `\n  | line` for an error message.
pub async fn last_logs(engine: &Engine, container: &str, n: usize) -> String {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: n.to_string(),
        ..Default::default()
    };
    let mut out = String::new();
    let mut stream = engine.docker.logs(container, Some(options));
    while let Some(Ok(chunk)) = stream.next().await {
        for l in String::from_utf8_lossy(&chunk.into_bytes()).lines() {
            out.push_str("\n  | ");
            out.push_str(l);
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("; last log lines:{out}")
    }
}

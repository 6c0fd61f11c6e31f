//! `up`: make Docker match the stack. Networks and volumes first (created when missing, never
//! removed here), images pulled when missing, then every service in its own task that waits
//! for the conditions of its `depends_on`, so independent services start in parallel.
//!
//! A service's container is kept when it still matches (difyctl's config-hash label, or for a
//! container compose started, a field-by-field comparison), started when stopped, and
//! recreated otherwise. Volumes are never touched, so their data survives recreation.

use std::collections::HashMap;

use bollard::models::ContainerSummary;
use tokio::sync::watch;

use super::health::{self, Status, Watch};
pub use super::listing::{containers_of_services, display_name, project_containers, service_label};
pub use super::outcome::{note, Action, Note, ServiceResult, Shared, UpOptions, UpReport};
use super::progress::Progress;
use super::{container, images, resources, Engine, EngineError};
use crate::stack::depends::Condition;
use crate::stack::model::Stack;
use crate::stack::service::ServiceSpec;

pub async fn up(
    engine: &Engine,
    stack: &Stack,
    opts: &UpOptions,
    progress: &Progress,
) -> Result<UpReport, EngineError> {
    let mut report = UpReport::default();
    let network_ids = resources::ensure_networks(engine, stack, &mut report.warnings).await?;
    resources::ensure_volumes(engine, stack).await?;
    resources::create_bind_sources(stack)?;
    images::ensure(engine, stack, progress, false).await?;

    let existing = project_containers(engine, &stack.project, true).await?;
    container::retire(engine, stack, opts, &existing, &mut report.warnings).await?;
    let run = Run {
        engine,
        stack,
        opts,
        existing: &existing,
        network_ids: &network_ids,
        channels: stack
            .services
            .iter()
            .map(|s| (s.name.as_str(), watch::channel(Status::Pending).0))
            .collect(),
        actions: Default::default(),
    };
    let tasks = stack.services.iter().map(|spec| {
        let run = &run;
        async move {
            let tx = &run.channels[spec.name.as_str()];
            let result = run.service(spec, &progress.line(&spec.name)).await;
            if result.is_err() {
                tx.send_replace(Status::Failed);
            }
            result
        }
    });
    let results = futures_util::future::join_all(tasks).await;
    // Report the cause, not the services that were not started because of it.
    let mut first_dependency_error = None;
    for r in results {
        match r {
            Ok(done) => report.services.push(done),
            Err(e @ EngineError::DependencyFailed { .. }) => {
                first_dependency_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    match first_dependency_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// One `up`, shared by the services' tasks.
struct Run<'a> {
    engine: &'a Engine,
    stack: &'a Stack,
    opts: &'a UpOptions,
    existing: &'a [ContainerSummary],
    network_ids: &'a HashMap<String, String>,
    /// Each service's status, watched by its dependents.
    channels: HashMap<&'a str, watch::Sender<Status>>,
    /// What happened to each service's container, read by its dependents (`restart: true`).
    actions: std::sync::Mutex<HashMap<String, Action>>,
}

impl Run<'_> {
    /// Waits for `spec`'s dependencies, makes its container match, then follows its health.
    async fn service(
        &self,
        spec: &ServiceSpec,
        line: &super::progress::Line,
    ) -> Result<ServiceResult, EngineError> {
        let tx = &self.channels[spec.name.as_str()];
        for dep in self
            .stack
            .dependencies
            .get(&spec.name)
            .into_iter()
            .flatten()
        {
            line.set(&format!("waiting for {}", dep.service));
            let rx = self.channels[dep.service.as_str()].subscribe();
            if !health::wait_for(rx, dep.condition).await {
                line.finish(&format!("not started: {} failed", dep.service));
                return Err(EngineError::DependencyFailed {
                    service: spec.name.clone(),
                    dependency: dep.service.clone(),
                });
            }
        }
        let mine: Vec<&ContainerSummary> = self
            .existing
            .iter()
            .filter(|c| service_label(c) == Some(spec.name.as_str()))
            .collect();
        let (engine, stack, opts) = (self.engine, self.stack, self.opts);
        let result =
            container::ensure_container(engine, stack, spec, &mine, self.network_ids, opts, line)
                .await?;
        let result = restart_after(engine, stack, result, &self.actions, opts, line).await?;
        // A poisoned lock only means another task panicked; the map is still whole.
        self.actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.name.clone(), result.action);
        tx.send_replace(Status::Started);
        let watch = self.watch(spec, &result.id);
        note(&opts.journal, &spec.name, Note::Health);
        health::follow(engine, &watch, tx, line).await?;
        Ok(result)
    }

    /// What `follow` waits for: health, or the exit a dependent's `service_completed_successfully`
    /// needs; the dependents that need it healthy are named when it is not.
    fn watch<'s>(&'s self, spec: &'s ServiceSpec, id: &'s str) -> Watch<'s> {
        let deps = self.stack.dependencies.iter();
        let on = |cond: Condition| {
            deps.clone()
                .filter(move |(_, deps)| {
                    deps.iter()
                        .any(|d| d.service == spec.name && d.condition == cond)
                })
                .map(|(dependent, _)| dependent.clone())
        };
        Watch {
            service: &spec.name,
            container: id,
            has_healthcheck: spec
                .healthcheck
                .as_ref()
                .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE")),
            probe: spec
                .healthcheck
                .as_ref()
                .and_then(|h| health::probe_command(&h.test)),
            needs_exit: on(Condition::CompletedSuccessfully).next().is_some(),
            healthy_for: on(Condition::Healthy).collect(),
            timeout: self.opts.timeout,
        }
    }
}

/// `depends_on.<x>.restart: true`: a service left running (unchanged) is restarted when `x`
/// was just recreated or restarted, as compose does, so it reconnects to the new one.
async fn restart_after(
    engine: &Engine,
    stack: &Stack,
    mut result: ServiceResult,
    actions: &std::sync::Mutex<HashMap<String, Action>>,
    opts: &UpOptions,
    line: &super::progress::Line,
) -> Result<ServiceResult, EngineError> {
    if result.action != Action::Unchanged {
        return Ok(result);
    }
    let changed: Vec<String> = {
        let actions = actions.lock().unwrap_or_else(|e| e.into_inner());
        stack
            .dependencies
            .get(&result.service)
            .into_iter()
            .flatten()
            .filter(|d| d.restart)
            .filter(|d| {
                matches!(
                    actions.get(&d.service),
                    Some(Action::Recreated | Action::Restarted)
                )
            })
            .map(|d| d.service.clone())
            .collect()
    };
    if changed.is_empty() {
        return Ok(result);
    }
    line.set(&format!("restarting after {}", changed.join(", ")));
    let t = i32::try_from(opts.timeout.as_secs().min(10)).unwrap_or(10);
    engine
        .docker
        .restart_container(
            &result.id,
            Some(bollard::query_parameters::RestartContainerOptions {
                t: Some(t),
                ..Default::default()
            }),
        )
        .await
        .map_err(EngineError::api(
            &result.service,
            "cannot restart its container",
        ))?;
    result.action = Action::Restarted;
    Ok(result)
}

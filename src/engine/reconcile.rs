//! `up`: make Docker match the stack. Networks and volumes first (created when missing, never
//! removed here), images pulled when missing, then every service in its own task that waits
//! for the conditions of its `depends_on`, so independent services start in parallel.
//!
//! A service's container is kept when it still matches (difyctl's config-hash label, or for a
//! container compose started, a field-by-field comparison), started when stopped, and
//! recreated otherwise. Volumes are never touched, so their data survives recreation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bollard::models::{
    ContainerSummary, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use serde::Serialize;
use tokio::sync::watch;

use super::adopt::differences;
use super::health::{self, Status, Watch};
use super::labels::{self, config_hash};
use super::progress::Progress;
use super::{create, images, Engine, EngineError};
use crate::stack::depends::Condition;
use crate::stack::model::Stack;
use crate::stack::mounts::Source;
use crate::stack::service::ServiceSpec;

pub struct UpOptions {
    /// How long one service may take to become healthy (or complete).
    pub timeout: Duration,
    /// The compose file, for the config_files label.
    pub config_file: String,
    /// Services whose containers are stopped when found (nginx, certbot: difyctl does their
    /// job and needs their ports).
    pub retired: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Running and matching: left alone.
    Unchanged,
    /// Matching but stopped: started.
    Started,
    Created,
    Recreated,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceResult {
    pub service: String,
    pub container: String,
    pub id: String,
    pub action: Action,
}

#[derive(Debug, Default)]
pub struct UpReport {
    pub services: Vec<ServiceResult>,
    pub warnings: Vec<String>,
}

pub async fn up(
    engine: &Engine,
    stack: &Stack,
    opts: &UpOptions,
    progress: &Progress,
) -> Result<UpReport, EngineError> {
    check_conditions(stack)?;
    let mut report = UpReport::default();
    ensure_networks(engine, stack, &mut report.warnings).await?;
    ensure_volumes(engine, stack).await?;
    create_bind_sources(stack)?;
    images::ensure(engine, stack, progress, false).await?;

    let existing = project_containers(engine, &stack.project, true).await?;
    retire(engine, stack, opts, &existing, &mut report.warnings).await?;

    let needs_exit: HashSet<&str> = stack
        .dependencies
        .values()
        .flatten()
        .filter(|d| d.condition == Condition::CompletedSuccessfully)
        .map(|d| d.service.as_str())
        .collect();
    let channels: HashMap<&str, watch::Sender<Status>> = stack
        .services
        .iter()
        .map(|s| (s.name.as_str(), watch::channel(Status::Pending).0))
        .collect();

    let tasks = stack.services.iter().map(|spec| {
        let channels = &channels;
        let existing = &existing;
        let needs_exit = needs_exit.contains(spec.name.as_str());
        async move {
            let tx = &channels[spec.name.as_str()];
            let line = progress.line(&spec.name);
            let result = async {
                for dep in stack.dependencies.get(&spec.name).into_iter().flatten() {
                    line.set(&format!("waiting for {}", dep.service));
                    let rx = channels[dep.service.as_str()].subscribe();
                    if !health::wait_for(rx, dep.condition).await {
                        line.finish(&format!("not started: {} failed", dep.service));
                        return Err(EngineError::DependencyFailed {
                            service: spec.name.clone(),
                            dependency: dep.service.clone(),
                        });
                    }
                }
                let mine: Vec<&ContainerSummary> = existing
                    .iter()
                    .filter(|c| service_label(c) == Some(spec.name.as_str()))
                    .collect();
                let result = ensure_container(engine, stack, spec, &mine, opts, &line).await?;
                tx.send_replace(Status::Started);
                let watch = Watch {
                    service: &spec.name,
                    container: &result.id,
                    has_healthcheck: spec
                        .healthcheck
                        .as_ref()
                        .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE")),
                    probe: spec
                        .healthcheck
                        .as_ref()
                        .and_then(|h| health::probe_command(&h.test)),
                    needs_exit,
                    timeout: opts.timeout,
                };
                health::follow(engine, &watch, tx, &line).await?;
                Ok(result)
            }
            .await;
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

/// `service_healthy` on a service without a healthcheck could never be met: say so up front.
fn check_conditions(stack: &Stack) -> Result<(), EngineError> {
    for (service, deps) in &stack.dependencies {
        for d in deps {
            let has_check = stack
                .service(&d.service)
                .and_then(|s| s.healthcheck.as_ref())
                .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE"));
            if d.condition == Condition::Healthy && !has_check {
                return Err(EngineError::Unhealthy {
                    service: d.service.clone(),
                    detail: format!(
                        "{service} waits for it to be healthy (service_healthy), but it has no healthcheck"
                    ),
                });
            }
        }
    }
    Ok(())
}

pub fn service_label(c: &ContainerSummary) -> Option<&str> {
    c.labels
        .as_ref()
        .and_then(|l| l.get(labels::SERVICE))
        .map(String::as_str)
}

/// The project's containers (`all`: stopped ones too).
pub async fn project_containers(
    engine: &Engine,
    project: &str,
    all: bool,
) -> Result<Vec<ContainerSummary>, EngineError> {
    engine
        .docker
        .list_containers(Some(ListContainersOptions {
            all,
            filters: Some(labels::project_filter(project)),
            ..Default::default()
        }))
        .await
        .map_err(EngineError::api(
            format!("project {project}"),
            "cannot list its containers",
        ))
}

async fn ensure_container(
    engine: &Engine,
    stack: &Stack,
    spec: &ServiceSpec,
    mine: &[&ContainerSummary],
    opts: &UpOptions,
    line: &super::progress::Line,
) -> Result<ServiceResult, EngineError> {
    let name = spec.container_name(&stack.project);
    let hash = config_hash(spec);
    let mut keep = None;
    for c in mine {
        let Some(id) = c.id.as_deref() else { continue };
        if keep.is_some() {
            continue;
        }
        let info = engine
            .docker
            .inspect_container(id, None)
            .await
            .map_err(EngineError::api(&spec.name, "cannot inspect its container"))?;
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let matches = match labels.get(labels::DIFYCTL_HASH) {
            Some(h) => *h == hash,
            None => {
                let diff = differences(stack, spec, &info);
                if !diff.is_empty() {
                    tracing::info!(service = %spec.name, "recreating the container compose started: {}", diff.join("; "));
                }
                diff.is_empty()
            }
        };
        if matches {
            keep = Some((id.to_string(), c.state));
        }
    }
    let stop = |id: String| async move {
        let t = spec
            .stop_grace_period
            .map_or(10, |d| d.as_secs().min(600) as i32);
        let _ = engine
            .docker
            .stop_container(
                &id,
                Some(StopContainerOptions {
                    t: Some(t),
                    ..Default::default()
                }),
            )
            .await;
        engine
            .docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(EngineError::api(
                &spec.name,
                "cannot remove its old container",
            ))
    };
    // Extra containers of the service (scaled by hand, or left by a crash) go.
    for c in mine {
        let id = c.id.clone().unwrap_or_default();
        if keep.as_ref().is_some_and(|(k, _)| *k == id) {
            continue;
        }
        line.set("removing the old container");
        stop(id).await?;
    }
    let container = c_name(mine, keep.as_ref().map(|(id, _)| id.as_str())).unwrap_or(name.clone());
    if let Some((id, state)) = keep {
        let running = matches!(
            state,
            Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
        );
        if !running {
            line.set("starting");
            start(engine, &spec.name, &id).await?;
        }
        return Ok(ServiceResult {
            service: spec.name.clone(),
            container,
            id,
            action: if running {
                Action::Unchanged
            } else {
                Action::Started
            },
        });
    }

    if engine.docker.inspect_container(&name, None).await.is_ok() {
        return Err(EngineError::NameTaken {
            name,
            service: spec.name.clone(),
            project: stack.project.clone(),
        });
    }
    line.set("creating");
    let depends: Vec<String> = stack
        .dependencies
        .get(&spec.name)
        .into_iter()
        .flatten()
        .map(|d| d.service.clone())
        .collect();
    let labels = labels::container_labels(
        &stack.project,
        &stack.dir.display().to_string(),
        &opts.config_file,
        spec,
        &depends,
    );
    let body = create::container_body(stack, spec, labels);
    let created = engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(EngineError::api(
            &spec.name,
            format!("cannot create container {name}"),
        ))?;
    for (network, settings) in create::endpoints(stack, spec).into_iter().skip(1) {
        engine
            .docker
            .connect_network(
                &network,
                NetworkConnectRequest {
                    container: created.id.clone(),
                    endpoint_config: Some(settings),
                },
            )
            .await
            .map_err(EngineError::api(
                &spec.name,
                format!("cannot join network {network}"),
            ))?;
    }
    line.set("starting");
    start(engine, &spec.name, &created.id).await?;
    Ok(ServiceResult {
        service: spec.name.clone(),
        container: name,
        id: created.id,
        action: if mine.is_empty() {
            Action::Created
        } else {
            Action::Recreated
        },
    })
}

fn c_name(mine: &[&ContainerSummary], id: Option<&str>) -> Option<String> {
    let c = mine.iter().find(|c| c.id.as_deref() == id)?;
    c.names
        .as_ref()?
        .first()
        .map(|n| n.trim_start_matches('/').to_string())
}

async fn start(engine: &Engine, service: &str, id: &str) -> Result<(), EngineError> {
    engine
        .docker
        .start_container(id, None)
        .await
        .map_err(EngineError::api(service, "cannot start its container"))
}

/// Stops running containers of retired services (nginx, certbot); warns about orphans.
async fn retire(
    engine: &Engine,
    stack: &Stack,
    opts: &UpOptions,
    existing: &[ContainerSummary],
    warnings: &mut Vec<String>,
) -> Result<(), EngineError> {
    for c in existing {
        let Some(service) = service_label(c) else {
            continue;
        };
        if stack.service(service).is_some() {
            continue;
        }
        let running = matches!(
            c.state,
            Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
        );
        let name = c_name(&[c], c.id.as_deref()).unwrap_or_default();
        if opts.retired.iter().any(|r| r == service) {
            if running {
                warnings.push(format!(
                    "stopped {name} (service {service}): difyctl does its job; `down` removes it"
                ));
                let _ = engine
                    .docker
                    .stop_container(
                        &name,
                        Some(StopContainerOptions {
                            t: Some(10),
                            ..Default::default()
                        }),
                    )
                    .await;
            }
        } else {
            warnings.push(format!(
                "{name} belongs to service {service}, which this stack does not start (a disabled profile or a removed service): `down` removes it"
            ));
        }
    }
    Ok(())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

async fn ensure_networks(
    engine: &Engine,
    stack: &Stack,
    warnings: &mut Vec<String>,
) -> Result<(), EngineError> {
    for net in &stack.networks {
        let object = format!("network {}", net.docker_name);
        match engine.docker.inspect_network(&net.docker_name, None).await {
            Ok(found) => {
                if !net.external && found.internal.unwrap_or(false) != net.internal {
                    warnings.push(format!(
                        "network {} exists with internal={}, the compose file says {}: run `down` then `up` to recreate it",
                        net.docker_name,
                        found.internal.unwrap_or(false),
                        net.internal
                    ));
                }
            }
            Err(e) if is_not_found(&e) && net.external => {
                return Err(EngineError::Api {
                    object,
                    action: "is declared external but does not exist: create it first".into(),
                    source: e,
                })
            }
            Err(e) if is_not_found(&e) => {
                engine
                    .docker
                    .create_network(NetworkCreateRequest {
                        name: net.docker_name.clone(),
                        driver: net.driver.clone().or_else(|| Some("bridge".into())),
                        internal: Some(net.internal),
                        labels: Some(labels::object_labels(
                            &stack.project,
                            labels::NETWORK,
                            &net.key,
                        )),
                        ..Default::default()
                    })
                    .await
                    .map_err(EngineError::api(object, "cannot create it"))?;
            }
            Err(e) => return Err(EngineError::api(object, "cannot inspect it")(e)),
        }
    }
    Ok(())
}

async fn ensure_volumes(engine: &Engine, stack: &Stack) -> Result<(), EngineError> {
    for vol in &stack.volumes {
        let object = format!("volume {}", vol.docker_name);
        match engine.docker.inspect_volume(&vol.docker_name).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) && vol.external => {
                return Err(EngineError::Api {
                    object,
                    action: "is declared external but does not exist: create it first".into(),
                    source: e,
                })
            }
            Err(e) if is_not_found(&e) => {
                engine
                    .docker
                    .create_volume(VolumeCreateRequest {
                        name: Some(vol.docker_name.clone()),
                        labels: Some(labels::object_labels(
                            &stack.project,
                            labels::VOLUME,
                            &vol.key,
                        )),
                        ..Default::default()
                    })
                    .await
                    .map_err(EngineError::api(object, "cannot create it"))?;
            }
            Err(e) => return Err(EngineError::api(object, "cannot inspect it")(e)),
        }
    }
    Ok(())
}

/// Compose creates a missing bind-mount source as a folder; so does difyctl.
fn create_bind_sources(stack: &Stack) -> Result<(), EngineError> {
    for spec in &stack.services {
        for m in &spec.mounts {
            if let Source::Bind(path) = &m.source {
                if !path.exists() {
                    std::fs::create_dir_all(path).map_err(|source| EngineError::BindSource {
                        service: spec.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Names of services in `stack` that `names` refers to, or an error for an unknown one.
pub fn select<'a>(stack: &'a Stack, names: &[String]) -> Result<Vec<&'a ServiceSpec>, EngineError> {
    if names.is_empty() {
        return Ok(stack.services.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            stack
                .service(n)
                .ok_or_else(|| EngineError::UnknownService(n.clone()))
        })
        .collect()
}

/// For ordering output: service name -> position in the file.
pub fn positions(stack: &Stack) -> BTreeMap<String, usize> {
    stack
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect()
}

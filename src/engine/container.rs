//! One service's container during `up`: keep it when it still matches the service (difyctl's
//! config-hash label, or field by field for one compose started), start it when stopped,
//! recreate it otherwise (volumes untouched); and stop the containers of services difyctl
//! replaces (nginx, certbot).

use bollard::models::{ContainerSummary, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StopContainerOptions,
};

use super::adopt::differences;
use super::labels::{self, config_hash};
use super::listing::{display_name, service_label};
use super::outcome::{note, Action, Note, ServiceResult, UpOptions};
use super::progress::Line;
use super::{create, Engine, EngineError};
use crate::stack::model::Stack;
use crate::stack::service::ServiceSpec;

pub async fn ensure_container(
    engine: &Engine,
    stack: &Stack,
    spec: &ServiceSpec,
    mine: &[&ContainerSummary],
    network_ids: &std::collections::HashMap<String, String>,
    opts: &UpOptions,
    line: &Line,
) -> Result<ServiceResult, EngineError> {
    let keep = keeper(engine, stack, spec, mine, network_ids).await?;
    remove_others(
        engine,
        spec,
        mine,
        keep.as_ref().map(|(id, _)| id.as_str()),
        opts,
        line,
    )
    .await?;
    if let Some((id, state)) = keep {
        let container = mine
            .iter()
            .find(|c| c.id.as_deref() == Some(id.as_str()))
            .map_or_else(|| spec.container_name(&stack.project), |c| display_name(c));
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
    let (container, id) = create_and_start(engine, stack, spec, opts, line).await?;
    Ok(ServiceResult {
        service: spec.name.clone(),
        container,
        id,
        action: if mine.is_empty() {
            Action::Created
        } else {
            Action::Recreated
        },
    })
}

/// The first of the service's containers that still matches it (difyctl's hash label, or for
/// one compose started, a field-by-field comparison) and sits on the project's networks.
async fn keeper(
    engine: &Engine,
    stack: &Stack,
    spec: &ServiceSpec,
    mine: &[&ContainerSummary],
    network_ids: &std::collections::HashMap<String, String>,
) -> Result<Option<(String, Option<bollard::models::ContainerSummaryStateEnum>)>, EngineError> {
    let hash = config_hash(spec);
    for c in mine {
        let Some(id) = c.id.as_deref() else { continue };
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
        if !matches {
            continue;
        }
        if let Some(why) = detached(stack, spec, &info, network_ids) {
            // Kept as it is, it would fail to start ("network <id> not found") or be
            // unreachable: recreated on the project's networks.
            tracing::info!(service = %spec.name, "recreating its container: {why}");
            continue;
        }
        return Ok(Some((id.to_string(), c.state)));
    }
    Ok(None)
}

/// Every container of the service but the one kept goes (scaled by hand, left by a crash, or
/// the old one being replaced: noted in the journal first, so a killed `up` is healed).
async fn remove_others(
    engine: &Engine,
    spec: &ServiceSpec,
    mine: &[&ContainerSummary],
    keep: Option<&str>,
    opts: &UpOptions,
    line: &Line,
) -> Result<(), EngineError> {
    let grace = spec
        .stop_grace_period
        .map_or(10, |d| d.as_secs().min(600) as i32);
    for c in mine {
        let id = c.id.clone().unwrap_or_default();
        if keep == Some(id.as_str()) {
            continue;
        }
        line.set("removing the old container");
        if keep.is_none() {
            note(&opts.journal, &spec.name, Note::Removing);
        }
        stop_and_remove(engine, &id, grace)
            .await
            .map_err(EngineError::api(
                &spec.name,
                "cannot remove its old container",
            ))?;
        if keep.is_none() {
            note(&opts.journal, &spec.name, Note::Removed);
        }
    }
    Ok(())
}

/// Creates the service's container (its name free), joins its further networks and starts
/// it: its name and ID.
async fn create_and_start(
    engine: &Engine,
    stack: &Stack,
    spec: &ServiceSpec,
    opts: &UpOptions,
    line: &Line,
) -> Result<(String, String), EngineError> {
    let name = spec.container_name(&stack.project);
    if engine.docker.inspect_container(&name, None).await.is_ok() {
        return Err(EngineError::NameTaken {
            name,
            service: spec.name.clone(),
            project: stack.project.clone(),
        });
    }
    line.set("creating");
    // Compose's form: `db:service_healthy:true` (name, condition, restart).
    let depends: Vec<String> = stack
        .dependencies
        .get(&spec.name)
        .into_iter()
        .flatten()
        .map(|d| format!("{}:{}:{}", d.service, d.condition.name(), d.restart))
        .collect();
    let labels = labels::container_labels(
        &stack.project,
        &stack.dir.display().to_string(),
        &opts.config_file,
        spec,
        &depends,
    );
    let body = create::container_body(stack, spec, labels, engine.takes_start_interval());
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
        let request = NetworkConnectRequest {
            container: created.id.clone(),
            endpoint_config: Some(settings),
        };
        engine
            .docker
            .connect_network(&network, request)
            .await
            .map_err(EngineError::api(
                &spec.name,
                format!("cannot join network {network}"),
            ))?;
    }
    line.set("starting");
    start(engine, &spec.name, &created.id).await?;
    note(&opts.journal, &spec.name, Note::Created);
    Ok((name, created.id))
}

/// Stops a container (giving it `grace` seconds after SIGTERM; one already stopped is fine),
/// then removes it. Its volumes stay.
/// Why a container is not on the networks its service needs (one missing, or attached to a
/// network of that name that has since been replaced), if it is not.
fn detached(
    stack: &Stack,
    spec: &ServiceSpec,
    info: &bollard::models::ContainerInspectResponse,
    network_ids: &std::collections::HashMap<String, String>,
) -> Option<String> {
    if spec.network_mode.is_some() {
        return None;
    }
    let attached = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    for key in spec.networks.keys() {
        let Some(net) = stack.network(key) else {
            continue;
        };
        let Some(want) = network_ids.get(&net.docker_name) else {
            continue;
        };
        match attached.get(&net.docker_name) {
            None => return Some(format!("it is not on network {}", net.docker_name)),
            Some(ep) if ep.network_id.as_deref().is_some_and(|id| id != want) => {
                return Some(format!("network {} was recreated since", net.docker_name))
            }
            Some(_) => {}
        }
    }
    None
}

pub async fn stop_and_remove(
    engine: &Engine,
    id: &str,
    grace: i32,
) -> Result<(), bollard::errors::Error> {
    let _ = engine
        .docker
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: Some(grace),
                ..Default::default()
            }),
        )
        .await;
    engine
        .docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
}

async fn start(engine: &Engine, service: &str, id: &str) -> Result<(), EngineError> {
    engine
        .docker
        .start_container(id, None)
        .await
        .map_err(EngineError::api(service, "cannot start its container"))
}

/// Stops running containers of retired services (nginx, certbot); warns about orphans.
pub async fn retire(
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
        let name = display_name(c);
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

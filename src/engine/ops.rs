//! `down`, `ps`, `logs` and `restart`: everything found by the project label, so they work on
//! what compose started too, and `down` also removes containers of services no longer in the
//! file.

use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListNetworksOptions, ListVolumesOptions, RestartContainerOptions};
use serde::Serialize;

use super::container::stop_and_remove;
use super::labels;
use super::listing::{containers_of_services, display_name, project_containers, service_label};
use super::{Engine, EngineError};

#[derive(Debug, Default, Serialize)]
pub struct DownReport {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

/// Stops and removes the project's containers (in parallel), then its networks; named volumes
/// only with `volumes` (external ones never: they carry no project label).
pub async fn down(
    engine: &Engine,
    project: &str,
    volumes: bool,
    timeout: Duration,
) -> Result<DownReport, EngineError> {
    let containers = project_containers(engine, project, true).await?;
    let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
    let removals = containers.iter().map(|c| async move {
        let name = display_name(c);
        stop_and_remove(engine, c.id.as_deref().unwrap_or_default(), t)
            .await
            .map_err(EngineError::api(
                format!("container {name}"),
                "cannot remove it",
            ))?;
        Ok::<_, EngineError>(name)
    });
    let mut report = DownReport {
        containers: futures_util::future::try_join_all(removals).await?,
        ..Default::default()
    };
    let filters = Some(labels::project_filter(project));
    let networks = engine
        .docker
        .list_networks(Some(ListNetworksOptions {
            filters: filters.clone(),
        }))
        .await
        .map_err(EngineError::api(
            format!("project {project}"),
            "cannot list its networks",
        ))?;
    let removals = networks.into_iter().map(|n| async move {
        let name = n.name.unwrap_or_default();
        engine
            .docker
            .remove_network(&name)
            .await
            .map_err(EngineError::api(
                format!("network {name}"),
                "cannot remove it",
            ))?;
        Ok::<_, EngineError>(name)
    });
    report.networks = futures_util::future::try_join_all(removals).await?;
    if volumes {
        let list = engine
            .docker
            .list_volumes(Some(ListVolumesOptions { filters }))
            .await
            .map_err(EngineError::api(
                format!("project {project}"),
                "cannot list its volumes",
            ))?;
        for v in list.volumes.unwrap_or_default() {
            engine
                .docker
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
                .map_err(EngineError::api(
                    format!("volume {}", v.name),
                    "cannot remove it",
                ))?;
            report.volumes.push(v.name);
        }
    }
    Ok(report)
}

/// Stops and removes the containers of `services` (an upgrade undone: the services only the
/// new release has); the names of those removed.
pub async fn remove_services(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> Result<Vec<String>, EngineError> {
    let containers = project_containers(engine, project, true).await?;
    let mut removed = Vec::new();
    for c in containers
        .iter()
        .filter(|c| service_label(c).is_some_and(|s| services.iter().any(|x| x == s)))
    {
        let name = display_name(c);
        stop_and_remove(engine, c.id.as_deref().unwrap_or_default(), 10)
            .await
            .map_err(EngineError::api(
                format!("container {name}"),
                "cannot remove it",
            ))?;
        removed.push(name);
    }
    Ok(removed)
}

#[derive(Debug, Clone, Serialize)]
pub struct PsEntry {
    pub service: String,
    pub name: String,
    pub id: String,
    pub image: String,
    /// running, exited, restarting, ...
    pub state: String,
    /// healthy, unhealthy, starting; empty without a healthcheck.
    pub health: String,
    /// Docker's summary, e.g. "Up 5 minutes (healthy)".
    pub status: String,
    /// e.g. "127.0.0.1:5003->5003/tcp".
    pub ports: Vec<String>,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    /// Docker's restart policy: no, always, unless-stopped, on-failure.
    pub restart_policy: String,
}

/// The project's containers, sorted by service name.
pub async fn ps(engine: &Engine, project: &str) -> Result<Vec<PsEntry>, EngineError> {
    let containers = project_containers(engine, project, true).await?;
    let mut out = Vec::new();
    for c in &containers {
        let id = c.id.clone().unwrap_or_default();
        let info = engine
            .docker
            .inspect_container(&id, None)
            .await
            .map_err(EngineError::api(
                format!("container {}", display_name(c)),
                "cannot inspect it",
            ))?;
        let state = info.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let restart_policy = info
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|r| r.name)
            .map_or_else(|| "no".to_string(), |n| n.to_string());
        let mut ports: Vec<String> = c
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
                match p.public_port {
                    Some(public) => format!(
                        "{}:{public}->{}/{proto}",
                        p.ip.as_deref().unwrap_or("0.0.0.0"),
                        p.private_port
                    ),
                    None => format!("{}/{proto}", p.private_port),
                }
            })
            .collect();
        ports.sort();
        ports.dedup();
        out.push(PsEntry {
            service: service_label(c).unwrap_or("").to_string(),
            name: display_name(c),
            id: id.chars().take(12).collect(),
            image: c.image.clone().unwrap_or_default(),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| s != "none")
                .unwrap_or_default(),
            status: c.status.clone().unwrap_or_default(),
            ports,
            started_at: state.started_at.filter(|_| running),
            exit_code: state.exit_code.filter(|_| !running),
            restart_policy,
        });
    }
    out.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// Restarts the named services' containers (all with an empty list), in parallel; then the
/// services that name one of them with `depends_on.<x>.restart: true` (read from compose's
/// depends_on label, `db:service_healthy:true`), as compose does.
pub async fn restart(
    engine: &Engine,
    project: &str,
    services: &[String],
    timeout: Duration,
) -> Result<Vec<String>, EngineError> {
    let containers = containers_of_services(engine, project, services).await?;
    let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
    let named = |c: &&ContainerSummary| {
        services.is_empty() || service_label(c).is_some_and(|s| services.iter().any(|n| n == s))
    };
    let chosen: Vec<&ContainerSummary> = containers.iter().filter(named).collect();
    let mut done = restart_all(engine, &chosen, t).await?;
    if !services.is_empty() {
        let dependents: Vec<&ContainerSummary> = containers
            .iter()
            .filter(|c| !named(c) && restarts_with(c, services))
            .collect();
        done.extend(restart_all(engine, &dependents, t).await?);
    }
    Ok(done)
}

/// Stops the named services' containers (all with an empty list), in parallel; they stay.
pub async fn stop(
    engine: &Engine,
    project: &str,
    services: &[String],
    timeout: Duration,
) -> Result<Vec<String>, EngineError> {
    let containers = containers_of_services(engine, project, services).await?;
    let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
    let stops = containers
        .iter()
        .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
        .filter(|c| {
            services.is_empty() || service_label(c).is_some_and(|s| services.iter().any(|n| n == s))
        })
        .map(|c| async move {
            let name = display_name(c);
            let options = bollard::query_parameters::StopContainerOptions {
                t: Some(t),
                ..Default::default()
            };
            engine
                .docker
                .stop_container(&name, Some(options))
                .await
                .map_err(EngineError::api(
                    format!("container {name}"),
                    "cannot stop it",
                ))?;
            Ok::<_, EngineError>(name)
        });
    futures_util::future::try_join_all(stops).await
}

/// Starts the named services' stopped containers (all with an empty list).
pub async fn start(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> Result<Vec<String>, EngineError> {
    let containers = containers_of_services(engine, project, services).await?;
    let mut started = Vec::new();
    for c in containers.iter().filter(|c| {
        services.is_empty() || service_label(c).is_some_and(|s| services.iter().any(|n| n == s))
    }) {
        use bollard::models::ContainerSummaryStateEnum as S;
        if matches!(c.state, Some(S::RUNNING) | Some(S::PAUSED)) {
            continue;
        }
        let name = display_name(c);
        engine
            .docker
            .start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(EngineError::api(
                format!("container {name}"),
                "cannot start it",
            ))?;
        started.push(name);
    }
    Ok(started)
}

/// Whether the container's depends_on label names one of `services` with restart `true`.
fn restarts_with(c: &ContainerSummary, services: &[String]) -> bool {
    let Some(label) = c.labels.as_ref().and_then(|l| l.get(labels::DEPENDS_ON)) else {
        return false;
    };
    label.split(',').any(|d| {
        let mut parts = d.split(':');
        let name = parts.next().unwrap_or_default();
        let restart = parts.nth(1) == Some("true");
        restart && services.iter().any(|s| s == name)
    })
}

async fn restart_all(
    engine: &Engine,
    containers: &[&ContainerSummary],
    t: i32,
) -> Result<Vec<String>, EngineError> {
    let restarts = containers.iter().map(|c| async move {
        let name = display_name(c);
        engine
            .docker
            .restart_container(
                &name,
                Some(RestartContainerOptions {
                    t: Some(t),
                    ..Default::default()
                }),
            )
            .await
            .map_err(EngineError::api(
                format!("container {name}"),
                "cannot restart it",
            ))?;
        Ok::<_, EngineError>(name)
    });
    futures_util::future::try_join_all(restarts).await
}

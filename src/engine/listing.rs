//! The project's containers as Docker lists them, and the names compose gives them.

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;

use super::{labels, Engine, EngineError};

/// The container's name without Docker's leading `/` (its ID when it has none).
pub fn display_name(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| c.id.clone().unwrap_or_default())
}

pub fn service_label(c: &ContainerSummary) -> Option<&str> {
    c.labels
        .as_ref()
        .and_then(|l| l.get(labels::SERVICE))
        .map(String::as_str)
}

/// All the project's containers, stopped ones too, once every name in `services` is known
/// to have one (`logs api wokrer` fails on the typo instead of showing less).
pub async fn containers_of_services(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> Result<Vec<ContainerSummary>, EngineError> {
    let containers = project_containers(engine, project, true).await?;
    if let Some(unknown) = services.iter().find(|s| {
        !containers
            .iter()
            .any(|c| service_label(c) == Some(s.as_str()))
    }) {
        return Err(EngineError::UnknownService(unknown.clone()));
    }
    Ok(containers)
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

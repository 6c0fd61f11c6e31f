//! What the services stand on, created before them and never removed by `up`: networks and
//! named volumes (as compose names them; `external` ones must exist) and bind-mount folders.

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};

use super::labels;
use super::{Engine, EngineError};
use crate::stack::model::Stack;
use crate::stack::mounts::Source;

pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub async fn ensure_networks(
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

pub async fn ensure_volumes(engine: &Engine, stack: &Stack) -> Result<(), EngineError> {
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
pub fn create_bind_sources(stack: &Stack) -> Result<(), EngineError> {
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

//! What the services stand on, created before them and never removed by `up`: networks and
//! named volumes (as compose names them; `external` ones must exist) and bind-mount folders.

use std::collections::HashMap;

use bollard::models::{NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::ListNetworksOptions;

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

/// Creates the stack's missing networks; returns each one's Docker name -> ID (a container
/// attached to a network of the same name but another ID is stale). A name that several
/// networks share (two `up`s at once once made two `<project>_default`, and every later
/// `up` failed on "network is ambiguous") is repaired: the copies nothing is attached to are
/// removed; if containers use more than one copy, the error names them and the fix.
pub async fn ensure_networks(
    engine: &Engine,
    stack: &Stack,
    warnings: &mut Vec<String>,
) -> Result<HashMap<String, String>, EngineError> {
    let mut ids = HashMap::new();
    for net in &stack.networks {
        let object = format!("network {}", net.docker_name);
        let found = same_name(engine, &net.docker_name, warnings).await?;
        match found {
            Some(found) => {
                if !net.external && found.internal.unwrap_or(false) != net.internal {
                    warnings.push(format!(
                        "network {} exists with internal={}, the compose file says {}: run `down` then `up` to recreate it",
                        net.docker_name,
                        found.internal.unwrap_or(false),
                        net.internal
                    ));
                }
                ids.insert(net.docker_name.clone(), found.id.unwrap_or_default());
            }
            None if net.external => {
                return Err(EngineError::Api {
                    object,
                    action: "is declared external but does not exist: create it first".into(),
                    source: bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        message: "no such network".into(),
                    },
                })
            }
            None => {
                let created = engine
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
                ids.insert(net.docker_name.clone(), created.id);
            }
        }
    }
    Ok(ids)
}

/// The one network called `name` (Docker's name filter also matches prefixes), after
/// removing unused duplicates.
async fn same_name(
    engine: &Engine,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<bollard::models::NetworkInspect>, EngineError> {
    let object = format!("network {name}");
    let listed = engine
        .docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        }))
        .await
        .map_err(EngineError::api(&object, "cannot list networks"))?;
    let mut copies = Vec::new();
    for n in listed
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
    {
        let id = n.id.clone().unwrap_or_default();
        let info = engine
            .docker
            .inspect_network(&id, None)
            .await
            .map_err(EngineError::api(&object, "cannot inspect it"))?;
        copies.push(info);
    }
    if copies.len() > 1 {
        let (used, unused): (Vec<_>, Vec<_>) = copies
            .into_iter()
            .partition(|n| n.containers.as_ref().is_some_and(|c| !c.is_empty()));
        let mut keep = used;
        let mut spare = unused.into_iter();
        if keep.is_empty() {
            keep.extend(spare.next());
        }
        for extra in spare {
            let id = extra.id.unwrap_or_default();
            engine
                .docker
                .remove_network(&id)
                .await
                .map_err(EngineError::api(
                    &object,
                    "cannot remove an unused duplicate of it",
                ))?;
            warnings.push(format!(
                "network {name} existed twice (two starts at once?): removed the unused copy {id}"
            ));
        }
        if keep.len() > 1 {
            let listed: Vec<String> = keep
                .iter()
                .map(|n| n.id.clone().unwrap_or_default())
                .collect();
            return Err(EngineError::Api {
                object,
                action: format!(
                    "exists {} times ({}), each with containers attached: run `difyctl down`, then `docker network rm` all but one, then `difyctl up`",
                    keep.len(),
                    listed.join(", ")
                ),
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message: "ambiguous network name".into(),
                },
            });
        }
        return Ok(keep.pop());
    }
    Ok(copies.pop())
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

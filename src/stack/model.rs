//! The stack the engine creates: enabled services typed, with their dependencies, start waves,
//! and the networks and volumes they use under the names compose gives them
//! (`<project>_<key>`, or `name:`; `external` ones are used, never created or removed).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::compose::{Project, StackError};
use super::depends::Dependency;
use super::service::{scalar, ServiceSpec};

#[derive(Debug, Clone)]
pub struct Stack {
    pub project: String,
    pub dir: PathBuf,
    /// Profiles in effect (`--profile` and COMPOSE_PROFILES).
    pub profiles: Vec<String>,
    /// Enabled services in file order.
    pub services: Vec<ServiceSpec>,
    pub dependencies: BTreeMap<String, Vec<Dependency>>,
    pub waves: Vec<Vec<String>>,
    /// Networks used by the enabled services.
    pub networks: Vec<NetworkSpec>,
    /// Declared volumes used by the enabled services.
    pub volumes: Vec<VolumeSpec>,
    /// Keys difyctl ignores, unset variables: printed by `up` and `config`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub key: String,
    pub docker_name: String,
    pub internal: bool,
    pub external: bool,
    pub driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub key: String,
    pub docker_name: String,
    pub external: bool,
}

impl Stack {
    /// Types the enabled services of `project` (minus `excluded`, e.g. nginx and certbot).
    pub fn from_project(project: &Project, excluded: &[&str]) -> Result<Stack, StackError> {
        let volume_keys: Vec<String> = top(project, "volumes")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut warnings: Vec<String> = project
            .unset
            .iter()
            .map(|v| format!("the {v} variable is not set: defaulting to a blank string"))
            .collect();
        let mut services = Vec::new();
        for s in project.enabled_services(excluded) {
            let spec = ServiceSpec::parse(
                &s.name,
                &s.definition,
                &project.dir,
                &project.vars,
                &volume_keys,
                &mut warnings,
            )
            .map_err(|e| {
                invalid(
                    project,
                    format!("services.{}.{}", e.service, e.key),
                    e.message,
                )
            })?;
            services.push(spec);
        }
        publish_on_loopback(&mut services, &mut warnings);
        let dependencies = project.dependencies(excluded)?;
        warn_unchecked_health(&services, &dependencies, &mut warnings);
        Ok(Stack {
            project: project.name.clone(),
            dir: project.dir.clone(),
            profiles: project.profiles.clone(),
            waves: project.start_order(excluded)?,
            networks: networks_of(project, &services)?,
            volumes: volumes_of(project, &services),
            services,
            dependencies,
            warnings,
        })
    }

    /// A stack with nothing in it (a placeholder until one is loaded).
    pub fn empty() -> Stack {
        Stack {
            project: String::new(),
            dir: PathBuf::new(),
            profiles: Vec::new(),
            services: Vec::new(),
            dependencies: BTreeMap::new(),
            waves: Vec::new(),
            networks: Vec::new(),
            volumes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The part of the stack `names` need: those services and, transitively, what they
    /// depend on (a restore starts the database alone first).
    pub fn only(&self, names: &[String]) -> Stack {
        let mut keep: Vec<String> = Vec::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(name) = todo.pop() {
            if keep.contains(&name) {
                continue;
            }
            for d in self.dependencies.get(&name).into_iter().flatten() {
                todo.push(d.service.clone());
            }
            keep.push(name);
        }
        let kept = |n: &String| keep.contains(n);
        Stack {
            services: self
                .services
                .iter()
                .filter(|s| kept(&s.name))
                .cloned()
                .collect(),
            dependencies: self
                .dependencies
                .iter()
                .filter(|(k, _)| kept(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            waves: self
                .waves
                .iter()
                .map(|w| w.iter().filter(|n| kept(n)).cloned().collect::<Vec<_>>())
                .filter(|w| !w.is_empty())
                .collect(),
            ..self.clone()
        }
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn network(&self, key: &str) -> Option<&NetworkSpec> {
        self.networks.iter().find(|n| n.key == key)
    }

    pub fn volume(&self, key: &str) -> Option<&VolumeSpec> {
        self.volumes.iter().find(|v| v.key == key)
    }
}

fn invalid(project: &Project, key: String, message: String) -> StackError {
    StackError::Invalid {
        path: project.compose_file.clone(),
        key,
        message,
    }
}

/// A top-level section (`volumes`, `networks`) as (key, definition) pairs.
fn top(project: &Project, section: &str) -> Vec<(String, Value)> {
    match project.document.get(section) {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

/// Only the proxy faces the network: a port published without a host address is published on
/// loopback (compose would use every interface). Dify's plugin debugging port (5003) is the
/// usual case.
fn publish_on_loopback(services: &mut [ServiceSpec], warnings: &mut Vec<String>) {
    for spec in services {
        for port in &mut spec.ports {
            if port.host_ip.is_none() && port.published.is_some() {
                port.host_ip = Some("127.0.0.1".into());
                warnings.push(format!(
                    "services.{}.ports: {host} is published on 127.0.0.1 only; write `0.0.0.0:{host}:{}` to publish it on every interface",
                    spec.name,
                    port.target,
                    host = port.host_port().unwrap_or_default(),
                ));
            }
        }
    }
}

/// `service_healthy` on a service the compose file gives no healthcheck: its image may have
/// one (Docker reports its status then); `up` says so when it has none.
fn warn_unchecked_health(
    services: &[ServiceSpec],
    dependencies: &BTreeMap<String, Vec<Dependency>>,
    warnings: &mut Vec<String>,
) {
    for (service, deps) in dependencies {
        for d in deps {
            let checked = services
                .iter()
                .find(|s| s.name == d.service)
                .and_then(|s| s.healthcheck.as_ref())
                .is_some_and(|h| h.test.first().map(String::as_str) != Some("NONE"));
            if d.condition == super::depends::Condition::Healthy && !checked {
                warnings.push(format!(
                    "services.{service}.depends_on.{}: condition service_healthy, but {} has no healthcheck in the compose file: `up` fails unless its image defines one",
                    d.service, d.service
                ));
            }
        }
    }
}

/// Docker's name of a network or volume: its `name`, else the key for an external one, else
/// `<project>_<key>`.
fn docker_name(project: &Project, key: &str, def: &Value) -> (String, bool) {
    let external = is_true(def.get("external"));
    let name = match (def.get("name").and_then(scalar), external) {
        (Some(n), _) => n,
        (None, true) => key.to_string(),
        (None, false) => format!("{}_{key}", project.name),
    };
    (name, external)
}

/// The networks the services use; each but `default` must be declared.
fn networks_of(
    project: &Project,
    services: &[ServiceSpec],
) -> Result<Vec<NetworkSpec>, StackError> {
    let declared = top(project, "networks");
    let mut used: Vec<&String> = services.iter().flat_map(|s| s.networks.keys()).collect();
    used.sort();
    used.dedup();
    let mut networks = Vec::new();
    for key in used {
        let def = declared
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone());
        if def.is_none() && key != "default" {
            let user = services
                .iter()
                .find(|s| s.networks.contains_key(key))
                .map_or("?", |s| s.name.as_str());
            return Err(invalid(
                project,
                format!("services.{user}.networks"),
                format!("network `{key}` is not declared under the top-level `networks:`"),
            ));
        }
        let def = def.unwrap_or(Value::Null);
        let (docker_name, external) = docker_name(project, key, &def);
        networks.push(NetworkSpec {
            key: key.clone(),
            docker_name,
            internal: is_true(def.get("internal")),
            external,
            driver: def.get("driver").and_then(scalar),
        });
    }
    Ok(networks)
}

/// The declared volumes some service mounts.
fn volumes_of(project: &Project, services: &[ServiceSpec]) -> Vec<VolumeSpec> {
    let mut volumes = Vec::new();
    for (key, def) in top(project, "volumes") {
        let used = services.iter().any(|s| {
            s.mounts
                .iter()
                .any(|m| m.source == super::mounts::Source::Volume(key.clone()))
        });
        if used {
            let (docker_name, external) = docker_name(project, &key, &def);
            volumes.push(VolumeSpec {
                docker_name,
                key,
                external,
            });
        }
    }
    volumes
}

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        // Compose's old form `external: {name: x}` also means external.
        Some(Value::Object(_)) => true,
        _ => false,
    }
}

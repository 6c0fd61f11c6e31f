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
        let invalid = |key: String, message: String| StackError::Invalid {
            path: project.compose_file.clone(),
            key,
            message,
        };
        let top = |section: &str| -> Vec<(String, Value)> {
            match project.document.get(section) {
                Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                _ => Vec::new(),
            }
        };
        let declared_volumes = top("volumes");
        let volume_keys: Vec<String> = declared_volumes.iter().map(|(k, _)| k.clone()).collect();

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
            .map_err(|e| invalid(format!("services.{}.{}", e.service, e.key), e.message))?;
            services.push(spec);
        }
        // Only the proxy faces the network: a port published without a host address is
        // published on loopback (compose would use every interface). Dify's plugin debugging
        // port (5003) is the usual case.
        for spec in &mut services {
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
        let dependencies = project.dependencies(excluded)?;
        // `service_healthy` on a service the compose file gives no healthcheck: its image may
        // have one (Docker reports its status then); `up` says so when it has none.
        for (service, deps) in &dependencies {
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
        let waves = project.start_order(excluded)?;

        let declared_networks = top("networks");
        let mut networks = Vec::new();
        let used_networks: Vec<&String> = {
            let mut used: Vec<&String> = services.iter().flat_map(|s| s.networks.keys()).collect();
            used.sort();
            used.dedup();
            used
        };
        for key in used_networks {
            let def = declared_networks
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone());
            if def.is_none() && key != "default" {
                let user = services
                    .iter()
                    .find(|s| s.networks.contains_key(key))
                    .map_or("?", |s| s.name.as_str());
                return Err(invalid(
                    format!("services.{user}.networks"),
                    format!("network `{key}` is not declared under the top-level `networks:`"),
                ));
            }
            let def = def.unwrap_or(Value::Null);
            let external = is_true(def.get("external"));
            let explicit = def.get("name").and_then(scalar);
            networks.push(NetworkSpec {
                key: key.clone(),
                docker_name: match (explicit, external) {
                    (Some(n), _) => n,
                    (None, true) => key.clone(),
                    (None, false) => format!("{}_{key}", project.name),
                },
                internal: is_true(def.get("internal")),
                external,
                driver: def.get("driver").and_then(scalar),
            });
        }

        let mut volumes = Vec::new();
        for (key, def) in declared_volumes {
            let used = services.iter().any(|s| {
                s.mounts
                    .iter()
                    .any(|m| m.source == super::mounts::Source::Volume(key.clone()))
            });
            if !used {
                continue;
            }
            let external = is_true(def.get("external"));
            let explicit = def.get("name").and_then(scalar);
            volumes.push(VolumeSpec {
                docker_name: match (explicit, external) {
                    (Some(n), _) => n,
                    (None, true) => key.clone(),
                    (None, false) => format!("{}_{key}", project.name),
                },
                key,
                external,
            });
        }
        Ok(Stack {
            project: project.name.clone(),
            dir: project.dir.clone(),
            profiles: project.profiles.clone(),
            services,
            dependencies,
            waves,
            networks,
            volumes,
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

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        // Compose's old form `external: {name: x}` also means external.
        Some(Value::Object(_)) => true,
        _ => false,
    }
}

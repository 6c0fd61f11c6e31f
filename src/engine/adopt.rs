//! Adopting an install compose started: its containers carry compose's own config hash, which
//! difyctl cannot reproduce, so they are compared field by field with what the service asks
//! for. Equal: left running. Different: recreated (the volumes, and so the data, stay).

use bollard::models::{ContainerInspectResponse, HostConfig};

use crate::stack::model::Stack;
use crate::stack::mounts::Source;
use crate::stack::service::{Restart, ServiceSpec};

/// What differs between the running container and the service, in words; empty when equal.
pub fn differences(
    stack: &Stack,
    spec: &ServiceSpec,
    info: &ContainerInspectResponse,
) -> Vec<String> {
    let mut diff = Vec::new();
    let config = info.config.clone().unwrap_or_default();
    let host = info.host_config.clone().unwrap_or_default();
    if config.image.as_deref() != Some(spec.image.as_str()) {
        diff.push(format!(
            "image {} -> {}",
            config.image.clone().unwrap_or_default(),
            spec.image
        ));
    }
    let env = config.env.clone().unwrap_or_default();
    for (k, v) in &spec.environment {
        if !env.contains(&format!("{k}={v}")) {
            diff.push(format!("environment {k}"));
        }
    }
    if spec.command.is_some() && config.cmd != spec.command {
        diff.push("command".into());
    }
    if spec.entrypoint.is_some() && config.entrypoint != spec.entrypoint {
        diff.push("entrypoint".into());
    }
    mounts(stack, spec, info, &mut diff);
    ports(spec, &host, &mut diff);
    let networks = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    for key in spec.networks.keys() {
        if let Some(net) = stack.network(key) {
            if !networks.contains_key(&net.docker_name) {
                diff.push(format!("network {}", net.docker_name));
            }
        }
    }
    restart(spec, &host, &mut diff);
    if let Some(h) = &spec.healthcheck {
        let have = config.healthcheck.and_then(|c| c.test).unwrap_or_default();
        if have != h.test {
            diff.push("healthcheck".into());
        }
    }
    diff
}

fn mounts(
    stack: &Stack,
    spec: &ServiceSpec,
    info: &ContainerInspectResponse,
    diff: &mut Vec<String>,
) {
    let mounts = info.mounts.clone().unwrap_or_default();
    for m in &spec.mounts {
        let found = mounts.iter().any(|mp| {
            mp.destination.as_deref() == Some(m.target.as_str())
                && match &m.source {
                    Source::Bind(path) => mp.source.as_deref() == Some(&*path.to_string_lossy()),
                    Source::Volume(key) => {
                        let name = stack.volume(key).map_or(key.as_str(), |v| &v.docker_name);
                        mp.name.as_deref() == Some(name)
                    }
                    Source::Anonymous | Source::Tmpfs => true,
                }
        });
        if !found {
            diff.push(format!("volume at {}", m.target));
        }
    }
}

fn ports(spec: &ServiceSpec, host: &HostConfig, diff: &mut Vec<String>) {
    let bindings = host.port_bindings.clone().unwrap_or_default();
    for p in &spec.ports {
        let key = format!("{}/{}", p.target, p.protocol);
        let published = bindings.get(&key).cloned().flatten().unwrap_or_default();
        let any = |ip: Option<&str>| ip.is_none_or(|ip| ip.is_empty() || ip == "0.0.0.0");
        let ok = published.iter().any(|b| {
            p.host_port()
                .is_none_or(|n| b.host_port.as_deref() == Some(n.as_str()))
                && (b.host_ip.as_deref() == p.host_ip.as_deref()
                    || any(b.host_ip.as_deref()) && any(p.host_ip.as_deref()))
        });
        if !ok {
            diff.push(format!("port {key}"));
        }
    }
}

fn restart(spec: &ServiceSpec, host: &HostConfig, diff: &mut Vec<String>) {
    let want = match spec.restart {
        Restart::No => "no",
        Restart::Always => "always",
        Restart::UnlessStopped => "unless-stopped",
        Restart::OnFailure(_) => "on-failure",
    };
    let have = host
        .restart_policy
        .as_ref()
        .and_then(|r| r.name)
        .map(|n| n.to_string())
        .unwrap_or_default();
    if have != want && !(want == "no" && have.is_empty()) {
        diff.push(format!("restart {have} -> {want}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, EndpointSettings, HostConfig, MountPoint, NetworkSettings, PortBinding,
        RestartPolicy, RestartPolicyNameEnum,
    };
    use std::collections::HashMap;

    fn stack() -> Stack {
        let dir = std::env::temp_dir().join(format!("difyctl-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("docker-compose.yaml"),
            "services:\n  api:\n    image: api:1\n    environment:\n      MODE: api\n    volumes: ['data:/data', '/srv/x:/x']\n    ports: ['127.0.0.1:5003:5003']\n    restart: always\nvolumes:\n  data:\n",
        )
        .unwrap();
        let project = crate::stack::compose::Project::load(&crate::stack::compose::LoadOptions {
            compose_file: dir.join("docker-compose.yaml"),
            project_name: Some("p".into()),
            ..Default::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        Stack::from_project(&project, &[]).unwrap()
    }

    /// What docker-compose 1.29 creates for that service.
    fn compose_started() -> ContainerInspectResponse {
        ContainerInspectResponse {
            config: Some(ContainerConfig {
                image: Some("api:1".into()),
                env: Some(vec!["PATH=/usr/bin".into(), "MODE=api".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    "5003/tcp".to_string(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some("5003".into()),
                    }]),
                )])),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: Some(0),
                }),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    name: Some("p_data".into()),
                    destination: Some("/data".into()),
                    ..Default::default()
                },
                MountPoint {
                    source: Some("/srv/x".into()),
                    destination: Some("/x".into()),
                    ..Default::default()
                },
            ]),
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([(
                    "p_default".to_string(),
                    EndpointSettings::default(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_equal_container_is_kept_and_each_difference_is_named() {
        let stack = stack();
        let spec = stack.service("api").unwrap();
        assert_eq!(
            differences(&stack, spec, &compose_started()),
            Vec::<String>::new()
        );

        let mut other = compose_started();
        other.config.as_mut().unwrap().env = Some(vec!["MODE=worker".into()]);
        other.config.as_mut().unwrap().image = Some("api:0".into());
        other.mounts.as_mut().unwrap()[0].name = Some("q_data".into());
        other.host_config.as_mut().unwrap().port_bindings = Some(HashMap::new());
        other.network_settings = None;
        let diff = differences(&stack, spec, &other);
        assert_eq!(
            diff,
            [
                "image api:0 -> api:1",
                "environment MODE",
                "volume at /data",
                "port 5003/tcp",
                "network p_default"
            ]
        );
    }
}

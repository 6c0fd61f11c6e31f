//! Adopting an install compose started: its containers carry compose's own config hash, which
//! difyctl cannot reproduce, so they are compared field by field with what the service asks
//! for. Equal: left running. Different: recreated (the volumes, and so the data, stay).

use bollard::models::ContainerInspectResponse;

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
            config.image.unwrap_or_default(),
            spec.image
        ));
    }
    let env = config.env.unwrap_or_default();
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
    let bindings = host.port_bindings.unwrap_or_default();
    for p in &spec.ports {
        let key = format!("{}/{}", p.target, p.protocol);
        let published = bindings.get(&key).cloned().flatten().unwrap_or_default();
        let any = |ip: Option<&str>| ip.is_none_or(|ip| ip.is_empty() || ip == "0.0.0.0");
        let ok = published.iter().any(|b| {
            p.published
                .is_none_or(|n| b.host_port.as_deref() == Some(&*n.to_string()))
                && (b.host_ip.as_deref() == p.host_ip.as_deref()
                    || any(b.host_ip.as_deref()) && any(p.host_ip.as_deref()))
        });
        if !ok {
            diff.push(format!("port {key}"));
        }
    }
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
    let want = match spec.restart {
        Restart::No => "no",
        Restart::Always => "always",
        Restart::UnlessStopped => "unless-stopped",
        Restart::OnFailure(_) => "on-failure",
    };
    let have = host
        .restart_policy
        .and_then(|r| r.name)
        .map(|n| n.to_string())
        .unwrap_or_default();
    if have != want && !(want == "no" && have.is_empty()) {
        diff.push(format!("restart {have} -> {want}"));
    }
    if let Some(h) = &spec.healthcheck {
        let have = config.healthcheck.and_then(|c| c.test).unwrap_or_default();
        if have != h.test {
            diff.push("healthcheck".into());
        }
    }
    diff
}

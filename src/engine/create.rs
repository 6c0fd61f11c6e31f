//! A service as a container-create request, the way compose v2 builds it: the image's own
//! command and entrypoint unless the service sets them, binds and named volumes as `Binds`,
//! published ports, restart policy, limits, and the first network at create time (Docker
//! before API 1.44 takes one network in the create call; the others are connected before
//! start).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use crate::stack::model::Stack;
use crate::stack::mounts::Source;
use crate::stack::service::{Restart, ServiceSpec};

/// The networks a service joins, as (Docker network name, aliases), in a stable order.
pub fn endpoints(stack: &Stack, spec: &ServiceSpec) -> Vec<(String, EndpointSettings)> {
    spec.networks
        .iter()
        .filter_map(|(key, extra)| {
            let net = stack.network(key)?;
            let mut aliases = vec![spec.name.clone()];
            aliases.extend(extra.iter().cloned());
            Some((
                net.docker_name.clone(),
                EndpointSettings {
                    aliases: Some(aliases),
                    ..Default::default()
                },
            ))
        })
        .collect()
}

pub fn container_body(
    stack: &Stack,
    spec: &ServiceSpec,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    let mut tmpfs: HashMap<String, String> = spec
        .tmpfs
        .iter()
        .map(|t| (t.clone(), String::new()))
        .collect();
    for m in &spec.mounts {
        let ro = if m.read_only { ":ro" } else { "" };
        match &m.source {
            Source::Bind(path) => binds.push(format!("{}:{}{ro}", path.display(), m.target)),
            Source::Volume(key) => {
                let name = stack.volume(key).map_or(key.as_str(), |v| &v.docker_name);
                binds.push(format!("{name}:{}{ro}", m.target));
            }
            Source::Anonymous => anonymous.push(m.target.clone()),
            Source::Tmpfs => {
                tmpfs.insert(m.target.clone(), String::new());
            }
        }
    }
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        port_bindings
            .entry(format!("{}/{}", p.target, p.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port(),
            });
    }
    let (restart_name, retries) = match spec.restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, Some(i64::from(n))),
    };
    let endpoints = endpoints(stack, spec);
    let network_mode = spec
        .network_mode
        .clone()
        .or_else(|| endpoints.first().map(|(name, _)| name.clone()));
    let host_config = HostConfig {
        binds: Some(binds),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: Some(port_bindings),
        restart_policy: Some(RestartPolicy {
            name: Some(restart_name),
            maximum_retry_count: retries,
        }),
        network_mode,
        memory: spec.memory_limit.and_then(|m| i64::try_from(m).ok()),
        nano_cpus: spec.nano_cpus,
        shm_size: spec.shm_size.and_then(|m| i64::try_from(m).ok()),
        init: spec.init,
        privileged: Some(spec.privileged),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
        security_opt: (!spec.security_opt.is_empty()).then(|| spec.security_opt.clone()),
        sysctls: (!spec.sysctls.is_empty()).then(|| {
            spec.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|(name, (soft, hard))| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(
            spec.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin_open),
        labels: Some(labels),
        exposed_ports: Some(
            spec.ports
                .iter()
                .map(|p| format!("{}/{}", p.target, p.protocol))
                .collect(),
        ),
        volumes: (!anonymous.is_empty()).then_some(anonymous),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval.map(ns),
            timeout: h.timeout.map(ns),
            retries: h.retries.map(i64::from),
            start_period: h.start_period.map(ns),
            start_interval: None,
        }),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec
            .stop_grace_period
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        host_config: Some(host_config),
        networking_config: endpoints
            .into_iter()
            .next()
            .map(|(name, settings)| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(name, settings)])),
            }),
        ..Default::default()
    }
}

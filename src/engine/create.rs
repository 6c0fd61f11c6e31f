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
use crate::stack::service::{Healthcheck, Restart, ServiceSpec};

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

/// `fast_start`: the engine takes a healthcheck's `start_interval` (API 1.44+).
/// Docker's first check only comes one `interval` after the start (30 s unless set), so a
/// healthy service would read "starting" that long. Where the engine allows it, the first
/// interval becomes a start period (unless the file sets one) checked every second (unless
/// the file sets `start_interval`): Docker's own status then agrees with difyctl's probe
/// within a second. On older engines difyctl waits for Docker's status instead (health.rs).
fn health_config(h: &Healthcheck, fast_start: bool) -> HealthConfig {
    let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let interval = h.interval.unwrap_or(std::time::Duration::from_secs(30));
    let (start_period, start_interval) =
        if fast_start && h.test.first().map(String::as_str) != Some("NONE") {
            (
                Some(h.start_period.unwrap_or(interval)),
                Some(
                    h.start_interval
                        .unwrap_or(std::time::Duration::from_secs(1)),
                ),
            )
        } else {
            (h.start_period, None)
        };
    HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval.map(ns),
        timeout: h.timeout.map(ns),
        retries: h.retries.map(i64::from),
        start_period: start_period.map(ns),
        start_interval: start_interval.map(ns),
    }
}

pub fn container_body(
    stack: &Stack,
    spec: &ServiceSpec,
    labels: HashMap<String, String>,
    fast_start: bool,
) -> ContainerCreateBody {
    let (binds, anonymous, tmpfs) = mounts(stack, spec);
    let endpoints = endpoints(stack, spec);
    let network_mode = spec
        .network_mode
        .clone()
        .or_else(|| endpoints.first().map(|(name, _)| name.clone()));
    let host_config = HostConfig {
        binds: Some(binds),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: Some(port_bindings(spec)),
        restart_policy: Some(restart_policy(spec.restart)),
        network_mode,
        ..limits(spec)
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
        healthcheck: spec
            .healthcheck
            .as_ref()
            .map(|h| health_config(h, fast_start)),
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

/// Binds (host paths and named volumes), anonymous volumes and tmpfs mounts.
fn mounts(
    stack: &Stack,
    spec: &ServiceSpec,
) -> (Vec<String>, Vec<String>, HashMap<String, String>) {
    let mut binds = Vec::new();
    let mut anonymous = Vec::new();
    let mut tmpfs: HashMap<String, String> = spec
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            // `/run:size=64m`: the target, then Docker's mount options.
            Some((target, options)) => (target.to_string(), options.to_string()),
            None => (t.clone(), String::new()),
        })
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
    (binds, anonymous, tmpfs)
}

fn port_bindings(spec: &ServiceSpec) -> HashMap<String, Option<Vec<PortBinding>>> {
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        bindings
            .entry(format!("{}/{}", p.target, p.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port(),
            });
    }
    bindings
}

fn restart_policy(restart: Restart) -> RestartPolicy {
    let (name, retries) = match restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, Some(i64::from(n))),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

/// Limits, privileges, capabilities, hosts, sysctls and ulimits.
fn limits(spec: &ServiceSpec) -> HostConfig {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    HostConfig {
        memory: spec.memory_limit.and_then(|m| i64::try_from(m).ok()),
        nano_cpus: spec.nano_cpus,
        shm_size: spec.shm_size.and_then(|m| i64::try_from(m).ok()),
        init: spec.init,
        privileged: Some(spec.privileged),
        cap_add: some(&spec.cap_add),
        cap_drop: some(&spec.cap_drop),
        extra_hosts: some(&spec.extra_hosts),
        security_opt: some(&spec.security_opt),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn start_interval_only_where_the_engine_takes_it() {
        let h = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: Some(Duration::from_secs(10)),
            timeout: None,
            retries: Some(3),
            start_period: None,
            start_interval: None,
        };
        let new = health_config(&h, true);
        assert_eq!(new.start_period, Some(10_000_000_000), "the first interval");
        assert_eq!(new.start_interval, Some(1_000_000_000));
        let old = health_config(&h, false);
        assert_eq!((old.start_period, old.start_interval), (None, None));
        let own = Healthcheck {
            start_period: Some(Duration::from_secs(60)),
            start_interval: Some(Duration::from_secs(5)),
            ..h
        };
        let kept = health_config(&own, true);
        assert_eq!(kept.start_period, Some(60_000_000_000));
        assert_eq!(kept.start_interval, Some(5_000_000_000));
    }
}

//! The compose keys of a service that have no Kubernetes equivalent in the export, each
//! reported with what to do instead (never dropped silently).

use super::names::k8s;
use super::Unmapped;
use crate::stack::service::ServiceSpec;

pub fn report(s: &ServiceSpec, out: &mut Vec<Unmapped>) {
    let mut say = |key: String, note: String| {
        out.push(Unmapped {
            service: s.name.clone(),
            key,
            note,
        })
    };
    for (i, p) in s.ports.iter().enumerate() {
        if let Some(host) = p.host_port() {
            say(
                format!("ports[{i}]"),
                format!("host port {host} is not published: inside the cluster use Service {}:{}; outside, a LoadBalancer or NodePort Service", k8s(&s.name), p.target),
            );
        }
    }
    if let Some(mode) = &s.network_mode {
        say(
            "network_mode".into(),
            format!("`{mode}` has no equivalent: the pod gets its own network"),
        );
    }
    if let Some(name) = &s.container_name {
        say(
            "container_name".into(),
            format!("`{name}`: pods are named by their controller"),
        );
    }
    for h in s.extra_hosts.iter().filter(|h| h.contains("host-gateway")) {
        say(
            "extra_hosts".into(),
            format!("`{h}`: the cluster has no single host to point at"),
        );
    }
    if !s.sysctls.is_empty() {
        say("sysctls".into(), "left out: most need the cluster to allow them (securityContext.sysctls, kubelet --allowed-unsafe-sysctls)".into());
    }
    if !s.ulimits.is_empty() {
        say(
            "ulimits".into(),
            "left out: limits come from the node's container runtime".into(),
        );
    }
    if !s.security_opt.is_empty() {
        say(
            "security_opt".into(),
            format!(
                "{:?} left out: use securityContext (seccompProfile, appArmorProfile)",
                s.security_opt
            ),
        );
    }
    if let Some(signal) = &s.stop_signal {
        say(
            "stop_signal".into(),
            format!("{signal}: Kubernetes sends SIGTERM (a preStop hook can send another)"),
        );
    }
    if s.init == Some(true) {
        say(
            "init".into(),
            "no init process is added: use an image with one (tini) if it reaps children".into(),
        );
    }
    if s.tty || s.stdin_open {
        say(
            "tty/stdin_open".into(),
            "left out: not needed by a service".into(),
        );
    }
}

//! Compose networks as NetworkPolicies: every pod is labelled with the networks its service is
//! on; a pod accepts connections only from pods sharing one of them (the fronted services
//! also from the gateway, in any namespace), and a service whose networks are all internal
//! (Dify's sandbox on `ssrf_proxy_network`) may connect only to its peers there, plus DNS.

use serde_json::{json, Value};

use super::classify::{Kind, Plan};
use super::names::k8s;
use super::Options;
use crate::stack::model::Stack;
use crate::stack::service::ServiceSpec;

/// The label a pod on compose network `net` carries.
pub fn label(net: &str) -> String {
    format!("network.difyctl.io/{}", k8s(net))
}

/// The compose networks of a service (`default` when it names none).
pub fn networks(s: &ServiceSpec) -> Vec<String> {
    if s.networks.is_empty() {
        vec!["default".into()]
    } else {
        s.networks.keys().cloned().collect()
    }
}

pub fn policies(stack: &Stack, plan: &Plan, opts: &Options) -> Vec<Value> {
    let mut out = Vec::new();
    for s in &stack.services {
        if s.network_mode.is_some() || matches!(plan.kinds.get(&s.name), Some(Kind::InitOf(_))) {
            continue;
        }
        out.push(policy(stack, s, opts));
    }
    out
}

fn policy(stack: &Stack, s: &ServiceSpec, opts: &Options) -> Value {
    let nets = networks(s);
    let peers: Vec<Value> = nets
        .iter()
        .map(|n| json!({ "podSelector": { "matchLabels": { label(n): "true" } } }))
        .collect();
    let mut ingress = vec![json!({ "from": peers })];
    if crate::dify::FRONTED.contains(&s.name.as_str()) {
        ingress.push(json!({ "from": [{ "namespaceSelector": {} }] }));
    }
    let internal_only = nets.iter().all(|n| {
        stack
            .networks
            .iter()
            .find(|spec| &spec.key == n)
            .is_some_and(|spec| spec.internal)
    });
    let name = k8s(&s.name);
    let mut spec = json!({
        "podSelector": { "matchLabels": { "app.kubernetes.io/name": name } },
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    });
    if internal_only {
        spec["policyTypes"] = json!(["Ingress", "Egress"]);
        spec["egress"] = json!([
            { "to": peers },
            { "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] },
        ]);
    }
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": { "name": name, "namespace": opts.namespace, "labels": { "app.kubernetes.io/part-of": "dify" } },
        "spec": spec,
    })
}

//! What each compose service becomes: a Deployment, a StatefulSet (databases, Redis, vector
//! stores: they own their data), an init container of the services that wait for it to
//! complete (`init_permissions`), or a Job; which environment variables are secrets; and the
//! port each service listens on.

use std::collections::{BTreeMap, BTreeSet};

use crate::stack::depends::Condition;
use crate::stack::model::Stack;
use crate::stack::mounts::Source;
use crate::stack::service::{Restart, ServiceSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Deployment,
    StatefulSet,
    /// Runs before each of these services, as an init container.
    InitOf(Vec<String>),
    /// A one-shot nobody waits for (`restart: on-failure`).
    Job,
}

use crate::dify::services::{KNOWN_PORTS, STATEFUL};

pub struct Plan {
    pub kinds: BTreeMap<String, Kind>,
    /// Per service, the environment keys that go into its Secret.
    pub secret_keys: BTreeMap<String, BTreeSet<String>>,
    pub ports: BTreeMap<String, Vec<u16>>,
    /// Host folders (and named volumes) mounted by more than one service: one shared claim.
    pub shared: BTreeMap<String, Vec<String>>,
}

/// A variable whose name says it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["PASSWORD", "_KEY", "TOKEN", "SECRET", "_PASS"]
        .iter()
        .any(|p| k.contains(p))
        || k == "KEY"
}

pub fn plan(stack: &Stack) -> Plan {
    let mut kinds = BTreeMap::new();
    for s in &stack.services {
        kinds.insert(s.name.clone(), kind(stack, s));
    }
    Plan {
        kinds,
        secret_keys: secret_keys(stack),
        ports: stack
            .services
            .iter()
            .map(|s| (s.name.clone(), ports(stack, s)))
            .collect(),
        shared: shared(stack),
    }
}

fn kind(stack: &Stack, s: &ServiceSpec) -> Kind {
    if s.restart == Restart::No || matches!(s.restart, Restart::OnFailure(_)) {
        let waiting: Vec<String> = stack
            .dependencies
            .iter()
            .filter(|(_, deps)| {
                deps.iter()
                    .any(|d| d.service == s.name && d.condition == Condition::CompletedSuccessfully)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if !waiting.is_empty() {
            return Kind::InitOf(waiting);
        }
        // on-failure and nobody waits: a batch job. `no` is compose's default and says
        // nothing of the service ending: it stays a long-running workload.
        if matches!(s.restart, Restart::OnFailure(_)) {
            return Kind::Job;
        }
    }
    let owns_volume = s
        .mounts
        .iter()
        .any(|m| matches!(m.source, Source::Volume(_)));
    if STATEFUL.contains(&s.name.as_str())
        || (owns_volume && !crate::dify::FRONTED.contains(&s.name.as_str()))
    {
        Kind::StatefulSet
    } else {
        Kind::Deployment
    }
}

fn ports(stack: &Stack, s: &ServiceSpec) -> Vec<u16> {
    let mut out: Vec<u16> = KNOWN_PORTS
        .iter()
        .find(|(n, _)| *n == s.name)
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default();
    if let Some(p) = crate::stack::fronted::Ports::of(stack).get(&s.name) {
        out.insert(0, p);
    }
    out.extend(
        s.ports
            .iter()
            .filter(|p| p.protocol == "tcp")
            .map(|p| p.target),
    );
    let mut seen = BTreeSet::new();
    out.retain(|p| seen.insert(*p));
    out
}

/// Secret-named keys, and any other key whose value carries one of their values (a URL with
/// the Redis password, say): no secret may end up in a ConfigMap.
fn secret_keys(stack: &Stack) -> BTreeMap<String, BTreeSet<String>> {
    let values: BTreeSet<&str> = stack
        .services
        .iter()
        .flat_map(|s| s.environment.iter())
        .filter(|(k, v)| is_secret_key(k) && v.len() >= 4)
        .map(|(_, v)| v.as_str())
        .collect();
    let public = |v: &str| crate::stack::secrets::public_in(v).is_some();
    stack
        .services
        .iter()
        .map(|s| {
            let keys = s
                .environment
                .iter()
                .filter(|(k, v)| {
                    is_secret_key(k) || public(v) || values.iter().any(|sv| v.contains(sv))
                })
                .map(|(k, _)| k.clone())
                .collect();
            (s.name.clone(), keys)
        })
        .collect()
}

/// A bind source that is a file: one on disk, or (missing at export time) one whose name
/// has an extension (`docker-entrypoint.sh`, `squid.conf.template`).
pub fn is_file(path: &std::path::Path) -> bool {
    path.is_file() || (!path.exists() && path.extension().is_some())
}

/// Identifies a mount's data: the named volume, or the host folder.
pub fn data_key(source: &Source) -> Option<String> {
    match source {
        Source::Volume(v) => Some(format!("volume:{v}")),
        Source::Bind(p) if !is_file(p) => Some(format!("dir:{}", p.display())),
        _ => None,
    }
}

fn shared(stack: &Stack) -> BTreeMap<String, Vec<String>> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &stack.services {
        for m in &s.mounts {
            if let Some(key) = data_key(&m.source) {
                let list = users.entry(key).or_default();
                if !list.contains(&s.name) {
                    list.push(s.name.clone());
                }
            }
        }
    }
    users.retain(|_, v| v.len() > 1);
    users
}

//! Workloads: each service's Deployment, StatefulSet or Job with its Service, its environment
//! as a ConfigMap plus a Secret (never a secret in a ConfigMap), configuration files it
//! bind-mounts as a ConfigMap, its data as volume claims, probes from its healthcheck,
//! resources from its limits, and init containers for what it waits for.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::classify::{data_key, is_file, Kind, Plan};
use super::names::{k8s, rewrite_host};
use super::{Options, Unmapped};
use crate::stack::model::Stack;
use crate::stack::mounts::{Mount, Source};
use crate::stack::service::{Healthcheck, ServiceSpec};

/// Configuration files larger than this stay out of a ConfigMap (its limit is 1 MiB).
const MAX_FILE: u64 = 900 << 10;
/// The image the wait-for-dependency init containers use.
const WAIT_IMAGE: &str = "busybox:1.36";

fn labels(service: &str) -> Value {
    json!({ "app.kubernetes.io/name": k8s(service), "app.kubernetes.io/part-of": "dify" })
}

fn meta(name: &str, service: &str, opts: &Options) -> Value {
    json!({ "name": name, "namespace": opts.namespace, "labels": labels(service) })
}

/// An environment value with compose service names as hosts turned into Service names.
fn k8s_value(stack: &Stack, value: &str) -> String {
    stack.services.iter().fold(value.to_string(), |v, s| {
        rewrite_host(&v, &s.name, &k8s(&s.name))
    })
}

/// Per service, a ConfigMap and a Secret `<service>-env` (each only when it has keys).
pub fn env_objects(stack: &Stack, plan: &Plan, opts: &Options) -> (Vec<Value>, Vec<Value>) {
    let (mut config, mut secrets) = (Vec::new(), Vec::new());
    for s in &stack.services {
        let secret = plan.secret_keys.get(&s.name);
        let (mut plain, mut hidden) = (Map::new(), Map::new());
        for (k, v) in &s.environment {
            let v = Value::String(k8s_value(stack, v));
            match secret.is_some_and(|keys| keys.contains(k)) {
                true => hidden.insert(k.clone(), v),
                false => plain.insert(k.clone(), v),
            };
        }
        let name = format!("{}-env", k8s(&s.name));
        if !plain.is_empty() {
            config.push(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&name, &s.name, opts), "data": plain }));
        }
        if !hidden.is_empty() {
            secrets.push(json!({ "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta(&name, &s.name, opts), "stringData": hidden }));
        }
    }
    (config, secrets)
}

/// The key a bind-mounted file gets in its service's `<service>-files` ConfigMap.
fn file_key(i: usize, path: &Path) -> String {
    let base = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().to_string());
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("f{i}-{clean}")
}

/// Bind-mounted files (squid.conf, ...) of every service, as ConfigMaps.
pub fn file_configmaps(stack: &Stack, opts: &Options, unmapped: &mut Vec<Unmapped>) -> Vec<Value> {
    let mut out = Vec::new();
    for s in &stack.services {
        let mut data = Map::new();
        for (i, m) in s.mounts.iter().enumerate() {
            let Source::Bind(path) = &m.source else {
                continue;
            };
            if !is_file(path) {
                continue;
            }
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            match std::fs::read_to_string(path) {
                Ok(text) if size <= MAX_FILE => {
                    data.insert(file_key(i, path), Value::String(text));
                }
                _ => unmapped.push(Unmapped {
                    service: s.name.clone(),
                    key: format!("volumes[{i}]"),
                    note: format!("{} (missing, not UTF-8 text, or over 900 KiB) is not put in a ConfigMap: provide {} yourself", path.display(), m.target),
                }),
            }
        }
        if !data.is_empty() {
            let name = format!("{}-files", k8s(&s.name));
            out.push(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&name, &s.name, opts), "data": data }));
        }
    }
    out
}

/// A claim's name for a data key: the volume's, or the host folder's path below the install.
fn claim_name(stack: &Stack, key: &str) -> String {
    match key.split_once(':') {
        Some(("volume", v)) => k8s(v),
        Some((_, dir)) => {
            let p = Path::new(dir);
            let rel = p.strip_prefix(&stack.dir).unwrap_or(p);
            k8s(&rel.display().to_string().replace('/', "-"))
        }
        None => k8s(key),
    }
}

fn claim_spec(opts: &Options, shared: bool) -> Value {
    let mut spec = json!({
        "accessModes": [if shared { "ReadWriteMany" } else { "ReadWriteOnce" }],
        "resources": { "requests": { "storage": "10Gi" } },
    });
    if let Some(class) = &opts.storage_class {
        spec["storageClassName"] = json!(class);
    }
    spec
}

/// Standalone claims: data of Deployments (and of the init jobs), shared or not. StatefulSets
/// claim their own through volumeClaimTemplates.
pub fn shared_claims(stack: &Stack, plan: &Plan, opts: &Options) -> Vec<Value> {
    let mut claims: BTreeMap<String, bool> = BTreeMap::new();
    for s in &stack.services {
        let stateful = plan.kinds.get(&s.name) == Some(&Kind::StatefulSet);
        for m in &s.mounts {
            let Some(key) = data_key(&m.source) else {
                continue;
            };
            let shared = plan.shared.contains_key(&key);
            if shared || !stateful {
                let many = shared || replicas(opts, &s.name) > 1;
                let entry = claims.entry(claim_name(stack, &key)).or_default();
                *entry |= many;
            }
        }
    }
    claims
        .into_iter()
        .map(|(name, many)| {
            json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": { "name": name, "namespace": opts.namespace, "labels": { "app.kubernetes.io/part-of": "dify" } },
                "spec": claim_spec(opts, many),
            })
        })
        .collect()
}

fn replicas(opts: &Options, service: &str) -> u32 {
    opts.replicas
        .iter()
        .find(|(s, _)| s == service)
        .map_or(1, |(_, n)| *n)
}

/// The workload and Service of one service (nothing for an init container).
pub fn objects(
    stack: &Stack,
    s: &ServiceSpec,
    plan: &Plan,
    opts: &Options,
    unmapped: &mut Vec<Unmapped>,
) -> Vec<Value> {
    let kind = plan.kinds.get(&s.name).cloned().unwrap_or(Kind::Deployment);
    if matches!(kind, Kind::InitOf(_)) {
        return Vec::new();
    }
    super::unmapped::report(s, unmapped);
    let name = k8s(&s.name);
    let mut pod = Pod::default();
    pod.add_service(stack, s, plan, unmapped);
    let selector = json!({ "matchLabels": { "app.kubernetes.io/name": name } });
    let mut pod_labels = labels(&s.name);
    for net in super::network::networks(s) {
        pod_labels[super::network::label(&net)] = json!("true");
    }
    let template = json!({ "metadata": { "labels": pod_labels }, "spec": pod.spec(s, &kind) });
    let mut docs = vec![match kind {
        Kind::StatefulSet => json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(&name, &s.name, opts),
            "spec": { "serviceName": name, "replicas": 1, "selector": selector, "template": template,
                      "volumeClaimTemplates": pod.claim_templates(opts) },
        }),
        Kind::Job => json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": meta(&name, &s.name, opts),
            "spec": { "backoffLimit": 3, "template": template },
        }),
        _ => json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(&name, &s.name, opts),
            "spec": { "replicas": replicas(opts, &s.name), "selector": selector, "template": template },
        }),
    }];
    let ports = plan.ports.get(&s.name).cloned().unwrap_or_default();
    if !ports.is_empty() && kind != Kind::Job {
        let ports: Vec<Value> = ports
            .iter()
            .map(|p| json!({ "name": format!("p{p}"), "port": p, "targetPort": p }))
            .collect();
        docs.push(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": meta(&name, &s.name, opts),
            "spec": { "selector": { "app.kubernetes.io/name": name }, "ports": ports },
        }));
    }
    docs
}

/// A pod being assembled: containers, init containers, volumes, claim templates.
#[derive(Default)]
struct Pod {
    init: Vec<Value>,
    containers: Vec<Value>,
    volumes: BTreeMap<String, Value>,
    templates: BTreeMap<String, bool>,
}

impl Pod {
    fn add_service(
        &mut self,
        stack: &Stack,
        s: &ServiceSpec,
        plan: &Plan,
        unmapped: &mut Vec<Unmapped>,
    ) {
        for (job, kind) in &plan.kinds {
            if let Kind::InitOf(waiting) = kind {
                if let Some(spec) = stack.service(job).filter(|_| waiting.contains(&s.name)) {
                    let c = self.container(stack, spec, plan, unmapped);
                    self.init.push(c);
                }
            }
        }
        for dep in stack.dependencies.get(&s.name).into_iter().flatten() {
            if matches!(plan.kinds.get(&dep.service), Some(Kind::InitOf(_)) | None) {
                continue;
            }
            match plan.ports.get(&dep.service).and_then(|p| p.first()) {
                Some(port) => self.init.push(wait_for(&dep.service, *port)),
                None => unmapped.push(Unmapped {
                    service: s.name.clone(),
                    key: format!("depends_on.{}", dep.service),
                    note:
                        "the dependency listens on no known port: this service does not wait for it"
                            .into(),
                }),
            }
        }
        let c = self.container(stack, s, plan, unmapped);
        self.containers.push(c);
    }

    fn container(
        &mut self,
        stack: &Stack,
        s: &ServiceSpec,
        plan: &Plan,
        unmapped: &mut Vec<Unmapped>,
    ) -> Value {
        let stateful = plan.kinds.get(&s.name) == Some(&Kind::StatefulSet);
        let mut c = json!({ "name": k8s(&s.name), "image": s.image });
        let hide = |words: &[String], shell: bool| -> Vec<String> {
            words
                .iter()
                .map(|w| hide_secrets(s, plan, w, shell))
                .collect()
        };
        if let Some(e) = &s.entrypoint {
            c["command"] = json!(hide(e, false));
        }
        if let Some(cmd) = &s.command {
            c["args"] = json!(hide(cmd, false));
        }
        let env_name = format!("{}-env", k8s(&s.name));
        let mut from = Vec::new();
        let secret = plan.secret_keys.get(&s.name);
        if s.environment
            .keys()
            .any(|k| !secret.is_some_and(|ks| ks.contains(k)))
        {
            from.push(json!({ "configMapRef": { "name": env_name } }));
        }
        if secret.is_some_and(|ks| !ks.is_empty()) {
            from.push(json!({ "secretRef": { "name": env_name } }));
        }
        if !from.is_empty() {
            c["envFrom"] = json!(from);
        }
        if let Some(ports) = plan.ports.get(&s.name).filter(|p| !p.is_empty()) {
            c["ports"] = json!(ports
                .iter()
                .map(|p| json!({ "containerPort": p }))
                .collect::<Vec<_>>());
        }
        if let Some(probe) = s
            .healthcheck
            .as_ref()
            .and_then(|h| probe(h, |w| hide_secrets(s, plan, w, true)))
        {
            c["readinessProbe"] = probe.clone();
            let mut live = probe;
            live["failureThreshold"] = json!(live["failureThreshold"].as_u64().unwrap_or(3) * 2);
            c["livenessProbe"] = live;
        }
        if let Some(r) = resources(s) {
            c["resources"] = r;
        }
        if let Some(sc) = security(s, unmapped) {
            c["securityContext"] = sc;
        }
        if let Some(dir) = &s.working_dir {
            c["workingDir"] = json!(dir);
        }
        let mounts = self.mounts(stack, s, plan, stateful, unmapped);
        if !mounts.is_empty() {
            c["volumeMounts"] = json!(mounts);
        }
        c
    }

    fn mounts(
        &mut self,
        stack: &Stack,
        s: &ServiceSpec,
        plan: &Plan,
        stateful: bool,
        unmapped: &mut Vec<Unmapped>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        for (i, m) in s.mounts.iter().enumerate() {
            let Some((volume, sub)) = self.volume(stack, s, m, i, plan, stateful, unmapped) else {
                continue;
            };
            let mut mount = json!({ "name": volume, "mountPath": m.target });
            if let Some(sub) = sub {
                mount["subPath"] = json!(sub);
            }
            if m.read_only {
                mount["readOnly"] = json!(true);
            }
            out.push(mount);
        }
        if let Some(size) = s.shm_size {
            self.volumes.insert("dshm".into(), json!({ "name": "dshm", "emptyDir": { "medium": "Memory", "sizeLimit": size.to_string() } }));
            out.push(json!({ "name": "dshm", "mountPath": "/dev/shm" }));
        }
        out
    }

    /// The pod volume a mount uses (and the file's key for a ConfigMap mount).
    #[allow(clippy::too_many_arguments)]
    fn volume(
        &mut self,
        stack: &Stack,
        s: &ServiceSpec,
        m: &Mount,
        i: usize,
        plan: &Plan,
        stateful: bool,
        unmapped: &mut Vec<Unmapped>,
    ) -> Option<(String, Option<String>)> {
        match &m.source {
            Source::Bind(path) if is_file(path) => {
                if !path.is_file() {
                    return None;
                }
                let name = "files".to_string();
                self.volumes.insert(name.clone(), json!({ "name": name, "configMap": { "name": format!("{}-files", k8s(&s.name)) } }));
                Some((name, Some(file_key(i, path))))
            }
            Source::Bind(path)
                if path.starts_with("/var/run")
                    || path.starts_with("/run")
                    || path.starts_with("/proc")
                    || path.starts_with("/sys") =>
            {
                unmapped.push(Unmapped {
                    service: s.name.clone(),
                    key: format!("volumes[{i}]"),
                    note: format!(
                        "host path {} has no cluster equivalent: left out",
                        path.display()
                    ),
                });
                None
            }
            Source::Bind(_) | Source::Volume(_) => {
                let key = data_key(&m.source)?;
                let name = claim_name(stack, &key);
                if stateful && !plan.shared.contains_key(&key) {
                    self.templates.insert(name.clone(), false);
                } else {
                    self.volumes.insert(
                        name.clone(),
                        json!({ "name": name, "persistentVolumeClaim": { "claimName": name } }),
                    );
                }
                Some((name, None))
            }
            Source::Anonymous | Source::Tmpfs => {
                let name = format!("scratch-{i}");
                let medium = if m.source == Source::Tmpfs {
                    json!({ "medium": "Memory" })
                } else {
                    json!({})
                };
                self.volumes
                    .insert(name.clone(), json!({ "name": name, "emptyDir": medium }));
                Some((name, None))
            }
        }
    }

    fn spec(&self, s: &ServiceSpec, kind: &Kind) -> Value {
        let mut spec = json!({ "containers": self.containers });
        if !self.init.is_empty() {
            spec["initContainers"] = json!(self.init);
        }
        if !self.volumes.is_empty() {
            spec["volumes"] = json!(self.volumes.values().collect::<Vec<_>>());
        }
        if *kind == Kind::Job {
            spec["restartPolicy"] = json!("OnFailure");
        }
        if let Some(grace) = s.stop_grace_period {
            spec["terminationGracePeriodSeconds"] = json!(grace.as_secs());
        }
        if let Some(host) = &s.hostname {
            spec["hostname"] = json!(k8s(host));
        }
        let aliases: Vec<Value> = s
            .extra_hosts
            .iter()
            .filter_map(|h| h.split_once([':', '=']))
            .filter(|(_, ip)| ip.parse::<std::net::IpAddr>().is_ok())
            .map(|(host, ip)| json!({ "ip": ip, "hostnames": [host] }))
            .collect();
        if !aliases.is_empty() {
            spec["hostAliases"] = json!(aliases);
        }
        spec
    }

    fn claim_templates(&self, opts: &Options) -> Vec<Value> {
        self.templates
            .keys()
            .map(|name| json!({ "metadata": { "name": name }, "spec": claim_spec(opts, false) }))
            .collect()
    }
}

fn wait_for(service: &str, port: u16) -> Value {
    let host = k8s(service);
    json!({
        "name": format!("wait-for-{host}"),
        "image": WAIT_IMAGE,
        "command": ["sh", "-c", format!("until nc -z {host} {port}; do echo waiting for {host}:{port}; sleep 2; done")],
    })
}

fn secs(d: Option<std::time::Duration>, default: u64) -> u64 {
    d.map_or(default, |d| d.as_secs().max(1))
}

/// Secret values in a command line replaced by a reference to the variable of the service's
/// Secret that holds them: `$(KEY)` where Kubernetes expands it (command, args), `${KEY}` where
/// a shell does (probes).
fn hide_secrets(s: &ServiceSpec, plan: &Plan, word: &str, shell: bool) -> String {
    let Some(keys) = plan.secret_keys.get(&s.name) else {
        return word.to_string();
    };
    let mut held: Vec<(&String, &String)> = keys
        .iter()
        .filter_map(|k| s.environment.get(k).map(|v| (k, v)))
        .filter(|(_, v)| v.len() >= 4)
        .collect();
    // Longest first: a URL holding a password is replaced whole.
    held.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    held.iter().fold(word.to_string(), |w, (k, v)| {
        let reference = if shell {
            format!("${{{k}}}")
        } else {
            format!("$({k})")
        };
        w.replace(v.as_str(), &reference)
    })
}

fn probe(h: &Healthcheck, hide: impl Fn(&str) -> String) -> Option<Value> {
    let secret = |words: &[String]| words.iter().any(|w| hide(w) != *w);
    let command: Vec<String> = match h.test.first().map(String::as_str) {
        Some("NONE") | None => return None,
        // An exec probe expands nothing: one with a secret goes through a shell.
        Some("CMD") if !secret(&h.test[1..]) => h.test[1..].to_vec(),
        Some("CMD") => vec![
            "sh".into(),
            "-c".into(),
            h.test[1..]
                .iter()
                .map(|w| format!("\"{}\"", hide(w)))
                .collect::<Vec<_>>()
                .join(" "),
        ],
        Some("CMD-SHELL") => vec!["sh".into(), "-c".into(), hide(&h.test[1..].join(" "))],
        Some(_) => vec!["sh".into(), "-c".into(), hide(&h.test.join(" "))],
    };
    let mut p = json!({
        "exec": { "command": command },
        "periodSeconds": secs(h.interval, 30),
        "timeoutSeconds": secs(h.timeout, 30),
        "failureThreshold": h.retries.unwrap_or(3).max(1),
    });
    if let Some(start) = h.start_period {
        p["initialDelaySeconds"] = json!(start.as_secs());
    }
    Some(p)
}

fn resources(s: &ServiceSpec) -> Option<Value> {
    let mut limits = Map::new();
    if let Some(mem) = s.memory_limit {
        limits.insert("memory".into(), json!(mem.to_string()));
    }
    if let Some(nano) = s.nano_cpus {
        limits.insert(
            "cpu".into(),
            json!(format!("{}m", (nano / 1_000_000).max(1))),
        );
    }
    (!limits.is_empty()).then(|| json!({ "limits": limits }))
}

fn security(s: &ServiceSpec, unmapped: &mut Vec<Unmapped>) -> Option<Value> {
    let mut sc = Map::new();
    if s.privileged {
        sc.insert("privileged".into(), json!(true));
    }
    if !s.cap_add.is_empty() || !s.cap_drop.is_empty() {
        let caps = |v: &[String]| {
            v.iter()
                .map(|c| c.trim_start_matches("CAP_").to_string())
                .collect::<Vec<_>>()
        };
        sc.insert(
            "capabilities".into(),
            json!({ "add": caps(&s.cap_add), "drop": caps(&s.cap_drop) }),
        );
    }
    if let Some(user) = &s.user {
        let (uid, gid) = user
            .split_once(':')
            .map_or((user.as_str(), None), |(u, g)| (u, Some(g)));
        match (uid.parse::<i64>(), gid.map(str::parse::<i64>)) {
            (Ok(u), None) => {
                sc.insert("runAsUser".into(), json!(u));
            }
            (Ok(u), Some(Ok(g))) => {
                sc.insert("runAsUser".into(), json!(u));
                sc.insert("runAsGroup".into(), json!(g));
            }
            _ => unmapped.push(Unmapped { service: s.name.clone(), key: "user".into(), note: format!("`{user}` is a name: Kubernetes takes numeric IDs only (the image's default user runs)") }),
        }
    }
    (!sc.is_empty()).then(|| Value::Object(sc))
}

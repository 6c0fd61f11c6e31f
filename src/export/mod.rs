//! `difyctl export kubernetes`: the install `up` runs (same profiles, .env and overrides), as
//! Kubernetes manifests for those who outgrow one VM. Pure: reads the typed stack model (and
//! the configuration files it bind-mounts), calls no cluster and no Docker.
//!
//! One file per concern in the output folder, listed by a `kustomization.yaml` so that
//! `kubectl apply -k DIR` takes it whole. Whatever cannot be mapped is reported per service
//! and key (`UNMAPPED.txt` and stderr), never dropped silently.

mod classify;
mod names;
mod network;
mod routes;
mod unmapped;
mod workload;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::stack::model::Stack;

pub use classify::{is_secret_key, Kind};
pub use routes::backends;

/// How the gateway is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressKind {
    /// Gateway API (Gateway + HTTPRoute), cert-manager's gateway HTTP-01 solver.
    Gateway,
    /// networking.k8s.io/v1 Ingress.
    Ingress,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub storage_class: Option<String>,
    /// `api=3`: only the services that scale.
    pub replicas: Vec<(String, u32)>,
    pub ingress: IngressKind,
    /// The GatewayClass (or IngressClass) of the cluster.
    pub class: String,
    pub domains: Vec<String>,
    pub email: Option<String>,
    /// ACME directory URL for cert-manager's Issuer.
    pub acme_directory: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("--replicas {service}={n}: {why}")]
    Replicas {
        service: String,
        n: u32,
        why: String,
    },
    #[error(
        "--namespace {0}: not a Kubernetes name (lower-case letters, digits and '-', at most 63)"
    )]
    Namespace(String),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A key of a service that has no Kubernetes equivalent here, and what was done instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub service: String,
    pub key: String,
    pub note: String,
}

/// The manifests, by file name, and what could not be mapped.
#[derive(Debug, Default)]
pub struct Export {
    pub files: Vec<(String, Vec<Value>)>,
    pub unmapped: Vec<Unmapped>,
}

pub use crate::dify::services::SCALABLE;

pub fn kubernetes(stack: &Stack, opts: &Options) -> Result<Export, ExportError> {
    check(stack, opts)?;
    let mut out = Export::default();
    let plan = classify::plan(stack);
    out.files
        .push(("namespace.yaml".into(), vec![namespace(opts)]));
    let (config, secrets) = workload::env_objects(stack, &plan, opts);
    out.files.push(("secrets.yaml".into(), secrets));
    out.files.push(("configmaps.yaml".into(), config));
    let files = workload::file_configmaps(stack, opts, &mut out.unmapped);
    if !files.is_empty() {
        out.files.push(("config-files.yaml".into(), files));
    }
    let storage = workload::shared_claims(stack, &plan, opts);
    if !storage.is_empty() {
        out.files.push(("storage.yaml".into(), storage));
    }
    for s in &stack.services {
        let docs = workload::objects(stack, s, &plan, opts, &mut out.unmapped);
        if !docs.is_empty() {
            out.files
                .push((format!("{}.yaml", names::k8s(&s.name)), docs));
        }
    }
    out.files.push((
        "networkpolicies.yaml".into(),
        network::policies(stack, &plan, opts),
    ));
    out.files.push((
        "routes.yaml".into(),
        routes::objects(stack, opts, &mut out.unmapped),
    ));
    if opts.domains.is_empty() {
        out.unmapped.push(Unmapped {
            service: "-".into(),
            key: "domains".into(),
            note: "no domain: no Certificate, and the gateway's HTTPS listener has no certificate until you give one (--domain)".into(),
        });
    }
    out.files
        .push(("certificates.yaml".into(), routes::certificates(opts)));
    out.files.retain(|(_, docs)| !docs.is_empty());
    let resources: Vec<Value> = out.files.iter().map(|(f, _)| json!(f)).collect();
    out.files.push((
        "kustomization.yaml".into(),
        vec![json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": opts.namespace,
            "resources": resources,
        })],
    ));
    Ok(out)
}

fn check(stack: &Stack, opts: &Options) -> Result<(), ExportError> {
    if !names::is_dns_label(&opts.namespace) {
        return Err(ExportError::Namespace(opts.namespace.clone()));
    }
    for (service, n) in &opts.replicas {
        let why = if !SCALABLE.contains(&service.as_str()) {
            Some(format!("only {} scale with replicas", SCALABLE.join(", ")))
        } else if stack.service(service).is_none() {
            Some("no such service in this stack".to_string())
        } else if *n == 0 {
            Some("at least 1".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ExportError::Replicas {
                service: service.clone(),
                n: *n,
                why,
            });
        }
    }
    Ok(())
}

fn namespace(opts: &Options) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": opts.namespace, "labels": { "app.kubernetes.io/part-of": "dify" } },
    })
}

impl Export {
    /// Writes each file (YAML, several documents) into `dir`, and the unmapped report.
    pub fn write(&self, dir: &Path) -> Result<(), ExportError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExportError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, docs) in &self.files {
            let path = dir.join(name);
            // The Secrets' file is readable by its owner only, like .env.
            let mode = if name == "secrets.yaml" { 0o600 } else { 0o644 };
            crate::fsutil::write_atomic(&path, to_yaml(docs).as_bytes(), mode)
                .map_err(io(&path))?;
        }
        let path = dir.join("UNMAPPED.txt");
        crate::fsutil::write_atomic(&path, self.report().as_bytes(), 0o644).map_err(io(&path))?;
        Ok(())
    }

    /// What could not be mapped, one line per service and key.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for u in &self.unmapped {
            out.push_str(&format!("services.{}.{}: {}\n", u.service, u.key, u.note));
        }
        out
    }
}

/// Several YAML documents, `---` between them.
pub fn to_yaml(docs: &[Value]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        // A JSON value always serialises.
        out.push_str(&serde_saphyr::to_string(d).unwrap_or_default());
    }
    out
}

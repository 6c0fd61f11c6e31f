//! How a serving difyctl stands, read live: its certificates, the project's services and the
//! traffic of the last minute. One source for `/status`, `/readyz` and `/metrics` on the admin
//! listener and for `difyctl status` (through the control socket), so they never disagree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::follow::Project;
use crate::acme::{CertStore, RenewalPlan};
use crate::engine::ops::{self, PsEntry};
use crate::metrics::{LastMinute, Metrics};
use crate::proxy::Routes;
use crate::tls::CertResolver;

/// Docker is asked at most this often, however often `/metrics` is scraped.
const CONTAINERS_TTL: Duration = Duration::from_secs(2);

/// What the status screen shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    pub url: String,
    pub pid: u32,
    /// Unix seconds.
    pub started: u64,
    pub project: Option<String>,
    pub https: String,
    pub http: String,
    pub admin: Option<String>,
    pub ready: bool,
    /// Why not ready (empty when ready).
    pub not_ready: Vec<String>,
    pub certificates: Vec<CertView>,
    pub services: Vec<ServiceView>,
    pub last_minute: LastMinute,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertView {
    pub name: String,
    /// `acme`, `files` or `self-signed`.
    pub source: String,
    pub names: Vec<String>,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: u64,
    pub days_left: i64,
    pub next_renewal: Option<u64>,
    pub last_attempt: Option<u64>,
    pub last_success: Option<u64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: String,
    pub container: String,
    /// running, exited, restarting, ...
    pub state: String,
    /// healthy, unhealthy, starting; empty without a healthcheck.
    pub health: String,
    pub exit_code: Option<i64>,
    /// A job meant to end (restart policy no or on-failure), like Dify's init_permissions.
    pub one_shot: bool,
    /// Container starts seen in Docker's events since difyctl started.
    pub starts: u64,
    /// Where the proxy sends its requests, for the services it fronts.
    pub upstream: Option<String>,
}

impl ServiceView {
    /// Healthy, running without a healthcheck, or a one-shot job that completed.
    pub fn ok(&self) -> bool {
        match self.state.as_str() {
            "running" => self.health.is_empty() || self.health == "healthy",
            "exited" => self.one_shot && self.exit_code == Some(0),
            _ => false,
        }
    }
}

/// The project's containers (as `T`) as last read, or why they could not be.
pub type Containers<T = PsEntry> = Result<Vec<T>, String>;

/// Everything the views are read from.
pub struct Live {
    pub started: u64,
    pub url: String,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub project: Option<Project>,
    pub routes: Routes,
    pub metrics: Arc<Metrics>,
    pub resolver: Arc<CertResolver>,
    pub state_dir: PathBuf,
    /// The ACME certificate's name, when certificates come from a CA.
    pub acme_name: Option<String>,
    pub from_files: bool,
    containers: tokio::sync::Mutex<Option<(Instant, Containers)>>,
}

impl Live {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &crate::config::Config,
        http: SocketAddr,
        https: SocketAddr,
        admin: Option<SocketAddr>,
        project: Option<Project>,
        routes: Routes,
        metrics: Arc<Metrics>,
        resolver: Arc<CertResolver>,
    ) -> Live {
        let host = config.domains.first().map_or("localhost", String::as_str);
        let url = match https.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        };
        Live {
            started: unix(SystemTime::now()),
            url,
            http,
            https,
            admin,
            project,
            routes,
            metrics,
            resolver,
            state_dir: config.state_dir.clone(),
            acme_name: config.acme.as_ref().map(|a| a.cert_name().to_string()),
            from_files: config.cert_files.is_some(),
            containers: tokio::sync::Mutex::new(None),
        }
    }

    /// The project's containers (cached for a moment); none without a project.
    async fn containers(&self) -> Containers {
        let Some(project) = &self.project else {
            return Ok(Vec::new());
        };
        let mut cached = self.containers.lock().await;
        if let Some((at, entries)) = cached.as_ref() {
            if at.elapsed() < CONTAINERS_TTL {
                return entries.clone();
            }
        }
        let read = ops::ps(&project.engine, &project.name)
            .await
            .map_err(|e| crate::error_chain(&e));
        *cached = Some((Instant::now(), read.clone()));
        read
    }

    pub async fn services(&self) -> Containers<ServiceView> {
        let upstreams = self.routes.load().upstreams();
        let entries = self.containers().await?;
        Ok(entries
            .into_iter()
            .map(|e| ServiceView {
                upstream: upstreams
                    .iter()
                    .find(|(s, _)| *s == e.service)
                    .and_then(|(_, a)| a.clone()),
                starts: self.metrics.service_starts(&e.service),
                service: e.service,
                container: e.name,
                state: e.state,
                health: e.health,
                exit_code: e.exit_code,
                one_shot: !matches!(e.restart_policy.as_str(), "always" | "unless-stopped"),
            })
            .collect())
    }

    /// The certificates served: the ACME one from its store, else the one in the resolver.
    pub fn certificates(&self) -> Vec<CertView> {
        let now = SystemTime::now();
        if let Some(name) = &self.acme_name {
            let store = CertStore::new(&self.state_dir);
            if let Ok(Some(cert)) = store.load(name) {
                let status = store.status(name);
                let plan =
                    RenewalPlan::new(cert.info.not_before(), cert.info.not_after(), now, None);
                return vec![CertView {
                    name: name.clone(),
                    source: "acme".into(),
                    names: cert.info.names.clone(),
                    issuer: cert.info.issuer.clone(),
                    not_after: cert.info.not_after,
                    days_left: days_left(cert.info.not_after),
                    next_renewal: status.next_attempt.or(Some(unix(plan.renew_at))),
                    last_attempt: status.last_attempt,
                    last_success: status.last_success,
                    last_error: status.last_error,
                }];
            }
        }
        let source = if self.from_files {
            "files"
        } else {
            "self-signed"
        };
        self.resolver
            .lookup(None)
            .and_then(|key| served_view(&key, source))
            .into_iter()
            .collect()
    }

    /// Why the install is not ready to serve users (empty: ready).
    pub async fn not_ready(&self) -> Vec<String> {
        self.reasons(&self.certificates(), &self.services().await)
    }

    /// `not_ready` from certificates and services already read.
    pub fn reasons(&self, certs: &[CertView], services: &Containers<ServiceView>) -> Vec<String> {
        let mut why = Vec::new();
        if let Some(name) = &self.acme_name {
            let now = unix(SystemTime::now());
            if !certs
                .iter()
                .any(|c| c.source == "acme" && c.not_after > now)
            {
                why.push(format!(
                    "no valid certificate for {name} yet (serving a self-signed one)"
                ));
            }
        }
        match services {
            Ok(services) if services.is_empty() && self.project.is_some() => {
                why.push("the project has no containers".into())
            }
            Ok(services) => why.extend(services.iter().filter(|s| !s.ok()).map(|s| {
                let health = if s.health.is_empty() {
                    String::new()
                } else {
                    format!(", {}", s.health)
                };
                format!("{}: {}{health}", s.service, s.state)
            })),
            Err(e) => why.push(format!("cannot read the containers: {e}")),
        }
        why
    }

    pub async fn overview(&self) -> Overview {
        let certificates = self.certificates();
        let services = self.services().await;
        let not_ready = self.reasons(&certificates, &services);
        Overview {
            url: self.url.clone(),
            pid: std::process::id(),
            started: self.started,
            project: self.project.as_ref().map(|p| p.name.clone()),
            https: self.https.to_string(),
            http: self.http.to_string(),
            admin: self.admin.map(|a| a.to_string()),
            ready: not_ready.is_empty(),
            not_ready,
            certificates,
            services: services.unwrap_or_default(),
            last_minute: self.metrics.last_minute(),
        }
    }
}

fn served_view(key: &rustls::sign::CertifiedKey, source: &str) -> Option<CertView> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(CertView {
        name: "default".into(),
        source: source.into(),
        names,
        issuer: cert.issuer().to_string(),
        not_after,
        days_left: days_left(not_after),
        next_renewal: None,
        last_attempt: None,
        last_success: None,
        last_error: None,
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn days_left(not_after: u64) -> i64 {
    (not_after as i64 - unix(SystemTime::now()) as i64).div_euclid(86_400)
}

//! The composition root: a serving difyctl is the proxy's listeners, a certificate source
//! (files, ACME or self-signed), the certificate manager, the control socket, the route
//! follower (under `up`) and the admin listener, started here and stopped together.
//! `up`, `proxy`, a standalone `certs renew` and the tests all start the server through
//! [`Server::start`] and nothing else.

pub mod admin;
pub mod certs;
pub mod control;
pub mod follow;
pub mod live;
pub mod repair;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::acme::{AcmeError, CertManager, ControlRequest};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{self, ChallengeTokens, ProxyError, Routes, RunningProxy, Shared};
use crate::tls::{self, CertResolver, PemPair, TlsError};

pub use follow::Project;
pub use live::{Live, Overview};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error("cannot create state directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    // The OS error is in the message, before the advice, and so not also a source.
    #[error("cannot listen on {addr} (admin listener, [admin] listen): {error}; choose another address or `off`")]
    Admin {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What to serve, and which parts to run.
pub struct Server {
    config: Config,
    routes: Option<Routes>,
    project: Option<Project>,
    control: bool,
    renew_in_background: bool,
    certificate: Option<Arc<CertifiedKey>>,
}

impl Server {
    /// Serves `routes` (fixed, or replaced by the caller) with the configured certificates.
    pub fn new(config: Config, routes: Routes) -> Server {
        Server {
            config,
            routes: Some(routes),
            project: None,
            control: true,
            renew_in_background: true,
            certificate: None,
        }
    }

    /// Serves `project`, the routes following its containers.
    pub fn for_project(config: Config, project: Project) -> Server {
        Server {
            project: Some(project),
            routes: None,
            ..Server::new(config, no_routes())
        }
    }

    /// No control socket (a one-off server that must not look like a serving difyctl).
    pub fn without_control(mut self) -> Server {
        self.control = false;
        self
    }

    /// The certificate manager is handed back in [`Running::manager`] instead of run.
    pub fn manager_in_hand(mut self) -> Server {
        self.renew_in_background = false;
        self
    }

    /// Serve this certificate instead of the configured source (tests).
    pub fn with_certificate(mut self, key: Arc<CertifiedKey>) -> Server {
        self.certificate = Some(key);
        self
    }

    /// Starts every part; the server runs until [`Running::stop`].
    pub async fn start(self) -> Result<Running, ServerError> {
        let config = self.config;
        let resolver = Arc::new(CertResolver::new());
        let challenges = ChallengeTokens::default();
        let certs = match self.certificate {
            Some(key) => {
                resolver.set_default(key);
                certs::Certificates {
                    pem: None,
                    manager: None,
                }
            }
            None => certs::Certificates::install(&config, resolver.clone(), challenges.clone())?,
        };
        let control = match self.control {
            true => Some(control::bind(&config.state_dir).await?),
            false => None,
        };
        let admin = match config.admin.listen {
            Some(addr) => admin::bind(addr, config.admin.explicit).await?,
            None => None,
        };
        let (stop, stop_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let routes = match (&self.project, self.routes) {
            (Some(project), _) => follow::start(project, metrics.clone(), stop_rx.clone()).await?,
            (None, routes) => routes.unwrap_or_else(no_routes),
        };
        let repairing = self.project.as_ref().and_then(|p| {
            p.repair.clone().map(|r| {
                tokio::spawn(repair::run(
                    p.engine.clone(),
                    r,
                    p.expected.clone(),
                    metrics.clone(),
                    stop_rx.clone(),
                ))
            })
        });
        let shared = Arc::new(Shared {
            config: config.proxy.clone(),
            metrics: metrics.clone(),
            routes: routes.clone(),
            challenges: challenges.clone(),
            tls: tls::server_config(resolver.clone()),
        });
        let proxy = proxy::start(shared, stop_rx.clone())?;
        let live = Arc::new(Live::new(
            &config,
            proxy.http_addr,
            proxy.https_addr,
            admin.as_ref().and_then(|l| l.local_addr().ok()),
            self.project,
            routes.clone(),
            metrics.clone(),
            resolver.clone(),
        ));
        let (http, https) = (proxy.http_addr, proxy.https_addr);
        let mut running = Running {
            http,
            https,
            admin: live.admin,
            resolver,
            challenges,
            routes,
            metrics,
            live: live.clone(),
            manager: None,
            pem: certs.pem.clone(),
            stop,
            proxy: Some(proxy),
            tasks: Vec::new(),
        };
        running.spawn_parts(certs, control, admin, self.renew_in_background);
        running.tasks.extend(repairing);
        Ok(running)
    }
}

/// A table with no upstream (every request answered by the proxy itself).
fn no_routes() -> Routes {
    Routes::new(proxy::RouteTable::dify(&proxy::Upstreams::default()))
}

/// A started server.
pub struct Running {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub resolver: Arc<CertResolver>,
    pub challenges: ChallengeTokens,
    pub routes: Routes,
    pub metrics: Arc<Metrics>,
    pub live: Arc<Live>,
    /// The certificate manager, when asked for with [`Server::manager_in_hand`].
    pub manager: Option<CertManager>,
    pem: Option<PemPair>,
    stop: watch::Sender<bool>,
    proxy: Option<RunningProxy>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    fn spawn_parts(
        &mut self,
        certs: certs::Certificates,
        control: Option<tokio::net::UnixListener>,
        admin: Option<tokio::net::TcpListener>,
        renew_in_background: bool,
    ) {
        let stop = self.stop.subscribe();
        let mut renew: Option<mpsc::Sender<ControlRequest>> = None;
        match certs.manager {
            Some(manager) if renew_in_background => {
                let (tx, rx) = mpsc::channel(4);
                self.tasks.push(tokio::spawn(manager.run(rx, stop.clone())));
                renew = Some(tx);
            }
            manager => self.manager = manager,
        }
        if let Some(pair) = certs.pem {
            let resolver = self.resolver.clone();
            self.tasks.push(tokio::spawn(certs::watch_files(
                pair,
                resolver,
                stop.clone(),
            )));
        }
        if let Some(listener) = control {
            let live = self.live.clone();
            let task = control::serve(listener, renew, live, stop.clone());
            self.tasks.push(tokio::spawn(task));
        }
        if let Some(listener) = admin {
            tracing::info!(admin_addr = %self.admin.map_or(String::new(), |a| a.to_string()), "admin listening: /metrics /healthz /readyz /status");
            self.tasks
                .push(tokio::spawn(admin::run(listener, self.live.clone(), stop)));
        }
    }

    /// Loads the `--cert/--key` files again (SIGHUP); without them, nothing to do.
    pub fn reload_certificate(&self) {
        if let Some(pair) = &self.pem {
            certs::reload(pair, &self.resolver);
        }
    }

    /// No new connections from now on; [`Running::stop`] waits for the rest.
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops every part: requests in flight get the shutdown grace, then everything ends.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(proxy) = self.proxy.take() {
            proxy.wait().await;
        }
        for task in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

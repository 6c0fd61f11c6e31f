//! `difyctl proxy`: only the HTTPS reverse proxy (and, with domains, its certificates), in front
//! of Dify services started some other way. Runs until SIGTERM/SIGINT; SIGHUP reloads the
//! `--cert/--key` files.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use difyctl::acme::CertManager;
use difyctl::config::Config;
use difyctl::proxy::{self, ChallengeTokens, RouteTable, Routes, Shared, Upstreams};
use difyctl::tls::{self, CertResolver, PemPair};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

pub async fn run(mut config: Config, upstreams: Upstreams) -> anyhow::Result<()> {
    // Nothing here knows whether an upstream that refuses is coming back: fail at once, as
    // nginx does, unless told to wait.
    if !config.proxy.upstream_wait_set {
        config.proxy.upstream_wait = Duration::ZERO;
    }
    serve(config, Routes::new(RouteTable::dify(&upstreams)), None).await
}

/// Serves `routes` (which the caller may keep replacing, as `up` does when containers move)
/// with certificates from `config`, until SIGTERM/SIGINT.
pub async fn serve(
    config: Config,
    routes: Routes,
    project: Option<(String, difyctl::upstreams::Expected)>,
) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives once we listen must stop us cleanly, not kill us.
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;

    let resolver = Arc::new(CertResolver::new());
    let tokens = ChallengeTokens::default();
    let certs = Certificates::install(&config, resolver.clone(), tokens.clone())?;
    let control = difyctl::control::bind(&config.state_dir).await?;

    let shared = Arc::new(Shared {
        config: config.proxy.clone(),
        routes: routes.clone(),
        challenges: tokens,
        tls: tls::server_config(resolver.clone()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = proxy::start(shared, stop_rx.clone())?;
    let renew_tx = certs.manager.map(|manager| {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(manager.run(rx, stop_rx.clone()));
        tx
    });
    let status = difyctl::control::StatusSource {
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        http: running.http_addr.to_string(),
        https: running.https_addr.to_string(),
        project: project.as_ref().map(|(p, _)| p.clone()),
        routes,
        expected: project.map(|(_, e)| e),
    };
    tokio::spawn(difyctl::control::serve(control, renew_tx, status, stop_rx));

    let pem = certs.pem;
    let mut seen = pem.as_ref().and_then(PemPair::fingerprint);
    let mut poll = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => if let Some(pair) = &pem {
                reload(pair, &resolver);
                seen = pair.fingerprint();
            },
            _ = poll.tick() => if let Some(pair) = &pem {
                let now = pair.fingerprint();
                if now.is_some() && now != seen {
                    reload(pair, &resolver);
                    seen = now;
                }
            },
        }
    }
    tracing::info!(grace = ?config.proxy.shutdown_grace, "shutting down: no new connections, waiting for requests in flight");
    let _ = stop_tx.send(true);
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// Where the served certificates come from, set up before the first connection.
pub struct Certificates {
    /// User-given files, watched for changes.
    pub pem: Option<PemPair>,
    /// The ACME manager, when certificates come from a CA.
    pub manager: Option<CertManager>,
}

impl Certificates {
    /// Puts a certificate in the resolver before anything listens: the user's files, else the
    /// stored ACME certificate, else the kept self-signed one (until the CA issues one).
    pub fn install(
        config: &Config,
        resolver: Arc<CertResolver>,
        tokens: ChallengeTokens,
    ) -> anyhow::Result<Certificates> {
        if let Some(files) = &config.cert_files {
            let pair = PemPair {
                cert: files.cert.clone(),
                key: files.key.clone(),
            };
            resolver.set_default(pair.load()?);
            return Ok(Certificates {
                pem: Some(pair),
                manager: None,
            });
        }
        let mut manager = config
            .acme
            .clone()
            .map(|acme| CertManager::new(acme, resolver.clone(), tokens));
        let served = match manager.as_mut() {
            Some(m) => m.install_stored()?.is_some(),
            None => false,
        };
        if !served {
            let names = if config.domains.is_empty() {
                vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                    "::1".to_string(),
                ]
            } else {
                config.domains.clone()
            };
            let dir = config.state_dir.join("tls");
            difyctl::fsutil::create_private_dir(&dir)
                .with_context(|| format!("cannot create state directory {}", dir.display()))?;
            resolver.set_default(tls::load_or_create_self_signed(&dir, &names)?);
            match &config.self_signed_reason {
                Some(reason) => tracing::warn!(
                    names = %names.join(","),
                    "serving a self-signed certificate, which browsers will warn about: {reason}"
                ),
                None => {
                    tracing::info!(names = %names.join(","), "serving a self-signed certificate until the CA issues one")
                }
            }
        }
        Ok(Certificates { pem: None, manager })
    }
}

/// Loads the PEM files again; on failure the current certificate stays in service.
fn reload(pair: &PemPair, resolver: &CertResolver) {
    match pair.load() {
        Ok(key) => {
            resolver.set_default(key);
            tracing::info!(cert = %pair.cert.display(), "certificate reloaded");
        }
        Err(e) => tracing::error!(
            cert = %pair.cert.display(),
            "certificate reload failed, still serving the previous one: {}",
            difyctl::error_chain(&e)
        ),
    }
}

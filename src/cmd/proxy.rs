//! `difyctl proxy`: only the HTTPS reverse proxy, in front of Dify services started some other
//! way. Runs until SIGTERM/SIGINT; SIGHUP reloads the `--cert/--key` files.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use difyctl::config::Config;
use difyctl::proxy::{self, ChallengeTokens, RouteTable, Routes, Shared, Upstreams};
use difyctl::tls::{self, CertResolver, PemPair};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub async fn run(config: Config, upstreams: Upstreams) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives once we listen must stop us cleanly, not kill us.
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let resolver = Arc::new(CertResolver::new());
    let pem = config.cert_files.as_ref().map(|c| PemPair {
        cert: c.cert.clone(),
        key: c.key.clone(),
    });
    match &pem {
        Some(pair) => resolver.set_default(pair.load()?),
        None => {
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
            tracing::warn!(
                names = %names.join(","),
                "no certificate given (--cert/--key): serving a self-signed certificate, which browsers will warn about"
            );
        }
    }

    let shared = Arc::new(Shared {
        config: config.proxy.clone(),
        routes: Routes::new(RouteTable::dify(&upstreams)),
        challenges: ChallengeTokens::default(),
        tls: tls::server_config(resolver.clone()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = proxy::start(shared, stop_rx)?;

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
            anyhow::Error::from(e).chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
        ),
    }
}

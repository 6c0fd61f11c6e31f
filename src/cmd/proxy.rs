//! `difyctl proxy`: only the HTTPS reverse proxy (and, with domains, its certificates), in front
//! of Dify services started some other way. Runs until SIGTERM/SIGINT; SIGHUP reloads the
//! `--cert/--key` files.

use std::time::Duration;

use anyhow::Context;
use difyctl::config::Config;
use difyctl::proxy::{RouteTable, Routes, Upstreams};
use difyctl::server::Server;
use tokio::signal::unix::{signal, SignalKind};

pub async fn run(mut config: Config, upstreams: Upstreams) -> anyhow::Result<()> {
    // Nothing here knows whether an upstream that refuses is coming back: fail at once, as
    // nginx does, unless told to wait.
    if !config.proxy.upstream_wait_set {
        config.proxy.upstream_wait = Duration::ZERO;
    }
    let routes = Routes::new(RouteTable::dify(&upstreams));
    serve(Server::new(config, routes)).await
}

/// Starts `server` and serves until SIGTERM/SIGINT.
pub async fn serve(server: Server) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives once we listen must stop us cleanly, not kill us.
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let running = server.start().await?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => running.reload_certificate(),
        }
    }
    tracing::info!("shutting down: no new connections, waiting for requests in flight");
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

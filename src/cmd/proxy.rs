//! `difyctl proxy`: only the HTTPS reverse proxy (and, with domains, its certificates), in front
//! of Dify services started some other way. Runs until SIGTERM/SIGINT; SIGHUP reloads the
//! `--cert/--key` files.

use std::time::Duration;

use anyhow::Context;
use difyctl::config::row::PROXY;
use difyctl::config::{Config, SettingArgs};
use difyctl::proxy::{RouteTable, Routes, Upstream, Upstreams};
use difyctl::server::Server;
use tokio::signal::unix::{signal, SignalKind};

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of Dify's web service (host:port), for / and /explore
    #[arg(long, env = "DIFYCTL_UPSTREAM_WEB", value_name = "ADDR")]
    pub upstream_web: String,
    /// Address of Dify's api service (host:port), for /console/api, /api, /v1, /files, /mcp, ...
    #[arg(long, env = "DIFYCTL_UPSTREAM_API", value_name = "ADDR")]
    pub upstream_api: String,
    /// Address of the plugin daemon (host:port), for /e/ (without it /e/ answers 503)
    #[arg(long, env = "DIFYCTL_UPSTREAM_PLUGIN", value_name = "ADDR")]
    pub upstream_plugin: Option<String>,
    /// Address of the Socket.IO service (host:port), for /socket.io/ (default: the api address)
    #[arg(long, env = "DIFYCTL_UPSTREAM_SOCKET", value_name = "ADDR")]
    pub upstream_socket: Option<String>,
    #[command(flatten)]
    pub settings: SettingArgs<PROXY>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let upstreams = Upstreams {
            web: Some(Upstream::parse("web", &self.upstream_web)?),
            api: Some(Upstream::parse("api", &self.upstream_api)?),
            plugin: self
                .upstream_plugin
                .as_deref()
                .map(|a| Upstream::parse("plugin_daemon", a))
                .transpose()?,
            socket: self
                .upstream_socket
                .as_deref()
                .map(|a| Upstream::parse("api_websocket", a))
                .transpose()?,
        };
        let config = g.config_with(&self.settings)?;
        runtime()?.block_on(run(config, upstreams))
    }
}

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

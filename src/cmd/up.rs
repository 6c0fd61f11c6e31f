//! `difyctl up`: reconcile the stack (create, recreate or keep each service's container, in
//! dependency order, waiting for health), then, unless `--no-proxy`, serve the proxy and run
//! the certificate manager in the foreground.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use difyctl::proxy::{RouteTable, Routes, Upstream, Upstreams};

use difyctl::engine::progress::Progress;
use difyctl::engine::reconcile::{self, Action, UpOptions};
use difyctl::stack::model::Stack;

pub struct UpSettings {
    pub wait_timeout: Duration,
    pub replace: Vec<String>,
    pub json: bool,
    /// The compose files (absolute), for scheduled backups.
    pub compose_files: Vec<std::path::PathBuf>,
}

/// Brings the stack up and waits for it; prints what was done.
pub async fn reconcile_stack(
    stack: &Stack,
    config_file: &str,
    settings: &UpSettings,
) -> anyhow::Result<Vec<reconcile::ServiceResult>> {
    let engine = super::engine().await?;
    let width = stack
        .services
        .iter()
        .map(|s| s.name.len())
        .chain(stack.services.iter().map(|s| s.image.len()))
        .max()
        .unwrap_or(0);
    let progress = if settings.json {
        Progress::hidden()
    } else {
        Progress::new(width)
    };
    let opts = UpOptions {
        timeout: settings.wait_timeout,
        config_file: config_file.to_string(),
        retired: settings.replace.clone(),
    };
    let report = reconcile::up(&engine, stack, &opts, &progress).await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let count = |a: Action| report.services.iter().filter(|s| s.action == a).count();
    if settings.json {
        println!("{}", serde_json::to_string_pretty(&report.services)?);
    } else {
        eprintln!(
            "project {}: {} service(s) up ({} created, {} recreated, {} started, {} unchanged)",
            stack.project,
            report.services.len(),
            count(Action::Created),
            count(Action::Recreated),
            count(Action::Started),
            count(Action::Unchanged)
        );
    }
    Ok(report.services)
}

/// The whole install: the stack, then the proxy (routes following the containers) and the
/// certificate manager in the foreground until SIGTERM/SIGINT. The containers keep running
/// when difyctl stops (a restart of difyctl, or of its systemd unit, does not restart Dify);
/// `difyctl down` stops them.
pub async fn run(
    stack: Stack,
    config: difyctl::config::Config,
    config_file: &str,
    settings: &UpSettings,
) -> anyhow::Result<()> {
    reconcile_stack(&stack, config_file, settings).await?;
    let host = config.domains.first().map_or("localhost", String::as_str);
    let port = config.proxy.https.port();
    let url = if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    };
    tracing::info!(%url, "Dify is served here; Ctrl-C or SIGTERM stops difyctl (the containers keep running)");
    let engine = super::engine().await?;
    let (backups_tx, backups_stop) = tokio::sync::watch::channel(false);
    let backups = config.backup.schedule.clone().map(|schedule| {
        tokio::spawn(super::backup::scheduled(
            engine.clone(),
            stack.clone(),
            settings.compose_files.clone(),
            config.clone(),
            schedule,
            backups_stop,
        ))
    });
    let addresses = difyctl::engine::addresses::current(&engine, &stack.project).await?;
    let ports = Ports::of(&stack);
    let routes = Routes::new(RouteTable::dify(&upstreams(&addresses, ports)));
    let (_keep, stop) = tokio::sync::watch::channel(false);
    let follower_routes = routes.clone();
    // A service keeps its last address while its container is down: requests then wait for
    // it (proxy.upstream_wait) instead of getting a 503 during a restart.
    let mut last = addresses.clone();
    tokio::spawn(difyctl::engine::addresses::follow(
        engine,
        stack.project.clone(),
        move |now| {
            last.extend(now.iter().map(|(k, v)| (k.clone(), *v)));
            let ups = upstreams(&last, ports);
            for (name, up) in [
                ("web", &ups.web),
                ("api", &ups.api),
                ("plugin_daemon", &ups.plugin),
            ] {
                match up {
                    Some(u) => tracing::info!(service = name, address = %u.authority, "upstream"),
                    None => tracing::warn!(service = name, "not running: its routes answer 503"),
                }
            }
            follower_routes.replace(RouteTable::dify(&ups));
        },
        stop,
    ));
    let served = super::proxy::serve(config, routes, Some(stack.project.clone())).await;
    // A backup in progress is abandoned cleanly: its paused services unpaused, its partial
    // file removed (dropping it with the runtime would leave them paused).
    let _ = backups_tx.send(true);
    if let Some(task) = backups {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    served
}

/// The ports Dify's services listen on inside their containers: Dify's defaults unless the
/// service's environment moves them (api: DIFY_PORT, web: PORT, plugin_daemon: SERVER_PORT).
#[derive(Clone, Copy)]
struct Ports {
    web: u16,
    api: u16,
    plugin: u16,
    socket: u16,
}

impl Ports {
    fn of(stack: &Stack) -> Ports {
        let port = |service: &str, key: &str, default: u16| {
            stack
                .service(service)
                .and_then(|s| s.environment.get(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Ports {
            web: port("web", "PORT", 3000),
            api: port("api", "DIFY_PORT", 5001),
            plugin: port("plugin_daemon", "SERVER_PORT", 5002),
            socket: port("api_websocket", "DIFY_PORT", 5001),
        }
    }
}

/// Dify's services the proxy fronts, at their container address and port.
fn upstreams(addresses: &BTreeMap<String, IpAddr>, ports: Ports) -> Upstreams {
    let at = |service: &str, port: u16| {
        addresses.get(service).map(|ip| Upstream {
            service: service.to_string(),
            authority: SocketAddr::new(*ip, port)
                .to_string()
                .parse()
                // Invariant: a socket address always renders as a valid authority.
                .expect("socket address is an authority"),
        })
    };
    Upstreams {
        web: at("web", ports.web),
        api: at("api", ports.api),
        plugin: at("plugin_daemon", ports.plugin),
        socket: at("api_websocket", ports.socket),
    }
}

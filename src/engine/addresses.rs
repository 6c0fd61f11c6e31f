//! Where the project's services can be reached from this host: each running container's
//! address on its project network (nothing needs publishing on the host's interfaces), and a
//! follower that re-reads them whenever Docker reports a container starting, dying or being
//! replaced, so the proxy never keeps a dead address (nginx's classic stale-IP 502).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::labels;
use super::reconcile::{project_containers, service_label};
use super::{Engine, EngineError};

/// Running services with their container address: service -> IP. A container on several
/// networks is reached through `<project>_default` when it has it.
pub async fn current(
    engine: &Engine,
    project: &str,
) -> Result<BTreeMap<String, IpAddr>, EngineError> {
    let mut out = BTreeMap::new();
    let preferred = format!("{project}_default");
    for c in project_containers(engine, project, false).await? {
        let Some(service) = service_label(&c) else {
            continue;
        };
        let networks = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap_or_default();
        let ip = networks
            .get(&preferred)
            .into_iter()
            .chain(networks.values())
            .filter_map(|n| n.ip_address.as_deref())
            .find_map(|ip| ip.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            out.insert(service.to_string(), ip);
        }
    }
    Ok(out)
}

/// Calls `apply` with the addresses now, then again each time they change, until `stop`.
/// Changes are noticed from Docker's events (within a second); a slow re-read every 10 s
/// covers a dropped event stream.
pub async fn follow(
    engine: Engine,
    project: String,
    mut apply: impl FnMut(&BTreeMap<String, IpAddr>),
    mut stop: watch::Receiver<bool>,
) {
    let mut known: Option<BTreeMap<String, IpAddr>> = None;
    let mut stopped = Stopped::default();
    loop {
        let filters = std::collections::HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{}={project}", labels::PROJECT)],
            ),
        ]);
        let mut events = engine.docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            let reread = tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => true,
                event = events.next() => match event {
                    Some(Ok(e)) => {
                        let id = e.actor.as_ref().and_then(|a| a.id.clone()).unwrap_or_default();
                        match e.action.as_deref() {
                            Some("stop") => { stopped.insert(id); }
                            Some("start") => { stopped.remove(&id); }
                            Some("die") => { tokio::spawn(revive(engine.clone(), id, stopped.clone())); }
                            _ => {}
                        }
                        matches!(
                        e.action.as_deref(),
                        Some("start" | "restart" | "die" | "destroy" | "unpause" | "pause" | "connect" | "disconnect")
                        ) || e.action.as_deref().is_some_and(|a| a.starts_with("health_status"))
                    }
                    // The stream ended (Docker restarted?): open it again.
                    _ => break,
                },
            };
            if !reread {
                continue;
            }
            match current(&engine, &project).await {
                Ok(now) => {
                    if known.as_ref() != Some(&now) {
                        apply(&now);
                        known = Some(now);
                    }
                }
                Err(e) => tracing::warn!(
                    "cannot read container addresses: {}",
                    crate::error_chain(&e)
                ),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Containers stopped on purpose (`docker stop`, `difyctl restart`): not revived.
#[derive(Clone, Default)]
struct Stopped(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl Stopped {
    fn insert(&mut self, id: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }
    fn remove(&mut self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
    fn contains(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

/// A container that died without `docker stop` (crashed, OOM-killed, `docker kill`) and that
/// Docker did not bring back although its restart policy says always/unless-stopped (Docker
/// treats `docker kill` as a manual stop): started again, as the compose file asks.
async fn revive(engine: Engine, id: String, stopped: Stopped) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    if stopped.contains(&id) {
        return;
    }
    let Ok(info) = engine.docker.inspect_container(&id, None).await else {
        return;
    };
    let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        || info
            .state
            .as_ref()
            .and_then(|s| s.restarting)
            .unwrap_or(false);
    let policy = info
        .host_config
        .as_ref()
        .and_then(|h| h.restart_policy.as_ref())
        .and_then(|r| r.name)
        .map(|n| n.to_string())
        .unwrap_or_default();
    if running || !(policy == "always" || policy == "unless-stopped") {
        return;
    }
    let name = info.name.unwrap_or(id.clone());
    match engine.docker.start_container(&id, None).await {
        Ok(()) => {
            tracing::warn!(container = %name.trim_start_matches('/'), "the container died and Docker did not restart it: started it again (restart: {policy})")
        }
        Err(e) => {
            tracing::error!(container = %name.trim_start_matches('/'), "cannot start the dead container again: {e}")
        }
    }
}

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
use super::listing::{project_containers, service_label};
use super::{Engine, EngineError};

/// What the proxy needs to know of one service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Running, reached at this address on a project network.
    Running(IpAddr),
    /// Starting, restarting, being created or to be started again by its restart policy.
    Coming,
    /// Stopped with nothing to start it again, or not on a project network: why.
    Down(String),
}

/// Each service that has a container, and its state. Addresses come only from `networks`
/// (the project's own, by Docker name; `<project>_default` first): a container detached from
/// them is `Down`, never reached through an address that may now route off the host.
pub async fn current(
    engine: &Engine,
    project: &str,
    networks: &[String],
) -> Result<BTreeMap<String, ServiceState>, EngineError> {
    current_with(engine, project, networks, &Stopped::default()).await
}

async fn current_with(
    engine: &Engine,
    project: &str,
    networks: &[String],
    stopped: &Stopped,
) -> Result<BTreeMap<String, ServiceState>, EngineError> {
    let mut out: BTreeMap<String, (u8, ServiceState)> = BTreeMap::new();
    let preferred = format!("{project}_default");
    for c in project_containers(engine, project, true).await? {
        let Some(service) = service_label(&c) else {
            continue;
        };
        let (rank, state) = match classify(&c, &preferred, networks) {
            Some(known) => known,
            None => stopped_state(engine, &c, stopped).await,
        };
        let better = out.get(service).is_none_or(|(r, _)| rank > *r);
        if better {
            out.insert(service.to_string(), (rank, state));
        }
    }
    Ok(out.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// A container's state, ranked (when a service has several, during a recreation, the most
/// alive one counts); `None` for a stopped one, which needs a closer look.
fn classify(
    c: &bollard::models::ContainerSummary,
    preferred: &str,
    networks: &[String],
) -> Option<(u8, ServiceState)> {
    use bollard::models::ContainerSummaryStateEnum as S;
    let attached = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let ip = attached
        .get(preferred)
        .into_iter()
        .chain(networks.iter().filter_map(|n| attached.get(n)))
        .filter_map(|n| n.ip_address.as_deref())
        .find_map(|ip| ip.parse::<IpAddr>().ok());
    match c.state {
        Some(S::RUNNING | S::PAUSED) => Some(match ip {
            Some(ip) => (4, ServiceState::Running(ip)),
            None => (
                1,
                ServiceState::Down("running but not on the project's network".into()),
            ),
        }),
        Some(S::RESTARTING | S::CREATED | S::REMOVING) => Some((3, ServiceState::Coming)),
        _ => None,
    }
}

/// An exited container: coming back when its restart policy will start it again (Docker, or
/// `revive` for one Docker gave up on) and nobody stopped it on purpose.
async fn stopped_state(
    engine: &Engine,
    c: &bollard::models::ContainerSummary,
    stopped: &Stopped,
) -> (u8, ServiceState) {
    let id = c.id.clone().unwrap_or_default();
    let info = engine.docker.inspect_container(&id, None).await.ok();
    let policy = info
        .as_ref()
        .and_then(|i| i.host_config.as_ref())
        .and_then(|h| h.restart_policy.as_ref())
        .and_then(|r| r.name)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let code = info
        .as_ref()
        .and_then(|i| i.state.as_ref())
        .and_then(|s| s.exit_code)
        .or_else(|| exit_code(c.status.as_deref().unwrap_or("")));
    let on_purpose = stopped.contains(&id);
    let restarts = matches!(policy.as_str(), "always" | "unless-stopped")
        || (policy == "on-failure" && code.is_some_and(|c| c != 0));
    if restarts && !on_purpose {
        return (2, ServiceState::Coming);
    }
    let why = match code {
        Some(code) if !on_purpose => format!("exited with code {code}"),
        _ => "stopped".into(),
    };
    (0, ServiceState::Down(why))
}

/// `Exited (137) 5 seconds ago` -> 137.
fn exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// Calls `apply` with the addresses now, then again each time they change, until `stop`.
/// Changes are noticed from Docker's events (within a second); a slow re-read every 10 s
/// covers a dropped event stream. Each container start is counted in `metrics`, by service.
pub async fn follow(
    engine: Engine,
    project: String,
    networks: Vec<String>,
    poke: std::sync::Arc<tokio::sync::Notify>,
    mut apply: impl FnMut(&BTreeMap<String, ServiceState>),
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut known: Option<BTreeMap<String, ServiceState>> = None;
    let mut stopped = Stopped::default();
    loop {
        // Container events and network ones (a container joining or leaving a network is a
        // network event, with no container labels): which are this project's is sorted out
        // here, as Docker's filters cannot say "this label or these networks".
        let filters = std::collections::HashMap::from([(
            "type".to_string(),
            vec!["container".to_string(), "network".to_string()],
        )]);
        let mut events = engine.docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            let reread = tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => true,
                // Something outside Docker changed (an expected restart): apply again.
                _ = poke.notified() => {
                    known = None;
                    true
                }
                event = events.next() => match event {
                    Some(Ok(e)) if !concerns(&e, &project, &networks) => false,
                    Some(Ok(e)) => {
                        let died = e.action.as_deref() == Some("die");
                        let mut reread = on_event(&e, &engine, &mut stopped, &metrics);
                        if died {
                            // `docker stop` sends `die` and then `stop`: take what follows at
                            // once, so a container stopped on purpose is never read as one
                            // that exited on its own (regression: a 502 page briefly said
                            // "exited with code 0" for a stopped service).
                            let ours = |e: &_| concerns(e, &project, &networks);
                            reread |= settle(&mut events, ours, &engine, &mut stopped, &metrics)
                                .await;
                        }
                        reread
                    }
                    // The stream ended (Docker restarted?): open it again.
                    _ => break,
                },
            };
            if !reread {
                continue;
            }
            match current_with(&engine, &project, &networks, &stopped).await {
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

/// Whether an event is about this project: one of its containers, or one of its networks
/// (a container attached or detached).
fn concerns(e: &bollard::models::EventMessage, project: &str, networks: &[String]) -> bool {
    use bollard::models::EventMessageTypeEnum as T;
    let attributes = e.actor.as_ref().and_then(|a| a.attributes.as_ref());
    let attribute = |key: &str| attributes.and_then(|a| a.get(key)).map(String::as_str);
    match e.typ {
        Some(T::CONTAINER) => attribute(labels::PROJECT) == Some(project),
        Some(T::NETWORK) => attribute("name").is_some_and(|n| networks.iter().any(|m| m == n)),
        _ => false,
    }
}

/// Notes what one event means (a stop on purpose, a start to count, a death to look at) and
/// says whether the addresses must be read again.
fn on_event(
    e: &bollard::models::EventMessage,
    engine: &Engine,
    stopped: &mut Stopped,
    metrics: &crate::metrics::Metrics,
) -> bool {
    let id = e
        .actor
        .as_ref()
        .and_then(|a| a.id.clone())
        .unwrap_or_default();
    match e.action.as_deref() {
        Some("stop") => stopped.insert(id),
        Some("start") => {
            stopped.remove(&id);
            let attributes = e.actor.as_ref().and_then(|a| a.attributes.as_ref());
            if let Some(service) = attributes.and_then(|a| a.get(labels::SERVICE)) {
                metrics.service_started(service);
            }
        }
        Some("die") => {
            tokio::spawn(revive(engine.clone(), id, stopped.clone()));
        }
        _ => {}
    }
    matches!(
        e.action.as_deref(),
        Some(
            "start"
                | "restart"
                | "die"
                | "destroy"
                | "unpause"
                | "pause"
                | "connect"
                | "disconnect"
        )
    ) || e
        .action
        .as_deref()
        .is_some_and(|a| a.starts_with("health_status"))
}

/// After a `die`: the events Docker sends right behind it (within 200 ms of each other, for
/// at most a second), so that a `stop` is known before the addresses are read.
async fn settle<S>(
    events: &mut S,
    ours: impl Fn(&bollard::models::EventMessage) -> bool,
    engine: &Engine,
    stopped: &mut Stopped,
    metrics: &crate::metrics::Metrics,
) -> bool
where
    S: futures_util::Stream<Item = Result<bollard::models::EventMessage, bollard::errors::Error>>
        + Unpin,
{
    let mut reread = false;
    // At most a second in all: a stream of events (a whole stack restarting) must not hold
    // the reread back for long.
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(Ok(e))) = tokio::time::timeout_at(
        until.min(tokio::time::Instant::now() + Duration::from_millis(200)),
        events.next(),
    )
    .await
    {
        if !ours(&e) {
            continue;
        }
        let stop = e.action.as_deref() == Some("stop");
        reread |= on_event(&e, engine, stopped, metrics);
        if stop {
            break;
        }
    }
    reread
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

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessage, EventMessageTypeEnum};

    fn event(typ: EventMessageTypeEnum, attributes: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            actor: Some(EventActor {
                id: Some("x".into()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    /// Regression: the follower asked Docker for container events only, so a container
    /// detached from its network (a network event) was noticed at the next 10 s re-read.
    #[test]
    fn network_events_of_the_projects_networks_concern_the_follower() {
        let nets = vec!["p_default".to_string()];
        let ours = event(EventMessageTypeEnum::NETWORK, &[("name", "p_default")]);
        let other = event(EventMessageTypeEnum::NETWORK, &[("name", "q_default")]);
        assert!(concerns(&ours, "p", &nets));
        assert!(!concerns(&other, "p", &nets));
        let mine = event(EventMessageTypeEnum::CONTAINER, &[(labels::PROJECT, "p")]);
        let theirs = event(EventMessageTypeEnum::CONTAINER, &[(labels::PROJECT, "q")]);
        assert!(concerns(&mine, "p", &nets));
        assert!(!concerns(&theirs, "p", &nets));
        assert!(!concerns(
            &event(EventMessageTypeEnum::VOLUME, &[]),
            "p",
            &nets
        ));
    }
}

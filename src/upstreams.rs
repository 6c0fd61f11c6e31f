//! What `up` serves: Dify's fronted services (web, api, plugin_daemon, api_websocket) as the
//! engine sees their containers, turned into the proxy's route table, and kept so as Docker
//! reports changes. The rule for a service that does not answer: requests wait for it only when
//! it is known to come back (its container is starting, restarting, being recreated, or
//! another difyctl said it is about to be: `Expected`); stopped, it gets a 502 at once; gone,
//! a 503. An address is only ever one on the project's own networks.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::engine::addresses::ServiceState;
use crate::proxy::{Availability, RouteTable, Upstream, Upstreams};
pub use crate::stack::fronted::Ports;

/// Services another difyctl is about to restart or recreate (`difyctl restart`, `up
/// --no-proxy`), told over the control socket: until then, or until cleared, they count as
/// coming back whatever Docker says in between.
/// Until when a service is expected back, and by which process (pid, start time).
type Notice = (Instant, Option<(u32, u64)>);

#[derive(Clone, Default)]
pub struct Expected {
    /// Service -> until when, and the process bringing it back (its pid and start time): a
    /// notice whose process is gone (killed) ends at once, not when its time runs out.
    until: Arc<Mutex<HashMap<String, Notice>>>,
    /// Wakes the follower so the table is rebuilt at once.
    pub poke: Arc<Notify>,
}

impl Expected {
    pub fn expect(&self, services: &[String], within: Duration) {
        self.expect_by(services, within, None);
    }

    /// As `expect`, for as long as process `pid` runs.
    pub fn expect_by(&self, services: &[String], within: Duration, pid: Option<u32>) {
        let owner = pid.map(|p| (p, crate::journal::start_time(p).unwrap_or(0)));
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        for s in services {
            map.insert(s.clone(), (Instant::now() + within, owner));
        }
        drop(map);
        self.poke.notify_one();
    }

    pub fn clear(&self, services: &[String]) {
        let mut map = self.until.lock().unwrap_or_else(|p| p.into_inner());
        for s in services {
            map.remove(s);
        }
        drop(map);
        self.poke.notify_one();
    }

    fn has(&self, service: &str) -> bool {
        self.until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .is_some_and(|(t, owner)| {
                Instant::now() < *t
                    && owner.is_none_or(|(pid, start)| crate::journal::alive(pid, start))
            })
    }
}

/// Builds the upstreams from what the engine sees, remembering each service's last address
/// (where a restarting service will most likely be again).
pub struct View {
    ports: Ports,
    last: BTreeMap<String, IpAddr>,
    expected: Expected,
    /// Since when each service has been "coming back" on Docker's word alone: one that has not
    /// come back within `COMING_LIMIT` is not waited for any more (a killed difyctl's notice is
    /// gone, a container that will not start).
    coming_since: HashMap<String, Instant>,
}

/// How long a service counts as coming back on Docker's word alone (a restart policy, a
/// container being created), with nothing live bringing it back.
pub const COMING_LIMIT: Duration = Duration::from_secs(60);

impl View {
    pub fn new(ports: Ports, expected: Expected) -> View {
        View {
            ports,
            last: BTreeMap::new(),
            expected,
            coming_since: HashMap::new(),
        }
    }

    pub fn upstreams(&mut self, states: &BTreeMap<String, ServiceState>) -> Upstreams {
        for (service, state) in states {
            if let ServiceState::Running(ip) = state {
                self.last.insert(service.clone(), *ip);
            }
        }
        Upstreams {
            web: self.one(crate::dify::WEB, self.ports.web(), states),
            api: self.one(crate::dify::API, self.ports.api(), states),
            plugin: self.one(crate::dify::PLUGIN_DAEMON, self.ports.plugin(), states),
            socket: self.one(crate::dify::API_WEBSOCKET, self.ports.socket(), states),
        }
    }

    fn one(
        &mut self,
        service: &str,
        port: u16,
        states: &BTreeMap<String, ServiceState>,
    ) -> Option<Upstream> {
        let expected = self.expected.has(service);
        let last = self.last.get(service).copied();
        let coming = matches!(states.get(service), Some(ServiceState::Coming)) && !expected;
        if !coming {
            self.coming_since.remove(service);
        }
        let since = coming.then(|| {
            *self
                .coming_since
                .entry(service.to_string())
                .or_insert_with(Instant::now)
        });
        let (ip, availability) = match states.get(service) {
            Some(ServiceState::Running(ip)) => (*ip, Availability::Ready),
            Some(ServiceState::Coming) if since.is_some_and(|t| t.elapsed() > COMING_LIMIT) => (
                last?,
                Availability::Down(format!(
                    "not back after {}s (its container does not start)",
                    COMING_LIMIT.as_secs()
                )),
            ),
            Some(ServiceState::Coming) => (last?, Availability::Coming),
            Some(ServiceState::Down(_)) | None if expected => (last?, Availability::Coming),
            // Never connected to: any address will do, but only a loopback one is safe.
            Some(ServiceState::Down(why)) => (
                last.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                Availability::Down(why.clone()),
            ),
            None => return None,
        };
        Some(Upstream {
            service: service.to_string(),
            authority: SocketAddr::new(ip, port)
                .to_string()
                .parse()
                // Invariant: a socket address always renders as a valid authority.
                .expect("socket address is an authority"),
            availability,
        })
    }
}

/// One log line per service whose state changed.
pub fn log_changes(before: Option<&RouteTable>, now: &RouteTable) {
    let states = |t: &RouteTable| -> BTreeMap<&'static str, Option<(String, Availability)>> {
        t.services()
            .into_iter()
            .map(|(s, u)| {
                (
                    s,
                    u.map(|u| (u.authority.to_string(), u.availability.clone())),
                )
            })
            .collect()
    };
    let old = before.map(states).unwrap_or_default();
    for (service, up) in states(now) {
        if old.get(service) == Some(&up) {
            continue;
        }
        match up {
            Some((address, Availability::Ready)) => tracing::info!(service, %address, "upstream"),
            Some((address, Availability::Coming)) => {
                tracing::info!(service, %address, "upstream coming back: requests wait for it")
            }
            Some((_, Availability::Down(why))) => {
                tracing::warn!(service, state = %why, "upstream down: its routes answer 502")
            }
            None => tracing::warn!(service, "no container: its routes answer 503"),
        }
    }
}

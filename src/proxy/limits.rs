//! How many connections the proxy holds: at most `max_connections` in all and
//! `max_connections_per_client` from one client (an IPv4 address, or an IPv6 /64, which one
//! party usually holds whole; trusted proxies are exempt, every user is behind them). A
//! connection over a limit is closed at once, and what was refused is logged once per 10 s
//! with counts, not a line per connection. At start the soft open-file limit is raised to the
//! hard limit: the 1024 default runs out long before the connection limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cidr::Cidr;

pub struct ConnLimits {
    max_total: usize,
    max_per_client: usize,
    trusted: Vec<Cidr>,
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    refused_total: AtomicU64,
    refused_client: AtomicU64,
    last_log: Mutex<(Option<Instant>, Option<IpAddr>)>,
    last_accept_warning: Mutex<Option<Instant>>,
}

/// A held connection; dropping it frees its place.
pub struct Slot {
    limits: Arc<ConnLimits>,
    client: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(client) = self.client {
            let mut map = self
                .limits
                .per_client
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&client);
                }
            }
        }
    }
}

impl ConnLimits {
    /// `0` for a limit means none.
    pub fn new(max_total: usize, max_per_client: usize, trusted: Vec<Cidr>) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total: if max_total == 0 {
                usize::MAX
            } else {
                max_total
            },
            max_per_client: if max_per_client == 0 {
                usize::MAX
            } else {
                max_per_client
            },
            trusted,
            total: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            refused_total: AtomicU64::new(0),
            refused_client: AtomicU64::new(0),
            last_log: Mutex::new((None, None)),
            last_accept_warning: Mutex::new(None),
        })
    }

    /// A place for a connection from `peer`, or `None` (close it) when a limit is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            self.refused_total.fetch_add(1, Ordering::Relaxed);
            self.log_refusals(None);
            return None;
        }
        let exempt =
            self.max_per_client == usize::MAX || self.trusted.iter().any(|c| c.contains(peer));
        let client = (!exempt).then(|| client_key(peer));
        if let Some(key) = client {
            let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(key).or_insert(0);
            if *n >= self.max_per_client {
                drop(map);
                self.total.fetch_sub(1, Ordering::Relaxed);
                self.refused_client.fetch_add(1, Ordering::Relaxed);
                self.log_refusals(Some(key));
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            limits: self.clone(),
            client,
        })
    }

    /// Whether a failed accept should be logged: once a minute at most.
    pub fn should_warn_accept_failure(&self) -> bool {
        let mut last = self
            .last_accept_warning
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// One warning per 10 s with what was refused since the last one.
    fn log_refusals(&self, client: Option<IpAddr>) {
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if client.is_some() {
            last.1 = client;
        }
        if last
            .0
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        let total = self.refused_total.swap(0, Ordering::Relaxed);
        let per_client = self.refused_client.swap(0, Ordering::Relaxed);
        tracing::warn!(
            open = self.total.load(Ordering::Relaxed),
            max_connections = self.max_total,
            max_connections_per_client = self.max_per_client,
            refused_over_total = total,
            refused_over_per_client = per_client,
            last_client = %last.1.map_or("-".to_string(), |c| c.to_string()),
            "connection limit reached: new connections are closed at once (proxy.max_connections, proxy.max_connections_per_client)"
        );
        *last = (Some(Instant::now()), None);
    }
}

/// An IPv4 address, or the /64 an IPv6 address is in.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Raises the soft open-file limit to the hard one; returns the limit now in effect.
pub fn raise_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct passed; no other preconditions.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_and_total_limits_free_their_places() {
        let limits = ConnLimits::new(3, 2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let one = limits.admit(a).unwrap();
        let _two = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none(), "third from one client");
        drop(one);
        let _three = limits.admit(a).unwrap();
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        let _lb = limits
            .admit(lb)
            .expect("a trusted proxy has no per-client limit");
        assert!(
            limits.admit(lb).is_none(),
            "total reached, even for a trusted proxy"
        );
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(client_key(v6a), client_key(v6b), "one /64 is one client");
    }
}

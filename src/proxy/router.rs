//! The route table: Dify's nginx locations, longest prefix wins. It sits behind an `ArcSwap`
//! so `up` can point a route at a container's new address while requests are in flight.

use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::uri::Authority;

/// Where a route's requests go: the compose service's name (for logs and error pages), the
/// `host:port` to connect to, and whether it is there to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub service: String,
    pub authority: Authority,
    pub availability: Availability,
}

/// What the proxy knows of an upstream besides its address. Requests wait for an upstream
/// only when it is known to come back; one that is stopped with nothing to bring it back gets
/// a 502 at once, as nginx answers a refused connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Availability {
    /// Running (or, for `difyctl proxy`, simply configured).
    #[default]
    Ready,
    /// Starting, restarting or being recreated: requests wait for it (`upstream_wait`).
    Coming,
    /// Stopped, and nothing will start it: why (`stopped`, `exited with code 1`, ...).
    Down(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("upstream `{addr}` for {service} is not a host:port address")]
pub struct UpstreamError {
    pub service: String,
    pub addr: String,
}

impl Upstream {
    /// Parses `host:port` (an `http://` prefix is accepted and ignored).
    pub fn parse(service: &str, addr: &str) -> Result<Upstream, UpstreamError> {
        let err = || UpstreamError {
            service: service.to_string(),
            addr: addr.to_string(),
        };
        let bare = addr
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let authority = Authority::from_str(bare).map_err(|_| err())?;
        if authority.port_u16().is_none() || bare.contains('@') {
            return Err(err());
        }
        Ok(Upstream {
            service: service.to_string(),
            authority,
            availability: Availability::Ready,
        })
    }
}

/// The upstream for each of Dify's services that the proxy fronts; `None` means not running.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    pub web: Option<Upstream>,
    pub api: Option<Upstream>,
    pub plugin: Option<Upstream>,
    /// Socket.IO; when absent, `/socket.io/` goes to `api` (as Dify does without api_websocket).
    pub socket: Option<Upstream>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: &'static str,
    /// The service this route is for, named in the 503 page when it has no upstream.
    pub service: &'static str,
    pub upstream: Option<Arc<Upstream>>,
    /// Add `Dify-Hook-Url: <scheme>://<host><uri>` (plugin endpoints under `/e/`).
    pub hook_url: bool,
    /// WebSocket upgrades pass here (only `/socket.io/`, as in Dify's nginx).
    pub websocket: bool,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Sorted longest prefix first, so the first match is the longest.
    routes: Vec<Route>,
}

impl RouteTable {
    /// The table of Dify's `nginx/conf.d/default.conf.template`.
    pub fn dify(up: &Upstreams) -> RouteTable {
        let api = up.api.clone().map(Arc::new);
        let web = up.web.clone().map(Arc::new);
        let plugin = up.plugin.clone().map(Arc::new);
        let socket = up.socket.clone().map(Arc::new).or_else(|| api.clone());
        let upstream = |service| match service {
            crate::dify::WEB => web.clone(),
            crate::dify::PLUGIN_DAEMON => plugin.clone(),
            crate::dify::API_WEBSOCKET => socket.clone(),
            _ => api.clone(),
        };
        let mut routes: Vec<Route> = crate::dify::LOCATIONS
            .iter()
            .map(|l| Route {
                prefix: l.prefix,
                service: l.service,
                upstream: upstream(l.service),
                hook_url: l.hook_url,
                websocket: l.websocket,
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable { routes }
    }

    /// The route for `path`; every path starts with `/`, which always matches, but a path
    /// that does not (an absolute-form oddity) falls to the last route too.
    /// Each service the table routes to, with its upstream address (none: not running).
    pub fn upstreams(&self) -> Vec<(&'static str, Option<String>)> {
        let mut out: Vec<(&'static str, Option<String>)> = Vec::new();
        for r in &self.routes {
            if !out.iter().any(|(s, _)| *s == r.service) {
                out.push((
                    r.service,
                    r.upstream.as_ref().map(|u| u.authority.to_string()),
                ));
            }
        }
        out.sort();
        out
    }

    /// Each service the table routes to, with its upstream (none: no container).
    pub fn services(&self) -> Vec<(&'static str, Option<Arc<Upstream>>)> {
        let mut out: Vec<(&'static str, Option<Arc<Upstream>>)> = Vec::new();
        for r in &self.routes {
            if !out.iter().any(|(s, _)| *s == r.service) {
                out.push((r.service, r.upstream.clone()));
            }
        }
        out.sort_by_key(|(s, _)| *s);
        out
    }

    pub fn lookup(&self, path: &str) -> &Route {
        self.routes
            .iter()
            .find(|r| path.starts_with(r.prefix))
            // Invariant: `dify()` always includes the "/" route, sorted last.
            .unwrap_or_else(|| &self.routes[self.routes.len() - 1])
    }
}

/// The live route table, shared by every worker; `replace` swaps it atomically.
#[derive(Debug, Clone)]
pub struct Routes(Arc<ArcSwap<RouteTable>>);

impl Routes {
    pub fn new(table: RouteTable) -> Routes {
        Routes(Arc::new(ArcSwap::from_pointee(table)))
    }
    pub fn load(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.0.load()
    }
    /// The table now, kept (unlike `load`'s guard) for as long as the caller likes.
    pub fn load_full(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }
    pub fn replace(&self, table: RouteTable) {
        self.0.store(Arc::new(table));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups() -> Upstreams {
        Upstreams {
            web: Some(Upstream::parse("web", "127.0.0.1:3000").unwrap()),
            api: Some(Upstream::parse("api", "127.0.0.1:5001").unwrap()),
            plugin: None,
            socket: None,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::dify(&ups());
        assert_eq!(t.lookup("/console/api/setup").prefix, "/console/api");
        assert_eq!(t.lookup("/console/").prefix, "/");
        assert_eq!(t.lookup("/api/chat").service, "api");
        assert_eq!(t.lookup("/explore/apps").service, "web");
        assert_eq!(t.lookup("/e/abc").service, "plugin_daemon");
        assert!(t.lookup("/e/abc").upstream.is_none());
        assert!(t.lookup("/e/abc").hook_url);
        let socket = t.lookup("/socket.io/?EIO=4");
        assert_eq!(
            socket.upstream.as_ref().unwrap().service,
            "api",
            "falls back to api"
        );
        assert_eq!(t.lookup("*").prefix, "/");
    }

    #[test]
    fn upstream_addresses() {
        assert!(Upstream::parse("api", "http://api:5001/").is_ok());
        assert!(Upstream::parse("api", "api").is_err());
        assert!(Upstream::parse("api", "user@api:5001").is_err());
    }
}

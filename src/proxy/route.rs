//! Choosing the upstream: the path normalised as nginx does (`path.rs`), looked up in the live
//! route table (`router.rs`); a service with no container, or one stopped for good, fails
//! here, before anything is sent.

use std::str::FromStr;
use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{Request, Version};

use super::failure::Failure;
use super::headers::is_websocket_upgrade;
use super::router::{Availability, Routes, Upstream};

/// Where a request goes.
pub struct Routed {
    pub service: &'static str,
    pub upstream: Arc<Upstream>,
    /// Add `Dify-Hook-Url` (plugin endpoints).
    pub hook_url: bool,
    /// A WebSocket upgrade on the one route that allows them (as in Dify's nginx; elsewhere
    /// `Upgrade` is a hop-by-hop header like any other and is dropped).
    pub websocket: bool,
    /// The normalised path with the query, as the upstream gets it.
    pub path_and_query: PathAndQuery,
}

/// The route for `req`; `Err` names the service when it is the upstream that is missing.
pub fn route<B>(
    req: &Request<B>,
    routes: &Routes,
) -> Result<Routed, (Option<&'static str>, Failure)> {
    let uri = req.uri();
    let normalized = super::path::normalize(uri.path());
    let table = routes.load();
    let route = table.lookup(&normalized);
    let service = route.service;
    let Some(upstream) = route.upstream.clone() else {
        return Err((Some(service), Failure::NoUpstream(service)));
    };
    if let Availability::Down(state) = &upstream.availability {
        // Stopped with nothing bringing it back: waiting would only delay the 502.
        return Err((Some(service), Failure::Down(service, state.clone())));
    }
    let path_and_query = match normalized {
        std::borrow::Cow::Borrowed(_) => uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        std::borrow::Cow::Owned(path) => {
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            PathAndQuery::from_str(&format!("{path}{query}")).map_err(|_| {
                (
                    Some(service),
                    Failure::BadRequest("invalid request target\n"),
                )
            })?
        }
    };
    Ok(Routed {
        service,
        websocket: route.websocket
            && req.version() == Version::HTTP_11
            && is_websocket_upgrade(req.headers()),
        hook_url: route.hook_url,
        upstream,
        path_and_query,
    })
}

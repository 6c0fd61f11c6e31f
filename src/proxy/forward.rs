//! Forwarding one request: the stages of the request path, in order, each in its own file:
//! `checks` (framing, header size, Host), `route` (path normalised, upstream chosen),
//! `rewrite` (the upstream's URI and headers), `attempt` (send, wait for an upstream coming
//! back, retry, time out), `upgrade` (WebSocket hand-over). A stage that refuses returns a
//! `Failure`, turned into a response in one place (`failure.rs`).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::access_log::AccessEntry;
use super::body::drain;
use super::conn::ConnInfo;
use super::failure::Failure;
use super::headers::strip_hop_by_hop;
use super::response_body::ResponseBody;
use super::{attempt, checks, rewrite, route, upgrade};
use super::{Body, ClientBody, Shared};

pub use super::client::Client;

/// One keep-alive client per worker: connections to upstreams are reused across requests,
/// and no lock is shared between workers.
pub fn client(connect_timeout: Duration) -> Client {
    Client::new(connect_timeout)
}

#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
    client: Client,
}

impl Forwarder {
    pub fn new(shared: Arc<Shared>, client: Client) -> Forwarder {
        Forwarder { shared, client }
    }

    /// Forwards `req` and returns the response to send, with its `AccessEntry` attached.
    pub async fn handle(&self, req: Request<ClientBody>, conn: &ConnInfo) -> Response<Body> {
        let config = &self.shared.config;
        let mut entry = AccessEntry::begin(
            &req,
            &conn.peer_value,
            config.access_log,
            &self.shared.metrics,
        );
        let mut resp = match self.forward(req, conn, &mut entry).await {
            Ok(resp) => resp,
            Err(failure) => failure.into_response(),
        };
        entry.status = resp.status().as_u16();
        resp.extensions_mut().insert(entry);
        resp
    }

    async fn forward(
        &self,
        mut req: Request<ClientBody>,
        conn: &ConnInfo,
        entry: &mut AccessEntry,
    ) -> Result<Response<Body>, Failure> {
        let config = &self.shared.config;
        let host = checks::check(&req, conn, config.max_header_size)?;
        let routed = route::route(&req, &self.shared.routes).map_err(|(service, failure)| {
            entry.upstream = service.unwrap_or("-");
            failure
        })?;
        entry.upstream = routed.service;
        if checks::declared_too_large(&req, config.max_body) {
            // Answer at once; the upstream never sees this request.
            drain(req.into_body());
            return Err(Failure::BodyTooLarge);
        }
        let client_upgrade = routed.websocket.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        rewrite::upstream_parts(&mut parts, &routed, conn, &host, &config.trusted_proxies)?;
        let mut resp =
            attempt::send(&self.client, &self.shared, parts, body, &routed, entry).await?;
        if let Some(client_upgrade) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let metrics = self.shared.metrics.clone();
                return Ok(upgrade::hand_over(
                    client_upgrade,
                    resp,
                    conn,
                    config.read_timeout,
                    metrics,
                ));
            }
        }
        strip_hop_by_hop(resp.headers_mut(), false);
        let idle = config.read_timeout;
        Ok(resp.map(|b| ResponseBody::new(b, idle).boxed()))
    }
}

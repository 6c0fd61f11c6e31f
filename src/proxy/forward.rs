//! Forwarding one request to its upstream: route, check, rewrite headers, stream the body both
//! ways, pass WebSocket upgrades through, and turn upstream failures into 502/504 pages.

use std::net::SocketAddr;
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::access_log::AccessEntry;
use super::body::{drain, BodyWatch, ClientFailure, RequestBody, ResponseBody};
use super::headers::{is_websocket_upgrade, set_forwarding, strip_hop_by_hop, ClientSide};
use super::pages::{self, gateway_error, gateway_error_because, plain};
use super::retry::{backoff, Deferred, Slot};
use super::router::Availability;
use super::{Body, Shared};

pub type Client = hyper_util::client::legacy::Client<HttpConnector, Deferred>;

static DIFY_HOOK_URL: HeaderName = HeaderName::from_static("dify-hook-url");

/// One pooled keep-alive client per worker: connections to upstreams are reused across
/// requests, and no lock is shared between workers.
pub fn client(connect_timeout: Duration) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// The client side of a connection, fixed for all its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local_port: u16,
    pub scheme: &'static str,
    /// The HTTP/1 framing guard's findings (see `framing.rs`); none on HTTP/2.
    pub framing: Option<Arc<super::framing::FramingFlags>>,
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
    pub async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let mut entry = AccessEntry {
            start: Instant::now(),
            peer: conn.peer.ip(),
            method: req.method().clone(),
            target: req.uri().path_and_query().cloned(),
            status: 0,
            upstream: "-",
            format: self.shared.config.access_log,
            http2: req.version() == Version::HTTP_2,
            body: None,
            metrics: self.shared.metrics.clone(),
        };
        let mut resp = self.forward(req, conn, &mut entry).await;
        entry.status = resp.status().as_u16();
        resp.extensions_mut().insert(entry);
        resp
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        entry: &mut AccessEntry,
    ) -> Response<Body> {
        let config = &self.shared.config;
        if conn
            .framing
            .as_ref()
            .is_some_and(|f| f.next_request_conflicts())
        {
            return plain(
                StatusCode::BAD_REQUEST,
                "conflicting framing headers (Content-Length with Transfer-Encoding, or twice) are refused\n",
            );
        }
        if super::headers::oversized(&req, config.max_header_size) {
            return plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large\n",
            );
        }
        if let Some(reason) = reject_framing(&req) {
            return plain(StatusCode::BAD_REQUEST, reason);
        }
        let Some(host) = request_host(&req) else {
            return plain(StatusCode::BAD_REQUEST, "missing or invalid Host header\n");
        };
        // Routed and forwarded on the normalised path (see `path.rs`); None: unchanged.
        let normalized = match super::path::normalize(req.uri().path()) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(p) => Some(p),
        };
        let (service, upstream, hook_url, upgrades) = {
            let table = self.shared.routes.load();
            let route = table.lookup(normalized.as_deref().unwrap_or(req.uri().path()));
            (
                route.service,
                route.upstream.clone(),
                route.hook_url,
                route.websocket,
            )
        };
        entry.upstream = service;
        let Some(upstream) = upstream else {
            return gateway_error(StatusCode::SERVICE_UNAVAILABLE, service);
        };
        if let Availability::Down(state) = &upstream.availability {
            // Stopped with nothing bringing it back: waiting would only delay the 502.
            return gateway_error_because(StatusCode::BAD_GATEWAY, service, Some(state));
        }
        if declared_length(&req).is_some_and(|len| len > config.max_body) {
            // Answer at once; the upstream never sees this request.
            drain(req.into_body());
            return too_large();
        }

        // Only the Socket.IO route upgrades, as in Dify's nginx: elsewhere `Upgrade` is a
        // hop-by-hop header like any other and is dropped.
        let websocket =
            upgrades && req.version() == Version::HTTP_11 && is_websocket_upgrade(req.headers());
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let path_and_query = match normalized {
            Some(path) => {
                let query = parts
                    .uri
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                match PathAndQuery::from_str(&format!("{path}{query}")) {
                    Ok(pq) => pq,
                    Err(_) => return plain(StatusCode::BAD_REQUEST, "invalid request target\n"),
                }
            }
            None => parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };
        let hook = hook_url.then(|| format!("{}://{}{}", conn.scheme, host, path_and_query));
        parts.uri = match Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(upstream.authority.clone())
            .path_and_query(path_and_query)
            .build()
        {
            Ok(uri) => uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "invalid request target\n"),
        };
        // Upstreams speak HTTP/1.1 whatever the client spoke (h2 requests keep HTTP_2 otherwise
        // and the HTTP/1 client refuses them).
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers, websocket);
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&host) {
                parts.headers.insert(header::HOST, v);
            }
        }
        let client = ClientSide {
            peer: conn.peer.ip(),
            scheme: conn.scheme,
            host: &host,
            port: conn.local_port,
        };
        set_forwarding(&mut parts.headers, &client, &config.trusted_proxies);
        if let Some(hook) = hook.and_then(|h| HeaderValue::from_str(&h).ok()) {
            parts.headers.insert(DIFY_HOOK_URL.clone(), hook);
        }

        // Only bodies that may carry data need the shared progress record.
        let watch = (!body.is_end_stream()).then(|| BodyWatch::new(entry.start));
        entry.body = watch.clone();
        let retryable_method = body.is_end_stream()
            && matches!(
                parts.method,
                http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
            );
        let body = RequestBody::new(body, config.max_body, config.read_timeout, watch.clone());
        let slot = Slot::new(body);
        let wait_until = Instant::now() + config.upstream_wait;
        let mut upstream = upstream;
        let mut attempt = 0;
        let result = loop {
            let mut upstream_req = Request::new(slot.body());
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = parts.uri.clone();
            *upstream_req.version_mut() = parts.version;
            *upstream_req.headers_mut() = parts.headers.clone();
            if attempt == 0 {
                *upstream_req.extensions_mut() = std::mem::take(&mut parts.extensions);
            }
            let result = {
                let mut sent = pin!(self.client.request(upstream_req));
                let mut deadline = entry.start + config.read_timeout;
                loop {
                    tokio::select! {
                        r = &mut sent => break Some(r),
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            // Time out only after read_timeout without any progress: a long
                            // upload that keeps moving is not a stuck upstream.
                            let last = watch.as_ref().map_or(entry.start, |w| w.last_progress());
                            deadline = last + config.read_timeout;
                            if deadline <= Instant::now() {
                                break None;
                            }
                        }
                    }
                }
            };
            // Refused before a byte was sent: the upstream is restarting or moving. Wait for
            // it at its current address (the route table follows containers).
            let refused = matches!(&result, Some(Err(e)) if e.is_connect()) && slot.untouched();
            // A bodiless GET/HEAD/OPTIONS cut off before its answer (the upstream stopped while
            // handling it) is safe to send again, as nginx's proxy_next_upstream does.
            let cut_off = matches!(&result, Some(Err(_))) && retryable_method && !websocket;
            if !((refused || cut_off) && Instant::now() < wait_until) {
                break result;
            }
            attempt += 1;
            let metrics = &self.shared.metrics;
            if refused {
                metrics.connect_error(service);
            }
            if attempt == 1 {
                metrics.wait(service);
                tracing::info!(service, upstream = %upstream.authority, wait = ?config.upstream_wait, "upstream not answering (restarting?): the request waits for it");
            }
            tokio::time::sleep(backoff(attempt)).await;
            metrics.retry(service);
            // Wait only while the service is known to come back: gone or stopped ends it.
            let current = self
                .shared
                .routes
                .load()
                .lookup(parts.uri.path())
                .upstream
                .clone();
            match current {
                None => return gateway_error(StatusCode::SERVICE_UNAVAILABLE, service),
                Some(now) => {
                    if let Availability::Down(state) = &now.availability {
                        return gateway_error_because(
                            StatusCode::BAD_GATEWAY,
                            service,
                            Some(state),
                        );
                    }
                    if now.authority != upstream.authority {
                        if let Ok(uri) = upstream_uri(&now, &parts.uri) {
                            parts.uri = uri;
                        }
                    }
                    upstream = now;
                }
            }
        };
        let overflowed = watch.as_ref().is_some_and(|w| w.overflowed());
        let mut resp = match result {
            _ if overflowed => {
                if let Some(rest) = watch.as_ref().and_then(|w| w.take_leftover()) {
                    drain(rest);
                }
                return too_large();
            }
            None => {
                tracing::warn!(service, upstream = %upstream.authority, timeout = ?config.read_timeout, "upstream did not answer in time");
                return gateway_error(StatusCode::GATEWAY_TIMEOUT, service);
            }
            // The client's own body was malformed or stalled: its fault, not the upstream's.
            Some(Err(_)) if watch.as_ref().is_some_and(|w| w.client_failed().is_some()) => {
                let why = watch.as_ref().and_then(|w| w.client_failed());
                tracing::debug!(service, "request body from the client failed: {why:?}");
                return match why {
                    Some(ClientFailure::Stalled) => plain(
                        StatusCode::REQUEST_TIMEOUT,
                        "408 Request Timeout: the request body stopped arriving\n",
                    ),
                    _ => plain(StatusCode::BAD_REQUEST, "malformed request body\n"),
                };
            }
            Some(Err(e)) => {
                if e.is_connect() {
                    self.shared.metrics.connect_error(service);
                }
                let what = if e.is_connect() {
                    "cannot connect to upstream"
                } else {
                    "upstream failed"
                };
                tracing::warn!(service, upstream = %upstream.authority, error = %crate::error_chain(&e), "{what}");
                return gateway_error(StatusCode::BAD_GATEWAY, service);
            }
            Some(Ok(resp)) => resp,
        };

        if let Some(client_upgrade) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                if let Some(flags) = &conn.framing {
                    flags.mark_upgraded();
                }
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let idle = config.read_timeout;
                let metrics = self.shared.metrics.clone();
                tokio::spawn(async move {
                    let (client_io, upstream_io) =
                        match tokio::try_join!(client_upgrade, upstream_upgrade) {
                            Ok(both) => both,
                            Err(e) => return tracing::debug!("websocket upgrade failed: {e}"),
                        };
                    use std::sync::atomic::Ordering::Relaxed;
                    // The client's connection now lives in the tunnel (its HTTP task ends).
                    let _open = metrics.open_connection();
                    metrics.websockets.fetch_add(1, Relaxed);
                    super::tunnel::run(TokioIo::new(client_io), TokioIo::new(upstream_io), idle)
                        .await;
                    metrics.websockets.fetch_sub(1, Relaxed);
                });
                let (parts, _) = resp.into_parts();
                return Response::from_parts(parts, pages::empty());
            }
        }

        strip_hop_by_hop(resp.headers_mut(), false);
        let idle = config.read_timeout;
        resp.map(|b| ResponseBody::new(b, idle).boxed())
    }
}

/// The request's URI pointed at `upstream`.
fn upstream_uri(upstream: &super::Upstream, uri: &Uri) -> Result<Uri, http::Error> {
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream.authority.clone())
        .path_and_query(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )
        .build()
}

/// Refuses HTTP/1.1 requests without Host, and any with two (RFC 9112 3.2: 400, as nginx
/// answers). Conflicting framing headers are caught on the raw bytes (`framing.rs`): hyper
/// drops Content-Length before we see the request.
fn reject_framing<B>(req: &Request<B>) -> Option<&'static str> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if req.version() == Version::HTTP_11 && hosts == 0 {
        return Some("HTTP/1.1 request without Host header\n");
    }
    if hosts > 1 {
        return Some("more than one Host header\n");
    }
    None
}

/// The host the client asked for: the Host header, or the HTTP/2 `:authority`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let host = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    Authority::from_str(host).ok()?;
    Some(host.to_string())
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large() -> Response<Body> {
    let mut resp = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "413 Request Entity Too Large: the body is larger than this server accepts (max_body)\n",
    );
    // The rest of the body is not read: do not leave the connection in an unknown state.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

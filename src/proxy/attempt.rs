//! Sending the request upstream, waiting for an upstream that is coming back: a connection
//! refused before a byte was sent (the container restarting or moving), or a bodiless
//! GET/HEAD/OPTIONS cut off before its answer, is tried again with backoff for at most
//! `upstream_wait`, at the service's current address (the route table follows containers),
//! and only while the service is known to come back. An answer must start within
//! `read_timeout` of the last progress of the request body.

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use http::{Request, Response};
use http_body::Body as _;

use super::access_log::AccessEntry;
use super::body::{drain, BodyWatch, RequestBody};
use super::client::{Client, PooledBody, SendError};
use super::failure::Failure;
use super::retry::{backoff, Slot};
use super::route::Routed;
use super::router::{Availability, Upstream};
use super::Shared;

type Sent = Option<Result<Response<PooledBody>, SendError>>;

pub async fn send(
    client: &Client,
    shared: &Shared,
    mut parts: Parts,
    body: super::ClientBody,
    routed: &Routed,
    entry: &mut AccessEntry,
) -> Result<Response<PooledBody>, Failure> {
    let config = &shared.config;
    let service = routed.service;
    // Only bodies that may carry data need the shared progress record.
    let watch = (!body.is_end_stream()).then(|| BodyWatch::new(entry.start));
    entry.body = watch.clone();
    let retryable_method = body.is_end_stream()
        && matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
    let slot = if body.is_end_stream() {
        Slot::empty()
    } else {
        Slot::new(RequestBody::new(
            body,
            config.max_body,
            config.read_timeout,
            watch.clone(),
        ))
    };
    let wait_until = Instant::now() + config.upstream_wait;
    let mut upstream = routed.upstream.clone();
    let mut attempt = 0;
    let result = loop {
        // With no waiting allowed there is no second attempt: the head moves, uncopied.
        let again = !config.upstream_wait.is_zero();
        let req = request(&slot, &mut parts, attempt == 0, again);
        let result = answer_within(
            client,
            &upstream.authority,
            req,
            entry.start,
            config.read_timeout,
            watch.as_ref(),
        )
        .await;
        let refused = matches!(&result, Some(Err(e)) if e.is_connect()) && slot.untouched();
        let cut_off = matches!(&result, Some(Err(_))) && retryable_method && !routed.websocket;
        if !((refused || cut_off) && Instant::now() < wait_until) {
            break result;
        }
        attempt += 1;
        if refused {
            shared.metrics.connect_error(service);
        }
        if attempt == 1 {
            shared.metrics.wait(service);
            tracing::info!(service, upstream = %upstream.authority, wait = ?config.upstream_wait, "upstream not answering (restarting?): the request waits for it");
        }
        tokio::time::sleep(backoff(attempt)).await;
        shared.metrics.retry(service);
        upstream = current(shared, &parts, service)?;
    };
    outcome(result, watch.as_deref(), shared, service, &upstream)
}

/// One attempt's request: the same head each time (kept for another attempt when `again`),
/// the body from the slot (the first attempt also carries the client request's extensions).
fn request(
    slot: &Slot,
    parts: &mut Parts,
    first: bool,
    again: bool,
) -> Request<super::retry::Deferred> {
    let mut req = Request::new(slot.body());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = if again {
        parts.headers.clone()
    } else {
        std::mem::take(&mut parts.headers)
    };
    if first {
        *req.extensions_mut() = std::mem::take(&mut parts.extensions);
    }
    req
}

/// The upstream's answer, or `None` after `read_timeout` without progress (a long upload
/// that keeps moving is not a stuck upstream).
async fn answer_within(
    client: &Client,
    authority: &http::uri::Authority,
    req: Request<super::retry::Deferred>,
    start: Instant,
    read_timeout: std::time::Duration,
    watch: Option<&Arc<BodyWatch>>,
) -> Sent {
    let mut sent = pin!(client.request(authority, req));
    let mut deadline = start + read_timeout;
    loop {
        tokio::select! {
            r = &mut sent => return Some(r),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let last = watch.map_or(start, |w| w.last_progress());
                deadline = last + read_timeout;
                if deadline <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// Where the service is now; waiting ends when it is gone or stopped for good.
fn current(
    shared: &Shared,
    parts: &Parts,
    service: &'static str,
) -> Result<Arc<Upstream>, Failure> {
    let now = shared
        .routes
        .load()
        .lookup(parts.uri.path())
        .upstream
        .clone();
    let Some(now) = now else {
        return Err(Failure::NoUpstream(service));
    };
    if let Availability::Down(state) = &now.availability {
        return Err(Failure::Down(service, state.clone()));
    }
    Ok(now)
}

/// The last attempt's result as an answer or a failure, the client's fault told apart.
fn outcome(
    result: Sent,
    watch: Option<&BodyWatch>,
    shared: &Shared,
    service: &'static str,
    upstream: &Upstream,
) -> Result<Response<PooledBody>, Failure> {
    if watch.is_some_and(|w| w.overflowed()) {
        if let Some(rest) = watch.and_then(|w| w.take_leftover()) {
            drain(rest);
        }
        return Err(Failure::BodyTooLarge);
    }
    match result {
        Some(Ok(resp)) => Ok(resp),
        None => {
            tracing::warn!(service, upstream = %upstream.authority, timeout = ?shared.config.read_timeout, "upstream did not answer in time");
            Err(Failure::Timeout(service))
        }
        // The client's own body was malformed or stalled: its fault, not the upstream's.
        Some(Err(_)) if watch.is_some_and(|w| w.client_failed().is_some()) => {
            let why = watch.and_then(|w| w.client_failed());
            tracing::debug!(service, "request body from the client failed: {why:?}");
            Err(Failure::ClientBody(why))
        }
        Some(Err(e)) => {
            let what = if e.is_connect() {
                shared.metrics.connect_error(service);
                "cannot connect to upstream"
            } else {
                "upstream failed"
            };
            tracing::warn!(service, upstream = %upstream.authority, error = %crate::error_chain(&e), "{what}");
            Err(Failure::Upstream(service))
        }
    }
}

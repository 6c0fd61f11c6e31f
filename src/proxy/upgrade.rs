//! A WebSocket upgrade the upstream accepted (101): both sides' connections handed to a
//! byte tunnel (`tunnel.rs`) that closes after `read_timeout` of silence.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::conn::ConnInfo;
use super::{pages, Body};
use crate::metrics::Metrics;

pub fn hand_over(
    client_upgrade: OnUpgrade,
    mut resp: http::Response<super::client::PooledBody>,
    conn: &ConnInfo,
    idle: std::time::Duration,
    metrics: Arc<Metrics>,
) -> http::Response<Body> {
    if let Some(flags) = &conn.framing {
        flags.mark_upgraded();
    }
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (client_io, upstream_io) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok(both) => both,
            Err(e) => return tracing::debug!("websocket upgrade failed: {e}"),
        };
        // The client's connection now lives in the tunnel (its HTTP task ends).
        let _open = metrics.open_connection();
        metrics.websockets.fetch_add(1, Relaxed);
        super::tunnel::run(TokioIo::new(client_io), TokioIo::new(upstream_io), idle).await;
        metrics.websockets.fetch_sub(1, Relaxed);
    });
    let (parts, _) = resp.into_parts();
    http::Response::from_parts(parts, pages::empty())
}

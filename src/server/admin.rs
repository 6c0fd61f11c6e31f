//! The admin listener, off the public ports (default `127.0.0.1:2019`, `[admin] listen`):
//! `/metrics` (Prometheus text format), `/healthz` (the process serves), `/readyz` (every
//! service healthy and a real certificate served) and `/status` (the overview as JSON).
//! Nothing here changes anything: it is safe to expose to a monitoring network.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use super::live::{CertView, Live, ServiceView};
use crate::metrics::{header as help, label};

/// The admin routes, over the live view.
pub fn router(live: Arc<Live>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(live)
}

/// Connections held at once in all, and from one client address: a local user must not be
/// able to exhaust difyctl's file descriptors through it (the proxy has its own, larger,
/// limits).
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_CLIENT: usize = 32;
/// A connection must send its request head within this, also between keep-alive requests.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `listener` until `stop`, with the limits above.
pub async fn run(
    listener: tokio::net::TcpListener,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) {
    let app = router(live);
    let held: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Default::default();
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut stop) => return,
        };
        let ip = peer.ip();
        let admitted = {
            let mut map = held.lock().unwrap_or_else(|p| p.into_inner());
            let total: usize = map.values().sum();
            let mine = map.entry(ip).or_default();
            let ok = total < MAX_CONNECTIONS && *mine < MAX_PER_CLIENT;
            if ok {
                *mine += 1;
            }
            ok
        };
        if !admitted {
            if last_warning.is_none_or(|t| t.elapsed().as_secs() >= 10) {
                tracing::warn!(client = %ip, "admin listener: too many connections (at most {MAX_PER_CLIENT} per client, {MAX_CONNECTIONS} in all): closed");
                last_warning = Some(std::time::Instant::now());
            }
            continue;
        }
        let (app, held, stop) = (app.clone(), held.clone(), stop.clone());
        tokio::spawn(async move {
            serve_one(tcp, app, stop).await;
            let mut map = held.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        });
    }
}

async fn serve_one(tcp: tokio::net::TcpStream, app: Router, mut stop: watch::Receiver<bool>) {
    let io = hyper_util::rt::TokioIo::new(tcp);
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = crate::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        }
    }
}

/// Binds the admin address; a busy default is a warning (serving Dify matters more), a busy
/// address the user asked for is an error.
pub async fn bind(
    addr: SocketAddr,
    explicit: bool,
) -> Result<Option<tokio::net::TcpListener>, super::ServerError> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "the admin listener answers /status and /metrics to anyone who reaches {addr}, without authentication: keep it on a monitoring network (or on 127.0.0.1)");
            }
            Ok(Some(l))
        }
        Err(error) if explicit => Err(super::ServerError::Admin { addr, error }),
        Err(e) => {
            tracing::warn!(%addr, "no admin listener (/metrics, /readyz): cannot listen: {e}; set [admin] listen to another address, or `off`");
            Ok(None)
        }
    }
}

async fn readyz(State(live): State<Arc<Live>>) -> Response {
    let why = live.not_ready().await;
    if why.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut body = String::from("not ready:\n");
    for w in why {
        let _ = writeln!(body, "- {w}");
    }
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn status(State(live): State<Arc<Live>>) -> Response {
    // serde_json renders these plain structs without failing.
    let body = serde_json::to_string_pretty(&live.overview().await).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(live): State<Arc<Live>>) -> Response {
    let mut out = String::with_capacity(16 << 10);
    live.metrics.render(&mut out);
    // Read once: the certificate store and Docker serve every series below.
    let certs = live.certificates();
    let services = live.services().await;
    render_certificates(&certs, &mut out);
    if let Ok(services) = &services {
        render_services(services, &mut out);
    }
    let ready = live.reasons(&certs, &services).is_empty();
    help(
        &mut out,
        "difyctl_ready",
        "1 when every service is healthy and a real certificate is served.",
        "gauge",
    );
    let _ = writeln!(out, "difyctl_ready {}", u8::from(ready));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Reads one timestamp of a certificate.
type CertField = fn(&CertView) -> Option<u64>;

fn render_certificates(certs: &[CertView], out: &mut String) {
    let series: [(&str, &str, CertField); 3] = [
        (
            "difyctl_certificate_expiry_timestamp_seconds",
            "When the served certificate expires (its not_after).",
            |c| Some(c.not_after),
        ),
        (
            "difyctl_certificate_renewal_last_attempt_timestamp_seconds",
            "When the certificate's renewal was last tried.",
            |c| c.last_attempt,
        ),
        (
            "difyctl_certificate_renewal_last_success_timestamp_seconds",
            "When the certificate was last obtained or renewed.",
            |c| c.last_success,
        ),
    ];
    for (name, text, value) in series {
        help(out, name, text, "gauge");
        for c in certs {
            if let Some(v) = value(c) {
                let _ = writeln!(
                    out,
                    "{name}{{name=\"{}\",source=\"{}\"}} {v}",
                    label(&c.name),
                    c.source
                );
            }
        }
    }
    let name = "difyctl_certificate_renewal_last_result";
    help(
        out,
        name,
        "1 when the last renewal attempt succeeded, 0 when it failed.",
        "gauge",
    );
    for c in certs.iter().filter(|c| c.last_attempt.is_some()) {
        let _ = writeln!(
            out,
            "{name}{{name=\"{}\"}} {}",
            label(&c.name),
            u8::from(c.last_error.is_none())
        );
    }
}

fn render_services(services: &[ServiceView], out: &mut String) {
    let name = "difyctl_service_state";
    help(
        out,
        name,
        "The state of each service's container (1 for the state it is in).",
        "gauge",
    );
    for s in services {
        let _ = writeln!(
            out,
            "{name}{{service=\"{}\",state=\"{}\"}} 1",
            label(&s.service),
            label(&s.state)
        );
    }
    let name = "difyctl_service_healthy";
    help(out, name, "1 when the service's healthcheck passes, 0 when it fails or is starting (services with one).", "gauge");
    for s in services.iter().filter(|s| !s.health.is_empty()) {
        let _ = writeln!(
            out,
            "{name}{{service=\"{}\"}} {}",
            label(&s.service),
            u8::from(s.health == "healthy")
        );
    }
    let name = "difyctl_service_starts_total";
    help(out, name, "Container starts seen in Docker's events since difyctl started (restarts, recreations, crashes brought back).", "counter");
    for s in services {
        let _ = writeln!(
            out,
            "{name}{{service=\"{}\"}} {}",
            label(&s.service),
            s.starts
        );
    }
}

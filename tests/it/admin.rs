//! The admin listener: `/metrics` moves as requests, failures, streams and tunnels happen;
//! `/healthz`, `/readyz` and `/status` answer. Real upstreams, a real proxy, plain TCP clients.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{dead_address, dify_upstreams, TestProxy};

/// One GET on the admin listener: status and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("admin answers")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The value of one series (`name{labels}` exactly as rendered); 0 when absent.
pub fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_move_with_requests_failures_streams_and_tunnels() {
    let mut ups = dify_upstreams().await;
    let dead = dead_address().await;
    ups.plugin = Some(difyctl::proxy::Upstream::parse("plugin_daemon", &dead.to_string()).unwrap());
    let proxy = TestProxy::with_admin(&ups, |c| c.upstream_wait = Duration::ZERO).await;
    let admin = proxy.admin.unwrap();
    let (status, before) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let api_h1 = r#"difyctl_http_requests_total{service="api",code="2xx",proto="HTTP/1.1"}"#;
    let web_h2 = r#"difyctl_http_requests_total{service="web",code="2xx",proto="HTTP/2"}"#;
    let plugin_5xx =
        r#"difyctl_http_requests_total{service="plugin_daemon",code="5xx",proto="HTTP/1.1"}"#;
    assert_eq!(value(&before, api_h1), 0.0);

    let mut h1 = proxy.h1().await;
    for _ in 0..3 {
        let req = http::Request::post("/console/api/upload")
            .header("host", "localhost")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"0123456789",
            )))
            .unwrap();
        assert_eq!(h1.send_request(req).await.unwrap().status(), 200);
    }
    let req = http::Request::get("/e/hook").header("host", "localhost");
    let resp = h1
        .send_request(req.body(Default::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502, "nothing listens for the plugin daemon");
    let mut h2 = proxy.h2().await;
    let req = http::Request::get("https://localhost/apps")
        .body(Default::default())
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 200);

    // An SSE stream and a WebSocket tunnel open while scraped.
    let mut sse = proxy.tls(&[b"http/1.1"]).await;
    sse.write_all(b"GET /v1/sse?n=3&gap_ms=1500 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let _ = sse.read(&mut first).await.unwrap();
    let io = proxy.tls(&[b"http/1.1"]).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/socket.io/", io)
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert!(ws.next().await.unwrap().is_ok());
    // A handshake that is not TLS at all.
    let mut junk = tokio::net::TcpStream::connect(proxy.https).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let _ = junk.read(&mut first).await;

    // The handshake failure is counted just after the alert reaches the client.
    let mut during = String::new();
    for _ in 0..50 {
        during = admin_get(admin, "/metrics").await.1;
        if tls_failures(&during) > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value(&during, "difyctl_sse_streams"), 1.0, "{during}");
    assert_eq!(value(&during, "difyctl_websocket_tunnels"), 1.0);
    assert!(
        value(&during, "difyctl_open_connections") >= 4.0,
        "h1, h2, sse, ws open: {during}"
    );
    assert_eq!(value(&during, api_h1), 3.0);
    assert_eq!(value(&during, web_h2), 1.0);
    assert_eq!(value(&during, plugin_5xx), 1.0);
    assert!(
        value(
            &during,
            r#"difyctl_upstream_connect_errors_total{service="plugin_daemon"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(
            &during,
            r#"difyctl_http_request_bytes_total{service="api"}"#
        ),
        30.0
    );
    assert!(
        value(
            &during,
            r#"difyctl_http_response_bytes_total{service="api"}"#
        ) > 0.0
    );
    assert_eq!(
        value(
            &during,
            r#"difyctl_http_request_duration_seconds_count{service="api"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &during,
            r#"difyctl_http_request_duration_seconds_bucket{service="api",le="+Inf"}"#
        ),
        3.0
    );
    assert_eq!(tls_failures(&during), 1.0, "{during}");
    assert!(
        during.contains(
            r#"difyctl_certificate_expiry_timestamp_seconds{name="default",source="self-signed"}"#
        ),
        "{during}"
    );

    dashboard_names_only_series_that_exist(&during);

    drop(ws);
    drop(sse);
    let mut closed = String::new();
    for _ in 0..50 {
        closed = admin_get(admin, "/metrics").await.1;
        if value(&closed, "difyctl_sse_streams") == 0.0
            && value(&closed, "difyctl_websocket_tunnels") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        value(&closed, "difyctl_sse_streams"),
        0.0,
        "stream closed: {closed}"
    );
    assert_eq!(
        value(&closed, "difyctl_websocket_tunnels"),
        0.0,
        "tunnel closed"
    );

    assert_eq!(
        admin_get(admin, "/healthz").await,
        (200, "ok\n".to_string())
    );
    assert_eq!(
        admin_get(admin, "/readyz").await.0,
        200,
        "no project, a certificate served"
    );
    let (status, body) = admin_get(admin, "/status").await;
    assert_eq!(status, 200);
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        overview["last_minute"]["requests"].as_u64().unwrap() >= 5,
        "{overview}"
    );
    assert_eq!(overview["last_minute"]["errors_5xx"], 1);
    assert_eq!(overview["https"], proxy.https.to_string());
    proxy.shutdown().await;
}

/// The Grafana dashboard in assets/ queries series difyctl really exports.
fn dashboard_names_only_series_that_exist(metrics: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/grafana-dashboard.json");
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("difyctl_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name.trim_end_matches("_bucket").to_string());
            }
        }
    }
    assert!(names.len() > 10, "{names:?}");
    for name in names {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "the dashboard asks for {name}, which /metrics does not export"
        );
    }
}

/// Handshake failures of every reason.
fn tls_failures(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("difyctl_tls_handshake_failures_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// An admin address the user set that another program holds fails the start, naming it; the
/// default one taken only costs the admin listener.
#[tokio::test]
async fn a_busy_admin_address_that_was_asked_for_fails_the_start() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap();
    let mut config =
        difyctl::config::Config::merge(&Default::default(), Default::default(), None).unwrap();
    config.proxy.http = "127.0.0.1:0".parse().unwrap();
    config.proxy.https = "127.0.0.1:0".parse().unwrap();
    config.proxy.workers = 1;
    config.admin.listen = Some(busy);
    config.admin.explicit = true;
    let routes = difyctl::proxy::Routes::new(difyctl::proxy::RouteTable::dify(&Default::default()));
    let (key, _) = crate::support::certificate();
    let started = difyctl::server::Server::new(config.clone(), routes.clone())
        .without_control()
        .with_certificate(key.clone())
        .start()
        .await;
    let err = started.err().expect("refused");
    let text = difyctl::error_chain(&err);
    assert!(
        text.contains(&format!(
            "cannot listen on {busy} (admin listener, [admin] listen)"
        )),
        "{text}"
    );
    assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
    config.admin.explicit = false;
    let running = difyctl::server::Server::new(config, routes)
        .without_control()
        .with_certificate(key)
        .start()
        .await
        .expect("serves without its admin listener");
    assert_eq!(running.admin, None);
    running.stop().await;
}

/// Regression (rough edges #4): the admin listener had no per-client cap or idle timeout: a
/// local user held thousands of idle connections and exhausted difyctl's file descriptors. One
/// client gets 32 at most (more are closed at once), a silent one is closed after the header
/// timeout, and others are still answered.
#[tokio::test]
async fn the_admin_listener_caps_each_client_and_closes_silent_connections() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::with_admin(&ups, |_| {}).await;
    let admin = proxy.admin.unwrap();
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(admin).await.unwrap();
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the 33rd connection is closed at once"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(admin_get(admin, "/healthz").await.0, 200);
    // Silent: closed within the header timeout (10 s).
    let mut silent = tokio::net::TcpStream::connect(admin).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection is closed"
    );
}

//! The reverse proxy against real upstream servers, over real TLS, on port 0.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;
use crate::testserver::{fnv1a, FNV_OFFSET};

#[tokio::test]
async fn every_dify_route_reaches_its_upstream() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    let cases = [
        ("/console/api/setup", "api"),
        ("/api/passport", "api"),
        ("/v1/chat-messages", "api"),
        ("/files/abc/file-preview", "api"),
        ("/mcp/server/x/mcp", "api"),
        ("/triggers/webhook/1", "api"),
        ("/openapi/v1", "api"),
        ("/e/hook123/x", "plugin_daemon"),
        ("/socket.io/?EIO=4&transport=polling", "api_websocket"),
        ("/explore/apps", "web"),
        ("/apps", "web"),
        ("/", "web"),
        ("/console/signin", "web"),
    ];
    for (path, service) in cases {
        let resp = h1.send_request(get(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let json = body_json(resp).await;
        assert_eq!(json["service"], service, "{path}");
        let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(json["path"], want_path, "path kept");
        assert_eq!(json["query"], want_query, "query kept");
    }
    let json = body_json(h1.send_request(get("/e/hook123/x?a=1")).await.unwrap()).await;
    assert_eq!(
        json["headers"]["dify-hook-url"],
        "https://localhost/e/hook123/x?a=1"
    );
    let json = body_json(h1.send_request(get("/v1/x")).await.unwrap()).await;
    assert!(
        json["headers"].get("dify-hook-url").is_none(),
        "only /e/ gets the hook header"
    );
}

#[tokio::test]
async fn socket_io_falls_back_to_api_and_missing_plugin_gives_503() {
    let mut ups = dify_upstreams().await;
    ups.socket = None;
    ups.plugin = None;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    let json = body_json(h1.send_request(get("/socket.io/?EIO=4")).await.unwrap()).await;
    assert_eq!(json["service"], "api");
    let resp = h1.send_request(get("/e/x")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let page = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&page).contains("plugin_daemon"),
        "the page names the service"
    );
}

#[tokio::test]
async fn headers_the_upstream_sees() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    let req = Request::get("/v1/info")
        .header("host", "dify.example.com")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-forwarded-proto", "http")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "hop")
        .header("keep-alive", "timeout=5")
        .header("authorization", "Bearer app-123")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let json = body_json(h1.send_request(req).await.unwrap()).await;
    let h = &json["headers"];
    assert_eq!(h["host"], "dify.example.com", "Host preserved");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "spoofed X-Forwarded-For dropped"
    );
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "dify.example.com");
    assert_eq!(h["x-forwarded-port"], proxy.https.port().to_string());
    assert_eq!(h["authorization"], "Bearer app-123");
    assert!(
        h.get("x-private").is_none(),
        "header named by Connection removed"
    );
    assert!(h.get("keep-alive").is_none());

    // Over HTTP/2 the host comes from :authority.
    let mut h2 = proxy.h2().await;
    let json = body_json(h2.send_request(get_h2("/v1/info")).await.unwrap()).await;
    assert_eq!(json["headers"]["host"], "localhost");
    assert_eq!(json["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]
    })
    .await;
    let mut h1 = proxy.h1().await;
    let req = Request::get("/v1/info")
        .header("host", "localhost")
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let json = body_json(h1.send_request(req).await.unwrap()).await;
    assert_eq!(
        json["headers"]["x-forwarded-for"],
        "198.51.100.7, 127.0.0.1"
    );
    assert_eq!(json["headers"]["x-real-ip"], "198.51.100.7");
}

/// SSE events sent 200 ms apart must reach the client one by one, not in a burst: each event
/// must arrive before the upstream sent the next one (the test server stamps every event with
/// its send time, so a busy test machine does not make this flaky).
async fn assert_events_arrive_as_sent(mut body: hyper::body::Incoming, n: usize) {
    let now_micros = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    };
    // (sent, arrived) per event, in microseconds since the epoch.
    let mut events: Vec<(u64, u64)> = Vec::new();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            let arrived = now_micros();
            text.push_str(std::str::from_utf8(data).unwrap());
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                let json: serde_json::Value = serde_json::from_str(data).unwrap();
                events.push((json["t"].as_u64().unwrap(), arrived));
            }
        }
    }
    assert_eq!(events.len(), n, "all events arrived");
    for (i, pair) in events.windows(2).enumerate() {
        let ((_, arrived), (next_sent, _)) = (pair[0], pair[1]);
        assert!(
            arrived < next_sent,
            "event {i} arrived only after event {} was sent (a burst): {events:?}",
            i + 1
        );
    }
}

#[tokio::test]
async fn sse_events_stream_through_tls_over_http1() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    let mut req = get("/sse?n=5&gap_ms=200");
    req.headers_mut()
        .insert("accept-encoding", "gzip".parse().unwrap());
    let resp = h1.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(
        resp.headers().get("content-encoding").is_none(),
        "SSE is never compressed"
    );
    assert_events_arrive_as_sent(resp.into_body(), 5).await;
}

#[tokio::test]
async fn sse_events_stream_through_tls_over_http2() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h2 = proxy.h2().await;
    let mut req = get_h2("/v1/sse?n=5&gap_ms=200");
    *req.uri_mut() = "https://localhost/sse?n=5&gap_ms=200".parse().unwrap();
    req.headers_mut()
        .insert("accept-encoding", "gzip, br".parse().unwrap());
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    assert_events_arrive_as_sent(resp.into_body(), 5).await;
}

#[tokio::test]
async fn websocket_echo_through_tls() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let io = proxy.tls(&[b"http/1.1"]).await;
    let (mut ws, resp) =
        tokio_tungstenite::client_async("wss://localhost/socket.io/?EIO=4&transport=websocket", io)
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        let msg = format!("42[\"ping\",{i}]");
        ws.send(Message::text(msg.clone())).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), msg);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_data().as_ref(), &[0u8, 1, 2, 255]);
    ws.close(None).await.unwrap();
}

/// Streams `total` bytes of a deterministic pattern as the request body; returns its FNV hash.
async fn write_pattern<W: tokio::io::AsyncWrite + Unpin>(
    io: &mut W,
    total: usize,
    chunked: bool,
) -> std::io::Result<u64> {
    let block: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    let (mut sent, mut hash) = (0usize, FNV_OFFSET);
    while sent < total {
        let n = block.len().min(total - sent);
        hash = fnv1a(hash, &block[..n]);
        if chunked {
            io.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        }
        io.write_all(&block[..n]).await?;
        if chunked {
            io.write_all(b"\r\n").await?;
        }
        sent += n;
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    io.flush().await?;
    Ok(hash)
}

#[tokio::test]
async fn upload_of_100_mb_reaches_the_upstream_intact() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let total = 100 << 20;
    let mut io = proxy.tls(&[b"http/1.1"]).await;
    let head = format!("POST /console/api/files/upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: {total}\r\n\r\n");
    io.write_all(head.as_bytes()).await.unwrap();
    let hash = write_pattern(&mut io, total, false).await.unwrap();
    let resp = read_response(&mut io).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.head);
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(json["bytes"], total as u64);
    assert_eq!(json["fnv"], hash, "every byte arrived unchanged");
}

#[tokio::test]
async fn chunked_upload_streams_to_the_upstream() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let total = 3 << 20;
    let mut io = proxy.tls(&[b"http/1.1"]).await;
    io.write_all(
        b"POST /v1/upload HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let hash = write_pattern(&mut io, total, true).await.unwrap();
    let resp = read_response(&mut io).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.head);
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(json["bytes"], total as u64);
    assert_eq!(json["fnv"], hash);
}

#[tokio::test]
async fn declared_body_over_the_limit_gets_413_before_the_upstream_sees_it() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| c.max_body = 1 << 20).await;
    let mut io = proxy.tls(&[b"http/1.1"]).await;
    let total = 2 << 20;
    let head =
        format!("POST /v1/upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: {total}\r\n\r\n");
    io.write_all(head.as_bytes()).await.unwrap();
    // The 413 comes before any body byte is sent.
    let resp = tokio::time::timeout(Duration::from_secs(5), read_response(&mut io))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 413, "{}", resp.head);
}

#[tokio::test]
async fn chunked_body_overflowing_midway_gets_413() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| c.max_body = 1 << 20).await;
    let io = proxy.tls(&[b"http/1.1"]).await;
    let (mut rd, mut wr) = tokio::io::split(io);
    let writer = tokio::spawn(async move {
        wr.write_all(
            b"POST /v1/upload HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await?;
        write_pattern(&mut wr, 4 << 20, true).await
    });
    let resp = tokio::time::timeout(Duration::from_secs(10), read_response(&mut rd))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 413, "{}", resp.head);
    let _ = writer.await;
}

#[tokio::test]
async fn unreachable_upstream_gives_502_page() {
    let mut ups = dify_upstreams().await;
    ups.api =
        Some(difyctl::proxy::Upstream::parse("api", &dead_address().await.to_string()).unwrap());
    let proxy = TestProxy::start(&ups, |c| c.upstream_wait = Duration::from_millis(300)).await;
    let mut h1 = proxy.h1().await;
    let asked = std::time::Instant::now();
    let resp = h1.send_request(get("/console/api/setup")).await.unwrap();
    assert!(
        asked.elapsed() >= Duration::from_millis(300),
        "gave up before upstream_wait"
    );
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let page = resp.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("<code>api</code>") && page.contains("difyctl logs api"),
        "{page}"
    );
    // The web upstream is unaffected.
    assert_eq!(h1.send_request(get("/")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn slow_upstream_gives_504_after_read_timeout() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| c.read_timeout = Duration::from_millis(300)).await;
    let mut h1 = proxy.h1().await;
    let resp = h1.send_request(get("/slow?ms=3000")).await.unwrap();
    assert_eq!(resp.status(), 504);
    // A response inside the timeout passes.
    let resp = h1.send_request(get("/slow?ms=50")).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn port_80_redirects_to_https_and_answers_challenges() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut tcp = TcpStream::connect(proxy.http).await.unwrap();
    tcp.write_all(b"GET /console/apps?tab=all HTTP/1.1\r\nhost: dify.example.com\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut tcp).await.unwrap();
    assert_eq!(resp.status, 301);
    let location = format!(
        "location: https://dify.example.com:{}/console/apps?tab=all",
        proxy.https.port()
    );
    assert!(
        resp.head.to_ascii_lowercase().contains(&location),
        "{}",
        resp.head
    );

    proxy
        .challenges
        .insert("tok-123".into(), "tok-123.thumbprint".into());
    tcp.write_all(
        b"GET /.well-known/acme-challenge/tok-123 HTTP/1.1\r\nhost: dify.example.com\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = read_response(&mut tcp).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"tok-123.thumbprint");
    proxy.challenges.remove("tok-123");
    tcp.write_all(
        b"GET /.well-known/acme-challenge/tok-123 HTTP/1.1\r\nhost: dify.example.com\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(read_response(&mut tcp).await.unwrap().status, 404);
}

#[tokio::test]
async fn hsts_on_https_and_can_be_turned_off() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let resp = proxy.h1().await.send_request(get("/")).await.unwrap();
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let proxy = TestProxy::start(&ups, |c| c.hsts = false).await;
    let resp = proxy.h1().await.send_request(get("/")).await.unwrap();
    assert!(resp.headers().get("strict-transport-security").is_none());
}

#[tokio::test]
async fn json_is_gzipped_when_the_client_accepts_it() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    let mut req = get("/console/api/apps");
    req.headers_mut()
        .insert("accept-encoding", "gzip".parse().unwrap());
    let resp = h1.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let zipped = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&zipped[..2], &[0x1f, 0x8b], "gzip magic");
    // Without Accept-Encoding the body is plain JSON.
    let resp = h1.send_request(get("/console/api/apps")).await.unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    body_json(resp).await;
}

#[tokio::test]
async fn zstd_and_brotli_are_negotiated_and_decode_to_json() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    // The echo upstream answers the request it saw: the same JSON but for the header sent.
    let plain = |accept: &str| json!({"path": "/console/api/apps", "accept": accept});
    let seen = |body: &[u8]| {
        let got: serde_json::Value = serde_json::from_slice(body).expect("JSON once decoded");
        json!({"path": got["path"], "accept": got["headers"]["accept-encoding"]})
    };
    let mut fetch = |accept: &'static str| {
        let mut req = get("/console/api/apps");
        req.headers_mut()
            .insert("accept-encoding", accept.parse().unwrap());
        h1.send_request(req)
    };
    // What browsers send today: every coding at the same weight; zstd wins the tie.
    let resp = fetch("gzip, deflate, br, zstd").await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "zstd");
    let zipped = resp.into_body().collect().await.unwrap().to_bytes();
    let json = zstd::stream::decode_all(&zipped[..]).expect("a real zstd stream");
    assert_eq!(seen(&json), plain("gzip, deflate, br, zstd"));
    // The client's weights are honoured over the server's preference.
    let resp = fetch("zstd;q=0.5, br;q=1.0").await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "br");
    let zipped = resp.into_body().collect().await.unwrap().to_bytes();
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut brotli_decompressor::Decompressor::new(&zipped[..], 4096),
        &mut json,
    )
    .expect("a real brotli stream");
    assert_eq!(seen(&json), plain("zstd;q=0.5, br;q=1.0"));
    let resp = fetch("zstd;q=0, br;q=0.1, gzip").await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn certificate_swap_applies_to_new_handshakes_and_spares_open_connections() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut before = proxy.h1().await;
    assert_eq!(before.send_request(get("/")).await.unwrap().status(), 200);

    let (new_key, new_cert) = certificate();
    proxy.resolver.set_default(new_key);

    let io = tls_connect(proxy.https, std::slice::from_ref(&new_cert), &[b"http/1.1"])
        .await
        .unwrap();
    let served = io.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(
        served, new_cert,
        "the next handshake gets the new certificate"
    );
    assert!(
        tls_connect(
            proxy.https,
            std::slice::from_ref(&proxy.cert),
            &[b"http/1.1"]
        )
        .await
        .is_err(),
        "the old certificate is no longer served"
    );
    // The connection opened before the swap keeps working.
    let resp = before.send_request(get("/v1/still-here")).await.unwrap();
    assert_eq!(body_json(resp).await["path"], "/v1/still-here");
}

#[tokio::test]
async fn route_table_can_be_replaced_while_running() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut h1 = proxy.h1().await;
    assert_eq!(
        body_json(h1.send_request(get("/v1/x")).await.unwrap()).await["service"],
        "api"
    );
    let mut moved = ups.clone();
    let new_api = upstream("api-recreated").await;
    moved.api = Some(difyctl::proxy::Upstream::parse("api", &new_api.to_string()).unwrap());
    proxy
        .routes
        .replace(difyctl::proxy::RouteTable::dify(&moved));
    assert_eq!(
        body_json(h1.send_request(get("/v1/x")).await.unwrap()).await["service"],
        "api-recreated"
    );
}

#[tokio::test]
async fn smuggling_attempts_get_400() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let cl_te = b"POST /v1/x HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(raw_https(&proxy, cl_te).await.status, 400, "CL + TE");
    let two_cl = b"POST /v1/x HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\nabcde";
    assert_eq!(
        raw_https(&proxy, two_cl).await.status,
        400,
        "conflicting Content-Length"
    );
    let te_gzip = b"POST /v1/x HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: gzip\r\n\r\nabc";
    assert_eq!(
        raw_https(&proxy, te_gzip).await.status,
        400,
        "Transfer-Encoding without chunked last"
    );
    let no_host = b"GET / HTTP/1.1\r\n\r\n";
    assert_eq!(
        raw_https(&proxy, no_host).await.status,
        400,
        "HTTP/1.1 without Host"
    );
    let garbage = b"GET / HTTP/1.1\r\nhost localhost\r\n\r\n";
    assert_eq!(
        raw_https(&proxy, garbage).await.status,
        400,
        "malformed header line"
    );
}

/// Regression (hardening #6): two Host headers were forwarded (RFC 9112: 400), and routing on
/// the raw path sent `/e/../console/api/x` to the plugin daemon with Dify-Hook-Url and
/// `/%2e%2e/console/api` to web.
#[tokio::test]
async fn two_host_headers_and_dot_segment_paths_are_not_misrouted() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let two_hosts = b"GET /v1/x HTTP/1.1\r\nhost: localhost\r\nhost: evil.example\r\n\r\n";
    assert_eq!(raw_https(&proxy, two_hosts).await.status, 400);
    let mut h1 = proxy.h1().await;
    for (raw, service, forwarded) in [
        ("/e/../console/api/x", "api", "/console/api/x"),
        ("/%2e%2e/console/api/apps", "api", "/console/api/apps"),
        ("//v1//chat-messages", "api", "/v1/chat-messages"),
        ("/console/api/../../e/h", "plugin_daemon", "/e/h"),
        // Regression (rough edges #12): Dify's nginx decodes %2F before it matches a location.
        ("/console%2fapi/x", "api", "/console/api/x"),
    ] {
        let json = body_json(h1.send_request(get(raw)).await.unwrap()).await;
        assert_eq!(json["service"], service, "{raw}");
        assert_eq!(json["path"], forwarded, "{raw} is forwarded as routed");
        if service == "api" {
            assert!(json["headers"].get("dify-hook-url").is_none(), "{raw}");
        }
    }
    let json = body_json(h1.send_request(get("/e/../v1/x?q=%2e")).await.unwrap()).await;
    assert_eq!(json["query"], "q=%2e", "the query is kept as sent");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let big = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    assert_eq!(raw_https(&proxy, big.as_bytes()).await.status, 431);
    // HTTP/2 too (h2's own limit would refuse the stream with no answer at all).
    let mut h2 = proxy.h2().await;
    let mut req = get("/");
    req.headers_mut()
        .insert("x-big", "a".repeat(100 * 1024).parse().unwrap());
    assert_eq!(h2.send_request(req).await.unwrap().status(), 431);
    let resp = h2.send_request(get("/")).await.unwrap();
    assert_eq!(resp.status(), 200, "the connection stays usable");
    // The limit is configurable, on both protocols alike.
    let proxy = TestProxy::start(&ups, |c| c.max_header_size = 4096).await;
    let mut req = get("/");
    req.headers_mut()
        .insert("x-big", "a".repeat(5000).parse().unwrap());
    assert_eq!(
        proxy.h2().await.send_request(req).await.unwrap().status(),
        431
    );
    let mid = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    assert_eq!(raw_https(&proxy, mid.as_bytes()).await.status, 431);
}

/// Safe security headers on every answer; none that would stop Dify's apps being embedded.
#[tokio::test]
async fn security_headers_that_keep_embedding_working() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let resp = proxy.h1().await.send_request(get("/")).await.unwrap();
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        resp.headers()["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    assert!(resp.headers().get("x-frame-options").is_none());
    assert!(resp.headers().get("content-security-policy").is_none());
}

#[tokio::test]
async fn tls_garbage_and_stalled_clients_do_not_disturb_others() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| c.header_timeout = Duration::from_millis(500)).await;
    // Garbage instead of a ClientHello: that connection is closed.
    let mut bad = TcpStream::connect(proxy.https).await.unwrap();
    bad.write_all(b"\x16\x03\x01\xff\xffnot tls at all\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), bad.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(_) | Err(_)),
        "connection answered or closed, not hung"
    );
    // A client that opens a connection and says nothing holds no one up...
    let mut silent = TcpStream::connect(proxy.https).await.unwrap();
    let mut h1 = proxy.h1().await;
    assert_eq!(h1.send_request(get("/")).await.unwrap().status(), 200);
    // ...and is dropped after the header timeout.
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "silent connection closed by the proxy"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_requests_in_flight_finish() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let https = proxy.https;
    let mut h1 = proxy.h1().await;
    let in_flight = tokio::spawn(async move { h1.send_request(get("/slow?ms=700")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.begin_shutdown();
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200, "the request in flight finished");
    proxy.shutdown().await;
    assert!(
        TcpStream::connect(https).await.is_err(),
        "no longer accepting"
    );
}

/// The framing guard must follow keep-alive connections exactly: a body that looks like a
/// smuggled request is data, and the requests after it are served.
#[tokio::test]
async fn smuggling_guard_has_no_false_alarms_on_keep_alive_connections() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut io = proxy.tls(&[b"http/1.1"]).await;
    let fake = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let fixed = format!(
        "POST /v1/upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n{fake}",
        fake.len()
    );
    let chunked = format!(
        "POST /v1/upload HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n{:x};x=y\r\n{fake}\r\n0\r\n\r\n",
        fake.len()
    );
    let plain = "GET /v1/after HTTP/1.1\r\nhost: localhost\r\n\r\n";
    for request in [fixed.as_str(), chunked.as_str(), plain] {
        io.write_all(request.as_bytes()).await.unwrap();
        let resp = read_response(&mut io).await.unwrap();
        assert_eq!(resp.status, 200, "{request}: {}", resp.head);
    }
}

#[tokio::test]
async fn tls_1_2_clients_are_served_too() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(proxy.cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(proxy.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut io = connector.connect(name, tcp).await.unwrap();
    assert_eq!(
        io.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    io.write_all(b"GET /v1/tls12 HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut io).await.unwrap().status, 200);
}

#[tokio::test]
async fn http2_body_over_the_limit_gets_413() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| c.max_body = 1024).await;
    let mut h2 = proxy.h2().await;
    let req = Request::post("https://localhost/console/api/files/upload")
        .body(Full::new(Bytes::from(vec![b'x'; 4096])))
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 413);
    let req = Request::post("https://localhost/console/api/files/upload")
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(body_json(resp).await["bytes"], 1000);
}

/// A WebSocket whose peers go quiet is closed after the idle timeout (like nginx's
/// proxy_read_timeout), while one that keeps talking stays open.
#[tokio::test]
async fn idle_websocket_is_closed_after_the_read_timeout() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| c.read_timeout = Duration::from_millis(600)).await;
    let io = proxy.tls(&[b"http/1.1"]).await;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/socket.io/", io)
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws.send(Message::text("still here")).await.unwrap();
        assert!(ws.next().await.unwrap().is_ok(), "active tunnel stays open");
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed by the proxy");
    assert!(!matches!(closed, Some(Ok(Message::Text(_)))), "{closed:?}");
}

/// An upstream that refuses connections for a while (restarting) is waited for: the request,
/// body included, reaches it once it listens again.
#[tokio::test]
async fn a_request_waits_for_a_restarting_upstream() {
    let mut ups = dify_upstreams().await;
    let addr = dead_address().await;
    ups.api = Some(difyctl::proxy::Upstream::parse("api", &addr.to_string()).unwrap());
    let proxy = TestProxy::start(&ups, |c| c.upstream_wait = Duration::from_secs(10)).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        crate::testserver::serve(listener, "api".to_string()).await;
    });
    let mut h1 = proxy.h1().await;
    let req = http::Request::post("/console/api/upload")
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"0123456789",
        )))
        .unwrap();
    let resp = h1.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = body_json(resp).await;
    assert_eq!(body["service"], "api");
    assert_eq!(body["bytes"], 10, "the body survived the waiting");
}

/// Regression (hardening #1): connections that never sent a byte were never closed (the
/// header timeout started at the first byte), and 1100 of them from one client took HTTPS
/// and HTTP-01 down. Now every listener closes a silent connection after `header_timeout`
/// (also after a completed TLS handshake, also h2 without its preface), an idle keep-alive
/// one after `idle_timeout`, and one client cannot hold more than its share.
#[tokio::test]
async fn idle_sockets_are_closed_and_cannot_crowd_out_other_clients() {
    difyctl::proxy::limits::raise_file_limit();
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| {
        c.header_timeout = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(2);
        c.max_connections_per_client = 300;
    })
    .await;
    // Thousands of silent sockets from 127.0.0.1 on both listeners.
    let mut silent = Vec::new();
    for _ in 0..1500 {
        for addr in [proxy.https, proxy.http] {
            if let Ok(s) = TcpStream::connect(addr).await {
                silent.push(s);
            }
        }
    }
    assert!(silent.len() > 2000, "opened {}", silent.len());
    // Another client is served meanwhile.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = other.connect(proxy.https).await.unwrap();
    let mut store = rustls::RootCertStore::empty();
    store.add(proxy.cert.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("another client gets its handshake");
    tls.write_all(b"GET /v1/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), read_response(&mut tls))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    // Over its share, a new connection from the crowding client is closed at once.
    let mut over = TcpStream::connect(proxy.http).await.unwrap();
    over.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .ok();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), over.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "over the per-client limit: {n:?}"
    );
    // The silent ones are closed after header_timeout.
    let mut first = silent.swap_remove(0);
    let n = tokio::time::timeout(Duration::from_secs(6), first.read(&mut buf))
        .await
        .expect("a silent socket is closed");
    assert!(matches!(n, Ok(0) | Err(_)));
    drop(silent);

    // After a completed handshake (http/1.1 and h2 without a preface), silence is closed too.
    // (An HTTP/2 server sends its SETTINGS, and a GOAWAY when it closes: read to the end.)
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let mut quiet = proxy.tls(&[alpn]).await;
        let mut seen = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(6), quiet.read_to_end(&mut seen))
            .await
            .expect("closed after the handshake");
        if alpn == b"http/1.1" {
            assert!(
                seen.is_empty(),
                "nothing is sent on a silent HTTP/1.1 connection: {read:?}"
            );
        }
    }
    // A keep-alive connection with no request in flight is closed after idle_timeout.
    let mut kept = proxy.tls(&[b"http/1.1"]).await;
    kept.write_all(b"GET /v1/x HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), read_response(&mut kept))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    let n = tokio::time::timeout(Duration::from_secs(6), kept.read(&mut buf))
        .await
        .expect("idle keep-alive closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

/// A long request is never idle: an SSE stream outlasting idle_timeout keeps flowing.
#[tokio::test]
async fn a_stream_longer_than_the_idle_timeout_is_not_cut() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |c| {
        c.header_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut h1 = proxy.h1().await;
    let resp = h1
        .send_request(get("/v1/chat-messages/sse?n=4&gap_ms=900"))
        .await
        .unwrap();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("the stream ran to its end")
        .to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body)
            .matches("event: message")
            .count(),
        4
    );
}

/// Regression (hardening #9): a valid request pipelined before a CL+TE one got the bad one's
/// 400; a malformed chunked body from the client got a 502 (and an upstream-failure log); a
/// WebSocket upgrade passed on any route (nginx: only /socket.io/); the same Content-Length
/// twice passed.
#[tokio::test]
async fn framing_errors_are_the_clients_and_name_the_right_request() {
    let ups = dify_upstreams().await;
    let proxy = TestProxy::start(&ups, |_| {}).await;
    let mut io = proxy.tls(&[b"http/1.1"]).await;
    io.write_all(b"GET /v1/a HTTP/1.1\r\nhost: localhost\r\n\r\nPOST /v1/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n")
        .await
        .unwrap();
    // Both answers may come in one read: take everything, then look at the status lines.
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(
        statuses,
        ["200", "400"],
        "the valid request before it is served: {text}"
    );

    let bad_chunk = b"POST /v1/files/upload HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n";
    assert_eq!(
        raw_https(&proxy, bad_chunk).await.status,
        400,
        "malformed chunked body"
    );
    let twice = b"POST /v1/x HTTP/1.1\r\nhost: localhost\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\nabc";
    assert_eq!(
        raw_https(&proxy, twice).await.status,
        400,
        "Content-Length twice"
    );

    let upgrade = b"GET /v1/ws HTTP/1.1\r\nhost: localhost\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let resp = raw_https(&proxy, upgrade).await;
    assert_eq!(resp.status, 200, "no upgrade outside /socket.io/");
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(json["headers"].get("upgrade").is_none(), "{json}");
}

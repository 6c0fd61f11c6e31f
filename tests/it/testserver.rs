//! The project's own test server: a real HTTP/1.1 upstream that plays a Dify service in tests.
//! It is also built as a static binary (`examples/testserver.rs`) for the Docker-based tests.
//!
//! Endpoints (any method):
//! - `/health`: 200 `ok`
//! - `.../sse?n=5&gap_ms=200` (any path ending in /sse): `text/event-stream`, one event every `gap_ms`, stamped with the
//!   time it was sent
//! - paths containing `upload`: reads the whole body, answers `{"bytes": n, "fnv": hash}`
//! - `/slow?ms=N`: waits N ms, then echoes
//! - `.../notes` (the stand-in api's data): POST stores the body as a row in PostgreSQL
//!   (`psql` with the PG* environment, table `notes`), GET lists the rows as a JSON array;
//!   needs `psql` in the container (the test database image has it)
//! - `.../store/NAME`: PUT/POST writes the body to `$STORAGE_DIR/NAME` (default
//!   /app/api/storage, Dify's), GET reads it back
//! - WebSocket upgrade on any path: echoes every text and binary message
//! - anything else: JSON echo of service name, method, path, query and headers

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type Out = BoxBody<Bytes, Infallible>;

/// Serves `listener` until the runtime ends; `name` is reported in every echo.
pub async fn serve(listener: TcpListener, name: String) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, name.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, name: String) -> Result<Response<Out>, Infallible> {
    let query = parse_query(req.uri().query().unwrap_or(""));
    let path = req.uri().path().to_string();
    if let Some(key) = websocket_key(&req) {
        return Ok(upgrade(req, key));
    }
    if path == "/health" {
        return Ok(text(StatusCode::OK, "text/plain", "ok\n".into()));
    }
    if path.ends_with("/sse") {
        let n: u32 = query.get("n").and_then(|v| v.parse().ok()).unwrap_or(5);
        let gap = Duration::from_millis(
            query
                .get("gap_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(200),
        );
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for i in 0..n {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                // `t`: when the event left, in microseconds since the epoch (the SSE benchmark
                // measures relay latency from it).
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                let event =
                    format!("id: {i}\nevent: message\ndata: {{\"n\": {i}, \"t\": {t}}}\n\n");
                if tx.send(Bytes::from(event)).await.is_err() {
                    return;
                }
            }
        });
        let mut resp = Response::new(ChannelBody(rx).boxed());
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
        h.insert(header::CACHE_CONTROL, "no-cache".parse().unwrap());
        return Ok(resp);
    }
    if path.ends_with("/notes") {
        return Ok(notes(req).await);
    }
    if let Some(file) = path.split_once("/store/").map(|(_, f)| f.to_string()) {
        return Ok(store(req, &file).await);
    }
    if path.contains("upload") {
        let mut body = req.into_body();
        let (mut bytes, mut hash) = (0u64, FNV_OFFSET);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(data) = f.data_ref() {
                        bytes += data.len() as u64;
                        hash = fnv1a(hash, data);
                    }
                }
                Err(e) => {
                    return Ok(text(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("body error: {e}\n"),
                    ))
                }
            }
        }
        let json = serde_json::json!({"service": name, "bytes": bytes, "fnv": hash});
        return Ok(text(StatusCode::OK, "application/json", json.to_string()));
    }
    if path == "/slow" {
        let ms = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let json = serde_json::json!({
        "service": name,
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query().unwrap_or(""),
        "headers": headers,
    });
    Ok(text(StatusCode::OK, "application/json", json.to_string()))
}

/// Rows in PostgreSQL through `psql`: the stand-in api's database writes.
async fn notes(req: Request<Incoming>) -> Response<Out> {
    let post = req.method() == http::Method::POST;
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
    };
    let sql = if post {
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        format!("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL); INSERT INTO notes (body) VALUES (convert_from('\\x{hex}'::bytea, 'UTF8'))")
    } else {
        "SELECT coalesce(json_agg(body ORDER BY id), '[]') FROM notes".to_string()
    };
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-Atq", "-c", &sql])
            .output()
    })
    .await;
    match out {
        Ok(Ok(o)) if o.status.success() => {
            let rows = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let rows = if post {
                "{\"stored\": true}".to_string()
            } else {
                rows
            };
            text(StatusCode::OK, "application/json", rows)
        }
        Ok(Ok(o)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        other => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("psql: {other:?}\n"),
        ),
    }
}

/// Files in the storage folder: the stand-in api's uploads.
async fn store(req: Request<Incoming>, file: &str) -> Response<Out> {
    if file.contains("..") || file.contains('/') || file.is_empty() {
        return text(StatusCode::BAD_REQUEST, "text/plain", "bad name\n".into());
    }
    let dir = std::env::var("STORAGE_DIR").unwrap_or_else(|_| "/app/api/storage".into());
    let path = std::path::Path::new(&dir).join(file);
    if req.method() == http::Method::GET {
        return match std::fs::read(&path) {
            Ok(data) => {
                let mut resp = Response::new(Full::new(Bytes::from(data)).boxed());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    "application/octet-stream".parse().unwrap(),
                );
                resp
            }
            Err(e) => text(StatusCode::NOT_FOUND, "text/plain", format!("{e}\n")),
        };
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
    };
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &body)) {
        Ok(()) => text(
            StatusCode::OK,
            "application/json",
            format!("{{\"bytes\": {}}}", body.len()),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Out> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    resp
}

fn websocket_key(req: &Request<Incoming>) -> Option<String> {
    let upgrade = req.headers().get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    Some(
        req.headers()
            .get(header::SEC_WEBSOCKET_KEY)?
            .to_str()
            .ok()?
            .to_string(),
    )
}

fn upgrade(mut req: Request<Incoming>, key: String) -> Response<Out> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, "upgrade".parse().unwrap());
    h.insert(header::UPGRADE, "websocket".parse().unwrap());
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        derive_accept_key(key.as_bytes()).parse().unwrap(),
    );
    resp
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub const FNV_OFFSET: u64 = 0xcbf29ce484222325;

/// FNV-1a, to check that a large body arrived byte for byte.
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for b in data {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

/// A response body fed by a channel, so each event is its own frame, sent when produced.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

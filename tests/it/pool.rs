//! The proxy's upstream connections (`src/proxy/client.rs`): kept alive and reused, given
//! back to the pool when a response ends (also an empty one), and never reused once the
//! upstream closed them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use difyctl::proxy::Upstream;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{dify_upstreams, get, TestProxy};

/// A plain HTTP/1.1 upstream that counts the connections it accepts and answers each request
/// head with what `answer` says: the bytes, and after how long it then closes the connection
/// (`None`: it stays open).
async fn upstream(
    answer: impl Fn(&str) -> (Vec<u8>, Option<Duration>) + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let answer = Arc::new(answer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let (bytes, close_after) = answer(&head);
                    if tcp.write_all(&bytes).await.is_err() {
                        return;
                    }
                    if let Some(after) = close_after {
                        tokio::time::sleep(after).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// `/` answers `ok`, `/empty` 204, HEAD no body. With `close_after`, the upstream closes each
/// connection that long after its answer, as an upstream's own keep-alive timeout does
/// (gunicorn's is 2 s).
async fn counting_upstream(close_after: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
    upstream(move |head| {
        let bytes: &[u8] = if head.starts_with("HEAD ") {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        } else if head.starts_with("GET /empty ") {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        (bytes.to_vec(), close_after)
    })
    .await
}

async fn proxy_to(web: SocketAddr) -> TestProxy {
    let mut ups = dify_upstreams().await;
    ups.web = Some(Upstream::parse("web", &web.to_string()).unwrap());
    // No waiting: a request sent on a dead connection must not be rescued by a retry.
    TestProxy::start(&ups, |c| c.upstream_wait = Duration::ZERO).await
}

#[tokio::test]
async fn upstream_connections_are_reused_across_requests_and_empty_answers() {
    let (web, accepted) = counting_upstream(None).await;
    let proxy = proxy_to(web).await;
    let mut h1 = proxy.h1().await;
    for i in 0..30 {
        let req = match i % 3 {
            0 => get("/"),
            1 => get("/empty"),
            _ => {
                let mut req = get("/");
                *req.method_mut() = http::Method::HEAD;
                req
            }
        };
        let resp = h1.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        match i % 3 {
            0 => assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..])),
            1 => assert_eq!((status.as_u16(), body.len()), (204, 0)),
            _ => assert_eq!((status.as_u16(), body.len()), (200, 0)),
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one upstream connection serves 30 sequential requests"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_the_upstream_closed_is_not_reused() {
    let (web, accepted) = counting_upstream(Some(Duration::from_millis(50))).await;
    let proxy = proxy_to(web).await;
    let mut h1 = proxy.h1().await;
    for _ in 0..3 {
        let resp = h1.send_request(get("/")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        // The upstream closes its side meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "a new connection each time"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_all_return_to_the_pool() {
    let (web, accepted) = counting_upstream(None).await;
    let proxy = proxy_to(web).await;
    let h2 = proxy.h2().await;
    let burst = || {
        let requests = (0..8).map(|_| {
            let mut h2 = h2.clone();
            async move {
                let resp = h2.send_request(crate::support::get_h2("/")).await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap().to_bytes()
            }
        });
        futures_util::future::join_all(requests)
    };
    for body in burst().await {
        assert_eq!(&body[..], b"ok");
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&opened),
        "{opened} connections for 8 requests"
    );
    for _ in 0..3 {
        burst().await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        opened,
        "later bursts reuse the pooled connections"
    );
    proxy.shutdown().await;
}

/// Answers each path with exact bytes (and closes the connection after the answers marked
/// so); any other path gets `ok`.
async fn scripted_upstream(
    answers: Vec<(&'static str, Vec<u8>, bool)>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    upstream(move |head| {
        let path = head.split(' ').nth(1).unwrap_or("/");
        let plain: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (bytes, close) = answers
            .iter()
            .find(|(p, _, _)| *p == path)
            .map_or((plain, false), |(_, a, c)| (&a[..], *c));
        (bytes.to_vec(), close.then_some(Duration::ZERO))
    })
    .await
}

/// The short way to the upstream (`src/proxy/h1.rs`, bodiless GETs) reads every framing an
/// upstream may use, reuses a connection only after a complete message on a connection that
/// stays open, and never passes on a body whose length it cannot trust.
#[tokio::test]
async fn bodiless_gets_read_every_framing_and_reuse_only_clean_connections() {
    let mut big = b"HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n".to_vec();
    big.resize(big.len() + 300_000, b'x');
    let answers: Vec<(&str, &[u8], bool)> = vec![
        (
            "/chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        ),
        (
            "/hints",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            false,
        ),
        (
            "/says-close",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\nok",
            false,
        ),
        ("/until-close", b"HTTP/1.1 200 OK\r\n\r\nuntil the close", true),
        (
            "/conflict",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
            false,
        ),
        ("/short", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", true),
        ("/big", &big, false),
    ];
    let answers = answers
        .into_iter()
        .map(|(p, a, c)| (p, a.to_vec(), c))
        .collect();
    let (web, accepted) = scripted_upstream(answers).await;
    let proxy = proxy_to(web).await;
    let mut h1 = proxy.h1().await;
    let mut fetch = async |path: &str| {
        let resp = h1
            .send_request(get(path))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        (status, body)
    };
    let ok = |(status, body): (u16, Result<bytes::Bytes, hyper::Error>)| {
        (status, String::from_utf8_lossy(&body.unwrap()).into_owned())
    };
    assert_eq!(ok(fetch("/chunked").await), (200, "hello world".into()));
    assert_eq!(
        ok(fetch("/").await),
        (200, "ok".into()),
        "reused after chunks and trailers"
    );
    assert_eq!(ok(fetch("/hints").await), (200, "ok".into()), "103 skipped");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(ok(fetch("/says-close").await), (200, "ok".into()));
    assert_eq!(ok(fetch("/").await), (200, "ok".into()));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "`Connection: close` is not reused"
    );
    assert_eq!(
        ok(fetch("/until-close").await),
        (200, "until the close".into())
    );
    assert_eq!(ok(fetch("/").await), (200, "ok".into()));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "a body read to the close ends its connection"
    );
    let (status, _) = fetch("/conflict").await;
    assert_eq!(
        status, 502,
        "Content-Length values that disagree are not guessed at"
    );
    assert_eq!(ok(fetch("/").await), (200, "ok".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    // A body read over many reads leaves the connection idle, not looking closed.
    let (status, body) = fetch("/big").await;
    assert_eq!((status, body.unwrap().len()), (200, 300_000));
    assert_eq!(ok(fetch("/").await), (200, "ok".into()));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "reused after a large body"
    );
    // Cut short: the client's connection is aborted (before or after the head went out),
    // never ended as if the body were complete.
    match h1.send_request(get("/short")).await {
        Err(_) => {}
        Ok(resp) => {
            let body = resp.into_body().collect().await;
            assert!(body.is_err(), "a body cut short passed on as complete");
        }
    }
    proxy.shutdown().await;
}

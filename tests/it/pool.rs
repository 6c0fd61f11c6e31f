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

/// A plain HTTP/1.1 upstream that counts the connections it accepts. `/` answers `ok`,
/// `/empty` 204, HEAD no body. With `close_after`, it closes each connection that long after
/// its answer, as an upstream's own keep-alive timeout does (gunicorn's is 2 s).
async fn counting_upstream(close_after: Option<Duration>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
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
                    let answer: &[u8] = if head.starts_with("HEAD ") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
                    } else if head.starts_with("GET /empty ") {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if tcp.write_all(answer).await.is_err() {
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

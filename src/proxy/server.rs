//! Workers and connections. Each worker is a thread with its own single-threaded tokio runtime,
//! its own listeners (SO_REUSEPORT) and its own upstream connection pool: nginx's worker model,
//! which measured clearly faster here than one shared multi-threaded runtime
//! (see ../shared/notes/performance.md). Shutdown: stop accepting, let in-flight requests end
//! within the grace period, then close what remains.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, STRICT_TRANSPORT_SECURITY};
use http::Response;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use super::access_log::{AccessEntry, Logged};
use super::forward::{self, ConnInfo, Forwarder};
use super::framing::Guarded;
use super::listener::bind_group;
use super::{redirect, ProxyError, Shared};

/// A started proxy: where it listens, and a way to wait for its workers to finish.
pub struct RunningProxy {
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    done: Vec<oneshot::Receiver<()>>,
}

impl RunningProxy {
    /// Resolves when every worker has stopped (after `shutdown` turned true and the grace
    /// period ended).
    pub async fn wait(self) {
        for rx in self.done {
            let _ = rx.await;
        }
    }
}

/// Binds the listeners and starts the workers. Returns once listening; the workers run until
/// `shutdown` becomes `true`.
pub fn start(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunningProxy, ProxyError> {
    let workers = shared.config.workers.max(1);
    let https = bind_group(shared.config.https, workers, "HTTPS")?;
    let http = bind_group(shared.config.http, workers, "HTTP")?;
    let https_addr = https[0].local_addr().map_err(ProxyError::Worker)?;
    let http_addr = http[0].local_addr().map_err(ProxyError::Worker)?;
    let mut done = Vec::with_capacity(workers);
    for (i, (https, http)) in https.into_iter().zip(http).enumerate() {
        let (tx, rx) = oneshot::channel();
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker(shared, https, http, shutdown)),
                    Err(e) => tracing::error!("proxy worker {i} cannot start its runtime: {e}"),
                }
                let _ = tx.send(());
            })
            .map_err(ProxyError::Worker)?;
        done.push(rx);
    }
    tracing::info!(%https_addr, %http_addr, workers, "proxy listening");
    Ok(RunningProxy {
        http_addr,
        https_addr,
        done,
    })
}

async fn worker(
    shared: Arc<Shared>,
    https: std::net::TcpListener,
    http: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let (https, http) = match (TcpListener::from_std(https), TcpListener::from_std(http)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return tracing::error!("proxy worker cannot register its listeners: {e}")
        }
    };
    let https_port = https.local_addr().map(|a| a.port()).unwrap_or(443);
    let http_port = http.local_addr().map(|a| a.port()).unwrap_or(80);
    let forwarder = Forwarder::new(
        shared.clone(),
        forward::client(shared.config.connect_timeout),
    );
    let builder = Arc::new(connection_builder(&shared));
    let acceptor = TlsAcceptor::from(shared.tls.clone());
    let graceful = GracefulShutdown::new();

    loop {
        tokio::select! {
            accepted = https.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (forwarder, builder, acceptor, watcher) =
                        (forwarder.clone(), builder.clone(), acceptor.clone(), graceful.watcher());
                    let (handshake_timeout, hsts) = (shared.config.header_timeout, shared.config.hsts);
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                        };
                        let alpn = tls.get_ref().1.alpn_protocol();
                        if alpn == Some(crate::tls::ACME_TLS_ALPN) {
                            // TLS-ALPN-01 validation: the handshake was the answer.
                            return;
                        }
                        let h2 = alpn == Some(b"h2");
                        let mut conn = ConnInfo { peer, local_port: https_port, scheme: "https", framing_conflict: None };
                        if h2 {
                            let service = https_service(forwarder, conn, hsts);
                            serve(&builder, TokioIo::new(tls), service, watcher, peer).await;
                        } else {
                            let flag = Arc::new(AtomicBool::new(false));
                            conn.framing_conflict = Some(flag.clone());
                            let service = https_service(forwarder, conn, hsts);
                            serve(&builder, TokioIo::new(Guarded::new(tls, flag)), service, watcher, peer).await;
                        }
                    });
                }
                Err(e) => accept_failed(e).await,
            },
            accepted = http.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let conn = ConnInfo { peer, local_port: http_port, scheme: "http", framing_conflict: None };
                    let challenges = shared.challenges.clone();
                    let format = shared.config.access_log;
                    let domains = shared.config.domains.clone();
                    let service = service_fn(move |req| {
                        let resp = redirect::handle(&req, &conn, &challenges, https_port, &domains, format);
                        std::future::ready(Ok::<_, Infallible>(finish(resp, false)))
                    });
                    let watcher = graceful.watcher();
                    let builder = builder.clone();
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        serve(&builder, TokioIo::new(tcp), service, watcher, peer).await;
                    });
                }
                Err(e) => accept_failed(e).await,
            },
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
    drop((https, http));
    let grace = shared.config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "grace period over: closing the connections still open"
        );
    }
}

/// Serves one connection (HTTP/1 with upgrades, or HTTP/2) until it ends or shutdown closes it.
async fn serve<IO, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    service: S,
    watcher: Watcher,
    peer: SocketAddr,
) where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = Response<B>> + Send,
    S::Error: Into<super::BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<super::BoxError>,
{
    let conn = builder.serve_connection_with_upgrades(io, service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}

/// The HTTPS service of one connection: forward, compress what is worth it, add HSTS, log.
fn https_service(
    forwarder: Forwarder,
    conn: ConnInfo,
    hsts: bool,
) -> TowerToHyperService<
    impl tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = Response<
                impl http_body::Body<Data = bytes::Bytes, Error = super::BoxError> + Send,
            >,
            Error = Infallible,
            Future = impl Send,
        > + Clone,
> {
    let inner = tower::service_fn(move |req| {
        let (forwarder, conn) = (forwarder.clone(), conn.clone());
        async move { Ok::<_, Infallible>(forwarder.handle(req, &conn).await) }
    });
    let service = ServiceBuilder::new()
        .map_response(move |resp| finish(resp, hsts))
        // Level 1, like nginx's default gzip_comp_level: most of the gain for little CPU. The
        // default predicate skips text/event-stream, images, gRPC and bodies under 32 bytes.
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .service(inner);
    TowerToHyperService::new(service)
}

/// Last touches on every response: HSTS on HTTPS, and the access-log wrapper around the body.
fn finish<B: http_body::Body<Data = bytes::Bytes>>(
    mut resp: Response<B>,
    hsts: bool,
) -> Response<Logged<B>> {
    let entry = resp.extensions_mut().remove::<AccessEntry>();
    if hsts {
        resp.headers_mut()
            .entry(STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static("max-age=31536000"));
    }
    resp.map(|body| Logged::new(body, entry))
}

fn connection_builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let config = &shared.config;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris: the whole header block must arrive within this time (also between
        // keep-alive requests).
        .header_read_timeout(config.header_timeout)
        // Headers larger than this get 431.
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(256)
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Accept fails under fd exhaustion; back off a little instead of spinning.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

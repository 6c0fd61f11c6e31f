//! Workers and connections. Each worker is a thread with its own single-threaded tokio runtime,
//! its own listeners (SO_REUSEPORT) and its own upstream connection pool: nginx's worker model,
//! which measured clearly faster here than one shared multi-threaded runtime
//! (see ../shared/notes/performance.md). Shutdown: stop accepting, let in-flight requests end
//! within the grace period, then close what remains.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use super::access_log::{AccessEntry, Logged};
use super::conn::ConnInfo;
use super::forward::{self, Forwarder};
use super::framing::{FramingFlags, Guarded};
use super::graceful::{Drain, Graceful, Watcher};
use super::idle::{Activity, Busy};
use super::limits::{raise_file_limit, ConnLimits, Slot};
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
    let files = raise_file_limit();
    let limits = ConnLimits::new(
        shared.config.max_connections,
        shared.config.max_connections_per_client,
        shared.config.trusted_proxies.clone(),
    );
    if (shared.config.max_connections as u64) + 64 > files {
        tracing::warn!(files, max_connections = shared.config.max_connections, "the open-file limit is below proxy.max_connections: raise LimitNOFILE (systemd) or `ulimit -n`");
    }
    let mut done = Vec::with_capacity(workers);
    for (i, (https, http)) in https.into_iter().zip(http).enumerate() {
        let (tx, rx) = oneshot::channel();
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker(shared, limits, https, http, shutdown)),
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
    limits: Arc<ConnLimits>,
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
    let builder = Arc::new(Builders::new(&shared));
    let acceptor = TlsAcceptor::from(shared.tls.clone());
    let graceful = Drain::new();
    let http_app = redirect::router(Arc::new(redirect::Plain {
        challenges: shared.challenges.clone(),
        https_port,
        domains: shared.config.domains.clone(),
    }));
    tokio::spawn(super::access_log::flush_periodically(shutdown.clone()));

    loop {
        tokio::select! {
            accepted = https.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Some(slot) = limits.admit(peer.ip()) else { continue };
                    let (forwarder, builder, acceptor, watcher) =
                        (forwarder.clone(), builder.clone(), acceptor.clone(), graceful.watcher());
                    let (handshake_timeout, hsts) = (shared.config.header_timeout, shared.config.hsts);
                    let timeouts = Timeouts::of(&shared);
                    let metrics = shared.metrics.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let _open = metrics.open_connection();
                        let _ = tcp.set_nodelay(true);
                        let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                metrics.tls_failure(crate::metrics::tls_failure_reason(&e));
                                return tracing::debug!(%peer, "TLS handshake failed: {e}");
                            }
                            Err(_) => {
                                metrics.tls_failure("timeout");
                                return tracing::debug!(%peer, "TLS handshake timed out");
                            }
                        };
                        let alpn = tls.get_ref().1.alpn_protocol();
                        if alpn == Some(crate::tls::ACME_TLS_ALPN) {
                            // TLS-ALPN-01 validation: the handshake was the answer.
                            return;
                        }
                        let h2 = alpn == Some(b"h2");
                        let activity = Activity::new();
                        let mut conn = ConnInfo::new(peer, https_port, "https");
                        if h2 {
                            let service = https_service(forwarder, conn, hsts, activity.clone());
                            let served = builder.h2.serve_connection(TokioIo::new(tls), service);
                            serve(served, watcher, peer, &activity, timeouts).await;
                        } else {
                            let flag = FramingFlags::new();
                            conn.framing = Some(flag.clone());
                            let service = https_service(forwarder, conn, hsts, activity.clone());
                            let io = TokioIo::new(Guarded::new(tls, flag));
                            let served = builder.h1.serve_connection(io, service).with_upgrades();
                            serve(served, watcher, peer, &activity, timeouts).await;
                        }
                    });
                }
                Err(e) => accept_failed(e, &limits).await,
            },
            accepted = http.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Some(slot) = limits.admit(peer.ip()) else { continue };
                    let conn = ConnInfo::new(peer, http_port, "http");
                    let (app, format, metrics) = (http_app.clone(), shared.config.access_log, shared.metrics.clone());
                    let activity = Activity::new();
                    let marks = activity.clone();
                    let service = service_fn(move |req| {
                        let busy = marks.begin();
                        let (app, conn, metrics) = (app.clone(), conn.clone(), metrics.clone());
                        async move {
                            let resp = redirect::handle(app, req, &conn, format, &metrics).await;
                            Ok::<_, Infallible>(finish(resp, false, Some(busy)))
                        }
                    });
                    let watcher = graceful.watcher();
                    let builder = builder.clone();
                    let timeouts = Timeouts::of(&shared);
                    let open = shared.metrics.open_connection();
                    tokio::spawn(async move {
                        let _slot: Slot = slot;
                        let _open = open;
                        let _ = tcp.set_nodelay(true);
                        let served = builder.h1.serve_connection(TokioIo::new(tcp), service);
                        serve(served, watcher, peer, &activity, timeouts).await;
                    });
                }
                Err(e) => accept_failed(e, &limits).await,
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

/// When a connection doing nothing is closed (see `idle.rs`).
#[derive(Clone, Copy)]
struct Timeouts {
    first_byte: Duration,
    idle: Duration,
}

impl Timeouts {
    fn of(shared: &Shared) -> Timeouts {
        Timeouts {
            first_byte: shared.config.header_timeout,
            idle: shared.config.idle_timeout,
        }
    }
}

/// Serves one connection (HTTP/1 with upgrades, or HTTP/2) until it ends, stays idle too
/// long, or shutdown closes it.
async fn serve<C>(
    conn: C,
    watcher: Watcher,
    peer: SocketAddr,
    activity: &Activity,
    timeouts: Timeouts,
) where
    C: Graceful,
{
    tokio::select! {
        ended = watcher.watch(conn) => if let Err(e) = ended {
            tracing::debug!(%peer, "connection ended with an error: {e}");
        },
        _ = activity.idle(timeouts.first_byte, timeouts.idle) => {
            tracing::debug!(%peer, "closing an idle connection");
        }
    }
}

/// The HTTPS app of one connection: an axum Router whose fallback is the forwarding service
/// (forward, compress what is worth it, add HSTS and the security headers, log). Dify owns
/// every path, so the proxy's own routes would go in front of the fallback here.
///
/// axum clones its fallback for every request, and each service here clones what it holds
/// into the request's future: so each holds one `Arc` (one count up per clone) rather than
/// the forwarder, the connection's facts and the compression layer field by field.
fn https_service(
    forwarder: Forwarder,
    conn: ConnInfo,
    hsts: bool,
    activity: Activity,
) -> TowerToHyperService<axum::Router> {
    let ctx = Arc::new(Connection { forwarder, conn });
    let inner = tower::service_fn(move |req: http::Request<super::ClientBody>| {
        let ctx = ctx.clone();
        // Boxed once here, so the layers around it move a pointer rather than the whole
        // request state (a few KB) on every request.
        Box::pin(async move { Ok::<_, Infallible>(ctx.forwarder.handle(req, &ctx.conn).await) })
    });
    // zstd, brotli and gzip, chosen by the client's q-values; at equal weight zstd, then br,
    // then gzip (what browsers send lists all three). The fastest level of each, like nginx's
    // default gzip_comp_level 1: most of the gain for little CPU. The default predicate skips
    // text/event-stream, images, gRPC, already-encoded answers and bodies under 32 bytes.
    let compressed = ServiceBuilder::new()
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .service(inner.clone());
    let app = Arc::new(App {
        inner,
        compressed,
        hsts,
        activity,
    });
    let service = tower::service_fn(move |req: http::Request<super::ClientBody>| {
        // A client that accepts no encoding gets the upstream's body as it is, without the
        // compression layer's per-request work.
        use futures_util::future::{Either, TryFutureExt as _};
        use http_body_util::Either as OneOf;
        use tower::Service as _;
        // Only the service that answers is cloned and called.
        let sent = if req.headers().contains_key(http::header::ACCEPT_ENCODING) {
            Either::Left(
                app.compressed
                    .clone()
                    .call(req)
                    .map_ok(|r| r.map(OneOf::Left)),
            )
        } else {
            Either::Right(app.inner.clone().call(req).map_ok(|r| r.map(OneOf::Right)))
        };
        let busy = app.activity.begin();
        let hsts = app.hsts;
        async move {
            let resp = sent.await?;
            Ok::<_, Infallible>(finish(resp, hsts, Some(busy)))
        }
    });
    TowerToHyperService::new(axum::Router::new().fallback_service(service))
}

/// What the forwarding service of one connection needs.
struct Connection {
    forwarder: Forwarder,
    conn: ConnInfo,
}

/// The services of one connection's HTTPS app, shared by its requests.
struct App<S, C> {
    inner: S,
    compressed: C,
    hsts: bool,
    activity: Activity,
}

/// Last touches on every response: HSTS on HTTPS, and the access-log wrapper around the body
/// (which also holds the request's `Busy` mark until the body is done).
fn finish<B: http_body::Body<Data = bytes::Bytes>>(
    mut resp: Response<B>,
    hsts: bool,
    busy: Option<Busy>,
) -> Response<Logged<B>> {
    let entry = resp.extensions_mut().remove::<AccessEntry>();
    super::headers::add_security_headers(resp.headers_mut(), hsts);
    let sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    resp.map(|body| Logged::new(body, entry, busy, sse))
}

/// The connection builders: TLS connections are served as ALPN chose, HTTP/1.1 or HTTP/2,
/// without sniffing the first bytes; the plain port serves HTTP/1.1 (redirects and ACME
/// challenges only).
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(shared: &Shared) -> Builders {
        let config = &shared.config;
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            // Slowloris: the whole header block must arrive within this time (also between
            // keep-alive requests).
            .header_read_timeout(config.header_timeout)
            // A head larger than this gets 431 from hyper (which needs at least 8 KiB); the
            // forwarder checks the exact limit on both protocols (`headers::oversized`).
            .max_buf_size(config.max_header_size.max(8192));
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            // Past h2's own limit a stream is refused with no answer (REFUSED_STREAM, which
            // clients retry); below it the forwarder answers 431. hpack counts 32 bytes per
            // field more than the text, hence the room.
            .max_header_list_size(u32::try_from(config.max_header_size * 4).unwrap_or(u32::MAX))
            .max_concurrent_streams(256)
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        Builders { h1, h2 }
    }
}

/// Accept fails under fd exhaustion; back off a little instead of spinning, and say so once
/// a minute (not 20 lines a second).
async fn accept_failed(e: std::io::Error, limits: &ConnLimits) {
    if limits.should_warn_accept_failure() {
        tracing::warn!("accept failed: {e} (out of file descriptors? raise LimitNOFILE or lower proxy.max_connections)");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

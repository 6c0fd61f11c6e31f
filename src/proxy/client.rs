//! The upstream client: keep-alive HTTP/1.1 connections to the containers, one pool per worker
//! (no lock is shared between workers, so the pool's mutex is never contended).
//!
//! Written for the proxy's one job rather than taken from hyper-util's general client: the
//! upstreams are a handful of fixed addresses, so idle connections sit in a short list per
//! address (no hashing per request), the request goes out in origin form as built, and a
//! connection goes back to the pool the moment its response body ends. That client measured
//! about a tenth of the proxy's instructions per request (BENCHMARKS.md, callgrind).
//!
//! Each upstream connection is driven by the request that uses it (polled inside the request's
//! future and then its response body), not by a task of its own: the client connection and
//! the upstream connection are served by one task, as nginx serves both from one event loop,
//! with no hand-over between tasks per request. A connection waiting in the pool is polled
//! once when taken out, which finds one the upstream closed meanwhile; when hyper hands a
//! request back unsent, the next idle connection (or a new one) gets it. A refused
//! or timed-out connect is an [`SendError::Connect`]: nothing was sent, so the caller may wait
//! and try again (`attempt.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use sync_wrapper::SyncWrapper;
use tokio::net::TcpStream;

use super::retry::Deferred;

/// Idle connections kept per upstream address, and how long one may stay idle.
const MAX_IDLE: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: Authority,
        source: std::io::Error,
    },
    #[error("connection to {authority} failed")]
    Upstream {
        authority: Authority,
        source: hyper::Error,
    },
}

impl SendError {
    /// Nothing reached the upstream: the connection itself failed.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect { .. })
    }
}

#[derive(Clone)]
pub struct Client {
    pool: Arc<Mutex<Pool>>,
    connect_timeout: Duration,
}

#[derive(Default)]
struct Pool {
    /// Per upstream address, the idle connections, most recently used last.
    idle: Vec<(Authority, Vec<Idle>)>,
}

/// hyper's connection state machine for one upstream socket, with upgrades for WebSocket
/// (hyper's type for it cannot be named, hence the box). It holds the request body, which is
/// not `Sync`; the wrapper makes the response body `Sync` (it is only ever polled through
/// `&mut`).
struct Conn(SyncWrapper<Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>>);

impl Conn {
    fn new(conn: impl Future<Output = hyper::Result<()>> + Send + 'static) -> Conn {
        Conn(SyncWrapper::new(Box::pin(conn)))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.0.get_mut().as_mut().poll(cx)
    }
}

/// A connection with no request on it.
struct Idle {
    sender: http1::SendRequest<Deferred>,
    conn: Conn,
    since: Instant,
}

/// Polls `conn` once, without a task to wake: whether it has ended (the upstream closed it).
fn ended(conn: &mut Conn) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    conn.poll(&mut cx).is_ready()
}

impl Client {
    pub fn new(connect_timeout: Duration) -> Client {
        Client {
            pool: Arc::default(),
            connect_timeout,
        }
    }

    /// Sends `req` (origin-form target, Host set) to `authority` on an idle connection or a
    /// new one. The response body returns the connection to the pool when it ends.
    pub async fn request(
        &self,
        authority: &Authority,
        mut req: Request<Deferred>,
    ) -> Result<Response<PooledBody>, SendError> {
        while let Some(Idle {
            mut sender,
            mut conn,
            ..
        }) = self.checkout(authority)
        {
            match drive(&mut conn, sender.try_send_request(req)).await {
                (Ok(resp), open) => return Ok(self.lease(resp, authority, sender, conn, open)),
                (Err(mut e), _) => match e.take_message() {
                    // Closed before the request went out: the next connection gets it.
                    Some(unsent) => req = unsent,
                    None => return Err(upstream(authority, e.into_error())),
                },
            }
        }
        let (mut sender, mut conn) = self.connect(authority).await?;
        match drive(&mut conn, sender.try_send_request(req)).await {
            (Ok(resp), open) => Ok(self.lease(resp, authority, sender, conn, open)),
            (Err(e), _) => Err(upstream(authority, e.into_error())),
        }
    }

    /// The most recently used idle connection to `authority` that is still open and ready.
    fn checkout(&self, authority: &Authority) -> Option<Idle> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let (_, idle) = pool.idle.iter_mut().find(|(a, _)| a == authority)?;
        while let Some(mut idle) = idle.pop() {
            if idle.since.elapsed() < IDLE_TIMEOUT
                && !ended(&mut idle.conn)
                && idle.sender.is_ready()
            {
                return Some(idle);
            }
        }
        None
    }

    fn put(&self, authority: &Authority, sender: http1::SendRequest<Deferred>, conn: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let at = match pool.idle.iter().position(|(a, _)| a == authority) {
            Some(at) => at,
            None => {
                pool.idle.push((authority.clone(), Vec::new()));
                pool.idle.len() - 1
            }
        };
        let idle = &mut pool.idle[at].1;
        // Oldest first out when full.
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            conn,
            since: Instant::now(),
        });
    }

    async fn connect(
        &self,
        authority: &Authority,
    ) -> Result<(http1::SendRequest<Deferred>, Conn), SendError> {
        let failed = |source| SendError::Connect {
            authority: authority.clone(),
            source,
        };
        let addr = (authority.host(), authority.port_u16().unwrap_or(80));
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(tcp) => tcp.map_err(failed)?,
            Err(_) => return Err(failed(std::io::ErrorKind::TimedOut.into())),
        };
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| upstream(authority, e))?;
        Ok((sender, Conn::new(conn.with_upgrades())))
    }

    /// The response with its connection: lent to the body until it ends, or, for an upgrade
    /// (101), handed to a task of its own that completes the upgrade for the tunnel.
    fn lease(
        &self,
        resp: Response<Incoming>,
        authority: &Authority,
        sender: http1::SendRequest<Deferred>,
        conn: Conn,
        open: bool,
    ) -> Response<PooledBody> {
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            if open {
                let mut conn = conn;
                tokio::spawn(async move {
                    if let Err(e) = std::future::poll_fn(|cx| conn.poll(cx)).await {
                        tracing::debug!("upstream upgrade failed: {e}");
                    }
                });
            }
            return resp.map(|body| PooledBody { body, lease: None });
        }
        let lease = open.then(|| Lease {
            client: self.clone(),
            authority: authority.clone(),
            sender,
            conn,
        });
        resp.map(|body| PooledBody { body, lease })
    }
}

/// Runs the connection while waiting for `sent`: the answer, and whether the connection is
/// still open (it may end with the answer, e.g. `Connection: close`).
async fn drive<F, T>(conn: &mut Conn, sent: F) -> (T, bool)
where
    F: Future<Output = T>,
{
    let mut sent = std::pin::pin!(sent);
    let mut open = true;
    std::future::poll_fn(|cx| {
        // The connection first: it writes the request and reads the answer.
        if open && conn.poll(cx).is_ready() {
            open = false;
        }
        sent.as_mut().poll(cx).map(|answer| (answer, open))
    })
    .await
}

fn upstream(authority: &Authority, source: hyper::Error) -> SendError {
    SendError::Upstream {
        authority: authority.clone(),
        source,
    }
}

/// A connection lent to one response.
struct Lease {
    client: Client,
    authority: Authority,
    sender: http1::SendRequest<Deferred>,
    conn: Conn,
}

/// A response body from the pool: runs its connection while the body streams and gives the
/// connection back when the body ends. A body dropped before its end takes its connection
/// with it (closed).
pub struct PooledBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    /// The response is complete: the connection serves the next request (`checkout` makes
    /// sure hyper is done with it).
    fn release(&mut self) {
        if let Some(Lease {
            client,
            authority,
            sender,
            conn,
        }) = self.lease.take()
        {
            client.put(&authority, sender, conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(lease) = &mut this.lease {
            // The connection moves the body's bytes; if it ends, the body ends with it.
            if lease.conn.poll(cx).is_ready() {
                this.lease = None;
            }
        }
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.release(),
            Some(Ok(_)) if this.body.is_end_stream() => this.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => this.lease = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304) may never be polled.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

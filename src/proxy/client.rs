//! The upstream client: keep-alive HTTP/1.1 connections to the containers, one pool per worker
//! (no lock is shared between workers, so the pool's mutex is never contended).
//!
//! Written for the proxy's one job rather than taken from hyper-util's general client: the
//! upstreams are a handful of fixed addresses, so idle connections sit in a short list per
//! address (no hashing per request), the request goes out in origin form as built, and a
//! connection goes back to the pool the moment its response body ends. hyper-util's client
//! cost several thousand instructions more per request (BENCHMARKS.md, callgrind).
//!
//! Each connection runs in a task of its own, which notices at once when the upstream closes
//! it; a closed one is skipped when taken out. A connection taken from the pool may still have
//! been closed just then: when hyper hands the request back unsent, the next idle connection
//! (or a new one) gets it. A refused or timed-out connect is an [`SendError::Connect`]:
//! nothing was sent, so the caller may wait and try again (`attempt.rs`). Idle connections
//! older than a minute are dropped when met; the upstreams' own keep-alive timeouts close the
//! others (gunicorn's default is 2 s, Node's http server's 5 s).
//!
//! A bodiless GET, HEAD or OPTIONS goes the short way (`h1.rs`): written and read inside the
//! request's own task, on connections of a pool of their own. Everything else (bodies,
//! WebSocket upgrades) goes through hyper's client connection.

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
use tokio::net::TcpStream;

use super::h1;
use super::retry::Deferred;
use super::BoxError;

/// Idle connections kept per upstream address, and how long one may stay idle.
const MAX_IDLE: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {authority}")]
    Connect {
        authority: Authority,
        source: std::io::Error,
    },
    #[error("connection to {authority} failed")]
    Upstream {
        authority: Authority,
        source: hyper::Error,
    },
    #[error("connection to {authority} failed")]
    Exchange {
        authority: Authority,
        source: std::io::Error,
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
    /// hyper's client connections (requests with a body, WebSocket upgrades).
    hyper: Idle<http1::SendRequest<Deferred>>,
    /// The connections of the short way (`h1.rs`).
    direct: Idle<h1::Conn>,
}

/// Idle connections per upstream address, most recently used last.
struct Idle<C>(Vec<(Authority, Vec<(C, Instant)>)>);

impl<C> Default for Idle<C> {
    fn default() -> Self {
        Idle(Vec::new())
    }
}

impl<C> Idle<C> {
    /// The most recently used connection to `authority` that is not too old and that
    /// `usable` accepts; the others met on the way are dropped.
    fn take(&mut self, authority: &Authority, usable: impl Fn(&C) -> bool) -> Option<C> {
        let (_, idle) = self.0.iter_mut().find(|(a, _)| a == authority)?;
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && usable(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for `authority`. The oldest ones go first when `closed` says the upstream
    /// closed them or they are too old (a look at the front only: no pass over the whole list
    /// on every request), and when the list is full.
    fn keep(&mut self, authority: &Authority, conn: C, closed: impl Fn(&C) -> bool) {
        let at = match self.0.iter().position(|(a, _)| a == authority) {
            Some(at) => at,
            None => {
                self.0.push((authority.clone(), Vec::new()));
                self.0.len() - 1
            }
        };
        let idle = &mut self.0[at].1;
        let stale = |(c, since): &(C, Instant)| closed(c) || since.elapsed() >= IDLE_TIMEOUT;
        let gone = idle.iter().take_while(|entry| stale(entry)).count();
        idle.drain(..gone);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push((conn, Instant::now()));
    }
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
        if h1::eligible(&req) {
            return self.request_direct(authority, req).await;
        }
        while let Some(mut sender) = self.checkout(authority) {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.lease(resp, authority, sender)),
                Err(mut e) => match e.take_message() {
                    // Closed before the request went out: the next connection gets it.
                    Some(unsent) => req = unsent,
                    None => return Err(upstream(authority, e.into_error())),
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(self.lease(resp, authority, sender)),
            Err(e) => Err(upstream(authority, e.into_error())),
        }
    }

    /// An idle hyper connection to `authority` that is still open and ready.
    fn checkout(&self, authority: &Authority) -> Option<http1::SendRequest<Deferred>> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.hyper.take(authority, http1::SendRequest::is_ready)
    }

    fn put(&self, authority: &Authority, sender: http1::SendRequest<Deferred>) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.hyper
            .keep(authority, sender, http1::SendRequest::is_closed);
    }

    /// The short way: a kept-alive connection when there is one (one the upstream closed
    /// before answering is given up, and the request goes on the next), else a new one.
    async fn request_direct(
        &self,
        authority: &Authority,
        req: Request<Deferred>,
    ) -> Result<Response<PooledBody>, SendError> {
        let failed = |e: h1::ExchangeError| SendError::Exchange {
            authority: authority.clone(),
            source: e.source,
        };
        let req = h1::Outgoing::of(&req);
        while let Some(conn) = self.checkout_direct(authority) {
            match h1::exchange(conn, &req).await {
                Ok(answer) => return Ok(self.lease_direct(authority, answer)),
                Err(e) if e.before_answer => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        let conn = h1::Conn::new(self.connect_tcp(authority).await?);
        match h1::exchange(conn, &req).await {
            Ok(answer) => Ok(self.lease_direct(authority, answer)),
            Err(e) => Err(failed(e)),
        }
    }

    fn checkout_direct(&self, authority: &Authority) -> Option<h1::Conn> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.direct.take(authority, |c| !c.closed_while_idle())
    }

    fn put_direct(&self, authority: &Authority, conn: h1::Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.direct
            .keep(authority, conn, h1::Conn::closed_while_idle);
    }

    fn lease_direct(
        &self,
        authority: &Authority,
        (resp, framing, conn): (Response<()>, h1::Framing, h1::Conn),
    ) -> Response<PooledBody> {
        let direct = Direct {
            reusable: h1::reusable(&resp, framing),
            conn: Some(conn),
            framing,
            client: self.clone(),
            authority: authority.clone(),
        };
        resp.map(|()| PooledBody(Inner::Direct(direct)))
    }

    async fn connect_tcp(&self, authority: &Authority) -> Result<TcpStream, SendError> {
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
        Ok(tcp)
    }

    async fn connect(
        &self,
        authority: &Authority,
    ) -> Result<http1::SendRequest<Deferred>, SendError> {
        let tcp = self.connect_tcp(authority).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| upstream(authority, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender)
    }

    fn lease(
        &self,
        resp: Response<Incoming>,
        authority: &Authority,
        sender: http1::SendRequest<Deferred>,
    ) -> Response<PooledBody> {
        // An upgraded connection (101) belongs to the tunnel from now on.
        let lease = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| Lease {
            client: self.clone(),
            authority: authority.clone(),
            sender,
        });
        resp.map(|body| PooledBody(Inner::Hyper { body, lease }))
    }
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
}

impl Lease {
    /// The response is complete: the connection serves the next request, once hyper has
    /// finished with it (usually at once; otherwise a small task waits for it).
    fn release(self) {
        if self.sender.is_ready() {
            return self.client.put(&self.authority, self.sender);
        }
        if self.sender.is_closed() {
            return;
        }
        let Lease {
            client,
            authority,
            mut sender,
        } = self;
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                client.put(&authority, sender);
            }
        });
    }
}

/// A response body from the pool: gives its connection back when it ends. A body dropped
/// before its end takes its connection with it (closed).
pub struct PooledBody(Inner);

enum Inner {
    Hyper {
        body: Incoming,
        lease: Option<Lease>,
    },
    Direct(Direct),
}

/// A body read the short way, from its own connection.
struct Direct {
    conn: Option<h1::Conn>,
    framing: h1::Framing,
    reusable: bool,
    client: Client,
    authority: Authority,
}

impl Direct {
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.is_clean() {
                self.client.put_direct(&self.authority, conn);
            }
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(h1::poll_frame(conn, &mut self.framing, cx)) {
            Ok(Some(data)) => {
                if self.framing == h1::Framing::Empty {
                    self.release();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => {
                self.release();
                Poll::Ready(None)
            }
            Err(e) => {
                self.conn = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }
}

impl PooledBody {
    fn release(&mut self) {
        match &mut self.0 {
            Inner::Hyper { lease, .. } => {
                if let Some(lease) = lease.take() {
                    lease.release();
                }
            }
            Inner::Direct(direct) => direct.release(),
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let (body, lease) = match &mut this.0 {
            Inner::Hyper { body, lease } => (body, lease),
            Inner::Direct(direct) => return direct.poll_frame(cx),
        };
        let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
        match &frame {
            None => this.release(),
            Some(Ok(_)) if body.is_end_stream() => this.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => *lease = None,
        }
        Poll::Ready(frame.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Hyper { body, .. } => body.is_end_stream(),
            Inner::Direct(direct) => direct.framing == h1::Framing::Empty,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Hyper { body, .. } => body.size_hint(),
            Inner::Direct(direct) => h1::size_hint(direct.framing),
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304) may never be polled.
        if self.is_end_stream() {
            self.release();
        }
    }
}

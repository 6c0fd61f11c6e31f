//! Body wrappers on the forwarding path. Bodies stream frame by frame in both directions and are
//! never buffered whole; these wrappers only count, limit and time them.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::ClientBody;
use tokio::time::Sleep;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("no data for {0:?} (idle timeout)")]
    Idle(Duration),
    #[error(transparent)]
    Peer(#[from] hyper::Error),
    #[error(transparent)]
    Client(#[from] axum::Error),
}

/// An idle timer that only costs something when the body actually waits: the sleep is created
/// on the first `Pending` and re-armed only after data arrived in between.
pub(super) struct Idle {
    pub(super) timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    pub(super) progressed: bool,
}

impl Idle {
    pub(super) fn new(timeout: Duration) -> Idle {
        Idle {
            timeout,
            sleep: None,
            progressed: false,
        }
    }

    /// Call when the inner body is pending; true when it has been idle for too long.
    pub(super) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if self.progressed {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.progressed = false;
        sleep.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future;

/// Why a client's request body failed on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFailure {
    /// Not valid HTTP framing (a broken chunk, a connection closed mid-body).
    Malformed,
    /// No data for the idle timeout.
    Stalled,
}

/// Progress of a request body, shared with the forwarder: when the body last moved (so the
/// response timeout counts from then, like nginx), whether it overflowed the limit (so the
/// client gets 413 even when the upstream answered first), and whether the client's body
/// itself failed (400/408, the client's fault, not a 502).
#[derive(Debug)]
pub struct BodyWatch {
    start: Instant,
    last_ms: AtomicU64,
    /// Body bytes received from the client so far (for the metrics).
    received: AtomicU64,
    overflow: AtomicBool,
    /// 0: fine, 1: malformed, 2: stalled.
    client_failed: std::sync::atomic::AtomicU8,
    /// The client body, handed back on overflow so the forwarder can drain it: closing a
    /// socket with unread data makes the kernel send RST, and the client would never see the 413.
    leftover: Mutex<Option<ClientBody>>,
}

impl BodyWatch {
    pub fn new(start: Instant) -> Arc<BodyWatch> {
        Arc::new(BodyWatch {
            start,
            last_ms: AtomicU64::new(0),
            received: AtomicU64::new(0),
            overflow: AtomicBool::new(false),
            client_failed: std::sync::atomic::AtomicU8::new(0),
            leftover: Mutex::new(None),
        })
    }
    /// The rest of the client's body after an overflow, if the forwarder has not taken it.
    pub fn take_leftover(&self) -> Option<ClientBody> {
        self.leftover
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
    pub fn last_progress(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Relaxed)
    }
    pub fn client_failed(&self) -> Option<ClientFailure> {
        match self.client_failed.load(Ordering::Relaxed) {
            1 => Some(ClientFailure::Malformed),
            2 => Some(ClientFailure::Stalled),
            _ => None,
        }
    }
    fn fail(&self, why: ClientFailure) {
        let code = match why {
            ClientFailure::Malformed => 1,
            ClientFailure::Stalled => 2,
        };
        self.client_failed.store(code, Ordering::Relaxed);
    }
}

/// The client's request body on its way upstream: limited to `limit` bytes (for bodies whose
/// length was not declared; a declared length is checked before forwarding) and to `idle`
/// without data.
pub struct RequestBody {
    /// `None` once handed back to the watch after an overflow.
    inner: Option<ClientBody>,
    limit: u64,
    seen: u64,
    idle: Idle,
    watch: Option<Arc<BodyWatch>>,
}

impl RequestBody {
    pub fn new(
        inner: ClientBody,
        limit: u64,
        idle: Duration,
        watch: Option<Arc<BodyWatch>>,
    ) -> RequestBody {
        RequestBody {
            inner: Some(inner),
            limit,
            seen: 0,
            idle: Idle::new(idle),
            watch,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Some(w) = &this.watch {
                        let ms = w.start.elapsed().as_millis() as u64;
                        w.last_ms.store(ms, Ordering::Relaxed);
                        w.received.fetch_add(data.len() as u64, Ordering::Relaxed);
                        if this.seen > this.limit {
                            w.overflow.store(true, Ordering::Relaxed);
                            *w.leftover.lock().unwrap_or_else(|p| p.into_inner()) =
                                this.inner.take();
                        }
                    }
                    if this.seen > this.limit {
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
                    }
                }
                this.idle.progressed = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(w) = &this.watch {
                    w.fail(ClientFailure::Malformed);
                }
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.idle.expired(cx) => {
                if let Some(w) = &this.watch {
                    w.fail(ClientFailure::Stalled);
                }
                Poll::Ready(Some(Err(BodyError::Idle(this.idle.timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(ClientBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(SizeHint::default, ClientBody::size_hint)
    }
}

/// Reads and discards what is left of a refused request body (for at most 30 s, like nginx's
/// lingering close), so that the client reads the error response instead of a reset.
pub fn drain(mut body: ClientBody) {
    use http_body_util::BodyExt;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    });
}

//! Waiting for a restarting upstream. A request whose upstream refuses the connection has not
//! sent a byte of its body, so it can be sent again: the body sits in a shared slot that the
//! outgoing request only takes from when hyper first polls it (after the connection is up).
//! While the slot is still full, a connect error is safe to retry, at the route's current
//! address (it may have moved), until `upstream_wait` runs out.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::body::RequestBody;

/// The body slot shared by the attempts of one request.
/// `None` for a request without a body (most of them): nothing to share, nothing to lock.
#[derive(Clone)]
pub struct Slot(Option<Arc<Mutex<Option<RequestBody>>>>);

impl Slot {
    pub fn new(body: RequestBody) -> Slot {
        Slot(Some(Arc::new(Mutex::new(Some(body)))))
    }

    pub fn empty() -> Slot {
        Slot(None)
    }

    /// Nothing of the body was taken: the request can go again.
    pub fn untouched(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|s| s.lock().unwrap_or_else(|p| p.into_inner()).is_some())
    }

    fn take(&self) -> Option<RequestBody> {
        let slot = self.0.as_ref()?;
        slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// What the body still waiting in the slot says of itself (`end`: it is over).
    fn waiting<T>(&self, end: T, of: impl FnOnce(&RequestBody) -> T) -> T {
        match &self.0 {
            None => end,
            Some(slot) => match slot.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                Some(body) => of(body),
                None => end,
            },
        }
    }

    pub fn body(&self) -> Deferred {
        Deferred {
            slot: self.clone(),
            body: None,
        }
    }
}

/// The body of one attempt: empty-handed until hyper polls it, then the request's body.
pub struct Deferred {
    slot: Slot,
    body: Option<RequestBody>,
}

impl Body for Deferred {
    type Data = Bytes;
    type Error = <RequestBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.body.is_none() {
            this.body = this.slot.take();
        }
        match this.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(b) => b.is_end_stream(),
            None => self.slot.waiting(true, Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => self.slot.waiting(SizeHint::with_exact(0), Body::size_hint),
        }
    }
}

/// Pause before attempt `n` (1, 2, ...): 50 ms doubling to 1 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << n.min(5))).min(Duration::from_secs(1))
}

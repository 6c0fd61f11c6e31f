//! The upstream's response body on its way to the client, with the idle timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::body::{BodyError, BoxError, Idle};
use super::client::PooledBody;

/// An upstream response body on its way to the client, ended with an error (which aborts the
/// client's stream) when the upstream sends nothing for `idle`. There is no total deadline:
/// an SSE stream may run for an hour as long as it keeps sending.
pub struct ResponseBody {
    inner: PooledBody,
    idle: Idle,
}

impl ResponseBody {
    pub fn new(inner: PooledBody, idle: Duration) -> ResponseBody {
        ResponseBody {
            inner,
            idle: Idle::new(idle),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.progressed = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.idle.expired(cx) => {
                Poll::Ready(Some(Err(Box::new(BodyError::Idle(this.idle.timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

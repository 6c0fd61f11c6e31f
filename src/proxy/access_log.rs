//! The access log: one line per request, written when the response body ends (or the client
//! goes away), so bytes and duration are the real ones, also for streams.
//! Lines go through `tracing` with target `access`: plain or JSON like every other log line,
//! and `RUST_LOG=access=off` silences them.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use http_body::{Body, Frame, SizeHint};

/// What is known of a request when its response starts; travels in the response extensions
/// from the handler to the outermost body wrapper.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub start: Instant,
    pub peer: IpAddr,
    pub method: Method,
    /// The path only: query strings can carry tokens and stay out of logs.
    pub path: String,
    pub status: u16,
    /// The Dify service that answered, or `-` when the proxy answered itself.
    pub upstream: &'static str,
}

impl AccessEntry {
    fn write(&self, bytes: u64, complete: bool) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "access",
            client = %self.peer,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes,
            ms = format_args!("{ms:.1}"),
            upstream = self.upstream,
            complete,
        );
    }
}

pin_project_lite::pin_project! {
    /// Counts the bytes of a response body and writes the access line when it is dropped.
    pub struct Logged<B: Body> {
        #[pin]
        inner: B,
        bytes: u64,
        done: bool,
        entry: Option<AccessEntry>,
    }

    impl<B: Body> PinnedDrop for Logged<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(entry) = this.entry.take() {
                let complete = *this.done || this.inner.is_end_stream();
                entry.write(*this.bytes, complete);
            }
        }
    }
}

impl<B: Body> Logged<B> {
    pub fn new(inner: B, entry: Option<AccessEntry>) -> Logged<B> {
        Logged {
            inner,
            bytes: 0,
            done: false,
            entry,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for Logged<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => *this.done = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

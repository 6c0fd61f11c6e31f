//! Closing connections that do nothing. A connection counts as busy while one of its requests
//! is in flight (from the moment the service is called until its response body is dropped,
//! so a long upload, SSE stream or slow answer is never idle); otherwise it is idle since its
//! last request ended, or since it was accepted. Idle longer than `first_byte` before any
//! request (a socket that never sends a byte, also after a completed TLS handshake or an h2
//! preface-less ALPN) or longer than `keep_alive` after one, it is closed: without this,
//! 1100 silent sockets from one client took HTTPS, HTTP-01 and the control socket down.
//! Request events are counted rather than bytes: h2 PING answers would otherwise keep an
//! idle connection alive forever.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone)]
pub struct Activity(Arc<Inner>);

struct Inner {
    base: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `base` when the last request ended.
    last: AtomicU64,
    served: AtomicBool,
}

/// One request in flight; dropping it ends the request.
pub struct Busy(Arc<Inner>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = self.0.base.elapsed().as_millis() as u64;
        self.0.last.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity(Arc::new(Inner {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            served: AtomicBool::new(false),
        }))
    }

    pub fn begin(&self) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        self.0.served.store(true, Ordering::Relaxed);
        Busy(self.0.clone())
    }

    /// Resolves once the connection has been idle too long.
    pub async fn idle(&self, first_byte: Duration, keep_alive: Duration) {
        loop {
            let limit = if self.0.served.load(Ordering::Relaxed) {
                keep_alive
            } else {
                first_byte
            };
            if self.0.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            let since = self.0.base + Duration::from_millis(self.0.last.load(Ordering::Relaxed));
            let idle = since.elapsed();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

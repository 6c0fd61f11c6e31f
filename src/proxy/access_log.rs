//! The access log: one line per request, written when the response body ends (or the client
//! goes away), so bytes and duration are the real ones, also for streams.
//!
//! Lines look like the rest of the log (plain or JSON, target `access`, on stderr) and obey
//! `RUST_LOG` (`access=off` silences them), but are formatted here by hand: going through
//! `tracing`'s formatter cost about a fifth of the proxy's throughput in `make bench-proxy`.
//!
//! Like nginx's `access_log ... buffer=64k flush=1s`, each worker thread collects its lines and
//! writes them when 64 KiB are waiting, every second, and when the worker ends: one write per
//! many requests instead of one per request. A thread without the flush timer writes at once.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::Method;
use http_body::{Body, Frame, SizeHint};

use crate::config::LogFormat;

/// What is known of a request when its response starts; travels in the response extensions
/// from the handler to the outermost body wrapper.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub start: Instant,
    /// The client's address as text (formatted once per connection).
    pub peer: http::HeaderValue,
    pub method: Method,
    /// Only its path is logged: query strings can carry tokens and stay out of logs.
    pub target: Option<PathAndQuery>,
    pub status: u16,
    /// The Dify service that answered, or `-` when the proxy answered itself.
    pub upstream: &'static str,
    pub format: LogFormat,
    pub http2: bool,
    /// The request body's progress (bytes received), when it had one.
    pub body: Option<std::sync::Arc<super::body::BodyWatch>>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

thread_local! {
    /// Per worker thread: the line being built, and the formatted date of the last second seen.
    static LINE: RefCell<(String, u64, String)> = RefCell::new((String::with_capacity(256), u64::MAX, String::new()));
}

/// Lines not written yet, per thread.
struct Pending {
    buf: Vec<u8>,
    /// A flush timer runs on this thread (`flush_periodically`).
    timed: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let _ = std::io::stderr().write_all(&self.buf);
    }
}

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { buf: Vec::new(), timed: false }) };
}

const BUFFER: usize = 64 << 10;
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn emit(line: &str) {
    let _ = PENDING.try_with(|p| {
        let mut p = p.borrow_mut();
        p.buf.extend_from_slice(line.as_bytes());
        if !p.timed || p.buf.len() >= BUFFER {
            // stderr's lock is held for the whole write: lines of two workers never mix.
            let _ = std::io::stderr().write_all(&p.buf);
            p.buf.clear();
        }
    });
}

fn flush_now() {
    let _ = PENDING.try_with(|p| {
        let mut p = p.borrow_mut();
        if !p.buf.is_empty() {
            let _ = std::io::stderr().write_all(&p.buf);
            p.buf.clear();
        }
    });
}

/// Run on a worker's own (current-thread) runtime: buffers that thread's lines, writes them
/// every second and at `shutdown`; after it, lines are written at once again.
pub async fn flush_periodically(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = PENDING.try_with(|p| p.borrow_mut().timed = true);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => flush_now(),
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
    let _ = PENDING.try_with(|p| p.borrow_mut().timed = false);
    flush_now();
}

impl AccessEntry {
    /// The entry of a request from `peer`, as it arrives (status and upstream come later).
    pub fn begin<B>(
        req: &http::Request<B>,
        peer: &http::HeaderValue,
        format: LogFormat,
        metrics: &std::sync::Arc<crate::metrics::Metrics>,
    ) -> AccessEntry {
        AccessEntry {
            start: Instant::now(),
            peer: peer.clone(),
            method: req.method().clone(),
            target: req.uri().path_and_query().cloned(),
            status: 0,
            upstream: "-",
            format,
            http2: req.version() == http::Version::HTTP_2,
            body: None,
            metrics: metrics.clone(),
        }
    }

    /// The request is over: counted, then logged.
    fn done(&self, bytes: u64, complete: bool) {
        let elapsed = self.start.elapsed();
        self.metrics.request(&crate::metrics::Done {
            service: self.upstream,
            status: self.status,
            http2: self.http2,
            elapsed,
            bytes_in: self.body.as_ref().map_or(0, |b| b.received()),
            bytes_out: bytes,
        });
        self.write(bytes, complete, elapsed);
    }

    fn write(&self, bytes: u64, complete: bool, elapsed: std::time::Duration) {
        if !tracing::enabled!(target: "access", tracing::Level::INFO) {
            return;
        }
        // Tenths of a millisecond, rounded, in integers (float formatting is slow).
        let tenths = (elapsed.as_micros() + 50) / 100;
        let path = self.target.as_ref().map_or("/", PathAndQuery::path);
        // The peer text is an IP address (ASCII), set by `ConnInfo::new`.
        let peer = self.peer.to_str().unwrap_or("-");
        LINE.with(|cell| {
            let (line, cached_sec, cached_date) = &mut *cell.borrow_mut();
            line.clear();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            if now.as_secs() != *cached_sec {
                *cached_sec = now.as_secs();
                *cached_date = crate::timefmt::rfc3339_seconds(now.as_secs());
            }
            let mut num = itoa::Buffer::new();
            let micros = now.subsec_micros();
            let json = self.format == LogFormat::Json;
            line.push_str(if json { r#"{"timestamp":""# } else { "" });
            line.push_str(cached_date);
            line.push('.');
            let digits = num.format(micros);
            line.push_str(&"000000"[digits.len().min(6)..]);
            line.push_str(digits);
            let fields = if json { &JSON } else { &PLAIN };
            line.push_str(fields[0]);
            line.push_str(peer);
            line.push_str(fields[1]);
            line.push_str(self.method.as_str());
            line.push_str(fields[2]);
            if json {
                json_escape(line, path);
            } else {
                line.push_str(path);
            }
            line.push_str(fields[3]);
            line.push_str(num.format(self.status));
            line.push_str(fields[4]);
            line.push_str(num.format(bytes));
            line.push_str(fields[5]);
            line.push_str(num.format(tenths / 10));
            line.push('.');
            line.push_str(num.format(tenths % 10));
            line.push_str(fields[6]);
            line.push_str(self.upstream);
            line.push_str(fields[7]);
            line.push_str(if complete { "true" } else { "false" });
            line.push_str(fields[8]);
            emit(line);
        });
    }
}

/// The text between the fields of an access line, for each format (timestamp, client, method,
/// path, status, bytes, ms, upstream, complete).
const PLAIN: [&str; 9] = [
    "Z  INFO access: client=",
    " method=",
    " path=",
    " status=",
    " bytes=",
    " ms=",
    " upstream=",
    " complete=",
    "\n",
];
const JSON: [&str; 9] = [
    r#"Z","level":"INFO","target":"access","client":""#,
    r#"","method":""#,
    r#"","path":""#,
    r#"","status":"#,
    r#","bytes":"#,
    r#","ms":"#,
    r#","upstream":""#,
    r#"","complete":"#,
    "}\n",
];

fn json_escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

pin_project_lite::pin_project! {
    /// Counts the bytes of a response body and writes the access line when it is dropped;
    /// holds the connection's `Busy` mark until then (the request is in flight while its
    /// response streams).
    pub struct Logged<B: Body> {
        #[pin]
        inner: B,
        bytes: u64,
        done: bool,
        // An event stream, counted as open while it lasts.
        sse: bool,
        entry: Option<AccessEntry>,
        busy: Option<super::idle::Busy>,
    }

    impl<B: Body> PinnedDrop for Logged<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(entry) = this.entry.take() {
                let complete = *this.done || this.inner.is_end_stream();
                if *this.sse {
                    entry.metrics.sse_streams.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
                entry.done(*this.bytes, complete);
            }
        }
    }
}

impl<B: Body> Logged<B> {
    /// `sse`: the response is an event stream.
    pub fn new(
        inner: B,
        entry: Option<AccessEntry>,
        busy: Option<super::idle::Busy>,
        sse: bool,
    ) -> Logged<B> {
        let sse = sse && entry.is_some();
        if let Some(e) = entry.as_ref().filter(|_| sse) {
            e.metrics
                .sse_streams
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Logged {
            inner,
            bytes: 0,
            done: false,
            sse,
            entry,
            busy,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_escape(&mut out, "/a\"b\\c\n");
        assert_eq!(out, r#"/a\"b\\c\u000a"#);
    }
}

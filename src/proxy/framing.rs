//! Request-smuggling guard for HTTP/1 connections.
//!
//! hyper resolves a request carrying both `Content-Length` and `Transfer-Encoding` the lenient
//! way RFC 9112 allows (it drops Content-Length, reads chunked, closes afterwards) and leaves no
//! trace of it in the request. difyctl answers such requests with 400, as nginx does, so this
//! wrapper watches the raw bytes of the connection: it follows message framing (heads,
//! Content-Length bodies, chunked bodies) and raises a per-connection flag when a head carries
//! both headers, or Content-Length twice (nginx refuses both). The flag names the message (the
//! n-th head on the connection), so a valid request pipelined before a bad one is still
//! served; the forwarder asks for each request in turn. An `Upgrade:` header does not stop the
//! scan (the request may not be upgraded); an upgrade that happens does. The scan only looks at
//! head lines and chunk-size lines; body bytes are skipped by count.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest line kept for inspection; longer lines are only searched for their end.
const LINE_KEEP: usize = 64;

/// What the scanner found, shared with the forwarder of the same connection.
#[derive(Debug)]
pub struct FramingFlags {
    /// Index (0-based, in arrival order) of the first head with conflicting framing headers.
    first_conflict: AtomicU64,
    /// Requests the forwarder has handled so far.
    served: AtomicU64,
    /// The connection was upgraded: what follows is not HTTP.
    upgraded: AtomicBool,
}

impl FramingFlags {
    pub fn new() -> Arc<FramingFlags> {
        Arc::new(FramingFlags {
            first_conflict: AtomicU64::new(u64::MAX),
            served: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
        })
    }

    /// Called once per request, in order: whether this one had conflicting framing headers.
    pub fn next_request_conflicts(&self) -> bool {
        let index = self.served.fetch_add(1, Ordering::Relaxed);
        self.first_conflict.load(Ordering::Relaxed) <= index
    }

    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }
}

/// What the header lines of one message head said so far.
#[derive(Debug, Default)]
struct Head {
    /// The request line has been seen.
    started: bool,
    cl: Option<u64>,
    /// Content-Length appeared more than once.
    cl_twice: bool,
    te: bool,
    chunked: bool,
}

#[derive(Debug)]
enum State {
    /// Reading a message head.
    Head(Head),
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailer,
    /// Not HTTP/1 framing any more (upgrade, HTTP/2 preface): stop looking.
    Done,
}

#[derive(Debug)]
pub struct FramingScanner {
    state: State,
    line: Vec<u8>,
    /// Heads completed so far.
    heads: u64,
    flags: Arc<FramingFlags>,
}

fn head() -> State {
    State::Head(Head::default())
}

impl FramingScanner {
    pub fn new(flags: Arc<FramingFlags>) -> FramingScanner {
        FramingScanner {
            state: head(),
            line: Vec::with_capacity(LINE_KEEP),
            heads: 0,
            flags,
        }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        if self.flags.upgraded.load(Ordering::Relaxed) {
            self.state = State::Done;
        }
        while !data.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Fixed(n) | State::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = match self.state {
                            State::ChunkData(_) => State::ChunkDataEnd,
                            _ => head(),
                        };
                    }
                }
                _ => {
                    // Line-oriented states: collect up to the next LF.
                    let (part, complete) = match data.iter().position(|b| *b == b'\n') {
                        Some(i) => (&data[..i], Some(i + 1)),
                        None => (data, None),
                    };
                    if let (Some(used), true) = (complete, self.line.is_empty()) {
                        // The whole line is in this read (the usual case): no copy.
                        data = &data[used..];
                        self.line_done(trim_cr(&part[..part.len().min(LINE_KEEP)]));
                        continue;
                    }
                    let room = LINE_KEEP.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&part[..part.len().min(room)]);
                    match complete {
                        Some(used) => {
                            data = &data[used..];
                            let line = std::mem::take(&mut self.line);
                            self.line_done(trim_cr(&line));
                            self.line = line;
                            self.line.clear();
                        }
                        None => return,
                    }
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::Head(h) if !h.started && line.is_empty() => head(),
            State::Head(h) if !h.started && line.starts_with(b"PRI * HTTP/2") => State::Done,
            State::Head(h) if !h.started => State::Head(Head { started: true, ..h }),
            State::Head(h) if line.is_empty() => {
                if (h.cl.is_some() && h.te) || h.cl_twice {
                    self.flags
                        .first_conflict
                        .fetch_min(self.heads, Ordering::Relaxed);
                }
                self.heads += 1;
                if h.chunked {
                    State::ChunkSize
                } else {
                    match h.cl {
                        Some(n) if n > 0 => State::Fixed(n),
                        _ => head(),
                    }
                }
            }
            State::Head(mut h) => {
                if let Some(value) = header_value(line, b"content-length") {
                    h.cl_twice |= h.cl.is_some();
                    h.cl = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .or(h.cl)
                        .or(Some(0));
                } else if let Some(value) = header_value(line, b"transfer-encoding") {
                    h.te = true;
                    h.chunked = value
                        .to_ascii_lowercase()
                        .trim_ascii_end()
                        .ends_with(b"chunked");
                }
                State::Head(h)
            }
            State::ChunkSize => {
                let digits = line.split(|b| *b == b';').next().unwrap_or_default();
                match std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| u64::from_str_radix(d.trim(), 16).ok())
                {
                    Some(0) => State::Trailer,
                    Some(n) => State::ChunkData(n),
                    // hyper rejects the message; the connection ends.
                    None => State::Done,
                }
            }
            State::ChunkDataEnd => State::ChunkSize,
            State::Trailer if line.is_empty() => head(),
            State::Trailer => State::Trailer,
            other => other,
        };
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The value of `line` when it is the header `name` (case-insensitive).
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|b| *b == b':')?;
    line[..colon]
        .eq_ignore_ascii_case(name)
        .then(|| line[colon + 1..].trim_ascii())
}

pin_project_lite::pin_project! {
    /// An IO stream whose incoming bytes pass through a `FramingScanner`.
    pub struct Guarded<IO> {
        #[pin]
        io: IO,
        scanner: FramingScanner,
    }
}

impl<IO> Guarded<IO> {
    pub fn new(io: IO, flags: Arc<FramingFlags>) -> Guarded<IO> {
        Guarded {
            io,
            scanner: FramingScanner::new(flags),
        }
    }
}

impl<IO: AsyncRead> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.scanner.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<IO: AsyncWrite> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every possible point; the index of the first flagged message.
    fn first_flagged(input: &[u8]) -> Option<u64> {
        let mut any = None;
        for split in 0..=input.len() {
            let flags = FramingFlags::new();
            let mut s = FramingScanner::new(flags.clone());
            s.feed(&input[..split]);
            s.feed(&input[split..]);
            let got = Some(flags.first_conflict.load(Ordering::Relaxed)).filter(|i| *i != u64::MAX);
            assert!(
                any.is_none_or(|a| a == got),
                "split at {split} changed the verdict"
            );
            any = Some(got);
        }
        any.unwrap()
    }

    fn flagged(input: &[u8]) -> bool {
        first_flagged(input).is_some()
    }

    #[test]
    fn conflicting_headers_are_flagged() {
        assert!(flagged(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
        assert!(flagged(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn keep_alive_sequences_are_followed_without_false_alarms() {
        // A body that looks like a smuggled head must not be read as one.
        let body = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(
            b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        stream.extend_from_slice(format!("{:x};ext=1\r\n", body.len()).as_bytes());
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        stream.extend_from_slice(b"\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!flagged(&stream));
        // ...and a real conflict after all that is still seen.
        stream.extend_from_slice(
            b"POST /d HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert!(flagged(&stream));
    }

    /// Regression (hardening #9): an `Upgrade:` header stopped the scan, so a smuggled
    /// request after an upgrade that never happened went unseen; a valid request pipelined
    /// before a bad one got the bad one's 400; the same Content-Length twice passed.
    #[test]
    fn framing_guard_follows_unupgraded_requests_and_names_the_bad_message() {
        let mut ws =
            b"GET /v1/x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec();
        ws.extend_from_slice(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(
            first_flagged(&ws),
            Some(1),
            "the second message is the bad one"
        );
        assert_eq!(
            first_flagged(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
            Some(0)
        );
        // After a real upgrade nothing is HTTP any more.
        let flags = FramingFlags::new();
        let mut s = FramingScanner::new(flags.clone());
        s.feed(b"GET /socket.io/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        flags.mark_upgraded();
        s.feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(!flags.next_request_conflicts());
        assert!(!flagged(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    }
}

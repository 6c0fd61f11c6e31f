//! The upstream side of the common request, spoken directly: a GET, HEAD or OPTIONS without a
//! body (most of Dify's traffic: pages, assets, app lists, and the SSE streams of chat
//! messages are POSTs, which keep going through hyper). The request head is written in one
//! call, the response head parsed with httparse (as hyper does), and the body read from the
//! socket inside the request's own task: no connection task, no channel to it and back. That
//! hand-over and hyper's client state machines were about a fifth of the instructions of a
//! proxied request (BENCHMARKS.md).
//!
//! The framing rules are RFC 9112's (section 6.3): no body for HEAD, 1xx, 204 and 304; a
//! chunked `Transfer-Encoding` is decoded; another coding, or no length at all, runs to the
//! close and the connection is not reused; `Content-Length` values that disagree are an error,
//! never a guess. A connection goes back to the pool only after a complete message with
//! nothing after it, on HTTP/1.1 without `Connection: close`.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::SizeHint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most header lines a response may carry (hyper's default is 100).
const MAX_HEADERS: usize = 100;
/// Largest response head read (hyper's default buffer limit is about 400 KB).
const MAX_HEAD: usize = 256 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
const READ_SIZE: usize = 16 * 1024;
/// Most 1xx responses (100 Continue, 103 Early Hints) taken before the answer.
const MAX_INFORMATIONAL: usize = 16;

/// Requests this codec takes: bodiless and safe to send again on a fresh connection when a
/// kept-alive one turns out to have been closed by the upstream.
pub fn eligible<B: http_body::Body>(req: &Request<B>) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req.body().is_end_stream()
        && !req.headers().contains_key(http::header::UPGRADE)
}

/// An upstream connection with the bytes read past the last message (none between messages).
pub struct Conn {
    pub tcp: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub fn new(tcp: TcpStream) -> Conn {
        Conn {
            tcp,
            buf: BytesMut::with_capacity(READ_SIZE),
        }
    }

    /// Nothing is left over from the last message: the next response starts clean.
    pub fn is_clean(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether the upstream has closed this idle connection (or sent something unasked):
    /// without a syscall, from what the reactor already knows.
    pub fn closed_while_idle(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.tcp.poll_read_ready(&mut cx).is_ready()
    }
}

/// Why an exchange failed; `before_answer` when not one byte of a response came back (on a
/// reused connection: closed by the upstream meanwhile, so the request may go again).
#[derive(Debug)]
pub struct ExchangeError {
    pub source: io::Error,
    pub before_answer: bool,
}

/// A request head as it goes out (see `encode`), and whether it is a HEAD.
pub struct Outgoing {
    head: Vec<u8>,
    head_only: bool,
}

impl Outgoing {
    pub fn of<B>(req: &Request<B>) -> Outgoing {
        Outgoing {
            head: encode(req),
            head_only: req.method() == Method::HEAD,
        }
    }
}

/// Sends the request and reads the response head.
pub async fn exchange(
    mut conn: Conn,
    req: &Outgoing,
) -> Result<(Response<()>, Framing, Conn), ExchangeError> {
    let failed = |source, before_answer| ExchangeError {
        source,
        before_answer,
    };
    conn.tcp
        .write_all(&req.head)
        .await
        .map_err(|e| failed(e, true))?;
    let head_only = req.head_only;
    // An upstream may send a few 1xx heads first; not an endless stream of them.
    for _ in 0..MAX_INFORMATIONAL {
        let (resp, framing) = loop {
            if let Some(head) = take_head(&mut conn.buf, head_only).map_err(|e| failed(e, false))? {
                break head;
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(failed(invalid("response head too large"), false));
            }
            conn.buf.reserve(READ_SIZE);
            let n = conn
                .tcp
                .read_buf(&mut conn.buf)
                .await
                .map_err(|e| failed(e, conn.buf.is_empty()))?;
            if n == 0 {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed");
                return Err(failed(eof, conn.buf.is_empty()));
            }
        };
        // 100 Continue, 103 Early Hints: the answer follows.
        if resp.status().is_informational() {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                return Err(failed(
                    invalid("101 to a request that asked no upgrade"),
                    false,
                ));
            }
            continue;
        }
        return Ok((resp, framing, conn));
    }
    Err(failed(invalid("too many 1xx responses"), false))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The request line and headers, in one buffer.
fn encode<B>(req: &Request<B>) -> Vec<u8> {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut out = Vec::with_capacity(64 + target.len() + 64 * req.headers().len());
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The response head at the start of `buf`, if it is all there: taken off the buffer and
/// decoded, the header values being slices of it rather than copies. Parsing and decoding are
/// one step, so the table of where each header is stays on this function's stack.
fn take_head(buf: &mut BytesMut, head_only: bool) -> io::Result<Option<(Response<()>, Framing)>> {
    // Left uninitialised until httparse fills them: no 3 KB cleared for every response.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    };
    let base = buf.as_ptr() as usize;
    // Invariant: every name and value is a slice of `buf`, at most MAX_HEAD (< 4 GiB) long.
    let at = |s: &[u8]| [(s.as_ptr() as usize - base) as u32, s.len() as u32];
    let mut spans = [[0u32; 4]; MAX_HEADERS];
    for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
        let ([ns, nl], [vs, vl]) = (at(h.name.as_bytes()), at(h.value));
        *span = [ns, nl, vs, vl];
    }
    let line = StatusLine {
        code: resp.code.unwrap_or(0),
        version: resp.version.unwrap_or(0),
    };
    let count = resp.headers.len();
    let head = buf.split_to(len).freeze();
    decode(head, line, &spans[..count], head_only).map(Some)
}

/// What the status line said.
#[derive(Clone, Copy)]
struct StatusLine {
    code: u16,
    version: u8,
}

/// How the body of a response is delimited, and what remains of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Fixed(u64),
    Chunked(Chunk),
    /// Until the upstream closes: the connection cannot be reused.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// The response of a parsed head (the values are slices of `head`, not copies) and its
/// body's framing.
fn decode(
    head: Bytes,
    line: StatusLine,
    spans: &[[u32; 4]],
    head_only: bool,
) -> io::Result<(Response<()>, Framing)> {
    let status = StatusCode::from_u16(line.code).map_err(|_| invalid("invalid status code"))?;
    let version = match line.version {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Room for the security headers added on the way out (`headers::add_security_headers`),
    // so the map is not grown again for them.
    let mut map = HeaderMap::with_capacity(spans.len() + 3);
    for [ns, nl, vs, vl] in spans.iter().map(|s| s.map(|x| x as usize)) {
        let name = HeaderName::from_bytes(&head[ns..ns + nl])
            .map_err(|_| invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..vs + vl))
            .map_err(|_| invalid("invalid header value"))?;
        map.append(name, value);
    }
    let framing = framing(&mut map, status, head_only)?;
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = map;
    Ok((resp, framing))
}

/// The body's framing. A `Content-Length` beside `Transfer-Encoding` is removed: RFC 9112 6.3
/// says the latter wins, and passed on, the former would frame the body to the client wrongly.
fn framing(headers: &mut HeaderMap, status: StatusCode, head_only: bool) -> io::Result<Framing> {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|c| !c.is_empty());
        let chunked = last.is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
        headers.remove(CONTENT_LENGTH);
        return Ok(if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.to_str().unwrap_or("x").split(',') {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| invalid("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("Content-Length values disagree"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Fixed(n),
        None => Framing::Close,
    })
}

/// Whether the connection may serve another request once this response's body is read.
pub fn reusable(resp: &Response<()>, framing: Framing) -> bool {
    resp.version() == Version::HTTP_11
        && framing != Framing::Close
        && !resp
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            })
}

/// Reads the next frame of a body framed by `framing` from `conn`; `Ok(None)` at its end
/// (`framing` is then `Empty`).
pub fn poll_frame(
    conn: &mut Conn,
    framing: &mut Framing,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Option<Bytes>>> {
    loop {
        match *framing {
            Framing::Empty => return Poll::Ready(Ok(None)),
            Framing::Fixed(left) => {
                if conn.buf.is_empty() && ready!(fill(conn, cx))? == 0 {
                    return Poll::Ready(Err(early_end()));
                }
                let take = left.min(conn.buf.len() as u64);
                let left = left - take;
                *framing = if left == 0 {
                    Framing::Empty
                } else {
                    Framing::Fixed(left)
                };
                // Invariant: `take` is at most `buf.len()`, a usize.
                return Poll::Ready(Ok(Some(conn.buf.split_to(take as usize).freeze())));
            }
            Framing::Close => {
                if conn.buf.is_empty() && ready!(fill(conn, cx))? == 0 {
                    *framing = Framing::Empty;
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Ok(Some(conn.buf.split().freeze())));
            }
            Framing::Chunked(state) => match ready!(poll_chunked(conn, state, cx))? {
                (next, Some(data)) => {
                    *framing = next;
                    return Poll::Ready(Ok(Some(data)));
                }
                (next, None) => *framing = next,
            },
        }
    }
}

/// One step of the chunked decoder: the next state, and data when there is some.
fn poll_chunked(
    conn: &mut Conn,
    state: Chunk,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(Framing, Option<Bytes>)>> {
    match state {
        Chunk::Data(left) => {
            if conn.buf.is_empty() && ready!(fill(conn, cx))? == 0 {
                return Poll::Ready(Err(early_end()));
            }
            let take = left.min(conn.buf.len() as u64);
            let next = match left - take {
                0 => Chunk::DataEnd,
                n => Chunk::Data(n),
            };
            // Invariant: `take` is at most `buf.len()`, a usize.
            let data = conn.buf.split_to(take as usize).freeze();
            Poll::Ready(Ok((Framing::Chunked(next), Some(data))))
        }
        Chunk::Size | Chunk::DataEnd | Chunk::Trailers => {
            let line = ready!(poll_line(conn, cx))?;
            let next = match state {
                Chunk::DataEnd if line.is_empty() => Framing::Chunked(Chunk::Size),
                Chunk::DataEnd => return Poll::Ready(Err(invalid("chunk not ended by CRLF"))),
                Chunk::Trailers if line.is_empty() => Framing::Empty,
                Chunk::Trailers => Framing::Chunked(Chunk::Trailers),
                _ => match chunk_size(&line)? {
                    0 => Framing::Chunked(Chunk::Trailers),
                    n => Framing::Chunked(Chunk::Data(n)),
                },
            };
            Poll::Ready(Ok((next, None)))
        }
    }
}

/// `1a;name=value` -> 26.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default();
    std::str::from_utf8(digits)
        .ok()
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= 16)
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .ok_or_else(|| invalid("invalid chunk size"))
}

/// The next line (without CRLF or LF), taken from the buffer.
fn poll_line(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<BytesMut>> {
    loop {
        if let Some(i) = conn.buf.iter().position(|b| *b == b'\n') {
            let mut line = conn.buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            return Poll::Ready(Ok(line));
        }
        if conn.buf.len() > MAX_LINE {
            return Poll::Ready(Err(invalid("chunk line too long")));
        }
        if ready!(fill(conn, cx))? == 0 {
            return Poll::Ready(Err(early_end()));
        }
    }
}

fn early_end() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "upstream closed before the end of the body",
    )
}

/// Reads what the socket has into the buffer: the number of bytes, 0 at its end.
///
/// Through `AsyncRead::poll_read`, which forgets the socket's readiness after a short read:
/// so an idle connection in the pool is only "ready" again when the upstream sends or closes
/// (see `Conn::closed_while_idle`).
fn fill(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    use tokio::io::{AsyncRead, ReadBuf};
    conn.buf.reserve(READ_SIZE);
    let mut spare = ReadBuf::uninit(conn.buf.spare_capacity_mut());
    ready!(std::pin::Pin::new(&mut conn.tcp).poll_read(cx, &mut spare))?;
    let n = spare.filled().len();
    // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity (ReadBuf
    // never reports more filled than it initialised), so they may join the buffer.
    unsafe { conn.buf.set_len(conn.buf.len() + n) };
    Poll::Ready(Ok(n))
}

/// What a body of this framing says of its size.
pub fn size_hint(framing: Framing) -> SizeHint {
    match framing {
        Framing::Empty => SizeHint::with_exact(0),
        Framing::Fixed(n) => SizeHint::with_exact(n),
        _ => SizeHint::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_head(text: &str, head_only: bool) -> io::Result<(Response<()>, Framing)> {
        let mut buf = BytesMut::from(text);
        let head = take_head(&mut buf, head_only)?.expect("a complete head");
        assert!(buf.is_empty(), "the head is taken off the buffer");
        Ok(head)
    }

    fn head(text: &str, head_only: bool) -> (Response<()>, Framing) {
        try_head(text, head_only).unwrap()
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (_, f) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false);
        assert_eq!(f, Framing::Fixed(5));
        let (_, f) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(f, Framing::Empty);
        let (_, f) = head("HTTP/1.1 204 No Content\r\n\r\n", false);
        assert_eq!(f, Framing::Empty);
        let (_, f) = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert_eq!(f, Framing::Chunked(Chunk::Size));
        let (r, _) = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert!(
            !r.headers().contains_key("content-length"),
            "TE wins over CL"
        );
        let (r, f) = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false);
        assert_eq!(f, Framing::Close);
        assert!(!reusable(&r, f));
        let (r, f) = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!reusable(&r, f));
        let (r, f) = head(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n",
            false,
        );
        assert!(!reusable(&r, f));
        let (r, f) = head("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", false);
        assert!(reusable(&r, f));
        let bad = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(try_head(bad, false).is_err());
    }

    #[test]
    fn header_values_are_kept_as_sent() {
        let (r, _) = head(
            "HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Y:  z \r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert_eq!(r.status(), 201);
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(r.headers()["x-y"], "z");
    }

    #[test]
    fn chunk_sizes_parse_with_extensions_and_refuse_junk() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"1A;name=value").unwrap(), 26);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"zz").is_err());
        assert!(chunk_size(b"11111111111111111").is_err());
    }

    #[test]
    fn the_request_head_is_written_as_built() {
        let req = Request::builder()
            .method("GET")
            .uri("/console/api/apps?page=1")
            .header("host", "dify.example.com")
            .header("x-forwarded-for", "203.0.113.9")
            .body(())
            .unwrap();
        assert_eq!(
            String::from_utf8(encode(&req)).unwrap(),
            "GET /console/api/apps?page=1 HTTP/1.1\r\nhost: dify.example.com\r\nx-forwarded-for: 203.0.113.9\r\n\r\n"
        );
    }
}

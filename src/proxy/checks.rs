//! What a request must pass before it is routed: no conflicting framing headers (seen on the
//! raw bytes, `framing.rs`), a head within `max_header_size`, exactly one valid Host. And,
//! once routed, a declared body within `max_body`.

use std::str::FromStr;

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Request, Version};

use super::conn::ConnInfo;
use super::failure::Failure;

/// The host the client asked for (a valid authority, visible ASCII), or why the request is
/// refused.
pub fn check<B>(
    req: &Request<B>,
    conn: &ConnInfo,
    max_header_size: usize,
) -> Result<HeaderValue, Failure> {
    if conn
        .framing
        .as_ref()
        .is_some_and(|f| f.next_request_conflicts())
    {
        return Err(Failure::BadRequest(
            "conflicting framing headers (Content-Length with Transfer-Encoding, or twice) are refused\n",
        ));
    }
    if super::headers::oversized(req, max_header_size) {
        return Err(Failure::HeadersTooLarge);
    }
    // RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, and for any with two (as
    // nginx answers).
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if req.version() == Version::HTTP_11 && hosts == 0 {
        return Err(Failure::BadRequest(
            "HTTP/1.1 request without Host header\n",
        ));
    }
    if hosts > 1 {
        return Err(Failure::BadRequest("more than one Host header\n"));
    }
    request_host(req).ok_or(Failure::BadRequest("missing or invalid Host header\n"))
}

/// The Host header, or the HTTP/2 `:authority`. The header's value is shared, not copied.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    let host = match req.headers().get(header::HOST) {
        Some(v) => v.clone(),
        None => HeaderValue::from_str(req.uri().authority()?.as_str()).ok()?,
    };
    Authority::from_str(host.to_str().ok()?).ok()?;
    Some(host)
}

/// The body's declared length is above `max_body` (a chunked one is counted as it arrives).
pub fn declared_too_large<B>(req: &Request<B>, max_body: u64) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > max_body)
}

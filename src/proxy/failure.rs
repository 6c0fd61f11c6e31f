//! Every way a proxied request can fail, and the one place each becomes a response: the
//! stages of the request path (`checks`, `route`, `attempt`) return a `Failure`, and only
//! `Failure::into_response` decides its status and page.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ClientFailure;
use super::pages::{gateway_error, gateway_error_because, plain};
use super::Body;

#[derive(Debug)]
pub enum Failure {
    /// A malformed request (framing, Host, target): 400 with the reason.
    BadRequest(&'static str),
    /// The request head is larger than `max_header_size`: 431.
    HeadersTooLarge,
    /// The body is (or turned out) larger than `max_body`: 413, connection closed.
    BodyTooLarge,
    /// The client's body stopped arriving (408) or was malformed (400).
    ClientBody(Option<ClientFailure>),
    /// The route's service has no container: 503.
    NoUpstream(&'static str),
    /// Its container is stopped with nothing bringing it back: 502 naming its state.
    Down(&'static str, String),
    /// No answer within `read_timeout`: 504.
    Timeout(&'static str),
    /// Connection refused or cut: 502.
    Upstream(&'static str),
}

impl Failure {
    pub fn into_response(self) -> Response<Body> {
        match self {
            Failure::BadRequest(why) => plain(StatusCode::BAD_REQUEST, why),
            Failure::HeadersTooLarge => plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large\n",
            ),
            Failure::BodyTooLarge => too_large(),
            Failure::ClientBody(Some(ClientFailure::Stalled)) => plain(
                StatusCode::REQUEST_TIMEOUT,
                "408 Request Timeout: the request body stopped arriving\n",
            ),
            Failure::ClientBody(_) => plain(StatusCode::BAD_REQUEST, "malformed request body\n"),
            Failure::NoUpstream(service) => gateway_error(StatusCode::SERVICE_UNAVAILABLE, service),
            Failure::Down(service, state) => {
                gateway_error_because(StatusCode::BAD_GATEWAY, service, Some(&state))
            }
            Failure::Timeout(service) => gateway_error(StatusCode::GATEWAY_TIMEOUT, service),
            Failure::Upstream(service) => gateway_error(StatusCode::BAD_GATEWAY, service),
        }
    }
}

fn too_large() -> Response<Body> {
    let mut resp = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "413 Request Entity Too Large: the body is larger than this server accepts (max_body)\n",
    );
    // The rest of the body is not read: do not leave the connection in an unknown state.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

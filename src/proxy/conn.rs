//! The client side of a connection, as every stage of a request sees it.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

/// The client side of a connection, fixed for all its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub scheme: &'static str,
    /// The HTTP/1 framing guard's findings (see `framing.rs`); none on HTTP/2.
    pub framing: Option<Arc<super::framing::FramingFlags>>,
    /// The peer's address and the local port as header values, formatted once per connection
    /// rather than for every request's forwarding headers.
    pub peer_value: HeaderValue,
    pub port_value: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local_port: u16, scheme: &'static str) -> ConnInfo {
        ConnInfo {
            peer,
            scheme,
            framing: None,
            peer_value: HeaderValue::from_maybe_shared(bytes::Bytes::from(peer.ip().to_string()))
                .unwrap_or(HeaderValue::from_static("-")),
            port_value: HeaderValue::from(local_port),
        }
    }
}

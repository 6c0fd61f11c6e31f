//! The request as the upstream gets it: its URI pointed at the container, HTTP/1.1, hop-by-hop
//! headers dropped, Host kept, the forwarding headers Dify's nginx sets, and `Dify-Hook-Url`
//! on the plugin routes.

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Uri, Version};

use super::conn::ConnInfo;
use super::failure::Failure;
use super::headers::{set_forwarding, strip_hop_by_hop, ClientSide};
use super::route::Routed;
use crate::cidr::Cidr;

static DIFY_HOOK_URL: HeaderName = HeaderName::from_static("dify-hook-url");

pub fn upstream_parts(
    parts: &mut Parts,
    routed: &Routed,
    conn: &ConnInfo,
    host: &HeaderValue,
    trusted_proxies: &[Cidr],
) -> Result<(), Failure> {
    let pq = &routed.path_and_query;
    // Origin form: the client sends it to the upstream's address (`client.rs`).
    parts.uri = Uri::from(pq.clone());
    // Upstreams speak HTTP/1.1 whatever the client spoke (h2 requests keep HTTP_2 otherwise
    // and the HTTP/1 client refuses them).
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, routed.websocket);
    if !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, host.clone());
    }
    let client = ClientSide {
        peer: conn.peer.ip(),
        peer_value: &conn.peer_value,
        scheme: conn.scheme,
        host,
        port_value: &conn.port_value,
    };
    set_forwarding(&mut parts.headers, &client, trusted_proxies);
    if routed.hook_url {
        // `check` made sure the host is visible ASCII.
        let host = host.to_str().unwrap_or_default();
        let hook = format!("{}://{}{}", conn.scheme, host, pq);
        if let Ok(v) = HeaderValue::from_str(&hook) {
            parts.headers.insert(DIFY_HOOK_URL.clone(), v);
        }
    }
    Ok(())
}

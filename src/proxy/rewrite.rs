//! The request as the upstream gets it: its URI pointed at the container, HTTP/1.1, hop-by-hop
//! headers dropped, Host kept, the forwarding headers Dify's nginx sets, and `Dify-Hook-Url`
//! on the plugin routes.

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{Uri, Version};

use super::failure::Failure;
use super::forward::ConnInfo;
use super::headers::{set_forwarding, strip_hop_by_hop, ClientSide};
use super::route::Routed;
use crate::cidr::Cidr;

static DIFY_HOOK_URL: HeaderName = HeaderName::from_static("dify-hook-url");

pub fn upstream_parts(
    parts: &mut Parts,
    routed: &Routed,
    conn: &ConnInfo,
    host: &str,
    trusted_proxies: &[Cidr],
) -> Result<(), Failure> {
    let pq = &routed.path_and_query;
    parts.uri = upstream_uri(&routed.upstream, pq)
        .map_err(|_| Failure::BadRequest("invalid request target\n"))?;
    // Upstreams speak HTTP/1.1 whatever the client spoke (h2 requests keep HTTP_2 otherwise
    // and the HTTP/1 client refuses them).
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, routed.websocket);
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(host) {
            parts.headers.insert(header::HOST, v);
        }
    }
    let client = ClientSide {
        peer: conn.peer.ip(),
        scheme: conn.scheme,
        host,
        port: conn.local_port,
    };
    set_forwarding(&mut parts.headers, &client, trusted_proxies);
    if routed.hook_url {
        let hook = format!("{}://{}{}", conn.scheme, host, pq);
        if let Ok(v) = HeaderValue::from_str(&hook) {
            parts.headers.insert(DIFY_HOOK_URL.clone(), v);
        }
    }
    Ok(())
}

/// `pq` at `upstream`'s address.
pub fn upstream_uri(upstream: &super::Upstream, pq: &PathAndQuery) -> Result<Uri, http::Error> {
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream.authority.clone())
        .path_and_query(pq.clone())
        .build()
}

//! Request and response header rewriting: hop-by-hop headers removed, forwarding headers set.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::cidr::Cidr;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether the request line and header section exceed `limit` bytes (as written on an
/// HTTP/1.1 wire: `name: value\r\n` per field). hyper cuts HTTP/1.1 heads near the limit on
/// its own; on HTTP/2 this is the only check, so both protocols answer 431 alike.
pub fn oversized<B>(req: &http::Request<B>, limit: usize) -> bool {
    let uri = req.uri();
    // The target as written (origin form on HTTP/1.1; HTTP/2 also carries scheme and
    // authority), counted without formatting it.
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields > limit
}

/// Security headers safe for Dify, added where the upstream set none: `nosniff`, and a
/// Referrer-Policy that keeps the path and query on the same origin only; with `hsts`,
/// Strict-Transport-Security. No X-Frame-Options or frame-ancestors: Dify's web apps are
/// embedded in other sites' iframes.
pub fn add_security_headers(headers: &mut HeaderMap, hsts: bool) {
    // One pass over the names instead of a lookup per header.
    let (mut nosniff, mut referrer, mut sts) = (false, false, !hsts);
    for name in headers.keys() {
        nosniff |= name == header::X_CONTENT_TYPE_OPTIONS;
        referrer |= name == header::REFERRER_POLICY;
        sts |= name == header::STRICT_TRANSPORT_SECURITY;
    }
    if !nosniff {
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    if !referrer {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
    }
    if !sts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// The headers that `Connection` names, to be removed with it (collected first: the map
/// cannot be borrowed while removing). `close`, `keep-alive` and `upgrade` name none (the last
/// two are handled with the other hop-by-hop headers).
fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    const NAME_NONE: [&str; 3] = ["close", "keep-alive", "upgrade"];
    let names_none = |n: &str| NAME_NONE.iter().any(|t| n.eq_ignore_ascii_case(t));
    let values = headers.get_all(header::CONNECTION);
    // Nearly every message says just `keep-alive` or `close`: no splitting for those.
    if values
        .iter()
        .all(|v| v.to_str().is_ok_and(|v| names_none(v.trim())))
    {
        return Vec::new();
    }
    values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !names_none(n))
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect()
}

/// Removes the headers that describe one hop (RFC 9110 7.6.1), including any that `Connection`
/// names. With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay, for WebSocket.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which are there; most requests carry none or only
    // Connection, so most of the removals below are skipped (each is a hashed lookup).
    let hop: [&HeaderName; 7] = [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ];
    let (mut present, mut connection) = ([false; 7], false);
    for name in headers.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if let Some(i) = hop.iter().position(|h| *h == name) {
            present[i] = true;
        }
    }
    if connection {
        for name in named_by_connection(headers) {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for (name, there) in hop.iter().zip(present) {
        if there && !(keep_upgrade && *name == header::UPGRADE) {
            headers.remove(*name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether the request asks to switch to WebSocket (the only upgrade Dify uses).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// What the proxy knows about the client side of one request, as header values (the
/// connection's are formatted once per connection, the host is the request's own).
pub struct ClientSide<'a> {
    pub peer: IpAddr,
    pub peer_value: &'a HeaderValue,
    pub scheme: &'static str,
    pub host: &'a HeaderValue,
    pub port_value: &'a HeaderValue,
}

/// Sets X-Forwarded-For/-Proto/-Host/-Port, X-Real-IP. Forwarding headers the client sent are
/// believed (and X-Forwarded-For appended to) only when the peer is a trusted proxy; from anyone
/// else they are dropped, so a client cannot spoof its address to Dify.
pub fn set_forwarding(headers: &mut HeaderMap, client: &ClientSide<'_>, trusted: &[Cidr]) {
    let scheme = HeaderValue::from_static(client.scheme);
    if trusted.iter().any(|c| c.contains(client.peer)) {
        set_forwarding_behind_proxy(headers, client);
        set_if_absent(headers, &X_FORWARDED_PROTO, scheme);
        set_if_absent(headers, &X_FORWARDED_HOST, client.host.clone());
        set_if_absent(headers, &X_FORWARDED_PORT, client.port_value.clone());
    } else {
        headers.remove(&FORWARDED);
        headers.insert(X_FORWARDED_FOR.clone(), client.peer_value.clone());
        headers.insert(X_REAL_IP.clone(), client.peer_value.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), scheme);
        headers.insert(X_FORWARDED_HOST.clone(), client.host.clone());
        headers.insert(X_FORWARDED_PORT.clone(), client.port_value.clone());
    }
}

/// From a trusted proxy: its X-Forwarded-For chain extended by the peer, and X-Real-IP the
/// chain's first address.
fn set_forwarding_behind_proxy(headers: &mut HeaderMap, client: &ClientSide<'_>) {
    let peer = client.peer.to_string();
    let prior: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    let first = prior
        .first()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| peer.clone());
    let chain = if prior.is_empty() {
        peer
    } else {
        format!("{}, {peer}", prior.join(", "))
    };
    set(headers, &X_FORWARDED_FOR, &chain);
    set(headers, &X_REAL_IP, &first);
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name.clone(), v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

fn set_if_absent(headers: &mut HeaderMap, name: &HeaderName, value: HeaderValue) {
    if !headers.contains_key(name) {
        headers.insert(name.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    /// The shortcut for a lone `keep-alive` must not skip a header named in a second
    /// `Connection` line.
    #[test]
    fn a_header_named_in_a_second_connection_line_goes() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("Keep-Alive"));
        h.append("connection", HeaderValue::from_static(" x-secret "));
        h.append("x-secret", HeaderValue::from_static("1"));
        h.append("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        let mut h = map(&[("connection", "close"), ("x-kept", "yes")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn websocket_upgrade_kept() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_websocket_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn spoofed_forwarding_dropped_unless_trusted() {
        let (peer_value, host, port_value) = (
            HeaderValue::from_static("203.0.113.9"),
            HeaderValue::from_static("dify.example.com"),
            HeaderValue::from(443),
        );
        let client = ClientSide {
            peer: "203.0.113.9".parse().unwrap(),
            peer_value: &peer_value,
            scheme: "https",
            host: &host,
            port_value: &port_value,
        };
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
        ]);
        set_forwarding(&mut h, &client, &[]);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "443");

        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarding(&mut h, &client, &["203.0.113.0/24".parse().unwrap()]);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 203.0.113.9");
        assert_eq!(h["x-real-ip"], "1.2.3.4");
        assert_eq!(h["x-forwarded-host"], "dify.example.com");
    }
}

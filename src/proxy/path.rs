//! The request path as routing must see it, the way nginx normalises it before matching a
//! location: percent-encoded unreserved characters decoded (`%2e` is `.`), dot segments
//! resolved (`/e/../console/api` is `/console/api`), repeated slashes merged. Routing on the raw
//! path would send `/e/../console/api/x` to the plugin daemon with a hook header, and
//! `/%2e%2e/console/api` to web; the normalised path is also what is forwarded, so the
//! upstream reads the request exactly as it was routed. `%2F` is a separator too: nginx
//! decodes it before matching a location (so Dify's nginx sends `/console%2fapi/x` to the api,
//! whose Flask decodes it the same way), and so does difyctl. Other reserved characters stay
//! encoded. Most paths need none of this and are returned borrowed.

use std::borrow::Cow;

/// `path` normalised (see the module doc).
pub fn normalize(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let needs = b.contains(&b'%')
        || path.contains("//")
        || path.contains("/./")
        || path.contains("/../")
        || path.ends_with("/.")
        || path.ends_with("/..")
        || !path.starts_with('/');
    if !needs {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/')
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
        || decoded == "."
        || decoded == "..";
    let mut result = String::with_capacity(decoded.len() + 1);
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if result.is_empty() || (trailing && !out.is_empty()) {
        result.push('/');
    }
    Cow::Owned(result)
}

/// Decodes `%XX` where XX is an unreserved character (RFC 3986: letters, digits, `-._~`) or
/// `/` (as nginx does before matching a location);
/// everything else stays as written (uppercased hex for the others is not needed).
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'/') {
                    out.push(c as char);
                    i += 3;
                    continue;
                }
            }
        }
        // A multi-byte character is copied whole.
        let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_like_normalisation() {
        for (raw, want) in [
            ("/console/api/apps", "/console/api/apps"),
            ("/e/../console/api/x", "/console/api/x"),
            ("/%2e%2e/console/api", "/console/api"),
            ("/%2E%2E/%2e/v1/x", "/v1/x"),
            ("//api///x", "/api/x"),
            ("/a/b/..", "/a/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/files/%2Fetc", "/files/etc"),
            ("/files/a%20b", "/files/a%20b"),
            ("/e/./hook", "/e/hook"),
            ("/", "/"),
            ("/..", "/"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/x%", "/x%"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
        assert!(matches!(normalize("/v1/chat-messages"), Cow::Borrowed(_)));
    }

    /// Regression (rough edges #12): `%2F` stayed encoded and `/console%2fapi/x` went to web,
    /// where Dify's nginx decodes it and sends it to the api.
    #[test]
    fn an_encoded_slash_separates_as_nginx_decodes_it() {
        assert_eq!(normalize("/console%2fapi/x"), "/console/api/x");
        assert_eq!(normalize("/e/..%2Fconsole/api"), "/console/api");
        assert_eq!(
            normalize("/files/a%20b"),
            "/files/a%20b",
            "a space stays encoded"
        );
    }
}

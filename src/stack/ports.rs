//! `ports:` entries in both compose forms: `[IP:][HOST:]CONTAINER[/PROTO]` (ranges expand) and
//! `{target, published, host_ip, protocol}`.

use serde::Serialize;
use serde_json::Value;

use super::fields::scalar;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub host_ip: Option<String>,
    /// `None`: Docker picks a free host port.
    pub published: Option<u16>,
    /// `80-90:8080`: Docker picks a free host port from `published` to this one.
    pub published_end: Option<u16>,
    pub target: u16,
    pub protocol: String,
}

impl Port {
    /// The host side as Docker takes it: `80`, `80-90`, or none.
    pub fn host_port(&self) -> Option<String> {
        match (self.published, self.published_end) {
            (Some(a), Some(b)) => Some(format!("{a}-{b}")),
            (Some(a), None) => Some(a.to_string()),
            _ => None,
        }
    }
}

/// A host address must be an IP address (compose: "Invalid ip address").
fn check_ip(ip: Option<&str>) -> Result<(), String> {
    match ip {
        Some(ip) if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() => {
            Err(format!("invalid host IP address `{ip}`"))
        }
        _ => Ok(()),
    }
}

/// One entry; a range (`8000-8001:8000-8001`) gives one port per number.
pub fn parse_port(v: &Value) -> Result<Vec<Port>, String> {
    if let Value::Object(m) = v {
        return long_syntax(m).map(|p| vec![p]);
    }
    let text = scalar(v).ok_or("must be a string or a mapping")?;
    let bad = |why: &str| format!("`{text}` is not a port mapping: {why}");
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((s, p)) if p == "tcp" || p == "udp" || p == "sctp" => (s, p.to_string()),
        Some(_) => return Err(bad("the protocol must be tcp, udp or sctp")),
        None => (text.as_str(), "tcp".to_string()),
    };
    // An IPv6 host address is written in brackets: [::1]:80:80.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            (Some(ip.to_string()), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [t]) => (None, None, *t),
        (None, [p, t]) => (None, Some(*p), *t),
        (None, [ip, p, t]) => (Some(ip.to_string()), Some(*p), *t),
        (Some(ip), [p, t]) => (Some(ip), Some(*p), *t),
        _ => return Err(bad("too many `:`")),
    };
    let range = |r: &str| -> Result<(u16, u16), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
            _ => Err(bad(&format!("`{r}` is not a port or a range"))),
        }
    };
    let (t0, t1) = range(target)?;
    let published = match published.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(range(p)?),
    };
    check_ip(host_ip.as_deref()).map_err(|e| bad(&e))?;
    if let Some((p0, p1)) = published {
        // One container port on a host range: Docker picks a free one in it.
        if t0 == t1 && p0 != p1 {
            return Ok(vec![Port {
                host_ip: host_ip.filter(|s| !s.is_empty()),
                published: Some(p0),
                published_end: Some(p1),
                target: t0,
                protocol,
            }]);
        }
        if p1 - p0 != t1 - t0 && p0 != p1 {
            return Err(bad("the two ranges differ in length"));
        }
    }
    Ok((0..=(t1 - t0))
        .map(|i| Port {
            host_ip: host_ip.clone().filter(|s| !s.is_empty()),
            published: published.map(|(p0, p1)| if p0 == p1 { p0 } else { p0 + i }),
            published_end: None,
            target: t0 + i,
            protocol: protocol.clone(),
        })
        .collect())
}

/// `{target: 80, published: 8080, host_ip: ..., protocol: ...}`.
fn long_syntax(m: &serde_json::Map<String, Value>) -> Result<Port, String> {
    let num = |key: &str| -> Result<Option<u16>, String> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar(v)
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("{key}: `{v}` is not a port number")),
        }
    };
    let host_ip = m.get("host_ip").and_then(scalar).filter(|s| !s.is_empty());
    check_ip(host_ip.as_deref())?;
    Ok(Port {
        host_ip,
        published: num("published")?,
        published_end: None,
        target: num("target")?.ok_or("`target` is required")?,
        protocol: m
            .get("protocol")
            .and_then(scalar)
            .unwrap_or_else(|| "tcp".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<Port>, String> {
        parse_port(&Value::String(s.into()))
    }

    #[test]
    fn short_forms() {
        let one = &p("127.0.0.1:5003:5003/udp").unwrap()[0];
        assert_eq!(one.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!((one.published, one.target), (Some(5003), 5003));
        assert_eq!(one.protocol, "udp");
        assert_eq!(p("80").unwrap()[0].published, None);
        assert_eq!(p("8000-8001:9000-9001").unwrap().len(), 2);
        assert_eq!(
            p("[::1]:80:8080").unwrap()[0].host_ip.as_deref(),
            Some("::1")
        );
        assert!(p("a:b").unwrap_err().contains("`b` is not a port"));
        let range = &p("80-90:8080/udp").unwrap()[0];
        assert_eq!(range.host_port().as_deref(), Some("80-90"));
        assert!(p("127.0.1:8080:80")
            .unwrap_err()
            .contains("invalid host IP"));
    }
}

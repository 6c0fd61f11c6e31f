//! The parsers of the settings' rows: text as a user writes it in, the typed value out, or
//! what is wrong with it (the row's origin is added by `Sources::get`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ca::{directory_url, ChallengeKind};
use super::row::Value;
use crate::cidr::Cidr;
use crate::units::{parse_duration, parse_size};

/// Text, trimmed; empty is none.
pub fn text(v: &Value) -> Result<Option<String>, String> {
    let t = v.text().trim().to_string();
    Ok((!t.is_empty()).then_some(t))
}

/// A path; empty is none.
pub fn path(v: &Value) -> Result<Option<PathBuf>, String> {
    Ok(text(v)?.map(PathBuf::from))
}

pub fn boolean(v: &Value) -> Result<bool, String> {
    match v.text().trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

/// A number of things (connections): 0 allowed where the row says it means "no limit".
pub fn count(v: &Value) -> Result<usize, String> {
    let t = v.text();
    t.trim()
        .parse()
        .map_err(|_| format!("`{}` is not a whole number", t.trim()))
}

/// A number that is at least 1; empty is none.
pub fn at_least_one(v: &Value) -> Result<Option<usize>, String> {
    match text(v)? {
        None => Ok(None),
        Some(t) => match t.parse::<usize>() {
            Ok(0) => Err("must be at least 1".into()),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!("`{t}` is not a whole number")),
        },
    }
}

/// Worker threads: at least 1; empty is one per core.
pub fn workers(v: &Value) -> Result<usize, String> {
    Ok(at_least_one(v)?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())))
}

pub fn duration(v: &Value) -> Result<Duration, String> {
    parse_duration(&v.text()).map_err(|e| e.to_string())
}

/// A timeout: 0 would mean "at once", never what anyone wants.
pub fn positive_duration(v: &Value) -> Result<Duration, String> {
    let d = duration(v)?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// A body size like nginx's `client_max_body_size`: 0 turns the limit off, as there.
pub fn body_size(v: &Value) -> Result<u64, String> {
    match parse_size(&v.text()).map_err(|e| e.to_string())? {
        0 => Ok(u64::MAX),
        n => Ok(n),
    }
}

/// The request head's limit: below 1 KiB no browser request fits; above 1 MiB is memory
/// for nothing.
pub fn header_size(v: &Value) -> Result<usize, String> {
    let size = parse_size(&v.text()).map_err(|e| e.to_string())?;
    usize::try_from(size)
        .ok()
        .filter(|s| (1024..=1 << 20).contains(s))
        .ok_or_else(|| "must be between 1k and 1m".into())
}

/// `0.0.0.0:443`, `[::]:443`, `:443` or a bare port (as `.env`'s EXPOSE_NGINX_PORT has it).
pub fn listen(v: &Value) -> Result<SocketAddr, String> {
    let t = v.text();
    parse_addr(&t).ok_or_else(|| {
        format!(
            "`{}` is not a listen address (like 0.0.0.0:443, [::]:443 or a port)",
            t.trim()
        )
    })
}

/// A listen address, or `off` (or empty): none.
pub fn listen_or_off(v: &Value) -> Result<Option<SocketAddr>, String> {
    let t = v.text();
    let t = t.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_addr(t)
        .map(Some)
        .ok_or_else(|| format!("`{t}` is not a listen address (like 127.0.0.1:2019), nor `off`"))
}

pub fn parse_addr(text: &str) -> Option<SocketAddr> {
    let t = text.trim();
    if let Ok(a) = t.parse() {
        return Some(a);
    }
    t.strip_prefix(':')
        .unwrap_or(t)
        .parse::<u16>()
        .ok()
        .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
}

pub fn cidrs(v: &Value) -> Result<Vec<Cidr>, String> {
    v.items()
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<Cidr>().map_err(|e| e.to_string()))
        .collect()
}

/// Names to serve, lowercase, each a DNS name (`*.` allowed) or an IP address.
pub fn domains(v: &Value) -> Result<Vec<String>, String> {
    let names: Vec<String> = v
        .items()
        .into_iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    for d in &names {
        check_domain(d)?;
    }
    Ok(names)
}

/// A name to serve: a DNS name (`dify.example.com`, `*.example.com`, `localhost`) or an IP
/// address. A URL, a port or a space is a mistake a user makes; say which.
pub fn check_domain(d: &str) -> Result<(), String> {
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if d.contains("://") || d.contains('/') {
        return Err(format!(
            "`{d}` is a URL: give the name alone (dify.example.com, not https://dify.example.com/)"
        ));
    }
    if d.contains(':') {
        return Err(format!(
            "`{d}` has a port: give the name alone (the ports are proxy.http and proxy.https)"
        ));
    }
    let name = d.strip_prefix("*.").unwrap_or(d);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.trim_end_matches('.').split('.').all(label_ok) {
        return Err(format!(
            "`{d}` is not a domain name (letters, digits, `-` and dots, like dify.example.com)"
        ));
    }
    Ok(())
}

/// Where Dify's release archives come from: https only (they are code run as root).
pub fn https_url(v: &Value) -> Result<String, String> {
    let url = v.text().trim().to_string();
    if !url.starts_with("https://") || url.parse::<http::Uri>().is_err() {
        return Err(format!("`{url}` is not an https:// URL (release archives are code run as root: plain http is refused)"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `/var/lib/difyctl` for root (the systemd service), `~/.local/state/difyctl` otherwise.
pub fn state_dir(v: &Value) -> Result<PathBuf, String> {
    if let Some(p) = path(v)? {
        return Ok(p);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    Ok(match std::env::var_os("HOME") {
        Some(home) if !root => PathBuf::from(home).join(".local/state/difyctl"),
        _ => PathBuf::from("/var/lib/difyctl"),
    })
}

/// The backup folder; empty is the default beside the state (set by the merge).
pub fn backup_dir(v: &Value) -> Result<PathBuf, String> {
    Ok(path(v)?.unwrap_or_default())
}

/// Archives kept: at least 1 (the backup just taken is always kept); empty is all.
pub fn keep(v: &Value) -> Result<Option<usize>, String> {
    at_least_one(v).map_err(|e| match e.as_str() {
        "must be at least 1" => format!("{e} (the backup just taken is always kept)"),
        _ => e,
    })
}

/// A cron schedule (UTC); empty is none.
pub fn schedule(v: &Value) -> Result<Option<crate::cron::Schedule>, String> {
    text(v)?.map(|t| t.parse()).transpose()
}

/// `letsencrypt`, `letsencrypt-staging` or a directory URL.
pub fn acme_directory(v: &Value) -> Result<String, String> {
    Ok(directory_url(&v.text()))
}

pub fn challenge(v: &Value) -> Result<ChallengeKind, String> {
    match v.text().trim() {
        "" | "http-01" => Ok(ChallengeKind::Http01),
        "tls-alpn-01" => Ok(ChallengeKind::TlsAlpn01),
        other => Err(format!(
            "`{other}` is not a challenge type: use http-01 or tls-alpn-01"
        )),
    }
}

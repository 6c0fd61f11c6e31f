//! Sizes and durations written the way nginx and Dify's `.env` write them
//! (`100M`, `1g`, `3600s`, `5m`), parsed once into numbers.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("`{0}` is not a size: write a number with an optional k, M or G suffix (like 100M)")]
    Size(String),
    #[error("`{0}` is not a duration: write a number with an optional ms, s, m, h or d suffix (like 3600s)")]
    Duration(String),
}

/// Parses a byte size: `1024`, `512k`, `100M`, `1G` (case-insensitive, optional trailing `b`).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size(text.to_string());
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some(_) => (t, 1),
        None => return Err(err()),
    };
    let n: u64 = digits.trim().parse().map_err(|_| err())?;
    n.checked_mul(mult).ok_or_else(err)
}

/// Parses a duration: `30` (seconds), `500ms`, `3600s`, `5m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration(text.to_string());
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err())?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
        "d" => Duration::from_secs(n.checked_mul(86400).ok_or_else(err)?),
        _ => return Err(err()),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("15m"), Ok(15 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("42"), Ok(42));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600s"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }
}

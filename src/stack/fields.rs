//! The small parsers behind `service.rs`: compose's loose scalars, lists-or-maps, env_file
//! entries, shell-split commands, restart policies, healthchecks and Go durations.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// A scalar as a string (compose accepts numbers and booleans wherever a string goes).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(scalar).filter(|s| !s.is_empty())
}

pub(super) fn as_i64(v: &Value) -> Option<i64> {
    scalar(v).and_then(|s| s.trim().parse().ok())
}

pub(super) fn flag(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

pub(super) fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(other) => scalar(other).into_iter().collect(),
        None => Vec::new(),
    }
}

pub(super) fn list(v: Option<&Value>) -> Result<Vec<Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err("must be a list".into()),
    }
}

pub(super) fn size(v: &Value) -> Result<u64, String> {
    let text = scalar(v).ok_or_else(|| format!("`{v}` is not a size"))?;
    crate::units::parse_size(&text).map_err(|e| e.to_string())
}

/// `KEY=VALUE` list or `KEY: VALUE` mapping; with `bare_key_is_unset`, a list entry without
/// `=` (or a mapping value of null) is `None`: "take it from the environment".
pub(super) fn key_values(
    v: Option<&Value>,
    bare_key_is_unset: bool,
) -> Result<Vec<(String, Option<String>)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let s = scalar(item).ok_or("list entries must be KEY=VALUE strings")?;
                let sep = if bare_key_is_unset {
                    '='
                } else {
                    if s.contains('=') {
                        '='
                    } else {
                        ':'
                    }
                };
                Ok(match s.split_once(sep) {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (s, None),
                })
            })
            .collect(),
        Some(Value::Object(m)) => Ok(m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect()),
        Some(_) => Err("must be a list or a mapping".into()),
    }
}

/// `env_file`: a path, or a list of paths and `{path, required}` entries (required by default).
pub(super) fn env_files(v: Option<&Value>) -> Result<Vec<(String, bool)>, String> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![(s.clone(), true)]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("must be a path or a list".into()),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok((s.clone(), true)),
            Value::Object(m) => {
                let path = m
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or("an entry needs `path`")?;
                let required = m.get("required").is_none_or(|r| flag(Some(r)));
                Ok((path.to_string(), required))
            }
            _ => Err("entries must be paths or {path, required}".to_string()),
        })
        .collect()
}

/// `command`/`entrypoint`: a list as is, a string split like a shell would (quotes respected).
pub(super) fn command(v: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(
            items
                .iter()
                .map(|i| scalar(i).ok_or_else(|| "list entries must be strings".to_string()))
                .collect::<Result<_, _>>()?,
        )),
        Some(Value::String(s)) => shell_split(s).map(Some),
        Some(_) => Err("must be a string or a list".into()),
    }
}

/// Splits a command line the way compose does (shlex): whitespace separates words, single
/// quotes are literal, double quotes allow `\"` and `\\`, a backslash outside quotes escapes.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed single quote in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed double quote in `{s}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed double quote in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    if c != '\n' {
                        word.push(c);
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

pub(super) fn restart(v: Option<&Value>) -> Result<Restart, String> {
    let Some(text) = v.and_then(scalar) else {
        return Ok(Restart::No);
    };
    Ok(match text.as_str() {
        "no" | "false" | "" => Restart::No,
        "always" => Restart::Always,
        "unless-stopped" => Restart::UnlessStopped,
        "on-failure" => Restart::OnFailure(0),
        other => match other.strip_prefix("on-failure:").map(str::parse) {
            Some(Ok(n)) => Restart::OnFailure(n),
            _ => {
                return Err(format!(
                    "`{other}` is not a restart policy (no, always, unless-stopped, on-failure[:N])"
                ))
            }
        },
    })
}

pub(super) fn healthcheck(v: Option<&Value>) -> Result<Option<Healthcheck>, (String, String)> {
    let Some(Value::Object(m)) = v else {
        return Ok(None);
    };
    if flag(m.get("disable")) {
        return Ok(Some(Healthcheck {
            test: vec!["NONE".into()],
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
            start_interval: None,
        }));
    }
    let test = match m.get("test") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
        Some(Value::Array(items)) => {
            let test: Vec<String> = items.iter().filter_map(scalar).collect();
            match test.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL" | "NONE") => test,
                _ => {
                    return Err((
                        ".test".into(),
                        "a list must start with CMD, CMD-SHELL or NONE".into(),
                    ))
                }
            }
        }
        Some(_) => return Err((".test".into(), "must be a string or a list".into())),
    };
    let dur = |key: &str| opt_duration(m.get(key)).map_err(|e| (format!(".{key}"), e));
    Ok(Some(Healthcheck {
        test,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        retries: match m.get("retries") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                as_i64(v)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or((".retries".to_string(), format!("`{v}` is not a count")))?,
            ),
        },
        start_period: dur("start_period")?,
        start_interval: dur("start_interval")?,
    }))
}

pub(super) fn opt_duration(v: Option<&Value>) -> Result<Option<Duration>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let text = scalar(v).ok_or_else(|| format!("`{v}` is not a duration"))?;
            parse_go_duration(&text).map(Some)
        }
    }
}

/// Compose durations are Go's: `1m30s`, `500ms`, `2h`, `1.5s`; a bare number is seconds.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (like 10s, 1m30s, 500ms)");
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| num_end + i);
        let scale = match &rest[num_end..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    /// Checks during the start period (Docker API 1.44+). Left out of the config hash when
    /// unset, so containers created before it existed are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_split_like_compose() {
        assert_eq!(
            shell_split("postgres -c 'max_connections=100'\n  -c \"a b\" x\\ y").unwrap(),
            vec!["postgres", "-c", "max_connections=100", "-c", "a b", "x y"]
        );
        assert!(shell_split("echo 'open").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_go_duration("10 parsecs").is_err());
    }
}

//! One service, parsed from its interpolated compose definition into what the engine needs:
//! image, command, environment (env_file then environment), ports, mounts, networks,
//! healthcheck, restart policy and limits. Parse, don't validate: every later step works on
//! these types, and every error names `services.<name>.<key>`.
//!
//! Keys of the compose spec that difyctl does not act on are reported as warnings, except where
//! ignoring them would change what runs (`build` without `image`, replicas > 1): those are
//! errors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::envfile::EnvFile;
use super::mounts::{parse_mount, Mount};
use super::ports::{parse_port, Port};

/// What the engine creates for one service. Serialised (sorted, stable) for the config hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub container_name: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    pub mounts: Vec<Mount>,
    /// Project network keys (not Docker names) with this service's extra aliases.
    pub networks: BTreeMap<String, Vec<String>>,
    /// `network_mode: host|none` (then `networks` is empty).
    pub network_mode: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: Restart,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub stdin_open: bool,
    pub init: Option<bool>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub memory_limit: Option<u64>,
    pub nano_cpus: Option<i64>,
    pub shm_size: Option<u64>,
    pub stop_grace_period: Option<Duration>,
    pub stop_signal: Option<String>,
    /// name -> (soft, hard)
    pub ulimits: BTreeMap<String, (i64, i64)>,
    pub sysctls: BTreeMap<String, String>,
    pub tmpfs: Vec<String>,
    pub security_opt: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure(u32),
}

/// A problem with one service's definition: `key` is the dotted path below `services.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("services.{service}.{key}: {message}")]
pub struct SpecError {
    pub service: String,
    pub key: String,
    pub message: String,
}

/// Service keys of the compose spec that difyctl reads. Any other spec key gets a warning.
const HONOURED: &[&str] = &[
    "image",
    "build",
    "container_name",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "networks",
    "network_mode",
    "healthcheck",
    "restart",
    "user",
    "working_dir",
    "hostname",
    "tty",
    "stdin_open",
    "init",
    "privileged",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "labels",
    "mem_limit",
    "cpus",
    "shm_size",
    "stop_grace_period",
    "stop_signal",
    "ulimits",
    "sysctls",
    "tmpfs",
    "security_opt",
    "deploy",
    "depends_on",
    "profiles",
    "platform",
    "pull_policy",
];

impl ServiceSpec {
    /// Parses `def` (already interpolated). `dir` resolves relative paths (env files, binds);
    /// `vars` gives values to `environment` entries written without one; `volumes` are the
    /// top-level volume keys (a named volume must be declared there). Warnings about keys
    /// difyctl ignores are pushed onto `warnings`.
    pub fn parse(
        name: &str,
        def: &Value,
        dir: &Path,
        vars: &HashMap<String, String>,
        volumes: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<ServiceSpec, SpecError> {
        let err = |key: &str, message: String| SpecError {
            service: name.to_string(),
            key: key.to_string(),
            message,
        };
        let empty = serde_json::Map::new();
        let map = def.as_object().unwrap_or(&empty);
        for key in map.keys() {
            if !HONOURED.contains(&key.as_str()) && !key.starts_with("x-") {
                warnings.push(format!(
                    "services.{name}.{key} is not supported by difyctl and is ignored"
                ));
            }
        }
        let image = match (str_of(map.get("image")), map.get("build")) {
            (Some(image), _) => image,
            (None, Some(_)) => {
                return Err(err(
                    "build",
                    "difyctl does not build images: build it with `docker build -t NAME` and set `image: NAME`".into(),
                ))
            }
            (None, None) => return Err(err("image", "every service needs an image".into())),
        };
        if map.contains_key("build") {
            warnings.push(format!(
                "services.{name}.build is ignored: difyctl runs the image `{image}`"
            ));
        }

        let mut environment = BTreeMap::new();
        for (i, file) in env_files(map.get("env_file"))
            .map_err(|m| err("env_file", m))?
            .into_iter()
            .enumerate()
        {
            let path: std::path::PathBuf = dir
                .join(&file.0)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            let parsed = match EnvFile::read_optional(&path) {
                Ok(Some(f)) => f,
                Ok(None) if !file.1 => continue,
                Ok(None) => {
                    return Err(err(
                        &format!("env_file[{i}]"),
                        format!("{} does not exist", path.display()),
                    ))
                }
                Err(e) => return Err(err(&format!("env_file[{i}]"), crate::error_chain(&e))),
            };
            let values = parsed
                .own_values(vars)
                .map_err(|e| err(&format!("env_file[{i}]"), crate::error_chain(&e)))?;
            for entry in &parsed.entries {
                if let Some(v) = values.get(&entry.key) {
                    environment.insert(entry.key.clone(), v.clone());
                }
            }
        }
        for (key, value) in
            key_values(map.get("environment"), true).map_err(|m| err("environment", m))?
        {
            match value.or_else(|| vars.get(&key).cloned()) {
                Some(v) => environment.insert(key, v),
                None => environment.remove(&key),
            };
        }

        let ports = list(map.get("ports"))
            .map_err(|m| err("ports", m))?
            .iter()
            .enumerate()
            .map(|(i, p)| parse_port(p).map_err(|m| err(&format!("ports[{i}]"), m)))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        let mounts = list(map.get("volumes"))
            .map_err(|m| err("volumes", m))?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                parse_mount(v, dir, volumes).map_err(|m| err(&format!("volumes[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let network_mode = str_of(map.get("network_mode"));
        let mut networks = BTreeMap::new();
        match map.get("networks") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for n in items {
                    let n = n
                        .as_str()
                        .ok_or_else(|| err("networks", "a list must hold network names".into()))?;
                    networks.insert(n.to_string(), Vec::new());
                }
            }
            Some(Value::Object(m)) => {
                for (n, v) in m {
                    let aliases = match v.get("aliases") {
                        Some(a) => list(Some(a))
                            .map_err(|m| err(&format!("networks.{n}.aliases"), m))?
                            .iter()
                            .filter_map(|a| a.as_str().map(str::to_string))
                            .collect(),
                        None => Vec::new(),
                    };
                    networks.insert(n.clone(), aliases);
                }
            }
            Some(_) => return Err(err("networks", "must be a list or a mapping".into())),
        }
        match network_mode.as_deref() {
            None if networks.is_empty() => {
                networks.insert("default".into(), Vec::new());
            }
            None => {}
            Some("host" | "none" | "bridge") if networks.is_empty() => {}
            Some(mode) => {
                return Err(err(
                    "network_mode",
                    format!("`{mode}` is not supported (host, none or bridge, without `networks`)"),
                ))
            }
        }

        let deploy = map.get("deploy");
        if let Some(r) = deploy.and_then(|d| d.get("replicas")).and_then(as_i64) {
            if r != 1 {
                return Err(err(
                    "deploy.replicas",
                    format!("difyctl runs one container per service, not {r}"),
                ));
            }
        }
        let limits = deploy.and_then(|d| d.pointer("/resources/limits"));
        let memory_limit = match map
            .get("mem_limit")
            .or_else(|| limits.and_then(|l| l.get("memory")))
        {
            None | Some(Value::Null) => None,
            Some(v) => Some(size(v).map_err(|m| err("mem_limit", m))?),
        };
        let nano_cpus = match map
            .get("cpus")
            .or_else(|| limits.and_then(|l| l.get("cpus")))
        {
            None | Some(Value::Null) => None,
            Some(v) => {
                let cpus: f64 = scalar(v)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| err("cpus", format!("`{v}` is not a number of CPUs")))?;
                Some((cpus * 1e9) as i64)
            }
        };

        let mut ulimits = BTreeMap::new();
        if let Some(Value::Object(m)) = map.get("ulimits") {
            for (k, v) in m {
                let bad = || {
                    err(
                        &format!("ulimits.{k}"),
                        "must be a number or soft/hard".into(),
                    )
                };
                let (soft, hard) = match v {
                    Value::Object(sh) => (
                        sh.get("soft").and_then(as_i64).ok_or_else(bad)?,
                        sh.get("hard").and_then(as_i64).ok_or_else(bad)?,
                    ),
                    other => {
                        let n = as_i64(other).ok_or_else(bad)?;
                        (n, n)
                    }
                };
                ulimits.insert(k.clone(), (soft, hard));
            }
        }

        Ok(ServiceSpec {
            name: name.to_string(),
            image,
            container_name: str_of(map.get("container_name")),
            command: command(map.get("command")).map_err(|m| err("command", m))?,
            entrypoint: command(map.get("entrypoint")).map_err(|m| err("entrypoint", m))?,
            environment,
            ports,
            mounts,
            networks,
            network_mode,
            healthcheck: healthcheck(map.get("healthcheck"))
                .map_err(|(k, m)| err(&format!("healthcheck{k}"), m))?,
            restart: restart(map.get("restart")).map_err(|m| err("restart", m))?,
            user: str_of(map.get("user")),
            working_dir: str_of(map.get("working_dir")),
            hostname: str_of(map.get("hostname")),
            tty: flag(map.get("tty")),
            stdin_open: flag(map.get("stdin_open")),
            init: map.get("init").map(|v| flag(Some(v))),
            privileged: flag(map.get("privileged")),
            cap_add: strings(map.get("cap_add")),
            cap_drop: strings(map.get("cap_drop")),
            extra_hosts: key_values(map.get("extra_hosts"), false)
                .map_err(|m| err("extra_hosts", m))?
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}:{v}"),
                    None => k,
                })
                .collect(),
            labels: key_values(map.get("labels"), false)
                .map_err(|m| err("labels", m))?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            memory_limit,
            nano_cpus,
            shm_size: match map.get("shm_size") {
                None | Some(Value::Null) => None,
                Some(v) => Some(size(v).map_err(|m| err("shm_size", m))?),
            },
            stop_grace_period: opt_duration(map.get("stop_grace_period"))
                .map_err(|m| err("stop_grace_period", m))?,
            stop_signal: str_of(map.get("stop_signal")),
            ulimits,
            sysctls: key_values(map.get("sysctls"), false)
                .map_err(|m| err("sysctls", m))?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            tmpfs: strings(map.get("tmpfs")),
            security_opt: strings(map.get("security_opt")),
        })
    }

    /// The container's name: `container_name`, else compose v2's `<project>-<service>-1`.
    pub fn container_name(&self, project: &str) -> String {
        self.container_name
            .clone()
            .unwrap_or_else(|| format!("{project}-{}-1", self.name))
    }
}

/// A scalar as a string (compose accepts numbers and booleans wherever a string goes).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(scalar).filter(|s| !s.is_empty())
}

fn as_i64(v: &Value) -> Option<i64> {
    scalar(v).and_then(|s| s.trim().parse().ok())
}

fn flag(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(other) => scalar(other).into_iter().collect(),
        None => Vec::new(),
    }
}

fn list(v: Option<&Value>) -> Result<Vec<Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err("must be a list".into()),
    }
}

fn size(v: &Value) -> Result<u64, String> {
    let text = scalar(v).ok_or_else(|| format!("`{v}` is not a size"))?;
    crate::units::parse_size(&text).map_err(|e| e.to_string())
}

/// `KEY=VALUE` list or `KEY: VALUE` mapping; with `bare_key_is_unset`, a list entry without
/// `=` (or a mapping value of null) is `None`: "take it from the environment".
fn key_values(
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
fn env_files(v: Option<&Value>) -> Result<Vec<(String, bool)>, String> {
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
fn command(v: Option<&Value>) -> Result<Option<Vec<String>>, String> {
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

fn restart(v: Option<&Value>) -> Result<Restart, String> {
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

fn healthcheck(v: Option<&Value>) -> Result<Option<Healthcheck>, (String, String)> {
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
    }))
}

fn opt_duration(v: Option<&Value>) -> Result<Option<Duration>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Result<ServiceSpec, SpecError> {
        let def: Value = serde_saphyr::from_str(yaml).unwrap();
        let vars = HashMap::from([("FROM_ENV".to_string(), "e".to_string())]);
        ServiceSpec::parse(
            "api",
            &def,
            Path::new("/srv/dify"),
            &vars,
            &["data".to_string()],
            &mut Vec::new(),
        )
    }

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

    #[test]
    fn environment_and_healthcheck() {
        let s = spec("image: x\nenvironment:\n  - A=1\n  - FROM_ENV\n  - MISSING\nhealthcheck:\n  test: curl -f http://localhost\n  interval: 1s\n  retries: 3\nrestart: on-failure:2\ncommand: serve --port 1\n").unwrap();
        assert_eq!(s.environment.get("A").map(String::as_str), Some("1"));
        assert_eq!(s.environment.get("FROM_ENV").map(String::as_str), Some("e"));
        assert!(!s.environment.contains_key("MISSING"));
        let h = s.healthcheck.unwrap();
        assert_eq!(h.test, vec!["CMD-SHELL", "curl -f http://localhost"]);
        assert_eq!(h.interval, Some(Duration::from_secs(1)));
        assert_eq!(s.restart, Restart::OnFailure(2));
        assert_eq!(s.command.unwrap(), vec!["serve", "--port", "1"]);
        assert_eq!(s.networks.keys().collect::<Vec<_>>(), vec!["default"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = spec("build: .\n").unwrap_err();
        assert_eq!(e.key, "build");
        let e = spec("image: x\nrestart: sometimes\n").unwrap_err();
        assert_eq!(e.to_string(), "services.api.restart: `sometimes` is not a restart policy (no, always, unless-stopped, on-failure[:N])");
        let e = spec("image: x\nhealthcheck:\n  test: [curl]\n").unwrap_err();
        assert_eq!(e.key, "healthcheck.test");
        let e = spec("image: x\ndeploy:\n  replicas: 3\n").unwrap_err();
        assert_eq!(e.key, "deploy.replicas");
    }
}

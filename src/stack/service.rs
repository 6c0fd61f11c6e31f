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

use super::fields::{
    as_i64, command, env_files, flag, healthcheck, key_values, list, opt_duration, restart, size,
    str_of, strings,
};
pub use super::fields::{parse_go_duration, scalar, shell_split, Healthcheck, Restart};
use super::mounts::{parse_mount, Mount};
use super::ports::{parse_port, Port};
use crate::envfile::EnvFile;

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
        let tmpfs = strings(map.get("tmpfs"));
        let tmpfs_targets = tmpfs.iter().map(|t| t.split(':').next().unwrap_or(t));
        let mut targets: Vec<&str> = Vec::new();
        for target in tmpfs_targets.chain(mounts.iter().map(|m| m.target.as_str())) {
            if targets.contains(&target) {
                return Err(err("volumes", format!("target {target} already mounted")));
            }
            targets.push(target);
        }

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
            tmpfs,
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

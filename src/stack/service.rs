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

use super::definition::Definition;
pub use super::definition::SpecError;
use super::fields::{
    command, flag, healthcheck, key_values, opt_duration, restart, str_of, strings,
};
pub use super::fields::{parse_go_duration, scalar, shell_split, Healthcheck, Restart};
use super::mounts::Mount;
use super::ports::Port;

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
        let empty = serde_json::Map::new();
        let map = def.as_object().unwrap_or(&empty);
        for key in map.keys() {
            if !HONOURED.contains(&key.as_str()) && !key.starts_with("x-") {
                warnings.push(format!(
                    "services.{name}.{key} is not supported by difyctl and is ignored"
                ));
            }
        }
        let d = Definition { name, map, dir };
        let err = |key: &str, message: String| d.err(key, message);
        let image = d.image(warnings)?;
        let environment = d.environment(vars)?;
        let (mounts, tmpfs) = d.mounts(volumes)?;
        let (network_mode, networks) = d.networks()?;
        let (memory_limit, nano_cpus) = d.limits()?;
        let get = |key: &str| map.get(key);
        let pairs = |key: &str| key_values(get(key), false).map_err(|m| err(key, m));
        Ok(ServiceSpec {
            name: name.to_string(),
            image,
            container_name: str_of(get("container_name")),
            command: command(get("command")).map_err(|m| err("command", m))?,
            entrypoint: command(get("entrypoint")).map_err(|m| err("entrypoint", m))?,
            environment,
            ports: d.ports()?,
            mounts,
            networks,
            network_mode,
            healthcheck: healthcheck(get("healthcheck"))
                .map_err(|(k, m)| err(&format!("healthcheck{k}"), m))?,
            restart: restart(get("restart")).map_err(|m| err("restart", m))?,
            user: str_of(get("user")),
            working_dir: str_of(get("working_dir")),
            hostname: str_of(get("hostname")),
            tty: flag(get("tty")),
            stdin_open: flag(get("stdin_open")),
            init: get("init").map(|v| flag(Some(v))),
            privileged: flag(get("privileged")),
            cap_add: strings(get("cap_add")),
            cap_drop: strings(get("cap_drop")),
            extra_hosts: pairs("extra_hosts")?
                .into_iter()
                .map(|(k, v)| v.map_or(k.clone(), |v| format!("{k}:{v}")))
                .collect(),
            labels: pairs("labels")?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            memory_limit,
            nano_cpus,
            shm_size: d.size("shm_size")?,
            stop_grace_period: opt_duration(get("stop_grace_period"))
                .map_err(|m| err("stop_grace_period", m))?,
            stop_signal: str_of(get("stop_signal")),
            ulimits: d.ulimits()?,
            sysctls: pairs("sysctls")?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            tmpfs,
            security_opt: strings(get("security_opt")),
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

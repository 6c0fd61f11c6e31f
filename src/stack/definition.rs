//! One service's compose definition read part by part (image, environment, ports, mounts,
//! networks, limits, ulimits), each error naming `services.<name>.<key>`. `service.rs`
//! assembles the parts into a `ServiceSpec`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::fields::{as_i64, env_files, key_values, list, scalar, size, str_of, strings};
use super::mounts::{parse_mount, Mount};
use super::ports::{parse_port, Port};
use crate::envfile::EnvFile;

/// A problem with one service's definition: `key` is the dotted path below `services.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("services.{service}.{key}: {message}")]
pub struct SpecError {
    pub service: String,
    pub key: String,
    pub message: String,
}

/// A service's definition (already interpolated) and where its relative paths start.
pub struct Definition<'a> {
    pub name: &'a str,
    pub map: &'a Map<String, Value>,
    pub dir: &'a Path,
}

impl Definition<'_> {
    pub fn err(&self, key: &str, message: String) -> SpecError {
        SpecError {
            service: self.name.to_string(),
            key: key.to_string(),
            message,
        }
    }

    /// `image` (a `build` without one is refused: difyctl does not build).
    pub fn image(&self, warnings: &mut Vec<String>) -> Result<String, SpecError> {
        let image = match (str_of(self.map.get("image")), self.map.get("build")) {
            (Some(image), _) => image,
            (None, Some(_)) => {
                return Err(self.err(
                    "build",
                    "difyctl does not build images: build it with `docker build -t NAME` and set `image: NAME`".into(),
                ))
            }
            (None, None) => return Err(self.err("image", "every service needs an image".into())),
        };
        if self.map.contains_key("build") {
            warnings.push(format!(
                "services.{}.build is ignored: difyctl runs the image `{image}`",
                self.name
            ));
        }
        Ok(image)
    }

    /// `env_file` entries in order, then `environment` over them; an entry written without a
    /// value takes it from `vars` (or is left out when `vars` has none).
    pub fn environment(
        &self,
        vars: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, String>, SpecError> {
        let mut environment = BTreeMap::new();
        let files = env_files(self.map.get("env_file")).map_err(|m| self.err("env_file", m))?;
        for (i, (file, required)) in files.into_iter().enumerate() {
            let key = format!("env_file[{i}]");
            let path: PathBuf = self
                .dir
                .join(&file)
                .components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect();
            let parsed = match EnvFile::read_optional(&path) {
                Ok(Some(f)) => f,
                Ok(None) if !required => continue,
                Ok(None) => {
                    return Err(self.err(&key, format!("{} does not exist", path.display())))
                }
                Err(e) => return Err(self.err(&key, crate::error_chain(&e))),
            };
            let values = parsed
                .own_values(vars)
                .map_err(|e| self.err(&key, crate::error_chain(&e)))?;
            for entry in &parsed.entries {
                if let Some(v) = values.get(&entry.key) {
                    environment.insert(entry.key.clone(), v.clone());
                }
            }
        }
        let pairs = key_values(self.map.get("environment"), true)
            .map_err(|m| self.err("environment", m))?;
        for (key, value) in pairs {
            match value.or_else(|| vars.get(&key).cloned()) {
                Some(v) => environment.insert(key, v),
                None => environment.remove(&key),
            };
        }
        Ok(environment)
    }

    pub fn ports(&self) -> Result<Vec<Port>, SpecError> {
        let ports = list(self.map.get("ports")).map_err(|m| self.err("ports", m))?;
        let mut out = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            out.extend(parse_port(p).map_err(|m| self.err(&format!("ports[{i}]"), m))?);
        }
        Ok(out)
    }

    /// `volumes` and `tmpfs`; no target mounted twice.
    pub fn mounts(&self, volumes: &[String]) -> Result<(Vec<Mount>, Vec<String>), SpecError> {
        let mounts = list(self.map.get("volumes"))
            .map_err(|m| self.err("volumes", m))?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                parse_mount(v, self.dir, volumes).map_err(|m| self.err(&format!("volumes[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tmpfs = strings(self.map.get("tmpfs"));
        let tmpfs_targets = tmpfs.iter().map(|t| t.split(':').next().unwrap_or(t));
        let mut targets: Vec<&str> = Vec::new();
        for target in tmpfs_targets.chain(mounts.iter().map(|m| m.target.as_str())) {
            if targets.contains(&target) {
                return Err(self.err("volumes", format!("target {target} already mounted")));
            }
            targets.push(target);
        }
        Ok((mounts, tmpfs))
    }

    /// `network_mode` and `networks` (with their aliases): `default` when neither is given.
    #[allow(clippy::type_complexity)]
    pub fn networks(&self) -> Result<(Option<String>, BTreeMap<String, Vec<String>>), SpecError> {
        let network_mode = str_of(self.map.get("network_mode"));
        let mut networks = BTreeMap::new();
        match self.map.get("networks") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for n in items {
                    let n = n.as_str().ok_or_else(|| {
                        self.err("networks", "a list must hold network names".into())
                    })?;
                    networks.insert(n.to_string(), Vec::new());
                }
            }
            Some(Value::Object(m)) => {
                for (n, v) in m {
                    networks.insert(n.clone(), self.aliases(n, v)?);
                }
            }
            Some(_) => return Err(self.err("networks", "must be a list or a mapping".into())),
        }
        match network_mode.as_deref() {
            None if networks.is_empty() => {
                networks.insert("default".into(), Vec::new());
            }
            None => {}
            Some("host" | "none" | "bridge") if networks.is_empty() => {}
            Some(mode) => {
                return Err(self.err(
                    "network_mode",
                    format!("`{mode}` is not supported (host, none or bridge, without `networks`)"),
                ))
            }
        }
        Ok((network_mode, networks))
    }

    fn aliases(&self, network: &str, v: &Value) -> Result<Vec<String>, SpecError> {
        Ok(match v.get("aliases") {
            Some(a) => list(Some(a))
                .map_err(|m| self.err(&format!("networks.{network}.aliases"), m))?
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            None => Vec::new(),
        })
    }

    /// Memory and CPU limits (`mem_limit`/`cpus`, or `deploy.resources.limits`); more than
    /// one replica is refused (difyctl runs one container per service).
    pub fn limits(&self) -> Result<(Option<u64>, Option<i64>), SpecError> {
        let deploy = self.map.get("deploy");
        if let Some(r) = deploy.and_then(|d| d.get("replicas")).and_then(as_i64) {
            if r != 1 {
                return Err(self.err(
                    "deploy.replicas",
                    format!("difyctl runs one container per service, not {r}"),
                ));
            }
        }
        let limits = deploy.and_then(|d| d.pointer("/resources/limits"));
        let memory = self
            .map
            .get("mem_limit")
            .or_else(|| limits.and_then(|l| l.get("memory")));
        let memory_limit = match memory {
            None | Some(Value::Null) => None,
            Some(v) => Some(size(v).map_err(|m| self.err("mem_limit", m))?),
        };
        let cpus = self
            .map
            .get("cpus")
            .or_else(|| limits.and_then(|l| l.get("cpus")));
        let nano_cpus = match cpus {
            None | Some(Value::Null) => None,
            Some(v) => {
                let cpus: f64 = scalar(v)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| self.err("cpus", format!("`{v}` is not a number of CPUs")))?;
                Some((cpus * 1e9) as i64)
            }
        };
        Ok((memory_limit, nano_cpus))
    }

    /// A size key (`shm_size`); none when absent.
    pub fn size(&self, key: &str) -> Result<Option<u64>, SpecError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(size(v).map_err(|m| self.err(key, m))?)),
        }
    }

    /// `ulimits`: each a number (soft = hard) or `soft`/`hard`.
    pub fn ulimits(&self) -> Result<BTreeMap<String, (i64, i64)>, SpecError> {
        let mut ulimits = BTreeMap::new();
        let Some(Value::Object(m)) = self.map.get("ulimits") else {
            return Ok(ulimits);
        };
        for (k, v) in m {
            let bad = || {
                self.err(
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
        Ok(ulimits)
    }
}

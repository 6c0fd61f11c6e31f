//! Where a row's value is found, in order: flag > variable > difyctl.toml > `.env` >
//! default, and the origin named when that value is wrong.

use super::file::FileConfig;
use super::row::{Kind, Setting, Value};
use super::ConfigError;
use crate::envfile::EnvFile;

/// Values taken from the command line (clap has already looked at each flag's variable).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// difyctl.toml to read (`--config`; none: `./difyctl.toml` when it exists).
    pub config: Option<std::path::PathBuf>,
    /// `--env-file` (repeatable; none: `./.env`).
    pub env_file: Vec<std::path::PathBuf>,
    /// `--log-format`: the access log follows it.
    pub log_format: super::LogFormat,
    /// Row key -> its value and origin (`--max-body`, or `DIFYCTL_MAX_BODY` when clap took
    /// it from the variable).
    values: Vec<(&'static str, Value, String)>,
}

impl Flags {
    /// Sets `row` as if its flag had been given (`origin`: the flag or variable named in errors).
    pub fn set(&mut self, row: &Setting, value: Value, origin: String) {
        self.values.retain(|(k, _, _)| *k != row.key);
        self.values.push((row.key, value, origin));
    }

    /// `row` set from `--flag` (tests, and commands that take a value under another name).
    pub fn with(mut self, row: &Setting, value: &str) -> Flags {
        let value = match row.kind {
            Kind::List => Value::List(vec![value.to_string()]),
            _ => Value::One(value.to_string()),
        };
        let origin = match row.flag {
            Some((f, _)) => format!("--{f}"),
            None => row.var.to_string(),
        };
        self.set(row, value, origin);
        self
    }

    fn get(&self, key: &str) -> Option<(&Value, &str)> {
        self.values
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, v, o)| (v, o.as_str()))
    }
}

/// Every place a value may come from, in order.
pub struct Sources<'a> {
    pub flags: &'a Flags,
    /// The process environment (`DIFYCTL_*` of rows whose flag this command lacks).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub file: &'a FileConfig,
    pub dotenv: Option<&'a EnvFile>,
}

impl Sources<'_> {
    /// The value that applies to `row` and where it came from; `None`: its default.
    pub fn find(&self, row: &Setting) -> Option<(Value, String)> {
        if let Some((v, origin)) = self.flags.get(row.key) {
            return Some((v.clone(), origin.to_string()));
        }
        if let Some(v) = (self.env)(row.var) {
            let value = match row.kind {
                Kind::List => Value::List(Value::One(v).items()),
                Kind::Switch { sets } if truthy(&v) => Value::One(sets.to_string()),
                Kind::Switch { .. } => return None,
                Kind::One => Value::One(v),
            };
            return Some((value, row.var.to_string()));
        }
        if let Some((v, origin)) = self.file.get(row.key) {
            return Some((v.clone(), origin));
        }
        let (key, env) = (row.dotenv?, self.dotenv?);
        let entry = env.get(key)?;
        let v = entry.value.trim();
        // Empty, or `.env.example`'s placeholder: nobody set it.
        if v.is_empty() || crate::dify::dotenv::PLACEHOLDERS.contains(&v) {
            return None;
        }
        Some((Value::One(v.to_string()), env.origin(key)))
    }

    /// Whether anything but the default sets `row`.
    pub fn is_set(&self, row: &Setting) -> bool {
        self.find(row).is_some()
    }

    /// `row`'s value, parsed; the origin is named when the parser refuses it.
    pub fn get<T>(
        &self,
        row: &Setting,
        parse: fn(&Value) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.find(row) {
            Some((value, origin)) => {
                parse(&value).map_err(|message| ConfigError::Invalid { origin, message })
            }
            None => parse(&Value::One(row.default.to_string())).map_err(|message| {
                ConfigError::Invalid {
                    origin: format!("the default of {}", row.key),
                    message,
                }
            }),
        }
    }
}

/// How clap and the environment write "on" for a switch.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

//! `difyctl.toml` as written: each key with its value and line, every key checked against the
//! rows of `settings.rs` (an unknown one is refused with its line), nothing else kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::row::{Kind, Setting, Value};
use super::ConfigError;

/// The keys of a difyctl.toml and their values (dotted keys: `proxy.max_body`).
#[derive(Debug, Default, Clone)]
pub struct FileConfig {
    /// The file, as named in errors (none: no file was read).
    path: Option<PathBuf>,
    /// Key -> value, 1-based line.
    values: BTreeMap<String, (Value, usize)>,
}

impl FileConfig {
    /// Reads `path`; with `required == false` a missing file is the empty config. Every key
    /// must be one of `rows`'.
    pub fn read(path: &Path, required: bool, rows: &[&Setting]) -> Result<FileConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileConfig::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(path, &text, rows)
    }

    /// Parses `text` (read from `path`): every key must be one of `rows`'.
    pub fn parse(path: &Path, text: &str, rows: &[&Setting]) -> Result<FileConfig, ConfigError> {
        let error = |message: String| ConfigError::Toml {
            path: path.to_path_buf(),
            message,
        };
        let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        // The parser's own report quotes the offending line: a file given by mistake
        // (`--config /etc/shadow`) must not have its content printed. Line and problem only.
        let table = DeTable::parse(text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            error(match e.span() {
                Some(s) => format!("line {}: {message}", line(s.start)),
                None => message,
            })
        })?;
        let mut file = FileConfig {
            path: Some(path.to_path_buf()),
            values: BTreeMap::new(),
        };
        let mut found = Vec::new();
        flatten("", table.get_ref(), &mut found);
        for (key, value, offset) in found {
            let at = line(offset);
            let row = rows.iter().find(|r| r.key == key).ok_or_else(|| {
                error(format!(
                    "line {at}: unknown key `{key}`{}",
                    hint(&key, rows)
                ))
            })?;
            let value =
                convert(&value, row.kind).map_err(|m| error(format!("line {at}: {key}: {m}")))?;
            file.values.insert(key, (value, at));
        }
        Ok(file)
    }

    /// `key`'s value and its origin (`difyctl.toml:12 (proxy.max_body)`).
    pub fn get(&self, key: &str) -> Option<(&Value, String)> {
        let (value, line) = self.values.get(key)?;
        let name = self
            .path
            .as_deref()
            .and_then(Path::file_name)
            .map_or("difyctl.toml".into(), |n| n.to_string_lossy());
        Some((value, format!("{name}:{line} ({key})")))
    }

    /// A file with `key = value` set, as if read from `difyctl.toml` (for tests).
    pub fn with(mut self, key: &str, value: Value) -> FileConfig {
        self.values.insert(key.to_string(), (value, 1));
        self
    }
}

/// Every leaf of `table` under `prefix`: (dotted key, value, byte offset of the key).
fn flatten<'i>(
    prefix: &str,
    table: &DeTable<'i>,
    out: &mut Vec<(String, Spanned<DeValue<'i>>, usize)>,
) {
    for (k, v) in table.iter() {
        let key = match prefix {
            "" => k.get_ref().to_string(),
            p => format!("{p}.{}", k.get_ref()),
        };
        match v.get_ref() {
            DeValue::Table(inner) => flatten(&key, inner, out),
            _ => out.push((key, v.clone(), k.span().start)),
        }
    }
}

/// A TOML value as the row's kind reads it: strings, numbers and booleans as text, arrays of
/// them as lists.
fn convert(value: &Spanned<DeValue>, kind: Kind) -> Result<Value, String> {
    let scalar = |v: &DeValue| -> Option<String> {
        match v {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.to_string()),
            DeValue::Float(f) => Some(f.to_string()),
            DeValue::Boolean(b) => Some(b.to_string()),
            _ => None,
        }
    };
    match (value.get_ref(), kind) {
        (DeValue::Array(items), Kind::List) => items
            .iter()
            .map(|i| scalar(i.get_ref()).ok_or_else(|| "expected a list of strings".to_string()))
            .collect::<Result<_, _>>()
            .map(Value::List),
        (DeValue::Array(_), _) => Err("expected one value, not a list".into()),
        (v, _) => scalar(v)
            .map(Value::One)
            .ok_or_else(|| "expected a string, number or boolean".into()),
    }
}

/// "did you mean" for a key one letter off (or in the wrong section).
fn hint(key: &str, rows: &[&Setting]) -> String {
    let name = key.rsplit('.').next().unwrap_or(key);
    let near = rows.iter().find(|r| {
        let other = r.key.rsplit('.').next().unwrap_or(r.key);
        other == name || close(other, name)
    });
    match near {
        Some(r) => format!(" (did you mean `{}`?)", r.key),
        None => String::new(),
    }
}

/// One edit apart (a letter missing, extra or changed).
fn close(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if a == b {
        return true;
    }
    if long.len() - short.len() > 1 {
        return false;
    }
    // They differ, so the first difference is inside `long`.
    let p = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    let rest = if short.len() == long.len() {
        &short[p + 1..]
    } else {
        &short[p..]
    };
    rest == &long[p + 1..]
}

//! `volumes:` entries of a service in both compose forms. A source that is a path (`./x`,
//! `/x`, `~/x`) is a bind mount resolved against the compose file's folder; a name is a named
//! volume that must be declared at the top level; a lone target is an anonymous volume.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::service::scalar;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    /// Absolute host path (created when missing, as compose does).
    Bind(PathBuf),
    /// Top-level volume key (the Docker name is decided by the project).
    Volume(String),
    Anonymous,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: Source,
    pub target: String,
    pub read_only: bool,
}

pub fn parse_mount(v: &Value, dir: &Path, declared: &[String]) -> Result<Mount, String> {
    let (kind, source, target, read_only) = match v {
        Value::Object(m) => {
            let get = |k: &str| m.get(k).and_then(scalar).filter(|s| !s.is_empty());
            let target = get("target").ok_or("`target` is required")?;
            let read_only = matches!(m.get("read_only"), Some(Value::Bool(true)));
            (get("type"), get("source"), target, read_only)
        }
        other => {
            let text = scalar(other).ok_or("must be a string or a mapping")?;
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [t] => (None, None, t.to_string(), false),
                [s, t] => (None, Some(s.to_string()), t.to_string(), false),
                [s, t, mode] => {
                    let ro = mode.split(',').any(|m| m == "ro");
                    (None, Some(s.to_string()), t.to_string(), ro)
                }
                _ => return Err(format!("`{text}` is not SOURCE:TARGET[:MODE]")),
            }
        }
    };
    let is_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    let source = match (kind.as_deref(), source) {
        (Some("tmpfs"), _) => Source::Tmpfs,
        (Some("bind"), Some(s)) => Source::Bind(resolve(&s, dir)),
        (None, Some(s)) if is_path(&s) => Source::Bind(resolve(&s, dir)),
        (Some("volume") | None, Some(name)) => {
            if !declared.contains(&name) {
                return Err(format!(
                    "volume `{name}` is not declared under the top-level `volumes:`"
                ));
            }
            Source::Volume(name)
        }
        (Some("volume") | None, None) => Source::Anonymous,
        (Some(other), _) => {
            return Err(format!(
                "mount type `{other}` is not supported (bind, volume, tmpfs)"
            ))
        }
    };
    Ok(Mount {
        source,
        target,
        read_only,
    })
}

/// `./x` against the compose folder, `~/x` against $HOME; `..` parts are kept (Docker needs an
/// absolute path, not a canonical one).
fn resolve(path: &str, dir: &Path) -> PathBuf {
    let p = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(path), |h| PathBuf::from(h).join(rest)),
        None => PathBuf::from(path),
    };
    let joined = if p.is_absolute() { p } else { dir.join(p) };
    let absolute = if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir().map_or(joined.clone(), |cwd| cwd.join(&joined))
    };
    // Drop `.` components so labels and hashes do not change with how the path was written.
    absolute
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_volumes_and_errors() {
        let dir = Path::new("/srv/dify");
        let declared = vec!["data".to_string()];
        let m = parse_mount(
            &Value::String("./volumes/db:/var/lib/db:ro".into()),
            dir,
            &declared,
        )
        .unwrap();
        assert_eq!(
            m.source,
            Source::Bind(PathBuf::from("/srv/dify/volumes/db"))
        );
        assert!(m.read_only);
        let m = parse_mount(&Value::String("data:/data".into()), dir, &declared).unwrap();
        assert_eq!(m.source, Source::Volume("data".into()));
        let m = parse_mount(&Value::String("/cache".into()), dir, &declared).unwrap();
        assert_eq!(m.source, Source::Anonymous);
        let e = parse_mount(&Value::String("oradata:/x".into()), dir, &declared).unwrap_err();
        assert!(e.contains("`oradata` is not declared"), "{e}");
    }
}

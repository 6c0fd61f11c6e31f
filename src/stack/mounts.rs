//! `volumes:` entries of a service in both compose forms. A source that is a path (`./x`,
//! `/x`, `~/x`) is a bind mount resolved against the compose file's folder; a name is a named
//! volume that must be declared at the top level; a lone target is an anonymous volume.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::fields::scalar;

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
            check_long(m)?;
            let get = |k: &str| m.get(k).and_then(scalar).filter(|s| !s.is_empty());
            let target = get("target").ok_or("`target` is required")?;
            let read_only = matches!(m.get("read_only"), Some(Value::Bool(true)));
            (get("type"), get("source"), target, read_only)
        }
        other => {
            let text = scalar(other).ok_or("must be a string or a mapping")?;
            let short = split_short(&text)?;
            (None, short.source, short.target, short.read_only)
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

/// A short-syntax volume, split as compose-go splits it.
#[derive(Debug, PartialEq, Eq)]
pub struct Short {
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
}

/// `[SOURCE:]TARGET[:OPTIONS]`, split at the colons that are not inside a `${...}` (a literal
/// one from `$${...}` keeps its default's colons, like `${TIME:-12:30}`); an empty section
/// (`/foo::ro`) or a fourth one is refused. Options (`ro`, `rw`, `nocopy`, propagation, `z`)
/// are comma-separated; only `ro` matters to the model.
pub fn split_short(spec: &str) -> Result<Short, String> {
    if spec.is_empty() {
        return Err("invalid empty volume spec".into());
    }
    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'{') => {
                depth += 1;
                current.push(c);
            }
            '}' if depth > 0 => {
                depth -= 1;
                current.push(c);
            }
            ':' if depth == 0 => sections.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    sections.push(current);
    if sections.iter().any(String::is_empty) {
        return Err(format!(
            "invalid spec `{spec}`: empty section between colons"
        ));
    }
    let mut sections = sections.into_iter();
    match (
        sections.next(),
        sections.next(),
        sections.next(),
        sections.next(),
    ) {
        (Some(target), None, _, _) => Ok(Short {
            source: None,
            target,
            read_only: false,
        }),
        (Some(source), Some(target), options, None) => Ok(Short {
            source: Some(source),
            target,
            read_only: options.is_some_and(|o| o.split(',').any(|m| m == "ro")),
        }),
        _ => Err(format!(
            "invalid spec `{spec}`: too many colons (SOURCE:TARGET[:MODE])"
        )),
    }
}

/// The long syntax's keys (compose's schema), and a tmpfs size that is a whole number of bytes.
fn check_long(m: &serde_json::Map<String, Value>) -> Result<(), String> {
    const KEYS: &[(&str, &[&str])] = &[
        (
            "bind",
            &["propagation", "create_host_path", "recursive", "selinux"],
        ),
        ("volume", &["nocopy", "subpath", "labels"]),
        ("tmpfs", &["size", "mode"]),
        ("image", &["subpath"]),
    ];
    const TOP: &[&str] = &["type", "source", "target", "read_only", "consistency"];
    for (key, value) in m {
        if key.starts_with("x-") || TOP.contains(&key.as_str()) {
            continue;
        }
        let Some((_, allowed)) = KEYS.iter().find(|(k, _)| k == key) else {
            return Err(format!("additional properties '{key}' not allowed"));
        };
        for inner in value.as_object().into_iter().flat_map(|o| o.keys()) {
            if !inner.starts_with("x-") && !allowed.contains(&inner.as_str()) {
                return Err(format!(
                    "{key}: additional properties '{inner}' not allowed"
                ));
            }
        }
    }
    match m.get("tmpfs").and_then(|t| t.get("size")) {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i < 0) => {
            Err("tmpfs.size must be greater than or equal to 0".into())
        }
        Some(Value::Number(n)) if n.as_i64().is_none() && n.as_u64().is_none() => {
            Err("tmpfs.size must be a integer (bytes) or a size like `64m`".into())
        }
        _ => Ok(()),
    }
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

    #[test]
    fn short_syntax_splits_like_compose_go() {
        let s = split_short("/tmp:/tmp/${TIME:-12:30:45}/path:slave,ro").unwrap();
        assert_eq!(s.source.as_deref(), Some("/tmp"));
        assert_eq!(s.target, "/tmp/${TIME:-12:30:45}/path");
        assert!(s.read_only);
        assert!(split_short("/foo::ro").is_err());
        assert!(split_short("").is_err());
        assert!(split_short("a:b:c:d").is_err());
    }
}

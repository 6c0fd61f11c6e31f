//! Relative paths made absolute against the folder they were written for. A service taken
//! from another file (`extends: {file: ...}`) or another project (`include:`) names its build
//! context, env files and bind mounts relative to that file's or project's folder, not to the
//! main project's, so compose resolves them before the definition moves (compose-go's
//! `ResolveRelativePaths`).

use serde_json::Value;
use std::path::Path;

/// Every service of `doc`, and the top-level `secrets`/`configs` files.
pub fn resolve_document(doc: &mut Value, dir: &Path) {
    if let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) {
        for def in services.values_mut() {
            resolve_service(def, dir);
        }
    }
    for top in ["secrets", "configs"] {
        if let Some(items) = doc.get_mut(top).and_then(Value::as_object_mut) {
            for def in items.values_mut() {
                if let Some(file) = def.get_mut("file") {
                    absolute(file, dir);
                }
            }
        }
    }
}

/// One service definition.
pub fn resolve_service(def: &mut Value, dir: &Path) {
    let Some(map) = def.as_object_mut() else {
        return;
    };
    match map.get_mut("build") {
        Some(context @ Value::String(_)) => absolute_context(context, dir),
        Some(Value::Object(build)) => {
            if let Some(context) = build.get_mut("context") {
                absolute_context(context, dir);
            }
        }
        _ => {}
    }
    for key in ["env_file", "label_file"] {
        match map.get_mut(key) {
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::Object(entry) => {
                            if let Some(path) = entry.get_mut("path") {
                                absolute(path, dir);
                            }
                        }
                        other => absolute(other, dir),
                    }
                }
            }
            Some(one) => absolute(one, dir),
            None => {}
        }
    }
    if let Some(Value::Array(volumes)) = map.get_mut("volumes") {
        for volume in volumes {
            bind_source(volume, dir);
        }
    }
    if let Some(extends) = map.get_mut("extends").and_then(Value::as_object_mut) {
        if let Some(file) = extends.get_mut("file") {
            absolute(file, dir);
        }
    }
}

/// `./data:/data` or `{type: bind, source: ./data}`: the source made absolute.
fn bind_source(volume: &mut Value, dir: &Path) {
    match volume {
        Value::String(text) => {
            if let Some((source, rest)) = text.split_once(':') {
                if is_relative_path(source) {
                    *text = format!("{}:{rest}", normalize(&dir.join(source)));
                }
            }
        }
        Value::Object(long) => {
            let bind = long.get("type").and_then(Value::as_str) == Some("bind");
            if let Some(source @ Value::String(_)) = long.get_mut("source") {
                if bind || source.as_str().is_some_and(is_relative_path) {
                    absolute(source, dir);
                }
            }
        }
        _ => {}
    }
}

/// A build context that is a folder (not a git URL or a `name:` reference).
fn absolute_context(context: &mut Value, dir: &Path) {
    let Some(text) = context.as_str() else {
        return;
    };
    if text.contains("://")
        || text.starts_with("git@")
        || (text.contains(':') && !text.starts_with('.'))
    {
        return;
    }
    absolute(context, dir);
}

fn absolute(value: &mut Value, dir: &Path) {
    if let Value::String(text) = value {
        if !text.is_empty() && !text.starts_with('/') && !text.starts_with('~') {
            *text = normalize(&dir.join(&*text));
        }
    }
}

fn is_relative_path(source: &str) -> bool {
    source == "." || source == ".." || source.starts_with("./") || source.starts_with("../")
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> String {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_paths_follow_their_file() {
        let mut def = json!({
            "build": {"context": "./app"},
            "env_file": ["./a.env", {"path": "../b.env"}],
            "volumes": ["./data:/data:ro", "named:/n", {"type": "bind", "source": "logs", "target": "/l"}],
        });
        resolve_service(&mut def, Path::new("/srv/sub"));
        assert_eq!(def["build"]["context"], "/srv/sub/app");
        assert_eq!(
            def["env_file"],
            json!(["/srv/sub/a.env", {"path": "/srv/b.env"}])
        );
        assert_eq!(def["volumes"][0], "/srv/sub/data:/data:ro");
        assert_eq!(def["volumes"][1], "named:/n");
        assert_eq!(def["volumes"][2]["source"], "/srv/sub/logs");
    }
}

//! The loaded document in compose's canonical form, as `docker compose config` prints it and
//! as the service model reads it: `environment` as a mapping with valueless entries filled
//! from the environment, and `depends_on` as a mapping of dependencies, including the ones
//! compose implies (`links`, `network_mode: service:x` and the other namespaces,
//! `volumes_from`).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// Every service of `document` normalised; `dir` is the project's folder.
pub fn normalize(document: &mut Value, vars: &HashMap<String, String>, dir: &std::path::Path) {
    normalize_environment(document, vars);
    bind_devices(document, dir);
    let Some(services) = document.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    let defined: Vec<String> = services.keys().cloned().collect();
    for def in services.values_mut() {
        if let Some(map) = def.as_object_mut() {
            normalize_depends_on(map, &defined);
        }
    }
}

/// A local volume that is really a bind mount (`driver_opts: {type: none, o: bind, device:
/// ./data}`): its device made absolute against the project's folder, as compose does (Docker
/// would otherwise resolve it against its own working directory).
fn bind_devices(document: &mut Value, dir: &std::path::Path) {
    let Some(volumes) = document.get_mut("volumes").and_then(Value::as_object_mut) else {
        return;
    };
    for def in volumes.values_mut() {
        let local = def.get("driver").is_none_or(|d| d == "local");
        let Some(opts) = def.get_mut("driver_opts").and_then(Value::as_object_mut) else {
            continue;
        };
        if !local || opts.get("o").and_then(Value::as_str) != Some("bind") {
            continue;
        }
        if let Some(Value::String(device)) = opts.get_mut("device") {
            if !device.starts_with('/') {
                let joined = dir.join(&*device);
                let clean: std::path::PathBuf = joined
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                *device = clean.display().to_string();
            }
        }
    }
}

/// `depends_on` as `{name: {condition, required}}`, with the implied dependencies added where
/// the service does not name them itself (restarting with them, as compose marks them, except
/// for `volumes_from`). An implied dependency on a service no file defines is left out: Docker
/// itself refuses the link or namespace when the container is created.
fn normalize_depends_on(def: &mut Map<String, Value>, defined: &[String]) {
    let mut deps = match def.get("depends_on") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|n| {
                (
                    n.to_string(),
                    json!({"condition": "service_started", "required": true}),
                )
            })
            .collect(),
        Some(Value::Object(map)) => {
            let mut map = map.clone();
            for spec in map.values_mut() {
                if let Some(spec) = spec.as_object_mut() {
                    spec.entry("condition")
                        .or_insert_with(|| json!("service_started"));
                    spec.entry("required").or_insert(json!(true));
                }
            }
            map
        }
        // Anything else is the model's to refuse, with its key.
        Some(_) => return,
        None => Map::new(),
    };
    let mut implied = |name: &str, restart: bool| {
        if defined.iter().any(|d| d == name) && !deps.contains_key(name) {
            deps.insert(
                name.to_string(),
                json!({"condition": "service_started", "required": true, "restart": restart}),
            );
        }
    };
    for link in def
        .get("links")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(l) = link.as_str() {
            implied(l.split(':').next().unwrap_or(l), true);
        }
    }
    for key in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(name) = def
            .get(key)
            .and_then(Value::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            implied(name, true);
        }
    }
    for from in def
        .get("volumes_from")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(v) = from.as_str().filter(|v| !v.starts_with("container:")) {
            implied(v.split(':').next().unwrap_or(v), false);
        }
    }
    if !deps.is_empty() {
        def.insert("depends_on".into(), Value::Object(deps));
    }
}

/// `environment` as compose's canonical mapping (a list's `KEY=value` items split at the first
/// `=`, later items winning), and entries without a value (`FOO:` or `- FOO`) taken from the
/// environment compose runs in (`.env` and the process), as compose does; absent there, they
/// stay unset (null).
fn normalize_environment(document: &mut Value, vars: &HashMap<String, String>) {
    let Some(services) = document.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    for def in services.values_mut() {
        let Some(env) = def.get_mut("environment") else {
            continue;
        };
        let mut map = match std::mem::take(env) {
            Value::Object(map) => map,
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => match s.split_once('=') {
                        Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
                        None => (s, Value::Null),
                    },
                    other => (other.to_string(), Value::Null),
                })
                .collect(),
            other => {
                // Not a list or mapping: left for the model to refuse with its key.
                *env = other;
                continue;
            }
        };
        for (k, v) in map.iter_mut() {
            if v.is_null() {
                if let Some(found) = vars.get(k) {
                    *v = Value::String(found.clone());
                }
            }
        }
        *env = Value::Object(map);
    }
}

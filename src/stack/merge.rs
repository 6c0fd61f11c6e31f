//! Several compose files (`-f a -f b`, or `docker-compose.override.yaml` beside the main file)
//! merged the way compose-go merges them (its `override` package): mappings recursively, later
//! files winning; `command`, `entrypoint` and a healthcheck's `test` replaced whole; key=value
//! fields (`environment`, `labels`, build `args`, ...) and the string-or-list fields (`dns`,
//! `env_file`, `tmpfs`, ...) turned into one sequence; service `networks`, `depends_on` and
//! `models` merged by name whatever form each file writes them in; `logging` replaced when the
//! driver changes; other lists appended.
//!
//! Then, on every file's result (also a single file), compose's unicity: in the lists it
//! indexes, an item whose key was seen before replaces that earlier item in its place
//! (volumes and devices by target, ports by their binding, env_file by path, key=value items
//! by key, `extra_hosts` whole).

use serde_json::{Map, Value};

/// Merges `over` into `base` (both whole documents).
pub fn merge_documents(base: Value, over: Value) -> Value {
    merge(base, over, &[])
}

/// An extended service's definition under the one that extends it (compose's `extends`): the
/// same rules as merging files.
pub fn merge_service(base: Value, over: Value) -> Value {
    merge(base, over, &["services", "x"])
}

/// A path pattern segment: a name, or `*` for any.
fn matches(path: &[&str], pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

fn merge(base: Value, over: Value, path: &[&str]) -> Value {
    let is = |pattern: &str| matches(path, pattern);
    if is("services.*.command")
        || is("services.*.entrypoint")
        || is("services.*.healthcheck.test")
        || is("models.*.runtime_flags")
    {
        return over;
    }
    if is("networks.*.ipam.config") {
        return ipam_config(base, over);
    }
    if TO_SEQUENCE.iter().any(|p| is(p)) {
        let mut seq = to_sequence(base);
        seq.extend(to_sequence(over));
        return Value::Array(seq);
    }
    if is("services.*.extra_hosts") || is("services.*.build.extra_hosts") {
        let mut seq = hosts_sequence(base);
        seq.extend(hosts_sequence(over));
        return Value::Array(seq);
    }
    if is("services.*.networks") || is("services.*.depends_on") || is("services.*.models") {
        return Value::Object(merge_maps(as_names(base), as_names(over), path));
    }
    if is("services.*.logging") {
        let driver = |v: &Value| v.get("driver").and_then(Value::as_str).map(str::to_string);
        if driver(&over).is_some() && driver(&base).is_some() && driver(&over) != driver(&base) {
            return over;
        }
    }
    if is("services.*.build") {
        let as_build = |v: Value| match v {
            Value::String(context) => serde_json::json!({ "context": context }),
            other => other,
        };
        return merge_plain(as_build(base), as_build(over), path);
    }
    if is("services.*.ulimits.*") && (!base.is_object() || !over.is_object()) {
        return over;
    }
    merge_plain(base, over, path)
}

/// A network's address pools by subnet: an override of a subnet already there merges into it
/// (in its place), a new subnet is added.
fn ipam_config(base: Value, over: Value) -> Value {
    let (Value::Array(mut pools), Value::Array(overrides)) = (base, over.clone()) else {
        return over;
    };
    for o in overrides {
        let subnet = o.get("subnet").cloned();
        let same = pools
            .iter_mut()
            .find(|p| subnet.is_some() && p.get("subnet") == subnet.as_ref());
        match same {
            Some(pool) => {
                let path = ["networks", "*", "ipam", "config", "*"];
                *pool = merge_plain(std::mem::take(pool), o, &path);
            }
            None => pools.push(o),
        }
    }
    Value::Array(pools)
}

/// Mappings key by key, lists appended, scalars replaced; null changes nothing.
fn merge_plain(base: Value, over: Value, path: &[&str]) -> Value {
    match (base, over) {
        (base, Value::Null) => base,
        (Value::Object(b), Value::Object(o)) => Value::Object(merge_maps(b, o, path)),
        (Value::Array(mut b), Value::Array(o)) => {
            b.extend(o);
            Value::Array(b)
        }
        (_, o) => o,
    }
}

fn merge_maps(
    mut b: Map<String, Value>,
    o: Map<String, Value>,
    path: &[&str],
) -> Map<String, Value> {
    for (k, v) in o {
        let mut child: Vec<&str> = path.to_vec();
        child.push(&k);
        let merged = match b.remove(&k) {
            Some(existing) => merge(existing, v, &child),
            None => v,
        };
        b.insert(k, merged);
    }
    b
}

/// Fields compose-go merges as one sequence of items (maps as `key=value`).
const TO_SEQUENCE: &[&str] = &[
    "networks.*.labels",
    "volumes.*.labels",
    "services.*.annotations",
    "services.*.build.args",
    "services.*.build.additional_contexts",
    "services.*.build.labels",
    "services.*.deploy.labels",
    "services.*.dns",
    "services.*.dns_opt",
    "services.*.dns_search",
    "services.*.env_file",
    "services.*.label_file",
    "services.*.environment",
    "services.*.labels",
    "services.*.sysctls",
    "services.*.tmpfs",
    "services.*.profiles",
];

/// A string, a list, or a mapping (as `key=value` items; a null value as the bare key).
fn to_sequence(v: Value) -> Vec<Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::Null => Value::String(k),
                Value::String(s) => Value::String(format!("{k}={s}")),
                other => Value::String(format!("{k}={}", scalar_text(&other))),
            })
            .collect(),
        other => vec![other],
    }
}

/// `extra_hosts` as `host=ip` items (a host may have several addresses).
fn hosts_sequence(v: Value) -> Vec<Value> {
    match v {
        Value::Object(m) => m
            .into_iter()
            .flat_map(|(k, v)| match v {
                Value::Array(ips) => ips
                    .into_iter()
                    .map(|ip| Value::String(format!("{k}={}", scalar_text(&ip))))
                    .collect::<Vec<_>>(),
                ip => vec![Value::String(format!("{k}={}", scalar_text(&ip)))],
            })
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i.as_str() {
                // `host:ip` is compose's older spelling of `host=ip`.
                Some(s) if !s.contains('=') => match s.split_once(':') {
                    Some((h, ip)) => Value::String(format!("{h}={ip}")),
                    None => i,
                },
                _ => i,
            })
            .collect(),
        other => to_sequence(other),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `[a, b]` or `{a: {...}}` as a map of names.
fn as_names(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| i.as_str().map(|s| (s.to_string(), Value::Null)))
            .collect(),
        Value::String(s) => Map::from_iter([(s, Value::Null)]),
        _ => Map::new(),
    }
}

/// Compose's unicity over a whole document (after merging, or of a single file).
pub fn enforce_unicity(doc: Value) -> Value {
    unique(doc, &mut Vec::new())
}

fn unique(v: Value, path: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    path.push(k.clone());
                    let v = unique(v, path);
                    path.pop();
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            match indexer(&p) {
                Some(index) => Value::Array(dedupe(items, index)),
                None => Value::Array(items),
            }
        }
        other => other,
    }
}

type Indexer = fn(&Value) -> Option<String>;

fn indexer(path: &[&str]) -> Option<Indexer> {
    let is = |pattern: &str| matches(path, pattern);
    if is("services.*.volumes") || is("services.*.devices") {
        return Some(volume_target);
    }
    if is("services.*.ports") {
        return Some(port_key);
    }
    if is("services.*.env_file") {
        return Some(env_file_key);
    }
    if is("services.*.secrets") {
        return Some(|v| mount_key(v, "/run/secrets"));
    }
    if is("services.*.configs") {
        return Some(|v| mount_key(v, ""));
    }
    if is("services.*.extra_hosts") || is("services.*.build.extra_hosts") || is("services.*.expose")
    {
        return Some(whole);
    }
    const KEY_VALUE: &[&str] = &[
        "networks.*.labels",
        "networks.*.ipam.options",
        "services.*.annotations",
        "services.*.build.args",
        "services.*.build.additional_contexts",
        "services.*.build.platform",
        "services.*.build.tags",
        "services.*.build.labels",
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.deploy.labels",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.environment",
        "services.*.labels",
        "services.*.links",
        "services.*.networks.*.aliases",
        "services.*.networks.*.link_local_ips",
        "services.*.profiles",
        "services.*.sysctls",
        "services.*.tmpfs",
    ];
    KEY_VALUE
        .iter()
        .any(|p| is(p))
        .then_some(key_value as Indexer)
}

/// Later items replace the earlier item of the same key, in the earlier one's place.
fn dedupe(items: Vec<Value>, index: Indexer) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for item in items {
        match index(&item) {
            Some(key) => match seen.iter().find(|(k, _)| *k == key) {
                Some((_, at)) => out[*at] = item,
                None => {
                    seen.push((key, out.len()));
                    out.push(item);
                }
            },
            None => out.push(item),
        }
    }
    out
}

fn whole(v: &Value) -> Option<String> {
    Some(scalar_text(v))
}

/// `KEY=value` or `KEY:value` -> KEY (a link `service:alias` by its service).
fn key_value(v: &Value) -> Option<String> {
    let s = v
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| scalar_text(v));
    Some(s.split(['=', ':']).next().unwrap_or("").to_string())
}

fn env_file_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("path").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn mount_key(v: &Value, base: &str) -> Option<String> {
    match v {
        Value::String(source) => Some(format!("{base}/{source}")),
        Value::Object(m) => m
            .get("target")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                m.get("source")
                    .and_then(Value::as_str)
                    .map(|s| format!("{base}/{s}"))
            }),
        _ => None,
    }
}

/// A port's binding: host address, published port(s), container port(s), protocol.
fn port_key(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => {
            let f = |k: &str| m.get(k).map(scalar_text).unwrap_or_default();
            Some(format!(
                "{}:{}:{}/{}",
                f("host_ip"),
                f("published"),
                f("target"),
                m.get("protocol").map_or("tcp".into(), scalar_text)
            ))
        }
        other => {
            let s = scalar_text(other);
            let (spec, proto) = s.split_once('/').unwrap_or((&s, "tcp"));
            Some(format!("{spec}/{proto}"))
        }
    }
}

/// A service volume's target path, in short (`src:dst[:mode]`) or long form.
fn volume_target(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => super::mounts::split_short(s).ok().map(|v| v.target),
        Value::Object(m) => m.get("target").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_saphyr::from_str(s).unwrap()
    }

    #[test]
    fn override_file_merges_like_compose() {
        let base = yaml("services:\n  api:\n    image: api:1\n    command: [serve, --a]\n    environment:\n      - A=1\n      - B=2\n    ports: ['80:80']\n    volumes: ['./data:/data', 'cache:/cache']\n    networks: [default]\n");
        let over = yaml("services:\n  api:\n    image: api:2\n    command: [serve]\n    environment:\n      B: three\n      C: '4'\n    ports: ['81:81']\n    volumes: ['./elsewhere:/data']\n    networks:\n      backend: {aliases: [x]}\n  extra:\n    image: e\n");
        let m = enforce_unicity(merge_documents(base, over));
        let api = &m["services"]["api"];
        assert_eq!(api["image"], "api:2");
        assert_eq!(api["command"], yaml("[serve]"));
        assert_eq!(api["environment"], yaml("['A=1', 'B=three', 'C=4']"));
        assert_eq!(api["ports"], yaml("['80:80', '81:81']"));
        assert_eq!(
            api["volumes"],
            yaml("['./elsewhere:/data', 'cache:/cache']")
        );
        assert_eq!(
            api["networks"],
            yaml("{default: null, backend: {aliases: [x]}}")
        );
        assert_eq!(m["services"]["extra"]["image"], "e");
    }
}

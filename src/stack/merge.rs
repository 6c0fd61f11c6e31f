//! Several compose files (`-f a -f b`, or `docker-compose.override.yaml` beside the main file)
//! merged the way compose merges them: mappings recursively, later files winning; `command`,
//! `entrypoint` and a healthcheck's `test` replaced whole; `environment`, `labels` and
//! `extra_hosts` merged by key whatever form each file writes them in; `volumes` merged by
//! target path; `networks` and `depends_on` merged by name; other lists (`ports`,
//! `env_file`, `dns`, ...) appended without duplicates.

use serde_json::{Map, Value};

/// Merges `over` into `base` (both whole documents).
pub fn merge_documents(base: Value, over: Value) -> Value {
    merge(base, over, "")
}

fn merge(base: Value, over: Value, key: &str) -> Value {
    match (base, over) {
        (base, Value::Null) => base,
        (Value::Object(mut b), Value::Object(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(existing) => merge(existing, v, &k),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (b, o) => match key {
            "command" | "entrypoint" | "test" | "profiles" => o,
            "environment" | "labels" | "extra_hosts" | "sysctls" | "annotations" => {
                Value::Object(merge_maps(as_map(b, '='), as_map(o, '=')))
            }
            "networks" | "depends_on" => Value::Object(merge_maps(as_names(b), as_names(o))),
            "volumes" => merge_by(b, o, volume_target),
            _ => match (b, o) {
                (Value::Array(mut b), Value::Array(o)) => {
                    for item in o {
                        if !b.contains(&item) {
                            b.push(item);
                        }
                    }
                    Value::Array(b)
                }
                (_, o) => o,
            },
        },
    }
}

fn merge_maps(mut b: Map<String, Value>, o: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in o {
        let merged = match b.remove(&k) {
            Some(existing @ Value::Object(_)) => merge(existing, v, &k),
            _ => v,
        };
        b.insert(k, merged);
    }
    b
}

/// `["A=1", "B"]` or `{A: 1}` as a map (`B` alone: null, "from the environment").
fn as_map(v: Value, sep: char) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .map(|s| match s.split_once(sep) {
                Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
                None => (s, Value::Null),
            })
            .collect(),
        _ => Map::new(),
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
        _ => Map::new(),
    }
}

/// Lists merged by a key (the item's identity); later items replace earlier ones.
fn merge_by(b: Value, o: Value, id: fn(&Value) -> Option<String>) -> Value {
    match (b, o) {
        (Value::Array(mut b), Value::Array(o)) => {
            for item in o {
                let key = id(&item);
                match b.iter().position(|x| key.is_some() && id(x) == key) {
                    Some(i) => b[i] = item,
                    None => b.push(item),
                }
            }
            Value::Array(b)
        }
        // Top-level `volumes:` (a mapping) is handled as a mapping above.
        (_, o) => o,
    }
}

/// A service volume's target path, in short (`src:dst[:mode]`) or long form.
fn volume_target(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(match parts.as_slice() {
                [t] => t.to_string(),
                [_, t, ..] => t.to_string(),
                [] => return None,
            })
        }
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
        let m = merge_documents(base, over);
        let api = &m["services"]["api"];
        assert_eq!(api["image"], "api:2");
        assert_eq!(api["command"], yaml("[serve]"));
        assert_eq!(api["environment"], yaml("{A: '1', B: three, C: '4'}"));
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

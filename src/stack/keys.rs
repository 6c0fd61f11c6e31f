//! The keys the compose specification allows. Compose refuses anything else (outside `x-*`
//! extensions) and so does difyctl: a misspelt key silently ignored would start a different
//! stack than the user wrote.

/// Top-level keys.
pub const TOP_LEVEL: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

/// Keys of a service definition (compose specification, 2025).
pub const SERVICE: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "driver_opts",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// A compose document's top level: known keys only, named resources as mappings. A file that
/// has no compose key at all is called that, without quoting it (`-f /etc/shadow` must not
/// print a line of it). `Err((key, message))`.
pub fn check_document(document: &serde_json::Value) -> Result<(), (String, String)> {
    use serde_json::Value;
    let keys: Vec<&String> = document
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    let compose_like = keys.iter().any(|k| {
        k.starts_with("x-")
            || TOP_LEVEL.contains(&k.as_str())
            || TOP_LEVEL.iter().any(|t| distance(k, t) <= 2)
    });
    if !keys.is_empty() && !compose_like {
        return Err((
            "(top level)".into(),
            format!(
                "not a compose file: none of its top-level keys is one of {}",
                TOP_LEVEL.join(", ")
            ),
        ));
    }
    for (key, value) in document.as_object().into_iter().flatten() {
        if let Some(message) = check(key, TOP_LEVEL) {
            return Err((shown(key), message));
        }
        // Named resources: a mapping of names, each a mapping (or empty: all defaults).
        if ["networks", "volumes", "secrets", "configs", "models"].contains(&key.as_str()) {
            let entries = match value {
                Value::Null => continue,
                Value::Object(map) => map,
                _ => return Err((key.clone(), "must be a mapping of names".into())),
            };
            for (name, def) in entries {
                if !def.is_object() && !def.is_null() {
                    return Err((format!("{key}.{name}"), "must be a mapping".into()));
                }
            }
        }
    }
    Ok(())
}

/// A key as an error message shows it: at most 40 printable characters.
fn shown(key: &str) -> String {
    let mut out: String = key.chars().filter(|c| !c.is_control()).take(40).collect();
    if key.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

/// `None` when `key` is allowed; else a message, with the closest allowed key when one is near.
pub fn check(key: &str, allowed: &[&str]) -> Option<String> {
    if key.starts_with("x-") || allowed.contains(&key) {
        return None;
    }
    let closest = allowed
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    Some(match closest {
        Some((_, k)) => format!(
            "`{}` is not a compose key (did you mean `{k}`?)",
            shown(key)
        ),
        None => format!("`{}` is not a compose key", shown(key)),
    })
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_get_a_suggestion() {
        assert_eq!(check("image", SERVICE), None);
        assert_eq!(check("x-anything", SERVICE), None);
        assert_eq!(
            check("imagee", SERVICE).unwrap(),
            "`imagee` is not a compose key (did you mean `image`?)"
        );
        assert_eq!(
            check("enviroment", SERVICE).unwrap(),
            "`enviroment` is not a compose key (did you mean `environment`?)"
        );
        assert_eq!(
            check("flux_capacitor", SERVICE).unwrap(),
            "`flux_capacitor` is not a compose key"
        );
        assert_eq!(
            check("service", TOP_LEVEL).unwrap(),
            "`service` is not a compose key (did you mean `services`?)"
        );
    }
}

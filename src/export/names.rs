//! Kubernetes names: compose service names such as `plugin_daemon` are not valid DNS labels,
//! so objects (and the Services other containers reach) are named with `-` instead of `_`.

/// `plugin_daemon` -> `plugin-daemon`; lower-case, at most 63 characters.
pub fn k8s(name: &str) -> String {
    let mut out: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

/// RFC 1123 label: what namespaces and Service names must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A value naming compose service `from` as a host (`plugin_daemon`, `http://plugin_daemon:5002`,
/// `plugin_daemon:5002`) rewritten to its Kubernetes Service name.
pub fn rewrite_host(value: &str, from: &str, to: &str) -> String {
    if from == to {
        return value.to_string();
    }
    if value == from {
        return to.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(from) {
        let before = &rest[..at];
        let after = &rest[at + from.len()..];
        let starts = before.is_empty()
            || before.ends_with("//")
            || before.ends_with('@')
            || before.ends_with(',');
        let ends = after.is_empty() || after.starts_with([':', '/', ',']);
        out.push_str(before);
        out.push_str(if starts && ends { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_hosts_follow_the_rename() {
        assert_eq!(k8s("plugin_daemon"), "plugin-daemon");
        assert_eq!(
            rewrite_host(
                "http://plugin_daemon:5002",
                "plugin_daemon",
                "plugin-daemon"
            ),
            "http://plugin-daemon:5002"
        );
        assert_eq!(
            rewrite_host("plugin_daemon", "plugin_daemon", "plugin-daemon"),
            "plugin-daemon"
        );
        assert_eq!(
            rewrite_host("my_plugin_daemon_x", "plugin_daemon", "plugin-daemon"),
            "my_plugin_daemon_x"
        );
        assert_eq!(
            rewrite_host("redis://:pw@db_redis:6379/1", "db_redis", "db-redis"),
            "redis://:pw@db-redis:6379/1"
        );
    }
}

//! Interpolated values typed as the compose specification types their field, as compose-go
//! does after interpolation (its `interpolateTypeCastMapping`): `retries: ${N}` with N=3 is the
//! number 3, `read_only: ${RO}` with RO=true the boolean true (a string "true" would read as
//! false or be refused downstream). Only values that contained a variable are cast; a value
//! that does not fit its type is an error naming the key.

use serde_json::Value;

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Bool,
    Bytes,
}

/// Dotted paths with `*` for any name and `[]` for any list item.
const TABLE: &[(&str, Kind)] = &[
    ("services.*.configs[].mode", Kind::Int),
    ("services.*.cpu_count", Kind::Int),
    ("services.*.cpu_percent", Kind::Float),
    ("services.*.cpu_period", Kind::Int),
    ("services.*.cpu_quota", Kind::Int),
    ("services.*.cpu_rt_period", Kind::Int),
    ("services.*.cpu_rt_runtime", Kind::Int),
    ("services.*.cpus", Kind::Float),
    ("services.*.cpu_shares", Kind::Int),
    ("services.*.init", Kind::Bool),
    ("services.*.deploy.replicas", Kind::Int),
    ("services.*.deploy.update_config.parallelism", Kind::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Kind::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Kind::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Kind::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Kind::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Kind::Int,
    ),
    ("services.*.healthcheck.retries", Kind::Int),
    ("services.*.healthcheck.disable", Kind::Bool),
    ("services.*.oom_kill_disable", Kind::Bool),
    ("services.*.oom_score_adj", Kind::Int),
    ("services.*.pids_limit", Kind::Int),
    ("services.*.ports[].target", Kind::Int),
    ("services.*.privileged", Kind::Bool),
    ("services.*.read_only", Kind::Bool),
    ("services.*.scale", Kind::Int),
    ("services.*.secrets[].mode", Kind::Int),
    ("services.*.shm_size", Kind::Bytes),
    ("services.*.stdin_open", Kind::Bool),
    ("services.*.tty", Kind::Bool),
    ("services.*.ulimits.*", Kind::Int),
    ("services.*.ulimits.*.hard", Kind::Int),
    ("services.*.ulimits.*.soft", Kind::Int),
    ("services.*.volumes[].read_only", Kind::Bool),
    ("services.*.volumes[].volume.nocopy", Kind::Bool),
    ("services.*.volumes[].tmpfs.size", Kind::Bytes),
    ("networks.*.external", Kind::Bool),
    ("networks.*.internal", Kind::Bool),
    ("networks.*.attachable", Kind::Bool),
    ("networks.*.enable_ipv4", Kind::Bool),
    ("networks.*.enable_ipv6", Kind::Bool),
    ("volumes.*.external", Kind::Bool),
    ("secrets.*.external", Kind::Bool),
    ("configs.*.external", Kind::Bool),
];

/// `value` (interpolated from text that had a variable) typed for `key` (`services.web.
/// healthcheck.retries`, `services.web.ports[0].target`); `Err` says what was expected.
pub fn cast(key: &str, value: String) -> Result<Value, String> {
    let Some(kind) = kind_of(key) else {
        return Ok(Value::String(value));
    };
    let v = value.trim();
    let bad = |what: &str| format!("`{value}` is not {what}");
    Ok(match kind {
        Kind::Int => Value::from(v.parse::<i64>().map_err(|_| bad("a whole number"))?),
        Kind::Float => {
            let f: f64 = v.parse().map_err(|_| bad("a number"))?;
            serde_json::Number::from_f64(f).map_or(Value::String(value.clone()), Value::Number)
        }
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Value::Bool(true),
            "n" | "no" | "false" | "off" => Value::Bool(false),
            _ => return Err(bad("a boolean (true or false)")),
        },
        Kind::Bytes => {
            Value::from(crate::units::parse_size(v).map_err(|_| bad("a size (like 64m)"))?)
        }
    })
}

fn kind_of(key: &str) -> Option<Kind> {
    let parts = segments(key);
    TABLE
        .iter()
        .find(|(pattern, _)| matches(&segments(pattern), &parts))
        .map(|(_, k)| *k)
}

/// `a.b[0].c` -> ["a", "b", "[]", "c"] (any index is `[]`).
fn segments(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in key.trim_start_matches('.').split('.') {
        match part.find('[') {
            Some(i) => {
                out.push(part[..i].to_string());
                for _ in part[i..].matches('[') {
                    out.push("[]".into());
                }
            }
            None => out.push(part.to_string()),
        }
    }
    out
}

fn matches(pattern: &[String], parts: &[String]) -> bool {
    pattern.len() == parts.len()
        && pattern
            .iter()
            .zip(parts)
            .all(|(p, k)| p == "*" && k != "[]" || p == k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_get_their_type() {
        assert_eq!(
            cast(".services.web.healthcheck.retries", "555".into()),
            Ok(Value::from(555))
        );
        assert_eq!(
            cast(".services.web.volumes[0].read_only", "true".into()),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            cast(".services.web.ulimits.nproc", "5".into()),
            Ok(Value::from(5))
        );
        assert_eq!(
            cast(".services.web.ulimits.nofile.hard", "5".into()),
            Ok(Value::from(5))
        );
        assert_eq!(
            cast(".services.web.image", "5".into()),
            Ok(Value::from("5"))
        );
        assert!(cast(".services.web.tty", "maybe".into())
            .unwrap_err()
            .contains("boolean"));
    }
}

//! `depends_on` in both forms (a list of names, or a map with `condition`, `required`,
//! `restart`), checked against the services that exist, and the start order: dependencies
//! first, a cycle is an error that names it.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    /// `required: false`: a missing or disabled dependency is skipped, not an error.
    pub required: bool,
    /// `restart: true`: when `up` recreates the dependency, or `restart` restarts it, this
    /// service is restarted after it.
    pub restart: bool,
}

impl Condition {
    /// Compose's name for it (`service_healthy`), as in the depends_on label.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DependsError {
    #[error("services.{service}.depends_on: {message}")]
    Invalid { service: String, message: String },
    #[error("services.{service}.depends_on: `{missing}` is not a service of this project (or its profile is not enabled)")]
    Missing { service: String, missing: String },
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
}

/// Parses one service's `depends_on`.
pub fn parse(service: &str, value: Option<&Value>) -> Result<Vec<Dependency>, DependsError> {
    let invalid = |message: String| DependsError::Invalid {
        service: service.to_string(),
        message,
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v.as_str() {
                Some(name) => Ok(Dependency {
                    service: name.to_string(),
                    condition: Condition::Started,
                    required: true,
                    restart: false,
                }),
                None => Err(invalid("a list must hold service names".into())),
            })
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, spec)| {
                let condition = match spec.get("condition").and_then(Value::as_str) {
                    None | Some("service_started") => Condition::Started,
                    Some("service_healthy") => Condition::Healthy,
                    Some("service_completed_successfully") => Condition::CompletedSuccessfully,
                    Some(other) => {
                        return Err(invalid(format!("{name}: unknown condition `{other}`")))
                    }
                };
                let flag = |key: &str, default: bool| match spec.get(key) {
                    None | Some(Value::Null) => Ok(default),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
                    Some(other) => Err(invalid(format!(
                        "{name}: {key} must be true or false, not {other}"
                    ))),
                };
                Ok(Dependency {
                    service: name.clone(),
                    condition,
                    required: flag("required", true)?,
                    restart: flag("restart", false)?,
                })
            })
            .collect(),
        Some(other) => Err(invalid(format!("must be a list or a mapping, not {other}"))),
    }
}

/// Drops optional dependencies on services that are not enabled; a required one is an error,
/// and so is any dependency on a service the project does not define at all (`defined`).
pub fn resolve(
    deps: &BTreeMap<String, Vec<Dependency>>,
    enabled: &[String],
    defined: &[String],
) -> Result<BTreeMap<String, Vec<Dependency>>, DependsError> {
    let mut out = BTreeMap::new();
    for (service, list) in deps {
        let mut kept = Vec::new();
        for d in list {
            if enabled.contains(&d.service) {
                kept.push(d.clone());
            } else if d.required || !defined.contains(&d.service) {
                return Err(DependsError::Missing {
                    service: service.clone(),
                    missing: d.service.clone(),
                });
            }
        }
        out.insert(service.clone(), kept);
    }
    Ok(out)
}

/// Start order in waves: every service after its dependencies; services in one wave can start
/// in parallel. `order` gives the file order for stable output.
pub fn waves(
    order: &[String],
    deps: &BTreeMap<String, Vec<Dependency>>,
) -> Result<Vec<Vec<String>>, DependsError> {
    if let Some(cycle) = find_cycle(order, deps) {
        return Err(DependsError::Cycle { cycle });
    }
    let mut placed: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut waves: Vec<Vec<String>> = Vec::new();
    while placed.len() < order.len() {
        let wave: Vec<&String> = order
            .iter()
            .filter(|s| !placed.contains(s.as_str()))
            .filter(|s| {
                deps.get(*s)
                    .is_none_or(|ds| ds.iter().all(|d| placed.contains(d.service.as_str())))
            })
            .collect();
        if wave.is_empty() {
            // Only a dependency outside `order` can leave nothing ready (resolve() removes those).
            break;
        }
        placed.extend(wave.iter().map(|s| s.as_str()));
        waves.push(wave.into_iter().cloned().collect());
    }
    Ok(waves)
}

fn find_cycle(order: &[String], deps: &BTreeMap<String, Vec<Dependency>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        s: &str,
        deps: &BTreeMap<String, Vec<Dependency>>,
        marks: &mut HashMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(s) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == s).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(s.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(s.to_string(), Mark::Visiting);
        path.push(s.to_string());
        for d in deps.get(s).into_iter().flatten() {
            if let Some(c) = visit(&d.service, deps, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(s.to_string(), Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for s in order {
        if let Some(c) = visit(s, deps, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn both_forms() {
        let short = parse("api", Some(&json!(["db", "redis"]))).unwrap();
        assert_eq!(short[0].condition, Condition::Started);
        let long = parse(
            "api",
            Some(&json!({"db": {"condition": "service_healthy", "required": false}, "init": {"condition": "service_completed_successfully"}})),
        )
        .unwrap();
        assert_eq!(
            long[0],
            Dependency {
                service: "db".into(),
                condition: Condition::Healthy,
                required: false,
                restart: false,
            }
        );
        assert_eq!(long[1].condition, Condition::CompletedSuccessfully);
        assert!(parse("api", Some(&json!({"db": {"condition": "service_ready"}}))).is_err());
    }

    #[test]
    fn optional_dependencies_on_disabled_services_are_dropped() {
        let mut deps = BTreeMap::new();
        deps.insert("api".to_string(), parse("api", Some(&json!({"db_mysql": {"condition": "service_healthy", "required": false}, "redis": {}}))).unwrap());
        let defined = names(&["api", "redis", "db_mysql", "web"]);
        let kept = resolve(&deps, &names(&["api", "redis"]), &defined).unwrap();
        assert_eq!(kept["api"].len(), 1);
        // Optional, but on a service no file defines: a typo, refused as compose refuses it.
        let err = resolve(&deps, &names(&["api", "redis"]), &names(&["api", "redis"]));
        assert!(err.unwrap_err().to_string().contains("`db_mysql`"));
        deps.insert(
            "web".to_string(),
            parse("web", Some(&json!(["ghost"]))).unwrap(),
        );
        let err = resolve(&deps, &names(&["api", "redis", "web"]), &defined).unwrap_err();
        assert_eq!(err.to_string(), "services.web.depends_on: `ghost` is not a service of this project (or its profile is not enabled)");
    }

    #[test]
    fn start_waves_and_cycles() {
        let order = names(&["init", "db", "redis", "api", "worker", "web"]);
        let mut deps = BTreeMap::new();
        deps.insert(
            "api".to_string(),
            parse("api", Some(&json!(["db", "redis", "init"]))).unwrap(),
        );
        deps.insert(
            "worker".to_string(),
            parse("worker", Some(&json!(["api"]))).unwrap(),
        );
        deps.insert(
            "web".to_string(),
            parse("web", Some(&json!(["api"]))).unwrap(),
        );
        let w = waves(&order, &deps).unwrap();
        assert_eq!(
            w,
            vec![
                names(&["init", "db", "redis"]),
                names(&["api"]),
                names(&["worker", "web"])
            ]
        );
        deps.insert(
            "db".to_string(),
            parse("db", Some(&json!(["worker"]))).unwrap(),
        );
        let err = waves(&order, &deps).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dependency cycle: db -> worker -> api -> db"
        );
    }
}

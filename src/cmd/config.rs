//! `difyctl config`: the resolved compose project, like `docker compose config`: interpolated,
//! merge keys expanded, only the services `up` would start (profiles applied, nginx and
//! certbot left to difyctl).

use difyctl::stack::compose::{LoadOptions, REPLACED_SERVICES};
use serde_json::{Map, Value};

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the names of the services `up` would start
    #[arg(long)]
    services: bool,
    /// JSON instead of YAML
    #[arg(long)]
    json: bool,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    profiles: Vec<String>,
    /// Leave env_file values out of each service's environment
    #[arg(long)]
    no_env_resolution: bool,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let config = g.config()?;
        let output = Output {
            services_only: self.services,
            json: self.json,
            env_resolution: !self.no_env_resolution,
        };
        run(&g.load(self.profiles), &config, &output)
    }
}

/// What `config` prints.
pub struct Output {
    /// Only the names of the services `up` would start.
    pub services_only: bool,
    pub json: bool,
    /// env_file values added to each service's environment (`--no-env-resolution`: not).
    pub env_resolution: bool,
}

pub fn run(
    opts: &LoadOptions,
    config: &difyctl::config::Config,
    output: &Output,
) -> anyhow::Result<()> {
    let Output {
        services_only,
        json,
        env_resolution,
    } = *output;
    let project = super::load_project(opts)?;
    // Refuse what `up` would refuse (a missing required dependency, a cycle, a bad port or
    // volume, a missing env_file) and warn about what it would ignore.
    let mut stack = difyctl::stack::model::Stack::from_project(&project, &REPLACED_SERVICES)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
    // Each service's environment with its env_file values, before difyctl adds its own.
    let resolved: std::collections::HashMap<String, Vec<(String, String)>> = stack
        .services
        .iter()
        .map(|s| {
            let env = s.environment.iter().map(|(k, v)| (k.clone(), v.clone()));
            (s.name.clone(), env.collect())
        })
        .collect();
    // What `up` adds to the services' environment, and why.
    super::public_urls(&mut stack, config);
    let enabled = project.enabled_services(&REPLACED_SERVICES);
    if services_only {
        let names: Vec<&str> = enabled.iter().map(|s| s.name.as_str()).collect();
        if json {
            println!("{}", serde_json::to_string_pretty(&names)?);
        } else {
            for name in names {
                println!("{name}");
            }
        }
        return Ok(());
    }
    let mut document = project.document.clone();
    if let Some(map) = document.as_object_mut() {
        let names: Vec<&str> = enabled.iter().map(|s| s.name.as_str()).collect();
        let services: Map<String, Value> = enabled
            .iter()
            .map(|s| {
                let mut def = s.definition.clone();
                // Optional dependencies on services left out (a profile not enabled) go too,
                // so the output reads back as the same project.
                if let Some(deps) = def.get_mut("depends_on").and_then(Value::as_object_mut) {
                    deps.retain(|name, _| names.contains(&name.as_str()));
                }
                if env_resolution {
                    inline_env_files(&mut def, resolved.get(&s.name));
                }
                (s.name.clone(), def)
            })
            .collect();
        map.insert("services".into(), Value::Object(services));
        map.insert("name".into(), Value::String(project.name.clone()));
        // Extension fields (x-*) only served the YAML anchors.
        map.retain(|k, _| !k.starts_with("x-"));
    }
    // Literal `$` are written `$$` again, so the output is itself a valid compose file.
    let document = escape_dollars(document);
    if json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!("{}", serde_saphyr::to_string(&document)?);
    }
    Ok(())
}

/// `env_file` inlined into `environment` as `docker compose config` does: the files' values
/// under the service's own (which win). Unlike compose, the `env_file` list stays in the output
/// (its values are already in `environment`, so reading the output back changes nothing), so
/// the merged list of files remains visible.
fn inline_env_files(def: &mut Value, resolved: Option<&Vec<(String, String)>>) {
    let Some(map) = def.as_object_mut() else {
        return;
    };
    let added: Vec<&(String, String)> = resolved
        .into_iter()
        .flatten()
        .filter(|(k, _)| map.get("environment").is_none_or(|e| e.get(k).is_none()))
        .collect();
    if !map.contains_key("env_file") || added.is_empty() {
        return;
    }
    let env = map
        .entry("environment")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(env) = env.as_object_mut() {
        for (k, v) in added {
            env.insert(k.clone(), Value::String(v.clone()));
        }
    }
}

fn escape_dollars(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('$', "$$")),
        Value::Array(items) => Value::Array(items.into_iter().map(escape_dollars).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, escape_dollars(v)))
                .collect(),
        ),
        other => other,
    }
}

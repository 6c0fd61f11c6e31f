//! `difyctl config`: the resolved compose project, like `docker compose config`: interpolated,
//! merge keys expanded, only the services `up` would start (profiles applied, nginx and
//! certbot left to difyctl).

use difyctl::stack::compose::{LoadOptions, REPLACED_SERVICES};
use serde_json::{Map, Value};

pub fn run(
    opts: &LoadOptions,
    config: &difyctl::config::Config,
    services_only: bool,
    json: bool,
) -> anyhow::Result<()> {
    let project = super::load_project(opts)?;
    // Refuse what `up` would refuse (a missing required dependency, a cycle, a bad port or
    // volume, a missing env_file) and warn about what it would ignore.
    let mut stack = difyctl::stack::model::Stack::from_project(&project, &REPLACED_SERVICES)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
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

//! `extends`: a service built on another one, of the same file (`extends: base` or
//! `{service: base}`) or of another (`{file: common.yaml, service: base}`), as compose-go
//! resolves it: the base (itself extended first) merged under the service by the rules that
//! merge files, the service's `!reset`/`!override` paths removing what the base sets there, a
//! base from another file with its relative paths made absolute against that file's folder.
//! A chain that comes back to a service it passed is refused.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::StackError;
use super::loading::{Ctx, Scope, Steps};
use super::yaml::Tagged;

/// Resolves the `extends` of every service in `doc`, a document read from `file`.
pub fn apply(
    doc: &mut Value,
    file: &Path,
    tagged: &Tagged,
    scope: &Scope,
    ctx: &mut Ctx,
) -> Result<(), StackError> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let names: Vec<String> = services.keys().cloned().collect();
    let mut resolver = Resolver {
        scope,
        ctx,
        chain: Vec::new(),
    };
    for name in names {
        resolver.resolve(&name, services, file, std::slice::from_ref(tagged))?;
    }
    Ok(())
}

struct Resolver<'s, 'c> {
    scope: &'s Scope<'s>,
    ctx: &'c mut Ctx,
    /// (file, service) pairs being resolved, outermost first.
    chain: Vec<(PathBuf, String)>,
}

impl Resolver<'_, '_> {
    /// `name` of `services` (read from `file`) with its extends resolved, also written back;
    /// `None` for a service that is null. `tagged`: the tags that apply to it.
    fn resolve(
        &mut self,
        name: &str,
        services: &mut Map<String, Value>,
        file: &Path,
        tagged: &[Tagged],
    ) -> Result<Option<Value>, StackError> {
        let service = match services.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err(invalid(file, name, "", "must be a mapping")),
        };
        let Some(extends) = service.get("extends") else {
            return Ok(Some(Value::Object(service)));
        };
        let (reference, other) = target(extends).ok_or_else(|| {
            invalid(
                file,
                name,
                ".extends",
                "must be a service name or {service, file}",
            )
        })?;
        let link = (file.to_path_buf(), name.to_string());
        if self.chain.contains(&link) {
            let names: Vec<&str> = self.chain.iter().map(|(_, s)| s.as_str()).collect();
            return Err(invalid(
                file,
                name,
                ".extends",
                &format!("circular reference: {} -> {name}", names.join(" -> ")),
            ));
        }
        self.chain.push(link);
        let base = match other {
            None => {
                if !services.contains_key(&reference) {
                    return Err(invalid(
                        file,
                        name,
                        ".extends",
                        &format!("service `{reference}` not found in {}", file.display()),
                    ));
                }
                self.resolve(&reference, services, file, tagged)?
            }
            Some(other) => self.base_in_file(name, &reference, file, &other, tagged)?,
        };
        self.chain.pop();
        let Some(mut source) = base else {
            return Ok(Some(Value::Object(service)));
        };
        for t in tagged {
            t.clear_service(name, &mut source);
        }
        let mut merged = super::merge::merge_service(source, Value::Object(service));
        if let Some(map) = merged.as_object_mut() {
            map.shift_remove("extends");
        }
        services.insert(name.to_string(), merged.clone());
        Ok(Some(merged))
    }

    /// The base `reference` read from `other` (relative to `file`'s folder).
    fn base_in_file(
        &mut self,
        name: &str,
        reference: &str,
        file: &Path,
        other: &str,
        tagged: &[Tagged],
    ) -> Result<Option<Value>, StackError> {
        let folder = file.parent().unwrap_or(Path::new("."));
        // Absolute, so the paths resolved against its folder below are too.
        let path = folder.join(other);
        let path = std::path::absolute(&path).unwrap_or(path);
        let mut dict = Value::Object(Map::new());
        let steps = Steps {
            extends: false,
            include: false,
        };
        let its_tags = self
            .scope
            .loader
            .load_file(&path, self.scope, self.ctx, steps, &mut dict)?;
        let ref_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        super::paths::resolve_document(&mut dict, &ref_dir);
        let mut services = match dict.get_mut("services").map(std::mem::take) {
            Some(Value::Object(map)) if map.contains_key(reference) => map,
            _ => {
                return Err(invalid(
                    file,
                    name,
                    ".extends",
                    &format!("no service `{reference}` defined in {}", path.display()),
                ))
            }
        };
        let mut all: Vec<Tagged> = tagged.to_vec();
        all.push(its_tags);
        self.resolve(reference, &mut services, &path, &all)
    }
}

/// `base` or `{service: base, file: other.yaml}`.
fn target(extends: &Value) -> Option<(String, Option<String>)> {
    match extends {
        Value::String(s) => Some((s.clone(), None)),
        Value::Object(map) => {
            let service = map.get("service")?.as_str()?.to_string();
            let file = match map.get("file") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_str()?.to_string()),
            };
            Some((service, file))
        }
        _ => None,
    }
}

fn invalid(file: &Path, name: &str, key: &str, message: &str) -> StackError {
    StackError::Invalid {
        path: file.to_path_buf(),
        key: format!("services.{name}{key}"),
        message: message.to_string(),
    }
}

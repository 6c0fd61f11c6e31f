//! Top-level `include:`: other compose projects' services, networks, volumes, secrets and
//! configs imported into this one, as compose-go imports them. Each entry is a path (or a list
//! of paths merged like `-f a -f b`), with an optional `project_directory` (default: the first
//! file's folder, which the included files' relative paths are resolved against) and
//! `env_file` (default: that folder's `.env`), whose variables the included files see under
//! the including project's own. A resource defined both here and in an included project must
//! be the same, or the load is refused; an include cycle is refused too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::StackError;
use super::loading::{Ctx, Scope};
use crate::envfile::EnvFile;

/// Imports every `include` entry of `doc` (read from `file`) into it and removes the key.
pub fn apply(doc: &mut Value, file: &Path, scope: &Scope, ctx: &mut Ctx) -> Result<(), StackError> {
    let Some(map) = doc.as_object_mut() else {
        return Ok(());
    };
    let entries = match map.shift_remove("include") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(file, "include", "must be a list")),
    };
    for (i, entry) in entries.iter().enumerate() {
        let key = format!("include[{i}]");
        let entry = Entry::parse(entry, scope.working_dir).ok_or_else(|| {
            invalid(
                file,
                &key,
                "must be a path or {path, project_directory, env_file}",
            )
        })?;
        let imported = load(&entry, file, &key, scope, ctx)?;
        import(doc, &imported, file, &key)?;
    }
    Ok(())
}

struct Entry {
    paths: Vec<PathBuf>,
    project_directory: PathBuf,
    env_files: Option<Vec<PathBuf>>,
}

impl Entry {
    /// `path` or `{path, project_directory, env_file}`, paths relative to `working_dir`.
    fn parse(entry: &Value, working_dir: &Path) -> Option<Entry> {
        let list = |v: Option<&Value>| -> Option<Vec<PathBuf>> {
            match v? {
                Value::String(s) => Some(vec![working_dir.join(s)]),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(|s| working_dir.join(s)))
                    .collect(),
                _ => None,
            }
        };
        let (paths, dir, env) = match entry {
            Value::String(_) => (list(Some(entry))?, None, None),
            Value::Object(map) => (
                list(map.get("path"))?,
                map.get("project_directory").and_then(Value::as_str),
                list(map.get("env_file")),
            ),
            _ => return None,
        };
        let first = paths.first()?;
        let project_directory = match dir {
            Some(d) => working_dir.join(d),
            None => first.parent().unwrap_or(working_dir).to_path_buf(),
        };
        Some(Entry {
            paths,
            project_directory,
            env_files: env,
        })
    }
}

/// The included project, its relative paths made absolute.
fn load(
    entry: &Entry,
    file: &Path,
    key: &str,
    scope: &Scope,
    ctx: &mut Ctx,
) -> Result<Value, StackError> {
    let main = &entry.paths[0];
    if ctx.including.iter().any(|f| f == main) || main == file {
        let chain: Vec<String> = ctx
            .including
            .iter()
            .chain([&file.to_path_buf(), main])
            .map(|p| p.display().to_string())
            .collect();
        return Err(invalid(
            file,
            key,
            &format!("include cycle: {}", chain.join(" -> ")),
        ));
    }
    let vars = variables(entry, scope.vars)?;
    ctx.including.push(file.to_path_buf());
    let inner = Scope {
        loader: scope.loader,
        vars: &vars,
        working_dir: &entry.project_directory,
    };
    let loaded = inner.loader.load_all(&entry.paths, &inner, ctx);
    ctx.including.pop();
    let mut imported = loaded?;
    // An included file is a compose file too: one that is not is refused, not ignored.
    if let Err((key, message)) = super::keys::check_document(&imported) {
        return Err(StackError::Invalid {
            path: entry.paths.first().cloned().unwrap_or_default(),
            key,
            message,
        });
    }
    super::paths::resolve_document(&mut imported, &entry.project_directory);
    Ok(imported)
}

/// The including project's variables over the included project's env files.
fn variables(
    entry: &Entry,
    outer: &HashMap<String, String>,
) -> Result<HashMap<String, String>, StackError> {
    let mut vars = HashMap::new();
    match &entry.env_files {
        Some(files) => {
            for path in files {
                let text = std::fs::read_to_string(path).map_err(|source| StackError::Read {
                    path: path.clone(),
                    source,
                })?;
                EnvFile::parse(path, &text)?.resolve_onto(outer, &mut vars)?;
            }
        }
        None => {
            if let Some(env) = EnvFile::read_optional(&entry.project_directory.join(".env"))? {
                env.resolve_onto(outer, &mut vars)?;
            }
        }
    }
    for (k, v) in outer {
        vars.insert(k.clone(), v.clone());
    }
    Ok(vars)
}

/// The imported resources added to `doc`; one defined differently in both is refused.
fn import(doc: &mut Value, imported: &Value, file: &Path, key: &str) -> Result<(), StackError> {
    for section in [
        "services", "volumes", "networks", "secrets", "configs", "models",
    ] {
        let Some(from) = imported.get(section).and_then(Value::as_object) else {
            continue;
        };
        let Some(map) = doc.as_object_mut() else {
            return Ok(());
        };
        let to = map
            .entry(section)
            .or_insert_with(|| Value::Object(Default::default()));
        if to.is_null() {
            *to = Value::Object(Default::default());
        }
        let Some(to) = to.as_object_mut() else {
            return Err(invalid(file, section, "must be a mapping"));
        };
        for (name, def) in from {
            match to.get(name) {
                Some(existing) if existing == def => {}
                Some(_) => {
                    return Err(invalid(
                        file,
                        key,
                        &format!("{section}.{name} is defined here and, differently, in the included project"),
                    ))
                }
                None => {
                    to.insert(name.clone(), def.clone());
                }
            }
        }
    }
    Ok(())
}

fn invalid(file: &Path, key: &str, message: &str) -> StackError {
    StackError::Invalid {
        path: file.to_path_buf(),
        key: key.to_string(),
        message: message.to_string(),
    }
}

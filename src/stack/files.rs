//! A project's compose files turned into one document, file by file and document by document
//! in compose-go's order (its `loadYamlFile`): each YAML document checked to be a mapping and
//! interpolated on its own, its `extends` resolved, what earlier files set removed where it
//! says `!reset` or `!override`, its `include`s imported, then merged over what came before,
//! and compose's unicity applied to the result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::StackError;
use super::loading::{Ctx, Loader, Scope, Steps, ALL};
use super::yaml::Tagged;

/// The loader `extends` and `include` call back into (they read files too).
pub struct Files;

impl Loader for Files {
    fn load_all(
        &self,
        files: &[PathBuf],
        scope: &Scope,
        ctx: &mut Ctx,
    ) -> Result<Value, StackError> {
        load_all(files, scope, ctx)
    }
    fn load_file(
        &self,
        file: &Path,
        scope: &Scope,
        ctx: &mut Ctx,
        steps: Steps,
        dict: &mut Value,
    ) -> Result<Tagged, StackError> {
        load_file(file, scope, ctx, steps, dict)
    }
}

/// All `files` merged in order.
pub fn load_all(files: &[PathBuf], scope: &Scope, ctx: &mut Ctx) -> Result<Value, StackError> {
    let mut dict = Value::Object(Map::new());
    for file in files {
        load_file(file, scope, ctx, ALL, &mut dict)?;
    }
    if dict.as_object().is_some_and(Map::is_empty) {
        return Err(StackError::Yaml {
            path: files.first().cloned().unwrap_or_default(),
            message: "empty compose file".into(),
        });
    }
    Ok(dict)
}

/// Reads `file` and merges each of its documents into `dict`; returns the last document's
/// tagged paths (what an `extends` of one of its services honours).
pub fn load_file(
    file: &Path,
    scope: &Scope,
    ctx: &mut Ctx,
    steps: Steps,
    dict: &mut Value,
) -> Result<Tagged, StackError> {
    let text = std::fs::read_to_string(file).map_err(|source| StackError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    // A byte-order mark some editors write: not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let documents = super::yaml::parse(text).map_err(|e| StackError::Yaml {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut tagged = Tagged::default();
    // An empty file (or document) adds nothing; only a project with nothing at all is refused.
    for doc in documents.into_iter().filter(|d| !d.value.is_null()) {
        if !doc.value.is_object() {
            return Err(StackError::Yaml {
                path: file.to_path_buf(),
                message: "top-level object must be a mapping".into(),
            });
        }
        let mut cfg = interpolate_tree(doc.value, "", scope.vars, file, &mut ctx.unset)?;
        if steps.extends {
            super::extends::apply(&mut cfg, file, &doc.tagged, scope, ctx)?;
        }
        doc.tagged.clear(dict);
        if steps.include {
            super::include::apply(&mut cfg, file, scope, ctx)?;
        }
        let merged = super::merge::merge_documents(std::mem::take(dict), cfg);
        *dict = super::merge::enforce_unicity(merged);
        tagged = doc.tagged;
    }
    Ok(tagged)
}

/// Interpolates every string in the tree; `key` is the dotted path, for error messages.
fn interpolate_tree(
    value: Value,
    key: &str,
    vars: &HashMap<String, String>,
    path: &Path,
    unset: &mut Vec<String>,
) -> Result<Value, StackError> {
    Ok(match value {
        Value::String(s) => {
            let lookup = |name: &str| vars.get(name).cloned();
            let done = crate::interpolate::interpolate(&s, &lookup).map_err(|source| {
                StackError::Interpolate {
                    path: path.to_path_buf(),
                    key: key.trim_start_matches('.').to_string(),
                    source,
                }
            })?;
            for u in done.unset {
                if !unset.contains(&u) {
                    unset.push(u);
                }
            }
            if s.contains('$') && done.value != s {
                super::cast::cast(key, done.value).map_err(|message| StackError::Invalid {
                    path: path.to_path_buf(),
                    key: key.trim_start_matches('.').to_string(),
                    message,
                })?
            } else {
                Value::String(done.value)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| interpolate_tree(v, &format!("{key}[{i}]"), vars, path, unset))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let child = format!("{key}.{k}");
                    interpolate_tree(v, &child, vars, path, unset).map(|v| (k, v))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}

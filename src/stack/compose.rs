//! Loading a compose project the way `docker compose` does: the interpolation environment
//! (`.env` files, the process environment over them), the project name, the files read and
//! merged in order (`files`: YAML documents, interpolation, `extends`, `!reset`/`!override`,
//! `include`, merging), the top level checked, the result normalised (`normalize`), and the
//! profiles deciding which services are enabled. The typed service model for the engine is
//! built from this in `model`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use super::error::StackError;
use crate::envfile::EnvFile;
use crate::interpolate::interpolate;

/// How to find and read the project.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub compose_file: PathBuf,
    /// Further files merged over it in order (`-f` again, or the `.override` file).
    pub overrides: Vec<PathBuf>,
    /// `.env` files to read in order, later ones winning (default: `.env` beside the compose
    /// file); an absent default is fine.
    pub env_files: Vec<PathBuf>,
    /// `-p`; else COMPOSE_PROJECT_NAME; else the compose file's folder name.
    pub project_name: Option<String>,
    /// `--profile` flags, added to COMPOSE_PROFILES.
    pub profiles: Vec<String>,
    pub process_env: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub profiles: Vec<String>,
    /// The service's interpolated definition.
    pub definition: Value,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    pub compose_file: PathBuf,
    /// Profiles in effect: `--profile` and COMPOSE_PROFILES.
    pub profiles: Vec<String>,
    /// In file order.
    pub services: Vec<Service>,
    /// The whole interpolated document.
    pub document: Value,
    /// Variables used while unset (compose: "defaulting to a blank string").
    pub unset: Vec<String>,
    /// The interpolation environment: `.env` resolved, process environment over it.
    pub vars: HashMap<String, String>,
}

impl Project {
    pub fn load(opts: &LoadOptions) -> Result<Project, StackError> {
        let path = &opts.compose_file;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        // Absolute, as compose records it (com.docker.compose.project.working_dir) and as the
        // bind sources below it are.
        let dir = std::path::absolute(&dir).map_or(dir, |d| {
            d.components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect()
        });
        let mut vars = read_vars(opts, &dir)?;
        let files: Vec<PathBuf> = std::iter::once(&opts.compose_file)
            .chain(&opts.overrides)
            .cloned()
            .collect();
        let name = project_name(opts, &vars, &files, &dir, path)?;
        // Compose sets it for interpolation, whatever the environment says.
        vars.insert("COMPOSE_PROJECT_NAME".into(), name.clone());
        let scope = super::loading::Scope {
            loader: &super::files::Files,
            vars: &vars,
            working_dir: &dir,
        };
        let mut ctx = super::loading::Ctx::default();
        let mut document = super::files::load_all(&files, &scope, &mut ctx)?;
        let unset = ctx.unset;
        check_top_level(&document, path)?;
        super::normalize::normalize(&mut document, &vars, &dir);
        let services = match document.get("services").unwrap_or(&Value::Null) {
            Value::Object(map) => map
                .iter()
                .map(|(name, def)| service(name, def, path))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Null => Vec::new(),
            _ => {
                return Err(StackError::Invalid {
                    path: path.clone(),
                    key: "services".into(),
                    message: "must be a mapping of service names to definitions".into(),
                })
            }
        };
        let profiles = profiles(&vars, &opts.profiles);
        Ok(Project {
            name,
            dir,
            compose_file: path.clone(),
            profiles,
            services,
            document,
            unset,
            vars,
        })
    }

    /// Services that `up` starts: no profile, or one of the active profiles; minus `excluded`
    /// (nginx and certbot: difyctl does their jobs).
    pub fn enabled_services(&self, excluded: &[&str]) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|s| {
                s.profiles.is_empty() || s.profiles.iter().any(|p| self.profiles.contains(p))
            })
            .filter(|s| !excluded.contains(&s.name.as_str()))
            .collect()
    }
}

impl Project {
    /// The enabled services (minus `excluded`) in start waves: each wave after the ones its
    /// services depend on. Errors name a missing required dependency or a cycle.
    pub fn start_order(&self, excluded: &[&str]) -> Result<Vec<Vec<String>>, StackError> {
        let enabled = self.enabled_names(excluded);
        let deps = self.dependencies(excluded)?;
        super::depends::waves(&enabled, &deps).map_err(|e| self.depends_error(e))
    }

    /// Each enabled service's dependencies, optional ones on disabled services dropped.
    pub fn dependencies(
        &self,
        excluded: &[&str],
    ) -> Result<std::collections::BTreeMap<String, Vec<super::depends::Dependency>>, StackError>
    {
        let mut deps = std::collections::BTreeMap::new();
        for s in self.enabled_services(excluded) {
            let parsed = super::depends::parse(&s.name, s.definition.get("depends_on"))
                .map_err(|e| self.depends_error(e))?;
            deps.insert(s.name.clone(), parsed);
        }
        let defined: Vec<String> = self.services.iter().map(|s| s.name.clone()).collect();
        super::depends::resolve(&deps, &self.enabled_names(excluded), &defined)
            .map_err(|e| self.depends_error(e))
    }

    fn enabled_names(&self, excluded: &[&str]) -> Vec<String> {
        self.enabled_services(excluded)
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    fn depends_error(&self, e: super::depends::DependsError) -> StackError {
        StackError::Invalid {
            path: self.compose_file.clone(),
            key: "depends_on".into(),
            message: e.to_string(),
        }
    }
}

/// The interpolation environment: each `.env` in order (later ones winning and seeing earlier
/// ones), the process environment over them.
fn read_vars(opts: &LoadOptions, dir: &Path) -> Result<HashMap<String, String>, StackError> {
    let env_paths = if opts.env_files.is_empty() {
        vec![dir.join(".env")]
    } else {
        opts.env_files.clone()
    };
    let mut vars = HashMap::new();
    for env_path in &env_paths {
        if let Some(file) = EnvFile::read_optional(env_path)? {
            file.resolve_onto(&opts.process_env, &mut vars)?;
        }
    }
    for (k, v) in &opts.process_env {
        vars.insert(k.clone(), v.clone());
    }
    Ok(vars)
}

/// `-p`, else COMPOSE_PROJECT_NAME, else the file's `name:` (interpolated), each of which must
/// already be a valid name (compose refuses `MY_PROJECT` rather than rewrite it); else the
/// folder's name, normalised.
fn project_name(
    opts: &LoadOptions,
    vars: &HashMap<String, String>,
    files: &[PathBuf],
    dir: &Path,
    path: &Path,
) -> Result<String, StackError> {
    let explicit = opts
        .project_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            vars.get("COMPOSE_PROJECT_NAME")
                .cloned()
                .filter(|n| !n.is_empty())
        });
    let from_file = || -> Result<Option<String>, StackError> {
        // The last file that names the project wins; read before the files are interpolated
        // (COMPOSE_PROJECT_NAME is set from it). A file that does not parse says so when it
        // is loaded.
        let declared = |file: &PathBuf| -> Option<String> {
            let text = std::fs::read_to_string(file).ok()?;
            let docs = super::yaml::parse(text.strip_prefix('\u{feff}').unwrap_or(&text)).ok()?;
            docs.iter().rev().find_map(|d| {
                d.value
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        };
        let Some(text) = files.iter().rev().find_map(declared) else {
            return Ok(None);
        };
        let text = text.as_str();
        let lookup = |n: &str| vars.get(n).cloned();
        let value = interpolate(text, &lookup)
            .map_err(|source| StackError::Interpolate {
                path: path.to_path_buf(),
                key: "name".into(),
                source,
            })?
            .value;
        Ok(Some(value).filter(|v| !v.is_empty()))
    };
    let name = match explicit {
        Some(n) => n,
        None => match from_file()? {
            Some(n) => n,
            None => {
                let folder = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                let base = folder
                    .file_name()
                    .map_or("default".into(), |n| n.to_string_lossy().into_owned());
                return Ok(normalize_project_name(&base));
            }
        },
    };
    if normalize_project_name(&name) != name || name.is_empty() {
        return Err(StackError::Invalid {
            path: path.to_path_buf(),
            key: "name".into(),
            message: format!(
                "invalid project name `{name}`: only lowercase letters, digits, `-` and `_`, starting with a letter or digit (like `{}`)",
                normalize_project_name(&name)
            ),
        });
    }
    Ok(name)
}

fn check_top_level(document: &Value, path: &Path) -> Result<(), StackError> {
    super::keys::check_document(document).map_err(|(key, message)| StackError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    })
}

/// COMPOSE_PROFILES, then `--profile`.
fn profiles(vars: &HashMap<String, String>, flags: &[String]) -> Vec<String> {
    let mut profiles: Vec<String> = vars
        .get("COMPOSE_PROFILES")
        .map(|p| {
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for p in flags {
        if !profiles.contains(p) {
            profiles.push(p.clone());
        }
    }
    profiles
}

/// The services difyctl replaces by default.
pub use crate::dify::REPLACED as REPLACED_SERVICES;

/// Compose lower-cases project names, keeps `[a-z0-9_-]` and drops leading `_` and `-`.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

fn service(name: &str, def: &Value, path: &Path) -> Result<Service, StackError> {
    let invalid = |key: &str, message: &str| StackError::Invalid {
        path: path.to_path_buf(),
        key: format!("services.{name}{key}"),
        message: message.to_string(),
    };
    if !def.is_object() && !def.is_null() {
        return Err(invalid("", "must be a mapping"));
    }
    for key in def.as_object().into_iter().flat_map(|m| m.keys()) {
        if let Some(message) = super::keys::check(key, super::keys::SERVICE) {
            return Err(invalid(&format!(".{key}"), &message));
        }
    }
    if let Some(env) = def.get("environment").and_then(Value::as_object) {
        for (k, v) in env {
            if k.ends_with(char::is_whitespace) {
                return Err(invalid(
                    &format!(".environment.{k}"),
                    &format!(
                        "environment variable `{}` is declared with a trailing space",
                        k.trim_end()
                    ),
                ));
            }
            if v.is_array() || v.is_object() {
                return Err(invalid(
                    &format!(".environment.{k}"),
                    "must be a boolean, null, number or string",
                ));
            }
        }
    }
    let profiles = match def.get("profiles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(".profiles", "must be a list of names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid(".profiles", "must be a list of names")),
    };
    Ok(Service {
        name: name.to_string(),
        profiles,
        definition: def.clone(),
    })
}

/// COMPOSE_FILE from the `.env` files (`env_files`, default `./.env`) when neither `-f` nor the
/// process environment sets it, as compose reads it: split at COMPOSE_PATH_SEPARATOR (default
/// `:`), relative to the current folder. `None` when no `.env` sets it.
pub fn files_from_dotenv(
    env_files: &[PathBuf],
    process: &HashMap<String, String>,
) -> Result<Option<Vec<PathBuf>>, StackError> {
    let default = [PathBuf::from(".env")];
    let paths = if env_files.is_empty() {
        &default[..]
    } else {
        env_files
    };
    let mut vars = HashMap::new();
    for path in paths {
        if let Some(file) = EnvFile::read_optional(path)? {
            file.resolve_onto(process, &mut vars)?;
        }
    }
    let Some(list) = vars.get("COMPOSE_FILE").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let separator = process
        .get("COMPOSE_PATH_SEPARATOR")
        .or_else(|| vars.get("COMPOSE_PATH_SEPARATOR"))
        .filter(|s| !s.is_empty())
        .map_or(":", String::as_str);
    Ok(Some(
        list.split(separator)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
    ))
}

/// The compose files to read when `-f` is not given, as compose finds them in `dir`: the first
/// of compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml (docker-compose.yaml
/// when none exists, for the error message), then its `.override` twin when present.
pub fn default_files(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let main = [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ]
    .iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
    .unwrap_or_else(|| dir.join("docker-compose.yaml"));
    let over = main
        .with_extension("")
        .with_extension(match main.extension() {
            Some(ext) => format!("override.{}", ext.to_string_lossy()),
            None => "override.yaml".into(),
        });
    let overrides = if over.is_file() {
        vec![over]
    } else {
        Vec::new()
    };
    (main, overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &str, profiles: &[&str]) -> Result<Project, StackError> {
        let dir = std::env::temp_dir().join(format!(
            "difyctl-compose-{}-{}",
            std::process::id(),
            yaml.len() + env.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-compose.yaml"), yaml).unwrap();
        std::fs::write(dir.join(".env"), env).unwrap();
        let p = Project::load(&LoadOptions {
            compose_file: dir.join("docker-compose.yaml"),
            project_name: Some("testproj".into()),
            profiles: profiles.iter().map(|p| p.to_string()).collect(),
            ..LoadOptions::default()
        });
        std::fs::remove_dir_all(&dir).unwrap();
        p
    }

    const YAML: &str = "x-shared: &shared\n  DB_HOST: ${DB_HOST:-db}\n  PORT: 5432\nservices:\n  api:\n    image: api:${TAG:-1}\n    environment:\n      <<: *shared\n      MODE: api\n  db:\n    image: postgres\n    profiles: [postgresql]\n  nginx:\n    image: nginx\n  milvus:\n    image: milvus\n    profiles: [milvus]\n";

    #[test]
    fn merge_keys_interpolation_and_profiles() {
        let p = load(
            YAML,
            "TAG=2\nCOMPOSE_PROFILES=${DB_TYPE:-postgresql}\n",
            &[],
        )
        .unwrap();
        assert_eq!(p.name, "testproj");
        let api = &p.services[0].definition;
        assert_eq!(api["image"], "api:2");
        assert_eq!(
            api["environment"]["DB_HOST"], "db",
            "merged from the anchor, default applied"
        );
        assert_eq!(api["environment"]["PORT"], 5432, "numbers stay numbers");
        assert_eq!(api["environment"]["MODE"], "api");
        let names: Vec<&str> = p
            .enabled_services(&["nginx"])
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["api", "db"]);
        let p = load(YAML, "COMPOSE_PROFILES=mysql\n", &["milvus"]).unwrap();
        let names: Vec<&str> = p
            .enabled_services(&[])
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["api", "nginx", "milvus"]);
    }

    #[test]
    fn required_variable_names_file_and_key() {
        let err = load(
            "services:\n  db:\n    environment:\n      PASSWORD: ${DB_PASSWORD:?set it in .env}\n",
            "",
            &[],
        )
        .unwrap_err();
        let text = crate::error_chain(&err);
        assert!(text.ends_with("docker-compose.yaml: services.db.environment.PASSWORD: required variable DB_PASSWORD is missing a value: set it in .env"), "{text}");
    }

    #[test]
    fn misspelt_keys_are_refused_with_a_suggestion() {
        let err = load("services:\n  api:\n    imagee: x\n", "", &[])
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("docker-compose.yaml: services.api.imagee: `imagee` is not a compose key (did you mean `image`?)"), "{err}");
        let err = load("service:\n  api: {}\n", "", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`service` is not a compose key (did you mean `services`?)"),
            "{err}"
        );
    }

    #[test]
    fn bad_yaml_names_the_line() {
        let err = load("services:\n  api:\n    image: [unclosed\n", "", &[]).unwrap_err();
        assert!(matches!(err, StackError::Yaml { .. }), "{err}");
        assert!(err.to_string().contains("docker-compose.yaml"), "{err}");
    }
}

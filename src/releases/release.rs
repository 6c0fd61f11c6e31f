//! A Dify release as an upgrade reads it: its `docker/` folder (a user's download, `--from`),
//! or one difyctl embeds (`--to`). What counts: the compose file, `.env.example`, every
//! `envs/**/*.env.example`, the other files beside them (templates, scripts), and the version
//! (the api image's tag).

use std::path::{Path, PathBuf};

use crate::stack::compose::{LoadOptions, Project};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{}: not a Dify docker/ folder (no docker-compose.yaml)", .0.display())]
    NoCompose(PathBuf),
    #[error("{}: cannot read it", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Stack(#[from] crate::stack::compose::StackError),
}

#[derive(Debug, Clone)]
pub struct Release {
    pub dir: PathBuf,
    /// `1.16.0`, from the api image's tag; `None` when it has none.
    pub version: Option<String>,
    pub services: Vec<String>,
    /// Relative paths of every file of the release (the compose file and examples included).
    pub files: Vec<PathBuf>,
}

impl Release {
    pub fn read(dir: &Path) -> Result<Release, ReleaseError> {
        let compose = dir.join("docker-compose.yaml");
        if !compose.is_file() {
            return Err(ReleaseError::NoCompose(dir.to_path_buf()));
        }
        let example = dir.join(".env.example");
        let project = Project::load(&LoadOptions {
            compose_file: compose,
            env_files: vec![example],
            project_name: Some("release".into()),
            ..Default::default()
        })?;
        let version = project
            .services
            .iter()
            .find(|s| s.name == "api")
            .and_then(|s| {
                s.definition
                    .get("image")
                    .and_then(|i| i.as_str())
                    .map(str::to_string)
            })
            .and_then(|image| tag(&image));
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        files.sort();
        Ok(Release {
            dir: dir.to_path_buf(),
            version,
            services: project.services.iter().map(|s| s.name.clone()).collect(),
            files,
        })
    }

    /// `(install-relative env file, the release's example for it)`: `.env` from `.env.example`,
    /// `envs/x/y.env` from `envs/x/y.env.example`.
    pub fn env_examples(&self) -> Vec<(PathBuf, PathBuf)> {
        self.files
            .iter()
            .filter_map(|f| {
                let name = f.to_str()?;
                let target = name.strip_suffix(".example")?;
                (target == ".env" || (name.starts_with("envs/") && target.ends_with(".env")))
                    .then(|| (PathBuf::from(target), self.dir.join(f)))
            })
            .collect()
    }
}

impl Release {
    /// Every key the release's example files set.
    pub fn example_keys(&self) -> std::collections::BTreeSet<String> {
        let mut keys = std::collections::BTreeSet::new();
        for (target, example) in self.env_examples() {
            let Ok(text) = std::fs::read_to_string(&example) else {
                continue;
            };
            if let Ok(env) = crate::envfile::EnvFile::parse(&target, &text) {
                keys.extend(env.entries.into_iter().map(|e| e.key));
            }
        }
        keys
    }
}

pub use crate::dify::version::{compare, tag};

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReleaseError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReleaseError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Data and the user's own files are never part of a release.
        if dir == root
            && (name == "volumes" || name == ".env" || name == "docker-compose.override.yaml")
        {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if path.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_tags() {
        assert_eq!(tag("langgenius/dify-api:1.16.0").as_deref(), Some("1.16.0"));
        assert_eq!(tag("registry:5000/dify-api"), None);
        assert_eq!(compare("1.9.2", "1.16.0"), Some(std::cmp::Ordering::Less));
        assert_eq!(compare("v2", "v1"), Some(std::cmp::Ordering::Greater));
        assert_eq!(compare("latest", "1.0"), None);
    }
}

//! One file per subcommand: each defines its own arguments (`Args`, clap) and turns them,
//! with what came before the command (`Globals`), into what it needs.

pub mod certs;
pub mod config;
pub mod detach;
pub mod proxy;

/// A mistake in how a command was called (exit code 2), found after parsing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub mod backup;
pub mod doctor;
pub mod doctor_systemd;
pub mod down;
pub mod exec;
pub mod export;
pub mod init;
pub mod logs;
pub mod ps;
pub mod pull;
pub mod release_dir;
pub mod releases;
pub mod restart;
pub mod restore;
pub mod status;
pub mod up;
pub mod upgrade;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use difyctl::config::{Commands, Config, ConfigError, Flags, SettingArgs};
use difyctl::engine::Engine;
use difyctl::stack::compose::{LoadOptions, Project};
use difyctl::stack::model::Stack;

/// What came before the command: compose's `-f`, `-p` and `--env-file`, difyctl's
/// `--config`, `--state-dir` and `--log-format`, and the process environment.
pub struct Globals {
    /// `-f` as given (none: COMPOSE_FILE from `.env`, else the defaults).
    pub files: Vec<PathBuf>,
    /// The compose file and the files merged over it.
    pub compose_file: PathBuf,
    pub overrides: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub process_env: HashMap<String, String>,
    flags: Flags,
}

impl Globals {
    pub fn new(cli: crate::cli::Cli) -> anyhow::Result<(Globals, crate::cli::Command)> {
        let mut flags = Flags::default();
        flags.config = cli.config;
        flags.env_file = cli.env_file;
        flags.log_format = match cli.log_format {
            crate::cli::LogFormat::Plain => difyctl::config::LogFormat::Plain,
            crate::cli::LogFormat::Json => difyctl::config::LogFormat::Json,
        };
        cli.settings.apply(&mut flags);
        let process_env: HashMap<String, String> = std::env::vars().collect();
        let files = match cli.file.is_empty() {
            true => difyctl::stack::compose::files_from_dotenv(&flags.env_file, &process_env)?
                .unwrap_or_default(),
            false => cli.file.clone(),
        };
        let (compose_file, overrides) = match files.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => difyctl::stack::compose::default_files(Path::new("")),
        };
        let globals = Globals {
            files: cli.file,
            compose_file,
            overrides,
            project_name: cli.project_name,
            process_env,
            flags,
        };
        Ok((globals, cli.command))
    }

    /// How to load the compose project, with `profiles` enabled.
    pub fn load(&self, profiles: Vec<String>) -> LoadOptions {
        LoadOptions {
            compose_file: self.compose_file.clone(),
            overrides: self.overrides.clone(),
            env_files: self.flags.env_file.clone(),
            project_name: self.project_name.clone(),
            profiles,
            process_env: self.process_env.clone(),
        }
    }

    /// The configuration with the global flags only.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(&self.flags)
    }

    /// The configuration with the command's setting flags over the global ones.
    pub fn config_with<const G: Commands>(
        &self,
        args: &SettingArgs<G>,
    ) -> Result<Config, ConfigError> {
        self.config_by(|flags| args.apply(flags))
    }

    /// The configuration with flags the command sets itself (`certs renew --name`).
    pub fn config_by(&self, set: impl FnOnce(&mut Flags)) -> Result<Config, ConfigError> {
        let mut flags = self.flags.clone();
        set(&mut flags);
        Config::load(&flags)
    }

    /// The compose files as absolute paths (labels, journals).
    pub fn compose_files(&self) -> Vec<PathBuf> {
        std::iter::once(&self.compose_file)
            .chain(&self.overrides)
            .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
            .collect()
    }
}

/// The control runtime (signals, reloads). The proxy's workers run their own runtimes.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `up SERVICE...`, `pull SERVICE...`: the stack kept to the named services (with what they
/// depend on, when `with_dependencies`); a name the stack does not have is a usage error.
pub fn named_services(
    stack: Stack,
    services: &[String],
    with_dependencies: bool,
) -> anyhow::Result<Stack> {
    if services.is_empty() {
        return Ok(stack);
    }
    if let Some(unknown) = services.iter().find(|s| stack.service(s).is_none()) {
        return Err(difyctl::engine::EngineError::UnknownService(unknown.clone()).into());
    }
    let mut kept = stack.only(services);
    if !with_dependencies {
        kept.services.retain(|s| services.contains(&s.name));
    }
    Ok(kept)
}

/// Loads the compose project and types the services `up` starts (minus `replaced`); prints
/// its warnings once.
pub fn load_stack(opts: &LoadOptions, replaced: &[String]) -> anyhow::Result<Stack> {
    let project = load_project(opts)?;
    let replaced: Vec<&str> = replaced.iter().map(String::as_str).collect();
    let stack = Stack::from_project(&project, &replaced)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
    Ok(stack)
}

/// The compose project; a missing compose file says where it was looked for and what to do.
pub fn load_project(opts: &LoadOptions) -> anyhow::Result<Project> {
    match Project::load(opts) {
        Err(difyctl::stack::compose::StackError::Read { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(UsageError(format!(
                "no compose file at {}: run difyctl in Dify's docker/ folder, give -f FILE, or start a new install with `difyctl init`",
                path.display()
            ))
            .into())
        }
        other => Ok(other?),
    }
}

/// The project name for commands that only need labels (`down`, `ps`, `logs`, `restart`):
/// from the compose file like `up`, or `-p` alone when there is no compose file.
pub fn project_name(opts: &LoadOptions) -> anyhow::Result<String> {
    match (Project::load(opts), &opts.project_name) {
        (Ok(p), _) => Ok(p.name),
        (Err(difyctl::stack::compose::StackError::Read { .. }), Some(name)) => {
            Ok(difyctl::stack::compose::normalize_project_name(name))
        }
        (Err(difyctl::stack::compose::StackError::Read { path, source }), None)
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(UsageError(format!(
                "no compose file at {}: run difyctl in Dify's docker/ folder, give -f FILE, or -p NAME for a project by its name",
                path.display()
            ))
            .into())
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// A service `logs`/`restart` found no container for: when the compose file has it, the stack
/// is simply not up, which "no service named api" would hide.
pub fn explain_missing(err: anyhow::Error, opts: &LoadOptions) -> anyhow::Error {
    let Some(difyctl::engine::EngineError::UnknownService(name)) = err.downcast_ref() else {
        return err;
    };
    let known = Project::load(opts).is_ok_and(|p| p.services.iter().any(|s| &s.name == name));
    if known {
        anyhow::anyhow!(
            "service {name} has no container: the stack is not up (`difyctl up` starts it)"
        )
    } else {
        err
    }
}

/// Dify's URL settings from the first domain, when there is one (see stack::urls); prints
/// what was set, once.
pub fn public_urls(stack: &mut Stack, config: &difyctl::config::Config) {
    let served = served_path(&config.state_dir, &stack.project);
    let (domain, port) = match config.domains.first() {
        Some(d) => (d.clone(), config.proxy.https.port()),
        // No domain given here, but the serving `up` was given one (`up --domain`): the same
        // URL settings, so a later `up --no-proxy` does not recreate containers without them.
        None => match std::fs::read_to_string(&served)
            .ok()
            .and_then(|t| serde_json::from_str::<(String, u16)>(&t).ok())
        {
            Some((d, p)) => {
                eprintln!("using the domain the serving `difyctl up` was given: {d} (port {p})");
                (d, p)
            }
            None => return,
        },
    };
    for note in difyctl::stack::urls::apply_public_urls(stack, &domain, port) {
        eprintln!("{note}");
    }
}

/// Where the serving `up` remembers the domain it serves a project on.
fn served_path(state_dir: &std::path::Path, project: &str) -> std::path::PathBuf {
    state_dir
        .join("served")
        .join(format!("{}.json", difyctl::fsutil::safe_name(project)))
}

/// The serving `up` remembers its domain and HTTPS port for later commands (`public_urls`).
pub fn remember_served(config: &difyctl::config::Config, project: &str) {
    let Some(domain) = config.domains.first() else {
        return;
    };
    let path = served_path(&config.state_dir, project);
    if let Some(dir) = path.parent() {
        let _ = difyctl::fsutil::create_private_dir(dir);
    }
    let json = serde_json::to_vec(&(domain, config.proxy.https.port())).unwrap_or_default();
    let _ = difyctl::fsutil::write_atomic(&path, &json, 0o600);
}

/// Says loudly when Dify's public default secrets (from `.env.example`) are in use.
pub fn warn_public_secrets(stack: &Stack) {
    let found = difyctl::stack::secrets::public_defaults(stack);
    if found.is_empty() {
        return;
    }
    eprintln!("WARNING: this install uses secrets everyone can read in Dify's .env.example:");
    for f in &found {
        eprintln!("WARNING:   {f}");
    }
    eprintln!("WARNING: set fresh values in .env (a new install: `difyctl init` generates them); a database or Redis already created with the old password also needs it changed inside (ALTER USER / CONFIG SET requirepass)");
}

pub async fn engine() -> anyhow::Result<Engine> {
    Ok(Engine::connect().await?)
}

/// What a killed difyctl left on this project (its journal) finished or undone before this
/// command goes on; each thing done is said (`difyctl::heal`).
pub async fn heal_project(
    opts: &LoadOptions,
    settings: &up::UpSettings,
    state_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let project = project_name(opts)?;
    if difyctl::journal::of_project(state_dir, &project)
        .iter()
        .all(|j| j.owner_alive())
    {
        return Ok(());
    }
    let stack = load_stack(opts, &settings.replace)?;
    let engine = engine().await?;
    let _lock = up::project_lock(state_dir, &project).await?;
    for note in difyctl::heal::heal(&engine, state_dir, &stack, &settings.up_options()).await {
        eprintln!("{note}");
    }
    Ok(())
}

/// The journals of operations under way (or left by a killed difyctl) on `project`, one line
/// each, for `ps` and `status`.
pub fn pending_lines(state_dir: &std::path::Path, project: &str) -> Vec<String> {
    difyctl::journal::of_project(state_dir, project)
        .into_iter()
        .map(|j| {
            let who = if j.owner_alive() {
                format!("running (pid {})", j.record.pid)
            } else {
                format!(
                    "left by a killed difyctl (pid {}): the next command finishes or undoes it",
                    j.record.pid
                )
            };
            format!("pending: {:?} at step {}, {who}", j.op, j.record.step).to_lowercase()
        })
        .collect()
}

/// `heal_project` for commands that have no `up` settings of their own.
pub async fn heal_before(opts: &LoadOptions, state_dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = up::UpSettings {
        wait_timeout: std::time::Duration::from_secs(300),
        replace: difyctl::dify::replaced(),
        json: false,
        compose_files: std::iter::once(&opts.compose_file)
            .chain(&opts.overrides)
            .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
            .collect(),
        state_dir: state_dir.to_path_buf(),
    };
    heal_project(opts, &settings, state_dir).await
}

/// Rows in columns as wide as their widest cell, two spaces apart (`ps`, `status`).
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(String::from);
    let mut widths = [0usize; N];
    for r in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

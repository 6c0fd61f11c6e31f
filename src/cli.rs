//! The command line as typed: what comes before the command, and the list of commands. Each
//! command's own arguments are in its `cmd/<name>.rs`; the setting flags (`--domain`,
//! `--http`, `--max-body`, ...) come from the settings table (`config/settings.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use difyctl::config::row::GLOBAL;
use difyctl::config::SettingArgs;

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "difyctl",
    version,
    about = "Run a self-hosted Dify: stack, HTTPS proxy and certificates in one binary"
)]
pub struct Cli {
    /// Compose file; repeat to merge several, later ones winning (default: ./compose.yaml or
    /// ./docker-compose.yaml, plus its .override file). Before the command, as with compose
    /// (`logs -f` is follow)
    #[arg(
        short = 'f',
        long = "file",
        env = "COMPOSE_FILE",
        value_name = "FILE",
        value_delimiter = ':'
    )]
    pub file: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, else the compose file's folder name)
    #[arg(
        short = 'p',
        long = "project-name",
        global = true,
        env = "COMPOSE_PROJECT_NAME",
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub project_name: Option<String>,
    /// difyctl.toml to read (default: ./difyctl.toml when it exists)
    #[arg(
        long,
        global = true,
        env = "DIFYCTL_CONFIG",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,
    /// Dify's .env (default: ./.env beside the compose file, when it exists); repeat to read
    /// several, later ones winning, as compose does
    #[arg(
        long,
        global = true,
        env = "DIFYCTL_ENV_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub env_file: Vec<PathBuf>,
    /// Log line format on stderr (the log level comes from RUST_LOG, default info)
    #[arg(long, global = true, env = "DIFYCTL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, help_heading = "Global options")]
    pub log_format: LogFormat,
    /// `--state-dir`.
    #[command(flatten)]
    pub settings: SettingArgs<GLOBAL>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(display_order = 40)]
    /// Run only the HTTPS reverse proxy (and its certificates) in front of running Dify services
    Proxy(Box<cmd::proxy::Args>),
    #[command(display_order = 41)]
    /// Certificates: where they stand, and renewal on demand
    #[command(subcommand)]
    Certs(cmd::certs::Args),
    #[command(display_order = 1)]
    /// A new install in a folder: Dify's stack, a .env with fresh secrets, difyctl.toml
    Init(cmd::init::Args),
    #[command(display_order = 10)]
    /// Start the stack (create, recreate or keep each service's container, in dependency order)
    Up(Box<cmd::up::Args>),
    #[command(display_order = 11)]
    /// Stop and remove the stack's containers and networks; volumes (your data) only with -v
    Down(cmd::down::Args),
    #[command(display_order = 13)]
    /// One screen from the running difyctl: URL, certificate, services, last minute's traffic
    Status(cmd::status::Args),
    #[command(display_order = 12)]
    /// The stack's containers: state, health, ports, uptime
    Ps(cmd::ps::Args),
    #[command(display_order = 14)]
    /// Containers' output, prefixed with their service like compose
    Logs(cmd::logs::Args),
    #[command(display_order = 15)]
    /// Restart services' containers (all with none named)
    Restart(cmd::restart::RestartArgs),
    /// Stop services' containers, keeping them (all with none named); `start` starts them again
    #[command(display_order = 16)]
    Stop(cmd::restart::StopArgs),
    /// Start services' stopped containers (all with none named)
    #[command(display_order = 17)]
    Start(cmd::restart::StartArgs),
    /// Run a command in a service's running container, e.g. `exec api flask reset-password`
    #[command(display_order = 18)]
    Exec(cmd::exec::Args),
    #[command(display_order = 19)]
    /// Pull the images of the services `up` would start
    Pull(cmd::pull::Args),
    #[command(display_order = 2)]
    /// Preflight: Docker, ports 80/443, DNS of each domain, disk, state directory, clock
    Doctor(cmd::doctor::Args),
    #[command(display_order = 30)]
    /// One verified archive of the install: database dumps, volumes and data folders, env and
    /// compose files, difyctl.toml and difyctl's state
    #[command(args_conflicts_with_subcommands = true)]
    Backup(cmd::backup::Args),
    #[command(display_order = 31)]
    /// Put a backup archive back into an empty install (this machine or another), then start it
    Restore(cmd::restore::Args),
    #[command(display_order = 33)]
    /// The same install as manifests for a cluster (kubectl apply -k DIR)
    #[command(subcommand)]
    Export(cmd::export::Args),
    #[command(display_order = 3)]
    /// Dify's releases: which exist, which this install runs, which is newest
    Releases(cmd::releases::Args),
    #[command(display_order = 32)]
    /// Bring the install to another Dify release, data kept; everything put back when it fails
    Upgrade(cmd::upgrade::Args),
    #[command(display_order = 50)]
    /// Shell completions: `difyctl completions bash > /etc/bash_completion.d/difyctl`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(display_order = 20)]
    /// The resolved compose project (interpolated, profiles applied), like `docker compose config`
    Config(cmd::config::Args),
}

#[cfg(test)]
mod tests {
    /// Regression: `logs -f` (follow) once clashed with a global `-f` (file), and clap only
    /// panics about that when the command is run.
    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

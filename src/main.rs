//! Entry point: parse the command line, set up logging, dispatch to the command, print any
//! error once with its causes, and exit 0 (ok), 1 (runtime failure) or 2 (usage or
//! configuration error).

mod cli;
mod cmd;

use std::process::ExitCode;

use cli::{Cli, Command, LogFormat};
use difyctl::config::ConfigError;
use difyctl::proxy::UpstreamError;

/// mimalloc instead of the system allocator: the proxy allocates a few dozen small objects per
/// request (headers, futures, buffers), and glibc's malloc and free measured about 14% of its
/// instructions per request under load (BENCHMARKS.md, callgrind).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A closed pipe on stdout or stderr ends printing, never the work (a reconcile half done).
    let _stdio = difyctl::stdio::protect();
    // Not `get_matches`: its exit for --help or a usage error would skip the flush of `_stdio`.
    let matches = match <Cli as clap::CommandFactory>::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `exec`: the command's own exit code, its output already said why.
            if let Some(cmd::exec::ExitStatus(code)) = err.downcast_ref::<cmd::exec::ExitStatus>() {
                return ExitCode::from(u8::try_from(*code).unwrap_or(1));
            }
            eprintln!("error: {err:#}");
            let usage = err.downcast_ref::<ConfigError>().is_some()
                || err.downcast_ref::<UpstreamError>().is_some()
                || err.downcast_ref::<cmd::UsageError>().is_some()
                || err
                    .downcast_ref::<difyctl::stack::compose::StackError>()
                    .is_some()
                || matches!(
                    err.downcast_ref::<difyctl::upgrade::UpgradeError>(),
                    Some(difyctl::upgrade::UpgradeError::Downgrade { .. })
                )
                || matches!(
                    err.downcast_ref::<difyctl::engine::EngineError>(),
                    Some(difyctl::engine::EngineError::UnknownService(_))
                );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Dispatches to the command, which turns its own arguments into what it needs.
fn run(cli: Cli) -> anyhow::Result<()> {
    let (g, command) = cmd::Globals::new(cli)?;
    match command {
        Command::Up(args) => args.run(&g),
        Command::Down(args) => args.run(&g),
        Command::Status(args) => args.run(&g),
        Command::Ps(args) => args.run(&g),
        Command::Logs(args) => args.run(&g),
        Command::Restart(args) => args.run(&g),
        Command::Stop(args) => args.run(&g),
        Command::Start(args) => args.run(&g),
        Command::Exec(args) => args.run(&g),
        Command::Pull(args) => args.run(&g),
        Command::Config(args) => args.run(&g),
        Command::Init(args) => args.run(&g),
        Command::Doctor(args) => args.run(&g),
        Command::Releases(args) => args.run(&g),
        Command::Backup(args) => args.run(&g),
        Command::Restore(args) => args.run(&g),
        Command::Upgrade(args) => args.run(&g),
        Command::Export(args) => args.run(&g),
        Command::Proxy(args) => args.run(&g),
        Command::Certs(args) => args.run(&g),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "difyctl", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

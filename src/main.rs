//! Entry point: parse the command line, set up logging, merge the configuration once, run the
//! command, print any error once with its causes, and exit 0 (ok), 1 (runtime failure) or
//! 2 (usage or configuration error).

mod cli;
mod cmd;

use std::process::ExitCode;

use cli::{CertsCommand, Cli, Command, LogFormat};
use difyctl::config::{Config, ConfigError, Flags};
use difyctl::proxy::{Upstream, UpstreamError, Upstreams};

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
    match run(cli, env_sourced(&matches)) {
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

fn run(cli: Cli, from_env: Vec<(String, String)>) -> anyhow::Result<()> {
    let mut flags = Flags {
        from_env,
        config: cli.config,
        env_file: cli.env_file,
        state_dir: cli.state_dir,
        log_format: match cli.log_format {
            LogFormat::Plain => difyctl::config::LogFormat::Plain,
            LogFormat::Json => difyctl::config::LogFormat::Json,
        },
        releases_url: std::env::var("DIFYCTL_RELEASES_URL").ok(),
        ..Flags::default()
    };
    let process_env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let files = match cli.file.is_empty() {
        true => difyctl::stack::compose::files_from_dotenv(&flags.env_file, &process_env)?
            .unwrap_or_default(),
        false => cli.file.clone(),
    };
    let (compose_file, overrides) = match files.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => difyctl::stack::compose::default_files(std::path::Path::new("")),
    };
    let project_name = cli.project_name.clone();
    let load = |profiles: Vec<String>| difyctl::stack::compose::LoadOptions {
        compose_file: compose_file.clone(),
        overrides: overrides.clone(),
        env_files: flags.env_file.clone(),
        project_name: project_name.clone(),
        profiles,
        process_env: process_env.clone(),
    };
    match cli.command {
        Command::Up(args) => {
            let opts = load(args.profiles.clone());
            let stack = cmd::load_stack(&opts, &args.replace)?;
            let mut stack = cmd::named_services(stack, &args.services, true)?;
            flags.domains = args.domain.domains;
            flags.http = args.http;
            flags.https = args.https;
            flags.admin = args.admin.admin;
            set_acme_flags(&mut flags, args.acme);
            let config = Config::load(&flags)?;
            cmd::public_urls(&mut stack, &config);
            cmd::warn_public_secrets(&stack);
            let settings = cmd::up::UpSettings {
                wait_timeout: std::time::Duration::from_secs(args.wait_timeout),
                replace: args.replace,
                json: args.json,
                compose_files: absolute_files(&compose_file, &overrides),
                state_dir: config.state_dir.clone(),
            };
            if args.no_proxy {
                return runtime()?
                    .block_on(cmd::up::reconcile_stack(&stack, &settings))
                    .map(|_| ());
            }
            if args.detach {
                let rt = runtime()?;
                rt.block_on(cmd::up::reconcile_stack(&stack, &settings))?;
                return rt.block_on(cmd::detach::serve_in_background(
                    &stack.project,
                    &stack.dir,
                    &config.state_dir,
                    std::time::Duration::from_secs(args.wait_timeout.max(60)),
                ));
            }
            runtime()?.block_on(cmd::up::run(stack, config, &settings))
        }
        Command::Export(cli::ExportTarget::Kubernetes(mut args)) => {
            let mut stack =
                cmd::load_stack(&load(args.profiles.clone()), &difyctl::dify::replaced())?;
            flags.domains = std::mem::take(&mut args.domain.domains);
            set_contact_flags(&mut flags, std::mem::take(&mut args.acme));
            let config = Config::load(&flags)?;
            // What `up` runs: the URL settings derived from the domain (served on 443 there).
            if let Some(domain) = config.domains.first() {
                for note in difyctl::stack::urls::apply_public_urls(&mut stack, domain, 443) {
                    eprintln!("{note}");
                }
            }
            cmd::export::kubernetes(&stack, &config, &args)
        }
        Command::Upgrade {
            from,
            to,
            resume,
            undo,
            dry_run,
            yes,
            profiles,
            wait_timeout,
        } => {
            let opts = load(profiles);
            let config = Config::load(&flags)?;
            let settings = cmd::up::UpSettings {
                wait_timeout: std::time::Duration::from_secs(wait_timeout),
                replace: difyctl::dify::replaced(),
                json: false,
                compose_files: absolute_files(&opts.compose_file, &opts.overrides),
                state_dir: config.state_dir.clone(),
            };
            let args = cmd::upgrade::UpgradeArgs {
                from,
                to,
                resume,
                undo,
                dry_run,
                yes,
                opts,
                settings,
            };
            runtime()?.block_on(cmd::upgrade::run(args, config))
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "difyctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Init {
            domain,
            email,
            dir,
            version,
        } => {
            let config = Config::load(&flags)?;
            let args = cmd::init::InitArgs {
                dir: &dir,
                domain: domain.as_deref(),
                email: email.as_deref(),
                version: version.as_deref(),
            };
            runtime()?.block_on(cmd::init::run(args, &config))
        }
        Command::Doctor { json, domains } => {
            flags.domains = domains;
            let config = Config::load(&flags)?;
            runtime()?.block_on(cmd::doctor::run(&config, &compose_file, json))
        }
        Command::Down { volumes, timeout } => {
            let project = cmd::project_name(&load(Vec::new()))?;
            let config = Config::load(&flags)?;
            runtime()?.block_on(cmd::down::run(
                &project,
                volumes,
                std::time::Duration::from_secs(timeout),
                &config.state_dir,
            ))
        }
        Command::Status { json } => {
            let project = cmd::project_name(&load(Vec::new())).ok();
            let config = Config::load(&flags)?;
            runtime()?.block_on(cmd::status::run(
                project.as_deref(),
                &config.state_dir,
                json,
            ))
        }
        Command::Ps { json, all: _ } => {
            let opts = load(Vec::new());
            let project = cmd::project_name(&opts)?;
            let config = Config::load(&flags)?;
            let rt = runtime()?;
            rt.block_on(cmd::heal_before(&opts, &config.state_dir))?;
            rt.block_on(cmd::ps::run(&project, &config.state_dir, json))
        }
        Command::Logs {
            services,
            follow,
            tail,
            timestamps,
            since,
        } => {
            let since = since
                .as_deref()
                .map(cmd::logs::since)
                .transpose()
                .map_err(|m| cmd::UsageError(format!("--since: {m}")))?;
            let opts = load(Vec::new());
            let project = cmd::project_name(&opts)?;
            if services.iter().any(|s| s == "difyctl") {
                let config = Config::load(&flags)?;
                return runtime()?.block_on(cmd::detach::show_log(
                    &config.state_dir,
                    &project,
                    follow,
                    tail,
                ));
            }
            let view = difyctl::engine::logs::View {
                follow,
                tail,
                timestamps,
                since,
            };
            runtime()?
                .block_on(cmd::logs::run(&project, &services, view))
                .map_err(|e| cmd::explain_missing(e, &opts))
        }
        Command::Restart { services, timeout } => {
            let opts = load(Vec::new());
            let project = cmd::project_name(&opts)?;
            let config = Config::load(&flags)?;
            let rt = runtime()?;
            rt.block_on(cmd::heal_before(&opts, &config.state_dir))?;
            rt.block_on(cmd::restart::run(
                &project,
                &services,
                std::time::Duration::from_secs(timeout),
                &config.state_dir,
            ))
            .map_err(|e| cmd::explain_missing(e, &opts))
        }
        Command::Pull { services, profiles } => {
            let stack = cmd::load_stack(&load(profiles), &difyctl::dify::replaced())?;
            let stack = cmd::named_services(stack, &services, false)?;
            runtime()?.block_on(cmd::pull::run(&stack))
        }
        Command::Stop { services, timeout } => {
            let opts = load(Vec::new());
            let project = cmd::project_name(&opts)?;
            runtime()?
                .block_on(cmd::restart::stop(
                    &project,
                    &services,
                    std::time::Duration::from_secs(timeout),
                ))
                .map_err(|e| cmd::explain_missing(e, &opts))
        }
        Command::Start { services } => {
            let opts = load(Vec::new());
            let project = cmd::project_name(&opts)?;
            let config = Config::load(&flags)?;
            let rt = runtime()?;
            rt.block_on(cmd::heal_before(&opts, &config.state_dir))?;
            rt.block_on(cmd::restart::start(&project, &services))
                .map_err(|e| cmd::explain_missing(e, &opts))
        }
        Command::Exec { service, command } => {
            let opts = load(Vec::new());
            let project = cmd::project_name(&opts)?;
            let code = runtime()?
                .block_on(cmd::exec::run(&project, &service, &command))
                .map_err(|e| cmd::explain_missing(e, &opts))?;
            if code != 0 {
                return Err(cmd::exec::ExitStatus(code).into());
            }
            Ok(())
        }
        Command::Backup {
            action: Some(cli::BackupAction::Key),
            ..
        } => {
            let config = Config::load(&flags)?;
            cmd::backup::key(&config.state_dir)
        }
        Command::Backup {
            action: None,
            to,
            keep,
            profiles,
            json,
        } => {
            let opts = load(profiles);
            let stack = cmd::load_stack(&opts, &difyctl::dify::replaced())?;
            flags.backup_dir = to;
            flags.backup_keep = keep;
            let config = Config::load(&flags)?;
            let files = absolute_files(&opts.compose_file, &opts.overrides);
            let rt = runtime()?;
            rt.block_on(cmd::heal_before(&opts, &config.state_dir))?;
            rt.block_on(cmd::backup::run(stack, files, config, json))
        }
        Command::Restore {
            archive,
            dir,
            force,
            trust,
            untrusted,
            yes,
            wait_timeout,
            json,
        } => {
            let config = Config::load(&flags)?;
            // `-f` names the install, as in compose: its folder is where it is restored.
            let dir = dir.unwrap_or_else(|| match cli.file.first() {
                Some(f) => f
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| ".".into(), std::path::Path::to_path_buf),
                None => ".".into(),
            });
            runtime()?.block_on(cmd::restore::run(cmd::restore::RestoreArgs {
                archive,
                dir,
                force,
                trust,
                untrusted,
                yes,
                project_name,
                state_dir: config.state_dir,
                wait_timeout: std::time::Duration::from_secs(wait_timeout),
                json,
            }))
        }
        Command::Releases { json } => {
            let config = Config::load(&flags)?;
            runtime()?.block_on(cmd::releases::run(&config, &load(Vec::new()), json))
        }
        Command::Config {
            services,
            json,
            profiles,
            no_env_resolution,
        } => {
            let config = Config::load(&flags)?;
            let output = cmd::config::Output {
                services_only: services,
                json,
                env_resolution: !no_env_resolution,
            };
            cmd::config::run(&load(profiles), &config, &output)
        }
        Command::Proxy(args) => {
            let args = *args;
            let upstreams = Upstreams {
                web: Some(Upstream::parse("web", &args.upstream_web)?),
                api: Some(Upstream::parse("api", &args.upstream_api)?),
                plugin: args
                    .upstream_plugin
                    .as_deref()
                    .map(|a| Upstream::parse("plugin_daemon", a))
                    .transpose()?,
                socket: args
                    .upstream_socket
                    .as_deref()
                    .map(|a| Upstream::parse("api_websocket", a))
                    .transpose()?,
            };
            flags.domains = args.domain.domains;
            flags.http = args.http;
            flags.https = args.https;
            flags.max_body = args.max_body;
            flags.read_timeout = args.read_timeout;
            flags.shutdown_grace = args.shutdown_grace;
            flags.admin = args.admin.admin;
            flags.no_hsts = args.no_hsts;
            flags.trusted_proxies = args.trusted_proxies;
            flags.workers = args.workers;
            flags.cert = args.cert;
            flags.key = args.key;
            set_acme_flags(&mut flags, args.acme);
            let config = Config::load(&flags)?;
            runtime()?.block_on(cmd::proxy::run(config, upstreams))
        }
        Command::Certs(CertsCommand::Status { json }) => {
            let config = Config::load(&flags)?;
            cmd::certs::status(&config, json)
        }
        Command::Certs(CertsCommand::Renew {
            force,
            domain,
            acme,
            http,
            https,
            names,
        }) => {
            set_acme_flags(&mut flags, acme);
            flags.http = http;
            flags.https = https;
            flags.domains = names;
            let config = Config::load(&flags)?;
            runtime()?.block_on(cmd::certs::renew(config, force, domain))
        }
    }
}

/// The flags (long name, variable) whose value clap took from their environment variable.
fn env_sourced(matches: &clap::ArgMatches) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let mut cmd = &command;
    let mut m = matches;
    loop {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            let from_env = m.value_source(id) == Some(clap::parser::ValueSource::EnvVariable);
            if let (true, Some(long), Some(env)) = (from_env, arg.get_long(), arg.get_env()) {
                out.push((long.to_string(), env.to_string_lossy().into_owned()));
            }
        }
        match m.subcommand() {
            Some((name, sub)) => match cmd.find_subcommand(name) {
                Some(c) => {
                    cmd = c;
                    m = sub;
                }
                None => break,
            },
            None => break,
        }
    }
    out
}

fn absolute_files(
    main: &std::path::Path,
    overrides: &[std::path::PathBuf],
) -> Vec<std::path::PathBuf> {
    std::iter::once(main)
        .chain(overrides.iter().map(|p| p.as_path()))
        .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf()))
        .collect()
}

fn set_contact_flags(flags: &mut Flags, contact: cli::AcmeContact) {
    flags.email = contact.email;
    flags.acme_directory = contact.acme_directory;
}

fn set_acme_flags(flags: &mut Flags, acme: cli::AcmeArgs) {
    set_contact_flags(flags, acme.contact);
    flags.acme_ca_root = acme.acme_ca_root;
    flags.challenge = acme.challenge;
}

/// The control runtime (signals, reloads). The proxy's workers run their own runtimes.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
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

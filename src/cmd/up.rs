//! `difyctl up`: reconcile the stack (create, recreate or keep each service's container, in
//! dependency order, waiting for health), then, unless `--no-proxy`, serve the proxy and run
//! the certificate manager in the foreground.

use std::time::Duration;

use difyctl::config::row::UP;
use difyctl::config::SettingArgs;
use difyctl::engine::progress::Progress;
use difyctl::engine::reconcile::{self, Action, UpOptions};
use difyctl::stack::model::Stack;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these services (and what they depend on) [default: all]
    pub services: Vec<String>,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    /// Only the stack: start it, wait until every service is healthy, exit
    #[arg(long)]
    pub no_proxy: bool,
    /// Start the stack, then keep serving in the background (the systemd unit when it is
    /// installed, else a detached difyctl whose log `difyctl logs difyctl` shows)
    #[arg(short = 'd', long, conflicts_with = "no_proxy")]
    pub detach: bool,
    /// Seconds a service may take to become healthy (or to complete) before `up` fails
    #[arg(
        long,
        env = "DIFYCTL_WAIT_TIMEOUT",
        default_value_t = 300,
        value_name = "SECS"
    )]
    pub wait_timeout: u64,
    /// Services left to difyctl instead of started (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nginx,certbot",
        value_name = "LIST"
    )]
    pub replace: Vec<String>,
    /// Print the result as JSON (progress stays on stderr)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub settings: SettingArgs<UP>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let stack = super::load_stack(&g.load(self.profiles.clone()), &self.replace)?;
        let mut stack = super::named_services(stack, &self.services, true)?;
        let config = g.config_with(&self.settings)?;
        super::public_urls(&mut stack, &config);
        super::warn_public_secrets(&stack);
        let settings = UpSettings {
            wait_timeout: Duration::from_secs(self.wait_timeout),
            replace: self.replace,
            json: self.json,
            compose_files: g.compose_files(),
            state_dir: config.state_dir.clone(),
        };
        if self.no_proxy {
            return runtime()?
                .block_on(reconcile_stack(&stack, &settings))
                .map(|_| ());
        }
        if self.detach {
            let rt = runtime()?;
            rt.block_on(reconcile_stack(&stack, &settings))?;
            return rt.block_on(super::detach::serve_in_background(
                &stack.project,
                &stack.dir,
                &config.state_dir,
                Duration::from_secs(self.wait_timeout.max(60)),
            ));
        }
        runtime()?.block_on(run(stack, config, &settings))
    }
}

pub struct UpSettings {
    pub wait_timeout: Duration,
    pub replace: Vec<String>,
    pub json: bool,
    /// The compose files (absolute): the containers' config_files label, scheduled backups.
    pub compose_files: Vec<std::path::PathBuf>,
    /// Where the project lock is, and the control socket of a serving difyctl to tell.
    pub state_dir: std::path::PathBuf,
}

impl UpSettings {
    /// The reconcile's options, without a journal.
    pub fn up_options(&self) -> UpOptions {
        UpOptions {
            timeout: self.wait_timeout,
            config_file: self.config_files_label(),
            retired: self.replace.clone(),
            journal: None,
        }
    }

    /// `com.docker.compose.project.config_files`: the files, absolute and comma-separated, as
    /// docker compose writes it.
    fn config_files_label(&self) -> String {
        self.compose_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Brings the stack up and waits for it; prints what was done.
pub async fn reconcile_stack(
    stack: &Stack,
    settings: &UpSettings,
) -> anyhow::Result<Vec<reconcile::ServiceResult>> {
    let engine = super::engine().await?;
    let _lock = project_lock(&settings.state_dir, &stack.project).await?;
    // What a killed difyctl left is finished first, and a backup's pause waited for.
    for note in
        difyctl::heal::heal(&engine, &settings.state_dir, stack, &settings.up_options()).await
    {
        eprintln!("{note}");
    }
    let notes = difyctl::heal::wait_for_pauses(
        &engine,
        &settings.state_dir,
        &stack.project,
        settings.wait_timeout,
        |m| eprintln!("{m}"),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    for note in notes {
        eprintln!("{note}");
    }
    difyctl::journal::set_down(&settings.state_dir, &stack.project, false);
    // A difyctl serving this project is told what may restart, so requests wait for it.
    let services: Vec<String> = stack.services.iter().map(|s| s.name.clone()).collect();
    let secs = settings.wait_timeout.as_secs() + 60;
    let told = difyctl::control::expect(&settings.state_dir, &stack.project, &services, secs).await;
    let result = finish_on_ctrl_c(reconcile_locked(&engine, stack, settings)).await;
    if told {
        difyctl::control::clear(&settings.state_dir, &stack.project, &services).await;
    }
    result
}

/// Ctrl-C while containers are being changed: the changes under way are finished (a service
/// is never left without its container by an impatient key), a second Ctrl-C stops at once
/// and the next difyctl finishes the job from the journal.
async fn finish_on_ctrl_c<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut asked = false;
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tokio::signal::ctrl_c() => {
                if asked {
                    eprintln!("stopped: the next `difyctl up` (or the serving one) finishes what was left");
                    std::process::exit(130);
                }
                asked = true;
                eprintln!("Ctrl-C: finishing this `up` first, so no service is left without its container; Ctrl-C again to stop at once");
            }
        }
    }
}

/// One reconcile of a project at a time: two at once created two `<project>_default`
/// networks, and every later `up` failed on the ambiguous name. The second waits.
pub async fn project_lock(
    state_dir: &std::path::Path,
    project: &str,
) -> anyhow::Result<difyctl::lock::Lock> {
    let path = difyctl::lock::project_path(state_dir, project);
    let what = format!("a difyctl reconciling project {project}");
    Ok(difyctl::lock::acquire(&path, &what, |pid| {
        eprintln!(
            "waiting for the other difyctl (pid {pid}) to finish bringing project {project} up"
        );
    })
    .await?)
}

async fn reconcile_locked(
    engine: &difyctl::engine::Engine,
    stack: &Stack,
    settings: &UpSettings,
) -> anyhow::Result<Vec<reconcile::ServiceResult>> {
    let width = stack
        .services
        .iter()
        .map(|s| s.name.len())
        .chain(stack.services.iter().map(|s| s.image.len()))
        .max()
        .unwrap_or(0);
    let progress = if settings.json {
        Progress::hidden()
    } else {
        Progress::new(width)
    };
    let journal = difyctl::journal::Journal::begin(
        &settings.state_dir,
        &stack.project,
        difyctl::journal::Op::Reconcile,
        "reconciling",
    )?;
    let opts = UpOptions {
        timeout: settings.wait_timeout,
        config_file: settings.config_files_label(),
        retired: settings.replace.clone(),
        journal: Some(std::sync::Arc::new(std::sync::Mutex::new(journal))),
    };
    let report = reconcile::up(engine, stack, &opts, &progress).await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let count = |a: Action| report.services.iter().filter(|s| s.action == a).count();
    if settings.json {
        println!("{}", serde_json::to_string_pretty(&report.services)?);
    } else {
        eprintln!(
            "project {}: {} service(s) up ({} created, {} recreated, {} started, {} restarted, {} unchanged)",
            stack.project,
            report.services.len(),
            count(Action::Created),
            count(Action::Recreated),
            count(Action::Started),
            count(Action::Restarted),
            count(Action::Unchanged)
        );
    }
    Ok(report.services)
}

/// The whole install: the stack, then the proxy (routes following the containers) and the
/// certificate manager in the foreground until SIGTERM/SIGINT. The containers keep running
/// when difyctl stops (a restart of difyctl, or of its systemd unit, does not restart Dify);
/// `difyctl down` stops them.
pub async fn run(
    stack: Stack,
    config: difyctl::config::Config,
    settings: &UpSettings,
) -> anyhow::Result<()> {
    reconcile_stack(&stack, settings).await?;
    super::remember_served(&config, &stack.project);
    let host = config.domains.first().map_or("localhost", String::as_str);
    let port = config.proxy.https.port();
    let url = if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    };
    tracing::info!(%url, "Dify is served here; Ctrl-C or SIGTERM stops difyctl (the containers keep running)");
    let engine = super::engine().await?;
    let (backups_tx, backups_stop) = tokio::sync::watch::channel(false);
    let backups = config.backup.schedule.clone().map(|schedule| {
        tokio::spawn(super::backup::scheduled(
            engine.clone(),
            stack.clone(),
            settings.compose_files.clone(),
            config.clone(),
            schedule,
            backups_stop,
        ))
    });
    let project =
        difyctl::server::Project::of(engine, &stack).with_repair(difyctl::server::repair::Repair {
            stack: stack.clone(),
            state_dir: settings.state_dir.clone(),
            timeout: settings.wait_timeout,
            config_file: settings.config_files_label(),
            retired: settings.replace.clone(),
        });
    let served = super::proxy::serve(difyctl::server::Server::for_project(config, project)).await;
    // A backup in progress is abandoned cleanly: its paused services unpaused, its partial
    // file removed (dropping it with the runtime would leave them paused).
    let _ = backups_tx.send(true);
    if let Some(task) = backups {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    served
}

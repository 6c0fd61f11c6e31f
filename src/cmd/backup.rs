//! `difyctl backup`: one verified archive of the running install (see `difyctl::backup`),
//! its outcome recorded for `ps` and passed to `[backup] hook`. Ctrl-C or SIGTERM abandons
//! it: paused services are unpaused and no archive is left.

use std::path::PathBuf;

use anyhow::Context;
use difyctl::backup::meter::Meter;
use difyctl::backup::status::{self, LastBackup};
use difyctl::backup::take::{self, Report, Request};
use difyctl::config::Config;
use difyctl::stack::model::Stack;
use indicatif::HumanBytes;
use tokio::signal::unix::{signal, SignalKind};

use difyctl::config::row::BACKUP;
use difyctl::config::SettingArgs;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    profiles: Vec<String>,
    /// Print a JSON summary (progress stays on stderr)
    #[arg(long)]
    json: bool,
    /// `--to`, `--keep`.
    #[command(flatten)]
    settings: SettingArgs<BACKUP>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print this install's public backup key (for `restore --trust` on another machine) and
    /// where the private one is; made when there is none
    Key,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        if let Some(Action::Key) = self.action {
            return key(&g.config()?.state_dir);
        }
        let opts = g.load(self.profiles);
        let stack = super::load_stack(&opts, &difyctl::dify::replaced())?;
        let config = g.config_with(&self.settings)?;
        let rt = runtime()?;
        rt.block_on(super::heal_before(&opts, &config.state_dir))?;
        rt.block_on(run(stack, g.compose_files(), config, self.json))
    }
}

pub async fn run(
    stack: Stack,
    compose_files: Vec<PathBuf>,
    config: Config,
    json: bool,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let engine = super::engine().await?;
    let req = Request {
        stack: &stack,
        compose_files,
        config_file: config.config_file.clone(),
        state_dir: config.state_dir.clone(),
        to: config.backup.dir.clone(),
        keep: config.backup.keep,
    };
    let meter = Meter::new(json);
    let taking = take::take(&engine, &req, &meter, stop);
    tokio::pin!(taking);
    let result = loop {
        tokio::select! {
            r = &mut taking => break r,
            _ = tokio::signal::ctrl_c() => { let _ = stop_tx.send(true); }
            _ = term.recv() => { let _ = stop_tx.send(true); }
        }
    };
    meter.finish();
    let last = outcome(&result, "command");
    status::record(&config.state_dir, &last);
    status::run_hook(config.backup.hook.as_deref(), &stack.project, &last).await;
    let report = result?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// `difyctl backup key`: the public half on stdout (one line, for `restore --trust`), where the
/// private half is on stderr.
pub fn key(state_dir: &std::path::Path) -> anyhow::Result<()> {
    let key = difyctl::backup::key::BackupKey::load_or_create(state_dir)?;
    println!("{}", key.public());
    eprintln!(
        "the private key is {} (0600; it never goes into an archive). Keep the line above off this machine: on a new one, `difyctl restore ARCHIVE --trust <it>` believes this install's backups",
        key.path.display()
    );
    Ok(())
}

/// `[backup] schedule` inside `up`: a backup at each time the schedule names, until `stop`.
/// Progress goes to the log; the outcome to the status file (`ps`) and the hook, as for
/// `difyctl backup`. A failure is logged at error level and retried at the next time.
pub async fn scheduled(
    engine: difyctl::engine::Engine,
    stack: Stack,
    compose_files: Vec<PathBuf>,
    config: Config,
    schedule: difyctl::cron::Schedule,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = now_secs();
        let next = schedule.next_after(now);
        tracing::info!(
            schedule = %schedule,
            next = %difyctl::timefmt::rfc3339(next),
            dir = %config.backup.dir.display(),
            "next backup"
        );
        let wait = std::time::Duration::from_secs(next.saturating_sub(now));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = difyctl::stopped(&mut stop) => return,
        }
        let req = Request {
            stack: &stack,
            compose_files: compose_files.clone(),
            config_file: config.config_file.clone(),
            state_dir: config.state_dir.clone(),
            to: config.backup.dir.clone(),
            keep: config.backup.keep,
        };
        let meter = Meter::new(true);
        let result = take::take(&engine, &req, &meter, stop.clone()).await;
        match &result {
            Ok(r) => tracing::info!(
                archive = %r.archive.display(),
                size = r.size,
                seconds = format!("{:.1}", r.seconds),
                "scheduled backup done"
            ),
            Err(e) => tracing::error!("scheduled backup failed: {}", difyctl::error_chain(e)),
        }
        if let Ok(r) = &result {
            for w in &r.warnings {
                tracing::warn!("backup: {w}");
            }
        }
        let last = outcome(&result, "schedule");
        status::record(&config.state_dir, &last);
        status::run_hook(config.backup.hook.as_deref(), &stack.project, &last).await;
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn print_report(report: &Report) {
    println!(
        "backup {} ({}, {} parts, {:.1} s)",
        report.archive.display(),
        HumanBytes(report.size),
        report.parts.len(),
        report.seconds
    );
    for p in report.parts.iter().filter(|p| !p.paused.is_empty()) {
        println!(
            "  {} paused {} ms while {} was copied",
            p.paused.join(", "),
            p.paused_ms.unwrap_or(0),
            p.name
        );
    }
    for old in &report.pruned {
        println!("  removed the older {}", old.display());
    }
}

/// What `ps` and the hook are told.
pub fn outcome(result: &Result<Report, difyctl::backup::BackupError>, by: &str) -> LastBackup {
    let at = difyctl::timefmt::rfc3339(now_secs());
    match result {
        Ok(r) => LastBackup {
            at,
            result: "success".into(),
            archive: Some(r.archive.clone()),
            size: Some(r.size),
            seconds: Some(r.seconds),
            error: None,
            by: by.into(),
        },
        Err(e) => LastBackup {
            at,
            result: "failure".into(),
            archive: None,
            size: None,
            seconds: None,
            error: Some(difyctl::error_chain(e)),
            by: by.into(),
        },
    }
}

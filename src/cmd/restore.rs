//! `difyctl restore ARCHIVE [--dir DIR] [--force] [--trust KEY] [--untrusted] [--yes]`: see
//! `difyctl::backup::restore`. An archive no trusted key signed is restored only with
//! `--untrusted`, and only after what it would do to this host was shown and accepted (a
//! question on a terminal, else `--yes`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use difyctl::backup::key::PublicKey;
use difyctl::backup::meter::Meter;
use difyctl::backup::restore::{self, Request};

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The archive (`difyctl-<project>-<time>.tar`)
    archive: PathBuf,
    /// The install folder to restore into [default: the folder of -f, else the current
    /// folder]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Overwrite a non-empty folder, volumes, database files or state
    #[arg(long)]
    force: bool,
    /// Also believe archives signed by this backup key (`difyctl backup key` prints one;
    /// the key, or a file holding it; repeatable)
    #[arg(long, value_name = "KEY")]
    trust: Vec<String>,
    /// Restore an archive no trusted key signed: what its compose would do to this host is
    /// shown first, and asked about (or --yes)
    #[arg(long)]
    untrusted: bool,
    /// Do not ask before restoring an untrusted archive
    #[arg(long, short = 'y')]
    yes: bool,
    /// Seconds a service may take to become healthy once restored
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    wait_timeout: u64,
    /// Print a JSON summary (progress stays on stderr)
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let config = g.config()?;
        // `-f` names the install, as in compose: its folder is where it is restored.
        let dir = self.dir.unwrap_or_else(|| match g.files.first() {
            Some(f) => f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| ".".into(), std::path::Path::to_path_buf),
            None => ".".into(),
        });
        runtime()?.block_on(run(RestoreArgs {
            archive: self.archive,
            dir,
            force: self.force,
            trust: self.trust,
            untrusted: self.untrusted,
            yes: self.yes,
            project_name: g.project_name.clone(),
            state_dir: config.state_dir,
            wait_timeout: Duration::from_secs(self.wait_timeout),
            json: self.json,
        }))
    }
}

pub struct RestoreArgs {
    pub archive: PathBuf,
    pub dir: PathBuf,
    pub force: bool,
    pub trust: Vec<String>,
    pub untrusted: bool,
    pub yes: bool,
    pub project_name: Option<String>,
    pub state_dir: PathBuf,
    pub wait_timeout: Duration,
    pub json: bool,
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let trust = args
        .trust
        .iter()
        .map(|t| PublicKey::parse_arg(t).map_err(|e| super::UsageError(format!("--trust: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let engine = super::engine().await?;
    let req = Request {
        archive: args.archive,
        dir: args.dir,
        force: args.force,
        project_name: args.project_name,
        state_dir: args.state_dir,
        process_env: std::env::vars().collect(),
        wait_timeout: args.wait_timeout,
        quiet: args.json,
        trust,
        untrusted: args.untrusted,
    };
    let meter = Meter::new(args.json);
    let prepared = match restore::prepare(&engine, &req, &meter).await {
        Ok(p) => p,
        Err(e @ restore::RestoreError::Untrusted { .. }) => {
            meter.finish();
            return Err(super::UsageError(difyctl::error_chain(&e)).into());
        }
        Err(e) => {
            meter.finish();
            return Err(e.into());
        }
    };
    if !prepared.trust.trusted() {
        confirm(&prepared.risks, args.yes)?;
    }
    let result = restore::apply(&engine, &prepared, &req, &meter).await;
    meter.finish();
    let report = result?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "restored {} (project {}, taken {}) into {} as project {}: {} service(s) up",
        report.archive.display(),
        report.from_project,
        report.created_at,
        report.dir.display(),
        report.project,
        report.services.len()
    );
    println!(
        "serve it with `difyctl up` in {} (or start the systemd unit)",
        report.dir.display()
    );
    Ok(())
}

/// Shows what an untrusted archive's stack would do to this host and asks (or needs --yes).
fn confirm(risks: &[String], yes: bool) -> anyhow::Result<()> {
    eprintln!("This archive is not signed by a trusted key. Restored, its stack would:");
    if risks.is_empty() {
        eprintln!("  (nothing beyond its own folder, volumes and containers)");
    }
    for r in risks {
        eprintln!("  - {r}");
    }
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(super::UsageError(
            "not restored: give --yes to restore this untrusted archive without a question".into(),
        )
        .into());
    }
    eprint!("Restore it? Nothing has been changed yet. [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(
        answer.trim().eq_ignore_ascii_case("y"),
        "not restored: nothing was changed"
    );
    Ok(())
}

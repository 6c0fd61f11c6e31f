//! `difyctl restore ARCHIVE [--dir DIR] [--force]`: see `difyctl::backup::restore`.

use std::path::PathBuf;
use std::time::Duration;

use difyctl::backup::meter::Meter;
use difyctl::backup::restore::{self, Request};

pub struct RestoreArgs {
    pub archive: PathBuf,
    pub dir: PathBuf,
    pub force: bool,
    pub project_name: Option<String>,
    pub state_dir: PathBuf,
    pub wait_timeout: Duration,
    pub json: bool,
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<()> {
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
    };
    let meter = Meter::new(args.json);
    let result = restore::restore(&engine, &req, &meter).await;
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

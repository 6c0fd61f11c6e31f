//! `difyctl down [-v]`: containers and networks go; volumes, and the data in them, stay unless
//! `-v` is given.

use std::path::Path;
use std::time::Duration;

use difyctl::engine::ops;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also remove the project's named volumes, and with them their data
    #[arg(short = 'v', long = "volumes")]
    volumes: bool,
    /// Seconds each container gets to stop before it is killed
    #[arg(short = 't', long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let project = super::project_name(&g.load(Vec::new()))?;
        let config = g.config()?;
        runtime()?.block_on(run(
            &project,
            self.volumes,
            Duration::from_secs(self.timeout),
            &config.state_dir,
        ))
    }
}

pub async fn run(
    project: &str,
    volumes: bool,
    timeout: Duration,
    state_dir: &Path,
) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    // The difyctl serving the project goes with it (compose's down stops its nginx too).
    if let Ok(Some(s)) = difyctl::control::request_status(state_dir).await {
        if s.project.as_deref() == Some(project) {
            // SAFETY: kill(2) with a pid the running difyctl reported for itself.
            if unsafe { libc::kill(s.pid as i32, libc::SIGTERM) } == 0 {
                eprintln!(
                    "stopped the difyctl serving project {project} (pid {})",
                    s.pid
                );
                wait_gone(state_dir).await;
            }
        }
    }
    let report = ops::down(&engine, project, volumes, timeout).await?;
    // Taken down on purpose: nothing of it is to be brought back, nothing a killed `up` or
    // backup left is to be finished.
    difyctl::journal::set_down(state_dir, project, true);
    for j in difyctl::journal::of_project(state_dir, project) {
        let leftover = matches!(
            j.op,
            difyctl::journal::Op::Reconcile | difyctl::journal::Op::Backup
        );
        if leftover && !j.owner_alive() {
            j.remove();
        }
    }
    for c in &report.containers {
        eprintln!("removed container {c}");
    }
    for n in &report.networks {
        eprintln!("removed network {n}");
    }
    for v in &report.volumes {
        eprintln!("removed volume {v}");
    }
    if report.containers.is_empty() && report.networks.is_empty() {
        eprintln!("project {project}: nothing to remove");
    }
    if !volumes {
        eprintln!("volumes kept (remove them, and their data, with `down -v`)");
    }
    Ok(())
}

/// Waits (a little) for the stopped difyctl's control socket to go quiet.
async fn wait_gone(state_dir: &Path) {
    for _ in 0..150 {
        if !matches!(
            difyctl::control::request_status(state_dir).await,
            Ok(Some(_))
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

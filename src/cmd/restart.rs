//! `difyctl restart|stop|start [SERVICE...]`: containers restarted, stopped or started in
//! place (same container, same volumes).
//! A running `difyctl up` is told first, so requests to them wait instead of getting a 502
//! while they are down.

use std::path::Path;
use std::time::Duration;

use difyctl::engine::ops;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Services to restart [default: all]
    services: Vec<String>,
    /// Seconds each container gets to stop before it is killed
    #[arg(short = 't', long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

impl RestartArgs {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let opts = g.load(Vec::new());
        let project = super::project_name(&opts)?;
        let config = g.config()?;
        let rt = runtime()?;
        rt.block_on(super::heal_before(&opts, &config.state_dir))?;
        rt.block_on(run(
            &project,
            &self.services,
            Duration::from_secs(self.timeout),
            &config.state_dir,
        ))
        .map_err(|e| super::explain_missing(e, &opts))
    }
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Services to stop [default: all]
    services: Vec<String>,
    /// Seconds each container gets to stop before it is killed
    #[arg(short = 't', long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

impl StopArgs {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let opts = g.load(Vec::new());
        let project = super::project_name(&opts)?;
        runtime()?
            .block_on(stop(
                &project,
                &self.services,
                Duration::from_secs(self.timeout),
            ))
            .map_err(|e| super::explain_missing(e, &opts))
    }
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Services to start [default: all]
    services: Vec<String>,
}

impl StartArgs {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let opts = g.load(Vec::new());
        let project = super::project_name(&opts)?;
        let config = g.config()?;
        let rt = runtime()?;
        rt.block_on(super::heal_before(&opts, &config.state_dir))?;
        rt.block_on(start(&project, &self.services))
            .map_err(|e| super::explain_missing(e, &opts))
    }
}

pub async fn run(
    project: &str,
    services: &[String],
    timeout: Duration,
    state_dir: &Path,
) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let named: Vec<String> = if services.is_empty() {
        difyctl::dify::FRONTED.map(String::from).to_vec()
    } else {
        services.to_vec()
    };
    let told = difyctl::control::expect(state_dir, project, &named, timeout.as_secs() + 120).await;
    let result = ops::restart(&engine, project, services, timeout).await;
    if told {
        difyctl::control::clear(state_dir, project, &named).await;
    }
    for name in result? {
        eprintln!("restarted {name}");
    }
    Ok(())
}

/// `difyctl stop [SERVICE...]`: the containers stop and stay (a serving `up` answers their
/// routes with a 502 naming them, and does not bring them back).
pub async fn stop(project: &str, services: &[String], timeout: Duration) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    for name in ops::stop(&engine, project, services, timeout).await? {
        eprintln!("stopped {name}");
    }
    Ok(())
}

/// `difyctl start [SERVICE...]`: stopped containers started again.
pub async fn start(project: &str, services: &[String]) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    for name in ops::start(&engine, project, services).await? {
        eprintln!("started {name}");
    }
    Ok(())
}

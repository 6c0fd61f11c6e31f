//! `difyctl restart|stop|start [SERVICE...]`: containers restarted, stopped or started in
//! place (same container, same volumes).
//! A running `difyctl up` is told first, so requests to them wait instead of getting a 502
//! while they are down.

use std::path::Path;
use std::time::Duration;

use difyctl::engine::ops;

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

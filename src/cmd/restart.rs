//! `difyctl restart [SERVICE...]`: restart containers in place (same container, same volumes).
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

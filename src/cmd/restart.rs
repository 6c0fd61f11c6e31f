//! `difyctl restart [SERVICE...]`: restart containers in place (same container, same volumes).

use std::time::Duration;

use difyctl::engine::ops;

pub async fn run(project: &str, services: &[String], timeout: Duration) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    for name in ops::restart(&engine, project, services, timeout).await? {
        eprintln!("restarted {name}");
    }
    Ok(())
}

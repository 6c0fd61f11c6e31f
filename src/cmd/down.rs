//! `difyctl down [-v]`: containers and networks go; volumes, and the data in them, stay unless
//! `-v` is given.

use std::time::Duration;

use difyctl::engine::ops;

pub async fn run(project: &str, volumes: bool, timeout: Duration) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let report = ops::down(&engine, project, volumes, timeout).await?;
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

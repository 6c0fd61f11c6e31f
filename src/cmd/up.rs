//! `difyctl up`: reconcile the stack (create, recreate or keep each service's container, in
//! dependency order, waiting for health), then, unless `--no-proxy`, serve the proxy and run
//! the certificate manager in the foreground.

use std::time::Duration;

use difyctl::engine::progress::Progress;
use difyctl::engine::reconcile::{self, Action, UpOptions};
use difyctl::stack::model::Stack;

pub struct UpSettings {
    pub wait_timeout: Duration,
    pub replace: Vec<String>,
    pub json: bool,
}

/// Brings the stack up and waits for it; prints what was done.
pub async fn reconcile_stack(
    stack: &Stack,
    config_file: &str,
    settings: &UpSettings,
) -> anyhow::Result<Vec<reconcile::ServiceResult>> {
    let engine = super::engine().await?;
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
    let opts = UpOptions {
        timeout: settings.wait_timeout,
        config_file: config_file.to_string(),
        retired: settings.replace.clone(),
    };
    let report = reconcile::up(&engine, stack, &opts, &progress).await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let count = |a: Action| report.services.iter().filter(|s| s.action == a).count();
    if settings.json {
        println!("{}", serde_json::to_string_pretty(&report.services)?);
    } else {
        eprintln!(
            "project {}: {} service(s) up ({} created, {} recreated, {} started, {} unchanged)",
            stack.project,
            report.services.len(),
            count(Action::Created),
            count(Action::Recreated),
            count(Action::Started),
            count(Action::Unchanged)
        );
    }
    Ok(report.services)
}

//! `difyctl logs [SERVICE...] [-f] [--tail N]`: output of the project's containers, each line
//! prefixed with its service as compose does.

use futures_util::StreamExt;
use std::io::Write;

use difyctl::engine::logs;

pub async fn run(
    project: &str,
    services: &[String],
    follow: bool,
    tail: Option<u64>,
    timestamps: bool,
) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let mut lines = logs::logs(&engine, project, services, follow, tail, timestamps).await?;
    let mut out = std::io::stdout().lock();
    while let Some(line) = lines.next().await {
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(())
}

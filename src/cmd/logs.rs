//! `difyctl logs [SERVICE...] [-f] [--tail N] [-t] [--since T]`: output of the project's containers, each line
//! prefixed with its service as compose does.

use futures_util::StreamExt;
use std::io::Write;

use difyctl::engine::logs;

pub async fn run(project: &str, services: &[String], view: logs::View) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let mut lines = logs::logs(&engine, project, services, view).await?;
    let mut out = std::io::stdout().lock();
    while let Some(line) = lines.next().await {
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(())
}

/// `--since`: a Unix time, an RFC 3339 time, or a duration back from now (`10m`, `2h`).
pub fn since(text: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(t.unix_timestamp());
    }
    difyctl::units::parse_duration(text)
        .map(|d| now - d.as_secs() as i64)
        .map_err(|_| {
            format!("`{text}` is not a time: give 10m, 2h, 2026-12-01T10:00:00Z or Unix seconds")
        })
}

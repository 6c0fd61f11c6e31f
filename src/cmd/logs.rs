//! `difyctl logs [SERVICE...] [-f] [--tail N] [-t] [--since T]`: output of the project's containers, each line
//! prefixed with its service as compose does.

use futures_util::StreamExt;
use std::io::Write;

use difyctl::engine::logs;

use super::{runtime, Globals, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services to show [default: all]
    services: Vec<String>,
    /// Keep following new output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only the last N lines of each container
    #[arg(short = 'n', long, value_name = "N")]
    tail: Option<u64>,
    /// Prefix each line with its time
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Only output since: 10m, 2h, an RFC 3339 time or Unix seconds
    #[arg(long, value_name = "T")]
    since: Option<String>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let since = self
            .since
            .as_deref()
            .map(since)
            .transpose()
            .map_err(|m| UsageError(format!("--since: {m}")))?;
        let opts = g.load(Vec::new());
        let project = super::project_name(&opts)?;
        if self.services.iter().any(|s| s == "difyctl") {
            let config = g.config()?;
            return runtime()?.block_on(super::detach::show_log(
                &config.state_dir,
                &project,
                self.follow,
                self.tail,
            ));
        }
        let view = logs::View {
            follow: self.follow,
            tail: self.tail,
            timestamps: self.timestamps,
            since,
        };
        runtime()?
            .block_on(run(&project, &self.services, view))
            .map_err(|e| super::explain_missing(e, &opts))
    }
}

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

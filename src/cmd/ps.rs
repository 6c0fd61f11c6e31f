//! `difyctl ps [--json]`: the project's containers with state, health, ports and uptime, and,
//! when `difyctl up` is running, what it serves and from which container addresses (asked
//! through its control socket).

use std::path::Path;

use difyctl::engine::ops::{self, PsEntry};

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Accepted for compose's sake: stopped containers are always shown
    #[arg(short = 'a', long = "all", hide = true)]
    all: bool,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let opts = g.load(Vec::new());
        let project = super::project_name(&opts)?;
        let config = g.config()?;
        let rt = runtime()?;
        rt.block_on(super::heal_before(&opts, &config.state_dir))?;
        rt.block_on(run(&project, &config.state_dir, self.json))
    }
}

pub async fn run(project: &str, state_dir: &Path, json: bool) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let entries = ops::ps(&engine, project).await?;
    // A difyctl serving another project (or a stale socket) is not this one's.
    let running = difyctl::control::request_status(state_dir)
        .await
        .unwrap_or(None)
        .filter(|s| s.project.as_deref().is_none_or(|p| p == project));
    let last_backup = difyctl::backup::status::read(state_dir);
    if json {
        let out = serde_json::json!({ "difyctl": running, "containers": entries, "last_backup": last_backup });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match &running {
        Some(s) => {
            let served: Vec<String> = s
                .upstreams
                .iter()
                .map(|(svc, addr)| {
                    format!("{svc} -> {}", addr.as_deref().unwrap_or("(not running)"))
                })
                .collect();
            println!(
                "difyctl (pid {}) serves https on {} and http on {}: {}",
                s.pid,
                s.https,
                s.http,
                served.join(", ")
            );
        }
        None => println!("difyctl: not running for this project (`difyctl up` serves it)"),
    }
    match &last_backup {
        Some(b) if b.result == "success" => println!(
            "last backup: success at {} ({}), {}",
            b.at,
            b.by,
            b.archive
                .as_ref()
                .map_or(String::new(), |a| a.display().to_string())
        ),
        Some(b) => println!(
            "last backup: failure at {} ({}): {}",
            b.at,
            b.by,
            b.error.as_deref().unwrap_or("")
        ),
        None => println!(
            "last backup: none recorded (`difyctl backup`, or `[backup] schedule` in difyctl.toml)"
        ),
    }
    for line in super::pending_lines(state_dir, project) {
        println!("{line}");
    }
    let rows: Vec<[String; 5]> = entries.iter().map(row).collect();
    print!(
        "{}",
        super::table(["NAME", "SERVICE", "STATE", "UPTIME", "PORTS"], &rows)
    );
    Ok(())
}

fn row(e: &PsEntry) -> [String; 5] {
    let state = match (e.state.as_str(), e.health.as_str(), e.exit_code) {
        ("exited", _, Some(code)) => format!("exited ({code})"),
        (s, "", _) => s.to_string(),
        (s, h, _) => format!("{s} ({h})"),
    };
    [
        e.name.clone(),
        e.service.clone(),
        state,
        e.started_at.as_deref().map(uptime).unwrap_or_default(),
        e.ports.join(", "),
    ]
}

/// "3m", "2h 5m", "4d 1h" since an RFC 3339 start time.
fn uptime(started: &str) -> String {
    let Ok(start) =
        time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
    else {
        return String::new();
    };
    let secs = (time::OffsetDateTime::now_utc() - start)
        .whole_seconds()
        .max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

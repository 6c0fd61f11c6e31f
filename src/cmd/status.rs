//! `difyctl status [--json]`: one screen for a person, read from the running difyctl (over
//! its control socket): the URL, whether it is ready, the certificate's days left and next
//! renewal, each service's state and health, and the last minute's requests, errors and
//! upstream waits.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use difyctl::server::live::{CertView, Overview, ServiceView};
use difyctl::timefmt::rfc3339;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON instead of text (what the admin listener's /status serves)
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let project = super::project_name(&g.load(Vec::new())).ok();
        let config = g.config()?;
        runtime()?.block_on(run(project.as_deref(), &config.state_dir, self.json))
    }
}

pub async fn run(project: Option<&str>, state_dir: &Path, json: bool) -> anyhow::Result<()> {
    let overview = difyctl::server::control::request_overview(state_dir).await?;
    let Some(o) = overview else {
        anyhow::bail!(
            "no difyctl is serving with state directory {} (`difyctl up` serves the stack; `difyctl ps` shows the containers)",
            state_dir.display()
        );
    };
    if let (Some(want), Some(serves)) = (project, o.project.as_deref()) {
        if want != serves {
            anyhow::bail!("the running difyctl serves project {serves}, not {want} (-p {serves})");
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(());
    }
    print!("{}", screen(&o));
    if let Some(p) = o.project.as_deref() {
        for line in super::pending_lines(state_dir, p) {
            println!("{line}");
        }
    }
    Ok(())
}

fn screen(o: &Overview) -> String {
    let mut out = String::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let admin = o
        .admin
        .as_deref()
        .map_or(String::from("off"), |a| format!("http://{a}"));
    out += &format!(
        "Dify at {}  (difyctl pid {}, up {}, admin {admin})\n",
        o.url,
        o.pid,
        span(now.saturating_sub(o.started))
    );
    if o.ready {
        out += "ready: yes\n";
    } else {
        out += &format!("ready: no: {}\n", o.not_ready.join("; "));
    }
    for c in &o.certificates {
        out += &certificate(c);
    }
    let m = &o.last_minute;
    let share = match m.requests {
        0 => String::new(),
        n => format!(" ({:.1}%)", m.errors_5xx as f64 * 100.0 / n as f64),
    };
    out += &format!(
        "last minute: {} requests, {} answered 5xx{share}, {} waited for an upstream\n",
        m.requests, m.errors_5xx, m.upstream_waits
    );
    if !o.services.is_empty() {
        out += "\n";
        out += &service_table(&o.services);
    }
    out
}

fn certificate(c: &CertView) -> String {
    let mut line = format!(
        "certificate {} ({}, {}): {} days left, until {}",
        c.names.join(", "),
        c.source,
        c.issuer,
        c.days_left,
        rfc3339(c.not_after)
    );
    if let Some(next) = c.next_renewal {
        line += &format!("; next renewal {}", rfc3339(next));
    }
    match (&c.last_error, c.last_success) {
        (Some(e), _) => line += &format!("; last attempt FAILED: {e}"),
        (None, Some(t)) => line += &format!("; last renewed {}", rfc3339(t)),
        _ => {}
    }
    line + "\n"
}

fn service_table(services: &[ServiceView]) -> String {
    let rows: Vec<[String; 5]> = services
        .iter()
        .map(|s| {
            [
                s.service.clone(),
                match s.exit_code {
                    Some(code) if s.state == "exited" => format!("exited ({code})"),
                    _ => s.state.clone(),
                },
                if s.health.is_empty() {
                    "-".into()
                } else {
                    s.health.clone()
                },
                s.starts.to_string(),
                s.upstream.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    super::table(["SERVICE", "STATE", "HEALTH", "STARTS", "UPSTREAM"], &rows)
}

/// `3d 4h`, `2h 5m`, `40s`.
fn span(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

//! `difyctl releases [--json]`: which Dify releases exist (asked of the release source), which
//! difyctl ships and has cached, which one this install runs, and which is newest. Offline,
//! it says why it could not ask and lists what it knows.

use difyctl::config::Config;
use difyctl::releases::{self, list};
use difyctl::stack::compose::LoadOptions;
use serde::Serialize;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON for scripts
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let config = g.config()?;
        runtime()?.block_on(run(&config, &g.load(Vec::new()), self.json))
    }
}

#[derive(Serialize)]
struct Row {
    version: String,
    date: Option<String>,
    prerelease: bool,
    embedded: bool,
    cached: bool,
    installed: bool,
}

#[derive(Serialize)]
struct Report {
    source: String,
    installed: Option<String>,
    newest: Option<String>,
    /// Why the source could not be asked, when it could not.
    error: Option<String>,
    releases: Vec<Row>,
}

pub async fn run(config: &Config, opts: &LoadOptions, json: bool) -> anyhow::Result<()> {
    let installed = super::load_stack(opts, &difyctl::dify::replaced())
        .ok()
        .and_then(|s| difyctl::backup::take::dify_version(&s));
    let (online, error) = match list::online(&config.releases_url).await {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(difyctl::error_chain(&e))),
    };
    let embedded: Vec<&str> = difyctl::upgrade::embedded::RELEASES
        .iter()
        .map(|r| r.version)
        .collect();
    let cached = releases::cache::versions(&config.state_dir);
    let mut versions: Vec<String> = online.iter().map(|l| l.version.clone()).collect();
    versions.extend(embedded.iter().map(|v| v.to_string()));
    versions.extend(cached.iter().cloned());
    versions.extend(installed.iter().cloned());
    versions.sort_by(|a, b| list::newest_first(a, b));
    versions.dedup();
    let rows: Vec<Row> = versions
        .into_iter()
        .map(|v| {
            let listed = online.iter().find(|l| l.version == v);
            Row {
                date: listed.and_then(|l| l.date.clone()),
                prerelease: listed.is_some_and(|l| l.prerelease),
                embedded: embedded.contains(&v.as_str()),
                cached: cached.contains(&v),
                installed: installed.as_deref() == Some(v.as_str()),
                version: v,
            }
        })
        .collect();
    let newest = rows
        .iter()
        .find(|r| !r.prerelease)
        .map(|r| r.version.clone());
    let report = Report {
        source: list::list_url(&config.releases_url),
        installed,
        newest,
        error,
        releases: rows,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

fn print(r: &Report) {
    match &r.error {
        Some(e) => println!("Dify releases (the list could not be read: {e}); known here:"),
        None => println!("Dify releases (from {}):", r.source),
    }
    for row in &r.releases {
        let mut notes = Vec::new();
        if row.prerelease {
            notes.push("pre-release");
        }
        if row.embedded {
            notes.push("shipped with difyctl");
        }
        if row.cached {
            notes.push("fetched");
        }
        if row.installed {
            notes.push("<- this install");
        }
        println!(
            "  {:<12} {:<10}  {}",
            row.version,
            row.date.as_deref().unwrap_or(""),
            notes.join(", ")
        );
    }
    match (&r.installed, &r.newest) {
        (Some(i), Some(n))
            if difyctl::releases::release::compare(n, i) == Some(std::cmp::Ordering::Greater) =>
        {
            println!("This install runs {i}; the newest is {n}: `difyctl upgrade --to {n} --dry-run` shows what changes.");
        }
        (Some(i), _) => println!("This install runs {i}, the newest known."),
        (None, Some(n)) => println!("No install here; `difyctl init --version {n}` makes one."),
        (None, None) => {}
    }
}

//! `difyctl certs status` and `difyctl certs renew`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use difyctl::acme::{CertStore, RenewOutcome, RenewalPlan};
use difyctl::config::Config;
use difyctl::proxy::{RouteTable, Routes, Upstreams};
use difyctl::server::Server;
use difyctl::timefmt::rfc3339;
use serde_json::json;

use difyctl::config::row::RENEW;
use difyctl::config::settings::General;
use difyctl::config::{SettingArgs, Value};

use super::{runtime, Globals, UsageError};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Issuer, serial, validity, next renewal and last error of each certificate
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Renew now: through the running difyctl if there is one, else by itself (binding :80/:443)
    Renew {
        /// Renew even when the certificate is not due
        #[arg(long)]
        force: bool,
        /// The certificate (any of its names) to renew [default: the configured one]
        #[arg(long, value_name = "D")]
        domain: Option<String>,
        /// Names on the certificate (repeatable) [default: `domains` from difyctl.toml, or
        /// CERTBOT_DOMAIN]
        #[arg(long = "name", value_name = "D")]
        names: Vec<String>,
        #[command(flatten)]
        settings: SettingArgs<RENEW>,
    },
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        match self {
            Args::Status { json } => status(&g.config()?, json),
            Args::Renew {
                force,
                domain,
                names,
                settings,
            } => {
                let config = g.config_by(|flags| {
                    settings.apply(flags);
                    // `--domain` names the certificate to renew here: the names on it are
                    // `--name`, the `domains` row under another flag.
                    if !names.is_empty() {
                        let row = General::row("domains");
                        flags.set(row, Value::List(names), "--name".into());
                    }
                })?;
                runtime()?.block_on(renew(config, force, domain))
            }
        }
    }
}

/// Where each certificate stands, from the files (works with or without a running difyctl).
pub fn status(config: &Config, as_json: bool) -> anyhow::Result<()> {
    let store = CertStore::new(&config.state_dir);
    let mut names: Vec<String> = match &config.acme {
        Some(acme) => vec![acme.cert_name().to_string()],
        None => Vec::new(),
    };
    for name in store.names() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for name in &names {
        let status = store.status(name);
        let cert = store.load(name).ok().flatten();
        let info = cert.as_ref().map(|c| &c.info);
        let plan = info.map(|i| RenewalPlan::new(i.not_before(), i.not_after(), now, None));
        let (next, why) = match (status.next_attempt, &status.next_reason, &plan) {
            (Some(t), Some(why), _) => (Some(t), why.clone()),
            (_, _, Some(plan)) => (Some(unix(plan.renew_at)), plan.reason.clone()),
            _ => (None, "no certificate yet: at the next start".to_string()),
        };
        rows.push(json!({
            "name": name,
            "names": info.map(|i| i.names.clone()),
            "issuer": info.map(|i| i.issuer.clone()),
            "serial": info.map(|i| i.serial.clone()),
            "not_before": info.map(|i| rfc3339(i.not_before)),
            "not_after": info.map(|i| rfc3339(i.not_after)),
            "days_left": info.map(|i| days_left(i.not_after)),
            "next_renewal": next.map(rfc3339),
            "next_renewal_reason": why,
            "directory": info.map(|i| i.directory.clone()).or_else(|| config.acme.as_ref().map(|a| a.directory.clone())),
            "last_attempt": status.last_attempt.map(rfc3339),
            "last_success": status.last_success.map(rfc3339),
            "last_error": status.last_error,
            "failures": status.failures,
        }));
    }
    let self_signed = config.self_signed_reason.clone();
    if as_json {
        let out = json!({ "certificates": rows, "self_signed": self_signed });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    // With stored certificates (a difyctl started with --domain serves them) they are listed
    // without a preamble about this shell's configuration naming no domain.
    if let (Some(reason), true) = (&self_signed, rows.is_empty()) {
        println!("self-signed certificate in use: {reason}\n");
    }
    if rows.is_empty() {
        println!(
            "no certificates in {}",
            config.state_dir.join("certs").display()
        );
    }
    for row in &rows {
        let field = |k: &str| match &row[k] {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        println!("{}", field("name"));
        for (label, key) in [
            ("names", "names"),
            ("issuer", "issuer"),
            ("serial", "serial"),
            ("valid from", "not_before"),
            ("valid until", "not_after"),
            ("days left", "days_left"),
            ("directory", "directory"),
            ("last attempt", "last_attempt"),
            ("last success", "last_success"),
            ("last error", "last_error"),
        ] {
            println!("  {label:<13} {}", field(key));
        }
        println!(
            "  {:<13} {} ({})",
            "next renewal",
            field("next_renewal"),
            field("next_renewal_reason")
        );
    }
    Ok(())
}

/// Renews through the running difyctl, or does the issuance here and exits.
pub async fn renew(config: Config, force: bool, domain: Option<String>) -> anyhow::Result<()> {
    let Some(acme) = config.acme.clone() else {
        let reason = config
            .self_signed_reason
            .clone()
            .unwrap_or_else(|| "certificates come from --cert/--key".into());
        return Err(UsageError(format!("nothing to renew from a CA: {reason}")).into());
    };
    if let Some(d) = &domain {
        if !acme.domains.iter().any(|n| n.eq_ignore_ascii_case(d)) {
            return Err(UsageError(format!(
                "no certificate for `{d}`: configured names are {}",
                acme.domains.join(", ")
            ))
            .into());
        }
    }
    let outcome = match difyctl::server::control::request_renew(&config.state_dir, force).await? {
        Some(outcome) => outcome,
        None => renew_here(config, force).await?,
    };
    report(&outcome)
}

/// No difyctl is serving: bind the challenge ports ourselves for one attempt.
async fn renew_here(mut config: Config, force: bool) -> anyhow::Result<RenewOutcome> {
    // A one-off: no admin listener, no control socket, nothing routed.
    config.admin.listen = None;
    let routes = Routes::new(RouteTable::dify(&Upstreams::default()));
    let server = Server::new(config, routes)
        .without_control()
        .manager_in_hand();
    let mut running = server.start().await.context("cannot answer the CA's challenges (is another web server running? `difyctl certs renew` asks a running difyctl instead)")?;
    let mut manager = running.manager.take().context("no certificate manager")?;
    let (outcome, _) = manager.check(force).await;
    running.stop().await;
    Ok(outcome)
}

fn report(outcome: &RenewOutcome) -> anyhow::Result<()> {
    let until = outcome
        .not_after
        .map(|t| format!(", valid until {} ({} days)", rfc3339(t), days_left(t)))
        .unwrap_or_default();
    let serial = outcome.serial.as_deref().unwrap_or("-");
    match &outcome.error {
        Some(error) if !outcome.renewed => anyhow::bail!(
            "renewal of {} failed: {error} ({})",
            outcome.name,
            outcome.message
        ),
        _ if outcome.renewed => println!("renewed {}: serial {serial}{until}", outcome.name),
        _ => println!(
            "{}: {} (serial {serial}{until})",
            outcome.name, outcome.message
        ),
    }
    Ok(())
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn days_left(not_after: u64) -> i64 {
    let now = unix(SystemTime::now());
    (not_after as i64 - now as i64).div_euclid(Duration::from_secs(86400).as_secs() as i64)
}

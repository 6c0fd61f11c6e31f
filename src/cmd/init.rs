//! `difyctl init`: a fresh install in a folder: the newest default Dify stack difyctl embeds
//! (`difyctl::upgrade::embedded`), a `.env` whose secrets are generated here (0600), the
//! `envs/` files of Dify's layout, difyctl.toml with the domain and e-mail, and the SSRF
//! proxy's configuration. An existing file is never overwritten: it is kept and named.

use std::path::Path;

use anyhow::Context;
use difyctl::upgrade::embedded::{self, Embedded};

pub fn run(dir: &Path, domain: Option<&str>, email: Option<&str>) -> anyhow::Result<()> {
    if let Some(d) = domain {
        difyctl::config::check_domain(&d.trim().to_ascii_lowercase())
            .map_err(|m| super::UsageError(format!("--domain: {m}")))?;
    }
    refuse_ignored_settings(dir, domain, email)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let release = embedded::latest();
    // Every secret of the template generated for this install (the same value wherever one
    // placeholder appears: REDIS_PASSWORD in CELERY_BROKER_URL).
    let env = embedded::fill_template(embedded::ENV_TEMPLATE)?;
    let init_password = env
        .lines()
        .find_map(|l| l.strip_prefix("INIT_PASSWORD="))
        .unwrap_or_default()
        .to_string();
    let toml = difyctl_toml(domain, email);
    let mut files: Vec<(String, String, u32)> = vec![
        ("docker-compose.yaml".into(), release.compose.into(), 0o644),
        (".env".into(), env, 0o600),
        ("difyctl.toml".into(), toml, 0o644),
        (
            "ssrf_proxy/squid.conf".into(),
            embedded::SQUID.into(),
            0o644,
        ),
    ];
    for (rel, service) in release.envs {
        files.push((rel.to_string(), Embedded::env_file(service), 0o600));
    }
    let mut kept = Vec::new();
    for (name, content, mode) in files {
        let path = dir.join(&name);
        if path.exists() {
            kept.push(path);
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        difyctl::fsutil::write_atomic(&path, content.as_bytes(), mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    for path in &kept {
        eprintln!(
            "kept {} (it exists; difyctl init never overwrites)",
            path.display()
        );
    }
    if !kept.iter().any(|p| p.ends_with(".env")) {
        let at = domain.map_or("https://<this host>".to_string(), |d| {
            format!("https://{d}")
        });
        eprintln!();
        eprintln!("Admin set-up password (INIT_PASSWORD): {init_password}");
        eprintln!("  {at}/install asks for it before the first admin account is created; it is kept in {} (0600).", dir.join(".env").display());
    }
    eprintln!();
    eprintln!("Next, in {}:", dir.display());
    eprintln!("  difyctl doctor     # Docker, ports 80/443, DNS, disk, clock");
    eprintln!("  difyctl up         # pulls Dify's images, starts it, serves https");
    if domain.is_none() {
        eprintln!("No --domain: difyctl serves a self-signed certificate; add `domains` to difyctl.toml for Let's Encrypt.");
    }
    Ok(())
}

/// `init --domain` where difyctl.toml exists (and is kept) with other settings would exit 0
/// and serve something else: say so before writing anything.
fn refuse_ignored_settings(
    dir: &Path,
    domain: Option<&str>,
    email: Option<&str>,
) -> anyhow::Result<()> {
    let path = dir.join("difyctl.toml");
    if !path.is_file() || (domain.is_none() && email.is_none()) {
        return Ok(());
    }
    let file = difyctl::config::FileConfig::read(&path, true)?;
    let have = file.domains.clone().unwrap_or_default();
    let domain_ignored = domain.is_some_and(|d| !have.iter().any(|h| h.eq_ignore_ascii_case(d)));
    let email_ignored = email.is_some_and(|e| file.email.as_deref() != Some(e));
    if domain_ignored || email_ignored {
        return Err(super::UsageError(format!(
            "{} exists (init never overwrites it) and says domains = {:?}, email = {:?}: edit it to serve {}, or run init in an empty folder",
            path.display(),
            have,
            file.email.unwrap_or_default(),
            domain.unwrap_or("the domain you gave"),
        ))
        .into());
    }
    Ok(())
}

fn difyctl_toml(domain: Option<&str>, email: Option<&str>) -> String {
    let mut out = String::from("# difyctl settings (written by `difyctl init`; every key is optional).\n# All keys: https://github.com/difyctl/difyctl/blob/main/assets/difyctl.example.toml\n");
    match domain {
        Some(d) => out.push_str(&format!("domains = [\"{d}\"]\n")),
        None => {
            out.push_str("# domains = [\"dify.example.com\"]   # none: a self-signed certificate\n")
        }
    }
    match email {
        Some(e) => out.push_str(&format!("email = \"{e}\"\n")),
        None => {
            out.push_str("# email = \"ops@example.com\"        # contact for the ACME account (Let's Encrypt sends no expiry mail)\n")
        }
    }
    out.push_str("\n[acme]\ndirectory = \"letsencrypt\"\n");
    // A new install is backed up from day one: every night, a week of archives kept.
    out.push_str("\n[backup]\nschedule = \"30 3 * * *\"   # 03:30 UTC every day (cron); `difyctl backup` any time\nkeep = 7\n# dir = \"/var/backups/difyctl\"  # default: <state_dir>/backups; put it on another disk\n# hook = \"\"                     # gets DIFYCTL_BACKUP_RESULT, _ARCHIVE, _SIZE, _ERROR\n");
    out
}

//! `difyctl init`: a fresh install in a folder: Dify release `--version` (default: the newest
//! difyctl embeds, `difyctl::upgrade::embedded`, offline; any other release is Dify's own
//! `docker/` folder from its tag archive, `difyctl::releases`), a `.env` whose secrets are
//! generated here (0600), the `envs/` files the stack needs, difyctl.toml with the domain and
//! e-mail. An existing file is never overwritten: it is kept and named. The release's files
//! are remembered in the state dir, so a later upgrade tells the user's edits from Dify's.

use std::path::{Path, PathBuf};

use anyhow::Context;
use difyctl::config::Config;
use difyctl::releases::release::Release;
use difyctl::upgrade::embedded::{self, Embedded};

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The domain Dify is served on (Let's Encrypt certificate)
    #[arg(long, value_name = "D")]
    domain: Option<String>,
    /// Contact e-mail for Let's Encrypt
    #[arg(long, value_name = "E")]
    email: Option<String>,
    /// Folder to write to (created when missing)
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// Dify release to install (default: the newest difyctl ships; another is fetched from
    /// Dify's release archives, `difyctl releases` lists them)
    #[arg(long, value_name = "V")]
    version: Option<String>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let config = g.config()?;
        let args = InitArgs {
            dir: &self.dir,
            domain: self.domain.as_deref(),
            email: self.email.as_deref(),
            version: self.version.as_deref(),
        };
        runtime()?.block_on(run(args, &config))
    }
}

pub struct InitArgs<'a> {
    pub dir: &'a Path,
    pub domain: Option<&'a str>,
    pub email: Option<&'a str>,
    pub version: Option<&'a str>,
}

pub async fn run(args: InitArgs<'_>, config: &Config) -> anyhow::Result<()> {
    let InitArgs {
        dir,
        domain,
        email,
        version,
    } = args;
    if let Some(d) = domain {
        difyctl::config::check_domain(&d.trim().to_ascii_lowercase())
            .map_err(|m| super::UsageError(format!("--domain: {m}")))?;
    }
    refuse_ignored_settings(dir, domain, email)?;
    let version = version.unwrap_or(embedded::latest().version);
    let release = super::release_dir::get(config, version, true).await?;
    let read = Release::read(&release.dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = match embedded::find(version) {
        Some(e) => embedded_files(e)?,
        None => release_files(&read)?,
    };
    files.push((
        "difyctl.toml".into(),
        difyctl_toml(domain, email).into_bytes(),
        0o644,
    ));
    let init_password = files
        .iter()
        .find(|(n, _, _)| n == ".env")
        .and_then(|(_, env, _)| {
            String::from_utf8_lossy(env)
                .lines()
                .find_map(|l| l.strip_prefix("INIT_PASSWORD=").map(str::to_string))
        })
        .unwrap_or_default();
    let kept = write_new(dir, files)?;
    let version = read.version.clone().unwrap_or_else(|| version.to_string());
    difyctl::upgrade::base::record(&config.state_dir, dir, &read.dir, &read.files, &version)?;
    eprintln!("Dify {version}");
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

type Files = Vec<(String, Vec<u8>, u32)>;

/// difyctl's own stack of an embedded release: every secret of the template generated for
/// this install (the same value wherever one placeholder appears: REDIS_PASSWORD in
/// CELERY_BROKER_URL).
fn embedded_files(release: &Embedded) -> anyhow::Result<Files> {
    let env = embedded::fill_template(embedded::ENV_TEMPLATE)?;
    let mut files: Files = vec![
        ("docker-compose.yaml".into(), release.compose.into(), 0o644),
        (".env".into(), env.into_bytes(), 0o600),
    ];
    for (rel, text) in release.files {
        files.push((rel.to_string(), text.as_bytes().to_vec(), 0o644));
    }
    for (rel, service) in release.envs {
        files.push((
            rel.to_string(),
            Embedded::env_file(service).into_bytes(),
            0o600,
        ));
    }
    Ok(files)
}

/// Dify's own `docker/` folder of a fetched release: its files as they are, and `.env` from
/// `.env.example` with every credential Dify publishes replaced by a fresh one and an admin
/// set-up password (INIT_PASSWORD) set.
fn release_files(release: &Release) -> anyhow::Result<Files> {
    let mut files = Files::new();
    // Every file of the folder, the configuration under volumes/ (the sandbox's config.yaml)
    // included: a new install has no data there yet.
    for path in walk(&release.dir) {
        let rel = path
            .strip_prefix(&release.dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let executable = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false);
        files.push((rel, bytes, if executable { 0o755 } else { 0o644 }));
    }
    let example = release.dir.join(".env.example");
    let text = std::fs::read_to_string(&example)
        .with_context(|| format!("cannot read {}", example.display()))?;
    let mut secrets = difyctl::upgrade::envsync::Secrets::default();
    let synced = difyctl::upgrade::envsync::sync(
        Path::new(".env"),
        None,
        &text,
        &[],
        release.version.as_deref().unwrap_or("?"),
        &mut secrets,
    )?;
    let password =
        difyctl::stack::secrets::generate(difyctl::stack::secrets::Secret::InitPassword)?;
    let env: Vec<String> = synced
        .text
        .lines()
        .map(|l| match l {
            "INIT_PASSWORD=" => format!("INIT_PASSWORD={password}"),
            other => other.to_string(),
        })
        .collect();
    files.push((".env".into(), (env.join("\n") + "\n").into_bytes(), 0o600));
    Ok(files)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Writes the files that do not exist yet; the paths of those kept.
fn write_new(dir: &Path, files: Files) -> anyhow::Result<Vec<std::path::PathBuf>> {
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
        difyctl::fsutil::write_atomic(&path, &content, mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    for path in &kept {
        eprintln!(
            "kept {} (it exists; difyctl init never overwrites)",
            path.display()
        );
    }
    Ok(kept)
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
    let file = difyctl::config::read_toml(&path, true)?;
    let have = file
        .get("domains")
        .map(|(v, _)| v.items())
        .unwrap_or_default();
    let had_email = file.get("email").map(|(v, _)| v.text().into_owned());
    let domain_ignored = domain.is_some_and(|d| !have.iter().any(|h| h.eq_ignore_ascii_case(d)));
    let email_ignored = email.is_some_and(|e| had_email.as_deref() != Some(e));
    if domain_ignored || email_ignored {
        return Err(super::UsageError(format!(
            "{} exists (init never overwrites it) and says domains = {:?}, email = {:?}: edit it to serve {}, or run init in an empty folder",
            path.display(),
            have,
            had_email.unwrap_or_default(),
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

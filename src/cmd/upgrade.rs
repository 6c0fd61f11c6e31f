//! `difyctl upgrade --from DIR [--dry-run] [--yes]`: see `difyctl::upgrade`. The steps, each
//! named in the output: plan (and the diff), preflight, backup, pull the new images into a
//! staged copy of the install (nothing stopped yet), write the files, recreate what changed
//! while the api's migration is watched, every service healthy. A failure after the files are
//! written puts back the previous files, the previous images (still local) and the database
//! from the backup just taken, and says what failed and where the backup is.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use difyctl::backup::meter::Meter;
use difyctl::backup::take::{self, dify_version};
use difyctl::config::Config;
use difyctl::engine::progress::Progress;
use difyctl::releases::release::Release;
use difyctl::stack::compose::LoadOptions;
use difyctl::stack::model::Stack;
use difyctl::upgrade::plan::{self, Plan, What};
use difyctl::upgrade::{apply, migration};

use difyctl::journal::fact;
use difyctl::journal::{Journal, Op};
use difyctl::upgrade::last::Last;

use super::release_dir;
use super::up::UpSettings;
use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("release").required(true).args(["from", "to", "resume", "undo"])))]
pub struct Args {
    /// The new release's docker/ folder (downloaded from Dify)
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// A Dify release (fetched from Dify's release archives, or one difyctl ships for an
    /// install made by `difyctl init`); `difyctl releases` lists them
    #[arg(long, value_name = "VERSION", conflicts_with = "from")]
    to: Option<String>,
    /// Run the last upgrade again, after it was interrupted
    #[arg(long)]
    resume: bool,
    /// Put the release before the last upgrade back: its files, and its data from the
    /// backup taken before the upgrade
    #[arg(long)]
    undo: bool,
    /// Show what would change, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before upgrading
    #[arg(long, short = 'y')]
    yes: bool,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    profiles: Vec<String>,
    /// Seconds a service may take to become healthy once recreated
    #[arg(
        long,
        env = "DIFYCTL_WAIT_TIMEOUT",
        default_value_t = 300,
        value_name = "SECS"
    )]
    wait_timeout: u64,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let opts = g.load(self.profiles);
        let config = g.config()?;
        let settings = UpSettings {
            wait_timeout: Duration::from_secs(self.wait_timeout),
            replace: difyctl::dify::replaced(),
            json: false,
            compose_files: g.compose_files(),
            state_dir: config.state_dir.clone(),
        };
        let args = UpgradeArgs {
            from: self.from,
            to: self.to,
            resume: self.resume,
            undo: self.undo,
            dry_run: self.dry_run,
            yes: self.yes,
            opts,
            settings,
        };
        runtime()?.block_on(run(args, config))
    }
}

pub struct UpgradeArgs {
    pub from: Option<PathBuf>,
    /// A release difyctl embeds.
    pub to: Option<String>,
    pub resume: bool,
    pub undo: bool,
    pub dry_run: bool,
    pub yes: bool,
    pub opts: LoadOptions,
    pub settings: UpSettings,
}

pub async fn run(mut args: UpgradeArgs, config: Config) -> anyhow::Result<()> {
    if args.undo {
        return undo(&args, &config).await;
    }
    if args.resume {
        let project = super::project_name(&args.opts)?;
        super::heal_project(&args.opts, &args.settings, &config.state_dir).await?;
        let last = Last::read(&config.state_dir, &project)
            .filter(|l| l.state == "writing" || l.state == "switching");
        let Some(last) = last else {
            return Err(super::UsageError(format!(
                "project {project} has no interrupted upgrade to resume"
            ))
            .into());
        };
        if last.state == "switching" {
            return resume_switch(&args, &config, last).await;
        }
        println!(
            "resuming the upgrade {} -> {}",
            last.from.as_deref().unwrap_or("?"),
            last.to.as_deref().unwrap_or("?")
        );
        args.from = last.from_dir.clone();
        args.to = if last.from_dir.is_some() {
            None
        } else {
            last.to.clone()
        };
        args.yes = true;
    }
    // Release folders written out for this upgrade, removed at its end.
    let mut keep: Vec<release_dir::ReleaseDir> = Vec::new();
    let stack = super::load_stack(&args.opts, &args.settings.replace)?;
    let compose = &args.opts.compose_file;
    let target_dir = match (&args.from, &args.to) {
        (Some(from), _) => from.clone(),
        (None, to) => {
            let to = to.as_deref().unwrap_or_default();
            let got =
                release_dir::get(&config, to, release_dir::is_embedded_stack(compose)).await?;
            keep.push(got);
            keep.last().map(|d| d.dir.clone()).unwrap_or_default()
        }
    };
    let release = Release::read(&target_dir)?;
    let current = dify_version(&stack);
    let base = release_dir::base(&config, &stack.dir, compose, current.as_deref()).await;
    let plan = plan::plan(
        &stack.dir,
        &release,
        current.as_deref(),
        base.as_ref().map(|b| b.dir.as_path()),
    )?;
    print_plan(&plan);
    let staged = stage(&stack.dir, &plan, &args.opts)?;
    difyctl::upgrade::stores::check(&stack, &staged.stack)
        .map_err(difyctl::upgrade::UpgradeError::from)?;
    if args.dry_run {
        println!("--dry-run: nothing was changed");
        return Ok(());
    }
    confirm(args.yes, &plan)?;
    let engine = super::engine().await?;
    preflight(&config)?;

    println!("[1/5] pulling the new images (nothing is stopped yet)");
    let pulled = super::pull::pull_images(&engine, &staged.stack, false).await;
    pulled.context(
        "upgrade stopped before changing anything: an image of the new release cannot be had",
    )?;
    let target = Target::read(&engine, &staged.stack).await?;
    drop(staged);

    println!("[2/5] backup");
    let meter = Meter::new(false);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let req = take::Request {
        stack: &stack,
        compose_files: args.settings.compose_files.clone(),
        config_file: config.config_file.clone(),
        state_dir: config.state_dir.clone(),
        to: config.backup.dir.clone(),
        keep: None,
    };
    let backup = take::take(&engine, &req, &meter, stop).await;
    meter.finish();
    let backup = backup.context("upgrade stopped before changing anything: the backup failed")?;
    println!(
        "      {} ({} parts)",
        backup.archive.display(),
        backup.parts.len()
    );

    println!("[3/5] writing the new files");
    let rollback = config.state_dir.join("upgrades").join(format!(
        "{}-{}",
        stack.project,
        difyctl::timefmt::compact_utc(now())
    ));
    // From here a killed upgrade is finished or undone by whoever comes next (`heal`), and
    // `--undo` / `--resume` know what it was.
    let mut journal = Journal::begin(
        &config.state_dir,
        &stack.project,
        Op::Upgrade,
        "upgrade:preparing",
    )?;
    journal
        .record
        .facts
        .insert(fact::TO.into(), plan.to.clone().unwrap_or_default());
    journal
        .record
        .facts
        .insert(fact::ROLLBACK.into(), rollback.display().to_string());
    let mut last = Last {
        project: stack.project.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        from_dir: args.from.clone(),
        rollback: rollback.clone(),
        backup: backup.archive.clone(),
        new_services: target
            .services
            .iter()
            .filter(|s| stack.service(s).is_none())
            .cloned()
            .collect(),
        new_networks: target
            .networks
            .iter()
            .filter(|n| !stack.networks.iter().any(|b| &b.docker_name == *n))
            .cloned()
            .collect(),
        new_volumes: target
            .volumes
            .iter()
            .filter(|v| !stack.volumes.iter().any(|b| &b.docker_name == *v))
            .cloned()
            .collect(),
        state: "writing".into(),
    };
    last.write(&config.state_dir)?;
    journal.step("upgrade:writing")?;
    let applied = apply::apply(&stack.dir, &plan, &rollback)?;
    println!("      previous files kept in {}", rollback.display());
    last.set_state("switching", &config.state_dir)?;
    journal.step("upgrade:switching")?;

    let outcome = switch(&engine, &args, &config, &target).await;
    match outcome {
        Ok(()) => {
            last.set_state("done", &config.state_dir)?;
            journal.end();
            if let Some(version) = &release.version {
                if let Err(e) = difyctl::upgrade::base::record(
                    &config.state_dir,
                    &stack.dir,
                    &release.dir,
                    &release.files,
                    version,
                ) {
                    eprintln!(
                        "warning: cannot remember the release's files for the next upgrade: {e}"
                    );
                }
            }
            println!(
                "upgraded {} -> {}; backup taken before: {}",
                plan.from.as_deref().unwrap_or("?"),
                plan.to.as_deref().unwrap_or("?"),
                backup.archive.display()
            );
            Ok(())
        }
        Err(e) => {
            journal.step("upgrade:rolling back")?;
            eprintln!("upgrade failed: {}", difyctl::error_chain(e.as_ref()));
            eprintln!(
                "putting back {}: files, images and the database (from {})",
                plan.from.as_deref().unwrap_or("the previous release"),
                backup.archive.display()
            );
            roll_back(&engine, &args, &config, &applied, &backup.archive, &last).await.with_context(|| {
                format!(
                    "the upgrade failed ({e:#}) and so did putting the previous release back: the previous files are in {}, the backup is {}",
                    rollback.display(),
                    backup.archive.display()
                )
            })?;
            last.set_state("undone", &config.state_dir)?;
            journal.end();
            anyhow::bail!(
                "upgrade to {} failed and was undone: {} runs again with the data of before; backup: {}",
                plan.to.as_deref().unwrap_or("the new release"),
                plan.from.as_deref().unwrap_or("the previous release"),
                backup.archive.display()
            )
        }
    }
}

/// What the upgrade goes to, read before anything changes: the services of the new release
/// (what a rollback removes again) and the migration head its api image carries.
struct Target {
    services: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
    /// The services running the api image: any of them may win Dify's migration race.
    api_image_services: Vec<String>,
    heads: Option<BTreeSet<String>>,
}

impl Target {
    async fn read(engine: &difyctl::engine::Engine, new: &Stack) -> anyhow::Result<Target> {
        let api_image = new.service("api").map(|s| s.image.clone());
        let heads = match &api_image {
            Some(image) => migration::image_heads(engine, image).await?,
            None => None,
        };
        match &heads {
            Some(h) => println!("      the new api's migration head: {}", migration::join(h)),
            None => println!(
                "      the new api image has no {}: the migration is judged by its logs",
                migration::VERSIONS_DIR
            ),
        }
        Ok(Target {
            services: new.services.iter().map(|s| s.name.clone()).collect(),
            networks: new
                .networks
                .iter()
                .filter(|n| !n.external)
                .map(|n| n.docker_name.clone())
                .collect(),
            volumes: new
                .volumes
                .iter()
                .filter(|v| !v.external)
                .map(|v| v.docker_name.clone())
                .collect(),
            api_image_services: new
                .services
                .iter()
                .filter(|s| Some(&s.image) == api_image.as_ref())
                .map(|s| s.name.clone())
                .collect(),
            heads,
        })
    }
}

/// Steps 4 and 5: the new stack recreated while every container of the api image is watched
/// for a failed migration, then the database checked at the release's head.
async fn switch(
    engine: &difyctl::engine::Engine,
    args: &UpgradeArgs,
    config: &Config,
    target: &Target,
) -> anyhow::Result<()> {
    println!("[4/5] recreating what changed, watching the database migration");
    let mut stack = super::load_stack(&args.opts, &args.settings.replace)?;
    super::public_urls(&mut stack, config);
    super::warn_public_secrets(&stack);
    let since = now() as i64 - 1;
    let reconcile = super::up::reconcile_stack(&stack, &args.settings);
    let watch = migration::first_failure(engine, &stack.project, &target.api_image_services, since);
    tokio::pin!(reconcile);
    tokio::pin!(watch);
    tokio::select! {
        done = &mut reconcile => {
            done?;
        }
        line = &mut watch => anyhow::bail!("the database migration failed: {line}"),
    }
    let database = migration::api_database(&stack);
    match (&target.heads, database) {
        (Some(heads), Some((db, name))) => {
            println!(
                "[5/5] every service is healthy; waiting for the database to reach {}",
                migration::join(heads)
            );
            let reached = migration::wait_for_heads(
                engine,
                &stack.project,
                &db,
                &name,
                heads,
                args.settings.wait_timeout,
            );
            tokio::select! {
                done = reached => done?,
                line = &mut watch => anyhow::bail!("the database migration failed: {line}"),
            }
            println!("      the database is at the release's migration head");
        }
        _ => {
            // A failure logged right as the api turned healthy still counts.
            if let Ok(line) = tokio::time::timeout(Duration::from_secs(2), &mut watch).await {
                anyhow::bail!("the database migration failed: {line}");
            }
            println!("[5/5] every service is healthy");
        }
    }
    Ok(())
}

/// Files back, then the database from the backup, then the previous stack up.
async fn roll_back(
    engine: &difyctl::engine::Engine,
    args: &UpgradeArgs,
    config: &Config,
    applied: &apply::Applied,
    archive: &Path,
    last: &Last,
) -> anyhow::Result<()> {
    apply::undo(applied)?;
    remove_new(engine, last).await;
    let stack = super::load_stack(&args.opts, &args.settings.replace)?;
    let verified = difyctl::backup::archive::verify(archive).await?;
    let opts = difyctl::engine::reconcile::UpOptions {
        timeout: args.settings.wait_timeout,
        config_file: String::new(),
        retired: args.settings.replace.clone(),
        journal: None,
    };
    let progress = Progress::new(20);
    let meter = Meter::new(false);
    difyctl::backup::restore::database::replace_all(
        engine, &verified, &stack, &opts, &progress, &meter,
    )
    .await?;
    meter.finish();
    let mut stack = stack;
    super::public_urls(&mut stack, config);
    super::up::reconcile_stack(&stack, &args.settings).await?;
    Ok(())
}

/// What the new release created that the previous one does not have: its containers, then
/// its networks and named volumes (which hold nothing of before the upgrade).
async fn remove_new(engine: &difyctl::engine::Engine, last: &Last) {
    if !last.new_services.is_empty() {
        if let Err(e) =
            difyctl::engine::ops::remove_services(engine, &last.project, &last.new_services).await
        {
            eprintln!("warning: cannot remove the new release's containers: {e:#}");
        }
    }
    for net in &last.new_networks {
        if engine.docker.remove_network(net).await.is_ok() {
            println!("      removed network {net} (new in the release)");
        }
    }
    for vol in &last.new_volumes {
        let none = None::<bollard::query_parameters::RemoveVolumeOptions>;
        if engine.docker.remove_volume(vol, none).await.is_ok() {
            println!("      removed volume {vol} (new in the release)");
        }
    }
}

/// `upgrade --resume` of an upgrade killed after its files were written (and rolled forward):
/// the switch again, the migration checked, and on failure the previous release put back.
async fn resume_switch(args: &UpgradeArgs, config: &Config, mut last: Last) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let stack = super::load_stack(&args.opts, &args.settings.replace)?;
    println!(
        "resuming the upgrade {} -> {}: its files are in place",
        last.from.as_deref().unwrap_or("?"),
        last.to.as_deref().unwrap_or("?")
    );
    let target = Target::read(&engine, &stack).await?;
    let mut journal = Journal::begin(
        &config.state_dir,
        &stack.project,
        Op::Upgrade,
        "upgrade:switching",
    )?;
    journal
        .record
        .facts
        .insert(fact::TO.into(), last.to.clone().unwrap_or_default());
    journal
        .record
        .facts
        .insert(fact::ROLLBACK.into(), last.rollback.display().to_string());
    journal.save()?;
    match switch(&engine, args, config, &target).await {
        Ok(()) => {
            last.set_state("done", &config.state_dir)?;
            journal.end();
            println!(
                "upgraded {} -> {}",
                last.from.as_deref().unwrap_or("?"),
                last.to.as_deref().unwrap_or("?")
            );
            Ok(())
        }
        Err(e) => {
            journal.step("upgrade:rolling back")?;
            eprintln!("upgrade failed: {}", difyctl::error_chain(e.as_ref()));
            let applied = apply::read_applied(&last.rollback)?;
            roll_back(&engine, args, config, &applied, &last.backup, &last).await?;
            last.set_state("undone", &config.state_dir)?;
            journal.end();
            anyhow::bail!("upgrade failed and was undone: the previous release runs again with the data of before")
        }
    }
}

/// `upgrade --undo`: the last upgrade's previous release back, whatever became of it (done,
/// rolled forward after it was killed): its files, the database from the backup taken before
/// it, what only the new release had removed, the previous release's containers up.
pub async fn undo(args: &UpgradeArgs, config: &Config) -> anyhow::Result<()> {
    let project = super::project_name(&args.opts)?;
    let Some(mut last) = Last::read(&config.state_dir, &project) else {
        return Err(super::UsageError(format!(
            "project {project} has no upgrade to undo (none recorded in {})",
            config.state_dir.display()
        ))
        .into());
    };
    if last.state == "undone" {
        return Err(super::UsageError(format!(
            "the last upgrade of project {project} ({} -> {}) was already undone",
            last.from.as_deref().unwrap_or("?"),
            last.to.as_deref().unwrap_or("?")
        ))
        .into());
    }
    let engine = super::engine().await?;
    let stack = super::load_stack(&args.opts, &args.settings.replace)?;
    let pending = difyctl::journal::of_project(&config.state_dir, &project);
    if let Some(j) = pending.iter().find(|j| j.owner_alive()) {
        anyhow::bail!(
            "a difyctl (pid {}) is working on project {project} ({:?}): wait for it to finish",
            j.record.pid,
            j.op
        );
    }
    for j in pending.iter().filter(|j| j.op == Op::Upgrade) {
        j.remove();
    }
    drop(stack);
    println!(
        "putting back {} (files, database from {}) in place of {}",
        last.from.as_deref().unwrap_or("the previous release"),
        last.backup.display(),
        last.to.as_deref().unwrap_or("the new release")
    );
    let applied = apply::read_applied(&last.rollback)?;
    let mut journal = Journal::begin(
        &config.state_dir,
        &project,
        Op::Upgrade,
        "upgrade:rolling back",
    )?;
    journal
        .record
        .facts
        .insert(fact::TO.into(), last.to.clone().unwrap_or_default());
    journal
        .record
        .facts
        .insert(fact::ROLLBACK.into(), last.rollback.display().to_string());
    journal.save()?;
    roll_back(&engine, args, config, &applied, &last.backup, &last).await?;
    last.set_state("undone", &config.state_dir)?;
    journal.end();
    println!(
        "undone: {} runs again with the data of before the upgrade",
        last.from.as_deref().unwrap_or("the previous release")
    );
    Ok(())
}

/// A copy of the install's configuration with the plan applied, to read the new stack from
/// (its images) before anything real changes. Removed when dropped.
struct Staged {
    dir: PathBuf,
    stack: Stack,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stage(install: &Path, plan: &Plan, opts: &LoadOptions) -> anyhow::Result<Staged> {
    let dir = install.join(format!(".difyctl-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    difyctl::fsutil::create_private_dir(&dir)?;
    let mut guard = Staged {
        dir: dir.clone(),
        stack: Stack::empty(),
    };
    for name in [
        ".env",
        "docker-compose.yaml",
        "docker-compose.override.yaml",
        "docker-compose.override.yml",
    ] {
        if install.join(name).is_file() {
            std::fs::copy(install.join(name), dir.join(name))?;
        }
    }
    copy_tree(&install.join("envs"), &dir.join("envs"))?;
    for (rel, bytes) in plan.writes() {
        difyctl::fsutil::write_atomic(&dir.join(rel), bytes, 0o600)?;
    }
    let staged_opts = LoadOptions {
        compose_file: dir.join("docker-compose.yaml"),
        overrides: opts
            .overrides
            .iter()
            .filter_map(|o| o.file_name().map(|n| dir.join(n)))
            .filter(|p| p.is_file())
            .collect(),
        env_files: Vec::new(),
        project_name: Some(super::project_name(opts)?),
        profiles: opts.profiles.clone(),
        process_env: opts.process_env.clone(),
    };
    guard.stack = super::load_stack(&staged_opts, &difyctl::dify::replaced())?;
    Ok(guard)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()))?;
        } else if path.is_file() {
            std::fs::copy(&path, to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Room for a backup and the new images; Docker reachable (checked by connecting).
fn preflight(config: &Config) -> anyhow::Result<()> {
    let dir = config
        .backup
        .dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let free = difyctl::fsutil::free_bytes(dir);
    if let Some(free) = free {
        anyhow::ensure!(
            free >= 2 << 30,
            "only {} MiB free at {}: an upgrade needs room for a backup and the new images (2 GiB at least)",
            free >> 20,
            dir.display()
        );
    }
    Ok(())
}

fn confirm(yes: bool, plan: &Plan) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(super::UsageError(
            "give --yes to upgrade without a question (or --dry-run to see the changes)".into(),
        )
        .into());
    }
    eprint!(
        "upgrade {} -> {} with the changes above? A backup is taken first. [y/N] ",
        plan.from.as_deref().unwrap_or("?"),
        plan.to.as_deref().unwrap_or("?")
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(
        answer.trim().eq_ignore_ascii_case("y"),
        "not upgraded: nothing was changed"
    );
    Ok(())
}

fn print_plan(plan: &Plan) {
    println!(
        "upgrade {} -> {}:",
        plan.from.as_deref().unwrap_or("?"),
        plan.to.as_deref().unwrap_or("?")
    );
    for c in &plan.changes {
        let path = c.path.display();
        match &c.what {
            What::Replace { summary, .. } => println!("  replace {path} ({})", summary.join(", ")),
            What::Add { .. } => println!("  add     {path}"),
            What::Env(s) if s.created => println!(
                "  create  {path} from the release's example{}",
                generated(&s.generated)
            ),
            What::Env(s) if s.changed() => {
                println!(
                    "  update  {path}: every value you set kept{}",
                    generated(&s.generated)
                );
                for r in &s.renamed {
                    println!("            renamed {r}");
                }
                for a in &s.added {
                    println!("            + {a}");
                }
            }
            What::Env(_) => {}
            What::Keep(why) => println!("  keep    {path}: {why}"),
            What::Edited {
                beside,
                diff,
                against,
            } => {
                println!(
                    "  keep    {path}: you changed it; the release's version goes beside it as {} ({against}):",
                    beside.display()
                );
                for line in diff {
                    println!("            {line}");
                }
            }
        }
    }
}

fn generated(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!(
            "; fresh secrets for {} (Dify ships public defaults)",
            keys.join(", ")
        )
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

//! Finishing or undoing what a killed difyctl left (its journal, `crate::journal`), so the next
//! command, or the serving `up` within seconds, never trips on it:
//!
//! - a backup killed with services paused: they are unpaused;
//! - a reconcile killed after removing a service's container: the service is created again;
//! - an upgrade killed while writing its files: the previous files are put back (rolled
//!   back); killed after they were all written: the new release is kept and brought up
//!   (rolled forward); either way it says which, and `upgrade --undo` can still go back;
//! - a restore killed part way: what it wrote is taken back (its containers, the volumes it
//!   made, the folder it filled).
//!
//! A journal whose owner still runs is left alone; so is one a heal cannot finish (it is
//! tried again next time, and named).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::progress::Progress;
use crate::engine::reconcile::{self, UpOptions};
use crate::engine::Engine;
use crate::journal::fact::{DIR, ROLLBACK, TO, VOLUMES, WAS_EMPTY};
use crate::journal::{self, Found, Op};
use crate::stack::model::Stack;

/// Heals every journal of `stack`'s project whose owner is gone; what was done, for a person.
pub async fn heal(
    engine: &Engine,
    state_dir: &Path,
    stack: &Stack,
    opts: &UpOptions,
) -> Vec<String> {
    let mut notes = Vec::new();
    for found in journal::of_project(state_dir, &stack.project) {
        if found.owner_alive() {
            continue;
        }
        let pid = found.record.pid;
        let done = match found.op {
            Op::Backup => backup(engine, &found, &mut notes).await,
            Op::Reconcile => reconcile_(engine, &found, stack, opts, &mut notes).await,
            Op::Upgrade => upgrade(&found, &mut notes),
            Op::Restore => restore(engine, &found, &mut notes).await,
        };
        match done {
            Ok(()) => found.remove(),
            Err(e) => notes.push(format!(
                "what a killed difyctl (pid {pid}, {:?} at {}) left is not finished: {e}; it is tried again by the next command",
                found.op, found.record.step
            )),
        }
    }
    notes
}

async fn backup(engine: &Engine, found: &Found, notes: &mut Vec<String>) -> Result<(), String> {
    let names = crate::backup::quiesce::unpause_ids(engine, &found.record.paused).await;
    if !names.is_empty() {
        notes.push(format!(
            "unpaused {} (paused by a backup, pid {}, that was killed)",
            names.join(", "),
            found.record.pid
        ));
    }
    Ok(())
}

async fn reconcile_(
    engine: &Engine,
    found: &Found,
    stack: &Stack,
    opts: &UpOptions,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let removed: Vec<String> = found
        .record
        .removed
        .iter()
        .filter(|s| stack.service(s).is_some())
        .cloned()
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    let opts = UpOptions {
        timeout: opts.timeout,
        config_file: opts.config_file.clone(),
        retired: opts.retired.clone(),
        journal: None,
    };
    reconcile::up(engine, &stack.only(&removed), &opts, &Progress::hidden())
        .await
        .map_err(|e| crate::error_chain(&e))?;
    notes.push(format!(
        "created {} again (removed by a `difyctl up`, pid {}, that was killed before it made the new one)",
        removed.join(", "),
        found.record.pid
    ));
    Ok(())
}

fn upgrade(found: &Found, notes: &mut Vec<String>) -> Result<(), String> {
    let to = found.record.facts.get(TO).cloned().unwrap_or_default();
    let Some(rollback) = found.record.facts.get(ROLLBACK).map(PathBuf::from) else {
        return Ok(());
    };
    if found.record.step == "upgrade:writing" || found.record.step == "upgrade:rolling back" {
        let applied = crate::upgrade::apply::read_applied(&rollback).map_err(|e| e.to_string())?;
        crate::upgrade::apply::undo(&applied).map_err(|e| e.to_string())?;
        notes.push(format!(
            "the upgrade to {to} (pid {}) was killed while {}: rolled back, the previous files are in place again (they were kept in {}); run the upgrade again when ready",
            found.record.pid,
            if found.record.step == "upgrade:writing" { "writing its files" } else { "putting the previous release back" },
            rollback.display()
        ));
    } else {
        notes.push(format!(
            "the upgrade to {to} (pid {}) was killed after its files were written: rolled forward, the services come up on {to}; `difyctl upgrade --undo` goes back to the previous release and its data",
            found.record.pid
        ));
    }
    Ok(())
}

async fn restore(engine: &Engine, found: &Found, notes: &mut Vec<String>) -> Result<(), String> {
    let facts = &found.record.facts;
    let project = &found.record.project;
    let _ = crate::engine::ops::down(engine, project, false, Duration::from_secs(10)).await;
    for v in facts
        .get(VOLUMES)
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter(|v| !v.is_empty())
    {
        let _ = engine
            .docker
            .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await;
    }
    if let (Some(dir), Some("true")) = (facts.get(DIR), facts.get(WAS_EMPTY).map(String::as_str)) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    notes.push(format!(
        "a restore into project {project} (pid {}) was killed part way: what it wrote was taken back; run it again",
        found.record.pid
    ));
    Ok(())
}

/// Before `up` or `restart` touches containers: a backup's pause ends first. Paused by a live
/// backup: waits for it (at most `limit`, saying so once); by a killed one: unpaused now.
pub async fn wait_for_pauses(
    engine: &Engine,
    state_dir: &Path,
    project: &str,
    limit: Duration,
    say: impl Fn(&str),
) -> Result<Vec<String>, String> {
    let start = Instant::now();
    let mut said = false;
    let mut notes = Vec::new();
    loop {
        let containers = reconcile::project_containers(engine, project, false)
            .await
            .map_err(|e| crate::error_chain(&e))?;
        let paused: Vec<&bollard::models::ContainerSummary> = containers
            .iter()
            .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::PAUSED))
            .collect();
        if paused.is_empty() {
            return Ok(notes);
        }
        let live = journal::of_project(state_dir, project)
            .into_iter()
            .find(|j| j.op == Op::Backup && j.owner_alive());
        let names: Vec<String> = paused.iter().map(|c| reconcile::display_name(c)).collect();
        let Some(backup) = live else {
            let unpaused = crate::backup::quiesce::unpause_leftovers(engine, &containers).await;
            notes.push(format!(
                "unpaused {} (left paused by a backup that is not running)",
                unpaused.join(", ")
            ));
            continue;
        };
        if start.elapsed() > limit {
            return Err(format!(
                "a backup of project {project} (pid {}) holds {} paused for more than {}s: wait for it to finish, or stop it (Ctrl-C or `kill {}`), and try again",
                backup.record.pid,
                names.join(", "),
                limit.as_secs(),
                backup.record.pid
            ));
        }
        if !said {
            say(&format!(
                "waiting for the backup of project {project} (pid {}) to unpause {} (at most {}s)",
                backup.record.pid,
                names.join(", "),
                limit.as_secs()
            ));
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

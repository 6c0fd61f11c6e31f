//! What a multi-step operation is about to do to the install, written in the state dir before
//! it does it: `<state>/journal/<project>.<op>.json` with the operation, its pid (and the
//! process's start time, so a reused pid is not mistaken for it), the step it is in, and what
//! it has paused, removed or is writing. Cleared when the operation ends, however it ends short
//! of being killed. A journal whose owner is gone is what a killed difyctl left: whoever comes
//! next (the serving `up`, any later command) finishes or undoes it (`heal`, in the command
//! layer, which knows how).
//!
//! For the tests of that healing, `DIFYCTL_FAILPOINT=<step>` stops the process for good at the
//! named step (after its journal entry is written), so a test can kill it exactly there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Reconcile,
    Backup,
    Upgrade,
    Restore,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Reconcile => "reconcile",
            Op::Backup => "backup",
            Op::Upgrade => "upgrade",
            Op::Restore => "restore",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    pub project: String,
    pub pid: u32,
    /// The owner's start time (clock ticks after boot, /proc/<pid>/stat field 22).
    pub pid_start: u64,
    /// Unix seconds.
    pub started: u64,
    pub step: String,
    /// Container ids paused (a backup's copy).
    #[serde(default)]
    pub paused: Vec<String>,
    /// Services whose container was removed and not yet created again (a reconcile).
    #[serde(default)]
    pub removed: Vec<String>,
    /// Free-form facts of the operation (an upgrade's rollback folder and backup, ...).
    #[serde(default)]
    pub facts: std::collections::BTreeMap<String, String>,
}

/// A journal entry being kept; removed when dropped.
pub struct Journal {
    path: PathBuf,
    pub op: Op,
    pub record: Record,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write the journal of the operation", path.display())]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("journal")
}

fn path(state_dir: &Path, project: &str, op: Op) -> PathBuf {
    dir(state_dir).join(format!(
        "{}.{}.json",
        crate::fsutil::safe_name(project),
        op.name()
    ))
}

impl Journal {
    /// Starts the journal of `op` on `project` at `step`.
    pub fn begin(
        state_dir: &Path,
        project: &str,
        op: Op,
        step: &str,
    ) -> Result<Journal, JournalError> {
        let pid = std::process::id();
        let mut j = Journal {
            path: path(state_dir, project, op),
            op,
            record: Record {
                project: project.to_string(),
                pid,
                pid_start: start_time(pid).unwrap_or(0),
                started: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                step: String::new(),
                ..Default::default()
            },
        };
        j.step(step)?;
        Ok(j)
    }

    /// Records the step about to be taken (then stops there for a failpoint of that name).
    pub fn step(&mut self, step: &str) -> Result<(), JournalError> {
        self.record.step = step.to_string();
        self.save()?;
        failpoint(step);
        Ok(())
    }

    pub fn save(&self) -> Result<(), JournalError> {
        let err = |source| JournalError {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self.path.parent() {
            crate::fsutil::create_private_dir(parent).map_err(err)?;
        }
        let json = serde_json::to_vec_pretty(&self.record).unwrap_or_default();
        crate::fsutil::write_atomic(&self.path, &json, 0o600).map_err(err)
    }

    /// Ends the journal: the operation is over (done, or failed and cleaned up after).
    pub fn end(self) {}
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `difyctl down` took the project down on purpose: the serving `up` does not bring its
/// services back (`up` clears the mark).
pub fn set_down(state_dir: &Path, project: &str, down: bool) {
    let p = dir(state_dir).join(format!("{}.down", crate::fsutil::safe_name(project)));
    if down {
        let _ = crate::fsutil::create_private_dir(&dir(state_dir));
        let _ = crate::fsutil::write_atomic(&p, b"", 0o600);
    } else {
        let _ = std::fs::remove_file(&p);
    }
}

pub fn is_down(state_dir: &Path, project: &str) -> bool {
    dir(state_dir)
        .join(format!("{}.down", crate::fsutil::safe_name(project)))
        .exists()
}

/// A journal found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub op: Op,
    pub record: Record,
}

impl Found {
    /// Whether the process that wrote it still runs.
    pub fn owner_alive(&self) -> bool {
        alive(self.record.pid, self.record.pid_start)
    }

    /// Done with it (healed).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Writes it back (a heal that made progress but is not done).
    pub fn save(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.record).unwrap_or_default();
        crate::fsutil::write_atomic(&self.path, &json, 0o600)
    }
}

/// The journals of `project` in the state dir.
pub fn of_project(state_dir: &Path, project: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for op in [Op::Reconcile, Op::Backup, Op::Upgrade, Op::Restore] {
        let p = path(state_dir, project, op);
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        match serde_json::from_slice::<Record>(&bytes) {
            Ok(record) => out.push(Found {
                path: p,
                op,
                record,
            }),
            Err(e) => tracing::warn!("{}: unreadable journal ({e}); ignored", p.display()),
        }
    }
    out
}

/// Whether process `pid` runs and is the one that started at `start` (0: not checked).
pub fn alive(pid: u32, start: u64) -> bool {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    start == 0 || start_time(pid) == Some(start)
}

/// A process's start time, /proc/<pid>/stat field 22 (after the command name, which may hold
/// spaces and parentheses: counted from the last `)`).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `DIFYCTL_FAILPOINT=<step>`: stop here for good (a test kills the process at this point).
pub fn failpoint(step: &str) {
    if std::env::var("DIFYCTL_FAILPOINT").is_ok_and(|f| f == step) {
        eprintln!("failpoint {step}: stopping here");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// The facts a journal carries, by the operation that writes them.
pub mod fact {
    /// An upgrade's: the rollback copy and the release it goes to.
    pub const ROLLBACK: &str = "rollback";
    pub const TO: &str = "to";
    /// A restore's: its target folder, whether that was empty, the volumes it made.
    pub const DIR: &str = "dir";
    pub const WAS_EMPTY: &str = "was_empty";
    pub const VOLUMES: &str = "volumes";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_lives_until_its_operation_ends_and_knows_its_owner() {
        let dir = std::env::temp_dir().join(format!("difyctl-journal-{}", std::process::id()));
        let mut j = Journal::begin(&dir, "proj", Op::Backup, "pausing").unwrap();
        j.record.paused.push("abc".into());
        j.step("copying").unwrap();
        let found = of_project(&dir, "proj");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record.step, "copying");
        assert_eq!(found[0].record.paused, ["abc"]);
        assert!(found[0].owner_alive(), "this process");
        drop(j);
        assert!(of_project(&dir, "proj").is_empty(), "cleared when it ends");
        assert!(
            !alive(std::process::id(), 1),
            "a reused pid is not the owner"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

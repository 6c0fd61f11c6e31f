//! What `up` is asked (its options) and what it reports per service, and the journal notes
//! its steps leave for a killed `up`'s successor.

use std::time::Duration;

use serde::Serialize;

pub struct UpOptions {
    /// How long one service may take to become healthy (or complete).
    pub timeout: Duration,
    /// The compose file, for the config_files label.
    pub config_file: String,
    /// Services whose containers are stopped when found (nginx, certbot: difyctl does their
    /// job and needs their ports).
    pub retired: Vec<String>,
    /// Where the services whose container is removed and not yet created again are written
    /// down (a killed `up` leaves the list for the next difyctl to finish).
    pub journal: Option<Shared>,
}

/// A journal shared by the services' tasks.
pub type Shared = std::sync::Arc<std::sync::Mutex<crate::journal::Journal>>;

/// Notes a step of `service` in the journal (and stops there for a failpoint of that name).
pub fn note(journal: &Option<Shared>, service: &str, what: Note) {
    let Some(j) = journal else { return };
    let step = {
        let mut j = j.lock().unwrap_or_else(|p| p.into_inner());
        match what {
            Note::Removing => j.record.removed.push(service.to_string()),
            Note::Created => j.record.removed.retain(|s| s != service),
            Note::Removed | Note::Health => {}
        }
        let step = format!("reconcile:{}:{service}", what.name());
        let _ = j.step(&step);
        step
    };
    let _ = step;
}

#[derive(Clone, Copy)]
pub enum Note {
    Removing,
    Removed,
    Created,
    Health,
}

impl Note {
    fn name(self) -> &'static str {
        match self {
            Note::Removing => "removing",
            Note::Removed => "removed",
            Note::Created => "created",
            Note::Health => "health",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Running and matching: left alone.
    Unchanged,
    /// Matching but stopped: started.
    Started,
    Created,
    Recreated,
    /// Running and matching, but a dependency it names with `restart: true` was recreated.
    Restarted,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceResult {
    pub service: String,
    pub container: String,
    pub id: String,
    pub action: Action,
}

#[derive(Debug, Default)]
pub struct UpReport {
    pub services: Vec<ServiceResult>,
    pub warnings: Vec<String>,
}

//! What every file of one load shares: the scope it is read in, the state carried across
//! files, and the loader `extends` and `include` call back into (so they need not import
//! `files.rs`, which calls them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::StackError;
use super::yaml::Tagged;

/// Reads compose files: `files::Files` is the one implementation.
pub trait Loader {
    /// All `files` merged in order.
    fn load_all(
        &self,
        files: &[PathBuf],
        scope: &Scope,
        ctx: &mut Ctx,
    ) -> Result<Value, StackError>;
    /// `file` merged into `dict`; its last document's tagged paths.
    fn load_file(
        &self,
        file: &Path,
        scope: &Scope,
        ctx: &mut Ctx,
        steps: Steps,
        dict: &mut Value,
    ) -> Result<Tagged, StackError>;
}

/// What the files of one project are read with.
pub struct Scope<'a> {
    /// Reads further files (for `extends` and `include`).
    pub loader: &'a dyn Loader,
    /// The interpolation environment.
    pub vars: &'a HashMap<String, String>,
    /// The project's folder: `include` paths are relative to it.
    pub working_dir: &'a Path,
}

/// State shared by every file read for one load, included projects' files too.
#[derive(Default)]
pub struct Ctx {
    /// Variables used while unset (compose: "defaulting to a blank string").
    pub unset: Vec<String>,
    /// The files whose `include` is being read, outermost first: a cycle is refused.
    pub including: Vec<PathBuf>,
}

/// Which of the per-file steps run: a file read for `extends` has neither (compose-go resolves
/// its extends service by service and ignores its includes).
#[derive(Clone, Copy)]
pub struct Steps {
    pub extends: bool,
    pub include: bool,
}

pub const ALL: Steps = Steps {
    extends: true,
    include: true,
};

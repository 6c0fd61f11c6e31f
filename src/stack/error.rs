//! What can go wrong loading a compose project, each naming its file (and key).

use std::path::PathBuf;

use crate::envfile::EnvFileError;
use crate::interpolate::InterpolateError;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot read compose file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("{}: {key}", path.display())]
    Interpolate {
        path: PathBuf,
        key: String,
        #[source]
        source: InterpolateError,
    },
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    #[error("{}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

//! One file per subcommand. Each takes its validated part of the configuration.

pub mod certs;
pub mod config;
pub mod proxy;

/// A mistake in how a command was called (exit code 2), found after parsing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

//! Certificate errors, each marked retryable (try again after a backoff) or not (needs the
//! user: wrong DNS, CAA, a rejected name), and carrying the CA's problem detail.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("cannot reach the ACME directory {directory}: {detail}")]
    Directory { directory: String, detail: String },
    #[error("cannot read the CA root {}", path.display())]
    CaRoot { path: PathBuf, detail: String },
    #[error("account at {directory}: {detail}")]
    Account { directory: String, detail: String },
    #[error("the CA refused {what}: {detail} ({kind})")]
    Ca {
        what: String,
        /// The problem type, e.g. `urn:ietf:params:acme:error:rateLimited`.
        kind: String,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("validation of {domain} by {challenge} failed: {detail}")]
    Validation {
        domain: String,
        challenge: &'static str,
        detail: String,
    },
    #[error("{what}: {detail}")]
    Protocol { what: String, detail: String },
    #[error("cannot write {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stored certificate {} is unusable: {detail}", path.display())]
    BadStoredCert { path: PathBuf, detail: String },
}

impl AcmeError {
    /// Whether trying again later can help without the user changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            AcmeError::Ca { kind, .. } => !NOT_RETRYABLE.iter().any(|k| kind.ends_with(k)),
            AcmeError::Validation { .. } => true,
            AcmeError::CaRoot { .. } | AcmeError::BadStoredCert { .. } => false,
            _ => true,
        }
    }

    /// How long the CA asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AcmeError::Ca {
                retry_after, kind, ..
            } => retry_after.or_else(|| {
                kind.ends_with(":rateLimited")
                    .then_some(Duration::from_secs(3600))
            }),
            _ => None,
        }
    }
}

/// Problem types that will not go away by themselves.
const NOT_RETRYABLE: [&str; 7] = [
    ":caa",
    ":rejectedIdentifier",
    ":unsupportedIdentifier",
    ":malformed",
    ":badCSR",
    ":invalidContact",
    ":unsupportedContact",
];

//! Certificates from an ACME CA (Let's Encrypt, or Pebble in tests), kept current with no
//! restart. Split the way CertMagic splits it:
//! - `account`: one account per directory + e-mail, credentials persisted (0600), reused;
//! - `issue`: one order: challenges (HTTP-01 through the proxy's :80 token map, TLS-ALPN-01
//!   through the resolver), CSR, certificate;
//! - `store`: certificates on disk, each version written whole before it becomes current;
//! - `schedule`: when to renew (ARI window, else 1/3 of the lifetime left) and how long to back
//!   off after a failure;
//! - `manager`: the loop that ties them together and swaps new certificates into the resolver.
//!
//! All instant-acme calls live in `account` and `issue` (its 0.9 changes the builder).

mod account;
mod error;
mod issue;
mod manager;
mod schedule;
mod store;

pub use crate::config::{AcmeConfig, ChallengeKind};
pub use error::AcmeError;
pub use manager::{CertManager, ControlRequest, RenewOutcome};
pub use schedule::{Backoff, RenewalPlan};
pub use store::{CertInfo, CertStatus, CertStore, StoredCert};

//! The HTTPS reverse proxy in front of Dify: listeners, router, forwarding, the :80 redirect and
//! challenge server, error pages and access log.
//!
//! It knows nothing of ACME except the challenge-token map and the certificate resolver inside
//! its TLS configuration, both shared with whoever manages certificates.

mod access_log;
mod attempt;
mod body;
mod challenge;
mod checks;
mod client;
mod conn;
mod failure;
mod forward;
mod framing;
mod graceful;
mod h1;
mod headers;
mod idle;
pub mod limits;
mod listener;
mod pages;
pub mod path;
mod redirect;
mod response_body;
mod retry;
mod rewrite;
mod route;
mod router;
mod server;
mod tunnel;
mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

pub use body::BoxError;
pub use challenge::{ChallengeTokens, CHALLENGE_PREFIX};
pub use router::{Availability, Route, RouteTable, Routes, Upstream, UpstreamError, Upstreams};
pub use server::{start, RunningProxy};

use crate::config::ProxyConfig;

/// A client's request body, as the axum front hands it over.
pub type ClientBody = axum::body::Body;

/// The body type of every response the proxy sends (before compression and logging).
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    // The OS error is in the message, before the hint, and so not also a source (printed
    // with its chain, it would appear twice).
    #[error("cannot listen on {addr} ({what}): {error}{}", bind_hint(error))]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot start proxy worker thread")]
    Worker(#[source] std::io::Error),
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another program holds this port: stop it, e.g. nginx or Dify's nginx container, or choose another address)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        _ => "",
    }
}

/// What every worker shares: settings, the live route table, the challenge tokens and the TLS
/// configuration (whose resolver can be swapped).
pub struct Shared {
    pub config: ProxyConfig,
    /// Counted per request, served by the admin listener.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub routes: Routes,
    pub challenges: ChallengeTokens,
    pub tls: Arc<rustls::ServerConfig>,
}

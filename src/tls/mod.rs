//! TLS for the proxy: the rustls server configuration, the certificate resolver that can be
//! swapped at runtime, certificates from PEM files, and the self-signed fallback.

mod files;
mod resolver;
mod selfsigned;

use std::path::PathBuf;
use std::sync::Arc;

pub use files::{load_pem_pair, parse_pem_pair, PemPair};
pub use resolver::{CertResolver, ACME_TLS_ALPN};
pub use rustls::sign::CertifiedKey;
pub use selfsigned::load_or_create_self_signed;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// ALPN protocols the proxy offers: HTTP/2 first, then HTTP/1.1, and `acme-tls/1` for the
/// TLS-ALPN-01 validator (such connections are closed right after the handshake).
pub const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", ACME_TLS_ALPN];

/// The server configuration: TLS 1.3 and 1.2 only, the provider's modern AEAD suites with
/// forward secrecy, ALPN h2 + http/1.1 (+ acme-tls/1), and certificates from `resolver` (so a swap applies to
/// the next handshake).
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's suite order (the provider's, strongest first) wins over the client's, as
    // scanners (testssl: "server cipher order") expect.
    config.ignore_client_order = true;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    // Stateless TLS 1.3 tickets: resumption without a server-side cache lookup.
    if let Ok(ticketer) = rustls::crypto::aws_lc_rs::Ticketer::new() {
        config.ticketer = ticketer;
    }
    Arc::new(config)
}

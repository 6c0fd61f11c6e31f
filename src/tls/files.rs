//! Certificates from PEM files (`--cert/--key`): loaded and checked, and re-loaded when the
//! files change or on SIGHUP, so an external renewal (certbot, a corporate CA) applies with no
//! restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// A certificate chain file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PemPair {
    /// What identifies the files' current content cheaply: modification time and length.
    pub fn fingerprint(&self) -> Option<[(SystemTime, u64); 2]> {
        let stamp = |p: &Path| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        Some([stamp(&self.cert)?, stamp(&self.key)?])
    }

    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        load_pem_pair(&self.cert, &self.key).map(Arc::new)
    }
}

/// Loads a PEM chain and key, checking that the key matches the leaf certificate.
pub fn load_pem_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    parse_pem_pair(&cert_pem, &key_pem, cert_path, key_path)
}

/// Builds a `CertifiedKey` from PEM text; the paths only name the sources in errors.
pub fn parse_pem_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    certified_key(certs, key, cert_path, key_path)
}

/// Builds a `CertifiedKey` with the process's crypto provider, checking the key pair.
pub(crate) fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        },
        other => TlsError::BadKey {
            path: key_path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

//! The self-signed fallback, used when there is no domain (or no certificate yet). It is kept in
//! the state dir so that browsers that were told to trust it once keep trusting it: a restart
//! must not mint a new one.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::files::load_pem_pair;
use super::TlsError;
use crate::fsutil::write_atomic;

/// Loads `<dir>/self-signed.{crt,key}` when it exists and was made for the same `names`,
/// otherwise creates (and stores) a new ECDSA P-256 certificate for them.
pub fn load_or_create_self_signed(
    dir: &Path,
    names: &[String],
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_path = dir.join("self-signed.crt");
    let key_path = dir.join("self-signed.key");
    let names_path = dir.join("self-signed.names");
    let wanted = names.join("\n");
    if std::fs::read_to_string(&names_path).ok().as_deref() == Some(wanted.as_str()) {
        match load_pem_pair(&cert_path, &key_path) {
            Ok(key) => return Ok(Arc::new(key)),
            Err(e) => {
                tracing::warn!("stored self-signed certificate unusable, making a new one: {e}")
            }
        }
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |path: &Path, bytes: &[u8], mode| {
        write_atomic(path, bytes, mode).map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(
        &key_path,
        generated.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write(&cert_path, generated.cert.pem().as_bytes(), 0o644)?;
    write(&names_path, wanted.as_bytes(), 0o644)?;
    tracing::info!(names = %names.join(","), path = %cert_path.display(), "created a self-signed certificate");
    load_pem_pair(&cert_path, &key_path).map(Arc::new)
}

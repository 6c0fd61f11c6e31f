//! Certificates on disk, one folder per certificate under `<state>/certs/<name>/`:
//!
//! ```text
//! current -> v-<serial>          symlink, switched atomically (rename) after a version is complete
//! v-<serial>/fullchain.pem       leaf + chain
//! v-<serial>/privkey.pem         0600
//! v-<serial>/info.json           names, directory, issuer, serial, validity
//! status.json                    last attempt, last error, next attempt (for `certs status`)
//! ```
//! A version is written whole (each file atomically, fsynced) before `current` points at it, so
//! a crash at any moment leaves the old set or the new set in service, never a mix. The
//! previous version is kept as a fallback; older ones are removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use super::AcmeError;
use crate::fsutil::write_atomic;
use crate::tls::parse_pem_pair;

/// What a certificate says about itself (read from the leaf).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub names: Vec<String>,
    /// The ACME directory it came from, or where it was imported from.
    pub directory: String,
    pub issuer: String,
    pub serial: String,
    /// Seconds since the epoch.
    pub not_before: u64,
    pub not_after: u64,
}

impl CertInfo {
    pub fn not_before(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.not_before)
    }
    pub fn not_after(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.not_after)
    }
}

/// The outcome of the latest attempts, for `certs status` (seconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertStatus {
    pub last_attempt: Option<u64>,
    pub last_success: Option<u64>,
    pub last_error: Option<String>,
    pub failures: u32,
    pub next_attempt: Option<u64>,
    pub next_reason: Option<String>,
}

#[derive(Clone)]
pub struct StoredCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct CertStore {
    root: PathBuf,
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl CertStore {
    pub fn new(state_dir: &Path) -> CertStore {
        CertStore {
            root: state_dir.join("certs"),
        }
    }

    /// The folder of certificate `name` (a wildcard's `*` is written `_`).
    pub fn dir(&self, name: &str) -> PathBuf {
        let safe = crate::fsutil::safe_name(name);
        self.root.join(safe)
    }

    /// Names of the certificates on disk.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().join("current").exists() || e.path().join("status.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// The current version of `name`, if there is one.
    pub fn load(&self, name: &str) -> Result<Option<StoredCert>, AcmeError> {
        let current = self.dir(name).join("current");
        let Ok(target) = std::fs::read_link(&current) else {
            return Ok(None);
        };
        self.load_version(self.dir(name).join(target)).map(Some)
    }

    /// The newest version of `name` other than the current one that loads cleanly: what is
    /// served when the current one is damaged (a truncated file, a bad key).
    pub fn load_previous(&self, name: &str) -> Option<StoredCert> {
        let current = std::fs::read_link(self.dir(name).join("current")).ok();
        let mut versions: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(self.dir(name))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("v-")
                    && current.as_deref() != Some(Path::new(&e.file_name()))
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        versions.sort();
        versions
            .into_iter()
            .rev()
            .find_map(|(_, dir)| self.load_version(dir).ok())
    }

    fn load_version(&self, dir: PathBuf) -> Result<StoredCert, AcmeError> {
        let bad = |detail: String| AcmeError::BadStoredCert {
            path: dir.clone(),
            detail,
        };
        let chain = std::fs::read(dir.join("fullchain.pem")).map_err(|e| bad(e.to_string()))?;
        let key = std::fs::read(dir.join("privkey.pem")).map_err(|e| bad(e.to_string()))?;
        let info = std::fs::read(dir.join("info.json")).map_err(|e| bad(e.to_string()))?;
        let info: CertInfo = serde_json::from_slice(&info).map_err(|e| bad(e.to_string()))?;
        let key = parse_pem_pair(
            &chain,
            &key,
            &dir.join("fullchain.pem"),
            &dir.join("privkey.pem"),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(StoredCert {
            key: Arc::new(key),
            info,
            dir,
        })
    }

    /// Stores a new version of `name` and makes it current.
    pub fn save(
        &self,
        name: &str,
        chain_pem: &str,
        key_pem: &str,
        directory: &str,
    ) -> Result<StoredCert, AcmeError> {
        let info = read_info(chain_pem, directory).map_err(|detail| AcmeError::Protocol {
            what: format!("the certificate issued for {name}"),
            detail,
        })?;
        // Never make a set current that cannot be served: check the pair before writing.
        parse_pem_pair(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            Path::new("fullchain.pem"),
            Path::new("privkey.pem"),
        )
        .map_err(|e| AcmeError::Protocol {
            what: format!("the certificate for {name}"),
            detail: e.to_string(),
        })?;
        let base = self.dir(name);
        let version = format!("v-{}-{}", info.serial, unix(SystemTime::now()));
        let dir = base.join(&version);
        let store_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AcmeError::Store { path, source }
        };
        crate::fsutil::create_private_dir(&base).map_err(store_err(&base))?;
        let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        let written = [
            ("privkey.pem", key_pem.as_bytes(), 0o600),
            ("fullchain.pem", chain_pem.as_bytes(), 0o644),
            ("info.json", json.as_slice(), 0o644),
        ]
        .into_iter()
        .try_for_each(|(file, bytes, mode)| {
            write_atomic(&dir.join(file), bytes, mode).map_err(store_err(&dir.join(file)))
        });
        if let Err(e) = written {
            // No half-written version is left behind (a full disk, say).
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }

        // Switch `current` in one rename.
        let tmp = base.join(".current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp).map_err(store_err(&tmp))?;
        std::fs::rename(&tmp, base.join("current")).map_err(store_err(&base.join("current")))?;
        std::fs::File::open(&base)
            .and_then(|d| d.sync_all())
            .map_err(store_err(&base))?;
        self.prune(&base, &version);
        self.load(name)?.ok_or_else(|| AcmeError::BadStoredCert {
            path: dir,
            detail: "not readable right after writing".into(),
        })
    }

    /// Keeps the current version and the newest other one; removes older versions.
    fn prune(&self, base: &Path, current: &str) {
        let mut versions: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("v-") && e.file_name() != current
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        versions.sort();
        versions.pop();
        for (_, old) in versions {
            let _ = std::fs::remove_dir_all(old);
        }
    }

    pub fn status(&self, name: &str) -> CertStatus {
        std::fs::read(self.dir(name).join("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn set_status(&self, name: &str, status: &CertStatus) -> Result<(), AcmeError> {
        let path = self.dir(name).join("status.json");
        let json = serde_json::to_vec_pretty(status).unwrap_or_default();
        crate::fsutil::create_private_dir(&self.dir(name))
            .and_then(|()| write_atomic(&path, &json, 0o644))
            .map_err(|source| AcmeError::Store { path, source })
    }
}

/// Reads names, issuer, serial and validity from the leaf of a PEM chain.
pub fn read_info(chain_pem: &str, directory: &str) -> Result<CertInfo, String> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or("no certificate in the chain")?
        .map_err(|e| e.to_string())?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => names.push(n.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) if ip.len() == 4 => {
                    names.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string())
                }
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    Ok(CertInfo {
        names,
        directory: directory.to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: validity.not_before.timestamp().max(0) as u64,
        not_after: validity.not_after.timestamp().max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let g = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (g.cert.pem(), g.signing_key.serialize_pem())
    }

    #[test]
    fn versions_switch_atomically_and_old_ones_are_pruned() {
        let state = std::env::temp_dir().join(format!("difyctl-store-{}", std::process::id()));
        let store = CertStore::new(&state);
        assert!(store.load("dify.example.com").unwrap().is_none());
        let mut serials = Vec::new();
        for _ in 0..3 {
            let (chain, key) = self_signed("dify.example.com");
            let saved = store
                .save("dify.example.com", &chain, &key, "https://ca/dir")
                .unwrap();
            assert_eq!(saved.info.names, vec!["dify.example.com"]);
            serials.push(saved.info.serial.clone());
            let loaded = store.load("dify.example.com").unwrap().unwrap();
            assert_eq!(loaded.info.serial, saved.info.serial);
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(loaded.dir.join("privkey.pem"))
                    .unwrap()
                    .permissions(),
            );
            assert_eq!(mode & 0o777, 0o600);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let versions = std::fs::read_dir(store.dir("dify.example.com"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("v-")
            })
            .count();
        assert_eq!(versions, 2, "current and previous kept");
        assert_eq!(store.names(), vec!["dify.example.com"]);
        std::fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn a_key_that_does_not_match_is_refused_before_anything_changes() {
        let state =
            std::env::temp_dir().join(format!("difyctl-store-mismatch-{}", std::process::id()));
        let store = CertStore::new(&state);
        let (chain, key) = self_signed("b.example");
        let first = store.save("b.example", &chain, &key, "d").unwrap();
        let (other_chain, _) = self_signed("b.example");
        assert!(store.save("b.example", &other_chain, &key, "d").is_err());
        assert_eq!(
            store.load("b.example").unwrap().unwrap().info.serial,
            first.info.serial
        );
        std::fs::remove_dir_all(&state).unwrap();
    }

    /// A crash after a version was written but before `current` switched leaves the old set.
    #[test]
    fn half_written_version_is_never_served() {
        let state =
            std::env::temp_dir().join(format!("difyctl-store-crash-{}", std::process::id()));
        let store = CertStore::new(&state);
        let (chain, key) = self_signed("a.example");
        let first = store.save("a.example", &chain, &key, "d").unwrap();
        let orphan = store.dir("a.example").join("v-orphan");
        std::fs::create_dir_all(&orphan).unwrap();
        std::fs::write(orphan.join("fullchain.pem"), "partial").unwrap();
        let loaded = store.load("a.example").unwrap().unwrap();
        assert_eq!(loaded.info.serial, first.info.serial);
        std::fs::remove_dir_all(&state).unwrap();
    }
}

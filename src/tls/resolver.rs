//! The swappable certificate resolver. Certificates live behind an `ArcSwap`: a swap is one
//! atomic pointer store, the next handshake sees the new certificate, and connections already
//! established keep the one they negotiated (TLS never looks at it again).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Default, Clone)]
struct CertSet {
    /// Served when no name matches (and to clients that send no SNI).
    default: Option<Arc<CertifiedKey>>,
    /// By lower-case DNS name; `*.example.com` entries match one label.
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

#[derive(Default)]
pub struct CertResolver {
    set: ArcSwap<CertSet>,
    /// TLS-ALPN-01 challenge certificates by DNS name, served only to clients that offer the
    /// `acme-tls/1` protocol (the CA's validator).
    challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.set.load();
        f.debug_struct("CertResolver")
            .field("default", &set.default.is_some())
            .field("names", &set.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CertResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the certificate served when no name matches.
    pub fn set_default(&self, key: Arc<CertifiedKey>) {
        self.set.rcu(|set| {
            let mut next = CertSet::clone(set);
            next.default = Some(key.clone());
            next
        });
    }

    /// Serves `key` for each of `names` (and makes it the default when there is none yet).
    pub fn set_for_names(&self, names: &[String], key: Arc<CertifiedKey>) {
        self.set.rcu(|set| {
            let mut next = CertSet::clone(set);
            for name in names {
                next.by_name.insert(name.to_ascii_lowercase(), key.clone());
            }
            if next.default.is_none() {
                next.default = Some(key.clone());
            }
            next
        });
    }

    /// Serves `key` to the ACME validator for `name` until `remove_challenge`.
    pub fn set_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        self.challenges.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.insert(name.to_ascii_lowercase(), key.clone());
            next
        });
    }

    pub fn remove_challenge(&self, name: &str) {
        self.challenges.rcu(|map| {
            let mut next = HashMap::clone(map);
            next.remove(&name.to_ascii_lowercase());
            next
        });
    }

    /// The certificate a client asking for `server_name` would get.
    pub fn lookup(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        if let Some(name) = server_name {
            let name = name.to_ascii_lowercase();
            if let Some(key) = set.by_name.get(&name) {
                return Some(key.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(key) = set.by_name.get(&format!("*.{parent}")) {
                    return Some(key.clone());
                }
            }
        }
        set.default.clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only a challenge certificate may answer acme-tls/1; no challenge, no handshake.
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.load().get(&name).cloned();
        }
        self.lookup(hello.server_name())
    }
}

//! Where the served certificates come from, set up before the first connection: the user's
//! files (reloaded when they change), else the stored ACME certificate (renewed by the
//! manager), else the kept self-signed one (until the CA issues one, or for good without
//! domains).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::ServerError;
use crate::acme::CertManager;
use crate::config::Config;
use crate::proxy::ChallengeTokens;
use crate::tls::{self, CertResolver, PemPair};

pub struct Certificates {
    /// User-given files, watched for changes.
    pub pem: Option<PemPair>,
    /// The ACME manager, when certificates come from a CA.
    pub manager: Option<CertManager>,
}

impl Certificates {
    /// Puts a certificate in the resolver before anything listens.
    pub fn install(
        config: &Config,
        resolver: Arc<CertResolver>,
        tokens: ChallengeTokens,
    ) -> Result<Certificates, ServerError> {
        if let Some(files) = &config.cert_files {
            let pair = PemPair {
                cert: files.cert.clone(),
                key: files.key.clone(),
            };
            resolver.set_default(pair.load()?);
            return Ok(Certificates {
                pem: Some(pair),
                manager: None,
            });
        }
        let mut manager = config
            .acme
            .clone()
            .map(|acme| CertManager::new(acme, resolver.clone(), tokens));
        let served = match manager.as_mut() {
            Some(m) => m.install_stored()?.is_some(),
            None => false,
        };
        if !served {
            install_self_signed(config, &resolver)?;
        }
        Ok(Certificates { pem: None, manager })
    }
}

fn install_self_signed(config: &Config, resolver: &CertResolver) -> Result<(), ServerError> {
    let names = if config.domains.is_empty() {
        vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()]
    } else {
        config.domains.clone()
    };
    let dir = config.state_dir.join("tls");
    crate::fsutil::create_private_dir(&dir).map_err(|source| ServerError::StateDir {
        path: dir.clone(),
        source,
    })?;
    resolver.set_default(tls::load_or_create_self_signed(&dir, &names)?);
    match &config.self_signed_reason {
        Some(reason) => tracing::warn!(
            names = %names.join(","),
            "serving a self-signed certificate, which browsers will warn about: {reason}"
        ),
        None => {
            tracing::info!(names = %names.join(","), "serving a self-signed certificate until the CA issues one")
        }
    }
    Ok(())
}

/// Loads the PEM files again; on failure the current certificate stays in service.
pub fn reload(pair: &PemPair, resolver: &CertResolver) {
    match pair.load() {
        Ok(key) => {
            resolver.set_default(key);
            tracing::info!(cert = %pair.cert.display(), "certificate reloaded");
        }
        Err(e) => tracing::error!(
            cert = %pair.cert.display(),
            "certificate reload failed, still serving the previous one: {}",
            crate::error_chain(&e)
        ),
    }
}

/// Reloads the user's files when they change (checked every 5 s), until `stop`.
pub async fn watch_files(
    pair: PemPair,
    resolver: Arc<CertResolver>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = pair.fingerprint();
    let mut poll = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = crate::stopped(&mut stop) => return,
            _ = poll.tick() => {
                let now = pair.fingerprint();
                if now.is_some() && now != seen {
                    reload(&pair, &resolver);
                    seen = now;
                }
            }
        }
    }
}

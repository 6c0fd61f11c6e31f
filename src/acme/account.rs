//! The ACME account: created once per directory and e-mail, its credentials kept in
//! `<state>/acme/<directory>/<email>.json` (0600) and reused at every start. A client that
//! loses its account and makes new ones runs into the CA's account rate limits.

use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountCredentials, NewAccount};

use super::{AcmeConfig, AcmeError};
use crate::fsutil::write_atomic;

/// Where the credentials for `cfg`'s directory and e-mail live.
pub fn credentials_path(cfg: &AcmeConfig) -> PathBuf {
    let dir = crate::fsutil::safe_name(
        cfg.directory
            .trim_start_matches("https://")
            .trim_start_matches("http://"),
    );
    let who = cfg
        .email
        .as_deref()
        .unwrap_or("no-email")
        .replace(['/', '\\'], "_");
    cfg.state_dir
        .join("acme")
        .join(dir)
        .join(format!("{who}.json"))
}

/// Loads the stored account, or creates one and stores its credentials before using it.
pub async fn load_or_create(cfg: &AcmeConfig) -> Result<Account, AcmeError> {
    let path = credentials_path(cfg);
    let account_err = |detail: String| AcmeError::Account {
        directory: cfg.directory.clone(),
        detail,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let creds: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
                account_err(format!(
                    "{} is not valid account credentials: {e}",
                    path.display()
                ))
            })?;
            return builder(cfg)?.from_credentials(creds).await.map_err(|e| {
                super::issue::ca_error(&format!("the stored account {}", path.display()), e)
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(account_err(format!("cannot read {}: {e}", path.display()))),
    }
    let contact = cfg.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    // newAccount is a signed POST like any other: retry it when the CA rejects the nonce.
    let mut tries = 0;
    let (account, creds) = loop {
        match builder(cfg)?
            .create(&new, cfg.directory.clone(), None)
            .await
        {
            Err(e) if super::issue::is_bad_nonce(&e) && tries < 8 => tries += 1,
            other => break other.map_err(|e| super::issue::ca_error("a new account", e))?,
        }
    };
    let json = serde_json::to_vec_pretty(&creds).map_err(|e| account_err(e.to_string()))?;
    store(&path, &json)?;
    tracing::info!(directory = %cfg.directory, path = %path.display(), "ACME account created");
    Ok(account)
}

fn store(path: &Path, json: &[u8]) -> Result<(), AcmeError> {
    if let Some(dir) = path.parent() {
        crate::fsutil::create_private_dir(dir).map_err(|source| AcmeError::Store {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_atomic(path, json, 0o600).map_err(|source| AcmeError::Store {
        path: path.to_path_buf(),
        source,
    })
}

fn builder(cfg: &AcmeConfig) -> Result<instant_acme::AccountBuilder, AcmeError> {
    match &cfg.ca_root {
        Some(root) => Account::builder_with_root(root).map_err(|e| AcmeError::CaRoot {
            path: root.clone(),
            detail: e.to_string(),
        }),
        None => Account::builder().map_err(|e| AcmeError::Directory {
            directory: cfg.directory.clone(),
            detail: e.to_string(),
        }),
    }
}

//! The certificate manager: serves what is on disk at once, then checks at start and every
//! ~10 minutes (jittered) whether the certificate is due, renews it, and swaps the new one into
//! the resolver (next handshakes get it; open connections keep theirs). A failed attempt never
//! touches the certificate in service: it is logged with the CA's detail, recorded for
//! `certs status`, run through the hook, and retried with backoff, switching challenge type on
//! every other try.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::schedule::{jittered, Backoff, RenewalPlan};
use super::store::{unix, CertStore, StoredCert};
use super::{account, issue, AcmeConfig, AcmeError};
use crate::proxy::ChallengeTokens;
use crate::tls::CertResolver;

/// A request from the control socket (`difyctl certs renew`).
pub enum ControlRequest {
    Renew {
        force: bool,
        reply: oneshot::Sender<RenewOutcome>,
    },
}

/// What one check did, for the caller and `certs renew`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RenewOutcome {
    pub name: String,
    /// A new certificate is in service.
    pub renewed: bool,
    pub serial: Option<String>,
    pub not_after: Option<u64>,
    pub error: Option<String>,
    pub message: String,
}

pub struct CertManager {
    cfg: AcmeConfig,
    resolver: Arc<CertResolver>,
    tokens: ChallengeTokens,
    store: CertStore,
    account: Option<Account>,
    /// The certificate in service, if any.
    current: Option<StoredCert>,
    /// The stored certificate was damaged: order a new one at the first check, due or not.
    repair: bool,
    /// Issued by the CA but not yet written (the disk was full): written at the next attempt
    /// instead of ordering again, which would spend Let's Encrypt's duplicate-certificate limit.
    unsaved: Option<issue::Issued>,
}

impl CertManager {
    pub fn new(
        cfg: AcmeConfig,
        resolver: Arc<CertResolver>,
        tokens: ChallengeTokens,
    ) -> CertManager {
        let store = CertStore::new(&cfg.state_dir);
        CertManager {
            cfg,
            resolver,
            tokens,
            store,
            account: None,
            current: None,
            repair: false,
            unsaved: None,
        }
    }

    /// Puts the stored certificate in service right away (no self-signed flash at start),
    /// after importing certbot's certificate for the name if that one is newer.
    pub fn install_stored(&mut self) -> Result<Option<&StoredCert>, AcmeError> {
        let name = self.cfg.cert_name().to_string();
        let mut stored = match self.store.load(&name) {
            Ok(stored) => stored,
            // A damaged store must not keep Dify offline (under systemd: a restart loop).
            Err(e) => {
                let previous = self.store.load_previous(&name);
                tracing::error!(
                    name,
                    "the stored certificate is damaged: {}; serving {} and ordering a new one",
                    crate::error_chain(&e),
                    if previous.is_some() {
                        "the previous good version"
                    } else {
                        "a self-signed certificate until then"
                    }
                );
                self.repair = true;
                previous
            }
        };
        if let Some(imported) = self.import_certbot(stored.as_ref()) {
            stored = Some(imported);
        }
        if let Some(stored) = stored {
            self.install(&stored);
            tracing::info!(name, serial = %stored.info.serial, days_left = days_left(stored.info.not_after()), "serving the stored certificate");
            self.current = Some(stored);
        }
        Ok(self.current.as_ref())
    }

    /// Runs until `shutdown`: periodic checks, and renewals asked for over `control`.
    pub async fn run(
        mut self,
        mut control: mpsc::Receiver<ControlRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut wake = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    let (_, next) = self.check(false).await;
                    wake = tokio::time::Instant::now() + next;
                }
                Some(request) = control.recv() => match request {
                    ControlRequest::Renew { force, reply } => {
                        let (outcome, next) = self.check(force).await;
                        let _ = reply.send(outcome);
                        wake = tokio::time::Instant::now() + next;
                    }
                },
                _ = crate::stopped(&mut shutdown) => return,
            }
        }
    }

    /// Renews if due (or `force`), respecting the backoff after failures unless forced.
    /// Returns what happened and how long to wait before the next check.
    pub async fn check(&mut self, force: bool) -> (RenewOutcome, Duration) {
        let force = force || std::mem::take(&mut self.repair);
        let name = self.cfg.cert_name().to_string();
        let now = SystemTime::now();
        let mut status = self.store.status(&name);
        let interval = jittered(self.cfg.check_interval);
        // A certificate issued but not yet written is written now, due or not (the status
        // file recording the failure may not have been writable either).
        if !force && self.unsaved.is_none() {
            if let Some((out, wait)) = self.not_yet(&name, &mut status, now).await {
                return (out, wait.min(interval));
            }
        }
        // Alternate challenge types across retries: one may be blocked where the other works.
        let challenge = if status.failures % 2 == 1 {
            self.cfg.challenge.other()
        } else {
            self.cfg.challenge
        };
        status.last_attempt = Some(unix(now));
        tracing::info!(name, challenge = challenge.as_str(), directory = %self.cfg.directory, forced = force, "requesting a certificate");
        let (out, wait) = match self.obtain(challenge).await {
            Ok(cert) => self.renewed(&name, status, cert).await,
            Err(e) => self.failed(&name, status, e).await,
        };
        (out, wait.min(interval))
    }

    /// What `check` reports about the certificate being served.
    fn outcome(
        &self,
        name: &str,
        renewed: bool,
        error: Option<String>,
        message: String,
    ) -> RenewOutcome {
        let cert = self.current.as_ref();
        RenewOutcome {
            name: name.to_string(),
            renewed,
            serial: cert.map(|c| c.info.serial.clone()),
            not_after: cert.map(|c| c.info.not_after),
            error,
            message,
        }
    }

    /// Not due yet (say when it will be), or waiting out the backoff after failures: what to
    /// report and how long to sleep. `None`: an attempt is due now. After a failed attempt
    /// (even a forced one) it keeps trying, with backoff, until one succeeds: the user or the
    /// schedule wanted a new certificate.
    async fn not_yet(
        &self,
        name: &str,
        status: &mut super::CertStatus,
        now: SystemTime,
    ) -> Option<(RenewOutcome, Duration)> {
        let plan = match &self.current {
            Some(cert) => Some(self.plan(cert, now).await),
            None => None,
        };
        if let Some(plan) = plan.filter(|p| !p.due(now) && status.failures == 0) {
            status.next_attempt = Some(unix(plan.renew_at));
            status.next_reason = Some(plan.reason.clone());
            self.save_status(name, status);
            let until = plan.renew_at.duration_since(now).unwrap_or_default();
            let msg = format!("not due: renewal {}", plan.reason);
            return Some((self.outcome(name, false, None, msg), until));
        }
        let next = status.next_attempt.filter(|_| status.failures > 0)?;
        let next = SystemTime::UNIX_EPOCH + Duration::from_secs(next);
        let wait = next.duration_since(now).ok()?;
        let msg = format!(
            "waiting {}s after {} failed attempt(s)",
            wait.as_secs(),
            status.failures
        );
        Some((
            self.outcome(name, false, status.last_error.clone(), msg),
            wait,
        ))
    }

    /// A new certificate: served, recorded, the hook told; sleep until its renewal.
    async fn renewed(
        &mut self,
        name: &str,
        mut status: super::CertStatus,
        cert: StoredCert,
    ) -> (RenewOutcome, Duration) {
        self.install(&cert);
        tracing::info!(name, serial = %cert.info.serial, days_left = days_left(cert.info.not_after()), "new certificate in service");
        status.last_success = Some(unix(SystemTime::now()));
        status.last_error = None;
        status.failures = 0;
        let plan = self.plan(&cert, SystemTime::now()).await;
        status.next_attempt = Some(unix(plan.renew_at));
        status.next_reason = Some(plan.reason.clone());
        self.save_status(name, &status);
        self.run_hook("success", Some(&cert), None).await;
        let wait = plan
            .renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        self.current = Some(cert);
        (self.outcome(name, true, None, "renewed".into()), wait)
    }

    /// A failed attempt: the current certificate keeps being served; the failure is recorded,
    /// logged and given to the hook; the next attempt after the backoff (or, when retrying
    /// cannot help, the longest wait).
    async fn failed(
        &mut self,
        name: &str,
        mut status: super::CertStatus,
        e: AcmeError,
    ) -> (RenewOutcome, Duration) {
        status.failures += 1;
        let detail = format!("{} [CA: {}]", crate::error_chain(&e), self.cfg.directory);
        let backoff = Backoff {
            initial: self.cfg.retry_initial,
            max: self.cfg.retry_max,
        };
        let wait = if e.retryable() {
            backoff.delay(status.failures, e.retry_after())
        } else {
            backoff.max
        };
        status.last_error = Some(detail.clone());
        status.next_attempt = Some(unix(SystemTime::now() + wait));
        status.next_reason = Some(format!("retry after failure {}", status.failures));
        self.save_status(name, &status);
        let serving = match &self.current {
            Some(c) => format!(
                "still serving serial {} ({} days left)",
                c.info.serial,
                days_left(c.info.not_after())
            ),
            None => "no certificate from the CA yet".into(),
        };
        let needs = if e.retryable() {
            ""
        } else {
            " and needs your action"
        };
        tracing::error!(
            name,
            retry_in_s = wait.as_secs(),
            "certificate request failed{needs}, {serving}: {detail}"
        );
        self.run_hook("failure", self.current.clone().as_ref(), Some(&detail))
            .await;
        let msg = format!("failed; {serving}");
        (self.outcome(name, false, Some(detail), msg), wait)
    }

    /// Imports `<certbot_live>/<name>/{fullchain,privkey}.pem` when it is valid and expires
    /// later than `current`; a broken or older one is left alone (and said so).
    fn import_certbot(&self, current: Option<&StoredCert>) -> Option<StoredCert> {
        let live = self.cfg.certbot_live.as_ref()?.join(self.cfg.cert_name());
        let chain = std::fs::read_to_string(live.join("fullchain.pem")).ok()?;
        let key = std::fs::read_to_string(live.join("privkey.pem")).ok()?;
        let source = format!("certbot import ({})", live.display());
        let info = match super::store::read_info(&chain, &source) {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(path = %live.display(), "certbot certificate not imported: {e}");
                return None;
            }
        };
        if current.is_some_and(|c| c.info.not_after >= info.not_after)
            || info.not_after() <= SystemTime::now()
        {
            return None;
        }
        match self.store.save(self.cfg.cert_name(), &chain, &key, &source) {
            Ok(cert) => {
                tracing::info!(path = %live.display(), serial = %cert.info.serial, "imported certbot's certificate");
                Some(cert)
            }
            Err(e) => {
                tracing::warn!(path = %live.display(), "certbot certificate not imported: {e}");
                None
            }
        }
    }

    /// Serves `cert` for its names and to clients that send no SNI.
    fn install(&self, cert: &StoredCert) {
        self.resolver
            .set_for_names(&self.cfg.domains, cert.key.clone());
        self.resolver.set_default(cert.key.clone());
    }

    async fn obtain(&mut self, challenge: super::ChallengeKind) -> Result<StoredCert, AcmeError> {
        if let Some(issued) = self.unsaved.take() {
            tracing::info!(
                name = self.cfg.cert_name(),
                "writing the certificate the CA issued at the last attempt (no new order)"
            );
            return self.keep(issued);
        }
        let issued = match self.issue_once(challenge).await {
            // The CA no longer knows the stored account (a wiped test CA, a deactivated
            // account): only then is a new one made.
            Err(AcmeError::Ca { kind, .. }) if kind.ends_with(":accountDoesNotExist") => {
                tracing::warn!(directory = %self.cfg.directory, "the CA does not know the stored account; creating a new one");
                let _ = std::fs::remove_file(account::credentials_path(&self.cfg));
                self.account = None;
                self.issue_once(challenge).await?
            }
            other => other?,
        };
        self.keep(issued)
    }

    /// Writes an issued certificate; when that fails it is kept for the next attempt.
    fn keep(&mut self, issued: issue::Issued) -> Result<StoredCert, AcmeError> {
        let saved = self.store.save(
            self.cfg.cert_name(),
            &issued.chain_pem,
            &issued.key_pem,
            &self.cfg.directory,
        );
        if matches!(saved, Err(AcmeError::Store { .. })) {
            self.unsaved = Some(issued);
        }
        saved
    }

    async fn issue_once(
        &mut self,
        challenge: super::ChallengeKind,
    ) -> Result<issue::Issued, AcmeError> {
        if self.account.is_none() {
            self.account = Some(account::load_or_create(&self.cfg).await?);
        }
        // Invariant: set just above.
        let account = self.account.as_ref().expect("account loaded");
        issue::issue(account, &self.cfg, challenge, &self.tokens, &self.resolver).await
    }

    /// The renewal plan, asking the CA for its ARI window when it offers one.
    async fn plan(&self, cert: &StoredCert, now: SystemTime) -> RenewalPlan {
        let mut window = None;
        if let (Some(account), Some(leaf)) = (self.account.as_ref(), cert.key.cert.first()) {
            window = ari_window(account, leaf).await;
        }
        RenewalPlan::new(cert.info.not_before(), cert.info.not_after(), now, window)
    }

    fn save_status(&self, name: &str, status: &super::CertStatus) {
        if let Err(e) = self.store.set_status(name, status) {
            tracing::warn!(name, "cannot record certificate status: {e}");
        }
    }

    /// Runs the user's hook with the outcome in DIFYCTL_CERT_* variables.
    async fn run_hook(&self, result: &str, cert: Option<&StoredCert>, error: Option<&str>) {
        let env = [
            ("DIFYCTL_CERT_NAME", self.cfg.cert_name().to_string()),
            ("DIFYCTL_CERT_DOMAINS", self.cfg.domains.join(",")),
            ("DIFYCTL_CERT_RESULT", result.to_string()),
            (
                "DIFYCTL_CERT_DAYS_LEFT",
                cert.map_or(String::new(), |c| days_left(c.info.not_after()).to_string()),
            ),
            ("DIFYCTL_CERT_ERROR", error.unwrap_or("").to_string()),
        ];
        crate::hook::run(self.cfg.hook.as_deref(), &env, "certificate").await;
    }
}

async fn ari_window(
    account: &Account,
    leaf: &CertificateDer<'_>,
) -> Option<(SystemTime, SystemTime)> {
    let id = CertificateIdentifier::try_from(leaf).ok()?;
    match account.renewal_info(&id).await {
        Ok((info, _)) => Some((
            info.suggested_window.start.into(),
            info.suggested_window.end.into(),
        )),
        Err(instant_acme::Error::Unsupported(_)) => None,
        Err(e) => {
            tracing::debug!("ARI lookup failed, using the lifetime rule: {e}");
            None
        }
    }
}

/// Whole days until `not_after` (negative once expired).
pub fn days_left(not_after: SystemTime) -> i64 {
    match not_after.duration_since(SystemTime::now()) {
        Ok(d) => (d.as_secs() / 86400) as i64,
        Err(e) => -((e.duration().as_secs() / 86400) as i64) - 1,
    }
}

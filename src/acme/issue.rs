//! One ACME order: prove control of every name (HTTP-01 through the proxy's :80 token map, or
//! TLS-ALPN-01 through the TLS resolver), send a CSR for a fresh ECDSA P-256 key, fetch the
//! chain. Challenge answers are removed again whatever the outcome.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationHandle, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{AcmeConfig, AcmeError, ChallengeKind};
use crate::proxy::ChallengeTokens;
use crate::tls::CertResolver;

pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Retries an instant-acme call while the CA answers badNonce (it already retries 3 times
/// inside; Pebble rejects up to half of all nonces in tests, Let's Encrypt some under load).
macro_rules! nonce_retry {
    ($call:expr) => {{
        let mut tries = 0;
        loop {
            match $call.await {
                Err(e) if is_bad_nonce(&e) && tries < 8 => tries += 1,
                other => break other,
            }
        }
    }};
}

pub fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p) if p.r#type.as_deref().is_some_and(|t| t.ends_with(":badNonce")))
}

/// Turns an instant-acme error into ours, keeping the CA's problem type and detail.
pub fn ca_error(what: &str, e: instant_acme::Error) -> AcmeError {
    match e {
        instant_acme::Error::Api(p) => {
            let mut detail = p.detail.clone().unwrap_or_else(|| "no detail".into());
            for sub in &p.subproblems {
                if let Some(d) = &sub.detail {
                    detail.push_str("; ");
                    detail.push_str(d);
                }
            }
            AcmeError::Ca {
                what: what.to_string(),
                kind: p.r#type.clone().unwrap_or_default(),
                detail,
                retry_after: None,
            }
        }
        other => AcmeError::Protocol {
            what: what.to_string(),
            detail: crate::error_chain(&other),
        },
    }
}

pub async fn issue(
    account: &Account,
    cfg: &AcmeConfig,
    challenge: ChallengeKind,
    tokens: &ChallengeTokens,
    resolver: &CertResolver,
) -> Result<Issued, AcmeError> {
    let names = cfg.domains.join(", ");
    let mut order = new_order(account, cfg, &names).await?;
    let mut answered = Vec::new();
    let result = async {
        let solvers = Solvers {
            challenge,
            tokens,
            resolver,
        };
        answer_all(&mut order, &solvers, &mut answered).await?;
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(120));
        let status =
            nonce_retry!(order.poll_ready(&policy)).map_err(|e| ca_error("the order status", e))?;
        if status != OrderStatus::Ready {
            return Err(validation_failure(&mut order, challenge, &names).await);
        }
        finalize(&mut order, cfg, &names, &policy).await
    }
    .await;
    for answer in answered {
        match answer {
            Answer::Token(token) => tokens.remove(&token),
            Answer::Alpn(domain) => resolver.remove_challenge(&domain),
        }
    }
    result
}

/// A new order for the configured names (IP addresses as IP identifiers), with the profile
/// asked for when the CA offers it.
async fn new_order(account: &Account, cfg: &AcmeConfig, names: &str) -> Result<Order, AcmeError> {
    let identifiers: Vec<Identifier> = cfg
        .domains
        .iter()
        .map(|d| match d.parse() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(d.clone()),
        })
        .collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(profile) = cfg.profile.as_deref().filter(|p| !p.is_empty()) {
        if account.profiles().any(|p| p.name == profile) {
            new_order = new_order.profile(profile);
        } else {
            tracing::warn!(profile, directory = %cfg.directory, "the CA does not offer this ACME profile; using its default");
        }
    }
    nonce_retry!(account.new_order(&new_order))
        .map_err(|e| ca_error(&format!("a new order for {names}"), e))
}

/// Where challenge answers are presented: the proxy's token map (HTTP-01) or the resolver
/// (TLS-ALPN-01).
struct Solvers<'a> {
    challenge: ChallengeKind,
    tokens: &'a ChallengeTokens,
    resolver: &'a CertResolver,
}

/// Answers every pending authorization of the order; what was presented is pushed on
/// `answered` (cleaned up by the caller, success or not).
async fn answer_all(
    order: &mut Order,
    solvers: &Solvers<'_>,
    answered: &mut Vec<Answer>,
) -> Result<(), AcmeError> {
    // A fetch that fails (badNonce) leaves that authorization unfetched; a fresh pass over
    // the order fetches it again and skips the ones already answered.
    let mut done = std::collections::HashSet::new();
    let mut refetches = 0;
    'pass: loop {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let authz = match authz {
                Ok(authz) => authz,
                Err(e) if is_bad_nonce(&e) && refetches < 8 => {
                    refetches += 1;
                    continue 'pass;
                }
                Err(e) => return Err(ca_error("an authorization", e)),
            };
            if done.insert(authz.url().to_string()) {
                answer(authz, solvers, answered).await?;
            }
        }
        return Ok(());
    }
}

/// Presents the answer to one authorization's challenge and tells the CA it is ready.
async fn answer(
    mut authz: AuthorizationHandle<'_>,
    solvers: &Solvers<'_>,
    answered: &mut Vec<Answer>,
) -> Result<(), AcmeError> {
    let challenge = solvers.challenge;
    let domain = identifier_name(authz.identifier().identifier);
    match authz.status {
        AuthorizationStatus::Valid => return Ok(()),
        AuthorizationStatus::Pending => {}
        other => {
            return Err(AcmeError::Validation {
                domain,
                challenge: challenge.as_str(),
                detail: format!("authorization is {other:?}"),
            })
        }
    }
    let kind = match challenge {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut ch = authz.challenge(kind).ok_or_else(|| AcmeError::Validation {
        domain: domain.clone(),
        challenge: challenge.as_str(),
        detail: "the CA does not offer this challenge type for the name".into(),
    })?;
    let key_auth = ch.key_authorization();
    match challenge {
        ChallengeKind::Http01 => {
            solvers
                .tokens
                .insert(ch.token.clone(), key_auth.as_str().to_string());
            answered.push(Answer::Token(ch.token.clone()));
        }
        ChallengeKind::TlsAlpn01 => {
            let cert = alpn_certificate(&domain, key_auth.digest().as_ref())?;
            solvers.resolver.set_challenge(&domain, cert);
            answered.push(Answer::Alpn(domain.clone()));
        }
    }
    nonce_retry!(ch.set_ready()).map_err(|e| {
        ca_error(
            &format!("the {} challenge for {domain}", challenge.as_str()),
            e,
        )
    })
}

/// A fresh key, the CSR for the names, and the certificate chain once the CA issued it.
async fn finalize(
    order: &mut Order,
    cfg: &AcmeConfig,
    names: &str,
    policy: &RetryPolicy,
) -> Result<Issued, AcmeError> {
    let protocol = |what: &str| {
        let what = what.to_string();
        move |e: rcgen::Error| AcmeError::Protocol {
            what,
            detail: e.to_string(),
        }
    };
    let key = KeyPair::generate().map_err(protocol("a certificate key"))?;
    let mut params = CertificateParams::new(cfg.domains.clone()).map_err(protocol("the CSR"))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(protocol("the CSR"))?;
    nonce_retry!(order.finalize_csr(csr.der()))
        .map_err(|e| ca_error(&format!("the certificate for {names}"), e))?;
    let chain_pem = nonce_retry!(order.poll_certificate(policy))
        .map_err(|e| ca_error(&format!("the certificate for {names}"), e))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

enum Answer {
    Token(String),
    Alpn(String),
}

fn identifier_name(id: &Identifier) -> String {
    match id {
        Identifier::Dns(d) => d.clone(),
        Identifier::Ip(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}

/// What the CA said about the failed challenges, for the user.
async fn validation_failure(
    order: &mut instant_acme::Order,
    challenge: ChallengeKind,
    names: &str,
) -> AcmeError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let _ = authz.refresh().await;
        let domain = identifier_name(authz.identifier().identifier);
        for ch in &authz.challenges {
            if let Some(problem) = &ch.error {
                return AcmeError::Validation {
                    domain,
                    challenge: challenge.as_str(),
                    detail: format!(
                        "{} ({})",
                        problem.detail.as_deref().unwrap_or("no detail"),
                        problem.r#type.as_deref().unwrap_or("")
                    ),
                };
            }
        }
    }
    AcmeError::Validation {
        domain: names.to_string(),
        challenge: challenge.as_str(),
        detail: "the order became invalid".into(),
    }
}

/// The self-signed certificate TLS-ALPN-01 answers with: the name, plus the critical
/// acmeIdentifier extension holding the SHA-256 of the key authorization (RFC 8737).
fn alpn_certificate(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let err = |e: String| AcmeError::Protocol {
        what: format!("the TLS-ALPN-01 certificate for {domain}"),
        detail: e,
    };
    let key = KeyPair::generate().map_err(|e| err(e.to_string()))?;
    let mut params =
        CertificateParams::new(vec![domain.to_string()]).map_err(|e| err(e.to_string()))?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| err(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| err(e.to_string()))?;
    // `CertifiedKey::new`, not `from_der`: its consistency check rejects the critical extension.
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

//! Dify's `.env.example` ships public secrets (the same on every install that kept them).
//! `up` finds them in the services' final environment and says so loudly.

use std::collections::BTreeSet;

use super::model::Stack;

use crate::dify::secrets::PUBLIC;
pub use crate::dify::secrets::{is_credential, is_public, kind_of, public_in, Secret};

#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomError;

/// A fresh secret of `kind`, from the system's CSPRNG.
pub fn generate(kind: Secret) -> Result<String, RandomError> {
    Ok(match kind {
        Secret::Key => format!("sk-{}", random_text(56)?),
        Secret::Password => random_text(32)?,
        Secret::Token => random_text(48)?,
        Secret::Base64Url32 => base64url(&random_bytes::<32>()?),
        Secret::InitPassword => random_text(24)?,
    })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut buf = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| RandomError)?;
    Ok(buf)
}

/// Base64url without padding (RFC 4648 section 5).
fn base64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// `len` characters from [A-Za-z0-9], from the system's CSPRNG (rejection sampling: uniform).
fn random_text(len: usize) -> Result<String, RandomError> {
    use aws_lc_rs::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf).map_err(|_| RandomError)?;
        for b in buf {
            // 62 * 4 = 248: bytes from 248 up would bias the first letters.
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// One line per public secret in use: what it is and the variables (with services) holding it.
pub fn public_defaults(stack: &Stack) -> Vec<String> {
    let mut found = Vec::new();
    for (value, what) in PUBLIC {
        let mut holders = BTreeSet::new();
        for s in &stack.services {
            for (k, v) in &s.environment {
                // Whole value, or embedded in a URL (CELERY_BROKER_URL=redis://:PASS@redis...).
                if v == value || v.contains(&format!(":{value}@")) {
                    holders.insert(k.clone());
                }
            }
            if s.command.iter().flatten().any(|a| a == value) {
                holders.insert(format!("{}'s command", s.name));
            }
        }
        if !holders.is_empty() {
            found.push(format!(
                "{what} is Dify's public default ({})",
                holders.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url_without_padding() {
        assert_eq!(super::base64url(b"Man"), "TWFu");
        assert_eq!(super::base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(super::base64url(&[0u8; 32]).len(), 43);
    }
}

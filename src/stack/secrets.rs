//! Dify's `.env.example` ships public secrets (the same on every install that kept them).
//! `up` finds them in the services' final environment and says so loudly.

use std::collections::BTreeSet;

use super::model::Stack;

/// Values published in Dify's `.env.example` files, with what they are.
const PUBLIC: &[(&str, &str)] = &[
    ("difyai123456", "the database / Redis password"),
    (
        "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U",
        "SECRET_KEY",
    ),
    ("dify-sandbox", "the sandbox API key"),
    (
        "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",
        "PLUGIN_DAEMON_KEY",
    ),
    (
        "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",
        "PLUGIN_DIFY_INNER_API_KEY",
    ),
    (
        "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih",
        "the Weaviate API key",
    ),
    (
        "replace-with-base64url-32-byte-secret",
        "DIFY_AGENT_SERVER_SECRET_KEY",
    ),
    (
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
        "DIFY_AGENT_SERVER_SECRET_KEY",
    ),
    ("dify-agent-run-token-for-dev-only", "DIFY_AGENT_API_TOKEN"),
];

/// The public value `value` holds, whole or inside it (a URL with the password).
pub fn public_in(value: &str) -> Option<&'static str> {
    PUBLIC
        .iter()
        .map(|(v, _)| *v)
        .find(|v| value == *v || value.contains(&format!(":{v}@")))
}

/// Whether a `KEY=value` of one of Dify's published example files is a credential: its name
/// says so (a password, secret, token, key or credentials) and its value is one (not empty,
/// not a flag, number, file name, placeholder like `your-access-key`, or setting about tokens
/// such as `ACCESS_TOKEN_EXPIRE_MINUTES`). Published, it is public: an install needs its own.
/// This rule, not a list, is what finds the credentials a new release adds
/// (`DIFY_AGENT_API_TOKEN` in 1.16.1).
pub fn is_credential(key: &str, value: &str) -> bool {
    const NAMES: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "_KEY",
        "APIKEY",
        "CREDENTIALS",
        "ALLOWED_KEYS",
    ];
    // Settings about credentials, not credentials.
    const NOT: &[&str] = &[
        "EXPIRE",
        "EXPIRY",
        "MINUTES",
        "DAYS",
        "SECONDS",
        "MAX_TOKENS",
        "TOKENS_LENGTH",
        "TOKENIZ",
        "COUNTING",
        "FILENAME",
        "FILE",
        "PATH",
        "ENABLED",
        "ENABLE_",
        "LOGIN",
        "PROVIDER",
        "METHOD",
        "VERSION",
        "_USERS",
        "PER_TOKEN",
        "PUBLIC_KEY",
        "_KEY_ID",
        "SECRET_ID",
        "_NAME",
        "_TYPE",
        "_HEADER",
    ];
    let key = key.to_ascii_uppercase();
    if !NAMES
        .iter()
        .any(|n| key.contains(n) || key.ends_with(n.trim_start_matches('_')))
        || NOT.iter().any(|n| key.contains(n))
    {
        return false;
    }
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    !(v.is_empty()
        || v.len() < 3
        || v.starts_with('$')
        || v.parse::<f64>().is_ok()
        || ["true", "false", "none", "null", "xxx", "changeme"].contains(&lower.as_str())
        || lower.contains("your")
        || (lower.contains("://") && !lower.contains('@'))
        || v.starts_with('/'))
}

/// Whether `value` is one of Dify's published defaults.
pub fn is_public(value: &str) -> bool {
    PUBLIC.iter().any(|(v, _)| *v == value)
}

/// The shape a generated secret takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    /// Like Dify's `sk-$(openssl rand -base64 42)`.
    Key,
    /// Letters and digits only: it also goes inside a redis:// URL.
    Password,
    Token,
    /// 32 random bytes, base64url without padding (what the agent backend expects).
    Base64Url32,
    /// Dify's admin set-up password: at most 30 characters.
    InitPassword,
}

/// The shape of the secret a variable holds, by its name.
pub fn kind_of(key: &str) -> Secret {
    match key {
        "SECRET_KEY" => Secret::Key,
        "DIFY_AGENT_SERVER_SECRET_KEY" => Secret::Base64Url32,
        "INIT_PASSWORD" => Secret::InitPassword,
        k if k.ends_with("PASSWORD") => Secret::Password,
        _ => Secret::Token,
    }
}

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

//! Dify's credentials: the public defaults its `.env.example` files publish, the rule that
//! finds a credential by name and value, and the shape each secret takes.

/// Values published in Dify's `.env.example` files, with what they are.
pub const PUBLIC: &[(&str, &str)] = &[
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

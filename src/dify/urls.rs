//! Dify's public URL settings: the variables that must point at the served domain, the
//! values that mean "not set", and how each is derived (applied in `stack/urls.rs`).

/// (variable, Dify's defaults that mean "not set", what difyctl derives from `base`).
pub const SETTINGS: &[(&str, &[&str], Derive)] = &[
    ("CONSOLE_API_URL", &["", "http://localhost"], Derive::Base),
    ("CONSOLE_WEB_URL", &["", "http://localhost"], Derive::Base),
    ("SERVICE_API_URL", &["", "http://localhost"], Derive::Base),
    ("APP_API_URL", &["", "http://localhost"], Derive::Base),
    ("APP_WEB_URL", &["", "http://localhost"], Derive::Base),
    ("FILES_URL", &["", "http://localhost"], Derive::Base),
    ("TRIGGER_URL", &["", "http://localhost"], Derive::Base),
    (
        "ENDPOINT_URL_TEMPLATE",
        &["", "http://localhost/e/{hook_id}"],
        Derive::Endpoint,
    ),
    (
        "NEXT_PUBLIC_SOCKET_URL",
        &["", "ws://localhost"],
        Derive::Socket,
    ),
    (
        "RESPECT_XFORWARD_HEADERS_ENABLED",
        &["", "false"],
        Derive::True,
    ),
];

#[derive(Clone, Copy)]
pub enum Derive {
    Base,
    Endpoint,
    Socket,
    True,
}

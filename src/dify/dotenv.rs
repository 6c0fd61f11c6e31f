//! What Dify's own nginx and certbot read from `.env`: difyctl honours these where its own
//! settings are not set (each is the `.env` fallback of one row of `config/settings.rs`), and
//! the placeholders Dify's `.env.example` ships that mean "not set".

/// nginx's `client_max_body_size`.
pub const MAX_BODY: &str = "NGINX_CLIENT_MAX_BODY_SIZE";
/// nginx's `proxy_read_timeout`.
pub const READ_TIMEOUT: &str = "NGINX_PROXY_READ_TIMEOUT";
/// nginx's `keepalive_timeout`.
pub const KEEPALIVE_TIMEOUT: &str = "NGINX_KEEPALIVE_TIMEOUT";
/// The host port of nginx's port 80.
pub const HTTP_PORT: &str = "EXPOSE_NGINX_PORT";
/// The host port of nginx's port 443.
pub const HTTPS_PORT: &str = "EXPOSE_NGINX_SSL_PORT";
/// The name certbot gets a certificate for.
pub const DOMAIN: &str = "CERTBOT_DOMAIN";
/// certbot's account e-mail.
pub const EMAIL: &str = "CERTBOT_EMAIL";

/// `.env.example`'s placeholders: a value equal to one of these was never set by anyone
/// (`your_email@example.com` is one Let's Encrypt refuses).
pub const PLACEHOLDERS: [&str; 2] = ["your_domain.com", "your_email@example.com"];

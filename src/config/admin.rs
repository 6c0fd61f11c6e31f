//! The admin listener's part of the configuration: `[admin] listen` in difyctl.toml under
//! `--admin` (DIFYCTL_ADMIN). `off` (or an empty value) turns the listener off.

use std::net::SocketAddr;

use super::file::AdminFile;
use super::{ConfigError, Flags};

/// Where `/metrics`, `/healthz`, `/readyz` and `/status` are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// None: no admin listener.
    pub listen: Option<SocketAddr>,
    /// The address was asked for (not the default): failing to bind it fails the start;
    /// the default taken by something else only costs a warning.
    pub explicit: bool,
}

pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2019);

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(DEFAULT_ADMIN),
            explicit: false,
        }
    }
}

pub(super) fn admin_config(flags: &Flags, file: &AdminFile) -> Result<AdminConfig, ConfigError> {
    let (text, origin) = match (&flags.admin, &file.listen) {
        (Some(v), _) => (v.clone(), flags.origin("admin")),
        (None, Some(v)) => (v.clone(), "difyctl.toml (admin.listen)".to_string()),
        (None, None) => return Ok(AdminConfig::default()),
    };
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") {
        return Ok(AdminConfig {
            listen: None,
            explicit: true,
        });
    }
    let listen = super::parse_addr(t, false).ok_or_else(|| ConfigError::Invalid {
        origin,
        message: format!("`{t}` is not a listen address (like 127.0.0.1:2019), nor `off`"),
    })?;
    Ok(AdminConfig {
        listen: Some(listen),
        explicit: true,
    })
}

//! difyctl: one binary that replaces docker compose + nginx + certbot for a self-hosted Dify.
//! See `../shared/design.md` (and README.md) for the architecture; each module's doc says what
//! it owns.

pub mod cidr;
pub mod config;
pub mod fsutil;
pub mod proxy;
pub mod stack;
pub mod tls;
pub mod units;

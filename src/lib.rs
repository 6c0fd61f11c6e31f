//! difyctl: one binary that replaces docker compose + nginx + certbot for a self-hosted Dify.
//! See `../shared/design.md` (and README.md) for the architecture; each module's doc says what
//! it owns.

pub mod acme;
pub mod backup;
pub mod cidr;
pub mod config;
pub mod control;
pub mod cron;
pub mod dify;
pub mod engine;
pub mod envfile;
pub mod export;
pub mod fsutil;
pub mod heal;
pub mod hook;
pub mod interpolate;
pub mod journal;
pub mod lock;
pub mod metrics;
pub mod proxy;
pub mod releases;
pub mod server;
pub mod stack;
pub mod stdio;
pub mod timefmt;
pub mod tls;
pub mod units;
pub mod upgrade;
pub mod upstreams;

/// `error: cause: cause` on one line, for logs and status files.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Resolves once `shutdown` holds `true` (or its sender is gone). A plain future, so it can sit
/// in `select!` inside spawned (Send) tasks.
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

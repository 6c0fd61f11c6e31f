//! The one integration-test binary; each module covers one part of difyctl.

mod acme;
mod admin;
mod backup;
mod certs_cli;
mod cli;
mod dify_client;
mod engine;
mod export;
mod hostile;
mod images;
mod interrupted;
mod pebble;
mod pool;
mod proxy;
mod realdify;
mod releases;
mod stack;
mod support;
mod testserver;
mod up;
mod upgrade;

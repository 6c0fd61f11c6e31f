//! The one integration-test binary; each module covers one part of difyctl.

mod cli;
mod proxy;
mod support;
mod testserver;

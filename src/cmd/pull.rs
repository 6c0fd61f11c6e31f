//! `difyctl pull`: pull every image of the services `up` would start, even those present.

use difyctl::engine::images;
use difyctl::engine::progress::Progress;
use difyctl::stack::model::Stack;

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services whose images to pull [default: all]
    services: Vec<String>,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    profiles: Vec<String>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let stack = super::load_stack(&g.load(self.profiles), &difyctl::dify::replaced())?;
        let stack = super::named_services(stack, &self.services, false)?;
        runtime()?.block_on(run(&stack))
    }
}

pub async fn run(stack: &Stack) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let pulled = pull_images(&engine, stack, true).await?;
    eprintln!("pulled {pulled} image(s)");
    Ok(())
}

/// Pulls the stack's images with a progress line each (`force`: also those present);
/// how many were pulled.
pub async fn pull_images(
    engine: &difyctl::engine::Engine,
    stack: &Stack,
    force: bool,
) -> anyhow::Result<usize> {
    let width = stack
        .services
        .iter()
        .map(|s| s.image.len())
        .max()
        .unwrap_or(0);
    Ok(images::ensure(engine, stack, &Progress::new(width), force)
        .await?
        .len())
}

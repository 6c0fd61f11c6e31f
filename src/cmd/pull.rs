//! `difyctl pull`: pull every image of the services `up` would start, even those present.

use difyctl::engine::images;
use difyctl::engine::progress::Progress;
use difyctl::stack::model::Stack;

pub async fn run(stack: &Stack) -> anyhow::Result<()> {
    let engine = super::engine().await?;
    let width = stack
        .services
        .iter()
        .map(|s| s.image.len())
        .max()
        .unwrap_or(0);
    let pulled = images::ensure(&engine, stack, &Progress::new(width), true).await?;
    eprintln!("pulled {} image(s)", pulled.len());
    Ok(())
}

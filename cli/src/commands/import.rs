//! `warden import`: capabilities from snapshot files into the marketplace
//! store.

use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// A `.rtfs` or `.json` snapshot, or a directory of them.
    path: PathBuf,
}

pub(crate) async fn run(args: ImportArgs, config: &Path) -> anyhow::Result<()> {
    let host = super::load(config).await?;
    let report = host.import(&args.path)?;
    for id in &report.registered {
        println!("registered {id}");
    }
    for id in &report.updated {
        println!("updated    {id}");
    }
    for (id, why) in &report.skipped {
        println!("skipped    {id}: {why}");
    }
    let counts = format!(
        "{} registered, {} updated, {} skipped",
        report.registered.len(),
        report.updated.len(),
        report.skipped.len()
    );
    match host.store_dir() {
        Some(dir) => println!("{counts} (store: {})", dir.display()),
        None => println!("{counts}"),
    }
    Ok(())
}

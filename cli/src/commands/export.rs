//! `warden export`: every serializable capability as RTFS files or one
//! JSON file.

use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("format").required(true))]
pub(crate) struct ExportArgs {
    /// Write one `.rtfs` snapshot file per capability into DIR.
    #[arg(long, value_name = "DIR", group = "format")]
    rtfs: Option<PathBuf>,
    /// Write one JSON snapshot to FILE.
    #[arg(long, value_name = "FILE", group = "format")]
    json: Option<PathBuf>,
}

pub(crate) async fn run(args: ExportArgs, config: &Path) -> anyhow::Result<()> {
    let host = super::load(config).await?;
    let report = match (args.rtfs, args.json) {
        (Some(dir), _) => host.export_rtfs(&dir)?,
        (None, Some(file)) => host.export_json(&file)?,
        (None, None) => unreachable!("clap requires one of --rtfs, --json"),
    };
    println!("exported {} capabilities", report.exported.len());
    for f in &report.files {
        println!("  {}", f.display());
    }
    for (id, why) in &report.skipped {
        eprintln!("notice: skipped {id}: {why}");
    }
    Ok(())
}

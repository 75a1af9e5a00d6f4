//! `warden cache list|clear`: the compiled-component cache, and the content
//! store of components pulled from registries, without loading a host.

use clap::{Args, Subcommand};
use std::path::Path;
use std::process::ExitCode;
use warden::CompiledCache;

#[derive(Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Every compiled component in the cache, most recently used first.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove every compiled component (they are compiled again on the
    /// next load).
    Clear {
        /// Also remove the components pulled from registries (the content
        /// store): the next start pulls them again, and cannot while their
        /// registry is down.
        #[arg(long)]
        pulled: bool,
    },
}

/// The configuration's cache when the file exists, the default one
/// otherwise.
pub(crate) fn run(args: &CacheArgs, config: &Path) -> ExitCode {
    let cfg = if config.exists() {
        match warden::Config::from_file(config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        warden::Config::new(".")
    };
    if let Err(e) = pulled(&cfg, &args.command) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let Some(cache) = cfg.compiled_cache() else {
        println!("the compiled-component cache is off (`[host] no-cache`, or no cache directory)");
        return ExitCode::SUCCESS;
    };
    let result = match args.command {
        CacheCommand::List { json } => list(&cache, json),
        CacheCommand::Clear { .. } => cache.clear().map(|(n, bytes)| {
            println!(
                "removed {n} compiled components ({:.1} MB) from {}",
                mb(bytes),
                cache.dir().display()
            );
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", cache.dir().display());
            ExitCode::from(2)
        }
    }
}

/// The content store's part of `list` (text) and `clear --pulled`.
fn pulled(cfg: &warden::Config, command: &CacheCommand) -> anyhow::Result<()> {
    let Ok(store) = cfg.content_store() else {
        return Ok(());
    };
    let dir = store.dir().display().to_string();
    match command {
        CacheCommand::List { json: false } => {
            let (n, bytes) = store.usage().map_err(|e| anyhow::anyhow!("{dir}: {e}"))?;
            println!(
                "{dir}: {n} pulled blobs (components, manifests, signature payloads), {:.1} MB",
                mb(bytes)
            );
        }
        CacheCommand::Clear { pulled: true } => {
            let (n, bytes) = store.clear().map_err(|e| anyhow::anyhow!("{dir}: {e}"))?;
            println!("removed {n} pulled blobs ({:.1} MB) from {dir}", mb(bytes));
        }
        _ => {}
    }
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// `warden cache list`: the entries, most recently used first.
fn list(cache: &CompiledCache, json: bool) -> std::io::Result<()> {
    let entries = cache.entries()?;
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    if json {
        let v = serde_json::json!({
            "dir": cache.dir(),
            "max-bytes": cache.max_bytes(),
            "bytes": total,
            "entries": entries,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{}: {} compiled components, {:.1} MB of {:.1} MB (host.cache-max-bytes)",
        cache.dir().display(),
        entries.len(),
        mb(total),
        mb(cache.max_bytes())
    );
    for e in &entries {
        let ago = e.last_used.elapsed().map(|d| d.as_secs()).unwrap_or(0);
        println!(
            "  {:>8.1} MB  used {:>6} s ago  {}",
            mb(e.bytes),
            ago,
            e.file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    Ok(())
}

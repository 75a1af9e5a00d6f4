//! `warden check` and `warden cache`: component files and the compiled
//! cache, without loading a host.

use crate::CacheCommand;
use std::path::Path;
use std::process::ExitCode;

/// `warden check FILE`: exit 0 when the component can be loaded, 2 when
/// not (or when the file cannot be read).
pub(crate) fn check(file: &Path, json: bool) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let report = warden::check_component(&bytes);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!(
            "file      {} ({:.1} MB)",
            file.display(),
            report.bytes as f64 / 1e6
        );
        println!(
            "world     {}",
            report.world.as_deref().unwrap_or("(not a Warden provider)")
        );
        println!("exports   {}", report.exports.join(", "));
        println!("imports");
        for i in &report.imports {
            match &i.why {
                None => println!("  links    {}", i.name),
                Some(why) => println!("  MISSING  {} ({why})", i.name),
            }
        }
        if report.loads() {
            println!("loads     yes (function types are checked when it is linked)");
        } else {
            println!("loads     no");
            for p in &report.problems {
                println!("  - {p}");
            }
        }
    }
    if report.loads() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `warden cache list|clear`: the configuration's cache when the file
/// exists, the default one otherwise.
pub(crate) fn cache(command: &CacheCommand, config: &Path) -> ExitCode {
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
    let Some(cache) = cfg.compiled_cache() else {
        println!("the compiled-component cache is off (`[host] no-cache`, or no cache directory)");
        return ExitCode::SUCCESS;
    };
    let mb = |b: u64| b as f64 / 1e6;
    let result = match command {
        CacheCommand::List { json } => cache.entries().map(|entries| {
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            if *json {
                let v = serde_json::json!({
                    "dir": cache.dir(),
                    "max-bytes": cache.max_bytes(),
                    "bytes": total,
                    "entries": entries,
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return;
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
        }),
        CacheCommand::Clear => cache.clear().map(|(n, bytes)| {
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

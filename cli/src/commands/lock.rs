//! `warden lock` and `warden diff`: the lockfile (`warden.lock` beside the
//! configuration) records each plugin as accepted; `diff` shows what the
//! plugins as configured now change against it; `lock --accept PLUGIN`
//! accepts one plugin's new version.

use anyhow::Context;
use clap::Args;
use std::path::Path;
use warden::lock::{LockedPlugin, Lockfile, OnUpdate, LOCK_VERSION};

#[derive(Args)]
pub(crate) struct LockArgs {
    /// Accept only these plugins' current versions (the others' entries
    /// stay as they are). Without it, every plugin is locked as it is now.
    #[arg(long, value_name = "PLUGIN")]
    accept: Vec<String>,
}

#[derive(Args)]
pub(crate) struct DiffArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Every plugin as it loads now (whatever `on-update` says), and the lock
/// path and its current content.
async fn current(
    config: &Path,
) -> anyhow::Result<(
    std::collections::BTreeMap<String, LockedPlugin>,
    std::path::PathBuf,
    Option<Lockfile>,
)> {
    let mut cfg = super::read_config(config)?;
    let path = cfg
        .lock_path()
        .with_context(|| format!("{} has no lockfile path", config.display()))?;
    let lock = Lockfile::read(&path).map_err(anyhow::Error::msg)?;
    cfg.host.on_update = OnUpdate::Accept;
    let host = warden::Host::new(cfg).await?;
    for (name, why) in host.refused_plugins() {
        eprintln!("warning: plugin `{name}` does not load, so it is not locked: {why}");
    }
    let entries = host.lock_entries();
    host.shutdown().await;
    Ok((entries, path, lock))
}

pub(crate) async fn lock(args: LockArgs, config: &Path) -> anyhow::Result<()> {
    let (entries, path, old) = current(config).await?;
    let mut lock = old.unwrap_or(Lockfile {
        version: LOCK_VERSION,
        ..Default::default()
    });
    if args.accept.is_empty() {
        lock.plugins = entries;
    } else {
        for name in &args.accept {
            let entry = entries
                .get(name)
                .with_context(|| format!("no loaded plugin named `{name}`"))?;
            if let Some(before) = lock.plugins.get(name) {
                eprintln!("{name}: {}", before.diff(entry));
            }
            lock.plugins.insert(name.clone(), entry.clone());
        }
    }
    lock.write(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "locked {} plugin(s) in {}",
        lock.plugins.len(),
        path.display()
    );
    Ok(())
}

pub(crate) async fn diff(args: DiffArgs, config: &Path) -> anyhow::Result<()> {
    let (entries, path, lock) = current(config).await?;
    let lock = lock.unwrap_or_default();
    let mut report = serde_json::Map::new();
    for (name, now) in &entries {
        let line = match lock.plugins.get(name) {
            None => serde_json::json!({"status": "not locked", "digest": now.digest}),
            Some(old) if old.digest == now.digest => serde_json::json!({"status": "unchanged"}),
            Some(old) => {
                let d = old.diff(now);
                serde_json::json!({"status": "changed", "from": old.digest, "to": now.digest, "summary": d.to_string(), "changes": d})
            }
        };
        report.insert(name.clone(), line);
    }
    for name in lock.plugins.keys().filter(|n| !entries.contains_key(*n)) {
        report.insert(name.clone(), serde_json::json!({"status": "not loaded"}));
    }
    if args.json {
        println!("{}", serde_json::Value::Object(report));
        return Ok(());
    }
    println!("against {}:", path.display());
    for (name, r) in &report {
        let status = r["status"].as_str().unwrap_or_default();
        match r.get("summary").and_then(|s| s.as_str()) {
            Some(summary) => println!(
                "{name}: {} -> {}: {summary}",
                r["from"].as_str().unwrap_or_default(),
                r["to"].as_str().unwrap_or_default()
            ),
            None => println!("{name}: {status}"),
        }
    }
    Ok(())
}

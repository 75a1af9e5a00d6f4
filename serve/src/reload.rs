//! Reload: on SIGHUP, or when the configuration file or a plugin's
//! component changes (by digest), a new host is loaded from the
//! configuration and replaces the old one; clients are told when the tool
//! list changed. A configuration that fails to load leaves the old host in
//! place.

use crate::{ServeError, Shared};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warden::{Config, Host};

/// How often files are checked.
const POLL: Duration = Duration::from_millis(500);

/// What the files looked like: path -> (length, modified, digest).
type Fingerprint = BTreeMap<PathBuf, Option<(u64, std::time::SystemTime, String)>>;

fn files(config_path: &Path) -> Vec<PathBuf> {
    let mut out = vec![config_path.to_path_buf()];
    if let Ok(config) = Config::from_file(config_path) {
        out.extend(
            config
                .plugins
                .values()
                // A pulled component changes by SIGHUP (its tag is asked again).
                .filter(|p| Config::oci_component(p).is_none())
                .map(|p| config.resolve_path(&p.component)),
        );
        // `warden lock --accept` lets a held version in.
        out.extend(config.lock_path());
    }
    out
}

/// Fingerprints `paths`, reusing `old` digests of files whose length and
/// modification time did not change.
fn fingerprint(paths: &[PathBuf], old: &Fingerprint) -> Fingerprint {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            let entry = meta.and_then(|(len, modified)| {
                if let Some(Some((l, m, d))) = old.get(p) {
                    if *l == len && *m == modified {
                        return Some((len, modified, d.clone()));
                    }
                }
                let bytes = std::fs::read(p).ok()?;
                Some((len, modified, warden::digest(&bytes)))
            });
            (p.clone(), entry)
        })
        .collect()
}

fn same_digests(a: &Fingerprint, b: &Fingerprint) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((pa, ea), (pb, eb))| {
            pa == pb && ea.as_ref().map(|e| &e.2) == eb.as_ref().map(|e| &e.2)
        })
}

/// What clients see of the tool list.
fn tool_list(host: &Host) -> String {
    serde_json::to_string(&crate::tools::list(host)).unwrap_or_default()
}

/// Loads the configuration anew and swaps the host in; `Ok(true)` when
/// the tool list changed (clients were notified).
pub(crate) async fn reload(shared: &Arc<Shared>) -> Result<bool, ServeError> {
    let Some(path) = &shared.config_path else {
        return Ok(false);
    };
    let started = std::time::Instant::now();
    // A broken `[serve]` table keeps the old configuration too.
    let mut config = Config::from_file(path)?;
    crate::ServeSettings::from_config(&config)?;
    crate::as_replica(&mut config, &shared.replica);
    let host = Host::new(config).await?;
    if let Some((plugin, why)) = host.held_updates().first() {
        // The old host keeps serving every plugin as it was accepted.
        let why = why.clone();
        let plugin = plugin.clone();
        host.shutdown().await;
        return Err(ServeError::UpdateHeld { plugin, why });
    }
    let before = tool_list(&shared.host());
    let after = tool_list(&host);
    shared.observe(&host);
    let old = std::mem::replace(
        &mut *shared.host.write().unwrap_or_else(|e| e.into_inner()),
        host,
    );
    shared.swaps.send_modify(|n| *n += 1);
    let changed = before != after;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        tools_changed = changed,
        "configuration reloaded"
    );
    if changed {
        shared.tools_changed();
    }
    // Calls already running on the old host finish there; then its
    // sessions end (MCP servers see DELETE) and its log is flushed.
    let grace = Duration::from_millis(shared.settings.shutdown_grace_ms);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        old.shutdown().await;
    });
    Ok(changed)
}

/// Reloads on SIGHUP and (with `files`) on file changes, until shutdown.
pub(crate) async fn watch(shared: Arc<Shared>, files_too: bool) {
    let Some(path) = shared.config_path.clone() else {
        return;
    };
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut stopping = shared.stopping.subscribe();
    let mut seen = fingerprint(&files(&path), &BTreeMap::new());
    loop {
        let signalled = tokio::select! {
            _ = tokio::time::sleep(POLL), if files_too => false,
            Some(_) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            _ = crate::stopped(&mut stopping) => return,
        };
        let paths = files(&path);
        let now = fingerprint(&paths, &seen);
        if !signalled && same_digests(&now, &seen) {
            continue;
        }
        if signalled {
            tracing::info!("SIGHUP: reloading {}", path.display());
        } else {
            tracing::info!(
                "{} or a plugin's component changed: reloading",
                path.display()
            );
        }
        seen = now;
        if let Err(e) = reload(&shared).await {
            tracing::error!("reload failed; the previous configuration stays in use: {e}");
        }
    }
}

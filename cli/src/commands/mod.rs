//! The subcommands, one file each: its arguments (a `#[derive(Args)]`
//! struct) and its `run`.
//!
//! - without a host: `audit`, `schema`, `check`, `cache`, `new`, `sign`;
//! - loading a host from the configuration: `list`, `call`, `export`,
//!   `import`, `inspect` (through [`load`] or [`ready`]) and `serve`.

pub(crate) mod audit;
pub(crate) mod cache;
pub(crate) mod call;
pub(crate) mod check;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod inspect;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod new;
pub(crate) mod registry;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod sign;

use crate::approver::TerminalApprover;
use std::path::Path;
use std::sync::Arc;
use warden::{Config, Host};

/// `caps` as JSON, each stale one with `"stale-since"` (RFC 3339): its
/// source did not answer and it is served from the source's last answer.
pub(crate) fn with_staleness(
    caps: &[Arc<warden::CapabilityInfo>],
    stale: &std::collections::HashMap<String, std::time::SystemTime>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    caps.iter()
        .map(|c| {
            let mut v = serde_json::to_value(&**c)?;
            if let (Some(since), Some(o)) = (stale.get(&c.id), v.as_object_mut()) {
                let since = warden::time::rfc3339(*since, false);
                o.insert("stale-since".into(), since.into());
            }
            Ok(v)
        })
        .collect()
}

/// Each stale discovery source, one line: plugin, source, since, why.
pub(crate) async fn stale_sources(host: &Host) -> Vec<String> {
    let mut lines = Vec::new();
    for p in host.plugins() {
        for (source, since, why) in host.stale_sources(&p.name).await.unwrap_or_default() {
            let since = warden::time::rfc3339(since, false);
            lines.push(format!(
                "  {}: source `{source}` since {since}: {why}",
                p.name
            ));
        }
    }
    lines
}

/// The host of the configuration at `config`, made [`ready`].
pub(crate) async fn load(config: &Path) -> anyhow::Result<Host> {
    Ok(ready(Host::new(read_config(config)?).await?))
}

/// The configuration at `path`, with its `[serve]` table checked too: every
/// command refuses a configuration `warden serve` would refuse.
pub(crate) fn read_config(path: &Path) -> anyhow::Result<Config> {
    let config = Config::from_file(path)?;
    warden_serve::ServeSettings::from_config(&config)?;
    Ok(config)
}

/// A host made ready for a one-shot command: `approve` rules ask on the
/// terminal, and the plugins refused at load are named (the others are
/// served).
pub(crate) fn ready(host: Host) -> Host {
    host.set_approver(Some(Arc::new(TerminalApprover)));
    for (name, why) in host.refused_plugins() {
        eprintln!("error: plugin `{name}` was refused at load (the others are served): {why}");
    }
    host
}

//! `warden list`: every capability of every loaded plugin, as a table or
//! JSON.

use clap::Args;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use warden::{CapabilityInfo, Host};

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: ListArgs, config: &Path) -> anyhow::Result<()> {
    let host = super::load(config).await?;
    let caps = host.capabilities();
    let stale = host.stale_capabilities();
    if args.json {
        let listed = super::with_staleness(&caps, &stale)?;
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else if caps.is_empty() {
        say_why_empty(&host, config).await;
    } else {
        print_table(&caps, &stale)?;
        let pending = pending_sources(&host).await;
        if !pending.is_empty() {
            eprintln!(
                "note: these sources could not be listed, so their capabilities are missing:\n{}",
                pending.join("\n")
            );
        }
        let stale = super::stale_sources(&host).await;
        if !stale.is_empty() {
            eprintln!(
                "note: these sources did not answer; their capabilities (marked stale) are served from their last answer:\n{}",
                stale.join("\n")
            );
        }
    }
    // What is listed is served; the exit code says not all of it is.
    let refused = host.refused_plugins().len();
    if refused > 0 {
        anyhow::bail!("{refused} plugin(s) refused at load (see above; [host] strict-load = true refuses to start instead)");
    }
    Ok(())
}

/// Why there is no capability to list: no plugins, none declared, or
/// sources that could not be listed.
async fn say_why_empty(host: &Host, config: &Path) {
    let pending = pending_sources(host).await;
    if host.plugins().is_empty() {
        println!(
            "no capabilities (no plugins configured in {})",
            config.display()
        );
    } else if pending.is_empty() {
        println!(
            "no capabilities (the plugins of {} declare none)",
            config.display()
        );
    } else {
        println!(
            "no capabilities yet; these sources could not be listed:\n{}",
            pending.join("\n")
        );
    }
}

/// Discovery sources that could not be listed, one line each.
async fn pending_sources(host: &Host) -> Vec<String> {
    let mut pending = Vec::new();
    for p in host.plugins() {
        for (source, why) in host.pending_sources(&p.name).await.unwrap_or_default() {
            pending.push(format!("  {}: source `{source}`: {why}", p.name));
        }
    }
    pending
}

/// The capability table on stdout. What a plugin wrote is shown as text
/// only (see [`shown`]), and a closed stdout (`warden list | head`) ends the
/// listing quietly.
fn print_table(
    caps: &[Arc<CapabilityInfo>],
    stale: &HashMap<String, SystemTime>,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let w_id = caps.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
    let w_pl = caps
        .iter()
        .map(|c| c.plugin.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(6)
        .max(6);
    let mut table = String::new();
    let _ = writeln!(table, "{:w_id$}  {:w_pl$}  DESCRIPTION", "ID", "PLUGIN");
    for c in caps {
        let text = if c.description.is_empty() {
            &c.name
        } else {
            &c.description
        };
        let plugin = c.plugin.as_deref().unwrap_or("-");
        let mark = if stale.contains_key(&c.id) {
            "(stale) "
        } else {
            ""
        };
        let _ = writeln!(
            table,
            "{:w_id$}  {:w_pl$}  {mark}{}",
            c.id,
            plugin,
            shown(text, 160)
        );
    }
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, table.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A plugin's text as one line: its first line, control characters
/// escaped, cut to `max` characters (`…` says something was cut).
fn shown(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out: String = line
        .chars()
        .take(max)
        .flat_map(char::escape_default)
        .collect();
    if line.chars().count() > max || s.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

//! `warden inspect`: a plugin's descriptors, grants and limits.

use clap::Args;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use warden::{CapabilityInfo, PluginInfo};

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// Plugin name from the configuration.
    plugin: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: InspectArgs, config: &Path) -> anyhow::Result<()> {
    let host = super::load(config).await?;
    let info = host.plugin(&args.plugin)?;
    let caps: Vec<_> = host
        .capabilities()
        .into_iter()
        .filter(|c| c.plugin.as_deref() == Some(args.plugin.as_str()))
        .collect();
    let stale = host.stale_capabilities();
    if args.json {
        let caps = super::with_staleness(&caps, &stale)?;
        let v = serde_json::json!({ "plugin": info, "capabilities": caps });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_plugin(info);
        print_grants(&info.grants);
        print_sources(&host, &args.plugin).await;
        print_capabilities(&caps, &stale);
    }
    Ok(())
}

/// The plugin: its provider, component and limits.
fn print_plugin(info: &PluginInfo) {
    println!("plugin      {}", info.name);
    println!(
        "provider    {} {} - {}",
        info.provider, info.version, info.description
    );
    if info.source != info.component {
        println!("source      {}", info.source);
    }
    println!("component   {}", info.component);
    if let Some(signer) = &info.signer {
        println!("signed by   {signer}");
    }
    println!("world       {}", info.world);
    println!("imports     {}", info.imports.join(", "));
    println!("digest      {}", info.digest);
    println!(
        "instances   {:?}, at most {} at once",
        info.instances, info.max_instances
    );
    println!(
        "limits      fuel {} per call, memory {} bytes, timeout {} ms",
        info.limits.fuel, info.limits.memory, info.limits.timeout_ms
    );
    println!(
        "http        {} requests and {} bytes per call, {} bytes per response, {} ms per request",
        info.limits.max_requests,
        info.limits.max_egress_bytes,
        info.limits.max_response_bytes,
        info.limits.request_timeout_ms
    );
}

/// The plugin's grants, `none` for an empty one.
fn print_grants(g: &warden::Grants) {
    let none = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("grants.env  {}", none(&g.env));
    let dirs: Vec<String> = g
        .dirs
        .iter()
        .map(|d| {
            format!(
                "{} -> {} ({})",
                d.host.display(),
                d.guest,
                if d.mode == warden::DirMode::ReadWrite {
                    "rw"
                } else {
                    "ro"
                }
            )
        })
        .collect();
    println!("grants.dirs {}", none(&dirs));
    println!("grants.net  {}", none(&g.network));
    let secrets: Vec<String> = g
        .secrets
        .iter()
        .map(|s| format!("{} -> {}", s.name, s.hosts.join(" ")))
        .collect();
    println!("grants.sec  {}", none(&secrets));
}

/// The plugin's discovery sources that are not current: stale (served
/// from their last answer) or missing.
async fn print_sources(host: &warden::Host, plugin: &str) {
    for (source, since, why) in host.stale_sources(plugin).await.unwrap_or_default() {
        let since = warden::time::rfc3339(since, false);
        println!("source      {source}: stale since {since} ({why})");
    }
    for (source, why) in host.pending_sources(plugin).await.unwrap_or_default() {
        println!("source      {source}: not listed ({why})");
    }
}

/// The plugin's capabilities, each with its schemas and metadata.
fn print_capabilities(caps: &[Arc<CapabilityInfo>], stale: &HashMap<String, SystemTime>) {
    println!("capabilities:");
    for c in caps {
        println!("  {} ({} {})", c.id, c.name, c.version);
        if let Some(since) = stale.get(&c.id) {
            let since = warden::time::rfc3339(*since, false);
            println!(
                "    stale   since {since}: its source did not answer; served from its last answer"
            );
        }
        for note in &c.schema_notes {
            println!("    schema note: {note}");
        }
        if !c.description.is_empty() {
            println!("    {}", c.description);
        }
        println!("    input   {}", c.input_schema);
        println!("    output  {}", c.output_schema);
        for (k, v) in &c.flat_metadata {
            println!("    meta    {k} = {v}");
        }
        if !c.permissions.is_empty() {
            println!("    perms   {}", c.permissions.join(", "));
        }
        if !c.effects.is_empty() {
            println!("    effects {}", c.effects.join(", "));
        }
    }
}

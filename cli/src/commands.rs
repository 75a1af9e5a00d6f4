//! The subcommands that load a host from the configuration: `list`,
//! `call`, `export`, `import`, `inspect`.

use crate::approver::TerminalApprover;
use crate::{Cli, Command};
use anyhow::Context;
use std::io::Read;
use std::path::{Path, PathBuf};
use warden::Host;

/// A command stopped by a signal; exits 128 + the signal's number.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {0}")]
pub(crate) struct Interrupted(pub(crate) &'static str);

impl Interrupted {
    pub(crate) fn exit_code(&self) -> u8 {
        match self.0 {
            "SIGINT" => 130,
            _ => 143,
        }
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

/// `warden list`: the capabilities as a table or JSON.
async fn list(host: &Host, cli: &Cli, json: bool) -> anyhow::Result<()> {
    let caps = host.capabilities();
    if json {
        println!("{}", serde_json::to_string_pretty(&caps)?);
    } else if caps.is_empty() {
        let pending = pending_sources(host).await;
        if host.plugins().is_empty() {
            println!(
                "no capabilities (no plugins configured in {})",
                cli.config.display()
            );
        } else if pending.is_empty() {
            println!(
                "no capabilities (the plugins of {} declare none)",
                cli.config.display()
            );
        } else {
            println!(
                "no capabilities yet; these sources could not be listed:\n{}",
                pending.join("\n")
            );
        }
    } else {
        print_table(&caps)?;
        let pending = pending_sources(host).await;
        if !pending.is_empty() {
            eprintln!(
                "note: these sources could not be listed, so their capabilities are missing:\n{}",
                pending.join("\n")
            );
        }
    }
    Ok(())
}

/// The capability table on stdout. What a plugin wrote is shown as text
/// only (control characters escaped, descriptions cut to one line of 160
/// characters), and a closed stdout (`warden list | head`) ends the listing
/// quietly.
fn print_table(caps: &[std::sync::Arc<warden::CapabilityInfo>]) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let shown = |s: &str, max: usize| -> String {
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
    };
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
        let _ = writeln!(
            table,
            "{:w_id$}  {:w_pl$}  {}",
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

/// Says which plugins were refused at load (the others are served).
fn report_refused(host: &Host) {
    for (name, why) in host.refused_plugins() {
        eprintln!("error: plugin `{name}` was refused at load (the others are served): {why}");
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    // A call needs only the plugins (and sources) that can serve its id.
    let host = match &cli.command {
        Command::Call { capability, .. } => {
            Host::from_config_file_for_call(&cli.config, capability).await?
        }
        _ => Host::from_config_file(&cli.config).await?,
    };
    host.set_approver(Some(std::sync::Arc::new(TerminalApprover)));
    report_refused(&host);
    match cli.command {
        Command::List { json } => {
            list(&host, &cli, json).await?;
            // What is listed is served; the exit code says not all of it is.
            let refused = host.refused_plugins().len();
            if refused > 0 {
                anyhow::bail!("{refused} plugin(s) refused at load (see above; [host] strict-load = true refuses to start instead)");
            }
        }
        Command::Call {
            capability,
            input,
            session,
        } => call(&host, &capability, input.as_deref(), session.as_deref()).await?,
        Command::Export { rtfs, json } => export(&host, rtfs, json)?,
        Command::Import { path } => import(&host, &path)?,
        Command::Schema { .. }
        | Command::Audit { .. }
        | Command::Serve { .. }
        | Command::Check { .. }
        | Command::New { .. }
        | Command::Cache { .. } => {
            unreachable!("handled before loading the host")
        }
        Command::Inspect { plugin, json } => inspect(&host, &plugin, json)?,
    }
    Ok(())
}

/// `warden call`: the input from the command line or stdin (`-`), the
/// result as JSON on stdout; a signal stops the call.
async fn call(
    host: &Host,
    capability: &str,
    input: Option<&str>,
    session: Option<&str>,
) -> anyhow::Result<()> {
    let text = match input {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading input from stdin")?;
            s
        }
        Some(s) => s.to_string(),
    };
    // Not an `Error`: bad JSON on the command line is a usage error (exit 2).
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("input for `{capability}` is not valid JSON: {e}"))?;
    let call = host.call_in_session(capability, value, session);
    let out = tokio::select! {
        out = call => out,
        // The call is dropped: it gets its end record (`cancelled`),
        // its remote state is released, and the log is flushed.
        signal = warden_serve::stop_signal() => {
            eprintln!("warden: {signal}: stopping the call to `{capability}`");
            host.shutdown().await;
            return Err(Interrupted(signal).into());
        }
    };
    // Sessions end with the process: their servers see them closed.
    host.shutdown().await;
    println!("{}", serde_json::to_string_pretty(&out?)?);
    Ok(())
}

/// `warden export`: RTFS files into a directory, or one JSON file.
fn export(host: &Host, rtfs: Option<PathBuf>, json: Option<PathBuf>) -> anyhow::Result<()> {
    let report = match (rtfs, json) {
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

/// `warden import`: each capability registered, updated or skipped, then
/// the counts.
fn import(host: &Host, path: &Path) -> anyhow::Result<()> {
    let report = host.import(path)?;
    for id in &report.registered {
        println!("registered {id}");
    }
    for id in &report.updated {
        println!("updated    {id}");
    }
    for (id, why) in &report.skipped {
        println!("skipped    {id}: {why}");
    }
    match host.store_dir() {
        Some(dir) => println!(
            "{} registered, {} updated, {} skipped (store: {})",
            report.registered.len(),
            report.updated.len(),
            report.skipped.len(),
            dir.display()
        ),
        None => println!(
            "{} registered, {} updated, {} skipped",
            report.registered.len(),
            report.updated.len(),
            report.skipped.len()
        ),
    }
    Ok(())
}

/// `warden inspect`: a plugin and its capabilities, as text or JSON.
fn inspect(host: &Host, plugin: &str, json: bool) -> anyhow::Result<()> {
    let info = host.plugin(plugin)?;
    let caps: Vec<_> = host
        .capabilities()
        .into_iter()
        .filter(|c| c.plugin.as_deref() == Some(plugin))
        .collect();
    if json {
        let v = serde_json::json!({ "plugin": info, "capabilities": caps });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_plugin(info);
        print_capabilities(&caps);
    }
    Ok(())
}

/// A plugin as `warden inspect` shows it: component, limits, grants.
fn print_plugin(info: &warden::PluginInfo) {
    println!("plugin      {}", info.name);
    println!(
        "provider    {} {} - {}",
        info.provider, info.version, info.description
    );
    println!("component   {}", info.component);
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
    let g = &info.grants;
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

/// A plugin's capabilities as `warden inspect` shows them.
fn print_capabilities(caps: &[std::sync::Arc<warden::CapabilityInfo>]) {
    println!("capabilities:");
    for c in caps {
        println!("  {} ({} {})", c.id, c.name, c.version);
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

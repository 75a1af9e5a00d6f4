//! `warden`: list, call and inspect sandboxed capability providers.
//!
//! Exit codes: 0 ok, 2 usage or configuration error, 3 denied by policy,
//! 4 capability error (limits included).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use warden::{Error, Host};

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Run capability providers as sandboxed WebAssembly components"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "warden.toml",
        value_name = "FILE"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every capability of every loaded plugin.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call a capability; prints its JSON result on stdout.
    Call {
        /// Capability id, e.g. `text.case`.
        capability: String,
        /// Input as JSON, or `-` to read it from stdin. Default: `{}`.
        input: Option<String>,
    },
    /// Show a plugin's descriptors, grants and limits.
    Inspect {
        /// Plugin name from the configuration.
        plugin: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,guest=info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match e.downcast_ref::<Error>() {
                Some(err) => err.exit_code(),
                None => 2,
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let host = Host::from_config_file(&cli.config).await?;
    match cli.command {
        Command::List { json } => {
            let caps = host.capabilities();
            if json {
                println!("{}", serde_json::to_string_pretty(&caps)?);
            } else if caps.is_empty() {
                println!(
                    "no capabilities (no plugins configured in {})",
                    cli.config.display()
                );
            } else {
                let w_id = caps.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
                let w_pl = caps
                    .iter()
                    .map(|c| c.plugin.len())
                    .max()
                    .unwrap_or(6)
                    .max(6);
                println!("{:w_id$}  {:w_pl$}  DESCRIPTION", "ID", "PLUGIN");
                for c in caps {
                    let text = if c.description.is_empty() {
                        &c.name
                    } else {
                        &c.description
                    };
                    println!("{:w_id$}  {:w_pl$}  {}", c.id, c.plugin, text);
                }
            }
        }
        Command::Call { capability, input } => {
            let text = match input.as_deref() {
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
            let out = host.call(&capability, value).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Inspect { plugin, json } => {
            let info = host.plugin(&plugin)?;
            let caps: Vec<_> = host
                .capabilities()
                .into_iter()
                .filter(|c| c.plugin == plugin)
                .collect();
            if json {
                let v = serde_json::json!({ "plugin": info, "capabilities": caps });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("plugin      {}", info.name);
                println!(
                    "provider    {} {} - {}",
                    info.provider, info.version, info.description
                );
                println!("component   {}", info.component);
                println!("digest      {}", info.digest);
                println!(
                    "instances   {:?}, at most {} at once",
                    info.instances, info.max_instances
                );
                println!(
                    "limits      fuel {} per call, memory {} bytes, timeout {} ms",
                    info.limits.fuel, info.limits.memory, info.limits.timeout_ms
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
                println!("capabilities:");
                for c in caps {
                    println!("  {} ({} {})", c.id, c.name, c.version);
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
        }
    }
    Ok(())
}

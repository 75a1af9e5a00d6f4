//! `warden`: list, call and inspect sandboxed capability providers.
//!
//! Exit codes: 0 ok, 2 usage or configuration error, 3 denied by policy,
//! 4 capability error (limits included), 130 or 143 when `call` is stopped by
//! SIGINT or SIGTERM (the call is ended and audited, the log flushed).

mod approver;
mod audit;
mod commands;
mod component;
mod new;
mod schema;
mod serve;

use audit::audit_command;
use clap::{Parser, Subcommand};
use commands::run;
use schema::schema_command;
use std::path::PathBuf;
use std::process::ExitCode;
use warden::Error;

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
enum AuditCommand {
    /// Check that FILE... (oldest first: rotated files, then the current
    /// one) form one intact hash chain. Prints OK, or names the first bad
    /// record and exits 1.
    Verify {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the last records of the audit log (FILE, or the `[audit] path`
    /// of the configuration).
    Tail {
        /// The log file.
        file: Option<PathBuf>,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Keep printing records as they are appended (follows rotation).
        #[arg(short, long)]
        follow: bool,
        /// Print the raw JSON records.
        #[arg(long)]
        json: bool,
    },
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
        /// Session key for a capability that asks for a session (separate
        /// keys get separate sessions). Default: `default`.
        #[arg(long, value_name = "KEY")]
        session: Option<String>,
    },
    /// Export every serializable capability as RTFS files or one JSON file.
    #[command(group = clap::ArgGroup::new("format").required(true))]
    Export {
        /// Write one `.rtfs` snapshot file per capability into DIR.
        #[arg(long, value_name = "DIR", group = "format")]
        rtfs: Option<PathBuf>,
        /// Write one JSON snapshot to FILE.
        #[arg(long, value_name = "FILE", group = "format")]
        json: Option<PathBuf>,
    },
    /// Import capabilities from a snapshot file or a directory of them into
    /// the marketplace store; reports what was registered and what was skipped.
    Import {
        /// A `.rtfs` or `.json` snapshot, or a directory of them.
        path: PathBuf,
    },
    /// Check or follow the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with RTFS type-expression schemas.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Serve every capability as an MCP tool, to agents: over stdio (for a
    /// client that launches `warden serve --stdio`) and/or streamable HTTP
    /// at /mcp. Speaks MCP 2026-07-28 and 2025-11-25. Reloads when the
    /// configuration or a component changes, or on SIGHUP; stops gracefully
    /// on SIGTERM/SIGINT.
    #[command(group = clap::ArgGroup::new("transport").required(true).multiple(true))]
    Serve {
        /// Serve one client on stdin/stdout.
        #[arg(long, group = "transport")]
        stdio: bool,
        /// Serve streamable HTTP on ADDR (a port alone means 127.0.0.1).
        #[arg(long, value_name = "ADDR", group = "transport", num_args = 0..=1,
              default_missing_value = "127.0.0.1:8700", value_parser = serve::parse_addr)]
        http: Option<std::net::SocketAddr>,
        /// Do not reload when the configuration or a component changes
        /// (SIGHUP still reloads).
        #[arg(long)]
        no_watch: bool,
    },
    /// Say what a component file is, without compiling it: the Warden world
    /// it implements, its imports and whether this host links each. Exits 0
    /// when it can be loaded, 2 when not.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a minimal working plugin: its sources, a build script and a
    /// `warden.toml` that loads it.
    New {
        /// The plugin's name (lower-case letters, digits, `-`); its
        /// capability is `NAME.echo`.
        name: String,
        /// The language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: new::Lang,
        /// Where to write it (default: ./NAME; must be empty or absent).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The warden-sdk crate to depend on (Rust; default: the SDK of the
        /// checkout this CLI was built from, else crates.io).
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// List or clear the compiled-component cache (`[host] cache-dir`,
    /// `cache-max-bytes` of the configuration if there is one).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
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
    Clear,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Check a JSON value against a schema: prints OK, or the error path (exit 4).
    Check {
        /// The schema, e.g. `[:map [:name :string]]`.
        schema: String,
        /// The JSON value, or `-` for stdin.
        json: String,
    },
    /// Print the JSON Schema equivalent of a schema.
    ToJson {
        /// The schema.
        schema: String,
    },
    /// Convert a JSON Schema (text, or `-` for stdin) into a schema; losses go to stderr.
    FromJson {
        /// The JSON Schema.
        json: String,
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
    // A server says what it does (reloads, sessions ended); one-shot
    // commands only warn. Both say when a component is being compiled (slow
    // on a first load).
    let default_filter = match cli.command {
        Command::Serve { .. } => "warn,guest=info,warden_serve=info,warden::compile=info",
        _ => "warn,guest=info,warden::compile=info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
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
    if let Command::Audit { command } = cli.command {
        return match audit_command(command, &cli.config) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Command::Check { file, json } = &cli.command {
        return component::check(file, *json);
    }
    if let Command::New {
        name,
        lang,
        dir,
        sdk,
    } = &cli.command
    {
        return match new::new(name, *lang, dir.clone(), sdk.clone()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Command::Cache { command } = &cli.command {
        return component::cache(command, &cli.config);
    }
    if let Command::Schema { command } = cli.command {
        return match schema_command(command) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    // Plugins' caps on sockets and files must fit under the open-file
    // limit with the host's reserve; a server raises it as far as allowed.
    warden::raise_open_file_limit();
    let result = match cli.command {
        Command::Serve {
            stdio,
            http,
            no_watch,
        } => runtime.block_on(serve::serve(&cli.config, stdio, http, !no_watch)),
        _ => runtime.block_on(run(cli)),
    };
    // A host thread still blocked in a guest's file or socket operation
    // (past its call's time limit) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(stopped) = e.downcast_ref::<commands::Interrupted>() {
                return ExitCode::from(stopped.exit_code());
            }
            let code = match e.downcast_ref::<Error>() {
                Some(err) => err.exit_code(),
                None => 2,
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

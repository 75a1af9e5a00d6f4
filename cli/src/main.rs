//! `warden`: list, call and inspect sandboxed capability providers.
//!
//! Exit codes: 0 ok, 2 usage or configuration error, 3 denied by policy,
//! 4 capability error (limits included), 130 or 143 when `call` is stopped by
//! SIGINT or SIGTERM (the call is ended and audited, the log flushed).
//!
//! This file holds the top-level parser and the dispatch; each subcommand,
//! with its arguments, is a file of `commands/`.

mod approver;
mod commands;
mod exit;

use clap::{Parser, Subcommand};
use commands::{
    audit, cache, call, check, export, import, inspect, list, lock, new, registry, schema, serve,
    sign,
};
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

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
    List(list::ListArgs),
    /// Call a capability; prints its JSON result on stdout.
    Call(call::CallArgs),
    /// Export every serializable capability as RTFS files or one JSON file.
    Export(export::ExportArgs),
    /// Import capabilities from a snapshot file or a directory of them into
    /// the marketplace store; reports what was registered and what was skipped.
    Import(import::ImportArgs),
    /// Check or follow the audit log.
    Audit(audit::AuditArgs),
    /// Work with RTFS type-expression schemas.
    Schema(schema::SchemaArgs),
    /// Serve every capability as an MCP tool, to agents: over stdio (for a
    /// client that launches `warden serve --stdio`) and/or streamable HTTP
    /// at /mcp. Speaks MCP 2026-07-28 and 2025-11-25. Reloads when the
    /// configuration or a component changes, or on SIGHUP; stops gracefully
    /// on SIGTERM/SIGINT.
    Serve(serve::ServeArgs),
    /// Say what a component file is, without compiling it: the Warden world
    /// it implements, its imports and whether this host links each. Exits 0
    /// when it can be loaded, 2 when not.
    Check(check::CheckArgs),
    /// Write a minimal working plugin: its sources, a build script and a
    /// `warden.toml` that loads it.
    New(new::NewArgs),
    /// List or clear the compiled-component cache (`[host] cache-dir`,
    /// `cache-max-bytes` of the configuration if there is one).
    Cache(cache::CacheArgs),
    /// Show a plugin's descriptors, grants and limits.
    Inspect(inspect::InspectArgs),
    /// Sign a component: writes FILE.sig beside it, or, for an `oci://`
    /// reference, adds a cosign signature to its registry. Hosts check
    /// either against `verify.keys` and `[host] trusted-keys`.
    Sign(sign::SignArgs),
    /// Record each plugin as it loads now in `warden.lock` (or, with
    /// --accept PLUGIN, accept that plugin's new version).
    Lock(lock::LockArgs),
    /// Show what each plugin as configured now changes against
    /// `warden.lock`: capabilities added or removed, schemas changed, new
    /// effects, imports and grants.
    Diff(lock::DiffArgs),
    /// Push a component to an OCI registry (the CNCF Wasm artifact
    /// layout); prints the reference pinned to its digest.
    Push(registry::PushArgs),
    /// Pull a component from an OCI registry into the content store (and
    /// a file with --output); prints the reference pinned to its digest.
    Pull(registry::PullArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(&cli.command);
    let config = cli.config;
    match cli.command {
        // No host: these need no runtime either.
        Command::Audit(args) => exit::usage_errors(audit::run(args, &config)),
        Command::Schema(args) => exit::usage_errors(schema::run(args)),
        Command::New(args) => exit::usage_errors(new::run(args).map(|()| ExitCode::SUCCESS)),
        Command::Sign(args) => match args
            .file
            .to_str()
            .filter(|f| warden::oci::OciRef::is_oci(f))
        {
            Some(r) => on_runtime(registry::sign(r, &args.key, &config)),
            None => exit::usage_errors(sign::run(args).map(|()| ExitCode::SUCCESS)),
        },
        Command::Lock(args) => on_runtime(lock::lock(args, &config)),
        Command::Diff(args) => on_runtime(lock::diff(args, &config)),
        Command::Push(args) => on_runtime(registry::push(args, &config)),
        Command::Pull(args) => on_runtime(registry::pull(args, &config)),
        Command::Check(args) => check::run(&args),
        Command::Cache(args) => cache::run(&args, &config),
        // A host, loaded from the configuration.
        Command::Serve(args) => on_runtime(serve::run(args, &config)),
        Command::List(args) => on_runtime(list::run(args, &config)),
        Command::Call(args) => on_runtime(call::run(args, &config)),
        Command::Export(args) => on_runtime(export::run(args, &config)),
        Command::Import(args) => on_runtime(import::run(args, &config)),
        Command::Inspect(args) => on_runtime(inspect::run(args, &config)),
    }
}

/// Logs go to stderr. A server says what it does (reloads, sessions
/// ended); one-shot commands only warn. Both say when a component is being
/// compiled (slow on a first load).
fn init_logging(command: &Command) {
    let default_filter = match command {
        Command::Serve(_) => {
            "warn,guest=info,warden_serve=info,warden::compile=info,warden::pull=info"
        }
        _ => "warn,guest=info,warden::compile=info,warden::pull=info",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
}

/// Runs a command that loads a host on a multi-threaded runtime; its
/// error becomes the exit code (see [`exit::from_result`]).
fn on_runtime(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
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
    // Plugins' caps on sockets and files must fit under the open-file
    // limit with the host's reserve; a server raises it as far as allowed.
    warden::raise_open_file_limit();
    let result = runtime.block_on(command);
    // A host thread still blocked in a guest's file or socket operation
    // (past its call's time limit) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    exit::from_result(result)
}

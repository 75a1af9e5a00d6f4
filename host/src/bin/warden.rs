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

fn read_arg(text: &str) -> anyhow::Result<String> {
    if text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        Ok(s)
    } else {
        Ok(text.to_string())
    }
}

/// `warden schema ...` needs no configuration.
fn schema_command(cmd: SchemaCommand) -> anyhow::Result<ExitCode> {
    use warden::TypeExpr;
    match cmd {
        SchemaCommand::Check { schema, json } => {
            let ty = TypeExpr::parse(&schema)?;
            let value: serde_json::Value = serde_json::from_str(&read_arg(&json)?)
                .map_err(|e| anyhow::anyhow!("the value is not valid JSON: {e}"))?;
            match ty.validate(&value) {
                Ok(()) => {
                    println!("OK");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{e}");
                    Ok(ExitCode::from(4))
                }
            }
        }
        SchemaCommand::ToJson { schema } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&TypeExpr::parse(&schema)?.to_json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::FromJson { json } => {
            let value: serde_json::Value = serde_json::from_str(&read_arg(&json)?)
                .map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
            let (ty, notes) = TypeExpr::from_json_schema(&value);
            for n in notes {
                eprintln!("note: {n}");
            }
            println!("{ty}");
            Ok(ExitCode::SUCCESS)
        }
    }
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
    if let Command::Audit { command } = cli.command {
        return match audit_command(command, &cli.config) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
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
    host.set_approver(Some(std::sync::Arc::new(TerminalApprover)));
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
                    .map(|c| c.plugin.as_deref().map_or(1, str::len))
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
                    println!(
                        "{:w_id$}  {:w_pl$}  {}",
                        c.id,
                        c.plugin.as_deref().unwrap_or("-"),
                        text
                    );
                }
            }
        }
        Command::Call {
            capability,
            input,
            session,
        } => {
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
            let out = host
                .call_in_session(&capability, value, session.as_deref())
                .await;
            // Sessions end with the process: their servers see them closed.
            host.shutdown().await;
            println!("{}", serde_json::to_string_pretty(&out?)?);
        }
        Command::Export { rtfs, json } => {
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
        }
        Command::Import { path } => {
            let report = host.import(&path)?;
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
        }
        Command::Schema { .. } | Command::Audit { .. } => {
            unreachable!("handled before loading the host")
        }
        Command::Inspect { plugin, json } => {
            let info = host.plugin(&plugin)?;
            let caps: Vec<_> = host
                .capabilities()
                .into_iter()
                .filter(|c| c.plugin.as_deref() == Some(plugin.as_str()))
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

/// Asks on the controlling terminal whether a call may run; denies, saying
/// why, where there is no terminal (a script, CI, a pipe).
struct TerminalApprover;

impl warden::Approver for TerminalApprover {
    fn approve<'a>(
        &'a self,
        request: &'a warden::ApprovalRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = warden::Approval> + Send + 'a>> {
        let prompt = format!(
            "warden: `{}` (plugin `{}`) needs approval under policy rule `{}`.\n  input: {}\nAllow this call? [y/N] ",
            request.capability, request.plugin, request.rule, request.input
        );
        Box::pin(async move {
            tokio::task::spawn_blocking(move || ask_terminal(&prompt))
                .await
                .unwrap_or_else(|e| {
                    warden::Approval::Deny(format!("the approval prompt failed: {e}"))
                })
        })
    }
}

fn ask_terminal(prompt: &str) -> warden::Approval {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let Ok(mut tty) = tty else {
        return warden::Approval::Deny(
            "it needs approval and there is no terminal to ask on".into(),
        );
    };
    if tty
        .write_all(prompt.as_bytes())
        .and_then(|_| tty.flush())
        .is_err()
    {
        return warden::Approval::Deny(
            "it needs approval and the terminal cannot be written".into(),
        );
    }
    let mut answer = String::new();
    if std::io::BufReader::new(tty).read_line(&mut answer).is_err() {
        return warden::Approval::Deny("it needs approval and the terminal cannot be read".into());
    }
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => warden::Approval::Approve,
        _ => warden::Approval::Deny("declined at the terminal".into()),
    }
}

fn audit_command(command: AuditCommand, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    use warden::audit::{verify, Verdict};
    match command {
        AuditCommand::Verify { files } => match verify(&files)? {
            Verdict::Ok { records } => {
                println!(
                    "OK: {records} records in {} file(s), one intact chain",
                    files.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Verdict::Bad {
                file,
                line,
                seq,
                reason,
            } => {
                let seq = seq.map_or_else(String::new, |s| format!(" (seq {s})"));
                println!("BAD: {} line {line}{seq}: {reason}", file.display());
                Ok(ExitCode::from(1))
            }
        },
        AuditCommand::Tail {
            file,
            lines,
            follow,
            json,
        } => {
            let path = match file {
                Some(f) => f,
                None => {
                    let cfg = warden::Config::from_file(config)?;
                    let audit = cfg.audit.as_ref().with_context(|| {
                        format!(
                            "{} has no [audit] section; name the log file",
                            config.display()
                        )
                    })?;
                    cfg.resolve_path(&audit.path)
                }
            };
            tail(&path, lines, follow, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_record(line: &str, json: bool) {
    if json {
        println!("{line}");
        return;
    }
    match serde_json::from_str::<warden::audit::Record>(line) {
        Ok(r) => println!(
            "{:>6} {} {:<5} {:<8} {:<10} {:<24} {} — {}",
            r.seq, r.time, r.decision, r.effect, r.plugin, r.capability, r.target, r.reason
        ),
        Err(_) => println!("(unreadable record) {line}"),
    }
}

fn tail(path: &std::path::Path, lines: usize, follow: bool, json: bool) -> anyhow::Result<()> {
    use std::io::{BufRead, Seek, SeekFrom};
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let all: Vec<&str> = text.lines().collect();
    for line in &all[all.len().saturating_sub(lines)..] {
        print_record(line, json);
    }
    if !follow {
        return Ok(());
    }
    let mut offset = text.len() as u64;
    let mut pending = String::new();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let Ok(mut file) = std::fs::File::open(path) else {
            continue;
        };
        let len = file.metadata()?.len();
        if len < offset {
            // Rotated: the new file starts from the beginning.
            offset = 0;
            pending.clear();
        }
        if len == offset {
            continue;
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut reader = std::io::BufReader::new(file);
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            pending.push_str(&line);
            if pending.ends_with('\n') {
                print_record(pending.trim_end(), json);
                pending.clear();
            }
        }
        use std::io::Write;
        std::io::stdout().flush()?;
    }
}

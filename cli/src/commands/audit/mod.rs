//! `warden audit verify | tail | export | keygen`: the audit log checked,
//! followed or exported, and the key that signs its checkpoints.

mod export;
mod follow;
mod replicas;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check that FILE... (oldest first: rotated files, then the current
    /// one) form one intact hash chain. Prints OK, or names the first bad
    /// record and exits 1.
    ///
    /// The logs of several replicas (`[audit] replica`) may be given
    /// together: each replica's files are checked as its own chain, then
    /// the union (every admitted call in exactly one chain).
    ///
    /// With --key, every checkpoint's signature is checked too, and the log
    /// must end with the checkpoint its host writes when it stops (else it
    /// was cut off, or its host is still running: --live).
    Verify {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The host's public key (PEM, as `warden audit keygen` writes it).
        #[arg(long, value_name = "PUBLIC_KEY")]
        key: Option<PathBuf>,
        /// The log is still being written: it need not end with a closing
        /// checkpoint.
        #[arg(long, requires = "key")]
        live: bool,
    },
    /// Check a tool result's attestation (`[serve] attest-results`): its
    /// signature, that its output is the one signed, and with --log that
    /// the call is in the signed chain. Prints OK (with the call's place in
    /// the log) or what is wrong, and exits 1.
    VerifyResult {
        /// A JSON file: the tool result (or the whole JSON-RPC response).
        result: PathBuf,
        /// The host's public key (PEM).
        #[arg(long, value_name = "PUBLIC_KEY")]
        key: PathBuf,
        /// A JSON file with the call's arguments, to check them too.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The audit log (oldest file first) that should hold the call.
        #[arg(long, value_name = "FILE", num_args = 1..)]
        log: Vec<PathBuf>,
    },
    /// Make an Ed25519 key pair for `[audit] signing-key`: NAME.key (the
    /// private key, readable by its owner only) and NAME.pub.
    Keygen {
        /// The files' path without extension, e.g. `keys/host`.
        name: PathBuf,
    },
    /// Write records as OCSF 1.9 events, one JSON object a line, for a SIEM:
    /// FILE... (oldest first: rotated files, then the current one), or the
    /// `[audit] path` of the configuration. Each event carries the record's
    /// chain fields (OCSF's `record_integrity` profile).
    Export {
        /// The log files.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The event format.
        #[arg(long, value_enum, default_value = "ocsf")]
        format: export::ExportFormat,
        /// Only records from this `seq` on (e.g. to replay a sink's gap).
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        from_seq: u64,
        /// Only records up to this `seq`.
        #[arg(long, value_name = "SEQ", default_value_t = u64::MAX)]
        to_seq: u64,
        /// Keep writing events as records are appended to the last file
        /// (follows rotation).
        #[arg(short, long)]
        follow: bool,
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

pub(crate) fn run(args: AuditArgs, config: &Path) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { files, key, live } => {
            let chains = replicas::chains(&files)?;
            match (key, chains.len()) {
                (None, 1) => verify(&files),
                (Some(key), 1) => verify_signed(&files, &key, live),
                (None, _) => replicas::verify(&chains, verify),
                (Some(key), _) => replicas::verify(&chains, |f| verify_signed(f, &key, live)),
            }
        }
        AuditCommand::Keygen { name } => keygen(&name),
        AuditCommand::VerifyResult {
            result,
            key,
            input,
            log,
        } => verify_result(&result, &key, input.as_deref(), &log),
        AuditCommand::Export {
            files,
            format,
            from_seq,
            to_seq,
            follow,
        } => {
            let files = match files.is_empty() {
                true => vec![configured_log(config)?],
                false => files,
            };
            let range = export::Range {
                from: from_seq,
                to: to_seq,
            };
            export::export(&files, format, &range, follow)
        }
        AuditCommand::Tail {
            file,
            lines,
            follow,
            json,
        } => {
            let path = match file {
                Some(f) => f,
                None => configured_log(config)?,
            };
            tail(&path, lines, follow, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `warden audit verify`: exit 0 for one intact chain, 1 for a bad record.
fn verify(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    use warden::audit::Verdict;
    match warden::audit::verify(files)? {
        Verdict::Ok { records } => {
            println!(
                "OK: {records} records in {} file(s), one intact chain",
                files.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        bad => {
            print_bad(&bad);
            Ok(ExitCode::from(1))
        }
    }
}

fn print_bad(verdict: &warden::audit::Verdict) {
    if let warden::audit::Verdict::Bad {
        file,
        line,
        seq,
        reason,
    } = verdict
    {
        let seq = seq.map_or_else(String::new, |s| format!(" (seq {s})"));
        println!("BAD: {} line {line}{seq}: {reason}", file.display());
    }
}

/// `warden audit verify --key`: the chain and its signed checkpoints.
fn verify_signed(files: &[PathBuf], key: &Path, live: bool) -> anyhow::Result<ExitCode> {
    use warden::audit::Verdict;
    let key = public_key(key)?;
    let (verdict, signed) = warden::audit::verify_signed(files, &key)?;
    let records = match verdict {
        Verdict::Ok { records } => records,
        bad => {
            print_bad(&bad);
            return Ok(ExitCode::from(1));
        }
    };
    let Some(through) = signed.through else {
        println!(
            "BAD: {records} records and no checkpoint signed by {}",
            key.id()
        );
        return Ok(ExitCode::from(1));
    };
    println!(
        "OK: {records} records in {} file(s), one intact chain; {} checkpoints signed by {}, through seq {through}",
        files.len(),
        signed.checkpoints,
        key.id()
    );
    if signed.closed {
        println!("the log ends with its host's closing checkpoint");
        return Ok(ExitCode::SUCCESS);
    }
    let tail = format!(
        "{} records after the last checkpoint, and no closing checkpoint",
        signed.after
    );
    if live {
        println!("{tail} (live log)");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("BAD: {tail}: the log was cut off, or its host did not stop cleanly (--live for a log still being written)");
        Ok(ExitCode::from(1))
    }
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn public_key(path: &Path) -> anyhow::Result<warden::audit::signing::VerifyingKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    warden::audit::signing::VerifyingKey::from_pem(&text)
        .with_context(|| format!("{} is not a usable public key", path.display()))
}

/// `warden audit verify-result`: a result's attestation, and with a log,
/// the call's place in the signed chain.
fn verify_result(
    result: &Path,
    key: &Path,
    input: Option<&Path>,
    log: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    use warden::audit::signing::Attestation;
    let key = public_key(key)?;
    let mut doc = read_json(result)?;
    if doc.get("jsonrpc").is_some() {
        doc = doc["result"].take();
    }
    let attestation: Attestation = serde_json::from_value(
        doc["_meta"]["dev.warden/attestation"].clone(),
    )
    .with_context(|| {
        format!(
            "{} has no readable `_meta[\"dev.warden/attestation\"]`",
            result.display()
        )
    })?;
    let input = input.map(read_json).transpose()?;
    if let Some(fault) = attestation.fault(&key, &doc["structuredContent"], input.as_ref()) {
        println!("BAD: {}: {fault}", result.display());
        return Ok(ExitCode::from(1));
    }
    println!(
        "OK: call {} of {} signed by {} at {}",
        attestation.call_id, attestation.capability, attestation.key, attestation.time
    );
    if log.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let (verdict, signed) = warden::audit::verify_signed(log, &key)?;
    if !matches!(verdict, warden::audit::Verdict::Ok { .. }) {
        print_bad(&verdict);
        return Ok(ExitCode::from(1));
    }
    match call_end(log, &attestation.call_id)? {
        Some(seq) if signed.through.is_some_and(|t| seq <= t) => {
            println!("the call ended at seq {seq}, under a signed checkpoint");
            Ok(ExitCode::SUCCESS)
        }
        Some(seq) => {
            println!("the call ended at seq {seq}, after the last signed checkpoint");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "BAD: no record of call {} ending ok in the log",
                attestation.call_id
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The `seq` of the record that ends call `call_id` with `ok`.
fn call_end(log: &[PathBuf], call_id: &str) -> anyhow::Result<Option<u64>> {
    for file in log {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines() {
            let Ok(r) = serde_json::from_str::<warden::audit::Record>(line) else {
                continue;
            };
            if r.call_id == call_id && r.effect == "call" && r.decision == "ok" {
                return Ok(Some(r.seq));
            }
        }
    }
    Ok(None)
}

/// `warden audit keygen NAME`: NAME.key (mode 0600) and NAME.pub.
fn keygen(name: &Path) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let (private, public) = warden::audit::signing::SigningKey::generate();
    let key_path = name.with_extension("key");
    let pub_path = name.with_extension("pub");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&key_path)
        .and_then(|mut f| f.write_all(private.as_bytes()))
        .with_context(|| {
            format!(
                "writing {} (an existing key is never overwritten)",
                key_path.display()
            )
        })?;
    std::fs::write(&pub_path, public).with_context(|| format!("writing {}", pub_path.display()))?;
    let id = warden::audit::signing::SigningKey::from_pem(&private)?
        .id()
        .to_string();
    println!(
        "wrote {} (keep it secret) and {}; key id {id}\nuse it with:\n  [audit]\n  signing-key = {{ file = \"{}\" }}",
        key_path.display(),
        pub_path.display(),
        key_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The `[audit] path` of the configuration at `config`.
fn configured_log(config: &Path) -> anyhow::Result<PathBuf> {
    let cfg = warden::Config::from_file(config)?;
    let audit = cfg.audit.as_ref().with_context(|| {
        format!(
            "{} has no [audit] section; name the log file",
            config.display()
        )
    })?;
    Ok(cfg.resolve_path(&audit.path))
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

/// `warden audit tail`: the last `lines` records, then (with `follow`)
/// those appended, across rotations.
fn tail(path: &Path, lines: usize, follow: bool, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let all: Vec<&str> = text.lines().collect();
    for line in &all[all.len().saturating_sub(lines)..] {
        print_record(line, json);
    }
    if !follow {
        return Ok(());
    }
    let mut follower = follow::Follower::new(path, text.len() as u64)?;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        follower.poll(|line| print_record(line, json))?;
        std::io::Write::flush(&mut std::io::stdout())?;
    }
}

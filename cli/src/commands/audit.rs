//! `warden audit verify | tail`: the audit log checked or followed.

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

pub(crate) fn run(args: AuditArgs, config: &Path) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { files } => verify(&files),
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
    }
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
    let mut offset = text.len() as u64;
    let mut pending = String::new();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        follow_once(path, &mut offset, &mut pending, json)?;
    }
}

/// Prints the whole records appended to `path` since `offset` (a partial
/// last line waits in `pending`); a shorter file was rotated and is read
/// from its beginning.
fn follow_once(
    path: &Path,
    offset: &mut u64,
    pending: &mut String,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Seek, SeekFrom, Write};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let len = file.metadata()?.len();
    if len < *offset {
        // Rotated: the new file starts from the beginning.
        *offset = 0;
        pending.clear();
    }
    if len == *offset {
        return Ok(());
    }
    file.seek(SeekFrom::Start(*offset))?;
    let mut reader = std::io::BufReader::new(file);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            break;
        }
        *offset += n as u64;
        pending.push_str(&line);
        if pending.ends_with('\n') {
            print_record(pending.trim_end(), json);
            pending.clear();
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}

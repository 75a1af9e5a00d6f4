//! `warden audit verify | tail`.

use crate::AuditCommand;
use anyhow::Context;
use std::process::ExitCode;

pub(crate) fn audit_command(
    command: AuditCommand,
    config: &std::path::Path,
) -> anyhow::Result<ExitCode> {
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

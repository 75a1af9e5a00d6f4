//! `warden audit export`: the log's records as OCSF 1.9 events, one JSON
//! object a line, for a SIEM; with `--follow`, those appended too.

use super::follow::Follower;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `export` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum ExportFormat {
    /// OCSF 1.9 events (with the `record_integrity` profile's chain fields).
    Ocsf,
}

/// Which records are written.
pub(super) struct Range {
    pub(super) from: u64,
    pub(super) to: u64,
}

impl Range {
    fn holds(&self, seq: u64) -> bool {
        (self.from..=self.to).contains(&seq)
    }
}

/// Writes the records of `files` (oldest first) in `range`, then follows
/// the last file. Exit 1 if a record could not be read (it is named on
/// standard error; the others are written).
pub(super) fn export(
    files: &[PathBuf],
    _format: ExportFormat,
    range: &Range,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let events = warden::audit::ocsf::Events::new(&chain_name(files));
    let mut unreadable = 0u64;
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            if !write_event(&mut out, &events, line, range)? {
                unreadable += 1;
                eprintln!("{}:{}: not an audit record; skipped", file.display(), i + 1);
            }
        }
    }
    out.flush()?;
    if follow {
        let last = files.last().expect("clap requires a file or the config's");
        follow_on(last, &mut out, &events, range)?;
    }
    Ok(if unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the events of records appended to `path`, until killed.
fn follow_on(
    path: &Path,
    out: &mut impl Write,
    events: &warden::audit::ocsf::Events,
    range: &Range,
) -> anyhow::Result<()> {
    let start = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut follower = Follower::new(path, start)?;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut failed = None;
        follower.poll(|line| {
            if let Err(e) = write_event(out, events, line, range) {
                failed.get_or_insert(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        out.flush()?;
    }
}

/// Writes one record's event if it is in `range`; `false` if the line is
/// not a record.
fn write_event(
    out: &mut impl Write,
    events: &warden::audit::ocsf::Events,
    line: &str,
    range: &Range,
) -> anyhow::Result<bool> {
    if line.trim().is_empty() {
        return Ok(true);
    }
    let Ok(record) = serde_json::from_str::<warden::audit::Record>(line) else {
        return Ok(false);
    };
    if range.holds(record.seq) {
        serde_json::to_writer(&mut *out, &events.event(&record))?;
        out.write_all(b"\n")?;
    }
    Ok(true)
}

/// The chain's name in events: the log's file name, without the `.<seq>`
/// a rotated file carries.
fn chain_name(files: &[PathBuf]) -> String {
    let name = files
        .last()
        .and_then(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('.') {
        Some((stem, seq)) if seq.len() == 12 && seq.bytes().all(|b| b.is_ascii_digit()) => {
            stem.to_string()
        }
        _ => name,
    }
}

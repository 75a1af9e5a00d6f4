//! Checking a log's chain: [`verify`] reads files oldest first and names the
//! first record that was edited, deleted or moved.

use super::{AuditError, Record, GENESIS};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record is intact and chained: how many there were.
    Ok {
        /// Records checked.
        records: u64,
    },
    /// The first bad record.
    Bad {
        /// The file holding it.
        file: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// Its `seq`, if it could be read.
        seq: Option<u64>,
        /// What is wrong.
        reason: String,
    },
}

/// Checks `files` (oldest first) as one chain: every record parses, its hash
/// matches its content, `seq` counts up by one and `prev` is the previous
/// record's hash. The first file may start mid-history (after older files
/// were archived): its first record is then taken as the anchor.
pub fn verify(files: &[PathBuf]) -> Result<Verdict, AuditError> {
    let mut prev: Option<(u64, String)> = None;
    let mut records = 0;
    for file in files {
        let f = File::open(file).map_err(|e| AuditError::Io {
            path: file.clone(),
            message: e.to_string(),
        })?;
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| AuditError::Io {
                path: file.clone(),
                message: e.to_string(),
            })?;
            let bad = |seq: Option<u64>, reason: String| Verdict::Bad {
                file: file.clone(),
                line: i + 1,
                seq,
                reason,
            };
            if line.trim().is_empty() {
                return Ok(bad(None, "empty line".into()));
            }
            let record: Record = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => return Ok(bad(None, format!("not a valid record: {e}"))),
            };
            if record.compute_hash() != record.hash {
                return Ok(bad(
                    Some(record.seq),
                    "its hash does not match its content (edited)".into(),
                ));
            }
            match &prev {
                None if record.seq == 1 && record.prev != GENESIS => {
                    return Ok(bad(
                        Some(record.seq),
                        "the first record does not start the chain".into(),
                    ))
                }
                None => {}
                Some((seq, hash)) => {
                    if record.seq != seq + 1 {
                        return Ok(bad(
                            Some(record.seq),
                            format!(
                                "expected seq {}, found {} (a record is missing or out of order)",
                                seq + 1,
                                record.seq
                            ),
                        ));
                    }
                    if &record.prev != hash {
                        return Ok(bad(
                            Some(record.seq),
                            "it does not chain to the record before it".into(),
                        ));
                    }
                }
            }
            prev = Some((record.seq, record.hash));
            records += 1;
        }
    }
    Ok(Verdict::Ok { records })
}

//! Checking a log's chain: [`verify`] reads files oldest first and names the
//! first record that was edited, deleted or moved; [`verify_signed`] also
//! checks the signed checkpoints against the host's public key.

use super::signing::{checkpoint_message, VerifyingKey};
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

/// What the signed checkpoints of a log say ([`verify_signed`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// The last record a checkpoint signs (the head it follows).
    pub through: Option<u64>,
    /// Records after the last checkpoint.
    pub after: u64,
    /// Whether the log ends with a `close` checkpoint (the host stopped
    /// cleanly and nothing was cut off after it).
    pub closed: bool,
}

/// Checks `files` (oldest first) as one chain: every record parses, its hash
/// matches its content, `seq` counts up by one and `prev` is the previous
/// record's hash. The first file may start mid-history (after older files
/// were archived): its first record is then taken as the anchor.
pub fn verify(files: &[PathBuf]) -> Result<Verdict, AuditError> {
    check(files, None, &mut Signed::default())
}

/// [`verify`], and every checkpoint's signature with `key`: a checkpoint
/// by another key, or whose signature does not match the head it follows
/// (a rewritten chain), is the first bad record.
pub fn verify_signed(
    files: &[PathBuf],
    key: &VerifyingKey,
) -> Result<(Verdict, Signed), AuditError> {
    let mut signed = Signed::default();
    let verdict = check(files, Some(key), &mut signed)?;
    Ok((verdict, signed))
}

/// Why checkpoint `record` does not verify with `key`, if it does not.
fn checkpoint_fault(record: &Record, key: &VerifyingKey) -> Option<String> {
    if record.target != key.id() {
        return Some(format!(
            "a checkpoint signed by key {}, not {}",
            record.target,
            key.id()
        ));
    }
    let (why, signature) = record.reason.split_once(' ')?;
    let message = checkpoint_message(record.seq.saturating_sub(1), &record.prev, why);
    if key.verifies(&message, signature) {
        None
    } else {
        Some(format!(
            "its signature does not verify with key {} over the records before it (rewritten)",
            key.id()
        ))
    }
}

fn check(
    files: &[PathBuf],
    key: Option<&VerifyingKey>,
    signed: &mut Signed,
) -> Result<Verdict, AuditError> {
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
            if let Some(key) = key {
                if record.effect == "checkpoint" {
                    if let Some(fault) = checkpoint_fault(&record, key) {
                        return Ok(bad(Some(record.seq), fault));
                    }
                    signed.checkpoints += 1;
                    signed.through = Some(record.seq.saturating_sub(1));
                    signed.after = 0;
                    signed.closed = record.reason.starts_with("close ");
                } else {
                    signed.after += 1;
                    signed.closed = false;
                }
            }
            prev = Some((record.seq, record.hash));
            records += 1;
        }
    }
    Ok(Verdict::Ok { records })
}

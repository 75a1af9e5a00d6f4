//! The audit log: append-only JSON lines, one record per decision (a call,
//! an effect, a limit), each chained to the one before by a SHA-256 hash so
//! that an edit, a deletion or a reordering is caught by [`verify`].
//!
//! A record's `hash` is the SHA-256 of the record serialized with `hash`
//! empty; `prev` is the previous record's `hash` (64 zeros for the very
//! first). `seq` counts up by one. Rotation moves the full file aside as
//! `<path>.<first seq, 12 digits>` and starts a new one whose first record
//! chains to the last of the old: `warden audit verify path.* path` checks
//! the whole history in order. Appends take an advisory lock on
//! `.<name>.lock` beside the log and first catch up with what other
//! processes appended, so several hosts or CLI runs keep one chain.
//!
//! Records carry names, never secret values.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub use super::effects::{Effect, Outcome};

/// The `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// When records reach the disk (`[audit] sync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncPolicy {
    /// `fsync` after every record: nothing acknowledged is lost on a crash.
    Always,
    /// Every record is handed to the OS at once (lost only if the machine
    /// fails). The default.
    #[default]
    Flush,
    /// Records are buffered and written every 64 records, at rotation and at
    /// shutdown (fastest; a crash loses the buffer).
    Buffered,
}

/// Records buffered before a write with [`SyncPolicy::Buffered`].
const BUFFERED_RECORDS: u64 = 64;

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the whole history, from 1.
    pub seq: u64,
    /// UTC time, RFC 3339 with milliseconds.
    pub time: String,
    /// The plugin concerned (empty for host-level records).
    pub plugin: String,
    /// The plugin's component digest (`sha256:...`).
    pub digest: String,
    /// The capability called.
    pub capability: String,
    /// The call this record belongs to.
    pub call_id: String,
    /// `call`, `approval`, `egress`, `socket`, `secret`, `env`, `file`,
    /// `limit`, `log`, `session`, `load`.
    pub effect: String,
    /// What the effect was aimed at (a URL, an address, a path, a name).
    pub target: String,
    /// `allow` or `deny` (or `error` for a call that failed after being allowed).
    pub decision: String,
    /// Why.
    pub reason: String,
    /// How long it took, when it is a span.
    pub duration_ms: Option<u64>,
    /// The previous record's hash.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
}

impl Record {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let text = serde_json::to_string(&unhashed).expect("records serialize");
        crate::digest::sha256_hex(text.as_bytes())
    }
}

/// What an effect or decision contributes; the log fills in the rest.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// See [`Record::plugin`].
    pub plugin: String,
    /// See [`Record::digest`].
    pub digest: String,
    /// See [`Record::capability`].
    pub capability: String,
    /// See [`Record::call_id`].
    pub call_id: String,
    /// See [`Record::effect`].
    pub effect: Effect,
    /// See [`Record::target`].
    pub target: String,
    /// See [`Record::decision`].
    pub decision: Outcome,
    /// See [`Record::reason`].
    pub reason: String,
    /// See [`Record::duration_ms`].
    pub duration_ms: Option<u64>,
}

struct Writer {
    file: BufWriter<File>,
    size: u64,
    seq: u64,
    prev: String,
    unsynced: u64,
    /// (device, inode) of the file written, to notice a rotation by another process.
    id: (u64, u64),
}

fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

/// An exclusive advisory lock on `<log>.lock`, held while a record is
/// appended, so that several processes (CLI runs, hosts) sharing one log
/// keep one chain.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn new(file: &'a File) -> std::io::Result<Locked<'a>> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a valid, open file descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Locked(file))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: as above.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// An open audit log. Shared by every plugin of a host.
pub struct AuditLog {
    path: PathBuf,
    sync: SyncPolicy,
    rotate_bytes: u64,
    writer: Mutex<Writer>,
    lock: File,
}

/// Why an audit log cannot be opened, written or verified.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("audit log {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The existing log's last record is damaged; the host will not append
    /// to a chain it cannot continue.
    #[error("audit log {path}: its last record is damaged ({message}); move the file aside (and verify it) before starting")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, continuing its chain.
    pub fn open(path: &Path, sync: SyncPolicy, rotate_bytes: u64) -> Result<AuditLog, AuditError> {
        let io = |e: std::io::Error| AuditError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // `.<name>.lock` beside the log, out of the way of `<name>.*` globs.
        let mut lock_name = std::ffi::OsString::from(".");
        lock_name.push(path.file_name().unwrap_or_default());
        lock_name.push(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_file_name(lock_name))
            .map_err(io)?;
        let _locked = Locked::new(&lock).map_err(io)?;
        let (seq, prev) = match last_record(path).map_err(io)? {
            None => (0, GENESIS.to_string()),
            Some(Ok(r)) => (r.seq, r.hash),
            Some(Err(message)) => {
                return Err(AuditError::Damaged {
                    path: path.to_path_buf(),
                    message,
                })
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let (size, id) = (meta.len(), file_id(&meta));
        drop(_locked);
        Ok(AuditLog {
            path: path.to_path_buf(),
            sync,
            rotate_bytes,
            writer: Mutex::new(Writer {
                file: BufWriter::new(file),
                size,
                seq,
                prev,
                unsynced: 0,
                id,
            }),
            lock,
        })
    }

    /// Catches up with records other processes appended (or a rotation
    /// they did) since this one last wrote. Called with the lock held.
    fn catch_up(&self, w: &mut Writer) -> std::io::Result<()> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Moved away by another process's rotation, not yet recreated.
                w.file = BufWriter::new(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)?,
                );
                let meta = w.file.get_ref().metadata()?;
                w.id = file_id(&meta);
                w.size = meta.len();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let id = file_id(&meta);
        if id == w.id && meta.len() == w.size {
            return Ok(());
        }
        if id != w.id {
            w.file = BufWriter::new(OpenOptions::new().append(true).open(&self.path)?);
            w.id = id;
        }
        w.size = meta.len();
        match last_record(&self.path)? {
            Some(Ok(r)) => {
                w.seq = r.seq;
                w.prev = r.hash;
            }
            Some(Err(message)) => {
                return Err(std::io::Error::other(format!(
                    "another writer left a damaged record: {message}"
                )))
            }
            None => {}
        }
        Ok(())
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record. An error means the record was not written: the
    /// caller fails closed.
    pub fn append(&self, entry: Entry) -> Result<Record, AuditError> {
        let io = |e: std::io::Error| AuditError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let _locked = Locked::new(&self.lock).map_err(io)?;
        // Buffered records are this process's alone; otherwise every record
        // continues whatever the file holds now.
        if self.sync != SyncPolicy::Buffered {
            self.catch_up(&mut w).map_err(io)?;
        }
        if self.rotate_bytes > 0 && w.size >= self.rotate_bytes {
            self.rotate(&mut w).map_err(io)?;
        }
        let mut record = Record {
            seq: w.seq + 1,
            time: warden_manifest::time::rfc3339(SystemTime::now(), true),
            plugin: entry.plugin,
            digest: entry.digest,
            capability: entry.capability,
            call_id: entry.call_id,
            effect: entry.effect.as_str().to_string(),
            target: entry.target,
            decision: entry.decision.as_str().to_string(),
            reason: entry.reason,
            duration_ms: entry.duration_ms,
            prev: w.prev.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let mut line = serde_json::to_string(&record).expect("records serialize");
        line.push('\n');
        w.file.write_all(line.as_bytes()).map_err(io)?;
        w.unsynced += 1;
        match self.sync {
            SyncPolicy::Always => {
                w.file.flush().map_err(io)?;
                w.file.get_ref().sync_data().map_err(io)?;
            }
            SyncPolicy::Flush => w.file.flush().map_err(io)?,
            SyncPolicy::Buffered => {
                if w.unsynced >= BUFFERED_RECORDS {
                    w.file.flush().map_err(io)?;
                    w.unsynced = 0;
                }
            }
        }
        w.size += line.len() as u64;
        w.seq = record.seq;
        w.prev = record.hash.clone();
        Ok(record)
    }

    /// Writes buffered records and syncs the file.
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.file
            .flush()
            .and_then(|_| w.file.get_ref().sync_data())
            .map_err(|e| AuditError::Io {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        w.unsynced = 0;
        Ok(())
    }

    fn rotate(&self, w: &mut Writer) -> std::io::Result<()> {
        w.file.flush()?;
        w.file.get_ref().sync_data()?;
        let first = first_seq(&self.path)?.unwrap_or(w.seq + 1);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{first:012}"));
        std::fs::rename(&self.path, PathBuf::from(name))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        w.id = file_id(&file.metadata()?);
        w.file = BufWriter::new(file);
        w.size = 0;
        w.unsynced = 0;
        Ok(())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn first_seq(path: &Path) -> std::io::Result<Option<u64>> {
    let file = File::open(path)?;
    let mut line = String::new();
    BufReader::new(file).read_line(&mut line)?;
    Ok(serde_json::from_str::<Record>(&line).ok().map(|r| r.seq))
}

/// The last record of `path`: `None` if the file is absent or empty.
fn last_record(path: &Path) -> std::io::Result<Option<Result<Record, String>>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The last record is within the file's last MiB.
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(1 << 20)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    Ok(Some(match serde_json::from_str::<Record>(last) {
        Ok(r) if r.compute_hash() == r.hash => Ok(r),
        Ok(_) => Err("its hash does not match its content".into()),
        Err(e) => Err(format!("not a record: {e}")),
    }))
}

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

/// The audit log (`[audit]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditSettings {
    /// The JSON-lines file, relative to the config file.
    pub path: PathBuf,
    /// When records reach the disk: `always` (fsync each), `flush` (default:
    /// each handed to the OS), `buffered`.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// Rotate the file once it reaches this size (0: never).
    #[serde(default)]
    pub rotate_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry {
        Entry {
            effect: Effect::Call,
            decision: Outcome::Allow,
            capability: format!("c{n}"),
            ..Entry::default()
        }
    }

    #[test]
    fn two_writers_keep_one_chain_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let a = AuditLog::open(&path, SyncPolicy::Flush, 2000).unwrap();
        let b = AuditLog::open(&path, SyncPolicy::Always, 2000).unwrap();
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|log| {
                std::thread::spawn(move || {
                    for n in 0..40 {
                        log.append(entry(n)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.starts_with("a.jsonl.")
            })
            .collect();
        files.sort();
        assert!(files.len() >= 2, "rotated: {files:?}");
        files.push(path);
        assert_eq!(verify(&files).unwrap(), Verdict::Ok { records: 80 });
    }

    #[test]
    fn a_reopened_log_continues_its_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        {
            let log = AuditLog::open(&path, SyncPolicy::Flush, 0).unwrap();
            log.append(entry(1)).unwrap();
        }
        let log = AuditLog::open(&path, SyncPolicy::Flush, 0).unwrap();
        assert_eq!(log.append(entry(2)).unwrap().seq, 2);
        assert_eq!(verify(&[path]).unwrap(), Verdict::Ok { records: 2 });
    }
}

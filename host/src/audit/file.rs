//! The audit log's file and chain, kept by the writer thread of
//! [`writer`](super::writer): it adds to each record what only it knows
//! (`seq`, `time`, `prev`), takes the hash and writes; and the file helpers
//! that find where a chain ends.
//!
//! Per batch: the advisory lock on `.<name>.lock` is taken once, the chain is
//! caught up with what other processes appended (except with `buffered`), a
//! rotation is made where due, the records are chained into one buffer, and
//! the buffer reaches the file in one write (with `always`, then one
//! `fsync`). A call whose admission record could not be written gets none of
//! its later records written either (see [`Writer::unadmit`]).

use super::record::{Kind, Line, Pending};
use super::signing::{checkpoint_message, SigningKey};
use super::sink::Tap;
use super::{AuditError, Effect, Entry, Outcome, Record, SyncPolicy, GENESIS};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Records buffered before a write with [`SyncPolicy::Buffered`].
const BUFFERED_RECORDS: u64 = 64;
/// Most calls remembered as unadmitted at once (calls whose admission
/// record failed and which have not ended yet).
const MAX_UNADMITTED: usize = 64 * 1024;

/// The writer thread's state: the file and the chain.
pub(super) struct Writer {
    path: PathBuf,
    sync: SyncPolicy,
    rotate_bytes: u64,
    lock: File,
    file: File,
    /// Chained records not yet written to the file.
    out: Vec<u8>,
    /// Bytes in the file (not counting `out`).
    size: u64,
    seq: u64,
    prev: String,
    /// Records in `out`.
    unsynced: u64,
    /// (device, inode) of the file written, to notice a rotation by another process.
    id: (u64, u64),
    /// Calls whose admission record failed: their later records are
    /// refused until their end record (refused too) arrives.
    unadmitted: HashSet<String>,
    /// Signed checkpoints, when the log has a signing key.
    checkpoints: Option<Checkpoints>,
    /// Where written records are handed to the sink, when there is one.
    tap: Option<Arc<Tap>>,
    /// `,"replica":"NAME"`, written into every record of a replica's log.
    replica: Vec<u8>,
}

/// What signs checkpoints, and when one is due.
pub(super) struct Checkpoints {
    pub key: SigningKey,
    /// A checkpoint after this many records.
    pub every: u64,
    /// Records chained by this writer since its last checkpoint.
    pub since: u64,
}

impl Writer {
    /// Opens (or creates) the log at `path` and finds where its chain ends.
    pub(super) fn open(
        path: &Path,
        sync: SyncPolicy,
        rotate_bytes: u64,
        checkpoints: Option<Checkpoints>,
    ) -> Result<Writer, AuditError> {
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
        let locked = Locked::new(&lock).map_err(io)?;
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
        drop(locked);
        Ok(Writer {
            path: path.to_path_buf(),
            sync,
            rotate_bytes,
            lock,
            file,
            out: Vec::with_capacity(64 * 1024),
            size: meta.len(),
            seq,
            prev,
            unsynced: 0,
            id: file_id(&meta),
            unadmitted: HashSet::new(),
            checkpoints,
            tap: None,
            replica: Vec::new(),
        })
    }

    /// Hands every record written from now on to `tap`.
    pub(super) fn tap(&mut self, tap: Arc<Tap>) {
        self.tap = Some(tap);
    }

    /// Names replica `name` in every record from now on.
    pub(super) fn replica(&mut self, name: &str) {
        self.replica.clear();
        self.replica.extend_from_slice(br#","replica":"#);
        serde_json::to_writer(&mut self.replica, name).expect("strings serialize");
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one batch under the lock, then syncs it as the policy says;
    /// `sync` asks for an `fsync` whatever the policy, `tick` for a
    /// checkpoint if records came since the last. Records of calls that
    /// were not admitted are not written: their flag is set.
    pub(super) fn write<'a>(
        &mut self,
        records: impl Iterator<Item = (Line<'a>, &'a mut bool)>,
        sync: bool,
        tick: bool,
    ) -> std::io::Result<()> {
        let _locked = Locked::new(&self.lock)?;
        let mut records = records.peekable();
        let timed = tick && self.checkpoints.as_ref().is_some_and(|c| c.since > 0);
        if records.peek().is_some() || timed {
            // Buffered records are this process's alone; otherwise the batch
            // continues whatever the file holds now.
            if self.sync != SyncPolicy::Buffered {
                self.catch_up()?;
            }
            // One time for the batch: its records are written together.
            let now = warden_manifest::time::rfc3339(SystemTime::now(), true);
            for (record, refused) in records {
                if self.refuses(&record) {
                    *refused = true;
                } else {
                    self.append(&record, &now)?;
                }
            }
            if let Some(why) = self.checkpoint_due(tick) {
                self.checkpoint(why, &now);
            }
            match self.sync {
                SyncPolicy::Always => {
                    self.drain()?;
                    self.file.sync_data()?;
                }
                SyncPolicy::Flush => self.drain()?,
                SyncPolicy::Buffered if self.unsynced >= BUFFERED_RECORDS => self.drain()?,
                SyncPolicy::Buffered => {}
            }
        }
        if sync {
            self.drain()?;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes what is buffered and syncs (when the log closes); a signing
    /// log ends with a `close` checkpoint.
    pub(super) fn close(&mut self) {
        let _locked = Locked::new(&self.lock);
        if self.checkpoints.is_some() {
            let caught_up = self.sync == SyncPolicy::Buffered || self.catch_up().is_ok();
            if caught_up {
                let now = warden_manifest::time::rfc3339(SystemTime::now(), true);
                self.checkpoint("close", &now);
            }
        }
        let _ = self.drain();
        let _ = self.file.sync_data();
    }

    /// Whether `record` must not be written because its call's admission
    /// record was not; forgets the call at its end record.
    fn refuses(&mut self, record: &Line<'_>) -> bool {
        if self.unadmitted.is_empty() {
            return false;
        }
        match record.kind {
            Kind::Admits => false,
            Kind::Ends => self.unadmitted.remove(record.call_id),
            Kind::Other => self.unadmitted.contains(record.call_id),
        }
    }

    /// After a failed batch: the calls it would have admitted are not
    /// admitted, so their later records must not be written either (a call
    /// does not wait for its admission record; it waits for its effects'
    /// records and its end record, which come after it).
    pub(super) fn unadmit<'a>(&mut self, records: impl Iterator<Item = Line<'a>>) {
        for record in records {
            match record.kind {
                Kind::Admits => {
                    if self.unadmitted.len() >= MAX_UNADMITTED {
                        // Only reached if calls stop ending: the oldest cannot
                        // be told apart, so all are forgotten.
                        tracing::error!("audit log: too many unadmitted calls; forgetting them");
                        self.unadmitted.clear();
                    }
                    self.unadmitted.insert(record.call_id.to_string());
                }
                // Admitted in this same batch.
                Kind::Ends => {
                    self.unadmitted.remove(record.call_id);
                }
                Kind::Other => {}
            }
        }
    }

    /// Which checkpoint is due after a batch: `records` once enough were
    /// chained, `time` at a tick after any.
    fn checkpoint_due(&self, tick: bool) -> Option<&'static str> {
        let c = self.checkpoints.as_ref()?;
        if c.since >= c.every {
            Some("records")
        } else if tick && c.since > 0 {
            Some("time")
        } else {
            None
        }
    }

    /// Chains a checkpoint signing the current head, `why` it was written.
    fn checkpoint(&mut self, why: &str, now: &str) {
        let Some(c) = &self.checkpoints else { return };
        let signature = c.key.sign(&checkpoint_message(self.seq, &self.prev, why));
        let record = Pending::new(Entry {
            effect: Effect::Checkpoint,
            target: c.key.id().to_string(),
            decision: Outcome::Allow,
            reason: format!("{why} {signature}"),
            ..Entry::default()
        });
        self.chain(&record.line(), now);
        if let Some(c) = &mut self.checkpoints {
            c.since = 0;
        }
    }

    /// Chains one record onto `out`, rotating first when the file is full.
    fn append(&mut self, record: &Line<'_>, now: &str) -> std::io::Result<()> {
        if self.rotate_bytes > 0 && self.size + self.out.len() as u64 >= self.rotate_bytes {
            self.rotate(now)?;
        }
        self.chain(record, now);
        if let Some(c) = &mut self.checkpoints {
            c.since += 1;
        }
        Ok(())
    }

    /// Chains one record onto `out`.
    fn chain(&mut self, record: &Line<'_>, now: &str) {
        let seq = self.seq + 1;
        let start = self.out.len();
        let out = &mut self.out;
        out.extend_from_slice(br#"{"seq":"#);
        out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        out.extend_from_slice(br#","time":""#);
        out.extend_from_slice(now.as_bytes());
        out.extend_from_slice(br#"","#);
        out.extend_from_slice(record.body);
        out.extend_from_slice(&self.replica);
        out.extend_from_slice(br#","prev":""#);
        out.extend_from_slice(self.prev.as_bytes());
        // The hash is taken over the record with `hash` empty, then written
        // into that same text.
        out.extend_from_slice(br#"","hash":""}"#);
        let hash = crate::digest::sha256_hex_bytes(&out[start..]);
        out.truncate(out.len() - 2);
        out.extend_from_slice(&hash);
        out.extend_from_slice(b"\"}\n");
        self.seq = seq;
        self.prev.clear();
        self.prev
            .push_str(std::str::from_utf8(&hash).expect("hex is ASCII"));
        self.unsynced += 1;
    }

    /// Writes `out` to the file.
    fn drain(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.file.write_all(&self.out)?;
            self.size += self.out.len() as u64;
            if let Some(tap) = &self.tap {
                tap.offer(&self.out);
            }
            self.out.clear();
        }
        self.unsynced = 0;
        Ok(())
    }

    /// After a failed batch: drops what was buffered (reported as not
    /// written) and reads the chain from the file again.
    pub(super) fn recover(&mut self) {
        self.out.clear();
        self.unsynced = 0;
        let reopened = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        if let Ok(file) = reopened {
            if let Ok(meta) = file.metadata() {
                self.id = file_id(&meta);
                self.size = meta.len();
            }
            self.file = file;
        }
        if let Ok(Some(Ok(r))) = last_record(&self.path) {
            self.seq = r.seq;
            self.prev = r.hash;
        }
    }

    /// Catches up with records other processes appended (or a rotation
    /// they did) since this one last wrote. Called with the lock held.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Moved away by another process's rotation, not yet recreated.
                self.file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                let meta = self.file.metadata()?;
                self.id = file_id(&meta);
                self.size = meta.len();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let id = file_id(&meta);
        if id == self.id && meta.len() == self.size {
            return Ok(());
        }
        if id != self.id {
            self.file = OpenOptions::new().append(true).open(&self.path)?;
            self.id = id;
        }
        self.size = meta.len();
        match last_record(&self.path)? {
            Some(Ok(r)) => {
                self.seq = r.seq;
                self.prev = r.hash;
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

    /// Moves the full file aside (a signing log signs its end first) and
    /// starts a new one.
    fn rotate(&mut self, now: &str) -> std::io::Result<()> {
        if self.checkpoints.is_some() {
            self.checkpoint("rotation", now);
        }
        self.drain()?;
        self.file.sync_data()?;
        let first = first_seq(&self.path)?.unwrap_or(self.seq + 1);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{first:012}"));
        std::fs::rename(&self.path, PathBuf::from(name))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.id = file_id(&self.file.metadata()?);
        self.size = 0;
        Ok(())
    }
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

/// An exclusive advisory lock on `<log>.lock`, held while a batch is
/// appended, so that several processes (CLI runs, hosts) sharing one log
/// keep one chain.
struct Locked(#[cfg(unix)] std::os::fd::RawFd);

impl Locked {
    fn new(file: &File) -> std::io::Result<Locked> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            // SAFETY: flock on a valid, open file descriptor.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Locked(fd))
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            Ok(Locked())
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: the descriptor belongs to the writer's lock file, which
        // outlives every guard (guards are locals of the writer's methods).
        #[cfg(unix)]
        unsafe {
            libc::flock(self.0, libc::LOCK_UN)
        };
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

#[cfg(test)]
mod tests;

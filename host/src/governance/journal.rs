//! The audit log's writer: a dedicated thread that takes records from a
//! bounded queue in batches, so that auditing never holds a runtime worker
//! thread for a write or an `fsync`.
//!
//! Per batch: the advisory lock on `.<name>.lock` is taken once, the chain is
//! caught up with what other processes appended (except with `buffered`), a
//! rotation is made where due, the records are chained and written, and then
//! the batch reaches the disk as its [`SyncPolicy`] says: `always` is a group
//! commit (one `fsync` for the whole batch), `flush` hands the batch to the
//! OS, `buffered` writes every [`BUFFERED_RECORDS`] records. Each waiting
//! writer is released when its batch is done, with the batch's result: an
//! error means the record was not written and the effect must not happen.
//! With `buffered`, async callers wait only for the writer to take their
//! record and sync callers not at all; a failed batch makes the next
//! appends fail until one succeeds.

use super::audit::{AuditError, Entry, Record, SyncPolicy, GENESIS};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

/// Records buffered before a write with [`SyncPolicy::Buffered`].
const BUFFERED_RECORDS: u64 = 64;
/// Records queued for the writer before appends wait for room.
const QUEUE: usize = 16 * 1024;
/// Most records written in one batch.
const MAX_BATCH: usize = 4096;

/// An open audit log. Shared by every plugin of a host.
pub struct AuditLog {
    path: PathBuf,
    sync: SyncPolicy,
    /// `None` once closed (in `Drop`).
    queue: Option<SyncSender<Job>>,
    /// The last batch failed (for `buffered` appends, which do not wait).
    failing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum Job {
    Append(Entry, Option<Arc<Done>>),
    /// Write what is buffered and `fsync`.
    Sync(Arc<Done>),
}

/// One append's result (once the writer has it) and the task waiting for it.
type DoneState = (Option<Result<(), String>>, Option<Waker>);

/// Where the writer leaves one waiting append's result.
#[derive(Default)]
struct Done {
    state: Mutex<DoneState>,
    ready: Condvar,
}

impl Done {
    fn complete(&self, result: Result<(), String>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = Some(result);
        if let Some(w) = state.1.take() {
            w.wake();
        }
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = state.0.take() {
                return r;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// An append's result, awaited without holding a thread.
struct Waiting(Arc<Done>);

impl Future for Waiting {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = state.0.take() {
            return Poll::Ready(r);
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, continuing its chain, and
    /// starts its writer thread.
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
        let (size, id) = (meta.len(), file_id(&meta));
        drop(locked);
        let writer = Writer {
            path: path.to_path_buf(),
            sync,
            rotate_bytes,
            lock,
            file: BufWriter::new(file),
            size,
            seq,
            prev,
            unsynced: 0,
            id,
            line: Vec::with_capacity(1024),
        };
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let failing = Arc::new(AtomicBool::new(false));
        let flag = failing.clone();
        let thread = std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || writer.run(jobs, &flag))
            .map_err(io)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            sync,
            queue: Some(queue),
            failing,
            thread: Some(thread),
        })
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl Into<String>) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Queues `job`, waiting for room if the queue is full.
    fn send(&self, job: Job) -> Result<(), AuditError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| self.error("the log is closed"))?;
        match queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => queue
                .send(job)
                .map_err(|_| self.error("the audit writer has stopped")),
            Err(TrySendError::Disconnected(_)) => Err(self.error("the audit writer has stopped")),
        }
    }

    /// Queues one record; `Some` what to wait for, `None` if nobody waits
    /// (`buffered`, from a thread that must not wait).
    fn queue(&self, entry: Entry, wait: bool) -> Result<Option<Arc<Done>>, AuditError> {
        if !wait {
            self.send(Job::Append(entry, None))?;
            if self.failing.load(Ordering::Relaxed) {
                return Err(self.error("the last records could not be written"));
            }
            return Ok(None);
        }
        let done = Arc::new(Done::default());
        self.send(Job::Append(entry, Some(done.clone())))?;
        Ok(Some(done))
    }

    /// Appends one record, blocking this thread until it is written as the
    /// sync policy says (not at all with `buffered`). An error means the
    /// record was not written: the caller fails closed. From async code,
    /// use [`append_async`](Self::append_async).
    pub fn append(&self, entry: Entry) -> Result<(), AuditError> {
        match self.queue(entry, self.sync != SyncPolicy::Buffered)? {
            None => Ok(()),
            Some(done) => done.wait().map_err(|m| self.error(m)),
        }
    }

    /// [`append`](Self::append) without holding a thread while waiting.
    /// The record is queued when this is called, not when the future is
    /// first polled: dropping the future does not take it back. With
    /// `buffered` it waits only until the writer has taken the record (so
    /// that a burst of records holds its tasks back, not the threads).
    pub fn append_async(
        &self,
        entry: Entry,
    ) -> impl Future<Output = Result<(), AuditError>> + Send + '_ {
        let queued = self.queue(entry, true);
        async move {
            match queued? {
                None => Ok(()),
                Some(done) => Waiting(done).await.map_err(|m| self.error(m)),
            }
        }
    }

    /// Queues one record and returns at once (for a record nobody can wait
    /// for, such as the end of a call whose caller went away).
    pub fn append_detached(&self, entry: Entry) -> Result<(), AuditError> {
        self.send(Job::Append(entry, None))
    }

    /// Writes every queued record and syncs the file.
    pub fn flush(&self) -> Result<(), AuditError> {
        let done = Arc::new(Done::default());
        self.send(Job::Sync(done.clone()))?;
        done.wait().map_err(|m| self.error(m))
    }
}

impl Drop for AuditLog {
    /// Closes the queue; the writer writes what is left, syncs and ends.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The next job: one already queued or arriving within a few microseconds
/// is taken without sleeping (a sleeping writer costs each waiting call a
/// wake-up); then the writer sleeps until one comes. `None` once every
/// handle is gone.
fn next_job(jobs: &Receiver<Job>) -> Option<Job> {
    for _ in 0..SPINS {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    jobs.recv().ok()
}

/// Polls of an empty queue before the writer sleeps.
const SPINS: u32 = 64;

/// The writer thread's state: the file and the chain.
struct Writer {
    path: PathBuf,
    sync: SyncPolicy,
    rotate_bytes: u64,
    lock: File,
    file: BufWriter<File>,
    size: u64,
    seq: u64,
    prev: String,
    unsynced: u64,
    /// (device, inode) of the file written, to notice a rotation by another process.
    id: (u64, u64),
    /// One record's text, reused.
    line: Vec<u8>,
}

impl Writer {
    fn run(mut self, jobs: Receiver<Job>, failing: &AtomicBool) {
        let mut batch = Vec::new();
        while let Some(first) = next_job(&jobs) {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let result = self.write(&mut batch).map_err(|e| e.to_string());
            if let Err(e) = &result {
                tracing::error!(path = %self.path.display(), "audit log: {e}");
                self.recover();
            }
            failing.store(result.is_err(), Ordering::Relaxed);
            for job in batch.drain(..) {
                match job {
                    Job::Append(_, Some(done)) | Job::Sync(done) => done.complete(result.clone()),
                    Job::Append(_, None) => {}
                }
            }
        }
        // Every handle is gone: what is buffered reaches the disk.
        let _ = self.file.flush();
        let _ = self.file.get_ref().sync_data();
    }

    /// Writes one batch under the lock, then syncs it as the policy says.
    fn write(&mut self, batch: &mut [Job]) -> std::io::Result<()> {
        let appends = batch.iter().any(|j| matches!(j, Job::Append(..)));
        let sync_asked = batch.iter().any(|j| matches!(j, Job::Sync(_)));
        if appends {
            let lock = self.lock.try_clone()?;
            let _locked = Locked::new(&lock)?;
            // Buffered records are this process's alone; otherwise the batch
            // continues whatever the file holds now.
            if self.sync != SyncPolicy::Buffered {
                self.catch_up()?;
            }
            // One time for the batch: its records are written together.
            let now = warden_manifest::time::rfc3339(SystemTime::now(), true);
            for job in batch.iter_mut() {
                if let Job::Append(entry, _) = job {
                    self.append(std::mem::take(entry), &now)?;
                }
            }
            match self.sync {
                SyncPolicy::Always => {
                    self.file.flush()?;
                    self.file.get_ref().sync_data()?;
                    self.unsynced = 0;
                }
                SyncPolicy::Flush => {
                    self.file.flush()?;
                    self.unsynced = 0;
                }
                SyncPolicy::Buffered => {
                    if self.unsynced >= BUFFERED_RECORDS {
                        self.file.flush()?;
                        self.unsynced = 0;
                    }
                }
            }
        }
        if sync_asked {
            self.file.flush()?;
            self.file.get_ref().sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    fn append(&mut self, entry: Entry, now: &str) -> std::io::Result<()> {
        if self.rotate_bytes > 0 && self.size >= self.rotate_bytes {
            self.rotate()?;
        }
        let record = Record {
            seq: self.seq + 1,
            time: now.to_string(),
            plugin: entry.plugin,
            digest: entry.digest,
            capability: entry.capability,
            call_id: entry.call_id,
            effect: entry.effect.as_str().to_string(),
            target: entry.target,
            decision: entry.decision.as_str().to_string(),
            reason: entry.reason,
            duration_ms: entry.duration_ms,
            client: entry.client,
            prev: std::mem::take(&mut self.prev),
            hash: String::new(),
        };
        // Serialized once: the hash is taken over the record with `hash`
        // empty (its last field), then written into that same text.
        let line = &mut self.line;
        line.clear();
        serde_json::to_writer(&mut *line, &record).expect("records serialize");
        debug_assert!(line.ends_with(br#""hash":""}"#));
        let hash = crate::digest::sha256_hex(line);
        line.truncate(line.len() - 2);
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        self.file.write_all(line)?;
        self.unsynced += 1;
        self.size += line.len() as u64;
        self.seq = record.seq;
        self.prev = hash;
        Ok(())
    }

    /// After a failed batch: drops what was buffered (never written half)
    /// and makes the next batch read the chain from the file again.
    fn recover(&mut self) {
        let reopened = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        if let Ok(file) = reopened {
            if let Ok(meta) = file.metadata() {
                self.id = file_id(&meta);
                self.size = meta.len();
            }
            let old = std::mem::replace(&mut self.file, BufWriter::new(file));
            // Not flushed: those records were reported as not written.
            let _ = old.into_parts();
        }
        self.unsynced = 0;
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
                self.file = BufWriter::new(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)?,
                );
                let meta = self.file.get_ref().metadata()?;
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
            self.file = BufWriter::new(OpenOptions::new().append(true).open(&self.path)?);
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

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        let first = first_seq(&self.path)?.unwrap_or(self.seq + 1);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{first:012}"));
        std::fs::rename(&self.path, PathBuf::from(name))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.id = file_id(&file.metadata()?);
        self.file = BufWriter::new(file);
        self.size = 0;
        self.unsynced = 0;
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

//! The audit log's writer: a dedicated thread that takes records from a
//! bounded queue in batches, so that auditing never holds a runtime worker
//! thread for a write or an `fsync`.
//!
//! Callers serialize their records' fields themselves (on their own
//! threads), so the writer only chains, hashes and writes
//! ([`file`](super::file)). A batch reaches the disk as its
//! [`SyncPolicy`] says: `always` is a group commit (one `fsync` for the whole
//! batch), `flush` hands the batch to the OS in one write, `buffered` writes
//! every 64 records. Each waiting writer is released when its batch is done,
//! with the batch's result: an error means the record was not written and
//! the effect must not happen. With `buffered`, async callers wait only for
//! the writer to take their record and sync callers not at all; a failed
//! batch makes the next appends fail until one succeeds. Under load the
//! writer lets a batch fill for up to 100 µs before writing it (see
//! [`Inbox`]); a thread blocked on a record, or a `flush`, is written at
//! once.
//!
//! A call's admission record is queued without waiting (the call runs while
//! the writer is at work); the writer keeps the order the log promises by
//! refusing the later records of a call whose admission record could not be
//! written, its end record with them, which fails the call.

use super::file::{Checkpoints, Writer};
use super::record::{Kind, Line, Pending};
use super::sink::{SinkConfig, SinkStats, Tap};
use super::{AuditError, Entry, SyncPolicy};
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Records queued for the writer before appends wait for room (and most
/// written in one batch).
const QUEUE: usize = 16 * 1024;
/// Looks at an empty queue before the writer sleeps, while records come
/// slowly.
const SPINS: u32 = 64;
/// Bytes of records a batch keeps room for once written.
const BYTES_KEPT: usize = 1 << 20;
/// Records that make a batch worth writing without waiting for more.
const ENOUGH: usize = 64;
/// A batch at least this large means records come fast: the writer waits
/// for the next batch to fill.
const BUSY: usize = 4;
/// The longest a record waits for others to join its batch while records
/// come fast.
const LINGER: Duration = Duration::from_micros(100);

/// An open audit log. Shared by every plugin of a host.
pub struct AuditLog {
    path: PathBuf,
    sync: SyncPolicy,
    queue: Arc<Inbox>,
    /// The last batch failed (for `buffered` appends, which do not wait).
    failing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The sink's tap and thread, when records are shipped.
    sink: Option<(Arc<Tap>, std::thread::JoinHandle<()>)>,
}

enum Job {
    Append(Pending, Option<Arc<Done>>),
    /// Write what is buffered and `fsync`.
    Sync(Arc<Done>),
    /// A checkpoint is due by time (if records came since the last).
    Tick,
}

/// A job as queued. A record's text is copied into its batch's bytes, so
/// that no allocation made by a caller's thread is freed by the writer's
/// (the allocator is slow at that).
enum Slot {
    Append {
        body: Range<usize>,
        call_id: Range<usize>,
        kind: Kind,
        /// Set by the writer: not written, its call was not admitted.
        refused: bool,
        done: Option<Arc<Done>>,
    },
    Sync(Arc<Done>),
    Tick,
}

/// What the writer takes at once; it hands the emptied one back.
#[derive(Default)]
struct Batch {
    slots: Vec<Slot>,
    bytes: Vec<u8>,
}

impl Batch {
    /// Queues `job`; returns the record, to be dropped by its caller.
    fn push(&mut self, job: Job) -> Option<Pending> {
        match job {
            Job::Append(record, done) => {
                let line = record.line();
                let start = self.bytes.len();
                self.bytes.extend_from_slice(line.body);
                let middle = self.bytes.len();
                self.bytes.extend_from_slice(line.call_id.as_bytes());
                self.slots.push(Slot::Append {
                    body: start..middle,
                    call_id: middle..self.bytes.len(),
                    kind: line.kind,
                    refused: false,
                    done,
                });
                Some(record)
            }
            Job::Sync(done) => {
                self.slots.push(Slot::Sync(done));
                None
            }
            Job::Tick => {
                self.slots.push(Slot::Tick);
                None
            }
        }
    }

    /// The records (with their `refused` flags).
    fn appends(&mut self) -> impl Iterator<Item = (Line<'_>, &mut bool)> {
        let Batch { slots, bytes } = self;
        let bytes = &*bytes;
        slots.iter_mut().filter_map(move |slot| match slot {
            Slot::Append {
                body,
                call_id,
                kind,
                refused,
                ..
            } => Some((
                Line {
                    body: &bytes[body.clone()],
                    call_id: std::str::from_utf8(&bytes[call_id.clone()]).unwrap_or_default(),
                    kind: *kind,
                },
                refused,
            )),
            Slot::Sync(_) | Slot::Tick => None,
        })
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Empties it for the next batch, keeping its room (up to a bound).
    fn clear(&mut self) {
        self.slots.clear();
        self.bytes.clear();
        self.bytes.shrink_to(BYTES_KEPT);
    }
}

/// The writer's queue: appends push onto a list under a lock held for a
/// push; the writer takes the whole list at once.
///
/// Batches are made as a group commit makes them. While records come
/// slowly (the last batch had fewer than [`BUSY`]), the first record wakes
/// the writer. While they come fast, the writer is woken for a batch only:
/// when the list holds [`ENOUGH`] records, or when its oldest has waited
/// [`LINGER`] for others to join it. A batch costs the writer a wake-up,
/// a lock, a look at the file and a write whatever its size, and every
/// wake-up takes a core from the runtime's workers for a moment: woken for
/// every few records, the writer held `flush` at about a third of the
/// audit-off rate on the 2-core development VM, against 0.42-0.44 so.
#[derive(Default)]
struct Inbox {
    state: Mutex<Queued>,
    /// The writer sleeps on it until a batch is worth writing.
    arrived: Condvar,
    /// Appends sleep on it while the list is full.
    room: Condvar,
}

#[derive(Default)]
struct Queued {
    jobs: Batch,
    /// When the oldest job in `jobs` came.
    since: Option<Instant>,
    /// Records come fast enough to wait for more.
    linger: bool,
    /// A thread is blocked until `jobs` is written.
    urgent: bool,
    /// No more appends: the writer writes what is left and ends.
    closed: bool,
    writer_sleeps: bool,
    appends_wait: usize,
}

impl Queued {
    /// Whether the writer should write what is queued now.
    fn ready(&self) -> bool {
        !self.jobs.is_empty()
            && (self.closed
                || self.urgent
                || self.jobs.len() >= ENOUGH
                || !self.linger
                || self.since.is_some_and(|t| t.elapsed() >= LINGER))
    }
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Queued> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, waiting while the list is full; `false` once closed.
    /// `urgent`: a thread is blocked until it is written (the batch does
    /// not wait for more).
    fn push(&self, job: Job, urgent: bool) -> bool {
        let mut queued = self.lock();
        while queued.jobs.len() >= QUEUE && !queued.closed {
            queued.appends_wait += 1;
            queued = self.room.wait(queued).unwrap_or_else(|e| e.into_inner());
            queued.appends_wait -= 1;
        }
        if queued.closed {
            return false;
        }
        let first = queued.jobs.is_empty();
        if first {
            queued.since = Some(Instant::now());
        }
        let spent = queued.jobs.push(job);
        queued.urgent |= urgent;
        // The first record starts the writer's clock; then it needs waking
        // only for a batch that may not wait.
        let wake = queued.writer_sleeps && ((first && !queued.linger) || queued.ready());
        drop(queued);
        if wake {
            self.arrived.notify_one();
        }
        // Freed on this thread, which allocated it.
        drop(spent);
        true
    }

    /// Swaps what is queued into the empty `batch` once it is ready to be
    /// written; `false` once closed and empty.
    fn take(&self, batch: &mut Batch) -> bool {
        let mut queued = self.lock();
        // While records come slowly, the next is looked for a few times
        // before sleeping: a lone call's end record usually comes within
        // them, and is then written without a wake-up.
        let mut spins = if queued.linger { 0 } else { SPINS };
        loop {
            if queued.ready() {
                std::mem::swap(&mut queued.jobs, batch);
                queued.linger = batch.len() >= BUSY;
                queued.since = None;
                queued.urgent = false;
                let waiting = queued.appends_wait > 0;
                drop(queued);
                if waiting {
                    self.room.notify_all();
                }
                return true;
            }
            if queued.closed {
                return false;
            }
            if spins > 0 && queued.jobs.is_empty() {
                spins -= 1;
                drop(queued);
                std::thread::yield_now();
                queued = self.lock();
                continue;
            }
            queued.writer_sleeps = true;
            queued = match (queued.since, queued.linger) {
                (None, false) => self.arrived.wait(queued).unwrap_or_else(|e| e.into_inner()),
                (since, _) => {
                    let left = LINGER.saturating_sub(since.map_or(Duration::ZERO, |t| t.elapsed()));
                    let (mut q, waited) = self
                        .arrived
                        .wait_timeout(queued, left)
                        .unwrap_or_else(|e| e.into_inner());
                    if waited.timed_out() && q.jobs.is_empty() {
                        q.linger = false;
                    }
                    q
                }
            };
            queued.writer_sleeps = false;
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_one();
        self.room.notify_all();
    }
}

/// Who waits for one append's result.
#[derive(Default)]
enum Waiter {
    #[default]
    Nobody,
    Task(Waker),
    Thread(Thread),
}

/// Where the writer leaves one waiting append's result.
#[derive(Default)]
struct Done {
    state: Mutex<(Option<Result<(), String>>, Waiter)>,
}

impl Done {
    fn complete(&self, result: Result<(), String>) {
        let waiter = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.0 = Some(result);
            std::mem::take(&mut state.1)
        };
        match waiter {
            Waiter::Nobody => {}
            Waiter::Task(w) => w.wake(),
            Waiter::Thread(t) => t.unpark(),
        }
    }

    /// Blocks this thread until the result is in.
    fn wait(&self) -> Result<(), String> {
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(r) = state.0.take() {
                    return r;
                }
                state.1 = Waiter::Thread(std::thread::current());
            }
            std::thread::park();
        }
    }
}

/// How [`AuditLog::submit`] waits for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nobody waits (a denial, whose effect does not happen either way; a
    /// call's admission, whose later records the writer refuses if it
    /// fails; the end of a call whose caller went away).
    Nobody,
    /// A thread blocks until the record is written (code that cannot await).
    Thread,
    /// A task awaits the record without holding its thread.
    Task,
}

/// A submitted record, to wait for (or drop: it is written either way).
#[must_use = "a receipt is waited for, or dropped on purpose"]
pub(crate) struct Receipt<'a> {
    log: &'a AuditLog,
    done: Option<Arc<Done>>,
}

impl Receipt<'_> {
    /// Blocks this thread until the record is written.
    pub(crate) fn wait(self) -> Result<(), AuditError> {
        match self.done {
            None => Ok(()),
            Some(done) => done.wait().map_err(|m| self.log.error(m)),
        }
    }

    /// Awaits the record without holding the thread.
    pub(crate) async fn written(self) -> Result<(), AuditError> {
        awaited(self.done, self.log).await
    }

    /// The receipt with a handle of its own on the log, for a future that
    /// outlives the borrow it was submitted through.
    pub(crate) fn owned(self, log: Arc<AuditLog>) -> OwnedReceipt {
        OwnedReceipt {
            log,
            done: self.done,
        }
    }
}

/// A [`Receipt`] that owns its handle on the log.
pub(crate) struct OwnedReceipt {
    log: Arc<AuditLog>,
    done: Option<Arc<Done>>,
}

impl OwnedReceipt {
    /// Awaits the record without holding the thread.
    pub(crate) async fn written(self) -> Result<(), AuditError> {
        awaited(self.done, &self.log).await
    }
}

/// A submitted record's result (`None`: nobody waits), awaited without
/// holding the thread; an error names `log`.
async fn awaited(done: Option<Arc<Done>>, log: &AuditLog) -> Result<(), AuditError> {
    match done {
        None => Ok(()),
        Some(done) => Waiting(done).await.map_err(|m| log.error(m)),
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
        state.1 = Waiter::Task(cx.waker().clone());
        Poll::Pending
    }
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, continuing its chain, and
    /// starts its writer thread.
    pub fn open(path: &Path, sync: SyncPolicy, rotate_bytes: u64) -> Result<AuditLog, AuditError> {
        Self::open_signed(path, sync, rotate_bytes, None)
    }

    /// [`open`](Self::open), with signed checkpoints when `signing` is
    /// given: one after every `records` records, every `every` while
    /// records come, at rotation and at close.
    pub fn open_signed(
        path: &Path,
        sync: SyncPolicy,
        rotate_bytes: u64,
        signing: Option<Signing>,
    ) -> Result<AuditLog, AuditError> {
        Self::open_shipped(path, sync, rotate_bytes, signing, None, None)
    }

    /// [`open_signed`](Self::open_signed), with the records shipped to a
    /// collector as they are written when `sink` is given
    /// ([`sink`](super::sink)), and each record naming `replica`.
    pub fn open_shipped(
        path: &Path,
        sync: SyncPolicy,
        rotate_bytes: u64,
        signing: Option<Signing>,
        sink: Option<SinkConfig>,
        replica: Option<&str>,
    ) -> Result<AuditLog, AuditError> {
        let every = signing.as_ref().map(|s| s.every);
        let checkpoints = signing.map(|s| Checkpoints {
            key: s.key,
            every: s.records.max(1),
            since: 0,
        });
        let mut writer = Writer::open(path, sync, rotate_bytes, checkpoints)?;
        if let Some(name) = replica {
            writer.replica(name);
        }
        let queue = Arc::new(Inbox::default());
        let sink = match sink {
            None => None,
            Some(config) => {
                let tap = Arc::new(Tap::new(config.buffer_records));
                writer.tap(tap.clone());
                let inbox = queue.clone();
                let report = Box::new(move |record| inbox.push(Job::Append(record, None), false));
                let chain = path.file_name().unwrap_or_default().to_string_lossy();
                let thread =
                    super::sink::start(config, &chain, tap.clone(), report).map_err(|e| {
                        AuditError::Io {
                            path: path.to_path_buf(),
                            message: e.to_string(),
                        }
                    })?;
                Some((tap, thread))
            }
        };
        let failing = Arc::new(AtomicBool::new(false));
        let (jobs, flag) = (queue.clone(), failing.clone());
        let thread = std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || run(writer, &jobs, &flag))
            .map_err(|e| AuditError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if let Some(every) = every {
            start_clock(&queue, every);
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            sync,
            queue,
            failing,
            thread: Some(thread),
            sink,
        })
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.lock().jobs.len()
    }

    /// What the sink has shipped and dropped, when the log has one.
    pub fn sink_stats(&self) -> Option<SinkStats> {
        self.sink.as_ref().map(|(tap, _)| tap.stats())
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

    /// Queues `job`, waiting for room if the queue is full; `urgent` when a
    /// thread blocks until it is written.
    fn send(&self, job: Job, urgent: bool) -> Result<(), AuditError> {
        if self.queue.push(job, urgent) {
            Ok(())
        } else {
            Err(self.error("the log is closed"))
        }
    }

    /// The one way a record enters the log: queued at once (dropping what
    /// this returns does not take it back), then waited for as `wait` says.
    /// An error means the record was not queued, or (for
    /// [`Wait::Nobody`]) that the writer is failing: the caller fails
    /// closed.
    pub(crate) fn submit(&self, record: Pending, wait: Wait) -> Result<Receipt<'_>, AuditError> {
        let waits = match wait {
            Wait::Nobody => false,
            // With `buffered` a thread does not wait at all; a task waits
            // until the writer has taken the record (so that a burst of
            // records holds its tasks back, not the threads).
            Wait::Thread => self.sync != SyncPolicy::Buffered,
            Wait::Task => true,
        };
        if !waits {
            self.send(Job::Append(record, None), false)?;
            if wait != Wait::Nobody && self.failing.load(Ordering::Relaxed) {
                return Err(self.error("the last records could not be written"));
            }
            return Ok(Receipt {
                log: self,
                done: None,
            });
        }
        let done = Arc::new(Done::default());
        self.send(
            Job::Append(record, Some(done.clone())),
            wait == Wait::Thread,
        )?;
        Ok(Receipt {
            log: self,
            done: Some(done),
        })
    }

    /// Appends one record, blocking this thread until it is written as the
    /// sync policy says (not at all with `buffered`). An error means the
    /// record was not written: the caller fails closed. From async code,
    /// use [`append_async`](Self::append_async).
    pub fn append(&self, entry: Entry) -> Result<(), AuditError> {
        self.submit(Pending::new(entry), Wait::Thread)?.wait()
    }

    /// [`append`](Self::append) without holding a thread while waiting.
    /// The record is queued when this is called, not when the future is
    /// first polled: dropping the future does not take it back. With
    /// `buffered` it waits only until the writer has taken the record.
    pub fn append_async(
        &self,
        entry: Entry,
    ) -> impl Future<Output = Result<(), AuditError>> + Send + '_ {
        let receipt = self.submit(Pending::new(entry), Wait::Task);
        async move { receipt?.written().await }
    }

    /// Queues one record and returns at once: for a record nobody waits
    /// for, such as the end of a call whose caller went away, or a call's
    /// admission (whose later records the writer refuses if it fails).
    pub fn append_detached(&self, entry: Entry) -> Result<(), AuditError> {
        self.submit(Pending::new(entry), Wait::Nobody).map(drop)
    }

    /// Writes every queued record and syncs the file.
    pub fn flush(&self) -> Result<(), AuditError> {
        let done = Arc::new(Done::default());
        self.send(Job::Sync(done.clone()), true)?;
        done.wait().map_err(|m| self.error(m))
    }
}

impl Drop for AuditLog {
    /// Closes the queue; the writer writes what is left, syncs and ends.
    fn drop(&mut self) {
        self.queue.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The sink ships what the writer handed it, then ends.
        if let Some((tap, thread)) = self.sink.take() {
            tap.close();
            let _ = thread.join();
        }
    }
}

/// How a log signs its checkpoints.
pub struct Signing {
    /// The host's key.
    pub key: super::signing::SigningKey,
    /// A checkpoint after this many records.
    pub records: u64,
    /// A checkpoint this often while records come.
    pub every: Duration,
}

/// Asks the writer for a checkpoint every `every` until the log closes.
fn start_clock(queue: &Arc<Inbox>, every: Duration) {
    let queue = Arc::downgrade(queue);
    let every = every.max(Duration::from_millis(10));
    let spawned = std::thread::Builder::new()
        .name("warden-audit-clock".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            match queue.upgrade() {
                Some(q) if q.push(Job::Tick, false) => {}
                _ => return,
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "audit log: no checkpoints by time ({e}); they follow records, rotation and close"
        );
    }
}

/// The writer thread: batches of jobs until the log is closed.
fn run(mut writer: Writer, jobs: &Inbox, failing: &AtomicBool) {
    raise_priority();
    let mut batch = Batch::default();
    while jobs.take(&mut batch) {
        let sync = batch.slots.iter().any(|j| matches!(j, Slot::Sync(_)));
        let tick = batch.slots.iter().any(|j| matches!(j, Slot::Tick));
        let result = writer
            .write(batch.appends(), sync, tick)
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(path = %writer.path().display(), "audit log: {e}");
            writer.recover();
            writer.unadmit(batch.appends().map(|(record, _)| record));
        }
        failing.store(result.is_err(), Ordering::Relaxed);
        for slot in batch.slots.drain(..) {
            match slot {
                Slot::Append {
                    refused: true,
                    done: Some(done),
                    ..
                } => done.complete(Err(
                    "the call's admission record could not be written".into()
                )),
                Slot::Append {
                    done: Some(done), ..
                }
                | Slot::Sync(done) => done.complete(result.clone()),
                Slot::Append { done: None, .. } | Slot::Tick => {}
            }
        }
        batch.clear();
    }
    // The log is closed: what is buffered reaches the disk.
    writer.close();
}

/// The writer thread's nice value, where it may take it.
#[cfg(target_os = "linux")]
const WRITER_NICE: libc::c_int = -10;

/// Asks the kernel to run the writer ahead of threads at normal priority.
/// Every waiting call waits on this one thread: when the runtime's workers
/// keep all cores busy, a writer at their priority gets a core late, the
/// calls wait meanwhile, and the cores go idle (on the 2-core development
/// VM, `flush` ran at 0.42-0.44 of audit-off instead of 0.47-0.54). The
/// writer's work is what the calls give it, so it takes no more CPU, only
/// sooner. A process that may not raise a priority (neither root nor
/// `CAP_SYS_NICE`, nor allowed by `RLIMIT_NICE`) keeps the normal one.
fn raise_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id.
        let raised = unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                WRITER_NICE,
            )
        };
        if raised != 0 {
            tracing::debug!(
                "audit writer keeps the normal priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

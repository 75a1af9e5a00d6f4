//! `[audit.sink]`: records shipped, as they are written, to a collector
//! (an HTTP endpoint or syslog) without ever holding up a call.
//!
//! The writer hands each written batch to a bounded [`Tap`] (one lock per
//! batch, no waiting); a thread of the sink's own takes records from it and
//! ships them ([`ship`]), retrying with back-off while the collector is
//! down. When the tap is full, newer records are not queued for the sink:
//! they are counted, and the gap (how many, which `seq` range, why) is
//! reported in the log itself as a `sink` record once the collector answers
//! again, and at least once a minute while it does not. Records are never
//! lost from the file: `warden audit export --from-seq` replays a gap.

mod ship;

use super::record::Pending;
use super::{Effect, Entry, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) use ship::Destination;

/// Default `[audit.sink] buffer-records`.
pub const DEFAULT_BUFFER_RECORDS: usize = 10_000;
/// Bytes of records the tap holds at most, whatever their count.
const BUFFER_BYTES: usize = 64 << 20;
/// Gap reports a full tap still takes.
const REPORT_ROOM: usize = 16;
/// Records shipped in one request (HTTP) or one go (syslog).
const BATCH: usize = 500;
/// Default `[audit.sink] timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// How often a gap still growing is reported.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// The longest wait between two attempts at a collector that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how records are shipped (`[audit.sink]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SinkSettings {
    /// The collector: `https://…` or `http://…` (each batch POSTed as a
    /// JSON array), `syslog://HOST:PORT` (RFC 5424 over UDP, one record a
    /// datagram) or `syslog+tcp://HOST:PORT` (RFC 5424, octet-counted, over
    /// TCP).
    pub url: String,
    /// What is shipped: `ocsf` (default: OCSF 1.9 events) or `warden` (the
    /// records as written).
    #[serde(default)]
    pub format: SinkFormat,
    /// Records held for the collector while it is slow or down (default
    /// 10000); past it they are not shipped (they stay in the file), and
    /// the gap is reported.
    #[serde(default)]
    pub buffer_records: Option<usize>,
    /// A secret of `[secrets]` sent as `Authorization: Bearer` (HTTP only).
    #[serde(default)]
    pub token_secret: Option<String>,
    /// A CA certificate (PEM) trusted for an `https` collector besides the
    /// public roots, relative to the config file.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long one attempt may take (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// What a sink ships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SinkFormat {
    /// OCSF 1.9 events ([`ocsf`](super::ocsf)).
    #[default]
    Ocsf,
    /// The records exactly as written to the file.
    Warden,
}

/// A sink ready to start: its settings with the secret and CA read.
pub struct SinkConfig {
    /// Where records go.
    pub(crate) destination: Destination,
    /// What is shipped.
    pub format: SinkFormat,
    /// See [`SinkSettings::buffer_records`].
    pub buffer_records: usize,
    /// See [`SinkSettings::timeout_ms`].
    pub timeout: Duration,
}

impl SinkConfig {
    /// Checks `settings`; `token` is the bearer secret's value and `ca` the
    /// CA file's text, read by the caller.
    pub fn new(
        settings: &SinkSettings,
        token: Option<String>,
        ca: Option<String>,
    ) -> Result<SinkConfig, String> {
        let destination = Destination::parse(&settings.url, token, ca.as_deref())?;
        let buffer_records = settings.buffer_records.unwrap_or(DEFAULT_BUFFER_RECORDS);
        if buffer_records == 0 {
            return Err("`buffer-records` must be at least 1".into());
        }
        Ok(SinkConfig {
            destination,
            format: settings.format,
            buffer_records,
            timeout: Duration::from_millis(
                settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).max(1),
            ),
        })
    }
}

/// What a sink has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records the collector took.
    pub shipped: u64,
    /// Records never shipped because the buffer was full.
    pub dropped: u64,
    /// Records waiting in the buffer.
    pub queued: u64,
    /// The last attempt failed.
    pub failing: bool,
}

/// The bounded hand-over from the writer to the sink's thread.
pub(crate) struct Tap {
    state: Mutex<TapState>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct TapState {
    lines: VecDeque<Box<[u8]>>,
    bytes: usize,
    /// Dropped and not yet reported: how many, first and last `seq`.
    gap: Option<Gap>,
    stats: SinkStats,
    closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    count: u64,
    first: u64,
    last: u64,
}

impl Tap {
    pub(crate) fn new(capacity: usize) -> Tap {
        Tap {
            state: Mutex::default(),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the records just written (JSON lines), as many as fit; never
    /// waits for room.
    pub(crate) fn offer(&self, written: &[u8]) {
        let mut state = self.lock();
        for line in written.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let room = if is_report(line) {
                // A gap's report gets past a full tap: it must reach the
                // collector, or the gap would be silent there.
                self.capacity + REPORT_ROOM
            } else {
                self.capacity
            };
            if state.lines.len() < room && state.bytes + line.len() <= BUFFER_BYTES {
                state.bytes += line.len();
                state.lines.push_back(line.into());
            } else {
                let seq = seq_of(line);
                state.stats.dropped += 1;
                let gap = state.gap.get_or_insert(Gap {
                    count: 0,
                    first: seq,
                    last: seq,
                });
                gap.count += 1;
                gap.last = seq;
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Up to `max` records, waiting up to `wait` for the first; empty once
    /// closed and drained (or when the wait ran out).
    fn take(&self, max: usize, wait: Duration) -> (Vec<Box<[u8]>>, bool) {
        let mut state = self.lock();
        if state.lines.is_empty() && !state.closed {
            state = self
                .ready
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let n = state.lines.len().min(max);
        let taken: Vec<Box<[u8]>> = state.lines.drain(..n).collect();
        state.bytes -= taken.iter().map(|l| l.len()).sum::<usize>();
        state.stats.queued = state.lines.len() as u64;
        (taken, state.closed && state.lines.is_empty())
    }

    fn shipped(&self, n: usize, ok: bool) {
        let mut state = self.lock();
        if ok {
            state.stats.shipped += n as u64;
        }
        state.stats.failing = !ok;
    }

    fn take_gap(&self) -> Option<Gap> {
        self.lock().gap.take()
    }

    pub(crate) fn stats(&self) -> SinkStats {
        let state = self.lock();
        SinkStats {
            queued: state.lines.len() as u64,
            ..state.stats
        }
    }

    /// No more records come: the sink ships what it holds and ends.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits `wait`, or less if the tap is closed meanwhile.
    fn pause(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        while !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Whether a record is a sink's gap report (`"effect":"sink"`).
fn is_report(line: &[u8]) -> bool {
    const MARK: &[u8] = br#","effect":"sink","#;
    line.windows(MARK.len()).any(|w| w == MARK)
}

/// The `seq` a record begins with (`{"seq":N,...`), 0 if unreadable.
fn seq_of(line: &[u8]) -> u64 {
    line.strip_prefix(br#"{"seq":"#)
        .map(|rest| {
            rest.iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |n, b| {
                    n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                })
        })
        .unwrap_or(0)
}

/// Writes a record into the log the sink ships (for its gap reports).
pub(crate) type Report = Box<dyn Fn(Pending) -> bool + Send>;

/// Starts the sink's thread; it ends once `tap` is closed and drained.
/// `chain` names the log in OCSF events (its file name).
pub(crate) fn start(
    config: SinkConfig,
    chain: &str,
    tap: Arc<Tap>,
    report: Report,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let events = super::ocsf::Events::new(chain);
    std::thread::Builder::new()
        .name("warden-audit-sink".into())
        .spawn(move || run(config, &events, &tap, &report))
}

/// The sink's thread: batches from the tap, shipped until they are taken.
fn run(config: SinkConfig, events: &super::ocsf::Events, tap: &Tap, report: &Report) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("audit sink: no runtime ({e}); records are not shipped");
            return;
        }
    };
    let mut shipper = ship::Shipper::new(&config.destination, config.timeout);
    let mut reporter = GapReporter::new(config.destination.to_string());
    let host = ship::hostname();
    loop {
        let (batch, done) = tap.take(BATCH, Duration::from_secs(1));
        if !batch.is_empty() {
            let payload =
                ship::encode(&batch, config.format, events).frame(&config.destination, &host);
            let mut shipping = Shipping {
                runtime: &runtime,
                shipper: &mut shipper,
                tap,
                reporter: &mut reporter,
                report,
            };
            shipping.until_taken(&payload);
        }
        reporter.maybe_report(tap, report, false);
        if done {
            break;
        }
    }
    reporter.maybe_report(tap, report, true);
}

/// What shipping a batch needs.
struct Shipping<'a> {
    runtime: &'a tokio::runtime::Runtime,
    shipper: &'a mut ship::Shipper,
    tap: &'a Tap,
    reporter: &'a mut GapReporter,
    report: &'a Report,
}

impl Shipping<'_> {
    /// Ships one batch, retrying with back-off until the collector takes
    /// it or the log closes (then the batch is reported as not shipped).
    fn until_taken(&mut self, payload: &ship::Payload) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.runtime.block_on(self.shipper.send(payload)) {
                Ok(()) => {
                    self.tap.shipped(payload.records(), true);
                    self.reporter.recovered();
                    return;
                }
                Err(e) => {
                    self.tap.shipped(0, false);
                    self.reporter.failed(&e);
                    if self.tap.closed() {
                        self.reporter.lost(payload.records(), payload.seqs());
                        return;
                    }
                    self.reporter.maybe_report(self.tap, self.report, false);
                    self.tap.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Reports gaps: in the log (a `sink` record) and the process log.
struct GapReporter {
    url: String,
    last_error: Option<String>,
    last_report: Instant,
    /// The collector answered since the last report.
    answered: bool,
    /// Records lost at close (never queued again), with their seq range.
    lost: Option<Gap>,
}

impl GapReporter {
    fn new(url: String) -> GapReporter {
        GapReporter {
            url,
            last_error: None,
            last_report: Instant::now(),
            answered: false,
            lost: None,
        }
    }

    fn failed(&mut self, error: &str) {
        if self.last_error.as_deref() != Some(error) {
            tracing::warn!(sink = %self.url, "audit sink: {error}; retrying (records stay in the log file)");
        }
        self.last_error = Some(error.to_string());
    }

    fn recovered(&mut self) {
        if self.last_error.is_some() {
            tracing::info!(sink = %self.url, "audit sink: the collector answers again");
        }
        self.answered = true;
    }

    fn lost(&mut self, count: usize, (first, last): (u64, u64)) {
        self.lost = Some(Gap {
            count: count as u64,
            first,
            last,
        });
    }

    /// Reports the tap's gap once the collector answers again, at least
    /// every minute while it grows, and at close.
    fn maybe_report(&mut self, tap: &Tap, report: &Report, closing: bool) {
        if !(closing || self.answered || self.last_report.elapsed() >= REPORT_EVERY) {
            return;
        }
        let gap = merge(tap.take_gap(), self.lost.take());
        self.answered = false;
        let Some(gap) = gap else { return };
        self.last_report = Instant::now();
        let why = self.last_error.as_deref().unwrap_or("the buffer was full");
        let reason = format!(
            "{} records (seq {}-{}) not shipped: {why}; they are in the log file",
            gap.count, gap.first, gap.last
        );
        tracing::warn!(sink = %self.url, "audit sink: {reason}");
        let record = Pending::new(Entry {
            effect: Effect::Sink,
            target: self.url.clone(),
            decision: Outcome::Error,
            reason,
            ..Entry::default()
        });
        // At close the log no longer takes records: the warning stays.
        let _ = report(record);
    }
}

fn merge(a: Option<Gap>, b: Option<Gap>) -> Option<Gap> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Gap {
            count: a.count + b.count,
            first: a.first.min(b.first),
            last: a.last.max(b.last),
        }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64) -> String {
        format!("{{\"seq\":{seq},\"time\":\"t\"}}\n")
    }

    #[test]
    fn a_full_tap_counts_the_gap_and_never_waits() {
        let tap = Tap::new(2);
        let written: String = (1..=5).map(line).collect();
        tap.offer(written.as_bytes());
        let stats = tap.stats();
        assert_eq!((stats.queued, stats.dropped), (2, 3));
        assert_eq!(
            tap.take_gap(),
            Some(Gap {
                count: 3,
                first: 3,
                last: 5
            })
        );
        let (taken, done) = tap.take(10, Duration::ZERO);
        assert_eq!(taken.len(), 2);
        assert!(!done);
        tap.close();
        assert!(tap.take(10, Duration::ZERO).1);
    }

    #[test]
    fn a_gap_report_gets_past_a_full_tap() {
        let tap = Tap::new(1);
        let report = "{\"seq\":3,\"time\":\"t\",\"plugin\":\"\",\"digest\":\"\",\"capability\":\"\",\"call_id\":\"\",\"effect\":\"sink\",\"target\":\"x\"}\n";
        tap.offer(format!("{}{}{report}", line(1), line(2)).as_bytes());
        let stats = tap.stats();
        assert_eq!((stats.queued, stats.dropped), (2, 1));
    }

    #[test]
    fn seq_is_read_from_the_record_start() {
        assert_eq!(seq_of(br#"{"seq":1234,"time":"x"}"#), 1234);
        assert_eq!(seq_of(b"junk"), 0);
    }
}

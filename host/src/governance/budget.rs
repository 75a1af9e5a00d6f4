//! The audit log's volume over time: records and bytes per minute, charged
//! to the plugin whose effects they record and to the client whose calls
//! they record (`[audit] max-records-per-minute`, `max-bytes-per-minute`).
//!
//! Past a budget nothing is dropped silently: a denial is counted instead
//! of written, an allowed effect or a client's call is refused (what
//! cannot be recorded does not happen) and counted, and the counts are
//! written as one summary record when the minute ends (at the next record
//! charged to the same plugin or client, or when the host shuts down).

pub use crate::audit::VolumeLimits;
use crate::audit::{AuditLog, Effect, Entry, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The length of a budget's window.
const WINDOW: Duration = Duration::from_secs(60);
/// Most clients whose windows are kept; past it, the oldest window goes
/// (its summary written first).
const MAX_CLIENTS: usize = 4096;

/// What was not written in one window.
#[derive(Debug, Default, Clone)]
struct Overflow {
    denied: u64,
    refused: u64,
    bytes: u64,
    last_target: String,
}

/// One plugin's or client's window.
#[derive(Debug)]
struct Window {
    start: Instant,
    records: u64,
    bytes: u64,
    over: Overflow,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            records: 0,
            bytes: 0,
            over: Overflow::default(),
        }
    }
}

/// The budget of one plugin (its effect records) or one client (its
/// calls), with the log its summaries go to.
pub(crate) struct Budget {
    limits: VolumeLimits,
    who: Who,
    log: Option<Arc<AuditLog>>,
    window: Mutex<Window>,
}

/// Whom a budget is charged to, as its summary names it.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    Plugin(Arc<str>),
    Client(String),
}

impl Budget {
    pub(crate) fn new(limits: VolumeLimits, who: Who, log: Option<Arc<AuditLog>>) -> Budget {
        Budget {
            limits,
            who,
            log,
            window: Mutex::new(Window::new(Instant::now())),
        }
    }

    /// Charges `records` records of about `bytes` in all: `true` if they
    /// may be written. Otherwise the effect or call is counted (`deny`: a
    /// denial, else a refusal) for the window's summary. A window that
    /// ended has its summary written first.
    pub(crate) fn charge(&self, records: u64, bytes: u64, deny: bool, target: &str) -> bool {
        let now = Instant::now();
        let ended = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let ended = (now.duration_since(w.start) >= WINDOW)
                .then(|| std::mem::replace(&mut *w, Window::new(now)));
            if w.records.saturating_add(records) <= self.limits.records
                && w.bytes.saturating_add(bytes) <= self.limits.bytes
            {
                w.records += records;
                w.bytes += bytes;
                drop(w);
                self.summarize(ended);
                return true;
            }
            if deny {
                w.over.denied += 1;
            } else {
                w.over.refused += 1;
            }
            w.over.bytes += bytes;
            w.over.last_target.clear();
            w.over.last_target.extend(target.chars().take(256));
            ended
        };
        self.summarize(ended);
        false
    }

    /// Writes the summary of what an ended window did not write, if any.
    fn summarize(&self, ended: Option<Window>) {
        let Some(w) = ended.filter(|w| w.over.denied + w.over.refused > 0) else {
            return;
        };
        let Some(log) = &self.log else { return };
        let (plugin, client, setting) = match &self.who {
            Who::Plugin(p) => (p.to_string(), None, "this plugin's effects"),
            Who::Client(c) => (String::new(), Some(c.clone()), "this client's calls"),
        };
        let o = &w.over;
        let reason = format!(
            "past [audit] max-records-per-minute ({}) or max-bytes-per-minute ({}) for {setting}: \
             {} denials counted and {} effects or calls refused, about {} bytes, not written one by one",
            self.limits.records, self.limits.bytes, o.denied, o.refused, o.bytes
        );
        let entry = Entry {
            plugin,
            effect: Effect::Limit,
            target: format!("{} records, last: {}", o.denied + o.refused, o.last_target),
            decision: Outcome::Deny,
            reason,
            client,
            ..Default::default()
        };
        if let Err(e) = log.append(entry) {
            tracing::error!("audit log: {e}");
        }
    }

    /// Ends the window now (the summary written if anything was counted).
    pub(crate) fn close(&self) {
        let ended = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *w, Window::new(Instant::now()))
        };
        self.summarize(Some(ended));
    }
}

/// The budgets of every client, bounded in number.
pub(crate) struct ClientBudgets {
    limits: VolumeLimits,
    log: Option<Arc<AuditLog>>,
    by_client: Mutex<HashMap<String, Arc<Budget>>>,
}

impl ClientBudgets {
    pub(crate) fn new(limits: VolumeLimits, log: Option<Arc<AuditLog>>) -> ClientBudgets {
        ClientBudgets {
            limits,
            log,
            by_client: Mutex::new(HashMap::new()),
        }
    }

    /// The limits each client's budget has.
    pub(crate) fn limits(&self) -> VolumeLimits {
        self.limits
    }

    /// The budget of `client`.
    pub(crate) fn of(&self, client: &str) -> Arc<Budget> {
        let mut all = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = all.get(client) {
            return b.clone();
        }
        if all.len() >= MAX_CLIENTS {
            let oldest = all
                .iter()
                .min_by_key(|(_, b)| {
                    b.window
                        .lock()
                        .map(|w| w.start)
                        .unwrap_or_else(|_| Instant::now())
                })
                .map(|(k, _)| k.clone());
            if let Some(b) = oldest.and_then(|k| all.remove(&k)) {
                b.close();
            }
        }
        let b = Arc::new(Budget::new(
            self.limits,
            Who::Client(client.to_string()),
            self.log.clone(),
        ));
        all.insert(client.to_string(), b.clone());
        b
    }

    /// Writes every client's pending summary (at shutdown).
    pub(crate) fn close(&self) {
        let all = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        for b in all.values() {
            b.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_records_are_counted_and_summarized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = Arc::new(AuditLog::open(&path, crate::audit::SyncPolicy::Flush, 0).unwrap());
        let limits = VolumeLimits {
            records: 3,
            bytes: 1 << 20,
        };
        let b = Budget::new(limits, Who::Plugin("p".into()), Some(log.clone()));
        let admitted: Vec<bool> = (0..10).map(|i| b.charge(1, 100, i % 2 == 0, "t")).collect();
        assert_eq!(admitted.iter().filter(|a| **a).count(), 3);
        b.close();
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("3 denials counted and 4 effects or calls refused"),
            "{text}"
        );
        // By bytes too.
        let b = Budget::new(
            VolumeLimits {
                records: 100,
                bytes: 250,
            },
            Who::Client("c".into()),
            None,
        );
        assert!(b.charge(1, 200, false, "t"));
        assert!(!b.charge(1, 100, false, "t"));
    }
}

//! Progress reports from plugins (`host.progress`): passed on to whoever
//! asked for the call ([`CallContext::progress`](crate::CallContext)), at
//! most [`REPORTS_PER_SECOND`] a second per call (a report that reaches its
//! total always goes), with the message cut to one line of
//! [`MAX_MESSAGE_BYTES`]. A call's listener is found by its call id, so that
//! a report reaches it through every route (direct, session, provider
//! kind) without the route knowing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reports one call passes on per second at most.
pub const REPORTS_PER_SECOND: u32 = 10;
/// Longest message passed on, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 512;

/// One progress report of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The capability called.
    pub capability: String,
    /// How much is done.
    pub done: u64,
    /// Of how much, when the plugin knows.
    pub total: Option<u64>,
    /// What it is doing (one line).
    pub message: String,
}

/// Receives a call's progress reports. Called on the runtime's threads:
/// return at once (hand the report to a channel, say).
pub trait ProgressSink: Send + Sync {
    /// One report.
    fn report(&self, progress: Progress);
}

impl<F: Fn(Progress) + Send + Sync> ProgressSink for F {
    fn report(&self, progress: Progress) {
        self(progress)
    }
}

/// The listeners of the calls in progress, by call id (one table per host).
#[derive(Default)]
pub(crate) struct Listeners {
    by_call: Mutex<HashMap<String, Arc<dyn ProgressSink>>>,
}

impl Listeners {
    /// `sink` listens to call `call_id` until the guard is dropped.
    pub(crate) fn listen<'a>(
        &'a self,
        call_id: &str,
        sink: Arc<dyn ProgressSink>,
    ) -> Listening<'a> {
        self.lock().insert(call_id.to_string(), sink);
        Listening {
            listeners: self,
            call_id: call_id.to_string(),
        }
    }

    /// The listener of call `call_id`, if any.
    pub(crate) fn of(&self, call_id: &str) -> Option<Arc<dyn ProgressSink>> {
        self.lock().get(call_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn ProgressSink>>> {
        self.by_call.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A call's listener, removed when dropped (the call ended or went away).
pub(crate) struct Listening<'a> {
    listeners: &'a Listeners,
    call_id: String,
}

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.listeners.lock().remove(&self.call_id);
    }
}

/// One instance's pace of reports within the call in progress.
#[derive(Default)]
pub(crate) struct Pace {
    last: Option<Instant>,
}

impl Pace {
    /// A new call: its first report goes.
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }

    /// Whether a report of `done` of `total` goes now.
    pub(crate) fn admits(&mut self, done: u64, total: Option<u64>) -> bool {
        let now = Instant::now();
        let gap = Duration::from_secs(1) / REPORTS_PER_SECOND;
        let last = total.is_some_and(|t| done >= t);
        if last || self.last.is_none_or(|at| now.duration_since(at) >= gap) {
            self.last = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_paced_and_the_last_report_goes() {
        let mut pace = Pace::default();
        let passed = (0..10_000)
            .filter(|i| pace.admits(*i, Some(10_000)))
            .count();
        assert!((1..=3).contains(&passed), "{passed} of a burst went");
        assert!(pace.admits(10_000, Some(10_000)), "the last one goes");
        pace.reset();
        assert!(pace.admits(1, None), "a new call's first goes");
    }

    #[test]
    fn a_listener_hears_its_call_until_it_stops() {
        let listeners = Listeners::default();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let sink: Arc<dyn ProgressSink> = Arc::new(move |p: Progress| h.lock().unwrap().push(p));
        let guard = listeners.listen("c1", sink);
        assert!(listeners.of("c2").is_none(), "another call's");
        listeners.of("c1").unwrap().report(Progress {
            capability: "x".into(),
            done: 1,
            total: None,
            message: String::new(),
        });
        drop(guard);
        assert!(listeners.of("c1").is_none());
        assert_eq!(heard.lock().unwrap().len(), 1);
    }
}

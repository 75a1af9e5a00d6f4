//! Refusals at the front door, counted by reason and logged.
//!
//! Each refusal is logged at `debug` with what was refused; the first of a
//! reason, and then at most one a second per reason, is logged at `warn`
//! with the count so far (a flood must not become a flood of log lines).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Why a request or a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `initialize` past `max-sessions` or `max-sessions-per-principal`.
    SessionCap,
    /// 429: past `max-concurrent-per-client` or `max-concurrent`.
    Busy,
    /// 421: a `Host` header that does not name this machine.
    Misdirected,
    /// 403: an `Origin` not allowed.
    Origin,
    /// 401: no valid bearer token.
    Unauthorized,
    /// 415: a POST whose `Content-Type` is not `application/json`.
    MediaType,
    /// A new connection closed at once: every open one is serving a request.
    ConnectionCap,
    /// A connection closed to make room for a new one: it had waited the
    /// longest for a request.
    Shed,
    /// A connection closed before its first request's headers came whole.
    HeaderTimeout,
    /// 408: a request body that did not come whole in time.
    BodyTimeout,
}

const KINDS: [Refusal; 10] = [
    Refusal::SessionCap,
    Refusal::Busy,
    Refusal::Misdirected,
    Refusal::Origin,
    Refusal::Unauthorized,
    Refusal::MediaType,
    Refusal::ConnectionCap,
    Refusal::Shed,
    Refusal::HeaderTimeout,
    Refusal::BodyTimeout,
];

impl Refusal {
    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The name in logs.
    fn name(self) -> &'static str {
        match self {
            Refusal::SessionCap => "session-cap",
            Refusal::Busy => "busy",
            Refusal::Misdirected => "misdirected",
            Refusal::Origin => "origin",
            Refusal::Unauthorized => "unauthorized",
            Refusal::MediaType => "media-type",
            Refusal::ConnectionCap => "connection-cap",
            Refusal::Shed => "shed",
            Refusal::HeaderTimeout => "header-timeout",
            Refusal::BodyTimeout => "body-timeout",
        }
    }
}

/// How many requests and connections were refused since start, by reason
/// ([`Server::refusals`](crate::Server::refusals)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusalCounts {
    /// `initialize` refused: `max-sessions` or `max-sessions-per-principal`.
    pub session_cap: u64,
    /// 429: `max-concurrent-per-client` or `max-concurrent`.
    pub busy: u64,
    /// 421: a `Host` header not naming this machine.
    pub misdirected: u64,
    /// 403: an `Origin` not allowed.
    pub origin: u64,
    /// 401: no valid bearer token.
    pub unauthorized: u64,
    /// 415: a POST that is not `application/json`.
    pub media_type: u64,
    /// New connections closed at once: every open one was serving.
    pub connection_cap: u64,
    /// Connections closed to make room: they waited longest for a request.
    pub shed: u64,
    /// Connections closed: no whole request headers in `header-timeout-ms`.
    pub header_timeout: u64,
    /// 408: no whole request body in `body-timeout-ms`.
    pub body_timeout: u64,
}

impl RefusalCounts {
    /// Every refusal, whatever the reason.
    pub fn total(&self) -> u64 {
        self.session_cap
            + self.busy
            + self.misdirected
            + self.origin
            + self.unauthorized
            + self.media_type
            + self.connection_cap
            + self.shed
            + self.header_timeout
            + self.body_timeout
    }
}

/// The counters, in the server's shared state.
pub(crate) struct Refusals {
    counts: [AtomicU64; KINDS.len()],
    /// Milliseconds after `start` of each reason's last `warn` line, plus 1
    /// (0: never).
    warned: [AtomicU64; KINDS.len()],
    start: Instant,
}

impl Refusals {
    pub(crate) fn new() -> Self {
        Refusals {
            counts: Default::default(),
            warned: Default::default(),
            start: Instant::now(),
        }
    }

    /// Counts and logs one refusal; `what` says what was refused and why.
    pub(crate) fn note(&self, reason: Refusal, what: &str) {
        let i = reason.index();
        let n = self.counts[i].fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(reason = reason.name(), count = n, "refused: {what}");
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.warned[i].load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1000;
        if due
            && self.warned[i]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                reason = reason.name(),
                count = n,
                "refused: {what} ({n} refused for {} since start)",
                reason.name()
            );
        }
    }

    pub(crate) fn counts(&self) -> RefusalCounts {
        let c = |r: Refusal| self.counts[r.index()].load(Ordering::Relaxed);
        RefusalCounts {
            session_cap: c(Refusal::SessionCap),
            busy: c(Refusal::Busy),
            misdirected: c(Refusal::Misdirected),
            origin: c(Refusal::Origin),
            unauthorized: c(Refusal::Unauthorized),
            media_type: c(Refusal::MediaType),
            connection_cap: c(Refusal::ConnectionCap),
            shed: c(Refusal::Shed),
            header_timeout: c(Refusal::HeaderTimeout),
            body_timeout: c(Refusal::BodyTimeout),
        }
    }

    /// One line for the log: `reason=count` for each reason seen.
    pub(crate) fn summary(&self) -> String {
        let parts: Vec<String> = KINDS
            .iter()
            .filter_map(|k| {
                let n = self.counts[k.index()].load(Ordering::Relaxed);
                (n > 0).then(|| format!("{}={n}", k.name()))
            })
            .collect();
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_counted_apart() {
        let r = Refusals::new();
        for k in KINDS {
            r.note(k, "test");
        }
        r.note(Refusal::Shed, "again");
        let c = r.counts();
        assert_eq!((c.shed, c.busy, c.total()), (2, 1, 11));
        assert!(r.summary().contains("shed=2"), "{}", r.summary());
    }
}

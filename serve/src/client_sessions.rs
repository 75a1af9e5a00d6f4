//! Sessions of 2025-11-25 clients (`initialize`, `Mcp-Session-Id`), each
//! bound to the principal that opened it; and the requests this server sends
//! a client (elicitation) while one of its calls waits.

use crate::approval::{hex, random, BackChannel};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// One client session.
pub(crate) struct Session {
    pub id: String,
    pub principal: String,
    pub version: String,
    /// `name version` from `clientInfo`.
    pub client: String,
    /// The client declared `elicitation`: it can ask its user.
    pub elicitation: bool,
    pub initialized: AtomicBool,
    last_used: Mutex<Instant>,
    /// Requests sent to the client, by id, waiting for its answer.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next: AtomicU64,
    /// The client's requests in progress, to cancel on `notifications/cancelled`.
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Session {
    fn new(id: String, principal: &str, version: &str, client: String, elicitation: bool) -> Self {
        Session {
            id,
            principal: principal.to_string(),
            version: version.to_string(),
            client,
            elicitation,
            initialized: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            waiting: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The host's session key for calls of this client session.
    pub(crate) fn pool_key(&self) -> String {
        format!("mcp:{}:{}", self.principal, self.id)
    }

    pub(crate) fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Hands the client's answer to the request waiting for it; `false` if
    /// none waits under that id.
    pub(crate) fn deliver(&self, id: &Value, body: Value) -> bool {
        let key = id.to_string();
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        waiter.is_some_and(|w| w.send(body).is_ok())
    }

    pub(crate) fn track(&self, id: &Value, task: tokio::task::AbortHandle) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, t| !t.is_finished());
        running.insert(id.to_string(), task);
    }

    pub(crate) fn untrack(&self, id: &Value) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id.to_string());
    }

    /// `notifications/cancelled`: stops the request (its call's end is
    /// recorded as `cancelled`).
    pub(crate) fn cancel(&self, id: &Value) {
        if let Some(t) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id.to_string())
        {
            t.abort();
        }
    }

    fn abort_all(&self) {
        for (_, t) in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            t.abort();
        }
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Where messages to one client go.
#[derive(Clone)]
pub(crate) enum Sink {
    /// SSE events of one HTTP response.
    Events(mpsc::Sender<bytes::Bytes>),
    /// Lines on stdout.
    Lines(mpsc::Sender<String>),
}

impl Sink {
    /// Sends `message` unless the client's stream is full or gone (for
    /// notifications, which are dropped rather than waited for).
    pub(crate) fn offer(&self, message: &Value) -> bool {
        match self {
            Sink::Events(tx) => tx.try_send(crate::protocol::sse_event(message)).is_ok(),
            Sink::Lines(tx) => tx.try_send(message.to_string()).is_ok(),
        }
    }

    pub(crate) async fn send(&self, message: &Value) -> bool {
        match self {
            Sink::Events(tx) => tx.send(crate::protocol::sse_event(message)).await.is_ok(),
            Sink::Lines(tx) => tx.send(message.to_string()).await.is_ok(),
        }
    }
}

/// Requests to the client of `session` through `sink`.
pub(crate) struct Outbound {
    pub session: Arc<Session>,
    pub sink: Sink,
}

impl BackChannel for Outbound {
    fn request<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>> {
        Box::pin(async move {
            let n = self.session.next.fetch_add(1, Ordering::Relaxed);
            let id = Value::String(format!("warden-{n}"));
            let (tx, rx) = oneshot::channel();
            self.session
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_string(), tx);
            let message =
                serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            if !self.sink.send(&message).await {
                return Err("the client is gone".into());
            }
            let answer = rx.await.map_err(|_| "the session ended".to_string())?;
            match (answer.get("result"), answer.get("error")) {
                (Some(r), _) => Ok(r.clone()),
                (None, Some(e)) => Err(format!("the client answered with an error: {e}")),
                _ => Err("the client's answer has neither result nor error".into()),
            }
        })
    }
}

/// Why `initialize` could not open a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max-sessions` are open.
    Total,
    /// The principal has `max-sessions-per-principal` open.
    Principal,
}

#[derive(Default)]
struct Open {
    map: HashMap<String, Arc<Session>>,
    /// Open sessions of each principal.
    by_principal: HashMap<String, usize>,
}

impl Open {
    fn take(&mut self, id: &str) -> Option<Arc<Session>> {
        let s = self.map.remove(id)?;
        if let Some(n) = self.by_principal.get_mut(&s.principal) {
            *n -= 1;
            if *n == 0 {
                self.by_principal.remove(&s.principal);
            }
        }
        Some(s)
    }
}

/// Every open session: at most `max`, and `per_principal` of one principal.
pub(crate) struct Sessions {
    open: Mutex<Open>,
    max: usize,
    per_principal: usize,
    idle: Duration,
}

impl Sessions {
    pub(crate) fn new(max: usize, per_principal: usize, idle: Duration) -> Self {
        Sessions {
            open: Mutex::new(Open::default()),
            max,
            per_principal,
            idle,
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session of `principal`, unless a cap is reached.
    pub(crate) fn start(
        &self,
        principal: &str,
        version: &str,
        client: String,
        elicitation: bool,
    ) -> Result<Arc<Session>, Full> {
        let id = hex(&random::<16>());
        self.insert(Session::new(id, principal, version, client, elicitation))
    }

    fn insert(&self, session: Session) -> Result<Arc<Session>, Full> {
        let session = Arc::new(session);
        let principal = session.principal.as_str();
        let mut open = self.open();
        if let Some(there) = open.map.get(&session.id) {
            // Adopted by another request meanwhile.
            return Ok(there.clone());
        }
        let mine = open.by_principal.get(principal).copied().unwrap_or(0);
        if mine >= self.per_principal {
            return Err(Full::Principal);
        }
        if open.map.len() >= self.max {
            return Err(Full::Total);
        }
        open.map.insert(session.id.clone(), session.clone());
        open.by_principal.insert(principal.to_string(), mine + 1);
        Ok(session)
    }

    /// Takes in session `id`, opened on another replica, unless a cap is
    /// reached (its requests may come here from now on).
    pub(crate) fn adopt(
        &self,
        id: &str,
        principal: &str,
        version: &str,
        client: String,
        elicitation: bool,
    ) -> Result<Arc<Session>, Full> {
        self.insert(Session::new(
            id.to_string(),
            principal,
            version,
            client,
            elicitation,
        ))
    }

    /// The session `id`, if it is open and belongs to `principal`.
    pub(crate) fn get(&self, id: &str, principal: &str) -> Option<Arc<Session>> {
        let found = self.open().map.get(id).cloned()?;
        (found.principal == principal).then(|| {
            found.touch();
            found
        })
    }

    /// Ends a session: its requests in progress stop; returns it so that
    /// the caller can end its host sessions.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.open().take(id)?;
        s.abort_all();
        Some(s)
    }

    /// Removes sessions idle longer than the limit and returns them.
    pub(crate) fn expired(&self) -> Vec<Arc<Session>> {
        let mut open = self.open();
        let idle: Vec<String> = open
            .map
            .iter()
            .filter(|(_, s)| {
                s.idle_for() >= self.idle
                    && s.running
                        .lock()
                        .map(|r| r.values().all(|t| t.is_finished()))
                        .unwrap_or(true)
            })
            .map(|(k, _)| k.clone())
            .collect();
        idle.iter().filter_map(|k| open.take(k)).collect()
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Session>> {
        let mut open = self.open();
        open.by_principal.clear();
        open.map.drain().map(|(_, s)| s).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.open().map.len()
    }
}

/// Sends `notifications/tools/list_changed` to a 2025-11-25 client (or, with
/// `subscription`, on a 2026-07-28 listen stream) whenever the list changes.
pub(crate) async fn list_changes(
    shared: Arc<crate::Shared>,
    sink: Sink,
    subscription: Option<Value>,
) {
    let mut changes = shared.changes.subscribe();
    changes.borrow_and_update();
    while changes.changed().await.is_ok() {
        let params = match &subscription {
            Some(id) => serde_json::json!({"_meta": {crate::protocol::META_SUBSCRIPTION: id}}),
            None => serde_json::json!({}),
        };
        if !sink
            .send(&crate::protocol::notification(
                "notifications/tools/list_changed",
                params,
            ))
            .await
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(s: &Sessions, who: &str) -> Result<Arc<Session>, Full> {
        s.start(who, "2025-11-25", "test 1".into(), false)
    }

    #[test]
    fn one_principal_cannot_take_anothers_sessions() {
        let s = Sessions::new(5, 2, Duration::from_secs(60));
        let a1 = start(&s, "a").unwrap();
        start(&s, "a").unwrap();
        assert_eq!(start(&s, "a").err(), Some(Full::Principal));
        start(&s, "b").unwrap();
        start(&s, "b").unwrap();
        start(&s, "c").unwrap();
        assert_eq!(start(&s, "c").err(), Some(Full::Total));
        // An ended session gives its principal a slot back.
        s.remove(&a1.id).unwrap();
        start(&s, "a").unwrap();
        assert_eq!(s.len(), 5);
        s.drain();
        assert!(start(&s, "a").is_ok() && start(&s, "a").is_ok());
    }
}

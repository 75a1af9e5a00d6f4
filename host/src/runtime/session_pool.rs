//! The session pool: generic, keyed by (plugin, server, caller's session
//! key). Any capability whose metadata asks for a session
//! (`*.requires-session`) is served here; no provider name appears.
//!
//! Each session lives in an instance of its own and is reused across calls
//! with the same key. Sessions idle longer than the plugin's
//! `sessions.idle-ttl-ms` are closed by a sweeper; at
//! `sessions.max-per-server` (or `sessions.max` for the plugin) the least
//! recently used idle session is closed to make room. A session whose
//! instance traps or hits a limit is dropped (a fresh instance is handed its
//! remote state to end, e.g. an MCP `DELETE`); the next call opens a new one.
//! Closing drops the guest's session resource, so the provider can end the
//! remote session (an MCP `DELETE`).

use crate::error::{Error, ErrorKind, Result};
use crate::governance::CallTag;
use crate::registry::CapabilityInfo;
use crate::runtime::plugin::{LiveSession, LoadedPlugin};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_manifest::route::Route;

/// The caller's session key when none is given.
pub const DEFAULT_SESSION_KEY: &str = "default";

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Key {
    plugin: usize,
    scope: String,
    caller: String,
}

struct Slot {
    plugin: Arc<LoadedPlugin>,
    live: tokio::sync::Mutex<Option<LiveSession>>,
    last_used: Mutex<Instant>,
}

impl Slot {
    fn touch(&self) {
        *self.last_used.lock().expect("slot lock") = Instant::now();
    }
    fn idle_for(&self) -> Duration {
        self.last_used.lock().expect("slot lock").elapsed()
    }
    fn expired(&self) -> bool {
        self.idle_for() >= Duration::from_millis(self.plugin.info.sessions.idle_ttl_ms)
    }
    /// Closes the session (waiting for a call in progress), if it is open.
    async fn close(&self) {
        let taken = self.live.lock().await.take();
        if let Some(live) = taken {
            self.plugin.close_session(live).await;
        }
    }
}

/// Every open session of a host.
#[derive(Default)]
pub(crate) struct SessionPool {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
}

/// The server a session belongs to, from the metadata namespace that asked
/// for it: `<ns>.server`, else `<ns>.server-url`, else the capability itself.
fn scope(info: &CapabilityInfo) -> String {
    let Route::Session { key } = &info.route else {
        return info.id.clone();
    };
    // `mcp.requires-session` (or `mcp-requires-session`, `mcp_requires_session`) -> `mcp`.
    let ns = key
        .strip_suffix("requires-session")
        .or_else(|| key.strip_suffix("requires_session"))
        .unwrap_or("");
    let ns = ns.trim_end_matches(['.', '-', '_']);
    for k in ["server", "server-url"] {
        let name = if ns.is_empty() {
            k.to_string()
        } else {
            format!("{ns}.{k}")
        };
        if let Some(v) = info.flat_metadata.get(&name) {
            return match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
    }
    info.id.clone()
}

/// One call in a session: the plugin (and its index), the capability, the
/// caller's session key and the call's id.
pub(crate) struct SessionCall<'a> {
    pub(crate) plugin: &'a Arc<LoadedPlugin>,
    pub(crate) index: usize,
    pub(crate) info: &'a Arc<CapabilityInfo>,
    pub(crate) key: &'a str,
    pub(crate) call: CallTag<'a>,
}

impl SessionPool {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of open (or opening) sessions.
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }

    /// Calls `info` within the session of `caller` (opened if needed).
    ///
    /// The call runs in a task of its own: a caller that goes away (a
    /// timeout, a dropped request) leaves it to run on to its end, within the
    /// plugin's limits, and its result is discarded. So a session is never
    /// left half inside a call, and the next call on its key finds it whole.
    pub(crate) async fn call(
        self: &Arc<Self>,
        call: SessionCall<'_>,
        input: Value,
    ) -> Result<Value> {
        let SessionCall {
            plugin,
            index,
            info,
            key: caller,
            call,
        } = call;
        let key = Key {
            plugin: index,
            scope: scope(info),
            caller: caller.to_string(),
        };
        let slot = self
            .slots()
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    plugin: plugin.clone(),
                    live: tokio::sync::Mutex::new(None),
                    last_used: Mutex::new(Instant::now()),
                })
            })
            .clone();
        slot.touch();
        let pool = self.clone();
        let plugin = plugin.clone();
        let info = info.clone();
        // Owned by the task, which may outlive the caller.
        let (call_id, trace) = (call.id.to_string(), call.trace.cloned());
        let task = tokio::spawn(async move {
            let call = CallTag {
                id: &call_id,
                trace: trace.as_ref(),
            };
            pool.call_in(&key, &slot, &plugin, &info, &input, call)
                .await
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Internal(format!("a session call failed: {e}"))),
        }
    }

    async fn call_in(
        &self,
        key: &Key,
        slot: &Arc<Slot>,
        plugin: &Arc<LoadedPlugin>,
        info: &CapabilityInfo,
        input: &Value,
        call: CallTag<'_>,
    ) -> Result<Value> {
        let caller = key.caller.as_str();
        let mut live = slot.live.lock().await;
        if live.is_none() {
            if let Err(e) = self.make_room(key, slot).await {
                self.remove(key, slot);
                return Err(e);
            }
            let config = json!({
                "metadata": info.flat_metadata,
                "provider-meta": info.provider_meta,
                "session-key": caller,
            });
            match plugin.open_session(&info.id, &config, call).await {
                Ok(s) => {
                    tracing::debug!(plugin = %plugin.info.name, server = %key.scope, caller, "session opened");
                    *live = Some(s);
                }
                Err(e) => {
                    self.remove(key, slot);
                    return Err(e);
                }
            }
        }
        let session = live.as_mut().expect("opened above");
        let result = plugin.session_call(session, &info.id, input, call).await;
        slot.touch();
        match result {
            Ok(outcome) => outcome,
            Err(fatal) => {
                // The instance trapped or hit a limit: never entered again.
                // A fresh instance ends the session's remote state.
                let dead = live.take();
                drop(live);
                self.remove(key, slot);
                tracing::warn!(plugin = %plugin.info.name, server = %key.scope, caller, "session dropped: {fatal}");
                if let Some(dead) = dead {
                    plugin.abandon_session(dead);
                }
                Err(fatal)
            }
        }
    }

    fn remove(&self, key: &Key, slot: &Arc<Slot>) {
        let mut slots = self.slots();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }

    /// Closes least recently used idle sessions until `key` fits under its
    /// plugin's limits, or fails if every session in the way is busy.
    async fn make_room(&self, key: &Key, slot: &Arc<Slot>) -> Result<()> {
        let settings = slot.plugin.info.sessions;
        loop {
            let victim = {
                let slots = self.slots();
                let mine = |k: &Key| k.plugin == key.plugin;
                let same_server = slots
                    .keys()
                    .filter(|k| mine(k) && k.scope == key.scope)
                    .count();
                let all = slots.keys().filter(|k| mine(k)).count();
                // The slot being opened is already counted.
                let over_server = same_server > settings.max_per_server as usize;
                let over_all = all > settings.max as usize;
                if !over_server && !over_all {
                    return Ok(());
                }
                let mut candidates: Vec<(&Key, &Arc<Slot>)> = slots
                    .iter()
                    .filter(|(k, s)| {
                        mine(k)
                            && !Arc::ptr_eq(s, slot)
                            && (!over_server || over_all || k.scope == key.scope)
                    })
                    .collect();
                candidates.sort_by_key(|(_, s)| std::cmp::Reverse(s.idle_for()));
                candidates.into_iter().find_map(|(k, s)| {
                    let guard = s.live.try_lock().ok()?;
                    drop(guard);
                    Some((k.clone(), s.clone()))
                })
            };
            let Some((victim_key, victim)) = victim else {
                return Err(Error::Capability {
                    plugin: slot.plugin.info.name.clone(),
                    capability: key.scope.clone(),
                    kind: ErrorKind::Unavailable,
                    message: format!(
                        "session pool is full (sessions.max-per-server = {}, sessions.max = {}) and every session is busy",
                        settings.max_per_server, settings.max
                    ),
                });
            };
            self.remove(&victim_key, &victim);
            tracing::info!(plugin = %victim.plugin.info.name, server = %victim_key.scope, caller = %victim_key.caller, "closing the least recently used session to make room");
            victim.close().await;
        }
    }

    /// Closes sessions idle past their plugin's TTL.
    pub(crate) async fn sweep(&self) {
        let expired: Vec<(Key, Arc<Slot>)> = {
            let slots = self.slots();
            slots
                .iter()
                .filter(|(_, s)| s.expired() && s.live.try_lock().is_ok())
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect()
        };
        for (key, slot) in expired {
            let taken = {
                let mut live = slot.live.lock().await;
                // Used again since it was picked: keep it.
                if !slot.expired() {
                    continue;
                }
                self.remove(&key, &slot);
                live.take()
            };
            if let Some(live) = taken {
                tracing::debug!(plugin = %slot.plugin.info.name, server = %key.scope, caller = %key.caller, "closing an idle session");
                slot.plugin.close_session(live).await;
            }
        }
    }

    /// Closes every session of caller key `caller`, on every plugin and
    /// server (waiting for calls in progress); returns how many.
    pub(crate) async fn close_caller(&self, caller: &str) -> usize {
        let mine: Vec<(Key, Arc<Slot>)> = {
            let mut slots = self.slots();
            let keys: Vec<Key> = slots
                .keys()
                .filter(|k| k.caller == caller)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| slots.remove(&k).map(|s| (k, s)))
                .collect()
        };
        for (_, slot) in &mine {
            slot.close().await;
        }
        mine.len()
    }

    /// Closes every session (waiting for calls in progress).
    pub(crate) async fn close_all(&self) {
        let all: Vec<(Key, Arc<Slot>)> = self.slots().drain().collect();
        // All at once: the caller bounds the whole (the shutdown budget).
        futures::future::join_all(all.iter().map(|(_, slot)| slot.close())).await;
    }
}

/// How often the sweeper runs for the shortest TTL among `ttls`.
pub(crate) fn sweep_interval(ttls: impl Iterator<Item = u64>) -> Duration {
    let shortest = ttls.min().unwrap_or(60_000);
    Duration::from_millis((shortest / 4).clamp(20, 5_000))
}

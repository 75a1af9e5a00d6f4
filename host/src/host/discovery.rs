//! Capabilities found at run time: each plugin's discovery sources, the
//! ones that failed (retried in the background), and the session sweeper.

use super::declared::declared_info;
use super::*;
use crate::registry::{Refusal, Refused, MAX_CAPABILITIES_PER_SOURCE, MAX_SOURCES_PER_PLUGIN};

impl Host {
    /// Asks plugins again for the sources that failed discovery (a server
    /// that was down) and registers what they offer now. With `force` false
    /// this happens at most once per plugin's `sessions.discovery-retry-ms`.
    /// Returns whether anything new was registered.
    pub async fn retry_discovery(&self, force: bool) -> bool {
        let mut states = self.inner.discovery.lock().await;
        let mut any = false;
        for (index, state) in states.iter_mut() {
            if state.pending.is_empty() {
                continue;
            }
            let plugin = &self.inner.plugins[*index];
            let every = Duration::from_millis(plugin.info.sessions.discovery_retry_ms);
            if !force && state.last_attempt.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            state.last_attempt = Some(Instant::now());
            match discover_all(plugin, &state.registered, None).await {
                Ok(found) => {
                    let mut registry = self
                        .inner
                        .registry
                        .write()
                        .unwrap_or_else(|e| e.into_inner());
                    any |= register_sources(
                        plugin,
                        *index,
                        found,
                        &mut registry,
                        state,
                        &self.inner.governance,
                        true,
                    ) > 0;
                }
                Err(e) => {
                    tracing::warn!(plugin = %plugin.info.name, "discovery failed: {e}");
                }
            }
        }
        if any {
            self.catalog_changed();
        }
        any
    }

    /// For an unknown `id`: the failed source that likely offers it, if any
    /// (a source whose name appears as a segment of the id, e.g. `demo` in
    /// `mcp.demo.add`).
    pub(super) async fn unavailable_source(&self, id: &str) -> Option<Error> {
        let states = self.inner.discovery.lock().await;
        let segments: Vec<&str> = id.split('.').collect();
        for (index, state) in states.iter() {
            for (source, failure) in &state.pending {
                if segments.contains(&source.as_str()) {
                    return Some(Error::SourceUnavailable {
                        id: id.to_string(),
                        plugin: self.inner.plugins[*index].info.name.clone(),
                        source_name: source.clone(),
                        reason: failure.reason.clone(),
                        denied: failure.denied,
                    });
                }
            }
        }
        None
    }

    /// The index of plugin `name`.
    pub(super) fn plugin_index(&self, name: &str) -> Result<usize> {
        self.inner
            .plugins
            .iter()
            .position(|p| p.info.name == name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_string()))
    }

    /// Sources of plugin `name` whose capabilities are not registered, with
    /// the reason (e.g. the server is down).
    pub async fn pending_sources(&self, name: &str) -> Result<Vec<(String, String)>> {
        let index = self.plugin_index(name)?;
        let states = self.inner.discovery.lock().await;
        Ok(states
            .get(&index)
            .map(|s| {
                s.pending
                    .iter()
                    .map(|(k, v)| (k.clone(), v.reason.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Background work that holds no strong reference to the host: the
    /// session sweeper, discovery retries and refreshes. All stop with the
    /// host.
    pub(super) fn start_background(&self, sweep_every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweep_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.sessions.sweep().await;
            }
        });
        let every = |pick: fn(&LoadedPlugin) -> Option<u64>| {
            self.inner
                .plugins
                .iter()
                .filter(|p| p.has_discovery())
                .filter_map(|p| pick(p))
                .min()
        };
        if let Some(ms) = every(|p| Some(p.info.sessions.discovery_retry_ms)) {
            self.every(ms, |host| async move {
                host.retry_discovery(false).await;
            });
        }
        if let Some(ms) = every(|p| p.info.sessions.discovery_refresh_ms) {
            self.every(ms, |host| async move {
                host.refresh_discovery(false).await;
            });
        }
    }

    /// Runs `work` every `ms` (the first time after `ms`) while the host
    /// lives, holding no strong reference to it in between.
    fn every<F, Fut>(&self, ms: u64, work: F)
    where
        F: Fn(Host) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                work(Host { inner }).await;
            }
        });
    }
}

/// Discovery state of one plugin.
#[derive(Default)]
pub(super) struct Discovery {
    /// Sources whose capabilities are registered.
    pub(super) registered: std::collections::BTreeSet<String>,
    /// Sources that failed, with why.
    pub(super) pending: std::collections::BTreeMap<String, Failure>,
    last_attempt: Option<Instant>,
    /// The ids each registered source's capabilities hold.
    pub(super) owned: std::collections::BTreeMap<String, Vec<String>>,
    /// Registered sources whose last refresh failed: since when, and why.
    pub(super) stale: std::collections::BTreeMap<String, (std::time::SystemTime, Instant, String)>,
    pub(super) last_refresh: Option<Instant>,
    /// Where each source's last good answer is kept (`None`: not kept).
    pub(super) last_good: Option<Arc<super::last_good::LastGood>>,
}

/// Why a source could not be listed.
#[derive(Clone)]
pub(super) struct Failure {
    pub(super) reason: String,
    /// Refused by policy (a grant missing, a secret without a value).
    pub(super) denied: bool,
}

/// What one source offered, or why it could not be listed.
pub(super) struct Found {
    pub(super) name: String,
    pub(super) capabilities: std::result::Result<
        Vec<crate::bindings::warden::provider::types::CapabilityDescriptor>,
        Failure,
    >,
}

/// Asks `plugin` for its sources, then each source not in `registered` for
/// its capabilities: each in a call of its own, all at once, so a source
/// that hangs costs only its own call's time limit. With `until` (a
/// capability id), the wait ends once a source the id names (one of its
/// dot-separated segments) has answered; the others are left pending.
pub(super) async fn discover_all(
    plugin: &Arc<LoadedPlugin>,
    registered: &std::collections::BTreeSet<String>,
    until: Option<&str>,
) -> Result<Vec<Found>> {
    let names = plugin.sources().await?;
    let asked: Vec<String> = names
        .into_iter()
        .filter(|n| !registered.contains(n))
        .collect();
    let mut asks = tokio::task::JoinSet::new();
    for name in asked.iter().cloned() {
        let plugin = plugin.clone();
        asks.spawn(async move {
            let capabilities = ask(&plugin, &name).await;
            Found { name, capabilities }
        });
    }
    let names_it = |f: &Found| {
        until.is_some_and(|id| f.capabilities.is_ok() && id.split('.').any(|s| s == f.name))
    };
    let mut found = Vec::new();
    while let Some(done) = asks.join_next().await {
        match done {
            Ok(f) => {
                let enough = names_it(&f);
                found.push(f);
                if enough {
                    break;
                }
            }
            Err(e) => tracing::error!(plugin = %plugin.info.name, "discovery task failed: {e}"),
        }
    }
    // Sources not waited for (the rest are aborted with `asks`).
    for name in asked {
        if !found.iter().any(|f| f.name == name) {
            let reason =
                "not listed: this host was loaded for one call, which another source serves"
                    .to_string();
            let capabilities = Err(Failure {
                reason,
                denied: false,
            });
            found.push(Found { name, capabilities });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// What `source` of `plugin` offers, or why it could not say.
pub(super) async fn ask(
    plugin: &Arc<LoadedPlugin>,
    source: &str,
) -> std::result::Result<Vec<crate::bindings::warden::provider::types::CapabilityDescriptor>, Failure>
{
    match plugin.discover(source).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(Failure {
            reason: crate::runtime::outcome::wit_error_text(&e),
            denied: matches!(
                e,
                crate::bindings::warden::provider::types::Error::Denied(_)
            ),
        }),
        Err(e) => Err(Failure {
            reason: e.to_string(),
            denied: matches!(e, Error::Denied { .. }),
        }),
    }
}

/// Registers the capabilities of sources not registered yet; remembers the
/// failed ones. Returns how many capabilities were registered. A plugin has
/// at most [`MAX_SOURCES_PER_PLUGIN`] sources and a source at most
/// [`MAX_CAPABILITIES_PER_SOURCE`] capabilities; when `retrying`, only the
/// sources that failed before are taken (never a new name). Refused claims
/// are written as one summary.
pub(super) fn register_sources(
    plugin: &LoadedPlugin,
    index: usize,
    found: Vec<Found>,
    registry: &mut Registry,
    state: &mut Discovery,
    governance: &Governance,
    retrying: bool,
) -> usize {
    let name = &plugin.info.name;
    let mut refused = Refused::default();
    let mut count = 0;
    for source in found {
        if state.registered.contains(&source.name) {
            continue;
        }
        let known = state.pending.contains_key(&source.name);
        if retrying && !known {
            refused.add(
                &source.name,
                Refusal::TooMany("the sources named at load (a new source on retry)"),
            );
            continue;
        }
        if !known && state.registered.len() + state.pending.len() >= MAX_SOURCES_PER_PLUGIN {
            refused.add(
                &source.name,
                Refusal::TooMany("the plugin's 64 discovery sources"),
            );
            continue;
        }
        match source.capabilities {
            Err(failure)
                if !retrying
                    && serve_last_good(
                        plugin,
                        index,
                        registry,
                        state,
                        &source.name,
                        &failure,
                        &mut refused,
                    ) =>
            {
                count += state.owned.get(&source.name).map_or(0, Vec::len);
            }
            Err(failure) => {
                tracing::warn!(
                    plugin = %name, source = %source.name,
                    "source unavailable, its capabilities are not registered (retried every {} ms): {}",
                    plugin.info.sessions.discovery_retry_ms, failure.reason
                );
                state.pending.insert(source.name, failure);
            }
            Ok(descriptors) => {
                let answer = state.answer_to_keep(&descriptors);
                let ids = register_source(plugin, index, descriptors, registry, &mut refused);
                count += ids.len();
                state.owned.insert(source.name.clone(), ids);
                state.keep_answer(plugin, &source.name, answer);
                if state.pending.remove(&source.name).is_some() {
                    tracing::info!(plugin = %name, source = %source.name, "source available again; its capabilities are registered");
                }
                state.registered.insert(source.name);
            }
        }
    }
    if let Err(e) = super::report_refused(governance, name, &plugin.info.namespaces, &refused) {
        tracing::warn!(plugin = %name, "refused claims could not be audited: {e}");
    }
    count
}

/// Serves `source`, which failed as the host loads, from its last good
/// answer if one is kept and not older than `discovery-stale-after-ms`:
/// its capabilities registered, the source stale since the answer was
/// written (and asked again at each refresh). Whether it was.
fn serve_last_good(
    plugin: &LoadedPlugin,
    index: usize,
    registry: &mut Registry,
    state: &mut Discovery,
    source: &str,
    failure: &Failure,
    refused: &mut Refused,
) -> bool {
    let Some((written, descriptors)) = state
        .last_good
        .as_ref()
        .and_then(|k| k.read(plugin, source))
    else {
        return false;
    };
    let age = std::time::SystemTime::now()
        .duration_since(written)
        .unwrap_or_default();
    let limit = plugin.info.sessions.discovery_stale_after_ms;
    if limit.is_some_and(|ms| age >= Duration::from_millis(ms)) {
        return false;
    }
    let ids = register_source(plugin, index, descriptors, registry, refused);
    tracing::warn!(
        plugin = %plugin.info.name, source, capabilities = ids.len(),
        "source unavailable ({}): served from its last answer, stale since {} s ago",
        failure.reason, age.as_secs()
    );
    let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    let why = format!("{} (served from its last answer)", failure.reason);
    state
        .stale
        .insert(source.to_string(), (written, since, why));
    state.owned.insert(source.to_string(), ids);
    state.registered.insert(source.to_string());
    true
}

impl Discovery {
    /// A copy of what a source answered, to keep once it is registered
    /// ([`keep_answer`](Self::keep_answer)); `None` when answers are not kept.
    pub(super) fn answer_to_keep(
        &self,
        descriptors: &[crate::bindings::warden::provider::types::CapabilityDescriptor],
    ) -> Option<Vec<crate::bindings::warden::provider::types::CapabilityDescriptor>> {
        self.last_good.as_ref().map(|_| descriptors.to_vec())
    }

    /// Keeps `answer` as `source`'s last good answer: those of its
    /// capabilities registered now (the ids `source` owns).
    pub(super) fn keep_answer(
        &self,
        plugin: &LoadedPlugin,
        source: &str,
        answer: Option<Vec<crate::bindings::warden::provider::types::CapabilityDescriptor>>,
    ) {
        let (Some(last_good), Some(answer)) = (&self.last_good, answer) else {
            return;
        };
        let owned = self
            .owned
            .get(source)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ids: std::collections::HashSet<&str> = owned.iter().map(String::as_str).collect();
        let registered: Vec<_> = answer
            .into_iter()
            .filter(|d| ids.contains(d.id.as_str()))
            .collect();
        last_good.write(plugin, source, &registered);
    }
}

/// Registers one source's capabilities, at most
/// [`MAX_CAPABILITIES_PER_SOURCE`]; returns their ids.
pub(super) fn register_source(
    plugin: &LoadedPlugin,
    index: usize,
    descriptors: Vec<crate::bindings::warden::provider::types::CapabilityDescriptor>,
    registry: &mut Registry,
    refused: &mut Refused,
) -> Vec<String> {
    let name = &plugin.info.name;
    let mut ids = Vec::new();
    for (n, d) in descriptors.into_iter().enumerate() {
        let id = d.id.clone();
        if n >= MAX_CAPABILITIES_PER_SOURCE {
            refused.add(&id, Refusal::TooMany("a source's 1024 capabilities"));
            continue;
        }
        let info = match declared_info(d, name) {
            Ok(i) => i,
            Err(e) => {
                refused.add(&id, Refusal::Malformed(e));
                continue;
            }
        };
        if matches!(info.route, Route::Session { .. }) && !plugin.has_sessions() {
            refused.add(
                &id,
                Refusal::Malformed(
                    "it asks for a session and the plugin exports no session-handler".into(),
                ),
            );
            continue;
        }
        match registry.claim(index, &plugin.info.namespaces, info) {
            Ok(()) => ids.push(id),
            Err(why) => refused.add(&id, why),
        }
    }
    ids
}

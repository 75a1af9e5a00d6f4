//! Discovery kept current (`sessions.discovery-refresh-ms`): the sources
//! that answered are asked again, and what they offer now replaces what
//! they offered (new capabilities registered, gone ones removed, changed
//! ones replaced). A source whose refresh fails keeps its last capabilities,
//! stale (said in the log and by [`Host::stale_sources`]), until
//! `discovery-stale-after-ms`; then they are removed and the source is
//! retried like one that failed at start.

use super::declared::declared_info;
use super::discovery::{ask, Discovery, Failure};
use super::*;
use crate::bindings::warden::provider::types::CapabilityDescriptor;
use crate::registry::Refused;
use std::time::SystemTime;

impl Host {
    /// Asks the plugins with `discovery-refresh-ms` for what their sources
    /// offer now, where due (every source at once with `force`). Returns
    /// whether the catalog changed.
    pub async fn refresh_discovery(&self, force: bool) -> bool {
        let mut states = self.inner.discovery.lock().await;
        let mut changed = false;
        for (index, state) in states.iter_mut() {
            let plugin = self.inner.plugins[*index].clone();
            let Some(every) = plugin.info.sessions.discovery_refresh_ms else {
                continue;
            };
            let due = state
                .last_refresh
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(every));
            if !(force || due) || state.registered.is_empty() {
                continue;
            }
            state.last_refresh = Some(Instant::now());
            let sources: Vec<String> = state.registered.iter().cloned().collect();
            for source in sources {
                let answer = ask(&plugin, &source).await;
                changed |= self.settle_refresh(&plugin, *index, state, &source, answer);
            }
        }
        changed |= self.note_stale(&states);
        drop(states);
        if changed {
            self.catalog_changed();
        }
        changed
    }

    /// Capabilities whose source's refresh fails, with since when: still
    /// served from their last snapshot (`warden serve` marks them).
    pub fn stale_capabilities(&self) -> HashMap<String, SystemTime> {
        self.inner
            .stale
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Keeps [`stale_capabilities`](Self::stale_capabilities) in step;
    /// whether the set changed (clients see it in the tool list).
    fn note_stale(&self, states: &HashMap<usize, Discovery>) -> bool {
        let stale = stale_map(states);
        let mut held = self.inner.stale.write().unwrap_or_else(|e| e.into_inner());
        let changed = *held != stale;
        *held = stale;
        changed
    }

    /// Registered sources of plugin `name` whose last refresh failed: the
    /// source, since when, and why.
    pub async fn stale_sources(&self, name: &str) -> Result<Vec<(String, SystemTime, String)>> {
        let index = self.plugin_index(name)?;
        let states = self.inner.discovery.lock().await;
        Ok(states
            .get(&index)
            .map(|s| {
                s.stale
                    .iter()
                    .map(|(k, (since, _, why))| (k.clone(), *since, why.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Applies one source's refresh; whether the catalog changed.
    fn settle_refresh(
        &self,
        plugin: &LoadedPlugin,
        index: usize,
        state: &mut Discovery,
        source: &str,
        answer: std::result::Result<Vec<CapabilityDescriptor>, Failure>,
    ) -> bool {
        let name = &plugin.info.name;
        match answer {
            Ok(descriptors) => {
                if state.stale.remove(source).is_some() {
                    tracing::warn!(plugin = %name, source, "source answers again: its capabilities are current");
                }
                let answer = state.answer_to_keep(&descriptors);
                let changed = self.replace_source(plugin, index, state, source, descriptors);
                state.keep_answer(plugin, source, answer);
                changed
            }
            Err(failure) => {
                let now = (SystemTime::now(), Instant::now());
                let (_, since, _) = state
                    .stale
                    .entry(source.to_string())
                    .or_insert_with(|| {
                        tracing::warn!(plugin = %name, source, "refresh failed: its last capabilities are kept, stale: {}", failure.reason);
                        (now.0, now.1, failure.reason.clone())
                    });
                let limit = plugin.info.sessions.discovery_stale_after_ms;
                if limit.is_none_or(|ms| since.elapsed() < Duration::from_millis(ms)) {
                    return false;
                }
                tracing::warn!(plugin = %name, source, "stale longer than discovery-stale-after-ms: its capabilities are removed until it answers");
                state.stale.remove(source);
                state.registered.remove(source);
                state.pending.insert(source.to_string(), failure);
                let ids = state.owned.remove(source).unwrap_or_default();
                let mut registry = self.registry_mut();
                for id in &ids {
                    registry.remove_discovered(index, id);
                }
                !ids.is_empty()
            }
        }
    }

    /// Puts what `source` offers now in place of what it offered.
    fn replace_source(
        &self,
        plugin: &LoadedPlugin,
        index: usize,
        state: &mut Discovery,
        source: &str,
        descriptors: Vec<CapabilityDescriptor>,
    ) -> bool {
        let before = state.owned.remove(source).unwrap_or_default();
        let mut registry = self.registry_mut();
        let unchanged = same_offer(&registry, plugin, &before, &descriptors);
        if unchanged {
            state.owned.insert(source.to_string(), before);
            return false;
        }
        for id in &before {
            registry.remove_discovered(index, id);
        }
        let mut refused = Refused::default();
        let ids = super::discovery::register_source(
            plugin,
            index,
            descriptors,
            &mut registry,
            &mut refused,
        );
        drop(registry);
        tracing::info!(plugin = %plugin.info.name, source, before = before.len(), now = ids.len(), "source refreshed: its capabilities changed");
        if let Err(e) = super::report_refused(
            &self.inner.governance,
            &plugin.info.name,
            &plugin.info.namespaces,
            &refused,
        ) {
            tracing::warn!(plugin = %plugin.info.name, "refused claims could not be audited: {e}");
        }
        state.owned.insert(source.to_string(), ids);
        true
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The capabilities of stale sources in `states`, with since when.
pub(super) fn stale_map(states: &HashMap<usize, Discovery>) -> HashMap<String, SystemTime> {
    states
        .values()
        .flat_map(|s| {
            s.stale.iter().flat_map(|(source, (since, _, _))| {
                let ids = s.owned.get(source).map(Vec::as_slice).unwrap_or_default();
                ids.iter().map(|id| (id.clone(), *since))
            })
        })
        .collect()
}

/// Whether `descriptors` describe exactly the capabilities `ids` holds.
fn same_offer(
    registry: &Registry,
    plugin: &LoadedPlugin,
    ids: &[String],
    descriptors: &[CapabilityDescriptor],
) -> bool {
    if ids.len() != descriptors.len() {
        return false;
    }
    descriptors.iter().all(|d| {
        let Ok(now) = declared_info(d.clone(), &plugin.info.name) else {
            return false;
        };
        registry
            .get(&now.id)
            .is_ok_and(|(_, was)| ids.contains(&now.id) && was.manifest() == now.manifest())
    })
}

//! The marketplace registry: every capability of every loaded plugin, by id,
//! and what a plugin may claim (`claims.rs`).

mod claims;

pub use claims::{
    check_id, Namespaces, MAX_CAPABILITIES_PER_PLUGIN, MAX_CAPABILITIES_PER_SOURCE, MAX_ID_BYTES,
    MAX_SOURCES_PER_PLUGIN,
};
pub(crate) use claims::{Refusal, Refused};

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use warden_manifest::metadata::flatten_metadata;
use warden_manifest::route::{Hints, Route};
use warden_manifest::schema::TypeExpr;
use warden_manifest::{Manifest, ProviderKind};

/// One registered capability: its manifest, who serves it, and what the
/// host derived from it (parsed schemas, route, hints).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CapabilityInfo {
    /// Globally unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// The plugin that serves it; `None` for an imported capability no
    /// loaded plugin serves.
    pub plugin: Option<String>,
    /// The kind of provider behind it.
    pub provider: ProviderKind,
    /// The provider's parameters (secrets by name only).
    pub provider_meta: Map<String, Value>,
    /// Input schema (RTFS type expression).
    pub input_schema: String,
    /// Output schema (RTFS type expression).
    pub output_schema: String,
    /// Metadata as declared (hierarchical).
    pub metadata: Value,
    /// Metadata flattened to dotted keys, as used for routing.
    pub flat_metadata: BTreeMap<String, Value>,
    /// Permissions it needs.
    pub permissions: Vec<String>,
    /// Effects it may have.
    pub effects: Vec<String>,
    /// How calls are served, decided from the metadata.
    pub route: Route,
    /// What converting the provider's JSON Schemas into type expressions
    /// could not express (each became `:any` or was dropped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_notes: Vec<String>,
    /// Retry and rate-limit hints from the metadata.
    pub hints: Hints,
    #[serde(skip)]
    pub(crate) input_type: TypeExpr,
    #[serde(skip)]
    pub(crate) output_type: TypeExpr,
    /// Who serves its calls, decided when it is registered.
    #[serde(skip)]
    pub(crate) serving: Serving,
}

/// Who serves a capability's calls: decided when it is registered, so a
/// call looks nothing else up.
#[derive(Debug, Clone, Default)]
pub(crate) enum Serving {
    /// The plugin at this index declared it and serves it by id.
    Plugin(usize),
    /// The plugin at index `plugin` serves the capability's provider kind
    /// through its capability `entry`, which is called with `head`, the
    /// input and `}`.
    Kind {
        plugin: usize,
        entry: Arc<str>,
        /// `{"capability":{"id","provider-meta","retry"},"input":` as JSON
        /// text: what the entry is told of the capability, made once.
        head: Arc<str>,
    },
    /// No loaded plugin serves its provider kind.
    #[default]
    Unserved,
}

impl Serving {
    /// The serving of capability `info` by the plugin at `plugin` through
    /// its provider-kind entry `entry`.
    pub(crate) fn kind(info: &CapabilityInfo, plugin: usize, entry: Arc<str>) -> Serving {
        let capability = serde_json::json!({
            "id": info.id, "provider-meta": info.provider_meta, "retry": info.hints.retry,
        });
        Serving::Kind {
            plugin,
            entry,
            head: format!(r#"{{"capability":{capability},"input":"#).into(),
        }
    }
}

impl CapabilityInfo {
    /// The parsed input schema.
    pub fn input_type(&self) -> &TypeExpr {
        &self.input_type
    }

    /// The parsed output schema.
    pub fn output_type(&self) -> &TypeExpr {
        &self.output_type
    }

    /// Checks a manifest and derives what the host routes and validates with.
    pub fn from_manifest(
        m: Manifest,
        plugin: Option<String>,
    ) -> std::result::Result<CapabilityInfo, String> {
        let input_type =
            TypeExpr::parse(&m.input_schema).map_err(|e| format!("input schema: {e}"))?;
        let output_type =
            TypeExpr::parse(&m.output_schema).map_err(|e| format!("output schema: {e}"))?;
        if !m.metadata.is_object() {
            return Err("metadata must be a JSON object".into());
        }
        if m.provider.serializable() {
            warden_manifest::manifest::check_provider_meta(m.provider, &m.provider_meta)?;
        }
        let flat_metadata = flatten_metadata(&m.metadata);
        let route = warden_manifest::route::route(&flat_metadata)?;
        let hints = warden_manifest::route::hints(&flat_metadata)?;
        Ok(CapabilityInfo {
            id: m.id,
            name: m.name,
            version: m.version,
            description: m.description,
            plugin,
            provider: m.provider,
            provider_meta: m.provider_meta,
            input_schema: input_type.to_text(),
            output_schema: output_type.to_text(),
            metadata: m.metadata,
            flat_metadata,
            permissions: m.permissions,
            effects: m.effects,
            route,
            hints,
            input_type,
            output_type,
            serving: Serving::Unserved,
            schema_notes: Vec::new(),
        })
    }

    /// The capability as a marketplace manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            id: self.id.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            provider: self.provider,
            provider_meta: self.provider_meta.clone(),
            input_schema: self.input_schema.clone(),
            output_schema: self.output_schema.clone(),
            metadata: self.metadata.clone(),
            permissions: self.permissions.clone(),
            effects: self.effects.clone(),
        }
    }
}

/// Where a capability came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Declared by the plugin at this index.
    Plugin(usize),
    /// Imported from a snapshot into the marketplace store.
    Imported,
    /// Declared in the host configuration (`[[capabilities]]`).
    Declared,
}

/// What registering an imported capability did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    New,
    Replaced,
}

/// Capabilities by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_id: HashMap<String, (Source, Arc<CapabilityInfo>)>,
    ordered: Vec<String>,
    /// Each id in ASCII lower case: a claim that differs from a registered
    /// id only in case is refused (a confusable).
    folded: HashMap<String, String>,
    /// Ids the operator holds (`[[capabilities]]`, the marketplace store),
    /// reserved before any plugin loads: no plugin may claim them.
    reserved: HashMap<String, &'static str>,
    /// Capabilities registered by each plugin (by index).
    per_plugin: HashMap<usize, usize>,
}

/// Longest unknown id compared for suggestions, in characters; and most
/// known ids compared. Keeps a miss cheap whatever the registry holds.
const SUGGEST_CHARS: usize = 64;
const SUGGEST_CANDIDATES: usize = 256;

/// `id` as a summary or a log line shows it: at most 64 characters, with
/// control and invisible characters escaped.
pub(crate) fn clip(id: &str) -> String {
    let shown: String = id.chars().take(64).flat_map(char::escape_debug).collect();
    if id.chars().count() > 64 {
        format!("{shown}…")
    } else {
        shown
    }
}

impl Registry {
    /// Registers `info` from `source`. A plugin's own capability is served
    /// by that plugin; any other keeps the serving its caller decided.
    pub(crate) fn insert(
        &mut self,
        source: Source,
        mut info: CapabilityInfo,
    ) -> Result<Registered> {
        if let Source::Plugin(index) = source {
            info.serving = Serving::Plugin(index);
        }
        if let Some((existing_source, existing)) = self.by_id.get(&info.id) {
            // An id belongs to whoever registered it first. Re-importing an
            // imported capability replaces it (an edited snapshot); any other
            // later claim, a plugin's discovery included, is refused.
            if *existing_source == Source::Imported && source == Source::Imported {
                self.by_id.insert(info.id.clone(), (source, Arc::new(info)));
                return Ok(Registered::Replaced);
            }
            return Err(Error::DuplicateCapability {
                id: info.id.clone(),
                first: owner_name(existing_source, existing),
                second: owner_name(&source, &info),
            });
        }
        self.ordered.push(info.id.clone());
        self.folded
            .insert(info.id.to_ascii_lowercase(), info.id.clone());
        if let Source::Plugin(index) = source {
            *self.per_plugin.entry(index).or_default() += 1;
        }
        self.by_id.insert(info.id.clone(), (source, Arc::new(info)));
        Ok(Registered::New)
    }

    /// Forgets every capability plugin `index` registered (a plugin refused
    /// at load after describing itself: its index is given to the next).
    pub(crate) fn remove_plugin(&mut self, index: usize) {
        let theirs = |source: &Source| *source == Source::Plugin(index);
        let gone: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, (source, _))| theirs(source))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.by_id.remove(id);
            self.folded.remove(&id.to_ascii_lowercase());
        }
        self.ordered.retain(|id| self.by_id.contains_key(id));
        self.per_plugin.remove(&index);
    }

    /// Forgets plugin `index`'s capability `id` (its discovery source no
    /// longer offers it); whether it was there.
    pub(crate) fn remove_discovered(&mut self, index: usize, id: &str) -> bool {
        if !matches!(self.by_id.get(id), Some((Source::Plugin(i), _)) if *i == index) {
            return false;
        }
        self.by_id.remove(id);
        self.folded.remove(&id.to_ascii_lowercase());
        self.ordered.retain(|o| o != id);
        if let Some(n) = self.per_plugin.get_mut(&index) {
            *n = n.saturating_sub(1);
        }
        true
    }

    /// Holds `id` for the operator (`by` names where it is declared)
    /// before any plugin loads.
    pub(crate) fn reserve(&mut self, id: &str, by: &'static str) {
        self.reserved.insert(id.to_string(), by);
    }

    /// Registers a plugin's capability if the plugin may claim its id: the
    /// id has the documented form and its fields fit their caps, it lies in
    /// the plugin's `namespaces`, the operator does not hold it, nobody
    /// registered it (or an id differing only in case), and the plugin is
    /// under its count cap.
    pub(crate) fn claim(
        &mut self,
        index: usize,
        namespaces: &Namespaces,
        info: CapabilityInfo,
    ) -> std::result::Result<(), Refusal> {
        let id = info.id.as_str();
        check_id(id).map_err(Refusal::Malformed)?;
        claims::check_sizes(&info).map_err(Refusal::Malformed)?;
        if !namespaces.contains(id) {
            return Err(Refusal::Outside);
        }
        if let Some(by) = self.reserved.get(id) {
            return Err(Refusal::Reserved(by.to_string()));
        }
        if let Some((source, existing)) = self.by_id.get(id) {
            return Err(Refusal::Owned(owner_name(source, existing)));
        }
        if let Some(other) = self.folded.get(&id.to_ascii_lowercase()) {
            return Err(Refusal::Confusable(other.clone()));
        }
        if self.per_plugin.get(&index).copied().unwrap_or(0) >= MAX_CAPABILITIES_PER_PLUGIN {
            return Err(Refusal::TooMany("the plugin's 4096 capabilities"));
        }
        self.insert(Source::Plugin(index), info)
            .map(drop)
            .map_err(|e| Refusal::Malformed(e.to_string()))
    }

    pub(crate) fn get(&self, id: &str) -> Result<(Source, Arc<CapabilityInfo>)> {
        self.by_id
            .get(id)
            .map(|(s, i)| (*s, i.clone()))
            .ok_or_else(|| Error::UnknownCapability {
                id: id.to_string(),
                suggestions: self.candidates(id),
            })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<CapabilityInfo>> {
        self.ordered.iter().map(|id| &self.by_id[id].1)
    }

    /// The known ids worth comparing with an unknown `id` for suggestions:
    /// those of a near length or that `id` starts, at most
    /// [`SUGGEST_CANDIDATES`] (a cheap filter, made under the lock; the
    /// comparing is done by [`suggest`] after it is released).
    fn candidates(&self, id: &str) -> Vec<String> {
        let len = id.chars().take(SUGGEST_CHARS).count();
        let budget = (len / 3).max(2);
        self.ordered
            .iter()
            .filter(|known| {
                known.len().abs_diff(len) <= budget || (!id.is_empty() && known.starts_with(id))
            })
            .take(SUGGEST_CANDIDATES)
            .cloned()
            .collect()
    }
}

/// `error` with its suggestions ranked: of the candidates an unknown-id
/// error carries, the (up to) three closest by edit distance, `id` and
/// each candidate cut to [`SUGGEST_CHARS`]. Bounded in cost whatever the
/// caller sends and the registry holds; call it outside the registry lock.
pub(crate) fn suggest(error: Error) -> Error {
    let Error::UnknownCapability { id, suggestions } = error else {
        return error;
    };
    let cut = |s: &str| s.chars().take(SUGGEST_CHARS).collect::<String>();
    let wanted = cut(&id);
    let budget = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = suggestions
        .into_iter()
        .map(|known| (edit_distance(&wanted, &cut(&known)), known))
        .filter(|(d, known)| *d <= budget || (!id.is_empty() && known.starts_with(id.as_str())))
        .collect();
    scored.sort();
    let suggestions = scored.into_iter().take(3).map(|(_, k)| k).collect();
    Error::UnknownCapability { id, suggestions }
}

/// Who holds a registered capability, as refusals name it.
fn owner_name(source: &Source, info: &CapabilityInfo) -> String {
    match source {
        Source::Plugin(_) => info.plugin.clone().unwrap_or_default(),
        Source::Imported => "the marketplace store".to_string(),
        Source::Declared => "the configuration's [[capabilities]]".to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cap(id: &str, plugin: &str) -> CapabilityInfo {
        let m = Manifest {
            id: id.into(),
            name: id.into(),
            version: "1".into(),
            description: String::new(),
            provider: ProviderKind::Plugin,
            provider_meta: Map::new(),
            input_schema: ":any".into(),
            output_schema: ":any".into(),
            metadata: json!({}),
            permissions: vec![],
            effects: vec![],
        };
        CapabilityInfo::from_manifest(m, Some(plugin.into())).unwrap()
    }

    #[test]
    fn duplicates_name_both_plugins() {
        let mut r = Registry::default();
        r.insert(Source::Plugin(0), cap("a.b", "one")).unwrap();
        let err = r
            .insert(Source::Plugin(1), cap("a.b", "two"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("one") && err.contains("two") && err.contains("a.b"),
            "{err}"
        );
    }

    /// A miss costs the same bounded work whatever the caller sends and
    /// however many ids are registered: at most 256 candidates leave the
    /// lock, each compared over at most 64 characters.
    #[test]
    fn suggestions_are_bounded_in_cost() {
        let mut r = Registry::default();
        for i in 0..5000 {
            r.insert(Source::Plugin(0), cap(&format!("p.{i:0>124}"), "p"))
                .unwrap();
        }
        for unknown in ["p.".repeat(64), "x".repeat(1 << 20), "p.1".into()] {
            match r.get(&unknown).unwrap_err() {
                Error::UnknownCapability { suggestions, .. } => {
                    assert!(suggestions.len() <= SUGGEST_CANDIDATES)
                }
                e => panic!("{e}"),
            }
            let ranked = suggest(r.get(&unknown).unwrap_err());
            assert!(
                matches!(ranked, Error::UnknownCapability { ref suggestions, .. } if suggestions.len() <= 3)
            );
        }
    }

    #[test]
    fn unknown_ids_suggest_the_nearest() {
        let mut r = Registry::default();
        for id in ["text.hash", "text.case", "json.get", "files.read"] {
            r.insert(Source::Plugin(0), cap(id, "p")).unwrap();
        }
        match suggest(r.get("text.hsh").unwrap_err()) {
            Error::UnknownCapability { suggestions, .. } => assert_eq!(suggestions[0], "text.hash"),
            e => panic!("{e}"),
        }
        match suggest(r.get("zzzzzzzzzzzzzzzz").unwrap_err()) {
            Error::UnknownCapability { suggestions, .. } => assert!(suggestions.is_empty()),
            e => panic!("{e}"),
        }
    }
}

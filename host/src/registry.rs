//! The marketplace registry: every capability of every loaded plugin, by id.

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
    /// What a plugin serving this capability for its provider kind is told
    /// about it (`{"id", "provider-meta", "retry"}` as JSON text), made once.
    #[serde(skip)]
    pub(crate) served_as: Arc<str>,
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
        let served_as = serde_json::json!({
            "id": m.id, "provider-meta": m.provider_meta, "retry": hints.retry,
        })
        .to_string()
        .into();
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
            served_as,
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
}

impl Registry {
    pub(crate) fn insert(&mut self, source: Source, info: CapabilityInfo) -> Result<Registered> {
        if let Some((existing_source, existing)) = self.by_id.get(&info.id) {
            // An id belongs to whoever registered it first. Re-importing an
            // imported capability replaces it (an edited snapshot); any other
            // later claim, a plugin's discovery included, is refused.
            if *existing_source == Source::Imported && source == Source::Imported {
                self.by_id.insert(info.id.clone(), (source, Arc::new(info)));
                return Ok(Registered::Replaced);
            }
            let name = |s: &Source, i: &CapabilityInfo| match s {
                Source::Plugin(_) => i.plugin.clone().unwrap_or_default(),
                Source::Imported => "the marketplace store".to_string(),
                Source::Declared => "the configuration's [[capabilities]]".to_string(),
            };
            return Err(Error::DuplicateCapability {
                id: info.id.clone(),
                first: name(existing_source, existing),
                second: name(&source, &info),
            });
        }
        self.ordered.push(info.id.clone());
        self.by_id.insert(info.id.clone(), (source, Arc::new(info)));
        Ok(Registered::New)
    }

    pub(crate) fn get(&self, id: &str) -> Result<(Source, Arc<CapabilityInfo>)> {
        self.by_id
            .get(id)
            .map(|(s, i)| (*s, i.clone()))
            .ok_or_else(|| Error::UnknownCapability {
                id: id.to_string(),
                suggestions: self.nearest(id),
            })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<CapabilityInfo>> {
        self.ordered.iter().map(|id| &self.by_id[id].1)
    }

    /// Up to three known ids closest to `id` by edit distance.
    fn nearest(&self, id: &str) -> Vec<String> {
        let budget = (id.chars().count() / 3).max(2);
        let mut scored: Vec<(usize, &String)> = self
            .ordered
            .iter()
            .map(|known| (edit_distance(id, known), known))
            .filter(|(d, known)| *d <= budget || known.starts_with(id) && !id.is_empty())
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, k)| k.clone()).collect()
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

    #[test]
    fn unknown_ids_suggest_the_nearest() {
        let mut r = Registry::default();
        for id in ["text.hash", "text.case", "json.get", "files.read"] {
            r.insert(Source::Plugin(0), cap(id, "p")).unwrap();
        }
        match r.get("text.hsh").unwrap_err() {
            Error::UnknownCapability { suggestions, .. } => assert_eq!(suggestions[0], "text.hash"),
            e => panic!("{e}"),
        }
        match r.get("zzzzzzzzzzzzzzzz").unwrap_err() {
            Error::UnknownCapability { suggestions, .. } => assert!(suggestions.is_empty()),
            e => panic!("{e}"),
        }
    }
}

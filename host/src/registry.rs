//! The marketplace registry: every capability of every loaded plugin, by id.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// One registered capability.
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
    /// The plugin that serves it.
    pub plugin: String,
    /// Input schema (RTFS type expression).
    pub input_schema: String,
    /// Output schema (RTFS type expression).
    pub output_schema: String,
    /// Metadata as the provider declared it (hierarchical).
    pub metadata: Value,
    /// Metadata flattened to dotted keys, as used for routing.
    pub flat_metadata: BTreeMap<String, Value>,
    /// Permissions it needs.
    pub permissions: Vec<String>,
    /// Effects it may have.
    pub effects: Vec<String>,
}

/// Flattens nested objects into dotted keys: `{"mcp":{"requires-session":true}}`
/// becomes `mcp.requires-session = true`. Arrays and scalars are leaves.
pub fn flatten_metadata(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// Parses a descriptor's metadata text: empty means none; otherwise a JSON object.
pub(crate) fn parse_metadata(text: &str) -> std::result::Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("metadata must be a JSON object".into()),
        Err(e) => Err(format!("metadata is not valid JSON: {e}")),
    }
}

/// Capabilities by id, each pointing at the plugin (by index) that serves it.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_id: HashMap<String, (usize, CapabilityInfo)>,
    ordered: Vec<String>,
}

impl Registry {
    pub(crate) fn insert(&mut self, plugin_index: usize, info: CapabilityInfo) -> Result<()> {
        if let Some((_, existing)) = self.by_id.get(&info.id) {
            return Err(Error::DuplicateCapability {
                id: info.id.clone(),
                first: existing.plugin.clone(),
                second: info.plugin,
            });
        }
        self.ordered.push(info.id.clone());
        self.by_id.insert(info.id.clone(), (plugin_index, info));
        Ok(())
    }

    pub(crate) fn get(&self, id: &str) -> Result<&(usize, CapabilityInfo)> {
        self.by_id.get(id).ok_or_else(|| Error::UnknownCapability {
            id: id.to_string(),
            suggestions: self.nearest(id),
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &CapabilityInfo> {
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
        CapabilityInfo {
            id: id.into(),
            name: id.into(),
            version: "1".into(),
            description: String::new(),
            plugin: plugin.into(),
            input_schema: ":any".into(),
            output_schema: ":any".into(),
            metadata: json!({}),
            flat_metadata: BTreeMap::new(),
            permissions: vec![],
            effects: vec![],
        }
    }

    #[test]
    fn flattening() {
        let flat = flatten_metadata(
            &json!({"mcp": {"requires-session": true, "server": {"url": "u"}}, "tags": ["a"], "empty": {}}),
        );
        assert_eq!(flat["mcp.requires-session"], json!(true));
        assert_eq!(flat["mcp.server.url"], json!("u"));
        assert_eq!(flat["tags"], json!(["a"]));
        assert_eq!(flat["empty"], json!({}));
        assert_eq!(flat.len(), 4);
    }

    #[test]
    fn metadata_text() {
        assert_eq!(parse_metadata("").unwrap(), json!({}));
        assert!(parse_metadata("[1]").is_err());
        assert!(parse_metadata("{").is_err());
    }

    #[test]
    fn duplicates_name_both_plugins() {
        let mut r = Registry::default();
        r.insert(0, cap("a.b", "one")).unwrap();
        let err = r.insert(1, cap("a.b", "two")).unwrap_err().to_string();
        assert!(
            err.contains("one") && err.contains("two") && err.contains("a.b"),
            "{err}"
        );
    }

    #[test]
    fn unknown_ids_suggest_the_nearest() {
        let mut r = Registry::default();
        for id in ["text.hash", "text.case", "json.get", "files.read"] {
            r.insert(0, cap(id, "p")).unwrap();
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

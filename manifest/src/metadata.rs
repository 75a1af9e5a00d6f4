//! Capability metadata: the JSON object a descriptor carries, and its
//! flattened form (dotted keys) that routing and hints read.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
pub fn parse_metadata(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("metadata must be a JSON object".into()),
        Err(e) => Err(format!("metadata is not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}

//! The registry's capabilities as MCP tools, and call outcomes as tool
//! results.

use serde_json::{json, Map, Value};
use std::sync::Arc;
use warden::{CapabilityInfo, Error, Host};

/// Annotations read from capability metadata (in any namespace, e.g.
/// `mcp.annotations.read-only-hint` or `read-only-hint`).
const ANNOTATIONS: [(&str, &str); 4] = [
    ("read-only-hint", "readOnlyHint"),
    ("destructive-hint", "destructiveHint"),
    ("idempotent-hint", "idempotentHint"),
    ("open-world-hint", "openWorldHint"),
];

/// The tool list, in a deterministic order (by name).
///
/// A capability whose discovery source no longer answers (served from its
/// last snapshot) says since when in `_meta["dev.warden/stale-since"]`.
pub(crate) fn list(host: &Host) -> Vec<Value> {
    let mut caps = host.capabilities();
    caps.sort_by(|a, b| a.id.cmp(&b.id));
    let stale = host.stale_capabilities();
    caps.iter()
        .map(|c| {
            let mut t = tool(c);
            if let Some(since) = stale.get(&c.id) {
                t["_meta"]["dev.warden/stale-since"] =
                    json!(warden_manifest::time::rfc3339(*since, false));
            }
            t
        })
        .collect()
}

/// An MCP tool's output schema and structured content must be objects; a
/// capability whose output is not a map is wrapped as `{"result": ...}`.
fn wraps_output(info: &CapabilityInfo) -> bool {
    !matches!(info.output_type(), warden::TypeExpr::Map(_))
}

fn tool(info: &Arc<CapabilityInfo>) -> Value {
    let mut input = info.input_type().to_json_schema();
    if input.get("type").and_then(Value::as_str) != Some("object") {
        // MCP requires an object schema for arguments; a capability taking
        // something else cannot be called as a tool with its own shape.
        input = json!({"type": "object", "description": format!("input: {}", info.input_schema)});
    }
    let output = if wraps_output(info) {
        json!({"type": "object", "properties": {"result": info.output_type().to_json_schema()}, "required": ["result"]})
    } else {
        info.output_type().to_json_schema()
    };
    let mut t = json!({
        "name": info.id,
        "title": info.name,
        "description": info.description,
        "inputSchema": input,
        "outputSchema": output,
    });
    let mut annotations = Map::new();
    for (hint, key) in ANNOTATIONS {
        if let Some(Value::Bool(b)) = warden::route::find_hint(&info.flat_metadata, hint) {
            annotations.insert(key.into(), Value::Bool(*b));
        }
    }
    if !annotations.is_empty() {
        t["annotations"] = Value::Object(annotations);
    }
    if let Some(icons @ Value::Array(_)) = warden::route::find_hint(&info.flat_metadata, "icons") {
        t["icons"] = icons.clone();
    }
    t["_meta"] = json!({
        "dev.warden/version": info.version,
        "dev.warden/plugin": info.plugin,
        "dev.warden/provider": info.provider.name(),
    });
    t
}

/// A call's outcome as a tool result: structured content plus a text block,
/// or `isError` with the typed error's text.
pub(crate) fn result(info: &CapabilityInfo, outcome: Result<Value, Error>) -> Value {
    match outcome {
        // Values move in whole (`json!` would copy them).
        Ok(out) => {
            let text = serde_json::to_string(&out).expect("a Value serializes");
            let structured = match wraps_output(info) {
                true => Value::Object(serde_json::Map::from_iter([("result".into(), out)])),
                false => out,
            };
            let mut result = serde_json::Map::with_capacity(3);
            result.insert("content".into(), text_content(text));
            result.insert("structuredContent".into(), structured);
            result.insert("isError".into(), false.into());
            Value::Object(result)
        }
        Err(e) => json!({
            "content": text_content(e.to_string()),
            "isError": true,
            "_meta": {"dev.warden/error": e.code()},
        }),
    }
}

/// A one-block `content` array holding `text` (moved in).
fn text_content(text: String) -> Value {
    let block = serde_json::Map::from_iter([
        ("type".to_string(), Value::from("text")),
        ("text".to_string(), Value::String(text)),
    ]);
    Value::Array(vec![Value::Object(block)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden::{Manifest, ProviderKind};

    fn info(output: &str, metadata: Value) -> CapabilityInfo {
        CapabilityInfo::from_manifest(
            Manifest {
                id: "x.do".into(),
                name: "Do".into(),
                version: "1.0.0".into(),
                description: "does".into(),
                provider: ProviderKind::Local,
                provider_meta: Default::default(),
                input_schema: "[:map [:n :int] [:s {:optional true} :string]]".into(),
                output_schema: output.into(),
                metadata,
                permissions: vec![],
                effects: vec![],
            },
            Some("p".into()),
        )
        .unwrap()
    }

    #[test]
    fn a_capability_becomes_a_tool_with_schemas_and_annotations() {
        let meta = json!({"mcp": {"annotations": {"read-only-hint": true, "destructive-hint": false}}, "idempotent_hint": true, "open-world-hint": "yes"});
        let t = tool(&Arc::new(info("[:map [:out :int]]", meta)));
        assert_eq!(t["name"], "x.do");
        assert_eq!(t["title"], "Do");
        assert_eq!(t["inputSchema"]["required"], json!(["n"]));
        assert_eq!(t["outputSchema"]["properties"]["out"]["type"], "integer");
        // Booleans only: a hint that is not one is left out.
        assert_eq!(
            t["annotations"],
            json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true})
        );
    }

    #[test]
    fn a_non_map_output_is_wrapped_and_errors_carry_their_kind() {
        let i = info(":int", json!({}));
        let t = tool(&Arc::new(i.clone()));
        assert_eq!(t["outputSchema"]["required"], json!(["result"]));
        assert!(t.get("annotations").is_none());
        let r = result(&i, Ok(json!(7)));
        assert_eq!(r["structuredContent"], json!({"result": 7}));
        assert_eq!(r["content"][0]["text"], "7");
        let r = result(
            &i,
            Err(Error::Denied {
                capability: "x.do".into(),
                message: "no".into(),
            }),
        );
        assert_eq!(r["isError"], true);
        assert_eq!(r["_meta"]["dev.warden/error"], "denied");
        assert!(r["content"][0]["text"].as_str().unwrap().contains("no"));
    }
}

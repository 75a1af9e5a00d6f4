//! A plugin's capability descriptors as registry entries.

use super::*;

/// A plugin's descriptor as a registry entry.
pub(super) fn descriptor_info(
    d: crate::bindings::warden::provider::types::CapabilityDescriptor,
    plugin: &str,
) -> std::result::Result<CapabilityInfo, String> {
    let metadata = parse_metadata(&d.metadata)?;
    let provider = if d.provider_kind.trim().is_empty() {
        ProviderKind::Plugin
    } else {
        ProviderKind::parse(d.provider_kind.trim())
            .ok_or_else(|| format!("unknown provider kind `{}`", d.provider_kind))?
    };
    let provider_meta = match parse_metadata(&d.provider_meta)
        .map_err(|e| e.replace("metadata", "provider-meta"))?
    {
        Value::Object(o) => o,
        _ => unreachable!("parse_metadata returns objects"),
    };
    let manifest = Manifest {
        id: d.id,
        name: d.name,
        version: d.version,
        description: d.description,
        provider,
        provider_meta,
        input_schema: schema_text(&d.input_schema).map_err(|e| format!("input schema: {e}"))?,
        output_schema: schema_text(&d.output_schema).map_err(|e| format!("output schema: {e}"))?,
        metadata,
        permissions: d.permissions,
        effects: d.effects,
    };
    CapabilityInfo::from_manifest(manifest, Some(plugin.to_string()))
}

/// A descriptor's schema as an RTFS type expression: JSON Schema object
/// texts (as MCP tools give) are converted; anything else is taken as RTFS.
fn schema_text(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(":any".into());
    }
    if !t.starts_with('{') {
        return Ok(t.to_string());
    }
    let json: Value =
        serde_json::from_str(t).map_err(|e| format!("not valid JSON Schema text: {e}"))?;
    let (ty, _lost) = warden_manifest::schema::TypeExpr::from_json_schema(&json);
    Ok(ty.to_text())
}

//! The capabilities a plugin declares (WIT `capability-descriptor`s) as
//! registry entries.

use super::*;

/// One declared capability as a registry entry.
pub(super) fn declared_info(
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
    let mut notes = Vec::new();
    let input_schema =
        schema_text(&d.input_schema, &mut notes).map_err(|e| format!("input schema: {e}"))?;
    notes.iter_mut().for_each(|n| *n = format!("input {n}"));
    let mut output_notes = Vec::new();
    let output_schema = schema_text(&d.output_schema, &mut output_notes)
        .map_err(|e| format!("output schema: {e}"))?;
    notes.extend(output_notes.into_iter().map(|n| format!("output {n}")));
    let manifest = Manifest {
        id: d.id,
        name: d.name,
        version: d.version,
        description: d.description,
        provider,
        provider_meta,
        input_schema,
        output_schema,
        metadata,
        permissions: d.permissions,
        effects: d.effects,
    };
    let mut info = CapabilityInfo::from_manifest(manifest, Some(plugin.to_string()))?;
    info.schema_notes = notes;
    Ok(info)
}

/// A descriptor's schema as an RTFS type expression: JSON Schema object
/// texts (as MCP tools give) are converted; anything else is taken as RTFS.
fn schema_text(text: &str, notes: &mut Vec<String>) -> std::result::Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(":any".into());
    }
    if !t.starts_with('{') {
        return Ok(t.to_string());
    }
    let json: Value =
        serde_json::from_str(t).map_err(|e| format!("not valid JSON Schema text: {e}"))?;
    let (ty, lost) = warden_manifest::schema::TypeExpr::from_json_schema(&json);
    notes.extend(lost);
    Ok(ty.to_text())
}

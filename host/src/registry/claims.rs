//! What a plugin may register: ids in its own namespaces, in a documented
//! form and size, not held by the operator, and no more than its share.
//! Refused claims are counted and summarized, never one record each.

use super::CapabilityInfo;
use std::fmt;

/// Longest capability id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Most capabilities one plugin registers (declared and discovered).
pub const MAX_CAPABILITIES_PER_PLUGIN: usize = 4096;
/// Most capabilities one discovery source registers.
pub const MAX_CAPABILITIES_PER_SOURCE: usize = 1024;
/// Most discovery sources one plugin has.
pub const MAX_SOURCES_PER_PLUGIN: usize = 64;
/// Longest display name, version, description, schema and metadata (as
/// JSON) of one capability, in bytes.
const MAX_NAME_BYTES: usize = 256;
const MAX_VERSION_BYTES: usize = 64;
const MAX_DESCRIPTION_BYTES: usize = 8 << 10;
const MAX_SCHEMA_BYTES: usize = 64 << 10;
const MAX_METADATA_BYTES: usize = 64 << 10;
/// Refused ids a summary names; the rest are counted.
const EXAMPLES: usize = 5;

/// Whether `id` has the documented form: 1 to [`MAX_ID_BYTES`] bytes of
/// ASCII letters, digits and `. _ - : / @ +`, starting with a letter or
/// digit. (No control, space, bidirectional or invisible characters, and
/// nothing that normalizes or folds into another id but ASCII case, which
/// the registry refuses separately.)
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(format!(
            "an id is 1 to {MAX_ID_BYTES} bytes (this one is {})",
            id.len()
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:/@+".contains(c);
    if let Some(bad) = id.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "an id holds only ASCII letters, digits and `. _ - : / @ +` (not {bad:?})"
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("an id starts with a letter or digit".into());
    }
    Ok(())
}

/// Why a capability's fields are too large to register.
pub(crate) fn check_sizes(info: &CapabilityInfo) -> Result<(), String> {
    let metadata = serde_json::to_string(&info.metadata).map_or(usize::MAX, |m| m.len());
    let provider = serde_json::to_string(&info.provider_meta).map_or(usize::MAX, |m| m.len());
    for (field, len, max) in [
        ("name", info.name.len(), MAX_NAME_BYTES),
        ("version", info.version.len(), MAX_VERSION_BYTES),
        ("description", info.description.len(), MAX_DESCRIPTION_BYTES),
        ("input schema", info.input_schema.len(), MAX_SCHEMA_BYTES),
        ("output schema", info.output_schema.len(), MAX_SCHEMA_BYTES),
        ("metadata", metadata, MAX_METADATA_BYTES),
        ("provider parameters", provider, MAX_METADATA_BYTES),
    ] {
        if len > max {
            return Err(format!("its {field} is larger than {max} bytes"));
        }
    }
    Ok(())
}

/// The id prefixes a plugin may register under: `[plugins.X] namespaces`,
/// or the plugin's own name.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(transparent)]
pub struct Namespaces(Vec<String>);

impl Namespaces {
    /// `configured`, or `[name]` when none are.
    pub fn new(name: &str, configured: &[String]) -> Namespaces {
        if configured.is_empty() {
            Namespaces(vec![name.to_string()])
        } else {
            Namespaces(configured.to_vec())
        }
    }

    /// Whether `id` is one of them or under one (`ns.` prefix).
    pub fn contains(&self, id: &str) -> bool {
        self.0.iter().any(|ns| {
            id == ns
                || (id.len() > ns.len()
                    && id.starts_with(ns.as_str())
                    && id.as_bytes()[ns.len()] == b'.')
        })
    }
}

impl fmt::Display for Namespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// Why a plugin's claim on an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Refusal {
    /// Not in the documented form, or too large.
    Malformed(String),
    /// Outside the plugin's namespaces.
    Outside,
    /// Held by the operator (`[[capabilities]]`, the marketplace store).
    Reserved(String),
    /// Registered already, by the one named.
    Owned(String),
    /// The same as a registered id but for ASCII case.
    Confusable(String),
    /// Past a count cap (named).
    TooMany(&'static str),
}

impl Refusal {
    fn describe(&self, namespaces: &Namespaces) -> String {
        match self {
            Refusal::Malformed(why) => format!("malformed ({why})"),
            Refusal::Outside => format!("outside the plugin's namespaces ({namespaces})"),
            Refusal::Reserved(by) => format!("held by {by}"),
            Refusal::Owned(by) => format!("owned by {by}"),
            Refusal::Confusable(id) => format!("differing only in case from `{id}`"),
            Refusal::TooMany(cap) => format!("past {cap}"),
        }
    }
}

/// The refused claims of one plugin in one registration round.
#[derive(Default)]
pub(crate) struct Refused {
    by_reason: std::collections::BTreeMap<Refusal, (usize, Vec<String>)>,
}

impl Refused {
    pub(crate) fn add(&mut self, id: &str, why: Refusal) {
        let (n, examples) = self.by_reason.entry(why).or_default();
        *n += 1;
        if examples.len() < EXAMPLES {
            examples.push(super::clip(id));
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.by_reason.values().map(|(n, _)| n).sum()
    }

    /// One line: how many were refused, why, and a few of each.
    pub(crate) fn summary(&self, namespaces: &Namespaces) -> String {
        let parts: Vec<String> = self
            .by_reason
            .iter()
            .map(|(why, (n, examples))| {
                let more = if *n > examples.len() { ", …" } else { "" };
                format!(
                    "{n} {}: {}{more}",
                    why.describe(namespaces),
                    examples.join(", ")
                )
            })
            .collect();
        format!(
            "{} capability claims refused: {}",
            self.count(),
            parts.join("; ")
        )
    }
}

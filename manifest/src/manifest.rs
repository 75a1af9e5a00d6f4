//! The capability model: a capability's [`Manifest`] (id, schemas,
//! metadata, provider kind and its provider-meta) and its conversion to and
//! from RTFS and JSON, checked field by field. Snapshot files of many
//! manifests are in [`crate::snapshot`].

use crate::rtfs::{self, key_to_rtfs, Value as Rtfs};
use crate::schema::TypeExpr;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::fmt;

/// What kind of provider stands behind a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProviderKind {
    /// A REST endpoint.
    Http,
    /// A Model Context Protocol server tool.
    Mcp,
    /// An agent-to-agent endpoint.
    A2A,
    /// A remote RTFS module.
    #[serde(rename = "RemoteRTFS")]
    RemoteRtfs,
    /// Served by a Warden plugin's own code (runtime-only).
    Plugin,
    /// A local closure (runtime-only).
    Local,
    /// A stream or channel (runtime-only).
    Stream,
    /// An external registry handle (runtime-only).
    Registry,
}

impl ProviderKind {
    /// Every kind.
    pub const ALL: [ProviderKind; 8] = [
        ProviderKind::Http,
        ProviderKind::Mcp,
        ProviderKind::A2A,
        ProviderKind::RemoteRtfs,
        ProviderKind::Plugin,
        ProviderKind::Local,
        ProviderKind::Stream,
        ProviderKind::Registry,
    ];

    /// The canonical name (`Http`, `RemoteRTFS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Http => "Http",
            ProviderKind::Mcp => "Mcp",
            ProviderKind::A2A => "A2A",
            ProviderKind::RemoteRtfs => "RemoteRTFS",
            ProviderKind::Plugin => "Plugin",
            ProviderKind::Local => "Local",
            ProviderKind::Stream => "Stream",
            ProviderKind::Registry => "Registry",
        }
    }

    /// Parses a kind name, ignoring case.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Whether capabilities of this kind can be exported and imported.
    pub fn serializable(self) -> bool {
        matches!(
            self,
            ProviderKind::Http | ProviderKind::Mcp | ProviderKind::A2A | ProviderKind::RemoteRtfs
        )
    }

    /// Provider-meta keys this kind requires, with the JSON type each needs.
    fn required_meta(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Http => &["base-url"],
            ProviderKind::Mcp => &["server-url", "tool-name"],
            ProviderKind::A2A => &["endpoint"],
            ProviderKind::RemoteRtfs => &["module-url"],
            _ => &[],
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Provider-meta keys that would carry a secret value.
const SECRET_VALUE_KEYS: &[&str] = &[
    "auth-token",
    "token",
    "password",
    "api-key",
    "secret",
    "bearer",
    "authorization",
];
/// Provider-meta keys whose values must be integers.
const INT_META_KEYS: &[&str] = &["timeout-ms"];

/// Checks a provider-meta map for `kind`: required keys present and of the
/// right type, integers where integers belong, no secret values.
pub fn check_provider_meta(kind: ProviderKind, meta: &Map<String, Json>) -> Result<(), String> {
    for key in kind.required_meta() {
        match meta.get(*key) {
            Some(Json::String(s)) if !s.is_empty() => {}
            Some(other) => {
                return Err(format!(
                    "provider-meta `{key}` must be a non-empty string, got {other}"
                ))
            }
            None => return Err(format!(":{kind} needs provider-meta `{key}`")),
        }
    }
    for (k, v) in meta {
        if SECRET_VALUE_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "provider-meta `{k}` would hold a secret value; name the secret with `auth-secret` instead (values never go into snapshots)"
            ));
        }
        if INT_META_KEYS.contains(&k.as_str()) && v.as_u64().is_none_or(|n| n == 0) {
            return Err(format!(
                "provider-meta `{k}` must be a positive integer, got {v}"
            ));
        }
        if k == "auth-secret" && v.as_str().is_none_or(str::is_empty) {
            return Err(format!(
                "provider-meta `auth-secret` must be a secret name, got {v}"
            ));
        }
    }
    Ok(())
}

/// One capability as the marketplace stores and exchanges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Globally unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Provider kind.
    pub provider: ProviderKind,
    /// Provider parameters (secrets by name only).
    #[serde(default)]
    pub provider_meta: Map<String, Json>,
    /// Input schema, RTFS type-expression text.
    pub input_schema: String,
    /// Output schema, RTFS type-expression text.
    pub output_schema: String,
    /// Hierarchical metadata.
    #[serde(default = "empty_object")]
    pub metadata: Json,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Effects.
    #[serde(default)]
    pub effects: Vec<String>,
}

fn empty_object() -> Json {
    Json::Object(Map::new())
}

impl Manifest {
    /// Checks the fields a snapshot cannot express by its syntax alone.
    pub fn check(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("empty capability id".into());
        }
        TypeExpr::parse(&self.input_schema).map_err(|e| format!("input-schema: {e}"))?;
        TypeExpr::parse(&self.output_schema).map_err(|e| format!("output-schema: {e}"))?;
        if !self.metadata.is_object() {
            return Err("metadata must be a map".into());
        }
        if self.provider.serializable() {
            check_provider_meta(self.provider, &self.provider_meta)?;
        }
        Ok(())
    }
}

/// JSON -> RTFS: object keys become keywords where they can.
pub fn json_to_rtfs(v: &Json) -> Rtfs {
    match v {
        Json::Null => Rtfs::Nil,
        Json::Bool(b) => Rtfs::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Rtfs::Int(i),
            None => Rtfs::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Rtfs::String(s.clone()),
        Json::Array(items) => Rtfs::Vector(items.iter().map(json_to_rtfs).collect()),
        Json::Object(map) => Rtfs::Map(
            map.iter()
                .map(|(k, v)| (key_to_rtfs(k), json_to_rtfs(v)))
                .collect(),
        ),
    }
}

/// RTFS -> JSON: keywords become their names (`:auto` -> `"auto"`).
pub fn rtfs_to_json(v: &Rtfs) -> Result<Json, String> {
    Ok(match v {
        Rtfs::Nil => Json::Null,
        Rtfs::Bool(b) => Json::Bool(*b),
        Rtfs::Int(i) => Json::from(*i),
        Rtfs::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))?,
        Rtfs::String(s) | Rtfs::Keyword(s) => Json::String(s.clone()),
        Rtfs::Vector(items) => {
            Json::Array(items.iter().map(rtfs_to_json).collect::<Result<_, _>>()?)
        }
        Rtfs::Map(pairs) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let key = k.as_key().ok_or_else(|| {
                    format!(
                        "map key {} must be a keyword or string",
                        rtfs::print_compact(k)
                    )
                })?;
                m.insert(key.to_string(), rtfs_to_json(v)?);
            }
            Json::Object(m)
        }
    })
}

/// The capability as an RTFS map, fields in the documented order.
pub fn manifest_to_rtfs(m: &Manifest) -> Rtfs {
    let kw = Rtfs::kw;
    let schema = |text: &str| {
        TypeExpr::parse(text)
            .map(|t| t.to_rtfs())
            .unwrap_or_else(|_| Rtfs::String(text.to_string()))
    };
    let strings = |v: &[String]| Rtfs::Vector(v.iter().map(|s| Rtfs::String(s.clone())).collect());
    Rtfs::Map(vec![
        (kw("id"), Rtfs::String(m.id.clone())),
        (kw("name"), Rtfs::String(m.name.clone())),
        (kw("version"), Rtfs::String(m.version.clone())),
        (kw("description"), Rtfs::String(m.description.clone())),
        (kw("provider"), Rtfs::Keyword(m.provider.name().to_string())),
        (
            kw("provider-meta"),
            json_to_rtfs(&Json::Object(m.provider_meta.clone())),
        ),
        (kw("input-schema"), schema(&m.input_schema)),
        (kw("output-schema"), schema(&m.output_schema)),
        (kw("metadata"), json_to_rtfs(&m.metadata)),
        (kw("permissions"), strings(&m.permissions)),
        (kw("effects"), strings(&m.effects)),
    ])
}

const CAPABILITY_KEYS: &[&str] = &[
    "id",
    "name",
    "version",
    "description",
    "provider",
    "provider-meta",
    "input-schema",
    "output-schema",
    "metadata",
    "permissions",
    "effects",
];

/// A capability from its RTFS map. Unknown keys are errors.
pub fn manifest_from_rtfs(v: &Rtfs) -> Result<Manifest, String> {
    let Rtfs::Map(pairs) = v else {
        return Err(format!("a capability is a map, got {}", v.kind()));
    };
    let id = match v.get("id") {
        Some(Rtfs::String(s)) => s.clone(),
        Some(other) => return Err(format!("`:id` must be a string, got {}", other.kind())),
        None => return Err("capability without `:id`".into()),
    };
    let ctx = |msg: String| format!("capability `{id}`: {msg}");
    unknown_key(pairs).map_err(&ctx)?;
    let provider = rtfs_provider(v).map_err(&ctx)?;
    let provider_meta = match rtfs_map(v, "provider-meta").map_err(&ctx)? {
        None => Map::new(),
        Some(Json::Object(o)) => o,
        Some(_) => unreachable!(),
    };
    let metadata = rtfs_map(v, "metadata")
        .map_err(&ctx)?
        .unwrap_or_else(empty_object);
    let m = Manifest {
        name: rtfs_text(v, "name", &id).map_err(&ctx)?,
        version: rtfs_text(v, "version", "1.0.0").map_err(&ctx)?,
        description: rtfs_text(v, "description", "").map_err(&ctx)?,
        provider,
        provider_meta,
        input_schema: rtfs_schema(v, "input-schema").map_err(&ctx)?,
        output_schema: rtfs_schema(v, "output-schema").map_err(&ctx)?,
        metadata,
        permissions: rtfs_list(v, "permissions").map_err(&ctx)?,
        effects: rtfs_list(v, "effects").map_err(&ctx)?,
        id: id.clone(),
    };
    m.check().map_err(ctx)?;
    Ok(m)
}

/// The first key of a capability map that is not one of
/// [`CAPABILITY_KEYS`], as an error.
fn unknown_key(pairs: &[(Rtfs, Rtfs)]) -> Result<(), String> {
    for (k, _) in pairs {
        let key = k.as_key().unwrap_or("");
        if !CAPABILITY_KEYS.contains(&key) {
            return Err(format!(
                "unknown key {} (expected one of :{})",
                rtfs::print_compact(k),
                CAPABILITY_KEYS.join(" :")
            ));
        }
    }
    Ok(())
}

/// The string at `key`, `default` when it is absent.
fn rtfs_text(v: &Rtfs, key: &str, default: &str) -> Result<String, String> {
    match v.get(key) {
        None => Ok(default.to_string()),
        Some(Rtfs::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("`:{key}` must be a string, got {}", other.kind())),
    }
}

/// The `:provider` keyword (or string), a known provider kind.
fn rtfs_provider(v: &Rtfs) -> Result<ProviderKind, String> {
    match v.get("provider") {
        Some(Rtfs::Keyword(k)) | Some(Rtfs::String(k)) => ProviderKind::parse(k).ok_or_else(|| {
            format!(
                "unknown provider `:{k}` (expected one of {})",
                ProviderKind::ALL
                    .map(|k| format!(":{}", k.name()))
                    .join(", ")
            )
        }),
        Some(other) => Err(format!(
            "`:provider` must be a keyword such as :Http, got {}",
            other.kind()
        )),
        None => Err("missing `:provider`".into()),
    }
}

/// The map at `key` as a JSON object; `None` when it is absent or nil.
fn rtfs_map(v: &Rtfs, key: &str) -> Result<Option<Json>, String> {
    match v.get(key) {
        None | Some(Rtfs::Nil) => Ok(None),
        Some(m @ Rtfs::Map(_)) => rtfs_to_json(m).map(Some),
        Some(other) => Err(format!("`:{key}` must be a map, got {}", other.kind())),
    }
}

/// The type expression at `key` (text or RTFS) in its canonical text;
/// `:any` when it is absent.
fn rtfs_schema(v: &Rtfs, key: &str) -> Result<String, String> {
    match v.get(key) {
        None => Ok(":any".into()),
        Some(Rtfs::String(s)) => TypeExpr::parse(s)
            .map(|t| t.to_text())
            .map_err(|e| format!("`:{key}`: {e}")),
        Some(s) => TypeExpr::from_rtfs(s)
            .map(|t| t.to_text())
            .map_err(|e| format!("`:{key}`: {e}")),
    }
}

/// The vector of strings (or keywords) at `key`; empty when it is absent
/// or nil.
fn rtfs_list(v: &Rtfs, key: &str) -> Result<Vec<String>, String> {
    match v.get(key) {
        None | Some(Rtfs::Nil) => Ok(Vec::new()),
        Some(Rtfs::Vector(items)) => items
            .iter()
            .map(|i| match i {
                Rtfs::String(s) | Rtfs::Keyword(s) => Ok(s.clone()),
                other => Err(format!("`:{key}` holds strings, got {}", other.kind())),
            })
            .collect(),
        Some(other) => Err(format!(
            "`:{key}` must be a vector of strings, got {}",
            other.kind()
        )),
    }
}

//! Marketplace snapshots: capabilities exported to RTFS files (one a
//! capability, in the snapshot module form) or one JSON file, and imported
//! back with nothing lost.
//!
//! ```text
//! :module
//!   :type "rtfs/capabilities/marketplace-snapshot"
//!   :version "1.0.0"
//!   :generated-at "2026-11-22T10:00:00Z"
//!   :capabilities [
//!     {:id "weather.current"
//!      :name "Current weather"
//!      :version "1.0.0"
//!      :description "..."
//!      :provider :Http
//!      :provider-meta {:base-url "https://api.example.com" :timeout-ms 5000 :auth-secret "WEATHER_KEY"}
//!      :input-schema [:map [:city :string]]
//!      :output-schema [:map [:temp :float]]
//!      :metadata {:http {:retry-strategy {:attempts 3 :backoff-ms 200}}}
//!      :permissions ["read:weather"]
//!      :effects ["call:external_api"]}
//!   ]
//! ```
//!
//! Only capabilities of serializable provider kinds (Http, Mcp, A2A,
//! RemoteRTFS) are exported or imported; the others are skipped with a
//! notice that names them. Secrets appear by name (`auth-secret`) only: a
//! provider-meta key that would hold a secret value is refused.

use crate::rtfs::{self, Value as Rtfs};
use crate::schema::TypeExpr;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::fmt;
use std::path::{Path, PathBuf};

/// The snapshot `:type`.
pub const SNAPSHOT_TYPE: &str = "rtfs/capabilities/marketplace-snapshot";
/// The snapshot format version written.
pub const SNAPSHOT_VERSION: &str = "1.0.0";

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
        if INT_META_KEYS.contains(&k.as_str()) && !v.as_u64().is_some_and(|n| n > 0) {
            return Err(format!(
                "provider-meta `{k}` must be a positive integer, got {v}"
            ));
        }
        if k == "auth-secret" && !v.as_str().is_some_and(|s| !s.is_empty()) {
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

/// A map key as a keyword where it can be one (`:base-url`), else a string.
pub(crate) fn key_to_rtfs(k: &str) -> Rtfs {
    let keyword_safe = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_alphanumeric() || "-_.?!*+/<>=".contains(c));
    if keyword_safe {
        Rtfs::Keyword(k.to_string())
    } else {
        Rtfs::String(k.to_string())
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
    for (k, _) in pairs {
        let key = k.as_key().unwrap_or("");
        if !CAPABILITY_KEYS.contains(&key) {
            return Err(ctx(format!(
                "unknown key {} (expected one of :{})",
                rtfs::print_compact(k),
                CAPABILITY_KEYS.join(" :")
            )));
        }
    }
    let text = |key: &str, default: &str| -> Result<String, String> {
        match v.get(key) {
            None => Ok(default.to_string()),
            Some(Rtfs::String(s)) => Ok(s.clone()),
            Some(other) => Err(ctx(format!(
                "`:{key}` must be a string, got {}",
                other.kind()
            ))),
        }
    };
    let provider = match v.get("provider") {
        Some(Rtfs::Keyword(k)) | Some(Rtfs::String(k)) => {
            ProviderKind::parse(k).ok_or_else(|| {
                ctx(format!(
                    "unknown provider `:{k}` (expected one of {})",
                    ProviderKind::ALL
                        .map(|k| format!(":{}", k.name()))
                        .join(", ")
                ))
            })?
        }
        Some(other) => {
            return Err(ctx(format!(
                "`:provider` must be a keyword such as :Http, got {}",
                other.kind()
            )))
        }
        None => return Err(ctx("missing `:provider`".into())),
    };
    let provider_meta = match v.get("provider-meta") {
        None | Some(Rtfs::Nil) => Map::new(),
        Some(m @ Rtfs::Map(_)) => match rtfs_to_json(m).map_err(&ctx)? {
            Json::Object(o) => o,
            _ => unreachable!(),
        },
        Some(other) => {
            return Err(ctx(format!(
                "`:provider-meta` must be a map, got {}",
                other.kind()
            )))
        }
    };
    let schema = |key: &str| -> Result<String, String> {
        match v.get(key) {
            None => Ok(":any".into()),
            Some(Rtfs::String(s)) => TypeExpr::parse(s)
                .map(|t| t.to_text())
                .map_err(|e| ctx(format!("`:{key}`: {e}"))),
            Some(s) => TypeExpr::from_rtfs(s)
                .map(|t| t.to_text())
                .map_err(|e| ctx(format!("`:{key}`: {e}"))),
        }
    };
    let metadata = match v.get("metadata") {
        None | Some(Rtfs::Nil) => empty_object(),
        Some(m @ Rtfs::Map(_)) => rtfs_to_json(m).map_err(&ctx)?,
        Some(other) => {
            return Err(ctx(format!(
                "`:metadata` must be a map, got {}",
                other.kind()
            )))
        }
    };
    let list = |key: &str| -> Result<Vec<String>, String> {
        match v.get(key) {
            None | Some(Rtfs::Nil) => Ok(Vec::new()),
            Some(Rtfs::Vector(items)) => items
                .iter()
                .map(|i| match i {
                    Rtfs::String(s) | Rtfs::Keyword(s) => Ok(s.clone()),
                    other => Err(ctx(format!("`:{key}` holds strings, got {}", other.kind()))),
                })
                .collect(),
            Some(other) => Err(ctx(format!(
                "`:{key}` must be a vector of strings, got {}",
                other.kind()
            ))),
        }
    };
    let m = Manifest {
        name: text("name", &id)?,
        version: text("version", "1.0.0")?,
        description: text("description", "")?,
        provider,
        provider_meta,
        input_schema: schema("input-schema")?,
        output_schema: schema("output-schema")?,
        metadata,
        permissions: list("permissions")?,
        effects: list("effects")?,
        id: id.clone(),
    };
    m.check().map_err(ctx)?;
    Ok(m)
}

/// The current time as RFC 3339 UTC (`2026-11-22T10:00:00Z`).
pub fn now_rfc3339() -> String {
    crate::audit::rfc3339(std::time::SystemTime::now(), false)
}

/// Prints a snapshot module holding `caps`.
pub fn snapshot_to_rtfs(caps: &[Manifest]) -> String {
    let mut out = String::new();
    out.push_str(";; Warden marketplace snapshot. Edit it freely, then `warden import` it.\n");
    out.push_str(":module\n");
    out.push_str(&format!(
        "  :type {}\n",
        rtfs::print_compact(&Rtfs::String(SNAPSHOT_TYPE.into()))
    ));
    out.push_str(&format!(
        "  :version {}\n",
        rtfs::print_compact(&Rtfs::String(SNAPSHOT_VERSION.into()))
    ));
    out.push_str(&format!(
        "  :generated-at {}\n\n",
        rtfs::print_compact(&Rtfs::String(now_rfc3339()))
    ));
    out.push_str("  :capabilities [\n");
    for m in caps {
        let body = rtfs::print(&manifest_to_rtfs(m));
        for (i, line) in body.lines().enumerate() {
            out.push_str("    ");
            out.push_str(line);
            if i == 0 || !line.is_empty() {
                out.push('\n');
            }
        }
    }
    out.push_str("  ]\n");
    out
}

/// Reads an RTFS snapshot: the `:module` form, a `{:type ... :capabilities [...]}`
/// map, or a single capability map.
pub fn snapshot_from_rtfs(text: &str) -> Result<Vec<Rtfs>, String> {
    let forms = rtfs::read_all(text).map_err(|e| e.to_string())?;
    let top = match forms.as_slice() {
        [Rtfs::Keyword(k), rest @ ..] if k == "module" => {
            if rest.len() % 2 != 0 {
                return Err("`:module` must be followed by key value pairs".into());
            }
            Rtfs::Map(
                rest.chunks(2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect(),
            )
        }
        [single @ Rtfs::Map(_)] => single.clone(),
        [] => return Err("empty file".into()),
        _ => return Err("expected a `:module` snapshot or one map".into()),
    };
    if top.get("id").is_some() && top.get("capabilities").is_none() {
        return Ok(vec![top]);
    }
    if let Some(t) = top.get("type") {
        if t.as_str() != Some(SNAPSHOT_TYPE) {
            return Err(format!(
                "`:type` is {}, expected \"{SNAPSHOT_TYPE}\"",
                rtfs::print_compact(t)
            ));
        }
    }
    check_version(top.get("version").and_then(Rtfs::as_str))?;
    match top.get("capabilities") {
        Some(Rtfs::Vector(items)) => Ok(items.clone()),
        Some(other) => Err(format!(
            "`:capabilities` must be a vector, got {}",
            other.kind()
        )),
        None => Err("no `:capabilities` in snapshot".into()),
    }
}

fn check_version(v: Option<&str>) -> Result<(), String> {
    match v {
        None => Ok(()),
        Some(v) if v.split('.').next() == Some("1") => Ok(()),
        Some(v) => Err(format!(
            "snapshot version {v} is not supported (this Warden reads 1.x)"
        )),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct JsonSnapshot {
    #[serde(rename = "type")]
    kind: String,
    version: String,
    #[serde(default)]
    generated_at: Option<String>,
    capabilities: Vec<Json>,
}

/// Prints a JSON snapshot holding `caps`.
pub fn snapshot_to_json(caps: &[Manifest]) -> String {
    let snap = JsonSnapshot {
        kind: SNAPSHOT_TYPE.into(),
        version: SNAPSHOT_VERSION.into(),
        generated_at: Some(now_rfc3339()),
        capabilities: caps
            .iter()
            .map(|m| serde_json::to_value(m).expect("manifests serialize"))
            .collect(),
    };
    serde_json::to_string_pretty(&snap).expect("snapshots serialize") + "\n"
}

/// One capability entry read from a snapshot, parsed or not.
pub type Entry = Result<Manifest, String>;

/// Reads a JSON snapshot; each capability is parsed on its own so one bad
/// entry does not hide the others.
pub fn snapshot_from_json(text: &str) -> Result<Vec<Entry>, String> {
    let snap: JsonSnapshot =
        serde_json::from_str(text).map_err(|e| format!("not a JSON snapshot: {e}"))?;
    if snap.kind != SNAPSHOT_TYPE {
        return Err(format!(
            "`type` is {:?}, expected {SNAPSHOT_TYPE:?}",
            snap.kind
        ));
    }
    check_version(Some(&snap.version))?;
    Ok(snap
        .capabilities
        .iter()
        .map(|c| {
            let id = c
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or("?")
                .to_string();
            let m: Manifest =
                serde_json::from_value(c.clone()).map_err(|e| format!("capability `{id}`: {e}"))?;
            let m = Manifest {
                input_schema: TypeExpr::parse(&m.input_schema)
                    .map_err(|e| format!("capability `{id}`: input-schema: {e}"))?
                    .to_text(),
                output_schema: TypeExpr::parse(&m.output_schema)
                    .map_err(|e| format!("capability `{id}`: output-schema: {e}"))?
                    .to_text(),
                ..m
            };
            m.check().map_err(|e| format!("capability `{id}`: {e}"))?;
            Ok(m)
        })
        .collect())
}

/// Reads every capability entry in `path`: a `.rtfs` or `.json` file, or a
/// directory of them. Returns (file, entry) pairs; a file that cannot be
/// read at all is an error.
pub fn read_path(path: &Path) -> Result<Vec<(PathBuf, Entry)>, String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("rtfs" | "json")
                    )
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let is_json = file.extension().and_then(|e| e.to_str()) == Some("json")
            || text.trim_start().starts_with('{') && text.contains("\"capabilities\"");
        let entries: Vec<Entry> = if is_json {
            snapshot_from_json(&text).map_err(|e| format!("{}: {e}", file.display()))?
        } else {
            snapshot_from_rtfs(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?
                .iter()
                .map(manifest_from_rtfs)
                .collect()
        };
        out.extend(entries.into_iter().map(|e| (file.clone(), e)));
    }
    Ok(out)
}

/// A file name for capability `id`: safe characters kept, others `_`.
pub fn file_name(id: &str, ext: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!(
        "{}.{ext}",
        if safe.is_empty() { "capability" } else { safe }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http() -> Manifest {
        Manifest {
            id: "weather.current".into(),
            name: "Current weather".into(),
            version: "1.2.0".into(),
            description: "Weather \"now\"\nfor a city".into(),
            provider: ProviderKind::Http,
            provider_meta: json!({"base-url": "https://api.example.com", "timeout-ms": 5000, "auth-secret": "WEATHER_KEY"}).as_object().unwrap().clone(),
            input_schema: "[:map [:city :string] [:units [:enum \"metric\" \"imperial\"]] [:days :int?]]".into(),
            output_schema: "[:map [:temp :float] [:tags [:vector :string]]]".into(),
            metadata: json!({"http": {"retry-strategy": {"attempts": 3, "backoff-ms": 200}}, "odd key": [1, 2.5, null, true]}),
            permissions: vec!["read:weather".into()],
            effects: vec!["call:external_api".into()],
        }
    }

    #[test]
    fn rtfs_and_json_round_trips_keep_every_field() {
        let m = http();
        m.check().unwrap();
        let back =
            manifest_from_rtfs(&rtfs::read(&rtfs::print(&manifest_to_rtfs(&m))).unwrap()).unwrap();
        assert_eq!(back, m);
        let snap = snapshot_to_rtfs(std::slice::from_ref(&m));
        let caps = snapshot_from_rtfs(&snap).unwrap();
        assert_eq!(manifest_from_rtfs(&caps[0]).unwrap(), m);
        let json = snapshot_to_json(std::slice::from_ref(&m));
        assert_eq!(snapshot_from_json(&json).unwrap()[0].as_ref().unwrap(), &m);
    }

    #[test]
    fn secret_values_are_refused() {
        let mut m = http();
        m.provider_meta
            .insert("auth-token".into(), json!("ghp_123"));
        assert!(m.check().unwrap_err().contains("auth-secret"));
    }

    #[test]
    fn provider_meta_is_checked_per_kind() {
        for (kind, meta, needle) in [
            (ProviderKind::Http, json!({}), "base-url"),
            (
                ProviderKind::Mcp,
                json!({"server-url": "http://x"}),
                "tool-name",
            ),
            (ProviderKind::A2A, json!({"endpoint": 3}), "endpoint"),
            (ProviderKind::RemoteRtfs, json!({}), "module-url"),
            (
                ProviderKind::Http,
                json!({"base-url": "u", "timeout-ms": "soon"}),
                "timeout-ms",
            ),
        ] {
            let err = check_provider_meta(kind, meta.as_object().unwrap()).unwrap_err();
            assert!(err.contains(needle), "{kind}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        for (src, needle) in [
            ("{:id \"a\" :provider :Http :provider-meta {:base-url \"u\"} :colour \"red\"}", ":colour"),
            ("{:id \"a\" :provider :Ftp}", "unknown provider"),
            ("{:id \"a\"}", "missing `:provider`"),
            ("{:id \"a\" :provider :Http :provider-meta {:base-url \"u\"} :input-schema [:mapp]}", "input-schema"),
            ("{:id 3 :provider :Http}", ":id"),
            ("{:id \"a\" :provider :Http :provider-meta {:base-url \"u\"} :permissions \"all\"}", "permissions"),
        ] {
            let err = manifest_from_rtfs(&rtfs::read(src).unwrap()).unwrap_err();
            assert!(err.contains(needle), "{src}: {err}");
        }
    }

    #[test]
    fn seed_style_module_reads() {
        let text = r#"
:module
  :type "rtfs/capabilities/marketplace-snapshot"
  :version "1.0.0"
  :generated-at "2025-10-25T14:32:10Z"

  :capabilities [
    {:id "github.issues"
     :name "Issues"
     :version "1.0.0"
     :description "Lists issues"
     :provider :Mcp
     :provider-meta {:server-url "http://localhost:3001" :tool-name "list_issues" :timeout-ms 5000}
     :input-schema [:map {:repo :string :state :string?}]
     :output-schema [:vector [:map [:title :string]]]
     :metadata {:mcp {:requires-session :auto}}
     :permissions ["read:issues"]
     :effects ["call:external_api" "maintain:session"]}
  ]"#;
        let caps = snapshot_from_rtfs(text).unwrap();
        let m = manifest_from_rtfs(&caps[0]).unwrap();
        assert_eq!(m.provider, ProviderKind::Mcp);
        assert_eq!(m.input_schema, "[:map [:repo :string] [:state :string?]]");
        assert_eq!(m.metadata, json!({"mcp": {"requires-session": "auto"}}));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}

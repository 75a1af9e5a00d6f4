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

use crate::manifest::{manifest_from_rtfs, manifest_to_rtfs, Manifest};
use crate::rtfs::{self, Value as Rtfs};
use crate::schema::TypeExpr;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// The snapshot `:type`.
pub const SNAPSHOT_TYPE: &str = "rtfs/capabilities/marketplace-snapshot";
/// The snapshot format version written.
pub const SNAPSHOT_VERSION: &str = "1.0.0";

/// The current time as RFC 3339 UTC (`2026-11-22T10:00:00Z`).
pub fn now_rfc3339() -> String {
    crate::time::rfc3339(std::time::SystemTime::now(), false)
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
    use crate::manifest::*;
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

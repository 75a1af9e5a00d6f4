//! `warden.lock`: what each plugin was when an operator accepted it (its
//! source, digest, signer, the capabilities it declares with their schema
//! digests and effects, the WASI interfaces it imports and the grants it is
//! given), and what a new version changes against that. `[host] on-update`
//! decides whether a changed plugin loads.

use crate::config::Grants;
pub use crate::config::OnUpdate;
use crate::registry::CapabilityInfo;
use crate::runtime::PluginInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// The lockfile's format version.
pub const LOCK_VERSION: u32 = 1;

/// The whole lockfile.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lockfile {
    /// [`LOCK_VERSION`].
    pub version: u32,
    /// Each locked plugin by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, LockedPlugin>,
}

/// One plugin as it was accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedPlugin {
    /// `component` as configured (a file or an `oci://` reference).
    pub source: String,
    /// The component's digest (`sha256:…` of its bytes).
    pub digest: String,
    /// For a pulled component: the reference pinned to its manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The id of the key its signature verified with, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The WASI and host interfaces it imports: the effects it can reach for.
    #[serde(default)]
    pub imports: Vec<String>,
    /// The grants it is given, one line each.
    #[serde(default)]
    pub grants: Vec<String>,
    /// The capabilities it declares, by id.
    #[serde(default)]
    pub capabilities: BTreeMap<String, LockedCapability>,
}

/// One declared capability.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedCapability {
    /// SHA-256 of its input and output schemas.
    pub schema: String,
    /// Its declared effects.
    #[serde(default)]
    pub effects: Vec<String>,
    /// Its declared permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
}

impl Lockfile {
    /// Reads the lockfile at `path`; `None` if there is none.
    pub fn read(path: &Path) -> Result<Option<Lockfile>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let lock: Lockfile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if lock.version != LOCK_VERSION {
            return Err(format!(
                "{}: version {} (this host reads version {LOCK_VERSION})",
                path.display(),
                lock.version
            ));
        }
        Ok(Some(lock))
    }

    /// Writes it to `path` (through a temporary file).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let body = toml::to_string_pretty(self).map_err(std::io::Error::other)?;
        let text = format!(
            "# Written by `warden lock`: each plugin as it was accepted. `[host] on-update`\n# decides what a changed version may do; `warden diff` shows the changes.\n{body}"
        );
        let tmp = path.with_extension(format!("lock.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

impl LockedPlugin {
    /// The entry of a loaded plugin: `source` as configured, its info and
    /// its declared capabilities.
    pub fn of(source: &str, info: &PluginInfo, capabilities: &[&CapabilityInfo]) -> LockedPlugin {
        let capabilities = capabilities
            .iter()
            .map(|c| {
                let schemas = format!("{}\n{}", c.input_schema, c.output_schema);
                let locked = LockedCapability {
                    schema: crate::digest::digest(schemas.as_bytes()),
                    effects: sorted(&c.effects),
                    permissions: sorted(&c.permissions),
                };
                (c.id.clone(), locked)
            })
            .collect();
        LockedPlugin {
            source: source.to_string(),
            digest: info.digest.clone(),
            pinned: info
                .component
                .starts_with(crate::oci::SCHEME)
                .then(|| info.component.clone()),
            signer: info.signer.clone(),
            imports: sorted(&info.imports),
            grants: grant_lines(&info.grants),
            capabilities,
        }
    }

    /// What `new` changes against this entry.
    pub fn diff(&self, new: &LockedPlugin) -> UpdateDiff {
        let mut d = UpdateDiff::default();
        for (id, cap) in &new.capabilities {
            match self.capabilities.get(id) {
                None => d.added.push(id.clone()),
                Some(old) => {
                    if old.schema != cap.schema {
                        d.schemas_changed.push(id.clone());
                    }
                    for e in cap.effects.iter().filter(|e| !old.effects.contains(e)) {
                        d.new_effects.push(format!("{id}: {e}"));
                    }
                    for p in cap
                        .permissions
                        .iter()
                        .filter(|p| !old.permissions.contains(p))
                    {
                        d.new_effects.push(format!("{id}: permission {p}"));
                    }
                }
            }
        }
        d.removed = self
            .capabilities
            .keys()
            .filter(|id| !new.capabilities.contains_key(*id))
            .cloned()
            .collect();
        d.new_imports = added(&self.imports, &new.imports);
        d.new_grants = added(&self.grants, &new.grants);
        d.dropped_grants = added(&new.grants, &self.grants);
        if self.signer != new.signer {
            d.signer = Some((self.signer.clone(), new.signer.clone()));
        }
        d
    }
}

/// What a new version of a plugin changes against its locked entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UpdateDiff {
    /// Capabilities it now declares.
    pub added: Vec<String>,
    /// Capabilities it no longer declares.
    pub removed: Vec<String>,
    /// Capabilities whose input or output schema changed.
    pub schemas_changed: Vec<String>,
    /// Effects or permissions a capability now declares.
    pub new_effects: Vec<String>,
    /// Interfaces the component now imports.
    pub new_imports: Vec<String>,
    /// Grants it is now given.
    pub new_grants: Vec<String>,
    /// Grants it is no longer given.
    pub dropped_grants: Vec<String>,
    /// Who signed it before and now, if that changed.
    pub signer: Option<(Option<String>, Option<String>)>,
}

impl UpdateDiff {
    /// Whether nothing declared changed.
    pub fn is_empty(&self) -> bool {
        *self == UpdateDiff::default()
    }

    /// Whether it reaches for nothing new: no new import, grant or effect.
    pub fn same_grants(&self) -> bool {
        self.new_imports.is_empty() && self.new_grants.is_empty() && self.new_effects.is_empty()
    }

    /// Whether `policy` lets the new version load.
    pub fn allowed_by(&self, policy: OnUpdate) -> bool {
        match policy {
            OnUpdate::Accept => true,
            OnUpdate::AcceptSameGrants => self.same_grants(),
            OnUpdate::Refuse => self.is_empty(),
        }
    }
}

impl fmt::Display for UpdateDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (label, items) in [
            ("capabilities added", &self.added),
            ("capabilities removed", &self.removed),
            ("schemas changed", &self.schemas_changed),
            ("new effects", &self.new_effects),
            ("new imports", &self.new_imports),
            ("grants newly used", &self.new_grants),
            ("grants no longer used", &self.dropped_grants),
        ] {
            if !items.is_empty() {
                parts.push(format!("{label}: {}", items.join(", ")));
            }
        }
        if let Some((old, new)) = &self.signer {
            let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "unsigned".into());
            parts.push(format!("signer: {} -> {}", name(old), name(new)));
        }
        if parts.is_empty() {
            f.write_str("nothing declared changed")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

fn sorted(items: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = items.iter().collect();
    set.into_iter().cloned().collect()
}

fn added(old: &[String], new: &[String]) -> Vec<String> {
    new.iter().filter(|n| !old.contains(n)).cloned().collect()
}

/// One line per grant, in a stable order.
pub fn grant_lines(g: &Grants) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    out.extend(g.network.iter().map(|n| format!("network {n}")));
    out.extend(g.env.iter().map(|e| format!("env {e}")));
    for d in &g.dirs {
        let mode = serde_json::to_value(d.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push(format!("dir {} as {} ({mode})", d.host.display(), d.guest));
    }
    for s in &g.secrets {
        out.push(format!("secret {} to {}", s.name, s.hosts.join(" ")));
    }
    sorted(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(caps: &[(&str, &str, &[&str])], grants: &[&str]) -> LockedPlugin {
        LockedPlugin {
            source: "a.wasm".into(),
            digest: "sha256:1".into(),
            grants: grants.iter().map(|g| g.to_string()).collect(),
            capabilities: caps
                .iter()
                .map(|(id, schema, effects)| {
                    let c = LockedCapability {
                        schema: schema.to_string(),
                        effects: effects.iter().map(|e| e.to_string()).collect(),
                        permissions: vec![],
                    };
                    (id.to_string(), c)
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_diff_names_each_change_and_the_policies_read_it() {
        let old = entry(
            &[("a.x", "s1", &[]), ("a.y", "s2", &[])],
            &["network https://a:443"],
        );
        let same = LockedPlugin {
            digest: "sha256:2".into(),
            ..old.clone()
        };
        let d = old.diff(&same);
        assert!(d.is_empty() && d.allowed_by(OnUpdate::Refuse));
        let new = entry(
            &[("a.x", "s1b", &["network"]), ("a.z", "s3", &[])],
            &["network https://a:443", "network https://b:443"],
        );
        let d = old.diff(&new);
        assert_eq!(d.added, ["a.z"]);
        assert_eq!(d.removed, ["a.y"]);
        assert_eq!(d.schemas_changed, ["a.x"]);
        assert_eq!(d.new_effects, ["a.x: network"]);
        assert_eq!(d.new_grants, ["network https://b:443"]);
        let text = d.to_string();
        assert!(
            text.contains("capabilities added: a.z") && text.contains("grants newly used"),
            "{text}"
        );
        assert!(!d.allowed_by(OnUpdate::Refuse) && !d.allowed_by(OnUpdate::AcceptSameGrants));
        assert!(d.allowed_by(OnUpdate::Accept));
        let only_caps = entry(
            &[("a.x", "s1", &[]), ("a.z", "s3", &[])],
            &["network https://a:443"],
        );
        let d = old.diff(&only_caps);
        assert!(d.allowed_by(OnUpdate::AcceptSameGrants) && !d.allowed_by(OnUpdate::Refuse));
    }

    #[test]
    fn a_lockfile_round_trips_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.lock");
        assert_eq!(Lockfile::read(&path).unwrap(), None);
        let mut lock = Lockfile {
            version: LOCK_VERSION,
            ..Default::default()
        };
        lock.plugins.insert(
            "a".into(),
            entry(&[("a.x", "s", &["network"])], &["env HOME"]),
        );
        lock.write(&path).unwrap();
        assert_eq!(Lockfile::read(&path).unwrap(), Some(lock));
        std::fs::write(&path, "version = 1\nextra = 2\n").unwrap();
        let e = Lockfile::read(&path).unwrap_err();
        assert!(e.contains("extra"), "{e}");
    }
}

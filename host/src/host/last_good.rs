//! The last good answer of each discovery source, kept on disk for plugins
//! with `sessions.discovery-refresh-ms` (under the cache root,
//! `discovery/`, one file per plugin digest, configuration and source):
//! written at each answer, read when the source fails as the host loads.
//! What it held is then served, stale since the answer was written, until
//! `discovery-stale-after-ms`, and the source is asked again at each
//! refresh. A file that cannot be read or parsed is ignored (logged); one
//! of another plugin version or configuration is never found.

use crate::bindings::warden::provider::types::CapabilityDescriptor;
use crate::runtime::plugin::LoadedPlugin;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Largest file read back (a source holds at most 1024 capabilities, each
/// under the registry's size caps).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Where the last good answers are kept.
pub(crate) struct LastGood {
    dir: PathBuf,
}

/// One source's answer as it is kept.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kept {
    /// When it was written, in milliseconds since the Unix epoch.
    written_ms: u64,
    plugin: String,
    source: String,
    capabilities: Vec<KeptDescriptor>,
}

/// A `capability-descriptor`, field for field.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KeptDescriptor {
    id: String,
    name: String,
    version: String,
    description: String,
    input_schema: String,
    output_schema: String,
    metadata: String,
    permissions: Vec<String>,
    effects: Vec<String>,
    provider_kind: String,
    provider_meta: String,
}

impl LastGood {
    /// Kept under `root/discovery`.
    pub(crate) fn under(root: &Path) -> LastGood {
        LastGood {
            dir: root.join("discovery"),
        }
    }

    /// The file of `source` of `plugin` (its digest and configuration).
    fn path(&self, plugin: &LoadedPlugin, source: &str) -> PathBuf {
        let mut key = Vec::new();
        for part in [plugin.info.digest.as_str(), plugin.config_json(), source] {
            key.extend_from_slice(&(part.len() as u64).to_le_bytes());
            key.extend_from_slice(part.as_bytes());
        }
        let hash = crate::digest::sha256_hex(&key);
        self.dir
            .join(format!("{}-{}.json", plugin.info.name, &hash[..32]))
    }

    /// Keeps what `source` answered now (its registered capabilities).
    pub(crate) fn write(&self, plugin: &LoadedPlugin, source: &str, caps: &[CapabilityDescriptor]) {
        let kept = Kept {
            written_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            plugin: plugin.info.name.clone(),
            source: source.to_string(),
            capabilities: caps.iter().map(KeptDescriptor::from).collect(),
        };
        let path = self.path(plugin, source);
        if let Err(e) = write_atomically(&path, &kept) {
            tracing::warn!(plugin = %plugin.info.name, source, "the last good answer could not be kept in {}: {e}", path.display());
        }
    }

    /// What `source` last answered, and when, if it was kept.
    pub(crate) fn read(
        &self,
        plugin: &LoadedPlugin,
        source: &str,
    ) -> Option<(SystemTime, Vec<CapabilityDescriptor>)> {
        let path = self.path(plugin, source);
        let kept = match read_kept(&path) {
            Ok(Some(kept)) => kept,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(plugin = %plugin.info.name, source, "the last good answer in {} is not used: {e}", path.display());
                return None;
            }
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(kept.written_ms);
        let caps = kept.capabilities.into_iter().map(Into::into).collect();
        Some((at, caps))
    }
}

fn read_kept(path: &Path) -> std::io::Result<Option<Kept>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other("larger than 64 MiB"));
    }
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// Writes `value` as JSON to `path` through a temporary file renamed into
/// place, so a reader sees the old answer or the new one.
fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir)?;
    let data = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    crate::runtime::cache::write_atomically(dir, path, &data)
}

impl From<&CapabilityDescriptor> for KeptDescriptor {
    fn from(d: &CapabilityDescriptor) -> Self {
        KeptDescriptor {
            id: d.id.clone(),
            name: d.name.clone(),
            version: d.version.clone(),
            description: d.description.clone(),
            input_schema: d.input_schema.clone(),
            output_schema: d.output_schema.clone(),
            metadata: d.metadata.clone(),
            permissions: d.permissions.clone(),
            effects: d.effects.clone(),
            provider_kind: d.provider_kind.clone(),
            provider_meta: d.provider_meta.clone(),
        }
    }
}

impl From<KeptDescriptor> for CapabilityDescriptor {
    fn from(d: KeptDescriptor) -> Self {
        CapabilityDescriptor {
            id: d.id,
            name: d.name,
            version: d.version,
            description: d.description,
            input_schema: d.input_schema,
            output_schema: d.output_schema,
            metadata: d.metadata,
            permissions: d.permissions,
            effects: d.effects,
            provider_kind: d.provider_kind,
            provider_meta: d.provider_meta,
        }
    }
}

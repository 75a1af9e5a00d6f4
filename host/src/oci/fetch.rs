//! Fetching a component: from the content store when its digest is
//! stored, else from its registry (stored on the way) with its cosign
//! signatures; a tag whose registry is down falls back to the digest it
//! last resolved to here.

use super::registry::{bad, Descriptor, Manifest, Registries, MAX_COMPONENT_BYTES};
use super::registry::{OCI_INDEX, WASM_CONFIG, WASM_CONFIG_OLD, WASM_LAYER, WASM_LAYER_OLD};
use super::{ContentStore, OciError, OciRef};

/// A component pulled (or found in the content store).
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference, pinned to the manifest digest it resolved to.
    pub reference: OciRef,
    /// The manifest digest.
    pub digest: String,
    /// The component's bytes (their digest was checked).
    pub bytes: Vec<u8>,
    /// Why the registry was not asked, when the stored digest stood in
    /// for a tag (the registry was down).
    pub offline: Option<String>,
    /// The cosign signatures found for the digest.
    pub signatures: Vec<super::CosignSignature>,
}

impl Registries {
    /// The component `reference` names: from the content store when its
    /// digest is pinned and stored, else from the registry (stored on the
    /// way); a tag whose registry is unreachable falls back to the digest
    /// it last resolved to here, and says so.
    pub async fn fetch(
        &self,
        reference: &OciRef,
        store: &ContentStore,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Pulled, OciError> {
        if let Some(digest) = &reference.digest {
            if let Some(p) = from_store(reference, digest, store) {
                return Ok(Pulled { offline: None, ..p });
            }
        }
        let (raw, digest) = match self.resolve(reference).await {
            Ok(m) => m,
            Err(e) if e.is_unreachable() => return stored_instead(reference, store, e),
            Err(e) => return Err(e),
        };
        let layer = component_layer(reference, &raw)?;
        let bytes = match store.get(&layer.digest) {
            Some(b) => b,
            None => {
                self.blob(reference, &layer, MAX_COMPONENT_BYTES, progress)
                    .await?
            }
        };
        check_component(reference, &bytes)?;
        let keep = |r: std::io::Result<String>| {
            r.map_err(|source| OciError::Store {
                path: store.dir().display().to_string(),
                source,
            })
        };
        keep(store.put(&raw))?;
        keep(store.put(&bytes))?;
        if reference.tag.is_some() && reference.digest.is_none() {
            keep(store.set_tag(reference, &digest).map(|()| digest.clone()))?;
        }
        let signatures = super::cosign::fetch(self, reference, &digest, store).await?;
        Ok(Pulled {
            reference: pinned(reference, &digest),
            digest,
            bytes,
            offline: None,
            signatures,
        })
    }
}

fn pinned(reference: &OciRef, digest: &str) -> OciRef {
    OciRef {
        digest: Some(digest.to_string()),
        ..reference.clone()
    }
}

/// The component at manifest `digest`, if the store holds the manifest,
/// its layer and the signatures last seen.
fn from_store(reference: &OciRef, digest: &str, store: &ContentStore) -> Option<Pulled> {
    let raw = store.get(digest)?;
    let layer = component_layer(reference, &raw).ok()?;
    let bytes = store.get(&layer.digest)?;
    Some(Pulled {
        reference: pinned(reference, digest),
        digest: digest.to_string(),
        bytes,
        offline: None,
        signatures: super::cosign::stored(store, digest),
    })
}

/// With the registry down: the digest this tag last resolved to, if its
/// content is stored; else the error, saying nothing is stored.
fn stored_instead(
    reference: &OciRef,
    store: &ContentStore,
    e: OciError,
) -> Result<Pulled, OciError> {
    let record = reference
        .digest
        .clone()
        .or_else(|| store.tag(reference).map(|t| t.digest));
    let found = record
        .as_deref()
        .and_then(|d| from_store(reference, d, store));
    match found {
        Some(p) => {
            let why = format!("{e}; using the stored digest {}", p.digest);
            Ok(Pulled {
                offline: Some(why),
                ..p
            })
        }
        None => Err(OciError::Unreachable {
            registry: reference.registry.clone(),
            why: format!(
                "{}; and no digest of {reference} is stored here to use instead",
                match e {
                    OciError::Unreachable { why, .. } => why,
                    other => other.to_string(),
                }
            ),
        }),
    }
}

/// The one component layer of a Wasm artifact's manifest; anything else
/// (an image index, a container image, several layers) is refused by name.
pub(super) fn component_layer(reference: &OciRef, raw: &[u8]) -> Result<Descriptor, OciError> {
    let m: Manifest = serde_json::from_slice(raw)
        .map_err(|e| bad(reference, format!("the manifest is not valid JSON: {e}")))?;
    if !m.manifests.is_empty() || m.media_type.as_deref() == Some(OCI_INDEX) {
        return Err(bad(
            reference,
            "an image index, not a Wasm component artifact".into(),
        ));
    }
    let config = m.config.map(|c| c.media_type).unwrap_or_default();
    let wasm: Vec<&Descriptor> = m
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER || l.media_type == WASM_LAYER_OLD)
        .collect();
    let config_ok = config == WASM_CONFIG || config == WASM_CONFIG_OLD;
    match wasm.as_slice() {
        [one] if config_ok && m.layers.len() == 1 => Ok((*one).clone()),
        _ => {
            let layers: Vec<&str> = m.layers.iter().map(|l| l.media_type.as_str()).collect();
            Err(bad(
                reference,
                format!(
                    "not a Wasm component artifact (config `{config}`, layers {layers:?}; expected config `{WASM_CONFIG}` and one `{WASM_LAYER}` layer)"
                ),
            ))
        }
    }
}

fn check_component(reference: &OciRef, bytes: &[u8]) -> Result<(), OciError> {
    if bytes.starts_with(b"\0asm") {
        Ok(())
    } else {
        Err(bad(reference, "its layer is not WebAssembly".into()))
    }
}

//! Signatures in cosign's keyed layout: for manifest `sha256:HEX`, the tag
//! `sha256-HEX.sig` in the same repository holds an image whose layers are
//! simple-signing payloads (JSON naming the signed digest), each carrying
//! its base64 signature in the `dev.cosignproject.cosign/signature`
//! annotation. Verifying them is `provenance`'s.

use super::registry::{bad, descriptor, Descriptor, Registries, MAX_SMALL_BLOB, OCI_MANIFEST};
use super::{ContentStore, OciError, OciRef};
use serde::{Deserialize, Serialize};

/// The media type of a simple-signing payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str =
    "application/vnd.dev.cosignproject.cosign.simplesigning.v1+json";
/// The annotation holding a payload's base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// One signature: the payload signed and the base64 signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignSignature {
    /// The simple-signing payload, as stored.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// The base64 signature over `payload`.
    pub signature: String,
}

mod b64 {
    use base64::Engine as _;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// The tag holding the signatures of manifest `digest`.
pub fn signature_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1) + ".sig"
}

/// The simple-signing payload cosign signs for `reference` at `digest`.
pub fn signature_payload(reference: &OciRef, digest: &str) -> Vec<u8> {
    let payload = serde_json::json!({
        "critical": {
            "identity": { "docker-reference": reference.repository_name() },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).expect("JSON")
}

fn stored_path(digest: &str) -> std::path::PathBuf {
    std::path::Path::new("signatures").join(format!("{}.json", signature_tag(digest)))
}

/// The signatures of `digest` last fetched into `store`.
pub(super) fn stored(store: &ContentStore, digest: &str) -> Vec<CosignSignature> {
    std::fs::read(store.dir().join(stored_path(digest)))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

fn keep(store: &ContentStore, digest: &str, sigs: &[CosignSignature]) -> Result<(), OciError> {
    let json = serde_json::to_vec(sigs).expect("signatures serialize");
    store
        .write_record(&stored_path(digest), &json)
        .map_err(|source| OciError::Store {
            path: store.dir().display().to_string(),
            source,
        })
}

/// The signature image's manifest and layers, if the tag exists.
async fn signature_image(
    registries: &Registries,
    reference: &OciRef,
    digest: &str,
) -> Result<Option<Vec<Descriptor>>, OciError> {
    let tag = reference.at_tag(&signature_tag(digest));
    match registries.resolve(&tag).await {
        Ok((raw, _)) => {
            let m: super::registry::Manifest = serde_json::from_slice(&raw).map_err(|e| {
                bad(
                    &tag,
                    format!("the signature manifest is not valid JSON: {e}"),
                )
            })?;
            Ok(Some(m.layers))
        }
        Err(OciError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fetches the signatures of `digest` (none if its `.sig` tag is absent)
/// and keeps them in `store` for starts with the registry down.
pub(super) async fn fetch(
    registries: &Registries,
    reference: &OciRef,
    digest: &str,
    store: &ContentStore,
) -> Result<Vec<CosignSignature>, OciError> {
    let layers = signature_image(registries, reference, digest)
        .await?
        .unwrap_or_default();
    let mut out = Vec::new();
    let tag = reference.at_tag(&signature_tag(digest));
    for layer in layers.iter().filter(|l| l.media_type == PAYLOAD_MEDIA_TYPE) {
        let Some(signature) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        let payload = registries
            .blob(&tag, layer, MAX_SMALL_BLOB, &|_, _| {})
            .await?;
        out.push(CosignSignature {
            payload,
            signature: signature.clone(),
        });
    }
    keep(store, digest, &out)?;
    Ok(out)
}

/// Adds a signature of `digest` to `reference`'s `.sig` tag (keeping those
/// there); the tag's reference.
pub async fn push_signature(
    registries: &Registries,
    reference: &OciRef,
    digest: &str,
    signature: &CosignSignature,
) -> Result<OciRef, OciError> {
    let tag = reference.at_tag(&signature_tag(digest));
    let mut layers = signature_image(registries, reference, digest)
        .await?
        .unwrap_or_default();
    let mut layer = descriptor(PAYLOAD_MEDIA_TYPE, &signature.payload);
    layer
        .annotations
        .insert(SIGNATURE_ANNOTATION.into(), signature.signature.clone());
    if layers
        .iter()
        .any(|l| l.digest == layer.digest && l.annotations == layer.annotations)
    {
        return Ok(tag);
    }
    registries
        .push_blob(&tag, signature.payload.clone())
        .await?;
    layers.push(layer);
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = serde_json::to_vec(&config).expect("JSON");
    let config_desc = descriptor(CONFIG_MEDIA_TYPE, &config);
    registries.push_blob(&tag, config).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    });
    registries
        .push_manifest(&tag, serde_json::to_vec(&manifest).expect("JSON"))
        .await?;
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_names_the_repository_and_digest_as_cosign_does() {
        let r = OciRef::parse("oci://127.0.0.1:5000/team/text:v1").unwrap();
        let d = format!("sha256:{}", "a".repeat(64));
        let p: serde_json::Value = serde_json::from_slice(&signature_payload(&r, &d)).unwrap();
        assert_eq!(
            p["critical"]["identity"]["docker-reference"],
            "127.0.0.1:5000/team/text"
        );
        assert_eq!(p["critical"]["image"]["docker-manifest-digest"], d.as_str());
        assert_eq!(p["critical"]["type"], "cosign container image signature");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "a".repeat(64)));
    }
}

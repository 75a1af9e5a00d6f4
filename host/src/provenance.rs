//! Who signed a component. A signature is detached, beside the component
//! (`FILE.wasm.sig`), in the form `cosign sign-blob` writes: the base64
//! signature over the file's bytes. Public keys are PEM
//! (SubjectPublicKeyInfo): ECDSA P-256 (SHA-256, ASN.1 DER signatures, as
//! cosign makes them) or Ed25519. The cryptography is `ring`'s.
//!
//! Which keys a plugin's signature is checked against, and whether one is
//! required, is the configuration's: `[plugins.X] verify.keys`, `[host]
//! trusted-keys`, `[host] require-signatures`.

use crate::audit::signing::{pem_block, SPKI_PREFIX as ED25519_SPKI};
use base64::Engine as _;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING, ED25519,
};
use std::path::{Path, PathBuf};

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1);
/// the uncompressed point (65 bytes) follows.
const P256_SPKI: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A public key a component's signature is checked against.
#[derive(Debug, Clone)]
pub struct PublicKey {
    algorithm: Algorithm,
    raw: Vec<u8>,
    id: String,
    /// Where it was read from.
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    P256,
    Ed25519,
}

impl PublicKey {
    /// Reads a PEM public key file.
    pub fn read(path: &Path) -> Result<PublicKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
        Self::from_pem(&text, path)
    }

    /// Parses a PEM public key (`source` names it in messages).
    pub fn from_pem(text: &str, source: &Path) -> Result<PublicKey, String> {
        let der = pem_block(text, "PUBLIC KEY")
            .ok_or_else(|| format!("{}: not a PEM `PUBLIC KEY`", source.display()))?;
        let (algorithm, raw) = if let Some(point) = der.strip_prefix(&P256_SPKI[..]) {
            (Algorithm::P256, point.to_vec())
        } else if let Some(key) = der.strip_prefix(&ED25519_SPKI[..]) {
            (Algorithm::Ed25519, key.to_vec())
        } else {
            return Err(format!(
                "{}: neither an ECDSA P-256 nor an Ed25519 public key",
                source.display()
            ));
        };
        let expected = if algorithm == Algorithm::P256 { 65 } else { 32 };
        if raw.len() != expected {
            return Err(format!("{}: a key of the wrong length", source.display()));
        }
        let id = key_id(algorithm, &raw);
        Ok(PublicKey {
            algorithm,
            raw,
            id,
            source: source.to_path_buf(),
        })
    }

    /// `p256:` or `ed25519:` and 16 hex digits of the key's SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn ring::signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::P256 => &ECDSA_P256_SHA256_ASN1,
            Algorithm::Ed25519 => &ED25519,
        };
        UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

fn key_id(algorithm: Algorithm, raw: &[u8]) -> String {
    let name = match algorithm {
        Algorithm::P256 => "p256",
        Algorithm::Ed25519 => "ed25519",
    };
    format!("{name}:{}", &crate::digest::sha256_hex(raw)[..16])
}

/// The detached signature file of a component: `FILE.sig`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Signs `bytes` with a PKCS#8 PEM private key (P-256 or Ed25519): the
/// base64 text of a `.sig` file, and the key's id.
pub fn sign(private_pem: &str, bytes: &[u8]) -> Result<(String, String), String> {
    let der = pem_block(private_pem, "PRIVATE KEY").ok_or(
        "not a PKCS#8 PEM `PRIVATE KEY` (convert an `EC PRIVATE KEY` with `openssl pkcs8 -topk8 -nocrypt`)",
    )?;
    let rng = ring::rand::SystemRandom::new();
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
        let id = key_id(Algorithm::Ed25519, pair.public_key().as_ref());
        let sig = pair.sign(bytes);
        return Ok((b64(sig.as_ref()), id));
    }
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
        .map_err(|_| "neither an ECDSA P-256 nor an Ed25519 private key".to_string())?;
    let id = key_id(Algorithm::P256, pair.public_key().as_ref());
    let sig = pair
        .sign(&rng, bytes)
        .map_err(|_| "signing failed".to_string())?;
    Ok((b64(sig.as_ref()), id))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What verifying a component found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its signature verifies with this key (its id).
    Signed(String),
    /// No signature beside it, and none was required.
    Unsigned,
}

/// Checks the signature beside `component` (whose bytes are `bytes`)
/// against `keys`. `required`: a component without a verified signature is
/// refused. A signature that is there but verifies with none of the keys
/// is refused either way. The error names the file, the digest, each key
/// tried and why it failed.
pub fn verify(
    component: &Path,
    bytes: &[u8],
    keys: &[PublicKey],
    required: bool,
) -> Result<Verdict, String> {
    let digest = crate::digest::digest(bytes);
    let sig_path = signature_path(component);
    let text = match std::fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if required {
                return Err(format!(
                    "{} ({digest}) is not signed: no {} beside it, and a signature is required",
                    component.display(),
                    sig_path.display()
                ));
            }
            return Ok(Verdict::Unsigned);
        }
        Err(e) => return Err(format!("cannot read {}: {e}", sig_path.display())),
    };
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(text.trim()) else {
        return Err(format!("{} is not a base64 signature", sig_path.display()));
    };
    if keys.is_empty() {
        return Err(format!(
            "{} ({digest}) is signed, but no key is trusted to check it: set `verify.keys` of the plugin or `[host] trusted-keys`",
            component.display()
        ));
    }
    if let Some(key) = keys.iter().find(|k| k.verifies(bytes, &signature)) {
        return Ok(Verdict::Signed(key.id().to_string()));
    }
    let tried: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "{} ({}): the signature is not this key's over these bytes",
                k.id(),
                k.source.display()
            )
        })
        .collect();
    Err(format!(
        "{} ({digest}): {} verifies with no trusted key; tried {}",
        component.display(),
        sig_path.display(),
        tried.join("; ")
    ))
}

/// Checks the cosign signatures found for `subject` (an `oci://`
/// reference) at manifest `digest` against `keys`. `required`: without a
/// signature that verifies, it is refused. Signatures that are there but
/// verify with no key are refused either way; the error names the digest,
/// each signature and key tried, and why each failed.
pub fn verify_cosign(
    subject: &str,
    digest: &str,
    signatures: &[crate::oci::CosignSignature],
    keys: &[PublicKey],
    required: bool,
) -> Result<Verdict, String> {
    let tag = crate::oci::signature_tag(digest);
    if signatures.is_empty() {
        if required {
            return Err(format!(
                "{subject} ({digest}) is not signed: no signature at tag `{tag}`, and a signature is required"
            ));
        }
        return Ok(Verdict::Unsigned);
    }
    if keys.is_empty() {
        return Err(format!(
            "{subject} ({digest}) is signed, but no key is trusted to check it: set `verify.keys` of the plugin or `[host] trusted-keys`"
        ));
    }
    let mut why = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        match check_payload(&s.payload, digest) {
            Err(e) => why.push(format!("signature {}: {e}", i + 1)),
            Ok(()) => {
                let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(s.signature.trim())
                else {
                    why.push(format!("signature {}: not base64", i + 1));
                    continue;
                };
                if let Some(key) = keys.iter().find(|k| k.verifies(&s.payload, &sig)) {
                    return Ok(Verdict::Signed(key.id().to_string()));
                }
                for k in keys {
                    why.push(format!(
                        "signature {} with {} ({}): not this key's over the payload",
                        i + 1,
                        k.id(),
                        k.source.display()
                    ));
                }
            }
        }
    }
    Err(format!(
        "{subject} ({digest}): no signature at `{tag}` verifies with a trusted key; {}",
        why.join("; ")
    ))
}

/// A simple-signing payload must name `digest` as the signed image.
fn check_payload(payload: &[u8], digest: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| "its payload is not JSON".to_string())?;
    let critical = &v["critical"];
    if critical["type"] != "cosign container image signature" {
        return Err("its payload is not a cosign image signature".into());
    }
    match critical["image"]["docker-manifest-digest"].as_str() {
        Some(d) if d == digest => Ok(()),
        Some(d) => Err(format!("it signs another digest, {d}")),
        None => Err("its payload names no digest".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_signature_made_here_verifies_and_a_changed_byte_does_not() {
        let (private, public) = crate::audit::signing::SigningKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.wasm");
        let bytes = b"\0asm component".to_vec();
        std::fs::write(&file, &bytes).unwrap();
        let (sig, id) = sign(&private, &bytes).unwrap();
        std::fs::write(signature_path(&file), sig).unwrap();
        let key = PublicKey::from_pem(&public, Path::new("k.pub")).unwrap();
        assert_eq!(key.id(), id);
        let keys = [key];
        assert_eq!(verify(&file, &bytes, &keys, true), Ok(Verdict::Signed(id)));
        let mut other = bytes.clone();
        other[1] ^= 1;
        let e = verify(&file, &other, &keys, false).unwrap_err();
        assert!(
            e.contains("verifies with no trusted key") && e.contains("k.pub"),
            "{e}"
        );
        assert!(e.contains(&crate::digest::digest(&other)), "{e}");
        std::fs::remove_file(signature_path(&file)).unwrap();
        assert_eq!(verify(&file, &bytes, &keys, false), Ok(Verdict::Unsigned));
        assert!(verify(&file, &bytes, &keys, true)
            .unwrap_err()
            .contains("not signed"));
    }

    #[test]
    fn what_is_not_a_usable_key_is_named() {
        for text in [
            "",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            let e = PublicKey::from_pem(text, Path::new("bad.pub")).unwrap_err();
            assert!(e.contains("bad.pub"), "{e}");
        }
        assert!(sign("not a key", b"x").is_err());
    }
}

//! The host's signing key: Ed25519 (through `ring`), in the PEM forms
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write
//! (PKCS#8 and SubjectPublicKeyInfo). It signs the audit log's checkpoints
//! (the chain head, so that a rewritten chain shows) and, in `warden serve`,
//! result attestations.

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the
/// algorithm `1.3.101.112` and a 32-byte bit string follow.
pub(crate) const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not PEM of the expected label.
    #[error("not a PEM `{0}` block")]
    NotPem(&'static str),
    /// PEM, but not an Ed25519 key.
    #[error("not an Ed25519 {0} (RFC 8410): only Ed25519 keys sign audit checkpoints")]
    NotEd25519(&'static str),
}

/// A private key that signs.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    /// From PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        let der = pem_block(text, "PRIVATE KEY").ok_or(KeyError::NotPem("PRIVATE KEY"))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|_| KeyError::NotEd25519("private key"))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(SigningKey { pair, id })
    }

    /// A new key: its PKCS#8 PEM (to keep secret) and its public PEM.
    pub fn generate() -> (String, String) {
        let rng = ring::rand::SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's random source works");
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).expect("a key just made");
        let private = pem("PRIVATE KEY", der.as_ref());
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        (private, pem("PUBLIC KEY", &spki))
    }

    /// `ed25519:` and the first 16 hex digits of the public key's SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature of `message`, in base64.
    pub fn sign(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.pair.sign(message).as_ref())
    }
}

/// A public key that checks signatures.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    raw: [u8; 32],
    id: String,
}

impl VerifyingKey {
    /// From SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(text: &str) -> Result<VerifyingKey, KeyError> {
        let der = pem_block(text, "PUBLIC KEY").ok_or(KeyError::NotPem("PUBLIC KEY"))?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(KeyError::NotEd25519("public key"))?;
        Ok(VerifyingKey {
            id: key_id(&raw),
            raw,
        })
    }

    /// See [`SigningKey::id`].
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `signature` (base64) is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, &sig)
            .is_ok()
    }
}

fn key_id(public: &[u8]) -> String {
    format!("ed25519:{}", &crate::digest::sha256_hex(public)[..16])
}

/// The DER inside the first PEM block labelled `label`.
pub(crate) fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What a checkpoint signs: the chain head it follows (its `seq` and hash)
/// and why it was written.
pub fn checkpoint_message(head_seq: u64, head_hash: &str, why: &str) -> Vec<u8> {
    format!("warden-audit-checkpoint/v1\n{head_seq}\n{head_hash}\n{why}\n").into_bytes()
}

/// The digest of a JSON value as attestations name it: `sha256:` and the
/// SHA-256 of its compact text with every object's keys sorted, so that any
/// JSON library's re-encoding of the same value gives the same digest.
pub fn json_digest(value: &serde_json::Value) -> String {
    let mut text = String::new();
    canonical_json(value, &mut text);
    format!("sha256:{}", crate::digest::sha256_hex(text.as_bytes()))
}

/// Appends `value` to `out` as compact JSON with every object's keys
/// sorted: equal values give equal bytes, whatever order they came in.
pub fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The fields of a result attestation, in the order its signature covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attestation {
    /// The call's id, as in its audit records.
    pub call_id: String,
    /// The capability called.
    pub capability: String,
    /// [`json_digest`] of the call's input.
    pub input: String,
    /// [`json_digest`] of the call's output (a tool result's
    /// `structuredContent`).
    pub output: String,
    /// When it was signed (RFC 3339).
    pub time: String,
    /// The signing key's id.
    pub key: String,
    /// The Ed25519 signature over [`Attestation::message`], base64.
    pub signature: String,
}

impl Attestation {
    /// What the signature covers.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "warden-result/v1\n{}\n{}\n{}\n{}\n{}\n",
            self.call_id, self.capability, self.input, self.output, self.time
        )
        .into_bytes()
    }

    /// Signs a call's input and output with `key`.
    pub fn sign(
        key: &SigningKey,
        call_id: &str,
        capability: &str,
        input: &serde_json::Value,
        output: &serde_json::Value,
    ) -> Attestation {
        let mut a = Attestation {
            call_id: call_id.to_string(),
            capability: capability.to_string(),
            input: json_digest(input),
            output: json_digest(output),
            time: warden_manifest::time::rfc3339(std::time::SystemTime::now(), true),
            key: key.id().to_string(),
            signature: String::new(),
        };
        a.signature = key.sign(&a.message());
        a
    }

    /// Why it does not hold for `output` (and `input`, when given) under
    /// `key`, if it does not.
    pub fn fault(
        &self,
        key: &VerifyingKey,
        output: &serde_json::Value,
        input: Option<&serde_json::Value>,
    ) -> Option<String> {
        if self.key != key.id() {
            return Some(format!("signed by key {}, not {}", self.key, key.id()));
        }
        if !key.verifies(&self.message(), &self.signature) {
            return Some("its signature does not verify".into());
        }
        if json_digest(output) != self.output {
            return Some("the output is not the one signed".into());
        }
        if input.is_some_and(|i| json_digest(i) != self.input) {
            return Some("the input is not the one signed".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_and_its_public_key_verifies() {
        let (private, public) = SigningKey::generate();
        let key = SigningKey::from_pem(&private).unwrap();
        let public = VerifyingKey::from_pem(&public).unwrap();
        assert_eq!(key.id(), public.id());
        let sig = key.sign(b"head");
        assert!(public.verifies(b"head", &sig));
        assert!(!public.verifies(b"heae", &sig));
        assert!(!public.verifies(b"head", "not base64!"));
        let (_, other) = SigningKey::generate();
        assert!(!VerifyingKey::from_pem(&other)
            .unwrap()
            .verifies(b"head", &sig));
    }

    #[test]
    fn an_attestation_holds_for_its_output_only() {
        let (private, public) = SigningKey::generate();
        let key = SigningKey::from_pem(&private).unwrap();
        let public = VerifyingKey::from_pem(&public).unwrap();
        let input = serde_json::json!({"b": 1, "a": [1, {"y": 2, "x": "é"}]});
        let output = serde_json::json!({"text": "HELLO"});
        let a = Attestation::sign(&key, "c-1", "text.case", &input, &output);
        assert_eq!(a.fault(&public, &output, Some(&input)), None);
        // The same value in another key order is the same value.
        let reordered: serde_json::Value =
            serde_json::from_str(r#"{"a": [1, {"x": "é", "y": 2}], "b": 1}"#).unwrap();
        assert_eq!(a.fault(&public, &output, Some(&reordered)), None);
        for changed in ["HELLo", "HELLO ", ""] {
            let other = serde_json::json!({ "text": changed });
            assert!(a.fault(&public, &other, None).is_some(), "{changed:?}");
        }
        let mut forged = a.clone();
        forged.capability = "text.hash".into();
        assert!(forged.fault(&public, &output, None).is_some());
    }

    #[test]
    fn what_is_not_an_ed25519_key_is_named() {
        assert!(matches!(
            SigningKey::from_pem("hello"),
            Err(KeyError::NotPem(_))
        ));
        let p256_spki = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            VerifyingKey::from_pem(p256_spki),
            Err(KeyError::NotEd25519(_))
        ));
    }
}

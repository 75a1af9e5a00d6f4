//! A verify-only `jsonwebtoken` crypto backend on `ring` (the host's one
//! crypto library): RS256, ES256 and EdDSA, each only with a key of its
//! own family; nothing signs, nothing is HMAC.

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::{signature, Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature as rs;

struct Verifier(Algorithm, DecodingKey);

impl signature::Verifier<Vec<u8>> for Verifier {
    fn verify(&self, message: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let checked = match (self.0, self.1.kind()) {
            (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                let n = strip_leading_zeros(n);
                rs::RsaPublicKeyComponents { n, e: e.as_slice() }.verify(
                    &rs::RSA_PKCS1_2048_8192_SHA256,
                    message,
                    sig,
                )
            }
            (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
                rs::UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, point).verify(message, sig)
            }
            (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(key)) => {
                rs::UnparsedPublicKey::new(&rs::ED25519, key).verify(message, sig)
            }
            _ => Err(ring::error::Unspecified),
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Verifier {
    fn algorithm(&self) -> Algorithm {
        self.0
    }
}

fn strip_leading_zeros(n: &[u8]) -> &[u8] {
    let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    &n[first..]
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match (alg, key.family()) {
        (Algorithm::RS256, AlgorithmFamily::Rsa)
        | (Algorithm::ES256, AlgorithmFamily::Ec)
        | (Algorithm::EdDSA, AlgorithmFamily::Ed) => Ok(Box::new(Verifier(*alg, key.clone()))),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

static RING: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs the backend for this process (once; `jsonwebtoken` keeps one
/// per process). Fails if another backend was installed first, since
/// that one's algorithms are not ours.
pub(crate) fn install() -> Result<()> {
    match RING.install_default() {
        Ok(()) => Ok(()),
        Err(_) if std::ptr::eq(CryptoProvider::try_get_default().unwrap_or(&RING), &RING) => Ok(()),
        Err(_) => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

//! SHA-256 digests: a component's `sha256:<hex>` identity and the audit
//! log's record hashes.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let hex = sha256_hex_bytes(bytes);
    // Only ASCII hex digits.
    String::from_utf8(hex.to_vec()).expect("hex is ASCII")
}

/// [`sha256_hex`] as bytes, without an allocation.
pub(crate) fn sha256_hex_bytes(bytes: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in Sha256::digest(bytes).into_iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

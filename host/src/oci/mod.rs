//! Components in OCI registries, in the CNCF Wasm artifact layout (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer):
//! pulled into a content store under the cache directory and verified by
//! digest, pushed by `warden push`, and signed in cosign's keyed layout
//! (a `sha256-<digest>.sig` tag). The wire is `oci-client`'s.

mod cosign;
mod fetch;
pub(crate) mod reference;
mod registry;
pub(crate) mod store;

pub use cosign::{push_signature, signature_payload, signature_tag, CosignSignature};
pub use fetch::Pulled;
pub use reference::{OciRef, SCHEME};
pub use registry::{Registries, MAX_COMPONENT_BYTES};
pub use store::{ContentStore, TagRecord};

/// What went wrong with a registry or a pulled artifact. Each message names
/// the reference or registry it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// Not a usable reference or registry setting.
    #[error("{0}")]
    Invalid(String),
    /// The registry could not be reached or failed (5xx, timeout).
    #[error("registry {registry} is unreachable: {why}")]
    Unreachable {
        /// `HOST[:PORT]`.
        registry: String,
        /// What failed.
        why: String,
    },
    /// The registry refused the credentials (or asked for some).
    #[error("registry {registry} refused access to {reference}: {why}")]
    Unauthorized {
        /// `HOST[:PORT]`.
        registry: String,
        /// What was asked for.
        reference: String,
        /// What it answered.
        why: String,
    },
    /// No such tag, digest or repository.
    #[error("{reference} was not found in registry {registry}")]
    NotFound {
        /// `HOST[:PORT]`.
        registry: String,
        /// What was asked for.
        reference: String,
    },
    /// The artifact is not a Wasm component, or not what its digest says.
    #[error("{reference}: {why}")]
    BadArtifact {
        /// What was pulled.
        reference: String,
        /// Why it is refused.
        why: String,
    },
    /// Any other answer of the registry.
    #[error("registry {registry}: {why}")]
    Registry {
        /// `HOST[:PORT]`.
        registry: String,
        /// What it answered.
        why: String,
    },
    /// The content store could not be written.
    #[error("content store {path}: {source}")]
    Store {
        /// The store's directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl OciError {
    /// Whether the registry could not answer at all (a stored digest may
    /// stand in).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, OciError::Unreachable { .. })
    }
}

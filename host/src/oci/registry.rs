//! Talking to registries: one `oci-client` per registry, built from the
//! configuration (`[host] insecure-registries`, `[host.registries.HOST]`
//! certificate authorities and credentials, else Docker's `config.json`),
//! pulling a component's manifest and layer, and pushing one.

use super::{OciError, OciRef};
use crate::config::Config;
use base64::Engine as _;
use futures::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{errors::OciDistributionError, RegistryOperation};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest component layer pulled (a larger one is refused before its
/// first byte): 256 MiB.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;
/// The largest manifest, config or signature payload read.
pub(super) const MAX_SMALL_BLOB: u64 = 4 << 20;

/// The CNCF Wasm artifact's config media type, and the earlier
/// `wasm-to-oci` one, still read.
pub(super) const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub(super) const WASM_CONFIG_OLD: &str = "application/vnd.wasm.config.v1+json";
/// The component layer's media type, and the earlier `wasm-to-oci` one.
pub(super) const WASM_LAYER: &str = "application/wasm";
pub(super) const WASM_LAYER_OLD: &str = "application/vnd.wasm.content.layer.v1+wasm";
pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How to reach each registry: built once from the configuration. One
/// client per registry is kept (its connections and tokens reused), and a
/// repository is logged in to once per operation.
#[derive(Clone, Default)]
pub struct Registries {
    insecure: Vec<String>,
    access: BTreeMap<String, Access>,
    docker: BTreeMap<String, (String, String)>,
    sessions: Arc<Mutex<Sessions>>,
}

#[derive(Default)]
struct Sessions {
    clients: BTreeMap<String, oci_client::Client>,
    /// (registry, repository, push) already logged in.
    logged_in: BTreeSet<(String, String, bool)>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("insecure", &self.insecure)
            .field("registries", &self.access.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default)]
struct Access {
    ca: Vec<Vec<u8>>,
    auth: Option<(String, String)>,
}

/// A manifest (image manifest or index: only what is read here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Manifest {
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<serde_json::Value>,
}

/// A content descriptor.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Registries {
    /// The registry settings of `config`: credentials from `[host.registries]`
    /// (password from `[secrets]`), else from Docker's `config.json`
    /// (`$DOCKER_CONFIG` or `~/.docker`).
    pub fn from_config(config: &Config) -> Result<Registries, OciError> {
        let mut access = BTreeMap::new();
        for (registry, r) in &config.host.registries {
            let mut a = Access::default();
            if let Some(ca) = &r.ca {
                let path = config.resolve_path(ca);
                let pem = std::fs::read(&path).map_err(|e| {
                    OciError::Invalid(format!(
                        "at `host.registries.\"{registry}\".ca`: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                a.ca.push(pem);
            }
            if let Some(user) = &r.username {
                let secret = r.password_secret.as_deref().unwrap_or_default();
                let password = config.secret_value(secret).map_err(|e| {
                    OciError::Invalid(format!(
                        "at `host.registries.\"{registry}\".password-secret`: {e}"
                    ))
                })?;
                a.auth = Some((user.clone(), password));
            }
            access.insert(registry.clone(), a);
        }
        Ok(Registries {
            insecure: config.host.insecure_registries.clone(),
            access,
            docker: docker_credentials(),
            sessions: Arc::default(),
        })
    }

    fn auth(&self, registry: &str) -> RegistryAuth {
        let own = self.access.get(registry).and_then(|a| a.auth.clone());
        match own.or_else(|| self.docker.get(registry).cloned()) {
            Some((user, password)) => RegistryAuth::Basic(user, password),
            None => RegistryAuth::Anonymous,
        }
    }

    fn client(&self, registry: &str) -> oci_client::Client {
        crate::install_tls_provider();
        let ca = self
            .access
            .get(registry)
            .map(|a| a.ca.clone())
            .unwrap_or_default();
        oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.insecure.clone()),
            extra_root_certificates: ca
                .into_iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                })
                .collect(),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            platform_resolver: None,
            user_agent: concat!("warden/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        })
    }

    /// A client for `reference`'s registry, logged in for `op` (HTTP basic
    /// or the registry's token service, as its challenge asks).
    async fn session(
        &self,
        reference: &OciRef,
        op: RegistryOperation,
    ) -> Result<(oci_client::Client, oci_client::Reference, RegistryAuth), OciError> {
        let key = (
            reference.registry.clone(),
            reference.repository.clone(),
            op == RegistryOperation::Push,
        );
        let (client, fresh) = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let client = sessions
                .clients
                .entry(reference.registry.clone())
                .or_insert_with(|| self.client(&reference.registry))
                .clone();
            (client, !sessions.logged_in.contains(&key))
        };
        let auth = self.auth(&reference.registry);
        let r = reference.to_client();
        if fresh {
            client
                .auth(&r, &auth, op)
                .await
                .map_err(|e| classify(e, reference))?;
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.logged_in.insert(key);
        }
        Ok((client, r, auth))
    }

    /// Resolves `reference` to its manifest: the raw bytes (whose digest was
    /// checked against a pinned one) and their digest.
    pub async fn resolve(&self, reference: &OciRef) -> Result<(Vec<u8>, String), OciError> {
        let (client, r, auth) = self.session(reference, RegistryOperation::Pull).await?;
        let (raw, _) = client
            .pull_manifest_raw(&r, &auth, &[OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX])
            .await
            .map_err(|e| classify(e, reference))?;
        let digest = crate::digest::digest(&raw);
        if let Some(pinned) = &reference.digest {
            if *pinned != digest {
                return Err(bad(
                    reference,
                    format!("the registry sent a manifest with digest {digest}"),
                ));
            }
        }
        Ok((raw.to_vec(), digest))
    }

    /// Pulls the blob `d` of `reference`'s repository, at most `max`
    /// bytes, checking its digest; `progress` hears (received, total).
    pub(super) async fn blob(
        &self,
        reference: &OciRef,
        d: &Descriptor,
        max: u64,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Vec<u8>, OciError> {
        if d.size > max {
            return Err(bad(
                reference,
                format!(
                    "blob {} is {} bytes, over the {max} allowed",
                    d.digest, d.size
                ),
            ));
        }
        super::reference::check_digest(&d.digest).map_err(|w| bad(reference, w))?;
        let (client, r, _) = self.session(reference, RegistryOperation::Pull).await?;
        let mut stream = client
            .pull_blob_stream(&r, d.digest.as_str())
            .await
            .map_err(|e| classify(e, reference))?;
        let mut bytes = Vec::with_capacity(usize::try_from(d.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| OciError::Unreachable {
                registry: reference.registry.clone(),
                why: format!("reading blob {}: {e}", d.digest),
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > d.size {
                return Err(bad(
                    reference,
                    format!("blob {} is longer than its {} bytes", d.digest, d.size),
                ));
            }
            progress(bytes.len() as u64, d.size);
        }
        if crate::digest::digest(&bytes) != d.digest {
            return Err(bad(
                reference,
                format!("blob {} does not match its digest", d.digest),
            ));
        }
        Ok(bytes)
    }

    /// Pushes `blob` to `reference`'s repository (unless it is there).
    pub(super) async fn push_blob(
        &self,
        reference: &OciRef,
        blob: Vec<u8>,
    ) -> Result<String, OciError> {
        let (client, r, _) = self.session(reference, RegistryOperation::Push).await?;
        let digest = crate::digest::digest(&blob);
        if client.blob_exists(&r, &digest).await.unwrap_or(false) {
            return Ok(digest);
        }
        client
            .push_blob(&r, blob, &digest)
            .await
            .map_err(|e| classify(e, reference))?;
        Ok(digest)
    }

    /// Pushes a manifest under `reference`'s tag (or digest); its digest.
    pub(super) async fn push_manifest(
        &self,
        reference: &OciRef,
        manifest: Vec<u8>,
    ) -> Result<String, OciError> {
        let (client, r, _) = self.session(reference, RegistryOperation::Push).await?;
        let digest = crate::digest::digest(&manifest);
        client
            .push_manifest_raw(&r, manifest, http::HeaderValue::from_static(OCI_MANIFEST))
            .await
            .map_err(|e| classify(e, reference))?;
        Ok(digest)
    }

    /// Pushes `component` as a CNCF Wasm artifact under `reference`; the
    /// manifest digest.
    pub async fn push(&self, reference: &OciRef, component: &[u8]) -> Result<String, OciError> {
        if !component.starts_with(b"\0asm") {
            return Err(bad(reference, "not a WebAssembly file".into()));
        }
        let layer_digest = crate::digest::digest(component);
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer_digest],
        });
        let config = serde_json::to_vec(&config).expect("JSON");
        let config_desc = descriptor(WASM_CONFIG, &config);
        let layer_desc = descriptor(WASM_LAYER, component);
        self.push_blob(reference, config).await?;
        self.push_blob(reference, component.to_vec()).await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": WASM_CONFIG,
            "config": config_desc,
            "layers": [layer_desc],
        });
        self.push_manifest(reference, serde_json::to_vec(&manifest).expect("JSON"))
            .await
    }
}

pub(super) fn descriptor(media_type: &str, blob: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: crate::digest::digest(blob),
        size: blob.len() as u64,
        annotations: BTreeMap::new(),
    }
}

pub(super) fn bad(reference: &OciRef, why: String) -> OciError {
    OciError::BadArtifact {
        reference: reference.to_string(),
        why,
    }
}

/// Sorts `oci-client`'s errors into what an operator acts on.
pub(super) fn classify(e: OciDistributionError, reference: &OciRef) -> OciError {
    use oci_client::errors::OciErrorCode as C;
    let registry = reference.registry.clone();
    let named = reference.to_string();
    match e {
        OciDistributionError::RequestError(e)
            if e.is_connect() || e.is_timeout() || e.is_request() =>
        {
            OciError::Unreachable {
                registry,
                why: error_chain(&e),
            }
        }
        OciDistributionError::ServerError { code, message, .. } if code >= 500 => {
            OciError::Unreachable {
                registry,
                why: format!("HTTP {code}: {message}"),
            }
        }
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound {
            registry,
            reference: named,
        },
        OciDistributionError::ServerError {
            code: 401 | 403,
            message,
            ..
        } => OciError::Unauthorized {
            registry,
            reference: named,
            why: message,
        },
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => OciError::Unauthorized {
            registry,
            reference: named,
            why: e.to_string(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&C> = envelope.errors.iter().map(|e| &e.code).collect();
            let why = envelope.to_string();
            if codes
                .iter()
                .any(|c| matches!(c, C::Unauthorized | C::Denied))
            {
                OciError::Unauthorized {
                    registry,
                    reference: named,
                    why,
                }
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    C::ManifestUnknown | C::NameUnknown | C::NotFound | C::BlobUnknown
                )
            }) {
                OciError::NotFound {
                    registry,
                    reference: named,
                }
            } else {
                OciError::Registry { registry, why }
            }
        }
        other => OciError::Registry {
            registry,
            why: other.to_string(),
        },
    }
}

/// An error and its causes, joined: reqwest's own message names only the URL.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Registry credentials from Docker's `config.json` (`auths` entries with
/// `auth` or `username`/`password`); credential helpers are not run.
fn docker_credentials() -> BTreeMap<String, (String, String)> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")));
    let Some(text) = dir.and_then(|d| std::fs::read(d.join("config.json")).ok()) else {
        return BTreeMap::new();
    };
    #[derive(Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DockerConfig {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
        creds_store: Option<String>,
        #[serde(default)]
        cred_helpers: BTreeMap<String, String>,
    }
    let Ok(config) = serde_json::from_slice::<DockerConfig>(&text) else {
        tracing::warn!("Docker's config.json is not valid JSON; its credentials are not used");
        return BTreeMap::new();
    };
    if config.creds_store.is_some() || !config.cred_helpers.is_empty() {
        tracing::warn!(
            "Docker's config.json names credential helpers, which are not run: for those registries, set [host.registries.\"HOST\"] username and password-secret"
        );
    }
    let mut out = BTreeMap::new();
    for (key, entry) in config.auths {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let pair = match (entry.auth, entry.username, entry.password) {
            (Some(a), _, _) => base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                }),
            (None, Some(u), Some(p)) => Some((u, p)),
            _ => None,
        };
        if let Some(pair) = pair {
            out.insert(host, pair);
        }
    }
    out
}

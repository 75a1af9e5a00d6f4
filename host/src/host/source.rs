//! Where a plugin's component comes from and who signed it: a local file
//! (with a detached `FILE.sig`) or an OCI reference (pulled through the
//! content store, with cosign signatures from its `.sig` tag).

use super::*;
use crate::config::PluginConfig;
use crate::oci::{CosignSignature, Registries};

/// A component's bytes and what vouches for them.
pub(super) struct ComponentSource {
    /// The file, or the `oci://` reference pinned to its digest: how the
    /// component is named in messages, `inspect` and the audit log.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    evidence: Evidence,
}

enum Evidence {
    /// A detached signature beside this file, if any.
    Detached,
    /// The cosign signatures of this manifest digest.
    Cosign {
        digest: String,
        signatures: Vec<CosignSignature>,
    },
}

/// The component of plugin `name`: read from its file, or pulled (or found
/// in the content store) when `component` is an `oci://` reference.
pub(super) async fn component_source(
    config: &Config,
    name: &str,
    pc: &PluginConfig,
) -> Result<ComponentSource> {
    let Some(reference) = Config::oci_component(pc) else {
        let (path, bytes) = read_component(config, name, pc)?;
        return Ok(ComponentSource {
            path,
            bytes,
            evidence: Evidence::Detached,
        });
    };
    let reference = reference.map_err(|e| Error::load(name, e))?;
    let registries =
        Registries::from_config(config).map_err(|e| Error::load(name, e.to_string()))?;
    let store = config.content_store()?;
    let plugin = name.to_string();
    let progress = move |done: u64, total: u64| log_progress(&plugin, done, total);
    let pulled = registries
        .fetch(&reference, &store, &progress)
        .await
        .map_err(|e| Error::load(name, e.to_string()))?;
    if let Some(why) = &pulled.offline {
        tracing::warn!(target: "warden::pull", plugin = %name, "{why}");
    }
    Ok(ComponentSource {
        path: PathBuf::from(pulled.reference.to_string()),
        bytes: pulled.bytes,
        evidence: Evidence::Cosign {
            digest: pulled.digest,
            signatures: pulled.signatures,
        },
    })
}

/// How plugin `pc`'s component is named before it is loaded: its file, or
/// its reference as written.
pub(super) fn component_label(config: &Config, pc: &PluginConfig) -> String {
    match Config::oci_component(pc) {
        Some(_) => pc.component.display().to_string(),
        None => config.resolve_path(&pc.component).display().to_string(),
    }
}

/// A pull of more than 8 MiB is logged at each quarter.
fn log_progress(plugin: &str, done: u64, total: u64) {
    const LARGE: u64 = 8 << 20;
    if total < LARGE {
        return;
    }
    let quarter = total / 4;
    let before = done.saturating_sub(1) / quarter.max(1);
    if done == 1 || done / quarter.max(1) != before {
        tracing::info!(
            target: "warden::pull",
            plugin = %plugin,
            "pulling component: {} of {} MiB",
            done >> 20,
            total >> 20
        );
    }
}

/// The component file of plugin `name`: its path and bytes.
fn read_component(config: &Config, name: &str, pc: &PluginConfig) -> Result<(PathBuf, Vec<u8>)> {
    let path = config.resolve_path(&pc.component);
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::load(
            name,
            format!("cannot read component {}: {e}", path.display()),
        )
    })?;
    if !bytes.starts_with(b"\0asm") {
        return Err(Error::load(
            name,
            format!("{} is not a WebAssembly file", path.display()),
        ));
    }
    Ok((path, bytes))
}

/// Checks the component's signature against plugin `name`'s `verify.keys`
/// and `[host] trusted-keys`; a verified one is audited with its signer's
/// key id. Refused (and audited, as a refused load): a signature that
/// verifies with no key, and (with `verify` or `[host]
/// require-signatures`) no signature.
pub(super) fn check_signature(
    config: &Config,
    governance: &Governance,
    name: &str,
    pc: &PluginConfig,
    source: &ComponentSource,
) -> Result<Option<String>> {
    let own = pc.verify.iter().flat_map(|v| v.keys.iter());
    let keys = own
        .chain(config.host.trusted_keys.iter())
        .map(|k| crate::provenance::PublicKey::read(&config.resolve_path(k)))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|e| Error::load(name, e))?;
    let required = config.host.require_signatures || pc.verify.is_some();
    let verdict = match &source.evidence {
        Evidence::Detached => {
            crate::provenance::verify(&source.path, &source.bytes, &keys, required)
        }
        Evidence::Cosign { digest, signatures } => crate::provenance::verify_cosign(
            &source.path.display().to_string(),
            digest,
            signatures,
            &keys,
            required,
        ),
    };
    match verdict {
        Ok(crate::provenance::Verdict::Signed(key)) => {
            tracing::info!(plugin = %name, %key, "component signature verified");
            governance.record(crate::audit::Entry {
                plugin: name.to_string(),
                digest: crate::digest::digest(&source.bytes),
                effect: crate::audit::Effect::Load,
                target: source.path.display().to_string(),
                decision: crate::audit::Outcome::Allow,
                reason: format!("signed by {key}"),
                ..Default::default()
            })?;
            Ok(Some(key))
        }
        Ok(crate::provenance::Verdict::Unsigned) => Ok(None),
        Err(why) => Err(Error::load(name, why)),
    }
}

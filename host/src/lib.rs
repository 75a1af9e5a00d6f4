//! # Warden
//!
//! A host for capability providers compiled to WebAssembly components. Each
//! plugin runs under fuel, memory and wall-clock limits, in a WASI context
//! built from its grants alone (deny by default), and its capabilities are
//! registered by id in one registry.
//!
//! Embed it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden::Error> {
//! use warden::{Config, Host, PluginConfig};
//! let config = Config::new(".").with_plugin("text", PluginConfig::new("target/components/text.wasm"));
//! let host = Host::new(config).await?;
//! let out = host.call("text.stats", serde_json::json!({"text": "two words"})).await?;
//! assert_eq!(out["words"], 2);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod audit;
mod bindings;
pub mod cluster;
pub mod config;
mod digest;
mod egress;
mod error;
mod governance;
mod host;
mod limits;
pub mod lock;
pub mod oauth_form;

/// Installs `ring` as rustls' process-wide crypto provider, unless the
/// embedding program installed one first (then theirs is used): the
/// `reqwest` clients that reach registries and authorization servers take
/// it from there.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub mod oci;
mod progress;
pub mod provenance;
mod registry;
mod runtime;
mod sandbox;
pub mod telemetry;
mod tls;

pub use governance::effect_policy;
pub use warden_manifest::{route, rtfs, schema, time};

/// Marketplace snapshots and the capability manifest (from
/// [`warden_manifest::manifest`] and [`warden_manifest::snapshot`]).
pub mod marketplace {
    pub use warden_manifest::manifest::*;
    pub use warden_manifest::snapshot::*;
}

pub use config::{
    AuditSettings, CallRule, CallRules, Config, DirGrant, DirMode, Grants, InstanceMode, Limits,
    PluginConfig, PluginRules, RegistrySettings, ResolvedLimits, RuleDecision, SecretGrant,
    SessionSettings, VerifySettings,
};
pub use digest::digest;
pub use error::{Error, ErrorKind, Limit, Result};
pub use governance::rules::Identity;
pub use governance::{Approval, ApprovalRequest, Approver};
pub use host::{CallContext, CallPlan, Health, Host};
pub use host::{ExportReport, ImportReport, SHUTDOWN_BUDGET};
pub use marketplace::{Manifest, ProviderKind};
pub use progress::{Progress, ProgressSink, MAX_MESSAGE_BYTES, REPORTS_PER_SECOND};
pub use registry::{
    check_id, CapabilityInfo, Namespaces, MAX_CAPABILITIES_PER_PLUGIN, MAX_CAPABILITIES_PER_SOURCE,
    MAX_ID_BYTES, MAX_SOURCES_PER_PLUGIN,
};
pub use route::{Hints, Route};
pub use runtime::PluginInfo;
pub use runtime::DEFAULT_SESSION_KEY;
pub use runtime::{check_component, CacheEntry, CompiledCache, ComponentReport, ImportCheck};
pub use runtime::{plugin_engine, CompileSource};
pub use sandbox::raise_open_file_limit;
pub use schema::TypeExpr;
pub use warden_manifest::metadata::flatten_metadata;

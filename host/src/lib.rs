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
pub mod config;
mod egress;
mod engine;
mod error;
mod governance;
mod host;
mod plugin;
pub mod policy;
mod registry;
mod sandbox;
mod sessions;

pub use warden_manifest::{route, rtfs, schema};

/// Marketplace snapshots and the capability manifest (from
/// [`warden_manifest::manifest`] and [`warden_manifest::snapshot`]).
pub mod marketplace {
    pub use warden_manifest::manifest::*;
    pub use warden_manifest::snapshot::*;
}

pub use config::{
    AuditSettings, CallPolicy, CallRule, Config, DirGrant, DirMode, Grants, InstanceMode, Limits,
    PluginConfig, PluginRules, ResolvedLimits, RuleDecision, SecretGrant, SessionSettings,
};
pub use engine::{digest, CompileSource};
pub use error::{Error, ErrorKind, Limit, Result};
pub use governance::{Approval, ApprovalRequest, Approver};
pub use host::{ExportReport, ImportReport};
pub use host::{Health, Host};
pub use marketplace::{Manifest, ProviderKind};
pub use plugin::PluginInfo;
pub use registry::CapabilityInfo;
pub use route::{Hints, Route};
pub use schema::TypeExpr;
pub use sessions::DEFAULT_SESSION_KEY;
pub use warden_manifest::metadata::flatten_metadata;

/// The one `bindgen!` for the provider contract in `wit/`.
mod bindings {
    // Every Warden interface and no WASI: the host links WASI from
    // `wasmtime-wasi` itself. A plugin may leave `session-handler` and
    // `discovery` out.
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package warden:host-view;
            world host-view {
                import warden:provider/host@0.1.0;
                import warden:provider/http-client@0.1.0;
                export warden:provider/provider@0.1.0;
                export warden:provider/session-handler@0.1.0;
                export warden:provider/discovery@0.1.0;
            }
        ",
        world: "warden:host-view/host-view",
        imports: { "warden:provider/http-client": async | trappable },
        exports: { default: async },
        with: { "warden:provider/http-client.body": crate::sandbox::ResponseBody },
    });
}

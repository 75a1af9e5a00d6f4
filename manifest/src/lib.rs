//! # warden-manifest
//!
//! The capability model of Warden and its formats, free of any runtime: no
//! wasmtime, no async runtime, only serde. The `warden` host re-exports every
//! module here under its old paths (`warden::rtfs`, `warden::schema`,
//! `warden::route`, `warden::marketplace`).
//!
//! - [`rtfs`]: the RTFS reader and printer.
//! - [`schema`]: RTFS type expressions, validation with exact error paths,
//!   and JSON Schema conversion.
//! - [`manifest`]: a capability's [`Manifest`] and [`ProviderKind`], to and
//!   from RTFS and JSON.
//! - [`snapshot`]: marketplace snapshot files (RTFS modules and JSON).
//! - [`metadata`]: descriptor metadata and its flattened, dotted-key form.
//! - [`route`]: what the flattened metadata says about serving a call
//!   (`*.requires-session`, retry and rate hints).
//! - [`time`]: RFC 3339 timestamps.
#![deny(missing_docs)]

pub mod manifest;
pub mod metadata;
pub mod route;
pub mod rtfs;
pub mod schema;
pub mod snapshot;
pub mod time;

pub use manifest::{Manifest, ProviderKind};
pub use metadata::flatten_metadata;
pub use route::{Hints, Route};
pub use schema::TypeExpr;

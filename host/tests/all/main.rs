//! Integration tests against real components built from `plugins/` and
//! `tests/guests/` (build them with `cargo xtask build-guests`; `cargo xtask
//! test` does it for you).
// A scenario test reads top to bottom; the 150-line rule is for product code.
#![allow(clippy::too_many_lines)]

mod a2a;
mod audit_sink;
mod cache;
mod cancellation;
mod concurrency;
mod containment;
mod exactness;
mod governance;
mod hostile_suite;
mod http;
mod languages;
mod limits;
mod marketplace;
mod mcp;
mod mcp_cancel;
mod mcp_modern;
mod mcp_secrets;
mod mcp_tasks;
mod mcp_typescript;
mod neighbours;
mod oci;
mod ownership;
mod progress;
mod provenance;
mod python;
mod secrets;
mod sessions;
mod util;
mod wasi;

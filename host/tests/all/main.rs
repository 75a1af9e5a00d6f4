//! Integration tests against real components built from `plugins/` and
//! `tests/guests/` (build them with `cargo xtask build-guests`; `cargo xtask
//! test` does it for you).

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
mod mcp_typescript;
mod neighbours;
mod ownership;
mod python;
mod secrets;
mod sessions;
mod util;
mod wasi;

//! An MCP tool call through Warden (host, session pool, the `mcp` plugin,
//! governed egress) against the same call by a native Rust MCP client
//! (`rmcp`), on the same local server built on the official Python SDK, in
//! one run. Both keep one session open and call `add` repeatedly.
//!
//! Needs the components and the Python environment: `cargo xtask
//! build-guests && cargo xtask python-env`. Run: `cargo bench -p warden --bench mcp`.
//! `WARDEN_BENCH_MCP_JSON=1` uses JSON responses instead of SSE.

#[path = "../tests/support/components.rs"]
mod components;
#[path = "../tests/support/mcp_server.rs"]
mod mcp_server;

use components::component;
use criterion::{criterion_group, criterion_main, Criterion};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;
use warden::{Config, Host, PluginConfig};

fn mcp(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let json_mode = std::env::var_os("WARDEN_BENCH_MCP_JSON").is_some();
    let server = mcp_server::McpServer::start(if json_mode { &["--json"] } else { &[] });

    let mut plugin = PluginConfig::new(component("mcp"));
    plugin.grants.network = vec![server.origin()];
    plugin.config = json!({"servers": {"demo": {"url": server.url()}}});
    let mut config = Config::new(".").with_plugin("mcp", plugin);
    config.host.no_cache = true;
    let host = rt.block_on(Host::new(config)).expect("host loads");

    let client = rt
        .block_on(async { ().serve(StreamableHttpClientTransport::from_uri(server.url())).await })
        .expect("rmcp connects");
    let args = json!({"a": 20, "b": 22}).as_object().unwrap().clone();

    let mode = if json_mode { "JSON" } else { "SSE" };
    let mut group = c.benchmark_group(format!("MCP tools/call add, Python SDK server ({mode})"));
    group.bench_function("warden: mcp.demo.add via plugins/mcp", |b| {
        b.iter(|| {
            let out = rt
                .block_on(host.call("mcp.demo.add", json!({"a": 20, "b": 22})))
                .unwrap();
            assert_eq!(out["result"], 42);
        })
    });
    group.bench_function("rmcp: native client", |b| {
        b.iter(|| {
            let out = rt
                .block_on(
                    client
                        .call_tool(CallToolRequestParams::new("add").with_arguments(args.clone())),
                )
                .unwrap();
            assert_eq!(out.structured_content.unwrap()["result"], 42);
        })
    });
    group.finish();
    rt.block_on(host.shutdown());
    let _ = rt.block_on(client.cancel());
}

criterion_group!(benches, mcp);
criterion_main!(benches);

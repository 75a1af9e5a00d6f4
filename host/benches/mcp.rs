//! An MCP tool call through Warden (host, session pool, the `mcp` plugin,
//! governed egress) against the same call by a native Rust MCP client
//! (`rmcp` 3.11), on the same local server built on the official Python
//! SDK, in one run, at both protocol revisions:
//!
//! - 2025-11-25 (the server refuses 2026-07-28): both keep one session open;
//! - 2026-07-28 (the server speaks only it): no session, every request
//!   carrying its `_meta` envelope.
//!
//! A second group reads 1, 4 and 16 MB results, each in one SSE event, from
//! the TypeScript SDK v2 server: the throughput should not fall with size
//! (the reader is linear).
//!
//! Needs the components, the Python environment and the npm packages:
//! `cargo xtask test` (or `cargo xtask build-guests && cargo xtask python-env`
//! and `npm ci` in tests/serve). Run: `cargo bench -p warden --bench mcp`.
//! `WARDEN_BENCH_MCP_JSON=1` makes the Python server answer with JSON
//! instead of SSE.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;
use warden::{Config, Host, PluginConfig};
use warden_test_support::components::component;
use warden_test_support::mcp_server::McpServer;

fn host_for(
    rt: &tokio::runtime::Runtime,
    server: &McpServer,
    tune: impl FnOnce(&mut PluginConfig),
) -> Host {
    let mut plugin = PluginConfig::new(component("mcp"));
    plugin.grants.network = vec![server.origin()];
    plugin.config = json!({"servers": {"demo": {"url": server.url()}}});
    tune(&mut plugin);
    let mut config = Config::new(".").with_plugin("mcp", plugin);
    config.host.no_cache = true;
    rt.block_on(Host::new(config)).expect("host loads")
}

fn revisions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let json_mode = std::env::var_os("WARDEN_BENCH_MCP_JSON").is_some();
    let mode = if json_mode { "JSON" } else { "SSE" };
    for (revision, era) in [("2025-11-25", "legacy"), ("2026-07-28", "modern")] {
        let mut args = vec!["--era", era];
        if json_mode {
            args.push("--json");
        }
        let server = McpServer::start(&args);
        let host = host_for(&rt, &server, |_| {});
        let protocol =
            host.capability("mcp.demo.add").unwrap().flat_metadata["mcp.protocol"].clone();
        assert_eq!(protocol, revision, "warden speaks {revision}");
        let lifecycle = match era {
            "legacy" => ClientLifecycleMode::Initialize,
            _ => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        };
        let client = rt
            .block_on(async {
                ().serve_with_lifecycle(
                    StreamableHttpClientTransport::from_uri(server.url()),
                    lifecycle,
                )
                .await
            })
            .expect("rmcp connects");
        let args = json!({"a": 20, "b": 22}).as_object().unwrap().clone();
        let mut group = c.benchmark_group(format!(
            "MCP {revision} tools/call add, Python SDK server ({mode})"
        ));
        group.bench_function("warden: mcp.demo.add via plugins/mcp", |b| {
            b.iter(|| {
                let out = rt
                    .block_on(host.call("mcp.demo.add", json!({"a": 20, "b": 22})))
                    .unwrap();
                assert_eq!(out["result"], 42);
            })
        });
        group.bench_function("rmcp 3.11: native client", |b| {
            b.iter(|| {
                let out = rt
                    .block_on(
                        client.call_tool(
                            CallToolRequestParams::new("add").with_arguments(args.clone()),
                        ),
                    )
                    .unwrap();
                assert_eq!(out.structured_content.unwrap()["result"], 42);
            })
        });
        group.finish();
        // Criterion measures the two one after the other, so a drift in
        // the machine's (or the server's) speed skews their ratio: rounds
        // that alternate them give a ratio that drift cannot.
        let warden = || {
            rt.block_on(host.call("mcp.demo.add", json!({"a": 20, "b": 22})))
                .unwrap();
        };
        let rmcp = || {
            rt.block_on(
                client.call_tool(CallToolRequestParams::new("add").with_arguments(args.clone())),
            )
            .unwrap();
        };
        interleaved(revision, &warden, &rmcp);
        rt.block_on(host.shutdown());
        let _ = rt.block_on(client.cancel());
    }
}

/// Rounds alternating Warden and rmcp (40 calls each, 40 rounds); prints
/// their mean times and the median of the per-round ratios.
fn interleaved(revision: &str, warden: &dyn Fn(), rmcp: &dyn Fn()) {
    const ROUNDS: usize = 40;
    const BATCH: u32 = 40;
    let time = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        for _ in 0..BATCH {
            f();
        }
        t.elapsed().as_secs_f64() / f64::from(BATCH)
    };
    let (mut w, mut r, mut ratios) = (0.0, 0.0, Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        let (a, b) = if round % 2 == 0 {
            let a = time(warden);
            (a, time(rmcp))
        } else {
            let b = time(rmcp);
            (time(warden), b)
        };
        w += a;
        r += b;
        ratios.push(a / b);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "interleaved {revision}: warden mean {:.3} ms, rmcp mean {:.3} ms, median ratio warden/rmcp {:.2}",
        w / ROUNDS as f64 * 1e3,
        r / ROUNDS as f64 * 1e3,
        ratios[ROUNDS / 2]
    );
}

fn large_results(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = McpServer::start_ts(&["--sse"]);
    let host = host_for(&rt, &server, |p| {
        p.limits.max_response_bytes = Some(64 << 20);
        p.limits.max_egress_bytes = Some(64 << 20);
        p.limits.max_output_bytes = Some(64 << 20);
        p.limits.memory = Some(512 << 20);
        p.limits.fuel = Some(10_000_000_000);
        p.limits.timeout_ms = Some(60_000);
    });
    let mut group = c.benchmark_group("MCP result in one SSE event, TypeScript SDK v2 server");
    group.sample_size(10);
    for mb in [1usize, 4, 16] {
        let n = mb << 20;
        group.throughput(Throughput::Bytes(n as u64));
        group.bench_function(format!("{mb} MB"), |b| {
            b.iter(|| {
                let out = rt
                    .block_on(host.call("mcp.demo.big", json!({"n": n})))
                    .unwrap();
                assert_eq!(out["content"][0]["text"].as_str().unwrap().len(), n);
            })
        });
    }
    group.finish();
    rt.block_on(host.shutdown());
}

criterion_group!(benches, revisions, large_results);
criterion_main!(benches);

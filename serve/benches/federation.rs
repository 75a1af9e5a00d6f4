//! Federation (`:RemoteRTFS`): what an edge adds to a call it passes to a
//! central Warden service, and what it serves.
//!
//! - Added time: one kept-alive client calls `text.case` on central
//!   directly and as `mcp.central.text.case` through the edge (whose MCP
//!   plugin reads central's published marketplace), in alternating rounds;
//!   the median per-call times and their difference.
//! - Throughput: 64 minimal kept-alive clients through the edge, and
//!   straight to central. Edge, central and clients share this machine's
//!   cores.
//!
//! Needs the components (`cargo xtask build-guests`). Run:
//! `cargo bench -p warden-serve --bench federation`.

use serde_json::json;
use std::time::{Duration, Instant};
use warden::{Config, Host, PluginConfig};
use warden_serve::ServeSettings;
use warden_test_support::components;

#[path = "raw_client.rs"]
mod raw_client;
use raw_client::RawClient;

const CLIENTS: usize = 64;
const CALLS_PER_CLIENT: usize = 100;
const ROUNDS: usize = 5;

/// `warden serve` over `host` on 127.0.0.1: the server and its port.
fn serve(rt: &tokio::runtime::Runtime, host: Host) -> (warden_serve::Server, u16) {
    let server = warden_serve::Server::from_host(host, ServeSettings::default(), Vec::new());
    let listener = rt
        .block_on(server.bind_http("127.0.0.1:0".parse().unwrap()))
        .expect("binds");
    let port = listener.local_addr().port();
    rt.spawn(listener.run());
    (server, port)
}

/// The edge: the MCP plugin with central at `port` as a Warden service.
fn edge_host(rt: &tokio::runtime::Runtime, dir: &std::path::Path, port: u16) -> Host {
    let config = format!(
        "[plugins.mcp]\ncomponent = \"{}\"\ngrants = {{ network = [\"http://127.0.0.1:{port}\"] }}\n\
         max-instances = 16\n\
         [plugins.mcp.config.servers.central]\nurl = \"http://127.0.0.1:{port}/mcp\"\nmarketplace = true\n",
        components::component("mcp").display()
    );
    let path = dir.join("edge.toml");
    std::fs::write(&path, config).unwrap();
    let config = Config::from_file(&path).expect("edge config");
    rt.block_on(Host::new(config)).expect("edge loads")
}

/// A 2026-07-28 `tools/call` of `name`, whole.
fn request(name: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": name, "arguments": {"text": "hello there", "to": "upper"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {name}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Per-call times of `n` calls on one kept-alive connection to `port`.
fn timed(rt: &tokio::runtime::Runtime, port: u16, request: &str, n: usize) -> Vec<Duration> {
    rt.block_on(async {
        let mut raw = RawClient::connect(&format!("http://127.0.0.1:{port}/mcp")).await;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let out = raw.exchange(request.as_bytes()).await;
            times.push(t.elapsed());
            assert!(out.contains("HELLO THERE"), "{out}");
        }
        times
    })
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

/// [`CLIENTS`] minimal clients on `port`: calls/s.
fn rate(rt: &tokio::runtime::Runtime, port: u16, request: &str) -> f64 {
    let started = Instant::now();
    let calls = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let request = request.to_string();
            tasks.spawn(async move {
                let mut raw = RawClient::connect(&format!("http://127.0.0.1:{port}/mcp")).await;
                for _ in 0..CALLS_PER_CLIENT {
                    let out = raw.exchange(request.as_bytes()).await;
                    assert!(out.contains("HELLO THERE"), "{out}");
                }
                CALLS_PER_CLIENT
            });
        }
        let mut calls = 0;
        while let Some(n) = tasks.join_next().await {
            calls += n.unwrap();
        }
        calls
    });
    calls as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = PluginConfig::new(components::component("text"));
    let central = rt
        .block_on(Host::new(Config::new(".").with_plugin("text", text)))
        .expect("central loads");
    let (central, central_port) = serve(&rt, central);
    let (edge, edge_port) = serve(&rt, edge_host(&rt, dir.path(), central_port));
    let (direct, through) = (request("text.case"), request("mcp.central.text.case"));

    timed(&rt, edge_port, &through, 200);
    let (mut here, mut there) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        here.extend(timed(&rt, central_port, &direct, 300));
        there.extend(timed(&rt, edge_port, &through, 300));
    }
    let (here, there) = (median(here), median(there));
    println!(
        "one client, kept alive: central direct p50 {here:?}, through the edge p50 {there:?}: \
         the edge adds {:.0} µs at p50",
        there.as_secs_f64() * 1e6 - here.as_secs_f64() * 1e6
    );

    let (mut direct_rates, mut edge_rates) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        direct_rates.push(rate(&rt, central_port, &direct));
        edge_rates.push(rate(&rt, edge_port, &through));
    }
    let (d, e) = (median(direct_rates), median(edge_rates));
    println!(
        "{CLIENTS} minimal clients, median of {ROUNDS} rounds: central direct {d:.0} calls/s, \
         through the edge {e:.0} calls/s ({:.2} of direct)",
        e / d
    );
    rt.block_on(edge.shutdown());
    rt.block_on(central.shutdown());
}

//! Replicas (`[cluster]`): what the shared state costs a call, and what a
//! load balancer in front of 1, 2 and 3 replicas serves.
//!
//! - The Redis path: `Host::call_json` of `text.case` under a rule of
//!   `calls-per-minute` counted in Redis (a real `redis-server` on
//!   127.0.0.1), against the same rule counted in process, in alternating
//!   rounds; the median per-call times and their difference.
//! - Throughput: 64 minimal kept-alive HTTP clients sending 2026-07-28
//!   `tools/call` through haproxy (round-robin, connections kept alive) to
//!   1, 2 and 3 `warden serve` replicas sharing the Redis, and straight to
//!   one replica without the balancer. Every replica, the balancer, Redis
//!   and the clients share this machine's cores.
//!
//! Needs the components and the Debian packages `cargo xtask test`
//! installs. Run: `cargo bench -p warden-serve --bench cluster`.

use serde_json::json;
use std::time::{Duration, Instant};
use warden::config::{CallRule, RuleDecision};
use warden::{Config, Host, PluginConfig};
use warden_serve::ServeSettings;
use warden_test_support::cluster::{LoadBalancer, RedisServer};
use warden_test_support::components;

#[path = "raw_client.rs"]
mod raw_client;
use raw_client::RawClient;

const CLIENTS: usize = 64;
const CALLS_PER_CLIENT: usize = 150;
const ROUNDS: usize = 5;
const INPUT: &str = r#"{"text":"hello there","to":"upper"}"#;

/// A host serving `text` under a rule of a billion calls a minute on
/// `text.case` (every call is counted, none refused), in Redis when
/// `redis` is given.
fn host(rt: &tokio::runtime::Runtime, redis: Option<&str>) -> Host {
    let text = PluginConfig::new(components::component("text"));
    let mut config = Config::new(".").with_plugin("text", text);
    config.policy.rules.push(CallRule {
        capability: "text.case".into(),
        metadata: Default::default(),
        principals: Vec::new(),
        scopes: Vec::new(),
        groups: Vec::new(),
        decision: RuleDecision::Allow,
        calls_per_minute: Some(1_000_000_000),
        reason: None,
    });
    config.cluster =
        redis.map(|url| toml::from_str(&format!("redis = \"{url}\"")).expect("cluster settings"));
    rt.block_on(Host::new(config)).expect("host loads")
}

/// Per-call times of `n` calls.
fn timed_calls(rt: &tokio::runtime::Runtime, host: &Host, n: usize) -> Vec<Duration> {
    let context = warden::CallContext::default();
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let out = rt
                .block_on(host.call_json("text.case", INPUT, &context))
                .unwrap();
            assert!(out.contains("HELLO THERE"));
            t.elapsed()
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The Redis path: shared against local counting, alternating.
fn redis_path(rt: &tokio::runtime::Runtime, redis: &RedisServer) {
    let local = host(rt, None);
    let shared = host(rt, Some(&redis.url()));
    let (mut here, mut there) = (Vec::new(), Vec::new());
    timed_calls(rt, &shared, 200);
    for _ in 0..20 {
        here.extend(timed_calls(rt, &local, 500));
        there.extend(timed_calls(rt, &shared, 500));
    }
    let (here, there) = (median(here), median(there));
    println!(
        "a call under a calls-per-minute rule: counted in process p50 {here:?}, in Redis p50 {there:?}: \
         the Redis path adds {:.0} µs at p50",
        there.as_secs_f64() * 1e6 - here.as_secs_f64() * 1e6
    );
}

/// A replica: `warden serve` over a host sharing `redis`; its port.
fn replica(rt: &tokio::runtime::Runtime, redis: &str) -> (warden_serve::Server, u16) {
    let host = host(rt, Some(redis));
    let server = warden_serve::Server::from_host(host, ServeSettings::default(), Vec::new());
    let listener = rt
        .block_on(server.bind_http("127.0.0.1:0".parse().unwrap()))
        .expect("binds");
    let port = listener.local_addr().port();
    rt.spawn(listener.run());
    (server, port)
}

/// [`CLIENTS`] minimal clients through `port`: calls/s.
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

fn throughput(rt: &tokio::runtime::Runtime, redis: &RedisServer) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "text.case", "arguments": {"text": "hello there", "to": "upper"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: text.case\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let replicas: Vec<_> = (0..3).map(|_| replica(rt, &redis.url())).collect();
    let ports: Vec<u16> = replicas.iter().map(|(_, p)| *p).collect();
    let balancers: Vec<LoadBalancer> = (1..=3)
        .map(|n| LoadBalancer::round_robin_kept_alive(&ports[..n]))
        .collect();
    let mut rates = vec![Vec::new(); 4];
    for _ in 0..ROUNDS {
        rates[0].push(rate(rt, ports[0], &request));
        for (n, lb) in balancers.iter().enumerate() {
            rates[n + 1].push(rate(rt, lb.port, &request));
        }
    }
    let median_rate = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let direct = median_rate(&mut rates[0]);
    println!(
        "{CLIENTS} minimal clients, median of {ROUNDS} rounds, rate limit counted in Redis: \
         one replica without the balancer {direct:.0} calls/s"
    );
    for (n, r) in rates.iter_mut().enumerate().skip(1) {
        let r = median_rate(r);
        println!(
            "  through haproxy, {n} replica(s): {r:.0} calls/s ({:.2} of one replica direct)",
            r / direct
        );
    }
    for (server, _) in replicas {
        rt.block_on(server.shutdown());
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::start();
    redis_path(&rt, &redis);
    throughput(&rt, &redis);
}

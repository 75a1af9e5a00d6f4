//! `tools/call` through `warden serve`'s HTTP transport against the same
//! capability called in process with `Host::call`, and throughput at 64
//! concurrent MCP clients.
//!
//! - criterion: one `text.case` call, in process and from the `rmcp` client
//!   (a 2025-11-25 session, JSON responses) and as a raw 2026-07-28 request.
//! - then rounds alternating the call in process, a minimal hyper JSON
//!   endpoint (the transport's floor), the same endpoint calling
//!   `Host::call`, and `warden serve`, from the same minimal client: what
//!   serve adds over each. Once with the client on the bench thread and the
//!   server on two runtime workers (each exchange pays two cross-CPU
//!   wakeups), once with client and server on one current-thread runtime
//!   (what the transport and serve themselves cost);
//! - then 64 `rmcp` clients, each with its own session, and 64 minimal
//!   clients call for a fixed number of rounds: calls/s and latency
//!   percentiles; the minimal clients in alternating rounds with the audit
//!   log off, with `sync = "flush"`, and with `[telemetry]` exporting OTLP
//!   (HTTP/protobuf, to a collector on 127.0.0.1 that takes everything and
//!   keeps no body), at `sample-ratio` 1.0 and 0.1.
//!
//! Needs the components: `cargo xtask build-guests`. Run:
//! `cargo bench -p warden-serve --bench serve`.

use criterion::{criterion_group, criterion_main, Criterion};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;
use std::time::{Duration, Instant};
use warden::audit::SyncPolicy;
use warden::{AuditSettings, Config, Host, PluginConfig};
use warden_serve::ServeSettings;
use warden_test_support::components;
use warden_test_support::interleave::{interleave, Contender};

#[path = "raw_client.rs"]
mod raw_client;
use raw_client::RawClient;

const CLIENTS: usize = 64;
const ROUNDS: usize = 200;
/// Rounds of the throughput comparison (medians are reported: a 2-core
/// VM's rates vary by a fifth from round to round).
const ROUNDS_OF_RATES: usize = 24;

/// A host serving `text` (audit log off, or on with `sync = "flush"` in
/// `audit_dir`) and `warden serve --http` over it on 127.0.0.1, running on `rt`.
struct Served {
    host: Host,
    server: warden_serve::Server,
    url: String,
}

impl Served {
    fn start(
        rt: &tokio::runtime::Runtime,
        audit_dir: Option<&std::path::Path>,
        otlp: Option<(String, f64)>,
    ) -> Served {
        let text = PluginConfig::new(components::component("text"));
        let mut config = Config::new(".").with_plugin("text", text);
        config.telemetry = otlp.map(|(endpoint, ratio)| warden::telemetry::TelemetrySettings {
            sample_ratio: Some(ratio),
            ..warden::telemetry::TelemetrySettings::new(endpoint)
        });
        config.audit = audit_dir.map(|dir| AuditSettings {
            path: dir.join("audit.jsonl"),
            sync: SyncPolicy::Flush,
            rotate_bytes: 0,
            // Every minimal client is the same local principal: one budget,
            // which the default (60,000 records a minute) would stop.
            max_records_per_minute: Some(1 << 40),
            max_bytes_per_minute: Some(1 << 50),
            signing_key: None,
            checkpoint_records: None,
            checkpoint_ms: None,
            sink: None,
            replica: None,
        });
        let host = rt.block_on(Host::new(config)).expect("host loads");
        let server =
            warden_serve::Server::from_host(host.clone(), ServeSettings::default(), Vec::new());
        let listener = rt
            .block_on(server.bind_http("127.0.0.1:0".parse().unwrap()))
            .expect("binds");
        let url = format!("http://{}/mcp", listener.local_addr());
        rt.spawn(listener.run());
        Served { host, server, url }
    }
}

fn serve(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(which) = std::env::var("WARDEN_BENCH_ALONE") {
        return alone(&rt, &which);
    }
    let Served { host, server, url } = Served::start(&rt, None, None);
    let client = rt
        .block_on(async { ().serve(StreamableHttpClientTransport::from_uri(url.clone())).await })
        .expect("rmcp connects");
    let args = json!({"text": "hello there", "to": "upper"});
    let params = || {
        CallToolRequestParams::new("text.case").with_arguments(args.as_object().unwrap().clone())
    };
    let http = reqwest::Client::new();
    let modern_body = modern_body(&args);

    let mut group = c.benchmark_group("text.case");
    group.bench_function("in process: Host::call", |b| {
        b.iter(|| {
            let out = rt.block_on(host.call("text.case", args.clone())).unwrap();
            assert_eq!(out["text"], "HELLO THERE");
        })
    });
    group.bench_function(
        "warden serve --http: rmcp tools/call (2025-11-25 session)",
        |b| {
            b.iter(|| {
                let out = rt.block_on(client.call_tool(params())).unwrap();
                assert_eq!(out.structured_content.unwrap()["text"], "HELLO THERE");
            })
        },
    );
    group.bench_function("warden serve --http: raw 2026-07-28 tools/call", |b| {
        b.iter(|| {
            let out = rt.block_on(async {
                http.post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "text.case")
                    .body(modern_body.clone())
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            });
            assert!(out.contains("HELLO THERE"));
        })
    });
    // The floor: one kept-alive connection, the request written whole, the
    // response read by its content-length; no client library.
    let mut raw = rt.block_on(RawClient::connect(&url));
    let request = raw_request(&modern_body);
    group.bench_function(
        "warden serve --http: 2026-07-28 tools/call, minimal HTTP client",
        |b| {
            b.iter(|| {
                let out = rt.block_on(raw.exchange(request.as_bytes()));
                assert!(out.contains("HELLO THERE"));
            })
        },
    );
    group.finish();
    let _ = rt.block_on(client.cancel());
    println!("\nclient on the bench thread, server on two runtime workers:");
    interleaved(&rt, &host, &url, &request);
    one_thread(&request);

    // Throughput: 64 clients, each its own session, ROUNDS calls each.
    let clients: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..CLIENTS {
            v.push(
                ().serve(StreamableHttpClientTransport::from_uri(url.clone()))
                    .await
                    .expect("connects"),
            );
        }
        v
    });
    let started = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for client in clients {
            let params = params();
            tasks.spawn(async move {
                let mut lat = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    let t = Instant::now();
                    let out = client.call_tool(params.clone()).await.unwrap();
                    assert_eq!(out.is_error, Some(false));
                    lat.push(t.elapsed());
                }
                let _ = client.cancel().await;
                lat
            });
        }
        collect(tasks).await
    });
    report(&format!("\n{CLIENTS} rmcp clients x {ROUNDS} tools/call through warden serve --http (2 runtime workers)"), latencies, started.elapsed());
    compare_rates(&rt, &url, &request);
    rt.block_on(server.shutdown());
}

/// A 2026-07-28 `tools/call` of `text.case` with `args`.
fn modern_body(args: &serde_json::Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "text.case", "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string()
}

/// The minimal client's request: `body` as one 2026-07-28 POST.
fn raw_request(body: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: text.case\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// For a profiler: 64 minimal clients call, for 8 s, a server with
/// telemetry `off` or exporting OTLP at sample-ratio 1.0 (`otlp`), as
/// `WARDEN_BENCH_ALONE` names it; nothing else runs. `rates` runs only
/// the throughput comparison ([`compare_rates`]).
fn alone(rt: &tokio::runtime::Runtime, which: &str) {
    let request = raw_request(&modern_body(&json!({"text": "hello there", "to": "upper"})));
    if which == "rates" {
        let off = Served::start(rt, None, None);
        compare_rates(rt, &off.url, &request);
        return rt.block_on(off.server.shutdown());
    }
    let collector = warden_test_support::http_server::TestServer::start_discarding();
    let otlp = match which {
        "off" => None,
        "otlp" => Some((format!("http://127.0.0.1:{}", collector.port), 1.0)),
        other => panic!("WARDEN_BENCH_ALONE={other}: use off, otlp or rates"),
    };
    let served = Served::start(rt, None, otlp);
    let started = Instant::now();
    let mut rates = Vec::new();
    while started.elapsed().as_secs() < 8 {
        let telemetry = served.host.telemetry().cloned();
        rates.push(minimal_clients(
            rt,
            &served.url,
            &request,
            false,
            which,
            telemetry,
        ));
    }
    let calls = rates.len() * CLIENTS * ROUNDS;
    println!(
        "{which}: {calls} calls in {:.2?}, rounds at {rates:.0?} calls/s",
        started.elapsed()
    );
    rt.block_on(served.server.shutdown());
}

/// The same load as the rmcp clients' from minimal HTTP clients (what the
/// server itself sustains, with less client work on the same two cores),
/// in rounds of four: the audit log off, on with `sync = "flush"`, and
/// OTLP export on at two sample ratios. Each round starts with the next
/// of the four (so none always follows the same one, whose leftover work
/// it would pay for), and each is compared with the round's "off": a
/// 2-core VM's speed moves by a fifth within seconds, so rates a second
/// apart compare; medians of minutes apart do not.
fn compare_rates(rt: &tokio::runtime::Runtime, url: &str, request: &str) {
    let audit_dir = tempfile::tempdir().unwrap();
    let audited = Served::start(rt, Some(audit_dir.path()), None);
    let collector = warden_test_support::http_server::TestServer::start_discarding();
    let otlp = format!("http://127.0.0.1:{}", collector.port);
    let traced = Served::start(rt, None, Some((otlp.clone(), 1.0)));
    let sampled = Served::start(rt, None, Some((otlp, 0.1)));
    let configs = [
        (url, None, "off"),
        (&audited.url, None, "flush"),
        (&traced.url, Some(&traced.host), "off, OTLP on"),
        (
            &sampled.url,
            Some(&sampled.host),
            "off, OTLP on, sample-ratio 0.1",
        ),
    ];
    let mut rates = vec![Vec::new(); configs.len()];
    for round in 0..ROUNDS_OF_RATES {
        for k in 0..configs.len() {
            let which = (round + k) % configs.len();
            let (served, host, what) = configs[which];
            let telemetry = host.and_then(|h| h.telemetry().cloned());
            let rate = minimal_clients(rt, served, request, round == 0, what, telemetry);
            rates[which].push(rate);
        }
    }
    let off = warden_test_support::interleave::median(rates[0].clone());
    let of_off = |i: usize| {
        let ratios = rates[i].iter().zip(&rates[0]).map(|(r, o)| r / o).collect();
        warden_test_support::interleave::median(ratios)
    };
    let rate = |i: usize| warden_test_support::interleave::median(rates[i].clone());
    println!(
        "{CLIENTS} minimal clients, {ROUNDS_OF_RATES} rounds, medians (of the rates, and of \
         each round's ratio to off): audit off {off:.0} calls/s, audit flush {:.0} calls/s \
         ({:.2} of off), OTLP export on {:.0} calls/s ({:.2} of off), at sample-ratio 0.1 \
         {:.0} calls/s ({:.2} of off; {} exports reached the collector)",
        rate(1),
        of_off(1),
        rate(2),
        of_off(2),
        rate(3),
        of_off(3),
        collector.count()
    );
    rt.block_on(audited.server.shutdown());
    rt.block_on(traced.server.shutdown());
    rt.block_on(sampled.server.shutdown());
}

/// 64 minimal clients on their own connections, [`ROUNDS`] calls each;
/// returns calls/s (and prints the latencies when `print`). With
/// `telemetry`, the round ends when its spans have reached the collector,
/// so that their export is charged to it and not to the next round.
fn minimal_clients(
    rt: &tokio::runtime::Runtime,
    url: &str,
    request: &str,
    print: bool,
    audit: &str,
    telemetry: Option<std::sync::Arc<warden::telemetry::Telemetry>>,
) -> f64 {
    let started = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let url = url.to_string();
            let request = request.to_string();
            tasks.spawn(async move {
                let mut raw = RawClient::connect(&url).await;
                let mut lat = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    let t = Instant::now();
                    let out = raw.exchange(request.as_bytes()).await;
                    assert!(out.contains("HELLO THERE"), "{out}");
                    lat.push(t.elapsed());
                }
                lat
            });
        }
        let latencies = collect(tasks).await;
        if let Some(t) = telemetry {
            tokio::task::spawn_blocking(move || t.flush())
                .await
                .unwrap();
        }
        latencies
    });
    let elapsed = started.elapsed();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    if print {
        report(
            &format!(
                "{CLIENTS} minimal HTTP clients x {ROUNDS} 2026-07-28 tools/call, audit {audit}"
            ),
            latencies,
            elapsed,
        );
    }
    rate
}

/// The rounds of [`interleaved`] with the client and the server on one
/// current-thread runtime: no exchange waits for another CPU to wake, so
/// what remains is the transport's and serve's own work.
fn one_thread(request: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let served = Served::start(&rt, None, None);
    println!("\nclient and server on one current-thread runtime:");
    interleaved(&rt, &served.host, &served.url, request);
    rt.block_on(served.server.shutdown());
}

/// Rounds alternating the call in process, a minimal hyper JSON endpoint
/// (the transport's floor: the same client, the body parsed, a fixed
/// result written) and `warden serve`; prints what serve adds over each.
fn interleaved(rt: &tokio::runtime::Runtime, host: &Host, url: &str, request: &str) {
    let floor_url = format!("http://{}/mcp", rt.block_on(minimal_endpoint(None)));
    let hosted_url = format!(
        "http://{}/mcp",
        rt.block_on(minimal_endpoint(Some(host.clone())))
    );
    let hosted = std::cell::RefCell::new(rt.block_on(RawClient::connect(&hosted_url)));
    let floor = std::cell::RefCell::new(rt.block_on(RawClient::connect(&floor_url)));
    let served = std::cell::RefCell::new(rt.block_on(RawClient::connect(url)));
    let args = json!({"text": "hello there", "to": "upper"});
    let measured = interleave(
        "text.case, one call at a time",
        20,
        300,
        &mut [
            Contender::new("in process: Host::call", || {
                rt.block_on(host.call("text.case", args.clone())).unwrap();
            }),
            Contender::new("minimal hyper JSON endpoint, minimal client", || {
                let out = rt.block_on(floor.borrow_mut().exchange(request.as_bytes()));
                assert!(out.contains("HELLO THERE"));
            }),
            Contender::new("minimal endpoint calling Host::call", || {
                let out = rt.block_on(hosted.borrow_mut().exchange(request.as_bytes()));
                assert!(out.contains("HELLO THERE"));
            }),
            Contender::new("warden serve --http, minimal client", || {
                let out = rt.block_on(served.borrow_mut().exchange(request.as_bytes()));
                assert!(out.contains("HELLO THERE"));
            }),
        ],
    );
    let us = |i: usize| measured[i].mean * 1e6;
    println!(
        "  warden serve adds {:.1} µs over in process; {:.1} µs over the minimal endpoint, \
         {:.1} µs over the endpoint calling Host::call",
        us(3) - us(0),
        us(3) - us(1),
        us(3) - us(2)
    );
}

/// A minimal hyper HTTP/1.1 endpoint on 127.0.0.1: each POST's body is
/// parsed as JSON and answered with a fixed `tools/call` result, after
/// calling `text.case` with its arguments when given a host.
async fn minimal_endpoint(host: Option<Host>) -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let host = host.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let host = host.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        if let Some(host) = host {
                            let arguments = request["params"]["arguments"].clone();
                            host.call("text.case", arguments).await.unwrap();
                        }
                        let out = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
                    "content": [{"type": "text", "text": "{\"text\":\"HELLO THERE\"}"}],
                    "structuredContent": {"text": "HELLO THERE"}, "isError": false}});
                        let response = hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(bytes::Bytes::from(
                                out.to_string(),
                            )))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

async fn collect(mut tasks: tokio::task::JoinSet<Vec<Duration>>) -> Vec<Duration> {
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

fn report(what: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{what}: {:.0} calls/s, p50 {:?}, p99 {:?}, p99.9 {:?}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = serve
}
criterion_main!(benches);

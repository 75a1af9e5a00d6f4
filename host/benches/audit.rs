//! Throughput and tail latency of cheap calls from 64 concurrent tasks on a
//! runtime with two worker threads, with the audit log off and in each
//! `sync` mode (`buffered`, `flush`, `always`). Every call writes two
//! records (admitted, ended), so this measures what auditing costs the
//! runtime and every task on it.
//!
//! Prints calls/s, p50, p99.9 and the maximum for each mode, then
//! criterion's figures for one call with `flush`. Needs the components:
//! `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench audit`.

#[path = "../tests/support/components.rs"]
mod components;

use components::component;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::time::{Duration, Instant};
use warden::audit::SyncPolicy;
use warden::{AuditSettings, Config, Host, PluginConfig};

const TASKS: usize = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn host(rt: &tokio::runtime::Runtime, dir: &std::path::Path, sync: Option<SyncPolicy>) -> Host {
    let mut p = PluginConfig::new(component("text"));
    p.max_instances = TASKS as u32;
    let mut config = Config::new(".").with_plugin("text", p);
    config.host.no_cache = true;
    config.audit = sync.map(|sync| AuditSettings {
        path: dir.join("audit.jsonl"),
        sync,
        rotate_bytes: 0,
    });
    rt.block_on(Host::new(config)).expect("host loads")
}

/// Runs `per_task` calls in each of [`TASKS`] tasks; returns calls/s and
/// the sorted latencies.
fn run(rt: &tokio::runtime::Runtime, host: &Host, per_task: usize) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let latencies = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let host = host.clone();
                tokio::spawn(async move {
                    let mut own = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        let t = Instant::now();
                        host.call("text.case", json!({"text": "a", "to": "upper"}))
                            .await
                            .unwrap();
                        own.push(t.elapsed());
                    }
                    own
                })
            })
            .collect();
        let mut all = Vec::with_capacity(TASKS * per_task);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let mut latencies = latencies;
    latencies.sort();
    ((TASKS * per_task) as f64 / elapsed.as_secs_f64(), latencies)
}

fn at(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn report() {
    let rt = runtime();
    println!("{TASKS} tasks, 2 worker threads, text.case (two audit records per call)");
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10}",
        "audit", "calls/s", "p50", "p99.9", "max"
    );
    for (name, sync, per_task) in [
        ("off", None, 3000),
        ("buffered", Some(SyncPolicy::Buffered), 3000),
        ("flush", Some(SyncPolicy::Flush), 3000),
        ("always", Some(SyncPolicy::Always), 500),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let host = host(&rt, dir.path(), sync);
        run(&rt, &host, 50); // warm: instances, allocations
        let (rate, lat) = run(&rt, &host, per_task);
        println!(
            "{:<10} {:>10.0} {:>10.1?} {:>10.1?} {:>10.1?}",
            name,
            rate,
            at(&lat, 0.5),
            at(&lat, 0.999),
            lat[lat.len() - 1]
        );
        rt.block_on(host.shutdown());
    }
}

fn bench(c: &mut Criterion) {
    report();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let host = host(&rt, dir.path(), Some(SyncPolicy::Flush));
    c.bench_function("call with audit sync=flush", |b| {
        b.iter(|| {
            rt.block_on(host.call("text.case", json!({"text": "a", "to": "upper"})))
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! An honest plugin's call latency alone and next to a busy plugin whose
//! calls spin on the CPU until their time limit, on a runtime with two
//! worker threads. Guest code yields every 100,000 units of fuel and at
//! every epoch tick (5 ms), so the honest plugin's call waits for a worker
//! for tens of microseconds, not for the busy plugin's whole call.
//!
//! Prints p50/p99 of 2,000 calls in each setting, then criterion's figures.
//! Needs the components: `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench neighbours`.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::time::{Duration, Instant};
use warden::{Config, Host, PluginConfig};
use warden_test_support::components::component;

/// Concurrent spinning calls of the busy plugin: one per worker thread.
const BUSY_CALLS: u32 = 2;

fn host(rt: &tokio::runtime::Runtime, busy: bool) -> Host {
    let mut config = Config::new(".").with_plugin("text", PluginConfig::new(component("text")));
    if busy {
        let mut p = PluginConfig::new(component("hostile"));
        p.max_instances = BUSY_CALLS;
        p.limits.timeout_ms = Some(1000);
        p.limits.fuel = Some(u64::MAX / 2);
        config = config.with_plugin("hostile", p);
    }
    config.host.no_cache = true;
    let host = rt.block_on(Host::new(config)).expect("host loads");
    if busy {
        for _ in 0..BUSY_CALLS {
            let host = host.clone();
            rt.spawn(async move {
                loop {
                    // Stopped by its time limit each second; then again.
                    let _ = host.call("hostile.spin", json!({})).await;
                }
            });
        }
        // Let the spinners start.
        std::thread::sleep(Duration::from_millis(200));
    }
    host
}

fn call(rt: &tokio::runtime::Runtime, host: &Host) {
    let host = host.clone();
    rt.block_on(async move {
        // Run on a worker, as a served request would.
        tokio::spawn(async move {
            host.call("text.case", json!({"text": "honest", "to": "upper"}))
                .await
                .unwrap()
        })
        .await
        .unwrap()
    });
}

fn percentiles(rt: &tokio::runtime::Runtime, host: &Host, label: &str) {
    for _ in 0..200 {
        call(rt, host);
    }
    let mut times: Vec<Duration> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            call(rt, host);
            t.elapsed()
        })
        .collect();
    times.sort();
    let p = |q: usize| times[times.len() * q / 100];
    println!(
        "honest call {label}: p50 {:?}, p99 {:?}, max {:?}",
        p(50),
        p(99),
        times[times.len() - 1]
    );
}

fn neighbours(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let alone = host(&rt, false);
    percentiles(&rt, &alone, "alone");
    c.bench_function("honest call alone", |b| b.iter(|| call(&rt, &alone)));
    let busy = host(&rt, true);
    percentiles(&rt, &busy, "next to a busy plugin");
    c.bench_function("honest call next to a busy plugin", |b| {
        b.iter(|| call(&rt, &busy))
    });
}

criterion_group!(benches, neighbours);
criterion_main!(benches);

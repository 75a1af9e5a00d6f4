//! An honest plugin's call latency alone and next to a busy plugin whose
//! calls spin on the CPU until their time limit, on a runtime with two
//! worker threads. Guest code runs in slices (it yields every 100,000 units
//! of fuel and at every 5 ms epoch tick), and one plugin runs at most one
//! fewer slices at once than there are workers: the busy plugin's second
//! call waits in line for its turn, and a worker stays free for the honest
//! plugin.
//!
//! Prints criterion's figures, then rounds that alternate the honest
//! calls alone and beside the spinning ones (started and stopped each
//! round): the p99 of each, and the median of the per-round p99 ratios.
//! Needs the components: `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench neighbours`.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden::{Config, Host, PluginConfig};
use warden_test_support::components::component;
use warden_test_support::interleave::median;

/// Concurrent spinning calls of the busy plugin: one per worker thread.
const BUSY_CALLS: u32 = 2;

/// One host with the honest `text` plugin and the `hostile` one, whose
/// spinning calls (stopped by a 50 ms limit) run while `spin` is set.
fn host(rt: &tokio::runtime::Runtime, spin: &Arc<AtomicBool>) -> Host {
    let mut config = Config::new(".").with_plugin("text", PluginConfig::new(component("text")));
    let mut p = PluginConfig::new(component("hostile"));
    p.max_instances = BUSY_CALLS;
    p.limits.timeout_ms = Some(50);
    p.limits.fuel = Some(u64::MAX / 2);
    config = config.with_plugin("hostile", p);
    config.host.no_cache = true;
    let host = rt.block_on(Host::new(config)).expect("host loads");
    for _ in 0..BUSY_CALLS {
        let (host, spin) = (host.clone(), spin.clone());
        rt.spawn(async move {
            loop {
                if spin.load(Ordering::Relaxed) {
                    let _ = host.call("hostile.spin", json!({})).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
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

/// The times of `n` honest calls, sorted.
fn times(rt: &tokio::runtime::Runtime, host: &Host, n: usize) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            call(rt, host);
            t.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn p(times: &[Duration], q: usize) -> Duration {
    times[times.len() * q / 100]
}

/// Rounds of honest calls alone, then beside the spinners (started and
/// stopped each round): the median of the per-round p99 ratios.
fn interleaved(rt: &tokio::runtime::Runtime, host: &Host, spin: &AtomicBool) {
    const ROUNDS: usize = 15;
    const CALLS: usize = 1000;
    let (mut ratios, mut alone99, mut busy99, mut busy50) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        spin.store(false, Ordering::Relaxed);
        // The spinners' calls end within their 50 ms limit.
        std::thread::sleep(Duration::from_millis(80));
        let alone = times(rt, host, CALLS);
        spin.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        let busy = times(rt, host, CALLS);
        ratios.push(p(&busy, 99).as_secs_f64() / p(&alone, 99).as_secs_f64());
        alone99.push(p(&alone, 99).as_secs_f64());
        busy99.push(p(&busy, 99).as_secs_f64());
        busy50.push(p(&busy, 50).as_secs_f64());
    }
    spin.store(false, Ordering::Relaxed);
    let us = |v: Vec<f64>| median(v) * 1e6;
    println!(
        "interleaved: honest call p99 alone {:.1} µs, beside {BUSY_CALLS} spinning calls {:.1} µs (p50 {:.1} µs); median per-round p99 ratio {:.2}",
        us(alone99),
        us(busy99),
        us(busy50),
        median(ratios)
    );
}

fn neighbours(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let spin = Arc::new(AtomicBool::new(false));
    let host = host(&rt, &spin);
    for _ in 0..200 {
        call(&rt, &host);
    }
    c.bench_function("honest call alone", |b| b.iter(|| call(&rt, &host)));
    spin.store(true, Ordering::Relaxed);
    c.bench_function("honest call next to a busy plugin", |b| {
        b.iter(|| call(&rt, &host))
    });
    interleaved(&rt, &host, &spin);
}

criterion_group!(benches, neighbours);
criterion_main!(benches);

//! Throughput and tail latency of cheap calls from 64 concurrent tasks on a
//! runtime with two worker threads, with the audit log off and in each
//! `sync` mode (`buffered`, `flush`, `always`). Every call writes two
//! records (admitted, ended), so this measures what auditing costs the
//! runtime and every task on it.
//!
//! Prints, for each mode, the median calls/s over five interleaved rounds,
//! its median ratio to the audit-off rate of the same round, and p50, p99.9
//! and the maximum latency over all rounds; then
//! criterion's figures for one call with `flush`. Needs the components:
//! `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench audit`; `WARDEN_BENCH_AUDIT=off,flush`
//! runs only the modes named.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::time::{Duration, Instant};
use warden::audit::SyncPolicy;
use warden::{AuditSettings, Config, Host, PluginConfig};
use warden_test_support::components::component;

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
        max_records_per_minute: None,
        max_bytes_per_minute: None,
        signing_key: None,
        checkpoint_records: None,
        checkpoint_ms: None,
        sink: None,
        replica: None,
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

/// Rounds of each mode, interleaved, so that drift of the machine (other
/// load, CPU frequency) falls on every mode alike.
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report() {
    let rt = runtime();
    // `WARDEN_BENCH_AUDIT=off,flush` runs only those modes.
    let only = std::env::var("WARDEN_BENCH_AUDIT").ok();
    let modes: Vec<(&str, Option<SyncPolicy>, usize)> = [
        ("off", None, 2000),
        ("buffered", Some(SyncPolicy::Buffered), 2000),
        ("flush", Some(SyncPolicy::Flush), 2000),
        ("always", Some(SyncPolicy::Always), 500),
    ]
    .into_iter()
    .filter(|(name, ..)| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|m| m == *name))
    })
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<Host> = modes
        .iter()
        .map(|(name, sync, _)| {
            let host = host(&rt, &dir.path().join(name), *sync);
            run(&rt, &host, 50); // warm: instances, allocations
            host
        })
        .collect();
    let mut rates = vec![Vec::new(); modes.len()];
    let mut latencies = vec![Vec::new(); modes.len()];
    for _ in 0..ROUNDS {
        for (i, host) in hosts.iter().enumerate() {
            let (rate, lat) = run(&rt, host, modes[i].2);
            rates[i].push(rate);
            latencies[i].extend(lat);
        }
    }
    println!(
        "{TASKS} tasks, 2 worker threads, text.case (two audit records per call), \
         {ROUNDS} interleaved rounds"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "audit", "calls/s", "of off", "p50", "p99.9", "max"
    );
    let off = modes.iter().position(|(name, ..)| *name == "off");
    for (i, (name, ..)) in modes.iter().enumerate() {
        let lat = &mut latencies[i];
        lat.sort();
        // The median over rounds of this mode's rate over off's in the same round.
        let ratio = off.map(|o| {
            median(
                rates[i]
                    .iter()
                    .zip(&rates[o])
                    .map(|(r, off)| r / off)
                    .collect(),
            )
        });
        println!(
            "{:<10} {:>10.0} {:>10} {:>10.1?} {:>10.1?} {:>10.1?}",
            name,
            median(rates[i].clone()),
            ratio.map_or_else(String::new, |r| format!("{r:.2}")),
            at(lat, 0.5),
            at(lat, 0.999),
            lat[lat.len() - 1]
        );
    }
    for host in hosts {
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

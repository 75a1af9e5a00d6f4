//! Call overhead through the whole host path (registry lookup, JSON in and
//! out, fuel and epoch set-up, the guest's dispatch): a warm instance, and a
//! fresh instance per call. Needs the components: `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench calls`.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use warden::{Config, Host, InstanceMode, PluginConfig};
use warden_test_support::components::component;

fn host(rt: &tokio::runtime::Runtime, mode: InstanceMode) -> Host {
    let mut plugin = PluginConfig::new(component("hostile"));
    plugin.instances = mode;
    let mut config = Config::new(".").with_plugin("hostile", plugin);
    config.host.no_cache = true;
    rt.block_on(Host::new(config)).expect("host loads")
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let input = json!({"k": "v"});

    let warm = host(&rt, InstanceMode::Reuse);
    c.bench_function("warm call (echo, reused instance)", |b| {
        b.iter(|| {
            rt.block_on(warm.call("hostile.echo", input.clone()))
                .unwrap()
        })
    });

    let fresh = host(&rt, InstanceMode::Fresh);
    c.bench_function("fresh instance per call (instantiate + init + echo)", |b| {
        b.iter(|| {
            rt.block_on(fresh.call("hostile.echo", input.clone()))
                .unwrap()
        })
    });
}

criterion_group!(benches, calls);
criterion_main!(benches);

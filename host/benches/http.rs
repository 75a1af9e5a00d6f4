//! An HTTP capability through the whole path (host, policy, the `http`
//! plugin, governed egress with its keep-alive pool) against the same
//! request by a direct `reqwest` client, on the same local server, in one run.
//! Needs the components: `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench http`.

#[path = "../tests/support/http_server.rs"]
mod http_server;

#[path = "../tests/support/components.rs"]
mod components;

use components::component;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use warden::{Config, Host, Manifest, PluginConfig, ProviderKind};

fn http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = http_server::TestServer::start();
    let url = server.url("/tiny");

    let mut plugin = PluginConfig::new(component("http"));
    plugin.grants.network = vec![format!("http://127.0.0.1:{}", server.port)];
    let mut config = Config::new(".").with_plugin("http", plugin);
    config.host.no_cache = true;
    config.providers.insert("Http".into(), "http".into());
    config.capabilities.push(Manifest {
        id: "bench.tiny".into(),
        name: "tiny".into(),
        version: "1".into(),
        description: String::new(),
        provider: ProviderKind::Http,
        provider_meta: json!({"base-url": server.url(""), "path": "/tiny"})
            .as_object()
            .unwrap()
            .clone(),
        input_schema: ":any".into(),
        output_schema: ":any".into(),
        metadata: json!({}),
        permissions: vec![],
        effects: vec![],
    });
    let mut hostile = PluginConfig::new(component("hostile"));
    hostile.grants.network = vec![format!("http://127.0.0.1:{}", server.port)];
    let config = config.with_plugin("hostile", hostile);
    let host = rt.block_on(Host::new(config)).expect("host loads");
    let client = reqwest::Client::new();

    let mut group = c.benchmark_group("GET /tiny on 127.0.0.1");
    group.bench_function("warden: :Http capability via plugins/http", |b| {
        b.iter(|| {
            let out = rt.block_on(host.call("bench.tiny", json!({}))).unwrap();
            assert_eq!(out["body"]["ok"], true);
        })
    });
    group.bench_function(
        "warden: plain GET from a minimal guest (SDK, no plugins/http)",
        |b| {
            b.iter(|| {
                let out = rt
                    .block_on(host.call("hostile.http", json!({"arg": url})))
                    .unwrap();
                assert_eq!(out["status"], 200);
            })
        },
    );
    group.bench_function("reqwest: direct", |b| {
        b.iter(|| {
            rt.block_on(async {
                let body = client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["ok"], true);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, http);
criterion_main!(benches);

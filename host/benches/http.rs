//! An HTTP capability through the whole path (host, policy, the `http`
//! plugin, governed egress with its keep-alive pool) against the same
//! request by a direct `reqwest` client, on the same local server, in one run.
//! Needs the components: `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench http`.
//!
//! After criterion's figures it prints the median ratio of rounds that
//! alternate the three clients (500 requests each, 60 rounds), which a
//! drift in the machine's speed between criterion's runs cannot skew.

use criterion::Criterion;
use serde_json::json;
use std::time::Instant;
use warden::{Config, Host, Manifest, PluginConfig, ProviderKind};
use warden_test_support::components::component;
use warden_test_support::http_server;

struct Setup {
    rt: tokio::runtime::Runtime,
    host: Host,
    client: reqwest::Client,
    url: String,
    _server: http_server::TestServer,
}

impl Setup {
    fn plugin(&self) {
        let out = self
            .rt
            .block_on(self.host.call("bench.tiny", json!({})))
            .unwrap();
        assert_eq!(out["body"]["ok"], true);
    }
    fn minimal(&self) {
        let out = self
            .rt
            .block_on(self.host.call("hostile.http", json!({"arg": self.url})))
            .unwrap();
        assert_eq!(out["status"], 200);
    }
    fn reqwest(&self) {
        self.rt.block_on(async {
            let body = self
                .client
                .get(&self.url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["ok"], true);
        })
    }
}

fn setup() -> Setup {
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
    Setup {
        rt,
        host,
        client: reqwest::Client::new(),
        url,
        _server: server,
    }
}

fn http(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("GET /tiny on 127.0.0.1");
    group.bench_function("warden: :Http capability via plugins/http", |b| {
        b.iter(|| s.plugin())
    });
    group.bench_function(
        "warden: plain GET from a minimal guest (SDK, no plugins/http)",
        |b| b.iter(|| s.minimal()),
    );
    group.bench_function("reqwest: direct", |b| b.iter(|| s.reqwest()));
    group.finish();
}

/// Rounds alternating the three clients; prints mean times and the median
/// of the per-round ratios to `reqwest`.
fn interleaved(s: &Setup) {
    const ROUNDS: usize = 60;
    const BATCH: u32 = 500;
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..BATCH {
            f();
        }
        t.elapsed().as_secs_f64() / f64::from(BATCH)
    };
    for _ in 0..BATCH {
        s.plugin();
        s.minimal();
        s.reqwest();
    }
    let (mut plugin, mut minimal, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let p = time(&|| s.plugin());
        let m = time(&|| s.minimal());
        let r = time(&|| s.reqwest());
        plugin.push((p, p / r));
        minimal.push((m, m / r));
        direct.push((r, 1.0));
    }
    let report = |name: &str, v: &mut Vec<(f64, f64)>| {
        let mean = v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        println!(
            "interleaved: {name:<45} mean {:6.1} µs   median ratio to reqwest {:.2}",
            mean * 1e6,
            v[v.len() / 2].1
        );
    };
    report("warden: :Http capability via plugins/http", &mut plugin);
    report("warden: plain GET from a minimal guest", &mut minimal);
    report("reqwest: direct", &mut direct);
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    http(&mut c, &s);
    c.final_summary();
    interleaved(&s);
}

//! Call overhead: `hello.greet` through the whole host (plan, admission,
//! schema checks, the pooled instance, the sandbox, the output's parse and
//! check, audit off) against the same component on the same engine settings
//! ([`warden::plugin_engine`]) called through bare wasmtime: no registry,
//! policy, schema or audit, the input and output passed as JSON text. Both
//! on a warm instance, and with a fresh instance per call. The host is
//! called, each way, with values (`Host::call`: the caller builds the input
//! value, the host writes it as text and parses the output into a value)
//! and with text (`Host::call_json`, what the bare baseline does).
//!
//! criterion's figures come first, then interleaved rounds that print each
//! ratio to bare wasmtime. Needs the components: `cargo xtask build-guests`.
//!
//! Run: `cargo bench -p warden --bench calls`. For a profiler, set
//! `WARDEN_BENCH_ALONE` to `json`, `traced`, `fresh`, `bare` or `bare-fresh`: that
//! contender alone is called for 8 s, and nothing else runs.

use criterion::Criterion;
use serde_json::json;
use warden::{Config, Host, InstanceMode, PluginConfig};
use warden_test_support::components::component;
use warden_test_support::interleave::{interleave, Contender};

mod bare;

fn host(rt: &tokio::runtime::Runtime, mode: InstanceMode, otlp: Option<String>) -> Host {
    let mut plugin = PluginConfig::new(component("hello"));
    plugin.instances = mode;
    let mut config = Config::new(".").with_plugin("hello", plugin);
    config.host.no_cache = true;
    config.telemetry = otlp.map(warden::telemetry::TelemetrySettings::new);
    rt.block_on(Host::new(config)).expect("host loads")
}

/// The contenders: the host and bare wasmtime, warm and fresh, and the
/// host with OTLP export on (every call's span recorded and sent to a
/// collector on 127.0.0.1 that keeps nothing).
struct Setup {
    rt: tokio::runtime::Runtime,
    warm: Host,
    traced: Host,
    _collector: warden_test_support::http_server::TestServer,
    fresh: Host,
    bare: bare::Bare,
}

const INPUT: &str = r#"{"name":"Ada"}"#;

impl Setup {
    fn new() -> Setup {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let warm = host(&rt, InstanceMode::Reuse, None);
        let fresh = host(&rt, InstanceMode::Fresh, None);
        let collector = warden_test_support::http_server::TestServer::start_discarding();
        let otlp = format!("http://127.0.0.1:{}", collector.port);
        let traced = host(&rt, InstanceMode::Reuse, Some(otlp));
        let bare = rt.block_on(bare::Bare::new(&component("hello")));
        Setup {
            rt,
            warm,
            traced,
            _collector: collector,
            fresh,
            bare,
        }
    }

    fn host_call(&self, host: &Host) {
        let out = self
            .rt
            .block_on(host.call("hello.greet", json!({"name": "Ada"})))
            .unwrap();
        debug_assert_eq!(out["message"], "Hello, Ada!");
    }

    fn host_call_json(&self, host: &Host) {
        let context = warden::CallContext::default();
        let out = self
            .rt
            .block_on(host.call_json("hello.greet", INPUT, &context))
            .unwrap();
        debug_assert_eq!(out, r#"{"message":"Hello, Ada!"}"#);
    }

    fn bare_warm(&mut self) {
        let out = self.rt.block_on(self.bare.call_warm("hello.greet", INPUT));
        debug_assert_eq!(out, r#"{"message":"Hello, Ada!"}"#);
    }

    fn bare_fresh(&self) {
        let out = self.rt.block_on(self.bare.call_fresh("hello.greet", INPUT));
        debug_assert_eq!(out, r#"{"message":"Hello, Ada!"}"#);
    }
}

fn criterion_figures(c: &mut Criterion, s: &mut Setup) {
    let mut group = c.benchmark_group("hello.greet");
    group.bench_function("bare wasmtime: warm instance", |b| b.iter(|| s.bare_warm()));
    group.bench_function("warden: warm instance", |b| b.iter(|| s.host_call(&s.warm)));
    group.bench_function("warden: warm instance, JSON text in and out", |b| {
        b.iter(|| s.host_call_json(&s.warm))
    });
    group.bench_function("bare wasmtime: fresh instance per call", |b| {
        b.iter(|| s.bare_fresh())
    });
    group.bench_function("warden: fresh instance per call", |b| {
        b.iter(|| s.host_call(&s.fresh))
    });
    group.bench_function(
        "warden: fresh instance per call, JSON text in and out",
        |b| b.iter(|| s.host_call_json(&s.fresh)),
    );
    group.finish();
}

fn interleaved(s: &mut Setup) {
    let s = std::cell::RefCell::new(s);
    interleave(
        "hello.greet on a warm instance",
        40,
        2000,
        &mut [
            Contender::new("bare wasmtime", || s.borrow_mut().bare_warm()),
            Contender::new("warden: Host::call (values)", || {
                let s = s.borrow();
                s.host_call(&s.warm)
            }),
            Contender::new("warden: Host::call_json (text)", || {
                let s = s.borrow();
                s.host_call_json(&s.warm)
            }),
            Contender::new("warden: Host::call_json, OTLP export on", || {
                let s = s.borrow();
                s.host_call_json(&s.traced)
            }),
        ],
    );
    interleave(
        "hello.greet on a fresh instance per call",
        30,
        200,
        &mut [
            Contender::new("bare wasmtime", || s.borrow().bare_fresh()),
            Contender::new("warden: Host::call (values)", || {
                let s = s.borrow();
                s.host_call(&s.fresh)
            }),
            Contender::new("warden: Host::call_json (text)", || {
                let s = s.borrow();
                s.host_call_json(&s.fresh)
            }),
        ],
    );
}

/// Calls one contender, named as `WARDEN_BENCH_ALONE` names it, for 8 s.
fn alone(s: &mut Setup, which: &str) {
    let started = std::time::Instant::now();
    while started.elapsed().as_secs() < 8 {
        for _ in 0..1000 {
            match which {
                "json" => s.host_call_json(&s.warm),
                "traced" => s.host_call_json(&s.traced),
                "fresh" => s.host_call_json(&s.fresh),
                "bare" => s.bare_warm(),
                "bare-fresh" => s.bare_fresh(),
                other => panic!(
                    "WARDEN_BENCH_ALONE={other}: use json, traced, fresh, bare or bare-fresh"
                ),
            }
        }
    }
}

fn main() {
    let mut s = Setup::new();
    if let Ok(which) = std::env::var("WARDEN_BENCH_ALONE") {
        return alone(&mut s, &which);
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_figures(&mut c, &mut s);
    c.final_summary();
    interleaved(&mut s);
}

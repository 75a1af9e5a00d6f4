//! What checking a component's signature adds to a host's start: a start
//! with the text plugin signed (Ed25519, `FILE.wasm.sig`) under `[host]
//! require-signatures` against the same start unsigned, both from the warm
//! compiled cache, interleaved in one run. Also the signature check alone.
//! Needs the components (`cargo xtask build-guests`).
//!
//! Run: `cargo bench -p warden --bench provenance`.

use criterion::Criterion;
use std::path::{Path, PathBuf};
use warden::{Config, Host, PluginConfig};
use warden_test_support::components::{component, target_dir};
use warden_test_support::interleave::{interleave, Contender};

fn config(file: &Path, signed: Option<&Path>) -> Config {
    let plugin = PluginConfig::new(file).with_namespaces(&["text", "json"]);
    let mut c = Config::new(".").with_plugin("text", plugin);
    c.host.cache_dir = Some(target_dir().join("warden-bench-cache"));
    if let Some(key) = signed {
        c.host.require_signatures = true;
        c.host.trusted_keys = vec![key.to_path_buf()];
    }
    c
}

fn start(rt: &tokio::runtime::Runtime, c: &Config) {
    rt.block_on(async {
        let host = Host::new(c.clone()).await.expect("host loads");
        assert!(host.refused_plugins().is_empty());
        host.shutdown().await;
    });
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = warden::audit::signing::SigningKey::generate();
    let key: PathBuf = dir.path().join("dev.pub");
    std::fs::write(&key, public).unwrap();
    let unsigned = dir.path().join("plain.wasm");
    let signed = dir.path().join("signed.wasm");
    std::fs::copy(component("text"), &unsigned).unwrap();
    std::fs::copy(component("text"), &signed).unwrap();
    let bytes = std::fs::read(&signed).unwrap();
    let (sig, _) = warden::provenance::sign(&private, &bytes).unwrap();
    std::fs::write(warden::provenance::signature_path(&signed), sig).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain_config = config(&unsigned, None);
    let signed_config = config(&signed, Some(&key));
    // Warm the compiled cache for both (same bytes, one entry).
    start(&rt, &plain_config);
    start(&rt, &signed_config);
    let keys = [warden::provenance::PublicKey::read(&key).unwrap()];

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("host start, text plugin, warm cache");
    group.sample_size(20);
    group.bench_function("unsigned", |b| b.iter(|| start(&rt, &plain_config)));
    group.bench_function("signed, require-signatures", |b| {
        b.iter(|| start(&rt, &signed_config))
    });
    group.finish();
    c.bench_function("signature check alone (text.wasm, Ed25519)", |b| {
        b.iter(|| warden::provenance::verify(&signed, &bytes, &keys, true).unwrap())
    });
    c.final_summary();
    let measured = interleave(
        "host start: signed and required against unsigned",
        20,
        5,
        &mut [
            Contender::new("unsigned", || start(&rt, &plain_config)),
            Contender::new("signed, require-signatures", || start(&rt, &signed_config)),
        ],
    );
    println!(
        "interleaved: the signature check adds {:.2} ms per start",
        (measured[1].mean - measured[0].mean) * 1e3
    );
}

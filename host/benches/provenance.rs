//! What provenance adds to a host's start, all from the warm compiled
//! cache and interleaved in one run: the text plugin from a local file
//! unsigned; the same signed (Ed25519, `FILE.wasm.sig`) under `[host]
//! require-signatures`; pulled by digest from the content store with its
//! cosign signature (a real `docker-registry` on 127.0.0.1 pushed to once);
//! and by tag, which asks the registry for the manifest and signatures at
//! every start. Also the signature check alone. Needs the components
//! (`cargo xtask build-guests`) and Debian's docker-registry.
//!
//! Run: `cargo bench -p warden --bench provenance`.

use criterion::Criterion;
use std::path::{Path, PathBuf};
use warden::{Config, Host, PluginConfig};
use warden_test_support::components::{component, target_dir};
use warden_test_support::interleave::{interleave, Contender};

fn config(file: &Path, signed: Option<&Path>) -> Config {
    let plugin = PluginConfig::new(file).with_namespaces(&["text", "json"]);
    config_with(plugin, signed)
}

fn config_with(plugin: PluginConfig, signed: Option<&Path>) -> Config {
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
    let registry = warden_test_support::registry::OciRegistry::plain();
    let (by_digest, by_tag) = rt.block_on(publish(&registry, &private, &bytes));
    let pulled = |source: &str| {
        let plugin = PluginConfig::new(source).with_namespaces(&["text", "json"]);
        let mut c = config_with(plugin, Some(&key));
        c.host.insecure_registries = vec![registry.host()];
        c
    };
    let (store_config, tag_config) = (pulled(&by_digest), pulled(&by_tag));
    // Warm the compiled cache (same bytes, one entry) and the content store.
    for c in [&plain_config, &signed_config, &tag_config, &store_config] {
        start(&rt, c);
    }
    let keys = [warden::provenance::PublicKey::read(&key).unwrap()];

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("host start, text plugin, warm cache");
    group.sample_size(20);
    group.bench_function("unsigned", |b| b.iter(|| start(&rt, &plain_config)));
    group.bench_function("signed, require-signatures", |b| {
        b.iter(|| start(&rt, &signed_config))
    });
    group.bench_function("content store by digest, cosign-signed", |b| {
        b.iter(|| start(&rt, &store_config))
    });
    group.bench_function("registry by tag, cosign-signed", |b| {
        b.iter(|| start(&rt, &tag_config))
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
            Contender::new("content store by digest, cosign-signed", || {
                start(&rt, &store_config)
            }),
            Contender::new("registry by tag, cosign-signed", || start(&rt, &tag_config)),
        ],
    );
    let over = |i: usize| (measured[i].mean - measured[0].mean) * 1e3;
    println!(
        "interleaved, over a start from a local unsigned file: the signature check adds {:.2} ms; the content store with its cosign signature {:.2} ms; the registry by tag {:.2} ms",
        over(1),
        over(2),
        over(3)
    );
}

/// Pushes `bytes` to `registry` and signs them (cosign layout); the
/// references by digest and by tag.
async fn publish(
    registry: &warden_test_support::registry::OciRegistry,
    private: &str,
    bytes: &[u8],
) -> (String, String) {
    use warden::oci::{OciRef, Registries};
    let tag = registry.reference("bench/text:1");
    let r = OciRef::parse(&tag).unwrap();
    let mut c = Config::new(".");
    c.host.insecure_registries = vec![registry.host()];
    let registries = Registries::from_config(&c).unwrap();
    let digest = registries.push(&r, bytes).await.unwrap();
    let payload = warden::oci::signature_payload(&r, &digest);
    let (signature, _) = warden::provenance::sign(private, &payload).unwrap();
    let sig = warden::oci::CosignSignature { payload, signature };
    warden::oci::push_signature(&registries, &r, &digest, &sig)
        .await
        .unwrap();
    (r.at_digest(&digest).to_string(), tag)
}

//! Components from a real OCI registry (Debian's `docker-registry`): pushed
//! by Warden and by an independent client (Python `oras`), over plain HTTP
//! (`insecure-registries`) and over TLS with a CA made here and htpasswd
//! logins, loaded by tag and by digest; each failure named; a registry that
//! is down served from the content store; cosign signatures in the
//! registry verified, and what does not verify refused with its reason.

use crate::util::{component, config, with_audit};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use warden::config::SecretSource;
use warden::oci::{OciRef, Registries};
use warden::{Config, Host, PluginConfig, RegistrySettings};
use warden_test_support::registry::{OciRegistry, PASSWORD, USER};
use warden_test_support::{python, repo_file};

fn plain() -> &'static OciRegistry {
    static R: OnceLock<OciRegistry> = OnceLock::new();
    R.get_or_init(OciRegistry::plain)
}

fn tls() -> &'static OciRegistry {
    static R: OnceLock<OciRegistry> = OnceLock::new();
    R.get_or_init(OciRegistry::tls)
}

/// A configuration in `dir` that reaches `registry` as it needs: plain
/// HTTP, or its CA and the login (password from a `[secrets]` file).
fn reaching(dir: &Path, registry: &OciRegistry, password: &str) -> Config {
    let mut c = config(dir);
    if registry.is_tls() {
        std::fs::write(dir.join("registry.pass"), password).unwrap();
        c.secrets.insert(
            "REGISTRY".into(),
            SecretSource {
                file: Some(dir.join("registry.pass")),
                ..Default::default()
            },
        );
        c.host.registries.insert(
            registry.host(),
            RegistrySettings {
                ca: Some(registry.ca()),
                username: Some(USER.into()),
                password_secret: Some("REGISTRY".into()),
            },
        );
    } else {
        c.host.insecure_registries.push(registry.host());
    }
    c
}

/// Runs `tests/sign/oras_cosign.py` against `registry`.
fn oras(registry: &OciRegistry, args: &[&str]) {
    let mut cmd = Command::new(python());
    cmd.arg(repo_file("tests/sign/oras_cosign.py"));
    if registry.is_tls() {
        cmd.arg("--ca").arg(registry.ca());
        cmd.args(["--user", USER, "--password", PASSWORD]);
    } else {
        cmd.arg("--insecure");
    }
    let out = cmd.args(args).output().expect("running oras_cosign.py");
    assert!(
        out.status.success(),
        "oras_cosign.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `reference` without its `oci://` (as `oras` takes it).
fn bare(reference: &str) -> &str {
    reference.trim_start_matches("oci://")
}

async fn push_text(c: &Config, reference: &str) -> String {
    let r = OciRef::parse(reference).unwrap();
    let bytes = std::fs::read(component("text")).unwrap();
    Registries::from_config(c)
        .unwrap()
        .push(&r, &bytes)
        .await
        .unwrap()
}

async fn digest_of(c: &Config, reference: &str) -> String {
    let r = OciRef::parse(reference).unwrap();
    Registries::from_config(c)
        .unwrap()
        .resolve(&r)
        .await
        .unwrap()
        .1
}

/// Loads the text plugin from `source` with `c`; the host, and why the
/// plugin was refused (if it was).
async fn load(mut c: Config, source: &str) -> (Host, Option<String>) {
    c = c.with_plugin(
        "text",
        PluginConfig::new(source).with_namespaces(&["text", "json"]),
    );
    let host = Host::new(c).await.expect("the host starts");
    let why = host.refused_plugins().first().map(|(_, w)| w.clone());
    (host, why)
}

async fn loads_and_answers(c: Config, source: &str) {
    let (host, why) = load(c, source).await;
    assert_eq!(why, None, "{source}");
    let out = host
        .call(
            "text.case",
            serde_json::json!({"text": "oci", "to": "upper"}),
        )
        .await
        .unwrap();
    assert_eq!(out, serde_json::json!({"text": "OCI"}));
    let info = &host.plugins()[0];
    assert!(
        info.component.starts_with("oci://") && info.component.contains("@sha256:"),
        "{}",
        info.component
    );
    host.shutdown().await;
}

async fn both_clients_load(registry: &OciRegistry) {
    let tmp = tempfile::tempdir().unwrap();
    let c = reaching(tmp.path(), registry, PASSWORD);
    let ours = registry.reference("warden/text:v1");
    let digest = push_text(&c, &ours).await;
    let theirs = registry.reference("oras/text:v1");
    oras(
        registry,
        &[
            "push-wasm",
            bare(&theirs),
            component("text").to_str().unwrap(),
        ],
    );
    for tag in [&ours, &theirs] {
        loads_and_answers(c.clone(), tag).await;
        let pinned = format!(
            "{}@{}",
            tag.rsplit_once(':').unwrap().0,
            digest_of(&c, tag).await
        );
        loads_and_answers(c.clone(), &pinned).await;
    }
    assert_eq!(digest, digest_of(&c, &ours).await);
}

#[tokio::test]
async fn components_pushed_by_warden_and_by_oras_load_by_tag_and_digest_over_http() {
    both_clients_load(plain()).await;
}

#[tokio::test]
async fn components_pushed_by_warden_and_by_oras_load_by_tag_and_digest_over_tls() {
    both_clients_load(tls()).await;
}

#[tokio::test]
async fn each_registry_failure_names_what_and_where() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let c = reaching(d, tls(), PASSWORD);
    let good = tls().reference("fail/text:v1");
    push_text(&c, &good).await;
    let host = tls().host();
    let missing = format!(
        "{}@sha256:{}",
        good.rsplit_once(':').unwrap().0,
        "0".repeat(64)
    );
    let other = tls().reference("fail/other:v1");
    let data = d.join("data.tar");
    std::fs::write(&data, b"not a component").unwrap();
    oras(tls(), &["push-other", bare(&other), data.to_str().unwrap()]);
    std::fs::create_dir(d.join("wrong")).unwrap();
    let cases: Vec<(Config, String, Vec<String>)> = vec![
        (
            c.clone(),
            missing.clone(),
            vec![missing.clone(), "was not found".into(), host.clone()],
        ),
        (
            c.clone(),
            tls().reference("fail/text:nope"),
            vec!["fail/text:nope".into(), "was not found".into()],
        ),
        (
            reaching(&d.join("wrong"), tls(), "wrong-password"),
            good.clone(),
            vec![
                format!("registry {host} refused access"),
                "fail/text:v1".into(),
            ],
        ),
        (
            c.clone(),
            other.clone(),
            vec![
                "not a Wasm component artifact".into(),
                "fail/other:v1".into(),
            ],
        ),
        // Without the CA the registry's certificate is not trusted.
        (
            {
                let mut n = c.clone();
                n.host.registries.get_mut(&host).unwrap().ca = None;
                n
            },
            good.clone(),
            vec![
                format!("registry {host} is unreachable"),
                "certificate".into(),
            ],
        ),
    ];
    for (c, source, expected) in cases {
        let (h, why) = load(c, &source).await;
        let why = why.unwrap_or_else(|| panic!("{source} loaded"));
        for e in &expected {
            assert!(why.contains(e.as_str()), "{source}: `{e}` not in: {why}");
        }
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_registry_that_is_down_is_served_from_the_store_when_it_can_be() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = reaching(d, plain(), "");
    c.host.cache_dir = Some(d.join("cache"));
    let registry = OciRegistry::plain();
    c.host.insecure_registries.push(registry.host());
    let tag = registry.reference("down/text:v1");
    push_text(&c, &tag).await;
    loads_and_answers(c.clone(), &tag).await;
    let never = registry.reference("down/text:never-pulled");
    drop(registry);
    // The stored digest stands in, and the plugin serves.
    loads_and_answers(c.clone(), &tag).await;
    let (h, why) = load(c.clone(), &never).await;
    let why = why.expect("refused");
    assert!(
        why.contains("is unreachable") && why.contains("no digest") && why.contains("never-pulled"),
        "{why}"
    );
    h.shutdown().await;
}

/// Signs manifest `digest` of `r` with the PEM key at `key` (Warden's
/// signer) and adds the signature to the registry.
async fn sign_in_registry(registries: &Registries, r: &OciRef, digest: &str, key: &Path) {
    let pem = std::fs::read_to_string(key).unwrap();
    let payload = warden::oci::signature_payload(r, digest);
    let (signature, _) = warden::provenance::sign(&pem, &payload).unwrap();
    let sig = warden::oci::CosignSignature { payload, signature };
    warden::oci::push_signature(registries, r, digest, &sig)
        .await
        .unwrap();
}

/// Writes `lock` with every plugin of `c` as it loads now.
async fn lock_as_loaded(c: Config, lock: &Path) {
    let host = Host::new(c).await.unwrap();
    let locked = warden::lock::Lockfile {
        version: warden::lock::LOCK_VERSION,
        plugins: host.lock_entries(),
    };
    host.shutdown().await;
    locked.write(lock).unwrap();
}

/// Keys made by Python `cryptography` (`tests/sign/cosign_blob.py`).
fn keygen(dir: &Path, alg: &str, name: &str) -> PathBuf {
    let ok = Command::new(python())
        .arg(repo_file("tests/sign/cosign_blob.py"))
        .args(["keygen", alg, name])
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    dir.join(format!("{name}.pub"))
}

/// Loads `source` under `require-signatures`, trusting `keys`.
async fn signed_load(c: &Config, source: &str, keys: &[PathBuf]) -> (Host, Option<String>) {
    let mut c = c.clone();
    c.host.require_signatures = true;
    c.host.trusted_keys = keys.to_vec();
    load(c, source).await
}

#[tokio::test]
async fn registry_signatures_by_either_implementation_verify_and_others_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let c = reaching(d, plain(), "");
    let p256 = keygen(d, "p256", "p256");
    let ed = keygen(d, "ed25519", "ed");
    let stranger = keygen(d, "p256", "stranger");
    // P-256 signed by Python (cryptography + oras); Ed25519 by Warden.
    let by_python = plain().reference("signed/python:v1");
    let digest = push_text(&c, &by_python).await;
    oras(
        plain(),
        &[
            "sign",
            bare(&by_python),
            &digest,
            d.join("p256.key").to_str().unwrap(),
        ],
    );
    let by_warden = plain().reference("signed/warden:v1");
    let digest_w = push_text(&c, &by_warden).await;
    let r = OciRef::parse(&by_warden).unwrap();
    let registries = Registries::from_config(&c).unwrap();
    sign_in_registry(&registries, &r, &digest_w, &d.join("ed.key")).await;
    for (source, key, id) in [(&by_python, &p256, "p256:"), (&by_warden, &ed, "ed25519:")] {
        let (audited, audit) = with_audit(c.clone(), d);
        let (host, why) = signed_load(&audited, source, std::slice::from_ref(key)).await;
        assert_eq!(why, None, "{source}");
        host.shutdown().await;
        drop(host);
        let log = std::fs::read_to_string(&audit).unwrap();
        assert!(
            log.lines().any(
                |l| l.contains("\"effect\":\"load\"") && l.contains(&format!("signed by {id}"))
            ),
            "{log}"
        );
        std::fs::remove_file(&audit).unwrap();
    }
    // What must be refused, each with its reason.
    let unsigned = plain().reference("signed/none:v1");
    push_text(&c, &unsigned).await;
    let other_digest = plain().reference("signed/other:v1");
    let d_other = push_text(&c, &other_digest).await;
    let elsewhere = format!("sha256:{}", "1".repeat(64));
    oras(
        plain(),
        &[
            "sign-other",
            bare(&other_digest),
            &d_other,
            &elsewhere,
            d.join("p256.key").to_str().unwrap(),
        ],
    );
    let tampered = plain().reference("signed/tampered:v1");
    let d_tampered = push_text(&c, &tampered).await;
    oras(
        plain(),
        &[
            "tamper",
            bare(&tampered),
            &d_tampered,
            d.join("p256.key").to_str().unwrap(),
        ],
    );
    for (source, keys, reason) in [
        (&unsigned, vec![p256.clone()], "is not signed"),
        (&other_digest, vec![p256.clone()], "signs another digest"),
        (
            &tampered,
            vec![p256.clone()],
            "not this key's over the payload",
        ),
        (&by_python, vec![stranger.clone()], "stranger.pub"),
    ] {
        let (host, why) = signed_load(&c, source, &keys).await;
        let why = why.unwrap_or_else(|| panic!("{source} loaded"));
        assert!(
            why.contains(reason) && why.contains("sha256:"),
            "{source}: {why}"
        );
        host.shutdown().await;
    }
}

#[tokio::test]
async fn a_moved_tag_that_asks_for_more_keeps_serving_the_locked_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = reaching(d, plain(), "");
    c.host.lockfile = Some(d.join("warden.lock"));
    let tag = plain().reference("moving/p:stable");
    let r = OciRef::parse(&tag).unwrap();
    let registries = Registries::from_config(&c).unwrap();
    let hello = std::fs::read(component("hello")).unwrap();
    let first = registries.push(&r, &hello).await.unwrap();
    let plugin = PluginConfig::new(&tag).with_namespaces(&["hello", "files"]);
    lock_as_loaded(
        c.clone().with_plugin("p", plugin.clone()),
        &d.join("warden.lock"),
    )
    .await;
    // The tag moves to a version declaring other capabilities.
    let files = std::fs::read(component("files")).unwrap();
    registries.push(&r, &files).await.unwrap();
    let host = Host::new(c.clone().with_plugin("p", plugin.clone()))
        .await
        .unwrap();
    let (name, why) = host.held_updates().first().expect("held back").clone();
    assert_eq!(name, "p");
    assert!(
        why.contains("capabilities added: files.") && why.contains("lock --accept p"),
        "{why}"
    );
    assert!(
        host.refused_plugins().is_empty(),
        "{:?}",
        host.refused_plugins()
    );
    assert!(
        host.plugins()[0].component.ends_with(&first),
        "{}",
        host.plugins()[0].component
    );
    let out = host
        .call("hello.greet", serde_json::json!({"name": "Ada"}))
        .await
        .unwrap();
    assert!(out.to_string().contains("Ada"), "{out}");
    host.shutdown().await;
    // `accept` lets the new version in.
    c.host.on_update = warden::lock::OnUpdate::Accept;
    let host = Host::new(c.with_plugin("p", plugin)).await.unwrap();
    assert!(host.held_updates().is_empty());
    assert!(host
        .capabilities()
        .iter()
        .any(|c| c.id.starts_with("files.")));
    host.shutdown().await;
}

#[tokio::test]
async fn an_unsigned_version_under_a_locked_tag_leaves_the_signed_one_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = reaching(d, plain(), "");
    c.host.lockfile = Some(d.join("warden.lock"));
    c.host.require_signatures = true;
    c.host.trusted_keys = vec![keygen(d, "ed25519", "publisher")];
    let tag = plain().reference("unsigned/p:stable");
    let r = OciRef::parse(&tag).unwrap();
    let registries = Registries::from_config(&c).unwrap();
    let signed = registries
        .push(&r, &std::fs::read(component("hello")).unwrap())
        .await
        .unwrap();
    sign_in_registry(&registries, &r, &signed, &d.join("publisher.key")).await;
    let plugin = PluginConfig::new(&tag).with_namespaces(&["hello", "text", "json"]);
    lock_as_loaded(
        c.clone().with_plugin("p", plugin.clone()),
        &d.join("warden.lock"),
    )
    .await;
    // An unsigned version takes the tag: refused, the signed one serves.
    registries
        .push(&r, &std::fs::read(component("text")).unwrap())
        .await
        .unwrap();
    let (audited, audit) = with_audit(c.with_plugin("p", plugin), d);
    let host = Host::new(audited).await.unwrap();
    let (_, why) = host.held_updates().first().expect("held back").clone();
    assert!(why.contains("is not signed"), "{why}");
    assert!(host.plugins()[0].component.ends_with(&signed));
    host.call("hello.greet", serde_json::json!({"name": "Ada"}))
        .await
        .unwrap();
    host.shutdown().await;
    drop(host);
    let log = std::fs::read_to_string(audit).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"decision\":\"deny\"") && l.contains("is not signed")),
        "{log}"
    );
}

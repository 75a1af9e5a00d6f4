//! Signed components: detached signatures in the `cosign sign-blob` layout,
//! made by an independent implementation (Python `cryptography`,
//! `tests/sign/cosign_blob.py`) with ECDSA P-256 and Ed25519 keys, verified
//! at load and audited with the signer's key id; what does not verify is
//! refused with its reason.

use crate::util::{component, config, with_audit};
use std::path::{Path, PathBuf};
use std::process::Command;
use warden::{Config, Host, PluginConfig, VerifySettings};
use warden_test_support::{python, repo_file};

fn cosign(args: &[&str], dir: &Path) -> bool {
    Command::new(python())
        .arg(repo_file("tests/sign/cosign_blob.py"))
        .args(args)
        .current_dir(dir)
        .status()
        .expect("running cosign_blob.py")
        .success()
}

/// A copy of the text plugin in `dir`, as `name`.
fn text_copy(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(component("text"), &path).unwrap();
    path
}

fn with_text(dir: &Path, file: &Path, tune: impl FnOnce(&mut Config, &mut PluginConfig)) -> Config {
    let mut c = config(dir);
    let mut p = PluginConfig::new(file).with_namespaces(&["text", "json"]);
    tune(&mut c, &mut p);
    c.with_plugin("text", p)
}

#[tokio::test]
async fn components_signed_with_p256_and_ed25519_by_another_implementation_load() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for alg in ["p256", "ed25519"] {
        assert!(cosign(&["keygen", alg, alg], d));
        let file = text_copy(d, &format!("text-{alg}.wasm"));
        assert!(cosign(
            &["sign", &format!("{alg}.key"), file.to_str().unwrap()],
            d
        ));
        let c = with_text(d, &file, |_, p| {
            p.verify = Some(VerifySettings {
                keys: vec![format!("{alg}.pub").into()],
            });
        });
        let (c, audit) = with_audit(c, d);
        let host = Host::new(c).await.expect("host loads");
        assert!(
            host.refused_plugins().is_empty(),
            "{:?}",
            host.refused_plugins()
        );
        host.call(
            "text.case",
            serde_json::json!({"text": "ok", "to": "upper"}),
        )
        .await
        .unwrap();
        host.shutdown().await;
        drop(host);
        let log = std::fs::read_to_string(&audit).unwrap();
        let signed = log
            .lines()
            .find(|l| l.contains("\"effect\":\"load\"") && l.contains("signed by"))
            .unwrap_or_else(|| panic!("no load record names the signer: {log}"));
        assert!(signed.contains(&format!("signed by {alg}:")), "{signed}");
        std::fs::remove_file(&audit).unwrap();
    }
    // The other way: what `warden sign` writes verifies with cryptography.
    let file = text_copy(d, "text-ours.wasm");
    let pem = std::fs::read_to_string(d.join("p256.key")).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let (sig, _) = warden::provenance::sign(&pem, &bytes).unwrap();
    std::fs::write(warden::provenance::signature_path(&file), sig).unwrap();
    assert!(cosign(&["verify", "p256.pub", file.to_str().unwrap()], d));
}

/// Loads `file` under `require-signatures` trusting `keys`; the reason the
/// plugin was refused (none if it loaded).
async fn refusal(dir: &Path, file: &Path, keys: &[&str]) -> Option<String> {
    let c = with_text(dir, file, |c, _| {
        c.host.require_signatures = true;
        c.host.trusted_keys = keys.iter().map(PathBuf::from).collect();
    });
    let host = Host::new(c)
        .await
        .expect("the host starts; the plugin may be refused");
    let why = host.refused_plugins().first().map(|(_, why)| why.clone());
    host.shutdown().await;
    why
}

#[tokio::test]
async fn what_does_not_verify_is_refused_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert!(cosign(&["keygen", "ed25519", "good"], d));
    assert!(cosign(&["keygen", "p256", "stranger"], d));
    let signed = text_copy(d, "signed.wasm");
    assert!(cosign(&["sign", "good.key", "signed.wasm"], d));
    assert_eq!(refusal(d, &signed, &["good.pub"]).await, None);

    // A signature over another component's bytes.
    let other = d.join("other.wasm");
    std::fs::copy(component("http"), &other).unwrap();
    assert!(cosign(&["sign", "good.key", "other.wasm"], d));
    std::fs::copy(d.join("other.wasm.sig"), d.join("swapped.wasm.sig")).unwrap();
    let swapped = text_copy(d, "swapped.wasm");
    let why = refusal(d, &swapped, &["good.pub"]).await.expect("refused");
    let digest = warden::digest(&std::fs::read(&swapped).unwrap());
    assert!(
        why.contains("verifies with no trusted key") && why.contains(&digest),
        "{why}"
    );
    assert!(why.contains("good.pub"), "the keys tried are named: {why}");

    // The component changed after it was signed (one byte).
    let tampered = text_copy(d, "tampered.wasm");
    std::fs::copy(d.join("signed.wasm.sig"), d.join("tampered.wasm.sig")).unwrap();
    let mut bytes = std::fs::read(&tampered).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&tampered, &bytes).unwrap();
    let why = refusal(d, &tampered, &["good.pub"]).await.expect("refused");
    assert!(why.contains("verifies with no trusted key"), "{why}");

    // Signed, but by a key nobody trusts.
    let why = refusal(d, &signed, &["stranger.pub"])
        .await
        .expect("refused");
    assert!(
        why.contains("stranger.pub") && why.contains("p256:"),
        "{why}"
    );

    // Not signed at all.
    let unsigned = text_copy(d, "unsigned.wasm");
    let why = refusal(d, &unsigned, &["good.pub"]).await.expect("refused");
    assert!(
        why.contains("not signed") && why.contains("unsigned.wasm.sig"),
        "{why}"
    );

    // Without require-signatures an unsigned component loads, and a bad
    // signature is still refused.
    let c = with_text(d, &unsigned, |_, _| {});
    let host = Host::new(c).await.unwrap();
    assert!(host.refused_plugins().is_empty());
    host.shutdown().await;
    let c = with_text(d, &tampered, |c, _| {
        c.host.trusted_keys = vec!["good.pub".into()]
    });
    let host = Host::new(c).await.unwrap();
    assert_eq!(host.refused_plugins().len(), 1);
    host.shutdown().await;

    // A key file that is not a key is a clear error.
    std::fs::write(d.join("junk.pub"), "hello").unwrap();
    let why = refusal(d, &signed, &["junk.pub"]).await.expect("refused");
    assert!(
        why.contains("junk.pub") && why.contains("PUBLIC KEY"),
        "{why}"
    );
}

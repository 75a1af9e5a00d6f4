//! Results signed by the host (`[serve] attest-results`): a tool result
//! carries an attestation that `warden audit verify-result` checks offline,
//! against the public key and against the signed audit log, and that fails
//! once one byte of the output changes.

use crate::util::*;
use serde_json::{json, Value};
use std::process::Command;

fn warden(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(warden_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running warden");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn an_attested_result_verifies_offline_and_in_the_log_until_a_byte_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(warden(d, &["audit", "keygen", "host"]).0);
    let config = format!(
        "{}signing-key = {{ file = \"host.key\" }}\n[serve]\nattest-results = true\n",
        base_config(d)
    );
    let mut serve = Serve::start(d, &config, &[]);
    let args = json!({"text": "attest me", "to": "upper"});
    let (status, m) = modern(
        serve.port,
        1,
        "tools/call",
        json!({"name": "text.case", "arguments": args}),
        &[],
    );
    assert_eq!(status, 200, "{m}");
    let attestation = &m["result"]["_meta"]["dev.warden/attestation"];
    assert_eq!(attestation["capability"], "text.case", "{m}");
    assert!(attestation["key"].as_str().unwrap().starts_with("ed25519:"));
    std::fs::write(d.join("result.json"), m.to_string()).unwrap();
    std::fs::write(d.join("args.json"), args.to_string()).unwrap();
    let (ok, out) = warden(
        d,
        &[
            "audit",
            "verify-result",
            "result.json",
            "--key",
            "host.pub",
            "--input",
            "args.json",
        ],
    );
    assert!(ok && out.contains("OK: call"), "{out}");
    // Once the host has stopped, its closing checkpoint covers the call.
    assert!(serve.signal_and_wait("TERM").success());
    let (ok, out) = warden(
        d,
        &[
            "audit",
            "verify-result",
            "result.json",
            "--key",
            "host.pub",
            "--log",
            "audit.jsonl",
        ],
    );
    assert!(ok && out.contains("under a signed checkpoint"), "{out}");

    // One byte of the output changed.
    let mut forged: Value = m.clone();
    forged["result"]["structuredContent"]["text"] = json!("ATTEST ME!");
    std::fs::write(d.join("forged.json"), forged.to_string()).unwrap();
    let (ok, out) = warden(
        d,
        &["audit", "verify-result", "forged.json", "--key", "host.pub"],
    );
    assert!(!ok && out.contains("not the one signed"), "{out}");
    // Other arguments than those signed.
    std::fs::write(
        d.join("args.json"),
        json!({"text": "attest me", "to": "lower"}).to_string(),
    )
    .unwrap();
    let (ok, out) = warden(
        d,
        &[
            "audit",
            "verify-result",
            "result.json",
            "--key",
            "host.pub",
            "--input",
            "args.json",
        ],
    );
    assert!(!ok && out.contains("input"), "{out}");

    // attest-results without a signing key is a configuration error.
    std::fs::write(
        d.join("bad.toml"),
        format!("{}[serve]\nattest-results = true\n", base_config(d)),
    )
    .unwrap();
    let (ok, out) = warden(
        d,
        &["--config", "bad.toml", "serve", "--http", "127.0.0.1:0"],
    );
    assert!(
        !ok && out.contains("attest-results") && out.contains("signing-key"),
        "{out}"
    );
}

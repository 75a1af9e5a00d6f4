//! A host that signs its audit log: `warden audit keygen`, checkpoints
//! written by real `warden call` runs, and `warden audit verify --key`
//! catching a cut-off log, another key and a bad key file; and `warden
//! sign` making a signature a host verifies at load.

use std::path::Path;
use std::process::{Command, Output};
use warden_test_support::components::{component, target_dir};

fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(args)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .env_remove("RUST_LOG")
        .output()
        .expect("running warden")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_signed_log_verifies_and_a_cut_or_foreign_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = warden(d, &["audit", "keygen", "host"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ed25519:"), "{}", text(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("host.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the private key is its owner's alone");
    }
    // A second keygen never overwrites the key.
    let o = warden(d, &["audit", "keygen", "host"]);
    assert!(
        !o.status.success() && text(&o).contains("never overwritten"),
        "{}",
        text(&o)
    );

    std::fs::write(
        d.join("warden.toml"),
        format!(
            "[plugins.text]\ncomponent = {:?}\nnamespaces = [\"text\", \"json\"]\n\
             [audit]\npath = \"audit.jsonl\"\nsigning-key = {{ file = \"host.key\" }}\ncheckpoint-records = 2\n",
            component("text").display().to_string()
        ),
    )
    .unwrap();
    for word in ["one", "two", "three"] {
        let input = format!("{{\"text\": \"{word}\", \"to\": \"upper\"}}");
        let o = warden(d, &["call", "text.case", &input]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let verify = |key: &str, extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--key", key];
        args.extend_from_slice(extra);
        args.push("audit.jsonl");
        warden(d, &args)
    };
    let o = verify("host.pub", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("closing checkpoint"), "{}", text(&o));

    // Cut after a checkpoint: the chain is whole, the close is missing.
    let log = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let last_periodic = lines
        .iter()
        .rposition(|l| {
            l.contains("\"effect\":\"checkpoint\"") && l.contains("\"reason\":\"records ")
        })
        .expect("a checkpoint by count");
    let cut: String = lines[..=last_periodic]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("audit.jsonl"), cut).unwrap();
    let o = warden(d, &["audit", "verify", "audit.jsonl"]);
    assert!(
        o.status.success(),
        "the plain chain is intact: {}",
        text(&o)
    );
    let o = verify("host.pub", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cut off"), "{}", text(&o));
    let o = verify("host.pub", &["--live"]);
    assert!(o.status.success(), "{}", text(&o));

    // Another host's key.
    let o = warden(d, &["audit", "keygen", "other"]);
    assert!(o.status.success());
    let o = verify("other.pub", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("signed by key"), "{}", text(&o));
    // Not a public key at all.
    let o = verify("host.key", &[]);
    assert!(
        !o.status.success() && text(&o).contains("PUBLIC KEY"),
        "{}",
        text(&o)
    );
}

#[test]
fn warden_sign_writes_a_signature_the_host_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(warden(d, &["audit", "keygen", "dev"]).status.success());
    std::fs::copy(component("text"), d.join("text.wasm")).unwrap();
    let o = warden(d, &["sign", "text.wasm", "--key", "dev.key"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ed25519:") && d.join("text.wasm.sig").exists(),
        "{}",
        text(&o)
    );
    let config = "[host]\nrequire-signatures = true\ntrusted-keys = [\"dev.pub\"]\n\
                  [plugins.text]\ncomponent = \"text.wasm\"\nnamespaces = [\"text\", \"json\"]\n";
    std::fs::write(d.join("warden.toml"), config).unwrap();
    let o = warden(d, &["list"]);
    assert!(
        o.status.success() && text(&o).contains("text.case"),
        "{}",
        text(&o)
    );
    // A public key is not a signing key.
    let o = warden(d, &["sign", "text.wasm", "--key", "dev.pub"]);
    assert!(
        !o.status.success() && text(&o).contains("PRIVATE KEY"),
        "{}",
        text(&o)
    );
}

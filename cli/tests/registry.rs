//! `warden push`, `warden pull` and `warden sign oci://…` against a real
//! registry (Debian's `docker-registry` over TLS with a login, from test
//! support): what is pushed pulls back byte for byte, a signature pushed
//! by `warden sign` lets the component load under `require-signatures`,
//! and each failure names the reference and registry.

use std::path::Path;
use std::process::{Command, Output};
use warden_test_support::components::component;
use warden_test_support::registry::{OciRegistry, PASSWORD, USER};

fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(args)
        .env("WARDEN_CACHE_DIR", dir.join("cache"))
        .env("DOCKER_CONFIG", dir.join("docker"))
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

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn push_pull_and_sign_round_trip_through_a_tls_registry() {
    let registry = OciRegistry::tls();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let host = registry.host();
    // Credentials from Docker's config.json; the CA from the config.
    std::fs::create_dir(d.join("docker")).unwrap();
    let auth = base64_basic(USER, PASSWORD);
    std::fs::write(
        d.join("docker/config.json"),
        format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{auth}\"}}}}}}"),
    )
    .unwrap();
    let host_table = |extra: &str| {
        format!(
            "[host]\ncache-dir = \"{}\"\n{extra}[host.registries.\"{host}\"]\nca = \"{}\"\n",
            d.join("cache").display(),
            registry.ca().display()
        )
    };
    let base = host_table("");
    std::fs::write(d.join("warden.toml"), &base).unwrap();
    let tag = registry.reference("cli/text:1.0");
    let pushed = ok(warden(
        d,
        &["push", component("text").to_str().unwrap(), &tag],
    ));
    let pinned = pushed.trim();
    assert!(pinned.starts_with(&format!("{tag}@sha256:")), "{pinned}");
    let pulled = ok(warden(d, &["pull", pinned, "-o", "out.wasm"]));
    assert_eq!(pulled.trim(), pinned);
    assert_eq!(
        std::fs::read(d.join("out.wasm")).unwrap(),
        std::fs::read(component("text")).unwrap()
    );

    // Signed by `warden sign`, it loads under require-signatures.
    ok(warden(d, &["audit", "keygen", "publisher"]));
    let signed = ok(warden(d, &["sign", &tag, "--key", "publisher.key"]));
    assert!(
        signed.contains(".sig") && signed.contains("ed25519:"),
        "{signed}"
    );
    let config = format!(
        "{}[plugins.text]\ncomponent = \"{tag}\"\nnamespaces = [\"text\", \"json\"]\n",
        host_table("require-signatures = true\ntrusted-keys = [\"publisher.pub\"]\n")
    );
    std::fs::write(d.join("warden.toml"), config).unwrap();
    let called = ok(warden(
        d,
        &["call", "text.case", r#"{"text":"signed","to":"upper"}"#],
    ));
    assert!(called.contains("SIGNED"), "{called}");
    let inspected = ok(warden(d, &["inspect", "text"]));
    assert!(
        inspected.contains(&format!("source      {tag}"))
            && inspected.contains("signed by   ed25519:"),
        "{inspected}"
    );
    let listed = ok(warden(d, &["cache", "list"]));
    assert!(listed.contains("pulled blobs"), "{listed}");
    let cleared = ok(warden(d, &["cache", "clear", "--pulled"]));
    assert!(
        cleared.contains("removed ") && cleared.contains("pulled blobs"),
        "{cleared}"
    );
    assert!(ok(warden(d, &["cache", "list"])).contains(": 0 pulled blobs"));

    // Failures name what and where.
    let missing = registry.reference("cli/text:missing");
    let o = warden(d, &["pull", &missing]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cli/text:missing")
            && text(&o).contains("was not found")
            && text(&o).contains(&host),
        "{}",
        text(&o)
    );
    std::fs::write(d.join("docker/config.json"), "{\"auths\": {}}").unwrap();
    let o = warden(d, &["pull", &tag]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("refused access") && text(&o).contains(&host),
        "{}",
        text(&o)
    );
    let o = warden(d, &["push", "warden.toml", &tag]);
    assert!(
        !o.status.success() && text(&o).contains("not a WebAssembly file"),
        "{}",
        text(&o)
    );
}

/// `user:password` in base64, as Docker's config.json keeps it (by
/// coreutils' `base64`).
fn base64_basic(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running base64");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{user}:{password}").as_bytes())
        .unwrap();
    drop(stdin);
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

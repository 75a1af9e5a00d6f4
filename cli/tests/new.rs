//! `warden new NAME --lang rust|python|js`: what it writes builds with that
//! language's toolchain (the ones `cargo xtask test` installs) and loads; the
//! plugin answers its call, keeps its configuration and returns typed errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use warden_test_support::components::target_dir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(dir)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .env_remove("RUST_LOG")
        .output()
        .expect("running warden")
}

fn run(cmd: &mut Command, what: &str) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Writes plugin `name` in `lang` under a temporary directory.
fn new_plugin(name: &str, lang: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let o = warden(tmp.path(), &["new", name, "--lang", lang]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = tmp.path().join(name);
    assert!(dir.join("warden.toml").exists());
    (tmp, dir)
}

/// The built plugin loads through its own `warden.toml` and behaves.
fn assert_works(dir: &Path, name: &str) {
    let wasm = format!("{name}.wasm");
    let o = warden(dir, &["check", &wasm]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let id = format!("{name}.echo");
    let o = warden(dir, &["call", &id, r#"{"text":"hi"}"#]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["text"],
        format!("{name}: hi"),
        "its configuration applies"
    );
    let o = warden(dir, &["call", &id, r#"{"text":""}"#]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid input: text is empty"));
}

#[test]
fn a_new_python_plugin_builds_and_loads() {
    let (_tmp, dir) = new_plugin("hello-py", "python");
    run(
        Command::new(dir.join("build.sh"))
            .env("COMPONENTIZE_PY", repo().join(".venv/bin/componentize-py")),
        "build.sh (componentize-py)",
    );
    assert_works(&dir, "hello-py");
}

#[test]
fn a_new_javascript_plugin_builds_and_loads() {
    let (_tmp, dir) = new_plugin("hello-js", "js");
    // ComponentizeJS as `cargo xtask test` installed it for the example
    // (the same version the template asks for), instead of a second download.
    let modules = repo().join("examples/js-plugin/node_modules");
    assert!(
        modules.exists(),
        "run `cargo xtask test` (npm ci in examples/js-plugin)"
    );
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).unwrap();
    run(
        Command::new("node").arg("build.mjs").current_dir(&dir),
        "node build.mjs (ComponentizeJS)",
    );
    assert_works(&dir, "hello-js");
}

#[test]
fn a_new_rust_plugin_builds_and_loads() {
    let (_tmp, dir) = new_plugin("hello-rs", "rust");
    let toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(toml.contains("warden-sdk = { path ="), "{toml}");
    // With rustup's wasm32-wasip2 its build.sh does it; without, the
    // repository's recipe (what this machine has), in a target directory of
    // its own that later runs reuse.
    let xtask = target_dir().join("debug/xtask");
    assert!(xtask.exists(), "run `cargo xtask test` (it builds xtask)");
    run(
        Command::new(&xtask)
            .arg("build-plugin")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("hello-rs.wasm"))
            .env("CARGO_TARGET_DIR", target_dir().join("new-plugin-target"))
            .current_dir(repo()),
        "xtask build-plugin",
    );
    assert_works(&dir, "hello-rs");
}

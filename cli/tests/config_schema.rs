//! `docs/warden.schema.json`, the configuration's JSON Schema for editors:
//! made from the config types (`warden schema config`), kept current, and
//! checked by a real validator (Python's `jsonschema`) against the
//! repository's configurations and their misspellings.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn generated() -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["schema", "config"])
        .output()
        .expect("running warden schema config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let file = repo().join("docs/warden.schema.json");
    let text = std::fs::read_to_string(&file).expect("docs/warden.schema.json");
    let kept: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        kept == generated(),
        "docs/warden.schema.json is stale: run `cargo run -p warden-cli -- schema config > docs/warden.schema.json`"
    );
}

/// Every configuration in the repository validates; the same with an
/// unknown key added to any table (top level, `[host]`, a plugin, its
/// grants, `[limits]`, `[policy]`, `[audit]`, `[serve]`) does not.
#[test]
fn the_schema_accepts_real_configs_and_refuses_unknown_keys() {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask python-env` (or `cargo xtask test`)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, generated().to_string()).unwrap();
    let configs: Vec<PathBuf> = [
        "examples/demo/warden.toml",
        "examples/demo/http.toml",
        "examples/demo/mcp.toml",
        "examples/demo/registry.toml",
        "examples/oauth/warden.toml",
    ]
    .iter()
    .map(|p| repo().join(p))
    .collect();
    let script = r#"
import json, sys, tomllib, copy, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
failures = []
def errors(doc):
    return [e.message for e in validator.iter_errors(doc)]
for path in sys.argv[2:]:
    doc = tomllib.load(open(path, "rb"))
    doc.setdefault("audit", {"path": "audit.jsonl"})
    doc.setdefault("serve", {})
    doc.setdefault("policy", {})
    doc.setdefault("limits", {})
    doc.setdefault("host", {})
    if errors(doc):
        failures.append(f"{path}: {errors(doc)}")
    tables = [("top level", lambda d: d), ("host", lambda d: d["host"]),
              ("limits", lambda d: d["limits"]), ("policy", lambda d: d["policy"]),
              ("audit", lambda d: d["audit"]), ("serve", lambda d: d["serve"])]
    for name in doc.get("plugins", {}):
        tables.append((f"plugins.{name}", lambda d, n=name: d["plugins"][n]))
        tables.append((f"plugins.{name}.grants", lambda d, n=name: d["plugins"][n].setdefault("grants", {})))
    for name, table in tables:
        bad = copy.deepcopy(doc)
        table(bad)["no-such-key"] = 1
        if not any("no-such-key" in m for m in errors(bad)):
            failures.append(f"{path}: an unknown key in {name} passes")
print("\n".join(failures))
sys.exit(1 if failures else 0)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .args(&configs)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

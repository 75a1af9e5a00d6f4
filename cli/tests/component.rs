//! `warden check` (what a component is, before any compile), the compiled
//! cache (`warden cache list|clear`, eviction past `cache-max-bytes`) and the
//! message a first load prints while it compiles.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use warden_test_support::components::component;

fn warden(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .output()
        .expect("running warden")
}

fn check(file: &Path) -> (i32, Value) {
    let cache = tempfile::tempdir().unwrap();
    let o = warden(&["check", file.to_str().unwrap(), "--json"], cache.path());
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap(), report)
}

#[test]
fn check_names_the_world_and_the_imports_without_compiling() {
    // A Rust provider (the SDK), with the HTTP client.
    let (code, r) = check(&component("mcp"));
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["world"], "warden:provider/discovery-plugin@0.1.0");
    let imports: Vec<&str> = r["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        imports.contains(&"warden:provider/http-client@0.1.0"),
        "{r}"
    );
    assert!(r["imports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["links"] == true));

    // A Python provider (componentize-py): WASI 0.2.x imports link.
    let (code, r) = check(&component("python-net"));
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["world"], "warden:provider/plugin@0.1.0");
    assert!(r["imports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"].as_str().unwrap().starts_with("wasi:sockets/")));

    // A JavaScript provider (ComponentizeJS): the engine's own wasi:http
    // imports and the file system its world asks for.
    let (code, r) = check(&component("js-example"));
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["world"], "warden:provider/http-plugin@0.1.0");
    assert!(r["imports"].as_array().unwrap().iter().any(|i| i["name"]
        .as_str()
        .unwrap()
        .starts_with("wasi:filesystem/preopens@0.2")));

    // A component of another world.
    let (code, r) = check(&component("wrong-world"));
    assert_eq!(code, 2, "{r}");
    assert!(r["world"].is_null());
    assert!(r["problems"][0]
        .as_str()
        .unwrap()
        .contains("does not implement the Warden provider contract"));

    // A WASI 0.3 component: named as such, and refused at load before any
    // compile.
    let dir = tempfile::tempdir().unwrap();
    let p3 = dir.path().join("p3.wasm");
    std::fs::write(
        &p3,
        wat::parse_str(
            r#"(component
                (import "wasi:cli/environment@0.3.0" (instance))
                (import "warden:provider/host@0.1.0" (instance))
                (core module $m)
                (core instance (instantiate $m))
            )"#,
        )
        .unwrap(),
    )
    .unwrap();
    let (code, r) = check(&p3);
    assert_eq!(code, 2, "{r}");
    let env = &r["imports"][0];
    assert_eq!(env["links"], false, "{r}");
    assert!(env["why"].as_str().unwrap().contains("WASI 0.3"), "{r}");
    let cfg = dir.path().join("warden.toml");
    std::fs::write(
        &cfg,
        format!("[plugins.p3]\ncomponent = {:?}\n", p3.display().to_string()),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let o = warden(&["--config", cfg.to_str().unwrap(), "list"], &cache);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("WASI 0.3") && err.contains("p3"), "{err}");
    assert!(
        !err.contains("compiling"),
        "refused before compiling: {err}"
    );

    // Not a component at all.
    let (code, r) = check(Path::new(env!("CARGO_BIN_EXE_warden")));
    assert_eq!(code, 2);
    assert!(r["problems"][0]
        .as_str()
        .unwrap()
        .contains("not a WebAssembly file"));
}

#[test]
fn a_first_load_says_it_compiles_and_the_cache_stays_under_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cfg = dir.path().join("warden.toml");
    let text = component("text");
    let http = component("http");
    // Room for one compiled component, not two.
    std::fs::write(
        &cfg,
        format!(
            "[host]\ncache-max-bytes = \"{}\"\n[plugins.text]\ncomponent = {:?}\n",
            // Compiled code is larger than the component; a cap just above
            // one entry holds one.
            "2MiB",
            text.display().to_string()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let o = warden(&["--config", cfg_s, "list"], &cache);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("compiling") && err.contains("MB") && err.contains(&*cache.to_string_lossy()),
        "the first load says what it compiles, how big, and where it is cached: {err}"
    );
    // The second load comes from the cache, silently.
    let o = warden(&["--config", cfg_s, "list"], &cache);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("compiling"));
    let listed = |cache: &Path| -> Value {
        let o = warden(&["--config", cfg_s, "cache", "list", "--json"], cache);
        assert!(o.status.success());
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(listed(&cache)["entries"].as_array().unwrap().len(), 1);

    // A second plugin's compiled code pushes the least recently used out.
    std::fs::write(
        &cfg,
        format!(
            "[host]\ncache-max-bytes = \"2MiB\"\n[plugins.http]\ncomponent = {:?}\n",
            http.display().to_string()
        ),
    )
    .unwrap();
    let first = listed(&cache)["entries"][0]["file"].clone();
    let o = warden(&["--config", cfg_s, "list"], &cache);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains("cannot write the compiled-component cache"),
        "the new entry was written: {err}"
    );
    let after = listed(&cache);
    let entries = after["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{after}\n{err}");
    assert_ne!(
        entries[0]["file"], first,
        "the old entry was evicted: {after}\n{err}"
    );
    assert!(after["bytes"].as_u64().unwrap() <= 2 << 20, "{after}");

    let o = warden(&["--config", cfg_s, "cache", "clear"], &cache);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed 1"));
    assert!(listed(&cache)["entries"].as_array().unwrap().is_empty());
}

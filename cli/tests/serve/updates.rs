//! Updates against `warden.lock`: a new version that declares more and is
//! granted more is held back on reload while the old one keeps serving;
//! `warden diff` names both changes; `warden lock --accept` lets it in; a
//! version that changes nothing declared goes through.

use crate::components::component;
use crate::util::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The config: plugin `p` from `p.wasm` in `dir`, with `grants`.
fn config(dir: &Path, grants: &str) -> String {
    format!(
        "[plugins.p]\ncomponent = \"p.wasm\"\nnamespaces = [\"hello\", \"files\"]\ngrants = {{ {grants} }}\n\n[audit]\npath = \"{}\"\n",
        dir.join("audit.jsonl").display()
    )
}

/// `bytes` with a custom section appended: another digest, the same
/// component.
fn with_custom_section(mut bytes: Vec<u8>) -> Vec<u8> {
    let name = b"warden-test";
    let payload = b"v3";
    bytes.push(0);
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

fn greets(port: u16) -> bool {
    let call = json!({"name": "hello.greet", "arguments": {"name": "Ada"}});
    let (_, m) = modern(port, 2, "tools/call", call, &[]);
    m["result"]["isError"] != true && m["result"].is_object()
}

#[test]
fn a_version_asking_for_more_waits_for_lock_accept_while_the_old_one_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(component("hello"), dir.join("p.wasm")).unwrap();
    let path = dir.join("warden.toml");
    std::fs::write(&path, config(dir, "")).unwrap();
    warden_cli(&path, &["lock"]);
    let lock = std::fs::read_to_string(dir.join("warden.lock")).unwrap();
    assert!(lock.contains("hello.greet"), "{lock}");
    let serve = Serve::start(dir, &config(dir, ""), &["--no-watch"]);
    let p = serve.port;
    assert!(greets(p));

    // v2: another component (new capabilities, new imports) and a new grant.
    std::fs::copy(component("files"), dir.join("p.wasm")).unwrap();
    let dirs = format!(
        "dirs = [{{ host = \"{}\", guest = \"/data\", mode = \"ro\" }}]",
        data.display()
    );
    std::fs::write(&path, config(dir, &dirs)).unwrap();
    let diff = warden_cli(&path, &["diff"]);
    assert!(diff.contains("capabilities added: files."), "{diff}");
    assert!(
        diff.contains("grants newly used: dir ") && diff.contains("/data"),
        "{diff}"
    );
    serve.signal("HUP");
    serve.wait_for_log("reload refused", Duration::from_secs(60));
    assert!(serve.log().contains("lock --accept p"), "{}", serve.log());
    assert!(greets(p), "the old version keeps serving");
    assert!(!tool_names(p).iter().any(|t| t.starts_with("files.")));

    // Accepted: the next reload lets it in.
    let accepted = warden_cli(&path, &["lock", "--accept", "p"]);
    assert!(accepted.contains("locked 1 plugin"), "{accepted}");
    serve.signal("HUP");
    serve.wait_for_log("configuration reloaded", Duration::from_secs(60));
    assert!(tool_names(p).iter().any(|t| t.starts_with("files.")));

    // v3: the same declarations under another digest goes through.
    let bytes = std::fs::read(component("files")).unwrap();
    std::fs::write(dir.join("p.wasm"), with_custom_section(bytes)).unwrap();
    let diff = warden_cli(&path, &["diff"]);
    assert!(diff.contains("nothing declared changed"), "{diff}");
    let reloads = serve.log().matches("configuration reloaded").count();
    serve.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while serve.log().matches("configuration reloaded").count() == reloads {
        assert!(std::time::Instant::now() < deadline, "{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = audit(&dir.join("audit.jsonl"));
    assert!(
        records.iter().any(|r| r["reason"]
            .as_str()
            .is_some_and(|s| s.contains("accepted: nothing declared changed"))),
        "{records:?}"
    );
}

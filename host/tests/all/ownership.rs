//! Registry ownership: a capability id belongs to whoever registered it
//! first. A later claim (another plugin, the configuration, the store, a
//! plugin's background discovery) is refused for that id only, with a
//! warning and an audit record naming both; the host still starts.

use crate::util::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden::audit::SyncPolicy;
use warden::{AuditSettings, Config, Host, Manifest, PluginConfig, ProviderKind};

fn audited(mut c: Config, dir: &Path) -> Config {
    c.audit = Some(AuditSettings {
        path: dir.join("audit.jsonl"),
        sync: SyncPolicy::Flush,
        rotate_bytes: 0,
    });
    c
}

fn register_records(log: &Path) -> Vec<Value> {
    crate::governance::records(log)
        .into_iter()
        .filter(|r| r.effect == "register")
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

fn manifest(id: &str) -> Manifest {
    Manifest {
        id: id.into(),
        name: id.into(),
        version: "1.0.0".into(),
        description: "imported earlier".into(),
        provider: ProviderKind::Mcp,
        provider_meta: json!({"server-url": "http://127.0.0.1:9/mcp", "tool-name": "add"})
            .as_object()
            .unwrap()
            .clone(),
        input_schema: ":any".into(),
        output_schema: ":any".into(),
        metadata: json!({}),
        permissions: vec![],
        effects: vec![],
    }
}

fn store_with(dir: &Path, m: &Manifest) -> PathBuf {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join(warden::marketplace::file_name(&m.id, "rtfs")),
        warden::marketplace::snapshot_to_rtfs(std::slice::from_ref(m)),
    )
    .unwrap();
    store
}

#[tokio::test]
async fn a_second_plugin_claiming_the_same_ids_does_not_stop_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let text = || PluginConfig::new(component("text"));
    let c = audited(
        config(Path::new("."))
            .with_plugin("first", text())
            .with_plugin("second", text()),
        dir.path(),
    );
    let host = Host::new(c).await.expect("the host starts");
    let cap = host.capability("text.case").unwrap();
    assert_eq!(cap.plugin.as_deref(), Some("first"));
    assert!(host.plugin("second").unwrap().capabilities.is_empty());
    let out = host
        .call("text.case", json!({"text": "a b", "to": "upper"}))
        .await
        .unwrap();
    assert_eq!(out["text"], "A B");
    let refused = register_records(&dir.path().join("audit.jsonl"));
    let case = refused
        .iter()
        .find(|r| r["target"] == "text.case")
        .expect("the refused claim is audited");
    assert_eq!(case["decision"], "deny");
    assert_eq!(case["plugin"], "second");
    let reason = case["reason"].as_str().unwrap();
    assert!(
        reason.contains("first") && reason.contains("second"),
        "{reason}"
    );
}

#[tokio::test]
async fn background_discovery_cannot_take_an_imported_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &manifest("mcp.demo.add"));
    // The plugin's server is down at start: the store's `mcp.demo.add` is
    // registered, then the server comes up and discovery is retried.
    let port = McpServer::free_port();
    let mut p = PluginConfig::new(component("mcp"));
    p.config = json!({"servers": {"demo": {"url": format!("http://127.0.0.1:{port}/mcp")}}});
    p.grants.network = vec![format!("http://127.0.0.1:{port}")];
    p.sessions.discovery_retry_ms = 100;
    let mut c = audited(config(Path::new(".")).with_plugin("mcp", p), dir.path());
    c.marketplace.dir = Some(store);
    let host = Host::new(c).await.expect("the host starts");
    let before = host.capability("mcp.demo.add").unwrap();
    assert_eq!(before.plugin, None);
    let _server = McpServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while host.capability("mcp.demo.echo").is_err() {
        assert!(Instant::now() < deadline, "the server's tools never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = host.capability("mcp.demo.add").unwrap();
    assert_eq!(after.plugin, None, "the imported capability keeps its id");
    assert_eq!(after.description, "imported earlier");
    let refused = register_records(&dir.path().join("audit.jsonl"));
    assert!(
        refused
            .iter()
            .any(|r| r["target"] == "mcp.demo.add" && r["plugin"] == "mcp"),
        "{refused:?}"
    );
    host.shutdown().await;
}

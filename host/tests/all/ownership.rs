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
        max_records_per_minute: None,
        max_bytes_per_minute: None,
        signing_key: None,
        checkpoint_records: None,
        checkpoint_ms: None,
        sink: None,
        replica: None,
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
    let text = || PluginConfig::new(component("text")).with_namespaces(&["text", "json"]);
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
    // One summary for all of the second plugin's refused claims, naming
    // the owner and some of the ids.
    assert_eq!(refused.len(), 1, "{refused:?}");
    let case = &refused[0];
    assert_eq!(case["decision"], "deny");
    assert_eq!(case["plugin"], "second");
    let reason = case["reason"].as_str().unwrap();
    assert!(
        reason.contains("owned by first") && reason.contains("text."),
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
        refused.iter().any(|r| r["plugin"] == "mcp"
            && r["reason"]
                .as_str()
                .unwrap()
                .contains("held by the marketplace store: mcp.demo.add")),
        "{refused:?}"
    );
    host.shutdown().await;
}

/// What a plugin may claim, whatever it declares or discovers: only ids in
/// its namespaces (its name, or `[plugins.X] namespaces`), never one the
/// operator holds (`[[capabilities]]`, the store) even when the plugin
/// loads first, never one differing from a registered id only in case,
/// only ids of the documented form. Refusals never stop the host or break
/// routing, and are written as one summary per plugin (issue 28, item 8).
#[tokio::test]
async fn a_plugin_claims_only_its_own_namespaces_and_never_the_operators_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &manifest("hostile.count"));
    // `aaa` loads first (name order), and is a copy of the hostile plugin:
    // every one of its claims is outside its namespace.
    let c = audited(
        config(Path::new("."))
            .with_plugin("aaa", hostile())
            .with_plugin("hostile", hostile())
            .with_plugin("text", PluginConfig::new(component("text"))),
        dir.path(),
    );
    let mut c = c;
    c.marketplace.dir = Some(store);
    c.capabilities = vec![http_capability(
        "hostile.echo",
        json!({"base-url": "http://127.0.0.1:9"}),
    )];
    let host = Host::new(c).await.expect("the host starts");
    assert!(host.plugin("aaa").unwrap().capabilities.is_empty());
    // The operator's ids stayed the operator's.
    assert_eq!(host.capability("hostile.count").unwrap().plugin, None);
    assert_ne!(
        host.capability("hostile.echo").unwrap().plugin.as_deref(),
        Some("hostile")
    );
    // The rightful owner serves the rest; text serves `text.*` but not
    // `json.*` (outside its default namespace).
    assert_eq!(
        host.capability("hostile.typed").unwrap().plugin.as_deref(),
        Some("hostile")
    );
    let out = host.call("hostile.typed", json!({"n": 1})).await.unwrap();
    assert_eq!(out["n"], 1);
    assert!(host.capability("text.case").is_ok());
    assert!(host.capability("json.get").is_err());
    let refused = register_records(&dir.path().join("audit.jsonl"));
    let by = |plugin: &str| -> Vec<String> {
        refused
            .iter()
            .filter(|r| r["plugin"] == plugin)
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .collect()
    };
    let aaa = by("aaa");
    assert_eq!(aaa.len(), 1, "one summary: {aaa:?}");
    assert!(
        aaa[0].contains("outside the plugin's namespaces (aaa)"),
        "{aaa:?}"
    );
    let hostile = by("hostile");
    assert_eq!(hostile.len(), 1, "{hostile:?}");
    assert!(
        hostile[0].contains("held by the marketplace store: hostile.count"),
        "{hostile:?}"
    );
    assert!(
        hostile[0].contains("held by the configuration's [[capabilities]]: hostile.echo"),
        "{hostile:?}"
    );
    assert!(by("text")[0].contains("json.get"));
    host.shutdown().await;
}

/// The documented id form, for every kind of character that could confuse
/// a reader or a terminal (issue 28, item 9).
#[test]
fn ids_have_one_documented_form() {
    for ok in [
        "text.case",
        "mcp.server.tool_name",
        "a2a.agent-1.skill",
        "x",
        "ns:v1/op@2+b",
    ] {
        assert!(warden::check_id(ok).is_ok(), "{ok}");
    }
    let long = "a".repeat(warden::MAX_ID_BYTES + 1);
    for bad in [
        "",
        " text.case",
        "text case",
        "text.case\n",
        "text\u{0}case",
        "te\u{202e}xt",
        "text\u{200b}.case",
        "tеxt.case",
        "ｔext",
        "text.cas\u{0301}e",
        ".hidden",
        "-x",
        long.as_str(),
    ] {
        assert!(warden::check_id(bad).is_err(), "{bad:?}");
    }
}

/// A plugin refused at load (a file that is no component, a component of
/// another world, a provider kind it cannot serve) does not stop the host:
/// the others load and serve, and each refusal is reported and audited.
/// `[host] strict-load = true` keeps the old behaviour (issue 28, item 11).
#[tokio::test]
async fn a_plugin_refused_at_load_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm but not really a component").unwrap();
    let build = |strict: bool| {
        let mut c = audited(
            config(Path::new("."))
                .with_plugin("broken", PluginConfig::new(&garbage))
                .with_plugin("wrong", PluginConfig::new(component("wrong-world")))
                .with_plugin("http", PluginConfig::new(&garbage))
                .with_plugin("hostile", hostile()),
            dir.path(),
        );
        c.providers.insert("Http".into(), "http".into());
        c.capabilities = vec![http_capability(
            "weather.get",
            json!({"base-url": "http://127.0.0.1:9"}),
        )];
        c.host.strict_load = strict;
        c
    };
    let host = Host::new(build(false)).await.expect("the others load");
    let refused: Vec<&str> = host
        .refused_plugins()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(refused, ["broken", "http", "wrong"]);
    let out = host.call("hostile.echo", json!({"x": 1})).await.unwrap();
    assert_eq!(out["x"], 1);
    // The declared :Http capability is there, and says it is not served.
    assert!(host.call("weather.get", json!({})).await.is_err());
    host.shutdown().await;
    let loads: Vec<_> = crate::governance::records(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r.effect == "load" && r.decision == "deny")
        .map(|r| r.plugin)
        .collect();
    assert_eq!(loads, ["broken", "http", "wrong"]);
    assert!(Host::new(build(true)).await.is_err());
}

//! The MCP provider picks the protocol revision: 2026-07-28 first
//! (stateless, calls made directly), the 2025-11-25 handshake (sessions)
//! when a server refuses it, or the one a server's `protocol` pins.

use crate::mcp::{mcp_config, Server};
use crate::util::McpServer;
use serde_json::json;
use warden::{Host, Route, SessionSettings};

async fn load(servers: &[Server<'_>]) -> Host {
    Host::new(mcp_config(servers, SessionSettings::default()))
        .await
        .expect("host loads")
}

#[tokio::test]
async fn a_server_that_speaks_2026_07_28_is_called_statelessly() {
    let server = McpServer::start(&["--era", "both"]);
    let host = load(&[Server::of("demo", &server)]).await;
    let add = host.capability("mcp.demo.add").unwrap();
    assert_eq!(
        add.route,
        Route::Direct,
        "no session for a stateless revision"
    );
    assert_eq!(add.flat_metadata["mcp.protocol"], "2026-07-28");
    assert_eq!(add.flat_metadata["mcp.requires-session"], false);
    for n in 0..3 {
        let out = host
            .call("mcp.demo.add", json!({"a": n, "b": 40}))
            .await
            .unwrap();
        assert_eq!(
            out,
            json!({"result": 40 + n}),
            "the structured content alone: the text block only echoes it"
        );
    }
    assert_eq!(host.open_sessions(), 0);
    // Every request spoke 2026-07-28: no handshake, no session, no DELETE.
    let requests = server.requests();
    assert!(
        requests.iter().all(|(m, sid)| m == "POST" && sid == "-"),
        "{requests:?}"
    );
    assert!(
        server.versions().iter().all(|v| v == "2026-07-28"),
        "{:?}",
        server.versions()
    );
    // A tool error is still a typed upstream error.
    let err = host
        .call("mcp.demo.fail", json!({"message": "no"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no"), "{err}");
    host.shutdown().await;
    assert!(server.deleted().is_empty());
}

#[tokio::test]
async fn a_server_that_speaks_only_2026_07_28_works() {
    let server = McpServer::start(&["--era", "modern"]);
    let host = load(&[Server::of("demo", &server)]).await;
    assert!(host.pending_sources("mcp").await.unwrap().is_empty());
    let out = host
        .call("mcp.demo.echo", json!({"text": "modern only"}))
        .await
        .unwrap();
    assert_eq!(out["result"], "modern only");
    host.shutdown().await;
}

#[tokio::test]
async fn a_server_that_refuses_2026_07_28_gets_the_handshake_and_sessions() {
    let server = McpServer::start(&["--era", "legacy"]);
    let host = load(&[Server::of("demo", &server)]).await;
    let count = host.capability("mcp.demo.count").unwrap();
    assert!(
        matches!(count.route, Route::Session { .. }),
        "{:?}",
        count.route
    );
    assert_eq!(count.flat_metadata["mcp.protocol"], "2025-11-25");
    for n in 1..=2 {
        let out = host
            .call_in_session("mcp.demo.count", json!({}), Some("k"))
            .await
            .unwrap();
        assert_eq!(out["result"], n);
    }
    let versions = server.versions();
    assert_eq!(
        versions[0], "2026-07-28",
        "the probe comes first: {versions:?}"
    );
    // Sessions opened after discovery know the revision: no second probe.
    let probes = versions.iter().filter(|v| *v == "2026-07-28").count();
    assert_eq!(probes, 1, "{versions:?}");
    host.shutdown().await;
    assert!(
        !server.deleted().is_empty(),
        "the session ended with DELETE"
    );
}

#[tokio::test]
async fn a_pinned_revision_is_the_only_one_spoken() {
    let both = McpServer::start(&["--era", "both"]);
    let mut pinned = Server::of("demo", &both);
    pinned.extra = json!({"protocol": "2025-11-25"});
    let host = load(&[pinned]).await;
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 1, "b": 1}))
            .await
            .unwrap()["result"],
        2
    );
    assert!(
        both.versions().iter().all(|v| v != "2026-07-28"),
        "{:?}",
        both.versions()
    );
    host.shutdown().await;

    let legacy = McpServer::start(&["--era", "legacy"]);
    let mut modern_only = Server::of("old", &legacy);
    modern_only.extra = json!({"protocol": "2026-07-28"});
    let host = load(&[modern_only]).await;
    let pending = host.pending_sources("mcp").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0].1.contains("does not speak 2026-07-28"),
        "{pending:?}"
    );
    let err = host
        .call("mcp.old.add", json!({"a": 1, "b": 1}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("old"), "{err}");
    // An unknown value is refused by name.
    let mut bad = Server::of("demo", &both);
    bad.extra = json!({"protocol": "2099-01-01"});
    let mut c = mcp_config(&[bad], SessionSettings::default());
    c.host.strict_load = true;
    let err = Host::new(c).await.err().expect("refused");
    assert!(
        err.to_string().contains("2099-01-01") || err.to_string().contains("protocol"),
        "{err}"
    );
}

/// A multi-megabyte result in one SSE event is read in linear time: within
/// the fuel limit, up to the output cap, whose error names it.
#[tokio::test]
async fn large_sse_results_reach_the_output_cap_not_the_fuel_limit() {
    let server = McpServer::start(&[]);
    let host = load(&[Server::of("demo", &server)]).await;
    let out = host
        .call_in_session("mcp.demo.big", json!({"n": 3_000_000}), Some("k"))
        .await
        .unwrap();
    assert_eq!(out["result"].as_str().unwrap().len(), 3_000_000);
    // 4.5 MB of text (9 MB on the wire: the SDK sends it as text and as
    // structured content) passes the response cap and stops at the output cap.
    let err = host
        .call_in_session("mcp.demo.big", json!({"n": 4_500_000}), Some("k"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            warden::Error::LimitExceeded {
                limit: warden::Limit::Output,
                ..
            }
        ),
        "{err}"
    );
    // 12 MB on the wire stops at the response cap, named.
    let err = host
        .call_in_session("mcp.demo.big", json!({"n": 6_000_000}), Some("k"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max-response-bytes"), "{err}");
    host.shutdown().await;
}

/// A tool whose input is a nested pydantic model (`$ref`/`$defs`) gets a
/// real input schema: bad input is refused before it reaches the server.
#[tokio::test]
async fn nested_model_inputs_are_checked_before_the_server_sees_them() {
    let server = McpServer::start(&["--era", "both"]);
    let host = load(&[Server::of("demo", &server)]).await;
    let ship = host.capability("mcp.demo.ship").unwrap();
    assert!(
        ship.input_schema.contains(":street"),
        "{}",
        ship.input_schema
    );
    let ok = json!({"order": {"item": "tea", "to": {"street": "Main", "zip": 1}}});
    assert_eq!(
        host.call("mcp.demo.ship", ok).await.unwrap()["result"],
        "tea to Main"
    );
    let before = server.requests().len();
    let bad = json!({"order": {"item": "tea", "to": {"zip": "one"}}});
    let err = host.call("mcp.demo.ship", bad).await.unwrap_err();
    assert!(matches!(err, warden::Error::InvalidInput { .. }), "{err}");
    assert_eq!(
        server.requests().len(),
        before,
        "refused before any request"
    );
    host.shutdown().await;
}

/// A connection lost in the middle of a call names the server.
#[tokio::test]
async fn a_connection_lost_mid_call_names_the_server() {
    let mut server = McpServer::start(&["--era", "both"]);
    let host = load(&[Server::of("demo", &server)]).await;
    let call = {
        let host = host.clone();
        tokio::spawn(async move { host.call("mcp.demo.slow", json!({"ms": 3000})).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.stop();
    let err = call.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("MCP server `demo`"), "{err}");
    host.shutdown().await;
}

/// MCP capabilities exported to a snapshot and imported into a host whose
/// `mcp` plugin serves the `:Mcp` kind are callable (through `mcp.invoke`),
/// with their session metadata kept; egress is still granted per server.
#[tokio::test]
async fn imported_mcp_capabilities_are_served() {
    let server = McpServer::start(&["--era", "both"]);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("mcp.json");
    let exporter = load(&[Server::of("demo", &server)]).await;
    let report = exporter.export_json(&snapshot).unwrap();
    assert!(
        report.exported.iter().any(|id| id == "mcp.demo.add"),
        "{report:?}"
    );
    exporter.shutdown().await;

    // No server configured: only the kind, and the grant to reach it.
    let mut plugin = warden::PluginConfig::new(crate::util::component("mcp"));
    plugin.grants.network = vec![server.origin()];
    let mut config = crate::util::config(std::path::Path::new(".")).with_plugin("mcp", plugin);
    config.providers.insert("Mcp".into(), "mcp".into());
    let host = Host::new(config.clone()).await.unwrap();
    let imported = host.import(&snapshot).unwrap();
    assert!(
        imported.registered.iter().any(|id| id == "mcp.demo.add"),
        "{imported:?}"
    );
    let add = host.capability("mcp.demo.add").unwrap();
    assert_eq!(add.flat_metadata["mcp.protocol"], "2026-07-28");
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 20, "b": 22}))
            .await
            .unwrap()["result"],
        42
    );
    let err = host
        .call("mcp.demo.add", json!({"a": "x"}))
        .await
        .unwrap_err();
    assert!(matches!(err, warden::Error::InvalidInput { .. }), "{err}");
    host.shutdown().await;

    // Without the network grant the host refuses the connection.
    config
        .plugins
        .get_mut("mcp")
        .unwrap()
        .grants
        .network
        .clear();
    let host = Host::new(config).await.unwrap();
    host.import(&snapshot).unwrap();
    let err = host
        .call("mcp.demo.add", json!({"a": 1, "b": 2}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("denied") || matches!(err, warden::Error::Denied { .. }),
        "{err}"
    );
}

/// A server's `retry` hint: a read-only tool is retried while the server
/// cannot be reached, and succeeds once it is back; a tool without the
/// annotation is not retried.
#[tokio::test]
async fn read_only_tools_are_retried_while_the_server_is_unreachable() {
    let mut server = McpServer::start(&["--era", "both"]);
    let mut s = Server::of("demo", &server);
    // Generous: the server takes a while to start on a loaded machine.
    s.extra = json!({"retry": {"attempts": 10, "backoff-ms": 1500, "backoff": "fixed"}});
    let host = load(&[s]).await;
    let add = host.capability("mcp.demo.add").unwrap();
    assert_eq!(add.hints.retry.as_ref().map(|r| r.attempts), Some(10));
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 1, "b": 1}))
            .await
            .unwrap()["result"],
        2
    );
    // Down: a tool without read-only/idempotent annotations fails at once.
    let port = server.port;
    server.stop();
    let err = host
        .call("mcp.demo.echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            warden::Error::Capability {
                kind: warden::ErrorKind::Unavailable,
                ..
            }
        ),
        "{err}"
    );
    // `add` (read-only, idempotent) is retried until the server is back.
    let back = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        McpServer::start_on(port, &["--era", "both"])
    });
    let out = host
        .call("mcp.demo.add", json!({"a": 2, "b": 2}))
        .await
        .unwrap();
    assert_eq!(out["result"], 4);
    let _server = back.join().unwrap();
    host.shutdown().await;
}

/// A `[[policy.rules]]` entry that selects by metadata: every destructive
/// MCP tool needs approval, a read-only one does not.
#[tokio::test]
async fn a_metadata_rule_asks_approval_for_destructive_tools() {
    let server = McpServer::start(&["--era", "both"]);
    let mut config = mcp_config(&[Server::of("demo", &server)], SessionSettings::default());
    let rules: warden::CallRules = toml::from_str(
        r#"
        [[rules]]
        metadata = { "mcp.annotations.destructive-hint" = true }
        decision = "approve"
        "#,
    )
    .unwrap();
    config.policy = rules;
    let host = Host::new(config).await.unwrap();
    assert_eq!(
        host.approval_rule("mcp.demo.wipe", Default::default())
            .as_deref(),
        Some("*")
    );
    assert_eq!(host.approval_rule("mcp.demo.add", Default::default()), None);
    // No approver: the destructive tool is refused, the read-only one runs.
    let err = host.call("mcp.demo.wipe", json!({})).await.unwrap_err();
    assert!(matches!(err, warden::Error::Denied { .. }), "{err}");
    assert!(err.to_string().contains("approval"), "{err}");
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 1, "b": 2}))
            .await
            .unwrap()["result"],
        3
    );
    // An approver lets it through.
    struct Yes;
    impl warden::Approver for Yes {
        fn approve<'a>(
            &'a self,
            _: &'a warden::ApprovalRequest,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = warden::Approval> + Send + 'a>>
        {
            Box::pin(async { warden::Approval::Approve })
        }
    }
    host.set_approver(Some(std::sync::Arc::new(Yes)));
    assert_eq!(
        host.call("mcp.demo.wipe", json!({})).await.unwrap()["result"],
        "wiped"
    );
    host.shutdown().await;
}

/// A tool's `notifications/progress` (sent for the token the plugin gives
/// each call) is the call's progress, in both revisions.
#[tokio::test]
async fn a_tools_progress_reaches_the_callers_listener() {
    for era in ["modern", "legacy"] {
        let server = McpServer::start(&["--era", era]);
        let host = load(&[Server::of("demo", &server)]).await;
        let (sink, heard) = crate::util::progress_listener();
        let ctx = warden::CallContext {
            progress: Some(&sink),
            ..Default::default()
        };
        let out = host
            .call_with("mcp.demo.steps", json!({"n": 5}), &ctx)
            .await
            .unwrap();
        assert_eq!(out["result"], 5, "{era}");
        let heard = heard.lock().unwrap().clone();
        let last = heard.last().unwrap_or_else(|| panic!("{era}: no progress"));
        assert_eq!(
            (last.done, last.total, last.message.as_str()),
            (5, Some(5), "step 5"),
            "{era}: {heard:?}"
        );
    }
}

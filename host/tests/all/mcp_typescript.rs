//! The MCP provider against a server on the TypeScript SDK v2
//! (`@modelcontextprotocol/server` 2.4) that serves revision 2026-07-28 only
//! (`createMcpHandler(factory, { legacy: 'reject' })`): no handshake, no
//! session, every request carrying the `_meta` envelope.

use crate::mcp::{mcp_config, Server};
use crate::util::McpServer;
use serde_json::json;
use std::time::{Duration, Instant};
use warden::{Error, Host, Limit, Route, SessionSettings};

async fn load(server: &McpServer, tune: impl FnOnce(&mut warden::PluginConfig)) -> Host {
    let mut c = mcp_config(&[Server::of("ts", server)], SessionSettings::default());
    tune(c.plugins.get_mut("mcp").unwrap());
    Host::new(c).await.expect("host loads")
}

#[tokio::test]
async fn a_typescript_v2_server_that_speaks_only_2026_07_28_serves_every_tool() {
    let server = McpServer::start_ts(&[]);
    let host = load(&server, |_| {}).await;
    assert!(host.pending_sources("mcp").await.unwrap().is_empty());
    let add = host.capability("mcp.ts.add").unwrap();
    assert_eq!(add.route, Route::Direct, "no session at 2026-07-28");
    assert_eq!(add.flat_metadata["mcp.protocol"], "2026-07-28");
    assert_eq!(add.flat_metadata["mcp.requires-session"], false);
    assert_eq!(add.flat_metadata["mcp.annotations.read-only-hint"], true);
    assert_eq!(
        host.capability("mcp.ts.wipe").unwrap().flat_metadata["mcp.annotations.destructive-hint"],
        true
    );
    let out = host
        .call("mcp.ts.add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(out, json!({"result": 42}));
    let out = host
        .call("mcp.ts.echo", json!({"text": "héllo"}))
        .await
        .unwrap();
    // Without structured content, the content blocks.
    assert_eq!(out["content"][0]["text"], "héllo", "{out}");
    // Nested input is checked before the server sees it.
    let ship = host.capability("mcp.ts.ship").unwrap();
    assert!(
        ship.input_schema.contains(":street"),
        "{}",
        ship.input_schema
    );
    let before = server.requests().len();
    let err = host
        .call(
            "mcp.ts.ship",
            json!({"order": {"item": "tea", "to": {"street": 5}}}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(server.requests().len(), before, "refused before sending");
    let out = host
        .call(
            "mcp.ts.ship",
            json!({"order": {"item": "tea", "to": {"street": "Main", "zip": 1}}}),
        )
        .await
        .unwrap();
    assert_eq!(out["content"][0]["text"], "tea to Main");
    // Structured content keeps the image block the server sent beside it.
    let out = host.call("mcp.ts.picture", json!({})).await.unwrap();
    assert_eq!(out["width"], 1, "{out}");
    let extra = out["_content"].as_array().expect("the image is kept");
    assert!(extra.iter().any(|c| c["type"] == "image"), "{out}");
    // A tool error is a typed upstream error with the tool's text.
    let err = host
        .call("mcp.ts.fail", json!({"message": "nope"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    host.shutdown().await;
    assert!(
        server.versions().iter().all(|v| v == "2026-07-28"),
        "{:?}",
        server.versions()
    );
    assert!(server.deleted().is_empty());
    assert_eq!(host.open_sessions(), 0);
}

fn assert_limit(err: &Error, which: Limit) {
    assert!(
        matches!(err, Error::LimitExceeded { limit, .. } if *limit == which),
        "{err}"
    );
}

#[tokio::test]
async fn a_call_stopped_by_a_limit_is_cancelled_on_the_typescript_server() {
    let server = McpServer::start_ts(&[]);
    let host = load(&server, |p| p.limits.timeout_ms = Some(1500)).await;
    let err = host
        .call("mcp.ts.slow", json!({"ms": 8000}))
        .await
        .unwrap_err();
    assert_limit(&err, Limit::Time);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.events().iter().any(|e| e == "slow cancelled") {
        assert!(Instant::now() < deadline, "{:?}", server.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host.shutdown().await;
}

/// A 20 MB result in one SSE event is read in linear time, within the fuel
/// limit, and stops at the output cap, whose error names it.
#[tokio::test]
async fn a_20_mb_sse_result_stops_at_the_output_cap() {
    let server = McpServer::start_ts(&["--sse"]);
    let host = load(&server, |p| {
        p.limits.max_response_bytes = Some(64 << 20);
        p.limits.max_egress_bytes = Some(64 << 20);
        p.limits.memory = Some(256 << 20);
    })
    .await;
    let out = host
        .call("mcp.ts.big", json!({"n": 1_000_000}))
        .await
        .unwrap();
    assert_eq!(out["content"][0]["text"].as_str().unwrap().len(), 1_000_000);
    let err = host
        .call("mcp.ts.big", json!({"n": 20_000_000}))
        .await
        .unwrap_err();
    assert_limit(&err, Limit::Output);
    assert!(err.to_string().contains("max-output-bytes"), "{err}");
    host.shutdown().await;
}

//! A call to an MCP tool that is stopped by a limit, or given up by its
//! caller, leaves nothing running on the server: on the 2025-era wire a
//! fresh instance sends `notifications/cancelled` for the request in flight
//! and `DELETE`s the session; at 2026-07-28 the response stream is closed,
//! which is that revision's cancellation.

use crate::mcp::{mcp_config, Server};
use crate::util::McpServer;
use serde_json::json;
use std::time::{Duration, Instant};
use warden::{Error, Host, SessionSettings};

async fn host(server: &McpServer, timeout_ms: u64) -> Host {
    let mut c = mcp_config(&[Server::of("demo", server)], SessionSettings::default());
    c.plugins.get_mut("mcp").unwrap().limits.timeout_ms = Some(timeout_ms);
    Host::new(c).await.expect("host loads")
}

/// Waits until the server's tool notes `slow cancelled` (or fails the test
/// after a while); `slow finished` must never be noted.
async fn assert_cancelled(server: &McpServer, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = server.events();
        assert!(
            !events.iter().any(|e| e == "slow finished"),
            "{what}: the server finished the abandoned work: {events:?}"
        );
        if events.iter().any(|e| e == "slow cancelled") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the server never saw the call cancelled: {events:?}, requests {:?}",
            server.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stopped_by_the_time_limit(host: &Host, id: &str) {
    let err = host
        .call(id, json!({"ms": 8000}))
        .await
        .expect_err("stopped by the time limit");
    assert!(
        matches!(err, Error::LimitExceeded { .. }),
        "a time limit: {err}"
    );
}

#[tokio::test]
async fn a_session_call_stopped_by_a_limit_is_cancelled_and_its_session_deleted() {
    let server = McpServer::start(&["--era", "legacy"]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = mcp_config(&[Server::of("demo", &server)], SessionSettings::default());
    c.plugins.get_mut("mcp").unwrap().limits.timeout_ms = Some(1500);
    let (c, log) = crate::util::with_audit(c, dir.path());
    let host = Host::new(c).await.expect("host loads");
    assert_eq!(
        host.call("mcp.demo.count", json!({})).await.unwrap()["result"],
        1
    );
    let session = server
        .requests()
        .into_iter()
        .find(|(m, s)| m == "POST" && s != "-")
        .map(|(_, s)| s)
        .expect("a session");
    stopped_by_the_time_limit(&host, "mcp.demo.slow").await;
    assert_cancelled(&server, "legacy session").await;
    // Told so on the 2025-era wire, where a closed connection is not a
    // cancellation (the DELETE below would end it on this server anyway).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .events()
        .iter()
        .any(|e| e.starts_with("notified cancelled "))
    {
        assert!(
            Instant::now() < deadline,
            "no notifications/cancelled: {:?}",
            server.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.deleted().contains(&session) {
        assert!(
            Instant::now() < deadline,
            "the dead session was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next call on the key gets a new session and works.
    assert_eq!(
        host.call("mcp.demo.count", json!({})).await.unwrap()["result"],
        1
    );
    host.shutdown().await;
    // The release's requests are audited under the call that left the
    // session behind.
    let records = crate::governance::records(&log);
    let stopped = records
        .iter()
        .find(|r| r.effect == "limit" && r.capability == "mcp.demo.slow")
        .expect("the limit is recorded");
    assert!(
        records.iter().any(|r| r.effect == "egress"
            && r.capability == "release after mcp.demo.slow"
            && r.call_id == stopped.call_id),
        "{records:#?}"
    );
}

#[tokio::test]
async fn a_direct_call_stopped_by_a_limit_closes_its_stream_at_2026_07_28() {
    let server = McpServer::start(&["--era", "modern"]);
    let host = host(&server, 1500).await;
    stopped_by_the_time_limit(&host, "mcp.demo.slow").await;
    assert_cancelled(&server, "2026-07-28").await;
    assert!(
        !server.events().iter().any(|e| e.starts_with("notified")),
        "no notification at 2026-07-28, where closing the stream is the cancellation"
    );
    // The plugin still serves.
    let out = host
        .call("mcp.demo.add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(out["result"], 3);
    host.shutdown().await;
}

/// A direct call whose caller goes away is cancelled with its instance.
/// (A session call runs on within its limits instead, so that its session
/// survives for the caller's next call; `cancellation.rs`.)
#[tokio::test]
async fn a_direct_call_its_caller_gives_up_is_cancelled_on_the_server() {
    for era in ["modern", "legacy-stateless"] {
        let server = match era {
            "modern" => McpServer::start(&["--era", "modern"]),
            _ => McpServer::start(&["--era", "legacy", "--stateless"]),
        };
        let host = host(&server, 20_000).await;
        let call = host.call("mcp.demo.slow", json!({"ms": 8000}));
        assert!(
            tokio::time::timeout(Duration::from_millis(1000), call)
                .await
                .is_err(),
            "still running when given up"
        );
        assert_cancelled(&server, era).await;
        let out = host
            .call("mcp.demo.add", json!({"a": 2, "b": 2}))
            .await
            .unwrap();
        assert_eq!(out["result"], 4, "{era}");
        host.shutdown().await;
    }
}

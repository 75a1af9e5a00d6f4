//! MCP Tasks through the MCP provider, against a task server on the
//! TypeScript SDK v2 (`tests/serve/tasks-server.mjs`): task-only and
//! optional-task tools, in both generations (the 2026-07-28 extension and
//! 2025-11-25 core tasks), followed to their end or cancelled upstream when
//! a limit stops the call.

use crate::mcp::{mcp_config, Server};
use crate::util::{progress_listener, McpServer};
use serde_json::json;
use std::time::{Duration, Instant};
use warden::{CallContext, Error, ErrorKind, Host, Limit, SessionSettings};

async fn load(server: &McpServer, protocol: &str, timeout_ms: Option<u64>) -> Host {
    let mut s = Server::of("t", server);
    s.extra = json!({ "protocol": protocol });
    let mut c = mcp_config(&[s], SessionSettings::default());
    c.plugins.get_mut("mcp").unwrap().limits.timeout_ms = timeout_ms;
    Host::new(c).await.expect("host loads")
}

/// The JSON-RPC requests the server saw, as `rpc <method> <Mcp-Name>`.
fn rpcs(server: &McpServer) -> Vec<String> {
    server
        .events()
        .into_iter()
        .filter(|e| e.starts_with("rpc "))
        .collect()
}

async fn wait_for(server: &McpServer, event: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.events().iter().any(|e| e.starts_with(event)) {
        assert!(
            Instant::now() < deadline,
            "no `{event}`: {:?}",
            server.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tasks_at_2026_07_28_are_followed_to_their_result() {
    let server = McpServer::start_tasks();
    let host = load(&server, "2026-07-28", None).await;
    // Task-only tools are offered, with nothing said per tool at 2026-07-28.
    for tool in ["slow", "sum", "broken", "ask"] {
        assert!(host.capability(&format!("mcp.t.{tool}")).is_ok(), "{tool}");
    }
    let (sink, heard) = progress_listener();
    let ctx = CallContext {
        progress: Some(&sink),
        ..Default::default()
    };
    let out = host
        .call_with("mcp.t.slow", json!({"ms": 400}), &ctx)
        .await
        .unwrap();
    assert_eq!(out["content"][0]["text"], "worked 400 ms", "{out}");
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard.iter().any(|p| p.message.starts_with("step ")),
        "the task's status messages are the call's progress: {heard:?}"
    );
    // Each poll names its task in `Mcp-Name`.
    let gets: Vec<String> = rpcs(&server)
        .into_iter()
        .filter(|e| e.starts_with("rpc tasks/get "))
        .collect();
    assert!(!gets.is_empty(), "{:?}", server.events());
    assert!(
        gets.iter().all(|e| e.len() > "rpc tasks/get ".len() + 30),
        "{gets:?}"
    );

    // An optional-task tool: the server chose a task; the result is the
    // tool's structured content all the same.
    let out = host
        .call("mcp.t.sum", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(out, json!({"result": 5}));

    let err = host.call("mcp.t.broken", json!({})).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Capability {
                kind: ErrorKind::Upstream,
                ..
            }
        ) && err.to_string().contains("the disk is on fire"),
        "{err}"
    );
    let err = host.call("mcp.t.ask", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
    host.shutdown().await;
}

#[tokio::test]
async fn core_tasks_at_2025_11_25_are_asked_for_and_followed() {
    let server = McpServer::start_tasks();
    let host = load(&server, "2025-11-25", None).await;
    let slow = host
        .capability("mcp.t.slow")
        .expect("a task-only tool is offered");
    assert_eq!(slow.flat_metadata["mcp.task-support"], "required");
    let out = host.call("mcp.t.slow", json!({"ms": 200})).await.unwrap();
    assert_eq!(out["content"][0]["text"], "worked 200 ms", "{out}");
    let seen = rpcs(&server);
    assert!(
        seen.iter().any(|e| e.starts_with("rpc tasks/result")),
        "{seen:?}"
    );
    // An optional-task tool is called as an ordinary one.
    let out = host
        .call("mcp.t.sum", json!({"a": 20, "b": 22}))
        .await
        .unwrap();
    assert_eq!(out, json!({"result": 42}));
    let err = host.call("mcp.t.broken", json!({})).await.unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_task_stopped_by_a_limit_is_cancelled_upstream_in_both_generations() {
    for protocol in ["2026-07-28", "2025-11-25"] {
        let server = McpServer::start_tasks();
        let host = load(&server, protocol, Some(1000)).await;
        let err = host
            .call("mcp.t.slow", json!({"ms": 20_000}))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::LimitExceeded { limit, .. } if *limit == Limit::Time),
            "{protocol}: {err}"
        );
        wait_for(&server, "rpc tasks/cancel ").await;
        wait_for(&server, "slow cancelled").await;
        if protocol == "2026-07-28" {
            let cancel = rpcs(&server)
                .into_iter()
                .find(|e| e.starts_with("rpc tasks/cancel "))
                .unwrap();
            assert_ne!(cancel, "rpc tasks/cancel -", "the cancel names its task");
        }
        assert!(
            !server.events().iter().any(|e| e == "slow finished"),
            "{protocol}: {:?}",
            server.events()
        );
        host.shutdown().await;
    }
}

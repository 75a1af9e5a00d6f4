//! The generic session pool, with the hostile guest's session capabilities
//! (metadata `test.requires-session`, `test.server`).

use crate::util::{host_with, hostile};
use serde_json::{json, Value};
use std::time::Duration;
use warden::{Error, Host, SessionSettings};

async fn count(host: &Host, key: Option<&str>) -> Value {
    host.call_in_session("hostile.session-count", json!({}), key)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_session_key_keeps_its_session_and_keys_are_separate() {
    let host = host_with("hostile", hostile()).await;
    for n in 1..=3 {
        assert_eq!(count(&host, Some("agent-a")).await, n);
    }
    assert_eq!(count(&host, Some("agent-b")).await, 1);
    assert_eq!(count(&host, Some("agent-a")).await, 4);
    // No key: the default session, separate again.
    assert_eq!(count(&host, None).await, 1);
    assert_eq!(
        host.call_in_session("hostile.session-key", json!({}), Some("agent-b"))
            .await
            .unwrap(),
        "agent-b"
    );
    assert_eq!(
        host.call("hostile.session-key", json!({})).await.unwrap(),
        warden::DEFAULT_SESSION_KEY
    );
    assert_eq!(host.open_sessions(), 3);
    host.shutdown().await;
    assert_eq!(host.open_sessions(), 0);
    // After shutdown a call opens a new session.
    assert_eq!(count(&host, Some("agent-a")).await, 1);
}

#[tokio::test]
async fn a_trap_inside_a_session_drops_it_and_the_next_call_opens_a_new_one() {
    let host = host_with("hostile", hostile()).await;
    assert_eq!(count(&host, Some("k")).await, 1);
    assert_eq!(count(&host, Some("k")).await, 2);
    let err = host
        .call_in_session("hostile.session-trap", json!({}), Some("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err:?}");
    assert_eq!(host.open_sessions(), 0);
    assert_eq!(count(&host, Some("k")).await, 1);
    // Other capabilities are unaffected.
    assert!(host.call("hostile.echo", json!({"x": 1})).await.is_ok());
}

#[tokio::test]
async fn idle_sessions_expire_after_the_ttl() {
    let mut plugin = hostile();
    plugin.sessions = SessionSettings {
        idle_ttl_ms: 150,
        ..SessionSettings::default()
    };
    let host = host_with("hostile", plugin).await;
    assert_eq!(count(&host, Some("k")).await, 1);
    assert_eq!(count(&host, Some("k")).await, 2);
    // The sweeper closes it without any further call.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while host.open_sessions() > 0 {
        assert!(std::time::Instant::now() < deadline, "never swept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&host, Some("k")).await, 1);
}

#[tokio::test]
async fn max_per_server_closes_the_least_recently_used_session() {
    let mut plugin = hostile();
    plugin.sessions = SessionSettings {
        max_per_server: 2,
        ..SessionSettings::default()
    };
    let host = host_with("hostile", plugin).await;
    assert_eq!(count(&host, Some("a")).await, 1);
    assert_eq!(count(&host, Some("b")).await, 1);
    assert_eq!(count(&host, Some("a")).await, 2);
    // A third key: `b` is the least recently used and is closed.
    assert_eq!(count(&host, Some("c")).await, 1);
    assert_eq!(host.open_sessions(), 2);
    assert_eq!(count(&host, Some("a")).await, 3);
    assert_eq!(count(&host, Some("b")).await, 1);
}

#[tokio::test]
async fn concurrent_calls_on_one_key_share_one_session() {
    let host = host_with("hostile", hostile()).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            count(&host, Some("shared")).await.as_u64().unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    assert_eq!(host.open_sessions(), 1);
}

#[tokio::test]
async fn max_caps_the_plugins_sessions_across_servers() {
    let mut plugin = hostile();
    plugin.sessions = SessionSettings {
        max: 2,
        ..SessionSettings::default()
    };
    let host = host_with("hostile", plugin).await;
    let two = |key: &'static str| {
        let host = host.clone();
        async move {
            host.call_in_session("hostile.session-count-two", json!({}), Some(key))
                .await
                .unwrap()
        }
    };
    assert_eq!(count(&host, Some("a")).await, 1);
    assert_eq!(two("b").await, 1);
    assert_eq!(count(&host, Some("a")).await, 2);
    // A third session anywhere closes the least recently used one (`b` on server two).
    assert_eq!(two("c").await, 1);
    assert_eq!(host.open_sessions(), 2);
    assert_eq!(count(&host, Some("a")).await, 3);
    assert_eq!(two("b").await, 1);
}

#[tokio::test]
async fn a_host_dropped_without_shutdown_still_closes_its_sessions() {
    let server = crate::util::McpServer::start(&[]);
    let mut p = warden::PluginConfig::new(crate::util::component("mcp"));
    p.grants.network = vec![server.origin()];
    p.config = json!({"servers": {"demo": {"url": server.url()}}});
    let host = Host::new(crate::util::config(std::path::Path::new(".")).with_plugin("mcp", p))
        .await
        .unwrap();
    host.call("mcp.demo.add", json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    let before = server.deleted().len();
    drop(host);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.deleted().len() == before {
        assert!(std::time::Instant::now() < deadline, "no DELETE after drop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

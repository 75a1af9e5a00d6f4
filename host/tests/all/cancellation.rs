//! Abandoned calls (issue 19): a caller that drops a call's future at any
//! point (a timeout, a client that went away) leaves nothing broken. The
//! next call on the same session key works in the same session, sessions
//! are closed on the server at the end, and every admitted call has exactly
//! one end record (`cancelled` for the abandoned ones).

use crate::mcp::{mcp_config, Server};
use crate::util::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use warden::{Host, SessionSettings};

/// A small deterministic generator, seeded from the clock (printed, so
/// that a failing sequence can be replayed with `WARDEN_TEST_SEED`).
struct Lcg(u64);

impl Lcg {
    fn new() -> Lcg {
        let seed = std::env::var("WARDEN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("WARDEN_TEST_SEED={seed}");
        Lcg(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_leave_nothing_broken() {
    let dir = tempfile::tempdir().unwrap();
    let server = McpServer::start(&[]);
    let c = mcp_config(&[Server::of("demo", &server)], SessionSettings::default())
        .with_plugin("hostile", hostile());
    let (c, log) = with_audit(c, dir.path());
    let host = Host::new(c).await.expect("host loads");
    let mut rng = Lcg::new();
    let ms = Duration::from_millis;
    for round in 1..=20u64 {
        // A session call abandoned at a random point: before admission,
        // while the MCP server works, or not at all.
        let wait = ms(rng.below(40));
        let slow = host.call_in_session("mcp.demo.slow", json!({"ms": 20}), Some("k"));
        let _ = tokio::time::timeout(wait, slow).await;
        // The next call on the key works, in the same session all along.
        let n = host
            .call_in_session("mcp.demo.count", json!({}), Some("k"))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            n["result"], round,
            "round {round}: the session was replaced"
        );
        // The same for the hostile plugin's own sessions and plain calls.
        let sleep = host.call_in_session("hostile.session-count", json!({}), Some("h"));
        let _ = tokio::time::timeout(ms(rng.below(3)), sleep).await;
        let plain = host.call("hostile.sleep", json!({"arg": 10}));
        let _ = tokio::time::timeout(ms(rng.below(15)), plain).await;
        host.call("hostile.echo", json!({"round": round}))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(host
            .call_in_session("hostile.session-count", json!({}), Some("h"))
            .await
            .is_ok());
    }
    // One call certainly abandoned while the server works on it.
    let slow = host.call_in_session("mcp.demo.slow", json!({"ms": 300}), Some("k"));
    assert!(tokio::time::timeout(ms(100), slow).await.is_err());
    let n = host
        .call_in_session("mcp.demo.count", json!({}), Some("k"))
        .await
        .unwrap();
    assert_eq!(n["result"], 21);
    host.shutdown().await;

    // Every session the server saw is closed on it.
    let opened: Vec<String> = server
        .requests()
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s != "-")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let deleted = server.deleted();
    assert!(!opened.is_empty());
    for session in &opened {
        assert!(
            deleted.contains(session),
            "{session} was never closed: {deleted:?}"
        );
    }

    // Every admitted call ends exactly once.
    let all = crate::governance::records(&log);
    let mut ends: HashMap<&str, (usize, usize)> = HashMap::new();
    for r in all.iter().filter(|r| r.effect == "call") {
        let e = ends.entry(r.call_id.as_str()).or_default();
        match r.decision.as_str() {
            "allow" => e.0 += 1,
            "ok" | "error" | "cancelled" => e.1 += 1,
            _ => {}
        }
    }
    for (call, (admitted, ended)) in &ends {
        if *admitted > 0 {
            assert_eq!((*admitted, *ended), (1, 1), "call {call}: {all:#?}");
        }
    }
    let cancelled: Vec<_> = all.iter().filter(|r| r.decision == "cancelled").collect();
    assert!(!cancelled.is_empty());
    assert!(cancelled
        .iter()
        .all(|r| r.reason.contains("the caller went away")));
}

/// A session whose instance dies (here: its time limit) cannot drop its
/// own resource; a fresh instance is handed the session's remote state and
/// ends it on the server.
#[tokio::test]
async fn a_dead_sessions_remote_state_is_released_by_a_fresh_instance() {
    let server = McpServer::start(&[]);
    let mut c = mcp_config(&[Server::of("demo", &server)], SessionSettings::default());
    c.plugins.get_mut("mcp").unwrap().limits.timeout_ms = Some(1500);
    let host = Host::new(c).await.expect("host loads");
    let discovery = server.requests().len();
    let first = host
        .call_in_session("mcp.demo.count", json!({}), Some("k"))
        .await
        .unwrap();
    assert_eq!(first["result"], 1);
    // The sessions of calls (discovery, at load, had its own).
    let sessions = |server: &McpServer| -> Vec<String> {
        server.requests()[discovery..]
            .iter()
            .filter(|(m, s)| m == "POST" && s != "-")
            .map(|(_, s)| s.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let opened = sessions(&server);
    assert_eq!(opened.len(), 1, "{opened:?}");
    let err = host
        .call_in_session("mcp.demo.slow", json!({"ms": 6000}), Some("k"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            warden::Error::LimitExceeded {
                limit: warden::Limit::Time,
                ..
            }
        ),
        "{err:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.deleted().contains(&opened[0]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead session was never closed: {:?}",
            server.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next call opens a new session, which works.
    let again = host
        .call_in_session("mcp.demo.count", json!({}), Some("k"))
        .await
        .unwrap();
    assert_eq!(again["result"], 1);
    host.shutdown().await;
    let deleted = server.deleted();
    for s in sessions(&server) {
        assert!(deleted.contains(&s), "{s} never closed: {deleted:?}");
    }
}

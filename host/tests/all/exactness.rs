//! Destinations are judged exactly as they are reached, and records say
//! what happened (issue 15, the items done so far): a trailing dot names the
//! same host, a port that does not fit 16 bits is refused, a crash is a
//! `trap` with its cause, host-side waits and refused loads are recorded.

use crate::util::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use warden::{Error, Host};

const HTTP_CAPS: [&str; 2] = ["hostile.http", "hostile.http-wasi"];

#[tokio::test]
async fn a_trailing_dot_does_not_bypass_a_resolve_pin() {
    let server = TestServer::start();
    let mut p = hostile();
    p.grants.network = vec![format!("http://api.internal:{}", server.port)];
    let mut c = config(Path::new(".")).with_plugin("hostile", p);
    c.host.resolve = BTreeMap::from([("api.internal".to_string(), "127.0.0.1".parse().unwrap())]);
    let host = Host::new(c).await.unwrap();
    for (i, cap) in HTTP_CAPS.into_iter().enumerate() {
        let url = format!("http://api.internal.:{}/json", server.port);
        let out = host
            .call(cap, json!({ "arg": url }))
            .await
            .unwrap_or_else(|e| panic!("{cap}: {e}"));
        assert_eq!(out["status"], 200, "{cap}: {out}");
        // It reached the pinned address, not wherever DNS says.
        assert_eq!(server.count(), i + 1, "{cap}");
    }
}

#[tokio::test]
async fn a_port_past_65535_is_refused_not_defaulted() {
    let server = TestServer::start();
    let mut p = hostile();
    p.grants.network = vec!["http://127.0.0.1:*".into()];
    let host = host_with("hostile", p).await;
    for cap in HTTP_CAPS {
        let url = format!("http://127.0.0.1:{}/", 65536 + server.port as u32);
        match host.call(cap, json!({ "arg": url })).await {
            // wasi:http carries no reason (`HttpRequestDenied`); the SDK's
            // client does.
            Err(Error::Denied { message, .. }) => assert!(
                cap == "hostile.http-wasi" || message.contains("not a valid port"),
                "{cap}: {message}"
            ),
            other => panic!("{cap}: expected a denial, got {other:?}"),
        }
    }
    assert_eq!(server.count(), 0);
}

/// A crash is a `trap` record (not a limit) with its whole cause; a limit
/// hit while the guest waits in a host call is a `limit` record; a refused
/// load is a `load` record.
#[tokio::test]
async fn records_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = hostile();
    p.limits.timeout_ms = Some(300);
    let (c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", p), dir.path());
    let host = Host::new(c).await.unwrap();
    let message = match host.call("hostile.panic", json!(null)).await {
        Err(Error::Trap { message, .. }) => message,
        other => panic!("{other:?}"),
    };
    // The trap itself and the guest's own words, not a cut-off backtrace header.
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        message.contains("hostile guest panics on purpose"),
        "{message}"
    );
    // Stopped while sleeping in the host (no wasm running to interrupt).
    let r = host.call("hostile.sleep", json!({"arg": 5000})).await;
    assert!(
        matches!(
            r,
            Err(Error::LimitExceeded {
                limit: warden::Limit::Time,
                ..
            })
        ),
        "{r:?}"
    );
    host.shutdown().await;

    let mut w = warden::PluginConfig::new(component("wrong-world"));
    w.max_instances = 1;
    let (mut c, _) = with_audit(config(Path::new(".")).with_plugin("wrong", w), dir.path());
    c.host.strict_load = true;
    assert!(Host::new(c).await.is_err());

    let all = crate::governance::records(&log);
    let trap: Vec<_> = all.iter().filter(|r| r.effect == "trap").collect();
    assert_eq!(trap.len(), 1, "{all:#?}");
    assert!(trap[0].reason.contains("hostile guest panics on purpose"));
    assert!(!all
        .iter()
        .any(|r| r.effect == "limit" && r.capability == "hostile.panic"));
    assert!(all.iter().any(|r| r.effect == "limit"
        && r.capability == "hostile.sleep"
        && r.reason.contains("time limit")));
    assert!(all
        .iter()
        .any(|r| r.effect == "load" && r.plugin == "wrong" && r.decision == "deny"));
    crate::governance::assert_chain(&log);
}

/// An egress `allow` is written after name resolution, for the address
/// connected to; a resolution denial is one `deny`, and a failure after an
/// allow is an `error` record.
#[tokio::test]
async fn egress_is_recorded_after_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let mut p = hostile();
    p.grants.network = vec![
        format!("http://api.internal:{}", server.port),
        format!("http://*.wild.internal:{}", server.port),
        "http://warden-test.invalid:80".into(),
    ];
    let (mut c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", p), dir.path());
    c.host.resolve = BTreeMap::from([
        ("api.internal".to_string(), "127.0.0.1".parse().unwrap()),
        ("a.wild.internal".to_string(), "127.0.0.1".parse().unwrap()),
    ]);
    let host = Host::new(c).await.unwrap();
    let ok = format!("http://api.internal:{}/json", server.port);
    host.call("hostile.http", json!({ "arg": ok }))
        .await
        .unwrap();
    // A wildcard grant does not reach a private address.
    let private = format!("http://a.wild.internal:{}/json", server.port);
    assert!(host
        .call("hostile.http", json!({ "arg": private }))
        .await
        .is_err());
    let nxdomain = "http://warden-test.invalid/json";
    assert!(host
        .call("hostile.http", json!({ "arg": nxdomain }))
        .await
        .is_err());
    host.shutdown().await;

    let all = crate::governance::records(&log);
    let egress = |target: &str| -> Vec<(String, String)> {
        all.iter()
            .filter(|r| r.effect == "egress" && r.target.contains(target))
            .map(|r| (r.decision.clone(), r.reason.clone()))
            .collect()
    };
    let ok = egress("api.internal");
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0].0, "allow");
    assert!(ok[0].1.contains("-> 127.0.0.1"), "{ok:?}");
    let private = egress("a.wild.internal");
    assert_eq!(private.len(), 1, "{private:?}");
    assert_eq!(private[0].0, "deny");
    let nxdomain = egress("warden-test.invalid");
    assert_eq!(nxdomain.len(), 1, "{nxdomain:?}");
    assert_eq!(nxdomain[0].0, "error");
    assert!(nxdomain[0].1.contains("cannot resolve"), "{nxdomain:?}");
    assert_eq!(server.count(), 1);
}

/// Only one Host header, and it names the destination; URL userinfo never
/// reaches the Host header the host generates.
#[tokio::test]
async fn host_headers_are_exact() {
    let server = TestServer::start();
    let mut p = hostile();
    p.grants.network = vec![format!("http://127.0.0.1:{}", server.port)];
    let host = host_with("hostile", p).await;
    let authority = format!("127.0.0.1:{}", server.port);
    let two = json!({
        "url": server.url("/json"),
        "headers": [["host", authority], ["host", "evil.example"]],
    });
    match host.call("hostile.http-headers", two).await {
        Err(Error::Denied { message, .. }) => {
            assert!(message.contains("more than one Host header"), "{message}")
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(server.count(), 0);

    let with_userinfo = format!("http://user:pw@127.0.0.1:{}/json", server.port);
    let out = host
        .call("hostile.http", json!({ "arg": with_userinfo }))
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    let seen = server.seen();
    let sent: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(sent, vec![authority]);
}

/// Every change to a granted directory is audited; a symbolic link that
/// could point out of it and every hard link are refused.
#[tokio::test]
async fn directory_changes_are_audited_and_links_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw");
    std::fs::create_dir(&rw).unwrap();
    std::fs::write(rw.join("f"), "x").unwrap();
    let mut p = hostile();
    p.grants.dirs = vec![warden::DirGrant {
        host: rw.clone(),
        guest: "/rw".into(),
        mode: warden::DirMode::ReadWrite,
    }];
    let (c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", p), dir.path());
    let host = Host::new(c).await.unwrap();
    let out = host
        .call("hostile.fs-changes", json!({"arg": "/rw"}))
        .await
        .unwrap();
    host.shutdown().await;
    for (op, want) in [
        ("mkdir", "ok"),
        ("symlink-in", "ok"),
        ("rename", "ok"),
        ("unlink", "ok"),
        ("rmdir", "ok"),
    ] {
        assert_eq!(out[op], want, "{op}: {out}");
    }
    for op in ["symlink-out", "symlink-abs", "link"] {
        assert!(
            out[op].as_str().unwrap().contains("not-permitted"),
            "{op}: {out}"
        );
    }
    assert!(std::fs::symlink_metadata(rw.join("evil")).is_err());
    assert!(std::fs::symlink_metadata(rw.join("evil2")).is_err());
    assert!(std::fs::symlink_metadata(rw.join("hard")).is_err());
    assert!(std::fs::symlink_metadata(rw.join("good")).is_ok());

    let all = crate::governance::records(&log);
    let file = |prefix: &str, decision: &str| {
        all.iter()
            .filter(|r| {
                r.effect == "file" && r.target.starts_with(prefix) && r.decision == decision
            })
            .count()
    };
    for prefix in [
        "mkdir d",
        "rename f -> g",
        "unlink g",
        "rmdir d",
        "symlink good -> f",
    ] {
        assert_eq!(file(prefix, "allow"), 1, "{prefix}: {all:#?}");
    }
    for prefix in ["symlink evil ->", "symlink evil2 ->", "link hard -> f"] {
        assert_eq!(file(prefix, "deny"), 1, "{prefix}: {all:#?}");
    }
}

//! A plugin written in Python (componentize-py, built by `cargo xtask test`
//! from `tests/guests/python-net/app.py`) uses the standard library's
//! networking under grants: `urllib` and `socket.create_connection` reach
//! granted servers on 127.0.0.1 by address and by name, are refused others,
//! and every lookup is audited. Its crash reaches the caller with the
//! Python exception.

use crate::util::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use warden::{Error, Host, PluginConfig};

#[tokio::test]
async fn python_networking_works_under_grants_and_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let by_address = TestServer::start();
    let by_name = TestServer::start();
    let ungranted = TestServer::start();
    let mut p = PluginConfig::new(component("python-net"));
    p.grants.network = vec![
        format!("tcp://127.0.0.1:{}", by_address.port),
        format!("tcp://granted.test:{}", by_name.port),
    ];
    let (mut c, log) = with_audit(config(Path::new(".")).with_plugin("py", p), dir.path());
    c.host.resolve = BTreeMap::from([
        ("granted.test".to_string(), "127.0.0.1".parse().unwrap()),
        ("other.test".to_string(), "127.0.0.1".parse().unwrap()),
    ]);
    let host = Host::new(c).await.expect("the Python plugin loads");

    // urllib, by address and by name.
    let out = host
        .call("py.fetch", json!({"url": by_address.url("/json")}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200, "{out}");
    let url = format!("http://granted.test:{}/json", by_name.port);
    let out = host.call("py.fetch", json!({ "url": url })).await.unwrap();
    assert_eq!(out["status"], 200, "{out}");
    assert!(
        out["body"].as_str().unwrap().contains("granted.test"),
        "{out}"
    );
    // socket.create_connection by name, plain text both ways.
    let request = "GET /tiny HTTP/1.1\r\nHost: granted.test\r\nConnection: close\r\n\r\n";
    let out = host
        .call(
            "py.connect",
            json!({"host": "granted.test", "port": by_name.port, "send": request}),
        )
        .await
        .unwrap();
    let received = out["received"].as_str().unwrap();
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(received.ends_with(r#"{"ok":true}"#), "{received}");
    assert_eq!((by_address.count(), by_name.count()), (1, 2));

    // Refused: a name no grant names (before any lookup), an address and
    // port no grant names (at the connect).
    let refused = [
        (
            "py.fetch",
            json!({"url": format!("http://other.test:{}/json", ungranted.port)}),
        ),
        ("py.fetch", json!({"url": ungranted.url("/json")})),
        (
            "py.connect",
            json!({"host": "127.0.0.1", "port": ungranted.port, "send": request}),
        ),
        ("py.resolve", json!({"name": "other.test"})),
    ];
    for (cap, input) in refused {
        match host.call(cap, input.clone()).await {
            Err(Error::Denied { .. }) => {}
            other => panic!("{cap} {input}: expected a denial, got {other:?}"),
        }
    }
    assert_eq!(ungranted.count(), 0);
    // A granted name answers only what the pin says.
    let out = host
        .call("py.resolve", json!({"name": "GRANTED.test."}))
        .await
        .unwrap();
    assert_eq!(out["addresses"], json!(["127.0.0.1"]));

    // A Python exception is a crash whose cause reaches the caller.
    match host.call("py.crash", json!({"why": "checking"})).await {
        Err(Error::Trap { message, .. }) => assert!(
            message.contains("ValueError: the python guest fails on purpose: checking"),
            "{message}"
        ),
        other => panic!("expected a crash, got {other:?}"),
    }
    // So is `sys.exit`, which answers nothing.
    match host.call("py.exit", json!({"code": 3})).await {
        Err(Error::Trap { message, .. }) => {
            assert!(
                message.contains("the guest exited with status"),
                "{message}"
            )
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    host.shutdown().await;

    let all = crate::governance::records(&log);
    let lookups: Vec<_> = all.iter().filter(|r| r.effect == "lookup").collect();
    let found = |decision: &str, target: &str| {
        lookups
            .iter()
            .any(|r| r.decision == decision && r.target == target)
    };
    assert!(found("allow", "granted.test"), "{lookups:#?}");
    assert!(found("deny", "other.test"), "{lookups:#?}");
    assert!(found("allow", "127.0.0.1"), "{lookups:#?}");
    assert!(lookups
        .iter()
        .any(|r| r.target == "granted.test" && r.reason.contains("-> 127.0.0.1")));
    // The connect to the looked-up address was allowed by the name's grant;
    // the one to the ungranted port was refused, naming it.
    assert!(all.iter().any(|r| r.effect == "socket"
        && r.decision == "allow"
        && r.target.ends_with(&format!("127.0.0.1:{}", by_name.port))
        && r.reason.contains("granted.test")));
    assert!(all.iter().any(|r| r.effect == "socket"
        && r.decision == "deny"
        && r.target.ends_with(&format!("127.0.0.1:{}", ungranted.port))));
    assert!(all
        .iter()
        .any(|r| r.effect == "trap" && r.reason.contains("ValueError")));
    crate::governance::assert_chain(&log);
}

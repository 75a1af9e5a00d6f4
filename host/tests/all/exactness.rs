//! Destinations are judged exactly as they are reached (issue 15, the
//! exactness items done so far): a trailing dot names the same host, and a
//! port that does not fit 16 bits is refused, not replaced.

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

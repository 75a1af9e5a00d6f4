//! Secrets stay out of plugins (issue 15): a value is substituted only into
//! the headers and methods it is bound to, never from a caller's input, and
//! is cut out of everything the response hands back, against a granted
//! server that quotes every request it gets.

use crate::util::*;
use serde_json::{json, Value};
use std::path::Path;
use warden::{Error, Host, PluginConfig, SecretGrant};

const TOKEN: &str = "tok\"9f3-very-secret";
const KEY: &str = "key-77c1-also-secret";

async fn host(server: &TestServer, dir: &Path) -> (Host, std::path::PathBuf) {
    let origin = format!("http://127.0.0.1:{}", server.port);
    let secrets = vec![
        // The default binding: the `authorization` header, any method but
        // TRACE and CONNECT.
        SecretGrant::new("TOKEN", vec![origin.clone()]),
        SecretGrant {
            headers: vec!["X-Api-Key".into()],
            methods: vec!["POST".into()],
            ..SecretGrant::new("KEY", vec![origin.clone()])
        },
    ];
    let mut hostile = hostile();
    hostile.grants.network = vec![origin.clone()];
    hostile.grants.secrets = secrets.clone();
    hostile.limits.max_response_bytes = Some(1 << 20);
    let mut http = PluginConfig::new(component("http"));
    http.grants.network = vec![origin.clone()];
    http.grants.secrets = secrets;
    let c = config(Path::new("."))
        .with_plugin("hostile", hostile)
        .with_plugin("http", http);
    let (mut c, log) = with_audit(c, dir);
    for (name, var, value) in [
        ("TOKEN", "WARDEN_SECRETS_TEST_TOKEN", TOKEN),
        ("KEY", "WARDEN_SECRETS_TEST_KEY", KEY),
    ] {
        std::env::set_var(var, value);
        c.secrets.insert(
            name.into(),
            warden::config::SecretSource {
                env: Some(var.into()),
                file: None,
                exchange: None,
            },
        );
    }
    c.providers.insert("Http".into(), "http".into());
    c.capabilities = vec![
        http_capability(
            "reflect.with-token",
            json!({"base-url": server.url(""), "path": "/reflect", "auth-secret": "TOKEN", "headers": {"x-request-id": "{id}"}}),
        ),
        http_capability(
            "reflect.by-template",
            json!({"base-url": server.url(""), "path": "/reflect", "headers": {"authorization": "{auth}"}}),
        ),
    ];
    (Host::new(c).await.expect("host loads"), log)
}

/// What the hostile plugin sends: `method` with `headers`, through the
/// host's HTTP client or `wasi:http`.
fn request(server: &TestServer, method: &str, headers: &[(&str, &str)], wasi: bool) -> Value {
    json!({"url": server.url("/reflect"), "method": method, "headers": headers, "wasi": wasi})
}

fn assert_no_value(out: &Value) {
    let text = out.to_string();
    for value in [TOKEN, KEY, &serde_json::to_string(TOKEN).unwrap()] {
        let bare = value.trim_matches('"');
        assert!(!text.contains(bare), "the plugin got a secret back: {text}");
    }
}

fn denied(r: warden::Result<Value>, what: &str) -> String {
    match r {
        Err(e @ Error::Denied { .. }) => {
            let text = e.to_string();
            assert!(!text.contains(TOKEN) && !text.contains(KEY), "{text}");
            text
        }
        other => panic!("{what}: expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_never_reads_a_substituted_value_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let (host, log) = host(&server, dir.path()).await;
    let mut sent = 0;

    // Bound uses: the value reaches the server, which quotes it in its
    // response head and body (in 7-byte chunks); the plugin sees neither.
    for wasi in [false, true] {
        for (method, headers, value) in [
            (
                "GET",
                vec![("authorization", "Bearer {{secret:TOKEN}}")],
                TOKEN,
            ),
            ("DELETE", vec![("Authorization", "{{secret:TOKEN}}")], TOKEN),
            ("POST", vec![("x-api-key", "{{secret:KEY}}")], KEY),
        ] {
            let out = host
                .call("hostile.request", request(&server, method, &headers, wasi))
                .await
                .unwrap_or_else(|e| panic!("{method} {headers:?}: {e}"));
            sent += 1;
            assert_eq!(out["status"], 200, "{out}");
            assert_no_value(&out);
            let body = out["body"].as_str().unwrap();
            assert!(body.starts_with(method), "{body}");
            assert!(body.contains("[redacted]"), "{body}");
            let quoted = server.seen().last().unwrap().headers.clone();
            assert!(
                quoted.iter().any(|(_, v)| v.contains(value)),
                "the server got the value: {quoted:?}"
            );
            // The head quoted it too, and no length was left to tell.
            let head = out["headers"].to_string();
            assert!(head.contains("[redacted]"), "{head}");
            assert!(!head.contains("content-length"), "{head}");
        }
    }
    assert_eq!(server.count(), sent);

    // Unbound uses are refused before anything is sent.
    for wasi in [false, true] {
        for (method, headers) in [
            ("TRACE", vec![("authorization", "{{secret:TOKEN}}")]),
            ("CONNECT", vec![("authorization", "{{secret:TOKEN}}")]),
            ("GET", vec![("x-leak", "{{secret:TOKEN}}")]),
            ("GET", vec![("authorization", "{{secret:KEY}}")]),
            ("PUT", vec![("x-api-key", "{{secret:KEY}}")]),
            ("GET", vec![("cookie", "a={{secret:TOKEN}}")]),
        ] {
            let r = host
                .call("hostile.request", request(&server, method, &headers, wasi))
                .await;
            let what = format!("{method} {headers:?} (wasi: {wasi})");
            let message = denied(r, &what);
            // The SDK's client carries the reason; `wasi:http` only says
            // `HttpRequestDenied`.
            assert!(wasi || message.contains("secret `"), "{what}: {message}");
        }
    }
    assert_eq!(server.count(), sent, "a refused request reached the server");

    // Through plugins/http: a placeholder from the caller is refused, in a
    // passed-through header, in a header rendered from input, whole or in
    // pieces.
    for (cap, input) in [
        (
            "http.request",
            json!({"url": server.url("/reflect"), "headers": {"x-leak": "{{secret:TOKEN}}"}}),
        ),
        (
            "http.request",
            json!({"url": server.url("/reflect"), "headers": {"authorization": "Bearer {{secret:TOKEN}}"}}),
        ),
        ("reflect.with-token", json!({"id": "{{secret:TOKEN}}"})),
        ("reflect.by-template", json!({"auth": "{{secret:TOKEN}}"})),
        (
            "reflect.with-token",
            json!({"id": ["{{secret:", "TOKEN}}"]}),
        ),
    ] {
        let message = denied(host.call(cap, input.clone()).await, cap);
        assert!(
            message.contains("never by its caller"),
            "{cap} {input}: {message}"
        );
    }
    assert_eq!(server.count(), sent, "a refused request reached the server");
    // The capability's own binding still works, and its response is
    // redacted for plugins/http as for any plugin.
    let out = host
        .call("reflect.with-token", json!({"id": "r-1"}))
        .await
        .unwrap();
    assert_no_value(&out);
    assert!(out.to_string().contains("Bearer [redacted]"), "{out}");
    // The same through the text path, which passes a plugin's output on
    // as it is only when the plugin holds no secrets.
    let text = host
        .call_json(
            "reflect.with-token",
            r#"{"id": "r-2"}"#,
            &warden::CallContext::default(),
        )
        .await
        .unwrap();
    assert_no_value(&serde_json::from_str(&text).unwrap());
    assert!(text.contains("Bearer [redacted]"), "{text}");
    assert_eq!(server.count(), sent + 2);
    host.shutdown().await;

    let all = crate::governance::records(&log);
    let secret = |decision: &str, reason: &str| {
        all.iter()
            .filter(|r| r.effect == "secret" && r.decision == decision && r.reason.contains(reason))
            .count()
    };
    // Each refusal above is a `secret` denial naming what was wrong.
    assert_eq!(secret("deny", "with a TRACE request"), 2, "{all:#?}");
    assert_eq!(secret("deny", "with a CONNECT request"), 2);
    assert_eq!(secret("deny", "may not fill header `x-leak`"), 2);
    assert_eq!(secret("deny", "may not fill header `cookie`"), 2);
    assert_eq!(secret("deny", "with a PUT request"), 2);
    // Each redaction is recorded, for the head and for the body.
    assert!(secret("deny", "response head quoted a secret's value") >= 7);
    assert!(secret("deny", "response body quoted a secret's value") >= 7);
    assert_eq!(secret("allow", "bound to this destination"), sent + 2);
    assert!(all
        .iter()
        .all(|r| !r.reason.contains(TOKEN) && !r.target.contains(KEY)));
    crate::governance::assert_chain(&log);
}

/// Every response a plugin granted secrets receives is redacted of every
/// value granted to it, whether or not that request carried one: a server
/// that stores request data and hands it back later (a paste service, a
/// webhook inspector) returns it redacted. The host owns what decides a
/// response's shape: it asks for `identity`, refuses the guest's `range`,
/// `if-range` and `te`, and refuses an encoded response. Through
/// `wasi:http` and the SDK client alike (issue 28, items 6 and 7).
#[tokio::test]
async fn no_response_shape_or_later_request_brings_a_value_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let (host, log) = host(&server, dir.path()).await;
    let call = |url: String, method: &str, headers: Vec<(&str, &str)>, wasi: bool| {
        let input = json!({"url": url, "method": method, "headers": headers, "wasi": wasi});
        host.call("hostile.request", input)
    };
    for wasi in [false, true] {
        for (method, headers) in [
            ("GET", vec![("authorization", "Bearer {{secret:TOKEN}}")]),
            ("POST", vec![("x-api-key", "{{secret:KEY}}")]),
        ] {
            let stored = call(server.url("/store"), method, headers, wasi)
                .await
                .unwrap();
            assert_eq!(stored["status"], 200, "{stored}");
            let back = call(server.url("/load"), "GET", vec![], wasi)
                .await
                .unwrap();
            assert_no_value(&back);
            let body = back["body"].as_str().unwrap();
            assert!(body.contains("[redacted]"), "{body}");
        }
        // A plugin that decodes what it received (plugins/http parses JSON,
        // `\u` escapes and all) still returns no value: its output is cut.
        let decoded = host
            .call("http.request", json!({"url": server.url("/escaped")}))
            .await
            .unwrap();
        assert_no_value(&decoded);
        assert!(decoded.to_string().contains("[redacted]"), "{decoded}");
        // Whatever the guest asks for, the server is asked for `identity`.
        let asked = call(
            server.url("/json"),
            "GET",
            vec![("accept-encoding", "gzip, br")],
            wasi,
        )
        .await
        .unwrap();
        let seen: Value = serde_json::from_str(asked["body"].as_str().unwrap()).unwrap();
        assert_eq!(seen["headers"]["accept-encoding"], "identity", "{seen}");
        // A partial or transfer-coded response is never asked for, with a
        // secret in the request or without.
        for (name, value) in [
            ("range", "bytes=0-3"),
            ("if-range", "\"x\""),
            ("te", "gzip"),
        ] {
            for secret in [None, Some(("authorization", "{{secret:TOKEN}}"))] {
                let before = server.count();
                let headers: Vec<_> = std::iter::once((name, value)).chain(secret).collect();
                let r = call(server.url("/json"), "GET", headers, wasi).await;
                match r {
                    // The SDK client does not let a guest set `te` at all.
                    Err(warden::Error::Capability { message, .. }) if name == "te" => {
                        assert!(message.contains("set by the host"), "{message}")
                    }
                    r => _ = denied(r, name),
                }
                assert_eq!(server.count(), before, "`{name}` reached the server");
            }
        }
        // A response encoded anyway cannot be checked, and is refused.
        for coding in ["gzip", "br", "deflate", "x-made-up", "identity,gzip"] {
            let url = server.url(&format!("/encoded?coding={coding}"));
            let r = call(url, "GET", vec![], wasi).await;
            assert!(r.is_err(), "{coding}: {r:?}");
        }
        // A response that declares more than max-response-bytes is refused.
        let r = call(server.url("/big?n=2000000"), "GET", vec![], wasi).await;
        assert!(r.is_err(), "{r:?}");
    }
    host.shutdown().await;
    let oversized = crate::governance::records(&log)
        .into_iter()
        .filter(|r| r.effect == "egress" && r.decision == "error")
        .filter(|r| r.reason.contains("larger than limits.max-response-bytes"))
        .count();
    assert_eq!(oversized, 2, "through wasi:http and the SDK client");
    // Each refused response is on the record, not only in the log.
    let refused = crate::governance::records(&log)
        .into_iter()
        .filter(|r| r.effect == "egress" && r.decision == "error")
        .filter(|r| r.reason.contains("cannot be checked for secrets"))
        .count();
    assert_eq!(
        refused, 10,
        "five codings, through wasi:http and the SDK client"
    );
}

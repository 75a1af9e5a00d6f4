//! The HTTP transport's refusals: Host and Origin (DNS rebinding), bearer
//! tokens and principals, request size, malformed and mismatched requests.

use crate::util::*;
use serde_json::json;
use std::process::Command;

fn init_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
           "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string()
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

#[test]
fn host_and_origin_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let p = serve.port;
    let (status, _, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Host", "evil.example:80")],
        &init_body(),
    );
    assert_eq!(status, 421, "a foreign Host header");
    let (status, _, body) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Origin", "http://evil.example")],
        &init_body(),
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = http(p, "POST", &[JSON, ACCEPT, ("Origin", "null")], &init_body());
    assert_eq!(status, 403);
    let (status, headers, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Origin", &format!("http://localhost:{p}"))],
        &init_body(),
    );
    assert_eq!(status, 200);
    assert!(header(&headers, "mcp-session-id").is_some());
    // Not the endpoint, not a method.
    let (status, _, _) = http(p, "PUT", &[JSON], "{}");
    assert_eq!(status, 405);
}

#[test]
fn allowed_hosts_widen_the_host_check_by_whole_name_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[serve]\nallowed-hosts = [\"central.internal\"]\n",
        base_config(dir.path())
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    let status = |host: &str| http(p, "POST", &[JSON, ACCEPT, ("Host", host)], &init_body()).0;
    for host in ["central.internal", "CENTRAL.internal:8080", "localhost:1"] {
        assert_eq!(status(host), 200, "{host}");
    }
    for host in [
        "central.internal.evil.example",
        "evil-central.internal",
        "central.internal:x",
        "central.internal:99999",
        "central.internal@evil.example",
        "internal",
    ] {
        assert_eq!(status(host), 421, "{host}");
    }
    // A name that cannot be one is refused at start, naming the field.
    let bad = format!(
        "{}\n[serve]\nallowed-hosts = [\"https://central.internal\"]\n",
        base_config(dir.path())
    );
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(warden_bin())
        .arg("--config")
        .arg(&path)
        .args(["serve", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allowed-hosts[0]"), "{err}");
}

#[test]
fn malformed_and_mismatched_requests_get_json_rpc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let p = serve.port;
    let (status, _, body) = http(p, "POST", &[JSON, ACCEPT], "{not json");
    assert_eq!(
        (status, message(&body)["error"]["code"].as_i64()),
        (400, Some(-32700))
    );
    let (status, _, body) = http(p, "POST", &[JSON, ACCEPT], "[]");
    assert_eq!(
        (status, message(&body)["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    // 2026-07-28: headers must match the body.
    let (status, m) = modern(
        p,
        2,
        "tools/call",
        json!({"name": "text.case", "arguments": {"text": "a", "to": "upper"}}),
        &[],
    );
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["result"]["structuredContent"]["text"], "A");
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "text.case", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string();
    let (status, _, b) = http(
        p,
        "POST",
        &[
            JSON,
            ACCEPT,
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "text.slugify"),
        ],
        &body,
    );
    assert_eq!(
        (status, message(&b)["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{b}"
    );
    let (status, _, b) = http(
        p,
        "POST",
        &[
            JSON,
            ACCEPT,
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
            ("Mcp-Name", "text.case"),
        ],
        &body,
    );
    assert_eq!(
        (status, message(&b)["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{b}"
    );
    // An unknown version names the supported ones.
    let body = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string();
    let (status, _, b) = http(
        p,
        "POST",
        &[
            JSON,
            ACCEPT,
            ("MCP-Protocol-Version", "2099-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
        &body,
    );
    let m = message(&b);
    assert_eq!(
        (status, m["error"]["code"].as_i64()),
        (400, Some(-32022)),
        "{b}"
    );
    assert_eq!(m["error"]["data"]["supported"][0], "2026-07-28");
    // Missing envelope keys, unknown methods, bad params.
    let (status, m) = modern(p, 5, "resources/list", json!({}), &[]);
    assert_eq!(
        (status, m["error"]["code"].as_i64()),
        (404, Some(-32601)),
        "{m}"
    );
    let (status, m) = modern(p, 6, "tools/call", json!({"name": "no.such"}), &[]);
    assert_eq!(
        (status, m["error"]["code"].as_i64()),
        (400, Some(-32602)),
        "{m}"
    );
    let (status, m) = modern(p, 7, "tools/list", json!({"cursor": "made-up"}), &[]);
    assert_eq!(
        (status, m["error"]["code"].as_i64()),
        (400, Some(-32602)),
        "{m}"
    );
    let (_, m) = modern(p, 8, "tools/list", json!({}), &[]);
    let r = &m["result"];
    assert_eq!(
        (
            r["resultType"].as_str(),
            r["ttlMs"].as_i64(),
            r["cacheScope"].as_str()
        ),
        (Some("complete"), Some(0), Some("public"))
    );
    // A forged or replayed requestState is refused.
    let (_, m) = modern(
        p,
        9,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a"}, "requestState": "v1.99999999999999.00.00",
        "inputResponses": {"warden-approval": {"action": "accept", "content": {"approve": true}}}}),
        &[],
    );
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requestState refused"),
        "{m}"
    );
    // 2025-11-25 without a session, with an unknown one.
    let list = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}).to_string();
    let (status, _, _) = http(p, "POST", &[JSON, ACCEPT], &list);
    assert_eq!(status, 400);
    let (status, _, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", "0123")],
        &list,
    );
    assert_eq!(status, 404);
    // Too large.
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5 << 20));
    let (status, _, _) = http(p, "POST", &[JSON, ACCEPT], &big);
    assert_eq!(status, 413);
}

const TOKEN_A: &str = "token-for-alice-0123456789";
const TOKEN_B: &str = "token-for-bob-0123456789ab";

fn with_tokens(dir: &std::path::Path) -> String {
    format!(
        "{}\n[secrets.A]\nenv = \"WARDEN_TEST_TOKEN_A\"\n[secrets.B]\nfile = \"token-b\"\n\
         [serve]\ntokens = [{{ secret = \"A\", principal = \"alice\" }}, {{ secret = \"B\", principal = \"bob\" }}]\n",
        base_config(dir)
    )
}

#[test]
fn bearer_tokens_name_principals_and_principals_do_not_share() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token-b"), format!("{TOKEN_B}\n")).unwrap();
    std::fs::write(dir.path().join("warden.toml"), with_tokens(dir.path())).unwrap();
    // The token of `A` comes from the environment the server inherits.
    let serve = {
        let config = dir.path().join("warden.toml");
        std::env::set_var("WARDEN_TEST_TOKEN_A", TOKEN_A);
        Serve::start_file(&config, "127.0.0.1:0", &[])
    };
    let p = serve.port;
    let bearer = |t: &str| format!("Bearer {t}");
    let (status, headers, _) = http(p, "POST", &[JSON, ACCEPT], &init_body());
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let (status, _, _) = http(
        p,
        "POST",
        &[
            JSON,
            ACCEPT,
            ("Authorization", "Bearer wrong-token-0123456789"),
        ],
        &init_body(),
    );
    assert_eq!(status, 401);
    let auth_a = bearer(TOKEN_A);
    let auth_b = bearer(TOKEN_B);
    let (status, headers, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Authorization", &auth_a)],
        &init_body(),
    );
    assert_eq!(status, 200);
    let session = header(&headers, "mcp-session-id").unwrap().to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let (status, _, _) = http(
        p,
        "POST",
        &[
            JSON,
            ACCEPT,
            ("Authorization", &auth_a),
            ("Mcp-Session-Id", &session),
        ],
        &list,
    );
    assert_eq!(status, 200);
    // Bob cannot use Alice's session id, nor end it.
    let (status, _, _) = http(
        p,
        "POST",
        &[
            JSON,
            ACCEPT,
            ("Authorization", &auth_b),
            ("Mcp-Session-Id", &session),
        ],
        &list,
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(
        p,
        "DELETE",
        &[("Authorization", &auth_b), ("Mcp-Session-Id", &session)],
        "",
    );
    assert_eq!(status, 404);
    // The same 2026-07-28 handle names a different session per principal.
    let count = |auth: &str| {
        let (_, m) = modern(
            p,
            3,
            "tools/call",
            json!({"name": "hostile.session-count", "arguments": {}, "_meta": {"dev.warden/session": "h"}}),
            &[("Authorization", auth)],
        );
        m["result"]["structuredContent"]["result"].as_i64().unwrap()
    };
    assert_eq!(
        (
            count(&auth_a),
            count(&auth_a),
            count(&auth_b),
            count(&auth_a)
        ),
        (1, 2, 1, 3)
    );
    // The tool list of an authenticated server is cacheable per principal only.
    let (_, m) = modern(p, 4, "tools/list", json!({}), &[("Authorization", &auth_a)]);
    assert_eq!(m["result"]["cacheScope"], "private");
    let (status, _, _) = http(
        p,
        "DELETE",
        &[("Authorization", &auth_a), ("Mcp-Session-Id", &session)],
        "",
    );
    assert_eq!(status, 200);
    let records = audit(&dir.path().join("audit.jsonl"));
    let clients: Vec<&str> = records
        .iter()
        .filter_map(|r| r["client"].as_str())
        .collect();
    assert!(
        clients.iter().any(|c| c.starts_with("alice over http")),
        "{clients:?}"
    );
    assert!(
        clients.iter().any(|c| c.starts_with("bob over http")),
        "{clients:?}"
    );
}

#[test]
fn a_network_bind_without_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, base_config(dir.path())).unwrap();
    let out = Command::new(warden_bin())
        .arg("--config")
        .arg(&config)
        .args(["serve", "--http", "0.0.0.0:0"])
        .env(
            "WARDEN_CACHE_DIR",
            crate::components::target_dir().join("warden-test-cache"),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("without authentication"), "{err}");
    // Strict config: an unknown key under [serve] is named.
    std::fs::write(
        &config,
        format!("{}\n[serve]\nport = 1\n", base_config(dir.path())),
    )
    .unwrap();
    let out = Command::new(warden_bin())
        .arg("--config")
        .arg(&config)
        .args(["serve", "--stdio"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("port"), "{err}");
    // Neither transport asked for.
    let out = Command::new(warden_bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Every `[serve]` limit, set small, is enforced.
#[test]
fn serve_limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[serve]\nallowed-origins = [\"https://app.example\"]\nmax-request-bytes = 2000\n\
         max-concurrent-per-client = 1\nmax-concurrent = 1\napproval-timeout-ms = 300\nsession-idle-ms = 400\n\
         max-sessions = 2\nmax-sessions-per-principal = 2\nshutdown-grace-ms = 300\n",
        base_config(dir.path())
    );
    let mut serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    // allowed-origins
    let (status, _, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Origin", "https://app.example")],
        &init_body(),
    );
    assert_eq!(status, 200);
    let (status, _, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Origin", "https://other.example")],
        &init_body(),
    );
    assert_eq!(status, 403);
    // max-sessions: a second one fits, a third does not.
    let (status, _, _) = http(p, "POST", &[JSON, ACCEPT], &init_body());
    assert_eq!(status, 200);
    let (status, _, body) = http(p, "POST", &[JSON, ACCEPT], &init_body());
    assert_eq!(
        (status, message(&body)["error"]["code"].as_i64()),
        (200, Some(-32000)),
        "{body}"
    );
    // session-idle-ms: both end after 400 ms of silence, making room.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, headers, _) = http(p, "POST", &[JSON, ACCEPT], &init_body());
    assert_eq!(status, 200);
    let session = header(&headers, "mcp-session-id").unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let (status, _, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &session)],
        &list,
    );
    assert_eq!(status, 404, "an idle session ended");
    // max-request-bytes
    let (status, _, _) = http(
        p,
        "POST",
        &[JSON, ACCEPT],
        &format!("{{\"x\":\"{}\"}}", "a".repeat(2500)),
    );
    assert_eq!(status, 413);
    // approval-timeout-ms: the requestState expires.
    let (_, m) = modern(
        p,
        3,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a"},
        "_meta": {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}}),
        &[],
    );
    assert_eq!(m["result"]["resultType"], "input_required", "{m}");
    let state = m["result"]["requestState"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (_, m) = modern(
        p,
        4,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a"}, "requestState": state,
        "inputResponses": {"warden-approval": {"action": "accept", "content": {"approve": true}}}}),
        &[],
    );
    assert!(
        m["error"]["message"].as_str().unwrap().contains("expired"),
        "{m}"
    );
    // max-concurrent: a second request while one runs gets 429 (each
    // connection of a local client has its own max-concurrent-per-client;
    // front_door.rs tests both).
    let slow = std::thread::spawn(move || {
        modern(
            p,
            5,
            "tools/call",
            json!({"name": "hostile.sleep", "arguments": {"arg": 1500}}),
            &[],
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, m) = modern(p, 6, "tools/list", json!({}), &[]);
    assert_eq!(
        (status, m["error"]["code"].as_i64()),
        (429, Some(-32000)),
        "{m}"
    );
    assert_eq!(
        slow.join().unwrap().1["result"]["structuredContent"]["result"]["slept"],
        1500
    );
    // shutdown-grace-ms: a call still running after 300 ms is abandoned.
    let _slow = std::thread::spawn(move || {
        modern(
            p,
            7,
            "tools/call",
            json!({"name": "hostile.sleep", "arguments": {"arg": 20000}}),
            &[],
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = serve.signal_and_wait("TERM");
    assert!(status.success());
    assert!(serve.log().contains("abandoned"), "{}", serve.log());
}

/// Approval is asked only about input that fits the tool's schema, in both
/// revisions, and every round of it is in the audit log: the 2026-07-28
/// `input_required` round as well as its answer.
#[test]
fn approval_is_asked_after_validation_and_every_round_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let p = serve.port;
    let elicits = json!({"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}});
    // Whatever shape the bad input has, the answer is a tool error, not a question.
    for (n, bad) in [json!({"text": 5}), json!({}), json!({"text": ["a"]})]
        .into_iter()
        .enumerate()
    {
        let (_, m) = modern(
            p,
            10 + n as u64,
            "tools/call",
            json!({"name": "text.stats", "arguments": bad, "_meta": elicits}),
            &[],
        );
        assert_eq!(m["result"]["isError"], true, "{bad}: {m}");
        assert_ne!(m["result"]["resultType"], "input_required", "{bad}: {m}");
    }
    // Valid input: one round to the user, then the call with the answer.
    let (_, m) = modern(
        p,
        20,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a b"}, "_meta": elicits}),
        &[],
    );
    assert_eq!(m["result"]["resultType"], "input_required", "{m}");
    let state = m["result"]["requestState"].as_str().unwrap().to_string();
    let (_, m) = modern(
        p,
        21,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a b"}, "requestState": state,
        "inputResponses": {"warden-approval": {"action": "accept", "content": {"approve": true}}}}),
        &[],
    );
    assert_eq!(m["result"]["structuredContent"]["words"], 2, "{m}");
    // 2025-11-25, a client that can be asked: bad input is refused at once,
    // without an elicitation on the stream.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let (_, headers, _) = http(p, "POST", &[JSON, ACCEPT], &init.to_string());
    let session = header(&headers, "mcp-session-id").unwrap().to_string();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "text.stats", "arguments": {"text": 5}}});
    let (_, _, body) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &session)],
        &call.to_string(),
    );
    assert!(!body.contains("elicitation/create"), "{body}");
    assert_eq!(message(&body)["result"]["isError"], true, "{body}");
    let records = audit(&dir.path().join("audit.jsonl"));
    let approvals: Vec<&str> = records
        .iter()
        .filter(|r| r["effect"] == "approval")
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(approvals.len(), 2, "{approvals:?}");
    assert!(approvals[0].starts_with("deferred"), "{approvals:?}");
    assert!(approvals[1].starts_with("approved"), "{approvals:?}");
    let refused_input = records
        .iter()
        .filter(|r| r["effect"] == "call" && r["decision"] == "deny")
        .count();
    assert_eq!(refused_input, 4, "three modern and one legacy");
}

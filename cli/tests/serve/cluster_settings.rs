//! Each `[cluster]` and approval-key field, end to end on a real Redis:
//! `username` and `password-secret` against a Redis whose only user needs
//! them (a wrong or missing password refuses, saying why), `key-prefix`
//! keeping two services on one Redis apart (their keys under their
//! prefixes), `timeout-ms` against a Redis that never answers, and
//! `approval-previous-key-secret` carrying a key rotation across replicas.

use crate::util::*;
use serde_json::{json, Value};
use std::time::Duration;
use warden_test_support::cluster::RedisServer;

const USER: &str = "warden-svc";
const PASSWORD: &str = "redis-password-0123456789";

/// A replica's configuration: the base one, `text.case` limited to 5 calls
/// a minute, `[cluster]` with `cluster` (its lines), `[serve]` with
/// `serve`, and secrets `NAME = value` from `secrets`, each in a file.
fn config(dir: &std::path::Path, cluster: &str, serve: &str, secrets: &[(&str, &str)]) -> String {
    let mut text = base_config(dir);
    text.push_str("\n[[policy.rules]]\ncapability = \"text.case\"\ncalls-per-minute = 5\n");
    for (name, value) in secrets {
        let file = format!("secret-{}", name.to_lowercase());
        std::fs::write(dir.join(&file), value).unwrap();
        text.push_str(&format!("\n[secrets.{name}]\nfile = \"{file}\"\n"));
    }
    text.push_str(&format!("\n[cluster]\n{cluster}\n\n[serve]\n{serve}\n"));
    text
}

/// A replica started with [`config`] in a folder of its own.
fn replica(cluster: &str, serve: &str, secrets: &[(&str, &str)]) -> (tempfile::TempDir, Serve) {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), cluster, serve, secrets);
    let serve = Serve::start(dir.path(), &text, &[]);
    (dir, serve)
}

/// One `text.case` call: `Ok` if admitted and served, else the refusal's
/// kind and text.
fn case(port: u16, id: u64) -> Result<(), (String, String)> {
    let args = json!({"name": "text.case", "arguments": {"text": "x", "to": "upper"}});
    let (status, m) = modern(port, id, "tools/call", args, &[]);
    assert_eq!(status, 200, "{m}");
    let result = &m["result"];
    if result["isError"] == false {
        return Ok(());
    }
    let kind = result["_meta"]["dev.warden/error"].as_str().unwrap_or("");
    Err((kind.to_string(), result["content"][0]["text"].to_string()))
}

/// The keys in `redis`, as its user sees them (`redis-cli`, which Debian's
/// redis-server brings).
fn redis_keys(redis: &RedisServer) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--user",
            USER,
            "--pass",
            PASSWORD,
        ])
        .args(["--no-auth-warning", "KEYS", "*"])
        .output()
        .expect("redis-cli (Debian's redis-tools)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn redis_credentials_and_key_prefixes_are_applied() {
    // Redis's default user is off: only USER with PASSWORD gets in.
    let redis = RedisServer::start_with(&[
        "--user",
        "default",
        "off",
        "--user",
        USER,
        "on",
        ">redis-password-0123456789",
        "~*",
        "&*",
        "+@all",
    ]);
    let url = redis.url();
    let with = |prefix: &str| {
        format!(
            "redis = \"{url}\"\nusername = \"{USER}\"\npassword-secret = \"REDIS\"\n\
             key-prefix = \"{prefix}\"\ntimeout-ms = 300"
        )
    };
    let secret = [("REDIS", PASSWORD)];
    let (_a0d, a0) = replica(&with("team-a"), "", &secret);
    let (_a1d, a1) = replica(&with("team-a"), "", &secret);
    let (_bd, b) = replica(&with("team-b:warden"), "", &secret);

    // team-a's two replicas share 5 calls; team-b has 5 of its own.
    for id in 0..5 {
        case(a0.port, id).expect("within team-a's 5");
    }
    let (kind, text) = case(a1.port, 10).expect_err("team-a's window is full");
    assert_eq!(kind, "rate-limited", "{text}");
    assert!(text.contains("5 calls per minute"), "{text}");
    for id in 20..25 {
        case(b.port, id).expect("team-b counts apart");
    }
    assert!(case(b.port, 30).is_err(), "team-b's own 5 are used");
    let keys = redis_keys(&redis);
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| k.starts_with("team-a:") || k.starts_with("team-b:warden:")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("team-a:")), "{keys:?}");

    // A wrong password, or none: refused (fail-closed), the reason said.
    let wrong = [("REDIS", "not-the-password-at-all")];
    let (_wd, w) = replica(&with("team-a"), "", &wrong);
    let nameless = format!("redis = \"{url}\"\ntimeout-ms = 300");
    let (_nd, n) = replica(&nameless, "", &[]);
    for (who, server) in [("wrong password", &w), ("no credentials", &n)] {
        let (kind, text) = case(server.port, 40).expect_err(who);
        assert_eq!(kind, "rate-limited", "{who}: {text}");
        assert!(text.contains("fail-closed"), "{who}: {text}");
        assert!(
            text.contains("refused this replica") && text.contains("cluster.password-secret"),
            "{who}: the reason is not said: {text}"
        );
        server.wait_for_log(
            "cluster: Redis refuses this replica",
            Duration::from_secs(10),
        );
        assert!(!server.log().contains(PASSWORD), "{who}: {}", server.log());
    }
}

#[test]
fn a_redis_that_never_answers_is_given_up_on_after_timeout_ms() {
    let hung = format!(
        "redis://127.0.0.1:{}",
        warden_test_support::http_server::silent_port()
    );
    // 200 ms: a call under a shared limit is refused, saying why.
    let (_d, quick) = replica(&format!("redis = \"{hung}\"\ntimeout-ms = 200"), "", &[]);
    let (kind, text) = case(quick.port, 1).expect_err("Redis never answers");
    assert_eq!(kind, "rate-limited", "{text}");
    assert!(text.contains("did not answer"), "{text}");
    // 60 s: the same call is still waiting 4 s later.
    let (_d, patient) = replica(&format!("redis = \"{hung}\"\ntimeout-ms = 60000"), "", &[]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "text.case", "arguments": {"text": "x", "to": "upper"}, "_meta": meta}});
    let waited = answer_within(patient.port, &body, Duration::from_secs(4));
    assert!(waited.is_none(), "answered within 4 s: {waited:?}");
}

/// The answer to a 2026-07-28 `body` from `port`, if one comes within
/// `limit`.
fn answer_within(port: u16, body: &Value, limit: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n\
         Mcp-Name: text.case\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut got = String::new();
    match s.read_to_string(&mut got) {
        Ok(_) if !got.is_empty() => Some(got),
        _ => None,
    }
}

/// Asks `port` for `text.stats` (approval required) as a client that can
/// ask its user: the `requestState`.
fn ask(port: u16) -> String {
    let meta = json!({"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}});
    let params = json!({"name": "text.stats", "arguments": {"text": "a b"}, "_meta": meta});
    let (_, m) = modern(port, 1, "tools/call", params, &[]);
    assert_eq!(m["result"]["resultType"], "input_required", "{m}");
    m["result"]["requestState"].as_str().unwrap().to_string()
}

/// Answers yes with `state` on `port`: the result, or the error's text.
fn approve(port: u16, state: &str) -> Result<Value, String> {
    let answer = json!({"warden-approval": {"action": "accept", "content": {"approve": true}}});
    let params = json!({"name": "text.stats", "arguments": {"text": "a b"},
        "requestState": state, "inputResponses": answer});
    let (_, m) = modern(port, 2, "tools/call", params, &[]);
    match m.get("error") {
        Some(e) => Err(e["message"].as_str().unwrap_or("").to_string()),
        None => Ok(m["result"].clone()),
    }
}

#[test]
fn an_approval_key_rotation_spans_replicas() {
    let redis = RedisServer::start();
    let cluster = format!("redis = \"{}\"", redis.url());
    let old = ("OLD", "the-old-approval-key-0123456789abcdef");
    let new = ("NEW", "the-new-approval-key-0123456789abcdef");
    let current = |name: &str| format!("approval-key-secret = \"{name}\"");
    let rotating = "approval-key-secret = \"NEW\"\napproval-previous-key-secret = \"OLD\"";
    // Not yet rotated, rotating (new key, old one still accepted), done.
    let (_d0, before) = replica(&cluster, &current("OLD"), &[old]);
    let (_d1, during) = replica(&cluster, rotating, &[old, new]);
    let (_d2, after) = replica(&cluster, &current("NEW"), &[new]);

    let from_old = ask(before.port);
    let refused = approve(after.port, &from_old).expect_err("the old key is gone there");
    assert!(refused.contains("not issued by this server"), "{refused}");
    let result = approve(during.port, &from_old).expect("the previous key is accepted");
    assert_eq!(result["isError"], false, "{result}");
    let again = approve(before.port, &from_old).expect_err("used once in all");
    assert!(again.contains("used already"), "{again}");

    // What the rotating replica issues, with the new key, is accepted where
    // the rotation is done and refused where it has not started.
    let from_new = ask(during.port);
    let refused = approve(before.port, &from_new).expect_err("the new key is unknown there");
    assert!(refused.contains("not issued by this server"), "{refused}");
    assert!(approve(after.port, &from_new).is_ok());
}

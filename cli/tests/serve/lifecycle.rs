//! A server that stays up: MCP sources discovered apart (a hanging one
//! holds up nothing else), reload on SIGHUP, graceful shutdown that ends
//! sessions upstream and leaves an intact audit log.

use crate::components::component;
use crate::mcp_server::McpServer;
use crate::util::*;
use serde_json::json;
use std::time::Duration;

fn mcp_config(dir: &std::path::Path, servers: &[(&str, u16)], timeout_ms: u64) -> String {
    let mut grants = Vec::new();
    let mut tables = String::new();
    for (name, port) in servers {
        grants.push(format!("\"http://127.0.0.1:{port}\""));
        tables.push_str(&format!(
            "[plugins.mcp.config.servers.{name}]\nurl = \"http://127.0.0.1:{port}/mcp\"\n"
        ));
    }
    format!(
        "{}\n[plugins.mcp]\ncomponent = \"{}\"\ngrants = {{ network = [{}] }}\nlimits = {{ timeout-ms = {timeout_ms} }}\n\
         sessions = {{ discovery-retry-ms = 200 }}\n{tables}",
        base_config(dir),
        component("mcp").display(),
        grants.join(", "),
    )
}

#[test]
fn shutdown_lets_calls_finish_ends_sessions_upstream_and_flushes_the_log() {
    let upstream = McpServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(
        dir.path(),
        &mcp_config(dir.path(), &[("demo", upstream.port)], 10_000),
        &[],
    );
    let p = serve.port;
    // Two clients hold sessions on the upstream server through Warden.
    for handle in ["one", "two"] {
        for n in 1..=2 {
            let (_, m) = modern(
                p,
                1,
                "tools/call",
                json!({"name": "mcp.demo.count", "arguments": {}, "_meta": {"dev.warden/session": handle}}),
                &[],
            );
            assert_eq!(m["result"]["structuredContent"]["result"], n, "{m}");
        }
    }
    // A slow call is in flight when the signal comes: it finishes.
    let slow = std::thread::spawn(move || {
        modern(
            p,
            2,
            "tools/call",
            json!({"name": "mcp.demo.slow", "arguments": {"ms": 700}}),
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(250));
    // (Discovery's own short sessions may have ended already.)
    let before = upstream.deleted().len();
    let status = serve.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}\n{}", serve.log());
    let (_, m) = slow.join().unwrap();
    assert_eq!(m["result"]["isError"], false, "{m}");
    let deleted = upstream.deleted();
    assert!(
        deleted.len() >= before + 2,
        "upstream sessions ended: {deleted:?}\n{}",
        serve.log()
    );
    let records = audit(&dir.path().join("audit.jsonl"));
    let slow_end = records
        .iter()
        .rfind(|r| r["effect"] == "call" && r["capability"] == "mcp.demo.slow")
        .unwrap();
    assert_eq!(slow_end["decision"], "ok", "{slow_end}");
}

#[test]
fn a_hanging_mcp_source_holds_up_no_other_and_is_named() {
    let upstream = McpServer::start(&[]);
    // Accepts connections and never answers.
    let hang_port = warden_test_support::http_server::silent_port();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &mcp_config(
            dir.path(),
            &[("demo", upstream.port), ("stuck", hang_port)],
            1_500,
        ),
        &[],
    );
    let p = serve.port;
    let (_, m) = modern(p, 1, "tools/list", json!({}), &[]);
    let names: Vec<&str> = m["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"mcp.demo.add"), "{names:?}");
    // The upstream tool's annotations reach this server's clients.
    let add = m["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp.demo.add")
        .unwrap();
    assert_eq!(
        add["annotations"],
        json!({"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}),
        "{add}"
    );
    // So do its title and icons.
    let wipe = m["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp.demo.wipe")
        .unwrap();
    assert_eq!(wipe["title"], "Wipe everything", "{wipe}");
    assert_eq!(
        wipe["icons"][0]["src"], "https://example.com/wipe.png",
        "{wipe}"
    );
    assert_eq!(wipe["icons"][0]["sizes"], json!(["48x48"]), "{wipe}");
    assert_eq!(wipe["annotations"]["destructiveHint"], true, "{wipe}");
    assert!(
        !names.iter().any(|n| n.starts_with("mcp.stuck.")),
        "{names:?}"
    );
    let (_, m) = modern(
        p,
        2,
        "tools/call",
        json!({"name": "mcp.demo.add", "arguments": {"a": 2, "b": 3}}),
        &[],
    );
    assert_eq!(m["result"]["structuredContent"]["result"], 5, "{m}");
    // A tool of the stuck source is not served; the error says which source.
    let (_, m) = modern(
        p,
        3,
        "tools/call",
        json!({"name": "mcp.stuck.add", "arguments": {}}),
        &[],
    );
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown tool"),
        "{m}"
    );
    assert!(
        serve.log().contains("stuck"),
        "the log names the stuck source:\n{}",
        serve.log()
    );
}

#[test]
fn sighup_reloads_and_a_broken_config_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(dir.path());
    let serve = Serve::start(dir.path(), &config, &["--no-watch"]);
    let p = serve.port;
    let has = |id: &str| {
        let (_, m) = modern(p, 1, "tools/list", json!({}), &[]);
        m["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == id)
    };
    assert!(!has("files.read"));
    let (_, m) = modern(
        p,
        2,
        "tools/call",
        json!({"name": "text.case", "arguments": {"text": "before", "to": "upper"}}),
        &[],
    );
    assert_eq!(m["result"]["structuredContent"]["text"], "BEFORE");
    // Without the watcher, an edit alone changes nothing; SIGHUP reloads.
    std::fs::write(
        &serve.config,
        format!(
            "{config}\n[plugins.files]\ncomponent = \"{}\"\n",
            component("files").display()
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(!has("files.read"));
    serve.signal("HUP");
    serve.wait_for_log("configuration reloaded", Duration::from_secs(60));
    assert!(has("files.read"));
    // Calls before and after the swap are in one intact chain.
    let (_, m) = modern(
        p,
        2,
        "tools/call",
        json!({"name": "text.case", "arguments": {"text": "after", "to": "upper"}}),
        &[],
    );
    assert_eq!(m["result"]["structuredContent"]["text"], "AFTER");
    let records = audit(&dir.path().join("audit.jsonl"));
    let ok_calls = records
        .iter()
        .filter(|r| r["capability"] == "text.case" && r["decision"] == "ok")
        .count();
    assert_eq!(ok_calls, 2, "one call on each host");
    // A broken file is reported and the running host stays.
    std::fs::write(&serve.config, "[plugins.files\n").unwrap();
    serve.signal("HUP");
    serve.wait_for_log("reload failed", Duration::from_secs(30));
    assert!(has("files.read"));
}

/// A probe's status and its JSON body.
fn probe(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let (status, response_headers, body) = http_at(port, method, path, headers, "");
    if status == 200 || status == 503 {
        assert_eq!(header(&response_headers, "cache-control"), Some("no-store"));
    }
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// `/healthz` and `/readyz` answer without a token (the MCP endpoint still
/// wants one) and name the replica. On SIGTERM `/readyz` turns 503 while
/// calls are still served for `drain-ms`; then the server stops by itself.
#[test]
fn probes_need_no_token_and_sigterm_drains_before_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = two_principals(dir.path(), "drain-ms = 3000\nreplica-id = \"replica-a\"");
    let mut serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    for (path, word) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let (status, body) = probe(p, "GET", path, &[]);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, json!({"status": word, "replica": "replica-a"}));
        assert_eq!(probe(p, "HEAD", path, &[]).0, 200, "HEAD {path}");
        assert_eq!(probe(p, "POST", path, &[]).0, 405, "POST {path}");
        // On a loopback bind the Host check still applies.
        let misdirected = probe(p, "GET", path, &[("Host", "rebound.example")]);
        assert_eq!(misdirected.0, 421, "{path}");
    }
    let call = |id: u64, auth: &[(&str, &str)]| {
        modern(
            p,
            id,
            "tools/call",
            json!({"name": "text.case", "arguments": {"text": "drain", "to": "upper"}}),
            auth,
        )
    };
    let json = [("Content-Type", "application/json")];
    let (status, _, _) = http(p, "POST", &json, "{}");
    assert_eq!(status, 401, "the MCP endpoint still wants a token");
    let bearer = format!("Bearer {TOKEN_A}");
    let auth = [("Authorization", bearer.as_str())];
    assert_eq!(call(1, &auth).1["result"]["isError"], false);

    serve.signal("TERM");
    serve.wait_for_log("draining", Duration::from_secs(10));
    let (status, body) = probe(p, "GET", "/readyz", &[]);
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("draining")),
        "{body}"
    );
    assert_eq!(probe(p, "GET", "/healthz", &[]).0, 200, "still alive");
    let (status, m) = call(2, &auth);
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["result"]["structuredContent"]["text"], "DRAIN", "{m}");
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", serve.log());
    let calls = audit(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["effect"] == "call" && r["decision"] == "ok")
        .count();
    assert_eq!(calls, 2, "both calls ended and were recorded");
}

/// A second signal while draining stops the server at once.
#[test]
fn a_second_signal_ends_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}\n[serve]\ndrain-ms = 3600000\n", base_config(dir.path()));
    let mut serve = Serve::start(dir.path(), &config, &[]);
    serve.signal("TERM");
    serve.wait_for_log("draining", Duration::from_secs(10));
    assert_eq!(probe(serve.port, "GET", "/readyz", &[]).0, 503);
    let status = serve.signal_and_wait("INT");
    assert!(status.success(), "{status:?}\n{}", serve.log());
    assert!(
        serve.log().contains("SIGINT while draining"),
        "{}",
        serve.log()
    );
}

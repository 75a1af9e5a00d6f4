//! MCP Tasks in `warden serve`: a client that declares the extension (the
//! TypeScript SDK v2 with `@modelcontextprotocol/ext-tasks`) gets a task for
//! a call still running after `task-after-ms`, or at once for a capability
//! that runs long; polls, cancels and listens to it; another principal
//! cannot see it; a client without the extension is answered as before.

use crate::mcp_server::McpServer;
use crate::util::*;
use serde_json::{json, Value};

const TASKS: &str = "io.modelcontextprotocol/tasks";

/// The `_meta` of a request whose client declares the tasks extension.
pub(crate) fn declaring() -> Value {
    json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}}}})
}

pub(crate) fn with(params: Value, base: Value) -> Value {
    let mut p = base;
    for (k, v) in params.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// A 2026-07-28 `tasks/*` request as `token`, with the task id in `Mcp-Name`.
pub(crate) fn task_request(
    port: u16,
    token: &str,
    method: &str,
    task: &str,
    declare: bool,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let base = if declare { declaring() } else { json!({}) };
    modern(
        port,
        9,
        method,
        with(json!({"taskId": task}), base),
        &[("Authorization", &auth), ("Mcp-Name", task)],
    )
}

fn config(dir: &std::path::Path, upstream: &McpServer) -> String {
    format!(
        "{}\n[plugins.mcp]\ncomponent = \"{}\"\ngrants = {{ network = [\"{}\"] }}\n\
         [plugins.mcp.config.servers.t]\nurl = \"{}\"\nprotocol = \"2025-11-25\"\n",
        two_principals(dir, "task-after-ms = 300"),
        crate::components::component("mcp").display(),
        upstream.origin(),
        upstream.url(),
    )
}

#[test]
fn a_tasks_client_gets_tasks_that_it_alone_polls_cancels_and_hears() {
    let upstream = McpServer::start_tasks();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &config(dir.path(), &upstream), &[]);
    let out = std::process::Command::new("node")
        .current_dir(repo().join("tests/serve"))
        .args([
            "tasks-client.mjs",
            &serve.url,
            TOKEN_A,
            "hostile.sleep",
            r#"{"arg": 1200}"#,
            r#"{"arg": 60000}"#,
        ])
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.log()
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let completed = lines.iter().find(|l| l["check"] == "completed").unwrap();
    assert_eq!(
        completed["result"]["structuredContent"]["result"]["slept"], 1200,
        "{completed}"
    );
    let done = completed["task"].as_str().unwrap();
    let cancelled = lines.iter().find(|l| l["check"] == "cancelled").unwrap()["task"]
        .as_str()
        .unwrap()
        .to_string();

    // Its owner reads the ended task; another principal finds nothing.
    let (status, m) = task_request(serve.port, TOKEN_A, "tasks/get", done, true);
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["result"]["status"], "completed", "{m}");
    assert_eq!(
        m["result"]["result"]["structuredContent"]["result"]["slept"], 1200,
        "{m}"
    );
    for (method, task) in [
        ("tasks/get", done),
        ("tasks/cancel", cancelled.as_str()),
        ("tasks/update", done),
    ] {
        let (status, m) = task_request(serve.port, TOKEN_B, method, task, true);
        assert_eq!(status, 404, "{method} as bob: {m}");
        assert_eq!(m["error"]["message"], "Task not found", "{m}");
    }
    let (status, m) = task_request(serve.port, TOKEN_A, "tasks/get", done, false);
    assert_eq!(
        (status, m["error"]["code"].as_i64()),
        (400, Some(-32021)),
        "{m}"
    );
    let (status, m) = task_request(serve.port, TOKEN_A, "tasks/get", &cancelled, true);
    assert_eq!(
        (status, m["result"]["status"].as_str()),
        (200, Some("cancelled")),
        "{m}"
    );

    // Without the extension, a slow call is answered as it always was.
    let auth = format!("Bearer {TOKEN_B}");
    let (status, m) = modern(
        serve.port,
        3,
        "tools/call",
        json!({"name": "hostile.sleep", "arguments": {"arg": 700}}),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    assert_eq!(
        m["result"]["structuredContent"]["result"]["slept"], 700,
        "{m}"
    );

    // A tool that runs only as a task (upstream, 2025-11-25) runs long: a
    // task at once, though it ends well within task-after-ms. A listener
    // hears the tasks it names that are its own: their progress (the
    // upstream task's steps, through the plugin) and their ends.
    let start = |n: u64, ms: u64| -> String {
        let (status, m) = modern(
            serve.port,
            n,
            "tools/call",
            with(
                json!({"name": "mcp.t.slow", "arguments": {"ms": ms}}),
                declaring(),
            ),
            &[("Authorization", &auth)],
        );
        assert_eq!(status, 200, "{m}");
        assert_eq!(m["result"]["resultType"], "task", "{m}");
        m["result"]["taskId"].as_str().unwrap().to_string()
    };
    let quick = start(4, 50);
    let slow = start(5, 900);
    let listen = with(
        json!({"notifications": {"taskIds": [quick, slow, done]}}),
        declaring(),
    );
    let (status, _, body) = listen_raw(serve.port, &auth, listen);
    assert_eq!(status, 200, "{body}");
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    let mut acked: Vec<String> =
        serde_json::from_value(events[0]["params"]["notifications"]["taskIds"].clone()).unwrap();
    acked.sort();
    let mut own = vec![quick.clone(), slow.clone()];
    own.sort();
    assert_eq!(
        acked, own,
        "only the caller's own tasks are followed: {body}"
    );
    for (task, ms) in [(&quick, 50), (&slow, 900)] {
        let last = events
            .iter()
            .rfind(|e| e["method"] == "notifications/tasks" && e["params"]["taskId"] == **task)
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(last["params"]["status"], "completed", "{body}");
        let text = &last["params"]["result"]["structuredContent"]["result"]["content"][0]["text"];
        assert_eq!(text, &json!(format!("worked {ms} ms")), "{body}");
    }
    assert!(
        events.iter().any(|e| e["params"]["taskId"] == *slow
            && e["params"]["statusMessage"]
                .as_str()
                .is_some_and(|m| m.contains("step "))),
        "the call's progress is the task's status message: {body}"
    );
    assert!(
        events.last().unwrap().get("result").is_some(),
        "the listen ends: {body}"
    );

    // Every call is in the audit log, the cancelled one as cancelled.
    let records = audit(&dir.path().join("audit.jsonl"));
    let sleeps: Vec<&Value> = records
        .iter()
        .filter(|r| r["capability"] == "hostile.sleep")
        .collect();
    assert!(sleeps.len() >= 3, "{sleeps:?}");
    assert!(
        sleeps.iter().any(|r| r.to_string().contains("cancel")),
        "{sleeps:?}"
    );
}

/// `subscriptions/listen` as `auth`: status, headers, the SSE body.
pub(crate) fn listen_raw(
    port: u16,
    auth: &str,
    params: Value,
) -> (u16, Vec<(String, String)>, String) {
    let mut params = params;
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    let body =
        json!({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen", "params": params})
            .to_string();
    http(
        port,
        "POST",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "subscriptions/listen"),
            ("Authorization", auth),
        ],
        &body,
    )
}

#[test]
fn a_client_whose_tasks_hold_its_slots_can_still_poll_and_cancel_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = two_principals(
        dir.path(),
        "max-concurrent-per-client = 1\ntask-after-ms = 100",
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let auth = format!("Bearer {TOKEN_A}");
    let (status, m) = modern(
        serve.port,
        1,
        "tools/call",
        with(
            json!({"name": "hostile.sleep", "arguments": {"arg": 8000}}),
            declaring(),
        ),
        &[("Authorization", &auth)],
    );
    assert_eq!(
        (status, m["result"]["resultType"].as_str()),
        (200, Some("task")),
        "{m}"
    );
    let task = m["result"]["taskId"].as_str().unwrap().to_string();
    let quick = json!({"name": "text.case", "arguments": {"text": "x", "to": "upper"}});
    // The running task holds the principal's one request slot.
    let (status, m) = modern(
        serve.port,
        2,
        "tools/call",
        quick.clone(),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 429, "{m}");
    // Its own requests need none.
    let (status, m) = task_request(serve.port, TOKEN_A, "tasks/get", &task, true);
    assert_eq!(
        (status, m["result"]["status"].as_str()),
        (200, Some("working")),
        "{m}"
    );
    let (status, m) = task_request(serve.port, TOKEN_A, "tasks/cancel", &task, true);
    assert_eq!(status, 200, "{m}");
    // Cancelled, the call gives its slot back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, m) = modern(
            serve.port,
            5,
            "tools/call",
            quick.clone(),
            &[("Authorization", &auth)],
        );
        if status == 200 {
            assert_eq!(m["result"]["structuredContent"]["text"], "X", "{m}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status} {m}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

//! Services that are not what a Warden service should be, behind the MCP
//! plugin's `marketplace = true`: one publishes more capabilities than a
//! source may hold (most of them large), one publishes a marketplace cut
//! short, one answers a conditional request with 304. The edge keeps
//! serving, holds no more than its caps, says what it refused, and reuses
//! a marketplace that did not change.

use crate::util::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The weak `ETag` every fake marketplace carries.
const ETAG: &str = "W/\"v1\"";

/// A raw HTTP server on 127.0.0.1 answering every `GET` with `body` as
/// JSON (`ETag` [`ETAG`]), or 304 to `If-None-Match` naming it; it keeps
/// each request's head.
struct FakeService {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl FakeService {
    fn start(body: Vec<u8>) -> FakeService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        let body = Arc::new(body);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (seen, body) = (seen.clone(), body.clone());
                std::thread::spawn(move || answer(conn, &seen, &body));
            }
        });
        FakeService { port, heads }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Answers one request on `conn` (then closes it).
fn answer(mut conn: std::net::TcpStream, seen: &Mutex<Vec<String>>, body: &[u8]) {
    let mut head = String::new();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    seen.lock().unwrap().push(head.clone());
    let unchanged = head.contains(&format!("if-none-match: {}", ETAG.to_ascii_lowercase()));
    let _ = if unchanged {
        write!(
            conn,
            "HTTP/1.1 304 Not Modified\r\nETag: {ETAG}\r\nConnection: close\r\n\r\n"
        )
    } else {
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: {ETAG}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .and_then(|()| conn.write_all(body))
    };
}

/// A marketplace snapshot listing `capabilities`.
fn snapshot(capabilities: Vec<Value>) -> Vec<u8> {
    json!({"type": "rtfs/capabilities/marketplace-snapshot", "version": "1.0", "capabilities": capabilities})
        .to_string()
        .into_bytes()
}

fn entry(id: &str, description: &str) -> Value {
    json!({"id": id, "name": id, "version": "1.0.0", "description": description,
           "input-schema": ":any", "output-schema": ":any", "provider": "RemoteRTFS"})
}

#[test]
fn an_edge_holds_to_its_caps_against_services_that_misbehave() {
    // 1500 capabilities of 2 KB each: more than a source may hold.
    let long = "x".repeat(2048);
    let flood: Vec<Value> = (0..1500).map(|i| entry(&format!("t{i}"), &long)).collect();
    let flood = FakeService::start(snapshot(flood));
    let mut cut = snapshot(vec![entry("whole", "")]);
    cut.truncate(cut.len() / 2);
    let broken = FakeService::start(cut);
    let steady = FakeService::start(snapshot(vec![entry("steady", "the same each time")]));

    let dir = tempfile::tempdir().unwrap();
    let services = [("flood", &flood), ("broken", &broken), ("steady", &steady)];
    let origins: Vec<String> = services
        .iter()
        .map(|(_, s)| format!("\"{}\"", s.origin()))
        .collect();
    let mut config = format!(
        "[plugins.mcp]\ncomponent = \"{}\"\ngrants = {{ network = [{}] }}\n\
         sessions = {{ discovery-refresh-ms = 300 }}\n\n[audit]\npath = \"{}\"\n",
        crate::components::component("mcp").display(),
        origins.join(", "),
        dir.path().join("audit.jsonl").display(),
    );
    for (name, s) in services {
        config.push_str(&format!(
            "\n[plugins.mcp.config.servers.{name}]\nurl = \"{}/mcp\"\nmarketplace = true\n",
            s.origin()
        ));
    }
    let edge = Serve::start(dir.path(), &config, &[]);
    let tools = tool_names(edge.port);
    let of = |server: &str| {
        let prefix = format!("mcp.{server}.");
        tools.iter().filter(|t| t.starts_with(&prefix)).count()
    };
    assert_eq!(of("flood"), 1024, "a source holds at most 1024");
    assert_eq!(of("broken"), 0);
    assert_eq!(of("steady"), 1);
    // The refusal is in the audit log, once, with how many.
    let records = audit(&dir.path().join("audit.jsonl"));
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["effect"] == "register" && r["decision"] == "deny")
        .collect();
    assert!(
        refused.iter().any(|r| {
            let why = r["reason"].as_str().unwrap_or("");
            why.contains("476 capability claims refused") && why.contains("1024")
        }),
        "{refused:?}"
    );
    // The broken one is named as unavailable, with why, and retried.
    let args = json!({"name": "mcp.broken.whole", "arguments": {}});
    let (_, m) = modern(edge.port, 3, "tools/call", args, &[]);
    let said = m.to_string();
    assert!(said.contains("broken"), "{m}");

    // Refreshes ask with If-None-Match and take the 304: nothing changes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !steady
        .heads()
        .iter()
        .any(|h| h.contains("if-none-match: w/\"v1\""))
    {
        assert!(std::time::Instant::now() < deadline, "{:?}", steady.heads());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    let (_, m) = modern(edge.port, 4, "tools/list", json!({}), &[]);
    let steady_tool = m["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp.steady.steady")
        .cloned()
        .unwrap_or_else(|| panic!("kept after 304: {m}"));
    assert!(
        steady_tool["_meta"].get("dev.warden/stale-since").is_none(),
        "{steady_tool}"
    );
    assert_eq!(tool_names(edge.port).len(), tools.len());
}

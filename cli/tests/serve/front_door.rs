//! The HTTP front door against hostile clients: loopback names judged whole
//! (DNS rebinding), POSTs that are not JSON, stalled and surplus
//! connections, and fair shares of sessions and requests in flight.

use crate::util::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

/// A 2026-07-28 `tools/list` body and its routing headers.
fn list_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string()
}

const MODERN_LIST: [(&str, &str); 3] = [
    ACCEPT,
    ("MCP-Protocol-Version", "2026-07-28"),
    ("Mcp-Method", "tools/list"),
];

/// The status of a `tools/list` POST with `extra` headers (and
/// `Content-Type: application/json` unless `extra` names one).
fn list_status(port: u16, extra: &[(&str, &str)]) -> u16 {
    let mut headers: Vec<(&str, &str)> = MODERN_LIST.to_vec();
    if !extra
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(JSON);
    }
    headers.extend_from_slice(extra);
    http(port, "POST", &headers, &list_body()).0
}

#[test]
fn only_loopback_names_and_addresses_pass_the_host_and_origin_checks() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let p = serve.port;
    let port = p.to_string();
    let with_port = |h: &str| format!("{h}:{port}");
    // Names that only start like a loopback one are DNS names anyone can
    // point at 127.0.0.1 (rebinding); so are numeric forms that are not an
    // address literal.
    let foreign = [
        "127.0.0.1.evil.com".to_string(),
        with_port("127.0.0.1.evil.com"),
        "127.attacker.net".into(),
        with_port("127.0.0.1.nip.io"),
        "localhost.evil.com".into(),
        "sub.localhost".into(),
        "127.1".into(),
        "0x7f.0.0.1".into(),
        "2130706433".into(),
        "127.0.0.1:abc".into(),
        format!("127.0.0.1:{port}:1"),
        "127.0.0.1@evil.com".into(),
        "[::1].evil.com".into(),
        "[::2]".into(),
        "evil.com".into(),
    ];
    for host in &foreign {
        assert_eq!(
            list_status(p, &[("Host", host)]),
            421,
            "Host {host:?} was let in"
        );
        for scheme in ["http", "https"] {
            let origin = format!("{scheme}://{host}");
            assert_eq!(
                list_status(p, &[("Origin", &origin)]),
                403,
                "Origin {origin:?} was let in"
            );
        }
    }
    for origin in ["http://localhost/", "ftp://localhost", "null"] {
        assert_eq!(list_status(p, &[("Origin", origin)]), 403, "{origin}");
    }
    let local = [
        "localhost".to_string(),
        with_port("localhost"),
        "LOCALHOST".into(),
        "127.0.0.1".into(),
        with_port("127.0.0.1"),
        with_port("127.5.6.7"),
        "[::1]".into(),
        with_port("[::1]"),
    ];
    for host in &local {
        assert_eq!(list_status(p, &[("Host", host)]), 200, "Host {host:?}");
        let origin = format!("http://{host}");
        assert_eq!(list_status(p, &[("Origin", &origin)]), 200, "{origin}");
    }
    serve.wait_for_log(
        "refused for misdirected since start",
        Duration::from_secs(5),
    );
}

#[test]
fn a_post_that_is_not_json_is_refused_with_415_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let p = serve.port;
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("Content-Type", "text/plain")],
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &[("Content-Type", "multipart/form-data; boundary=xyz")],
        &[("Content-Type", "application/jsonx")],
        &[("Content-Type", "application/json-seq")],
        &[("Content-Type", "text/json")],
        &[("Content-Type", "json")],
        &[("Content-Type", "application/json, text/plain")],
        &[("Content-Type", "text/plain; x=application/json")],
        &[JSON, ("Content-Type", "text/plain")],
    ];
    for headers in refused {
        let mut all: Vec<(&str, &str)> = MODERN_LIST.to_vec();
        all.extend_from_slice(headers);
        let (status, _, body) = http(p, "POST", &all, &list_body());
        assert_eq!(status, 415, "{headers:?}: {body}");
    }
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "APPLICATION/JSON ; charset=\"utf-8\"",
    ] {
        assert_eq!(list_status(p, &[("Content-Type", ct)]), 200, "{ct}");
    }
    // Every refusal is counted: the count is in the log at shutdown.
    assert!(serve.signal_and_wait("TERM").success());
    let expected = format!("media-type={}", refused.len());
    assert!(serve.log().contains(&expected), "{}", serve.log());
}

/// Request heads cut short: in the headers, and in the body.
const MID_HEADER: &str = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty";
const MID_BODY: &str =
    "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
    Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
    Mcp-Method: tools/list\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\": \"2.0\", ";

/// Lists the tools and calls one, as a client that means well.
fn honest_client(p: u16) {
    let (status, m) = modern(p, 1, "tools/list", json!({}), &[]);
    assert_eq!(status, 200, "{m}");
    assert!(!m["result"]["tools"].as_array().unwrap().is_empty(), "{m}");
    let (status, m) = modern(
        p,
        2,
        "tools/call",
        json!({"name": "text.case", "arguments": {"text": "a", "to": "upper"}}),
        &[],
    );
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["result"]["structuredContent"]["text"], "A", "{m}");
}

/// The acceptance test: 1,100 connections from 127.0.0.1, half
/// stalled in their headers and half in their body, with timeouts long
/// enough not to help; an honest client still lists and calls within 1 s.
#[test]
fn stalled_connections_do_not_lock_out_an_honest_client() {
    warden::raise_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[serve]\nheader-timeout-ms = 60000\nbody-timeout-ms = 60000\n",
        base_config(dir.path())
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    // The tool's plugin is loaded before the flood.
    honest_client(p);
    let mut stalled = Vec::with_capacity(1100);
    for i in 0..1100 {
        let mut s = TcpStream::connect(("127.0.0.1", p)).expect("connect");
        // The server may have closed it already to make room.
        let _ = s.write_all(if i % 2 == 0 { MID_HEADER } else { MID_BODY }.as_bytes());
        stalled.push(s);
    }
    let start = Instant::now();
    honest_client(p);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the honest client took {took:?} behind 1,100 stalled connections"
    );
    serve.wait_for_log("refused for shed since start", Duration::from_secs(5));
    drop(stalled);
}

/// Reads until the server closes; returns what came and when it closed.
fn read_until_closed(mut s: TcpStream) -> (String, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("still open after {:?}", start.elapsed())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("still open after {:?}", start.elapsed())
            }
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[test]
fn stalled_requests_are_closed_after_the_header_and_body_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[serve]\nheader-timeout-ms = 300\nbody-timeout-ms = 400\n",
        base_config(dir.path())
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    let in_time = |what: &str, took: Duration, at_least: u64| {
        assert!(
            took >= Duration::from_millis(at_least - 50) && took < Duration::from_secs(3),
            "{what}: closed after {took:?}"
        );
    };
    // Nothing sent, and headers cut short: closed after header-timeout-ms.
    for first in ["", MID_HEADER] {
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        s.write_all(first.as_bytes()).unwrap();
        let (_, took) = read_until_closed(s);
        in_time(&format!("{first:?}"), took, 300);
    }
    // A body cut short: 408 after body-timeout-ms, then closed.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.write_all(MID_BODY.as_bytes()).unwrap();
    let (got, took) = read_until_closed(s);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    in_time("a stalled body", took, 400);
    // A body that trickles in, a byte at a time, meets the same deadline.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.write_all(MID_BODY.as_bytes()).unwrap();
    let start = Instant::now();
    let mut refused = false;
    while start.elapsed() < Duration::from_secs(3) {
        if s.write_all(b" ").is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (got, _) = read_until_closed(s);
    assert!(
        refused || got.starts_with("HTTP/1.1 408"),
        "a trickling body: {got}"
    );
    in_time("a trickling body", start.elapsed(), 400);
    serve.wait_for_log(
        "refused for header-timeout since start",
        Duration::from_secs(5),
    );
    serve.wait_for_log(
        "refused for body-timeout since start",
        Duration::from_secs(5),
    );
}

/// A TCP connection to `port` from the loopback address `from`.
fn connect_from(from: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
            .unwrap();
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// A `tools/list` on `s`; the response, or "" if the server closed it first.
fn list_on(mut s: TcpStream, port: u16) -> String {
    let body = list_body();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    read_until_closed(s).0
}

/// A 2026-07-28 `subscriptions/listen` stream on a connection from `from`,
/// held open once acknowledged (a connection serving a response).
fn listen_from(from: &str, port: u16) -> TcpStream {
    let mut s = connect_from(from, port);
    s.write_all(listen_request(port).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let mut got = String::new();
    while !got.contains("acknowledged") {
        let n = s.read(&mut buf).expect("the listen stream");
        assert!(n > 0, "the listen stream closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    s
}

#[test]
fn connection_caps_hold_per_address_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[serve]\nmax-connections = 3\nmax-connections-per-ip = 2\n",
        base_config(dir.path())
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    // Two streams from 127.0.0.1 fill its share: a third connection from
    // there is closed unanswered (no connection of it waits for a request).
    let _a = listen_from("127.0.0.1", p);
    let _b = listen_from("127.0.0.1", p);
    assert_eq!(list_on(connect_from("127.0.0.1", p), p), "");
    serve.wait_for_log(
        "refused for connection-cap since start",
        Duration::from_secs(5),
    );
    // An idle connection from 127.0.0.2 fills the total; a new client from
    // 127.0.0.3 takes its place.
    let idle = connect_from("127.0.0.2", p);
    std::thread::sleep(Duration::from_millis(200));
    let got = list_on(connect_from("127.0.0.3", p), p);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let (_, took) = read_until_closed(idle);
    assert!(took < Duration::from_secs(1), "{took:?}");
    serve.wait_for_log("refused for shed since start", Duration::from_secs(5));
    // A third stream fills the total with connections serving: nobody else
    // gets in.
    let _c = listen_from("127.0.0.2", p);
    assert_eq!(list_on(connect_from("127.0.0.4", p), p), "");
}

#[test]
fn serve_settings_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    for (serve, named) in [
        ("max-connections = 0", "max-connections"),
        (
            "max-connections = 8\nmax-connections-per-ip = 9",
            "max-connections-per-ip",
        ),
        ("header-timeout-ms = 0", "header-timeout-ms"),
        ("body-timeout-ms = 99999999999", "body-timeout-ms"),
        (
            "max-sessions = 4\nmax-sessions-per-principal = 5",
            "max-sessions-per-principal",
        ),
        (
            "max-concurrent = 2\nmax-concurrent-per-client = 3",
            "max-concurrent-per-client",
        ),
    ] {
        std::fs::write(&config, format!("[serve]\n{serve}\n")).unwrap();
        let out = Command::new(warden_bin())
            .arg("--config")
            .arg(&config)
            .args(["serve", "--stdio"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{serve}: {err}");
        assert!(err.contains(&format!("serve.{named}`")), "{serve}: {err}");
    }
}

/// `initialize` as `token`: the session id, or the error.
fn initialize(p: u16, token: &str) -> Result<String, Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string();
    let auth = format!("Bearer {token}");
    let (status, headers, body) = http(p, "POST", &[JSON, ACCEPT, ("Authorization", &auth)], &body);
    match header(&headers, "mcp-session-id") {
        Some(id) if status == 200 => Ok(id.to_string()),
        _ => Err(message(&body)),
    }
}

/// The acceptance test: one principal fills its sessions, and the
/// other still opens one.
#[test]
fn one_principal_cannot_take_anothers_sessions() {
    let dir = tempfile::tempdir().unwrap();
    // Without max-sessions-per-principal: a quarter of max-sessions each.
    let serve = Serve::start(
        dir.path(),
        &two_principals(dir.path(), "max-sessions = 8"),
        &[],
    );
    let p = serve.port;
    let mut alice = Vec::new();
    let refusal = loop {
        match initialize(p, TOKEN_A) {
            Ok(id) => alice.push(id),
            Err(e) => break e,
        }
        assert!(alice.len() <= 8, "alice opened every session");
    };
    assert_eq!(alice.len(), 2, "a quarter of max-sessions");
    assert_eq!(refusal["error"]["code"], -32000, "{refusal}");
    let text = refusal["error"]["message"].as_str().unwrap();
    assert!(text.contains("max-sessions-per-principal"), "{text}");
    let bob = initialize(p, TOKEN_B).expect("bob still opens a session");
    assert_ne!(bob, alice[0]);
    serve.wait_for_log(
        "refused for session-cap since start",
        Duration::from_secs(5),
    );
    // Ending one gives alice her slot back.
    let auth = format!("Bearer {TOKEN_A}");
    let (status, _, _) = http(
        p,
        "DELETE",
        &[("Authorization", &auth), ("Mcp-Session-Id", &alice[0])],
        "",
    );
    assert_eq!(status, 200);
    initialize(p, TOKEN_A).expect("a slot came back");
}

/// A legacy `tools/call` in session `session` (tokenless).
fn legacy_call(p: u16, session: &str, id: u64, name: &str, args: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": args}})
    .to_string();
    let (status, _, body) = http(
        p,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", session)],
        &body,
    );
    (status, message(&body))
}

fn local_session(p: u16) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string();
    let (status, headers, _) = http(p, "POST", &[JSON, ACCEPT], &body);
    assert_eq!(status, 200);
    header(&headers, "mcp-session-id").unwrap().to_string()
}

/// Without tokens every HTTP client is `local`; each session (and each
/// connection of a 2026-07-28 client) still has its own budget, under the
/// total.
#[test]
fn local_clients_have_budgets_of_their_own_under_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[serve]\nmax-concurrent-per-client = 1\nmax-concurrent = 3\n",
        base_config(dir.path())
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let p = serve.port;
    let (s1, s2) = (local_session(p), local_session(p));
    let slow = |s: String, id| {
        std::thread::spawn(move || legacy_call(p, &s, id, "hostile.sleep", json!({"arg": 1500})))
    };
    let one = slow(s1.clone(), 2);
    let two = slow(s2.clone(), 3);
    std::thread::sleep(Duration::from_millis(400));
    // The same client again: its own budget is spent.
    let (status, m) = legacy_call(p, &s1, 4, "text.case", json!({"text": "a", "to": "upper"}));
    assert_eq!(status, 429, "{m}");
    let text = m["error"]["message"].as_str().unwrap();
    assert!(text.contains("max-concurrent-per-client"), "{text}");
    // A third client fits under the total; a fourth does not.
    let three = std::thread::spawn(move || {
        modern(
            p,
            5,
            "tools/call",
            json!({"name": "hostile.sleep", "arguments": {"arg": 1000}}),
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, m) = modern(p, 6, "tools/list", json!({}), &[]);
    assert_eq!(status, 429, "{m}");
    let text = m["error"]["message"].as_str().unwrap();
    assert!(text.contains("max-concurrent)"), "{text}");
    for (status, m) in [
        one.join().unwrap(),
        two.join().unwrap(),
        three.join().unwrap(),
    ] {
        assert_eq!(status, 200, "{m}");
        assert_eq!(
            m["result"]["isError"].as_bool(),
            Some(false),
            "every client's call ran: {m}"
        );
    }
    serve.wait_for_log("refused for busy since start", Duration::from_secs(5));
}

//! The MCP provider against real servers on the official Python SDK
//! (`tests/mcp/server.py`), through the session pool and governed egress.

use crate::util::{component, config, McpServer};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use warden::{Config, Error, Host, PluginConfig, SecretGrant, SessionSettings};

/// One configured server for the plugin.
pub(crate) struct Server<'a> {
    name: &'a str,
    url: String,
    origin: String,
    secret: Option<&'a str>,
    pub(crate) extra: Value,
}

impl<'a> Server<'a> {
    pub(crate) fn of(name: &'a str, s: &McpServer) -> Server<'a> {
        Server {
            name,
            url: s.url(),
            origin: s.origin(),
            secret: None,
            extra: json!({}),
        }
    }

    /// A server at `127.0.0.1:port` (whatever listens there, if anything).
    pub(crate) fn at(name: &'a str, port: u16) -> Server<'a> {
        Server {
            name,
            url: format!("http://127.0.0.1:{port}/mcp"),
            origin: format!("http://127.0.0.1:{port}"),
            secret: None,
            extra: json!({}),
        }
    }
}

pub(crate) fn mcp_config(servers: &[Server], sessions: SessionSettings) -> Config {
    let mut p = PluginConfig::new(component("mcp"));
    let mut table = serde_json::Map::new();
    for s in servers {
        let mut entry = json!({ "url": s.url });
        if let Some(secret) = s.secret {
            entry["auth-secret"] = json!(secret);
            p.grants
                .secrets
                .push(SecretGrant::new(secret, vec![s.origin.clone()]));
        }
        for (k, v) in s.extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        table.insert(s.name.into(), entry);
        p.grants.network.push(s.origin.clone());
    }
    p.config = json!({ "servers": table });
    p.sessions = sessions;
    let mut c = config(Path::new(".")).with_plugin("mcp", p);
    c.secrets.insert(
        "MCP_TOKEN".into(),
        warden::config::SecretSource {
            env: Some("WARDEN_MCP_TEST_TOKEN".into()),
            file: None,
            exchange: None,
        },
    );
    std::env::set_var("WARDEN_MCP_TEST_TOKEN", "mcp-tok-42");
    c
}

async fn host(servers: &[Server<'_>]) -> Host {
    Host::new(mcp_config(servers, SessionSettings::default()))
        .await
        .expect("host loads")
}

async fn count(host: &Host, key: &str) -> Value {
    host.call_in_session("mcp.demo.count", json!({}), Some(key))
        .await
        .unwrap()["result"]
        .clone()
}

#[tokio::test]
async fn tools_become_capabilities_with_converted_schemas_and_metadata() {
    let server = McpServer::start(&[]);
    let mut s = Server::of("demo", &server);
    s.extra = json!({"tools": {"deny": ["secret_*"]}});
    let host = host(&[s]).await;
    let add = host.capability("mcp.demo.add").unwrap();
    assert_eq!(add.flat_metadata["mcp.requires-session"], true);
    assert_eq!(add.flat_metadata["mcp.server-url"], server.url());
    assert_eq!(add.flat_metadata["mcp.tool-name"], "add");
    // The tool's annotations are kept as metadata.
    assert_eq!(add.flat_metadata["mcp.annotations.read-only-hint"], true);
    assert_eq!(add.flat_metadata["mcp.annotations.idempotent-hint"], true);
    assert_eq!(add.flat_metadata["mcp.annotations.open-world-hint"], false);
    assert!(!add
        .flat_metadata
        .contains_key("mcp.annotations.destructive-hint"));
    assert!(matches!(add.route, warden::Route::Session { .. }));
    assert_eq!(add.provider, warden::ProviderKind::Mcp);
    assert!(add.input_schema.contains(":a :int"), "{}", add.input_schema);
    // Exported to the marketplace as :Mcp, the secret by name only.
    let dir = tempfile::tempdir().unwrap();
    let report = host.export_json(&dir.path().join("snap.json")).unwrap();
    assert!(
        report.exported.contains(&"mcp.demo.add".to_string()),
        "{report:?}"
    );
    let snap = std::fs::read_to_string(dir.path().join("snap.json")).unwrap();
    assert!(
        snap.contains("\"Mcp\"") && snap.contains("tool-name"),
        "{snap}"
    );
    // The deny filter hides a tool.
    assert!(matches!(
        host.capability("mcp.demo.secret_tool"),
        Err(Error::UnknownCapability { .. })
    ));
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 1, "b": 2}))
            .await
            .unwrap()["result"],
        3
    );
    // The converted schema is checked before any request.
    let before = server.requests().len();
    let err = host
        .call("mcp.demo.add", json!({"a": "one", "b": 2}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(server.requests().len(), before);
    // A tool error is a typed upstream error with the tool's text.
    let err = host
        .call("mcp.demo.fail", json!({"message": "boom-7"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Capability {
                kind: warden::ErrorKind::Upstream,
                ..
            }
        ) && err.to_string().contains("boom-7"),
        "{err}"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_session_key_counts_in_its_own_session_sse_and_json() {
    for mode in [&[][..], &["--json"][..]] {
        let server = McpServer::start(mode);
        let host = host(&[Server::of("demo", &server)]).await;
        for n in 1..=3 {
            assert_eq!(count(&host, "agent-a").await, n, "mode {mode:?}");
        }
        assert_eq!(count(&host, "agent-b").await, 1);
        assert_eq!(count(&host, "agent-b").await, 2);
        assert_eq!(count(&host, "agent-a").await, 4);
        host.shutdown().await;
        // Both sessions were ended on the server.
        let deleted = server.deleted();
        assert!(
            deleted.len() >= 2 && deleted.iter().all(|s| s != "-"),
            "{deleted:?}"
        );
    }
}

#[tokio::test]
async fn the_client_also_works_through_wasi_http() {
    let server = McpServer::start(&[]);
    let mut c = mcp_config(&[Server::of("demo", &server)], SessionSettings::default());
    c.plugins.get_mut("mcp").unwrap().config["transport"] = json!("wasi-http");
    let host = Host::new(c).await.expect("host loads");
    for n in 1..=3 {
        assert_eq!(count(&host, "k").await, n);
    }
    host.shutdown().await;
    assert_eq!(
        server.deleted().iter().filter(|s| *s != "-").count(),
        2,
        "discovery's session and the call's"
    );
}

#[tokio::test]
async fn after_the_idle_ttl_the_count_restarts_and_the_server_saw_delete() {
    let server = McpServer::start(&[]);
    let settings = SessionSettings {
        idle_ttl_ms: 300,
        ..SessionSettings::default()
    };
    let host = Host::new(mcp_config(&[Server::of("demo", &server)], settings))
        .await
        .unwrap();
    assert_eq!(count(&host, "k").await, 1);
    assert_eq!(count(&host, "k").await, 2);
    let session = server
        .requests()
        .into_iter()
        .rev()
        .find(|(m, s)| m == "POST" && s != "-")
        .unwrap()
        .1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.deleted().contains(&session) {
        assert!(Instant::now() < deadline, "no DELETE of {session}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(host.open_sessions(), 0);
    assert_eq!(count(&host, "k").await, 1);
}

#[tokio::test]
async fn a_server_restart_mid_session_costs_no_failed_call() {
    let mut server = McpServer::start(&[]);
    let host = host(&[Server::of("demo", &server)]).await;
    assert_eq!(count(&host, "k").await, 1);
    assert_eq!(count(&host, "k").await, 2);
    server.restart();
    // The old session is unknown to the new process: initialised again, once.
    assert_eq!(count(&host, "k").await, 1);
    assert_eq!(count(&host, "k").await, 2);
    host.shutdown().await;
}

#[tokio::test]
async fn a_stateless_server_works() {
    let server = McpServer::start(&["--stateless", "--json"]);
    let host = host(&[Server::of("demo", &server)]).await;
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 20, "b": 22}))
            .await
            .unwrap()["result"],
        42
    );
    assert_eq!(
        host.call("mcp.demo.echo", json!({"text": "hi"}))
            .await
            .unwrap()["result"],
        "hi"
    );
    host.shutdown().await;
    assert!(server.requests().iter().all(|(_, s)| s == "-"));
}

#[tokio::test]
async fn a_bearer_protected_server_works_with_its_secret_and_fails_clearly_without() {
    let server = McpServer::start(&["--token", "mcp-tok-42"]);
    let mut with = Server::of("demo", &server);
    with.secret = Some("MCP_TOKEN");
    let host = host(&[with]).await;
    assert_eq!(
        host.call("mcp.demo.add", json!({"a": 1, "b": 2}))
            .await
            .unwrap()["result"],
        3
    );
    host.shutdown().await;

    // Without the secret the server's tools cannot be listed; the host
    // still starts and says why.
    let host = host_without_secret(&server).await;
    let pending = host.pending_sources("mcp").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].1.contains("401"), "{pending:?}");
    let err = host
        .call("mcp.demo.add", json!({"a": 1, "b": 2}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceUnavailable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("auth-secret"),
        "{text}"
    );
    assert!(!text.contains("mcp-tok-42"));
}

async fn host_without_secret(server: &McpServer) -> Host {
    Host::new(mcp_config(
        &[Server::of("demo", server)],
        SessionSettings::default(),
    ))
    .await
    .expect("a server refusing us does not stop the host")
}

#[tokio::test]
async fn a_server_that_is_down_gives_a_clear_error_and_is_retried() {
    let port = McpServer::free_port();
    let down = Server {
        name: "demo",
        url: format!("http://127.0.0.1:{port}/mcp"),
        origin: format!("http://127.0.0.1:{port}"),
        secret: None,
        extra: json!({}),
    };
    let up_server = McpServer::start(&[]);
    let settings = SessionSettings {
        discovery_retry_ms: 100,
        ..SessionSettings::default()
    };
    let host = Host::new(mcp_config(
        &[down, Server::of("other", &up_server)],
        settings,
    ))
    .await
    .expect("a server that is down does not stop the host");
    // The other server's tools are served.
    assert_eq!(
        host.call("mcp.other.add", json!({"a": 2, "b": 3}))
            .await
            .unwrap()["result"],
        5
    );
    let err = host
        .call("mcp.demo.add", json!({"a": 1, "b": 2}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("demo"), "{err}");
    // It comes up: the host registers its tools without a restart.
    let _server = McpServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match host.call("mcp.demo.add", json!({"a": 1, "b": 2})).await {
            Ok(v) => {
                assert_eq!(v["result"], 3);
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    host.shutdown().await;
}

#[tokio::test]
async fn without_a_network_grant_nothing_reaches_the_server() {
    let server = McpServer::start(&[]);
    let mut c = mcp_config(&[Server::of("demo", &server)], SessionSettings::default());
    c.plugins.get_mut("mcp").unwrap().grants.network.clear();
    let host = Host::new(c).await.expect("host loads");
    let pending = host.pending_sources("mcp").await.unwrap();
    assert!(pending[0].1.contains("denied"), "{pending:?}");
    assert!(server.requests().is_empty());
}

#[test]
fn the_cli_calls_a_tool_and_ends_its_session() {
    let server = McpServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warden.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[plugins.mcp]
component = "{}"
grants = {{ network = ["{}"] }}
[plugins.mcp.config.servers.demo]
url = "{}"
"#,
            component("mcp").display(),
            server.origin(),
            server.url()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::util::warden_cli())
        .arg("--config")
        .arg(&cfg)
        .args([
            "call",
            "mcp.demo.add",
            r#"{"a":1,"b":2}"#,
            "--session",
            "cli",
        ])
        .env(
            "WARDEN_CACHE_DIR",
            crate::util::target_dir().join("warden-test-cache"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["result"], 3);
    // The call's session was ended when the CLI exited.
    let sessions: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|(m, s)| m == "POST" && s != "-")
        .map(|(_, s)| s)
        .collect();
    let deleted = server.deleted();
    assert!(!sessions.is_empty());
    assert!(
        sessions.iter().all(|s| deleted.contains(s)),
        "{sessions:?} vs {deleted:?}"
    );
}

/// A server that answers each request with the next canned response
/// (`Connection: close`), for protocol violations the Python SDK never makes.
fn canned_server(
    responses: Vec<(u16, &'static str, String)>,
) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for (status, ctype, body) in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut buf = vec![0; length];
            let _ = reader.read_exact(&mut buf);
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\nmcp-session-id: s1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, handle)
}

#[tokio::test]
async fn protocol_violations_are_typed_errors_not_crashes() {
    let init = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}"#.to_string();
    // (what, the server's answers as (status, content type, body), the error)
    type Case<'a> = (&'a str, Vec<(u16, &'static str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "garbage instead of JSON",
            vec![(200, "application/json", "<html>nope".into())],
            "not JSON",
        ),
        (
            "an unknown protocol version",
            vec![(
                200,
                "application/json",
                init.replace("2025-11-25", "1999-01-01"),
            )],
            "1999-01-01",
        ),
        (
            "an SSE stream that ends without the response",
            vec![(
                200,
                "text/event-stream",
                "event: message\ndata: \n\n".into(),
            )],
            "without the response",
        ),
        (
            "a server error",
            vec![(500, "text/plain", "boom".into())],
            "500",
        ),
        (
            "tools/list is not JSON",
            vec![
                (200, "application/json", init.clone()),
                (202, "application/json", String::new()),
                (
                    200,
                    "application/json",
                    "{\"jsonrpc\":\"2.0\",\"id\":2,".into(),
                ),
            ],
            "not JSON",
        ),
        (
            "a JSON-RPC error",
            vec![
                (200, "application/json", init.clone()),
                (202, "application/json", String::new()),
                (
                    200,
                    "application/json",
                    r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no tools here"}}"#
                        .into(),
                ),
            ],
            "no tools here",
        ),
    ];
    for (name, responses, expect) in cases {
        let (port, server) = canned_server(responses);
        // The canned answers follow the 2025-11-25 handshake.
        let down = Server {
            name: "demo",
            url: format!("http://127.0.0.1:{port}/mcp"),
            origin: format!("http://127.0.0.1:{port}"),
            secret: None,
            extra: json!({"protocol": "2025-11-25"}),
        };
        let host = Host::new(mcp_config(&[down], SessionSettings::default()))
            .await
            .unwrap_or_else(|e| panic!("{name}: the host must start: {e}"));
        let pending = host.pending_sources("mcp").await.unwrap();
        assert_eq!(pending.len(), 1, "{name}");
        assert!(pending[0].1.contains(expect), "{name}: {pending:?}");
        drop(host);
        let _ = server.join();
    }
}

//! What an OAuth access token costs a `tools/call` over `warden serve`'s
//! HTTP transport against a static bearer token: the same host behind two
//! servers, one with `[serve] tokens`, one with `[serve.oauth]` whose
//! provider is a real OpenID provider (`tests/serve/oidc-provider.mjs`,
//! npm `oidc-provider`, installed by `cargo xtask test`) that signed the
//! token (RS256); its keys are fetched once, before the rounds. Interleaved
//! rounds from one kept-alive minimal client each.
//!
//! Run: `cargo bench -p warden-serve --bench oauth`.

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use warden::{Config, Host, PluginConfig};
use warden_serve::{OAuthSettings, ServeSettings};
use warden_test_support::components;
use warden_test_support::interleave::{interleave, Contender};

#[path = "raw_client.rs"]
mod raw_client;
use raw_client::RawClient;

const STATIC_TOKEN: &str = "bench-static-token-0123456789";

/// Starts the provider for `resource`; the child (stopped when its stdin
/// closes) and its issuer.
fn provider(resource: &str) -> (std::process::Child, String) {
    let script = components::target_dir().join("../tests/serve/oidc-provider.mjs");
    let script = warden_test_support::repo_file("tests/serve/oidc-provider.mjs")
        .canonicalize()
        .unwrap_or(script);
    let mut child = Command::new("node")
        .arg(script)
        .args(["--port", "0", "--resource", resource])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node and tests/serve/node_modules (cargo xtask test installs them)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("the provider started");
    (child, format!("http://127.0.0.1:{port}"))
}

fn mint(issuer: &str) -> String {
    let addr = issuer.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = r#"{"claims":{"sub":"bench","exp":9999999999}}"#;
    write!(s, "POST /__mint HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n").nth(1).unwrap().to_string()
    } else {
        body.to_string()
    }
}

fn request(token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Authorization: Bearer {token}\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: text.case\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let text = PluginConfig::new(components::component("text"));
    let host = rt
        .block_on(Host::new(Config::new(".").with_plugin("text", text)))
        .expect("host loads");
    let port = warden_test_support::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let (_provider, issuer) = provider(&resource);
    let token = mint(&issuer);
    let oauth: OAuthSettings = toml::from_str(&format!(
        "issuer = \"{issuer}\"\nresource = \"{resource}\"\n"
    ))
    .unwrap();
    let settings = ServeSettings {
        oauth: Some(oauth),
        ..ServeSettings::default()
    };
    let with_oauth = warden_serve::Server::from_host(host.clone(), settings, Vec::new());
    let with_static = warden_serve::Server::from_host(
        host.clone(),
        ServeSettings::default(),
        vec![(STATIC_TOKEN.into(), "bench".into())],
    );
    let bind = |server: &warden_serve::Server, addr: &str| {
        let listener = rt
            .block_on(server.bind_http(addr.parse().unwrap()))
            .expect("binds");
        let url = format!("http://{}/mcp", listener.local_addr());
        rt.spawn(listener.run());
        url
    };
    let oauth_url = bind(&with_oauth, &format!("127.0.0.1:{port}"));
    let static_url = bind(&with_static, "127.0.0.1:0");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "text.case", "arguments": {"text": "hello there", "to": "upper"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let (jwt_request, static_request) = (request(&token, &body), request(STATIC_TOKEN, &body));
    let mut jwt_client = rt.block_on(RawClient::connect(&oauth_url));
    let mut static_client = rt.block_on(RawClient::connect(&static_url));
    // The first call fetches the provider's keys.
    assert!(rt
        .block_on(jwt_client.exchange(&jwt_request))
        .contains("HELLO THERE"));
    let measured = interleave(
        "tools/call over HTTP: a static bearer token against an OAuth JWT (RS256, keys cached)",
        30,
        200,
        &mut [
            Contender::new("static token", || {
                assert!(rt
                    .block_on(static_client.exchange(&static_request))
                    .contains("HELLO THERE"));
            }),
            Contender::new("OAuth JWT", || {
                assert!(rt
                    .block_on(jwt_client.exchange(&jwt_request))
                    .contains("HELLO THERE"));
            }),
        ],
    );
    println!(
        "interleaved: an OAuth JWT adds {:.1} µs per call over a static token",
        (measured[1].mean - measured[0].mean) * 1e6
    );
}

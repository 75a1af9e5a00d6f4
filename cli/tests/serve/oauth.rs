//! `warden serve` as an OAuth 2.1 resource server, against a real OpenID
//! provider (`oidc-provider` from npm, `tests/serve/oidc-provider.mjs`):
//! the official Python SDK's OAuth client finds the authorization server
//! from the 401, registers, gets a token by the authorization code flow
//! with PKCE and the resource indicator, and calls a tool; tokens the
//! provider signs with the wrong claims, and tokens an attacker makes,
//! are refused; a rotated key is fetched; a rule tells two principals
//! apart; and the caller's token is exchanged (RFC 8693) at the provider
//! for the one an upstream sees, which the plugin never sees.

use crate::components::component;
use crate::mcp_server::McpServer;
use crate::util::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

/// The provider, stopped when dropped (its stdin closes).
struct AuthServer {
    child: Child,
    port: u16,
}

impl AuthServer {
    fn start(resource: &str) -> AuthServer {
        Self::start_with(resource, None)
    }

    /// With token exchange to `upstream` allowed.
    fn start_with(resource: &str, upstream: Option<&str>) -> AuthServer {
        let mut child = Command::new("node")
            .arg(repo().join("tests/serve/oidc-provider.mjs"))
            .args(["--port", "0", "--resource", resource])
            .args(upstream.map(|u| ["--upstream", u]).into_iter().flatten())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(warden_test_support::peer_stderr())
            .spawn()
            .expect("starting oidc-provider");
        let mut line = String::new();
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8];
        while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .expect("the provider did not start")
            .parse()
            .unwrap();
        AuthServer { child, port }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw HTTP request to the provider; the body.
    fn request(&self, method: &str, path: &str, body: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        dechunked(&body)
    }

    /// A token the provider signs: its defaults (alice, this resource,
    /// five minutes, every scope) with `claims` over them (null removes).
    fn mint(&self, claims: Value, kid: Option<&str>, alg: Option<&str>) -> String {
        let mut ask = json!({ "claims": claims });
        if let Some(k) = kid {
            ask["kid"] = k.into();
        }
        if let Some(a) = alg {
            ask["alg"] = a.into();
        }
        self.request("POST", "/__mint", &ask.to_string())
    }

    fn rotate(&self, sign: &str, publish: &str) {
        self.request(
            "GET",
            &format!("/__rotate?sign={sign}&publish={publish}"),
            "",
        );
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn dechunked(body: &str) -> String {
    let Some((size, rest)) = body.split_once("\r\n") else {
        return body.to_string();
    };
    match usize::from_str_radix(size.trim(), 16) {
        Ok(n) if rest.len() >= n => rest[..n].to_string(),
        _ => body.to_string(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `tools/call` of text.case with `token`: the status, headers and body.
fn call_with(port: u16, token: &str) -> (u16, Vec<(String, String)>, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "text.case", "arguments": {"text": "oauth", "to": "upper"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let auth = format!("Bearer {token}");
    http(
        port,
        "POST",
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("authorization", &auth),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "text.case"),
        ],
        &body.to_string(),
    )
}

fn setup(extra: &str) -> (tempfile::TempDir, AuthServer, Serve) {
    setup_with(|_, _| extra.to_string())
}

/// [`setup`] with `[serve.oauth]` lines that name the provider (or files
/// written into the directory first).
fn setup_with(
    extra: impl Fn(&AuthServer, &std::path::Path) -> String,
) -> (tempfile::TempDir, AuthServer, Serve) {
    // The resource URL names the port before the server binds it: another
    // process may take it meanwhile, and then a new one is picked.
    for _ in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let port = McpServer::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let auth = AuthServer::start(&resource);
        let config = format!(
            "{}\n[serve.oauth]\nissuer = \"{}\"\nresource = \"{resource}\"\nscopes = [\"mcp:tools\"]\njwks-refresh-ms = 200\n{}",
            base_config(tmp.path()),
            auth.issuer(),
            extra(&auth, tmp.path())
        );
        let path = tmp.path().join("warden.toml");
        std::fs::write(&path, config).unwrap();
        match Serve::try_start_file(&path, &format!("127.0.0.1:{port}"), &["--no-watch"]) {
            Ok(serve) => return (tmp, auth, serve),
            Err(log) if log.contains("Address already in use") => continue,
            Err(log) => panic!("warden serve did not start: {log}"),
        }
    }
    panic!("no free port stayed free for warden serve in 5 tries")
}

#[test]
fn the_python_sdk_authorizes_through_the_provider_and_calls_a_tool() {
    let (_tmp, _auth, serve) = setup("");
    let out = Command::new(python())
        .arg(repo().join("tests/serve/oauth_client.py"))
        .args([
            serve.url.as_str(),
            "text.case",
            r#"{"text":"oauth","to":"upper"}"#,
        ])
        .output()
        .unwrap();
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
    let step = |s: &str| {
        lines
            .iter()
            .find(|l| l["step"] == s)
            .unwrap_or_else(|| panic!("no {s}: {stdout}"))
            .clone()
    };
    assert_eq!(step("authorize")["resource"][0], serve.url.as_str());
    assert!(step("tools")["names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "text.case"));
    assert_eq!(step("call")["structured"]["text"], "OAUTH");
    assert_eq!(step("token")["registered"], true);
}

#[test]
fn tokens_with_bad_claims_or_made_by_an_attacker_are_refused() {
    let (_tmp, auth, serve) = setup("");
    let p = serve.port;
    let good = auth.mint(json!({}), None, None);
    assert_eq!(call_with(p, &good).0, 200, "a good token passes");
    let t = now();
    let invalid = [
        (
            "expired",
            auth.mint(json!({"exp": t - 600, "iat": t - 900}), None, None),
        ),
        (
            "not yet valid",
            auth.mint(json!({"nbf": t + 600}), None, None),
        ),
        (
            "wrong audience",
            auth.mint(json!({"aud": "http://127.0.0.1:1/mcp"}), None, None),
        ),
        (
            "wrong issuer",
            auth.mint(json!({"iss": "http://127.0.0.1:1"}), None, None),
        ),
        ("no expiry", auth.mint(json!({"exp": null}), None, None)),
        ("unknown key", auth.mint(json!({}), Some("k3"), None)),
        (
            "HS256 with the public key",
            auth.mint(json!({}), Some("k1"), Some("HS256")),
        ),
    ];
    let (jws_header, _) = good.split_once('.').unwrap();
    let tampered_payload = b64url(json!({"iss": auth.issuer(), "aud": serve.url, "sub": "mallory", "exp": t + 300, "scope": "mcp:tools"}).to_string().as_bytes());
    let signature = good.rsplit('.').next().unwrap();
    let none_header = b64url(br#"{"alg":"none","kid":"k1"}"#);
    let good_payload = good.split('.').nth(1).unwrap();
    let forged = [
        (
            "tampered payload",
            format!("{jws_header}.{tampered_payload}.{signature}"),
        ),
        ("alg none", format!("{none_header}.{good_payload}.")),
        ("not a JWT", "opaque-token-value".to_string()),
    ];
    for (what, token) in invalid.iter().chain(forged.iter()) {
        let (status, headers, body) = call_with(p, token);
        assert_eq!(status, 401, "{what}: {body}");
        let challenge = header(&headers, "www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("resource_metadata=") && challenge.contains("invalid_token"),
            "{what}: {challenge}"
        );
    }
    // A token without the required scope: 403 naming it.
    let narrow = auth.mint(json!({"scope": "other"}), None, None);
    let (status, headers, _) = call_with(p, &narrow);
    assert_eq!(status, 403);
    let challenge = header(&headers, "www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("mcp:tools"),
        "{challenge}"
    );
    // Rotation: a token from a newly published key is accepted once the
    // keys are fetched again.
    auth.rotate("k2", "k1,k2");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rotated = auth.mint(json!({}), Some("k2"), None);
    assert_eq!(call_with(p, &rotated).0, 200, "{}", serve.log());
}

#[test]
fn the_protected_resource_metadata_names_the_provider() {
    let (_tmp, auth, serve) = setup("");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    write!(s, "GET /.well-known/oauth-protected-resource/mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", serve.port).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let meta: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert_eq!(meta["resource"], serve.url.as_str());
    assert_eq!(meta["authorization_servers"][0], auth.issuer());
    assert_eq!(meta["scopes_supported"][0], "mcp:tools");
    // Without a token: 401 pointing there.
    let (status, headers, _) = http(
        serve.port,
        "POST",
        &[("content-type", "application/json")],
        "{}",
    );
    assert_eq!(status, 401);
    let challenge = header(&headers, "www-authenticate").unwrap();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\"",
            serve.port
        )),
        "{challenge}"
    );
}

#[test]
fn a_rule_lets_one_oauth_principal_write_and_refuses_another() {
    let rules = format!(
        "[plugins.files]\ncomponent = \"{}\"\n\n[[policy.rules]]\ncapability = \"files.write\"\nprincipals = [\"alice\"]\n\n[[policy.rules]]\ncapability = \"files.write\"\ndecision = \"deny\"\nreason = \"only alice writes\"\n",
        component("files").display()
    );
    let (tmp, auth, serve) = setup(&rules);
    let call = |sub: &str| {
        let token = auth.mint(json!({"sub": sub}), None, None);
        let params =
            json!({"name": "files.write", "arguments": {"path": "/nowhere/x", "text": "x"}});
        modern(
            serve.port,
            1,
            "tools/call",
            params,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .1
    };
    // Alice passes the rule (the plugin then has no such directory);
    // bob is refused by it.
    let alice = call("alice").to_string();
    assert!(!alice.contains("only alice writes"), "{alice}");
    let bob = call("bob").to_string();
    assert!(bob.contains("only alice writes"), "{bob}");
    // The record names the principal, its issuer and its scopes.
    let records = audit(&tmp.path().join("audit.jsonl"));
    let denied = records
        .iter()
        .find(|r| r["capability"] == "files.write" && r["decision"] == "deny")
        .expect("bob's refusal is recorded");
    let client = denied["client"].as_str().unwrap_or_default();
    assert!(
        client.starts_with("bob (issuer ")
            && client.contains(&auth.issuer())
            && client.contains("scopes mcp:tools"),
        "{denied}"
    );
}

/// `tools/call` of `name` with `arguments`, as the holder of `token`.
fn call_tool_with(port: u16, token: &str, name: &str, arguments: Value) -> Value {
    let auth = format!("Bearer {token}");
    let (status, answer) = modern(
        port,
        1,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
        &[("authorization", &auth)],
    );
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The claims of a JWT (unverified: the test reads what the provider made).
fn claims(jwt: &str) -> Value {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let (mut bits, mut n, mut bytes) = (0u32, 0u32, Vec::new());
    for c in payload.bytes() {
        let v = A.iter().position(|a| *a == c).expect("base64url") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[test]
fn the_callers_token_is_exchanged_for_the_upstreams_and_never_forwarded() {
    let upstream = warden_test_support::http_server::TestServer::start();
    let upstream_aud = format!("http://127.0.0.1:{}/", upstream.port);
    let tmp = tempfile::tempdir().unwrap();
    let port = McpServer::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let auth = AuthServer::start_with(&resource, Some(&upstream_aud));
    std::fs::write(tmp.path().join("exchange.secret"), "exchange-secret\n").unwrap();
    let origin = format!("http://127.0.0.1:{}", upstream.port);
    let config = format!(
        r#"{base}
[plugins.hostile.grants]
network = ["{origin}"]
secrets = [{{ name = "UPSTREAM", hosts = ["{origin}"], headers = ["authorization"] }},
           {{ name = "HUNG", hosts = ["{origin}"], headers = ["authorization"] }}]

[secrets.EXCHANGE_CLIENT]
file = "exchange.secret"

[secrets.UPSTREAM]
exchange = {{ token-endpoint = "{issuer}/token", audience = "{upstream_aud}", scope = "upstream:read", client-id = "warden-exchange", client-secret = "EXCHANGE_CLIENT" }}

[secrets.HUNG]
exchange = {{ token-endpoint = "http://127.0.0.1:{hung}/token", audience = "{upstream_aud}", client-id = "warden-exchange", client-secret = "EXCHANGE_CLIENT", timeout-ms = 300 }}

[serve.oauth]
issuer = "{issuer}"
resource = "{resource}"
scopes = ["mcp:tools"]
"#,
        base = base_config(tmp.path()),
        issuer = auth.issuer(),
        hung = warden_test_support::http_server::silent_port(),
    );
    let path = tmp.path().join("warden.toml");
    std::fs::write(&path, config).unwrap();
    let serve = Serve::start_file(&path, &format!("127.0.0.1:{port}"), &["--no-watch"]);

    let alice = auth.mint(json!({}), None, None);
    let headers = json!([["authorization", "Bearer {{secret:UPSTREAM}}"]]);
    let stored = call_tool_with(
        serve.port,
        &alice,
        "hostile.http-headers",
        json!({"url": upstream.url("/store"), "headers": headers}),
    );
    assert_ne!(stored["result"]["isError"], true, "{stored}");
    let sent: Vec<String> = upstream
        .seen()
        .iter()
        .filter_map(|s| {
            s.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let exchanged = sent[0].strip_prefix("Bearer ").expect("a bearer token");
    assert_ne!(exchanged, alice, "the caller's token is never forwarded");
    let c = claims(exchanged);
    assert_eq!(c["aud"], upstream_aud.as_str(), "{c}");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["act"]["sub"], "warden-exchange");
    assert_eq!(c["scope"], "upstream:read");
    for s in upstream.seen() {
        let all = format!("{:?}{}", s.headers, String::from_utf8_lossy(&s.body));
        assert!(
            !all.contains(&alice),
            "the caller's token reached the upstream"
        );
    }

    // The upstream echoes what it stored, token and all: the plugin gets
    // it cut out. A second call exchanges nothing more (the cache).
    let loaded = call_tool_with(
        serve.port,
        &alice,
        "hostile.http-headers",
        json!({"url": upstream.url("/load"), "headers": []}),
    );
    let text = loaded.to_string();
    assert!(
        !text.contains(exchanged),
        "the plugin saw the exchanged token: {text}"
    );
    assert!(text.contains("[redacted]"), "{text}");
    let count: Value = serde_json::from_str(&auth.request("GET", "/__exchanges", "")).unwrap();
    assert_eq!(count["exchanges"], 1, "one exchange for alice's calls");

    // A refused exchange: nothing goes out with the secret, and the audit
    // log says why.
    let barred = auth.mint(json!({"sub": "mallory", "no_exchange": true}), None, None);
    let before = upstream.count();
    let refused = call_tool_with(
        serve.port,
        &barred,
        "hostile.http-headers",
        json!({"url": upstream.url("/json"), "headers": headers}),
    );
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert_eq!(
        upstream.count(),
        before,
        "no request left without its token"
    );
    let denied = audit(&tmp.path().join("audit.jsonl"))
        .into_iter()
        .find(|r| {
            r["effect"] == "secret"
                && r["decision"] == "deny"
                && r["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("UPSTREAM ->"))
        })
        .expect("the refusal is audited");
    assert!(
        denied["reason"]
            .as_str()
            .unwrap_or("")
            .contains("/token was refused (invalid_grant"),
        "{denied}"
    );

    // A token endpoint that never answers: the exchange gives up after its
    // `timeout-ms` (300; the default is 5 s), and nothing goes out.
    let before = upstream.count();
    let started = std::time::Instant::now();
    let hung = call_tool_with(
        serve.port,
        &alice,
        "hostile.http-headers",
        json!({"url": upstream.url("/json"),
               "headers": [["authorization", "Bearer {{secret:HUNG}}"]]}),
    );
    assert_eq!(hung["result"]["isError"], true, "{hung}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the exchange waited {:?}",
        started.elapsed()
    );
    assert_eq!(upstream.count(), before, "nothing left without its token");
    assert!(
        audit(&tmp.path().join("audit.jsonl")).iter().any(|r| {
            r["effect"] == "secret"
                && r["decision"] == "deny"
                && r["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("HUNG ->"))
        }),
        "the timed-out exchange is audited"
    );
}

/// The audit `client` of the last call record.
fn last_client(dir: &std::path::Path) -> String {
    audit(&dir.join("audit.jsonl"))
        .into_iter()
        .rev()
        .find(|r| r["effect"] == "call" && r["capability"] == "text.case")
        .and_then(|r| r["client"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn principal_claim_and_leeway_are_what_the_settings_say() {
    let (tmp, auth, serve) = setup("principal-claim = \"email\"\nleeway-s = 5\n");
    let p = serve.port;
    let t = now();
    let with_email = auth.mint(json!({"email": "alice@example.com"}), None, None);
    assert_eq!(call_with(p, &with_email).0, 200);
    assert!(
        last_client(tmp.path()).starts_with("alice@example.com (issuer "),
        "{}",
        last_client(tmp.path())
    );
    let (status, _, body) = call_with(p, &auth.mint(json!({}), None, None));
    assert_eq!(status, 401, "a token without the principal claim: {body}");
    // Within the leeway: accepted; past it: refused (the default of 60 s
    // would take all four).
    for (claims, expected) in [
        (json!({"email": "a@x", "exp": t - 2, "iat": t - 100}), 200),
        (json!({"email": "a@x", "nbf": t + 2}), 200),
        (json!({"email": "a@x", "exp": t - 30, "iat": t - 100}), 401),
        (json!({"email": "a@x", "nbf": t + 30}), 401),
    ] {
        let (status, _, body) = call_with(p, &auth.mint(claims.clone(), None, None));
        assert_eq!(status, expected, "{claims}: {body}");
    }
}

#[test]
fn jwks_uri_names_the_keys_without_discovery() {
    // A wrong jwks-uri: no key, so no token passes (the keys are
    // unavailable, not a token fault).
    let (_tmp, auth, serve) = setup("jwks-uri = \"http://127.0.0.1:9/keys\"\n");
    let (status, _, body) = call_with(serve.port, &auth.mint(json!({}), None, None));
    assert!(status == 503 || status == 401, "{status}: {body}");
    drop(serve);
    // The provider's own, named directly.
    let (_tmp, auth, serve) = setup_with(|a, _| format!("jwks-uri = \"{}/jwks\"\n", a.issuer()));
    assert_eq!(
        call_with(serve.port, &auth.mint(json!({}), None, None)).0,
        200
    );
}

#[test]
fn a_rule_names_groups_from_the_tokens_groups_claim() {
    let rules = format!(
        "groups-claim = \"roles\"\n\n[plugins.files]\ncomponent = \"{}\"\n\n[[policy.rules]]\ncapability = \"files.write\"\ngroups = [\"writers\"]\n\n[[policy.rules]]\ncapability = \"files.write\"\ndecision = \"deny\"\nreason = \"writers only\"\n",
        component("files").display()
    );
    let (tmp, auth, serve) = setup(&rules);
    let call = |claims: Value| {
        let token = auth.mint(claims, None, None);
        let params =
            json!({"name": "files.write", "arguments": {"path": "/nowhere/x", "text": "x"}});
        modern(
            serve.port,
            1,
            "tools/call",
            params,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .1
        .to_string()
    };
    for (claims, writes) in [
        (
            json!({"sub": "carol", "roles": ["readers", "writers"]}),
            true,
        ),
        (json!({"sub": "erin", "roles": "admins writers"}), true),
        (
            json!({"sub": "dave", "roles": ["readers", "writers-not"]}),
            false,
        ),
        // The configured claim, not the usual one.
        (json!({"sub": "frank", "groups": ["writers"]}), false),
    ] {
        let answer = call(claims.clone());
        assert_eq!(
            !answer.contains("writers only"),
            writes,
            "{claims}: {answer}"
        );
    }
    let records = audit(&tmp.path().join("audit.jsonl"));
    let carol = records
        .iter()
        .find(|r| {
            r["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("carol "))
        })
        .expect("carol's call is recorded");
    assert!(
        carol["client"]
            .as_str()
            .unwrap_or_default()
            .contains("; groups readers writers)"),
        "{carol}"
    );
}

#[test]
fn opaque_tokens_are_introspected_at_the_provider() {
    let (tmp, auth, serve) = setup_with(|a, dir| {
        std::fs::write(dir.join("introspect.secret"), "exchange-secret\n").unwrap();
        format!(
            "introspection = {{ endpoint = \"{}/token/introspection\", client-id = \"warden-exchange\", client-secret = \"INTROSPECT\" }}\n\n[secrets.INTROSPECT]\nfile = \"introspect.secret\"\n",
            a.issuer()
        )
    });
    let p = serve.port;
    let opaque = |ask: Value| auth.request("POST", "/__opaque", &ask.to_string());
    let alice = opaque(json!({"sub": "alice"}));
    assert!(!alice.contains('.'), "an opaque token: {alice}");
    let (status, _, body) = call_with(p, &alice);
    assert_eq!(status, 200, "{body}");
    assert!(
        last_client(tmp.path()).starts_with("alice (issuer "),
        "{}",
        last_client(tmp.path())
    );
    // Remembered: the same token again passes.
    assert_eq!(call_with(p, &alice).0, 200);
    for (what, token) in [
        (
            "meant for another resource",
            opaque(json!({"audience": "http://127.0.0.1:1/mcp"})),
        ),
        (
            "without the required scope",
            opaque(json!({"scope": "openid"})),
        ),
        (
            "unknown to the provider",
            "Zm9yZ2VkLW9wYXF1ZS10b2tlbg".to_string(),
        ),
    ] {
        let (status, _, body) = call_with(p, &token);
        assert!(status == 401 || status == 403, "{what}: {status} {body}");
    }
}

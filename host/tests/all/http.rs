//! The HTTP provider and governed egress, against real HTTP servers on
//! 127.0.0.1: GET and POST work; every denial leaves the server untouched.

use crate::util::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use warden::{Config, Error, Host, Limits, Manifest, PluginConfig, SecretGrant};

struct Setup {
    network: Vec<String>,
    caps: Vec<Manifest>,
    limits: Limits,
    secrets: Vec<SecretGrant>,
    resolve: BTreeMap<String, std::net::IpAddr>,
}

impl Setup {
    fn new(network: &[String]) -> Setup {
        Setup {
            network: network.to_vec(),
            caps: vec![],
            limits: Limits::default(),
            secrets: vec![],
            resolve: BTreeMap::new(),
        }
    }
    fn cap(mut self, id: &str, meta: Value) -> Setup {
        self.caps.push(http_capability(id, meta));
        self
    }
    async fn host(self) -> Host {
        let mut p = PluginConfig::new(component("http"));
        p.grants.network = self.network;
        p.grants.secrets = self.secrets;
        p.limits = self.limits;
        let mut c: Config = config(Path::new(".")).with_plugin("http", p);
        c.providers.insert("Http".into(), "http".into());
        c.capabilities = self.caps;
        c.host.resolve = self.resolve;
        c.secrets.insert(
            "TEST_TOKEN".into(),
            warden::config::SecretSource {
                env: Some("WARDEN_HTTP_TEST_TOKEN".into()),
                file: None,
                exchange: None,
            },
        );
        std::env::set_var("WARDEN_HTTP_TEST_TOKEN", "tok-0123-very-secret");
        Host::new(c).await.expect("host loads")
    }
}

fn grant(s: &TestServer) -> String {
    format!("http://127.0.0.1:{}", s.port)
}

fn expect_denied(r: warden::Result<Value>) -> String {
    match r {
        Err(e @ Error::Denied { .. }) => e.to_string(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn get_and_post_capabilities_work() {
    let s = TestServer::start();
    let host = Setup::new(&[grant(&s)])
        .cap("api.get", json!({"base-url": s.url(""), "path": "/json", "query": ["page", "q"], "headers": {"x-user": "{user}"}, "response-headers": ["x-served-by"]}))
        .cap("api.post", json!({"base-url": s.url(""), "method": "POST", "path": "/echo"}))
        .host()
        .await;
    assert_eq!(
        host.capability("api.get").unwrap().plugin.as_deref(),
        Some("http")
    );
    let out = host
        .call("api.get", json!({"page": 2, "q": "a b", "user": "ada"}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["headers"]["x-served-by"], "test");
    assert_eq!(out["body"]["method"], "GET");
    assert_eq!(out["body"]["query"], "page=2&q=a%20b");
    assert_eq!(out["body"]["headers"]["x-user"], "ada");
    let out = host
        .call("api.post", json!({"name": "widget", "n": 3}))
        .await
        .unwrap();
    assert_eq!(
        out["body"],
        json!({"method": "POST", "got": {"name": "widget", "n": 3}})
    );
    assert_eq!(s.count(), 2);
    let seen = s.seen();
    assert!(
        !seen[0]
            .headers
            .iter()
            .any(|(k, _)| k == "transfer-encoding" || k == "content-length"),
        "a GET carries no body"
    );
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/json?page=2&q=a%20b")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("POST", "/echo")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&seen[1].body).unwrap(),
        json!({"name": "widget", "n": 3})
    );
    assert_eq!(
        s.seen()[1]
            .headers
            .iter()
            .find(|(k, _)| k == "host")
            .unwrap()
            .1,
        format!("127.0.0.1:{}", s.port)
    );
}

#[tokio::test]
async fn denied_destinations_receive_nothing() {
    let s = TestServer::start();
    let other = TestServer::start();
    let port = s.port;
    // Each of these must be refused before anything reaches a server.
    let refused = [
        ("by.name.localhost", format!("http://localhost:{port}")),
        ("wildcard.mismatch", format!("http://api.other.test:{port}")),
        ("wrong.port", other.url("")),
        ("wrong.scheme", format!("https://127.0.0.1:{port}")),
        ("ip.literal", format!("http://[::1]:{port}")),
        (
            "private.by.wildcard",
            format!("http://svc.example.test:{port}"),
        ),
    ];
    let mut setup = Setup::new(&[
        grant(&s),
        format!("http://*.example.test:{port}"),
        format!("http://named.example.test:{port}"),
    ])
    .cap(
        "private.by.name",
        json!({"base-url": format!("http://named.example.test:{port}"), "path": "/json"}),
    )
    .cap(
        "redirect.away",
        json!({"base-url": s.url(""), "path": "/redirect", "query": {"to": other.url("/json")}}),
    )
    .cap(
        "spoofed.host",
        json!({"base-url": s.url(""), "path": "/json", "headers": {"host": "evil.example"}}),
    );
    for (id, base) in &refused {
        setup = setup.cap(id, json!({"base-url": base, "path": "/json"}));
    }
    for name in ["svc.example.test", "named.example.test", "api.other.test"] {
        setup
            .resolve
            .insert(name.into(), "127.0.0.1".parse().unwrap());
    }
    let host = setup.host().await;
    for (id, _) in &refused {
        let msg = expect_denied(host.call(id, json!({})).await);
        assert!(msg.contains("denied"), "{id}: {msg}");
        assert_eq!(s.count(), 0, "{id} reached the server");
    }
    // A redirect to an ungranted destination: the first hop is allowed, the second refused.
    expect_denied(host.call("redirect.away", json!({})).await);
    assert_eq!(s.count(), 1);
    expect_denied(host.call("spoofed.host", json!({})).await);
    assert_eq!(s.count(), 1, "the spoofed Host request reached the server");
    assert_eq!(other.count(), 0, "the other server was reached");
    assert_eq!(
        other.connections.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // The same private address is fine when the grant names the host.
    let out = host.call("private.by.name", json!({})).await.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn secrets_reach_only_bound_hosts_and_nothing_else_sees_them() {
    let s = TestServer::start();
    let other = TestServer::start();
    let mut setup = Setup::new(&[grant(&s), grant(&other)])
        .cap("with.secret", json!({"base-url": s.url(""), "path": "/json", "auth-secret": "TEST_TOKEN"}))
        .cap("secret.wrong.host", json!({"base-url": other.url(""), "path": "/json", "auth-secret": "TEST_TOKEN"}))
        .cap("secret.not.granted", json!({"base-url": s.url(""), "path": "/json", "headers": {"x-key": "{{secret:OTHER}}"}}));
    setup.secrets = vec![SecretGrant::new("TEST_TOKEN", vec![grant(&s)])];
    let host = setup.host().await;
    let out = host.call("with.secret", json!({})).await.unwrap();
    assert_eq!(
        s.seen()[0]
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1,
        "Bearer tok-0123-very-secret"
    );
    assert!(
        !out.to_string().contains("tok-0123"),
        "the guest saw the secret: {out}"
    );
    let msg = expect_denied(host.call("secret.wrong.host", json!({})).await);
    assert!(!msg.contains("tok-0123"), "{msg}");
    assert!(
        msg.contains("secret.wrong.host"),
        "the error names the capability called: {msg}"
    );
    expect_denied(host.call("secret.not.granted", json!({})).await);
    assert_eq!(s.count(), 1);
    assert_eq!(other.count(), 0);
}

#[tokio::test]
async fn oversized_responses_are_cut() {
    let s = TestServer::start();
    let mut setup = Setup::new(&[grant(&s)]).cap(
        "big",
        json!({"base-url": s.url(""), "path": "/big", "query": ["n", "chunked"]}),
    );
    setup.limits.max_response_bytes = Some(4000);
    let host = setup.host().await;
    assert_eq!(
        host.call("big", json!({"n": 3000})).await.unwrap()["body"]
            .as_str()
            .unwrap()
            .len(),
        3000
    );
    let msg = expect_denied(host.call("big", json!({"n": 5000})).await);
    assert!(msg.contains("cut"), "{msg}");
    let msg = expect_denied(host.call("big", json!({"n": 9000, "chunked": 1})).await);
    assert!(msg.contains("cut"), "{msg}");
    assert_eq!(
        host.call("big", json!({"n": 10})).await.unwrap()["status"],
        200,
        "the host goes on"
    );
}

#[tokio::test]
async fn per_call_request_and_byte_caps() {
    let s = TestServer::start();
    let mut setup = Setup::new(&[grant(&s)])
        .cap(
            "hop",
            json!({"base-url": s.url(""), "path": "/redirect", "query": {"to": s.url("/json")}}),
        )
        .cap(
            "upload",
            json!({"base-url": s.url(""), "method": "POST", "path": "/echo"}),
        );
    setup.limits.max_requests = Some(1);
    setup.limits.max_egress_bytes = Some(2000);
    let host = setup.host().await;
    let msg = expect_denied(host.call("hop", json!({})).await);
    assert!(msg.contains("denied"), "{msg}");
    assert_eq!(s.count(), 1, "the second request of the call was refused");
    expect_denied(host.call("upload", json!({"blob": "y".repeat(5000)})).await);
    // Budgets are per call: the next call starts afresh.
    assert_eq!(
        host.call("upload", json!({"small": 1})).await.unwrap()["status"],
        200
    );
}

#[tokio::test]
async fn request_timeout_is_a_typed_error() {
    let s = TestServer::start();
    let mut setup = Setup::new(&[grant(&s)]).cap(
        "slow",
        json!({"base-url": s.url(""), "path": "/slow", "query": ["ms"]}),
    );
    setup.limits.request_timeout_ms = Some(300);
    let host = setup.host().await;
    let started = std::time::Instant::now();
    match host.call("slow", json!({"ms": 3000})).await {
        Err(Error::Capability {
            kind: warden::ErrorKind::Timeout,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
}

#[tokio::test]
async fn retries_follow_the_metadata_hint_for_idempotent_methods_only() {
    let s = TestServer::start();
    let mut setup = Setup::new(&[grant(&s)]);
    let mut get = http_capability(
        "flaky.get",
        json!({"base-url": s.url(""), "path": "/flaky"}),
    );
    get.metadata = json!({"http": {"retry-strategy": {"attempts": 3, "backoff-ms": 10}}});
    let mut post = http_capability(
        "flaky.post",
        json!({"base-url": s.url(""), "method": "POST", "path": "/flaky"}),
    );
    post.metadata = get.metadata.clone();
    setup.caps = vec![get, post];
    let host = setup.host().await;
    match host.call("flaky.post", json!({})).await {
        Err(Error::Capability {
            kind: warden::ErrorKind::Upstream,
            message,
            ..
        }) => assert!(message.contains("500"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.count(), 1, "POST is not retried");
    // One 500 left: the GET is retried once and succeeds.
    assert_eq!(
        host.call("flaky.get", json!({})).await.unwrap()["status"],
        200
    );
    assert_eq!(s.count(), 3);
}

#[tokio::test]
async fn connections_are_reused() {
    let s = TestServer::start();
    let host = Setup::new(&[grant(&s)])
        .cap("get", json!({"base-url": s.url(""), "path": "/json"}))
        .host()
        .await;
    for _ in 0..5 {
        host.call("get", json!({})).await.unwrap();
    }
    assert_eq!(s.count(), 5);
    assert_eq!(
        s.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "keep-alive: one connection for five calls"
    );
}

#[tokio::test]
async fn an_imported_http_capability_is_callable() {
    let s = TestServer::start();
    let host = Setup::new(&[grant(&s)]).host().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weather.rtfs");
    std::fs::write(
        &file,
        format!(
            r#":module
  :type "rtfs/capabilities/marketplace-snapshot"
  :version "1.0.0"
  :capabilities [
    {{:id "weather.now"
     :provider :Http
     :provider-meta {{:base-url "{}" :path "/json" :query ["city"] :timeout-ms 2000}}
     :input-schema [:map [:city :string]]}}
  ]"#,
            s.url("")
        ),
    )
    .unwrap();
    assert_eq!(
        host.import(&file).unwrap().registered,
        vec!["weather.now".to_string()]
    );
    let out = host
        .call("weather.now", json!({"city": "Oslo"}))
        .await
        .unwrap();
    assert_eq!(out["body"]["query"], "city=Oslo");
    assert!(matches!(
        host.call("weather.now", json!({"city": 3})).await,
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(s.count(), 1);
}

#[tokio::test]
async fn the_raw_request_capability_obeys_the_same_grants() {
    let s = TestServer::start();
    let other = TestServer::start();
    let host = Setup::new(&[grant(&s)]).host().await;
    let out = host
        .call("http.request", json!({"url": s.url("/json"), "body": null}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    expect_denied(
        host.call(
            "http.request",
            json!({"url": other.url("/json"), "body": null}),
        )
        .await,
    );
    assert_eq!(other.count(), 0);
}

#[test]
fn the_cli_never_prints_or_logs_a_secret_and_logs_every_attempt() {
    let s = TestServer::start();
    let other = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warden.toml");
    std::fs::write(dir.path().join("token"), "file-secret-4242\n").unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"
providers = {{ Http = "http" }}

[secrets.API]
file = "token"

[plugins.http]
component = {component:?}
grants = {{ network = ["{g1}", "{g2}"], secrets = [{{ name = "API", hosts = ["{g1}"] }}] }}

[[capabilities]]
id = "good"
name = "good"
version = "1"
provider = "Http"
provider-meta = {{ base-url = "{u1}", path = "/json", auth-secret = "API" }}
input-schema = ":any"
output-schema = ":any"

[[capabilities]]
id = "leak"
name = "leak"
version = "1"
provider = "Http"
provider-meta = {{ base-url = "{u2}", path = "/json", auth-secret = "API" }}
input-schema = ":any"
output-schema = ":any"
"#,
            component = component("http").display().to_string(),
            g1 = grant(&s),
            g2 = grant(&other),
            u1 = s.url(""),
            u2 = other.url(""),
        ),
    )
    .unwrap();
    let run = |id: &str| {
        std::process::Command::new(crate::util::warden_cli())
            .args(["--config", cfg.to_str().unwrap(), "call", id, "{}"])
            .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    };
    let ok = run("good");
    let denied = run("leak");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        denied.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    assert_eq!(
        s.seen()[0]
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1,
        "Bearer file-secret-4242"
    );
    assert_eq!(other.count(), 0);
    for o in [&ok, &denied] {
        for stream in [&o.stdout, &o.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains("file-secret-4242"),
                "the secret leaked"
            );
        }
    }
    let log = String::from_utf8_lossy(&ok.stderr);
    assert!(
        log.contains("warden::egress")
            && log.contains("decision=\"allow\"")
            && log.contains("status=200"),
        "{log}"
    );
    let log = String::from_utf8_lossy(&denied.stderr);
    assert!(
        log.contains("decision=\"deny\"") && log.contains("secret `API` may not be sent"),
        "{log}"
    );
}

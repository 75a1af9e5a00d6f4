//! The A2A provider (`plugins/a2a`) against real agents on the official
//! Python SDK (`tests/a2a/agent.py`, a2a-sdk 1.3.0): one speaking 1.0 with
//! 0.3 beside it, one speaking 0.3 only; through governed egress, sessions
//! and limits.

use crate::util::{component, config, with_audit};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use warden::{CallContext, Config, Error, ErrorKind, Host, Limit, PluginConfig, SecretGrant};
use warden_test_support::a2a_agent::{A2aAgent, Sdk};

/// The agents every test here may share (started once per test binary).
fn shared(era: &str) -> &'static A2aAgent {
    static BOTH: OnceLock<A2aAgent> = OnceLock::new();
    static V03: OnceLock<A2aAgent> = OnceLock::new();
    match era {
        "0.3" => V03.get_or_init(|| A2aAgent::start(&["--era", "0.3"])),
        _ => BOTH.get_or_init(|| A2aAgent::start(&["--era", "both"])),
    }
}

/// A host with the A2A plugin and agent `name` at `agent`, its origin
/// granted when `grant`; `extra` is merged into the agent's configuration.
fn a2a_config(name: &str, agent: &A2aAgent, grant: bool, extra: Value) -> Config {
    let mut p = PluginConfig::new(component("a2a"));
    let mut server = json!({ "url": agent.url() });
    for (k, v) in extra.as_object().unwrap() {
        server[k] = v.clone();
    }
    if let Some(secret) = server.get("auth-secret").and_then(Value::as_str) {
        p.grants
            .secrets
            .push(SecretGrant::new(secret, vec![agent.url()]));
    }
    if grant {
        p.grants.network.push(agent.url());
    }
    p.config = json!({ "servers": { name: server } });
    let mut c = config(Path::new(".")).with_plugin("a2a", p);
    c.providers.insert("A2A".into(), "a2a".into());
    c.secrets.insert(
        "A2A_TOKEN".into(),
        warden::config::SecretSource {
            env: Some("WARDEN_A2A_TEST_TOKEN".into()),
            file: None,
            exchange: None,
        },
    );
    std::env::set_var("WARDEN_A2A_TEST_TOKEN", "a2a-tok-7");
    c
}

async fn host(era: &str, extra: Value) -> Host {
    Host::new(a2a_config("agent", shared(era), true, extra))
        .await
        .expect("host loads")
}

fn upstream(r: warden::Result<Value>) -> String {
    match r {
        Err(
            e @ Error::Capability {
                kind: ErrorKind::Upstream,
                ..
            },
        ) => e.to_string(),
        other => panic!("expected an upstream error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_skill_of_the_card_is_a_capability_at_the_cards_version() {
    for (era, version) in [("both", "1.0"), ("0.3", "0.3")] {
        let host = host(era, json!({})).await;
        let caps = host.capabilities();
        let ids: Vec<&str> = caps
            .iter()
            .map(|c| c.id.as_str())
            .filter(|id| id.starts_with("a2a.agent."))
            .collect();
        for skill in ["echo", "data", "count", "slow", "ask", "fail", "turn"] {
            assert!(
                ids.contains(&format!("a2a.agent.{skill}").as_str()),
                "{era}: {ids:?}"
            );
        }
        let echo = host.capability("a2a.agent.echo").unwrap();
        assert_eq!(echo.provider.name(), "A2A");
        assert_eq!(echo.metadata["a2a"]["protocol"], version, "{era}");
        assert_eq!(echo.metadata["a2a"]["tags"], json!(["echo"]));
        assert_eq!(echo.metadata["a2a"]["examples"], json!(["echo hello"]));
        assert_eq!(echo.description, "Replies with the text it was sent");
    }
}

/// The echo, data and count skills answer as the agent said them (`what`
/// names the case in failures).
async fn skills_answer(host: &Host, what: &str) {
    let out = host
        .call("a2a.agent.echo", json!({"text": "hello", "data": {"k": 1}}))
        .await
        .unwrap();
    assert_eq!(out["state"], "completed", "{what}");
    assert_eq!(out["text"], "echo: hello", "{what}");
    assert_eq!(out["data"][0]["k"].as_f64(), Some(1.0), "{what}: {out}");
    let out = host
        .call("a2a.agent.data", json!({"text": "go"}))
        .await
        .unwrap();
    assert_eq!(
        out["data"][0]["answer"].as_f64(),
        Some(42.0),
        "{what}: {out}"
    );
    assert_eq!(out["data"][0]["items"], json!(["a", "b"]), "{what}");
    assert_eq!(out["artifacts"][0]["name"], "result", "{what}");
    assert!(out["task-id"].is_string(), "{what}");
    let out = host
        .call("a2a.agent.count", json!({"text": "go"}))
        .await
        .unwrap();
    assert_eq!(
        out["text"], "chunk 0\nchunk 1\nchunk 2",
        "{what}: chunks appended"
    );
    assert_eq!(out["message"], "counted", "{what}");
}

/// A task that waits for input is answered by the next call of the session.
async fn input_is_answered_in_the_session(host: &Host, what: &str) {
    let asked = host
        .call_in_session("a2a.agent.ask", json!({"text": "hi"}), Some("s1"))
        .await;
    let e = upstream(asked);
    assert!(
        e.contains("input-required") && e.contains("What is your name?"),
        "{what}: {e}"
    );
    let out = host
        .call_in_session("a2a.agent.ask", json!({"text": "Ada"}), Some("s1"))
        .await
        .unwrap();
    assert_eq!(out["message"], "thanks, Ada", "{what}");
}

#[tokio::test]
async fn text_data_and_streamed_skills_answer_on_both_versions() {
    for era in ["both", "0.3"] {
        for streaming in [true, false] {
            let host = host(era, json!({ "streaming": streaming, "poll-ms": 20 })).await;
            skills_answer(&host, &format!("{era}, streaming {streaming}")).await;
        }
    }
    // Which wire each call took.
    let methods: Vec<String> = shared("both")
        .requests()
        .into_iter()
        .map(|[_, version, method, _]| format!("{method}@{version}"))
        .collect();
    for m in ["SendStreamingMessage@1.0", "SendMessage@1.0", "GetTask@1.0"] {
        assert!(methods.contains(&m.to_string()), "{m} in {methods:?}");
    }
    let methods: Vec<String> = shared("0.3")
        .requests()
        .into_iter()
        .map(|[_, _, method, _]| method)
        .collect();
    for m in ["message/stream", "message/send", "tasks/get"] {
        assert!(methods.contains(&m.to_string()), "{m} in {methods:?}");
    }
}

#[tokio::test]
async fn the_javascript_sdks_agent_is_served_the_same_on_both_versions() {
    for era in ["1.0", "0.3"] {
        let agent = A2aAgent::start_on(Sdk::JavaScript, &["--era", era]);
        for streaming in [true, false] {
            let extra = json!({ "streaming": streaming, "poll-ms": 20 });
            let host = Host::new(a2a_config("agent", &agent, true, extra))
                .await
                .expect("host loads");
            let what = format!("@a2a-js/sdk {era}, streaming {streaming}");
            let echo = host.capability("a2a.agent.echo").unwrap();
            assert_eq!(echo.metadata["a2a"]["protocol"], era, "{what}");
            skills_answer(&host, &what).await;
            input_is_answered_in_the_session(&host, &what).await;
        }
        let methods: Vec<String> = agent.requests().into_iter().map(|[_, _, m, _]| m).collect();
        let expected: &[&str] = match era {
            "1.0" => &["SendStreamingMessage", "SendMessage", "GetTask"],
            _ => &["message/stream", "message/send", "tasks/get"],
        };
        for m in expected {
            assert!(methods.iter().any(|x| x == m), "{era}: {m} in {methods:?}");
        }
    }
}

#[tokio::test]
async fn an_agents_working_status_is_the_calls_progress() {
    let host = host("both", json!({})).await;
    let (sink, heard) = crate::util::progress_listener();
    let ctx = CallContext {
        progress: Some(&sink),
        ..Default::default()
    };
    host.call_with("a2a.agent.count", json!({"text": "go"}), &ctx)
        .await
        .unwrap();
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard
            .iter()
            .any(|p| p.capability == "a2a.agent.count" && p.message == "working: counting"),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_task_that_needs_input_is_answered_in_the_same_session() {
    for era in ["both", "0.3"] {
        input_is_answered_in_the_session(&host(era, json!({})).await, era).await;
    }
}

#[tokio::test]
async fn a_failing_skill_is_an_upstream_error_with_the_agents_words() {
    let host = host("both", json!({})).await;
    let e = upstream(host.call("a2a.agent.fail", json!({"text": "x"})).await);
    assert!(
        e.contains("failed") && e.contains("it failed on purpose"),
        "{e}"
    );
    let e = host.call("a2a.agent.echo", json!({"txt": "x"})).await;
    assert!(
        matches!(e, Err(Error::InvalidInput { .. })),
        "the input schema holds: {e:?}"
    );
}

#[tokio::test]
async fn a_session_is_one_conversation_and_callers_without_one_share_none() {
    let host = host("both", json!({})).await;
    let turn = |key: Option<&'static str>| {
        let host = &host;
        async move {
            let out = host
                .call_in_session("a2a.agent.turn", json!({"text": "again"}), key)
                .await
                .unwrap();
            out["text"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(turn(Some("a")).await, "turn 1");
    assert_eq!(turn(Some("a")).await, "turn 2");
    assert_eq!(
        turn(Some("b")).await,
        "turn 1",
        "another session, another conversation"
    );
    assert_eq!(turn(None).await, "turn 1");
    assert_eq!(
        turn(None).await,
        "turn 1",
        "no session, no conversation kept"
    );
}

#[tokio::test]
async fn a_slow_task_stopped_by_the_time_limit_is_cancelled_upstream() {
    let cases = [
        (Sdk::Python, true),
        (Sdk::Python, false),
        (Sdk::JavaScript, true),
    ];
    for (sdk, streaming) in cases {
        let agent = A2aAgent::start_on(sdk, &[]);
        let mut c = a2a_config("agent", &agent, true, json!({ "streaming": streaming }));
        c.plugins.get_mut("a2a").unwrap().limits.timeout_ms = Some(1500);
        let host = Host::new(c).await.expect("host loads");
        let r = host.call("a2a.agent.slow", json!({"text": "go"})).await;
        assert!(
            matches!(
                r,
                Err(Error::LimitExceeded {
                    limit: Limit::Time,
                    ..
                })
            ),
            "{r:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !agent.events().contains(&"slow cancelled".to_string()) {
            assert!(
                Instant::now() < deadline,
                "{sdk:?}, streaming {streaming}: the agent never saw the cancel: {:?} {:?}",
                agent.events(),
                agent.requests()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The credential header of each JSON-RPC request the agent saw.
fn credentials_sent(agent: &A2aAgent) -> Vec<String> {
    agent
        .requests()
        .into_iter()
        .filter(|[path, ..]| path == "/")
        .map(|[.., credential]| credential)
        .collect()
}

#[tokio::test]
async fn a_bearer_secret_reaches_the_agent_and_never_the_plugin() {
    let agent = A2aAgent::start(&["--token", "a2a-tok-7"]);
    let tmp = tempfile::tempdir().unwrap();
    let c = a2a_config("agent", &agent, true, json!({ "auth-secret": "A2A_TOKEN" }));
    let (c, audit) = with_audit(c, tmp.path());
    let host = Host::new(c).await.expect("host loads");
    let out = host
        .call("a2a.agent.echo", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(out["text"], "echo: hi");
    let rpc = credentials_sent(&agent);
    assert!(
        !rpc.is_empty() && rpc.iter().all(|a| a == "Bearer a2a-tok-7"),
        "{rpc:?}"
    );
    host.shutdown().await;
    let log = std::fs::read_to_string(audit).unwrap();
    assert!(!log.contains("a2a-tok-7"), "the token is in no record");
    // Without the secret the agent refuses, and the error says what to set.
    let host = Host::new(a2a_config("agent", &agent, true, json!({})))
        .await
        .unwrap();
    let e = upstream(host.call("a2a.agent.echo", json!({"text": "hi"})).await);
    assert!(e.contains("401") && e.contains("auth-secret"), "{e}");
}

#[tokio::test]
async fn a_secret_goes_in_the_header_the_agent_names() {
    let agent = A2aAgent::start(&["--token", "a2a-tok-7", "--token-header", "X-Api-Key"]);
    let extra = json!({ "auth-secret": "A2A_TOKEN", "auth-header": "x-api-key" });
    // The grant must name the header: by default a secret fills only
    // `authorization`, and the host refuses the request.
    let host = Host::new(a2a_config("agent", &agent, true, extra.clone()))
        .await
        .expect("host loads");
    let err = host
        .call("a2a.agent.echo", json!({"text": "hi"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Denied { .. }) && err.to_string().contains("x-api-key"),
        "{err}"
    );
    host.shutdown().await;
    let mut c = a2a_config("agent", &agent, true, extra);
    c.plugins.get_mut("a2a").unwrap().grants.secrets[0].headers = vec!["X-Api-Key".into()];
    let host = Host::new(c).await.expect("host loads");
    let out = host
        .call("a2a.agent.echo", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(out["text"], "echo: hi");
    let sent = credentials_sent(&agent);
    assert!(
        !sent.is_empty() && sent.iter().all(|k| k == "a2a-tok-7"),
        "the token as is, in the named header: {sent:?}"
    );
    host.shutdown().await;
    // In the default header the agent does not look at, it is refused.
    let extra = json!({ "auth-secret": "A2A_TOKEN" });
    let host = Host::new(a2a_config("agent", &agent, true, extra))
        .await
        .unwrap();
    let e = upstream(host.call("a2a.agent.echo", json!({"text": "hi"})).await);
    assert!(e.contains("401"), "{e}");
}

#[tokio::test]
async fn an_agent_silent_past_timeout_ms_times_out() {
    let agent = A2aAgent::start(&["--stall-ms", "1500"]);
    let host = Host::new(a2a_config(
        "agent",
        &agent,
        true,
        json!({ "timeout-ms": 300 }),
    ))
    .await
    .expect("host loads");
    let err = host
        .call("a2a.agent.echo", json!({"text": "hi"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Capability {
                kind: ErrorKind::Timeout,
                ..
            }
        ),
        "{err}"
    );
    host.shutdown().await;
    // Without it, the same agent answers.
    let host = Host::new(a2a_config("agent", &agent, true, json!({})))
        .await
        .unwrap();
    let out = host
        .call("a2a.agent.echo", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(out["text"], "echo: hi");
}

#[tokio::test]
async fn the_extended_card_is_read_with_the_secret_when_asked_for() {
    for era in ["both", "0.3"] {
        let agent = A2aAgent::start(&["--era", era, "--token", "a2a-tok-7"]);
        let extra = json!({ "auth-secret": "A2A_TOKEN", "extended-card": true });
        let host = Host::new(a2a_config("agent", &agent, true, extra))
            .await
            .expect("host loads");
        assert!(host.capability("a2a.agent.secret").is_ok(), "{era}");
        let extra = json!({ "auth-secret": "A2A_TOKEN" });
        let host = Host::new(a2a_config("agent", &agent, true, extra))
            .await
            .expect("host loads");
        assert!(
            host.capability("a2a.agent.secret").is_err(),
            "{era}: public card only"
        );
        assert!(host.capability("a2a.agent.echo").is_ok(), "{era}");
    }
}

#[tokio::test]
async fn skill_globs_and_a_pinned_protocol_are_honoured() {
    let extra = json!({ "skills": { "deny": ["slow", "f*"] }, "protocol": "0.3" });
    let pinned = host("both", extra).await;
    for gone in ["a2a.agent.slow", "a2a.agent.fail"] {
        assert!(pinned.capability(gone).is_err(), "{gone} is denied");
    }
    let echo = pinned.capability("a2a.agent.echo").unwrap();
    assert_eq!(
        echo.metadata["a2a"]["protocol"], "0.3",
        "pinned below the card's 1.0"
    );
    let out = pinned
        .call("a2a.agent.echo", json!({"text": "pinned"}))
        .await
        .unwrap();
    assert_eq!(out["text"], "echo: pinned");
    let host = host("both", json!({ "skills": { "allow": ["e*"] } })).await;
    assert!(host.capability("a2a.agent.echo").is_ok());
    assert!(
        host.capability("a2a.agent.data").is_err(),
        "only what allow names"
    );
}

#[tokio::test]
async fn an_ungranted_agent_is_refused_with_no_request_sent() {
    let agent = A2aAgent::start(&[]);
    let host = Host::new(a2a_config("agent", &agent, false, json!({})))
        .await
        .expect("host loads");
    let r = host.call("a2a.agent.echo", json!({"text": "hi"})).await;
    let e = r.expect_err("no grant, no call");
    assert!(
        e.to_string().contains("denied") || e.to_string().contains("not granted"),
        "{e}"
    );
    assert_eq!(
        agent.requests(),
        Vec::<[String; 4]>::new(),
        "nothing reached the agent"
    );
}

#[tokio::test]
async fn an_imported_a2a_capability_is_served_through_the_plugin() {
    let agent = shared("both");
    let tmp = tempfile::tempdir().unwrap();
    // One names only its endpoint (the card under it decides the wire), one
    // its endpoint and protocol (no card read).
    let metas = [
        json!({"endpoint": agent.url(), "skill": "echo"}),
        json!({"endpoint": format!("{}/", agent.url()), "protocol": "0.3", "skill": "echo"}),
    ];
    let manifests: Vec<warden::Manifest> = metas
        .iter()
        .enumerate()
        .map(|(i, meta)| warden::Manifest {
            id: format!("remote.analyst.echo{i}"),
            name: "echo".into(),
            version: "1.0.0".into(),
            description: String::new(),
            provider: warden::ProviderKind::A2A,
            provider_meta: meta.as_object().unwrap().clone(),
            input_schema: "[:map [:text :string] [:data :any?]]".into(),
            output_schema: ":any".into(),
            metadata: json!({}),
            permissions: vec![],
            effects: vec![],
        })
        .collect();
    let file = tmp.path().join("remote.rtfs");
    std::fs::write(&file, warden::marketplace::snapshot_to_rtfs(&manifests)).unwrap();
    let mut c = a2a_config("agent", agent, true, json!({}));
    c.plugins.get_mut("a2a").unwrap().config = json!({});
    let host = Host::new(c).await.expect("host loads");
    let report = host.import(&file).unwrap();
    assert_eq!(report.registered.len(), 2, "{:?}", report.skipped);
    for i in 0..2 {
        let out = host
            .call(
                &format!("remote.analyst.echo{i}"),
                json!({"text": "from a snapshot"}),
            )
            .await
            .unwrap();
        assert_eq!(out["text"], "echo: from a snapshot");
    }
}

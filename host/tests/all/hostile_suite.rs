//! The hostile-plugin suite: each attack is a real guest component call.
//! For each one: the host keeps serving, the effect did not happen (checked
//! from outside: canary servers that must get no request, canary files
//! that must stay untouched), the caller gets a typed error, and the audit
//! log holds the denial.

use crate::governance::records;
use crate::util::{config, hostile, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use warden::audit::{Record, SyncPolicy};
use warden::{
    AuditSettings, DirGrant, DirMode, Error, Host, Limit, Limits, PluginRules, SecretGrant,
};

struct World {
    _tmp: tempfile::TempDir,
    audit: std::path::PathBuf,
    outside: std::path::PathBuf,
    canary: std::path::PathBuf,
    granted: TestServer,
    ungranted: TestServer,
    other: TestServer,
    host: Host,
}

const OUTSIDE: &str = "outside-original";
const CANARY: &str = "canary-original";

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let ro = tmp.path().join("ro");
    let rw = tmp.path().join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    let canary = ro.join("canary.txt");
    std::fs::write(&canary, CANARY).unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, OUTSIDE).unwrap();
    std::os::unix::fs::symlink(&outside, rw.join("link")).unwrap();
    let (granted, ungranted, other) = (
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    );

    let mut p = hostile();
    p.limits = Limits {
        fuel: Some(300_000_000),
        memory: Some(32 << 20),
        timeout_ms: Some(3000),
        max_output_bytes: Some(1 << 20),
        max_log_lines: Some(100),
        ..Limits::default()
    };
    p.grants.dirs = vec![
        DirGrant {
            host: ro.clone(),
            guest: "/ro".into(),
            mode: DirMode::ReadOnly,
        },
        DirGrant {
            host: rw.clone(),
            guest: "/rw".into(),
            mode: DirMode::ReadWrite,
        },
    ];
    p.grants.env = vec!["WARDEN_SUITE_GRANTED".into()];
    p.grants.network = vec![
        format!("http://127.0.0.1:{}", granted.port),
        format!("http://127.0.0.1:{}", other.port),
        format!("http://*.test:{}", granted.port),
    ];
    p.grants.secrets = vec![SecretGrant::new(
        "SUITE_TOKEN",
        vec![format!("http://127.0.0.1:{}", granted.port)],
    )];
    let mut c = config(Path::new("."))
        .with_plugin("hostile", p)
        // Written in WebAssembly text: Rust cannot emit `table.grow`.
        .with_plugin(
            "tablebomb",
            warden::PluginConfig::new(crate::util::component("table-bomb")),
        );
    c.host.resolve = BTreeMap::from([("internal.test".to_string(), "127.0.0.1".parse().unwrap())]);
    c.secrets.insert(
        "SUITE_TOKEN".into(),
        warden::config::SecretSource {
            env: Some("WARDEN_SUITE_TOKEN".into()),
            file: None,
            exchange: None,
        },
    );
    std::env::set_var("WARDEN_SUITE_TOKEN", "suite-token-value");
    std::env::set_var("WARDEN_SUITE_HIDDEN", "hidden-value");
    c.policy.plugins.insert(
        "hostile".into(),
        PluginRules {
            calls_per_minute: None,
            max_concurrent: Some(2),
            max_wait_ms: 100,
            digest: None,
        },
    );
    let audit = tmp.path().join("audit.jsonl");
    c.audit = Some(AuditSettings {
        path: audit.clone(),
        sync: SyncPolicy::Flush,
        rotate_bytes: 0,
        max_records_per_minute: None,
        max_bytes_per_minute: None,
        signing_key: None,
        checkpoint_records: None,
        checkpoint_ms: None,
        sink: None,
        replica: None,
    });
    let host = Host::new(c).await.expect("host loads");
    World {
        _tmp: tmp,
        audit,
        outside,
        canary,
        granted,
        ungranted,
        other,
        host,
    }
}

impl World {
    fn untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.outside).unwrap(), OUTSIDE);
        assert_eq!(std::fs::read_to_string(&self.canary).unwrap(), CANARY);
        assert!(
            self.ungranted.seen().is_empty(),
            "the ungranted server was reached"
        );
        assert_eq!(
            self.ungranted
                .connections
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }
    async fn still_serves(&self) {
        assert_eq!(
            self.host
                .call("hostile.echo", json!({"alive": true}))
                .await
                .unwrap(),
            json!({"alive": true})
        );
    }
}

/// What the caller must get.
enum Expect {
    Limit(Limit),
    Denied,
    Trap,
}

fn check(name: &str, r: &warden::Result<Value>, want: &Expect) {
    match (r, want) {
        (Err(Error::LimitExceeded { limit, .. }), Expect::Limit(l)) if limit == l => {}
        (Err(Error::LimitExceeded { limit, .. }), Expect::Limit(Limit::Fuel))
            if *limit == Limit::Time => {}
        (Err(Error::Denied { .. }), Expect::Denied) => {}
        (Err(Error::Trap { .. }), Expect::Trap) => {}
        (other, _) => panic!("{name}: unexpected outcome {other:?}"),
    }
}

fn denial_in(name: &str, new: &[Record], effect: &str) {
    assert!(
        new.iter()
            .any(|r| r.effect == effect && r.decision == "deny"),
        "{name}: no `{effect}` denial in the audit log: {new:#?}"
    );
}

#[tokio::test]
async fn every_attack_is_contained_denied_typed_and_audited() {
    let w = world().await;
    let g = w.granted.port;
    let attacks: Vec<(&str, &str, Value, Expect, &str)> = vec![
        (
            "infinite loop",
            "hostile.spin",
            json!({}),
            Expect::Limit(Limit::Fuel),
            "limit",
        ),
        (
            "memory bomb",
            "hostile.alloc",
            json!({"arg": 512}),
            Expect::Limit(Limit::Memory),
            "limit",
        ),
        (
            "stack overflow",
            "hostile.stack",
            json!({}),
            Expect::Limit(Limit::Stack),
            "limit",
        ),
        (
            "table growth",
            "tablebomb.grow",
            json!({}),
            Expect::Limit(Limit::Memory),
            "limit",
        ),
        (
            "huge output",
            "hostile.big-output",
            json!({"arg": 4}),
            Expect::Limit(Limit::Output),
            "limit",
        ),
        (
            "log flood",
            "hostile.log",
            json!({"arg": 100000}),
            Expect::Limit(Limit::Log),
            "log",
        ),
        (
            "env read without a grant",
            "hostile.env-strict",
            json!({"arg": "WARDEN_SUITE_HIDDEN"}),
            Expect::Denied,
            "env",
        ),
        (
            "file escape by ..",
            "hostile.write",
            json!({"path": "/rw/../outside.txt", "text": "pwned"}),
            Expect::Denied,
            "file",
        ),
        (
            "file escape by a symlink inside a preopen",
            "hostile.write",
            json!({"path": "/rw/link", "text": "pwned"}),
            Expect::Denied,
            "file",
        ),
        (
            "file escape by an absolute path",
            "hostile.write",
            json!({"path": w.outside.display().to_string(), "text": "pwned"}),
            Expect::Denied,
            "file",
        ),
        (
            "write to a read-only dir",
            "hostile.write",
            json!({"path": "/ro/canary.txt", "text": "pwned"}),
            Expect::Denied,
            "file",
        ),
        (
            "egress to an ungranted host",
            "hostile.http",
            json!({"arg": w.ungranted.url("/tiny")}),
            Expect::Denied,
            "egress",
        ),
        (
            "egress through wasi:http to an ungranted host",
            "hostile.http-wasi",
            json!({"arg": w.ungranted.url("/tiny")}),
            Expect::Denied,
            "egress",
        ),
        (
            "a name resolving to a private address",
            "hostile.http",
            json!({"arg": format!("http://internal.test:{g}/tiny")}),
            Expect::Denied,
            "egress",
        ),
        (
            "a secret placeholder aimed at the wrong host",
            "hostile.http-secret",
            json!({"url": w.other.url("/tiny"), "secret": "SUITE_TOKEN"}),
            Expect::Denied,
            "secret",
        ),
        (
            "raw TCP to an ungranted address",
            "hostile.tcp",
            json!({"arg": format!("127.0.0.1:{}", w.ungranted.port)}),
            Expect::Denied,
            "socket",
        ),
        (
            "panic mid-call",
            "hostile.panic",
            json!({}),
            Expect::Trap,
            "trap",
        ),
        (
            "trap mid-session",
            "hostile.session-trap",
            json!({}),
            Expect::Trap,
            "trap",
        ),
    ];
    assert!(attacks.len() >= 15);
    for (name, capability, input, want, effect) in &attacks {
        let before = records(&w.audit).len();
        let r = w.host.call(capability, input.clone()).await;
        check(name, &r, want);
        let all = records(&w.audit);
        denial_in(name, &all[before..], effect);
        w.untouched();
        w.still_serves().await;
    }
    // The secret's value was never sent anywhere but to its bound host, nor logged.
    assert!(
        w.other.seen().is_empty(),
        "the other server got the request"
    );
    let text = std::fs::read_to_string(&w.audit).unwrap();
    assert!(!text.contains("suite-token-value") && !text.contains("hidden-value"));

    // A session after a trap starts over.
    assert_eq!(
        w.host
            .call("hostile.session-count", json!({}))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_call_flood_past_the_concurrency_limit_is_refused_and_audited() {
    let w = world().await;
    let before = records(&w.audit).len();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let host = w.host.clone();
        tasks.push(tokio::spawn(async move {
            host.call("hostile.sleep", json!({"arg": 400})).await
        }));
    }
    let mut ok = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Busy { .. }) => busy += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(ok, 2, "max-concurrent = 2");
    assert_eq!(busy, 6);
    let new = &records(&w.audit)[before..];
    assert_eq!(
        new.iter()
            .filter(|r| r.effect == "call"
                && r.decision == "deny"
                && r.reason.contains("max-concurrent"))
            .count(),
        6
    );
    w.still_serves().await;
}

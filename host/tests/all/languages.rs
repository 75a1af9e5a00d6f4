//! The Python and JavaScript example plugins (`examples/python-plugin`,
//! componentize-py; `examples/js-plugin`, ComponentizeJS), built from
//! registry packages by `cargo xtask test`, under the same contract and
//! governance as Rust plugins: configuration kept across calls, a network
//! grant and its denial, a directory grant and its denial, typed errors, a
//! crash whose cause reaches the caller, and the fuel limit.

use crate::util::*;
use serde_json::json;
use std::path::Path;
use warden::{Error, Host, Limit, PluginConfig};

struct Lang {
    component: &'static str,
    prefix: &'static str,
    /// The grant form its network access needs: Python's urllib opens
    /// sockets, JavaScript's fetch goes through wasi:http.
    grant: fn(u16) -> String,
}

const PYTHON: Lang = Lang {
    component: "python-example",
    prefix: "pyexample",
    grant: |port| format!("tcp://127.0.0.1:{port}"),
};

const JS: Lang = Lang {
    component: "js-example",
    prefix: "jsexample",
    grant: |port| format!("http://127.0.0.1:{port}"),
};

async fn load(lang: &Lang, data: Option<&Path>, network: Option<u16>, fuel: Option<u64>) -> Host {
    let mut p = PluginConfig::new(component(lang.component));
    p.config = json!({"greeting": "Bonjour"});
    if let Some(data) = data {
        p.grants.dirs = vec![warden::DirGrant {
            host: data.to_path_buf(),
            guest: "/data".into(),
            mode: warden::DirMode::ReadOnly,
        }];
    }
    if let Some(port) = network {
        p.grants.network = vec![(lang.grant)(port)];
    }
    p.limits.memory = Some(128 << 20);
    p.limits.fuel = fuel;
    // Its ids are `pyexample.*` or `jsexample.*`, under another name.
    let p = p.with_namespaces(&["pyexample", "jsexample"]);
    Host::new(config(Path::new(".")).with_plugin("ex", p))
        .await
        .unwrap_or_else(|e| panic!("{} loads: {e}", lang.component))
}

async fn the_example_works_under_governance(lang: Lang) {
    let id = |name: &str| format!("{}.{name}", lang.prefix);
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("note.txt"), "granted text\n").unwrap();
    let server = TestServer::start();
    let host = load(&lang, Some(data.path()), Some(server.port), None).await;

    let out = host
        .call(&id("stats"), json!({"text": "one two\nthree"}))
        .await
        .unwrap();
    assert_eq!(out, json!({"words": 3, "lines": 2, "chars": 13}));
    // Configuration from init holds in every call.
    for name in ["Ada", "Grace"] {
        let out = host
            .call(&id("greet"), json!({ "name": name }))
            .await
            .unwrap();
        assert_eq!(out["greeting"], format!("Bonjour, {name}!"));
    }
    // A granted directory, and a path outside it (a typed error).
    let out = host
        .call(&id("read"), json!({"path": "/data/note.txt"}))
        .await
        .unwrap();
    assert_eq!(out["text"], "granted text\n");
    let err = host
        .call(&id("read"), json!({"path": "/etc/passwd"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Capability { .. }), "{err}");
    assert!(err.to_string().contains("only files under /data"), "{err}");
    // A granted server, and one no grant names (denied by the host).
    let out = host
        .call(&id("fetch"), json!({"url": server.url("/json")}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200, "{out}");
    let other = TestServer::start();
    let err = host
        .call(&id("fetch"), json!({"url": other.url("/json")}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    assert_eq!(other.count(), 0, "nothing reached the ungranted server");
    // Input is checked against the schema before the plugin runs.
    let err = host
        .call(&id("stats"), json!({"text": 5}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // A crash: the exception's message reaches the caller.
    let err = host
        .call(&id("crash"), json!({"why": "on purpose"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err}");
    assert!(
        err.to_string().contains("fails on purpose: on purpose"),
        "{err}"
    );
    // The plugin still serves after its crash.
    let out = host
        .call(&id("spin"), json!({"rounds": 1000}))
        .await
        .unwrap();
    assert_eq!(out["rounds"], 1000);
    host.shutdown().await;

    // Without the directory grant, the same read is denied; a runaway call
    // stops at the fuel limit and the next call works.
    let host = load(&lang, None, None, Some(300_000_000)).await;
    let err = host
        .call(&id("read"), json!({"path": "/data/note.txt"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    let err = host.call(&id("spin"), json!({})).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: Limit::Fuel,
                ..
            }
        ),
        "{err}"
    );
    let out = host
        .call(&id("stats"), json!({"text": "still here"}))
        .await
        .unwrap();
    assert_eq!(out["words"], 2);
    reports_progress(&host, &id("steps")).await;
    host.shutdown().await;
}

/// `capability` reports progress through `host.progress`: the caller's
/// listener hears it, the last report among what it hears.
async fn reports_progress(host: &Host, capability: &str) {
    let (sink, heard) = progress_listener();
    let ctx = warden::CallContext {
        progress: Some(&sink),
        ..Default::default()
    };
    let out = host
        .call_with(capability, json!({"steps": 4}), &ctx)
        .await
        .unwrap();
    assert_eq!(out["steps"], 4);
    let heard = heard.lock().unwrap().clone();
    let last = heard
        .last()
        .unwrap_or_else(|| panic!("{capability}: no progress"));
    assert_eq!(
        (last.done, last.total, last.message.as_str()),
        (4, Some(4), "step 4"),
        "{capability}: {heard:?}"
    );
}

#[tokio::test]
async fn the_python_example_works_under_governance() {
    the_example_works_under_governance(PYTHON).await;
}

#[tokio::test]
async fn the_javascript_example_works_under_governance() {
    the_example_works_under_governance(JS).await;
}

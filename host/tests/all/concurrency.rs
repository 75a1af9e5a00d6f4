//! Many concurrent calls from many tasks are all answered correctly.

use crate::util::*;
use serde_json::json;
use std::path::Path;
use warden::{Host, PluginConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_calls_are_all_correct() {
    let mut text = PluginConfig::new(component("text")).with_namespaces(&["text", "json"]);
    text.max_instances = 4; // fewer instances than callers: calls queue, none fail
    let cfg = config(Path::new("."))
        .with_plugin("text", text)
        .with_plugin("hostile", hostile());
    let host = Host::new(cfg).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..128usize {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let out = host
                    .call("text.stats", json!({"text": "w ".repeat(i)}))
                    .await
                    .unwrap();
                assert_eq!(out["words"], i, "call {i}");
            } else {
                let out = host.call("hostile.echo", json!({"i": i})).await.unwrap();
                assert_eq!(out["i"], i, "call {i}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_and_the_text_plugin() {
    #[derive(serde::Serialize)]
    struct In<'a> {
        text: &'a str,
        to: &'a str,
    }
    #[derive(serde::Deserialize)]
    struct Out {
        text: String,
    }
    let text = PluginConfig::new(component("text")).with_namespaces(&["text", "json"]);
    let host = host_with("text", text).await;
    for (to, want) in [
        ("snake", "hello_big_world"),
        ("kebab", "hello-big-world"),
        ("camel", "helloBigWorld"),
        ("pascal", "HelloBigWorld"),
        ("upper", "HELLO BIG-WORLD"),
    ] {
        let out: Out = host
            .call_typed(
                "text.case",
                &In {
                    text: "Hello big-World",
                    to,
                },
            )
            .await
            .unwrap();
        assert_eq!(out.text, want);
    }
    let merged = host
        .call(
            "json.merge",
            json!({"base": {"a": 1, "b": {"c": 2}}, "patch": {"b": {"c": null, "d": 3}}}),
        )
        .await
        .unwrap();
    assert_eq!(merged, json!({"a": 1, "b": {"d": 3}}));
    let got = host
        .call(
            "json.get",
            json!({"value": {"items": [{"name": "x"}]}, "pointer": "/items/0/name"}),
        )
        .await
        .unwrap();
    assert_eq!(got, json!({"found": true, "value": "x"}));
    let t = host
        .call("text.truncate", json!({"text": "abcdefghij", "max": 5}))
        .await
        .unwrap();
    assert_eq!(t, json!({"text": "abcd…", "truncated": true}));
    // The host checks the declared schema before the guest runs.
    match host
        .call("text.case", json!({"text": "x", "to": "sideways"}))
        .await
    {
        Err(e @ warden::Error::InvalidInput { .. }) => {
            assert!(e.to_string().contains("$.to: expected one of"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    match host.call("text.case", json!({"nope": 1})).await {
        Err(warden::Error::InvalidInput { .. }) => {}
        other => panic!("{other:?}"),
    }
    // What the schema lets through, the guest's typed input still checks.
    match host
        .call("text.case", json!({"text": "x", "to": "upper", "nope": 1}))
        .await
    {
        Err(warden::Error::Capability {
            kind: warden::ErrorKind::InvalidInput,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

//! The marketplace: schema checks around every call, snapshots exported,
//! edited by hand and imported back, every provider kind round-tripped.

use crate::util::*;
use serde_json::json;
use std::path::Path;
use warden::{Error, Host, Manifest, ProviderKind};

#[tokio::test]
async fn invalid_input_never_reaches_the_guest() {
    let host = host_with("hostile", hostile()).await;
    match host.call("hostile.typed", json!({"n": "seven"})).await {
        Err(e @ Error::InvalidInput { .. }) => {
            assert!(
                e.to_string().contains("$.n: expected :int, got string"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        host.call("hostile.typed", json!({})).await,
        Err(Error::InvalidInput { .. })
    ));
    // The guest's own counter proves the two calls above never ran.
    assert_eq!(
        host.call("hostile.typed", json!({"n": 1})).await.unwrap(),
        json!({"n": 1, "calls": 1})
    );
    assert_eq!(
        host.call("hostile.count", json!(null)).await.unwrap()["calls"],
        2
    );
}

#[tokio::test]
async fn output_that_breaks_its_schema_is_reported() {
    let host = host_with("hostile", hostile()).await;
    match host.call("hostile.bad-output", json!(null)).await {
        Err(e @ Error::InvalidOutput { .. }) => {
            assert!(
                e.to_string().contains("$.ok: expected :bool, got string"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// `Host::call_json` (input and output as text, checked as they are read)
/// decides every call as `Host::call` does: the same output, or the same
/// error, for inputs that fit, that do not (at any depth, in any way), and
/// text that is not JSON.
#[tokio::test]
async fn calls_with_json_text_are_decided_as_calls_with_values() {
    let host = host_with("hostile", hostile()).await;
    let context = warden::CallContext::default();
    let cases = [
        ("hostile.typed", r#"{"n": 1}"#),
        ("hostile.typed", r#"{"n": 1.0, "extra": [1, {"x": null}]}"#),
        ("hostile.typed", r#"{"n": "seven"}"#),
        ("hostile.typed", r#"{"n": 1.5}"#),
        ("hostile.typed", r#"{"n": null}"#),
        ("hostile.typed", r#"{"m": 1}"#),
        ("hostile.typed", r#"{"n": "x", "n": 2}"#),
        ("hostile.typed", "[1]"),
        ("hostile.typed", "{\"n\": 1"),
        ("hostile.typed", "{\"n\": 1} {}"),
        ("hostile.echo", r#"{"deep": [[[{"a": "\u00e9"}]]]}"#),
        ("hostile.bad-output", "null"),
    ];
    for (id, text) in cases {
        let as_text = host.call_json(id, text, &context).await;
        let as_value = match serde_json::from_str(text) {
            Ok(v) => host.call(id, v).await,
            Err(_) => {
                let e = as_text.expect_err(text);
                assert!(matches!(e, Error::InvalidInput { .. }), "{text}: {e}");
                assert!(e.to_string().contains("not JSON"), "{text}: {e}");
                continue;
            }
        };
        match (as_text, as_value) {
            (Ok(t), Ok(v)) => {
                let t: serde_json::Value = serde_json::from_str(&t).unwrap();
                // Compared without the guest's own call counter.
                let strip = |mut v: serde_json::Value| {
                    v.as_object_mut().map(|o| o.remove("calls"));
                    v
                };
                assert_eq!(strip(t), strip(v), "{id} {text}");
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{id} {text}"),
            (a, b) => panic!("{id} {text}: as text {a:?}, as a value {b:?}"),
        }
    }
}

fn manifest(id: &str, kind: ProviderKind) -> Manifest {
    let meta = match kind {
        ProviderKind::Http => {
            json!({"base-url": "https://api.example.com/v1", "timeout-ms": 2500, "auth-secret": "API_KEY", "extra": {"nested": [1, "two"]}})
        }
        ProviderKind::Mcp => {
            json!({"server-url": "http://127.0.0.1:3001/mcp", "tool-name": "list_issues", "timeout-ms": 5000})
        }
        ProviderKind::A2A => {
            json!({"endpoint": "https://agents.example.com/a2a", "namespace": "planning"})
        }
        ProviderKind::RemoteRtfs => json!({"module-url": "https://modules.example.com/math.rtfs"}),
        _ => json!({}),
    };
    Manifest {
        id: id.into(),
        name: format!("Name of {id}"),
        version: "3.1.4".into(),
        description: "Multi-line\n\"quoted\" description; with ; and \\ backslash".into(),
        provider: kind,
        provider_meta: meta.as_object().unwrap().clone(),
        input_schema: "[:map [:q :string] [:limit :int?] [:tags [:vector [:enum \"a\" \"b\"]]] [:pair [:tuple :int :float]] [:u [:union :bool :nil]]]".into(),
        output_schema: "[:vector [:map [:title :string] [:score :float?]]]".into(),
        metadata: json!({"mcp": {"requires-session": "auto", "server-url": "http://x"}, "http": {"retry-strategy": {"attempts": 2}, "rate-limit": "10/minute"}, "flag": true, "n": 1.5, "list": [1, null, "s"]}),
        permissions: vec!["read:things".into(), "write:other".into()],
        effects: vec!["call:external_api".into(), "maintain:session".into()],
    }
}

fn write_snapshot_dir(dir: &Path, caps: &[Manifest]) {
    std::fs::create_dir_all(dir).unwrap();
    for m in caps {
        std::fs::write(
            dir.join(warden::marketplace::file_name(&m.id, "rtfs")),
            warden::marketplace::snapshot_to_rtfs(std::slice::from_ref(m)),
        )
        .unwrap();
    }
}

fn store_config(store: &Path) -> warden::Config {
    let mut c = config(Path::new(".")).with_plugin("hostile", hostile());
    c.marketplace.dir = Some(store.to_path_buf());
    c
}

#[tokio::test]
async fn every_field_and_kind_survives_rtfs_and_json_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let kinds = [
        ProviderKind::Http,
        ProviderKind::Mcp,
        ProviderKind::A2A,
        ProviderKind::RemoteRtfs,
    ];
    let originals: Vec<Manifest> = kinds
        .iter()
        .map(|k| manifest(&format!("rt.{}", k.name().to_lowercase()), *k))
        .collect();
    let src = tmp.path().join("src");
    write_snapshot_dir(&src, &originals);

    let host = Host::new(store_config(&tmp.path().join("store1")))
        .await
        .unwrap();
    let report = host.import(&src).unwrap();
    assert_eq!(report.registered.len(), 4, "{report:?}");
    for m in &originals {
        assert_eq!(&host.capability(&m.id).unwrap().manifest(), m);
    }

    // RTFS: export, import into a second host, compare.
    let rtfs_dir = tmp.path().join("rtfs");
    let exported = host.export_rtfs(&rtfs_dir).unwrap();
    assert!(exported.exported.contains(&"hostile.remote".to_string()));
    assert!(
        exported
            .skipped
            .iter()
            .any(|(id, why)| id == "hostile.echo" && why.contains("runtime-only")),
        "{:?}",
        exported.skipped
    );
    let second = Host::new(store_config(&tmp.path().join("store2")))
        .await
        .unwrap();
    let report = second.import(&rtfs_dir).unwrap();
    assert!(
        report.skipped.iter().any(|(id, _)| id == "hostile.remote"),
        "a plugin's own id is not re-registered: {report:?}"
    );
    for m in &originals {
        assert_eq!(
            &second.capability(&m.id).unwrap().manifest(),
            m,
            "RTFS round trip of {}",
            m.id
        );
    }

    // JSON: same.
    let json_file = tmp.path().join("snap.json");
    host.export_json(&json_file).unwrap();
    let third = Host::new(store_config(&tmp.path().join("store3")))
        .await
        .unwrap();
    third.import(&json_file).unwrap();
    for m in &originals {
        assert_eq!(
            &third.capability(&m.id).unwrap().manifest(),
            m,
            "JSON round trip of {}",
            m.id
        );
    }
    // The plugin-declared Mcp capability survives too (exported with its provider meta).
    let text = std::fs::read_to_string(rtfs_dir.join("hostile.remote.rtfs")).unwrap();
    assert!(
        text.contains(":provider :Mcp") && text.contains(":auth-secret \"DEMO_TOKEN\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_hand_edit_survives_import_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("src");
    write_snapshot_dir(&src, &[manifest("weather.current", ProviderKind::Http)]);
    let host = Host::new(store_config(&store)).await.unwrap();
    host.import(&src).unwrap();

    let out = tmp.path().join("out");
    host.export_rtfs(&out).unwrap();
    let file = out.join("weather.current.rtfs");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text
        .replace(":version \"3.1.4\"", ":version \"4.0.0\"")
        .replace(":timeout-ms 2500", ":timeout-ms 9000");
    assert_ne!(text, edited);
    std::fs::write(&file, edited).unwrap();
    let report = host.import(&file).unwrap();
    assert_eq!(
        report.updated,
        vec!["weather.current".to_string()],
        "{report:?}"
    );
    let cap = host.capability("weather.current").unwrap();
    assert_eq!(cap.version, "4.0.0");
    assert_eq!(cap.provider_meta["timeout-ms"], 9000);

    // A new host on the same store sees the edit.
    let restarted = Host::new(store_config(&store)).await.unwrap();
    assert_eq!(
        restarted.capability("weather.current").unwrap().version,
        "4.0.0"
    );
    // Imported but not served by any plugin: a clear error, not a hang.
    match restarted
        .call(
            "weather.current",
            json!({"q": "x", "tags": [], "pair": [1, 2.0], "u": null}),
        )
        .await
    {
        Err(e @ Error::NotServed { .. }) => assert!(e.to_string().contains(":Http"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn runtime_only_and_broken_entries_are_skipped_with_a_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mixed.rtfs");
    std::fs::write(
        &file,
        r#":module
  :type "rtfs/capabilities/marketplace-snapshot"
  :version "1.0.0"
  :capabilities [
    {:id "ok.http" :provider :Http :provider-meta {:base-url "https://x"}}
    {:id "local.fn" :provider :Local}
    {:id "stream.s" :provider :Stream}
    {:id "leaky" :provider :Http :provider-meta {:base-url "https://x" :auth-token "ghp_secret"}}
    {:id "bad.schema" :provider :Http :provider-meta {:base-url "https://x"} :input-schema [:nope]}
    {:id "bad.hint" :provider :Http :provider-meta {:base-url "https://x"} :metadata {:http {:retry-strategy {:attempts 99}}}}
  ]"#,
    )
    .unwrap();
    let host = Host::new(config(Path::new("."))).await.unwrap();
    let report = host.import(&file).unwrap();
    assert_eq!(report.registered, vec!["ok.http".to_string()]);
    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    for needle in [
        "local.fn: :Local",
        "stream.s: :Stream",
        "auth-secret",
        "input-schema",
        "retry-strategy",
    ] {
        assert!(
            skipped.iter().any(|s| s.contains(needle)),
            "{needle} not in {skipped:?}"
        );
    }
    assert!(
        !skipped.join("\n").contains("ghp_secret"),
        "a secret value was echoed: {skipped:?}"
    );
    assert!(host.import(&tmp.path().join("nope.rtfs")).is_err());
}

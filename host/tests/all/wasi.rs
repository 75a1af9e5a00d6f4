//! Each plugin's WASI context is built from its grants alone; every denial
//! reaches the guest as an error it reports, and the effect does not happen.

use crate::util::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Once;
use warden::{DirGrant, DirMode, Error, Grants};

static ENV: Once = Once::new();

fn set_env() {
    ENV.call_once(|| {
        // Set once, before any host reads the environment.
        std::env::set_var("WARDEN_TEST_VISIBLE", "granted-value");
        std::env::set_var("WARDEN_TEST_SECRET", "must-not-leak");
    });
}

fn with_grants(grants: Grants) -> warden::PluginConfig {
    let mut p = hostile();
    p.grants = grants;
    p
}

fn expect_denied(r: warden::Result<serde_json::Value>) -> String {
    match r {
        Err(e @ Error::Denied { .. }) => e.to_string(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn only_granted_env_vars_are_visible() {
    set_env();
    let host = host_with(
        "hostile",
        with_grants(Grants {
            env: vec!["WARDEN_TEST_VISIBLE".into()],
            ..Default::default()
        }),
    )
    .await;
    let out = host
        .call("hostile.env", json!({"arg": "WARDEN_TEST_VISIBLE"}))
        .await
        .unwrap();
    assert_eq!(out["value"], "granted-value");
    assert_eq!(
        out["visible"], 1,
        "only the granted variable is in the environment"
    );
    for name in ["WARDEN_TEST_SECRET", "PATH", "HOME"] {
        let out = host
            .call("hostile.env", json!({"arg": name}))
            .await
            .unwrap();
        assert_eq!(out["value"], json!(null), "{name} leaked");
    }
    let none = host_with("hostile", hostile()).await;
    let out = none
        .call("hostile.env", json!({"arg": "WARDEN_TEST_VISIBLE"}))
        .await
        .unwrap();
    assert_eq!(out["value"], json!(null));
    assert_eq!(out["visible"], 0);
}

struct Dirs {
    _tmp: tempfile::TempDir,
    ro: std::path::PathBuf,
    rw: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let ro = tmp.path().join("ro");
    let rw = tmp.path().join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("canary.txt"), "original").unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "outside-secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, ro.join("link")).unwrap();
    Dirs {
        ro,
        rw,
        outside,
        _tmp: tmp,
    }
}

fn dir_grants(d: &Dirs) -> Grants {
    Grants {
        dirs: vec![
            DirGrant {
                host: d.ro.clone(),
                guest: "/data".into(),
                mode: DirMode::ReadOnly,
            },
            DirGrant {
                host: d.rw.clone(),
                guest: "/out".into(),
                mode: DirMode::ReadWrite,
            },
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn files_inside_a_grant_work() {
    let d = dirs();
    let host = host_with("hostile", with_grants(dir_grants(&d))).await;
    assert_eq!(
        host.call("hostile.read", json!({"arg": "/data/canary.txt"}))
            .await
            .unwrap()["text"],
        "original"
    );
    host.call(
        "hostile.write",
        json!({"path": "/out/new.txt", "text": "written"}),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(d.rw.join("new.txt")).unwrap(),
        "written"
    );
    assert_eq!(
        host.call("hostile.list", json!({"arg": "/data"}))
            .await
            .unwrap()["entries"],
        json!(["canary.txt", "link"])
    );
}

#[tokio::test]
async fn files_outside_every_grant_are_denied() {
    let d = dirs();
    let host = host_with("hostile", with_grants(dir_grants(&d))).await;
    let escape_abs = d.outside.display().to_string();
    for path in [
        "/etc/passwd",
        escape_abs.as_str(),
        "/data/../outside.txt",
        "/data/link",
        "/data/../../etc/passwd",
    ] {
        let msg = expect_denied(host.call("hostile.read", json!({"arg": path})).await);
        assert!(!msg.contains("outside-secret"), "{msg}");
    }
    // No grants at all: not even a preopen exists.
    let none = host_with("hostile", hostile()).await;
    expect_denied(
        none.call("hostile.read", json!({"arg": "/data/canary.txt"}))
            .await,
    );
}

#[tokio::test]
async fn writes_to_a_read_only_grant_are_denied() {
    let d = dirs();
    let host = host_with("hostile", with_grants(dir_grants(&d))).await;
    expect_denied(
        host.call(
            "hostile.write",
            json!({"path": "/data/canary.txt", "text": "tampered"}),
        )
        .await,
    );
    expect_denied(
        host.call(
            "hostile.write",
            json!({"path": "/data/new.txt", "text": "tampered"}),
        )
        .await,
    );
    expect_denied(
        host.call(
            "hostile.write",
            json!({"path": "/out/../ro/canary.txt", "text": "tampered"}),
        )
        .await,
    );
    assert_eq!(
        std::fs::read_to_string(d.ro.join("canary.txt")).unwrap(),
        "original",
        "canary changed"
    );
    assert!(
        !d.ro.join("new.txt").exists(),
        "file created in a read-only grant"
    );
    assert_eq!(
        std::fs::read_to_string(&d.outside).unwrap(),
        "outside-secret"
    );
}

/// The SDK's whole-message import and `wasi:http` are governed alike.
const HTTP_CAPS: [&str; 2] = ["hostile.http", "hostile.http-wasi"];

#[tokio::test]
async fn http_without_a_grant_is_denied_and_nothing_connects() {
    let server = TestServer::start();
    let (port, hits) = (server.port, server.connections.clone());
    let host = host_with("hostile", hostile()).await;
    // A grant for another port, scheme or host does not help.
    let other = Grants {
        network: vec![
            format!("http://127.0.0.1:{}", port.wrapping_add(1)),
            format!("https://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ],
        ..Default::default()
    };
    let near_miss = host_with("hostile", with_grants(other)).await;
    for cap in HTTP_CAPS {
        let msg = expect_denied(
            host.call(cap, json!({"arg": format!("http://127.0.0.1:{port}/")}))
                .await,
        );
        assert!(msg.contains("denied"), "{cap}: {msg}");
        expect_denied(
            near_miss
                .call(cap, json!({"arg": format!("http://127.0.0.1:{port}/")}))
                .await,
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the server was reached");
}

#[tokio::test]
async fn http_with_a_grant_reaches_the_server() {
    let server = TestServer::start();
    let (port, seen) = (server.port, server.requests.clone());
    let grants = Grants {
        network: vec![format!("http://127.0.0.1:{port}")],
        ..Default::default()
    };
    let host = host_with("hostile", with_grants(grants)).await;
    for (n, cap) in HTTP_CAPS.into_iter().enumerate() {
        let out = host
            .call(
                cap,
                json!({"arg": format!("http://127.0.0.1:{port}/tiny?y=1")}),
            )
            .await
            .unwrap();
        assert_eq!(out["status"], 200, "{cap}");
        assert_eq!(out["body"], r#"{"ok":true}"#, "{cap}");
        assert_eq!(seen.lock().unwrap().len(), n + 1, "{cap}");
    }
}

#[tokio::test]
async fn raw_tcp_obeys_the_same_grants() {
    let server = TestServer::start();
    let (port, hits) = (server.port, server.connections.clone());
    let host = host_with("hostile", hostile()).await;
    expect_denied(
        host.call("hostile.tcp", json!({"arg": format!("127.0.0.1:{port}")}))
            .await,
    );
    // An HTTP grant is not a TCP grant.
    let http_only = Grants {
        network: vec![format!("http://127.0.0.1:{port}")],
        ..Default::default()
    };
    let host = host_with("hostile", with_grants(http_only)).await;
    expect_denied(
        host.call("hostile.tcp", json!({"arg": format!("127.0.0.1:{port}")}))
            .await,
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let tcp = Grants {
        network: vec![format!("tcp://127.0.0.1:{port}")],
        ..Default::default()
    };
    let host = host_with("hostile", with_grants(tcp)).await;
    assert_eq!(
        host.call("hostile.tcp", json!({"arg": format!("127.0.0.1:{port}")}))
            .await
            .unwrap()["connected"],
        true
    );
    // Granted port only.
    let other_server = TestServer::start();
    let (other_port, other_hits) = (other_server.port, other_server.connections.clone());
    expect_denied(
        host.call(
            "hostile.tcp",
            json!({"arg": format!("127.0.0.1:{other_port}")}),
        )
        .await,
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn metadata_is_flattened_for_routing() {
    let host = host_with("hostile", hostile()).await;
    let cap = host.capability("hostile.echo").unwrap();
    assert_eq!(cap.flat_metadata["test.nested.key"], json!("v"));
    assert_eq!(cap.flat_metadata["test.flag"], json!(true));
    assert_eq!(cap.metadata["test"]["nested"]["key"], "v");
    assert_eq!(cap.plugin.as_deref(), Some("hostile"));
}

//! Secrets of MCP servers, through the CLI: a secret that is not granted,
//! or whose variable is unset, costs only the servers that need it, and a
//! call to their tools exits 3 (denied) naming why.

use crate::util::{component, McpServer};
use std::process::Output;

fn warden(cfg: &std::path::Path, args: &[&str]) -> Output {
    std::process::Command::new(crate::util::warden_cli())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env(
            "WARDEN_CACHE_DIR",
            crate::util::target_dir().join("warden-test-cache"),
        )
        .env("WARDEN_TEST_GRANTED_TOKEN", "tok-1")
        .env_remove("WARDEN_TEST_UNSET_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn a_secret_that_is_missing_or_not_granted_denies_only_its_servers_tools() {
    let open = McpServer::start(&[]);
    let unset = McpServer::start(&["--token", "tok-2"]);
    let ungranted = McpServer::start(&["--token", "tok-1"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warden.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[secrets]
UNSET = {{ env = "WARDEN_TEST_UNSET_TOKEN" }}
GRANTED = {{ env = "WARDEN_TEST_GRANTED_TOKEN" }}

[plugins.mcp]
component = "{component}"
grants = {{ network = ["{o1}", "{o2}", "{o3}"], secrets = [{{ name = "UNSET", hosts = ["{o2}"] }}] }}
[plugins.mcp.config.servers.open]
url = "{u1}"
[plugins.mcp.config.servers.unset]
url = "{u2}"
auth-secret = "UNSET"
[plugins.mcp.config.servers.ungranted]
url = "{u3}"
auth-secret = "GRANTED"
"#,
            component = component("mcp").display(),
            o1 = open.origin(),
            o2 = unset.origin(),
            o3 = ungranted.origin(),
            u1 = open.url(),
            u2 = unset.url(),
            u3 = ungranted.url(),
        ),
    )
    .unwrap();

    let out = warden(&cfg, &["call", "mcp.open.add", r#"{"a":1,"b":2}"#]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the other servers still serve: {stderr}"
    );

    let out = warden(&cfg, &["call", "mcp.unset.add", r#"{"a":1,"b":2}"#]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "denied: {stderr}");
    assert!(
        stderr.contains("WARDEN_TEST_UNSET_TOKEN") && stderr.contains("`unset`"),
        "names the variable and the server: {stderr}"
    );

    let out = warden(&cfg, &["call", "mcp.ungranted.add", r#"{"a":1,"b":2}"#]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "denied: {stderr}");
    assert!(
        stderr.contains("`GRANTED` is not granted"),
        "names the secret: {stderr}"
    );
    assert!(!stderr.contains("tok-1"), "never the value: {stderr}");
    // Neither request carrying a secret left the host.
    assert!(unset.requests().is_empty(), "{:?}", unset.requests());
    assert!(
        ungranted.requests().is_empty(),
        "{:?}",
        ungranted.requests()
    );
}

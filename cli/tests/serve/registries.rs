//! Warden services found without naming each one: the edge's MCP plugin
//! reads `[discovery]`, a registry URL (one service) and a DNS-SD name whose
//! SRV records, served by a real nameserver (dnsmasq), list two replicas of
//! central. Each found service is served under a name of its own; the SRV
//! lookup goes through the edge's governed DNS (a grant names it, it is
//! audited, a plugin without the grant is refused and central hears
//! nothing).

use crate::federation::{calls, central_with, keys, served};
use crate::util::*;
use serde_json::{json, Value};
use warden_test_support::dns::{Nameserver, Srv};
use warden_test_support::http_server::TestServer;

const SERVICE: &str = "_warden._tcp.warden.test";
/// Central's replicas bind loopback addresses: the names the SRV records
/// give them must be allowed as `Host`.
const ALLOWED: &str = "allowed-hosts = [\"r1.warden.test\", \"r2.warden.test\"]";

/// The edge in `dir`: the MCP plugin finding services by `discovery` (TOML
/// lines of its `[discovery]`), resolving names at `nameserver`, granted
/// `granted`, with Alice's token for every service found.
fn edge(dir: &std::path::Path, nameserver: &str, granted: &[String], discovery: &str) -> String {
    std::fs::write(dir.join("central-token"), TOKEN_A).unwrap();
    let hosts: Vec<String> = granted.iter().map(|g| format!("\"{g}\"")).collect();
    let hosts = hosts.join(", ");
    format!(
        "[host]\ndns-servers = [\"{nameserver}\"]\n\n\
         [secrets.CENTRAL]\nfile = \"central-token\"\n\n\
         [plugins.mcp]\ncomponent = \"{mcp}\"\n\
         grants = {{ network = [{hosts}], secrets = [{{ name = \"CENTRAL\", hosts = [{hosts}] }}] }}\n\n\
         [plugins.mcp.config.discovery]\n{discovery}\n\
         auth-secret = \"CENTRAL\"\nback-off-ms = 1\n\n\
         [audit]\npath = \"{audit}\"\n",
        mcp = crate::components::component("mcp").display(),
        audit = dir.join("audit.jsonl").display(),
    )
}

#[test]
fn services_are_found_by_srv_records_and_registry_urls() {
    let upstream = TestServer::start();
    let key = keys();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let centrals: Vec<Serve> = dirs
        .iter()
        .map(|d| central_with(d.path(), &upstream, key.path(), ALLOWED))
        .collect();
    let (p1, p2) = (centrals[0].port, centrals[1].port);
    let nameserver = Nameserver::start(
        &[
            Srv {
                name: SERVICE,
                target: "r1.warden.test",
                port: p1,
                priority: 0,
                weight: 10,
            },
            Srv {
                name: SERVICE,
                target: "r2.warden.test",
                port: p2,
                priority: 0,
                weight: 10,
            },
        ],
        &[
            ("r1.warden.test", "127.0.0.1"),
            ("r2.warden.test", "127.0.0.1"),
        ],
    );
    let replicas = [
        format!("http://r1.warden.test:{p1}"),
        format!("http://r2.warden.test:{p2}"),
        format!("http://127.0.0.1:{p1}"),
    ];
    // Every marketplace found must be signed with central's key.
    let public = std::fs::read_to_string(key.path().join("host.pub")).unwrap();
    let discovery = format!(
        "dns-sd = [\"{SERVICE}\"]\nscheme = \"http\"\nregistries = [\"{}\"]\n\
         marketplace-key = \"\"\"\n{public}\"\"\"",
        centrals[0].url
    );
    let edge_dir = tempfile::tempdir().unwrap();
    // The SRV name is granted by the wildcard; the targets (private
    // addresses) only by grants naming them exactly.
    let mut granted = vec!["http://*.warden.test:*".to_string()];
    granted.extend(replicas.iter().cloned());
    let config = edge(edge_dir.path(), &nameserver.addr(), &granted, &discovery);
    let served_edge = Serve::start(edge_dir.path(), &config, &[]);

    let registry = format!("mcp.127-0-0-1-{p1}.text.case");
    let args = json!({"text": "found", "to": "upper"});
    let mut script = vec![json!(["mcp.warden-test.text.case", args]); 4];
    script.push(json!([registry, args]));
    let (tools, out) = calls(&served_edge.url, &json!(script));
    let log = audit(&edge_dir.path().join("audit.jsonl"));
    let lookups: Vec<&Value> = log.iter().filter(|r| r["effect"] != "call").collect();
    for id in [
        "mcp.warden-test.text.case",
        "mcp.warden-test.weather.now",
        &registry,
    ] {
        assert!(tools.iter().any(|t| t == id), "{id}: {tools:?} {lookups:?}");
    }
    for o in &out {
        assert_eq!(o["structured"]["text"], "FOUND", "{o}");
    }
    // Both SRV targets served calls (round-robin over the replicas found).
    let both: Vec<usize> = dirs.iter().map(|d| served(d.path(), "text.case")).collect();
    assert!(both.iter().all(|n| *n > 0), "{both:?}");
    // The lookup is in the edge's log, granted, with its answer.
    let lookups: Vec<Value> = audit(&edge_dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["effect"] == "lookup" && r["target"] == SERVICE)
        .collect();
    let said = |r: &Value| r["reason"].as_str().unwrap_or("").to_string();
    assert!(
        lookups.iter().any(|r| said(r).contains("SRV, querying")),
        "{lookups:?}"
    );
    let answer = "r1.warden.test";
    assert!(
        lookups
            .iter()
            .any(|r| said(r).contains("SRV ->") && said(r).contains(answer)),
        "{lookups:?}"
    );

    // An edge expecting another key registers nothing of what it finds.
    let other_key = keys();
    let other_public = std::fs::read_to_string(other_key.path().join("host.pub")).unwrap();
    let wrong = discovery.replace(&public, &other_public);
    assert_ne!(wrong, discovery);
    let wrong_dir = tempfile::tempdir().unwrap();
    let config = edge(wrong_dir.path(), &nameserver.addr(), &granted, &wrong);
    let refusing = Serve::start(wrong_dir.path(), &config, &[]);
    let tools = tool_names(refusing.port);
    assert!(
        !tools
            .iter()
            .any(|t| t.starts_with("mcp.warden-test.") || t.starts_with("mcp.127-0-0-1-")),
        "{tools:?}"
    );
    // The log says why: the marketplace's signature did not verify.
    refusing.wait_for_log("is refused", std::time::Duration::from_secs(5));
}

#[test]
fn an_srv_name_no_grant_names_is_not_looked_up() {
    let nameserver = Nameserver::start(
        &[Srv {
            name: SERVICE,
            target: "r1.warden.test",
            port: 9,
            priority: 0,
            weight: 0,
        }],
        &[("r1.warden.test", "127.0.0.1")],
    );
    let dir = tempfile::tempdir().unwrap();
    // Only the target is granted: the SRV name itself is not.
    let granted = vec!["http://r1.warden.test:9".to_string()];
    let discovery = format!("dns-sd = [\"{SERVICE}\"]\nscheme = \"http\"");
    let config = edge(dir.path(), &nameserver.addr(), &granted, &discovery);
    let served = Serve::start(dir.path(), &config, &[]);
    let tools = tool_names(served.port);
    assert!(
        !tools.iter().any(|t| t.starts_with("mcp.warden-test.")),
        "{tools:?}"
    );
    let records = audit(&dir.path().join("audit.jsonl"));
    assert_lookup_denied(&records, "no network grant names it");
    // Nothing was asked of the nameserver, so nothing reached a target.
    assert!(
        !records.iter().any(|r| r["effect"] == "egress"),
        "{records:?}"
    );
    drop(served);

    // With `resolve-wildcards = false`, a wildcard grant is not enough for
    // the SRV name (its labels could carry data out).
    let strict = tempfile::tempdir().unwrap();
    let granted = vec!["http://*.warden.test:*".to_string()];
    let config = edge(strict.path(), &nameserver.addr(), &granted, &discovery).replacen(
        "[host]\n",
        "[host]\nresolve-wildcards = false\n",
        1,
    );
    let _edge = Serve::start(strict.path(), &config, &[]);
    let records = audit(&strict.path().join("audit.jsonl"));
    assert_lookup_denied(&records, "resolve-wildcards");
}

/// Checks that the first lookup of [`SERVICE`] in `records` was refused,
/// its reason saying `because`.
fn assert_lookup_denied(records: &[Value], because: &str) {
    let denied = records
        .iter()
        .find(|r| r["effect"] == "lookup" && r["target"] == SERVICE)
        .unwrap_or_else(|| panic!("no lookup record: {records:?}"));
    assert_eq!(denied["decision"], "deny", "{denied}");
    let reason = denied["reason"].as_str().unwrap_or("");
    assert!(reason.contains(because), "{denied}");
}

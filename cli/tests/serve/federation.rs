//! One Warden service importing another's capabilities (`:RemoteRTFS`):
//! two replicas of a "central" service (a secret-bound HTTP capability,
//! the text plugin, its marketplace signed) and an "edge" whose MCP plugin
//! reads central's published marketplace and serves it. The official
//! Python MCP client calls the edge: central's capabilities are listed and
//! called, denied by the edge's rule and by central's (a denial, not an
//! upstream error) and limited by the edge; with one central replica
//! killed, a read-only capability fails over and a non-idempotent one is
//! not retried; a marketplace signed with another key is refused; an edge
//! without a grant to central cannot reach it; and a snapshot saved from
//! central and imported into another host is served.

use crate::util::*;
use serde_json::{json, Value};
use warden_test_support::http_server::TestServer;

/// A central replica in `dir`: the base plugins with Alice's and Bob's
/// tokens, a read-only HTTP capability `weather.now` bound to secret `API`
/// at `upstream`, its marketplace signed with `key` (`host.key` there).
pub(crate) fn central(
    dir: &std::path::Path,
    upstream: &TestServer,
    key: &std::path::Path,
) -> Serve {
    central_with(dir, upstream, key, "")
}

/// [`central`] with `serve` (lines of its `[serve]` table) added.
pub(crate) fn central_with(
    dir: &std::path::Path,
    upstream: &TestServer,
    key: &std::path::Path,
    serve: &str,
) -> Serve {
    std::fs::copy(key.join("host.key"), dir.join("host.key")).unwrap();
    std::fs::write(dir.join("api-key"), "central-api-key-4242").unwrap();
    let origin = upstream.url("");
    let base = base_config(dir);
    let extra = format!(
        "{base}signing-key = {{ file = \"host.key\" }}\n\n\
         [secrets.API]\nfile = \"api-key\"\n\n\
         [plugins.http]\ncomponent = \"{http}\"\n\
         grants = {{ network = [\"{origin}\"], secrets = [{{ name = \"API\", hosts = [\"{origin}\"] }}] }}\n\n\
         [[capabilities]]\nid = \"weather.now\"\nname = \"Weather now\"\nversion = \"1.0.0\"\n\
         provider = \"Http\"\nprovider-meta = {{ base-url = \"{origin}\", path = \"/json\", auth-secret = \"API\" }}\n\
         input-schema = \":any\"\noutput-schema = \":any\"\n\
         metadata = {{ http = {{ read-only-hint = true }} }}\n",
        http = crate::components::component("http").display(),
    );
    let config = two_principals(dir, serve).replacen(&base, &extra, 1);
    let config = format!("providers = {{ Http = \"http\" }}\n{config}");
    Serve::start(dir, &config, &[])
}

/// A signing key pair (`host.key`, `host.pub`) in a new folder.
pub(crate) fn keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(warden_bin())
        .current_dir(dir.path())
        .args(["audit", "keygen", "host"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dir
}

/// The edge in `dir`: the MCP plugin with central's replicas at `urls`
/// (`marketplace = true`, Alice's token, `key` as the marketplace key),
/// network grants to `granted`, and `rules`.
fn edge(
    dir: &std::path::Path,
    urls: &[String],
    granted: &[String],
    key: &str,
    rules: &str,
) -> String {
    std::fs::write(dir.join("central-token"), TOKEN_A).unwrap();
    let list = |v: &[String]| {
        v.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hosts = list(granted);
    format!(
        "[secrets.CENTRAL]\nfile = \"central-token\"\n\n\
         [plugins.mcp]\ncomponent = \"{mcp}\"\n\
         grants = {{ network = [{hosts}], secrets = [{{ name = \"CENTRAL\", hosts = [{hosts}] }}] }}\n\n\
         [plugins.mcp.config.servers.central]\nurls = [{urls}]\nmarketplace = true\n\
         auth-secret = \"CENTRAL\"\nback-off-ms = 1\nmarketplace-key = \"\"\"\n{key}\"\"\"\n\n\
         {rules}\n\
         [audit]\npath = \"{audit}\"\n",
        mcp = crate::components::component("mcp").display(),
        urls = list(urls),
        audit = dir.join("audit.jsonl").display(),
    )
}

/// The Python client's calls to `url`: the tool list, then each outcome.
pub(crate) fn calls(url: &str, calls: &Value) -> (Vec<String>, Vec<Value>) {
    let lines = python_client(&["calls", "--url", url, "--calls", &calls.to_string()]);
    let tools = serde_json::from_value(lines[0]["tools"].clone()).unwrap();
    (tools, lines[1..].to_vec())
}

/// Counts `id`'s admitted calls in the audit log in `dir`.
pub(crate) fn served(dir: &std::path::Path, id: &str) -> usize {
    audit(&dir.join("audit.jsonl"))
        .iter()
        .filter(|r| r["effect"] == "call" && r["capability"] == id && r["decision"] == "ok")
        .count()
}

#[test]
fn an_edge_serves_a_central_service_with_both_governing() {
    let upstream = TestServer::start();
    let key = keys();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut centrals: Vec<Serve> = dirs
        .iter()
        .map(|d| central(d.path(), &upstream, key.path()))
        .collect();
    let urls: Vec<String> = centrals.iter().map(|c| c.url.clone()).collect();
    let origins: Vec<String> = centrals
        .iter()
        .map(|c| format!("http://127.0.0.1:{}", c.port))
        .collect();
    let public = std::fs::read_to_string(key.path().join("host.pub")).unwrap();
    let rules = "[[policy.rules]]\ncapability = \"mcp.central.text.slugify\"\ndecision = \"deny\"\nreason = \"not at the edge\"\n\n\
                 [[policy.rules]]\ncapability = \"mcp.central.text.case\"\ncalls-per-minute = 3\n";
    let edge_dir = tempfile::tempdir().unwrap();
    let config = edge(edge_dir.path(), &urls, &origins, &public, rules);
    let other_dir = tempfile::tempdir().unwrap();
    let other_config = edge(other_dir.path(), &urls, &origins, &public, "");
    let edge = Serve::start(edge_dir.path(), &config, &[]);

    let script = json!([
        ["mcp.central.text.case", {"text": "far away", "to": "upper"}],
        ["mcp.central.weather.now", {}],
        ["mcp.central.text.slugify", {"text": "Edge Says No"}],
        ["mcp.central.text.stats", {"text": "a b"}],
        ["mcp.central.text.case", {"text": "two", "to": "upper"}],
        ["mcp.central.text.case", {"text": "three", "to": "upper"}],
        ["mcp.central.text.case", {"text": "four", "to": "upper"}],
    ]);
    let (tools, out) = calls(&edge.url, &script);
    for id in [
        "mcp.central.text.case",
        "mcp.central.weather.now",
        "mcp.central.text.stats",
    ] {
        assert!(tools.contains(&id.to_string()), "{id}: {tools:?}");
    }
    assert!(
        !tools.iter().any(|t| t.contains("json.merge")),
        "denied at central: {tools:?}"
    );
    assert_eq!(out[0]["ok"], true, "{}", out[0]);
    assert_eq!(out[0]["structured"]["text"], "FAR AWAY", "{}", out[0]);
    // The secret-bound capability: central put its secret on the request.
    assert_eq!(out[1]["ok"], true, "{}", out[1]);
    let seen = upstream.seen();
    let auth = seen[0].headers.iter().find(|(k, _)| k == "authorization");
    assert!(
        auth.is_some_and(|(_, v)| v.contains("central-api-key-4242")),
        "{seen:?}"
    );
    // Denied by the edge's rule, then by central's (it asks for approval,
    // which nobody can give there): both denials.
    let kind = |o: &Value| (o["ok"].as_bool(), o["kind"].as_str().map(str::to_string));
    assert_eq!(
        kind(&out[2]),
        (Some(false), Some("denied".into())),
        "{}",
        out[2]
    );
    assert!(
        out[2]["text"].as_str().unwrap().contains("not at the edge"),
        "{}",
        out[2]
    );
    assert_eq!(
        kind(&out[3]),
        (Some(false), Some("denied".into())),
        "{}",
        out[3]
    );
    assert!(
        out[3]["text"]
            .as_str()
            .unwrap()
            .contains("Warden service `central`"),
        "{}",
        out[3]
    );
    // The edge's limit of 3 a minute: the fourth is limited.
    assert_eq!(
        (out[4]["ok"].as_bool(), out[5]["ok"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(out[6]["kind"], "rate-limited", "{}", out[6]);
    // Both replicas served (round-robin).
    let both: Vec<usize> = dirs.iter().map(|d| served(d.path(), "text.case")).collect();
    assert!(both.iter().all(|n| *n > 0), "{both:?}");
    // Each call the edge passed on is noted in its audit log with the
    // replica and call id central gave it: the two logs join on it.
    let notes: Vec<Value> = audit(&edge_dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["effect"] == "note" && r["target"] == "remote-call")
        .collect();
    assert!(notes.len() >= 4, "{notes:?}");
    let central_ids: Vec<String> = dirs
        .iter()
        .flat_map(|d| audit(&d.path().join("audit.jsonl")))
        .filter_map(|r| r["call_id"].as_str().map(str::to_string))
        .collect();
    for note in &notes {
        let reason = note["reason"].as_str().unwrap();
        let id = reason.rsplit("call ").next().unwrap();
        assert!(
            central_ids.iter().any(|c| c == id),
            "{reason} not in central's logs"
        );
        assert!(
            note["call_id"].as_str().is_some_and(|c| !c.is_empty()),
            "{note}"
        );
    }

    // A second edge, discovered while both replicas were up.
    let other = Serve::start(other_dir.path(), &other_config, &[]);

    // One replica killed: on the first edge the read-only capability fails
    // over every time, and the dead replica, once left out, is asked
    // /readyz before it is sent another call.
    let seen_before = audit(&edge_dir.path().join("audit.jsonl")).len();
    centrals.remove(0).signal_and_wait("KILL");
    let script = vec![json!(["mcp.central.weather.now", {}]); 4];
    let (_, out) = calls(&edge.url, &json!(script));
    assert!(out.iter().all(|o| o["ok"] == true), "{out:?}");
    // (Egress records name the method and origin: a GET to the dead
    // replica after the kill is the probe.)
    let probe = format!("GET {}", origins[0]);
    let after: Vec<Value> = audit(&edge_dir.path().join("audit.jsonl"))[seen_before..].to_vec();
    let probed = after
        .iter()
        .any(|r| r["effect"] == "egress" && r["target"] == probe.as_str());
    assert!(probed, "no /readyz probe of the dead replica: {after:?}");

    // On the second edge, a non-idempotent call sent to the dead replica
    // fails and is not retried: the live one serves exactly the others.
    let before = served(dirs[1].path(), "text.truncate");
    let args = json!({"text": "abcdef", "max": 3});
    let script = vec![json!(["mcp.central.text.truncate", args]); 4];
    let (_, out) = calls(&other.url, &json!(script));
    let ok = out.iter().filter(|o| o["ok"] == true).count();
    let refused: Vec<&Value> = out.iter().filter(|o| o["ok"] != true).collect();
    assert!(
        !refused.is_empty(),
        "none landed on the dead replica: {out:?}"
    );
    for o in &refused {
        let text = o["text"].as_str().unwrap_or("");
        assert!(text.contains("not tried on another replica"), "{o}");
    }
    assert_eq!(
        served(dirs[1].path(), "text.truncate") - before,
        ok,
        "{out:?}"
    );
}

#[test]
fn a_wrong_key_or_no_grant_keeps_central_out_and_a_saved_snapshot_is_served() {
    let upstream = TestServer::start();
    let key = keys();
    let dir = tempfile::tempdir().unwrap();
    let central = central(dir.path(), &upstream, key.path());
    let urls = vec![central.url.clone()];
    let origin = vec![format!("http://127.0.0.1:{}", central.port)];
    let public = std::fs::read_to_string(key.path().join("host.pub")).unwrap();
    let stranger = std::fs::read_to_string(keys().path().join("host.pub")).unwrap();

    // Signed by another key than the edge expects: refused, said why.
    let wrong = tempfile::tempdir().unwrap();
    let edge_wrong = Serve::start(
        wrong.path(),
        &edge(wrong.path(), &urls, &origin, &stranger, ""),
        &[],
    );
    assert!(!tool_names(edge_wrong.port)
        .iter()
        .any(|t| t.starts_with("mcp.central.")));
    edge_wrong.wait_for_log(
        "does not verify with `marketplace-key`",
        std::time::Duration::from_secs(10),
    );

    // No network grant to central: the edge's egress policy refuses it,
    // and central never hears of it.
    let before = audit(&dir.path().join("audit.jsonl")).len();
    let closed = tempfile::tempdir().unwrap();
    let elsewhere = vec!["http://127.0.0.1:9".to_string()];
    let edge_closed = Serve::start(
        closed.path(),
        &edge(closed.path(), &urls, &elsewhere, &public, ""),
        &[],
    );
    assert!(!tool_names(edge_closed.port)
        .iter()
        .any(|t| t.starts_with("mcp.central.")));
    let denied = audit(&closed.path().join("audit.jsonl")).iter().any(|r| {
        r["decision"] == "deny"
            && r.to_string()
                .contains(&format!("127.0.0.1:{}", central.port))
    });
    assert!(denied, "no egress denial in the edge's audit log");
    let heard: Vec<Value> = audit(&dir.path().join("audit.jsonl"))[before..].to_vec();
    assert!(heard.iter().all(|r| r["effect"] != "call"), "{heard:?}");

    // A snapshot saved from central, imported into another host whose MCP
    // plugin serves :RemoteRTFS: its capabilities are served there.
    let (status, _, body) = http_at(
        central.port,
        "GET",
        "/.well-known/warden/marketplace.json",
        &[("Authorization", &format!("Bearer {TOKEN_A}"))],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("central.json"), &body).unwrap();
    let config = format!(
        "providers = {{ RemoteRTFS = \"mcp\" }}\n{}",
        edge(other.path(), &urls, &origin, &public, "")
    );
    std::fs::write(other.path().join("warden.toml"), config).unwrap();
    let warden = |args: &[&str]| {
        let out = std::process::Command::new(warden_bin())
            .current_dir(other.path())
            .arg("--config")
            .arg("warden.toml")
            .args(args)
            .env(
                "WARDEN_CACHE_DIR",
                crate::components::target_dir().join("warden-test-cache"),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.success(),
            text + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = warden(&["import", "central.json"]);
    assert!(ok && text.contains("text.case"), "{text}");
    let (ok, text) = warden(&[
        "call",
        "text.case",
        r#"{"text": "imported", "to": "upper"}"#,
    ]);
    assert!(ok && text.contains("IMPORTED"), "{text}");
    assert!(served(dir.path(), "text.case") >= 1);
}

#[test]
fn the_edge_follows_central_changes_keeps_a_stale_snapshot_and_recovers() {
    let upstream = TestServer::start();
    let key = keys();
    let dir = tempfile::tempdir().unwrap();
    let mut central = central(dir.path(), &upstream, key.path());
    let port = central.port;
    let urls = vec![central.url.clone()];
    let origin = vec![format!("http://127.0.0.1:{port}")];
    let public = std::fs::read_to_string(key.path().join("host.pub")).unwrap();
    // Refreshed every 300 ms; one edge keeps a stale snapshot, the other
    // drops it after 1 s (and asks again every 300 ms).
    let start_edge = |sessions: &str| {
        let d = tempfile::tempdir().unwrap();
        let config = edge(d.path(), &urls, &origin, &public, "").replacen(
            "[plugins.mcp.config.servers.central]",
            &format!("{sessions}\n[plugins.mcp.config.servers.central]"),
            1,
        );
        let serve = Serve::start(d.path(), &config, &[]);
        (d, serve)
    };
    let (keeps_dir, keeps) = start_edge("sessions = { discovery-refresh-ms = 300 }");
    let (_d, drops) = start_edge(
        "sessions = { discovery-refresh-ms = 300, discovery-stale-after-ms = 1000, discovery-retry-ms = 300 }",
    );
    let wait_for = |port: u16, id: &str, present: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tool_names(port).iter().any(|t| t == id) != present {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} present: {}",
                !present
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for(keeps.port, "mcp.central.weather.now", true);

    // Central gains a capability (its configuration reloaded): the edges
    // list it without a restart.
    let config = std::fs::read_to_string(&central.config).unwrap();
    let more = config.replacen(
        "[[capabilities]]\nid = \"weather.now\"",
        "[[capabilities]]\nid = \"weather.tomorrow\"\nname = \"Tomorrow\"\nversion = \"1.0.0\"\n\
         provider = \"Http\"\nprovider-meta = { base-url = \"http://127.0.0.1:9\", path = \"/json\" }\n\
         input-schema = \":any\"\noutput-schema = \":any\"\n\n[[capabilities]]\nid = \"weather.now\"",
        1,
    );
    assert_ne!(more, config);
    std::fs::write(&central.config, more).unwrap();
    wait_for(keeps.port, "mcp.central.weather.tomorrow", true);
    wait_for(drops.port, "mcp.central.weather.tomorrow", true);

    // Central down: the first edge keeps listing its capabilities (stale)
    // and a call fails saying why; the second drops them after 1 s.
    central.signal_and_wait("KILL");
    keeps.wait_for_log(
        "its last capabilities are kept, stale",
        std::time::Duration::from_secs(10),
    );
    let (_, m) = modern(keeps.port, 4, "tools/list", json!({}), &[]);
    let listed = m["result"]["tools"].as_array().unwrap().iter();
    let case = listed
        .clone()
        .find(|t| t["name"] == "mcp.central.text.case")
        .unwrap_or_else(|| panic!("kept while stale: {m}"));
    let since = case["_meta"]["dev.warden/stale-since"]
        .as_str()
        .unwrap_or("");
    assert!(since.ends_with('Z') && since.len() == 20, "{case}");
    let args = json!({"name": "mcp.central.text.case", "arguments": {"text": "x", "to": "upper"}});
    let (_, m) = modern(keeps.port, 5, "tools/call", args.clone(), &[]);
    assert_eq!(m["result"]["isError"], true, "{m}");
    let text = m["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("Warden service `central`")
            && (text.contains("not tried on another replica")
                || text.contains("no replica answered")),
        "{m}"
    );
    wait_for(drops.port, "mcp.central.text.case", false);

    // A new host on the first edge's configuration (here `warden list` and
    // `warden inspect`) starts with central down: it serves central's
    // capabilities from their last answer, kept on disk, and says so.
    let edge_config = keeps_dir.path().join("warden.toml");
    let listed: Value =
        serde_json::from_str(&warden_cli(&edge_config, &["list", "--json"])).unwrap();
    let case = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "mcp.central.text.case")
        .unwrap_or_else(|| panic!("served from the last answer: {listed}"));
    let since = case["stale-since"].as_str().unwrap_or("");
    assert!(since.ends_with('Z') && since.len() == 20, "{case}");
    let table = warden_cli(&edge_config, &["list"]);
    assert!(table.contains("(stale)"), "{table}");
    let inspected = warden_cli(&edge_config, &["inspect", "mcp"]);
    assert!(
        inspected.contains("source      central: stale since")
            && inspected.contains("served from its last answer"),
        "{inspected}"
    );

    // Central back: both serve it again.
    let _back = Serve::start_file(&central.config, &format!("127.0.0.1:{port}"), &[]);
    wait_for(drops.port, "mcp.central.text.case", true);
    keeps.wait_for_log("source answers again", std::time::Duration::from_secs(10));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, m) = modern(keeps.port, 7, "tools/list", json!({}), &[]);
        if !m.to_string().contains("dev.warden/stale-since") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still marked stale: {m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for edge in [&keeps, &drops] {
        let (_, m) = modern(edge.port, 6, "tools/call", args.clone(), &[]);
        assert_eq!(m["result"]["structuredContent"]["text"], "X", "{m}");
    }
}

#[test]
fn each_edge_caller_keeps_its_own_session_at_central() {
    let upstream = TestServer::start();
    let key = keys();
    let dir = tempfile::tempdir().unwrap();
    let central = central(dir.path(), &upstream, key.path());
    let public = std::fs::read_to_string(key.path().join("host.pub")).unwrap();
    let origin = vec![format!("http://127.0.0.1:{}", central.port)];
    let edge_dir = tempfile::tempdir().unwrap();
    let d = edge_dir.path();
    std::fs::write(d.join("token-a"), "edge-token-for-alice-012345").unwrap();
    std::fs::write(d.join("token-b"), "edge-token-for-bob-0123456789").unwrap();
    let config = format!(
        "{}\n[secrets.A]\nfile = \"token-a\"\n[secrets.B]\nfile = \"token-b\"\n\
         [serve]\ntokens = [{{ secret = \"A\", principal = \"alice\" }}, {{ secret = \"B\", principal = \"bob\" }}]\n",
        edge(d, std::slice::from_ref(&central.url), &origin, &public, "")
    );
    let edge = Serve::start(d, &config, &[]);
    let count = |token: &str| {
        let auth = format!("Bearer {token}");
        let args = json!({"name": "mcp.central.hostile.session-count", "arguments": {}});
        let (_, m) = modern(
            edge.port,
            1,
            "tools/call",
            args,
            &[("Authorization", &auth)],
        );
        m["result"]["structuredContent"]["result"]
            .as_i64()
            .unwrap_or_else(|| panic!("{m}"))
    };
    let (alice, bob) = (
        "edge-token-for-alice-012345",
        "edge-token-for-bob-0123456789",
    );
    let seen = [
        count(alice),
        count(alice),
        count(bob),
        count(alice),
        count(bob),
    ];
    assert_eq!(
        seen,
        [1, 2, 1, 3, 2],
        "each caller's session is its own at central"
    );
}

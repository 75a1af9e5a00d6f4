//! Real MCP clients against `warden serve`.

use crate::util::*;
use serde_json::Value;
use std::time::Duration;
use warden_test_support::components::component;

fn checks(report: &[Value]) -> Vec<String> {
    report
        .iter()
        .filter_map(|r| r["check"].as_str().map(str::to_string))
        .collect()
}

/// The suite (list, valid and invalid input, a limit, a denial, an
/// approval granted and one refused, session continuity, an unknown tool, a
/// second client) passes in each revision, and the audit log names each
/// client.
#[test]
fn the_python_sdk_client_works_in_both_revisions_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    for mode in ["auto", "legacy"] {
        let report = python_client(&["suite", "--mode", mode, "--url", &serve.url]);
        let expected = [
            "version",
            "list",
            "call",
            "invalid",
            "limit",
            "denied",
            "approved",
            "refused",
            "session",
            "unknown",
            "second-client",
        ];
        assert_eq!(checks(&report), expected, "{mode}: {report:?}");
        let version = &report[0]["version"];
        assert_eq!(
            version,
            if mode == "auto" {
                "2026-07-28"
            } else {
                "2025-11-25"
            }
        );
    }
    let records = audit(&dir.path().join("audit.jsonl"));
    let calls: Vec<&Value> = records.iter().filter(|r| r["effect"] == "call").collect();
    assert!(!calls.is_empty());
    for c in &calls {
        let client = c["client"]
            .as_str()
            .unwrap_or_else(|| panic!("a call record without a client: {c}"));
        assert!(client.starts_with("local over http ("), "{client}");
    }
    assert!(calls.iter().any(|c| c["client"]
        .as_str()
        .unwrap()
        .contains("suite-client 1.0, handle suite")));
    assert!(calls.iter().any(|c| c["client"]
        .as_str()
        .unwrap()
        .contains("suite-client 1.0, session ")));
    let approvals: Vec<&Value> = records
        .iter()
        .filter(|r| r["effect"] == "approval")
        .collect();
    assert_eq!(
        approvals.len(),
        8,
        "two asked and answered per revision, 2026-07-28's two input_required rounds, one refusal without elicitation each: {approvals:?}"
    );
}

#[test]
fn the_python_sdk_client_works_in_both_revisions_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, base_config(dir.path())).unwrap();
    for mode in ["auto", "legacy"] {
        let report = python_client(&[
            "suite",
            "--mode",
            mode,
            "--stdio",
            warden_bin(),
            config.to_str().unwrap(),
        ]);
        assert_eq!(report.last().unwrap()["done"], true, "{mode}: {report:?}");
    }
    let records = audit(&dir.path().join("audit.jsonl"));
    assert!(records
        .iter()
        .filter(|r| r["effect"] == "call")
        .all(|r| r["client"]
            .as_str()
            .unwrap()
            .starts_with("stdio over stdio")));
}

/// Plugins' progress (Rust, Python, JavaScript) reaches the Python SDK
/// client as `notifications/progress`, in both revisions and over both
/// transports.
#[test]
fn plugins_progress_reaches_the_python_sdk_client() {
    let dir = tempfile::tempdir().unwrap();
    // Tables may follow `[audit]`: the Python and JavaScript examples.
    let config = format!(
        "{}\n[plugins.py]\ncomponent = \"{}\"\nnamespaces = [\"pyexample\"]\nlimits = {{ memory = 134217728 }}\n\n[plugins.js]\ncomponent = \"{}\"\nnamespaces = [\"jsexample\"]\nlimits = {{ memory = 134217728 }}\n",
        base_config(dir.path()),
        component("python-example").display(),
        component("js-example").display(),
    );
    let serve = Serve::start(dir.path(), &config, &[]);
    let config = dir.path().join("warden.toml");
    let tools = [
        ("hostile.progress", "arg"),
        ("pyexample.steps", "steps"),
        ("jsexample.steps", "steps"),
    ];
    let http = ["--url", serve.url.as_str()];
    let stdio = ["--stdio", warden_bin(), config.to_str().unwrap()];
    for (mode, (tool, key)) in ["auto", "legacy"]
        .into_iter()
        .flat_map(|m| tools.map(|t| (m, t)))
    {
        for target in [&http[..], &stdio[..]] {
            let mut args = vec!["progress", "--mode", mode, "--tool", tool, "--key", key];
            args.extend_from_slice(&["--times", "6"]);
            args.extend_from_slice(target);
            let report = python_client(&args);
            let heard = report[0]["progress"].as_array().unwrap().clone();
            let what = format!("{tool} {mode} {target:?}: {heard:?}");
            let last = heard.last().expect("progress heard");
            assert_eq!(last["progress"].as_f64(), Some(6.0), "{what}");
            assert_eq!(last["total"].as_f64(), Some(6.0), "{what}");
            assert_eq!(last["message"], "step 6", "{what}");
        }
    }
}

/// A 2026-07-28 session handle keeps its session across connections; a
/// 2025-11-25 client gets a session per connection.
#[test]
fn sessions_are_per_client_and_handles_carry_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let counts = |args: &[&str]| -> Vec<i64> {
        let r = python_client(args);
        r[0]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    let url = serve.url.as_str();
    assert_eq!(counts(&["count", "--url", url, "--handle", "a"]), [1, 2, 3]);
    assert_eq!(counts(&["count", "--url", url, "--handle", "b"]), [1, 2, 3]);
    assert_eq!(counts(&["count", "--url", url, "--handle", "a"]), [4, 5, 6]);
    assert_eq!(
        counts(&["count", "--url", url, "--mode", "legacy"]),
        [1, 2, 3]
    );
    assert_eq!(
        counts(&["count", "--url", url, "--mode", "legacy"]),
        [1, 2, 3]
    );
}

/// Editing the configuration adds a plugin: clients of both revisions are
/// notified and see its tools.
#[test]
fn a_config_edit_notifies_clients_and_they_see_the_new_tools() {
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(dir.path());
    let serve = Serve::start(dir.path(), &config, &[]);
    let config_path = serve.config.to_str().unwrap().to_string();
    let spawn = |mode: &str, stdio: bool| {
        let target: Vec<&str> = if stdio {
            vec!["--stdio", warden_bin(), &config_path]
        } else {
            vec!["--url", &serve.url]
        };
        std::process::Command::new(python())
            .arg(repo().join("tests/serve/client.py"))
            .args(["watch", "--mode", mode])
            .args(target)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Over HTTP, and over stdio (each client launches its own `warden serve
    // --stdio` on the same file).
    let mut watchers = [
        spawn("auto", false),
        spawn("legacy", false),
        spawn("auto", true),
        spawn("legacy", true),
    ];
    // Both are listening before the edit.
    let mut readers: Vec<_> = watchers
        .iter_mut()
        .map(|w| std::io::BufReader::new(w.stdout.take().unwrap()))
        .collect();
    for r in readers.iter_mut() {
        let mut line = String::new();
        std::io::BufRead::read_line(r, &mut line).unwrap();
        assert!(line.contains("ready"), "{line}");
    }
    let files = crate::components::component("files");
    std::fs::write(
        &serve.config,
        format!(
            "{config}\n[plugins.files]\ncomponent = \"{}\"\n",
            files.display()
        ),
    )
    .unwrap();
    for (mut w, r) in watchers.into_iter().zip(readers) {
        let lines: Vec<Value> = std::io::BufRead::lines(r)
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        let status = w.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(w.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "{err}");
        let last = lines.last().unwrap();
        assert_eq!(
            last["added"],
            serde_json::json!(["files.list", "files.read", "files.write"]),
            "{lines:?}"
        );
    }
    serve.wait_for_log("tools_changed=true", Duration::from_secs(5));
}

fn node_modules() -> std::path::PathBuf {
    let dir = repo().join("tests/serve/node_modules");
    assert!(
        dir.join("@modelcontextprotocol/client").exists(),
        "{} is missing: run `cargo xtask test` (it runs npm ci in tests/serve)",
        dir.display()
    );
    dir
}

pub(crate) fn node(args: &[&str]) -> (bool, String, String) {
    node_modules();
    let out = std::process::Command::new("node")
        .args(args)
        .current_dir(repo().join("tests/serve"))
        .output()
        .expect("running node");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The TypeScript SDK v2 client, negotiating 2026-07-28 (`auto`) and
/// speaking 2025-11-25 (`legacy`): list, calls, a denial, approval granted
/// and refused through its elicitation handler, session continuity.
#[test]
fn the_typescript_client_works_in_both_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    for mode in ["auto", "legacy"] {
        let (ok, out, err) = node(&["client.mjs", &serve.url, mode]);
        assert!(ok, "{mode}: {err}\n{out}");
        let lines: Vec<Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(lines[0]["modern"], mode == "auto", "{lines:?}");
        assert_eq!(lines.last().unwrap()["done"], true, "{lines:?}");
    }
    let records = audit(&dir.path().join("audit.jsonl"));
    assert!(records.iter().any(|r| r["client"]
        .as_str()
        .is_some_and(|c| c.contains("ts-client 2.4"))));
}

/// MCP Inspector's CLI mode, over HTTP and over stdio.
#[test]
fn mcp_inspector_cli_lists_and_calls() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &base_config(dir.path()), &[]);
    let inspector = "node_modules/@modelcontextprotocol/inspector-cli/build/index.js";
    let (ok, out, err) = node(&[
        inspector,
        &serve.url,
        "--transport",
        "http",
        "--method",
        "tools/list",
    ]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert!(list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "text.case"));
    let call = [
        inspector,
        &serve.url,
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "text.case",
    ];
    let (ok, out, err) = node(
        &[
            &call[..],
            &["--tool-arg", "text=inspected", "--tool-arg", "to=upper"],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["structuredContent"]["text"], "INSPECTED", "{r}");
    let (ok, out, err) = node(&[
        inspector,
        &serve.url,
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "json.merge",
        "--tool-arg",
        "base={}",
        "--tool-arg",
        "patch={}",
    ]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["_meta"]["dev.warden/error"], "denied", "{r}");
    // Over stdio: the inspector launches `warden serve --stdio`.
    let config = serve.config.to_str().unwrap().to_string();
    let (ok, out, err) = node(&[
        inspector,
        warden_bin(),
        "--config",
        &config,
        "serve",
        "--stdio",
        "--method",
        "tools/list",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\"text.case\""), "{out}");
}

/// A client that names itself differently on every call, each time on a
/// new connection and with a new session handle, still spends one audit
/// budget (`[audit] max-records-per-minute`): its principal's. Nothing the
/// client picks opens a fresh one.
#[test]
fn a_client_renaming_itself_keeps_one_audit_budget() {
    let dir = tempfile::tempdir().unwrap();
    // Two records a call: three calls a minute.
    let config = format!("{}max-records-per-minute = 6\n", base_config(dir.path()));
    let serve = Serve::start(dir.path(), &config, &[]);
    let mut outcomes = Vec::new();
    for i in 0..8u64 {
        let params = serde_json::json!({
            "name": "text.case",
            "arguments": {"text": "a", "to": "upper"},
            "_meta": {
                "io.modelcontextprotocol/clientInfo": {"name": format!("client-{i}"), "version": "1"},
                "dev.warden/session": format!("handle-{i}"),
            }
        });
        let (status, m) = modern(serve.port, i, "tools/call", params, &[]);
        assert_eq!(status, 200, "{m}");
        let limited = m["result"]["_meta"]["dev.warden/error"] == "rate-limited";
        assert!(limited || m["result"]["isError"] == false, "{m}");
        outcomes.push(limited);
    }
    assert_eq!(
        outcomes,
        [false, false, false, true, true, true, true, true],
        "three calls fit the budget, whatever each one said it was"
    );
}

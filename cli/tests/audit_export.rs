//! `warden audit export --format ocsf`: a log written by real `warden
//! call` runs (calls, denials, files, egress, sockets, environment, limits,
//! traps, checkpoints) exported as OCSF 1.9 events, validated against the
//! OCSF 1.9 JSON Schemas with Python's `jsonschema`, chain included; a
//! seq range; and `--follow` across rotations, losing nothing.

use anyhow::{ensure, Context, Result};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use warden_test_support::components::{component, target_dir};
use warden_test_support::http_server::TestServer;

fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(args)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .env("EXPORT_TEST_VAR", "visible")
        .env_remove("RUST_LOG")
        .output()
        .expect("running warden")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A host whose one plugin tries every kind of effect, with a signing key
/// (checkpoints) and `rotate` bytes per log file.
fn setup(d: &Path, server: &TestServer, rotate: u64) -> Result<()> {
    std::fs::create_dir_all(d.join("data"))?;
    let o = warden(d, &["audit", "keygen", "host"]);
    ensure!(o.status.success(), "{}", text(&o));
    std::fs::write(
        d.join("warden.toml"),
        format!(
            r#"[plugins.hostile]
component = {component:?}
grants = {{ env = ["EXPORT_TEST_VAR"], dirs = [{{ host = "data", guest = "/data", mode = "rw" }}], network = ["http://127.0.0.1:{port}"] }}
limits = {{ fuel = 50_000_000 }}

[audit]
path = "audit.jsonl"
signing-key = {{ file = "host.key" }}
checkpoint-records = 5
rotate-bytes = {rotate}

[[policy.rules]]
capability = "hostile.count"
decision = "deny"
reason = "not for this test"
"#,
            component = component("hostile").display().to_string(),
            port = server.port,
        ),
    )?;
    Ok(())
}

/// Calls that make records of every kind the plugin can cause.
fn exercise(d: &Path, server: &TestServer) {
    let calls: Vec<(&str, String)> = vec![
        ("hostile.echo", r#"{"a":1}"#.into()),
        ("hostile.count", "{}".into()),
        ("hostile.env", r#"{"arg":"EXPORT_TEST_VAR"}"#.into()),
        ("hostile.env", r#"{"arg":"HOME"}"#.into()),
        ("hostile.write", r#"{"path":"/data/x","text":"y"}"#.into()),
        ("hostile.read", r#"{"arg":"/etc/passwd"}"#.into()),
        (
            "hostile.http",
            format!(r#"{{"arg":"{}"}}"#, server.url("/json")),
        ),
        ("hostile.http", r#"{"arg":"http://example.com/"}"#.into()),
        ("hostile.tcp", r#"{"arg":"127.0.0.1:9"}"#.into()),
        ("hostile.spin", "{}".into()),
        ("hostile.panic", "{}".into()),
    ];
    for (capability, input) in calls {
        // Denials, limits and traps end in non-zero exits: records all the same.
        let o = warden(d, &["call", capability, &input]);
        assert!(
            !text(&o).contains("thread '"),
            "the host panicked: {}",
            text(&o)
        );
        if capability == "hostile.echo" {
            assert!(o.status.success(), "{}", text(&o));
        }
    }
}

fn validate(events: &str) -> Result<String> {
    let python = warden_test_support::python();
    let mut child = Command::new(&python)
        .arg(warden_test_support::repo_file("tests/ocsf/validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "running {} (cargo xtask test makes .venv)",
                python.display()
            )
        })?;
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), events.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = text(&out);
    ensure!(out.status.success(), "OCSF validation failed:\n{said}");
    Ok(said)
}

fn events(stdout: &[u8]) -> Result<Vec<serde_json::Value>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).context("an event"))
        .collect()
}

#[test]
fn every_record_kind_exports_as_a_valid_ocsf_event_with_its_chain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let server = TestServer::start();
    setup(d, &server, 0)?;
    exercise(d, &server);
    let log = std::fs::read_to_string(d.join("audit.jsonl"))?;
    let records: Vec<warden::audit::Record> = log
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;

    let o = warden(d, &["audit", "export", "--format", "ocsf", "audit.jsonl"]);
    ensure!(o.status.success(), "{}", text(&o));
    let exported = events(&o.stdout)?;
    assert_eq!(exported.len(), records.len(), "one event per record");
    let said = validate(&String::from_utf8_lossy(&o.stdout))?;
    assert!(
        said.contains(&format!("{} events valid", records.len())),
        "{said}"
    );

    // Each kind went to its class, and the decisions are where a SIEM looks.
    let class_of = |effect: &str, decision: &str| {
        records
            .iter()
            .zip(&exported)
            .find(|(r, _)| r.effect == effect && (decision.is_empty() || r.decision == decision))
            .map(|(_, e)| e.clone())
            .with_context(|| format!("no {effect} {decision} record"))
    };
    for (effect, decision, class) in [
        ("call", "ok", 6003),
        ("call", "deny", 6003),
        ("env", "allow", 6003),
        ("env", "deny", 6003),
        ("file", "", 1001),
        ("egress", "allow", 4002),
        ("socket", "deny", 4001),
        ("limit", "", 6003),
        ("trap", "", 6003),
        ("checkpoint", "", 1008),
    ] {
        let event = class_of(effect, decision)?;
        assert_eq!(event["class_uid"], class, "{effect} {decision}: {event}");
        if decision == "deny" {
            assert_eq!(event["action_id"], 2, "{event}");
            assert_eq!(event["disposition_id"], 2, "{event}");
        }
    }
    let egress = class_of("egress", "allow")?;
    assert_eq!(egress["http_request"]["http_method"], "GET");
    assert_eq!(egress["dst_endpoint"]["port"], server.port);

    // The whole record rides along: its hash is computed again from it.
    for (record, event) in records.iter().zip(&exported) {
        let carried: warden::audit::Record =
            serde_json::from_value(event["unmapped"]["warden"].clone())?;
        assert_eq!(&carried, record);
    }

    // A range, as a sink's gap report would ask for.
    let o = warden(
        d,
        &[
            "audit",
            "export",
            "--from-seq",
            "3",
            "--to-seq",
            "6",
            "audit.jsonl",
        ],
    );
    ensure!(o.status.success(), "{}", text(&o));
    let seqs: Vec<u64> = events(&o.stdout)?
        .iter()
        .map(|e| e["metadata"]["sequence"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, vec![3, 4, 5, 6]);

    // Not a log: named, exit 1, the rest still exported.
    std::fs::write(
        d.join("mixed.jsonl"),
        format!("{}\nnot json\n", log.lines().next().unwrap_or("")),
    )?;
    let o = warden(d, &["audit", "export", "mixed.jsonl"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("mixed.jsonl:2: not an audit record"),
        "{}",
        text(&o)
    );
    assert_eq!(events(&o.stdout)?.len(), 1);
    Ok(())
}

#[test]
fn follow_writes_what_is_appended_across_rotations_without_a_gap() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let server = TestServer::start();
    setup(d, &server, 4096)?;
    let o = warden(d, &["call", "hostile.echo", "{}"]);
    ensure!(o.status.success(), "{}", text(&o));
    let start = std::fs::read_to_string(d.join("audit.jsonl"))?
        .lines()
        .count();

    let mut follower = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(d)
        .args([
            "audit",
            "export",
            "--follow",
            "--from-seq",
            "1",
            "audit.jsonl",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    exercise(d, &server);
    exercise(d, &server);
    let rotated = std::fs::read_dir(d)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl."))
        .count();
    assert!(rotated >= 2, "the log rotated ({rotated} files)");
    // Every record from the first to the last, in order, whichever file.
    let last = last_seq(&d.join("audit.jsonl"))?;
    let seq_of = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|e| e["metadata"]["sequence"].as_u64())
            .unwrap_or(0)
    };
    let mut got: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.last().is_none_or(|l| seq_of(l) < last) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(line);
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let seqs: Vec<u64> = got.iter().map(|l| seq_of(l)).collect();
    let expected: Vec<u64> = (start as u64 + 1..=last).collect();
    let after_start: Vec<u64> = seqs.iter().copied().filter(|s| *s > start as u64).collect();
    assert_eq!(
        after_start, expected,
        "nothing lost or repeated across rotations"
    );
    validate(&(got.join("\n") + "\n"))?;
    Ok(())
}

fn last_seq(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)?;
    let last = text.lines().last().context("an empty log")?;
    Ok(serde_json::from_str::<warden::audit::Record>(last)?.seq)
}

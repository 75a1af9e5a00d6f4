//! The `warden` CLI: output, exit codes, and clear errors (never a panic)
//! for bad configuration and bad components.

use std::path::Path;
use std::process::{Command, Output};
use warden_test_support::components::{component, target_dir};

fn warden(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .env_remove("RUST_LOG")
        .output()
        .expect("running warden")
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("warden.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_exit(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

/// A `[plugins.NAME]` table; the text plugin registers `text.*` and
/// `json.*`, which its namespaces must name whatever the plugin is called.
fn plugin(name: &str, component: &Path) -> String {
    let namespaces = if component.ends_with("text.wasm") {
        "namespaces = [\"text\", \"json\"]\n"
    } else {
        ""
    };
    format!(
        "[plugins.{name}]\ncomponent = {:?}\n{namespaces}",
        component.display().to_string()
    )
}

#[test]
fn list_call_inspect_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}{}grants = {{ dirs = [{{ host = \"data\", guest = \"/data\" }}] }}\nlimits = {{ fuel = 5_000_000 }}\n",
            plugin("text", &component("text")),
            plugin("hostile", &component("hostile"))
        ),
    );
    let list = warden(&cfg, &["list"]);
    assert_exit(&list, 0, &[]);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(
        out.contains("text.case") && out.contains("hostile.spin"),
        "{out}"
    );

    let json = warden(&cfg, &["list", "--json"]);
    let caps: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let echo = caps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "hostile.echo")
        .unwrap();
    assert_eq!(echo["flat-metadata"]["test.nested.key"], "v");

    let call = warden(&cfg, &["call", "text.stats", r#"{"text":"a b c"}"#]);
    assert_exit(&call, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert_eq!(v["words"], 3);

    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["--config", cfg.to_str().unwrap(), "call", "text.stats", "-"])
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"text":"from stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["words"],
        2
    );

    assert_exit(
        &warden(
            &cfg,
            &["call", "hostile.write", r#"{"path":"/data/x","text":"y"}"#],
        ),
        3,
        &["denied"],
    );
    assert!(!dir.path().join("data/x").exists());
    assert_exit(&warden(&cfg, &["call", "hostile.spin"]), 4, &["fuel limit"]);
    assert_exit(
        &warden(&cfg, &["call", "text.cas", "{}"]),
        4,
        &["unknown capability", "text.case"],
    );
    assert_exit(
        &warden(&cfg, &["call", "text.stats", "{not json"]),
        2,
        &["not valid JSON"],
    );
    assert_exit(&warden(&cfg, &["frobnicate"]), 2, &[]);
    assert_exit(
        &warden(&cfg, &["inspect", "nope"]),
        2,
        &["unknown plugin `nope`"],
    );

    let inspect = warden(&cfg, &["inspect", "hostile"]);
    assert_exit(&inspect, 0, &[]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    for needle in [
        "fuel 5000000",
        "/data (ro)",
        "hostile.spin",
        "sha256:",
        "test.nested.key",
        // The world and imports, as `warden check` reads them.
        "world       warden:provider/",
        "wasi:sockets/tcp@0.2",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle}: {text}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("inspect"));
}

#[test]
fn guest_stdout_goes_to_the_log_not_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &plugin("hostile", &component("hostile")));
    let o = warden(&cfg, &["call", "hostile.print", r#"{"arg":"canary-line"}"#]);
    assert_exit(&o, 0, &["canary-line", "hostile", "stdout", "stderr"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("canary-line"),
        "guest output reached stdout: {out}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["printed"],
        true
    );
    let logged = warden(&cfg, &["call", "hostile.log", r#"{"arg":2}"#]);
    assert_exit(&logged, 0, &["hostile log line 1", "plugin=\"hostile\""]);
}

#[test]
fn a_plugins_progress_is_a_line_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &plugin("hostile", &component("hostile")));
    let o = warden(&cfg, &["call", "hostile.progress", r#"{"arg":4}"#]);
    assert_exit(&o, 0, &["progress: 4/4 step 4"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("progress"),
        "stdout holds the result only: {out}"
    );
    // A flood is paced, and a message cannot forge a line of its own.
    let o = warden(
        &cfg,
        &["call", "hostile.progress-flood", r#"{"arg":20000}"#],
    );
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("progress:")).collect();
    assert!((1..=5).contains(&lines.len()), "{lines:?}");
    assert!(!err.contains("\nprogress: 99/99"), "{err}");
}

#[test]
fn bad_configs_are_clear_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = component("text");
    let not_wasm = d.join("not.wasm");
    std::fs::write(&not_wasm, "this is text").unwrap();
    let corrupt = d.join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("{}fuel = 3\n", plugin("text", &text)),
            vec![
                "unknown key `fuel`".into(),
                "plugins.text".into(),
                // The table, its component and its namespaces come first.
                "line 4".into(),
            ],
        ),
        (
            format!("[limits]\nfule = 3\n{}", plugin("text", &text)),
            vec!["fule".into(), "limits".into()],
        ),
        (
            plugin("text", &d.join("missing.wasm")),
            vec!["missing.wasm".into(), "cannot read".into()],
        ),
        (
            plugin("text", &not_wasm),
            vec!["not a WebAssembly file".into()],
        ),
        (
            plugin("text", &corrupt),
            vec!["not a valid WebAssembly component".into()],
        ),
        (
            plugin("other", &component("wrong-world")),
            vec!["does not implement".into(), "other".into()],
        ),
        (
            format!(
                "{}grants = {{ dirs = [{{ host = \"nowhere\", guest = \"/x\" }}] }}\n",
                plugin("text", &text)
            ),
            vec!["nowhere".into(), "does not exist".into()],
        ),
        (
            "[plugins.text]\ncomponent = 3\n".into(),
            vec!["component".into()],
        ),
        ("this is = not = toml".into(), vec!["line 1".into()]),
    ];
    for (i, (toml, needles)) in cases.iter().enumerate() {
        let cfg_dir = d.join(format!("case{i}"));
        std::fs::create_dir(&cfg_dir).unwrap();
        let cfg = write_config(&cfg_dir, toml);
        let o = warden(&cfg, &["list"]);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_exit(&o, 2, &needles);
    }
    assert_exit(
        &warden(&d.join("absent.toml"), &["list"]),
        2,
        &["absent.toml", "cannot read"],
    );
}

#[test]
fn a_second_claim_on_an_id_is_a_warning_not_a_failure() {
    // Issue 14: an id belongs to the plugin that registered it first; the
    // host starts, and the later claim is refused with a warning naming both.
    let dir = tempfile::tempdir().unwrap();
    let text = component("text");
    let cfg = write_config(
        dir.path(),
        &format!("{}{}", plugin("one", &text), plugin("two", &text)),
    );
    let o = warden(&cfg, &["list"]);
    assert_exit(&o, 0, &["text.case", "owned by one", "two"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("text.case "))
        .expect("text.case listed");
    assert!(line.contains(" one "), "{line}");
    assert!(!stdout.contains(" two "), "{stdout}");
}

#[test]
fn export_import_and_schema_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &plugin("hostile", &component("hostile")));

    // Export: the plugin's Mcp capability is written; runtime-only ones are named as skipped.
    let out_dir = dir.path().join("exported");
    let o = warden(&cfg, &["export", "--rtfs", out_dir.to_str().unwrap()]);
    assert_exit(&o, 0, &["notice: skipped hostile.echo", "runtime-only"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("exported 1 capabilities"));
    let file = out_dir.join("hostile.remote.rtfs");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(";; Warden marketplace snapshot") && text.contains(":module"),
        "{text}"
    );

    // Edit by hand: a new id and description, then import it.
    let edited = text
        .replace("\"hostile.remote\"", "\"edited.remote\"")
        .replace(
            "An Mcp-kind capability, exportable to snapshots",
            "Edited by hand",
        );
    let edited_file = dir.path().join("edited.rtfs");
    std::fs::write(&edited_file, edited).unwrap();
    let o = warden(&cfg, &["import", edited_file.to_str().unwrap()]);
    assert_exit(&o, 0, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("registered edited.remote") && stdout.contains("1 registered"),
        "{stdout}"
    );
    assert!(
        dir.path()
            .join(".warden/marketplace/edited.remote.rtfs")
            .exists(),
        "stored beside the config"
    );

    // A later process sees it.
    let list = warden(&cfg, &["list", "--json"]);
    let caps: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let cap = caps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "edited.remote")
        .expect("imported capability listed");
    assert_eq!(cap["description"], "Edited by hand");
    assert_eq!(cap["provider"], "Mcp");
    assert_eq!(cap["plugin"], serde_json::Value::Null);

    // JSON export holds both; importing it again updates the imported one and skips the plugin's.
    let json_file = dir.path().join("all.json");
    assert_exit(
        &warden(&cfg, &["export", "--json", json_file.to_str().unwrap()]),
        0,
        &[],
    );
    let o = warden(&cfg, &["import", json_file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("updated    edited.remote") && stdout.contains("skipped    hostile.remote"),
        "{stdout}"
    );

    // Usage errors.
    assert_exit(&warden(&cfg, &["export"]), 2, &[]);
    assert_exit(
        &warden(
            &cfg,
            &["import", dir.path().join("missing").to_str().unwrap()],
        ),
        2,
        &["missing"],
    );
    let broken = dir.path().join("broken.rtfs");
    std::fs::write(&broken, "{:id \"x\"\n :provider :Http").unwrap();
    assert_exit(
        &warden(&cfg, &["import", broken.to_str().unwrap()]),
        2,
        &["line 2", "unclosed"],
    );

    // schema check prints OK or the error path.
    let ok = warden(
        &cfg,
        &[
            "schema",
            "check",
            "[:map [:items [:vector [:map [:name :string]]]]]",
            r#"{"items":[{"name":"a"}]}"#,
        ],
    );
    assert_exit(&ok, 0, &[]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "OK");
    let bad = warden(
        &cfg,
        &[
            "schema",
            "check",
            "[:map [:items [:vector [:map [:name :string]]]]]",
            r#"{"items":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":4}]}"#,
        ],
    );
    assert_eq!(bad.status.code(), Some(4));
    assert_eq!(
        String::from_utf8_lossy(&bad.stdout).trim(),
        "$.items[3].name: expected :string, got number"
    );
    assert_exit(
        &warden(&cfg, &["schema", "check", "[:mapp]", "{}"]),
        2,
        &["unknown type constructor"],
    );
    let js = warden(&cfg, &["schema", "to-json", "[:map [:a :int?]]"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&js.stdout).unwrap(),
        serde_json::json!({"type": "object", "properties": {"a": {"type": "integer"}}})
    );
    let back = warden(
        &cfg,
        &[
            "schema",
            "from-json",
            r#"{"type":"object","properties":{"a":{"type":"integer","minimum":1}},"required":["a"]}"#,
        ],
    );
    assert_exit(
        &back,
        0,
        &["note: $.a: constraint `minimum` is not checked"],
    );
    assert_eq!(
        String::from_utf8_lossy(&back.stdout).trim(),
        "[:map [:a :int]]"
    );
}

/// `list` with an MCP server that is down names the source and why, instead
/// of claiming no plugins are configured.
#[test]
fn list_names_a_source_that_could_not_be_listed() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        dir.path(),
        &format!(
            "[plugins.mcp]\ncomponent = \"{}\"\ngrants = {{ network = [\"http://127.0.0.1:{port}\"] }}\n\
             [plugins.mcp.config.servers.gone]\nurl = \"http://127.0.0.1:{port}/mcp\"\n",
            component("mcp").display()
        ),
    );
    let out = warden(&config, &["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The plugin's own `mcp.invoke` is listed; a note on stderr names the
    // source that is missing and why.
    assert!(stdout.contains("mcp.invoke"), "{stdout}");
    let err = stderr(&out);
    let note = err
        .split("note:")
        .nth(1)
        .unwrap_or_else(|| panic!("no note: {err}"));
    assert!(note.contains("could not be listed"), "{err}");
    assert!(
        note.contains("source `gone`") && note.contains("connection refused"),
        "{err}"
    );
    assert!(!stdout.contains("no plugins configured"), "{stdout}");
}

/// `warden call` stopped by SIGTERM or SIGINT ends its call like `serve`
/// does: the call gets its end record (`cancelled`), the log is flushed and
/// verifies, in every sync mode, and the exit code says which signal.
#[test]
fn a_signalled_call_is_ended_and_audited_in_every_sync_mode() {
    for (sync, signal, code) in [
        ("buffered", libc::SIGTERM, 143),
        ("flush", libc::SIGINT, 130),
        ("always", libc::SIGTERM, 143),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(
            dir.path(),
            &format!(
                "[audit]\npath = \"audit.log\"\nsync = \"{sync}\"\n\n{}limits = {{ timeout-ms = 60_000 }}\n",
                plugin("hostile", &component("hostile"))
            ),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--config")
            .arg(&cfg)
            .args(["call", "hostile.sleep", r#"{"arg": 30000}"#])
            .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The call is under way once its plugin loaded and it was admitted;
        // a loaded host takes well under this on a cold cache too.
        let log = dir.path().join("audit.log");
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(20) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if sync != "buffered" && text.contains("hostile.sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SAFETY: signalling our own child by its pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        assert_exit(&out, code, &["stopping the call to `hostile.sleep`"]);
        let text = std::fs::read_to_string(&log).unwrap();
        let ends: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("\"capability\":\"hostile.sleep\"") && l.contains("\"effect\":\"call\"")
            })
            .collect();
        assert!(
            ends.iter()
                .any(|l| l.contains("\"decision\":\"cancelled\"")),
            "{sync}: no end record:\n{text}"
        );
        let verify = warden(&cfg, &["audit", "verify", log.to_str().unwrap()]);
        assert!(verify.status.success(), "{sync}: {}", stderr(&verify));
    }
}

//! `[policy]` and `[audit]`: every field enforced, every default tested, the
//! audit log's chain checked by `warden audit verify`.

use crate::util::{component, config, hostile, target_dir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use warden::audit::{Record, SyncPolicy};
use warden::{
    Approval, ApprovalRequest, Approver, AuditSettings, CallRule, Config, Error, Host,
    PluginConfig, PluginRules, RuleDecision,
};

pub fn audited(dir: &Path) -> Config {
    let mut c = config(Path::new(".")).with_plugin("hostile", hostile());
    c.audit = Some(AuditSettings {
        path: dir.join("audit.jsonl"),
        sync: SyncPolicy::Flush,
        rotate_bytes: 0,
        max_records_per_minute: None,
        max_bytes_per_minute: None,
        signing_key: None,
        checkpoint_records: None,
        checkpoint_ms: None,
        sink: None,
        replica: None,
    });
    c
}

/// The records of the log at `path` (none if it does not exist), after
/// checking that its chain verifies: every test that reads a log checks it.
pub fn records(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if !text.is_empty() {
        assert_chain(path);
    }
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Panics unless the log at `path` verifies as one intact chain.
pub fn assert_chain(path: &Path) {
    match warden::audit::verify(&[path.to_path_buf()]) {
        Ok(warden::audit::Verdict::Ok { .. }) => {}
        other => panic!(
            "{}: the audit chain does not verify: {other:?}",
            path.display()
        ),
    }
}

fn rule(capability: &str, decision: RuleDecision) -> CallRule {
    CallRule {
        capability: capability.into(),
        metadata: Default::default(),
        principals: Vec::new(),
        scopes: Vec::new(),
        groups: Vec::new(),
        decision,
        calls_per_minute: None,
        reason: None,
    }
}

fn plugin_rules() -> PluginRules {
    PluginRules {
        calls_per_minute: None,
        max_concurrent: None,
        max_wait_ms: 1000,
        digest: None,
    }
}

async fn count(host: &Host) -> u64 {
    host.call("hostile.count", json!({})).await.unwrap()["calls"]
        .as_u64()
        .unwrap()
}

fn warden(args: &[&str]) -> std::process::Output {
    Command::new(crate::util::warden_cli())
        .args(args)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .output()
        .unwrap()
}

fn verify(files: &[&Path]) -> (bool, String) {
    let mut args = vec!["audit", "verify"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = warden(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A plugin's notes are records of its call, each clipped to one line of
/// bounded size, and no more of them than its log lines allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_notes_are_records_of_its_call_bounded_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.plugins.get_mut("hostile").unwrap().limits.max_log_lines = Some(5);
    let host = Host::new(c).await.unwrap();
    // Within the budget: every note written.
    let out = host.call("hostile.note", json!({"arg": 3})).await.unwrap();
    assert_eq!(out["noted"], 3);
    // Past it: a flood of notes is a flood of log lines, and stops the call.
    let err = host
        .call("hostile.note", json!({"arg": 40}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    host.shutdown().await;
    let log = records(&dir.path().join("audit.jsonl"));
    let calls: Vec<&str> = log
        .iter()
        .filter(|r| r.effect == "call" && r.capability == "hostile.note")
        .map(|r| r.call_id.as_str())
        .collect();
    let notes: Vec<&Record> = log.iter().filter(|r| r.effect == "note").collect();
    assert!((3..=8).contains(&notes.len()), "{} notes", notes.len());
    for n in notes {
        assert!(calls.contains(&n.call_id.as_str()), "{}", n.call_id);
        assert_eq!(n.decision, "allow");
        assert!(
            !n.target.contains('\n') && n.target.len() <= 64 + 8,
            "{}",
            n.target
        );
        assert!(
            !n.reason.contains('\n') && n.reason.len() <= 600,
            "{}",
            n.reason.len()
        );
        assert!(n.target.starts_with("remote-call"), "{}", n.target);
    }
}

#[tokio::test]
async fn the_default_allows_and_a_deny_rule_refuses_before_the_guest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    let mut deny = rule("hostile.e*", RuleDecision::Deny);
    deny.reason = Some("echo is off today".into());
    c.policy.rules.push(deny);
    c.policy
        .rules
        .push(rule("hostile.typed", RuleDecision::Deny));
    let host = Host::new(c).await.unwrap();
    // A refused capability reveals nothing: the rule comes before the schema check.
    let err = host
        .call("hostile.typed", json!({"n": "not an int"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    // No rule matches: the default (allow).
    assert_eq!(count(&host).await, 1);
    let err = host
        .call("hostile.echo", json!({"x": 1}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    assert!(err.to_string().contains("echo is off today"), "{err}");
    // The guest never ran: its per-instance counter did not move.
    assert_eq!(count(&host).await, 2);
    host.shutdown().await;
    let recs = records(&dir.path().join("audit.jsonl"));
    assert!(recs.iter().any(|r| r.capability == "hostile.echo"
        && r.effect == "call"
        && r.decision == "deny"
        && r.reason.contains("echo is off today")));
}

#[tokio::test]
async fn default_deny_makes_the_rules_an_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.policy.default = RuleDecision::Deny;
    c.policy
        .rules
        .push(rule("hostile.count", RuleDecision::Allow));
    let host = Host::new(c).await.unwrap();
    assert_eq!(count(&host).await, 1);
    let err = host.call("hostile.echo", json!({})).await.unwrap_err();
    assert!(
        matches!(err, Error::Denied { .. }) && err.to_string().contains("policy.default"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rules_calls_per_minute_limits_each_capability() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    let mut r = rule("hostile.*", RuleDecision::Allow);
    r.calls_per_minute = Some(3);
    c.policy.rules.push(r);
    let host = Host::new(c).await.unwrap();
    for _ in 0..3 {
        host.call("hostile.echo", json!({})).await.unwrap();
    }
    let err = host.call("hostile.echo", json!({})).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    // Per capability: another one has its own window.
    assert_eq!(count(&host).await, 4);
    host.shutdown().await;
    let recs = records(&dir.path().join("audit.jsonl"));
    assert!(recs
        .iter()
        .any(|r| r.decision == "deny" && r.reason.contains("calls per minute")));
}

#[tokio::test]
async fn a_plugins_calls_per_minute_counts_all_its_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.policy.plugins.insert(
        "hostile".into(),
        PluginRules {
            calls_per_minute: Some(2),
            ..plugin_rules()
        },
    );
    let host = Host::new(c).await.unwrap();
    host.call("hostile.echo", json!({})).await.unwrap();
    host.call("hostile.count", json!({})).await.unwrap();
    let err = host.call("hostile.echo", json!({})).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { .. }) && err.to_string().contains("plugin `hostile`"),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limit_metadata_is_enforced() {
    let server = crate::util::TestServer::start();
    let mut p = warden::PluginConfig::new(component("http"));
    p.grants.network = vec![format!("http://127.0.0.1:{}", server.port)];
    let mut c = config(Path::new(".")).with_plugin("http", p);
    c.providers.insert("Http".into(), "http".into());
    c.capabilities.push(warden::Manifest {
        id: "limited.tiny".into(),
        name: "tiny".into(),
        version: "1".into(),
        description: String::new(),
        provider: warden::ProviderKind::Http,
        provider_meta: json!({"base-url": server.url(""), "path": "/tiny"})
            .as_object()
            .unwrap()
            .clone(),
        input_schema: ":any".into(),
        output_schema: ":any".into(),
        metadata: json!({"http": {"rate-limit": "2/minute"}}),
        permissions: vec![],
        effects: vec![],
    });
    let host = Host::new(c).await.unwrap();
    host.call("limited.tiny", json!({})).await.unwrap();
    host.call("limited.tiny", json!({})).await.unwrap();
    let err = host.call("limited.tiny", json!({})).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert_eq!(server.seen().len(), 2, "the third request never left");
}

#[tokio::test]
async fn max_concurrent_waits_max_wait_ms_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.policy.plugins.insert(
        "hostile".into(),
        PluginRules {
            max_concurrent: Some(1),
            max_wait_ms: 100,
            ..plugin_rules()
        },
    );
    let host = Host::new(c).await.unwrap();
    let slow = {
        let host = host.clone();
        tokio::spawn(async move { host.call("hostile.sleep", json!({"arg": 800})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = host.call("hostile.echo", json!({})).await.unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    slow.await.unwrap().unwrap();
    host.call("hostile.echo", json!({})).await.unwrap();

    // A longer max-wait-ms lets the call wait for the slot.
    let mut c = audited(dir.path());
    c.policy.plugins.insert(
        "hostile".into(),
        PluginRules {
            max_concurrent: Some(1),
            max_wait_ms: 5000,
            ..plugin_rules()
        },
    );
    let host = Host::new(c).await.unwrap();
    let slow = {
        let host = host.clone();
        tokio::spawn(async move { host.call("hostile.sleep", json!({"arg": 300})).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    host.call("hostile.echo", json!({})).await.unwrap();
    slow.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_pinned_digest_must_match() {
    let right = warden::digest(&std::fs::read(component("hostile")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.policy.plugins.insert(
        "hostile".into(),
        PluginRules {
            digest: Some(right.clone()),
            ..plugin_rules()
        },
    );
    let host = Host::new(c.clone()).await.unwrap();
    assert_eq!(count(&host).await, 1);
    let wrong = format!("sha256:{}", "ab".repeat(32));
    c.policy.plugins.get_mut("hostile").unwrap().digest = Some(wrong.clone());
    // Without strict-load the host starts without the plugin, saying why.
    let tolerant = Host::new(c.clone()).await.unwrap();
    let (name, why) = &tolerant.refused_plugins()[0];
    assert!(name == "hostile" && why.contains(&wrong), "{why}");
    tolerant.shutdown().await;
    c.host.strict_load = true;
    let err = Host::new(c).await.err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::Load { .. }), "{text}");
    assert!(text.contains(&right) && text.contains(&wrong), "{text}");
    let recs = records(&dir.path().join("audit.jsonl"));
    assert!(recs
        .iter()
        .any(|r| r.effect == "load" && r.decision == "deny"));
}

struct Scripted {
    answers: std::sync::Mutex<Vec<Approval>>,
    asked: AtomicUsize,
}

impl Approver for Scripted {
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + Send + 'a>> {
        assert_eq!(request.capability, "hostile.echo");
        assert_eq!(
            request.input,
            json!({"n": self.asked.load(Ordering::SeqCst)})
        );
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers.lock().unwrap().remove(0);
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn an_approval_rule_asks_the_approver_which_approves_one_and_denies_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.policy
        .rules
        .push(rule("hostile.echo", RuleDecision::Approve));
    let host = Host::new(c).await.unwrap();
    // No approver: denied.
    let err = host
        .call("hostile.echo", json!({"n": 0}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Denied { .. }) && err.to_string().contains("no approver"),
        "{err}"
    );
    let approver = Arc::new(Scripted {
        answers: std::sync::Mutex::new(vec![
            Approval::Approve,
            Approval::Deny("not during the freeze".into()),
        ]),
        asked: AtomicUsize::new(0),
    });
    host.set_approver(Some(approver.clone()));
    assert_eq!(
        host.call("hostile.echo", json!({"n": 0})).await.unwrap(),
        json!({"n": 0})
    );
    let err = host
        .call("hostile.echo", json!({"n": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Denied { .. }) && err.to_string().contains("not during the freeze"),
        "{err}"
    );
    // Calls no approve rule matches never ask.
    host.call("hostile.count", json!({})).await.unwrap();
    assert_eq!(approver.asked.load(Ordering::SeqCst), 2);
    host.shutdown().await;
    let approvals: Vec<String> = records(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r.effect == "approval")
        .map(|r| r.decision)
        .collect();
    assert_eq!(approvals, ["deny", "allow", "deny"]);
}

/// Answers from a list, counting what it is asked.
struct Counting {
    answers: std::sync::Mutex<Vec<Approval>>,
    asked: AtomicUsize,
}

impl Approver for Counting {
    fn approve<'a>(
        &'a self,
        _request: &'a ApprovalRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + Send + 'a>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers.lock().unwrap().remove(0);
        Box::pin(async move { answer })
    }
}

/// Nobody is asked to approve a call its input schema refuses, whatever
/// is wrong with the input; a deferred approval is recorded and gives back
/// its rate-limit charge, so the call's second round is not counted twice.
#[tokio::test]
async fn approval_comes_after_validation_and_a_deferred_round_is_recorded_and_refunded() {
    let dir = tempfile::tempdir().unwrap();
    let text = PluginConfig::new(component("text")).with_namespaces(&["text", "json"]);
    let mut c = audited(dir.path()).with_plugin("text", text);
    let mut approve = rule("text.truncate", RuleDecision::Approve);
    approve.calls_per_minute = Some(1);
    c.policy.rules.push(approve);
    let host = Host::new(c).await.unwrap();
    let approver = Arc::new(Counting {
        answers: std::sync::Mutex::new(vec![
            Approval::Deferred("asked elsewhere".into()),
            Approval::Approve,
        ]),
        asked: AtomicUsize::new(0),
    });
    host.set_approver(Some(approver.clone()));
    let bad = [
        json!({}),
        json!({"text": "abc"}),
        json!({"text": "abc", "max": "two"}),
        json!({"text": 1, "max": 2}),
        json!({"text": "abc", "max": 1.5}),
        json!({"text": "abc", "max": 2, "ellipsis": 3}),
        json!({"text": ["abc"], "max": 2}),
        json!([1]),
        json!("abc"),
        json!(null),
    ];
    for input in bad {
        let err = host.call("text.truncate", input.clone()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{input}: {err}");
    }
    assert_eq!(approver.asked.load(Ordering::SeqCst), 0);
    let good = json!({"text": "abcdef", "max": 3});
    let err = host.call("text.truncate", good.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::Denied { .. }) && err.to_string().contains("waiting for approval"),
        "{err}"
    );
    // The deferred round's charge was given back: the approved round fits
    // calls-per-minute = 1, and the next call does not.
    host.call("text.truncate", good.clone()).await.unwrap();
    let err = host.call("text.truncate", good).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert_eq!(approver.asked.load(Ordering::SeqCst), 2);
    host.shutdown().await;
    let recs = records(&dir.path().join("audit.jsonl"));
    let approvals: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r.effect == "approval")
        .map(|r| (r.decision.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(approvals.len(), 2, "{approvals:?}");
    assert!(approvals[0].0 == "deny" && approvals[0].1.starts_with("deferred"));
    assert!(approvals[1].0 == "allow" && approvals[1].1.starts_with("approved"));
}

#[test]
fn the_cli_approver_denies_clearly_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[plugins.hostile]\ncomponent = \"{}\"\n[[policy.rules]]\ncapability = \"hostile.echo\"\ndecision = \"approve\"\n",
            component("hostile").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(crate::util::warden_cli());
    cmd.arg("--config")
        .arg(&cfg)
        .args(["call", "hostile.echo", "{}"])
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .stdin(std::process::Stdio::null());
    // No controlling terminal, as in CI or a pipe.
    #[cfg(unix)]
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no terminal to ask on"), "{stderr}");
}

async fn make_log(dir: &Path, sync: SyncPolicy, rotate_bytes: u64, calls: usize) -> PathBuf {
    let mut c = audited(dir);
    c.audit.as_mut().unwrap().sync = sync;
    c.audit.as_mut().unwrap().rotate_bytes = rotate_bytes;
    let host = Host::new(c).await.unwrap();
    for i in 0..calls {
        host.call("hostile.echo", json!({"i": i})).await.unwrap();
    }
    host.shutdown().await;
    dir.join("audit.jsonl")
}

fn edit_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    f(&mut lines);
    let out = path.with_extension("edited");
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    out
}

#[tokio::test]
async fn audit_verify_catches_an_edit_a_deletion_and_a_swap() {
    let dir = tempfile::tempdir().unwrap();
    let log = make_log(dir.path(), SyncPolicy::Always, 0, 4).await;
    let recs = records(&log);
    assert!(recs.len() >= 8, "two records per call");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert!(!r.time.is_empty() && !r.call_id.is_empty() && r.digest.starts_with("sha256:"));
    }
    let (ok, text) = verify(&[&log]);
    assert!(ok && text.starts_with("OK"), "{text}");

    // One byte changed inside a record.
    let edited = edit_lines(&log, |l| {
        l[2] = l[2].replacen("hostile.echo", "hostile.ecHo", 1)
    });
    let (ok, text) = verify(&[&edited]);
    assert!(
        !ok && text.contains("line 3") && text.contains("edited"),
        "{text}"
    );
    // A record deleted.
    let deleted = edit_lines(&log, |l| {
        l.remove(3);
    });
    let (ok, text) = verify(&[&deleted]);
    assert!(!ok && text.contains("line 4"), "{text}");
    // Two records swapped.
    let swapped = edit_lines(&log, |l| l.swap(4, 5));
    let (ok, text) = verify(&[&swapped]);
    assert!(!ok && text.contains("line 5"), "{text}");
}

/// A rotated log file: `audit.jsonl.<first seq>`.
fn rotated(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("audit.jsonl."))
}

#[tokio::test]
async fn rotation_carries_the_chain_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = make_log(dir.path(), SyncPolicy::Flush, 1500, 12).await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| rotated(p))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "rotated: {files:?}");
    files.push(log.clone());
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (ok, text) = verify(&refs);
    assert!(ok, "{text}");
    // A rotated file left out breaks the chain.
    let mut gap = refs.clone();
    gap.remove(1);
    let (ok, text) = verify(&gap);
    assert!(!ok && text.contains("missing"), "{text}");
    // A restarted host continues the same chain.
    make_log(dir.path(), SyncPolicy::Flush, 1500, 1).await;
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| rotated(p))
        .collect();
    all.sort();
    all.push(log.clone());
    let refs: Vec<&Path> = all.iter().map(PathBuf::as_path).collect();
    assert!(verify(&refs).0);
}

#[tokio::test]
async fn sync_buffered_writes_at_shutdown_flush_writes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.audit.as_mut().unwrap().sync = SyncPolicy::Buffered;
    let host = Host::new(c).await.unwrap();
    host.call("hostile.echo", json!({})).await.unwrap();
    let path = dir.path().join("audit.jsonl");
    assert!(records(&path).is_empty(), "buffered until shutdown");
    host.shutdown().await;
    assert_eq!(records(&path).len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let host = Host::new(audited(dir.path())).await.unwrap();
    host.call("hostile.echo", json!({})).await.unwrap();
    assert_eq!(records(&dir.path().join("audit.jsonl")).len(), 2);
}

#[tokio::test]
async fn a_damaged_log_is_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let log = make_log(dir.path(), SyncPolicy::Flush, 0, 1).await;
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"seq\": 99, \"garbage\"\n");
    std::fs::write(&log, text).unwrap();
    let err = Host::new(audited(dir.path())).await.err().expect("refused");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn audit_tail_prints_the_last_records() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = rt.block_on(make_log(dir.path(), SyncPolicy::Flush, 0, 3));
    let out = warden(&["audit", "tail", "-n", "2", &log.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("hostile.echo") && text.contains("     6 "),
        "{text}"
    );
    let out = warden(&[
        "audit",
        "tail",
        "--json",
        "-n",
        "1",
        &log.display().to_string(),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["seq"], 6);
}

#[test]
fn policy_and_audit_config_are_strict() {
    let bad = [
        ("[policy]\ndefualt = \"deny\"\n", "defualt"),
        (
            "[[policy.rules]]\ncapability = \"x\"\ndecision = \"maybe\"\n",
            "maybe",
        ),
        (
            "[[policy.rules]]\ncapability = \"x\"\ncalls-per-minute = 0\n",
            "calls-per-minute",
        ),
        ("[policy.plugins.nope]\nmax-concurrent = 1\n", "nope"),
        ("[audit]\npath = \"a\"\nsync = \"sometimes\"\n", "sometimes"),
    ];
    for (text, named) in bad {
        let err = Config::from_toml(text, Path::new("/cfg")).and_then(|c| c.validate().map(|_| c));
        let msg = err.expect_err(text).to_string();
        assert!(msg.contains(named), "{text}: {msg}");
    }
}

/// Calls `hostile.echo` as `principal` holding `scopes`; whether it ran.
async fn allowed_for(host: &Host, principal: Option<&str>, scopes: &[String]) -> bool {
    let context = warden::CallContext {
        identity: warden::Identity {
            principal,
            scopes,
            groups: &[],
        },
        ..Default::default()
    };
    match host.call_with("hostile.echo", json!({}), &context).await {
        Ok(_) => true,
        Err(Error::Denied { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn rules_naming_principals_and_scopes_apply_only_to_those_callers() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = audited(dir.path());
    c.policy.default = RuleDecision::Deny;
    // Builders may echo; so may a reader holding both scopes; nobody else.
    let mut builders = rule("hostile.echo", RuleDecision::Allow);
    builders.principals = vec!["build-*".into()];
    let mut scoped = rule("hostile.echo", RuleDecision::Allow);
    scoped.scopes = vec!["tools:read".into(), "tools:echo".into()];
    c.policy.rules.extend([builders, scoped]);
    let host = Host::new(c).await.unwrap();
    let both = ["tools:read".to_string(), "tools:echo".to_string()];
    let one = ["tools:read".to_string()];
    assert!(allowed_for(&host, Some("build-agent"), &[]).await);
    assert!(allowed_for(&host, Some("build-"), &[]).await);
    assert!(!allowed_for(&host, Some("reviewer"), &[]).await);
    assert!(!allowed_for(&host, Some("xbuild-agent"), &[]).await);
    assert!(
        !allowed_for(&host, None, &[]).await,
        "no principal matches no principals rule"
    );
    assert!(allowed_for(&host, Some("reviewer"), &both).await);
    assert!(allowed_for(&host, None, &both).await);
    assert!(!allowed_for(&host, Some("reviewer"), &one).await);
    host.shutdown().await;
}

//! Noisy neighbours: what one plugin does is charged to that plugin, and no
//! plugin can take memory, pool slots, descriptors, CPU or disk from
//! another. One test per containment, then all attacks at once next to an
//! honest plugin.

use crate::governance::records;
use crate::util::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden::audit::Record;
use warden::{DirGrant, DirMode, Error, Host, InstanceMode, Limit, Limits, PluginConfig};

fn bomb(memory: u64) -> PluginConfig {
    let mut p = PluginConfig::new(component("memory-bomb")).with_namespaces(&["memorybomb"]);
    p.limits.memory = Some(memory);
    p
}

fn text() -> PluginConfig {
    PluginConfig::new(component("text")).with_namespaces(&["text", "json"])
}

fn expect_limit(r: &warden::Result<Value>, plugin: &str, want: Limit) {
    match r {
        Err(Error::LimitExceeded {
            plugin: p, limit, ..
        }) if *limit == want && p == plugin => {}
        other => panic!("expected the {want} limit of `{plugin}`, got {other:?}"),
    }
}

/// Records of `plugin` whose effect is `effect` and whose reason contains `reason`.
fn matching<'a>(all: &'a [Record], plugin: &str, effect: &str, reason: &str) -> Vec<&'a Record> {
    all.iter()
        .filter(|r| r.plugin == plugin && r.effect == effect && r.reason.contains(reason))
        .collect()
}

/// The resident set of this process (the host), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb << 10
}

fn case(host: &Host, text: &str) -> impl std::future::Future<Output = warden::Result<Value>> {
    let host = host.clone();
    let input = json!({"text": text, "to": "upper"});
    async move { host.call("text.case", input).await }
}

/// Build item 1: three extra memories of one instance grow within one
/// `limits.memory` together, not each.
#[tokio::test]
async fn the_memories_of_an_instance_share_its_memory_limit() {
    let host = host_with("bomb", bomb(8 << 20)).await;
    let pages = host
        .call("memorybomb.grow", json!({}))
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    // One page is the ABI memory's; the rest of 8 MiB (128 pages) at most.
    assert!((64..128).contains(&pages), "grew {pages} pages under 8 MiB");
    // The next call (same warm instance, nothing left to grow) still works.
    assert!(host.call("memorybomb.grow", json!({})).await.is_ok());
}

/// Build item 1: host-side state a guest creates (here `wasi:http` header
/// sets kept alive) is capped per instance with a typed error.
/// The remote state an instance asks the host to keep is capped: past 64
/// KiB the guest gets a typed refusal, and the host keeps nothing of it.
#[tokio::test]
async fn remote_state_a_guest_asks_the_host_to_keep_is_capped() {
    let host = host_with("hostile", hostile()).await;
    let out = host
        .call("hostile.remote-state", json!({"arg": 64 << 10}))
        .await
        .unwrap();
    assert_eq!(out["kept"], 64 << 10, "{out}");
    let out = host
        .call("hostile.remote-state", json!({"arg": (64 << 10) + 1}))
        .await
        .unwrap();
    let refused = out["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("65536-byte limit"), "{out}");
    host.shutdown().await;
}

#[tokio::test]
async fn host_side_state_is_capped_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = hostile();
    p.limits.memory = Some(8 << 20);
    let (c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", p), dir.path());
    let host = Host::new(c).await.unwrap();
    // 2,000 sets of 60 KiB would be 120 MB; at most 256 are kept (15 MB).
    let r = host.call("hostile.fields", json!({"arg": 2000})).await;
    expect_limit(&r, "hostile", Limit::HostState);
    // Fewer fit, and stay alive in the warm instance.
    let out = host
        .call("hostile.fields", json!({"arg": 200}))
        .await
        .unwrap();
    assert_eq!(out["created"], 200);
    assert!(host.call("hostile.echo", json!(1)).await.is_ok());
    let all = records(&log);
    assert_eq!(
        matching(&all, "hostile", "limit", "host-state").len(),
        1,
        "{all:#?}"
    );
}

/// Build item 2: each plugin's instances come from its own share of the
/// pool. A plugin whose instances use four memories each, at 100 instances,
/// would have taken the whole pool the engine used to size for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_plugin_keeps_its_own_share_of_the_pool() {
    let mut b = bomb(1 << 20);
    b.max_instances = 100;
    b.sessions.max = 1;
    let mut t = text();
    t.instances = InstanceMode::Fresh;
    t.sessions.max = 1;
    let host = Host::new(
        config(Path::new("."))
            .with_plugin("bomb", b)
            .with_plugin("text", t),
    )
    .await
    .unwrap();
    let mut bombs = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let host = host.clone();
        bombs.spawn(async move {
            // Holds its instance a moment so all 100 exist at once.
            let r = host.call("memorybomb.grow", json!({})).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
            r
        });
    }
    let mut honest = tokio::task::JoinSet::new();
    for i in 0..20 {
        let call = case(&host, &format!("call {i}"));
        honest.spawn(call);
    }
    while let Some(r) = honest.join_next().await {
        let out = r.unwrap().expect("the honest plugin loses no call");
        assert!(out["text"].as_str().unwrap().starts_with("CALL "));
    }
    while let Some(r) = bombs.join_next().await {
        r.unwrap()
            .expect("the bomb's own share holds its instances");
    }
}

/// Build item 3: sockets and files are capped per plugin, across its
/// instances, with a typed error in the guest and an audit record; closed
/// ones are given back. The host refuses caps its descriptors cannot cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_and_files_are_capped_per_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("f"), "x").unwrap();
    let mut p = hostile();
    p.max_instances = 2;
    p.limits.max_sockets = Some(4);
    p.limits.max_files = Some(3);
    p.grants.dirs = vec![DirGrant {
        host: ro.clone(),
        guest: "/ro".into(),
        mode: DirMode::ReadOnly,
    }];
    let (c, log) = with_audit(
        config(Path::new(".")).with_plugin("hostile", p.clone()),
        dir.path(),
    );
    let host = Host::new(c).await.unwrap();
    let sockets = |n: u64| {
        let host = host.clone();
        async move {
            host.call("hostile.sockets", json!({ "arg": n }))
                .await
                .unwrap()
        }
    };
    let out = sockets(10).await;
    assert_eq!(out["created"], 4, "{out}");
    assert!(
        out["error"].as_str().unwrap().contains("new-socket-limit"),
        "{out}"
    );
    // While that instance is busy, a second one gets nothing more.
    let busy = {
        let host = host.clone();
        tokio::spawn(async move { host.call("hostile.sleep", json!({"arg": 800})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = sockets(2).await;
    assert_eq!(out["created"], 0, "the cap is per plugin: {out}");
    busy.await.unwrap().unwrap();
    // Closed sockets are given back.
    for _ in 0..2 {
        host.call("hostile.release", json!({})).await.unwrap();
    }
    assert_eq!(sockets(3).await["created"], 3);

    let out = host
        .call("hostile.open-many", json!({"path": "/ro/f", "n": 10}))
        .await
        .unwrap();
    assert_eq!(out["opened"], 3, "{out}");
    let all = records(&log);
    assert!(!matching(&all, "hostile", "socket", "limits.max-sockets (4) reached").is_empty());
    assert!(!matching(&all, "hostile", "file", "limits.max-files (3) reached").is_empty());

    // Caps that would leave the host no descriptors of its own are refused.
    p.limits.max_sockets = Some(u32::MAX / 2);
    let err = Host::new(config(Path::new(".")).with_plugin("hostile", p))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("open-file limit"), "{err}");
}

/// Build item 4: guest code yields to the runtime at every epoch tick, so
/// plugins spinning on every worker thread do not hold up another plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_plugin_does_not_hold_up_another() {
    let mut h = hostile();
    h.max_instances = 4;
    h.limits.timeout_ms = Some(3000);
    h.limits.fuel = Some(u64::MAX / 2);
    let host = Host::new(
        config(Path::new("."))
            .with_plugin("hostile", h)
            .with_plugin("text", text()),
    )
    .await
    .unwrap();
    case(&host, "warm").await.unwrap();
    let mut spins = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let host = host.clone();
        spins.spawn(async move { host.call("hostile.spin", json!({})).await });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let out = case(&host, &format!("x{i}")).await.unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!(out["text"], format!("X{i}"));
    }
    // Stated bound: 500 ms (one epoch tick is 5 ms). Without yielding, the
    // spinning calls hold both workers for their whole 3 s.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest call {slowest:?}"
    );
    while let Some(r) = spins.join_next().await {
        expect_limit(&r.unwrap(), "hostile", Limit::Time);
    }
}

fn fifo(dir: &Path) -> PathBuf {
    let path = dir.join("fifo");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    path
}

/// Build item 5: opening a FIFO (which would block a host thread past any
/// time limit) is refused at once and audited; the CLI exits promptly.
#[tokio::test]
async fn a_fifo_is_refused_at_once_and_the_cli_exits() {
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw");
    std::fs::create_dir(&rw).unwrap();
    fifo(&rw);
    let mut p = hostile();
    p.limits.timeout_ms = Some(3000);
    p.grants.dirs = vec![DirGrant {
        host: rw.clone(),
        guest: "/rw".into(),
        mode: DirMode::ReadWrite,
    }];
    let (c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", p), dir.path());
    let host = Host::new(c).await.unwrap();
    let r = host.call("hostile.read", json!({"arg": "/rw/fifo"})).await;
    assert!(
        r.is_err() && !matches!(r, Err(Error::LimitExceeded { .. })),
        "{r:?}"
    );
    assert!(host.call("hostile.echo", json!(1)).await.is_ok());
    let all = records(&log);
    assert_eq!(
        matching(&all, "hostile", "file", "special file").len(),
        1,
        "{all:#?}"
    );

    let cfg = dir.path().join("warden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[plugins.hostile]\ncomponent = {:?}\n[plugins.hostile.limits]\ntimeout-ms = 2000\n\
             [[plugins.hostile.grants.dirs]]\nhost = {:?}\nguest = \"/rw\"\nmode = \"rw\"\n",
            component("hostile"),
            rw
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(warden_cli())
        .args(["--config", cfg.to_str().unwrap(), "call", "hostile.read"])
        .arg(r#"{"arg":"/rw/fifo"}"#)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`warden call` did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
}

/// Build item 6: one call's audit records and log lines are bounded:
/// long guest strings are cut with their length, repeated denials are
/// summarised, allowed effects past the per-call cap are refused, and the
/// warnings denials cause come out of the log budget.
#[tokio::test]
async fn audit_and_log_volume_is_bounded_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = hostile();
    p.grants.env = vec!["HOSTILE_OK".into()];
    let (c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", p), dir.path());
    let host = Host::new(c).await.unwrap();

    let out = host
        .call("hostile.env-flood", json!({"n": 50, "len": 100_000}))
        .await
        .unwrap();
    assert_eq!(out["denied"], 50);
    let out = host
        .call("hostile.deny-flood", json!({"arg": 20_000}))
        .await
        .unwrap();
    assert_eq!(out["denied"], 20_000);
    let out = host
        .call(
            "hostile.env-flood",
            json!({"n": 1100, "name": "HOSTILE_OK"}),
        )
        .await
        .unwrap();
    assert_eq!(
        out["denied"], 100,
        "allowed effects past the cap are refused"
    );

    let all = records(&log);
    let env_denied: Vec<_> = all
        .iter()
        .filter(|r| r.effect == "env" && r.decision == "deny" && !r.reason.contains("refused"))
        .collect();
    // Ten one by one, cut with their length, then one summary.
    assert_eq!(env_denied.len(), 11, "{env_denied:#?}");
    for r in &env_denied[..10] {
        assert!(r.target.len() < 1100 && r.target.contains("truncated, 100000 bytes"));
        assert!(r.reason.len() < 1100);
    }
    assert!(env_denied[10].reason.contains("40 further `env` denials"));
    let sockets = matching(&all, "hostile", "socket", "");
    assert_eq!(sockets.len(), 11);
    assert!(sockets[10]
        .reason
        .contains("19990 further `socket` denials"));
    assert_eq!(
        all.iter()
            .filter(|r| r.effect == "env" && r.decision == "allow")
            .count(),
        1000
    );
    assert_eq!(
        matching(&all, "hostile", "env", "100 `env` effects were refused").len(),
        1
    );
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < 2 << 20, "audit log is {size} bytes");
    crate::governance::assert_chain(&log);

    // The warnings denials cause are log lines of the call, within its budget.
    let cfg = dir.path().join("warden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[plugins.hostile]\ncomponent = {:?}\n[plugins.hostile.limits]\nmax-log-lines = 5\n",
            component("hostile")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(warden_cli())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "call",
            "hostile.deny-flood",
        ])
        .arg(r#"{"arg":20000}"#)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings = stderr.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings <= 7, "{warnings} warnings:\n{stderr}");
}

/// Every attack at once, in one host, next to an honest plugin serving calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_plugin_is_unaffected_by_a_noisy_neighbour() {
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw");
    std::fs::create_dir(&rw).unwrap();
    std::fs::write(rw.join("f"), "x").unwrap();
    fifo(&rw);
    let mut h = hostile();
    h.max_instances = 2;
    h.sessions.max = 1;
    h.limits = Limits {
        memory: Some(16 << 20),
        timeout_ms: Some(2000),
        request_timeout_ms: Some(1500),
        fuel: Some(u64::MAX / 2),
        max_sockets: Some(4),
        max_files: Some(4),
        max_log_lines: Some(20),
        ..Limits::default()
    };
    // Lookups of names under it go to a nameserver that never answers.
    h.grants.network = vec!["https://*.void.test:443".into()];
    h.grants.dirs = vec![DirGrant {
        host: rw.clone(),
        guest: "/rw".into(),
        mode: DirMode::ReadWrite,
    }];
    let mut b = bomb(16 << 20);
    b.max_instances = 2;
    b.sessions.max = 1;
    let mut t = text();
    t.max_instances = 2;
    t.sessions.max = 1;
    // A second copy of the hostile plugin claims every id the first owns.
    // Loads after `hostile` (plugins load in name order).
    let mut claimer = hostile();
    claimer.max_instances = 1;
    claimer.sessions.max = 1;
    let (mut c, log) = with_audit(
        config(Path::new("."))
            .with_plugin("text", t)
            .with_plugin("hostile", h)
            .with_plugin("bomb", b)
            .with_plugin("usurper", claimer),
        dir.path(),
    );
    let silent = crate::containment::DnsServer::start(true);
    c.host.dns_servers = vec![silent.addr];
    // Configured: per instance its memory limit plus as much host state;
    // text 4 slots x 2 x 64 MiB, hostile 4 x 2 x 16 MiB, bomb 4 x 2 x 16 MiB,
    // usurper 3 x 2 x 64 MiB. Constant: 200 MiB for the host and test.
    let configured: u64 = (4 * 2 * 64 + 4 * 2 * 16 + 4 * 2 * 16 + 3 * 2 * 64) << 20;
    let bound = configured + (200 << 20);
    let host = Host::new(c)
        .await
        .expect("a claim on owned ids does not stop the host");
    case(&host, "warm").await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attack = |id: &'static str, input: Value| {
        let host = host.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                results.push(host.call(id, input.clone()).await);
                host.call("hostile.release", json!({})).await.ok();
            }
            results
        })
    };
    let attacks = vec![
        ("spin", attack("hostile.spin", json!({}))),
        ("alloc", attack("hostile.alloc", json!({"arg": 64}))),
        ("sockets", attack("hostile.sockets", json!({"arg": 1000}))),
        ("fields", attack("hostile.fields", json!({"arg": 5000}))),
        ("fifo", attack("hostile.read", json!({"arg": "/rw/fifo"}))),
        (
            "files",
            attack("hostile.open-many", json!({"path": "/rw/f", "n": 100})),
        ),
        (
            "streams",
            attack(
                "hostile.stream-many",
                json!({"path": "/rw/f", "n": 100, "mode": "read", "preopens": 3}),
            ),
        ),
        (
            "dns",
            attack(
                "hostile.lookup-many",
                json!({"n": 200, "suffix": "void.test"}),
            ),
        ),
        ("deny", attack("hostile.deny-flood", json!({"arg": 5000}))),
        (
            "env",
            attack("hostile.env-flood", json!({"n": 20, "len": 100_000})),
        ),
        ("bomb", attack("memorybomb.grow", json!({}))),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut latencies = Vec::new();
    let mut peak = 0;
    for i in 0..200 {
        let t = Instant::now();
        let out = case(&host, &format!("honest {i}"))
            .await
            .expect("the honest plugin loses no call");
        latencies.push(t.elapsed());
        assert_eq!(out["text"], format!("HONEST {i}"));
        peak = peak.max(rss());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    // Stated bound: p99 under 500 ms next to all of this (alone it is about
    // a millisecond; see `cargo bench -p warden --bench neighbours`).
    assert!(p99 < Duration::from_millis(500), "honest p99 {p99:?}");
    assert!(peak < bound, "host RSS {peak} over {bound}");

    let mut results = std::collections::HashMap::new();
    for (name, task) in attacks {
        results.insert(name, task.await.unwrap());
    }
    let first = |name: &str| &results[name][0];
    expect_limit(first("spin"), "hostile", Limit::Time);
    expect_limit(first("alloc"), "hostile", Limit::Memory);
    expect_limit(first("fields"), "hostile", Limit::HostState);
    let s = first("sockets").as_ref().unwrap();
    assert!(
        s["error"].as_str().unwrap().contains("new-socket-limit"),
        "{s}"
    );
    assert!(s["created"].as_u64().unwrap() <= 4);
    let f = first("files").as_ref().unwrap();
    assert!(f["opened"].as_u64().unwrap() <= 4, "{f}");
    let s = first("streams").as_ref().unwrap();
    assert!(s["opened"].as_u64().unwrap() <= 4, "{s}");
    // The flood's lookups left, and ended (each within its time) without
    // an answer.
    assert!(
        !silent.asked().is_empty(),
        "{:?}",
        &results["dns"][..results["dns"].len().min(3)]
    );
    assert!(first("fifo").is_err());
    assert!(!matches!(first("fifo"), Err(Error::LimitExceeded { .. })));
    // The FIFO is refused as a special file, or (when the same plugin's
    // file flood holds every descriptor it may) by the descriptor cap
    // before it is opened: either way at once, and recorded (the special
    // file's own record is checked alone in
    // `a_fifo_is_refused_at_once_and_the_cli_exits`).
    let fifo_error = first("fifo").as_ref().unwrap_err().to_string();
    let pages = first("bomb").as_ref().unwrap().as_u64().unwrap();
    assert!(pages < 256, "bomb grew {pages} pages under 16 MiB");

    let all = records(&log);
    assert!(
        ["special file", "limits.max-files (4) reached"]
            .iter()
            .any(|why| !matching(&all, "hostile", "file", why).is_empty()),
        "the FIFO's refusal ({fifo_error}) has no `file` record"
    );
    for (effect, reason) in [
        ("limit", "time limit"),
        ("limit", "memory limit"),
        ("limit", "host-state limit"),
        ("socket", "limits.max-sockets (4) reached"),
        ("file", "limits.max-files (4) reached"),
        ("env", "further `env` denials"),
        ("socket", "further `socket` denials"),
    ] {
        assert!(
            !matching(&all, "hostile", effect, reason).is_empty(),
            "no `{effect}` record with `{reason}`; the hostile plugin's {effect} records: {:?}",
            all.iter()
                .filter(|r| r.plugin == "hostile" && r.effect == effect)
                .map(|r| r.reason.chars().take(120).collect::<String>())
                .take(20)
                .collect::<Vec<_>>()
        );
    }
    assert!(all
        .iter()
        .any(|r| r.plugin == "usurper" && r.effect == "register"));
    assert!(all
        .iter()
        .all(|r| r.plugin != "text" || r.decision != "deny"));
    crate::governance::assert_chain(&log);
}

//! Containment, round three (issue 28): descriptors held through streams
//! and listings, HTTP connections under `max-sockets`, special files
//! decided on the opened object, and name lookups that are admitted and
//! recorded before any query leaves, each plugin on its own resolver.

use crate::governance::records;
use crate::util::*;
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden::config::{DirGrant, DirMode};
use warden::{Error, Host, PluginConfig};

/// The hostile plugin with one instance (so what it keeps is kept where
/// the next call looks) and `/rw` granted read-write at `rw`.
fn hostile_in(rw: &Path) -> PluginConfig {
    let mut h = hostile();
    h.max_instances = 1;
    h.grants.dirs = vec![DirGrant {
        host: rw.to_path_buf(),
        guest: "/rw".into(),
        mode: DirMode::ReadWrite,
    }];
    h
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw");
    std::fs::create_dir_all(rw.join("sub")).unwrap();
    std::fs::write(rw.join("f"), "x").unwrap();
    (dir, rw)
}

/// Whatever a guest keeps a file open by (a stream of any kind, a
/// directory listing, or the descriptor), it holds one of `max-files`, and
/// asking for the granted directories again and again does not move the
/// cap: exactly `max-files` opens succeed.
#[tokio::test]
async fn every_handle_on_a_file_counts_toward_max_files_exactly() {
    let (_dir, rw) = scratch();
    let mut h = hostile_in(&rw);
    h.limits.max_files = Some(3);
    let host = host_with("hostile", h).await;
    for mode in ["read", "write", "append", "list"] {
        for preopens in [0, 1, 7] {
            let path = if mode == "list" { "/rw/sub" } else { "/rw/f" };
            let input = json!({"path": path, "n": 10, "mode": mode, "preopens": preopens});
            let out = host.call("hostile.stream-many", input).await.unwrap();
            // A listing is made from an open descriptor: while it is made,
            // both count, so one fewer fits.
            let fits = if mode == "list" { 2 } else { 3 };
            assert_eq!(
                out["opened"], fits,
                "{mode} after {preopens} preopens: {out}"
            );
            let error = out["error"].as_str().unwrap_or_default();
            assert!(error.contains("quota"), "{mode}: {out}");
            host.call("hostile.release", json!({})).await.unwrap();
        }
    }
    // With everything released, the whole cap is there again.
    let out = host
        .call("hostile.open-many", json!({"path": "/rw/f", "n": 10}))
        .await
        .unwrap();
    assert_eq!(out["opened"], 3, "{out}");
}

/// A path that turns into a FIFO between any check and the open is still
/// refused: the decision is made on the opened file, which is opened
/// without blocking. No call waits on a FIFO (which would hold a host
/// thread past the call's time limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_swapped_in_at_open_is_refused_without_blocking() {
    let (_dir, rw) = scratch();
    std::fs::write(rw.join("a"), "regular").unwrap();
    make_fifo(&rw.join("p"));
    let mut h = hostile_in(&rw);
    h.limits.timeout_ms = Some(3000);
    let host = host_with("hostile", h).await;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (rw, stop) = (rw.clone(), stop.clone());
        std::thread::spawn(move || {
            let target = rw.join("target");
            while !stop.load(Ordering::Relaxed) {
                for name in ["a", "p"] {
                    let _ = std::fs::rename(rw.join(name), &target);
                    let _ = std::fs::rename(&target, rw.join(name));
                }
            }
        })
    };
    let (mut read, mut refused) = (0, 0);
    for _ in 0..300 {
        match host
            .call("hostile.read", json!({"arg": "/rw/target"}))
            .await
        {
            Ok(out) => {
                assert_eq!(out["text"], "regular");
                read += 1;
            }
            Err(e @ Error::LimitExceeded { .. }) => panic!("an open blocked: {e}"),
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(read + refused == 300);
    // The FIFO itself, opened for reading and for writing, is refused at once.
    let started = Instant::now();
    assert!(host
        .call("hostile.read", json!({"arg": "/rw/p"}))
        .await
        .is_err());
    let w = json!({"path": "/rw/p", "text": "x"});
    assert!(host.call("hostile.write", w).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn make_fifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// The connections the host keeps for a plugin (in use or idle in the
/// pool) hold its `max-sockets`: however many destinations it talks to,
/// it never has more open; sockets the guest holds itself leave that much
/// less, and a request with none left fails, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_count_toward_max_sockets() {
    let servers: Vec<TestServer> = (0..4).map(|_| TestServer::start()).collect();
    let mut h = hostile();
    h.max_instances = 1;
    h.limits.max_sockets = Some(2);
    h.limits.request_timeout_ms = Some(500);
    h.grants.network = servers.iter().map(|s| s.url("")).collect();
    h.grants.network.push("tcp://127.0.0.1:9".into());
    let host = host_with("hostile", h).await;
    let open = || {
        servers
            .iter()
            .map(|s| s.open.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    for round in 0..3 {
        for s in &servers {
            let out = host
                .call("hostile.http", json!({"arg": s.url("/tiny")}))
                .await;
            assert_eq!(out.unwrap()["status"], 200);
            let deadline = Instant::now() + Duration::from_secs(2);
            while open() > 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(open() <= 2, "round {round}: {} connections open", open());
        }
    }
    // The guest's own sockets take the rest: no connection can be made.
    let kept = host
        .call("hostile.sockets", json!({"arg": 2}))
        .await
        .unwrap();
    assert_eq!(kept["created"], 2, "{kept}");
    let fresh = TestServer::start();
    let mut denied_at = None;
    for s in servers.iter().chain([&fresh]) {
        if host
            .call("hostile.http", json!({"arg": s.url("/tiny")}))
            .await
            .is_err()
        {
            denied_at = Some(s.port);
        }
    }
    assert!(denied_at.is_some(), "a request went out past max-sockets");
    host.call("hostile.release", json!({})).await.unwrap();
    let out = host
        .call("hostile.http", json!({"arg": servers[0].url("/tiny")}))
        .await;
    assert_eq!(out.unwrap()["status"], 200);
}

/// A DNS server on 127.0.0.1 for tests: answers every query `NXDOMAIN`
/// (or, `silent`, never answers), and keeps the names it was asked.
pub(crate) struct DnsServer {
    pub(crate) addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

impl DnsServer {
    pub(crate) fn start(silent: bool) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = asked.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let Some(name) = query_name(&buf[..n]) else {
                    continue;
                };
                seen.lock().unwrap().push(name);
                if !silent {
                    let _ = socket.send_to(&nxdomain(&buf[..n]), from);
                }
            }
        });
        DnsServer { addr, asked }
    }

    pub(crate) fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

/// The name of a DNS query's first question, lower case, no final dot.
fn query_name(packet: &[u8]) -> Option<String> {
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = *packet.get(i)? as usize;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(packet.get(i + 1..i + 1 + len)?).to_lowercase());
        i += 1 + len;
    }
    Some(labels.join("."))
}

/// The answer to `query`: the same id and question, `NXDOMAIN`.
fn nxdomain(query: &[u8]) -> Vec<u8> {
    let mut answer = query.to_vec();
    answer[2] = 0x80 | (query[2] & 0x79); // QR, the opcode and RD as asked
    answer[3] = 0x80 | 3; // RA, NXDOMAIN
    answer[6..12].fill(0); // no answer, authority or additional records
    answer.truncate(question_end(query).unwrap_or(query.len()));
    answer
}

fn question_end(packet: &[u8]) -> Option<usize> {
    let mut i = 12;
    while *packet.get(i)? != 0 {
        i += 1 + packet[i] as usize;
    }
    Some(i + 5)
}

/// A host whose plugins resolve through `dns`, with the hostile plugin
/// granted `*.<suffix>`; returns it with its audit log.
async fn host_resolving(dns: &DnsServer, suffix: &str, dir: &Path) -> (Host, PathBuf) {
    let mut h = hostile();
    h.max_instances = 1;
    h.limits.request_timeout_ms = Some(1500);
    h.limits.timeout_ms = Some(60_000);
    h.grants.network = vec![format!("https://*.{suffix}:443")];
    let (mut c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", h), dir);
    c.host.dns_servers = vec![dns.addr];
    (Host::new(c).await.expect("host loads"), log)
}

/// Every name that reaches a nameserver was first admitted and written to
/// the audit log with its full name; past the call's record cap the
/// lookups are refused and no query leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_recorded_before_any_query_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(false);
    let (host, log) = host_resolving(&dns, "exfil.test", dir.path()).await;
    let input = json!({"n": 1200, "suffix": "exfil.test"});
    let out = host.call("hostile.lookup-many", input).await.unwrap();
    assert!(out["refused"].as_u64().unwrap() > 0, "{out}");
    host.shutdown().await;
    let admitted = queried_only_as_admitted(&log, &dns, "querying the nameservers");
    assert!(admitted < 1200, "{admitted} admitted");
    crate::governance::assert_chain(&log);
}

/// Checks that every name `dns` was asked was admitted first, in a
/// `lookup` record of `log` whose reason says `admitted`; how many were.
fn queried_only_as_admitted(log: &Path, dns: &DnsServer, admitted: &str) -> usize {
    let names: std::collections::HashSet<String> = records(log)
        .into_iter()
        .filter(|r| r.effect == "lookup" && r.decision == "allow")
        .filter(|r| r.reason.contains(admitted))
        .map(|r| r.target)
        .collect();
    let asked = dns.asked();
    assert!(!asked.is_empty(), "no query reached the server");
    for name in &asked {
        assert!(names.contains(name), "`{name}` was queried unrecorded");
    }
    names.len()
}

/// Service (SRV) lookups follow the same rules: each name is admitted and
/// recorded before its query leaves, past the call's record cap none
/// leaves, a name without records is `not-found` and one no grant names is
/// `denied` without a query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_lookups_are_granted_and_recorded_like_name_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(false);
    let (host, log) = host_resolving(&dns, "exfil.test", dir.path()).await;
    let input = json!({"n": 1200, "suffix": "exfil.test"});
    let out = host.call("hostile.srv-many", input).await.unwrap();
    assert!(out["not-found"].as_u64().unwrap() > 0, "{out}");
    assert!(out["denied"].as_u64().unwrap() > 0, "{out}");
    let input = json!({"n": 3, "suffix": "elsewhere.test"});
    let other = host.call("hostile.srv-many", input).await.unwrap();
    assert_eq!(other, json!({"denied": 3}));
    // A name no DNS name can be is refused as such, and recorded clipped.
    let input = json!({"n": 1, "suffix": format!("{}.exfil.test", "a".repeat(400))});
    let long = host.call("hostile.srv-many", input).await.unwrap();
    assert_eq!(long, json!({"invalid": 1}));
    host.shutdown().await;
    let admitted = queried_only_as_admitted(&log, &dns, "SRV, querying the nameservers");
    assert!(admitted < 1200, "{admitted} admitted");
    assert!(dns.asked().iter().all(|n| n.ends_with(".exfil.test")));
    assert!(records(&log).iter().all(|r| r.target.len() <= 253));
    crate::governance::assert_chain(&log);
}

/// With `resolve-wildcards = false`, a name a wildcard grant allows but
/// the plugin made up never reaches a nameserver; the refusal names the
/// setting.
#[tokio::test]
async fn made_up_names_under_a_wildcard_can_be_kept_from_the_nameservers() {
    let dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(false);
    let mut h = hostile();
    h.grants.network = vec!["https://*.exfil.test:443".into()];
    let (mut c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", h), dir.path());
    c.host.dns_servers = vec![dns.addr];
    c.host.resolve_wildcards = Some(false);
    let host = Host::new(c).await.unwrap();
    let input = json!({"n": 20, "suffix": "exfil.test"});
    let out = host.call("hostile.lookup-many", input).await.unwrap();
    assert_eq!(out["refused"], 20, "{out}");
    host.shutdown().await;
    assert!(dns.asked().is_empty(), "{:?}", dns.asked());
    assert!(records(&log)
        .iter()
        .any(|r| r.effect == "lookup" && r.reason.contains("resolve-wildcards = false")));
}

/// A plugin that keeps hundreds of lookups of names that never answer
/// waits on its own few lookup slots and its own resolver: a neighbour's
/// lookups, HTTP requests and file reads go on as they do alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_flood_does_not_hold_a_neighbours_requests_or_files() {
    let (dir, rw) = scratch();
    let silent = DnsServer::start(true);
    let server = TestServer::start();
    let mut flood = hostile();
    flood.max_instances = 4;
    flood.limits.request_timeout_ms = Some(3000);
    flood.limits.timeout_ms = Some(60_000);
    flood.grants.network = vec!["https://*.void.test:443".into()];
    let mut http = PluginConfig::new(component("http"));
    http.grants.network = vec![server.url("")];
    let mut files = PluginConfig::new(component("files"));
    files.grants.dirs = vec![DirGrant {
        host: rw.clone(),
        guest: "/rw".into(),
        mode: DirMode::ReadOnly,
    }];
    let c = config(Path::new("."))
        .with_plugin("hostile", flood)
        .with_plugin("http", http)
        .with_plugin("files", files);
    let (mut c, _log) = with_audit(c, dir.path());
    c.host.dns_servers = vec![silent.addr];
    let host = Host::new(c).await.unwrap();
    let honest = |host: Host| {
        let url = server.url("/tiny");
        async move {
            let started = Instant::now();
            let r = host
                .call("http.request", json!({"url": url}))
                .await
                .unwrap();
            assert_eq!(r["status"], 200);
            let f = host
                .call("files.read", json!({"path": "/rw/f"}))
                .await
                .unwrap();
            assert_eq!(f["text"], "x");
            started.elapsed()
        }
    };
    let mut alone = Duration::ZERO;
    for _ in 0..20 {
        alone = alone.max(honest(host.clone()).await);
    }
    let floods: Vec<_> = (0..4)
        .map(|i| {
            let host = host.clone();
            let input = json!({"n": 200, "suffix": format!("f{i}.void.test")});
            tokio::spawn(async move { host.call("hostile.lookup-many", input).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut during = Duration::ZERO;
    for _ in 0..20 {
        during = during.max(honest(host.clone()).await);
    }
    assert!(
        !silent.asked().is_empty(),
        "the flood's queries never went out"
    );
    // The flood's lookups each wait up to 3 s on the silent server; the
    // neighbour's slowest pair of calls stays within a small multiple of
    // its slowest alone, far below what waiting behind one lookup costs
    // (the slack is for other tests sharing the machine).
    assert!(
        during < alone * 4 + Duration::from_secs(1),
        "alone {alone:?}, during the flood {during:?}"
    );
    for f in floods {
        f.abort();
    }
    drop(dir);
}

/// The engine has no garbage-collected types, exceptions or shared
/// memories: a component whose code needs one is refused at load with an
/// error that names what it needs, and the host serves the others.
#[tokio::test]
async fn a_component_that_needs_gc_or_threads_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("gc", "(core module (type $s (struct (field i32))) (func (result (ref null $s)) ref.null $s))"),
        ("exceptions", "(core module (tag $e) (func throw $e))"),
        ("threads", "(core module (memory 1 1 shared))"),
    ];
    let mut c = config(Path::new(".")).with_plugin("hostile", hostile());
    for (name, module) in cases {
        let bytes = wat::parse_str(format!("(component {module})")).unwrap();
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        c = c.with_plugin(name, PluginConfig::new(&path));
    }
    let host = Host::new(c).await.expect("the others load");
    let refused = host.refused_plugins();
    assert_eq!(refused.len(), cases.len(), "{refused:?}");
    for (name, why) in refused {
        let why = why.to_lowercase();
        let named = match name.as_str() {
            "gc" => why.contains("gc") || why.contains("garbage") || why.contains("reference"),
            "exceptions" => why.contains("exception"),
            _ => why.contains("thread") || why.contains("shared"),
        };
        assert!(named, "{name}: {why}");
    }
    assert!(host.call("hostile.count", json!({})).await.is_ok());
}

/// Shutdown releases every plugin's remote state at once and within
/// [`warden::SHUTDOWN_BUDGET`]: a plugin whose release is slow cannot add
/// its time limit to every exit (a CLI call's included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_release_cannot_hold_shutdown_past_its_budget() {
    let mut h = hostile();
    h.limits.timeout_ms = Some(30_000);
    let host = host_with("hostile", h).await;
    let out = host
        .call("hostile.slow-release", json!({"arg": 20_000}))
        .await;
    assert_eq!(out.unwrap()["left"], 20_000);
    let started = Instant::now();
    host.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < warden::SHUTDOWN_BUDGET + Duration::from_secs(2),
        "shutdown took {took:?}"
    );
}

/// The audit log's volume over time is bounded per plugin and per client
/// (`[audit] max-records-per-minute`): past it, a plugin's allowed effects
/// are refused and a client's calls refused, nothing is written one by
/// one, and one summary counts exactly what was not written. Another
/// client is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_volume_is_bounded_per_plugin_and_per_client_and_summarized() {
    let (dir, rw) = scratch();
    let mut h = hostile_in(&rw);
    h.limits.max_files = Some(1000);
    let (mut c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", h), dir.path());
    if let Some(a) = c.audit.as_mut() {
        a.max_records_per_minute = Some(50);
    }
    let host = Host::new(c).await.unwrap();
    // Each call stops at its first refused open.
    let (mut opened, mut stopped) = (0, 0);
    for _ in 0..3 {
        let out = host
            .call("hostile.open-many", json!({"path": "/rw/f", "n": 30}))
            .await
            .unwrap();
        opened += out["opened"].as_u64().unwrap();
        stopped += u64::from(out.get("error").is_some());
        host.call("hostile.release", json!({})).await.unwrap();
    }
    assert!(
        opened < 90 && stopped > 0,
        "every open went through: {opened}"
    );
    // A client past its budget is refused; another is not.
    let ctx = |client| warden::CallContext {
        client: Some(client),
        ..Default::default()
    };
    let mut refused = 0;
    for _ in 0..40 {
        let r = host
            .call_with("hostile.count", json!({}), &ctx("greedy"))
            .await;
        if matches!(r, Err(Error::RateLimited { .. })) {
            refused += 1;
        }
    }
    assert!(refused > 0, "the client was never refused");
    assert!(host
        .call_with("hostile.count", json!({}), &ctx("modest"))
        .await
        .is_ok());
    host.shutdown().await;
    let all = records(&log);
    let file_opens = all
        .iter()
        .filter(|r| r.effect == "file" && r.decision == "allow")
        .count();
    assert!(file_opens <= 50, "{file_opens} written");
    let summaries: Vec<_> = all
        .iter()
        .filter(|r| r.effect == "limit" && r.reason.contains("max-records-per-minute"))
        .collect();
    let plugin = summaries
        .iter()
        .find(|r| r.plugin == "hostile")
        .expect("a plugin summary");
    assert!(
        plugin
            .reason
            .contains(&format!("{stopped} effects or calls refused")),
        "{}",
        plugin.reason
    );
    let client = summaries
        .iter()
        .find(|r| r.client.as_deref() == Some("greedy"))
        .expect("a client summary");
    assert!(
        client
            .reason
            .contains(&format!("{refused} effects or calls refused")),
        "{}",
        client.reason
    );
    crate::governance::assert_chain(&log);
}

/// A host loaded for one call (`warden call`) waits only for the source
/// that serves it: a sibling source that never answers does not hold the
/// call for its plugin's time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_does_not_wait_for_a_sibling_source_that_hangs() {
    use crate::mcp::{mcp_config, Server};
    let good = McpServer::start(&[]);
    let port = warden_test_support::http_server::silent_port();
    let servers = [Server::of("good", &good), Server::at("hang", port)];
    let mut c = mcp_config(&servers, Default::default());
    if let Some(p) = c.plugins.get_mut("mcp") {
        p.limits.timeout_ms = Some(15_000);
        p.limits.request_timeout_ms = Some(15_000);
    }
    let started = Instant::now();
    let host = Host::new_for_call(c, "mcp.good.echo").await.unwrap();
    let out = host
        .call("mcp.good.echo", json!({"text": "hi"}))
        .await
        .unwrap();
    assert!(out.to_string().contains("hi"), "{out}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "the call waited {took:?}");
    drop(host);
}

/// A peer that accepts TCP and never answers the TLS handshake holds the
/// request no longer than its connect time (`request-timeout-ms`), not the
/// call's time limit; the failure is recorded.
#[tokio::test]
async fn a_stalled_tls_handshake_ends_within_the_connect_time() {
    let port = warden_test_support::http_server::silent_port();
    let dir = tempfile::tempdir().unwrap();
    let mut h = hostile();
    h.grants.network = vec![format!("https://127.0.0.1:{port}")];
    h.limits.request_timeout_ms = Some(400);
    h.limits.timeout_ms = Some(30_000);
    let (c, log) = with_audit(config(Path::new(".")).with_plugin("hostile", h), dir.path());
    let host = Host::new(c).await.unwrap();
    for wasi in [true, false] {
        let input = json!({"url": format!("https://127.0.0.1:{port}/"), "method": "GET",
            "headers": [], "wasi": wasi});
        let err = host.call("hostile.request", input).await.unwrap_err();
        assert!(!matches!(err, Error::LimitExceeded { .. }), "{err}");
    }
    host.shutdown().await;
    let stalled = records(&log)
        .into_iter()
        .filter(|r| r.effect == "egress" && r.decision == "error")
        .filter(|r| r.reason.contains("TLS handshake not done within 400 ms"))
        .count();
    assert_eq!(stalled, 2, "through wasi:http and the SDK client");
}

//! Replicas sharing state: three `warden serve` processes with
//! `[cluster]` on one real Redis, behind a real load balancer (haproxy,
//! round-robin). A `calls-per-minute` rule counts across them, an
//! approval's `requestState` issued by one is accepted by another, once in
//! all, and a tool list changed on one reaches a listener on another. While Redis is down a `fail-closed` replica refuses what needs it
//! and a `fail-open` one decides alone; both share again once it is back.

use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use warden_test_support::cluster::{LoadBalancer, RedisServer};

/// One replica's configuration: the base one, a shared limit of 60 calls
/// a minute on `text.case`, `[cluster]` on `redis` with `mode`.
fn replica_config(dir: &std::path::Path, redis: &str, replica: &str, mode: &str) -> String {
    std::fs::write(
        dir.join("approval-key"),
        "one-key-for-every-replica-0123456789",
    )
    .unwrap();
    format!(
        "{}\n[[policy.rules]]\ncapability = \"text.case\"\ncalls-per-minute = 60\n\n\
         [secrets.APPROVAL_KEY]\nfile = \"approval-key\"\n\n\
         [cluster]\nredis = \"{redis}\"\ntimeout-ms = 300\non-unreachable = \"{mode}\"\n\n\
         [serve]\nreplica-id = \"{replica}\"\napproval-key-secret = \"APPROVAL_KEY\"\n",
        base_config(dir)
    )
}

/// Replicas `r0`, `r1`, ... on `redis`, one per `on-unreachable` mode,
/// each in a folder of its own.
fn start_replicas(redis: &RedisServer, modes: &[&str]) -> (Vec<tempfile::TempDir>, Vec<Serve>) {
    let dirs: Vec<tempfile::TempDir> = modes.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas = dirs
        .iter()
        .zip(modes)
        .enumerate()
        .map(|(i, (d, mode))| {
            let config = replica_config(d.path(), &redis.url(), &format!("r{i}"), mode);
            Serve::start(d.path(), &config, &[])
        })
        .collect();
    (dirs, replicas)
}

/// Asks `port` to call `text.stats` (its rule says `approve`) as a client
/// that can ask its user: the `requestState` of the question.
fn ask(port: u16) -> String {
    let (_, m) = modern(
        port,
        1,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a b"},
        "_meta": {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}}),
        &[],
    );
    assert_eq!(m["result"]["resultType"], "input_required", "{m}");
    m["result"]["requestState"].as_str().unwrap().to_string()
}

/// Sends the user's yes with `state` to `port`: the result, or the error.
fn approve(port: u16, state: &str) -> Result<Value, String> {
    let (_, m) = modern(
        port,
        2,
        "tools/call",
        json!({"name": "text.stats", "arguments": {"text": "a b"}, "requestState": state,
        "inputResponses": {"warden-approval": {"action": "accept", "content": {"approve": true}}}}),
        &[],
    );
    match m.get("error") {
        Some(e) => Err(e["message"].as_str().unwrap_or("").to_string()),
        None => Ok(m["result"].clone()),
    }
}

/// One `text.case` call to the server on `port`: `Ok` with the result, or
/// the refusal's kind and text.
fn case(port: u16, id: u64) -> Result<Value, (String, String)> {
    let (status, m) = modern(
        port,
        id,
        "tools/call",
        json!({"name": "text.case", "arguments": {"text": "shared", "to": "upper"}}),
        &[],
    );
    assert_eq!(status, 200, "{m}");
    let result = &m["result"];
    if result["isError"] == false {
        return Ok(result.clone());
    }
    let kind = result["_meta"]["dev.warden/error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    Err((kind, result["content"][0]["text"].to_string()))
}

/// A 2026-07-28 `subscriptions/listen` stream for tool list changes on
/// `port`, once acknowledged.
fn listen(port: u16) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(listen_request(port).as_bytes()).unwrap();
    assert!(read_until(&mut s, "acknowledged"), "the listen stream");
    s
}

/// Reads `s` until `needle` arrives (true), or 20 s or the stream end.
fn read_until(s: &mut std::net::TcpStream, needle: &str) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
        if got.contains(needle) {
            return true;
        }
    }
    false
}

/// Admitted calls in one replica's audit log (end records that say `ok`).
fn ok_calls(dir: &std::path::Path) -> usize {
    audit(&dir.join("audit.jsonl"))
        .iter()
        .filter(|r| {
            r["effect"] == "call" && r["capability"] == "text.case" && r["decision"] == "ok"
        })
        .count()
}

#[test]
fn replicas_share_rate_limits_and_approvals_and_meet_redis_down_as_configured() {
    let mut redis = RedisServer::start();
    let modes = ["fail-closed", "fail-closed", "fail-open"];
    let (dirs, replicas) = start_replicas(&redis, &modes);
    let ports: Vec<u16> = replicas.iter().map(|s| s.port).collect();
    let balancer = LoadBalancer::round_robin(&ports);

    // 72 calls through the balancer: 60 in the minute, across all three.
    let outcomes: Vec<_> = (0..72).map(|n| case(balancer.port, n)).collect();
    let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(admitted, 60, "{:?}", outcomes.iter().find(|o| o.is_err()));
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(refused.0, "rate-limited", "{refused:?}");
        assert!(refused.1.contains("60 calls per minute"), "{refused:?}");
    }
    let per_replica: Vec<usize> = dirs.iter().map(|d| ok_calls(d.path())).collect();
    assert_eq!(per_replica.iter().sum::<usize>(), 60, "{per_replica:?}");
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "spread: {per_replica:?}"
    );

    // An approval asked on one replica is answered on another, and its
    // state is used up for all three.
    let state = ask(ports[0]);
    let result = approve(ports[1], &state).expect("the other replica accepts it");
    assert_eq!(result["isError"], false, "{result}");
    for port in [ports[0], ports[2]] {
        let again = approve(port, &state).expect_err("used once in all");
        assert!(again.contains("used already"), "{again}");
    }

    // A configuration change loaded by one replica reaches a listener
    // connected to another.
    let mut listener = listen(ports[0]);
    let config = std::fs::read_to_string(&replicas[1].config).unwrap();
    let narrower = config.replacen(
        "namespaces = [\"text\", \"json\"]",
        "namespaces = [\"text\"]",
        1,
    );
    assert_ne!(narrower, config);
    std::fs::write(&replicas[1].config, narrower).unwrap();
    let heard = read_until(&mut listener, "notifications/tools/list_changed");
    assert!(heard, "no list change reached replica r0");
    replicas[0].wait_for_log(
        "the tool list changed on another replica",
        Duration::from_secs(5),
    );

    let session = open_session(ports[0]);

    // Redis stops: the fail-closed replicas refuse, saying why; the
    // fail-open one counts alone (its own window is empty).
    redis.stop();
    for (i, port) in ports.iter().enumerate() {
        let outcome = case(*port, 100 + i as u64);
        if modes[i] == "fail-open" {
            assert!(outcome.is_ok(), "r{i}: {outcome:?}");
            continue;
        }
        let (kind, text) = outcome.expect_err("refused while Redis is down");
        assert_eq!(kind, "rate-limited", "r{i}: {text}");
        assert!(
            text.contains("fail-closed") && text.contains("did not answer"),
            "r{i}: {text}"
        );
    }
    for (i, r) in replicas.iter().enumerate() {
        r.wait_for_log("cluster: Redis does not answer", Duration::from_secs(10));
        assert!(!r.log().contains("panicked"), "r{i}: {}", r.log());
    }
    // An approval cannot be known unused: refused on a fail-closed replica,
    // accepted once on the fail-open one.
    let refused = approve(ports[0], &ask(ports[0])).expect_err("fail-closed");
    assert!(refused.contains("cannot be checked"), "{refused}");
    let state = ask(ports[2]);
    assert!(approve(ports[2], &state).is_ok());
    assert!(approve(ports[2], &state)
        .unwrap_err()
        .contains("used already"));
    // A session cannot be known open (fail-closed: 503), nor a new one
    // shared; the fail-open replica opens one of its own.
    let (status, m) = in_session(ports[0], &session, 7, "tools/list", json!({}));
    assert_eq!(status, 503, "{m}");
    assert!(
        m["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be checked"),
        "{m}"
    );
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let json_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let (status, _, text) = http(ports[0], "POST", &json_headers, &body.to_string());
    assert_eq!(status, 503, "{text}");
    open_session(ports[2]);
    // A call no shared limit covers does not need Redis.
    let (_, m) = modern(
        ports[0],
        200,
        "tools/call",
        json!({"name": "text.slugify", "arguments": {"text": "No Limit"}}),
        &[],
    );
    assert_eq!(m["result"]["isError"], false, "{m}");

    // Redis is back (empty): every replica shares again.
    redis.start_again();
    for (i, port) in ports.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match case(*port, 300 + i as u64) {
                Ok(_) => break,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "r{i} after Redis came back: {e:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        replicas[i].wait_for_log("cluster: Redis answers again", Duration::from_secs(10));
    }

    // Each replica's records name it; the three chains verify together,
    // every admitted call in one of them.
    drop(balancer);
    for mut r in replicas {
        assert!(r.signal_and_wait("TERM").success());
    }
    let logs: Vec<_> = dirs.iter().map(|d| d.path().join("audit.jsonl")).collect();
    for (i, log) in logs.iter().enumerate() {
        let records = audit(log);
        assert!(
            records.iter().all(|r| r["replica"] == format!("r{i}")),
            "r{i}"
        );
    }
    let out = std::process::Command::new(warden_bin())
        .args(["audit", "verify"])
        .args(&logs)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK: 3 chains, each intact"), "{text}");
    for i in 0..3 {
        assert!(text.contains(&format!("replica r{i}:")), "{text}");
    }
}

/// A 2025-11-25 request of session `session` through `port`: the status
/// and the JSON-RPC message (`Null` when the body holds none).
fn in_session(port: u16, session: &str, id: u64, method: &str, params: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2025-11-25"),
        ("Mcp-Session-Id", session),
    ];
    let (status, _, body) = http(port, "POST", &headers, &body);
    let message = serde_json::from_str(&body)
        .ok()
        .or_else(|| body.contains("data:").then(|| message(&body)))
        .unwrap_or(Value::Null);
    (status, message)
}

/// Opens a 2025-11-25 session on the server at `port`: its id.
fn open_session(port: u16) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "cluster-test", "version": "1"}}})
    .to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let (status, headers, body) = http(port, "POST", &headers, &body);
    assert_eq!(status, 200, "{body}");
    header(&headers, "mcp-session-id").unwrap().to_string()
}

#[test]
fn a_session_is_served_by_every_replica_and_outlives_the_one_that_opened_it() {
    let redis = RedisServer::start();
    let (dirs, mut replicas) = start_replicas(&redis, &["fail-closed"; 3]);
    let ports: Vec<u16> = replicas.iter().map(|s| s.port).collect();
    let balancer = LoadBalancer::round_robin(&ports);
    // Opened on r0; its requests then go round the three.
    let session = open_session(ports[0]);
    let call = |id: u64| {
        let args = json!({"name": "text.case", "arguments": {"text": "in session", "to": "upper"}});
        in_session(balancer.port, &session, id, "tools/call", args)
    };
    for id in 1..=9 {
        let (status, m) = call(id);
        assert_eq!(status, 200, "{m}");
        assert_eq!(
            m["result"]["structuredContent"]["text"], "IN SESSION",
            "{m}"
        );
    }
    let per_replica: Vec<usize> = dirs.iter().map(|d| ok_calls(d.path())).collect();
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "spread: {per_replica:?}"
    );
    // An id no replica opened is unknown on each.
    let (status, _) = in_session(
        ports[1],
        "0123456789abcdef0123456789abcdef",
        20,
        "tools/list",
        json!({}),
    );
    assert_eq!(status, 404);

    // The replica that opened it dies: the session goes on elsewhere.
    let mut opener = replicas.remove(0);
    opener.signal_and_wait("KILL");
    let failed = (30..50).filter(|id| call(*id).0 != 200).count();
    assert!(failed <= 1, "{failed} calls failed after the kill");
    assert!(
        dirs[1..].iter().map(|d| ok_calls(d.path())).sum::<usize>() >= 19,
        "the survivors served the calls after the kill"
    );

    // Ended on one replica (DELETE): gone on every one.
    let headers = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let (status, _, body) = http(ports[1], "DELETE", &headers, "");
    assert_eq!(status, 200, "{body}");
    let (status, m) = in_session(ports[2], &session, 60, "tools/list", json!({}));
    assert_eq!(status, 404, "{m}");
}

/// The official clients through the load balancer: the TypeScript v2
/// client (2026-07-28) is served by all three replicas, its approval asked
/// by one and answered to another; the Python SDK client's 2025-11-25
/// session goes on while a replica is killed under it, losing at most the
/// call in flight.
#[test]
fn the_official_clients_are_served_by_replicas_that_die_under_them() {
    use std::io::BufRead;
    let redis = RedisServer::start();
    let (dirs, mut replicas) = start_replicas(&redis, &["fail-closed"; 3]);
    let ports: Vec<u16> = replicas.iter().map(|s| s.port).collect();
    let balancer = LoadBalancer::round_robin(&ports);
    let url = format!("http://127.0.0.1:{}/mcp", balancer.port);

    let (ok, out, err) = crate::clients::node(&["cluster.mjs", &url, "12"]);
    assert!(ok, "{err}\n{out}");
    assert!(out.contains(r#""done":true"#), "{out}");
    let per_replica: Vec<usize> = dirs.iter().map(|d| ok_calls(d.path())).collect();
    assert!(
        per_replica.iter().all(|n| *n > 0),
        "spread: {per_replica:?}"
    );

    let mut client = std::process::Command::new(python())
        .arg(repo().join("tests/serve/client.py"))
        .args([
            "spread",
            "--mode",
            "legacy",
            "--url",
            &url,
            "--times",
            "40",
            "--pause-ms",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(client.stdout.take().unwrap()).lines();
    let mut reports = Vec::new();
    for line in lines.map_while(Result::ok) {
        let report: Value = serde_json::from_str(&line).unwrap_or_default();
        if report["call"] == 10 {
            replicas[0].signal_and_wait("KILL");
        }
        reports.push(report);
    }
    let status = client.wait().unwrap();
    assert!(status.success(), "{reports:?}");
    assert_eq!(reports[0]["version"], "2025-11-25", "{reports:?}");
    let calls: Vec<&Value> = reports.iter().filter(|r| r.get("call").is_some()).collect();
    assert_eq!(calls.len(), 40, "{reports:?}");
    let failed: Vec<&&Value> = calls.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.len() <= 1, "failed after the kill: {failed:?}");
    assert!(reports.last().unwrap()["done"] == true);
}

/// With tokens, a principal's requests in flight are counted across
/// replicas: two slow calls on two replicas fill `max-concurrent-per-client
/// = 2`, a third on either is refused (another principal is not), and the
/// places come back when the calls end.
#[test]
fn a_principals_requests_in_flight_are_counted_across_replicas() {
    let redis = RedisServer::start();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas: Vec<Serve> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let serve = format!("max-concurrent-per-client = 2\nreplica-id = \"r{i}\"");
            let config = format!(
                "{}\n[cluster]\nredis = \"{}\"\n",
                two_principals(d.path(), &serve),
                redis.url()
            );
            Serve::start(d.path(), &config, &[])
        })
        .collect();
    let (alice, bob) = (format!("Bearer {TOKEN_A}"), format!("Bearer {TOKEN_B}"));
    let call = move |port: u16, auth: String, name: &str, args: Value| {
        let params = json!({"name": name, "arguments": args});
        modern(
            port,
            1,
            "tools/call",
            params,
            &[("Authorization", auth.as_str())],
        )
    };
    let slow: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (port, auth) = (r.port, alice.clone());
            std::thread::spawn(move || call(port, auth, "hostile.sleep", json!({"arg": 3000})))
        })
        .collect();
    // Both slow calls are in flight (each replica counts one of its own);
    // a third on either replica finds no place.
    std::thread::sleep(Duration::from_millis(800));
    let (status, refused) = call(
        replicas[1].port,
        alice.clone(),
        "text.slugify",
        json!({"text": "x"}),
    );
    assert_eq!(status, 429, "{refused}");
    let text = refused.to_string();
    assert!(text.contains("across replicas"), "{text}");
    let (status, m) = call(replicas[0].port, bob, "text.slugify", json!({"text": "x"}));
    assert_eq!(
        (status, &m["result"]["isError"]),
        (200, &json!(false)),
        "{m}"
    );
    for s in slow {
        let (status, m) = s.join().unwrap();
        assert_eq!(status, 200, "{m}");
    }
    let (status, m) = call(
        replicas[0].port,
        alice,
        "text.slugify",
        json!({"text": "x"}),
    );
    assert_eq!(
        (status, &m["result"]["isError"]),
        (200, &json!(false)),
        "{m}"
    );
}

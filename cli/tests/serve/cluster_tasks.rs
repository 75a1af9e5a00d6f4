//! MCP Tasks across replicas: a task started on one replica is polled,
//! heard of and cancelled through the others, is its principal's alone on
//! every one, and is reported failed (saying why) once the replica running
//! it dies.

use crate::tasks::{declaring, listen_raw, task_request, with};
use crate::util::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use warden_test_support::cluster::RedisServer;

/// Replica `r{n}` with two principals (alice, bob) on `redis`, in `dir`.
fn replica(dir: &std::path::Path, redis: &RedisServer, n: usize) -> Serve {
    let config = format!(
        "{}\n[cluster]\nredis = \"{}\"\n",
        two_principals(dir, &format!("task-after-ms = 300\nreplica-id = \"r{n}\"")),
        redis.url()
    );
    Serve::start(dir, &config, &[])
}

/// Alice calls `hostile.sleep` for `ms` on `port`: the task's id.
fn start_sleep(port: u16, ms: u64) -> String {
    let params = with(
        json!({"name": "hostile.sleep", "arguments": {"arg": ms}}),
        declaring(),
    );
    let auth = format!("Bearer {TOKEN_A}");
    let (status, m) = modern(port, 1, "tools/call", params, &[("Authorization", &auth)]);
    assert_eq!(
        (status, m["result"]["resultType"].as_str()),
        (200, Some("task")),
        "{m}"
    );
    m["result"]["taskId"].as_str().unwrap().to_string()
}

/// `tasks/get` as alice on `port`: the task's view.
fn get(port: u16, task: &str) -> Value {
    let (status, m) = task_request(port, TOKEN_A, "tasks/get", task, true);
    assert_eq!(status, 200, "{m}");
    m["result"].clone()
}

/// Polls `task` on `port` until its status is `status` (20 s at most).
fn wait_status(port: u16, task: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = get(port, task);
        if view["status"] == status {
            return view;
        }
        assert!(Instant::now() < deadline, "still {view}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_task_is_served_by_every_replica_and_outlives_none() {
    let redis = RedisServer::start();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas: Vec<Serve> = dirs
        .iter()
        .enumerate()
        .map(|(n, d)| replica(d.path(), &redis, n))
        .collect();
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();

    // Started on r0: r1 sees it running, bob sees nothing there.
    let task = start_sleep(ports[0], 1500);
    assert_eq!(get(ports[1], &task)["status"], "working");
    let (_, m) = task_request(ports[1], TOKEN_B, "tasks/get", &task, true);
    assert_eq!(m["error"]["message"], "Task not found", "{m}");
    let (_, m) = task_request(ports[2], TOKEN_B, "tasks/cancel", &task, true);
    assert_eq!(m["error"]["message"], "Task not found", "{m}");

    // A listener on r2 hears it end, with its result; r1 then has it.
    let auth = format!("Bearer {TOKEN_A}");
    let listen = with(json!({"notifications": {"taskIds": [task]}}), declaring());
    let (status, _, body) = listen_raw(ports[2], &auth, listen);
    assert_eq!(status, 200, "{body}");
    let ended = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .rfind(|e| e["method"] == "notifications/tasks")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(ended["params"]["status"], "completed", "{body}");
    let view = get(ports[1], &task);
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(
        view["result"]["structuredContent"]["result"]["slept"], 1500,
        "{view}"
    );

    // Cancelled through r1, it stops on r0, and every replica says so.
    let long = start_sleep(ports[0], 60_000);
    let (status, m) = task_request(ports[1], TOKEN_A, "tasks/cancel", &long, true);
    assert_eq!(status, 200, "{m}");
    for port in &ports {
        wait_status(*port, &long, "cancelled");
    }
    let cancelled_on_r0 = || {
        audit(&dirs[0].path().join("audit.jsonl"))
            .iter()
            .any(|r| r["capability"] == "hostile.sleep" && r.to_string().contains("cancel"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cancelled_on_r0() {
        assert!(Instant::now() < deadline, "r0 did not stop the call");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The replica running a task dies: the others report it failed.
    let orphan = start_sleep(ports[1], 60_000);
    assert_eq!(get(ports[2], &orphan)["status"], "working");
    replicas.remove(1).signal_and_wait("KILL");
    let view = wait_status(ports[2], &orphan, "failed");
    let message = view["statusMessage"].as_str().unwrap_or("");
    assert!(message.contains("(r1) stopped"), "{view}");
    assert_eq!(view["error"]["message"], message, "{view}");
}

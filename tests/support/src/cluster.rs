//! What replicas are tested with: a real Redis (Debian's `redis-server`,
//! no persistence) that can be stopped and started again on its port, and
//! a real load balancer (Debian's `haproxy`, round-robin) in front of
//! replicas. Each runs under a shell that holds its stdin and stops it at
//! EOF, so that it ends with the test binary.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS: &str = "/usr/bin/redis-server";
const HAPROXY: &str = "/usr/sbin/haproxy";

/// A program under `sh`, stopped when its stdin closes.
pub(crate) fn supervised(program: &str, args: &[&str]) -> Child {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{program} {} & pid=$!; cat >/dev/null; kill $pid; wait $pid",
            quoted.join(" ")
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(crate::peer_stderr())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"))
}

pub(crate) fn stop(child: &mut Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Waits until `port` accepts connections (or not, with `up` false).
pub(crate) fn wait_port(port: u16, up: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() == up {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A Redis on 127.0.0.1.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Configuration beyond the defaults, as `redis-server` arguments.
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Started with `extra` configuration (e.g. `["--user", "NAME on >PASSWORD ~* +@all"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        assert!(
            Path::new(REDIS).exists(),
            "{REDIS} is missing: `cargo xtask test` installs Debian's redis-server"
        );
        let mut redis = RedisServer {
            child: None,
            port: crate::free_port(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        redis.start_again();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (its data goes with it) until [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
        assert!(wait_port(self.port, false), "Redis did not stop");
    }

    /// Starts it on the same port.
    pub fn start_again(&mut self) {
        let port = self.port.to_string();
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        self.child = Some(supervised(REDIS, &args));
        assert!(wait_port(self.port, true), "redis-server did not start");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

/// haproxy on 127.0.0.1, round-robin over HTTP servers on 127.0.0.1 that
/// answer `/readyz` (checked every 200 ms; one that does not is out).
pub struct LoadBalancer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl LoadBalancer {
    /// In front of the servers on `ports`, each request to the next (on a
    /// new connection to it: a killed server is noticed at once).
    pub fn round_robin(ports: &[u16]) -> LoadBalancer {
        Self::start(ports, "http-server-close")
    }

    /// The same, keeping connections to the servers alive (benchmarks).
    pub fn round_robin_kept_alive(ports: &[u16]) -> LoadBalancer {
        Self::start(ports, "http-keep-alive")
    }

    fn start(ports: &[u16], connections: &str) -> LoadBalancer {
        assert!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: `cargo xtask test` installs Debian's haproxy"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server r{i} 127.0.0.1:{p} check inter 200 fall 1 rise 1\n"))
            .collect();
        // Replicas are asked /readyz (with a Host they accept); a request
        // whose connection is refused goes to another.
        let config = format!(
            "global\n  maxconn 512\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  \
             timeout server 60s\n  option {connections}\n  retries 3\n  option redispatch\n\
             frontend mcp\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  option httpchk\n  \
             http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1\n  \
             http-check expect status 200\n{servers}"
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let child = supervised(HAPROXY, &["-db", "-f", file.to_str().unwrap()]);
        assert!(wait_port(port, true), "haproxy did not start");
        LoadBalancer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

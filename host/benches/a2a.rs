//! An A2A skill call through the whole path (host, policy, the session
//! pool, the `a2a` plugin, governed egress) against the same JSON-RPC
//! request written by hand on a kept-alive connection, on the same agent
//! (`tests/a2a/agent.py`, the official Python `a2a-sdk`), in one run. The
//! figure is the time Warden adds per call. Needs the components (`cargo
//! xtask build-guests`) and `.venv` (`cargo xtask python-env`).
//!
//! Run: `cargo bench -p warden --bench a2a`.

use criterion::Criterion;
use serde_json::{json, Value};
use warden::{Config, Host, PluginConfig};
use warden_test_support::a2a_agent::A2aAgent;
use warden_test_support::components::component;
use warden_test_support::interleave::{interleave, Contender};

struct Setup {
    rt: tokio::runtime::Runtime,
    host: Host,
    conn: std::cell::RefCell<Raw>,
    _agent: A2aAgent,
}

impl Setup {
    fn warden(&self) {
        let out = self
            .rt
            .block_on(self.host.call("a2a.agent.echo", json!({"text": "hi"})))
            .unwrap();
        assert_eq!(out["text"], "echo: hi");
    }

    /// The request the plugin sends, written by hand on one kept-alive
    /// connection.
    fn direct(&self) {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {
                "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}],
                            "metadata": {"skill": "echo"}},
                "configuration": {"returnImmediately": true},
            },
        })
        .to_string();
        let mut conn = self.conn.borrow_mut();
        let reply = conn.post(&body);
        let v: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(v["result"]["message"]["parts"][0]["text"], "echo: hi");
    }
}

/// A minimal HTTP/1.1 client: one connection, one request at a time.
struct Raw {
    stream: std::io::BufReader<std::net::TcpStream>,
    port: u16,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream: std::io::BufReader::new(stream),
            port,
        }
    }

    /// POSTs `body` to `/` and returns the response's body.
    fn post(&mut self, body: &str) -> Vec<u8> {
        use std::io::{BufRead, Read, Write};
        let request = format!(
            "POST / HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\na2a-version: 1.0\r\ncontent-length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut reply = vec![0; length];
        self.stream.read_exact(&mut reply).unwrap();
        reply
    }
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let agent = A2aAgent::start(&[]);
    let mut plugin = PluginConfig::new(component("a2a"));
    plugin.grants.network = vec![agent.url()];
    // Not streamed: the same single request as the direct client's.
    plugin.config = json!({"servers": {"agent": {"url": agent.url(), "streaming": false}}});
    let mut config = Config::new(".").with_plugin("a2a", plugin);
    config.host.no_cache = true;
    let host = rt.block_on(Host::new(config)).expect("host loads");
    Setup {
        rt,
        host,
        conn: std::cell::RefCell::new(Raw::connect(agent.port)),
        _agent: agent,
    }
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("A2A SendMessage, echo, on 127.0.0.1");
    group.bench_function("warden: a2a.agent.echo", |b| b.iter(|| s.warden()));
    group.bench_function("raw HTTP: the same request", |b| b.iter(|| s.direct()));
    group.finish();
    c.final_summary();
    let measured = interleave(
        "A2A echo: Warden against the same request by hand",
        30,
        100,
        &mut [
            Contender::new("raw HTTP: the same request", || s.direct()),
            Contender::new("warden: a2a.agent.echo", || s.warden()),
        ],
    );
    println!(
        "interleaved: Warden adds {:.0} µs per call",
        (measured[1].mean - measured[0].mean) * 1e6
    );
}

//! A `warden serve` process, a raw HTTP client, and the clients' scripts.

use crate::components::{component, target_dir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn warden_bin() -> &'static str {
    env!("CARGO_BIN_EXE_warden")
}

pub use warden_test_support::python;

/// The configuration most tests serve: text (a tight fuel budget), the
/// hostile guest (for its session counter), a deny rule and an approve
/// rule, and an audit log.
pub fn base_config(dir: &Path) -> String {
    format!(
        r#"
[plugins.text]
component = "{text}"
namespaces = ["text", "json"]
limits = {{ fuel = 50_000_000, timeout-ms = 2_000 }}

[plugins.hostile]
component = "{hostile}"

[[policy.rules]]
capability = "text.stats"
decision = "approve"

[[policy.rules]]
capability = "json.merge"
decision = "deny"
reason = "kept off in tests"

[audit]
path = "{audit}"
"#,
        text = component("text").display(),
        hostile = component("hostile").display(),
        audit = dir.join("audit.jsonl").display(),
    )
}

/// A running `warden serve --http`.
pub struct Serve {
    child: Option<Child>,
    pub url: String,
    pub port: u16,
    pub config: PathBuf,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Writes `config` to `dir/warden.toml` and serves it on a free port.
    pub fn start(dir: &Path, config: &str, extra: &[&str]) -> Serve {
        let path = dir.join("warden.toml");
        std::fs::write(&path, config).unwrap();
        Serve::start_file(&path, "127.0.0.1:0", extra)
    }

    pub fn start_file(config: &Path, addr: &str, extra: &[&str]) -> Serve {
        Serve::try_start_file(config, addr, extra)
            .unwrap_or_else(|log| panic!("warden serve did not start: {log}"))
    }

    /// [`start_file`](Self::start_file), or what it said when it did not
    /// start (e.g. the address was taken meanwhile).
    pub fn try_start_file(config: &Path, addr: &str, extra: &[&str]) -> Result<Serve, String> {
        let mut child = Command::new(warden_bin())
            .arg("--config")
            .arg(config)
            .args(["serve", "--http", addr])
            .args(extra)
            .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
            .env("RUST_LOG", "warn,warden_serve=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting warden serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("MCP at http://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or("").to_string());
                }
                if std::env::var_os("WARDEN_TEST_VERBOSE").is_some() {
                    eprintln!("serve: {line}");
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(stderr.lock().unwrap().join("\n"));
            }
        };
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Ok(Serve {
            child: Some(child),
            url: format!("http://{addr}/mcp"),
            port,
            config: config.to_path_buf(),
            stderr,
        })
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the server's log has a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (e.g. `TERM`) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        self.signal(signal);
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits up to `within` for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("warden serve did not exit:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection; returns the status, the
/// headers (lower-case names) and the body.
pub fn http(
    port: u16,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    http_at(port, method, "/mcp", headers, body)
}

/// [`http`] to `path`.
pub fn http_at(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    let has_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !has_host {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The JSON-RPC message of a JSON body or of the last SSE event.
pub fn message(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str(body) {
        return v;
    }
    let data = body
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or_else(|| panic!("no JSON in {body:?}"));
    serde_json::from_str(data.trim()).unwrap()
}

/// A 2026-07-28 request: body and headers.
pub fn modern(
    port: u16,
    id: u64,
    method: &str,
    params: Value,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut params = params;
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2026-07-28".into();
    if params["_meta"]
        .get("io.modelcontextprotocol/clientCapabilities")
        .is_none()
    {
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = serde_json::json!({});
    }
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        .to_string();
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", method),
    ];
    if method == "tools/call" {
        headers.push(("Mcp-Name", &name));
    }
    headers.extend_from_slice(extra);
    let (status, _, body) = http(port, "POST", &headers, &body);
    (status, message(&body))
}

/// The tools `warden serve` lists at `port` (2026-07-28).
pub fn tool_names(port: u16) -> Vec<String> {
    let (_, m) = modern(port, 1, "tools/list", serde_json::json!({}), &[]);
    m["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs the Python client script; returns its JSON report lines. Panics
/// with its stderr if it fails.
pub fn python_client(args: &[&str]) -> Vec<Value> {
    let out = Command::new(python())
        .arg(repo().join("tests/serve/client.py"))
        .args(args)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .output()
        .expect("running the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every audit record in `path`, after `warden audit verify` passed on it.
pub fn audit(path: &Path) -> Vec<Value> {
    let out = Command::new(warden_bin())
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub const TOKEN_A: &str = "token-for-alice-0123456789";
pub const TOKEN_B: &str = "token-for-bob-0123456789ab";

/// Two principals, `alice` and `bob`, and `serve` lines after `tokens`.
pub fn two_principals(dir: &std::path::Path, serve: &str) -> String {
    std::fs::write(dir.join("token-a"), TOKEN_A).unwrap();
    std::fs::write(dir.join("token-b"), TOKEN_B).unwrap();
    format!(
        "{}\n[secrets.A]\nfile = \"token-a\"\n[secrets.B]\nfile = \"token-b\"\n\
         [serve]\ntokens = [{{ secret = \"A\", principal = \"alice\" }}, {{ secret = \"B\", principal = \"bob\" }}]\n{serve}\n",
        base_config(dir)
    )
}

/// A whole 2026-07-28 `subscriptions/listen` request for tool list changes
/// to the server on `port`.
pub fn listen_request(port: u16) -> String {
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: subscriptions/listen\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `warden --config CONFIG ARGS…`: its stdout, after it succeeded.
pub fn warden_cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(warden_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("WARDEN_CACHE_DIR", target_dir().join("warden-test-cache"))
        .output()
        .expect("running warden");
    assert!(
        out.status.success(),
        "warden {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

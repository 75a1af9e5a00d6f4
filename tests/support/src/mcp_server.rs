//! A real MCP server for tests and benchmarks: `tests/mcp/server.py` on the
//! official Python SDK, run from the repository's `.venv` (`cargo xtask
//! test` or `cargo xtask python-env` creates it).

use crate::repo;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct McpServer {
    /// Which SDK serves.
    sdk: Sdk,
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The SDK a test server is built on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sdk {
    /// `tests/mcp/server.py` on the Python SDK `mcp` 2.3.
    Python,
    /// `tests/serve/ts-server.mjs` on the TypeScript SDK v2
    /// (`@modelcontextprotocol/server` 2.4), 2026-07-28 only.
    TypeScript,
    /// `tests/serve/tasks-server.mjs`: tools run as MCP Tasks, both the
    /// 2026-07-28 extension and 2025-11-25 core tasks.
    Tasks,
}

impl McpServer {
    /// Starts a server on a free port. `args`: `--json`, `--stateless`,
    /// `--token T`, `--era both|legacy|modern`. Without `--era` it speaks the
    /// 2025-era handshake only, like servers on older SDKs (sessions with ids;
    /// the client's 2026-07-28 probe is refused and it falls back).
    pub fn start(args: &[&str]) -> McpServer {
        Self::start_on(0, args)
    }

    /// Starts the TypeScript SDK v2 server (`--sse` to always stream);
    /// it serves 2026-07-28 only. Needs `tests/serve/node_modules` (`cargo
    /// xtask test` installs it).
    pub fn start_ts(args: &[&str]) -> McpServer {
        let modules = repo().join("tests/serve/node_modules/@modelcontextprotocol/server");
        assert!(
            modules.exists(),
            "{} is missing: run `cargo xtask test` (it runs npm ci in tests/serve)",
            modules.display()
        );
        Self::launch(
            Sdk::TypeScript,
            0,
            args.iter().map(|a| a.to_string()).collect(),
        )
    }

    /// Starts the task server (`tests/serve/tasks-server.mjs`, TypeScript
    /// SDK v2 plus `@modelcontextprotocol/ext-tasks`): tools `slow`
    /// (task-only), `sum` (task optional), `broken` and `ask`.
    pub fn start_tasks() -> McpServer {
        let modules = repo().join("tests/serve/node_modules/@modelcontextprotocol/ext-tasks");
        assert!(
            modules.exists(),
            "{} is missing: run `cargo xtask test` (it runs npm ci in tests/serve)",
            modules.display()
        );
        Self::launch(Sdk::Tasks, 0, Vec::new())
    }

    /// A port nothing listens on (for a server that is down).
    pub fn free_port() -> u16 {
        crate::free_port()
    }

    /// Starts a server on `port` (which must be free; 0 picks one).
    pub fn start_on(port: u16, args: &[&str]) -> McpServer {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if !args.iter().any(|a| a == "--era") {
            args.extend(["--era".to_string(), "legacy".to_string()]);
        }
        Self::launch(Sdk::Python, port, args)
    }

    fn launch(sdk: Sdk, port: u16, args: Vec<String>) -> McpServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = McpServer {
            sdk,
            child: None,
            port,
            args,
            log: dir.path().join("requests.log"),
            _dir: dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut command = match self.sdk {
                Sdk::Python => {
                    let mut c = Command::new(crate::python());
                    c.arg(repo().join("tests/mcp/server.py"));
                    c
                }
                Sdk::TypeScript | Sdk::Tasks => {
                    let script = if self.sdk == Sdk::Tasks {
                        "tests/serve/tasks-server.mjs"
                    } else {
                        "tests/serve/ts-server.mjs"
                    };
                    let mut c = Command::new("node");
                    c.arg(repo().join(script));
                    c
                }
            };
            let mut child = command
                .args(["--port", &self.port.to_string(), "--log"])
                .arg(&self.log)
                .args(&self.args)
                .stdout(Stdio::piped())
                .stderr(crate::peer_stderr())
                .spawn()
                .expect("starting the MCP test server");
            if let Some(port) = crate::announced_port(&mut child) {
                self.port = port;
                self.child = Some(child);
                return;
            }
            // The port may still be held by a server just stopped.
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "the MCP test server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server and starts a new process on the same port: every
    /// session it knew is gone.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Every HTTP request the server saw: (method, mcp-session-id or `-`).
    pub fn requests(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut fields = l.split(' ');
                Some((fields.next()?.to_string(), fields.next()?.to_string()))
            })
            .collect()
    }

    /// The `MCP-Protocol-Version` header of each request (`-` when absent).
    pub fn versions(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(2).map(str::to_string))
            .collect()
    }

    /// What its tools noted (`slow cancelled`, `slow finished`), in order.
    pub fn events(&self) -> Vec<String> {
        let mut path = self.log.clone().into_os_string();
        path.push(".events");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Session ids the server saw `DELETE`d.
    pub fn deleted(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|(m, _)| m == "DELETE")
            .map(|(_, s)| s)
            .collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

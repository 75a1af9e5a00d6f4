//! A real A2A agent for tests: `tests/a2a/agent.py` on the official Python
//! SDK (`a2a-sdk` 1.3.0), run from the repository's `.venv` (`cargo xtask
//! test` or `cargo xtask python-env` creates it), or its twin
//! `tests/a2a/agent.mjs` on the official JavaScript SDK (`@a2a-js/sdk`
//! 1.3.0, in `tests/a2a/node_modules`, which `cargo xtask test` installs).

use crate::repo;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct A2aAgent {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The SDK an agent is built on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sdk {
    /// `tests/a2a/agent.py` on `a2a-sdk` 1.3.0.
    Python,
    /// `tests/a2a/agent.mjs` on `@a2a-js/sdk` 1.3.0.
    JavaScript,
}

impl A2aAgent {
    /// Starts a Python agent on a free port. `args`: `--era both|0.3`,
    /// `--token T`, `--no-stream` (see `tests/a2a/agent.py`).
    pub fn start(args: &[&str]) -> A2aAgent {
        Self::start_on(Sdk::Python, args)
    }

    /// Starts an agent on `sdk` (the JavaScript one also takes `--era 1.0`).
    pub fn start_on(sdk: Sdk, args: &[&str]) -> A2aAgent {
        let mut command = match sdk {
            Sdk::Python => {
                let mut c = Command::new(crate::python());
                c.arg(repo().join("tests/a2a/agent.py"));
                c
            }
            Sdk::JavaScript => {
                let sdk = repo().join("tests/a2a/node_modules/@a2a-js/sdk");
                assert!(
                    sdk.exists(),
                    "{} is missing: run `cargo xtask test` (it runs npm ci in tests/a2a)",
                    sdk.display()
                );
                let mut c = Command::new("node");
                c.arg(repo().join("tests/a2a/agent.mjs"));
                c
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.log");
        let mut child = command
            .args(["--port", "0", "--log"])
            .arg(&log)
            .args(args)
            // The agent exits when this pipe closes: agents shared by a test
            // binary (in statics, never dropped) end with it.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(crate::peer_stderr())
            .spawn()
            .expect("starting the A2A test agent");
        let port = crate::announced_port(&mut child).expect("the A2A test agent did not start");
        A2aAgent {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// The agent's base URL (its card under `/.well-known/agent-card.json`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request it saw: `(path, A2A-Version, JSON-RPC method,
    /// authorization)`, `-` for what was absent.
    pub fn requests(&self) -> Vec<[String; 4]> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(4, ' ').map(str::to_string);
                Some([f.next()?, f.next()?, f.next()?, f.next()?])
            })
            .collect()
    }

    /// What its skills noted (`slow started`, `slow cancelled`), in order.
    pub fn events(&self) -> Vec<String> {
        let mut path = self.log.clone().into_os_string();
        path.push(".events");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for A2aAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

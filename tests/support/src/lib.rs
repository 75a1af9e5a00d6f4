//! What Warden's tests and benchmarks share (a dev-dependency, never
//! published): where the components `cargo xtask build-guests` builds are
//! (`components`), a small HTTP/1.1 server (`http_server`), a real MCP server
//! on the official SDKs (`mcp_server`), a real A2A agent (`a2a_agent`) and interleaved rounds for the
//! benchmarks' ratios (`interleave`), a real OCI registry (`registry`), and a
//! real Redis and load balancer for replicas (`cluster`).

pub mod a2a_agent;
pub mod cluster;
pub mod components;
pub mod dns;
pub mod http_server;
pub mod interleave;
pub mod mcp_server;
pub mod registry;

use std::path::{Path, PathBuf};

/// The repository's root (this crate is `tests/support`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's Python (`.venv`, made by `cargo xtask test` or `cargo
/// xtask python-env`).
pub fn python() -> PathBuf {
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask python-env` (or `cargo xtask test`)",
        p.display()
    );
    p
}

/// A port on 127.0.0.1 free a moment ago (0 picked by the system).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where a peer's stderr goes: this process's own with
/// `WARDEN_TEST_VERBOSE` set, nowhere otherwise.
pub fn peer_stderr() -> std::process::Stdio {
    if std::env::var_os("WARDEN_TEST_VERBOSE").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}

/// A file of the repository, by its path from the root.
pub fn repo_file(path: &str) -> PathBuf {
    repo().join(path)
}

/// The port a peer started with `--port 0` says it listens on: its first
/// line on stdout, `PORT <n>`; `None` if it said anything else.
pub(crate) fn announced_port(child: &mut std::process::Child) -> Option<u16> {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    line.trim().strip_prefix("PORT ")?.parse().ok()
}

//! The demo's parts that talk to real peers started for the occasion: an
//! MCP server (`tests/mcp/server.py`) and an A2A agent
//! (`tests/a2a/agent.py`), both on their official Python SDKs.

use crate::langs::ensure_python_env;
use crate::{demo_step, target_dir};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A peer started from `script` with `--port 0 --log LOG`, and its port.
fn start_peer(root: &Path, script: &str, log: &Path) -> Result<(Child, String)> {
    use std::io::{BufRead, BufReader};
    let python = ensure_python_env(root)?;
    let mut child = Command::new(&python)
        .arg(root.join(script))
        .args(["--port", "0", "--log"])
        .arg(log)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {script}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("peer stdout")?).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .with_context(|| format!("{script} did not start"))?
        .to_string();
    Ok((child, port))
}

/// The demo config `name` (under `examples/demo`) with the peer's port
/// filled in, written under `target/demo`.
fn demo_config(root: &Path, name: &str, port: &str) -> Result<PathBuf> {
    let template = std::fs::read_to_string(root.join("examples/demo").join(name))
        .with_context(|| format!("reading examples/demo/{name}"))?;
    let config = target_dir(root).join("demo").join(name);
    std::fs::write(&config, template.replace("@PORT@", port))?;
    Ok(config)
}

fn stop(mut peer: Child) {
    let _ = peer.kill();
    let _ = peer.wait();
}

/// An MCP server's tools through the `mcp` plugin.
pub(crate) fn mcp_demo(root: &Path, warden: &Path) -> Result<()> {
    let dir = target_dir(root).join("demo");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("mcp-requests.log");
    let _ = std::fs::remove_file(&log);
    let (server, port) = start_peer(root, "tests/mcp/server.py", &log)?;
    let config = demo_config(root, "mcp.toml", &port)?;
    let run = |title: &str, args: &[&str]| {
        demo_step(warden, &config, "target/demo/mcp.toml", title, args, &[])
    };
    let result = (|| -> Result<()> {
        run(
            "An MCP server's tools as capabilities (server on 127.0.0.1, official Python SDK; a deny filter hides one tool)",
            &["list"],
        )?;
        run(
            "A tool call through governed egress (the client spoke MCP 2026-07-28 first: stateless, no session)",
            &["call", "mcp.demo.add", r#"{"a":1,"b":2}"#],
        )?;
        run(
            "Input is checked against the schema converted from the tool's JSON Schema (exit 4)",
            &["call", "mcp.demo.add", r#"{"a":"one","b":2}"#],
        )?;
        run(
            "A tool error is a typed upstream error (exit 4)",
            &["call", "mcp.demo.fail", r#"{"message":"the tool said no"}"#],
        )?;
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        let count = |m: &str| seen.lines().filter(|l| l.starts_with(m)).count();
        println!(
            "(the server saw {} POST and {} DELETE requests: it speaks MCP 2026-07-28, which the client tried first, so there were no sessions to close)",
            count("POST "),
            count("DELETE ")
        );
        Ok(())
    })();
    stop(server);
    result
}

/// An A2A agent's skills through the `a2a` plugin (`[providers] A2A = "a2a"`).
pub(crate) fn a2a_demo(root: &Path, warden: &Path) -> Result<()> {
    let dir = target_dir(root).join("demo");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("a2a-requests.log");
    let _ = std::fs::remove_file(&log);
    let (agent, port) = start_peer(root, "tests/a2a/agent.py", &log)?;
    let config = demo_config(root, "a2a.toml", &port)?;
    let run = |title: &str, args: &[&str]| {
        demo_step(warden, &config, "target/demo/a2a.toml", title, args, &[])
    };
    let result = (|| -> Result<()> {
        run(
            "An A2A agent's skills as capabilities (agent on 127.0.0.1, official Python a2a-sdk; its card at /.well-known/agent-card.json)",
            &["list"],
        )?;
        run(
            "A skill call over A2A 1.0 through governed egress: a task followed to its end, its artifact's parts kept apart",
            &["call", "a2a.analyst.data", r#"{"text":"the numbers, please"}"#],
        )?;
        run(
            "A task that waits for the user ends the call with an upstream error naming the task (exit 4)",
            &["call", "a2a.analyst.ask", r#"{"text":"hello"}"#],
        )?;
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        let methods: Vec<&str> = seen
            .lines()
            .filter_map(|l| l.split(' ').nth(2))
            .filter(|m| *m != "-")
            .collect();
        println!("(the agent saw: {})", methods.join(", "));
        Ok(())
    })();
    stop(agent);
    result
}

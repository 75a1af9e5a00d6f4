//! Guests in other languages, built with their own toolchains from registry
//! packages into ignored folders: Python with componentize-py (in `.venv`),
//! JavaScript with ComponentizeJS (npm, in the example's `node_modules`);
//! and the npm MCP peers the tests drive.

use crate::sys::{apt_install, check};
use crate::target_dir;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python package the MCP tests' server is built on.
const PYTHON_MCP: &str = "mcp==2.3.0";
/// The official A2A SDK the A2A tests' agents are built on (`tests/a2a/agent.py`).
const PYTHON_A2A: &str = "a2a-sdk[http-server]==1.3.0";

/// The Python packages the tests use, installed into `.venv/`: the MCP SDK
/// (for MCP servers and clients), the A2A SDK (for A2A agents),
/// componentize-py (for Python guests), jsonschema, cryptography, oras,
/// and the OTLP definitions with gRPC (the telemetry tests' receiver).
const PYTHON_PACKAGES: &[&str] = &[
    PYTHON_MCP,
    PYTHON_A2A,
    COMPONENTIZE_PY,
    JSONSCHEMA,
    CRYPTOGRAPHY,
    ORAS,
    OTLP_PROTO,
    GRPCIO,
];
/// The official OTLP protobuf definitions (`tests/serve/otlp_receiver.py`).
const OTLP_PROTO: &str = "opentelemetry-proto==1.45.2";
/// gRPC for the receiver's OTLP/gRPC side (the stubs ship with the above).
const GRPCIO: &str = "grpcio==1.85.4";
/// An OCI client independent of Warden's (`tests/sign/oras_cosign.py`).
const ORAS: &str = "oras==0.2.43";
/// Signs components as an implementation independent of Warden's
/// (`tests/sign/cosign_blob.py`).
const CRYPTOGRAPHY: &str = "cryptography==51.0.1";
/// Checks `docs/warden.schema.json` against real configurations (a CLI test).
const JSONSCHEMA: &str = "jsonschema==4.26.0";
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Python guests (a folder holding `app.py`, world `plugin` of `wit/`) and
/// the component file each becomes.
const PYTHON_GUESTS: &[(&str, &str)] = &[
    ("tests/guests/python-net", "python-net"),
    ("examples/python-plugin", "python-example"),
];

pub(crate) fn ensure_python_env(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin/python");
    let ready = || {
        let quiet = |c: &mut Command| {
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        quiet(Command::new(&python).args([
            "-c",
            "import mcp.server.mcpserver, uvicorn, jsonschema, a2a.server.routes, cryptography, oras.client, grpc, opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc",
        ])) && quiet(Command::new(venv.join("bin/componentize-py")).arg("--version"))
    };
    if ready() {
        return Ok(python);
    }
    pip_install(&venv, PYTHON_PACKAGES)?;
    if !ready() {
        bail!(
            "{} installed but `import mcp.server.mcpserver, a2a.server.routes` or `componentize-py --version` still fails",
            PYTHON_PACKAGES.join(", ")
        );
    }
    Ok(python)
}

/// Installs `packages` into the virtual environment `venv`, made first if
/// it is not there.
fn pip_install(venv: &Path, packages: &[&str]) -> Result<()> {
    let make_venv = || {
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(venv)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !venv.join("bin/python").exists() && !make_venv() {
        // Debian splits venv (and ensurepip) out of python3.
        apt_install(&["python3", "python3-venv"])
            .context("cannot create a Python virtual environment")?;
        if !make_venv() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    println!(
        "xtask: installing {} into {}",
        packages.join(", "),
        venv.display()
    );
    check(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages)
            .status()
            .context("running pip")?,
        "pip install",
    )
}

/// The checks of `deploy/` (`cli/tests/deploy.rs`): a Kubernetes schema
/// validator and a security linter, in a virtual environment of their own
/// (`.venv-deploy/`; checkov pins many packages of its own).
const DEPLOY_PACKAGES: &[&str] = &["kubernetes-validate==1.37.0", "checkov==3.3.30"];

/// Makes `.venv-deploy/` with [`DEPLOY_PACKAGES`] unless both answer.
pub(crate) fn ensure_deploy_tools(root: &Path) -> Result<()> {
    let venv = root.join(".venv-deploy");
    let answers = |tool: &str| {
        Command::new(venv.join("bin").join(tool))
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if answers("kubernetes-validate") && answers("checkov") {
        return Ok(());
    }
    pip_install(&venv, DEPLOY_PACKAGES)?;
    if !(answers("kubernetes-validate") && answers("checkov")) {
        bail!(
            "{} installed but do not answer --version",
            DEPLOY_PACKAGES.join(", ")
        );
    }
    Ok(())
}

/// The npm peers the tests drive: the MCP ones (the TypeScript SDK v2
/// client and server, MCP Inspector's CLI) from
/// `tests/serve/package-lock.json` into `tests/serve/node_modules/`, and
/// the A2A agent's SDK (`@a2a-js/sdk`) from `tests/a2a/package-lock.json`
/// into `tests/a2a/node_modules/`.
pub(crate) fn ensure_node_clients(root: &Path) -> Result<()> {
    npm_ci(&root.join("tests/serve"), "the npm MCP peers")?;
    npm_ci(&root.join("tests/a2a"), "the npm A2A SDK")
}

/// Builds each Python guest with componentize-py into `target/components/`,
/// unless its component is newer than its sources and the WIT.
pub(crate) fn build_python_guests(root: &Path) -> Result<Vec<PathBuf>> {
    ensure_python_env(root)?;
    let componentize = root.join(".venv/bin/componentize-py");
    let out_dir = target_dir(root).join("components");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut built = Vec::new();
    for (dir, name) in PYTHON_GUESTS {
        let src = root.join(dir);
        let out = out_dir.join(format!("{name}.wasm"));
        let sources = newest(&src)?.max(newest(&root.join("wit/plugin"))?);
        if modified(&out).is_none_or(|t| t < sources) {
            println!("xtask: building {dir} with {COMPONENTIZE_PY} (about 15 s)");
            check(
                Command::new(&componentize)
                    .current_dir(root)
                    .args([
                        "-d",
                        "wit/plugin",
                        "-w",
                        "plugin",
                        "componentize",
                        "app",
                        "-p",
                    ])
                    .arg(&src)
                    .arg("-o")
                    .arg(&out)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .context("running componentize-py")?,
                "componentize-py",
            )?;
        }
        built.push(out);
    }
    Ok(built)
}

/// The JavaScript guests: (directory, component name). Each has a
/// `package-lock.json` and a `build.mjs` that writes the component.
const JS_GUESTS: &[(&str, &str)] = &[("examples/js-plugin", "js-example")];

/// Builds the JavaScript guests with ComponentizeJS from npm (installed by
/// `npm ci` into each one's ignored `node_modules/`), when their sources
/// changed.
pub(crate) fn build_js_guests(root: &Path) -> Result<Vec<PathBuf>> {
    let out_dir = target_dir(root).join("components");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut built = Vec::new();
    for (dir, name) in JS_GUESTS {
        let src = root.join(dir);
        npm_ci(&src, "ComponentizeJS")?;
        let out = out_dir.join(format!("{name}.wasm"));
        let sources = newest(&src)?
            .max(newest(&src.join("wit"))?)
            .max(newest(&root.join("wit/plugin"))?);
        if modified(&out).is_some_and(|t| t >= sources) {
            built.push(out);
            continue;
        }
        println!("xtask: building {dir} with ComponentizeJS (about 20 s)");
        check(
            Command::new("node")
                .arg(src.join("build.mjs"))
                .arg(&out)
                .current_dir(&src)
                .status()
                .context("running node")?,
            "node build.mjs",
        )?;
        built.push(out);
    }
    Ok(built)
}

/// When the newest source file directly in `dir` was modified (a built
/// `.wasm` there is an output, not a source).
fn newest(dir: &Path) -> Result<std::time::SystemTime> {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && entry.path().extension().is_none_or(|e| e != "wasm") {
            newest = newest.max(meta.modified()?);
        }
    }
    Ok(newest)
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// `npm ci` in `dir` unless its `node_modules` is as new as its lock; node
/// and npm come from Debian's packages when missing.
fn npm_ci(dir: &Path, what: &str) -> Result<()> {
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules/.package-lock.json");
    if modified(&stamp).is_some_and(|s| modified(&lock).is_some_and(|l| s >= l)) {
        return Ok(());
    }
    let has_npm = Command::new("npm")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_npm {
        apt_install(&["nodejs", "npm"]).with_context(|| format!("{what} needs node and npm"))?;
    }
    println!(
        "xtask: installing {what} from npm into {}",
        dir.join("node_modules").display()
    );
    check(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
            .context("running npm")?,
        "npm ci",
    )
}

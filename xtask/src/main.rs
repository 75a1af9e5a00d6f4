//! Repository tasks: `cargo xtask <task>`.
//!
//! - `bindings [--check]`: generates the guests' WIT bindings into their
//!   crates (committed source; see `bindings.rs`), or checks they are current.
//! - `build-guests`: builds every plugin and test guest (Rust, WAT and, with
//!   componentize-py in `.venv/`, Python) into a component under
//!   `target/components/`, with rustup's `wasm32-wasip2` target where it is
//!   installed and otherwise with Debian's `rustc-web` + `rust-web-src`
//!   (`-Zbuild-std` for `wasm32-unknown-unknown`, then `wit-component`).
//! - `demo`: builds everything and runs the demo on `examples/demo/warden.toml`.
//! - `links`: checks the relative links of README.md, ARCHITECTURE.md and
//!   docs/*.md (files and `#anchors`) and README.md's length (see `links.rs`).
//! - `test`: checks the bindings, the formatting, the docs' links and the
//!   supply chain (`cargo deny check bans sources licenses`), builds
//!   everything and runs the whole test suite.

mod bindings;
mod demo_peers;
mod demo_registry;
mod langs;
mod links;
mod sys;
mod toolchain;

use anyhow::{bail, Context, Result};
use langs::{
    build_js_guests, build_python_guests, ensure_deploy_tools, ensure_node_clients,
    ensure_python_env,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use sys::{check, host_cargo, Manifest};
use toolchain::Toolchain;

/// Guest crates of this workspace and the component file each becomes.
const GUESTS: &[(&str, &str)] = &[
    ("warden-plugin-text", "text"),
    ("warden-plugin-files", "files"),
    ("warden-plugin-http", "http"),
    ("warden-plugin-mcp", "mcp"),
    ("warden-plugin-a2a", "a2a"),
    ("guest-hostile", "hostile"),
    ("guest-wrong-world", "wrong-world"),
];

/// Plugin crates outside the workspace, set up as a third-party author's
/// would be (their own manifest and lock file, `cargo build --release`), and
/// the component file each becomes.
const STANDALONE: &[(&str, &str)] = &[("examples/hello-plugin", "hello")];

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("bindings") => match args.get(1).map(String::as_str) {
            None => bindings::run(&root, false),
            Some("--check") => bindings::run(&root, true),
            Some(other) => {
                bail!("unknown argument `{other}` to `bindings` (want `--check` or nothing)")
            }
        },
        Some("build-guests") => {
            build_guests(&root)?;
            build_python_guests(&root)?;
            build_js_guests(&root).map(|_| ())
        }
        Some("build-plugin") => build_plugin_task(&args[1..]),
        Some("demo") => demo(&root),
        Some("links") => links::run(&root),
        Some("python-env") => ensure_python_env(&root).map(|_| ()),
        Some("deploy-tools") => ensure_deploy_tools(&root),
        Some("test") => test(&root, &args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 bindings       regenerate the guests' WIT bindings (--check: fail if stale)\n  \
                 build-guests   build every plugin and test guest into target/components/\n  \
                 build-plugin DIR [--out FILE]\n                 \
                 build the plugin crate in DIR (anywhere) into a component\n  \
                 python-env     create .venv/ with the MCP Python SDK and componentize-py (for the tests)\n  \
                 deploy-tools   create .venv-deploy/ with kubernetes-validate and checkov (deploy/'s tests)\n  \
                 demo           build everything and run the demo (examples/demo/warden.toml)\n  \
                 links          check the relative links of README.md, ARCHITECTURE.md and docs/*.md\n                 \
                 (files and #anchors) and that README.md has at most 300 lines\n  \
                 test [ARGS]    check the bindings, formatting, docs' links, clippy and supply chain, build\n                 \
                 everything and run the whole test suite (ARGS go to cargo test)"
            );
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}` (try `cargo xtask help`)"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn build_guests(root: &Path) -> Result<Vec<PathBuf>> {
    let target = target_dir(root);
    let out_dir = target.join("components");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let toolchain = Toolchain::detect(root)?;
    let mut args = vec!["--profile", "guest"];
    for (package, _) in GUESTS {
        args.extend(["-p", package]);
    }
    toolchain.build(root, &target, &args, "guest build")?;
    let mut built = Vec::new();
    for (package, name) in GUESTS {
        let artifact = target
            .join(toolchain.triple())
            .join("guest")
            .join(format!("{}.wasm", package.replace('-', "_")));
        built.push(write_component(
            &out_dir,
            name,
            &toolchain.component(&artifact)?,
        )?);
    }
    for (dir, name) in STANDALONE {
        let component = build_plugin(&toolchain, &root.join(dir), &target)?;
        built.push(write_component(&out_dir, name, &component)?);
    }
    for name in ["table-bomb", "memory-bomb"] {
        built.push(build_wat_guest(
            root,
            &out_dir,
            &format!("tests/guests/{name}.wat"),
            name,
        )?);
    }
    println!("xtask: {} components in {}", built.len(), out_dir.display());
    Ok(built)
}

/// Builds the plugin crate in `dir` (a `cdylib`, anywhere: it need not be
/// part of this workspace) with `cargo build --release` for the guest
/// target, artifacts under `target`, and returns its component.
fn build_plugin(toolchain: &Toolchain, dir: &Path, target: &Path) -> Result<Vec<u8>> {
    let manifest = Manifest::read(dir)?;
    let package = manifest
        .str(&["package", "name"])
        .with_context(|| format!("{} has no [package] name", manifest.path.display()))?;
    let lib = manifest
        .str(&["lib", "name"])
        .map(str::to_string)
        .unwrap_or_else(|| package.replace('-', "_"));
    toolchain.build(
        dir,
        target,
        &["--release"],
        &format!("building {}", dir.display()),
    )?;
    let artifact = target
        .join(toolchain.triple())
        .join("release")
        .join(format!("{lib}.wasm"));
    if !artifact.exists() {
        bail!(
            "{} built no {} (is it a library with `crate-type = [\"cdylib\"]`?)",
            dir.display(),
            artifact.display()
        );
    }
    toolchain.component(&artifact)
}

/// `cargo xtask build-plugin DIR [--out FILE]`.
fn build_plugin_task(args: &[String]) -> Result<()> {
    let mut dir = None;
    let mut out = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--out" | "-o" => out = Some(PathBuf::from(rest.next().context("--out needs a file")?)),
            a if a.starts_with('-') => bail!("unknown option `{a}` to `build-plugin`"),
            a if dir.is_none() => dir = Some(PathBuf::from(a)),
            a => bail!("unexpected argument `{a}` to `build-plugin` (one crate directory)"),
        }
    }
    let dir = dir.context("usage: cargo xtask build-plugin DIR [--out FILE]")?;
    let dir = std::fs::canonicalize(&dir)
        .with_context(|| format!("no plugin crate at {}", dir.display()))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let toolchain = Toolchain::detect(&workspace_root())?;
    let component = build_plugin(&toolchain, &dir, &target)?;
    let out = out.unwrap_or_else(|| {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        target.join(format!(
            "{}.component.wasm",
            name.as_deref().unwrap_or("plugin")
        ))
    });
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("xtask: component written to {}", out.display());
    Ok(())
}

/// A guest written in WebAssembly text: the `warden:provider/plugin` world
/// is embedded and the module encoded as a component.
fn build_wat_guest(root: &Path, out_dir: &Path, source: &str, name: &str) -> Result<PathBuf> {
    let path = root.join(source);
    let mut module =
        wat::parse_file(&path).with_context(|| format!("parsing {}", path.display()))?;
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(root.join("wit")).context("reading wit/")?;
    let world = resolve
        .select_world(&[pkg], Some("plugin"))
        .context("world warden:provider/plugin")?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
        .with_context(|| format!("componentizing {}", path.display()))?;
    write_component(out_dir, name, &component)
}

/// Writes `out_dir/<name>.wasm`, leaving an unchanged component alone so
/// caches keyed on it stay warm.
fn write_component(out_dir: &Path, name: &str, component: &[u8]) -> Result<PathBuf> {
    let dest = out_dir.join(format!("{name}.wasm"));
    if std::fs::read(&dest)
        .map(|old| old != component)
        .unwrap_or(true)
    {
        std::fs::write(&dest, component).with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(dest)
}

fn build_host(root: &Path) -> Result<PathBuf> {
    let status = host_cargo(root)
        .args(["build", "-p", "warden-cli", "--bin", "warden"])
        .status()?;
    check(status, "building warden")?;
    Ok(target_dir(root).join("debug").join("warden"))
}

fn demo(root: &Path) -> Result<()> {
    build_guests(root)?;
    build_python_guests(root)?;
    build_js_guests(root)?;
    let warden = build_host(root)?;
    let config = root.join("examples/demo/warden.toml");
    let cfg = config.to_str().context("non-UTF-8 path")?;
    let steps: &[(&str, &[&str])] = &[
        ("Every capability of every loaded plugin", &["list"]),
        ("A plugin's descriptors, grants and limits", &["inspect", "files"]),
        ("Successful calls", &["call", "text.case", r#"{"text":"warden keeps plugins honest","to":"title"}"#]),
        ("", &["call", "json.flatten", r#"{"value":{"mcp":{"requires-session":true,"server":{"url":"http://x"}}}}"#]),
        ("", &["call", "hello.greet", r#"{"name":"Ada"}"#]),
        ("", &["call", "files.read", r#"{"path":"/data/notes.txt"}"#]),
        (
            "Plugins in Python (componentize-py) and JavaScript (ComponentizeJS), same contract and grants",
            &["call", "pyexample.stats", r#"{"text":"written in Python,\nserved by Warden"}"#],
        ),
        ("", &["call", "jsexample.read", r#"{"path":"/data/notes.txt"}"#]),
        (
            "A JavaScript plugin's fetch without a network grant (exit 3)",
            &["call", "jsexample.fetch", r#"{"url":"http://127.0.0.1:9/"}"#],
        ),
        (
            "A runaway call: 100 million SHA-256 rounds, stopped by the plugin's fuel limit (exit 4)",
            &["call", "text.hash", r#"{"text":"x","rounds":100000000}"#],
        ),
        ("The next call to the same plugin succeeds", &["call", "text.hash", r#"{"text":"x","rounds":3}"#]),
        (
            "An effect denied for lack of a grant: /data is granted read-only (exit 3)",
            &["call", "files.write", r#"{"path":"/data/notes.txt","text":"overwritten"}"#],
        ),
        ("A path outside every grant (exit 3)", &["call", "files.read", r#"{"path":"/etc/passwd"}"#]),
        ("An unknown capability gets the nearest ids (exit 4)", &["call", "text.hsh", "{}"]),
        (
            "Input is checked against the capability's schema before the plugin runs (exit 4)",
            &["call", "text.case", r#"{"text":"x","to":"sideways"}"#],
        ),
        (
            "Schemas are RTFS type expressions; errors name the exact path",
            &["schema", "check", "[:map [:items [:vector [:map [:name :string]]]]]", r#"{"items":[{"name":"a"},{"name":7}]}"#],
        ),
    ];
    // The config names it relative to itself (`../../target/demo/`), so it
    // is under the checkout's `target/` whatever CARGO_TARGET_DIR says.
    let audit = root.join("target/demo/audit.jsonl");
    // A fresh log per demo run.
    let _ = std::fs::remove_file(&audit);
    let audit_arg = audit.to_str().context("non-UTF-8 path")?.to_string();
    let governance: &[(&str, &[&str])] = &[
        (
            "A call the policy refuses before the plugin runs (exit 3)",
            &["call", "json.merge", r#"{"a":{},"b":{}}"#],
        ),
        (
            "Every decision is in the hash-chained audit log",
            &["audit", "tail", "-n", "6"],
        ),
        ("", &["audit", "verify", &audit_arg]),
    ];
    for (title, args) in steps.iter().chain(governance) {
        demo_step(
            &warden,
            &config,
            "examples/demo/warden.toml",
            title,
            args,
            &[],
        )?;
    }
    http_demo(root, &warden)?;
    demo_peers::mcp_demo(root, &warden)?;
    demo_peers::a2a_demo(root, &warden)?;
    demo_registry::registry_demo(root, &warden)?;
    serve_demo(root, &warden, &config)?;
    println!("\n== The same host, embedded in a Rust program (examples/embed)");
    println!("$ cargo run -p embed-example -- examples/demo/warden.toml");
    let status = host_cargo(root)
        .args(["run", "--quiet", "-p", "embed-example", "--", cfg])
        .status()?;
    check(status, "the embedding example")
}

/// A tiny weather server for the demo: answers `/weather?city=X` and
/// remembers whether the request carried the demo's bearer token.
fn demo_server() -> Result<(
    u16,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
)> {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let token_seen = std::sync::Arc::new(AtomicBool::new(false));
    let (h, t) = (hits.clone(), token_seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            });
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if line
                    .to_ascii_lowercase()
                    .starts_with("authorization: bearer demo-token-")
                {
                    t.store(true, Ordering::SeqCst);
                }
            }
            let city = first
                .split("city=")
                .nth(1)
                .and_then(|c| c.split([' ', '&']).next())
                .unwrap_or("nowhere")
                .to_string();
            let body = format!(r#"{{"city":"{city}","temp":21.5}}"#);
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    Ok((port, hits, token_seen))
}

fn http_demo(root: &Path, warden: &Path) -> Result<()> {
    use std::sync::atomic::Ordering;
    let (port, hits, token_seen) = demo_server()?;
    let (other_port, other_hits, _) = demo_server()?;
    let template = std::fs::read_to_string(root.join("examples/demo/http.toml"))
        .context("reading examples/demo/http.toml")?;
    let dir = target_dir(root).join("demo");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("http.toml");
    std::fs::write(
        &config,
        template
            .replace("@OTHER_PORT@", &other_port.to_string())
            .replace("@PORT@", &port.to_string()),
    )?;
    let run = |title: &str, args: &[&str]| {
        demo_step(
            warden,
            &config,
            "target/demo/http.toml",
            title,
            args,
            &[("DEMO_TOKEN", "demo-token-7f3a")],
        )
    };
    run(
        "An :Http capability declared in config, served by plugins/http through governed egress (local server on 127.0.0.1)",
        &["call", "weather.now", r#"{"city":"Oslo"}"#],
    )?;
    println!(
        "(the server received the bearer token: {}; the plugin never saw it)",
        if token_seen.load(Ordering::SeqCst) {
            "yes"
        } else {
            "no"
        }
    );
    run(
        "A destination the plugin has no grant for (exit 3)",
        &["call", "weather.elsewhere", r#"{"city":"Oslo"}"#],
    )?;
    println!(
        "(requests that reached the granted server: {}; the ungranted one: {})",
        hits.load(Ordering::SeqCst),
        other_hits.load(Ordering::SeqCst)
    );
    Ok(())
}

/// The MCP part: a real MCP server (official Python SDK) whose tools become
/// capabilities served in sessions.
/// `warden serve` with an MCP client: the official Python SDK's client
/// (examples/agents/list_and_call.py) lists and calls Warden's tools.
fn serve_demo(root: &Path, warden: &Path, config: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let python = ensure_python_env(root)?;
    println!("\n== Warden as an MCP server: `warden serve --http` and an agent's MCP client (examples/agents)");
    println!("$ warden --config examples/demo/warden.toml serve --http 127.0.0.1:0 &");
    let mut server = Command::new(warden)
        .arg("--config")
        .arg(config)
        .args(["serve", "--http", "127.0.0.1:0", "--no-watch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting warden serve")?;
    let mut lines = BufReader::new(server.stderr.take().context("serve stderr")?).lines();
    let mut url = None;
    for line in lines.by_ref().map_while(std::result::Result::ok) {
        println!("{line}");
        if let Some(rest) = line.split("MCP at ").nth(1) {
            url = rest.split(' ').next().map(str::to_string);
            break;
        }
    }
    let result = (|| -> Result<()> {
        let url = url.context("warden serve did not start")?;
        println!("$ python examples/agents/list_and_call.py {url}");
        check(
            Command::new(&python)
                .arg(root.join("examples/agents/list_and_call.py"))
                .arg(&url)
                .status()?,
            "the MCP client",
        )
    })();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    for line in lines.map_while(std::result::Result::ok) {
        println!("{line}");
    }
    let _ = server.wait();
    result
}

/// One demo step: prints its title (if any) and the command as a user
/// would type it (`shown` is the config path to print), runs it, and prints
/// the exit code. Failing commands are part of the demo, not errors.
pub(crate) fn demo_step(
    warden: &Path,
    config: &Path,
    shown: &str,
    title: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<()> {
    if !title.is_empty() {
        println!("\n== {title}");
    }
    println!(
        "$ warden --config {shown} {}",
        args.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let status = Command::new(warden)
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(envs.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .status()
        .context("running warden")?;
    println!("(exit {})", status.code().unwrap_or(-1));
    Ok(())
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `cargo package -p warden-sdk`: the SDK builds from its own files alone,
/// as it would from crates.io (no path outside its crate).
fn package_sdk(root: &Path) -> Result<()> {
    println!("xtask: checking that warden-sdk packages and builds on its own");
    let status = host_cargo(root)
        .args(["package", "--quiet", "-p", "warden-sdk", "--allow-dirty"])
        .status()
        .context("running cargo package")?;
    check(status, "cargo package -p warden-sdk")
}

/// The version of `cargo-deny` the supply-chain check installs.
const CARGO_DENY: &str = "0.20.2";

/// `cargo deny check bans sources licenses` (deny.toml): one version of each
/// security-relevant crate, registry sources only, allowed licenses.
/// Installs `cargo-deny` from crates.io once where it is missing.
fn supply_chain(root: &Path) -> Result<()> {
    let installed = host_cargo(root)
        .args(["deny", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!("xtask: installing cargo-deny {CARGO_DENY} (a few minutes, once)");
        let status = host_cargo(root)
            .args(["install", "--locked", "--no-default-features", "cargo-deny"])
            .args(["--version", &format!("={CARGO_DENY}")])
            .status()
            .context("running cargo install cargo-deny")?;
        check(status, "cargo install cargo-deny")?;
    }
    let status = host_cargo(root)
        .args(["deny", "check", "bans", "sources", "licenses"])
        .status()
        .context("running cargo deny")?;
    check(status, "cargo deny check bans sources licenses")
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    bindings::run(root, true)?;
    let status = host_cargo(root)
        .args(["fmt", "--all", "--check"])
        .status()
        .context("running cargo fmt")?;
    check(status, "cargo fmt --all --check (run `cargo fmt --all`)")?;
    links::run(root)?;
    println!("xtask: cargo clippy --workspace --all-targets -- -D warnings");
    let status = host_cargo(root)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .status()
        .context("running cargo clippy")?;
    check(
        status,
        "cargo clippy (the workspace's [lints] and clippy.toml)",
    )?;
    supply_chain(root)?;
    package_sdk(root)?;
    build_guests(root)?;
    build_python_guests(root)?;
    build_js_guests(root)?;
    ensure_node_clients(root)?;
    ensure_deploy_tools(root)?;
    sys::ensure_services()?;
    // Guest crates compile natively too (their imports become stubs), so
    // their unit tests run with everything else.
    let status = host_cargo(root)
        .args(["test", "--workspace"])
        .args(extra)
        .status()?;
    check(status, "cargo test")
}

//! Repository tasks: `cargo xtask <task>`.
//!
//! - `bindings [--check]`: generates the guests' WIT bindings into their
//!   crates (committed source; see `bindings.rs`), or checks they are current.
//! - `build-guests`: builds every plugin and test guest into a component under
//!   `target/components/`, with rustup's `wasm32-wasip2` target where it is
//!   installed and otherwise with Debian's `rustc-web` + `rust-web-src`
//!   (`-Zbuild-std` for `wasm32-unknown-unknown`, then `wit-component`).
//! - `demo`: builds everything and runs the demo on `examples/demo/warden.toml`.
//! - `test`: checks the bindings, builds everything and runs the whole test
//!   suite.

mod bindings;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Guest crates and the component file each becomes.
const GUESTS: &[(&str, &str)] = &[
    ("warden-plugin-text", "text"),
    ("warden-plugin-files", "files"),
    ("warden-plugin-http", "http"),
    ("warden-plugin-mcp", "mcp"),
    ("hello-plugin", "hello"),
    ("guest-hostile", "hostile"),
    ("guest-wrong-world", "wrong-world"),
];

const DEBIAN_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src"];
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library/Cargo.toml";

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
            Some(other) => bail!("unknown argument `{other}` to `bindings` (want `--check` or nothing)"),
        },
        Some("build-guests") => build_guests(&root).map(|_| ()),
        Some("demo") => demo(&root),
        Some("python-env") => ensure_python_mcp(&root).map(|_| ()),
        Some("test") => test(&root, &args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 bindings       regenerate the guests' WIT bindings (--check: fail if stale)\n  \
                 build-guests   build every plugin and test guest into target/components/\n  \
                 python-env     create .venv/ with the MCP Python SDK (for the MCP tests)\n  \
                 demo           build everything and run the demo (examples/demo/warden.toml)\n  \
                 test [ARGS]    check the bindings, build everything and run the whole test suite\n                 \
                 (ARGS go to cargo test)"
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

fn check(status: ExitStatus, what: &str) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("{what} failed ({status})")
    }
}

/// A `cargo` command for the toolchain that runs this xtask.
fn host_cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn rustup_has_wasip2() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == "wasm32-wasip2")
        })
        .unwrap_or(false)
}

fn build_guests(root: &Path) -> Result<Vec<PathBuf>> {
    let target = target_dir(root);
    let out_dir = target.join("components");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let packages: Vec<String> = GUESTS
        .iter()
        .flat_map(|(p, _)| ["-p".to_string(), p.to_string()])
        .collect();

    let (triple, needs_componentize) = if rustup_has_wasip2() {
        println!("xtask: guest toolchain: rustup target wasm32-wasip2 (components built directly)");
        let status = host_cargo(root)
            .args(["build", "--profile", "guest", "--target", "wasm32-wasip2"])
            .args(&packages)
            .status()
            .context("running cargo")?;
        check(status, "guest build (wasm32-wasip2)")?;
        ("wasm32-wasip2", false)
    } else {
        ensure_debian_toolchain()?;
        let version = debian_rustc_version(root)?;
        let lld_dir = rust_lld_dir()?;
        println!(
            "xtask: guest toolchain: Debian rustc-web ({version}) with -Zbuild-std for wasm32-unknown-unknown, \
             componentized by wit-component (rustup's wasm32-wasip2 is not installed)"
        );
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths: Vec<PathBuf> = std::env::split_paths(&path).collect();
        paths.push(lld_dir);
        let mut cmd = Command::new(DEBIAN_CARGO);
        cmd.current_dir(root)
            .args([
                "build",
                "--profile",
                "guest",
                "-Zbuild-std=std,panic_abort",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .args(&packages)
            .env("PATH", std::env::join_paths(paths)?)
            .env("RUSTC", DEBIAN_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", &target);
        // Whatever rustup or the outer cargo set would point the Debian cargo at the wrong compiler.
        for var in [
            "RUSTUP_TOOLCHAIN",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO",
            "RUSTDOC",
            "RUSTFLAGS",
        ] {
            cmd.env_remove(var);
        }
        check(
            cmd.status().context("running Debian cargo")?,
            "guest build (Debian build-std)",
        )?;
        ("wasm32-unknown-unknown", true)
    };

    let mut built = Vec::new();
    for (package, name) in GUESTS {
        let file = format!("{}.wasm", package.replace('-', "_"));
        let artifact = target.join(triple).join("guest").join(&file);
        let bytes =
            std::fs::read(&artifact).with_context(|| format!("reading {}", artifact.display()))?;
        let component = if needs_componentize {
            wit_component::ComponentEncoder::default()
                .module(&bytes)
                .with_context(|| format!("decoding core module {}", artifact.display()))?
                .validate(true)
                .encode()
                .with_context(|| format!("componentizing {}", artifact.display()))?
        } else {
            bytes
        };
        built.push(write_component(&out_dir, name, &component)?);
    }
    built.push(build_wat_guest(
        root,
        &out_dir,
        "tests/guests/table-bomb.wat",
        "table-bomb",
    )?);
    println!("xtask: {} components in {}", built.len(), out_dir.display());
    Ok(built)
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

/// The Debian compiler's version line, once it is known to be at least the
/// guests' minimum (the workspace's `rust-version`).
fn debian_rustc_version(root: &Path) -> Result<String> {
    let minimum = guest_rust_version(root)?;
    let out = Command::new(DEBIAN_RUSTC)
        .arg("--version")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .with_context(|| format!("running {DEBIAN_RUSTC} --version"))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let found = line
        .split_whitespace()
        .nth(1)
        .and_then(parse_version)
        .with_context(|| format!("cannot read a version from `{DEBIAN_RUSTC} --version`: {line:?}"))?;
    if found < minimum.1 {
        bail!(
            "{DEBIAN_RUSTC} is {line}, but the guest crates need rustc {} or later \
             (`rust-version` in Cargo.toml): upgrade the Debian packages ({}) \
             or install rustup's target (`rustup target add wasm32-wasip2`)",
            minimum.0,
            DEBIAN_PACKAGES.join(" ")
        );
    }
    Ok(line)
}

/// The workspace's `rust-version`: the oldest compiler the guests build with,
/// as text and as (major, minor, patch).
fn guest_rust_version(root: &Path) -> Result<(String, (u32, u32, u32))> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let value = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("rust-version"))
        .and_then(|v| v.as_str())
        .context("Cargo.toml has no [workspace.package] rust-version")?;
    let parsed = parse_version(value)
        .with_context(|| format!("[workspace.package] rust-version {value:?} is not a version"))?;
    Ok((value.to_string(), parsed))
}

/// `1.85`, `1.85.0` or `1.85.0-beta.1` as (major, minor, patch).
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

fn debian_toolchain_present() -> bool {
    Path::new(DEBIAN_RUSTC).exists()
        && Path::new(DEBIAN_CARGO).exists()
        && Path::new(DEBIAN_STD_SRC).exists()
}

fn ensure_debian_toolchain() -> Result<()> {
    if debian_toolchain_present() {
        return Ok(());
    }
    apt_install(DEBIAN_PACKAGES).with_context(|| {
        format!(
            "no guest toolchain: install rustup's target (`rustup target add wasm32-wasip2`), \
             or on Debian/Ubuntu `apt-get install {}`",
            DEBIAN_PACKAGES.join(" ")
        )
    })?;
    if !debian_toolchain_present() {
        bail!("Debian packages installed but {DEBIAN_RUSTC} or {DEBIAN_STD_SRC} is still missing");
    }
    Ok(())
}

/// Installs Debian packages with apt-get (as root only).
fn apt_install(packages: &[&str]) -> Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false);
    let have_apt = Path::new("/usr/bin/apt-get").exists();
    if !(is_root && have_apt) {
        bail!(
            "cannot install {} (needs root and apt-get)",
            packages.join(" ")
        );
    }
    println!("xtask: installing Debian packages {}", packages.join(" "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install()?.success() {
        check(
            Command::new("apt-get").args(["update", "-q"]).status()?,
            "apt-get update",
        )?;
        check(install()?, "apt-get install")?;
    }
    Ok(())
}

/// The Python package the MCP tests' server is built on.
const PYTHON_MCP: &str = "mcp==2.3.0";

/// A virtual environment in `.venv/` with the official MCP Python SDK, for
/// the MCP tests' and benchmark's server (`tests/mcp/server.py`).
fn ensure_python_mcp(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import mcp.server.mcpserver, uvicorn"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready() {
        return Ok(python);
    }
    let make_venv = || {
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !make_venv() {
        // Debian splits venv (and ensurepip) out of python3.
        apt_install(&["python3", "python3-venv"])
            .context("cannot create a Python virtual environment")?;
        if !make_venv() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    println!("xtask: installing {PYTHON_MCP} into {}", venv.display());
    check(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                PYTHON_MCP,
            ])
            .status()
            .context("running pip")?,
        "pip install",
    )?;
    if !ready() {
        bail!("{PYTHON_MCP} installed but `import mcp.server.mcpserver` still fails");
    }
    Ok(python)
}

/// The directory holding `rust-lld` in the rustup toolchain's sysroot.
fn rust_lld_dir() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into());
    let dir = sysroot.join("lib/rustlib").join(host).join("bin");
    if !dir.join("rust-lld").exists() {
        bail!(
            "rust-lld not found in {} (the rustup toolchain ships it)",
            dir.display()
        );
    }
    Ok(dir)
}

fn build_host(root: &Path) -> Result<PathBuf> {
    let status = host_cargo(root)
        .args(["build", "-p", "warden", "--bin", "warden"])
        .status()?;
    check(status, "building warden")?;
    Ok(target_dir(root).join("debug").join("warden"))
}

fn demo(root: &Path) -> Result<()> {
    build_guests(root)?;
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
    let audit = target_dir(root).join("demo/audit.jsonl");
    // A fresh log per demo run (the config writes it under target/demo).
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
    mcp_demo(root, &warden)?;
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
fn mcp_demo(root: &Path, warden: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let python = ensure_python_mcp(root)?;
    let dir = target_dir(root).join("demo");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("mcp-requests.log");
    let _ = std::fs::remove_file(&log);
    let mut server = Command::new(&python)
        .arg(root.join("tests/mcp/server.py"))
        .args(["--port", "0", "--log"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting tests/mcp/server.py")?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .context("the MCP server did not start")?
        .to_string();
    let template = std::fs::read_to_string(root.join("examples/demo/mcp.toml"))
        .context("reading examples/demo/mcp.toml")?;
    let config = dir.join("mcp.toml");
    std::fs::write(&config, template.replace("@PORT@", &port))?;
    let run = |title: &str, args: &[&str]| {
        demo_step(warden, &config, "target/demo/mcp.toml", title, args, &[])
    };
    let result = (|| -> Result<()> {
        run(
            "An MCP server's tools as capabilities (server on 127.0.0.1, official Python SDK; a deny filter hides one tool)",
            &["list"],
        )?;
        run(
            "A tool call in a session, through governed egress",
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
            "(the server saw {} POST and {} DELETE requests: each CLI run closed its session on exit)",
            count("POST "),
            count("DELETE ")
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// One demo step: prints its title (if any) and the command as a user
/// would type it (`shown` is the config path to print), runs it, and prints
/// the exit code. Failing commands are part of the demo, not errors.
fn demo_step(
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

fn test(root: &Path, extra: &[String]) -> Result<()> {
    bindings::run(root, true)?;
    build_guests(root)?;
    ensure_python_mcp(root)?;
    // Guest crates compile natively too (their imports become stubs), so
    // their unit tests run with everything else.
    let status = host_cargo(root)
        .args(["test", "--workspace"])
        .args(extra)
        .status()?;
    check(status, "cargo test")
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(parse_version("1.85"), Some((1, 85, 0)));
        assert_eq!(parse_version("1.85.0"), Some((1, 85, 0)));
        assert_eq!(parse_version("1.90.1-beta.2"), Some((1, 90, 1)));
        assert!(parse_version("1.9.0") < parse_version("1.85.0"));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("1.x"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
    }
}

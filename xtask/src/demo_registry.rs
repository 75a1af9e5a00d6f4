//! The demo's registry part: Debian's `docker-registry` started on
//! 127.0.0.1 for the occasion; a plugin pushed, signed, pulled and
//! verified at load; then a new version under the same tag held back by
//! `warden.lock` while the accepted one keeps serving.

use crate::sys::ensure_services;
use crate::{demo_step, target_dir};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `docker-registry` with its storage under `dir`; the child and
/// its port.
fn start_registry(dir: &Path) -> Result<(Child, u16)> {
    ensure_services()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("registry-data").display()
        ),
    )?;
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker-registry")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("docker-registry did not start on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, port))
}

/// A plugin from a local OCI registry, signed and locked.
pub(crate) fn registry_demo(root: &Path, warden: &Path) -> Result<()> {
    let dir = target_dir(root).join("demo");
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_dir_all(dir.join("registry-data"));
    for stale in ["warden.lock", "publisher.key", "publisher.pub"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let (mut registry, port) = start_registry(&dir)?;
    let template = std::fs::read_to_string(root.join("examples/demo/registry.toml"))
        .context("reading examples/demo/registry.toml")?;
    let config = dir.join("registry.toml");
    std::fs::write(&config, template.replace("@PORT@", &port.to_string()))?;
    let tag = format!("oci://127.0.0.1:{port}/demo/hello:1.0");
    let components = target_dir(root).join("components");
    let hello = components.join("hello.wasm");
    let files = components.join("files.wasm");
    let (hello, files) = (
        hello.to_str().context("path")?,
        files.to_str().context("path")?,
    );
    let run = |title: &str, args: &[&str]| {
        demo_step(
            warden,
            &config,
            "target/demo/registry.toml",
            title,
            args,
            &[],
        )
    };
    let result = (|| -> Result<()> {
        run(
            "Publishing: a plugin pushed to an OCI registry (docker-registry on 127.0.0.1) in the CNCF Wasm layout",
            &["push", hello, &tag],
        )?;
        let quiet = Command::new(warden)
            .current_dir(&dir)
            .args(["audit", "keygen", "publisher"])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(quiet.success(), "warden audit keygen failed");
        let key = dir.join("publisher.key");
        let key = key.to_str().context("path")?;
        run(
            "Signed as cosign does (the signature goes to the registry)",
            &["sign", &tag, "--key", key],
        )?;
        run(
            "Loaded by reference: pulled into the content store, its signature verified (require-signatures)",
            &["call", "hello.greet", r#"{"name":"Ada"}"#],
        )?;
        run("The lockfile records it as accepted", &["lock"])?;
        run(
            "A new version under the same tag, asking for more",
            &["push", files, &tag],
        )?;
        run("", &["sign", &tag, "--key", key])?;
        run("warden diff names what it adds", &["diff"])?;
        run(
            "[host] on-update = \"refuse\" (the default): the accepted digest keeps serving",
            &["call", "hello.greet", r#"{"name":"Ada"}"#],
        )?;
        Ok(())
    })();
    let _ = registry.kill();
    let _ = registry.wait();
    result
}

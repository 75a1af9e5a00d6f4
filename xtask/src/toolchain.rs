//! The guest toolchain: rustup's `wasm32-wasip2` target where it is
//! installed, otherwise Debian's `rustc-web` with `-Zbuild-std` for
//! `wasm32-unknown-unknown` and `wit-component` to make the component.

use crate::sys::{apt_install, check, host_cargo, Manifest};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const DEBIAN_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src"];
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library/Cargo.toml";

/// How guests are compiled on this machine.
pub enum Toolchain {
    /// rustup's `wasm32-wasip2`: cargo emits components.
    Rustup,
    /// Debian's compiler and std source; `lld_dir` holds `rust-lld`.
    Debian { lld_dir: PathBuf },
}

impl Toolchain {
    /// Picks the toolchain (installing the Debian packages where needed and
    /// possible), checks the Debian compiler is new enough for the guests
    /// (the workspace's `rust-version`, read from `root`), and says which.
    pub fn detect(root: &Path) -> Result<Toolchain> {
        if rustup_has_wasip2() {
            println!(
                "xtask: guest toolchain: rustup target wasm32-wasip2 (components built directly)"
            );
            return Ok(Toolchain::Rustup);
        }
        ensure_debian_toolchain()?;
        let version = debian_rustc_version(root)?;
        let lld_dir = rust_lld_dir()?;
        println!(
            "xtask: guest toolchain: Debian rustc-web ({version}) with -Zbuild-std for \
             wasm32-unknown-unknown, componentized by wit-component (rustup's wasm32-wasip2 \
             is not installed)"
        );
        Ok(Toolchain::Debian { lld_dir })
    }

    /// The target triple guests are built for.
    pub fn triple(&self) -> &'static str {
        match self {
            Toolchain::Rustup => "wasm32-wasip2",
            Toolchain::Debian { .. } => "wasm32-unknown-unknown",
        }
    }

    /// Runs `cargo build <args>` for the guest target in `dir`, with
    /// artifacts under `target`.
    pub fn build(&self, dir: &Path, target: &Path, args: &[&str], what: &str) -> Result<()> {
        let mut cmd = match self {
            Toolchain::Rustup => {
                let mut cmd = host_cargo(dir);
                cmd.args(["build", "--target", self.triple()]);
                cmd
            }
            Toolchain::Debian { lld_dir } => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                let mut paths: Vec<PathBuf> = std::env::split_paths(&path).collect();
                paths.push(lld_dir.clone());
                let mut cmd = Command::new(DEBIAN_CARGO);
                cmd.args([
                    "build",
                    "-Zbuild-std=std,panic_abort",
                    "--target",
                    self.triple(),
                ])
                .env("PATH", std::env::join_paths(paths)?)
                .env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTC_BOOTSTRAP", "1");
                // Whatever rustup or the outer cargo set would point the
                // Debian cargo at the wrong compiler.
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
                // Bulk memory, as rustc 1.87 and later enable for wasm by
                // default: a copy is one `memory.copy` rather than a loop
                // whose every instruction costs the plugin fuel.
                cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+bulk-memory");
                cmd
            }
        };
        let status = cmd
            .args(args)
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target)
            .status()
            .context("running cargo")?;
        check(status, what)
    }

    /// The component for a built artifact: as it is from `wasm32-wasip2`,
    /// encoded by `wit-component` from a core module otherwise (the module
    /// carries its world in the custom section the bindings put there).
    pub fn component(&self, artifact: &Path) -> Result<Vec<u8>> {
        let bytes =
            std::fs::read(artifact).with_context(|| format!("reading {}", artifact.display()))?;
        match self {
            Toolchain::Rustup => Ok(bytes),
            Toolchain::Debian { .. } => wit_component::ComponentEncoder::default()
                .module(&bytes)
                .with_context(|| format!("decoding core module {}", artifact.display()))?
                .validate(true)
                .encode()
                .with_context(|| format!("componentizing {}", artifact.display())),
        }
    }
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

/// The Debian compiler's version line, once it is known to be at least the
/// guests' minimum (the workspace's `rust-version`).
fn debian_rustc_version(root: &Path) -> Result<String> {
    let (minimum, min_parsed) = guest_rust_version(root)?;
    let out = Command::new(DEBIAN_RUSTC)
        .arg("--version")
        .output()
        .with_context(|| format!("running {DEBIAN_RUSTC} --version"))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let found = line
        .split_whitespace()
        .nth(1)
        .and_then(parse_version)
        .with_context(|| {
            format!("cannot read a version from `{DEBIAN_RUSTC} --version`: {line:?}")
        })?;
    if found < min_parsed {
        bail!(
            "{DEBIAN_RUSTC} is {line}, but the guest crates need rustc {minimum} or later \
             (`rust-version` in Cargo.toml): upgrade the Debian packages \
             (`apt-get install --only-upgrade {}`) or install rustup's target \
             (`rustup target add wasm32-wasip2`)",
            DEBIAN_PACKAGES.join(" ")
        );
    }
    Ok(line)
}

/// The workspace's `rust-version`: the oldest compiler the guests build with,
/// as text and as (major, minor, patch).
fn guest_rust_version(root: &Path) -> Result<(String, (u32, u32, u32))> {
    let manifest = Manifest::read(root)?;
    let value = manifest
        .str(&["workspace", "package", "rust-version"])
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

/// The directory holding `rust-lld` in the rustup toolchain's sysroot (the
/// Debian packages do not ship a wasm linker).
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

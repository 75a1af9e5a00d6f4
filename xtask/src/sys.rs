//! Running commands (exit statuses, Debian packages) and reading manifests.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// A `cargo` command in `dir` for the toolchain that runs this xtask.
pub fn host_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir);
    cmd
}

/// An error naming `what` unless `status` is success.
pub fn check(status: ExitStatus, what: &str) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("{what} failed ({status})")
    }
}

/// Installs Debian packages with apt-get (as root only).
pub fn apt_install(packages: &[&str]) -> Result<()> {
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

/// The programs the tests (and the demo) start as real services, and the
/// Debian package of each: the OCI registry (distribution 2.8), htpasswd
/// for its logins, openssl for the CA its TLS tests make, rsyslogd as the
/// audit sink's syslog collector, Redis for `[cluster]`, haproxy as the
/// load balancer in front of replicas and dnsmasq as the nameserver of
/// DNS-SD records.
const SERVICES: &[(&str, &str)] = &[
    ("/usr/bin/docker-registry", "docker-registry"),
    ("/usr/bin/htpasswd", "apache2-utils"),
    ("/usr/bin/openssl", "openssl"),
    ("/usr/sbin/rsyslogd", "rsyslog"),
    ("/usr/bin/redis-server", "redis-server"),
    ("/usr/sbin/haproxy", "haproxy"),
    ("/usr/sbin/dnsmasq", "dnsmasq-base"),
];

/// Installs what [`SERVICES`] names and is missing.
pub fn ensure_services() -> Result<()> {
    let missing: Vec<&str> = SERVICES
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing).context(
        "the tests need docker-registry, htpasswd, openssl, rsyslogd, redis-server, haproxy and dnsmasq",
    )
}

/// A crate's or workspace's `Cargo.toml`, parsed.
pub struct Manifest {
    pub path: PathBuf,
    doc: toml::Table,
}

impl Manifest {
    /// Reads `dir/Cargo.toml`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let doc = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Manifest { path, doc })
    }

    /// The string at `keys` (`["package", "name"]`), if there is one.
    pub fn str(&self, keys: &[&str]) -> Option<&str> {
        let (last, tables) = keys.split_last()?;
        let mut table = &self.doc;
        for key in tables {
            table = table.get(*key)?.as_table()?;
        }
        table.get(*last)?.as_str()
    }
}

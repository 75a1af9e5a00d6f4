//! Running commands: exit statuses and Debian packages.

use anyhow::{bail, Result};
use std::path::Path;
use std::process::{Command, ExitStatus};

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

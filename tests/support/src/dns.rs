//! A real nameserver for DNS-SD tests: Debian's `dnsmasq` on 127.0.0.1 (UDP
//! and TCP on one port), answering only the records it is given (SRV
//! records and host names), nothing from upstream or `/etc/hosts`.

use crate::cluster::{stop, supervised, wait_port};
use std::path::Path;
use std::process::Child;

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// One SRV record: `name` served at `target:port`.
pub struct Srv<'a> {
    pub name: &'a str,
    pub target: &'a str,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// dnsmasq on 127.0.0.1.
pub struct Nameserver {
    child: Option<Child>,
    pub port: u16,
}

impl Nameserver {
    /// Serving `srv` and the addresses of `hosts` (`(name, ip)`).
    pub fn start(srv: &[Srv<'_>], hosts: &[(&str, &str)]) -> Nameserver {
        assert!(
            Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: `cargo xtask test` installs Debian's dnsmasq-base"
        );
        let port = crate::free_port();
        let mut args = vec![
            "--keep-in-foreground".to_string(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--no-poll".into(),
            "--bind-interfaces".into(),
            "--listen-address=127.0.0.1".into(),
            format!("--port={port}"),
            "--pid-file=".into(),
            "--conf-file=/dev/null".into(),
        ];
        if is_root() {
            args.push("--user=root".into());
        }
        for s in srv {
            args.push(format!(
                "--srv-host={},{},{},{},{}",
                s.name, s.target, s.port, s.priority, s.weight
            ));
        }
        for (name, ip) in hosts {
            args.push(format!("--host-record={name},{ip}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = supervised(DNSMASQ, &args);
        assert!(wait_port(port, true), "dnsmasq did not start");
        Nameserver {
            child: Some(child),
            port,
        }
    }

    /// `127.0.0.1:PORT`, as `[host] dns-servers` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Whether this process runs as root (dnsmasq then keeps root rather than
/// switching to a user that may not exist here).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Drop for Nameserver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

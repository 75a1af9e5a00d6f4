//! A real OCI registry for the tests: Debian's `docker-registry`
//! (distribution 2.8) on 127.0.0.1, plain HTTP or with TLS from a CA made
//! here and htpasswd logins. A registry shared by a test binary (in a
//! static) ends with it: a shell holds its stdin and stops it at EOF.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user and password the TLS registry accepts.
pub const USER: &str = "warden";
pub const PASSWORD: &str = "registry-pass-1";

pub struct OciRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    tls: bool,
}

const BINARY: &str = "/usr/bin/docker-registry";

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost
/// signed by it (`cert.pem`, `key.pem`) in `dir`, made with openssl.
pub fn make_certificates(dir: &Path) {
    let at = |f: &str| dir.join(f);
    run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-subj", "/CN=warden test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(at("ca.key"))
            .arg("-out")
            .arg(at("ca.pem")),
        "making the test CA",
    );
    run(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(at("key.pem"))
            .arg("-out")
            .arg(at("server.csr")),
        "making the registry's key",
    );
    std::fs::write(
        at("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(at("server.csr"))
            .arg("-CA")
            .arg(at("ca.pem"))
            .arg("-CAkey")
            .arg(at("ca.key"))
            .arg("-extfile")
            .arg(at("ext.cnf"))
            .arg("-out")
            .arg(at("cert.pem")),
        "signing the registry's certificate",
    );
}

/// The registry's logins file, `htpasswd`, in `dir`.
fn make_logins(dir: &Path) {
    let at = |f: &str| dir.join(f);
    run(
        Command::new("htpasswd")
            .args(["-Bbc"])
            .arg(at("htpasswd"))
            .args([USER, PASSWORD]),
        "writing htpasswd",
    );
}

impl OciRegistry {
    /// A registry over plain HTTP, without logins.
    pub fn plain() -> OciRegistry {
        Self::start(false)
    }

    /// A registry over HTTPS (see [`OciRegistry::ca`]) asking for
    /// [`USER`] and [`PASSWORD`].
    pub fn tls() -> OciRegistry {
        Self::start(true)
    }

    fn start(tls: bool) -> OciRegistry {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: `cargo xtask test` installs Debian's docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        if tls {
            make_certificates(dir.path());
            make_logins(dir.path());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let port = crate::free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, config_yaml(dir.path(), port, tls)).unwrap();
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{BINARY} serve \"$1\" & pid=$!; cat >/dev/null; kill $pid"
                ))
                .arg("sh")
                .arg(&config)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(crate::peer_stderr())
                .spawn()
                .expect("starting docker-registry");
            if wait_listening(port, &mut child) {
                return OciRegistry {
                    child,
                    port,
                    dir,
                    tls,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "docker-registry did not start");
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/REPO`.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("oci://{}/{repo_and_tag}", self.host())
    }

    /// The CA that signed a TLS registry's certificate (PEM file).
    pub fn ca(&self) -> PathBuf {
        assert!(self.tls, "a plain registry has no CA");
        self.dir.path().join("ca.pem")
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn config_yaml(dir: &Path, port: u16, tls: bool) -> String {
    let d = dir.display();
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    );
    if tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {d}/cert.pem\n    key: {d}/key.pem\nauth:\n  htpasswd:\n    realm: warden-test\n    path: {d}/htpasswd\n"
        ));
    }
    yaml
}

/// Waits until `port` accepts a connection, or the registry exits.
fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

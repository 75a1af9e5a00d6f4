use std::path::{Path, PathBuf};
use warden::{Config, Host, PluginConfig};

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The component `name` built by `cargo xtask build-guests`.
pub fn component(name: &str) -> PathBuf {
    let path = target_dir().join("components").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build-guests` (or `cargo xtask test`)",
        path.display()
    );
    path
}

/// A config for tests: shared compiled cache under target/, paths relative to `base`.
pub fn config(base: &Path) -> Config {
    let mut c = Config::new(base);
    c.host.cache_dir = Some(target_dir().join("warden-test-cache"));
    c
}

pub fn hostile() -> PluginConfig {
    PluginConfig::new(component("hostile"))
}

pub async fn host_with(name: &str, plugin: PluginConfig) -> Host {
    Host::new(config(Path::new(".")).with_plugin(name, plugin))
        .await
        .expect("host loads")
}

/// A TCP server on 127.0.0.1 that counts connections and answers each with
/// a fixed HTTP response. Returns (port, connection counter).
pub fn http_server(body: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                body.len(),
                body
            );
        }
    });
    (port, count)
}

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

#[path = "../support/http_server.rs"]
mod http_server;
pub use http_server::TestServer;

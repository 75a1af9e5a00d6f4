#[path = "../support/components.rs"]
mod components;
pub use components::{component, target_dir};
use std::path::Path;
use warden::{Config, Host, PluginConfig};

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

#[path = "../support/mcp_server.rs"]
mod mcp_server;
pub use mcp_server::McpServer;

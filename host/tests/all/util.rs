use std::path::{Path, PathBuf};
use warden::{Config, Host, PluginConfig};
pub use warden_test_support::components::{component, target_dir};
pub use warden_test_support::http_server::TestServer;
pub use warden_test_support::mcp_server::McpServer;

/// The `warden` CLI binary (crate `warden-cli`), beside this test binary's
/// directory. `cargo test --workspace` (and so `cargo xtask test`) builds it
/// before running any test; with `cargo test -p warden` build it first.
pub fn warden_cli() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary> -> target/<profile>/warden
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary under target/<profile>/deps")
        .join(format!("warden{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the CLI with `cargo build -p warden-cli` \
         (`cargo xtask test` does it)",
        bin.display()
    );
    bin
}

/// A config for tests: shared compiled cache under target/, paths relative to `base`.
pub fn config(base: &Path) -> Config {
    let mut c = Config::new(base);
    c.host.cache_dir = Some(target_dir().join("warden-test-cache"));
    c
}

/// `c` writing its audit log to `dir/audit.jsonl` (flushed per record);
/// returns the log's path too.
pub fn with_audit(mut c: Config, dir: &Path) -> (Config, PathBuf) {
    let path = dir.join("audit.jsonl");
    c.audit = Some(warden::AuditSettings {
        path: path.clone(),
        sync: warden::audit::SyncPolicy::Flush,
        rotate_bytes: 0,
        max_records_per_minute: None,
        max_bytes_per_minute: None,
        signing_key: None,
        checkpoint_records: None,
        checkpoint_ms: None,
        sink: None,
        replica: None,
    });
    (c, path)
}

/// A capability served by `plugins/http` (provider kind `:Http`) with
/// provider-meta `meta`.
pub fn http_capability(id: &str, meta: serde_json::Value) -> warden::Manifest {
    use serde_json::json;
    use warden::{Manifest, ProviderKind};
    Manifest {
        id: id.into(),
        name: id.into(),
        version: "1.0.0".into(),
        description: String::new(),
        provider: ProviderKind::Http,
        provider_meta: meta.as_object().unwrap().clone(),
        input_schema: ":any".into(),
        output_schema: "[:map [:status :int] [:headers [:map]] [:body :any]]".into(),
        metadata: json!({}),
        permissions: vec![],
        effects: vec![],
    }
}

pub fn hostile() -> PluginConfig {
    PluginConfig::new(component("hostile"))
}

pub async fn host_with(name: &str, plugin: PluginConfig) -> Host {
    Host::new(config(Path::new(".")).with_plugin(name, plugin))
        .await
        .expect("host loads")
}

/// A progress listener that keeps what it hears (for `CallContext::progress`).
pub fn progress_listener() -> (
    std::sync::Arc<dyn warden::ProgressSink>,
    std::sync::Arc<std::sync::Mutex<Vec<warden::Progress>>>,
) {
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heard.clone();
    let sink: std::sync::Arc<dyn warden::ProgressSink> =
        std::sync::Arc::new(move |p: warden::Progress| h.lock().unwrap().push(p));
    (sink, heard)
}

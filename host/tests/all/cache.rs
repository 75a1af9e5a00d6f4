//! A component is compiled once and cached; the next start does not recompile.

use crate::util::*;
use warden::{CompileSource, Config, Host, PluginConfig};

fn cfg(cache: &std::path::Path) -> Config {
    let mut c = Config::new(".").with_plugin("hello", PluginConfig::new(component("hello")));
    c.host.cache_dir = Some(cache.to_path_buf());
    c
}

#[tokio::test]
async fn second_start_loads_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = Host::new(cfg(dir.path())).await.unwrap();
    assert_eq!(
        first.compile_source("hello").unwrap(),
        CompileSource::Compiled
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "one cache entry");
    let second = Host::new(cfg(dir.path())).await.unwrap();
    assert_eq!(
        second.compile_source("hello").unwrap(),
        CompileSource::Cache
    );
    assert!(second
        .call("hello.greet", serde_json::json!({"name": "x"}))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    Host::new(cfg(dir.path())).await.unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(e.unwrap().path(), b"garbage").unwrap();
    }
    let host = Host::new(cfg(dir.path())).await.unwrap();
    assert_eq!(
        host.compile_source("hello").unwrap(),
        CompileSource::Compiled
    );
    assert!(host
        .call("hello.greet", serde_json::json!({"name": "x"}))
        .await
        .is_ok());
}

#[tokio::test]
async fn no_cache_means_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.host.no_cache = true;
    let host = Host::new(c).await.unwrap();
    assert_eq!(
        host.compile_source("hello").unwrap(),
        CompileSource::Compiled
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

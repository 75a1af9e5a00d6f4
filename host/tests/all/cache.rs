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

/// Hosts loading different components at once into one empty cache each
/// get their own component, compiled and then from the cache. (Loads once
/// shared one temporary file per process, so a component could be cached
/// under another's key and a later load ran the wrong code.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_loads_cache_each_component_under_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = ["text", "hostile", "files", "hello", "http", "mcp"];
    for round in 0..2 {
        let mut loads = tokio::task::JoinSet::new();
        for name in plugins {
            for _ in 0..2 {
                let mut c = Config::new(".").with_plugin(name, PluginConfig::new(component(name)));
                c.host.cache_dir = Some(dir.path().to_path_buf());
                loads.spawn(async move { (name, Host::new(c).await.expect("loads")) });
            }
        }
        while let Some(done) = loads.join_next().await {
            let (name, host) = done.unwrap();
            let ids: Vec<String> = host.capabilities().iter().map(|c| c.id.clone()).collect();
            let own = match name {
                "text" => "text.",
                "hello" => "hello.",
                other => other,
            };
            assert!(
                ids.iter().any(|id| id.starts_with(own)),
                "round {round}: plugin `{name}` registered {ids:?}"
            );
            assert!(
                ids.iter()
                    .all(|id| id.starts_with(own) || id.starts_with("json.")),
                "round {round}: plugin `{name}` registered another component's ids: {ids:?}"
            );
        }
    }
}

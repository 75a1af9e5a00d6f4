//! Where tests and benchmarks find the components `cargo xtask build-guests` builds.

use std::path::PathBuf;

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo().join("target"))
}

/// The component `name`, which must have been built.
pub fn component(name: &str) -> PathBuf {
    let path = target_dir().join("components").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build-guests` (or `cargo xtask test`)",
        path.display()
    );
    path
}

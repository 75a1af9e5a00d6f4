//! The on-disk cache of compiled components: one file per component and
//! engine configuration, bounded in size (the least recently used entries
//! are evicted when a new one is written), listed and cleared by
//! `warden cache`.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The default size cap of the cache (`host.cache-max-bytes`).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;

/// The compiled-component cache in one directory.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// One cached compiled component.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CacheEntry {
    /// Its file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When it was last written or loaded.
    #[serde(with = "unix_seconds")]
    pub last_used: SystemTime,
}

mod unix_seconds {
    use std::time::SystemTime;
    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        s.serialize_u64(secs)
    }
}

struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

impl CompiledCache {
    /// The cache in `dir`, holding at most `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> CompiledCache {
        CompiledCache {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its size cap.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Every entry, most recently used first (none if the directory does
    /// not exist).
    pub fn entries(&self) -> std::io::Result<Vec<CacheEntry>> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for item in read {
            let item = item?;
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("cwasm") {
                continue;
            }
            let Ok(meta) = item.metadata() else { continue };
            entries.push(CacheEntry {
                file: path,
                bytes: meta.len(),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        Ok(entries)
    }

    /// Removes every entry; returns how many and their bytes.
    pub fn clear(&self) -> std::io::Result<(usize, u64)> {
        let mut removed = (0, 0);
        for e in self.entries()? {
            std::fs::remove_file(&e.file)?;
            removed.0 += 1;
            removed.1 += e.bytes;
        }
        Ok(removed)
    }

    /// The entry for `bytes` under `engine`: keyed by the component's
    /// content hash and the engine's compatibility hash (version and
    /// settings).
    pub(crate) fn path_for(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        h.0.update(bytes);
        let key: String =
            h.0.finalize()
                .iter()
                .take(20)
                .map(|b| format!("{b:02x}"))
                .collect();
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The compiled component at `path`, if it is there and usable; marks
    /// it used.
    pub(crate) fn get(&self, engine: &Engine, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is one this host wrote with `precompile_component`
        // for this engine configuration (the key covers both); wasmtime also
        // checks the compatibility header and refuses a mismatch.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(c) => {
                touch(path);
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled cache entry: {e}");
                None
            }
        }
    }

    /// Writes a new entry, then evicts least recently used ones until the
    /// cache fits its cap (never the new one). Failures are logged.
    pub(crate) fn put(&self, path: &Path, data: &[u8]) {
        if let Err(e) = write_atomically(&self.dir, path, data) {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compiled-component cache: {e}");
            return;
        }
        match self.evict(path) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                dir = %self.dir.display(),
                "evicted {n} least recently used compiled components (host.cache-max-bytes = {})",
                self.max_bytes
            ),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot evict from the compiled-component cache: {e}")
            }
        }
    }

    /// Removes the least recently used entries other than `keep` while the
    /// total is over the cap; returns how many went.
    fn evict(&self, keep: &Path) -> std::io::Result<usize> {
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut removed = 0;
        for e in entries.iter().rev() {
            if total <= self.max_bytes {
                break;
            }
            if e.file == keep {
                continue;
            }
            match std::fs::remove_file(&e.file) {
                Ok(()) => {
                    total -= e.bytes;
                    removed += 1;
                }
                // Another process evicted it first.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => total -= e.bytes,
                Err(err) => return Err(err),
            }
        }
        Ok(removed)
    }
}

/// Marks an entry used now (its modification time orders eviction).
fn touch(path: &Path) {
    let touched = std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(path = %path.display(), "cannot mark a cache entry used: {e}");
    }
}

/// Writes `data` to `path` through a temporary file of its own: named after
/// the entry, the process and the thread, so that loads running at once (in
/// one process or several) never write into each other's file and rename
/// one component's compiled code under another's key.
pub(crate) fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let tmp = dir.join(format!(".{name}.{}.{thread}.tmp", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(dir: &Path, name: &str, size: usize, age_s: u64) -> PathBuf {
        let p = dir.join(format!("{name}.cwasm"));
        std::fs::write(&p, vec![0u8; size]).unwrap();
        let f = std::fs::File::options().append(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
        p
    }

    #[test]
    fn the_least_recently_used_entries_go_first_and_never_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::new(dir.path(), 250);
        let old = entry(dir.path(), "old", 100, 300);
        let used = entry(dir.path(), "used", 100, 200);
        let new = entry(dir.path(), "new", 100, 100);
        touch(&used);
        assert_eq!(cache.evict(&new).unwrap(), 1);
        assert!(!old.exists() && used.exists() && new.exists());
        // The newest entry stays even when it alone is over the cap.
        let cache = CompiledCache::new(dir.path(), 50);
        assert_eq!(cache.evict(&new).unwrap(), 1);
        assert!(new.exists() && !used.exists());
        let listed = cache.entries().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(cache.clear().unwrap(), (1, 100));
        assert!(cache.entries().unwrap().is_empty());
        // Other files in the directory are not the cache's.
        std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
        assert_eq!(cache.clear().unwrap(), (0, 0));
    }
}

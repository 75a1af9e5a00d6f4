//! The content store of pulled components: blobs (manifests, components,
//! signature payloads) under their SHA-256, checked again on every read,
//! and the digest each tag last resolved to, so that a start with the
//! registry down still finds what it loaded before. Bounded by the same
//! size cap as the compiled cache; the least recently used blobs go first.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::reference::OciRef;

/// The content store in one directory (`<cache dir>/oci`).
#[derive(Debug, Clone)]
pub struct ContentStore {
    dir: PathBuf,
    max_bytes: u64,
}

/// What a tag resolved to when it was last asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct TagRecord {
    /// The reference as written.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
    /// When (seconds since the Unix epoch).
    pub resolved_at: u64,
}

impl ContentStore {
    /// The store in `dir`, holding at most about `max_bytes` of blobs.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> ContentStore {
        ContentStore {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = super::reference::check_digest(digest).ok()?;
        Some(self.dir.join("blobs/sha256").join(&hex["sha256:".len()..]))
    }

    /// The blob with `digest`, if stored and still whole (a blob whose
    /// bytes no longer match its name is removed).
    pub fn get(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = std::fs::read(&path).ok()?;
        if crate::digest::digest(&bytes) != digest {
            tracing::warn!(path = %path.display(), "a stored blob no longer matches its digest; removed");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        touch(&path);
        Some(bytes)
    }

    /// Stores `bytes` under their digest (returned), then trims the store
    /// to its cap (never the blob just written).
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = crate::digest::digest(bytes);
        let path = self.blob_path(&digest).expect("a digest made here");
        if !path.exists() {
            write_atomically(&path, bytes)?;
        } else {
            touch(&path);
        }
        if let Err(e) = self.trim(&path) {
            tracing::warn!(dir = %self.dir.display(), "cannot trim the content store: {e}");
        }
        Ok(digest)
    }

    fn tag_path(&self, reference: &OciRef) -> PathBuf {
        let key = reference.at_tag(reference.tag.as_deref().unwrap_or("latest"));
        let name = crate::digest::sha256_hex(key.to_string().as_bytes());
        self.dir.join("tags").join(format!("{name}.json"))
    }

    /// What `reference`'s tag resolved to last, if it was ever pulled here.
    pub fn tag(&self, reference: &OciRef) -> Option<TagRecord> {
        let text = std::fs::read(self.tag_path(reference)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Records that `reference`'s tag resolved to `digest` now.
    pub fn set_tag(&self, reference: &OciRef, digest: &str) -> std::io::Result<()> {
        let record = TagRecord {
            reference: reference
                .at_tag(reference.tag.as_deref().unwrap_or("latest"))
                .to_string(),
            digest: digest.to_string(),
            resolved_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let json = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        write_atomically(&self.tag_path(reference), &json)
    }

    /// Writes a record of the store's own (tag, signatures) at `rel`.
    pub(super) fn write_record(&self, rel: &Path, data: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.dir.join(rel), data)
    }

    /// How many blobs are stored, and their bytes.
    pub fn usage(&self) -> std::io::Result<(usize, u64)> {
        let blobs = self.blobs()?;
        Ok((blobs.len(), blobs.iter().map(|b| b.1).sum()))
    }

    /// Removes every blob, tag record and kept signature; what it removed
    /// (blobs and their bytes).
    pub fn clear(&self) -> std::io::Result<(usize, u64)> {
        let usage = self.usage()?;
        for sub in ["blobs", "tags", "signatures"] {
            match std::fs::remove_dir_all(self.dir.join(sub)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(usage)
    }

    /// The stored blobs, least recently used last.
    fn blobs(&self) -> std::io::Result<Vec<(PathBuf, u64, SystemTime)>> {
        let dir = self.dir.join("blobs/sha256");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
                out.push((entry.path(), meta.len(), meta.modified()?));
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.2));
        Ok(out)
    }

    /// Removes the least recently used blobs past the cap, never `keep`.
    fn trim(&self, keep: &Path) -> std::io::Result<()> {
        let blobs = self.blobs()?;
        let mut total: u64 = blobs.iter().map(|b| b.1).sum();
        for (path, size, _) in blobs.iter().rev() {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            match std::fs::remove_file(path) {
                Ok(()) => total -= size,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= size,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn touch(path: &Path) {
    let _ = std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
}

/// Writes `data` to `path` (under the store) through a temporary file of
/// this process and thread, as the compiled cache does.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("store paths have a parent");
    crate::runtime::cache::write_atomically(dir, path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_come_back_whole_or_not_at_all_and_the_cap_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path(), 250);
        let a = store.put(&[1u8; 100]).unwrap();
        assert_eq!(store.get(&a).unwrap(), vec![1u8; 100]);
        // A blob changed on disk is not served.
        let path = store.blob_path(&a).unwrap();
        std::fs::write(&path, [2u8; 100]).unwrap();
        assert!(store.get(&a).is_none() && !path.exists());
        let b = store.put(&[3u8; 100]).unwrap();
        let c = store.put(&[4u8; 100]).unwrap();
        let d = store.put(&[5u8; 100]).unwrap();
        assert!(store.get(&b).is_none(), "the oldest went past the cap");
        assert!(store.get(&c).is_some() && store.get(&d).is_some());
        assert!(store.get("sha256:../../etc").is_none());
    }

    #[test]
    fn a_tag_remembers_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path(), 1 << 20);
        let r = OciRef::parse("oci://h:1/a:v1").unwrap();
        assert!(store.tag(&r).is_none());
        let d = format!("sha256:{}", "0".repeat(64));
        store.set_tag(&r, &d).unwrap();
        assert_eq!(store.tag(&r).unwrap().digest, d);
        assert!(store.tag(&r.at_tag("v2")).is_none());
    }
}

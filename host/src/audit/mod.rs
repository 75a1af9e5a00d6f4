//! The audit log: append-only JSON lines, one record per decision (a call,
//! an effect, a limit), each chained to the one before by a SHA-256 hash so
//! that an edit, a deletion or a reordering is caught by [`verify`].
//!
//! A record's `hash` is the SHA-256 of the record serialized with `hash`
//! empty; `prev` is the previous record's `hash` (64 zeros for the very
//! first). `seq` counts up by one. Rotation moves the full file aside as
//! `<path>.<first seq, 12 digits>` and starts a new one whose first record
//! chains to the last of the old: `warden audit verify path.* path` checks
//! the whole history in order. Appends take an advisory lock on
//! `.<name>.lock` beside the log and first catch up with what other
//! processes appended, so several hosts or CLI runs keep one chain.
//!
//! With `[audit] signing-key`, the writer adds signed checkpoints: a
//! `checkpoint` record whose `target` is the key's id and whose `reason` is
//! why it was written (`records`, `time`, `rotation`, `close`) and the
//! Ed25519 signature over the chain head it follows
//! ([`signing::checkpoint_message`]). A chain rewritten from some record on
//! (hashes recomputed) no longer matches the signatures after it; `warden
//! audit verify --key` checks them and says how far the log is signed.
//!
//! Records carry names, never secret values.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

mod file;
pub mod ocsf;
mod record;
pub mod signing;
pub mod sink;
mod verify;
mod writer;

pub(crate) use record::{CallFields, Pending};
pub use record::{Effect, Outcome};
pub use verify::{verify, verify_signed, Signed, Verdict};
pub use writer::{AuditLog, Signing};
pub(crate) use writer::{OwnedReceipt, Receipt, Wait};

/// The `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// When records reach the disk (`[audit] sync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SyncPolicy {
    /// `fsync` after every record: nothing acknowledged is lost on a crash.
    Always,
    /// Every record is handed to the OS before what waits on it goes on;
    /// the writer holds none back more than 100 µs to fill a batch (lost
    /// only if the machine fails). The default.
    #[default]
    Flush,
    /// Records are buffered and written every 64 records, at rotation and at
    /// shutdown (fastest; a crash loses the buffer).
    Buffered,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the whole history, from 1.
    pub seq: u64,
    /// UTC time, RFC 3339 with milliseconds.
    pub time: String,
    /// The plugin concerned (empty for host-level records).
    pub plugin: String,
    /// The plugin's component digest (`sha256:...`).
    pub digest: String,
    /// The capability called.
    pub capability: String,
    /// The call this record belongs to.
    pub call_id: String,
    /// `call`, `approval`, `egress`, `socket`, `secret`, `env`, `file`,
    /// `limit`, `log`, `session`, `load`.
    pub effect: String,
    /// What the effect was aimed at (a URL, an address, a path, a name).
    pub target: String,
    /// `allow` or `deny` (or `error` for a call that failed after being allowed).
    pub decision: String,
    /// Why.
    pub reason: String,
    /// How long it took, when it is a span.
    pub duration_ms: Option<u64>,
    /// Who asked for the call, when the host knows (`warden serve` names the
    /// MCP client's principal and session). Absent from records without one,
    /// so logs written before this field existed still verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The replica that wrote it (`[audit] replica`), in a log of one of
    /// several replicas; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The previous record's hash.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
}

impl Record {
    pub(crate) fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let text = serde_json::to_string(&unhashed).expect("records serialize");
        crate::digest::sha256_hex(text.as_bytes())
    }
}

/// What an effect or decision contributes; the log fills in the rest.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// See [`Record::plugin`].
    pub plugin: String,
    /// See [`Record::digest`].
    pub digest: String,
    /// See [`Record::capability`].
    pub capability: String,
    /// See [`Record::call_id`].
    pub call_id: String,
    /// See [`Record::effect`].
    pub effect: Effect,
    /// See [`Record::target`].
    pub target: String,
    /// See [`Record::decision`].
    pub decision: Outcome,
    /// See [`Record::reason`].
    pub reason: String,
    /// See [`Record::duration_ms`].
    pub duration_ms: Option<u64>,
    /// See [`Record::client`].
    pub client: Option<String>,
}

/// Why an audit log cannot be opened, written or verified.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("audit log {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The existing log's last record is damaged; the host will not append
    /// to a chain it cannot continue.
    #[error("audit log {path}: its last record is damaged ({message}); move the file aside (and verify it) before starting")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The audit log (`[audit]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditSettings {
    /// The JSON-lines file, relative to the config file.
    pub path: PathBuf,
    /// When records reach the disk: `always` (fsync each), `flush` (default:
    /// each handed to the OS), `buffered`.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// Rotate the file once it reaches this size (0: never).
    #[serde(default)]
    pub rotate_bytes: u64,
    /// Records one plugin's effects, and one client's calls, may write per
    /// minute; past it they are counted and summarized (default 60000).
    #[serde(default)]
    pub max_records_per_minute: Option<u64>,
    /// Bytes (a size: `"64MiB"`, the default) one plugin's effects, and
    /// one client's calls, may write per minute.
    #[serde(default, deserialize_with = "crate::limits::de_size")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::limits::size_schema")
    )]
    pub max_bytes_per_minute: Option<u64>,
    /// The Ed25519 key (PKCS#8 PEM) that signs checkpoints over the chain
    /// head: `{ file = "host.key" }` (relative to the config file) or
    /// `{ secret = "AUDIT_KEY" }`. `warden audit keygen` makes one.
    #[serde(default)]
    pub signing_key: Option<KeySource>,
    /// With a signing key: a checkpoint after this many records (default
    /// 1000), besides every `checkpoint-ms`, at rotation and at close.
    #[serde(default)]
    pub checkpoint_records: Option<u64>,
    /// With a signing key: a checkpoint this often while records come
    /// (default 60000).
    #[serde(default)]
    pub checkpoint_ms: Option<u64>,
    /// Records shipped to a collector as they are written
    /// (`[audit.sink]`).
    #[serde(default)]
    pub sink: Option<sink::SinkSettings>,
    /// The replica writing this log, named in each of its records (1-63
    /// letters, digits, `.`, `_`, `-`), so that the logs of several
    /// replicas can be told apart and verified together. `warden serve`
    /// with `[cluster]` sets it to its `[serve] replica-id` when unset.
    #[serde(default)]
    pub replica: Option<String>,
}

/// Whether `name` may name a replica: 1-63 ASCII letters, digits, `.`,
/// `_`, `-`.
pub fn is_replica_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where a key is read from: a file or a secret (exactly one).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeySource {
    /// A PEM file, relative to the config file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A secret of `[secrets]` whose value is the PEM text.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Default `[audit] checkpoint-records`.
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 1000;
/// Default `[audit] checkpoint-ms`.
pub const DEFAULT_CHECKPOINT_MS: u64 = 60_000;

/// The records and bytes one plugin or client may have written per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeLimits {
    /// Records per minute.
    pub records: u64,
    /// Bytes per minute (records as written, roughly).
    pub bytes: u64,
}

/// Default `[audit] max-records-per-minute`.
pub const DEFAULT_RECORDS_PER_MINUTE: u64 = 60_000;
/// Default `[audit] max-bytes-per-minute`.
pub const DEFAULT_BYTES_PER_MINUTE: u64 = 64 << 20;

impl AuditSettings {
    /// The volume limits in force.
    pub fn volume_limits(&self) -> VolumeLimits {
        VolumeLimits {
            records: self
                .max_records_per_minute
                .unwrap_or(DEFAULT_RECORDS_PER_MINUTE),
            bytes: self
                .max_bytes_per_minute
                .unwrap_or(DEFAULT_BYTES_PER_MINUTE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry {
        Entry {
            effect: Effect::Call,
            decision: Outcome::Allow,
            capability: format!("c{n}"),
            ..Entry::default()
        }
    }

    fn signed_by(records: u64, every_ms: u64) -> (Signing, signing::VerifyingKey) {
        let (private, public) = signing::SigningKey::generate();
        let signing = Signing {
            key: signing::SigningKey::from_pem(&private).unwrap(),
            records,
            every: std::time::Duration::from_millis(every_ms),
        };
        (signing, signing::VerifyingKey::from_pem(&public).unwrap())
    }

    fn rotated_then(dir: &std::path::Path, path: PathBuf) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("a.jsonl.")
            })
            .collect();
        files.sort();
        files.push(path);
        files
    }

    #[test]
    fn a_replicas_log_names_it_in_every_record_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log =
            AuditLog::open_shipped(&path, SyncPolicy::Flush, 0, None, None, Some("r-1")).unwrap();
        for n in 0..3 {
            log.append(entry(n)).unwrap();
        }
        drop(log);
        let files = vec![path.clone()];
        assert_eq!(verify(&files).unwrap(), Verdict::Ok { records: 3 });
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let record: Record = serde_json::from_str(line).unwrap();
            assert_eq!(record.replica.as_deref(), Some("r-1"), "{line}");
        }
        // Another replica's name in a record breaks its hash.
        std::fs::write(&path, text.replacen("\"r-1\"", "\"r-2\"", 1)).unwrap();
        assert!(matches!(verify(&files).unwrap(), Verdict::Bad { .. }));
        assert!(is_replica_name("pod-7.a_b") && !is_replica_name("a b") && !is_replica_name(""));
    }

    #[test]
    fn checkpoints_come_by_count_by_time_at_rotation_and_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let (signing, public) = signed_by(4, 60_000);
        let log = AuditLog::open_signed(&path, SyncPolicy::Flush, 0, Some(signing)).unwrap();
        for n in 0..9 {
            log.append(entry(n)).unwrap();
        }
        log.flush().unwrap();
        let files = vec![path.clone()];
        let (verdict, signed) = verify_signed(&files, &public).unwrap();
        assert_eq!(verdict, Verdict::Ok { records: 11 }, "two by count");
        assert_eq!(
            (signed.checkpoints, signed.through, signed.after),
            (2, Some(9), 1)
        );
        assert!(!signed.closed);
        drop(log);
        let (_, signed) = verify_signed(&files, &public).unwrap();
        assert_eq!((signed.checkpoints, signed.closed), (3, true), "{signed:?}");

        // By time: a record, then the clock's tick signs it.
        let (signing, public) = signed_by(1000, 30);
        let path = dir.path().join("b.jsonl");
        let log = AuditLog::open_signed(&path, SyncPolicy::Flush, 0, Some(signing)).unwrap();
        log.append(entry(1)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, signed) = verify_signed(std::slice::from_ref(&path), &public).unwrap();
            if signed.checkpoints == 1 {
                assert_eq!(signed.through, Some(1));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint by time"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(log);

        // At rotation: each file ends signed.
        let sub = tempfile::tempdir().unwrap();
        let path = sub.path().join("a.jsonl");
        let (signing, public) = signed_by(1000, 60_000);
        let log = AuditLog::open_signed(&path, SyncPolicy::Flush, 1500, Some(signing)).unwrap();
        for n in 0..30 {
            log.append(entry(n)).unwrap();
        }
        drop(log);
        let files = rotated_then(sub.path(), path);
        assert!(files.len() >= 3, "{files:?}");
        let (verdict, signed) = verify_signed(&files, &public).unwrap();
        assert!(matches!(verdict, Verdict::Ok { .. }), "{verdict:?}");
        assert!(
            signed.closed && signed.checkpoints as usize >= files.len(),
            "{signed:?}"
        );
        for rotated in &files[..files.len() - 1] {
            let text = std::fs::read_to_string(rotated).unwrap();
            assert!(
                text.lines().last().unwrap().contains("\"rotation "),
                "{rotated:?}"
            );
        }
    }

    #[test]
    fn a_rewritten_chain_or_another_key_fails_the_signed_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let (signing, public) = signed_by(3, 60_000);
        let log = AuditLog::open_signed(&path, SyncPolicy::Flush, 0, Some(signing)).unwrap();
        for n in 0..6 {
            log.append(entry(n)).unwrap();
        }
        drop(log);
        let files = vec![path.clone()];
        assert!(verify_signed(&files, &public).unwrap().1.closed);
        // Another key's public half: the first checkpoint names the signer.
        let (_, other) = signed_by(3, 60_000);
        match verify_signed(&files, &other).unwrap().0 {
            Verdict::Bad { seq, reason, .. } => {
                assert_eq!(seq, Some(4));
                assert!(reason.contains("signed by key"), "{reason}");
            }
            ok => panic!("{ok:?}"),
        }
        // Rewrite the second record and every hash after it: the plain
        // chain is whole again, the signatures are not.
        let mut records: Vec<Record> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        records[1].reason = "nothing happened".into();
        for i in 1..records.len() {
            records[i].prev = records[i - 1].hash.clone();
            records[i].hash = records[i].compute_hash();
        }
        let text: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&path, text).unwrap();
        assert!(matches!(verify(&files).unwrap(), Verdict::Ok { .. }));
        match verify_signed(&files, &public).unwrap().0 {
            Verdict::Bad { seq, reason, .. } => {
                assert_eq!(seq, Some(4), "the first checkpoint after the edit");
                assert!(reason.contains("rewritten"), "{reason}");
            }
            ok => panic!("{ok:?}"),
        }
    }

    #[test]
    fn two_writers_keep_one_chain_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let a = AuditLog::open(&path, SyncPolicy::Flush, 2000).unwrap();
        let b = AuditLog::open(&path, SyncPolicy::Always, 2000).unwrap();
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|log| {
                std::thread::spawn(move || {
                    for n in 0..40 {
                        log.append(entry(n)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                name.starts_with("a.jsonl.")
            })
            .collect();
        files.sort();
        assert!(files.len() >= 2, "rotated: {files:?}");
        files.push(path);
        assert_eq!(verify(&files).unwrap(), Verdict::Ok { records: 80 });
    }

    /// A burst makes the writer wait for batches to fill; what comes after
    /// it, awaited or not, is still written without anyone asking.
    #[test]
    fn records_after_a_burst_are_written_without_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = std::sync::Arc::new(AuditLog::open(&path, SyncPolicy::Flush, 0).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let burst: Vec<_> = (0..500)
                .map(|n| {
                    let log = log.clone();
                    tokio::spawn(async move { log.append_async(entry(n)).await })
                })
                .collect();
            for task in burst {
                task.await.unwrap().unwrap();
            }
            // Queued while the writer lingers, then nothing more comes.
            for n in 0..10 {
                log.append_detached(entry(n)).unwrap();
            }
            // A lone awaited record after a pause: the writer no longer lingers.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let lone = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                log.append_async(entry(1)),
            );
            lone.await.expect("a lone record is written").unwrap();
        });
        // The detached ones went in before the lone one, in the same order.
        assert_eq!(
            verify(std::slice::from_ref(&path)).unwrap(),
            Verdict::Ok { records: 511 }
        );
        // Detached records alone reach the file with nobody waiting.
        log.append_detached(entry(2)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap().lines().count() < 512 {
            assert!(
                std::time::Instant::now() < deadline,
                "a detached record was not written"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn a_reopened_log_continues_its_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        {
            let log = AuditLog::open(&path, SyncPolicy::Flush, 0).unwrap();
            log.append(entry(1)).unwrap();
        }
        let log = AuditLog::open(&path, SyncPolicy::Flush, 0).unwrap();
        log.append(entry(2)).unwrap();
        assert_eq!(
            verify(std::slice::from_ref(&path)).unwrap(),
            Verdict::Ok { records: 2 }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let last: Record = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last.seq, 2);
    }
}

//! Following a growing audit log as `tail -F` does, knowing how the log
//! rotates: the open file is read to its end before a rotation (a new file
//! at the path) is followed, and the files rotated away meanwhile
//! (`<path>.<first seq>`, several if the log rotated more than once
//! between two looks) are read in order before the new one, so no record
//! is missed.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A log file followed from an offset.
pub(crate) struct Follower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// (device, inode) of the file read.
    id: Option<(u64, u64)>,
    /// A partial last line, waiting for its end.
    pending: String,
    /// The `seq` of the last record handed on.
    last_seq: u64,
}

fn file_id(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

fn path_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Follower {
    /// Follows `path` from byte `offset` (its end, to print only what
    /// comes; 0 for everything).
    pub(crate) fn new(path: &Path, offset: u64) -> anyhow::Result<Follower> {
        let mut follower = Follower {
            path: path.to_path_buf(),
            reader: None,
            id: None,
            pending: String::new(),
            last_seq: 0,
        };
        follower.open(offset)?;
        follower.last_seq = last_seq_before(path, offset);
        Ok(follower)
    }

    /// Opens the file now at the path (if any), at `offset`.
    fn open(&mut self, offset: u64) -> anyhow::Result<()> {
        let Ok(mut file) = File::open(&self.path) else {
            self.reader = None;
            self.id = None;
            return Ok(());
        };
        file.seek(SeekFrom::Start(offset))?;
        self.id = file_id(&file);
        self.reader = Some(BufReader::new(file));
        self.pending.clear();
        Ok(())
    }

    /// Hands `each` every whole record appended since the last call,
    /// across a rotation.
    pub(crate) fn poll(&mut self, mut each: impl FnMut(&str)) -> anyhow::Result<()> {
        self.read_to_end(&mut each)?;
        let now = path_id(&self.path);
        if now.is_some() && now != self.id {
            // Rotated: the old file was read to its end above (its writer
            // finished it before moving it); files rotated after it, then
            // the new one, are read whole. The new one is opened first, so
            // that a rotation between the two looks cannot hide a file; a
            // rotated file that is the one opened is read once, through it.
            let newest = File::open(&self.path).ok();
            let newest_id = newest.as_ref().and_then(file_id);
            for file in self.rotated_since()? {
                let file = File::open(&file)?;
                if newest_id.is_some() && file_id(&file) == newest_id {
                    continue;
                }
                self.pending.clear();
                Self::read_lines(
                    &mut BufReader::new(file),
                    &mut self.pending,
                    &mut self.last_seq,
                    &mut each,
                )?;
            }
            self.pending.clear();
            self.id = newest_id;
            self.reader = newest.map(BufReader::new);
            self.read_to_end(&mut each)?;
        }
        Ok(())
    }

    /// The rotated files (`<path>.<first seq, 12 digits>`) that begin after
    /// the last record handed on, oldest first.
    fn rotated_since(&self) -> anyhow::Result<Vec<PathBuf>> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(Vec::new());
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let seq = file.strip_prefix(&prefix)?;
                (seq.len() == 12 && seq.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| seq.parse().ok())?
                    .filter(|first| *first > self.last_seq)
                    .map(|first| (first, e.path()))
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, p)| p).collect())
    }

    fn read_to_end(&mut self, each: &mut impl FnMut(&str)) -> anyhow::Result<()> {
        let Some(reader) = &mut self.reader else {
            return Ok(());
        };
        Self::read_lines(reader, &mut self.pending, &mut self.last_seq, each)
    }

    /// Hands on each whole line `reader` has; a partial one waits in
    /// `pending`.
    fn read_lines(
        reader: &mut impl BufRead,
        pending: &mut String,
        last_seq: &mut u64,
        each: &mut impl FnMut(&str),
    ) -> anyhow::Result<()> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            pending.push_str(&line);
            if pending.ends_with('\n') {
                let record = pending.trim_end();
                if let Some(seq) = seq_of(record) {
                    *last_seq = seq;
                }
                each(record);
                pending.clear();
            }
        }
    }
}

/// The `seq` of the last whole record before byte `offset` of `path` (0 if
/// none): where following starts.
fn last_seq_before(path: &Path, offset: u64) -> u64 {
    use std::io::Read;
    const TAIL: u64 = 1 << 20;
    let Ok(mut file) = File::open(path) else {
        return 0;
    };
    let start = offset.saturating_sub(TAIL);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(offset - start).read_to_end(&mut tail).is_err()
    {
        return 0;
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(seq_of)
        .unwrap_or(0)
}

/// The `seq` a record begins with (`{"seq":N,...`).
fn seq_of(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

//! Files in the directories the plugin's grants preopen.
//!
//! Paths are guest paths: `/data/in.txt` where a grant maps some host
//! directory to `/data`. A path outside every granted directory, an escape by
//! `..` or a symlink, and a write into a read-only grant all fail with
//! [`Error::Denied`].

use crate::__rt::bindings::wasi::filesystem::preopens;
use crate::__rt::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};
use crate::Error;

fn map_err(path: &str, code: ErrorCode) -> Error {
    match code {
        // The sandbox answers an escape through a symlink with ELOOP.
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly | ErrorCode::Loop => {
            Error::denied(format!("{path}: {}", code.message()))
        }
        ErrorCode::NoEntry => Error::not_found(format!("{path}: no such file or directory")),
        other => Error::internal(format!("{path}: {}", other.message())),
    }
}

/// Finds the granted directory holding `path` and the path relative to it.
fn resolve(path: &str) -> Result<(Descriptor, String), Error> {
    let mut best: Option<(Descriptor, String, usize)> = None;
    for (dir, root) in preopens::get_directories() {
        let root_trim = root.trim_end_matches('/');
        let rel = if root == "." && !path.starts_with('/') {
            Some(path.to_string())
        } else if path == root_trim {
            Some(String::new())
        } else if root_trim.is_empty() && path.starts_with('/') {
            Some(path.trim_start_matches('/').to_string())
        } else {
            path.strip_prefix(root_trim)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string)
        };
        if let Some(rel) = rel {
            if best
                .as_ref()
                .is_none_or(|(_, _, len)| root_trim.len() > *len)
            {
                best = Some((dir, rel, root_trim.len()));
            }
        }
    }
    match best {
        Some((dir, rel, _)) => Ok((dir, if rel.is_empty() { ".".into() } else { rel })),
        None => Err(Error::denied(format!(
            "{path}: not inside any directory granted to this plugin"
        ))),
    }
}

fn open(path: &str, open: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, Error> {
    let (dir, rel) = match resolve(path) {
        Ok(found) => found,
        // Outside every grant: the host still decides (and audits) it, by
        // refusing the path against a granted directory.
        Err(e) => match preopens::get_directories().into_iter().next() {
            Some((dir, _)) => (dir, path.to_string()),
            None => return Err(e),
        },
    };
    dir.open_at(PathFlags::empty(), &rel, open, flags)
        .map_err(|e| map_err(path, e))
}

/// Reads the whole file at `path`.
pub fn read(path: &str) -> Result<Vec<u8>, Error> {
    let file = open(path, OpenFlags::empty(), DescriptorFlags::READ)?;
    let mut out = Vec::new();
    loop {
        let (chunk, end) = file
            .read(64 * 1024, out.len() as u64)
            .map_err(|e| map_err(path, e))?;
        out.extend_from_slice(&chunk);
        if end || chunk.is_empty() {
            return Ok(out);
        }
    }
}

/// Reads the whole file at `path` as UTF-8 text.
pub fn read_to_string(path: &str) -> Result<String, Error> {
    String::from_utf8(read(path)?)
        .map_err(|_| Error::invalid_input(format!("{path}: not UTF-8 text")))
}

/// Creates or truncates the file at `path` and writes `data` to it.
pub fn write(path: &str, data: impl AsRef<[u8]>) -> Result<(), Error> {
    let file = open(
        path,
        OpenFlags::CREATE | OpenFlags::TRUNCATE,
        DescriptorFlags::WRITE,
    )?;
    let data = data.as_ref();
    let mut offset = 0usize;
    while offset < data.len() {
        let n = file
            .write(&data[offset..], offset as u64)
            .map_err(|e| map_err(path, e))?;
        offset += n as usize;
    }
    Ok(())
}

/// The names of the entries of the directory at `path`, sorted.
pub fn read_dir(path: &str) -> Result<Vec<String>, Error> {
    let dir = open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ)?;
    let stream = dir.read_directory().map_err(|e| map_err(path, e))?;
    let mut names = Vec::new();
    while let Some(entry) = stream
        .read_directory_entry()
        .map_err(|e| map_err(path, e))?
    {
        names.push(entry.name);
    }
    names.sort();
    Ok(names)
}

/// Whether `path` exists and is a directory.
pub fn is_dir(path: &str) -> Result<bool, Error> {
    let (dir, rel) = resolve(path)?;
    match dir.stat_at(PathFlags::empty(), &rel) {
        Ok(stat) => Ok(stat.type_ == DescriptorType::Directory),
        Err(ErrorCode::NoEntry) => Ok(false),
        Err(e) => Err(map_err(path, e)),
    }
}

//! `open-at` decided on the opened object: non-blocking open, then `fstat`.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use wasmtime_wasi::filesystem::{Descriptor, Dir, File};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, OpenFlags, PathFlags,
};
use wasmtime_wasi::OpenMode;

/// What the guest asked to open, relative to a directory descriptor.
pub(super) struct Request {
    path: PathBuf,
    follow: bool,
    oflags: OpenFlags,
    flags: DescriptorFlags,
}

impl Request {
    pub(super) fn new(
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Request {
        Request {
            path: PathBuf::from(path),
            follow: path_flags.contains(PathFlags::SYMLINK_FOLLOW),
            oflags,
            flags,
        }
    }

    /// The options for the OS, the mode to record on the descriptor, and
    /// whether the open may create a file; `Err` for flags WASI refuses.
    fn options(&self) -> Result<(cap_primitives::fs::OpenOptions, OpenMode, bool), ErrorCode> {
        use cap_primitives::fs::{FollowSymlinks, OpenOptions, OpenOptionsExt};
        let (oflags, flags) = (self.oflags, self.flags);
        let mut opts = OpenOptions::new();
        let mut mode = OpenMode::empty();
        let create = oflags.contains(OpenFlags::CREATE);
        if create {
            if oflags.contains(OpenFlags::EXCLUSIVE) {
                opts.create_new(true);
            } else {
                opts.create(true);
            }
            opts.write(true);
            mode |= OpenMode::WRITE;
        }
        if oflags.contains(OpenFlags::TRUNCATE) {
            opts.truncate(true).write(true);
            mode |= OpenMode::WRITE;
        }
        if flags.contains(DescriptorFlags::WRITE) {
            opts.write(true);
            mode |= OpenMode::WRITE;
        }
        // Read unless only writing was asked for (WASI opens read-only
        // descriptors for `open-at` with no flags).
        if flags.contains(DescriptorFlags::READ) || !flags.contains(DescriptorFlags::WRITE) {
            opts.read(true);
            mode |= OpenMode::READ;
        }
        // (`_cap_fs_ext_*` are what the `cap-fs-ext` traits call.)
        opts._cap_fs_ext_follow(FollowSymlinks::follow(self.follow));
        // A FIFO opens at once instead of waiting for its other end; the
        // type check below then refuses it. `O_NOCTTY`: a terminal never
        // becomes the host's controlling terminal.
        opts._cap_fs_ext_nonblock(true);
        opts.custom_flags(libc::O_NOCTTY);
        if flags.intersects(
            DescriptorFlags::FILE_INTEGRITY_SYNC
                | DescriptorFlags::DATA_INTEGRITY_SYNC
                | DescriptorFlags::REQUESTED_WRITE_SYNC,
        ) {
            return Err(ErrorCode::Unsupported);
        }
        if oflags.contains(OpenFlags::DIRECTORY)
            && oflags.intersects(OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE)
        {
            return Err(ErrorCode::Invalid);
        }
        Ok((opts, mode, create))
    }
}

/// What an open gave.
pub(super) enum Opened {
    /// A regular file or directory, ready for the guest's table.
    Descriptor(Descriptor),
    /// Anything else (FIFO, socket, device), already closed; names its kind.
    Special(&'static str),
}

/// What the blocking part found.
enum Found {
    Dir(std::fs::File),
    File(std::fs::File),
    NotDir,
    Special(&'static str),
}

/// Opens `request` under `parent` on the blocking pool, and decides on the
/// opened descriptor's own type (`fstat`), never on the path.
pub(super) async fn open_at(parent: &Dir, request: Request) -> Result<Opened, ErrorCode> {
    let (opts, mode, create) = request.options()?;
    if parent.perms.write_not_permitted() && (create || mode.contains(OpenMode::WRITE)) {
        return Err(ErrorCode::NotPermitted);
    }
    let want_dir = request.oflags.contains(OpenFlags::DIRECTORY);
    let dir = parent.dir.clone();
    let path = request.path;
    let found = tokio::task::spawn_blocking(move || -> std::io::Result<Found> {
        let opened = cap_primitives::fs::open(&dir, &path, &opts)?;
        let kind = opened.metadata()?.file_type();
        Ok(if kind.is_dir() {
            Found::Dir(clear_nonblocking(opened)?)
        } else if !kind.is_file() {
            Found::Special(special_kind(kind))
        } else if want_dir {
            Found::NotDir
        } else {
            Found::File(clear_nonblocking(opened)?)
        })
    })
    .await
    .map_err(|_| ErrorCode::Io)?
    .map_err(ErrorCode::from)?;
    // The host never blocks a runtime thread on a guest's file
    // (`allow_blocking_current_thread` stays off, as in the WASI context).
    match found {
        Found::Dir(d) => Ok(Opened::Descriptor(Descriptor::Dir(Dir::new(
            d,
            parent.perms,
            mode,
            false,
        )))),
        Found::File(f) => Ok(Opened::Descriptor(Descriptor::File(File::new(
            f,
            parent.perms,
            mode,
            false,
        )))),
        Found::NotDir => Err(ErrorCode::NotDirectory),
        Found::Special(kind) => Ok(Opened::Special(kind)),
    }
}

/// The handle every later use of `descriptor` (streams included) shares:
/// the file stays open while any clone of it lives.
pub(super) fn handle_of(descriptor: &Descriptor) -> Weak<std::fs::File> {
    match descriptor {
        Descriptor::File(f) => Arc::downgrade(&f.file),
        Descriptor::Dir(d) => Arc::downgrade(&d.dir),
    }
}

/// Regular files and directories are then used as if opened blocking.
fn clear_nonblocking(file: std::fs::File) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is open for as long as `file` lives; F_GETFL/F_SETFL
    // only read and set its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(file)
}

fn special_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

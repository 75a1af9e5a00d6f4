//! Per-plugin caps on open sockets and files (`limits.max-sockets`,
//! `limits.max-files`), counted across all of a plugin's instances, and the
//! host's own reserve of descriptors.
//!
//! Each instance counts what it holds when it creates one more (so sockets
//! and files the guest closed are given back then) and gives everything back
//! when it is dropped. An instance's count of other instances can only be
//! too high (a close not yet recounted), never too low: the cap is never
//! exceeded.
//!
//! A file is counted by its open handle, not by its descriptor in the
//! guest's table: a stream made from a descriptor (`read-via-stream`,
//! `write-via-stream`, `append-via-stream`) keeps the file open after the
//! descriptor is dropped, and keeps its slot with it. Directory listings
//! (`read-directory`) count too. The granted directories handed to the
//! guest are not counted, however often it asks for them: `max-files` is
//! exactly what the guest opened and still holds.

use crate::limits::{DescriptorBudget, Kind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use wasmtime::component::ResourceTable;

/// Descriptors the host keeps for itself (its own sockets and files, audit
/// log, compiled cache, loading plugins): the plugins' caps together must
/// leave at least this many under the process's open-file limit.
pub(crate) const HOST_DESCRIPTOR_RESERVE: u64 = 256;

/// What one instance holds, as last counted.
pub(crate) struct Held {
    budget: Arc<DescriptorBudget>,
    sockets: u32,
    files: u32,
    /// Every file and directory the guest opened, by its shared handle:
    /// alive while its descriptor or any stream of it is.
    opened: Vec<Weak<std::fs::File>>,
}

impl Held {
    pub(crate) fn new(budget: Arc<DescriptorBudget>) -> Held {
        Held {
            budget,
            sockets: 0,
            files: 0,
            opened: Vec::new(),
        }
    }

    /// Keeps track of a file the guest just opened (its slot was taken).
    pub(crate) fn opened(&mut self, handle: Weak<std::fs::File>) {
        self.opened.push(handle);
    }

    fn mine(&mut self, kind: Kind) -> &mut u32 {
        match kind {
            Kind::Socket => &mut self.sockets,
            Kind::File => &mut self.files,
        }
    }

    /// Counts the sockets and files held now and updates the plugin's
    /// totals.
    pub(crate) fn recount(&mut self, table: &mut ResourceTable) {
        let (mut sockets, mut listings) = (0u32, 0u32);
        for entry in table.iter_mut() {
            let entry: &dyn std::any::Any = entry;
            if entry.is::<wasmtime_wasi::p2::TcpSocket>()
                || entry.is::<wasmtime_wasi::p2::UdpSocket>()
            {
                sockets += 1;
            } else if entry.is::<wasmtime_wasi::p2::ReaddirIterator>() {
                listings += 1;
            }
        }
        self.opened.retain(|f| f.strong_count() > 0);
        let files = (self.opened.len() as u32).saturating_add(listings);
        for (kind, now) in [(Kind::Socket, sockets), (Kind::File, files)] {
            let before = std::mem::replace(self.mine(kind), now);
            let (total, _) = self.budget.counter(kind);
            if now == before {
                continue;
            }
            if now > before {
                total.fetch_add(now - before, Ordering::Relaxed);
            } else {
                total.fetch_sub(before - now, Ordering::Relaxed);
            }
        }
    }

    /// Takes one `kind` for a socket or file about to be created, or
    /// returns the cap that refuses it. [`give_back`](Self::give_back)
    /// returns it if the creation then fails.
    pub(crate) fn take(&mut self, kind: Kind, table: &mut ResourceTable) -> Result<(), u32> {
        self.recount(table);
        let (total, max) = self.budget.counter(kind);
        total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| max)?;
        *self.mine(kind) += 1;
        Ok(())
    }

    /// Returns what [`take`](Self::take) took for a creation that failed.
    pub(crate) fn give_back(&mut self, kind: Kind) {
        let mine = self.mine(kind);
        if *mine > 0 {
            *mine -= 1;
            self.budget.counter(kind).0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget
            .counter(Kind::Socket)
            .0
            .fetch_sub(self.sockets, Ordering::Relaxed);
        self.budget
            .counter(Kind::File)
            .0
            .fetch_sub(self.files, Ordering::Relaxed);
    }
}

/// The process's soft limit on open files; `None` where it cannot be read
/// or is unlimited.
#[cfg(unix)]
pub(crate) fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
    Some(lim.rlim_cur as u64)
}

#[cfg(not(unix))]
pub(crate) fn open_file_limit() -> Option<u64> {
    None
}

/// Raises the process's soft open-file limit to its hard limit (what a
/// server does at start; the `warden` CLI calls it). Returns the new soft
/// limit.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit/setrlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
    Some(lim.rlim_cur as u64)
}

/// Does nothing where there is no such limit.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

//! One plugin's caps on open sockets and files (`limits.max-sockets`,
//! `limits.max-files`), shared by its instances (`sandbox/descriptors.rs`
//! counts what each holds) and by the HTTP connections the host keeps for
//! it (`egress/`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// What a guest can hold open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Socket,
    File,
}

/// One plugin's caps and what its instances (and the host's HTTP
/// connections on its behalf) hold.
pub(crate) struct DescriptorBudget {
    sockets: AtomicU32,
    files: AtomicU32,
    max_sockets: u32,
    max_files: u32,
    /// Woken when a connection the host held for the plugin is closed.
    released: tokio::sync::Notify,
    /// Sockets held by the host's connections for the plugin.
    by_host: AtomicU32,
}

impl DescriptorBudget {
    pub(crate) fn new(max_sockets: u32, max_files: u32) -> Arc<Self> {
        Arc::new(DescriptorBudget {
            sockets: AtomicU32::new(0),
            files: AtomicU32::new(0),
            max_sockets,
            max_files,
            released: tokio::sync::Notify::new(),
            by_host: AtomicU32::new(0),
        })
    }

    /// The plugin's `max-sockets`.
    pub(crate) fn max_sockets(&self) -> u32 {
        self.max_sockets
    }

    /// Takes one socket for an HTTP connection the host opens for the
    /// plugin (pooled or in use), or `None` at the cap. The slot is given
    /// back when the connection is closed (the [`SocketSlot`] dropped).
    pub(crate) fn try_take_socket(self: &Arc<Self>) -> Option<SocketSlot> {
        self.sockets
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_sockets).then_some(n + 1)
            })
            .ok()?;
        self.by_host.fetch_add(1, Ordering::Relaxed);
        Some(SocketSlot(self.clone()))
    }

    /// How many of the plugin's sockets the host's connections hold now.
    pub(crate) fn held_by_host(&self) -> u32 {
        self.by_host.load(Ordering::Relaxed)
    }

    /// Resolves when a host-held connection of the plugin is closed.
    pub(crate) fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// The running total of `kind` and its cap.
    pub(crate) fn counter(&self, kind: Kind) -> (&AtomicU32, u32) {
        match kind {
            Kind::Socket => (&self.sockets, self.max_sockets),
            Kind::File => (&self.files, self.max_files),
        }
    }
}

/// One socket of a plugin's `max-sockets`, held by a connection the host
/// keeps for it; given back when dropped.
pub(crate) struct SocketSlot(Arc<DescriptorBudget>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
        self.0.by_host.fetch_sub(1, Ordering::Relaxed);
        self.0.released.notify_waiters();
    }
}

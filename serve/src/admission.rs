//! Requests in flight: at most `max-concurrent-per-client` of one client
//! and `max-concurrent` over all, so that no client takes the others' share.
//!
//! A client is named by a key: a token's principal, `stdio`, or, without
//! tokens, a 2025-11-25 session or an HTTP connection (local clients have
//! no identity of their own, and must not share one budget). With
//! `[cluster]` a request may also hold a place across replicas
//! ([`SharedHold`], taken by `cluster_holds.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use warden::cluster::Cluster;

/// Which budget was spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spent {
    /// The client's own (`max-concurrent-per-client`).
    Client,
    /// Everyone's (`max-concurrent`).
    Total,
}

#[derive(Default)]
struct Counts {
    by_client: HashMap<String, u32>,
    total: u32,
}

/// The budgets of every client.
pub(crate) struct Budgets {
    per_client: u32,
    total: u32,
    counts: Mutex<Counts>,
    /// Woken whenever the last request in flight ends.
    idle: Notify,
}

/// A request counted in flight until dropped.
pub(crate) struct InFlight {
    budgets: Arc<Budgets>,
    key: String,
    /// Its place across replicas, with `[cluster]`.
    _shared: Option<SharedHold>,
}

impl InFlight {
    /// The same request, holding `place` across replicas too.
    pub(crate) fn holding(mut self, place: SharedHold) -> InFlight {
        self._shared = Some(place);
        self
    }
}

impl Budgets {
    pub(crate) fn new(per_client: u32, total: u32) -> Self {
        Budgets {
            per_client,
            total,
            counts: Mutex::new(Counts::default()),
            idle: Notify::new(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request of client `key` in flight, or says which budget is
    /// spent.
    pub(crate) fn enter(self: &Arc<Self>, key: &str) -> Result<InFlight, Spent> {
        let mut counts = self.counts();
        if counts.total >= self.total {
            return Err(Spent::Total);
        }
        let mine = counts.by_client.get(key).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(Spent::Client);
        }
        counts.by_client.insert(key.to_string(), mine + 1);
        counts.total += 1;
        Ok(InFlight {
            budgets: self.clone(),
            key: key.to_string(),
            _shared: None,
        })
    }

    /// Requests in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.counts().total as usize
    }

    /// Resolves once no request is in flight.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.budgets.counts();
        if let Some(n) = counts.by_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.by_client.remove(&self.key);
            }
        }
        counts.total = counts.total.saturating_sub(1);
        if counts.total == 0 {
            drop(counts);
            self.budgets.idle.notify_waiters();
        }
    }
}

/// How long a place is held without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// A place held in Redis: renewed every third of its lease, given back
/// when dropped.
pub(crate) struct SharedHold {
    cluster: Arc<Cluster>,
    name: String,
    holder: String,
    renewing: tokio::task::JoinHandle<()>,
}

impl SharedHold {
    pub(crate) fn start(cluster: Arc<Cluster>, name: String, holder: String) -> SharedHold {
        let renewing = {
            let (cluster, name, holder) = (cluster.clone(), name.clone(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let _ = cluster.renew(&name, &holder, LEASE).await;
                }
            })
        };
        SharedHold {
            cluster,
            name,
            holder,
            renewing,
        }
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        self.renewing.abort();
        let (cluster, name, holder) = (
            self.cluster.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.holder),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { cluster.release(&name, &holder).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_have_their_own_share_under_the_total() {
        let b = Arc::new(Budgets::new(2, 3));
        let a1 = b.enter("a").unwrap();
        let _a2 = b.enter("a").unwrap();
        assert_eq!(b.enter("a").err(), Some(Spent::Client));
        let _b1 = b.enter("b").unwrap();
        assert_eq!(b.enter("c").err(), Some(Spent::Total));
        drop(a1);
        let _c = b.enter("c").unwrap();
        assert_eq!(b.in_flight(), 3);
    }

    #[test]
    fn ended_clients_leave_no_entry() {
        let b = Arc::new(Budgets::new(1, 10));
        for i in 0..100 {
            drop(b.enter(&format!("conn:{i}")).unwrap());
        }
        assert!(b.counts().by_client.is_empty());
        assert_eq!(b.in_flight(), 0);
    }
}

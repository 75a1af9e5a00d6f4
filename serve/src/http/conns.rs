//! Open connections: at most `max-connections`, and `max-connections-per-ip`
//! from one client address. At a cap, a new connection makes room by
//! closing the one that has waited longest for a request: stalled in its
//! headers or body, or idle between requests. Connections serving a request
//! are never closed for room; when every one is, the new one is closed.
//!
//! So stalled connections cannot lock new clients out: each new client
//! takes the place of the stalest, while `header-timeout-ms` and
//! `body-timeout-ms` close stalled ones anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One open connection.
pub(crate) struct Conn {
    /// Unique among the server's connections.
    pub(crate) id: u64,
    pub(crate) peer: IpAddr,
    /// The address whose cap it counts against.
    key: IpAddr,
    /// When its wait for a request began; `None` while it serves one.
    waiting_since: Mutex<Option<Instant>>,
    /// Responses it has started sending.
    responses: AtomicU64,
    close: Notify,
}

impl Conn {
    fn since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.waiting_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request came whole and is being served: the connection is not
    /// closed for room until its response ends.
    pub(crate) fn serving(&self) {
        *self.since() = None;
    }

    /// Its response ended (or was dropped): it waits for the next request.
    pub(crate) fn responded(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        *self.since() = Some(Instant::now());
    }

    /// Responses sent so far.
    pub(crate) fn responses(&self) -> u64 {
        self.responses.load(Ordering::Relaxed)
    }

    /// How long it has waited for a request; `None` while it serves one.
    fn waited(&self) -> Option<Duration> {
        self.since().map(|t| t.elapsed())
    }

    /// Resolves once the connection is closed for room.
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }
}

/// Which cap a new connection met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cap {
    /// `max-connections`.
    Total,
    /// `max-connections-per-ip`.
    PerIp,
}

/// A connection closed to make room: who, how long it had waited, and the
/// cap that was met.
pub(crate) struct Shed {
    pub(crate) peer: IpAddr,
    pub(crate) waited: Duration,
    pub(crate) cap: Cap,
}

#[derive(Default)]
struct Open {
    conns: HashMap<u64, Arc<Conn>>,
    by_key: HashMap<IpAddr, usize>,
}

impl Open {
    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let c = self.conns.remove(&id)?;
        if let Some(n) = self.by_key.get_mut(&c.key) {
            *n -= 1;
            if *n == 0 {
                self.by_key.remove(&c.key);
            }
        }
        Some(c)
    }

    /// Closes the connection (of `key`, if given) that has waited longest
    /// for a request; `None` if every one serves a request.
    fn shed_stalest(&mut self, key: Option<IpAddr>, cap: Cap) -> Option<Shed> {
        let (id, waited) = self
            .conns
            .values()
            .filter(|c| key.is_none_or(|k| c.key == k))
            .filter_map(|c| c.waited().map(|w| (c.id, w)))
            .max_by_key(|(_, w)| *w)?;
        let c = self.remove(id)?;
        c.close.notify_one();
        Some(Shed {
            peer: c.peer,
            waited,
            cap,
        })
    }
}

/// Every open connection of one listener.
pub(crate) struct Conns {
    max: usize,
    per_ip: usize,
    next: AtomicU64,
    open: Mutex<Open>,
}

/// A connection's place, given back when dropped.
pub(crate) struct Place {
    conns: Arc<Conns>,
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.conns.open().remove(self.conn.id);
    }
}

impl Conns {
    pub(crate) fn new(max: usize, per_ip: usize) -> Self {
        Conns {
            max,
            per_ip,
            next: AtomicU64::new(1),
            open: Mutex::new(Open::default()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer`, closing stalled ones to make room
    /// (returned, to be counted); `Err` names the cap met when every
    /// connection in its way serves a request.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(Place, Vec<Shed>), Cap> {
        let key = cap_key(peer);
        let mut open = self.open();
        let mut shed = Vec::new();
        if open.by_key.get(&key).copied().unwrap_or(0) >= self.per_ip {
            shed.push(open.shed_stalest(Some(key), Cap::PerIp).ok_or(Cap::PerIp)?);
        }
        if open.conns.len() >= self.max {
            shed.push(open.shed_stalest(None, Cap::Total).ok_or(Cap::Total)?);
        }
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            peer,
            key,
            waiting_since: Mutex::new(Some(Instant::now())),
            responses: AtomicU64::new(0),
            close: Notify::new(),
        });
        open.conns.insert(conn.id, conn.clone());
        *open.by_key.entry(key).or_insert(0) += 1;
        let place = Place {
            conns: self.clone(),
            conn,
        };
        Ok((place, shed))
    }

    /// Open connections now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open().conns.len()
    }
}

/// The address a connection's cap is kept by: IPv4 as it is, IPv6 by its
/// /64 (one host commonly has a whole /64 to pick from).
fn cap_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_stalest_waiting_connection_makes_room() {
        let conns = Arc::new(Conns::new(3, 2));
        let (a, _) = conns.admit(ip("10.0.0.1")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let (b, _) = conns.admit(ip("10.0.0.1")).unwrap();
        // Per address: the older of the two waiting goes.
        let (c, shed) = conns.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(shed.len(), 1);
        assert_eq!(shed[0].cap, Cap::PerIp);
        assert!(!conns.open().conns.contains_key(&a.conn.id));
        // One serving a request is never closed for room.
        b.conn.serving();
        c.conn.serving();
        assert_eq!(conns.admit(ip("10.0.0.1")).err(), Some(Cap::PerIp));
        let (d, shed) = conns.admit(ip("10.0.0.2")).unwrap();
        assert!(shed.is_empty());
        d.conn.serving();
        assert_eq!(conns.admit(ip("10.0.0.3")).err(), Some(Cap::Total));
        // Once its response ends, it waits again and may go.
        d.conn.responded();
        let (_e, shed) = conns.admit(ip("10.0.0.3")).unwrap();
        assert_eq!((shed.len(), shed[0].cap), (1, Cap::Total));
        drop(a);
        assert_eq!(conns.len(), 3);
        drop(b);
        assert_eq!(conns.len(), 2);
    }

    #[test]
    fn ipv6_addresses_share_a_cap_per_64() {
        assert_eq!(cap_key(ip("2001:db8::1")), cap_key(ip("2001:db8::ffff:1")));
        assert_ne!(cap_key(ip("2001:db8::1")), cap_key(ip("2001:db8:0:1::1")));
        assert_eq!(cap_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        let conns = Arc::new(Conns::new(10, 1));
        let (a, _) = conns.admit(ip("2001:db8::1")).unwrap();
        a.conn.serving();
        assert_eq!(conns.admit(ip("2001:db8::2")).err(), Some(Cap::PerIp));
    }
}

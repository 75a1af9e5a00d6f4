//! Requests in flight per principal across replicas (`[cluster]`, with
//! tokens or OAuth): besides this replica's count, each request holds one
//! of `max-concurrent-per-client` places of its principal in Redis, under
//! a lease renewed while it runs, so that a replica that dies lets its
//! places go within a lease.

use crate::admission::{SharedHold, LEASE};
use crate::protocol::{self, RpcError};
use crate::refusals::Refusal;
use crate::{Busy, Shared};
use warden::cluster::OnUnreachable;

impl Shared {
    /// [`enter`](Shared::enter), and with `[cluster]` and authenticated
    /// clients (whose key is their principal, the same on every replica),
    /// one of the principal's places across replicas.
    pub(crate) async fn enter_everywhere(
        &self,
        client: &str,
    ) -> Result<crate::admission::InFlight, Busy> {
        let in_flight = self.enter(client)?;
        let cluster = self.cluster();
        let (Some(cluster), true) = (cluster, self.requires_auth()) else {
            return Ok(in_flight);
        };
        let name = format!("in-flight:{client}");
        let holder = crate::approval::hex(&crate::approval::random::<16>());
        let limit = self.settings.max_concurrent_per_client;
        let message = match cluster.hold(&name, &holder, limit, LEASE).await {
            Ok(true) => return Ok(in_flight.holding(SharedHold::start(cluster, name, holder))),
            Ok(false) => format!(
                "more than {limit} requests in flight for this client across replicas (serve.max-concurrent-per-client)"
            ),
            Err(_) if cluster.mode() == OnUnreachable::FailOpen => return Ok(in_flight),
            Err(e) => format!(
                "the client's requests in flight across replicas cannot be counted ({e}; cluster.on-unreachable = fail-closed)"
            ),
        };
        self.refusals
            .note(Refusal::Busy, &format!("{client}: {message}"));
        Err(Busy {
            stopping: false,
            error: RpcError::new(protocol::BUSY, message),
        })
    }
}

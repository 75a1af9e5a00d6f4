//! DNS service records (SRV, RFC 2782), for finding the hosts of a service
//! (DNS-SD, `_warden._tcp.example.org`) through the host's governed DNS. A
//! name is looked up only when one of the plugin's network grants names it
//! (a `*.` wildcard over it counts), and each lookup is recorded in the
//! host's audit log. Reaching the targets is decided by egress as for any
//! host. Name lookups for addresses go through `wasi:sockets` or HTTP.

use crate::__rt::bindings::warden::provider::host;
use crate::Error;

/// One host of a service: a target of its SRV records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    /// Lower is tried first.
    pub priority: u16,
    /// Among targets of one priority, the share of the load.
    pub weight: u16,
    /// The port the service listens on there.
    pub port: u16,
    /// The host name (lower case, no trailing dot).
    pub host: String,
}

/// The targets of the SRV records of `name`, lowest priority first (at
/// most 64). [`Error::Denied`] when no grant names it, [`Error::NotFound`]
/// when it has no records, [`Error::Timeout`] when no answer came within
/// the plugin's `request-timeout-ms`, [`Error::Upstream`] when the
/// nameservers failed.
pub fn lookup_service(name: &str) -> Result<Vec<ServiceTarget>, Error> {
    let targets = host::lookup_service(name).map_err(Error::from)?;
    Ok(targets
        .into_iter()
        .map(|t| ServiceTarget {
            priority: t.priority,
            weight: t.weight,
            port: t.port,
            host: t.target,
        })
        .collect())
}

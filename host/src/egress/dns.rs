//! Name resolution for one plugin: an async DNS resolver of its own (a
//! query that never answers holds no thread, and shares no cache, socket
//! or queue with another plugin's), with at most [`MAX_PENDING_LOOKUPS`]
//! lookups under way at once.
//!
//! The nameservers are the system's (`/etc/resolv.conf`, with
//! `/etc/hosts` first) unless `[host] dns-servers` names others. The
//! resolver is built on the plugin's first lookup: a plugin that never
//! resolves a name costs nothing. Addresses (A, AAAA) and service records
//! (SRV) go through the same slots.

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Lookups one plugin may have under way at once; more wait for one to
/// end, within the waiting caller's own time.
pub(crate) const MAX_PENDING_LOOKUPS: usize = 4;

/// How long one query waits for a nameserver before the next attempt.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a name was not resolved.
#[derive(Debug)]
pub(crate) enum DnsFailure {
    /// No answer within the caller's time (waiting for a free lookup slot
    /// included).
    Timeout,
    /// The name has no address, or the resolver failed; says which.
    Failed(String),
}

/// One plugin's resolver.
pub(crate) struct Dns {
    servers: Arc<[SocketAddr]>,
    resolver: OnceLock<Result<TokioResolver, String>>,
    pending: Semaphore,
}

impl Dns {
    /// A resolver for the system's nameservers, or `servers` where given.
    pub(crate) fn new(servers: Arc<[SocketAddr]>) -> Dns {
        Dns {
            servers,
            resolver: OnceLock::new(),
            pending: Semaphore::new(MAX_PENDING_LOOKUPS),
        }
    }

    /// The addresses of `host`, within `timeout` from now.
    pub(crate) async fn lookup(
        &self,
        host: &str,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, DnsFailure> {
        self.within(timeout, async |resolver| {
            let found = resolver
                .lookup_ip(host)
                .await
                .map_err(|e| DnsFailure::Failed(format!("cannot resolve {host}: {e}")))?;
            let mut addrs: Vec<IpAddr> = Vec::new();
            for ip in found.iter().map(|ip| ip.to_canonical()) {
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
            Ok(addrs)
        })
        .await
    }

    /// The SRV records of `name`, at most [`MAX_SERVICE_TARGETS`] of them
    /// by priority, within `timeout` from now; `Ok(None)` when the name has
    /// none.
    pub(crate) async fn lookup_service(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<Vec<ServiceTarget>>, DnsFailure> {
        self.within(timeout, async |resolver| {
            let found = match resolver.lookup(name, RecordType::SRV).await {
                Ok(found) => found,
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(None),
                Err(e) => return Err(DnsFailure::Failed(format!("cannot look up {name}: {e}"))),
            };
            let mut targets: Vec<ServiceTarget> = found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(ServiceTarget {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_ascii().trim_end_matches('.').to_lowercase(),
                    }),
                    _ => None,
                })
                // A target of "." says the service is not offered there.
                .filter(|t| !t.target.is_empty())
                .collect();
            targets.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
            targets.truncate(MAX_SERVICE_TARGETS);
            Ok((!targets.is_empty()).then_some(targets))
        })
        .await
    }

    /// Runs `work` with the resolver in one of the lookup slots, all within
    /// `timeout` (the wait for a slot included).
    async fn within<T>(
        &self,
        timeout: Duration,
        work: impl AsyncFnOnce(&TokioResolver) -> Result<T, DnsFailure>,
    ) -> Result<T, DnsFailure> {
        let bounded = async {
            let _slot = self
                .pending
                .acquire()
                .await
                .map_err(|_| DnsFailure::Failed("the resolver is closed".into()))?;
            let resolver = self
                .resolver
                .get_or_init(|| build(&self.servers))
                .as_ref()
                .map_err(|e| DnsFailure::Failed(e.clone()))?;
            work(resolver).await
        };
        match tokio::time::timeout(timeout, bounded).await {
            Ok(result) => result,
            Err(_) => Err(DnsFailure::Timeout),
        }
    }
}

/// Most targets a service lookup answers.
pub(crate) const MAX_SERVICE_TARGETS: usize = 64;

/// One SRV record's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceTarget {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    /// A host name, lower case, without the trailing dot.
    pub(crate) target: String,
}

/// Builds a resolver over `servers`, or the system's configuration.
fn build(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let (config, mut options) = if servers.is_empty() {
        hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
    } else {
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        (
            ResolverConfig::from_parts(None, vec![], name_servers),
            ResolverOpts::default(),
        )
    };
    options.use_hosts_file = ResolveHosts::Always;
    options.timeout = options.timeout.min(QUERY_TIMEOUT);
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| format!("cannot start the resolver: {e}"))
}

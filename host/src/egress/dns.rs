//! Name resolution for one plugin: an async DNS resolver of its own (a
//! query that never answers holds no thread, and shares no cache, socket
//! or queue with another plugin's), with at most [`MAX_PENDING_LOOKUPS`]
//! lookups under way at once.
//!
//! The nameservers are the system's (`/etc/resolv.conf`, with
//! `/etc/hosts` first) unless `[host] dns-servers` names others. The
//! resolver is built on the plugin's first lookup: a plugin that never
//! resolves a name costs nothing.

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
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
        let work = async {
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
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(DnsFailure::Timeout),
        }
    }
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

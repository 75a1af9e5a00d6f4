//! The one door to the network for `wasi:http`: every outbound request of a
//! plugin is decided here by its [`Policy`], on the destination actually
//! connected to.
//!
//! Per request: the per-call request cap; the `Host` header must match the
//! destination; the egress grant for `scheme://host:port`; secret
//! placeholders (`{{secret:NAME}}` in header values) substituted only for a
//! destination, header and method the secret is bound to, and every value
//! sent cut out of the response; name resolution (or the configured
//! `[host] resolve` table) with every address checked, a non-public one
//! needing a by-name grant; the connection made to the checked address.
//! Responses are cut at `max-response-bytes` and a call's traffic at
//! `max-egress-bytes`. Redirects are never followed here: a guest that
//! follows one makes a new request, checked again. Each attempt is one
//! structured event (`target: warden::egress`).
//!
//! Connections are kept alive and reused per plugin and destination. Each
//! one, in use or idle in the pool, holds one of the plugin's
//! `limits.max-sockets` until it is closed: at the cap an idle connection
//! is closed to make room, or the request waits (within its connect
//! timeout) for one to close, then fails with `connection-limit-reached`.

use crate::governance::policy::{Decision, Policy, SecretUse, SecretValue};
use crate::limits::{DescriptorBudget, SocketSlot};
use hyper::client::conn::http1::SendRequest;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

mod ack;
mod counted;
mod dns;
mod hooks;
mod secrets;

use ack::{Acker, QuickAck};
use counted::Counted;
use dns::{Dns, DnsFailure};
pub(crate) use hooks::{EgressHooks, Failure, OutBody, Timeouts};
use secrets::{substitute, Redacted, Redaction};

/// Idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 32;
const SECRET_OPEN: &str = "{{secret:";

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Destination {
    https: bool,
    host: String,
    port: u16,
}

/// How names are resolved, host-wide (`[host]`): pinned addresses, the
/// nameservers, and whether names granted only by a `*.` wildcard are
/// looked up.
#[derive(Clone, Default)]
pub(crate) struct Naming {
    pub(crate) pins: Arc<BTreeMap<String, IpAddr>>,
    pub(crate) servers: Arc<[SocketAddr]>,
    pub(crate) wildcards: bool,
}

/// A plugin's egress: its policy, name resolution and connection pool.
/// Shared by all instances of the plugin.
pub(crate) struct Egress {
    plugin: Arc<str>,
    policy: Arc<Policy>,
    pins: Arc<BTreeMap<String, IpAddr>>,
    wildcards: bool,
    /// The plugin's own resolver.
    dns: Dns,
    idle: Mutex<HashMap<Destination, Vec<Conn>>>,
    tls: Arc<rustls::ClientConfig>,
    /// The plugin's sockets, which its connections count toward.
    descriptors: Arc<DescriptorBudget>,
    /// The values of every secret granted to the plugin, cut out of every
    /// response it receives, and their names; `None` without secrets.
    redaction: Option<(Arc<Redaction>, Arc<str>)>,
}

impl Egress {
    pub(crate) fn new(
        plugin: Arc<str>,
        policy: Arc<Policy>,
        naming: &Naming,
        descriptors: Arc<DescriptorBudget>,
    ) -> Egress {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let redaction = granted_redaction(&policy);
        Egress {
            plugin,
            policy,
            pins: naming.pins.clone(),
            wildcards: naming.wildcards,
            dns: Dns::new(naming.servers.clone()),
            idle: Mutex::new(HashMap::new()),
            tls: Arc::new(tls),
            descriptors,
            redaction,
        }
    }

    /// One of the plugin's sockets for a new connection: at the cap, an
    /// idle connection is closed to make room, or the wait goes on until
    /// one closes, at most `wait`.
    async fn socket_slot(&self, wait: Duration) -> Result<SocketSlot, Refusal> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.descriptors.released();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(slot) = self.descriptors.try_take_socket() {
                return Ok(slot);
            }
            self.close_one_idle();
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                let max = self.descriptors.max_sockets();
                return Err(Refusal::Failed(
                    HttpError::ConnectionLimitReached,
                    format!(
                        "limits.max-sockets ({max}) reached: the plugin holds {max} sockets and connections"
                    ),
                ));
            }
        }
    }

    /// Closes every idle pooled connection (their sockets are given back
    /// as they close); returns how many there were.
    pub(crate) fn close_idle(&self) -> usize {
        let mut idle = self.idle.lock().expect("egress pool lock");
        let n = idle.values().map(Vec::len).sum();
        idle.clear();
        n
    }

    /// A call's output with the value of every secret granted to the
    /// plugin cut out: its canonical JSON text (so `\u` escapes cannot hide
    /// a value) with the values replaced, and how many were; `None` when
    /// there was nothing to cut (or the plugin has no secrets).
    pub(crate) fn redact_output(&self, output: &serde_json::Value) -> Option<(String, usize)> {
        let (redaction, _) = self.redaction.as_ref()?;
        let canonical = serde_json::to_string(output).ok()?;
        Some(redaction.text(&canonical)).filter(|(_, cut)| *cut > 0)
    }

    /// The plugin's socket and file budget.
    pub(crate) fn descriptors(&self) -> &Arc<DescriptorBudget> {
        &self.descriptors
    }

    /// Closes one idle pooled connection, if there is one.
    fn close_one_idle(&self) {
        let mut idle = self.idle.lock().expect("egress pool lock");
        for list in idle.values_mut() {
            if list.pop().is_some() {
                break;
            }
        }
        idle.retain(|_, list| !list.is_empty());
    }

    pub(crate) fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    fn take_idle(&self, dest: &Destination) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("egress pool lock");
        let list = idle.get_mut(dest)?;
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(conn) = list.pop() {
            if conn.sender.is_closed() {
                continue;
            }
            if conn.sender.is_ready() {
                found = Some(conn);
                break;
            }
            busy.push(conn);
        }
        list.extend(busy);
        found
    }

    fn put_idle(&self, dest: Destination, conn: Conn) {
        let mut idle = self.idle.lock().expect("egress pool lock");
        let list = idle.entry(dest).or_default();
        list.retain(|c| !c.sender.is_closed());
        if list.len() < MAX_IDLE_PER_DESTINATION {
            list.push(conn);
        }
    }

    /// Why `host` may not be looked up at all, beyond the grants: with
    /// `[host] resolve-wildcards = false`, a name granted only by a `*.`
    /// wildcard (not pinned, not granted by name) never reaches a
    /// nameserver, so its labels cannot carry data out.
    pub(crate) fn lookup_denial(&self, host: &str) -> Option<String> {
        if self.wildcards
            || host.parse::<IpAddr>().is_ok()
            || self.pinned(host)
            || self.policy.names_exactly(host)
        {
            return None;
        }
        Some(format!(
            "`{host}` is granted only by a wildcard, and [host] resolve-wildcards = false: \
             only pinned names and names granted exactly are looked up"
        ))
    }

    /// Whether `host` is pinned in `[host] resolve` (no query for it).
    pub(crate) fn pinned(&self, host: &str) -> bool {
        self.pins.contains_key(host)
    }

    /// The addresses of `host` (lower case, no brackets or trailing dot):
    /// an IP literal as it is, a `[host] resolve` pin, else the plugin's
    /// resolver within `timeout` (waiting for a free lookup slot
    /// included). The one resolution for HTTP and for a guest's own
    /// lookups.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, Refusal> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ip) = self.pins.get(host) {
            return Ok(vec![*ip]);
        }
        if let Some(reason) = self.lookup_denial(host) {
            return Err(Refusal::Denied(reason));
        }
        match self.dns.lookup(host, timeout).await {
            Ok(addrs) => Ok(addrs),
            Err(DnsFailure::Failed(reason)) => {
                Err(Refusal::Failed(HttpError::DestinationNotFound, reason))
            }
            Err(DnsFailure::Timeout) => Err(Refusal::Failed(
                HttpError::DnsTimeout,
                format!("resolving {host} timed out"),
            )),
        }
    }

    /// Resolves `dest` and connects to the first address the policy allows.
    /// `allowed` records the decision for that address before anything
    /// connects to it; `false` (it could not be recorded) refuses it.
    async fn connect(
        &self,
        dest: &Destination,
        scheme: &str,
        timeout: Duration,
        allowed: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<Conn, Refusal> {
        let addrs = self.resolve(&dest.host, timeout).await?;
        let mut slot = None;
        let mut last_denial = None;
        for ip in addrs {
            match self
                .policy
                .check_resolved(scheme, &dest.host, dest.port, ip)
            {
                Decision::Deny(reason) => {
                    last_denial = Some(reason);
                    continue;
                }
                Decision::Allow(reason) => {
                    if !allowed(&reason) {
                        return Err(Refusal::Denied("the audit log cannot be written".into()));
                    }
                }
            }
            if slot.is_none() {
                slot = Some(self.socket_slot(timeout).await?);
            }
            let addr = SocketAddr::new(ip, dest.port);
            let tcp =
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                    Ok(Ok(tcp)) => tcp,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(Refusal::Failed(
                            HttpError::ConnectionRefused,
                            format!("{addr}: connection refused"),
                        ))
                    }
                    Ok(Err(e)) => {
                        return Err(Refusal::Failed(
                            HttpError::Connect(e),
                            format!("{addr}: cannot connect"),
                        ))
                    }
                    Err(_) => {
                        return Err(Refusal::Failed(
                            HttpError::ConnectionTimeout,
                            format!("{addr}: connect timed out"),
                        ))
                    }
                };
            let _ = tcp.set_nodelay(true);
            let acker = Arc::new(Acker::new(&tcp));
            // Under TLS the bytes read are records, not HTTP: no head scan.
            let tcp = QuickAck::new(tcp, acker.clone(), !dest.https);
            let sender = if dest.https {
                let name =
                    rustls::pki_types::ServerName::try_from(dest.host.clone()).map_err(|_| {
                        Refusal::Failed(
                            HttpError::HttpRequestUriInvalid,
                            format!("{}: not a TLS server name", dest.host),
                        )
                    })?;
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        Refusal::Failed(HttpError::Tls(e), format!("{addr}: TLS handshake failed"))
                    })?;
                handshake(tls, slot.take()).await?
            } else {
                handshake(tcp, slot.take()).await?
            };
            return Ok(Conn { sender, acker });
        }
        Err(Refusal::Denied(last_denial.unwrap_or_else(|| {
            format!("{} resolved to no address", dest.host)
        })))
    }
}

/// The redaction of every secret granted under `policy`, with their names.
fn granted_redaction(policy: &Policy) -> Option<(Arc<Redaction>, Arc<str>)> {
    let granted: Vec<(&str, &SecretValue)> = policy.granted_secrets().collect();
    let redaction = Redaction::new(granted.iter().map(|(_, v)| v.expose()))?;
    let names: Vec<&str> = granted.iter().map(|(n, _)| *n).collect();
    Some((Arc::new(redaction), names.join(", ").into()))
}

/// Starts HTTP/1.1 on `io`; the connection holds `slot` until it closes.
async fn handshake<S>(io: S, slot: Option<SocketSlot>) -> Result<SendRequest<WasiBody>, Refusal>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| Refusal::Failed(HttpError::from(e), "HTTP handshake failed".into()))?;
    tokio::spawn(async move {
        let _slot = slot;
        let _ = conn.await;
    });
    Ok(sender)
}

/// A kept-alive HTTP/1.1 connection: the sender and the connection's ACK
/// control (used by the response body; see [`QuickAck`]).
struct Conn {
    sender: SendRequest<WasiBody>,
    acker: Arc<Acker>,
}

pub(crate) enum Refusal {
    /// Policy said no: the guest sees `HttpRequestDenied`.
    Denied(String),
    /// The network said no.
    Failed(HttpError, String),
}

/// Whether `e` says a kept-alive connection was already closed by the peer
/// (so the request was not taken by it).
fn stale_connection(e: &hyper::Error) -> bool {
    if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted);
        }
        source = s.source();
    }
    false
}

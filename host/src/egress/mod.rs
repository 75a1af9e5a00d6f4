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
//! Connections are kept alive and reused per plugin and destination.

use crate::governance::policy::{Decision, Policy, SecretUse, SecretValue};
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
mod hooks;
mod secrets;

use ack::{Acker, QuickAck};
use counted::Counted;
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

/// A plugin's egress: its policy, resolution table and connection pool.
/// Shared by all instances of the plugin.
pub(crate) struct Egress {
    plugin: Arc<str>,
    policy: Arc<Policy>,
    resolve: Arc<BTreeMap<String, IpAddr>>,
    idle: Mutex<HashMap<Destination, Vec<Conn>>>,
    tls: Arc<rustls::ClientConfig>,
}

impl Egress {
    pub(crate) fn new(
        plugin: Arc<str>,
        policy: Arc<Policy>,
        resolve: Arc<BTreeMap<String, IpAddr>>,
    ) -> Egress {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Egress {
            plugin,
            policy,
            resolve,
            idle: Mutex::new(HashMap::new()),
            tls: Arc::new(tls),
        }
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

    /// The addresses of `host` (lower case, no brackets or trailing dot):
    /// an IP literal as it is, a `[host] resolve` pin, else the system
    /// resolver within `timeout`. The one resolution for HTTP and for a
    /// guest's own lookups.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>, Refusal> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ip) = self.resolve.get(host) {
            return Ok(vec![*ip]);
        }
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(found)) => {
                let mut addrs: Vec<IpAddr> = Vec::new();
                for ip in found.map(|a| a.ip().to_canonical()) {
                    if !addrs.contains(&ip) {
                        addrs.push(ip);
                    }
                }
                Ok(addrs)
            }
            Ok(Err(_)) => Err(Refusal::Failed(
                HttpError::DestinationNotFound,
                format!("cannot resolve {host}"),
            )),
            Err(_) => Err(Refusal::Failed(
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
        let addrs = self.resolve(&dest.host, dest.port, timeout).await?;
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
                handshake(tls).await?
            } else {
                handshake(tcp).await?
            };
            return Ok(Conn { sender, acker });
        }
        Err(Refusal::Denied(last_denial.unwrap_or_else(|| {
            format!("{} resolved to no address", dest.host)
        })))
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<WasiBody>, Refusal>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| Refusal::Failed(HttpError::from(e), "HTTP handshake failed".into()))?;
    tokio::spawn(async move {
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

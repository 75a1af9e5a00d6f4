//! The one door to the network for `wasi:http`: every outbound request of a
//! plugin is decided here by its [`Policy`], on the destination actually
//! connected to.
//!
//! Per request: the per-call request cap; the `Host` header must match the
//! destination; the egress grant for `scheme://host:port`; secret
//! placeholders (`{{secret:NAME}}` in header values) substituted only for a
//! destination the secret is bound to; name resolution (or the configured
//! `[host] resolve` table) with every address checked, a non-public one
//! needing a by-name grant; the connection made to the checked address.
//! Responses are cut at `max-response-bytes` and a call's traffic at
//! `max-egress-bytes`. Redirects are never followed here: a guest that
//! follows one makes a new request, checked again. Each attempt is one
//! structured event (`target: warden::egress`).
//!
//! Connections are kept alive and reused per plugin and destination.

use crate::governance::policy::{Decision, Policy};
use crate::governance::Auditor;
use crate::limits::ResolvedLimits;
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

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

    /// Resolves `dest` and connects to the first address the policy allows.
    async fn connect(
        &self,
        dest: &Destination,
        scheme: &str,
        timeout: Duration,
    ) -> Result<Conn, Refusal> {
        // `dest.host` is already lower-case and without IPv6 brackets.
        let addrs: Vec<IpAddr> = if let Ok(ip) = dest.host.parse::<IpAddr>() {
            vec![ip]
        } else if let Some(ip) = self.resolve.get(&dest.host) {
            vec![*ip]
        } else {
            match tokio::time::timeout(
                timeout,
                tokio::net::lookup_host((dest.host.as_str(), dest.port)),
            )
            .await
            {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(_)) => {
                    return Err(Refusal::Failed(
                        HttpError::DestinationNotFound,
                        format!("cannot resolve {}", dest.host),
                    ))
                }
                Err(_) => {
                    return Err(Refusal::Failed(
                        HttpError::DnsTimeout,
                        format!("resolving {} timed out", dest.host),
                    ))
                }
            }
        };
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
                Decision::Allow(_) => {}
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

enum Refusal {
    /// Policy said no: the guest sees `HttpRequestDenied`.
    Denied(String),
    /// The network said no.
    Failed(HttpError, String),
}

/// The `wasi:http` hooks of one instance: its plugin's egress plus the
/// budget of the current call.
pub(crate) struct EgressHooks {
    egress: Arc<Egress>,
    auditor: Auditor,
    limits: ResolvedLimits,
    requests: u32,
    bytes: Arc<AtomicU64>,
}

impl EgressHooks {
    pub(crate) fn new(egress: Arc<Egress>, limits: ResolvedLimits, auditor: Auditor) -> Self {
        EgressHooks {
            egress,
            auditor,
            limits,
            requests: 0,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts a new call's budget.
    pub(crate) fn reset(&mut self) {
        self.requests = 0;
        // A body still held from the last call keeps counting into its own
        // budget; only then is a new counter needed.
        if Arc::strong_count(&self.bytes) == 1 {
            self.bytes.store(0, Ordering::Relaxed);
        } else {
            self.bytes = Arc::new(AtomicU64::new(0));
        }
    }
}

/// One egress attempt, as logged.
struct Attempt {
    auditor: Auditor,
    plugin: Arc<str>,
    method: http::Method,
    destination: String,
    started: Instant,
}

impl Attempt {
    fn deny(&self, reason: &str) {
        self.auditor.record(
            "egress",
            &format!("{} {}", self.method, self.destination),
            "deny",
            reason,
        );
        tracing::warn!(
            target: "warden::egress",
            plugin = %self.plugin, method = %self.method, destination = %self.destination,
            decision = "deny", %reason, duration_ms = self.started.elapsed().as_millis() as u64,
            "egress denied"
        );
    }
    fn failed(&self, reason: &str) {
        tracing::info!(
            target: "warden::egress",
            plugin = %self.plugin, method = %self.method, destination = %self.destination,
            decision = "allow", %reason, duration_ms = self.started.elapsed().as_millis() as u64,
            "egress failed"
        );
    }
    fn done(&self, status: u16, bytes_in: u64, bytes_out: u64, outcome: &str) {
        tracing::info!(
            target: "warden::egress",
            plugin = %self.plugin, method = %self.method, destination = %self.destination,
            decision = "allow", status, bytes_in, bytes_out, outcome,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "egress"
        );
    }
}

/// Why a request did not get a response.
pub(crate) enum Failure {
    /// Policy said no (the reason names the rule; never a secret value).
    Denied(String),
    /// The network or the peer failed.
    Failed(HttpError, String),
}

/// A request body: a stream from `wasi:http`, or whole bytes (which can be
/// sent again when a kept-alive connection turns out to be closed).
pub(crate) enum OutBody {
    Stream(WasiBody),
    Full(Bytes),
}

/// Timeouts asked for by the guest; each is capped by the plugin's
/// `request-timeout-ms`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Timeouts {
    pub(crate) connect: Option<Duration>,
    pub(crate) first_byte: Option<Duration>,
}

/// `scheme://host:port`, as audit records and errors name a destination.
fn destination_text(scheme: &str, host: &str, port: u16) -> String {
    let mut out = String::with_capacity(scheme.len() + host.len() + 9);
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    out.push(':');
    out.push_str(itoa::Buffer::new().format(port));
    out
}

type Dispatch = Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, Failure>> + Send>>;

impl EgressHooks {
    /// The plugin's limits for this instance.
    pub(crate) fn limits(&self) -> ResolvedLimits {
        self.limits
    }

    /// Decides a request and, if allowed, returns the future that sends it.
    /// The one path for `wasi:http` and `warden:provider/http-client`.
    pub(crate) fn dispatch(
        &mut self,
        mut head: http::request::Parts,
        body: OutBody,
        timeouts: Timeouts,
    ) -> Dispatch {
        let uri = head.uri.clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let https = scheme == "https";
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let attempt = Attempt {
            auditor: self.auditor.clone(),
            plugin: self.egress.plugin.clone(),
            method: head.method.clone(),
            destination: destination_text(&scheme, &host, port),
            started: Instant::now(),
        };
        let deny = |attempt: Attempt, reason: String| -> Dispatch {
            attempt.deny(&reason);
            Box::pin(async move { Err(Failure::Denied(reason)) })
        };

        self.requests += 1;
        if self.requests > self.limits.max_requests {
            let reason = format!(
                "more than {} requests in one call (limits.max-requests)",
                self.limits.max_requests
            );
            return deny(attempt, reason);
        }
        if scheme != "http" && scheme != "https" {
            return deny(attempt, format!("scheme `{scheme}` is not HTTP"));
        }
        if let Some(h) = head.headers.get(HOST) {
            let expected = uri
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
                .unwrap_or_default();
            let given = h.to_str().unwrap_or("").to_ascii_lowercase();
            if given != expected && given != host {
                return deny(
                    attempt,
                    format!("Host header `{given}` does not match the destination `{expected}`"),
                );
            }
        }
        if let Some(reason) = self.egress.policy.egress_denial(&scheme, &host, port) {
            return deny(attempt, reason);
        }
        let declared_length = match &body {
            OutBody::Full(b) => b.len() as u64,
            OutBody::Stream(_) => head
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0),
        };
        if self
            .bytes
            .load(Ordering::Relaxed)
            .saturating_add(declared_length)
            > self.limits.max_egress_bytes
        {
            let reason = format!(
                "the request body would exceed limits.max-egress-bytes ({})",
                self.limits.max_egress_bytes
            );
            return deny(attempt, reason);
        }
        // Secrets: substituted here, for bound destinations only.
        for value in head.headers.values_mut() {
            let Ok(text) = value.to_str() else { continue };
            if !text.contains(SECRET_OPEN) {
                continue;
            }
            let destination = &attempt.destination;
            let auditor = &self.auditor;
            match substitute(text, |name| {
                let found = self.egress.policy.secret_for(name, &scheme, &host, port);
                let target = format!("{name} -> {destination}");
                match &found {
                    Ok(_) => {
                        if !auditor.record("secret", &target, "allow", "bound to this destination")
                        {
                            return Err("the audit log cannot be written".to_string());
                        }
                    }
                    Err(reason) => {
                        auditor.record("secret", &target, "deny", reason);
                    }
                }
                found.map(|v| v.expose().to_string())
            }) {
                Ok(replaced) => match HeaderValue::from_str(&replaced) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        *value = v;
                    }
                    Err(_) => {
                        return deny(
                            attempt,
                            "a secret's value is not a valid header value".into(),
                        )
                    }
                },
                Err(reason) => return deny(attempt, reason),
            }
        }
        if self.auditor.active()
            && !self.auditor.record(
                "egress",
                &format!("{} {}", attempt.method, attempt.destination),
                "allow",
                "granted",
            )
        {
            return deny(attempt, "the audit log cannot be written".into());
        }
        if !head.headers.contains_key(HOST) {
            if let Some(Ok(v)) = uri.authority().map(|a| HeaderValue::from_str(a.as_str())) {
                head.headers.insert(HOST, v);
            }
        }
        // Origin form on the wire; the connection already names the host.
        let mut origin = uri.into_parts();
        origin.scheme = None;
        origin.authority = None;
        if origin.path_and_query.is_none() {
            origin.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        head.uri = match http::Uri::from_parts(origin) {
            Ok(u) => u,
            Err(_) => {
                return Box::pin(async move {
                    attempt.failed("invalid path");
                    Err(Failure::Failed(
                        HttpError::HttpRequestUriInvalid,
                        "invalid path".into(),
                    ))
                })
            }
        };

        let egress = self.egress.clone();
        let total = self.bytes.clone();
        let limits = self.limits;
        let dest = Destination { https, host, port };
        Box::pin(async move {
            let budget = Duration::from_millis(limits.request_timeout_ms);
            let connect_timeout = timeouts.connect.map_or(budget, |t| t.min(budget));
            let first_byte_timeout = timeouts.first_byte.map_or(budget, |t| t.min(budget));
            let sent = Arc::new(AtomicU64::new(0));
            let counted = |b: WasiBody| {
                Counted {
                    inner: b,
                    seen: 0,
                    per_body_limit: u64::MAX,
                    total: total.clone(),
                    total_limit: limits.max_egress_bytes,
                    also: Some(sent.clone()),
                    on_end: None,
                    acker: None,
                }
                .boxed_unsync()
            };
            let full = |b: &Bytes| {
                http_body_util::Full::new(b.clone())
                    .map_err(|never| match never {})
                    .boxed_unsync()
            };
            let (replay, first_body) = match body {
                OutBody::Stream(b) => (None, b),
                OutBody::Full(b) => {
                    let first = full(&b);
                    (Some(b), first)
                }
            };
            let mut first_body = Some(first_body);
            let mut reused = egress.take_idle(&dest);
            let (response, acker) = loop {
                let was_reused = reused.is_some();
                let Conn { mut sender, acker } = match reused.take() {
                    Some(s) => s,
                    // Boxed: connecting is rare next to reuse, and its future
                    // (resolution, TCP, TLS) would otherwise make every
                    // request's future large.
                    None => match Box::pin(egress.connect(&dest, &scheme, connect_timeout)).await {
                        Ok(s) => s,
                        Err(Refusal::Denied(reason)) => {
                            attempt.deny(&reason);
                            return Err(Failure::Denied(reason));
                        }
                        Err(Refusal::Failed(e, reason)) => {
                            attempt.failed(&reason);
                            return Err(Failure::Failed(e, reason));
                        }
                    },
                };
                let body = match first_body.take() {
                    Some(b) => b,
                    None => full(replay.as_ref().expect("only whole bodies are sent again")),
                };
                let request = http::Request::from_parts(head.clone(), counted(body));
                let response = sender.send_request(request);
                let response = tokio::time::timeout(first_byte_timeout, response).await;
                match response {
                    Ok(Ok(r)) => {
                        egress.put_idle(
                            dest.clone(),
                            Conn {
                                sender,
                                acker: acker.clone(),
                            },
                        );
                        break (r, acker);
                    }
                    // A kept-alive connection the peer had closed: once more
                    // on a new one, when the body can be sent again.
                    Ok(Err(e)) if was_reused && replay.is_some() && stale_connection(&e) => {
                        tracing::debug!(target: "warden::egress", destination = %attempt.destination, "kept-alive connection was closed; reconnecting");
                        sent.store(0, Ordering::Relaxed);
                        continue;
                    }
                    Ok(Err(e)) => {
                        attempt.failed("request failed");
                        let reason = format!("request failed: {e}");
                        return Err(Failure::Failed(HttpError::from(e), reason));
                    }
                    Err(_) => {
                        attempt.failed("no response in time");
                        return Err(Failure::Failed(
                            HttpError::ConnectionReadTimeout,
                            format!("no response within {} ms", first_byte_timeout.as_millis()),
                        ));
                    }
                }
            };
            let status = response.status().as_u16();
            if let Some(len) = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            {
                if len > limits.max_response_bytes {
                    attempt.done(
                        status,
                        0,
                        sent.load(Ordering::Relaxed),
                        "response larger than limits.max-response-bytes",
                    );
                    return Err(Failure::Failed(
                        HttpError::HttpResponseBodySize(Some(len)),
                        format!(
                            "the response ({len} bytes) is larger than limits.max-response-bytes ({})",
                            limits.max_response_bytes
                        ),
                    ));
                }
            }
            let on_end: Box<dyn FnOnce(u64, &str) + Send> = Box::new(move |bytes_in, outcome| {
                attempt.done(status, bytes_in, sent.load(Ordering::Relaxed), outcome)
            });
            Ok(response.map(|incoming| {
                Counted {
                    inner: incoming.map_err(HttpError::from),
                    seen: 0,
                    per_body_limit: limits.max_response_bytes,
                    total,
                    total_limit: limits.max_egress_bytes,
                    also: None,
                    on_end: Some(on_end),
                    acker: Some(acker),
                }
                .boxed_unsync()
            }))
        })
    }
}

impl wasmtime_wasi_http::WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        _ = fut;
        let (head, body) = request.into_parts();
        let timeouts = Timeouts {
            connect: options.and_then(|o| o.connect_timeout),
            first_byte: options.and_then(|o| o.first_byte_timeout),
        };
        let dispatch = self.dispatch(head, OutBody::Stream(body), timeouts);
        Box::new(async move {
            match dispatch.await {
                Ok(response) => Ok((response, Box::new(async { Ok(()) }) as IoFuture)),
                Err(Failure::Denied(_)) => Err(HttpError::HttpRequestDenied),
                Err(Failure::Failed(e, _)) => Err(e),
            }
        })
    }
}

/// Forces TCP ACKs on one connection when a response is awaited.
///
/// On a kept-alive connection Linux delays ACKs (about 40 ms). A server that
/// writes a response's head and body separately without `TCP_NODELAY` holds
/// the body back until it sees the ACK of the head (Nagle), which would
/// dominate every call. So an ACK is forced while a response is incomplete
/// and we are waiting: by [`QuickAck`] while the head is not all in, and by
/// the response body when it has to wait for data. A response that arrives
/// whole costs no extra system call and no extra packet: its ACK rides on
/// the next request.
struct Acker {
    /// The socket while it is open. Cleared (under the lock) before the
    /// socket closes, so a forced ACK never reaches a reused descriptor.
    #[cfg(target_os = "linux")]
    fd: Mutex<Option<std::os::fd::RawFd>>,
    /// Data was read since our last ACK or write.
    unacked: std::sync::atomic::AtomicBool,
}

impl Acker {
    fn new(tcp: &tokio::net::TcpStream) -> Acker {
        #[cfg(not(target_os = "linux"))]
        let _ = tcp;
        Acker {
            #[cfg(target_os = "linux")]
            fd: Mutex::new(Some(std::os::fd::AsRawFd::as_raw_fd(tcp))),
            unacked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sends the ACK now if data read has not been acknowledged yet.
    fn ack_if_owed(&self) {
        if !self.unacked.swap(false, Ordering::Relaxed) {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(fd) = *fd {
                let one: libc::c_int = 1;
                // SAFETY: `fd` is an open socket (it is cleared under this
                // lock before the socket closes) and `one` is a c_int of the
                // size given.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_QUICKACK,
                        &one as *const libc::c_int as *const libc::c_void,
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
        }
    }

    fn closing(&self) {
        #[cfg(target_os = "linux")]
        {
            *self.fd.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The TCP stream of a connection. It notes what it reads for its
/// [`Acker`] and, for plain HTTP, whether the response head (up to the
/// blank line) is in since the last request was written; a read that has to
/// wait while the head is incomplete forces the ACK. Under TLS it cannot
/// see the head and forces the ACK whenever a read has to wait after data.
struct QuickAck {
    tcp: tokio::net::TcpStream,
    acker: Arc<Acker>,
    scan_head: bool,
    head_done: bool,
    /// The last bytes read, to find a `\r\n\r\n` split across reads.
    tail: u32,
}

impl QuickAck {
    fn new(tcp: tokio::net::TcpStream, acker: Arc<Acker>, scan_head: bool) -> QuickAck {
        QuickAck {
            tcp,
            acker,
            scan_head,
            head_done: false,
            tail: 0,
        }
    }

    fn scan(&mut self, data: &[u8]) {
        const END: u32 = u32::from_be_bytes(*b"\r\n\r\n");
        for &b in data {
            self.tail = (self.tail << 8) | u32::from(b);
            if self.tail == END {
                self.head_done = true;
                return;
            }
        }
    }

    fn wrote(&mut self) {
        // A segment we send carries the ACK; the next response starts.
        self.acker.unacked.store(false, Ordering::Relaxed);
        self.head_done = false;
        self.tail = 0;
    }
}

impl Drop for QuickAck {
    fn drop(&mut self) {
        self.acker.closing();
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        match r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.acker.unacked.store(true, Ordering::Relaxed);
                if self.scan_head && !self.head_done {
                    let this = &mut *self;
                    this.scan(&buf.filled()[before..]);
                }
            }
            Poll::Pending if !(self.scan_head && self.head_done) => self.acker.ack_if_owed(),
            _ => {}
        }
        r
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
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

/// Replaces each `{{secret:NAME}}` in `text` with `lookup(NAME)`.
fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(SECRET_OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + SECRET_OPEN.len()..];
        let end = after
            .find("}}")
            .ok_or("unterminated `{{secret:` placeholder")?;
        out.push_str(&lookup(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A body that counts its bytes against a per-body and a per-call limit and
/// reports the outcome once when it ends.
struct Counted<B> {
    inner: B,
    seen: u64,
    per_body_limit: u64,
    total: Arc<AtomicU64>,
    total_limit: u64,
    also: Option<Arc<AtomicU64>>,
    on_end: Option<Box<dyn FnOnce(u64, &str) + Send>>,
    /// For a response body: the connection's ACK control, used when the
    /// body has to wait for data.
    acker: Option<Arc<Acker>>,
}

impl<B> Counted<B> {
    fn finish(&mut self, outcome: &str) {
        if let Some(f) = self.on_end.take() {
            f(self.seen, outcome);
        }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        self.finish("body dropped before its end");
    }
}

impl<B: Body<Data = Bytes, Error = HttpError> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(None) => {
                self.finish("complete");
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish("body error");
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Pending => {
                if let Some(acker) = &self.acker {
                    acker.ack_if_owed();
                }
                return Poll::Pending;
            }
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            self.seen += n;
            if let Some(also) = &self.also {
                also.fetch_add(n, Ordering::Relaxed);
            }
            let total = self.total.fetch_add(n, Ordering::Relaxed) + n;
            if self.seen > self.per_body_limit {
                self.finish("cut: larger than limits.max-response-bytes");
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(self.seen)))));
            }
            if total > self.total_limit {
                self.finish("cut: call exceeded limits.max-egress-bytes");
                let e = if self.also.is_some() {
                    HttpError::HttpRequestBodySize(Some(total))
                } else {
                    HttpError::HttpResponseBodySize(Some(total))
                };
                return Poll::Ready(Some(Err(e)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted_or_refused() {
        let lookup = |n: &str| {
            if n == "A" {
                Ok("va".to_string())
            } else {
                Err(format!("secret `{n}` is not granted"))
            }
        };
        assert_eq!(
            substitute("Bearer {{secret:A}}", lookup).unwrap(),
            "Bearer va"
        );
        assert_eq!(
            substitute("{{secret:A}}:{{secret: A }}", lookup).unwrap(),
            "va:va"
        );
        assert!(substitute("x {{secret:B}}", lookup)
            .unwrap_err()
            .contains("`B`"));
        assert!(substitute("x {{secret:A", lookup).is_err());
        assert_eq!(substitute("plain", lookup).unwrap(), "plain");
    }
}

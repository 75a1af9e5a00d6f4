//! The connect step of a request: a kept-alive connection to its
//! destination, or a new one (the name resolved, the address decided, TCP,
//! TLS, HTTP/1.1); the request sent on it, and once more on a new one when
//! a kept-alive connection turns out closed. The pool of idle connections,
//! each holding one of the plugin's sockets until it closes.

use super::decide::Planned;
use super::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::atomic::Ordering;

/// Idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 32;

/// A response head and the ACK control of the connection it came on.
pub(super) type Exchange = (http::Response<Incoming>, Arc<Acker>);

impl Planned {
    /// Sends the request and waits for the response head: on a kept-alive
    /// connection to the destination if one is ready, else on a new one.
    /// Every failure is audited.
    pub(super) async fn send(&self, egress: &Egress, body: OutBody) -> Result<Exchange, Failure> {
        let mut bodies = Bodies::new(body);
        let mut kept = egress.take_idle(&self.dest);
        loop {
            let was_kept = kept.is_some();
            let Conn { mut sender, acker } = self.connection(egress, kept.take()).await?;
            let request = http::Request::from_parts(self.head.clone(), self.counted(bodies.next()));
            let response = sender.send_request(request);
            let response = tokio::time::timeout(self.first_byte_timeout, response).await;
            match response {
                Ok(Ok(r)) => {
                    egress.put_idle(
                        self.dest.clone(),
                        Conn {
                            sender,
                            acker: acker.clone(),
                        },
                    );
                    return Ok((r, acker));
                }
                // A kept-alive connection the peer had closed: once more
                // on a new one, when the body can be sent again.
                Ok(Err(e)) if was_kept && bodies.replay.is_some() && stale_connection(&e) => {
                    tracing::debug!(target: "warden::egress", destination = %self.attempt.destination, "kept-alive connection was closed; reconnecting");
                    self.sent.store(0, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    self.attempt.failed("request failed");
                    let reason = format!("request failed: {e}");
                    return Err(Failure::Failed(HttpError::from(e), reason));
                }
                Err(_) => {
                    self.attempt.failed("no response in time");
                    return Err(Failure::Failed(
                        HttpError::ConnectionReadTimeout,
                        format!(
                            "no response within {} ms",
                            self.first_byte_timeout.as_millis()
                        ),
                    ));
                }
            }
        }
    }

    /// The connection to send on, its use allowed and audited first: the
    /// kept-alive one `kept` (its address was decided when it was made),
    /// else a new one.
    async fn connection(&self, egress: &Egress, kept: Option<Conn>) -> Result<Conn, Failure> {
        if let Some(conn) = kept {
            self.attempt
                .allow("granted; a kept-alive connection")
                .await?;
            return Ok(conn);
        }
        // Boxed: connecting is rare next to reuse, and its future
        // (resolution, TCP, TLS) would otherwise make every request's
        // future large.
        Box::pin(self.connect(egress)).await
    }

    /// A new connection: the name resolved, the first address the policy
    /// allows decided and audited ([`Planned::decide_address`]), then the
    /// connection made to that address.
    async fn connect(&self, egress: &Egress) -> Result<Conn, Failure> {
        let addrs = egress
            .resolve(&self.dest.host, self.connect_timeout)
            .await
            .map_err(|r| self.attempt.refused(r))?;
        let ip = self.decide_address(&egress.policy, addrs).await?;
        egress
            .open(&self.dest, ip, self.connect_timeout)
            .await
            .map_err(|r| self.attempt.refused(r))
    }

    /// A request body counted into the call's `max-egress-bytes` and into
    /// the bytes this request sent.
    fn counted(&self, body: WasiBody) -> WasiBody {
        Counted {
            inner: body,
            seen: 0,
            per_body_limit: u64::MAX,
            total: self.total.clone(),
            total_limit: self.limits.max_egress_bytes,
            also: Some(self.sent.clone()),
            on_end: None,
            acker: None,
        }
        .boxed_unsync()
    }
}

/// The request body of each try: the guest's stream once, or whole bytes
/// as often as a stale kept-alive connection makes it needed.
struct Bodies {
    first: Option<WasiBody>,
    replay: Option<Bytes>,
}

impl Bodies {
    fn new(body: OutBody) -> Bodies {
        match body {
            OutBody::Stream(b) => Bodies {
                first: Some(b),
                replay: None,
            },
            OutBody::Full(b) => Bodies {
                first: Some(full(&b)),
                replay: Some(b),
            },
        }
    }

    fn next(&mut self) -> WasiBody {
        match self.first.take() {
            Some(b) => b,
            None => full(
                self.replay
                    .as_ref()
                    .expect("only whole bodies are sent again"),
            ),
        }
    }
}

fn full(b: &Bytes) -> WasiBody {
    http_body_util::Full::new(b.clone())
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl Egress {
    /// A new connection to `ip`, an address already allowed for `dest`:
    /// one of the plugin's sockets (waiting within `timeout`), TCP, TLS
    /// for `https`, then HTTP/1.1. The connection holds the socket until
    /// it closes.
    async fn open(
        &self,
        dest: &Destination,
        ip: IpAddr,
        timeout: Duration,
    ) -> Result<Conn, Refusal> {
        let slot = self.socket_slot(timeout).await?;
        let addr = SocketAddr::new(ip, dest.port);
        let tcp = tcp_connect(addr, timeout).await?;
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
            let tls = tls_connect(&self.tls, name, tcp, addr, timeout).await?;
            handshake(tls, slot).await?
        } else {
            handshake(tcp, slot).await?
        };
        Ok(Conn { sender, acker })
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
}

/// The TLS handshake on `tcp` within `timeout` (a peer that stalls it holds
/// a socket no longer than a stalled connect).
async fn tls_connect<S>(
    config: &Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    tcp: S,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, Refusal>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let connect = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(Refusal::Failed(
            HttpError::Tls(e),
            format!("{addr}: TLS handshake failed"),
        )),
        Err(_) => Err(Refusal::Failed(
            HttpError::ConnectionTimeout,
            format!(
                "{addr}: TLS handshake not done within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

/// A TCP connection to `addr` within `timeout`.
async fn tcp_connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, Refusal> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Refusal::Failed(
            HttpError::ConnectionRefused,
            format!("{addr}: connection refused"),
        )),
        Ok(Err(e)) => Err(Refusal::Failed(
            HttpError::Connect(e),
            format!("{addr}: cannot connect"),
        )),
        Err(_) => Err(Refusal::Failed(
            HttpError::ConnectionTimeout,
            format!("{addr}: connect timed out"),
        )),
    }
}

/// Starts HTTP/1.1 on `io`; the connection holds `slot` until it closes.
async fn handshake<S>(io: S, slot: SocketSlot) -> Result<SendRequest<WasiBody>, Refusal>
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
pub(super) struct Conn {
    sender: SendRequest<WasiBody>,
    acker: Arc<Acker>,
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

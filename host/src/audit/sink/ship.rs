//! How a sink's batches travel: HTTP POST of a JSON array (one kept
//! HTTP/1.1 connection, TLS with the public roots and an optional CA), or
//! syslog (RFC 5424 messages, one UDP datagram each, or octet-counted on a
//! kept TCP connection, RFC 6587).

use super::SinkFormat;
use crate::audit::ocsf::Events;
use crate::audit::Record;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use wasmtime_wasi_http::io::TokioIo;

/// A syslog message larger than this is not sent over UDP (it would be
/// cut); it counts as not shipped.
const MAX_DATAGRAM: usize = 65_000;
/// Bytes of a collector's answer read (and dropped).
const MAX_ANSWER: usize = 64 << 10;
/// RFC 5424 facility 13, "log audit".
const FACILITY: u8 = 13;

/// A collector, as `[audit.sink] url` names it.
#[derive(Clone)]
pub(crate) enum Destination {
    Http {
        url: url::Url,
        host: String,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
        token: Option<String>,
    },
    Syslog {
        host: String,
        port: u16,
        tcp: bool,
    },
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Http { url, .. } => write!(f, "{url}"),
            Destination::Syslog { host, port, tcp } => {
                let scheme = if *tcp { "syslog+tcp" } else { "syslog" };
                write!(f, "{scheme}://{host}:{port}")
            }
        }
    }
}

impl Destination {
    /// Reads `[audit.sink] url`; `token` is for HTTP, `ca` (PEM) for https.
    pub(crate) fn parse(
        text: &str,
        token: Option<String>,
        ca: Option<&str>,
    ) -> Result<Destination, String> {
        let url = url::Url::parse(text).map_err(|e| format!("`url` {text:?}: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("`url` {text:?} names no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = url.port_or_known_default();
        match url.scheme() {
            "http" | "https" => {
                let tls = (url.scheme() == "https")
                    .then(|| crate::tls::client_config(ca))
                    .transpose()?;
                Ok(Destination::Http {
                    port: port.unwrap_or(80),
                    url,
                    host,
                    tls,
                    token,
                })
            }
            scheme @ ("syslog" | "syslog+tcp") => {
                if token.is_some() || ca.is_some() {
                    return Err("`token-secret` and `ca` are for an http(s) sink".into());
                }
                Ok(Destination::Syslog {
                    host,
                    port: port.unwrap_or(514),
                    tcp: scheme == "syslog+tcp",
                })
            }
            other => Err(format!(
                "`url` {text:?}: scheme `{other}` is not one of http, https, syslog, syslog+tcp"
            )),
        }
    }
}

/// One batch, encoded for its destination.
pub(crate) struct Payload {
    /// HTTP: the JSON array. Syslog: the messages, one by one.
    messages: Vec<Bytes>,
    records: usize,
    seqs: (u64, u64),
}

impl Payload {
    pub(crate) fn records(&self) -> usize {
        self.records
    }

    /// The first and last `seq` in the batch.
    pub(crate) fn seqs(&self) -> (u64, u64) {
        self.seqs
    }
}

/// The batch as one JSON array (HTTP) and as syslog messages: both are
/// made from the same events, so `encode` is destination-blind.
pub(crate) fn encode(lines: &[Box<[u8]>], format: SinkFormat, events: &Events) -> Encoded {
    let events: Vec<(Option<Record>, Vec<u8>)> = lines
        .iter()
        .map(|line| {
            let record: Option<Record> = serde_json::from_slice(line).ok();
            let body = match (format, &record) {
                (SinkFormat::Ocsf, Some(r)) => {
                    serde_json::to_vec(&events.event(r)).unwrap_or_else(|_| line.to_vec())
                }
                _ => line.to_vec(),
            };
            (record, body)
        })
        .collect();
    let seqs = (
        events
            .first()
            .and_then(|e| e.0.as_ref())
            .map_or(0, |r| r.seq),
        events
            .last()
            .and_then(|e| e.0.as_ref())
            .map_or(0, |r| r.seq),
    );
    Encoded { events, seqs }
}

/// A batch's events, before they are framed for a destination.
pub(crate) struct Encoded {
    events: Vec<(Option<Record>, Vec<u8>)>,
    seqs: (u64, u64),
}

impl Encoded {
    /// Framed for `destination`; `host` is this machine's name for syslog
    /// ([`hostname`], read once by the sink).
    pub(crate) fn frame(&self, destination: &Destination, host: &str) -> Payload {
        let messages = match destination {
            Destination::Http { .. } => {
                let mut array = Vec::with_capacity(
                    2 + self.events.iter().map(|e| e.1.len() + 1).sum::<usize>(),
                );
                array.push(b'[');
                for (i, (_, body)) in self.events.iter().enumerate() {
                    if i > 0 {
                        array.push(b',');
                    }
                    array.extend_from_slice(body);
                }
                array.push(b']');
                vec![Bytes::from(array)]
            }
            Destination::Syslog { .. } => self
                .events
                .iter()
                .map(|(record, body)| Bytes::from(syslog_message(record.as_ref(), body, host)))
                .collect(),
        };
        Payload {
            messages,
            records: self.events.len(),
            seqs: self.seqs,
        }
    }
}

/// An RFC 5424 message carrying `body`: facility "log audit", severity by
/// the record's decision, MSGID its effect.
fn syslog_message(record: Option<&Record>, body: &[u8], host: &str) -> Vec<u8> {
    let severity = match record.map(|r| r.decision.as_str()) {
        Some("deny") => 4,
        Some("error") => 3,
        _ => 6,
    };
    let (time, effect) = record.map_or(("-", "-"), |r| (r.time.as_str(), r.effect.as_str()));
    let mut message = format!(
        "<{}>1 {time} {host} warden {} {effect} - ",
        FACILITY * 8 + severity,
        std::process::id()
    )
    .into_bytes();
    message.extend_from_slice(body);
    message
}

/// This machine's name (RFC 5424 HOSTNAME), `-` when unknown.
pub(crate) fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        "-".into()
    } else {
        name.chars().take(255).collect()
    }
}

/// Sends batches to one destination, keeping its connection.
pub(crate) struct Shipper {
    destination: Destination,
    timeout: Duration,
    http: Option<SendRequest<Full<Bytes>>>,
    tcp: Option<tokio::net::TcpStream>,
}

impl Shipper {
    pub(crate) fn new(destination: &Destination, timeout: Duration) -> Shipper {
        Shipper {
            destination: destination.clone(),
            timeout,
            http: None,
            tcp: None,
        }
    }

    /// Sends `payload`; `Ok` once the collector took it (HTTP 2xx; for
    /// syslog, once written to the socket).
    pub(crate) async fn send(&mut self, payload: &Payload) -> Result<(), String> {
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, self.send_now(payload))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
        if result.is_err() {
            // A connection in an unknown state is not used again.
            self.http = None;
            self.tcp = None;
        }
        result
    }

    async fn send_now(&mut self, payload: &Payload) -> Result<(), String> {
        match self.destination.clone() {
            Destination::Http {
                url,
                host,
                port,
                tls,
                token,
            } => {
                let body = payload.messages.first().cloned().unwrap_or_default();
                self.post(&url, (&host, port), tls, token.as_deref(), body)
                    .await
            }
            Destination::Syslog { host, port, tcp } => {
                if tcp {
                    self.syslog_tcp((&host, port), &payload.messages).await
                } else {
                    syslog_udp((&host, port), &payload.messages).await
                }
            }
        }
    }

    async fn post(
        &mut self,
        url: &url::Url,
        (host, port): (&str, u16),
        tls: Option<Arc<rustls::ClientConfig>>,
        token: Option<&str>,
        body: Bytes,
    ) -> Result<(), String> {
        if self.http.as_ref().is_none_or(|c| c.is_closed()) {
            self.http = Some(connect_http((host, port), tls).await?);
        }
        let sender = self.http.as_mut().expect("connected above");
        sender.ready().await.map_err(|e| e.to_string())?;
        // Origin form: the connection names the host.
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut request = http::Request::post(target)
            .header(http::header::HOST, authority(url))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        // Read (bounded) so that the connection can be used again.
        let _ = Limited::new(answer.into_body(), MAX_ANSWER).collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered HTTP {status}"))
        }
    }

    async fn syslog_tcp(&mut self, addr: (&str, u16), messages: &[Bytes]) -> Result<(), String> {
        if self.tcp.is_none() {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connecting: {e}"))?;
            self.tcp = Some(stream);
        }
        let stream = self.tcp.as_mut().expect("connected above");
        let mut framed = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
        for m in messages {
            framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
            framed.extend_from_slice(m);
        }
        stream
            .write_all(&framed)
            .await
            .map_err(|e| format!("writing: {e}"))?;
        stream.flush().await.map_err(|e| format!("writing: {e}"))
    }
}

/// `host[:port]` as the `Host` header gives it.
fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

async fn connect_http(
    (host, port): (&str, u16),
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => handshake(tcp).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
            handshake(stream).await
        }
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One datagram per message; a message too large for one is skipped.
async fn syslog_udp(addr: (&str, u16), messages: &[Bytes]) -> Result<(), String> {
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("resolving {}: {e}", addr.0))?
        .next()
        .ok_or_else(|| format!("{} has no address", addr.0))?;
    let local: std::net::SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| format!("binding: {e}"))?;
    for m in messages.iter().filter(|m| m.len() <= MAX_DATAGRAM) {
        socket
            .send_to(m, target)
            .await
            .map_err(|e| format!("sending: {e}"))?;
    }
    Ok(())
}

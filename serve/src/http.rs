//! The streamable HTTP transport at `/mcp`.
//!
//! - POST: one JSON-RPC message. A 2026-07-28 request (its
//!   `MCP-Protocol-Version` header names that revision) is answered on its
//!   own, after its `Mcp-Method`/`Mcp-Name` headers are checked against the
//!   body. A 2025-11-25 request belongs to the session in `Mcp-Session-Id`
//!   (from `initialize`); a call that may ask the user for approval is
//!   answered as an SSE stream that carries the question first.
//! - GET: a 2025-11-25 session's stream of list changes.
//! - DELETE: ends a 2025-11-25 session (and what it opened behind the host).
//!
//! Before any of that: the `Host` header must name a loopback host when the
//! server listens on one, an `Origin` must be allowed (DNS rebinding), and
//! with tokens configured a bearer token must name a principal.

use crate::dispatch::Caller;
use crate::protocol::{self, Message, RpcError, HANDSHAKE};
use crate::sessions::{Outbound, Session, Sink};
use crate::{ServeError, Shared};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
const KEEPALIVE: Duration = Duration::from_secs(15);
const MAX_CONNECTIONS: usize = 1024;

/// A bound HTTP transport; [`run`](Self::run) serves it.
pub struct HttpServer {
    shared: Arc<Shared>,
    listener: TcpListener,
    addr: SocketAddr,
}

impl HttpServer {
    pub(crate) async fn bind(shared: Arc<Shared>, addr: SocketAddr) -> Result<HttpServer, ServeError> {
        if !addr.ip().is_loopback() && !shared.requires_auth() {
            return Err(ServeError::Unauthenticated(addr));
        }
        let listener = TcpListener::bind(addr).await.map_err(|e| ServeError::Bind {
            addr,
            message: e.to_string(),
        })?;
        let addr = listener.local_addr().map_err(|e| ServeError::Bind {
            addr,
            message: e.to_string(),
        })?;
        Ok(HttpServer { shared, listener, addr })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves connections until shutdown.
    pub fn run(self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.serve())
    }

    async fn serve(self) {
        let HttpServer { shared, listener, addr } = self;
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut stopping = shared.stopping.subscribe();
        loop {
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => p.expect("never closed"),
                _ = crate::stopped(&mut stopping) => return,
            };
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = crate::stopped(&mut stopping) => return,
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(shared, req, addr).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    }
}

/// A response body: all at once, or a stream of SSE events.
pub enum Body {
    /// The whole body.
    Full(Option<Bytes>),
    /// Events as they come; ends when the sender is dropped.
    Events(mpsc::Receiver<Bytes>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Full(b) => http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Events(_) => http_body::SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            Body::Events(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(http_body::Frame::data(b)))),
        }
    }
}

/// One SSE `message` event carrying `message`.
pub(crate) fn sse_event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(text.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("valid"));
    r
}

fn json_body(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(body.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("valid"));
    r
}

fn rpc_error(status: StatusCode, id: &Value, e: &RpcError) -> Response<Body> {
    json_body(status, &protocol::error_response(id, e))
}

fn events(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::Events(rx));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("valid"));
    h.insert(header::CACHE_CONTROL, "no-cache, no-transform".parse().expect("valid"));
    h.insert("x-accel-buffering", "no".parse().expect("valid"));
    r
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_loopback_name(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
}

/// `host[:port]` -> host (IPv6 literals keep their brackets).
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn origin_allowed(shared: &Shared, origin: &str, loopback: bool) -> bool {
    if shared.settings.allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match rest {
        Some(authority) if loopback && !authority.contains('/') => is_loopback_name(host_part(authority)),
        _ => false,
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>, local: SocketAddr) -> Response<Body> {
    if req.uri().path() != "/mcp" {
        return plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
    }
    let loopback = local.ip().is_loopback();
    let headers = req.headers();
    if loopback {
        let host = header_str(headers, "host").map(host_part);
        if !host.is_some_and(is_loopback_name) {
            return plain(StatusCode::MISDIRECTED_REQUEST, "the Host header must name this machine (localhost or 127.0.0.1)");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| origin_allowed(&shared, o, loopback));
        if !ok {
            tracing::warn!(origin = ?origin, "request refused: origin not allowed");
            return plain(StatusCode::FORBIDDEN, "origin not allowed (serve.allowed-origins)");
        }
    }
    let principal = if shared.requires_auth() {
        let token = header_str(headers, "authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        match token.and_then(|t| shared.principal_for(t)) {
            Some(p) => p.to_string(),
            None => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"invalid_token\"".parse().expect("valid"),
                );
                return r;
            }
        }
    } else {
        "local".to_string()
    };
    match *req.method() {
        Method::POST => post(shared, req, principal).await,
        Method::GET => get(shared, req.headers(), &principal),
        Method::DELETE => delete(shared, req.headers(), &principal).await,
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE");
            r.headers_mut().insert(header::ALLOW, "GET, POST, DELETE".parse().expect("valid"));
            r
        }
    }
}

/// The 2025-11-25 session a request names: `Err` is the answer to give.
fn session_of(shared: &Shared, headers: &HeaderMap, principal: &str) -> Result<Arc<Session>, Box<Response<Body>>> {
    let Some(id) = header_str(headers, SESSION_HEADER) else {
        let e = RpcError::new(protocol::INVALID_REQUEST, "Bad Request: no Mcp-Session-Id (send initialize first, or use protocol revision 2026-07-28)");
        return Err(Box::new(rpc_error(StatusCode::BAD_REQUEST, &Value::Null, &e)));
    };
    // Another principal's session is as unknown as a closed one.
    shared.sessions.get(id, principal).ok_or_else(|| {
        let e = RpcError::new(protocol::INVALID_REQUEST, "Session not found: initialize a new session");
        Box::new(rpc_error(StatusCode::NOT_FOUND, &Value::Null, &e))
    })
}

struct Accepts {
    json: bool,
    events: bool,
}

fn accepts(headers: &HeaderMap) -> Accepts {
    let all: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .collect();
    let any = all.is_empty() || all.contains(&"*/*");
    Accepts {
        json: any || all.contains(&"application/json"),
        events: any || all.contains(&"text/event-stream"),
    }
}

/// Whether the request is in 2026-07-28 form: its version header names a
/// revision without handshake, or it has no session and a `_meta` envelope.
fn is_modern(headers: &HeaderMap, params: &Value, method: &str) -> bool {
    match header_str(headers, VERSION_HEADER) {
        Some(v) => !HANDSHAKE.contains(&v),
        None => headers.get(SESSION_HEADER).is_none() && (protocol::is_modern(params) || method == "server/discover"),
    }
}

/// The 2026-07-28 header checks: each routing header once, and equal to
/// what the body says.
fn check_headers(headers: &HeaderMap, method: &str, params: &Value) -> Result<(), RpcError> {
    let mismatch = |what: &str| Err(RpcError::new(protocol::HEADER_MISMATCH, format!("{what} header does not match the request body")));
    for name in [VERSION_HEADER, METHOD_HEADER, NAME_HEADER] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(RpcError::new(protocol::HEADER_MISMATCH, format!("{name} header given more than once")));
        }
    }
    let body_version = params.pointer(&format!("/_meta/{}", protocol::META_PROTOCOL.replace('/', "~1")));
    if header_str(headers, VERSION_HEADER).map(|v| Value::String(v.into())).as_ref() != body_version {
        return mismatch("MCP-Protocol-Version");
    }
    if header_str(headers, METHOD_HEADER) != Some(method) {
        return mismatch("Mcp-Method");
    }
    if method == "tools/call" {
        if let Some(name) = params.get("name").and_then(Value::as_str) {
            let header = header_str(headers, NAME_HEADER).and_then(protocol::decode_header_value);
            if header.as_deref() != Some(name) {
                return mismatch("Mcp-Name");
            }
        }
    }
    Ok(())
}

/// Aborts a request's task when the client goes away.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn post(shared: Arc<Shared>, req: Request<Incoming>, principal: String) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let accept = accepts(&headers);
    if !accept.json && !accept.events {
        return plain(StatusCode::NOT_ACCEPTABLE, "accept application/json or text/event-stream");
    }
    let max = shared.settings.max_request_bytes as usize;
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, &format!("request larger than {max} bytes (serve.max-request-bytes)"));
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "the request body could not be read"),
    };
    let message = match protocol::decode(&bytes) {
        Ok(m) => m,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, &Value::Null, &e),
    };
    let (id, method, params) = match message {
        Message::Response { id, body } => {
            return match session_of(&shared, &headers, &principal) {
                Ok(s) if s.deliver(&id, body) => plain(StatusCode::ACCEPTED, ""),
                Ok(_) => plain(StatusCode::ACCEPTED, ""),
                Err(r) => *r,
            };
        }
        Message::Notification { method, params } => {
            if let Some(s) = headers.get(SESSION_HEADER).and_then(|_| session_of(&shared, &headers, &principal).ok()) {
                match method.as_str() {
                    "notifications/initialized" => s.initialized.store(true, std::sync::atomic::Ordering::Release),
                    "notifications/cancelled" => {
                        if let Some(id) = params.get("requestId") {
                            s.cancel(id);
                        }
                    }
                    _ => {}
                }
            }
            return plain(StatusCode::ACCEPTED, "");
        }
        Message::Request { id, method, params } => (id, method, params),
    };
    if is_modern(&headers, &params, &method) {
        return modern(shared, &headers, id, method, params, principal, accept).await;
    }
    if method == "initialize" {
        if headers.get(SESSION_HEADER).is_some() {
            let e = RpcError::new(protocol::INVALID_REQUEST, "initialize opens a session: send it without Mcp-Session-Id");
            return rpc_error(StatusCode::BAD_REQUEST, &id, &e);
        }
        return match shared.initialize(&params, &principal) {
            Ok((session, result)) => {
                let mut r = json_body(StatusCode::OK, &protocol::response(&id, Ok(result)));
                r.headers_mut().insert(SESSION_HEADER, session.id.parse().expect("hex"));
                r
            }
            Err(e) => rpc_error(StatusCode::OK, &id, &e),
        };
    }
    let session = match session_of(&shared, &headers, &principal) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(v) = header_str(&headers, VERSION_HEADER) {
        if v != session.version {
            let e = RpcError::new(protocol::INVALID_REQUEST, format!("MCP-Protocol-Version {v} differs from the session's {}", session.version));
            return rpc_error(StatusCode::BAD_REQUEST, &id, &e);
        }
    }
    let Some(in_flight) = shared.enter(&principal) else {
        return busy(&shared, &id);
    };
    // A call that may ask the user for approval is answered as a stream that
    // can carry the question.
    let asks = method == "tools/call"
        && accept.events
        && params
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| shared.host().approval_rule(n).is_some());
    if asks {
        let (tx, rx) = mpsc::channel(16);
        let caller = Caller {
            principal,
            transport: "http",
            session: Some(session.clone()),
            back: Some(Arc::new(Outbound { session: session.clone(), sink: Sink::Events(tx.clone()) })),
        };
        let request_id = id.clone();
        let task = tokio::spawn(async move {
            let outcome = shared.handle(&method, params, &caller).await;
            let _ = tx.send(sse_event(&protocol::response(&id, outcome))).await;
            drop(in_flight);
        });
        session.track(&request_id, task.abort_handle());
        return events(rx);
    }
    let caller = Caller {
        principal,
        transport: "http",
        session: Some(session.clone()),
        back: None,
    };
    let request_id = id.clone();
    let task = tokio::spawn(async move {
        let outcome = shared.handle(&method, params, &caller).await;
        drop(in_flight);
        outcome
    });
    session.track(&request_id, task.abort_handle());
    let guard = AbortOnDrop(task.abort_handle());
    let outcome = match task.await {
        Ok(o) => o,
        Err(_) => Err(RpcError::new(protocol::INTERNAL_ERROR, "the request was cancelled")),
    };
    drop(guard);
    session.untrack(&request_id);
    let body = protocol::response(&request_id, outcome);
    if accept.json {
        json_body(StatusCode::OK, &body)
    } else {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(sse_event(&body));
        events(rx)
    }
}

fn busy(shared: &Shared, id: &Value) -> Response<Body> {
    if *shared.stopping.borrow() {
        let e = RpcError::new(protocol::BUSY, "the server is shutting down");
        return rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, &e);
    }
    let e = RpcError::new(protocol::BUSY, format!(
        "more than {} requests in flight for this client (serve.max-concurrent-per-client)",
        shared.settings.max_concurrent_per_client
    ));
    rpc_error(StatusCode::TOO_MANY_REQUESTS, id, &e)
}

async fn modern(shared: Arc<Shared>, headers: &HeaderMap, id: Value, method: String, params: Value, principal: String, accept: Accepts) -> Response<Body> {
    let reject = |e: RpcError| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::OK);
        rpc_error(status, &id, &e)
    };
    if let Err(e) = protocol::envelope(&params) {
        // An unsupported version is told so before header details.
        if e.code == protocol::UNSUPPORTED_VERSION || header_str(headers, VERSION_HEADER).is_none() {
            return reject(e);
        }
        return reject(check_headers(headers, &method, &params).err().unwrap_or(e));
    }
    if let Err(e) = check_headers(headers, &method, &params) {
        return reject(e);
    }
    if method == "subscriptions/listen" {
        if !accept.events {
            return plain(StatusCode::NOT_ACCEPTABLE, "subscriptions/listen answers with text/event-stream");
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(listen(shared, tx, id, params));
        return events(rx);
    }
    let Some(in_flight) = shared.enter(&principal) else {
        return busy(&shared, &id);
    };
    let caller = Caller { principal, transport: "http", session: None, back: None };
    let outcome = shared.handle(&method, params, &caller).await;
    drop(in_flight);
    match outcome {
        Ok(result) => json_body(StatusCode::OK, &protocol::response(&id, Ok(result))),
        Err(e) => reject(e),
    }
}

/// `subscriptions/listen`: acknowledged, then list changes and keep-alive
/// comments until the client goes or the server stops, which ends it with
/// its result.
async fn listen(shared: Arc<Shared>, tx: mpsc::Sender<Bytes>, id: Value, params: Value) {
    let tools = params.pointer("/notifications/toolsListChanged") == Some(&Value::Bool(true));
    let granted = if tools { json!({"toolsListChanged": true}) } else { json!({}) };
    let ack = protocol::notification(
        "notifications/subscriptions/acknowledged",
        json!({"notifications": granted, "_meta": {protocol::META_SUBSCRIPTION: id}}),
    );
    if tx.send(sse_event(&ack)).await.is_err() {
        return;
    }
    let mut changes = shared.changes.subscribe();
    changes.borrow_and_update();
    let mut stopping = shared.stopping.subscribe();
    loop {
        tokio::select! {
            c = changes.changed() => {
                if c.is_err() { break; }
                if tools {
                    let n = protocol::notification("notifications/tools/list_changed", json!({"_meta": {protocol::META_SUBSCRIPTION: id}}));
                    if tx.send(sse_event(&n)).await.is_err() { return; }
                }
            }
            _ = tokio::time::sleep(KEEPALIVE) => {
                if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() { return; }
            }
            _ = crate::stopped(&mut stopping) => break,
        }
    }
    let end = json!({"resultType": "complete", "_meta": {protocol::META_SUBSCRIPTION: id}});
    let _ = tx.send(sse_event(&protocol::response(&id, Ok(end)))).await;
}

/// GET: a 2025-11-25 session's stream of list changes.
fn get(shared: Arc<Shared>, headers: &HeaderMap, principal: &str) -> Response<Body> {
    if header_str(headers, VERSION_HEADER).is_some_and(|v| !HANDSHAKE.contains(&v)) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "revision 2026-07-28 has no GET stream: use subscriptions/listen");
    }
    if !accepts(headers).events {
        return plain(StatusCode::NOT_ACCEPTABLE, "the stream is text/event-stream");
    }
    let session = match session_of(&shared, headers, principal) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stopping = shared.stopping.subscribe();
        let sink = Sink::Events(tx.clone());
        let keepalive = async {
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = crate::stdio::list_changes(shared.clone(), sink, None) => {}
            _ = keepalive => {}
            _ = crate::stopped(&mut stopping) => {}
        }
        drop(session);
    });
    events(rx)
}

/// DELETE: ends a 2025-11-25 session.
async fn delete(shared: Arc<Shared>, headers: &HeaderMap, principal: &str) -> Response<Body> {
    let session = match session_of(&shared, headers, principal) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(s) = shared.sessions.remove(&session.id) {
        shared.end_session(&s).await;
    }
    plain(StatusCode::OK, "")
}

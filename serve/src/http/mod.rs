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

mod body;
mod post;
mod streams;

use crate::protocol::{self, RpcError};
use crate::sessions::Session;
use crate::{ServeError, Shared};
pub use body::Body;
use body::{plain, rpc_error};
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
    pub(crate) async fn bind(
        shared: Arc<Shared>,
        addr: SocketAddr,
    ) -> Result<HttpServer, ServeError> {
        if !addr.ip().is_loopback() && !shared.requires_auth() {
            return Err(ServeError::Unauthenticated(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind {
                addr,
                message: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| ServeError::Bind {
            addr,
            message: e.to_string(),
        })?;
        Ok(HttpServer {
            shared,
            listener,
            addr,
        })
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
        let HttpServer {
            shared,
            listener,
            addr,
        } = self;
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
pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
        Some(authority) if loopback && !authority.contains('/') => {
            is_loopback_name(host_part(authority))
        }
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
            return plain(
                StatusCode::MISDIRECTED_REQUEST,
                "the Host header must name this machine (localhost or 127.0.0.1)",
            );
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(&shared, o, loopback));
        if !ok {
            tracing::warn!(origin = ?origin, "request refused: origin not allowed");
            return plain(
                StatusCode::FORBIDDEN,
                "origin not allowed (serve.allowed-origins)",
            );
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
        Method::POST => post::post(shared, req, principal).await,
        Method::GET => streams::get(shared, req.headers(), &principal),
        Method::DELETE => streams::delete(shared, req.headers(), &principal).await,
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE");
            r.headers_mut()
                .insert(header::ALLOW, "GET, POST, DELETE".parse().expect("valid"));
            r
        }
    }
}

/// The 2025-11-25 session a request names: `Err` is the answer to give.
fn session_of(
    shared: &Shared,
    headers: &HeaderMap,
    principal: &str,
) -> Result<Arc<Session>, Box<Response<Body>>> {
    let Some(id) = header_str(headers, SESSION_HEADER) else {
        let e = RpcError::new(protocol::INVALID_REQUEST, "Bad Request: no Mcp-Session-Id (send initialize first, or use protocol revision 2026-07-28)");
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            &e,
        )));
    };
    // Another principal's session is as unknown as a closed one.
    shared.sessions.get(id, principal).ok_or_else(|| {
        let e = RpcError::new(
            protocol::INVALID_REQUEST,
            "Session not found: initialize a new session",
        );
        Box::new(rpc_error(StatusCode::NOT_FOUND, &Value::Null, &e))
    })
}

struct Accepts {
    pub(super) json: bool,
    pub(super) events: bool,
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

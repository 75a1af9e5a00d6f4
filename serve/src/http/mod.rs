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
//! - `/healthz` and `/readyz`: probes for load balancers and orchestrators
//!   (no token; see [`probes`]).
//! - `/.well-known/warden/marketplace.json` and `.rtfs`: the published
//!   marketplace, what the caller may call (see [`marketplace`]).
//!
//! Before any of that: the connection must fit under the connection caps
//! (see [`conns`]), its request must come whole within the header and body
//! timeouts, the `Host` header must name a loopback host when the server
//! listens on one, an `Origin` must be allowed (DNS rebinding), and with
//! tokens configured a bearer token must name a principal. Every refusal is
//! counted and logged ([`crate::refusals`]).

mod body;
mod conns;
pub mod marketplace;
mod post;
mod probes;
mod streams;
mod task_call;

use crate::client_sessions::Session;
use crate::cluster_sessions::Found;
use crate::protocol::{self, RpcError};
use crate::refusals::Refusal;
use crate::{ServeError, Shared};
pub use body::Body;
use body::{plain, rpc_error, Tracked};
use conns::{Cap, Conn, Conns, Place};
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
const KEEPALIVE: Duration = Duration::from_secs(15);

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
        let conns = Arc::new(Conns::new(
            shared.settings.max_connections as usize,
            shared.settings.max_connections_per_ip as usize,
        ));
        let mut stopping = shared.stopping.subscribe();
        loop {
            let (stream, peer) = tokio::select! {
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
            let Some(place) = admit(&shared, &conns, peer) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(shared.clone(), stream, place, addr));
        }
    }
}

/// A place for a new connection from `peer` (stalled ones closed for room
/// are counted); `None` when every connection in its way is serving.
fn admit(shared: &Shared, conns: &Arc<Conns>, peer: SocketAddr) -> Option<Place> {
    let cap_name = |cap| match cap {
        Cap::Total => "max-connections",
        Cap::PerIp => "max-connections-per-ip",
    };
    match conns.admit(peer.ip()) {
        Ok((place, shed)) => {
            for s in shed {
                let what = format!(
                    "connection from {} closed after {} ms without a request, to make room (serve.{})",
                    s.peer,
                    s.waited.as_millis(),
                    cap_name(s.cap)
                );
                shared.refusals.note(Refusal::Shed, &what);
            }
            Some(place)
        }
        Err(cap) => {
            let what = format!(
                "connection from {} closed: every connection is serving a request (serve.{})",
                peer.ip(),
                cap_name(cap)
            );
            shared.refusals.note(Refusal::ConnectionCap, &what);
            None
        }
    }
}

/// Serves one connection until it closes, its headers time out, or it is
/// closed for room.
async fn connection(shared: Arc<Shared>, stream: TcpStream, place: Place, local: SocketAddr) {
    let conn = place.conn.clone();
    let header_timeout = Duration::from_millis(shared.settings.header_timeout_ms);
    let service = {
        let (shared, conn) = (shared.clone(), conn.clone());
        hyper::service::service_fn(move |req| {
            let (shared, conn) = (shared.clone(), conn.clone());
            async move {
                let response = handle(shared, req, local, &conn).await;
                Ok::<_, Infallible>(response.map(|body| Tracked::new(body, conn)))
            }
        })
    };
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::select! {
        r = served => match r {
            // A connection idle after a response may time out: that is
            // the keep-alive limit, not a refusal.
            Err(e) if e.is_timeout() && conn.responses() == 0 => {
                let what = format!(
                    "connection from {}: no whole request headers within {} ms (serve.header-timeout-ms)",
                    conn.peer,
                    header_timeout.as_millis()
                );
                shared.refusals.note(Refusal::HeaderTimeout, &what);
            }
            Err(e) => tracing::debug!(peer = %conn.peer, "connection ended: {e}"),
            Ok(()) => {}
        },
        _ = conn.closed() => {}
    }
    drop(place);
}

/// A header's value, if it is text.
pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `authority` (`host[:port]`) names this machine: `localhost`, an
/// IPv4 address in 127.0.0.0/8 or the IPv6 loopback (in brackets), each
/// parsed whole, with an optional numeric port. A name that merely starts
/// like one (`127.0.0.1.evil.example`) is a DNS name anyone may point here.
fn is_loopback_authority(authority: &str) -> bool {
    let Some(host) = authority_host(authority) else {
        return false;
    };
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|a| {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// The host of `authority` (`host[:port]`) when its port, if any, is a
/// numeric port; IPv6 literals keep their brackets.
fn authority_host(authority: &str) -> Option<&str> {
    let (host, port) = split_authority(authority)?;
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    port_ok.then_some(host)
}

/// `host[:port]` -> (host, port); IPv6 literals keep their brackets.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, rest) = authority.split_at(end);
        if rest.is_empty() {
            return Some((host, None));
        }
        return rest.strip_prefix(':').map(|p| (host, Some(p)));
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn origin_allowed(shared: &Shared, origin: &str, loopback: bool) -> bool {
    if shared.settings.allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match rest {
        Some(authority) if loopback && !authority.contains('/') => is_loopback_authority(authority),
        _ => false,
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    local: SocketAddr,
    conn: &Arc<Conn>,
) -> Response<Body> {
    if let Some(metadata) = protected_resource(&shared, &req) {
        return metadata;
    }
    if let Some(probe) = probes::Probe::at(req.uri().path()) {
        // No token: orchestrators' probes carry none, and the answer says
        // only whether this replica serves.
        if let Err(r) = misdirected(&shared, &req, local.ip().is_loopback(), conn) {
            return *r;
        }
        return probes::answer(&shared, probe, req.method());
    }
    let published = marketplace::Format::at(req.uri().path());
    if req.uri().path() != "/mcp" && published.is_none() {
        return plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
    }
    let admitted = match admission(&shared, &req, local.ip().is_loopback(), conn) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let (principal, token) = match admitted {
        Admitted::Principal(p) => (p, None),
        Admitted::Bearer(token) => match bearer(&shared, &token, conn).await {
            Ok(id) => (id.principal.clone(), Some((id, token))),
            Err(r) => return *r,
        },
    };
    if let Some(format) = published {
        conn.serving();
        let (scopes, groups) = token.as_ref().map_or((&[][..], &[][..]), |(id, _)| {
            (id.scopes.as_slice(), id.groups.as_slice())
        });
        let caller = warden::Identity {
            principal: Some(&principal),
            scopes,
            groups,
        };
        return marketplace::answer(&shared, format, req.method(), req.headers(), caller);
    }
    match *req.method() {
        Method::POST => post::post(shared, req, principal, token, conn).await,
        Method::GET => {
            conn.serving();
            streams::get(shared, req.headers(), &principal).await
        }
        Method::DELETE => {
            conn.serving();
            streams::delete(shared, req.headers(), &principal).await
        }
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE");
            r.headers_mut()
                .insert(header::ALLOW, "GET, POST, DELETE".parse().expect("valid"));
            r
        }
    }
}

/// Who the front door let in: a static token's principal (or `local`),
/// or an access token still to be checked against `[serve.oauth]`.
enum Admitted {
    Principal(String),
    Bearer(String),
}

/// The checks before any method: `Host` (on a loopback bind), `Origin`, the
/// bearer token. Returns the principal, or the refusal (counted).
fn admission(
    shared: &Shared,
    req: &Request<Incoming>,
    loopback: bool,
    conn: &Conn,
) -> Result<Admitted, Box<Response<Body>>> {
    let headers = req.headers();
    misdirected(shared, req, loopback, conn)?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(shared, o, loopback));
        if !ok {
            let what = format!("from {}: origin {origin:?} not allowed", conn.peer);
            shared.refusals.note(Refusal::Origin, &what);
            return Err(Box::new(plain(
                StatusCode::FORBIDDEN,
                "origin not allowed (serve.allowed-origins)",
            )));
        }
    }
    if !shared.requires_auth() {
        return Ok(Admitted::Principal("local".to_string()));
    }
    let token = header_str(headers, "authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    if let Some(p) = token.and_then(|t| shared.principal_for(t)) {
        return Ok(Admitted::Principal(p.to_string()));
    }
    if let (Some(t), Some(_)) = (token, &shared.oauth) {
        return Ok(Admitted::Bearer(t.to_string()));
    }
    let what = format!("from {}: no valid bearer token", conn.peer);
    Err(unauthorized(shared, &what, token.is_some()))
}

/// 401, counted, with the challenge that sends an OAuth client to this
/// resource's metadata (and so to its authorization server).
fn unauthorized(shared: &Shared, what: &str, had_token: bool) -> Box<Response<Body>> {
    shared.refusals.note(Refusal::Unauthorized, what);
    let mut r = plain(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    let challenge = match &shared.oauth {
        Some(o) => crate::oauth::challenge(o.settings(), had_token.then_some("invalid_token")),
        None => "Bearer error=\"invalid_token\"".to_string(),
    };
    if let Ok(v) = challenge.parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Box::new(r)
}

/// Checks an access token against `[serve.oauth]`: the identity, or the
/// refusal (401 invalid, 403 insufficient scope, 503 keys unavailable).
async fn bearer(
    shared: &Shared,
    token: &str,
    conn: &Conn,
) -> Result<crate::oauth::TokenIdentity, Box<Response<Body>>> {
    let oauth = shared
        .oauth
        .as_ref()
        .expect("admitted only with [serve.oauth]");
    match oauth.check(token).await {
        Ok(id) => Ok(id),
        Err(crate::oauth::Rejection::Invalid(why)) => Err(unauthorized(
            shared,
            &format!("from {}: access token refused: {why}", conn.peer),
            true,
        )),
        Err(crate::oauth::Rejection::Scope(missing)) => {
            let what = format!("from {}: access token lacks scopes {missing:?}", conn.peer);
            shared.refusals.note(Refusal::Unauthorized, &what);
            let mut r = plain(
                StatusCode::FORBIDDEN,
                "the access token lacks a required scope",
            );
            let challenge = crate::oauth::scope_challenge(oauth.settings(), &missing);
            if let Ok(v) = challenge.parse() {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            Err(Box::new(r))
        }
        Err(crate::oauth::Rejection::Unavailable(why)) => {
            tracing::warn!("access token not checked: {why}");
            Err(Box::new(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the authorization server's keys are unavailable",
            )))
        }
    }
}

/// `GET` of this resource's protected resource metadata (RFC 9728), at
/// its path-specific and root well-known URLs, when `[serve.oauth]` is set.
fn protected_resource(shared: &Shared, req: &Request<Incoming>) -> Option<Response<Body>> {
    let oauth = shared.oauth.as_ref()?.settings();
    let path = req.uri().path();
    let ours = path == oauth.metadata_path() || path == "/.well-known/oauth-protected-resource";
    if !ours || req.method() != Method::GET {
        return None;
    }
    let body = serde_json::to_vec(&oauth.metadata()).expect("JSON");
    let mut r = Response::new(Body::Full(Some(body.into())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("valid"),
    );
    Some(r)
}

/// On a loopback bind, refuses (counted) a request whose `Host` does not
/// name this machine (or one of `[serve] allowed-hosts`): a DNS name
/// pointed here by a page in a browser.
fn misdirected(
    shared: &Shared,
    req: &Request<Incoming>,
    loopback: bool,
    conn: &Conn,
) -> Result<(), Box<Response<Body>>> {
    if !loopback || names_this_machine(req, &shared.settings.allowed_hosts) {
        return Ok(());
    }
    let host = header_str(req.headers(), "host").unwrap_or("");
    let what = format!(
        "from {}: Host {host:?} does not name this machine",
        conn.peer
    );
    shared.refusals.note(Refusal::Misdirected, &what);
    Err(Box::new(plain(
        StatusCode::MISDIRECTED_REQUEST,
        "the Host header must name this machine (localhost, 127.0.0.1, [::1] or one of serve.allowed-hosts, with an optional port)",
    )))
}

/// One `Host` header naming a loopback host, and a loopback authority in
/// the request line if it has one.
fn names_this_machine(req: &Request<Incoming>, allowed: &[String]) -> bool {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok(),
        _ => None,
    };
    let ours = |a: &str| is_loopback_authority(a) || is_allowed_authority(a, allowed);
    host.is_some_and(ours) && req.uri().authority().is_none_or(|a| ours(a.as_str()))
}

/// Whether `authority` is one of `allowed` (`[serve] allowed-hosts`,
/// compared without case) with an optional numeric port.
fn is_allowed_authority(authority: &str, allowed: &[String]) -> bool {
    authority_host(authority)
        .is_some_and(|host| allowed.iter().any(|a| a.eq_ignore_ascii_case(host)))
}

/// The 2025-11-25 session a request names (opened here or, with
/// `[cluster]`, on another replica): `Err` is the answer to give.
async fn session_of(
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
    let why = match shared.find_session(id, principal).await {
        Found::Session(s) => return Ok(s),
        Found::Unknown => {
            let e = RpcError::new(
                protocol::INVALID_REQUEST,
                "Session not found: initialize a new session",
            );
            return Err(Box::new(rpc_error(StatusCode::NOT_FOUND, &Value::Null, &e)));
        }
        Found::Unavailable(why) => why,
    };
    let e = RpcError::new(protocol::BUSY, why);
    Err(Box::new(rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &Value::Null,
        &e,
    )))
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

#[cfg(test)]
mod tests {
    use super::is_loopback_authority;

    #[test]
    fn only_loopback_names_and_addresses_are_loopback() {
        for yes in [
            "localhost",
            "localhost:8700",
            "LocalHost:1",
            "127.0.0.1",
            "127.0.0.1:65535",
            "127.1.2.3",
            "127.255.255.254:80",
            "[::1]",
            "[::1]:8700",
            "[0:0:0:0:0:0:0:1]:1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_authority(yes), "{yes} was refused");
        }
        for no in [
            "",
            "127.0.0.1.evil.com",
            "127.0.0.1.evil.com:8700",
            "127.attacker.net",
            "127.0.0.1.nip.io",
            "127.1",
            "127.0.0.01",
            "0x7f.0.0.1",
            "2130706433",
            "128.0.0.1",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.evil.com",
            "localhost.",
            "evil-localhost",
            "sub.localhost",
            "127.0.0.1:",
            "127.0.0.1:abc",
            "127.0.0.1:+80",
            "127.0.0.1:65536",
            "127.0.0.1:8700:1",
            "127.0.0.1@evil.com",
            "evil.com@127.0.0.1",
            "[::1].evil.com",
            "[::1]evil",
            "[::2]",
            "[::]",
            "[::1",
            "::1",
            "[fe80::1%lo]",
            "127.0.0.1 ",
            " 127.0.0.1",
            "127.0.0.1/x",
        ] {
            assert!(!is_loopback_authority(no), "{no:?} was taken for loopback");
        }
    }
}

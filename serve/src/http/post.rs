//! POST: one JSON-RPC message, in either revision.

use super::body::{events, json_body, plain, rpc_error, Body};
use super::{
    accepts, header_str, session_of, Accepts, METHOD_HEADER, NAME_HEADER, SESSION_HEADER,
    VERSION_HEADER,
};
use crate::dispatch::Caller;
use crate::protocol::{self, sse_event, Message, RpcError, HANDSHAKE};
use crate::sessions::{Outbound, Sink};
use crate::Shared;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Whether the request is in 2026-07-28 form: its version header names a
/// revision without handshake, or it has no session and a `_meta` envelope.
fn is_modern(headers: &HeaderMap, params: &Value, method: &str) -> bool {
    match header_str(headers, VERSION_HEADER) {
        Some(v) => !HANDSHAKE.contains(&v),
        None => {
            headers.get(SESSION_HEADER).is_none()
                && (protocol::is_modern(params) || method == "server/discover")
        }
    }
}

/// The 2026-07-28 header checks: each routing header once, and equal to
/// what the body says.
fn check_headers(headers: &HeaderMap, method: &str, params: &Value) -> Result<(), RpcError> {
    let mismatch = |what: &str| {
        Err(RpcError::new(
            protocol::HEADER_MISMATCH,
            format!("{what} header does not match the request body"),
        ))
    };
    for name in [VERSION_HEADER, METHOD_HEADER, NAME_HEADER] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(RpcError::new(
                protocol::HEADER_MISMATCH,
                format!("{name} header given more than once"),
            ));
        }
    }
    let body_version = params.pointer(&format!(
        "/_meta/{}",
        protocol::META_PROTOCOL.replace('/', "~1")
    ));
    if header_str(headers, VERSION_HEADER)
        .map(|v| Value::String(v.into()))
        .as_ref()
        != body_version
    {
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

pub(super) async fn post(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    principal: String,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let accept = accepts(&headers);
    if !accept.json && !accept.events {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "accept application/json or text/event-stream",
        );
    }
    let max = shared.settings.max_request_bytes as usize;
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request larger than {max} bytes (serve.max-request-bytes)"),
            );
        }
        Err(_) => {
            return plain(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        }
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
            if let Some(s) = headers
                .get(SESSION_HEADER)
                .and_then(|_| session_of(&shared, &headers, &principal).ok())
            {
                match method.as_str() {
                    "notifications/initialized" => s
                        .initialized
                        .store(true, std::sync::atomic::Ordering::Release),
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
            let e = RpcError::new(
                protocol::INVALID_REQUEST,
                "initialize opens a session: send it without Mcp-Session-Id",
            );
            return rpc_error(StatusCode::BAD_REQUEST, &id, &e);
        }
        return match shared.initialize(&params, &principal) {
            Ok((session, result)) => {
                let mut r = json_body(StatusCode::OK, &protocol::response(&id, Ok(result)));
                r.headers_mut()
                    .insert(SESSION_HEADER, session.id.parse().expect("hex"));
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
            let e = RpcError::new(
                protocol::INVALID_REQUEST,
                format!(
                    "MCP-Protocol-Version {v} differs from the session's {}",
                    session.version
                ),
            );
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
            back: Some(Arc::new(Outbound {
                session: session.clone(),
                sink: Sink::Events(tx.clone()),
            })),
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
        Err(_) => Err(RpcError::new(
            protocol::INTERNAL_ERROR,
            "the request was cancelled",
        )),
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
    let e = RpcError::new(
        protocol::BUSY,
        format!(
            "more than {} requests in flight for this client (serve.max-concurrent-per-client)",
            shared.settings.max_concurrent_per_client
        ),
    );
    rpc_error(StatusCode::TOO_MANY_REQUESTS, id, &e)
}

async fn modern(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    id: Value,
    method: String,
    params: Value,
    principal: String,
    accept: Accepts,
) -> Response<Body> {
    let reject = |e: RpcError| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::OK);
        rpc_error(status, &id, &e)
    };
    if let Err(e) = protocol::envelope(&params) {
        // An unsupported version is told so before header details.
        if e.code == protocol::UNSUPPORTED_VERSION || header_str(headers, VERSION_HEADER).is_none()
        {
            return reject(e);
        }
        return reject(check_headers(headers, &method, &params).err().unwrap_or(e));
    }
    if let Err(e) = check_headers(headers, &method, &params) {
        return reject(e);
    }
    if method == "subscriptions/listen" {
        if !accept.events {
            return plain(
                StatusCode::NOT_ACCEPTABLE,
                "subscriptions/listen answers with text/event-stream",
            );
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(super::streams::listen(shared, tx, id, params));
        return events(rx);
    }
    let Some(in_flight) = shared.enter(&principal) else {
        return busy(&shared, &id);
    };
    let caller = Caller {
        principal,
        transport: "http",
        session: None,
        back: None,
    };
    let outcome = shared.handle(&method, params, &caller).await;
    drop(in_flight);
    match outcome {
        Ok(result) => json_body(StatusCode::OK, &protocol::response(&id, Ok(result))),
        Err(e) => reject(e),
    }
}

//! POST: one JSON-RPC message, in either revision. Its `Content-Type` must
//! be `application/json` (415 otherwise) and its body must come whole within
//! `body-timeout-ms` (408 otherwise).

use super::body::{events, json_body, plain, rpc_error, Body};
use super::conns::Conn;
use super::{
    accepts, header_str, session_of, Accepts, METHOD_HEADER, NAME_HEADER, SESSION_HEADER,
    VERSION_HEADER,
};
use crate::client_sessions::{Outbound, Session, Sink};
use crate::dispatch::Caller;
use crate::protocol::{self, sse_event, Message, RpcError, HANDSHAKE};
use crate::refusals::Refusal;
use crate::{Busy, Shared};
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
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
    let body_version = params
        .get("_meta")
        .and_then(|m| m.get(protocol::META_PROTOCOL));
    let agrees = match (header_str(headers, VERSION_HEADER), body_version) {
        (None, None) => true,
        (Some(header), Some(Value::String(body))) => header == body,
        _ => false,
    };
    if !agrees {
        return mismatch("MCP-Protocol-Version");
    }
    if header_str(headers, METHOD_HEADER) != Some(method) {
        return mismatch("Mcp-Method");
    }
    // The tool a call names, or the task a `tasks/*` request is about.
    let named = match method {
        "tools/call" => "name",
        "tasks/get" | "tasks/update" | "tasks/cancel" => "taskId",
        _ => "",
    };
    if !named.is_empty() {
        if let Some(name) = params.get(named).and_then(Value::as_str) {
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
    // The token's identity, and the token (for `[secrets] exchange`).
    token: Option<(crate::oauth::TokenIdentity, String)>,
    conn: &Arc<Conn>,
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
    if !is_json(&headers) {
        let what = format!(
            "from {}: a POST of Content-Type {:?}",
            conn.peer,
            header_str(&headers, "content-type").unwrap_or("(none)")
        );
        shared.refusals.note(Refusal::MediaType, &what);
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type: Content-Type must be application/json",
        );
    }
    let bytes = match read_body(&shared, body, conn).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    conn.serving();
    let message = match protocol::decode(&bytes) {
        Ok(m) => m,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, &Value::Null, &e),
    };
    let (id, method, params) = match message {
        Message::Response { id, body } => {
            return match session_of(&shared, &headers, &principal).await {
                Ok(s) if s.deliver(&id, body) => plain(StatusCode::ACCEPTED, ""),
                Ok(_) => plain(StatusCode::ACCEPTED, ""),
                Err(r) => *r,
            };
        }
        Message::Notification { method, params } => {
            notification(&shared, &headers, &principal, &method, &params).await;
            return plain(StatusCode::ACCEPTED, "");
        }
        Message::Request { id, method, params } => (id, method, params),
    };
    let caller = Caller {
        // A 2025-11-25 session's own once it is known.
        account: principal.clone(),
        principal,
        scopes: token
            .as_ref()
            .map(|(t, _)| t.scopes.clone())
            .unwrap_or_default(),
        groups: token
            .as_ref()
            .map(|(t, _)| t.groups.clone())
            .unwrap_or_default(),
        issuer: token.as_ref().map(|(t, _)| t.issuer.clone()),
        access_token: token.map(|(_, raw)| raw),
        transport: "http",
        session: None,
        back: None,
        notify: None,
        task_progress: None,
        // Most requests name no parent: the host is not asked then.
        trace_parent: match shared.traced() && headers.contains_key("traceparent") {
            false => None,
            true => shared
                .host()
                .telemetry()
                .map(|t| t.parent(None, Some(&headers))),
        },
        request_id: shared
            .traced()
            .then(|| crate::protocol::id_text(&id))
            .flatten(),
    };
    let request = Rpc {
        id,
        method,
        params,
        accept,
        conn: conn.id,
    };
    if is_modern(&headers, &request.params, &request.method) {
        return modern(shared, &headers, request, caller).await;
    }
    if request.method == "initialize" {
        return initialize(&shared, &headers, &request, &caller.principal).await;
    }
    legacy(shared, &headers, request, caller).await
}

/// A JSON-RPC request, as the POST carried it.
struct Rpc {
    id: Value,
    method: String,
    params: Value,
    accept: Accepts,
    /// The connection it came on.
    conn: u64,
}

/// Whether the body is declared JSON: one `Content-Type`, whose media type
/// is `application/json` (any case, parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return false;
    };
    value.to_str().is_ok_and(|v| {
        let media = v.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/json")
    })
}

/// The whole body, within `max-request-bytes` and `body-timeout-ms` (from
/// the end of the headers); else the answer (a stalled body is counted and
/// its connection closed).
async fn read_body(
    shared: &Shared,
    body: Incoming,
    conn: &Conn,
) -> Result<bytes::Bytes, Box<Response<Body>>> {
    let max = shared.settings.max_request_bytes as usize;
    let deadline = Duration::from_millis(shared.settings.body_timeout_ms);
    let read = http_body_util::Limited::new(body, max).collect();
    match within(deadline, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request larger than {max} bytes (serve.max-request-bytes)"),
        ))),
        Ok(Err(_)) => Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        ))),
        Err(_) => {
            let what = format!(
                "from {}: the request body did not come whole within {} ms (serve.body-timeout-ms)",
                conn.peer,
                deadline.as_millis()
            );
            shared.refusals.note(Refusal::BodyTimeout, &what);
            let mut r = plain(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not come whole in time (serve.body-timeout-ms)",
            );
            r.headers_mut()
                .insert(header::CONNECTION, "close".parse().expect("valid"));
            Err(Box::new(r))
        }
    }
}

/// `fut` within `limit`, or `Err` once it passes. The timer starts only if
/// `fut` is not ready when first polled: a body that came with its headers
/// (most do) arms no timer, and waking the runtime's timer for it would cost
/// a thread switch per request.
async fn within<F: std::future::Future>(limit: Duration, fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(move |cx| {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        std::future::Future::poll(timer.as_mut(), cx).map(Err)
    })
    .await
}

/// A notification of a 2025-11-25 session: `initialized`, `cancelled`.
async fn notification(
    shared: &Shared,
    headers: &HeaderMap,
    principal: &str,
    method: &str,
    params: &Value,
) {
    if headers.get(SESSION_HEADER).is_none() {
        return;
    }
    let Ok(s) = session_of(shared, headers, principal).await else {
        return;
    };
    match method {
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

/// Whose budget a request spends: with tokens, its principal's; without,
/// its session's or else its connection's (local clients have no identity
/// of their own, and must not share one budget).
fn client_key(shared: &Shared, principal: &str, session: Option<&Session>, conn: u64) -> String {
    match session {
        _ if shared.requires_auth() => principal.to_string(),
        Some(s) => format!("{principal}:session:{}", s.id),
        None => format!("{principal}:connection:{conn}"),
    }
}

/// `initialize` opens a 2025-11-25 session.
async fn initialize(
    shared: &Shared,
    headers: &HeaderMap,
    request: &Rpc,
    principal: &str,
) -> Response<Body> {
    let id = &request.id;
    if headers.get(SESSION_HEADER).is_some() {
        let e = RpcError::new(
            protocol::INVALID_REQUEST,
            "initialize opens a session: send it without Mcp-Session-Id",
        );
        return rpc_error(StatusCode::BAD_REQUEST, id, &e);
    }
    let opened = shared.initialize(&request.params, principal);
    if let Ok((session, _)) = &opened {
        if let Err(why) = shared.share_session(session).await {
            shared.sessions.remove(&session.id);
            let e = RpcError::new(protocol::BUSY, why);
            return rpc_error(StatusCode::SERVICE_UNAVAILABLE, id, &e);
        }
    }
    match opened {
        Ok((session, result)) => {
            let mut r = json_body(StatusCode::OK, &protocol::response(id, Ok(result)));
            r.headers_mut()
                .insert(SESSION_HEADER, session.id.parse().expect("hex"));
            r
        }
        Err(e) => rpc_error(StatusCode::OK, id, &e),
    }
}

/// A request of a 2025-11-25 session.
async fn legacy(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    request: Rpc,
    mut caller: Caller,
) -> Response<Body> {
    let Rpc {
        id,
        method,
        params,
        accept,
        conn,
    } = request;
    let session = match session_of(&shared, headers, &caller.principal).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(v) = header_str(headers, VERSION_HEADER) {
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
    let key = client_key(&shared, &caller.principal, Some(&session), conn);
    let in_flight = match shared.enter_everywhere(&key).await {
        Ok(f) => f,
        Err(b) => return busy(&id, b),
    };
    caller.account = key;
    caller.session = Some(session.clone());
    // A call that may ask the user for approval, or whose client asked for
    // its progress, is answered as a stream that can carry them.
    let asks = method == "tools/call"
        && accept.events
        && (wants_progress(&params)
            || params
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| shared.host().approval_rule(n, caller.identity()).is_some()));
    if asks {
        let (tx, rx) = mpsc::channel(16);
        caller.back = Some(Arc::new(Outbound {
            session: session.clone(),
            sink: Sink::Events(tx.clone()),
        }));
        caller.notify = Some(Sink::Events(tx.clone()));
        let request_id = id.clone();
        let task = tokio::spawn(async move {
            let outcome = shared.handle(&method, params, &caller).await;
            let _ = tx.send(sse_event(&protocol::response(&id, outcome))).await;
            drop(in_flight);
        });
        session.track(&request_id, task.abort_handle());
        return events(rx);
    }
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

/// 429 past a budget, 503 while shutting down.
fn busy(id: &Value, b: Busy) -> Response<Body> {
    let status = if b.stopping {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    rpc_error(status, id, &b.error)
}

async fn modern(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    request: Rpc,
    caller: Caller,
) -> Response<Body> {
    let Rpc {
        id,
        method,
        params,
        accept,
        conn,
    } = request;
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
        tokio::spawn(super::streams::listen(
            shared,
            tx,
            id,
            params,
            caller.principal,
        ));
        return events(rx);
    }
    // A task's requests take no request slot: a client whose slots are
    // all held by its running tasks can still poll and cancel them (each is
    // a lookup in a bounded table).
    if matches!(
        method.as_str(),
        "tasks/get" | "tasks/update" | "tasks/cancel"
    ) {
        return match shared.handle(&method, params, &caller).await {
            Ok(result) => json_body(StatusCode::OK, &protocol::response(&id, Ok(result))),
            Err(e) => reject(e),
        };
    }
    let key = client_key(&shared, &caller.principal, None, conn);
    let in_flight = match shared.enter_everywhere(&key).await {
        Ok(f) => f,
        Err(b) => return busy(&id, b),
    };
    if method == "tools/call" && crate::tasks::declared(&params) {
        let call = super::task_call::Call { id, params, caller };
        return super::task_call::answer(shared, call, in_flight).await;
    }
    if method == "tools/call" && accept.events && wants_progress(&params) {
        return progress_stream(shared, id, method, params, caller, in_flight);
    }
    // Its audit budget stays the principal's: without a session, nothing
    // but the principal names a caller that a new connection cannot shed.
    let outcome = shared.handle(&method, params, &caller).await;
    drop(in_flight);
    match outcome {
        Ok(result) => json_body(StatusCode::OK, &protocol::response(&id, Ok(result))),
        Err(e) => reject(e),
    }
}

/// Whether a request asks for its progress (`_meta.progressToken`).
fn wants_progress(params: &Value) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .is_some()
}

/// A 2026-07-28 call answered as a stream: its progress notifications,
/// then its response.
fn progress_stream(
    shared: Arc<Shared>,
    id: Value,
    method: String,
    params: Value,
    mut caller: Caller,
    in_flight: impl Send + 'static,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel(16);
    caller.notify = Some(Sink::Events(tx.clone()));
    tokio::spawn(async move {
        tokio::select! {
            outcome = shared.handle(&method, params, &caller) => {
                let _ = tx.send(sse_event(&protocol::response(&id, outcome))).await;
            }
            // The client went away: the call is dropped (and recorded as
            // cancelled), as it would be without the stream.
            () = tx.closed() => {}
        }
        drop(in_flight);
    });
    events(rx)
}

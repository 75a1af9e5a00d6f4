//! Streams and session ends: `subscriptions/listen` (2026-07-28), a
//! 2025-11-25 session's GET stream, and DELETE.

use super::body::{events, plain, Body};
use super::{accepts, header_str, session_of, KEEPALIVE, VERSION_HEADER};
use crate::client_sessions::Sink;
use crate::protocol::{self, sse_event, HANDSHAKE};
use crate::Shared;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

/// `subscriptions/listen`: acknowledged, then list changes and keep-alive
/// comments until the client goes or the server stops, which ends it with
/// its result.
pub(super) async fn listen(shared: Arc<Shared>, tx: mpsc::Sender<Bytes>, id: Value, params: Value) {
    let tools = params.pointer("/notifications/toolsListChanged") == Some(&Value::Bool(true));
    let granted = if tools {
        json!({"toolsListChanged": true})
    } else {
        json!({})
    };
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
pub(super) fn get(shared: Arc<Shared>, headers: &HeaderMap, principal: &str) -> Response<Body> {
    if header_str(headers, VERSION_HEADER).is_some_and(|v| !HANDSHAKE.contains(&v)) {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "revision 2026-07-28 has no GET stream: use subscriptions/listen",
        );
    }
    if !accepts(headers).events {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "the stream is text/event-stream",
        );
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
                if tx
                    .send(Bytes::from_static(b": keep-alive\n\n"))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        };
        tokio::select! {
            _ = crate::client_sessions::list_changes(shared.clone(), sink, None) => {}
            _ = keepalive => {}
            _ = crate::stopped(&mut stopping) => {}
        }
        drop(session);
    });
    events(rx)
}

/// DELETE: ends a 2025-11-25 session.
pub(super) async fn delete(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    principal: &str,
) -> Response<Body> {
    let session = match session_of(&shared, headers, principal) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(s) = shared.sessions.remove(&session.id) {
        shared.end_session(&s).await;
    }
    plain(StatusCode::OK, "")
}

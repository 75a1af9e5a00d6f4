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
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The most task ids one `subscriptions/listen` follows.
const MAX_LISTENED_TASKS: usize = 64;

/// `subscriptions/listen`: acknowledged, then list changes, the status of
/// the caller's tasks it names (`notifications/tasks`, for clients that
/// declare the tasks extension) and keep-alive comments, until the client
/// goes, the server stops, or every task it follows (and nothing else) has
/// ended, which ends it with its result.
pub(super) async fn listen(
    shared: Arc<Shared>,
    tx: mpsc::Sender<Bytes>,
    id: Value,
    params: Value,
    principal: String,
) {
    let tools = params.pointer("/notifications/toolsListChanged") == Some(&Value::Bool(true));
    let mut followed = followed_tasks(&shared, &params, &principal).await;
    let mut granted = json!({});
    if tools {
        granted["toolsListChanged"] = json!(true);
    }
    if !followed.is_empty() {
        granted["taskIds"] = json!(followed.keys().collect::<Vec<_>>());
    }
    let ack = protocol::notification(
        "notifications/subscriptions/acknowledged",
        json!({"notifications": granted, "_meta": {protocol::META_SUBSCRIPTION: id}}),
    );
    if tx.send(sse_event(&ack)).await.is_err() {
        return;
    }
    let mut changes = shared.changes.subscribe();
    changes.borrow_and_update();
    let mut task_changes = shared.tasks.subscribe();
    let mut stopping = shared.stopping.subscribe();
    loop {
        if !followed.is_empty() {
            if !send_task_changes(&shared, &tx, &id, &principal, &mut followed).await {
                return;
            }
            if followed.is_empty() && !tools {
                break;
            }
        }
        tokio::select! {
            c = changes.changed() => {
                if c.is_err() { break; }
                if tools {
                    let n = protocol::notification("notifications/tools/list_changed", json!({"_meta": {protocol::META_SUBSCRIPTION: id}}));
                    if tx.send(sse_event(&n)).await.is_err() { return; }
                }
            }
            c = task_changes.changed() => if c.is_err() { break },
            _ = tokio::time::sleep(KEEPALIVE) => {
                if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() { return; }
            }
            _ = crate::stopped(&mut stopping) => break,
        }
    }
    let end = json!({"resultType": "complete", "_meta": {protocol::META_SUBSCRIPTION: id}});
    let _ = tx.send(sse_event(&protocol::response(&id, Ok(end)))).await;
}

/// The caller's tasks a listen request names (`notifications.taskIds`),
/// each with the last status sent (none yet).
async fn followed_tasks(
    shared: &Shared,
    params: &Value,
    principal: &str,
) -> BTreeMap<String, String> {
    if !crate::tasks::declared(params) {
        return BTreeMap::new();
    }
    let ids: Vec<String> = params
        .pointer("/notifications/taskIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .take(MAX_LISTENED_TASKS)
        .collect();
    shared
        .task_views(principal, &ids)
        .await
        .into_iter()
        .filter_map(|(v, _)| Some((v["taskId"].as_str()?.to_string(), String::new())))
        .collect()
}

/// Sends `notifications/tasks` for each followed task whose state changed
/// since last sent; stops following those that ended (or are gone). False
/// when the client has gone.
async fn send_task_changes(
    shared: &Shared,
    tx: &mpsc::Sender<Bytes>,
    id: &Value,
    principal: &str,
    followed: &mut BTreeMap<String, String>,
) -> bool {
    let ids: Vec<String> = followed.keys().cloned().collect();
    let views = shared.task_views(principal, &ids).await;
    let mut alive = BTreeMap::new();
    for (mut view, ended) in views {
        let task = view["taskId"].as_str().unwrap_or_default().to_string();
        let stamp = format!(
            "{}|{}|{}",
            view["status"], view["lastUpdatedAt"], view["statusMessage"]
        );
        if followed.get(&task) != Some(&stamp) {
            view["_meta"] = json!({protocol::META_SUBSCRIPTION: id});
            let n = protocol::notification("notifications/tasks", view);
            if tx.send(sse_event(&n)).await.is_err() {
                return false;
            }
        }
        if !ended {
            alive.insert(task, stamp);
        }
    }
    *followed = alive;
    true
}

/// GET: a 2025-11-25 session's stream of list changes.
pub(super) async fn get(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    principal: &str,
) -> Response<Body> {
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
    let session = match session_of(&shared, headers, principal).await {
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
    let session = match session_of(&shared, headers, principal).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    shared.forget_session(&session.id).await;
    if let Some(s) = shared.sessions.remove(&session.id) {
        shared.end_session(&s).await;
    }
    plain(StatusCode::OK, "")
}

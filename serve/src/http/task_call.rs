//! A 2026-07-28 `tools/call` from a client that declares MCP Tasks: answered
//! as any other when it ends within `task-after-ms`, and otherwise (or at
//! once, for a capability that says it runs long) with a task, while the
//! call runs on under the same limits, budgets and audit.

use super::body::{json_body, rpc_error, Body};
use crate::dispatch::Caller;
use crate::protocol::{self, RpcError};
use crate::tasks::{self, Tasks};
use crate::Shared;
use http::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// The request.
pub(super) struct Call {
    pub id: Value,
    pub params: Value,
    pub caller: Caller,
}

/// A call's progress as its task's status message, once it is a task.
struct ToTask {
    tasks: Arc<Tasks>,
    id: Arc<OnceLock<String>>,
}

impl warden::ProgressSink for ToTask {
    fn report(&self, p: warden::Progress) {
        let Some(id) = self.id.get() else { return };
        let count = match p.total {
            Some(t) => format!("{}/{t}", p.done),
            None => p.done.to_string(),
        };
        let text = if p.message.is_empty() {
            count
        } else {
            format!("{count}: {}", p.message)
        };
        self.tasks.report(id, text);
    }
}

/// Stops the call should this request go away before it is a task.
struct AbortUnlessTask(Option<tokio::task::AbortHandle>);

impl Drop for AbortUnlessTask {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

type Outcome = Result<Value, RpcError>;

pub(super) async fn answer(
    shared: Arc<Shared>,
    call: Call,
    in_flight: impl Send + 'static,
) -> Response<Body> {
    let Call {
        id,
        params,
        mut caller,
    } = call;
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let long = shared
        .host()
        .capability(name)
        .is_ok_and(|c| tasks::long_running(&c));
    let principal = caller.principal.clone();
    let task_id = Arc::new(OnceLock::new());
    caller.task_progress = Some(Arc::new(ToTask {
        tasks: shared.tasks.clone(),
        id: task_id.clone(),
    }));
    let (tx, mut rx) = oneshot::channel::<Outcome>();
    let runner = shared.clone();
    let ids = task_id.clone();
    let join = tokio::spawn(async move {
        let outcome = runner.handle("tools/call", params, &caller).await;
        drop(in_flight);
        // Nobody waits for it: it is a task now.
        if let Err(outcome) = tx.send(outcome) {
            if let Some(id) = ids.get() {
                runner.tasks.finish(id, outcome);
            }
        }
    });
    let mut guard = AbortUnlessTask(Some(join.abort_handle()));
    if !long {
        let wait = Duration::from_millis(shared.settings.task_after_ms);
        tokio::select! {
            outcome = &mut rx => return respond(&id, outcome.ok()),
            () = tokio::time::sleep(wait) => {}
        }
    }
    let Ok(mut view) = shared.tasks.start(&principal, join.abort_handle()) else {
        tracing::info!(%principal, "the principal's tasks are all running: a long call is answered without a task");
        return respond(&id, rx.await.ok());
    };
    let tid = view["taskId"].as_str().unwrap_or_default().to_string();
    let _ = task_id.set(tid.clone());
    guard.0 = None;
    // An outcome that came in meanwhile ends the task now.
    rx.close();
    if let Ok(outcome) = rx.try_recv() {
        shared.tasks.finish(&tid, outcome);
    }
    shared.share_new_task().await;
    view["resultType"] = json!("task");
    view["_meta"] = json!({ protocol::META_SERVER_INFO: crate::dispatch::server_info() });
    json_body(StatusCode::OK, &protocol::response(&id, Ok(view)))
}

/// The call's own answer (`None`: it did not end normally).
fn respond(id: &Value, outcome: Option<Outcome>) -> Response<Body> {
    match outcome {
        Some(Ok(result)) => json_body(StatusCode::OK, &protocol::response(id, Ok(result))),
        Some(Err(e)) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::OK);
            rpc_error(status, id, &e)
        }
        None => {
            let e = RpcError::new(protocol::INTERNAL_ERROR, "the call ended without an answer");
            rpc_error(StatusCode::INTERNAL_SERVER_ERROR, id, &e)
        }
    }
}

//! MCP Tasks (the `io.modelcontextprotocol/tasks` extension of 2026-07-28):
//! a call that runs long is answered with a task, which the client polls
//! (`tasks/get`), cancels (`tasks/cancel`) or hears about
//! (`subscriptions/listen`). Each task belongs to the principal that started
//! it; another principal's id is not found. A principal's tasks are bounded
//! in count and in result bytes; an ended task is kept `task-ttl-ms`.

use crate::protocol::{RpcError, INVALID_PARAMS};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use warden_manifest::time::rfc3339;

/// The extension's identifier.
pub(crate) const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// How often a client is told to poll.
const POLL_INTERVAL_MS: u64 = 500;

/// Whether a 2026-07-28 request's client declares the extension.
pub(crate) fn declared(params: &Value) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get(crate::protocol::META_CAPABILITIES))
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

/// Whether a capability says it may run long (`*.long-running = true`).
pub(crate) fn long_running(info: &warden::CapabilityInfo) -> bool {
    matches!(
        warden::route::find_hint(&info.flat_metadata, "long-running"),
        Some(Value::Bool(true))
    )
}

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Working,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Working => "working",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

struct Entry {
    principal: String,
    status: Status,
    message: String,
    created: SystemTime,
    updated: SystemTime,
    /// When it ended (its time to live counts from here).
    ended: Option<Instant>,
    /// The tool result (`completed`) or the error (`failed`).
    outcome: Option<Value>,
    bytes: usize,
    abort: AbortHandle,
    /// Whether other replicas have its latest state (`[cluster]`).
    shared: bool,
}

/// Bounds of the task table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskLimits {
    pub ttl: Duration,
    pub per_principal: usize,
    pub bytes_per_principal: usize,
}

/// Every task, by id.
pub(crate) struct Tasks {
    table: Mutex<HashMap<String, Entry>>,
    limits: TaskLimits,
    /// Bumped at every change of any task, for listeners.
    changes: watch::Sender<u64>,
}

/// Why a call could not become a task: the principal holds as many as it
/// may, all still running.
pub(crate) struct Full;

impl Tasks {
    pub(crate) fn new(limits: TaskLimits) -> Arc<Tasks> {
        Arc::new(Tasks {
            table: Mutex::new(HashMap::new()),
            limits,
            changes: watch::channel(0).0,
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes at every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Records a running call as `principal`'s task; its view. Makes room
    /// by dropping the principal's oldest ended task; `Full` when every one
    /// of its tasks still runs.
    pub(crate) fn start(&self, principal: &str, abort: AbortHandle) -> Result<Value, Full> {
        let mut table = self.table();
        sweep(&mut table, self.limits.ttl);
        let held = table.values().filter(|e| e.principal == principal).count();
        if held >= self.limits.per_principal && !drop_oldest_ended(&mut table, principal) {
            return Err(Full);
        }
        let id = new_id();
        let now = SystemTime::now();
        let entry = Entry {
            principal: principal.to_string(),
            status: Status::Working,
            message: "running".into(),
            created: now,
            updated: now,
            ended: None,
            outcome: None,
            bytes: 0,
            abort,
            shared: false,
        };
        let view = self.view(&id, &entry, false);
        table.insert(id, entry);
        drop(table);
        self.changed();
        Ok(view)
    }

    /// Ends task `id` with the call's outcome: a result (`completed`, or
    /// `failed` when it is not one a task can carry) or an error.
    pub(crate) fn finish(&self, id: &str, outcome: Result<Value, RpcError>) {
        let mut table = self.table();
        let Some(principal) = table
            .get(id)
            .filter(|e| e.status == Status::Working)
            .map(|e| e.principal.clone())
        else {
            return;
        };
        let (status, value, message) = settle(outcome);
        let bytes = value.to_string().len();
        let held: usize = table
            .values()
            .filter(|e| e.principal == principal)
            .map(|e| e.bytes)
            .sum();
        if bytes <= self.limits.bytes_per_principal
            && held + bytes > self.limits.bytes_per_principal
        {
            make_room(
                &mut table,
                &principal,
                bytes,
                self.limits.bytes_per_principal,
            );
        }
        let entry = table.get_mut(id).expect("checked above");
        entry.updated = SystemTime::now();
        entry.ended = Some(Instant::now());
        entry.shared = false;
        if bytes > self.limits.bytes_per_principal {
            entry.status = Status::Failed;
            entry.message = format!("the result ({bytes} bytes) is larger than `serve.task-bytes-per-principal` ({}) allows to keep", self.limits.bytes_per_principal);
            entry.outcome =
                Some(json!({"code": crate::protocol::INTERNAL_ERROR, "message": entry.message}));
        } else {
            entry.status = status;
            entry.message = message;
            entry.outcome = Some(value);
            entry.bytes = bytes;
        }
        drop(table);
        self.changed();
    }

    /// Passes a running task's progress on as its status message.
    pub(crate) fn report(&self, id: &str, message: String) {
        let mut table = self.table();
        let Some(e) = table.get_mut(id).filter(|e| e.status == Status::Working) else {
            return;
        };
        e.message = message;
        e.updated = SystemTime::now();
        e.shared = false;
        drop(table);
        self.changed();
    }

    /// `tasks/get`: the task with its result or error once it has ended.
    #[cfg(test)]
    fn get(&self, principal: &str, id: &str) -> Result<Value, RpcError> {
        let mut table = self.table();
        sweep(&mut table, self.limits.ttl);
        let e = owned(&table, principal, id)?;
        Ok(self.view(id, e, true))
    }

    /// `tasks/cancel`: a running task's call is stopped (and audited as
    /// cancelled); an ended one stays as it ended.
    pub(crate) fn cancel(&self, principal: &str, id: &str) -> Result<(), RpcError> {
        owned(&self.table(), principal, id)?;
        self.stop(id);
        Ok(())
    }

    /// Stops task `id` if it runs here (cancelled through another replica,
    /// which checked whose it is).
    pub(crate) fn stop(&self, id: &str) {
        let mut table = self.table();
        let Some(e) = table.get_mut(id).filter(|e| e.status == Status::Working) else {
            return;
        };
        e.abort.abort();
        e.status = Status::Cancelled;
        e.message = "cancelled by the client".into();
        e.updated = SystemTime::now();
        e.ended = Some(Instant::now());
        e.shared = false;
        drop(table);
        self.changed();
    }

    /// The tasks whose latest state other replicas do not have yet: id,
    /// principal, detailed view, whether it ended. They count as shared
    /// from now on.
    pub(crate) fn unshared(&self) -> Vec<(String, String, Value, bool)> {
        let mut table = self.table();
        let mut out = Vec::new();
        for (id, e) in table.iter_mut().filter(|(_, e)| !e.shared) {
            e.shared = true;
            let ended = e.status != Status::Working;
            out.push((
                id.clone(),
                e.principal.clone(),
                self.view(id, e, true),
                ended,
            ));
        }
        out
    }

    /// Marks task `id` to be shared again (Redis did not take it).
    pub(crate) fn unshare(&self, id: &str) {
        if let Some(e) = self.table().get_mut(id) {
            e.shared = false;
        }
    }

    /// Wakes listeners: tasks changed on another replica.
    pub(crate) fn notify(&self) {
        self.changed();
    }

    /// Marks every running task to be shared again (its lease renewed).
    pub(crate) fn reshare_running(&self) {
        let mut table = self.table();
        let mut any = false;
        for e in table.values_mut().filter(|e| e.status == Status::Working) {
            e.shared = false;
            any = true;
        }
        drop(table);
        if any {
            self.changed();
        }
    }

    /// How long an ended task is kept.
    pub(crate) fn ttl(&self) -> Duration {
        self.limits.ttl
    }

    /// The views of those of `ids` that are `principal`'s, with whether
    /// each has ended.
    pub(crate) fn views(&self, principal: &str, ids: &[String]) -> Vec<(Value, bool)> {
        let table = self.table();
        ids.iter()
            .filter_map(|id| {
                let e = owned(&table, principal, id).ok()?;
                Some((self.view(id, e, true), e.status != Status::Working))
            })
            .collect()
    }

    /// Drops ended tasks past their time to live.
    pub(crate) fn sweep(&self) {
        sweep(&mut self.table(), self.limits.ttl);
    }

    /// Stops every running task (the server is stopping).
    pub(crate) fn abort_all(&self) {
        for e in self.table().values() {
            e.abort.abort();
        }
    }

    fn view(&self, id: &str, e: &Entry, detailed: bool) -> Value {
        let mut v = json!({
            "taskId": id,
            "status": e.status.as_str(),
            "statusMessage": e.message,
            "createdAt": rfc3339(e.created, true),
            "lastUpdatedAt": rfc3339(e.updated, true),
            "ttlMs": u64::try_from(self.limits.ttl.as_millis()).unwrap_or(u64::MAX),
            "pollIntervalMs": POLL_INTERVAL_MS,
        });
        if detailed {
            match (e.status, &e.outcome) {
                (Status::Completed, Some(r)) => v["result"] = r.clone(),
                (Status::Failed, Some(err)) => v["error"] = err.clone(),
                _ => {}
            }
        }
        v
    }
}

/// The task `id` if it is `principal`'s; not found otherwise (another's
/// task is indistinguishable from none).
fn owned<'t>(
    table: &'t HashMap<String, Entry>,
    principal: &str,
    id: &str,
) -> Result<&'t Entry, RpcError> {
    table
        .get(id)
        .filter(|e| e.principal == principal)
        .ok_or_else(|| not_found(id))
}

/// `Task not found`, for a task that is not, or not the caller's.
pub(crate) fn not_found(id: &str) -> RpcError {
    let mut e = RpcError::new(INVALID_PARAMS, "Task not found");
    e.data = Some(json!({"taskId": id}));
    e.not_found = true;
    e
}

/// A call's outcome as a task's end: status, what `tasks/get` carries,
/// status message.
fn settle(outcome: Result<Value, RpcError>) -> (Status, Value, String) {
    match outcome {
        Ok(r) if r.get("resultType").and_then(Value::as_str) == Some("input_required") => (
            Status::Failed,
            json!({"code": INVALID_PARAMS, "message": "the call needs the user's approval, which a task cannot ask for: call it without the tasks extension"}),
            "needs approval".into(),
        ),
        Ok(r) => {
            let message = if r.get("isError") == Some(&Value::Bool(true)) {
                "the tool reported an error"
            } else {
                "done"
            };
            (Status::Completed, r, message.into())
        }
        Err(e) => {
            let mut err = json!({"code": e.code, "message": e.message});
            if let Some(d) = e.data {
                err["data"] = d;
            }
            (Status::Failed, err, e.message)
        }
    }
}

fn sweep(table: &mut HashMap<String, Entry>, ttl: Duration) {
    table.retain(|_, e| e.ended.is_none_or(|t| t.elapsed() < ttl));
}

/// Drops `principal`'s task that ended first; whether there was one.
fn drop_oldest_ended(table: &mut HashMap<String, Entry>, principal: &str) -> bool {
    let oldest = table
        .iter()
        .filter(|(_, e)| e.principal == principal)
        .filter_map(|(id, e)| Some((e.ended?, id.clone())))
        .min();
    match oldest {
        Some((_, id)) => table.remove(&id).is_some(),
        None => false,
    }
}

/// Drops `principal`'s oldest ended tasks until `more` bytes fit under `cap`.
fn make_room(table: &mut HashMap<String, Entry>, principal: &str, more: usize, cap: usize) {
    loop {
        let held: usize = table
            .values()
            .filter(|e| e.principal == principal)
            .map(|e| e.bytes)
            .sum();
        if held + more <= cap || !drop_oldest_ended(table, principal) {
            return;
        }
    }
}

/// 128 random bits, as hex: not guessable, so not enumerable.
fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the system's random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_principal: usize, bytes: usize) -> TaskLimits {
        TaskLimits {
            ttl: Duration::from_secs(60),
            per_principal,
            bytes_per_principal: bytes,
        }
    }

    fn handle() -> AbortHandle {
        tokio::spawn(std::future::pending::<()>()).abort_handle()
    }

    fn id(v: &Value) -> String {
        v["taskId"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_task_is_its_principals_alone() {
        let tasks = Tasks::new(limits(4, 1 << 20));
        let t = id(&tasks.start("a", handle()).ok().unwrap());
        assert_eq!(tasks.get("a", &t).unwrap()["status"], "working");
        for other in ["b", "", "A"] {
            let e = tasks.get(other, &t).unwrap_err();
            assert!(e.not_found && e.message == "Task not found");
            assert!(tasks.cancel(other, &t).is_err());
        }
        tasks.finish(&t, Ok(json!({"content": [], "resultType": "complete"})));
        let v = tasks.get("a", &t).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["result"]["resultType"], "complete");
        // Cancelling an ended task leaves it as it ended.
        tasks.cancel("a", &t).unwrap();
        assert_eq!(tasks.get("a", &t).unwrap()["status"], "completed");
    }

    #[tokio::test]
    async fn a_principal_holds_a_bounded_number_and_size() {
        let tasks = Tasks::new(limits(2, 100));
        let a = id(&tasks.start("p", handle()).ok().unwrap());
        let b = id(&tasks.start("p", handle()).ok().unwrap());
        assert!(tasks.start("p", handle()).is_err(), "both still run");
        assert!(
            tasks.start("q", handle()).is_ok(),
            "another principal's room is its own"
        );
        tasks.finish(&a, Ok(json!({"n": 1})));
        let c = id(&tasks.start("p", handle()).ok().unwrap());
        assert!(
            tasks.get("p", &a).is_err(),
            "the oldest ended task made room"
        );
        // A result larger than the cap is not kept.
        tasks.finish(&b, Ok(json!({"text": "x".repeat(200)})));
        let v = tasks.get("p", &b).unwrap();
        assert_eq!(v["status"], "failed");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task-bytes-per-principal"));
        // Results that fit one by one evict older ones to fit together.
        tasks.finish(&c, Ok(json!({"text": "y".repeat(60)})));
        let d = id(&tasks.start("p", handle()).ok().unwrap());
        tasks.finish(&d, Ok(json!({"text": "z".repeat(60)})));
        assert_eq!(tasks.get("p", &d).unwrap()["status"], "completed");
        assert!(tasks.get("p", &c).is_err(), "{c} made room for {d}");
    }

    #[tokio::test]
    async fn a_cancelled_task_stops_its_call() {
        let tasks = Tasks::new(limits(4, 1 << 20));
        let call = tokio::spawn(std::future::pending::<()>());
        let t = id(&tasks.start("a", call.abort_handle()).ok().unwrap());
        tasks.cancel("a", &t).unwrap();
        assert!(call.await.unwrap_err().is_cancelled());
        assert_eq!(tasks.get("a", &t).unwrap()["status"], "cancelled");
        // Its call's late outcome does not revive it.
        tasks.finish(&t, Ok(json!({})));
        assert_eq!(tasks.get("a", &t).unwrap()["status"], "cancelled");
    }

    #[tokio::test]
    async fn an_ended_task_is_kept_its_time_to_live_and_no_longer() {
        let tasks = Tasks::new(TaskLimits {
            ttl: Duration::from_millis(50),
            per_principal: 4,
            bytes_per_principal: 1 << 20,
        });
        let running = id(&tasks.start("a", handle()).ok().unwrap());
        let ended = id(&tasks.start("a", handle()).ok().unwrap());
        tasks.report(&ended, "half way".into());
        assert_eq!(tasks.get("a", &ended).unwrap()["statusMessage"], "half way");
        tasks.finish(&ended, Err(RpcError::new(-32000, "boom")));
        let v = tasks.get("a", &ended).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["error"]["message"].as_str()),
            (Some("failed"), Some("boom"))
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        tasks.sweep();
        assert!(tasks.get("a", &ended).is_err(), "past its time to live");
        assert_eq!(
            tasks.get("a", &running).unwrap()["status"],
            "working",
            "a running task does not expire"
        );
    }

    #[test]
    fn the_declaration_is_read_from_the_envelope() {
        let p = json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {"extensions": {EXTENSION: {}}}}});
        assert!(declared(&p));
        assert!(!declared(
            &json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}})
        ));
        assert!(!declared(&json!({})));
    }
}

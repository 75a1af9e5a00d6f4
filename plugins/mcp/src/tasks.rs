//! MCP Tasks, as this client follows them: a `tools/call` answered with a
//! task is polled with `tasks/get` until it ends, and cancelled with
//! `tasks/cancel` should the call be stopped first.
//!
//! Two generations: the `io.modelcontextprotocol/tasks` extension of
//! 2026-07-28 (the task flat in the result, `resultType: "task"`, the final
//! result inline in `tasks/get`) and the core tasks of 2025-11-25 (a tool
//! declares `execution.taskSupport`, the call asks with `task: {}`, the
//! answer nests `task`, the result comes from `tasks/result`).

use serde_json::{json, Value};
use std::time::Duration;

/// The extension's identifier, declared in every 2026-07-28 request.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// The shortest and longest wait between two polls, whatever the server
/// suggests; the wait when it suggests none.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_secs(5);
const POLL_DEFAULT: Duration = Duration::from_millis(500);

/// A task's state, as either generation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

/// One snapshot of a task.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub status: Status,
    pub message: String,
    /// How long to wait before asking again.
    pub poll: Duration,
}

impl Task {
    /// The task a `tools/call` result created, if it is one: flat with
    /// `resultType: "task"` (2026-07-28) or nested under `task`
    /// (2025-11-25).
    pub fn created(result: &Value) -> Option<Task> {
        if result.get("resultType").and_then(Value::as_str) == Some("task") {
            return Task::parse(result);
        }
        match result.get("task") {
            Some(t @ Value::Object(_)) if result.get("content").is_none() => Task::parse(t),
            _ => None,
        }
    }

    /// A task object (either generation's field names).
    pub fn parse(v: &Value) -> Option<Task> {
        let id = v.get("taskId")?.as_str()?.to_string();
        let status = match v.get("status")?.as_str()? {
            "working" => Status::Working,
            "input_required" => Status::InputRequired,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        };
        let ms = v
            .get("pollIntervalMs")
            .or_else(|| v.get("pollInterval"))
            .and_then(Value::as_u64);
        let poll = ms
            .map(Duration::from_millis)
            .unwrap_or(POLL_DEFAULT)
            .clamp(POLL_MIN, POLL_MAX);
        let message = v
            .get("statusMessage")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some(Task {
            id,
            status,
            message: message.chars().take(500).collect(),
            poll,
        })
    }
}

/// The `_meta` capability declaration of a 2026-07-28 request.
pub fn client_capabilities() -> Value {
    json!({ "extensions": { EXTENSION: {} } })
}

/// Whether a 2025-11-25 server runs `tools/call` as tasks (its
/// `capabilities.tasks.requests.tools.call`).
pub fn server_runs_tool_tasks(initialize_result: &Value) -> bool {
    initialize_result
        .pointer("/capabilities/tasks/requests/tools/call")
        .is_some()
}

/// The names of the tools that run only as tasks
/// (`execution.taskSupport = "required"`, 2025-11-25).
pub fn task_only<'a>(tools: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    tools
        .into_iter()
        .filter(|t| t.pointer("/execution/taskSupport").and_then(Value::as_str) == Some("required"))
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_generations_parse() {
        let modern = json!({"resultType": "task", "taskId": "t1", "status": "working",
            "statusMessage": "busy", "ttlMs": 60000, "pollIntervalMs": 1});
        let t = Task::created(&modern).unwrap();
        assert_eq!((t.id.as_str(), &t.status), ("t1", &Status::Working));
        assert_eq!(t.poll, POLL_MIN, "a server cannot make the client spin");
        let legacy = json!({"task": {"taskId": "t2", "status": "completed", "ttl": 1, "pollInterval": 600000}});
        let t = Task::created(&legacy).unwrap();
        assert_eq!(t.status, Status::Completed);
        assert_eq!(t.poll, POLL_MAX);
        // An ordinary result is not a task, whatever else it carries.
        let plain = json!({"content": [], "task": {"taskId": "x", "status": "working"}});
        assert!(Task::created(&plain).is_none());
        assert!(
            Task::created(&json!({"resultType": "task", "taskId": "x", "status": "odd"})).is_none()
        );
    }

    #[test]
    fn task_only_tools_are_named() {
        let tools = [
            json!({"name": "a", "execution": {"taskSupport": "required"}}),
            json!({"name": "b", "execution": {"taskSupport": "optional"}}),
            json!({"name": "c"}),
        ];
        assert_eq!(task_only(&tools), vec!["a".to_string()]);
        assert!(server_runs_tool_tasks(
            &json!({"capabilities": {"tasks": {"requests": {"tools": {"call": {}}}}}})
        ));
        assert!(!server_runs_tool_tasks(&json!({"capabilities": {}})));
    }
}

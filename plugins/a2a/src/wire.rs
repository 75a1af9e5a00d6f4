//! The two A2A wires this client speaks, over JSON-RPC: 1.0 (PascalCase
//! methods, the `A2A-Version: 1.0` header, results wrapped as `{"task": …}`
//! or `{"message": …}`, `TASK_STATE_*` and `ROLE_*` names, parts without a
//! `kind`) and 0.3 (`message/send` and friends, results told apart by
//! `kind`, kebab-case states). Everything read is turned into one model
//! ([`Event`], [`Task`], [`Part`]) so that the rest of the plugin does not
//! care which wire it came from.

use serde_json::{json, Map, Value};

/// A protocol version an agent's interface speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V03,
}

impl Version {
    /// The version a card's `protocolVersion` names (major.minor only).
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.trim().split('.');
        match (parts.next(), parts.next()) {
            (Some("1"), _) => Some(Version::V1),
            (Some("0"), Some("3")) => Some(Version::V03),
            _ => None,
        }
    }

    /// What the `A2A-Version` header carries.
    pub fn header(self) -> &'static str {
        match self {
            Version::V1 => "1.0",
            Version::V03 => "0.3",
        }
    }

    /// As metadata and errors name it.
    pub fn name(self) -> &'static str {
        self.header()
    }

    pub fn method(self, m: Method) -> &'static str {
        match (self, m) {
            (Version::V1, Method::Send) => "SendMessage",
            (Version::V1, Method::Stream) => "SendStreamingMessage",
            (Version::V1, Method::Get) => "GetTask",
            (Version::V1, Method::Cancel) => "CancelTask",
            (Version::V1, Method::ExtendedCard) => "GetExtendedAgentCard",
            (Version::V03, Method::Send) => "message/send",
            (Version::V03, Method::Stream) => "message/stream",
            (Version::V03, Method::Get) => "tasks/get",
            (Version::V03, Method::Cancel) => "tasks/cancel",
            (Version::V03, Method::ExtendedCard) => "agent/getAuthenticatedExtendedCard",
        }
    }

    /// The user's message: `text`, then `data` (if any), in conversation
    /// `context` and continuing `task` when given; `skill` is named in its
    /// metadata (A2A has no skill selector; agents may route on it).
    pub fn message(self, id: &str, text: &str, data: Option<&Value>, to: &Target) -> Value {
        let mut parts = vec![match self {
            Version::V1 => json!({ "text": text }),
            Version::V03 => json!({ "kind": "text", "text": text }),
        }];
        if let Some(d) = data {
            parts.push(match self {
                Version::V1 => json!({ "data": d }),
                // 0.3 data parts hold an object.
                Version::V03 if d.is_object() => json!({ "kind": "data", "data": d }),
                Version::V03 => json!({ "kind": "data", "data": { "value": d } }),
            });
        }
        let mut m = Map::new();
        if self == Version::V03 {
            m.insert("kind".into(), json!("message"));
        }
        m.insert("messageId".into(), json!(id));
        m.insert(
            "role".into(),
            json!(match self {
                Version::V1 => "ROLE_USER",
                Version::V03 => "user",
            }),
        );
        m.insert("parts".into(), Value::Array(parts));
        if let Some(c) = &to.context {
            m.insert("contextId".into(), json!(c));
        }
        if let Some(t) = &to.task {
            m.insert("taskId".into(), json!(t));
        }
        m.insert("metadata".into(), json!({ "skill": to.skill }));
        Value::Object(m)
    }

    /// Params of a send: one that returns at once (the task is then
    /// followed), or one that returns when the task ends or waits again
    /// (an answer to a task that waits: its snapshot at once would still
    /// show it waiting).
    pub fn send_params(self, message: Value, at_once: bool) -> Value {
        let configuration = match self {
            Version::V1 => json!({ "returnImmediately": at_once }),
            Version::V03 => json!({ "blocking": !at_once }),
        };
        json!({ "message": message, "configuration": configuration })
    }

    /// Reads a send's result, a stream event's or a task's (`GetTask`,
    /// `CancelTask`).
    pub fn event(self, result: &Value) -> Option<Event> {
        match self {
            Version::V1 => {
                let (kind, body) = result.as_object()?.iter().find(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "task" | "message" | "statusUpdate" | "artifactUpdate"
                    )
                })?;
                v1_event(kind, body)
            }
            Version::V03 => v03_event(result),
        }
    }

    /// Reads a bare task (`GetTask`, `CancelTask` in 1.0; any task in 0.3).
    pub fn task(self, result: &Value) -> Option<Task> {
        match self {
            Version::V1 => Task::read(result),
            Version::V03 => match v03_event(result)? {
                Event::Task(t) => Some(t),
                _ => None,
            },
        }
    }
}

/// One of the methods used.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Send,
    Stream,
    Get,
    Cancel,
    ExtendedCard,
}

/// Where a message goes: its skill, and the conversation and task it
/// continues.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub skill: String,
    pub context: Option<String>,
    pub task: Option<String>,
}

/// What an agent sent: a whole task, a reply without a task, or an update.
#[derive(Debug, Clone)]
pub enum Event {
    Task(Task),
    Message(Reply),
    Status {
        task: String,
        context: Option<String>,
        state: String,
        message: Option<Reply>,
    },
    Artifact {
        task: String,
        artifact: Artifact,
        append: bool,
    },
}

/// A task as far as this client follows it.
#[derive(Debug, Clone, Default)]
pub struct Task {
    pub id: String,
    pub context: Option<String>,
    /// Kebab-case, as 0.3 spells it: `working`, `input-required`, ...
    pub state: String,
    pub message: Option<Reply>,
    pub artifacts: Vec<Artifact>,
}

/// An agent's message: its parts.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub context: Option<String>,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Default)]
pub struct Artifact {
    pub id: String,
    pub name: Option<String>,
    pub parts: Vec<Part>,
}

/// A message or artifact part, as either wire has it.
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Data(Value),
    /// A file: its name, media type, and URL or base64 bytes.
    File(Value),
}

/// Whether a state ends the task.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, "completed" | "failed" | "canceled" | "rejected")
}

/// Whether a state waits for the user (the task is not over).
pub fn is_interrupted(state: &str) -> bool {
    matches!(state, "input-required" | "auth-required")
}

/// `TASK_STATE_INPUT_REQUIRED` or `input-required` as `input-required`.
fn state(v: &Value) -> String {
    let s = v.as_str().unwrap_or("unknown");
    let s = s.strip_prefix("TASK_STATE_").unwrap_or(s);
    s.to_ascii_lowercase().replace('_', "-")
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn v1_event(kind: &str, body: &Value) -> Option<Event> {
    Some(match kind {
        "task" => Event::Task(Task::read(body)?),
        "message" => Event::Message(Reply::read(body)),
        "statusUpdate" => Event::Status {
            task: text(body, "taskId")?,
            context: text(body, "contextId"),
            state: state(body.pointer("/status/state")?),
            message: body.pointer("/status/message").map(Reply::read),
        },
        "artifactUpdate" => Event::Artifact {
            task: text(body, "taskId")?,
            artifact: Artifact::read(body.get("artifact")?),
            append: body.get("append").and_then(Value::as_bool) == Some(true),
        },
        _ => return None,
    })
}

fn v03_event(body: &Value) -> Option<Event> {
    match body.get("kind").and_then(Value::as_str)? {
        "task" => Some(Event::Task(Task::read(body)?)),
        "message" => Some(Event::Message(Reply::read(body))),
        "status-update" => v1_event("statusUpdate", body),
        "artifact-update" => v1_event("artifactUpdate", body),
        _ => None,
    }
}

impl Task {
    fn read(v: &Value) -> Option<Task> {
        Some(Task {
            id: text(v, "id")?,
            context: text(v, "contextId"),
            state: state(v.pointer("/status/state")?),
            message: v.pointer("/status/message").map(Reply::read),
            artifacts: v
                .get("artifacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Artifact::read)
                .collect(),
        })
    }
}

impl Reply {
    fn read(v: &Value) -> Reply {
        Reply {
            context: text(v, "contextId"),
            parts: parts(v),
        }
    }
}

impl Artifact {
    fn read(v: &Value) -> Artifact {
        Artifact {
            id: text(v, "artifactId").unwrap_or_default(),
            name: text(v, "name"),
            parts: parts(v),
        }
    }
}

fn parts(v: &Value) -> Vec<Part> {
    v.get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Part::read)
        .collect()
}

impl Part {
    /// Either wire's part: `{"text"}`, `{"data"}`, `{"url"}`/`{"raw"}` (1.0)
    /// or `{"kind": "file", "file": {"uri"|"bytes"}}` (0.3).
    fn read(p: &Value) -> Option<Part> {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            return Some(Part::Text(t.to_string()));
        }
        if let Some(d) = p.get("data") {
            return Some(Part::Data(d.clone()));
        }
        let (file, name_key, type_key) = match p.get("file") {
            Some(f) => (f, "name", "mimeType"),
            None => (p, "filename", "mediaType"),
        };
        let mut out = Map::new();
        for (from, to) in [
            ("uri", "url"),
            ("url", "url"),
            ("bytes", "bytes"),
            ("raw", "bytes"),
            (name_key, "name"),
            (type_key, "media-type"),
        ] {
            if let Some(s) = file.get(from).and_then(Value::as_str) {
                out.insert(to.into(), json!(s));
            }
        }
        (out.contains_key("url") || out.contains_key("bytes"))
            .then_some(Part::File(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wires_read_into_one_model() {
        let v1 = json!({"task": {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_INPUT_REQUIRED",
            "message": {"role": "ROLE_AGENT", "parts": [{"text": "name?"}]}},
            "artifacts": [{"artifactId": "a", "name": "r", "parts": [{"data": {"n": 1.0}}, {"url": "https://x/f.png", "mediaType": "image/png", "filename": "f.png"}]}]}});
        let v03 = json!({"kind": "task", "id": "t", "contextId": "c", "status": {"state": "input-required",
            "message": {"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": "name?"}]}},
            "artifacts": [{"artifactId": "a", "name": "r", "parts": [{"kind": "data", "data": {"n": 1.0}}, {"kind": "file", "file": {"uri": "https://x/f.png", "mimeType": "image/png", "name": "f.png"}}]}]});
        for (version, result) in [(Version::V1, v1), (Version::V03, v03)] {
            let Some(Event::Task(t)) = version.event(&result) else {
                panic!("{version:?}: not a task");
            };
            assert_eq!((t.id.as_str(), t.state.as_str()), ("t", "input-required"));
            assert!(is_interrupted(&t.state) && !is_terminal(&t.state));
            let file = &t.artifacts[0].parts[1];
            assert!(
                matches!(file, Part::File(f) if f == &json!({"url": "https://x/f.png", "media-type": "image/png", "name": "f.png"})),
                "{file:?}"
            );
        }
    }

    #[test]
    fn versions_by_major_and_minor() {
        assert_eq!(Version::parse("1.0"), Some(Version::V1));
        assert_eq!(Version::parse("1"), Some(Version::V1));
        assert_eq!(Version::parse("0.3.0"), Some(Version::V03));
        assert_eq!(Version::parse("0.2.5"), None);
        assert_eq!(Version::parse("2.0"), None);
    }
}

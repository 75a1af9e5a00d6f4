//! Talking to one agent's JSON-RPC interface: a message sent and its task
//! followed to the end (streamed when the agent streams, else polled with
//! backoff), the task kept in the instance's remote state while it runs so
//! that a call stopped by a limit has it cancelled upstream.

use crate::wire::{
    is_interrupted, is_terminal, Artifact, Event, Method, Part, Reply, Task, Version,
};
use serde_json::{json, Value};
use std::time::Duration;
use warden_sdk::http::{Request, StreamingResponse};
use warden_sdk::Error;

/// How to reach one agent.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Its name in the configuration (or its URL, for an imported capability).
    pub name: String,
    /// The JSON-RPC endpoint its card names.
    pub endpoint: String,
    pub version: Version,
    /// Whether to stream (the card says it can, and the configuration allows).
    pub streaming: bool,
    /// A secret sent as a credential; the host fills it in at egress.
    pub auth_secret: Option<String>,
    /// The header it goes in (`authorization`: as a bearer token).
    pub auth_header: String,
    /// The longest wait for the agent's next bytes.
    pub timeout: Option<Duration>,
    /// The first wait between polls of a task (doubling up to 2 s).
    pub poll: Duration,
}

/// How a call ended at the agent.
#[derive(Debug, Default)]
pub struct Outcome {
    pub task: Option<String>,
    pub context: Option<String>,
    pub state: String,
    /// The agent's reply (a message without a task) or its last status message.
    pub message: Option<Reply>,
    pub artifacts: Vec<Artifact>,
}

impl Agent {
    /// Applies credentials and timeout to a request.
    pub fn base(&self, mut req: Request) -> Request {
        if let Some(secret) = &self.auth_secret {
            let value = if self.auth_header.eq_ignore_ascii_case("authorization") {
                format!("Bearer {{{{secret:{secret}}}}}")
            } else {
                format!("{{{{secret:{secret}}}}}")
            };
            req = req.header(self.auth_header.clone(), value);
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        req
    }

    fn post(
        &self,
        method: Method,
        params: Value,
        accept: &str,
    ) -> Result<StreamingResponse, Error> {
        let body = json!({
            "jsonrpc": "2.0",
            "id": next_id(),
            "method": self.version.method(method),
            "params": params,
        });
        let resp = self
            .base(Request::post(&self.endpoint))
            .header("content-type", "application/json")
            .header("accept", accept)
            .header("a2a-version", self.version.header())
            .body(body.to_string())
            .send_streaming()
            .map_err(|e| self.named(e, method))?;
        if resp.status >= 300 {
            return Err(self.status_error(resp, method));
        }
        Ok(resp)
    }

    /// One request, its JSON-RPC result.
    pub fn request(&self, method: Method, params: Value) -> Result<Value, Error> {
        let mut resp = self.post(method, params, "application/json")?;
        let body = read_all(&mut resp).map_err(|e| self.named(e, method))?;
        let message: Value = serde_json::from_slice(&body)
            .map_err(|e| self.error(method, format!("the answer is not JSON: {e}")))?;
        self.result(method, message)
    }

    fn result(&self, method: Method, message: Value) -> Result<Value, Error> {
        if let Some(e) = message.get("error") {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
            let text = e.get("message").and_then(Value::as_str).unwrap_or("");
            let why = match code {
                -32001 => "no such task".to_string(),
                -32009 => format!("it does not speak A2A {} ({text})", self.version.name()),
                -32601 => format!("it has no method {} ({text})", self.version.method(method)),
                _ => format!("error {code}: {text}"),
            };
            return Err(self.error(method, why));
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| self.error(method, "the answer has neither result nor error"))
    }

    /// Sends `message` and follows its task until it ends or waits for the
    /// user: streamed, or polled. `answering` is the task the message
    /// answers, if it answers one that waits.
    pub fn send(&self, message: Value, answering: Option<&str>) -> Result<Outcome, Error> {
        let mut run = Run::default();
        if let Some(task) = answering {
            set_pending(Some(task), self);
        }
        if self.streaming {
            self.stream(message, &mut run)?;
        } else {
            let params = self.version.send_params(message, answering.is_none());
            let result = self.request(Method::Send, params)?;
            let event = self.version.event(&result).ok_or_else(|| {
                self.error(Method::Send, "the answer is neither a task nor a message")
            })?;
            run.apply(event, self);
        }
        self.poll_until_done(&mut run)?;
        set_pending(None, self);
        Ok(run.outcome)
    }

    /// Reads a streamed answer event by event until the stream ends.
    fn stream(&self, message: Value, run: &mut Run) -> Result<(), Error> {
        let params = json!({ "message": message });
        let mut resp = self.post(
            Method::Stream,
            params,
            "text/event-stream, application/json",
        )?;
        let is_sse = resp
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/event-stream"));
        if !is_sse {
            // An error before the stream began comes as plain JSON.
            let body = read_all(&mut resp).map_err(|e| self.named(e, Method::Stream))?;
            let message: Value = serde_json::from_slice(&body)
                .map_err(|e| self.error(Method::Stream, format!("the answer is not JSON: {e}")))?;
            let result = self.result(Method::Stream, message)?;
            if let Some(event) = self.version.event(&result) {
                run.apply(event, self);
            }
            return Ok(());
        }
        let mut events = crate::sse::Events::new(&mut resp);
        while let Some(data) = events
            .next_data()
            .map_err(|e| self.named(e, Method::Stream))?
        {
            let Ok(message) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            let result = self.result(Method::Stream, message)?;
            let Some(event) = self.version.event(&result) else {
                continue;
            };
            // A task's snapshot (the stream's first event) may still show
            // the state the message answers; only an update settles it
            // before the stream ends.
            let snapshot = matches!(event, Event::Task(_));
            run.apply(event, self);
            if run.settled() && !snapshot {
                break;
            }
        }
        Ok(())
    }

    /// Polls a task that has not ended, with backoff, until it ends or waits
    /// for the user. The plugin's time limit bounds the whole.
    fn poll_until_done(&self, run: &mut Run) -> Result<(), Error> {
        let mut wait = self.poll;
        while !run.settled() {
            let Some(id) = run.outcome.task.clone() else {
                return Err(self.error(
                    Method::Get,
                    "the agent ended the exchange without an answer",
                ));
            };
            warden_sdk::time::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(2));
            let result = self.request(Method::Get, json!({ "id": id }))?;
            let task = self
                .version
                .task(&result)
                .ok_or_else(|| self.error(Method::Get, "the answer is not a task"))?;
            run.apply(Event::Task(task), self);
        }
        Ok(())
    }

    /// Cancels task `id` (best effort: a task that ended is fine).
    pub fn cancel(&self, id: &str) -> Result<(), Error> {
        match self.request(Method::Cancel, json!({ "id": id })) {
            Ok(_) => Ok(()),
            Err(e) if e.message().contains("error -32002") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn error(&self, method: Method, why: impl std::fmt::Display) -> Error {
        Error::upstream(format!(
            "A2A agent `{}`: {}: {why}",
            self.name,
            self.version.method(method)
        ))
    }

    /// `e` naming the agent and the method.
    fn named(&self, e: Error, method: Method) -> Error {
        let with = |m: &str| {
            format!(
                "A2A agent `{}`: {}: {m}",
                self.name,
                self.version.method(method)
            )
        };
        match e {
            Error::Upstream(m) => Error::Upstream(with(&m)),
            Error::Timeout(m) => Error::Timeout(with(&m)),
            Error::Unavailable(m) => Error::Unavailable(with(&m)),
            other => other,
        }
    }

    fn status_error(&self, mut resp: StreamingResponse, method: Method) -> Error {
        let status = resp.status;
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = resp.next_chunk() {
            body.extend_from_slice(&chunk);
            if body.len() > 2048 {
                break;
            }
        }
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        let text = text.trim();
        match status {
            401 | 403 => self.error(
                method,
                match &self.auth_secret {
                    None => format!("refused ({status}) and needs credentials: set `auth-secret` for this agent and grant the secret to the plugin: {text}"),
                    Some(s) => format!("refused ({status}) the credential from secret `{s}`: {text}"),
                },
            ),
            502..=504 => Error::Unavailable(format!(
                "A2A agent `{}` answered {status}: {text}",
                self.name
            )),
            _ => self.error(method, format!("answered {status}: {text}")),
        }
    }
}

/// A call's task as it is followed.
#[derive(Default)]
struct Run {
    outcome: Outcome,
    /// Status updates with a message so far (reported as progress).
    updates: u64,
}

impl Run {
    /// Whether the task ended or waits for the user (or there was no task).
    fn settled(&self) -> bool {
        let s = &self.outcome.state;
        is_terminal(s) || is_interrupted(s)
    }

    fn apply(&mut self, event: Event, agent: &Agent) {
        let o = &mut self.outcome;
        match event {
            Event::Message(reply) => {
                o.context = reply.context.clone().or(o.context.take());
                o.message = Some(reply);
                // A reply without a task ends the exchange.
                if o.task.is_none() {
                    o.state = "completed".into();
                }
            }
            Event::Task(task) => {
                let Task {
                    id,
                    context,
                    state,
                    message,
                    artifacts,
                } = task;
                if o.task.as_deref() != Some(&id) {
                    set_pending(Some(&id), agent);
                }
                o.task = Some(id);
                o.context = context.or(o.context.take());
                o.state = state;
                if message.is_some() {
                    o.message = message;
                }
                if !artifacts.is_empty() {
                    o.artifacts = artifacts;
                }
            }
            Event::Status {
                task,
                context,
                state,
                message,
            } => {
                if o.task.is_none() {
                    set_pending(Some(&task), agent);
                    o.task = Some(task);
                }
                o.context = context.or(o.context.take());
                // The agent's word while it works is the call's progress.
                if let (Some(m), false) = (&message, is_terminal(&state)) {
                    self.updates += 1;
                    let text = collect(&m.parts).0;
                    warden_sdk::progress(self.updates, None, &format!("{state}: {text}"));
                }
                o.state = state;
                if message.is_some() {
                    o.message = message;
                }
            }
            Event::Artifact {
                task,
                artifact,
                append,
            } => {
                if o.task.is_none() {
                    set_pending(Some(&task), agent);
                    o.task = Some(task);
                }
                match o.artifacts.iter_mut().find(|a| a.id == artifact.id) {
                    Some(a) if append => a.parts.extend(artifact.parts),
                    Some(a) => *a = artifact,
                    None => o.artifacts.push(artifact),
                }
            }
        }
    }
}

/// Keeps the task in flight in the instance's remote state (or clears it),
/// so that an instance stopped mid-call has the task cancelled upstream.
fn set_pending(task: Option<&str>, agent: &Agent) {
    let state = match task {
        None => String::new(),
        Some(id) => json!({
            "task": id,
            "agent": agent.name,
            "endpoint": agent.endpoint,
            "version": agent.version.name(),
            "auth-secret": agent.auth_secret,
            "auth-header": agent.auth_header,
        })
        .to_string(),
    };
    if let Err(e) = warden_sdk::set_remote_state(&state) {
        warden_sdk::log::warn(format!("A2A: cannot record the task in flight: {e}"));
    }
}

/// Cancels the task a dead instance left, from its remote state.
pub fn release(state: &str) {
    let Ok(v) = serde_json::from_str::<Value>(state) else {
        return;
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(task), Some(name), Some(endpoint), Some(version)) = (
        text("task"),
        text("agent"),
        text("endpoint"),
        text("version").and_then(|v| Version::parse(&v)),
    ) else {
        return;
    };
    let agent = Agent {
        name,
        endpoint,
        version,
        streaming: false,
        auth_secret: text("auth-secret"),
        auth_header: text("auth-header").unwrap_or_else(|| "authorization".into()),
        timeout: Some(Duration::from_secs(5)),
        poll: Duration::from_millis(200),
    };
    match agent.cancel(&task) {
        Ok(()) => warden_sdk::log::info(format!(
            "A2A agent `{}`: cancelled task {task} (the call was stopped)",
            agent.name
        )),
        Err(e) => warden_sdk::log::warn(format!(
            "A2A agent `{}`: cancelling task {task} failed: {e}",
            agent.name
        )),
    }
}

fn read_all(resp: &mut StreamingResponse) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.next_chunk()? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A new JSON-RPC id, and message ids: unique within the instance and
/// across instances (the clock's nanoseconds).
fn next_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{n}", warden_sdk::time::monotonic_nanos())
}

/// A new message id.
pub fn message_id() -> String {
    format!("warden-{}", next_id())
}

/// The parts of an outcome as output: text joined, data and files apart.
pub fn collect(parts: &[Part]) -> (String, Vec<Value>, Vec<Value>) {
    let mut text = Vec::new();
    let (mut data, mut files) = (Vec::new(), Vec::new());
    for p in parts {
        match p {
            Part::Text(t) => text.push(t.as_str()),
            Part::Data(d) => data.push(d.clone()),
            Part::File(f) => files.push(f.clone()),
        }
    }
    (text.join("\n"), data, files)
}

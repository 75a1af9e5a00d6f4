//! A Model Context Protocol client over streamable HTTP, as servers really
//! speak it. Revision 2026-07-28 first (`server/discover`, then stateless
//! requests carrying the `_meta` envelope and the `Mcp-Method`/`Mcp-Name`
//! headers); when a server refuses it, the `initialize` handshake of
//! 2025-11-25 or an older revision: JSON or SSE responses, session ids,
//! 400/404 for a session the server no longer knows, 405 for stateless
//! servers.

use serde_json::{json, Value};
use std::time::Duration;
use warden_sdk::http::{Request, StreamingResponse};
use warden_sdk::Error;

use crate::remote_state;
use crate::sse::read_sse_response;
use crate::tasks::{self, Status, Task};
use crate::wire::{content_text, header_value, rpc_error, transient, Failure};

/// The handshake revision offered, then the older ones accepted as a
/// server's counter-offer.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The stateless revision, tried first.
pub const MODERN: &str = "2026-07-28";

/// Which revisions to try (`protocol` in a server's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Era {
    /// 2026-07-28 first, the handshake when the server refuses it.
    #[default]
    Auto,
    /// 2026-07-28 only.
    Modern,
    /// The handshake only.
    Legacy,
}

/// Where and how to reach one server.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The server's name in the configuration.
    pub name: String,
    /// The streamable HTTP endpoint, e.g. `http://127.0.0.1:8000/mcp`.
    pub url: String,
    /// Secret holding a bearer token; the host fills it in at egress.
    pub auth_secret: Option<String>,
    /// Per-request timeout.
    pub timeout: Option<Duration>,
    /// Send through `wasi:http` instead of the host's `http-client`.
    pub wasi_http: bool,
    /// Which revisions to try.
    pub era: Era,
}

/// One MCP session (or, against a stateless server, none).
pub struct Client {
    endpoint: Endpoint,
    session_id: Option<String>,
    protocol: String,
    /// Speaking 2026-07-28: no handshake, no session.
    modern: bool,
    next_id: u64,
    /// Its number in the instance's remote state.
    serial: u64,
    /// The request in flight, on the 2025-era wire.
    pending: Option<u64>,
    /// The task being followed, to cancel should the call be stopped.
    task: Option<String>,
    /// A 2025-11-25 server that runs `tools/call` as tasks.
    tool_tasks: bool,
    /// Its tools that run only as tasks, once asked.
    task_only: Option<Vec<String>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        remote_state::report(self.serial, None);
    }
}

impl Client {
    /// A client that has sent nothing yet, on the 2025-era wire.
    fn new(endpoint: Endpoint, session_id: Option<String>, protocol: String) -> Client {
        Client {
            endpoint,
            session_id,
            protocol,
            modern: false,
            next_id: 1,
            serial: remote_state::serial(),
            pending: None,
            task: None,
            tool_tasks: false,
            task_only: None,
        }
    }

    /// Connects: `server/discover` at 2026-07-28, or (when the server
    /// refuses it) `initialize` and `notifications/initialized`.
    pub fn connect(endpoint: Endpoint) -> Result<Client, Error> {
        let mut client = Client::new(endpoint, None, PROTOCOL_VERSIONS[0].to_string());
        if client.endpoint.era == Era::Legacy || !client.discover()? {
            client.initialize()?;
        }
        Ok(client)
    }

    /// The revision agreed on.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// Whether the server keeps a session for this client (2025-era
    /// servers that gave a session id); calls then belong to it.
    pub fn keeps_session(&self) -> bool {
        !self.modern && self.session_id.is_some()
    }

    /// Probes `server/discover` at 2026-07-28. `Ok(true)`: the server speaks
    /// it and this client now does. `Ok(false)`: it refused in a way that
    /// means "not this revision" (a 4xx, a JSON-RPC error, a result without
    /// the revision): fall back. A network failure is an error, not an answer.
    fn discover(&mut self) -> Result<bool, Error> {
        self.modern = true;
        self.protocol = MODERN.to_string();
        let outcome = self.request_raw("server/discover", json!({}), false);
        let name = &self.endpoint.name;
        let refused = |why: String| -> Result<bool, Error> {
            if self.endpoint.era == Era::Modern {
                return Err(Error::upstream(format!(
                    "MCP server `{name}` does not speak {MODERN} (`protocol = \"{MODERN}\"` in its configuration): {why}"
                )));
            }
            Ok(false)
        };
        let answer = match outcome {
            Ok((result, _)) => {
                let speaks = result
                    .get("supportedVersions")
                    .and_then(Value::as_array)
                    .is_some_and(|v| v.iter().any(|x| x == MODERN));
                if speaks {
                    return Ok(true);
                }
                refused(format!(
                    "its discover result lists {}",
                    result.get("supportedVersions").unwrap_or(&Value::Null)
                ))
            }
            Err(Failure::Refused(why)) => refused(why),
            Err(Failure::SessionGone(why)) => refused(why),
            Err(Failure::Error(e)) => Err(e),
        };
        self.modern = false;
        self.protocol = PROTOCOL_VERSIONS[0].to_string();
        answer
    }

    fn initialize(&mut self) -> Result<(), Error> {
        self.session_id = None;
        self.modern = false;
        self.protocol = PROTOCOL_VERSIONS[0].to_string();
        let params = json!({
            "protocolVersion": PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "warden-mcp", "version": env!("CARGO_PKG_VERSION")},
        });
        let (result, session) = self
            .request_raw("initialize", params, false)
            .map_err(Failure::into_error)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !PROTOCOL_VERSIONS.contains(&version) {
            return Err(Error::upstream(format!(
                "MCP server `{}` speaks protocol `{version}`, which this client does not (it speaks {})",
                self.endpoint.name,
                PROTOCOL_VERSIONS.join(", ")
            )));
        }
        self.protocol = version.to_string();
        self.session_id = session;
        self.tool_tasks = tasks::server_runs_tool_tasks(&result);
        self.task_only = None;
        self.report();
        self.notify("notifications/initialized", json!({}))?;
        Ok(())
    }

    /// Lists every tool, following `nextCursor`.
    pub fn list_tools(&mut self) -> Result<Vec<Value>, Error> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request("tools/list", params)?;
            if let Some(Value::Array(page)) = result.get("tools") {
                tools.extend(page.iter().cloned());
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() && Some(c) != cursor.as_deref() => {
                    cursor = Some(c.to_string())
                }
                _ => return Ok(tools),
            }
        }
        Err(Error::upstream(format!(
            "MCP server `{}`: tools/list never ends",
            self.endpoint.name
        )))
    }

    /// Calls tool `name`; a call the server runs as a task is followed to
    /// its end. A tool error (`isError`) is an upstream error with the
    /// tool's text.
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
        let mut params = json!({"name": name, "arguments": arguments});
        if self.runs_only_as_task(name)? {
            params["task"] = json!({});
        }
        let mut result = self.request("tools/call", params)?;
        if let Some(task) = Task::created(&result) {
            self.task = Some(task.id.clone());
            self.report();
            let outcome = self.follow(name, task);
            self.task = None;
            self.report();
            result = outcome?;
        }
        if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
            return Err(Error::upstream(format!(
                "MCP tool `{name}` on `{}` asked for input from the user, which this client cannot give",
                self.endpoint.name
            )));
        }
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return Err(Error::upstream(format!(
                "MCP tool `{name}` on `{}` failed: {}",
                self.endpoint.name,
                content_text(&result)
            )));
        }
        Ok(result)
    }

    /// Whether tool `name` of a 2025-11-25 server runs only as a task (asked
    /// once per session, from its tool list). At 2026-07-28 the server
    /// decides per call, and every call allows a task.
    fn runs_only_as_task(&mut self, name: &str) -> Result<bool, Error> {
        if self.modern || !self.tool_tasks {
            return Ok(false);
        }
        if self.task_only.is_none() {
            let tools = self.list_tools()?;
            self.task_only = Some(tasks::task_only(&tools));
        }
        Ok(self
            .task_only
            .as_ref()
            .is_some_and(|t| t.iter().any(|n| n == name)))
    }

    /// Polls `task` until it ends; its tool result then. Changes of its
    /// status message are passed on as the call's progress. The plugin's
    /// time limit bounds the whole; should it stop the call, the host's
    /// release of this instance's remote state cancels the task.
    fn follow(&mut self, tool: &str, mut task: Task) -> Result<Value, Error> {
        let mut polls: u64 = 0;
        let mut told = String::new();
        loop {
            if task.message != told && !task.message.is_empty() {
                warden_sdk::progress(polls, None, &task.message);
                told = task.message.clone();
            }
            match task.status {
                Status::Working => warden_sdk::time::sleep(task.poll),
                // At 2026-07-28 the result comes with the task (`tasks/get`).
                Status::Completed if self.modern => {}
                Status::Completed => return self.task_result(&task),
                Status::Failed => return Err(self.task_failed(tool, &task, None)),
                Status::Cancelled => {
                    return Err(Error::upstream(format!(
                        "MCP tool `{tool}` on `{}`: its task {} was cancelled by the server{}",
                        self.endpoint.name,
                        task.id,
                        suffix(&task.message)
                    )))
                }
                Status::InputRequired => {
                    return Err(Error::upstream(format!(
                        "MCP tool `{tool}` on `{}`: its task {} asked for input from the user, which this client cannot give{}",
                        self.endpoint.name,
                        task.id,
                        suffix(&task.message)
                    )))
                }
            }
            polls += 1;
            let snapshot = self.request("tasks/get", json!({"taskId": task.id}))?;
            let next = Task::parse(&snapshot).ok_or_else(|| {
                Error::upstream(format!(
                    "MCP server `{}`: tasks/get for task {} answered without a task",
                    self.endpoint.name, task.id
                ))
            })?;
            if next.id != task.id {
                return Err(Error::upstream(format!(
                    "MCP server `{}`: tasks/get for task {} answered about task {}",
                    self.endpoint.name, task.id, next.id
                )));
            }
            if next.status == Status::Failed {
                return Err(self.task_failed(tool, &next, snapshot.get("error")));
            }
            if next.status == Status::Completed && self.modern {
                return snapshot.get("result").cloned().ok_or_else(|| {
                    Error::upstream(format!(
                        "MCP server `{}`: task {} completed without a result",
                        self.endpoint.name, task.id
                    ))
                });
            }
            task = next;
        }
    }

    /// A completed 2025-11-25 task's result (`tasks/result`).
    fn task_result(&mut self, task: &Task) -> Result<Value, Error> {
        self.request("tasks/result", json!({"taskId": task.id}))
    }

    fn task_failed(&self, tool: &str, task: &Task, error: Option<&Value>) -> Error {
        let why = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(|m| m.chars().take(500).collect::<String>())
            .unwrap_or_else(|| task.message.clone());
        Error::upstream(format!(
            "MCP tool `{tool}` on `{}`: its task {} failed{}",
            self.endpoint.name,
            task.id,
            suffix(&why)
        ))
    }

    /// A request; a session the server forgot is initialised again, once.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        match self.request_raw(method, params.clone(), true) {
            Ok((result, _)) => Ok(result),
            Err(Failure::SessionGone(why)) => {
                warden_sdk::log::info(format!(
                    "MCP server `{}` no longer knows the session ({why}); initialising a new one",
                    self.endpoint.name
                ));
                self.initialize()?;
                self.request_raw(method, params, true)
                    .map(|(r, _)| r)
                    .map_err(Failure::into_error)
            }
            // A server that stopped speaking 2026-07-28 (replaced by an
            // older one): the handshake, once.
            Err(Failure::Refused(why)) if self.modern && self.endpoint.era == Era::Auto => {
                warden_sdk::log::info(format!(
                    "MCP server `{}` refused {MODERN} ({why}); falling back to the initialize handshake",
                    self.endpoint.name
                ));
                self.initialize()?;
                self.request_raw(method, params, true)
                    .map(|(r, _)| r)
                    .map_err(Failure::into_error)
            }
            Err(f) => Err(f.into_error()),
        }
    }

    /// What this client leaves open on its server, as the instance's remote
    /// state keeps it; `None` when nothing is.
    fn open_state(&self) -> Option<Value> {
        let pending = if self.modern { None } else { self.pending };
        if self.session_id.is_none() && pending.is_none() && self.task.is_none() {
            return None;
        }
        Some(json!({
            "server": self.endpoint.name,
            "url": self.endpoint.url,
            "auth-secret": self.endpoint.auth_secret,
            "wasi-http": self.endpoint.wasi_http,
            "protocol": self.protocol,
            "session-id": self.session_id,
            "pending": pending,
            "task": self.task,
            "modern": self.modern,
        }))
    }

    fn report(&self) {
        remote_state::report(self.serial, self.open_state());
    }

    /// Ends what a dead instance's client left open, from its entry in the
    /// remote state: a task is cancelled (`tasks/cancel`), a request in
    /// flight too (`notifications/cancelled`), a session deleted.
    pub fn release(entry: &Value) {
        let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(name), Some(url), Some(protocol)) =
            (text("server"), text("url"), text("protocol"))
        else {
            return;
        };
        let endpoint = Endpoint {
            name,
            url,
            auth_secret: text("auth-secret"),
            timeout: Some(Duration::from_secs(5)),
            wasi_http: entry.get("wasi-http").and_then(Value::as_bool) == Some(true),
            era: Era::Legacy,
        };
        let mut client = Client::new(endpoint, text("session-id"), protocol);
        client.modern = entry.get("modern").and_then(Value::as_bool) == Some(true);
        if let Some(task) = text("task") {
            if let Err(e) = client.request_raw("tasks/cancel", json!({"taskId": task}), true) {
                warden_sdk::log::warn(format!(
                    "MCP server `{}`: cancelling task {task} failed: {}",
                    client.endpoint.name,
                    e.into_error()
                ));
            }
        }
        if let Some(id) = entry.get("pending").and_then(Value::as_u64) {
            let params = json!({
                "requestId": id,
                "reason": "the call was stopped (a limit, or its caller went away)",
            });
            if let Err(e) = client.notify("notifications/cancelled", params) {
                warden_sdk::log::warn(format!(
                    "MCP server `{}`: cancelling request {id} failed: {e}",
                    client.endpoint.name
                ));
            }
        }
        client.close();
    }

    /// Ends the session (`DELETE`). A stateless server (405) or one that
    /// already forgot it is fine.
    pub fn close(&mut self) {
        let Some(id) = self.session_id.take() else {
            return;
        };
        self.report();
        let req = self
            .base(Request::new("DELETE", &self.endpoint.url))
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", &self.protocol);
        match req.send() {
            Ok(r) if r.status < 300 || r.status == 404 || r.status == 405 => {}
            Ok(r) => warden_sdk::log::warn(format!(
                "MCP server `{}`: DELETE of the session answered {}",
                self.endpoint.name, r.status
            )),
            Err(e) => warden_sdk::log::warn(format!(
                "MCP server `{}`: DELETE of the session failed: {e}",
                self.endpoint.name
            )),
        }
    }

    fn base(&self, mut req: Request) -> Request {
        if let Some(secret) = &self.endpoint.auth_secret {
            req = req.header("authorization", format!("Bearer {{{{secret:{secret}}}}}"));
        }
        if let Some(t) = self.endpoint.timeout {
            req = req.timeout(t);
        }
        if self.endpoint.wasi_http {
            req = req.via_wasi_http();
        }
        req
    }

    fn post(&self, body: &Value, with_session: bool) -> Result<StreamingResponse, Error> {
        let mut req = self
            .base(Request::post(&self.endpoint.url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.protocol);
        if self.modern {
            if let Some(method) = body.get("method").and_then(Value::as_str) {
                req = req.header("mcp-method", method);
                // A tool's name, or the task a `tasks/*` request is about.
                let named = if method.starts_with("tasks/") {
                    "/params/taskId"
                } else {
                    "/params/name"
                };
                if let Some(name) = body.pointer(named).and_then(Value::as_str) {
                    req = req.header("mcp-name", header_value(name));
                }
            }
        }
        let mut req = req.body(body.to_string());
        if with_session {
            if let Some(id) = &self.session_id {
                req = req.header("mcp-session-id", id.clone());
            }
        }
        req.send_streaming()
    }

    fn notify(&mut self, method: &str, params: Value) -> Result<(), Error> {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let mut resp = self.post(&body, true)?;
        if resp.status >= 300 {
            return Err(self.status_error(&mut resp).into_error());
        }
        while resp.next_chunk()?.is_some() {}
        Ok(())
    }

    /// Sends one request; returns its result and the session id the
    /// response carried. A failure names the server.
    fn request_raw(
        &mut self,
        method: &str,
        params: Value,
        with_session: bool,
    ) -> Result<(Value, Option<String>), Failure> {
        self.exchange(method, params, with_session)
            .map_err(|f| match f {
                Failure::Error(e) => Failure::Error(self.named(e, method)),
                other => other,
            })
    }

    /// `e` with the server's name and the method, unless it names them.
    fn named(&self, e: Error, method: &str) -> Error {
        let name = &self.endpoint.name;
        let tag = format!("MCP server `{name}`");
        let with = |m: String| {
            if m.contains(&tag) {
                m
            } else {
                format!("{tag}: {method}: {m}")
            }
        };
        match e {
            Error::Upstream(m) => Error::Upstream(with(m)),
            Error::Timeout(m) => Error::Timeout(with(m)),
            Error::Denied(m) => Error::Denied(with(m)),
            Error::Unavailable(m) => Error::Unavailable(with(m)),
            other => other,
        }
    }

    /// One request and its response, with the request kept in the remote
    /// state while it is in flight.
    fn exchange(
        &mut self,
        method: &str,
        params: Value,
        with_session: bool,
    ) -> Result<(Value, Option<String>), Failure> {
        let id = self.next_id;
        self.next_id += 1;
        self.pending = Some(id);
        self.report();
        let outcome = self.exchange_as(id, method, params, with_session);
        self.pending = None;
        self.report();
        outcome
    }

    fn exchange_as(
        &mut self,
        id: u64,
        method: &str,
        params: Value,
        with_session: bool,
    ) -> Result<(Value, Option<String>), Failure> {
        let mut params = params;
        if self.modern {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": tasks::client_capabilities(),
                "io.modelcontextprotocol/clientInfo": {"name": "warden-mcp", "version": env!("CARGO_PKG_VERSION")},
            });
        }
        // A tool's progress is the call's: the server sends it on this
        // request's stream, and it is passed on (`host.progress`).
        if method == "tools/call" {
            params["_meta"]["progressToken"] = json!(id);
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        // The server could not be reached: transient, as far as this client
        // knows (the host may retry an idempotent call).
        let mut resp = self.post(&body, with_session).map_err(transient)?;
        if resp.status >= 300 {
            return Err(self.status_error(&mut resp));
        }
        let session = resp.header("mcp-session-id").map(str::to_string);
        let content_type = resp
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let message = if content_type.starts_with("text/event-stream") {
            read_sse_response(&mut resp, id)?
        } else {
            let mut body = Vec::new();
            while let Some(chunk) = resp.next_chunk().map_err(transient)? {
                body.extend_from_slice(&chunk);
            }
            let v: Value = serde_json::from_slice(&body).map_err(|e| {
                Error::upstream(format!(
                    "MCP server `{}`: response to {method} is not JSON: {e}",
                    self.endpoint.name
                ))
            })?;
            match v {
                // A batch: find ours.
                Value::Array(items) => items
                    .into_iter()
                    .find(|m| m.get("id") == Some(&json!(id)))
                    .ok_or_else(|| Error::upstream("no response with our id in the batch"))?,
                other => other,
            }
        };
        if let Some(err) = message.get("error") {
            if self.modern && err.get("code").and_then(Value::as_i64) == Some(-32022) {
                return Err(Failure::Refused(format!("-32022 {}", err)));
            }
            if method == "server/discover" {
                return Err(Failure::Refused(format!("{err}")));
            }
            return Err(Failure::Error(rpc_error(&self.endpoint.name, method, err)));
        }
        let result = message.get("result").cloned().ok_or_else(|| {
            Error::upstream(format!(
                "MCP server `{}`: response to {method} has neither result nor error",
                self.endpoint.name
            ))
        })?;
        Ok((result, session))
    }

    fn status_error(&self, resp: &mut StreamingResponse) -> Failure {
        let status = resp.status;
        let www = resp.header("www-authenticate").map(str::to_string);
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = resp.next_chunk() {
            body.extend_from_slice(&chunk);
            if body.len() > 2048 {
                break;
            }
        }
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        let name = &self.endpoint.name;
        if (status == 404 || status == 400) && self.session_id.is_some() {
            return Failure::SessionGone(format!("{status}: {}", text.trim()));
        }
        // A 2026-07-28 request refused as such (400: an older server that
        // wants a session or an initialize; -32022: a version it does not
        // speak; 404/405: no such method or endpoint behaviour).
        if self.modern && matches!(status, 400 | 404 | 405 | 406 | 415 | 422) {
            return Failure::Refused(format!("{status}: {}", text.trim()));
        }
        Failure::Error(match status {
            401 | 403 => Error::upstream(format!(
                "MCP server `{name}` refused the request ({status}){}: {}",
                match (&self.endpoint.auth_secret, www) {
                    (None, _) => " and needs credentials: set `auth-secret` for this server and grant the secret to the plugin".to_string(),
                    (Some(s), _) => format!(" with the bearer token from secret `{s}`"),
                },
                text.trim()
            )),
            502..=504 => Error::Unavailable(format!(
                "MCP server `{name}` answered {status}: {}",
                text.trim()
            )),
            _ => Error::upstream(format!(
                "MCP server `{name}` answered {status}: {}",
                text.trim()
            )),
        })
    }
}

/// `: why`, or nothing when there is no why.
fn suffix(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    }
}

//! A Model Context Protocol client over streamable HTTP, as servers really
//! speak it: JSON or SSE responses, session ids, 400/404 for a session the
//! server no longer knows, 405 for stateless servers.

use serde_json::{json, Value};
use std::time::Duration;
use warden_sdk::http::{Request, StreamingResponse};
use warden_sdk::Error;

/// The protocol revision offered, then the older ones accepted as a
/// server's counter-offer.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

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
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// The server no longer knows our session (400 or 404 with a session id).
    SessionGone(String),
    /// Anything else, as the capability's error.
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

/// One MCP session (or, against a stateless server, none).
pub struct Client {
    endpoint: Endpoint,
    session_id: Option<String>,
    protocol: String,
    next_id: u64,
}

impl Client {
    /// Connects: `initialize`, then `notifications/initialized`.
    pub fn connect(endpoint: Endpoint) -> Result<Client, Error> {
        let mut client = Client {
            endpoint,
            session_id: None,
            protocol: PROTOCOL_VERSIONS[0].to_string(),
            next_id: 1,
        };
        client.initialize()?;
        Ok(client)
    }

    fn initialize(&mut self) -> Result<(), Error> {
        self.session_id = None;
        self.protocol = PROTOCOL_VERSIONS[0].to_string();
        let params = json!({
            "protocolVersion": PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "warden-mcp", "version": env!("CARGO_PKG_VERSION")},
        });
        let (result, session) =
            self.request_raw("initialize", params, false)
                .map_err(|f| match f {
                    Failure::SessionGone(m) => Error::upstream(m),
                    Failure::Error(e) => e,
                })?;
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

    /// Calls tool `name`. A tool error (`isError`) is an upstream error with
    /// the tool's text.
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, Error> {
        let result = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return Err(Error::upstream(format!(
                "MCP tool `{name}` on `{}` failed: {}",
                self.endpoint.name,
                content_text(&result)
            )));
        }
        Ok(result)
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
                match self.request_raw(method, params, true) {
                    Ok((result, _)) => Ok(result),
                    Err(Failure::SessionGone(m)) => Err(Error::upstream(m)),
                    Err(Failure::Error(e)) => Err(e),
                }
            }
            Err(Failure::Error(e)) => Err(e),
        }
    }

    /// A client for a session another instance opened (to end it): no
    /// request is sent.
    pub fn resume(endpoint: Endpoint, session_id: String, protocol: String) -> Client {
        Client {
            endpoint,
            session_id: Some(session_id),
            protocol,
            next_id: 1,
        }
    }

    /// The session id the server gave and the protocol version agreed, if
    /// the server keeps sessions.
    pub fn session(&self) -> Option<(&str, &str)> {
        self.session_id
            .as_deref()
            .map(|id| (id, self.protocol.as_str()))
    }

    /// Ends the session (`DELETE`). A stateless server (405) or one that
    /// already forgot it is fine.
    pub fn close(&mut self) {
        let Some(id) = self.session_id.take() else {
            return;
        };
        let req = self
            .base(Request::new("DELETE", &self.endpoint.url))
            .header("mcp-session-id", id);
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
            .header("mcp-protocol-version", &self.protocol)
            .body(body.to_string());
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
    /// response carried.
    fn request_raw(
        &mut self,
        method: &str,
        params: Value,
        with_session: bool,
    ) -> Result<(Value, Option<String>), Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut resp = self.post(&body, with_session)?;
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
            while let Some(chunk) = resp.next_chunk()? {
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
        Failure::Error(match status {
            401 | 403 => Error::upstream(format!(
                "MCP server `{name}` refused the request ({status}){}: {}",
                match (&self.endpoint.auth_secret, www) {
                    (None, _) => " and needs credentials: set `auth-secret` for this server and grant the secret to the plugin".to_string(),
                    (Some(s), _) => format!(" with the bearer token from secret `{s}`"),
                },
                text.trim()
            )),
            _ => Error::upstream(format!(
                "MCP server `{name}` answered {status}: {}",
                text.trim()
            )),
        })
    }
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::SessionGone(m) => Error::upstream(m),
            Failure::Error(e) => e,
        }
    }
}

/// Reads SSE events until the JSON-RPC response with `id`, then stops
/// (without waiting for the stream's end).
fn read_sse_response(resp: &mut StreamingResponse, id: u64) -> Result<Value, Failure> {
    let mut buf: Vec<u8> = Vec::new();
    let mut data = String::new();
    loop {
        // Handle every complete line in the buffer.
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                // End of an event.
                if !data.trim().is_empty() {
                    if let Some(m) = matching(&data, id) {
                        return Ok(m);
                    }
                }
                data.clear();
            } else if let Some(rest) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            }
            // `event:`, `id:`, `retry:` and comments need nothing here.
        }
        match resp.next_chunk()? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None => {
                if !data.trim().is_empty() {
                    if let Some(m) = matching(&data, id) {
                        return Ok(m);
                    }
                }
                return Err(Failure::Error(Error::upstream(
                    "the SSE stream ended without the response",
                )));
            }
        }
    }
}

/// The message in `data` if it is the response to `id`.
fn matching(data: &str, id: u64) -> Option<Value> {
    let v: Value = serde_json::from_str(data).ok()?;
    let is_response = v.get("result").is_some() || v.get("error").is_some();
    (is_response && v.get("id") == Some(&json!(id))).then_some(v)
}

fn rpc_error(server: &str, method: &str, err: &Value) -> Error {
    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    let text = format!("MCP server `{server}`: {method} failed ({code}): {message}");
    match code {
        -32602 => Error::invalid_input(text),
        -32601 => Error::not_found(text),
        _ => Error::upstream(text),
    }
}

/// The text items of a tool result's `content`, joined.
pub fn content_text(result: &Value) -> String {
    let items = result.get("content").and_then(Value::as_array);
    let texts: Vec<&str> = items
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    if texts.is_empty() {
        "(no text)".into()
    } else {
        texts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_data_matches_only_our_response() {
        assert!(matching(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#, 3).is_some());
        assert!(matching(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3).is_none());
        assert!(matching(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
            3
        )
        .is_none());
        assert!(matching("", 3).is_none());
        assert!(matching("not json", 3).is_none());
    }

    #[test]
    fn rpc_errors_map_to_kinds() {
        assert!(matches!(
            rpc_error("s", "m", &json!({"code": -32602, "message": "x"})),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            rpc_error("s", "m", &json!({"code": -32601, "message": "x"})),
            Error::NotFound(_)
        ));
        assert!(matches!(
            rpc_error("s", "m", &json!({"code": -32000})),
            Error::Upstream(_)
        ));
    }
}

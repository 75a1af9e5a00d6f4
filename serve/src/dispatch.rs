//! What each MCP method does, in either revision.

use crate::approval::{self, AskLater, Asked, BackChannel, Decided, Elicit};
use crate::client_sessions::{Full, Session, Sink};
use crate::protocol::{self, Envelope, RpcError, HANDSHAKE, MODERN};
use crate::refusals::Refusal;
use crate::{tasks, tools, Shared};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use warden::{Approval, Approver, CallContext};

const INSTRUCTIONS: &str = "Tools served by Warden: each runs in a sandboxed WebAssembly plugin under limits and policy, and every call is audited. A refusal is a tool error that names the rule.";

/// Who sent a request, and how to reach it.
pub(crate) struct Caller {
    pub principal: String,
    /// The scopes its credentials grant (none for static tokens).
    pub scopes: Vec<String>,
    /// The groups its credentials list (none for static tokens).
    pub groups: Vec<String>,
    /// The authorization server that vouched for it (OAuth only).
    pub issuer: Option<String>,
    /// Whose audit budget its calls spend: the principal, or its 2025-11-25
    /// session without tokens (sessions are capped). Never anything the
    /// client names itself, nor a connection it can replace.
    pub account: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// The 2025-11-25 session the request belongs to.
    pub session: Option<Arc<Session>>,
    /// Where requests to the client can go while this request runs.
    pub back: Option<Arc<dyn BackChannel>>,
    /// Where notifications about this request can go (its response's
    /// stream, or stdout), if anywhere.
    pub notify: Option<Sink>,
    /// Where a call's progress goes instead, when the call may become a
    /// task (its status message).
    pub task_progress: Option<Arc<dyn warden::ProgressSink>>,
    /// The trace the HTTP request's `traceparent` header names (with
    /// `[telemetry]` on; `params._meta` takes precedence).
    pub trace_parent: Option<warden::telemetry::Context>,
    /// The JSON-RPC id of the request, as spans name it.
    pub request_id: Option<String>,
    /// The OAuth access token the request came with: exchanged for
    /// upstream tokens where a secret says so, never forwarded.
    pub access_token: Option<String>,
}

impl Caller {
    /// Who calls, as `[[policy.rules]]` see it: the authenticated principal
    /// and its scopes (never a name the client gives itself).
    pub fn identity(&self) -> warden::Identity<'_> {
        warden::Identity {
            principal: Some(&self.principal),
            scopes: &self.scopes,
            groups: &self.groups,
        }
    }
}

/// A call's progress as `notifications/progress` with the client's token.
struct ProgressTo {
    token: Value,
    sink: Sink,
}

impl warden::ProgressSink for ProgressTo {
    fn report(&self, p: warden::Progress) {
        let mut params = json!({"progressToken": self.token, "progress": p.done});
        if let Some(total) = p.total {
            params["total"] = json!(total);
        }
        if !p.message.is_empty() {
            params["message"] = json!(p.message);
        }
        // Paced by the host; a stream too slow to take it loses it.
        self.sink
            .offer(&protocol::notification("notifications/progress", params));
    }
}

/// The listener of a call whose client asked for progress
/// (`_meta.progressToken`) on a channel that can carry it.
fn progress_of(params: &Value, caller: &Caller) -> Option<Arc<dyn warden::ProgressSink>> {
    if let Some(to_task) = &caller.task_progress {
        return Some(to_task.clone());
    }
    let token = params
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64())?;
    let sink = caller.notify.clone()?;
    Some(Arc::new(ProgressTo {
        token: token.clone(),
        sink,
    }))
}

pub(crate) fn server_info() -> Value {
    json!({"name": "warden", "title": "Warden", "version": env!("CARGO_PKG_VERSION")})
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": true}})
}

impl Shared {
    /// `initialize` (2025-11-25 and older): opens a session.
    pub(crate) fn initialize(
        &self,
        params: &Value,
        principal: &str,
    ) -> Result<(Arc<Session>, Value), RpcError> {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let Some(asked) = asked else {
            return Err(RpcError::invalid_params(
                "initialize needs `protocolVersion`",
            ));
        };
        // A version it does not know gets the newest handshake revision (the
        // client then decides); 2026-07-28 has no handshake.
        let version = HANDSHAKE
            .iter()
            .find(|v| **v == asked)
            .copied()
            .unwrap_or(HANDSHAKE[0]);
        let client = protocol::client_label(params.get("clientInfo"));
        let elicitation = params
            .pointer("/capabilities/elicitation")
            .is_some_and(|e| !e.is_null());
        let session = self
            .sessions
            .start(principal, version, client, elicitation)
            .map_err(|full| {
                let why = match full {
                    Full::Total => format!(
                        "too many open sessions ({}, serve.max-sessions); try again later",
                        self.settings.max_sessions
                    ),
                    Full::Principal => format!(
                        "this principal has {} sessions open (serve.max-sessions-per-principal): end one (DELETE) or try again later",
                        self.settings.sessions_per_principal()
                    ),
                };
                self.refusals
                    .note(Refusal::SessionCap, &format!("{principal}: {why}"));
                RpcError::new(protocol::BUSY, why)
            })?;
        let result = json!({
            "protocolVersion": version,
            "capabilities": capabilities(),
            "serverInfo": server_info(),
            "instructions": INSTRUCTIONS,
        });
        Ok((session, result))
    }

    /// Answers one request (anything but `initialize` and
    /// `subscriptions/listen`, which the transports handle).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        caller: &Caller,
    ) -> Result<Value, RpcError> {
        if !self.traced() {
            return self.answer(method, params, caller, None).await;
        }
        let host = self.host();
        let Some(telemetry) = host.telemetry() else {
            return self.answer(method, params, caller, None).await;
        };
        let parent = match params.get("_meta").and_then(Value::as_object) {
            Some(meta) if meta.contains_key("traceparent") => telemetry.parent(Some(meta), None),
            _ => caller.trace_parent.clone().unwrap_or_default(),
        };
        let modern = protocol::is_modern(&params);
        let request = warden::telemetry::McpRequest {
            method,
            id: caller.request_id.as_deref(),
            session: caller.session.as_ref().map(|s| s.id.as_str()),
            protocol_version: match (&caller.session, modern) {
                (_, true) => Some(MODERN),
                (Some(s), false) => Some(s.version.as_str()),
                (None, false) => None,
            },
            transport: if caller.transport == "stdio" {
                "pipe"
            } else {
                "tcp"
            },
        };
        let target = params
            .get("name")
            .and_then(Value::as_str)
            .filter(|_| method == "tools/call");
        let span = telemetry.mcp_span(&parent, request, target);
        let outcome = self
            .answer(method, params, caller, Some(span.context()))
            .await;
        let code;
        let error = match &outcome {
            Err(e) => {
                code = e.code.to_string();
                Some((code.as_str(), e.message.as_str()))
            }
            Ok(v) if v.get("isError") == Some(&Value::Bool(true)) => {
                Some(("tool_error", "the tool answered with an error"))
            }
            Ok(_) => None,
        };
        span.end(error);
        outcome
    }

    /// [`handle`](Self::handle) within the request's trace, if any.
    async fn answer(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        caller: &Caller,
        trace: Option<&warden::telemetry::Context>,
    ) -> Result<Value, RpcError> {
        if protocol::is_modern(&params) || method == "server/discover" {
            let envelope = protocol::envelope(&params)?;
            return self.modern(method, params, &envelope, caller, trace).await;
        }
        let Some(session) = &caller.session else {
            return Err(RpcError::new(
                protocol::INVALID_REQUEST,
                format!("no session: send `initialize` first, or a {MODERN} request with `_meta`"),
            ));
        };
        match method {
            "initialize" => Err(RpcError::new(
                protocol::INVALID_REQUEST,
                "this session is initialized already",
            )),
            "ping" => Ok(json!({})),
            "tools/list" => {
                check_cursor(&params)?;
                Ok(json!({"tools": tools::list(&self.host())}))
            }
            "tools/call" => {
                self.call_tool(&params, caller, Era::Legacy(session), trace)
                    .await
            }
            other => Err(RpcError::new(
                protocol::METHOD_NOT_FOUND,
                format!("Method not found: {other}"),
            )),
        }
    }

    async fn modern(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        envelope: &Envelope,
        caller: &Caller,
        trace: Option<&warden::telemetry::Context>,
    ) -> Result<Value, RpcError> {
        let mut result = match method {
            "server/discover" => {
                let mut supported = vec![MODERN];
                supported.extend(HANDSHAKE);
                let mut capabilities = capabilities();
                // Tasks are an extension of this revision only.
                capabilities["extensions"] = json!({ tasks::EXTENSION: {} });
                json!({
                    "supportedVersions": supported,
                    "capabilities": capabilities,
                    "instructions": INSTRUCTIONS,
                    "ttlMs": 0,
                    "cacheScope": self.cache_scope(),
                })
            }
            "tools/list" => {
                check_cursor(&params)?;
                json!({
                    "tools": tools::list(&self.host()),
                    "ttlMs": 0,
                    "cacheScope": self.cache_scope(),
                })
            }
            "tools/call" => {
                self.call_tool(&params, caller, Era::Modern(envelope), trace)
                    .await?
            }
            "tasks/get" | "tasks/update" | "tasks/cancel" => {
                self.task_request(method, &params, caller).await?
            }
            other => {
                return Err(RpcError::new(
                    protocol::METHOD_NOT_FOUND,
                    format!("Method not found: {other}"),
                ))
            }
        };
        if result.get("resultType").is_none() {
            result["resultType"] = json!("complete");
        }
        let meta = result
            .as_object_mut()
            .expect("results are objects")
            .entry("_meta")
            .or_insert_with(|| json!({}));
        meta[protocol::META_SERVER_INFO] = server_info();
        Ok(result)
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel`: for clients that
    /// declare the extension, about their principal's tasks only.
    async fn task_request(
        &self,
        method: &str,
        params: &Value,
        caller: &Caller,
    ) -> Result<Value, RpcError> {
        if !tasks::declared(params) {
            let mut e = RpcError::new(
                protocol::MISSING_CAPABILITY,
                "Missing required client capability",
            );
            e.data = Some(json!({"requiredCapabilities": {"extensions": {tasks::EXTENSION: {}}}}));
            return Err(e);
        }
        let id = params
            .get("taskId")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("taskId (a string) is required"))?;
        let principal = &caller.principal;
        match method {
            "tasks/get" => self.task(principal, id).await.map(|(view, _)| view),
            "tasks/cancel" => self.cancel_task(principal, id).await.map(|()| json!({})),
            _ => self.check_task(principal, id).await.map(|()| json!({})),
        }
    }

    /// The tool list is the same for every client; with authentication on,
    /// a shared cache must not hand it to someone without a token.
    fn cache_scope(&self) -> &'static str {
        if self.requires_auth() {
            "private"
        } else {
            "public"
        }
    }

    async fn call_tool(
        self: &Arc<Self>,
        params: &Value,
        caller: &Caller,
        era: Era<'_>,
        trace: Option<&warden::telemetry::Context>,
    ) -> Result<Value, RpcError> {
        let (name, args) = call_params(params)?;
        let host = self.host();
        let (key, client, handle) = call_names(caller, &era);
        let progress = progress_of(params, caller);
        let context = CallContext {
            session_key: Some(&key),
            client: Some(&client),
            account: Some(&caller.account),
            approver: None,
            progress: progress.as_ref(),
            identity: caller.identity(),
            trace,
            subject_token: caller.access_token.as_deref(),
        };
        let plan = host
            .plan(name, &context)
            .await
            .map_err(|_| RpcError::invalid_params(format!("Unknown tool: {name}")))?;
        let info = plan.capability().clone();
        let mut deferred = None;
        let plan = match plan.approval_rule(&host) {
            None => plan,
            Some(_) => {
                let ask = self.approver(params, caller, &era, name, &args).await?;
                if let Asker::Later(later) = &ask {
                    deferred = Some(later.clone());
                }
                plan.with_approver(ask.into_approver())
            }
        };
        let call_id = plan.call_id().to_string();
        let attesting = self
            .attestor
            .get()
            .map(|k| (k.clone(), call_id.clone(), args.clone()));
        let outcome = host.execute(plan, args).await;
        if let Some(round) = deferred.and_then(|later| later.asked()) {
            return Ok(self.input_required(&caller.principal, name, round));
        }
        let mut result = tools::result(&info, outcome);
        // The join key with this replica's audit log, for whoever called
        // (another Warden host notes it in its own).
        result["_meta"]["dev.warden/call"] = json!({"id": call_id, "replica": self.replica});
        if let Some((key, call_id, input)) = attesting {
            if result.get("isError") != Some(&Value::Bool(true)) {
                let a = warden::audit::signing::Attestation::sign(
                    &key,
                    &call_id,
                    name,
                    &input,
                    &result["structuredContent"],
                );
                result["_meta"]["dev.warden/attestation"] =
                    serde_json::to_value(a).unwrap_or_default();
            }
        }
        if let Some(h) = handle {
            result["_meta"]["dev.warden/session"] = json!(h);
        }
        Ok(result)
    }

    /// Who answers for the user when a call's rule asks for approval: the
    /// client's user through elicitation (2025-11-25), the answer a
    /// redeemed `requestState` carries, a round to the client's user
    /// (2026-07-28), or a refusal for a client that cannot ask.
    async fn approver(
        &self,
        params: &Value,
        caller: &Caller,
        era: &Era<'_>,
        name: &str,
        args: &Value,
    ) -> Result<Asker, RpcError> {
        let envelope =
            match era {
                Era::Legacy(s) => return Ok(Asker::Now(match (&caller.back, s.elicitation) {
                    (Some(back), true) => Arc::new(Elicit {
                        channel: back.clone(),
                        timeout: Duration::from_millis(self.settings.approval_timeout_ms),
                        tool: name.to_string(),
                    }),
                    (_, false) => cannot_ask("it did not declare the elicitation capability"),
                    (None, true) => cannot_ask(
                        "its request cannot carry a question (send `Accept: text/event-stream`)",
                    ),
                })),
                Era::Modern(e) => e,
            };
        match params.get("requestState") {
            Some(Value::String(state)) => {
                let checked = self.states.check(state, &caller.principal, name, args)?;
                let host = self.host();
                self.states
                    .use_up(checked, host.cluster().map(|c| &**c))
                    .await?;
                let response = params.pointer(&format!("/inputResponses/{}", approval::INPUT_KEY));
                let Some(response) = response else {
                    return Err(RpcError::invalid_params(format!(
                        "`inputResponses` lacks `{}`",
                        approval::INPUT_KEY
                    )));
                };
                Ok(Asker::Now(Arc::new(Decided(approval::answer(response)))))
            }
            Some(_) => Err(RpcError::invalid_params("`requestState` must be a string")),
            None if envelope
                .capabilities
                .get("elicitation")
                .is_some_and(|v| !v.is_null()) =>
            {
                Ok(Asker::Later(Arc::default()))
            }
            None => Ok(Asker::Now(cannot_ask(
                "it did not declare the elicitation capability",
            ))),
        }
    }

    /// The `input_required` result that asks a 2026-07-28 client's user
    /// about a deferred call, with the `requestState` it must send back.
    fn input_required(&self, principal: &str, name: &str, round: Asked) -> Value {
        let state = self.states.issue(principal, name, &round.input);
        json!({
            "resultType": "input_required",
            "inputRequests": {
                approval::INPUT_KEY: {
                    "method": "elicitation/create",
                    "params": approval::elicitation(name, &round.rule, &round.input),
                }
            },
            "requestState": state,
        })
    }
}

/// A call's approver, and whether it defers the question to a round with
/// the client.
enum Asker {
    Now(Arc<dyn Approver>),
    Later(Arc<AskLater>),
}

impl Asker {
    fn into_approver(self) -> Arc<dyn Approver> {
        match self {
            Asker::Now(a) => a,
            Asker::Later(a) => a,
        }
    }
}

/// `tools/call`'s name and arguments (none is `{}`).
fn call_params(params: &Value) -> Result<(&str, Value), RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err(RpcError::invalid_params(
            "tools/call needs `name`, a string",
        ));
    };
    let args = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => return Err(RpcError::invalid_params("`arguments` must be an object")),
    };
    Ok((name, args))
}

/// The session key a call runs under, the client its records name, and
/// the 2026-07-28 session handle it carries.
/// How audit records name the caller: its principal, and for an OAuth
/// token the issuer and scopes too.
fn caller_label(caller: &Caller) -> String {
    match &caller.issuer {
        None => caller.principal.clone(),
        Some(iss) if caller.groups.is_empty() => format!(
            "{} (issuer {iss}; scopes {})",
            caller.principal,
            caller.scopes.join(" ")
        ),
        Some(iss) => format!(
            "{} (issuer {iss}; scopes {}; groups {})",
            caller.principal,
            caller.scopes.join(" "),
            caller.groups.join(" ")
        ),
    }
}

fn call_names(caller: &Caller, era: &Era<'_>) -> (String, String, Option<String>) {
    let principal = caller.principal.as_str();
    let label = caller_label(caller);
    match era {
        Era::Legacy(s) => (
            s.pool_key(),
            format!(
                "{label} over {} ({}, session {})",
                caller.transport,
                s.client,
                &s.id[..8]
            ),
            None,
        ),
        Era::Modern(e) => {
            let who = protocol::client_label(e.client_info.as_ref());
            match &e.session {
                Some(h) => (
                    format!("mcp:{principal}:h:{h}"),
                    format!("{label} over {} ({who}, handle {h})", caller.transport),
                    Some(h.clone()),
                ),
                None => (
                    format!("mcp:{principal}"),
                    format!("{label} over {} ({who})", caller.transport),
                    None,
                ),
            }
        }
    }
}

enum Era<'a> {
    Legacy(&'a Arc<Session>),
    Modern(&'a Envelope),
}

fn cannot_ask(why: &str) -> Arc<dyn Approver> {
    Arc::new(Decided(Approval::Deny(format!(
        "it needs the user's approval and this MCP client cannot ask its user: {why}"
    ))))
}

/// The whole list fits one page: any cursor is one this server never gave.
fn check_cursor(params: &Value) -> Result<(), RpcError> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(RpcError::invalid_params(
            "unknown cursor (the tool list has one page)",
        )),
    }
}

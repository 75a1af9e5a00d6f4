//! Warden services as sources (`marketplace = true`): the marketplace a
//! Warden service publishes (`/.well-known/warden/marketplace.json`) is
//! read at discovery, its signature checked against `marketplace-key`
//! (RFC 9421 over the RFC 9530 digest) when one is configured, and each
//! capability in it registered as `mcp.<server>.<its id there>`, provider
//! `:RemoteRTFS`, with its schemas, metadata, permissions and effects. A
//! capability that asks for a session is served in a session of the
//! caller here, carried to the service as a handle of its own
//! (`_meta["dev.warden/session"]`), so each caller keeps its own state there.
//! Calls go to the service over MCP 2026-07-28, round-robin over its
//! `urls` (replicas of one service); a replica that does not answer is
//! left out for a back-off, then asked `/readyz` before it is used again,
//! and the call is tried on the next replica only when the capability says
//! it is read-only or idempotent (or when nothing was sent). A remote refusal
//! comes back typed: a denial stays a denial, bad input bad input.

use crate::registries::DnsSd;
use crate::sse;
use crate::wire::header_value;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use warden_sdk::http::{Request, StreamingResponse};
use warden_sdk::{Capability, Error};

/// Where a Warden service publishes its marketplace, beside `/mcp`.
pub(crate) const MARKETPLACE_PATH: &str = "/.well-known/warden/marketplace.json";
/// The revision spoken to Warden services.
const MODERN: &str = "2026-07-28";
/// How long a replica that did not answer is left out, by default.
pub(crate) const BACK_OFF: Duration = Duration::from_secs(5);
/// How long a replica that was left out has to answer `/readyz`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The label of the signature this client checks.
const LABEL: &str = "warden";

/// What `tools/call` to one replica came to.
enum Outcome {
    /// The service answered (a result, a tool error or a JSON-RPC error).
    Answered(Result<Value, Error>),
    /// No answer: unreachable, or a 502/503/504 in front of it.
    Silent(String),
}

/// How to reach a service: credentials, the marketplace's key, timeouts.
#[derive(Default)]
pub(crate) struct Reach {
    pub auth_secret: Option<String>,
    /// The Ed25519 public key its marketplace must be signed with.
    pub key: Option<ed25519_compact::PublicKey>,
    pub timeout: Option<Duration>,
    pub wasi_http: bool,
    pub back_off: Duration,
}

impl Reach {
    /// The settings under `field` (`servers.NAME` or `discovery`): the
    /// key's PEM parsed (an error names `field`), the defaults filled in.
    pub(crate) fn configured(
        field: &str,
        auth_secret: &Option<String>,
        key_pem: &Option<String>,
        timeout_ms: Option<u64>,
        back_off_ms: Option<u64>,
        wasi_http: bool,
    ) -> Result<Reach, Error> {
        let key = key_pem
            .as_deref()
            .map(|pem| {
                ed25519_compact::PublicKey::from_pem(pem).map_err(|e| {
                    Error::invalid_input(format!(
                        "{field}.marketplace-key: not an Ed25519 public key in PEM ({e})"
                    ))
                })
            })
            .transpose()?;
        Ok(Reach {
            auth_secret: auth_secret.clone(),
            key,
            timeout: timeout_ms.map(Duration::from_millis),
            wasi_http,
            back_off: back_off_ms.map_or(BACK_OFF, Duration::from_millis),
        })
    }
}

/// One Warden service and how its replicas are doing in this instance.
pub(crate) struct Service {
    name: String,
    urls: Vec<String>,
    auth_secret: Option<String>,
    key: Option<ed25519_compact::PublicKey>,
    timeout: Option<Duration>,
    wasi_http: bool,
    /// How long a replica that did not answer is left out.
    back_off: Duration,
    /// The replica the next call starts at.
    next: usize,
    /// Until when (monotonic ns) each replica is left out.
    down_until: Vec<u64>,
    /// Replicas that were left out: asked `/readyz` before they are used
    /// again.
    suspect: Vec<bool>,
    /// Per id there: what a call needs to know of it, once read in this
    /// instance.
    known: Option<BTreeMap<String, Known>>,
    /// Each replica's SRV priority (0 for configured URLs): lower first.
    priority: Vec<u16>,
    /// Where the replicas come from when SRV records list them.
    dns: Option<DnsSd>,
    /// The last marketplace read (checked) and its `ETag`: asked for with
    /// `If-None-Match`, and used again on a 304.
    last_read: Option<(String, Value)>,
}

/// What a call needs to know of a capability of the service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Known {
    /// It may be tried on another replica (read-only or idempotent).
    retry_safe: bool,
    /// Its output is not a map: the service wraps it as `{"result": ...}`.
    wrapped: bool,
}

impl Service {
    /// The service `name` at `urls`, reached as `how` says.
    pub(crate) fn new(name: &str, urls: Vec<String>, how: Reach) -> Result<Service, Error> {
        if urls.is_empty() {
            return Err(Error::invalid_input(format!(
                "servers.{name}: give `url` or `urls`"
            )));
        }
        for url in &urls {
            origin(url).ok_or_else(|| {
                Error::invalid_input(format!(
                    "servers.{name}.urls: `{url}` is not an http(s) URL"
                ))
            })?;
        }
        let mut service = Service::unresolved(name, how);
        service.set_replicas(urls.into_iter().map(|u| (u, 0)).collect());
        Ok(service)
    }

    /// The service `name` whose replicas are the targets of the SRV records
    /// `dns` names, looked up when first needed.
    pub(crate) fn by_dns(name: &str, dns: DnsSd, how: Reach) -> Service {
        let mut service = Service::unresolved(name, how);
        service.dns = Some(dns);
        service
    }

    fn unresolved(name: &str, how: Reach) -> Service {
        Service {
            name: name.to_string(),
            down_until: Vec::new(),
            suspect: Vec::new(),
            priority: Vec::new(),
            urls: Vec::new(),
            auth_secret: how.auth_secret,
            key: how.key,
            timeout: how.timeout,
            wasi_http: how.wasi_http,
            back_off: how.back_off,
            next: 0,
            known: None,
            dns: None,
            last_read: None,
        }
    }

    /// Replaces the replicas (URL, priority), keeping what is known of the
    /// health of those that stay.
    fn set_replicas(&mut self, replicas: Vec<(String, u16)>) {
        let mut down_until = Vec::with_capacity(replicas.len());
        let mut suspect = Vec::with_capacity(replicas.len());
        for (url, _) in &replicas {
            let was = self.urls.iter().position(|u| u == url);
            down_until.push(was.map_or(0, |i| self.down_until[i]));
            suspect.push(was.is_some_and(|i| self.suspect[i]));
        }
        self.urls = replicas.iter().map(|(u, _)| u.clone()).collect();
        self.priority = replicas.iter().map(|(_, p)| *p).collect();
        self.down_until = down_until;
        self.suspect = suspect;
    }

    /// Looks the replicas up again when SRV records list them and they are
    /// due (`fresh`: at discovery, always). A failed lookup keeps the
    /// replicas found before, if any.
    fn resolve(&mut self, fresh: bool) -> Result<(), Error> {
        let Some(dns) = self.dns.as_mut().filter(|d| d.due(fresh)) else {
            return Ok(());
        };
        let found = dns.look_up().and_then(|r| match r.is_empty() {
            true => Err(Error::not_found(format!("{} lists no targets", dns.name))),
            false => Ok(r),
        });
        match found {
            Ok(replicas) => {
                self.set_replicas(replicas);
                Ok(())
            }
            Err(e) if !self.urls.is_empty() => {
                warden_sdk::log::warn(format!(
                    "Warden service `{}`: looking up its replicas failed ({e}); the last found are used",
                    self.name
                ));
                Ok(())
            }
            Err(e) => Err(Error::Unavailable(format!(
                "Warden service `{}`: no replicas: {e}",
                self.name
            ))),
        }
    }

    /// Whether `url` is one of this service's replicas.
    pub(crate) fn serves(&self, url: &str) -> bool {
        self.urls.iter().any(|u| u == url)
    }

    /// The replicas in the order to try: from the next one round, those
    /// not left out first, then by SRV priority (lower first).
    fn order(&mut self) -> Vec<usize> {
        let n = self.urls.len();
        let start = self.next % n.max(1);
        self.next = self.next.wrapping_add(1);
        let now = warden_sdk::time::monotonic_nanos();
        let mut order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        order.sort_by_key(|i| (self.down_until[*i] > now, self.priority[*i]));
        order
    }

    /// Whether replica `i` may be sent a request: one that was left out is
    /// asked `/readyz` first (no token; a 503 while it drains or stops, or
    /// no answer, leaves it out again). Nothing was sent when it is not, so
    /// any call may go on to the next replica.
    fn ready(&mut self, i: usize) -> bool {
        if !self.suspect[i] {
            return true;
        }
        let url = format!("{}/readyz", origin(&self.urls[i]).expect("checked"));
        let mut req = Request::get(&url).timeout(PROBE_TIMEOUT);
        if self.wasi_http {
            req = req.via_wasi_http();
        }
        match req.send() {
            Ok(r) if r.status == 200 => {
                self.suspect[i] = false;
                true
            }
            Ok(r) => {
                self.left_out(i, &format!("/readyz answered {}", r.status));
                false
            }
            Err(e) => {
                self.left_out(i, &format!("/readyz: {e}"));
                false
            }
        }
    }

    fn left_out(&mut self, i: usize, why: &str) {
        let until = warden_sdk::time::monotonic_nanos() + self.back_off.as_nanos() as u64;
        self.down_until[i] = until;
        self.suspect[i] = true;
        warden_sdk::log::warn(format!(
            "Warden service `{}`: replica {} did not answer ({why}); left out for {} ms",
            self.name,
            self.urls[i],
            self.back_off.as_millis()
        ));
    }

    fn base(&self, mut req: Request) -> Request {
        if let Some(secret) = &self.auth_secret {
            req = req.header("authorization", format!("Bearer {{{{secret:{secret}}}}}"));
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        if self.wasi_http {
            req = req.via_wasi_http();
        }
        req
    }

    /// The published marketplace, from the first replica that answers,
    /// its signature checked: the snapshot and the replica's MCP URL. A
    /// marketplace read before is asked for with `If-None-Match` and, when
    /// it did not change (304), used again as it was checked.
    fn snapshot(&mut self) -> Result<(Value, String), Error> {
        let mut last = String::new();
        for i in self.order() {
            if !self.ready(i) {
                last = format!("{} is not ready", self.urls[i]);
                continue;
            }
            let url = format!(
                "{}{MARKETPLACE_PATH}",
                origin(&self.urls[i]).expect("checked")
            );
            let mut req = self.base(Request::get(&url));
            if let Some((etag, _)) = &self.last_read {
                req = req.header("if-none-match", etag.clone());
            }
            let resp = match req.send() {
                Ok(r) if matches!(r.status, 502..=504) => {
                    last = format!("{} answered {}", self.urls[i], r.status);
                    self.left_out(i, &last);
                    continue;
                }
                Ok(r) => r,
                Err(Error::Denied(m)) => return Err(Error::Denied(m)),
                Err(e) => {
                    last = e.to_string();
                    self.left_out(i, &last);
                    continue;
                }
            };
            if resp.status == 401 || resp.status == 403 {
                return Err(Error::denied(format!(
                    "Warden service `{}` refused our credentials for its marketplace ({}): check `auth-secret`",
                    self.name, resp.status
                )));
            }
            if resp.status == 304 {
                if let Some((_, snapshot)) = &self.last_read {
                    return Ok((snapshot.clone(), self.urls[i].clone()));
                }
            }
            if resp.status != 200 {
                return Err(Error::upstream(format!(
                    "Warden service `{}`: {url} answered {}",
                    self.name, resp.status
                )));
            }
            if let Some(key) = &self.key {
                verify(&resp, key).map_err(|why| {
                    Error::denied(format!(
                        "Warden service `{}`: the marketplace from {url} is refused: {why}",
                        self.name
                    ))
                })?;
            }
            let snapshot: Value = resp.json()?;
            if snapshot.get("type").and_then(Value::as_str)
                != Some("rtfs/capabilities/marketplace-snapshot")
            {
                return Err(Error::upstream(format!(
                    "Warden service `{}`: {url} is not a marketplace snapshot",
                    self.name
                )));
            }
            self.last_read = resp
                .header("etag")
                .map(|etag| (etag.to_string(), snapshot.clone()));
            return Ok((snapshot, self.urls[i].clone()));
        }
        Err(Error::Unavailable(format!(
            "Warden service `{}`: no replica answered ({last})",
            self.name
        )))
    }

    /// Discovery: the service's capabilities, as this plugin serves them.
    pub(crate) fn capabilities(&mut self) -> Result<Vec<Capability>, Error> {
        self.resolve(true)?;
        let (snapshot, url) = self.snapshot()?;
        let entries = snapshot
            .get("capabilities")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.known = Some(knowledge(&entries));
        Ok(entries
            .iter()
            .filter_map(|e| capability(&self.name, &url, e))
            .collect())
    }

    /// Calls `id` (its id on the service) with `input`, in the service's
    /// session `handle` when given (`_meta["dev.warden/session"]`).
    pub(crate) fn call(
        &mut self,
        id: &str,
        input: Value,
        handle: Option<&str>,
    ) -> Result<Value, Error> {
        self.resolve(false)?;
        if self.known.is_none() {
            // Read once per instance; unread, nothing is retried.
            let entries = self
                .snapshot()
                .ok()
                .and_then(|(s, _)| s.get("capabilities").and_then(Value::as_array).cloned());
            self.known = Some(knowledge(&entries.unwrap_or_default()));
        }
        let known = self
            .known
            .as_ref()
            .and_then(|m| m.get(id))
            .copied()
            .unwrap_or_default();
        let mut silent = Vec::new();
        for i in self.order() {
            if !self.ready(i) {
                silent.push(format!("{}: not ready", self.urls[i]));
                continue;
            }
            match self.call_at(i, id, &input, handle) {
                Outcome::Answered(result) => return result.map(|out| unwrap(out, known)),
                Outcome::Silent(why) => {
                    self.left_out(i, &why);
                    silent.push(format!("{}: {why}", self.urls[i]));
                    if !known.retry_safe {
                        return Err(Error::Unavailable(format!(
                            "Warden service `{}` did not answer ({why}); `{id}` is not marked read-only or idempotent, so it is not tried on another replica",
                            self.name
                        )));
                    }
                }
            }
        }
        Err(Error::Unavailable(format!(
            "Warden service `{}`: no replica answered: {}",
            self.name,
            silent.join("; ")
        )))
    }

    /// One `tools/call` to replica `i`.
    fn call_at(&self, i: usize, id: &str, input: &Value, handle: Option<&str>) -> Outcome {
        let mut body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": id, "arguments": input, "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "warden-mcp", "version": env!("CARGO_PKG_VERSION")},
        }}});
        if let Some(h) = handle {
            body["params"]["_meta"]["dev.warden/session"] = json!(h);
        }
        let req = self
            .base(Request::post(&self.urls[i]))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", header_value(id))
            .body(body.to_string());
        let mut resp = match req.send_streaming() {
            Ok(r) => r,
            Err(Error::Denied(m)) => return Outcome::Answered(Err(Error::Denied(m))),
            Err(e) => return Outcome::Silent(e.to_string()),
        };
        if matches!(resp.status, 502..=504) {
            return Outcome::Silent(format!("HTTP {}", resp.status));
        }
        Outcome::Answered(self.answer(&mut resp, id))
    }

    /// Notes in the audit log which call of which replica answered (what
    /// the service put in `_meta["dev.warden/call"]`), so that its audit
    /// log and this host's can be joined.
    fn note_call(&self, result: &Value) {
        let Some(call) = result.pointer("/_meta/dev.warden~1call") else {
            return;
        };
        let text = |k: &str| call.get(k).and_then(Value::as_str).unwrap_or("?");
        warden_sdk::log::audit_note(
            "remote-call",
            format!(
                "Warden service `{}` answered: replica {}, call {}",
                self.name,
                text("replica"),
                text("id")
            ),
        );
    }

    /// The call's answer, typed.
    fn answer(&self, resp: &mut StreamingResponse, id: &str) -> Result<Value, Error> {
        let name = &self.name;
        let message = read_message(resp)
            .map_err(|why| Error::upstream(format!("Warden service `{name}`: `{id}`: {why}")))?;
        if let Some(err) = message.get("error") {
            let text = err.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(match resp.status {
                401 | 403 => Error::denied(format!(
                    "Warden service `{name}` refused our credentials: {text}"
                )),
                404 if text.contains("Unknown tool") => {
                    Error::not_found(format!("Warden service `{name}`: {text}"))
                }
                _ => Error::upstream(format!("Warden service `{name}`: `{id}`: {text}")),
            });
        }
        let result = message.get("result").cloned().unwrap_or(Value::Null);
        self.note_call(&result);
        if result.get("isError").and_then(Value::as_bool) != Some(true) {
            return Ok(crate::output(result));
        }
        let text = crate::wire::content_text(&result);
        let kind = result
            .pointer("/_meta/dev.warden~1error")
            .and_then(Value::as_str)
            .unwrap_or("");
        let said = format!("Warden service `{name}`: {text}");
        Err(match kind {
            "denied" => Error::denied(said),
            "invalid-input" | "invalid-output" => Error::invalid_input(said),
            "rate-limited" | "busy" | "limit-exceeded" => {
                Error::Unavailable(format!("limited there: {said}"))
            }
            "unknown-capability" | "not-served" => Error::not_found(said),
            _ => Error::upstream(said),
        })
    }
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let host_len = rest.find('/').unwrap_or(rest.len());
    if host_len == 0 {
        return None;
    }
    Some(&url[..url.len() - rest.len() + host_len])
}

/// The JSON-RPC message of a response: JSON, or the last of an SSE stream.
fn read_message(resp: &mut StreamingResponse) -> Result<Value, String> {
    let events = resp
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if events {
        return sse::read_sse_response(resp, 1).map_err(|f| f.into_error().to_string());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.next_chunk().map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| format!("HTTP {}: not JSON-RPC", resp.status))
}

/// Checks the marketplace's RFC 9421 signature (`warden`, over
/// `content-digest` and `content-type`) and its RFC 9530 digest.
fn verify(
    resp: &warden_sdk::http::Response,
    key: &ed25519_compact::PublicKey,
) -> Result<(), String> {
    use ct_codecs::{Base64, Decoder, Encoder};
    use sha2::Digest as _;
    let header = |name: &str| {
        resp.header(name)
            .map(str::trim)
            .ok_or_else(|| format!("it has no `{name}` header (is the service signing it?)"))
    };
    let digest =
        Base64::encode_to_string(sha2::Sha256::digest(&resp.body)).map_err(|e| e.to_string())?;
    if header("content-digest")? != format!("sha-256=:{digest}:") {
        return Err("its body does not match its Content-Digest".into());
    }
    let input = header("signature-input")?;
    let params = input
        .strip_prefix(&format!("{LABEL}="))
        .filter(|p| p.starts_with("(\"content-digest\" \"content-type\");"))
        .ok_or("its Signature-Input does not cover content-digest and content-type")?;
    let signature = header("signature")?
        .strip_prefix(&format!("{LABEL}=:"))
        .and_then(|s| s.strip_suffix(':'))
        .ok_or("its Signature is not `warden=:...:`")?;
    let signature = Base64::decode_to_vec(signature, None).map_err(|_| "bad base64")?;
    let signature = ed25519_compact::Signature::from_slice(&signature)
        .map_err(|_| "not an Ed25519 signature")?;
    let base = format!(
        "\"content-digest\": {}\n\"content-type\": {}\n\"@signature-params\": {params}",
        header("content-digest")?,
        header("content-type")?
    );
    key.verify(base.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with `marketplace-key`".to_string())
}

/// Per id: whether a call may go to another replica after one failed
/// before answering (metadata says read-only or idempotent), and whether
/// its output comes wrapped (its output schema is not a map).
fn knowledge(entries: &[Value]) -> BTreeMap<String, Known> {
    entries
        .iter()
        .filter_map(|e| {
            let id = e.get("id")?.as_str()?.to_string();
            let meta = e.get("metadata").cloned().unwrap_or(Value::Null);
            let schema = e
                .get("output-schema")
                .and_then(Value::as_str)
                .unwrap_or(":any");
            let schema = schema.trim();
            let known = Known {
                retry_safe: hint(&meta, "read-only-hint") || hint(&meta, "idempotent-hint"),
                wrapped: !schema.starts_with("[:map"),
            };
            Some((id, known))
        })
        .collect()
}

/// The capability's own output: what a service wrapped as
/// `{"result": ...}` (an output that is not a map), unwrapped.
fn unwrap(out: Value, known: Known) -> Value {
    match out {
        Value::Object(mut map) if known.wrapped && map.len() == 1 && map.contains_key("result") => {
            map.remove("result").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Whether `name` (or its `_` spelling) is `true` anywhere in `meta`.
fn hint(meta: &Value, name: &str) -> bool {
    match meta {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k.replace('_', "-") == name && v == &Value::Bool(true)) || hint(v, name)
        }),
        _ => false,
    }
}

/// The service's session handle for the caller's session `key`: the same
/// for every call of that session (on any instance or replica of this
/// host), another for each other session, and not the key itself.
pub(crate) fn session_handle(key: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("warden-edge-session:{key}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// One published capability, as served here.
fn capability(server: &str, url: &str, entry: &Value) -> Option<Capability> {
    let text = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
    let id = text("id");
    if id.is_empty() {
        return None;
    }
    let strings = |k: &str| -> Vec<String> {
        entry
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let name = if text("name").is_empty() {
        id
    } else {
        text("name")
    };
    let mut cap = Capability::new(format!("mcp.{server}.{id}"), name)
        .describe(text("description"))
        .version(if text("version").is_empty() {
            "0.0.0"
        } else {
            text("version")
        })
        .input(if text("input-schema").is_empty() {
            ":any"
        } else {
            text("input-schema")
        })
        .output(if text("output-schema").is_empty() {
            ":any"
        } else {
            text("output-schema")
        })
        .metadata(entry.get("metadata").cloned().unwrap_or(json!({})))
        .provider(
            "RemoteRTFS",
            json!({"module-url": url, "remote-id": id, "server": server}),
        );
    for p in strings("permissions") {
        cap = cap.permission(p);
    }
    for e in strings("effects") {
        cap = cap.effect(e);
    }
    Some(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_codecs::{Base64, Encoder};
    use sha2::Digest as _;

    /// A marketplace response signed as `warden serve` signs one.
    fn signed(body: &str, key: &ed25519_compact::KeyPair) -> warden_sdk::http::Response {
        let digest = format!(
            "sha-256=:{}:",
            Base64::encode_to_string(sha2::Sha256::digest(body.as_bytes())).unwrap()
        );
        let params = "(\"content-digest\" \"content-type\");created=1;keyid=\"k\";alg=\"ed25519\"";
        let base = format!(
            "\"content-digest\": {digest}\n\"content-type\": application/json\n\"@signature-params\": {params}"
        );
        let signature = Base64::encode_to_string(key.sk.sign(base.as_bytes(), None)).unwrap();
        warden_sdk::http::Response {
            status: 200,
            headers: warden_sdk::http::Headers::from_pairs([
                ("content-type", "application/json".to_string()),
                ("content-digest", digest),
                ("signature-input", format!("warden={params}")),
                ("signature", format!("warden=:{signature}:")),
            ]),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_signed_marketplace_verifies_and_any_change_does_not() {
        let key = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
        let other = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([8; 32]));
        let body = r#"{"type":"rtfs/capabilities/marketplace-snapshot","capabilities":[]}"#;
        let good = signed(body, &key);
        assert_eq!(verify(&good, &key.pk), Ok(()));
        assert!(verify(&good, &other.pk)
            .unwrap_err()
            .contains("does not verify"));
        let mut tampered = signed(body, &key);
        tampered.body = body.replace("[]", "[{}]").into_bytes();
        assert!(verify(&tampered, &key.pk)
            .unwrap_err()
            .contains("Content-Digest"));
        // Headers the signature covers, changed: refused.
        let mut retyped = signed(body, &key);
        let pairs: Vec<(String, String)> = retyped
            .headers
            .iter()
            .map(|(k, v)| {
                let v = if k == "content-type" { "text/plain" } else { v };
                (k.to_string(), v.to_string())
            })
            .collect();
        retyped.headers = warden_sdk::http::Headers::from_pairs(pairs);
        assert!(verify(&retyped, &key.pk).is_err());
        // Unsigned: refused, saying so.
        let mut bare = signed(body, &key);
        bare.headers =
            warden_sdk::http::Headers::from_pairs([("content-type", "application/json")]);
        assert!(verify(&bare, &key.pk)
            .unwrap_err()
            .contains("no `content-digest`"));
    }

    #[test]
    fn origins_hints_and_sessions() {
        assert_eq!(origin("http://a:1/mcp"), Some("http://a:1"));
        assert_eq!(origin("https://a.example"), Some("https://a.example"));
        assert_eq!(origin("ftp://a/mcp"), None);
        assert_eq!(origin("http:///mcp"), None);
        let meta = json!({"mcp": {"annotations": {"read-only-hint": true}}});
        assert!(hint(&meta, "read-only-hint"));
        assert!(!hint(
            &json!({"x": {"read-only-hint": false}}),
            "read-only-hint"
        ));
        assert!(hint(&json!({"idempotent_hint": true}), "idempotent-hint"));
        let known = knowledge(&[
            json!({"id": "n", "output-schema": ":int", "metadata": {"x": {"idempotent-hint": true}}}),
            json!({"id": "m", "output-schema": "[:map [:result :int]]"}),
        ]);
        assert_eq!(
            known["n"],
            Known {
                retry_safe: true,
                wrapped: true
            }
        );
        assert_eq!(
            known["m"],
            Known {
                retry_safe: false,
                wrapped: false
            }
        );
        assert_eq!(unwrap(json!({"result": 5}), known["n"]), json!(5));
        assert_eq!(
            unwrap(json!({"result": 5}), known["m"]),
            json!({"result": 5})
        );
        let (a, b) = (session_handle("alice/1"), session_handle("bob/1"));
        assert_ne!(a, b);
        assert_eq!(a, session_handle("alice/1"));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("alice"));
    }
}

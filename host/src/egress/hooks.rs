//! The decision sequence of one request: per-call cap, `Host` header,
//! grant, secret substitution, resolution and address checks, then the
//! request on a pooled or new connection; each attempt logged and audited.

use super::*;
use crate::audit::{Effect, Outcome};
use crate::governance::Auditor;
use crate::limits::ResolvedLimits;
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// The `wasi:http` hooks of one instance: its plugin's egress plus the
/// budget of the current call.
pub(crate) struct EgressHooks {
    egress: Arc<Egress>,
    auditor: Auditor,
    limits: ResolvedLimits,
    requests: u32,
    bytes: Arc<AtomicU64>,
}

impl EgressHooks {
    pub(crate) fn new(egress: Arc<Egress>, limits: ResolvedLimits, auditor: Auditor) -> Self {
        EgressHooks {
            egress,
            auditor,
            limits,
            requests: 0,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts a new call's budget.
    pub(crate) fn reset(&mut self) {
        self.requests = 0;
        // A body still held from the last call keeps counting into its own
        // budget; only then is a new counter needed.
        if Arc::strong_count(&self.bytes) == 1 {
            self.bytes.store(0, Ordering::Relaxed);
        } else {
            self.bytes = Arc::new(AtomicU64::new(0));
        }
    }
}

/// One egress attempt, as logged.
struct Attempt {
    auditor: Auditor,
    plugin: Arc<str>,
    method: http::Method,
    destination: String,
    started: Instant,
}

impl Attempt {
    /// Audits a denial; the auditor logs the warning, within the call's
    /// log budget.
    fn deny(&self, reason: &str) {
        self.auditor.record(
            Effect::Egress,
            &format!("{} {}", self.method, self.destination),
            Outcome::Deny,
            reason,
        );
    }
    /// Audits the decision to connect (after resolution); `false` if it
    /// could not be recorded.
    fn allowed(&self, reason: &str) -> bool {
        self.auditor.record(
            Effect::Egress,
            &format!("{} {}", self.method, self.destination),
            Outcome::Allow,
            reason,
        )
    }
    /// Audits (as `error`) and logs a request that was allowed and failed:
    /// the name did not resolve, the connection or the exchange failed.
    fn failed(&self, reason: &str) {
        self.auditor.record(
            Effect::Egress,
            &format!("{} {}", self.method, self.destination),
            Outcome::Error,
            reason,
        );
        tracing::info!(
            target: "warden::egress",
            plugin = %self.plugin, method = %self.method, destination = %self.destination,
            decision = "allow", %reason, duration_ms = self.started.elapsed().as_millis() as u64,
            "egress failed"
        );
    }
    fn done(&self, status: u16, bytes_in: u64, bytes_out: u64, outcome: &str) {
        tracing::info!(
            target: "warden::egress",
            plugin = %self.plugin, method = %self.method, destination = %self.destination,
            decision = "allow", status, bytes_in, bytes_out, outcome,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "egress"
        );
    }
}

/// Why a request did not get a response.
pub(crate) enum Failure {
    /// Policy said no (the reason names the rule; never a secret value).
    Denied(String),
    /// The network or the peer failed.
    Failed(HttpError, String),
}

/// A request body: a stream from `wasi:http`, or whole bytes (which can be
/// sent again when a kept-alive connection turns out to be closed).
pub(crate) enum OutBody {
    Stream(WasiBody),
    Full(Bytes),
}

/// Timeouts asked for by the guest; each is capped by the plugin's
/// `request-timeout-ms`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Timeouts {
    pub(crate) connect: Option<Duration>,
    pub(crate) first_byte: Option<Duration>,
}

/// `scheme://host:port`, as audit records and errors name a destination.
/// The port written in an authority (`user@host:port`, `[v6]:port`), as
/// text: `http::Uri::port` drops one that does not fit 16 bits.
fn explicit_port(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match host_port.rfind(']') {
        Some(i) => &host_port[i + 1..],
        None => host_port,
    };
    // An empty port (`host:`) means the scheme's default.
    after_host
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

fn destination_text(scheme: &str, host: &str, port: u16) -> String {
    let mut out = String::with_capacity(scheme.len() + host.len() + 9);
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    out.push(':');
    out.push_str(itoa::Buffer::new().format(port));
    out
}

/// Request headers a plugin granted secrets may not send: each could make
/// a server answer in a form redaction cannot see through (a range of a
/// stored value, a transfer coding).
const SHAPING_HEADERS: [http::header::HeaderName; 3] = [
    http::header::RANGE,
    http::header::IF_RANGE,
    http::header::TE,
];

/// Why a request of a plugin granted secrets is refused for its shape.
fn shape_denial(headers: &http::HeaderMap) -> Option<String> {
    let set = SHAPING_HEADERS.iter().find(|h| headers.contains_key(*h))?;
    Some(format!(
        "a plugin granted secrets may not set `{set}`: every response it receives is redacted of them, and a partial or transfer-coded one could carry a value past redaction"
    ))
}

/// Why a response cannot be redacted: a content or transfer coding other
/// than `identity` and `chunked` (the host asked for `identity`).
fn undecodable(headers: &http::HeaderMap) -> Option<String> {
    let codings = |name: http::header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    };
    let content = codings(http::header::CONTENT_ENCODING);
    if let Some(c) = content.iter().find(|c| *c != "identity") {
        return Some(format!(
            "the response is encoded (`content-encoding: {c}`) after `accept-encoding: identity`: it cannot be checked for secrets"
        ));
    }
    let transfer = codings(http::header::TRANSFER_ENCODING);
    let c = transfer
        .iter()
        .find(|c| *c != "chunked" && *c != "identity")?;
    Some(format!(
        "the response has transfer coding `{c}`: it cannot be checked for secrets"
    ))
}

type Dispatch = Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, Failure>> + Send>>;

impl EgressHooks {
    /// The plugin's egress (its policy, resolution and connections).
    pub(crate) fn egress(&self) -> &Arc<Egress> {
        &self.egress
    }

    /// The plugin's limits for this instance.
    pub(crate) fn limits(&self) -> ResolvedLimits {
        self.limits
    }

    /// Decides a request and, if allowed, returns the future that sends it.
    /// The one path for `wasi:http` and `warden:provider/http-client`.
    pub(crate) fn dispatch(
        &mut self,
        mut head: http::request::Parts,
        body: OutBody,
        timeouts: Timeouts,
    ) -> Dispatch {
        let uri = head.uri.clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        // One form of the name for policy, pins, secrets and the pool: a
        // trailing dot (`api.internal.`) names the same host.
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let https = scheme == "https";
        let default_port = if https { 443 } else { 80 };
        // A port that does not fit 16 bits is refused, never replaced by the
        // scheme's default.
        let port_text = uri.authority().and_then(|a| explicit_port(a.as_str()));
        let port = port_text.map(|p| p.parse::<u16>());
        let attempt = Attempt {
            auditor: self.auditor.clone(),
            plugin: self.egress.plugin.clone(),
            method: head.method.clone(),
            destination: match &port {
                Some(Err(_)) => format!("{uri}"),
                Some(Ok(p)) => destination_text(&scheme, &host, *p),
                None => destination_text(&scheme, &host, default_port),
            },
            started: Instant::now(),
        };
        let deny = |attempt: Attempt, reason: String| -> Dispatch {
            attempt.deny(&reason);
            Box::pin(async move { Err(Failure::Denied(reason)) })
        };
        let port = match port {
            None => default_port,
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                let reason = format!(
                    "`{}` is not a valid port (0-65535)",
                    port_text.unwrap_or_default()
                );
                return deny(attempt, reason);
            }
        };

        self.requests += 1;
        if self.requests > self.limits.max_requests {
            let reason = format!(
                "more than {} requests in one call (limits.max-requests)",
                self.limits.max_requests
            );
            return deny(attempt, reason);
        }
        if scheme != "http" && scheme != "https" {
            return deny(attempt, format!("scheme `{scheme}` is not HTTP"));
        }
        // The authority without userinfo: what a Host header may say.
        let expected = uri
            .authority()
            .map(|a| {
                let a = a.as_str();
                a.rsplit_once('@')
                    .map_or(a, |(_, h)| h)
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if head.headers.get_all(HOST).iter().nth(1).is_some() {
            return deny(attempt, "more than one Host header".into());
        }
        if let Some(h) = head.headers.get(HOST) {
            let given = h.to_str().unwrap_or("").to_ascii_lowercase();
            if given != expected && given.trim_end_matches('.') != host {
                return deny(
                    attempt,
                    format!("Host header `{given}` does not match the destination `{expected}`"),
                );
            }
        }
        if let Some(reason) = self.egress.policy.egress_denial(&scheme, &host, port) {
            return deny(attempt, reason);
        }
        let declared_length = match &body {
            OutBody::Full(b) => b.len() as u64,
            OutBody::Stream(_) => head
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0),
        };
        if self
            .bytes
            .load(Ordering::Relaxed)
            .saturating_add(declared_length)
            > self.limits.max_egress_bytes
        {
            let reason = format!(
                "the request body would exceed limits.max-egress-bytes ({})",
                self.limits.max_egress_bytes
            );
            return deny(attempt, reason);
        }
        // A plugin granted secrets gets every response redacted of their
        // values: the host owns what decides the response's shape.
        if self.egress.redaction.is_some() {
            if let Some(reason) = shape_denial(&head.headers) {
                return deny(attempt, reason);
            }
            head.headers.insert(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        if let Err(reason) = self.substitute_secrets(&mut head, &attempt, &scheme, &host, port) {
            return deny(attempt, reason);
        }
        // The allow is recorded where the destination is decided: after
        // name resolution, for the address actually connected to.
        if !head.headers.contains_key(HOST) {
            // Never the URL's userinfo.
            if let Ok(v) = HeaderValue::from_str(&expected) {
                head.headers.insert(HOST, v);
            }
        }
        // Origin form on the wire; the connection already names the host.
        let mut origin = uri.into_parts();
        origin.scheme = None;
        origin.authority = None;
        if origin.path_and_query.is_none() {
            origin.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        head.uri = match http::Uri::from_parts(origin) {
            Ok(u) => u,
            Err(_) => {
                return Box::pin(async move {
                    attempt.failed("invalid path");
                    Err(Failure::Failed(
                        HttpError::HttpRequestUriInvalid,
                        "invalid path".into(),
                    ))
                })
            }
        };

        let egress = self.egress.clone();
        let redaction = egress.redaction.clone();
        let total = self.bytes.clone();
        let limits = self.limits;
        let dest = Destination { https, host, port };
        Box::pin(async move {
            let budget = Duration::from_millis(limits.request_timeout_ms);
            let connect_timeout = timeouts.connect.map_or(budget, |t| t.min(budget));
            let first_byte_timeout = timeouts.first_byte.map_or(budget, |t| t.min(budget));
            let sent = Arc::new(AtomicU64::new(0));
            let counted = |b: WasiBody| {
                Counted {
                    inner: b,
                    seen: 0,
                    per_body_limit: u64::MAX,
                    total: total.clone(),
                    total_limit: limits.max_egress_bytes,
                    also: Some(sent.clone()),
                    on_end: None,
                    acker: None,
                }
                .boxed_unsync()
            };
            let full = |b: &Bytes| {
                http_body_util::Full::new(b.clone())
                    .map_err(|never| match never {})
                    .boxed_unsync()
            };
            let (replay, first_body) = match body {
                OutBody::Stream(b) => (None, b),
                OutBody::Full(b) => {
                    let first = full(&b);
                    (Some(b), first)
                }
            };
            let mut first_body = Some(first_body);
            let mut reused = egress.take_idle(&dest);
            let (response, acker) = loop {
                let was_reused = reused.is_some();
                let Conn { mut sender, acker } = match reused.take() {
                    Some(s) => {
                        if !attempt.allowed("granted; a kept-alive connection") {
                            let reason = "the audit log cannot be written".to_string();
                            attempt.deny(&reason);
                            return Err(Failure::Denied(reason));
                        }
                        s
                    }
                    // Boxed: connecting is rare next to reuse, and its future
                    // (resolution, TCP, TLS) would otherwise make every
                    // request's future large.
                    None => {
                        match Box::pin(egress.connect(&dest, &scheme, connect_timeout, &|reason| {
                            attempt.allowed(&format!("granted; {reason}"))
                        }))
                        .await
                        {
                            Ok(s) => s,
                            Err(Refusal::Denied(reason)) => {
                                attempt.deny(&reason);
                                return Err(Failure::Denied(reason));
                            }
                            Err(Refusal::Failed(e, reason)) => {
                                attempt.failed(&reason);
                                return Err(Failure::Failed(e, reason));
                            }
                        }
                    }
                };
                let body = match first_body.take() {
                    Some(b) => b,
                    None => full(replay.as_ref().expect("only whole bodies are sent again")),
                };
                let request = http::Request::from_parts(head.clone(), counted(body));
                let response = sender.send_request(request);
                let response = tokio::time::timeout(first_byte_timeout, response).await;
                match response {
                    Ok(Ok(r)) => {
                        egress.put_idle(
                            dest.clone(),
                            Conn {
                                sender,
                                acker: acker.clone(),
                            },
                        );
                        break (r, acker);
                    }
                    // A kept-alive connection the peer had closed: once more
                    // on a new one, when the body can be sent again.
                    Ok(Err(e)) if was_reused && replay.is_some() && stale_connection(&e) => {
                        tracing::debug!(target: "warden::egress", destination = %attempt.destination, "kept-alive connection was closed; reconnecting");
                        sent.store(0, Ordering::Relaxed);
                        continue;
                    }
                    Ok(Err(e)) => {
                        attempt.failed("request failed");
                        let reason = format!("request failed: {e}");
                        return Err(Failure::Failed(HttpError::from(e), reason));
                    }
                    Err(_) => {
                        attempt.failed("no response in time");
                        return Err(Failure::Failed(
                            HttpError::ConnectionReadTimeout,
                            format!("no response within {} ms", first_byte_timeout.as_millis()),
                        ));
                    }
                }
            };
            let status = response.status().as_u16();
            if let Some(len) = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            {
                if len > limits.max_response_bytes {
                    attempt.done(
                        status,
                        0,
                        sent.load(Ordering::Relaxed),
                        "response larger than limits.max-response-bytes",
                    );
                    return Err(Failure::Failed(
                        HttpError::HttpResponseBodySize(Some(len)),
                        format!(
                            "the response ({len} bytes) is larger than limits.max-response-bytes ({})",
                            limits.max_response_bytes
                        ),
                    ));
                }
            }
            let auditor = attempt.auditor.clone();
            let destination = attempt.destination.clone();
            let on_end: super::counted::OnEnd = Box::new(move |bytes_in, outcome| {
                attempt.done(status, bytes_in, sent.load(Ordering::Relaxed), outcome)
            });
            let (mut head, incoming) = response.into_parts();
            let counted = Counted {
                inner: incoming.map_err(HttpError::from),
                seen: 0,
                per_body_limit: limits.max_response_bytes,
                total,
                total_limit: limits.max_egress_bytes,
                also: None,
                on_end: Some(on_end),
                acker: Some(acker),
            };
            let Some((redaction, names)) = redaction else {
                return Ok(http::Response::from_parts(head, counted.boxed_unsync()));
            };
            if let Some(reason) = undecodable(&head.headers) {
                return Err(Failure::Failed(
                    HttpError::HttpResponseContentCoding(None),
                    reason,
                ));
            }
            // The response may quote the request (an echo, an error page)
            // or data stored earlier: the guest never gets a value back.
            let target = format!("{names} <- {destination}");
            let record = move |auditor: &Auditor, part: &str, n: usize| {
                auditor.record(
                    Effect::Secret,
                    &target,
                    Outcome::Deny,
                    &format!("the response {part} quoted a secret's value: {n} redacted"),
                );
            };
            let in_head = redaction.head(&mut head.headers);
            if in_head > 0 {
                record(&auditor, "head", in_head);
            }
            // Redaction changes the body's length.
            head.headers.remove(http::header::CONTENT_LENGTH);
            let body = Redacted::new(
                counted,
                redaction,
                Box::new(move |n| {
                    if n > 0 {
                        record(&auditor, "body", n);
                    }
                }),
            );
            Ok(http::Response::from_parts(head, body.boxed_unsync()))
        })
    }
}

impl EgressHooks {
    /// Substitutes each secret placeholder in `head`'s header values, for
    /// the destinations, headers and methods the secret is bound to (each
    /// use audited first); `Err` names why one may not be sent.
    fn substitute_secrets(
        &self,
        head: &mut http::request::Parts,
        attempt: &Attempt,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<(), String> {
        let method = head.method.clone();
        for (header, value) in head.headers.iter_mut() {
            let Ok(text) = value.to_str() else { continue };
            if !text.contains(SECRET_OPEN) {
                continue;
            }
            let replaced = substitute(text, |name| {
                let found = self.egress.policy.secret_for(
                    name,
                    SecretUse {
                        scheme,
                        host,
                        port,
                        header: header.as_str(),
                        method: method.as_str(),
                    },
                );
                let target = format!("{name} -> {method} {} ({header})", attempt.destination);
                match found {
                    Ok(v) => {
                        if !self.auditor.record(
                            Effect::Secret,
                            &target,
                            Outcome::Allow,
                            "bound to this destination, header and method",
                        ) {
                            return Err("the audit log cannot be written".to_string());
                        }
                        Ok(v.expose().to_string())
                    }
                    Err(reason) => {
                        self.auditor
                            .record(Effect::Secret, &target, Outcome::Deny, &reason);
                        Err(reason)
                    }
                }
            })?;
            let mut v = HeaderValue::from_str(&replaced)
                .map_err(|_| "a secret's value is not a valid header value".to_string())?;
            v.set_sensitive(true);
            *value = v;
        }
        Ok(())
    }
}

impl wasmtime_wasi_http::WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        _ = fut;
        let (head, body) = request.into_parts();
        let timeouts = Timeouts {
            connect: options.and_then(|o| o.connect_timeout),
            first_byte: options.and_then(|o| o.first_byte_timeout),
        };
        let dispatch = self.dispatch(head, OutBody::Stream(body), timeouts);
        Box::new(async move {
            match dispatch.await {
                Ok(response) => Ok((response, Box::new(async { Ok(()) }) as IoFuture)),
                Err(Failure::Denied(_)) => Err(HttpError::HttpRequestDenied),
                Err(Failure::Failed(e, _)) => Err(e),
            }
        })
    }
}

//! The decide step of a request: the checks before anything leaves (per-call
//! cap, `Host` header, grant, byte budget, the shape a plugin granted
//! secrets may send), secret placeholders substituted where bound, and the
//! request as it will be sent; and the decision after name resolution, on
//! the address actually connected to. Each decision is audited where it is
//! made.

use super::*;
use crate::audit::{Effect, Outcome};
use crate::limits::ResolvedLimits;
use http::header::{HeaderValue, HOST};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A request decided so far, carried from the decision to the connection
/// and the response.
pub(super) struct Planned {
    /// The attempt, as logged and audited.
    pub(super) attempt: Attempt,
    pub(super) dest: Destination,
    /// The head as sent: secrets substituted, `Host` set, origin form.
    pub(super) head: http::request::Parts,
    /// The guest's timeouts, each capped by `request-timeout-ms`.
    pub(super) connect_timeout: Duration,
    pub(super) first_byte_timeout: Duration,
    pub(super) limits: ResolvedLimits,
    /// The call's bytes, both directions (`max-egress-bytes`).
    pub(super) total: Arc<AtomicU64>,
    /// The bytes of the request body sent on the last try.
    pub(super) sent: Arc<AtomicU64>,
}

/// Where a request goes, as its URL says.
struct Target {
    /// Lower case.
    scheme: String,
    /// One form of the name for policy, pins, secrets and the pool: lower
    /// case, no brackets; a trailing dot (`api.internal.`) names the same
    /// host.
    host: String,
    /// The port written, else the scheme's default; `Err` the text of a
    /// port that does not fit 16 bits, which is refused, never replaced
    /// by the default.
    port: Result<u16, String>,
    /// The authority without userinfo: what a Host header may say.
    authority: String,
}

impl Target {
    fn of(uri: &http::Uri) -> Target {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = match uri.authority().and_then(|a| explicit_port(a.as_str())) {
            None => Ok(default_port),
            Some(text) => text.parse::<u16>().map_err(|_| text.to_string()),
        };
        let authority = uri
            .authority()
            .map(|a| {
                let a = a.as_str();
                a.rsplit_once('@')
                    .map_or(a, |(_, h)| h)
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        Target {
            scheme,
            host,
            port,
            authority,
        }
    }

    /// `scheme://host:port`, as audit records and errors name a
    /// destination; the URL itself when its port is not valid.
    fn destination(&self, uri: &http::Uri) -> String {
        match self.port {
            Ok(port) => destination_text(&self.scheme, &self.host, port),
            Err(_) => format!("{uri}"),
        }
    }
}

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

/// Why the `Host` header may not be sent to `target`: more than one, or
/// one naming another host.
fn host_denial(headers: &http::HeaderMap, target: &Target) -> Result<(), String> {
    if headers.get_all(HOST).iter().nth(1).is_some() {
        return Err("more than one Host header".into());
    }
    if let Some(h) = headers.get(HOST) {
        let given = h.to_str().unwrap_or("").to_ascii_lowercase();
        if given != target.authority && given.trim_end_matches('.') != target.host {
            return Err(format!(
                "Host header `{given}` does not match the destination `{}`",
                target.authority
            ));
        }
    }
    Ok(())
}

/// `head` in origin form for the wire (the connection already names the
/// host); `None` if its path makes no URI.
fn origin_form(mut head: http::request::Parts) -> Option<http::request::Parts> {
    let mut origin = std::mem::take(&mut head.uri).into_parts();
    origin.scheme = None;
    origin.authority = None;
    if origin.path_and_query.is_none() {
        origin.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    head.uri = http::Uri::from_parts(origin).ok()?;
    Some(head)
}

impl EgressHooks {
    /// Decides a request: the checks, then the request as it will be sent.
    /// A denial is audited here; a secret's use where it is bound
    /// ([`EgressHooks::substitute_secrets`]). The allow is recorded where
    /// the destination is decided: after name resolution, for the address
    /// actually connected to ([`Planned::decide_address`]).
    pub(super) fn decide(
        &mut self,
        mut head: http::request::Parts,
        body: &OutBody,
        timeouts: Timeouts,
    ) -> Result<Planned, Failure> {
        let target = Target::of(&head.uri);
        let destination = target.destination(&head.uri);
        let span = self.auditor.egress_span(
            head.method.as_str(),
            // Never the query, which may carry what a trace must not.
            &format!("{destination}{}", head.uri.path()),
            (&target.host, target.port.clone().unwrap_or(0)),
        );
        let attempt = Attempt {
            auditor: self.auditor.clone(),
            plugin: self.egress.plugin.clone(),
            method: head.method.clone(),
            destination,
            started: Instant::now(),
            span,
        };
        let dest = match self.check(&target, &mut head, body, &attempt) {
            Ok(dest) => dest,
            Err(reason) => return Err(attempt.denied(reason)),
        };
        if let Some(span) = &attempt.span {
            // The host owns the trace headers of what leaves.
            span.inject(&mut head.headers);
        }
        let Some(head) = origin_form(head) else {
            attempt.failed("invalid path");
            return Err(Failure::Failed(
                HttpError::HttpRequestUriInvalid,
                "invalid path".into(),
            ));
        };
        let budget = Duration::from_millis(self.limits.request_timeout_ms);
        Ok(Planned {
            attempt,
            dest,
            head,
            connect_timeout: timeouts.connect.map_or(budget, |t| t.min(budget)),
            first_byte_timeout: timeouts.first_byte.map_or(budget, |t| t.min(budget)),
            limits: self.limits,
            total: self.bytes.clone(),
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The checks before anything leaves, in order; `Err` names the rule
    /// the request breaks (never a secret's value). Passed, `head` has its
    /// secrets substituted and its `Host` header, and the destination is
    /// returned.
    fn check(
        &mut self,
        target: &Target,
        head: &mut http::request::Parts,
        body: &OutBody,
        attempt: &Attempt,
    ) -> Result<Destination, String> {
        let port = target
            .port
            .clone()
            .map_err(|text| format!("`{text}` is not a valid port (0-65535)"))?;
        self.requests += 1;
        if self.requests > self.limits.max_requests {
            return Err(format!(
                "more than {} requests in one call (limits.max-requests)",
                self.limits.max_requests
            ));
        }
        let Target { scheme, host, .. } = target;
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme `{scheme}` is not HTTP"));
        }
        host_denial(&head.headers, target)?;
        if let Some(reason) = self.egress.policy.egress_denial(scheme, host, port) {
            return Err(reason);
        }
        self.budget_denial(head, body)?;
        // A plugin granted secrets gets every response redacted of their
        // values: the host owns what decides the response's shape.
        if self.egress.redacts() {
            if let Some(reason) = shape_denial(&head.headers) {
                return Err(reason);
            }
            head.headers.insert(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        self.substitute_secrets(head, attempt, scheme, host, port)?;
        if !head.headers.contains_key(HOST) {
            // Never the URL's userinfo.
            if let Ok(v) = HeaderValue::from_str(&target.authority) {
                head.headers.insert(HOST, v);
            }
        }
        Ok(Destination {
            https: scheme == "https",
            host: host.clone(),
            port,
        })
    }

    /// Why the request body would take the call past `max-egress-bytes`:
    /// whole bytes by their length, a stream by its `Content-Length`.
    fn budget_denial(&self, head: &http::request::Parts, body: &OutBody) -> Result<(), String> {
        let declared_length = match body {
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
            return Err(format!(
                "the request body would exceed limits.max-egress-bytes ({})",
                self.limits.max_egress_bytes
            ));
        }
        Ok(())
    }

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
                let found = match found {
                    Ok(_) if self.egress.exchanges(name) => {
                        self.egress.call_tokens.get(&self.auditor.current().1, name)
                    }
                    Ok(v) => Ok(v.expose().to_string()),
                    Err(e) => Err(e),
                };
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
                        Ok(v)
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

impl Planned {
    /// The egress decision after name resolution, and its audit record,
    /// before anything connects: the first of `addrs` the policy allows (a
    /// public address, or any when a grant names the host exactly), the
    /// allow recorded for that address; else a denial naming the last one
    /// refused, recorded.
    pub(super) async fn decide_address(
        &self,
        policy: &EffectPolicy,
        addrs: Vec<IpAddr>,
    ) -> Result<IpAddr, Failure> {
        let dest = &self.dest;
        let mut last_denial = None;
        for ip in addrs {
            match policy.check_resolved(dest.scheme(), &dest.host, dest.port, ip) {
                Decision::Deny(reason) => last_denial = Some(reason),
                Decision::Allow(reason) => {
                    self.attempt.allow(&format!("granted; {reason}")).await?;
                    return Ok(ip);
                }
            }
        }
        let reason = last_denial.unwrap_or_else(|| format!("{} resolved to no address", dest.host));
        Err(self.attempt.denied(reason))
    }
}

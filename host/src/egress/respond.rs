//! The respond step of a request: the response refused when it declares
//! more than `max-response-bytes`, its body cut there and at the call's
//! `max-egress-bytes`; for a plugin granted secrets, every secret's value
//! cut out of the head and the body, each redaction audited.

use super::connect::Exchange;
use super::decide::Planned;
use super::*;
use crate::audit::{Effect, Outcome};
use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::atomic::Ordering;

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

impl Planned {
    /// The response as the guest gets it: capped, and redacted when the
    /// plugin was granted secrets (`redaction`: their values and names).
    /// The attempt is logged when the body ends.
    pub(super) fn respond(
        self,
        (response, acker): Exchange,
        redaction: Option<(Arc<Redaction>, Arc<str>)>,
    ) -> Result<http::Response<WasiBody>, Failure> {
        let status = response.status().as_u16();
        self.refuse_oversized(&response, status)?;
        // A body the host cannot read cannot be redacted: refused, recorded.
        if let Some(reason) = redaction.as_ref().and(undecodable(response.headers())) {
            self.attempt.failed(&reason);
            return Err(Failure::Failed(
                HttpError::HttpResponseContentCoding(None),
                reason,
            ));
        }
        let redaction = redaction.map(|(values, names)| (values, self.attempt.quoted(&names)));
        let (head, incoming) = response.into_parts();
        let body = self.count_response(incoming, acker, status);
        match redaction {
            Some((values, quoted)) => redact(head, body, values, quoted),
            None => Ok(http::Response::from_parts(head, body.boxed_unsync())),
        }
    }

    /// Refuses a response whose `Content-Length` is over
    /// `max-response-bytes` (logged, with the bytes sent).
    fn refuse_oversized(
        &self,
        response: &http::Response<Incoming>,
        status: u16,
    ) -> Result<(), Failure> {
        let Some(len) = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        else {
            return Ok(());
        };
        let max = self.limits.max_response_bytes;
        if len <= max {
            return Ok(());
        }
        let reason = format!(
            "the response (status {status}, {len} bytes) is larger than limits.max-response-bytes ({max})"
        );
        // Logged and recorded: nothing of it reaches the guest.
        self.attempt.failed(&reason);
        Err(Failure::Failed(
            HttpError::HttpResponseBodySize(Some(len)),
            reason,
        ))
    }

    /// The response body counted against `max-response-bytes` and the
    /// call's `max-egress-bytes`; the attempt is logged when it ends.
    fn count_response(
        self,
        incoming: Incoming,
        acker: Arc<Acker>,
        status: u16,
    ) -> impl Body<Data = Bytes, Error = HttpError> + Unpin + Send + 'static {
        let Planned {
            attempt,
            sent,
            total,
            limits,
            ..
        } = self;
        let on_end: counted::OnEnd = Box::new(move |bytes_in, outcome| {
            attempt.done(status, bytes_in, sent.load(Ordering::Relaxed), outcome)
        });
        Counted {
            inner: incoming.map_err(HttpError::from),
            seen: 0,
            per_body_limit: limits.max_response_bytes,
            total,
            total_limit: limits.max_egress_bytes,
            also: None,
            on_end: Some(on_end),
            acker: Some(acker),
        }
    }
}

/// The response with every value of `redaction` cut out of its head and
/// body, each part that quoted one audited by `quoted` (a response whose
/// coding hides its body was refused before).
fn redact(
    mut head: http::response::Parts,
    body: impl Body<Data = Bytes, Error = HttpError> + Unpin + Send + 'static,
    redaction: Arc<Redaction>,
    quoted: impl Fn(&str, usize) + Send + 'static,
) -> Result<http::Response<WasiBody>, Failure> {
    // The response may quote the request (an echo, an error page)
    // or data stored earlier: the guest never gets a value back.
    let in_head = redaction.head(&mut head.headers);
    if in_head > 0 {
        quoted("head", in_head);
    }
    // Redaction changes the body's length.
    head.headers.remove(http::header::CONTENT_LENGTH);
    let body = Redacted::new(
        body,
        redaction,
        Box::new(move |n| {
            if n > 0 {
                quoted("body", n);
            }
        }),
    );
    Ok(http::Response::from_parts(head, body.boxed_unsync()))
}

impl Attempt {
    /// Audits a response part that quoted a secret's value (`names`: the
    /// plugin's secrets), as a denial of that value to the guest.
    fn quoted(&self, names: &str) -> impl Fn(&str, usize) + Send + 'static {
        let auditor = self.auditor.clone();
        let target = format!("{names} <- {}", self.destination);
        move |part, n| {
            auditor.record(
                Effect::Secret,
                &target,
                Outcome::Deny,
                &format!("the response {part} quoted a secret's value: {n} redacted"),
            );
        }
    }
}

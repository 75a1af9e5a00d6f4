//! The `wasi:http` hooks of an instance and the path of one request
//! through them, in three steps: decided (`decide.rs`: checks, grant,
//! secrets), sent on a kept-alive or new connection (`connect.rs`:
//! resolution, the address decided, the pool), its response capped and
//! redacted (`respond.rs`); each attempt logged and audited.

use super::*;
use crate::audit::{Effect, Outcome};
use crate::governance::Auditor;
use crate::limits::ResolvedLimits;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// The `wasi:http` hooks of one instance: its plugin's egress plus the
/// budget of the current call.
pub(crate) struct EgressHooks {
    pub(super) egress: Arc<Egress>,
    pub(super) auditor: Auditor,
    pub(super) limits: ResolvedLimits,
    /// Requests in the current call.
    pub(super) requests: u32,
    /// The current call's bytes, both directions.
    pub(super) bytes: Arc<AtomicU64>,
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
pub(super) struct Attempt {
    pub(super) auditor: Auditor,
    pub(super) plugin: Arc<str>,
    pub(super) method: http::Method,
    /// `scheme://host:port`.
    pub(super) destination: String,
    pub(super) started: Instant,
    /// Its client span, when telemetry is on.
    pub(super) span: Option<crate::telemetry::EffectSpan>,
}

impl Attempt {
    /// Audits a denial; the auditor logs the warning, within the call's
    /// log budget.
    fn deny(&self, reason: &str) {
        if let Some(span) = &self.span {
            span.failed(reason);
        }
        self.auditor.record(
            Effect::Egress,
            &format!("{} {}", self.method, self.destination),
            Outcome::Deny,
            reason,
        );
    }
    /// Audits a denial and returns it as the request's failure.
    pub(super) fn denied(&self, reason: String) -> Failure {
        self.deny(&reason);
        Failure::Denied(reason)
    }
    /// Audits the decision to send (after resolution, or on a kept-alive
    /// connection) before anything is sent; one that cannot be recorded is
    /// a denial.
    /// The record is queued at once and awaited without holding the thread.
    pub(super) async fn allow(&self, reason: &str) -> Result<(), Failure> {
        let recorded = self.auditor.record_async(
            Effect::Egress,
            &format!("{} {}", self.method, self.destination),
            Outcome::Allow,
            reason,
        );
        if recorded.done().await {
            return Ok(());
        }
        Err(self.denied("the audit log cannot be written".into()))
    }
    /// Audits a refusal of resolution or of the connection (a denial, or a
    /// failure) and returns it as the request's failure.
    pub(super) fn refused(&self, refusal: Refusal) -> Failure {
        match refusal {
            Refusal::Denied(reason) => self.denied(reason),
            Refusal::Failed(e, reason) => {
                self.failed(&reason);
                Failure::Failed(e, reason)
            }
        }
    }
    /// Audits (as `error`) and logs a request that was allowed and failed:
    /// the name did not resolve, the connection or the exchange failed.
    pub(super) fn failed(&self, reason: &str) {
        if let Some(span) = &self.span {
            span.failed(reason);
        }
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
    /// Logs a request that got a response, when its body ends.
    pub(super) fn done(&self, status: u16, bytes_in: u64, bytes_out: u64, outcome: &str) {
        if let Some(span) = &self.span {
            span.status(status);
        }
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
    /// The one path for `wasi:http` and `warden:provider/http-client`, in
    /// three steps: decided ([`EgressHooks::decide`]), sent on a kept-alive
    /// or new connection (`Planned::send`), its response capped and
    /// redacted (`Planned::respond`).
    pub(crate) fn dispatch(
        &mut self,
        head: http::request::Parts,
        body: OutBody,
        timeouts: Timeouts,
    ) -> Dispatch {
        let planned = match self.decide(head, &body, timeouts) {
            Ok(planned) => planned,
            Err(failure) => return Box::pin(async move { Err(failure) }),
        };
        let egress = self.egress.clone();
        Box::pin(async move {
            let exchange = planned.send(&egress, body).await?;
            let redaction = egress.redaction_for(&planned.attempt.auditor);
            planned.respond(exchange, redaction)
        })
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

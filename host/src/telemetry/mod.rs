//! `[telemetry]`: traces and metrics over OTLP (HTTP/protobuf or gRPC). The
//! `opentelemetry` API carries contexts and attributes, its SDK aggregates
//! and exports the metrics; spans are the host's own ([`span`]), encoded
//! as OTLP protobuf when they end ([`otlp`]) and sent in batches
//! ([`batch`]), which costs a busy server a fraction of the SDK's span
//! pipeline. Off by default: without the section there is no
//! [`Telemetry`], and every hook is one `None` check.
//!
//! Spans: `warden serve` opens one per MCP request (kind server, named and
//! attributed as the MCP semantic conventions say, its parent the client's
//! `traceparent` from `params._meta` or the HTTP header); each capability
//! call is a child (`execute_tool <capability>`), and each of its egress
//! requests and name lookups a child of the call. The instance running a
//! call holds its span's ids beside its call id (its auditor's scope), so
//! that the code that performs an effect needs no new parameter and no
//! host-wide lookup. Egress requests carry the
//! call's `traceparent` (unless `propagate = false`); the host sets it,
//! whatever the plugin wrote.
//!
//! Metrics: calls by capability and outcome, call duration, denials by
//! effect, limit hits, fuel used, instances, the audit queue, and MCP's
//! `mcp.server.operation.duration` (see [`Instruments`]).

mod batch;
mod export;
mod metrics;
mod otlp;
mod span;

use batch::Batch;
pub(crate) use metrics::Outcome;
use metrics::{CallInstruments, Instruments};
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags,
};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use serde::{Deserialize, Serialize};
use span::{Recorded, SpanStart};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use opentelemetry::Context;

/// Default `[telemetry] metrics-interval-ms`.
pub const DEFAULT_METRICS_INTERVAL_MS: u64 = 10_000;
/// Default `[telemetry] timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// MCP's duration buckets (seconds), from its semantic conventions.
const MCP_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TelemetrySettings {
    /// The OTLP collector: `http://HOST:4318` for HTTP/protobuf (the
    /// `/v1/traces` and `/v1/metrics` paths are added), or `http://HOST:4317`
    /// with `protocol = "grpc"`; `https://` for TLS with the public roots.
    pub otlp_endpoint: String,
    /// `http/protobuf` (default) or `grpc`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The `service.name` resource attribute (default `warden`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// How often metrics are exported (default 10000).
    #[serde(default)]
    pub metrics_interval_ms: Option<u64>,
    /// How long one export may take (default 10000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Send the call's `traceparent` on plugins' outbound HTTP requests
    /// (default true); the host sets the header, whatever the plugin wrote.
    #[serde(default)]
    pub propagate: Option<bool>,
    /// The share of new traces recorded, 0.0 to 1.0 (default 1.0: all). A
    /// request whose client sent a `traceparent` follows the client's
    /// decision (its sampled flag) whatever the ratio.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
}

impl TelemetrySettings {
    /// Export to `otlp_endpoint` over HTTP/protobuf, every other setting
    /// at its default.
    pub fn new(otlp_endpoint: impl Into<String>) -> TelemetrySettings {
        TelemetrySettings {
            otlp_endpoint: otlp_endpoint.into(),
            protocol: OtlpProtocol::HttpProtobuf,
            service_name: None,
            metrics_interval_ms: None,
            timeout_ms: None,
            propagate: None,
            sample_ratio: None,
        }
    }
}

/// How OTLP is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OtlpProtocol {
    /// Protobuf over HTTP POST.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC.
    #[serde(rename = "grpc")]
    Grpc,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built (a bad endpoint, say).
    #[error("[telemetry]: {0}")]
    Exporter(String),
}

/// Traces and metrics of one host (no global state: each host has its own
/// providers).
pub struct Telemetry {
    /// Ended spans on their way to the collector.
    batch: Arc<Batch>,
    meters: opentelemetry_sdk::metrics::SdkMeterProvider,
    meter: Meter,
    propagator: TraceContextPropagator,
    instruments: Instruments,
    propagate: bool,
    /// `sample-ratio`, applied to new traces.
    ratio: f64,
    ids: RandomIdGenerator,
}

impl Drop for Telemetry {
    /// Stops the span exporter after one last export (without
    /// [`shutdown`](Telemetry::shutdown), not waited for).
    fn drop(&mut self) {
        self.batch.close_now();
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts the exporters of `settings`. Called within a tokio runtime,
    /// which sends the exports.
    pub fn start(settings: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
        let ratio = settings.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(TelemetryError::Exporter(format!(
                "`sample-ratio` {ratio} is not between 0.0 and 1.0"
            )));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let (sender, metrics) = export::exporters(settings)?;
        let resource = export::resource(settings);
        let named: Vec<KeyValue> = resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let version = env!("CARGO_PKG_VERSION");
        let envelope = otlp::Envelope::new(&named, "warden", version);
        let timeout = settings.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        let batch = Arc::new(Batch::new(Duration::from_millis(timeout)));
        runtime.spawn(batch::export(batch.clone(), sender, envelope));
        let meters = export::meters(settings, metrics, resource);
        let scope = InstrumentationScope::builder("warden")
            .with_version(version)
            .build();
        let meter = meters.meter_with_scope(scope);
        let instruments = Instruments::new(&meter);
        tracing::info!(endpoint = %settings.otlp_endpoint, "telemetry: exporting traces and metrics over OTLP");
        Ok(Telemetry {
            batch,
            meters,
            meter,
            propagator: TraceContextPropagator::new(),
            instruments,
            propagate: settings.propagate.unwrap_or(true),
            ratio,
            ids: RandomIdGenerator::default(),
        })
    }

    /// The meter, for instruments of the embedder's own (`warden serve`'s
    /// sessions, say).
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// An observable gauge read at each export: `read` gives the values
    /// with their attributes.
    pub fn gauge(
        &self,
        name: &'static str,
        description: &'static str,
        unit: &'static str,
        read: impl Fn() -> Vec<(u64, Vec<KeyValue>)> + Send + Sync + 'static,
    ) {
        self.meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_unit(unit)
            .with_callback(move |observer| {
                for (value, attributes) in read() {
                    observer.observe(value, &attributes);
                }
            })
            .build();
    }

    /// Exports the spans ended so far and returns once the collector has
    /// them (or the export failed). Blocks: call it off the runtime's
    /// worker threads (`spawn_blocking`).
    pub fn flush(&self) {
        self.batch.flush();
    }

    /// Exports what is pending and stops. Blocks: call it off the runtime's
    /// worker threads (`spawn_blocking`).
    pub fn shutdown(&self) {
        self.batch.close();
        let _ = self.meters.shutdown();
    }

    /// The parent a client names: `params._meta`'s `traceparent` (and
    /// `tracestate`) first, as MCP's conventions say, else the HTTP
    /// request's headers. An empty context when neither holds a valid one.
    pub fn parent(
        &self,
        meta: Option<&serde_json::Map<String, serde_json::Value>>,
        headers: Option<&http::HeaderMap>,
    ) -> Context {
        if let Some(meta) = meta.filter(|m| m.contains_key("traceparent")) {
            return self
                .propagator
                .extract_with_context(&Context::new(), &MetaExtractor(meta));
        }
        // Most requests name no parent: the propagator is not asked then
        // (it splits even an absent header into a new vector).
        match headers.filter(|h| h.contains_key("traceparent")) {
            Some(h) => self
                .propagator
                .extract_with_context(&Context::new(), &HeaderExtractor(h)),
            None => Context::new(),
        }
    }

    /// A new span under `parent`, started now: its ids ([`ids_under`](
    /// Self::ids_under)), and its record, built by `build` only when it is
    /// sampled.
    fn span(
        &self,
        parent: &SpanContext,
        build: impl FnOnce() -> SpanStart,
    ) -> (SpanContext, Option<Recorded>) {
        let own = self.ids_under(parent);
        let recorded = own
            .is_sampled()
            .then(|| Recorded::start(own.clone(), parent, build(), SystemTime::now()));
        (own, recorded)
    }

    /// The ids of a new span under `parent`, and whether it is sampled: a
    /// child of a sampled span is, one of an unsampled span is not, and a
    /// new trace is with probability `sample-ratio`. An unsampled span costs
    /// no more than its ids, which are still propagated (flags `00`), so
    /// that the services it calls make the same decision.
    fn ids_under(&self, parent: &SpanContext) -> SpanContext {
        let (sampled, trace_id) = match parent.is_valid() {
            true => (parent.is_sampled(), parent.trace_id()),
            false => (self.new_trace_sampled(), self.ids.new_trace_id()),
        };
        let flags = match sampled {
            true => TraceFlags::SAMPLED,
            false => TraceFlags::default(),
        };
        SpanContext::new(
            trace_id,
            self.ids.new_span_id(),
            flags,
            false,
            parent.trace_state().clone(),
        )
    }

    /// Whether a new trace is recorded (with probability `sample-ratio`).
    fn new_trace_sampled(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && self.draw() < self.ratio)
    }

    /// A uniform draw in [0, 1), from a fresh span id's random bits.
    fn draw(&self) -> f64 {
        let bits = u64::from_be_bytes(self.ids.new_span_id().to_bytes());
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Starts an MCP server span (see [`McpSpan`]) for `request`, which
    /// names `target` (the tool of a `tools/call`, the prompt of a
    /// `prompts/get`) when it names one.
    pub fn mcp_span<'a>(
        &'a self,
        parent: &Context,
        request: McpRequest<'a>,
        target: Option<&str>,
    ) -> McpSpan<'a> {
        let started = SystemTime::now();
        let tool_call = target.filter(|_| request.method == "tools/call");
        // A capability called before has its names made once.
        let known = tool_call.and_then(|t| self.instruments.known(t));
        // A known tool's name is its instruments'; another's is copied.
        let tool = match (&known, tool_call) {
            (None, Some(t)) => Some(Value::from(Arc::<str>::from(t))),
            _ => None,
        };
        let parent_ids = parent.span().span_context().clone();
        let own = self.ids_under(&parent_ids);
        // Named now: the target is the caller's only until this returns.
        let name = match (&known, target) {
            (None, Some(t)) if own.is_sampled() => Some(format!("{} {t}", request.method)),
            _ => None,
        };
        McpSpan {
            telemetry: self,
            parent: span::parent_of(&parent_ids),
            context: parent.with_remote_span_context(own),
            request,
            name,
            tool,
            known,
            started,
            ended: false,
        }
    }

    /// Starts a capability call's span, a child of `parent` (or a root);
    /// its effects' spans are children of [`CallSpan::ids`]. Its names are
    /// the caller's, borrowed until it is written.
    pub(crate) fn call_started<'a>(
        &'a self,
        parent: Option<&Context>,
        capability: &'a str,
        plugin: &'a str,
        call_id: &'a str,
    ) -> CallSpan<'a> {
        let started = SystemTime::now();
        let parent = match parent {
            Some(p) => p.span().span_context().clone(),
            None => SpanContext::empty_context(),
        };
        CallSpan {
            telemetry: self,
            own: self.ids_under(&parent),
            parent: span::parent_of(&parent),
            names: CallNames {
                capability,
                plugin,
                call_id,
            },
            call: self.instruments.for_call(capability),
            started,
            ended: false,
        }
    }

    /// Starts a client span for an outbound request of the call whose span
    /// is `parent` ([`EffectSpan::inject`] sets its `traceparent` on the
    /// request).
    pub(crate) fn egress_started(
        &self,
        parent: &SpanContext,
        method: &str,
        url: &str,
        (host, port): (&str, u16),
    ) -> Option<EffectSpan> {
        let (own, recorded) = self.span(parent, || SpanStart {
            name: method.to_string().into(),
            kind: SpanKind::Client,
            attributes: vec![
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.full", url.to_string()),
                KeyValue::new("server.address", host.to_string()),
                KeyValue::new("server.port", i64::from(port)),
            ],
        });
        Some(EffectSpan {
            own,
            recorded: Mutex::new(recorded),
            batch: self.batch.clone(),
            propagate: self.propagate,
        })
    }

    /// Starts a client span for a name lookup of the call whose span is
    /// `parent`.
    pub(crate) fn lookup_started(&self, parent: &SpanContext, name: &str) -> Option<EffectSpan> {
        let (own, recorded) = self.span(parent, || SpanStart {
            name: format!("lookup {name}").into(),
            kind: SpanKind::Client,
            attributes: vec![KeyValue::new("dns.question.name", name.to_string())],
        });
        Some(EffectSpan {
            own,
            recorded: Mutex::new(recorded),
            batch: self.batch.clone(),
            propagate: false,
        })
    }

    /// Writes a span whose attributes are all `texts` (a call's, an MCP
    /// request's): its ids and its parent's, its name and kind, its start
    /// and end.
    fn write_texts(
        &self,
        (context, parent): (&SpanContext, Option<(SpanId, bool)>),
        (name, kind): (&str, SpanKind),
        (start, end): (SystemTime, SystemTime),
        texts: &Texts<'_>,
        status: &Status,
    ) {
        let head = span::Head {
            context,
            parent,
            name,
            kind,
            start,
            end,
        };
        let attributes = (&[][..], texts.as_slice());
        span::write(&self.batch, head, attributes, status, 0);
    }

    /// Counts a refused effect (`effect` as audit records name it).
    pub(crate) fn denied(&self, effect: &'static str) {
        self.instruments
            .denials
            .add(1, &[KeyValue::new("warden.effect", effect)]);
    }

    /// The count of `warden.fuel.used` for the calls of `plugin`.
    pub(crate) fn fuel_counter(&self, plugin: &str) -> Arc<AtomicU64> {
        self.instruments.fuel_of(plugin)
    }
}

/// What an MCP request's span is made from (borrowed until it ends).
#[derive(Clone, Copy)]
pub struct McpRequest<'a> {
    /// `mcp.method.name`.
    pub method: &'a str,
    /// The JSON-RPC id (absent for notifications).
    pub id: Option<&'a str>,
    /// `mcp.session.id` (2025-11-25 sessions).
    pub session: Option<&'a str>,
    /// `mcp.protocol.version`.
    pub protocol_version: Option<&'a str>,
    /// `tcp` (HTTP) or `pipe` (stdio).
    pub transport: &'static str,
}

/// An MCP request's server span; [`end`](Self::end) it with the outcome
/// (dropped, it ends as it is). It is written when it ends, from what it
/// borrowed at the start.
pub struct McpSpan<'a> {
    telemetry: &'a Telemetry,
    /// The client's context with this span's ids.
    context: Context,
    /// The parent's id, and whether it is the client's.
    parent: Option<(SpanId, bool)>,
    request: McpRequest<'a>,
    /// Its name when neither the method's nor a known tool's.
    name: Option<String>,
    /// The tool of a `tools/call` not called before.
    tool: Option<Value>,
    /// The instruments of the tool of a `tools/call` called before.
    known: Option<Arc<CallInstruments>>,
    started: SystemTime,
    ended: bool,
}

impl McpSpan<'_> {
    /// The context calls made for this request are children of: the
    /// client's, with this span's ids.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The `tools/call`'s tool, when it names one.
    fn tool(&self) -> Option<&Value> {
        match &self.known {
            Some(call) => Some(&call.tool.value),
            None => self.tool.as_ref(),
        }
    }

    /// Ends the span: `error` is a JSON-RPC error code and message, or
    /// `tool_error` for a tool result with `isError`.
    pub fn end(mut self, error: Option<(&str, &str)>) {
        self.ended = true;
        let ended = SystemTime::now();
        let seconds = seconds_between(self.started, ended);
        let t = self.telemetry;
        match (error, &self.known) {
            (None, Some(call)) => t.instruments.record_tool_call(call, seconds),
            _ => t
                .instruments
                .operation_duration
                .record(seconds, &self.metric_attributes(error)),
        }
        self.write(error, ended);
    }

    /// The duration's attributes for a request that failed (or whose tool
    /// was not called before).
    fn metric_attributes(&self, error: Option<(&str, &str)>) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(3);
        let method = shared_text(self.request.method);
        attributes.push(KeyValue::new("mcp.method.name", method));
        if let Some(tool) = self.tool() {
            attributes.push(KeyValue::new("gen_ai.tool.name", tool.clone()));
        }
        if let Some((code, _)) = error {
            attributes.push(KeyValue::new("error.type", code.to_string()));
        }
        attributes
    }

    /// Writes the span (when sampled), as MCP's semantic conventions name
    /// its attributes.
    fn write(&self, error: Option<(&str, &str)>, end: SystemTime) {
        let span = self.context.span();
        let ids = span.span_context();
        if !ids.is_sampled() {
            return;
        }
        let r = &self.request;
        let tool = self.tool().map(Value::as_str);
        let mut texts = Texts::default();
        texts.push("mcp.method.name", Some(r.method));
        texts.push("network.transport", Some(r.transport));
        texts.push(
            "network.protocol.name",
            (r.transport == "tcp").then_some("http"),
        );
        texts.push("mcp.protocol.version", r.protocol_version);
        texts.push("jsonrpc.request.id", r.id);
        texts.push("mcp.session.id", r.session);
        texts.push("gen_ai.tool.name", tool.as_deref());
        texts.push(
            "gen_ai.operation.name",
            tool.is_some().then_some("execute_tool"),
        );
        let code = error.map(|(code, _)| code);
        texts.push("error.type", code);
        texts.push(
            "rpc.response.status_code",
            code.filter(|c| *c != "tool_error"),
        );
        let status = match error {
            Some((_, message)) => Status::error(message.to_string()),
            None => Status::Unset,
        };
        let name = match (&self.known, &self.name) {
            (Some(call), _) => call.request_name.as_str(),
            (None, Some(name)) => name.as_str(),
            (None, None) => r.method,
        };
        let t = self.telemetry;
        let ids = (ids, self.parent);
        let times = (self.started, end);
        t.write_texts(ids, (name, SpanKind::Server), times, &texts, &status);
    }
}

impl Drop for McpSpan<'_> {
    /// A span not ended ends as it is.
    fn drop(&mut self) {
        if !self.ended {
            self.write(None, SystemTime::now());
        }
    }
}

/// A written span's text attributes, on the stack (no span here has more).
#[derive(Default)]
struct Texts<'a> {
    list: [(&'a str, &'a str); 10],
    len: usize,
}

impl<'a> Texts<'a> {
    /// Adds `key` with `value`, when there is one.
    fn push(&mut self, key: &'a str, value: Option<&'a str>) {
        if let (Some(value), Some(slot)) = (value, self.list.get_mut(self.len)) {
            *slot = (key, value);
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.list[..self.len]
    }
}

/// Seconds from `start` to `end` (none if the clock went back).
fn seconds_between(start: SystemTime, end: SystemTime) -> f64 {
    end.duration_since(start).unwrap_or_default().as_secs_f64()
}

/// Names that recur in every request (MCP's methods and protocol
/// revisions), shared rather than copied; any other text copied.
fn shared_text(text: &str) -> StringValue {
    let known: &'static str = match text {
        "tools/call" => "tools/call",
        "tools/list" => "tools/list",
        "initialize" => "initialize",
        "notifications/initialized" => "notifications/initialized",
        "ping" => "ping",
        "resources/list" => "resources/list",
        "resources/read" => "resources/read",
        "prompts/list" => "prompts/list",
        "prompts/get" => "prompts/get",
        "completion/complete" => "completion/complete",
        "subscriptions/listen" => "subscriptions/listen",
        "tasks/get" => "tasks/get",
        "tasks/result" => "tasks/result",
        "2026-07-28" => "2026-07-28",
        "2025-11-25" => "2025-11-25",
        "2025-06-18" => "2025-06-18",
        other => return StringValue::from(other.to_string()),
    };
    StringValue::from(known)
}

/// A call span's names, the caller's.
struct CallNames<'a> {
    capability: &'a str,
    plugin: &'a str,
    call_id: &'a str,
}

/// A capability call's span, written when it ends.
pub(crate) struct CallSpan<'a> {
    telemetry: &'a Telemetry,
    own: SpanContext,
    /// The parent's id, and whether it is another process's.
    parent: Option<(SpanId, bool)>,
    names: CallNames<'a>,
    /// The capability's counts.
    call: Arc<CallInstruments>,
    started: SystemTime,
    ended: bool,
}

impl CallSpan<'_> {
    /// Its ids, the parent of its effects' spans.
    pub(crate) fn ids(&self) -> &SpanContext {
        &self.own
    }

    /// Ends the call's span with its outcome (`ok`, `deny`, `limit`,
    /// `trap`, `error`), counted and timed; `limit` names the limit.
    pub(crate) fn end(mut self, outcome: Outcome, error: Option<(String, Option<&'static str>)>) {
        self.ended = true;
        let t = self.telemetry;
        let ended = SystemTime::now();
        let seconds = seconds_between(self.started, ended);
        t.instruments.record_call(&self.call, outcome, seconds);
        let mut status = Status::Unset;
        if let Some((message, limit)) = error {
            status = Status::error(message);
            if outcome == Outcome::Deny {
                t.denied("call");
            }
            if let Some(limit) = limit {
                t.instruments
                    .limits
                    .add(1, &[KeyValue::new("warden.limit", limit)]);
            }
        }
        self.write(Some(outcome), &status, ended);
    }

    /// Writes the span (when sampled): the GenAI conventions' tool
    /// attributes, the plugin, and the outcome when it is known.
    fn write(&self, outcome: Option<Outcome>, status: &Status, end: SystemTime) {
        if !self.own.is_sampled() {
            return;
        }
        let n = &self.names;
        let mut texts = Texts::default();
        texts.push("gen_ai.operation.name", Some("execute_tool"));
        texts.push("gen_ai.tool.name", Some(n.capability));
        texts.push("gen_ai.tool.call.id", Some(n.call_id));
        texts.push("warden.plugin", Some(n.plugin));
        texts.push("warden.outcome", outcome.map(Outcome::as_str));
        let failed = matches!(status, Status::Error { .. });
        texts.push(
            "error.type",
            outcome.filter(|_| failed).map(Outcome::as_str),
        );
        // Named at its first call (or now, past the capabilities counted
        // apart).
        let named;
        let name = match self.call.is_own() {
            true => self.call.name.as_str(),
            false => {
                named = format!("execute_tool {}", n.capability);
                named.as_str()
            }
        };
        let ids = (&self.own, self.parent);
        let what = (name, SpanKind::Internal);
        let times = (self.started, end);
        self.telemetry.write_texts(ids, what, times, &texts, status);
    }
}

impl Drop for CallSpan<'_> {
    /// A span not ended ends as it is.
    fn drop(&mut self) {
        if !self.ended {
            self.write(None, &Status::Unset, SystemTime::now());
        }
    }
}

/// An effect's client span (an egress request, a lookup); ends when
/// dropped.
pub(crate) struct EffectSpan {
    own: SpanContext,
    /// Its record, when sampled.
    recorded: Mutex<Option<Recorded>>,
    batch: Arc<Batch>,
    /// Whether requests carry its `traceparent`.
    propagate: bool,
}

impl EffectSpan {
    /// Sets the request's trace headers: this span's `traceparent` (with
    /// propagation on), and never one the plugin wrote.
    pub(crate) fn inject(&self, headers: &mut http::HeaderMap) {
        headers.remove("traceparent");
        headers.remove("tracestate");
        if self.propagate {
            let context = Context::new().with_remote_span_context(self.own.clone());
            TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
        }
    }

    /// Notes something on its record, when it is recorded.
    fn note(&self, write: impl FnOnce(&mut Recorded)) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(span) = recorded.as_mut() {
            write(span);
        }
    }

    /// Marks it failed, `why`.
    pub(crate) fn failed(&self, why: &str) {
        self.note(|span| {
            span.set_attribute(KeyValue::new("error.type", "_OTHER"));
            span.set_status(Status::error(why.to_string()));
        });
    }

    /// Notes the response's status code.
    pub(crate) fn status(&self, code: u16) {
        self.note(|span| {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            if code >= 500 {
                span.set_attribute(KeyValue::new("error.type", code.to_string()));
                span.set_status(Status::error(format!("HTTP {code}")));
            }
        });
    }
}

impl Drop for EffectSpan {
    fn drop(&mut self) {
        let recorded = self.recorded.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(span) = recorded.take() {
            span.end(&self.batch, SystemTime::now());
        }
    }
}

struct MetaExtractor<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl Extractor for MetaExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId, TraceState};

    /// Telemetry exporting to a port nothing listens on (nothing here is
    /// exported: spans are only started).
    fn telemetry(ratio: f64) -> Telemetry {
        Telemetry::start(&TelemetrySettings {
            timeout_ms: Some(100),
            sample_ratio: Some(ratio),
            ..TelemetrySettings::new("http://127.0.0.1:9")
        })
        .unwrap()
    }

    fn builder() -> SpanStart {
        SpanStart {
            name: "test".into(),
            kind: SpanKind::Internal,
            attributes: Vec::new(),
        }
    }

    fn parent(sampled: bool) -> SpanContext {
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            state,
        )
    }

    #[test]
    fn a_parent_decides_and_new_traces_follow_the_ratio() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        for ratio in [0.0, 0.3, 1.0] {
            let t = rt.block_on(async { telemetry(ratio) });
            for sampled in [true, false] {
                let (c, recorded) = t.span(&parent(sampled), builder);
                assert_eq!(c.is_sampled(), sampled, "ratio {ratio}");
                assert_eq!(recorded.is_some(), sampled);
                assert_eq!(c.trace_id(), parent(true).trace_id());
                assert_ne!(c.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
                assert_eq!(c.trace_state().get("vendor"), Some("x"));
            }
            let n = 4000;
            let recorded = (0..n)
                .filter(|_| {
                    let (c, recorded) = t.span(&SpanContext::empty_context(), builder);
                    assert!(c.is_valid(), "an unsampled root still has ids");
                    assert_eq!(recorded.is_some(), c.is_sampled());
                    c.is_sampled()
                })
                .count();
            let share = recorded as f64 / n as f64;
            assert!((share - ratio).abs() < 0.05, "ratio {ratio}: {share}");
            t.shutdown();
        }
    }

    #[test]
    fn draws_are_uniform_in_the_unit_interval() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let t = rt.block_on(async { telemetry(1.0) });
        let draws: Vec<f64> = (0..10_000).map(|_| t.draw()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        for decile in 0..10 {
            let low = f64::from(decile) / 10.0;
            let share = draws
                .iter()
                .filter(|d| (low..low + 0.1).contains(*d))
                .count();
            assert!((800..1200).contains(&share), "decile {decile}: {share}");
        }
    }
}

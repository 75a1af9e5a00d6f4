//! OTLP's trace messages (`opentelemetry/proto/trace/v1/trace.proto`),
//! encoded straight from the host's spans into protobuf bytes: a span is
//! written once, when it ends, with no intermediate structs. Repeated
//! fields concatenate, so a batch of encoded spans is wrapped in its
//! request envelope by one copy.

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value};
use std::time::SystemTime;

/// An ended span, as it is encoded.
pub(super) struct Ended<'a> {
    pub(super) context: &'a SpanContext,
    pub(super) parent: Option<SpanId>,
    pub(super) parent_remote: bool,
    pub(super) name: &'a str,
    pub(super) kind: &'a SpanKind,
    pub(super) start: SystemTime,
    pub(super) end: SystemTime,
    pub(super) attributes: &'a [KeyValue],
    /// Text attributes borrowed from whoever holds the span, written after
    /// `attributes` (the holder keeps the keys of both unique).
    pub(super) texts: &'a [(&'a str, &'a str)],
    pub(super) events: &'a [Event],
    pub(super) links: &'a [Link],
    pub(super) status: &'a Status,
    pub(super) dropped: Dropped,
}

/// How many attributes, events and links a span did not keep.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Dropped {
    pub(super) attributes: u32,
    pub(super) events: u32,
    pub(super) links: u32,
}

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags`: the parent's remoteness is known, and it is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// `v` as a varint in `out`; returns its length.
fn varint_into(out: &mut [u8; 10], mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

#[inline]
fn varint(s: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        s.push(v as u8);
        return;
    }
    let mut out = [0u8; 10];
    let n = varint_into(&mut out, v);
    s.extend_from_slice(&out[..n]);
}

#[inline]
fn varint_len(v: u64) -> usize {
    varint_into(&mut [0u8; 10], v)
}

/// A field's tag.
#[inline]
fn key(s: &mut Vec<u8>, field: u32, wire: u32) {
    varint(s, u64::from(field << 3 | wire));
}

/// The tag and length of a length-delimited field whose `len` bytes
/// follow.
#[inline]
fn delimited(s: &mut Vec<u8>, field: u32, len: usize) {
    key(s, field, LEN);
    varint(s, len as u64);
}

#[inline]
fn bytes(s: &mut Vec<u8>, field: u32, value: &[u8]) {
    delimited(s, field, value.len());
    s.extend_from_slice(value);
}

/// A string field, left out when empty (proto3's default).
#[inline]
fn string(s: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        bytes(s, field, value.as_bytes());
    }
}

/// A varint field, left out when zero.
#[inline]
fn uint(s: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(s, field, VARINT);
        varint(s, value);
    }
}

#[inline]
fn fixed64(s: &mut Vec<u8>, field: u32, value: u64) {
    key(s, field, FIXED64);
    s.extend_from_slice(&value.to_le_bytes());
}

#[inline]
fn fixed32(s: &mut Vec<u8>, field: u32, value: u32) {
    key(s, field, FIXED32);
    s.extend_from_slice(&value.to_le_bytes());
}

/// A nested message: `body` is written, then its length put before it
/// (one move of the body's bytes, no second pass).
fn message(s: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(s, field, LEN);
    let start = s.len();
    body(s);
    let mut prefix = [0u8; 10];
    let n = varint_into(&mut prefix, (s.len() - start) as u64);
    s.extend_from_slice(&prefix[..n]);
    s[start..].rotate_right(n);
}

/// A length-delimited field's size: its tag (fields here are below 16),
/// its length, and `len` bytes.
#[inline]
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The size of `value`'s `AnyValue` (its lengths are computed, so that
/// attributes, most of what a span holds, are written in one pass).
#[inline]
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        Value::String(v) => field_len(v.as_str().len()),
        Value::Array(array) => field_len(array_value_len(array)),
        other => field_len(other.to_string().len()),
    }
}

/// `AnyValue`'s fields.
fn any_value(s: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            key(s, 2, VARINT);
            varint(s, u64::from(*b));
        }
        Value::I64(i) => {
            key(s, 3, VARINT);
            varint(s, *i as u64);
        }
        Value::F64(f) => fixed64(s, 4, f.to_bits()),
        Value::String(v) => bytes(s, 1, v.as_str().as_bytes()),
        Value::Array(array) => {
            delimited(s, 5, array_value_len(array));
            array_value(s, array);
        }
        // A kind this encoder does not know (the type is non-exhaustive):
        // its text.
        other => bytes(s, 1, other.to_string().as_bytes()),
    }
}

/// `ArrayValue`'s elements, as values.
fn elements(array: &Array) -> Vec<Value> {
    match array {
        Array::Bool(v) => v.iter().map(|b| Value::Bool(*b)).collect(),
        Array::I64(v) => v.iter().map(|i| Value::I64(*i)).collect(),
        Array::F64(v) => v.iter().map(|f| Value::F64(*f)).collect(),
        Array::String(v) => v.iter().map(|t| Value::String(t.clone())).collect(),
        other => vec![Value::String(other.to_string().into())],
    }
}

fn array_value_len(array: &Array) -> usize {
    elements(array)
        .iter()
        .map(|v| field_len(any_value_len(v)))
        .sum()
}

/// `ArrayValue`'s `values`.
fn array_value(s: &mut Vec<u8>, array: &Array) {
    for v in elements(array) {
        delimited(s, 1, any_value_len(&v));
        any_value(s, &v);
    }
}

/// A repeated `KeyValue` field.
fn attributes(s: &mut Vec<u8>, field: u32, list: &[KeyValue]) {
    for kv in list {
        let value = any_value_len(&kv.value);
        key_value(s, field, kv.key.as_str(), value, |s| {
            any_value(s, &kv.value)
        });
    }
}

/// A repeated `KeyValue` field of text values.
fn texts(s: &mut Vec<u8>, field: u32, list: &[(&str, &str)]) {
    for (name, value) in list {
        let value_len = field_len(value.len());
        key_value(s, field, name, value_len, |s| bytes(s, 1, value.as_bytes()));
    }
}

/// One `KeyValue` entry of `field`: `name`, and an `AnyValue` of
/// `value_len` bytes that `value` writes.
#[inline]
fn key_value(
    s: &mut Vec<u8>,
    field: u32,
    name: &str,
    value_len: usize,
    value: impl FnOnce(&mut Vec<u8>),
) {
    let name_len = if name.is_empty() {
        0
    } else {
        field_len(name.len())
    };
    delimited(s, field, name_len + field_len(value_len));
    string(s, 1, name);
    delimited(s, 2, value_len);
    value(s);
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn status(s: &mut Vec<u8>, status: &Status) {
    match status {
        Status::Unset => {}
        Status::Ok => uint(s, 3, 1),
        Status::Error { description } => {
            string(s, 2, description);
            uint(s, 3, 2);
        }
    }
}

/// A link's or the span's own identity fields.
fn identity(s: &mut Vec<u8>, context: &SpanContext) {
    bytes(s, 1, &context.trace_id().to_bytes());
    bytes(s, 2, &context.span_id().to_bytes());
    string(s, 3, &context.trace_state().header());
}

/// `Span`'s fields.
pub(super) fn span_fields(s: &mut Vec<u8>, span: &Ended<'_>) {
    identity(s, span.context);
    if let Some(parent) = span.parent {
        bytes(s, 4, &parent.to_bytes());
    }
    string(s, 5, span.name);
    uint(s, 6, kind(span.kind));
    fixed64(s, 7, nanos(span.start));
    fixed64(s, 8, nanos(span.end));
    attributes(s, 9, span.attributes);
    texts(s, 9, span.texts);
    uint(s, 10, u64::from(span.dropped.attributes));
    for event in span.events {
        message(s, 11, |s| {
            fixed64(s, 1, nanos(event.timestamp));
            string(s, 2, &event.name);
            attributes(s, 3, &event.attributes);
            uint(s, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint(s, 12, u64::from(span.dropped.events));
    for link in span.links {
        message(s, 13, |s| {
            identity(s, &link.span_context);
            attributes(s, 4, &link.attributes);
            uint(s, 5, u64::from(link.dropped_attributes_count));
            fixed32(
                s,
                6,
                flags(&link.span_context, link.span_context.is_remote()),
            );
        });
    }
    uint(s, 14, u64::from(span.dropped.links));
    if !matches!(span.status, Status::Unset) {
        message(s, 15, |s| status(s, span.status));
    }
    fixed32(s, 16, flags(span.context, span.parent_remote));
}

/// `SpanFlags`: the trace flags and whether the parent (or the linked span)
/// is remote.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    let remote = if remote { IS_REMOTE } else { 0 };
    u32::from(context.trace_flags().to_u8()) | HAS_IS_REMOTE | remote
}

/// Appends `span` as one entry of `ScopeSpans.spans`.
#[cfg(test)]
fn encode_span(out: &mut Vec<u8>, span: &Ended<'_>) {
    span_entry(out, |s| span_fields(s, span));
}

/// Appends one entry of `ScopeSpans.spans` whose fields ([`span_fields`])
/// `fields` writes: room for a two-byte length is left before them, so
/// that a span of 128 bytes to 16 KiB (nearly all) is written in place and
/// never moved; any other is moved once.
pub(super) fn span_entry(out: &mut Vec<u8>, fields: impl FnOnce(&mut Vec<u8>)) {
    key(out, 2, LEN);
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    fields(out);
    let mut prefix = [0u8; 10];
    let n = varint_into(&mut prefix, (out.len() - at - 2) as u64);
    match n {
        2 => out[at..at + 2].copy_from_slice(&prefix[..2]),
        _ => drop(out.splice(at..at + 2, prefix[..n].iter().copied())),
    }
}

/// The parts of a request that every batch shares: the resource and the
/// instrumentation scope, encoded once.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Envelope {
    /// `resource`'s attributes, and the scope `name` at `version`.
    pub(super) fn new(resource: &[KeyValue], name: &str, version: &str) -> Envelope {
        let mut encoded = Vec::new();
        attributes(&mut encoded, 1, resource);
        let mut scope = Vec::new();
        string(&mut scope, 1, name);
        string(&mut scope, 2, version);
        Envelope {
            resource: encoded,
            scope,
        }
    }

    /// An `ExportTraceServiceRequest` of the entries [`span_entry`] wrote
    /// into `spans` (their lengths computed, so that the
    /// batch is copied once).
    pub(super) fn request(&self, spans: &[u8]) -> Vec<u8> {
        let scope_spans = field_len(self.scope.len()) + spans.len();
        let resource_spans = field_len(self.resource.len()) + field_len(scope_spans);
        let mut out = Vec::with_capacity(field_len(resource_spans));
        delimited(&mut out, 1, resource_spans);
        bytes(&mut out, 1, &self.resource);
        delimited(&mut out, 2, scope_spans);
        bytes(&mut out, 1, &self.scope);
        out.extend_from_slice(spans);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::trace::v1 as proto;
    use proptest::prelude::*;
    use prost::Message as _;
    use std::time::{Duration, UNIX_EPOCH};

    /// One span's parts, owned (an [`Ended`] borrows them).
    #[derive(Debug, Clone)]
    struct Parts {
        context: SpanContext,
        parent: Option<(SpanId, bool)>,
        name: String,
        kind: SpanKind,
        start: SystemTime,
        end: SystemTime,
        attributes: Vec<KeyValue>,
        texts: Vec<(String, String)>,
        events: Vec<Event>,
        links: Vec<Link>,
        status: Status,
        dropped: (u32, u32, u32),
    }

    impl Parts {
        fn texts(&self) -> Vec<(&str, &str)> {
            self.texts
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }

        /// Its attributes as the collector sees them: the list, then the
        /// texts.
        fn all_attributes(&self) -> Vec<KeyValue> {
            let texts = self.texts.iter();
            let texts = texts.map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
            self.attributes.iter().cloned().chain(texts).collect()
        }

        fn ended<'a>(&'a self, texts: &'a [(&'a str, &'a str)]) -> Ended<'a> {
            Ended {
                context: &self.context,
                parent: self.parent.map(|p| p.0),
                parent_remote: self.parent.is_some_and(|p| p.1),
                name: &self.name,
                kind: &self.kind,
                start: self.start,
                end: self.end,
                attributes: &self.attributes,
                texts,
                events: &self.events,
                links: &self.links,
                status: &self.status,
                dropped: Dropped {
                    attributes: self.dropped.0,
                    events: self.dropped.1,
                    links: self.dropped.2,
                },
            }
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            any::<f64>().prop_map(Value::F64),
            ".{0,300}".prop_map(Value::from),
            prop::collection::vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec(any::<f64>(), 0..4).prop_map(|v| Value::Array(v.into())),
            prop::collection::vec(".{0,20}", 0..4).prop_map(|v| Value::Array(Array::String(
                v.into_iter()
                    .map(opentelemetry::StringValue::from)
                    .collect()
            ))),
        ]
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::vec(("[a-z._]{1,30}", value()), 0..12)
            .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
    }

    fn context() -> impl Strategy<Value = SpanContext> {
        let state = prop::option::of("[a-z]{1,8}=[a-z0-9]{1,8}");
        (
            1..=u128::MAX,
            1..=u64::MAX,
            any::<bool>(),
            any::<bool>(),
            state,
        )
            .prop_map(|(trace, span, sampled, remote, state)| {
                let state = state.map_or_else(TraceState::default, |s| {
                    s.parse().expect("a valid tracestate")
                });
                let flags = TraceFlags::new(u8::from(sampled));
                let (trace, span) = (TraceId::from(trace), SpanId::from(span));
                SpanContext::new(trace, span, flags, remote, state)
            })
    }

    fn time() -> impl Strategy<Value = SystemTime> {
        (0..u64::MAX / 2).prop_map(|n| UNIX_EPOCH + Duration::from_nanos(n))
    }

    fn kind() -> impl Strategy<Value = SpanKind> {
        prop_oneof![
            Just(SpanKind::Internal),
            Just(SpanKind::Server),
            Just(SpanKind::Client),
            Just(SpanKind::Producer),
            Just(SpanKind::Consumer),
        ]
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Unset),
            Just(Status::Ok),
            ".{0,60}".prop_map(Status::error),
        ]
    }

    fn parts() -> impl Strategy<Value = Parts> {
        let event = (".{0,20}", time(), attributes(), any::<u32>())
            .prop_map(|(n, t, a, d)| Event::new(n, t, a, d));
        let link = (context(), attributes(), any::<u32>()).prop_map(|(c, a, d)| Link::new(c, a, d));
        let head = (
            context(),
            prop::option::of((1..=u64::MAX, any::<bool>())),
            ".{0,80}",
            kind(),
        );
        let times = (time(), time());
        let texts = prop::collection::vec(("[a-z._]{1,30}", ".{0,40}"), 0..6);
        let lists = (
            (attributes(), texts),
            prop::collection::vec(event, 0..3),
            prop::collection::vec(link, 0..3),
        );
        let tail = (status(), any::<(u32, u32, u32)>());
        (head, times, lists, tail).prop_map(
            |(
                (context, parent, name, kind),
                (start, end),
                ((attributes, texts), events, links),
                (status, dropped),
            )| Parts {
                context,
                parent: parent.map(|(id, remote)| (SpanId::from(id), remote)),
                name,
                kind,
                start,
                end,
                attributes,
                texts,
                events,
                links,
                status,
                dropped,
            },
        )
    }

    fn same_value(ours: &Value, theirs: &AnyValue) -> bool {
        use any_value::Value as V;
        let theirs = theirs.value.as_ref();
        match (ours, theirs) {
            // proto3 leaves a default scalar out: an absent value is it.
            (Value::Bool(a), Some(V::BoolValue(b))) => a == b,
            (Value::Bool(false), None) | (Value::I64(0), None) => true,
            (Value::I64(a), Some(V::IntValue(b))) => a == b,
            (Value::F64(a), Some(V::DoubleValue(b))) => a.to_bits() == b.to_bits(),
            (Value::String(a), Some(V::StringValue(b))) => a.as_str() == b,
            (Value::String(a), None) => a.as_str().is_empty(),
            (Value::Array(a), Some(V::ArrayValue(b))) => {
                let ours: Vec<Value> = match a {
                    Array::Bool(v) => v.iter().map(|x| Value::Bool(*x)).collect(),
                    Array::I64(v) => v.iter().map(|x| Value::I64(*x)).collect(),
                    Array::F64(v) => v.iter().map(|x| Value::F64(*x)).collect(),
                    Array::String(v) => v.iter().map(|x| Value::String(x.clone())).collect(),
                    _ => unreachable!("the test makes no other"),
                };
                ours.len() == b.values.len()
                    && ours.iter().zip(&b.values).all(|(o, t)| same_value(o, t))
            }
            (Value::Array(a), None) => a.to_string() == "[]",
            _ => false,
        }
    }

    fn same_attributes(
        ours: &[KeyValue],
        theirs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    ) {
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(theirs) {
            assert_eq!(o.key.as_str(), t.key);
            let value = t.value.clone().unwrap_or_default();
            assert!(same_value(&o.value, &value), "{o:?} vs {t:?}");
        }
    }

    fn flags_of(context: &SpanContext, remote: bool) -> u32 {
        let known = proto::SpanFlags::ContextHasIsRemoteMask as u32;
        let is = proto::SpanFlags::ContextIsRemoteMask as u32;
        u32::from(context.trace_flags().to_u8()) | known | if remote { is } else { 0 }
    }

    fn check(ours: &Parts, theirs: &proto::Span) {
        let c = &ours.context;
        assert_eq!(theirs.trace_id, c.trace_id().to_bytes());
        assert_eq!(theirs.span_id, c.span_id().to_bytes());
        assert_eq!(theirs.trace_state, c.trace_state().header());
        let parent = ours
            .parent
            .map(|p| p.0.to_bytes().to_vec())
            .unwrap_or_default();
        assert_eq!(theirs.parent_span_id, parent);
        assert_eq!(theirs.name, ours.name);
        let kind = match ours.kind {
            SpanKind::Internal => proto::span::SpanKind::Internal,
            SpanKind::Server => proto::span::SpanKind::Server,
            SpanKind::Client => proto::span::SpanKind::Client,
            SpanKind::Producer => proto::span::SpanKind::Producer,
            SpanKind::Consumer => proto::span::SpanKind::Consumer,
        };
        assert_eq!(theirs.kind, kind as i32);
        assert_eq!(theirs.start_time_unix_nano, nanos(ours.start));
        assert_eq!(theirs.end_time_unix_nano, nanos(ours.end));
        same_attributes(&ours.all_attributes(), &theirs.attributes);
        let d = ours.dropped;
        assert_eq!(
            (
                theirs.dropped_attributes_count,
                theirs.dropped_events_count,
                theirs.dropped_links_count
            ),
            d
        );
        assert_eq!(theirs.events.len(), ours.events.len());
        for (o, t) in ours.events.iter().zip(&theirs.events) {
            assert_eq!(
                (t.time_unix_nano, t.name.as_str()),
                (nanos(o.timestamp), &*o.name)
            );
            same_attributes(&o.attributes, &t.attributes);
            assert_eq!(t.dropped_attributes_count, o.dropped_attributes_count);
        }
        assert_eq!(theirs.links.len(), ours.links.len());
        for (o, t) in ours.links.iter().zip(&theirs.links) {
            let lc = &o.span_context;
            assert_eq!(t.trace_id, lc.trace_id().to_bytes());
            assert_eq!(t.span_id, lc.span_id().to_bytes());
            assert_eq!(t.trace_state, lc.trace_state().header());
            same_attributes(&o.attributes, &t.attributes);
            assert_eq!(t.dropped_attributes_count, o.dropped_attributes_count);
            assert_eq!(t.flags, flags_of(lc, lc.is_remote()));
        }
        let status = theirs.status.clone().unwrap_or_default();
        let expected = match &ours.status {
            Status::Unset => (proto::status::StatusCode::Unset, String::new()),
            Status::Ok => (proto::status::StatusCode::Ok, String::new()),
            Status::Error { description } => {
                (proto::status::StatusCode::Error, description.to_string())
            }
        };
        assert_eq!(
            (status.code, status.message),
            (expected.0 as i32, expected.1)
        );
        assert_eq!(theirs.flags, flags_of(c, ours.parent.is_some_and(|p| p.1)));
    }

    /// An entry's length prefix is the shortest varint at every size
    /// (one, two and three bytes), as a length-known field would have it.
    #[test]
    fn entries_are_framed_as_their_length_says() {
        for size in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut expected = vec![9];
            bytes(&mut expected, 2, &body);
            let mut framed = vec![9];
            span_entry(&mut framed, |s| s.extend_from_slice(&body));
            assert_eq!(framed, expected, "{size}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the spans hold, the official OTLP definitions decode a
        /// batch of them, with its resource and scope, to the same values.
        #[test]
        fn the_official_definitions_decode_every_batch(spans in prop::collection::vec(parts(), 0..6), resource in attributes()) {
            let envelope = Envelope::new(&resource, "warden", "1.2.3");
            let mut batch = Vec::new();
            for span in &spans {
                encode_span(&mut batch, &span.ended(&span.texts()));
            }
            let request = ExportTraceServiceRequest::decode(&envelope.request(&batch)[..]).expect("decodes");
            prop_assert_eq!(request.resource_spans.len(), 1);
            let rs = &request.resource_spans[0];
            same_attributes(&resource, &rs.resource.clone().unwrap_or_default().attributes);
            prop_assert_eq!(rs.scope_spans.len(), 1);
            let ss = &rs.scope_spans[0];
            let scope = ss.scope.clone().unwrap_or_default();
            prop_assert_eq!((scope.name.as_str(), scope.version.as_str()), ("warden", "1.2.3"));
            prop_assert_eq!(ss.spans.len(), spans.len());
            for (ours, theirs) in spans.iter().zip(&ss.spans) {
                check(ours, theirs);
            }
        }
    }
}

//! The host's own recorded span: kept in memory while it runs, held by
//! whoever started it (a call, an MCP request, an effect), and encoded as
//! OTLP protobuf into the [`Batch`] when it ends. It stands in for the
//! SDK's span, whose boxing into a context, locks, channel and conversion
//! into protobuf structs cost a server at tens of thousands of spans a
//! second more than the work they describe. A span's ids travel on their
//! own ([`SpanContext`]), to be a parent or a `traceparent`.

use super::batch::Batch;
use super::otlp::{Dropped, Ended};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{KeyValue, StringValue};
use std::time::SystemTime;

/// Attributes a span keeps at most (the SDK's default limit); past it
/// each is counted as dropped.
const MAX_ATTRIBUTES: usize = 128;

/// What a sampled span starts with.
pub(super) struct SpanStart {
    pub(super) name: StringValue,
    pub(super) kind: SpanKind,
    pub(super) attributes: Vec<KeyValue>,
}

/// What every written span has: its ids, its parent's (and whether that
/// parent was another process's), its name, kind and times.
pub(super) struct Head<'a> {
    pub(super) context: &'a SpanContext,
    pub(super) parent: Option<(SpanId, bool)>,
    pub(super) name: &'a str,
    pub(super) kind: SpanKind,
    pub(super) start: SystemTime,
    pub(super) end: SystemTime,
}

/// The parent a span records: `parent`'s id when it is valid.
pub(super) fn parent_of(parent: &SpanContext) -> Option<(SpanId, bool)> {
    parent
        .is_valid()
        .then(|| (parent.span_id(), parent.is_remote()))
}

/// Writes an ended span into `batch`'s queue: `head`, its attributes
/// (`attributes` held, `texts` borrowed) and its status.
pub(super) fn write(
    batch: &Batch,
    head: Head<'_>,
    (attributes, texts): (&[KeyValue], &[(&str, &str)]),
    status: &Status,
    dropped_attributes: u32,
) {
    let ended = Ended {
        context: head.context,
        parent: head.parent.map(|(id, _)| id),
        parent_remote: head.parent.is_some_and(|(_, remote)| remote),
        name: head.name,
        kind: &head.kind,
        start: head.start,
        end: head.end,
        attributes,
        texts,
        events: &[],
        links: &[],
        status,
        dropped: Dropped {
            attributes: dropped_attributes,
            ..Dropped::default()
        },
    };
    batch.push(|out| super::otlp::span_fields(out, &ended));
}

/// A span being recorded; [`end`](Self::end) sends it on its way.
pub(super) struct Recorded {
    context: SpanContext,
    /// The parent span, and whether it was another process's.
    parent: Option<(SpanId, bool)>,
    name: StringValue,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    status: Status,
    dropped_attributes: u32,
}

impl Recorded {
    /// Starts recording a span with `context` (its ids), under `parent`'s
    /// span when that is valid, started at `at`.
    pub(super) fn start(
        context: SpanContext,
        parent: &SpanContext,
        start: SpanStart,
        at: SystemTime,
    ) -> Recorded {
        let mut attributes = start.attributes;
        let over = attributes.len().saturating_sub(MAX_ATTRIBUTES);
        attributes.truncate(MAX_ATTRIBUTES);
        Recorded {
            context,
            parent: parent_of(parent),
            name: start.name,
            kind: start.kind,
            start: at,
            attributes,
            status: Status::Unset,
            dropped_attributes: u32::try_from(over).unwrap_or(u32::MAX),
        }
    }

    /// Sets `attribute`, replacing the value of one with the same key (an
    /// OTLP span's keys are unique).
    pub(super) fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(kept) = self.attributes.iter_mut().find(|a| a.key == attribute.key) {
            kept.value = attribute.value;
        } else if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push(attribute);
        } else {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
        }
    }

    /// Sets the status unless one of higher order is set (`Ok` over
    /// `Error` over `Unset`, as OpenTelemetry's API says).
    pub(super) fn set_status(&mut self, status: Status) {
        if status > self.status {
            self.status = status;
        }
    }

    /// Ends it at `end`: encoded into `batch`'s queue.
    pub(super) fn end(self, batch: &Batch, end: SystemTime) {
        let head = Head {
            context: &self.context,
            parent: self.parent,
            name: self.name.as_str(),
            kind: self.kind,
            start: self.start,
            end,
        };
        let attributes = (&self.attributes[..], &[][..]);
        write(
            batch,
            head,
            attributes,
            &self.status,
            self.dropped_attributes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceFlags, TraceId, TraceState};

    fn ids(span: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn attributes_stay_unique_and_bounded_and_the_status_only_rises() {
        let start = SpanStart {
            name: "s".into(),
            kind: SpanKind::Internal,
            attributes: (0..MAX_ATTRIBUTES + 3)
                .map(|i| KeyValue::new(format!("k{i}"), 1))
                .collect(),
        };
        let mut span = Recorded::start(ids(2), &ids(1), start, SystemTime::now());
        assert_eq!(span.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(span.dropped_attributes, 3);
        span.set_attribute(KeyValue::new("k0", 2));
        assert_eq!(span.attributes[0].value, 2.into());
        span.set_attribute(KeyValue::new("new", 1));
        assert_eq!(span.dropped_attributes, 4);
        span.set_status(Status::error("bad"));
        span.set_status(Status::Unset);
        assert_eq!(span.status, Status::error("bad"));
        span.set_status(Status::Ok);
        assert_eq!(span.status, Status::Ok);
        assert_eq!(span.parent, Some((SpanId::from(1), false)));
    }
}

//! The host's own recorded span: kept in memory while it runs, and encoded
//! as OTLP protobuf into its [`Batch`] when it ends (or when the last
//! context holding it is dropped). It stands in for the SDK's span, whose
//! records, channel and conversion into protobuf structs cost a server at
//! tens of thousands of spans a second more than the work they describe.

use super::batch::Batch;
use super::otlp::{Dropped, Ended};
use opentelemetry::trace::{Event, Link, SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{KeyValue, StringValue};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

/// Attributes, events and links a span keeps at most (the SDK's default
/// limits); past them each is counted as dropped.
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;

/// What a sampled span starts with.
pub(super) struct SpanStart {
    pub(super) name: StringValue,
    pub(super) kind: SpanKind,
    pub(super) attributes: Vec<KeyValue>,
}

/// A span being recorded.
pub(super) struct Recorded {
    context: SpanContext,
    /// The parent span, and whether it was another process's.
    parent: Option<(SpanId, bool)>,
    name: StringValue,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    links: Vec<Link>,
    status: Status,
    dropped: Dropped,
    batch: Arc<Batch>,
    ended: bool,
}

impl Recorded {
    /// Starts recording a span with `context` (its ids), under `parent`'s
    /// span when that is valid, started at `at`.
    pub(super) fn start(
        batch: Arc<Batch>,
        context: SpanContext,
        parent: &SpanContext,
        start: SpanStart,
        at: SystemTime,
    ) -> Recorded {
        let mut attributes = start.attributes;
        let dropped = Dropped {
            attributes: cut(&mut attributes, MAX_ATTRIBUTES),
            ..Dropped::default()
        };
        Recorded {
            context,
            parent: parent
                .is_valid()
                .then(|| (parent.span_id(), parent.is_remote())),
            name: start.name,
            kind: start.kind,
            start: at,
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Unset,
            dropped,
            batch,
            ended: false,
        }
    }

    fn ended(&self, end: SystemTime) -> Ended<'_> {
        Ended {
            context: &self.context,
            parent: self.parent.map(|(id, _)| id),
            parent_remote: self.parent.is_some_and(|(_, remote)| remote),
            name: self.name.as_str(),
            kind: &self.kind,
            start: self.start,
            end,
            attributes: &self.attributes,
            events: &self.events,
            links: &self.links,
            status: &self.status,
            dropped: self.dropped,
        }
    }
}

/// Whether `list` has room for one more of at most `max`; when it has
/// not, the one is counted in `dropped`.
fn room<T>(list: &[T], max: usize, dropped: &mut u32) -> bool {
    let room = list.len() < max;
    if !room {
        *dropped = dropped.saturating_add(1);
    }
    room
}

/// Keeps the first `max` of `list`; returns how many went.
fn cut<T>(list: &mut Vec<T>, max: usize) -> u32 {
    let over = list.len().saturating_sub(max);
    list.truncate(max);
    u32::try_from(over).unwrap_or(u32::MAX)
}

impl opentelemetry::trace::Span for Recorded {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        mut attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        if self.ended || !room(&self.events, MAX_EVENTS, &mut self.dropped.events) {
            return;
        }
        let dropped = cut(&mut attributes, MAX_ATTRIBUTES);
        self.events
            .push(Event::new(name, timestamp, attributes, dropped));
    }

    fn span_context(&self) -> &SpanContext {
        &self.context
    }

    fn is_recording(&self) -> bool {
        !self.ended
    }

    /// Sets `attribute`, replacing the value of one with the same key (an
    /// OTLP span's keys are unique).
    fn set_attribute(&mut self, attribute: KeyValue) {
        if self.ended {
            return;
        }
        if let Some(kept) = self.attributes.iter_mut().find(|a| a.key == attribute.key) {
            kept.value = attribute.value;
        } else if room(
            &self.attributes,
            MAX_ATTRIBUTES,
            &mut self.dropped.attributes,
        ) {
            self.attributes.push(attribute);
        }
    }

    /// Sets the status unless one of higher order is set (`Ok` over
    /// `Error` over `Unset`, as the API says).
    fn set_status(&mut self, status: Status) {
        if !self.ended && status > self.status {
            self.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if !self.ended {
            self.name = StringValue::from(new_name.into());
        }
    }

    fn add_link(&mut self, span_context: SpanContext, mut attributes: Vec<KeyValue>) {
        if self.ended
            || !span_context.is_valid()
            || !room(&self.links, MAX_LINKS, &mut self.dropped.links)
        {
            return;
        }
        let dropped = cut(&mut attributes, MAX_ATTRIBUTES);
        self.links
            .push(Link::new(span_context, attributes, dropped));
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let ended = self.ended(timestamp);
        self.batch.push(|out| super::otlp::span_fields(out, &ended));
    }
}

impl Drop for Recorded {
    /// A span nobody ended ends when the last context holding it goes.
    fn drop(&mut self) {
        opentelemetry::trace::Span::end(self);
    }
}

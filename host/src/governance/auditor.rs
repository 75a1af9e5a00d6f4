//! The per-instance effect recorder: each effect decision of a plugin,
//! tagged with the call running in its instance, written to the audit log,
//! with the volume one call can cause bounded:
//! - every guest-supplied text in a record (target, reason) is cut to
//!   [`MAX_FIELD_BYTES`], marked with its original length;
//! - after [`DENIALS_WRITTEN_PER_EFFECT`] denials of one effect in a call,
//!   further ones are counted and written as one summary record when the
//!   call ends;
//! - a call writes at most [`MAX_RECORDS_PER_CALL`] records one by one;
//!   past that, allowed effects are refused (an effect that cannot be
//!   recorded does not happen) and counted in the summary;
//! - the warning a denial logs is taken from the call's log budget
//!   (`limits.max-log-lines`), like the guest's own log lines;
//! - over time, the plugin's records per minute are bounded
//!   (`[audit] max-records-per-minute`, `max-bytes-per-minute`, see
//!   `budget.rs`): past them, denials are counted and allowed effects
//!   refused, and one summary says how many.

use crate::audit::{AuditLog, Effect, Entry, Outcome, OwnedReceipt, Pending, Wait};
use opentelemetry::trace::SpanContext;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Longest guest-supplied text kept in one field of a record.
pub(crate) const MAX_FIELD_BYTES: usize = 1024;
/// Records one call writes one by one at most.
pub(crate) const MAX_RECORDS_PER_CALL: u32 = 1000;
/// Denials of one effect one call writes one by one; the rest are counted.
pub(crate) const DENIALS_WRITTEN_PER_EFFECT: u32 = 10;

/// `s` cut to `max` bytes on a character boundary, with a marker that
/// gives the original length.
pub(crate) fn clip_field(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes]", &s[..end], s.len()).into()
}

/// Log lines a call may still write (`limits.max-log-lines`), shared by the
/// host log import, the guest's stdout/stderr and the warnings its denials
/// cause.
pub(crate) struct LogBudget {
    pub(crate) limit: u32,
    used: AtomicU32,
    dropped: AtomicU64,
}

impl LogBudget {
    pub(crate) fn new(limit: u32) -> Self {
        LogBudget {
            limit,
            used: Default::default(),
            dropped: Default::default(),
        }
    }
    /// Whether one more line may be written.
    pub(crate) fn take(&self) -> bool {
        if self.used.fetch_add(1, Relaxed) < self.limit {
            true
        } else {
            self.dropped.fetch_add(1, Relaxed);
            false
        }
    }
    /// Starts a new call's budget.
    pub(crate) fn reset(&self) {
        self.used.store(0, Relaxed);
        self.dropped.store(0, Relaxed);
    }
    /// Lines dropped since the last call to this (or to `reset`).
    pub(crate) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Relaxed)
    }
}

/// Effects counted instead of written in the call in progress.
#[derive(Default)]
struct Counted {
    denied: u32,
    refused: u32,
    last_target: String,
}

/// One instance's [`Scope`], and whether anything was recorded in it since
/// it was last finished (so that ending a call that recorded nothing takes
/// no lock).
#[derive(Default)]
struct ScopeCell {
    touched: AtomicBool,
    scope: Mutex<Scope>,
}

/// The call in progress in one instance and what it has written.
#[derive(Default)]
struct Scope {
    capability: String,
    call_id: String,
    /// The span of the call in progress (telemetry on and the call
    /// sampled or not): its effects' spans are its children.
    trace: Option<SpanContext>,
    written: u32,
    denials: Vec<(Effect, u32)>,
    counted: Vec<(Effect, Counted)>,
}

enum Admit {
    Write,
    Count,
    Refuse,
}

impl Scope {
    fn admit(&mut self, effect: Effect, decision: Outcome, target: &str) -> Admit {
        let over = self.written >= MAX_RECORDS_PER_CALL;
        let admit = if decision == Outcome::Deny {
            let n = match self.denials.iter_mut().find(|(e, _)| *e == effect) {
                Some((_, n)) => n,
                None => {
                    self.denials.push((effect, 0));
                    &mut self.denials.last_mut().expect("pushed").1
                }
            };
            *n += 1;
            if over || *n > DENIALS_WRITTEN_PER_EFFECT {
                Admit::Count
            } else {
                Admit::Write
            }
        } else if over {
            Admit::Refuse
        } else {
            Admit::Write
        };
        match admit {
            Admit::Write => self.written += 1,
            Admit::Count | Admit::Refuse => {
                let c = match self.counted.iter_mut().find(|(e, _)| *e == effect) {
                    Some((_, c)) => c,
                    None => {
                        self.counted.push((effect, Counted::default()));
                        &mut self.counted.last_mut().expect("pushed").1
                    }
                };
                match admit {
                    Admit::Count => c.denied += 1,
                    _ => c.refused += 1,
                }
                c.last_target.clear();
                c.last_target.push_str(&clip_field(target, MAX_FIELD_BYTES));
            }
        }
        admit
    }
}

/// A call as the instance that runs it knows it: its id in the audit log,
/// and the ids of its span when telemetry follows it.
#[derive(Clone, Copy)]
pub(crate) struct CallTag<'a> {
    pub(crate) id: &'a str,
    pub(crate) trace: Option<&'a SpanContext>,
}

impl<'a> CallTag<'a> {
    /// A call no span follows (a cleanup, a test).
    pub(crate) fn untraced(id: &'a str) -> CallTag<'a> {
        CallTag { id, trace: None }
    }
}

/// Writes a plugin's effect decisions to the audit log, tagged with the
/// call in progress in its instance.
#[derive(Clone)]
pub(crate) struct Auditor {
    log: Option<Arc<AuditLog>>,
    plugin: Arc<str>,
    digest: Arc<str>,
    scope: Arc<ScopeCell>,
    log_budget: Option<Arc<LogBudget>>,
    /// The plugin's records per minute, shared by all its instances.
    volume: Arc<super::budget::Budget>,
    /// Traces and metrics, when on: denials counted, effects' spans.
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// `warden.fuel.used` for this plugin (telemetry on).
    fuel: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Auditor {
    pub(crate) fn new(
        log: Option<Arc<AuditLog>>,
        plugin: Arc<str>,
        digest: Arc<str>,
        volume: super::budget::VolumeLimits,
    ) -> Auditor {
        let who = super::budget::Who::Plugin(plugin.clone());
        Auditor {
            volume: Arc::new(super::budget::Budget::new(volume, who, log.clone())),
            log,
            plugin,
            digest,
            scope: Default::default(),
            log_budget: None,
            telemetry: None,
            fuel: None,
        }
    }

    /// The same, reporting to `telemetry`.
    pub(crate) fn with_telemetry(
        mut self,
        telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    ) -> Auditor {
        self.fuel = telemetry.as_ref().map(|t| t.fuel_counter(&self.plugin));
        self.telemetry = telemetry;
        self
    }

    /// Starts the span of an outbound request of the call in this
    /// instance (telemetry on); it sets the request's `traceparent`.
    pub(crate) fn egress_span(
        &self,
        method: &str,
        url: &str,
        server: (&str, u16),
    ) -> Option<crate::telemetry::EffectSpan> {
        let telemetry = self.telemetry.as_ref()?;
        let parent = self.scope().trace.clone()?;
        telemetry.egress_started(&parent, method, url, server)
    }

    /// Starts the span of a name lookup of the call in this instance.
    pub(crate) fn lookup_span(&self, name: &str) -> Option<crate::telemetry::EffectSpan> {
        let telemetry = self.telemetry.as_ref()?;
        let parent = self.scope().trace.clone()?;
        telemetry.lookup_started(&parent, name)
    }

    /// Counts the fuel a call used (telemetry on).
    pub(crate) fn fuel_used(&self, fuel: u64) {
        if let Some(counter) = &self.fuel {
            counter.fetch_add(fuel, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The same log, plugin and volume budget with a scope of its own (one
    /// per instance), its warnings taken from `log_budget`.
    pub(crate) fn for_instance(&self, log_budget: Arc<LogBudget>) -> Auditor {
        Auditor {
            log: self.log.clone(),
            plugin: self.plugin.clone(),
            digest: self.digest.clone(),
            scope: Default::default(),
            log_budget: Some(log_budget),
            volume: self.volume.clone(),
            telemetry: self.telemetry.clone(),
            fuel: self.fuel.clone(),
        }
    }

    /// Writes the summary of what the plugin's volume budget held back in
    /// the minute under way (at shutdown).
    pub(crate) fn close_volume(&self) {
        self.volume.close();
    }

    fn scope(&self) -> std::sync::MutexGuard<'_, Scope> {
        self.scope.scope.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The call now running in this instance (what the previous one counted
    /// is written first).
    pub(crate) fn enter(&self, capability: &str, call: CallTag<'_>) {
        self.finish();
        let mut scope = self.scope();
        scope.capability.clear();
        scope.capability.push_str(capability);
        scope.call_id.clear();
        scope.call_id.push_str(call.id);
        scope.trace = call.trace.cloned();
    }

    /// The capability and call id of the call this instance is in (or was
    /// last in).
    pub(crate) fn current(&self) -> (String, String) {
        let scope = self.scope();
        (scope.capability.clone(), scope.call_id.clone())
    }

    /// Ends the entry into the guest in progress: what it counted instead
    /// of writing is written as one summary record per effect, and the
    /// per-call counts start again.
    pub(crate) fn finish(&self) {
        // Set under the lock by every record since the last finish; read
        // first, so that a call that recorded nothing writes nothing here.
        if !self.scope.touched.load(Relaxed) || !self.scope.touched.swap(false, Relaxed) {
            return;
        }
        let (counted, capability, call_id) = {
            let mut scope = self.scope();
            scope.written = 0;
            scope.denials.clear();
            if scope.counted.is_empty() {
                return;
            }
            (
                std::mem::take(&mut scope.counted),
                scope.capability.clone(),
                scope.call_id.clone(),
            )
        };
        let Some(log) = &self.log else { return };
        for (effect, c) in counted {
            let mut reason = String::new();
            if c.denied > 0 {
                reason.push_str(&format!(
                    "{} further `{}` denials in this call were counted, not written one by one \
                     (more than {DENIALS_WRITTEN_PER_EFFECT} of one effect, or past \
                     {MAX_RECORDS_PER_CALL} records)",
                    c.denied,
                    effect.as_str()
                ));
            }
            if c.refused > 0 {
                if !reason.is_empty() {
                    reason.push_str("; ");
                }
                reason.push_str(&format!(
                    "{} `{}` effects were refused: the call had written its \
                     {MAX_RECORDS_PER_CALL} audit records",
                    c.refused,
                    effect.as_str()
                ));
            }
            let result = log.append(Entry {
                plugin: self.plugin.to_string(),
                digest: self.digest.to_string(),
                capability: capability.clone(),
                call_id: call_id.clone(),
                effect,
                target: format!("{} more, last: {}", c.denied + c.refused, c.last_target),
                decision: Outcome::Deny,
                reason,
                duration_ms: None,
                client: None,
            });
            if let Err(e) = result {
                tracing::error!(plugin = %self.plugin, "audit log: {e}");
            }
        }
    }

    /// Records an effect decision; a denial also logs a warning, within the
    /// call's log budget. `false` if it could not be written: the caller
    /// then refuses the effect (fail closed). A denial is queued and not
    /// waited for (its effect does not happen either way); an allowed
    /// effect blocks this thread until its record is written: from async
    /// code, use [`record_async`](Self::record_async).
    pub(crate) fn record(
        &self,
        effect: Effect,
        target: &str,
        decision: Outcome,
        reason: &str,
    ) -> bool {
        match self.prepare(effect, target, decision, reason) {
            Prepared::Decided(written) => written,
            Prepared::Write(log, record) => {
                let receipt = log.submit(record, waiter(decision, Wait::Thread));
                self.written(receipt.and_then(|r| r.wait()))
            }
        }
    }

    /// [`record`](Self::record) for async code: the record is queued now
    /// (or the effect decided without one), and an allowed effect's record
    /// is awaited with [`Recording::done`] without holding the thread.
    pub(crate) fn record_async(
        &self,
        effect: Effect,
        target: &str,
        decision: Outcome,
        reason: &str,
    ) -> Recording {
        let outcome = match self.prepare(effect, target, decision, reason) {
            Prepared::Decided(written) => Err(written),
            Prepared::Write(log, record) => {
                match log.submit(record, waiter(decision, Wait::Task)) {
                    Ok(receipt) => Ok(receipt.owned(log.clone())),
                    Err(e) => Err(self.written(Err(e))),
                }
            }
        };
        Recording {
            outcome,
            plugin: self.plugin.clone(),
        }
    }

    fn written(&self, result: Result<(), crate::audit::AuditError>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(plugin = %self.plugin, "audit log: {e}");
                false
            }
        }
    }

    /// Everything about recording an effect but the write: the call's
    /// caps, the plugin's volume, the warning; then the record to write.
    fn prepare(&self, effect: Effect, target: &str, decision: Outcome, reason: &str) -> Prepared {
        if decision == Outcome::Deny {
            if let Some(t) = &self.telemetry {
                t.denied(effect.as_str());
            }
        }
        let (capability, call_id) = {
            let mut scope = self.scope();
            if self.log.is_none() && decision != Outcome::Deny {
                return Prepared::Decided(true);
            }
            self.scope.touched.store(true, Relaxed);
            match scope.admit(effect, decision, target) {
                Admit::Write => {}
                // A denial: the effect does not happen either way.
                Admit::Count => return Prepared::Decided(true),
                Admit::Refuse => return Prepared::Decided(false),
            }
            (scope.capability.clone(), scope.call_id.clone())
        };
        let target = clip_field(target, MAX_FIELD_BYTES);
        let reason = clip_field(reason, MAX_FIELD_BYTES);
        if self.log.is_some() {
            // About what the record takes in the log (fields plus framing).
            let bytes =
                (target.len() + reason.len() + capability.len() + call_id.len() + 320) as u64;
            if !self
                .volume
                .charge(1, bytes, decision == Outcome::Deny, &target)
            {
                return Prepared::Decided(decision == Outcome::Deny);
            }
        }
        if decision == Outcome::Deny && self.log_budget.as_ref().is_none_or(|b| b.take()) {
            tracing::warn!(
                target: "warden::audit", plugin = %self.plugin, effect = effect.as_str(),
                %target, decision = "deny", %reason, "denied"
            );
        }
        let Some(log) = &self.log else {
            return Prepared::Decided(true);
        };
        let record = Pending::new(Entry {
            plugin: self.plugin.to_string(),
            digest: self.digest.to_string(),
            capability,
            call_id,
            effect,
            target: target.into_owned(),
            decision,
            reason: reason.into_owned(),
            duration_ms: None,
            client: None,
        });
        Prepared::Write(log.clone(), record)
    }
}

/// Who waits for an effect's record: nobody for a denial (its effect does
/// not happen either way), else `allowed`.
fn waiter(decision: Outcome, allowed: Wait) -> Wait {
    if decision == Outcome::Deny {
        Wait::Nobody
    } else {
        allowed
    }
}

/// An effect's record, queued, or the effect decided without waiting for
/// one (`Err`: `true` to go on).
pub(crate) struct Recording {
    outcome: Result<OwnedReceipt, bool>,
    plugin: Arc<str>,
}

impl Recording {
    /// The answer when it is known without waiting: the effect was decided
    /// without a record (a cap, a count), or its record could not be queued.
    pub(crate) fn decided(&self) -> Option<bool> {
        self.outcome.as_ref().err().copied()
    }

    /// Whether the effect may go on: its record written (or none needed).
    pub(crate) async fn done(self) -> bool {
        match self.outcome {
            Err(go_on) => go_on,
            Ok(receipt) => match receipt.written().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(plugin = %self.plugin, "audit log: {e}");
                    false
                }
            },
        }
    }
}

/// An effect's record, made: already decided (`true`: go on), or to write.
enum Prepared {
    Decided(bool),
    Write(Arc<AuditLog>, Pending),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_with_their_length() {
        let long = "é".repeat(1000);
        let cut = clip_field(&long, 11);
        assert_eq!(cut, "ééééé…[truncated, 2000 bytes]");
        assert_eq!(clip_field("short", 11), "short");
    }

    #[test]
    fn repeated_denials_are_counted_and_allows_refused_past_the_cap() {
        let mut s = Scope::default();
        for i in 0..DENIALS_WRITTEN_PER_EFFECT {
            assert!(matches!(
                s.admit(Effect::Socket, Outcome::Deny, &i.to_string()),
                Admit::Write
            ));
        }
        assert!(matches!(
            s.admit(Effect::Socket, Outcome::Deny, "x"),
            Admit::Count
        ));
        // Another effect has its own count.
        assert!(matches!(
            s.admit(Effect::File, Outcome::Deny, "f"),
            Admit::Write
        ));
        while s.written < MAX_RECORDS_PER_CALL {
            assert!(matches!(
                s.admit(Effect::Egress, Outcome::Allow, "e"),
                Admit::Write
            ));
        }
        assert!(matches!(
            s.admit(Effect::Egress, Outcome::Allow, "e"),
            Admit::Refuse
        ));
        assert_eq!(s.counted.len(), 2);
    }
}

//! Governance of calls: the `[policy]` rules (allow, deny or approval by
//! capability id), rate limits, per-plugin concurrency, and the audit log
//! every decision is written to. Effects inside a call are audited by the
//! sandbox through an [`Auditor`](super::audit::Auditor).

use super::audit::{AuditLog, Effect, Entry, Outcome};
use super::chain::{CallFields, Pending};
use super::rules::{CallPolicy, CallRule, RuleDecision};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warden_manifest::route::RateLimit;

/// A call waiting for approval, as the [`Approver`] sees it.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// The capability called.
    pub capability: String,
    /// The plugin that would serve it.
    pub plugin: String,
    /// The call's input (already checked against the input schema).
    pub input: Value,
    /// The caller's session key, if any.
    pub session_key: Option<String>,
    /// The rule's capability pattern that asked for approval.
    pub rule: String,
    /// The call's id in the audit log.
    pub call_id: String,
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// The call may run.
    Approve,
    /// The call is refused, with the reason given to the caller.
    Deny(String),
}

/// Decides calls that match an `approve` rule. Supplied by the embedder
/// ([`Host::set_approver`](crate::Host::set_approver)); nothing a guest does
/// can reach it. Without one, such calls are denied.
pub trait Approver: Send + Sync {
    /// Approves or denies one call.
    fn approve<'a>(
        &'a self,
        request: &'a ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = Approval> + Send + 'a>>;
}

struct Slots {
    semaphore: Arc<Semaphore>,
    max: u32,
    wait: Duration,
}

/// The host's governance: rules, windows, slots, approver, audit log.
pub(crate) struct Governance {
    policy: CallPolicy,
    slots: HashMap<String, Slots>,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    approver: RwLock<Option<Arc<dyn Approver>>>,
    audit: Option<Arc<AuditLog>>,
    call_prefix: String,
    next_call: AtomicU64,
    /// Each client's records per minute (its calls).
    clients: super::budget::ClientBudgets,
}

/// An admitted call: what it was admitted with (released when it ends),
/// and the promise of its end record. [`end`](Admission::end) writes the
/// record with the call's outcome; if the call is dropped before (its caller
/// went away), `Drop` writes it as `cancelled`. Either way, exactly once.
pub(crate) struct Admission<'a> {
    _slot: Option<OwnedSemaphorePermit>,
    governance: &'a Governance,
    call: CallIds<'a>,
    /// The call's records' common fields; `None` without a log.
    fields: Option<CallFields>,
    started: Instant,
    open: bool,
}

/// What names one call in its records.
#[derive(Clone, Copy)]
pub(crate) struct CallIds<'a> {
    /// The capability id.
    pub(crate) id: &'a str,
    /// The plugin that serves it.
    pub(crate) plugin: &'a str,
    /// That plugin's component digest.
    pub(crate) digest: &'a str,
    /// The call's id.
    pub(crate) call_id: &'a str,
    /// Who asked for it, when known.
    pub(crate) client: Option<&'a str>,
    /// The capability's flattened metadata (rules may match on it).
    pub(crate) metadata: &'a std::collections::BTreeMap<String, Value>,
}

impl Admission<'_> {
    /// Records how the call ended; an error means the record could not be
    /// written (the caller fails closed).
    pub(crate) async fn end(mut self, outcome: &Result<Value>) -> Result<()> {
        self.open = false;
        // Nothing to build on the call path when there is no log.
        let (Some(log), Some(fields)) = (&self.governance.audit, &self.fields) else {
            return Ok(());
        };
        let error;
        let (decision, reason) = match outcome {
            Ok(_) => (Outcome::Ok, "completed"),
            Err(e) => {
                error = e.to_string();
                (Outcome::Error, error.as_str())
            }
        };
        let ms = self.started.elapsed().as_millis() as u64;
        // Queued now: dropped while waiting for the writer, the record is
        // still written, and `Drop` writes no second one.
        let queued = log.append_record_async(Pending::call(fields, decision, reason, Some(ms)));
        queued.await.map_err(unaudited)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let (Some(log), Some(fields)) = (&self.governance.audit, &self.fields) else {
            return;
        };
        let ms = self.started.elapsed().as_millis() as u64;
        let reason = format!(
            "the caller went away after {ms} ms; what the call did until then is recorded above under its call id, and its result is discarded"
        );
        // Nobody is left to wait for it.
        let record = Pending::call(fields, Outcome::Cancelled, &reason, Some(ms));
        if let Err(e) = log.append_record_detached(record) {
            tracing::error!(call_id = self.call.call_id, "{e}");
        }
    }
}

impl Governance {
    /// Governance by `policy`, writing to `audit` if there is a log.
    pub(crate) fn new(
        policy: CallPolicy,
        audit: Option<Arc<AuditLog>>,
        volume: super::budget::VolumeLimits,
    ) -> Governance {
        let slots = policy
            .plugins
            .iter()
            .filter_map(|(name, p)| {
                let max = p.max_concurrent?;
                Some((
                    name.clone(),
                    Slots {
                        semaphore: Arc::new(Semaphore::new(max as usize)),
                        max,
                        wait: Duration::from_millis(p.max_wait_ms),
                    },
                ))
            })
            .collect();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Governance {
            policy,
            slots,
            windows: Mutex::new(HashMap::new()),
            approver: RwLock::new(None),
            call_prefix: format!("{:x}{:x}", nanos, std::process::id()),
            next_call: AtomicU64::new(1),
            clients: super::budget::ClientBudgets::new(volume, audit.clone()),
            audit,
        }
    }

    /// The records and bytes per minute a plugin or client may write.
    pub(crate) fn volume_limits(&self) -> super::budget::VolumeLimits {
        self.clients.limits()
    }

    /// Writes every client's pending volume summary (at shutdown).
    pub(crate) fn close_volume(&self) {
        self.clients.close();
    }

    pub(crate) fn audit(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    pub(crate) fn set_approver(&self, approver: Option<Arc<dyn Approver>>) {
        *self.approver.write().unwrap_or_else(|e| e.into_inner()) = approver;
    }

    /// A new call id, unique across hosts and restarts.
    pub(crate) fn call_id(&self) -> String {
        let n = self.next_call.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.call_prefix.len() + 21);
        id.push_str(&self.call_prefix);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(n));
        id
    }

    /// The component digest a plugin must have, if pinned.
    pub(crate) fn pinned_digest(&self, plugin: &str) -> Option<&str> {
        self.policy.plugins.get(plugin)?.digest.as_deref()
    }

    /// Writes one record; an error means it was not written (fail closed).
    pub(crate) fn record(&self, entry: Entry) -> Result<()> {
        match &self.audit {
            None => Ok(()),
            Some(log) => log.append(entry).map_err(unaudited),
        }
    }

    /// Like [`record`](Self::record) from async code, for a record already
    /// made (`None` without a log): waits for the writer without holding a
    /// thread. The record is queued at once.
    fn record_async(
        &self,
        record: Option<Pending>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + '_ {
        let queued = self
            .audit
            .as_ref()
            .zip(record)
            .map(|(log, record)| log.append_record_async(record));
        async move {
            match queued {
                None => Ok(()),
                Some(f) => f.await.map_err(unaudited),
            }
        }
    }

    /// The pattern of the rule that asks for approval of calls to `id`, or
    /// `None` when such calls are not subject to approval.
    pub(crate) fn approval_rule(
        &self,
        id: &str,
        metadata: &std::collections::BTreeMap<String, Value>,
    ) -> Option<String> {
        match self.rule(id, metadata) {
            (RuleDecision::Approve, rule) => {
                Some(rule.map_or_else(|| "*".into(), |r| r.capability.clone()))
            }
            _ => None,
        }
    }

    fn rule(
        &self,
        id: &str,
        metadata: &std::collections::BTreeMap<String, Value>,
    ) -> (RuleDecision, Option<&CallRule>) {
        match self.policy.rules.iter().find(|r| r.matches(id, metadata)) {
            Some(r) => (r.decision, Some(r)),
            None => (self.policy.default, None),
        }
    }

    /// Counts one call in the sliding window `key`; `Err` when `limit`
    /// calls already happened within `per`.
    fn take(&self, key: &str, limit: u32, per: Duration) -> std::result::Result<(), ()> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.entry(key.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= per)
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return Err(());
        }
        window.push_back(now);
        Ok(())
    }

    /// Decides whether a call may run: the rule, then `validate` (the input
    /// against its schema), the rate limits, approval, a concurrency slot. Every decision is audited; a denial is a typed error.
    /// `rate_hint` is the capability's `*.rate-limit` metadata.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn admit<'a>(
        &'a self,
        call: CallIds<'a>,
        started: Instant,
        rate_hint: Option<&RateLimit>,
        input: &Value,
        session_key: Option<&str>,
        approver: Option<&Arc<dyn Approver>>,
        validate: impl FnOnce() -> Result<()>,
    ) -> Result<Admission<'a>> {
        let CallIds {
            id,
            plugin,
            call_id,
            ..
        } = call;
        let entry = |decision: Outcome, reason: String| call_entry(&call, decision, reason, None);
        let fields = self
            .audit
            .as_ref()
            .map(|_| CallFields::new(plugin, call.digest, id, call_id, call.client));
        // Awaited without holding the thread: a flood of refused calls
        // waits for the writer in its tasks, not in the runtime's workers.
        let deny = |error: Error| {
            let refusal = fields
                .as_ref()
                .map(|f| Pending::call(f, Outcome::Deny, &error.to_string(), None));
            let queued = self.record_async(refusal);
            async move {
                queued.await?;
                Err::<Admission, _>(error)
            }
        };
        // A client's calls are charged to its records per minute (their
        // admission and end records); past it the call is refused and
        // counted, not written, and the count summarized.
        if let (Some(client), Some(_)) = (call.client, &self.audit) {
            let bytes = 2 * (id.len() + plugin.len() + client.len() + 400) as u64;
            // Its admission and end records.
            if !self.clients.of(client).charge(2, bytes, false, id) {
                return Err(Error::RateLimited {
                    capability: id.to_string(),
                    message: format!(
                        "the client's calls are past [audit] max-records-per-minute ({}) or max-bytes-per-minute ({})",
                        self.volume_limits().records, self.volume_limits().bytes
                    ),
                });
            }
        }
        let (decision, rule) = self.rule(id, call.metadata);
        let rule_name: std::borrow::Cow<'_, str> = rule.map_or_else(
            || "policy.default".into(),
            |r| format!("policy rule `{}`", r.capability).into(),
        );
        if decision == RuleDecision::Deny {
            let why = rule
                .and_then(|r| r.reason.clone())
                .map_or_else(String::new, |r| format!(": {r}"));
            return deny(Error::Denied {
                capability: id.to_string(),
                message: format!("refused by {rule_name}{why}"),
            })
            .await;
        }
        // A refused capability reveals nothing, not even its schema; past
        // this point the input must fit it (an approver sees valid input).
        if let Err(e) = validate() {
            return deny(e).await;
        }
        // Rate limits: the rule's per capability, the plugin's, the metadata hint's.
        let minute = Duration::from_secs(60);
        if let Some(n) = rule.and_then(|r| r.calls_per_minute) {
            if self
                .take(&format!("rule:{}:{id}", rule_name), n, minute)
                .is_err()
            {
                return deny(Error::RateLimited {
                    capability: id.to_string(),
                    message: format!(
                        "more than {n} calls per minute ({rule_name}, calls-per-minute)"
                    ),
                })
                .await;
            }
        }
        if let Some(n) = self
            .policy
            .plugins
            .get(plugin)
            .and_then(|p| p.calls_per_minute)
        {
            if self.take(&format!("plugin:{plugin}"), n, minute).is_err() {
                return deny(Error::RateLimited {
                    capability: id.to_string(),
                    message: format!(
                        "more than {n} calls per minute to plugin `{plugin}` (policy.plugins.{plugin}.calls-per-minute)"
                    ),
                })
                .await;
            }
        }
        if let Some(r) = rate_hint {
            let per = Duration::from_secs(r.per_seconds);
            if self.take(&format!("hint:{id}"), r.calls, per).is_err() {
                return deny(Error::RateLimited {
                    capability: id.to_string(),
                    message: format!(
                        "more than {} calls per {} s (the capability's rate-limit metadata)",
                        r.calls, r.per_seconds
                    ),
                })
                .await;
            }
        }
        if decision == RuleDecision::Approve {
            // The call's own approver (the client that asked, under `warden
            // serve`) comes first; the host's otherwise.
            let approver = approver.cloned().or_else(|| {
                self.approver
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            });
            let request = ApprovalRequest {
                capability: id.to_string(),
                plugin: plugin.to_string(),
                input: input.clone(),
                session_key: session_key.map(str::to_string),
                rule: rule.map_or_else(|| "*".into(), |r| r.capability.clone()),
                call_id: call_id.to_string(),
            };
            let answer = match approver {
                None => Approval::Deny("it needs approval and this host has no approver".into()),
                Some(a) => a.approve(&request).await,
            };
            let mut approval = entry(
                if answer == Approval::Approve {
                    Outcome::Allow
                } else {
                    Outcome::Deny
                },
                match &answer {
                    Approval::Approve => format!("approved ({rule_name})"),
                    Approval::Deny(why) => format!("not approved ({rule_name}): {why}"),
                },
            );
            approval.effect = Effect::Approval;
            self.record_async(self.audit.as_ref().map(|_| Pending::new(approval)))
                .await?;
            if let Approval::Deny(why) = answer {
                return Err(Error::Denied {
                    capability: id.to_string(),
                    message: format!("not approved: {why}"),
                });
            }
        }
        let slot = match self.slots.get(plugin) {
            None => None,
            Some(s) => {
                match tokio::time::timeout(s.wait, s.semaphore.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    _ => {
                        return deny(Error::Busy {
                            capability: id.to_string(),
                            message: format!(
                                "plugin `{plugin}` already runs {} calls (policy.plugins.{plugin}.max-concurrent); waited {} ms",
                                s.max,
                                s.wait.as_millis()
                            ),
                        })
                        .await
                    }
                }
            }
        };
        let mut admission = Admission {
            _slot: slot,
            governance: self,
            call,
            fields,
            started,
            open: true,
        };
        if let (Some(log), Some(fields)) = (&self.audit, &admission.fields) {
            // Queued, not awaited: the call runs while the writer is at work.
            // Its effects' records and its end record come after this one in
            // the queue, and the writer refuses them if this one could not be
            // written; effects wait for their records and the caller for the
            // end record, so nothing the call does gets out unless its
            // admission is in the log. From here on the call has an end
            // record, even if it is dropped.
            let mut reason = String::with_capacity(11 + rule_name.len());
            reason.push_str("allowed by ");
            reason.push_str(&rule_name);
            let admitted = Pending::call(fields, Outcome::Allow, &reason, None);
            if let Err(e) = log.append_record_detached(admitted) {
                admission.open = false;
                return Err(unaudited(e));
            }
        }
        Ok(admission)
    }
}

fn unaudited(e: crate::governance::audit::AuditError) -> Error {
    Error::Internal(format!("{e}; refusing to go on unaudited"))
}

/// The record of a decision about call `call_id` of capability `id`.
fn call_entry(
    call: &CallIds<'_>,
    decision: Outcome,
    reason: String,
    duration_ms: Option<u64>,
) -> Entry {
    Entry {
        plugin: call.plugin.to_string(),
        digest: call.digest.to_string(),
        capability: call.id.to_string(),
        call_id: call.call_id.to_string(),
        effect: Effect::Call,
        target: call.id.to_string(),
        decision,
        reason,
        duration_ms,
        client: call.client.map(str::to_string),
    }
}

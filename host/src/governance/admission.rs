//! Governance of calls: the `[policy]` rules (allow, deny or approval by
//! capability id), rate limits, per-plugin concurrency, and the audit log
//! every decision is written to. Effects inside a call are audited by the
//! sandbox through an [`Auditor`](crate::audit::Auditor).

use super::call_id::CallId;
use super::rules::{CallRule, CallRules, RuleDecision};
use crate::audit::{AuditLog, Effect, Entry, Outcome};
use crate::audit::{CallFields, Pending, Receipt, Wait};
use crate::cluster::{Cluster, OnUnreachable, Unreachable};
use crate::error::{Error, Result};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warden_manifest::route::RateLimit;
use warden_manifest::schema::TypeExpr;

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
    /// The user is asked out of band (an MCP client's `input_required`
    /// round): the call does not run now, its rate-limit charge is returned,
    /// and its caller comes back with the answer as a new call. The reason is
    /// recorded.
    Deferred(String),
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

/// The `[policy]` rule a call matched: decided once, when the call is
/// planned, and carried through admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatchedRule {
    /// What the rule decides.
    pub(crate) decision: RuleDecision,
    /// Its place in `[[policy.rules]]`; `None` for `policy.default`.
    index: Option<usize>,
}

/// The host's governance: rules, windows, slots, approver, audit log.
pub(crate) struct Governance {
    rules: CallRules,
    slots: HashMap<String, Slots>,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    approver: RwLock<Option<Arc<dyn Approver>>>,
    audit: Option<Arc<AuditLog>>,
    call_prefix: CallId,
    next_call: AtomicU64,
    /// Each client's records per minute (its calls).
    clients: super::budget::ClientBudgets,
    /// Traces and metrics, when `[telemetry]` is on.
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// Rate limits shared with other replicas, with `[cluster]`.
    cluster: Option<Arc<Cluster>>,
}

/// An admitted call: what it was admitted with (released when it ends),
/// and the promise of its end record. [`end`](Admission::end) writes the
/// record with the call's outcome; if the call is dropped before (its caller
/// went away), `Drop` writes it as `cancelled`. Either way, exactly once.
pub(crate) struct Admission<'a> {
    _slot: Option<OwnedSemaphorePermit>,
    governance: &'a Governance,
    /// When the call arrived (`None` without a log: nothing records it).
    started: Option<Instant>,
    /// The call's id.
    call_id: &'a str,
    /// The call's records' common fields; `None` without a log.
    fields: Option<CallFields>,
    open: bool,
}

/// A call's admission: decided at once, or waiting (for its refusal's
/// record, an approver or a concurrency slot) in a future of its own, so
/// that the common call's future does not carry the waits.
pub(crate) enum Admitting<'a> {
    /// Decided without waiting.
    Now(Result<Admission<'a>>),
    /// Decided when this future ends.
    Waits(Pin<Box<dyn Future<Output = Result<Admission<'a>>> + Send + 'a>>),
}

/// What governance is told about one call, as plain values taken from its
/// plan (governance knows nothing of the registry or the runtime).
#[derive(Clone, Copy)]
pub(crate) struct CallFacts<'a> {
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
    /// Whose budget its records are charged to (the client unless the
    /// caller named an account).
    pub(crate) account: Option<&'a str>,
    /// The caller's session key, shown to an approver.
    pub(crate) session_key: Option<&'a str>,
    /// The `[policy]` rule it matched.
    pub(crate) rule: MatchedRule,
    /// The capability's `*.rate-limit` metadata.
    pub(crate) rate_hint: Option<&'a RateLimit>,
    /// The capability's input schema.
    pub(crate) input_type: &'a TypeExpr,
    /// The call's own approver (the client that asked); the host's otherwise.
    pub(crate) approver: Option<&'a Arc<dyn Approver>>,
    /// When the call arrived (`None` without a log: nothing records it).
    pub(crate) started: Option<Instant>,
}

/// Rate-window entries a call was charged, returned if its approval is
/// deferred (the call comes back and is charged then).
#[derive(Default)]
struct Charges {
    /// In this replica's windows.
    local: Vec<(String, Instant)>,
    /// Still to take in the cluster's shared windows.
    shared: Vec<SharedCharge>,
    /// Taken in the cluster's shared windows (their names).
    taken: Vec<String>,
}

/// One shared rate window a call is to be counted in.
struct SharedCharge {
    key: String,
    limit: u32,
    per: Duration,
    /// The refusal's message when the window is full.
    message: String,
}

impl<'a> Admission<'a> {
    /// Records how the call ended: the end record is queued now (dropped
    /// while waiting for the writer, it is still written, and `Drop` writes
    /// no second one); the caller awaits [`Ended::written`]. An error means
    /// the record could not be queued (the caller fails closed).
    pub(crate) fn end<T>(mut self, outcome: &Result<T>) -> Result<Ended<'a>> {
        self.open = false;
        // Nothing to build on the call path when there is no log.
        let (Some(log), Some(fields)) = (&self.governance.audit, &self.fields) else {
            return Ok(Ended(None));
        };
        let error;
        let (decision, reason) = match outcome {
            Ok(_) => (Outcome::Ok, "completed"),
            Err(e) => {
                error = e.to_string();
                (Outcome::Error, error.as_str())
            }
        };
        let ms = self.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        let record = Pending::call(fields, decision, reason, Some(ms));
        let queued = log.submit(record, Wait::Task).map_err(unaudited)?;
        Ok(Ended(Some(queued)))
    }
}

/// A call's end record, queued ([`Admission::end`]).
pub(crate) struct Ended<'a>(Option<Receipt<'a>>);

impl Ended<'_> {
    /// Whether there is a record to wait for (there is none without a log).
    pub(crate) fn pending(&self) -> bool {
        self.0.is_some()
    }

    /// Waits until the end record is written; an error means it was not
    /// (the caller fails closed).
    pub(crate) async fn written(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(receipt) => receipt.written().await.map_err(unaudited),
        }
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
        let ms = self.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        let reason = format!(
            "the caller went away after {ms} ms; what the call did until then is recorded above under its call id, and its result is discarded"
        );
        // Nobody is left to wait for it.
        let record = Pending::call(fields, Outcome::Cancelled, &reason, Some(ms));
        if let Err(e) = log.submit(record, Wait::Nobody) {
            tracing::error!(call_id = self.call_id, "{e}");
        }
    }
}

impl Governance {
    /// Governance by `rules`, writing to `audit` if there is a log.
    pub(crate) fn new(
        rules: CallRules,
        audit: Option<Arc<AuditLog>>,
        volume: super::budget::VolumeLimits,
    ) -> Governance {
        let slots = rules
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
        Governance {
            rules,
            slots,
            windows: Mutex::new(HashMap::new()),
            approver: RwLock::new(None),
            call_prefix: CallId::prefix(&super::call_id::host_prefix()),
            next_call: AtomicU64::new(1),
            clients: super::budget::ClientBudgets::new(volume, audit.clone()),
            audit,
            telemetry: None,
            cluster: None,
        }
    }

    /// The same, counting rate limits with the other replicas in `cluster`.
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Governance {
        self.cluster = cluster;
        self
    }

    /// The same, reporting to `telemetry`.
    pub(crate) fn with_telemetry(
        mut self,
        telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    ) -> Governance {
        self.telemetry = telemetry;
        self
    }

    /// Traces and metrics, when on.
    pub(crate) fn telemetry(&self) -> Option<&Arc<crate::telemetry::Telemetry>> {
        self.telemetry.as_ref()
    }

    /// The state shared with other replicas, when `[cluster]` is set.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
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
    pub(crate) fn call_id(&self) -> CallId {
        let n = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.call_prefix.numbered(n)
    }

    /// The component digest a plugin must have, if pinned.
    pub(crate) fn pinned_digest(&self, plugin: &str) -> Option<&str> {
        self.rules.plugins.get(plugin)?.digest.as_deref()
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
            .map(|(log, record)| log.submit(record, Wait::Task));
        async move {
            match queued {
                None => Ok(()),
                Some(receipt) => receipt
                    .map_err(unaudited)?
                    .written()
                    .await
                    .map_err(unaudited),
            }
        }
    }

    /// The first `[[policy.rules]]` entry that matches capability `id` with
    /// flattened `metadata` for `caller`, or `policy.default`.
    pub(crate) fn match_rule(
        &self,
        id: &str,
        metadata: &std::collections::BTreeMap<String, Value>,
        caller: crate::governance::rules::Identity<'_>,
    ) -> MatchedRule {
        match self
            .rules
            .rules
            .iter()
            .position(|r| r.matches(id, metadata, caller))
        {
            Some(i) => MatchedRule {
                decision: self.rules.rules[i].decision,
                index: Some(i),
            },
            None => MatchedRule {
                decision: self.rules.default,
                index: None,
            },
        }
    }

    fn rule_of(&self, matched: MatchedRule) -> Option<&CallRule> {
        matched.index.map(|i| &self.rules.rules[i])
    }

    /// The capability pattern of a matched rule (`*` for `policy.default`).
    fn rule_pattern(&self, matched: MatchedRule) -> &str {
        self.rule_of(matched).map_or("*", |r| r.capability.as_str())
    }

    /// The capability pattern of the rule when it makes the call wait for
    /// approval.
    pub(crate) fn approval_pattern(&self, matched: MatchedRule) -> Option<&str> {
        (matched.decision == RuleDecision::Approve).then(|| self.rule_pattern(matched))
    }

    /// How records and errors name a matched rule.
    fn rule_name(&self, matched: MatchedRule) -> Cow<'static, str> {
        match self.rule_of(matched) {
            None => "policy.default".into(),
            Some(r) => format!("policy rule `{}`", r.capability).into(),
        }
    }

    /// Counts one call in the sliding window `key`; `Err` when `limit`
    /// calls already happened within `per`.
    fn take(&self, key: &str, limit: u32, per: Duration) -> std::result::Result<Instant, ()> {
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
        Ok(now)
    }

    /// Takes back what a call was counted in (in the cluster's windows, in
    /// the background).
    fn refund(&self, charges: &Charges, call_id: &str) {
        if let (Some(cluster), false) = (&self.cluster, charges.taken.is_empty()) {
            let (cluster, keys, member) =
                (cluster.clone(), charges.taken.clone(), call_id.to_string());
            tokio::spawn(async move {
                for key in keys {
                    cluster.give_back(&key, &member).await;
                }
            });
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for (key, at) in &charges.local {
            if let Some(window) = windows.get_mut(key) {
                if let Some(i) = window.iter().rposition(|t| t == at) {
                    window.remove(i);
                }
            }
        }
    }

    /// Decides whether a call may run, in this order: the client's record
    /// budget, the rule, the input against its schema, the rate limits,
    /// approval, a concurrency slot. So nothing is asked of a user about a
    /// call that would be refused anyway. Every decision is audited (the
    /// record budget's refusals are counted and summarized); a refusal is a
    /// typed error.
    ///
    /// A call that needs nobody's answer and no slot is decided here, with
    /// nothing to await; the others wait in [`Admitting::Waits`].
    pub(crate) fn admit<'a>(&'a self, call: CallFacts<'a>, input: Input<'a>) -> Admitting<'a> {
        if let Err(e) = self.charge_client(&call) {
            return Admitting::Now(Err(e));
        }
        let fields = self
            .audit
            .as_ref()
            .map(|_| CallFields::new(call.plugin, call.digest, call.id, call.call_id, call.client));
        let rule_name = self.rule_name(call.rule);
        let charges = match self.check(&call, input, &rule_name) {
            Ok(charges) => charges,
            Err(e) => return Admitting::Waits(Box::pin(self.refuse(fields, e))),
        };
        let slots = self.slots.get(call.plugin);
        let shared = !charges.shared.is_empty();
        if call.rule.decision != RuleDecision::Approve && slots.is_none() && !shared {
            return Admitting::Now(self.open(call, fields, None, &rule_name));
        }
        Admitting::Waits(Box::pin(async move {
            let mut charges = charges;
            if shared {
                if let Err(e) = self.charge_shared(&call, &mut charges).await {
                    return self.refuse(fields, e).await;
                }
            }
            if call.rule.decision == RuleDecision::Approve {
                self.approve(&call, input, &rule_name, &charges).await?;
            }
            let slot = match slots {
                None => None,
                Some(slots) => match take_slot(slots, &call).await {
                    Ok(slot) => Some(slot),
                    Err(e) => return self.refuse(fields, e).await,
                },
            };
            self.open(call, fields, slot, &rule_name)
        }))
    }

    /// Writes a refusal and returns it. Awaited without holding the thread:
    /// a flood of refused calls waits for the writer in its tasks, not in
    /// the runtime's workers.
    async fn refuse<T>(&self, fields: Option<CallFields>, error: Error) -> Result<T> {
        let refusal = fields.map(|f| Pending::call(&f, Outcome::Deny, &error.to_string(), None));
        self.record_async(refusal).await?;
        Err(error)
    }

    /// A client's calls are charged to its records per minute (their
    /// admission and end records); past it the call is refused and counted,
    /// not written, and the count summarized.
    fn charge_client(&self, call: &CallFacts<'_>) -> Result<()> {
        let (Some(account), Some(_)) = (call.account, &self.audit) else {
            return Ok(());
        };
        let client_len = call.client.map_or(0, str::len);
        let bytes = 2 * (call.id.len() + call.plugin.len() + client_len + 400) as u64;
        if self.clients.of(account).charge(2, bytes, false, call.id) {
            return Ok(());
        }
        let limits = self.volume_limits();
        Err(Error::RateLimited {
            capability: call.id.to_string(),
            message: format!(
                "the client's calls are past [audit] max-records-per-minute ({}) or max-bytes-per-minute ({})",
                limits.records, limits.bytes
            ),
        })
    }

    /// What needs nobody's answer: the rule, the input, the rate limits.
    fn check(&self, call: &CallFacts<'_>, input: Input<'_>, rule_name: &str) -> Result<Charges> {
        if call.rule.decision == RuleDecision::Deny {
            let why = self
                .rule_of(call.rule)
                .and_then(|r| r.reason.as_deref())
                .map_or_else(String::new, |r| format!(": {r}"));
            return Err(Error::Denied {
                capability: call.id.to_string(),
                message: format!("refused by {rule_name}{why}"),
            });
        }
        // A refused capability reveals nothing, not even its schema; past
        // this point the input must fit it (an approver sees valid input).
        input.check(call.id, call.input_type)?;
        self.charge_rates(call, rule_name)
    }

    /// Rate limits: the rule's per capability, the plugin's, the metadata
    /// hint's.
    fn charge_rates(&self, call: &CallFacts<'_>, rule_name: &str) -> Result<Charges> {
        let (id, plugin) = (call.id, call.plugin);
        let minute = Duration::from_secs(60);
        let mut charges = Charges::default();
        let shared = self.cluster.is_some();
        let mut charge = |key: String, limit: u32, per: Duration, why: &dyn Fn() -> String| {
            if shared {
                let message = why();
                charges.shared.push(SharedCharge {
                    key,
                    limit,
                    per,
                    message,
                });
                return Ok(());
            }
            match self.take(&key, limit, per) {
                Ok(at) => {
                    charges.local.push((key, at));
                    Ok(())
                }
                Err(()) => Err(Error::RateLimited {
                    capability: id.to_string(),
                    message: why(),
                }),
            }
        };
        if let Some(n) = self.rule_of(call.rule).and_then(|r| r.calls_per_minute) {
            charge(format!("rule:{rule_name}:{id}"), n, minute, &|| {
                format!("more than {n} calls per minute ({rule_name}, calls-per-minute)")
            })?;
        }
        let plugin_limit = self
            .rules
            .plugins
            .get(plugin)
            .and_then(|p| p.calls_per_minute);
        if let Some(n) = plugin_limit {
            charge(format!("plugin:{plugin}"), n, minute, &|| {
                format!("more than {n} calls per minute to plugin `{plugin}` (policy.plugins.{plugin}.calls-per-minute)")
            })?;
        }
        if let Some(r) = call.rate_hint {
            let per = Duration::from_secs(r.per_seconds);
            charge(format!("hint:{id}"), r.calls, per, &|| {
                format!(
                    "more than {} calls per {} s (the capability's rate-limit metadata)",
                    r.calls, r.per_seconds
                )
            })?;
        }
        Ok(charges)
    }

    /// Counts the call in the cluster's shared windows; while Redis does
    /// not answer, `on-unreachable` decides (refused, or counted here).
    async fn charge_shared(&self, call: &CallFacts<'_>, charges: &mut Charges) -> Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let refused = |message: String| Error::RateLimited {
            capability: call.id.to_string(),
            message,
        };
        for c in std::mem::take(&mut charges.shared) {
            match cluster.take(&c.key, c.limit, c.per, call.call_id).await {
                Ok(true) => charges.taken.push(c.key),
                Ok(false) => return Err(refused(c.message)),
                Err(Unreachable(why)) => match cluster.mode() {
                    OnUnreachable::FailClosed => {
                        return Err(refused(format!(
                            "the shared rate limit could not be counted ({why}; cluster.on-unreachable = fail-closed)"
                        )))
                    }
                    OnUnreachable::FailOpen => match self.take(&c.key, c.limit, c.per) {
                        Ok(at) => charges.local.push((c.key, at)),
                        Err(()) => return Err(refused(c.message)),
                    },
                },
            }
        }
        Ok(())
    }

    /// Asks for approval (the rule says `approve`) and records the answer.
    /// The call's own approver (the client that asked, under `warden
    /// serve`) comes first; the host's otherwise.
    async fn approve(
        &self,
        call: &CallFacts<'_>,
        input: Input<'_>,
        rule_name: &str,
        charges: &Charges,
    ) -> Result<()> {
        let approver = call.approver.cloned().or_else(|| {
            self.approver
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        });
        let request = ApprovalRequest {
            capability: call.id.to_string(),
            plugin: call.plugin.to_string(),
            input: input.to_value(call.id)?,
            session_key: call.session_key.map(str::to_string),
            rule: self.rule_pattern(call.rule).to_string(),
            call_id: call.call_id.to_string(),
        };
        let answer = match approver {
            None => Approval::Deny("it needs approval and this host has no approver".into()),
            Some(a) => a.approve(&request).await,
        };
        let (decision, reason) = match &answer {
            Approval::Approve => (Outcome::Allow, format!("approved ({rule_name})")),
            Approval::Deny(why) => (Outcome::Deny, format!("not approved ({rule_name}): {why}")),
            Approval::Deferred(why) => (Outcome::Deny, format!("deferred ({rule_name}): {why}")),
        };
        let mut approval = call_entry(call, decision, reason, None);
        approval.effect = Effect::Approval;
        self.record_async(self.audit.as_ref().map(|_| Pending::new(approval)))
            .await?;
        let why = match answer {
            Approval::Approve => return Ok(()),
            Approval::Deny(why) => format!("not approved: {why}"),
            Approval::Deferred(why) => {
                self.refund(charges, call.call_id);
                format!("waiting for approval: {why}")
            }
        };
        Err(Error::Denied {
            capability: call.id.to_string(),
            message: why,
        })
    }

    /// Admits the call: queues its admission record.
    fn open<'a>(
        &'a self,
        call: CallFacts<'a>,
        fields: Option<CallFields>,
        slot: Option<OwnedSemaphorePermit>,
        rule_name: &str,
    ) -> Result<Admission<'a>> {
        let mut admission = Admission {
            _slot: slot,
            governance: self,
            started: call.started,
            call_id: call.call_id,
            fields,
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
            reason.push_str(rule_name);
            let admitted = Pending::call(fields, Outcome::Allow, &reason, None);
            if let Err(e) = log.submit(admitted, Wait::Nobody) {
                admission.open = false;
                return Err(unaudited(e));
            }
        }
        Ok(admission)
    }
}

/// A `max-concurrent` slot of the plugin, waited for up to its
/// `max-wait-ms`.
async fn take_slot(s: &Slots, call: &CallFacts<'_>) -> Result<OwnedSemaphorePermit> {
    match tokio::time::timeout(s.wait, s.semaphore.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Error::Busy {
            capability: call.id.to_string(),
            message: format!(
                "plugin `{}` already runs {} calls (policy.plugins.{}.max-concurrent); waited {} ms",
                call.plugin,
                s.max,
                call.plugin,
                s.wait.as_millis()
            ),
        }),
    }
}

/// A call's input as admission sees it: a value, or JSON text that is
/// read to be checked and never parsed into a value unless an approver
/// must see it.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// A value (`Host::call`).
    Value(&'a Value),
    /// JSON text (`Host::call_json`).
    Text(&'a str),
}

impl Input<'_> {
    /// The input against capability `id`'s input schema, as a typed error.
    pub(crate) fn check(self, id: &str, schema: &TypeExpr) -> Result<()> {
        let checked = match self {
            Input::Value(v) => schema.validate(v),
            Input::Text(t) => schema.validate_text(t),
        };
        checked.map_err(|e| Error::InvalidInput {
            capability: id.to_string(),
            message: e.to_string(),
        })
    }

    /// The input of a call of capability `id` as a value.
    pub(crate) fn to_value(self, id: &str) -> Result<Value> {
        match self {
            Input::Value(v) => Ok(v.clone()),
            Input::Text(t) => serde_json::from_str(t).map_err(|e| Error::InvalidInput {
                capability: id.to_string(),
                message: format!("not JSON: {e}"),
            }),
        }
    }
}

impl<'a> Input<'a> {
    /// The input as JSON text.
    pub(crate) fn text(self) -> Cow<'a, str> {
        match self {
            Input::Value(v) => Cow::Owned(v.to_string()),
            Input::Text(t) => Cow::Borrowed(t),
        }
    }
}

fn unaudited(e: crate::audit::AuditError) -> Error {
    Error::Internal(format!("{e}; refusing to go on unaudited"))
}

/// The record of a decision about one call.
fn call_entry(
    call: &CallFacts<'_>,
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

//! One call, resolved once: [`Host::plan`] looks the capability up, takes
//! the route decided at registration and the `[policy]` rule it matches;
//! [`Host::execute`] admits the plan, runs it and closes its admission.

use super::{CallContext, Host};
use crate::error::{Error, ErrorKind, Result};
use crate::governance::{Admitting, Approver, CallFacts, CallId, CallTag, Input, MatchedRule};
use crate::registry::{CapabilityInfo, Serving};
use crate::runtime::plugin::LoadedPlugin;
use crate::runtime::session_pool::{SessionCall, DEFAULT_SESSION_KEY};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use warden_manifest::route::Route;
use warden_manifest::schema::TextError;
use warden_manifest::{Manifest, ProviderKind};

/// A call's facts, made once at the door by [`Host::plan`]: the capability,
/// how it is served, the rule it matched, its id and its caller. Run it with
/// [`Host::execute`].
pub struct CallPlan<'c> {
    capability: Arc<CapabilityInfo>,
    /// `None`: no loaded plugin serves the capability's provider kind.
    route: Option<CallRoute<'c>>,
    rule: MatchedRule,
    call_id: CallId,
    /// When the call arrived, for its records (`None` without a log).
    started: Option<Instant>,
    context: CallContext<'c>,
    approver: Option<Arc<dyn Approver>>,
}

/// How a planned call reaches its plugin.
enum CallRoute<'c> {
    /// The plugin's own capability, called by id in a pooled instance.
    Direct(Served<'c>),
    /// The plugin's own capability, in the caller's session `key`.
    Session { served: Served<'c>, key: &'c str },
    /// The plugin serving the capability's provider kind, through its entry
    /// capability (`head` is what the entry is told of the capability).
    Kind {
        served: Served<'c>,
        entry: Arc<str>,
        head: Arc<str>,
    },
}

/// The plugin serving a call (borrowed from the host: its plugins are
/// fixed at load).
struct Served<'c> {
    index: usize,
    plugin: &'c Arc<LoadedPlugin>,
}

impl<'c> CallRoute<'c> {
    fn served(&self) -> &Served<'c> {
        match self {
            CallRoute::Direct(s) | CallRoute::Session { served: s, .. } => s,
            CallRoute::Kind { served, .. } => served,
        }
    }
}

impl<'c> CallPlan<'c> {
    /// The capability called.
    pub fn capability(&self) -> &Arc<CapabilityInfo> {
        &self.capability
    }

    /// The call's id in the audit log.
    pub fn call_id(&self) -> &str {
        self.call_id.as_str()
    }

    /// The name of the plugin that serves the call, if one does.
    pub fn plugin(&self) -> Option<&str> {
        let route = self.route.as_ref()?;
        Some(&route.served().plugin.info.name)
    }

    /// The rule's capability pattern when the call waits for approval.
    pub fn approval_rule<'p>(&'p self, host: &'p Host) -> Option<&'p str> {
        host.inner.governance.approval_pattern(self.rule)
    }

    /// The plan with `approver` asked when its rule says `approve`
    /// (instead of the context's or the host's).
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> CallPlan<'c> {
        self.approver = Some(approver);
        self
    }

    /// What governance is told of the call.
    fn facts(&self) -> CallFacts<'_> {
        let (plugin, digest) = match &self.route {
            Some(r) => {
                let info = &r.served().plugin.info;
                (info.name.as_str(), info.digest.as_str())
            }
            None => ("", ""),
        };
        CallFacts {
            id: &self.capability.id,
            plugin,
            digest,
            call_id: self.call_id.as_str(),
            client: self.context.client,
            account: self.context.account.or(self.context.client),
            session_key: self.context.session_key,
            rule: self.rule,
            rate_hint: self.capability.hints.rate_limit.as_ref(),
            input_type: &self.capability.input_type,
            approver: self.approver.as_ref(),
            started: self.started,
        }
    }
}

impl Host {
    /// Plans a call of capability `id` for the caller `context` describes:
    /// looks the capability up (once), takes the route decided when it was
    /// registered and the `[policy]` rule it matches, and gives the call its
    /// id. Nothing runs and nothing is recorded until
    /// [`execute`](Self::execute).
    pub async fn plan<'c>(&'c self, id: &str, context: &CallContext<'c>) -> Result<CallPlan<'c>> {
        let found = self.registry().get(id).map(|(_, info)| info);
        // Discovery never runs inside a call: a source that failed is asked
        // again in the background; meanwhile the error names it.
        let capability = match found {
            Ok(info) => info,
            Err(e) => {
                let e = crate::registry::suggest(e);
                // Boxed: the warm path's future stays small.
                let pending = Box::pin(self.unavailable_source(id)).await;
                return Err(pending.unwrap_or(e));
            }
        };
        let route = self.route(&capability, context);
        let governance = &self.inner.governance;
        Ok(CallPlan {
            rule: governance.match_rule(id, &capability.flat_metadata, context.identity),
            capability,
            route,
            call_id: governance.call_id(),
            started: governance.audit().map(|_| Instant::now()),
            context: *context,
            approver: context.approver.cloned(),
        })
    }

    fn route<'c>(
        &'c self,
        info: &CapabilityInfo,
        context: &CallContext<'c>,
    ) -> Option<CallRoute<'c>> {
        let served = |index: usize| Served {
            index,
            plugin: &self.inner.plugins[index],
        };
        Some(match (&info.serving, &info.route) {
            (Serving::Plugin(i), Route::Session { .. }) => CallRoute::Session {
                served: served(*i),
                key: context.session_key.unwrap_or(DEFAULT_SESSION_KEY),
            },
            (Serving::Plugin(i), Route::Direct) => CallRoute::Direct(served(*i)),
            (
                Serving::Kind {
                    plugin,
                    entry,
                    head,
                },
                _,
            ) => CallRoute::Kind {
                served: served(*plugin),
                entry: entry.clone(),
                head: head.clone(),
            },
            (Serving::Unserved, _) => return None,
        })
    }

    /// Runs a planned call: admission (rule, input schema, rate limits,
    /// approval, concurrency slot, each decision recorded), the plugin, the
    /// output schema, and the call's end record.
    pub async fn execute(&self, plan: CallPlan<'_>, input: Value) -> Result<Value> {
        match self.execute_input(&plan, Input::Value(&input)).await? {
            Answer::Value(v) => Ok(v),
            Answer::Text(t) => serde_json::from_str(&t).map_err(|e| Error::Internal(e.to_string())),
        }
    }

    /// [`execute`](Self::execute) with the input and the output as JSON
    /// text: both are checked against their schemas as they are read, and
    /// neither is parsed into a value (unless an approver is asked, or the
    /// plugin's secrets are cut from the output). The path for callers that
    /// hold JSON text, such as `warden serve`.
    pub async fn execute_json(&self, plan: CallPlan<'_>, input: &str) -> Result<String> {
        match self.execute_input(&plan, Input::Text(input)).await? {
            Answer::Text(t) => Ok(t),
            Answer::Value(v) => Ok(v.to_string()),
        }
    }

    async fn execute_input(&self, plan: &CallPlan<'_>, input: Input<'_>) -> Result<Answer> {
        let Some(route) = &plan.route else {
            let info = &plan.capability;
            input.check(&info.id, &info.input_type)?;
            return Err(Error::NotServed {
                capability: plan.capability.id.clone(),
                provider: plan.capability.provider.name().to_string(),
            });
        };
        // Its progress reports reach the caller's listener (found by call id
        // on every route) until the call ends.
        let _listening = plan
            .context
            .progress
            .map(|sink| self.inner.listeners.listen(plan.call_id(), sink.clone()));
        let span = self.inner.governance.telemetry().map(|t| {
            t.call_started(
                plan.context.trace,
                &plan.capability.id,
                &route.served().plugin.info.name,
                plan.call_id(),
            )
        });
        // The instance that runs the call knows its span by these ids.
        let call = CallTag {
            id: plan.call_id(),
            trace: span.as_ref().map(|s| s.ids()),
        };
        // Admission, the run and the admission's end, in this one future
        // (a call's future is copied by each `async` layer it is in).
        let result: Result<Answer> = 'call: {
            let admitted = match self.inner.governance.admit(plan.facts(), input) {
                Admitting::Now(admission) => admission,
                Admitting::Waits(waits) => waits.await,
            };
            let admission = match admitted {
                Ok(admission) => admission,
                Err(e) => break 'call Err(e),
            };
            let result = self.run_admitted(plan, route, input, call).await;
            let ended = match admission.end(&result) {
                Ok(ended) => ended,
                Err(e) => break 'call Err(e),
            };
            if ended.pending() {
                // Boxed: a call without a log has nothing to wait for here.
                if let Err(e) = Box::pin(ended.written()).await {
                    break 'call Err(e);
                }
            }
            result
        };
        if let Some(span) = span {
            end_span(span, &result);
        }
        result
    }

    /// Runs an admitted call: with the caller's token exchanged for its
    /// upstreams first, if the plugin exchanges tokens, and retried if its
    /// hints say so ([`retry_strategy`]).
    async fn run_admitted(
        &self,
        plan: &CallPlan<'_>,
        route: &CallRoute<'_>,
        input: Input<'_>,
        call: CallTag<'_>,
    ) -> Result<Answer> {
        // The caller's token exchanged for the call's upstreams, kept while
        // it runs (a plugin granted no exchange secret skips this).
        let egress = route.served().plugin.egress();
        let _exchanged = match egress.has_exchangers() {
            false => None,
            true => {
                Box::pin(egress.exchange_for_call(plan.call_id(), plan.context.subject_token)).await
            }
        };
        match retry_strategy(&plan.capability) {
            None => self.run(plan, route, input, call).await,
            Some(strategy) => Box::pin(self.run_again(plan, route, input, call, strategy)).await,
        }
    }

    /// The retry loop, out of line: its timer would otherwise make every
    /// call's future larger.
    async fn run_again(
        &self,
        plan: &CallPlan<'_>,
        route: &CallRoute<'_>,
        input: Input<'_>,
        call: CallTag<'_>,
        strategy: &warden_manifest::route::RetryStrategy,
    ) -> Result<Answer> {
        let info = &plan.capability;
        let mut attempt = 1;
        loop {
            match self.run(plan, route, input, call).await {
                Err(Error::Capability {
                    kind: ErrorKind::Unavailable,
                    ref message,
                    ..
                }) if attempt < strategy.attempts => {
                    let seed = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64);
                    let wait = strategy.delay(attempt, seed);
                    tracing::info!(
                        capability = %info.id, attempt, wait_ms = wait.as_millis() as u64,
                        "unavailable ({message}); retrying per its retry-strategy"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs an admitted call by its route and checks its output. The
    /// answer takes the input's form (a value or text), except through a
    /// session, whose calls take and give values.
    async fn run(
        &self,
        plan: &CallPlan<'_>,
        route: &CallRoute<'_>,
        input: Input<'_>,
        call: CallTag<'_>,
    ) -> Result<Answer> {
        let info = &plan.capability;
        let served = route.served();
        let plugin = &served.plugin;
        let answer = match (route, input) {
            (CallRoute::Session { key, .. }, _) => {
                let call = SessionCall {
                    plugin,
                    index: served.index,
                    info,
                    key,
                    call,
                };
                let input = input.to_value(&info.id)?;
                Answer::Value(Box::pin(self.inner.sessions.call(call, input)).await?)
            }
            (CallRoute::Direct(_), Input::Value(v)) => {
                Answer::Value(plugin.call(&info.id, v, call).await?)
            }
            (CallRoute::Direct(_), Input::Text(t)) => Answer::Text(
                plugin
                    .enter_call(&info.id, t, call, LoadedPlugin::output_text)
                    .await?,
            ),
            (CallRoute::Kind { entry, head, .. }, _) => {
                let input_text = input.text();
                let mut request = String::with_capacity(head.len() + input_text.len() + 1);
                request.push_str(head);
                request.push_str(&input_text);
                request.push('}');
                let answer = match input {
                    Input::Value(_) => plugin
                        .call_text(entry, &request, call)
                        .await
                        .map(Answer::Value),
                    Input::Text(_) => plugin
                        .call_json(entry, &request, call)
                        .await
                        .map(Answer::Text),
                };
                answer.map_err(|e| e.for_capability(&info.id))?
            }
        };
        answer.check(plugin, info)?;
        Ok(answer)
    }
}

/// How a call of `info` is retried, per its `*.retry-strategy` hint, when
/// the provider reports the remote side unavailable (a connection failure,
/// a 502/503/504): only for a capability marked read-only or idempotent
/// (`*.read-only-hint`, `*.idempotent-hint`), so that a repeat cannot do
/// anything twice.
fn retry_strategy(info: &CapabilityInfo) -> Option<&warden_manifest::route::RetryStrategy> {
    let strategy = info.hints.retry.as_ref().filter(|r| r.attempts > 1)?;
    let repeatable = |hint| {
        warden_manifest::route::find_hint(&info.flat_metadata, hint) == Some(&Value::Bool(true))
    };
    (repeatable("read-only-hint") || repeatable("idempotent-hint")).then_some(strategy)
}

/// A call's output, in the form its input came in.
enum Answer {
    Value(Value),
    Text(String),
}

impl Answer {
    /// The output against capability `info`'s output schema.
    fn check(&self, plugin: &LoadedPlugin, info: &CapabilityInfo) -> Result<()> {
        let checked = match self {
            Answer::Value(v) => info.output_type.validate(v),
            Answer::Text(t) => match info.output_type.check_text(t) {
                Ok(()) => Ok(()),
                Err(TextError::Invalid(e)) => Err(e),
                Err(TextError::NotJson(e)) => return Err(plugin.not_json(&info.id, e)),
            },
        };
        checked.map_err(|e| Error::InvalidOutput {
            plugin: plugin.info.name.clone(),
            capability: info.id.clone(),
            message: e.to_string(),
        })
    }
}

/// For each provider kind a plugin serves (`[providers]`): that plugin's
/// index and its entry capability.
#[derive(Default)]
pub(crate) struct KindServers(pub(crate) HashMap<ProviderKind, (usize, Arc<str>)>);

impl KindServers {
    /// The capability `m` describes (imported or declared), served by the
    /// plugin of its provider kind if one serves it.
    pub(crate) fn info(
        &self,
        plugins: &[Arc<LoadedPlugin>],
        m: Manifest,
    ) -> std::result::Result<CapabilityInfo, String> {
        let served = self.0.get(&m.provider);
        let name = served.map(|(i, _)| plugins[*i].info.name.clone());
        let mut info = CapabilityInfo::from_manifest(m, name)?;
        if let Some((index, entry)) = served {
            info.serving = Serving::kind(&info, *index, entry.clone());
        }
        Ok(info)
    }
}

/// Ends a call's span with its outcome, as metrics and traces name it.
fn end_span<T>(span: crate::telemetry::CallSpan<'_>, result: &Result<T>) {
    use crate::telemetry::Outcome;
    let Err(e) = result else {
        return span.end(Outcome::Ok, None);
    };
    let (outcome, limit) = match e {
        Error::Denied { .. } | Error::RateLimited { .. } | Error::Busy { .. } => {
            (Outcome::Deny, None)
        }
        Error::LimitExceeded { limit, .. } => (Outcome::Limit, Some(limit.as_str())),
        Error::Trap { .. } => (Outcome::Trap, None),
        _ => (Outcome::Error, None),
    };
    span.end(outcome, Some((e.to_string(), limit)));
}

//! One loaded plugin: its pre-instantiated component, its limits and policy,
//! and its pool of warm instances.

use crate::audit::{Effect, Outcome};
use crate::bindings::exports::warden::provider::{cleanup, discovery, provider, session_handler};
use crate::bindings::warden::provider::types as wit;
use crate::config::InstanceMode;
use crate::error::{Error, ErrorKind, Limit, Result};
use crate::governance::{Auditor, CallTag};
use crate::limits::ResolvedLimits;
use crate::runtime::engine::CompileSource;
use crate::runtime::outcome::{crash_cause, split_wit_error};
use crate::runtime::turns::Turns;
use crate::sandbox::{SandboxSpec, State};
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{InstancePre, ResourceAny};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// Guest code yields to the async runtime after this much fuel (roughly
/// instructions) at the latest, so that a busy plugin holds a worker thread
/// for tens of microseconds at a time.
const YIELD_FUEL: u64 = 100_000;

/// What a guest's `call` returned: its output text or its error.
pub(crate) type GuestOutcome = std::result::Result<String, wit::Error>;

/// Extra wall-clock time past the limit before the host abandons a call
/// that is blocked in a host call (the epoch stops wasm code itself).
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// What a loaded plugin is, for listing and inspection.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginInfo {
    /// Name in the configuration.
    pub name: String,
    /// The provider's own name.
    pub provider: String,
    /// The provider's version.
    pub version: String,
    /// The provider's description.
    pub description: String,
    /// The component as configured: a file or an `oci://` reference.
    pub source: String,
    /// Path of the component file, or the `oci://` reference pinned to
    /// the manifest digest it was pulled at.
    pub component: String,
    /// `sha256:` digest of the component bytes.
    pub digest: String,
    /// The id of the key its signature verified with, if it is signed.
    pub signer: Option<String>,
    /// Whether it was compiled now or loaded from the cache.
    pub compiled: CompileSource,
    /// Effective limits.
    pub limits: ResolvedLimits,
    /// Grants as configured.
    pub grants: crate::config::Grants,
    /// Instance reuse mode.
    pub instances: InstanceMode,
    /// Most instances at once.
    pub max_instances: u32,
    /// Ids of its capabilities.
    pub capabilities: Vec<String>,
    /// Its session pool settings.
    pub sessions: crate::config::SessionSettings,
    /// The `warden:provider` world it implements ([`check_component`](crate::check_component)).
    pub world: String,
    /// What it imports (WASI and contract interfaces, with versions).
    pub imports: Vec<String>,
    /// The id prefixes it may register capabilities under.
    pub namespaces: crate::registry::Namespaces,
}

/// The exports of a plugin, looked up once per component.
pub(crate) struct Exports {
    provider: provider::GuestIndices,
    /// `None` when the plugin exports no `session-handler`.
    sessions: Option<session_handler::GuestIndices>,
    /// `None` when the plugin exports no `discovery`.
    discovery: Option<discovery::GuestIndices>,
    /// `None` when the plugin exports no `cleanup`.
    cleanup: Option<cleanup::GuestIndices>,
}

impl Exports {
    /// Finds the exports in `pre`: `provider` is required.
    pub(crate) fn new(pre: &InstancePre<State>) -> wasmtime::Result<Exports> {
        Ok(Exports {
            provider: provider::GuestIndices::new(pre)?,
            sessions: session_handler::GuestIndices::new(pre).ok(),
            discovery: discovery::GuestIndices::new(pre).ok(),
            cleanup: cleanup::GuestIndices::new(pre).ok(),
        })
    }
}

/// An instance: its store and its exports. Both are boxed, so an
/// instance moves in and out of the idle pool as two pointers.
pub(crate) struct Warm {
    pub(crate) store: Store<State>,
    guests: Box<Guests>,
}

/// The guest's exports in one instance.
struct Guests {
    provider: provider::Guest,
    sessions: Option<session_handler::Guest>,
    discovery: Option<discovery::Guest>,
    cleanup: Option<cleanup::Guest>,
}

mod remote_state;
mod session;
use remote_state::Entered;
pub(crate) use session::LiveSession;

pub(crate) struct LoadedPlugin {
    pub(crate) info: PluginInfo,
    engine: Engine,
    pre: InstancePre<State>,
    exports: Exports,
    sandbox: SandboxSpec,
    config_json: String,
    idle: Mutex<Vec<Warm>>,
    permits: Semaphore,
    /// This plugin's share of the pool ([`instance_share`](crate::runtime::engine::instance_share)).
    slots: Arc<Semaphore>,
    share: u32,
    /// How many slices of its guest code may run at once.
    turns: Turns,
}

impl LoadedPlugin {
    /// Writes the summary of what its audit volume budget held back in the
    /// minute under way (at shutdown).
    pub(crate) fn close_volume(&self) {
        self.sandbox.auditor.close_volume();
    }

    /// The plugin's egress (its policy, connections and exchanges).
    pub(crate) fn egress(&self) -> &Arc<crate::egress::Egress> {
        &self.sandbox.egress
    }

    /// Instances in calls now, and idle in the pool.
    pub(crate) fn instances(&self) -> (u64, u64) {
        let busy =
            (self.info.max_instances as usize).saturating_sub(self.permits.available_permits());
        let idle = self.idle.lock().map(|i| i.len()).unwrap_or(0);
        (busy as u64, idle as u64)
    }
}

impl LoadedPlugin {
    pub(crate) fn new(
        info: PluginInfo,
        engine: Engine,
        pre: InstancePre<State>,
        exports: Exports,
        sandbox: SandboxSpec,
        config_json: String,
        share: u32,
    ) -> Self {
        LoadedPlugin {
            turns: Turns::for_runtime(),
            slots: Arc::new(Semaphore::new(share as usize)),
            share,
            permits: Semaphore::new(info.max_instances as usize),
            info,
            engine,
            pre,
            exports,
            sandbox,
            config_json,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn limits(&self) -> ResolvedLimits {
        self.sandbox.limits
    }

    /// The plugin's configuration as its `init` is given it (JSON text).
    pub(crate) fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The plugin's name, as errors and records give it.
    fn name(&self) -> &str {
        &self.sandbox.plugin
    }

    /// A fresh store with the plugin's sandbox, in one of its pool slots.
    /// `during` names the call for the error when every slot is taken.
    fn new_store(&self, during: &str) -> Result<Store<State>> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            let e = self.limit_error(during, Limit::Instances);
            self.sandbox
                .auditor
                .record(Effect::Limit, during, Outcome::Deny, &e.to_string());
            return Err(e);
        };
        let state = State::new(&self.sandbox, slot).map_err(|e| Error::load(self.name(), e))?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
            .fuel_async_yield_interval(Some(YIELD_FUEL))
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Guest code yields to the async runtime every YIELD_FUEL units of
        // fuel and at every epoch tick, so a busy plugin holds a worker
        // thread for tens of microseconds at a time; past the call's
        // deadline it is stopped with the time limit.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Ok(store)
    }

    fn arm(&self, store: &mut Store<State>) {
        let limits = self.limits();
        // Fuel can only be set on a store created with fuel on, which ours always are.
        let _ = store.set_fuel(limits.fuel);
        store.set_epoch_deadline(1);
        store.data_mut().deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
        store.data_mut().limiter.hit = None;
        store.data_mut().hooks.reset();
        store.data_mut().pace.reset();
        store.data_mut().recount_descriptors();
        store.data().reset_log_budget();
    }

    /// Instantiates without calling `init` (used once at load for `describe`).
    pub(crate) async fn describe(&self) -> Result<wit::Description> {
        let mut store = self.new_store("describe")?;
        self.arm(&mut store);
        let guests = self.instantiate(&mut store, "describe").await?;
        let r = self.timed(guests.provider.call_describe(&mut store)).await;
        self.settle(&store, "describe", r)
    }

    async fn instantiate(&self, store: &mut Store<State>, during: &str) -> Result<Guests> {
        let r = self.timed(self.pre.instantiate_async(&mut *store)).await;
        let instance = self.settle(store, during, r)?;
        let provider = self
            .exports
            .provider
            .load(&mut *store, &instance)
            .map_err(|e| self.classify(store, during, e))?;
        let sessions = match &self.exports.sessions {
            Some(s) => Some(
                s.load(&mut *store, &instance)
                    .map_err(|e| self.classify(store, during, e))?,
            ),
            None => None,
        };
        let discovery = match &self.exports.discovery {
            Some(d) => Some(
                d.load(&mut *store, &instance)
                    .map_err(|e| self.classify(store, during, e))?,
            ),
            None => None,
        };
        let cleanup = match &self.exports.cleanup {
            Some(c) => Some(
                c.load(&mut *store, &instance)
                    .map_err(|e| self.classify(store, during, e))?,
            ),
            None => None,
        };
        Ok(Guests {
            provider,
            sessions,
            discovery,
            cleanup,
        })
    }

    /// A new instance, initialised with the plugin's config.
    async fn new_instance(&self, during: &str) -> Result<Warm> {
        let mut store = self.new_store(during)?;
        self.arm(&mut store);
        let guests = self.instantiate(&mut store, during).await?;
        let r = self
            .timed(guests.provider.call_init(&mut store, &self.config_json))
            .await;
        match self.settle(&store, during, r)? {
            Ok(()) => Ok(Warm {
                store,
                guests: Box::new(guests),
            }),
            Err(e) => {
                let (kind, message) = split_wit_error(e);
                Err(Error::Capability {
                    plugin: self.name().to_string(),
                    capability: during.to_string(),
                    kind: kind.unwrap_or(ErrorKind::Unavailable),
                    message: format!("init failed: {message}"),
                })
            }
        }
    }

    /// Checks a new instance can be created and initialised; keeps it warm.
    pub(crate) async fn warm_up(self: &Arc<Self>) -> Result<()> {
        let warm = self.new_instance("init").await?;
        self.checkin(warm);
        Ok(())
    }

    /// Runs `fut` (a guest entry point) under the wall-clock limit; `None`
    /// when the limit (and its grace) passed first. Wasm code itself is
    /// stopped at the limit by the epoch; this bounds a guest waiting in a
    /// host call. The timer is started only if the entry does not finish
    /// in its first poll, so a short call never touches the timer wheel.
    /// The future is boxed: the guest call's state is large, and moved by
    /// every async layer above it otherwise. Each poll of it (a slice of
    /// guest code) runs in one of the plugin's [`Turns`]; a call waiting
    /// for a turn is still under the limit.
    fn timed<'s, T>(
        &'s self,
        fut: impl Future<Output = wasmtime::Result<T>> + 's,
    ) -> impl Future<Output = Option<wasmtime::Result<T>>> + 's {
        let budget = Duration::from_millis(self.limits().timeout_ms) + TIMEOUT_GRACE;
        let mut fut = self.turns.run(Box::pin(fut));
        let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        std::future::poll_fn(move |cx| {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut fut).poll(cx) {
                return std::task::Poll::Ready(Some(v));
            }
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(budget)));
            timer.as_mut().poll(cx).map(|()| None)
        })
    }

    /// Turns the outcome of [`timed`](Self::timed) into a typed result.
    fn settle<T>(
        &self,
        store: &Store<State>,
        capability: &str,
        r: Option<wasmtime::Result<T>>,
    ) -> Result<T> {
        match r {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(self.classify(store, capability, e)),
            // Stopped while waiting in a host call: recorded like any limit.
            None => {
                let e = self.limit_error(capability, Limit::Time);
                store.data().auditor.record(
                    Effect::Limit,
                    capability,
                    Outcome::Deny,
                    &e.to_string(),
                );
                Err(e)
            }
        }
    }

    fn output_too_large(&self, store: &Store<State>, capability: &str) -> Error {
        let e = self.limit_error(capability, Limit::Output);
        store
            .data()
            .auditor
            .record(Effect::Limit, capability, Outcome::Deny, &e.to_string());
        e
    }

    fn limit_error(&self, capability: &str, limit: Limit) -> Error {
        let l = self.limits();
        let detail = match limit {
            Limit::Fuel => format!("used all {} units of fuel (limits.fuel)", l.fuel),
            Limit::Memory => format!("tried to grow past {} bytes (limits.memory)", l.memory),
            Limit::Time => format!("ran longer than {} ms (limits.timeout-ms)", l.timeout_ms),
            Limit::Stack => "exhausted the wasm stack".to_string(),
            Limit::Output => format!(
                "returned more than {} bytes (limits.max-output-bytes)",
                l.max_output_bytes
            ),
            Limit::Log => format!(
                "wrote more than {} log lines (limits.max-log-lines)",
                l.max_log_lines
            ),
            Limit::Instances => format!(
                "all {} of its instance slots are in use (max-instances {} + sessions.max {} + 1)",
                self.share, self.info.max_instances, self.info.sessions.max
            ),
            Limit::HostState => format!(
                "held more host resources (header sets, streams, sockets, files) than the {} its {}-byte memory limit allows",
                crate::sandbox::max_host_resources(l.memory),
                l.memory
            ),
        };
        Error::LimitExceeded {
            plugin: self.name().to_string(),
            capability: capability.to_string(),
            limit,
            detail,
        }
    }

    /// The typed error for a failed entry into the guest, audited as a
    /// `limit` or a `trap`.
    fn classify(&self, store: &Store<State>, capability: &str, e: wasmtime::Error) -> Error {
        let error = self.classify_inner(store, capability, e);
        let effect = match error {
            Error::Trap { .. } => Effect::Trap,
            _ => Effect::Limit,
        };
        store
            .data()
            .auditor
            .record(effect, capability, Outcome::Deny, &error.to_string());
        error
    }

    fn classify_inner(&self, store: &Store<State>, capability: &str, e: wasmtime::Error) -> Error {
        let trap = e.downcast_ref::<Trap>().copied();
        match trap {
            Some(Trap::OutOfFuel) => return self.limit_error(capability, Limit::Fuel),
            Some(Trap::Interrupt) => return self.limit_error(capability, Limit::Time),
            Some(Trap::StackOverflow) => return self.limit_error(capability, Limit::Stack),
            _ => {}
        }
        if let Some(limit) = store.data().limiter.hit {
            return self.limit_error(capability, limit);
        }
        let table_full = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<wasmtime::component::ResourceTableError>(),
                Some(wasmtime::component::ResourceTableError::Full)
            )
        });
        if table_full {
            return self.limit_error(capability, Limit::HostState);
        }
        // A memory refused while instantiating (an initial size above the
        // cap) was recorded by the limiter above; anything else is a trap.
        Error::Trap {
            plugin: self.name().to_string(),
            capability: capability.to_string(),
            message: crash_cause(&e, &store.data().stderr_tail()),
        }
    }

    /// Takes a permit and an instance (warm if one is idle, else new), armed
    /// with a fresh budget. `during` names the call for errors.
    async fn checkout(&self, during: &str) -> Result<(tokio::sync::SemaphorePermit<'_>, Warm)> {
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            // Boxed: the warm path's future stays small.
            Err(_) => Box::pin(self.permits.acquire())
                .await
                .map_err(|_| Error::Internal("plugin is shutting down".into()))?,
        };
        let reused = if self.info.instances == InstanceMode::Reuse {
            self.idle.lock().expect("pool lock").pop()
        } else {
            None
        };
        let mut warm = match reused {
            Some(w) => w,
            // Boxed: the warm path's future stays small.
            None => Box::pin(self.new_instance(during)).await?,
        };
        self.arm(&mut warm.store);
        Ok((permit, warm))
    }

    /// Returns a healthy instance to the idle pool (in reuse mode). An
    /// instance that trapped or hit a limit must never come back here.
    /// In fresh-instance mode it is discarded, and remote state it holds
    /// is released.
    fn checkin(self: &Arc<Self>, warm: Warm) {
        if self.info.instances == InstanceMode::Reuse {
            self.idle.lock().expect("pool lock").push(warm);
        } else {
            self.abandon(warm);
        }
    }

    /// Calls a capability of this plugin.
    pub(crate) async fn call(
        self: &Arc<Self>,
        capability: &str,
        input: &Value,
        call: CallTag<'_>,
    ) -> Result<Value> {
        let input_text =
            serde_json::to_string(input).map_err(|e| Error::Internal(e.to_string()))?;
        self.call_text(capability, &input_text, call).await
    }

    /// Calls a capability with its input already JSON text.
    pub(crate) async fn call_text(
        self: &Arc<Self>,
        capability: &str,
        input_text: &str,
        call: CallTag<'_>,
    ) -> Result<Value> {
        self.enter_call(capability, input_text, call, Self::output)
            .await
    }

    /// Calls a capability with its input and output as JSON text; the
    /// output is the guest's, with secret values cut out.
    pub(crate) async fn call_json(
        self: &Arc<Self>,
        capability: &str,
        input_text: &str,
        call: CallTag<'_>,
    ) -> Result<String> {
        self.enter_call(capability, input_text, call, Self::output_text)
            .await
    }

    /// Runs `provider.call` in an instance; `output` turns what the guest
    /// returned into the call's result ([`output`](Self::output),
    /// [`output_text`](Self::output_text)).
    pub(crate) async fn enter_call<T>(
        self: &Arc<Self>,
        capability: &str,
        input_text: &str,
        call: CallTag<'_>,
        output: impl FnOnce(&Self, &Auditor, &str, GuestOutcome) -> Result<T>,
    ) -> Result<T> {
        let (_permit, warm) = self.checkout(capability).await?;
        // Should this call never come back (a limit, a trap, a caller that
        // went away), the guard hands the instance's remote state to a
        // fresh one.
        let mut entered = Entered::new(self, warm);
        let warm = entered.warm();
        warm.store.data().auditor.enter(capability, call);
        let r = self
            .timed(
                warm.guests
                    .provider
                    .call_call(&mut warm.store, capability, input_text),
            )
            .await;
        let result = self.settle(&warm.store, capability, r);
        let left = warm.store.get_fuel().unwrap_or(0);
        let auditor = &warm.store.data().auditor;
        auditor.fuel_used(self.limits().fuel.saturating_sub(left));
        let flooded = warm.store.data().end_call(capability);
        let outcome = match result {
            // A trap or a limit: this instance is never entered again.
            Err(e) => return Err(e),
            Ok(outcome) => outcome,
        };
        if let Ok(text) = &outcome {
            if text.len() as u64 > self.limits().max_output_bytes {
                // Discarded with its grown memory.
                return Err(self.output_too_large(&warm.store, capability));
            }
        }
        // Decided (and any redaction audited) while the call still holds
        // the instance, so the record names this call.
        let output = output(self, &warm.store.data().auditor, capability, outcome);
        self.checkin(entered.back());
        if flooded {
            return Err(self.limit_error(capability, Limit::Log));
        }
        output
    }

    /// A call's output as JSON, with the plugin's secret values cut out (a
    /// redaction audited), or its error.
    pub(crate) fn output(
        &self,
        auditor: &Auditor,
        capability: &str,
        outcome: GuestOutcome,
    ) -> Result<Value> {
        let text = match outcome {
            Ok(text) => text,
            Err(e) => return Err(self.wit_error(capability, e)),
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| self.not_json(capability, e))?;
        let Some((redacted, cut)) = self.sandbox.egress.redact_output(&value) else {
            return Ok(value);
        };
        let reason = format!("the output quoted a secret's value: {cut} redacted");
        auditor.record(Effect::Secret, capability, Outcome::Deny, &reason);
        serde_json::from_str(&redacted).map_err(|e| self.not_json(capability, e))
    }

    /// [`output`](Self::output) as JSON text. Without secrets to cut, the
    /// guest's text is passed on as it is (the caller checks it against the
    /// output schema, which also finds text that is not JSON).
    pub(crate) fn output_text(
        &self,
        auditor: &Auditor,
        capability: &str,
        outcome: GuestOutcome,
    ) -> Result<String> {
        if !self.sandbox.egress.redacts_output() {
            return outcome.map_err(|e| self.wit_error(capability, e));
        }
        let value = self.output(auditor, capability, outcome)?;
        Ok(value.to_string())
    }

    /// The error for output that is not JSON.
    pub(crate) fn not_json(&self, capability: &str, e: impl std::fmt::Display) -> Error {
        Error::Contract {
            plugin: self.name().to_string(),
            message: format!("`{capability}` returned output that is not JSON: {e}"),
        }
    }

    /// Asks a (warm or fresh) instance for its health.
    pub(crate) async fn health(self: &Arc<Self>) -> Result<wit::HealthReport> {
        let (_permit, mut warm) = self.checkout("health").await?;
        let r = self
            .timed(warm.guests.provider.call_health(&mut warm.store))
            .await;
        let report = self.settle(&warm.store, "health", r)?;
        self.checkin(warm);
        Ok(report)
    }

    /// Whether the plugin exports `session-handler`.
    pub(crate) fn has_sessions(&self) -> bool {
        self.exports.sessions.is_some()
    }

    /// Whether the plugin exports `discovery`.
    pub(crate) fn has_discovery(&self) -> bool {
        self.exports.discovery.is_some()
    }

    /// The names of the plugin's discovery sources.
    pub(crate) async fn sources(self: &Arc<Self>) -> Result<Vec<String>> {
        let (_permit, mut warm) = self.checkout("discover").await?;
        let Some(guest) = warm.guests.discovery.clone() else {
            self.checkin(warm);
            return Ok(Vec::new());
        };
        let r = self.timed(guest.call_sources(&mut warm.store)).await;
        let names = self.settle(&warm.store, "discover", r)?;
        self.checkin(warm);
        Ok(names)
    }

    /// Asks an instance for the capabilities of source `name`, in a call of
    /// its own (under the plugin's time limit).
    pub(crate) async fn discover(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<std::result::Result<Vec<wit::CapabilityDescriptor>, wit::Error>> {
        let (_permit, warm) = self.checkout("discover").await?;
        let Some(guest) = warm.guests.discovery.clone() else {
            self.checkin(warm);
            return Ok(Ok(Vec::new()));
        };
        let mut entered = Entered::new(self, warm);
        let warm = entered.warm();
        let r = self.timed(guest.call_discover(&mut warm.store, name)).await;
        let found = self.settle(&warm.store, "discover", r)?;
        self.checkin(entered.back());
        Ok(found)
    }

    fn wit_error(&self, capability: &str, e: wit::Error) -> Error {
        let (kind, message) = split_wit_error(e);
        match kind {
            None => Error::Denied {
                capability: capability.to_string(),
                message,
            },
            Some(kind) => Error::Capability {
                plugin: self.name().to_string(),
                capability: capability.to_string(),
                kind,
                message,
            },
        }
    }
}

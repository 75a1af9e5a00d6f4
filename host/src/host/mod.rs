//! [`Host`]: loads plugins from a [`Config`], keeps the registry, routes calls.

use crate::audit::AuditLog;
use crate::config::{Config, InstanceMode};
use crate::egress::Egress;
use crate::error::{Error, Result};
use crate::governance::effect_policy::{BoundSecret, EffectPolicy, EgressRule, SecretValue};
use crate::governance::{Approver, Auditor, Governance};
use crate::registry::{CapabilityInfo, Registered, Registry, Source};
use crate::runtime::engine::{self, CompileSource, EpochTicker};
use crate::runtime::plugin::{Exports, LoadedPlugin, PluginInfo};
use crate::runtime::session_pool;
use crate::runtime::session_pool::SessionPool;
use crate::sandbox::State;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use warden_manifest::metadata::parse_metadata;
use warden_manifest::route::Route;
use warden_manifest::snapshot;
use warden_manifest::{Manifest, ProviderKind};
use wasmtime::component::{HasSelf, Linker};

mod call;
mod declared;
mod discovery;
mod last_good;
mod load;
mod refresh;
mod snapshots;
mod source;

pub use call::CallPlan;
use call::KindServers;
use discovery::Discovery;

/// An embeddable Warden host. Cheap to clone; every clone shares the same
/// plugins. Calls may run concurrently from many tasks.
///
/// ```no_run
/// # async fn demo() -> Result<(), warden::Error> {
/// let host = warden::Host::from_config_file("warden.toml".as_ref()).await?;
/// let out = host.call("text.case", serde_json::json!({"text": "hi there", "to": "upper"})).await?;
/// assert_eq!(out["text"], "HI THERE");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    plugins: Vec<Arc<LoadedPlugin>>,
    /// For each provider kind a plugin serves: that plugin and its entry.
    servers: KindServers,
    registry: RwLock<Registry>,
    store: Option<PathBuf>,
    sessions: Arc<SessionPool>,
    governance: Governance,
    /// Per plugin with `discovery`: which sources are registered or pending.
    discovery: tokio::sync::Mutex<HashMap<usize, Discovery>>,
    /// Plugins refused at load and why (the host serves the others).
    refused: Vec<(String, String)>,
    /// Plugins whose new version `[host] on-update` held back, with why.
    held: Vec<(String, String)>,
    /// Bumped whenever capabilities are registered after load.
    catalog: tokio::sync::watch::Sender<u64>,
    /// Capabilities of sources whose refresh fails, since when (kept in
    /// step with `discovery` by `refresh`).
    stale: RwLock<HashMap<String, std::time::SystemTime>>,
    /// Who listens to the progress of which call.
    listeners: Arc<crate::progress::Listeners>,
    // Dropped last: stops the epoch thread once no call can be running.
    _ticker: EpochTicker,
}

impl Drop for Inner {
    /// A host dropped without [`Host::shutdown`] still ends its sessions
    /// (best effort, on the current runtime if there is one).
    fn drop(&mut self) {
        if self.sessions.len() == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sessions = std::mem::take(&mut self.sessions);
        runtime.spawn(async move { sessions.close_all().await });
    }
}

/// Who a call is made for ([`Host::call_with`]).
#[derive(Clone, Copy, Default)]
pub struct CallContext<'a> {
    /// The session a capability that asks for one runs in (`None`:
    /// [`DEFAULT_SESSION_KEY`](crate::DEFAULT_SESSION_KEY)).
    pub session_key: Option<&'a str>,
    /// The caller, named in the call's audit records (`client` field).
    pub client: Option<&'a str>,
    /// Whose audit budget (`[audit] max-records-per-minute`, per client)
    /// the call's records are charged to: an identity the caller cannot
    /// pick, such as an authenticated principal, a session or a
    /// connection. `None`: `client`. A server that puts caller-chosen
    /// text (a client's name) in `client` sets this, or a caller could
    /// take a fresh budget with every name.
    pub account: Option<&'a str>,
    /// Asked when a rule says `approve`; the host's approver otherwise.
    pub approver: Option<&'a Arc<dyn Approver>>,
    /// Hears the plugin's progress reports (`host.progress`) while the
    /// call runs.
    pub progress: Option<&'a Arc<dyn crate::ProgressSink>>,
    /// Who is calling, for `[[policy.rules]]` that name `principals` or
    /// `scopes`: an authenticated identity, never text the caller picks.
    pub identity: crate::Identity<'a>,
    /// The trace the call belongs to (`[telemetry]`): its span is a child
    /// of this context (an MCP request's, say); a root without it.
    pub trace: Option<&'a crate::telemetry::Context>,
    /// The caller's OAuth access token, for `[secrets.NAME] exchange`:
    /// exchanged (RFC 8693) for a token meant for an upstream, which the
    /// host injects at egress. Never sent anywhere else, nor recorded.
    pub subject_token: Option<&'a str>,
}

/// How long [`Host::shutdown`] waits for plugins to close their sessions
/// and release the remote state of idle instances (`cleanup.release`), all
/// at once.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);

/// What [`Host::import`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Ids registered for the first time.
    pub registered: Vec<String>,
    /// Ids that replaced an earlier import.
    pub updated: Vec<String>,
    /// Ids (or files) skipped, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// What [`Host::export_rtfs`] and [`Host::export_json`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    /// Ids written.
    pub exported: Vec<String>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Ids skipped (not serializable), with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Health of one plugin, as it reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    /// Detail from the plugin.
    pub message: String,
}

impl Host {
    /// Reads `path` and loads every plugin it lists.
    pub async fn from_config_file(path: &Path) -> Result<Host> {
        Host::new(Config::from_file(path)?).await
    }

    /// Loads the configuration at `path` to call capability `id` (the
    /// `warden call` case): only plugins whose namespaces hold `id` list
    /// their discovery sources, and a plugin stops waiting for its sources
    /// once the one `id` names has answered, so a sibling source that hangs
    /// does not hold the call for its time limit. Sources not listed are
    /// pending (as after a failure).
    pub async fn from_config_file_for_call(path: &Path, id: &str) -> Result<Host> {
        Host::new_for_call(Config::from_file(path)?, id).await
    }

    /// [`Host::new`] for one call of `id` (see
    /// [`from_config_file_for_call`](Self::from_config_file_for_call)).
    pub async fn new_for_call(config: Config, id: &str) -> Result<Host> {
        Host::load(config, Some(id)).await
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Calls capability `id` with a JSON `input` and returns its JSON output.
    ///
    /// The input is checked against the capability's input schema before
    /// any guest code runs, and the output against its output schema after.
    /// A capability that asks for a session runs in the default session;
    /// see [`call_in_session`](Self::call_in_session).
    pub fn call<'a>(
        &'a self,
        id: &'a str,
        input: Value,
    ) -> impl Future<Output = Result<Value>> + 'a {
        self.plan_and_execute(id, input, CallContext::default())
    }

    /// Like [`call`](Self::call); a capability that asks for a session runs
    /// in the session of `session_key` (separate agents or conversations
    /// pass separate keys; `None` is [`DEFAULT_SESSION_KEY`](crate::DEFAULT_SESSION_KEY)).
    /// Other capabilities ignore the key.
    pub fn call_in_session<'a>(
        &'a self,
        id: &'a str,
        input: Value,
        session_key: Option<&'a str>,
    ) -> impl Future<Output = Result<Value>> + 'a {
        let context = CallContext {
            session_key,
            ..CallContext::default()
        };
        self.plan_and_execute(id, input, context)
    }

    /// Like [`call`](Self::call), on behalf of a caller described by
    /// `context`: its session key, the client named in the call's audit
    /// records, and the approver asked when a rule says `approve` (instead
    /// of the host's).
    pub fn call_with<'a>(
        &'a self,
        id: &'a str,
        input: Value,
        context: &CallContext<'a>,
    ) -> impl Future<Output = Result<Value>> + 'a {
        self.plan_and_execute(id, input, *context)
    }

    /// Like [`call_with`](Self::call_with), with the input and the output
    /// as JSON text: both are checked against their schemas as they are
    /// read and neither is parsed into a value (see
    /// [`execute_json`](Self::execute_json)). For callers that hold JSON
    /// text: a server, another language's binding.
    pub async fn call_json(
        &self,
        id: &str,
        input: &str,
        context: &CallContext<'_>,
    ) -> Result<String> {
        let plan = self.plan(id, context).await?;
        self.execute_json(plan, input).await
    }

    /// What `call`, `call_in_session` and `call_with` return: one future, not one per layer (a call's
    /// future is moved by each `async` layer it is wrapped in).
    async fn plan_and_execute<'a>(
        &'a self,
        id: &'a str,
        input: Value,
        context: CallContext<'a>,
    ) -> Result<Value> {
        let plan = self.plan(id, &context).await?;
        self.execute(plan, input).await
    }

    /// Sets the approver asked about calls that match an `approve` rule
    /// (`None`: such calls are denied). Guests cannot reach it.
    pub fn set_approver(&self, approver: Option<Arc<dyn Approver>>) {
        self.inner.governance.set_approver(approver);
    }

    /// The pattern of the `[policy]` rule that makes calls to `id` by
    /// `caller` wait for approval, or `None` when they do not.
    pub fn approval_rule(&self, id: &str, caller: crate::Identity<'_>) -> Option<String> {
        let info = self.capability(id).ok()?;
        let governance = &self.inner.governance;
        let rule = governance.match_rule(id, &info.flat_metadata, caller);
        governance.approval_pattern(rule).map(str::to_string)
    }

    /// Changes whenever capabilities are registered after the host started
    /// (a discovery source that came up, an import): a server tells its
    /// clients that the list changed.
    pub fn catalog_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.catalog.subscribe()
    }

    pub(crate) fn catalog_changed(&self) {
        self.inner.catalog.send_modify(|n| *n += 1);
    }

    /// The audit log's file, if the host keeps one.
    pub fn audit_path(&self) -> Option<&Path> {
        self.inner.governance.audit().map(|a| a.path())
    }

    /// Number of open sessions in the pool.
    pub fn open_sessions(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Ends every session opened under `session_key` (a client that went
    /// away): each provider ends its remote session, e.g. an MCP server sees
    /// `DELETE`. Returns how many were open.
    pub async fn end_sessions(&self, session_key: &str) -> usize {
        self.inner.sessions.close_caller(session_key).await
    }

    /// Closes every pooled session (each provider ends its remote session,
    /// e.g. an MCP server sees `DELETE`) and releases the remote state idle
    /// instances hold, all at once and within [`SHUTDOWN_BUDGET`]: what is
    /// not released by then is abandoned (logged), so a plugin cannot add
    /// its time limit to every exit. Then the audit log is flushed. Call it
    /// before exiting; calls made afterwards open new sessions.
    pub async fn shutdown(&self) {
        let plugins = &self.inner.plugins;
        let releases = async {
            let plugins = futures::future::join_all(plugins.iter().map(|p| p.release_idle()));
            tokio::join!(self.inner.sessions.close_all(), plugins);
        };
        if tokio::time::timeout(SHUTDOWN_BUDGET, releases)
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown: remote state not released within {} ms was abandoned",
                SHUTDOWN_BUDGET.as_millis()
            );
        }
        for plugin in plugins {
            plugin.close_volume();
        }
        self.inner.governance.close_volume();
        if let Some(audit) = self.inner.governance.audit() {
            if let Err(e) = audit.flush() {
                tracing::error!("{e}");
            }
        }
        if let Some(telemetry) = self.inner.governance.telemetry().cloned() {
            // Blocks until the last spans and metrics are exported.
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        }
    }

    /// Traces and metrics (`[telemetry]`), when on: for an embedder's own
    /// spans and instruments (`warden serve`'s MCP requests).
    pub fn telemetry(&self) -> Option<&Arc<crate::telemetry::Telemetry>> {
        self.inner.governance.telemetry()
    }

    /// The state shared with other replicas (`[cluster]`), when set: for
    /// an embedder's own one-time claims (`warden serve`'s approvals).
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.inner.governance.cluster()
    }

    /// Like [`call`](Self::call), with typed input and output.
    pub async fn call_typed<I: Serialize, O: DeserializeOwned>(
        &self,
        id: &str,
        input: &I,
    ) -> Result<O> {
        let input = serde_json::to_value(input).map_err(|e| Error::InvalidInput {
            capability: id.into(),
            message: e.to_string(),
        })?;
        let out = self.call(id, input).await?;
        serde_json::from_value(out).map_err(|e| Error::InvalidInput {
            capability: id.into(),
            message: format!("output does not fit the requested type: {e}"),
        })
    }

    /// The plugins refused at load (`[host] strict-load = false`), each
    /// with why; the host serves the others.
    pub fn refused_plugins(&self) -> &[(String, String)] {
        &self.inner.refused
    }

    /// Plugins whose new version `[host] on-update` held back, with the
    /// change: each is either refused or, when pulled, serving its locked
    /// version.
    pub fn held_updates(&self) -> &[(String, String)] {
        &self.inner.held
    }

    /// Each loaded plugin as `warden.lock` records it.
    pub fn lock_entries(&self) -> std::collections::BTreeMap<String, crate::lock::LockedPlugin> {
        let registry = self
            .inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner());
        self.inner
            .plugins
            .iter()
            .map(|p| {
                let entry = load::lock_entry(&p.info, &registry);
                (p.info.name.clone(), entry)
            })
            .collect()
    }

    /// Every registered capability: plugins' in load order, then imported ones.
    pub fn capabilities(&self) -> Vec<Arc<CapabilityInfo>> {
        self.registry().iter().cloned().collect()
    }

    /// The capability `id`, or an error naming the nearest ids.
    pub fn capability(&self, id: &str) -> Result<Arc<CapabilityInfo>> {
        let found = self.registry().get(id);
        found.map(|(_, c)| c).map_err(crate::registry::suggest)
    }

    /// Every loaded plugin.
    pub fn plugins(&self) -> Vec<&PluginInfo> {
        self.inner.plugins.iter().map(|p| &p.info).collect()
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Result<&PluginInfo> {
        self.find(name).map(|p| &p.info)
    }

    fn find(&self, name: &str) -> Result<&Arc<LoadedPlugin>> {
        self.inner
            .plugins
            .iter()
            .find(|p| p.info.name == name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_string()))
    }

    /// Asks plugin `name` for its health.
    pub async fn health(&self, name: &str) -> Result<Health> {
        let report = self.find(name)?.health().await?;
        use crate::bindings::warden::provider::types::HealthStatus;
        let status = match report.status {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        };
        Ok(Health {
            status: status.into(),
            message: report.message,
        })
    }

    /// The marketplace store directory, if the host has one.
    pub fn store_dir(&self) -> Option<&Path> {
        self.inner.store.as_deref()
    }

    /// Whether plugin `name` was compiled at load or came from the cache.
    pub fn compile_source(&self, name: &str) -> Result<CompileSource> {
        Ok(self.plugin(name)?.compiled)
    }

    /// Whether plugin `name` reuses instances.
    pub fn instance_mode(&self, name: &str) -> Result<InstanceMode> {
        Ok(self.plugin(name)?.instances)
    }
}

/// Writes one summary of a plugin's refused claims (warned and audited).
pub(super) fn report_refused(
    governance: &Governance,
    plugin: &str,
    namespaces: &crate::registry::Namespaces,
    refused: &crate::registry::Refused,
) -> Result<()> {
    if refused.count() == 0 {
        return Ok(());
    }
    let summary = refused.summary(namespaces);
    tracing::warn!(plugin = %plugin, "{summary}");
    governance.record(crate::audit::Entry {
        plugin: plugin.to_string(),
        effect: crate::audit::Effect::Register,
        target: format!("{} capability ids", refused.count()),
        decision: crate::audit::Outcome::Deny,
        reason: summary,
        ..Default::default()
    })
}

/// A claim on a capability id that is registered already is refused for that
/// id only: warned about and audited, naming the owner and the claimant.
/// Other errors are returned.
pub(super) fn refuse_claim(governance: &Governance, claimant: &str, error: Error) -> Result<()> {
    let Error::DuplicateCapability { id, first, second } = error else {
        return Err(error);
    };
    tracing::warn!(
        capability = %id, owner = %first, claimant = %second,
        "capability id already registered: the later claim is refused"
    );
    governance.record(crate::audit::Entry {
        plugin: claimant.to_string(),
        effect: crate::audit::Effect::Register,
        target: id.clone(),
        decision: crate::audit::Outcome::Deny,
        reason: format!("`{id}` belongs to {first}; the claim by {second} is refused"),
        ..Default::default()
    })
}

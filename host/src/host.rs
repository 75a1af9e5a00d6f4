//! [`Host`]: loads plugins from a [`Config`], keeps the registry, routes calls.

use crate::config::{Config, InstanceMode};
use crate::egress::Egress;
use crate::error::{Error, Result};
use crate::governance::audit::AuditLog;
use crate::governance::policy::{BoundSecret, EgressRule, Policy, SecretValue};
use crate::governance::{Approver, Auditor, Governance};
use crate::registry::{CapabilityInfo, Registered, Registry, Source};
use crate::runtime::engine::{self, CompileSource, EpochTicker};
use crate::runtime::plugin::{Exports, LoadedPlugin, PluginInfo};
use crate::runtime::sessions;
use crate::runtime::sessions::SessionPool;
use crate::sandbox::State;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use warden_manifest::metadata::parse_metadata;
use warden_manifest::route::Route;
use warden_manifest::snapshot as marketplace;
use warden_manifest::{Manifest, ProviderKind};
use wasmtime::component::{HasSelf, Linker};

/// Instances kept in reserve beyond the plugins' `max-instances` (describe
/// at load, health checks).
const SPARE_INSTANCES: u32 = 8;

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
    /// For each provider kind a plugin serves: (plugin index, its entry capability).
    servers: HashMap<ProviderKind, (usize, String)>,
    registry: RwLock<Registry>,
    store: Option<PathBuf>,
    sessions: SessionPool,
    governance: Governance,
    /// Per plugin with `discovery`: which sources are registered or pending.
    discovery: tokio::sync::Mutex<HashMap<usize, Discovery>>,
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

    /// Loads every plugin of `config`: compiles (or loads from the cache)
    /// each component, checks it implements the provider world, reads its
    /// descriptors into the registry, and initialises one instance.
    pub async fn new(config: Config) -> Result<Host> {
        config.validate()?;
        let audit_log = match &config.audit {
            None => None,
            Some(a) => Some(Arc::new(
                AuditLog::open(&config.resolve_path(&a.path), a.sync, a.rotate_bytes)
                    .map_err(|e| Error::Config(e.to_string()))?,
            )),
        };
        let governance = Governance::new(config.policy.clone(), audit_log);
        let total: u32 = config
            .plugins
            .values()
            .map(|p| p.max_instances + p.sessions.max)
            .sum::<u32>()
            + SPARE_INSTANCES;
        let max_memory = config
            .plugins
            .values()
            .map(|p| p.limits.or(config.limits).resolve().memory)
            .max()
            .unwrap_or(crate::config::DEFAULT_MEMORY);
        let engine = engine::new_engine(total, max_memory)?;
        let ticker = EpochTicker::start(&engine);
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Internal(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| Error::Internal(e.to_string()))?;
        crate::bindings::HostView::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| Error::Internal(e.to_string()))?;
        linker.allow_shadowing(true);
        crate::sandbox::add_audited_open_at(&mut linker)
            .map_err(|e| Error::Internal(format!("{e:#}")))?;
        linker.allow_shadowing(false);

        let cache_dir = config.cache_dir();
        let resolve = Arc::new(config.host.resolve.clone());
        let mut plugins = Vec::new();
        let mut registry = Registry::default();
        let mut discovery = HashMap::new();
        for (name, pc) in &config.plugins {
            let path = config.resolve_path(&pc.component);
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::load(
                    name,
                    format!("cannot read component {}: {e}", path.display()),
                )
            })?;
            if !bytes.starts_with(b"\0asm") {
                return Err(Error::load(
                    name,
                    format!("{} is not a WebAssembly file", path.display()),
                ));
            }
            let (component, compiled) =
                engine::load_component(&engine, &bytes, cache_dir.as_deref())
                    .map_err(|e| Error::load(name, format!("{}: {e}", path.display())))?;
            let pre = linker.instantiate_pre(&component).map_err(|e| {
                Error::load(name, format!("{}: cannot be linked: {e:#}", path.display()))
            })?;
            let exports = Exports::new(&pre).map_err(|e| {
                Error::load(
                    name,
                    format!(
                        "{} does not implement the warden:provider/plugin world: {e:#}",
                        path.display()
                    ),
                )
            })?;
            let policy = Policy::from_grants(&pc.grants, |p| config.resolve_path(p))
                .map_err(|e| Error::load(name, e))?;
            for dir in policy.dirs() {
                if !dir.host.is_dir() {
                    return Err(Error::load(
                        name,
                        format!("granted directory {} does not exist", dir.host.display()),
                    ));
                }
            }
            let info = PluginInfo {
                name: name.clone(),
                provider: String::new(),
                version: String::new(),
                description: String::new(),
                component: path.display().to_string(),
                digest: crate::digest::digest(&bytes),
                compiled,
                limits: pc.limits.or(config.limits).resolve(),
                grants: pc.grants.clone(),
                instances: pc.instances,
                max_instances: pc.max_instances,
                capabilities: Vec::new(),
                sessions: pc.sessions,
            };
            let secrets = pc
                .grants
                .secrets
                .iter()
                .map(|g| {
                    let value = config
                        .secret_value(&g.name)
                        .map_err(|e| Error::load(name, e))?;
                    let hosts = g
                        .hosts
                        .iter()
                        .map(|h| EgressRule::parse(h))
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| Error::load(name, e))?;
                    Ok(BoundSecret {
                        name: g.name.clone(),
                        value: SecretValue::new(value),
                        hosts,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let policy = policy.with_secrets(secrets);
            let egress = Arc::new(Egress::new(
                Arc::from(name.as_str()),
                Arc::new(policy),
                resolve.clone(),
            ));
            if let Some(pinned) = governance.pinned_digest(name) {
                if !pinned.eq_ignore_ascii_case(&info.digest) {
                    let message = format!(
                        "{} has digest {}, but policy.plugins.{name}.digest pins {pinned}",
                        path.display(),
                        info.digest
                    );
                    governance.record(crate::governance::audit::Entry {
                        plugin: name.clone(),
                        digest: info.digest.clone(),
                        effect: "load",
                        target: path.display().to_string(),
                        decision: "deny",
                        reason: message.clone(),
                        ..Default::default()
                    })?;
                    return Err(Error::load(name, message));
                }
            }
            let auditor = Auditor::new(
                governance.audit().cloned(),
                Arc::from(name.as_str()),
                Arc::from(info.digest.as_str()),
            );
            let mut plugin = LoadedPlugin::new(
                info,
                engine.clone(),
                pre,
                exports,
                egress,
                auditor,
                pc.config.to_string(),
            );
            let description = plugin
                .describe()
                .await
                .map_err(|e| Error::load(name, format!("describe failed: {e}")))?;
            plugin.info.provider = description.info.name;
            plugin.info.version = description.info.version;
            plugin.info.description = description.info.description;
            let index = plugins.len();
            for d in description.capabilities {
                let id = d.id.clone();
                let info = descriptor_info(d, name)
                    .map_err(|e| Error::load(name, format!("capability `{id}`: {e}")))?;
                if let Route::Session { key } = &info.route {
                    if !plugin.has_sessions() {
                        return Err(Error::load(
                            name,
                            format!("capability `{id}` asks for a session (metadata `{key}`), and the plugin exports no session-handler"),
                        ));
                    }
                }
                plugin.info.capabilities.push(id);
                registry.insert(Source::Plugin(index), info)?;
            }
            plugin.warm_up().await.map_err(|e| match e {
                e @ Error::Load { .. } => e,
                other => Error::load(name, other),
            })?;
            tracing::debug!(plugin = %name, compiled = ?compiled, "loaded");
            let plugin = Arc::new(plugin);
            if plugin.has_discovery() {
                let found = plugin
                    .discover()
                    .await
                    .map_err(|e| Error::load(name, format!("discover failed: {e}")))?;
                discovery.insert(index, Discovery::default());
                register_sources(
                    &plugin,
                    index,
                    found,
                    &mut registry,
                    discovery.get_mut(&index).expect("inserted"),
                );
            }
            plugins.push(plugin);
        }
        let mut servers = HashMap::new();
        for (kind, plugin_name) in &config.providers {
            let kind = ProviderKind::parse(kind).expect("validated");
            let index = plugins
                .iter()
                .position(|p| &p.info.name == plugin_name)
                .expect("validated");
            let entry = registry
                .iter()
                .find(|c| c.plugin.as_deref() == Some(plugin_name.as_str()) && c.flat_metadata.get("warden.serves").and_then(Value::as_str) == Some(kind.name()))
                .map(|c| c.id.clone())
                .ok_or_else(|| {
                    Error::load(
                        plugin_name,
                        format!("serves no :{kind} capabilities (none of its capabilities has metadata warden.serves = \"{kind}\")"),
                    )
                })?;
            servers.insert(kind, (index, entry));
        }
        let served_by = |kind: ProviderKind| {
            servers
                .get(&kind)
                .map(|(i, _): &(usize, String)| plugins[*i].info.name.clone())
        };
        for m in &config.capabilities {
            let info = CapabilityInfo::from_manifest(m.clone(), served_by(m.provider))
                .map_err(|e| Error::Config(format!("capability `{}`: {e}", m.id)))?;
            registry.insert(Source::Declared, info)?;
        }
        let store = config.marketplace_dir();
        if let Some(dir) = store.as_deref().filter(|d| d.is_dir()) {
            for (file, entry) in marketplace::read_path(dir)
                .map_err(|e| Error::Marketplace(format!("store {}: {e}", dir.display())))?
            {
                let m = entry
                    .map_err(|e| Error::Marketplace(format!("store {}: {e}", file.display())))?;
                let by = served_by(m.provider);
                let info = CapabilityInfo::from_manifest(m, by)
                    .map_err(|e| Error::Marketplace(format!("store {}: {e}", file.display())))?;
                registry.insert(Source::Imported, info)?;
            }
        }
        let sweep_every =
            sessions::sweep_interval(plugins.iter().map(|p| p.info.sessions.idle_ttl_ms));
        let host = Host {
            inner: Arc::new(Inner {
                plugins,
                servers,
                registry: RwLock::new(registry),
                store,
                sessions: SessionPool::default(),
                governance,
                discovery: tokio::sync::Mutex::new(discovery),
                _ticker: ticker,
            }),
        };
        host.start_background(sweep_every);
        Ok(host)
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
    pub async fn call(&self, id: &str, input: Value) -> Result<Value> {
        self.call_in_session(id, input, None).await
    }

    /// Like [`call`](Self::call); a capability that asks for a session runs
    /// in the session of `session_key` (separate agents or conversations
    /// pass separate keys; `None` is [`DEFAULT_SESSION_KEY`](crate::DEFAULT_SESSION_KEY)).
    /// Other capabilities ignore the key.
    pub async fn call_in_session(
        &self,
        id: &str,
        input: Value,
        session_key: Option<&str>,
    ) -> Result<Value> {
        let found = self.registry().get(id);
        let (source, info) = match found {
            Ok(f) => f,
            Err(e) => {
                // A source that failed discovery may offer it by now.
                self.retry_discovery(false).await;
                let again = self.registry().get(id);
                match again {
                    Ok(f) => f,
                    Err(_) => return Err(self.unavailable_source(id).await.unwrap_or(e)),
                }
            }
        };
        let validate = || {
            info.input_type
                .validate(&input)
                .map_err(|e| Error::InvalidInput {
                    capability: id.to_string(),
                    message: e.to_string(),
                })
        };
        // The plugin that serves the call, for governance and the audit log.
        let served = match source {
            Source::Plugin(index) => Some((index, None)),
            Source::Imported | Source::Declared => self
                .inner
                .servers
                .get(&info.provider)
                .map(|(i, entry)| (*i, Some(entry.clone()))),
        };
        let Some((index, entry)) = served else {
            validate()?;
            return Err(Error::NotServed {
                capability: id.to_string(),
                provider: info.provider.name().to_string(),
            });
        };
        let plugin = &self.inner.plugins[index];
        let governance = &self.inner.governance;
        let call_id = governance.call_id();
        let started = Instant::now();
        let _admission = governance
            .admit(
                &info.id,
                info.hints.rate_limit.as_ref(),
                &plugin.info.name,
                &plugin.info.digest,
                &input,
                session_key,
                &call_id,
                validate,
            )
            .await?;
        let result = self
            .run(plugin, index, entry, &info, input, session_key, &call_id)
            .await;
        governance.finish(
            &info.id,
            &plugin.info.name,
            &plugin.info.digest,
            &call_id,
            started,
            &result,
        )?;
        result
    }

    /// Runs an admitted call and checks its output.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        plugin: &Arc<LoadedPlugin>,
        index: usize,
        entry: Option<String>,
        info: &CapabilityInfo,
        input: Value,
        session_key: Option<&str>,
        call_id: &str,
    ) -> Result<Value> {
        let id = info.id.as_str();
        let output = match (entry, &info.route) {
            (None, Route::Session { .. }) => {
                let key = session_key.unwrap_or(crate::runtime::sessions::DEFAULT_SESSION_KEY);
                self.inner
                    .sessions
                    .call(plugin, index, info, &input, key, call_id)
                    .await?
            }
            (None, Route::Direct) => plugin.call(id, &input, call_id).await?,
            (Some(entry), _) => {
                let input = input.to_string();
                let mut request = String::with_capacity(info.served_as.len() + input.len() + 26);
                request.push_str(r#"{"capability":"#);
                request.push_str(&info.served_as);
                request.push_str(r#","input":"#);
                request.push_str(&input);
                request.push('}');
                plugin
                    .call_text(&entry, &request, call_id)
                    .await
                    .map_err(|e| e.for_capability(id))?
            }
        };
        info.output_type
            .validate(&output)
            .map_err(|e| Error::InvalidOutput {
                plugin: plugin.info.name.clone(),
                capability: id.to_string(),
                message: e.to_string(),
            })?;
        Ok(output)
    }

    /// Sets the approver asked about calls that match an `approve` rule
    /// (`None`: such calls are denied). Guests cannot reach it.
    pub fn set_approver(&self, approver: Option<Arc<dyn Approver>>) {
        self.inner.governance.set_approver(approver);
    }

    /// The audit log's file, if the host keeps one.
    pub fn audit_path(&self) -> Option<&Path> {
        self.inner.governance.audit().map(|a| a.path())
    }

    /// Number of open sessions in the pool.
    pub fn open_sessions(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Closes every pooled session (each provider ends its remote session,
    /// e.g. an MCP server sees `DELETE`). Call it before exiting; calls made
    /// afterwards open new sessions.
    pub async fn shutdown(&self) {
        self.inner.sessions.close_all().await;
        if let Some(audit) = self.inner.governance.audit() {
            if let Err(e) = audit.flush() {
                tracing::error!("{e}");
            }
        }
    }

    /// Asks plugins again for the sources that failed discovery (a server
    /// that was down) and registers what they offer now. With `force` false
    /// this happens at most once per plugin's `sessions.discovery-retry-ms`.
    /// Returns whether anything new was registered.
    pub async fn retry_discovery(&self, force: bool) -> bool {
        let mut states = self.inner.discovery.lock().await;
        let mut any = false;
        for (index, state) in states.iter_mut() {
            if state.pending.is_empty() {
                continue;
            }
            let plugin = &self.inner.plugins[*index];
            let every = Duration::from_millis(plugin.info.sessions.discovery_retry_ms);
            if !force && state.last_attempt.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            state.last_attempt = Some(Instant::now());
            match plugin.discover().await {
                Ok(found) => {
                    let mut registry = self
                        .inner
                        .registry
                        .write()
                        .unwrap_or_else(|e| e.into_inner());
                    any |= register_sources(plugin, *index, found, &mut registry, state) > 0;
                }
                Err(e) => {
                    tracing::warn!(plugin = %plugin.info.name, "discovery failed: {e}");
                }
            }
        }
        any
    }

    /// For an unknown `id`: the failed source that likely offers it, if any
    /// (a source whose name appears as a segment of the id, e.g. `demo` in
    /// `mcp.demo.add`).
    async fn unavailable_source(&self, id: &str) -> Option<Error> {
        let states = self.inner.discovery.lock().await;
        let segments: Vec<&str> = id.split('.').collect();
        for (index, state) in states.iter() {
            for (source, reason) in &state.pending {
                if segments.contains(&source.as_str()) {
                    return Some(Error::SourceUnavailable {
                        id: id.to_string(),
                        plugin: self.inner.plugins[*index].info.name.clone(),
                        source_name: source.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }
        None
    }

    /// Sources of plugin `name` whose capabilities are not registered, with
    /// the reason (e.g. the server is down).
    pub async fn pending_sources(&self, name: &str) -> Result<Vec<(String, String)>> {
        let index = self
            .inner
            .plugins
            .iter()
            .position(|p| p.info.name == name)
            .ok_or_else(|| Error::UnknownPlugin(name.to_string()))?;
        let states = self.inner.discovery.lock().await;
        Ok(states
            .get(&index)
            .map(|s| {
                s.pending
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Background work that holds no strong reference to the host: the
    /// session sweeper and discovery retries. Both stop with the host.
    fn start_background(&self, sweep_every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweep_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.sessions.sweep().await;
            }
        });
        let retry_every = self
            .inner
            .plugins
            .iter()
            .filter(|p| p.has_discovery())
            .map(|p| p.info.sessions.discovery_retry_ms)
            .min();
        if let Some(ms) = retry_every {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(ms));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    Host { inner }.retry_discovery(false).await;
                }
            });
        }
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

    /// Every registered capability: plugins' in load order, then imported ones.
    pub fn capabilities(&self) -> Vec<Arc<CapabilityInfo>> {
        self.registry().iter().cloned().collect()
    }

    /// The capability `id`, or an error naming the nearest ids.
    pub fn capability(&self, id: &str) -> Result<Arc<CapabilityInfo>> {
        self.registry().get(id).map(|(_, c)| c)
    }

    /// The registered capabilities of serializable provider kinds, and the
    /// others with the reason they cannot be exported.
    fn exportable(&self) -> (Vec<Manifest>, Vec<(String, String)>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for c in self.capabilities() {
            if c.provider.serializable() {
                out.push(c.manifest());
            } else {
                let by = c
                    .plugin
                    .as_deref()
                    .map(|p| format!(" of plugin `{p}`"))
                    .unwrap_or_default();
                skipped.push((
                    c.id.clone(),
                    format!(":{} capability{by} is runtime-only", c.provider),
                ));
            }
        }
        (out, skipped)
    }

    /// Writes every serializable capability to `dir` as one `.rtfs` snapshot
    /// file each; the others are skipped and named in the report.
    pub fn export_rtfs(&self, dir: &Path) -> Result<ExportReport> {
        let (caps, skipped) = self.exportable();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Marketplace(format!("{}: {e}", dir.display())))?;
        let mut report = ExportReport {
            skipped,
            ..Default::default()
        };
        for m in caps {
            let path = dir.join(marketplace::file_name(&m.id, "rtfs"));
            write_file(
                &path,
                &marketplace::snapshot_to_rtfs(std::slice::from_ref(&m)),
            )?;
            report.exported.push(m.id);
            report.files.push(path);
        }
        Ok(report)
    }

    /// Writes every serializable capability to one JSON snapshot `file`.
    pub fn export_json(&self, file: &Path) -> Result<ExportReport> {
        let (caps, skipped) = self.exportable();
        write_file(file, &marketplace::snapshot_to_json(&caps))?;
        Ok(ExportReport {
            exported: caps.into_iter().map(|m| m.id).collect(),
            files: vec![file.to_path_buf()],
            skipped,
        })
    }

    /// Imports the capabilities in `path` (an `.rtfs` or `.json` snapshot, or
    /// a directory of them) into the registry and the marketplace store.
    /// Capabilities of runtime-only kinds, invalid entries and ids a plugin
    /// already serves are skipped and named in the report; re-importing an
    /// imported id replaces it.
    pub fn import(&self, path: &Path) -> Result<ImportReport> {
        let entries = marketplace::read_path(path).map_err(Error::Marketplace)?;
        let mut report = ImportReport::default();
        let mut registry = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (file, entry) in entries {
            let m = match entry {
                Ok(m) => m,
                Err(e) => {
                    report.skipped.push((file.display().to_string(), e));
                    continue;
                }
            };
            if !m.provider.serializable() {
                report.skipped.push((
                    m.id.clone(),
                    format!(
                        ":{} capabilities are runtime-only and cannot be imported",
                        m.provider
                    ),
                ));
                continue;
            }
            let id = m.id.clone();
            let by = self
                .inner
                .servers
                .get(&m.provider)
                .map(|(i, _)| self.inner.plugins[*i].info.name.clone());
            let info = match CapabilityInfo::from_manifest(m.clone(), by) {
                Ok(i) => i,
                Err(e) => {
                    report.skipped.push((id, e));
                    continue;
                }
            };
            match registry.insert(Source::Imported, info) {
                Ok(outcome) => {
                    if let Some(dir) = &self.inner.store {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            Error::Marketplace(format!("store {}: {e}", dir.display()))
                        })?;
                        write_file(
                            &dir.join(marketplace::file_name(&id, "rtfs")),
                            &marketplace::snapshot_to_rtfs(&[m]),
                        )?;
                    }
                    match outcome {
                        Registered::New => report.registered.push(id),
                        Registered::Replaced => report.updated.push(id),
                    }
                }
                Err(e) => report.skipped.push((id, e.to_string())),
            }
        }
        Ok(report)
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

fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Marketplace(format!("writing {}: {e}", path.display())))
}

/// A plugin's descriptor as a registry entry.
fn descriptor_info(
    d: crate::bindings::warden::provider::types::CapabilityDescriptor,
    plugin: &str,
) -> std::result::Result<CapabilityInfo, String> {
    let metadata = parse_metadata(&d.metadata)?;
    let provider = if d.provider_kind.trim().is_empty() {
        ProviderKind::Plugin
    } else {
        ProviderKind::parse(d.provider_kind.trim())
            .ok_or_else(|| format!("unknown provider kind `{}`", d.provider_kind))?
    };
    let provider_meta = match parse_metadata(&d.provider_meta)
        .map_err(|e| e.replace("metadata", "provider-meta"))?
    {
        Value::Object(o) => o,
        _ => unreachable!("parse_metadata returns objects"),
    };
    let manifest = Manifest {
        id: d.id,
        name: d.name,
        version: d.version,
        description: d.description,
        provider,
        provider_meta,
        input_schema: schema_text(&d.input_schema).map_err(|e| format!("input schema: {e}"))?,
        output_schema: schema_text(&d.output_schema).map_err(|e| format!("output schema: {e}"))?,
        metadata,
        permissions: d.permissions,
        effects: d.effects,
    };
    CapabilityInfo::from_manifest(manifest, Some(plugin.to_string()))
}

/// Discovery state of one plugin.
#[derive(Default)]
struct Discovery {
    /// Sources whose capabilities are registered.
    registered: std::collections::BTreeSet<String>,
    /// Sources that failed, with the reason.
    pending: std::collections::BTreeMap<String, String>,
    last_attempt: Option<Instant>,
}

/// Registers the capabilities of sources not registered yet; remembers the
/// failed ones. Returns how many capabilities were registered.
fn register_sources(
    plugin: &LoadedPlugin,
    index: usize,
    found: Vec<crate::bindings::exports::warden::provider::discovery::Source>,
    registry: &mut Registry,
    state: &mut Discovery,
) -> usize {
    let name = &plugin.info.name;
    let mut count = 0;
    for source in found {
        if state.registered.contains(&source.name) {
            continue;
        }
        match source.capabilities {
            Err(e) => {
                let reason = crate::runtime::plugin::wit_error_text(&e);
                tracing::warn!(
                    plugin = %name, source = %source.name,
                    "source unavailable, its capabilities are not registered (retried every {} ms): {reason}",
                    plugin.info.sessions.discovery_retry_ms
                );
                state.pending.insert(source.name, reason);
            }
            Ok(descriptors) => {
                for d in descriptors {
                    let id = d.id.clone();
                    let info = match descriptor_info(d, name) {
                        Ok(i) => i,
                        Err(e) => {
                            tracing::warn!(plugin = %name, source = %source.name, "capability `{id}` skipped: {e}");
                            continue;
                        }
                    };
                    if matches!(info.route, Route::Session { .. }) && !plugin.has_sessions() {
                        tracing::warn!(plugin = %name, "capability `{id}` skipped: it asks for a session and the plugin exports no session-handler");
                        continue;
                    }
                    match registry.insert(Source::Plugin(index), info) {
                        Ok(_) => count += 1,
                        Err(e) => {
                            tracing::warn!(plugin = %name, source = %source.name, "capability `{id}` skipped: {e}")
                        }
                    }
                }
                if state.pending.remove(&source.name).is_some() {
                    tracing::info!(plugin = %name, source = %source.name, "source available again; its capabilities are registered");
                }
                state.registered.insert(source.name);
            }
        }
    }
    count
}

/// A descriptor's schema as an RTFS type expression: JSON Schema object
/// texts (as MCP tools give) are converted; anything else is taken as RTFS.
fn schema_text(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(":any".into());
    }
    if !t.starts_with('{') {
        return Ok(t.to_string());
    }
    let json: Value =
        serde_json::from_str(t).map_err(|e| format!("not valid JSON Schema text: {e}"))?;
    let (ty, _lost) = warden_manifest::schema::TypeExpr::from_json_schema(&json);
    Ok(ty.to_text())
}

//! Loading: [`Host::new`] as named steps: the governance and its audit log,
//! the engine and linker, each plugin (its component, policy, instance and
//! descriptors), the provider kinds plugins serve, and the declared and
//! stored capabilities.

use super::declared::declared_info;
use super::discovery::{discover_all, register_sources, Discovery};
use super::last_good::LastGood;
use super::*;
use crate::config::PluginConfig;
use crate::limits::DescriptorBudget;
use crate::sandbox::SandboxSpec;
use wasmtime::Engine;

/// What loading builds up, plugin by plugin.
#[derive(Default)]
struct Loaded {
    plugins: Vec<Arc<LoadedPlugin>>,
    registry: Registry,
    discovery: HashMap<usize, Discovery>,
    /// Plugins refused at load, with why (the host serves the others).
    refused: Vec<(String, String)>,
    /// Plugins whose new version `[host] on-update` held back, with why.
    held: Vec<(String, String)>,
}

/// The engine side every plugin is loaded with.
struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    cache: Option<crate::CompiledCache>,
    naming: crate::egress::Naming,
    /// The listeners of calls' progress, shared by every plugin's sandbox.
    listeners: Arc<crate::progress::Listeners>,
}

impl Host {
    /// Loads every plugin of `config`: compiles (or loads from the cache)
    /// each component, checks it implements the provider world, reads its
    /// descriptors into the registry, and initialises one instance.
    pub async fn new(config: Config) -> Result<Host> {
        Host::load(config, None).await
    }

    /// [`Host::new`], with discovery narrowed to what calling `for_call`
    /// needs (see [`Host::from_config_file_for_call`]).
    pub(super) async fn load(config: Config, for_call: Option<&str>) -> Result<Host> {
        config.validate()?;
        let governance = open_governance(&config)?;
        let (runtime, ticker) = start_runtime(&config)?;
        let mut loaded = Loaded::default();
        let store = config.marketplace_dir();
        let stored = read_store(store.as_deref())?;
        reserve_operator_ids(&config, &stored, &mut loaded.registry);
        let strict = config.host.strict_load;
        let lock = read_lock(&config)?;
        for (name, pc) in &config.plugins {
            let index = loaded.plugins.len();
            let locked = lock.as_ref().and_then(|l| l.plugins.get(name));
            let loading = load_or_keep_locked(
                &config,
                &runtime,
                &governance,
                &mut loaded,
                name,
                pc,
                locked,
            );
            let result = loading.await;
            if let Err(e) = result {
                // Nothing of a refused plugin stays registered under its index.
                loaded.registry.remove_plugin(index);
                refuse_load(&config, &governance, name, pc, &e)?;
                if strict {
                    return Err(e);
                }
                loaded.refused.push((name.clone(), e.to_string()));
            }
        }
        let last_good = config.cache_dir().map(|d| Arc::new(LastGood::under(&d)));
        discover_at_load(&mut loaded, &governance, strict, for_call, last_good).await?;
        let Loaded {
            plugins,
            mut registry,
            discovery,
            refused,
            held,
        } = loaded;
        let servers = provider_servers(&config, &plugins, &registry, strict)?;
        register_declared(&config, &servers, &plugins, &mut registry, &governance)?;
        register_stored(stored, &servers, &plugins, &mut registry, &governance)?;
        let listeners = runtime.listeners.clone();
        let sweep_every =
            session_pool::sweep_interval(plugins.iter().map(|p| p.info.sessions.idle_ttl_ms));
        let host = Host {
            inner: Arc::new(Inner {
                plugins,
                servers,
                registry: RwLock::new(registry),
                store,
                sessions: Arc::default(),
                governance,
                stale: RwLock::new(super::refresh::stale_map(&discovery)),
                discovery: tokio::sync::Mutex::new(discovery),
                refused,
                held,
                catalog: tokio::sync::watch::channel(0).0,
                listeners,
                _ticker: ticker,
            }),
        };
        host.start_background(sweep_every);
        host.observe();
        Ok(host)
    }

    /// The host's gauges (`[telemetry]` on): instances by plugin and
    /// state, and the audit writer's queue. They hold the host weakly.
    fn observe(&self) {
        let Some(telemetry) = self.telemetry() else {
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        telemetry.gauge(
            "warden.instances",
            "Plugin instances, by plugin and state (busy in a call, idle in the pool)",
            "{instance}",
            move || {
                let Some(inner) = inner.upgrade() else {
                    return Vec::new();
                };
                inner
                    .plugins
                    .iter()
                    .flat_map(|p| {
                        let (busy, idle) = p.instances();
                        let of = |state: &'static str| {
                            vec![
                                opentelemetry::KeyValue::new("warden.plugin", p.info.name.clone()),
                                opentelemetry::KeyValue::new("warden.state", state),
                            ]
                        };
                        [(busy, of("busy")), (idle, of("idle"))]
                    })
                    .collect()
            },
        );
        let Some(audit) = self.inner.governance.audit() else {
            return;
        };
        let audit = Arc::downgrade(audit);
        telemetry.gauge(
            "warden.audit.queue",
            "Audit records waiting for the writer",
            "{record}",
            move || {
                audit
                    .upgrade()
                    .map(|log| vec![(log.queued() as u64, Vec::new())])
                    .unwrap_or_default()
            },
        );
    }
}

/// Loads plugin `name`; when a pulled plugin's configured version is
/// refused (its update, its signature, its registry) and `warden.lock`
/// pins another, that one is loaded instead and the refusal recorded.
async fn load_or_keep_locked(
    config: &Config,
    runtime: &Runtime,
    governance: &Governance,
    loaded: &mut Loaded,
    name: &str,
    pc: &PluginConfig,
    locked: Option<&crate::lock::LockedPlugin>,
) -> Result<()> {
    let index = loaded.plugins.len();
    let loading = load_plugin(config, runtime, governance, loaded, name, pc, locked);
    let result = loading.await;
    let Err(e) = &result else {
        return result;
    };
    // A pulled plugin whose new version is refused (its update, its
    // signature, its registry) keeps serving the version that was
    // accepted; the refusal is on the record.
    let fallback = locked
        .and_then(|l| l.pinned.as_deref())
        .filter(|p| *p != pc.component.to_string_lossy());
    if matches!(e, Error::UpdateRefused { .. }) || fallback.is_some() {
        loaded.held.push((name.to_string(), e.to_string()));
    }
    let Some(pinned) = fallback else {
        return result;
    };
    tracing::warn!(plugin = %name, "{e}; serving the locked version {pinned}");
    record_refusal(config, governance, name, pc, e)?;
    loaded.registry.remove_plugin(index);
    let mut old = pc.clone();
    old.component = pinned.into();
    load_plugin(config, runtime, governance, loaded, name, &old, None).await
}

/// The lockfile, if the configuration has one; one that cannot be read
/// stops the start (on-update could not be decided).
fn read_lock(config: &Config) -> Result<Option<crate::lock::Lockfile>> {
    let Some(path) = config.lock_path() else {
        return Ok(None);
    };
    crate::lock::Lockfile::read(&path).map_err(Error::Config)
}

/// Audits and reports a plugin refused at load.
fn refuse_load(
    config: &Config,
    governance: &Governance,
    name: &str,
    pc: &PluginConfig,
    e: &Error,
) -> Result<()> {
    tracing::error!(plugin = %name, "plugin refused at load; the others are served: {e}");
    record_refusal(config, governance, name, pc, e)
}

/// A refused load is on the record, whatever refused it.
fn record_refusal(
    config: &Config,
    governance: &Governance,
    name: &str,
    pc: &PluginConfig,
    e: &Error,
) -> Result<()> {
    governance.record(crate::audit::Entry {
        plugin: name.to_string(),
        effect: crate::audit::Effect::Load,
        target: super::source::component_label(config, pc),
        decision: crate::audit::Outcome::Deny,
        reason: e.to_string(),
        ..Default::default()
    })
}

/// Holds the ids of the operator's `[[capabilities]]` and of the
/// marketplace store (`stored`) before any plugin loads, so that no plugin
/// can take one by loading first.
fn reserve_operator_ids(config: &Config, stored: &[(PathBuf, Manifest)], registry: &mut Registry) {
    for m in &config.capabilities {
        registry.reserve(&m.id, "the configuration's [[capabilities]]");
    }
    for (_, m) in stored {
        registry.reserve(&m.id, "the marketplace store");
    }
}

/// The capabilities imported earlier into the marketplace store, each with
/// its file; read once, before any plugin loads.
fn read_store(store: Option<&Path>) -> Result<Vec<(PathBuf, Manifest)>> {
    let Some(dir) = store.filter(|d| d.is_dir()) else {
        return Ok(Vec::new());
    };
    snapshot::read_path(dir)
        .map_err(|e| Error::Marketplace(format!("store {}: {e}", dir.display())))?
        .into_iter()
        .map(|(file, entry)| {
            let m =
                entry.map_err(|e| Error::Marketplace(format!("store {}: {e}", file.display())))?;
            Ok((file, m))
        })
        .collect()
}

/// The `[policy]` rules with the `[audit]` log they write to.
fn open_governance(config: &Config) -> Result<Governance> {
    let audit_log = match &config.audit {
        None => None,
        Some(a) => {
            let signing = audit_signing(config, a)?;
            let sink = audit_sink(config, a)?;
            Some(Arc::new(
                AuditLog::open_shipped(
                    &config.resolve_path(&a.path),
                    a.sync,
                    a.rotate_bytes,
                    signing,
                    sink,
                    a.replica.as_deref(),
                )
                .map_err(|e| Error::Config(e.to_string()))?,
            ))
        }
    };
    let volume = config.audit.as_ref().map(|a| a.volume_limits()).unwrap_or(
        crate::governance::budget::VolumeLimits {
            records: crate::audit::DEFAULT_RECORDS_PER_MINUTE,
            bytes: crate::audit::DEFAULT_BYTES_PER_MINUTE,
        },
    );
    let telemetry = match &config.telemetry {
        None => None,
        Some(t) => Some(Arc::new(
            crate::telemetry::Telemetry::start(t).map_err(|e| Error::Config(e.to_string()))?,
        )),
    };
    let cluster = match &config.cluster {
        None => None,
        Some(c) => {
            let password = c
                .password_secret
                .as_ref()
                .map(|name| config.secret_value(name))
                .transpose()?;
            Some(Arc::new(
                crate::cluster::Cluster::new(c, password).map_err(Error::Config)?,
            ))
        }
    };
    Ok(Governance::new(config.policy.clone(), audit_log, volume)
        .with_telemetry(telemetry)
        .with_cluster(cluster))
}

impl Config {
    /// The key of `[audit] signing-key`, if one is configured: it signs the
    /// log's checkpoints, and `warden serve`'s result attestations.
    pub fn audit_signing_key(&self) -> Result<Option<crate::audit::signing::SigningKey>> {
        let Some(source) = self.audit.as_ref().and_then(|a| a.signing_key.as_ref()) else {
            return Ok(None);
        };
        self.signing_key(source, "audit.signing-key").map(Some)
    }

    /// The Ed25519 key `source` names (a PEM file or secret); errors say
    /// `at`, the key's place in the configuration.
    pub fn signing_key(
        &self,
        source: &crate::audit::KeySource,
        at: &str,
    ) -> Result<crate::audit::signing::SigningKey> {
        let text = read_key(self, source, at)?;
        crate::audit::signing::SigningKey::from_pem(&text)
            .map_err(|e| Error::Config(format!("at `{at}`: {e}")))
    }
}

/// How the audit log signs its checkpoints (`[audit] signing-key`), if it
/// does.
fn audit_signing(
    config: &Config,
    a: &crate::audit::AuditSettings,
) -> Result<Option<crate::audit::Signing>> {
    let Some(key) = config.audit_signing_key()? else {
        return Ok(None);
    };
    tracing::info!(key = %key.id(), "the audit log signs checkpoints");
    Ok(Some(crate::audit::Signing {
        key,
        records: a
            .checkpoint_records
            .unwrap_or(crate::audit::DEFAULT_CHECKPOINT_RECORDS),
        every: std::time::Duration::from_millis(
            a.checkpoint_ms
                .unwrap_or(crate::audit::DEFAULT_CHECKPOINT_MS),
        ),
    }))
}

/// Where the audit log ships its records (`[audit.sink]`), if anywhere.
fn audit_sink(
    config: &Config,
    a: &crate::audit::AuditSettings,
) -> Result<Option<crate::audit::sink::SinkConfig>> {
    let Some(settings) = &a.sink else {
        return Ok(None);
    };
    let token = settings
        .token_secret
        .as_ref()
        .map(|name| config.secret_value(name))
        .transpose()?;
    let ca = match &settings.ca {
        None => None,
        Some(file) => {
            let path = config.resolve_path(file);
            Some(std::fs::read_to_string(&path).map_err(|e| {
                Error::Config(format!("at `audit.sink.ca`: {}: {e}", path.display()))
            })?)
        }
    };
    let sink = crate::audit::sink::SinkConfig::new(settings, token, ca)
        .map_err(|e| Error::Config(format!("at `audit.sink`: {e}")))?;
    tracing::info!(sink = %settings.url, "the audit log ships its records");
    Ok(Some(sink))
}

/// The PEM text of a key named by `source` (a file or a secret); `at` is
/// where the configuration names it.
fn read_key(config: &Config, source: &crate::audit::KeySource, at: &str) -> Result<String> {
    match (&source.file, &source.secret) {
        (Some(file), None) => {
            let path = config.resolve_path(file);
            std::fs::read_to_string(&path)
                .map_err(|e| Error::Config(format!("at `{at}`: {}: {e}", path.display())))
        }
        (None, Some(secret)) => config
            .secret_value(secret)
            .map_err(|e| Error::Config(format!("at `{at}`: {e}"))),
        _ => Err(Error::Config(format!(
            "at `{at}`: give exactly one of `file` and `secret`"
        ))),
    }
}

/// The engine, sized for every plugin's instances and largest memory, its
/// epoch ticker, and the linker with WASI, `wasi:http` and the Warden
/// interfaces (`open-at` replaced by its audited form).
fn start_runtime(config: &Config) -> Result<(Runtime, EpochTicker)> {
    let total: u32 = config
        .plugins
        .values()
        .map(crate::runtime::engine::instance_share)
        .fold(0u32, u32::saturating_add)
        .max(1);
    check_descriptor_reserve(config)?;
    let max_memory = config
        .plugins
        .values()
        .map(|p| p.limits.or(config.limits).resolve().memory)
        .max()
        .unwrap_or(crate::config::DEFAULT_MEMORY);
    let engine = engine::plugin_engine(total, max_memory)?;
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
    crate::sandbox::add_counted_socket_creation(&mut linker)
        .map_err(|e| Error::Internal(format!("{e:#}")))?;
    crate::sandbox::add_governed_lookup(&mut linker)
        .map_err(|e| Error::Internal(format!("{e:#}")))?;
    linker.allow_shadowing(false);
    let runtime = Runtime {
        engine,
        linker,
        cache: config.compiled_cache(),
        naming: crate::egress::Naming {
            pins: Arc::new(config.host.resolve.clone()),
            servers: config.host.dns_servers.clone().into(),
            wildcards: config.host.resolve_wildcards.unwrap_or(true),
        },
        listeners: Arc::default(),
    };
    Ok((runtime, ticker))
}

/// Refuses a configuration whose plugins may hold so many descriptors
/// together that the host could not keep
/// [`HOST_DESCRIPTOR_RESERVE`](crate::sandbox::HOST_DESCRIPTOR_RESERVE)
/// descriptors for itself under the process's open-file limit. Per plugin:
/// its `max-sockets` (guest sockets and the host's HTTP connections for it),
/// its `max-files`, and one descriptor per granted directory in each
/// instance it may have at once (the WASI context opens them).
fn check_descriptor_reserve(config: &Config) -> Result<()> {
    let Some(limit) = crate::sandbox::open_file_limit() else {
        return Ok(());
    };
    let caps: u64 = config
        .plugins
        .values()
        .map(|p| plugin_descriptors(config, p))
        .sum();
    let reserve = crate::sandbox::HOST_DESCRIPTOR_RESERVE;
    if caps + reserve > limit {
        return Err(Error::Config(format!(
            "the plugins may hold {caps} descriptors together (limits.max-sockets + \
             limits.max-files of each, and each granted directory once per instance), and \
             the host keeps {reserve} descriptors for itself, but this process may open only \
             {limit} (ulimit -n): lower those limits or raise the open-file limit"
        )));
    }
    Ok(())
}

/// The most descriptors plugin `p` may make the host hold.
fn plugin_descriptors(config: &Config, p: &PluginConfig) -> u64 {
    let l = p.limits.or(config.limits).resolve();
    let instances = u64::from(crate::runtime::engine::instance_share(p));
    let dirs = p.grants.dirs.len() as u64;
    u64::from(l.max_sockets) + u64::from(l.max_files) + dirs.saturating_mul(instances)
}

/// The effect policy of plugin `name`: its grants, granted directories that
/// exist, and its secrets bound to their destinations.
fn plugin_policy(config: &Config, name: &str, pc: &PluginConfig) -> Result<EffectPolicy> {
    let policy = EffectPolicy::from_grants(&pc.grants, |p| config.resolve_path(p))
        .map_err(|e| Error::load(name, e))?;
    for dir in policy.dirs() {
        if !dir.host.is_dir() {
            return Err(Error::load(
                name,
                format!("granted directory {} does not exist", dir.host.display()),
            ));
        }
    }
    let secrets = pc
        .grants
        .secrets
        .iter()
        .map(|g| {
            if !config.secrets.contains_key(&g.name) {
                return Err(Error::load(
                    name,
                    format!("secret `{}` is granted but not defined under [secrets]", g.name),
                ));
            }
            // A source that cannot be read now (an unset variable) costs
            // only the requests that would carry the secret.
            let exchanged = config.secrets[&g.name].exchange.is_some();
            let (value, unavailable) = match config.secret_value(&g.name) {
                Ok(v) => (v, None),
                // Its value is had for each call (egress/exchange.rs).
                Err(_) if exchanged => (String::new(), None),
                Err(e) => {
                    let why = match e {
                        Error::Config(m) => m,
                        other => other.to_string(),
                    };
                    tracing::warn!(plugin = %name, "{why}: requests that would carry secret `{}` are refused", g.name);
                    (String::new(), Some(why))
                }
            };
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
                headers: g.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
                methods: g.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                unavailable,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(policy.with_secrets(secrets))
}

/// The exchange secrets (`[secrets.NAME] exchange`) granted to plugin
/// `name`, each with its client secret read.
fn exchangers(
    config: &Config,
    name: &str,
    pc: &PluginConfig,
) -> Result<Vec<Arc<crate::egress::exchange::Exchanger>>> {
    let mut out = Vec::new();
    for g in &pc.grants.secrets {
        let Some(x) = config
            .secrets
            .get(&g.name)
            .and_then(|s| s.exchange.as_ref())
        else {
            continue;
        };
        let client_secret = x
            .client_secret
            .as_ref()
            .map(|s| config.secret_value(s))
            .transpose()?;
        let exchanger = crate::egress::exchange::Exchanger::new(&g.name, x, client_secret)
            .map_err(|e| Error::load(name, format!("secret `{}`: {e}", g.name)))?;
        out.push(Arc::new(exchanger));
    }
    Ok(out)
}

/// Refuses a component whose digest differs from the one
/// `policy.plugins.NAME.digest` pins.
fn check_pinned_digest(
    governance: &Governance,
    name: &str,
    path: &Path,
    digest: &str,
) -> Result<()> {
    let Some(pinned) = governance.pinned_digest(name) else {
        return Ok(());
    };
    if pinned.eq_ignore_ascii_case(digest) {
        return Ok(());
    }
    let message = format!(
        "{} has digest {digest}, but policy.plugins.{name}.digest pins {pinned}",
        path.display(),
    );
    Err(Error::load(name, message))
}

/// Loads plugin `name`: compiles and links its component, builds its
/// sandbox's policy and egress, describes it into the registry, warms up an
/// instance, and discovers its sources.
async fn load_plugin(
    config: &Config,
    runtime: &Runtime,
    governance: &Governance,
    loaded: &mut Loaded,
    name: &str,
    pc: &PluginConfig,
    locked: Option<&crate::lock::LockedPlugin>,
) -> Result<()> {
    let source = super::source::component_source(config, name, pc).await?;
    let signer = super::source::check_signature(config, governance, name, pc, &source)?;
    let super::source::ComponentSource { path, bytes, .. } = source;
    // Names and versions first: a component this host cannot link fails
    // now, not after a long compile.
    let report = crate::runtime::check::check_component(&bytes);
    if !report.loads() {
        return Err(Error::load(
            name,
            format!("{}: {}", path.display(), report.problems.join("; ")),
        ));
    }
    let (component, compiled) =
        engine::load_component(&runtime.engine, &bytes, &path, runtime.cache.as_ref())
            .map_err(|e| Error::load(name, format!("{}: {e}", path.display())))?;
    let pre = runtime
        .linker
        .instantiate_pre(&component)
        .map_err(|e| Error::load(name, format!("{}: cannot be linked: {e:#}", path.display())))?;
    let exports = Exports::new(&pre).map_err(|e| {
        Error::load(
            name,
            format!(
                "{} does not implement the warden:provider/plugin world: {e:#}",
                path.display()
            ),
        )
    })?;
    let policy = plugin_policy(config, name, pc)?;
    let info = PluginInfo {
        name: name.to_string(),
        provider: String::new(),
        version: String::new(),
        description: String::new(),
        source: pc.component.display().to_string(),
        component: path.display().to_string(),
        digest: crate::digest::digest(&bytes),
        signer,
        compiled,
        limits: pc.limits.or(config.limits).resolve(),
        grants: pc.grants.clone(),
        instances: pc.instances,
        max_instances: pc.max_instances,
        capabilities: Vec::new(),
        sessions: pc.sessions,
        world: report.world.clone().unwrap_or_default(),
        imports: report.imports.iter().map(|i| i.name.clone()).collect(),
        namespaces: crate::registry::Namespaces::new(name, &pc.namespaces),
    };
    let plugin_name: Arc<str> = Arc::from(name);
    let descriptors = DescriptorBudget::new(info.limits.max_sockets, info.limits.max_files);
    let egress = Arc::new(
        Egress::new(
            plugin_name.clone(),
            Arc::new(policy),
            &runtime.naming,
            descriptors.clone(),
        )
        .with_exchangers(exchangers(config, name, pc)?),
    );
    check_pinned_digest(governance, name, &path, &info.digest)?;
    let auditor = Auditor::new(
        governance.audit().cloned(),
        plugin_name.clone(),
        Arc::from(info.digest.as_str()),
        governance.volume_limits(),
    )
    .with_telemetry(governance.telemetry().cloned());
    let sandbox = SandboxSpec {
        plugin: plugin_name,
        egress,
        limits: info.limits,
        auditor,
        listeners: runtime.listeners.clone(),
    };
    let mut plugin = LoadedPlugin::new(
        info,
        runtime.engine.clone(),
        pre,
        exports,
        sandbox,
        pc.config.to_string(),
        crate::runtime::engine::instance_share(pc),
    );
    let index = loaded.plugins.len();
    describe_into(&mut plugin, index, &mut loaded.registry, governance).await?;
    if let Some(locked) = locked {
        check_update(config, governance, &plugin.info, &loaded.registry, locked)?;
    }
    let plugin = Arc::new(plugin);
    plugin.warm_up().await.map_err(|e| match e {
        e @ Error::Load { .. } => e,
        other => Error::load(name, other),
    })?;
    tracing::debug!(plugin = %name, compiled = ?compiled, "loaded");
    loaded.plugins.push(plugin);
    Ok(())
}

/// Discovers the sources of every plugin with discovery, all at once (each
/// source in a call of its own, under its plugin's time limit), then
/// registers what they offer in load order, before declared and stored
/// capabilities. A source that fails is served from its last good answer
/// where one is kept in `last_good` (plugins with `discovery-refresh-ms`,
/// caching on).
async fn discover_at_load(
    loaded: &mut Loaded,
    governance: &Governance,
    strict: bool,
    for_call: Option<&str>,
    last_good: Option<Arc<LastGood>>,
) -> Result<()> {
    let mut asks = tokio::task::JoinSet::new();
    for (index, plugin) in loaded.plugins.iter().enumerate() {
        // For one call, a plugin that cannot hold the id is not asked.
        let wanted = for_call.filter(|id| plugin.info.namespaces.contains(id));
        if plugin.has_discovery() && (for_call.is_none() || wanted.is_some()) {
            let plugin = plugin.clone();
            let until = wanted.map(str::to_string);
            asks.spawn(async move {
                let found = discover_all(&plugin, &Default::default(), until.as_deref()).await;
                (index, found)
            });
        }
    }
    let mut results = Vec::new();
    while let Some(done) = asks.join_next().await {
        results.push(done.map_err(|e| Error::Internal(format!("discovery task: {e}")))?);
    }
    results.sort_by_key(|(index, _)| *index);
    for (index, found) in results {
        let plugin = loaded.plugins[index].clone();
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                let e = Error::load(
                    &plugin.info.name,
                    format!("listing its discovery sources failed: {e}"),
                );
                if strict {
                    return Err(e);
                }
                // The plugin serves what it declared; its sources are missing.
                tracing::error!(plugin = %plugin.info.name, "{e}");
                loaded
                    .refused
                    .push((plugin.info.name.clone(), e.to_string()));
                continue;
            }
        };
        let state = loaded.discovery.entry(index).or_default();
        if plugin.info.sessions.discovery_refresh_ms.is_some() {
            state.last_good = last_good.clone();
        }
        register_sources(
            &plugin,
            index,
            found,
            &mut loaded.registry,
            state,
            governance,
            false,
        );
    }
    Ok(())
}

/// A loaded plugin as `warden.lock` records it, with its declared
/// capabilities from `registry`.
pub(super) fn lock_entry(info: &PluginInfo, registry: &Registry) -> crate::lock::LockedPlugin {
    let caps: Vec<Arc<CapabilityInfo>> = info
        .capabilities
        .iter()
        .filter_map(|id| registry.get(id).ok().map(|(_, c)| c))
        .collect();
    let caps: Vec<&CapabilityInfo> = caps.iter().map(|c| &**c).collect();
    crate::lock::LockedPlugin::of(&info.source, info, &caps)
}

/// Compares a loaded plugin with its lockfile entry: a new digest whose
/// changes `[host] on-update` allows is audited and loads; one it does not
/// is refused (and audited by the caller).
fn check_update(
    config: &Config,
    governance: &Governance,
    info: &PluginInfo,
    registry: &Registry,
    locked: &crate::lock::LockedPlugin,
) -> Result<()> {
    if info.digest == locked.digest {
        return Ok(());
    }
    let now = lock_entry(info, registry);
    let diff = locked.diff(&now);
    let policy = config.host.on_update;
    if !diff.allowed_by(policy) {
        let policy = serde_json::to_value(policy).ok();
        return Err(Error::UpdateRefused {
            plugin: info.name.clone(),
            digest: info.digest.clone(),
            policy: policy
                .and_then(|p| p.as_str().map(str::to_string))
                .unwrap_or_default(),
            diff: diff.to_string(),
        });
    }
    tracing::info!(plugin = %info.name, "a new version ({}) since the lockfile: {diff}", info.digest);
    governance.record(crate::audit::Entry {
        plugin: info.name.clone(),
        digest: info.digest.clone(),
        effect: crate::audit::Effect::Load,
        target: info.component.clone(),
        decision: crate::audit::Outcome::Allow,
        reason: format!("update from {} accepted: {diff}", locked.digest),
        ..Default::default()
    })
}

/// Asks a plugin to describe itself and registers its static capabilities
/// (refusing one that asks for a session the plugin cannot hold).
async fn describe_into(
    plugin: &mut LoadedPlugin,
    index: usize,
    registry: &mut Registry,
    governance: &Governance,
) -> Result<()> {
    let name = plugin.info.name.clone();
    let description = plugin
        .describe()
        .await
        .map_err(|e| Error::load(&name, format!("describe failed: {e}")))?;
    plugin.info.provider = description.info.name;
    plugin.info.version = description.info.version;
    plugin.info.description = description.info.description;
    let mut refused = crate::registry::Refused::default();
    for d in description.capabilities {
        let id = d.id.clone();
        let info = declared_info(d, &name)
            .map_err(|e| Error::load(&name, format!("capability `{id}`: {e}")))?;
        if let Route::Session { key } = &info.route {
            if !plugin.has_sessions() {
                return Err(Error::load(
                    &name,
                    format!("capability `{id}` asks for a session (metadata `{key}`), and the plugin exports no session-handler"),
                ));
            }
        }
        match registry.claim(index, &plugin.info.namespaces, info) {
            Ok(()) => plugin.info.capabilities.push(id),
            Err(why) => refused.add(&id, why),
        }
    }
    report_refused(governance, &name, &plugin.info.namespaces, &refused)
}

/// For each `[providers]` kind: the plugin that serves it and its entry
/// capability (the one whose metadata says `warden.serves = KIND`). A kind
/// whose plugin was refused at load, or serves no entry, is left unserved
/// (its capabilities answer `not served`), unless `strict`.
fn provider_servers(
    config: &Config,
    plugins: &[Arc<LoadedPlugin>],
    registry: &Registry,
    strict: bool,
) -> Result<KindServers> {
    let mut servers = KindServers::default();
    for (kind, plugin_name) in &config.providers {
        let kind = ProviderKind::parse(kind).expect("validated");
        let Some(index) = plugins.iter().position(|p| &p.info.name == plugin_name) else {
            tracing::error!(plugin = %plugin_name, "provider kind :{kind} is not served: its plugin was refused at load");
            continue;
        };
        let entry = registry
            .iter()
            .find(|c| {
                c.plugin.as_deref() == Some(plugin_name.as_str())
                    && c.flat_metadata.get("warden.serves").and_then(Value::as_str)
                        == Some(kind.name())
            })
            .map(|c| Arc::<str>::from(c.id.as_str()));
        let Some(entry) = entry else {
            let e = Error::load(
                plugin_name,
                format!("serves no :{kind} capabilities (none of its capabilities has metadata warden.serves = \"{kind}\")"),
            );
            if strict {
                return Err(e);
            }
            tracing::error!("provider kind :{kind} is not served: {e}");
            continue;
        };
        servers.0.insert(kind, (index, entry));
    }
    Ok(servers)
}

/// Capabilities declared in the configuration (`[[capabilities]]`).
fn register_declared(
    config: &Config,
    servers: &KindServers,
    plugins: &[Arc<LoadedPlugin>],
    registry: &mut Registry,
    governance: &Governance,
) -> Result<()> {
    for m in &config.capabilities {
        let info = servers
            .info(plugins, m.clone())
            .map_err(|e| Error::Config(format!("capability `{}`: {e}", m.id)))?;
        if let Err(e) = registry.insert(Source::Declared, info) {
            refuse_claim(governance, "", e)?;
        }
    }
    Ok(())
}

/// Capabilities imported earlier into the marketplace store.
fn register_stored(
    stored: Vec<(PathBuf, Manifest)>,
    servers: &KindServers,
    plugins: &[Arc<LoadedPlugin>],
    registry: &mut Registry,
    governance: &Governance,
) -> Result<()> {
    for (file, m) in stored {
        let info = servers
            .info(plugins, m)
            .map_err(|e| Error::Marketplace(format!("store {}: {e}", file.display())))?;
        if let Err(e) = registry.insert(Source::Imported, info) {
            refuse_claim(governance, "", e)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start-up descriptor arithmetic counts, per plugin, its sockets
    /// and files and each granted directory once per instance slot.
    #[test]
    fn descriptor_arithmetic_counts_directories_per_instance() {
        let mut p = PluginConfig::new("p.wasm");
        p.max_instances = 4;
        p.sessions.max = 1;
        p.limits.max_sockets = Some(10);
        p.limits.max_files = Some(20);
        for guest in ["/a", "/b"] {
            p.grants.dirs.push(crate::config::DirGrant {
                host: ".".into(),
                guest: guest.into(),
                mode: crate::config::DirMode::ReadOnly,
            });
        }
        let config = Config::new(".").with_plugin("p", p);
        let p = &config.plugins["p"];
        // 10 + 20 + 2 directories x (4 + 1 + 1) slots.
        assert_eq!(plugin_descriptors(&config, p), 42);
    }
}

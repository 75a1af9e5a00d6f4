//! [`Host`]: loads plugins from a [`Config`], keeps the registry, routes calls.

use crate::bindings::{Plugin as PluginBindings, PluginPre};
use crate::config::{Config, InstanceMode};
use crate::engine::{self, CompileSource, EpochTicker};
use crate::error::{Error, Result};
use crate::plugin::{LoadedPlugin, PluginInfo};
use crate::policy::Policy;
use crate::registry::{flatten_metadata, parse_metadata, CapabilityInfo, Registry};
use crate::sandbox::State;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
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
    registry: Registry,
    // Dropped last: stops the epoch thread once no call can be running.
    _ticker: EpochTicker,
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
        let total: u32 = config
            .plugins
            .values()
            .map(|p| p.max_instances)
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
        PluginBindings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| Error::Internal(e.to_string()))?;

        let cache_dir = config.cache_dir();
        let mut plugins = Vec::new();
        let mut registry = Registry::default();
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
            let pre = PluginPre::new(pre).map_err(|e| {
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
                digest: engine::digest(&bytes),
                compiled,
                limits: pc.limits.or(config.limits).resolve(),
                grants: pc.grants.clone(),
                instances: pc.instances,
                max_instances: pc.max_instances,
                capabilities: Vec::new(),
            };
            let mut plugin = LoadedPlugin::new(
                info,
                engine.clone(),
                pre,
                Arc::new(policy),
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
                if d.id.trim().is_empty() {
                    return Err(Error::load(name, "declares a capability with an empty id"));
                }
                let metadata = parse_metadata(&d.metadata)
                    .map_err(|e| Error::load(name, format!("capability `{}`: {e}", d.id)))?;
                plugin.info.capabilities.push(d.id.clone());
                registry.insert(
                    index,
                    CapabilityInfo {
                        flat_metadata: flatten_metadata(&metadata),
                        metadata,
                        id: d.id,
                        name: d.name,
                        version: d.version,
                        description: d.description,
                        plugin: name.clone(),
                        input_schema: d.input_schema,
                        output_schema: d.output_schema,
                        permissions: d.permissions,
                        effects: d.effects,
                    },
                )?;
            }
            plugin.warm_up().await.map_err(|e| match e {
                e @ Error::Load { .. } => e,
                other => Error::load(name, other),
            })?;
            tracing::debug!(plugin = %name, compiled = ?compiled, "loaded");
            plugins.push(Arc::new(plugin));
        }
        Ok(Host {
            inner: Arc::new(Inner {
                plugins,
                registry,
                _ticker: ticker,
            }),
        })
    }

    /// Calls capability `id` with a JSON `input` and returns its JSON output.
    pub async fn call(&self, id: &str, input: Value) -> Result<Value> {
        let (index, _) = self.inner.registry.get(id)?;
        self.inner.plugins[*index].call(id, &input).await
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

    /// Every registered capability, in load order.
    pub fn capabilities(&self) -> Vec<&CapabilityInfo> {
        self.inner.registry.iter().collect()
    }

    /// The capability `id`, or an error naming the nearest ids.
    pub fn capability(&self, id: &str) -> Result<&CapabilityInfo> {
        self.inner.registry.get(id).map(|(_, c)| c)
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

    /// Whether plugin `name` was compiled at load or came from the cache.
    pub fn compile_source(&self, name: &str) -> Result<CompileSource> {
        Ok(self.plugin(name)?.compiled)
    }

    /// Whether plugin `name` reuses instances.
    pub fn instance_mode(&self, name: &str) -> Result<InstanceMode> {
        Ok(self.plugin(name)?.instances)
    }
}

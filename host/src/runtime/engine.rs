//! The wasmtime engine: fuel, epoch interruption, the pooling allocator, an
//! epoch ticker for wall-clock limits, and the on-disk cache of compiled
//! components.

use crate::error::{Error, Result};
use crate::runtime::cache::CompiledCache;
use crate::sandbox::MAX_TABLE_ELEMENTS;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of wall-clock limits, and
/// the longest a guest runs before it yields to the async runtime.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Most core instances one component may create; a component that needs
/// more fails to instantiate (as that plugin's load error).
pub(crate) const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Most linear memories one component may define, in all its modules.
pub(crate) const MEMORIES_PER_COMPONENT: u32 = 4;
/// Most tables one component may define, in all its modules.
pub(crate) const TABLES_PER_COMPONENT: u32 = 16;

/// The instance slots reserved for one plugin in the engine's pool: its
/// `max-instances`, its `sessions.max`, and one for describe and health.
/// Every store of the plugin holds one; no other plugin can take them.
pub(crate) fn instance_share(pc: &crate::config::PluginConfig) -> u32 {
    pc.max_instances
        .saturating_add(pc.sessions.max)
        .saturating_add(1)
}

/// Builds the engine. `slots` is the sum of every plugin's instance share
/// (each instance slot of a plugin is reserved for that plugin alone, see
/// `LoadedPlugin`); the pool holds exactly enough core instances, memories
/// and tables for every slot to be filled by a component at the
/// per-component caps, so no plugin can exhaust another's part of the pool.
/// `max_memory` is the largest memory any plugin may use.
///
/// Public so that a benchmark or a tool can run a component on exactly the
/// engine settings Warden uses (as `cargo bench -p warden --bench calls`
/// does for its bare-wasmtime baseline).
pub fn plugin_engine(slots: u32, max_memory: u64) -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true);
    disable_unneeded_proposals(&mut config);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memories_per_module(MEMORIES_PER_COMPONENT)
        .max_tables_per_module(TABLES_PER_COMPONENT)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(slots)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(max_memory as usize)
        // A freed instance's first 64 KiB of memory and 16 KiB of table are
        // zeroed in place rather than given back to the kernel, and the rest
        // is given back in batches of 8: fewer `madvise` calls and fewer
        // TLB shootdowns across CPUs. A slot waiting in a batch is not
        // reused until it is flushed (at most 7 per CPU, for up to 16 CPUs).
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(16 << 10)
        .decommit_batch_size(8);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| Error::Internal(format!("creating the wasm engine: {e}")))
}

/// Turns off every proposal our guests do not use, so their code (and its
/// advisories) is out of reach of a plugin: GC, shared-everything threads,
/// stack switching, 64-bit and custom-page memories, wide arithmetic and
/// the component model's async ABI (not compiled in). A component that needs one of them is
/// refused at load with wasmtime's validation error, which names the
/// proposal. The GC, exceptions and threads code is also left out of the
/// build (no `gc`, `threads` features in the workspace), so typed function
/// references, exceptions and shared memories are unavailable at all.
fn disable_unneeded_proposals(config: &mut wasmtime::Config) {
    config
        .wasm_gc(false)
        .wasm_shared_everything_threads(false)
        .wasm_stack_switching(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false);
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a component came from at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompileSource {
    /// Compiled now (and written to the cache if one is configured).
    Compiled,
    /// Loaded from the compiled-component cache.
    Cache,
}

/// Compiles `bytes` (the component at `path`), or loads the compiled form
/// from `cache`. A compile (seconds for a big component, more in a debug
/// build) is announced first, with the size and where the result goes.
pub(crate) fn load_component(
    engine: &Engine,
    bytes: &[u8],
    path: &Path,
    cache: Option<&CompiledCache>,
) -> Result<(Component, CompileSource), String> {
    let size = format!("{:.1} MB", bytes.len() as f64 / 1e6);
    let Some(cache) = cache else {
        tracing::info!(target: "warden::compile", "compiling {} ({size}; the compiled cache is off)", path.display());
        return compile(engine, bytes).map(|c| (c, CompileSource::Compiled));
    };
    let entry = cache.path_for(engine, bytes);
    if let Some(c) = cache.get(engine, &entry) {
        return Ok((c, CompileSource::Cache));
    }
    tracing::info!(
        target: "warden::compile",
        "compiling {} ({size}); the first load of this build takes a while, later loads come from the cache in {}",
        path.display(),
        cache.dir().display()
    );
    let started = std::time::Instant::now();
    let compiled = engine
        .precompile_component(bytes)
        .map_err(|e| describe_compile_error(&e))?;
    tracing::info!(
        target: "warden::compile",
        "compiled {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    cache.put(&entry, &compiled);
    // SAFETY: `compiled` was produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled) }
        .map_err(|e| format!("loading compiled component: {e}"))?;
    Ok((component, CompileSource::Compiled))
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    Component::new(engine, bytes).map_err(|e| describe_compile_error(&e))
}

fn describe_compile_error(e: &wasmtime::Error) -> String {
    format!("not a valid WebAssembly component: {e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::Linker;

    /// A component of `n` core instances of a module with one memory.
    fn instances_with_a_memory_each(n: usize) -> Vec<u8> {
        let instances = "(core instance (instantiate $m))\n".repeat(n);
        wat::parse_str(format!(
            "(component (core module $m (memory 1)) {instances})"
        ))
        .unwrap()
    }

    async fn instantiate(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<()> {
        let component = Component::new(engine, bytes)?;
        let mut store = wasmtime::Store::new(engine, ());
        Linker::<()>::new(engine)
            .instantiate_async(&mut store, &component)
            .await
            .map(drop)
    }

    #[tokio::test]
    async fn one_component_cannot_take_more_than_its_caps_of_the_pool() {
        let engine = plugin_engine(4, 1 << 20).unwrap();
        let within = instances_with_a_memory_each(MEMORIES_PER_COMPONENT as usize);
        instantiate(&engine, &within).await.unwrap();
        // Each core instance has one memory: a per-module cap would not
        // catch this; the per-component cap does.
        let past = instances_with_a_memory_each(MEMORIES_PER_COMPONENT as usize + 1);
        let err = instantiate(&engine, &past).await.unwrap_err();
        assert!(format!("{err:#}").contains("memor"), "{err:#}");
    }
}

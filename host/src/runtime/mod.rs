//! The runtime: the engine and its compiled cache, each plugin's loaded
//! component with its instance pool, and the session pool. Stands on the
//! sandbox (per-instance state), egress and governance.

pub(crate) mod cache;
pub(crate) mod check;
pub(crate) mod engine;
pub(crate) mod outcome;
pub(crate) mod plugin;
pub(crate) mod session_pool;
pub(crate) mod turns;

pub use cache::{CacheEntry, CompiledCache};
pub use check::{check_component, ComponentReport, ImportCheck};
pub use engine::{plugin_engine, CompileSource};
pub use plugin::PluginInfo;
pub use session_pool::DEFAULT_SESSION_KEY;

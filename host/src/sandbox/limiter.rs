//! The per-store resource limiter (memory and table caps).

use crate::error::Limit;
use wasmtime::ResourceLimiter;

/// Most elements of one table of an instance (`table.grow` past it fails,
/// and the call is stopped with the memory limit).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 20_000;

/// Per-store memory and table caps; remembers which one it refused so a
/// trap that follows can be reported as that limit.
pub(crate) struct Limiter {
    pub(super) memory: usize,
    pub(super) table_elements: usize,
    pub(crate) hit: Option<Limit>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = Some(Limit::Memory);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(Limit::Memory);
            return Ok(false);
        }
        Ok(true)
    }

    // Growth refused by the engine itself (past the pool's per-instance
    // maximum) counts as the same limit.
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = Some(Limit::Memory);
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = Some(Limit::Memory);
        Ok(())
    }
}

//! The per-store resource limiter: every linear memory and table of an
//! instance is charged to one budget, the plugin's `limits.memory`.

use crate::error::Limit;
use wasmtime::ResourceLimiter;

/// Most elements of one table of an instance (`table.grow` past it fails,
/// and the call is stopped with the memory limit).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 20_000;

/// Bytes one table element is charged (a pointer-sized reference).
pub(crate) const TABLE_ELEMENT_BYTES: usize = 8;

/// One instance's memory budget: the sum of every memory's size and every
/// table's elements (at [`TABLE_ELEMENT_BYTES`] each) stays within
/// `memory`. A component with several core instances, each with memories of
/// its own, shares this one budget. Remembers which limit it refused so a
/// trap that follows is reported as that limit.
pub(crate) struct Limiter {
    pub(super) memory: usize,
    pub(super) table_elements: usize,
    /// Bytes charged so far (memories and tables together).
    used: usize,
    /// The growth approved last, taken back if the engine then fails it.
    pending: usize,
    pub(crate) hit: Option<Limit>,
}

impl Limiter {
    pub(super) fn new(memory: usize, table_elements: usize) -> Limiter {
        Limiter {
            memory,
            table_elements,
            used: 0,
            pending: 0,
            hit: None,
        }
    }

    /// Bytes of memories and tables this instance holds.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn charge(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.memory => {
                self.used = total;
                self.pending = bytes;
                true
            }
            _ => {
                self.hit = Some(Limit::Memory);
                false
            }
        }
    }

    fn refund_pending(&mut self) {
        self.used -= std::mem::take(&mut self.pending);
        self.hit = Some(Limit::Memory);
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.charge(desired.saturating_sub(current)))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(Limit::Memory);
            return Ok(false);
        }
        let added = desired.saturating_sub(current);
        Ok(self.charge(added.saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    // Growth refused by the engine itself (past the pool's per-instance
    // maximum) counts as the same limit, and is not charged.
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refund_pending();
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refund_pending();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut l = Limiter::new(100 << 10, 1000);
        // Two memories of 40 KiB each fit; a third does not.
        assert!(l.memory_growing(0, 40 << 10, None).unwrap());
        assert!(l.memory_growing(0, 40 << 10, None).unwrap());
        assert!(!l.memory_growing(0, 40 << 10, None).unwrap());
        assert_eq!(l.hit, Some(Limit::Memory));
        // A table's elements are charged too: 1000 elements = 8000 bytes.
        l.hit = None;
        assert!(l.table_growing(0, 1000, None).unwrap());
        assert_eq!(l.used(), (80 << 10) + 8000);
        assert!(!l.table_growing(1000, 1001, None).unwrap());
        // Growth the engine then fails is refunded.
        let before = l.used();
        assert!(l.memory_growing(40 << 10, 41 << 10, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("no")).unwrap();
        assert_eq!(l.used(), before);
    }
}

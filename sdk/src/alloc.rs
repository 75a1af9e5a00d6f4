//! The guest's allocator: freed small blocks are kept in per-size-class
//! lists in front of the standard allocator (dlmalloc on wasm).
//!
//! A call into a provider allocates and frees many small blocks: the
//! strings the host lowers into the guest, the JSON read and written, the
//! request and the response. Taking a block of the same class back from a
//! list costs a few instructions where dlmalloc searches its bins and merges
//! neighbours. Blocks of at most 1 KiB and alignment 8 are
//! rounded up to a power of two; at most 64 free blocks are kept per
//! class (about 130 KiB in all), the rest go back to the standard allocator,
//! as do larger or more aligned blocks.
//!
//! Installed as the global allocator on single-threaded wasm when the
//! `allocator` feature is on (the default). A provider that brings its own
//! `#[global_allocator]` turns the feature off. Private to the crate: the
//! lists are not synchronised, which is sound only where there is one thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Smallest block: room for the free-list link, and the alignment of every
/// cached block.
const MIN_SHIFT: u32 = 4;
/// Number of size classes: 16, 32, .. 1024 bytes.
const CLASSES: usize = 7;
/// Largest size served from the lists.
const MAX_SIZE: usize = 1 << (MIN_SHIFT as usize + CLASSES - 1);
/// Largest alignment served from the lists (what the standard allocator
/// gives every block it hands out for them).
const ALIGN: usize = 8;
/// Most free blocks kept per class.
const KEEP: u32 = 64;

struct Free {
    next: *mut Free,
}

struct Lists {
    head: [*mut Free; CLASSES],
    len: [u32; CLASSES],
}

/// Free lists by size class over [`System`].
pub struct SizeClasses {
    lists: UnsafeCell<Lists>,
}

// SAFETY: installed only where there is one thread (wasm without the
// `atomics` feature); the tests use their own value on one thread.
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    /// Empty lists.
    pub const fn new() -> Self {
        SizeClasses {
            lists: UnsafeCell::new(Lists {
                head: [ptr::null_mut(); CLASSES],
                len: [0; CLASSES],
            }),
        }
    }
}

impl Default for SizeClasses {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of `layout`, if it is served from the lists.
#[inline]
fn class(layout: Layout) -> Option<usize> {
    if layout.size() > MAX_SIZE || layout.align() > ALIGN {
        return None;
    }
    let size = layout.size().max(1 << MIN_SHIFT);
    Some((usize::BITS - (size - 1).leading_zeros() - MIN_SHIFT) as usize)
}

/// The layout of a block of `class`, as the standard allocator sees it.
#[inline]
fn block(class: usize) -> Layout {
    // SAFETY: a power of two no larger than MAX_SIZE, with a valid alignment.
    unsafe { Layout::from_size_align_unchecked(1 << (class + MIN_SHIFT as usize), ALIGN) }
}

unsafe impl GlobalAlloc for SizeClasses {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return System.alloc(layout);
        };
        let lists = &mut *self.lists.get();
        let head = lists.head[c];
        if head.is_null() {
            return System.alloc(block(c));
        }
        lists.head[c] = (*head).next;
        lists.len[c] -= 1;
        head.cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(layout).is_none() {
            // The standard allocator knows when fresh memory is zero already.
            return System.alloc_zeroed(layout);
        }
        let p = self.alloc(layout);
        if !p.is_null() {
            ptr::write_bytes(p, 0, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return System.dealloc(ptr, layout);
        };
        let lists = &mut *self.lists.get();
        if lists.len[c] >= KEEP {
            return System.dealloc(ptr, block(c));
        }
        let free: *mut Free = ptr.cast();
        (*free).next = lists.head[c];
        lists.head[c] = free;
        lists.len[c] += 1;
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class(layout), class(new_layout)) {
            (Some(a), Some(b)) if a == b => ptr,
            (None, None) => System.realloc(ptr, layout, new_size),
            _ => {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(16, 8)), Some(0));
        assert_eq!(class(layout(17, 1)), Some(1));
        assert_eq!(class(layout(MAX_SIZE, 4)), Some(CLASSES - 1));
        assert_eq!(class(layout(MAX_SIZE + 1, 1)), None);
        assert_eq!(class(layout(8, 16)), None);
        for c in 0..CLASSES {
            assert_eq!(class(block(c)), Some(c));
        }
    }

    #[test]
    fn reuses_blocks_keeps_contents_and_caps_the_lists() {
        let a = SizeClasses::new();
        unsafe {
            let p = a.alloc(layout(20, 4));
            assert_eq!(p as usize % ALIGN, 0);
            a.dealloc(p, layout(20, 4));
            // Same class, other size: the same block.
            let q = a.alloc(layout(32, 8));
            assert_eq!(p, q);

            // Growing within the class keeps the block; past it, the
            // contents move.
            ptr::write_bytes(q, 7, 32);
            let q = a.realloc(q, layout(32, 8), 30);
            assert_eq!(p, q);
            let r = a.realloc(q, layout(30, 8), 3000);
            assert!(std::slice::from_raw_parts(r, 30).iter().all(|&b| b == 7));
            let s = a.realloc(r, layout(3000, 8), 40);
            assert!(std::slice::from_raw_parts(s, 30).iter().all(|&b| b == 7));
            a.dealloc(s, layout(40, 8));

            // Zeroed memory from a reused block is zeroed.
            let z = a.alloc_zeroed(layout(40, 8));
            assert_eq!(z, s);
            assert!(std::slice::from_raw_parts(z, 40).iter().all(|&b| b == 0));
            a.dealloc(z, layout(40, 8));
            let big = a.alloc_zeroed(layout(MAX_SIZE * 2, 8));
            assert!(std::slice::from_raw_parts(big, MAX_SIZE * 2)
                .iter()
                .all(|&b| b == 0));
            a.dealloc(big, layout(MAX_SIZE * 2, 8));

            // More frees than KEEP: the rest go back, the list stays capped.
            let blocks: Vec<*mut u8> = (0..KEEP + 10).map(|_| a.alloc(layout(100, 1))).collect();
            for &b in &blocks {
                a.dealloc(b, layout(100, 1));
            }
            let c = class(layout(100, 1)).unwrap();
            assert_eq!((*a.lists.get()).len[c], KEEP);
            let again: Vec<*mut u8> = (0..KEEP).map(|_| a.alloc(layout(100, 1))).collect();
            assert_eq!((*a.lists.get()).len[c], 0);
            for b in again {
                assert!(blocks.contains(&b));
                a.dealloc(b, layout(100, 1));
            }

            // Large and over-aligned blocks pass through.
            let big = a.alloc(layout(MAX_SIZE * 4, 8));
            a.dealloc(big, layout(MAX_SIZE * 4, 8));
            let wide = a.alloc(layout(64, 64));
            assert_eq!(wide as usize % 64, 0);
            a.dealloc(wide, layout(64, 64));

            // Leave nothing behind for the native allocator's checks.
            let lists = &mut *a.lists.get();
            for c in 0..CLASSES {
                while !lists.head[c].is_null() {
                    let h = lists.head[c];
                    lists.head[c] = (*h).next;
                    System.dealloc(h.cast(), block(c));
                }
            }
        }
    }
}

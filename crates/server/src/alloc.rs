//! The global allocator: mimalloc, asked for plain blocks whenever the alignment allows.
//!
//! The `mimalloc` crate's own `GlobalAlloc` calls `mi_malloc_aligned` for every request, and
//! for an 8-aligned request that is not a multiple of the alignment mimalloc reserves room
//! to align it: a 47-byte dict node then lands in the 64-byte class, not the 48-byte one
//! (measured: 63.3 bytes per object against 48.6 with `mi_malloc`). Every mimalloc block is
//! at least word-aligned (its size classes are multiples of 8 and its pages start aligned),
//! so a request for at most 8-byte alignment can take a plain `mi_malloc`.
//!
//! It also counts the bytes the process has asked for and not yet freed ([`used_bytes`]):
//! `maxmemory` is checked against that figure, as Redis checks its `zmalloc` count. Each
//! thread counts in a slot of its own (a plain load and store, no atomic read-modify-write,
//! no shared cache line), and the figure is the sum of the slots. Memory freed on another
//! thread than the one that allocated it (the lazyfree thread, a value that crossed cores)
//! makes one slot go down and another up; only the sum means anything. Requested sizes are
//! counted, not mimalloc's size classes, so the figure is below the committed memory by the
//! rounding (at most 12.5% per block) and the allocator's own overhead.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use libmimalloc_sys::{mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned};

/// Alignment every mimalloc block has.
const PLAIN_ALIGN: usize = 8;

pub struct Allocator;

/// Threads with a slot of their own; later threads share the last slot (atomically).
const SLOTS: usize = 64;

/// One thread's net bytes allocated, alone on its cache line.
#[repr(align(64))]
struct Slot(AtomicI64);

static COUNTS: [Slot; SLOTS] = [const { Slot(AtomicI64::new(0)) }; SLOTS];
static SLOTS_TAKEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot, `usize::MAX` until its first allocation.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn count(delta: i64) {
    let slot = SLOT.with(|slot| match slot.get() {
        usize::MAX => {
            let taken = SLOTS_TAKEN.fetch_add(1, Ordering::Relaxed).min(SLOTS - 1);
            slot.set(taken);
            taken
        }
        taken => taken,
    });
    let counter = &COUNTS[slot].0;
    if slot < SLOTS - 1 {
        // Only this thread writes its slot: no read-modify-write needed.
        counter.store(counter.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    } else {
        counter.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Bytes allocated and not freed, by every thread (requested sizes).
pub fn used_bytes() -> u64 {
    let taken = SLOTS_TAKEN.load(Ordering::Relaxed).min(SLOTS);
    let sum: i64 = COUNTS[..taken].iter().map(|slot| slot.0.load(Ordering::Relaxed)).sum();
    sum.max(0) as u64
}

/// The calling thread's own net count: what it allocated less what it freed. Cheap (its own
/// cache line); a core compares it with the value at its last [`used_bytes`] to know how far
/// its own allocations moved the figure since.
pub fn thread_bytes() -> i64 {
    match SLOT.with(|slot| slot.get()) {
        usize::MAX => 0,
        slot => COUNTS[slot].0.load(Ordering::Relaxed),
    }
}

// SAFETY: every method forwards to mimalloc, which returns blocks of at least the requested
// size with at least the requested alignment (plain calls only where every block already
// has it), and frees any block it returned with `mi_free`.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        if layout.align() <= PLAIN_ALIGN {
            mi_malloc(layout.size()) as *mut u8
        } else {
            mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        if layout.align() <= PLAIN_ALIGN {
            mi_zalloc(layout.size()) as *mut u8
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        if layout.align() <= PLAIN_ALIGN {
            mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_counts_what_it_allocates_and_frees() {
        // This test binary runs on the counting allocator too (main.rs installs it).
        const MIB: i64 = 1 << 20;
        let before = thread_bytes();
        let block = vec![1u8; MIB as usize];
        assert!(thread_bytes() - before >= MIB, "allocating counts on this thread");
        assert!(used_bytes() as i64 >= MIB, "and in the sum");
        let allocated = thread_bytes();
        std::thread::spawn(move || drop(block)).join().unwrap();
        assert!(thread_bytes() - allocated < MIB / 2, "a free on another thread lands in that thread's slot");
        let block = vec![1u8; MIB as usize];
        let with_block = thread_bytes();
        drop(block);
        assert!(with_block - thread_bytes() >= MIB, "freeing counts on this thread");
    }

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let allocator = Allocator;
        for size in [1usize, 7, 8, 9, 15, 16, 17, 33, 47, 48, 100, 1000, 70_000] {
            for align in [1usize, 2, 4, 8, 16, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero layout; the block is written within its size, then freed.
                unsafe {
                    let p = allocator.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xab, size);
                    let p = allocator.realloc(p, layout, size * 2);
                    assert_eq!(p as usize % align, 0, "realloc keeps size {size} align {align}");
                    assert_eq!(*p, 0xab);
                    allocator.dealloc(p, Layout::from_size_align(size * 2, align).unwrap());
                }
            }
        }
    }

    #[test]
    fn small_classes_are_eight_bytes_apart() {
        // `.cargo/config.toml` builds mimalloc with MI_MAX_ALIGN_SIZE=8: a key's 39-byte
        // node takes a 40-byte block (48 with malloc's 16-byte alignment).
        for (size, class) in [(39usize, 40usize), (40, 40), (41, 48), (55, 56), (57, 64), (24, 24)] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a non-zero layout, freed with the same.
            unsafe {
                let p = Allocator.alloc(layout);
                assert_eq!(libmimalloc_sys::mi_usable_size(p as *const c_void), class, "a {size}-byte request");
                Allocator.dealloc(p, layout);
            }
        }
    }
}

thread_local! {
    /// When this thread last looked at whether to give its freed pages back (coarse
    /// milliseconds), its count of commands processed then, and whether it gave them back
    /// since that count last moved.
    static LAST_RETURN: Cell<(u64, u64, bool)> = const { Cell::new((0, 0, false)) };
}

/// How often a core looks at whether to give its heap's freed pages back to the system.
const RETURN_EVERY_MS: u64 = 1_000;

/// Gives the calling core's freed pages back to the system once it ran no command for a
/// second, once per quiet spell (called from the cron with the core's count of commands
/// processed). mimalloc
/// purges the pages a thread freed only while that thread keeps allocating, so a core that
/// went quiet after a burst (a load, a big DEL) would otherwise keep them resident, as RSS,
/// for good (Redis's jemalloc purges in the background). A quiet core only: the collection
/// walks the heap's pages (about 0.3 ms for 160 MB), which a busy core should not pause for,
/// and a busy core's own allocations purge as they go. The core's socket buffers go back at
/// the same moment (`socket::release_buffer_pages`).
pub fn return_freed_pages(commands_processed: u64) {
    let now = crate::client::coarse_ms();
    let (last_ms, last_processed, returned) = LAST_RETURN.with(Cell::get);
    if now.saturating_sub(last_ms) < RETURN_EVERY_MS {
        return;
    }
    let quiet = commands_processed == last_processed;
    LAST_RETURN.with(|last| last.set((now, commands_processed, quiet)));
    if !quiet || returned {
        return;
    }
    let started = std::time::Instant::now();
    // SAFETY: mi_collect works on the calling thread's heap, which is alive.
    unsafe { libmimalloc_sys::mi_collect(false) };
    crate::socket::release_buffer_pages();
    tracing::trace!(elapsed_us = started.elapsed().as_micros() as u64, "returned freed pages");
}

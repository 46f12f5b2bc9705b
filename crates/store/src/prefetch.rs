//! Cache prefetch hints.
//!
//! A lookup in a big keyspace is a chain of cache misses (bucket, node, value), each waiting
//! for the one before. For a batch of lookups (a pipelined read), issuing the first miss of
//! every key, then the second of every key, lets the memory system work on many at once:
//! the batch pays roughly one miss per step instead of one per key per step.

/// Asks the CPU to bring the cache line holding `at` closer. Never faults, whatever `at` is;
/// a no-op where we have no hint for the target.
#[inline(always)]
pub fn read(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is part of SSE, which every x86-64 CPU has; it is a hint that
    // performs no access the program can observe, so any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

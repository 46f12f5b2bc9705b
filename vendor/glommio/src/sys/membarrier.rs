// Shoal's patch (see SHOAL.md at the crate's root). Upstream glommio 0.9.0 issued
// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` here (falling back to an mprotect-based
// barrier), so that remote senders could skip a fence. The system call interrupts every
// other CPU running the process and waits for each, every time an executor goes to sleep:
// a cost that grew with the number of cores. `SleepNotifier::notify` now fences on the
// senders' side, and a plain fence here completes Dekker's pattern.

use core::sync::atomic;

/// The barrier an executor issues after announcing that it is about to sleep and before it
/// looks at its channels a last time.
#[inline]
pub(crate) fn heavy() {
    atomic::fence(atomic::Ordering::SeqCst)
}

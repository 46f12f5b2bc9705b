//! The locked-memory limit glommio needs, checked before any executor starts.
//!
//! Each glommio executor refuses to start when `RLIMIT_MEMLOCK` is under 512 KiB, and
//! registers I/O buffers that count against the limit for unprivileged users. We try to raise
//! the soft limit to what `threads` executors want; if the limit stays lower but glommio can
//! still start, we shrink each executor's I/O memory to fit; if glommio cannot start at all,
//! we stop with a message that names the limit and the fix, instead of letting executors fail
//! (or wait on each other) one by one.

/// What glommio itself requires of the soft limit.
pub const GLOMMIO_MEMLOCK_MIN: u64 = 512 * 1024;
/// Locked memory we would like per executor.
pub const PER_EXECUTOR: u64 = 512 * 1024;
/// The smallest I/O memory glommio accepts per executor.
const IO_MEMORY_MIN: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[error(
    "RLIMIT_MEMLOCK is {limit_kib} KiB, but {threads} thread(s) need at least {need_kib} KiB of locked memory (glommio requires {min_kib} KiB) and the limit could not be raised. \
     Raise it with `ulimit -l {need_kib}` in the shell that starts shoal-server, or `LimitMEMLOCK={need_bytes}` in its systemd unit (or `LimitMEMLOCK=infinity`), or start fewer threads with --threads."
)]
pub struct MemlockError {
    pub limit_kib: u64,
    pub need_kib: u64,
    pub need_bytes: u64,
    pub min_kib: u64,
    pub threads: usize,
}

fn get() -> (u64, u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if rc != 0 {
        return (0, 0);
    }
    (limit.rlim_cur, limit.rlim_max)
}

fn set(soft: u64, hard: u64) -> bool {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit only reads the struct we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) == 0 }
}

/// Makes sure `threads` executors can start; returns the I/O memory to give each one.
pub fn ensure(threads: usize) -> Result<usize, MemlockError> {
    let need = PER_EXECUTOR.saturating_mul(threads as u64);
    let (mut soft, hard) = get();
    if soft < need {
        let target = need.min(hard);
        if target > soft && set(target, hard) {
            soft = target;
        }
    }
    let unlimited = soft == libc::RLIM_INFINITY;
    if !unlimited && soft < GLOMMIO_MEMLOCK_MIN {
        return Err(MemlockError { limit_kib: soft / 1024, need_kib: need.div_ceil(1024), need_bytes: need, min_kib: GLOMMIO_MEMLOCK_MIN / 1024, threads });
    }
    if unlimited || soft >= need {
        return Ok(PER_EXECUTOR as usize);
    }
    let io_memory = (soft / threads as u64).clamp(IO_MEMORY_MIN, PER_EXECUTOR);
    tracing::warn!(
        "RLIMIT_MEMLOCK is {} KiB, under the {} KiB that {} threads want; giving each executor {} KiB of I/O memory (raise it with `ulimit -l`)",
        soft / 1024,
        need / 1024,
        threads,
        io_memory / 1024
    );
    Ok(io_memory as usize)
}

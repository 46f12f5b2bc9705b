//! Spinning before an idle core sleeps: switches for experiments, off unless set.
//!
//! A message to a core that sleeps costs its sender an eventfd write and the sleeper a return
//! from `io_uring_enter`; on a VM both go through the hypervisor. glommio can instead poll its
//! rings and channels for a while before it sleeps (`spin_before_park`), at the price of a
//! spinning CPU.
//!
//! - `SHOAL_SPIN_US=N`: every idle core spins N microseconds before it sleeps.
//! - `SHOAL_SPIN_WAIT_US=N`: a core spins N microseconds before it sleeps only while it
//!   waits for another core's answer (a hop's reply, a grant), so the answer finds it awake.

use std::sync::OnceLock;
use std::time::Duration;

/// (always, while waiting), from the environment, read once.
fn settings() -> (Option<Duration>, Option<Duration>) {
    static SETTINGS: OnceLock<(Option<Duration>, Option<Duration>)> = OnceLock::new();
    *SETTINGS.get_or_init(|| {
        let read = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).filter(|&us| us > 0).map(Duration::from_micros);
        (read("SHOAL_SPIN_US"), read("SHOAL_SPIN_WAIT_US"))
    })
}

/// How long an idle executor spins when it waits for nothing (`SHOAL_SPIN_US`).
pub(crate) fn idle() -> Option<Duration> {
    settings().0
}

/// This core started (`true`) or stopped waiting for another core's answer: it spins for
/// `SHOAL_SPIN_WAIT_US` before it sleeps meanwhile.
pub(crate) fn waiting(waits: bool) {
    let (idle, waiting) = settings();
    if let Some(waiting) = waiting {
        glommio::executor().set_spin_before_park(if waits { Some(waiting.max(idle.unwrap_or_default())) } else { idle });
    }
}

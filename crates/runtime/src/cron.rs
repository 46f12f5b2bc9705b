//! The per-core periodic task (Redis's `serverCron`, per core): active expiry, driven by `hz`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::core::{now_ms, Core};

/// Keys reclaimed per database per step, before checking the time budget.
const EXPIRE_STEP_KEYS: usize = 64;

/// One active-expiry cycle: reclaims expired keys and hash fields until none are due or
/// `budget` is spent (Redis spends at most 25% of a cron period). Returns how many it
/// reclaimed.
/// The keys it reclaimed are published as `expired` notifications when those are on, and
/// logged as DEL when the append-only log is on.
pub fn active_expire_cycle(core: &Rc<Core>, budget: Duration) -> usize {
    let started = Instant::now();
    let now = now_ms();
    let mut reclaimed = 0;
    let expired = core.with_shard(|shard| {
        'dbs: for db in &mut shard.dbs {
            while db.has_expired_keys(now) {
                reclaimed += db.active_expire(now, EXPIRE_STEP_KEYS);
                if started.elapsed() >= budget {
                    break 'dbs;
                }
            }
            // Hash fields with TTLs (Redis 7.4), in the same budget.
            while db.has_expired_fields(now) {
                reclaimed += db.active_expire_fields(now, EXPIRE_STEP_KEYS);
                if started.elapsed() >= budget {
                    break 'dbs;
                }
            }
        }
        // With whatever expired lazily since the last command that logged (a read by DEBUG).
        crate::aof::expired_records(shard)
    });
    core.aof_append_all(expired);
    if reclaimed > 0 {
        core.publish_store_reports();
    }
    reclaimed
}

/// Runs the cron every `1000 / hz` milliseconds until `stop` returns true.
pub async fn run(core: Rc<Core>, hz: impl Fn() -> u32, stop: impl Fn() -> bool) {
    loop {
        let period = Duration::from_millis(1000 / hz().clamp(1, 500) as u64);
        glommio::timer::sleep(period).await;
        if stop() {
            return;
        }
        active_expire_cycle(&core, period / 4);
        // Invalidations left behind by a path that does not send its own (a bound on their
        // delay, never the usual way out).
        core.tracking_flush();
    }
}

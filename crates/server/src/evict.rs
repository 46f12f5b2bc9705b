//! `maxmemory`: the check before a command that may grow memory, and who evicts how much
//! (Redis's `performEvictions` and the OOM rules of `processCommand`).
//!
//! **The figure** is the allocator's count of bytes in use, process-wide
//! ([`crate::alloc::used_bytes`]: one slot per thread, summed). Summing touches every core's
//! cache line, so the check before each write reads a cached sum plus this core's own drift
//! since (its own slot, a cache line it owns): a new sum is taken when the drift passes
//! [`RESUM_DRIFT_BYTES`], every [`RESUM_CHECKS`] checks, and whenever the estimate says
//! "over" (so no core evicts on a stale figure). With `maxmemory 0` the check is one branch.
//!
//! **Who evicts.** Memory is shared, keys are not: each core evicts only its own keys. A core
//! that finds memory over the limit evicts its share, `1/N` of the excess, and asks every
//! other core (at most one request outstanding per core) to evict the same share; until they all have, no core starts another round and commands run. So N cores
//! over the limit at once free about the excess once, not N times, every core gives up keys
//! in proportion (a core that serves no client too), and a pipeline checked command by
//! command does not drain the connection's core. The cron starts the same rounds on every
//! core while memory stays over (Redis's eviction time proc). Each pass is bounded in time by
//! `maxmemory-eviction-tenacity`, as Redis bounds it.
//!
//! **Refusal.** A command that may grow memory (flagged `denyoom`, EXEC with such a command
//! queued, a script per its shebang flags, anything queued inside MULTI) gets Redis's `OOM`
//! error when memory is over the limit and eviction cannot help: the policy is `noeviction`,
//! or this core and every other core found nothing to evict on their last pass.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_commands::{errors, CommandSpec};
use shoal_config::{Config, MaxmemoryPolicy};
use shoal_resp::Frame;
use shoal_runtime::Core;
use shoal_store::evict::{Options, Policy};

use crate::alloc;
use crate::connection::Conn;
use crate::node::Node;

/// Redis's `shared.oomerr`.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// How far this core's own allocations may move the figure before the check sums again.
pub const RESUM_DRIFT_BYTES: i64 = 256 * 1024;

/// Checks between two sums at most, so other cores' growth is seen soon.
pub const RESUM_CHECKS: u32 = 64;

/// Cores the per-core flags cover.
const CORES_MAX: usize = 1024;

/// Per core: a request to evict its share is on its way or running.
static NUDGED: [AtomicBool; CORES_MAX] = [const { AtomicBool::new(false) }; CORES_MAX];
/// Per core: its last pass found nothing to evict.
static EXHAUSTED: [AtomicBool; CORES_MAX] = [const { AtomicBool::new(false) }; CORES_MAX];

/// This core's copy of what the check needs, so the hot path reads no `RefCell`.
#[derive(Clone, Copy, Default)]
struct Limits {
    /// `maxmemory`, bytes; 0: no limit.
    maxmemory: u64,
    /// `maxmemory-policy`; None: `noeviction`.
    policy: Option<Policy>,
    samples: u32,
    lfu_decay_time: u32,
    /// The time a pass may take (from `maxmemory-eviction-tenacity`); None: no limit.
    time_limit: Option<Duration>,
}

/// The last sum and this core's own count at that moment.
#[derive(Clone, Copy, Default)]
struct Cache {
    used: u64,
    own: i64,
    checks: u32,
}

thread_local! {
    static LIMITS: Cell<Limits> = Cell::new(Limits::default());
    static CACHE: Cell<Cache> = Cell::new(Cache::default());
}

/// Installs this core's copy of the limits (at start and after CONFIG SET, on every core).
pub fn configure(config: &Config) {
    let policy = match config.maxmemory_policy {
        MaxmemoryPolicy::Noeviction => None,
        MaxmemoryPolicy::AllkeysLru => Some(Policy::AllKeysLru),
        MaxmemoryPolicy::VolatileLru => Some(Policy::VolatileLru),
        MaxmemoryPolicy::AllkeysLfu => Some(Policy::AllKeysLfu),
        MaxmemoryPolicy::VolatileLfu => Some(Policy::VolatileLfu),
        MaxmemoryPolicy::AllkeysRandom => Some(Policy::AllKeysRandom),
        MaxmemoryPolicy::VolatileRandom => Some(Policy::VolatileRandom),
        MaxmemoryPolicy::VolatileTtl => Some(Policy::VolatileTtl),
    };
    let limits = Limits {
        maxmemory: config.maxmemory,
        policy,
        samples: config.maxmemory_samples,
        lfu_decay_time: config.lfu_decay_time,
        time_limit: time_limit(config.maxmemory_eviction_tenacity),
    };
    LIMITS.with(|l| l.set(limits));
    CACHE.with(|c| c.set(Cache { used: 0, own: 0, checks: RESUM_CHECKS }));
}

/// Redis's `evictionTimeLimitUs`: 50 us per step up to 10, then 15% more per step; 100 is
/// no limit.
fn time_limit(tenacity: u32) -> Option<Duration> {
    match tenacity {
        0..=10 => Some(Duration::from_micros(50 * tenacity as u64)),
        11..=99 => Some(Duration::from_micros((500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64)),
        _ => None,
    }
}

/// Whether a limit is set on this core (one thread-local read).
#[inline]
pub fn limited() -> bool {
    LIMITS.with(|l| l.get().maxmemory != 0)
}

/// Takes a new sum and remembers it.
fn used_exact() -> u64 {
    let own = alloc::thread_bytes();
    let used = alloc::used_bytes();
    CACHE.with(|c| c.set(Cache { used, own, checks: 0 }));
    used
}

/// The cheap estimate: the last sum plus this core's own drift since.
#[inline]
fn used_estimate() -> u64 {
    CACHE.with(|c| {
        let mut cache = c.get();
        let drift = alloc::thread_bytes() - cache.own;
        cache.checks += 1;
        if cache.checks >= RESUM_CHECKS || drift.abs() > RESUM_DRIFT_BYTES {
            return used_exact();
        }
        c.set(cache);
        (cache.used as i64 + drift).max(0) as u64
    })
}

/// What a check before a command found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Under the limit (perhaps after evicting).
    Ok,
    /// Still over, but eviction is under way (this core ran out of time, or other cores were
    /// asked for their share): the command runs.
    Running,
    /// Over, and nothing can be evicted: refuse what may grow memory.
    Fail,
}

/// Redis's `performEvictions` for this core: evicts its share if memory is over the limit.
pub fn perform_evictions(node: &Rc<Node>) -> State {
    let limits = LIMITS.with(|l| l.get());
    if limits.maxmemory == 0 || used_estimate() <= limits.maxmemory {
        return State::Ok;
    }
    let used = used_exact();
    if used <= limits.maxmemory {
        return State::Ok;
    }
    let Some(policy) = limits.policy else { return State::Fail };
    let cores = node.core.shard_count;
    // Some core has not yet freed its share of an excess seen before (this one's or another
    // core's): wait for it rather than evict again. Otherwise the core that checks most
    // often (a pipeline's commands are all checked before any runs; the connection's core
    // holds the transient buffers when its cron runs) would evict over and over, draining
    // its own keys while the others keep theirs.
    if (0..cores).any(|core| NUDGED[core].load(Ordering::Relaxed)) {
        return State::Running;
    }
    let share = (used - limits.maxmemory) / cores as u64 + 1;
    nudge_others(node, share);
    let (evicted, timed_out) = evict_share(&node.core, limits, policy, share);
    if !evicted.exhausted {
        return if timed_out { State::Running } else { State::Ok };
    }
    let others_exhausted = (0..cores).all(|core| core == node.core.id || EXHAUSTED[core].load(Ordering::Relaxed));
    if others_exhausted && used_exact() > limits.maxmemory {
        State::Fail
    } else {
        State::Running
    }
}

/// Evicts up to `share` bytes of this core's keys within the pass's time limit. Returns what
/// it evicted and whether the time ran out first.
fn evict_share(core: &Rc<Core>, limits: Limits, policy: Policy, share: u64) -> (shoal_runtime::evict::Evicted, bool) {
    let options = Options { policy, samples: limits.samples as usize, lfu_decay_time: limits.lfu_decay_time, now_ms: 0 };
    let started = Instant::now();
    let own_before = alloc::thread_bytes();
    let mut timed_out = false;
    let evicted = core.evict(options, |keys| {
        let freed = own_before - alloc::thread_bytes();
        if freed >= share as i64 {
            return false;
        }
        // As Redis: look at the clock every 16 keys.
        if keys > 0 && keys % 16 == 0 && limits.time_limit.is_some_and(|limit| started.elapsed() > limit) {
            timed_out = true;
            return false;
        }
        true
    });
    EXHAUSTED[core.id].store(evicted.exhausted, Ordering::Relaxed);
    (evicted, timed_out)
}

/// Asks every other core to evict `share` bytes, unless it was asked already and has not
/// run. Each core evicts the same share of the excess this core saw: were each to take its share of the excess left when its turn comes, the
/// core that asks would always evict the most and run out of keys first.
fn nudge_others(node: &Rc<Node>, share: u64) {
    for other in (0..node.core.shard_count).filter(|&c| c != node.core.id) {
        if NUDGED[other].swap(true, Ordering::Relaxed) {
            continue;
        }
        let core = node.core.clone();
        glommio::spawn_local(async move {
            core.call_on(other, move |core| {
                NUDGED[core.id].store(false, Ordering::Relaxed);
                let limits = LIMITS.with(|l| l.get());
                // Even if memory went under the limit meanwhile (the asking core's frees, a
                // connection's buffers): skipping would leave the asking core to evict more
                // than the others, round after round, until its keys ran out.
                if let (Some(policy), true) = (limits.policy, limits.maxmemory > 0) {
                    evict_share(core, limits, policy, share);
                }
            })
            .await
        })
        .detach();
    }
}

/// The cron's part (every core, every tick): while memory is over, a round as before a
/// command (this core's share, and the same share asked of every other core), so eviction
/// goes on between commands, as Redis's eviction time proc does. Not while the dataset
/// loads: as Redis, load everything, then evict.
pub fn cron(node: &Rc<Node>) {
    if limited() && !crate::rdb_load::loading() {
        perform_evictions(node);
    }
}

/// After CONFIG SET lowered the limit: every core evicts its share until memory is under the
/// limit or nothing is left to evict, before CONFIG SET answers.
pub async fn after_config_set(node: &Rc<Node>) {
    for _ in 0..64 {
        let over = node.core.call_all(|core| {
            let limits = LIMITS.with(|l| l.get());
            let (Some(policy), true) = (limits.policy, limits.maxmemory > 0) else { return false };
            let used = used_exact();
            if used <= limits.maxmemory {
                return false;
            }
            let share = (used - limits.maxmemory) / core.shard_count as u64 + 1;
            let unbounded = Limits { time_limit: None, ..limits };
            !evict_share(core, unbounded, policy, share).0.exhausted
        });
        if !over.await.into_iter().any(|evicting| evicting) {
            return;
        }
    }
}

/// Whether `spec` with `args` may grow memory (Redis's `CMD_DENYOOM` as `getCommandFlags`
/// computes it: for EVAL, EVALSHA and FCALL from the script's flags).
pub fn denies_oom(spec: &CommandSpec, args: &[Bytes]) -> bool {
    match crate::scripting::declared_flags(spec, args) {
        Some(flags) => !(flags.allow_oom || flags.no_writes),
        None => spec.has(shoal_commands::table::flags::DENYOOM),
    }
}

/// The check before a command (in the connection, where Redis's `processCommand` makes it):
/// the OOM error for a command that may grow memory while memory is over the limit and
/// nothing can be evicted. Inside MULTI every command but EXEC, DISCARD, QUIT and RESET
/// counts (queueing takes memory too); EXEC itself is checked by `multi::exec`.
pub fn refusal(node: &Rc<Node>, conn: &Conn, spec: &CommandSpec, args: &[Bytes]) -> Option<Frame> {
    if !limited() {
        return None;
    }
    let in_multi = conn.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "quit" | "reset");
    if !in_multi && !denies_oom(spec, args) {
        return None;
    }
    (perform_evictions(node) == State::Fail).then(|| errors::error(OOM))
}

/// Redis's `pre_command_oom_state` for a script that declared no flags: whether its first
/// write that may grow memory must fail. Inside EXEC nothing is evicted (the queue may run
/// on this core without locks, and Redis does not evict inside EXEC either): the answer is
/// whether memory is over and nothing could be evicted on the last passes.
pub fn out_of_memory(node: &Rc<Node>, in_exec: bool) -> bool {
    if !limited() {
        return false;
    }
    if !in_exec {
        return perform_evictions(node) == State::Fail;
    }
    let limits = LIMITS.with(|l| l.get());
    let nothing_to_evict = limits.policy.is_none() || (0..node.core.shard_count).all(|core| EXHAUSTED[core].load(Ordering::Relaxed));
    nothing_to_evict && used_exact() > limits.maxmemory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenacity_gives_redis_s_time_limits() {
        assert_eq!(time_limit(0), Some(Duration::ZERO));
        assert_eq!(time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(time_limit(11), Some(Duration::from_micros(575)));
        assert!(time_limit(99).unwrap() > Duration::from_secs(60), "about two minutes at 99");
        assert_eq!(time_limit(100), None);
    }
}

//! Choosing what to evict when the server is over `maxmemory` (Redis's `evict.c`, the part
//! that picks keys): sampling, the pool of best candidates, and each policy's score.
//!
//! Only the choice lives here. Whether memory is over the limit, how much to free, and what a
//! deletion must also do (WATCH, the append-only log, notifications) are the runtime's and
//! the server's business: the store knows no allocator and no client. As in Redis the choice
//! is approximate: each call samples `maxmemory-samples` keys of every database into a pool
//! of the 16 best candidates seen so far, and takes the best one that still exists.
//! volatile-ttl is the exception: the expiry index is ordered, so it takes the key that
//! expires first exactly, which is what Redis's sampling approximates.

use crate::db::{idle_seconds, lfu_decayed};
use crate::Shard;

/// The policies that evict something (`noeviction` never gets here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    /// Whether only keys with a TTL may go.
    pub fn volatile(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileRandom | Policy::VolatileTtl)
    }

    /// Whether the policy reads LFU counters (the key metadata holds counters, not clocks).
    pub fn lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }
}

/// Redis's `EVPOOL_SIZE`.
pub const POOL_SIZE: usize = 16;

/// The best candidates sampled so far, worst first (Redis's `EvictionPoolLRU`). It survives
/// between calls, so each call's samples compete with earlier ones.
#[derive(Debug, Default)]
pub struct Pool {
    /// (score, database, key): the higher the score, the better the candidate.
    entries: Vec<(u64, usize, Box<[u8]>)>,
    /// The policy the scores were computed for: another policy starts afresh.
    policy: Option<Policy>,
    /// The random policies' next database, round robin (Redis's `next_db`).
    next_db: usize,
}

impl Pool {
    fn insert(&mut self, score: u64, db: usize, key: &[u8]) {
        if self.entries.len() == POOL_SIZE && self.entries[0].0 >= score {
            return;
        }
        if self.entries.iter().any(|(_, d, k)| *d == db && &k[..] == key) {
            return;
        }
        let at = self.entries.partition_point(|(s, _, _)| *s < score);
        self.entries.insert(at, (score, db, key.into()));
        if self.entries.len() > POOL_SIZE {
            self.entries.remove(0);
        }
        debug_assert!(self.entries.windows(2).all(|w| w[0].0 <= w[1].0), "the pool is sorted by score");
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What [`pick`] needs besides the shard.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub policy: Policy,
    /// `maxmemory-samples`.
    pub samples: usize,
    /// `lfu-decay-time`, minutes.
    pub lfu_decay_time: u32,
    pub now_ms: u64,
}

/// Sampling rounds [`pick`] makes before it gives up on finding a key `skip` allows.
const ROUNDS_MAX: usize = 8;

/// The next key to evict from `shard`, as (database, key), or None when the policy finds
/// nothing (no keys, or no keys with a TTL for a volatile policy). `skip` refuses keys that
/// must stay (locked by a transaction in flight).
pub fn pick(shard: &mut Shard, options: Options, mut skip: impl FnMut(usize, &[u8]) -> bool) -> Option<(usize, Box<[u8]>)> {
    let policy = options.policy;
    let volatile = policy.volatile();
    if shard.evict_pool.policy != Some(policy) {
        shard.evict_pool = Pool { policy: Some(policy), ..Pool::default() };
    }
    let candidates = |db: &crate::Db| if volatile { db.expires_len() } else { db.len() };
    for _ in 0..ROUNDS_MAX {
        if shard.dbs.iter().all(|db| candidates(db) == 0) {
            return None;
        }
        match policy {
            Policy::AllKeysRandom | Policy::VolatileRandom => {
                let count = shard.dbs.len();
                for step in 0..count {
                    let index = (shard.evict_pool.next_db + step) % count;
                    let db = &shard.dbs[index];
                    if candidates(db) == 0 {
                        continue;
                    }
                    let mut found = None;
                    db.sample(&mut shard.rng, volatile, 1, |key, _, _| found = Some(Box::<[u8]>::from(key)));
                    shard.evict_pool.next_db = index + 1;
                    if let Some(key) = found {
                        if !skip(index, &key) {
                            return Some((index, key));
                        }
                    }
                }
            }
            Policy::VolatileTtl => {
                let mut best: Option<(u64, usize)> = None;
                for (index, db) in shard.dbs.iter().enumerate() {
                    if let Some((at, key)) = db.soonest_expiring() {
                        if best.is_none_or(|(b, _)| at < b) && !skip(index, key) {
                            best = Some((at, index));
                        }
                    }
                }
                if let Some((_, index)) = best {
                    let key = shard.dbs[index].soonest_expiring().map(|(_, key)| Box::<[u8]>::from(key));
                    return key.map(|key| (index, key));
                }
                // The first key of every database is locked: try sampling.
                if let Some(found) = pick_sampled(shard, options, &mut skip) {
                    return Some(found);
                }
            }
            _ => {
                if let Some(found) = pick_sampled(shard, options, &mut skip) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// One round of sampling into the pool, then the best pooled key that still exists.
fn pick_sampled(shard: &mut Shard, options: Options, skip: &mut impl FnMut(usize, &[u8]) -> bool) -> Option<(usize, Box<[u8]>)> {
    let Options { policy, samples, lfu_decay_time, now_ms } = options;
    let volatile = policy.volatile();
    let Shard { dbs, rng, evict_pool, .. } = shard;
    for (index, db) in dbs.iter().enumerate() {
        let candidates = if volatile { db.expires_len() } else { db.len() };
        if candidates == 0 {
            continue;
        }
        db.sample(rng, volatile, samples, |key, lru, expire_at| {
            let score = match policy {
                Policy::AllKeysLfu | Policy::VolatileLfu => 255 - lfu_decayed(lru, now_ms, lfu_decay_time) as u64,
                Policy::VolatileTtl => u64::MAX - expire_at.unwrap_or(u64::MAX),
                _ => idle_seconds(lru, now_ms),
            };
            evict_pool.insert(score, index, key);
        });
    }
    while let Some((_, index, key)) = evict_pool.entries.pop() {
        // A pooled key may be gone since (deleted, or evicted by an earlier call), or have
        // lost its TTL.
        let db = &dbs[index];
        let present = if volatile { db.expire_at(&key).is_some() } else { db.holds(&key) };
        if present && !skip(index, &key) {
            return Some((index, key));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Str, Value};

    fn string(s: &str) -> Value {
        Value::Str(Str::from_bytes(s.as_bytes()))
    }

    const NOW: u64 = 1_000_000_000;

    fn options(policy: Policy) -> Options {
        Options { policy, samples: 5, lfu_decay_time: 1, now_ms: NOW }
    }

    /// A shard with `count` keys `k<i>`, key i idle for i seconds, every third with a TTL.
    fn shard(count: usize) -> Shard {
        let mut shard = Shard::new(0, 1, 2);
        for i in 0..count {
            let key = format!("k{i}");
            let ttl = (i % 3 == 0).then_some(NOW + 1000 * (count - i) as u64);
            shard.dbs[0].set_with_expire(key.as_bytes(), string("v"), ttl, NOW - 1000 * i as u64);
        }
        shard
    }

    fn evict_all(shard: &mut Shard, policy: Policy) -> Vec<Box<[u8]>> {
        let mut order = Vec::new();
        while let Some((db, key)) = pick(shard, options(policy), |_, _| false) {
            assert!(shard.dbs[db].evict(&key), "picked keys exist");
            order.push(key);
        }
        shard.dbs[0].check_invariants();
        order
    }

    #[test]
    fn volatile_policies_never_pick_a_key_without_a_ttl() {
        for policy in [Policy::VolatileLru, Policy::VolatileLfu, Policy::VolatileRandom, Policy::VolatileTtl] {
            let mut shard = shard(30);
            let evicted = evict_all(&mut shard, policy);
            assert_eq!(evicted.len(), 10, "{policy:?} evicts the ten keys with a TTL");
            assert_eq!(shard.dbs[0].len(), 20, "{policy:?} leaves the others");
            assert_eq!(shard.dbs[0].expires_len(), 0);
            assert_eq!(shard.dbs[0].stats.evicted_keys, 10);
        }
    }

    #[test]
    fn allkeys_policies_pick_everything_in_the_end() {
        for policy in [Policy::AllKeysLru, Policy::AllKeysLfu, Policy::AllKeysRandom] {
            let mut shard = shard(30);
            assert_eq!(evict_all(&mut shard, policy).len(), 30, "{policy:?}");
            assert!(shard.dbs[0].is_empty());
        }
    }

    #[test]
    fn volatile_ttl_takes_the_soonest_expiry_first() {
        let mut shard = shard(30);
        let evicted = evict_all(&mut shard, Policy::VolatileTtl);
        let expected: Vec<Box<[u8]>> = (0..30).rev().filter(|i| i % 3 == 0).map(|i| format!("k{i}").into_bytes().into()).collect();
        assert_eq!(evicted, expected);
    }

    #[test]
    fn lru_prefers_idle_keys() {
        let mut shard = shard(1000);
        let first: Vec<usize> = (0..100)
            .map(|_| {
                let (db, key) = pick(&mut shard, options(Policy::AllKeysLru), |_, _| false).expect("keys remain");
                shard.dbs[db].evict(&key);
                std::str::from_utf8(&key[1..]).unwrap().parse().unwrap()
            })
            .collect();
        // Keys 0..999 are idle 0..999 seconds: the first hundred evicted are mostly old.
        let old = first.iter().filter(|&&i| i >= 500).count();
        assert!(old >= 90, "{old} of the first 100 evicted are from the older half");
    }

    #[test]
    fn skipped_keys_stay() {
        let mut shard = shard(10);
        let locked = |_: usize, key: &[u8]| key == b"k0";
        // A pick may find only the skipped key in its rounds (random samples), and then
        // gives up for this time: asked again, it goes on.
        for _ in 0..10_000 {
            if let Some((db, key)) = pick(&mut shard, options(Policy::AllKeysRandom), locked) {
                assert_ne!(&key[..], b"k0");
                shard.dbs[db].evict(&key);
            }
            if shard.dbs[0].len() == 1 {
                break;
            }
        }
        assert_eq!(shard.dbs[0].len(), 1);
        assert!(shard.dbs[0].holds(b"k0"));
    }

    #[test]
    fn the_pool_keeps_the_best_sixteen_sorted() {
        let mut pool = Pool::default();
        for score in [5u64, 1, 9, 3, 7, 20, 11, 2, 8, 4, 6, 10, 12, 13, 14, 15, 16, 17, 0, 18] {
            pool.insert(score, 0, format!("k{score}").as_bytes());
        }
        pool.insert(18, 0, b"k18");
        assert_eq!(pool.len(), POOL_SIZE);
        let scores: Vec<u64> = pool.entries.iter().map(|e| e.0).collect();
        assert_eq!(scores, (4..=18).chain([20]).collect::<Vec<_>>(), "the sixteen best, worst first, no duplicate");
    }
}

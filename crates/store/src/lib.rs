//! The per-core keyspace: a shard's databases, their values and expiry.
//!
//! Everything here is synchronous and single-threaded: a [`Shard`] belongs to exactly one
//! core and is only touched by that core's executor. There is no `async`, no runtime, no
//! socket, and no clock: the current time is passed in by the caller.

pub mod db;
pub mod dict;
pub mod evict;
pub mod lazyfree;
pub mod listpack;
pub mod prefetch;
pub mod slot;
pub mod snapshot;
pub mod thin;
pub mod types;
pub mod value;
pub mod varint;

pub use db::{Db, DbStats, Detached, Entry};
pub use types::Limits;
pub use value::{Str, Value};

/// What one core owns: its slice of every database.
pub struct Shard {
    /// This shard's index, 0-based.
    pub id: usize,
    /// How many shards split the slots.
    pub shard_count: usize,
    pub dbs: Vec<Db>,
    pub rng: rand::rngs::SmallRng,
    /// Where big values go to be freed off this core (none in tests: they free in place).
    pub lazyfree: Option<lazyfree::LazyFree>,
    /// Eviction's best candidates so far (see [`evict`]).
    pub evict_pool: evict::Pool,
}

impl Shard {
    pub fn new(id: usize, shard_count: usize, databases: usize) -> Self {
        assert!(id < shard_count, "shard {id} of {shard_count}");
        assert!(databases > 0, "at least one database");
        use rand::SeedableRng;
        Shard {
            id,
            shard_count,
            dbs: (0..databases).map(|_| Db::new()).collect(),
            rng: rand::rngs::SmallRng::from_os_rng(),
            lazyfree: None,
            evict_pool: evict::Pool::default(),
        }
    }

    /// Whether this shard owns `key`.
    pub fn owns(&self, key: &[u8]) -> bool {
        slot::key_shard(key, self.shard_count) == self.id
    }

    /// Installs the lazyfree thread and the `lazyfree-lazy-expire` / `-server-del` choices in
    /// every database.
    pub fn configure_lazyfree(&mut self, sink: Option<lazyfree::LazyFree>, expire: bool, server_del: bool) {
        self.lazyfree = sink.clone();
        for db in &mut self.dbs {
            db.lazy = lazyfree::Policy { sink: sink.clone(), expire, server_del };
        }
    }

    /// The keys every database expired since the last call, for the append-only log (see
    /// [`db::set_log_expired`]): (database, keys) for each database that expired any.
    pub fn take_expired_log(&mut self) -> Vec<(usize, Vec<db::Expired>)> {
        let mut taken = Vec::new();
        for (index, db) in self.dbs.iter_mut().enumerate() {
            if db.has_expired_log() {
                taken.push((index, db.take_expired_log()));
            }
        }
        taken
    }

    /// Starts or ends a replay of the append-only log in every database (see
    /// [`Db::set_loading`]).
    pub fn set_loading(&mut self, loading: bool) {
        for db in &mut self.dbs {
            db.set_loading(loading);
        }
    }

    /// Chooses LRU clocks or LFU counters for every database (see [`Db::set_lfu`]).
    pub fn set_lfu(&mut self, lfu: Option<db::Lfu>) {
        for db in &mut self.dbs {
            db.set_lfu(lfu);
        }
    }

    /// Drops `value`, on the lazyfree thread when it is big and `lazy` asks for it.
    pub fn dispose(&self, value: Value, lazy: bool) {
        lazyfree::dispose(self.lazyfree.as_ref(), value, lazy);
    }

    /// Empties database `index`, freeing its contents on the lazyfree thread when `lazy`.
    pub fn flush_db(&mut self, index: usize, lazy: bool) {
        let old = self.dbs[index].clear();
        lazyfree::dispose_db(self.lazyfree.as_ref(), old, lazy);
    }

    /// The counters of every database added up.
    pub fn stats(&self) -> DbStats {
        let mut total = DbStats::default();
        for db in &self.dbs {
            total.expired_keys += db.stats.expired_keys;
            total.expired_fields += db.stats.expired_fields;
            total.evicted_keys += db.stats.evicted_keys;
            total.keyspace_hits += db.stats.keyspace_hits;
            total.keyspace_misses += db.stats.keyspace_misses;
        }
        total
    }
}

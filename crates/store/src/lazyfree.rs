//! Freeing big values off the core (Redis's lazyfree): UNLINK, FLUSHALL ASYNC and the
//! `lazyfree-lazy-*` directives hand values whose freeing costs more than
//! [`LAZYFREE_THRESHOLD`] allocations to one background thread, so that deleting a collection
//! of millions of elements does not stall the core that owned it.
//!
//! The store only holds the sending end; whoever starts the cores starts the thread
//! ([`LazyFree::start`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use crate::value::Value;
use crate::Db;

/// Values whose freeing costs more allocations than this are freed in the background
/// (Redis's LAZYFREE_THRESHOLD).
pub const LAZYFREE_THRESHOLD: usize = 64;

/// Something to drop on the background thread.
#[allow(dead_code, reason = "held only to be dropped on the lazyfree thread")]
enum Garbage {
    Value(Value),
    Db(Box<Db>),
}

/// Counters for INFO: `lazyfree_pending_objects` and `lazyfreed_objects`.
#[derive(Default)]
pub struct LazyFreeStats {
    pub pending: AtomicU64,
    pub freed: AtomicU64,
}

/// The sending end of the background freeing thread; cloned into every shard.
#[derive(Clone)]
pub struct LazyFree {
    sender: mpsc::Sender<Garbage>,
    pub stats: Arc<LazyFreeStats>,
}

impl LazyFree {
    /// Starts the background thread; it ends when every `LazyFree` clone is dropped.
    pub fn start() -> std::io::Result<LazyFree> {
        let (sender, receiver) = mpsc::channel::<Garbage>();
        let stats = Arc::new(LazyFreeStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new().name("shoal-lazyfree".into()).spawn(move || {
            for garbage in receiver {
                let objects = match &garbage {
                    Garbage::Value(_) => 1,
                    Garbage::Db(db) => db.len() as u64,
                };
                drop(garbage);
                thread_stats.pending.fetch_sub(objects, Ordering::Relaxed);
                thread_stats.freed.fetch_add(objects, Ordering::Relaxed);
            }
        })?;
        Ok(LazyFree { sender, stats })
    }

    fn send(&self, garbage: Garbage, objects: u64) -> Result<(), Garbage> {
        self.stats.pending.fetch_add(objects, Ordering::Relaxed);
        self.sender.send(garbage).map_err(|e| {
            self.stats.pending.fetch_sub(objects, Ordering::Relaxed);
            e.0
        })
    }
}

impl Value {
    /// How many allocations freeing this value takes, roughly (Redis's
    /// `lazyfreeGetFreeEffort`): 1 for strings and compact encodings, the element count for
    /// the others.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len().div_ceil(128),
            Value::Hash(h) if h.encoding_name() == "hashtable" => h.len(),
            Value::Set(s) if s.encoding_name() == "hashtable" => s.len(),
            Value::ZSet(z) if z.encoding_name() == "skiplist" => z.len(),
            Value::Hash(_) | Value::Set(_) | Value::ZSet(_) => 1,
            // An allocation per entry (Redis's: per listpack node), and the groups' PELs.
            Value::Stream(s) => 1 + s.len() + s.groups.values().map(|g| g.pending.len()).sum::<usize>(),
        }
    }
}

/// How a database frees what it drops implicitly: expired keys (`lazyfree-lazy-expire`) and
/// values overwritten by SET and friends (`lazyfree-lazy-server-del`).
#[derive(Clone, Default)]
pub struct Policy {
    pub sink: Option<LazyFree>,
    pub expire: bool,
    pub server_del: bool,
}

impl Policy {
    pub fn dispose_expired(&self, value: Value) {
        dispose(self.sink.as_ref(), value, self.expire);
    }

    pub fn dispose_overwritten(&self, value: Value) {
        dispose(self.sink.as_ref(), value, self.server_del);
    }
}

/// Drops `value` here, or on the background thread when it is big and `lazy` asks for it.
pub fn dispose(lazyfree: Option<&LazyFree>, value: Value, lazy: bool) {
    match lazyfree {
        Some(lazyfree) if lazy && value.free_effort() > LAZYFREE_THRESHOLD => {
            // A failed send (the thread is gone, at exit) drops the value here.
            let _ = lazyfree.send(Garbage::Value(value), 1);
        }
        _ => drop(value),
    }
}

/// Drops a whole database's contents here, or on the background thread when `lazy`.
pub fn dispose_db(lazyfree: Option<&LazyFree>, db: Db, lazy: bool) {
    match lazyfree {
        Some(lazyfree) if lazy && db.len() > LAZYFREE_THRESHOLD => {
            let objects = db.len() as u64;
            let _ = lazyfree.send(Garbage::Db(Box::new(db)), objects);
        }
        _ => drop(db),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Str;

    #[test]
    fn big_databases_are_freed_in_the_background_and_counted() {
        let lazyfree = LazyFree::start().unwrap();
        let mut db = Db::new();
        for i in 0..1000 {
            db.set(format!("k{i}").as_bytes(), Value::Str(Str::from_bytes(b"v")), 0);
        }
        dispose_db(Some(&lazyfree), db, true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lazyfree.stats.freed.load(Ordering::Relaxed) < 1000 {
            assert!(std::time::Instant::now() < deadline, "the background thread frees the database");
            std::thread::yield_now();
        }
        assert_eq!(lazyfree.stats.pending.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn small_values_are_freed_in_place() {
        let lazyfree = LazyFree::start().unwrap();
        dispose(Some(&lazyfree), Value::Str(Str::from_bytes(b"x")), true);
        assert_eq!(lazyfree.stats.pending.load(Ordering::Relaxed) + lazyfree.stats.freed.load(Ordering::Relaxed), 0);
    }
}

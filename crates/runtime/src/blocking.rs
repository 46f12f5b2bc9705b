//! Clients blocked on keys (BLPOP, BZPOPMIN, ...): one registry per core, for the keys that
//! core owns.
//!
//! A blocked client is one [`Blocked`] record, shared by every core that owns one of its
//! keys. Whichever core can serve it first claims it (an atomic flag), so it is served once;
//! the others drop their reference when they next look at it, or when its home core (the one
//! its connection lives on) tells them it is done.
//!
//! Keys become *candidates* when a write command names them while someone waits on them; the
//! core then tries to serve the waiters of each candidate, oldest first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use shoal_commands::CommandSpec;
use shoal_resp::{Frame, Protocol};

/// One blocked command.
pub struct Blocked {
    /// The core whose connection waits for the reply.
    pub home: usize,
    /// Unique on `home`.
    pub id: u64,
    claimed: AtomicBool,
    pub db: usize,
    pub proto: Protocol,
    pub spec: &'static CommandSpec,
    pub args: Vec<Bytes>,
    /// The client's id, for the slow log.
    pub client: u64,
}

impl Blocked {
    pub fn new(home: usize, id: u64, db: usize, proto: Protocol, spec: &'static CommandSpec, args: Vec<Bytes>, client: u64) -> Blocked {
        Blocked { home, id, claimed: AtomicBool::new(false), db, proto, spec, args, client }
    }

    /// Takes the right to finish this waiter (serve it, time it out, cancel it). True once.
    pub fn claim(&self) -> bool {
        self.claimed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// How a waiter ends, as its home core learns it.
pub enum Wake {
    /// Served: the reply.
    Served(Frame),
    /// Its key is ready but serving needs the transaction layer: run the command again.
    Retry,
}

/// The waiters on this core's keys, per database and key, oldest first.
#[derive(Default)]
pub struct Registry {
    waiters: HashMap<usize, HashMap<Bytes, VecDeque<Arc<Blocked>>>>,
    /// Keys a write named while someone waits on them, to try serving.
    candidates: Vec<(usize, Bytes)>,
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub fn register(&mut self, waiter: &Arc<Blocked>, keys: &[Bytes]) {
        let db = self.waiters.entry(waiter.db).or_default();
        for key in keys {
            let queue = db.entry(key.clone()).or_default();
            // BLPOP k k waits once on k.
            if !queue.iter().any(|w| Arc::ptr_eq(w, waiter)) {
                queue.push_back(waiter.clone());
            }
        }
    }

    /// Forgets `waiter` (home core `home`, id `id`) on `keys`.
    pub fn unregister(&mut self, db: usize, home: usize, id: u64, keys: &[Bytes]) {
        let Some(queues) = self.waiters.get_mut(&db) else { return };
        for key in keys {
            if let Some(queue) = queues.get_mut(key.as_ref()) {
                queue.retain(|w| !(w.home == home && w.id == id));
                if queue.is_empty() {
                    queues.remove(key.as_ref());
                }
            }
        }
        if queues.is_empty() {
            self.waiters.remove(&db);
        }
    }

    /// A write named `key` in `db`: if someone waits on it, try serving them.
    pub fn signal(&mut self, db: usize, key: &[u8]) {
        let waited = self.waiters.get(&db).is_some_and(|queues| queues.contains_key(key));
        if waited && !self.candidates.iter().any(|(d, k)| *d == db && k.as_ref() == key) {
            self.candidates.push((db, Bytes::copy_from_slice(key)));
        }
    }

    /// Every waited key is a candidate (a write that changed the whole shard: SWAPDB,
    /// FLUSHALL, a transaction holding the shard lock).
    pub fn signal_all(&mut self) {
        let keys: Vec<(usize, Bytes)> = self.waiters.iter().flat_map(|(db, queues)| queues.keys().map(move |k| (*db, k.clone()))).collect();
        for (db, key) in keys {
            self.signal(db, &key);
        }
    }

    pub fn take_candidates(&mut self) -> Vec<(usize, Bytes)> {
        std::mem::take(&mut self.candidates)
    }

    /// Puts back candidates that could not be tried yet (their key was locked).
    pub fn defer(&mut self, deferred: Vec<(usize, Bytes)>) {
        for (db, key) in deferred {
            self.signal(db, &key);
        }
    }

    /// The waiters on `key`, oldest first (a snapshot: serving changes the queue).
    pub fn waiters(&self, db: usize, key: &[u8]) -> Vec<Arc<Blocked>> {
        self.waiters.get(&db).and_then(|queues| queues.get(key)).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Removes one waiter from the queue of `key`.
    pub fn remove(&mut self, db: usize, key: &[u8], waiter: &Arc<Blocked>) {
        if let Some(queues) = self.waiters.get_mut(&db) {
            if let Some(queue) = queues.get_mut(key) {
                queue.retain(|w| !Arc::ptr_eq(w, waiter));
                if queue.is_empty() {
                    queues.remove(key);
                }
            }
            if queues.is_empty() {
                self.waiters.remove(&db);
            }
        }
    }

    /// Number of distinct waiters registered here.
    pub fn blocked_keys(&self) -> usize {
        self.waiters.values().map(|q| q.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(id: u64) -> Arc<Blocked> {
        let spec = shoal_commands::table::lookup(b"get").unwrap();
        Arc::new(Blocked::new(0, id, 0, Protocol::Resp2, spec, Vec::new(), 0))
    }

    #[test]
    fn waiters_queue_in_order_and_leave_cleanly() {
        let mut registry = Registry::default();
        let (a, b) = (waiter(1), waiter(2));
        let keys = [Bytes::from_static(b"k"), Bytes::from_static(b"k")];
        registry.register(&a, &keys);
        registry.register(&b, &keys[..1]);
        let order: Vec<u64> = registry.waiters(0, b"k").iter().map(|w| w.id).collect();
        assert_eq!(order, vec![1, 2], "each waiter once, in the order they blocked");
        registry.signal(0, b"k");
        registry.signal(0, b"k");
        registry.signal(0, b"other");
        assert_eq!(registry.take_candidates().len(), 1, "one candidate per waited key");
        registry.unregister(0, 0, 1, &keys[..1]);
        registry.remove(0, b"k", &b);
        assert!(registry.is_empty());
    }

    #[test]
    fn a_waiter_is_claimed_once() {
        let w = waiter(1);
        assert!(w.claim());
        assert!(!w.claim());
        assert!(w.is_claimed());
    }
}

//! WATCH: which clients watch which keys of this core, and marking them when a key changes.
//!
//! A client's WATCH spans cores: each core that owns one of its keys registers the client's
//! flag here; a write to a watched key (or a whole-shard write such as FLUSHALL) sets it,
//! from whichever core runs the write. EXEC reads the flag once it holds its locks, which
//! include every watched key, so no write can slip between the check and the commands.
//!
//! The callers decide what counts as a change (ARCHITECTURE.md, "MULTI/EXEC and WATCH"):
//! single-core commands by the change counter, as Redis does; cross-core commands and
//! shard-wide writes when they release their locks. This registry only finds and marks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// One client's WATCH: set when any of its keys is written.
pub type WatchFlag = Arc<AtomicBool>;

/// One database's watched keys and, per key, its watchers.
type Watchers = HashMap<Bytes, Vec<(u64, WatchFlag)>, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct Registry {
    /// database -> key -> (client id, its flag), in WATCH order. Keyed by database first so
    /// that a write looks its key up as a borrowed slice, without copying it. Seeded per
    /// process (foldhash), so clients cannot choose keys that collide.
    dbs: HashMap<usize, Watchers>,
    /// Watched (database, key) pairs.
    len: usize,
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn register(&mut self, client: u64, flag: &WatchFlag, db: usize, key: Bytes) {
        let watchers = self.dbs.entry(db).or_default().entry(key).or_insert_with(|| {
            self.len += 1;
            Vec::new()
        });
        if !watchers.iter().any(|(id, _)| *id == client) {
            watchers.push((client, flag.clone()));
        }
    }

    pub fn unregister(&mut self, client: u64, db: usize, key: Bytes) {
        let Some(keys) = self.dbs.get_mut(&db) else { return };
        if let Some(watchers) = keys.get_mut(&key) {
            watchers.retain(|(id, _)| *id != client);
            if watchers.is_empty() {
                keys.remove(&key);
                self.len -= 1;
                if keys.is_empty() {
                    self.dbs.remove(&db);
                }
            }
        }
    }

    fn watchers(&self, db: usize, key: &[u8]) -> Option<&Vec<(u64, WatchFlag)>> {
        self.dbs.get(&db)?.get(key)
    }

    pub fn is_watched(&self, db: usize, key: &[u8]) -> bool {
        self.watchers(db, key).is_some()
    }

    /// `key` was written: every client watching it will fail its EXEC.
    pub fn touch(&self, db: usize, key: &[u8]) {
        for (_, flag) in self.watchers(db, key).into_iter().flatten() {
            flag.store(true, Ordering::Release);
        }
    }

    /// Every watched (database, key) pair of this core.
    pub fn keys(&self) -> impl Iterator<Item = (usize, &Bytes)> {
        self.dbs.iter().flat_map(|(db, keys)| keys.keys().map(move |key| (*db, key)))
    }

    /// Watched (database, key) pairs.
    pub fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_sets_the_flags_of_its_watchers_only() {
        let mut registry = Registry::default();
        let (a, b) = (WatchFlag::default(), WatchFlag::default());
        registry.register(1, &a, 0, Bytes::from_static(b"k"));
        registry.register(2, &b, 0, Bytes::from_static(b"other"));
        registry.touch(1, b"k");
        assert!(!a.load(Ordering::Acquire), "another database's key");
        registry.touch(0, b"k");
        assert!(a.load(Ordering::Acquire) && !b.load(Ordering::Acquire));
        registry.unregister(2, 0, Bytes::from_static(b"other"));
        assert_eq!(registry.len(), 1);
        registry.unregister(1, 0, Bytes::from_static(b"k"));
        assert!(registry.is_empty());
    }
}

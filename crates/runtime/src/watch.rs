//! WATCH: which clients watch which keys of this core, and marking them when a key changes.
//!
//! A client's WATCH spans cores: each core that owns one of its keys registers the client's
//! flag here; a write to a watched key (or a whole-shard write such as FLUSHALL) sets it,
//! from whichever core runs the write. EXEC reads the flag once it holds its locks, which
//! include every watched key, so no write can slip between the check and the commands.
//!
//! The grain is the write command, not the actual change: a write command that leaves a
//! watched key as it was (SET ... NX on an existing key, DEL of a missing key) still fails
//! the EXEC. Redis is finer; ours never lets a real change through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// One client's WATCH: set when any of its keys is written.
pub type WatchFlag = Arc<AtomicBool>;

#[derive(Default)]
pub struct Registry {
    /// (database, key) -> (client id, its flag), in WATCH order.
    keys: HashMap<(usize, Bytes), Vec<(u64, WatchFlag)>>,
}

impl Registry {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn register(&mut self, client: u64, flag: &WatchFlag, db: usize, key: Bytes) {
        let watchers = self.keys.entry((db, key)).or_default();
        if !watchers.iter().any(|(id, _)| *id == client) {
            watchers.push((client, flag.clone()));
        }
    }

    pub fn unregister(&mut self, client: u64, db: usize, key: Bytes) {
        let slot = (db, key);
        if let Some(watchers) = self.keys.get_mut(&slot) {
            watchers.retain(|(id, _)| *id != client);
            if watchers.is_empty() {
                self.keys.remove(&slot);
            }
        }
    }

    pub fn is_watched(&self, db: usize, key: &[u8]) -> bool {
        self.keys.contains_key(&(db, Bytes::copy_from_slice(key)))
    }

    /// `key` was written: every client watching it will fail its EXEC.
    pub fn touch(&self, db: usize, key: &[u8]) {
        if let Some(watchers) = self.keys.get(&(db, Bytes::copy_from_slice(key))) {
            for (_, flag) in watchers {
                flag.store(true, Ordering::Release);
            }
        }
    }

    /// The whole shard may have changed (FLUSHALL, SWAPDB, ...): every watcher here fails.
    pub fn touch_all(&self) {
        for watchers in self.keys.values() {
            for (_, flag) in watchers {
                flag.store(true, Ordering::Release);
            }
        }
    }

    /// Watched keys, for INFO's `watching_clients`-like counts and tests.
    pub fn len(&self) -> usize {
        self.keys.len()
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

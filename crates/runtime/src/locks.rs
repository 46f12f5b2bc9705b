//! Intent locks of one core: the shard's half of the transaction layer.
//!
//! A lock set names keys (with a database) in shared or exclusive mode, or the whole shard.
//! Waiters queue in arrival order and a waiter is granted only when it conflicts neither with
//! a held lock nor with an earlier waiter (VLL's rule), so no waiter starves and grants on
//! one core follow arrival order. Deadlock freedom across cores comes from the coordinator,
//! which acquires its cores one after the other in ascending order (see ARCHITECTURE.md).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// What one request locks on one core.
#[derive(Clone, Debug, Default)]
pub struct LockSet {
    /// The whole shard, every database.
    pub shard: Option<Mode>,
    /// (database, key, mode), each key once (see [`LockSet::normalize`]).
    pub keys: Vec<(usize, Bytes, Mode)>,
}

impl LockSet {
    /// Adds a key lock. Call [`LockSet::normalize`] once all keys are in.
    pub fn push(&mut self, db: usize, key: Bytes, mode: Mode) {
        self.keys.push((db, key, mode));
    }

    /// Makes each key appear once, in the stronger of the modes it was named with.
    pub fn normalize(&mut self) {
        if self.keys.len() < 2 {
            return;
        }
        // Exclusive sorts first within a key, so dedup keeps it.
        self.keys.sort_by(|a, b| (a.0, &a.1, a.2 == Mode::Shared).cmp(&(b.0, &b.1, b.2 == Mode::Shared)));
        self.keys.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    }

    pub fn is_empty(&self) -> bool {
        self.shard.is_none() && self.keys.is_empty()
    }

    fn conflicts_with(&self, other: &LockSet) -> bool {
        let conflict = |a: Mode, b: Mode| a == Mode::Exclusive || b == Mode::Exclusive;
        match (self.shard, other.shard) {
            (Some(a), Some(b)) if conflict(a, b) => return true,
            (Some(a), None) if other.keys.iter().any(|(_, _, b)| conflict(a, *b)) => return true,
            (None, Some(b)) if self.keys.iter().any(|(_, _, a)| conflict(*a, b)) => return true,
            _ => {}
        }
        self.keys.iter().any(|(db, key, a)| other.keys.iter().any(|(odb, okey, b)| db == odb && key == okey && conflict(*a, *b)))
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct Held {
    shared: u32,
    exclusive: bool,
}

impl Held {
    fn admits(&self, mode: Mode) -> bool {
        match mode {
            Mode::Shared => !self.exclusive,
            Mode::Exclusive => !self.exclusive && self.shared == 0,
        }
    }

    fn take(&mut self, mode: Mode) {
        debug_assert!(self.admits(mode), "lock taken only when admitted");
        match mode {
            Mode::Shared => self.shared += 1,
            Mode::Exclusive => self.exclusive = true,
        }
    }

    fn give(&mut self, mode: Mode) {
        match mode {
            Mode::Shared => {
                assert!(self.shared > 0, "releasing a shared lock that is held");
                self.shared -= 1;
            }
            Mode::Exclusive => {
                assert!(self.exclusive, "releasing an exclusive lock that is held");
                self.exclusive = false;
            }
        }
    }

    fn is_free(&self) -> bool {
        self.shared == 0 && !self.exclusive
    }
}

/// The lock table of one core, with its queue of waiters of type `W`.
pub struct LockManager<W> {
    /// Seeded per process (foldhash), so clients cannot choose keys that collide.
    keys: HashMap<(usize, Bytes), Held, foldhash::fast::RandomState>,
    shard: Held,
    /// Number of key locks held (to answer "any key locked?" quickly).
    key_holders: usize,
    waiting: VecDeque<(LockSet, W)>,
}

impl<W> Default for LockManager<W> {
    fn default() -> Self {
        LockManager { keys: HashMap::default(), shard: Held::default(), key_holders: 0, waiting: VecDeque::new() }
    }
}

impl<W> LockManager<W> {
    /// Whether nothing is held or waiting: the fast path for plain commands.
    pub fn is_idle(&self) -> bool {
        self.key_holders == 0 && self.shard.is_free() && self.waiting.is_empty()
    }

    /// Whether a shard-wide lock is held, in either mode.
    pub fn shard_held(&self) -> bool {
        !self.shard.is_free()
    }

    /// Whether a transaction holds `key` of database `db`, in either mode.
    pub fn key_held(&self, db: usize, key: &[u8]) -> bool {
        self.key_holders > 0 && self.keys.get(&(db, Bytes::copy_from_slice(key))).is_some_and(|held| !held.is_free())
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    fn admits(&self, set: &LockSet) -> bool {
        if let Some(mode) = set.shard {
            // A shard lock conflicts with every key lock of the other mode class.
            if !self.shard.admits(mode) {
                return false;
            }
            if mode == Mode::Exclusive && self.key_holders > 0 {
                return false;
            }
            if mode == Mode::Shared && self.keys.values().any(|h| h.exclusive) {
                return false;
            }
        }
        set.keys.iter().all(|(db, key, mode)| {
            let shard_ok = self.shard.admits(*mode);
            shard_ok && self.keys.get(&(*db, key.clone())).is_none_or(|h| h.admits(*mode))
        })
    }

    /// Whether `set` could run now without waiting: no conflict with held locks or with
    /// anyone already waiting.
    pub fn can_run(&self, set: &LockSet) -> bool {
        self.admits(set) && !self.waiting.iter().any(|(w, _)| w.conflicts_with(set))
    }

    fn take(&mut self, set: &LockSet) {
        if let Some(mode) = set.shard {
            self.shard.take(mode);
        }
        for (db, key, mode) in &set.keys {
            self.keys.entry((*db, key.clone())).or_default().take(*mode);
            self.key_holders += 1;
        }
    }

    /// Takes `set` now if it can run, returning the waiter back; otherwise queues it.
    pub fn acquire(&mut self, set: LockSet, waiter: W) -> Option<(LockSet, W)> {
        debug_assert!(set.keys.windows(2).all(|w| (w[0].0, &w[0].1) != (w[1].0, &w[1].1)), "lock sets are normalized");
        if self.can_run(&set) {
            self.take(&set);
            Some((set, waiter))
        } else {
            self.waiting.push_back((set, waiter));
            None
        }
    }

    /// Takes `set` if it can run now (as [`LockManager::acquire`] would grant it), and
    /// otherwise leaves everything as it was: nothing is queued.
    pub fn try_acquire(&mut self, set: &LockSet) -> bool {
        debug_assert!(set.keys.windows(2).all(|w| (w[0].0, &w[0].1) != (w[1].0, &w[1].1)), "lock sets are normalized");
        if !self.can_run(set) {
            return false;
        }
        self.take(set);
        true
    }

    /// Releases `set` and returns the waiters granted as a result, in queue order; their
    /// locks are held from now on.
    pub fn release(&mut self, set: &LockSet) -> Vec<(LockSet, W)> {
        if let Some(mode) = set.shard {
            self.shard.give(mode);
        }
        for (db, key, mode) in &set.keys {
            let id = (*db, key.clone());
            let held = self.keys.get_mut(&id).expect("released key is held");
            held.give(*mode);
            if held.is_free() {
                self.keys.remove(&id);
            }
            self.key_holders -= 1;
        }
        self.grant_waiters()
    }

    fn grant_waiters(&mut self) -> Vec<(LockSet, W)> {
        let mut granted = Vec::new();
        let mut still_waiting: VecDeque<(LockSet, W)> = VecDeque::new();
        while let Some((set, waiter)) = self.waiting.pop_front() {
            let blocked_by_earlier = still_waiting.iter().any(|(w, _)| w.conflicts_with(&set));
            if !blocked_by_earlier && self.admits(&set) {
                self.take(&set);
                granted.push((set, waiter));
            } else {
                still_waiting.push_back((set, waiter));
            }
        }
        self.waiting = still_waiting;
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(mode: Mode, names: &[&'static str]) -> LockSet {
        LockSet { shard: None, keys: names.iter().map(|k| (0, Bytes::from_static(k.as_bytes()), mode)).collect() }
    }

    #[test]
    fn shared_locks_coexist_and_exclusive_waits() {
        let mut locks = LockManager::default();
        assert!(locks.acquire(keys(Mode::Shared, &["a"]), 1).is_some());
        assert!(locks.acquire(keys(Mode::Shared, &["a"]), 2).is_some());
        assert!(locks.acquire(keys(Mode::Exclusive, &["a"]), 3).is_none());
        assert!(locks.release(&keys(Mode::Shared, &["a"])).is_empty());
        let granted = locks.release(&keys(Mode::Shared, &["a"]));
        assert_eq!(granted.iter().map(|(_, w)| *w).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_try_takes_what_is_free_and_otherwise_changes_nothing() {
        let mut locks: LockManager<u32> = LockManager::default();
        assert!(locks.try_acquire(&keys(Mode::Exclusive, &["a"])));
        assert!(locks.try_acquire(&keys(Mode::Shared, &["b"])));
        assert!(locks.try_acquire(&keys(Mode::Shared, &["b"])), "shared locks coexist");
        // Held in a conflicting mode: refused, and nothing queued.
        assert!(!locks.try_acquire(&keys(Mode::Shared, &["a", "c"])));
        assert!(!locks.try_acquire(&keys(Mode::Exclusive, &["b"])));
        assert_eq!(locks.waiting_len(), 0);
        assert!(!locks.key_held(0, b"c"), "a refused try takes none of its keys");
        // A free key that an earlier waiter wants is refused too (no overtaking).
        assert!(locks.acquire(keys(Mode::Exclusive, &["a", "d"]), 1).is_none());
        assert!(!locks.try_acquire(&keys(Mode::Exclusive, &["d"])));
        assert!(locks.try_acquire(&keys(Mode::Exclusive, &["e"])));
        // What a try took is released like any grant, and wakes the waiters.
        assert!(locks.release(&keys(Mode::Exclusive, &["a"])).iter().map(|(_, w)| *w).eq([1]));
        locks.release(&keys(Mode::Exclusive, &["a", "d"]));
        locks.release(&keys(Mode::Shared, &["b"]));
        locks.release(&keys(Mode::Shared, &["b"]));
        locks.release(&keys(Mode::Exclusive, &["e"]));
        assert!(locks.is_idle());
    }

    #[test]
    fn a_later_waiter_does_not_overtake_an_earlier_conflicting_one() {
        let mut locks = LockManager::default();
        assert!(locks.acquire(keys(Mode::Exclusive, &["a"]), 1).is_some());
        assert!(locks.acquire(keys(Mode::Exclusive, &["a", "b"]), 2).is_none());
        // "b" is free, but waiter 2 wants it first.
        assert!(!locks.can_run(&keys(Mode::Exclusive, &["b"])));
        assert!(locks.acquire(keys(Mode::Exclusive, &["b"]), 3).is_none());
        let granted = locks.release(&keys(Mode::Exclusive, &["a"]));
        assert_eq!(granted.iter().map(|(_, w)| *w).collect::<Vec<_>>(), vec![2]);
        let granted = locks.release(&keys(Mode::Exclusive, &["a", "b"]));
        assert_eq!(granted.iter().map(|(_, w)| *w).collect::<Vec<_>>(), vec![3]);
        locks.release(&keys(Mode::Exclusive, &["b"]));
        assert!(locks.is_idle());
    }

    #[test]
    fn a_key_named_twice_is_locked_once_in_the_stronger_mode() {
        let mut set = LockSet::default();
        set.push(0, Bytes::from_static(b"k"), Mode::Shared);
        set.push(0, Bytes::from_static(b"k"), Mode::Exclusive);
        set.push(1, Bytes::from_static(b"k"), Mode::Shared);
        set.normalize();
        assert_eq!(set.keys.len(), 2);
        let mut locks = LockManager::default();
        assert!(locks.acquire(set.clone(), 1).is_some());
        assert!(!locks.can_run(&keys(Mode::Shared, &["k"])));
        locks.release(&set);
        assert!(locks.is_idle());
    }

    #[test]
    fn shard_lock_excludes_key_locks() {
        let mut locks = LockManager::default();
        let all = LockSet { shard: Some(Mode::Exclusive), keys: vec![] };
        assert!(locks.acquire(keys(Mode::Shared, &["a"]), 1).is_some());
        assert!(locks.acquire(all.clone(), 2).is_none());
        assert!(!locks.can_run(&keys(Mode::Shared, &["z"])), "queued behind the shard lock");
        let granted = locks.release(&keys(Mode::Shared, &["a"]));
        assert_eq!(granted.len(), 1);
        assert!(!locks.can_run(&keys(Mode::Shared, &["z"])));
        locks.release(&all);
        assert!(locks.is_idle());
    }
}

//! Evicting keys of this core to make room under `maxmemory`: the deletion and everything
//! a deletion owes the rest of the server, as Redis's `performEvictions` does for each key
//! (WATCH fails, `DEL` goes to the append-only log, the `evicted` keyspace event, the
//! `evicted_keys` count). Blocked clients are not woken: a deleted key serves nobody.
//!
//! Which key goes is the store's choice (`shoal_store::evict`); whether memory is over the
//! limit and how much to free is the server's (it knows the allocator). A key locked by a
//! transaction in flight is never evicted (the transaction may have read it), and nothing is
//! evicted while a shard-wide lock is held (FLUSHALL, SAVE's cut, a script holding the core)
//! or while a save walks this core's databases.

use std::rc::Rc;

use bytes::Bytes;

use crate::core::{now_ms, Core};

/// What one eviction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Keys removed.
    pub keys: usize,
    /// The policy found nothing (more) to evict on this core.
    pub exhausted: bool,
}

impl Core {
    /// Evicts keys of this core per `options` (its `now_ms` is replaced by the clock) while
    /// `more()` says memory must still be freed. `more` is asked before each key, so it can
    /// also bound the time spent (`maxmemory-eviction-tenacity`).
    pub fn evict(self: &Rc<Self>, mut options: shoal_store::evict::Options, mut more: impl FnMut(usize) -> bool) -> Evicted {
        options.now_ms = now_ms();
        let mut done = Evicted::default();
        let logging = crate::aof::LOG.is_active();
        // DEL records per database, in eviction order.
        let mut logged: Vec<(usize, Vec<u8>)> = Vec::new();
        {
            if self.shard_lock_held() {
                return done;
            }
            let watches = self.watches.borrow();
            let mut shard = self.shard_cell().borrow_mut();
            // While a save walks this core, a key deleted ahead of the walk is first copied
            // aside for the file, so evicting frees nothing until its chunk is written: the
            // loop would go on evicting key after key. Memory may pass the limit during a
            // save instead (as a fork's copies do in Redis); eviction resumes after it.
            if shard.dbs.iter().any(|db| db.snapshot().is_some()) {
                return done;
            }
            while more(done.keys) {
                let Some((db, key)) = shoal_store::evict::pick(&mut shard, options, |db, key| self.key_lock_held(db, key)) else {
                    done.exhausted = true;
                    break;
                };
                let removed = shard.dbs[db].evict(&key);
                debug_assert!(removed, "the store picks keys that exist");
                done.keys += 1;
                if !watches.is_empty() {
                    watches.touch(db, &key);
                }
                self.tracking_invalidate(std::iter::once(&key[..]));
                if logging {
                    let bytes = match logged.last_mut() {
                        Some((last, bytes)) if *last == db => bytes,
                        _ => {
                            logged.push((db, Vec::new()));
                            &mut logged.last_mut().expect("just pushed").1
                        }
                    };
                    crate::aof::encode(&[Bytes::from_static(b"DEL"), Bytes::from(Vec::from(key))], bytes);
                }
            }
        }
        for (db, bytes) in logged {
            self.aof_append(crate::aof::Record::Cmds { db, bytes });
        }
        self.tracking_flush();
        if done.keys > 0 {
            self.publish_store_reports();
        }
        done
    }
}

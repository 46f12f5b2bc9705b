//! A point-in-time snapshot of one database, taken while its core keeps serving (no fork).
//!
//! The walk visits the dict's buckets in SCAN order, a few at a time between commands. A
//! write to a key the walk has not reached yet first saves the key's old entry aside (in
//! `pending`), so the snapshot holds every key as it was when the snapshot began:
//!
//! - SCAN's reverse-binary cursor makes "the walk has passed this key" one comparison that
//!   survives resizes: a key is behind the walk when its hash, bit-reversed, is below the
//!   `frontier` (the cursor's own bit-reversed position, which only grows). A shrink makes
//!   the cursor revisit buckets; keys behind the frontier are skipped there, so none is
//!   saved twice.
//! - `handled` holds the positions (bit-reversed hashes) ahead of the walk that it must skip:
//!   those of keys saved early, and of keys created after the snapshot began (they are not
//!   in it). A key is saved early with every other key of its exact hash, so skipping by
//!   position never skips a key the snapshot still needs. It grows with the keys written
//!   during the snapshot (8 bytes each), not with the database.
//!
//! The values saved early are copies: the store knows nothing of the file format, so the
//! caller drains them ([`crate::Db::snapshot_drain`]) and encodes them with the walk's.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::db::Detached;

/// The state of a snapshot of one database. Lives in the [`crate::Db`] it walks, and moves
/// with it (SWAPDB): `db_index` is the index the database had when the snapshot began,
/// which is the one the snapshot records.
#[derive(Debug)]
pub struct Snapshot {
    /// The database's index when the snapshot began.
    pub db_index: usize,
    /// The dict cursor of the next bucket to walk.
    pub(crate) cursor: u64,
    /// Keys whose bit-reversed hash is below this are behind the walk.
    pub(crate) frontier: u64,
    /// The walk has visited every bucket.
    pub(crate) walked: bool,
    /// Positions ahead of the walk that it must skip (see the module docs).
    pub(crate) handled: HashSet<u64, BuildHasherDefault<PositionHasher>>,
    /// Entries saved early, waiting for the caller to encode them.
    pub(crate) pending: Vec<(Box<[u8]>, Detached)>,
}

impl Snapshot {
    pub(crate) fn new(db_index: usize) -> Self {
        Snapshot { db_index, cursor: 0, frontier: 0, walked: false, handled: HashSet::default(), pending: Vec::new() }
    }

    /// Whether the walk has visited every bucket (early-saved entries may still be pending).
    pub fn walked(&self) -> bool {
        self.walked
    }

    /// Keys written during the snapshot that it tracks (its memory beyond the pending copies).
    pub fn handled_len(&self) -> usize {
        self.handled.len()
    }
}

/// Hashes a position as itself: positions are already well-mixed hashes.
#[derive(Default)]
pub(crate) struct PositionHasher(u64);

impl Hasher for PositionHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};

    use crate::db::Db;
    use crate::value::{Str, Value};

    fn string(text: &str) -> Value {
        Value::Str(Str::from_bytes(text.as_bytes()))
    }

    fn text(value: &Value) -> String {
        match value {
            Value::Str(s) => String::from_utf8(s.to_bytes().to_vec()).unwrap(),
            other => panic!("a string, not {}", other.type_name()),
        }
    }

    /// Everything `db` holds: key -> (value, expiry).
    fn contents(db: &Db) -> BTreeMap<Vec<u8>, (String, Option<u64>)> {
        db.iter(0).map(|(key, entry)| (key.to_vec(), (text(&entry.value), db.expire_at(key)))).collect()
    }

    /// Runs random writes between snapshot steps; the snapshot must hold every key exactly
    /// once, as it was when the snapshot began, whatever the writes and resizes did.
    fn random_run(seed: u64) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut db = Db::new();
        let keys = rng.random_range(0..600);
        for i in 0..keys {
            db.set_with_expire(format!("k{i}").as_bytes(), string(&format!("v{i}")), rng.random_bool(0.2).then_some(1_000_000 + i), 0);
        }
        let before = contents(&db);
        db.snapshot_begin(3);
        let mut saved: BTreeMap<Vec<u8>, (String, Option<u64>)> = BTreeMap::new();
        let mut record = |key: &[u8], value: &Value, expire: Option<u64>| {
            let previous = saved.insert(key.to_vec(), (text(value), expire));
            assert!(previous.is_none(), "seed {seed}: {:?} saved twice", String::from_utf8_lossy(key));
        };
        let mut step = 0;
        loop {
            for _ in 0..rng.random_range(0..8) {
                let key = format!("k{}", rng.random_range(0..keys.max(1) * 2));
                let key = key.as_bytes();
                match rng.random_range(0..100) {
                    0..30 => db.set(key, string(&format!("new{step}")), 0),
                    30..50 => drop(db.remove(key)),
                    50..60 => drop(db.set_expire(key, Some(2_000_000))),
                    60..65 => drop(db.set_expire(key, None)),
                    65..75 => {
                        if let Some(detached) = db.take(key) {
                            db.insert_detached(format!("moved{step}").as_bytes(), detached, 0);
                        }
                    }
                    75..80 => {
                        // Mass deletes make the table shrink under the walk.
                        let victims: Vec<Vec<u8>> = db.iter(0).map(|(k, _)| k.to_vec()).filter(|_| rng.random_bool(0.7)).collect();
                        for victim in victims {
                            db.remove(&victim);
                        }
                    }
                    80..85 => {
                        // Mass inserts make it grow.
                        for i in 0..rng.random_range(0..300) {
                            db.set(format!("grow{step}-{i}").as_bytes(), string("g"), 0);
                        }
                    }
                    85..86 => drop(db.clear()),
                    _ => {
                        if let Some(entry) = db.lookup_write(key, 0) {
                            entry.value = string(&format!("changed{step}"));
                        }
                    }
                }
            }
            let walked = db.snapshot_step(rng.random_range(1..4), |key, entry, expire, _| record(key, &entry.value, expire));
            for (key, detached) in db.snapshot_drain() {
                record(&key, &detached.entry.value, detached.expire_at_ms);
            }
            step += 1;
            if walked {
                break;
            }
        }
        for (key, detached) in db.snapshot_drain() {
            record(&key, &detached.entry.value, detached.expire_at_ms);
        }
        let snapshot = db.snapshot_end().expect("a snapshot");
        assert_eq!(snapshot.db_index, 3);
        assert_eq!(saved, before, "seed {seed}: the snapshot is the database as it was at the start");
        db.check_invariants();
    }

    #[test]
    fn a_snapshot_holds_the_database_as_it_began_whatever_is_written_meanwhile() {
        for seed in 0..300 {
            random_run(seed);
        }
    }

    #[test]
    fn without_writes_the_walk_saves_every_key_once_and_copies_nothing() {
        let mut db = Db::new();
        for i in 0..1000 {
            db.set(format!("k{i}").as_bytes(), string("v"), 0);
        }
        db.snapshot_begin(0);
        let mut seen = std::collections::HashSet::new();
        while !db.snapshot_step(7, |key, _, _, _| assert!(seen.insert(key.to_vec()), "once")) {}
        assert_eq!(seen.len(), 1000);
        assert!(db.snapshot_drain().is_empty(), "no write, no copy");
        assert_eq!(db.snapshot().unwrap().handled_len(), 0);
    }
}

//! The hash value: a map from field to value, in Redis's two encodings.
//!
//! A hash starts as a `listpack`: field, value, field, value ... in one [`Listpack`], in
//! insertion order (an update keeps the field's place), so a small hash costs a few bytes per
//! pair and replies in the order Redis's does. Past `hash-max-listpack-entries` fields, or
//! when a field or value longer than `hash-max-listpack-value` bytes arrives, it converts to
//! a `hashtable` (the store's [`Dict`], values as [`ThinBytes`]: up to 7 bytes inside the
//! node, longer ones in one allocation) and
//! never converts back, as in Redis.
//!
//! This module knows nothing of commands or replies: it stores, finds, removes, iterates and
//! samples pairs; the command family decides what a reply looks like.

use crate::dict::Dict;
use crate::listpack::{Listpack, Pos};
use crate::thin::ThinBytes;
use crate::types::Limits;

/// A listpack never grows past this, whatever the directives say (Redis's `lpSafeToAdd`):
/// every write copies it, so a huge one would stall its core.
pub const LISTPACK_BYTES_MAX: u64 = 1 << 30;

enum Repr {
    /// Field, value, field, value ...: an even number of entries.
    Listpack(Listpack),
    /// Boxed so that a hash, which is itself boxed in a [`crate::Value`], stays as small as
    /// its listpack: most hashes are small.
    Table(Box<Dict<ThinBytes>>),
}

/// A hash: fields and their values, both byte strings.
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Listpack(lp) => Repr::Listpack(lp.clone()),
            Repr::Table(dict) => {
                let mut copy = Dict::new();
                for (field, value) in dict.iter() {
                    copy.insert_new(field, value.clone());
                }
                Repr::Table(Box::new(copy))
            }
        };
        Hash { repr }
    }
}

/// Two hashes are equal when they hold the same pairs, whatever their encodings and orders.
impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(field, value)| other.get(field) == Some(value))
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(field, value)| (field.escape_ascii().to_string(), value.escape_ascii().to_string()))).finish()
    }
}

/// Iterates either encoding's pairs without boxing.
enum Pairs<A, B> {
    Listpack(A),
    Table(B),
}

impl<'a, A, B> Iterator for Pairs<A, B>
where
    A: Iterator<Item = (&'a [u8], &'a [u8])>,
    B: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Pairs::Listpack(a) => a.next(),
            Pairs::Table(b) => b.next(),
        }
    }
}

/// The position of `field`'s value in a listpack of pairs.
fn listpack_find(lp: &Listpack, field: &[u8]) -> Option<(Pos, Pos)> {
    let mut at = lp.first();
    while let Some(field_pos) = at {
        let value_pos = lp.next(field_pos).expect("a field is followed by its value");
        if lp.get_at(field_pos) == field {
            return Some((field_pos, value_pos));
        }
        at = lp.next(value_pos);
    }
    None
}

impl Hash {
    /// An empty hash, listpack-encoded.
    pub fn new() -> Hash {
        Hash { repr: Repr::Listpack(Listpack::new()) }
    }

    /// Number of fields.
    /// A listpack hash of `pairs`, whose fields the caller has checked are distinct and
    /// within the listpack limits (a hash loaded from a file): no search per field.
    pub fn listpack_from_distinct<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Hash {
        let mut lp = Listpack::new();
        for (field, value) in pairs {
            lp.push_back(field);
            lp.push_back(value);
        }
        Hash { repr: Repr::Listpack(lp) }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.len() / 2,
            Repr::Table(dict) => dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Bytes this hash uses, for MEMORY USAGE: its own struct (the box a [`crate::Value`]
    /// holds), then a listpack's buffer exactly, or a hashtable's boxed [`Dict`], bucket
    /// array and nodes with the values' heap bytes, sampled over the first `samples` fields
    /// (all when 0; see [`Dict::heap_bytes`]). The allocator's rounding up is not counted.
    pub fn memory_usage(&self, samples: usize) -> usize {
        let repr = match &self.repr {
            Repr::Listpack(lp) => lp.allocated(),
            Repr::Table(dict) => std::mem::size_of::<Dict<ThinBytes>>() + dict.heap_bytes(samples, ThinBytes::allocated),
        };
        std::mem::size_of::<Hash>() + repr
    }

    /// Whether the hash is listpack-encoded (so it iterates in insertion order).
    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Listpack(_))
    }

    /// Warms the cache for lookups of `fields` that follow soon (a pipelined batch; see
    /// [`crate::prefetch`]). Only the hashtable form has misses worth overlapping: a
    /// listpack is one allocation.
    pub fn prefetch_fields(&self, fields: &[&[u8]]) {
        if let Repr::Table(dict) = &self.repr {
            dict.prefetch(fields, ThinBytes::prefetch);
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Listpack(lp) => listpack_find(lp, field).map(|(_, value_pos)| lp.get_at(value_pos)),
            Repr::Table(dict) => dict.get(field).map(ThinBytes::as_bytes),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts a listpack to a hashtable when any of `items` (fields and values about to be
    /// written) is longer than `hash-max-listpack-value`, or when they would take the
    /// listpack past [`LISTPACK_BYTES_MAX`], before they are written, as Redis's
    /// `hashTypeTryConversion` does: so HSET converts even when it only updates fields.
    pub fn convert_for<'a>(&mut self, items: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) {
        let Repr::Listpack(lp) = &self.repr else {
            return;
        };
        let mut total = lp.bytes_len() as u64;
        for item in items {
            if item.len() as u64 > limits.hash_max_listpack_value {
                return self.convert_to_table();
            }
            total += item.len() as u64;
        }
        if total > LISTPACK_BYTES_MAX {
            self.convert_to_table();
        }
    }

    /// Sets `field` to `value`; returns true when the field is new. Converts to a hashtable
    /// first when either is too long for a listpack, and after when the hash has too many
    /// fields.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        self.convert_for([field, value], limits);
        match &mut self.repr {
            Repr::Listpack(lp) => {
                let new = match listpack_find(lp, field) {
                    Some((_, value_pos)) => {
                        lp.replace_at(value_pos, value);
                        false
                    }
                    None => {
                        lp.push_back(field);
                        lp.push_back(value);
                        true
                    }
                };
                if self.len() as u64 > limits.hash_max_listpack_entries {
                    self.convert_to_table();
                }
                new
            }
            Repr::Table(dict) => match dict.get_mut(field) {
                Some(slot) => {
                    *slot = ThinBytes::new(value);
                    false
                }
                None => {
                    dict.insert_new(field, ThinBytes::new(value));
                    true
                }
            },
        }
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(lp) => match listpack_find(lp, field) {
                Some((field_pos, _)) => {
                    lp.remove_range_at(field_pos, 2);
                    true
                }
                None => false,
            },
            Repr::Table(dict) => dict.remove(field).is_some(),
        }
    }

    /// An empty hash already in its hashtable form, with room for `fields`: a load of a hash
    /// with more fields than `hash-max-listpack-entries` (Redis converts such a hash before
    /// it reads the fields, rather than growing a listpack first).
    pub fn table_with_capacity(fields: usize) -> Hash {
        let mut dict = Dict::new();
        dict.reserve(fields);
        Hash { repr: Repr::Table(Box::new(dict)) }
    }

    fn convert_to_table(&mut self) {
        let Repr::Listpack(lp) = &self.repr else {
            return;
        };
        let mut dict = Dict::new();
        let mut entries = lp.iter();
        while let (Some(field), Some(value)) = (entries.next(), entries.next()) {
            dict.insert_new(field, ThinBytes::new(value));
        }
        self.repr = Repr::Table(Box::new(dict));
    }

    /// The (field, value) pairs: insertion order for a listpack, table order otherwise.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        match &self.repr {
            Repr::Listpack(lp) => {
                let mut entries = lp.iter();
                Pairs::Listpack(std::iter::from_fn(move || Some((entries.next()?, entries.next()?))))
            }
            Repr::Table(dict) => Pairs::Table(dict.iter().map(|(field, value)| (field, value.as_bytes()))),
        }
    }

    /// One pair chosen at random, None when empty.
    pub fn random_pair(&self, rng: &mut impl rand::Rng) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Listpack(lp) => {
                if lp.is_empty() {
                    return None;
                }
                let index = rng.random_range(0..self.len()) as i64;
                let field_pos = lp.seek(2 * index).expect("the index is in range");
                let value_pos = lp.next(field_pos).expect("a field is followed by its value");
                Some((lp.get_at(field_pos), lp.get_at(value_pos)))
            }
            Repr::Table(dict) => dict.random_entry(rng).map(|(field, value)| (field, value.as_bytes())),
        }
    }

    /// Calls `visit` with `count` pairs chosen at random, repeats allowed (HRANDFIELD with a
    /// negative count). Memory is bounded by the hash's size, never by `count`.
    pub fn sample_with_repeats(&self, count: usize, rng: &mut impl rand::Rng, mut visit: impl FnMut(&[u8], &[u8])) {
        if self.is_empty() {
            return;
        }
        match &self.repr {
            Repr::Listpack(lp) => {
                // Walking a listpack to an index is linear; locate every field once instead.
                let fields: Vec<Pos> = std::iter::successors(lp.first(), |&pos| lp.next(pos).and_then(|value| lp.next(value))).collect();
                for _ in 0..count {
                    let field_pos = fields[rng.random_range(0..fields.len())];
                    let value_pos = lp.next(field_pos).expect("a field is followed by its value");
                    visit(lp.get_at(field_pos), lp.get_at(value_pos));
                }
            }
            Repr::Table(dict) => {
                for _ in 0..count {
                    let (field, value) = dict.random_entry(rng).expect("not empty");
                    visit(field, value.as_bytes());
                }
            }
        }
    }

    /// Calls `visit` with `count` distinct pairs chosen at random, in iteration order; every
    /// pair when `count` is at least the size (HRANDFIELD with a positive count).
    pub fn sample_distinct(&self, count: usize, rng: &mut impl rand::Rng, mut visit: impl FnMut(&[u8], &[u8])) {
        let len = self.len();
        if count >= len {
            self.iter().for_each(|(field, value)| visit(field, value));
            return;
        }
        let mut chosen = rand::seq::index::sample(rng, len, count).into_vec();
        chosen.sort_unstable();
        let mut chosen = chosen.into_iter().peekable();
        for (index, (field, value)) in self.iter().enumerate() {
            match chosen.peek() {
                None => break,
                Some(&next) if next == index => {
                    chosen.next();
                    visit(field, value);
                }
                Some(_) => {}
            }
        }
    }

    /// One step of HSCAN from `cursor`: a listpack visits every pair and returns 0, as Redis
    /// does; a hashtable visits one bucket and returns the next cursor (0 when done).
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Listpack(_) => {
                self.iter().for_each(|(field, value)| visit(field, value));
                0
            }
            Repr::Table(dict) => dict.scan_step(cursor, |field, value| visit(field, value.as_bytes())),
        }
    }

    /// Asserts the invariants: a listpack holds whole pairs without repeated fields; a table
    /// is consistent.
    pub fn check_invariants(&self) {
        match &self.repr {
            Repr::Listpack(lp) => {
                assert_eq!(lp.len() % 2, 0, "a listpack holds whole pairs");
                let mut fields = std::collections::HashSet::new();
                for (field, _) in self.iter() {
                    assert!(fields.insert(field), "a field appears once");
                }
            }
            Repr::Table(dict) => dict.check_invariants(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, BTreeSet};

    fn limits(entries: u64, value: u64) -> Limits {
        Limits { hash_max_listpack_entries: entries, hash_max_listpack_value: value, ..Limits::default() }
    }

    #[test]
    fn a_hash_is_as_small_as_its_listpack() {
        assert_eq!(std::mem::size_of::<Hash>(), std::mem::size_of::<Listpack>());
    }

    #[test]
    fn a_table_value_is_one_word() {
        assert_eq!(std::mem::size_of::<ThinBytes>(), 8);
        assert_eq!(ThinBytes::new(b"").as_bytes(), b"");
        assert_eq!(ThinBytes::new(&[7u8; 23]).as_bytes(), &[7u8; 23]);
    }

    #[test]
    fn a_listpack_keeps_insertion_order_and_updates_in_place() {
        let limits = Limits::default();
        let mut h = Hash::new();
        assert!(h.set(b"b", b"1", &limits));
        assert!(h.set(b"a", b"2", &limits));
        assert!(!h.set(b"b", b"3", &limits));
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(pairs, vec![(&b"b"[..], &b"3"[..]), (&b"a"[..], &b"2"[..])]);
        assert_eq!(h.encoding_name(), "listpack");
        h.check_invariants();
    }

    #[test]
    fn too_many_fields_convert_to_a_hashtable() {
        let limits = limits(3, 64);
        let mut h = Hash::new();
        for field in [&b"a"[..], b"b", b"c"] {
            h.set(field, b"v", &limits);
        }
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"d", b"v", &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        h.remove(b"d");
        h.remove(b"c");
        assert_eq!(h.encoding_name(), "hashtable", "never back");
        assert_eq!(h.len(), 2);
        h.check_invariants();
    }

    #[test]
    fn a_long_field_or_value_converts_even_on_update() {
        let limits = limits(128, 4);
        let mut h = Hash::new();
        h.set(b"f", b"1234", &limits);
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b"f", b"12345", &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"12345"[..]));
        let mut h = Hash::new();
        h.set(b"f", b"v", &limits);
        h.convert_for([&b"f"[..], b"long value"], &limits);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"v"[..]));
    }

    /// A hash of `fields` fields "field:NNNNNN" with 10-byte values, listpack-encoded while
    /// `listpack` and the default limits allow it, else a hashtable from the start.
    fn uniform_hash(fields: usize, listpack: bool) -> Hash {
        let limits = if listpack { Limits::default() } else { limits(0, 64) };
        let mut h = Hash::new();
        for i in 0..fields {
            h.set(format!("field:{i:06}").as_bytes(), format!("value:{i:04}").as_bytes(), &limits);
        }
        assert_eq!(h.encoding_name(), if listpack { "listpack" } else { "hashtable" });
        h
    }

    #[test]
    fn a_hashtables_estimate_grows_about_linearly_with_its_fields() {
        let (small, big) = (uniform_hash(100, false).memory_usage(0), uniform_hash(1000, false).memory_usage(0));
        // Ten times the nodes and value buffers (29 + 11 bytes a field); what is not ten
        // times is the fixed part (72 bytes) and the bucket array (64 and 512 slots: 5 and
        // 4 bytes a field), so the ratio stays within 9x to 11x (9.6x when written).
        assert!(big > small * 9, "1000 fields: {big} bytes, 100 fields: {small} bytes");
        assert!(big < small * 11, "1000 fields: {big} bytes, 100 fields: {small} bytes");
    }

    #[test]
    fn a_hashtables_estimate_from_five_samples_is_close_to_the_full_count() {
        let h = uniform_hash(10_000, false);
        let (exact, sampled) = (h.memory_usage(0), h.memory_usage(5));
        // Every field and value has the same length, so only rounding separates the two.
        assert!(sampled.abs_diff(exact) * 4 < exact, "sampled {sampled} bytes, exact {exact} bytes");
        assert_eq!(uniform_hash(3, false).memory_usage(5), uniform_hash(3, false).memory_usage(0), "fewer fields than samples: all measured");
    }

    #[test]
    fn a_listpack_hash_is_smaller_than_the_same_pairs_in_a_hashtable() {
        let (listpack, table) = (uniform_hash(100, true).memory_usage(0), uniform_hash(100, false).memory_usage(0));
        assert!(listpack < table, "listpack {listpack} bytes, hashtable {table} bytes");
        // A listpack is its buffer: a field of 12 bytes and a value of 10 take 13 + 1 and
        // 11 + 1 bytes.
        assert_eq!(listpack, std::mem::size_of::<Hash>() + 100 * (14 + 12));
    }

    #[test]
    fn sampling_distinct_pairs_returns_each_at_most_once() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for entries in [1000, 2] {
            let limits = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..20 {
                h.set(format!("f{i}").as_bytes(), format!("v{i}").as_bytes(), &limits);
            }
            for count in [0, 1, 5, 19, 20, 100] {
                let mut seen = BTreeSet::new();
                h.sample_distinct(count, &mut rng, |field, value| {
                    assert_eq!(h.get(field), Some(value));
                    assert!(seen.insert(field.to_vec()), "distinct");
                });
                assert_eq!(seen.len(), count.min(20));
            }
            let mut n = 0;
            h.sample_with_repeats(50, &mut rng, |field, value| {
                assert_eq!(h.get(field), Some(value));
                n += 1;
            });
            assert_eq!(n, 50);
            assert!(h.random_pair(&mut rng).is_some_and(|(f, v)| h.get(f) == Some(v)));
        }
        assert_eq!(Hash::new().random_pair(&mut rng), None);
    }

    #[test]
    fn a_full_scan_of_a_table_returns_every_pair() {
        let limits = limits(0, 64);
        let mut h = Hash::new();
        for i in 0..100 {
            h.set(format!("f{i}").as_bytes(), b"v", &limits);
        }
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = h.scan_step(cursor, |field, _| {
                seen.insert(field.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 100);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>),
        Remove(u8),
        Get(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![proptest::collection::vec(any::<u8>(), 0..6), proptest::collection::vec(any::<u8>(), 20..40)];
        prop_oneof![
            4 => (0u8..24, value).prop_map(|(f, v)| Op::Set(f, v)),
            2 => (0u8..24).prop_map(Op::Remove),
            1 => (0u8..24).prop_map(Op::Get),
        ]
    }

    /// Field names: mostly short, some long enough to force a conversion.
    fn field(n: u8) -> Vec<u8> {
        if n % 11 == 10 {
            vec![b'F'; 10 + n as usize]
        } else {
            format!("f{n}").into_bytes()
        }
    }

    proptest! {
        #[test]
        fn hash_behaves_like_a_map(ops in proptest::collection::vec(op(), 0..120), entries in 0u64..12, value in 0u64..24) {
            let limits = limits(entries, value);
            let mut h = Hash::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            // Insertion order, which a listpack must keep.
            let mut order: Vec<Vec<u8>> = Vec::new();
            let mut converted = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let f = field(f);
                        let too_long = f.len() as u64 > value || v.len() as u64 > value;
                        let new = h.set(&f, &v, &limits);
                        prop_assert_eq!(new, model.insert(f.clone(), v).is_none());
                        if new {
                            order.push(f);
                        }
                        converted |= too_long || model.len() as u64 > entries;
                    }
                    Op::Remove(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                        order.retain(|o| o != &f);
                    }
                    Op::Get(f) => {
                        let f = field(f);
                        prop_assert_eq!(h.get(&f), model.get(&f).map(|v| v.as_slice()));
                    }
                }
                h.check_invariants();
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.encoding_name(), if converted { "hashtable" } else { "listpack" });
                let pairs: BTreeMap<Vec<u8>, Vec<u8>> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                prop_assert_eq!(&pairs, &model);
                if h.is_listpack() {
                    let fields: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).collect();
                    prop_assert_eq!(&fields, &order);
                }
                let copy = h.clone();
                prop_assert_eq!(&copy, &h);
                prop_assert_eq!(copy.encoding_name(), h.encoding_name());
            }
        }
    }
}

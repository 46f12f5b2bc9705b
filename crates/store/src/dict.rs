//! A chained hash table keyed by byte strings, with Redis's SCAN cursor.
//!
//! We keep our own table rather than `std`'s because SCAN needs what Redis's `dict` gives:
//! a cursor that visits buckets in reverse-binary order, so that a full iteration returns
//! every key present from its start to its end even when the table grows or shrinks
//! between calls. The price is a node per key; a compact node layout is future work.
//!
//! Resizing happens at once (not incrementally as in Redis). A resize of a very large table
//! therefore pauses its core for as long as rehashing takes.

use std::hash::BuildHasher;

type Link<V> = Option<Box<Node<V>>>;

/// Keys up to this long live inside the node: one allocation and one cache miss fewer per
/// key for the short keys most applications use.
const INLINE_KEY_LEN_MAX: usize = 22;

enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY_LEN_MAX] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(key: &[u8]) -> Key {
        if key.len() <= INLINE_KEY_LEN_MAX {
            let mut bytes = [0u8; INLINE_KEY_LEN_MAX];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline { len: key.len() as u8, bytes }
        } else {
            Key::Heap(key.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(bytes) => bytes,
        }
    }
}

struct Node<V> {
    key: Key,
    value: V,
    next: Link<V>,
}

/// Smallest bucket count once the table holds anything.
const BUCKETS_MIN: usize = 4;

/// A hash table from byte-string keys to `V`.
pub struct Dict<V> {
    buckets: Vec<Link<V>>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
    pub fn new() -> Self {
        Dict { buckets: Vec::new(), len: 0, hasher: foldhash::fast::RandomState::default() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (for tests and INFO-style reporting).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        debug_assert!(self.buckets.len().is_power_of_two(), "bucket count is a power of two");
        (self.hasher.hash_one(key) as usize) & (self.buckets.len() - 1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut link = &self.buckets[self.bucket_of(key)];
        while let Some(node) = link {
            if node.key.as_bytes() == key {
                return Some(&node.value);
            }
            link = &node.next;
        }
        None
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.buckets.is_empty() {
            return None;
        }
        let bucket = self.bucket_of(key);
        let mut link = &mut self.buckets[bucket];
        while let Some(node) = link {
            if node.key.as_bytes() == key {
                return Some(&mut node.value);
            }
            link = &mut node.next;
        }
        None
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(key, value);
        None
    }

    /// Inserts a key known to be absent and returns a reference to its value.
    pub fn insert_new(&mut self, key: &[u8], value: V) -> &mut V {
        debug_assert!(!self.contains_key(key), "insert_new on a present key");
        self.grow_if_needed();
        let bucket = self.bucket_of(key);
        let next = self.buckets[bucket].take();
        self.buckets[bucket] = Some(Box::new(Node { key: Key::new(key), value, next }));
        self.len += 1;
        &mut self.buckets[bucket].as_mut().expect("just inserted").value
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        if self.buckets.is_empty() {
            return None;
        }
        let bucket = self.bucket_of(key);
        let mut link = &mut self.buckets[bucket];
        loop {
            match link {
                None => return None,
                Some(node) if node.key.as_bytes() == key => {
                    let mut node = link.take().expect("matched");
                    *link = node.next.take();
                    self.len -= 1;
                    self.shrink_if_needed();
                    return Some(node.value);
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    /// Removes everything and returns the old contents as a dict, so a caller can drop it
    /// elsewhere (lazy free) or at once.
    pub fn take(&mut self) -> Dict<V> {
        std::mem::take(self)
    }

    fn grow_if_needed(&mut self) {
        if self.buckets.is_empty() {
            self.resize(BUCKETS_MIN);
        } else if self.len >= self.buckets.len() {
            self.resize(self.buckets.len() * 2);
        }
    }

    fn shrink_if_needed(&mut self) {
        // Shrink when under 1/8 full, as Redis does below 10%, keeping the load factor
        // high enough that random sampling finds a non-empty bucket quickly.
        if self.buckets.len() > BUCKETS_MIN && self.len * 8 < self.buckets.len() {
            let target = (self.len.max(1)).next_power_of_two().max(BUCKETS_MIN);
            self.resize(target);
        }
    }

    fn resize(&mut self, bucket_count: usize) {
        assert!(bucket_count.is_power_of_two(), "bucket count {bucket_count} is a power of two");
        let old = std::mem::take(&mut self.buckets);
        self.buckets.resize_with(bucket_count, || None);
        for mut link in old {
            while let Some(mut node) = link {
                link = node.next.take();
                let bucket = self.bucket_of(node.key.as_bytes());
                node.next = self.buckets[bucket].take();
                self.buckets[bucket] = Some(node);
            }
        }
    }

    /// Calls `visit` for every entry of the bucket at `cursor` and returns the next cursor
    /// (0 when the iteration is complete). The cursor walks buckets in reverse-binary order,
    /// as Redis's `dictScan`, so that resizes between calls neither skip nor lose keys.
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], &V)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut link = &self.buckets[(cursor & mask) as usize];
        while let Some(node) = link {
            visit(node.key.as_bytes(), &node.value);
            link = &node.next;
        }
        // Increment the reversed cursor: set the unmasked bits, reverse, add one, reverse.
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// A uniformly chosen bucket's random entry (Redis's `dictGetRandomKey` is similarly
    /// biased towards short chains).
    pub fn random_entry(&self, rng: &mut impl rand::Rng) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        loop {
            let bucket = rng.random_range(0..self.buckets.len());
            let mut chain_len = 0;
            let mut link = &self.buckets[bucket];
            while let Some(node) = link {
                chain_len += 1;
                link = &node.next;
            }
            if chain_len == 0 {
                continue;
            }
            let mut pick = rng.random_range(0..chain_len);
            let mut link = &self.buckets[bucket];
            while let Some(node) = link {
                if pick == 0 {
                    return Some((node.key.as_bytes(), &node.value));
                }
                pick -= 1;
                link = &node.next;
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.buckets.iter().flat_map(|bucket| {
            let mut link = bucket.as_deref();
            std::iter::from_fn(move || {
                let node = link?;
                link = node.next.as_deref();
                Some((node.key.as_bytes(), &node.value))
            })
        })
    }

    /// Removes the entries for which `keep` returns false; returns how many it removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &mut V) -> bool) -> usize {
        let mut removed = 0;
        for bucket in &mut self.buckets {
            let mut link = bucket;
            loop {
                let drop_this = match link {
                    None => break,
                    Some(node) => !keep(node.key.as_bytes(), &mut node.value),
                };
                if drop_this {
                    let mut node = link.take().expect("present");
                    *link = node.next.take();
                    removed += 1;
                } else {
                    link = &mut link.as_mut().expect("present").next;
                }
            }
        }
        self.len -= removed;
        self.shrink_if_needed();
        removed
    }

    /// Asserts the table's invariants: the count matches, every key sits in its bucket,
    /// and no key appears twice.
    pub fn check_invariants(&self) {
        let mut count = 0;
        let mut seen = std::collections::HashSet::new();
        for (index, bucket) in self.buckets.iter().enumerate() {
            let mut link = bucket;
            while let Some(node) = link {
                assert_eq!(self.bucket_of(node.key.as_bytes()), index, "key sits in its own bucket");
                assert!(seen.insert(node.key.as_bytes().to_vec()), "key appears once");
                count += 1;
                link = &node.next;
            }
        }
        assert_eq!(count, self.len, "len counts the nodes");
        if !self.buckets.is_empty() {
            assert!(self.buckets.len().is_power_of_two(), "bucket count is a power of two");
        }
    }
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        // Unlink chains iteratively so a long chain cannot overflow the stack.
        for bucket in &mut self.buckets {
            let mut link = bucket.take();
            while let Some(mut node) = link {
                link = node.next.take();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn insert_get_remove_round_trip() {
        let mut d = Dict::new();
        assert_eq!(d.insert(b"a", 1), None);
        assert_eq!(d.insert(b"a", 2), Some(1));
        assert_eq!(d.get(b"a"), Some(&2));
        assert_eq!(d.remove(b"a"), Some(2));
        assert!(d.is_empty());
        d.check_invariants();
    }

    #[test]
    fn full_scan_returns_every_key_despite_resizes_between_steps() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            d.insert(i.to_string().as_bytes(), i);
        }
        let present: BTreeSet<Vec<u8>> = d.iter().map(|(k, _)| k.to_vec()).collect();
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = d.scan_step(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            step += 1;
            // Grow and shrink the table while scanning; keys present throughout must be seen.
            if step % 50 == 0 {
                for i in 0..2000u32 {
                    d.insert(format!("extra{step}-{i}").as_bytes(), 0);
                }
            }
            if step % 75 == 0 {
                let extra: Vec<Vec<u8>> = d.iter().filter(|(k, _)| k.starts_with(b"extra")).map(|(k, _)| k.to_vec()).collect();
                for k in extra {
                    d.remove(&k);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        assert!(present.is_subset(&seen), "every original key was returned");
        d.check_invariants();
    }

    proptest! {
        #[test]
        fn dict_behaves_like_a_map(ops in proptest::collection::vec((0u8..3, 0u16..64, any::<u32>()), 0..400)) {
            let mut d = Dict::new();
            let mut model = BTreeMap::new();
            for (op, key, value) in ops {
                let key = key.to_be_bytes();
                match op {
                    0 => prop_assert_eq!(d.insert(&key, value), model.insert(key, value)),
                    1 => prop_assert_eq!(d.remove(&key), model.remove(&key)),
                    _ => prop_assert_eq!(d.get(&key), model.get(&key)),
                }
                d.check_invariants();
            }
            prop_assert_eq!(d.len(), model.len());
        }
    }
}

//! The sorted set value: members with f64 scores, ordered by score then member bytes.
//!
//! Two encodings, as Redis: `listpack` while small (members and scores alternate in one
//! [`Listpack`], in order; a score is its 8 IEEE bytes) and `skiplist` past
//! `zset-max-listpack-entries` / `zset-max-listpack-value` ([`skiplist::Skiplist`]: O(log n)
//! rank and rank-indexed access). Like Redis, a set never converts back on its own; the
//! *STORE commands pick the encoding of what they build with [`ZSet::from_sorted`].
//!
//! Scores are never NaN (callers refuse them). A zero stored in a listpack loses its sign, as
//! Redis's listpack stores "-0" as the integer 0.
//!
//! This module knows nothing of replies or commands; ranges are given as predicates and ranks.

pub mod skiplist;

use crate::listpack::{Listpack, Pos};
use crate::types::{Limits, Packed, PackedMut, PackedRef};
use skiplist::{SkipIter, Skiplist};

/// A sorted set. Twelve bytes, so that it sits in its key's [`crate::Value`]: a listpack
/// itself, or a boxed skiplist.
pub struct ZSet {
    repr: Packed<Skiplist>,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

impl Clone for ZSet {
    fn clone(&self) -> Self {
        ZSet { repr: self.repr.clone() }
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(m, s)| (m.escape_ascii().to_string(), s))).finish()
    }
}

/// A listpack score's bytes: an integral score of magnitude under 2^55 as the fewest
/// little-endian two's complement bytes (none for 0), any other as its 8 IEEE bytes. Redis's
/// listpack stores integral scores as integers too; most scores in practice are.
fn score_bytes(score: f64, buf: &mut [u8; 8]) -> &[u8] {
    if score.fract() == 0.0 && score.abs() < (1u64 << 55) as f64 {
        let value = score as i64;
        let fits = |len: usize| {
            if len == 0 {
                return value == 0;
            }
            let half = 1i64 << (8 * len - 1);
            (-half..half).contains(&value)
        };
        let mut len = 0;
        while len < 7 && !fits(len) {
            len += 1;
        }
        buf[..len].copy_from_slice(&value.to_le_bytes()[..len]);
        return &buf[..len];
    }
    *buf = score.to_le_bytes();
    &buf[..]
}

fn read_score(bytes: &[u8]) -> f64 {
    if bytes.len() == 8 {
        return f64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    }
    debug_assert!(bytes.len() < 8, "an integral score has at most 7 bytes");
    let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
    let mut le = [fill; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    i64::from_le_bytes(le) as f64
}

fn before(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> bool {
    a_score < b_score || (a_score == b_score && a_member < b_member)
}

impl ZSet {
    /// An empty set in the listpack encoding.
    pub fn new() -> Self {
        ZSet { repr: Packed::listpack(Listpack::new()) }
    }

    /// A set of `items`, given in (score, member) order without duplicates, in the encoding
    /// Redis gives a result of this size (the *STORE commands).
    pub fn from_sorted(items: impl IntoIterator<Item = (impl AsRef<[u8]>, f64)>, len: usize, member_len_max: usize, limits: &Limits) -> Self {
        let small = len as u64 <= limits.zset_max_listpack_entries && member_len_max as u64 <= limits.zset_max_listpack_value;
        let mut zset = if small { ZSet::new() } else { ZSet { repr: Packed::boxed(Box::new(Skiplist::with_capacity(len))) } };
        match zset.repr.get_mut() {
            PackedMut::Listpack(lp) => {
                for (member, score) in items {
                    let score = if score == 0.0 { 0.0 } else { score };
                    lp.push_back(member.as_ref());
                    lp.push_back(score_bytes(score, &mut [0; 8]));
                }
            }
            PackedMut::Boxed(sl) => {
                for (member, score) in items {
                    sl.insert(member.as_ref(), score);
                }
            }
        }
        zset
    }

    pub fn len(&self) -> usize {
        match self.repr.get() {
            PackedRef::Listpack(lp) => lp.len() / 2,
            PackedRef::Boxed(sl) => sl.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr.get() {
            PackedRef::Listpack(_) => "listpack",
            PackedRef::Boxed(_) => "skiplist",
        }
    }

    /// Heap bytes this sorted set uses, for MEMORY USAGE (the value holds its twelve bytes):
    /// a listpack's buffer exactly, or a boxed skiplist (see
    /// [`Skiplist::memory_usage`]: its arrays exactly, long members sampled over the first
    /// `samples`, all when 0). The allocator's rounding up is not counted.
    pub fn memory_usage(&self, samples: usize) -> usize {
        let repr = match self.repr.get() {
            PackedRef::Listpack(lp) => lp.allocated(),
            PackedRef::Boxed(sl) => sl.memory_usage(samples),
        };
        self.repr.box_bytes() + repr
    }

    /// The listpack position of `member`'s entry, and its score.
    fn lp_find(lp: &Listpack, member: &[u8]) -> Option<(Pos, f64)> {
        let mut pos = lp.first();
        while let Some(p) = pos {
            let score_pos = lp.next(p).expect("a member is followed by its score");
            if lp.get_at(p) == member {
                return Some((p, read_score(lp.get_at(score_pos))));
            }
            pos = lp.next(score_pos);
        }
        None
    }

    fn lp_insert(lp: &mut Listpack, member: &[u8], score: f64) {
        let score = if score == 0.0 { 0.0 } else { score };
        let mut pos = lp.first();
        while let Some(p) = pos {
            let score_pos = lp.next(p).expect("a member is followed by its score");
            if before(score, member, read_score(lp.get_at(score_pos)), lp.get_at(p)) {
                break;
            }
            pos = lp.next(score_pos);
        }
        let at = pos.unwrap_or(lp.bytes_len());
        lp.insert_at(at, score_bytes(score, &mut [0; 8]));
        lp.insert_at(at, member);
    }

    /// Prefetches what reading the sorted set touches first: its listpack, or its
    /// skiplist's header (see [`crate::prefetch`]).
    #[inline]
    pub fn prefetch(&self) {
        self.repr.prefetch();
    }

    /// Warms the cache for lookups of `members` that follow soon (a pipelined batch; see
    /// [`crate::prefetch`]). Only the skiplist form has misses worth overlapping.
    pub fn prefetch_members(&self, members: &[&[u8]]) {
        if let PackedRef::Boxed(skiplist) = self.repr.get() {
            skiplist.prefetch(members);
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self.repr.get() {
            PackedRef::Listpack(lp) => Self::lp_find(lp, member).map(|(_, s)| s),
            PackedRef::Boxed(sl) => sl.score(member),
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.score(member).is_some()
    }

    /// Converts to the skiplist encoding (past the listpack limits).
    pub fn convert_to_skiplist(&mut self) {
        if let PackedRef::Listpack(lp) = self.repr.get() {
            // Room for the member about to be added too.
            let mut sl = Skiplist::with_capacity(lp.len() / 2 + 1);
            for (member, score) in Self::lp_pairs(lp) {
                sl.insert(member, score);
            }
            self.repr = Packed::boxed(Box::new(sl));
        }
    }

    fn lp_pairs(lp: &Listpack) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut it = lp.iter();
        std::iter::from_fn(move || {
            let member = it.next()?;
            let score = it.next().expect("a member is followed by its score");
            Some((member, read_score(score)))
        })
    }

    /// Inserts a member that is not present, converting to the skiplist encoding first when
    /// the listpack would pass `limits` (Redis's zsetAdd).
    pub fn insert(&mut self, member: &[u8], score: f64, limits: &Limits) {
        debug_assert!(!score.is_nan(), "scores are never NaN");
        if let PackedRef::Listpack(lp) = self.repr.get() {
            if (lp.len() / 2 + 1) as u64 > limits.zset_max_listpack_entries || member.len() as u64 > limits.zset_max_listpack_value {
                self.convert_to_skiplist();
            }
        }
        match self.repr.get_mut() {
            PackedMut::Listpack(lp) => Self::lp_insert(lp, member, score),
            PackedMut::Boxed(sl) => sl.insert(member, score),
        }
    }

    /// Changes the score of a present member.
    pub fn set_score(&mut self, member: &[u8], score: f64) {
        debug_assert!(!score.is_nan(), "scores are never NaN");
        match self.repr.get_mut() {
            PackedMut::Listpack(lp) => {
                let (pos, _) = Self::lp_find(lp, member).expect("set_score of a present member");
                lp.remove_range_at(pos, 2);
                Self::lp_insert(lp, member, score);
            }
            PackedMut::Boxed(sl) => sl.set_score(member, score),
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self.repr.get_mut() {
            PackedMut::Listpack(lp) => {
                let (pos, score) = Self::lp_find(lp, member)?;
                lp.remove_range_at(pos, 2);
                Some(score)
            }
            PackedMut::Boxed(sl) => sl.remove(member),
        }
    }

    /// The 0-based ascending rank of `member`, with its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match self.repr.get() {
            PackedRef::Listpack(lp) => Self::lp_pairs(lp).enumerate().find(|(_, (m, _))| *m == member).map(|(i, (_, s))| (i, s)),
            PackedRef::Boxed(sl) => sl.rank(member),
        }
    }

    /// The member and score at 0-based ascending `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.iter_from(rank, false).next()
    }

    /// How many members from the lowest satisfy `pred`, which must hold on a prefix of the
    /// order (a range's lower bound). O(log n) in the skiplist encoding.
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self.repr.get() {
            PackedRef::Listpack(lp) => Self::lp_pairs(lp).take_while(|(m, s)| pred(*s, m)).count(),
            PackedRef::Boxed(sl) => sl.count_while(pred),
        }
    }

    /// Every member in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    /// Members starting at ascending rank `rank`, going up (`rev` false) or down.
    pub fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        match self.repr.get() {
            PackedRef::Listpack(lp) => {
                let pos = if rank < lp.len() / 2 { lp.seek(2 * rank as i64) } else { None };
                Iter::Listpack { lp, pos, rev }
            }
            PackedRef::Boxed(sl) => Iter::Skiplist(sl.iter_from(rank, rev)),
        }
    }

    /// Removes `count` members from ascending rank `start`; returns how many it removed.
    pub fn remove_range(&mut self, start: usize, count: usize) -> usize {
        let count = count.min(self.len().saturating_sub(start));
        if count == 0 {
            return 0;
        }
        match self.repr.get_mut() {
            PackedMut::Listpack(lp) => {
                let pos = lp.seek(2 * start as i64).expect("start is within the set");
                lp.remove_range_at(pos, 2 * count);
            }
            PackedMut::Boxed(sl) => {
                let members: Vec<Box<[u8]>> = sl.iter_from(start, false).take(count).map(|(m, _)| m.into()).collect();
                for member in members {
                    sl.remove(&member);
                }
            }
        }
        count
    }

    /// One step of a ZSCAN: calls `visit` for some members and returns the next cursor (0 when
    /// done). A listpack is returned whole, as Redis does.
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        match self.repr.get() {
            PackedRef::Listpack(lp) => {
                for (member, score) in Self::lp_pairs(lp) {
                    visit(member, score);
                }
                0
            }
            PackedRef::Boxed(sl) => sl.scan_step(cursor, visit),
        }
    }

    /// Asserts the encoding's invariants: order, no duplicates, no NaN.
    pub fn check_invariants(&self) {
        match self.repr.get() {
            PackedRef::Listpack(lp) => {
                assert_eq!(lp.len() % 2, 0, "members and scores pair up");
                let pairs: Vec<(&[u8], f64)> = Self::lp_pairs(lp).collect();
                for pair in &pairs {
                    assert!(!pair.1.is_nan(), "no NaN score");
                    assert!(!(pair.1 == 0.0 && pair.1.is_sign_negative()), "a listpack zero has no sign");
                }
                for w in pairs.windows(2) {
                    assert!(before(w[0].1, w[0].0, w[1].1, w[1].0), "listpack in (score, member) order");
                }
            }
            PackedRef::Boxed(sl) => sl.check_invariants(),
        }
    }
}

/// Members with their scores, in either direction from a starting rank.
pub enum Iter<'a> {
    Listpack { lp: &'a Listpack, pos: Option<Pos>, rev: bool },
    Skiplist(SkipIter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Listpack { lp, pos, rev } => {
                let at = (*pos)?;
                let score_pos = lp.next(at).expect("a member is followed by its score");
                let item = (lp.get_at(at), read_score(lp.get_at(score_pos)));
                *pos = if *rev { lp.prev(at).and_then(|p| lp.prev(p)) } else { lp.next(score_pos) };
                Some(item)
            }
            Iter::Skiplist(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn limits(entries: u64, value: u64) -> Limits {
        Limits { zset_max_listpack_entries: entries, zset_max_listpack_value: value, ..Limits::default() }
    }

    /// A sorted set of `len` members of `member_len` bytes with integral scores, in a
    /// listpack while `listpack`, else in a skiplist.
    fn uniform_zset(len: usize, member_len: usize, listpack: bool) -> ZSet {
        let limits = if listpack { Limits::default() } else { limits(0, 64) };
        let mut z = ZSet::new();
        for i in 0..len {
            z.insert(format!("{i:0member_len$}").as_bytes(), i as f64, &limits);
        }
        assert_eq!(z.encoding_name(), if listpack { "listpack" } else { "skiplist" });
        z
    }

    #[test]
    fn a_skiplists_estimate_grows_about_linearly_with_its_members() {
        for member_len in [10, 40] {
            let (small, big) = (uniform_zset(100, member_len, false).memory_usage(0), uniform_zset(1000, member_len, false).memory_usage(0));
            // The node arena, the tower pool and the index are counted by capacity, and they
            // double: to 128 and 1,024 nodes, 128 and 1,024 levels, 256 and 2,048 slots, so
            // they take exactly 8x. Members past 22 bytes have their own allocations, 10x;
            // the fixed part (about 270 bytes) pulls the ratio down: 7x to 10x (7.8x and 8.4x
            // when written).
            assert!(big > small * 7, "members of {member_len} bytes: 1000 take {big} bytes, 100 take {small} bytes");
            assert!(big < small * 10, "members of {member_len} bytes: 1000 take {big} bytes, 100 take {small} bytes");
        }
    }

    #[test]
    fn a_skiplists_estimate_from_five_samples_is_close_to_the_full_count() {
        for member_len in [10, 40] {
            let z = uniform_zset(10_000, member_len, false);
            let (exact, sampled) = (z.memory_usage(0), z.memory_usage(5));
            assert!(sampled.abs_diff(exact) * 4 < exact, "members of {member_len} bytes: sampled {sampled} bytes, exact {exact} bytes");
        }
    }

    #[test]
    fn a_listpack_zset_is_smaller_than_the_same_members_in_a_skiplist() {
        let (listpack, skiplist) = (uniform_zset(100, 10, true).memory_usage(0), uniform_zset(100, 10, false).memory_usage(0));
        assert!(listpack < skiplist, "listpack {listpack} bytes, skiplist {skiplist} bytes");
    }

    /// The model: member -> score, ordered on demand.
    fn ordered(model: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
        v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
        v
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<u8>, i8),
        Remove(Vec<u8>),
        RemoveRange(usize, usize),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![4 => proptest::collection::vec(b'a'..b'h', 0..3), 1 => proptest::collection::vec(b'a'..b'c', 5..9)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (member(), any::<i8>()).prop_map(|(m, s)| Op::Add(m, s % 5)),
            2 => member().prop_map(Op::Remove),
            1 => (0usize..20, 0usize..4).prop_map(|(a, b)| Op::RemoveRange(a, b)),
        ]
    }

    proptest! {
        /// Both encodings against a map, with conversions at small limits: order, ranks,
        /// rank access, prefix counts and both iteration directions after every operation.
        #[test]
        fn zset_behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 0..200), entries in 0u64..6, value in 0u64..6) {
            let limits = limits(entries, value);
            let mut zset = ZSet::new();
            let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Add(m, s) => {
                        let s = s as f64 / 2.0;
                        if model.insert(m.clone(), s).is_some() {
                            zset.set_score(&m, s);
                        } else {
                            zset.insert(&m, s, &limits);
                        }
                    }
                    Op::Remove(m) => prop_assert_eq!(zset.remove(&m), model.remove(&m)),
                    Op::RemoveRange(start, n) => {
                        let want = ordered(&model);
                        let removed = zset.remove_range(start, n);
                        let expect: Vec<_> = want.iter().skip(start).take(n).collect();
                        prop_assert_eq!(removed, expect.len());
                        for (m, _) in expect {
                            model.remove(m);
                        }
                    }
                }
                zset.check_invariants();
                if zset.len() as u64 > entries {
                    prop_assert_eq!(zset.encoding_name(), "skiplist");
                }
                let want = ordered(&model);
                let got: Vec<(Vec<u8>, f64)> = zset.iter().map(|(m, s)| (m.to_vec(), s)).collect();
                prop_assert_eq!(&got, &want);
                let back: Vec<(Vec<u8>, f64)> = zset.iter_from(want.len().saturating_sub(1), true).map(|(m, s)| (m.to_vec(), s)).collect();
                if !want.is_empty() {
                    prop_assert_eq!(back, want.iter().rev().cloned().collect::<Vec<_>>());
                }
                for (i, (m, s)) in want.iter().enumerate() {
                    prop_assert_eq!(zset.rank(m), Some((i, *s)));
                    prop_assert_eq!(zset.get(i).map(|(m, s)| (m.to_vec(), s)), Some((m.clone(), *s)));
                    prop_assert_eq!(zset.score(m), Some(*s));
                }
                let mut scanned = std::collections::BTreeMap::new();
                let mut cursor = 0;
                loop {
                    cursor = zset.scan_step(cursor, |m, s| {
                        scanned.insert(m.to_vec(), s);
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                prop_assert_eq!(&scanned, &model, "a full scan returns every member once");
                for bound in [-3.0, -0.5, 0.0, 1.0, 2.5] {
                    prop_assert_eq!(zset.count_while(|s, _| s < bound), want.iter().filter(|(_, s)| *s < bound).count());
                }
            }
        }
    }

    #[test]
    fn listpack_scores_round_trip_and_integers_are_short() {
        for score in
            [0.0, 1.0, -1.0, 127.0, 128.0, -128.0, -129.0, 1e15, -(2f64.powi(55)) + 1.0, 2f64.powi(55), 0.5, f64::INFINITY, f64::NEG_INFINITY, 1e-320, -3.25]
        {
            let mut buf = [0; 8];
            let bytes = score_bytes(score, &mut buf).to_vec();
            assert_eq!(read_score(&bytes), score, "{score}");
        }
        assert_eq!(score_bytes(0.0, &mut [0; 8]).len(), 0);
        assert_eq!(score_bytes(100.0, &mut [0; 8]).len(), 1);
        assert_eq!(score_bytes(-200.0, &mut [0; 8]).len(), 2);
        assert_eq!(score_bytes(0.5, &mut [0; 8]).len(), 8);
    }

    #[test]
    fn conversion_happens_past_the_entry_limit_and_on_a_long_member() {
        let limits = limits(2, 3);
        let mut zset = ZSet::new();
        zset.insert(b"a", 1.0, &limits);
        zset.insert(b"b", 2.0, &limits);
        assert_eq!(zset.encoding_name(), "listpack");
        zset.insert(b"c", 3.0, &limits);
        assert_eq!(zset.encoding_name(), "skiplist");
        let mut zset = ZSet::new();
        zset.insert(b"abcd", 1.0, &limits);
        assert_eq!(zset.encoding_name(), "skiplist");
        zset.check_invariants();
    }

    #[test]
    fn a_listpack_zero_loses_its_sign_and_a_skiplist_zero_keeps_it() {
        let mut small = ZSet::new();
        small.insert(b"a", -0.0, &Limits::default());
        assert!(small.score(b"a").unwrap().is_sign_positive());
        let mut big = ZSet::new();
        big.insert(b"a", -0.0, &limits(0, 64));
        assert!(big.score(b"a").unwrap().is_sign_negative());
    }

    #[test]
    fn a_full_scan_returns_every_member_despite_resizes_between_steps() {
        let limits = Limits::default();
        let mut zset = ZSet::new();
        for i in 0..1000u32 {
            zset.insert(format!("m{i}").as_bytes(), i as f64, &limits);
        }
        let mut seen = std::collections::BTreeSet::new();
        let (mut cursor, mut step) = (0, 0);
        loop {
            cursor = zset.scan_step(cursor, |m, _| {
                seen.insert(m.to_vec());
            });
            step += 1;
            if step % 50 == 0 {
                for i in 0..2000u32 {
                    zset.insert(format!("extra{step}-{i}").as_bytes(), 0.5, &limits);
                }
            }
            if step % 75 == 0 {
                let extra: Vec<Vec<u8>> = zset.iter().filter(|(m, _)| m.starts_with(b"extra")).map(|(m, _)| m.to_vec()).collect();
                for m in extra {
                    zset.remove(&m);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000u32 {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} was returned");
        }
        zset.check_invariants();
    }

    #[test]
    fn a_large_skiplist_keeps_ranks_through_removals() {
        let limits = Limits::default();
        let mut zset = ZSet::new();
        for i in 0..2000u32 {
            zset.insert(format!("m{i}").as_bytes(), (i % 97) as f64, &limits);
        }
        for i in (0..2000u32).step_by(3) {
            assert!(zset.remove(format!("m{i}").as_bytes()).is_some());
        }
        zset.check_invariants();
        let all: Vec<(Vec<u8>, f64)> = zset.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        for (i, (m, s)) in all.iter().enumerate().step_by(37) {
            assert_eq!(zset.rank(m), Some((i, *s)));
        }
    }
}

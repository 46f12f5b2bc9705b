//! The set value in Redis 7.2's three encodings, with its conversion rules.
//!
//! - `intset`: sorted distinct integers in the smallest width that holds them all (16, 32 or
//!   64 bits), in one allocation, while every member is a canonical integer and there are at
//!   most `set-max-intset-entries`.
//! - `listpack`: small sets of any strings, in one allocation ([`Listpack`]), while there are
//!   at most `set-max-listpack-entries` members of at most `set-max-listpack-value` bytes.
//! - `hashtable`: the store's [`Dict`] with no values.
//!
//! The conversions follow Redis 7.2's `setTypeCreate`, `setTypeMaybeConvert` and
//! `setTypeAddAux`: a set only ever grows into a bigger encoding as members are added, never
//! back as they are removed; only a set built from scratch (SINTERSTORE, SPOP's rebuild)
//! starts small again. The set algebra of SINTER, SUNION and SDIFF lives here too, so that
//! their results get the encoding Redis would give them.
//!
//! What this does not do: replies, keys, or anything about the database.

use bytes::Bytes;
use rand::Rng;

use crate::dict::Dict;
use crate::listpack::Listpack;
use crate::types::packed::{InPlace, Kind, KindMut, IN_PLACE};
use crate::types::{Limits, Packed};
use crate::value::parse_canonical_i64;

/// Redis's LISTPACK_MAX_SAFETY_SIZE: a listpack never grows past this many bytes.
const LISTPACK_BYTES_MAX: usize = 1 << 30;

/// Redis caps intsets at 2^30 entries whatever `set-max-intset-entries` says.
const INTSET_ENTRIES_CAP: u64 = 1 << 30;

fn intset_entries_max(limits: &Limits) -> usize {
    limits.set_max_intset_entries.min(INTSET_ENTRIES_CAP) as usize
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Characters of `v` in decimal, the sign included (Redis's `sdigits10`).
fn decimal_len(v: i64) -> usize {
    itoa::Buffer::new().format(v).len()
}

// ---- intset -------------------------------------------------------------------------------

/// Sorted distinct integers, little-endian, each `width` bytes (2, 4 or 8), in one allocation
/// sized exactly (Redis's `intset`): the width in its first byte, then the members. The width
/// grows when a member needs it and never shrinks while there are members, as in Redis.
///
/// Twelve bytes, so that a set holds it in place ([`Packed`]): the allocation's address
/// (8-aligned) tagged with [`IN_PLACE`], and the member count. Empty, it has no allocation
/// and the width is 2.
#[repr(C, packed(4))]
pub struct Intset {
    /// The allocation's address with [`IN_PLACE`] set; [`IN_PLACE`] alone when empty.
    raw: usize,
    count: u32,
}

// SAFETY: twelve bytes, 4-aligned; `raw` always carries exactly IN_PLACE in its low bits
// (allocations are 8-aligned, and every change goes through `reshape`, which keeps the tag).
unsafe impl InPlace for Intset {}
// SAFETY: an intset owns its allocation outright, as a `Vec<u8>` would.
unsafe impl Send for Intset {}
// SAFETY: as above; `&Intset` only reads.
unsafe impl Sync for Intset {}

/// Bytes before the members: the width.
const INTSET_HEADER: usize = 1;

fn intset_layout(size: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(size, 8).expect("an intset layout fits")
}

impl Default for Intset {
    fn default() -> Self {
        Intset { raw: IN_PLACE, count: 0 }
    }
}

impl Drop for Intset {
    fn drop(&mut self) {
        self.reshape(2, 0);
    }
}

impl Clone for Intset {
    fn clone(&self) -> Self {
        let mut copy = Intset::default();
        copy.reshape(self.width(), self.len());
        copy.members_mut().copy_from_slice(self.members());
        copy
    }
}

impl PartialEq for Intset {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Intset {}

fn width_of(v: i64) -> u8 {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

impl Intset {
    fn address(&self) -> *mut u8 {
        (self.raw & !IN_PLACE) as *mut u8
    }

    /// Makes the intset `count` members of `width` bytes, keeping the first of the old
    /// member bytes (new bytes are zero until written); frees the allocation at 0 members.
    fn reshape(&mut self, width: usize, count: usize) {
        let old_size = if self.address().is_null() { 0 } else { INTSET_HEADER + self.len() * self.width() };
        let size = if count == 0 { 0 } else { INTSET_HEADER + count * width };
        // SAFETY: every allocation is made, resized and freed with the layout of its size,
        // which the width and count record; bytes past what was kept are zeroed before anyone
        // reads them; the address keeps its tag.
        unsafe {
            let address = match (old_size, size) {
                (0, 0) => std::ptr::null_mut(),
                (_, 0) => {
                    std::alloc::dealloc(self.address(), intset_layout(old_size));
                    std::ptr::null_mut()
                }
                (0, _) => std::alloc::alloc(intset_layout(size)),
                (_, _) => std::alloc::realloc(self.address(), intset_layout(old_size), size),
            };
            if size != 0 {
                if address.is_null() {
                    std::alloc::handle_alloc_error(intset_layout(size));
                }
                if size > old_size {
                    address.add(old_size).write_bytes(0, size - old_size);
                }
                *address = width as u8;
            }
            self.raw = address as usize | IN_PLACE;
        }
        self.count = u32::try_from(count).expect("an intset holds at most 2^30 members and one more");
    }

    fn members(&self) -> &[u8] {
        if self.address().is_null() {
            return &[];
        }
        // SAFETY: the allocation holds the header and `count` members of `width` bytes.
        unsafe { std::slice::from_raw_parts(self.address().add(INTSET_HEADER), self.len() * self.width()) }
    }

    fn members_mut(&mut self) -> &mut [u8] {
        if self.address().is_null() {
            return &mut [];
        }
        // SAFETY: as in `members`, and we own the allocation.
        unsafe { std::slice::from_raw_parts_mut(self.address().add(INTSET_HEADER), self.len() * self.width()) }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes allocated, for MEMORY USAGE.
    pub fn allocated(&self) -> usize {
        if self.address().is_null() {
            0
        } else {
            INTSET_HEADER + self.members().len()
        }
    }

    /// The member at `index` (ascending order).
    pub fn get(&self, index: usize) -> i64 {
        let w = self.width();
        let at = &self.members()[index * w..index * w + w];
        match w {
            2 => i16::from_le_bytes([at[0], at[1]]) as i64,
            4 => i32::from_le_bytes([at[0], at[1], at[2], at[3]]) as i64,
            _ => i64::from_le_bytes(at.try_into().expect("eight bytes")),
        }
    }

    /// Writes `v` as the member at `index`.
    fn put(&mut self, index: usize, v: i64) {
        let w = self.width();
        let at = &mut self.members_mut()[index * w..index * w + w];
        match w {
            2 => at.copy_from_slice(&(v as i16).to_le_bytes()),
            4 => at.copy_from_slice(&(v as i32).to_le_bytes()),
            _ => at.copy_from_slice(&v.to_le_bytes()),
        }
    }

    /// Where `v` is (Ok) or would go (Err).
    fn search(&self, v: i64) -> Result<usize, usize> {
        let len = self.len();
        if len == 0 {
            return Err(0);
        }
        // A value wider than the set is beyond one end of it.
        if width_of(v) as usize > self.width() {
            return Err(if v < 0 { 0 } else { len });
        }
        let (mut low, mut high) = (0, len);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    pub fn contains(&self, v: i64) -> bool {
        self.search(v).is_ok()
    }

    /// Adds `v`; returns false if it was a member already.
    pub fn insert(&mut self, v: i64) -> bool {
        let needed = width_of(v) as usize;
        let len = self.len();
        if needed > self.width() {
            // A value that needs a wider encoding is smaller or larger than every member.
            let mut wider = Intset::default();
            wider.reshape(needed, len + 1);
            let shift = usize::from(v < 0);
            for i in 0..len {
                wider.put(i + shift, self.get(i));
            }
            wider.put(if v < 0 { 0 } else { len }, v);
            *self = wider;
            return true;
        }
        match self.search(v) {
            Ok(_) => false,
            Err(index) => {
                let w = self.width();
                self.reshape(w, len + 1);
                self.members_mut().copy_within(index * w..len * w, (index + 1) * w);
                self.put(index, v);
                true
            }
        }
    }

    /// Removes `v`; returns whether it was a member.
    pub fn remove(&mut self, v: i64) -> bool {
        match self.search(v) {
            Ok(index) => {
                let (w, len) = (self.width(), self.len());
                self.members_mut().copy_within((index + 1) * w..len * w, index * w);
                self.reshape(w, len - 1);
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Bytes per member: 2, 4 or 8.
    pub fn width(&self) -> usize {
        if self.address().is_null() {
            2
        } else {
            // SAFETY: the allocation starts with the width.
            unsafe { *self.address() as usize }
        }
    }

    /// Asserts sorted, distinct, and sized in whole members.
    pub fn check_invariants(&self) {
        assert!(matches!(self.width(), 2 | 4 | 8), "width is 2, 4 or 8 bytes");
        assert_eq!(self.raw & 0b111, IN_PLACE, "the address is 8-aligned and tagged");
        assert_eq!(self.members().len(), self.len() * self.width(), "whole members");
        for i in 1..self.len() {
            assert!(self.get(i - 1) < self.get(i), "members ascend strictly");
        }
    }
}

// ---- members ------------------------------------------------------------------------------

/// A member as an encoding holds it: an integer of an intset, or bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes, for a reply.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Member::Int(v) => Bytes::copy_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
            Member::Bytes(b) => Bytes::copy_from_slice(b),
        }
    }

    /// Calls `f` with the member's bytes without allocating.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(v) => f(itoa::Buffer::new().format(*v).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }

    /// The member as an integer, if it is a canonical one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Member::Int(v) => Some(*v),
            Member::Bytes(b) => parse_canonical_i64(b),
        }
    }
}

// ---- the set ------------------------------------------------------------------------------

/// A set value: an intset, a listpack or a hashtable. Twelve bytes, so that it sits in its
/// key's [`crate::Value`]: a listpack or an intset itself, a hashtable boxed.
pub struct Set {
    repr: Packed<Dict<()>, Intset>,
}

/// A set's encoding, to read (see [`Set::enc`]).
pub enum Enc<'a> {
    Intset(&'a Intset),
    Listpack(&'a Listpack),
    Hashtable(&'a Dict<()>),
}

/// A set's encoding, to change (see [`Set::enc_mut`]).
pub enum EncMut<'a> {
    Intset(&'a mut Intset),
    Listpack(&'a mut Listpack),
    Hashtable(&'a mut Dict<()>),
}

impl Default for Set {
    /// An empty intset, as Redis's `createIntsetObject`.
    fn default() -> Self {
        Set::intset(Intset::default())
    }
}

impl Clone for Set {
    /// A copy in the same encoding (Redis's `setTypeDup`, for COPY).
    fn clone(&self) -> Self {
        match self.enc() {
            Enc::Intset(is) => Set::intset(is.clone()),
            Enc::Listpack(lp) => Set::listpack(lp.clone()),
            Enc::Hashtable(d) => {
                let mut copy = Dict::new();
                for (member, _) in d.iter() {
                    copy.insert_new(member, ());
                }
                Set::hashtable(copy)
            }
        }
    }
}

impl PartialEq for Set {
    /// Same members, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_member(m))
    }
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<String> = self.iter().map(|m| m.with_bytes(|b| b.escape_ascii().to_string())).collect();
        write!(f, "Set({}, {:?})", self.encoding_name(), members)
    }
}

/// Finds `member` in a listpack of distinct members.
fn listpack_find(lp: &Listpack, member: &[u8]) -> Option<usize> {
    lp.positions().find(|(_, entry)| *entry == member).map(|(pos, _)| pos)
}

impl Set {
    pub fn intset(is: Intset) -> Set {
        Set { repr: Packed::in_place(is) }
    }

    pub fn listpack(lp: Listpack) -> Set {
        Set { repr: Packed::listpack(lp) }
    }

    pub fn hashtable(d: Dict<()>) -> Set {
        Set { repr: Packed::boxed(Box::new(d)) }
    }

    /// The encoding, to read.
    pub fn enc(&self) -> Enc<'_> {
        match self.repr.kind() {
            Kind::Listpack(lp) => Enc::Listpack(lp),
            Kind::InPlace(is) => Enc::Intset(is),
            Kind::Boxed(d) => Enc::Hashtable(d),
        }
    }

    /// The encoding, to change.
    pub fn enc_mut(&mut self) -> EncMut<'_> {
        match self.repr.kind_mut() {
            KindMut::Listpack(lp) => EncMut::Listpack(lp),
            KindMut::InPlace(is) => EncMut::Intset(is),
            KindMut::Boxed(d) => EncMut::Hashtable(d),
        }
    }

    /// Prefetches what reading the set touches first: its listpack, its intset, or the box
    /// of its hashtable.
    #[inline]
    pub fn prefetch(&self) {
        self.repr.prefetch();
    }

    /// An empty set that can hold `first` with about `size_hint` members (Redis's
    /// `setTypeCreate`): an intset for an integer, a listpack while the hint allows, a hash
    /// table otherwise.
    pub fn create(first: &[u8], size_hint: usize, limits: &Limits) -> Set {
        if parse_canonical_i64(first).is_some() && size_hint <= to_usize(limits.set_max_intset_entries) {
            return Set::intset(Intset::default());
        }
        if size_hint <= to_usize(limits.set_max_listpack_entries) {
            return Set::listpack(Listpack::new());
        }
        Set::hashtable(Dict::new())
    }

    /// Converts to a hash table when `size_hint` more members are about to be added and the
    /// compact encoding could not hold them (Redis's `setTypeMaybeConvert`).
    pub fn maybe_convert(&mut self, size_hint: usize, limits: &Limits) {
        let convert = match self.enc() {
            Enc::Listpack(_) => size_hint > to_usize(limits.set_max_listpack_entries),
            Enc::Intset(_) => size_hint > to_usize(limits.set_max_intset_entries),
            Enc::Hashtable(_) => false,
        };
        if convert {
            self.convert_to_hashtable();
        }
    }

    pub fn len(&self) -> usize {
        match self.enc() {
            Enc::Intset(is) => is.len(),
            Enc::Listpack(lp) => lp.len(),
            Enc::Hashtable(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match self.enc() {
            Enc::Intset(_) => "intset",
            Enc::Listpack(_) => "listpack",
            Enc::Hashtable(_) => "hashtable",
        }
    }

    /// Heap bytes this set uses, for MEMORY USAGE (the value holds its twelve bytes): an
    /// intset's or a listpack's buffer exactly, or a hashtable's box, or a hashtable's bucket array
    /// and nodes, sampled over the first `samples` members (all when 0; see
    /// [`Dict::heap_bytes`]). The allocator's rounding up is not counted.
    pub fn memory_usage(&self, samples: usize) -> usize {
        let repr = match self.enc() {
            Enc::Intset(is) => is.allocated(),
            Enc::Listpack(lp) => lp.allocated(),
            Enc::Hashtable(d) => d.heap_bytes(samples, |_| 0),
        };
        self.repr.box_bytes() + repr
    }

    /// Every member, in the encoding's order (ascending for an intset).
    pub fn iter(&self) -> Box<dyn Iterator<Item = Member<'_>> + '_> {
        match self.enc() {
            Enc::Intset(is) => Box::new(is.iter().map(Member::Int)),
            Enc::Listpack(lp) => Box::new(lp.iter().map(Member::Bytes)),
            Enc::Hashtable(d) => Box::new(d.iter().map(|(m, _)| Member::Bytes(m))),
        }
    }

    /// Every member as bytes, for a reply.
    pub fn to_bytes_vec(&self) -> Vec<Bytes> {
        self.iter().map(|m| m.to_bytes()).collect()
    }

    /// Warms the cache for lookups of `members` that follow soon (a pipelined batch; see
    /// [`crate::prefetch`]). Only the hashtable form has misses worth overlapping.
    pub fn prefetch_members(&self, members: &[&[u8]]) {
        if let Enc::Hashtable(dict) = self.enc() {
            dict.prefetch(members, |_| {});
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self.enc() {
            Enc::Intset(is) => parse_canonical_i64(member).is_some_and(|v| is.contains(v)),
            Enc::Listpack(lp) => listpack_find(lp, member).is_some(),
            Enc::Hashtable(d) => d.contains_key(member),
        }
    }

    pub fn contains_member(&self, member: Member) -> bool {
        match (self.enc(), member) {
            (Enc::Intset(is), Member::Int(v)) => is.contains(v),
            (_, member) => member.with_bytes(|b| self.contains(b)),
        }
    }

    /// Adds `member`, converting the encoding as Redis's `setTypeAddAux` does; returns
    /// false if it was a member already.
    pub fn insert(&mut self, member: &[u8], limits: &Limits) -> bool {
        match self.enc_mut() {
            EncMut::Hashtable(d) => {
                if d.contains_key(member) {
                    return false;
                }
                d.insert_new(member, ());
                true
            }
            EncMut::Listpack(lp) => {
                if listpack_find(lp, member).is_some() {
                    return false;
                }
                if lp.len() < to_usize(limits.set_max_listpack_entries)
                    && member.len() <= to_usize(limits.set_max_listpack_value)
                    && lp.bytes_len() + member.len() < LISTPACK_BYTES_MAX
                {
                    lp.push_back(member);
                } else {
                    self.convert_to_hashtable();
                    self.insert_new_into_hashtable(member);
                }
                true
            }
            EncMut::Intset(is) => {
                if let Some(v) = parse_canonical_i64(member) {
                    if !is.insert(v) {
                        return false;
                    }
                    self.maybe_convert_intset(limits);
                    return true;
                }
                // A string: a listpack if it and every integer would fit one, else a table.
                let (widest, bytes_estimate) = match (is.iter().next(), is.iter().next_back()) {
                    (Some(min), Some(max)) => {
                        let widest = decimal_len(min).max(decimal_len(max));
                        (widest, (widest + 2) * is.len())
                    }
                    _ => (0, 0),
                };
                let value_max = to_usize(limits.set_max_listpack_value);
                if is.len() < to_usize(limits.set_max_listpack_entries)
                    && member.len() <= value_max
                    && widest <= value_max
                    && bytes_estimate + member.len() < LISTPACK_BYTES_MAX
                {
                    let mut lp = Listpack::new();
                    for v in is.iter() {
                        lp.push_back(itoa::Buffer::new().format(v).as_bytes());
                    }
                    lp.push_back(member);
                    *self = Set::listpack(lp);
                } else {
                    self.convert_to_hashtable();
                    self.insert_new_into_hashtable(member);
                }
                true
            }
        }
    }

    /// Adds a member given as an intset gives it, without formatting an integer for an intset.
    pub fn insert_member(&mut self, member: Member, limits: &Limits) -> bool {
        match (self.enc_mut(), member) {
            (EncMut::Intset(is), Member::Int(v)) => {
                if !is.insert(v) {
                    return false;
                }
                self.maybe_convert_intset(limits);
                true
            }
            (_, member) => member.with_bytes(|b| self.insert(b, limits)),
        }
    }

    fn insert_new_into_hashtable(&mut self, member: &[u8]) {
        match self.enc_mut() {
            EncMut::Hashtable(d) => {
                debug_assert!(!d.contains_key(member), "a new member");
                d.insert_new(member, ());
            }
            _ => unreachable!("converted to a hash table"),
        }
    }

    /// An intset past `set-max-intset-entries` becomes a hash table (Redis's
    /// `maybeConvertIntset`).
    fn maybe_convert_intset(&mut self, limits: &Limits) {
        if let Enc::Intset(is) = self.enc() {
            if is.len() > intset_entries_max(limits) {
                self.convert_to_hashtable();
            }
        }
    }

    /// Removes `member`; returns whether it was one. The encoding stays as it is.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.enc_mut() {
            EncMut::Intset(is) => parse_canonical_i64(member).is_some_and(|v| is.remove(v)),
            EncMut::Listpack(lp) => match listpack_find(lp, member) {
                Some(pos) => {
                    lp.remove_at(pos);
                    true
                }
                None => false,
            },
            EncMut::Hashtable(d) => d.remove(member).is_some(),
        }
    }

    pub fn remove_member(&mut self, member: Member) -> bool {
        match (self.enc_mut(), member) {
            (EncMut::Intset(is), Member::Int(v)) => is.remove(v),
            (_, member) => member.with_bytes(|b| self.remove(b)),
        }
    }

    /// Converts to a hash table (a no-op for one).
    pub fn convert_to_hashtable(&mut self) {
        if matches!(self.enc(), Enc::Hashtable(_)) {
            return;
        }
        let mut d = Dict::new();
        for member in self.iter() {
            member.with_bytes(|b| d.insert_new(b, ()));
        }
        *self = Set::hashtable(d);
    }

    /// Converts to an intset when every member is an integer and there are few enough
    /// (Redis's `maybeConvertToIntset`).
    pub fn maybe_convert_to_intset(&mut self, limits: &Limits) {
        if matches!(self.enc(), Enc::Intset(_)) || self.len() > intset_entries_max(limits) {
            return;
        }
        let mut is = Intset::default();
        for member in self.iter() {
            match member.as_int() {
                Some(v) => {
                    is.insert(v);
                }
                None => return,
            }
        }
        *self = Set::intset(is);
    }

    /// A random member of a non-empty set.
    pub fn random_member(&self, rng: &mut impl Rng) -> Member<'_> {
        assert!(!self.is_empty(), "a random member of an empty set");
        match self.enc() {
            Enc::Intset(is) => Member::Int(is.get(rng.random_range(0..is.len()))),
            Enc::Listpack(lp) => Member::Bytes(lp.get(rng.random_range(0..lp.len()) as i64).expect("index in range")),
            Enc::Hashtable(d) => Member::Bytes(d.random_entry(rng).expect("not empty").0),
        }
    }

    /// Removes and returns a random member of a non-empty set.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Bytes {
        let member = self.random_member(rng).to_bytes();
        let removed = self.remove(&member);
        debug_assert!(removed, "the random member was a member");
        member
    }

    /// Removes `count` random distinct members (fewer than the set has) and returns them, as
    /// SPOP with a count does (Redis's `spopWithCountCommand`): one at a time when few are
    /// taken, else by keeping a random rest in a new set built from scratch, whose encoding
    /// may then be smaller.
    pub fn pop_many(&mut self, count: usize, limits: &Limits, rng: &mut impl Rng) -> Vec<Bytes> {
        assert!(count < self.len(), "SPOP of the whole set takes the key instead");
        let remaining = self.len() - count;
        // Redis's SPOP_MOVE_STRATEGY_MUL.
        if remaining.saturating_mul(5) > count {
            return (0..count).map(|_| self.pop_random(rng)).collect();
        }
        let mut kept = match self.enc() {
            Enc::Intset(_) => Set::intset(Intset::default()),
            _ => Set::listpack(Listpack::new()),
        };
        for _ in 0..remaining {
            let member = self.random_member(rng).to_bytes();
            kept.insert(&member, limits);
            self.remove(&member);
        }
        let popped = std::mem::replace(self, kept);
        popped.to_bytes_vec()
    }

    /// `count` distinct random members (`count` below the set's size), for SRANDMEMBER.
    /// A hash table much larger than `count` is sampled until enough distinct members came
    /// up (Redis's CASE 4), so the work follows `count`, not the set's size; otherwise
    /// `count` distinct positions are drawn and the set is walked once.
    pub fn random_distinct(&self, count: usize, rng: &mut impl Rng) -> Vec<Bytes> {
        let len = self.len();
        assert!(count < len, "the whole set is served without sampling");
        if let Enc::Hashtable(d) = self.enc() {
            // Redis's SRANDMEMBER_SUB_STRATEGY_MUL.
            if count.saturating_mul(3) <= len {
                let mut picked: std::collections::HashSet<&[u8]> = std::collections::HashSet::with_capacity(count);
                while picked.len() < count {
                    picked.insert(d.random_entry(rng).expect("not empty").0);
                }
                return picked.into_iter().map(Bytes::copy_from_slice).collect();
            }
        }
        // Floyd's algorithm: `count` distinct positions in `count` draws.
        let mut positions = std::collections::BTreeSet::new();
        for j in len - count..len {
            let t = rng.random_range(0..=j);
            if !positions.insert(t) {
                positions.insert(j);
            }
        }
        if let Enc::Intset(is) = self.enc() {
            return positions.into_iter().map(|i| Member::Int(is.get(i)).to_bytes()).collect();
        }
        let mut out = Vec::with_capacity(count);
        let mut wanted = positions.into_iter().peekable();
        for (index, member) in self.iter().enumerate() {
            if wanted.peek() == Some(&index) {
                out.push(member.to_bytes());
                wanted.next();
            }
        }
        out
    }

    /// One SSCAN step: a hash table visits the bucket at `cursor` and returns the next cursor
    /// (0 at the end); a compact set visits every member and returns 0.
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(Member)) -> u64 {
        match self.enc() {
            Enc::Hashtable(d) => d.scan_step(cursor, |m, _| visit(Member::Bytes(m))),
            _ => {
                self.iter().for_each(visit);
                0
            }
        }
    }

    /// Asserts the encoding's invariants: no duplicates, nothing empty stored.
    pub fn check_invariants(&self) {
        match self.enc() {
            Enc::Intset(is) => is.check_invariants(),
            Enc::Listpack(lp) => {
                let mut seen = std::collections::HashSet::new();
                for entry in lp.iter() {
                    assert!(seen.insert(entry), "a listpack member appears once");
                }
            }
            Enc::Hashtable(d) => d.check_invariants(),
        }
    }
}

// ---- set algebra --------------------------------------------------------------------------

/// The members common to every set (none may be missing), calling `found` for each until it
/// returns false. Walks the smallest set, as Redis's `sinterGenericCommand`.
pub fn intersection_each<'a>(sets: &[&'a Set], mut found: impl FnMut(Member<'a>) -> bool) {
    let Some(smallest) = sets.iter().enumerate().min_by_key(|(_, s)| s.len()).map(|(i, _)| i) else {
        return;
    };
    for member in sets[smallest].iter() {
        let everywhere = sets.iter().enumerate().all(|(i, s)| i == smallest || std::ptr::eq(*s, sets[smallest]) || s.contains_member(member));
        if everywhere && !found(member) {
            return;
        }
    }
}

/// The intersection as a new set, in the encoding SINTERSTORE gives it: it starts as an
/// intset when the smallest set is one and as a listpack otherwise, grows by Redis's rules,
/// and becomes an intset at the end when every member is an integer and few enough.
pub fn intersection(sets: &[&Set], limits: &Limits) -> Set {
    let smallest_is_intset = sets.iter().min_by_key(|s| s.len()).is_some_and(|s| matches!(s.enc(), Enc::Intset(_)));
    let mut out = if smallest_is_intset { Set::intset(Intset::default()) } else { Set::listpack(Listpack::new()) };
    let mut only_integers = true;
    intersection_each(sets, |member| {
        if only_integers && member.as_int().is_none() {
            only_integers = false;
        }
        out.insert_member(member, limits);
        true
    });
    if only_integers && !out.is_empty() {
        out.maybe_convert_to_intset(limits);
    }
    out
}

/// The union of the sets that exist (None: a missing key), built as SUNIONSTORE builds it:
/// from an empty intset, growing by Redis's rules.
pub fn union(sets: &[Option<&Set>], limits: &Limits) -> Set {
    let mut out = Set::default();
    for set in sets.iter().flatten() {
        for member in set.iter() {
            out.insert_member(member, limits);
        }
    }
    out
}

/// The members of the first set in none of the others, built as SDIFFSTORE builds it (from
/// an empty intset, with Redis's choice between its two algorithms, which can leave a
/// different encoding). `first_repeated`: the first key appears again among the others, so
/// the result is empty.
pub fn difference(sets: &[Option<&Set>], first_repeated: bool, limits: &Limits) -> Set {
    let mut out = Set::default();
    let Some(Some(first)) = sets.first() else {
        return out;
    };
    if first_repeated {
        return out;
    }
    let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
    // Redis's estimate: walking the first set against each other set (halved for its better
    // constants) against walking every set once.
    let walk_first = (first.len() as u64 * (others.len() as u64 + 1)) / 2;
    let walk_all = first.len() as u64 + others.iter().map(|s| s.len() as u64).sum::<u64>();
    if walk_first <= walk_all {
        for member in first.iter() {
            if !others.iter().any(|s| s.contains_member(member)) {
                out.insert_member(member, limits);
            }
        }
    } else {
        for member in first.iter() {
            out.insert_member(member, limits);
        }
        for set in others {
            if out.is_empty() {
                break;
            }
            for member in set.iter() {
                out.remove_member(member);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn small_limits() -> Limits {
        Limits { set_max_intset_entries: 6, set_max_listpack_entries: 4, set_max_listpack_value: 5, ..Limits::default() }
    }

    fn members(set: &Set) -> BTreeSet<Vec<u8>> {
        set.iter().map(|m| m.to_bytes().to_vec()).collect()
    }

    fn build(items: &[&str], limits: &Limits) -> Set {
        let mut set = Set::create(items[0].as_bytes(), items.len(), limits);
        for item in items {
            set.insert(item.as_bytes(), limits);
        }
        set
    }

    /// A set of `len` members "member:NNNNNN", in a listpack while `listpack`, else in a
    /// hashtable.
    fn uniform_set(len: usize, listpack: bool) -> Set {
        let limits = Limits::default();
        let mut set = Set::listpack(Listpack::new());
        if !listpack {
            set.convert_to_hashtable();
        }
        for i in 0..len {
            set.insert(format!("member:{i:06}").as_bytes(), &limits);
        }
        assert_eq!(set.encoding_name(), if listpack { "listpack" } else { "hashtable" });
        set
    }

    #[test]
    fn a_hashtable_sets_estimate_grows_about_linearly_with_its_members() {
        let (small, big) = (uniform_set(100, false).memory_usage(0), uniform_set(1000, false).memory_usage(0));
        // Ten times the nodes (22 bytes each); the bucket array is 5 bytes a member at 100
        // (64 slots) and 4 at 1000 (512), and the fixed part 40 bytes: 8.5x to 11x (9.5x
        // when written).
        assert!(big * 2 > small * 17, "1000 members: {big} bytes, 100 members: {small} bytes");
        assert!(big < small * 11, "1000 members: {big} bytes, 100 members: {small} bytes");
    }

    #[test]
    fn a_hashtable_sets_estimate_from_five_samples_is_close_to_the_full_count() {
        let set = uniform_set(10_000, false);
        let (exact, sampled) = (set.memory_usage(0), set.memory_usage(5));
        assert!(sampled.abs_diff(exact) * 4 < exact, "sampled {sampled} bytes, exact {exact} bytes");
    }

    #[test]
    fn compact_sets_are_smaller_than_the_same_members_in_a_hashtable() {
        let (listpack, table) = (uniform_set(100, true).memory_usage(0), uniform_set(100, false).memory_usage(0));
        assert!(listpack < table, "listpack {listpack} bytes, hashtable {table} bytes");
        let limits = Limits::default();
        let mut intset = Set::default();
        let mut integers_table = Set::default();
        integers_table.convert_to_hashtable();
        for i in 0..100 {
            intset.insert(i.to_string().as_bytes(), &limits);
            integers_table.insert(i.to_string().as_bytes(), &limits);
        }
        assert_eq!(intset.encoding_name(), "intset");
        // The width, and 100 members of 2 bytes each.
        assert_eq!(intset.memory_usage(0), 1 + 200);
        assert!(intset.memory_usage(0) < integers_table.memory_usage(0));
    }

    #[test]
    fn intset_widens_for_large_values_and_keeps_order() {
        let mut is = Intset::default();
        for v in [5, -3, 40_000, i64::MIN, 7, i64::MAX, 0] {
            assert!(is.insert(v));
        }
        assert!(!is.insert(7));
        assert_eq!(is.width(), 8);
        assert_eq!(is.iter().collect::<Vec<_>>(), vec![i64::MIN, -3, 0, 5, 7, 40_000, i64::MAX]);
        assert!(is.remove(40_000));
        assert!(!is.remove(40_000));
        assert!(!is.contains(1 << 40));
        is.check_invariants();
    }

    #[test]
    fn encodings_follow_redis_7_2_rules() {
        let limits = Limits::default();
        assert_eq!(build(&["1", "2"], &limits).encoding_name(), "intset");
        assert_eq!(build(&["1", "a"], &limits).encoding_name(), "listpack");
        assert_eq!(build(&["a", "1"], &limits).encoding_name(), "listpack");
        let long = "x".repeat(65);
        assert_eq!(build(&["a", &long], &limits).encoding_name(), "hashtable");
        let ints: Vec<String> = (0..513).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = ints.iter().map(|s| s.as_str()).collect();
        assert_eq!(build(&refs[..512], &limits).encoding_name(), "intset");
        assert_eq!(build(&refs, &limits).encoding_name(), "hashtable");
        // 129 integers, then a string: too many for a listpack.
        let mut set = build(&refs[..129], &limits);
        set.insert(b"a", &limits);
        assert_eq!(set.encoding_name(), "hashtable");
        // 128 integers then a string fit a listpack exactly.
        let mut set = build(&refs[..127], &limits);
        set.insert(b"a", &limits);
        assert_eq!((set.encoding_name(), set.len()), ("listpack", 128));
        set.insert(b"b", &limits);
        assert_eq!(set.encoding_name(), "hashtable");
    }

    #[test]
    fn removing_members_never_shrinks_the_encoding() {
        let limits = small_limits();
        let mut set = build(&["a", "b", "c", "d", "e"], &limits);
        assert_eq!(set.encoding_name(), "hashtable");
        for m in ["a", "b", "c", "d"] {
            assert!(set.remove(m.as_bytes()));
        }
        assert_eq!(set.encoding_name(), "hashtable");
    }

    #[test]
    fn intersection_store_encodings() {
        let limits = Limits::default();
        let strings = build(&["a", "1", "2", "3"], &limits);
        let ints = build(&["1", "2", "9"], &limits);
        let both = intersection(&[&strings, &ints], &limits);
        assert_eq!(both.encoding_name(), "intset", "every member is an integer");
        assert_eq!(members(&both), members(&build(&["1", "2"], &limits)));
        let only_strings = intersection(&[&strings, &strings], &limits);
        assert_eq!(only_strings.encoding_name(), "listpack");
        assert_eq!(only_strings.len(), 4);
    }

    #[test]
    fn pop_many_keeps_a_rebuilt_rest() {
        let limits = Limits::default();
        let items: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = items.iter().map(|s| s.as_str()).collect();
        let mut set = build(&refs, &limits);
        assert_eq!(set.encoding_name(), "hashtable");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let popped = set.pop_many(190, &limits, &mut rng);
        assert_eq!(popped.len(), 190);
        assert_eq!(set.len(), 10);
        assert_eq!(set.encoding_name(), "listpack", "the rest is rebuilt from scratch");
        let mut all: BTreeSet<Vec<u8>> = popped.iter().map(|b| b.to_vec()).collect();
        all.extend(members(&set));
        assert_eq!(all.len(), 200);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<u8>),
        AddMany(Vec<Vec<u8>>),
        Remove(Vec<u8>),
        Pop,
        PopMany(usize),
        RandomDistinct(usize),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (-40i64..40).prop_map(|v| v.to_string().into_bytes()),
            Just(b"100000".to_vec()),
            Just(b"-9223372036854775808".to_vec()),
            Just(b"3000000000".to_vec()),
            Just(b"007".to_vec()),
            proptest::collection::vec(b'a'..b'e', 0..4),
            proptest::collection::vec(b'a'..b'c', 6..8),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => member().prop_map(Op::Add),
            1 => proptest::collection::vec(member(), 1..9).prop_map(Op::AddMany),
            2 => member().prop_map(Op::Remove),
            1 => Just(Op::Pop),
            1 => (1usize..10).prop_map(Op::PopMany),
            1 => (1usize..10).prop_map(Op::RandomDistinct),
        ]
    }

    /// Whether a set of these members could be in the intset or listpack encoding.
    fn fits_intset(model: &BTreeSet<Vec<u8>>, limits: &Limits) -> bool {
        model.len() as u64 <= limits.set_max_intset_entries && model.iter().all(|m| parse_canonical_i64(m).is_some())
    }

    proptest! {
        #[test]
        fn set_behaves_like_a_btreeset(ops in proptest::collection::vec(op(), 0..80), seed in any::<u64>()) {
            let limits = small_limits();
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let mut set: Option<Set> = None;
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Add(m) => {
                        let s = set.get_or_insert_with(|| Set::create(&m, 1, &limits));
                        s.maybe_convert(1, &limits);
                        prop_assert_eq!(s.insert(&m, &limits), model.insert(m));
                    }
                    Op::AddMany(ms) => {
                        let s = set.get_or_insert_with(|| Set::create(&ms[0], ms.len(), &limits));
                        s.maybe_convert(ms.len(), &limits);
                        for m in ms {
                            prop_assert_eq!(s.insert(&m, &limits), model.insert(m));
                        }
                    }
                    Op::Remove(m) => {
                        if let Some(s) = set.as_mut() {
                            prop_assert_eq!(s.remove(&m), model.remove(&m));
                        }
                    }
                    Op::Pop => {
                        if let Some(s) = set.as_mut() {
                            let m = s.pop_random(&mut rng);
                            prop_assert!(model.remove(m.as_ref()));
                        }
                    }
                    Op::PopMany(n) => {
                        if let Some(s) = set.as_mut() {
                            if n < s.len() {
                                for m in s.pop_many(n, &limits, &mut rng) {
                                    prop_assert!(model.remove(m.as_ref()), "popped a member once");
                                }
                            }
                        }
                    }
                    Op::RandomDistinct(n) => {
                        if let Some(s) = set.as_ref() {
                            if n < s.len() {
                                let got: BTreeSet<Vec<u8>> = s.random_distinct(n, &mut rng).iter().map(|b| b.to_vec()).collect();
                                prop_assert_eq!(got.len(), n);
                                prop_assert!(got.is_subset(&model));
                            }
                        }
                    }
                }
                if set.as_ref().is_some_and(|s| s.is_empty()) {
                    set = None;
                }
                if let Some(s) = &set {
                    s.check_invariants();
                    prop_assert_eq!(members(s), model.clone());
                    prop_assert_eq!(s.len(), model.len());
                    for m in &model {
                        prop_assert!(s.contains(m));
                    }
                    // The encoding is never smaller than the members allow.
                    match s.enc() {
                        Enc::Intset(_) => prop_assert!(fits_intset(&model, &limits)),
                        Enc::Listpack(lp) => prop_assert!(lp.iter().all(|m| m.len() <= 5)),
                        Enc::Hashtable(_) => {}
                    }
                    prop_assert_eq!(&s.clone(), s);
                    prop_assert_eq!(s.clone().encoding_name(), s.encoding_name());
                } else {
                    prop_assert!(model.is_empty());
                }
            }
        }

        #[test]
        fn algebra_matches_btreeset_algebra(
            a in proptest::collection::btree_set(member(), 0..10),
            b in proptest::collection::btree_set(member(), 0..10),
            c in proptest::collection::btree_set(member(), 0..10),
        ) {
            let limits = small_limits();
            let make = |items: &BTreeSet<Vec<u8>>| -> Option<Set> {
                let first = items.iter().next()?;
                let mut s = Set::create(first, items.len(), &limits);
                for m in items {
                    s.insert(m, &limits);
                }
                Some(s)
            };
            let (sa, sb, sc) = (make(&a), make(&b), make(&c));
            let all = [sa.as_ref(), sb.as_ref(), sc.as_ref()];
            let union_model: BTreeSet<Vec<u8>> = a.iter().chain(&b).chain(&c).cloned().collect();
            let u = union(&all, &limits);
            u.check_invariants();
            prop_assert_eq!(members(&u), union_model);
            let diff_model: BTreeSet<Vec<u8>> = a.iter().filter(|m| !b.contains(*m) && !c.contains(*m)).cloned().collect();
            let d = difference(&all, false, &limits);
            d.check_invariants();
            prop_assert_eq!(members(&d), diff_model);
            if let (Some(sa), Some(sb), Some(sc)) = (&sa, &sb, &sc) {
                let inter_model: BTreeSet<Vec<u8>> = a.iter().filter(|m| b.contains(*m) && c.contains(*m)).cloned().collect();
                let i = intersection(&[sa, sb, sc], &limits);
                i.check_invariants();
                prop_assert_eq!(members(&i), inter_model.clone());
                if !inter_model.is_empty() && fits_intset(&inter_model, &limits) {
                    prop_assert_eq!(i.encoding_name(), "intset");
                }
                let mut count = 0;
                intersection_each(&[sa, sb, sc], |_| { count += 1; true });
                prop_assert_eq!(count, inter_model.len());
            }
        }
    }
}

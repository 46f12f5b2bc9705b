//! A compact sequence of byte strings in one allocation: the small encoding of lists, hashes,
//! sets and sorted sets (Redis's listpack idea, not its byte format).
//!
//! An entry of one byte below 0x80 (a digit, a letter: the values and scores of many small
//! collections) is that byte alone, as Redis's listpack keeps an integer below 128 in one
//! byte. Every other entry is `[tag][bytes][back]`: the tag is `0x80 | len` for a length
//! below 127, else 0xFF and the length in LEB128; `back` is the size of tag and bytes, as
//! `0x80 | size` when that is below 127, else that size in LEB128 byte-reversed followed by
//! 0xFF. An entry's first and last bytes thus say how long it is, so the sequence walks both
//! ways, and an entry is addressed by its byte offset ([`Pos`]). Positions are invalidated by
//! any change before them.
//!
//! Every change reallocates to the exact size, as Redis's `lpInsert` does: listpacks stay
//! small (the `*-max-listpack-*` directives bound them), and memory matters more than the copy.

/// The byte offset of an entry's start.
pub type Pos = usize;

/// Twelve bytes, 4-aligned: a pointer to exactly the encoded entries (none when empty), their
/// length and their count (Redis keeps both in its listpack's header). A small hash, set or
/// sorted set is this inside its key's [`crate::Value`] (see [`crate::types::Packed`]), and
/// this one allocation, which is the entries' exact size (a header in it would push some
/// sizes into the next allocator class: a 255-byte object-shaped hash into a 320-byte block).
///
/// A length of 65,535 bytes or more is kept in the allocation's first eight bytes instead,
/// and a count of 65,535 or more is counted by walking, as Redis does past its header's 16
/// bits. Allocations are 8-aligned, so that a [`crate::types::Packed`] can tell a listpack's
/// pointer from a tagged one.
#[derive(Default)]
#[repr(C, packed(4))]
pub struct Listpack {
    raw: Option<NonNull<u8>>,
    /// The entries' length, or [`BYTES_ELSEWHERE`].
    bytes: u16,
    /// The entry count, or [`COUNT_UNKNOWN`].
    count: u16,
}

/// `bytes` saying the length is in the allocation's first eight bytes.
const BYTES_ELSEWHERE: u16 = u16::MAX;
/// `count` saying the entries must be counted.
const COUNT_UNKNOWN: u16 = u16::MAX;
/// Lengths from here on are kept in the allocation; the unit tests lower it (and the next
/// one) so that every test of the listpack and the types on it walks those paths too.
const ELSEWHERE_FROM: usize = if cfg!(test) { 10_000 } else { BYTES_ELSEWHERE as usize };
/// Counts from here on are counted by walking.
const UNKNOWN_FROM: usize = if cfg!(test) { 150 } else { COUNT_UNKNOWN as usize };
/// Every allocation's alignment (see [`crate::types::Packed`]).
pub(crate) const ALIGN: usize = 8;

/// Where the entries start in the allocation for a length of `bytes`.
fn data_at(bytes: usize) -> usize {
    if bytes >= ELSEWHERE_FROM {
        8
    } else {
        0
    }
}

// SAFETY: a listpack owns its allocation outright (no sharing, no interior mutability), as
// a `Vec<u8>` would.
unsafe impl Send for Listpack {}
// SAFETY: as above; `&Listpack` only reads.
unsafe impl Sync for Listpack {}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, ALIGN).expect("a listpack layout fits")
}

impl Drop for Listpack {
    fn drop(&mut self) {
        if let Some(raw) = self.raw {
            let (bytes, at) = self.extent();
            // SAFETY: allocated with the layout of its entries (see `reshape`).
            unsafe { alloc::dealloc(raw.as_ptr(), layout(at + bytes)) }
        }
    }
}

impl Clone for Listpack {
    fn clone(&self) -> Self {
        let mut copy = Listpack::default();
        copy.reshape(self.len(), self.bytes_len());
        copy.buf_mut().copy_from_slice(self.buf());
        copy
    }
}

impl PartialEq for Listpack {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.buf() == other.buf()
    }
}

impl Eq for Listpack {}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|e| e.escape_ascii().to_string())).finish()
    }
}

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::varint::{encode as encode_varint, get as get_varint, len as varint_len};

/// The tag (and back) byte that marks the long form.
const LONG: u8 = 0xFF;

/// Whether `data` is an entry of one byte: itself.
fn is_single(data: &[u8]) -> bool {
    data.len() == 1 && data[0] < 0x80
}

/// Bytes of the tag for a `len`-byte entry in the tagged form.
fn tag_len(len: usize) -> usize {
    if len < LONG as usize & 0x7f {
        1
    } else {
        1 + varint_len(len)
    }
}

/// Bytes of the back for a tagged entry whose tag and bytes take `head`.
fn back_len(head: usize) -> usize {
    tag_len(head)
}

/// Reads the back that ends just before `end`; returns the size of the entry it closes.
fn entry_len_before(buf: &[u8], end: usize) -> usize {
    let last = buf[end - 1];
    if last < 0x80 {
        return 1;
    }
    if last != LONG {
        return (last & 0x7f) as usize + 1;
    }
    // The LEB128 size, byte-reversed, before the marker.
    let (mut head, mut shift, mut i) = (0usize, 0, end - 1);
    loop {
        i -= 1;
        let b = buf[i];
        head |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return head + (end - i);
        }
        shift += 7;
    }
}

/// The bytes of the entry at `at` and where it ends.
fn entry_at(buf: &[u8], at: usize) -> (&[u8], usize) {
    let tag = buf[at];
    if tag < 0x80 {
        return (&buf[at..at + 1], at + 1);
    }
    let (len, start) = if tag != LONG {
        ((tag & 0x7f) as usize, at + 1)
    } else {
        let (len, used) = get_varint(buf, at + 1);
        (len, at + 1 + used)
    };
    let head = start + len - at;
    (&buf[start..start + len], start + len + back_len(head))
}

/// The size of `data`'s entry.
fn encoded_len(data: &[u8]) -> usize {
    if is_single(data) {
        return 1;
    }
    let head = tag_len(data.len()) + data.len();
    head + back_len(head)
}

/// Writes `data`'s entry into `slot`, which is exactly [`encoded_len`] bytes.
fn write_entry(slot: &mut [u8], data: &[u8]) {
    if is_single(data) {
        slot[0] = data[0];
        return;
    }
    let start = write_tag(slot, data.len());
    let head = start + data.len();
    slot[start..head].copy_from_slice(data);
    if head < LONG as usize & 0x7f {
        slot[head] = 0x80 | head as u8;
    } else {
        let (size, used) = encode_varint(head);
        for (to, from) in slot[head..head + used].iter_mut().zip(size[..used].iter().rev()) {
            *to = *from;
        }
        slot[head + used] = LONG;
    }
}

/// Writes the tag of a `len`-byte tagged entry at the start of `slot`; returns its size.
fn write_tag(slot: &mut [u8], len: usize) -> usize {
    if len < LONG as usize & 0x7f {
        slot[0] = 0x80 | len as u8;
        return 1;
    }
    slot[0] = LONG;
    let (size, used) = encode_varint(len);
    slot[1..1 + used].copy_from_slice(&size[..used]);
    1 + used
}

impl Listpack {
    pub fn new() -> Self {
        Self::default()
    }

    /// The allocation (a copy: the struct is packed, so its fields are read by value).
    fn raw(&self) -> Option<NonNull<u8>> {
        self.raw
    }

    /// (bytes of the entries, where they start in the allocation).
    fn extent(&self) -> (usize, usize) {
        match self.raw() {
            Some(raw) if self.bytes == BYTES_ELSEWHERE => {
                // SAFETY: such an allocation starts with the length, as eight bytes.
                let bytes = unsafe { (raw.as_ptr() as *const u64).read_unaligned() };
                (bytes as usize, 8)
            }
            _ => (self.bytes as usize, 0),
        }
    }

    /// The entries' count, walking them when the struct does not hold it.
    fn count_entries(&self) -> usize {
        if self.count != COUNT_UNKNOWN {
            return self.count as usize;
        }
        let (buf, mut pos, mut count) = (self.buf(), 0, 0);
        while pos < buf.len() {
            pos = entry_at(buf, pos).1;
            count += 1;
        }
        count
    }

    /// The encoded entries.
    fn buf(&self) -> &[u8] {
        let (bytes, at) = self.extent();
        match self.raw() {
            // SAFETY: `bytes` initialized bytes follow the header.
            Some(raw) => unsafe { std::slice::from_raw_parts(raw.as_ptr().add(at), bytes) },
            None => &[],
        }
    }

    fn buf_mut(&mut self) -> &mut [u8] {
        let (bytes, at) = self.extent();
        match self.raw() {
            // SAFETY: as in `buf`, and we own the allocation.
            Some(raw) => unsafe { std::slice::from_raw_parts_mut(raw.as_ptr().add(at), bytes) },
            None => &mut [],
        }
    }

    /// Makes the listpack hold `count` entries in exactly `bytes` bytes, keeping the first
    /// of the old bytes (new bytes are zero until written). No allocation when empty.
    fn reshape(&mut self, count: usize, bytes: usize) {
        self.count = if count >= UNKNOWN_FROM { COUNT_UNKNOWN } else { count as u16 };
        let (old_bytes, old_at) = self.extent();
        if bytes == old_bytes {
            return;
        }
        let old_size = old_at + old_bytes;
        let at = data_at(bytes);
        let size = at + bytes;
        let kept = old_bytes.min(bytes);
        // SAFETY: every allocation is made, resized and freed with the layout of its header
        // and entries, which the header records; data moves inside the allocation's bounds
        // (before a shrink, after a growth), and bytes past what was kept are zeroed before
        // anyone reads them.
        unsafe {
            if bytes == 0 {
                let old = self.raw;
                self.raw = None;
                if let Some(raw) = old {
                    alloc::dealloc(raw.as_ptr(), layout(old_size));
                }
                (self.bytes, self.count) = (0, 0);
                return;
            }
            let raw = match self.raw() {
                None => alloc::alloc(layout(size)),
                Some(raw) if size < old_size => {
                    std::ptr::copy(raw.as_ptr().add(old_at), raw.as_ptr().add(at), kept);
                    alloc::realloc(raw.as_ptr(), layout(old_size), size)
                }
                Some(raw) => alloc::realloc(raw.as_ptr(), layout(old_size), size),
            };
            let Some(raw) = NonNull::new(raw) else { alloc::handle_alloc_error(layout(size)) };
            if size >= old_size && self.raw().is_some() {
                std::ptr::copy(raw.as_ptr().add(old_at), raw.as_ptr().add(at), kept);
            }
            raw.as_ptr().add(at + kept).write_bytes(0, bytes - kept);
            if at == 8 {
                (raw.as_ptr() as *mut u64).write_unaligned(bytes as u64);
            }
            self.raw = Some(raw);
            self.bytes = if at == 8 { BYTES_ELSEWHERE } else { bytes as u16 };
        }
    }

    /// The allocation's address, 0 when empty (see [`crate::types::Packed`]).
    pub(crate) fn address(&self) -> usize {
        self.raw().map_or(0, |raw| raw.as_ptr() as usize)
    }

    /// A listpack-shaped value that only carries `address` (a tagged box's, see
    /// [`crate::types::Packed`]): never to be read, changed or dropped as a listpack.
    pub(crate) fn holding(address: usize) -> Listpack {
        Listpack { raw: NonNull::new(address as *mut u8), bytes: 0, count: 0 }
    }

    /// Prefetches the header and the first entries (see [`crate::prefetch`]).
    #[inline]
    pub fn prefetch(&self) {
        if let Some(raw) = self.raw {
            crate::prefetch::read(raw.as_ptr());
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count_entries()
    }

    pub fn is_empty(&self) -> bool {
        self.raw().is_none()
    }

    /// Bytes of the encoded entries (what the `*-max-listpack-*` size limits compare with).
    pub fn bytes_len(&self) -> usize {
        self.extent().0
    }

    /// Heap bytes held, for MEMORY USAGE.
    pub fn allocated(&self) -> usize {
        let (bytes, at) = self.extent();
        at + bytes
    }

    /// The first entry's position, if any.
    pub fn first(&self) -> Option<Pos> {
        (!self.is_empty()).then_some(0)
    }

    /// The last entry's position, if any.
    pub fn last(&self) -> Option<Pos> {
        self.prev(self.bytes_len())
    }

    /// The position after `pos` (`None` past the end).
    pub fn next(&self, pos: Pos) -> Option<Pos> {
        let end = self.entry_end(pos);
        (end < self.bytes_len()).then_some(end)
    }

    /// The position before `pos`; `pos` may be `bytes_len()` (the end).
    pub fn prev(&self, pos: Pos) -> Option<Pos> {
        if pos == 0 {
            return None;
        }
        Some(pos - entry_len_before(self.buf(), pos))
    }

    /// The entry at `pos`.
    pub fn get_at(&self, pos: Pos) -> &[u8] {
        entry_at(self.buf(), pos).0
    }

    /// Where the entry at `pos` ends (the next entry's start).
    fn entry_end(&self, pos: Pos) -> usize {
        entry_at(self.buf(), pos).1
    }

    /// The position of the entry at `index`; negative counts from the end (-1 is the last).
    /// Walks from the nearer end.
    pub fn seek(&self, index: i64) -> Option<Pos> {
        let len = self.len() as i64;
        let index = if index < 0 { len + index } else { index };
        if index < 0 || index >= len {
            return None;
        }
        if index <= len / 2 {
            let mut pos = self.first()?;
            for _ in 0..index {
                pos = self.next(pos)?;
            }
            Some(pos)
        } else {
            let mut pos = self.last()?;
            for _ in index..len - 1 {
                pos = self.prev(pos)?;
            }
            Some(pos)
        }
    }

    /// The entry at `index` (negative from the end).
    pub fn get(&self, index: i64) -> Option<&[u8]> {
        self.seek(index).map(|pos| self.get_at(pos))
    }

    /// Inserts `data` before the entry at `pos`; `pos == bytes_len()` appends.
    pub fn insert_at(&mut self, pos: Pos, data: &[u8]) {
        // In place: grow by the entry, move the tail up, write the entry in the gap (no
        // temporary buffer, no splice).
        let size = encoded_len(data);
        let (count, old) = (self.len(), self.bytes_len());
        self.reshape(count + 1, old + size);
        let buf = self.buf_mut();
        buf.copy_within(pos..old, pos + size);
        write_entry(&mut buf[pos..pos + size], data);
    }

    pub fn push_back(&mut self, data: &[u8]) {
        self.insert_at(self.bytes_len(), data);
    }

    pub fn push_front(&mut self, data: &[u8]) {
        self.insert_at(0, data);
    }

    /// Replaces the entry at `pos` with `data`.
    pub fn replace_at(&mut self, pos: Pos, data: &[u8]) {
        let end = self.entry_end(pos);
        let (count, total) = (self.len(), self.bytes_len());
        let size = encoded_len(data);
        if size > end - pos {
            self.reshape(count, total + size - (end - pos));
            self.buf_mut().copy_within(end..total, pos + size);
        } else if size < end - pos {
            self.buf_mut().copy_within(end..total, pos + size);
            self.reshape(count, total - (end - pos - size));
        }
        write_entry(&mut self.buf_mut()[pos..pos + size], data);
    }

    /// Removes the entry at `pos`; returns the position of the entry that followed it (which
    /// now starts at `pos`), if any.
    pub fn remove_at(&mut self, pos: Pos) -> Option<Pos> {
        let end = self.entry_end(pos);
        self.cut(pos, end, 1);
        (pos < self.bytes_len()).then_some(pos)
    }

    /// Removes `count` entries starting at the one at `pos`.
    pub fn remove_range_at(&mut self, pos: Pos, count: usize) {
        let mut end = pos;
        let mut removed = 0;
        while removed < count && end < self.bytes_len() {
            end = self.entry_end(end);
            removed += 1;
        }
        self.cut(pos, end, removed);
    }

    /// Removes the bytes `pos..end`, which hold `entries` entries.
    fn cut(&mut self, pos: Pos, end: usize, entries: usize) {
        let (count, total) = (self.len(), self.bytes_len());
        self.buf_mut().copy_within(end..total, pos);
        self.reshape(count - entries, total - (end - pos));
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let pos = self.first()?;
        let value = self.get_at(pos).to_vec();
        self.remove_at(pos);
        Some(value)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let pos = self.last()?;
        let value = self.get_at(pos).to_vec();
        self.remove_at(pos);
        Some(value)
    }

    pub fn clear(&mut self) {
        *self = Listpack::default();
    }

    /// The entries, front to back (double-ended).
    pub fn iter(&self) -> Iter<'_> {
        Iter { lp: self, front: 0, back: self.bytes_len(), left: self.len() }
    }

    /// (position, entry) pairs, front to back.
    pub fn positions(&self) -> impl Iterator<Item = (Pos, &[u8])> + '_ {
        std::iter::successors(self.first(), move |&pos| self.next(pos)).map(move |pos| (pos, self.get_at(pos)))
    }
}

/// A double-ended iterator over a listpack's entries.
#[derive(Clone)]
pub struct Iter<'a> {
    lp: &'a Listpack,
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let pos = self.front;
        self.front = self.lp.entry_end(pos);
        self.left -= 1;
        Some(self.lp.get_at(pos))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let pos = self.lp.prev(self.back)?;
        self.back = pos;
        self.left -= 1;
        Some(self.lp.get_at(pos))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Listpack {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopBack,
        PopFront,
        Insert(usize, Vec<u8>),
        Replace(usize, Vec<u8>),
        Remove(usize),
        RemoveRange(usize, usize),
    }

    fn data() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<u8>(), 120..300)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            data().prop_map(Op::PushBack),
            data().prop_map(Op::PushFront),
            Just(Op::PopBack),
            Just(Op::PopFront),
            (any::<usize>(), data()).prop_map(|(i, d)| Op::Insert(i, d)),
            (any::<usize>(), data()).prop_map(|(i, d)| Op::Replace(i, d)),
            any::<usize>().prop_map(Op::Remove),
            (any::<usize>(), 0usize..4).prop_map(|(i, n)| Op::RemoveRange(i, n)),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec(op(), 0..60)) {
            let mut lp = Listpack::new();
            let mut model: std::collections::VecDeque<Vec<u8>> = Default::default();
            for op in ops {
                match op {
                    Op::PushBack(d) => { lp.push_back(&d); model.push_back(d); }
                    Op::PushFront(d) => { lp.push_front(&d); model.push_front(d); }
                    Op::PopBack => prop_assert_eq!(lp.pop_back(), model.pop_back()),
                    Op::PopFront => prop_assert_eq!(lp.pop_front(), model.pop_front()),
                    Op::Insert(i, d) => {
                        let i = i % (model.len() + 1);
                        let pos = lp.seek(i as i64).unwrap_or(lp.bytes_len());
                        lp.insert_at(pos, &d);
                        model.insert(i, d);
                    }
                    Op::Replace(i, d) if !model.is_empty() => {
                        let i = i % model.len();
                        lp.replace_at(lp.seek(i as i64).unwrap(), &d);
                        model[i] = d;
                    }
                    Op::Remove(i) if !model.is_empty() => {
                        let i = i % model.len();
                        lp.remove_at(lp.seek(i as i64).unwrap());
                        model.remove(i);
                    }
                    Op::RemoveRange(i, n) if !model.is_empty() => {
                        let i = i % model.len();
                        lp.remove_range_at(lp.seek(i as i64).unwrap(), n);
                        for _ in 0..n.min(model.len() - i) { model.remove(i); }
                    }
                    _ => {}
                }
                prop_assert_eq!(lp.len(), model.len());
                let forward: Vec<&[u8]> = lp.iter().collect();
                let expected: Vec<&[u8]> = model.iter().map(|v| v.as_slice()).collect();
                prop_assert_eq!(&forward, &expected);
                let backward: Vec<&[u8]> = lp.iter().rev().collect();
                prop_assert_eq!(backward, expected.iter().rev().copied().collect::<Vec<_>>());
                for (i, v) in model.iter().enumerate() {
                    prop_assert_eq!(lp.get(i as i64), Some(v.as_slice()));
                    prop_assert_eq!(lp.get(i as i64 - model.len() as i64), Some(v.as_slice()));
                }
                prop_assert_eq!(lp.get(model.len() as i64), None);
            }
        }
    }

    #[test]
    fn entries_of_every_length_around_the_forms_walk_both_ways() {
        let mut entries: Vec<Vec<u8>> = (0..300).map(|len| vec![b'x'; len]).collect();
        entries.extend((0..=255u8).map(|byte| vec![byte]));
        entries.push(vec![0xff; 20_000]);
        let mut lp = Listpack::new();
        for entry in &entries {
            lp.push_back(entry);
        }
        let expected: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
        assert_eq!(lp.iter().collect::<Vec<_>>(), expected);
        assert_eq!(lp.iter().rev().collect::<Vec<_>>(), expected.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(lp.bytes_len(), entries.iter().map(|e| encoded_len(e)).sum::<usize>());
    }

    #[test]
    fn the_header_grows_and_shrinks_with_the_count_and_the_bytes() {
        // 127 -> 128 entries and 127 -> 128 bytes each add a header byte; popping takes it back.
        let mut lp = Listpack::new();
        let mut model = std::collections::VecDeque::new();
        for i in 0..200u8 {
            let entry = if i % 50 == 0 { vec![b'y'; 100] } else { vec![i % 100] };
            lp.push_back(&entry);
            model.push_back(entry);
            assert_eq!(lp.allocated(), lp.bytes_len());
        }
        while !model.is_empty() {
            assert_eq!(lp.pop_front(), model.pop_front());
            assert_eq!(lp.iter().rev().count(), model.len());
            assert!(lp.iter().eq(model.iter().map(|e| e.as_slice())));
        }
        assert!(lp.is_empty());
        assert_eq!(lp.allocated(), 0);
    }

    #[test]
    fn an_entry_takes_one_byte_when_it_is_one_byte_below_0x80() {
        assert_eq!(encoded_len(b"7"), 1);
        assert_eq!(encoded_len(&[0x7f]), 1);
        assert_eq!(encoded_len(&[0x80]), 3);
        assert_eq!(encoded_len(b""), 2);
        assert_eq!(encoded_len(b"member:1"), 10);
        assert_eq!(encoded_len(&[b'a'; 125]), 127);
        assert_eq!(encoded_len(&[b'a'; 126]), 129);
        assert_eq!(encoded_len(&[b'a'; 127]), 132);
        let mut lp = Listpack::new();
        for value in [&b"member:0"[..], b"0", b"member:1", b"1"] {
            lp.push_back(value);
        }
        assert_eq!(lp.bytes_len(), 22);
    }

    #[test]
    fn iterators_meet_in_the_middle() {
        let mut lp = Listpack::new();
        for i in 0..5u8 {
            lp.push_back(&[i]);
        }
        let mut it = lp.iter();
        assert_eq!(it.next(), Some(&[0u8][..]));
        assert_eq!(it.next_back(), Some(&[4u8][..]));
        assert_eq!(it.len(), 3);
        assert_eq!(it.collect::<Vec<_>>(), vec![&[1u8][..], &[2], &[3]]);
    }
}

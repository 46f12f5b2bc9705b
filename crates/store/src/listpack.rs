//! A compact sequence of byte strings in one allocation: the small encoding of lists, hashes,
//! sets and sorted sets (Redis's listpack idea, not its byte format).
//!
//! Each entry is `[len: LEB128][bytes][backlen]`, where `backlen` is the LEB128 encoding of
//! the size of `len` + `bytes`, stored byte-reversed so it reads forward when walked from the
//! end. So the sequence walks both ways, and an entry is addressed by its byte offset
//! ([`Pos`]). Positions are invalidated by any change before them.
//!
//! Every change reallocates to the exact size, as Redis's `lpInsert` does: listpacks stay
//! small (the `*-max-listpack-*` directives bound them), and memory matters more than the copy.

/// The byte offset of an entry's start.
pub type Pos = usize;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Listpack {
    buf: Vec<u8>,
    len: u32,
}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|e| e.escape_ascii().to_string())).finish()
    }
}

use crate::varint::{encode as encode_varint, get as get_varint, len as varint_len};

/// Reads a reversed LEB128 value that ends just before `end`; returns (value, bytes used).
fn get_backlen(buf: &[u8], end: usize) -> (usize, usize) {
    let (mut v, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = buf[i];
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (v, end - i);
        }
        shift += 7;
    }
}

/// The encoded form of one entry.
fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0; encoded_len(data)];
    write_entry(&mut out, data);
    out
}

/// The size of `data`'s entry.
fn encoded_len(data: &[u8]) -> usize {
    let head = varint_len(data.len()) + data.len();
    head + varint_len(head)
}

/// Writes `data`'s entry into `slot`, which is exactly [`encoded_len`] bytes.
fn write_entry(slot: &mut [u8], data: &[u8]) {
    let (len, len_size) = encode_varint(data.len());
    slot[..len_size].copy_from_slice(&len[..len_size]);
    let head = len_size + data.len();
    slot[len_size..head].copy_from_slice(data);
    let (back, back_size) = encode_varint(head);
    for (to, from) in slot[head..].iter_mut().zip(back[..back_size].iter().rev()) {
        *to = *from;
    }
}

impl Listpack {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the encoded entries (what the `*-max-listpack-*` size limits compare with).
    pub fn bytes_len(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held, for MEMORY USAGE.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The first entry's position, if any.
    pub fn first(&self) -> Option<Pos> {
        (!self.buf.is_empty()).then_some(0)
    }

    /// The last entry's position, if any.
    pub fn last(&self) -> Option<Pos> {
        self.prev(self.buf.len())
    }

    /// The position after `pos` (`None` past the end).
    pub fn next(&self, pos: Pos) -> Option<Pos> {
        let end = self.entry_end(pos);
        (end < self.buf.len()).then_some(end)
    }

    /// The position before `pos`; `pos` may be `bytes_len()` (the end).
    pub fn prev(&self, pos: Pos) -> Option<Pos> {
        if pos == 0 {
            return None;
        }
        let (head, used) = get_backlen(&self.buf, pos);
        Some(pos - used - head)
    }

    /// The entry at `pos`.
    pub fn get_at(&self, pos: Pos) -> &[u8] {
        let (len, used) = get_varint(&self.buf, pos);
        &self.buf[pos + used..pos + used + len]
    }

    /// Where the entry at `pos` ends (the next entry's start).
    fn entry_end(&self, pos: Pos) -> usize {
        let (len, used) = get_varint(&self.buf, pos);
        let head = used + len;
        pos + head + varint_len(head)
    }

    /// The position of the entry at `index`; negative counts from the end (-1 is the last).
    /// Walks from the nearer end.
    pub fn seek(&self, index: i64) -> Option<Pos> {
        let len = self.len as i64;
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
        let old = self.buf.len();
        self.buf.reserve_exact(size);
        self.buf.resize(old + size, 0);
        self.buf.copy_within(pos..old, pos + size);
        write_entry(&mut self.buf[pos..pos + size], data);
        self.len += 1;
    }

    pub fn push_back(&mut self, data: &[u8]) {
        self.insert_at(self.buf.len(), data);
    }

    pub fn push_front(&mut self, data: &[u8]) {
        self.insert_at(0, data);
    }

    /// Replaces the entry at `pos` with `data`.
    pub fn replace_at(&mut self, pos: Pos, data: &[u8]) {
        let end = self.entry_end(pos);
        let encoded = encode(data);
        if encoded.len() > end - pos {
            self.buf.reserve_exact(encoded.len() - (end - pos));
        }
        self.buf.splice(pos..end, encoded);
        self.shrink();
    }

    /// Removes the entry at `pos`; returns the position of the entry that followed it (which
    /// now starts at `pos`), if any.
    pub fn remove_at(&mut self, pos: Pos) -> Option<Pos> {
        let end = self.entry_end(pos);
        self.buf.drain(pos..end);
        self.len -= 1;
        self.shrink();
        (pos < self.buf.len()).then_some(pos)
    }

    /// Removes `count` entries starting at the one at `pos`.
    pub fn remove_range_at(&mut self, pos: Pos, count: usize) {
        let mut end = pos;
        let mut removed = 0;
        while removed < count && end < self.buf.len() {
            end = self.entry_end(end);
            removed += 1;
        }
        self.buf.drain(pos..end);
        self.len -= removed as u32;
        self.shrink();
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

    fn shrink(&mut self) {
        if self.buf.capacity() > self.buf.len() + self.buf.len() / 4 + 16 {
            self.buf.shrink_to_fit();
        }
    }

    /// The entries, front to back (double-ended).
    pub fn iter(&self) -> Iter<'_> {
        Iter { lp: self, front: 0, back: self.buf.len(), left: self.len as usize }
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

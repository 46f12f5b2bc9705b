//! The list value, in Redis 7.2's two encodings: one [`Listpack`] while the list is small,
//! and a quicklist (a deque of listpack nodes) once it outgrows one node of
//! `list-max-listpack-size`. A quicklist that shrinks back to one node of at most half the
//! limit becomes a listpack again (Redis's `listTypeTryConversion`; the half keeps a list at
//! the threshold from converting on every push and pop).
//!
//! Sizes are counted as Redis counts the bytes of its own listpacks ([`redis_entry_bytes`]),
//! not as our listpack stores them, so the conversions and the node splits happen where
//! Redis's do, and OBJECT ENCODING agrees with Redis. Node splits and merges follow
//! `quicklist.c` (push, insert, replace), because whether a shrinking list is down to one
//! node decides its encoding.
//!
//! What this does not do: quicklist compression (`list-compress-depth`); LZF-compressed
//! nodes would save memory on long lists but cost latency on every access to the middle.

use std::collections::VecDeque;
use std::num::NonZeroU32;

use bytes::Bytes;

use crate::listpack::{Listpack, Pos};
use crate::value::parse_canonical_i64;

/// Redis's SIZE_SAFETY_LIMIT: a node never grows past this many bytes under a count limit.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// What Redis adds to an element's length to estimate its encoded size before an insert.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// The node byte limits of `list-max-listpack-size` -1 ... -5.
const NODE_BYTES_MAX: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// The bytes of an empty Redis listpack: a 6-byte header and the end marker.
const LISTPACK_EMPTY_BYTES: usize = 7;
/// The range Redis clamps a quicklist's own fill factor to.
const FILL_MAX: i32 = (1 << 15) - 1;
const FILL_MIN: i32 = -5;

/// The size of `data` as one entry of a Redis listpack: an integer encoding for a canonical
/// integer, a string encoding otherwise, plus the back-length.
pub fn redis_entry_bytes(data: &[u8]) -> usize {
    let encoded = match parse_canonical_i64(data) {
        Some(n) if (0..=127).contains(&n) => 1,
        Some(n) if (-4096..=4095).contains(&n) => 2,
        Some(n) if i16::try_from(n).is_ok() => 3,
        Some(n) if (-(1 << 23)..(1 << 23)).contains(&n) => 4,
        Some(n) if i32::try_from(n).is_ok() => 5,
        Some(_) => 9,
        None if data.len() < 64 => 1 + data.len(),
        None if data.len() < 4096 => 2 + data.len(),
        None => 5 + data.len(),
    };
    let back = match encoded {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    encoded + back
}

/// (bytes, entries) one node may hold under `fill`; the one not limited is `usize::MAX`
/// (Redis's `quicklistNodeLimit`).
fn node_limit(fill: i32) -> (usize, usize) {
    if fill >= 0 {
        (usize::MAX, (fill as usize).max(1))
    } else {
        let level = ((-(fill as i64)) - 1).min(NODE_BYTES_MAX.len() as i64 - 1) as usize;
        (NODE_BYTES_MAX[level], usize::MAX)
    }
}

/// Whether a node of `bytes` and `count` entries is over `fill` (`quicklistNodeExceedsLimit`).
fn exceeds_limit(fill: i32, bytes: usize, count: usize) -> bool {
    let (bytes_max, count_max) = node_limit(fill);
    if bytes_max != usize::MAX {
        bytes > bytes_max
    } else {
        bytes > SIZE_SAFETY_LIMIT || count > count_max
    }
}

/// Whether an element gets a node of its own (a "plain" node in Redis).
fn is_large(len: usize, fill: i32) -> bool {
    if fill >= 0 {
        len > SIZE_SAFETY_LIMIT
    } else {
        len > node_limit(fill).0
    }
}

/// One listpack with its size as Redis would count it. Sixteen bytes, and never zero in its
/// last four, so that a small list (one node, or a box of a quicklist) is sixteen too.
#[derive(Clone, Debug)]
struct Node {
    lp: Listpack,
    /// Bytes of the equivalent Redis listpack (at least an empty one's, saturating at
    /// [`NODE_BYTES_SATURATED`]; only compared with node limits), and [`PLAIN`]: one large
    /// element alone (Redis's plain node), never merged, never grown.
    meta: NonZeroU32,
}

/// The bit of `Node::meta` that marks a plain node.
const PLAIN: u32 = 1 << 31;
/// Where a node's byte count saturates.
const NODE_BYTES_SATURATED: usize = (PLAIN - 1) as usize;

impl Default for Node {
    fn default() -> Self {
        Node { lp: Listpack::new(), meta: NonZeroU32::new(LISTPACK_EMPTY_BYTES as u32).expect("not zero") }
    }
}

impl Node {
    fn with(data: &[u8], plain: bool) -> Node {
        let mut node = Node::default();
        if plain {
            node.meta |= PLAIN;
        }
        node.lp.push_back(data);
        node.grew(data);
        node
    }

    fn len(&self) -> usize {
        self.lp.len()
    }

    fn bytes(&self) -> usize {
        (self.meta.get() & !PLAIN) as usize
    }

    fn plain(&self) -> bool {
        self.meta.get() & PLAIN != 0
    }

    /// Records `bytes`, kept between an empty listpack's and [`NODE_BYTES_SATURATED`].
    fn set_bytes(&mut self, bytes: usize) {
        let bytes = bytes.clamp(LISTPACK_EMPTY_BYTES, NODE_BYTES_SATURATED) as u32;
        self.meta = NonZeroU32::new(bytes | (self.meta.get() & PLAIN)).expect("at least an empty listpack's bytes");
    }

    fn grew(&mut self, data: &[u8]) {
        self.set_bytes(self.bytes().saturating_add(redis_entry_bytes(data)));
    }

    fn shrank(&mut self, data: &[u8]) {
        self.set_bytes(self.bytes().saturating_sub(redis_entry_bytes(data)));
    }

    fn push(&mut self, data: &[u8], front: bool) {
        if front {
            self.lp.push_front(data);
        } else {
            self.lp.push_back(data);
        }
        self.grew(data);
    }

    fn insert_at(&mut self, pos: Pos, data: &[u8]) {
        self.lp.insert_at(pos, data);
        self.grew(data);
    }

    /// Removes the entry at `pos`; returns the position of the one that followed it.
    fn remove_at(&mut self, pos: Pos) -> Option<Pos> {
        let size = redis_entry_bytes(self.lp.get_at(pos));
        self.set_bytes(self.bytes().saturating_sub(size));
        self.lp.remove_at(pos)
    }

    fn replace_at(&mut self, pos: Pos, data: &[u8]) {
        let old = redis_entry_bytes(self.lp.get_at(pos));
        self.set_bytes(self.bytes().saturating_sub(old).saturating_add(redis_entry_bytes(data)));
        self.lp.replace_at(pos, data);
    }

    /// Removes `count` entries from one end and returns them in removal order.
    fn take(&mut self, front: bool, count: usize) -> Vec<Bytes> {
        let count = count.min(self.len());
        let taken: Vec<Bytes> = if front {
            self.lp.iter().take(count).map(Bytes::copy_from_slice).collect()
        } else {
            self.lp.iter().rev().take(count).map(Bytes::copy_from_slice).collect()
        };
        self.drop_end(front, count, &taken);
        taken
    }

    /// Removes `count` entries from one end without returning them.
    fn discard(&mut self, front: bool, count: usize) {
        let count = count.min(self.len());
        let mut removed = 0usize;
        let iter: Box<dyn Iterator<Item = &[u8]>> = if front { Box::new(self.lp.iter()) } else { Box::new(self.lp.iter().rev()) };
        for data in iter.take(count) {
            removed += redis_entry_bytes(data);
        }
        self.set_bytes(self.bytes().saturating_sub(removed));
        self.remove_end(front, count);
    }

    fn drop_end(&mut self, front: bool, count: usize, removed: &[Bytes]) {
        for data in removed {
            self.shrank(data);
        }
        self.remove_end(front, count);
    }

    fn remove_end(&mut self, front: bool, count: usize) {
        if count == 0 {
            return;
        }
        let start = if front { self.lp.first() } else { self.lp.seek(-(count as i64)) };
        if let Some(pos) = start {
            self.lp.remove_range_at(pos, count);
        }
    }

    /// Splits off the entries from `index` on into a new node.
    fn split_off(&mut self, index: usize) -> Node {
        let mut tail = Node::default();
        for data in self.lp.iter().skip(index) {
            tail.lp.push_back(data);
            tail.grew(data);
        }
        let removed = self.len() - index;
        self.discard(false, removed);
        tail
    }

    /// Whether one more element of `len` bytes may go into this node
    /// (`_quicklistNodeAllowInsert`).
    fn allows_insert(&self, len: usize, fill: i32) -> bool {
        if self.plain() || is_large(len, fill) {
            return false;
        }
        !exceeds_limit(fill, self.bytes() + len + SIZE_ESTIMATE_OVERHEAD, self.len() + 1)
    }
}

/// Whether two neighbouring nodes may become one (`_quicklistNodeAllowMerge`).
fn allows_merge(a: &Node, b: &Node, fill: i32) -> bool {
    if a.plain() || b.plain() {
        return false;
    }
    !exceeds_limit(fill, (a.bytes() + b.bytes()).saturating_sub(LISTPACK_EMPTY_BYTES), a.len() + b.len())
}

/// A deque of listpack nodes.
#[derive(Clone, Debug)]
struct Quicklist {
    nodes: VecDeque<Node>,
    /// Elements over all nodes.
    len: usize,
    /// The fill factor this quicklist was created with, clamped as Redis clamps it.
    fill: i32,
}

impl Quicklist {
    fn new(fill: i32) -> Quicklist {
        Quicklist { nodes: VecDeque::new(), len: 0, fill: fill.clamp(FILL_MIN, FILL_MAX) }
    }

    /// The node holding element `index` (< len) and the index within it, walking from the
    /// nearer end.
    fn locate(&self, index: usize) -> (usize, usize) {
        debug_assert!(index < self.len, "locate within the list");
        if index < self.len / 2 {
            let mut left = index;
            for (k, node) in self.nodes.iter().enumerate() {
                if left < node.len() {
                    return (k, left);
                }
                left -= node.len();
            }
        } else {
            let mut from_end = self.len - 1 - index;
            for (k, node) in self.nodes.iter().enumerate().rev() {
                if from_end < node.len() {
                    return (k, node.len() - 1 - from_end);
                }
                from_end -= node.len();
            }
        }
        unreachable!("the node lengths add up to len")
    }

    fn push(&mut self, data: &[u8], front: bool) {
        let fill = self.fill;
        self.len += 1;
        if is_large(data.len(), fill) {
            let node = Node::with(data, true);
            if front {
                self.nodes.push_front(node)
            } else {
                self.nodes.push_back(node)
            }
            return;
        }
        let end = if front { self.nodes.front_mut() } else { self.nodes.back_mut() };
        match end {
            Some(node) if node.allows_insert(data.len(), fill) => node.push(data, front),
            _ => {
                let node = Node::with(data, false);
                if front {
                    self.nodes.push_front(node)
                } else {
                    self.nodes.push_back(node)
                }
            }
        }
    }

    /// Removes `count` elements from one end, whole nodes where they are covered.
    fn discard(&mut self, front: bool, mut count: usize) {
        count = count.min(self.len);
        self.len -= count;
        while count > 0 {
            let node = if front { self.nodes.front_mut() } else { self.nodes.back_mut() }.expect("elements left");
            if node.len() <= count {
                count -= node.len();
                if front {
                    self.nodes.pop_front();
                } else {
                    self.nodes.pop_back();
                }
            } else {
                node.discard(front, count);
                count = 0;
            }
        }
    }

    fn take(&mut self, front: bool, count: usize) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(count.min(self.len));
        while out.len() < count && self.len > 0 {
            let node = if front { self.nodes.front_mut() } else { self.nodes.back_mut() }.expect("elements left");
            let taken = node.take(front, count - out.len());
            self.len -= taken.len();
            out.extend(taken);
            if node.len() == 0 {
                if front {
                    self.nodes.pop_front();
                } else {
                    self.nodes.pop_back();
                }
            }
        }
        out
    }

    /// Merges node `k + 1` into node `k`.
    fn merge_next_into(&mut self, k: usize) {
        let next = self.nodes.remove(k + 1).expect("a next node");
        let node = &mut self.nodes[k];
        for data in next.lp.iter() {
            node.lp.push_back(data);
        }
        node.set_bytes(node.bytes() + next.bytes() - LISTPACK_EMPTY_BYTES);
    }

    fn can_merge(&self, a: usize, b: usize) -> bool {
        allows_merge(&self.nodes[a], &self.nodes[b], self.fill)
    }

    /// Merges the nodes around `center` where they fit (`_quicklistMergeNodes`).
    fn merge_around(&mut self, mut center: usize) {
        if center >= 2 && self.can_merge(center - 2, center - 1) {
            self.merge_next_into(center - 2);
            center -= 1;
        }
        if center + 2 < self.nodes.len() && self.can_merge(center + 1, center + 2) {
            self.merge_next_into(center + 1);
        }
        let target = if center >= 1 && self.can_merge(center - 1, center) {
            self.merge_next_into(center - 1);
            center - 1
        } else {
            center
        };
        if target + 1 < self.nodes.len() && self.can_merge(target, target + 1) {
            self.merge_next_into(target);
        }
    }

    /// Inserts `data` before or after element `offset` of node `k` (`_quicklistInsert`).
    fn insert(&mut self, k: usize, offset: usize, data: &[u8], after: bool) {
        let fill = self.fill;
        self.len += 1;
        let node_len = self.nodes[k].len();
        let at_tail = after && offset == node_len - 1;
        let at_head = !after && offset == 0;
        if is_large(data.len(), fill) {
            let plain = Node::with(data, true);
            if self.nodes[k].plain() || at_tail || at_head {
                self.nodes.insert(if after { k + 1 } else { k }, plain);
            } else if after {
                let rest = self.nodes[k].split_off(offset + 1);
                self.nodes.insert(k + 1, plain);
                self.nodes.insert(k + 2, rest);
            } else {
                let rest = self.nodes[k].split_off(offset);
                self.nodes.insert(k + 1, plain);
                self.nodes.insert(k + 2, rest);
            }
            return;
        }
        let full = !self.nodes[k].allows_insert(data.len(), fill);
        if !full {
            let node = &mut self.nodes[k];
            let pos = node.lp.seek(offset as i64).expect("offset within the node");
            let pos = if after { node.lp.next(pos).unwrap_or(node.lp.bytes_len()) } else { pos };
            node.insert_at(pos, data);
            return;
        }
        let avail_next = at_tail && self.nodes.get(k + 1).is_some_and(|n| n.allows_insert(data.len(), fill));
        let avail_prev = at_head && k > 0 && self.nodes[k - 1].allows_insert(data.len(), fill);
        if avail_next {
            self.nodes[k + 1].push(data, true);
        } else if avail_prev {
            self.nodes[k - 1].push(data, false);
        } else if at_tail {
            self.nodes.insert(k + 1, Node::with(data, false));
        } else if at_head {
            self.nodes.insert(k, Node::with(data, false));
        } else if after {
            // Split after the pivot: the new node takes what follows it, the element first.
            let mut rest = self.nodes[k].split_off(offset + 1);
            rest.push(data, true);
            self.nodes.insert(k + 1, rest);
            self.merge_around(k);
        } else {
            // Split before the pivot: the new node takes what precedes it, the element last.
            let rest = self.nodes[k].split_off(offset);
            let mut head = std::mem::replace(&mut self.nodes[k], rest);
            head.push(data, false);
            self.nodes.insert(k, head);
            self.merge_around(k + 1);
        }
    }

    /// Replaces element `offset` of node `k` (`quicklistReplaceEntry`).
    fn replace(&mut self, k: usize, offset: usize, data: &[u8]) {
        let fill = self.fill;
        let large = is_large(data.len(), fill);
        let node = &mut self.nodes[k];
        let pos = node.lp.seek(offset as i64).expect("offset within the node");
        if !node.plain() && !large {
            let old = redis_entry_bytes(node.lp.get_at(pos));
            let new_bytes = (node.bytes() + data.len() + SIZE_ESTIMATE_OVERHEAD).saturating_sub(old);
            if !exceeds_limit(fill, new_bytes, node.len()) {
                node.replace_at(pos, data);
                return;
            }
        }
        if node.plain() {
            if large {
                *node = Node::with(data, true);
            } else {
                // Insert after the plain node, then drop it.
                self.insert(k, 0, data, true);
                self.nodes.remove(k);
                self.len -= 1;
            }
            return;
        }
        // The node is full or the element is large: split after the entry, put the element
        // in a node of its own after it, and delete the old entry.
        if offset + 1 < node.len() {
            let rest = node.split_off(offset + 1);
            self.nodes.insert(k + 1, rest);
        }
        self.nodes.insert(k + 1, Node::with(data, large));
        if self.nodes[k].len() == 1 {
            self.nodes.remove(k);
        } else {
            let node = &mut self.nodes[k];
            let last = node.lp.last().expect("not empty");
            node.remove_at(last);
            self.merge_around(k + 1);
        }
    }
}

#[derive(Clone, Debug)]
enum Repr {
    Listpack(Node),
    Quicklist(Box<Quicklist>),
}

/// A list of byte strings.
#[derive(Clone, Debug)]
pub struct List {
    repr: Repr,
}

impl Default for List {
    fn default() -> Self {
        List { repr: Repr::Listpack(Node::default()) }
    }
}

impl PartialEq for List {
    /// Two lists are equal when they hold the same elements, whatever their encoding.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// The nodes of a list, in order (two slices, as a deque stores them).
type Nodes<'a> = std::iter::Chain<std::slice::Iter<'a, Node>, std::slice::Iter<'a, Node>>;

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(node) => node.len(),
            Repr::Quicklist(ql) => ql.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Quicklist(_) => "quicklist",
        }
    }

    /// Bytes this list uses, for MEMORY USAGE: its own struct (the box a [`crate::Value`]
    /// holds), then a listpack's buffer exactly, or a quicklist's box and node array (its
    /// capacity) exactly and its nodes' listpack buffers sampled. As Redis's
    /// `objectComputeSize` does for a quicklist, the sample is the first `samples` nodes, not
    /// elements, scaled to the node count (all nodes when 0; see
    /// [`crate::types::sampled_bytes`]): a node is one allocation of up to 8 KiB by default.
    /// The allocator's rounding up is not counted.
    pub fn memory_usage(&self, samples: usize) -> usize {
        let repr = match &self.repr {
            Repr::Listpack(node) => node.lp.allocated(),
            Repr::Quicklist(ql) => {
                let buffers = crate::types::sampled_bytes(ql.nodes.len(), samples, ql.nodes.iter().map(|node| node.lp.allocated()));
                std::mem::size_of::<Quicklist>() + ql.nodes.capacity() * std::mem::size_of::<Node>() + buffers
            }
        };
        std::mem::size_of::<List>() + repr
    }

    /// How many nodes a quicklist has (1 for a listpack), for tests and DEBUG.
    pub fn node_count(&self) -> usize {
        match &self.repr {
            Repr::Listpack(_) => 1,
            Repr::Quicklist(ql) => ql.nodes.len(),
        }
    }

    /// The nodes from the `from`-th on.
    fn nodes_from(&self, from: usize) -> Nodes<'_> {
        match &self.repr {
            Repr::Listpack(node) => std::slice::from_ref(node)[from.min(1)..].iter().chain([].iter()),
            Repr::Quicklist(ql) => {
                let (a, b) = ql.nodes.as_slices();
                if from <= a.len() {
                    a[from..].iter().chain(b.iter())
                } else {
                    a[a.len()..].iter().chain(b[(from - a.len()).min(b.len())..].iter())
                }
            }
        }
    }

    /// The elements, front to back (double-ended).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.nodes_from(0).flat_map(|node| node.lp.iter())
    }

    /// (node, index within it) of element `index` (< len).
    fn locate(&self, index: usize) -> (usize, usize) {
        match &self.repr {
            Repr::Listpack(_) => (0, index),
            Repr::Quicklist(ql) => ql.locate(index),
        }
    }

    /// The elements from `index` towards the tail (`forward`) or towards the head.
    pub fn iter_from(&self, index: usize, forward: bool) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        if index >= self.len() {
            return Box::new(std::iter::empty());
        }
        let (k, offset) = self.locate(index);
        match (&self.repr, forward) {
            (Repr::Listpack(node), true) => Box::new(node.lp.iter().skip(offset)),
            (Repr::Listpack(node), false) => Box::new(node.lp.iter().rev().skip(node.len() - 1 - offset)),
            (Repr::Quicklist(ql), true) => Box::new(ql.nodes.range(k..).flat_map(|node| node.lp.iter()).skip(offset)),
            (Repr::Quicklist(ql), false) => Box::new(ql.nodes.range(..=k).rev().flat_map(|node| node.lp.iter().rev()).skip(ql.nodes[k].len() - 1 - offset)),
        }
    }

    /// The element at `index`; negative counts from the tail (-1 is the last).
    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let index = resolve_index(index, self.len())?;
        let (k, offset) = self.locate(index);
        self.nodes_from(k).next()?.lp.get(offset as i64)
    }

    /// Converts a listpack that would outgrow one node with `add_count` more elements of
    /// `add_bytes` into a quicklist (Redis converts before the elements go in).
    fn grow(&mut self, add_bytes: usize, add_count: usize, fill: i32) {
        let Repr::Listpack(node) = &mut self.repr else { return };
        if !exceeds_limit(fill, node.bytes().saturating_add(add_bytes), node.len().saturating_add(add_count)) {
            return;
        }
        let node = std::mem::take(node);
        let mut ql = Quicklist::new(fill);
        if node.len() > 0 {
            ql.len = node.len();
            ql.nodes.push_back(node);
        }
        self.repr = Repr::Quicklist(Box::new(ql));
    }

    /// Converts a quicklist that is down to one node of at most half of `fill` back into a
    /// listpack.
    fn shrink(&mut self, fill: i32) {
        let Repr::Quicklist(ql) = &mut self.repr else { return };
        if ql.nodes.len() != 1 || ql.nodes[0].plain() {
            return;
        }
        let (bytes_max, count_max) = node_limit(fill);
        if ql.nodes[0].bytes() > bytes_max / 2 || ql.len > count_max / 2 {
            return;
        }
        let node = ql.nodes.pop_front().expect("one node");
        self.repr = Repr::Listpack(node);
    }

    /// Pushes `elements` one by one at the head (`front`) or the tail, converting first if
    /// they would not fit one node.
    pub fn push<E: AsRef<[u8]>>(&mut self, elements: &[E], front: bool, fill: i32) {
        let add_bytes = elements.iter().map(|e| e.as_ref().len()).fold(0usize, usize::saturating_add);
        self.grow(add_bytes, elements.len(), fill);
        match &mut self.repr {
            Repr::Listpack(node) => {
                for element in elements {
                    node.push(element.as_ref(), front);
                }
            }
            Repr::Quicklist(ql) => {
                for element in elements {
                    ql.push(element.as_ref(), front);
                }
            }
        }
    }

    /// Removes up to `count` elements from the head (`front`) or the tail and returns them in
    /// the order they were removed.
    pub fn pop(&mut self, front: bool, count: usize, fill: i32) -> Vec<Bytes> {
        let taken = match &mut self.repr {
            Repr::Listpack(node) => node.take(front, count),
            Repr::Quicklist(ql) => ql.take(front, count),
        };
        if !taken.is_empty() && !self.is_empty() {
            self.shrink(fill);
        }
        taken
    }

    /// Moves one element from one end to an end of the same list (LMOVE with one key), in
    /// Redis's order: pop, convert for the push, push, then convert for the pop.
    pub fn rotate(&mut self, from_front: bool, to_front: bool, fill: i32) -> Option<Bytes> {
        let element = match &mut self.repr {
            Repr::Listpack(node) => node.take(from_front, 1),
            Repr::Quicklist(ql) => ql.take(from_front, 1),
        }
        .pop()?;
        self.push(&[&element], to_front, fill);
        self.shrink(fill);
        Some(element)
    }

    /// Replaces the element at `index` (negative from the tail); false when out of range.
    pub fn set(&mut self, index: i64, data: &[u8], fill: i32) -> bool {
        self.grow(data.len(), 1, fill);
        let Some(index) = resolve_index(index, self.len()) else {
            return false;
        };
        let (k, offset) = self.locate(index);
        match &mut self.repr {
            Repr::Listpack(node) => {
                let pos = node.lp.seek(offset as i64).expect("index within the list");
                node.replace_at(pos, data);
            }
            Repr::Quicklist(ql) => ql.replace(k, offset, data),
        }
        self.shrink(fill);
        true
    }

    /// Inserts `data` before or after the first element equal to `pivot`; false when there
    /// is none. Like Redis, converts for the new element before looking for the pivot.
    pub fn insert(&mut self, pivot: &[u8], data: &[u8], after: bool, fill: i32) -> bool {
        self.grow(data.len(), 1, fill);
        let Some(index) = self.iter().position(|e| e == pivot) else {
            return false;
        };
        let (k, offset) = self.locate(index);
        match &mut self.repr {
            Repr::Listpack(node) => {
                let pos = node.lp.seek(offset as i64).expect("index within the list");
                let pos = if after { node.lp.next(pos).unwrap_or(node.lp.bytes_len()) } else { pos };
                node.insert_at(pos, data);
            }
            Repr::Quicklist(ql) => ql.insert(k, offset, data, after),
        }
        true
    }

    /// Removes elements equal to `element`: `count` > 0 the first `count` from the head,
    /// < 0 the first `-count` from the tail, 0 all. Returns how many went.
    pub fn remove(&mut self, element: &[u8], count: i64, fill: i32) -> usize {
        let limit = if count == 0 { usize::MAX } else { usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX) };
        let from_tail = count < 0;
        let mut removed = 0;
        match &mut self.repr {
            Repr::Listpack(node) => removed = remove_in_node(node, element, from_tail, limit),
            Repr::Quicklist(ql) => {
                let mut k = if from_tail { ql.nodes.len() } else { 0 };
                loop {
                    if from_tail {
                        if k == 0 {
                            break;
                        }
                        k -= 1;
                    } else if k >= ql.nodes.len() {
                        break;
                    }
                    let gone = remove_in_node(&mut ql.nodes[k], element, from_tail, limit - removed);
                    removed += gone;
                    ql.len -= gone;
                    if ql.nodes[k].len() == 0 {
                        ql.nodes.remove(k);
                    } else if !from_tail {
                        k += 1;
                    }
                    if removed == limit {
                        break;
                    }
                }
            }
        }
        if removed > 0 && !self.is_empty() {
            self.shrink(fill);
        }
        removed
    }

    /// Removes `head` elements from the head and `tail` from the tail (LTRIM).
    pub fn trim(&mut self, head: usize, tail: usize, fill: i32) {
        match &mut self.repr {
            Repr::Listpack(node) => {
                node.discard(true, head);
                node.discard(false, tail);
            }
            Repr::Quicklist(ql) => {
                ql.discard(true, head);
                ql.discard(false, tail);
            }
        }
        if !self.is_empty() {
            self.shrink(fill);
        }
    }

    /// Asserts that the lengths, the sizes and the node limits agree.
    pub fn check_invariants(&self) {
        match &self.repr {
            Repr::Listpack(node) => check_node(node),
            Repr::Quicklist(ql) => {
                assert_eq!(ql.len, ql.nodes.iter().map(Node::len).sum::<usize>(), "the quicklist length is the sum of its nodes");
                for node in &ql.nodes {
                    assert!(node.len() > 0, "a quicklist has no empty node");
                    assert!(!node.plain() || node.len() == 1, "a plain node holds one element");
                    check_node(node);
                }
            }
        }
    }
}

fn check_node(node: &Node) {
    let bytes = LISTPACK_EMPTY_BYTES + node.lp.iter().map(redis_entry_bytes).sum::<usize>();
    assert_eq!(node.bytes(), bytes.min(NODE_BYTES_SATURATED), "a node's size is that of its entries");
}

/// Removes up to `limit` entries equal to `element` from one node, walking from the head or
/// the tail; returns how many.
fn remove_in_node(node: &mut Node, element: &[u8], from_tail: bool, limit: usize) -> usize {
    let mut removed = 0;
    if from_tail {
        let mut at = node.lp.last();
        while let Some(pos) = at {
            if removed == limit {
                break;
            }
            let previous = node.lp.prev(pos);
            if node.lp.get_at(pos) == element {
                node.remove_at(pos);
                removed += 1;
            }
            at = previous;
        }
    } else {
        let mut at = node.lp.first();
        while let Some(pos) = at {
            if removed == limit {
                break;
            }
            at = if node.lp.get_at(pos) == element {
                removed += 1;
                node.remove_at(pos)
            } else {
                node.lp.next(pos)
            };
        }
    }
    removed
}

/// A Redis index (negative from the tail) as an offset within `len`.
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let index = if index < 0 { index.checked_add(len)? } else { index };
    (0..len).contains(&index).then_some(index as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A list of `len` 10-byte elements "value:NNNN" pushed under `fill`.
    fn uniform_list(len: usize, fill: i32) -> List {
        let mut list = List::new();
        for i in 0..len {
            list.push(&[format!("value:{:04}", i % 10_000)], false, fill);
        }
        list
    }

    #[test]
    fn a_quicklists_estimate_grows_about_linearly_with_its_elements() {
        // 100 elements a node: 10 and 100 nodes of 1,200 bytes each.
        let (small, big) = (uniform_list(1_000, 100).memory_usage(0), uniform_list(10_000, 100).memory_usage(0));
        assert_eq!(uniform_list(1_000, 100).node_count(), 10);
        // Ten times the buffers and node headers (about 1,240 bytes a node); the node
        // array's capacity is a power of two (16 and 128 slots) and the fixed part under 100
        // bytes: 9x to 11x (9.8x when written).
        assert!(big > small * 9, "10,000 elements: {big} bytes, 1,000 elements: {small} bytes");
        assert!(big < small * 11, "10,000 elements: {big} bytes, 1,000 elements: {small} bytes");
    }

    #[test]
    fn a_quicklists_estimate_from_five_samples_is_close_to_the_full_count() {
        // Redis's default fill (8 KiB nodes), and a last node only partly full.
        let list = uniform_list(100_000, -2);
        assert_eq!(list.encoding_name(), "quicklist");
        let (exact, sampled) = (list.memory_usage(0), list.memory_usage(5));
        assert!(sampled.abs_diff(exact) * 4 < exact, "sampled {sampled} bytes, exact {exact} bytes");
    }

    #[test]
    fn a_listpack_list_is_smaller_than_the_same_elements_in_a_quicklist() {
        let listpack = uniform_list(100, -2);
        let quicklist = uniform_list(100, 10);
        assert_eq!((listpack.encoding_name(), quicklist.encoding_name()), ("listpack", "quicklist"));
        assert!(
            listpack.memory_usage(0) < quicklist.memory_usage(0),
            "listpack {} bytes, quicklist {} bytes",
            listpack.memory_usage(0),
            quicklist.memory_usage(0)
        );
        // A listpack is its header and buffer: each element 1 + 10 + 1 bytes.
        assert_eq!(listpack.memory_usage(0), std::mem::size_of::<List>() + 100 * 12);
    }

    #[test]
    fn entry_sizes_follow_redis_listpack_encodings() {
        assert_eq!(redis_entry_bytes(b"7"), 2);
        assert_eq!(redis_entry_bytes(b"-1"), 3);
        assert_eq!(redis_entry_bytes(b"4095"), 3);
        assert_eq!(redis_entry_bytes(b"30000"), 4);
        assert_eq!(redis_entry_bytes(b"1000000"), 5);
        assert_eq!(redis_entry_bytes(b"100000000"), 6);
        assert_eq!(redis_entry_bytes(b"10000000000"), 10);
        assert_eq!(redis_entry_bytes(b"07"), 4, "not canonical: a string");
        assert_eq!(redis_entry_bytes(b"hello"), 7);
        assert_eq!(redis_entry_bytes(&[b'x'; 63]), 65);
        assert_eq!(redis_entry_bytes(&[b'x'; 64]), 67);
        assert_eq!(redis_entry_bytes(&[b'x'; 200]), 204);
    }

    #[test]
    fn a_list_converts_past_a_count_limit_and_back_below_half_of_it() {
        let mut list = List::new();
        list.push(&[b"a", b"b", b"c", b"d"], false, 4);
        assert_eq!(list.encoding_name(), "listpack");
        list.push(&[b"e"], false, 4);
        assert_eq!(list.encoding_name(), "quicklist");
        assert_eq!(list.pop(false, 1, 4), vec![Bytes::from_static(b"e")]);
        assert_eq!(list.encoding_name(), "quicklist", "one node of 4 is more than half of 4");
        assert_eq!(list.pop(true, 1, 4).len(), 1);
        assert_eq!(list.encoding_name(), "quicklist", "3 elements are more than half of 4");
        list.pop(true, 1, 4);
        assert_eq!(list.encoding_name(), "listpack");
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![&b"c"[..], b"d"]);
        list.check_invariants();
    }

    #[test]
    fn a_list_converts_past_a_size_limit() {
        let mut list = List::new();
        let big = vec![b'x'; 4000];
        list.push(&[&big], false, -1);
        assert_eq!(list.encoding_name(), "listpack");
        list.push(&[b"12345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345"], false, -1);
        assert_eq!(list.encoding_name(), "quicklist", "4007 + 95 bytes pass 4096");
        list.check_invariants();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<Vec<u8>>),
        Pop(bool, usize),
        Set(i64, Vec<u8>),
        Insert(usize, Vec<u8>, bool),
        Remove(usize, i64),
        Trim(usize, usize),
    }

    fn data() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => proptest::collection::vec(b'a'..b'e', 0..3),
            2 => (0u32..300).prop_map(|n| n.to_string().into_bytes()),
            1 => proptest::collection::vec(any::<u8>(), 50..120),
            1 => proptest::collection::vec(b'z'..=b'z', 300..600),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), proptest::collection::vec(data(), 1..6)).prop_map(|(f, d)| Op::Push(f, d)),
            2 => (any::<bool>(), 0usize..5).prop_map(|(f, n)| Op::Pop(f, n)),
            1 => (-12i64..12, data()).prop_map(|(i, d)| Op::Set(i, d)),
            2 => (any::<usize>(), data(), any::<bool>()).prop_map(|(i, d, a)| Op::Insert(i, d, a)),
            1 => (any::<usize>(), -3i64..3).prop_map(|(i, c)| Op::Remove(i, c)),
            1 => (0usize..4, 0usize..4).prop_map(|(h, t)| Op::Trim(h, t)),
        ]
    }

    proptest! {
        /// The list against a VecDeque, with fills small enough that conversions, splits and
        /// merges all happen; the invariants are checked after every operation.
        #[test]
        fn behaves_like_a_deque(fill in prop_oneof![Just(1), Just(2), Just(3), Just(5), Just(-1), Just(-2)], ops in proptest::collection::vec(op(), 0..80)) {
            let mut list = List::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(front, elements) => {
                        list.push(&elements, front, fill);
                        for e in elements {
                            if front { model.push_front(e) } else { model.push_back(e) }
                        }
                    }
                    Op::Pop(front, n) => {
                        let got = list.pop(front, n, fill);
                        let want: Vec<Bytes> = (0..n).map_while(|_| if front { model.pop_front() } else { model.pop_back() }).map(Bytes::from).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Set(index, data) => {
                        let ok = list.set(index, &data, fill);
                        let at = resolve_index(index, model.len());
                        prop_assert_eq!(ok, at.is_some());
                        if let Some(at) = at { model[at] = data; }
                    }
                    Op::Insert(pick, data, after) => {
                        let pivot = if model.is_empty() { b"none".to_vec() } else { model[pick % model.len()].clone() };
                        let ok = list.insert(&pivot, &data, after, fill);
                        let at = model.iter().position(|e| *e == pivot);
                        prop_assert_eq!(ok, at.is_some());
                        if let Some(at) = at { model.insert(if after { at + 1 } else { at }, data); }
                    }
                    Op::Remove(pick, count) => {
                        let element = if model.is_empty() { b"none".to_vec() } else { model[pick % model.len()].clone() };
                        let removed = list.remove(&element, count, fill);
                        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                        let mut gone = 0;
                        if count < 0 {
                            let mut i = model.len();
                            while i > 0 && gone < limit { i -= 1; if model[i] == element { model.remove(i); gone += 1; } }
                        } else {
                            let mut i = 0;
                            while i < model.len() && gone < limit { if model[i] == element { model.remove(i); gone += 1; } else { i += 1; } }
                        }
                        prop_assert_eq!(removed, gone);
                    }
                    Op::Trim(head, tail) => {
                        list.trim(head, tail, fill);
                        for _ in 0..head { model.pop_front(); }
                        for _ in 0..tail { model.pop_back(); }
                    }
                }
                list.check_invariants();
                prop_assert_eq!(list.len(), model.len());
                let forward: Vec<&[u8]> = list.iter().collect();
                let expected: Vec<&[u8]> = model.iter().map(|v| v.as_slice()).collect();
                prop_assert_eq!(&forward, &expected);
                prop_assert_eq!(list.iter().rev().collect::<Vec<_>>(), expected.iter().rev().copied().collect::<Vec<_>>());
                for i in 0..model.len() {
                    prop_assert_eq!(list.get(i as i64), Some(model[i].as_slice()));
                    prop_assert_eq!(list.get(i as i64 - model.len() as i64), Some(model[i].as_slice()));
                    prop_assert_eq!(list.iter_from(i, true).collect::<Vec<_>>(), expected[i..].to_vec());
                    prop_assert_eq!(list.iter_from(i, false).collect::<Vec<_>>(), expected[..=i].iter().rev().copied().collect::<Vec<_>>());
                }
                prop_assert_eq!(list.get(model.len() as i64), None);
                if model.is_empty() {
                    // Commands delete an empty list; start again as a new key would.
                    list = List::new();
                }
            }
        }
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn a_list_header_stays_small() {
        // A listpack-encoded list is its node: the buffer, the entry count, the Redis size.
        assert!(std::mem::size_of::<super::List>() <= 40, "List is {} bytes", std::mem::size_of::<super::List>());
    }
}

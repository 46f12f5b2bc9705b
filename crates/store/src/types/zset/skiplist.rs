//! The full encoding of a sorted set: Redis's skiplist with spans (so rank queries and
//! rank-indexed access are O(log n)), plus a member -> node index for O(1) score lookups.
//!
//! Memory is the point of the layout. Nodes live in one arena (`Vec<Node>`; it doubles, as
//! growing by less made the allocator keep more freed blocks than it saved) and link by
//! 32-bit index, so there is no unsafe code, no reference
//! counting and no per-node allocation for the common case: a member up to 22 bytes is stored
//! inside its node, and so is the first level (three nodes in four have only that one). The
//! member index is an open-addressing table of node numbers (4 bytes a slot) that hashes the
//! member stored in the node, so a member is stored once. Node 0 is the head. A removed node's
//! slot is filled by moving the last node into it, so the arena stays dense.
//!
//! The index's scan visits one home slot per step in Redis's reverse-binary cursor order; with
//! linear probing and backward-shift deletion every entry sits in the unbroken run that starts
//! at its home slot, so a full scan returns every member present throughout, across resizes,
//! as Redis's `dictScan` does.

use std::hash::BuildHasher;

/// "No node": the end of a level, or the first node's backward link.
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// Redis's ZSKIPLIST_MAXLEVEL.
const LEVEL_MAX: usize = 32;

#[derive(Clone, Copy, Debug)]
struct Level {
    forward: u32,
    /// Nodes passed by following `forward` (the rank distance).
    span: u32,
}

/// Members up to this long live inside the node.
const INLINE_MEMBER_LEN_MAX: usize = 22;

#[derive(Clone, Debug)]
enum Member {
    Inline { len: u8, bytes: [u8; INLINE_MEMBER_LEN_MAX] },
    Heap(Box<[u8]>),
}

impl Member {
    fn new(member: &[u8]) -> Member {
        if member.len() <= INLINE_MEMBER_LEN_MAX {
            let mut bytes = [0u8; INLINE_MEMBER_LEN_MAX];
            bytes[..member.len()].copy_from_slice(member);
            Member::Inline { len: member.len() as u8, bytes }
        } else {
            Member::Heap(member.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Member::Inline { len, bytes } => &bytes[..*len as usize],
            Member::Heap(bytes) => bytes,
        }
    }
}

#[derive(Clone, Debug)]
struct Node {
    member: Member,
    score: f64,
    backward: u32,
    /// Level 0, inline.
    first: Level,
    /// Levels 1 and up, for the one node in four that has them.
    upper: Option<Box<[Level]>>,
}

impl Node {
    fn new(member: &[u8], score: f64, backward: u32, height: usize) -> Node {
        let empty = Level { forward: NIL, span: 0 };
        let upper = (height > 1).then(|| vec![empty; height - 1].into_boxed_slice());
        Node { member: Member::new(member), score, backward, first: empty, upper }
    }

    fn height(&self) -> usize {
        1 + self.upper.as_ref().map_or(0, |u| u.len())
    }

    fn level(&self, i: usize) -> &Level {
        if i == 0 {
            &self.first
        } else {
            &self.upper.as_ref().expect("a level within the node's height")[i - 1]
        }
    }

    fn level_mut(&mut self, i: usize) -> &mut Level {
        if i == 0 {
            &mut self.first
        } else {
            &mut self.upper.as_mut().expect("a level within the node's height")[i - 1]
        }
    }

    fn member(&self) -> &[u8] {
        self.member.as_bytes()
    }
}

/// An empty slot of the member index.
const EMPTY: u32 = u32::MAX;

/// Whether (score a, member a) sorts before (score b, member b).
fn before(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> bool {
    a_score < b_score || (a_score == b_score && a_member < b_member)
}

pub struct Skiplist {
    nodes: Vec<Node>,
    tail: u32,
    /// Levels in use (at least 1).
    level: usize,
    /// Open-addressing table of node numbers (EMPTY or a node), a power of two long.
    slots: Vec<u32>,
    hasher: foldhash::fast::RandomState,
    /// xorshift state for node levels.
    rng: u64,
}

impl Default for Skiplist {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Skiplist {
    fn clone(&self) -> Self {
        let mut copy = Skiplist::with_capacity(self.len());
        for (member, score) in self.iter_from(0, false) {
            copy.insert(member, score);
        }
        copy
    }
}

impl Skiplist {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty list with room for `members` without growing (a conversion or a STORE knows
    /// its size).
    pub fn with_capacity(members: usize) -> Self {
        let mut nodes = Vec::with_capacity(members + 1);
        nodes.push(Node::new(b"", 0.0, NIL, LEVEL_MAX));
        Skiplist { nodes, tail: NIL, level: 1, slots: Vec::new(), hasher: foldhash::fast::RandomState::default(), rng: 0x9E37_79B9_7F4A_7C15 }
    }

    // ---- The member index ----

    fn home(&self, member: &[u8]) -> usize {
        (self.hasher.hash_one(member) as usize) & (self.slots.len() - 1)
    }

    /// The slot holding `member`'s node number.
    fn find_slot(&self, member: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(member);
        loop {
            let x = self.slots[i];
            if x == EMPTY {
                return None;
            }
            if self.nodes[x as usize].member() == member {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        self.find_slot(member).map(|i| self.slots[i])
    }

    /// Puts node `x` in the index (its member is absent), growing at 3/4 full.
    fn index_insert(&mut self, x: u32) {
        if (self.len() + 1) * 4 > self.slots.len() * 3 {
            self.index_resize((self.slots.len() * 2).max(8));
        }
        self.index_place(x);
    }

    fn index_place(&mut self, x: u32) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(self.nodes[x as usize].member());
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = x;
    }

    fn index_resize(&mut self, slot_count: usize) {
        debug_assert!(slot_count.is_power_of_two(), "slot count is a power of two");
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slot_count]);
        for x in old.into_iter().filter(|&x| x != EMPTY) {
            self.index_place(x);
        }
    }

    /// Empties slot `hole`, shifting later entries of its run back (no tombstones).
    fn index_remove_at(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let x = self.slots[j];
            if x == EMPTY {
                break;
            }
            let home = self.home(self.nodes[x as usize].member());
            // The entry may move to the hole if the hole lies between its home and j.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = x;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
    }

    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's zslRandomLevel: each further level with probability 1/4.
    fn random_level(&mut self) -> usize {
        let mut level = 1;
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if level < LEVEL_MAX && (self.rng & 3) == 0 {
                level += 1;
            } else {
                return level;
            }
        }
    }

    fn fwd(&self, x: u32, i: usize) -> u32 {
        self.nodes[x as usize].level(i).forward
    }

    fn span(&self, x: u32, i: usize) -> u32 {
        self.nodes[x as usize].level(i).span
    }

    fn level_mut(&mut self, x: u32, i: usize) -> &mut Level {
        self.nodes[x as usize].level_mut(i)
    }

    /// The last node before (score, member) on every level in use, with their ranks.
    fn predecessors(&self, score: f64, member: &[u8]) -> ([u32; LEVEL_MAX], [u32; LEVEL_MAX]) {
        let mut update = [HEAD; LEVEL_MAX];
        let mut rank = [0u32; LEVEL_MAX];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let f = self.fwd(x, i);
                if f != NIL && before(self.nodes[f as usize].score, self.nodes[f as usize].member(), score, member) {
                    rank[i] += self.span(x, i);
                    x = f;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        (update, rank)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|x| self.nodes[x as usize].score)
    }

    /// Inserts a member that is not present.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        debug_assert!(!score.is_nan(), "scores are never NaN");
        debug_assert!(self.find(member).is_none(), "insert of a present member");
        assert!(self.nodes.len() < NIL as usize - 1, "a sorted set holds fewer than 2^32 - 1 members");
        let (mut update, mut rank) = self.predecessors(score, member);
        let level = self.random_level();
        if level > self.level {
            let len = self.len() as u32;
            rank[self.level..level].fill(0);
            update[self.level..level].fill(HEAD);
            for i in self.level..level {
                self.level_mut(HEAD, i).span = len;
            }
            self.level = level;
        }
        let new = self.nodes.len() as u32;
        let backward = if update[0] == HEAD { NIL } else { update[0] };
        let mut node = Node::new(member, score, backward, level);
        for i in 0..level {
            let prev = self.level_mut(update[i], i);
            let new_level = node.level_mut(i);
            new_level.forward = prev.forward;
            prev.forward = new;
            new_level.span = prev.span - (rank[0] - rank[i]);
            prev.span = (rank[0] - rank[i]) + 1;
        }
        for (i, &prev) in update.iter().enumerate().take(self.level).skip(level) {
            self.level_mut(prev, i).span += 1;
        }
        let next = node.first.forward;
        self.nodes.push(node);
        if next != NIL {
            self.nodes[next as usize].backward = new;
        } else {
            self.tail = new;
        }
        self.index_insert(new);
    }

    /// Unlinks node `x` given its predecessors (Redis's zslDeleteNode); the slot stays.
    fn unlink(&mut self, x: u32, update: &[u32; LEVEL_MAX]) {
        for (i, &prev) in update.iter().enumerate().take(self.level) {
            if self.fwd(prev, i) == x {
                let (span, forward) = (self.span(x, i), self.fwd(x, i));
                let p = self.level_mut(prev, i);
                p.span += span;
                p.span -= 1;
                p.forward = forward;
            } else {
                self.level_mut(prev, i).span -= 1;
            }
        }
        let next = self.fwd(x, 0);
        let backward = self.nodes[x as usize].backward;
        if next != NIL {
            self.nodes[next as usize].backward = backward;
        } else {
            self.tail = backward;
        }
        while self.level > 1 && self.fwd(HEAD, self.level - 1) == NIL {
            self.level -= 1;
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let slot = self.find_slot(member)?;
        let x = self.slots[slot];
        self.index_remove_at(slot);
        let score = self.nodes[x as usize].score;
        let (update, _) = self.predecessors(score, member);
        debug_assert_eq!(self.fwd(update[0], 0), x, "the search finds the node");
        self.unlink(x, &update);
        // Fill the hole with the last node so the arena stays dense.
        let last = (self.nodes.len() - 1) as u32;
        if x != last {
            let (last_score, last_member) = (self.nodes[last as usize].score, self.nodes[last as usize].member().to_vec());
            let (update, _) = self.predecessors(last_score, &last_member);
            for (i, &prev) in update.iter().enumerate().take(self.nodes[last as usize].height()) {
                debug_assert_eq!(self.fwd(prev, i), last, "predecessor links to the moved node");
                self.level_mut(prev, i).forward = x;
            }
            let next = self.fwd(last, 0);
            if next != NIL {
                self.nodes[next as usize].backward = x;
            } else {
                self.tail = x;
            }
            let slot = self.find_slot(&last_member).expect("the moved node is indexed");
            self.slots[slot] = x;
        }
        self.nodes.swap_remove(x as usize);
        if self.nodes.capacity() > 16 && self.nodes.len() < self.nodes.capacity() / 2 {
            self.nodes.shrink_to(self.nodes.len() + self.nodes.len() / 4);
        }
        if self.slots.len() > 8 && self.len() * 8 < self.slots.len() {
            self.index_resize((self.len() * 2).next_power_of_two().max(8));
        }
        Some(score)
    }

    /// Changes the score of a present member, in place when its position does not change
    /// (Redis's zslUpdateScore).
    pub fn set_score(&mut self, member: &[u8], score: f64) {
        let x = self.find(member).expect("set_score of a present member");
        let node = &self.nodes[x as usize];
        let back_ok = node.backward == NIL || {
            let b = &self.nodes[node.backward as usize];
            before(b.score, b.member(), score, member)
        };
        let next = node.first.forward;
        let next_ok = next == NIL || {
            let n = &self.nodes[next as usize];
            before(score, member, n.score, n.member())
        };
        if back_ok && next_ok {
            self.nodes[x as usize].score = score;
        } else {
            self.remove(member);
            self.insert(member, score);
        }
    }

    /// The 0-based ascending rank and score of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let target = self.find(member)?;
        let score = self.nodes[target as usize].score;
        let mut rank = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && !before(score, member, self.nodes[f as usize].score, self.nodes[f as usize].member()) {
                    rank += self.span(x, i) as usize;
                    x = f;
                } else {
                    break;
                }
            }
            if x == target {
                return Some((rank - 1, score));
            }
        }
        unreachable!("an indexed member is linked")
    }

    /// The node at 0-based rank `rank`.
    fn node_at(&self, rank: usize) -> Option<u32> {
        if rank >= self.len() {
            return None;
        }
        let target = rank + 1;
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && traversed + self.span(x, i) as usize <= target {
                    traversed += self.span(x, i) as usize;
                    x = f;
                } else {
                    break;
                }
            }
            if traversed == target {
                return Some(x);
            }
        }
        None
    }

    /// How many members from the start satisfy `pred` (true on a prefix of the order).
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut rank = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && pred(self.nodes[f as usize].score, self.nodes[f as usize].member()) {
                    rank += self.span(x, i) as usize;
                    x = f;
                } else {
                    break;
                }
            }
        }
        rank
    }

    /// Members from rank `rank`, forwards or backwards.
    pub fn iter_from(&self, rank: usize, rev: bool) -> SkipIter<'_> {
        SkipIter { list: self, at: self.node_at(rank).unwrap_or(NIL), rev }
    }

    /// One step of a scan of the member index: the members whose home slot is `cursor`
    /// (masked to the table), and the next cursor in reverse-binary order (0 when done).
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        let mask = self.slots.len() - 1;
        let home = cursor as usize & mask;
        let mut j = home;
        loop {
            let x = self.slots[j];
            if x == EMPTY {
                break;
            }
            let node = &self.nodes[x as usize];
            if self.home(node.member()) == home {
                visit(node.member(), node.score);
            }
            j = (j + 1) & mask;
            if j == home {
                break;
            }
        }
        let mut v = cursor | !(mask as u64);
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Heap bytes, roughly (for MEMORY USAGE).
    pub fn allocated(&self) -> usize {
        let heap_members: usize = self.nodes.iter().map(|n| if let Member::Heap(b) = &n.member { b.len() } else { 0 }).sum();
        let upper: usize = self.nodes.iter().map(|n| (n.height() - 1) * std::mem::size_of::<Level>()).sum();
        self.nodes.capacity() * std::mem::size_of::<Node>() + heap_members + upper + self.slots.len() * 4
    }

    /// Asserts the links, spans, order and map agree.
    pub fn check_invariants(&self) {
        let indexed = self.slots.iter().filter(|&&x| x != EMPTY).count();
        assert_eq!(indexed, self.len(), "one index entry per node");
        assert!(self.slots.is_empty() || self.slots.len().is_power_of_two(), "slot count is a power of two");
        if !self.slots.is_empty() {
            let mask = self.slots.len() - 1;
            for (i, &x) in self.slots.iter().enumerate() {
                if x == EMPTY {
                    continue;
                }
                // No empty slot between an entry's home and its slot.
                let mut j = self.home(self.nodes[x as usize].member());
                while j != i {
                    assert_ne!(self.slots[j], EMPTY, "an entry's probe run is unbroken");
                    j = (j + 1) & mask;
                }
            }
        }
        // Level 0 walk: order, backward links, tail.
        let mut x = self.fwd(HEAD, 0);
        let mut prev = NIL;
        let mut count = 0;
        let mut position = vec![0usize; self.nodes.len()];
        while x != NIL {
            count += 1;
            position[x as usize] = count;
            let node = &self.nodes[x as usize];
            assert_eq!(node.backward, prev, "backward link");
            assert!(!node.score.is_nan(), "no NaN score");
            if prev != NIL {
                let p = &self.nodes[prev as usize];
                assert!(before(p.score, p.member(), node.score, node.member()), "nodes in (score, member) order");
            }
            assert_eq!(self.find(node.member()), Some(x), "the index points at the node");
            assert!(node.height() <= self.level, "node level within the list level");
            prev = x;
            x = node.first.forward;
        }
        assert_eq!(count, self.len(), "every node is linked");
        assert_eq!(self.tail, prev, "tail is the last node");
        // Spans on every level.
        for i in 0..self.level {
            let mut x = HEAD;
            let mut at = 0usize;
            loop {
                let f = self.fwd(x, i);
                let span = self.span(x, i) as usize;
                if f == NIL {
                    assert_eq!(at + span, self.len(), "level {i} span to the end");
                    break;
                }
                assert_eq!(at + span, position[f as usize], "level {i} span");
                at += span;
                x = f;
            }
        }
    }
}

pub struct SkipIter<'a> {
    list: &'a Skiplist,
    at: u32,
    rev: bool,
}

impl<'a> Iterator for SkipIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let node = &self.list.nodes[self.at as usize];
        self.at = if self.rev { node.backward } else { node.first.forward };
        Some((node.member(), node.score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_fits_in_64_bytes() {
        assert!(std::mem::size_of::<Node>() <= 64, "{} bytes", std::mem::size_of::<Node>());
    }
}

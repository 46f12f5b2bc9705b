//! The full encoding of a sorted set: Redis's skiplist with spans (so rank queries and
//! rank-indexed access are O(log n)), plus a member -> node map for O(1) score lookups.
//!
//! Nodes live in one arena (`Vec<Node>`) and link by index, so there is no unsafe code and no
//! reference counting. Node 0 is the head. A removed node's slot is filled by moving the last
//! node into it (its neighbours are found with one search), so the arena stays dense.

use crate::dict::Dict;

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

#[derive(Clone, Debug)]
struct Node {
    member: Box<[u8]>,
    score: f64,
    backward: u32,
    levels: Box<[Level]>,
}

/// Whether (score a, member a) sorts before (score b, member b).
fn before(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> bool {
    a_score < b_score || (a_score == b_score && a_member < b_member)
}

pub struct Skiplist {
    nodes: Vec<Node>,
    tail: u32,
    /// Levels in use (at least 1).
    level: usize,
    index: Dict<u32>,
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
        let mut copy = Skiplist::new();
        for (member, score) in self.iter_from(0, false) {
            copy.insert(member, score);
        }
        copy
    }
}

impl Skiplist {
    pub fn new() -> Self {
        let head = Node { member: Box::default(), score: 0.0, backward: NIL, levels: vec![Level { forward: NIL, span: 0 }; LEVEL_MAX].into_boxed_slice() };
        Skiplist { nodes: vec![head], tail: NIL, level: 1, index: Dict::new(), rng: 0x9E37_79B9_7F4A_7C15 }
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
        self.nodes[x as usize].levels[i].forward
    }

    fn span(&self, x: u32, i: usize) -> u32 {
        self.nodes[x as usize].levels[i].span
    }

    fn level_mut(&mut self, x: u32, i: usize) -> &mut Level {
        &mut self.nodes[x as usize].levels[i]
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
                if f != NIL && before(self.nodes[f as usize].score, &self.nodes[f as usize].member, score, member) {
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
        self.index.get(member).map(|&x| self.nodes[x as usize].score)
    }

    /// Inserts a member that is not present.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        debug_assert!(!score.is_nan(), "scores are never NaN");
        debug_assert!(!self.index.contains_key(member), "insert of a present member");
        assert!(self.nodes.len() < NIL as usize - 1, "a sorted set holds fewer than 2^32 - 1 members");
        let (mut update, mut rank) = self.predecessors(score, member);
        let level = self.random_level();
        if level > self.level {
            let len = self.len() as u32;
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.level_mut(HEAD, i).span = len;
            }
            self.level = level;
        }
        let new = self.nodes.len() as u32;
        let mut levels = vec![Level { forward: NIL, span: 0 }; level].into_boxed_slice();
        for (i, new_level) in levels.iter_mut().enumerate() {
            let prev = self.level_mut(update[i], i);
            new_level.forward = prev.forward;
            prev.forward = new;
            new_level.span = prev.span - (rank[0] - rank[i]);
            prev.span = (rank[0] - rank[i]) + 1;
        }
        for i in level..self.level {
            self.level_mut(update[i], i).span += 1;
        }
        let backward = if update[0] == HEAD { NIL } else { update[0] };
        let next = levels[0].forward;
        self.nodes.push(Node { member: member.into(), score, backward, levels });
        if next != NIL {
            self.nodes[next as usize].backward = new;
        } else {
            self.tail = new;
        }
        self.index.insert_new(member, new);
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
        let x = self.index.remove(member)?;
        let score = self.nodes[x as usize].score;
        let (update, _) = self.predecessors(score, member);
        debug_assert_eq!(self.fwd(update[0], 0), x, "the search finds the node");
        self.unlink(x, &update);
        // Fill the hole with the last node so the arena stays dense.
        let last = (self.nodes.len() - 1) as u32;
        if x != last {
            let (last_score, last_member) = (self.nodes[last as usize].score, self.nodes[last as usize].member.clone());
            let (update, _) = self.predecessors(last_score, &last_member);
            for (i, &prev) in update.iter().enumerate().take(self.nodes[last as usize].levels.len()) {
                debug_assert_eq!(self.fwd(prev, i), last, "predecessor links to the moved node");
                self.level_mut(prev, i).forward = x;
            }
            let next = self.fwd(last, 0);
            if next != NIL {
                self.nodes[next as usize].backward = x;
            } else {
                self.tail = x;
            }
            *self.index.get_mut(&last_member).expect("the moved node is indexed") = x;
        }
        self.nodes.swap_remove(x as usize);
        Some(score)
    }

    /// Changes the score of a present member, in place when its position does not change
    /// (Redis's zslUpdateScore).
    pub fn set_score(&mut self, member: &[u8], score: f64) {
        let x = *self.index.get(member).expect("set_score of a present member");
        let node = &self.nodes[x as usize];
        let back_ok = node.backward == NIL || {
            let b = &self.nodes[node.backward as usize];
            before(b.score, &b.member, score, member)
        };
        let next = node.levels[0].forward;
        let next_ok = next == NIL || {
            let n = &self.nodes[next as usize];
            before(score, member, n.score, &n.member)
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
        let target = *self.index.get(member)?;
        let score = self.nodes[target as usize].score;
        let mut rank = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && !before(score, member, self.nodes[f as usize].score, &self.nodes[f as usize].member) {
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
                if f != NIL && pred(self.nodes[f as usize].score, &self.nodes[f as usize].member) {
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

    /// One step of a scan of the member map (Redis scans the dict of a skiplist zset).
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        self.index.scan_step(cursor, |member, &x| visit(member, self.nodes[x as usize].score))
    }

    /// Heap bytes, roughly (for MEMORY USAGE).
    pub fn allocated(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.member.len() + n.levels.len() * 8).sum::<usize>()
            + self.index.len() * 48
    }

    /// Asserts the links, spans, order and map agree.
    pub fn check_invariants(&self) {
        self.index.check_invariants();
        assert_eq!(self.index.len(), self.len(), "one map entry per node");
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
                assert!(before(p.score, &p.member, node.score, &node.member), "nodes in (score, member) order");
            }
            assert_eq!(self.index.get(&node.member), Some(&x), "map points at the node");
            assert!(node.levels.len() <= self.level, "node level within the list level");
            prev = x;
            x = node.levels[0].forward;
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
        self.at = if self.rev { node.backward } else { node.levels[0].forward };
        Some((&node.member, node.score))
    }
}

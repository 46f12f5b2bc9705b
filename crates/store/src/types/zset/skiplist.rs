//! The full encoding of a sorted set: Redis's skiplist with spans (so rank queries and
//! rank-indexed access are O(log n)), plus a member -> node index for O(1) score lookups.
//!
//! Memory and cache misses decide the layout. Nodes live in one arena (`Vec<Node>`; it
//! doubles, as growing by less made the allocator keep more freed blocks than it saved) and
//! link by 32-bit index, so there is no unsafe code, no reference counting and no per-node
//! allocation for the common case: a member up to 22 bytes is stored inside its node, and so
//! is the first level (three nodes in four have only that one). Node 0 is the head. A removed
//! node's slot is filled by moving the last node into it, so the arena stays dense.
//!
//! Levels 1 and up of a node (its *tower*) are one contiguous block of a second arena, the
//! tower pool. A tower's level links to the next tower on that level by its offset in the
//! pool, and keeps that tower's score beside the link, so a search above level 0 reads only
//! the pool, one block per node it steps onto, and touches a node only on a score tie (for
//! its member) and where it drops to level 0. Redis's node keeps its levels inline and reads
//! the next node's score from that node, one miss per comparison; an arena node with its
//! upper levels in a separate allocation cost two misses per step. Freed towers wait on a
//! free list per height; the pool is compacted when half of it is free. Moving a node in the
//! node arena touches only its neighbours on level 0 and its tower's header, since no tower
//! links to a node. A score change that moves a member relinks its node, keeping its number,
//! index slot and tower, as Redis's zslUpdateScore keeps its node.
//!
//! The member index is an open-addressing table of node numbers (4 bytes a slot) that hashes
//! the member stored in the node, so a member is stored once. Its scan visits one home slot
//! per step in Redis's reverse-binary cursor order; with linear probing and backward-shift
//! deletion every entry sits in the unbroken run that starts at its home slot, so a full scan
//! returns every member present throughout, across resizes, as Redis's `dictScan` does.

use std::hash::BuildHasher;

/// "No node" or "no tower": the end of a level, the first node's backward link, a node of
/// height 1's tower.
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// The head node's tower (every level) starts the pool.
const HEAD_TOWER: u32 = 0;
/// Redis's ZSKIPLIST_MAXLEVEL.
const LEVEL_MAX: usize = 32;

/// One level of a tower: the link to the next tower on this level, and that tower's score.
///
/// A tower of height h is h entries of the pool: entry 0 is its header (`forward` is its node,
/// `span` its height h, `score` unused), entry i (1 <= i < h) is level i. A free tower's
/// header links to the next free tower of its height instead.
#[derive(Clone, Copy, Debug)]
struct Level {
    /// The next tower on this level (its offset in the pool), or NIL.
    forward: u32,
    /// Nodes passed by following `forward` (the rank distance).
    span: u32,
    /// The score of `forward`'s node, so a comparison need not visit it.
    score: f64,
}

impl Level {
    const EMPTY: Level = Level { forward: NIL, span: 0, score: 0.0 };
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
    /// Level 0: the next node, or NIL. Its span is 1 (0 from the last node).
    forward: u32,
    /// Levels 1 and up: the node's tower in the pool, or NIL for a node of height 1.
    tower: u32,
}

impl Node {
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
    /// Towers of levels 1 and up; the head's is first.
    pool: Vec<Level>,
    /// The first free tower of each height (NIL when none), linked through their headers.
    free: [u32; LEVEL_MAX + 1],
    /// Pool entries held by free towers.
    free_len: usize,
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
        nodes.push(Node { member: Member::new(b""), score: 0.0, backward: NIL, forward: NIL, tower: HEAD_TOWER });
        // A node has a third of a level above level 0 on average, and a header one time in four.
        let mut pool = Vec::with_capacity(LEVEL_MAX + members * 7 / 12);
        pool.push(Level { forward: HEAD, span: LEVEL_MAX as u32, score: 0.0 });
        pool.resize(LEVEL_MAX, Level::EMPTY);
        Skiplist {
            nodes,
            pool,
            free: [NIL; LEVEL_MAX + 1],
            free_len: 0,
            tail: NIL,
            level: 1,
            slots: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            rng: 0x9E37_79B9_7F4A_7C15,
        }
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

    // ---- Towers ----

    /// The height of `x`'s tower plus level 0.
    fn height(&self, x: u32) -> usize {
        let tower = self.nodes[x as usize].tower;
        if tower == NIL {
            1
        } else {
            self.pool[tower as usize].span as usize
        }
    }

    /// Level `i` (1 or more) of tower `t`.
    fn level_at(&self, t: u32, i: usize) -> &Level {
        &self.pool[t as usize + i]
    }

    fn level_at_mut(&mut self, t: u32, i: usize) -> &mut Level {
        &mut self.pool[t as usize + i]
    }

    /// The node whose tower is `t`.
    fn tower_node(&self, t: u32) -> u32 {
        self.pool[t as usize].forward
    }

    /// Whether the tower a level links to sorts before (score, member): its score is in the
    /// level, its member is read only on a tie.
    fn level_before(&self, level: &Level, score: f64, member: &[u8]) -> bool {
        level.score < score || (level.score == score && self.nodes[self.tower_node(level.forward) as usize].member() < member)
    }

    /// A tower of `height` for node `x`, its levels empty.
    fn tower_alloc(&mut self, x: u32, height: usize) -> u32 {
        debug_assert!((2..=LEVEL_MAX).contains(&height), "a tower has 2 to {LEVEL_MAX} levels");
        let header = Level { forward: x, span: height as u32, score: 0.0 };
        let t = self.free[height];
        if t != NIL {
            self.free[height] = self.pool[t as usize].forward;
            self.free_len -= height;
            self.pool[t as usize] = header;
            self.pool[t as usize + 1..t as usize + height].fill(Level::EMPTY);
            return t;
        }
        let t = self.pool.len();
        assert!(t + height < NIL as usize, "the tower pool holds fewer than 2^32 - 1 levels");
        self.pool.push(header);
        self.pool.resize(t + height, Level::EMPTY);
        t as u32
    }

    /// Puts tower `t` on its height's free list.
    fn tower_free(&mut self, t: u32) {
        let height = self.pool[t as usize].span as usize;
        self.pool[t as usize].forward = self.free[height];
        self.free[height] = t;
        self.free_len += height;
    }

    /// Moves the live towers together when half the pool is free (amortized O(1) a removal).
    fn maybe_compact_towers(&mut self) {
        if self.free_len < 64 || self.free_len * 2 < self.pool.len() {
            return;
        }
        let old = std::mem::take(&mut self.pool);
        let mut new = Vec::with_capacity(old.len() - self.free_len);
        let mut moved_to = vec![NIL; old.len()];
        let mut t = 0;
        while t < old.len() {
            let height = old[t].span as usize;
            let x = old[t].forward as usize;
            // A free tower's header links to another tower, never to a node whose tower it is.
            if x < self.nodes.len() && self.nodes[x].tower == t as u32 {
                moved_to[t] = new.len() as u32;
                new.extend_from_slice(&old[t..t + height]);
            }
            t += height;
        }
        let mut t = 0;
        while t < new.len() {
            let height = new[t].span as usize;
            self.nodes[new[t].forward as usize].tower = t as u32;
            for level in &mut new[t + 1..t + height] {
                if level.forward != NIL {
                    level.forward = moved_to[level.forward as usize];
                }
            }
            t += height;
        }
        self.pool = new;
        self.free = [NIL; LEVEL_MAX + 1];
        self.free_len = 0;
    }

    // ---- The list ----

    /// The last node before (score, member) on every level in use, with their ranks: on
    /// level 0 a node, above it that node's tower.
    fn predecessors(&self, score: f64, member: &[u8]) -> ([u32; LEVEL_MAX], [u32; LEVEL_MAX]) {
        let mut search = Descent::new(self, score, member);
        while search.step(self) {}
        (search.update, search.rank)
    }

    /// Warms the cache for lookups of `members` that follow soon (see [`crate::prefetch`]):
    /// first every member's home slot, then the node each home slot names (the member is
    /// most often there: the index is at most 3/4 full).
    pub fn prefetch(&self, members: &[&[u8]]) {
        const GROUP: usize = 32;
        if self.slots.is_empty() {
            return;
        }
        for members in members.chunks(GROUP) {
            let mut homes = [0usize; GROUP];
            for (home, member) in homes.iter_mut().zip(members) {
                *home = self.home(member);
                crate::prefetch::read(self.slots.as_ptr().wrapping_add(*home) as *const u8);
            }
            for &home in &homes[..members.len()] {
                let x = self.slots[home];
                if x != EMPTY {
                    crate::prefetch::read(self.nodes.as_ptr().wrapping_add(x as usize) as *const u8);
                }
            }
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|x| self.nodes[x as usize].score)
    }

    /// Inserts a member that is not present.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        debug_assert!(!score.is_nan(), "scores are never NaN");
        debug_assert!(self.find(member).is_none(), "insert of a present member");
        assert!(self.nodes.len() < NIL as usize - 1, "a sorted set holds fewer than 2^32 - 1 members");
        let (update, rank) = self.predecessors(score, member);
        let height = self.random_level();
        let new = self.nodes.len() as u32;
        let tower = if height > 1 { self.tower_alloc(new, height) } else { NIL };
        self.nodes.push(Node { member: Member::new(member), score, backward: NIL, forward: NIL, tower });
        self.link(new, score, update, rank);
        self.index_insert(new);
    }

    /// Links node `x` (unlinked, its score `score`, its tower of any height allocated) after
    /// its predecessors (Redis's zslInsert after the search).
    fn link(&mut self, x: u32, score: f64, mut update: [u32; LEVEL_MAX], mut rank: [u32; LEVEL_MAX]) {
        let height = self.height(x);
        let tower = self.nodes[x as usize].tower;
        if height > self.level {
            // Every node but `x` is linked.
            let linked = self.len() as u32 - 1;
            rank[self.level..height].fill(0);
            update[self.level..height].fill(HEAD_TOWER);
            for i in self.level..height {
                self.level_at_mut(HEAD_TOWER, i).span = linked;
            }
            self.level = height;
        }
        for i in 1..height {
            let prev = *self.level_at(update[i], i);
            let passed = rank[0] - rank[i];
            *self.level_at_mut(tower, i) = Level { forward: prev.forward, span: prev.span - passed, score: prev.score };
            *self.level_at_mut(update[i], i) = Level { forward: tower, span: passed + 1, score };
        }
        for (i, &prev) in update.iter().enumerate().take(self.level).skip(height) {
            self.level_at_mut(prev, i).span += 1;
        }
        let prev = update[0];
        let next = self.nodes[prev as usize].forward;
        self.nodes[prev as usize].forward = x;
        let node = &mut self.nodes[x as usize];
        node.forward = next;
        node.backward = if prev == HEAD { NIL } else { prev };
        if next != NIL {
            self.nodes[next as usize].backward = x;
        } else {
            self.tail = x;
        }
    }

    /// Unlinks node `x` given its predecessors (Redis's zslDeleteNode); its slot and tower
    /// stay.
    fn unlink(&mut self, x: u32, update: &[u32; LEVEL_MAX]) {
        let tower = self.nodes[x as usize].tower;
        for (i, &prev) in update.iter().enumerate().take(self.level).skip(1) {
            // Only a level below the tower's height can link to it.
            if tower != NIL && self.level_at(prev, i).forward == tower {
                let gone = *self.level_at(tower, i);
                let p = self.level_at_mut(prev, i);
                p.span = p.span + gone.span - 1;
                p.forward = gone.forward;
                p.score = gone.score;
            } else {
                self.level_at_mut(prev, i).span -= 1;
            }
        }
        let (next, backward) = (self.nodes[x as usize].forward, self.nodes[x as usize].backward);
        self.nodes[update[0] as usize].forward = next;
        if next != NIL {
            self.nodes[next as usize].backward = backward;
        } else {
            self.tail = backward;
        }
        while self.level > 1 && self.level_at(HEAD_TOWER, self.level - 1).forward == NIL {
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
        debug_assert_eq!(self.nodes[update[0] as usize].forward, x, "the search finds the node");
        self.unlink(x, &update);
        let tower = self.nodes[x as usize].tower;
        if tower != NIL {
            self.tower_free(tower);
        }
        // Fill the hole with the last node so the arena stays dense. Only its level-0
        // neighbours, its tower and its index slot know its number.
        let last = (self.nodes.len() - 1) as u32;
        if x != last {
            let moved = &self.nodes[last as usize];
            let (backward, next, tower) = (moved.backward, moved.forward, moved.tower);
            let prev = if backward == NIL { HEAD } else { backward };
            debug_assert_eq!(self.nodes[prev as usize].forward, last, "the moved node's predecessor links to it");
            self.nodes[prev as usize].forward = x;
            if next != NIL {
                self.nodes[next as usize].backward = x;
            } else {
                self.tail = x;
            }
            if tower != NIL {
                self.pool[tower as usize].forward = x;
            }
            let slot = self.find_slot(self.nodes[last as usize].member()).expect("the moved node is indexed");
            self.slots[slot] = x;
        }
        self.nodes.swap_remove(x as usize);
        if self.nodes.capacity() > 16 && self.nodes.len() < self.nodes.capacity() / 2 {
            self.nodes.shrink_to(self.nodes.len() + self.nodes.len() / 4);
        }
        if self.slots.len() > 8 && self.len() * 8 < self.slots.len() {
            self.index_resize((self.len() * 2).next_power_of_two().max(8));
        }
        self.maybe_compact_towers();
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
        let next = node.forward;
        let next_ok = next == NIL || {
            let n = &self.nodes[next as usize];
            before(score, member, n.score, n.member())
        };
        if back_ok && next_ok {
            let (old_score, tower) = (node.score, node.tower);
            if tower != NIL {
                // The levels that link to the tower keep its score.
                let (update, _) = self.predecessors(old_score, member);
                for (i, &prev) in update.iter().enumerate().take(self.height(x)).skip(1) {
                    let level = self.level_at_mut(prev, i);
                    debug_assert_eq!(level.forward, tower, "predecessor links to the tower");
                    level.score = score;
                }
            }
            self.nodes[x as usize].score = score;
        } else {
            // Move the node itself, keeping its number, index slot and tower (Redis's
            // zslUpdateScore keeps its node too). Its old place and its new one are two
            // searches, each a chain of cache misses; they run side by side, both in the list
            // as it is, so their misses overlap. The new place's predecessors are then
            // corrected for the list without the node.
            let (old_score, tower, levels) = (node.score, node.tower, self.level);
            let mut from = Descent::new(self, old_score, member);
            let mut to = Descent::new(self, score, member);
            loop {
                let from_more = from.step(self);
                let to_more = to.step(self);
                if !from_more && !to_more {
                    break;
                }
            }
            self.unlink(x, &from.update);
            if score > old_score {
                // The node was before its new place, so every predecessor at or after it
                // counted it; where the node itself was the predecessor, its own predecessor
                // on that level takes its part.
                let rank_x = from.rank[0] + 1;
                for i in 0..levels {
                    if to.rank[i] < rank_x {
                        continue;
                    }
                    let is_x = if i == 0 { to.update[0] == x } else { to.update[i] == tower };
                    if is_x {
                        to.update[i] = from.update[i];
                        to.rank[i] = from.rank[i];
                    } else {
                        to.rank[i] -= 1;
                    }
                }
            }
            self.nodes[x as usize].score = score;
            self.link(x, score, to.update, to.rank);
        }
    }

    /// The 0-based ascending rank and score of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let target = self.find(member)?;
        let score = self.nodes[target as usize].score;
        let mut rank = 0usize;
        let mut t = HEAD_TOWER;
        for i in (1..self.level).rev() {
            loop {
                let level = self.level_at(t, i);
                // Step while the next tower is at or before the target.
                if level.forward != NIL && !before(score, member, level.score, self.nodes[self.tower_node(level.forward) as usize].member()) {
                    rank += level.span as usize;
                    t = level.forward;
                } else {
                    break;
                }
            }
            if t != HEAD_TOWER && self.tower_node(t) == target {
                return Some((rank - 1, score));
            }
        }
        let mut x = self.tower_node(t);
        while x != target {
            x = self.nodes[x as usize].forward;
            assert_ne!(x, NIL, "an indexed member is linked after its predecessor");
            rank += 1;
        }
        Some((rank - 1, score))
    }

    /// The node at 0-based rank `rank`.
    fn node_at(&self, rank: usize) -> Option<u32> {
        if rank >= self.len() {
            return None;
        }
        let target = rank + 1;
        let mut traversed = 0usize;
        let mut t = HEAD_TOWER;
        for i in (1..self.level).rev() {
            loop {
                let level = self.level_at(t, i);
                if level.forward != NIL && traversed + level.span as usize <= target {
                    traversed += level.span as usize;
                    t = level.forward;
                } else {
                    break;
                }
            }
            if traversed == target {
                return Some(self.tower_node(t));
            }
        }
        let mut x = self.tower_node(t);
        while traversed < target {
            x = self.nodes[x as usize].forward;
            traversed += 1;
        }
        Some(x)
    }

    /// How many members from the start satisfy `pred` (true on a prefix of the order).
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut rank = 0usize;
        let mut t = HEAD_TOWER;
        for i in (1..self.level).rev() {
            loop {
                let level = self.level_at(t, i);
                if level.forward != NIL && pred(level.score, self.nodes[self.tower_node(level.forward) as usize].member()) {
                    rank += level.span as usize;
                    t = level.forward;
                } else {
                    break;
                }
            }
        }
        let mut x = self.tower_node(t);
        loop {
            let f = self.nodes[x as usize].forward;
            if f != NIL && pred(self.nodes[f as usize].score, self.nodes[f as usize].member()) {
                rank += 1;
                x = f;
            } else {
                break;
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

    /// Bytes this skiplist uses, for MEMORY USAGE: its own struct (the box a sorted set
    /// holds), the node arena, the tower pool and the member index, each by its capacity (so
    /// exactly, in O(1): they hold every node, level and slot), and the members too long to
    /// live in their nodes, measured over the first `samples` nodes of the arena and scaled
    /// to the length (all when 0; see [`crate::types::sampled_bytes`]). The allocator's
    /// rounding up is not counted.
    pub fn memory_usage(&self, samples: usize) -> usize {
        let arrays = self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.pool.capacity() * std::mem::size_of::<Level>()
            + self.slots.capacity() * std::mem::size_of::<u32>();
        let heap_members = crate::types::sampled_bytes(
            self.len(),
            samples,
            self.nodes[HEAD as usize + 1..].iter().map(|node| match &node.member {
                Member::Inline { .. } => 0,
                Member::Heap(bytes) => bytes.len(),
            }),
        );
        std::mem::size_of::<Skiplist>() + arrays + heap_members
    }

    /// Asserts the links, spans, kept scores, order, towers and map agree.
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
        // Towers: each node's header names it; live and free towers fill the pool.
        assert_eq!(self.nodes[HEAD as usize].tower, HEAD_TOWER, "the head's tower starts the pool");
        assert_eq!(self.height(HEAD), LEVEL_MAX, "the head has every level");
        let mut tower_len = 0;
        let mut at_height = [0usize; LEVEL_MAX + 1];
        for (x, node) in self.nodes.iter().enumerate() {
            if node.tower != NIL {
                assert_eq!(self.tower_node(node.tower), x as u32, "a tower's header names its node");
                assert!((2..=LEVEL_MAX).contains(&self.height(x as u32)), "a tower has 2 to {LEVEL_MAX} levels");
                tower_len += self.height(x as u32);
            }
            if x as u32 != HEAD {
                at_height[self.height(x as u32)] += 1;
            }
        }
        let mut free_len = 0;
        for (height, &first) in self.free.iter().enumerate() {
            let mut t = first;
            while t != NIL {
                assert_eq!(self.pool[t as usize].span as usize, height, "a free tower is on its height's list");
                free_len += height;
                t = self.pool[t as usize].forward;
            }
        }
        assert_eq!(free_len, self.free_len, "free towers are counted");
        assert_eq!(tower_len + free_len, self.pool.len(), "live and free towers fill the pool");
        for i in self.level..LEVEL_MAX {
            assert_eq!(self.level_at(HEAD_TOWER, i).forward, NIL, "no node above the list's level");
        }
        // Level 0 walk: order, backward links, tail.
        let mut x = self.nodes[HEAD as usize].forward;
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
            assert!(self.height(x) <= self.level, "node level within the list level");
            prev = x;
            x = node.forward;
        }
        assert_eq!(count, self.len(), "every node is linked");
        assert_eq!(self.tail, prev, "tail is the last node");
        // Spans and kept scores on every level above 0, and every tall enough node on each.
        for i in 1..self.level {
            let mut t = HEAD_TOWER;
            let mut at = 0usize;
            let mut linked = 0;
            loop {
                let level = self.level_at(t, i);
                let span = level.span as usize;
                if level.forward == NIL {
                    assert_eq!(at + span, self.len(), "level {i} span to the end");
                    break;
                }
                let f = self.tower_node(level.forward);
                assert!(self.height(f) > i, "level {i} links to a tower that tall");
                assert_eq!(at + span, position[f as usize], "level {i} span");
                assert_eq!(level.score.to_bits(), self.nodes[f as usize].score.to_bits(), "level {i} keeps the next node's score");
                linked += 1;
                at += span;
                t = level.forward;
            }
            assert_eq!(linked, at_height[i + 1..].iter().sum::<usize>(), "level {i} links every node that tall");
        }
    }
}

/// A search for the predecessors of (score, member) (see `Skiplist::predecessors`), one step
/// at a time, so that two searches can run side by side.
struct Descent<'m> {
    score: f64,
    member: &'m [u8],
    /// The last node (level 0) or tower (above) before (score, member) on each level done.
    update: [u32; LEVEL_MAX],
    /// Their ranks (nodes from the head).
    rank: [u32; LEVEL_MAX],
    /// The level being searched; `done` once level 0 is.
    level: usize,
    /// Where the search stands: a tower above level 0, a node on it.
    at: u32,
    traversed: u32,
    done: bool,
}

impl<'m> Descent<'m> {
    fn new(list: &Skiplist, score: f64, member: &'m [u8]) -> Descent<'m> {
        let level = list.level - 1;
        let at = if level == 0 { list.tower_node(HEAD_TOWER) } else { HEAD_TOWER };
        Descent { score, member, update: [HEAD_TOWER; LEVEL_MAX], rank: [0; LEVEL_MAX], level, at, traversed: 0, done: false }
    }

    /// Takes one step forward or down; false once the search is done.
    #[inline(always)]
    fn step(&mut self, list: &Skiplist) -> bool {
        if self.done {
            return false;
        }
        if self.level > 0 {
            let level = list.level_at(self.at, self.level);
            if level.forward != NIL && list.level_before(level, self.score, self.member) {
                self.traversed += level.span;
                self.at = level.forward;
            } else {
                self.update[self.level] = self.at;
                self.rank[self.level] = self.traversed;
                self.level -= 1;
                if self.level == 0 {
                    self.at = list.tower_node(self.at);
                }
            }
        } else {
            let f = list.nodes[self.at as usize].forward;
            if f != NIL && before(list.nodes[f as usize].score, list.nodes[f as usize].member(), self.score, self.member) {
                self.traversed += 1;
                self.at = f;
            } else {
                self.update[0] = self.at;
                self.rank[0] = self.traversed;
                self.done = true;
            }
        }
        !self.done
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
        self.at = if self.rev { node.backward } else { node.forward };
        Some((node.member(), node.score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_fits_in_48_bytes() {
        assert!(std::mem::size_of::<Node>() <= 48, "{} bytes", std::mem::size_of::<Node>());
    }

    #[test]
    fn removals_compact_the_tower_pool_and_keep_every_invariant() {
        let mut list = Skiplist::new();
        for i in 0..3000u32 {
            list.insert(format!("m{i}").as_bytes(), (i % 101) as f64);
        }
        let full = list.pool.len();
        // A stride coprime to 3000 removes in an order unrelated to the scores.
        for k in 0..2900u32 {
            let i = (k * 7) % 3000;
            assert_eq!(list.remove(format!("m{i}").as_bytes()), Some((i % 101) as f64));
            if k % 97 == 0 {
                list.check_invariants();
            }
        }
        list.check_invariants();
        assert!(list.pool.len() < full / 4, "the pool shrank from {full} to {}", list.pool.len());
        for (rank, (member, _)) in list.iter_from(0, false).enumerate() {
            assert_eq!(list.rank(member).map(|(r, _)| r), Some(rank));
        }
    }

    #[test]
    fn score_changes_that_move_members_keep_the_order_and_every_invariant() {
        let mut list = Skiplist::new();
        let mut model = std::collections::BTreeMap::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for i in 0..2000u64 {
            let member = format!("m{i}").into_bytes();
            let score = (next() % 500) as f64;
            list.insert(&member, score);
            model.insert(member, score);
        }
        for k in 0..20_000u32 {
            let member = format!("m{}", next() % 2000).into_bytes();
            // Few distinct scores, so ties (ordered by member) are common.
            let score = (next() % 500) as f64;
            list.set_score(&member, score);
            model.insert(member, score);
            if k % 1000 == 0 {
                list.check_invariants();
            }
        }
        list.check_invariants();
        let mut sorted: Vec<(f64, Vec<u8>)> = model.into_iter().map(|(m, s)| (s, m)).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (rank, (score, member)) in sorted.iter().enumerate() {
            assert_eq!(list.rank(member), Some((rank, *score)));
        }
        let listed: Vec<(Vec<u8>, f64)> = list.iter_from(0, false).map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(listed, sorted.into_iter().map(|(s, m)| (m, s)).collect::<Vec<_>>());
    }

    #[test]
    fn prefetching_present_and_absent_members_changes_nothing() {
        let mut list = Skiplist::new();
        list.prefetch(&[b"a", b"b"]);
        for i in 0..1000u32 {
            list.insert(format!("m{i}").as_bytes(), i as f64);
        }
        let asked: Vec<Vec<u8>> = (990..1040u32).map(|i| format!("m{i}").into_bytes()).collect();
        list.prefetch(&asked.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for (i, member) in (990..1040u32).zip(&asked) {
            assert_eq!(list.score(member), (i < 1000).then_some(i as f64));
        }
        assert_eq!(list.len(), 1000);
    }

    #[test]
    fn a_level_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Level>(), 16);
    }
}

//! Streams (Redis 5): an append-only log of entries, each a list of field/value pairs under
//! an id `ms-seq` greater than every id before it, with consumer groups.
//!
//! Entries live as Redis keeps them: in nodes of up to `stream-node-max-entries` entries
//! (and about `stream-node-max-bytes`), a B-tree by each node's first ID (its master ID),
//! each node one buffer of compactly encoded entries ([`Node`]): an entry whose fields are
//! the node's first entry's stores only its values, and a deleted entry is flagged in place
//! until its whole node goes. A node opens where Redis would open one (its listpack's size is
//! modelled), so the RDB writer writes Redis's layout. About 17 bytes for a one-field entry
//! with a short value, against Redis's 23 (bench/RESULTS.md). Approximate trimming does not
//! follow the nodes (see [`Stream::trim`]).
//!
//! Consumer groups keep what Redis keeps: the group's last delivered id and read counter,
//! its pending entries list (PEL), and its consumers with theirs.

use std::collections::{BTreeMap, BTreeSet};

use crate::value::parse_canonical_i64;
use crate::varint;

/// A stream entry id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next id, if any.
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (ms, u64::MAX) => ms.checked_add(1).map(|ms| StreamId::new(ms, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    /// The previous id, if any.
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (ms, 0) => ms.checked_sub(1).map(|ms| StreamId::new(ms, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }

    /// The 16 big-endian bytes Redis keys its radix tree and PELs with.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn from_be_bytes(bytes: [u8; 16]) -> StreamId {
        let (ms, seq) = bytes.split_at(8);
        StreamId::new(u64::from_be_bytes(ms.try_into().expect("8 bytes")), u64::from_be_bytes(seq.try_into().expect("8 bytes")))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry's field/value pairs in one allocation: the pair count, then each string as its
/// length and bytes (LEB128 lengths).
#[derive(Clone, PartialEq, Eq)]
pub struct Fields(Box<[u8]>);

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(field, value)| (field.escape_ascii().to_string(), value.escape_ascii().to_string()))).finish()
    }
}

impl Fields {
    pub fn new<'a>(pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Fields {
        let size: usize = varint::len(pairs.len()) + pairs.clone().map(|(f, v)| varint::len(f.len()) + f.len() + varint::len(v.len()) + v.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        varint::put(&mut out, pairs.len());
        for (field, value) in pairs {
            varint::put(&mut out, field.len());
            out.extend_from_slice(field);
            varint::put(&mut out, value.len());
            out.extend_from_slice(value);
        }
        Fields(out.into_boxed_slice())
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        varint::get(&self.0, 0).0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let (count, mut at) = varint::get(&self.0, 0);
        let buf = &self.0;
        let mut string = move || {
            let (len, used) = varint::get(buf, at);
            let bytes = &buf[at + used..at + used + len];
            at += used + len;
            bytes
        };
        (0..count).map(move |_| {
            let field = string();
            (field, string())
        })
    }

    /// Heap bytes (MEMORY USAGE).
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// What Redis's `stream-node-max-bytes` and `stream-node-max-entries` say about nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits { max_bytes: 4096, max_entries: 100 }
    }
}

/// Redis's cap on a listpack's size (`STREAM_LISTPACK_MAX_SIZE`), which also replaces a
/// `stream-node-max-bytes` of 0.
const LISTPACK_MAX_BYTES: u64 = 1 << 30;

/// One of Redis's listpack nodes: the entries appended since its master ID, in one buffer
/// (deleted ones flagged in place, as Redis marks them), and what Redis's listpack would
/// weigh, which decides where the next node opens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    /// Entries appended to the node, deleted ones included.
    count: u64,
    /// Entries not deleted (never 0: a node whose last entry goes is dropped).
    live: u64,
    /// The last id appended (deleted or not).
    last: StreamId,
    /// The last id not deleted (XREAD and XREADGROUP ask for it on every call).
    last_live: StreamId,
    /// Redis's listpack size but for the master entry's two counters, which change size as
    /// they grow.
    bytes: u64,
    /// The master entry's fields: an entry with exactly these is stored without its fields.
    master_fields: Box<[Box<[u8]>]>,
    /// Per entry: a flags byte ([`DELETED`], [`SAME_FIELDS`]), the ID's ms after the
    /// master's and its seq (LEB128), then its values (same fields) or its pair count and
    /// pairs; each string is its LEB128 length and bytes.
    buf: Vec<u8>,
}

/// An entry's flag: deleted (XDEL, or trimmed from inside the node).
const DELETED: u8 = 1;
/// An entry's flag: its fields are the master entry's, so only its values are stored.
const SAME_FIELDS: u8 = 2;

impl Node {
    /// The listpack's size in bytes.
    fn listpack_bytes(&self) -> u64 {
        self.bytes + lp_int_size(self.live as i64) + lp_int_size((self.count - self.live) as i64)
    }

    /// Every entry, deleted ones included, in order.
    fn slots(&self, master: StreamId) -> Slots<'_> {
        Slots { node: self, master, at: 0 }
    }
}

/// A node's entries as stored: offset of the flags byte, flags, ID, and the entry.
struct Slot<'a> {
    at: usize,
    flags: u8,
    id: StreamId,
    entry: Entry<'a>,
}

struct Slots<'a> {
    node: &'a Node,
    master: StreamId,
    at: usize,
}

/// Reads a LEB128-prefixed string at `at`; returns it and where the next thing starts.
fn read_str(buf: &[u8], at: usize) -> (&[u8], usize) {
    let (len, used) = varint::get(buf, at);
    let start = at + used;
    (&buf[start..start + len], start + len)
}

fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    varint::put(out, bytes.len());
    out.extend_from_slice(bytes);
}

impl<'a> Iterator for Slots<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        let buf = &self.node.buf;
        if self.at >= buf.len() {
            return None;
        }
        let at = self.at;
        let flags = buf[at];
        let (ms_delta, used) = varint::get(buf, at + 1);
        let (seq, used2) = varint::get(buf, at + 1 + used);
        let body_at = at + 1 + used + used2;
        let same = flags & SAME_FIELDS != 0;
        let mut end = body_at;
        let strings = if same {
            self.node.master_fields.len()
        } else {
            let (pairs, used) = varint::get(buf, body_at);
            end += used;
            2 * pairs
        };
        for _ in 0..strings {
            end = read_str(buf, end).1;
        }
        self.at = end;
        let id = StreamId::new(self.master.ms + ms_delta as u64, seq as u64);
        Some(Slot { at, flags, id, entry: Entry { master_fields: &self.node.master_fields, body: &buf[body_at..end], same } })
    }
}

/// An entry's field/value pairs, read where they are stored.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    master_fields: &'a [Box<[u8]>],
    /// The values (same fields), or the pair count and the pairs.
    body: &'a [u8],
    same: bool,
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(field, value)| (field.escape_ascii().to_string(), value.escape_ascii().to_string()))).finish()
    }
}

impl<'a> Entry<'a> {
    /// How many pairs.
    pub fn len(&self) -> usize {
        if self.same {
            self.master_fields.len()
        } else {
            varint::get(self.body, 0).0
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let (body, master, same) = (self.body, self.master_fields, self.same);
        let (count, mut at) = if same { (master.len(), 0) } else { varint::get(body, 0) };
        (0..count).map(move |i| {
            let field = if same {
                &master[i][..]
            } else {
                let (field, next) = read_str(body, at);
                at = next;
                field
            };
            let (value, next) = read_str(body, at);
            at = next;
            (field, value)
        })
    }
}

/// Bytes a listpack element takes: its encoding plus its back length.
fn lp_element(encoded: u64) -> u64 {
    let backlen = match encoded {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    encoded + backlen
}

fn lp_int_size(v: i64) -> u64 {
    lp_element(match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    })
}

/// A string element: as an integer when it reads as one, as Redis's `lpAppend` stores it.
fn lp_string_size(s: &[u8]) -> u64 {
    if let Some(v) = parse_canonical_i64(s) {
        return lp_int_size(v);
    }
    let len = s.len() as u64;
    lp_element(match len {
        0..=63 => 1 + len,
        64..=4095 => 2 + len,
        _ => 5 + len,
    })
}

/// A pending entry: delivered to a consumer of the group and not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
    pub consumer: Box<[u8]>,
}

/// A consumer of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    /// When it last tried to read or claim.
    pub seen_time_ms: u64,
    /// When it last read or claimed something (None: never, Redis's -1).
    pub active_time_ms: Option<u64>,
    /// The ids pending for it (each also in the group's PEL).
    pub pending: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// How many entries the group has read (None: unknown, Redis's
    /// `SCG_INVALID_ENTRIES_READ`).
    pub entries_read: Option<u64>,
    pub pending: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
    /// No entry of the PEL was delivered before this (Unix ms; 0: not known), so that
    /// XREADGROUP CLAIM finds nothing idle enough without walking the PEL. Lowered by
    /// [`Group::assign`]; raised only by whoever walks the whole PEL.
    pub delivered_since: DeliveredSince,
}

/// See [`Group::delivered_since`]: a cache, not part of what a group holds, so two groups
/// compare equal whatever theirs say.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveredSince(pub u64);

impl PartialEq for DeliveredSince {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DeliveredSince {}

impl Group {
    /// A group whose last delivered ID is `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Group {
        Group { last_id, entries_read, ..Group::default() }
    }

    /// The consumer `name`, created (seen now, never active) if missing; and whether it was.
    pub fn consumer(&mut self, name: &[u8], now_ms: u64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let consumer = self.consumers.entry(name.into()).or_insert_with(|| Consumer { seen_time_ms: now_ms, active_time_ms: None, pending: BTreeSet::new() });
        (consumer, created)
    }

    /// Removes consumer `name` and its pending entries; how many it had, if it existed.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pending.remove(id);
        }
        Some(consumer.pending.len())
    }

    /// Gives `id` to `consumer` (which must exist): its delivery time becomes `time_ms`,
    /// and its delivery count `count` (None: as it was, or 1 for a new entry). An entry
    /// pending for another consumer moves.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], time_ms: u64, count: Option<u64>) {
        self.delivered_since.0 = self.delivered_since.0.min(time_ms);
        match self.pending.get_mut(&id) {
            Some(pending) => {
                if *pending.consumer != *consumer {
                    if let Some(previous) = self.consumers.get_mut(&pending.consumer) {
                        previous.pending.remove(&id);
                    }
                    pending.consumer = consumer.into();
                }
                pending.delivery_time_ms = time_ms;
                if let Some(count) = count {
                    pending.delivery_count = count;
                }
            }
            None => {
                self.pending.insert(id, Pending { delivery_time_ms: time_ms, delivery_count: count.unwrap_or(1), consumer: consumer.into() });
            }
        }
        self.consumers.get_mut(consumer).expect("assigned to a consumer that exists").pending.insert(id);
    }

    /// Removes `id` from the PEL (acknowledged, or its entry is gone); whether it was there.
    pub fn forget(&mut self, id: StreamId) -> bool {
        let Some(pending) = self.pending.remove(&id) else { return false };
        if let Some(consumer) = self.consumers.get_mut(&pending.consumer) {
            consumer.pending.remove(&id);
        }
        true
    }

    /// Asserts that the group PEL and the consumers' lists agree.
    pub fn check_invariants(&self) {
        let mut listed = 0;
        for (name, consumer) in &self.consumers {
            for id in &consumer.pending {
                assert_eq!(self.pending.get(id).map(|p| &p.consumer), Some(name), "{id} pending for its consumer");
            }
            listed += consumer.pending.len();
        }
        assert_eq!(listed, self.pending.len(), "every pending entry belongs to one consumer");
        let since = self.delivered_since.0;
        assert!(since == 0 || self.pending.values().all(|p| p.delivery_time_ms >= since), "no entry delivered before delivered_since");
    }
}

/// Why an append or a new last id is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// The id is not above the last one.
    TooSmall,
    /// The last possible id was used.
    Exhausted,
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// The entries, in Redis's listpack nodes, by master id.
    nodes: BTreeMap<StreamId, Node>,
    /// Entries not deleted.
    len: usize,
    /// The greatest id ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The greatest id ever deleted by XDEL (or set by XSETID).
    pub max_deleted_id: StreamId,
    /// How many entries were ever added.
    pub entries_added: u64,
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

/// What removing an entry does to the consumer groups' references to it (Redis 8.2's
/// KEEPREF, DELREF and ACKED).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefPolicy {
    /// Remove the entry, leave the references.
    #[default]
    KeepRef,
    /// Remove the entry and every reference to it.
    DelRef,
    /// Remove the entry only when no group needs it any more.
    Acked,
}

/// A trimming request (XADD's and XTRIM's MAXLEN or MINID options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Remove the entries below this id.
    MinId(StreamId),
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The live entries of the node at `master`.
    fn live(master: StreamId, node: &Node) -> impl DoubleEndedIterator<Item = (StreamId, Entry<'_>)> + '_ {
        // Collected so that it also walks backwards (a node holds a bounded number).
        node.slots(master).filter(|slot| slot.flags & DELETED == 0).map(|slot| (slot.id, slot.entry)).collect::<Vec<_>>().into_iter()
    }

    /// The first entry's id, 0-0 when empty.
    pub fn first_id(&self) -> StreamId {
        self.first().map_or(StreamId::MIN, |(id, _)| id)
    }

    pub fn first(&self) -> Option<(StreamId, Entry<'_>)> {
        let (master, node) = self.nodes.first_key_value()?;
        node.slots(*master).find(|slot| slot.flags & DELETED == 0).map(|slot| (slot.id, slot.entry))
    }

    pub fn last(&self) -> Option<(StreamId, Entry<'_>)> {
        let (master, node) = self.nodes.last_key_value()?;
        node.slots(*master).filter(|slot| slot.flags & DELETED == 0).last().map(|slot| (slot.id, slot.entry))
    }

    /// The greatest ID still present (Redis's `streamLastValidID`), 0-0 when empty.
    pub fn last_entry_id(&self) -> StreamId {
        self.nodes.last_key_value().map_or(StreamId::MIN, |(_, node)| node.last_live)
    }

    fn find(&self, id: StreamId) -> Option<(StreamId, Slot<'_>)> {
        let (master, node) = self.nodes.range(..=id).next_back()?;
        if node.last < id {
            return None;
        }
        node.slots(*master).find(|slot| slot.id == id && slot.flags & DELETED == 0).map(|slot| (*master, slot))
    }

    pub fn get(&self, id: StreamId) -> Option<Entry<'_>> {
        self.find(id).map(|(_, slot)| slot.entry)
    }

    /// The entries from `start` to `end` inclusive, forwards or backwards.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Box<dyn Iterator<Item = (StreamId, Entry<'_>)> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        // The node holding `start`, then every node that starts up to `end`.
        let first = self.nodes.range(..=start).next_back().map(|(master, _)| *master).unwrap_or(start);
        let nodes = self.nodes.range(first..=end);
        let within = move |(id, _): &(StreamId, Entry<'_>)| start <= *id && *id <= end;
        if rev {
            Box::new(nodes.rev().flat_map(|(master, node)| Self::live(*master, node).rev()).filter(within))
        } else {
            Box::new(
                nodes.flat_map(|(master, node)| node.slots(*master).filter(|slot| slot.flags & DELETED == 0).map(|slot| (slot.id, slot.entry))).filter(within),
            )
        }
    }

    /// The id `*` gives now: the clock's millisecond, or the last id's next when the clock
    /// is behind it.
    pub fn next_id(&self, now_ms: u64) -> Result<StreamId, IdError> {
        if now_ms > self.last_id.ms {
            Ok(StreamId::new(now_ms, 0))
        } else {
            self.last_id.next().ok_or(IdError::Exhausted)
        }
    }

    /// The id `ms-*` gives: the next sequence number in `ms`.
    pub fn next_id_in(&self, ms: u64) -> Result<StreamId, IdError> {
        match ms.cmp(&self.last_id.ms) {
            std::cmp::Ordering::Greater => Ok(StreamId::new(ms, 0)),
            std::cmp::Ordering::Equal => self.last_id.seq.checked_add(1).map(|seq| StreamId::new(ms, seq)).ok_or(IdError::TooSmall),
            std::cmp::Ordering::Less => Err(IdError::TooSmall),
        }
    }

    /// Appends an entry under `id`, which must be above the last id (so never 0-0).
    pub fn append(&mut self, id: StreamId, fields: Fields, limits: NodeLimits) -> Result<(), IdError> {
        if id <= self.last_id {
            return Err(IdError::TooSmall);
        }
        self.place(id, &fields, limits);
        self.len += 1;
        self.last_id = id;
        self.entries_added += 1;
        Ok(())
    }

    /// Stores `id` in the last node if Redis would put it there, else in a new one.
    fn place(&mut self, id: StreamId, fields: &Fields, limits: NodeLimits) {
        let max_bytes = if limits.max_bytes == 0 || limits.max_bytes > LISTPACK_MAX_BYTES { LISTPACK_MAX_BYTES } else { limits.max_bytes };
        let total: u64 = fields.iter().map(|(f, v)| (f.len() + v.len()) as u64).sum();
        let fits = self
            .nodes
            .last_key_value()
            .is_some_and(|(_, node)| node.listpack_bytes() + total < max_bytes && (limits.max_entries == 0 || node.count < limits.max_entries));
        if !fits {
            let master_fields: Box<[Box<[u8]>]> = fields.iter().map(|(f, _)| Box::from(f)).collect();
            // Header and end byte; the master entry: its field count, fields, terminator.
            let bytes = 6 + 1 + lp_int_size(master_fields.len() as i64) + master_fields.iter().map(|f| lp_string_size(f)).sum::<u64>() + lp_int_size(0);
            self.nodes.insert(id, Node { count: 0, live: 0, last: id, last_live: id, bytes, master_fields, buf: Vec::new() });
        }
        let (master, node) = self.nodes.iter_mut().next_back().expect("a node exists");
        let same_fields = fields.len() == node.master_fields.len() && fields.iter().zip(node.master_fields.iter()).all(|((f, _), m)| f == &m[..]);
        let ms_diff = id.ms.wrapping_sub(master.ms) as i64;
        let seq_diff = id.seq.wrapping_sub(master.seq) as i64;
        let mut bytes = lp_int_size(0) + lp_int_size(ms_diff) + lp_int_size(seq_diff);
        let pairs = fields.len() as i64;
        let lp_count = if same_fields {
            bytes += fields.iter().map(|(_, v)| lp_string_size(v)).sum::<u64>();
            pairs + 3
        } else {
            bytes += lp_int_size(pairs) + fields.iter().map(|(f, v)| lp_string_size(f) + lp_string_size(v)).sum::<u64>();
            2 * pairs + 4
        };
        node.bytes += bytes + lp_int_size(lp_count);
        node.count += 1;
        node.live += 1;
        node.last = id;
        node.last_live = id;
        // The entry itself, in a buffer grown to the exact size, as a listpack is.
        let mut entry = Vec::with_capacity(32);
        entry.push(if same_fields { SAME_FIELDS } else { 0 });
        varint::put(&mut entry, (id.ms - master.ms) as usize);
        varint::put(&mut entry, id.seq as usize);
        if !same_fields {
            varint::put(&mut entry, fields.len());
        }
        for (field, value) in fields.iter() {
            if !same_fields {
                put_str(&mut entry, field);
            }
            put_str(&mut entry, value);
        }
        node.buf.reserve_exact(entry.len());
        node.buf.extend_from_slice(&entry);
    }

    /// Flags the entry at `at` of the node at `master` deleted, dropping the node with its
    /// last live entry.
    fn mark_deleted(&mut self, master: StreamId, at: usize) {
        let node = self.nodes.get_mut(&master).expect("the node is there");
        node.buf[at] |= DELETED;
        node.live -= 1;
        self.len -= 1;
        if node.live == 0 {
            self.nodes.remove(&master);
            return;
        }
        if node.slots(master).any(|slot| slot.at == at && slot.id == node.last_live) {
            node.last_live = node.slots(master).filter(|slot| slot.flags & DELETED == 0).last().map(|slot| slot.id).expect("a live entry is left");
        }
    }

    /// Removes one entry (XDEL); true if it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((master, slot)) = self.find(id) else { return false };
        let at = slot.at;
        self.mark_deleted(master, at);
        self.max_deleted_id = self.max_deleted_id.max(id);
        true
    }

    /// Whether a consumer group still needs entry `id`: pending in a group, or not yet
    /// delivered to one (Redis 8.2's ACKED test).
    pub fn referenced(&self, id: StreamId) -> bool {
        self.groups.values().any(|group| group.pending.contains_key(&id) || group.last_id < id)
    }

    /// Removes `id` from every group's PEL (Redis 8.2's DELREF).
    pub fn forget_everywhere(&mut self, id: StreamId) {
        for group in self.groups.values_mut() {
            group.forget(id);
        }
    }

    /// Trims (XTRIM, XADD's MAXLEN and MINID); returns how many entries went.
    ///
    /// Exact trimming removes what Redis does: down to the length, or every id below the
    /// minimum. Approximate trimming removes a multiple of `granule` entries (a node's worth),
    /// or everything when exact trimming would, at most `limit` (0: no limit): what Redis's
    /// whole-node trimming removes when the nodes are full, but a function of the live entries
    /// alone, so that replaying the command from the append-only log, where the nodes may be
    /// laid out otherwise, removes the same.
    pub fn trim(&mut self, trim: Trim, approx: bool, granule: u64, limit: u64) -> u64 {
        self.trim_with(trim, approx, granule, limit, RefPolicy::KeepRef)
    }

    /// [`Stream::trim`] with a reference policy: DELREF also drops the removed entries from
    /// every group's PEL; ACKED skips the entries a group still needs, removing the oldest
    /// others while the stream is over MAXLEN (or, MINID, below the ID), at most as many as
    /// the trim without it would (so approximate trimming stays bounded).
    pub fn trim_with(&mut self, trim: Trim, approx: bool, granule: u64, limit: u64, policy: RefPolicy) -> u64 {
        if policy == RefPolicy::Acked {
            let most = self.trim_count(trim, approx, granule, limit);
            let mut doomed = Vec::new();
            let mut len = self.len as u64;
            for (id, _) in self.range(StreamId::MIN, StreamId::MAX, false) {
                let done = match trim {
                    Trim::MaxLen(max) => len <= max,
                    Trim::MinId(min) => id >= min,
                };
                if done || doomed.len() as u64 == most {
                    break;
                }
                if !self.referenced(id) {
                    doomed.push(id);
                    len -= 1;
                }
            }
            for id in &doomed {
                self.remove_entry(*id);
            }
            return doomed.len() as u64;
        }
        let wanted = self.trim_count(trim, approx, granule, limit);
        if policy == RefPolicy::DelRef {
            let doomed: Vec<StreamId> = self.range(StreamId::MIN, StreamId::MAX, false).take(wanted as usize).map(|(id, _)| id).collect();
            for id in doomed {
                self.forget_everywhere(id);
            }
        }
        self.remove_first(wanted);
        wanted
    }

    /// Removes one entry as a trim does (not recorded as deleted by XDEL).
    fn remove_entry(&mut self, id: StreamId) {
        if let Some((master, slot)) = self.find(id) {
            let at = slot.at;
            self.mark_deleted(master, at);
        }
    }

    /// How many entries a trim removes (the oldest ones).
    fn trim_count(&self, trim: Trim, approx: bool, granule: u64, limit: u64) -> u64 {
        let mut wanted = match trim {
            Trim::MaxLen(max) => (self.len as u64).saturating_sub(max),
            Trim::MinId(min) => self.count_below(min),
        };
        if approx {
            let everything = wanted == self.len as u64;
            if limit != 0 {
                wanted = wanted.min(limit);
            }
            // Whole nodes of `granule` entries, the oldest first; the newest node may be
            // partly filled, and goes when everything does (as Redis's last node).
            if !(everything && wanted == self.len as u64) {
                let granule = granule.max(1);
                wanted = wanted / granule * granule;
            }
        }
        wanted
    }

    /// How many entries have an id below `min`.
    fn count_below(&self, min: StreamId) -> u64 {
        let mut count = 0;
        for (master, node) in self.nodes.range(..min) {
            if node.last < min {
                count += node.live;
            } else {
                count += node.slots(*master).filter(|slot| slot.flags & DELETED == 0 && slot.id < min).count() as u64;
            }
        }
        count
    }

    /// Removes the first `count` entries (there must be that many): whole nodes, then
    /// entries flagged inside the next one.
    fn remove_first(&mut self, mut count: u64) {
        while count > 0 {
            let (&master, node) = self.nodes.first_key_value().expect("entries to remove are in nodes");
            if node.live <= count {
                count -= node.live;
                self.len -= node.live as usize;
                self.nodes.remove(&master);
                continue;
            }
            let doomed: Vec<usize> = node.slots(master).filter(|slot| slot.flags & DELETED == 0).take(count as usize).map(|slot| slot.at).collect();
            for at in doomed {
                self.mark_deleted(master, at);
            }
            count = 0;
        }
    }

    /// Whether an entry at or after `start` may have been deleted (Redis's
    /// `streamRangeHasTombstones` to the end): the greatest deleted ID is in the range.
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.is_empty() || self.max_deleted_id == StreamId::MIN || self.first_id() > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// The number `id` has among every entry ever added, counting from 1, where it is known
    /// (Redis's `streamEstimateDistanceFromFirstEverEntry`): exact at the ends, and for any
    /// ID when nothing was deleted in the middle.
    pub fn entries_before_or_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        let first = self.first_id();
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < first {
            match id.cmp(&first) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.len as u64),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.len as u64 + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// Sets the last id, the entries added and the greatest deleted id (XSETID).
    pub fn set_id(&mut self, last_id: StreamId, entries_added: Option<u64>, max_deleted_id: Option<StreamId>) {
        self.last_id = last_id;
        if let Some(added) = entries_added {
            self.entries_added = added;
        }
        if let Some(max) = max_deleted_id {
            self.max_deleted_id = max;
        }
    }

    /// Redis's nodes as (master id, entries appended, live entries): for the file writer,
    /// which lays entries out the same way.
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, u64, u64)> + '_ {
        self.nodes.iter().map(|(id, node)| (*id, node.count, node.live))
    }

    /// The entries from `start` up to, not including, `end` (None: to the end).
    pub fn between(&self, start: StreamId, end: Option<StreamId>) -> Box<dyn Iterator<Item = (StreamId, Entry<'_>)> + '_> {
        match end {
            Some(end) => match end.prev() {
                Some(last) => self.range(start, last, false),
                None => Box::new(std::iter::empty()),
            },
            None => self.range(start, StreamId::MAX, false),
        }
    }

    /// Bytes for MEMORY USAGE: the nodes (their buffers by capacity, master fields, tree
    /// slots; the first `samples` measured and scaled, as Redis samples its nodes, all of
    /// them with 0) and the groups.
    pub fn memory_usage(&self, samples: usize) -> usize {
        const TREE_SLOT: usize = std::mem::size_of::<StreamId>() + std::mem::size_of::<Node>() + 8;
        let sizes = self.nodes.values().map(|node| TREE_SLOT + node.buf.capacity() + node.master_fields.iter().map(|f| f.len() + 16).sum::<usize>());
        let nodes = super::sampled_bytes(self.nodes.len(), samples, sizes);
        let groups: usize = self
            .groups
            .iter()
            .map(|(name, group)| {
                name.len()
                    + std::mem::size_of::<Group>()
                    + group.pending.len() * (std::mem::size_of::<Pending>() + 24)
                    + group.consumers.keys().map(|c| c.len() + std::mem::size_of::<Consumer>()).sum::<usize>()
            })
            .sum();
        std::mem::size_of::<Stream>() + nodes + groups
    }

    /// Asserts the bookkeeping: every node's counts and last id match its entries, IDs grow
    /// across nodes, no node is without a live entry, and the length is the live total.
    pub fn check_invariants(&self) {
        let mut live = 0;
        let mut previous: Option<StreamId> = None;
        for (master, node) in &self.nodes {
            let slots: Vec<Slot<'_>> = node.slots(*master).collect();
            assert_eq!(slots.len() as u64, node.count, "node {master}: entries");
            let node_live = slots.iter().filter(|slot| slot.flags & DELETED == 0).count() as u64;
            assert_eq!(node_live, node.live, "node {master}: live entries");
            assert!(node.live > 0, "node {master} has a live entry");
            assert_eq!(slots.first().map(|slot| slot.id), Some(*master), "node {master} starts at its master id");
            assert_eq!(slots.last().map(|slot| slot.id), Some(node.last), "node {master}: last id");
            let last_live = slots.iter().rev().find(|slot| slot.flags & DELETED == 0).map(|slot| slot.id);
            assert_eq!(last_live, Some(node.last_live), "node {master}: last live id");
            for slot in &slots {
                assert!(previous.is_none_or(|p| p < slot.id), "ids grow: {slot_id}", slot_id = slot.id);
                previous = Some(slot.id);
            }
            live += node_live;
        }
        assert_eq!(live, self.len as u64);
        assert!(previous.is_none_or(|p| p <= self.last_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields::new(pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())).collect::<Vec<_>>().into_iter())
    }

    fn filled(n: u64, limits: NodeLimits) -> Stream {
        let mut stream = Stream::new();
        for i in 1..=n {
            stream.append(StreamId::new(i, 0), fields(&[("f", "v")]), limits).unwrap();
        }
        stream.check_invariants();
        stream
    }

    #[test]
    fn fields_keep_pairs_in_order() {
        let f = fields(&[("a", "1"), ("", ""), ("long", &"x".repeat(300))]);
        let pairs: Vec<(&[u8], &[u8])> = f.iter().collect();
        assert_eq!(pairs.len(), 3);
        assert_eq!(f.len(), 3);
        assert_eq!(pairs[0], (&b"a"[..], &b"1"[..]));
        assert_eq!(pairs[1], (&b""[..], &b""[..]));
        assert_eq!(pairs[2].1.len(), 300);
    }

    #[test]
    fn ids_step_over_sequence_ends() {
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
        assert_eq!(StreamId::from_be_bytes(StreamId::new(5, 7).to_be_bytes()), StreamId::new(5, 7));
    }

    #[test]
    fn appends_must_grow() {
        let mut s = Stream::new();
        let limits = NodeLimits::default();
        assert_eq!(s.append(StreamId::MIN, fields(&[("f", "v")]), limits), Err(IdError::TooSmall));
        s.append(StreamId::new(5, 1), fields(&[("f", "v")]), limits).unwrap();
        assert_eq!(s.append(StreamId::new(5, 1), fields(&[("f", "v")]), limits), Err(IdError::TooSmall));
        assert_eq!(s.next_id_in(5), Ok(StreamId::new(5, 2)));
        assert_eq!(s.next_id_in(4), Err(IdError::TooSmall));
        assert_eq!(s.next_id(3), Ok(StreamId::new(5, 2)));
        assert_eq!(s.next_id(9), Ok(StreamId::new(9, 0)));
    }

    #[test]
    fn nodes_hold_max_entries_and_approximate_trims_take_multiples_of_them() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 10 };
        let mut s = filled(35, limits);
        assert_eq!(s.nodes().count(), 4);
        // ~ 20: 15 too many, of which one node's worth goes.
        assert_eq!(s.trim(Trim::MaxLen(20), true, 10, 0), 10);
        assert_eq!(s.len(), 25);
        assert_eq!(s.nodes().count(), 3);
        // Exact trimming removes inside the node.
        assert_eq!(s.trim(Trim::MaxLen(20), false, 10, 0), 5);
        assert_eq!(s.len(), 20);
        s.check_invariants();
        assert_eq!(s.first_id(), StreamId::new(16, 0));
        // 14 below 30: ~ takes 10, a LIMIT below the granule none.
        assert_eq!(s.trim(Trim::MinId(StreamId::new(30, 0)), true, 10, 5), 0);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(30, 0)), true, 10, 0), 10);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(30, 0)), false, 10, 0), 4);
        assert_eq!(s.first_id(), StreamId::new(30, 0));
        // Everything goes at once when everything must, approximate or not.
        assert_eq!(s.trim(Trim::MaxLen(0), true, 10, 0), 6);
        assert!(s.is_empty());
        s.check_invariants();
    }

    #[test]
    fn acked_trims_skip_what_a_group_needs_and_delref_forgets_pending_entries() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 3 };
        let mut s = filled(6, limits);
        let mut group = Group::new(StreamId::new(4, 0), None);
        group.consumer(b"c", 0);
        group.assign(StreamId::new(2, 0), b"c", 0, Some(1));
        s.groups.insert(Box::from(&b"g"[..]), group);
        // 1 acknowledged (read, not pending), 2 pending, 3 and 4 read, 5 and 6 unread.
        assert_eq!(s.trim_with(Trim::MaxLen(0), false, 100, 0, RefPolicy::Acked), 3);
        assert_eq!(s.range(StreamId::MIN, StreamId::MAX, false).map(|(id, _)| id.ms).collect::<Vec<_>>(), vec![2, 5, 6]);
        s.check_invariants();
        assert_eq!(s.trim_with(Trim::MaxLen(2), false, 100, 0, RefPolicy::DelRef), 1);
        assert!(s.groups[&b"g"[..]].pending.is_empty());
        s.groups[&b"g"[..]].check_invariants();
        s.check_invariants();
    }

    #[test]
    fn nodes_split_on_bytes() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 100 };
        let mut s = Stream::new();
        for i in 1..=10 {
            s.append(StreamId::new(i, 0), fields(&[("f", &"x".repeat(1000))]), limits).unwrap();
        }
        // About 1 KB each: a fifth would not stay below 4096 bytes (the listpack's bytes
        // plus the new entry's raw length must).
        assert_eq!(s.nodes().map(|(_, count, _)| count).collect::<Vec<_>>(), vec![4, 4, 2]);
    }

    #[test]
    fn deleting_every_entry_of_a_node_drops_it() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 2 };
        let mut s = filled(4, limits);
        assert!(s.delete(StreamId::new(1, 0)));
        assert!(!s.delete(StreamId::new(1, 0)));
        assert_eq!(s.nodes().count(), 2);
        assert!(s.delete(StreamId::new(2, 0)));
        assert_eq!(s.nodes().count(), 1);
        assert_eq!(s.max_deleted_id, StreamId::new(2, 0));
        s.check_invariants();
    }

    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Append after the last id (ms step, seq), with fields chosen from a small set so
        /// that same-field entries and others mix.
        Append(u64, u64, u8, Vec<u8>),
        Delete(usize),
        Trim(bool, u64, bool),
        Range(usize, usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u64..3, 0u64..3, 0u8..3, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(ms, seq, shape, value)| Op::Append(ms, seq, shape, value)),
            2 => any::<usize>().prop_map(Op::Delete),
            1 => (any::<bool>(), 0u64..40, any::<bool>()).prop_map(|(max_len, n, approx)| Op::Trim(max_len, n, approx)),
            2 => (any::<usize>(), any::<usize>(), any::<bool>()).prop_map(|(a, b, rev)| Op::Range(a, b, rev)),
        ]
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
    type Model = BTreeMap<StreamId, Pairs>;

    fn pairs_of(shape: u8, value: &[u8]) -> Pairs {
        match shape {
            0 => vec![(b"f".to_vec(), value.to_vec())],
            1 => vec![(b"f".to_vec(), value.to_vec()), (b"g".to_vec(), b"12345".to_vec())],
            _ => vec![(value.to_vec(), b"x".to_vec())],
        }
    }

    proptest! {
        /// The stream against a map from ID to pairs, with nodes small enough to open often;
        /// the invariants are checked after every operation.
        #[test]
        fn behaves_like_a_sorted_map(max_entries in 1u64..6, max_bytes in prop_oneof![Just(0u64), Just(60), Just(4096)], ops in proptest::collection::vec(op(), 0..120)) {
            let limits = NodeLimits { max_bytes, max_entries };
            let mut stream = Stream::new();
            let mut model = Model::new();
            for op in ops {
                match op {
                    Op::Append(ms, seq, shape, value) => {
                        let id = StreamId::new(stream.last_id.ms + ms, if ms == 0 { stream.last_id.seq + 1 + seq } else { seq });
                        let pairs = pairs_of(shape, &value);
                        stream.append(id, Fields::new(pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect::<Vec<_>>().into_iter()), limits).unwrap();
                        model.insert(id, pairs);
                    }
                    Op::Delete(pick) => {
                        let id = model.keys().nth(pick % (model.len() + 1)).copied().unwrap_or(StreamId::new(7, 7));
                        prop_assert_eq!(stream.delete(id), model.remove(&id).is_some());
                    }
                    Op::Trim(max_len, n, approx) => {
                        let trim = if max_len { Trim::MaxLen(n) } else { Trim::MinId(StreamId::new(n, 0)) };
                        let removed = stream.trim(trim, approx, 3, 0);
                        for _ in 0..removed {
                            model.pop_first();
                        }
                        if !approx {
                            match trim {
                                Trim::MaxLen(n) => prop_assert!(model.len() as u64 <= n),
                                Trim::MinId(min) => prop_assert!(model.keys().all(|id| *id >= min)),
                            }
                        }
                    }
                    Op::Range(a, b, rev) => {
                        let ids: Vec<StreamId> = model.keys().copied().collect();
                        let pick = |i: usize| ids.get(i % (ids.len() + 1)).copied().unwrap_or(StreamId::MAX);
                        let (start, end) = (pick(a).min(pick(b)), pick(a).max(pick(b)));
                        let got: Vec<(StreamId, Pairs)> = stream.range(start, end, rev).map(|(id, e)| (id, e.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect())).collect();
                        let mut want: Vec<(StreamId, Pairs)> = model.range(start..=end).map(|(id, p)| (*id, p.clone())).collect();
                        if rev {
                            want.reverse();
                        }
                        prop_assert_eq!(got, want);
                    }
                }
                stream.check_invariants();
                prop_assert_eq!(stream.len(), model.len());
                prop_assert_eq!(stream.first_id(), model.keys().next().copied().unwrap_or(StreamId::MIN));
                prop_assert_eq!(stream.last_entry_id(), model.keys().next_back().copied().unwrap_or(StreamId::MIN));
                for (id, pairs) in model.iter().take(3) {
                    let got: Pairs = stream.get(*id).expect("present").iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                    prop_assert_eq!(&got, pairs);
                }
            }
        }
    }
}

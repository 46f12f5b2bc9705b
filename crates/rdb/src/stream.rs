//! Streams in RDB files: types 15 (Redis 5 and 6), 19 (Redis 7.0) and 21 (Redis 7.2 and
//! later) read, type 19 written (Redis 7.0 must load our version 10 files, and it does not
//! know type 21, so consumers' active times are not written).
//!
//! The layout, as Redis's `rdbSaveObject` writes it:
//! - the listpack nodes: their count, then per node its master id (a 16-byte string, ms then
//!   seq, big-endian) and its listpack. The listpack opens with the master entry
//!   `live-count deleted-count N field_1 .. field_N 0`, then holds one record per entry:
//!   `flags ms-delta seq-delta`, then either the N values (flag 2: the master's fields) or
//!   `M field_1 value_1 .. field_M value_M`, then the record's element count (N + 3 or
//!   2M + 4). Flag 1 marks an entry deleted; deltas are from the master id, wrapping;
//! - the length, the last id (ms, seq); from type 19 the first id, the greatest deleted id
//!   and the number of entries ever added;
//! - the consumer groups: their count, then per group its name, its last delivered id, from
//!   type 19 its read counter (`u64::MAX`: unknown), its pending entries list (PEL: count,
//!   then per entry the raw 16-byte id, the delivery time as 8 bytes little-endian and the
//!   delivery count), and its consumers (count, then per consumer its name, its seen time as
//!   8 bytes little-endian, in type 21 its active time likewise (`u64::MAX`: never), and its
//!   pending ids, raw, each one of the group's PEL).
//!
//! Loading keeps the file's node layout, as Redis does (it keeps the loaded listpacks):
//! deleted entries are placed and then deleted, so the node model, and with it what
//! approximate trimming removes, is the one Redis has after loading the same bytes. The
//! stored first id is not kept (the stream derives it); lengths, counters, ids and PEL
//! references are checked, and anything inconsistent is an error.
//!
//! Writing puts one listpack per modelled node, holding only its live entries (Shoal does not
//! keep deleted entries' contents), with the first live entry's fields as master fields.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use shoal_store::types::stream::{Consumer, Entry, Fields, Group, NodeLimits, Pending, StreamId};
use shoal_store::types::Stream;
use shoal_store::value::parse_canonical_i64;

use crate::blobs::{self, Element, ListpackBuilder};
use crate::codec::{read_len, read_string, write_blob, write_len, write_string};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::value::types;

/// The type byte streams are written with.
pub const WRITTEN_TYPE: u8 = types::STREAM_LISTPACKS_2;

/// Entry flags in a node's listpack.
const FLAG_DELETED: i64 = 1;
const FLAG_SAME_FIELDS: i64 = 2;

/// Redis's `SCG_INVALID_ENTRIES_READ` (-1), a group's unknown read counter.
const ENTRIES_READ_UNKNOWN: u64 = u64::MAX;
/// A consumer's active time when it never read or claimed anything (-1).
const ACTIVE_TIME_NEVER: u64 = u64::MAX;

/// Appending with these opens a node: a node that already holds an entry is full.
const OPEN_NODE: NodeLimits = NodeLimits { max_bytes: 0, max_entries: 1 };
/// Appending with these stays in the last node: no entry limit, and 0 bytes means only the
/// 1 GiB listpack cap.
const SAME_NODE: NodeLimits = NodeLimits { max_bytes: 0, max_entries: 0 };

fn corrupt(offset: u64, what: impl Into<String>) -> Error {
    Error::Corrupt { offset, what: what.into() }
}

fn read_id<R: Read>(input: &mut Input<R>) -> Result<StreamId> {
    let ms = read_len(input)?;
    let seq = read_len(input)?;
    Ok(StreamId::new(ms, seq))
}

fn read_raw_id<R: Read>(input: &mut Input<R>, what: &'static str) -> Result<StreamId> {
    Ok(StreamId::from_be_bytes(input.read_array(what)?))
}

fn read_time_ms<R: Read>(input: &mut Input<R>, what: &'static str) -> Result<u64> {
    Ok(u64::from_le_bytes(input.read_array(what)?))
}

/// Reads a stream of type `type_byte` (15, 19 or 21; already consumed).
pub(crate) fn read_stream<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<Stream> {
    let with_counters = type_byte != types::STREAM_LISTPACKS;
    let mut stream = Stream::new();
    let nodes = read_len(input)?;
    // The greatest id in the listpacks so far, deleted entries included.
    let mut greatest: Option<StreamId> = None;
    for _ in 0..nodes {
        let at = input.offset();
        let key = read_string(input)?;
        let master = <[u8; 16]>::try_from(key.as_slice())
            .map(StreamId::from_be_bytes)
            .map_err(|_| corrupt(at, format!("stream node key of {} bytes, not 16", key.len())))?;
        if let Some(before) = greatest.filter(|before| master <= *before) {
            return Err(corrupt(at, format!("stream node {master} does not follow entry {before}")));
        }
        let at = input.offset();
        let blob = read_string(input)?;
        read_node(&mut stream, master, &blob, &mut greatest).map_err(|e| corrupt(at, format!("stream node {master}: {e}")))?;
    }

    let at = input.offset();
    let length = read_len(input)?;
    let last_id = read_id(input)?;
    let (max_deleted_id, entries_added) = if with_counters {
        // The first id is derived from the entries; the stored one is not needed.
        read_id(input)?;
        (read_id(input)?, read_len(input)?)
    } else {
        (StreamId::MIN, length)
    };
    if length != stream.len() as u64 {
        return Err(corrupt(at, format!("stream length {length}, but its nodes hold {} live entries", stream.len())));
    }
    if let Some(greatest) = greatest.filter(|greatest| *greatest > last_id) {
        return Err(corrupt(at, format!("stream entry {greatest} is above the last id {last_id}")));
    }
    if max_deleted_id > last_id {
        return Err(corrupt(at, format!("stream greatest deleted id {max_deleted_id} is above the last id {last_id}")));
    }
    if entries_added < length {
        return Err(corrupt(at, format!("stream has {entries_added} entries added, fewer than its length {length}")));
    }
    stream.set_id(last_id, Some(entries_added), Some(max_deleted_id));

    let groups = read_len(input)?;
    for _ in 0..groups {
        let at = input.offset();
        let name = read_string(input)?.into_boxed_slice();
        let group = read_group(input, type_byte)?;
        if stream.groups.insert(name, group).is_some() {
            return Err(corrupt(at, "duplicate stream consumer group"));
        }
    }
    Ok(stream)
}

/// Reads one consumer group, after its name.
fn read_group<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<Group> {
    let last_id = read_id(input)?;
    let entries_read = match type_byte {
        types::STREAM_LISTPACKS => None,
        _ => Some(read_len(input)?).filter(|&n| n != ENTRIES_READ_UNKNOWN),
    };
    // The PEL's delivery data first; each entry's consumer comes with the consumers, which
    // must own every entry exactly once.
    let mut pel: BTreeMap<StreamId, Pending> = BTreeMap::new();
    let mut owned = BTreeSet::new();
    let pending = read_len(input)?;
    for _ in 0..pending {
        let at = input.offset();
        let id = read_raw_id(input, "a pending entry id")?;
        let delivery_time_ms = read_time_ms(input, "a delivery time")?;
        let delivery_count = read_len(input)?;
        if pel.insert(id, Pending { delivery_time_ms, delivery_count, consumer: Box::default() }).is_some() {
            return Err(corrupt(at, format!("pending entry {id} twice in a group")));
        }
    }
    let mut consumers = BTreeMap::new();
    let count = read_len(input)?;
    for _ in 0..count {
        let at = input.offset();
        let name = read_string(input)?.into_boxed_slice();
        let seen_time_ms = read_time_ms(input, "a consumer's seen time")?;
        // Redis 7.2 gives consumers of older files their seen time as active time.
        let active_time_ms = match type_byte {
            types::STREAM_LISTPACKS_3 => Some(read_time_ms(input, "a consumer's active time")?).filter(|&t| t != ACTIVE_TIME_NEVER),
            _ => Some(seen_time_ms),
        };
        let mut consumer = Consumer { seen_time_ms, active_time_ms, pending: Default::default() };
        let pending = read_len(input)?;
        for _ in 0..pending {
            let id_at = input.offset();
            let id = read_raw_id(input, "a consumer's pending entry id")?;
            let entry = pel.get_mut(&id).ok_or_else(|| corrupt(id_at, format!("consumer's pending entry {id} is not in its group's PEL")))?;
            if !owned.insert(id) {
                return Err(corrupt(id_at, format!("pending entry {id} belongs to two consumers")));
            }
            entry.consumer = name.clone();
            consumer.pending.insert(id);
        }
        if consumers.insert(name, consumer).is_some() {
            return Err(corrupt(at, "duplicate stream consumer"));
        }
    }
    if let Some(id) = pel.keys().find(|id| !owned.contains(*id)) {
        return Err(corrupt(input.offset(), format!("pending entry {id} has no consumer")));
    }
    Ok(Group { last_id, entries_read, pending: pel, consumers, ..Group::default() })
}

/// A cursor over a node's listpack elements.
struct Elements<'e, 'a> {
    items: &'e [Element<'a>],
    at: usize,
}

impl<'e, 'a> Elements<'e, 'a> {
    fn remaining(&self) -> usize {
        self.items.len() - self.at
    }

    /// The next `n` elements.
    fn take(&mut self, n: i64, what: &str) -> Result<&'e [Element<'a>], String> {
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => {
                self.at += n;
                Ok(&self.items[self.at - n..self.at])
            }
            _ => Err(format!("{what}: {n} elements, {} left", self.remaining())),
        }
    }

    /// The next element, which must be an integer (or a string that reads as one, as Redis's
    /// `lpGetIntegerIfValid` accepts).
    fn int(&mut self, what: &str) -> Result<i64, String> {
        match self.take(1, what)?[0] {
            Element::Int(n) => Ok(n),
            Element::Bytes(b) => parse_canonical_i64(b).ok_or_else(|| format!("{what} is not an integer")),
        }
    }
}

/// Reads one node's listpack into `stream`, in a node of its own; `greatest` is the greatest
/// id met so far, which every entry must be above.
fn read_node(stream: &mut Stream, master: StreamId, blob: &[u8], greatest: &mut Option<StreamId>) -> Result<(), String> {
    let elements = blobs::parse_listpack(blob)?;
    if elements.is_empty() {
        return Err("empty listpack".into());
    }
    let mut lp = Elements { items: &elements, at: 0 };
    let live = lp.int("the live entry count")?;
    let deleted = lp.int("the deleted entry count")?;
    let field_count = lp.int("the master field count")?;
    let master_fields: Vec<Cow<[u8]>> = lp.take(field_count, "the master fields")?.iter().map(Element::as_bytes).collect();
    if lp.int("the master entry terminator")? != 0 {
        return Err("the master entry does not end with 0".into());
    }
    let (mut live_found, mut deleted_found) = (0i64, 0i64);
    // Deleted entries are placed, so the node's model counts them, and deleted at the end:
    // deleting a node's only live entry at once would drop the node.
    let mut doomed = Vec::new();
    while lp.remaining() > 0 {
        let flags = lp.int("an entry's flags")?;
        if flags & !(FLAG_DELETED | FLAG_SAME_FIELDS) != 0 {
            return Err(format!("unknown entry flags {flags}"));
        }
        let ms_delta = lp.int("an entry's ms delta")?;
        let seq_delta = lp.int("an entry's seq delta")?;
        let id = StreamId::new(master.ms.wrapping_add(ms_delta as u64), master.seq.wrapping_add(seq_delta as u64));
        if id < master {
            return Err(format!("entry {id} is below the node's master id"));
        }
        if let Some(before) = greatest.filter(|before| id <= *before) {
            return Err(format!("entry {id} does not follow {before}"));
        }
        *greatest = Some(id);
        let mut strings: Vec<Cow<[u8]>> = Vec::new();
        let expected_count = if flags & FLAG_SAME_FIELDS != 0 {
            for (field, value) in master_fields.iter().zip(lp.take(field_count, "an entry's values")?) {
                strings.push(field.clone());
                strings.push(value.as_bytes());
            }
            field_count + 3
        } else {
            let pairs = lp.int("an entry's field count")?;
            let items = lp.take(pairs.checked_mul(2).unwrap_or(-1), "an entry's fields and values")?;
            strings.extend(items.iter().map(Element::as_bytes));
            2 * pairs + 4
        };
        let count = lp.int("an entry's element count")?;
        if count != expected_count {
            return Err(format!("entry {id} says it has {count} elements, not {expected_count}"));
        }
        let pairs: Vec<(&[u8], &[u8])> = strings.chunks_exact(2).map(|p| (p[0].as_ref(), p[1].as_ref())).collect();
        let limits = if live_found + deleted_found == 0 { OPEN_NODE } else { SAME_NODE };
        stream.append(id, Fields::new(pairs.into_iter()), limits).map_err(|_| format!("entry {id} is not above the last id"))?;
        if flags & FLAG_DELETED != 0 {
            deleted_found += 1;
            doomed.push(id);
        } else {
            live_found += 1;
        }
    }
    if (live, deleted) != (live_found, deleted_found) {
        return Err(format!("the master entry counts {live} live and {deleted} deleted entries, the node holds {live_found} and {deleted_found}"));
    }
    for id in doomed {
        stream.delete(id);
    }
    Ok(())
}

/// Appends `stream`'s body as type 19.
pub fn write_stream(out: &mut Vec<u8>, stream: &Stream, compress: bool) {
    let masters: Vec<StreamId> = stream.nodes().map(|(master, _, _)| master).collect();
    let mut nodes: Vec<(StreamId, Vec<u8>)> = Vec::with_capacity(masters.len());
    for (i, &master) in masters.iter().enumerate() {
        let entries: Vec<(StreamId, Entry<'_>)> = stream.between(master, masters.get(i + 1).copied()).collect();
        let Some((_, first)) = entries.first() else { continue };
        let master_fields: Vec<&[u8]> = first.iter().map(|(field, _)| field).collect();
        let mut lp = ListpackBuilder::new();
        lp.push_int(entries.len() as i64);
        lp.push_int(0);
        lp.push_int(master_fields.len() as i64);
        master_fields.iter().for_each(|field| lp.push(field));
        lp.push_int(0);
        for (id, fields) in &entries {
            let same = fields.len() == master_fields.len() && fields.iter().zip(&master_fields).all(|((field, _), master)| field == *master);
            lp.push_int(if same { FLAG_SAME_FIELDS } else { 0 });
            lp.push_int(id.ms.wrapping_sub(master.ms) as i64);
            lp.push_int(id.seq.wrapping_sub(master.seq) as i64);
            let pairs = fields.len() as i64;
            if same {
                fields.iter().for_each(|(_, value)| lp.push(value));
                lp.push_int(pairs + 3);
            } else {
                lp.push_int(pairs);
                for (field, value) in fields.iter() {
                    lp.push(field);
                    lp.push(value);
                }
                lp.push_int(2 * pairs + 4);
            }
        }
        nodes.push((master, lp.finish()));
    }
    write_len(out, nodes.len() as u64);
    for (master, blob) in &nodes {
        write_blob(out, &master.to_be_bytes(), compress);
        write_blob(out, blob, compress);
    }

    write_len(out, stream.len() as u64);
    write_id(out, stream.last_id);
    write_id(out, stream.first_id());
    write_id(out, stream.max_deleted_id);
    write_len(out, stream.entries_added);

    write_len(out, stream.groups.len() as u64);
    for (name, group) in &stream.groups {
        write_string(out, name, compress);
        write_id(out, group.last_id);
        write_len(out, group.entries_read.unwrap_or(ENTRIES_READ_UNKNOWN));
        write_len(out, group.pending.len() as u64);
        for (id, pending) in &group.pending {
            debug_assert!(group.consumers.get(&pending.consumer).is_some_and(|c| c.pending.contains(id)), "pending entry {id} has its consumer");
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&pending.delivery_time_ms.to_le_bytes());
            write_len(out, pending.delivery_count);
        }
        write_len(out, group.consumers.len() as u64);
        for (name, consumer) in &group.consumers {
            write_string(out, name, compress);
            out.extend_from_slice(&consumer.seen_time_ms.to_le_bytes());
            write_len(out, consumer.pending.len() as u64);
            for id in &consumer.pending {
                debug_assert!(group.pending.get(id).is_some_and(|p| p.consumer == *name), "consumer's pending entry {id} is in the group's PEL");
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

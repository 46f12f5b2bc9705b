//! The bitmap family: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO
//! (Redis's `bitops.c`).
//!
//! Bitmaps are string values; bit 0 is the most significant bit of the first byte. A command
//! that writes bits grows the string with zero bytes and leaves it raw, as Redis does. Bit
//! offsets are bounded by `proto-max-bulk-len` (a byte past it is refused), so no argument
//! can make a string larger than a client could have written.
//!
//! BITCOUNT and BITPOS check their arguments before they look at the key, as Redis does since
//! 7.2 (Redis 7.0 answered 0 or -1 for a missing key whatever the arguments).
//!
//! BITOP's destination and sources may live on different cores: the first hop reads every
//! source where it lives, the second writes (or deletes) the destination, both in one
//! transaction.
//!
//! BITOP also has the operations Redis 8.2 added: DIFF, DIFF1, ANDOR and ONE.

pub mod bitfield;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::{slot, Db, Str, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx, Settings};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@bitmap"], group: "bitmap", ..CommandSpec::DEFAULT };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "setbit",
        arity: 4,
        flags: WRITE | DENYOOM,
        summary: "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
        since: "2.2.0",
        handler: Handler::Keys { local: setbit, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "getbit",
        arity: 3,
        flags: READONLY | FAST,
        summary: "Returns a bit value by offset.",
        since: "2.2.0",
        handler: Handler::Keys { local: getbit, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "bitcount",
        arity: -2,
        flags: READONLY,
        summary: "Counts the number of set bits (population counting) in a string.",
        since: "2.6.0",
        complexity: "O(N)",
        handler: Handler::Keys { local: bitcount, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "bitpos",
        arity: -3,
        flags: READONLY,
        summary: "Finds the first set (1) or clear (0) bit in a string.",
        since: "2.8.7",
        complexity: "O(N)",
        handler: Handler::Keys { local: bitpos, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "bitop",
        arity: -4,
        flags: WRITE | DENYOOM,
        keys: KeySpec { first: 2, last: -1, step: 1 },
        summary: "Performs bitwise operations on multiple strings, and stores the result.",
        since: "2.6.0",
        complexity: "O(N)",
        handler: Handler::Keys { local: bitop, multi: Some(bitop_multi) },
        ..BASE
    },
    CommandSpec {
        name: "bitfield",
        arity: -2,
        flags: WRITE | DENYOOM,
        summary: "Performs arbitrary bitfield integer operations on strings.",
        since: "3.2.0",
        complexity: "O(1) for each subcommand specified",
        handler: Handler::Keys { local: bitfield, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "bitfield_ro",
        arity: -2,
        flags: READONLY | FAST,
        summary: "Performs arbitrary read-only bitfield integer operations on strings.",
        since: "6.0.0",
        complexity: "O(1) for each subcommand specified",
        handler: Handler::Keys { local: bitfield_ro, multi: None },
        ..BASE
    },
];

const BIT_OFFSET_INVALID: &str = "ERR bit offset is not an integer or out of range";
const BIT_INVALID: &str = "ERR bit is not an integer or out of range";
const BITPOS_BIT_INVALID: &str = "ERR The bit argument must be 1 or 0.";
const BITOP_NOT_ONE_SOURCE: &str = "ERR BITOP NOT must be called with a single source key.";

/// Parses a bit offset as Redis's `getBitOffsetFromArgument`: with `bits` (BITFIELD), a
/// leading `#` counts in fields of that width. An offset whose byte is at or past
/// `proto-max-bulk-len` is refused.
fn parse_bit_offset(arg: &[u8], bits: Option<u32>, settings: &Settings) -> Result<u64, Frame> {
    let invalid = || errors::error(BIT_OFFSET_INVALID);
    let (digits, width) = match (arg.first(), bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    let offset = shoal_store::value::parse_canonical_i64(digits).ok_or_else(invalid)?.wrapping_mul(width);
    if offset < 0 || (offset >> 3) as u64 >= settings.proto_max_bulk_len {
        return Err(invalid());
    }
    Ok(offset as u64)
}

/// The string at `key` for reading; Err(WRONGTYPE) for other types.
fn read_string<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a Str>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Str(s) => Ok(Some(s)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// The string at `key` as a raw buffer of at least `len` bytes, created or zero-extended as
/// needed (Redis's `lookupStringForBitCommand`), and whether it was created or grown.
fn string_for_bits<'a>(db: &'a mut Db, key: &[u8], len: usize, now_ms: u64) -> Result<(&'a mut Vec<u8>, bool), Frame> {
    let mut grown = false;
    if db.lookup_write(key, now_ms).is_none() {
        db.set(key, Value::Str(Str::from_vec(vec![0; len])), now_ms);
        grown = true;
    }
    let entry = db.lookup_write(key, now_ms).expect("the key exists now");
    let Value::Str(s) = &mut entry.value else {
        return Err(errors::wrong_type());
    };
    let buffer = s.make_raw();
    if buffer.len() < len {
        buffer.resize(len, 0);
        grown = true;
    }
    Ok((buffer, grown))
}

fn bit_at(bytes: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    bytes.get(byte).is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

// ---- SETBIT, GETBIT --------------------------------------------------------------------

/// Sets the bit at `offset` to `on`, creating or growing the string; returns the old bit.
/// Counts one change when the bit flips or the string was created or grown, as Redis does.
pub fn op_setbit(db: &mut Db, key: &[u8], offset: u64, on: bool, now_ms: u64) -> Result<bool, Frame> {
    let (buffer, grown) = string_for_bits(db, key, (offset >> 3) as usize + 1, now_ms)?;
    let byte = (offset >> 3) as usize;
    let mask = 0x80u8 >> (offset & 7);
    let old = buffer[byte] & mask != 0;
    if on {
        buffer[byte] |= mask;
    } else {
        buffer[byte] &= !mask;
    }
    db.add_changes((grown || old != on) as u64);
    Ok(old)
}

/// SETBIT key offset value
fn setbit(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let parsed = parse_bit_offset(&args[2], None, ctx.settings).and_then(|offset| match shoal_store::value::parse_canonical_i64(&args[3]) {
        Some(on @ (0 | 1)) => Ok((offset, on == 1)),
        _ => Err(errors::error(BIT_INVALID)),
    });
    let (offset, on) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let changes_before = ctx.db().stats.changes;
    let old = op_setbit(ctx.db(), &args[1], offset, on, now);
    // Redis notifies only when the string was created or grown, or the bit flipped: exactly
    // when the operation counts a change.
    if old.is_ok() && ctx.db().stats.changes != changes_before {
        ctx.notify(notify::STRING, "setbit", &args[1]);
    }
    ctx::reply(old, args::int)
}

pub fn op_getbit(db: &mut Db, key: &[u8], offset: u64, now_ms: u64) -> Result<bool, Frame> {
    Ok(read_string(db, key, now_ms)?.is_some_and(|s| s.with_bytes(|bytes| bit_at(bytes, offset))))
}

/// GETBIT key offset
fn getbit(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let offset = match parse_bit_offset(&args[2], None, ctx.settings) {
        Ok(offset) => offset,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    ctx::reply(op_getbit(ctx.db(), &args[1], offset, now), args::int)
}

// ---- BITCOUNT, BITPOS ------------------------------------------------------------------

/// The unit of BITCOUNT's and BITPOS's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Byte,
    Bit,
}

fn parse_unit(arg: &[u8]) -> Result<Unit, Frame> {
    if is(arg, "bit") {
        Ok(Unit::Bit)
    } else if is(arg, "byte") {
        Ok(Unit::Byte)
    } else {
        Err(errors::syntax())
    }
}

/// A range resolved against a string of `len` bytes: negative indexes count from the end,
/// then both ends are clamped into the string. Returns inclusive bit positions, None when
/// empty.
fn resolve_range(start: i64, end: i64, unit: Unit, len: usize) -> Option<(u64, u64)> {
    let total = match unit {
        Unit::Byte => len as i64,
        Unit::Bit => (len as i64) << 3,
    };
    let mut start = if start < 0 { total + start } else { start };
    let mut end = if end < 0 { total + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    Some(match unit {
        Unit::Byte => ((start as u64) << 3, ((end as u64) << 3) + 7),
        Unit::Bit => (start as u64, end as u64),
    })
}

/// The number of set bits between bit positions `first` and `last`, inclusive.
fn count_bits(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut count: u64 = bytes[first_byte..=last_byte].iter().map(|b| b.count_ones() as u64).sum();
    // Take away the bits of the edge bytes outside the range.
    count -= (bytes[first_byte] & !(0xffu8 >> (first & 7))).count_ones() as u64;
    count -= (bytes[last_byte] & (0x7fu8 >> (last & 7))).count_ones() as u64;
    count
}

/// BITCOUNT's range: the whole string, or start and end in a unit.
pub type CountRange = Option<(i64, i64, Unit)>;

fn parse_bitcount(args: &[Bytes]) -> Result<CountRange, Frame> {
    match args.len() {
        2 => Ok(None),
        4 | 5 => {
            let start = args::parse_i64(&args[2])?;
            let end = args::parse_i64(&args[3])?;
            let unit = if args.len() == 5 { parse_unit(&args[4])? } else { Unit::Byte };
            Ok(Some((start, end, unit)))
        }
        _ => Err(errors::syntax()),
    }
}

pub fn op_bitcount(db: &mut Db, key: &[u8], range: CountRange, now_ms: u64) -> Result<u64, Frame> {
    let Some(s) = read_string(db, key, now_ms)? else {
        return Ok(0);
    };
    Ok(s.with_bytes(|bytes| {
        let resolved = match range {
            None => resolve_range(0, -1, Unit::Byte, bytes.len()),
            // Redis answers 0 at once for two negative indexes in the wrong order.
            Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
            Some((start, end, unit)) => resolve_range(start, end, unit, bytes.len()),
        };
        resolved.map_or(0, |(first, last)| count_bits(bytes, first, last))
    }))
}

/// BITCOUNT key [start end [BYTE | BIT]]
fn bitcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let range = match parse_bitcount(args) {
        Ok(range) => range,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    ctx::reply(op_bitcount(ctx.db(), &args[1], range, now), args::int)
}

/// BITPOS's arguments after the bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosRange {
    start: i64,
    end: Option<i64>,
    unit: Unit,
}

fn parse_bitpos(args: &[Bytes]) -> Result<(bool, Option<PosRange>), Frame> {
    let bit = match args::parse_i64(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(errors::error(BITPOS_BIT_INVALID)),
    };
    match args.len() {
        3 => Ok((bit, None)),
        4..=6 => {
            let start = args::parse_i64(&args[3])?;
            let unit = if args.len() == 6 { parse_unit(&args[5])? } else { Unit::Byte };
            let end = if args.len() >= 5 { Some(args::parse_i64(&args[4])?) } else { None };
            Ok((bit, Some(PosRange { start, end, unit })))
        }
        _ => Err(errors::syntax()),
    }
}

/// The position of the first bit equal to `bit` in the range. A missing key is all zeros. A
/// search for 0 without an explicit end treats the string as padded with zeros, so it finds
/// the first bit past the end; with an explicit end it finds nothing (-1).
pub fn op_bitpos(db: &mut Db, key: &[u8], bit: bool, range: Option<PosRange>, now_ms: u64) -> Result<i64, Frame> {
    let Some(s) = read_string(db, key, now_ms)? else {
        return Ok(if bit { -1 } else { 0 });
    };
    Ok(s.with_bytes(|bytes| {
        let (resolved, end_given) = match range {
            None => (resolve_range(0, -1, Unit::Byte, bytes.len()), false),
            Some(PosRange { start, end, unit }) => (resolve_range(start, end.unwrap_or(i64::MAX), unit, bytes.len()), end.is_some()),
        };
        let Some((first, last)) = resolved else {
            return -1;
        };
        match first_bit(bytes, first, last, bit) {
            Some(position) => position as i64,
            None if bit || end_given => -1,
            None => ((last >> 3) + 1) as i64 * 8,
        }
    }))
}

/// The first bit equal to `bit` between bit positions `first` and `last`, inclusive: bit by
/// bit in the edge bytes, byte by byte in between.
fn first_bit(bytes: &[u8], first: u64, last: u64, bit: bool) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let mut offset = first;
    while offset <= last {
        if offset & 7 == 0 && offset + 7 <= last && bytes[(offset >> 3) as usize] == skip {
            offset += 8;
            continue;
        }
        if bit_at(bytes, offset) == bit {
            return Some(offset);
        }
        offset += 1;
    }
    None
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
fn bitpos(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (bit, range) = match parse_bitpos(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    ctx::reply(op_bitpos(ctx.db(), &args[1], bit, range, now), args::int)
}

// ---- BITOP -----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
    /// The first source's bits set in none of the others (Redis 8.2).
    Diff,
    /// The bits set in one of the other sources but not in the first (Redis 8.2).
    Diff1,
    /// The first source's bits also set in one of the others (Redis 8.2).
    AndOr,
    /// The bits set in exactly one source (Redis 8.2).
    One,
}

const BITOP_NAMES: &[(&str, BitOp)] = &[
    ("and", BitOp::And),
    ("or", BitOp::Or),
    ("xor", BitOp::Xor),
    ("not", BitOp::Not),
    ("diff", BitOp::Diff),
    ("diff1", BitOp::Diff1),
    ("andor", BitOp::AndOr),
    ("one", BitOp::One),
];

fn parse_bitop(args: &[Bytes]) -> Result<BitOp, Frame> {
    let op = BITOP_NAMES.iter().find_map(|&(word, op)| is(&args[1], word).then_some(op)).ok_or_else(errors::syntax)?;
    if op == BitOp::Not && args.len() != 4 {
        return Err(errors::error(BITOP_NOT_ONE_SOURCE));
    }
    if matches!(op, BitOp::Diff | BitOp::Diff1 | BitOp::AndOr) && args.len() < 5 {
        let name = String::from_utf8_lossy(&args[1]).to_ascii_uppercase();
        return Err(errors::error(&format!("ERR BITOP {name} must be called with at least two source keys.")));
    }
    Ok(op)
}

/// The result of `op` over `sources` (missing keys are empty strings): as long as the
/// longest source, shorter ones padded with zero bytes.
pub fn compute_bitop(op: BitOp, sources: &[Option<Bytes>]) -> Vec<u8> {
    let len = sources.iter().map(|s| s.as_ref().map_or(0, |b| b.len())).max().unwrap_or(0);
    let byte_of = |source: &Option<Bytes>, i: usize| source.as_ref().and_then(|b| b.get(i).copied()).unwrap_or(0);
    (0..len)
        .map(|i| {
            let first = byte_of(&sources[0], i);
            let others = || sources[1..].iter().map(|s| byte_of(s, i));
            match op {
                BitOp::Not => !first,
                BitOp::And => others().fold(first, |acc, b| acc & b),
                BitOp::Or => others().fold(first, |acc, b| acc | b),
                BitOp::Xor => others().fold(first, |acc, b| acc ^ b),
                BitOp::Diff => first & !others().fold(0, |acc, b| acc | b),
                BitOp::Diff1 => !first & others().fold(0, |acc, b| acc | b),
                BitOp::AndOr => first & others().fold(0, |acc, b| acc | b),
                BitOp::One => {
                    // Bits seen exactly once, and bits seen more than once.
                    let (once, more) = others().fold((first, 0u8), |(once, more), b| (once ^ b, more | (once & b)));
                    once & !more
                }
            }
        })
        .collect()
}

/// A source that is not a string: its position among the keys read, and the error.
pub type SourceError = (usize, Frame);

/// Reads `keys` in order as BITOP's sources; stops at the first that is not a string.
pub fn op_read_sources(db: &mut Db, keys: &[Bytes], now_ms: u64) -> Result<Vec<Option<Bytes>>, SourceError> {
    keys.iter().enumerate().map(|(position, key)| read_string(db, key, now_ms).map(|s| s.map(Str::to_bytes)).map_err(|e| (position, e))).collect()
}

/// Stores BITOP's result at `key` as a raw string without TTL, or deletes the key when the
/// result is empty. Returns the result's length.
pub fn op_store_result(db: &mut Db, key: &[u8], result: Vec<u8>, now_ms: u64) -> usize {
    let len = result.len();
    // One change, unless an empty result met no key to delete.
    if result.is_empty() {
        let removed = db.remove(key).is_some();
        db.add_changes(removed as u64);
    } else {
        db.set(key, Value::Str(Str::from_vec(result)), now_ms);
        db.add_changes(1);
    }
    len
}

/// [`op_store_result`] with its event: `set`, or `del` when an empty result deleted the key.
fn store_result(ctx: &mut Ctx, key: &[u8], result: Vec<u8>) -> usize {
    let now = ctx.now_ms;
    let empty = result.is_empty();
    let existed = empty && ctx.notifying(notify::GENERIC) && ctx.db().lookup_quiet(key, now).is_some();
    let len = op_store_result(ctx.db(), key, result, now);
    if !empty {
        ctx.notify(notify::STRING, "set", key);
    } else if existed {
        ctx.notify(notify::GENERIC, "del", key);
    }
    len
}

/// BITOP <AND | OR | XOR | NOT | DIFF | DIFF1 | ANDOR | ONE> destkey key [key ...]
fn bitop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let op = match parse_bitop(args) {
        Ok(op) => op,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let db = ctx.db();
    let sources = match op_read_sources(db, &args[3..], now) {
        Ok(sources) => sources,
        Err((_, e)) => return e,
    };
    args::int(store_result(ctx, &args[2], compute_bitop(op, &sources)))
}

/// BITOP across cores: one hop reads the sources where they live (the error of the earliest
/// bad source wins, as Redis stops there), a second stores the result.
fn bitop_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let op = match parse_bitop(&args) {
            Ok(op) => op,
            Err(e) => return e,
        };
        let keys = args.iter().enumerate().skip(3).map(|(i, k)| (i, k.clone()));
        let groups = ctx::group_by_shard(coordinator.shard_count(), keys);
        let results = ctx::hop_per_shard(coordinator, groups, |ctx: &mut Ctx, keys: Vec<Bytes>| {
            let now = ctx.now_ms;
            op_read_sources(ctx.db(), &keys, now)
        })
        .await;
        let mut sources: Vec<Option<Bytes>> = vec![None; args.len() - 3];
        let mut first_error: Option<(usize, Frame)> = None;
        for (indexes, result) in results {
            match result {
                Ok(values) => {
                    for (index, value) in indexes.into_iter().zip(values) {
                        sources[index - 3] = value;
                    }
                }
                Err((position, e)) => {
                    let index = indexes[position];
                    if first_error.as_ref().is_none_or(|(earliest, _)| index < *earliest) {
                        first_error = Some((index, e));
                    }
                }
            }
        }
        if let Some((_, e)) = first_error {
            return e;
        }
        let result = compute_bitop(op, &sources);
        let destination = args[2].clone();
        let shard = slot::key_shard(&destination, coordinator.shard_count());
        let len = ctx::hop_one(coordinator, shard, move |ctx: &mut Ctx| store_result(ctx, &destination, result)).await;
        args::int(len)
    }
    .boxed_local()
}

// ---- BITFIELD --------------------------------------------------------------------------

/// BITFIELD key [GET encoding offset | [OVERFLOW <WRAP | SAT | FAIL>] <SET encoding offset value | INCRBY encoding offset increment> ...]
fn bitfield(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    bitfield::bitfield_command(ctx, args, false)
}

/// BITFIELD_RO key [GET encoding offset [GET encoding offset ...]]
fn bitfield_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    bitfield::bitfield_command(ctx, args, true)
}

#[cfg(test)]
mod tests;

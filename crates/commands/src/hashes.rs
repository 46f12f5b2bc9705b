//! The hash family: HSET, HGET and friends (Redis's `t_hash.c`).
//!
//! Replies and errors follow Redis 7 byte for byte, including the order in which arguments
//! are checked (HINCRBYFLOAT refuses an infinite increment before it looks at the key) and
//! HINCRBYFLOAT's `long double` arithmetic, shared with INCRBYFLOAT ([`long_double`]).
//! HSCAN takes 7.4's NOVALUES. The encodings (listpack, then hashtable) live in the store's
//! [`Hash`]; a listpack-encoded hash replies in insertion order, as Redis's does.
//!
//! One deliberate difference: HRANDFIELD with a negative count builds its whole reply before
//! sending it, as Redis does, so a count whose reply would pass `proto-max-bulk-len` bytes is
//! refused with an error instead of exhausting memory (Redis would try).

use bytes::Bytes;
use shoal_resp::{AggregateKind, Encoded, Frame, Protocol};
use shoal_store::types::Hash;
use shoal_store::{Db, Limits, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Ctx};
use crate::errors;
use crate::strings::long_double::{self, LongDouble};
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

pub mod field_ttl;
pub mod himport;

const HASH_VALUE_NOT_INTEGER: &str = "ERR hash value is not an integer";
const HASH_VALUE_NOT_FLOAT: &str = "ERR hash value is not a float";
const VALUE_NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";
/// HRANDFIELD's count with WITHVALUES beyond ±LONG_MAX/2.
const VALUE_OUT_OF_RANGE: &str = "ERR value is out of range";
/// HRANDFIELD's count below -LONG_MAX (Redis's `getRangeLongFromObjectOrReply`).
const COUNT_OUT_OF_RANGE: &str = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// Shoal's own: see the module comment.
const REPLY_TOO_LARGE: &str = "ERR count is out of range: the reply would be larger than proto-max-bulk-len";

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@hash"], group: "hash", since: "2.0.0", ..CommandSpec::DEFAULT };

const ALL_COMPLEXITY: &str = "O(N) where N is the size of the hash.";

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "hset",
        arity: -4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Creates or modifies the value of a field in a hash.",
        complexity: "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        handler: Handler::Keys { local: hset, multi: None },
        members: KeySpec::FIELD_VALUE_PAIRS,
        ..BASE
    },
    CommandSpec {
        name: "hsetnx",
        arity: 4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Sets the value of a field in a hash only when the field doesn't exist.",
        handler: Handler::Keys { local: hsetnx, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        // Deprecated since 4.0.0 in favour of HSET with several pairs.
        name: "hmset",
        arity: -4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Sets the values of multiple fields.",
        complexity: "O(N) where N is the number of fields being set.",
        handler: Handler::Keys { local: hmset, multi: None },
        members: KeySpec::FIELD_VALUE_PAIRS,
        ..BASE
    },
    CommandSpec {
        name: "hget",
        arity: 3,
        flags: READONLY | FAST,
        summary: "Returns the value of a field in a hash.",
        handler: Handler::Keys { local: hget, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "hmget",
        arity: -3,
        flags: READONLY | FAST,
        summary: "Returns the values of all fields in a hash.",
        complexity: "O(N) where N is the number of fields being requested.",
        handler: Handler::Keys { local: hmget, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "hdel",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
        complexity: "O(N) where N is the number of fields to be removed.",
        handler: Handler::Keys { local: hdel, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "hlen",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the number of fields in a hash.",
        handler: Handler::Keys { local: hlen, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hstrlen",
        arity: 3,
        flags: READONLY | FAST,
        summary: "Returns the length of the value of a field.",
        since: "3.2.0",
        handler: Handler::Keys { local: hstrlen, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "hexists",
        arity: 3,
        flags: READONLY | FAST,
        summary: "Determines whether a field exists in a hash.",
        handler: Handler::Keys { local: hexists, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "hkeys",
        arity: 2,
        flags: READONLY,
        summary: "Returns all fields in a hash.",
        complexity: ALL_COMPLEXITY,
        handler: Handler::Keys { local: hkeys, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hvals",
        arity: 2,
        flags: READONLY,
        summary: "Returns all values in a hash.",
        complexity: ALL_COMPLEXITY,
        handler: Handler::Keys { local: hvals, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hgetall",
        arity: 2,
        flags: READONLY,
        summary: "Returns all fields and values in a hash.",
        complexity: ALL_COMPLEXITY,
        handler: Handler::Keys { local: hgetall, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hincrby",
        arity: 4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
        handler: Handler::Keys { local: hincrby, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "hincrbyfloat",
        arity: 4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
        since: "2.6.0",
        handler: Handler::Keys { local: hincrbyfloat, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "hrandfield",
        arity: -2,
        flags: READONLY,
        summary: "Returns one or more random fields from a hash.",
        since: "6.2.0",
        complexity: "O(N) where N is the number of fields returned",
        handler: Handler::Keys { local: hrandfield, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hscan",
        arity: -3,
        flags: READONLY,
        summary: "Iterates over fields and values of a hash.",
        since: "2.8.0",
        complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        handler: Handler::Keys { local: hscan, multi: None },
        ..BASE
    },
];

// ---- Lookups -----------------------------------------------------------------------------

/// Runs `read` on the hash at `key` (looked up for reading, so it counts a hit or a miss);
/// `missing` when there is none, WRONGTYPE for another type. Fields whose TTL passed are
/// removed first, as Redis's hash commands expire them lazily.
fn read_hash<T>(db: &mut Db, key: &[u8], now_ms: u64, missing: T, read: impl FnOnce(&Hash) -> T) -> Result<T, Frame> {
    db.expire_hash_fields(key, now_ms);
    match db.lookup_read(key, now_ms) {
        None => Ok(missing),
        Some(entry) => match &entry.value {
            Value::Hash(hash) => Ok(read(hash)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// The hash at `key` for writing: None when absent, WRONGTYPE for another type.
fn hash_for_write<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut Hash>, Frame> {
    db.expire_hash_fields(key, now_ms);
    match db.lookup_write(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::Hash(hash) => Ok(Some(hash)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// Runs `write` on the hash at `key`, creating it when absent (stored only if `write` left
/// something in it, so an empty hash never exists), then moves it to a field-name template
/// if `hash-min-template-entries` says so. WRONGTYPE for another type.
fn write_hash<T>(db: &mut Db, key: &[u8], limits: &Limits, now_ms: u64, write: impl FnOnce(&mut Hash) -> Result<T, Frame>) -> Result<T, Frame> {
    match hash_for_write(db, key, now_ms)? {
        Some(hash) => {
            let result = write(hash);
            hash.template_if_due(limits);
            fields_written(db, key);
            result
        }
        None => {
            let mut hash = Hash::new();
            let result = write(&mut hash)?;
            hash.template_if_due(limits);
            if !hash.is_empty() {
                db.set(key, Value::Hash(hash), now_ms);
            }
            Ok(result)
        }
    }
}

/// After fields of the hash at `key` were set or removed: one whose TTL went with them
/// (HSET drops a field's TTL, HDEL its field) is listed again under its next one, so the
/// database's count of hashes with field TTLs stays exact. One branch while no hash of the
/// database has field TTLs.
#[inline]
fn fields_written(db: &mut Db, key: &[u8]) {
    if db.volatile_hashes() > 0 {
        db.reindex_hash(key);
    }
}

fn bytes(slice: &[u8]) -> Bytes {
    Bytes::copy_from_slice(slice)
}

// ---- HSET, HSETNX, HMSET -----------------------------------------------------------------

/// Sets each (field, value) of `pairs` (a flat list); returns how many fields were new.
/// Counts one change per pair given, new, updated or the same, as Redis counts HSET.
pub fn op_hset(db: &mut Db, key: &[u8], pairs: &[Bytes], limits: &Limits, now_ms: u64) -> Result<usize, Frame> {
    debug_assert!(pairs.len().is_multiple_of(2), "whole pairs");
    let added = write_hash(db, key, limits, now_ms, |hash| {
        hash.convert_for(pairs.iter().map(|item| item.as_ref()), limits);
        Ok(pairs.chunks_exact(2).filter(|pair| hash.set(&pair[0], &pair[1], limits)).count())
    })?;
    db.add_changes((pairs.len() / 2) as u64);
    Ok(added)
}

/// HSET and HMSET: everything but the reply.
fn set_pairs(ctx: &mut Ctx, args: &[Bytes], name: &str) -> Result<usize, Frame> {
    if !args.len().is_multiple_of(2) {
        return Err(errors::wrong_arity(name));
    }
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let added = op_hset(ctx.db(), &args[1], &args[2..], &limits, now);
    if added.is_ok() {
        ctx.notify(notify::HASH, "hset", &args[1]);
    }
    added
}

/// HSET key field value [field value ...]
fn hset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ctx::reply(set_pairs(ctx, args, "hset"), args::int)
}

/// HMSET key field value [field value ...]
fn hmset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ctx::reply(set_pairs(ctx, args, "hmset"), |_| args::ok())
}

/// Sets `field` only when it is absent; returns whether it did.
pub fn op_hsetnx(db: &mut Db, key: &[u8], field: &[u8], value: &[u8], limits: &Limits, now_ms: u64) -> Result<bool, Frame> {
    let added = write_hash(db, key, limits, now_ms, |hash| Ok(!hash.contains(field) && hash.set(field, value, limits)))?;
    db.add_changes(added as u64);
    Ok(added)
}

/// HSETNX key field value
fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let added = op_hsetnx(ctx.db(), &args[1], &args[2], &args[3], &limits, now);
    if matches!(added, Ok(true)) {
        ctx.notify(notify::HASH, "hset", &args[1]);
    }
    ctx::reply(added, args::int)
}

// ---- Reads of fields ---------------------------------------------------------------------

pub fn op_hget(db: &mut Db, key: &[u8], field: &[u8], now_ms: u64) -> Result<Option<Bytes>, Frame> {
    read_hash(db, key, now_ms, None, |hash| hash.get(field).map(bytes))
}

fn bulk_or_null(value: Option<Bytes>) -> Frame {
    value.map_or(Frame::Null, Frame::Bulk)
}

/// HGET key field
fn hget(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_hget(ctx.db(), &args[1], &args[2], now), bulk_or_null)
}

pub fn op_hmget(db: &mut Db, key: &[u8], fields: &[Bytes], now_ms: u64) -> Result<Vec<Option<Bytes>>, Frame> {
    read_hash(db, key, now_ms, vec![None; fields.len()], |hash| fields.iter().map(|field| hash.get(field).map(bytes)).collect())
}

/// HMGET key field [field ...]
fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_hmget(ctx.db(), &args[1], &args[2..], now), |values| Frame::Array(values.into_iter().map(bulk_or_null).collect()))
}

pub fn op_hlen(db: &mut Db, key: &[u8], now_ms: u64) -> Result<usize, Frame> {
    read_hash(db, key, now_ms, 0, Hash::len)
}

/// HLEN key
fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_hlen(ctx.db(), &args[1], now), args::int)
}

/// The length of `field`'s value, 0 when absent.
pub fn op_hstrlen(db: &mut Db, key: &[u8], field: &[u8], now_ms: u64) -> Result<usize, Frame> {
    read_hash(db, key, now_ms, 0, |hash| hash.get(field).map_or(0, <[u8]>::len))
}

/// HSTRLEN key field
fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_hstrlen(ctx.db(), &args[1], &args[2], now), args::int)
}

pub fn op_hexists(db: &mut Db, key: &[u8], field: &[u8], now_ms: u64) -> Result<bool, Frame> {
    read_hash(db, key, now_ms, false, |hash| hash.contains(field))
}

/// HEXISTS key field
fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_hexists(ctx.db(), &args[1], &args[2], now), args::int)
}

// ---- HDEL --------------------------------------------------------------------------------

/// Removes `fields`; returns how many were there. Deletes the key when it empties.
pub fn op_hdel(db: &mut Db, key: &[u8], fields: &[Bytes], now_ms: u64) -> Result<usize, Frame> {
    let Some(hash) = hash_for_write(db, key, now_ms)? else {
        return Ok(0);
    };
    let removed = fields.iter().filter(|field| hash.remove(field)).count();
    if hash.is_empty() {
        db.remove(key);
    } else {
        fields_written(db, key);
    }
    db.add_changes(removed as u64);
    Ok(removed)
}

/// HDEL key field [field ...]
fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let removed = op_hdel(ctx.db(), &args[1], &args[2..], now);
    if matches!(removed, Ok(n) if n > 0) {
        ctx.notify(notify::HASH, "hdel", &args[1]);
        ctx.notify_del_if_gone(&args[1]);
    }
    ctx::reply(removed, args::int)
}

// ---- HKEYS, HVALS, HGETALL ---------------------------------------------------------------

/// Which parts of each pair a whole-hash read returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Parts {
    Fields,
    Values,
    Both,
}

/// Every field, value, or both (flat: field, value, ...), in the hash's order.
pub fn op_hgetall(db: &mut Db, key: &[u8], parts: Parts, now_ms: u64) -> Result<Vec<Bytes>, Frame> {
    read_hash(db, key, now_ms, Vec::new(), |hash| {
        let per_pair = if parts == Parts::Both { 2 } else { 1 };
        let mut out = Vec::with_capacity(hash.len() * per_pair);
        for (field, value) in hash.iter() {
            if parts != Parts::Values {
                out.push(bytes(field));
            }
            if parts != Parts::Fields {
                out.push(bytes(value));
            }
        }
        out
    })
}

fn bulks(items: Vec<Bytes>) -> Frame {
    Frame::Array(items.into_iter().map(Frame::Bulk).collect())
}

/// HKEYS, HVALS and HGETALL, encoded straight from the hash: no copy and no frame per field
/// or value. HGETALL is a map in RESP3 (an empty one for a missing key), a flat array in RESP2.
fn whole_hash_reply(ctx: &mut Ctx, key: &[u8], parts: Parts) -> Frame {
    let (now, proto) = (ctx.now_ms, ctx.proto);
    let aggregate = if parts == Parts::Both { AggregateKind::Map } else { AggregateKind::Array };
    let reply = read_hash(ctx.db(), key, now, Encoded::new(aggregate, proto, 0), |hash| {
        let mut reply = Encoded::new(aggregate, proto, if parts == Parts::Both { 2 * hash.len() } else { hash.len() });
        for (field, value) in hash.iter() {
            match parts {
                Parts::Fields => reply.push_bulk(field),
                Parts::Values => reply.push_bulk(value),
                Parts::Both => reply.push_bulk_pair(field, value),
            }
        }
        reply
    });
    ctx::reply(reply, Frame::Encoded)
}

/// HKEYS key
fn hkeys(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    whole_hash_reply(ctx, &args[1], Parts::Fields)
}

/// HVALS key
fn hvals(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    whole_hash_reply(ctx, &args[1], Parts::Values)
}

/// HGETALL key
fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    whole_hash_reply(ctx, &args[1], Parts::Both)
}

// ---- HINCRBY, HINCRBYFLOAT ---------------------------------------------------------------

/// Adds `increment` to the integer in `field` (0 when absent); returns the new value.
pub fn op_hincrby(db: &mut Db, key: &[u8], field: &[u8], increment: i64, limits: &Limits, now_ms: u64) -> Result<i64, Frame> {
    let sum = write_hash(db, key, limits, now_ms, |hash| {
        let current = match hash.get(field) {
            None => 0,
            Some(value) => shoal_store::value::parse_canonical_i64(value).ok_or_else(|| errors::error(HASH_VALUE_NOT_INTEGER))?,
        };
        let sum = current.checked_add(increment).ok_or_else(|| errors::error(errors::OVERFLOW))?;
        hash.set_keeping_ttl(field, itoa::Buffer::new().format(sum).as_bytes(), limits);
        Ok(sum)
    })?;
    db.add_changes(1);
    Ok(sum)
}

/// HINCRBY key field increment
fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let increment = match args::parse_i64(&args[3]) {
        Ok(increment) => increment,
        Err(e) => return e,
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let sum = op_hincrby(ctx.db(), &args[1], &args[2], increment, &limits, now);
    if sum.is_ok() {
        ctx.notify(notify::HASH, "hincrby", &args[1]);
    }
    ctx::reply(sum, args::int)
}

/// Adds `increment` (finite) to the number in `field` (0 when absent) in `long double`, as
/// Redis does; stores and returns the sum as Redis prints it.
pub fn op_hincrbyfloat(db: &mut Db, key: &[u8], field: &[u8], increment: LongDouble, limits: &Limits, now_ms: u64) -> Result<Bytes, Frame> {
    let text = write_hash(db, key, limits, now_ms, |hash| {
        let current = match hash.get(field) {
            None => LongDouble::ZERO,
            Some(value) => long_double::parse(value).ok_or_else(|| errors::error(HASH_VALUE_NOT_FLOAT))?,
        };
        let sum = long_double::add(current, increment);
        if !sum.is_finite() {
            return Err(errors::error(errors::INCREMENT_NAN_OR_INFINITY));
        }
        let text = long_double::format_human(sum);
        hash.set_keeping_ttl(field, text.as_bytes(), limits);
        Ok(Bytes::from(text))
    })?;
    db.add_changes(1);
    Ok(text)
}

/// HINCRBYFLOAT key field increment
fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let increment = match long_double::parse(&args[3]) {
        None => return errors::error(errors::NOT_FLOAT),
        Some(increment) if !increment.is_finite() => return errors::error(VALUE_NAN_OR_INFINITY),
        Some(increment) => increment,
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let sum = op_hincrbyfloat(ctx.db(), &args[1], &args[2], increment, &limits, now);
    if sum.is_ok() {
        ctx.notify(notify::HASH, "hincrbyfloat", &args[1]);
    }
    ctx::reply(sum, Frame::Bulk)
}

// ---- HRANDFIELD --------------------------------------------------------------------------

/// HRANDFIELD's count argument, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandCount {
    /// How many fields to return.
    pub count: u64,
    /// Whether they must be distinct (a positive count).
    pub distinct: bool,
    pub with_values: bool,
}

/// What HRANDFIELD found: None for a missing key; else the fields (with their values when
/// asked, flat) in reply order.
type RandPicks = Option<Vec<Bytes>>;

/// Picks random fields as HRANDFIELD does. `count` None: one field. `reply_bytes_max` bounds
/// the reply of a count that allows repeats (see the module comment).
pub fn op_hrandfield(ctx: &mut Ctx, key: &[u8], count: Option<RandCount>, reply_bytes_max: u64) -> Result<RandPicks, Frame> {
    let now = ctx.now_ms;
    let shard = &mut *ctx.shard;
    let rng = &mut shard.rng;
    let db = &mut shard.dbs[ctx.db_index];
    let result = read_hash(db, key, now, None, |hash| {
        let Some(RandCount { count, distinct, with_values }) = count else {
            return Some(Ok(hash.random_pair(rng).map(|(field, _)| bytes(field)).into_iter().collect()));
        };
        let mut picks = Vec::new();
        let push = |field: &[u8], value: &[u8]| {
            picks.push(bytes(field));
            if with_values {
                picks.push(bytes(value));
            }
        };
        if distinct && count > 1 {
            // Bounded by the hash's size.
            hash.sample_distinct(usize::try_from(count).unwrap_or(usize::MAX), rng, push);
        } else if count > 0 {
            if reply_too_large(hash, count, with_values, reply_bytes_max, rng) {
                return Some(Err(errors::error(REPLY_TOO_LARGE)));
            }
            hash.sample_with_repeats(count as usize, rng, push);
        }
        Some(Ok(picks))
    })?;
    result.transpose()
}

/// Whether `count` random picks from `hash` would make a reply of more than `bytes_max`
/// bytes, estimated from a sample of its pairs before anything is built.
fn reply_too_large(hash: &Hash, count: u64, with_values: bool, bytes_max: u64, rng: &mut impl rand::Rng) -> bool {
    /// What a reply element costs besides its bytes: the frame and its buffer's header.
    const ELEMENT_OVERHEAD: u64 = 64;
    const SAMPLE: u64 = 16;
    if count <= 1024 {
        return false;
    }
    let mut sampled_bytes = 0u64;
    hash.sample_with_repeats(SAMPLE as usize, rng, |field, value| {
        sampled_bytes += ELEMENT_OVERHEAD + field.len() as u64;
        if with_values {
            sampled_bytes += ELEMENT_OVERHEAD + value.len() as u64;
        }
    });
    count.saturating_mul(sampled_bytes / SAMPLE) > bytes_max
}

/// Parses HRANDFIELD's arguments after the key, in Redis's order: the count (an integer not
/// below -LONG_MAX), then the syntax, then WITHVALUES's narrower range.
fn parse_hrandfield(args: &[Bytes]) -> Result<Option<RandCount>, Frame> {
    let Some(count) = args.get(2) else {
        return Ok(None);
    };
    let count = args::parse_i64(count)?;
    if count == i64::MIN {
        return Err(errors::error(COUNT_OUT_OF_RANGE));
    }
    let with_values = match &args[3..] {
        [] => false,
        [option] if is(option, "withvalues") => true,
        _ => return Err(errors::syntax()),
    };
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(errors::error(VALUE_OUT_OF_RANGE));
    }
    Ok(Some(RandCount { count: count.unsigned_abs(), distinct: count >= 0, with_values }))
}

/// HRANDFIELD key [count [WITHVALUES]]
///
/// Without a count: one field, or nil. With one: an array, empty for a missing key; in RESP3
/// WITHVALUES gives [field, value] pairs, in RESP2 a flat array.
fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let count = match parse_hrandfield(args) {
        Ok(count) => count,
        Err(e) => return e,
    };
    let (proto, bytes_max) = (ctx.proto, ctx.settings.proto_max_bulk_len);
    let picks = match op_hrandfield(ctx, &args[1], count, bytes_max) {
        Ok(picks) => picks,
        Err(e) => return e,
    };
    match (count, picks) {
        (None, picks) => picks.and_then(|mut p| p.pop()).map_or(Frame::Null, Frame::Bulk),
        (Some(_), None) => Frame::Array(Vec::new()),
        (Some(count), Some(picks)) if count.with_values && proto == Protocol::Resp3 => {
            let mut picks = picks.into_iter();
            Frame::Array(std::iter::from_fn(|| Some(Frame::Array(vec![Frame::Bulk(picks.next()?), Frame::Bulk(picks.next()?)]))).collect())
        }
        (Some(_), Some(picks)) => bulks(picks),
    }
}

// ---- HSCAN -------------------------------------------------------------------------------

/// HSCAN's options: MATCH, COUNT and NOVALUES.
type HscanOptions = args::ScanOptions;

fn parse_hscan_options(options: &[Bytes]) -> Result<HscanOptions, Frame> {
    args::parse_scan_options(options, args::ScanExtras { type_name: false, no_values: true })
}

/// One HSCAN call from `cursor` on the hash at `key`. As in Redis, a missing key replies an
/// empty scan and another type WRONGTYPE before the options are looked at, so `options` comes
/// unchecked. A listpack returns everything and cursor 0; a hashtable walks buckets until
/// COUNT items (fields, and values unless NOVALUES, before MATCH filters them) were seen or
/// ten times COUNT buckets were walked, as Redis does. Returns (next cursor, items).
pub fn op_hscan(db: &mut Db, key: &[u8], cursor: u64, options: Result<HscanOptions, Frame>, now_ms: u64) -> Result<(u64, Vec<Bytes>), Frame> {
    read_hash(db, key, now_ms, Ok((0, Vec::new())), |hash| Ok(scan_hash(hash, cursor, &options?)))?
}

fn scan_hash(hash: &Hash, cursor: u64, options: &HscanOptions) -> (u64, Vec<Bytes>) {
    let per_pair = if options.no_values { 1 } else { 2 };
    let mut items = Vec::new();
    let mut sampled = 0usize;
    let mut cursor = cursor;
    let mut steps_left = options.count.saturating_mul(10);
    loop {
        cursor = hash.scan_step(cursor, |field, value| {
            sampled += per_pair;
            if options.pattern.as_ref().is_none_or(|pattern| shoal_glob::matches(pattern, field)) {
                items.push(bytes(field));
                if !options.no_values {
                    items.push(bytes(value));
                }
            }
        });
        if cursor == 0 || steps_left == 0 || sampled >= options.count {
            break;
        }
        steps_left -= 1;
    }
    (cursor, items)
}

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]
fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match args::parse_cursor(&args[2]) {
        Ok(cursor) => cursor,
        Err(e) => return e,
    };
    let options = parse_hscan_options(&args[3..]);
    let now = ctx.now_ms;
    ctx::reply(op_hscan(ctx.db(), &args[1], cursor, options, now), |(next, items)| {
        Frame::Array(vec![args::bulk_str(itoa::Buffer::new().format(next)), bulks(items)])
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::check;
    use crate::testing::replies::*;
    use shoal_resp::Frame;

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    fn null() -> Frame {
        Frame::Null
    }

    #[test]
    fn hset_counts_new_fields_and_updates_in_place() {
        check(
            &[
                &["HSET", "h", "a", "1", "b", "2"],
                &["HSET", "h", "a", "3", "c", "4"],
                &["HGETALL", "h"],
                &["HLEN", "h"],
                &["HMSET", "h", "d", "5"],
                &["HKEYS", "h"],
                &["HVALS", "h"],
            ],
            &[
                int(2),
                int(1),
                Frame::Map(vec![(bulk("a"), bulk("3")), (bulk("b"), bulk("2")), (bulk("c"), bulk("4"))]),
                int(3),
                ok(),
                strings(&["a", "b", "c", "d"]),
                strings(&["3", "2", "4", "5"]),
            ],
        );
    }

    #[test]
    fn hset_with_an_odd_number_of_arguments_is_an_arity_error() {
        check(
            &[&["HSET", "h", "a", "1", "b"], &["HMSET", "h", "a", "1", "b"], &["HSET", "h", "a"], &["EXISTS", "h"]],
            &[
                err("ERR wrong number of arguments for 'hset' command"),
                err("ERR wrong number of arguments for 'hmset' command"),
                err("ERR wrong number of arguments for 'hset' command"),
                int(0),
            ],
        );
    }

    #[test]
    fn reads_of_a_missing_hash_are_empty() {
        check(
            &[
                &["HGET", "h", "a"],
                &["HMGET", "h", "a", "b"],
                &["HLEN", "h"],
                &["HSTRLEN", "h", "a"],
                &["HEXISTS", "h", "a"],
                &["HKEYS", "h"],
                &["HVALS", "h"],
                &["HGETALL", "h"],
                &["HDEL", "h", "a"],
                &["HRANDFIELD", "h"],
                &["HRANDFIELD", "h", "3"],
                &["HRANDFIELD", "h", "-3", "WITHVALUES"],
                &["HSCAN", "h", "0", "COUNT", "0"],
            ],
            &[
                null(),
                arr(vec![null(), null()]),
                int(0),
                int(0),
                int(0),
                arr(vec![]),
                arr(vec![]),
                Frame::Map(vec![]),
                int(0),
                null(),
                arr(vec![]),
                arr(vec![]),
                arr(vec![bulk("0"), arr(vec![])]),
            ],
        );
    }

    #[test]
    fn every_command_on_a_string_is_wrongtype() {
        let commands: &[&[&str]] = &[
            &["HSET", "s", "a", "1"],
            &["HSETNX", "s", "a", "1"],
            &["HMSET", "s", "a", "1"],
            &["HGET", "s", "a"],
            &["HMGET", "s", "a"],
            &["HDEL", "s", "a"],
            &["HLEN", "s"],
            &["HSTRLEN", "s", "a"],
            &["HEXISTS", "s", "a"],
            &["HKEYS", "s"],
            &["HVALS", "s"],
            &["HGETALL", "s"],
            &["HINCRBY", "s", "a", "1"],
            &["HINCRBYFLOAT", "s", "a", "1"],
            &["HRANDFIELD", "s"],
            &["HRANDFIELD", "s", "1"],
            &["HSCAN", "s", "0", "COUNT", "0"],
        ];
        let mut all: Vec<&[&str]> = vec![&["SET", "s", "x"]];
        all.extend_from_slice(commands);
        let mut expected = vec![ok()];
        expected.extend(commands.iter().map(|_| err(WRONGTYPE)));
        check(&all, &expected);
    }

    #[test]
    fn hsetnx_sets_only_a_missing_field() {
        check(
            &[
                &["HSETNX", "h", "a", "1"],
                &["HSETNX", "h", "a", "2"],
                &["HGET", "h", "a"],
                &["HSTRLEN", "h", "a"],
                &["HEXISTS", "h", "a"],
                &["HEXISTS", "h", "b"],
            ],
            &[int(1), int(0), bulk("1"), int(1), int(1), int(0)],
        );
    }

    #[test]
    fn hdel_deletes_the_key_with_its_last_field() {
        check(
            &[&["HSET", "h", "a", "1", "b", "2"], &["HDEL", "h", "a", "a", "x"], &["EXISTS", "h"], &["HDEL", "h", "b"], &["EXISTS", "h"], &["TYPE", "h"]],
            &[int(2), int(1), int(1), int(1), int(0), simple("none")],
        );
    }

    #[test]
    fn hincrby_checks_the_increment_then_the_type_then_the_value() {
        check(
            &[
                &["HINCRBY", "h", "n", "5"],
                &["HINCRBY", "h", "n", "-7"],
                &["HINCRBY", "h", "n", "abc"],
                &["SET", "s", "x"],
                &["HINCRBY", "s", "n", "abc"],
                &["HSET", "h", "t", "1.5", "max", "9223372036854775807", "z", "01"],
                &["HINCRBY", "h", "t", "1"],
                &["HINCRBY", "h", "z", "1"],
                &["HINCRBY", "h", "max", "1"],
                &["HINCRBY", "h", "max", "-1"],
                &["HINCRBY", "new", "f", "0"],
                &["HGETALL", "new"],
            ],
            &[
                int(5),
                int(-2),
                err("ERR value is not an integer or out of range"),
                ok(),
                err("ERR value is not an integer or out of range"),
                int(3),
                err("ERR hash value is not an integer"),
                err("ERR hash value is not an integer"),
                err("ERR increment or decrement would overflow"),
                int(9223372036854775806),
                int(0),
                Frame::Map(vec![(bulk("f"), bulk("0"))]),
            ],
        );
    }

    #[test]
    fn hincrbyfloat_uses_long_double_and_refuses_infinities() {
        check(
            &[
                &["HINCRBYFLOAT", "h", "f", "10.5"],
                &["HINCRBYFLOAT", "h", "f", "0.1"],
                &["HINCRBYFLOAT", "h", "f", "inf"],
                &["HINCRBYFLOAT", "h", "f", "nan"],
                &["HINCRBYFLOAT", "h", "f", "abc"],
                &["SET", "s", "x"],
                &["HINCRBYFLOAT", "s", "f", "inf"],
                &["HINCRBYFLOAT", "s", "f", "1"],
                &["HSET", "h", "i", "inf", "w", "abc"],
                &["HINCRBYFLOAT", "h", "i", "1"],
                &["HINCRBYFLOAT", "h", "w", "1"],
                &["HINCRBYFLOAT", "h", "f", "-10.6"],
                &["HGET", "h", "f"],
            ],
            &[
                bulk("10.5"),
                bulk("10.6"),
                err("ERR value is NaN or Infinity"),
                err("ERR value is not a valid float"),
                err("ERR value is not a valid float"),
                ok(),
                err("ERR value is NaN or Infinity"),
                err(WRONGTYPE),
                int(2),
                err("ERR increment would produce NaN or Infinity"),
                err("ERR hash value is not a float"),
                bulk("0"),
                bulk("0"),
            ],
        );
    }

    #[test]
    fn hrandfield_checks_count_then_syntax_then_range() {
        check(
            &[
                &["SET", "s", "x"],
                &["HRANDFIELD", "s", "abc"],
                &["HRANDFIELD", "s", "1", "foo"],
                &["HRANDFIELD", "h", "1", "withvalues", "x"],
                &["HRANDFIELD", "h", "-9223372036854775808"],
                &["HRANDFIELD", "h", "-9223372036854775807", "WITHVALUES"],
                &["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"],
                &["HRANDFIELD", "h", "4611686018427387903", "WITHVALUES"],
                &["HRANDFIELD", "h", "-9223372036854775807"],
            ],
            &[
                ok(),
                err("ERR value is not an integer or out of range"),
                err("ERR syntax error"),
                err("ERR syntax error"),
                err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
                err("ERR value is out of range"),
                err("ERR value is out of range"),
                arr(vec![]),
                arr(vec![]),
            ],
        );
    }

    #[test]
    fn hrandfield_with_a_count_at_least_the_size_returns_every_field_in_order() {
        check(
            &[
                &["HSET", "h", "a", "1", "b", "2"],
                &["HRANDFIELD", "h", "2"],
                &["HRANDFIELD", "h", "100", "WITHVALUES"],
                &["HRANDFIELD", "h", "0"],
                &["HSET", "one", "f", "v"],
                &["HRANDFIELD", "one"],
                &["HRANDFIELD", "one", "-3", "WITHVALUES"],
            ],
            &[int(2), strings(&["a", "b"]), strings(&["a", "1", "b", "2"]), arr(vec![]), int(1), bulk("f"), strings(&["f", "v", "f", "v", "f", "v"])],
        );
    }

    #[test]
    fn hrandfield_refuses_a_reply_larger_than_proto_max_bulk_len() {
        check(
            &[&["HSET", "h", "a", "1"], &["HRANDFIELD", "h", "-9223372036854775807"], &["HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"]],
            &[int(1), err(super::REPLY_TOO_LARGE), err(super::REPLY_TOO_LARGE)],
        );
    }

    #[test]
    fn hscan_of_a_listpack_returns_everything_at_once() {
        check(
            &[
                &["HSET", "h", "a", "1", "b", "2", "ab", "3"],
                &["HSCAN", "h", "0"],
                &["HSCAN", "h", "17", "COUNT", "1", "MATCH", "a*"],
                &["HSCAN", "h", "0", "NOVALUES", "MATCH", "*b"],
            ],
            &[
                int(3),
                arr(vec![bulk("0"), strings(&["a", "1", "b", "2", "ab", "3"])]),
                arr(vec![bulk("0"), strings(&["a", "1", "ab", "3"])]),
                arr(vec![bulk("0"), strings(&["b", "ab"])]),
            ],
        );
    }

    #[test]
    fn hscan_checks_the_cursor_then_the_key_then_the_options() {
        check(
            &[
                &["HSCAN", "h", "abc"],
                &["HSCAN", "h", "0", "COUNT", "0"],
                &["HSET", "h", "a", "1"],
                &["HSCAN", "h", "0", "COUNT", "0"],
                &["HSCAN", "h", "0", "COUNT", "abc"],
                &["HSCAN", "h", "0", "COUNT"],
                &["HSCAN", "h", "0", "TYPE", "string"],
                &["HSCAN", "h", "0", "MATCH", "x", "FOO"],
            ],
            &[
                err("ERR invalid cursor"),
                arr(vec![bulk("0"), arr(vec![])]),
                int(1),
                err("ERR syntax error"),
                err("ERR value is not an integer or out of range"),
                err("ERR syntax error"),
                err("ERR syntax error"),
                err("ERR syntax error"),
            ],
        );
    }

    #[test]
    fn a_long_value_or_many_fields_convert_to_a_hashtable() {
        let long = "x".repeat(65);
        check(
            &[
                &["HSET", "h", "a", "1"],
                &["OBJECT", "ENCODING", "h"],
                &["HSETNX", "h", "a", &long],
                &["OBJECT", "ENCODING", "h"],
                &["HSET", "h", "a", &long],
                &["OBJECT", "ENCODING", "h"],
                &["HINCRBY", "i", &long, "1"],
                &["OBJECT", "ENCODING", "i"],
            ],
            &[int(1), bulk("listpack"), int(0), bulk("listpack"), int(0), bulk("hashtable"), int(1), bulk("hashtable")],
        );
    }

    #[test]
    fn a_full_hscan_of_a_hashtable_returns_every_field_once() {
        let harness = crate::testing::Harness::default();
        let mut expected = std::collections::BTreeSet::new();
        for i in 0..600 {
            let field = format!("f{i}");
            harness.run(&["HSET", "h", &field, "v"]);
            expected.insert(field);
        }
        assert_eq!(harness.run(&["OBJECT", "ENCODING", "h"]), bulk("hashtable"));
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let Frame::Array(reply) = harness.run(&["HSCAN", "h", &cursor, "COUNT", "20", "NOVALUES"]) else { panic!("an array") };
            let (Frame::Bulk(next), Frame::Array(items)) = (&reply[0], &reply[1]) else { panic!("cursor and items") };
            for item in items {
                let Frame::Bulk(field) = item else { panic!("bulk") };
                assert!(seen.insert(String::from_utf8(field.to_vec()).unwrap()), "once");
            }
            calls += 1;
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen, expected);
        assert!(calls > 10, "COUNT bounds each call ({calls} calls)");
    }
}

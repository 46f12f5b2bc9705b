//! The stream family (Redis's `t_stream.c`): XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM,
//! XSETID and XREAD without BLOCK; the type is [`shoal_store::types::stream`].
//!
//! Replies and errors follow Redis 7 byte for byte, with one deliberate difference:
//! approximate trimming (`MAXLEN ~`, `MINID ~`) removes a multiple of 100 entries (Redis's
//! default node size; see [`Stream::trim`]) rather than Redis's whole nodes, so the
//! append-only log can record XADD and XTRIM as they were sent. Redis documents the count as
//! up to the server; at least the requested entries always stay.
//!
//! XREAD is a blocking command ([`BlockingOps`]): without BLOCK its timeout is zero, so it
//! answers at once; with BLOCK and nothing to read, `$` and `+` are resolved to IDs while its
//! keys are still locked, and the client waits on every stream it names; the first XADD
//! past its ID serves it that one stream, as Redis does.
//!
//! Not yet: consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM) and
//! XINFO.

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::{Frame, Protocol};
use shoal_store::types::stream::{Entry, Fields, IdError, RefPolicy, Stream, StreamId, Trim};
use shoal_store::{Db, Value};

mod groups;
mod info;

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, BlockingOps, CommandSpec, Handler, KeySpec, Served};

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const CLAIM_MIN_IDLE: &str = "ERR Invalid min-idle-time argument for XREADGROUP";
const ID_TOO_SMALL: &str = "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const EXHAUSTED: &str = "ERR The stream has exhausted the last possible ID, unable to add more items";
const MAXLEN_NEGATIVE: &str = "ERR The MAXLEN argument must be >= 0.";
const LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
const BOTH_STRATEGIES: &str = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
const LIMIT_WITHOUT_STRATEGY: &str = "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
const LIMIT_WITHOUT_APPROX: &str = "ERR syntax error, LIMIT cannot be used without the special ~ option";
const XTRIM_WITHOUT_STRATEGY: &str = "ERR syntax error, XTRIM must be called with a trimming strategy";

/// What approximate trimming removes a multiple of: Redis's default node size. Fixed rather
/// than `stream-node-max-entries`, so that a command replayed from the append-only log
/// removes what it removed when it ran, whatever the configuration is at the replay.
const APPROX_GRANULE: u64 = 100;
/// The most entries an approximate trim without LIMIT removes (Redis: 100 nodes' worth).
const APPROX_LIMIT: u64 = 100 * APPROX_GRANULE;

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@stream"], group: "stream", since: "5.0.0", ..CommandSpec::DEFAULT };

pub use groups::{parse_xclaim, COMMANDS as GROUP_COMMANDS};
pub use info::COMMANDS as INFO_COMMANDS;

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "xadd",
        arity: -5,
        flags: WRITE | DENYOOM | FAST,
        summary: "Appends a new entry to a stream",
        complexity: "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
        handler: Handler::Keys { local: xadd, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xlen",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Return the number of entries in a stream",
        handler: Handler::Keys { local: xlen, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xrange",
        arity: -4,
        flags: READONLY,
        summary: "Return a range of elements in a stream, with IDs matching the specified IDs interval",
        complexity: "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        handler: Handler::Keys { local: xrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xrevrange",
        arity: -4,
        flags: READONLY,
        summary: "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE",
        complexity: "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        handler: Handler::Keys { local: xrevrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xdel",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist.",
        complexity: "O(1) for each single item to delete in the stream, regardless of the stream size.",
        handler: Handler::Keys { local: xdel, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xdelex",
        arity: -5,
        flags: WRITE | FAST,
        summary: "Deletes one or multiple entries from the stream.",
        since: "8.2.0",
        complexity: "O(1) for each single item to delete in the stream, regardless of the stream size.",
        handler: Handler::Keys { local: xdelex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xtrim",
        arity: -4,
        flags: WRITE,
        summary: "Trims the stream to (approximately if '~' is passed) a certain size",
        complexity: "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
        handler: Handler::Keys { local: xtrim, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xsetid",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        summary: "An internal command for replicating stream values",
        handler: Handler::Keys { local: xsetid, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xread",
        arity: -4,
        flags: READONLY | BLOCKING,
        keys: KeySpec::NONE,
        acl: &["@stream", "@blocking"],
        summary: "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block.",
        complexity: "For each stream mentioned: O(N) with N being the number of elements being returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option is used, XADD will pay O(M) time in order to serve the M clients blocked on the stream getting new data.",
        handler: Handler::Blocking(&BlockingOps {
            parse: parse_xread_timeout,
            wait_keys: xread_keys,
            attempt: xread_attempt,
            serve: xread_serve,
            timed_out: || Frame::NullArray,
            resolve: Some(xread_resolve),
            at_once: Some(xread_at_once),
            recheck: None,
        }),
        movable_keys: Some(xread_keys),
        ..BASE
    },
];

// ---- IDs ------------------------------------------------------------------------------------

/// An unsigned 64-bit number as Redis's `string2ull` reads it.
fn parse_u64(text: &[u8]) -> Option<u64> {
    if let Ok(n) = args::parse_i64(text) {
        return u64::try_from(n).ok();
    }
    // strtoull: leading spaces, a sign, decimal digits to the end, no overflow; a minus
    // negates modulo 2^64.
    let text = std::str::from_utf8(text).ok()?.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(if negative { n.wrapping_neg() } else { n })
}

/// What an ID argument says (Redis's `streamGenericParseIDOrReply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParsedId {
    Id(StreamId),
    /// `ms-*` (XADD only).
    AnySeq(u64),
}

/// Parses an ID: `ms-seq`, or `ms` with `missing_seq`; `-` and `+` unless `strict`; `ms-*`
/// when `any_seq`.
fn parse_id(arg: &[u8], missing_seq: u64, strict: bool, any_seq: bool) -> Result<ParsedId, Frame> {
    let invalid = || errors::error(INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    if !strict && arg.len() == 1 && (arg[0] == b'-' || arg[0] == b'+') {
        return Ok(ParsedId::Id(if arg[0] == b'-' { StreamId::MIN } else { StreamId::MAX }));
    }
    match arg.iter().position(|&b| b == b'-') {
        None => parse_u64(arg).map(|ms| ParsedId::Id(StreamId::new(ms, missing_seq))).ok_or_else(invalid),
        Some(dash) => {
            let ms = parse_u64(&arg[..dash]).ok_or_else(invalid)?;
            let seq = &arg[dash + 1..];
            if any_seq && seq == b"*" {
                return Ok(ParsedId::AnySeq(ms));
            }
            parse_u64(seq).map(|seq| ParsedId::Id(StreamId::new(ms, seq))).ok_or_else(invalid)
        }
    }
}

/// A strict ID (no `-`, `+` or `*`), a missing sequence read as 0.
fn parse_strict_id(arg: &[u8]) -> Result<StreamId, Frame> {
    match parse_id(arg, 0, true, false)? {
        ParsedId::Id(id) => Ok(id),
        ParsedId::AnySeq(_) => unreachable!("not asked for"),
    }
}

/// An interval bound of XRANGE: `(` makes it exclusive (then strict).
fn parse_interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Frame> {
    let (arg, exclusive, strict) = if arg.len() > 1 && arg[0] == b'(' { (&arg[1..], true, true) } else { (arg, false, false) };
    match parse_id(arg, missing_seq, strict, false)? {
        ParsedId::Id(id) => Ok((id, exclusive)),
        ParsedId::AnySeq(_) => unreachable!("not asked for"),
    }
}

fn id_frame(id: StreamId) -> Frame {
    Frame::Bulk(Bytes::from(id.to_string()))
}

/// One entry as Redis replies it: `[id, [field, value, ...]]`.
fn entry_frame(id: StreamId, fields: Entry<'_>) -> Frame {
    let mut pairs = Vec::with_capacity(fields.len() * 2);
    for (field, value) in fields.iter() {
        pairs.push(Frame::Bulk(Bytes::copy_from_slice(field)));
        pairs.push(Frame::Bulk(Bytes::copy_from_slice(value)));
    }
    Frame::Array(vec![id_frame(id), Frame::Array(pairs)])
}

// ---- Access ---------------------------------------------------------------------------------

fn read_stream<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a Stream>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Stream(stream) => Ok(Some(stream)),
            _ => Err(errors::wrong_type()),
        },
    }
}

fn write_stream<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut Stream>, Frame> {
    match db.lookup_write(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::Stream(stream) => Ok(Some(stream)),
            _ => Err(errors::wrong_type()),
        },
    }
}

// ---- XADD and XTRIM -------------------------------------------------------------------------

/// The options XADD and XTRIM share (Redis's `streamParseAddOrTrimArgsOrReply`).
#[derive(Debug, Default)]
struct AddOrTrim {
    trim: Option<Trim>,
    approx: bool,
    /// LIMIT (0: none); only with `~`.
    limit: u64,
    no_mkstream: bool,
    /// XADD's ID (None: `*`).
    id: Option<ParsedId>,
    /// Where the field/value pairs start (XADD).
    fields_at: usize,
    /// KEEPREF, DELREF or ACKED (Redis 8.2).
    policy: Option<RefPolicy>,
}

/// KEEPREF, DELREF or ACKED, if `arg` is one.
fn ref_policy(arg: &[u8]) -> Option<RefPolicy> {
    [("keepref", RefPolicy::KeepRef), ("delref", RefPolicy::DelRef), ("acked", RefPolicy::Acked)]
        .into_iter()
        .find_map(|(name, policy)| is(arg, name).then_some(policy))
}

fn parse_add_or_trim(args: &[Bytes], xadd: bool) -> Result<AddOrTrim, Frame> {
    let mut parsed = AddOrTrim::default();
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let arg = &args[i];
        if xadd && arg.as_ref() == b"*" {
            break;
        } else if (is(arg, "maxlen") || is(arg, "minid")) && more > 0 {
            if parsed.trim.is_some() {
                return Err(errors::error(BOTH_STRATEGIES));
            }
            parsed.approx = false;
            let next = &args[i + 1];
            if more >= 2 && (next.as_ref() == b"~" || next.as_ref() == b"=") {
                parsed.approx = next.as_ref() == b"~";
                i += 1;
            }
            let value = &args[i + 1];
            parsed.trim = Some(if is(arg, "maxlen") {
                let max = args::parse_i64(value)?;
                if max < 0 {
                    return Err(errors::error(MAXLEN_NEGATIVE));
                }
                Trim::MaxLen(max as u64)
            } else {
                Trim::MinId(parse_strict_id(value)?)
            });
            i += 1;
        } else if is(arg, "limit") && more > 0 {
            let limit = args::parse_i64(&args[i + 1])?;
            if limit < 0 {
                return Err(errors::error(LIMIT_NEGATIVE));
            }
            parsed.limit = limit as u64;
            limit_given = true;
            i += 1;
        } else if xadd && is(arg, "nomkstream") {
            parsed.no_mkstream = true;
        } else if let (Some(policy), None) = (ref_policy(arg), parsed.policy) {
            parsed.policy = Some(policy);
        } else if xadd {
            parsed.id = Some(parse_id(arg, 0, true, true)?);
            break;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    if parsed.limit != 0 && parsed.trim.is_none() {
        return Err(errors::error(LIMIT_WITHOUT_STRATEGY));
    }
    if !xadd && parsed.trim.is_none() {
        return Err(errors::error(XTRIM_WITHOUT_STRATEGY));
    }
    if limit_given {
        if !parsed.approx {
            return Err(errors::error(LIMIT_WITHOUT_APPROX));
        }
    } else if parsed.approx {
        parsed.limit = APPROX_LIMIT;
    }
    parsed.fields_at = i + 1;
    Ok(parsed)
}

/// Where XADD's ID argument is (None for a request XADD refuses): the log records the ID
/// that `*` or `ms-*` gave there.
pub fn xadd_id_position(args: &[Bytes]) -> Option<usize> {
    let parsed = parse_add_or_trim(args, true).ok()?;
    (parsed.fields_at > 2 && parsed.fields_at <= args.len()).then_some(parsed.fields_at - 1)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value
/// [field value ...]
fn xadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let limits = ctx.settings.limits;
    let parsed = match parse_add_or_trim(args, true) {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let pairs = &args[parsed.fields_at.min(args.len())..];
    if pairs.len() < 2 || pairs.len() % 2 == 1 {
        return errors::wrong_arity("xadd");
    }
    if parsed.id == Some(ParsedId::Id(StreamId::MIN)) {
        return errors::error(ID_ZERO);
    }
    let now = ctx.now_ms;
    let key = &args[1];
    let db = ctx.db();
    let stream = match write_stream(db, key, now) {
        Err(error) => return error,
        Ok(Some(stream)) => stream,
        Ok(None) if parsed.no_mkstream => return Frame::Null,
        Ok(None) => {
            db.set(key, Value::Stream(Box::default()), now);
            match write_stream(db, key, now) {
                Ok(Some(stream)) => stream,
                _ => unreachable!("just created"),
            }
        }
    };
    if stream.last_id == StreamId::MAX {
        return errors::error(EXHAUSTED);
    }
    let id = match parsed.id {
        None => stream.next_id(now),
        Some(ParsedId::AnySeq(ms)) => stream.next_id_in(ms),
        Some(ParsedId::Id(id)) => Ok(id),
    };
    let fields = Fields::new(pairs.chunks(2).map(|pair| (pair[0].as_ref(), pair[1].as_ref())));
    let id = match id.and_then(|id| stream.append(id, fields, limits.stream_nodes()).map(|()| id)) {
        Ok(id) => id,
        Err(IdError::TooSmall) => return errors::error(ID_TOO_SMALL),
        Err(IdError::Exhausted) => return errors::error(EXHAUSTED),
    };
    let policy = parsed.policy.unwrap_or_default();
    let trimmed = parsed.trim.map_or(0, |trim| stream.trim_with(trim, parsed.approx, APPROX_GRANULE, parsed.limit, policy));
    db.add_changes(1);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    id_frame(id)
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
fn xtrim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let key = &args[1];
    // The options first, then the key (a missing one answers 0), as Redis.
    let parsed = match parse_add_or_trim(args, false) {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let db = ctx.db();
    let stream = match write_stream(db, key, now) {
        Err(error) => return error,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(stream)) => stream,
    };
    let trim = parsed.trim.expect("XTRIM's parse asks for a strategy");
    let trimmed = stream.trim_with(trim, parsed.approx, APPROX_GRANULE, parsed.limit, parsed.policy.unwrap_or_default());
    if trimmed > 0 {
        db.add_changes(trimmed);
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    args::int(trimmed as i64)
}

// ---- XLEN, XRANGE, XREVRANGE ----------------------------------------------------------------

/// XLEN key
fn xlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(read_stream(ctx.db(), &args[1], now).map(|s| s.map_or(0, Stream::len)), args::int)
}

/// XRANGE key start end [COUNT count]
fn xrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_command(ctx, args, false)
}

/// XREVRANGE key end start [COUNT count]
fn xrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_command(ctx, args, true)
}

fn range_command(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Frame {
    let (start_arg, end_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let parsed = (|| {
        let (mut start, exclusive) = parse_interval_id(start_arg, 0)?;
        if exclusive {
            start = start.next().ok_or_else(|| errors::error("ERR invalid start ID for the interval"))?;
        }
        let (mut end, exclusive) = parse_interval_id(end_arg, u64::MAX)?;
        if exclusive {
            end = end.prev().ok_or_else(|| errors::error("ERR invalid end ID for the interval"))?;
        }
        let mut count = None;
        let mut i = 4;
        while i < args.len() {
            if is(&args[i], "count") && i + 1 < args.len() {
                count = Some(args::parse_i64(&args[i + 1])?.max(0) as usize);
                i += 2;
            } else {
                return Err(errors::syntax());
            }
        }
        Ok((start, end, count))
    })();
    let (start, end, count) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let now = ctx.now_ms;
    let stream = match read_stream(ctx.db(), &args[1], now) {
        Err(error) => return error,
        Ok(None) => return Frame::Array(Vec::new()),
        Ok(Some(stream)) => stream,
    };
    if count == Some(0) {
        return Frame::NullArray;
    }
    Frame::Array(stream.range(start, end, rev).take(count.unwrap_or(usize::MAX)).map(|(id, fields)| entry_frame(id, fields)).collect())
}

// ---- XDEL, XSETID ---------------------------------------------------------------------------

/// XDEL key id [id ...]
fn xdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let key = &args[1];
    match write_stream(ctx.db(), key, now) {
        Err(error) => return error,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(_)) => {}
    }
    // Every ID is checked before any entry goes.
    let ids: Result<Vec<StreamId>, Frame> = args[2..].iter().map(|arg| parse_strict_id(arg)).collect();
    let ids = match ids {
        Ok(ids) => ids,
        Err(error) => return error,
    };
    let db = ctx.db();
    let Ok(Some(stream)) = write_stream(db, key, now) else { unreachable!("checked above") };
    let deleted = ids.into_iter().filter(|id| stream.delete(*id)).count();
    if deleted > 0 {
        db.add_changes(deleted as u64);
        ctx.notify(notify::STREAM, "xdel", key);
    }
    args::int(deleted as i64)
}

/// `[KEEPREF | DELREF | ACKED] IDS numids id [id ...]` from argument `from` (XDELEX,
/// XACKDEL): the policy and the IDs, each checked.
fn parse_ids_block(args: &[Bytes], from: usize) -> Result<(RefPolicy, Vec<StreamId>), Frame> {
    let (mut policy, mut ids) = (None, None);
    let mut i = from;
    while i < args.len() {
        let arg = &args[i];
        if is(arg, "ids") && i + 1 < args.len() && ids.is_none() {
            let count = match args::parse_i64(&args[i + 1]) {
                Ok(n) if n >= 1 => n as usize,
                _ => return Err(errors::error("ERR Number of IDs must be a positive integer")),
            };
            let start = i + 2;
            if count > args.len() - start {
                return Err(errors::error("ERR The `numids` parameter must match the number of arguments"));
            }
            ids = Some(start..start + count);
            i = start + count;
        } else if let (Some(named), None) = (ref_policy(arg), policy) {
            policy = Some(named);
            i += 1;
        } else {
            return Err(errors::syntax());
        }
    }
    let ids = ids.ok_or_else(errors::syntax)?;
    let ids: Result<Vec<StreamId>, Frame> = args[ids].iter().map(|arg| parse_strict_id(arg)).collect();
    Ok((policy.unwrap_or(RefPolicy::KeepRef), ids?))
}

/// Deletes entry `id` as `policy` says; returns the reply code (Redis 8.2): -1 when there
/// is no such entry, 1 when it went, 2 when a group still needs it (ACKED).
fn delete_with(stream: &mut Stream, id: StreamId, policy: RefPolicy) -> i64 {
    let exists = stream.get(id).is_some();
    match policy {
        RefPolicy::Acked if exists && stream.referenced(id) => return 2,
        RefPolicy::DelRef => stream.forget_everywhere(id),
        _ => {}
    }
    if exists {
        stream.delete(id);
        1
    } else {
        -1
    }
}

/// XDELEX key [KEEPREF | DELREF | ACKED] IDS numids id [id ...] (Redis 8.2)
fn xdelex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (policy, ids) = match parse_ids_block(args, 2) {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let now = ctx.now_ms;
    let key = &args[1];
    let db = ctx.db();
    let stream = match write_stream(db, key, now) {
        Err(error) => return error,
        Ok(None) => return Frame::Array(ids.iter().map(|_| Frame::Integer(-1)).collect()),
        Ok(Some(stream)) => stream,
    };
    let codes: Vec<i64> = ids.into_iter().map(|id| delete_with(stream, id, policy)).collect();
    let deleted = codes.iter().filter(|&&code| code == 1).count() as u64;
    if deleted > 0 {
        db.add_changes(deleted);
        ctx.notify(notify::STREAM, "xdel", key);
    }
    Frame::Array(codes.into_iter().map(Frame::Integer).collect())
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
fn xsetid(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let parsed = (|| {
        let id = parse_strict_id(&args[2])?;
        let (mut entries_added, mut max_deleted) = (None, None);
        let mut i = 3;
        while i < args.len() {
            let more = i + 1 < args.len();
            if is(&args[i], "entriesadded") && more {
                let n = args::parse_i64(&args[i + 1])?;
                if n < 0 {
                    return Err(errors::error("ERR entries_added must be positive"));
                }
                entries_added = Some(n as u64);
            } else if is(&args[i], "maxdeletedid") && more {
                let max = parse_strict_id(&args[i + 1])?;
                if id < max {
                    return Err(errors::error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
                }
                max_deleted = Some(max);
            } else {
                return Err(errors::syntax());
            }
            i += 2;
        }
        Ok((id, entries_added, max_deleted))
    })();
    let (id, entries_added, max_deleted) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let now = ctx.now_ms;
    let key = &args[1];
    let db = ctx.db();
    let stream = match write_stream(db, key, now) {
        Err(error) => return error,
        Ok(None) => return errors::error("ERR no such key"),
        Ok(Some(stream)) => stream,
    };
    if id < stream.max_deleted_id {
        return errors::error("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id");
    }
    if let Some((top, _)) = stream.last() {
        if id < top {
            return errors::error("ERR The ID specified in XSETID is smaller than the target stream top item");
        }
        if entries_added.is_some_and(|added| (stream.len() as u64) > added) {
            return errors::error("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    // A max deleted id of 0-0 leaves the current one, as in Redis.
    stream.set_id(id, entries_added, max_deleted.filter(|max| *max != StreamId::MIN));
    db.add_changes(1);
    ctx.notify(notify::STREAM, "xsetid", key);
    args::ok()
}

// ---- XREAD ----------------------------------------------------------------------------------

/// What XREAD or XREADGROUP asks: the count (0: all), BLOCK's milliseconds, the group and
/// consumer, NOACK, and where the keys are (the IDs follow them).
struct ReadRequest {
    count: usize,
    block_ms: Option<u64>,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    /// XREADGROUP's CLAIM min-idle-time (Redis 8.4), in milliseconds.
    claim_ms: Option<u64>,
    /// Index of the first key.
    keys_at: usize,
    streams: usize,
}

impl ReadRequest {
    fn ids_at(&self) -> usize {
        self.keys_at + self.streams
    }

    /// The timeout: zero without BLOCK (it never waits), none for BLOCK 0 (forever).
    fn timeout(&self) -> Option<std::time::Duration> {
        match self.block_ms {
            None => Some(std::time::Duration::ZERO),
            Some(0) => None,
            Some(ms) => Some(std::time::Duration::from_millis(ms)),
        }
    }
}

/// Parses XREAD's (`grouped` false) or XREADGROUP's options, as Redis's `xreadCommand`.
fn parse_read(args: &[Bytes], grouped: bool) -> Result<ReadRequest, Frame> {
    let mut request = ReadRequest { count: 0, block_ms: None, group: None, noack: false, claim_ms: None, keys_at: 0, streams: 0 };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let arg = &args[i];
        if is(arg, "block") && more > 0 {
            i += 1;
            let ms = args::parse_i64(&args[i]).map_err(|_| errors::error("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(errors::error("ERR timeout is negative"));
            }
            request.block_ms = Some(ms as u64);
        } else if is(arg, "count") && more > 0 {
            i += 1;
            request.count = args::parse_i64(&args[i])?.max(0) as usize;
        } else if is(arg, "streams") && more > 0 {
            let rest = args.len() - i - 1;
            if !rest.is_multiple_of(2) {
                // Redis 7.0's text, for XREADGROUP too.
                return Err(errors::error("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            request.keys_at = i + 1;
            request.streams = rest / 2;
            break;
        } else if is(arg, "group") && more >= 2 {
            if !grouped {
                return Err(errors::error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
            }
            request.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if is(arg, "claim") && more > 0 {
            if !grouped {
                return Err(errors::error("ERR The CLAIM option is only supported by XREADGROUP. You called XREAD instead."));
            }
            i += 1;
            match args::parse_i64(&args[i]) {
                Ok(ms) if ms >= 0 => request.claim_ms = Some(ms as u64),
                _ => return Err(errors::error(CLAIM_MIN_IDLE)),
            }
        } else if is(arg, "noack") {
            if !grouped {
                return Err(errors::error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
            }
            request.noack = true;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    if request.keys_at == 0 {
        return Err(errors::syntax());
    }
    if grouped && request.group.is_none() {
        return Err(errors::error("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(request)
}

/// An XREADGROUP's group, consumer, NOACK and CLAIM min-idle-time, for the log.
pub(crate) fn xreadgroup_options(args: &[Bytes]) -> Option<(Bytes, Bytes, bool, Option<u64>)> {
    let request = parse_read(args, true).ok()?;
    let (group, consumer) = request.group?;
    Some((group, consumer, request.noack, request.claim_ms))
}

fn parse_xread(args: &[Bytes]) -> Result<ReadRequest, Frame> {
    parse_read(args, false)
}

fn parse_xread_timeout(args: &[Bytes]) -> Result<Option<std::time::Duration>, Frame> {
    Ok(parse_xread(args)?.timeout())
}

/// XREAD's key positions: the first half of what follows STREAMS.
fn xread_keys(args: &[Bytes]) -> Vec<usize> {
    match parse_xread(args) {
        Ok(request) => (request.keys_at..request.keys_at + request.streams).collect(),
        Err(_) => Vec::new(),
    }
}

/// The ID to read after for one stream: `$` is the stream's last ID, `+` the one before
/// its last (so the last entry is read, Redis 7.4).
fn read_after(arg: &[u8], stream: Option<&Stream>) -> Result<StreamId, Frame> {
    match arg {
        b"$" => Ok(stream.map_or(StreamId::MIN, |s| s.last_id)),
        b"+" => Ok(stream.and_then(|s| s.last_id.prev()).unwrap_or(StreamId::MIN)),
        b">" => Err(errors::error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")),
        _ => parse_strict_id(arg),
    }
}

/// A stream's entries after `after`, at most `count` (0: all), if it has any after it
/// (Redis's `streamLastValidID` test).
fn entries_after(stream: &Stream, after: StreamId, count: usize) -> Option<Frame> {
    // The last entry, not the last ID: XSETID may have moved that past every entry.
    if stream.is_empty() || after >= stream.last_entry_id() {
        return None;
    }
    let start = after.next().unwrap_or(StreamId::MAX);
    let limit = if count == 0 { usize::MAX } else { count };
    Some(Frame::Array(stream.range(start, StreamId::MAX, false).take(limit).map(|(id, fields)| entry_frame(id, fields)).collect()))
}

/// Reads the streams at `keys` (each with its ID argument) on this core: per key, its
/// entries after the ID (None when it has none after it), or the error its type or ID gives.
fn op_read(ctx: &mut Ctx, keys: &[(Bytes, Bytes)], count: usize) -> Vec<Result<Option<Frame>, Frame>> {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter()
        .map(|(key, id)| {
            let stream = read_stream(db, key, now)?;
            let after = read_after(id, stream)?;
            Ok(stream.and_then(|s| entries_after(s, after, count)))
        })
        .collect()
}

/// The reply of XREAD: the served streams, an array of `[key, entries]` (a map in RESP3).
fn read_reply(proto: Protocol, served: Vec<(Bytes, Frame)>) -> Frame {
    match proto {
        Protocol::Resp3 => Frame::Map(served.into_iter().map(|(key, entries)| (Frame::Bulk(key), entries)).collect()),
        Protocol::Resp2 => Frame::Array(served.into_iter().map(|(key, entries)| Frame::Array(vec![Frame::Bulk(key), entries])).collect()),
    }
}

fn read_pairs(args: &[Bytes], request: &ReadRequest) -> Vec<(Bytes, Bytes)> {
    (0..request.streams).map(|i| (args[request.keys_at + i].clone(), args[request.ids_at() + i].clone())).collect()
}

/// Runs `op` per core on that core's (key, ID) pairs, in one hop; the results in the pairs'
/// order.
async fn per_stream<T: Send + 'static>(
    coordinator: &dyn Coordinator,
    pairs: &[(Bytes, Bytes)],
    op: impl Fn(&mut Ctx, &[(Bytes, Bytes)]) -> Vec<T> + Clone + Send + 'static,
) -> Vec<T> {
    let mut order = Vec::new();
    let mut ops: Vec<(usize, ctx::HopOp)> = Vec::new();
    for (shard, group) in ctx::group_by_shard(coordinator.shard_count(), pairs.iter().enumerate().map(|(i, (key, _))| (i, key.clone()))) {
        let keyed: Vec<(Bytes, Bytes)> = group.iter().map(|(i, key)| (key.clone(), pairs[*i].1.clone())).collect();
        order.push(group.into_iter().map(|(i, _)| i).collect::<Vec<_>>());
        let op = op.clone();
        ops.push((shard, Box::new(move |ctx: &mut Ctx| Box::new(op(ctx, &keyed)) as ctx::HopResult)));
    }
    let mut results: Vec<Option<T>> = (0..pairs.len()).map(|_| None).collect();
    for (indexes, result) in order.into_iter().zip(coordinator.hop(ops).await) {
        for (i, found) in indexes.into_iter().zip(ctx::take::<Vec<T>>(result)) {
            results[i] = Some(found);
        }
    }
    results.into_iter().map(|r| r.expect("every stream is read")).collect()
}

/// XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...], at once: the
/// reply when there is one (entries, or the first error in the keys' order, as Redis checks
/// them in order).
fn xread_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let request = match parse_xread(&args) {
            Ok(request) => request,
            Err(error) => return Some(error),
        };
        let pairs = read_pairs(&args, &request);
        let count = request.count;
        let results = per_stream(coordinator, &pairs, move |ctx, keyed| op_read(ctx, keyed, count)).await;
        read_outcome(coordinator.proto(), pairs, results)
    }
    .boxed_local()
}

/// XREAD that cannot wait, on the one core of its keys.
fn xread_at_once(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let request = match parse_xread(args) {
        Ok(request) => request,
        Err(error) => return error,
    };
    let pairs = read_pairs(args, &request);
    let results = op_read(ctx, &pairs, request.count);
    read_outcome(ctx.proto, pairs, results).unwrap_or(Frame::NullArray)
}

/// XREAD's reply from each stream's result, in the keys' order: the first error (Redis
/// checks the keys in order), the streams that had entries, or None when none had.
fn read_outcome(proto: Protocol, pairs: Vec<(Bytes, Bytes)>, results: Vec<Result<Option<Frame>, Frame>>) -> Option<Frame> {
    let mut served = Vec::new();
    for ((key, _), result) in pairs.into_iter().zip(results) {
        match result {
            Err(error) => return Some(error),
            Ok(Some(entries)) => served.push((key, entries)),
            Ok(None) => {}
        }
    }
    (!served.is_empty()).then(|| read_reply(proto, served))
}

/// Before XREAD waits: `$` and `+` become the IDs they mean now.
fn xread_resolve(coordinator: &dyn Coordinator, mut args: Vec<Bytes>) -> LocalBoxFuture<'_, Vec<Bytes>> {
    async move {
        let Ok(request) = parse_xread(&args) else { return args };
        let pairs = read_pairs(&args, &request);
        let resolved = per_stream(coordinator, &pairs, |ctx, keyed| {
            let now = ctx.now_ms;
            let db = ctx.db();
            keyed.iter().map(|(key, id)| read_stream(db, key, now).ok().and_then(|stream| read_after(id, stream).ok())).collect::<Vec<_>>()
        })
        .await;
        for (i, id) in resolved.into_iter().enumerate() {
            if let Some(id) = id {
                args[request.keys_at + request.streams + i] = Bytes::from(id.to_string());
            }
        }
        args
    }
    .boxed_local()
}

/// A blocked XREAD, on the core of `key` that a write may have made ready: served that one
/// stream's entries past its ID.
fn xread_serve(ctx: &mut Ctx, key: &[u8], args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    let Ok(request) = parse_xread(args) else { return Served::NotReady };
    let Some(i) = (0..request.streams).find(|&i| args[request.keys_at + i].as_ref() == key) else { return Served::NotReady };
    let Ok(after) = parse_strict_id(&args[request.keys_at + request.streams + i]) else { return Served::NotReady };
    let now = ctx.now_ms;
    let proto = ctx.proto;
    let Ok(Some(stream)) = read_stream(ctx.db(), key, now) else { return Served::NotReady };
    let Some(entries) = entries_after(stream, after, request.count) else { return Served::NotReady };
    if !claim() {
        return Served::Gone;
    }
    Served::Done(read_reply(proto, vec![(Bytes::copy_from_slice(key), entries)]))
}

//! Consumer groups (Redis 5): XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM and XAUTOCLAIM.
//!
//! A group remembers the last ID it delivered and, per entry delivered and not yet
//! acknowledged, who has it, since when and how many times (the PEL; each consumer lists its
//! own share, [`Group::assign`] and [`Group::forget`] keep the two in step). The order of
//! checks and the error texts follow Redis 7.0, which also creates a consumer only when it
//! is given something (XREADGROUP that serves, XCLAIM and XAUTOCLAIM that claim).
//!
//! XREADGROUP is a blocking write: `>` waits for entries past the group's last ID, any
//! other ID reads the consumer's own pending entries and never waits. With Redis 8.4's
//! `CLAIM min-idle-time`, `>` first claims the group's entries pending for at least that
//! long (the longest idle first; one gone from the stream is given with no fields and leaves
//! the PEL, as XAUTOCLAIM drops it), then reads new ones, COUNT for both together, each entry
//! with two more elements: its idle time and how many times it was delivered before (0 and 0
//! for a new one); a blocked one also wakes when a pending entry ages enough
//! ([`BlockingOps::recheck`]). What the log records is made replayable: XREADGROUP without
//! BLOCK (with CLAIM: an XCLAIM of what it claimed and an XREADGROUP of as many new entries),
//! XCLAIM and XAUTOCLAIM as an XCLAIM of the entries they claimed with no idle condition
//! (see `crate::propagate`).

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::types::stream::{Group, Stream, StreamId};
use shoal_store::Value;

use super::{
    entry_frame, id_frame, parse_id, parse_interval_id, parse_read, parse_strict_id, per_stream, read_reply, read_stream, write_stream, ParsedId, ReadRequest,
};
use crate::args::{self, is};
use crate::ctx::{notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, BlockingOps, CommandSpec, Handler, KeySpec, Served};

const SUBCOMMAND_KEY: KeySpec = KeySpec { first: 2, last: 2, step: 1 };
const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@stream"], group: "stream", since: "5.0.0", ..CommandSpec::DEFAULT };

const KEY_REQUIRED: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
const ENTRIES_READ_INVALID: &str = "ERR value for ENTRIESREAD must be positive or -1";
const DOLLAR_IN_XREADGROUP: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "xgroup",
        arity: -2,
        flags: 0,
        keys: KeySpec::NONE,
        acl: &[],
        summary: "A container for consumer groups commands",
        complexity: "Depends on subcommand.",
        handler: Handler::Keys { local: xgroup, multi: None },
        subcommands: XGROUP_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "xreadgroup",
        arity: -7,
        flags: WRITE | BLOCKING,
        keys: KeySpec::NONE,
        acl: &["@stream", "@blocking"],
        summary: "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.",
        complexity: "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.",
        handler: Handler::Blocking(&BlockingOps {
            parse: parse_xreadgroup_timeout,
            wait_keys: xreadgroup_wait_keys,
            attempt: xreadgroup_attempt,
            serve: xreadgroup_serve,
            timed_out: || Frame::NullArray,
            resolve: None,
            at_once: Some(xreadgroup_at_once),
            recheck: Some(xreadgroup_recheck),
        }),
        movable_keys: Some(xreadgroup_keys),
        ..BASE
    },
    CommandSpec {
        name: "xack",
        arity: -4,
        flags: WRITE | FAST,
        summary: "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL.",
        complexity: "O(1) for each message ID processed.",
        handler: Handler::Keys { local: xack, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xackdel",
        arity: -6,
        flags: WRITE | FAST,
        summary: "Acknowledges and conditionally deletes one or multiple entries for a stream consumer group.",
        since: "8.2.0",
        complexity: "O(1) for each entry ID processed.",
        handler: Handler::Keys { local: xackdel, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xpending",
        arity: -3,
        flags: READONLY,
        summary: "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.",
        complexity: "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.",
        since: "5.0.0",
        handler: Handler::Keys { local: xpending, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xclaim",
        arity: -6,
        flags: WRITE | FAST,
        summary: "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer.",
        complexity: "O(log N) with N being the number of messages in the PEL of the consumer group.",
        handler: Handler::Keys { local: xclaim, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xautoclaim",
        arity: -6,
        flags: WRITE | FAST,
        summary: "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.",
        complexity: "O(1) if COUNT is small.",
        since: "6.2.0",
        handler: Handler::Keys { local: xautoclaim, multi: None },
        ..BASE
    },
];

const XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "xgroup|create",
        arity: -5,
        flags: WRITE | DENYOOM,
        keys: SUBCOMMAND_KEY,
        summary: "Create a consumer group.",
        handler: Handler::Keys { local: xgroup_create, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xgroup|createconsumer",
        arity: 5,
        flags: WRITE | DENYOOM,
        keys: SUBCOMMAND_KEY,
        summary: "Create a consumer in a consumer group.",
        since: "6.2.0",
        handler: Handler::Keys { local: xgroup_createconsumer, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xgroup|delconsumer",
        arity: 5,
        flags: WRITE,
        keys: SUBCOMMAND_KEY,
        summary: "Delete a consumer from a consumer group.",
        handler: Handler::Keys { local: xgroup_delconsumer, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xgroup|destroy",
        arity: 4,
        flags: WRITE,
        keys: SUBCOMMAND_KEY,
        summary: "Destroy a consumer group.",
        complexity: "O(N) where N is the number of entries in the group's pending entries list (PEL).",
        handler: Handler::Keys { local: xgroup_destroy, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xgroup|help",
        arity: 2,
        flags: LOADING | STALE,
        keys: KeySpec::NONE,
        summary: "Show helpful text about the different subcommands",
        handler: Handler::Keys { local: xgroup_help, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xgroup|setid",
        arity: -5,
        flags: WRITE,
        keys: SUBCOMMAND_KEY,
        summary: "Set a consumer group to an arbitrary last delivered ID value.",
        handler: Handler::Keys { local: xgroup_setid, multi: None },
        ..BASE
    },
];

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// `NOGROUP No such key 'k' or consumer group 'g'` (XPENDING, XCLAIM, XAUTOCLAIM).
fn no_group(key: &[u8], group: &[u8]) -> Frame {
    errors::error(&format!("NOGROUP No such key '{}' or consumer group '{}'", text(key), text(group)))
}

// ---- XGROUP ---------------------------------------------------------------------------------

/// XGROUP (without a subcommand; the dispatcher's arity check answers first).
fn xgroup(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    errors::wrong_arity("xgroup")
}

fn xgroup_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    const LINES: &[&str] = &[
        "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(LINES.iter().map(|line| Frame::Simple(Bytes::from_static(line.as_bytes()))).collect())
}

/// XGROUP CREATE's and SETID's options from argument 5: (MKSTREAM, ENTRIESREAD).
fn parse_group_options(args: &[Bytes], mkstream_allowed: bool) -> Result<(bool, Option<u64>), Frame> {
    let (mut mkstream, mut entries_read) = (false, None);
    let mut i = 5;
    while i < args.len() {
        if mkstream_allowed && is(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if is(&args[i], "entriesread") && i + 1 < args.len() {
            let n = args::parse_i64(&args[i + 1])?;
            if n < -1 {
                return Err(errors::error(ENTRIES_READ_INVALID));
            }
            entries_read = u64::try_from(n).ok();
            i += 2;
        } else {
            return Err(errors::subcommand_syntax(args));
        }
    }
    Ok((mkstream, entries_read))
}

/// The stream XGROUP's subcommands work on: WRONGTYPE, or Redis's error when it is missing.
fn group_stream<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<&'a mut Stream, Frame> {
    let now = ctx.now_ms;
    write_stream(ctx.db(), key, now)?.ok_or_else(|| errors::error(KEY_REQUIRED))
}

/// The group XGROUP's SETID, CREATECONSUMER and DELCONSUMER need.
fn existing_group<'a>(stream: &'a mut Stream, key: &[u8], name: &[u8]) -> Result<&'a mut Group, Frame> {
    stream.groups.get_mut(name).ok_or_else(|| errors::error(&format!("NOGROUP No such consumer group '{}' for key name '{}'", text(name), text(key))))
}

/// XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD entries-read]
fn xgroup_create(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (mkstream, entries_read) = match parse_group_options(args, true) {
        Ok(options) => options,
        Err(error) => return error,
    };
    let (key, name) = (&args[2], &args[3]);
    let now = ctx.now_ms;
    let exists = match read_stream(ctx.db(), key, now) {
        Err(error) => return error,
        Ok(stream) => stream.map(|s| s.last_id),
    };
    if exists.is_none() && !mkstream {
        return errors::error(KEY_REQUIRED);
    }
    if args.len() > 8 {
        return errors::subcommand_syntax(args);
    }
    let id = if args[4].as_ref() == b"$" {
        exists.unwrap_or(StreamId::MIN)
    } else {
        match parse_strict_id(&args[4]) {
            Ok(id) => id,
            Err(error) => return error,
        }
    };
    let db = ctx.db();
    if exists.is_none() {
        db.set(key, Value::Stream(Box::default()), now);
    }
    let Ok(Some(stream)) = write_stream(db, key, now) else { unreachable!("the stream exists now") };
    if stream.groups.contains_key(name.as_ref()) {
        return errors::error("BUSYGROUP Consumer Group name already exists");
    }
    stream.groups.insert(name.as_ref().into(), Group::new(id, entries_read));
    db.add_changes(1);
    ctx.notify(notify::STREAM, "xgroup-create", key);
    args::ok()
}

/// XGROUP SETID key group id|$ [ENTRIESREAD entries-read]
fn xgroup_setid(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (_, entries_read) = match parse_group_options(args, false) {
        Ok(options) => options,
        Err(error) => return error,
    };
    let key = &args[2];
    let stream = match group_stream(ctx, key) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    let last = stream.last_id;
    let group = match existing_group(stream, key, &args[3]) {
        Ok(group) => group,
        Err(error) => return error,
    };
    if args.len() != 5 && args.len() != 7 {
        return errors::subcommand_syntax(args);
    }
    let id = if args[4].as_ref() == b"$" {
        last
    } else {
        match parse_id(&args[4], 0, false, false) {
            Ok(ParsedId::Id(id)) => id,
            Ok(ParsedId::AnySeq(_)) => unreachable!("not asked for"),
            Err(error) => return error,
        }
    };
    group.last_id = id;
    group.entries_read = entries_read;
    ctx.db().add_changes(1);
    ctx.notify(notify::STREAM, "xgroup-setid", key);
    args::ok()
}

/// XGROUP DESTROY key group
fn xgroup_destroy(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[2];
    let stream = match group_stream(ctx, key) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    if stream.groups.remove(args[3].as_ref()).is_none() {
        return Frame::Integer(0);
    }
    ctx.db().add_changes(1);
    ctx.notify(notify::STREAM, "xgroup-destroy", key);
    Frame::Integer(1)
}

/// The group `XGROUP <subcommand> key group ...` names, which must exist.
fn named_group<'a>(ctx: &'a mut Ctx, args: &[Bytes]) -> Result<&'a mut Group, Frame> {
    let stream = group_stream(ctx, &args[2])?;
    existing_group(stream, &args[2], &args[3])
}

/// XGROUP CREATECONSUMER key group consumer
fn xgroup_createconsumer(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[2];
    let now = ctx.now_ms;
    let group = match named_group(ctx, args) {
        Ok(group) => group,
        Err(error) => return error,
    };
    let (_, created) = group.consumer(&args[4], now);
    if created {
        ctx.db().add_changes(1);
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    Frame::Integer(created as i64)
}

/// XGROUP DELCONSUMER key group consumer
fn xgroup_delconsumer(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[2];
    let group = match named_group(ctx, args) {
        Ok(group) => group,
        Err(error) => return error,
    };
    let Some(pending) = group.delete_consumer(&args[4]) else { return Frame::Integer(0) };
    ctx.db().add_changes(1);
    ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
    Frame::Integer(pending as i64)
}

// ---- XACK, XPENDING -------------------------------------------------------------------------

/// XACK key group id [id ...]
fn xack(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let db = ctx.db();
    let group = match write_stream(db, &args[1], now) {
        Err(error) => return error,
        Ok(stream) => stream.and_then(|s| s.groups.get_mut(args[2].as_ref())),
    };
    // No key or group: nothing to acknowledge, whatever the IDs.
    let Some(group) = group else { return Frame::Integer(0) };
    let ids: Result<Vec<StreamId>, Frame> = args[3..].iter().map(|arg| parse_strict_id(arg)).collect();
    let ids = match ids {
        Ok(ids) => ids,
        Err(error) => return error,
    };
    let acknowledged = ids.into_iter().filter(|id| group.forget(*id)).count();
    db.add_changes(acknowledged as u64);
    args::int(acknowledged as i64)
}

/// XACKDEL key group [KEEPREF | DELREF | ACKED] IDS numids id [id ...] (Redis 8.2): per
/// ID, -1 when the group had no such pending entry, else 1 once it is acknowledged and
/// deleted, or 2 when ACKED keeps it for another group.
fn xackdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (policy, ids) = match super::parse_ids_block(args, 3) {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let now = ctx.now_ms;
    let key = &args[1];
    let db = ctx.db();
    let stream = match write_stream(db, key, now) {
        Err(error) => return error,
        Ok(stream) => stream.filter(|s| s.groups.contains_key(args[2].as_ref())),
    };
    let Some(stream) = stream else { return Frame::Array(ids.iter().map(|_| Frame::Integer(-1)).collect()) };
    let (mut changes, mut deleted) = (0, false);
    let mut codes = Vec::with_capacity(ids.len());
    for id in ids {
        if !stream.groups.get_mut(args[2].as_ref()).expect("checked").forget(id) {
            codes.push(-1);
            continue;
        }
        changes += 1;
        // The entry may be gone already (another group's XACKDEL): acknowledged is enough.
        let code = super::delete_with(stream, id, policy);
        if code == 1 {
            deleted = true;
            changes += 1;
        }
        codes.push(if code == -1 { 1 } else { code });
    }
    db.add_changes(changes);
    if deleted {
        ctx.notify(notify::STREAM, "xdel", key);
    }
    Frame::Array(codes.into_iter().map(Frame::Integer).collect())
}

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
fn xpending(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() != 3 && !(6..=9).contains(&args.len()) {
        return errors::syntax();
    }
    // The range, checked before the key as in Redis.
    let range = if args.len() >= 6 {
        let parsed = (|| {
            let mut at = 3;
            let mut min_idle = 0;
            if is(&args[3], "idle") {
                min_idle = args::parse_i64(&args[4])?;
                if args.len() < 8 {
                    return Err(errors::syntax());
                }
                at += 2;
            }
            let count = args::parse_i64(&args[at + 2])?.max(0) as usize;
            let (mut start, exclusive) = parse_interval_id(&args[at], 0)?;
            if exclusive {
                start = start.next().ok_or_else(|| errors::error("ERR invalid start ID for the interval"))?;
            }
            let (mut end, exclusive) = parse_interval_id(&args[at + 1], u64::MAX)?;
            if exclusive {
                end = end.prev().ok_or_else(|| errors::error("ERR invalid end ID for the interval"))?;
            }
            Ok((min_idle, start, end, count, args.get(at + 3).cloned()))
        })();
        match parsed {
            Ok(range) => Some(range),
            Err(error) => return error,
        }
    } else {
        None
    };
    let now = ctx.now_ms;
    let (key, name) = (&args[1], &args[2]);
    let group = match read_stream(ctx.db(), key, now) {
        Err(error) => return error,
        Ok(stream) => match stream.and_then(|s| s.groups.get(name.as_ref())) {
            Some(group) => group,
            None => return no_group(key, name),
        },
    };
    let Some((min_idle, start, end, mut count, consumer)) = range else {
        // The summary: how many, the first and last IDs, and each consumer's share.
        let (Some((first, _)), Some((last, _))) = (group.pending.first_key_value(), group.pending.last_key_value()) else {
            return Frame::Array(vec![Frame::Integer(0), Frame::Null, Frame::Null, Frame::NullArray]);
        };
        let consumers = group
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(name, c)| Frame::Array(vec![Frame::Bulk(Bytes::copy_from_slice(name)), Frame::Bulk(Bytes::from(c.pending.len().to_string()))]))
            .collect();
        return Frame::Array(vec![args::int(group.pending.len() as i64), id_frame(*first), id_frame(*last), Frame::Array(consumers)]);
    };
    let ids: Box<dyn Iterator<Item = StreamId>> = match &consumer {
        Some(name) => match group.consumers.get(name.as_ref()) {
            Some(c) if start <= end => Box::new(c.pending.range(start..=end).copied()),
            Some(_) => Box::new(std::iter::empty()),
            None => return Frame::Array(Vec::new()),
        },
        None if start <= end => Box::new(group.pending.range(start..=end).map(|(id, _)| *id)),
        None => Box::new(std::iter::empty()),
    };
    let mut out = Vec::new();
    for id in ids {
        if count == 0 {
            break;
        }
        let pending = &group.pending[&id];
        let idle = now as i64 - pending.delivery_time_ms as i64;
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        count -= 1;
        out.push(Frame::Array(vec![
            id_frame(id),
            Frame::Bulk(Bytes::copy_from_slice(&pending.consumer)),
            args::int(idle.max(0)),
            args::int(pending.delivery_count as i64),
        ]));
    }
    Frame::Array(out)
}

// ---- XCLAIM, XAUTOCLAIM ---------------------------------------------------------------------

/// XCLAIM's request past the key, group and consumer.
pub struct ClaimRequest {
    pub min_idle: i64,
    /// The IDs are arguments 5 up to this (exclusive).
    pub ids_end: usize,
    pub ids: Vec<StreamId>,
    pub delivery_time: Option<i64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: StreamId,
}

/// Parses XCLAIM's min-idle-time, IDs and options as Redis does (IDs run until the first
/// argument that is not one). `now` turns IDLE into a time.
pub fn parse_xclaim(args: &[Bytes], now: i64) -> Result<ClaimRequest, Frame> {
    let min_idle = args::parse_i64(&args[4]).map_err(|_| errors::error("ERR Invalid min-idle-time argument for XCLAIM"))?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_strict_id(&args[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let mut request = ClaimRequest { min_idle, ids_end: j, ids, delivery_time: None, retry_count: None, force: false, justid: false, last_id: StreamId::MIN };
    while j < args.len() {
        let more = j + 1 < args.len();
        let option = |name: &str| errors::error(&format!("ERR Invalid {name} option argument for XCLAIM"));
        if is(&args[j], "force") {
            request.force = true;
        } else if is(&args[j], "justid") {
            request.justid = true;
        } else if is(&args[j], "idle") && more {
            j += 1;
            request.delivery_time = Some(now - args::parse_i64(&args[j]).map_err(|_| option("IDLE"))?);
        } else if is(&args[j], "time") && more {
            j += 1;
            request.delivery_time = Some(args::parse_i64(&args[j]).map_err(|_| option("TIME"))?);
        } else if is(&args[j], "retrycount") && more {
            j += 1;
            let count = args::parse_i64(&args[j]).map_err(|_| option("RETRYCOUNT"))?;
            // A negative count leaves the counter to the usual rule, as in Redis.
            request.retry_count = u64::try_from(count).ok();
        } else if is(&args[j], "lastid") && more {
            j += 1;
            request.last_id = parse_strict_id(&args[j])?;
        } else {
            return Err(errors::error(&format!("ERR Unrecognized XCLAIM option '{}'", text(&args[j]))));
        }
        j += 1;
    }
    Ok(request)
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
fn xclaim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let db = ctx.db();
    let stream = match claiming_stream(db, key, name, now) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    let request = match parse_xclaim(args, now as i64) {
        Ok(request) => request,
        Err(error) => return error,
    };
    let mut changed = 0;
    let group = stream.groups.get_mut(name.as_ref()).expect("checked above");
    if request.last_id > group.last_id {
        group.last_id = request.last_id;
        changed += 1;
    }
    let mut created = false;
    let delivery_time = match request.delivery_time {
        Some(time) if (0..=now as i64).contains(&time) => time as u64,
        _ => now,
    };
    let mut claimed = Vec::new();
    for id in request.ids {
        let exists = stream_has(stream, id);
        let group = stream.groups.get_mut(name.as_ref()).expect("checked above");
        if !exists {
            if group.forget(id) {
                changed += 1;
            }
            continue;
        }
        let count = match group.pending.get(&id) {
            Some(pending) => {
                if request.min_idle != 0 && (now as i64 - pending.delivery_time_ms as i64) < request.min_idle {
                    continue;
                }
                pending.delivery_count
            }
            None if request.force => 1,
            None => continue,
        };
        let count = request.retry_count.unwrap_or(if request.justid { count } else { count + 1 });
        created |= claim_for(group, consumer, now);
        group.assign(id, consumer, delivery_time, Some(count));
        changed += 1;
        claimed.push(id);
    }
    Frame::Array(after_claims(ctx, key, changed, created, claimed, request.justid))
}

/// The stream XCLAIM and XAUTOCLAIM work on: WRONGTYPE, or NOGROUP without it or its group.
fn claiming_stream<'a>(db: &'a mut shoal_store::Db, key: &[u8], group: &[u8], now: u64) -> Result<&'a mut Stream, Frame> {
    match write_stream(db, key, now)? {
        Some(stream) if stream.groups.contains_key(group) => Ok(stream),
        _ => Err(no_group(key, group)),
    }
}

/// After XCLAIM or XAUTOCLAIM claimed `claimed`: counts the changes (a consumer created is
/// one more, as in Redis), raises its event, and replies the entries (or IDs, `justid`).
fn after_claims(ctx: &mut Ctx, key: &[u8], changed: u64, created: bool, claimed: Vec<StreamId>, justid: bool) -> Vec<Frame> {
    let now = ctx.now_ms;
    ctx.db().add_changes(changed + created as u64);
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    let Ok(Some(stream)) = read_stream(ctx.db(), key, now) else { unreachable!("the stream exists") };
    claimed.into_iter().map(|id| if justid { id_frame(id) } else { entry_frame(id, stream.get(id).expect("claimed entries exist")) }).collect()
}

fn stream_has(stream: &Stream, id: StreamId) -> bool {
    stream.get(id).is_some()
}

/// The consumer that claims something now, created if missing (whether it was), seen and
/// active now.
fn claim_for(group: &mut Group, consumer: &[u8], now: u64) -> bool {
    let (entry, created) = group.consumer(consumer, now);
    entry.seen_time_ms = now;
    entry.active_time_ms = Some(now);
    created
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    const ATTEMPTS_FACTOR: i64 = 10;
    let parsed = (|| {
        let min_idle = args::parse_i64(&args[4]).map_err(|_| errors::error("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0);
        let (mut start, exclusive) = parse_interval_id(&args[5], 0)?;
        if exclusive {
            start = start.next().ok_or_else(|| errors::error("ERR invalid start ID for the interval"))?;
        }
        let (mut count, mut justid) = (100i64, false);
        let mut j = 6;
        while j < args.len() {
            if is(&args[j], "count") && j + 1 < args.len() {
                count = match args::parse_i64(&args[j + 1]) {
                    Ok(n) if (1..=i64::MAX / 16).contains(&n) => n,
                    _ => return Err(errors::error("ERR COUNT must be > 0")),
                };
                j += 1;
            } else if is(&args[j], "justid") {
                justid = true;
            } else {
                return Err(errors::syntax());
            }
            j += 1;
        }
        Ok((min_idle, start, count, justid))
    })();
    let (min_idle, start, mut count, justid) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    let now = ctx.now_ms;
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let db = ctx.db();
    let stream = match claiming_stream(db, key, name, now) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    let attempts = (count * ATTEMPTS_FACTOR) as usize;
    // The PEL entries it may look at, and one more for the cursor.
    let candidates: Vec<StreamId> = stream.groups[name.as_ref()].pending.range(start..).take(attempts + 1).map(|(id, _)| *id).collect();
    let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
    let mut examined = 0;
    let mut changed = 0;
    let mut created = false;
    while examined < attempts && count > 0 && examined < candidates.len() {
        let id = candidates[examined];
        examined += 1;
        let exists = stream_has(stream, id);
        let group = stream.groups.get_mut(name.as_ref()).expect("checked above");
        if !exists {
            group.forget(id);
            deleted.push(id);
            changed += 1;
            count -= 1;
            continue;
        }
        let pending = &group.pending[&id];
        if min_idle != 0 && (now as i64 - pending.delivery_time_ms as i64) < min_idle {
            continue;
        }
        let delivery_count = if justid { pending.delivery_count } else { pending.delivery_count + 1 };
        created |= claim_for(group, consumer, now);
        group.assign(id, consumer, now, Some(delivery_count));
        claimed.push(id);
        changed += 1;
        count -= 1;
    }
    let cursor = candidates.get(examined).copied().unwrap_or(StreamId::MIN);
    let claimed = after_claims(ctx, key, changed, created, claimed, justid);
    Frame::Array(vec![id_frame(cursor), Frame::Array(claimed), Frame::Array(deleted.into_iter().map(id_frame).collect())])
}

// ---- XREADGROUP -----------------------------------------------------------------------------

fn parse_xreadgroup(args: &[Bytes]) -> Result<ReadRequest, Frame> {
    parse_read(args, true)
}

fn parse_xreadgroup_timeout(args: &[Bytes]) -> Result<Option<std::time::Duration>, Frame> {
    Ok(parse_xreadgroup(args)?.timeout())
}

fn xreadgroup_keys(args: &[Bytes]) -> Vec<usize> {
    match parse_xreadgroup(args) {
        Ok(request) => (request.keys_at..request.ids_at()).collect(),
        Err(_) => Vec::new(),
    }
}

/// It waits only on the streams it reads with `>`: history never waits.
fn xreadgroup_wait_keys(args: &[Bytes]) -> Vec<usize> {
    match parse_xreadgroup(args) {
        Ok(request) => (0..request.streams).filter(|i| args[request.ids_at() + i].as_ref() == b">").map(|i| request.keys_at + i).collect(),
        Err(_) => Vec::new(),
    }
}

/// What one stream of an XREADGROUP asks for.
#[derive(Clone, Copy)]
enum GroupRead {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's pending entries after this ID.
    History(StreamId),
}

/// Checks one stream of an XREADGROUP on its core: its type, its group, its ID.
fn check_group_read(ctx: &mut Ctx, key: &[u8], id: &[u8], group: &[u8]) -> Result<GroupRead, Frame> {
    let now = ctx.now_ms;
    let stream = read_stream(ctx.db(), key, now)?;
    if stream.and_then(|s| s.groups.get(group)).is_none() {
        return Err(errors::error(&format!("NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option", text(key), text(group))));
    }
    match id {
        b"$" => Err(errors::error(DOLLAR_IN_XREADGROUP)),
        b">" => Ok(GroupRead::New),
        // The greatest ID is Redis's marker for `>`.
        _ => parse_strict_id(id).map(|id| if id == StreamId::MAX { GroupRead::New } else { GroupRead::History(id) }),
    }
}

/// Who reads in an XREADGROUP, and how.
struct Reader<'a> {
    group: &'a [u8],
    consumer: &'a [u8],
    count: usize,
    noack: bool,
    /// CLAIM's min-idle-time: `>` claims entries pending this long first.
    claim_ms: Option<u64>,
}

/// Whether no entry of `group` can be idle `min_idle` at `now`, as far as its
/// `delivered_since` tells without a walk.
fn surely_none_idle(group: &Group, min_idle: u64, now: u64) -> bool {
    group.pending.is_empty() || (group.delivered_since.0 != 0 && now.saturating_sub(group.delivered_since.0) < min_idle)
}

/// The pending entries of `group` that CLAIM `min_idle` may take at `now`, the longest idle
/// first (then by ID), at most `limit`, which the caller then delivers again (at `now`).
/// Redis keeps a time-ordered index of the PEL; Shoal walks it, and only when
/// `delivered_since` says something may be idle enough, then remembers the earliest
/// delivery among the entries not taken, so a consumer that asks often walks only when it
/// will claim.
fn claimable(group: &mut Group, min_idle: u64, now: u64, limit: usize) -> Vec<StreamId> {
    if surely_none_idle(group, min_idle, now) {
        return Vec::new();
    }
    let mut earliest_left = now;
    let mut idle = Vec::new();
    for (id, pending) in &group.pending {
        if now.saturating_sub(pending.delivery_time_ms) >= min_idle {
            idle.push((pending.delivery_time_ms, *id));
        } else {
            earliest_left = earliest_left.min(pending.delivery_time_ms);
        }
    }
    if limit < idle.len() {
        idle.select_nth_unstable(limit);
        earliest_left = idle[limit..].iter().fold(earliest_left, |earliest, (at, _)| earliest.min(*at));
        idle.truncate(limit);
    }
    group.delivered_since.0 = earliest_left.max(1);
    idle.sort_unstable();
    idle.into_iter().map(|(_, id)| id).collect()
}

/// Whether CLAIM `min_idle` may take any of `group`'s pending entries at `now`.
fn any_claimable(group: &Group, min_idle: u64, now: u64) -> bool {
    !surely_none_idle(group, min_idle, now) && group.pending.values().any(|p| now.saturating_sub(p.delivery_time_ms) >= min_idle)
}

/// When the first of `group`'s pending entries will have been idle `min_idle`, Unix ms (no
/// later than that: from `delivered_since` when it is known).
fn next_claimable(group: &Group, min_idle: u64) -> Option<u64> {
    let earliest = match group.delivered_since.0 {
        0 => group.pending.values().map(|p| p.delivery_time_ms).min()?,
        since if !group.pending.is_empty() => since,
        _ => return None,
    };
    Some(earliest.saturating_add(min_idle))
}

/// An entry as CLAIM replies it: ID, fields (nil when gone), idle ms, earlier deliveries.
fn claimed_frame(entry: Frame, idle_ms: u64, deliveries: u64) -> Frame {
    let Frame::Array(mut parts) = entry else { unreachable!("an entry is an array") };
    parts.push(Frame::Integer(idle_ms as i64));
    parts.push(Frame::Integer(deliveries as i64));
    Frame::Array(parts)
}

/// Serves one checked stream of an XREADGROUP: the entries it delivers, or None when `>`
/// finds nothing new. Delivered entries enter the PEL (not with NOACK); a history read
/// counts one more delivery of each pending entry still in the stream.
fn serve_group_read(ctx: &mut Ctx, key: &[u8], read: GroupRead, reader: &Reader, at_once: bool) -> Option<Frame> {
    let Reader { group: group_name, consumer, count, noack, claim_ms } = *reader;
    let now = ctx.now_ms;
    let db = ctx.db();
    let Ok(Some(stream)) = write_stream(db, key, now) else { return None };
    let limit = if count == 0 { usize::MAX } else { count };
    let created;
    let frames = match read {
        GroupRead::New => {
            let unread = !stream.is_empty() && stream.last_entry_id() > stream.groups.get(group_name)?.last_id;
            let group = stream.groups.get_mut(group_name).expect("checked");
            let claims = claim_ms.map_or_else(Vec::new, |min_idle| claimable(group, min_idle, now, limit));
            let fresh = unread && claims.len() < limit;
            let group = &*group;
            if claims.is_empty() && !fresh {
                return None;
            }
            let start = group.last_id.next().unwrap_or(StreamId::MAX);
            created = stream.groups.get_mut(group_name).expect("checked").consumer(consumer, now).1;
            let mut frames = Vec::new();
            for id in claims {
                let pending = &stream.groups[group_name].pending[&id];
                let (idle, deliveries) = (now.saturating_sub(pending.delivery_time_ms), pending.delivery_count);
                let entry = stream.get(id).map(|fields| entry_frame(id, fields));
                let group = stream.groups.get_mut(group_name).expect("checked");
                match entry {
                    Some(entry) => {
                        frames.push(claimed_frame(entry, idle, deliveries));
                        group.assign(id, consumer, now, Some(deliveries + 1));
                    }
                    None => {
                        frames.push(claimed_frame(Frame::Array(vec![id_frame(id), Frame::NullArray]), idle, deliveries));
                        group.forget(id);
                    }
                }
            }
            let delivered: Vec<StreamId> =
                if fresh { stream.range(start, StreamId::MAX, false).take(limit - frames.len()).map(|(id, _)| id).collect() } else { Vec::new() };
            frames.extend(delivered.iter().map(|id| {
                let entry = entry_frame(*id, stream.get(*id).expect("just read"));
                if claim_ms.is_some() {
                    claimed_frame(entry, 0, 0)
                } else {
                    entry
                }
            }));
            for id in delivered {
                let tombstones = stream.has_tombstones_from(id);
                let counted = stream.entries_before_or_at(id);
                let group = stream.groups.get_mut(group_name).expect("checked");
                group.entries_read = match group.entries_read {
                    Some(read) if !tombstones => Some(read + 1),
                    _ => counted,
                };
                group.last_id = id;
                if !noack {
                    group.assign(id, consumer, now, Some(1));
                }
            }
            frames
        }
        GroupRead::History(after) => {
            let Stream { groups, .. } = &mut *stream;
            let group = groups.get_mut(group_name)?;
            created = group.consumer(consumer, now).1;
            let ids: Vec<StreamId> = match (group.consumers.get(consumer), after.next()) {
                (Some(c), Some(start)) => c.pending.range(start..).take(limit).copied().collect(),
                _ => Vec::new(),
            };
            let mut frames = Vec::with_capacity(ids.len());
            for id in ids {
                match stream.get(id) {
                    Some(fields) => {
                        frames.push(entry_frame(id, fields));
                        let pending = stream.groups.get_mut(group_name).and_then(|g| g.pending.get_mut(&id)).expect("listed pending");
                        pending.delivery_time_ms = now;
                        pending.delivery_count += 1;
                    }
                    None => frames.push(Frame::Array(vec![id_frame(id), Frame::NullArray])),
                }
            }
            frames
        }
    };
    let group = stream.groups.get_mut(group_name).expect("checked");
    if cfg!(debug_assertions) && claim_ms.is_some() {
        group.check_invariants();
    }
    let (entry, _) = group.consumer(consumer, now);
    entry.seen_time_ms = now;
    if !frames.is_empty() {
        entry.active_time_ms = Some(now);
    }
    // A change per stream served at once (not when it waited), and one for a consumer
    // created, as Redis counts.
    db.add_changes(at_once as u64 + created as u64);
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    Some(Frame::Array(frames))
}

/// XREADGROUP GROUP group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS key [key ...]
/// id [id ...], at once: every stream checked first (the first error wins, in the keys'
/// order), then served.
fn xreadgroup_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let request = match parse_xreadgroup(&args) {
            Ok(request) => request,
            Err(error) => return Some(error),
        };
        let (group, consumer) = request.group.clone().expect("XREADGROUP's parse asks for GROUP");
        let pairs = super::read_pairs(&args, &request);
        let checks = {
            let group = group.clone();
            per_stream(coordinator, &pairs, move |ctx, keyed| keyed.iter().map(|(key, id)| check_group_read(ctx, key, id, &group)).collect::<Vec<_>>()).await
        };
        let mut reads = Vec::with_capacity(checks.len());
        for check in checks {
            match check {
                Ok(read) => reads.push(read),
                Err(error) => return Some(error),
            }
        }
        // The checked reads travel with their keys, encoded in the ID argument.
        let planned: Vec<(Bytes, Bytes)> = pairs
            .iter()
            .zip(&reads)
            .map(|((key, _), read)| {
                let id = match read {
                    GroupRead::New => Bytes::from_static(b">"),
                    GroupRead::History(id) => Bytes::from(id.to_string()),
                };
                (key.clone(), id)
            })
            .collect();
        let (count, noack, claim_ms) = (request.count, request.noack, request.claim_ms);
        let served = per_stream(coordinator, &planned, move |ctx, keyed| {
            keyed
                .iter()
                .map(|(key, id)| {
                    let read = if id.as_ref() == b">" { GroupRead::New } else { GroupRead::History(parse_strict_id(id).expect("an ID written above")) };
                    serve_group_read(ctx, key, read, &Reader { group: &group, consumer: &consumer, count, noack, claim_ms }, true)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let served: Vec<(Bytes, Frame)> = pairs.into_iter().zip(served).filter_map(|((key, _), frame)| frame.map(|f| (key, f))).collect();
        (!served.is_empty()).then(|| read_reply(coordinator.proto(), served))
    }
    .boxed_local()
}

/// With CLAIM, when the first entry pending in a group it waits on will have been idle
/// min-idle-time (Unix ms).
fn xreadgroup_recheck(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<u64>> {
    async move {
        let request = parse_xreadgroup(&args).ok()?;
        let min_idle = request.claim_ms?;
        let (group, _) = request.group.clone()?;
        let waited: Vec<(Bytes, Bytes)> = super::read_pairs(&args, &request).into_iter().filter(|(_, id)| id.as_ref() == b">").collect();
        let times = per_stream(coordinator, &waited, move |ctx, keyed| {
            let now = ctx.now_ms;
            keyed
                .iter()
                .map(|(key, _)| match read_stream(ctx.db(), key, now) {
                    Ok(Some(stream)) => stream.groups.get(group.as_ref()).and_then(|g| next_claimable(g, min_idle)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .await;
        times.into_iter().flatten().min()
    }
    .boxed_local()
}

/// XREADGROUP that cannot wait, on the one core of its keys: every stream checked, then
/// served.
fn xreadgroup_at_once(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let request = match parse_xreadgroup(args) {
        Ok(request) => request,
        Err(error) => return error,
    };
    let (group, consumer) = request.group.clone().expect("XREADGROUP's parse asks for GROUP");
    let pairs = super::read_pairs(args, &request);
    let mut reads = Vec::with_capacity(pairs.len());
    for (key, id) in &pairs {
        match check_group_read(ctx, key, id, &group) {
            Ok(read) => reads.push(read),
            Err(error) => return error,
        }
    }
    let reader = Reader { group: &group, consumer: &consumer, count: request.count, noack: request.noack, claim_ms: request.claim_ms };
    let served: Vec<(Bytes, Frame)> =
        pairs.into_iter().zip(reads).filter_map(|((key, _), read)| serve_group_read(ctx, &key, read, &reader, true).map(|frame| (key, frame))).collect();
    if served.is_empty() {
        Frame::NullArray
    } else {
        read_reply(ctx.proto, served)
    }
}

/// A blocked XREADGROUP, on the core of `key` that a write may have made ready.
fn xreadgroup_serve(ctx: &mut Ctx, key: &[u8], args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    let Ok(request) = parse_xreadgroup(args) else { return Served::NotReady };
    let Some((group, consumer)) = &request.group else { return Served::NotReady };
    if !(0..request.streams).any(|i| args[request.keys_at + i].as_ref() == key && args[request.ids_at() + i].as_ref() == b">") {
        return Served::NotReady;
    }
    let now = ctx.now_ms;
    let proto = ctx.proto;
    let ready = match read_stream(ctx.db(), key, now) {
        Ok(Some(stream)) => stream
            .groups
            .get(group.as_ref())
            .map(|g| (!stream.is_empty() && stream.last_entry_id() > g.last_id) || request.claim_ms.is_some_and(|min_idle| any_claimable(g, min_idle, now))),
        _ => return Served::NotReady,
    };
    match ready {
        Some(false) => Served::NotReady,
        None => {
            if !claim() {
                return Served::Gone;
            }
            Served::Done(errors::error("NOGROUP the consumer group this client was blocked on no longer exists"))
        }
        Some(true) => {
            if !claim() {
                return Served::Gone;
            }
            let reader = Reader { group, consumer, count: request.count, noack: request.noack, claim_ms: request.claim_ms };
            match serve_group_read(ctx, key, GroupRead::New, &reader, false) {
                Some(entries) => Served::Done(read_reply(proto, vec![(Bytes::copy_from_slice(key), entries)])),
                None => unreachable!("checked ready"),
            }
        }
    }
}

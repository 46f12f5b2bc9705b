//! The sorted set family: ZADD, ZRANGE and friends (Redis's `t_zset.c`).
//!
//! Replies and errors follow Redis 7 byte for byte (ZRANK's WITHSCORE is 7.2's). Scores reply
//! as doubles: bulk strings in RESP2, `,` doubles in RESP3, where WITHSCORES replies become
//! arrays of [member, score] pairs. Multi-key commands (ZUNIONSTORE, ZRANGESTORE, ZMPOP, ...)
//! over keys on several cores run as one transaction: a hop gathers the inputs, the result is
//! computed on the coordinator, and a second hop writes the destination.
//!
//! Plain sets are valid inputs of ZUNION/ZINTER/ZDIFF (score 1) through [`set_members`], the
//! one place that reads the set type. Blocking pops are not here: [`op_pop`] is their
//! synchronous half.

pub mod parse;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use rand::Rng;
use shoal_resp::{AggregateKind, Encoded, Frame, Protocol};
use shoal_store::types::{Set, ZSet};
use shoal_store::{Db, Limits, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{self, flags::*, CommandSpec, Handler, KeySpec};
use parse::{strict_f64, LexRange, ScoreRange};

const NAN_RESULT: &str = "ERR resulting score is not a number (NaN)";
const XX_AND_NX: &str = "ERR XX and NX options at the same time are not compatible";
const GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
const INCR_PAIRS: &str = "ERR INCR option supports a single increment-element pair";
const RANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
const RANGE_NOT_LEX: &str = "ERR min or max not valid string range item";
const LIMIT_NEEDS_BY: &str = "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
const WITHSCORES_BYLEX: &str = "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
const RANDMEMBER_RANGE: &str = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const OUT_OF_RANGE: &str = "ERR value is out of range";
/// Shoal's bound on ZRANDMEMBER with a negative count (picks with repetition): Redis has none
/// and builds any reply asked for; we refuse one this large rather than allocate without bound.
const RANDMEMBER_REPEATS_MAX: u64 = 1 << 24;

/// Members with their scores.
pub type Items = Vec<(Bytes, f64)>;

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@sortedset"], group: "sorted-set", since: "1.2.0", ..CommandSpec::DEFAULT };
const LOG_N: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.";

fn numkeys_at_1(args: &[Bytes]) -> Vec<usize> {
    table::numkeys_positions(args, 1, &[])
}

fn numkeys_at_2(args: &[Bytes]) -> Vec<usize> {
    table::numkeys_positions(args, 2, &[1])
}

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "zadd",
        arity: -4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.",
        complexity: "O(log(N)) for each item added, where N is the number of elements in the sorted set.",
        handler: Handler::Keys { local: zadd, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zincrby",
        arity: 4,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increments the score of a member in a sorted set.",
        complexity: "O(log(N)) where N is the number of elements in the sorted set.",
        handler: Handler::Keys { local: zincrby, multi: None },
        members: KeySpec::THIRD,
        ..BASE
    },
    CommandSpec {
        name: "zrem",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.",
        complexity: "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed.",
        handler: Handler::Keys { local: zrem, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "zcard",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the number of members in a sorted set.",
        handler: Handler::Keys { local: zcard, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zcount",
        arity: 4,
        flags: READONLY | FAST,
        summary: "Returns the count of members in a sorted set that have scores within a range.",
        since: "2.0.0",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        handler: Handler::Keys { local: zcount, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zlexcount",
        arity: 4,
        flags: READONLY | FAST,
        summary: "Returns the number of members in a sorted set within a lexicographical range.",
        since: "2.8.9",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        handler: Handler::Keys { local: zlexcount, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zscore",
        arity: 3,
        flags: READONLY | FAST,
        summary: "Returns the score of a member in a sorted set.",
        handler: Handler::Keys { local: zscore, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "zmscore",
        arity: -3,
        flags: READONLY | FAST,
        summary: "Returns the score of one or more members in a sorted set.",
        since: "6.2.0",
        complexity: "O(N) where N is the number of members being requested.",
        handler: Handler::Keys { local: zmscore, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "zrank",
        arity: -3,
        flags: READONLY | FAST,
        summary: "Returns the index of a member in a sorted set ordered by ascending scores.",
        since: "2.0.0",
        complexity: "O(log(N))",
        handler: Handler::Keys { local: zrank, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "zrevrank",
        arity: -3,
        flags: READONLY | FAST,
        summary: "Returns the index of a member in a sorted set ordered by descending scores.",
        since: "2.0.0",
        complexity: "O(log(N))",
        handler: Handler::Keys { local: zrevrank, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "zrange",
        arity: -4,
        flags: READONLY,
        summary: "Returns members in a sorted set within a range of indexes.",
        complexity: LOG_N,
        handler: Handler::Keys { local: zrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zrangestore",
        arity: -5,
        flags: WRITE | DENYOOM,
        keys: KeySpec::TWO,
        summary: "Stores a range of members from sorted set in a key.",
        since: "6.2.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key.",
        handler: Handler::Keys { local: zrangestore, multi: Some(zrangestore_multi) },
        ..BASE
    },
    CommandSpec {
        name: "zrangebyscore",
        arity: -4,
        flags: READONLY,
        summary: "Returns members in a sorted set within a range of scores.",
        since: "1.0.5",
        complexity: LOG_N,
        handler: Handler::Keys { local: zrangebyscore, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zrevrangebyscore",
        arity: -4,
        flags: READONLY,
        summary: "Returns members in a sorted set within a range of scores in reverse order.",
        since: "2.2.0",
        complexity: LOG_N,
        handler: Handler::Keys { local: zrevrangebyscore, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zrangebylex",
        arity: -4,
        flags: READONLY,
        summary: "Returns members in a sorted set within a lexicographical range.",
        since: "2.8.9",
        complexity: LOG_N,
        handler: Handler::Keys { local: zrangebylex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zrevrangebylex",
        arity: -4,
        flags: READONLY,
        summary: "Returns members in a sorted set within a lexicographical range in reverse order.",
        since: "2.8.9",
        complexity: LOG_N,
        handler: Handler::Keys { local: zrevrangebylex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zrevrange",
        arity: -4,
        flags: READONLY,
        summary: "Returns members in a sorted set within a range of indexes in reverse order.",
        complexity: LOG_N,
        handler: Handler::Keys { local: zrevrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zremrangebyrank",
        arity: 4,
        flags: WRITE,
        summary: "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.",
        since: "2.0.0",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.",
        handler: Handler::Keys { local: zremrangebyrank, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zremrangebyscore",
        arity: 4,
        flags: WRITE,
        summary: "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.",
        handler: Handler::Keys { local: zremrangebyscore, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zremrangebylex",
        arity: 4,
        flags: WRITE,
        summary: "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.",
        since: "2.8.9",
        complexity: "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.",
        handler: Handler::Keys { local: zremrangebylex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zpopmin",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
        since: "5.0.0",
        complexity: "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.",
        handler: Handler::Keys { local: zpopmin, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zpopmax",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
        since: "5.0.0",
        complexity: "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.",
        handler: Handler::Keys { local: zpopmax, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zmpop",
        arity: -4,
        flags: WRITE,
        // The legacy triple is 0 0 0, as Redis reports it: the keys are movable.
        keys: KeySpec::NONE,
        summary: "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.",
        since: "7.0.0",
        complexity: "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.",
        handler: Handler::Keys { local: zmpop, multi: Some(zmpop_multi) },
        movable_keys: Some(numkeys_at_1),
        ..BASE
    },
    CommandSpec {
        name: "zrandmember",
        arity: -2,
        flags: READONLY,
        summary: "Returns one or more random members from a sorted set.",
        since: "6.2.0",
        complexity: "O(N) where N is the number of members returned",
        handler: Handler::Keys { local: zrandmember, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "zunion",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the union of multiple sorted sets.",
        since: "6.2.0",
        complexity: "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.",
        handler: Handler::Keys { local: zunion, multi: Some(zunion_multi) },
        movable_keys: Some(numkeys_at_1),
        ..BASE
    },
    CommandSpec {
        name: "zunionstore",
        arity: -4,
        flags: WRITE | DENYOOM,
        summary: "Stores the union of multiple sorted sets in a key.",
        since: "2.0.0",
        complexity: "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.",
        handler: Handler::Keys { local: zunionstore, multi: Some(zunionstore_multi) },
        movable_keys: Some(numkeys_at_2),
        ..BASE
    },
    CommandSpec {
        name: "zinter",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the intersect of multiple sorted sets.",
        since: "6.2.0",
        complexity: "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.",
        handler: Handler::Keys { local: zinter, multi: Some(zinter_multi) },
        movable_keys: Some(numkeys_at_1),
        ..BASE
    },
    CommandSpec {
        name: "zinterstore",
        arity: -4,
        flags: WRITE | DENYOOM,
        summary: "Stores the intersect of multiple sorted sets in a key.",
        since: "2.0.0",
        complexity: "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.",
        handler: Handler::Keys { local: zinterstore, multi: Some(zinterstore_multi) },
        movable_keys: Some(numkeys_at_2),
        ..BASE
    },
    CommandSpec {
        name: "zintercard",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the number of members of the intersect of multiple sorted sets.",
        since: "7.0.0",
        complexity: "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets.",
        handler: Handler::Keys { local: zintercard, multi: Some(zintercard_multi) },
        movable_keys: Some(numkeys_at_1),
        ..BASE
    },
    CommandSpec {
        name: "zdiff",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the difference between multiple sorted sets.",
        since: "6.2.0",
        complexity: "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.",
        handler: Handler::Keys { local: zdiff, multi: Some(zdiff_multi) },
        movable_keys: Some(numkeys_at_1),
        ..BASE
    },
    CommandSpec {
        name: "zdiffstore",
        arity: -4,
        flags: WRITE | DENYOOM,
        summary: "Stores the difference of multiple sorted sets in a key.",
        since: "6.2.0",
        complexity: "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.",
        handler: Handler::Keys { local: zdiffstore, multi: Some(zdiffstore_multi) },
        movable_keys: Some(numkeys_at_2),
        ..BASE
    },
    CommandSpec {
        name: "zscan",
        arity: -3,
        flags: READONLY,
        summary: "Iterates over members and scores of a sorted set.",
        since: "2.8.0",
        complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        handler: Handler::Keys { local: zscan, multi: None },
        ..BASE
    },
];

// ---- Lookups and replies ---------------------------------------------------------------

/// The sorted set at `key` for reading (counts a hit or miss), WRONGTYPE for another type.
pub(crate) fn read<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a ZSet>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::ZSet(zset) => Ok(Some(zset)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// The sorted set at `key` for writing, WRONGTYPE for another type.
fn write<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut ZSet>, Frame> {
    match db.lookup_write(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::ZSet(zset) => Ok(Some(zset)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// Deletes `key` if its sorted set became empty: empty collections never exist.
fn delete_if_empty(db: &mut Db, key: &[u8], now_ms: u64) {
    if db.lookup_quiet(key, now_ms).is_some_and(|e| matches!(&e.value, Value::ZSet(z) if z.is_empty())) {
        db.remove(key);
    }
}

fn bytes(member: &[u8]) -> Bytes {
    Bytes::copy_from_slice(member)
}

fn collect(iter: impl Iterator<Item = (impl AsRef<[u8]>, f64)>) -> Items {
    iter.map(|(m, s)| (bytes(m.as_ref()), s)).collect()
}

/// A range reply: members, or members with scores (flat in RESP2, pairs in RESP3).
fn items_reply(items: Items, withscores: bool, proto: Protocol) -> Frame {
    if !withscores {
        return Frame::Array(items.into_iter().map(|(m, _)| Frame::Bulk(m)).collect());
    }
    match proto {
        Protocol::Resp3 => Frame::Array(items.into_iter().map(|(m, s)| Frame::Array(vec![Frame::Bulk(m), Frame::Double(s)])).collect()),
        Protocol::Resp2 => Frame::Array(items.into_iter().flat_map(|(m, s)| [Frame::Bulk(m), Frame::Double(s)]).collect()),
    }
}

/// A range reply encoded straight from the set's iteration, with no frame or copy per member:
/// members, or members with scores (flat in RESP2, pairs in RESP3), as [`items_reply`].
fn range_reply<'a>(members: impl Iterator<Item = (&'a [u8], f64)>, count: usize, withscores: bool, proto: Protocol) -> Frame {
    let mut reply = Encoded::new(AggregateKind::Array, proto, if withscores { 2 * count } else { count });
    for (member, score) in members {
        if withscores {
            reply.push_member_score(member, score);
        } else {
            reply.push_bulk(member);
        }
    }
    Frame::Encoded(reply)
}

/// Redis's `getPositiveLongFromObjectOrReply` with its own message for both failures.
fn parse_positive(arg: &[u8], message: &str) -> Result<i64, Frame> {
    match shoal_store::value::parse_canonical_i64(arg) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(errors::error(message)),
    }
}

/// Writes `items` (any order) to `key` as a new sorted set, or deletes `key` when empty;
/// returns the count stored. Counts one change, or with `per_member` one per member stored
/// (GEORADIUS and GEOSEARCHSTORE, as Redis counts them); an empty result counts one only
/// when it deleted the key.
pub(crate) fn op_store(db: &mut Db, key: &[u8], mut items: Items, limits: &Limits, now_ms: u64, per_member: bool) -> usize {
    if items.is_empty() {
        let removed = db.remove(key).is_some();
        db.add_changes(removed as u64);
        return 0;
    }
    items.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("no NaN score").then_with(|| a.0.cmp(&b.0)));
    let len = items.len();
    let member_len_max = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    let zset = ZSet::from_sorted(items, len, member_len_max, limits);
    db.set(key, Value::ZSet(zset), now_ms);
    db.add_changes(if per_member { len as u64 } else { 1 });
    len
}

/// [`op_store`] with its event: `event` when it stored, `del` when an empty result deleted
/// the destination.
pub(crate) fn store(ctx: &mut Ctx, key: &[u8], items: Items, per_member: bool, event: &'static str) -> usize {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let empty = items.is_empty();
    let existed = empty && ctx.notifying(notify::GENERIC) && ctx.db().lookup_quiet(key, now).is_some();
    let len = op_store(ctx.db(), key, items, &limits, now, per_member);
    if !empty {
        ctx.notify(notify::ZSET, event, key);
    } else if existed {
        ctx.notify(notify::GENERIC, "del", key);
    }
    len
}

/// The events of a removal from `key`: `event` when something went, then `del` if the
/// sorted set emptied.
fn notify_removed(ctx: &mut Ctx, key: &[u8], removed: bool, event: &'static str) {
    if removed {
        ctx.notify(notify::ZSET, event, key);
        ctx.notify_del_if_gone(key);
    }
}

// ---- ZADD, ZINCRBY, ZREM ----------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What ZADD did.
#[derive(Default)]
pub struct AddOutcome {
    pub added: usize,
    pub updated: usize,
    /// Members not skipped by NX/XX/GT/LT.
    pub processed: usize,
    /// The score of the last member processed (for INCR).
    pub score: f64,
}

/// Adds or updates `pairs` in the sorted set at `key` (Redis's zsetAdd per pair).
fn op_add(db: &mut Db, key: &[u8], flags: AddFlags, pairs: &[(f64, Bytes)], limits: &Limits, now_ms: u64) -> Result<AddOutcome, Frame> {
    let mut outcome = AddOutcome::default();
    if write(db, key, now_ms)?.is_none() {
        if flags.xx {
            return Ok(outcome);
        }
        db.set(key, Value::ZSet(Default::default()), now_ms);
    }
    let zset = write(db, key, now_ms)?.expect("present or just created");
    for (score, member) in pairs {
        let mut score = *score;
        match zset.score(member) {
            Some(current) => {
                if flags.nx {
                    continue;
                }
                if flags.incr {
                    score += current;
                    if score.is_nan() {
                        return Err(errors::error(NAN_RESULT));
                    }
                }
                if (flags.lt && score >= current) || (flags.gt && score <= current) {
                    continue;
                }
                outcome.processed += 1;
                outcome.score = score;
                if score != current {
                    zset.set_score(member, score);
                    outcome.updated += 1;
                }
            }
            None => {
                if flags.xx {
                    continue;
                }
                zset.insert(member, score, limits);
                outcome.added += 1;
                outcome.processed += 1;
                outcome.score = score;
            }
        }
    }
    Ok(outcome)
}

/// The shared body of ZADD and ZINCRBY (Redis's zaddGenericCommand).
fn zadd_generic(ctx: &mut Ctx, args: &[Bytes], incr: bool) -> Frame {
    let mut flags = AddFlags { incr, ..AddFlags::default() };
    let mut at = 2;
    while at < args.len() {
        let opt = &args[at];
        if is(opt, "nx") {
            flags.nx = true;
        } else if is(opt, "xx") {
            flags.xx = true;
        } else if is(opt, "ch") {
            flags.ch = true;
        } else if is(opt, "incr") {
            flags.incr = true;
        } else if is(opt, "gt") {
            flags.gt = true;
        } else if is(opt, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        at += 1;
    }
    let elements = args.len() - at;
    if elements % 2 == 1 || elements == 0 {
        return errors::syntax();
    }
    if flags.nx && flags.xx {
        return errors::error(XX_AND_NX);
    }
    if ((flags.gt || flags.lt) && flags.nx) || (flags.gt && flags.lt) {
        return errors::error(GT_LT_NX);
    }
    if flags.incr && elements > 2 {
        return errors::error(INCR_PAIRS);
    }
    let mut pairs = Vec::with_capacity(elements / 2);
    for pair in args[at..].chunks_exact(2) {
        match strict_f64(&pair[0]) {
            Some(score) => pairs.push((score, pair[1].clone())),
            None => return errors::error(errors::NOT_FLOAT),
        }
    }
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let outcome = op_add(ctx.db(), &args[1], flags, &pairs, &limits, now);
    if let Ok(outcome) = &outcome {
        // One change per member added or updated, as Redis counts ZADD.
        ctx.db().add_changes((outcome.added + outcome.updated) as u64);
        if outcome.added + outcome.updated > 0 {
            ctx.notify(notify::ZSET, if flags.incr { "zincr" } else { "zadd" }, &args[1]);
        }
    }
    match outcome {
        Err(e) => e,
        Ok(outcome) if flags.incr => {
            if outcome.processed > 0 {
                Frame::Double(outcome.score)
            } else {
                Frame::Null
            }
        }
        Ok(outcome) => args::int(if flags.ch { outcome.added + outcome.updated } else { outcome.added }),
    }
}

/// ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
pub(crate) fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zadd_generic(ctx, args, false)
}

/// ZINCRBY key increment member
fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zadd_generic(ctx, args, true)
}

/// Removes `members`; returns how many were present.
fn op_rem(db: &mut Db, key: &[u8], members: &[Bytes], now_ms: u64) -> Result<usize, Frame> {
    let Some(zset) = write(db, key, now_ms)? else { return Ok(0) };
    let removed = members.iter().filter(|m| zset.remove(m).is_some()).count();
    delete_if_empty(db, key, now_ms);
    db.add_changes(removed as u64);
    Ok(removed)
}

/// ZREM key member [member ...]
fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let removed = op_rem(ctx.db(), &args[1], &args[2..], now);
    notify_removed(ctx, &args[1], matches!(removed, Ok(n) if n > 0), "zrem");
    ctx::reply(removed, args::int)
}

// ---- ZCARD, ZSCORE, ZMSCORE, ZRANK ------------------------------------------------------

/// ZCARD key
fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(read(ctx.db(), &args[1], now).map(|z| z.map_or(0, |z| z.len())), args::int)
}

/// ZSCORE key member
fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(read(ctx.db(), &args[1], now).map(|z| z.and_then(|z| z.score(&args[2]))), |s| s.map_or(Frame::Null, Frame::Double))
}

/// ZMSCORE key member [member ...]
fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(read(ctx.db(), &args[1], now), |z| {
        Frame::Array(args[2..].iter().map(|m| z.as_ref().and_then(|z| z.score(m)).map_or(Frame::Null, Frame::Double)).collect())
    })
}

fn zrank_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool, name: &str) -> Frame {
    if args.len() > 4 {
        return errors::wrong_arity(name);
    }
    let withscore = match args.get(3) {
        None => false,
        Some(opt) if is(opt, "withscore") => true,
        Some(_) => return errors::syntax(),
    };
    let missing = if withscore { Frame::NullArray } else { Frame::Null };
    let now = ctx.now_ms;
    let zset = match read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) => return missing,
        Ok(Some(z)) => z,
    };
    match zset.rank(&args[2]) {
        None => missing,
        Some((rank, score)) => {
            let rank = if rev { zset.len() - 1 - rank } else { rank };
            if withscore {
                Frame::Array(vec![args::int(rank), Frame::Double(score)])
            } else {
                args::int(rank)
            }
        }
    }
}

/// ZRANK key member [WITHSCORE]
fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrank_generic(ctx, args, false, "zrank")
}

/// ZREVRANK key member [WITHSCORE]
fn zrevrank(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrank_generic(ctx, args, true, "zrevrank")
}

// ---- Ranges ------------------------------------------------------------------------------

/// What a range selects.
#[derive(Clone, Debug)]
pub enum RangeKind {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed ZRANGE-style request.
#[derive(Clone, Debug)]
pub struct RangeSpec {
    pub kind: RangeKind,
    pub rev: bool,
    pub offset: i64,
    /// Negative: no limit.
    pub limit: i64,
}

/// The ascending rank to start from, the direction, and how many members a range selects.
fn select(zset: &ZSet, spec: &RangeSpec) -> (usize, usize) {
    let len = zset.len() as i64;
    match &spec.kind {
        RangeKind::Rank(start, end) => {
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += len;
            }
            if end < 0 {
                end += len;
            }
            start = start.max(0);
            if start > end || start >= len {
                return (0, 0);
            }
            end = end.min(len - 1);
            let count = (end - start + 1) as usize;
            let first = if spec.rev { len - 1 - start } else { start };
            (first as usize, count)
        }
        RangeKind::Score(_) | RangeKind::Lex(_) => {
            let (lo, hi) = match &spec.kind {
                RangeKind::Score(r) => (zset.count_while(|s, _| r.below_min(s)), zset.count_while(|s, _| r.within_max(s))),
                RangeKind::Lex(r) => (zset.count_while(|_, m| r.below_min(m)), zset.count_while(|_, m| r.within_max(m))),
                RangeKind::Rank(..) => unreachable!("handled above"),
            };
            let in_range = hi.saturating_sub(lo);
            if spec.offset < 0 || spec.offset as u64 >= in_range as u64 {
                return (0, 0);
            }
            let offset = spec.offset as usize;
            let mut count = in_range - offset;
            if spec.limit >= 0 {
                count = count.min(usize::try_from(spec.limit).unwrap_or(usize::MAX));
            }
            let first = if spec.rev { hi - 1 - offset } else { lo + offset };
            (first, count)
        }
    }
}

/// The members a range selects, in reply order; None for a missing key.
pub fn op_range(db: &mut Db, key: &[u8], spec: &RangeSpec, now_ms: u64) -> Result<Option<Items>, Frame> {
    let Some(zset) = read(db, key, now_ms)? else { return Ok(None) };
    let (first, count) = select(zset, spec);
    Ok(Some(collect(zset.iter_from(first, spec.rev).take(count))))
}

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Parses a ZRANGE-family request whose key is at `key_at` (Redis's zrangeGenericCommand):
/// (spec, withscores).
fn parse_range(args: &[Bytes], key_at: usize, fixed: RangeType, fixed_rev: Option<bool>, store: bool) -> Result<(RangeSpec, bool), Frame> {
    let mut range_type = fixed;
    let mut rev = fixed_rev;
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = key_at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let opt = &args[j];
        if !store && is(opt, "withscores") {
            withscores = true;
        } else if is(opt, "limit") && left >= 2 {
            offset = args::parse_i64(&args[j + 1])?;
            limit = args::parse_i64(&args[j + 2])?;
            j += 2;
        } else if fixed_rev.is_none() && rev.is_none() && is(opt, "rev") {
            rev = Some(true);
        } else if range_type == RangeType::Auto && is(opt, "bylex") {
            range_type = RangeType::Lex;
        } else if range_type == RangeType::Auto && is(opt, "byscore") {
            range_type = RangeType::Score;
        } else {
            return Err(errors::syntax());
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if range_type == RangeType::Auto {
        range_type = RangeType::Rank;
    }
    // Redis checks the count, not the option: LIMIT 5 -1 passes with a rank range.
    if limit != -1 && range_type == RangeType::Rank {
        return Err(errors::error(LIMIT_NEEDS_BY));
    }
    if withscores && range_type == RangeType::Lex {
        return Err(errors::error(WITHSCORES_BYLEX));
    }
    let (mut min, mut max) = (&args[key_at + 1], &args[key_at + 2]);
    if rev && range_type != RangeType::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let kind = match range_type {
        RangeType::Rank | RangeType::Auto => RangeKind::Rank(args::parse_i64(min)?, args::parse_i64(max)?),
        RangeType::Score => RangeKind::Score(ScoreRange::parse(min, max).ok_or_else(|| errors::error(RANGE_NOT_FLOAT))?),
        RangeType::Lex => RangeKind::Lex(LexRange::parse(min, max).ok_or_else(|| errors::error(RANGE_NOT_LEX))?),
    };
    Ok((RangeSpec { kind, rev, offset, limit }, withscores))
}

fn range_generic(ctx: &mut Ctx, args: &[Bytes], fixed: RangeType, fixed_rev: Option<bool>) -> Frame {
    let (spec, withscores) = match parse_range(args, 1, fixed, fixed_rev, false) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let (now, proto) = (ctx.now_ms, ctx.proto);
    match read(ctx.db(), &args[1], now) {
        Err(e) => e,
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(zset)) => {
            let (first, count) = select(zset, &spec);
            range_reply(zset.iter_from(first, spec.rev).take(count), count, withscores, proto)
        }
    }
}

/// ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_generic(ctx, args, RangeType::Auto, None)
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
fn zrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_generic(ctx, args, RangeType::Score, Some(false))
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
fn zrevrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_generic(ctx, args, RangeType::Score, Some(true))
}

/// ZRANGEBYLEX key min max [LIMIT offset count]
fn zrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_generic(ctx, args, RangeType::Lex, Some(false))
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count]
fn zrevrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_generic(ctx, args, RangeType::Lex, Some(true))
}

/// ZREVRANGE key start stop [WITHSCORES]
fn zrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    range_generic(ctx, args, RangeType::Rank, Some(true))
}

/// ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]
fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (spec, _) = match parse_range(args, 2, RangeType::Auto, None, true) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    match op_range(ctx.db(), &args[2], &spec, now) {
        Err(e) => e,
        Ok(items) => args::int(store(ctx, &args[1], items.unwrap_or_default(), false, "zrangestore")),
    }
}

pub(crate) fn shard_of(coordinator: &dyn Coordinator, key: &[u8]) -> usize {
    shoal_store::slot::key_shard(key, coordinator.shard_count())
}

fn zrangestore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let (spec, _) = match parse_range(&args, 2, RangeType::Auto, None, true) {
            Ok(parsed) => parsed,
            Err(e) => return e,
        };
        let src = args[2].clone();
        let items = ctx::hop_one(coordinator, shard_of(coordinator, &src), move |ctx: &mut Ctx| {
            let now = ctx.now_ms;
            op_range(ctx.db(), &src, &spec, now)
        })
        .await;
        let items = match items {
            Err(e) => return e,
            Ok(items) => items.unwrap_or_default(),
        };
        let dst = args[1].clone();
        let stored = ctx::hop_one(coordinator, shard_of(coordinator, &dst), move |ctx: &mut Ctx| store(ctx, &dst, items, false, "zrangestore")).await;
        args::int(stored)
    }
    .boxed_local()
}

/// How many members a range selects.
fn op_count(db: &mut Db, key: &[u8], spec: &RangeSpec, now_ms: u64) -> Result<usize, Frame> {
    Ok(read(db, key, now_ms)?.map_or(0, |z| select(z, spec).1))
}

/// ZCOUNT key min max
fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(range) = ScoreRange::parse(&args[2], &args[3]) else { return errors::error(RANGE_NOT_FLOAT) };
    let spec = RangeSpec { kind: RangeKind::Score(range), rev: false, offset: 0, limit: -1 };
    let now = ctx.now_ms;
    ctx::reply(op_count(ctx.db(), &args[1], &spec, now), args::int)
}

/// ZLEXCOUNT key min max
fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(range) = LexRange::parse(&args[2], &args[3]) else { return errors::error(RANGE_NOT_LEX) };
    let spec = RangeSpec { kind: RangeKind::Lex(range), rev: false, offset: 0, limit: -1 };
    let now = ctx.now_ms;
    ctx::reply(op_count(ctx.db(), &args[1], &spec, now), args::int)
}

/// Removes the members a range selects; returns how many.
fn op_remove_range(db: &mut Db, key: &[u8], spec: &RangeSpec, now_ms: u64) -> Result<usize, Frame> {
    let Some(zset) = write(db, key, now_ms)? else { return Ok(0) };
    let (first, count) = select(zset, spec);
    let removed = zset.remove_range(first, count);
    delete_if_empty(db, key, now_ms);
    db.add_changes(removed as u64);
    Ok(removed)
}

fn remrange_generic(ctx: &mut Ctx, args: &[Bytes], kind: Result<RangeKind, Frame>) -> Frame {
    let kind = match kind {
        Ok(kind) => kind,
        Err(e) => return e,
    };
    let event = match kind {
        RangeKind::Rank(..) => "zremrangebyrank",
        RangeKind::Score(_) => "zremrangebyscore",
        RangeKind::Lex(_) => "zremrangebylex",
    };
    let spec = RangeSpec { kind, rev: false, offset: 0, limit: -1 };
    let now = ctx.now_ms;
    let removed = op_remove_range(ctx.db(), &args[1], &spec, now);
    notify_removed(ctx, &args[1], matches!(removed, Ok(n) if n > 0), event);
    ctx::reply(removed, args::int)
}

/// ZREMRANGEBYRANK key start stop
fn zremrangebyrank(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let kind = args::parse_i64(&args[2]).and_then(|start| Ok(RangeKind::Rank(start, args::parse_i64(&args[3])?)));
    remrange_generic(ctx, args, kind)
}

/// ZREMRANGEBYSCORE key min max
fn zremrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let kind = ScoreRange::parse(&args[2], &args[3]).map(RangeKind::Score).ok_or_else(|| errors::error(RANGE_NOT_FLOAT));
    remrange_generic(ctx, args, kind)
}

/// ZREMRANGEBYLEX key min max
fn zremrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let kind = LexRange::parse(&args[2], &args[3]).map(RangeKind::Lex).ok_or_else(|| errors::error(RANGE_NOT_LEX));
    remrange_generic(ctx, args, kind)
}

// ---- Pops ----------------------------------------------------------------------------------

/// Pops up to `count` members from the low (`max` false) or high end of the sorted set at
/// `key`, deleting the key when it empties: None for a missing key, WRONGTYPE for another
/// type. The synchronous half of ZPOPMIN/ZPOPMAX/ZMPOP and of their blocking forms.
pub fn op_pop(db: &mut Db, key: &[u8], max: bool, count: usize, now_ms: u64) -> Result<Option<Vec<(Bytes, f64)>>, Frame> {
    let Some(zset) = write(db, key, now_ms)? else { return Ok(None) };
    let count = count.min(zset.len());
    let items = if max { collect(zset.iter_from(zset.len().saturating_sub(1), true).take(count)) } else { collect(zset.iter().take(count)) };
    if max {
        zset.remove_range(zset.len() - count, count);
    } else {
        zset.remove_range(0, count);
    }
    delete_if_empty(db, key, now_ms);
    // One change per member popped, as Redis counts ZPOPMIN (and a served BZPOPMIN).
    db.add_changes(items.len() as u64);
    Ok(Some(items))
}

/// [`op_pop`] with its events: `zpopmin` or `zpopmax` when it popped, then `del` if the
/// sorted set emptied.
pub fn pop_notifying(ctx: &mut Ctx, key: &[u8], max: bool, count: usize) -> Result<Option<Vec<(Bytes, f64)>>, Frame> {
    let now = ctx.now_ms;
    let popped = op_pop(ctx.db(), key, max, count, now);
    notify_removed(ctx, key, matches!(&popped, Ok(Some(items)) if !items.is_empty()), if max { "zpopmax" } else { "zpopmin" });
    popped
}

fn zpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Frame {
    if args.len() > 3 {
        return errors::syntax();
    }
    let count = match args.get(2) {
        None => None,
        Some(arg) => match parse_positive(arg, MUST_BE_POSITIVE) {
            Ok(n) => Some(n as usize),
            Err(e) => return e,
        },
    };
    let (now, proto) = (ctx.now_ms, ctx.proto);
    // The key's type is checked before a count of 0 answers.
    match write(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) => return Frame::Array(Vec::new()),
        Ok(Some(_)) => {}
    }
    let items = match pop_notifying(ctx, &args[1], max, count.unwrap_or(1)) {
        Err(e) => return e,
        Ok(items) => items.unwrap_or_default(),
    };
    items_reply(items, true, if count.is_some() { proto } else { Protocol::Resp2 })
}

/// ZPOPMIN key [count]
fn zpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zpop_generic(ctx, args, false)
}

/// ZPOPMAX key [count]
fn zpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zpop_generic(ctx, args, true)
}

/// A parsed ZMPOP: (keys, max, count).
fn parse_zmpop(args: &[Bytes]) -> Result<(Vec<Bytes>, bool, usize), Frame> {
    let numkeys = match shoal_store::value::parse_canonical_i64(&args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(errors::error(NUMKEYS_POSITIVE)),
    };
    let where_at = 2u64.saturating_add(numkeys);
    if where_at >= args.len() as u64 {
        return Err(errors::syntax());
    }
    let where_at = where_at as usize;
    let max = if is(&args[where_at], "min") {
        false
    } else if is(&args[where_at], "max") {
        true
    } else {
        return Err(errors::syntax());
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            match shoal_store::value::parse_canonical_i64(&args[j + 1]) {
                Some(n) if n >= 1 => count = Some(n as usize),
                _ => return Err(errors::error(COUNT_POSITIVE)),
            }
            j += 2;
        } else {
            return Err(errors::syntax());
        }
    }
    Ok((args[2..where_at].to_vec(), max, count.unwrap_or(1)))
}

/// The ZMPOP reply: [key, [[member, score], ...]], or a null array.
/// (The same nested shape in RESP2 and RESP3.)
fn zmpop_reply(popped: Option<(Bytes, Items)>) -> Frame {
    match popped {
        None => Frame::NullArray,
        Some((key, items)) => {
            let pairs = items.into_iter().map(|(m, s)| Frame::Array(vec![Frame::Bulk(m), Frame::Double(s)])).collect();
            Frame::Array(vec![Frame::Bulk(key), Frame::Array(pairs)])
        }
    }
}

/// What a key holds, for the commands that scan keys in order.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Nothing,
    ZSet,
    Other,
}

fn op_held(db: &mut Db, key: &[u8], now_ms: u64) -> Held {
    match db.lookup_write(key, now_ms) {
        None => Held::Nothing,
        Some(entry) => match entry.value {
            Value::ZSet(_) => Held::ZSet,
            _ => Held::Other,
        },
    }
}

/// ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]
fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (keys, max, count) = match parse_zmpop(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    for key in keys {
        match pop_notifying(ctx, &key, max, count) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(items)) => return zmpop_reply(Some((key, items))),
        }
    }
    zmpop_reply(None)
}

fn zmpop_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let (keys, max, count) = match parse_zmpop(&args) {
            Ok(parsed) => parsed,
            Err(e) => return e,
        };
        let held = gather(coordinator, &keys, |ctx, keys| {
            let now = ctx.now_ms;
            keys.iter().map(|k| op_held(ctx.db(), k, now)).collect()
        })
        .await;
        let Some(at) = held.iter().position(|h| *h != Held::Nothing) else { return Frame::NullArray };
        if held[at] == Held::Other {
            return errors::wrong_type();
        }
        let key = keys[at].clone();
        let popped = ctx::hop_one(coordinator, shard_of(coordinator, &key), move |ctx: &mut Ctx| pop_notifying(ctx, &key, max, count)).await;
        match popped {
            Err(e) => e,
            Ok(items) => zmpop_reply(items.map(|items| (keys[at].clone(), items))),
        }
    }
    .boxed_local()
}

/// Runs `op` on each key's core with that core's keys (in request order) and returns the
/// per-key results in the order of `keys`.
async fn gather<T, F>(coordinator: &dyn Coordinator, keys: &[Bytes], op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(&mut Ctx, Vec<Bytes>) -> Vec<T> + Clone + Send + 'static,
{
    let groups = ctx::group_by_shard(coordinator.shard_count(), keys.iter().cloned().enumerate());
    let mut slots: Vec<Option<T>> = (0..keys.len()).map(|_| None).collect();
    for (indexes, results) in ctx::hop_per_shard(coordinator, groups, op).await {
        for (index, result) in indexes.into_iter().zip(results) {
            slots[index] = Some(result);
        }
    }
    slots.into_iter().map(|s| s.expect("every key has a result")).collect()
}

// ---- ZRANDMEMBER -------------------------------------------------------------------------

/// `count` members: distinct when `count` >= 0 (the whole set, in order, when it asks for at
/// least as many as there are), with repetitions otherwise.
fn op_randmember(ctx: &mut Ctx, key: &[u8], count: i64) -> Result<Option<Items>, Frame> {
    let now = ctx.now_ms;
    let shard = &mut *ctx.shard;
    let Some(zset) = read(&mut shard.dbs[ctx.db_index], key, now)? else { return Ok(None) };
    let rng = &mut shard.rng;
    let len = zset.len();
    let pick = |rank: usize| {
        let (m, s) = zset.get(rank).expect("rank within the set");
        (bytes(m), s)
    };
    if count < 0 {
        let n = count.unsigned_abs() as usize;
        return Ok(Some((0..n).map(|_| pick(rng.random_range(0..len))).collect()));
    }
    let n = count as usize;
    if n >= len {
        return Ok(Some(collect(zset.iter())));
    }
    // Distinct ranks: a partial shuffle of all of them when many are wanted, sampling with
    // rejection otherwise.
    let ranks: Vec<usize> = if n * 3 > len {
        let mut all: Vec<usize> = (0..len).collect();
        for i in 0..n {
            let j = rng.random_range(i..len);
            all.swap(i, j);
        }
        all.truncate(n);
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut ranks = Vec::with_capacity(n);
        while ranks.len() < n {
            let r = rng.random_range(0..len);
            if seen.insert(r) {
                ranks.push(r);
            }
        }
        ranks
    };
    Ok(Some(ranks.into_iter().map(pick).collect()))
}

/// ZRANDMEMBER key [count [WITHSCORES]]
fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    if args.len() == 2 {
        let shard = &mut *ctx.shard;
        let zset = match read(&mut shard.dbs[ctx.db_index], &args[1], now) {
            Err(e) => return e,
            Ok(None) => return Frame::Null,
            Ok(Some(z)) => z,
        };
        let rank = shard.rng.random_range(0..zset.len());
        return Frame::Bulk(bytes(zset.get(rank).expect("rank within the set").0));
    }
    let count = match args::parse_i64(&args[2]) {
        Err(e) => return e,
        Ok(i64::MIN) => return errors::error(RANDMEMBER_RANGE),
        Ok(n) => n,
    };
    let withscores = match args.len() {
        3 => false,
        4 if is(&args[3], "withscores") => true,
        _ => return errors::syntax(),
    };
    if withscores && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return errors::error(OUT_OF_RANGE);
    }
    if count < 0 && count.unsigned_abs() > RANDMEMBER_REPEATS_MAX {
        // Check the key first, as Redis would answer for a missing key or another type.
        let db = ctx.db();
        match read(db, &args[1], now) {
            Err(e) => return e,
            Ok(None) => return Frame::Array(Vec::new()),
            Ok(Some(_)) => return errors::error(OUT_OF_RANGE),
        }
    }
    let proto = ctx.proto;
    match op_randmember(ctx, &args[1], count) {
        Err(e) => e,
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(items)) => items_reply(items, withscores, proto),
    }
}

// ---- ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD ------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Aggregate {
    Sum,
    Min,
    Max,
    /// Redis 8.8: the input scores are ignored; each input counts its weight (1 by default)
    /// for every member it holds, summed.
    Count,
}

impl Aggregate {
    /// The score a member of an input brings before its weight: its own, or 1 for COUNT.
    fn input_score(self, score: f64) -> f64 {
        if self == Aggregate::Count {
            1.0
        } else {
            score
        }
    }
}

/// One input of a set operation, read on its core.
pub enum Source {
    Missing,
    WrongType,
    Members(Items),
}

/// A parsed set operation request.
struct SetOpRequest {
    keys: Vec<Bytes>,
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: usize,
    /// The option error, reported after the keys' types as Redis does.
    option_error: Option<Frame>,
}

/// The members of a plain set as sorted set members with score 1 (ZUNION and friends take
/// sets as inputs, as Redis does).
fn set_members(set: &Set) -> Items {
    set.iter().map(|m| (m.to_bytes(), 1.0)).collect()
}

/// Copies each key's members for a set operation.
fn op_sources(db: &mut Db, keys: &[Bytes], now_ms: u64) -> Vec<Source> {
    keys.iter()
        .map(|key| match db.lookup_read(key, now_ms) {
            None => Source::Missing,
            Some(entry) => match &entry.value {
                Value::ZSet(z) => Source::Members(collect(z.iter())),
                Value::Set(s) => Source::Members(set_members(s)),
                _ => Source::WrongType,
            },
        })
        .collect()
}

/// Parses a set operation with numkeys at `numkeys_at` (Redis's zunionInterDiffGenericCommand).
fn parse_setop(args: &[Bytes], numkeys_at: usize, op: SetOp, store: bool, cardinality_only: bool, name: &str) -> Result<SetOpRequest, Frame> {
    let setnum = args::parse_i64(&args[numkeys_at])?;
    if setnum < 1 {
        return Err(errors::error(&format!("ERR at least 1 input key is needed for '{name}' command")));
    }
    if setnum as u64 > (args.len() - numkeys_at - 1) as u64 {
        return Err(errors::syntax());
    }
    let setnum = setnum as usize;
    let first = numkeys_at + 1;
    let keys = args[first..first + setnum].to_vec();
    let mut request = SetOpRequest { keys, weights: vec![1.0; setnum], aggregate: Aggregate::Sum, withscores: false, limit: 0, option_error: None };
    let mut j = first + setnum;
    let result: Result<(), Frame> = (|| {
        while j < args.len() {
            let remaining = args.len() - j;
            let opt = &args[j];
            if op != SetOp::Diff && !cardinality_only && remaining > setnum && is(opt, "weights") {
                j += 1;
                for i in 0..setnum {
                    request.weights[i] = strict_f64(&args[j]).ok_or_else(|| errors::error(WEIGHT_NOT_FLOAT))?;
                    j += 1;
                }
            } else if op != SetOp::Diff && !cardinality_only && remaining >= 2 && is(opt, "aggregate") {
                let value = &args[j + 1];
                request.aggregate = if is(value, "sum") {
                    Aggregate::Sum
                } else if is(value, "min") {
                    Aggregate::Min
                } else if is(value, "max") {
                    Aggregate::Max
                } else if is(value, "count") {
                    Aggregate::Count
                } else {
                    return Err(errors::syntax());
                };
                j += 2;
            } else if !store && !cardinality_only && is(opt, "withscores") {
                request.withscores = true;
                j += 1;
            } else if cardinality_only && remaining >= 2 && is(opt, "limit") {
                request.limit = parse_positive(&args[j + 1], LIMIT_NEGATIVE)? as usize;
                j += 2;
            } else {
                return Err(errors::syntax());
            }
        }
        Ok(())
    })();
    request.option_error = result.err();
    Ok(request)
}

fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum | Aggregate::Count => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value;
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value;
            }
        }
    }
}

/// Computes a set operation over the inputs (in key order), Redis's way: inputs sorted by
/// size (stably) for union and intersection, so sums add up in the same order.
fn compute(op: SetOp, request: &SetOpRequest, sources: Vec<Source>) -> Items {
    use std::collections::HashMap;
    let mut inputs: Vec<(Items, f64)> = sources
        .into_iter()
        .zip(&request.weights)
        .map(|(s, &w)| match s {
            Source::Members(items) => (items, w),
            _ => (Vec::new(), w),
        })
        .collect();
    match op {
        SetOp::Union => {
            inputs.sort_by_key(|(items, _)| items.len());
            let mut result: HashMap<Bytes, f64> = HashMap::new();
            for (items, weight) in inputs {
                for (member, score) in items {
                    let mut value = weight * request.aggregate.input_score(score);
                    if value.is_nan() {
                        value = 0.0;
                    }
                    match result.get_mut(&member) {
                        Some(target) => aggregate(target, value, request.aggregate),
                        None => {
                            result.insert(member, value);
                        }
                    }
                }
            }
            result.into_iter().collect()
        }
        SetOp::Inter => {
            inputs.sort_by_key(|(items, _)| items.len());
            if inputs.is_empty() || inputs[0].0.is_empty() {
                return Vec::new();
            }
            let maps: Vec<HashMap<&[u8], f64>> = inputs[1..].iter().map(|(items, _)| items.iter().map(|(m, s)| (m.as_ref(), *s)).collect()).collect();
            let mut result = Vec::new();
            'members: for (member, score) in &inputs[0].0 {
                let mut value = inputs[0].1 * request.aggregate.input_score(*score);
                if value.is_nan() {
                    value = 0.0;
                }
                for (map, (_, weight)) in maps.iter().zip(&inputs[1..]) {
                    match map.get(member.as_ref()) {
                        Some(s) => aggregate(&mut value, request.aggregate.input_score(*s) * weight, request.aggregate),
                        None => continue 'members,
                    }
                }
                result.push((member.clone(), value));
                if request.limit > 0 && result.len() >= request.limit {
                    break;
                }
            }
            result
        }
        SetOp::Diff => {
            let mut inputs = inputs.into_iter();
            let Some((first, _)) = inputs.next() else { return Vec::new() };
            let others: Vec<std::collections::HashSet<Bytes>> = inputs.map(|(items, _)| items.into_iter().map(|(m, _)| m).collect()).collect();
            first.into_iter().filter(|(m, _)| !others.iter().any(|o| o.contains(m))).collect()
        }
    }
}

/// The ascending order of a result.
fn sort_items(items: &mut Items) {
    items.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("no NaN score").then_with(|| a.0.cmp(&b.0)));
}

/// Which set-operation command runs.
#[derive(Clone, Copy)]
struct SetOpCommand {
    op: SetOp,
    store: bool,
    cardinality_only: bool,
    name: &'static str,
}

impl SetOpCommand {
    fn numkeys_at(&self) -> usize {
        if self.store {
            2
        } else {
            1
        }
    }

    fn parse(&self, args: &[Bytes]) -> Result<SetOpRequest, Frame> {
        parse_setop(args, self.numkeys_at(), self.op, self.store, self.cardinality_only, self.name)
    }

    /// The reply, or the result to store, once the inputs are known.
    fn finish(&self, request: &SetOpRequest, sources: Vec<Source>) -> Result<Items, Frame> {
        if sources.iter().any(|s| matches!(s, Source::WrongType)) {
            return Err(errors::wrong_type());
        }
        if let Some(e) = &request.option_error {
            return Err(e.clone());
        }
        let mut items = compute(self.op, request, sources);
        sort_items(&mut items);
        Ok(items)
    }

    fn reply(&self, request: &SetOpRequest, items: Items, proto: Protocol) -> Frame {
        if self.cardinality_only {
            args::int(items.len())
        } else {
            items_reply(items, request.withscores, proto)
        }
    }

    fn local(&self, ctx: &mut Ctx, args: &[Bytes]) -> Frame {
        let request = match self.parse(args) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let (now, proto) = (ctx.now_ms, ctx.proto);
        let sources = op_sources(ctx.db(), &request.keys, now);
        let items = match self.finish(&request, sources) {
            Ok(items) => items,
            Err(e) => return e,
        };
        if self.store {
            args::int(store(ctx, &args[1], items, false, self.name))
        } else {
            self.reply(&request, items, proto)
        }
    }

    async fn multi(self, coordinator: &dyn Coordinator, args: Vec<Bytes>) -> Frame {
        let request = match self.parse(&args) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let sources = gather(coordinator, &request.keys, |ctx, keys| {
            let now = ctx.now_ms;
            op_sources(ctx.db(), &keys, now)
        })
        .await;
        let proto = coordinator.proto();
        let items = match self.finish(&request, sources) {
            Ok(items) => items,
            Err(e) => return e,
        };
        if self.store {
            let dst = args[1].clone();
            let name = self.name;
            let stored = ctx::hop_one(coordinator, shard_of(coordinator, &dst), move |ctx: &mut Ctx| store(ctx, &dst, items, false, name)).await;
            args::int(stored)
        } else {
            self.reply(&request, items, proto)
        }
    }
}

const ZUNION: SetOpCommand = SetOpCommand { op: SetOp::Union, store: false, cardinality_only: false, name: "zunion" };
const ZUNIONSTORE: SetOpCommand = SetOpCommand { op: SetOp::Union, store: true, cardinality_only: false, name: "zunionstore" };
const ZINTER: SetOpCommand = SetOpCommand { op: SetOp::Inter, store: false, cardinality_only: false, name: "zinter" };
const ZINTERSTORE: SetOpCommand = SetOpCommand { op: SetOp::Inter, store: true, cardinality_only: false, name: "zinterstore" };
const ZINTERCARD: SetOpCommand = SetOpCommand { op: SetOp::Inter, store: false, cardinality_only: true, name: "zintercard" };
const ZDIFF: SetOpCommand = SetOpCommand { op: SetOp::Diff, store: false, cardinality_only: false, name: "zdiff" };
const ZDIFFSTORE: SetOpCommand = SetOpCommand { op: SetOp::Diff, store: true, cardinality_only: false, name: "zdiffstore" };

/// ZUNION numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
fn zunion(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZUNION.local(ctx, args)
}

fn zunion_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZUNION.multi(coordinator, args).boxed_local()
}

/// ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]
fn zunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZUNIONSTORE.local(ctx, args)
}

fn zunionstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZUNIONSTORE.multi(coordinator, args).boxed_local()
}

/// ZINTER numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
fn zinter(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZINTER.local(ctx, args)
}

fn zinter_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZINTER.multi(coordinator, args).boxed_local()
}

/// ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]
fn zinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZINTERSTORE.local(ctx, args)
}

fn zinterstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZINTERSTORE.multi(coordinator, args).boxed_local()
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZINTERCARD.local(ctx, args)
}

fn zintercard_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZINTERCARD.multi(coordinator, args).boxed_local()
}

/// ZDIFF numkeys key [key ...] [WITHSCORES]
fn zdiff(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZDIFF.local(ctx, args)
}

fn zdiff_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZDIFF.multi(coordinator, args).boxed_local()
}

/// ZDIFFSTORE destination numkeys key [key ...]
fn zdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ZDIFFSTORE.local(ctx, args)
}

fn zdiffstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    ZDIFFSTORE.multi(coordinator, args).boxed_local()
}

// ---- ZSCAN ---------------------------------------------------------------------------------

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match args::parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let zset = match read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) => return Frame::Array(vec![args::bulk_str("0"), Frame::Array(Vec::new())]),
        Ok(Some(z)) => z,
    };
    let (pattern, count) = match args::parse_scan_options(&args[3..], args::ScanExtras::default()) {
        Ok(parsed) => (parsed.pattern, parsed.count),
        Err(e) => return e,
    };
    let mut found: Items = Vec::new();
    let mut cursor = cursor;
    // Redis's budget: at most COUNT * 10 buckets after the first, against sparse tables.
    let mut steps_left = (count as u64).saturating_mul(10);
    loop {
        cursor = zset.scan_step(cursor, |m, s| found.push((bytes(m), s)));
        if cursor == 0 || steps_left == 0 || found.len() >= count {
            break;
        }
        steps_left -= 1;
    }
    let mut flat = Vec::with_capacity(found.len() * 2);
    for (member, score) in found {
        if pattern.as_ref().is_none_or(|p| shoal_glob::matches(p, &member)) {
            flat.push(Frame::Bulk(member));
            flat.push(args::bulk_str(&shoal_resp::format_double(score)));
        }
    }
    Frame::Array(vec![args::bulk(Bytes::copy_from_slice(itoa::Buffer::new().format(cursor).as_bytes())), Frame::Array(flat)])
}

#[cfg(test)]
mod tests;

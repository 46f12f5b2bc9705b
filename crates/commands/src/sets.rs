//! The set family: SADD, SINTER and friends (Redis's `t_set.c`).
//!
//! Replies and errors follow Redis 7 byte for byte; the encodings (intset, listpack,
//! hashtable) follow Redis 7.2's rules, which [`shoal_store::types::set`] implements.
//!
//! Multi-key commands (SINTER*, SUNION*, SDIFF*, SMOVE) over keys on several cores run as
//! one transaction: a first hop reads (copies of) the sets from every core, the coordinator
//! computes, and a second hop writes the destination on its core. On one core they borrow
//! the sets in place instead of copying them.
//!
//! Deliberate bound: SRANDMEMBER with a negative count repeats members, so its reply is not
//! bounded by the set; past [`REPEATED_SAMPLES_MAX`] members it is refused (Redis would
//! build the reply until memory runs out).

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::{AggregateKind, Encoded, Frame};
use shoal_store::types::set::{self as set_type, Set};
use shoal_store::types::Limits;
use shoal_store::{Db, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{self, flags::*, CommandSpec, Handler, KeySpec};

const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
const COUNT_NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
const COUNT_OUT_OF_RANGE: &str = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// The most members SRANDMEMBER with a negative count may ask for (see the module docs).
pub const REPEATED_SAMPLES_MAX: u64 = 1 << 20;
const REPEATED_SAMPLES_TOO_MANY: &str = "ERR value is out of range, value must between -1048576 and 9223372036854775807";

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@set"], group: "set", ..CommandSpec::DEFAULT };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "sadd",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Adds one or more members to a set. Creates the key if it doesn't exist.",
        complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        handler: Handler::Keys { local: sadd, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "srem",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Removes one or more members from a set. Deletes the set if the last member was removed.",
        complexity: "O(N) where N is the number of members to be removed.",
        handler: Handler::Keys { local: srem, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "scard",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the number of members in a set.",
        handler: Handler::Keys { local: scard, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "sismember",
        arity: 3,
        flags: READONLY | FAST,
        summary: "Determines whether a member belongs to a set.",
        handler: Handler::Keys { local: sismember, multi: None },
        members: KeySpec::ONE_MEMBER,
        ..BASE
    },
    CommandSpec {
        name: "smismember",
        arity: -3,
        flags: READONLY | FAST,
        summary: "Determines whether multiple members belong to a set.",
        since: "6.2.0",
        complexity: "O(N) where N is the number of elements being checked for membership",
        handler: Handler::Keys { local: smismember, multi: None },
        members: KeySpec::MEMBERS,
        ..BASE
    },
    CommandSpec {
        name: "smembers",
        arity: 2,
        flags: READONLY,
        summary: "Returns all members of a set.",
        complexity: "O(N) where N is the set cardinality.",
        handler: Handler::Keys { local: smembers, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "srandmember",
        arity: -2,
        flags: READONLY,
        summary: "Get one or multiple random members from a set",
        complexity: "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.",
        handler: Handler::Keys { local: srandmember, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "spop",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        complexity: "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
        handler: Handler::Keys { local: spop, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "smove",
        arity: 4,
        flags: WRITE | FAST,
        keys: KeySpec::TWO,
        summary: "Moves a member from one set to another.",
        handler: Handler::Keys { local: smove, multi: Some(smove_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sinter",
        arity: -2,
        flags: READONLY,
        keys: KeySpec::ALL,
        summary: "Returns the intersect of multiple sets.",
        complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        handler: Handler::Keys { local: sinter, multi: Some(sinter_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sintercard",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the number of members of the intersect of multiple sets.",
        since: "7.0.0",
        complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        handler: Handler::Keys { local: sintercard, multi: Some(sintercard_multi) },
        movable_keys: Some(sintercard_keys),
        ..BASE
    },
    CommandSpec {
        name: "sunioncard",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the number of members of the union of multiple sets.",
        since: "8.10.0",
        complexity: "O(N) where N is the total number of elements in all given sets.",
        handler: Handler::Keys { local: sunioncard, multi: Some(sunioncard_multi) },
        movable_keys: Some(sintercard_keys),
        ..BASE
    },
    CommandSpec {
        name: "sdiffcard",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::NONE,
        summary: "Returns the number of members of the difference between the first set and all successive sets.",
        since: "8.10.0",
        complexity: "O(N) where N is the total number of elements in all given sets.",
        handler: Handler::Keys { local: sdiffcard, multi: Some(sdiffcard_multi) },
        movable_keys: Some(sintercard_keys),
        ..BASE
    },
    CommandSpec {
        name: "sinterstore",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::ALL,
        summary: "Stores the intersect of multiple sets in a key.",
        complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        handler: Handler::Keys { local: sinterstore, multi: Some(sinterstore_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sunion",
        arity: -2,
        flags: READONLY,
        keys: KeySpec::ALL,
        summary: "Returns the union of multiple sets.",
        complexity: "O(N) where N is the total number of elements in all given sets.",
        handler: Handler::Keys { local: sunion, multi: Some(sunion_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sunionstore",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::ALL,
        summary: "Stores the union of multiple sets in a key.",
        complexity: "O(N) where N is the total number of elements in all given sets.",
        handler: Handler::Keys { local: sunionstore, multi: Some(sunionstore_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sdiff",
        arity: -2,
        flags: READONLY,
        keys: KeySpec::ALL,
        summary: "Returns the difference of multiple sets.",
        complexity: "O(N) where N is the total number of elements in all given sets.",
        handler: Handler::Keys { local: sdiff, multi: Some(sdiff_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sdiffstore",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::ALL,
        summary: "Stores the difference of multiple sets in a key.",
        complexity: "O(N) where N is the total number of elements in all given sets.",
        handler: Handler::Keys { local: sdiffstore, multi: Some(sdiffstore_multi) },
        ..BASE
    },
    CommandSpec {
        name: "sscan",
        arity: -3,
        flags: READONLY,
        summary: "Iterates over members of a set.",
        since: "2.8.0",
        complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        handler: Handler::Keys { local: sscan, multi: None },
        ..BASE
    },
];

// ---- lookups ------------------------------------------------------------------------------

/// The set at `key` for reading (counts a hit or a miss): None when absent, WRONGTYPE for
/// another type.
fn read_set<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a Set>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Set(set) => Ok(Some(set)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// The set at `key` for writing: None when absent, WRONGTYPE for another type.
fn write_set<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut Set>, Frame> {
    match db.lookup_write(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::Set(set) => Ok(Some(set)),
            _ => Err(errors::wrong_type()),
        },
    }
}

fn bulks(members: Vec<Bytes>) -> Vec<Frame> {
    members.into_iter().map(Frame::Bulk).collect()
}

// ---- SADD, SREM, SCARD, SISMEMBER, SMISMEMBER, SMEMBERS -----------------------------------

/// Adds `members` to the set at `key`, creating it; returns how many were new.
pub fn op_add(db: &mut Db, key: &[u8], members: &[Bytes], limits: &Limits, now_ms: u64) -> Result<usize, Frame> {
    debug_assert!(!members.is_empty(), "SADD's arity asks for a member");
    let mut added = 0;
    match write_set(db, key, now_ms)? {
        Some(set) => {
            set.maybe_convert(members.len(), limits);
            for member in members {
                added += set.insert(member, limits) as usize;
            }
        }
        None => {
            let mut set = Set::create(&members[0], members.len(), limits);
            for member in members {
                added += set.insert(member, limits) as usize;
            }
            db.set(key, Value::Set(set), now_ms);
        }
    }
    db.add_changes(added as u64);
    Ok(added)
}

/// SADD key member [member ...]
fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let added = op_add(ctx.db(), &args[1], &args[2..], &limits, now);
    if matches!(added, Ok(n) if n > 0) {
        ctx.notify(notify::SET, "sadd", &args[1]);
    }
    ctx::reply(added, args::int)
}

/// Removes `members` from the set at `key`, deleting it once empty; returns how many were
/// members.
pub fn op_remove(db: &mut Db, key: &[u8], members: &[Bytes], now_ms: u64) -> Result<usize, Frame> {
    let Some(set) = write_set(db, key, now_ms)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for member in members {
        if set.remove(member) {
            removed += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    if set.is_empty() {
        db.remove(key);
    }
    db.add_changes(removed as u64);
    Ok(removed)
}

/// SREM key member [member ...]
fn srem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let removed = op_remove(ctx.db(), &args[1], &args[2..], now);
    if matches!(removed, Ok(n) if n > 0) {
        ctx.notify(notify::SET, "srem", &args[1]);
        ctx.notify_del_if_gone(&args[1]);
    }
    ctx::reply(removed, args::int)
}

/// SCARD key
fn scard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(read_set(ctx.db(), &args[1], now).map(|set| set.map_or(0, |s| s.len())), args::int)
}

/// Whether each of `members` belongs to the set at `key` (an absent key is an empty set).
pub fn op_is_member(db: &mut Db, key: &[u8], members: &[Bytes], now_ms: u64) -> Result<Vec<bool>, Frame> {
    let set = read_set(db, key, now_ms)?;
    Ok(members.iter().map(|m| set.as_ref().is_some_and(|s| s.contains(m))).collect())
}

/// SISMEMBER key member
fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_is_member(ctx.db(), &args[1], &args[2..3], now), |found| args::int(found[0] as i64))
}

/// SMISMEMBER key member [member ...]
fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_is_member(ctx.db(), &args[1], &args[2..], now), |found| Frame::Array(found.into_iter().map(|f| args::int(f as i64)).collect()))
}

/// SMEMBERS key
///
/// Encoded straight from the set: no copy and no frame per member.
fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, proto) = (ctx.now_ms, ctx.proto);
    ctx::reply(read_set(ctx.db(), &args[1], now), |set| match set {
        None => Frame::Set(Vec::new()),
        Some(set) => {
            let mut reply = Encoded::new(AggregateKind::Set, proto, set.len());
            set.iter().for_each(|member| member.with_bytes(|member| reply.push_bulk(member)));
            Frame::Encoded(reply)
        }
    })
}

// ---- SRANDMEMBER, SPOP --------------------------------------------------------------------

/// SRANDMEMBER's count: members wanted, and whether they may repeat.
fn parse_srandmember_count(arg: &[u8]) -> Result<(u64, bool), Frame> {
    let count = args::parse_i64(arg)?;
    if count == i64::MIN {
        return Err(errors::error(COUNT_OUT_OF_RANGE));
    }
    Ok((count.unsigned_abs(), count < 0))
}

/// Random members of the set at `key`: `count` distinct ones (fewer when the set is
/// smaller), or exactly `count` that may repeat.
pub fn op_random_members(ctx: &mut Ctx, key: &[u8], count: u64, repeat: bool) -> Result<Vec<Bytes>, Frame> {
    let now = ctx.now_ms;
    let shard = &mut *ctx.shard;
    let Some(set) = read_set(&mut shard.dbs[ctx.db_index], key, now)? else {
        return Ok(Vec::new());
    };
    let rng = &mut shard.rng;
    if count == 0 {
        return Ok(Vec::new());
    }
    if repeat {
        if count > REPEATED_SAMPLES_MAX {
            return Err(errors::error(REPEATED_SAMPLES_TOO_MANY));
        }
        return Ok((0..count).map(|_| set.random_member(rng).to_bytes()).collect());
    }
    if count >= set.len() as u64 {
        return Ok(set.to_bytes_vec());
    }
    Ok(set.random_distinct(count as usize, rng))
}

/// SRANDMEMBER key [count]
fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return errors::syntax();
    }
    let key = &args[1];
    if args.len() == 3 {
        let (count, repeat) = match parse_srandmember_count(&args[2]) {
            Ok(parsed) => parsed,
            Err(e) => return e,
        };
        return ctx::reply(op_random_members(ctx, key, count, repeat), |members| Frame::Array(bulks(members)));
    }
    let now = ctx.now_ms;
    let shard = &mut *ctx.shard;
    match read_set(&mut shard.dbs[ctx.db_index], key, now) {
        Err(e) => e,
        Ok(None) => Frame::Null,
        Ok(Some(set)) => Frame::Bulk(set.random_member(&mut shard.rng).to_bytes()),
    }
}

/// Removes and returns `count` random members of the set at `key` (None: one, replied as a
/// bulk string), deleting the key once empty.
pub fn op_pop(ctx: &mut Ctx, key: &[u8], count: Option<u64>) -> Result<Vec<Bytes>, Frame> {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let shard = &mut *ctx.shard;
    let db = &mut shard.dbs[ctx.db_index];
    let Some(set) = write_set(db, key, now)? else {
        return Ok(Vec::new());
    };
    let popped = match count {
        Some(0) => return Ok(Vec::new()),
        None => vec![set.pop_random(&mut shard.rng)],
        Some(count) if count >= set.len() as u64 => {
            let all = set.to_bytes_vec();
            db.remove(key);
            db.add_changes(all.len() as u64);
            return Ok(all);
        }
        Some(count) => set.pop_many(count as usize, &limits, &mut shard.rng),
    };
    if set.is_empty() {
        db.remove(key);
    }
    // One change per member popped, as Redis counts SPOP.
    db.add_changes(popped.len() as u64);
    Ok(popped)
}

/// [`op_pop`] with its events: `spop` when it popped, then `del` if the set emptied.
fn pop_notifying(ctx: &mut Ctx, key: &[u8], count: Option<u64>) -> Result<Vec<Bytes>, Frame> {
    let popped = op_pop(ctx, key, count);
    if matches!(&popped, Ok(popped) if !popped.is_empty()) {
        ctx.notify(notify::SET, "spop", key);
        ctx.notify_del_if_gone(key);
    }
    popped
}

/// SPOP key [count]
fn spop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match args.len() {
        2 => ctx::reply(pop_notifying(ctx, &args[1], None), |mut popped| popped.pop().map_or(Frame::Null, Frame::Bulk)),
        3 => match args::parse_i64(&args[2]) {
            Ok(count) if count >= 0 => ctx::reply(pop_notifying(ctx, &args[1], Some(count as u64)), |popped| Frame::Set(bulks(popped))),
            _ => errors::error(COUNT_NOT_POSITIVE),
        },
        _ => errors::syntax(),
    }
}

// ---- SMOVE --------------------------------------------------------------------------------

/// What SMOVE found before changing anything.
#[derive(Debug, PartialEq, Eq)]
enum MoveCheck {
    /// The source does not exist or does not hold the member: reply 0.
    Nothing,
    Move,
}

/// SMOVE's checks on the source: absent (Ok(None)), wrong type, or whether it has `member`.
fn op_source_has(db: &mut Db, source: &[u8], member: &[u8], now_ms: u64) -> Result<Option<bool>, Frame> {
    Ok(write_set(db, source, now_ms)?.map(|set| set.contains(member)))
}

/// SMOVE's check on the destination: WRONGTYPE unless absent or a set.
fn op_destination_ok(db: &mut Db, destination: &[u8], now_ms: u64) -> Result<(), Frame> {
    write_set(db, destination, now_ms).map(|_| ())
}

/// Takes `member` out of the set at `source` (known to hold it), deleting an emptied set,
/// with its events (`srem`, and `del` if it emptied).
fn take_member(ctx: &mut Ctx, source: &[u8], member: &[u8]) {
    let now = ctx.now_ms;
    op_take_member(ctx.db(), source, member, now);
    ctx.notify(notify::SET, "srem", source);
    ctx.notify_del_if_gone(source);
}

/// Puts `member` into the set at `destination` with its event (`sadd` when it is new).
fn put_member(ctx: &mut Ctx, destination: &[u8], member: &[u8]) {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    if op_put_member(ctx.db(), destination, member, &limits, now) {
        ctx.notify(notify::SET, "sadd", destination);
    }
}

/// Takes `member` out of the set at `source` (known to hold it), deleting an emptied set.
fn op_take_member(db: &mut Db, source: &[u8], member: &[u8], now_ms: u64) {
    if let Ok(Some(set)) = write_set(db, source, now_ms) {
        let removed = set.remove(member);
        debug_assert!(removed, "the source was checked to hold the member");
        if set.is_empty() {
            db.remove(source);
        }
        db.add_changes(1);
    }
}

/// Puts `member` into the set at `destination` (known to be absent or a set), creating it.
/// Counts a change when the member is new there (Redis counts SMOVE as SREM plus SADD).
fn op_put_member(db: &mut Db, destination: &[u8], member: &[u8], limits: &Limits, now_ms: u64) -> bool {
    let added = match write_set(db, destination, now_ms) {
        Ok(Some(set)) => set.insert(member, limits),
        _ => {
            let mut set = Set::create(member, 1, limits);
            set.insert(member, limits);
            db.set(destination, Value::Set(set), now_ms);
            true
        }
    };
    db.add_changes(added as u64);
    added
}

/// Redis's order of checks: an absent source is 0 whatever the destination, then the types,
/// then membership.
fn move_check(source: Result<Option<bool>, Frame>, destination: Result<(), Frame>) -> Result<MoveCheck, Frame> {
    let Some(has_member) = source? else {
        return Ok(MoveCheck::Nothing);
    };
    destination?;
    Ok(if has_member { MoveCheck::Move } else { MoveCheck::Nothing })
}

/// Moves `member` between two sets of one core; returns whether it moved.
pub fn op_move(ctx: &mut Ctx, source: &[u8], destination: &[u8], member: &[u8]) -> Result<bool, Frame> {
    let now = ctx.now_ms;
    let source_has = op_source_has(ctx.db(), source, member, now);
    let destination_ok = op_destination_ok(ctx.db(), destination, now);
    let check = move_check(source_has, destination_ok)?;
    if source == destination || check == MoveCheck::Nothing {
        return Ok(check == MoveCheck::Move);
    }
    take_member(ctx, source, member);
    put_member(ctx, destination, member);
    Ok(true)
}

/// SMOVE source destination member
fn smove(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ctx::reply(op_move(ctx, &args[1], &args[2], &args[3]), args::int)
}

/// SMOVE over two cores: check both (nothing changes), then take and put in a second hop
/// under the same locks.
fn smove_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let (source, destination, member) = (args[1].clone(), args[2].clone(), args[3].clone());
        let shard_count = coordinator.shard_count();
        let source_shard = shoal_store::slot::key_shard(&source, shard_count);
        let destination_shard = shoal_store::slot::key_shard(&destination, shard_count);
        debug_assert_ne!(source_shard, destination_shard, "SMOVE within one core runs locally");
        let (source_has, destination_ok) = {
            let (source, destination, member) = (source.clone(), destination.clone(), member.clone());
            ctx::hop_two(
                coordinator,
                (source_shard, move |ctx: &mut Ctx| {
                    let now = ctx.now_ms;
                    op_source_has(ctx.db(), &source, &member, now)
                }),
                (destination_shard, move |ctx: &mut Ctx| {
                    let now = ctx.now_ms;
                    op_destination_ok(ctx.db(), &destination, now)
                }),
            )
            .await
        };
        match move_check(source_has, destination_ok) {
            Err(e) => return e,
            Ok(MoveCheck::Nothing) => return args::int(0),
            Ok(MoveCheck::Move) => {}
        }
        let taken = member.clone();
        ctx::hop_two(
            coordinator,
            (source_shard, move |ctx: &mut Ctx| take_member(ctx, &source, &taken)),
            (destination_shard, move |ctx: &mut Ctx| put_member(ctx, &destination, &member)),
        )
        .await;
        args::int(1)
    }
    .boxed_local()
}

// ---- SINTER, SINTERCARD, SINTERSTORE, SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE ---------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// What a set-algebra command does with its result.
#[derive(Clone, Debug)]
enum Output {
    /// Reply with the members (SINTER, SUNION, SDIFF).
    Members,
    /// Reply with the count, stopping at the limit when non-zero (SINTERCARD).
    Card { limit: u64 },
    /// Store at this key (the *STORE forms).
    Store(Bytes),
}

/// A parsed set-algebra request.
#[derive(Clone, Debug)]
struct Request {
    algebra: Algebra,
    keys: Vec<Bytes>,
    output: Output,
}

impl Request {
    /// SINTER, SUNION, SDIFF: every argument is a key.
    fn plain(algebra: Algebra, args: &[Bytes]) -> Request {
        Request { algebra, keys: args[1..].to_vec(), output: Output::Members }
    }

    /// The *STORE forms: the destination, then the keys.
    fn store(algebra: Algebra, args: &[Bytes]) -> Request {
        Request { algebra, keys: args[2..].to_vec(), output: Output::Store(args[1].clone()) }
    }

    /// SINTERCARD numkeys key [key ...] [LIMIT limit], and Redis 8.10's SUNIONCARD (which also
    /// takes APPROX: the count here is exact, which an approximation may be) and SDIFFCARD,
    /// parsed alike.
    fn card(algebra: Algebra, args: &[Bytes]) -> Result<Request, Frame> {
        let numkeys = args::parse_i64(&args[1]).ok().filter(|&n| n >= 1).ok_or_else(|| errors::error(NUMKEYS_NOT_POSITIVE))?;
        if numkeys > (args.len() - 2) as i64 {
            return Err(errors::error(NUMKEYS_TOO_MANY));
        }
        let keys_end = 2 + numkeys as usize;
        let mut limit = 0;
        let mut i = keys_end;
        while i < args.len() {
            if is(&args[i], "limit") && i + 1 < args.len() {
                limit = args::parse_i64(&args[i + 1]).ok().filter(|&l| l >= 0).ok_or_else(|| errors::error(LIMIT_NEGATIVE))? as u64;
                i += 2;
            } else if algebra == Algebra::Union && is(&args[i], "approx") {
                i += 1;
            } else {
                return Err(errors::syntax());
            }
        }
        Ok(Request { algebra, keys: args[2..keys_end].to_vec(), output: Output::Card { limit } })
    }
}

/// The movable keys of SINTERCARD: `numkeys` keys after the count.
fn sintercard_keys(args: &[Bytes]) -> Vec<usize> {
    table::numkeys_positions(args, 1, &[])
}

/// A computed result.
enum Computed {
    Members(Vec<Bytes>),
    Card(usize),
    Store(Set),
}

/// Computes a request over its sets (None: an absent key), one per key, in key order.
fn compute(request: &Request, sets: &[Option<&Set>], limits: &Limits) -> Computed {
    let all_present: Option<Vec<&Set>> = sets.iter().copied().collect();
    match (request.algebra, &request.output) {
        (Algebra::Inter, Output::Card { limit }) => {
            let mut count = 0usize;
            if let Some(sets) = &all_present {
                set_type::intersection_each(sets, |_| {
                    count += 1;
                    *limit == 0 || (count as u64) < *limit
                });
            }
            Computed::Card(count)
        }
        (Algebra::Inter, Output::Members) => {
            let mut members = Vec::new();
            if let Some(sets) = &all_present {
                set_type::intersection_each(sets, |m| {
                    members.push(m.to_bytes());
                    true
                });
            }
            Computed::Members(members)
        }
        (Algebra::Inter, Output::Store(_)) => Computed::Store(all_present.map_or_else(Set::default, |sets| set_type::intersection(&sets, limits))),
        (algebra, output) => {
            let result = if algebra == Algebra::Union {
                set_type::union(sets, limits)
            } else {
                let first_repeated = sets[0].is_some() && request.keys[1..].contains(&request.keys[0]);
                set_type::difference(sets, first_repeated, limits)
            };
            match output {
                Output::Store(_) => Computed::Store(result),
                Output::Card { limit } => Computed::Card(if *limit == 0 { result.len() } else { result.len().min(*limit as usize) }),
                Output::Members => Computed::Members(result.to_bytes_vec()),
            }
        }
    }
}

/// Writes a *STORE result: the set replaces whatever `destination` held (and its TTL), or an
/// empty result deletes it. Returns the size stored.
/// One change, unless an empty result met no destination to delete.
/// Raises the store's event (`sinterstore` and friends), or `del` when an empty result
/// deleted the destination.
fn op_store(ctx: &mut Ctx, algebra: Algebra, destination: &[u8], set: Set) -> usize {
    let now_ms = ctx.now_ms;
    let db = ctx.db();
    let len = set.len();
    if len == 0 {
        let removed = db.remove(destination).is_some();
        db.add_changes(removed as u64);
        if removed {
            ctx.notify(notify::GENERIC, "del", destination);
        }
    } else {
        db.set(destination, Value::Set(set), now_ms);
        db.add_changes(1);
        let event = match algebra {
            Algebra::Inter => "sinterstore",
            Algebra::Union => "sunionstore",
            Algebra::Diff => "sdiffstore",
        };
        ctx.notify(notify::SET, event, destination);
    }
    len
}

/// What a set-algebra command replies: members, or a count (SINTERCARD's, or the size a
/// *STORE stored).
enum Outcome {
    Members(Vec<Bytes>),
    Count(usize),
}

fn reply_of(outcome: Result<Outcome, Frame>) -> Frame {
    match outcome {
        Ok(Outcome::Members(members)) => Frame::Set(bulks(members)),
        Ok(Outcome::Count(count)) => args::int(count),
        Err(e) => e,
    }
}

/// Runs a request on one core, borrowing its sets in place: each is checked and counted as
/// read, then moved out of its entry for the computation and put back (nothing else runs in
/// between), so nothing is copied.
fn op_algebra(ctx: &mut Ctx, request: &Request) -> Result<Outcome, Frame> {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let db = ctx.db();
    let mut present = Vec::with_capacity(request.keys.len());
    for key in &request.keys {
        present.push(read_set(db, key, now)?.is_some());
    }
    // Move each distinct present set out of the keyspace; `slot_of[i]` is where key i's went.
    let mut taken: Vec<(Bytes, Set)> = Vec::new();
    let mut slots: std::collections::HashMap<&Bytes, usize> = std::collections::HashMap::new();
    let mut slot_of: Vec<Option<usize>> = Vec::with_capacity(request.keys.len());
    for (key, &here) in request.keys.iter().zip(&present) {
        if !here {
            slot_of.push(None);
            continue;
        }
        let slot = *slots.entry(key).or_insert_with(|| {
            let set = match db.lookup_quiet_mut(key, now).map(|e| &mut e.value) {
                Some(Value::Set(set)) => std::mem::take(set),
                _ => unreachable!("{key:?} was just read as a set"),
            };
            taken.push((key.clone(), set));
            taken.len() - 1
        });
        slot_of.push(Some(slot));
    }
    let computed = {
        let sets: Vec<Option<&Set>> = slot_of.iter().map(|slot| slot.map(|i| &taken[i].1)).collect();
        compute(request, &sets, &limits)
    };
    for (key, set) in taken {
        match db.lookup_quiet_mut(&key, now).map(|e| &mut e.value) {
            Some(Value::Set(slot)) => *slot = set,
            _ => unreachable!("a borrowed set's key stays"),
        }
    }
    Ok(match (computed, &request.output) {
        (Computed::Store(set), Output::Store(destination)) => Outcome::Count(op_store(ctx, request.algebra, destination, set)),
        (Computed::Store(_), _) => unreachable!("only a store request computes a set to store"),
        (Computed::Members(members), _) => Outcome::Members(members),
        (Computed::Card(count), _) => Outcome::Count(count),
    })
}

/// Copies of the sets at `keys` on this core (None: absent), counted as reads.
fn op_read_sets(ctx: &mut Ctx, keys: &[Bytes]) -> Result<Vec<Option<Set>>, Frame> {
    let now = ctx.now_ms;
    let db = ctx.db();
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        let copy = read_set(db, key, now)?.cloned();
        sets.push(copy);
    }
    Ok(sets)
}

/// Runs a request over several cores: one hop reads every core's sets, the coordinator
/// computes, and a *STORE writes its destination in a second hop of the same transaction.
async fn algebra_across_cores(coordinator: &dyn Coordinator, request: Request) -> Result<Outcome, Frame> {
    let shard_count = coordinator.shard_count();
    let groups = ctx::group_by_shard(shard_count, request.keys.iter().cloned().enumerate());
    let mut sets: Vec<Option<Set>> = (0..request.keys.len()).map(|_| None).collect();
    for (indexes, result) in ctx::hop_per_shard(coordinator, groups, |ctx, keys| op_read_sets(ctx, &keys)).await {
        for (index, set) in indexes.into_iter().zip(result?) {
            sets[index] = set;
        }
    }
    match request.output.clone() {
        Output::Store(destination) => {
            // The result is built on the destination's core, with that core's limits, and
            // stored there.
            let destination_shard = shoal_store::slot::key_shard(&destination, shard_count);
            let stored = ctx::hop_one(coordinator, destination_shard, move |ctx: &mut Ctx| {
                let limits = ctx.settings.limits;
                let refs: Vec<Option<&Set>> = sets.iter().map(|s| s.as_ref()).collect();
                match compute(&request, &refs, &limits) {
                    Computed::Store(set) => op_store(ctx, request.algebra, &destination, set),
                    _ => unreachable!("a store request computes a set"),
                }
            })
            .await;
            Ok(Outcome::Count(stored))
        }
        // A result that is only replied never becomes a value, so its encoding (and with it
        // the limits) does not matter.
        _ => {
            let refs: Vec<Option<&Set>> = sets.iter().map(|s| s.as_ref()).collect();
            Ok(match compute(&request, &refs, &Limits::default()) {
                Computed::Members(members) => Outcome::Members(members),
                Computed::Card(count) => Outcome::Count(count),
                Computed::Store(_) => unreachable!("only a store request computes a set to store"),
            })
        }
    }
}

/// SINTER key [key ...]
fn sinter(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    reply_of(op_algebra(ctx, &Request::plain(Algebra::Inter, args)))
}

fn sinter_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { reply_of(algebra_across_cores(coordinator, Request::plain(Algebra::Inter, &args)).await) }.boxed_local()
}

/// SINTERCARD, SUNIONCARD or SDIFFCARD on one core.
fn card_command(ctx: &mut Ctx, algebra: Algebra, args: &[Bytes]) -> Frame {
    match Request::card(algebra, args) {
        Ok(request) => reply_of(op_algebra(ctx, &request)),
        Err(e) => e,
    }
}

/// SINTERCARD, SUNIONCARD or SDIFFCARD over several cores.
fn card_command_multi(coordinator: &dyn Coordinator, algebra: Algebra, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        match Request::card(algebra, &args) {
            Ok(request) => reply_of(algebra_across_cores(coordinator, request).await),
            Err(e) => e,
        }
    }
    .boxed_local()
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    card_command(ctx, Algebra::Inter, args)
}

fn sintercard_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    card_command_multi(coordinator, Algebra::Inter, args)
}

/// SUNIONCARD numkeys key [key ...] [APPROX] [LIMIT limit] (Redis 8.10)
fn sunioncard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    card_command(ctx, Algebra::Union, args)
}

fn sunioncard_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    card_command_multi(coordinator, Algebra::Union, args)
}

/// SDIFFCARD numkeys key [key ...] [LIMIT limit] (Redis 8.10)
fn sdiffcard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    card_command(ctx, Algebra::Diff, args)
}

fn sdiffcard_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    card_command_multi(coordinator, Algebra::Diff, args)
}

/// SINTERSTORE destination key [key ...]
fn sinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    reply_of(op_algebra(ctx, &Request::store(Algebra::Inter, args)))
}

fn sinterstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { reply_of(algebra_across_cores(coordinator, Request::store(Algebra::Inter, &args)).await) }.boxed_local()
}

/// SUNION key [key ...]
fn sunion(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    reply_of(op_algebra(ctx, &Request::plain(Algebra::Union, args)))
}

fn sunion_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { reply_of(algebra_across_cores(coordinator, Request::plain(Algebra::Union, &args)).await) }.boxed_local()
}

/// SUNIONSTORE destination key [key ...]
fn sunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    reply_of(op_algebra(ctx, &Request::store(Algebra::Union, args)))
}

fn sunionstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { reply_of(algebra_across_cores(coordinator, Request::store(Algebra::Union, &args)).await) }.boxed_local()
}

/// SDIFF key [key ...]
fn sdiff(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    reply_of(op_algebra(ctx, &Request::plain(Algebra::Diff, args)))
}

fn sdiff_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { reply_of(algebra_across_cores(coordinator, Request::plain(Algebra::Diff, &args)).await) }.boxed_local()
}

/// SDIFFSTORE destination key [key ...]
fn sdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    reply_of(op_algebra(ctx, &Request::store(Algebra::Diff, args)))
}

fn sdiffstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { reply_of(algebra_across_cores(coordinator, Request::store(Algebra::Diff, &args)).await) }.boxed_local()
}

// ---- SSCAN --------------------------------------------------------------------------------

/// One SSCAN call on the set at `key`: (next cursor, members). A compact set is returned
/// whole with cursor 0; a hash table is walked a bucket at a time until `count` members were
/// seen or `count * 10` buckets were visited, as Redis's `scanGenericCommand`.
pub fn op_scan(db: &mut Db, key: &[u8], cursor: u64, options: &[Bytes], now_ms: u64) -> Result<(u64, Vec<Bytes>), Frame> {
    let Some(set) = read_set(db, key, now_ms)? else {
        return Ok((0, Vec::new()));
    };
    let args::ScanOptions { pattern, count, .. } = args::parse_scan_options(options, args::ScanExtras::default())?;
    let mut members = Vec::new();
    let mut cursor = cursor;
    let mut steps_left = (count as u64).saturating_mul(10);
    loop {
        cursor = set.scan_step(cursor, |m| members.push(m.to_bytes()));
        if cursor == 0 || steps_left == 0 || members.len() >= count {
            break;
        }
        steps_left -= 1;
    }
    if let Some(pattern) = pattern {
        members.retain(|m| shoal_glob::matches(&pattern, m));
    }
    Ok((cursor, members))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match args::parse_cursor(&args[2]) {
        Ok(cursor) => cursor,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    ctx::reply(op_scan(ctx.db(), &args[1], cursor, &args[3..], now), |(next, members)| {
        Frame::Array(vec![args::bulk(Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes())), Frame::Array(bulks(members))])
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::replies::*;
    use crate::testing::{check, Harness, SHARDS};
    use shoal_resp::Frame;

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const SYNTAX: &str = "ERR syntax error";
    const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

    /// The members of a set or array reply, sorted.
    fn sorted(reply: Frame) -> Vec<String> {
        let items = match reply {
            Frame::Set(items) | Frame::Array(items) => items,
            other => panic!("not a collection: {other:?}"),
        };
        let mut out: Vec<String> = items
            .into_iter()
            .map(|f| match f {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not a bulk string: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn strings_sorted(items: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        out.sort();
        out
    }

    /// `count` keys with `prefix`, each owned by a different shard of the harness.
    fn keys_on_distinct_shards(prefix: &str, count: usize) -> Vec<String> {
        assert!(count <= SHARDS);
        let mut keys: Vec<String> = Vec::new();
        for i in 0.. {
            let key = format!("{prefix}{i}");
            let shard = shoal_store::slot::key_shard(key.as_bytes(), SHARDS);
            if keys.iter().all(|k| shoal_store::slot::key_shard(k.as_bytes(), SHARDS) != shard) {
                keys.push(key);
                if keys.len() == count {
                    return keys;
                }
            }
        }
        unreachable!()
    }

    #[test]
    fn sadd_counts_new_members_and_smembers_lists_them() {
        let h = Harness::default();
        assert_eq!(h.run(&["SADD", "s", "a", "b", "a"]), int(2));
        assert_eq!(h.run(&["SADD", "s", "b", "c"]), int(1));
        assert_eq!(sorted(h.run(&["SMEMBERS", "s"])), strings_sorted(&["a", "b", "c"]));
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        assert_eq!(h.run(&["SCARD", "nokey"]), int(0));
        assert_eq!(h.run(&["SMEMBERS", "nokey"]), Frame::Set(vec![]));
        assert_eq!(h.run(&["SISMEMBER", "s", "a"]), int(1));
        assert_eq!(h.run(&["SISMEMBER", "s", "x"]), int(0));
        assert_eq!(h.run(&["SMISMEMBER", "s", "a", "x", "c"]), arr(vec![int(1), int(0), int(1)]));
        assert_eq!(h.run(&["SMISMEMBER", "nokey", "a", "b"]), arr(vec![int(0), int(0)]));
    }

    #[test]
    fn srem_deletes_the_key_with_its_last_member() {
        check(
            &[&["SADD", "s", "1", "2"], &["SREM", "s", "1", "x"], &["SREM", "s", "2", "2"], &["EXISTS", "s"], &["SREM", "nokey", "a"]],
            &[int(2), int(1), int(1), int(0), int(0)],
        );
    }

    #[test]
    fn every_command_on_a_string_is_wrongtype() {
        let h = Harness::default();
        h.run(&["SET", "str", "v"]);
        h.run(&["SADD", "{str}set", "a"]);
        let commands: &[&[&str]] = &[
            &["SADD", "str", "a"],
            &["SREM", "str", "a"],
            &["SCARD", "str"],
            &["SISMEMBER", "str", "a"],
            &["SMISMEMBER", "str", "a"],
            &["SMEMBERS", "str"],
            &["SRANDMEMBER", "str"],
            &["SRANDMEMBER", "str", "-3"],
            &["SPOP", "str"],
            &["SPOP", "str", "2"],
            &["SMOVE", "str", "{str}set", "a"],
            &["SMOVE", "{str}set", "str", "a"],
            &["SINTER", "nokey", "str"],
            &["SINTERCARD", "2", "nokey", "str"],
            &["SINTERSTORE", "d", "nokey", "str"],
            &["SUNION", "str"],
            &["SUNIONSTORE", "d", "str"],
            &["SDIFF", "nokey", "str"],
            &["SDIFFSTORE", "d", "nokey", "str"],
            &["SSCAN", "str", "0"],
        ];
        for command in commands {
            assert_eq!(h.run(command), err(WRONGTYPE), "{command:?}");
        }
        // Nothing moved: the source still has its member.
        assert_eq!(h.run(&["SMEMBERS", "{str}set"]), Frame::Set(vec![bulk("a")]));
        // An absent source is 0 before the destination's type is looked at.
        assert_eq!(h.run(&["SMOVE", "nokey", "str", "a"]), int(0));
    }

    #[test]
    fn spop_and_srandmember_parse_counts_like_redis() {
        check(
            &[
                &["SADD", "s", "a", "b", "c"],
                &["SPOP", "s", "-1"],
                &["SPOP", "s", "abc"],
                &["SPOP", "s", "1", "2"],
                &["SRANDMEMBER", "s", "abc"],
                &["SRANDMEMBER", "s", "-9223372036854775808"],
                &["SRANDMEMBER", "s", "1", "2"],
                &["SPOP", "nokey", "2"],
                &["SPOP", "nokey"],
                &["SRANDMEMBER", "nokey"],
                &["SRANDMEMBER", "nokey", "-5"],
                &["SPOP", "s", "0"],
                &["SRANDMEMBER", "s", "0"],
                &["SRANDMEMBER", "s", "-2000000"],
            ],
            &[
                int(3),
                err("ERR value is out of range, must be positive"),
                err("ERR value is out of range, must be positive"),
                err(SYNTAX),
                err(NOT_INTEGER),
                err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
                err(SYNTAX),
                Frame::Set(vec![]),
                Frame::Null,
                Frame::Null,
                arr(vec![]),
                Frame::Set(vec![]),
                arr(vec![]),
                err("ERR value is out of range, value must between -1048576 and 9223372036854775807"),
            ],
        );
    }

    #[test]
    fn spop_and_srandmember_return_members() {
        let h = Harness::default();
        let members: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let mut sadd = vec!["SADD", "s"];
        sadd.extend(members.iter().map(|s| s.as_str()));
        h.run(&sadd);
        let all = sorted(h.run(&["SMEMBERS", "s"]));
        let distinct = sorted(h.run(&["SRANDMEMBER", "s", "10"]));
        assert_eq!(distinct.len(), 10);
        assert!(distinct.windows(2).all(|w| w[0] != w[1]), "distinct members");
        assert!(distinct.iter().all(|m| all.contains(m)));
        let repeated = sorted(h.run(&["SRANDMEMBER", "s", "-100"]));
        assert_eq!(repeated.len(), 100);
        assert!(repeated.iter().all(|m| all.contains(m)));
        assert_eq!(sorted(h.run(&["SRANDMEMBER", "s", "1000"])), all);
        // Pop a few, then most (the rebuilding path), then the rest.
        let mut popped = sorted(h.run(&["SPOP", "s", "5"]));
        popped.extend(sorted(h.run(&["SPOP", "s", "42"])));
        assert_eq!(h.run(&["SCARD", "s"]), int(3));
        match h.run(&["SPOP", "s"]) {
            Frame::Bulk(b) => popped.push(String::from_utf8(b.to_vec()).unwrap()),
            other => panic!("{other:?}"),
        }
        popped.extend(sorted(h.run(&["SPOP", "s", "100"])));
        popped.sort();
        assert_eq!(popped, all, "every member popped once");
        assert_eq!(h.run(&["EXISTS", "s"]), int(0));
    }

    #[test]
    fn sintercard_checks_its_arguments_before_the_keys() {
        check(
            &[
                &["SET", "str", "x"],
                &["SINTERCARD", "0", "str"],
                &["SINTERCARD", "abc", "str"],
                &["SINTERCARD", "3", "str"],
                &["SINTERCARD", "1", "str", "LIMIT", "-1"],
                &["SINTERCARD", "1", "str", "LIMIT", "x"],
                &["SINTERCARD", "1", "str", "LIMIT"],
                &["SINTERCARD", "1", "str", "FOO"],
                &["SADD", "{t}a", "1", "2", "3", "x"],
                &["SADD", "{t}b", "1", "2", "3", "y"],
                &["SINTERCARD", "2", "{t}a", "{t}b"],
                &["SINTERCARD", "2", "{t}a", "{t}b", "limit", "2"],
                &["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "0"],
                &["SINTERCARD", "2", "{t}a", "nokey"],
            ],
            &[
                ok(),
                err("ERR numkeys should be greater than 0"),
                err("ERR numkeys should be greater than 0"),
                err("ERR Number of keys can't be greater than number of args"),
                err("ERR LIMIT can't be negative"),
                err("ERR LIMIT can't be negative"),
                err(SYNTAX),
                err(SYNTAX),
                int(4),
                int(4),
                int(3),
                int(2),
                int(3),
                int(0),
            ],
        );
    }

    #[test]
    fn sunioncard_and_sdiffcard_count_what_sunion_and_sdiff_would_return() {
        // On one core ({t}) and over several (a, b, c spread over the harness's cores).
        for (a, b, c) in [("{t}a", "{t}b", "{t}c"), ("a", "b", "c")] {
            check(
                &[
                    &["SADD", a, "1", "2", "3", "x"],
                    &["SADD", b, "1", "2", "3", "y"],
                    &["SADD", c, "x", "z"],
                    &["SUNIONCARD", "3", a, b, c],
                    &["SUNIONCARD", "3", a, b, c, "LIMIT", "4"],
                    &["SUNIONCARD", "3", a, b, c, "APPROX", "LIMIT", "0"],
                    &["SUNIONCARD", "2", a, "nokey"],
                    &["SDIFFCARD", "3", a, b, c],
                    &["SDIFFCARD", "1", a, "limit", "2"],
                    &["SDIFFCARD", "2", "nokey", a],
                    &["SDIFFCARD", "2", a, a],
                ],
                &[int(4), int(4), int(2), int(6), int(4), int(6), int(4), int(0), int(2), int(0), int(0)],
            );
        }
        check(
            &[
                &["SET", "str", "x"],
                &["SUNIONCARD", "0", "str"],
                &["SUNIONCARD", "2", "str"],
                &["SUNIONCARD", "1", "str", "LIMIT", "-1"],
                &["SDIFFCARD", "1", "str", "APPROX"],
                &["SUNIONCARD", "1", "str"],
                &["SDIFFCARD", "1", "str"],
            ],
            &[
                ok(),
                err("ERR numkeys should be greater than 0"),
                err("ERR Number of keys can't be greater than number of args"),
                err("ERR LIMIT can't be negative"),
                err(SYNTAX),
                err(WRONGTYPE),
                err(WRONGTYPE),
            ],
        );
    }

    /// Runs the same algebra over keys on one core ({t} tags) and over keys on three cores,
    /// and expects the same answers.
    #[test]
    fn algebra_across_cores_matches_algebra_on_one_core() {
        let h = Harness::default();
        let spread = keys_on_distinct_shards("k", 3);
        let tagged = ["{t}0", "{t}1", "{t}2"];
        let contents: [&[&str]; 3] = [&["1", "2", "3", "a", "b"], &["2", "3", "b", "c"], &["3", "b", "d", "9"]];
        for (keys, prefix) in [(spread.iter().map(|s| s.as_str()).collect::<Vec<_>>(), "d"), (tagged.to_vec(), "{t}d")] {
            for (key, members) in keys.iter().zip(contents) {
                let mut sadd = vec!["SADD", key];
                sadd.extend_from_slice(members);
                assert_eq!(h.run(&sadd), int(members.len() as i64));
            }
            let (a, b, c) = (keys[0], keys[1], keys[2]);
            assert_eq!(sorted(h.run(&["SINTER", a, b, c])), strings_sorted(&["3", "b"]));
            assert_eq!(sorted(h.run(&["SUNION", a, b, c])), strings_sorted(&["1", "2", "3", "9", "a", "b", "c", "d"]));
            assert_eq!(sorted(h.run(&["SDIFF", a, b, c])), strings_sorted(&["1", "a"]));
            assert_eq!(sorted(h.run(&["SDIFF", a, b, a])), Vec::<String>::new());
            assert_eq!(h.run(&["SINTERCARD", "3", a, b, c]), int(2));
            assert_eq!(h.run(&["SINTER", a, "nokey", c]), Frame::Set(vec![]));
            let dest = format!("{prefix}dest");
            h.run(&["SET", &dest, "a string to replace"]);
            assert_eq!(h.run(&["SINTERSTORE", &dest, a, b]), int(3));
            assert_eq!(sorted(h.run(&["SMEMBERS", &dest])), strings_sorted(&["2", "3", "b"]));
            assert_eq!(h.run(&["OBJECT", "ENCODING", &dest]), bulk("listpack"));
            assert_eq!(h.run(&["SUNIONSTORE", &dest, a, b, c]), int(8));
            assert_eq!(h.run(&["SDIFFSTORE", &dest, a, b, c]), int(2));
            assert_eq!(sorted(h.run(&["SMEMBERS", &dest])), strings_sorted(&["1", "a"]));
            assert_eq!(h.run(&["SINTERSTORE", &dest, a, b, "nokey"]), int(0));
            assert_eq!(h.run(&["EXISTS", &dest]), int(0), "an empty result deletes the destination");
            // A source may be the destination.
            assert_eq!(h.run(&["SUNIONSTORE", a, a, c]), int(7));
            assert_eq!(h.run(&["SCARD", a]), int(7));
            // Integers only: the stored intersection is an intset.
            assert_eq!(h.run(&["SINTERSTORE", &dest, a, c]), int(4));
            assert_eq!(h.run(&["SREM", &dest, "b", "d"]), int(2));
            assert_eq!(h.run(&["SINTERSTORE", &dest, &dest, a]), int(2));
            assert_eq!(h.run(&["OBJECT", "ENCODING", &dest]), bulk("intset"));
        }
    }

    #[test]
    fn smove_moves_between_cores_and_checks_types_first() {
        let h = Harness::default();
        let keys = keys_on_distinct_shards("m", 3);
        let (src, dst, other) = (keys[0].as_str(), keys[1].as_str(), keys[2].as_str());
        h.run(&["SADD", src, "a", "b"]);
        h.run(&["SET", other, "string"]);
        assert_eq!(h.run(&["SMOVE", src, other, "a"]), err(WRONGTYPE));
        assert_eq!(h.run(&["SCARD", src]), int(2), "nothing changed");
        assert_eq!(h.run(&["SMOVE", src, dst, "x"]), int(0));
        assert_eq!(h.run(&["SMOVE", src, dst, "a"]), int(1));
        assert_eq!(h.run(&["SMOVE", src, dst, "b"]), int(1));
        assert_eq!(h.run(&["EXISTS", src]), int(0), "the emptied source is gone");
        assert_eq!(sorted(h.run(&["SMEMBERS", dst])), strings_sorted(&["a", "b"]));
        assert_eq!(h.run(&["SMOVE", dst, dst, "a"]), int(1));
        assert_eq!(h.run(&["SMOVE", dst, dst, "z"]), int(0));
        assert_eq!(h.run(&["SMOVE", "nokey", other, "a"]), int(0));
        // A member moved into a new set makes it an intset when it is an integer.
        h.run(&["SADD", src, "7"]);
        assert_eq!(h.run(&["SMOVE", src, "fresh", "7"]), int(1));
        assert_eq!(h.run(&["OBJECT", "ENCODING", "fresh"]), bulk("intset"));
    }

    #[test]
    fn encodings_convert_at_the_configured_thresholds() {
        let mut h = Harness::default();
        h.settings.limits.set_max_intset_entries = 3;
        h.settings.limits.set_max_listpack_entries = 4;
        h.settings.limits.set_max_listpack_value = 5;
        let encoding = |h: &Harness, key: &str| h.run(&["OBJECT", "ENCODING", key]);
        h.run(&["SADD", "i", "1", "2", "3"]);
        assert_eq!(encoding(&h, "i"), bulk("intset"));
        h.run(&["SADD", "i", "4"]);
        assert_eq!(encoding(&h, "i"), bulk("hashtable"), "past set-max-intset-entries");
        h.run(&["SADD", "l", "a", "b", "c", "d"]);
        assert_eq!(encoding(&h, "l"), bulk("listpack"));
        h.run(&["SADD", "l", "e"]);
        assert_eq!(encoding(&h, "l"), bulk("hashtable"), "past set-max-listpack-entries");
        h.run(&["SADD", "v", "abcde"]);
        assert_eq!(encoding(&h, "v"), bulk("listpack"));
        h.run(&["SADD", "v", "abcdef"]);
        assert_eq!(encoding(&h, "v"), bulk("hashtable"), "past set-max-listpack-value");
        h.run(&["SADD", "m", "1", "2"]);
        h.run(&["SADD", "m", "x"]);
        assert_eq!(encoding(&h, "m"), bulk("listpack"), "an intset with a string becomes a listpack");
        // Adding more members at once than a listpack holds converts first.
        h.run(&["SADD", "big", "a", "b", "c", "d", "e"]);
        assert_eq!(encoding(&h, "big"), bulk("hashtable"));
        h.run(&["SADD", "hint", "a"]);
        h.run(&["SADD", "hint", "a", "a", "a", "a", "a"]);
        assert_eq!(encoding(&h, "hint"), bulk("hashtable"), "the size hint counts arguments, as Redis's");
    }

    #[test]
    fn sscan_walks_a_hashtable_and_returns_compact_sets_whole() {
        let h = Harness::default();
        let members: Vec<String> = (0..300).map(|i| format!("member:{i}")).collect();
        let mut sadd = vec!["SADD", "big"];
        sadd.extend(members.iter().map(|s| s.as_str()));
        h.run(&sadd);
        assert_eq!(h.run(&["OBJECT", "ENCODING", "big"]), bulk("hashtable"));
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let reply = h.run(&["SSCAN", "big", &cursor, "COUNT", "20"]);
            let Frame::Array(parts) = reply else { panic!("{reply:?}") };
            let Frame::Bulk(next) = &parts[0] else { panic!() };
            cursor = String::from_utf8(next.to_vec()).unwrap();
            seen.extend(sorted(parts[1].clone()));
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 1, "a hash table is walked in steps");
        assert_eq!(seen.len(), 300);
        h.run(&["SADD", "small", "a1", "a2", "b1"]);
        assert_eq!(h.run(&["SSCAN", "small", "0", "MATCH", "a*", "COUNT", "1"]), arr(vec![bulk("0"), arr(vec![bulk("a1"), bulk("a2")])]));
        assert_eq!(h.run(&["SSCAN", "nokey", "0", "FOO"]), arr(vec![bulk("0"), arr(vec![])]));
        for (options, error) in [(&["COUNT", "0"][..], SYNTAX), (&["COUNT", "x"], NOT_INTEGER), (&["MATCH"], SYNTAX), (&["TYPE", "set"], SYNTAX)] {
            let mut command = vec!["SSCAN", "small", "0"];
            command.extend_from_slice(options);
            assert_eq!(h.run(&command), err(error), "{command:?}");
        }
        assert_eq!(h.run(&["SSCAN", "small", "x"]), err("ERR invalid cursor"));
    }
}

//! The blocking commands: BLPOP, BRPOP, BLMOVE, BLMOVEM, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP (Redis's `blocking.c` with the blocking halves of `t_list.c` and `t_zset.c`).
//!
//! Each command is a [`BlockingOps`]: `parse` checks the arguments and reads the timeout,
//! `attempt` serves the request at once when it can (a transaction over all its keys), and
//! `serve` serves a waiting client from one key that a write may have made ready. Waiting,
//! registration and wake-ups are the runtime's (see `shoal_runtime::blocking`).

use std::time::Duration;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::{Frame, Protocol};
use shoal_store::{Db, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::lists::parse_side;
use crate::strings::long_double::{self, LongDouble};
use crate::table::{flags::*, numkeys_positions, BlockingOps, CommandSpec, Handler, KeySpec, Served};
use crate::{lists, zsets};

pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const TIMEOUT_OUT_OF_RANGE: &str = "ERR timeout is out of range";
const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";

const LIST: CommandSpec = CommandSpec { acl: &["@list"], group: "list", flags: WRITE | BLOCKING, ..CommandSpec::DEFAULT };
const ZSET: CommandSpec = CommandSpec { acl: &["@sortedset"], group: "sorted_set", flags: WRITE | BLOCKING, ..CommandSpec::DEFAULT };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "blpop",
        arity: -3,
        flags: WRITE | NOSCRIPT | BLOCKING,
        keys: KeySpec { first: 1, last: -2, step: 1 },
        summary: "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of provided keys.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_pop, wait_keys: all_but_last, attempt: blpop_attempt, serve: blpop_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        ..LIST
    },
    CommandSpec {
        name: "brpop",
        arity: -3,
        flags: WRITE | NOSCRIPT | BLOCKING,
        keys: KeySpec { first: 1, last: -2, step: 1 },
        summary: "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "2.0.0",
        complexity: "O(N) where N is the number of provided keys.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_pop, wait_keys: all_but_last, attempt: brpop_attempt, serve: brpop_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        ..LIST
    },
    CommandSpec {
        name: "blmove",
        arity: 6,
        flags: WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        keys: KeySpec::TWO,
        summary: "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
        since: "6.2.0",
        complexity: "O(1)",
        handler: Handler::Blocking(&BlockingOps { parse: parse_blmove, wait_keys: first_key, attempt: blmove_attempt, serve: blmove_serve, timed_out: null_bulk, resolve: None, at_once: None, recheck: None }),
        ..LIST
    },
    CommandSpec {
        // Redis 8.10 flags it neither `noscript` nor `fast`: in a script it does not wait.
        name: "blmovem",
        arity: -6,
        flags: WRITE | DENYOOM | BLOCKING,
        keys: KeySpec::TWO,
        summary: "Moves up to (or exactly) a number of elements from one list to another and returns them. Blocks until the elements are available otherwise. Deletes the source list if it becomes empty.",
        since: "8.10.0",
        complexity: "O(N) where N is the number of elements moved.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_blmovem, wait_keys: first_key, attempt: blmovem_attempt, serve: blmovem_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        ..LIST
    },
    CommandSpec {
        name: "brpoplpush",
        arity: 4,
        flags: WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        keys: KeySpec::TWO,
        summary: "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "2.2.0",
        complexity: "O(1)",
        handler: Handler::Blocking(&BlockingOps { parse: parse_brpoplpush, wait_keys: first_key, attempt: blmove_attempt, serve: blmove_serve, timed_out: null_bulk, resolve: None, at_once: None, recheck: None }),
        ..LIST
    },
    CommandSpec {
        name: "blmpop",
        arity: -5,
        keys: KeySpec::NONE,
        summary: "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        since: "7.0.0",
        complexity: "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_blmpop, wait_keys: mpop_keys, attempt: blmpop_attempt, serve: blmpop_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        movable_keys: Some(mpop_keys),
        ..LIST
    },
    CommandSpec {
        name: "bzpopmin",
        arity: -3,
        flags: WRITE | NOSCRIPT | BLOCKING | FAST,
        keys: KeySpec { first: 1, last: -2, step: 1 },
        summary: "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        since: "5.0.0",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_pop, wait_keys: all_but_last, attempt: bzpopmin_attempt, serve: bzpopmin_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        ..ZSET
    },
    CommandSpec {
        name: "bzpopmax",
        arity: -3,
        flags: WRITE | NOSCRIPT | BLOCKING | FAST,
        keys: KeySpec { first: 1, last: -2, step: 1 },
        summary: "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.",
        since: "5.0.0",
        complexity: "O(log(N)) with N being the number of elements in the sorted set.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_pop, wait_keys: all_but_last, attempt: bzpopmax_attempt, serve: bzpopmax_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        ..ZSET
    },
    CommandSpec {
        name: "bzmpop",
        arity: -5,
        keys: KeySpec::NONE,
        summary: "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
        since: "7.0.0",
        complexity: "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.",
        handler: Handler::Blocking(&BlockingOps { parse: parse_bzmpop, wait_keys: mpop_keys, attempt: bzmpop_attempt, serve: bzmpop_serve, timed_out: null_array, resolve: None, at_once: None, recheck: None }),
        movable_keys: Some(mpop_keys),
        ..ZSET
    },
];

fn null_array() -> Frame {
    Frame::NullArray
}

fn null_bulk() -> Frame {
    Frame::Null
}

// ---- Arguments --------------------------------------------------------------------------

/// A timeout in seconds, as Redis 7.2's `getTimeoutFromObjectOrReply`: a `long double`, in
/// milliseconds rounded up; 0 waits forever; "out of range" when the deadline would not fit
/// in milliseconds since the epoch. (Redis 7.0 truncated instead, so a huge timeout read as
/// negative and 0.0001 as forever.)
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, Frame> {
    let value = long_double::parse(arg).ok_or_else(|| errors::error(TIMEOUT_NOT_FLOAT))?;
    let seconds = match value {
        LongDouble::Infinity { negative: false } => return Err(errors::error(TIMEOUT_OUT_OF_RANGE)),
        LongDouble::Infinity { negative: true } => return Err(errors::error(TIMEOUT_NEGATIVE)),
        LongDouble::NaN => return Err(errors::error(TIMEOUT_NOT_FLOAT)),
        LongDouble::Finite { negative, significand, exponent } => {
            let magnitude = significand as f64 * 2f64.powi(exponent);
            if negative {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    let ms = (seconds * 1000.0).ceil();
    if ms > i64::MAX as f64 {
        return Err(errors::error(TIMEOUT_OUT_OF_RANGE));
    }
    if ms < 0.0 {
        return Err(errors::error(TIMEOUT_NEGATIVE));
    }
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    if ms as i64 > i64::MAX - now_ms {
        return Err(errors::error(TIMEOUT_OUT_OF_RANGE));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// BLPOP, BRPOP, BZPOPMIN, BZPOPMAX: keys, then the timeout last.
fn parse_pop(args: &[Bytes]) -> Result<Option<Duration>, Frame> {
    parse_timeout(&args[args.len() - 1])
}

fn all_but_last(args: &[Bytes]) -> Vec<usize> {
    (1..args.len() - 1).collect()
}

fn first_key(_args: &[Bytes]) -> Vec<usize> {
    vec![1]
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
fn parse_blmove(args: &[Bytes]) -> Result<Option<Duration>, Frame> {
    parse_side(&args[3])?;
    parse_side(&args[4])?;
    parse_timeout(&args[5])
}

/// BLMOVEM source destination LEFT|RIGHT LEFT|RIGHT timeout [<COUNT count | EXACTLY exactly> <OBO | BULK>]
fn parse_blmovem(args: &[Bytes]) -> Result<Option<Duration>, Frame> {
    lists::parse_lmovem(args, 6)?;
    parse_timeout(&args[5])
}

/// BRPOPLPUSH source destination timeout
fn parse_brpoplpush(args: &[Bytes]) -> Result<Option<Duration>, Frame> {
    parse_timeout(&args[3])
}

/// (from_left, to_left) of BLMOVE or BRPOPLPUSH.
fn move_sides(args: &[Bytes]) -> (bool, bool) {
    if args.len() == 6 {
        (parse_side(&args[3]).unwrap_or(true), parse_side(&args[4]).unwrap_or(true))
    } else {
        (false, true)
    }
}

/// BLMPOP and BZMPOP: `timeout numkeys key [key ...] <where> [COUNT count]`, where `<where>`
/// is one of `sides` (LEFT/RIGHT or MIN/MAX). Returns (timeout, first side?, count).
fn parse_mpop(args: &[Bytes], sides: [&str; 2]) -> Result<(Option<Duration>, bool, usize), Frame> {
    let timeout = parse_timeout(&args[1])?;
    let numkeys = args::parse_i64(&args[2])?;
    if numkeys <= 0 {
        return Err(errors::error(NUMKEYS_NOT_POSITIVE));
    }
    let where_at = 3usize.saturating_add(numkeys as usize);
    if where_at >= args.len() {
        return Err(errors::syntax());
    }
    let first = if is(&args[where_at], sides[0]) {
        true
    } else if is(&args[where_at], sides[1]) {
        false
    } else {
        return Err(errors::syntax());
    };
    let mut count = 1usize;
    let mut rest = args[where_at + 1..].iter();
    let mut count_seen = false;
    while let Some(option) = rest.next() {
        if is(option, "count") && !count_seen {
            let value = rest.next().ok_or_else(errors::syntax)?;
            let n = args::parse_i64(value)?;
            if n <= 0 {
                return Err(errors::error(COUNT_NOT_POSITIVE));
            }
            count = n as usize;
            count_seen = true;
        } else {
            return Err(errors::syntax());
        }
    }
    Ok((timeout, first, count))
}

fn parse_blmpop(args: &[Bytes]) -> Result<Option<Duration>, Frame> {
    parse_mpop(args, ["left", "right"]).map(|(timeout, _, _)| timeout)
}

fn parse_bzmpop(args: &[Bytes]) -> Result<Option<Duration>, Frame> {
    parse_mpop(args, ["min", "max"]).map(|(timeout, _, _)| timeout)
}

fn mpop_keys(args: &[Bytes]) -> Vec<usize> {
    numkeys_positions(args, 2, &[])
}

// ---- What a key holds -------------------------------------------------------------------

/// A key as a blocking pop sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holds {
    Nothing,
    WrongType,
    Ready,
}

fn holds_list(db: &mut Db, key: &[u8], now_ms: u64) -> Holds {
    match db.lookup_write(key, now_ms).map(|e| &e.value) {
        None => Holds::Nothing,
        Some(Value::List(_)) => Holds::Ready,
        Some(_) => Holds::WrongType,
    }
}

fn holds_zset(db: &mut Db, key: &[u8], now_ms: u64) -> Holds {
    match db.lookup_write(key, now_ms).map(|e| &e.value) {
        None => Holds::Nothing,
        Some(Value::ZSet(_)) => Holds::Ready,
        Some(_) => Holds::WrongType,
    }
}

/// With every key locked: the index (into `keys`) of the first key that is ready, or the
/// WRONGTYPE error of a key before it, or None when all are empty.
async fn first_ready(coordinator: &dyn Coordinator, keys: Vec<Bytes>, holds: fn(&mut Db, &[u8], u64) -> Holds) -> Result<Option<usize>, Frame> {
    let groups = ctx::group_by_shard(coordinator.shard_count(), keys.into_iter().enumerate());
    let mut states = Vec::new();
    for (indexes, found) in ctx::hop_per_shard(coordinator, groups, move |ctx, keys| {
        let now = ctx.now_ms;
        let db = ctx.db();
        keys.iter().map(|k| holds(db, k, now)).collect::<Vec<Holds>>()
    })
    .await
    {
        states.extend(indexes.into_iter().zip(found));
    }
    states.sort_by_key(|(index, _)| *index);
    for (index, state) in states {
        match state {
            Holds::Nothing => continue,
            Holds::WrongType => return Err(errors::wrong_type()),
            Holds::Ready => return Ok(Some(index)),
        }
    }
    Ok(None)
}

fn key_shard(coordinator: &dyn Coordinator, key: &[u8]) -> usize {
    shoal_store::slot::key_shard(key, coordinator.shard_count())
}

// ---- BLPOP, BRPOP, BLMPOP -----------------------------------------------------------------

/// Pops from the first ready list among `keys`: Some((key, elements)).
async fn list_pop_first(coordinator: &dyn Coordinator, keys: Vec<Bytes>, left: bool, count: usize) -> Result<Option<(Bytes, Vec<Bytes>)>, Frame> {
    let Some(index) = first_ready(coordinator, keys.clone(), holds_list).await? else {
        return Ok(None);
    };
    let key = keys[index].clone();
    let shard = key_shard(coordinator, &key);
    let popped = {
        let key = key.clone();
        ctx::hop_one(coordinator, shard, move |ctx| {
            let now = ctx.now_ms;
            let limits = ctx.settings.limits;
            let popped = lists::op_pop(ctx.db(), &key, left, count, &limits, now);
            if matches!(popped, Ok(Some(_))) {
                lists::notify_pop(ctx, &key, left);
            }
            popped
        })
        .await?
    };
    Ok(popped.map(|elements| (key, elements)))
}

fn pop_reply(key: Bytes, mut elements: Vec<Bytes>) -> Frame {
    Frame::Array(vec![Frame::Bulk(key), Frame::Bulk(elements.swap_remove(0))])
}

fn mpop_reply(key: Bytes, elements: Vec<Bytes>) -> Frame {
    Frame::Array(vec![Frame::Bulk(key), Frame::Array(elements.into_iter().map(Frame::Bulk).collect())])
}

fn blpop_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    list_pop_attempt(coordinator, args, true)
}

fn brpop_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    list_pop_attempt(coordinator, args, false)
}

/// BLPOP key [key ...] timeout (and BRPOP): at once when a list has elements.
fn list_pop_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>, left: bool) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let keys = args[1..args.len() - 1].to_vec();
        match list_pop_first(coordinator, keys, left, 1).await {
            Ok(Some((key, elements))) => Some(pop_reply(key, elements)),
            Ok(None) => None,
            Err(error) => Some(error),
        }
    }
    .boxed_local()
}

/// Pops `count` from the list at `key` for a claimed waiter; the key is known to be ready.
/// Redis counts the elements a served BLMPOP pops as changes, and nothing for a served BLPOP
/// or BRPOP: `counted` says which.
fn serve_list_pop(ctx: &mut Ctx, key: &[u8], left: bool, count: usize, counted: bool, claim: &mut dyn FnMut() -> bool) -> Result<Vec<Bytes>, Served> {
    let now = ctx.now_ms;
    if holds_list(ctx.db(), key, now) != Holds::Ready {
        return Err(Served::NotReady);
    }
    if !claim() {
        return Err(Served::Gone);
    }
    let limits = ctx.settings.limits;
    let popped = if counted { lists::op_pop(ctx.db(), key, left, count, &limits, now) } else { lists::pop_uncounted(ctx.db(), key, left, count, &limits, now) };
    match popped {
        Ok(Some(elements)) => {
            lists::notify_pop(ctx, key, left);
            Ok(elements)
        }
        // Checked just above, on this core, with nothing in between.
        _ => unreachable!("a ready list pops"),
    }
}

fn blpop_serve(ctx: &mut Ctx, key: &[u8], _args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    match serve_list_pop(ctx, key, true, 1, false, claim) {
        Ok(elements) => Served::Done(pop_reply(Bytes::copy_from_slice(key), elements)),
        Err(served) => served,
    }
}

fn brpop_serve(ctx: &mut Ctx, key: &[u8], _args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    match serve_list_pop(ctx, key, false, 1, false, claim) {
        Ok(elements) => Served::Done(pop_reply(Bytes::copy_from_slice(key), elements)),
        Err(served) => served,
    }
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
fn blmpop_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let (_, left, count) = match parse_mpop(&args, ["left", "right"]) {
            Ok(parsed) => parsed,
            Err(error) => return Some(error),
        };
        let keys: Vec<Bytes> = mpop_keys(&args).into_iter().map(|i| args[i].clone()).collect();
        match list_pop_first(coordinator, keys, left, count).await {
            Ok(Some((key, elements))) => Some(mpop_reply(key, elements)),
            Ok(None) => None,
            Err(error) => Some(error),
        }
    }
    .boxed_local()
}

fn blmpop_serve(ctx: &mut Ctx, key: &[u8], args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    let Ok((_, left, count)) = parse_mpop(args, ["left", "right"]) else { unreachable!("a waiter's arguments were checked") };
    match serve_list_pop(ctx, key, left, count, true, claim) {
        Ok(elements) => Served::Done(mpop_reply(Bytes::copy_from_slice(key), elements)),
        Err(served) => served,
    }
}

// ---- BLMOVE, BRPOPLPUSH -------------------------------------------------------------------

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout (and BRPOPLPUSH): at once when
/// the source has elements, as LMOVE.
fn blmove_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let (source, destination) = (args[1].clone(), args[2].clone());
        let (from_left, to_left) = move_sides(&args);
        let ready = match first_ready(coordinator, vec![source.clone()], holds_list).await {
            Ok(ready) => ready.is_some(),
            Err(error) => return Some(error),
        };
        if !ready {
            return None;
        }
        // As LMOVE: the destination's type is checked before anything moves.
        let destination_holds = {
            let destination = destination.clone();
            ctx::hop_one(coordinator, key_shard(coordinator, &destination), move |ctx| {
                let now = ctx.now_ms;
                holds_list(ctx.db(), &destination, now)
            })
            .await
        };
        if destination_holds == Holds::WrongType {
            return Some(errors::wrong_type());
        }
        let popped = {
            let source = source.clone();
            ctx::hop_one(coordinator, key_shard(coordinator, &source), move |ctx| {
                let now = ctx.now_ms;
                let limits = ctx.settings.limits;
                let popped = lists::op_pop(ctx.db(), &source, from_left, 1, &limits, now);
                // Whether the source emptied, for the events the destination's core raises.
                (popped, ctx.notifying(notify::GENERIC) && ctx.db().lookup_quiet(&source, now).is_none())
            })
            .await
        };
        let element = match popped {
            (Ok(Some(mut elements)), emptied) => (elements.swap_remove(0), emptied),
            (Ok(None), _) => return None,
            (Err(error), _) => return Some(error),
        };
        let (element, emptied) = element;
        let pushed = {
            let element = element.clone();
            ctx::hop_one(coordinator, key_shard(coordinator, &destination), move |ctx| {
                let now = ctx.now_ms;
                let limits = ctx.settings.limits;
                // The pop counted the move's one change.
                let pushed = lists::push_uncounted(ctx.db(), &destination, to_left, &[element], false, &limits, now);
                if pushed.is_ok() {
                    // Every event from one core, in Redis's order.
                    ctx.notify(notify::LIST, lists::push_event(to_left), &destination);
                    ctx.notify(notify::LIST, lists::pop_event(from_left), &source);
                    if emptied {
                        ctx.notify(notify::GENERIC, "del", &source);
                    }
                }
                pushed
            })
            .await
        };
        Some(match pushed {
            Ok(_) => Frame::Bulk(element),
            Err(error) => error,
        })
    }
    .boxed_local()
}

fn blmove_serve(ctx: &mut Ctx, key: &[u8], args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    let destination = &args[2];
    let (from_left, to_left) = move_sides(args);
    let now = ctx.now_ms;
    if holds_list(ctx.db(), key, now) != Holds::Ready {
        return Served::NotReady;
    }
    if shoal_store::slot::key_shard(destination, ctx.shard.shard_count) != ctx.shard.id {
        // Moving to another core needs the transaction layer: the client retries as a whole.
        return if claim() { Served::Elsewhere } else { Served::Gone };
    }
    if holds_list(ctx.db(), destination, now) == Holds::WrongType {
        // Redis answers the waiter with the error.
        return if claim() { Served::Done(errors::wrong_type()) } else { Served::Gone };
    }
    if !claim() {
        return Served::Gone;
    }
    let limits = ctx.settings.limits;
    // Redis counts no change for a served BLMOVE (the push that served it counted its own).
    let element = match lists::pop_uncounted(ctx.db(), key, from_left, 1, &limits, now) {
        Ok(Some(mut elements)) => elements.swap_remove(0),
        _ => unreachable!("a ready list pops"),
    };
    match lists::push_uncounted(ctx.db(), destination, to_left, std::slice::from_ref(&element), false, &limits, now) {
        Ok(_) => {
            lists::notify_move(ctx, key, destination, from_left, to_left);
            Served::Done(Frame::Bulk(element))
        }
        Err(error) => Served::Done(error),
    }
}

// ---- BLMOVEM ----------------------------------------------------------------------------

/// BLMOVEM: at once when the source holds enough elements (any with COUNT, `exactly` with
/// EXACTLY), as LMOVEM.
fn blmovem_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let Ok((from_left, to_left, how)) = lists::parse_lmovem(&args, 6) else { unreachable!("parse checked the arguments") };
        match lists::move_many_across_cores(coordinator, args[1].clone(), args[2].clone(), from_left, to_left, how).await {
            Ok(lists::Moved::Missing | lists::Moved::TooFew) => None,
            moved => Some(lists::moved_many_reply(moved)),
        }
    }
    .boxed_local()
}

fn blmovem_serve(ctx: &mut Ctx, key: &[u8], args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    let Ok((from_left, to_left, how)) = lists::parse_lmovem(args, 6) else { unreachable!("a waiter's arguments were checked") };
    let destination = &args[2];
    let now = ctx.now_ms;
    match lists::op_list_state(ctx.db(), key, now) {
        lists::ListState::List(len) if !how.exactly || len >= how.count => {}
        _ => return Served::NotReady,
    }
    if shoal_store::slot::key_shard(destination, ctx.shard.shard_count) != ctx.shard.id {
        // Moving to another core needs the transaction layer: the client retries as a whole.
        return if claim() { Served::Elsewhere } else { Served::Gone };
    }
    if !claim() {
        return Served::Gone;
    }
    // A destination of another type answers the waiter with the error, as Redis does.
    Served::Done(lists::moved_many_reply(lists::serve_move_many(ctx, key, destination, from_left, to_left, how)))
}

// ---- BZPOPMIN, BZPOPMAX, BZMPOP -------------------------------------------------------------

/// A score as Redis replies it: a bulk string in RESP2, a double in RESP3.
fn score_frame(score: f64, proto: Protocol) -> Frame {
    match proto {
        Protocol::Resp2 => Frame::Bulk(Bytes::from(shoal_resp::format_double(score))),
        Protocol::Resp3 => Frame::Double(score),
    }
}

async fn zset_pop_first(coordinator: &dyn Coordinator, keys: Vec<Bytes>, max: bool, count: usize) -> Result<Option<(Bytes, Vec<(Bytes, f64)>)>, Frame> {
    let Some(index) = first_ready(coordinator, keys.clone(), holds_zset).await? else {
        return Ok(None);
    };
    let key = keys[index].clone();
    let popped = {
        let key = key.clone();
        ctx::hop_one(coordinator, key_shard(coordinator, &key), move |ctx| zsets::pop_notifying(ctx, &key, max, count)).await?
    };
    Ok(popped.map(|members| (key, members)))
}

fn bzpop_reply(key: Bytes, members: Vec<(Bytes, f64)>, proto: Protocol) -> Frame {
    let (member, score) = members.into_iter().next().expect("a pop of a ready zset returns a member");
    Frame::Array(vec![Frame::Bulk(key), Frame::Bulk(member), score_frame(score, proto)])
}

fn bzmpop_reply(key: Bytes, members: Vec<(Bytes, f64)>, proto: Protocol) -> Frame {
    let pairs = members.into_iter().map(|(member, score)| Frame::Array(vec![Frame::Bulk(member), score_frame(score, proto)])).collect();
    Frame::Array(vec![Frame::Bulk(key), Frame::Array(pairs)])
}

fn bzpopmin_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    bzpop_attempt(coordinator, args, false)
}

fn bzpopmax_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    bzpop_attempt(coordinator, args, true)
}

/// BZPOPMIN key [key ...] timeout (and BZPOPMAX).
fn bzpop_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>, max: bool) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let keys = args[1..args.len() - 1].to_vec();
        match zset_pop_first(coordinator, keys, max, 1).await {
            Ok(Some((key, members))) => Some(bzpop_reply(key, members, coordinator.proto())),
            Ok(None) => None,
            Err(error) => Some(error),
        }
    }
    .boxed_local()
}

fn serve_zset_pop(ctx: &mut Ctx, key: &[u8], max: bool, count: usize, claim: &mut dyn FnMut() -> bool) -> Result<Vec<(Bytes, f64)>, Served> {
    let now = ctx.now_ms;
    if holds_zset(ctx.db(), key, now) != Holds::Ready {
        return Err(Served::NotReady);
    }
    if !claim() {
        return Err(Served::Gone);
    }
    match zsets::pop_notifying(ctx, key, max, count) {
        Ok(Some(members)) => Ok(members),
        _ => unreachable!("a ready zset pops"),
    }
}

fn bzpopmin_serve(ctx: &mut Ctx, key: &[u8], _args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    match serve_zset_pop(ctx, key, false, 1, claim) {
        Ok(members) => Served::Done(bzpop_reply(Bytes::copy_from_slice(key), members, ctx.proto)),
        Err(served) => served,
    }
}

fn bzpopmax_serve(ctx: &mut Ctx, key: &[u8], _args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    match serve_zset_pop(ctx, key, true, 1, claim) {
        Ok(members) => Served::Done(bzpop_reply(Bytes::copy_from_slice(key), members, ctx.proto)),
        Err(served) => served,
    }
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
fn bzmpop_attempt(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Option<Frame>> {
    async move {
        let (_, min, count) = match parse_mpop(&args, ["min", "max"]) {
            Ok(parsed) => parsed,
            Err(error) => return Some(error),
        };
        let keys: Vec<Bytes> = mpop_keys(&args).into_iter().map(|i| args[i].clone()).collect();
        match zset_pop_first(coordinator, keys, !min, count).await {
            Ok(Some((key, members))) => Some(bzmpop_reply(key, members, coordinator.proto())),
            Ok(None) => None,
            Err(error) => Some(error),
        }
    }
    .boxed_local()
}

fn bzmpop_serve(ctx: &mut Ctx, key: &[u8], args: &[Bytes], claim: &mut dyn FnMut() -> bool) -> Served {
    let Ok((_, min, count)) = parse_mpop(args, ["min", "max"]) else { unreachable!("a waiter's arguments were checked") };
    match serve_zset_pop(ctx, key, !min, count, claim) {
        Ok(members) => Served::Done(bzmpop_reply(Bytes::copy_from_slice(key), members, ctx.proto)),
        Err(served) => served,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_redis_7_2() {
        assert_eq!(parse_timeout(b"0"), Ok(None));
        assert_eq!(parse_timeout(b"0.0001"), Ok(Some(Duration::from_millis(1))), "rounded up, not forever");
        assert_eq!(parse_timeout(b"1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout(b"0x10"), Ok(Some(Duration::from_secs(16))), "strtold reads hex");
        for (text, error) in [
            ("-1", TIMEOUT_NEGATIVE),
            ("-inf", TIMEOUT_NEGATIVE),
            ("inf", TIMEOUT_OUT_OF_RANGE),
            ("1e400", TIMEOUT_OUT_OF_RANGE),
            ("1e16", TIMEOUT_OUT_OF_RANGE),
            ("9223372036854775", TIMEOUT_OUT_OF_RANGE),
            ("abc", TIMEOUT_NOT_FLOAT),
            ("nan", TIMEOUT_NOT_FLOAT),
            (" 1", TIMEOUT_NOT_FLOAT),
            ("", TIMEOUT_NOT_FLOAT),
        ] {
            assert_eq!(parse_timeout(text.as_bytes()), Err(errors::error(error)), "{text}");
        }
    }
}

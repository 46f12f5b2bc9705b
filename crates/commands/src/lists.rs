//! The list family: LPUSH, LPOP, LRANGE and friends (Redis's `t_list.c`), without the
//! blocking commands.
//!
//! Replies and errors follow Redis 7 byte for byte, including the order in which Redis checks
//! things (LINDEX looks the key up before it parses the index, LRANGE after). The encodings
//! and their conversions live in [`shoal_store::types::List`].
//!
//! LMOVE, RPOPLPUSH and LMPOP work on keys of any cores: their `multi` forms check every key
//! first and only then pop and push, all within one transaction. The blocking layer builds
//! BLPOP and friends on the public operations here ([`op_pop`], [`op_push`], [`op_move`],
//! [`op_mpop`], [`op_list_state`], [`op_check_destination`]) and the cross-core forms
//! ([`move_across_cores`], [`mpop_across_cores`]).

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::{AggregateKind, Encoded, Frame};
use shoal_store::slot;
use shoal_store::types::{Limits, List};
use shoal_store::{Db, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx, HopOp, HopResult};
use crate::errors;
use crate::table::{self, flags::*, CommandSpec, Handler, KeySpec};

const OUT_OF_RANGE_POSITIVE: &str = "ERR value is out of range, must be positive";
const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
const RANK_OUT_OF_RANGE: &str = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@list"], group: "list", ..CommandSpec::DEFAULT };
const PUSH_COMPLEXITY: &str = "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.";
const POP_COMPLEXITY: &str = "O(N) where N is the number of elements returned";

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "lpush",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
        complexity: PUSH_COMPLEXITY,
        handler: Handler::Keys { local: lpush, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "rpush",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Appends one or more elements to a list. Creates the key if it doesn't exist.",
        complexity: PUSH_COMPLEXITY,
        handler: Handler::Keys { local: rpush, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lpushx",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Prepends one or more elements to a list only when the list exists.",
        since: "2.2.0",
        complexity: PUSH_COMPLEXITY,
        handler: Handler::Keys { local: lpushx, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "rpushx",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Appends an element to a list only when the list exists.",
        since: "2.2.0",
        complexity: PUSH_COMPLEXITY,
        handler: Handler::Keys { local: rpushx, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lpop",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
        complexity: POP_COMPLEXITY,
        handler: Handler::Keys { local: lpop, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "rpop",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Returns and removes the last elements of the list. Deletes the list if the last element was popped.",
        complexity: POP_COMPLEXITY,
        handler: Handler::Keys { local: rpop, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "llen",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the length of a list.",
        handler: Handler::Keys { local: llen, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lrange",
        arity: 4,
        flags: READONLY,
        summary: "Returns a range of elements from a list.",
        complexity: "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        handler: Handler::Keys { local: lrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lindex",
        arity: 3,
        flags: READONLY,
        summary: "Returns an element from a list by its index.",
        complexity: "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        handler: Handler::Keys { local: lindex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lset",
        arity: 4,
        flags: WRITE | DENYOOM,
        summary: "Sets the value of an element in a list by its index.",
        complexity: "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        handler: Handler::Keys { local: lset, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "linsert",
        arity: 5,
        flags: WRITE | DENYOOM,
        summary: "Inserts an element before or after another element in a list.",
        since: "2.2.0",
        complexity: "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        handler: Handler::Keys { local: linsert, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lrem",
        arity: 4,
        flags: WRITE,
        summary: "Removes elements from a list. Deletes the list if the last element was removed.",
        complexity: "O(N+M) where N is the length of the list and M is the number of elements removed.",
        handler: Handler::Keys { local: lrem, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "ltrim",
        arity: 4,
        flags: WRITE,
        summary: "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
        complexity: "O(N) where N is the number of elements to be removed by the operation.",
        handler: Handler::Keys { local: ltrim, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lpos",
        arity: -3,
        flags: READONLY,
        summary: "Returns the index of matching elements in a list.",
        since: "6.0.6",
        complexity: "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        handler: Handler::Keys { local: lpos, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lmove",
        arity: 5,
        flags: WRITE | DENYOOM,
        keys: KeySpec::TWO,
        summary: "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
        since: "6.2.0",
        handler: Handler::Keys { local: lmove, multi: Some(lmove_multi) },
        ..BASE
    },
    CommandSpec {
        name: "lmovem",
        arity: -5,
        flags: WRITE | DENYOOM,
        keys: KeySpec::TWO,
        summary: "Moves up to (or exactly) a number of elements from one list to another and returns them. Deletes the source list if it becomes empty.",
        since: "8.10.0",
        complexity: "O(N) where N is the number of elements moved.",
        handler: Handler::Keys { local: lmovem, multi: Some(lmovem_multi) },
        ..BASE
    },
    CommandSpec {
        // Deprecated since 6.2.0 in favour of LMOVE with RIGHT LEFT.
        name: "rpoplpush",
        arity: 3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::TWO,
        summary: "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
        since: "1.2.0",
        handler: Handler::Keys { local: rpoplpush, multi: Some(rpoplpush_multi) },
        ..BASE
    },
    CommandSpec {
        name: "lmpop",
        arity: -4,
        flags: WRITE,
        keys: KeySpec::NONE,
        summary: "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
        since: "7.0.0",
        complexity: "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        handler: Handler::Keys { local: lmpop, multi: Some(lmpop_multi) },
        movable_keys: Some(lmpop_keys),
        ..BASE
    },
];

// ---- Operations ------------------------------------------------------------------------

fn fill(limits: &Limits) -> i32 {
    limits.list_max_listpack_size
}

/// The list at `key` for writing: None when missing, WRONGTYPE for another type.
fn list_mut<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut List>, Frame> {
    match db.lookup_write(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &mut entry.value {
            Value::List(list) => Ok(Some(list)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// The list at `key` for reading (counts a hit or a miss).
fn list_read<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a List>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::List(list) => Ok(Some(list)),
            _ => Err(errors::wrong_type()),
        },
    }
}

/// Pushes `elements` one by one at the head (`to_left`) or the tail of the list at `key`,
/// creating it unless `only_if_exists`. Returns the new length (0 when the key is missing
/// and `only_if_exists`). Counts one change per element pushed, as Redis counts LPUSH.
pub fn op_push(db: &mut Db, key: &[u8], to_left: bool, elements: &[Bytes], only_if_exists: bool, limits: &Limits, now_ms: u64) -> Result<usize, Frame> {
    let len = push_uncounted(db, key, to_left, elements, only_if_exists, limits, now_ms)?;
    if len > 0 {
        db.add_changes(elements.len() as u64);
    }
    Ok(len)
}

/// [`op_push`] without counting changes, for the caller that counts them its own way (LMOVE
/// counts one for the move, a served BLMOVE nothing, as Redis does).
pub fn push_uncounted(db: &mut Db, key: &[u8], to_left: bool, elements: &[Bytes], only_if_exists: bool, limits: &Limits, now_ms: u64) -> Result<usize, Frame> {
    if let Some(list) = list_mut(db, key, now_ms)? {
        list.push(elements, to_left, fill(limits));
        return Ok(list.len());
    }
    if only_if_exists || elements.is_empty() {
        return Ok(0);
    }
    let mut list = List::new();
    list.push(elements, to_left, fill(limits));
    let len = list.len();
    db.set(key, Value::List(Box::new(list)), now_ms);
    Ok(len)
}

/// Pops up to `count` elements from the head (`from_left`) or the tail of the list at `key`,
/// in pop order, and deletes the key when it empties. Ok(None) when the key is missing.
/// Counts one change per element popped, as Redis counts LPOP.
pub fn op_pop(db: &mut Db, key: &[u8], from_left: bool, count: usize, limits: &Limits, now_ms: u64) -> Result<Option<Vec<Bytes>>, Frame> {
    let popped = pop_uncounted(db, key, from_left, count, limits, now_ms)?;
    if let Some(popped) = &popped {
        db.add_changes(popped.len() as u64);
    }
    Ok(popped)
}

/// [`op_pop`] without counting changes (see [`push_uncounted`]).
pub fn pop_uncounted(db: &mut Db, key: &[u8], from_left: bool, count: usize, limits: &Limits, now_ms: u64) -> Result<Option<Vec<Bytes>>, Frame> {
    let Some(list) = list_mut(db, key, now_ms)? else {
        return Ok(None);
    };
    let popped = list.pop(from_left, count, fill(limits));
    if list.is_empty() {
        db.remove(key);
    }
    Ok(Some(popped))
}

/// What a key holds, as the multi-key commands see it before they change anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListState {
    Missing,
    WrongType,
    /// A list of this many elements (never 0: empty lists do not exist).
    List(usize),
}

/// The state of `key` (looked up for writing, as LMOVE and LMPOP do).
pub fn op_list_state(db: &mut Db, key: &[u8], now_ms: u64) -> ListState {
    match list_mut(db, key, now_ms) {
        Ok(None) => ListState::Missing,
        Ok(Some(list)) => ListState::List(list.len()),
        Err(_) => ListState::WrongType,
    }
}

/// LMOVE's check of its destination: Ok when it is missing or a list, WRONGTYPE otherwise.
pub fn op_check_destination(db: &mut Db, key: &[u8], now_ms: u64) -> Result<(), Frame> {
    list_mut(db, key, now_ms).map(|_| ())
}

/// LMOVE on one core: pops from `source` and pushes to `destination`, checking both types
/// first. Ok(None) when the source is missing. Counts one change for the move.
pub fn op_move(db: &mut Db, source: &[u8], destination: &[u8], from_left: bool, to_left: bool, limits: &Limits, now_ms: u64) -> Result<Option<Bytes>, Frame> {
    let moved = move_uncounted(db, source, destination, from_left, to_left, limits, now_ms)?;
    db.add_changes(moved.is_some() as u64);
    Ok(moved)
}

fn move_uncounted(
    db: &mut Db,
    source: &[u8],
    destination: &[u8],
    from_left: bool,
    to_left: bool,
    limits: &Limits,
    now_ms: u64,
) -> Result<Option<Bytes>, Frame> {
    if source == destination {
        let Some(list) = list_mut(db, source, now_ms)? else {
            return Ok(None);
        };
        return Ok(list.rotate(from_left, to_left, fill(limits)));
    }
    if list_mut(db, source, now_ms)?.is_none() {
        return Ok(None);
    }
    op_check_destination(db, destination, now_ms)?;
    let Some(mut popped) = pop_uncounted(db, source, from_left, 1, limits, now_ms)? else {
        return Ok(None);
    };
    let Some(element) = popped.pop() else {
        return Ok(None);
    };
    push_uncounted(db, destination, to_left, std::slice::from_ref(&element), false, limits, now_ms)?;
    Ok(Some(element))
}

// ---- Pushes and pops -------------------------------------------------------------------

fn push_generic(ctx: &mut Ctx, args: &[Bytes], to_left: bool, only_if_exists: bool) -> Frame {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let pushed = op_push(ctx.db(), &args[1], to_left, &args[2..], only_if_exists, &limits, now);
    if matches!(pushed, Ok(len) if len > 0) {
        ctx.notify(notify::LIST, push_event(to_left), &args[1]);
    }
    ctx::reply(pushed, args::int)
}

/// The event of a push to the head (`lpush`) or the tail.
pub fn push_event(to_left: bool) -> &'static str {
    if to_left {
        "lpush"
    } else {
        "rpush"
    }
}

/// The event of a pop from the head (`lpop`) or the tail.
pub fn pop_event(from_left: bool) -> &'static str {
    if from_left {
        "lpop"
    } else {
        "rpop"
    }
}

/// The events of a pop that took something from `key`: the pop, then `del` if it emptied.
pub fn notify_pop(ctx: &mut Ctx, key: &[u8], from_left: bool) {
    ctx.notify(notify::LIST, pop_event(from_left), key);
    ctx.notify_del_if_gone(key);
}

/// LPUSH key element [element ...]
fn lpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, true, false)
}

/// RPUSH key element [element ...]
fn rpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, false, false)
}

/// LPUSHX key element [element ...]
fn lpushx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, true, true)
}

/// RPUSHX key element [element ...]
fn rpushx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, false, true)
}

/// Parses a count that must not be negative (Redis's `getPositiveLongFromObjectOrReply`):
/// a non-integer gets the same `error`.
fn parse_non_negative(arg: &[u8], error: &str) -> Result<u64, Frame> {
    match shoal_store::value::parse_canonical_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(errors::error(error)),
    }
}

/// Parses an integer in 1..=i64::MAX, any failure being `error`.
fn parse_positive(arg: &[u8], error: &str) -> Result<u64, Frame> {
    match shoal_store::value::parse_canonical_i64(arg) {
        Some(n) if n >= 1 => Ok(n as u64),
        _ => Err(errors::error(error)),
    }
}

fn pop_generic(ctx: &mut Ctx, args: &[Bytes], from_left: bool, name: &str) -> Frame {
    if args.len() > 3 {
        return errors::wrong_arity(name);
    }
    let count = match args.get(2).map(|arg| parse_non_negative(arg, OUT_OF_RANGE_POSITIVE)).transpose() {
        Ok(count) => count,
        Err(e) => return e,
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let db = ctx.db();
    let popped = op_pop(db, &args[1], from_left, count.map_or(1, |count| usize::try_from(count).unwrap_or(usize::MAX)), &limits, now);
    if matches!(&popped, Ok(Some(popped)) if !popped.is_empty()) {
        notify_pop(ctx, &args[1], from_left);
    }
    match count {
        None => match popped {
            Err(e) => e,
            Ok(None) => Frame::Null,
            Ok(Some(mut popped)) => popped.pop().map_or(Frame::Null, Frame::Bulk),
        },
        Some(_) => match popped {
            Err(e) => e,
            Ok(None) => Frame::NullArray,
            Ok(Some(popped)) => Frame::Array(popped.into_iter().map(Frame::Bulk).collect()),
        },
    }
}

/// LPOP key [count]
fn lpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    pop_generic(ctx, args, true, "lpop")
}

/// RPOP key [count]
fn rpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    pop_generic(ctx, args, false, "rpop")
}

// ---- Reads -----------------------------------------------------------------------------

/// LLEN key
fn llen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(list_read(ctx.db(), &args[1], now), |list| args::int(list.map_or(0, List::len)))
}

/// Redis's range normalisation: (first index, count), count 0 for an empty range.
fn range_of(start: i64, end: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 { start.saturating_add(len).max(0) } else { start };
    let end = if end < 0 { end.saturating_add(len) } else { end };
    if start > end || start >= len {
        return (0, 0);
    }
    let end = end.min(len - 1);
    (start as usize, (end - start + 1) as usize)
}

/// LRANGE key start stop
fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (start, end) = match (args::parse_i64(&args[2]), args::parse_i64(&args[3])) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let (now, proto) = (ctx.now_ms, ctx.proto);
    match list_read(ctx.db(), &args[1], now) {
        Err(e) => e,
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(list)) => {
            // Encoded straight from the list: no copy and no frame per element.
            let (first, count) = range_of(start, end, list.len());
            let mut reply = Encoded::new(AggregateKind::Array, proto, count);
            list.iter_from(first, true).take(count).for_each(|element| reply.push_bulk(element));
            Frame::Encoded(reply)
        }
    }
}

/// LINDEX key index
fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    // Redis looks the key up before it parses the index.
    let list = match list_read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) => return Frame::Null,
        Ok(Some(list)) => list,
    };
    match args::parse_i64(&args[2]) {
        Err(e) => e,
        Ok(index) => list.get(index).map_or(Frame::Null, |e| Frame::Bulk(Bytes::copy_from_slice(e))),
    }
}

/// LPOS's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LposOptions {
    /// Which match to start from, 1-based; negative searches from the tail.
    rank: i64,
    /// COUNT: None when not given, Some(0) for every match.
    count: Option<u64>,
    /// Elements to compare at most; 0 for all.
    maxlen: u64,
}

fn parse_lpos(args: &[Bytes]) -> Result<LposOptions, Frame> {
    let mut options = LposOptions { rank: 1, count: None, maxlen: 0 };
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        let opt = &args[i];
        if is(opt, "rank") && more {
            i += 1;
            let rank = args::parse_i64(&args[i])?;
            // Redis 7.2 refuses the one rank it cannot negate (7.0 misbehaved on it).
            if rank == i64::MIN {
                return Err(errors::error(RANK_OUT_OF_RANGE));
            }
            if rank == 0 {
                return Err(errors::error(RANK_ZERO));
            }
            options.rank = rank;
        } else if is(opt, "count") && more {
            i += 1;
            options.count = Some(parse_non_negative(&args[i], COUNT_NEGATIVE)?);
        } else if is(opt, "maxlen") && more {
            i += 1;
            options.maxlen = parse_non_negative(&args[i], MAXLEN_NEGATIVE)?;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    Ok(options)
}

/// The indexes of the matches LPOS reports: from the `rank`-th match on, at most `count`
/// (0: all), comparing at most `maxlen` elements (0: all).
fn lpos_matches(list: &List, element: &[u8], options: LposOptions) -> Vec<usize> {
    let len = list.len();
    let from_tail = options.rank < 0;
    let skip = options.rank.unsigned_abs() - 1;
    let wanted = match options.count {
        None => 1,
        Some(0) => u64::MAX,
        Some(n) => n,
    };
    let scan = if options.maxlen == 0 { len } else { usize::try_from(options.maxlen).unwrap_or(usize::MAX).min(len) };
    let elements: Box<dyn Iterator<Item = &[u8]>> = if from_tail { Box::new(list.iter().rev()) } else { Box::new(list.iter()) };
    let mut matches = Vec::new();
    let mut seen = 0u64;
    for (i, e) in elements.take(scan).enumerate() {
        if e != element {
            continue;
        }
        seen += 1;
        if seen > skip {
            matches.push(if from_tail { len - 1 - i } else { i });
            if matches.len() as u64 >= wanted {
                break;
            }
        }
    }
    matches
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let options = match parse_lpos(args) {
        Ok(options) => options,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let list = match list_read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) if options.count.is_some() => return Frame::Array(Vec::new()),
        Ok(None) => return Frame::Null,
        Ok(Some(list)) => list,
    };
    let matches = lpos_matches(list, &args[2], options);
    match options.count {
        Some(_) => Frame::Array(matches.into_iter().map(args::int).collect()),
        None => matches.first().map_or(Frame::Null, |&i| args::int(i)),
    }
}

// ---- Changes in place ------------------------------------------------------------------

/// LSET key index element
fn lset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let list = match list_mut(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) => return errors::error(errors::NO_SUCH_KEY),
        Ok(Some(list)) => list,
    };
    let index = match args::parse_i64(&args[2]) {
        Ok(index) => index,
        Err(e) => return e,
    };
    if list.set(index, &args[3], fill(&limits)) {
        ctx.db().add_changes(1);
        ctx.notify(notify::LIST, "lset", &args[1]);
        args::ok()
    } else {
        errors::error(INDEX_OUT_OF_RANGE)
    }
}

/// LINSERT key <BEFORE | AFTER> pivot element
fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return errors::syntax();
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    match list_mut(ctx.db(), &args[1], now) {
        Err(e) => e,
        Ok(None) => args::int(0),
        Ok(Some(list)) => {
            if list.insert(&args[3], &args[4], after, fill(&limits)) {
                let len = list.len();
                ctx.db().add_changes(1);
                ctx.notify(notify::LIST, "linsert", &args[1]);
                args::int(len)
            } else {
                args::int(-1)
            }
        }
    }
}

/// LREM key count element
fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let count = match args::parse_i64(&args[2]) {
        Ok(count) => count,
        Err(e) => return e,
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let db = ctx.db();
    let list = match list_mut(db, &args[1], now) {
        Err(e) => return e,
        Ok(None) => return args::int(0),
        Ok(Some(list)) => list,
    };
    let removed = list.remove(&args[3], count, fill(&limits));
    if list.is_empty() {
        db.remove(&args[1]);
    }
    db.add_changes(removed as u64);
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", &args[1]);
        ctx.notify_del_if_gone(&args[1]);
    }
    args::int(removed)
}

/// LTRIM key start stop
fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (start, end) = match (args::parse_i64(&args[2]), args::parse_i64(&args[3])) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let db = ctx.db();
    let list = match list_mut(db, &args[1], now) {
        Err(e) => return e,
        Ok(None) => return args::ok(),
        Ok(Some(list)) => list,
    };
    let len = list.len();
    let (first, count) = range_of(start, end, len);
    let (head, tail) = if count == 0 { (len, 0) } else { (first, len - first - count) };
    list.trim(head, tail, fill(&limits));
    if list.is_empty() {
        db.remove(&args[1]);
    }
    // One change per element trimmed away.
    db.add_changes((head + tail) as u64);
    ctx.notify(notify::LIST, "ltrim", &args[1]);
    ctx.notify_del_if_gone(&args[1]);
    args::ok()
}

// ---- LMOVE, RPOPLPUSH ------------------------------------------------------------------

/// Parses LEFT or RIGHT: true for LEFT.
pub fn parse_side(arg: &[u8]) -> Result<bool, Frame> {
    if is(arg, "left") {
        Ok(true)
    } else if is(arg, "right") {
        Ok(false)
    } else {
        Err(errors::syntax())
    }
}

fn parse_lmove(args: &[Bytes]) -> Result<(bool, bool), Frame> {
    Ok((parse_side(&args[3])?, parse_side(&args[4])?))
}

fn move_local(ctx: &mut Ctx, args: &[Bytes], from_left: bool, to_left: bool) -> Frame {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let moved = op_move(ctx.db(), &args[1], &args[2], from_left, to_left, &limits, now);
    if matches!(moved, Ok(Some(_))) {
        notify_move(ctx, &args[1], &args[2], from_left, to_left);
    }
    moved_reply(moved)
}

/// The events of a move from `source` to `destination` on one core, in Redis's order: the
/// push, the pop, and `del` if the source emptied.
pub fn notify_move(ctx: &mut Ctx, source: &[u8], destination: &[u8], from_left: bool, to_left: bool) {
    ctx.notify(notify::LIST, push_event(to_left), destination);
    notify_pop(ctx, source, from_left);
}

/// LMOVE with source and destination on different cores, in one transaction: check both
/// keys (in parallel), then pop on the source's core, then push on the destination's.
/// Ok(None) when the source is missing. (BLMOVE can run it too.)
pub async fn move_across_cores(
    coordinator: &dyn Coordinator,
    source: Bytes,
    destination: Bytes,
    from_left: bool,
    to_left: bool,
) -> Result<Option<Bytes>, Frame> {
    Ok(match move_many_across_cores(coordinator, source, destination, from_left, to_left, HowMany::ONE).await? {
        Moved::Elements(mut elements) => elements.pop(),
        Moved::Missing | Moved::TooFew => None,
    })
}

/// LMOVEM (and LMOVE) on keys of any cores, in one transaction: on one core as
/// [`move_many_local`]; across two, check both keys (in parallel), then pop on the source's
/// core, then push on the destination's, which raises every event in Redis's order.
pub async fn move_many_across_cores(
    coordinator: &dyn Coordinator,
    source: Bytes,
    destination: Bytes,
    from_left: bool,
    to_left: bool,
    how: HowMany,
) -> Result<Moved, Frame> {
    let shard_count = coordinator.shard_count();
    let (source_shard, destination_shard) = (slot::key_shard(&source, shard_count), slot::key_shard(&destination, shard_count));
    if source_shard == destination_shard {
        return ctx::hop_one(coordinator, source_shard, move |ctx: &mut Ctx| move_many_local(ctx, &source, &destination, from_left, to_left, how)).await;
    }
    let check_source = {
        let source = source.clone();
        move |ctx: &mut Ctx| {
            let now = ctx.now_ms;
            op_list_state(ctx.db(), &source, now)
        }
    };
    let check_destination = {
        let destination = destination.clone();
        move |ctx: &mut Ctx| {
            let now = ctx.now_ms;
            op_check_destination(ctx.db(), &destination, now)
        }
    };
    let ops: Vec<(usize, HopOp)> = vec![
        (source_shard, Box::new(move |ctx: &mut Ctx| Box::new(check_source(ctx)) as HopResult)),
        (destination_shard, Box::new(move |ctx: &mut Ctx| Box::new(check_destination(ctx)) as HopResult)),
    ];
    let mut results = coordinator.hop(ops).await.into_iter();
    let source_state = *results.next().expect("one result per op").downcast::<ListState>().expect("a list state");
    let destination_ok = *results.next().expect("one result per op").downcast::<Result<(), Frame>>().expect("a check result");
    let len = match source_state {
        ListState::Missing => return Ok(how.missing()),
        ListState::WrongType => return Err(errors::wrong_type()),
        ListState::List(len) => len,
    };
    destination_ok?;
    if how.exactly && len < how.count {
        return Ok(Moved::TooFew);
    }
    let popped = {
        let source = source.clone();
        ctx::hop_one(coordinator, source_shard, move |ctx: &mut Ctx| {
            let (now, limits) = (ctx.now_ms, ctx.settings.limits);
            // One change per element moved.
            let popped = op_pop(ctx.db(), &source, from_left, how.count, &limits, now)?;
            // Whether the source emptied, for the events the destination's core raises.
            Ok::<_, Frame>((popped, ctx.notifying(notify::GENERIC) && ctx.db().lookup_quiet(&source, now).is_none()))
        })
        .await?
    };
    let (popped, emptied) = popped;
    let Some(popped) = popped.filter(|p| !p.is_empty()) else {
        return Ok(how.missing());
    };
    let (pushed, reads) = arrange(popped, from_left, to_left, how.one_by_one);
    ctx::hop_one(coordinator, destination_shard, move |ctx: &mut Ctx| {
        let (now, limits) = (ctx.now_ms, ctx.settings.limits);
        let pushed = push_uncounted(ctx.db(), &destination, to_left, &pushed, false, &limits, now);
        if pushed.is_ok() {
            // Every event from here, in Redis's order, so that they are published in order
            // from one core.
            ctx.notify(notify::LIST, push_event(to_left), &destination);
            ctx.notify(notify::LIST, pop_event(from_left), &source);
            if emptied {
                ctx.notify(notify::GENERIC, "del", &source);
            }
        }
        pushed
    })
    .await?;
    Ok(Moved::Elements(reads))
}

fn moved_reply(moved: Result<Option<Bytes>, Frame>) -> Frame {
    ctx::reply(moved, |moved| moved.map_or(Frame::Null, Frame::Bulk))
}

/// LMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT>
fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match parse_lmove(args) {
        Ok((from_left, to_left)) => move_local(ctx, args, from_left, to_left),
        Err(e) => e,
    }
}

fn lmove_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        match parse_lmove(&args) {
            Ok((from_left, to_left)) => moved_reply(move_across_cores(coordinator, args[1].clone(), args[2].clone(), from_left, to_left).await),
            Err(e) => e,
        }
    }
    .boxed_local()
}

/// RPOPLPUSH source destination
fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    move_local(ctx, args, false, true)
}

fn rpoplpush_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { moved_reply(move_across_cores(coordinator, args[1].clone(), args[2].clone(), false, true).await) }.boxed_local()
}

// ---- LMOVEM ----------------------------------------------------------------------------

/// How many elements LMOVEM moves, and in what arrangement: its optional `how-many` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HowMany {
    /// COUNT's or EXACTLY's number (at least 1).
    pub count: usize,
    /// EXACTLY: all `count` elements or none.
    pub exactly: bool,
    /// OBO: each element pushed as it is popped, so the destination gets them in pop order
    /// from its end. BULK: all at once, in their order in the source.
    pub one_by_one: bool,
}

impl HowMany {
    /// No block: one element, as LMOVE.
    pub const ONE: HowMany = HowMany { count: 1, exactly: false, one_by_one: true };

    /// What a missing source means: nothing to move, or too few with EXACTLY.
    fn missing(self) -> Moved {
        if self.exactly {
            Moved::TooFew
        } else {
            Moved::Missing
        }
    }
}

/// LMOVEM's (and BLMOVEM's) arguments after the sides (and the timeout): none, or
/// `COUNT count | EXACTLY exactly` then `OBO | BULK`.
pub fn parse_how_many(rest: &[Bytes]) -> Result<HowMany, Frame> {
    let [selector, count, order] = rest else {
        return if rest.is_empty() { Ok(HowMany::ONE) } else { Err(errors::syntax()) };
    };
    let exactly = if is(selector, "count") {
        false
    } else if is(selector, "exactly") {
        true
    } else {
        return Err(errors::syntax());
    };
    let count = parse_positive(count, COUNT_NOT_POSITIVE)?;
    let one_by_one = if is(order, "obo") {
        true
    } else if is(order, "bulk") {
        false
    } else {
        return Err(errors::syntax());
    };
    Ok(HowMany { count: usize::try_from(count).unwrap_or(usize::MAX), exactly, one_by_one })
}

/// The sides and the `how-many` block of LMOVEM source destination <LEFT | RIGHT>
/// <LEFT | RIGHT> [...], or of BLMOVEM, whose block follows its timeout (`block_at` 6).
pub fn parse_lmovem(args: &[Bytes], block_at: usize) -> Result<(bool, bool, HowMany), Frame> {
    let from_left = parse_side(&args[3])?;
    let to_left = parse_side(&args[4])?;
    Ok((from_left, to_left, parse_how_many(args.get(block_at..).unwrap_or_default())?))
}

/// What LMOVEM did.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// The source does not exist (and no EXACTLY).
    Missing,
    /// EXACTLY asked for more elements than the source holds, or it is missing: nothing
    /// moved.
    TooFew,
    /// The elements moved, as they now read on the destination, head to tail.
    Elements(Vec<Bytes>),
}

/// For elements popped (in pop order): the order to push them in, one at a time at the
/// destination's end, and how they then read on the destination, head to tail.
fn arrange(popped: Vec<Bytes>, from_left: bool, to_left: bool, one_by_one: bool) -> (Vec<Bytes>, Vec<Bytes>) {
    let mut pushed = popped;
    if !one_by_one {
        // BULK keeps the source's order: popped from the tail, they came out reversed ...
        if !from_left {
            pushed.reverse();
        }
        // ... and pushed one at a time onto the head, they would be laid down reversed.
        if to_left {
            pushed.reverse();
        }
    }
    let mut reads = pushed.clone();
    if to_left {
        reads.reverse();
    }
    (pushed, reads)
}

/// LMOVEM on one core, counting no change: checks the source, then the destination's type,
/// then EXACTLY's length, then pops every element it moves before it pushes any (so a list
/// moved onto itself keeps its key, and its TTL, throughout).
fn move_many_uncounted(
    db: &mut Db,
    source: &[u8],
    destination: &[u8],
    (from_left, to_left): (bool, bool),
    how: HowMany,
    limits: &Limits,
    now_ms: u64,
) -> Result<Moved, Frame> {
    let Some(len) = list_mut(db, source, now_ms)?.map(|list| list.len()) else {
        return Ok(how.missing());
    };
    let same = source == destination;
    if !same {
        op_check_destination(db, destination, now_ms)?;
    }
    if how.exactly && len < how.count {
        return Ok(Moved::TooFew);
    }
    let take = how.count.min(len);
    let popped = if same {
        list_mut(db, source, now_ms)?.map(|list| list.pop(from_left, take, fill(limits))).unwrap_or_default()
    } else {
        pop_uncounted(db, source, from_left, take, limits, now_ms)?.unwrap_or_default()
    };
    let (pushed, reads) = arrange(popped, from_left, to_left, how.one_by_one);
    push_uncounted(db, destination, to_left, &pushed, false, limits, now_ms)?;
    Ok(Moved::Elements(reads))
}

/// [`move_many_uncounted`] on `ctx`'s database, raising the move's events and counting a
/// change per element moved.
fn move_many_local(ctx: &mut Ctx, source: &[u8], destination: &[u8], from_left: bool, to_left: bool, how: HowMany) -> Result<Moved, Frame> {
    let moved = serve_move_many(ctx, source, destination, from_left, to_left, how)?;
    if let Moved::Elements(elements) = &moved {
        ctx.db().add_changes(elements.len() as u64);
    }
    Ok(moved)
}

/// A served BLMOVEM on one core: [`move_many_uncounted`] with the move's events (Redis counts
/// no change for a served blocking move).
pub fn serve_move_many(ctx: &mut Ctx, source: &[u8], destination: &[u8], from_left: bool, to_left: bool, how: HowMany) -> Result<Moved, Frame> {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let moved = move_many_uncounted(ctx.db(), source, destination, (from_left, to_left), how, &limits, now)?;
    if matches!(moved, Moved::Elements(_)) {
        notify_move(ctx, source, destination, from_left, to_left);
    }
    Ok(moved)
}

/// LMOVEM's reply: the elements as they read on the destination; an empty array when the
/// source is missing; nil when EXACTLY found too few.
pub fn moved_many_reply(moved: Result<Moved, Frame>) -> Frame {
    ctx::reply(moved, |moved| match moved {
        Moved::Missing => Frame::Array(Vec::new()),
        Moved::TooFew => Frame::NullArray,
        Moved::Elements(elements) => Frame::Array(elements.into_iter().map(Frame::Bulk).collect()),
    })
}

/// LMOVEM source destination <LEFT | RIGHT> <LEFT | RIGHT> [<COUNT count | EXACTLY exactly> <OBO | BULK>]
fn lmovem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    moved_many_reply(parse_lmovem(args, 5).and_then(|(from_left, to_left, how)| move_many_local(ctx, &args[1], &args[2], from_left, to_left, how)))
}

fn lmovem_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let (from_left, to_left, how) = match parse_lmovem(&args, 5) {
            Ok(parsed) => parsed,
            Err(e) => return e,
        };
        moved_many_reply(move_many_across_cores(coordinator, args[1].clone(), args[2].clone(), from_left, to_left, how).await)
    }
    .boxed_local()
}

// ---- LMPOP -----------------------------------------------------------------------------

/// LMPOP's keys: `numkeys` at argument 1, the keys after it.
fn lmpop_keys(args: &[Bytes]) -> Vec<usize> {
    table::numkeys_positions(args, 1, &[])
}

/// A parsed LMPOP: how many keys (from argument 2), which end, how many elements.
struct Lmpop {
    numkeys: usize,
    from_left: bool,
    count: usize,
}

fn parse_lmpop(args: &[Bytes]) -> Result<Lmpop, Frame> {
    let numkeys = parse_positive(&args[1], NUMKEYS_NOT_POSITIVE)?;
    // The side follows the keys; numkeys beyond the arguments is a syntax error.
    let side_at = usize::try_from(numkeys).ok().and_then(|n| n.checked_add(2)).filter(|&at| at < args.len()).ok_or_else(errors::syntax)?;
    let from_left = parse_side(&args[side_at])?;
    let mut count = None;
    let mut i = side_at + 1;
    while i < args.len() {
        if count.is_none() && is(&args[i], "count") && i + 1 < args.len() {
            count = Some(parse_positive(&args[i + 1], COUNT_NOT_POSITIVE)?);
            i += 2;
        } else {
            return Err(errors::syntax());
        }
    }
    Ok(Lmpop { numkeys: side_at - 2, from_left, count: count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX)) })
}

/// `[key, [elements...]]`, or a null array when nothing was popped.
fn mpop_reply(popped: Result<Option<(Bytes, Vec<Bytes>)>, Frame>) -> Frame {
    ctx::reply(popped, |popped| match popped {
        None => Frame::NullArray,
        Some((key, elements)) => Frame::Array(vec![Frame::Bulk(key), Frame::Array(elements.into_iter().map(Frame::Bulk).collect())]),
    })
}

/// LMPOP on one core: pops up to `count` elements from the first of `keys` that holds a
/// list; WRONGTYPE when a key of another type comes first. Ok(None) when every key is
/// missing.
pub fn op_mpop(db: &mut Db, keys: &[Bytes], from_left: bool, count: usize, limits: &Limits, now_ms: u64) -> Result<Option<(Bytes, Vec<Bytes>)>, Frame> {
    for key in keys {
        if let Some(popped) = op_pop(db, key, from_left, count, limits, now_ms)? {
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

/// LMPOP over keys of several cores, in one transaction: read every key's state (one hop),
/// then pop from the first list in argument order on its core, unless a key of another type
/// comes first. (BLMPOP can run it too.)
pub async fn mpop_across_cores(coordinator: &dyn Coordinator, keys: Vec<Bytes>, from_left: bool, count: usize) -> Result<Option<(Bytes, Vec<Bytes>)>, Frame> {
    let mut states = vec![ListState::Missing; keys.len()];
    let groups = ctx::group_by_shard(coordinator.shard_count(), keys.iter().cloned().enumerate());
    let results = ctx::hop_per_shard(coordinator, groups, |ctx, keys| {
        let now = ctx.now_ms;
        let db = ctx.db();
        keys.iter().map(|key| op_list_state(db, key, now)).collect::<Vec<_>>()
    })
    .await;
    for (indexes, found) in results {
        for (index, state) in indexes.into_iter().zip(found) {
            states[index] = state;
        }
    }
    let Some(first) = states.iter().position(|s| *s != ListState::Missing) else {
        return Ok(None);
    };
    if states[first] == ListState::WrongType {
        return Err(errors::wrong_type());
    }
    let key = keys[first].clone();
    let shard = slot::key_shard(&key, coordinator.shard_count());
    let popped = {
        let key = key.clone();
        ctx::hop_one(coordinator, shard, move |ctx: &mut Ctx| {
            let (now, limits) = (ctx.now_ms, ctx.settings.limits);
            let popped = op_pop(ctx.db(), &key, from_left, count, &limits, now);
            if matches!(&popped, Ok(Some(_))) {
                notify_pop(ctx, &key, from_left);
            }
            popped
        })
        .await?
    };
    Ok(popped.map(|popped| (key, popped)))
}

/// LMPOP numkeys key [key ...] <LEFT | RIGHT> [COUNT count]
fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let parsed = match parse_lmpop(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let popped = op_mpop(ctx.db(), &args[2..2 + parsed.numkeys], parsed.from_left, parsed.count, &limits, now);
    if let Ok(Some((key, _))) = &popped {
        notify_pop(ctx, key, parsed.from_left);
    }
    mpop_reply(popped)
}

fn lmpop_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        match parse_lmpop(&args) {
            Ok(parsed) => mpop_reply(mpop_across_cores(coordinator, args[2..2 + parsed.numkeys].to_vec(), parsed.from_left, parsed.count).await),
            Err(e) => e,
        }
    }
    .boxed_local()
}

#[cfg(test)]
mod tests {
    use crate::errors::{NOT_INTEGER, NO_SUCH_KEY, SYNTAX, WRONGTYPE};
    use crate::testing::replies::*;
    use crate::testing::{check, Harness};
    use shoal_resp::Frame;

    fn null() -> Frame {
        Frame::Null
    }

    #[test]
    fn push_pop_and_length() {
        check(
            &[
                &["RPUSH", "l", "a", "b", "c"],
                &["LPUSH", "l", "z"],
                &["LLEN", "l"],
                &["LPOP", "l"],
                &["RPOP", "l", "2"],
                &["RPOP", "l", "5"],
                &["EXISTS", "l"],
                &["LPOP", "l"],
                &["LPOP", "l", "1"],
                &["LPUSHX", "l", "a"],
                &["RPUSHX", "l", "a"],
            ],
            &[int(3), int(4), int(4), bulk("z"), strings(&["c", "b"]), strings(&["a"]), int(0), null(), Frame::NullArray, int(0), int(0)],
        );
    }

    #[test]
    fn pop_count_errors_and_shapes() {
        check(
            &[
                &["SET", "s", "v"],
                &["LPOP", "nokey", "abc"],
                &["LPOP", "nokey", "-1"],
                &["LPOP", "nokey", "0"],
                &["LPOP", "s", "0"],
                &["RPUSH", "l", "a"],
                &["LPOP", "l", "0"],
                &["LPOP", "l", "1", "2"],
            ],
            &[
                ok(),
                err(super::OUT_OF_RANGE_POSITIVE),
                err(super::OUT_OF_RANGE_POSITIVE),
                Frame::NullArray,
                err(WRONGTYPE),
                int(1),
                arr(vec![]),
                err("ERR wrong number of arguments for 'lpop' command"),
            ],
        );
    }

    #[test]
    fn range_index_and_set() {
        check(
            &[
                &["RPUSH", "l", "a", "b", "c", "d"],
                &["LRANGE", "l", "1", "-2"],
                &["LRANGE", "l", "-100", "100"],
                &["LRANGE", "l", "3", "1"],
                &["LRANGE", "nokey", "x", "1"],
                &["LINDEX", "l", "-1"],
                &["LINDEX", "l", "4"],
                &["LINDEX", "nokey", "x"],
                &["LINDEX", "l", "x"],
                &["LSET", "l", "-4", "A"],
                &["LSET", "l", "4", "A"],
                &["LSET", "nokey", "x", "A"],
                &["LRANGE", "l", "0", "0"],
            ],
            &[
                int(4),
                strings(&["b", "c"]),
                strings(&["a", "b", "c", "d"]),
                arr(vec![]),
                err(NOT_INTEGER),
                bulk("d"),
                null(),
                null(),
                err(NOT_INTEGER),
                ok(),
                err(super::INDEX_OUT_OF_RANGE),
                err(NO_SUCH_KEY),
                strings(&["A"]),
            ],
        );
    }

    #[test]
    fn insert_remove_and_trim() {
        check(
            &[
                &["RPUSH", "l", "a", "b", "a", "c", "a"],
                &["LINSERT", "l", "BEFORE", "b", "x"],
                &["LINSERT", "l", "after", "zz", "x"],
                &["LINSERT", "l", "middle", "b", "x"],
                &["LINSERT", "nokey", "after", "b", "x"],
                &["LREM", "l", "-2", "a"],
                &["LRANGE", "l", "0", "-1"],
                &["LTRIM", "l", "1", "-2"],
                &["LRANGE", "l", "0", "-1"],
                &["LTRIM", "l", "5", "1"],
                &["EXISTS", "l"],
            ],
            &[int(5), int(6), int(-1), err(SYNTAX), int(0), int(2), strings(&["a", "x", "b", "c"]), ok(), strings(&["x", "b"]), ok(), int(0)],
        );
    }

    #[test]
    fn lpos_options_and_errors() {
        check(
            &[
                &["RPUSH", "l", "a", "b", "a", "c", "a"],
                &["LPOS", "l", "a"],
                &["LPOS", "l", "a", "RANK", "2"],
                &["LPOS", "l", "a", "RANK", "-1"],
                &["LPOS", "l", "a", "COUNT", "0"],
                &["LPOS", "l", "a", "COUNT", "2", "RANK", "-1"],
                &["LPOS", "l", "a", "COUNT", "0", "MAXLEN", "3"],
                &["LPOS", "l", "c", "MAXLEN", "3"],
                &["LPOS", "l", "a", "RANK", "0"],
                &["LPOS", "l", "a", "RANK", "-9223372036854775808"],
                &["LPOS", "l", "a", "COUNT", "-1"],
                &["LPOS", "l", "a", "MAXLEN", "x"],
                &["LPOS", "l", "a", "COUNT"],
                &["LPOS", "nokey", "a", "COUNT", "1"],
            ],
            &[
                int(5),
                int(0),
                int(2),
                int(4),
                arr(vec![int(0), int(2), int(4)]),
                arr(vec![int(4), int(2)]),
                arr(vec![int(0), int(2)]),
                null(),
                err(super::RANK_ZERO),
                err(super::RANK_OUT_OF_RANGE),
                err(super::COUNT_NEGATIVE),
                err(super::MAXLEN_NEGATIVE),
                err(SYNTAX),
                arr(vec![]),
            ],
        );
    }

    /// Two keys that the harness puts on different shards.
    fn keys_on_two_shards() -> (String, String) {
        let shard = |k: &str| shoal_store::slot::key_shard(k.as_bytes(), crate::testing::SHARDS);
        let a = "a".to_string();
        let b = (0..100).map(|i| format!("b{i}")).find(|k| shard(k) != shard(&a)).expect("a key on another shard");
        (a, b)
    }

    #[test]
    fn lmove_across_shards_moves_and_checks_types_first() {
        let (a, b) = keys_on_two_shards();
        let harness = Harness::default();
        let run = |args: &[&str]| harness.run(args);
        assert_eq!(run(&["RPUSH", &a, "1", "2", "3"]), int(3));
        assert_eq!(run(&["LMOVE", &a, &b, "LEFT", "RIGHT"]), bulk("1"));
        assert_eq!(run(&["RPOPLPUSH", &a, &b]), bulk("3"));
        assert_eq!(run(&["LRANGE", &b, "0", "-1"]), strings(&["3", "1"]));
        assert_eq!(run(&["LMOVE", &a, &b, "UP", "LEFT"]), err(SYNTAX));
        // A destination of another type: nothing is popped.
        assert_eq!(run(&["SET", &b, "x"]), ok());
        assert_eq!(run(&["LMOVE", &a, &b, "LEFT", "LEFT"]), err(WRONGTYPE));
        assert_eq!(run(&["LLEN", &a]), int(1));
        // A missing source replies nil whatever the destination holds.
        assert_eq!(run(&["LMOVE", "nokey", &b, "LEFT", "LEFT"]), null());
        assert_eq!(run(&["DEL", &b]), int(1));
        assert_eq!(run(&["LMOVE", &a, &b, "LEFT", "LEFT"]), bulk("2"));
        assert_eq!(run(&["EXISTS", &a]), int(0), "the emptied source is deleted");
        assert_eq!(run(&["LRANGE", &b, "0", "-1"]), strings(&["2"]));
    }

    #[test]
    fn lmove_on_one_key_rotates() {
        check(
            &[&["RPUSH", "l", "a", "b", "c"], &["LMOVE", "l", "l", "LEFT", "RIGHT"], &["RPOPLPUSH", "l", "l"], &["LRANGE", "l", "0", "-1"]],
            &[int(3), bulk("a"), bulk("a"), strings(&["a", "b", "c"])],
        );
    }

    /// A source and a destination on one shard, and a pair on two.
    fn lmovem_key_pairs() -> [(String, String); 2] {
        let (a, b) = keys_on_two_shards();
        [("{t}src".to_string(), "{t}dst".to_string()), (a, b)]
    }

    #[test]
    fn lmovem_orders_obo_and_bulk_as_redis_documents() {
        for (src, dst) in lmovem_key_pairs() {
            let harness = Harness::default();
            let run = |args: &[&str]| harness.run(args);
            let reset = |source: &[&str]| {
                run(&["DEL", &src, &dst]);
                run(&[&["RPUSH", src.as_str()][..], source].concat());
            };
            // Without the block: LMOVE's element, as an array.
            reset(&["a", "b", "c"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT"]), strings(&["a"]));
            reset(&["1", "2", "3", "4", "5"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "LEFT", "COUNT", "3", "OBO"]), strings(&["3", "2", "1"]));
            assert_eq!(run(&["LRANGE", &dst, "0", "-1"]), strings(&["3", "2", "1"]));
            assert_eq!(run(&["LRANGE", &src, "0", "-1"]), strings(&["4", "5"]));
            reset(&["1", "2", "3", "4", "5"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "left", "left", "count", "3", "bulk"]), strings(&["1", "2", "3"]));
            assert_eq!(run(&["LRANGE", &dst, "0", "-1"]), strings(&["1", "2", "3"]));
            reset(&["0", "1", "2", "3", "4", "5"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "RIGHT", "RIGHT", "COUNT", "3", "OBO"]), strings(&["5", "4", "3"]));
            assert_eq!(run(&["LRANGE", &src, "0", "-1"]), strings(&["0", "1", "2"]));
            reset(&["0", "1", "2", "3", "4", "5"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "RIGHT", "RIGHT", "COUNT", "3", "BULK"]), strings(&["3", "4", "5"]));
            // Into an existing destination, fewer than COUNT, the source deleted.
            reset(&["1", "2"]);
            run(&["RPUSH", &dst, "x", "y"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "COUNT", "100", "BULK"]), strings(&["1", "2"]));
            assert_eq!(run(&["LRANGE", &dst, "0", "-1"]), strings(&["x", "y", "1", "2"]));
            assert_eq!(run(&["EXISTS", &src]), int(0));
            // EXACTLY: all or nothing.
            reset(&["1", "2", "3", "4"]);
            run(&["DEL", &dst]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "EXACTLY", "5", "BULK"]), Frame::NullArray);
            assert_eq!(run(&["EXISTS", &dst]), int(0));
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "EXACTLY", "3", "BULK"]), strings(&["1", "2", "3"]));
            assert_eq!(run(&["LRANGE", &src, "0", "-1"]), strings(&["4"]));
            // A missing source: an empty array, or nil with EXACTLY.
            run(&["DEL", &src, &dst]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT"]), arr(vec![]));
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "COUNT", "5", "BULK"]), arr(vec![]));
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "EXACTLY", "5", "BULK"]), Frame::NullArray);
            assert_eq!(run(&["EXISTS", &dst]), int(0));
        }
    }

    #[test]
    fn lmovem_onto_the_same_list_pops_all_before_pushing() {
        check(
            &[
                &["RPUSH", "l", "a", "b", "c"],
                &["EXPIRE", "l", "100"],
                &["LMOVEM", "l", "l", "LEFT", "LEFT", "EXACTLY", "2", "OBO"],
                &["LRANGE", "l", "0", "-1"],
                &["LMOVEM", "l", "l", "LEFT", "LEFT", "EXACTLY", "3", "BULK"],
                &["LMOVEM", "l", "l", "LEFT", "RIGHT", "COUNT", "2", "BULK"],
                &["LRANGE", "l", "0", "-1"],
                &["LMOVEM", "l", "l", "RIGHT", "LEFT", "COUNT", "9", "OBO"],
                &["LRANGE", "l", "0", "-1"],
                &["TTL", "l"],
            ],
            &[
                int(3),
                int(1),
                strings(&["b", "a"]),
                strings(&["b", "a", "c"]),
                strings(&["b", "a", "c"]),
                strings(&["b", "a"]),
                strings(&["c", "b", "a"]),
                strings(&["c", "b", "a"]),
                strings(&["c", "b", "a"]),
                int(100),
            ],
        );
    }

    #[test]
    fn lmovem_errors() {
        for (src, dst) in lmovem_key_pairs() {
            let harness = Harness::default();
            let run = |args: &[&str]| harness.run(args);
            run(&["RPUSH", &src, "a", "b", "c"]);
            let count_error = err("ERR count should be greater than 0");
            for (selector, count) in [("COUNT", "0"), ("EXACTLY", "0"), ("COUNT", "-1"), ("COUNT", "a")] {
                assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", selector, count, "BULK"]), count_error);
            }
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT"]), err("ERR wrong number of arguments for 'lmovem' command"));
            for tail in [&["COUNT", "2"][..], &["COUNT", "2", "OBO", "extra"], &["BAD", "2", "OBO"], &["COUNT", "2", "BADORDER"]] {
                assert_eq!(run(&[&["LMOVEM", src.as_str(), dst.as_str(), "LEFT", "RIGHT"][..], tail].concat()), err(SYNTAX), "{tail:?}");
            }
            assert_eq!(run(&["LMOVEM", &src, &dst, "BADWHERE", "RIGHT", "COUNT", "2", "OBO"]), err(SYNTAX));
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "BADWHERE", "COUNT", "2", "OBO"]), err(SYNTAX));
            // Wrong types: nothing moves.
            run(&["SET", &dst, "foo"]);
            assert_eq!(run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "COUNT", "2", "BULK"]), err(WRONGTYPE));
            assert_eq!(run(&["LRANGE", &src, "0", "-1"]), strings(&["a", "b", "c"]));
            assert_eq!(run(&["LMOVEM", &dst, &src, "LEFT", "RIGHT"]), err(WRONGTYPE));
        }
    }

    #[test]
    fn lmovem_matches_a_model_for_every_shape() {
        use rand::{Rng, SeedableRng};
        use std::collections::VecDeque;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let [(one_a, one_b), (two_a, two_b)] = lmovem_key_pairs();
        for round in 0..400 {
            let (src, dst) = match round % 3 {
                0 => (one_a.clone(), one_b.clone()),
                1 => (two_a.clone(), two_b.clone()),
                _ => (one_a.clone(), one_a.clone()),
            };
            let harness = Harness::default();
            let mut source: VecDeque<String> = (0..rng.random_range(0..6)).map(|i| format!("s{i}")).collect();
            let mut destination: VecDeque<String> = if src == dst { VecDeque::new() } else { (0..rng.random_range(0..3)).map(|i| format!("d{i}")).collect() };
            for (key, list) in [(&src, &source), (&dst, &destination)] {
                if !list.is_empty() {
                    harness.run(&[&["RPUSH", key.as_str()][..], &list.iter().map(String::as_str).collect::<Vec<_>>()].concat());
                }
            }
            let (from_left, to_left, exactly, one_by_one) = (rng.random_bool(0.5), rng.random_bool(0.5), rng.random_bool(0.5), rng.random_bool(0.5));
            let count = rng.random_range(1..8usize);
            let side = |left: bool| if left { "LEFT" } else { "RIGHT" };
            let count_text = count.to_string();
            let request = [
                "LMOVEM",
                &src,
                &dst,
                side(from_left),
                side(to_left),
                if exactly { "EXACTLY" } else { "COUNT" },
                &count_text,
                if one_by_one { "OBO" } else { "BULK" },
            ];
            // The model: pop all, then push one by one or as a block; the reply is what the
            // destination's end then holds.
            let expected = if source.is_empty() {
                if exactly {
                    Frame::NullArray
                } else {
                    arr(vec![])
                }
            } else if exactly && source.len() < count {
                Frame::NullArray
            } else {
                let take = count.min(source.len());
                let popped: Vec<String> = (0..take).map(|_| if from_left { source.pop_front() } else { source.pop_back() }.unwrap()).collect();
                let target = if src == dst { &mut source } else { &mut destination };
                if one_by_one {
                    for e in &popped {
                        if to_left {
                            target.push_front(e.clone())
                        } else {
                            target.push_back(e.clone())
                        }
                    }
                } else {
                    let mut block = popped.clone();
                    if !from_left {
                        block.reverse();
                    }
                    if to_left {
                        block.iter().rev().for_each(|e| target.push_front(e.clone()));
                    } else {
                        block.iter().for_each(|e| target.push_back(e.clone()));
                    }
                }
                let end: Vec<&str> = if to_left {
                    target.iter().take(take).map(String::as_str).collect()
                } else {
                    target.iter().skip(target.len() - take).map(String::as_str).collect()
                };
                strings(&end)
            };
            assert_eq!(harness.run(&request), expected, "{request:?}");
            let lrange = |list: &VecDeque<String>| strings(&list.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(harness.run(&["LRANGE", &src, "0", "-1"]), lrange(&source), "{request:?}");
            if src != dst {
                assert_eq!(harness.run(&["LRANGE", &dst, "0", "-1"]), lrange(&destination), "{request:?}");
            }
        }
    }

    #[test]
    fn lmovem_raises_the_push_then_the_pop_then_del() {
        for (src, dst) in lmovem_key_pairs() {
            let harness = Harness::notifying();
            harness.run(&["RPUSH", &src, "a", "b"]);
            harness.take_events();
            harness.run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT", "COUNT", "5", "OBO"]);
            let expected = [("new", dst.as_str()), ("rpush", &dst), ("lpop", &src), ("del", &src)].map(|(e, k)| (e, k.to_owned()));
            let events = harness.take_events();
            assert_eq!(events.iter().filter(|(e, _)| *e != "new").collect::<Vec<_>>(), expected[1..].iter().collect::<Vec<_>>());
            harness.run(&["LMOVEM", &src, &dst, "LEFT", "RIGHT"]);
            harness.run(&["LMOVEM", &dst, &src, "LEFT", "RIGHT", "EXACTLY", "3", "OBO"]);
            assert_eq!(harness.take_events(), []);
        }
    }

    #[test]
    fn lmpop_across_shards_pops_the_first_non_empty_list() {
        let (a, b) = keys_on_two_shards();
        let harness = Harness::default();
        let run = |args: &[&str]| harness.run(args);
        assert_eq!(run(&["LMPOP", "2", &a, &b, "LEFT"]), Frame::NullArray);
        assert_eq!(run(&["RPUSH", &b, "1", "2", "3"]), int(3));
        assert_eq!(run(&["LMPOP", "2", &a, &b, "RIGHT", "COUNT", "2"]), arr(vec![bulk(&b), strings(&["3", "2"])]));
        assert_eq!(run(&["RPUSH", &a, "x"]), int(1));
        assert_eq!(run(&["LMPOP", "2", &a, &b, "LEFT", "COUNT", "10"]), arr(vec![bulk(&a), strings(&["x"])]));
        assert_eq!(run(&["SET", &a, "s"]), ok());
        assert_eq!(run(&["LMPOP", "2", &a, &b, "LEFT"]), err(WRONGTYPE));
        assert_eq!(run(&["LMPOP", "2", &b, &a, "LEFT"]), arr(vec![bulk(&b), strings(&["1"])]));
        assert_eq!(run(&["EXISTS", &b]), int(0));
    }

    #[test]
    fn lmpop_errors() {
        check(
            &[
                &["LMPOP", "0", "a", "LEFT"],
                &["LMPOP", "abc", "a", "LEFT"],
                &["LMPOP", "2", "a", "LEFT"],
                &["LMPOP", "1", "a", "UP"],
                &["LMPOP", "1", "a", "LEFT", "COUNT", "0"],
                &["LMPOP", "1", "a", "LEFT", "COUNT", "1", "COUNT", "1"],
                &["LMPOP", "1", "a", "LEFT", "COUNT"],
                &["LMPOP", "9223372036854775807", "a", "LEFT"],
            ],
            &[
                err(super::NUMKEYS_NOT_POSITIVE),
                err(super::NUMKEYS_NOT_POSITIVE),
                err(SYNTAX),
                err(SYNTAX),
                err(super::COUNT_NOT_POSITIVE),
                err(SYNTAX),
                err(SYNTAX),
                err(SYNTAX),
            ],
        );
    }

    #[test]
    fn wrong_type_everywhere() {
        let commands: &[&[&str]] = &[
            &["LPUSH", "s", "a"],
            &["RPUSHX", "s", "a"],
            &["LPOP", "s"],
            &["LLEN", "s"],
            &["LRANGE", "s", "0", "1"],
            &["LINDEX", "s", "0"],
            &["LSET", "s", "0", "a"],
            &["LINSERT", "s", "BEFORE", "a", "b"],
            &["LREM", "s", "0", "a"],
            &["LTRIM", "s", "0", "1"],
            &["LPOS", "s", "a"],
            &["LMOVE", "s", "t", "LEFT", "LEFT"],
            &["LMPOP", "1", "s", "LEFT"],
        ];
        let harness = Harness::default();
        assert_eq!(harness.run(&["SET", "s", "v"]), ok());
        for command in commands {
            assert_eq!(harness.run(command), err(WRONGTYPE), "{command:?}");
        }
    }

    #[test]
    fn encodings_convert_at_the_configured_limit() {
        let mut harness = Harness::default();
        harness.settings.limits.list_max_listpack_size = 3;
        assert_eq!(harness.run(&["RPUSH", "l", "a", "b", "c"]), int(3));
        assert_eq!(harness.run(&["OBJECT", "ENCODING", "l"]), bulk("listpack"));
        assert_eq!(harness.run(&["RPUSH", "l", "d"]), int(4));
        assert_eq!(harness.run(&["OBJECT", "ENCODING", "l"]), bulk("quicklist"));
        assert_eq!(harness.run(&["LTRIM", "l", "0", "0"]), ok());
        assert_eq!(harness.run(&["OBJECT", "ENCODING", "l"]), bulk("listpack"));
    }
}

//! SORT and SORT_RO (Redis's `sort.c`): the elements of a list, set or sorted set, sorted as
//! numbers or as bytes, by themselves or by values looked up through a BY pattern, replied
//! (or, through GET patterns, values looked up for them) or stored as a list.
//!
//! Where it runs. A request whose BY or GET patterns name other keys may read any key on any
//! core, so its table entry's `all_shards_when` routes it as a transaction over every core
//! under each core's shard-wide lock (exclusive with STORE, shared without): it sees one
//! snapshot of the whole keyspace. Its `multi` form reads the elements from the key's core
//! (one hop), looks the pattern keys up with one hop per core that owns some (the BY values
//! first and then the GET values of the output only, when a LIMIT narrows the output; both
//! at once otherwise), sorts on the coordinator, and stores on the destination's core. A
//! request without such patterns sorts in place on the key's core, borrowing the elements
//! from the value: its `local` form runs when the STORE destination (if any) lives there too;
//! otherwise its `multi` form takes the stored list to the destination's core in a second hop.
//!
//! What this does not do as Redis does, all in corners:
//! - ALPHA without STORE compares values as C strings, as Redis's `strcoll` does, in the C
//!   locale only: Redis follows the server's `LC_COLLATE`.
//! - Numeric values at the bottom of the double range: a decimal whose exact value is below
//!   the smallest normal double but rounds up to it is accepted here, and refused by Redis
//!   (glibc's `strtod` reports the underflow); a hex float that is exactly a subnormal is
//!   refused here, and accepted by Redis.
//! - The stored list is built as RPUSH builds one; Redis builds a quicklist and converts it
//!   to a listpack only when it is under half the listpack limits, so OBJECT ENCODING can
//!   differ between those two sizes.
//! - When a numeric sort BY a pattern fails on a value that is not a number and its output
//!   is every element, the GET values were already looked up with the BY values (one round
//!   of hops instead of two), so INFO's keyspace hits and misses count lookups Redis skips.
//! - COMMAND GETKEYS names the destination SORT writes; Redis's `sortGetKeys` misreads a
//!   destination named like an option (`STORE limit STORE d` gives `limit` there).
//! - The scripting rule (a set sorted inside a script is always sorted) has no counterpart
//!   yet: there are no scripts.

use std::cmp::Ordering;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::slot;
use shoal_store::types::set::Member;
use shoal_store::types::List;
use shoal_store::Value;

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx, HopOp, HopResult};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};
use crate::zsets::parse::strtod;

const SCORES_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

const BASE: CommandSpec = CommandSpec {
    arity: -2,
    keys: KeySpec::ONE,
    acl: &["@set", "@sortedset", "@list", "@dangerous"],
    group: "generic",
    complexity: "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
    ..CommandSpec::DEFAULT
};

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "sort",
        flags: WRITE | DENYOOM,
        summary: "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        handler: Handler::Keys { local: sort, multi: Some(sort_multi) },
        movable_keys: Some(sort_keys),
        all_shards_when: Some(sort_all_shards),
        ..BASE
    },
    CommandSpec {
        name: "sort_ro",
        flags: READONLY,
        summary: "Returns the sorted elements of a list, a set, or a sorted set.",
        since: "7.0.0",
        handler: Handler::Keys { local: sort_ro, multi: Some(sort_ro_multi) },
        movable_keys: Some(sort_ro_keys),
        all_shards_when: Some(sort_ro_all_shards),
        ..BASE
    },
];

// ---- Requests -------------------------------------------------------------------------------

/// A parsed SORT or SORT_RO request.
#[derive(Clone, Debug)]
struct Request {
    key: Bytes,
    /// The last BY pattern given.
    by: Option<Bytes>,
    /// Some BY pattern has no `*`: nothing is sorted (Redis's `dontsort`; a later BY with a
    /// `*` does not undo it, as in Redis).
    dontsort: bool,
    gets: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    /// The STORE destination (the last one given) and its argument index.
    store: Option<(usize, Bytes)>,
}

impl Request {
    /// The BY pattern when it decides the order.
    fn sort_by(&self) -> Option<&Bytes> {
        if self.dontsort {
            None
        } else {
            self.by.as_ref()
        }
    }

    /// Whether answering may read keys other than the one sorted: a BY pattern that sorts,
    /// or a GET pattern with a `*`.
    fn reads_other_keys(&self) -> bool {
        self.sort_by().is_some() || self.gets.iter().any(|get| matches!(Pattern::parse(get), Pattern::Key { .. }))
    }
}

/// Parses the options in order, as Redis does: the first bad one decides the error, and
/// nothing is looked up before they all parse.
fn parse(args: &[Bytes], readonly: bool) -> Result<Request, Frame> {
    let mut request =
        Request { key: args[1].clone(), by: None, dontsort: false, gets: Vec::new(), desc: false, alpha: false, limit_start: 0, limit_count: -1, store: None };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let arg = &args[j];
        if is(arg, "asc") {
            request.desc = false;
        } else if is(arg, "desc") {
            request.desc = true;
        } else if is(arg, "alpha") {
            request.alpha = true;
        } else if is(arg, "limit") && left >= 2 {
            request.limit_start = args::parse_i64(&args[j + 1])?;
            request.limit_count = args::parse_i64(&args[j + 2])?;
            j += 2;
        } else if !readonly && is(arg, "store") && left >= 1 {
            request.store = Some((j + 1, args[j + 1].clone()));
            j += 1;
        } else if is(arg, "by") && left >= 1 {
            if !c_str(&args[j + 1]).contains(&b'*') {
                request.dontsort = true;
            }
            request.by = Some(args[j + 1].clone());
            j += 1;
        } else if is(arg, "get") && left >= 1 {
            request.gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return Err(errors::syntax());
        }
        j += 1;
    }
    Ok(request)
}

/// The key positions of a SORT: the key, and STORE's destination (the last one). For a
/// request that parses, the destination is the one SORT writes; for one that does not (its
/// handler only reports the error), it is found as Redis's `sortGetKeys` finds it, so that
/// COMMAND GETKEYS answers as Redis does.
fn sort_keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() < 2 {
        return Vec::new();
    }
    let store = match parse(args, false) {
        Ok(request) => request.store.map(|(at, _)| at),
        Err(_) => {
            let mut store = None;
            let mut i = 2;
            while i < args.len() {
                if is(&args[i], "limit") {
                    i += 2;
                } else if is(&args[i], "get") || is(&args[i], "by") {
                    i += 1;
                } else if is(&args[i], "store") && i + 1 < args.len() {
                    store = Some(i + 1);
                }
                i += 1;
            }
            store
        }
    };
    std::iter::once(1).chain(store).collect()
}

/// The key position of a SORT_RO: STORE is not an option there.
fn sort_ro_keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() < 2 {
        Vec::new()
    } else {
        vec![1]
    }
}

/// A SORT whose patterns read other keys runs over every core: exclusively with STORE.
fn sort_all_shards(args: &[Bytes]) -> Option<bool> {
    parse(args, false).ok().filter(Request::reads_other_keys).map(|request| request.store.is_some())
}

/// A SORT_RO whose patterns read other keys runs over every core, shared.
fn sort_ro_all_shards(args: &[Bytes]) -> Option<bool> {
    parse(args, true).ok().filter(Request::reads_other_keys).map(|_| false)
}

/// The bytes before the first NUL: what Redis's C string functions see of an argument.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

// ---- Patterns -------------------------------------------------------------------------------

/// A BY or GET pattern, read as Redis's `lookupKeyByPattern` reads it: `#`, the `*` and the
/// `->` are found in the C string (up to the first NUL byte), while the text after the `*`
/// and the hash field run to the end of the argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern<'p> {
    /// `#`: the element itself.
    Element,
    /// No `*`: looks nothing up (nil).
    Nothing,
    /// The first `*` stands for the element; `field` reads a hash field (`key->field`, when
    /// the `->` follows the `*` and has text after it).
    Key { prefix: &'p [u8], suffix: &'p [u8], field: Option<&'p [u8]> },
}

impl<'p> Pattern<'p> {
    fn parse(pattern: &'p [u8]) -> Pattern<'p> {
        let text = c_str(pattern);
        if text == b"#" {
            return Pattern::Element;
        }
        let Some(star) = text.iter().position(|&b| b == b'*') else {
            return Pattern::Nothing;
        };
        let arrow = text[star + 1..].windows(2).position(|w| w == b"->").map(|at| star + 1 + at);
        match arrow {
            Some(at) if at + 2 < text.len() => Pattern::Key { prefix: &pattern[..star], suffix: &pattern[star + 1..at], field: Some(&pattern[at + 2..]) },
            _ => Pattern::Key { prefix: &pattern[..star], suffix: &pattern[star + 1..], field: None },
        }
    }

    /// The length of the key this pattern names for `element` (0 when it names none).
    fn key_len(&self, element: &[u8]) -> usize {
        match self {
            Pattern::Key { prefix, suffix, .. } => prefix.len() + element.len() + suffix.len(),
            _ => 0,
        }
    }
}

/// One value to look up: a string key, or a field of a hash key.
struct Lookup {
    key: Bytes,
    field: Option<Bytes>,
}

/// The lookups of `pattern` (a [`Pattern::Key`]) for each of `elements`, their key names
/// written into one buffer.
fn lookups_for<'e>(pattern: &Pattern, elements: impl Iterator<Item = &'e [u8]> + Clone, lookups: &mut Vec<Lookup>) {
    let Pattern::Key { prefix, suffix, field } = *pattern else { unreachable!("only key patterns are looked up") };
    let field = field.map(Bytes::copy_from_slice);
    let bytes_total = elements.clone().map(|e| pattern.key_len(e)).sum();
    let mut buffer = BytesMut::with_capacity(bytes_total);
    for element in elements {
        buffer.extend_from_slice(prefix);
        buffer.extend_from_slice(element);
        buffer.extend_from_slice(suffix);
        lookups.push(Lookup { key: buffer.split().freeze(), field: field.clone() });
    }
}

/// Looks up values on this core, as Redis's `lookupKeyByPattern` does: a string's value, or a
/// hash field's; None for a missing key, a missing field or another type. Counts hits and
/// misses and expires keys as reads do. The values found are copied into one buffer.
fn op_fetch(ctx: &mut Ctx, lookups: &[Lookup]) -> Vec<Option<Bytes>> {
    let now = ctx.now_ms;
    let mut buffer = BytesMut::new();
    let mut spans = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        debug_assert!(ctx.shard.owns(&lookup.key), "a pattern key is looked up on its own core");
        let start = buffer.len();
        if lookup.field.is_some() {
            // A hash field whose TTL passed is gone, as Redis's lookup expires it.
            ctx.db().expire_hash_fields(&lookup.key, now);
        }
        let found = match (ctx.db().lookup_read(&lookup.key, now).map(|entry| &entry.value), &lookup.field) {
            (Some(Value::Str(s)), None) => {
                s.with_bytes(|b| buffer.extend_from_slice(b));
                true
            }
            (Some(Value::Hash(hash)), Some(field)) => match hash.get(field) {
                Some(value) => {
                    buffer.extend_from_slice(value);
                    true
                }
                None => false,
            },
            _ => false,
        };
        spans.push(found.then_some(start..buffer.len()));
    }
    let buffer = buffer.freeze();
    spans.into_iter().map(|span| span.map(|span| buffer.slice(span))).collect()
}

/// Looks `lookups` up on the cores that own their keys, one hop per core, all at once.
async fn fetch(coordinator: &dyn Coordinator, lookups: Vec<Lookup>) -> Vec<Option<Bytes>> {
    if lookups.is_empty() {
        return Vec::new();
    }
    let shard_count = coordinator.shard_count();
    let total = lookups.len();
    let mut groups: Vec<(Vec<usize>, Vec<Lookup>)> = (0..shard_count).map(|_| (Vec::new(), Vec::new())).collect();
    for (index, lookup) in lookups.into_iter().enumerate() {
        let (indexes, group) = &mut groups[slot::key_shard(&lookup.key, shard_count)];
        indexes.push(index);
        group.push(lookup);
    }
    let mut positions = Vec::new();
    let mut ops: Vec<(usize, HopOp)> = Vec::new();
    for (shard, (indexes, group)) in groups.into_iter().enumerate().filter(|(_, (indexes, _))| !indexes.is_empty()) {
        positions.push(indexes);
        ops.push((shard, Box::new(move |ctx: &mut Ctx| Box::new(op_fetch(ctx, &group)) as HopResult)));
    }
    let results = coordinator.hop(ops).await;
    let mut values = vec![None; total];
    for (indexes, result) in positions.into_iter().zip(results) {
        let found = *result.downcast::<Vec<Option<Bytes>>>().expect("a fetch hop returns values");
        for (index, value) in indexes.into_iter().zip(found) {
            values[index] = value;
        }
    }
    values
}

// ---- Sorting --------------------------------------------------------------------------------

/// How one request sorts the value it found.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Nothing is sorted: lists and sorted sets keep their order (DESC walks from the end),
    /// sets their iteration order.
    dontsort: bool,
    alpha: bool,
    /// The order comes from BY values.
    by: bool,
    desc: bool,
    /// The result is stored: ALPHA then compares whole values (without STORE, Redis's
    /// `strcoll` stops at a NUL byte).
    store: bool,
    /// The output window over the elements loaded, inclusive; empty when `end < start`.
    start: i64,
    end: i64,
}

impl Plan {
    /// The plan for a value of `len` elements (`is_set`: a set), with LIMIT clamped exactly
    /// as Redis clamps it.
    fn new(request: &Request, is_set: bool, len: usize) -> Plan {
        // A set that is not sorted has no defined order: with STORE Redis sorts it as bytes,
        // so that the stored list is the same everywhere.
        let forced = request.dontsort && is_set && request.store.is_some();
        let len = len as i64;
        let mut start = request.limit_start.clamp(0, len);
        let count = request.limit_count.clamp(-1, len);
        let mut end = if count < 0 { len - 1 } else { start + count - 1 };
        if start >= len {
            start = len - 1;
            end = len - 2;
        }
        if end >= len {
            end = len - 1;
        }
        Plan {
            dontsort: request.dontsort && !forced,
            alpha: request.alpha || forced,
            by: request.sort_by().is_some(),
            desc: request.desc,
            store: request.store.is_some(),
            start,
            end,
        }
    }

    /// The window as a range of positions.
    fn window(&self) -> Range<usize> {
        if self.end < self.start {
            0..0
        } else {
            self.start as usize..self.end as usize + 1
        }
    }
}

/// The value at `key` if it can be sorted (WRONGTYPE otherwise), read as Redis reads it:
/// a sorted set is converted to a skiplist first, as Redis's SORT does.
fn sortable<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a Value>, Frame> {
    let now = ctx.now_ms;
    let Some(entry) = ctx.db().lookup_read_mut(key, now) else {
        return Ok(None);
    };
    if let Value::ZSet(zset) = &mut entry.value {
        zset.convert_to_skiplist();
    }
    let entry = &*entry;
    match &entry.value {
        Value::List(_) | Value::Set(_) | Value::ZSet(_) => Ok(Some(&entry.value)),
        _ => Err(errors::wrong_type()),
    }
}

/// The plan and the elements to sort, in Redis's load order. When nothing is sorted, a list
/// or a sorted set gives just the output window, walked from the end for DESC, and the plan's
/// window is moved to cover them.
fn gather<'a>(request: &Request, value: Option<&'a Value>) -> (Plan, Vec<Member<'a>>) {
    let (is_set, len) = match value {
        Some(Value::List(list)) => (false, list.len()),
        Some(Value::Set(set)) => (true, set.len()),
        Some(Value::ZSet(zset)) => (false, zset.len()),
        _ => (false, 0),
    };
    let mut plan = Plan::new(request, is_set, len);
    let window = plan.window();
    // Where a walk that skips `start` elements begins: from the head, or from the tail.
    let first = if plan.desc { len.saturating_sub(1 + window.start) } else { window.start };
    let members: Vec<Member<'a>> = match value {
        Some(Value::List(list)) if plan.dontsort => list.iter_from(first, !plan.desc).take(window.len()).map(Member::Bytes).collect(),
        Some(Value::ZSet(zset)) if plan.dontsort => zset.iter_from(first, plan.desc).take(window.len()).map(|(m, _)| Member::Bytes(m)).collect(),
        Some(Value::List(list)) => list.iter().map(Member::Bytes).collect(),
        Some(Value::Set(set)) => set.iter().collect(),
        Some(Value::ZSet(zset)) => zset.iter().map(|(m, _)| Member::Bytes(m)).collect(),
        _ => Vec::new(),
    };
    if plan.dontsort && !is_set && !window.is_empty() {
        plan.end -= plan.start;
        plan.start = 0;
    }
    (plan, members)
}

/// One element being sorted.
#[derive(Clone, Copy, Debug)]
struct Item<'a> {
    /// The element's position as loaded.
    index: usize,
    member: Member<'a>,
    /// The BY value (None: missing), when BY decides the order.
    by: Option<&'a [u8]>,
    /// The numeric sort key.
    score: f64,
}

/// A value read as a numeric sort key, as Redis reads it with `strtod`: the text before the
/// first NUL byte must be a number in full (leading spaces allowed, the empty text is 0),
/// with no overflow, no underflow and no NaN.
fn sort_score(value: &[u8]) -> Option<f64> {
    let text = c_str(value);
    let (score, used, range_error) = strtod(text);
    let subnormal = score != 0.0 && score.abs() < f64::MIN_POSITIVE;
    (used == text.len() && !range_error && !subnormal && !score.is_nan()).then_some(score)
}

/// Fills in the numeric sort keys: the BY value's (0 when it is missing) or the element's.
fn score(items: &mut [Item], plan: &Plan) -> Result<(), Frame> {
    if plan.alpha {
        return Ok(());
    }
    let mut all_numbers = true;
    for item in items.iter_mut() {
        let score = match (plan.by, item.by, item.member) {
            (true, None, _) => Some(0.0),
            (true, Some(value), _) => sort_score(value),
            (false, _, Member::Int(n)) => Some(n as f64),
            (false, _, Member::Bytes(element)) => sort_score(element),
        };
        all_numbers &= score.is_some();
        item.score = score.unwrap_or(0.0);
    }
    if all_numbers {
        Ok(())
    } else {
        Err(errors::error(SCORES_NOT_DOUBLE))
    }
}

fn compare_members(a: Member, b: Member) -> Ordering {
    a.with_bytes(|a| b.with_bytes(|b| a.cmp(b)))
}

/// Compares as ALPHA does: as bytes with STORE, as C strings without.
fn compare_alpha(a: &[u8], b: &[u8], store: bool) -> Ordering {
    if store {
        a.cmp(b)
    } else {
        c_str(a).cmp(c_str(b))
    }
}

/// Redis's `sortCompare`: numbers, ties broken by the elements as bytes; or ALPHA, by the BY
/// values (a missing one first) or by the elements. DESC reverses it all.
fn compare(a: &Item, b: &Item, plan: &Plan) -> Ordering {
    let order = if !plan.alpha {
        match a.score.partial_cmp(&b.score) {
            Some(Ordering::Less) => Ordering::Less,
            Some(Ordering::Greater) => Ordering::Greater,
            _ => compare_members(a.member, b.member),
        }
    } else if plan.by {
        match (a.by, b.by) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare_alpha(x, y, plan.store),
        }
    } else {
        a.member.with_bytes(|x| b.member.with_bytes(|y| compare_alpha(x, y, plan.store)))
    };
    if plan.desc {
        order.reverse()
    } else {
        order
    }
}

/// Sorts the items as far as the output window needs: the window's items end up in place,
/// in order.
fn sort_window(items: &mut [Item], plan: &Plan) {
    let window = plan.window();
    if window.is_empty() || items.len() < 2 {
        return;
    }
    let cmp = |a: &Item, b: &Item| compare(a, b, plan);
    if window.len() == items.len() {
        items.sort_unstable_by(cmp);
        return;
    }
    let last = window.end - 1;
    if window.end < items.len() {
        items.select_nth_unstable_by(last, cmp);
    }
    let head = &mut items[..window.end];
    if window.start > 0 {
        head.select_nth_unstable_by(window.start, cmp);
    }
    head[window.start..].sort_unstable_by(cmp);
}

/// Scores and sorts `items` unless the plan sorts nothing.
fn order(items: &mut [Item], plan: &Plan) -> Result<(), Frame> {
    if plan.dontsort {
        return Ok(());
    }
    score(items, plan)?;
    sort_window(items, plan);
    Ok(())
}

// ---- Output ---------------------------------------------------------------------------------

/// A sort's result before it is stored.
enum Sorted {
    Reply(Frame),
    Store(Stored),
}

/// The list STORE writes: built where the elements were, or its values, to build on the
/// destination's core.
enum Stored {
    List(List),
    Values(Vec<Bytes>),
}

/// Where the output goes: the reply (a missing GET value is nil), or the list STORE writes
/// (a missing GET value is the empty string).
enum Sink {
    Reply(Vec<Frame>),
    List { list: List, fill: i32 },
    Values(Vec<Bytes>),
}

impl Sink {
    fn push_member(&mut self, member: Member) {
        match self {
            Sink::Reply(frames) => frames.push(Frame::Bulk(member.to_bytes())),
            Sink::List { list, fill } => member.with_bytes(|bytes| list.push(&[bytes], false, *fill)),
            Sink::Values(values) => values.push(member.to_bytes()),
        }
    }

    fn push_value(&mut self, value: Option<Bytes>) {
        match (self, value) {
            (Sink::Reply(frames), Some(value)) => frames.push(Frame::Bulk(value)),
            (Sink::Reply(frames), None) => frames.push(Frame::Null),
            (Sink::List { list, fill }, value) => list.push(&[value.unwrap_or_default()], false, *fill),
            (Sink::Values(values), value) => values.push(value.unwrap_or_default()),
        }
    }

    fn finish(self) -> Sorted {
        match self {
            Sink::Reply(frames) => Sorted::Reply(Frame::Array(frames)),
            Sink::List { list, .. } => Sorted::Store(Stored::List(list)),
            Sink::Values(values) => Sorted::Store(Stored::Values(values)),
        }
    }
}

/// The number of output values: one per element, or one per GET per element.
fn output_len(request: &Request, plan: &Plan) -> usize {
    plan.window().len() * request.gets.len().max(1)
}

/// Writes a sort's result at `destination`, replacing its value and TTL, or deletes it when
/// the result is empty. Returns the length stored.
fn op_store(ctx: &mut Ctx, destination: &[u8], stored: Stored) -> usize {
    debug_assert!(ctx.shard.owns(destination), "STORE writes on the destination's core");
    let now = ctx.now_ms;
    let list = match stored {
        Stored::List(list) => list,
        Stored::Values(values) => {
            let mut list = List::new();
            list.push(&values, false, ctx.settings.limits.list_max_listpack_size);
            list
        }
    };
    let len = list.len();
    let db = ctx.db();
    // Redis counts one change per element stored, or one for a destination an empty result
    // deleted.
    if len == 0 {
        let removed = db.remove(destination).is_some();
        db.add_changes(removed as u64);
        if removed {
            ctx.notify(notify::GENERIC, "del", destination);
        }
    } else {
        db.set(destination, Value::List(Box::new(list)), now);
        db.add_changes(len as u64);
        ctx.notify(notify::LIST, "sortstore", destination);
    }
    len
}

/// Sorts the value at the request's key on its own core, borrowing its elements, for a
/// request whose patterns read no other key (GET `#` is the element, a GET pattern without
/// `*` is nil): the reply, or the list to store.
fn op_sort_in_place(ctx: &mut Ctx, request: &Request) -> Result<Sorted, Frame> {
    debug_assert!(!request.reads_other_keys(), "a sort in place reads no other key");
    let fill = ctx.settings.limits.list_max_listpack_size;
    let value = sortable(ctx, &request.key)?;
    let (plan, members) = gather(request, value);
    let mut items: Vec<Item> = members.into_iter().enumerate().map(|(index, member)| Item { index, member, by: None, score: 0.0 }).collect();
    order(&mut items, &plan)?;
    let gets: Vec<Pattern> = request.gets.iter().map(|get| Pattern::parse(get)).collect();
    let mut sink = match request.store {
        Some(_) => Sink::List { list: List::new(), fill },
        None => Sink::Reply(Vec::with_capacity(output_len(request, &plan))),
    };
    for item in &items[plan.window()] {
        if gets.is_empty() {
            sink.push_member(item.member);
        }
        for get in &gets {
            match get {
                Pattern::Element => sink.push_member(item.member),
                _ => sink.push_value(None),
            }
        }
    }
    Ok(sink.finish())
}

/// The elements of a sort whose patterns read other keys, copied off the key's core into one
/// buffer.
struct Loaded {
    elements: Vec<Bytes>,
    plan: Plan,
}

fn op_load(ctx: &mut Ctx, request: &Request) -> Result<Loaded, Frame> {
    let value = sortable(ctx, &request.key)?;
    let (plan, members) = gather(request, value);
    let bytes_total = members.iter().map(|m| m.with_bytes(<[u8]>::len)).sum();
    let mut buffer = BytesMut::with_capacity(bytes_total);
    let elements = members
        .into_iter()
        .map(|member| {
            member.with_bytes(|bytes| buffer.extend_from_slice(bytes));
            buffer.split().freeze()
        })
        .collect();
    Ok(Loaded { elements, plan })
}

/// A sort whose patterns read other keys, between the hops that look them up: load, then
/// [`Job::first_lookups`] (the BY values) and [`Job::sort`], then [`Job::second_lookups`]
/// (the GET values of the output) and [`Job::output`].
struct Job<'r> {
    request: &'r Request,
    elements: Vec<Bytes>,
    plan: Plan,
    /// The BY value of each element, when BY decides the order.
    by_values: Vec<Option<Bytes>>,
    /// The elements' indexes, in output order.
    order: Vec<usize>,
    /// The values of the GET patterns that name keys, pattern by pattern: for every element
    /// by index when they were fetched with the BY values, else for the output window by
    /// position.
    get_values: Vec<Option<Bytes>>,
    gets_for_every_element: bool,
}

impl<'r> Job<'r> {
    fn new(request: &'r Request, loaded: Loaded) -> Job<'r> {
        let order = (0..loaded.elements.len()).collect();
        Job { request, elements: loaded.elements, plan: loaded.plan, by_values: Vec::new(), order, get_values: Vec::new(), gets_for_every_element: false }
    }

    /// The GET patterns that name keys.
    fn key_gets(&self) -> Vec<Pattern<'r>> {
        self.request.gets.iter().map(|get| Pattern::parse(get)).filter(|p| matches!(p, Pattern::Key { .. })).collect()
    }

    /// The BY lookups, one per element; with them the GET lookups of every element when the
    /// output is every element anyway, which saves a round of hops.
    fn first_lookups(&mut self) -> Vec<Lookup> {
        let mut lookups = Vec::new();
        if !self.plan.by || self.elements.is_empty() {
            return lookups;
        }
        let by = Pattern::parse(self.request.sort_by().expect("BY decides the order"));
        lookups_for(&by, self.elements.iter().map(|e| &e[..]), &mut lookups);
        if self.plan.window().len() == self.elements.len() {
            self.gets_for_every_element = true;
            for get in &self.key_gets() {
                lookups_for(get, self.elements.iter().map(|e| &e[..]), &mut lookups);
            }
        }
        lookups
    }

    /// Takes the values of [`Job::first_lookups`] and sorts.
    fn sort(&mut self, mut values: Vec<Option<Bytes>>) -> Result<(), Frame> {
        if self.plan.by && !self.elements.is_empty() {
            self.get_values = values.split_off(self.elements.len());
            self.by_values = values;
        }
        let plan = self.plan;
        let mut items: Vec<Item> = self
            .elements
            .iter()
            .enumerate()
            .map(|(index, element)| Item { index, member: Member::Bytes(element), by: self.by_values.get(index).and_then(|v| v.as_deref()), score: 0.0 })
            .collect();
        let sorted = order(&mut items, &plan);
        self.order = items.iter().map(|item| item.index).collect();
        drop(items);
        // The BY values have done their work.
        self.by_values = Vec::new();
        sorted
    }

    /// The GET lookups of the output window, unless they came with the BY values.
    fn second_lookups(&self) -> Vec<Lookup> {
        let mut lookups = Vec::new();
        if self.gets_for_every_element {
            return lookups;
        }
        let gets = self.key_gets();
        if gets.is_empty() {
            return lookups;
        }
        for get in &gets {
            lookups_for(get, self.order[self.plan.window()].iter().map(|&index| &self.elements[index][..]), &mut lookups);
        }
        lookups
    }

    /// The reply, or the values to store.
    fn output(mut self, values: Vec<Option<Bytes>>) -> Sorted {
        if !self.gets_for_every_element {
            self.get_values = values;
        }
        let gets: Vec<Pattern> = self.request.gets.iter().map(|get| Pattern::parse(get)).collect();
        let capacity = output_len(self.request, &self.plan);
        let mut sink = match self.request.store {
            Some(_) => Sink::Values(Vec::with_capacity(capacity)),
            None => Sink::Reply(Vec::with_capacity(capacity)),
        };
        let window = self.plan.window();
        let targets = if self.gets_for_every_element { self.elements.len() } else { window.len() };
        for (position, &index) in self.order[window.clone()].iter().enumerate() {
            let element = &self.elements[index];
            if gets.is_empty() {
                sink.push_value(Some(element.clone()));
            }
            let target = if self.gets_for_every_element { index } else { position };
            let mut key_get = 0;
            for get in &gets {
                match get {
                    Pattern::Element => sink.push_value(Some(element.clone())),
                    Pattern::Nothing => sink.push_value(None),
                    Pattern::Key { .. } => {
                        sink.push_value(self.get_values[key_get * targets + target].take());
                        key_get += 1;
                    }
                }
            }
        }
        sink.finish()
    }
}

// ---- Handlers -------------------------------------------------------------------------------

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC|DESC]
/// [ALPHA] [STORE destination]
fn sort(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sort_here(ctx, args, false)
}

fn sort_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { sort_across_cores(coordinator, &args, false).await }.boxed_local()
}

/// SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC|DESC]
/// [ALPHA]
fn sort_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sort_here(ctx, args, true)
}

fn sort_ro_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { sort_across_cores(coordinator, &args, true).await }.boxed_local()
}

/// SORT on one core, which owns every key the request touches (the dispatcher sees to it: a
/// request whose patterns name keys runs on one core only when there is one).
fn sort_here(ctx: &mut Ctx, args: &[Bytes], readonly: bool) -> Frame {
    let request = match parse(args, readonly) {
        Ok(request) => request,
        Err(error) => return error,
    };
    let sorted = if request.reads_other_keys() { sort_with_lookups_here(ctx, &request) } else { op_sort_in_place(ctx, &request) };
    match sorted {
        Err(error) => error,
        Ok(Sorted::Reply(frame)) => frame,
        Ok(Sorted::Store(stored)) => {
            let (_, destination) = request.store.as_ref().expect("a stored result has a destination");
            args::int(op_store(ctx, destination, stored))
        }
    }
}

fn sort_with_lookups_here(ctx: &mut Ctx, request: &Request) -> Result<Sorted, Frame> {
    let loaded = op_load(ctx, request)?;
    let mut job = Job::new(request, loaded);
    let values = op_fetch(ctx, &job.first_lookups());
    job.sort(values)?;
    let values = op_fetch(ctx, &job.second_lookups());
    Ok(job.output(values))
}

/// SORT as a transaction: over the key's and the destination's cores when no pattern names
/// a key, else over every core.
async fn sort_across_cores(coordinator: &dyn Coordinator, args: &[Bytes], readonly: bool) -> Frame {
    let request = match parse(args, readonly) {
        Ok(request) => request,
        Err(error) => return error,
    };
    let key_shard = slot::key_shard(&request.key, coordinator.shard_count());
    let sorted = if request.reads_other_keys() {
        let for_load = request.clone();
        let loaded = match ctx::hop_one(coordinator, key_shard, move |ctx: &mut Ctx| op_load(ctx, &for_load)).await {
            Ok(loaded) => loaded,
            Err(error) => return error,
        };
        let mut job = Job::new(&request, loaded);
        let values = fetch(coordinator, job.first_lookups()).await;
        if let Err(error) = job.sort(values) {
            return error;
        }
        let values = fetch(coordinator, job.second_lookups()).await;
        job.output(values)
    } else {
        let for_sort = request.clone();
        match ctx::hop_one(coordinator, key_shard, move |ctx: &mut Ctx| op_sort_in_place(ctx, &for_sort)).await {
            Ok(sorted) => sorted,
            Err(error) => return error,
        }
    };
    match sorted {
        Sorted::Reply(frame) => frame,
        Sorted::Store(stored) => {
            let (_, destination) = request.store.clone().expect("a stored result has a destination");
            let shard = slot::key_shard(&destination, coordinator.shard_count());
            let len = ctx::hop_one(coordinator, shard, move |ctx: &mut Ctx| op_store(ctx, &destination, stored)).await;
            args::int(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check, replies::*, Harness, SHARDS};

    fn nil() -> Frame {
        Frame::Null
    }

    fn shard(key: &str) -> usize {
        slot::key_shard(key.as_bytes(), SHARDS)
    }

    /// A key named `prefix` + n that lives on a core other than `key`'s.
    fn key_elsewhere(prefix: &str, key: &str) -> String {
        (0..).map(|n| format!("{prefix}{n}")).find(|k| shard(k) != shard(key)).unwrap()
    }

    #[test]
    fn sort_orders_a_list_numerically_and_breaks_ties_by_bytes() {
        check(
            &[&["RPUSH", "l", "3", "10", "1", "2.5", "-1", "1.0"], &["SORT", "l"], &["SORT", "l", "DESC"], &["SORT", "l", "ALPHA"]],
            &[
                int(6),
                strings(&["-1", "1", "1.0", "2.5", "3", "10"]),
                strings(&["10", "3", "2.5", "1.0", "1", "-1"]),
                strings(&["-1", "1", "1.0", "10", "2.5", "3"]),
            ],
        );
    }

    #[test]
    fn sort_of_a_value_that_is_not_a_number_is_an_error_unless_alpha() {
        check(
            &[
                &["SADD", "s", "a", "1"],
                &["SORT", "s"],
                &["SORT", "s", "ALPHA", "DESC"],
                &["RPUSH", "l", "1e400"],
                &["SORT", "l"],
                &["RPUSH", "m", "", " 2", "0x10"],
                &["SORT", "m"],
            ],
            &[int(2), err(SCORES_NOT_DOUBLE), strings(&["a", "1"]), int(1), err(SCORES_NOT_DOUBLE), int(3), strings(&["", " 2", "0x10"])],
        );
    }

    #[test]
    fn sort_of_a_missing_key_is_empty_and_of_a_string_is_wrongtype() {
        check(
            &[&["SORT", "nothing"], &["SET", "s", "x"], &["SORT", "s"], &["SORT", "s", "LIMIT", "x", "1"], &["SORT", "s", "FOO"]],
            &[strings(&[]), ok(), err(errors::WRONGTYPE), err(errors::NOT_INTEGER), err(errors::SYNTAX)],
        );
    }

    #[test]
    fn options_missing_their_arguments_are_syntax_errors_and_sort_ro_has_no_store() {
        check(
            &[
                &["RPUSH", "l", "1"],
                &["SORT", "l", "LIMIT", "1"],
                &["SORT", "l", "STORE"],
                &["SORT", "l", "BY"],
                &["SORT", "l", "GET"],
                &["SORT_RO", "l", "STORE", "d"],
                &["SORT_RO", "l", "desc"],
            ],
            &[int(1), err(errors::SYNTAX), err(errors::SYNTAX), err(errors::SYNTAX), err(errors::SYNTAX), err(errors::SYNTAX), strings(&["1"])],
        );
    }

    #[test]
    fn limit_is_clamped_as_redis_clamps_it() {
        check(
            &[
                &["RPUSH", "l", "5", "4", "3", "2", "1"],
                &["SORT", "l", "LIMIT", "1", "2"],
                &["SORT", "l", "LIMIT", "-3", "2"],
                &["SORT", "l", "LIMIT", "3", "-1"],
                &["SORT", "l", "LIMIT", "4", "100"],
                &["SORT", "l", "LIMIT", "5", "1"],
                &["SORT", "l", "LIMIT", "0", "0"],
                &["SORT", "l", "LIMIT", "9223372036854775807", "9223372036854775807"],
                &["SORT", "l", "LIMIT", "2", "2", "DESC"],
            ],
            &[
                int(5),
                strings(&["2", "3"]),
                strings(&["1", "2"]),
                strings(&["4", "5"]),
                strings(&["5"]),
                strings(&[]),
                strings(&[]),
                strings(&[]),
                strings(&["3", "2"]),
            ],
        );
    }

    #[test]
    fn by_without_a_star_keeps_the_order_of_lists_and_sorted_sets() {
        check(
            &[
                &["RPUSH", "l", "c", "a", "b", "d"],
                &["SORT", "l", "BY", "nosort"],
                &["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "1", "2"],
                &["ZADD", "z", "1", "x", "2", "b", "3", "a"],
                &["SORT", "z", "BY", "nosort"],
                &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "5"],
                &["SORT", "z", "BY", "nosort", "LIMIT", "2", "1", "GET", "#", "GET", "nostar"],
            ],
            &[
                int(4),
                strings(&["c", "a", "b", "d"]),
                strings(&["b", "a"]),
                int(3),
                strings(&["x", "b", "a"]),
                strings(&["b", "x"]),
                arr(vec![bulk("a"), nil()]),
            ],
        );
    }

    #[test]
    fn a_later_by_with_a_star_does_not_undo_an_earlier_one_without() {
        check(&[&["RPUSH", "l", "2", "1"], &["SET", "w_1", "9"], &["SORT", "l", "BY", "nosort", "BY", "w_*"]], &[int(2), ok(), strings(&["2", "1"])]);
    }

    #[test]
    fn an_unsorted_set_is_sorted_as_bytes_when_stored() {
        check(
            &[&["SADD", "s", "b", "10", "a", "9"], &["SORT", "s", "BY", "nosort", "STORE", "d"], &["LRANGE", "d", "0", "-1"]],
            &[int(4), int(4), strings(&["10", "9", "a", "b"])],
        );
    }

    #[test]
    fn sorting_a_sorted_set_converts_it_to_a_skiplist_as_redis_does() {
        check(
            &[&["ZADD", "z", "2", "a", "1", "b"], &["OBJECT", "ENCODING", "z"], &["SORT_RO", "z", "ALPHA"], &["OBJECT", "ENCODING", "z"]],
            &[int(2), bulk("listpack"), strings(&["a", "b"]), bulk("skiplist")],
        );
    }

    #[test]
    fn by_and_get_read_strings_and_hash_fields_on_every_core() {
        let key = "items";
        let weights: Vec<String> = (1..=4).map(|n| format!("w_{n}")).collect();
        let cores: std::collections::BTreeSet<usize> = weights.iter().map(|w| shard(w)).collect();
        assert!(cores.len() > 1, "the weights span cores");
        check(
            &[
                &["RPUSH", key, "1", "2", "3", "4"],
                &["MSET", "w_1", "40", "w_2", "10", "w_3", "30", "w_4", "20"],
                &["HSET", "h_1", "name", "one"],
                &["HSET", "h_3", "name", "three"],
                &["SORT", key, "BY", "w_*"],
                &["SORT", key, "BY", "w_*", "GET", "#", "GET", "w_*", "GET", "h_*->name"],
                &["SORT", key, "BY", "w_*", "DESC", "LIMIT", "1", "2", "GET", "h_*->name", "GET", "#"],
                &["SORT", key, "BY", "h_*->name", "ALPHA"],
                &["SORT_RO", key, "GET", "w_*", "LIMIT", "0", "2"],
            ],
            &[
                int(4),
                ok(),
                int(1),
                int(1),
                strings(&["2", "4", "3", "1"]),
                arr(vec![bulk("2"), bulk("10"), nil(), bulk("4"), bulk("20"), nil(), bulk("3"), bulk("30"), bulk("three"), bulk("1"), bulk("40"), bulk("one")]),
                arr(vec![bulk("three"), bulk("3"), nil(), bulk("4")]),
                strings(&["2", "4", "1", "3"]),
                strings(&["40", "10"]),
            ],
        );
    }

    #[test]
    fn missing_by_values_sort_as_zero_or_first_and_bad_ones_are_errors() {
        check(
            &[
                &["RPUSH", "l", "a", "b", "c"],
                &["MSET", "w_a", "-1", "w_c", "1"],
                &["SORT", "l", "BY", "w_*"],
                &["SORT", "l", "BY", "w_*", "ALPHA", "DESC"],
                &["SET", "w_b", "x"],
                &["SORT", "l", "BY", "w_*"],
                &["SORT", "l", "BY", "w_*", "STORE", "d"],
                &["EXISTS", "d"],
            ],
            &[int(3), ok(), strings(&["a", "b", "c"]), strings(&["c", "a", "b"]), ok(), err(SCORES_NOT_DOUBLE), err(SCORES_NOT_DOUBLE), int(0)],
        );
    }

    #[test]
    fn store_replaces_the_destination_and_its_ttl_on_another_core() {
        let destination = key_elsewhere("dest", "l");
        let d = destination.as_str();
        check(
            &[
                &["RPUSH", "l", "3", "1", "2"],
                &["SET", d, "old"],
                &["EXPIRE", d, "100"],
                &["SORT", "l", "STORE", d],
                &["LRANGE", d, "0", "-1"],
                &["TTL", d],
                &["SORT", "l", "GET", "nostar", "GET", "#", "STORE", d],
                &["LRANGE", d, "0", "-1"],
                &["SORT", "l", "LIMIT", "0", "0", "STORE", d],
                &["EXISTS", d],
            ],
            &[int(3), ok(), int(1), int(3), strings(&["1", "2", "3"]), int(-1), int(6), strings(&["", "1", "", "2", "", "3"]), int(0), int(0)],
        );
    }

    #[test]
    fn store_with_patterns_writes_empty_strings_for_missing_values() {
        let destination = key_elsewhere("dest", "l");
        let d = destination.as_str();
        check(
            &[
                &["RPUSH", "l", "b", "a"],
                &["SET", "v_a", "A"],
                &["SORT", "l", "ALPHA", "GET", "v_*", "GET", "#", "STORE", d],
                &["LRANGE", d, "0", "-1"],
                &["SORT", "l", "BY", "v_*", "STORE", "l"],
                &["LRANGE", "l", "0", "-1"],
            ],
            &[int(2), ok(), int(4), strings(&["A", "a", "", "b"]), err(SCORES_NOT_DOUBLE), strings(&["b", "a"])],
        );
    }

    #[test]
    fn store_onto_the_sorted_key_itself_replaces_it() {
        check(
            &[&["RPUSH", "l", "2", "3", "1"], &["SORT", "l", "DESC", "STORE", "l"], &["LRANGE", "l", "0", "-1"]],
            &[int(3), int(3), strings(&["3", "2", "1"])],
        );
    }

    #[test]
    fn sets_and_intsets_sort_by_value() {
        check(
            &[
                &["SADD", "i", "30", "-2", "100"],
                &["SORT", "i"],
                &["SORT", "i", "ALPHA"],
                &["SADD", "s", "b", "c", "a"],
                &["SORT", "s", "ALPHA", "DESC", "LIMIT", "0", "2"],
            ],
            &[int(3), strings(&["-2", "30", "100"]), strings(&["-2", "100", "30"]), int(3), strings(&["c", "b"])],
        );
    }

    #[test]
    fn get_hash_patterns_need_text_after_the_arrow() {
        check(
            &[&["RPUSH", "l", "1"], &["HSET", "h_1", "f", "v"], &["SET", "h_1->", "s"], &["SORT", "l", "GET", "h_*->f", "GET", "h_*->", "GET", "#"]],
            &[int(1), int(1), ok(), strings(&["v", "s", "1"])],
        );
    }

    #[test]
    fn a_wrong_type_behind_a_pattern_is_nil() {
        check(
            &[&["RPUSH", "l", "1"], &["RPUSH", "w_1", "x"], &["SET", "h_1", "s"], &["SORT", "l", "GET", "w_*", "GET", "h_*->f"]],
            &[int(1), int(1), ok(), arr(vec![nil(), nil()])],
        );
    }

    #[test]
    fn patterns_are_read_as_c_strings() {
        assert_eq!(Pattern::parse(b"#"), Pattern::Element);
        assert_eq!(Pattern::parse(b"#\0x*"), Pattern::Element);
        assert_eq!(Pattern::parse(b"nostar"), Pattern::Nothing);
        assert_eq!(Pattern::parse(b"a\0*"), Pattern::Nothing);
        assert_eq!(Pattern::parse(b"w_*"), Pattern::Key { prefix: b"w_", suffix: b"", field: None });
        assert_eq!(Pattern::parse(b"h_*_x->f\0g"), Pattern::Key { prefix: b"h_", suffix: b"_x", field: Some(b"f\0g") });
        assert_eq!(Pattern::parse(b"h_*->\0g"), Pattern::Key { prefix: b"h_", suffix: b"->\0g", field: None });
        assert_eq!(Pattern::parse(b"->*x"), Pattern::Key { prefix: b"->", suffix: b"x", field: None });
    }

    #[test]
    fn scores_are_read_as_strtod_reads_them() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b" 1.5"), Some(1.5));
        assert_eq!(sort_score(b"2\0junk"), Some(2.0));
        assert_eq!(sort_score(b"0x10"), Some(16.0));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"  "), None);
        assert_eq!(sort_score(b"1 "), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"1e-400"), None);
        assert_eq!(sort_score(b"4e-320"), None);
        assert_eq!(sort_score(b"0e-400"), Some(0.0));
    }

    #[test]
    fn store_is_a_key_only_in_sort() {
        let args = |list: &[&str]| -> Vec<Bytes> { list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect() };
        assert_eq!(sort_keys(&args(&["sort", "k", "store", "a", "limit", "0", "1", "store", "b"])), vec![1, 8]);
        assert_eq!(sort_keys(&args(&["sort", "k", "get", "store", "by", "x"])), vec![1]);
        assert_eq!(sort_keys(&args(&["sort", "k", "foo", "store", "d"])), vec![1, 4], "found as Redis finds it");
        assert_eq!(sort_keys(&args(&["sort", "k", "limit", "store", "x", "by"])), vec![1], "LIMIT's arguments are skipped");
        assert_eq!(sort_keys(&args(&["sort", "k", "store", "limit", "store", "d"])), vec![1, 5], "the destination SORT writes");
        assert_eq!(sort_ro_keys(&args(&["sort_ro", "k", "store", "d"])), vec![1]);
    }

    #[test]
    fn on_a_single_core_the_local_form_looks_patterns_up_in_place() {
        let mut shard = shoal_store::Shard::new(0, 1, 16);
        let settings = crate::Settings::default();
        let mut run = |args: &[&str]| -> Frame {
            let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
            let Handler::Keys { local, .. } = crate::table::lookup(&args[0]).expect("a command").handler else { panic!("{:?} runs on a core", args[0]) };
            let mut ctx = Ctx::new(&mut shard, 0, 1_700_000_000_000, shoal_resp::Protocol::Resp2, &settings);
            local(&mut ctx, &args).into_plain()
        };
        run(&["RPUSH", "l", "3", "1", "2"]);
        run(&["MSET", "w_1", "30", "w_2", "20", "w_3", "10"]);
        run(&["HSET", "h_2", "f", "two"]);
        assert_eq!(run(&["SORT", "l", "BY", "w_*", "GET", "#", "GET", "h_*->f"]), arr(vec![bulk("3"), nil(), bulk("2"), bulk("two"), bulk("1"), nil()]));
        assert_eq!(run(&["SORT", "l", "BY", "w_*", "DESC", "LIMIT", "0", "2", "GET", "w_*", "STORE", "d"]), int(2));
        assert_eq!(run(&["LRANGE", "d", "0", "-1"]), strings(&["30", "20"]));
        assert_eq!(run(&["SORT_RO", "l", "GET", "w_*", "GET", "h_*->f"]), arr(vec![bulk("30"), nil(), bulk("20"), bulk("two"), bulk("10"), nil()]));
    }

    #[test]
    fn a_sort_without_patterns_copies_only_its_output_across_cores() {
        // The list is sorted on its own core and only the stored list travels.
        let harness = Harness::default();
        let destination = key_elsewhere("dest", "l");
        harness.run(&["RPUSH", "l", "b", "a"]);
        assert_eq!(harness.run(&["SORT", "l", "ALPHA", "STORE", &destination]), int(2));
        assert_eq!(harness.run(&["LRANGE", &destination, "0", "-1"]), strings(&["a", "b"]));
        assert_eq!(harness.run(&["OBJECT", "ENCODING", &destination]), bulk("listpack"));
    }
}

//! The string family: GET, SET and friends (Redis's `t_string.c`).

use bytes::Bytes;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::{Db, Str, Value};

use crate::args::{self, is};
use crate::ctx::{self, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 0,
    flags: 0,
    keys: KeySpec::ONE,
    acl: &["@string"],
    group: "string",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    handler: Handler::Connection,
    subcommands: &[],
};

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "get",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the string value of a key.",
        handler: Handler::Keys { local: get, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "set",
        arity: -3,
        flags: WRITE | DENYOOM,
        summary: "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        handler: Handler::Keys { local: set, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "mget",
        arity: -2,
        flags: READONLY | FAST,
        keys: KeySpec::ALL,
        summary: "Atomically returns the string values of one or more keys.",
        complexity: "O(N) where N is the number of keys to retrieve.",
        handler: Handler::Keys { local: mget, multi: Some(mget_multi) },
        ..BASE
    },
    CommandSpec {
        name: "mset",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::PAIRS,
        summary: "Atomically creates or modifies the string values of one or more keys.",
        since: "1.0.1",
        complexity: "O(N) where N is the number of keys to set.",
        handler: Handler::Keys { local: mset, multi: Some(mset_multi) },
        ..BASE
    },
    CommandSpec {
        name: "msetnx",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::PAIRS,
        summary: "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        since: "1.0.1",
        complexity: "O(N) where N is the number of keys to set.",
        handler: Handler::Keys { local: msetnx, multi: Some(msetnx_multi) },
        ..BASE
    },
    CommandSpec {
        name: "incr",
        arity: 2,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Keys { local: incr, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "decr",
        arity: 2,
        flags: WRITE | DENYOOM | FAST,
        summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Keys { local: decr, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "incrby",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Keys { local: incrby, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "decrby",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Keys { local: decrby, multi: None },
        ..BASE
    },
];

/// Reads a string value; Err(WRONGTYPE) for other types.
pub fn op_get(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Option<Bytes>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Str(s) => Ok(Some(s.to_bytes())),
            #[allow(unreachable_patterns)]
            _ => Err(errors::wrong_type()),
        },
    }
}

fn bulk_or_null(value: Option<Bytes>) -> Frame {
    value.map_or(Frame::Null, Frame::Bulk)
}

/// GET key
fn get(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_get(ctx.db(), &args[1], now), bulk_or_null)
}

/// When SET's key may be written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Condition {
    Always,
    IfAbsent,
    IfPresent,
}

/// What SET does with the TTL.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ttl {
    Clear,
    Keep,
    /// Absolute Unix milliseconds.
    At(u64),
}

/// Computes an absolute expiry from a relative or absolute argument, with Redis's checks.
/// Returns None for an invalid expire time.
pub fn expire_at_ms(value: i64, unit_ms: i64, absolute: bool, now_ms: u64) -> Option<i64> {
    if value <= 0 || value > i64::MAX / unit_ms {
        return None;
    }
    let ms = value * unit_ms;
    let at = if absolute { ms } else { ms.checked_add(now_ms as i64)? };
    (at > 0).then_some(at)
}

/// SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]
fn set(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut condition = Condition::Always;
    let mut ttl = Ttl::Clear;
    let mut expire_given = false;
    let mut get_old = false;
    let mut i = 3;
    while i < args.len() {
        let arg = &args[i];
        let next = args.get(i + 1);
        if is(arg, "nx") && condition != Condition::IfPresent {
            condition = Condition::IfAbsent;
        } else if is(arg, "xx") && condition != Condition::IfAbsent {
            condition = Condition::IfPresent;
        } else if is(arg, "get") {
            get_old = true;
        } else if is(arg, "keepttl") && !expire_given {
            ttl = Ttl::Keep;
            expire_given = true;
        } else if (is(arg, "ex") || is(arg, "px") || is(arg, "exat") || is(arg, "pxat")) && !expire_given && next.is_some() {
            let value = match args::parse_i64(next.expect("checked")) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let unit_ms = if is(arg, "ex") || is(arg, "exat") { 1000 } else { 1 };
            let absolute = is(arg, "exat") || is(arg, "pxat");
            match expire_at_ms(value, unit_ms, absolute, ctx.now_ms) {
                Some(at) => ttl = Ttl::At(at as u64),
                None => return errors::invalid_expire("set"),
            }
            expire_given = true;
            i += 1;
        } else {
            return errors::syntax();
        }
        i += 1;
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let key = &args[1];
    let old = match db.lookup_write(key, now) {
        None => None,
        Some(entry) => match &entry.value {
            Value::Str(s) => Some(s.to_bytes()),
            #[allow(unreachable_patterns)]
            _ if get_old => return errors::wrong_type(),
            #[allow(unreachable_patterns)]
            _ => Some(Bytes::new()),
        },
    };
    let blocked = match condition {
        Condition::Always => false,
        Condition::IfAbsent => old.is_some(),
        Condition::IfPresent => old.is_none(),
    };
    if !blocked {
        let value = Value::Str(Str::from_bytes(&args[2]));
        match ttl {
            Ttl::Clear => db.set(key, value, now),
            Ttl::Keep => db.set_keep_ttl(key, value, now),
            Ttl::At(at) if at <= now => {
                db.remove(key);
            }
            Ttl::At(at) => db.set_with_expire(key, value, Some(at), now),
        }
    }
    match (get_old, blocked) {
        (true, _) => bulk_or_null(old),
        (false, true) => Frame::Null,
        (false, false) => args::ok(),
    }
}

/// MGET key [key ...]
fn mget(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Array(op_mget(ctx, &args[1..]))
}

/// Values of `keys`, nil for missing keys and keys of other types.
fn op_mget(ctx: &mut Ctx, keys: &[Bytes]) -> Vec<Frame> {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter().map(|k| bulk_or_null(op_get(db, k, now).unwrap_or(None))).collect()
}

fn mget_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> futures::future::LocalBoxFuture<'_, Frame> {
    async move {
        let groups = ctx::group_by_shard(coordinator.shard_count(), args.into_iter().enumerate().skip(1));
        let mut replies = vec![Frame::Null; groups.iter().map(|(_, g)| g.len()).sum()];
        for (indexes, values) in ctx::hop_per_shard(coordinator, groups, |ctx, keys| op_mget(ctx, &keys)).await {
            for (index, value) in indexes.into_iter().zip(values) {
                replies[index - 1] = value;
            }
        }
        Frame::Array(replies)
    }
    .boxed_local()
}

fn pairs_ok(args: &[Bytes], name: &str) -> Result<(), Frame> {
    if args.len() % 2 == 0 {
        Err(errors::wrong_arity(name))
    } else {
        Ok(())
    }
}

/// Sets every (key, value) pair; `pairs` alternates keys and values.
fn op_mset(ctx: &mut Ctx, pairs: &[Bytes]) {
    let now = ctx.now_ms;
    let db = ctx.db();
    for pair in pairs.chunks_exact(2) {
        db.set(&pair[0], Value::Str(Str::from_bytes(&pair[1])), now);
    }
}

/// MSET key value [key value ...]
fn mset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = pairs_ok(args, "mset") {
        return e;
    }
    op_mset(ctx, &args[1..]);
    args::ok()
}

/// Groups the pairs of MSET-like arguments by shard: (shard, [key, value, key, value ...]).
fn pairs_by_shard(shard_count: usize, args: &[Bytes]) -> Vec<(usize, Vec<(usize, Bytes)>)> {
    let mut groups = ctx::group_by_shard(shard_count, args[1..].chunks_exact(2).enumerate().map(|(i, pair)| (i, pair[0].clone())));
    for (_, group) in &mut groups {
        *group = group.iter().flat_map(|(i, key)| [(*i, key.clone()), (*i, args[2 + 2 * i].clone())]).collect();
    }
    groups
}

fn mset_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> futures::future::LocalBoxFuture<'_, Frame> {
    async move {
        if let Err(e) = pairs_ok(&args, "mset") {
            return e;
        }
        let groups = pairs_by_shard(coordinator.shard_count(), &args);
        ctx::hop_per_shard(coordinator, groups, |ctx, pairs| op_mset(ctx, &pairs)).await;
        args::ok()
    }
    .boxed_local()
}

/// Whether any of `keys` exists.
fn op_any_exists(ctx: &mut Ctx, keys: &[Bytes]) -> bool {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter().any(|k| db.contains(k, now))
}

/// MSETNX key value [key value ...]
fn msetnx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = pairs_ok(args, "msetnx") {
        return e;
    }
    let keys: Vec<Bytes> = args[1..].iter().step_by(2).cloned().collect();
    if op_any_exists(ctx, &keys) {
        return Frame::Integer(0);
    }
    op_mset(ctx, &args[1..]);
    Frame::Integer(1)
}

fn msetnx_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> futures::future::LocalBoxFuture<'_, Frame> {
    async move {
        if let Err(e) = pairs_ok(&args, "msetnx") {
            return e;
        }
        // Two hops under the same locks: check every core, then write on every core.
        let groups = pairs_by_shard(coordinator.shard_count(), &args);
        let key_groups: Vec<(usize, Vec<(usize, Bytes)>)> =
            groups.iter().map(|(shard, pairs)| (*shard, pairs.iter().step_by(2).cloned().collect())).collect();
        let exists = ctx::hop_per_shard(coordinator, key_groups, |ctx, keys| op_any_exists(ctx, &keys)).await;
        if exists.iter().any(|(_, found)| *found) {
            return Frame::Integer(0);
        }
        ctx::hop_per_shard(coordinator, groups, |ctx, pairs| op_mset(ctx, &pairs)).await;
        Frame::Integer(1)
    }
    .boxed_local()
}

/// Adds `delta` to the integer at `key` (0 when absent), keeping its TTL.
pub fn op_incr(db: &mut Db, key: &[u8], delta: i64, now_ms: u64) -> Result<i64, Frame> {
    let current = match db.lookup_write(key, now_ms) {
        None => 0,
        Some(entry) => match &entry.value {
            Value::Str(s) => s.as_i64().ok_or_else(errors::not_integer)?,
            #[allow(unreachable_patterns)]
            _ => return Err(errors::wrong_type()),
        },
    };
    let next = current.checked_add(delta).ok_or_else(|| errors::error(errors::OVERFLOW))?;
    db.set_keep_ttl(key, Value::Str(Str::Int(next)), now_ms);
    Ok(next)
}

fn incr_generic(ctx: &mut Ctx, key: &[u8], delta: i64) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_incr(ctx.db(), key, delta, now), Frame::Integer)
}

/// INCR key
fn incr(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    incr_generic(ctx, &args[1], 1)
}

/// DECR key
fn decr(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    incr_generic(ctx, &args[1], -1)
}

/// INCRBY key increment
fn incrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match args::parse_i64(&args[2]) {
        Ok(delta) => incr_generic(ctx, &args[1], delta),
        Err(e) => e,
    }
}

/// DECRBY key decrement
fn decrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match args::parse_i64(&args[2]) {
        Ok(i64::MIN) => errors::error("ERR decrement would overflow"),
        Ok(delta) => incr_generic(ctx, &args[1], -delta),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::check;
    use shoal_resp::Frame;

    #[test]
    fn set_then_get_returns_the_value() {
        check(&[&["SET", "k", "v"], &["GET", "k"]], &[Frame::Simple("OK".into()), Frame::Bulk("v".into())]);
    }

    #[test]
    fn set_nx_on_existing_key_is_nil() {
        check(&[&["SET", "k", "v"], &["SET", "k", "w", "NX"], &["GET", "k"]], &[Frame::Simple("OK".into()), Frame::Null, Frame::Bulk("v".into())]);
    }

    #[test]
    fn set_with_conflicting_options_is_a_syntax_error() {
        check(&[&["SET", "k", "v", "NX", "XX"], &["SET", "k", "v", "EX", "1", "PX", "1"]], &[Frame::Error("ERR syntax error".into()), Frame::Error("ERR syntax error".into())]);
    }

    #[test]
    fn set_with_zero_expire_is_invalid() {
        check(&[&["SET", "k", "v", "EX", "0"]], &[Frame::Error("ERR invalid expire time in 'set' command".into())]);
    }

    #[test]
    fn incr_on_missing_key_sets_one() {
        check(&[&["INCR", "n"], &["INCRBY", "n", "41"]], &[Frame::Integer(1), Frame::Integer(42)]);
    }

    #[test]
    fn incr_on_non_integer_is_an_error() {
        check(&[&["SET", "n", "x"], &["INCR", "n"]], &[Frame::Simple("OK".into()), Frame::Error("ERR value is not an integer or out of range".into())]);
    }

    #[test]
    fn incr_past_i64_max_overflows() {
        check(&[&["SET", "n", "9223372036854775807"], &["INCR", "n"]], &[Frame::Simple("OK".into()), Frame::Error("ERR increment or decrement would overflow".into())]);
    }

    #[test]
    fn msetnx_is_all_or_nothing() {
        check(
            &[&["SET", "b", "1"], &["MSETNX", "a", "1", "b", "2"], &["MGET", "a", "b"]],
            &[Frame::Simple("OK".into()), Frame::Integer(0), Frame::Array(vec![Frame::Null, Frame::Bulk("1".into())])],
        );
    }

    #[test]
    fn mset_with_odd_arguments_is_an_arity_error() {
        check(&[&["MSET", "a", "1", "b"]], &[Frame::Error("ERR wrong number of arguments for 'mset' command".into())]);
    }
}

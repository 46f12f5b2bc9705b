//! The generic keyspace family: DEL, EXISTS, EXPIRE, RENAME, SCAN, DUMP, RESTORE and friends
//! (Redis's `db.c`, `expire.c`, `object.c` and the DUMP/RESTORE part of `cluster.c`).
//!
//! Commands on one key run on its core. RENAME and COPY may span two cores: their cross-core
//! form moves the entry (value and TTL) in two hops while the coordinator holds both keys'
//! locks. MOVE and COPY's DB option need no hop: a key name hashes to the same core in every
//! database. KEYS, SCAN and RANDOMKEY run over every core.
//!
//! SCAN's cursor walks the cores in turn. It encodes (core, dict cursor) as
//! `dict_cursor * shard_count + core`: each core's part of the database is walked with its
//! dict's reverse-binary cursor, which keeps Redis's guarantee (every key present from the
//! start to the end of an iteration is returned) however that core's table resizes, and
//! cursor 0 is both the start (core 0, dict cursor 0) and the end. A cursor is only meaningful
//! to a server with the same number of cores.
//!
//! DUMP and RESTORE exchange Redis's payloads through `shoal_rdb`, which encodes and decodes
//! the value (with the configured encoding thresholds) and checks version and checksum.
//!
//! What this family does not do yet: yield during KEYS on a very large database.

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::{slot, Db, Detached, Entry, Str, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@keyspace"], group: "generic", ..CommandSpec::DEFAULT };

/// The key of an OBJECT subcommand: the argument after the subcommand's name.
const SUBCOMMAND_KEY: KeySpec = KeySpec { first: 2, last: 2, step: 1 };

/// OBJECT's subcommands; the dispatcher resolves them.
const OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "object|encoding",
        arity: 3,
        flags: READONLY,
        keys: SUBCOMMAND_KEY,
        summary: "Returns the internal encoding of a Redis object.",
        since: "2.2.3",
        handler: Handler::Keys { local: object_encoding, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "object|freq",
        arity: 3,
        flags: READONLY,
        keys: SUBCOMMAND_KEY,
        summary: "Returns the logarithmic access frequency counter of a Redis object.",
        since: "4.0.0",
        handler: Handler::Keys { local: object_freq, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "object|help",
        arity: 2,
        flags: LOADING | STALE,
        keys: KeySpec::NONE,
        summary: "Returns helpful text about the different subcommands.",
        since: "6.2.0",
        handler: Handler::Keys { local: object_help, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "object|idletime",
        arity: 3,
        flags: READONLY,
        keys: SUBCOMMAND_KEY,
        summary: "Returns the time since the last access to a Redis object.",
        since: "2.2.3",
        handler: Handler::Keys { local: object_idletime, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "object|refcount",
        arity: 3,
        flags: READONLY,
        keys: SUBCOMMAND_KEY,
        summary: "Returns the reference count of a value of a key.",
        since: "2.2.3",
        handler: Handler::Keys { local: object_refcount, multi: None },
        ..BASE
    },
];

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "del",
        arity: -2,
        flags: WRITE,
        keys: KeySpec::ALL,
        summary: "Deletes one or more keys.",
        complexity: "O(N) where N is the number of keys that will be removed.",
        handler: Handler::Keys { local: del, multi: Some(del_multi) },
        ..BASE
    },
    CommandSpec {
        name: "unlink",
        arity: -2,
        flags: WRITE | FAST,
        keys: KeySpec::ALL,
        summary: "Asynchronously deletes one or more keys.",
        since: "4.0.0",
        complexity: "O(1) for each key removed regardless of its size.",
        handler: Handler::Keys { local: unlink, multi: Some(unlink_multi) },
        ..BASE
    },
    CommandSpec {
        name: "exists",
        arity: -2,
        flags: READONLY | FAST,
        keys: KeySpec::ALL,
        summary: "Determines whether one or more keys exist.",
        complexity: "O(N) where N is the number of keys to check.",
        handler: Handler::Keys { local: exists, multi: Some(exists_multi) },
        ..BASE
    },
    CommandSpec {
        name: "touch",
        arity: -2,
        flags: READONLY | FAST,
        keys: KeySpec::ALL,
        summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        since: "3.2.1",
        complexity: "O(N) where N is the number of keys that will be touched.",
        handler: Handler::Keys { local: touch, multi: Some(touch_multi) },
        ..BASE
    },
    CommandSpec {
        name: "type",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Determines the type of value stored at a key.",
        handler: Handler::Keys { local: r#type, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "expire",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Sets the expiration time of a key in seconds.",
        handler: Handler::Keys { local: expire, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "pexpire",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Sets the expiration time of a key in milliseconds.",
        since: "2.6.0",
        handler: Handler::Keys { local: pexpire, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "expireat",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Sets the expiration time of a key to a Unix timestamp.",
        since: "1.2.0",
        handler: Handler::Keys { local: expireat, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "pexpireat",
        arity: -3,
        flags: WRITE | FAST,
        summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        since: "2.6.0",
        handler: Handler::Keys { local: pexpireat, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "ttl",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the expiration time in seconds of a key.",
        handler: Handler::Keys { local: ttl, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "pttl",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the expiration time in milliseconds of a key.",
        since: "2.6.0",
        handler: Handler::Keys { local: pttl, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "expiretime",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the expiration time of a key as a Unix timestamp.",
        since: "7.0.0",
        handler: Handler::Keys { local: expiretime, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "pexpiretime",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        since: "7.0.0",
        handler: Handler::Keys { local: pexpiretime, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "persist",
        arity: 2,
        flags: WRITE | FAST,
        summary: "Removes the expiration time of a key.",
        since: "2.2.0",
        handler: Handler::Keys { local: persist, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "rename",
        arity: 3,
        flags: WRITE,
        keys: KeySpec::TWO,
        summary: "Renames a key and overwrites the destination.",
        handler: Handler::Keys { local: rename, multi: Some(rename_multi) },
        ..BASE
    },
    CommandSpec {
        name: "renamenx",
        arity: 3,
        flags: WRITE | FAST,
        keys: KeySpec::TWO,
        summary: "Renames a key only when the target key name doesn't exist.",
        handler: Handler::Keys { local: renamenx, multi: Some(renamenx_multi) },
        ..BASE
    },
    CommandSpec {
        name: "copy",
        arity: -3,
        flags: WRITE | DENYOOM,
        keys: KeySpec::TWO,
        summary: "Copies the value of a key to a new key.",
        since: "6.2.0",
        complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
        handler: Handler::Keys { local: copy, multi: Some(copy_multi) },
        other_db_keys: Some(copy_other_db_keys),
        ..BASE
    },
    CommandSpec {
        name: "move",
        arity: 3,
        flags: WRITE | FAST,
        summary: "Moves a key to another database.",
        handler: Handler::Keys { local: r#move, multi: None },
        other_db_keys: Some(move_other_db_keys),
        ..BASE
    },
    CommandSpec {
        name: "migrate",
        arity: -6,
        flags: WRITE,
        keys: KeySpec { first: 3, last: 3, step: 1 },
        acl: &["@keyspace", "@dangerous"],
        summary: "Atomically transfer a key from a Redis instance to another one.",
        since: "2.6.0",
        complexity: "This command actually executes a DUMP+DEL in the source instance, and a RESTORE in the target instance. See the pages of these commands for time complexity. Also an O(N) data transfer between the two instances is performed.",
        handler: Handler::Connection,
        movable_keys: Some(migrate_keys),
        ..BASE
    },
    CommandSpec {
        name: "dump",
        arity: 2,
        flags: READONLY,
        summary: "Returns a serialized representation of the value stored at a key.",
        since: "2.6.0",
        complexity: "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).",
        handler: Handler::Keys { local: dump, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "restore",
        arity: -4,
        flags: WRITE | DENYOOM,
        acl: &["@keyspace", "@dangerous"],
        summary: "Creates a key from the serialized representation of a value.",
        since: "2.6.0",
        complexity: "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
        handler: Handler::Keys { local: restore, multi: None },
        ..BASE
    },
    // MIGRATE's RESTORE in cluster mode: served in a slot being imported without ASKING.
    CommandSpec {
        name: "restore-asking",
        arity: -4,
        flags: WRITE | DENYOOM,
        acl: &["@keyspace", "@dangerous"],
        group: "server",
        summary: "An internal command for migrating keys in a cluster",
        since: "3.0.0",
        complexity: "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
        handler: Handler::Keys { local: restore, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "keys",
        arity: 2,
        flags: READONLY | ALL_SHARDS,
        keys: KeySpec::NONE,
        acl: &["@keyspace", "@dangerous"],
        summary: "Returns all key names that match a pattern.",
        complexity: "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
        handler: Handler::Multi(keys),
        ..BASE
    },
    CommandSpec {
        name: "scan",
        arity: -2,
        flags: READONLY | ALL_SHARDS,
        keys: KeySpec::NONE,
        summary: "Iterates over the key names in the database.",
        since: "2.8.0",
        complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        handler: Handler::Multi(scan),
        ..BASE
    },
    CommandSpec {
        name: "randomkey",
        arity: 1,
        flags: READONLY | ALL_SHARDS,
        keys: KeySpec::NONE,
        summary: "Returns a random key name from the database.",
        handler: Handler::Multi(randomkey),
        ..BASE
    },
    CommandSpec {
        name: "object",
        arity: -2,
        flags: 0,
        keys: KeySpec::NONE,
        // Redis gives the container no category of its own: only the derived @slow.
        acl: &[],
        summary: "A container for object introspection commands.",
        since: "2.2.3",
        complexity: "Depends on subcommand.",
        handler: Handler::Keys { local: object, multi: None },
        subcommands: OBJECT_SUBCOMMANDS,
        ..BASE
    },
];

/// Runs a counting op on every core's keys and adds the counts up.
fn count_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>, op: fn(&mut Ctx, &[Bytes]) -> usize) -> LocalBoxFuture<'_, Frame> {
    async move {
        let groups = ctx::group_by_shard(coordinator.shard_count(), args.into_iter().enumerate().skip(1));
        let counts = ctx::hop_per_shard(coordinator, groups, move |ctx, keys| op(ctx, &keys)).await;
        Frame::Integer(counts.iter().map(|(_, n)| *n as i64).sum())
    }
    .boxed_local()
}

// ---- DEL, UNLINK, EXISTS, TOUCH -----------------------------------------------------------

/// Removes `keys`; returns how many existed. Big values are freed in the background when
/// `lazy` (UNLINK, or DEL with `lazyfree-lazy-user-del`).
pub fn op_del(ctx: &mut Ctx, keys: &[Bytes], lazy: bool) -> usize {
    let now = ctx.now_ms;
    let mut removed = 0;
    for key in keys {
        let db = ctx.db();
        if db.lookup_write(key, now).is_none() {
            continue;
        }
        if let Some(entry) = db.remove(key) {
            removed += 1;
            ctx.shard.dispose(entry.value, lazy);
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    // One change per key removed, as Redis counts DEL.
    ctx.db().add_changes(removed as u64);
    removed
}

fn op_del_user(ctx: &mut Ctx, keys: &[Bytes]) -> usize {
    let lazy = ctx.settings.lazyfree_lazy_user_del;
    op_del(ctx, keys, lazy)
}

fn op_unlink(ctx: &mut Ctx, keys: &[Bytes]) -> usize {
    op_del(ctx, keys, true)
}

/// DEL key [key ...]
fn del(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Integer(op_del_user(ctx, &args[1..]) as i64)
}

/// UNLINK key [key ...]: DEL that frees big values off the core.
fn unlink(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Integer(op_unlink(ctx, &args[1..]) as i64)
}

fn unlink_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    count_multi(coordinator, args, op_unlink)
}

fn del_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    count_multi(coordinator, args, op_del_user)
}

/// How many of `keys` exist, counting repeats. Leaves access times alone, as Redis does.
pub fn op_exists(ctx: &mut Ctx, keys: &[Bytes]) -> usize {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter().filter(|k| db.lookup_read_notouch(k, now).is_some()).count()
}

/// EXISTS key [key ...]
fn exists(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Integer(op_exists(ctx, &args[1..]) as i64)
}

fn exists_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    count_multi(coordinator, args, op_exists)
}

/// Reads each of `keys`, updating its access time; returns how many exist, counting repeats.
pub fn op_touch(ctx: &mut Ctx, keys: &[Bytes]) -> usize {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter().filter(|k| db.lookup_read(k, now).is_some()).count()
}

/// TOUCH key [key ...]
fn touch(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Integer(op_touch(ctx, &args[1..]) as i64)
}

fn touch_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    count_multi(coordinator, args, op_touch)
}

// ---- TYPE -------------------------------------------------------------------------------

/// The type name of the value at `key`, "none" when absent.
pub fn op_type(db: &mut Db, key: &[u8], now_ms: u64) -> &'static str {
    db.lookup_read_notouch(key, now_ms).map_or("none", |entry| entry.value.type_name())
}

/// TYPE key
fn r#type(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    Frame::Simple(Bytes::from_static(op_type(ctx.db(), &args[1], now).as_bytes()))
}

// ---- EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT --------------------------------------------------

/// EXPIRE's NX, XX, GT and LT options: when a new TTL may replace the current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireCondition {
    /// Only when the key has no TTL.
    pub nx: bool,
    /// Only when the key has a TTL.
    pub xx: bool,
    /// Only when the new expiry is later than the current one (no TTL counts as infinite).
    pub gt: bool,
    /// Only when the new expiry is earlier than the current one (no TTL counts as infinite).
    pub lt: bool,
}

/// Parses EXPIRE's options as Redis's `parseExtendedExpireArgumentsOrReply`: every word
/// first, then the combinations.
fn parse_expire_condition(options: &[Bytes]) -> Result<ExpireCondition, Frame> {
    let mut condition = ExpireCondition::default();
    for option in options {
        if is(option, "nx") {
            condition.nx = true;
        } else if is(option, "xx") {
            condition.xx = true;
        } else if is(option, "gt") {
            condition.gt = true;
        } else if is(option, "lt") {
            condition.lt = true;
        } else {
            return Err(errors::unsupported_option(option));
        }
    }
    if condition.nx && (condition.xx || condition.gt || condition.lt) {
        return Err(errors::error(errors::EXPIRE_NX_AND_OTHERS));
    }
    if condition.gt && condition.lt {
        return Err(errors::error(errors::EXPIRE_GT_AND_LT));
    }
    Ok(condition)
}

/// The absolute expiry in Unix milliseconds for `value` in units of `unit_ms` after
/// `base_ms`, or None where Redis reports an invalid expire time (overflow). Negative
/// results are allowed: they delete the key.
fn expire_at_ms(value: i64, unit_ms: i64, base_ms: i64) -> Option<i64> {
    value.checked_mul(unit_ms)?.checked_add(base_ms)
}

/// Sets the expiry of `key` to `at_ms` (absolute Unix milliseconds) if `condition` allows;
/// a time that is not in the future deletes the key. Returns the event of what it did
/// (`expire`, or `del` when it deleted), None when it did nothing.
pub fn op_expire(db: &mut Db, key: &[u8], at_ms: i64, condition: ExpireCondition, now_ms: u64) -> Option<&'static str> {
    db.lookup_write(key, now_ms)?;
    let current = db.expire_at(key).map(|at| at as i64);
    let blocked = match current {
        // No TTL counts as an infinite one: never less than a new time, always greater.
        None => condition.xx || condition.gt,
        Some(current) => condition.nx || (condition.gt && at_ms <= current) || (condition.lt && at_ms >= current),
    };
    if blocked {
        return None;
    }
    db.add_changes(1);
    if db.expiry_passed(at_ms, now_ms) {
        let removed = db.remove(key);
        debug_assert!(removed.is_some(), "the key was just found");
        Some("del")
    } else {
        let set = db.set_expire(key, Some(at_ms as u64));
        debug_assert!(set, "the key was just found");
        Some("expire")
    }
}

/// The generic form of EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT (Redis's `expireGenericCommand`).
fn expire_generic(ctx: &mut Ctx, args: &[Bytes], name: &str, unit_ms: i64, absolute: bool) -> Frame {
    let condition = match parse_expire_condition(&args[3..]) {
        Ok(condition) => condition,
        Err(e) => return e,
    };
    let value = match args::parse_i64(&args[2]) {
        Ok(value) => value,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let base_ms = if absolute { 0 } else { now as i64 };
    let Some(at_ms) = expire_at_ms(value, unit_ms, base_ms) else {
        return errors::invalid_expire(name);
    };
    let event = op_expire(ctx.db(), &args[1], at_ms, condition, now);
    if let Some(event) = event {
        ctx.notify(notify::GENERIC, event, &args[1]);
    }
    Frame::Integer(event.is_some() as i64)
}

/// EXPIRE key seconds [NX | XX | GT | LT]
fn expire(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, "expire", 1000, false)
}

/// PEXPIRE key milliseconds [NX | XX | GT | LT]
fn pexpire(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, "pexpire", 1, false)
}

/// EXPIREAT key unix-time-seconds [NX | XX | GT | LT]
fn expireat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, "expireat", 1000, true)
}

/// PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]
fn pexpireat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, "pexpireat", 1, true)
}

// ---- TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST -------------------------------------------

/// What TTL and friends know about a key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Missing,
    Persistent,
    /// Absolute Unix milliseconds.
    At(u64),
}

/// The expiry of `key`, without touching its access time.
pub fn op_expiry(db: &mut Db, key: &[u8], now_ms: u64) -> Expiry {
    match db.lookup_read_notouch(key, now_ms) {
        None => Expiry::Missing,
        Some(_) => db.expire_at(key).map_or(Expiry::Persistent, Expiry::At),
    }
}

/// The generic form of TTL, PTTL, EXPIRETIME and PEXPIRETIME (Redis's `ttlGenericCommand`):
/// -2 for a missing key, -1 for no TTL, otherwise the time left (or the time of expiry when
/// `absolute`), in milliseconds or in seconds rounded to the nearest.
fn ttl_generic(ctx: &mut Ctx, key: &[u8], in_ms: bool, absolute: bool) -> Frame {
    let now = ctx.now_ms;
    let ms = match op_expiry(ctx.db(), key, now) {
        Expiry::Missing => return Frame::Integer(-2),
        Expiry::Persistent => return Frame::Integer(-1),
        Expiry::At(at) if absolute => at,
        Expiry::At(at) => at.saturating_sub(now),
    };
    // An expiry is at most i64::MAX ms, so adding 500 cannot overflow a u64.
    args::int(if in_ms { ms } else { (ms + 500) / 1000 })
}

/// TTL key
fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], false, false)
}

/// PTTL key
fn pttl(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], true, false)
}

/// EXPIRETIME key
fn expiretime(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], false, true)
}

/// PEXPIRETIME key
fn pexpiretime(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], true, true)
}

/// Removes the TTL of `key`; returns whether it had one.
pub fn op_persist(db: &mut Db, key: &[u8], now_ms: u64) -> bool {
    let removed = db.lookup_write(key, now_ms).is_some() && db.expire_at(key).is_some() && db.set_expire(key, None);
    db.add_changes(removed as u64);
    removed
}

/// PERSIST key
fn persist(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let removed = op_persist(ctx.db(), &args[1], now);
    if removed {
        ctx.notify(notify::GENERIC, "persist", &args[1]);
    }
    Frame::Integer(removed as i64)
}

// ---- RENAME, RENAMENX -----------------------------------------------------------------

/// Renames `source` to `destination` on one core, keeping the value's TTL and access time.
/// With `only_if_absent` (RENAMENX) an existing destination leaves everything as it was.
/// Returns whether it renamed; renaming a key onto itself counts as done for RENAME and
/// not for RENAMENX, as in Redis. Err when `source` does not exist.
pub fn op_rename(db: &mut Db, source: &[u8], destination: &[u8], only_if_absent: bool, now_ms: u64) -> Result<bool, Frame> {
    if db.lookup_write(source, now_ms).is_none() {
        return Err(errors::error(errors::NO_SUCH_KEY));
    }
    if source == destination {
        return Ok(!only_if_absent);
    }
    if only_if_absent && db.lookup_write(destination, now_ms).is_some() {
        return Ok(false);
    }
    let detached = db.take(source).expect("the source was just found");
    db.insert_detached(destination, detached, now_ms);
    // One change for the whole rename, as Redis counts it.
    db.add_changes(1);
    Ok(true)
}

/// Takes `key`'s entry out of the selected database (the first half of a cross-core rename).
pub fn op_take(ctx: &mut Ctx, key: &[u8]) -> Option<Detached> {
    let now = ctx.now_ms;
    let db = ctx.db();
    db.lookup_write(key, now)?;
    db.take(key)
}

/// Puts `entry` under `key` in the selected database, replacing what was there (the second
/// half of a cross-core rename).
pub fn op_put(ctx: &mut Ctx, key: &[u8], detached: Detached) {
    let now = ctx.now_ms;
    ctx.db().insert_detached(key, detached, now);
}

/// Whether `key` exists, looked up for writing.
fn op_exists_for_write(ctx: &mut Ctx, key: &[u8]) -> bool {
    let now = ctx.now_ms;
    ctx.db().lookup_write(key, now).is_some()
}

/// RENAME and RENAMENX when source and destination live on different cores: two hops under
/// both keys' locks. The first takes the source out (and, for RENAMENX, looks at the
/// destination at the same time); the second puts it at the destination, or back where it
/// was when RENAMENX finds the destination taken. Nobody sees the source missing meanwhile.
async fn rename_across_cores(coordinator: &dyn Coordinator, args: Vec<Bytes>, only_if_absent: bool) -> Result<bool, Frame> {
    let (source, destination) = (args[1].clone(), args[2].clone());
    let shard_count = coordinator.shard_count();
    let source_shard = slot::key_shard(&source, shard_count);
    let destination_shard = slot::key_shard(&destination, shard_count);
    debug_assert_ne!(source_shard, destination_shard, "a rename within one core runs locally");
    let take = {
        let source = source.clone();
        move |ctx: &mut Ctx| op_take(ctx, &source)
    };
    let (entry, destination_exists) = if only_if_absent {
        let check = {
            let destination = destination.clone();
            move |ctx: &mut Ctx| op_exists_for_write(ctx, &destination)
        };
        ctx::hop_two(coordinator, (source_shard, take), (destination_shard, check)).await
    } else {
        (ctx::hop_one(coordinator, source_shard, take).await, false)
    };
    let Some(entry) = entry else {
        return Err(errors::error(errors::NO_SUCH_KEY));
    };
    if destination_exists {
        ctx::hop_one(coordinator, source_shard, move |ctx: &mut Ctx| op_put(ctx, &source, entry)).await;
        return Ok(false);
    }
    // One change for the whole rename, counted where the key arrives (taking it out and
    // putting it back count nothing).
    ctx::hop_one(coordinator, destination_shard, move |ctx: &mut Ctx| {
        let replaced = replaces(ctx, &destination, ctx.db_index);
        op_put(ctx, &destination, entry);
        notify_replaced(ctx, &destination, ctx.db_index, replaced);
        ctx.db().add_changes(1);
        // Both events from here, so that they are published in order from one core.
        ctx.notify(notify::GENERIC, "rename_from", &source);
        ctx.notify(notify::GENERIC, "rename_to", &destination);
    })
    .await;
    Ok(true)
}

/// Whether writing `key` of database `db` replaces a key there, when `new` events are on:
/// Redis deletes the old key and adds the new one (RENAME, COPY ... REPLACE, RESTORE ...
/// REPLACE), which raises `new` where we overwrite in place.
pub(crate) fn replaces(ctx: &mut Ctx, key: &[u8], db: usize) -> bool {
    ctx.notifying(notify::NEW) && {
        let now = ctx.now_ms;
        ctx.shard.dbs[db].lookup_quiet(key, now).is_some()
    }
}

/// The `new` event of a key that replaced another (see [`replaces`]).
pub(crate) fn notify_replaced(ctx: &mut Ctx, key: &[u8], db: usize, replaced: bool) {
    if replaced {
        ctx.notify_db(notify::NEW, "new", key, db);
    }
}

/// [`op_rename`] with its events: `rename_from`, then `rename_to` (none for a key renamed
/// onto itself).
fn rename_local(ctx: &mut Ctx, args: &[Bytes], only_if_absent: bool) -> Result<bool, Frame> {
    let now = ctx.now_ms;
    let replaced = replaces(ctx, &args[2], ctx.db_index);
    let renamed = op_rename(ctx.db(), &args[1], &args[2], only_if_absent, now);
    if matches!(renamed, Ok(true)) && args[1] != args[2] {
        notify_replaced(ctx, &args[2], ctx.db_index, replaced);
        ctx.notify(notify::GENERIC, "rename_from", &args[1]);
        ctx.notify(notify::GENERIC, "rename_to", &args[2]);
    }
    renamed
}

/// RENAME key newkey
fn rename(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ctx::reply(rename_local(ctx, args, false), |_| args::ok())
}

fn rename_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { ctx::reply(rename_across_cores(coordinator, args, false).await, |_| args::ok()) }.boxed_local()
}

/// RENAMENX key newkey
fn renamenx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ctx::reply(rename_local(ctx, args, true), args::int)
}

fn renamenx_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move { ctx::reply(rename_across_cores(coordinator, args, true).await, args::int) }.boxed_local()
}

// ---- COPY, MOVE ------------------------------------------------------------------------

/// Parses a database index argument against the number of databases.
fn parse_db_index(arg: &[u8], db_count: usize) -> Result<usize, Frame> {
    let index = args::parse_i32(arg)?;
    usize::try_from(index).ok().filter(|&i| i < db_count).ok_or_else(|| errors::error(errors::DB_INDEX_OUT_OF_RANGE))
}

/// COPY's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CopyOptions {
    /// The destination database (the selected one unless DB is given).
    db: usize,
    replace: bool,
}

/// Parses COPY's options in order, as Redis does: the first bad one decides the error.
fn parse_copy_options(args: &[Bytes], db_count: usize, db_index: usize) -> Result<CopyOptions, Frame> {
    let mut options = CopyOptions { db: db_index, replace: false };
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            options.replace = true;
            i += 1;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            options.db = parse_db_index(&args[i + 1], db_count)?;
            i += 2;
        } else {
            return Err(errors::syntax());
        }
    }
    Ok(options)
}

/// A copy of the value at `key` with its expiry, read as COPY reads its source.
pub fn op_copy_read(db: &mut Db, key: &[u8], now_ms: u64) -> Option<(Value, Option<u64>)> {
    let value = db.lookup_read(key, now_ms)?.value.clone();
    Some((value, db.expire_at(key)))
}

/// Writes a copied value under `key` unless it exists and `replace` is false; returns whether
/// it wrote. The copy is a new object: its access time is now.
pub fn op_copy_write(db: &mut Db, key: &[u8], (value, expire_at_ms): (Value, Option<u64>), replace: bool, now_ms: u64) -> bool {
    if db.lookup_write(key, now_ms).is_some() && !replace {
        return false;
    }
    db.set_with_expire(key, value, expire_at_ms, now_ms);
    db.add_changes(1);
    true
}

/// COPY source destination [DB destination-db] [REPLACE]
fn copy(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let options = match parse_copy_options(args, ctx.shard.dbs.len(), ctx.db_index) {
        Ok(options) => options,
        Err(e) => return e,
    };
    if options.db == ctx.db_index && args[1] == args[2] {
        return errors::error(errors::SAME_OBJECT);
    }
    let now = ctx.now_ms;
    let Some(copied) = op_copy_read(ctx.db(), &args[1], now) else {
        return Frame::Integer(0);
    };
    let replaced = replaces(ctx, &args[2], options.db);
    let written = op_copy_write(&mut ctx.shard.dbs[options.db], &args[2], copied, options.replace, now);
    if written {
        notify_replaced(ctx, &args[2], options.db, replaced);
        ctx.notify_db(notify::GENERIC, "copy_to", &args[2], options.db);
    }
    Frame::Integer(written as i64)
}

/// COPY across cores: the first hop parses the options (it needs the number of databases)
/// and reads the source; the second writes the destination. Source and destination names
/// differ here (one name lives on one core), so they cannot be the same object.
fn copy_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let shard_count = coordinator.shard_count();
        let source_shard = slot::key_shard(&args[1], shard_count);
        let destination_shard = slot::key_shard(&args[2], shard_count);
        let destination = args[2].clone();
        let read = ctx::hop_one(coordinator, source_shard, move |ctx: &mut Ctx| {
            let options = parse_copy_options(&args, ctx.shard.dbs.len(), ctx.db_index)?;
            let now = ctx.now_ms;
            Ok((options, op_copy_read(ctx.db(), &args[1], now)))
        })
        .await;
        match read {
            Err(e) => e,
            Ok((_, None)) => Frame::Integer(0),
            Ok((options, Some(copied))) => {
                let written = ctx::hop_one(coordinator, destination_shard, move |ctx: &mut Ctx| {
                    let now = ctx.now_ms;
                    let replaced = replaces(ctx, &destination, options.db);
                    let written = op_copy_write(&mut ctx.shard.dbs[options.db], &destination, copied, options.replace, now);
                    if written {
                        notify_replaced(ctx, &destination, options.db, replaced);
                        ctx.notify_db(notify::GENERIC, "copy_to", &destination, options.db);
                    }
                    written
                })
                .await;
                Frame::Integer(written as i64)
            }
        }
    }
    .boxed_local()
}

/// Moves `key` from database `from` to database `to` on this core, with its TTL, unless it is
/// missing or `to` already has it. Returns whether it moved.
pub fn op_move(dbs: &mut [Db], key: &[u8], from: usize, to: usize, now_ms: u64) -> bool {
    assert_ne!(from, to, "a move goes to another database");
    if dbs[from].lookup_write(key, now_ms).is_none() || dbs[to].lookup_write(key, now_ms).is_some() {
        return false;
    }
    let detached = dbs[from].take(key).expect("the key was just found");
    dbs[to].insert_detached(key, detached, now_ms);
    dbs[to].add_changes(1);
    true
}

/// MOVE key db
fn r#move(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let to = match parse_db_index(&args[2], ctx.shard.dbs.len()) {
        Ok(to) => to,
        Err(e) => return e,
    };
    if to == ctx.db_index {
        return errors::error(errors::SAME_OBJECT);
    }
    let (from, now) = (ctx.db_index, ctx.now_ms);
    let moved = op_move(&mut ctx.shard.dbs, &args[1], from, to, now);
    if moved {
        ctx.notify_db(notify::GENERIC, "move_from", &args[1], from);
        ctx.notify_db(notify::GENERIC, "move_to", &args[1], to);
    }
    Frame::Integer(moved as i64)
}

// ---- DUMP, RESTORE ---------------------------------------------------------------------

/// Whether DUMP compresses. Redis follows `rdbcompression` (default yes); that setting does
/// not reach the commands' [`crate::ctx::Settings`], so DUMP always compresses, as Redis's
/// default does. Either way the payload restores the same value.
const DUMP_COMPRESS: bool = true;

/// The DUMP payload of the value at `key`, read as DUMP reads it (updating its access time).
pub fn op_dump(db: &mut Db, key: &[u8], now_ms: u64) -> Option<Vec<u8>> {
    db.lookup_read(key, now_ms).map(|entry| shoal_rdb::dump(&entry.value, DUMP_COMPRESS))
}

/// DUMP key
/// MIGRATE's keys: the one at 3 (when not empty), or those after a KEYS option.
fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    let mut j = 6;
    while j < args.len() {
        let option = &args[j];
        if option.eq_ignore_ascii_case(b"keys") {
            return (j + 1..args.len()).collect();
        }
        j += if option.eq_ignore_ascii_case(b"auth") {
            2
        } else if option.eq_ignore_ascii_case(b"auth2") {
            3
        } else {
            1
        };
    }
    if args.get(3).is_some_and(|key| !key.is_empty()) {
        vec![3]
    } else {
        Vec::new()
    }
}

fn dump(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    op_dump(ctx.db(), &args[1], now).map_or(Frame::Null, args::bulk)
}

/// RESTORE's options after the payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RestoreOptions {
    replace: bool,
    /// The TTL argument is an absolute Unix time in milliseconds.
    absttl: bool,
    /// IDLETIME: the key's idle time in seconds (applied under an LRU policy).
    idle_s: Option<i64>,
    /// FREQ: the key's LFU counter (applied under an LFU policy).
    freq: Option<u8>,
}

/// Parses RESTORE's options in order, as Redis's `restoreCommand`: the first bad one decides
/// the error. IDLETIME and FREQ exclude each other (the later one is a syntax error), and
/// either one without a value is a syntax error; a repeated one keeps the last value.
fn parse_restore_options(options: &[Bytes]) -> Result<RestoreOptions, Frame> {
    let mut parsed = RestoreOptions::default();
    let mut i = 0;
    while i < options.len() {
        let has_value = i + 1 < options.len();
        if is(&options[i], "replace") {
            parsed.replace = true;
        } else if is(&options[i], "absttl") {
            parsed.absttl = true;
        } else if is(&options[i], "idletime") && has_value && parsed.freq.is_none() {
            let idle_s = args::parse_i64(&options[i + 1])?;
            if idle_s < 0 {
                return Err(errors::error(errors::RESTORE_INVALID_IDLETIME));
            }
            parsed.idle_s = Some(idle_s);
            i += 1;
        } else if is(&options[i], "freq") && has_value && parsed.idle_s.is_none() {
            let freq = args::parse_i64(&options[i + 1])?;
            parsed.freq = Some(u8::try_from(freq).map_err(|_| errors::error(errors::RESTORE_INVALID_FREQ))?);
            i += 1;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    Ok(parsed)
}

/// The LRU clock of a key that was last accessed `idle_s` seconds before `now_ms`, as Redis's
/// `objectSetLRUOrLFU`: wrapped once into the 24-bit clock, then cut to 24 bits (so an idle
/// time beyond the clock's range reads back as Redis's does).
fn lru_idle_since(idle_s: i64, now_ms: u64) -> u32 {
    let clock = shoal_store::db::lru_clock(now_ms) as i64;
    // clock >= 0 and idle_s >= 0, so this cannot overflow.
    let mut at = clock - idle_s;
    if at < 0 {
        at += shoal_store::db::LRU_CLOCK_MAX as i64;
    }
    // Two's complement truncation, as C's assignment to a 24-bit field.
    (at as u64 as u32) & shoal_store::db::LRU_CLOCK_MAX
}

/// The key bits that hold LFU counter `freq` as of now (RESTORE ... FREQ).
fn lru_for_freq(freq: u8, now_ms: u64) -> u32 {
    shoal_store::db::lfu_bits(freq, now_ms)
}

/// What RESTORE writes, its arguments checked and its payload decoded.
#[derive(Debug)]
pub struct Restored {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; may be in the past (then nothing is written).
    pub expire_at_ms: Option<i64>,
    pub replace: bool,
    /// The LRU clock to give the key (IDLETIME, or FREQ under an LFU policy); None: now.
    pub lru: Option<u32>,
}

/// Writes a restored value under `key` (an existing key was checked for before): with an
/// expiry already past, nothing is created and a replaced key is deleted, as Redis 7 does.
pub fn op_restore(ctx: &mut Ctx, key: &[u8], restored: Restored) {
    let now = ctx.now_ms;
    let lazy = ctx.settings.lazyfree_lazy_server_del;
    match restored.expire_at_ms {
        Some(at) if ctx.db().expiry_passed(at, now) => {
            if restored.replace {
                if let Some(entry) = ctx.db().remove(key) {
                    ctx.db().add_changes(1);
                    ctx.shard.dispose(entry.value, lazy);
                    ctx.notify(notify::GENERIC, "del", key);
                }
            }
        }
        at => {
            let replaced = replaces(ctx, key, ctx.db_index);
            let db = ctx.db();
            db.set_with_expire(key, restored.value, at.map(|at| at as u64), now);
            db.add_changes(1);
            if let Some(lru) = restored.lru {
                let set = db.set_lru(key, lru);
                debug_assert!(set, "the key was just written");
            }
            notify_replaced(ctx, key, ctx.db_index, replaced);
            ctx.notify(notify::GENERIC, "restore", key);
        }
    }
}

/// Decodes a RESTORE payload as Redis does. Redis checks the footer, then decodes from the
/// start of the whole payload, footer included: a value may end anywhere before the payload's
/// end, even inside its version and checksum. `shoal_rdb` decodes within the body only, so a
/// payload it finds short is decoded again with the whole payload as the body (behind a
/// fresh footer that only this function sees), which reads exactly what Redis would.
fn decode_payload(payload: &[u8], limits: &shoal_store::Limits, now_ms: u64) -> Result<Value, Frame> {
    let decode = |payload: &[u8]| shoal_rdb::restore_loaded(payload, limits, now_ms as i64);
    let loaded = match decode(payload) {
        // Bad data comes after the footer checks, so the payload has a footer.
        Err(shoal_rdb::RestoreError::BadDataFormat) if payload.len() >= 10 => {
            let version = &payload[payload.len() - 10..payload.len() - 8];
            let mut whole = Vec::with_capacity(payload.len() + 10);
            whole.extend_from_slice(payload);
            whole.extend_from_slice(version);
            let crc = shoal_rdb::crc64::crc64(&whole);
            whole.extend_from_slice(&crc.to_le_bytes());
            decode(&whole)
        }
        other => other,
    };
    let loaded = loaded.map_err(|e| errors::error(&e.to_string()))?;
    Ok(loaded.value.expect("a restored payload holds a value"))
}

/// Checks RESTORE's arguments in Redis's order (options, existing key, TTL, payload) and
/// decodes the payload.
fn parse_restore(ctx: &mut Ctx, args: &[Bytes]) -> Result<Restored, Frame> {
    let options = parse_restore_options(&args[4..])?;
    let now = ctx.now_ms;
    if !options.replace && ctx.db().lookup_write(&args[1], now).is_some() {
        return Err(errors::error(errors::BUSYKEY));
    }
    let ttl_ms = args::parse_i64(&args[2])?;
    if ttl_ms < 0 {
        return Err(errors::error(errors::RESTORE_INVALID_TTL));
    }
    let value = decode_payload(&args[3], &ctx.settings.limits, now)?;
    let expire_at_ms = match ttl_ms {
        0 => None,
        at if options.absttl => Some(at),
        // Redis adds without checking: a relative TTL that overflows lands in the past.
        ttl => Some(ttl.wrapping_add(now as i64)),
    };
    let lru = if ctx.settings.lfu_policy { options.freq.map(|freq| lru_for_freq(freq, now)) } else { options.idle_s.map(|idle_s| lru_idle_since(idle_s, now)) };
    Ok(Restored { value, expire_at_ms, replace: options.replace, lru })
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
fn restore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match parse_restore(ctx, args) {
        Ok(restored) => {
            op_restore(ctx, &args[1], restored);
            args::ok()
        }
        Err(e) => e,
    }
}

// ---- KEYS, SCAN, RANDOMKEY -------------------------------------------------------------

/// A MATCH pattern, None for "*", which Redis does not even match against (so it finds the
/// empty key, which the glob `*` would not).
fn pattern_of(pattern: &Bytes) -> Option<Bytes> {
    (pattern.as_ref() != b"*").then(|| pattern.clone())
}

fn key_matches(pattern: Option<&Bytes>, key: &[u8]) -> bool {
    pattern.is_none_or(|pattern| shoal_glob::matches(pattern, key))
}

/// The live keys of the selected database that match `pattern` (None: all).
pub fn op_keys(ctx: &mut Ctx, pattern: Option<&Bytes>) -> Vec<Bytes> {
    let now = ctx.now_ms;
    ctx.db().iter(now).filter(|(key, _)| key_matches(pattern, key)).map(|(key, _)| Bytes::copy_from_slice(key)).collect()
}

/// KEYS pattern
fn keys(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let pattern = pattern_of(&args[1]);
        let per_core = ctx::hop_all(coordinator, move |ctx: &mut Ctx| op_keys(ctx, pattern.as_ref())).await;
        Frame::Array(per_core.into_iter().flatten().map(Frame::Bulk).collect())
    }
    .boxed_local()
}

/// SCAN's filters.
#[derive(Clone, Debug, Default)]
pub struct ScanFilter {
    /// MATCH, None for all keys.
    pub pattern: Option<Bytes>,
    /// TYPE, compared ignoring case; an unknown type matches nothing (Redis 7 does not
    /// reject it).
    pub type_name: Option<Bytes>,
}

impl ScanFilter {
    fn accepts(&self, key: &[u8], entry: &Entry) -> bool {
        key_matches(self.pattern.as_ref(), key) && self.type_name.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()))
    }
}

/// Where one SCAN call stands: its work budget and what it has gathered so far.
#[derive(Debug, Default)]
pub struct ScanProgress {
    /// Keys seen, before filtering: COUNT bounds this, as in Redis.
    pub sampled: usize,
    /// Dict steps (buckets) this call may still take.
    pub steps_left: u64,
    pub keys: Vec<Bytes>,
}

/// Walks this core's part of the selected database from `dict_cursor`, as Redis's SCAN loop
/// does: one bucket at a time, until the walk is complete, `count` keys were seen or the step
/// budget is spent. Returns the next dict cursor (0 when this core is done).
pub fn op_scan(ctx: &mut Ctx, mut dict_cursor: u64, filter: &ScanFilter, count: usize, progress: &mut ScanProgress) -> u64 {
    let now = ctx.now_ms;
    let db = ctx.db();
    loop {
        debug_assert!(progress.steps_left > 0, "a scan step needs budget");
        dict_cursor = db.scan_step_reclaiming(dict_cursor, now, |key, entry| {
            progress.sampled += 1;
            if filter.accepts(key, entry) {
                progress.keys.push(Bytes::copy_from_slice(key));
            }
        });
        progress.steps_left -= 1;
        if dict_cursor == 0 || progress.steps_left == 0 || progress.sampled >= count {
            return dict_cursor;
        }
    }
}

/// Parses SCAN's options after the cursor: Ok((filter, count)).
fn parse_scan_options(options: &[Bytes]) -> Result<(ScanFilter, usize), Frame> {
    let parsed = args::parse_scan_options(options, args::ScanExtras { type_name: true, no_values: false })?;
    Ok((ScanFilter { pattern: parsed.pattern, type_name: parsed.type_name }, parsed.count))
}

/// The SCAN cursor for (core, dict cursor).
fn encode_cursor(core: usize, dict_cursor: u64, shard_count: usize) -> u64 {
    // A dict cursor is below its table's bucket count, far from overflowing here.
    dict_cursor.checked_mul(shard_count as u64).and_then(|c| c.checked_add(core as u64)).expect("a dict cursor leaves room for the core")
}

/// The (core, dict cursor) of a SCAN cursor. Any number decodes to some place: a dict
/// cursor beyond a table's size is masked to it, as Redis masks a client's cursor.
fn decode_cursor(cursor: u64, shard_count: usize) -> (usize, u64) {
    ((cursor % shard_count as u64) as usize, cursor / shard_count as u64)
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
fn scan(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let cursor = match args::parse_cursor(&args[1]) {
            Ok(cursor) => cursor,
            Err(e) => return e,
        };
        let (filter, count) = match parse_scan_options(&args[2..]) {
            Ok(parsed) => parsed,
            Err(e) => return e,
        };
        let shard_count = coordinator.shard_count();
        let (mut core, mut dict_cursor) = decode_cursor(cursor, shard_count);
        // Redis's budget: at most COUNT * 10 buckets after the first, against sparse tables.
        let mut progress = ScanProgress { sampled: 0, steps_left: (count as u64).saturating_mul(10).saturating_add(1), keys: Vec::new() };
        let next = loop {
            let filter = filter.clone();
            // The progress travels to the core and back, so the budget spans every core.
            let mut travelling = std::mem::take(&mut progress);
            (dict_cursor, progress) = ctx::hop_one(coordinator, core, move |ctx: &mut Ctx| {
                let next = op_scan(ctx, dict_cursor, &filter, count, &mut travelling);
                (next, travelling)
            })
            .await;
            if dict_cursor == 0 {
                // This core is done: the walk goes on with the next one, from its start.
                core += 1;
                if core == shard_count {
                    break 0;
                }
            }
            if progress.steps_left == 0 || progress.sampled >= count {
                break encode_cursor(core, dict_cursor, shard_count);
            }
        };
        let keys = progress.keys.into_iter().map(Frame::Bulk).collect();
        Frame::Array(vec![args::bulk(Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes())), Frame::Array(keys)])
    }
    .boxed_local()
}

/// A random live key of this core's part of the selected database, with the number of keys
/// that part holds, and a random number from this core's generator.
pub fn op_random_key(ctx: &mut Ctx) -> (Option<Box<[u8]>>, usize, u64) {
    use rand::Rng;
    let now = ctx.now_ms;
    let shard = &mut *ctx.shard;
    let key = shard.dbs[ctx.db_index].random_key(now, &mut shard.rng);
    (key, shard.dbs[ctx.db_index].len(), shard.rng.random())
}

/// RANDOMKEY
///
/// Every core picks a key of its own in one hop; the reply is one of those, chosen with
/// probability proportional to the number of keys on its core, so that each key of the
/// database is about equally likely.
fn randomkey(coordinator: &dyn Coordinator, _args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let picks = ctx::hop_all(coordinator, op_random_key).await;
        let total: u64 = picks.iter().filter(|(key, _, _)| key.is_some()).map(|(_, len, _)| *len as u64).sum();
        if total == 0 {
            return Frame::Null;
        }
        let mut target = picks[0].2 % total;
        for (key, len, _) in picks {
            let Some(key) = key else { continue };
            if target < len as u64 {
                return args::bulk(Bytes::from(key.into_vec()));
            }
            target -= len as u64;
        }
        unreachable!("the target falls within the total")
    }
    .boxed_local()
}

// ---- OBJECT ----------------------------------------------------------------------------

/// Redis's OBJ_SHARED_REFCOUNT: the reference count it reports for shared objects.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
/// Redis's OBJ_SHARED_INTEGERS: integers below this are shared objects.
const SHARED_INTEGERS: i64 = 10_000;
/// OBJECT (without a subcommand; the dispatcher's arity check answers first).
fn object(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    errors::wrong_arity("object")
}

/// The entry at OBJECT's key, looked up as Redis's `objectCommandLookup` (without touching
/// the access time).
fn object_entry<'a>(ctx: &'a mut Ctx, args: &[Bytes]) -> Option<&'a Entry> {
    let now = ctx.now_ms;
    // OBJECT raises no keymiss (Redis looks up with LOOKUP_NONOTIFY).
    ctx.db().lookup_read_notouch_unreported(&args[2], now)
}

/// OBJECT ENCODING key
fn object_encoding(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    object_entry(ctx, args).map_or(Frame::Null, |entry| args::bulk_str(entry.value.encoding_name()))
}

/// What OBJECT REFCOUNT reports for a value. Redis shares the objects of the integers 0 to
/// 9999 and reports them as referenced i32::MAX times; everything else is counted once here.
/// (Redis stops sharing when maxmemory is set with an LRU or LFU policy, and COPY makes a
/// private copy of a shared integer; Shoal does not track either.)
pub fn refcount(value: &Value) -> i64 {
    match value {
        Value::Str(Str::Int(n)) if (0..SHARED_INTEGERS).contains(n) => SHARED_REFCOUNT,
        _ => 1,
    }
}

/// OBJECT REFCOUNT key
fn object_refcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    object_entry(ctx, args).map_or(Frame::Null, |entry| Frame::Integer(refcount(&entry.value)))
}

/// Seconds since `key` (looked up just before) was last accessed.
fn idle_s(ctx: &mut Ctx, key: &[u8]) -> u64 {
    let now = ctx.now_ms;
    ctx.db().lru(key).map_or(0, |lru| shoal_store::db::idle_seconds(lru, now))
}

/// OBJECT IDLETIME key
fn object_idletime(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let lfu = ctx.settings.lfu_policy;
    match object_entry(ctx, args) {
        None => Frame::Null,
        Some(_) if lfu => errors::error(errors::LFU_SELECTED),
        Some(_) => args::int(idle_s(ctx, &args[2])),
    }
}

/// OBJECT FREQ key
///
/// The key's LFU counter, decayed to now (Redis's `LFUDecrAndReturn`).
fn object_freq(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let lfu = ctx.settings.lfu_policy;
    match object_entry(ctx, args) {
        None => Frame::Null,
        Some(_) if !lfu => errors::error(errors::LFU_NOT_SELECTED),
        Some(_) => {
            let now = ctx.now_ms;
            args::int(ctx.db().lfu_counter(&args[2], now).unwrap_or(0) as u64)
        }
    }
}

/// OBJECT HELP
fn object_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    const LINES: &[&str] = &[
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(LINES.iter().map(|line| Frame::Simple(Bytes::from_static(line.as_bytes()))).collect())
}

/// A database index argument, if it is a valid non-negative one.
fn db_arg(arg: &[u8]) -> Option<usize> {
    crate::args::parse_i64(arg).ok().and_then(|db| usize::try_from(db).ok())
}

/// MOVE writes its key in the target database.
fn move_other_db_keys(args: &[Bytes]) -> Vec<(usize, usize)> {
    db_arg(&args[2]).map(|db| vec![(1, db)]).unwrap_or_default()
}

/// COPY ... DB db writes its destination in that database.
fn copy_other_db_keys(args: &[Bytes]) -> Vec<(usize, usize)> {
    let db = args[3..].windows(2).find(|w| crate::args::is(&w[0], "db")).and_then(|w| db_arg(&w[1]));
    db.map(|db| vec![(2, db)]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::testing::replies::*;

    #[test]
    fn move_and_copy_db_name_the_key_they_write_in_the_other_database() {
        let args = |words: &[&str]| words.iter().map(|w| bytes::Bytes::copy_from_slice(w.as_bytes())).collect::<Vec<_>>();
        assert_eq!(super::move_other_db_keys(&args(&["MOVE", "k", "3"])), vec![(1, 3)]);
        assert_eq!(super::move_other_db_keys(&args(&["MOVE", "k", "x"])), vec![]);
        assert_eq!(super::copy_other_db_keys(&args(&["COPY", "a", "b", "REPLACE", "DB", "5"])), vec![(2, 5)]);
        assert_eq!(super::copy_other_db_keys(&args(&["COPY", "a", "b"])), vec![]);
    }
    use std::collections::{BTreeMap, BTreeSet};

    use shoal_resp::Frame;
    use shoal_store::slot::key_shard;

    use crate::ctx::Settings;
    use crate::testing::{check, check_at, check_db, Harness, SHARDS};

    /// The harness's time in seconds.
    const NOW_S: i64 = 1_700_000_000;

    /// Asserts that `a` and `b` live on different cores, so a test of both takes the
    /// cross-core path.
    fn assert_cross_core(a: &str, b: &str) {
        assert_ne!(key_shard(a.as_bytes(), SHARDS), key_shard(b.as_bytes(), SHARDS), "{a} and {b} are on different cores");
    }

    fn assert_same_core(a: &str, b: &str) {
        assert_eq!(key_shard(a.as_bytes(), SHARDS), key_shard(b.as_bytes(), SHARDS), "{a} and {b} are on one core");
    }

    /// The bulk strings of an array reply, sorted.
    fn sorted(reply: Frame) -> Vec<String> {
        let Frame::Array(items) = reply else { panic!("an array: {reply:?}") };
        let mut out: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
                other => panic!("a bulk string: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    /// Splits a SCAN reply into (cursor, keys).
    fn scan_reply(reply: Frame) -> (u64, Vec<String>) {
        let Frame::Array(mut parts) = reply else { panic!("an array: {reply:?}") };
        assert_eq!(parts.len(), 2, "cursor and keys");
        let keys = sorted(parts.pop().expect("keys"));
        let Some(Frame::Bulk(cursor)) = parts.pop() else { panic!("a bulk cursor") };
        (std::str::from_utf8(&cursor).expect("utf-8").parse().expect("a number"), keys)
    }

    // ---- DEL, EXISTS, TOUCH, TYPE -------------------------------------------------------

    #[test]
    fn del_counts_existing_keys_across_shards() {
        check(&[&["MSET", "a", "1", "b", "2", "c", "3"], &["DEL", "a", "b", "x", "c"], &["EXISTS", "a", "b", "c"]], &[ok(), int(3), int(0)]);
    }

    #[test]
    fn exists_counts_repeated_keys_each_time() {
        check(&[&["SET", "a", "1"], &["EXISTS", "a", "a", "b"]], &[ok(), int(2)]);
    }

    #[test]
    fn touch_counts_existing_keys_across_shards_including_repeats() {
        assert_cross_core("foo", "bar");
        check(&[&["MSET", "foo", "1", "bar", "2"], &["TOUCH", "foo", "bar", "foo", "missing"], &["TOUCH", "missing"]], &[ok(), int(3), int(0)]);
    }

    #[test]
    fn touch_resets_the_idle_time_and_exists_does_not() {
        check_at(
            &[
                (0, &["SET", "k", "v"]),
                (100_000, &["EXISTS", "k"]),
                (100_000, &["OBJECT", "IDLETIME", "k"]),
                (100_000, &["TOUCH", "k"]),
                (130_000, &["OBJECT", "IDLETIME", "k"]),
            ],
            &[ok(), int(1), int(100), int(1), int(30)],
        );
    }

    #[test]
    fn type_reports_string_or_none() {
        check(
            &[&["SET", "k", "v"], &["TYPE", "k"], &["TYPE", "missing"], &["SET", "", "v"], &["TYPE", ""]],
            &[ok(), simple("string"), simple("none"), ok(), simple("string")],
        );
    }

    #[test]
    fn type_of_an_expired_key_is_none() {
        check_at(&[(0, &["SET", "k", "v", "PX", "10"]), (10, &["TYPE", "k"]), (11, &["TYPE", "k"])], &[ok(), simple("string"), simple("none")]);
    }

    // ---- EXPIRE family ------------------------------------------------------------------

    #[test]
    fn expire_sets_a_ttl_that_ttl_rounds_to_the_nearest_second() {
        check_at(
            &[
                (0, &["SET", "k", "v"]),
                (0, &["EXPIRE", "k", "100"]),
                (0, &["TTL", "k"]),
                (0, &["PTTL", "k"]),
                (499, &["TTL", "k"]),
                (501, &["TTL", "k"]),
                (0, &["PEXPIRE", "k", "1499"]),
                (0, &["TTL", "k"]),
                (0, &["PEXPIRE", "k", "1500"]),
                (0, &["TTL", "k"]),
            ],
            &[ok(), int(1), int(100), int(100_000), int(100), int(99), int(1), int(1), int(1), int(2)],
        );
    }

    #[test]
    fn key_expires_once_its_time_has_passed() {
        check_at(
            &[
                (0, &["SET", "k", "v"]),
                (0, &["PEXPIRE", "k", "100"]),
                (100, &["EXISTS", "k"]),
                (100, &["PTTL", "k"]),
                (101, &["EXISTS", "k"]),
                (101, &["TTL", "k"]),
            ],
            &[ok(), int(1), int(1), int(0), int(0), int(-2)],
        );
    }

    #[test]
    fn expireat_and_pexpireat_take_unix_times() {
        let at_s = (NOW_S + 60).to_string();
        let at_ms = ((NOW_S + 60) * 1000 + 250).to_string();
        check(
            &[
                &["SET", "k", "v"],
                &["EXPIREAT", "k", &at_s],
                &["EXPIRETIME", "k"],
                &["PEXPIRETIME", "k"],
                &["TTL", "k"],
                &["PEXPIREAT", "k", &at_ms],
                &["PEXPIRETIME", "k"],
                &["PTTL", "k"],
            ],
            &[ok(), int(1), int(NOW_S + 60), int((NOW_S + 60) * 1000), int(60), int(1), int((NOW_S + 60) * 1000 + 250), int(60_250)],
        );
    }

    #[test]
    fn expiretime_rounds_to_the_nearest_second() {
        let just_under = ((NOW_S + 10) * 1000 + 499).to_string();
        let half = ((NOW_S + 10) * 1000 + 500).to_string();
        check(
            &[&["SET", "k", "v"], &["PEXPIREAT", "k", &just_under], &["EXPIRETIME", "k"], &["PEXPIREAT", "k", &half], &["EXPIRETIME", "k"]],
            &[ok(), int(1), int(NOW_S + 10), int(1), int(NOW_S + 11)],
        );
    }

    #[test]
    fn expire_in_the_past_or_now_deletes_the_key() {
        let now_s = NOW_S.to_string();
        check(
            &[
                &["SET", "a", "v"],
                &["EXPIRE", "a", "-1"],
                &["EXISTS", "a"],
                &["SET", "a", "v"],
                &["EXPIRE", "a", "0"],
                &["EXISTS", "a"],
                &["SET", "a", "v"],
                &["PEXPIREAT", "a", "0"],
                &["EXISTS", "a"],
                &["SET", "a", "v"],
                &["EXPIREAT", "a", &now_s],
                &["EXISTS", "a"],
            ],
            &[ok(), int(1), int(0), ok(), int(1), int(0), ok(), int(1), int(0), ok(), int(1), int(0)],
        );
    }

    #[test]
    fn expire_on_a_missing_key_returns_zero() {
        check(&[&["EXPIRE", "missing", "10"], &["PEXPIRE", "missing", "-5"], &["EXISTS", "missing"]], &[int(0), int(0), int(0)]);
    }

    #[test]
    fn expire_nx_sets_only_without_a_ttl_and_xx_only_with_one() {
        check(
            &[
                &["SET", "k", "v"],
                &["EXPIRE", "k", "100", "XX"],
                &["TTL", "k"],
                &["EXPIRE", "k", "100", "nx"],
                &["EXPIRE", "k", "200", "NX"],
                &["TTL", "k"],
                &["EXPIRE", "k", "300", "xx"],
                &["TTL", "k"],
            ],
            &[ok(), int(0), int(-1), int(1), int(0), int(100), int(1), int(300)],
        );
    }

    #[test]
    fn expire_gt_and_lt_compare_with_the_current_ttl_counting_none_as_infinite() {
        check(
            &[
                &["SET", "k", "v"],
                &["EXPIRE", "k", "100", "GT"],
                &["EXPIRE", "k", "100", "LT"],
                &["EXPIRE", "k", "50", "GT"],
                &["EXPIRE", "k", "100", "GT"],
                &["EXPIRE", "k", "200", "gt"],
                &["EXPIRE", "k", "300", "LT"],
                &["EXPIRE", "k", "200", "LT"],
                &["EXPIRE", "k", "10", "XX", "LT"],
                &["TTL", "k"],
                &["EXPIRE", "k", "10", "XX", "XX"],
            ],
            &[ok(), int(0), int(1), int(0), int(0), int(1), int(0), int(0), int(1), int(10), int(1)],
        );
    }

    #[test]
    fn expire_lt_with_a_past_time_still_deletes() {
        check(&[&["SET", "k", "v"], &["EXPIRE", "k", "100"], &["EXPIRE", "k", "-1", "LT"], &["EXISTS", "k"]], &[ok(), int(1), int(1), int(0)]);
    }

    #[test]
    fn expire_rejects_incompatible_options() {
        let nx_error = "ERR NX and XX, GT or LT options at the same time are not compatible";
        check(
            &[
                &["EXPIRE", "k", "10", "NX", "XX"],
                &["EXPIRE", "k", "10", "NX", "GT"],
                &["PEXPIRE", "k", "10", "lt", "nx"],
                &["EXPIREAT", "k", "10", "GT", "LT"],
                &["PEXPIREAT", "k", "10", "NX", "GT", "LT"],
            ],
            &[err(nx_error), err(nx_error), err(nx_error), err("ERR GT and LT options at the same time are not compatible"), err(nx_error)],
        );
    }

    #[test]
    fn expire_rejects_an_unknown_option_before_looking_at_the_time() {
        check(
            &[&["EXPIRE", "k", "10", "foo"], &["EXPIRE", "k", "notanumber", "bar"], &["EXPIRE", "k", "10", "NX", "baz"], &["EXPIRE", "k", "notanumber"]],
            &[
                err("ERR Unsupported option foo"),
                err("ERR Unsupported option bar"),
                err("ERR Unsupported option baz"),
                err("ERR value is not an integer or out of range"),
            ],
        );
    }

    #[test]
    fn expire_times_that_overflow_are_invalid_with_the_command_name() {
        check(
            &[
                &["SET", "k", "v"],
                &["EXPIRE", "k", "9223372036854775807"],
                &["EXPIRE", "k", "9223372036854775"],
                &["EXPIRE", "k", "-9223372036854775808"],
                &["PEXPIRE", "k", "9223372036854775807"],
                &["EXPIREAT", "k", "9223372036854776"],
                &["Expire", "missing", "9223372036854775807"],
                &["EXISTS", "k"],
            ],
            &[
                ok(),
                err("ERR invalid expire time in 'expire' command"),
                err("ERR invalid expire time in 'expire' command"),
                err("ERR invalid expire time in 'expire' command"),
                err("ERR invalid expire time in 'pexpire' command"),
                err("ERR invalid expire time in 'expireat' command"),
                err("ERR invalid expire time in 'expire' command"),
                int(1),
            ],
        );
    }

    #[test]
    fn the_largest_expiry_is_reported_without_overflow() {
        check(
            &[
                &["SET", "k", "v"],
                &["PEXPIREAT", "k", "9223372036854775807"],
                &["PEXPIRETIME", "k"],
                &["EXPIRETIME", "k"],
                &["EXPIREAT", "k", "9223372036854775"],
                &["EXPIRETIME", "k"],
            ],
            &[ok(), int(1), int(i64::MAX), int(9_223_372_036_854_776), int(1), int(9_223_372_036_854_775)],
        );
    }

    #[test]
    fn ttl_family_reports_minus_two_for_missing_and_minus_one_for_no_ttl() {
        check(
            &[
                &["TTL", "missing"],
                &["PTTL", "missing"],
                &["EXPIRETIME", "missing"],
                &["PEXPIRETIME", "missing"],
                &["SET", "k", "v"],
                &["TTL", "k"],
                &["PTTL", "k"],
                &["EXPIRETIME", "k"],
                &["PEXPIRETIME", "k"],
            ],
            &[int(-2), int(-2), int(-2), int(-2), ok(), int(-1), int(-1), int(-1), int(-1)],
        );
    }

    #[test]
    fn persist_removes_a_ttl_and_reports_whether_there_was_one() {
        check(
            &[&["SET", "k", "v", "EX", "100"], &["PERSIST", "k"], &["TTL", "k"], &["PERSIST", "k"], &["PERSIST", "missing"]],
            &[ok(), int(1), int(-1), int(0), int(0)],
        );
    }

    #[test]
    fn set_after_expire_clears_the_ttl() {
        check(&[&["SET", "k", "v"], &["EXPIRE", "k", "100"], &["SET", "k", "w"], &["TTL", "k"]], &[ok(), int(1), ok(), int(-1)]);
    }

    // ---- RENAME, RENAMENX ----------------------------------------------------------------

    #[test]
    fn rename_moves_value_and_ttl_within_a_core() {
        assert_same_core("old", "new");
        check(
            &[&["SET", "old", "v", "EX", "100"], &["RENAME", "old", "new"], &["GET", "new"], &["EXISTS", "old"], &["TTL", "new"]],
            &[ok(), ok(), bulk("v"), int(0), int(100)],
        );
    }

    #[test]
    fn rename_moves_value_and_ttl_across_cores() {
        assert_cross_core("source", "target");
        check(
            &[
                &["SET", "source", "v", "PX", "5000"],
                &["RENAME", "source", "target"],
                &["GET", "target"],
                &["EXISTS", "source"],
                &["PTTL", "target"],
                &["OBJECT", "ENCODING", "target"],
            ],
            &[ok(), ok(), bulk("v"), int(0), int(5000), bulk("embstr")],
        );
    }

    #[test]
    fn rename_overwrites_the_destination_and_its_ttl() {
        assert_cross_core("foo", "bar");
        check(
            &[
                &["SET", "foo", "1"],
                &["SET", "bar", "2", "EX", "100"],
                &["RENAME", "foo", "bar"],
                &["GET", "bar"],
                &["TTL", "bar"],
                &["SET", "old", "3", "EX", "50"],
                &["RENAME", "old", "new"],
                &["RENAME", "new", "bar"],
                &["TTL", "bar"],
            ],
            &[ok(), ok(), ok(), bulk("1"), int(-1), ok(), ok(), ok(), int(50)],
        );
    }

    #[test]
    fn rename_of_a_missing_key_is_an_error_within_and_across_cores() {
        check(
            &[
                &["RENAME", "old", "new"],
                &["RENAME", "source", "target"],
                &["SET", "target", "t"],
                &["RENAMENX", "source", "target"],
                &["RENAMENX", "old", "new"],
                &["RENAME", "missing", "missing"],
            ],
            &[err("ERR no such key"), err("ERR no such key"), ok(), err("ERR no such key"), err("ERR no such key"), err("ERR no such key")],
        );
    }

    #[test]
    fn rename_of_a_key_onto_itself_is_ok_and_renamenx_returns_zero() {
        check(
            &[&["SET", "k", "v", "EX", "10"], &["RENAME", "k", "k"], &["RENAMENX", "k", "k"], &["GET", "k"], &["TTL", "k"]],
            &[ok(), ok(), int(0), bulk("v"), int(10)],
        );
    }

    #[test]
    fn renamenx_renames_only_onto_a_missing_key() {
        check(
            &[
                &["SET", "old", "1"],
                &["RENAMENX", "old", "new"],
                &["GET", "new"],
                &["SET", "old", "2"],
                &["RENAMENX", "old", "new"],
                &["GET", "old"],
                &["GET", "new"],
            ],
            &[ok(), int(1), bulk("1"), ok(), int(0), bulk("2"), bulk("1")],
        );
    }

    #[test]
    fn renamenx_across_cores_onto_an_existing_key_leaves_both_untouched() {
        assert_cross_core("source", "target");
        check(
            &[
                &["SET", "source", "1", "PX", "7000"],
                &["SET", "target", "2"],
                &["RENAMENX", "source", "target"],
                &["GET", "source"],
                &["PTTL", "source"],
                &["GET", "target"],
                &["DEL", "target"],
                &["RENAMENX", "source", "target"],
                &["GET", "target"],
                &["PTTL", "target"],
                &["EXISTS", "source"],
            ],
            &[ok(), ok(), int(0), bulk("1"), int(7000), bulk("2"), int(1), int(1), bulk("1"), int(7000), int(0)],
        );
    }

    #[test]
    fn rename_of_an_expired_key_is_an_error() {
        check_at(
            &[(0, &["SET", "source", "v", "PX", "10"]), (11, &["RENAME", "source", "target"]), (11, &["EXISTS", "target"])],
            &[ok(), err("ERR no such key"), int(0)],
        );
    }

    #[test]
    fn renamenx_onto_an_expired_key_renames() {
        check_at(
            &[(0, &["SET", "target", "old", "PX", "10"]), (0, &["SET", "source", "new"]), (11, &["RENAMENX", "source", "target"]), (11, &["GET", "target"])],
            &[ok(), ok(), int(1), bulk("new")],
        );
    }

    // ---- COPY -------------------------------------------------------------------------

    #[test]
    fn copy_duplicates_value_and_ttl_within_and_across_cores() {
        assert_same_core("old", "new");
        assert_cross_core("source", "target");
        check(
            &[
                &["SET", "old", "v", "EX", "100"],
                &["COPY", "old", "new"],
                &["GET", "new"],
                &["TTL", "new"],
                &["GET", "old"],
                &["SET", "source", "12345"],
                &["COPY", "source", "target"],
                &["GET", "target"],
                &["TTL", "target"],
                &["OBJECT", "ENCODING", "target"],
            ],
            &[ok(), int(1), bulk("v"), int(100), bulk("v"), ok(), int(1), bulk("12345"), int(-1), bulk("int")],
        );
    }

    #[test]
    fn copy_onto_an_existing_key_needs_replace() {
        check(
            &[
                &["SET", "source", "1"],
                &["SET", "target", "2", "EX", "100"],
                &["COPY", "source", "target"],
                &["GET", "target"],
                &["COPY", "source", "target", "REPLACE"],
                &["GET", "target"],
                &["TTL", "target"],
                &["SET", "new", "3"],
                &["COPY", "source", "new", "replace", "REPLACE"],
                &["GET", "new"],
            ],
            &[ok(), ok(), int(0), bulk("2"), int(1), bulk("1"), int(-1), ok(), int(1), bulk("1")],
        );
    }

    #[test]
    fn copy_of_a_missing_key_returns_zero() {
        check(&[&["COPY", "old", "new"], &["COPY", "source", "target"], &["EXISTS", "new", "target"]], &[int(0), int(0), int(0)]);
    }

    #[test]
    fn copy_onto_itself_is_an_error_even_when_missing() {
        let same = "ERR source and destination objects are the same";
        check(
            &[&["COPY", "k", "k"], &["SET", "k", "v"], &["COPY", "k", "k", "DB", "0"], &["COPY", "k", "k", "REPLACE"]],
            &[err(same), ok(), err(same), err(same)],
        );
    }

    #[test]
    fn copy_to_another_database_keeps_the_key_on_its_core() {
        check_db(
            &[
                (0, &["SET", "k", "v", "EX", "100"]),
                (0, &["COPY", "k", "k", "DB", "1"]),
                (0, &["COPY", "k", "k", "DB", "1"]),
                (1, &["GET", "k"]),
                (1, &["TTL", "k"]),
                (0, &["COPY", "k", "target", "DB", "15"]),
                (15, &["GET", "target"]),
                (15, &["SET", "x", "in 15"]),
                (15, &["COPY", "x", "k", "DB", "1", "REPLACE"]),
                (1, &["GET", "k"]),
                (1, &["TTL", "k"]),
            ],
            &[ok(), int(1), int(0), bulk("v"), int(100), int(1), bulk("v"), ok(), int(1), bulk("in 15"), int(-1)],
        );
    }

    #[test]
    fn copy_rejects_bad_options_in_order() {
        let out_of_range = "ERR DB index is out of range";
        check(
            &[
                &["SET", "old", "v"],
                &["COPY", "old", "new", "DB", "16"],
                &["COPY", "old", "new", "DB", "-1"],
                &["COPY", "old", "new", "DB", "x"],
                &["COPY", "old", "new", "DB", "4294967296"],
                &["COPY", "old", "new", "DB", "99999999999999999999"],
                &["COPY", "old", "new", "DB"],
                &["COPY", "old", "new", "foo"],
                &["COPY", "old", "new", "DB", "99", "foo"],
                &["COPY", "old", "new", "foo", "DB", "99"],
                &["COPY", "source", "target", "DB", "99"],
                &["COPY", "source", "target", "bar"],
                &["EXISTS", "new"],
            ],
            &[
                ok(),
                err(out_of_range),
                err(out_of_range),
                err("ERR value is not an integer or out of range"),
                err("ERR value is out of range, value must between -2147483648 and 2147483647"),
                err("ERR value is not an integer or out of range"),
                err("ERR syntax error"),
                err("ERR syntax error"),
                err(out_of_range),
                err("ERR syntax error"),
                err(out_of_range),
                err("ERR syntax error"),
                int(0),
            ],
        );
    }

    #[test]
    fn copy_across_cores_to_another_database() {
        assert_cross_core("source", "target");
        check_db(
            &[(0, &["SET", "source", "v"]), (0, &["COPY", "source", "target", "DB", "2"]), (0, &["EXISTS", "target"]), (2, &["GET", "target"])],
            &[ok(), int(1), int(0), bulk("v")],
        );
    }

    #[test]
    fn a_copy_is_a_new_object_with_its_own_access_time() {
        check_at(
            &[(0, &["SET", "old", "v"]), (60_000, &["COPY", "old", "new"]), (90_000, &["OBJECT", "IDLETIME", "new"]), (90_000, &["OBJECT", "IDLETIME", "old"])],
            &[ok(), int(1), int(30), int(30)],
        );
    }

    // ---- MOVE ---------------------------------------------------------------------------

    #[test]
    fn move_moves_a_key_with_its_ttl_to_another_database() {
        check_db(
            &[
                (0, &["SET", "k", "v", "EX", "100"]),
                (0, &["MOVE", "k", "3"]),
                (0, &["EXISTS", "k"]),
                (3, &["GET", "k"]),
                (3, &["TTL", "k"]),
                (3, &["MOVE", "k", "0"]),
                (0, &["GET", "k"]),
            ],
            &[ok(), int(1), int(0), bulk("v"), int(100), int(1), bulk("v")],
        );
    }

    #[test]
    fn move_does_nothing_when_the_key_is_missing_or_taken() {
        check_db(
            &[(0, &["MOVE", "k", "1"]), (0, &["SET", "k", "a"]), (1, &["SET", "k", "b"]), (0, &["MOVE", "k", "1"]), (0, &["GET", "k"]), (1, &["GET", "k"])],
            &[int(0), ok(), ok(), int(0), bulk("a"), bulk("b")],
        );
    }

    #[test]
    fn move_rejects_bad_databases() {
        let same = "ERR source and destination objects are the same";
        check_db(
            &[
                (0, &["SET", "k", "v"]),
                (0, &["MOVE", "k", "0"]),
                (0, &["MOVE", "missing", "0"]),
                (5, &["MOVE", "k", "5"]),
                (0, &["MOVE", "k", "16"]),
                (0, &["MOVE", "k", "-1"]),
                (0, &["MOVE", "k", "x"]),
                (0, &["MOVE", "k", "4294967296"]),
            ],
            &[
                ok(),
                err(same),
                err(same),
                err(same),
                err("ERR DB index is out of range"),
                err("ERR DB index is out of range"),
                err("ERR value is not an integer or out of range"),
                err("ERR value is out of range, value must between -2147483648 and 2147483647"),
            ],
        );
    }

    // ---- KEYS -------------------------------------------------------------------------

    #[test]
    fn keys_returns_matching_keys_from_every_core() {
        let harness = Harness::default();
        harness.run(&["MSET", "foo", "1", "bar", "2", "baz", "3", "qux", "4", "", "empty"]);
        assert_eq!(sorted(harness.run(&["KEYS", "*"])), ["", "bar", "baz", "foo", "qux"]);
        assert_eq!(sorted(harness.run(&["KEYS", "ba?"])), ["bar", "baz"]);
        assert_eq!(sorted(harness.run(&["KEYS", "?*"])), ["bar", "baz", "foo", "qux"]);
        assert_eq!(sorted(harness.run(&["KEYS", "[fq]*"])), ["foo", "qux"]);
        assert_eq!(sorted(harness.run(&["KEYS", ""])), [""]);
        assert_eq!(harness.run(&["KEYS", "nothing*"]), strings(&[]));
    }

    #[test]
    fn keys_skips_expired_keys() {
        check_at(&[(0, &["SET", "k", "v", "PX", "10"]), (0, &["KEYS", "*"]), (11, &["KEYS", "*"])], &[ok(), strings(&["k"]), strings(&[])]);
    }

    // ---- SCAN -------------------------------------------------------------------------

    #[test]
    fn scan_of_an_empty_database_ends_at_once() {
        check(
            &[&["SCAN", "0"], &["SCAN", "0", "COUNT", "1000", "MATCH", "*", "TYPE", "string"]],
            &[Frame::Array(vec![bulk("0"), strings(&[])]), Frame::Array(vec![bulk("0"), strings(&[])])],
        );
    }

    #[test]
    fn scan_parses_the_cursor_as_strtoul() {
        let done = Frame::Array(vec![bulk("0"), strings(&[])]);
        let invalid = err("ERR invalid cursor");
        check(
            &[
                &["SCAN", ""],
                &["SCAN", "+0"],
                &["SCAN", "-0"],
                &["SCAN", "007"],
                &["SCAN", " 0"],
                &["SCAN", "\t0"],
                &["SCAN", "-"],
                &["SCAN", "+"],
                &["SCAN", "0x1"],
                &["SCAN", "1 "],
                &["SCAN", "18446744073709551616"],
                &["SCAN", "-18446744073709551616"],
                &["SCAN", "x", "COUNT", "0"],
            ],
            &[
                done.clone(),
                done.clone(),
                done.clone(),
                done,
                invalid.clone(),
                invalid.clone(),
                invalid.clone(),
                invalid.clone(),
                invalid.clone(),
                invalid.clone(),
                invalid.clone(),
                invalid.clone(),
                invalid,
            ],
        );
    }

    #[test]
    fn scan_cursor_parsing_follows_strtoul_at_the_edges() {
        assert_eq!(crate::args::parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(crate::args::parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(crate::args::parse_cursor(b"-18446744073709551615"), Ok(1));
        assert_eq!(crate::args::parse_cursor(b"12\0junk"), Ok(12));
        assert_eq!(crate::args::parse_cursor(b"\x0b1"), Err(crate::errors::error(crate::errors::INVALID_CURSOR)));
    }

    #[test]
    fn scan_rejects_bad_options() {
        let syntax = err("ERR syntax error");
        check(
            &[
                &["SCAN", "0", "COUNT", "0"],
                &["SCAN", "0", "COUNT", "-1"],
                &["SCAN", "0", "COUNT", "x"],
                &["SCAN", "0", "COUNT"],
                &["SCAN", "0", "MATCH"],
                &["SCAN", "0", "TYPE"],
                &["SCAN", "0", "TYPE", "string", "foo"],
                &["SCAN", "0", "foo", "bar"],
            ],
            &[
                syntax.clone(),
                syntax.clone(),
                err("ERR value is not an integer or out of range"),
                syntax.clone(),
                syntax.clone(),
                syntax.clone(),
                syntax.clone(),
                syntax,
            ],
        );
    }

    /// Runs a whole SCAN iteration with `options`, calling `between` after each call, and
    /// returns how often each key came back.
    fn full_scan(harness: &mut Harness, options: &[&str], mut between: impl FnMut(&mut Harness, usize)) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        let mut cursor = 0u64;
        for call in 0.. {
            assert!(call < 100_000, "the iteration ends");
            let cursor_text = cursor.to_string();
            let mut command = vec!["SCAN", cursor_text.as_str()];
            command.extend_from_slice(options);
            let (next, keys) = scan_reply(harness.run(&command));
            for key in keys {
                *seen.entry(key).or_insert(0) += 1;
            }
            between(harness, call);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        seen
    }

    #[test]
    fn a_full_scan_returns_every_key_on_every_core() {
        let mut harness = Harness::default();
        let keys: Vec<String> = (0..2000).map(|i| format!("key:{i}")).collect();
        for chunk in keys.chunks(100) {
            let mut command = vec!["MSET"];
            for key in chunk {
                command.push(key);
                command.push("v");
            }
            harness.run(&command);
        }
        let shards: BTreeSet<usize> = keys.iter().map(|k| key_shard(k.as_bytes(), SHARDS)).collect();
        assert_eq!(shards.len(), SHARDS, "the keys cover every core");
        for options in [&[][..], &["COUNT", "1"], &["COUNT", "7"], &["COUNT", "100000"]] {
            let seen = full_scan(&mut harness, options, |_, _| {});
            let seen_keys: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
            let expected: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
            assert_eq!(seen_keys, expected, "every key, with options {options:?}");
            assert!(seen.values().all(|&n| n == 1), "no key twice when nothing changes, with options {options:?}");
        }
    }

    #[test]
    fn a_full_scan_returns_every_key_present_throughout_despite_resizes() {
        let mut harness = Harness::default();
        let keys: Vec<String> = (0..1000).map(|i| format!("stay:{i}")).collect();
        for key in &keys {
            harness.run(&["SET", key, "v"]);
        }
        let seen = full_scan(&mut harness, &["COUNT", "5"], |harness, call| {
            // Grow every core's table, then shrink it again, while the iteration runs.
            if call % 20 == 10 {
                for i in 0..1500 {
                    harness.run(&["SET", &format!("extra:{call}:{i}"), "v"]);
                }
            }
            if call % 20 == 15 {
                for i in 0..1500 {
                    harness.run(&["DEL", &format!("extra:{}:{i}", call - 5)]);
                }
            }
        });
        for key in &keys {
            assert!(seen.contains_key(key), "{key} was returned");
        }
    }

    #[test]
    fn scan_count_bounds_the_work_of_one_call() {
        let harness = Harness::default();
        for i in 0..300 {
            harness.run(&["SET", &format!("k{i}"), "v"]);
        }
        let (cursor, keys) = scan_reply(harness.run(&["SCAN", "0", "COUNT", "5"]));
        assert_ne!(cursor, 0, "300 keys take more than one call of COUNT 5");
        assert!(!keys.is_empty() && keys.len() < 30, "about COUNT keys, got {}", keys.len());
    }

    #[test]
    fn scan_filters_by_match_and_type() {
        let mut harness = Harness::default();
        harness.run(&["MSET", "foo", "1", "bar", "2", "baz", "3", "", "4"]);
        let all = full_scan(&mut harness, &["MATCH", "*"], |_, _| {});
        assert_eq!(all.keys().map(String::as_str).collect::<Vec<_>>(), ["", "bar", "baz", "foo"]);
        let matched = full_scan(&mut harness, &["MATCH", "ba*", "COUNT", "2"], |_, _| {});
        assert_eq!(matched.keys().map(String::as_str).collect::<Vec<_>>(), ["bar", "baz"]);
        let typed = full_scan(&mut harness, &["TYPE", "STRING"], |_, _| {});
        assert_eq!(typed.len(), 4);
        let none = full_scan(&mut harness, &["TYPE", "list"], |_, _| {});
        assert!(none.is_empty());
        let unknown = full_scan(&mut harness, &["TYPE", "nosuchtype", "MATCH", "foo"], |_, _| {});
        assert!(unknown.is_empty());
    }

    #[test]
    fn scan_skips_expired_keys() {
        check_at(
            &[(0, &["SET", "k", "v", "PX", "10"]), (0, &["SCAN", "0"]), (11, &["SCAN", "0"])],
            &[ok(), Frame::Array(vec![bulk("0"), strings(&["k"])]), Frame::Array(vec![bulk("0"), strings(&[])])],
        );
    }

    #[test]
    fn scan_cursor_round_trips_through_core_and_dict_cursor() {
        for (core, dict_cursor) in [(0, 0), (1, 0), (2, 5), (0, 1 << 40)] {
            let cursor = super::encode_cursor(core, dict_cursor, SHARDS);
            assert_eq!(super::decode_cursor(cursor, SHARDS), (core, dict_cursor));
        }
        assert_eq!(super::encode_cursor(0, 0, SHARDS), 0, "the start is cursor 0");
    }

    // ---- RANDOMKEY ----------------------------------------------------------------------

    #[test]
    fn randomkey_of_an_empty_database_is_nil() {
        check(&[&["RANDOMKEY"], &["SET", "k", "v"], &["RANDOMKEY"], &["DEL", "k"], &["RANDOMKEY"]], &[Frame::Null, ok(), bulk("k"), int(1), Frame::Null]);
    }

    #[test]
    fn randomkey_returns_keys_from_every_core() {
        let harness = Harness::default();
        harness.run(&["MSET", "foo", "1", "bar", "2", "baz", "3"]);
        let mut seen = BTreeSet::new();
        for _ in 0..300 {
            let Frame::Bulk(key) = harness.run(&["RANDOMKEY"]) else { panic!("a key") };
            seen.insert(key);
        }
        assert_eq!(seen.len(), 3, "each of three keys on three cores comes up: {seen:?}");
    }

    #[test]
    fn randomkey_skips_expired_keys() {
        check_at(
            &[(0, &["SET", "gone", "v", "PX", "10"]), (0, &["SET", "foo", "v"]), (11, &["RANDOMKEY"]), (11, &["RANDOMKEY"])],
            &[ok(), ok(), bulk("foo"), bulk("foo")],
        );
    }

    // ---- OBJECT -------------------------------------------------------------------------

    #[test]
    fn object_encoding_follows_the_string_encodings() {
        let long = "x".repeat(45);
        check(
            &[
                &["SET", "i", "123"],
                &["SET", "e", "abc"],
                &["SET", "r", &long],
                &["OBJECT", "ENCODING", "i"],
                &["object", "encoding", "e"],
                &["OBJECT", "Encoding", "r"],
                &["OBJECT", "ENCODING", "missing"],
            ],
            &[ok(), ok(), ok(), bulk("int"), bulk("embstr"), bulk("raw"), Frame::Null],
        );
    }

    #[test]
    fn object_refcount_reports_shared_integers() {
        check(
            &[
                &["SET", "n", "0"],
                &["OBJECT", "REFCOUNT", "n"],
                &["SET", "n", "9999"],
                &["OBJECT", "REFCOUNT", "n"],
                &["SET", "n", "10000"],
                &["OBJECT", "REFCOUNT", "n"],
                &["SET", "n", "-1"],
                &["OBJECT", "REFCOUNT", "n"],
                &["SET", "s", "v"],
                &["OBJECT", "REFCOUNT", "s"],
                &["OBJECT", "REFCOUNT", "missing"],
            ],
            &[ok(), int(2_147_483_647), ok(), int(2_147_483_647), ok(), int(1), ok(), int(1), ok(), int(1), Frame::Null],
        );
    }

    #[test]
    fn object_idletime_counts_seconds_since_the_last_access() {
        check_at(
            &[
                (0, &["SET", "k", "v"]),
                (5_000, &["OBJECT", "IDLETIME", "k"]),
                (5_000, &["GET", "k"]),
                (7_999, &["OBJECT", "IDLETIME", "k"]),
                (8_000, &["OBJECT", "IDLETIME", "missing"]),
            ],
            &[ok(), int(5), bulk("v"), int(2), Frame::Null],
        );
    }

    #[test]
    fn object_freq_needs_an_lfu_policy_but_a_missing_key_is_nil_first() {
        check(
            &[&["SET", "k", "v"], &["OBJECT", "FREQ", "k"], &["OBJECT", "FREQ", "missing"]],
            &[ok(), err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."), Frame::Null],
        );
    }

    #[test]
    fn under_lfu_object_freq_answers_and_idletime_is_an_error() {
        let mut harness = Harness { settings: Settings { lfu_policy: true, ..Settings::default() }, ..Harness::default() };
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        assert_eq!(harness.run(&["OBJECT", "FREQ", "k"]), int(5), "a new key starts at LFU_INIT_VAL");
        assert_eq!(harness.run(&["OBJECT", "FREQ", "missing"]), Frame::Null);
        assert_eq!(
            harness.run(&["OBJECT", "IDLETIME", "k"]),
            err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
        );
        assert_eq!(harness.run(&["OBJECT", "IDLETIME", "missing"]), Frame::Null);
        harness.now_ms += 3 * 60_000;
        assert_eq!(harness.run(&["OBJECT", "FREQ", "k"]), int(2), "one less per idle minute");
    }

    #[test]
    fn object_help_lists_the_subcommands() {
        let harness = Harness::default();
        let Frame::Array(lines) = harness.run(&["OBJECT", "HELP"]) else { panic!("an array") };
        assert_eq!(lines.len(), 15);
        assert_eq!(lines[0], simple("OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
        assert_eq!(lines[14], simple("    Prints this help."));
    }

    #[test]
    fn object_checks_its_subcommand_and_arity() {
        check(
            &[&["OBJECT"], &["OBJECT", "foo"], &["OBJECT", "ENCODING"], &["OBJECT", "ENCODING", "a", "b"], &["OBJECT", "HELP", "x"]],
            &[
                err("ERR wrong number of arguments for 'object' command"),
                err("ERR unknown subcommand 'foo'. Try OBJECT HELP."),
                err("ERR wrong number of arguments for 'object|encoding' command"),
                err("ERR wrong number of arguments for 'object|encoding' command"),
                err("ERR wrong number of arguments for 'object|help' command"),
            ],
        );
    }

    #[test]
    fn object_introspection_does_not_touch_the_key() {
        check_at(
            &[
                (0, &["SET", "k", "v"]),
                (10_000, &["OBJECT", "ENCODING", "k"]),
                (10_000, &["OBJECT", "REFCOUNT", "k"]),
                (10_000, &["TYPE", "k"]),
                (10_000, &["TTL", "k"]),
                (10_000, &["OBJECT", "IDLETIME", "k"]),
            ],
            &[ok(), bulk("embstr"), int(1), simple("string"), int(-1), int(10)],
        );
    }

    // ---- DUMP, RESTORE ------------------------------------------------------------------

    /// The payload DUMP gives for `key`.
    fn dump_of(harness: &Harness, key: &str) -> bytes::Bytes {
        match harness.run(&["DUMP", key]) {
            Frame::Bulk(payload) => payload,
            other => panic!("DUMP {key} gives a payload: {other:?}"),
        }
    }

    /// RESTORE `key` `ttl` `payload` followed by `options`.
    fn restore(harness: &Harness, key: &str, ttl: &str, payload: &[u8], options: &[&str]) -> Frame {
        let mut args: Vec<bytes::Bytes> = ["RESTORE", key, ttl].iter().map(|a| bytes::Bytes::copy_from_slice(a.as_bytes())).collect();
        args.push(bytes::Bytes::copy_from_slice(payload));
        args.extend(options.iter().map(|a| bytes::Bytes::copy_from_slice(a.as_bytes())));
        harness.run_bytes(args)
    }

    #[test]
    fn dump_of_a_missing_key_is_nil() {
        check(&[&["DUMP", "missing"]], &[Frame::Null]);
    }

    #[test]
    fn dump_of_a_small_string_is_redis_s_payload() {
        let harness = Harness::default();
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        // As redis-server 7.0 answers DUMP k after SET k v.
        assert_eq!(dump_of(&harness, "k").as_ref(), b"\x00\x01v\x0a\x00\x91\x08\xce\xb2\x19\x38\x8a\xce");
    }

    #[test]
    fn restore_round_trips_every_type_with_its_encoding() {
        let harness = Harness::default();
        let setup: &[&[&str]] = &[
            &["SET", "s", "12345"],
            &["RPUSH", "l", "a", "b", "c"],
            &["HSET", "h", "f1", "v1", "f2", "v2"],
            &["SADD", "si", "1", "2", "3"],
            &["SADD", "ss", "a", "b"],
            &["ZADD", "z", "1.5", "a", "2", "b"],
        ];
        for command in setup {
            assert!(!matches!(harness.run(command), Frame::Error(_)), "{command:?}");
        }
        let reads: &[(&str, &[&str])] = &[
            ("s", &["GET"]),
            ("l", &["LRANGE", "", "0", "-1"]),
            ("h", &["HGETALL"]),
            ("si", &["SMEMBERS"]),
            ("ss", &["SMEMBERS"]),
            ("z", &["ZRANGE", "", "0", "-1", "WITHSCORES"]),
        ];
        for (key, read) in reads {
            let payload = dump_of(&harness, key);
            let copy = format!("{key}-copy");
            assert_eq!(restore(&harness, &copy, "0", &payload, &[]), ok(), "RESTORE {copy}");
            let read_of = |k: &str| {
                let mut args = vec![read[0], k];
                args.extend(read.iter().skip(2));
                harness.run(&args)
            };
            assert_eq!(read_of(&copy), read_of(key), "{copy} has {key}'s contents");
            assert_eq!(harness.run(&["OBJECT", "ENCODING", &copy]), harness.run(&["OBJECT", "ENCODING", key]), "{copy} has {key}'s encoding");
            assert_eq!(harness.run(&["TTL", &copy]), int(-1));
        }
    }

    #[test]
    fn restore_checks_options_then_the_key_then_the_ttl_then_the_payload() {
        let harness = Harness::default();
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        let payload = dump_of(&harness, "k");
        // (key, ttl, payload, options, error)
        type Case<'a> = (&'a str, &'a str, &'a [u8], &'a [&'a str], &'a str);
        let cases: &[Case] = &[
            ("k", "x", b"x", &["NOPE"], "ERR syntax error"),
            ("k", "x", b"x", &["IDLETIME"], "ERR syntax error"),
            ("k", "x", b"x", &["IDLETIME", "x"], "ERR value is not an integer or out of range"),
            ("k", "x", b"x", &["IDLETIME", "-1"], "ERR Invalid IDLETIME value, must be >= 0"),
            ("k", "x", b"x", &["FREQ", "256"], "ERR Invalid FREQ value, must be >= 0 and <= 255"),
            ("k", "x", b"x", &["FREQ", "-1"], "ERR Invalid FREQ value, must be >= 0 and <= 255"),
            ("k", "x", b"x", &["IDLETIME", "1", "FREQ", "1"], "ERR syntax error"),
            ("k", "x", b"x", &["FREQ", "0", "IDLETIME", "1"], "ERR syntax error"),
            ("k", "x", b"x", &[], "BUSYKEY Target key name already exists."),
            ("k", "-1", b"x", &[], "BUSYKEY Target key name already exists."),
            ("k", "x", b"x", &["REPLACE"], "ERR value is not an integer or out of range"),
            ("n", "x", b"x", &[], "ERR value is not an integer or out of range"),
            ("n", "-1", b"x", &[], "ERR Invalid TTL value, must be >= 0"),
            ("n", "0", b"x", &[], "ERR DUMP payload version or checksum are wrong"),
            ("k", "0", b"x", &["REPLACE"], "ERR DUMP payload version or checksum are wrong"),
        ];
        for (key, ttl, body, options, error) in cases {
            assert_eq!(restore(&harness, key, ttl, body, options), err(error), "RESTORE {key} {ttl} {options:?}");
        }
        let mut corrupt = payload.to_vec();
        corrupt[2] ^= 1;
        assert_eq!(restore(&harness, "n", "0", &corrupt, &[]), err("ERR DUMP payload version or checksum are wrong"));
        assert_eq!(harness.run(&["GET", "k"]), bulk("v"), "failed RESTOREs leave the key alone");
        assert_eq!(harness.run(&["EXISTS", "n"]), int(0));
    }

    #[test]
    fn restore_with_a_payload_that_does_not_decode_is_bad_data_format() {
        // Type 0 (a string) whose length claims more bytes than the whole payload holds,
        // with a good footer.
        let mut payload = vec![0u8, 60, b'a'];
        payload.extend_from_slice(&10u16.to_le_bytes());
        let crc = shoal_rdb::crc64::crc64(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        check_restore_error(&payload, "ERR Bad data format");
        // An unknown type byte.
        let mut payload = vec![200u8, 0];
        payload.extend_from_slice(&10u16.to_le_bytes());
        let crc = shoal_rdb::crc64::crc64(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        check_restore_error(&payload, "ERR Bad data format");
    }

    #[test]
    fn restore_reads_a_value_into_the_footer_as_redis_does() {
        // A string of 3 bytes with only 1 before the footer: Redis takes the version's two
        // bytes as the rest of it (redis-server 7.0 restores "a\n\0").
        let mut payload = vec![0u8, 3, b'a'];
        payload.extend_from_slice(&10u16.to_le_bytes());
        let crc = shoal_rdb::crc64::crc64(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        let harness = Harness::default();
        assert_eq!(restore(&harness, "k", "0", &payload, &[]), ok());
        assert_eq!(harness.run(&["GET", "k"]), Frame::Bulk(bytes::Bytes::from_static(b"a\n\0")));
        // Past the payload's end is still too far.
        payload[1] = 12;
        let crc = shoal_rdb::crc64::crc64(&payload[..5]);
        payload[5..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(restore(&harness, "long", "0", &payload, &[]), err("ERR Bad data format"));
        payload[1] = 11;
        let crc = shoal_rdb::crc64::crc64(&payload[..5]);
        payload[5..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(restore(&harness, "exact", "0", &payload, &[]), ok(), "a value may end at the payload's last byte");
    }

    fn check_restore_error(payload: &[u8], error: &str) {
        let harness = Harness::default();
        assert_eq!(restore(&harness, "k", "0", payload, &[]), err(error));
        assert_eq!(harness.run(&["EXISTS", "k"]), int(0));
    }

    #[test]
    fn restore_sets_relative_and_absolute_ttls_and_a_past_one_creates_nothing() {
        let harness = Harness::default();
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        let payload = dump_of(&harness, "k");
        let now_ms = harness.now_ms as i64;
        assert_eq!(restore(&harness, "rel", "5000", &payload, &[]), ok());
        assert_eq!(harness.run(&["PTTL", "rel"]), int(5000));
        let at = (now_ms + 7000).to_string();
        assert_eq!(restore(&harness, "abs", &at, &payload, &["ABSTTL"]), ok());
        assert_eq!(harness.run(&["PEXPIRETIME", "abs"]), int(now_ms + 7000));
        let past = (now_ms - 1).to_string();
        assert_eq!(restore(&harness, "past", &past, &payload, &["ABSTTL"]), ok());
        assert_eq!(harness.run(&["EXISTS", "past"]), int(0), "an expiry in the past creates nothing");
        assert_eq!(restore(&harness, "huge", &i64::MAX.to_string(), &payload, &[]), ok());
        assert_eq!(harness.run(&["EXISTS", "huge"]), int(0), "a relative TTL that overflows lands in the past, as in Redis");
        assert_eq!(restore(&harness, "k", &past, &payload, &["ABSTTL", "REPLACE"]), ok());
        assert_eq!(harness.run(&["EXISTS", "k"]), int(0), "REPLACE with an expiry in the past deletes the key");
    }

    #[test]
    fn restore_replace_overwrites_another_type_and_its_ttl() {
        let harness = Harness::default();
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        let payload = dump_of(&harness, "k");
        assert_eq!(harness.run(&["RPUSH", "l", "a"]), int(1));
        assert_eq!(harness.run(&["EXPIRE", "l", "100"]), int(1));
        assert_eq!(restore(&harness, "l", "0", &payload, &["REPLACE"]), ok());
        assert_eq!(harness.run(&["GET", "l"]), bulk("v"));
        assert_eq!(harness.run(&["TTL", "l"]), int(-1));
    }

    #[test]
    fn restore_idletime_sets_the_idle_time_under_lru_and_freq_is_ignored() {
        let harness = Harness::default();
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        let payload = dump_of(&harness, "k");
        assert_eq!(restore(&harness, "idle", "0", &payload, &["IDLETIME", "1000"]), ok());
        assert_eq!(harness.run(&["OBJECT", "IDLETIME", "idle"]), int(1000));
        assert_eq!(restore(&harness, "twice", "0", &payload, &["idletime", "5", "IDLETIME", "7"]), ok());
        assert_eq!(harness.run(&["OBJECT", "IDLETIME", "twice"]), int(7), "the last IDLETIME wins");
        assert_eq!(restore(&harness, "freq", "0", &payload, &["FREQ", "2"]), ok());
        assert_eq!(harness.run(&["OBJECT", "IDLETIME", "freq"]), int(0));
    }

    #[test]
    fn restore_idletime_beyond_the_clock_wraps_as_redis_s() {
        // Redis's field keeps (clock - idle + LRU_CLOCK_MAX) mod 2^24.
        let now_ms = 1_700_000_000_000;
        let clock = shoal_store::db::lru_clock(now_ms) as i64;
        let idle = 99_999_999_999_i64;
        let expected = (clock - idle + shoal_store::db::LRU_CLOCK_MAX as i64).rem_euclid(1 << 24) as u32;
        assert_eq!(super::lru_idle_since(idle, now_ms), expected);
        assert_eq!(super::lru_idle_since(0, now_ms), clock as u32);
        assert_eq!(shoal_store::db::idle_seconds(super::lru_idle_since(clock + 10, now_ms), now_ms), clock as u64 + 10);
    }

    #[test]
    fn restore_freq_under_lfu_is_what_object_freq_reports() {
        let harness = Harness { settings: Settings { lfu_policy: true, ..Settings::default() }, ..Harness::default() };
        assert_eq!(harness.run(&["SET", "k", "v"]), ok());
        let payload = dump_of(&harness, "k");
        for freq in [0, 1, 5, 6, 100, 255] {
            let key = format!("f{freq}");
            assert_eq!(restore(&harness, &key, "0", &payload, &["FREQ", &freq.to_string()]), ok());
            assert_eq!(harness.run(&["OBJECT", "FREQ", &key]), int(freq), "FREQ {freq}");
        }
        assert_eq!(restore(&harness, "plain", "0", &payload, &["IDLETIME", "600"]), ok());
        assert_eq!(harness.run(&["OBJECT", "FREQ", "plain"]), int(5), "IDLETIME is ignored under LFU");
    }

    #[test]
    fn dump_and_restore_are_single_key_commands_on_the_key_s_core() {
        let dump = crate::table::lookup(b"dump").expect("DUMP is in the table");
        assert_eq!((dump.arity, dump.keys), (2, crate::table::KeySpec::ONE));
        assert_eq!(dump.flags, crate::table::flags::READONLY);
        let restore = crate::table::lookup(b"restore").expect("RESTORE is in the table");
        assert_eq!((restore.arity, restore.keys), (-4, crate::table::KeySpec::ONE));
        assert_eq!(restore.flags, crate::table::flags::WRITE | crate::table::flags::DENYOOM);
    }

    // ---- The table ----------------------------------------------------------------------

    #[test]
    fn object_subcommands_name_their_key_after_the_subcommand() {
        let object = crate::table::lookup(b"object").expect("OBJECT is in the table");
        for sub in object.subcommands {
            assert!(sub.name.starts_with("object|"), "{} is named container|subcommand", sub.name);
            if sub.arity == 3 {
                assert_eq!((sub.keys.first, sub.keys.last, sub.keys.step), (2, 2, 1), "{}'s key follows the subcommand", sub.name);
            }
        }
    }
}

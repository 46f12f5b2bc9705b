//! Hash field expiration: Redis 7.4's HEXPIRE, HPEXPIRE, HEXPIREAT, HPEXPIREAT, HTTL, HPTTL,
//! HEXPIRETIME, HPEXPIRETIME and HPERSIST, and Redis 8.0's HGETDEL, HGETEX and HSETEX.
//!
//! Replies, error texts and the order in which arguments are checked follow Redis's
//! `t_hash.c` (the key's type first for all but HSETEX, which parses its options first;
//! three wordings for a bad field count, as Redis has). The fields' TTLs live in the store's
//! [`Hash`]; its database lists hashes with TTLs for the active cycle and expires the due
//! fields of a hash before any hash command looks at it (see `Db::expire_hash_fields`), so
//! an expired field is never seen here. Debian's redis-server 7.0 has none of these
//! commands, so the tests follow Redis's documentation and source rather than a live oracle.
//!
//! One difference: Redis's HLEN may count fields that expired and that neither a command
//! nor the active cycle removed yet; here every hash command removes them first.

use bytes::Bytes;
use shoal_resp::Frame;
use shoal_store::types::Hash;
use shoal_store::Db;

use super::{bulk_or_null, bytes, hash_for_write, read_hash};
use crate::args::{self, is};
use crate::ctx::{notify, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

/// Redis's `HFE_MAX_ABS_TIME_MSEC`: the latest expiry a command may set, in Unix ms.
pub const EXPIRE_MAX_MS: i64 = (((1u64 << 48) - 1) >> 2) as i64;

const FIELDS_MISSING: &str = "ERR Mandatory argument FIELDS is missing or not at the right position";
const FIELDS_MISMATCH: &str = "ERR The `numfields` parameter must match the number of arguments";
/// HEXPIRE and friends' words for a field count that is not a positive integer.
const EXPIRE_BAD_COUNT: &str = "ERR Parameter `numFields` should be greater than 0";
/// HTTL, HPERSIST, HGETDEL and HGETEX's.
const BAD_COUNT: &str = "ERR Number of fields must be a positive integer";
/// HSETEX's.
const SETEX_BAD_COUNT: &str = "ERR invalid number of fields";
const NEGATIVE_EXPIRE: &str = "ERR invalid expire time, must be >= 0";
const SETEX_ONE_EXPIRY: &str = "ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified";
const SETEX_ONE_CONDITION: &str = "ERR Only one of FXX or FNX arguments can be specified";
const SETEX_MISSING_EXPIRE: &str = "ERR missing expire time";

/// HEXPIRE's per-field replies (Redis's `SetExRes` and friends).
const NO_FIELD: i64 = -2;
const NO_TTL: i64 = -1;
const CONDITION_NOT_MET: i64 = 0;
const SET: i64 = 1;
const DELETED: i64 = 2;

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@hash"], group: "hash", since: "7.4.0", ..CommandSpec::DEFAULT };
const FIELDS_COMPLEXITY: &str = "O(N) where N is the number of specified fields";

const fn expire_spec(name: &'static str, summary: &'static str) -> CommandSpec {
    CommandSpec { name, arity: -6, flags: WRITE | FAST, summary, complexity: FIELDS_COMPLEXITY, handler: Handler::Keys { local: hexpire, multi: None }, ..BASE }
}

const fn ttl_spec(name: &'static str, summary: &'static str) -> CommandSpec {
    CommandSpec { name, arity: -5, flags: READONLY | FAST, summary, complexity: FIELDS_COMPLEXITY, handler: Handler::Keys { local: httl, multi: None }, ..BASE }
}

pub const COMMANDS: &[CommandSpec] = &[
    expire_spec("hexpire", "Set expiry for hash field using relative time to expire (seconds)"),
    expire_spec("hpexpire", "Set expiry for hash field using relative time to expire (milliseconds)"),
    expire_spec("hexpireat", "Set expiry for hash field using an absolute Unix timestamp (seconds)"),
    expire_spec("hpexpireat", "Set expiry for hash field using an absolute Unix timestamp (milliseconds)"),
    ttl_spec("httl", "Returns the TTL in seconds of a hash field."),
    ttl_spec("hpttl", "Returns the TTL in milliseconds of a hash field."),
    ttl_spec("hexpiretime", "Returns the expiration time of a hash field as a Unix timestamp, in seconds."),
    ttl_spec("hpexpiretime", "Returns the expiration time of a hash field as a Unix timestamp, in msec."),
    CommandSpec {
        name: "hpersist",
        arity: -5,
        flags: WRITE | FAST,
        summary: "Removes the expiration time for each specified field",
        complexity: FIELDS_COMPLEXITY,
        handler: Handler::Keys { local: hpersist, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hgetdel",
        arity: -5,
        flags: WRITE | FAST,
        summary: "Returns the value of a field and deletes it from the hash.",
        since: "8.0.0",
        complexity: FIELDS_COMPLEXITY,
        handler: Handler::Keys { local: hgetdel, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hgetex",
        arity: -5,
        flags: WRITE | FAST,
        summary: "Get the value of one or more fields of a given hash key, and optionally set their expiration.",
        since: "8.0.0",
        complexity: FIELDS_COMPLEXITY,
        handler: Handler::Keys { local: hgetex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "hsetex",
        arity: -6,
        flags: WRITE | DENYOOM | FAST,
        summary: "Set the value of one or more fields of a given hash key, and optionally set their expiration.",
        since: "8.0.0",
        complexity: FIELDS_COMPLEXITY,
        handler: Handler::Keys { local: hsetex, multi: None },
        ..BASE
    },
];

// ---- Arguments ---------------------------------------------------------------------------

/// The fields after `FIELDS numfields` at `at`: the keyword must be there, the count a
/// positive integer (else `bad_count`) equal to what follows.
fn fields_at<'a>(args: &'a [Bytes], at: usize, bad_count: &str) -> Result<&'a [Bytes], Frame> {
    if !args.get(at).is_some_and(|arg| is(arg, "fields")) {
        return Err(errors::error(FIELDS_MISSING));
    }
    let Some(count) = args.get(at + 1) else {
        return Err(errors::error(bad_count));
    };
    let count = args::parse_i64(count).ok().filter(|&n| n >= 1).ok_or_else(|| errors::error(bad_count))?;
    let fields = &args[at + 2..];
    if count as u64 != fields.len() as u64 {
        return Err(errors::error(FIELDS_MISMATCH));
    }
    Ok(fields)
}

/// An expiry argument as Redis's `parseExpireTime` reads it: a non-negative integer in
/// `unit_ms`, plus `base_ms` (now for a relative form, 0 for an absolute one), at most
/// [`EXPIRE_MAX_MS`]. Returns the absolute expiry in Unix ms.
fn parse_expire(arg: &[u8], unit_ms: i64, base_ms: u64, command: &str) -> Result<u64, Frame> {
    let value = args::parse_i64(arg)?;
    if value < 0 {
        return Err(errors::error(NEGATIVE_EXPIRE));
    }
    if value > EXPIRE_MAX_MS / unit_ms {
        return Err(errors::invalid_expire(command));
    }
    let value = value * unit_ms;
    if value > EXPIRE_MAX_MS - base_ms as i64 {
        return Err(errors::invalid_expire(command));
    }
    Ok((value + base_ms as i64) as u64)
}

/// The unit and base of each expiring command's time argument.
fn unit_and_base(name: &str, now_ms: u64) -> (i64, u64) {
    match name {
        "hexpire" => (1000, now_ms),
        "hpexpire" => (1, now_ms),
        "hexpireat" => (1000, 0),
        _ => (1, 0),
    }
}

/// A condition on the TTL a field has (HEXPIRE's NX, XX, GT, LT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Condition {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

/// What a field's TTL becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    At(u64),
    Persist,
}

/// Redis's `hashTypeSetEx` for one field; `passed`: the expiry is not in the future (then
/// the field is deleted, except while the log is replayed: see `Db::expiry_passed`).
fn set_expiry(hash: &mut Hash, field: &[u8], expiry: Expiry, condition: Condition, passed: bool) -> i64 {
    if !hash.contains(field) {
        return NO_FIELD;
    }
    let at = match expiry {
        Expiry::Persist => return if hash.clear_field_ttl(field) { SET } else { CONDITION_NOT_MET },
        Expiry::At(at) => at,
    };
    let refused = match hash.field_ttl(field) {
        // No TTL counts as an infinite one: LT always passes, GT never.
        None => matches!(condition, Condition::Xx | Condition::Gt),
        Some(current) => match condition {
            Condition::Nx => true,
            Condition::Gt => current >= at,
            Condition::Lt => current <= at,
            Condition::Always | Condition::Xx => false,
        },
    };
    if refused {
        return CONDITION_NOT_MET;
    }
    if passed {
        hash.remove(field);
        return DELETED;
    }
    hash.set_field_ttl(field, at);
    SET
}

/// Whether `expiry` deletes the fields it is given (see [`set_expiry`]).
fn passed(db: &Db, expiry: Option<Expiry>, now_ms: u64) -> bool {
    matches!(expiry, Some(Expiry::At(at)) if db.expiry_passed(at as i64, now_ms))
}

/// Lists the hash at `key` again after its TTLs changed, or deletes the key when the
/// command left it empty (raising `del`). Counts `changes`.
fn finish_write(ctx: &mut Ctx, key: &[u8], changes: u64) {
    let db = ctx.db();
    db.add_changes(changes);
    let emptied = matches!(db.lookup_quiet(key, 0).map(|e| &e.value), Some(shoal_store::Value::Hash(hash)) if hash.is_empty());
    if emptied {
        db.remove(key);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        db.reindex_hash(key);
    }
}

fn codes(codes: Vec<i64>) -> Frame {
    Frame::Array(codes.into_iter().map(args::int).collect())
}

// ---- HEXPIRE, HPEXPIRE, HEXPIREAT, HPEXPIREAT --------------------------------------------

/// HEXPIRE key seconds [NX | XX | GT | LT] FIELDS numfields field [field ...] (and the
/// milliseconds and absolute forms).
fn hexpire(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, name) = (ctx.now_ms, command_name(args));
    let key = &args[1];
    // The key's type first, as Redis's lookupKeyWrite + checkType.
    if let Err(e) = check_type(ctx.db(), key, now) {
        return e;
    }
    let (unit, base) = unit_and_base(&name, now);
    let at = match parse_expire(&args[2], unit, base, &name) {
        Ok(at) => at,
        Err(e) => return e,
    };
    let condition = [("nx", Condition::Nx), ("xx", Condition::Xx), ("gt", Condition::Gt), ("lt", Condition::Lt)]
        .into_iter()
        .find(|(word, _)| is(&args[3], word))
        .map(|(_, c)| c);
    let fields = match fields_at(args, if condition.is_some() { 4 } else { 3 }, EXPIRE_BAD_COUNT) {
        Ok(fields) => fields,
        Err(e) => return e,
    };
    let db = ctx.db();
    let passed = passed(db, Some(Expiry::At(at)), now);
    let Ok(Some(hash)) = hash_for_write(db, key, now) else {
        return codes(vec![NO_FIELD; fields.len()]);
    };
    let condition = condition.unwrap_or(Condition::Always);
    let results: Vec<i64> = fields.iter().map(|field| set_expiry(hash, field, Expiry::At(at), condition, passed)).collect();
    let (set, deleted) = (results.iter().filter(|&&r| r == SET).count(), results.iter().filter(|&&r| r == DELETED).count());
    db.stats.expired_fields += deleted as u64;
    if set + deleted > 0 {
        ctx.notify(notify::HASH, if deleted > 0 { "hdel" } else { "hexpire" }, key);
        finish_write(ctx, key, (set + deleted) as u64);
    }
    codes(results)
}

/// The command's name as Redis spells it in its errors (lowercase).
fn command_name(args: &[Bytes]) -> String {
    String::from_utf8_lossy(&args[0]).to_ascii_lowercase()
}

/// `key FIELDS numfields field ...` (HTTL, HPERSIST, HGETDEL): the key's type first, then
/// the fields.
fn typed_fields<'a>(db: &mut Db, args: &'a [Bytes], now_ms: u64) -> Result<&'a [Bytes], Frame> {
    check_type(db, &args[1], now_ms)?;
    fields_at(args, 2, BAD_COUNT)
}

/// The key's type, checked before the arguments as Redis does: WRONGTYPE for another type.
fn check_type(db: &mut Db, key: &[u8], now_ms: u64) -> Result<(), Frame> {
    match db.lookup_quiet(key, now_ms).map(|entry| &entry.value) {
        None | Some(shoal_store::Value::Hash(_)) => Ok(()),
        Some(_) => Err(errors::wrong_type()),
    }
}

// ---- HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME ----------------------------------------------

/// HTTL key FIELDS numfields field [field ...] (and HPTTL, HEXPIRETIME, HPEXPIRETIME).
fn httl(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let name = command_name(args);
    let fields = match typed_fields(ctx.db(), args, now) {
        Ok(fields) => fields,
        Err(e) => return e,
    };
    let (seconds, base) = match name.as_str() {
        "httl" => (true, now),
        "hpttl" => (false, now),
        "hexpiretime" => (true, 0),
        _ => (false, 0),
    };
    let ttl_of = |hash: &Hash, field: &[u8]| match (hash.contains(field), hash.field_ttl(field)) {
        (false, _) => NO_FIELD,
        (true, None) => NO_TTL,
        (true, Some(at)) if seconds => (at as i64 + 999 - base as i64) / 1000,
        (true, Some(at)) => at as i64 - base as i64,
    };
    let results = read_hash(ctx.db(), &args[1], now, vec![NO_FIELD; fields.len()], |hash| fields.iter().map(|field| ttl_of(hash, field)).collect());
    match results {
        Ok(results) => codes(results),
        Err(e) => e,
    }
}

// ---- HPERSIST ----------------------------------------------------------------------------

/// HPERSIST key FIELDS numfields field [field ...]
fn hpersist(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let key = &args[1];
    let fields = match typed_fields(ctx.db(), args, now) {
        Ok(fields) => fields,
        Err(e) => return e,
    };
    let Ok(Some(hash)) = hash_for_write(ctx.db(), key, now) else {
        return codes(vec![NO_FIELD; fields.len()]);
    };
    let results: Vec<i64> = fields
        .iter()
        .map(|field| match (hash.contains(field), hash.clear_field_ttl(field)) {
            (false, _) => NO_FIELD,
            (true, false) => NO_TTL,
            (true, true) => SET,
        })
        .collect();
    if results.contains(&SET) {
        ctx.notify(notify::HASH, "hpersist", key);
        finish_write(ctx, key, 1);
    }
    codes(results)
}

// ---- HGETDEL -----------------------------------------------------------------------------

/// HGETDEL key FIELDS numfields field [field ...]
fn hgetdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let key = &args[1];
    let fields = match typed_fields(ctx.db(), args, now) {
        Ok(fields) => fields,
        Err(e) => return e,
    };
    let Ok(Some(hash)) = hash_for_write(ctx.db(), key, now) else {
        return Frame::Array(vec![Frame::Null; fields.len()]);
    };
    let mut deleted = 0;
    let values: Vec<Frame> = fields
        .iter()
        .map(|field| {
            let value = hash.get(field).map(bytes);
            if value.is_some() {
                hash.remove(field);
                deleted += 1;
            }
            bulk_or_null(value)
        })
        .collect();
    if deleted > 0 {
        ctx.notify(notify::HASH, "hdel", key);
        finish_write(ctx, key, deleted);
    }
    Frame::Array(values)
}

// ---- HGETEX ------------------------------------------------------------------------------

/// HGETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT
/// unix-time-milliseconds | PERSIST] FIELDS numfields field [field ...]
fn hgetex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let key = &args[1];
    if let Err(e) = check_type(ctx.db(), key, now) {
        return e;
    }
    let forms = [("ex", 1000, now), ("px", 1, now), ("exat", 1000, 0), ("pxat", 1, 0)];
    let (expiry, fields_at_index) = if let Some((_, unit, base)) = forms.iter().find(|(word, _, _)| is(&args[2], word)) {
        let Some(time) = args.get(3) else {
            return errors::wrong_arity("hgetex");
        };
        match parse_expire(time, *unit, *base, "hgetex") {
            Ok(at) => (Some(Expiry::At(at)), 4),
            Err(e) => return e,
        }
    } else if is(&args[2], "persist") {
        (Some(Expiry::Persist), 3)
    } else {
        (None, 2)
    };
    if fields_at_index + 1 >= args.len() && args.get(fields_at_index).is_some_and(|arg| is(arg, "fields")) {
        return errors::wrong_arity("hgetex");
    }
    let fields = match fields_at(args, fields_at_index, BAD_COUNT) {
        Ok(fields) => fields,
        Err(e) => return e,
    };
    let db = ctx.db();
    let passed = passed(db, expiry, now);
    let Ok(Some(hash)) = hash_for_write(db, key, now) else {
        return Frame::Array(vec![Frame::Null; fields.len()]);
    };
    let (mut set, mut deleted) = (0, 0);
    let values: Vec<Frame> = fields
        .iter()
        .map(|field| {
            let value = hash.get(field).map(bytes);
            if let (Some(_), Some(expiry)) = (&value, expiry) {
                match set_expiry(hash, field, expiry, Condition::Always, passed) {
                    SET => set += 1,
                    DELETED => deleted += 1,
                    _ => {}
                }
            }
            bulk_or_null(value)
        })
        .collect();
    db.stats.expired_fields += deleted;
    if set > 0 {
        ctx.notify(notify::HASH, if expiry == Some(Expiry::Persist) { "hpersist" } else { "hexpire" }, key);
    } else if deleted > 0 {
        ctx.notify(notify::HASH, "hdel", key);
    }
    if set + deleted > 0 {
        finish_write(ctx, key, set + deleted);
    }
    Frame::Array(values)
}

// ---- HSETEX ------------------------------------------------------------------------------

/// HSETEX's options, parsed before anything is looked up (as Redis's `hsetexParseArgs`).
#[derive(Debug, Default)]
struct SetexOptions {
    /// FNX: only when none of the fields exists; FXX: only when all do.
    only_new: bool,
    only_existing: bool,
    expiry: Option<u64>,
    keep_ttl: bool,
    /// Where the pairs start.
    pairs_at: usize,
}

fn parse_hsetex(args: &[Bytes], now_ms: u64) -> Result<SetexOptions, Frame> {
    let mut options = SetexOptions::default();
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        let timed = [("ex", 1000, now_ms), ("px", 1, now_ms), ("exat", 1000, 0), ("pxat", 1, 0)].into_iter().find(|(word, _, _)| is(arg, word));
        if is(arg, "fields") {
            if i + 3 >= args.len() {
                return Err(errors::wrong_arity("hsetex"));
            }
            let count = args::parse_i64(&args[i + 1]).ok().filter(|n| (1..=i32::MAX as i64).contains(n)).ok_or_else(|| errors::error(SETEX_BAD_COUNT))?;
            let remaining = args.len() - i - 2;
            if !remaining.is_multiple_of(2) || count as usize != remaining / 2 {
                return Err(errors::wrong_arity("hsetex"));
            }
            options.pairs_at = i + 2;
            return Ok(options);
        } else if let Some((_, unit, base)) = timed {
            if options.expiry.is_some() || options.keep_ttl {
                return Err(errors::error(SETEX_ONE_EXPIRY));
            }
            let Some(time) = args.get(i + 1) else {
                return Err(errors::error(SETEX_MISSING_EXPIRE));
            };
            options.expiry = Some(parse_expire(time, unit, base, "hsetex")?);
            i += 2;
        } else if is(arg, "keepttl") {
            if options.expiry.is_some() || options.keep_ttl {
                return Err(errors::error(SETEX_ONE_EXPIRY));
            }
            options.keep_ttl = true;
            i += 1;
        } else if is(arg, "fxx") || is(arg, "fnx") {
            if options.only_new || options.only_existing {
                return Err(errors::error(SETEX_ONE_CONDITION));
            }
            options.only_existing = is(arg, "fxx");
            options.only_new = is(arg, "fnx");
            i += 1;
        } else {
            return Err(errors::error(&format!("ERR unknown argument: {}", String::from_utf8_lossy(arg))));
        }
    }
    // The arity (6 or more) leaves no way here without FIELDS but a trailing option.
    Err(errors::wrong_arity("hsetex"))
}

/// HSETEX key [FNX | FXX] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT
/// unix-time-milliseconds | KEEPTTL] FIELDS numfields field value [field value ...]
///
/// 1 when the fields were set, 0 when FNX or FXX refused.
fn hsetex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, limits) = (ctx.now_ms, ctx.settings.limits);
    let options = match parse_hsetex(args, now) {
        Ok(options) => options,
        Err(e) => return e,
    };
    let key = &args[1];
    let pairs = &args[options.pairs_at..];
    let exists = match hash_for_write(ctx.db(), key, now) {
        Err(e) => return e,
        Ok(hash) => hash.map(|hash| pairs.chunks_exact(2).map(|pair| hash.contains(&pair[0])).collect::<Vec<_>>()),
    };
    let refused = match &exists {
        None => options.only_existing,
        Some(exists) => (options.only_existing && !exists.iter().all(|&e| e)) || (options.only_new && exists.iter().any(|&e| e)),
    };
    if refused {
        return args::int(0);
    }
    let db = ctx.db();
    let expiry = options.expiry.map(Expiry::At);
    let passed = passed(db, expiry, now);
    if exists.is_none() {
        db.set(key, shoal_store::Value::Hash(Default::default()), now);
    }
    let Ok(Some(hash)) = hash_for_write(db, key, now) else { unreachable!("the hash exists") };
    hash.convert_for(pairs.iter().map(|item| item.as_ref()), &limits);
    let (mut set, mut deleted) = (0, 0);
    for pair in pairs.chunks_exact(2) {
        if options.keep_ttl || expiry.is_some() {
            hash.set_keeping_ttl(&pair[0], &pair[1], &limits);
        } else {
            hash.set(&pair[0], &pair[1], &limits);
        }
        if let Some(expiry) = expiry {
            match set_expiry(hash, &pair[0], expiry, Condition::Always, passed) {
                SET => set += 1,
                DELETED => deleted += 1,
                _ => {}
            }
        }
    }
    db.stats.expired_fields += deleted;
    ctx.notify(notify::HASH, "hset", key);
    if deleted > 0 {
        ctx.notify(notify::HASH, "hdel", key);
    } else if set > 0 {
        ctx.notify(notify::HASH, "hexpire", key);
    }
    finish_write(ctx, key, (pairs.len() / 2) as u64);
    args::int(1)
}

#[cfg(test)]
mod tests;

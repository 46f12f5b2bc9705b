//! The string family: GET, SET and friends (Redis's `t_string.c`).
//!
//! Replies and errors follow Redis 7 byte for byte, including INCRBYFLOAT's `long double`
//! arithmetic ([`long_double`]) and the encodings OBJECT ENCODING reports: a value written
//! whole is encoded as Redis's `tryObjectEncoding` would ([`Str::from_bytes`]), one changed in
//! place (APPEND, SETRANGE) becomes raw. Bit operations (SETBIT, BITCOUNT, ...) are not here.

pub mod long_double;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::{Db, Str, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@string"], group: "string", ..CommandSpec::DEFAULT };

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
        name: "msetex",
        arity: -4,
        flags: WRITE | DENYOOM,
        keys: KeySpec::NONE,
        summary: "Atomically sets multiple string keys with a shared expiration in a single operation. Supports flexible argument parsing where condition and expiration flags can appear in any order.",
        since: "8.4.0",
        complexity: "O(N) where N is the number of keys to set.",
        handler: Handler::Keys { local: msetex, multi: Some(msetex_multi) },
        movable_keys: Some(msetex_keys),
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
    CommandSpec {
        name: "increx",
        arity: -2,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increments the numeric value of a key by a number and sets its expiration time. Uses 0 as initial value if the key doesn't exist.",
        since: "8.8.0",
        handler: Handler::Keys { local: increx, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "setnx",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Set the string value of a key only when the key doesn't exist.",
        handler: Handler::Keys { local: setnx, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "setex",
        arity: 4,
        flags: WRITE | DENYOOM,
        summary: "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        since: "2.0.0",
        handler: Handler::Keys { local: setex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "psetex",
        arity: 4,
        flags: WRITE | DENYOOM,
        summary: "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        since: "2.6.0",
        handler: Handler::Keys { local: psetex, multi: None },
        ..BASE
    },
    CommandSpec {
        // Deprecated since 6.2.0 in favour of SET with GET; the table has no field for that yet.
        name: "getset",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Returns the previous string value of a key after setting it to a new value.",
        handler: Handler::Keys { local: getset, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "getdel",
        arity: 2,
        flags: WRITE | FAST,
        summary: "Returns the string value of a key after deleting the key.",
        since: "6.2.0",
        handler: Handler::Keys { local: getdel, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "delex",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Conditionally removes the specified key based on value or digest comparison.",
        since: "8.4.0",
        complexity: "O(1) for IFEQ/IFNE, O(N) for IFDEQ/IFDNE where N is the length of the string value.",
        handler: Handler::Keys { local: delex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "digest",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the XXH3 hash of a string value.",
        since: "8.4.0",
        complexity: "O(N) where N is the length of the string value.",
        handler: Handler::Keys { local: digest, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "getex",
        arity: -2,
        flags: WRITE | FAST,
        summary: "Returns the string value of a key after setting its expiration time.",
        since: "6.2.0",
        handler: Handler::Keys { local: getex, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "append",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        since: "2.0.0",
        complexity: "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.",
        handler: Handler::Keys { local: append, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "strlen",
        arity: 2,
        flags: READONLY | FAST,
        summary: "Returns the length of a string value.",
        since: "2.2.0",
        handler: Handler::Keys { local: strlen, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "incrbyfloat",
        arity: 3,
        flags: WRITE | DENYOOM | FAST,
        summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        since: "2.6.0",
        handler: Handler::Keys { local: incrbyfloat, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "getrange",
        arity: 4,
        flags: READONLY,
        summary: "Returns a substring of the string stored at a key.",
        since: "2.4.0",
        complexity: RANGE_COMPLEXITY,
        handler: Handler::Keys { local: getrange, multi: None },
        ..BASE
    },
    CommandSpec {
        // Deprecated since 2.0.0 in favour of GETRANGE.
        name: "substr",
        arity: 4,
        flags: READONLY,
        summary: "Returns a substring from a string value.",
        complexity: RANGE_COMPLEXITY,
        handler: Handler::Keys { local: getrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "setrange",
        arity: 4,
        flags: WRITE | DENYOOM,
        summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        since: "2.2.0",
        complexity: "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
        handler: Handler::Keys { local: setrange, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "lcs",
        arity: -3,
        flags: READONLY,
        keys: KeySpec::TWO,
        summary: "Finds the longest common substring.",
        since: "7.0.0",
        complexity: "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        handler: Handler::Keys { local: lcs, multi: Some(lcs_multi) },
        ..BASE
    },
];

const RANGE_COMPLEXITY: &str = "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.";

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
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Condition<'a> {
    #[default]
    Always,
    IfAbsent,
    IfPresent,
    /// IFEQ, IFNE, IFDEQ or IFDNE (Redis 8.4): the current value decides.
    Compare(Comparison<'a>),
}

/// The hexadecimal digits of a value's digest (DIGEST, IFDEQ and IFDNE).
const DIGEST_HEX_LEN: usize = 16;

/// The digest of a string value, as DIGEST shows it and IFDEQ/IFDNE compare it: XXH3-64 of
/// its bytes (an integer's decimal text), as 16 lower-case hexadecimal digits, leading
/// zeros kept.
pub fn value_digest(bytes: &[u8]) -> [u8; DIGEST_HEX_LEN] {
    let hash = xxhash_rust::xxh3::xxh3_64(bytes);
    let mut hex = [0u8; DIGEST_HEX_LEN];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(hash >> (60 - 4 * i)) as usize & 0xf];
    }
    hex
}

/// A compare-and-set or compare-and-delete test on a string's current value (Redis 8.4's
/// IFEQ, IFNE, IFDEQ and IFDNE of SET and DELEX).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Comparison<'a> {
    /// IFDEQ/IFDNE: `operand` is a digest (see [`value_digest`]), not a value.
    by_digest: bool,
    /// IFEQ/IFDEQ: passes when equal; IFNE/IFDNE: when different.
    equal: bool,
    operand: &'a [u8],
}

impl<'a> Comparison<'a> {
    /// The test `token` names, with its operand; None when `token` names none.
    pub fn parse(token: &[u8], operand: &'a [u8]) -> Option<Comparison<'a>> {
        let (by_digest, equal) = [("ifeq", (false, true)), ("ifne", (false, false)), ("ifdeq", (true, true)), ("ifdne", (true, false))]
            .into_iter()
            .find_map(|(word, kind)| is(token, word).then_some(kind))?;
        Some(Comparison { by_digest, equal, operand })
    }

    /// Whether a missing key passes: IFNE and IFDNE, since no value equals their operand.
    fn passes_when_missing(&self) -> bool {
        !self.equal
    }

    /// Whether the string `value` passes. A digest operand is checked only here, once a
    /// string is found (as Redis does): not 16 characters long, it is an error. Digits
    /// compare without regard to case.
    fn passes(&self, value: &Str) -> Result<bool, Frame> {
        let same = if self.by_digest {
            if self.operand.len() != DIGEST_HEX_LEN {
                return Err(errors::error(errors::DIGEST_LENGTH));
            }
            value.with_bytes(value_digest).eq_ignore_ascii_case(self.operand)
        } else {
            value.with_bytes(|bytes| bytes == self.operand)
        };
        Ok(same == self.equal)
    }
}

/// What a write does with the key's TTL.
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

/// The expiry options of SET and GETEX.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ExpireForm {
    Ex,
    Px,
    Exat,
    Pxat,
}

impl ExpireForm {
    fn parse(arg: &[u8]) -> Option<ExpireForm> {
        [("ex", ExpireForm::Ex), ("px", ExpireForm::Px), ("exat", ExpireForm::Exat), ("pxat", ExpireForm::Pxat)]
            .into_iter()
            .find_map(|(word, form)| is(arg, word).then_some(form))
    }

    fn unit_ms(self) -> i64 {
        match self {
            ExpireForm::Ex | ExpireForm::Exat => 1000,
            ExpireForm::Px | ExpireForm::Pxat => 1,
        }
    }

    fn absolute(self) -> bool {
        matches!(self, ExpireForm::Exat | ExpireForm::Pxat)
    }

    /// The absolute expiry `arg` asks for, or `command`'s error.
    fn expire_at(self, arg: &[u8], now_ms: u64, command: &str) -> Result<u64, Frame> {
        let value = args::parse_i64(arg)?;
        match expire_at_ms(value, self.unit_ms(), self.absolute(), now_ms) {
            Some(at) => Ok(at as u64),
            None => Err(errors::invalid_expire(command)),
        }
    }
}

/// Whose options [`parse_string_options`] reads (Redis's COMMAND_SET and COMMAND_GET), and
/// MSETEX's, which are SET's but GET, from argument `from`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OptionsOf {
    Set,
    Getex,
    Msetex { from: usize },
}

/// The options of SET or GETEX, the expiry value not yet checked.
#[derive(Default)]
struct StringOptions<'a> {
    condition: Condition<'a>,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expire: Option<(ExpireForm, &'a [u8])>,
}

/// Parses SET's or GETEX's options as Redis's `parseExtendedStringArgumentsOrReply` does: an
/// option may repeat (the last expiry wins) but conflicting ones are a syntax error. The
/// expiry value is only checked afterwards, so `EX abc FOO` is a syntax error.
fn parse_string_options(args: &[Bytes], of: OptionsOf) -> Result<StringOptions<'_>, Frame> {
    let set = of != OptionsOf::Getex;
    let mut options = StringOptions::default();
    let mut i = match of {
        OptionsOf::Set => 3,
        OptionsOf::Getex => 2,
        OptionsOf::Msetex { from } => from,
    };
    while i < args.len() {
        let arg = &args[i];
        let form = ExpireForm::parse(arg);
        let comparison = match args.get(i + 1) {
            Some(operand) if of == OptionsOf::Set => Comparison::parse(arg, operand),
            _ => None,
        };
        if set && is(arg, "nx") && matches!(options.condition, Condition::Always | Condition::IfAbsent) {
            options.condition = Condition::IfAbsent;
        } else if set && is(arg, "xx") && matches!(options.condition, Condition::Always | Condition::IfPresent) {
            options.condition = Condition::IfPresent;
        } else if let Some(comparison) = comparison {
            // One condition at most; the same test again replaces its operand.
            let same_test = |c: &Comparison| (c.by_digest, c.equal) == (comparison.by_digest, comparison.equal);
            match options.condition {
                Condition::Always => {}
                Condition::Compare(previous) if same_test(&previous) => {}
                _ => return Err(errors::syntax()),
            }
            options.condition = Condition::Compare(comparison);
            i += 1;
        } else if of == OptionsOf::Set && is(arg, "get") {
            options.get = true;
        } else if set && is(arg, "keepttl") && options.expire.is_none() {
            options.keep_ttl = true;
        } else if !set && is(arg, "persist") && options.expire.is_none() {
            options.persist = true;
        } else if let (Some(form), Some(value)) = (form, args.get(i + 1)) {
            let same_form = options.expire.is_none_or(|(previous, _)| previous == form);
            if options.keep_ttl || options.persist || !same_form {
                return Err(errors::syntax());
            }
            options.expire = Some((form, value));
            i += 1;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    Ok(options)
}

/// Writes `bytes` as the string at `key`, whatever was there, with `ttl`: one change, even
/// when an expiry already past deletes the key instead.
fn op_set_string(db: &mut Db, key: &[u8], bytes: &[u8], ttl: Ttl, now_ms: u64) {
    db.add_changes(1);
    let value = Value::Str(Str::from_bytes(bytes));
    match ttl {
        Ttl::Clear => db.set(key, value, now_ms),
        Ttl::Keep => db.set_keep_ttl(key, value, now_ms),
        // Redis deletes a key whose absolute expiry has passed instead of storing it.
        Ttl::At(at) if db.expiry_passed(at as i64, now_ms) => {
            db.remove(key);
        }
        Ttl::At(at) => db.set_with_expire(key, value, Some(at), now_ms),
    }
}

/// SET key value [NX | XX | IFEQ ifeq-value | IFNE ifne-value | IFDEQ ifdeq-digest | IFDNE ifdne-digest] [GET]
///     [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]
fn set(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let options = match parse_string_options(args, OptionsOf::Set) {
        Ok(options) => options,
        Err(e) => return e,
    };
    let now = ctx.now_ms;
    let ttl = match options.expire {
        Some((form, value)) => match form.expire_at(value, now, "set") {
            Ok(at) => Ttl::At(at),
            Err(e) => return e,
        },
        None if options.keep_ttl => Ttl::Keep,
        None => Ttl::Clear,
    };
    let comparison = match options.condition {
        Condition::Compare(comparison) => Some(comparison),
        _ => None,
    };
    let db = ctx.db();
    let key = &args[1];
    // Whether the key exists, its old value for GET, and whether a comparison passes.
    let (present, old, passes) = match db.lookup_write(key, now) {
        None => (false, None, comparison.is_none_or(|c| c.passes_when_missing())),
        Some(entry) => match &entry.value {
            Value::Str(s) => {
                let passes = match comparison.map(|c| c.passes(s)) {
                    None => true,
                    Some(Ok(passes)) => passes,
                    Some(Err(e)) => return e,
                };
                (true, options.get.then(|| s.to_bytes()), passes)
            }
            #[allow(unreachable_patterns)]
            _ if options.get || comparison.is_some() => return errors::wrong_type(),
            #[allow(unreachable_patterns)]
            _ => (true, None, true),
        },
    };
    let blocked = match options.condition {
        Condition::Always => false,
        Condition::IfAbsent => present,
        Condition::IfPresent => !present,
        Condition::Compare(_) => !passes,
    };
    if !blocked {
        op_set_string(db, key, &args[2], ttl, now);
        notify_set(ctx, key, matches!(ttl, Ttl::At(_)));
    }
    match (options.get, blocked) {
        (true, _) => bulk_or_null(old),
        (false, true) => Frame::Null,
        (false, false) => args::ok(),
    }
}

/// SET's events: `set`, then `expire` when it set a TTL.
fn notify_set(ctx: &mut Ctx, key: &[u8], with_ttl: bool) {
    ctx.notify(notify::STRING, "set", key);
    if with_ttl {
        ctx.notify(notify::GENERIC, "expire", key);
    }
}

/// Sets `key` unless it exists; returns whether it did.
pub fn op_setnx(db: &mut Db, key: &[u8], value: &[u8], now_ms: u64) -> bool {
    if db.lookup_write(key, now_ms).is_some() {
        return false;
    }
    op_set_string(db, key, value, Ttl::Clear, now_ms);
    true
}

/// SETNX key value
fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let set = op_setnx(ctx.db(), &args[1], &args[2], now);
    if set {
        notify_set(ctx, &args[1], false);
    }
    Frame::Integer(set as i64)
}

/// SETEX and PSETEX: a relative expiry in `form`'s unit, then the value.
fn setex_generic(ctx: &mut Ctx, args: &[Bytes], form: ExpireForm, command: &str) -> Frame {
    let now = ctx.now_ms;
    match form.expire_at(&args[2], now, command) {
        Ok(at) => {
            op_set_string(ctx.db(), &args[1], &args[3], Ttl::At(at), now);
            notify_set(ctx, &args[1], true);
            args::ok()
        }
        Err(e) => e,
    }
}

/// SETEX key seconds value
fn setex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setex_generic(ctx, args, ExpireForm::Ex, "setex")
}

/// PSETEX key milliseconds value
fn psetex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setex_generic(ctx, args, ExpireForm::Px, "psetex")
}

/// Sets `key` to `value` (clearing its TTL) and returns the old value.
pub fn op_getset(db: &mut Db, key: &[u8], value: &[u8], now_ms: u64) -> Result<Option<Bytes>, Frame> {
    let old = op_get(db, key, now_ms)?;
    op_set_string(db, key, value, Ttl::Clear, now_ms);
    Ok(old)
}

/// GETSET key value
fn getset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let old = op_getset(ctx.db(), &args[1], &args[2], now);
    if old.is_ok() {
        ctx.notify(notify::STRING, "set", &args[1]);
    }
    ctx::reply(old, bulk_or_null)
}

/// Removes `key` and returns its value.
pub fn op_getdel(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Option<Bytes>, Frame> {
    let value = op_get(db, key, now_ms)?;
    if value.is_some() {
        db.remove(key);
        db.add_changes(1);
    }
    Ok(value)
}

/// GETDEL key
fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let value = op_getdel(ctx.db(), &args[1], now);
    if matches!(value, Ok(Some(_))) {
        ctx.notify(notify::GENERIC, "del", &args[1]);
    }
    ctx::reply(value, bulk_or_null)
}

/// DELEX key [IFEQ ifeq-value | IFNE ifne-value | IFDEQ ifdeq-digest | IFDNE ifdne-digest]:
/// DEL of one key, or, with a condition, of a string whose value passes it.
fn delex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let comparison = match args {
        [_, _] => None,
        [_, _, token, operand] => match Comparison::parse(token, operand) {
            Some(comparison) => Some(comparison),
            None => return errors::syntax(),
        },
        _ => return errors::syntax(),
    };
    if let Some(comparison) = comparison {
        let now = ctx.now_ms;
        let passes = match ctx.db().lookup_write(&args[1], now) {
            None => return Frame::Integer(0),
            Some(entry) => match &entry.value {
                Value::Str(s) => comparison.passes(s),
                #[allow(unreachable_patterns)]
                _ => Err(errors::wrong_type()),
            },
        };
        match passes {
            Ok(true) => {}
            Ok(false) => return Frame::Integer(0),
            Err(e) => return e,
        }
    }
    let lazy = ctx.settings.lazyfree_lazy_user_del;
    Frame::Integer(crate::keys::op_del(ctx, &args[1..2], lazy) as i64)
}

/// The digest of the string at `key` (see [`value_digest`]).
pub fn op_digest(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Option<Bytes>, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(None),
        Some(entry) => match &entry.value {
            Value::Str(s) => Ok(Some(Bytes::copy_from_slice(&s.with_bytes(value_digest)))),
            #[allow(unreachable_patterns)]
            _ => Err(errors::wrong_type()),
        },
    }
}

/// DIGEST key
fn digest(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_digest(ctx.db(), &args[1], now), bulk_or_null)
}

/// What GETEX does to the TTL.
#[derive(Clone, Copy, Debug)]
enum TtlChange<'a> {
    Keep,
    Persist,
    /// An EX, PX, EXAT or PXAT argument, not yet checked: Redis checks it only once the key
    /// is found.
    Expire(ExpireForm, &'a [u8]),
}

/// Reads the string at `key` and changes its TTL. Redis checks the expiry value only when
/// the key exists and holds a string, so a missing key is nil whatever the value.
/// Also returns the event the change raised (`expire`, `persist` or `del`), if any.
fn op_getex(db: &mut Db, key: &[u8], change: TtlChange, now_ms: u64) -> Result<(Option<Bytes>, Option<&'static str>), Frame> {
    let value = match db.lookup_read(key, now_ms) {
        None => return Ok((None, None)),
        Some(entry) => match &entry.value {
            Value::Str(s) => s.to_bytes(),
            #[allow(unreachable_patterns)]
            _ => return Err(errors::wrong_type()),
        },
    };
    let event = match change {
        TtlChange::Keep => None,
        // Only a TTL removed counts (Redis's PERSIST rule).
        TtlChange::Persist => {
            if db.expire_at(key).is_some() {
                db.set_expire(key, None);
                db.add_changes(1);
                Some("persist")
            } else {
                None
            }
        }
        TtlChange::Expire(form, arg) => {
            let at = form.expire_at(arg, now_ms, "getex")?;
            db.add_changes(1);
            if form.absolute() && db.expiry_passed(at as i64, now_ms) {
                db.remove(key);
                Some("del")
            } else {
                db.set_expire(key, Some(at));
                Some("expire")
            }
        }
    };
    Ok((Some(value), event))
}

/// GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]
fn getex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let options = match parse_string_options(args, OptionsOf::Getex) {
        Ok(options) => options,
        Err(e) => return e,
    };
    let change = match options.expire {
        Some((form, value)) => TtlChange::Expire(form, value),
        None if options.persist => TtlChange::Persist,
        None => TtlChange::Keep,
    };
    let now = ctx.now_ms;
    let result = op_getex(ctx.db(), &args[1], change, now);
    if let Ok((_, Some(event))) = &result {
        ctx.notify(notify::GENERIC, event, &args[1]);
    }
    ctx::reply(result.map(|(value, _)| value), bulk_or_null)
}

/// Redis's `checkStringLength`: a string of `len + extra` bytes must fit proto-max-bulk-len.
fn check_string_length(len: u64, extra: u64, len_max: u64) -> Result<(), Frame> {
    match len.checked_add(extra) {
        Some(total) if total <= len_max => Ok(()),
        _ => Err(errors::error(errors::STRING_TOO_LONG)),
    }
}

/// Appends `tail` to the string at `key` (creating it) and returns the new length. The
/// value becomes raw, and keeps its TTL.
pub fn op_append(db: &mut Db, key: &[u8], tail: &[u8], len_max: u64, now_ms: u64) -> Result<usize, Frame> {
    match db.lookup_write(key, now_ms) {
        None => {
            db.set(key, Value::Str(Str::from_bytes(tail)), now_ms);
            db.add_changes(1);
            Ok(tail.len())
        }
        Some(entry) => match &mut entry.value {
            Value::Str(s) => {
                check_string_length(s.len() as u64, tail.len() as u64, len_max)?;
                let bytes = s.make_raw();
                bytes.extend_from_slice(tail);
                let len = bytes.len();
                // One change even for an empty tail, as Redis counts it.
                db.add_changes(1);
                Ok(len)
            }
            #[allow(unreachable_patterns)]
            _ => Err(errors::wrong_type()),
        },
    }
}

/// APPEND key value
fn append(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, len_max) = (ctx.now_ms, ctx.settings.proto_max_bulk_len);
    let len = op_append(ctx.db(), &args[1], &args[2], len_max, now);
    if len.is_ok() {
        ctx.notify(notify::STRING, "append", &args[1]);
    }
    ctx::reply(len, args::int)
}

/// The length of the string at `key`, 0 when missing.
pub fn op_strlen(db: &mut Db, key: &[u8], now_ms: u64) -> Result<usize, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(0),
        Some(entry) => match &entry.value {
            Value::Str(s) => Ok(s.len()),
            #[allow(unreachable_patterns)]
            _ => Err(errors::wrong_type()),
        },
    }
}

/// STRLEN key
fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    ctx::reply(op_strlen(ctx.db(), &args[1], now), args::int)
}

/// Adds `increment` (text) to the number at `key` (0 when absent) in `long double`, as
/// Redis does, and stores the result as a string, keeping the TTL. Returns the new text.
pub fn op_incrbyfloat(db: &mut Db, key: &[u8], increment: &[u8], now_ms: u64) -> Result<Bytes, Frame> {
    let not_float = || errors::error(errors::NOT_FLOAT);
    let current = match db.lookup_write(key, now_ms) {
        None => long_double::LongDouble::ZERO,
        Some(entry) => match &entry.value {
            Value::Str(s) => s.with_bytes(long_double::parse).ok_or_else(not_float)?,
            #[allow(unreachable_patterns)]
            _ => return Err(errors::wrong_type()),
        },
    };
    let increment = long_double::parse(increment).ok_or_else(not_float)?;
    let sum = long_double::add(current, increment);
    if !sum.is_finite() {
        return Err(errors::error(errors::INCREMENT_NAN_OR_INFINITY));
    }
    let text = long_double::format_human(sum);
    db.set_keep_ttl(key, Value::Str(printed_float(&text)), now_ms);
    db.add_changes(1);
    Ok(Bytes::from(text))
}

/// A float result stored as printed: Redis stores the text (createStringObject), never
/// int-encoded, so OBJECT ENCODING says embstr even for "3".
fn printed_float(text: &str) -> Str {
    Str::from_text(text.as_bytes())
}

/// INCRBYFLOAT key increment
fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let value = op_incrbyfloat(ctx.db(), &args[1], &args[2], now);
    if value.is_ok() {
        ctx.notify(notify::STRING, "incrbyfloat", &args[1]);
    }
    ctx::reply(value, Frame::Bulk)
}

// ---- INCREX ----------------------------------------------------------------------------

/// INCREX's TTL option.
#[derive(Clone, Copy)]
enum IncrexTtl<'a> {
    Persist,
    /// EX, PX, EXAT or PXAT and its value, checked once every option is read.
    Expire(ExpireForm, &'a [u8]),
}

/// INCREX's options as read, values not yet checked: each at most once, in any order.
#[derive(Default)]
struct IncrexOptions<'a> {
    /// BYFLOAT (true) or BYINT, and the increment.
    by: Option<(bool, &'a [u8])>,
    lbound: Option<&'a [u8]>,
    ubound: Option<&'a [u8]>,
    saturate: bool,
    ttl: Option<IncrexTtl<'a>>,
    enx: bool,
}

/// The numbers INCREX works with: 64-bit integers (BYINT, or no increment) or `long double`.
#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(LongDouble),
}

/// A checked INCREX request.
struct Increx {
    increment: Number,
    /// The bounds, of the increment's kind; the type's limits when not given.
    bounds: (Number, Number),
    saturate: bool,
    persist: bool,
    /// Absolute expiry (Unix ms) of EX/PX/EXAT/PXAT.
    expire_at: Option<u64>,
    enx: bool,
}

use long_double::LongDouble;

const INCREX_ENX_WITHOUT_EXPIRE: &str = "ERR ENX flag requires an expiration (EX, PX, EXAT or PXAT)";
const INCREX_NOT_INTEGER: &str = "ERR Increment is not an integer or out of range";
const INCREX_NOT_FLOAT: &str = "ERR Increment is not a valid float";
const INCREX_INFINITE_INCREMENT: &str = "ERR BYFLOAT increment cannot be Infinity";
const INCREX_INFINITE_VALUE: &str = "ERR value cannot be Infinity";
const INCREX_BOUNDS: &str = "ERR LBOUND can't be greater than UBOUND";
const INCREX_DELTA_OVERFLOW: &str = "ERR applied increment would overflow";

fn parse_increx(args: &[Bytes], now_ms: u64) -> Result<Increx, Frame> {
    let mut options = IncrexOptions::default();
    let mut i = 2;
    while i < args.len() {
        let (arg, value) = (&args[i], args.get(i + 1).map(|v| &v[..]));
        let takes_value = match value {
            Some(value) if options.by.is_none() && (is(arg, "byint") || is(arg, "byfloat")) => {
                options.by = Some((is(arg, "byfloat"), value));
                true
            }
            Some(value) if options.lbound.is_none() && is(arg, "lbound") => {
                options.lbound = Some(value);
                true
            }
            Some(value) if options.ubound.is_none() && is(arg, "ubound") => {
                options.ubound = Some(value);
                true
            }
            Some(value) if options.ttl.is_none() && ExpireForm::parse(arg).is_some() => {
                options.ttl = ExpireForm::parse(arg).map(|form| IncrexTtl::Expire(form, value));
                true
            }
            _ if !options.saturate && is(arg, "saturate") => {
                options.saturate = true;
                false
            }
            _ if options.ttl.is_none() && is(arg, "persist") => {
                options.ttl = Some(IncrexTtl::Persist);
                false
            }
            _ if !options.enx && is(arg, "enx") => {
                options.enx = true;
                false
            }
            _ => return Err(errors::syntax()),
        };
        i += 1 + takes_value as usize;
    }
    if options.enx {
        match options.ttl {
            Some(IncrexTtl::Persist) => return Err(errors::syntax()),
            None => return Err(errors::error(INCREX_ENX_WITHOUT_EXPIRE)),
            Some(IncrexTtl::Expire(..)) => {}
        }
    }
    let float = options.by.is_some_and(|(float, _)| float);
    let number = |text: &[u8], what: &str| -> Result<Number, Frame> {
        if float {
            long_double::parse(text).map(Number::Float).ok_or_else(|| errors::error(&format!("ERR {what} is not a valid float")))
        } else {
            shoal_store::value::parse_canonical_i64(text)
                .map(Number::Int)
                .ok_or_else(|| errors::error(&format!("ERR {what} is not an integer or out of range")))
        }
    };
    let increment = match options.by {
        None => Number::Int(1),
        Some((false, text)) => number(text, "Increment").map_err(|_| errors::error(INCREX_NOT_INTEGER))?,
        Some((true, text)) => match number(text, "Increment").map_err(|_| errors::error(INCREX_NOT_FLOAT))? {
            Number::Float(value) if !value.is_finite() => return Err(errors::error(INCREX_INFINITE_INCREMENT)),
            increment => increment,
        },
    };
    let (low, high) =
        if float { (Number::Float(LongDouble::MAX.negate()), Number::Float(LongDouble::MAX)) } else { (Number::Int(i64::MIN), Number::Int(i64::MAX)) };
    let low = options.lbound.map_or(Ok(low), |text| number(text, "LBOUND"))?;
    let high = options.ubound.map_or(Ok(high), |text| number(text, "UBOUND"))?;
    if compare_numbers(low, high).is_gt() {
        return Err(errors::error(INCREX_BOUNDS));
    }
    let (persist, expire_at) = match options.ttl {
        None => (false, None),
        Some(IncrexTtl::Persist) => (true, None),
        Some(IncrexTtl::Expire(form, value)) => (false, Some(form.expire_at(value, now_ms, "increx")?)),
    };
    Ok(Increx { increment, bounds: (low, high), saturate: options.saturate, persist, expire_at, enx: options.enx })
}

fn compare_numbers(a: Number, b: Number) -> std::cmp::Ordering {
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => a.cmp(&b),
        (Number::Float(a), Number::Float(b)) => long_double::compare(a, b),
        _ => unreachable!("INCREX compares numbers of one kind"),
    }
}

/// INCREX's arithmetic: the new value and the increment applied, or None when the result
/// falls outside the bounds and SATURATE was not asked for.
fn increx_apply(current: Number, request: &Increx) -> Result<Option<(Number, Number)>, Frame> {
    let (low, high) = request.bounds;
    match (current, request.increment, low, high) {
        (Number::Int(current), Number::Int(increment), Number::Int(low), Number::Int(high)) => {
            let exact = current as i128 + increment as i128;
            let new = if exact < low as i128 || exact > high as i128 {
                if !request.saturate {
                    return Ok(None);
                }
                exact.clamp(low as i128, high as i128)
            } else {
                exact
            };
            let delta = i64::try_from(new - current as i128).map_err(|_| errors::error(INCREX_DELTA_OVERFLOW))?;
            Ok(Some((Number::Int(new as i64), Number::Int(delta))))
        }
        (Number::Float(current), Number::Float(increment), Number::Float(low), Number::Float(high)) => {
            let mut new = long_double::add(current, increment);
            if new == LongDouble::NaN {
                return Err(errors::error(errors::INCREMENT_NAN_OR_INFINITY));
            }
            if long_double::compare(new, low).is_lt() || long_double::compare(new, high).is_gt() {
                if !request.saturate {
                    return Ok(None);
                }
                new = if long_double::compare(new, low).is_lt() { low } else { high };
            }
            let delta = long_double::sub(new, current);
            if !delta.is_finite() {
                return Err(errors::error(errors::INCREMENT_NAN_OR_INFINITY));
            }
            Ok(Some((Number::Float(new), Number::Float(delta))))
        }
        _ => unreachable!("INCREX's numbers are all of the increment's kind"),
    }
}

/// INCREX's reply item: an integer, or a float as a bulk string (RESP2) or a double (RESP3).
fn increx_item(number: Number, proto: shoal_resp::Protocol) -> Frame {
    match number {
        Number::Int(n) => Frame::Integer(n),
        Number::Float(value) => {
            let text = long_double::format_human(value);
            match proto {
                shoal_resp::Protocol::Resp3 => Frame::Double(text.parse().unwrap_or(0.0)),
                shoal_resp::Protocol::Resp2 => Frame::Bulk(Bytes::from(text)),
            }
        }
    }
}

/// INCREX key [BYFLOAT increment | BYINT increment] [LBOUND lowerbound] [UBOUND upperbound]
///     [SATURATE] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST] [ENX]
fn increx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let request = match parse_increx(args, now) {
        Ok(request) => request,
        Err(e) => return e,
    };
    let float = matches!(request.increment, Number::Float(_));
    let key = &args[1];
    let proto = ctx.proto;
    let db = ctx.db();
    let current = match db.lookup_write(key, now) {
        None if float => Number::Float(LongDouble::ZERO),
        None => Number::Int(0),
        Some(entry) => match &entry.value {
            Value::Str(s) if float => match s.with_bytes(long_double::parse) {
                Some(value) if value.is_finite() => Number::Float(value),
                Some(_) => return errors::error(INCREX_INFINITE_VALUE),
                None => return errors::error(errors::NOT_FLOAT),
            },
            Value::Str(s) => match s.as_i64() {
                Some(n) => Number::Int(n),
                None => return errors::error(errors::NOT_INTEGER),
            },
            #[allow(unreachable_patterns)]
            _ => return errors::wrong_type(),
        },
    };
    let (new, delta) = match increx_apply(current, &request) {
        Err(e) => return e,
        // Out of bounds: nothing changes, not even the TTL.
        Ok(None) => {
            return Frame::Array(vec![increx_item(current, proto), increx_item(if float { Number::Float(LongDouble::ZERO) } else { Number::Int(0) }, proto)])
        }
        Ok(Some(applied)) => applied,
    };
    let had_ttl = db.expire_at(key).is_some();
    let value = match new {
        Number::Int(n) => Str::Int(n),
        // Stored as printed, as INCRBYFLOAT stores it.
        Number::Float(value) => printed_float(&long_double::format_human(value)),
    };
    db.set_keep_ttl(key, Value::Str(value), now);
    db.add_changes(1);
    // The increment's event, then the TTL's; an expiry already past deletes the key and
    // raises `del` alone.
    let ttl_event = match request.expire_at {
        None if request.persist && had_ttl => {
            db.set_expire(key, None);
            Some("persist")
        }
        None => None,
        Some(_) if request.enx && had_ttl => None,
        Some(at) if db.expiry_passed(at as i64, now) => {
            db.remove(key);
            ctx.notify(notify::GENERIC, "del", key);
            return Frame::Array(vec![increx_item(new, proto), increx_item(delta, proto)]);
        }
        Some(at) => {
            db.set_expire(key, Some(at));
            Some("expire")
        }
    };
    ctx.notify(notify::STRING, if float { "incrbyfloat" } else { "incrby" }, key);
    if let Some(event) = ttl_event {
        ctx.notify(notify::GENERIC, event, key);
    }
    Frame::Array(vec![increx_item(new, proto), increx_item(delta, proto)])
}

/// The byte range GETRANGE returns from a string of `len` bytes, as Redis computes it:
/// negative indexes count from the end, both ends are clamped, and an empty range is None.
fn substring_range(len: usize, start: i64, end: i64) -> Option<std::ops::RangeInclusive<usize>> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    let start = if start < 0 { len.saturating_add(start) } else { start }.max(0);
    let end = if end < 0 { len.saturating_add(end) } else { end }.max(0).min(len - 1);
    (len > 0 && start <= end).then_some(start as usize..=end as usize)
}

/// The bytes of the string at `key` from `start` to `end`, inclusive; empty when missing.
pub fn op_getrange(db: &mut Db, key: &[u8], start: i64, end: i64, now_ms: u64) -> Result<Bytes, Frame> {
    match db.lookup_read(key, now_ms) {
        None => Ok(Bytes::new()),
        Some(entry) => match &entry.value {
            Value::Str(s) => Ok(s.with_bytes(|bytes| match substring_range(bytes.len(), start, end) {
                Some(range) => Bytes::copy_from_slice(&bytes[range]),
                None => Bytes::new(),
            })),
            #[allow(unreachable_patterns)]
            _ => Err(errors::wrong_type()),
        },
    }
}

/// GETRANGE key start end
/// (also SUBSTR key start end)
fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (start, end) = match (args::parse_i64(&args[2]), args::parse_i64(&args[3])) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let now = ctx.now_ms;
    ctx::reply(op_getrange(ctx.db(), &args[1], start, end, now), Frame::Bulk)
}

/// Writes `value` into the string at `key` from byte `offset` on, padding with zero bytes,
/// and returns the new length. An empty `value` changes nothing (and creates no key); the
/// value becomes raw and keeps its TTL.
pub fn op_setrange(db: &mut Db, key: &[u8], offset: u64, value: &[u8], len_max: u64, now_ms: u64) -> Result<usize, Frame> {
    match db.lookup_write(key, now_ms) {
        None => {
            if value.is_empty() {
                return Ok(0);
            }
            check_string_length(offset, value.len() as u64, len_max)?;
            let offset = offset as usize;
            let mut bytes = vec![0u8; offset + value.len()];
            bytes[offset..].copy_from_slice(value);
            let len = bytes.len();
            db.set(key, Value::Str(Str::from_vec(bytes)), now_ms);
            db.add_changes(1);
            Ok(len)
        }
        Some(entry) => match &mut entry.value {
            Value::Str(s) => {
                if value.is_empty() {
                    return Ok(s.len());
                }
                check_string_length(offset, value.len() as u64, len_max)?;
                let offset = offset as usize;
                let bytes = s.make_raw();
                let end = offset + value.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[offset..end].copy_from_slice(value);
                let len = bytes.len();
                db.add_changes(1);
                Ok(len)
            }
            #[allow(unreachable_patterns)]
            _ => Err(errors::wrong_type()),
        },
    }
}

/// SETRANGE key offset value
fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let offset = match args::parse_i64(&args[2]) {
        Ok(offset) if offset < 0 => return errors::error(errors::OFFSET_OUT_OF_RANGE),
        Ok(offset) => offset as u64,
        Err(e) => return e,
    };
    let (now, len_max) = (ctx.now_ms, ctx.settings.proto_max_bulk_len);
    let len = op_setrange(ctx.db(), &args[1], offset, &args[3], len_max, now);
    // An empty value changes nothing (Redis returns before it notifies).
    if len.is_ok() && !args[3].is_empty() {
        ctx.notify(notify::STRING, "setrange", &args[1]);
    }
    ctx::reply(len, args::int)
}

/// LCS's options.
#[derive(Clone, Copy, Debug, Default)]
struct LcsOptions {
    len: bool,
    idx: bool,
    with_match_len: bool,
    match_len_min: u64,
}

fn parse_lcs_options(args: &[Bytes]) -> Result<LcsOptions, Frame> {
    let mut options = LcsOptions::default();
    let mut i = 3;
    while i < args.len() {
        let arg = &args[i];
        if is(arg, "idx") {
            options.idx = true;
        } else if is(arg, "len") {
            options.len = true;
        } else if is(arg, "withmatchlen") {
            options.with_match_len = true;
        } else if is(arg, "minmatchlen") && i + 1 < args.len() {
            options.match_len_min = args::parse_i64(&args[i + 1])?.max(0) as u64;
            i += 1;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    if options.idx && options.len {
        return Err(errors::error(errors::LCS_IDX_AND_LEN));
    }
    Ok(options)
}

/// A value LCS compares: a missing key is an empty string; Err when the key holds another type.
fn op_lcs_value(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Bytes, ()> {
    op_get(db, key, now_ms).map(Option::unwrap_or_default).map_err(drop)
}

/// The LCS reply for two values read under the command's locks. As Redis, the types are
/// checked before the options are parsed.
fn lcs_reply(a: Result<Bytes, ()>, b: Result<Bytes, ()>, args: &[Bytes], table_bytes_max: u64) -> Frame {
    let (Ok(a), Ok(b)) = (a, b) else {
        return errors::error(errors::LCS_WRONG_TYPE);
    };
    match parse_lcs_options(args).and_then(|options| lcs_compute(&a, &b, options, table_bytes_max)) {
        Ok(frame) | Err(frame) => frame,
    }
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]
fn lcs(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, table_bytes_max) = (ctx.now_ms, ctx.settings.proto_max_bulk_len);
    let db = ctx.db();
    let a = op_lcs_value(db, &args[1], now);
    let b = op_lcs_value(db, &args[2], now);
    lcs_reply(a, b, args, table_bytes_max)
}

/// LCS over two cores: one hop reads both values (and the table bound) under the locks,
/// then the coordinator computes.
fn lcs_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let keys = args[1..3].iter().cloned().enumerate().map(|(i, key)| (i + 1, key));
        let groups = ctx::group_by_shard(coordinator.shard_count(), keys);
        let results = ctx::hop_per_shard(coordinator, groups, |ctx, keys| {
            let (now, table_bytes_max) = (ctx.now_ms, ctx.settings.proto_max_bulk_len);
            let db = ctx.db();
            (keys.iter().map(|key| op_lcs_value(db, key, now)).collect::<Vec<_>>(), table_bytes_max)
        })
        .await;
        let mut values = [Ok(Bytes::new()), Ok(Bytes::new())];
        let mut table_bytes_max = 0;
        for (indexes, (found, bound)) in results {
            table_bytes_max = bound;
            for (index, value) in indexes.into_iter().zip(found) {
                values[index - 1] = value;
            }
        }
        let [a, b] = values;
        lcs_reply(a, b, &args, table_bytes_max)
    }
    .boxed_local()
}

/// Redis's LCS: a table of the LCS lengths of every pair of prefixes, then a walk back from
/// the end that collects the common string and the matching ranges. On a tie the walk steps
/// back in `b`, as Redis's does, so IDX reports the same ranges.
///
/// The table takes O(len(a) * len(b)) memory: 4 bytes a cell. Like Redis (7.0.x and 7.2),
/// we refuse it when it would exceed proto-max-bulk-len, 512 MiB by default. That bounds
/// what one command can take from a core, and its time: up to some 134 million cells at the
/// default, a fraction of a second during which the coordinating core runs nothing else
/// (Redis blocks its one thread likewise).
fn lcs_compute(a: &[u8], b: &[u8], options: LcsOptions, table_bytes_max: u64) -> Result<Frame, Frame> {
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Err(errors::error(errors::LCS_STRING_TOO_LONG));
    }
    let table_bytes = (a.len() as u128 + 1) * (b.len() as u128 + 1) * std::mem::size_of::<u32>() as u128;
    if table_bytes > table_bytes_max as u128 {
        return Err(errors::error(errors::LCS_TABLE_TOO_LARGE));
    }
    let width = b.len() + 1;
    let cells = (a.len() + 1) * width;
    if options.len {
        // The length needs no walk back, so two rows of the table are enough.
        let mut previous = vec![0u32; width];
        let mut current = vec![0u32; width];
        for &x in a {
            for (j, &y) in b.iter().enumerate() {
                current[j + 1] = if x == y { previous[j] + 1 } else { previous[j + 1].max(current[j]) };
            }
            std::mem::swap(&mut previous, &mut current);
        }
        return Ok(Frame::Integer(previous[b.len()] as i64));
    }
    let mut table: Vec<u32> = Vec::new();
    if table.try_reserve_exact(cells).is_err() {
        return Err(errors::error(errors::LCS_ALLOCATION_FAILED));
    }
    table.resize(cells, 0);
    for (i, &x) in a.iter().enumerate() {
        let (done, rest) = table.split_at_mut((i + 1) * width);
        let previous = &done[i * width..];
        let current = &mut rest[..width];
        for (j, &y) in b.iter().enumerate() {
            current[j + 1] = if x == y { previous[j] + 1 } else { previous[j + 1].max(current[j]) };
        }
    }
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(a.len(), b.len()) as usize;
    let mut common = vec![0u8; total];
    let mut matches = Vec::new();
    // The range being collected, backwards; `a_start == a.len()` means none (Redis's sentinel).
    let none = a.len();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (none, 0, 0, 0);
    let (mut i, mut j, mut left) = (a.len(), b.len(), total);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[left - 1] = a[i - 1];
            if a_start == none {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            // A range that reached the start of either string ends here.
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            left -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != none {
                emit = true;
            }
        }
        if emit {
            let match_len = a_end - a_start + 1;
            if options.idx && match_len as u64 >= options.match_len_min {
                let mut item = vec![Frame::Array(vec![args::int(a_start), args::int(a_end)]), Frame::Array(vec![args::int(b_start), args::int(b_end)])];
                if options.with_match_len {
                    item.push(args::int(match_len));
                }
                matches.push(Frame::Array(item));
            }
            a_start = none;
        }
    }
    if options.idx {
        return Ok(Frame::Map(vec![(args::bulk_str("matches"), Frame::Array(matches)), (args::bulk_str("len"), args::int(total))]));
    }
    Ok(Frame::Bulk(Bytes::from(common)))
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
    // The name and the pairs make an odd count. (Not `is_multiple_of`: it is newer than the
    // workspace's rust-version.)
    if args.len() % 2 == 1 {
        Ok(())
    } else {
        Err(errors::wrong_arity(name))
    }
}

/// Sets every (key, value) pair; `pairs` alternates keys and values.
fn op_mset(ctx: &mut Ctx, pairs: &[Bytes]) {
    let now = ctx.now_ms;
    for pair in pairs.chunks_exact(2) {
        ctx.db().set(&pair[0], Value::Str(Str::from_bytes(&pair[1])), now);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    // One change per pair, as Redis counts MSET.
    ctx.db().add_changes((pairs.len() / 2) as u64);
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
        let key_groups: Vec<(usize, Vec<(usize, Bytes)>)> = groups.iter().map(|(shard, pairs)| (*shard, pairs.iter().step_by(2).cloned().collect())).collect();
        let exists = ctx::hop_per_shard(coordinator, key_groups, |ctx, keys| op_any_exists(ctx, &keys)).await;
        if exists.iter().any(|(_, found)| *found) {
            return Frame::Integer(0);
        }
        ctx::hop_per_shard(coordinator, groups, |ctx, pairs| op_mset(ctx, &pairs)).await;
        Frame::Integer(1)
    }
    .boxed_local()
}

/// MSETEX's request: where its pairs end and its options.
struct MsetexRequest<'a> {
    pairs_end: usize,
    options: StringOptions<'a>,
}

/// MSETEX numkeys key value [key value ...] [NX | XX] [EX seconds | PX milliseconds |
/// EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL] (Redis 8.4): numkeys in
/// 1..=2^31-1, then SET's options but GET.
fn parse_msetex(args: &[Bytes]) -> Result<MsetexRequest<'_>, Frame> {
    let numkeys = match args::parse_i64(&args[1]) {
        Ok(n) if (1..=i32::MAX as i64).contains(&n) => n as usize,
        _ => return Err(errors::error("ERR invalid numkeys value")),
    };
    let pairs_end = 2 + 2 * numkeys;
    if pairs_end > args.len() {
        return Err(errors::error("ERR wrong number of key-value pairs"));
    }
    let options = parse_string_options(args, OptionsOf::Msetex { from: pairs_end })?;
    Ok(MsetexRequest { pairs_end, options })
}

/// Where MSETEX's arguments end its pairs (for its log form), if it parses.
pub fn msetex_pairs_end(args: &[Bytes]) -> Option<usize> {
    parse_msetex(args).ok().map(|request| request.pairs_end)
}

fn msetex_keys(args: &[Bytes]) -> Vec<usize> {
    let numkeys = args.get(1).and_then(|n| std::str::from_utf8(n).ok()).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
    (0..numkeys).map(|i| 2 + 2 * i).take_while(|&at| at < args.len()).collect()
}

/// MSETEX's TTL for every key, or its error.
fn msetex_ttl(request: &MsetexRequest, now_ms: u64) -> Result<Ttl, Frame> {
    Ok(match request.options.expire {
        Some((form, value)) => Ttl::At(form.expire_at(value, now_ms, "msetex")?),
        None if request.options.keep_ttl => Ttl::Keep,
        None => Ttl::Clear,
    })
}

/// Whether MSETEX's condition holds for `keys` on this core: none exists (NX), all exist
/// (XX), or no condition.
fn op_msetex_allowed(ctx: &mut Ctx, keys: &[Bytes], must_exist: Option<bool>) -> bool {
    let now = ctx.now_ms;
    let db = ctx.db();
    must_exist.is_none_or(|must_exist| keys.iter().all(|key| db.contains(key, now) == must_exist))
}

/// MSETEX's condition: whether its keys must exist (XX) or must not (NX); None: no condition.
fn msetex_presence(condition: Condition) -> Option<bool> {
    match condition {
        Condition::Always => None,
        Condition::IfAbsent => Some(false),
        Condition::IfPresent => Some(true),
        Condition::Compare(_) => unreachable!("MSETEX takes no IFEQ, IFNE, IFDEQ or IFDNE"),
    }
}

/// Sets MSETEX's pairs on this core with `ttl`: per key `set`, and `expire` with a TTL.
fn op_msetex(ctx: &mut Ctx, pairs: &[Bytes], ttl: Ttl) {
    let now = ctx.now_ms;
    for pair in pairs.chunks_exact(2) {
        op_set_string(ctx.db(), &pair[0], &pair[1], ttl, now);
        ctx.notify(notify::STRING, "set", &pair[0]);
        if matches!(ttl, Ttl::At(_)) {
            ctx.notify(notify::GENERIC, "expire", &pair[0]);
        }
    }
}

fn msetex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let request = match parse_msetex(args) {
        Ok(request) => request,
        Err(error) => return error,
    };
    let ttl = match msetex_ttl(&request, ctx.now_ms) {
        Ok(ttl) => ttl,
        Err(error) => return error,
    };
    let pairs = &args[2..request.pairs_end];
    let keys: Vec<Bytes> = pairs.iter().step_by(2).cloned().collect();
    if !op_msetex_allowed(ctx, &keys, msetex_presence(request.options.condition)) {
        return Frame::Integer(0);
    }
    op_msetex(ctx, pairs, ttl);
    Frame::Integer(1)
}

fn msetex_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> futures::future::LocalBoxFuture<'_, Frame> {
    async move {
        let (pairs_end, must_exist, expire, keep_ttl) = match parse_msetex(&args) {
            Ok(request) => (
                request.pairs_end,
                msetex_presence(request.options.condition),
                request.options.expire.map(|(form, value)| (form, Bytes::copy_from_slice(value))),
                request.options.keep_ttl,
            ),
            Err(error) => return error,
        };
        // MSET's shape (name, then pairs), for grouping by core.
        let mut pairs = vec![args[0].clone()];
        pairs.extend(args[2..pairs_end].iter().cloned());
        let groups = pairs_by_shard(coordinator.shard_count(), &pairs);
        // First hop: every core checks the condition and works out the TTL at its time;
        // the second writes, all under the same locks.
        let key_groups: Vec<(usize, Vec<(usize, Bytes)>)> = groups.iter().map(|(shard, pairs)| (*shard, pairs.iter().step_by(2).cloned().collect())).collect();
        let checks = ctx::hop_per_shard(coordinator, key_groups, move |ctx, keys| {
            let ttl = match &expire {
                Some((form, value)) => form.expire_at(value, ctx.now_ms, "msetex").map(Ttl::At),
                None if keep_ttl => Ok(Ttl::Keep),
                None => Ok(Ttl::Clear),
            };
            (ttl, op_msetex_allowed(ctx, &keys, must_exist))
        })
        .await;
        let mut ttl = Ttl::Clear;
        for (_, (checked, allowed)) in &checks {
            match checked {
                Err(error) => return error.clone(),
                Ok(checked) => ttl = *checked,
            }
            if !allowed {
                return Frame::Integer(0);
            }
        }
        ctx::hop_per_shard(coordinator, groups, move |ctx, pairs| op_msetex(ctx, &pairs, ttl)).await;
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
    db.add_changes(1);
    Ok(next)
}

fn incr_generic(ctx: &mut Ctx, key: &[u8], delta: i64) -> Frame {
    let now = ctx.now_ms;
    let value = op_incr(ctx.db(), key, delta, now);
    if value.is_ok() {
        ctx.notify(notify::STRING, "incrby", key);
    }
    ctx::reply(value, Frame::Integer)
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
    use crate::testing::replies::*;
    use crate::testing::{check, check_at, Harness};
    use shoal_resp::Frame;

    /// Like `check`, with proto-max-bulk-len set to `len_max`.
    fn check_with_len_max(len_max: u64, commands: &[&[&str]], expected: &[Frame]) {
        let mut harness = Harness::default();
        harness.settings.proto_max_bulk_len = len_max;
        assert_eq!(commands.len(), expected.len(), "one expected reply per command");
        for (command, want) in commands.iter().zip(expected) {
            assert_eq!(&harness.run(command), want, "reply to {command:?}");
        }
    }

    const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    const NOT_FLOAT: &str = "ERR value is not a valid float";
    const SYNTAX: &str = "ERR syntax error";

    #[test]
    fn set_then_get_returns_the_value() {
        check(&[&["SET", "k", "v"], &["GET", "k"]], &[Frame::Simple("OK".into()), Frame::Bulk("v".into())]);
    }

    #[test]
    fn set_nx_on_existing_key_is_nil() {
        check(&[&["SET", "k", "v"], &["SET", "k", "w", "NX"], &["GET", "k"]], &[Frame::Simple("OK".into()), Frame::Null, Frame::Bulk("v".into())]);
    }

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const DIGEST_LENGTH: &str = "ERR must be exactly 16 hexadecimal characters";

    #[test]
    fn digest_is_xxh3_in_sixteen_lower_case_hex_digits() {
        // Redis's documentation: DIGEST of "Hello world"; Dragonfly's: of "test" and "hello".
        check(
            &[
                &["SET", "a", "Hello world"],
                &["DIGEST", "a"],
                &["SET", "b", "test"],
                &["DIGEST", "b"],
                &["SET", "c", "hello"],
                &["DIGEST", "c"],
                &["DIGEST", "missing"],
                &["RPUSH", "l", "x"],
                &["DIGEST", "l"],
            ],
            &[ok(), bulk("b6acb9d84a38ff74"), ok(), bulk("9ec9f7918d7dfc40"), ok(), bulk("9555e8555c62dcfd"), Frame::Null, int(1), err(WRONGTYPE)],
        );
        // An integer's digest is its text's, and leading zeros stay (redis/redis#14496:
        // this value's XXH3 is 0x00006c38adf31777).
        let long = "v8lf0c11xh8ymlqztfd3eeq16kfn4sspw7fqmnuuq3k3t75em5wdizgcdw7uc26nnf961u2jkfzkjytls2kwlj7626sd";
        assert_eq!(&super::value_digest(long.as_bytes()), b"00006c38adf31777");
        let harness = Harness::default();
        harness.run(&["SET", "n", "12345"]);
        assert_eq!(harness.run(&["OBJECT", "ENCODING", "n"]), bulk("int"));
        assert_eq!(harness.run(&["DIGEST", "n"]), Frame::Bulk(super::value_digest(b"12345").to_vec().into()));
    }

    #[test]
    fn set_compares_the_value_before_writing() {
        check(
            &[
                // IFEQ and IFDEQ never create; IFNE and IFDNE do.
                &["SET", "k", "v", "IFEQ", "v"],
                &["SET", "k", "v", "IFDEQ", "b6acb9d84a38ff74"],
                &["SET", "k", "v", "IFNE", "v"],
                &["GET", "k"],
                &["DEL", "k"],
                &["SET", "k", "w", "IFDNE", "short"],
                // Present: equal passes IFEQ, not IFNE.
                &["SET", "k", "x", "IFEQ", "w"],
                &["SET", "k", "y", "IFEQ", "w"],
                &["SET", "k", "y", "IFNE", "x"],
                &["SET", "k", "y", "IFNE", "z", "GET"],
                &["SET", "k", "z", "IFEQ", "nope", "GET"],
                &["GET", "k"],
            ],
            &[Frame::Null, Frame::Null, ok(), bulk("v"), int(1), ok(), ok(), Frame::Null, Frame::Null, bulk("x"), bulk("y"), bulk("y")],
        );
    }

    #[test]
    fn set_compares_digests_without_regard_to_case() {
        check(
            &[
                &["SET", "k", "Hello world"],
                &["SET", "k", "a", "IFDEQ", "B6ACB9D84A38FF74", "GET"],
                &["SET", "k", "b", "IFDEQ", "b6acb9d84a38ff74"],
                &["SET", "k", "b", "IFDNE", "ca978112ca1bbdca"],
                &["GET", "k"],
                // A digest of another length is an error once the key holds a string.
                &["SET", "k", "d", "IFDEQ", "0123"],
                &["SET", "k", "d", "IFDNE", "0123456789abcdef0"],
                &["GET", "k"],
            ],
            &[ok(), bulk("Hello world"), Frame::Null, ok(), bulk("b"), err(DIGEST_LENGTH), err(DIGEST_LENGTH), bulk("b")],
        );
        let harness = Harness::default();
        harness.run(&["SET", "k", "b"]);
        let upper = String::from_utf8(super::value_digest(b"b").to_ascii_uppercase()).unwrap();
        assert_eq!(harness.run(&["SET", "k", "c", "IFDNE", &upper]), Frame::Null);
        assert_eq!(harness.run(&["SET", "k", "c", "IFDEQ", &upper]), ok());
    }

    #[test]
    fn set_comparisons_conflict_with_other_conditions() {
        check(
            &[
                &["SET", "k", "v", "IFEQ", "a", "NX"],
                &["SET", "k", "v", "XX", "IFNE", "a"],
                &["SET", "k", "v", "IFEQ", "a", "IFNE", "b"],
                &["SET", "k", "v", "IFDEQ", "a", "IFEQ", "b"],
                &["SET", "k", "v", "IFEQ"],
                &["SET", "k", "v", "IFEQ", "a", "IFEQ", "v"],
                &["GETEX", "k", "IFEQ", "v"],
                &["MSETEX", "1", "k", "v", "IFEQ", "v"],
                // The operand is a value, even one spelled as an option.
                &["SET", "k", "EX", "IFEQ", "EX", "PX", "100"],
                &["PTTL", "k"],
                &["GET", "k"],
            ],
            &[err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), Frame::Null, err(SYNTAX), err(SYNTAX), Frame::Null, int(-2), Frame::Null],
        );
    }

    #[test]
    fn set_comparisons_need_a_string() {
        check(
            &[
                &["RPUSH", "l", "x"],
                &["SET", "l", "v", "IFNE", "x"],
                &["SET", "l", "v", "IFDEQ", "too short"],
                &["TYPE", "l"],
                &["SET", "l", "v", "XX"],
                &["TYPE", "l"],
            ],
            &[int(1), err(WRONGTYPE), err(WRONGTYPE), simple("list"), ok(), simple("string")],
        );
    }

    #[test]
    fn set_comparison_keeps_or_sets_the_ttl_as_asked() {
        check_at(
            &[
                (0, &["SET", "k", "v", "EX", "100"]),
                (0, &["SET", "k", "w", "IFEQ", "v", "KEEPTTL"]),
                (0, &["TTL", "k"]),
                (0, &["SET", "k", "x", "IFEQ", "w"]),
                (0, &["TTL", "k"]),
                (0, &["SET", "k", "y", "IFNE", "w", "PX", "50"]),
                (60, &["GET", "k"]),
            ],
            &[ok(), ok(), int(100), ok(), int(-1), ok(), Frame::Null],
        );
    }

    #[test]
    fn delex_deletes_when_the_condition_holds() {
        check(
            &[
                &["SET", "k", "v"],
                &["DELEX", "k", "IFEQ", "w"],
                &["DELEX", "k", "IFNE", "v"],
                &["DELEX", "k", "IFDNE", "9e9e3c2b2d0ab3b4"],
                &["EXISTS", "k"],
                &["SET", "k", "Hello world"],
                &["DELEX", "k", "IFDEQ", "B6ACB9D84A38FF74"],
                &["EXISTS", "k"],
                &["SET", "k", "12"],
                &["DELEX", "k", "ifeq", "12"],
                &["DELEX", "missing", "IFNE", "x"],
                &["DELEX", "missing", "IFDEQ", "short"],
            ],
            &[ok(), int(0), int(0), int(1), int(0), ok(), int(1), int(0), ok(), int(1), int(0), int(0)],
        );
    }

    #[test]
    fn compare_and_set_and_delete_raise_set_and_del_only_when_they_write() {
        let harness = Harness::notifying();
        harness.run(&["SET", "k", "v"]);
        harness.take_events();
        harness.run(&["SET", "k", "w", "IFEQ", "nope"]);
        harness.run(&["DELEX", "k", "IFNE", "v"]);
        assert_eq!(harness.take_events(), []);
        harness.run(&["SET", "k", "w", "IFEQ", "v", "EX", "10"]);
        harness.run(&["DELEX", "k", "IFEQ", "w"]);
        assert_eq!(harness.take_events(), [("set", "k"), ("expire", "k"), ("del", "k")].map(|(e, k)| (e, k.to_owned())));
    }

    #[test]
    fn delex_without_a_condition_is_del_of_any_type() {
        check(&[&["RPUSH", "l", "x"], &["DELEX", "l"], &["DELEX", "l"], &["EXISTS", "l"]], &[int(1), int(1), int(0), int(0)]);
    }

    #[test]
    fn delex_errors() {
        check(
            &[
                &["RPUSH", "l", "x"],
                &["DELEX", "l", "IFEQ", "x"],
                &["DELEX", "l", "IFEQ"],
                &["DELEX", "l", "IFEQ", "x", "y"],
                &["DELEX", "l", "IFXX", "x"],
                &["SET", "k", "v"],
                &["DELEX", "k", "IFDEQ", "0123456789abcde"],
                &["DELEX", "k"],
            ],
            &[int(1), err(WRONGTYPE), err(SYNTAX), err(SYNTAX), err(SYNTAX), ok(), err(DIGEST_LENGTH), int(1)],
        );
    }

    fn pair(a: i64, b: i64) -> Frame {
        arr(vec![int(a), int(b)])
    }

    fn float_pair(a: &str, b: &str) -> Frame {
        arr(vec![bulk(a), bulk(b)])
    }

    #[test]
    fn increx_by_int_within_bounds_or_saturating() {
        check(
            &[
                &["INCREX", "k"],
                &["INCREX", "k"],
                &["OBJECT", "ENCODING", "k"],
                &["SET", "k", "100"],
                &["INCREX", "k", "BYINT", "5"],
                &["INCREX", "k", "byint", "-10"],
                &["INCREX", "k", "BYINT", "0"],
                // Out of bounds: nothing changes; SATURATE caps.
                &["INCREX", "k", "BYINT", "10", "UBOUND", "100"],
                &["INCREX", "k", "BYINT", "10", "UBOUND", "100", "SATURATE"],
                &["INCREX", "k", "BYINT", "-200", "LBOUND", "0", "SATURATE"],
                &["INCREX", "k", "BYINT", "5", "UBOUND", "5"],
                // A value already outside the bounds: same rules.
                &["SET", "k", "50"],
                &["INCREX", "k", "BYINT", "5", "UBOUND", "30"],
                &["INCREX", "k", "LBOUND", "0", "BYINT", "5", "UBOUND", "30", "SATURATE"],
                &["INCREX", "k", "BYINT", "-25", "UBOUND", "30"],
                // A missing key out of bounds is not created.
                &["INCREX", "new", "BYINT", "5", "LBOUND", "10"],
                &["EXISTS", "new"],
            ],
            &[
                pair(1, 1),
                pair(2, 1),
                bulk("int"),
                ok(),
                pair(105, 5),
                pair(95, -10),
                pair(95, 0),
                pair(95, 0),
                pair(100, 5),
                pair(0, -100),
                pair(5, 5),
                ok(),
                pair(50, 0),
                pair(30, -20),
                pair(5, -25),
                pair(0, 0),
                int(0),
            ],
        );
    }

    #[test]
    fn increx_by_int_saturates_at_the_type_limits() {
        check(
            &[
                &["SET", "k", "9223372036854775800"],
                &["INCREX", "k", "BYINT", "9223372036854775800"],
                &["INCREX", "k", "BYINT", "9223372036854775800", "SATURATE"],
                &["SET", "k", "-9223372036854775800"],
                &["INCREX", "k", "BYINT", "-9223372036854775800", "LBOUND", "-9223372036854775808", "SATURATE"],
                &["SET", "k", "9223372036854775800"],
                &["INCREX", "k", "BYINT", "1", "SATURATE", "UBOUND", "-9223372036854775808"],
                &["GET", "k"],
            ],
            &[
                ok(),
                pair(9223372036854775800, 0),
                pair(i64::MAX, 7),
                ok(),
                pair(i64::MIN, -8),
                ok(),
                err("ERR applied increment would overflow"),
                bulk("9223372036854775800"),
            ],
        );
    }

    #[test]
    fn increx_by_float_in_long_double() {
        check(
            &[
                &["SET", "k", "1.5"],
                &["INCREX", "k", "BYFLOAT", "0.25"],
                &["INCREX", "k", "BYFLOAT", "1"],
                &["SET", "k", "10"],
                &["INCREX", "k", "BYFLOAT", "100", "UBOUND", "42.5", "SATURATE"],
                &["INCREX", "k", "BYFLOAT", "0.1", "UBOUND", "42.5"],
                &["SET", "k", "10.5"],
                &["INCREX", "k", "BYFLOAT", "0.1"],
                &["OBJECT", "ENCODING", "k"],
                &["INCREX", "new", "BYFLOAT", "15.5", "UBOUND", "10"],
                &["EXISTS", "new"],
                &["INCREX", "k", "BYFLOAT", "+inf"],
                &["SET", "k", "-inf"],
                &["INCREX", "k", "BYFLOAT", "0", "LBOUND", "-100"],
                &["SET", "k", "hello"],
                &["INCREX", "k", "BYFLOAT", "1.5"],
                &["INCREX", "k", "BYINT", "1"],
            ],
            &[
                ok(),
                float_pair("1.75", "0.25"),
                float_pair("2.75", "1"),
                ok(),
                float_pair("42.5", "32.5"),
                float_pair("42.5", "0"),
                ok(),
                float_pair("10.6", "0.1"),
                bulk("embstr"),
                float_pair("0", "0"),
                int(0),
                err("ERR BYFLOAT increment cannot be Infinity"),
                ok(),
                err("ERR value cannot be Infinity"),
                ok(),
                err("ERR value is not a valid float"),
                err("ERR value is not an integer or out of range"),
            ],
        );
    }

    #[test]
    fn increx_argument_errors() {
        let syntax = err(SYNTAX);
        let cases: &[(&[&str], Frame)] = &[
            (&["INCREX", "k", "FOO"], syntax.clone()),
            (&["INCREX", "k", "BYINT", "1", "FOO"], syntax.clone()),
            (&["INCREX", "k", "BYINT", "1", "BYFLOAT", "1.5"], syntax.clone()),
            (&["INCREX", "k", "BYINT", "1", "BYINT", "2"], syntax.clone()),
            (&["INCREX", "k", "LBOUND", "0", "LBOUND", "1"], syntax.clone()),
            (&["INCREX", "k", "SATURATE", "SATURATE"], syntax.clone()),
            (&["INCREX", "k", "EX", "10", "PX", "5000"], syntax.clone()),
            (&["INCREX", "k", "EX", "10", "PERSIST"], syntax.clone()),
            (&["INCREX", "k", "PERSIST", "ENX"], syntax.clone()),
            (&["INCREX", "k", "ENX", "ENX", "EX", "10"], syntax.clone()),
            (&["INCREX", "k", "BYINT"], syntax.clone()),
            (&["INCREX", "k", "ENX"], err("ERR ENX flag requires an expiration (EX, PX, EXAT or PXAT)")),
            (&["INCREX", "k", "BYINT", "abc"], err("ERR Increment is not an integer or out of range")),
            (&["INCREX", "k", "BYINT", "1.5"], err("ERR Increment is not an integer or out of range")),
            (&["INCREX", "k", "BYFLOAT", "abc"], err("ERR Increment is not a valid float")),
            (&["INCREX", "k", "BYINT", "1", "LBOUND", "10", "UBOUND", "5"], err("ERR LBOUND can't be greater than UBOUND")),
            (&["INCREX", "k", "BYFLOAT", "0.5", "LBOUND", "10.5", "UBOUND", "1.5"], err("ERR LBOUND can't be greater than UBOUND")),
            (&["INCREX", "k", "BYINT", "1", "EX", "0"], err("ERR invalid expire time in 'increx' command")),
            (&["INCREX", "k", "EX", "-1"], err("ERR invalid expire time in 'increx' command")),
        ];
        let harness = Harness::default();
        for (command, expected) in cases {
            assert_eq!(&harness.run(command), expected, "{command:?}");
        }
        assert_eq!(harness.run(&["EXISTS", "k"]), int(0));
        harness.run(&["RPUSH", "l", "a"]);
        assert_eq!(harness.run(&["INCREX", "l", "BYFLOAT", "1"]), err(WRONGTYPE));
    }

    #[test]
    fn increx_sets_keeps_or_removes_the_ttl() {
        check_at(
            &[
                (0, &["INCREX", "k", "BYINT", "1", "EX", "100"]),
                (0, &["TTL", "k"]),
                (0, &["INCREX", "k", "BYINT", "1"]),
                (0, &["TTL", "k"]),
                // ENX leaves an existing TTL, even one already past.
                (0, &["INCREX", "k", "BYINT", "1", "EX", "10", "ENX"]),
                (0, &["TTL", "k"]),
                (0, &["INCREX", "k", "BYINT", "1", "EXAT", "1", "ENX"]),
                (0, &["GET", "k"]),
                // Out of bounds: not even the TTL changes.
                (0, &["INCREX", "k", "BYINT", "100", "UBOUND", "10", "PERSIST"]),
                (0, &["TTL", "k"]),
                (0, &["INCREX", "k", "BYINT", "1", "PERSIST"]),
                (0, &["TTL", "k"]),
                (0, &["INCREX", "k", "BYINT", "1", "PX", "5000", "ENX"]),
                (0, &["PTTL", "k"]),
                // An expiry already past deletes the key.
                (0, &["INCREX", "k", "BYINT", "1", "PXAT", "1"]),
                (0, &["EXISTS", "k"]),
            ],
            &[
                pair(1, 1),
                int(100),
                pair(2, 1),
                int(100),
                pair(3, 1),
                int(100),
                pair(4, 1),
                bulk("4"),
                pair(4, 0),
                int(100),
                pair(5, 1),
                int(-1),
                pair(6, 1),
                int(5000),
                pair(7, 1),
                int(0),
            ],
        );
    }

    #[test]
    fn increx_raises_incrby_then_the_ttl_event() {
        let harness = Harness::notifying();
        harness.run(&["INCREX", "k", "BYINT", "5"]);
        harness.run(&["INCREX", "k", "BYFLOAT", "0.5"]);
        harness.run(&["SET", "k", "10", "EX", "100"]);
        harness.take_events();
        harness.run(&["INCREX", "k", "BYINT", "1", "PERSIST"]);
        harness.run(&["INCREX", "k", "BYINT", "1", "EX", "100"]);
        harness.run(&["INCREX", "k", "BYINT", "1", "EX", "200", "ENX"]);
        harness.run(&["INCREX", "k", "BYINT", "100", "UBOUND", "0"]);
        harness.run(&["INCREX", "k", "BYINT", "1", "EXAT", "1"]);
        let events: Vec<&str> = harness.take_events().into_iter().map(|(event, _)| event).collect();
        assert_eq!(events, ["incrby", "persist", "incrby", "expire", "incrby", "del"]);
    }

    #[test]
    fn set_with_conflicting_options_is_a_syntax_error() {
        check(
            &[&["SET", "k", "v", "NX", "XX"], &["SET", "k", "v", "EX", "1", "PX", "1"]],
            &[Frame::Error("ERR syntax error".into()), Frame::Error("ERR syntax error".into())],
        );
    }

    #[test]
    fn set_with_zero_expire_is_invalid() {
        check(&[&["SET", "k", "v", "EX", "0"]], &[Frame::Error("ERR invalid expire time in 'set' command".into())]);
    }

    #[test]
    fn set_repeating_an_option_keeps_the_last_expiry() {
        check(
            &[
                &["SET", "k", "v", "EX", "10", "EX", "20"],
                &["TTL", "k"],
                &["SET", "k", "w", "KEEPTTL", "KEEPTTL"],
                &["TTL", "k"],
                &["SET", "k", "x", "NX", "NX"],
            ],
            &[ok(), int(20), ok(), int(20), Frame::Null],
        );
    }

    #[test]
    fn set_checks_the_expire_value_only_after_every_option() {
        check(
            &[
                &["SET", "k", "v", "EX", "abc", "FOO"],
                &["SET", "k", "v", "EX", "abc"],
                &["SET", "k", "v", "PX", "0", "NX"],
                &["SET", "k", "v", "EX", "10", "PX"],
                &["SET", "k", "v", "KEEPTTL", "EX", "1"],
            ],
            &[err(SYNTAX), err(NOT_INTEGER), err("ERR invalid expire time in 'set' command"), err(SYNTAX), err(SYNTAX)],
        );
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
        check(
            &[&["SET", "n", "9223372036854775807"], &["INCR", "n"]],
            &[Frame::Simple("OK".into()), Frame::Error("ERR increment or decrement would overflow".into())],
        );
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

    #[test]
    fn new_commands_check_their_arity_from_the_table() {
        let cases: &[&[&str]] = &[
            &["SETNX", "k"],
            &["SETEX", "k", "10"],
            &["PSETEX", "k", "10", "v", "x"],
            &["GETSET", "k"],
            &["GETDEL"],
            &["GETDEL", "k", "x"],
            &["GETEX"],
            &["APPEND", "k"],
            &["STRLEN"],
            &["INCRBYFLOAT", "k"],
            &["GETRANGE", "k", "0"],
            &["SUBSTR", "k", "0"],
            &["SETRANGE", "k", "0"],
            &["LCS", "a"],
        ];
        for command in cases {
            let name = command[0].to_ascii_lowercase();
            check(&[command], &[err(&format!("ERR wrong number of arguments for '{name}' command"))]);
        }
    }

    #[test]
    fn setnx_sets_a_missing_key_only() {
        check(
            &[&["SETNX", "k", "v"], &["SETNX", "k", "w"], &["GET", "k"], &["OBJECT", "ENCODING", "k"], &["SETNX", "n", "12"], &["OBJECT", "ENCODING", "n"]],
            &[int(1), int(0), bulk("v"), bulk("embstr"), int(1), bulk("int")],
        );
    }

    #[test]
    fn setnx_on_an_expired_key_sets_it() {
        check_at(
            &[(0, &["SET", "k", "v", "PX", "100"]), (101, &["SETNX", "k", "w"]), (101, &["GET", "k"]), (101, &["TTL", "k"])],
            &[ok(), int(1), bulk("w"), int(-1)],
        );
    }

    #[test]
    fn setex_sets_the_value_and_a_ttl_in_seconds() {
        check_at(
            &[(0, &["SET", "k", "old", "EX", "1000"]), (0, &["SETEX", "k", "10", "v"]), (0, &["TTL", "k"]), (10_000, &["GET", "k"]), (10_001, &["GET", "k"])],
            &[ok(), ok(), int(10), bulk("v"), Frame::Null],
        );
    }

    #[test]
    fn psetex_sets_the_ttl_in_milliseconds() {
        check_at(
            &[(0, &["PSETEX", "k", "1500", "v"]), (0, &["PTTL", "k"]), (1500, &["GET", "k"]), (1501, &["EXISTS", "k"])],
            &[ok(), int(1500), bulk("v"), int(0)],
        );
    }

    #[test]
    fn setex_with_a_zero_negative_or_overflowing_ttl_is_invalid() {
        let setex = "ERR invalid expire time in 'setex' command";
        let psetex = "ERR invalid expire time in 'psetex' command";
        check(
            &[
                &["SETEX", "k", "0", "v"],
                &["SETEX", "k", "-1", "v"],
                &["SETEX", "k", "9223372036854775807", "v"],
                &["SETEX", "k", "9223372036854775", "v"],
                &["PSETEX", "k", "0", "v"],
                &["PSETEX", "k", "9223372036854775807", "v"],
                &["SETEX", "k", "abc", "v"],
                &["SETEX", "k", "1.5", "v"],
                &["EXISTS", "k"],
            ],
            &[err(setex), err(setex), err(setex), err(setex), err(psetex), err(psetex), err(NOT_INTEGER), err(NOT_INTEGER), int(0)],
        );
    }

    #[test]
    fn getset_returns_the_old_value_and_clears_the_ttl() {
        check(
            &[&["SETEX", "k", "100", "v"], &["GETSET", "k", "123"], &["TTL", "k"], &["OBJECT", "ENCODING", "k"], &["GETSET", "new", "x"], &["GET", "new"]],
            &[ok(), bulk("v"), int(-1), bulk("int"), Frame::Null, bulk("x")],
        );
    }

    #[test]
    fn getdel_returns_the_value_and_removes_the_key() {
        check(&[&["SET", "k", "v"], &["GETDEL", "k"], &["EXISTS", "k"], &["GETDEL", "k"]], &[ok(), bulk("v"), int(0), Frame::Null]);
    }

    #[test]
    fn getex_without_options_reads_and_keeps_the_ttl() {
        check(&[&["SETEX", "k", "100", "v"], &["GETEX", "k"], &["TTL", "k"], &["GETEX", "missing"]], &[ok(), bulk("v"), int(100), Frame::Null]);
    }

    #[test]
    fn getex_sets_relative_and_absolute_expiries() {
        let now_s = Harness::default().now_ms / 1000;
        let exat = (now_s + 50).to_string();
        let pxat = ((now_s + 60) * 1000).to_string();
        check(
            &[
                &["SET", "k", "v"],
                &["GETEX", "k", "EX", "100"],
                &["TTL", "k"],
                &["GETEX", "k", "px", "2500"],
                &["PTTL", "k"],
                &["GETEX", "k", "EXAT", &exat],
                &["TTL", "k"],
                &["GETEX", "k", "PXAT", &pxat],
                &["TTL", "k"],
                &["GETEX", "k", "PERSIST"],
                &["TTL", "k"],
            ],
            &[ok(), bulk("v"), int(100), bulk("v"), int(2500), bulk("v"), int(50), bulk("v"), int(60), bulk("v"), int(-1)],
        );
    }

    #[test]
    fn getex_with_a_past_absolute_expiry_returns_the_value_then_deletes_the_key() {
        check(
            &[&["SET", "k", "v"], &["GETEX", "k", "EXAT", "1"], &["EXISTS", "k"], &["SET", "k", "v"], &["GETEX", "k", "PXAT", "1"], &["EXISTS", "k"]],
            &[ok(), bulk("v"), int(0), ok(), bulk("v"), int(0)],
        );
    }

    #[test]
    fn getex_expiry_takes_effect_at_its_time() {
        check_at(
            &[(0, &["SET", "k", "v"]), (0, &["GETEX", "k", "PX", "100"]), (100, &["GET", "k"]), (101, &["GET", "k"])],
            &[ok(), bulk("v"), bulk("v"), Frame::Null],
        );
    }

    #[test]
    fn getex_repeating_the_same_expiry_option_keeps_the_last() {
        check(
            &[&["SET", "k", "v"], &["GETEX", "k", "EX", "10", "EX", "20"], &["TTL", "k"], &["GETEX", "k", "PERSIST", "PERSIST"], &["TTL", "k"]],
            &[ok(), bulk("v"), int(20), bulk("v"), int(-1)],
        );
    }

    #[test]
    fn getex_with_conflicting_or_unknown_options_is_a_syntax_error() {
        check(
            &[
                &["SET", "k", "v"],
                &["GETEX", "k", "EX", "10", "PX", "10"],
                &["GETEX", "k", "PERSIST", "EX", "10"],
                &["GETEX", "k", "EX", "10", "PERSIST"],
                &["GETEX", "k", "EXAT", "10", "EX", "5"],
                &["GETEX", "k", "KEEPTTL"],
                &["GETEX", "k", "NX"],
                &["GETEX", "k", "GET"],
                &["GETEX", "k", "EX"],
                &["GETEX", "k", "FOO"],
            ],
            &[ok(), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX), err(SYNTAX)],
        );
    }

    #[test]
    fn getex_checks_the_expire_value_only_for_an_existing_key() {
        check(
            &[
                &["GETEX", "missing", "EX", "abc"],
                &["GETEX", "missing", "EX", "0"],
                &["SET", "k", "v"],
                &["GETEX", "k", "EX", "abc"],
                &["GETEX", "k", "PX", "0"],
                &["GETEX", "k", "EX", "-1"],
                &["GETEX", "k", "EX", "9223372036854775807"],
                &["TTL", "k"],
            ],
            &[
                Frame::Null,
                Frame::Null,
                ok(),
                err(NOT_INTEGER),
                err("ERR invalid expire time in 'getex' command"),
                err("ERR invalid expire time in 'getex' command"),
                err("ERR invalid expire time in 'getex' command"),
                int(-1),
            ],
        );
    }

    #[test]
    fn append_creates_a_missing_key_with_the_tail_encoded_as_set_would() {
        check(
            &[&["APPEND", "k", "12"], &["OBJECT", "ENCODING", "k"], &["APPEND", "e", ""], &["EXISTS", "e"], &["STRLEN", "e"], &["OBJECT", "ENCODING", "e"]],
            &[int(2), bulk("int"), int(0), int(1), int(0), bulk("embstr")],
        );
    }

    #[test]
    fn append_returns_the_new_length_makes_the_value_raw_and_keeps_the_ttl() {
        check(
            &[&["SETEX", "k", "100", "12"], &["APPEND", "k", ""], &["OBJECT", "ENCODING", "k"], &["APPEND", "k", "3"], &["GET", "k"], &["TTL", "k"]],
            &[ok(), int(2), bulk("raw"), int(3), bulk("123"), int(100)],
        );
    }

    #[test]
    fn append_past_proto_max_bulk_len_is_refused() {
        check_with_len_max(
            8,
            &[&["SET", "k", "12345"], &["APPEND", "k", "678"], &["APPEND", "k", "9"], &["GET", "k"]],
            &[ok(), int(8), err("ERR string exceeds maximum allowed size (proto-max-bulk-len)"), bulk("12345678")],
        );
    }

    #[test]
    fn strlen_counts_the_bytes_of_any_encoding() {
        check(
            &[&["SET", "i", "-12345"], &["STRLEN", "i"], &["SET", "s", "hello"], &["STRLEN", "s"], &["SET", "e", ""], &["STRLEN", "e"], &["STRLEN", "missing"]],
            &[ok(), int(6), ok(), int(5), ok(), int(0), int(0)],
        );
    }

    #[test]
    fn incrbyfloat_on_a_missing_key_starts_at_zero() {
        check(&[&["INCRBYFLOAT", "f", "1"], &["INCRBYFLOAT", "f", "0.25"], &["GET", "f"]], &[bulk("1"), bulk("1.25"), bulk("1.25")]);
    }

    #[test]
    fn incrbyfloat_adds_in_extended_precision_as_redis_does() {
        check(
            &[
                &["INCRBYFLOAT", "f", "10.5"],
                &["INCRBYFLOAT", "f", "0.1"],
                &["SET", "g", "17179869184"],
                &["INCRBYFLOAT", "g", "1.5"],
                &["SET", "h", "5.0e3"],
                &["INCRBYFLOAT", "h", "2.0e2"],
                &["INCRBYFLOAT", "big", "1e20"],
                &["INCRBYFLOAT", "precise", "1.23456789012345678901234567890"],
                &["INCRBYFLOAT", "tie", "0.000003814697265625"],
            ],
            &[
                bulk("10.5"),
                bulk("10.6"),
                ok(),
                bulk("17179869185.5"),
                ok(),
                bulk("5200"),
                bulk("100000000000000000000"),
                bulk("1.23456789012345679"),
                bulk("0.00000381469726562"),
            ],
        );
    }

    #[test]
    fn incrbyfloat_never_prints_negative_zero() {
        check(
            &[
                &["SET", "z", "1"],
                &["INCRBYFLOAT", "z", "-1.1"],
                &["INCRBYFLOAT", "z", "0.1"],
                &["INCRBYFLOAT", "tiny", "-1e-20"],
                &["INCRBYFLOAT", "nz", "-0"],
            ],
            &[ok(), bulk("-0.1"), bulk("0"), bulk("0"), bulk("0")],
        );
    }

    #[test]
    fn incrbyfloat_accepts_what_strtold_accepts() {
        check(
            &[
                &["INCRBYFLOAT", "f", "0x10"],
                &["INCRBYFLOAT", "f", "0x1p-2"],
                &["INCRBYFLOAT", "f", ".5"],
                &["INCRBYFLOAT", "f", "+5."],
                &["INCRBYFLOAT", "f", "1E-4950"],
            ],
            &[bulk("16"), bulk("16.25"), bulk("16.75"), bulk("21.75"), bulk("21.75")],
        );
    }

    #[test]
    fn incrbyfloat_to_nan_or_infinity_is_refused_and_changes_nothing() {
        let refused = "ERR increment would produce NaN or Infinity";
        check(
            &[
                &["SET", "f", "1"],
                &["INCRBYFLOAT", "f", "inf"],
                &["INCRBYFLOAT", "f", "-Infinity"],
                &["SET", "max", "1.18973149535723176502e+4932"],
                &["INCRBYFLOAT", "max", "1e4932"],
                &["SET", "i", "inf"],
                &["INCRBYFLOAT", "i", "-inf"],
                &["GET", "f"],
            ],
            &[ok(), err(refused), err(refused), ok(), err(refused), ok(), err(refused), bulk("1")],
        );
    }

    #[test]
    fn incrbyfloat_with_a_value_or_increment_that_is_not_a_float_is_an_error() {
        check(
            &[
                &["INCRBYFLOAT", "f", "abc"],
                &["INCRBYFLOAT", "f", " 1"],
                &["INCRBYFLOAT", "f", "1 "],
                &["INCRBYFLOAT", "f", ""],
                &["INCRBYFLOAT", "f", "nan"],
                &["INCRBYFLOAT", "f", "1e5000"],
                &["INCRBYFLOAT", "f", "1e-5000"],
                &["INCRBYFLOAT", "f", "1e"],
                &["SET", "s", " 11"],
                &["INCRBYFLOAT", "s", "1"],
                &["SET", "nul", "1"],
                &["SETRANGE", "nul", "2", "2"],
                &["INCRBYFLOAT", "nul", "1"],
                &["EXISTS", "f"],
            ],
            &[
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                err(NOT_FLOAT),
                ok(),
                err(NOT_FLOAT),
                ok(),
                int(3),
                err(NOT_FLOAT),
                int(0),
            ],
        );
    }

    #[test]
    fn incrbyfloat_stores_the_text_it_replies_and_keeps_the_ttl() {
        check(
            &[
                &["SETEX", "f", "100", "1.5"],
                &["INCRBYFLOAT", "f", "1.5"],
                &["TTL", "f"],
                &["OBJECT", "ENCODING", "f"],
                &["INCRBYFLOAT", "f", "1e50"],
                &["OBJECT", "ENCODING", "f"],
            ],
            &[ok(), bulk("3"), int(100), bulk("embstr"), bulk("100000000000000000003583830118858923890798487404544"), bulk("raw")],
        );
    }

    #[test]
    fn getrange_counts_negative_indexes_from_the_end() {
        check(
            &[
                &["SET", "s", "hello"],
                &["GETRANGE", "s", "0", "-1"],
                &["GETRANGE", "s", "-3", "-1"],
                &["GETRANGE", "s", "0", "-100"],
                &["GETRANGE", "s", "-100", "-50"],
                &["GETRANGE", "s", "1", "3"],
            ],
            &[ok(), bulk("hello"), bulk("llo"), bulk("h"), bulk("h"), bulk("ell")],
        );
    }

    #[test]
    fn getrange_out_of_range_is_empty() {
        check(
            &[
                &["SET", "s", "hello"],
                &["GETRANGE", "s", "10", "20"],
                &["GETRANGE", "s", "2", "1"],
                &["GETRANGE", "s", "-1", "-2"],
                &["GETRANGE", "s", "0", "9223372036854775807"],
                &["GETRANGE", "s", "-9223372036854775808", "2"],
                &["GETRANGE", "missing", "0", "-1"],
                &["SET", "e", ""],
                &["GETRANGE", "e", "0", "0"],
                &["GETRANGE", "e", "0", "-1"],
            ],
            &[ok(), bulk(""), bulk(""), bulk(""), bulk("hello"), bulk("hel"), bulk(""), ok(), bulk(""), bulk("")],
        );
    }

    #[test]
    fn getrange_reads_an_integer_value_as_its_digits() {
        check(&[&["SET", "i", "12345"], &["GETRANGE", "i", "1", "-2"]], &[ok(), bulk("234")]);
    }

    #[test]
    fn getrange_with_a_non_integer_index_is_an_error() {
        check(
            &[&["GETRANGE", "s", "a", "1"], &["GETRANGE", "s", "1", "1.5"], &["SUBSTR", "s", "0", "x"]],
            &[err(NOT_INTEGER), err(NOT_INTEGER), err(NOT_INTEGER)],
        );
    }

    #[test]
    fn substr_is_getrange() {
        check(&[&["SET", "s", "hello"], &["SUBSTR", "s", "1", "3"], &["SUBSTR", "s", "-2", "-1"]], &[ok(), bulk("ell"), bulk("lo")]);
    }

    #[test]
    fn setrange_on_a_missing_key_pads_with_zero_bytes() {
        check(
            &[&["SETRANGE", "k", "3", "ab"], &["GET", "k"], &["OBJECT", "ENCODING", "k"], &["STRLEN", "k"]],
            &[int(5), Frame::Bulk(bytes::Bytes::from_static(b"\0\0\0ab")), bulk("raw"), int(5)],
        );
    }

    #[test]
    fn setrange_overwrites_extends_makes_raw_and_keeps_the_ttl() {
        check(
            &[
                &["SETEX", "k", "100", "12345"],
                &["SETRANGE", "k", "0", "9"],
                &["GET", "k"],
                &["OBJECT", "ENCODING", "k"],
                &["SETRANGE", "k", "7", "xy"],
                &["GET", "k"],
                &["TTL", "k"],
            ],
            &[ok(), int(5), bulk("92345"), bulk("raw"), int(9), Frame::Bulk(bytes::Bytes::from_static(b"92345\0\0xy")), int(100)],
        );
    }

    #[test]
    fn setrange_with_an_empty_value_returns_the_length_and_creates_nothing() {
        check(
            &[
                &["SETRANGE", "missing", "5", ""],
                &["EXISTS", "missing"],
                &["SET", "k", "hello"],
                &["SETRANGE", "k", "100", ""],
                &["OBJECT", "ENCODING", "k"],
                &["SETRANGE", "missing", "9223372036854775807", ""],
            ],
            &[int(0), int(0), ok(), int(5), bulk("embstr"), int(0)],
        );
    }

    #[test]
    fn setrange_with_a_negative_or_non_integer_offset_is_an_error() {
        check(
            &[&["SETRANGE", "k", "-1", "x"], &["SETRANGE", "k", "abc", "x"], &["EXISTS", "k"]],
            &[err("ERR offset is out of range"), err(NOT_INTEGER), int(0)],
        );
    }

    #[test]
    fn setrange_past_proto_max_bulk_len_is_refused() {
        let too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
        check(
            &[&["SETRANGE", "k", "536870912", "a"], &["SETRANGE", "k", "536870911", "ab"], &["SETRANGE", "k", "9223372036854775807", "ab"], &["EXISTS", "k"]],
            &[err(too_long), err(too_long), err(too_long), int(0)],
        );
        check_with_len_max(
            8,
            &[&["SETRANGE", "k", "6", "ab"], &["SETRANGE", "k", "7", "ab"], &["GET", "k"]],
            &[int(8), err(too_long), Frame::Bulk(bytes::Bytes::from_static(b"\0\0\0\0\0\0ab"))],
        );
    }

    /// Two keys on different shards, so LCS takes the cross-core path.
    fn two_shard_keys() -> (&'static str, &'static str) {
        let (a, b) = ("k1", "k2");
        let shard = |key: &str| shoal_store::slot::key_shard(key.as_bytes(), crate::testing::SHARDS);
        assert_ne!(shard(a), shard(b), "the keys live on different shards");
        (a, b)
    }

    #[test]
    fn lcs_finds_the_common_string_across_shards() {
        let (a, b) = two_shard_keys();
        check(
            &[
                &["MSET", a, "ohmytext", b, "mynewtext"],
                &["LCS", a, b],
                &["LCS", a, b, "LEN"],
                &["LCS", a, a],
                &["LCS", a, "missing"],
                &["LCS", "missing", "other", "LEN"],
            ],
            &[ok(), bulk("mytext"), int(6), bulk("ohmytext"), bulk(""), int(0)],
        );
    }

    fn range(a: (i64, i64), b: (i64, i64), len: Option<i64>) -> Frame {
        let mut item = vec![arr(vec![int(a.0), int(a.1)]), arr(vec![int(b.0), int(b.1)])];
        item.extend(len.map(int));
        arr(item)
    }

    fn idx_reply(matches: Vec<Frame>, len: i64) -> Frame {
        Frame::Map(vec![(bulk("matches"), arr(matches)), (bulk("len"), int(len))])
    }

    #[test]
    fn lcs_idx_lists_the_matching_ranges_from_the_end() {
        let (a, b) = two_shard_keys();
        check(
            &[
                &["MSET", a, "ohmytext", b, "mynewtext"],
                &["LCS", a, b, "IDX"],
                &["LCS", a, b, "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
                &["LCS", a, b, "idx", "withmatchlen"],
                &["LCS", a, b, "IDX", "MINMATCHLEN", "-5"],
                &["LCS", "missing", "other", "IDX"],
            ],
            &[
                ok(),
                idx_reply(vec![range((4, 7), (5, 8), None), range((2, 3), (0, 1), None)], 6),
                idx_reply(vec![range((4, 7), (5, 8), Some(4))], 6),
                idx_reply(vec![range((4, 7), (5, 8), Some(4)), range((2, 3), (0, 1), Some(2))], 6),
                idx_reply(vec![range((4, 7), (5, 8), None), range((2, 3), (0, 1), None)], 6),
                idx_reply(vec![], 0),
            ],
        );
    }

    #[test]
    fn lcs_breaks_ties_as_redis_does() {
        // Expected replies read from redis-server 7.0.
        let (a, b) = two_shard_keys();
        check(
            &[
                &["MSET", a, "ABCBDAB", b, "BDCABA"],
                &["LCS", a, b],
                &["LCS", a, b, "IDX", "WITHMATCHLEN"],
                &["MSET", a, "aaaa", b, "aa"],
                &["LCS", a, b, "IDX"],
            ],
            &[
                ok(),
                bulk("BDAB"),
                idx_reply(vec![range((5, 6), (3, 4), Some(2)), range((3, 4), (0, 1), Some(2))], 4),
                ok(),
                idx_reply(vec![range((2, 3), (0, 1), None)], 2),
            ],
        );
    }

    #[test]
    fn lcs_with_bad_options_is_an_error() {
        let (a, b) = two_shard_keys();
        check(
            &[
                &["MSET", a, "x", b, "y"],
                &["LCS", a, b, "LEN", "IDX"],
                &["LCS", a, b, "FOO"],
                &["LCS", a, b, "MINMATCHLEN"],
                &["LCS", a, b, "MINMATCHLEN", "1.5"],
                &["LCS", a, a, "LEN", "LEN", "IDX"],
            ],
            &[
                ok(),
                err("ERR If you want both the length and indexes, please just use IDX."),
                err(SYNTAX),
                err(SYNTAX),
                err(NOT_INTEGER),
                err("ERR If you want both the length and indexes, please just use IDX."),
            ],
        );
    }

    #[test]
    fn lcs_refuses_a_table_larger_than_proto_max_bulk_len() {
        let (a, b) = two_shard_keys();
        let long = "x".repeat(600);
        let refused = "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
        // 601 * 601 cells of 4 bytes is 1444804 bytes.
        check_with_len_max(
            1_444_803,
            &[&["MSET", a, &long, b, &long], &["LCS", a, b, "LEN"], &["LCS", a, a], &["LCS", a, "missing"]],
            &[ok(), err(refused), err(refused), bulk("")],
        );
        check_with_len_max(1_444_804, &[&["MSET", a, &long, b, &long], &["LCS", a, b, "LEN"]], &[ok(), int(600)]);
    }
}

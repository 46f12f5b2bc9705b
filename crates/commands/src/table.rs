//! The one command table: every command's name, arity, flags, keys, documentation and handler.
//!
//! The dispatcher, COMMAND, ACL categories and key routing all read this table; nothing else
//! keeps a list of commands. Families contribute their entries (`strings::COMMANDS`, ...).

use std::sync::OnceLock;

use bytes::Bytes;

use crate::ctx::{Ctx, MultiFn};
use shoal_resp::Frame;

/// Command flags, as Redis's COMMAND INFO reports them.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const FAST: u32 = 1 << 10;
    pub const NO_AUTH: u32 = 1 << 11;
    pub const MAY_REPLICATE: u32 = 1 << 12;
    pub const NO_MULTI: u32 = 1 << 13;
    pub const ALLOW_BUSY: u32 = 1 << 14;
    pub const SKIP_SLOWLOG: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    pub const NO_ASYNC_LOADING: u32 = 1 << 17;
    /// Shoal: the command works on every core's part of the keyspace (DBSIZE, KEYS, FLUSHALL).
    pub const ALL_SHARDS: u32 = 1 << 30;

    /// Names in the order Redis prints them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are in its arguments, as Redis's legacy (first, last, step) triple.
/// `last` < 0 counts from the end (-1 is the last argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub first: i32,
    pub last: i32,
    pub step: i32,
}

impl KeySpec {
    pub const NONE: KeySpec = KeySpec { first: 0, last: 0, step: 0 };
    pub const ONE: KeySpec = KeySpec { first: 1, last: 1, step: 1 };
    pub const ALL: KeySpec = KeySpec { first: 1, last: -1, step: 1 };
    pub const PAIRS: KeySpec = KeySpec { first: 1, last: -1, step: 2 };
    pub const TWO: KeySpec = KeySpec { first: 1, last: 2, step: 1 };
    /// Member positions (see [`CommandSpec::members`]): the argument after the key ...
    pub const ONE_MEMBER: KeySpec = KeySpec { first: 2, last: 2, step: 1 };
    /// ... every argument after the key ...
    pub const MEMBERS: KeySpec = KeySpec { first: 2, last: -1, step: 1 };
    /// ... every other one after the key (HSET's fields) ...
    pub const FIELD_VALUE_PAIRS: KeySpec = KeySpec { first: 2, last: -1, step: 2 };
    /// ... and the third argument (ZINCRBY key increment member).
    pub const THIRD: KeySpec = KeySpec { first: 3, last: 3, step: 1 };

    /// The indexes of the key arguments in `argc` arguments (the name included).
    pub fn positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, last, step) = if self.first <= 0 {
            (1, 0, 1)
        } else {
            let last = if self.last < 0 { argc as i64 + self.last as i64 } else { (self.last as i64).min(argc as i64 - 1) };
            (self.first as usize, last.max(0) as usize, self.step.max(1) as usize)
        };
        (first..=last).step_by(step)
    }
}

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Runs on one core: the core that owns all its keys, or the connection's own core when
    /// it has none. When the keys of a `Keys` command span cores, `multi` runs it as a
    /// transaction instead; a command that cannot span cores has `multi: None` and its keys
    /// must hash to one core (CROSSSLOT otherwise).
    Keys { local: fn(&mut Ctx, &[Bytes]) -> Frame, multi: Option<MultiFn> },
    /// Runs as a transaction over every core (flag ALL_SHARDS) or over its keys' cores.
    Multi(MultiFn),
    /// Needs the connection or the server (SELECT, HELLO, CLIENT, INFO, CONFIG, ...): the
    /// server crate implements it.
    Connection,
    /// A blocking command (BLPOP, BZPOPMIN, ...): see [`BlockingOps`].
    Blocking(&'static BlockingOps),
}

/// How a blocking command runs. The runtime first runs `attempt` as a transaction over the
/// cores of all its keys; when that serves nothing (and the client may block), it registers
/// the client on the cores of the keys it waits on, in the same transaction, and waits. When
/// a write makes one of those keys ready, the owning core calls `serve` for the waiters of
/// that key in the order they blocked, until the timeout passes or the client goes away.
pub struct BlockingOps {
    /// Checks every argument and returns the timeout (`None`: wait forever), or the error
    /// reply. Runs before anything else, so a bad request never blocks.
    pub parse: fn(&[Bytes]) -> Result<Option<std::time::Duration>, Frame>,
    /// The argument positions of the keys the command waits on.
    pub wait_keys: fn(&[Bytes]) -> Vec<usize>,
    /// With every key locked: the reply when the command can be served now.
    pub attempt: for<'a> fn(&'a dyn crate::ctx::Coordinator, Vec<Bytes>) -> futures::future::LocalBoxFuture<'a, Option<Frame>>,
    /// On the core of `key`, which a write may have made ready: serves one waiter.
    pub serve: ServeFn,
    /// The reply when the timeout passes (or the command may not block, inside MULTI).
    pub timed_out: fn() -> Frame,
    /// With every key still locked, after an attempt served nothing and before the client
    /// waits: the arguments it waits with, where they name a moment (XREAD's `$`, the last
    /// ID now). None: the arguments as sent.
    pub resolve: Option<ResolveFn>,
    /// For a request that never waits (its timeout is zero: XREAD without BLOCK) and whose
    /// keys live on one core: the command as a plain one on that core, so it takes the fast
    /// path instead of a transaction. None: always a transaction.
    pub at_once: Option<fn(&mut Ctx, &[Bytes]) -> Frame>,
    /// For a waiter that time alone may make servable (XREADGROUP's CLAIM: a pending entry
    /// ages past min-idle-time): with every key still locked, after an attempt served
    /// nothing, the moment (Unix ms) to run the command again. None: only writes wake it.
    pub recheck: Option<RecheckFn>,
}

/// See [`BlockingOps::recheck`].
pub type RecheckFn = for<'a> fn(&'a dyn crate::ctx::Coordinator, Vec<Bytes>) -> futures::future::LocalBoxFuture<'a, Option<u64>>;

/// See [`BlockingOps::resolve`].
pub type ResolveFn = for<'a> fn(&'a dyn crate::ctx::Coordinator, Vec<Bytes>) -> futures::future::LocalBoxFuture<'a, Vec<Bytes>>;

/// `serve(ctx, key, args, claim)`: checks whether the waiter whose request is `args` can be
/// served from `key` now. If it can, it must call `claim()` before changing anything, and
/// only change data when `claim()` returned true (the waiter may have been served on another
/// core, or timed out, meanwhile).
pub type ServeFn = fn(&mut Ctx, &[u8], &[Bytes], &mut dyn FnMut() -> bool) -> Served;

/// What [`ServeFn`] did.
pub enum Served {
    /// Served: the waiter's reply.
    Done(Frame),
    /// The key cannot serve this waiter now (missing, empty, or of another type).
    NotReady,
    /// `claim()` failed: the waiter is gone.
    Gone,
    /// The key is ready, but serving needs another core too (BLMOVE to a key elsewhere): the
    /// waiter was claimed and must retry as a whole.
    Elsewhere,
}

/// Given a request, the (argument index, database) pairs of keys it writes outside the
/// selected database.
pub type OtherDbKeys = fn(&[Bytes]) -> Vec<(usize, usize)>;

/// One entry of the command table.
pub struct CommandSpec {
    /// Lower-case name, as COMMAND reports it (for subcommands: "object|encoding").
    pub name: &'static str,
    /// Redis's rule: the name counts; negative means "at least -arity".
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    /// ACL categories beyond the ones derived from flags, e.g. "@string" or "@keyspace".
    pub acl: &'static [&'static str],
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub complexity: &'static str,
    pub handler: Handler,
    pub subcommands: &'static [CommandSpec],
    /// Keys the command also writes in a database other than the selected one (MOVE, COPY
    /// ... DB), as (argument index, database) pairs: the transaction layer locks them too.
    pub other_db_keys: Option<OtherDbKeys>,
    /// For commands whose keys move with their arguments (Redis's `movablekeys`: LMPOP,
    /// ZUNIONSTORE, SINTERCARD, ...): the positions of every key in a request. It must not
    /// fail: for a malformed request it returns the positions it can find, and the handler
    /// reports the error. `keys` stays the legacy triple COMMAND INFO shows.
    pub movable_keys: Option<MovableKeys>,
    /// For commands that may read keys their arguments do not name (SORT's BY and GET
    /// patterns name keys after the values they sort): given a request, `Some(exclusive)`
    /// when it must run as a transaction over every core, holding each core's shard-wide
    /// lock (exclusive when `exclusive`, because it also writes; shared otherwise), and
    /// `None` when locking its keys is enough. It must not fail: for a malformed request it
    /// returns `None`, and the handler reports the error. A command with this hook needs a
    /// cross-core form.
    pub all_shards_when: Option<AllShardsWhen>,
    /// Arguments that are shard channels (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE): not keys, so
    /// nothing routes or locks by them, but COMMAND INFO shows them as Redis does, in the
    /// legacy triple and as a `not_key` key spec (cluster clients route by them).
    pub channels: KeySpec,
    /// Arguments that name members of the collection at the command's one key (HSET's
    /// fields, SISMEMBER's member): a pipelined batch prefetches them with the key, since
    /// each lookup in a big hash, set or sorted set is a chain of cache misses. A hint only;
    /// a wrong or missing entry costs speed, never correctness.
    pub members: KeySpec,
}

/// Given a request, the indexes of its key arguments.
pub type MovableKeys = fn(&[Bytes]) -> Vec<usize>;

/// Given a request, whether it runs over every core, and then whether exclusively (see
/// [`CommandSpec::all_shards_when`]).
pub type AllShardsWhen = fn(&[Bytes]) -> Option<bool>;

/// Keys given as `numkeys key [key ...]` with `numkeys` at argument `at` (LMPOP, ZUNION,
/// SINTERCARD, ...), plus the fixed positions in `also` (a destination key). Clamped to the
/// arguments present.
pub fn numkeys_positions(args: &[Bytes], at: usize, also: &[usize]) -> Vec<usize> {
    let mut positions: Vec<usize> = also.iter().copied().filter(|&i| i < args.len()).collect();
    let count = args.get(at).and_then(|a| std::str::from_utf8(a).ok()).and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    let first = at + 1;
    positions.extend(first..(first.saturating_add(count)).min(args.len()));
    positions
}

impl CommandSpec {
    /// The defaults each family's own base entry starts from: no keys, no flags, a handler
    /// that must be replaced.
    pub const DEFAULT: CommandSpec = CommandSpec {
        name: "",
        arity: 0,
        flags: 0,
        keys: KeySpec::NONE,
        acl: &[],
        group: "",
        summary: "",
        since: "1.0.0",
        complexity: "O(1)",
        handler: Handler::Connection,
        subcommands: &[],
        other_db_keys: None,
        movable_keys: None,
        all_shards_when: None,
        channels: KeySpec::NONE,
        members: KeySpec::NONE,
    };

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn is_write(&self) -> bool {
        self.has(flags::WRITE)
    }

    /// Whether running it may change data: a write, or a blocking command that is not
    /// read-only (BLPOP pops; XREAD only reads).
    /// The function that runs it on one core: a `Keys` command's `local`, or a blocking
    /// command's `at_once` (see [`BlockingOps::at_once`]).
    pub fn local(&self) -> Option<fn(&mut Ctx, &[Bytes]) -> Frame> {
        match self.handler {
            Handler::Keys { local, .. } => Some(local),
            Handler::Blocking(ops) => ops.at_once,
            _ => None,
        }
    }

    pub fn may_write(&self) -> bool {
        self.is_write() || (matches!(self.handler, Handler::Blocking(_)) && !self.has(flags::READONLY))
    }

    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= (-self.arity) as usize
        }
    }

    /// ACL categories, Redis-style: the ones implied by flags, then the family's own.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let mut categories = Vec::new();
        if self.has(flags::WRITE) {
            categories.push("@write");
        }
        // Redis keeps scripts out of @read, read-only or not.
        if self.has(flags::READONLY) && !self.acl.contains(&"@scripting") {
            categories.push("@read");
        }
        if self.has(flags::ADMIN) {
            categories.push("@admin");
            categories.push("@dangerous");
        }
        if self.has(flags::PUBSUB) {
            categories.push("@pubsub");
        }
        if self.has(flags::FAST) {
            categories.push("@fast");
        }
        if self.has(flags::BLOCKING) {
            categories.push("@blocking");
        }
        if !self.has(flags::FAST) {
            categories.push("@slow");
        }
        for c in self.acl {
            if !categories.contains(c) {
                categories.push(c);
            }
        }
        categories
    }
}

/// Every top-level command, from every family.
pub fn all() -> impl Iterator<Item = &'static CommandSpec> {
    let families: [&'static [CommandSpec]; 22] = [
        crate::strings::COMMANDS,
        crate::keys::COMMANDS,
        crate::server::COMMANDS,
        crate::connection::COMMANDS,
        crate::lists::COMMANDS,
        crate::hashes::COMMANDS,
        crate::hashes::field_ttl::COMMANDS,
        crate::hashes::himport::COMMANDS,
        crate::sets::COMMANDS,
        crate::zsets::COMMANDS,
        crate::streams::COMMANDS,
        crate::streams::GROUP_COMMANDS,
        crate::streams::INFO_COMMANDS,
        crate::bitmaps::COMMANDS,
        crate::hyperloglog::COMMANDS,
        crate::geo::COMMANDS,
        crate::blocking::COMMANDS,
        crate::sort::COMMANDS,
        crate::transactions::COMMANDS,
        crate::scripting::COMMANDS,
        crate::pubsub::COMMANDS,
        crate::admin::COMMANDS,
    ];
    families.into_iter().flatten()
}

type Index = std::collections::HashMap<&'static str, &'static CommandSpec, foldhash::fast::FixedState>;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map = Index::default();
        for spec in all() {
            let previous = map.insert(spec.name, spec);
            assert!(previous.is_none(), "command {} is defined once", spec.name);
        }
        map
    })
}

/// The longest command name [`lookup`] considers.
const NAME_MAX: usize = 32;

/// A name [`lookup`] found on this thread, exactly as the client spelled it.
#[derive(Clone, Copy)]
struct LastLookup {
    len: usize,
    name: [u8; NAME_MAX],
    spec: Option<&'static CommandSpec>,
}

thread_local! {
    /// The last two names found, the newer first: a pipeline of scripts alternates two
    /// (EVALSHA, then the INCR its script calls).
    static LAST_LOOKUPS: std::cell::RefCell<[LastLookup; 2]> =
        const { std::cell::RefCell::new([LastLookup { len: 0, name: [0; NAME_MAX], spec: None }; 2]) };
}

/// Finds a command by name, case-insensitively.
///
/// A pipeline repeats one name many times (or two, alternately): the last two hits on this
/// thread are remembered, as spelled, so a repeat costs a comparison or two instead of
/// lower-casing and hashing (measured: the lookup was 4-5% of the server's time under LPUSH
/// at pipeline 16, and 2.5% under EVALSHA with the one-entry memory this replaced).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > NAME_MAX {
        return None;
    }
    let remembered = LAST_LOOKUPS.with_borrow_mut(|last| {
        let index = last.iter().position(|hit| hit.spec.is_some() && hit.name[..hit.len] == *name)?;
        // The older one becomes the newer: the next miss replaces the other.
        last.swap(0, index);
        last[0].spec
    });
    if remembered.is_some() {
        return remembered;
    }
    let mut buf = [0u8; NAME_MAX];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let spec = index().get(std::str::from_utf8(lower).ok()?).copied();
    if spec.is_some() {
        let mut spelled = [0u8; NAME_MAX];
        spelled[..name.len()].copy_from_slice(name);
        LAST_LOOKUPS.with_borrow_mut(|last| *last = [LastLookup { len: name.len(), name: spelled, spec }, last[0]]);
    }
    spec
}

/// Finds a subcommand of `spec` by name, case-insensitively.
pub fn lookup_subcommand(spec: &'static CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    spec.subcommands.iter().find(|s| {
        let short = s.name.split('|').nth(1).unwrap_or(s.name);
        short.as_bytes().eq_ignore_ascii_case(sub)
    })
}

/// The indexes of a request's key arguments.
pub fn key_positions(spec: &CommandSpec, args: &[Bytes]) -> Vec<usize> {
    match spec.movable_keys {
        Some(positions) => positions(args),
        None => spec.keys.positions(args.len()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_found_case_insensitively() {
        for spec in all() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase(), "{} is lower case", spec.name);
            let upper = spec.name.to_ascii_uppercase();
            assert!(std::ptr::eq(lookup(upper.as_bytes()).unwrap(), spec), "{} found", spec.name);
            // Again, now remembered as the last hit; and spelled otherwise, after it.
            assert!(std::ptr::eq(lookup(upper.as_bytes()).unwrap(), spec), "{} found twice", spec.name);
            assert!(std::ptr::eq(lookup(spec.name.as_bytes()).unwrap(), spec), "{} found in lower case", spec.name);
        }
        index();
        // A miss after a hit is still a miss, and a name differing only in length too.
        assert!(lookup(b"GET").is_some());
        assert!(lookup(b"GETX").is_none());
        assert!(lookup(b"GE").is_none());
        assert!(lookup(&[b'a'; NAME_MAX + 1]).is_none());
        // Two names alternating, then a third: each is found as itself throughout.
        for name in ["GET", "set", "GET", "set", "Del", "set", "GET", "GETX", "Del"] {
            assert_eq!(lookup(name.as_bytes()).map(|spec| spec.name), index().get(name.to_ascii_lowercase().as_str()).map(|spec| spec.name), "{name}");
        }
    }

    #[test]
    fn commands_with_members_have_one_key_first_and_members_after_it() {
        let with_members: Vec<_> = all().filter(|spec| spec.members.first > 0).collect();
        assert!(with_members.len() >= 20, "HSET, SADD, ZSCORE and their kin declare members");
        for spec in with_members {
            assert_eq!((spec.keys.first, spec.keys.last, spec.movable_keys.is_none()), (1, 1, true), "{} has one key, first", spec.name);
            let argc = spec.arity.unsigned_abs() as usize + 4;
            let members: Vec<usize> = spec.members.positions(argc).collect();
            assert!(!members.is_empty() && members.iter().all(|&at| at >= 2 && at < argc), "{}: members {members:?} follow the key", spec.name);
        }
    }

    #[test]
    fn arity_is_consistent_with_key_positions() {
        for spec in all() {
            if spec.keys.first > 0 {
                let argc_min = spec.arity.unsigned_abs() as i32;
                assert!(spec.keys.first < argc_min, "{}: first key within the minimum arity", spec.name);
                if spec.keys.last > 0 {
                    assert!(spec.keys.last < argc_min, "{}: last key within the minimum arity", spec.name);
                }
                assert!(spec.keys.step > 0, "{}: positive step", spec.name);
            }
        }
    }

    #[test]
    fn every_write_command_has_keys_or_works_on_every_shard() {
        for spec in all() {
            if spec.is_write() {
                assert!(
                    spec.keys.first > 0 || spec.movable_keys.is_some() || spec.has(flags::ALL_SHARDS) || matches!(spec.handler, Handler::Connection),
                    "{} writes but names no keys",
                    spec.name
                );
            }
            assert!(!(spec.has(flags::WRITE) && spec.has(flags::READONLY)), "{}: not both write and readonly", spec.name);
        }
    }

    #[test]
    fn every_command_that_may_run_on_every_shard_has_a_cross_core_form() {
        for spec in all() {
            if spec.all_shards_when.is_some() {
                assert!(
                    matches!(spec.handler, Handler::Keys { multi: Some(_), .. } | Handler::Multi(_)),
                    "{} may run over every core, so it needs a cross-core form",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn every_command_is_documented() {
        for spec in all() {
            assert!(!spec.summary.is_empty(), "{} has a summary", spec.name);
            assert!(!spec.since.is_empty(), "{} has a since", spec.name);
            assert!(!spec.group.is_empty(), "{} has a group", spec.name);
        }
    }

    #[test]
    fn numkeys_positions_are_clamped_to_the_request() {
        let args: Vec<Bytes> = ["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"].iter().map(|a| Bytes::from(*a)).collect();
        assert_eq!(numkeys_positions(&args, 2, &[1]), vec![1, 3, 4]);
        let args: Vec<Bytes> = ["lmpop", "5", "a", "LEFT"].iter().map(|a| Bytes::from(*a)).collect();
        assert_eq!(numkeys_positions(&args, 1, &[]), vec![2, 3]);
        let args: Vec<Bytes> = ["lmpop", "x", "a"].iter().map(|a| Bytes::from(*a)).collect();
        assert!(numkeys_positions(&args, 1, &[]).is_empty());
    }

    #[test]
    fn key_positions_follow_the_triple() {
        let got: Vec<usize> = KeySpec::PAIRS.positions(5).collect();
        assert_eq!(got, vec![1, 3]);
        let got: Vec<usize> = KeySpec::ALL.positions(4).collect();
        assert_eq!(got, vec![1, 2, 3]);
        let got: Vec<usize> = KeySpec::NONE.positions(4).collect();
        assert!(got.is_empty());
        let got: Vec<usize> = KeySpec::ONE.positions(3).collect();
        assert_eq!(got, vec![1]);
        let got: Vec<usize> = KeySpec { first: 1, last: -2, step: 1 }.positions(4).collect();
        assert_eq!(got, vec![1, 2]);
    }
}

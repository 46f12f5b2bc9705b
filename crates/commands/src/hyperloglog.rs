//! The HyperLogLog family: PFADD, PFCOUNT, PFMERGE, PFDEBUG and PFSELFTEST (Redis's
//! `hyperloglog.c`).
//!
//! A HyperLogLog is a string value in Redis's exact representation ([`hll`]), so GET and SET
//! move one between Shoal and Redis unchanged. PFCOUNT of one key caches the cardinality in
//! the value's header, which modifies the value: the table flags it as a write so that it
//! takes an exclusive lock (Redis flags it read-only and notes that its key is written).
//!
//! PFCOUNT of several keys and PFMERGE may span cores: the first hop merges each core's
//! HyperLogLogs into one register array per core, the coordinator takes the maximum, and
//! PFMERGE writes the destination in a second hop of the same transaction. PFCOUNT of
//! several keys never modifies them.
//!
//! What this does not do: PFSELFTEST runs a smaller version of Redis's test (100 register
//! cycles and a million elements instead of 1000 cycles and ten million), so it answers in
//! well under a second on a debug build.

pub mod hll;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use rand::SeedableRng;
use shoal_resp::Frame;
use shoal_store::{slot, Db, Str, Value};

use crate::args::{self, is};
use crate::ctx::{self, notify, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

use hll::REGISTERS;

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@hyperloglog"], group: "hyperloglog", since: "2.8.9", ..CommandSpec::DEFAULT };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "pfadd",
        arity: -2,
        flags: WRITE | DENYOOM | FAST,
        summary: "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        complexity: "O(1) to add every element.",
        handler: Handler::Keys { local: pfadd, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "pfcount",
        arity: -2,
        flags: WRITE,
        keys: KeySpec::ALL,
        summary: "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        complexity: "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.",
        handler: Handler::Keys { local: pfcount, multi: Some(pfcount_multi) },
        ..BASE
    },
    CommandSpec {
        name: "pfmerge",
        arity: -2,
        flags: WRITE | DENYOOM,
        keys: KeySpec::ALL,
        summary: "Merges one or more HyperLogLog values into a single key.",
        complexity: "O(N) to merge N HyperLogLogs, but with high constant times.",
        handler: Handler::Keys { local: pfmerge, multi: Some(pfmerge_multi) },
        ..BASE
    },
    CommandSpec {
        name: "pfdebug",
        arity: 3,
        flags: WRITE | DENYOOM | ADMIN,
        keys: KeySpec { first: 2, last: 2, step: 1 },
        summary: "Internal commands for debugging HyperLogLog values",
        complexity: "N/A",
        handler: Handler::Keys { local: pfdebug, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "pfselftest",
        arity: 1,
        flags: ADMIN,
        keys: KeySpec::NONE,
        summary: "An internal command for testing HyperLogLog values.",
        complexity: "N/A",
        handler: Handler::Keys { local: pfselftest, multi: None },
        ..BASE
    },
];

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";
const DEBUG_NO_SUCH_KEY: &str = "ERR The specified key does not exist";
const DEBUG_NOT_SPARSE: &str = "ERR HLL encoding is not sparse";

fn corrupt() -> Frame {
    errors::error(CORRUPT)
}

/// Checks that `value` is a HyperLogLog without changing it: WRONGTYPE for other types, the
/// HyperLogLog form of it for strings that are not one.
fn check_hll(value: &Value) -> Result<&Str, Frame> {
    match value {
        Value::Str(s) if s.with_bytes(hll::is_hll) => Ok(s),
        Value::Str(_) => Err(errors::error(NOT_HLL)),
        _ => Err(errors::wrong_type()),
    }
}

/// The HyperLogLog at `value` as a buffer to modify in place (Redis unshares it, so it
/// becomes raw).
fn hll_mut(value: &mut Value) -> Result<&mut Vec<u8>, Frame> {
    check_hll(value)?;
    match value {
        Value::Str(s) => Ok(s.make_raw()),
        _ => unreachable!("checked above"),
    }
}

// ---- PFADD -----------------------------------------------------------------------------

/// Adds `elements` to the HyperLogLog at `key`, creating it; returns whether a register
/// changed (or the key was created). Counts, as Redis does, one change for creating the key
/// and one per element that changed a register.
pub fn op_pfadd(db: &mut Db, key: &[u8], elements: &[Bytes], sparse_len_max: u64, now_ms: u64) -> Result<bool, Frame> {
    let Some(entry) = db.lookup_write(key, now_ms) else {
        let mut created = hll::new_sparse();
        let mut updated = 1;
        for element in elements {
            updated += hll::add(&mut created, element, sparse_len_max).map_err(|_| corrupt())? as u64;
        }
        hll::invalidate_cache(&mut created);
        db.set(key, Value::Str(Str::from_vec(created)), now_ms);
        db.add_changes(updated);
        return Ok(true);
    };
    let buffer = hll_mut(&mut entry.value)?;
    let mut updated = 0;
    for element in elements {
        // A corrupt value may be left half updated with a stale cache, as in Redis.
        // Redis counts nothing then.
        updated += hll::add(buffer, element, sparse_len_max).map_err(|_| corrupt())? as u64;
    }
    if updated > 0 {
        hll::invalidate_cache(buffer);
    }
    db.add_changes(updated);
    Ok(updated > 0)
}

/// PFADD key [element [element ...]]
fn pfadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, sparse_len_max) = (ctx.now_ms, ctx.settings.hll_sparse_max_bytes);
    let updated = op_pfadd(ctx.db(), &args[1], &args[2..], sparse_len_max, now);
    if matches!(updated, Ok(true)) {
        ctx.notify(notify::STRING, "pfadd", &args[1]);
    }
    ctx::reply(updated, args::int)
}

// ---- PFCOUNT, PFMERGE ------------------------------------------------------------------

/// The registers of several HyperLogLogs merged, one byte per register.
pub struct Merged {
    pub registers: Vec<u8>,
    /// Whether one of them was dense (PFMERGE then writes a dense destination).
    pub any_dense: bool,
}

impl Merged {
    fn new() -> Merged {
        Merged { registers: vec![0; REGISTERS], any_dense: false }
    }

    fn absorb(&mut self, other: Merged) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers) {
            *mine = (*mine).max(theirs);
        }
        self.any_dense |= other.any_dense;
    }
}

/// Merges the HyperLogLogs at `keys` in order, missing keys counting as empty. On the first
/// bad key, its position in `keys` and the error.
pub fn op_merge(db: &mut Db, keys: &[Bytes], now_ms: u64) -> Result<Merged, (usize, Frame)> {
    let mut merged = Merged::new();
    for (position, key) in keys.iter().enumerate() {
        let Some(entry) = db.lookup_read(key, now_ms) else {
            continue;
        };
        let s = check_hll(&entry.value).map_err(|e| (position, e))?;
        s.with_bytes(|bytes| {
            merged.any_dense |= hll::encoding(bytes) == hll::DENSE;
            let registers: &mut [u8; REGISTERS] = merged.registers.as_mut_slice().try_into().expect("one byte per register");
            hll::merge_into(registers, bytes)
        })
        .map_err(|_| (position, corrupt()))?;
    }
    Ok(merged)
}

/// The cardinality of one HyperLogLog, from the cache or computed and cached.
pub fn op_pfcount_one(db: &mut Db, key: &[u8], now_ms: u64) -> Result<u64, Frame> {
    // Caching the count changes the representation only (see Db::lookup_read_mut).
    let Some(entry) = db.lookup_read_mut(key, now_ms) else {
        return Ok(0);
    };
    let buffer = hll_mut(&mut entry.value)?;
    if let Some(cached) = hll::cached_count(buffer) {
        return Ok(cached);
    }
    let count = hll::count(buffer).map_err(|_| corrupt())?;
    hll::set_cached_count(buffer, count);
    // Redis counts caching the count as a change.
    db.add_changes(1);
    Ok(count)
}

fn count_reply(count: u64) -> Frame {
    Frame::Integer(count as i64)
}

/// PFCOUNT key [key ...]
fn pfcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    if args.len() == 2 {
        return ctx::reply(op_pfcount_one(ctx.db(), &args[1], now), count_reply);
    }
    match op_merge(ctx.db(), &args[1..], now) {
        Ok(merged) => count_reply(hll::count_registers(merged.registers.as_slice().try_into().expect("one byte per register"))),
        Err((_, e)) => e,
    }
}

/// Merges the HyperLogLogs at `args[first..]` core by core in one hop; on errors, the one of
/// the earliest argument, as Redis stops at the first bad key.
async fn merge_across_cores(coordinator: &dyn Coordinator, args: &[Bytes], first: usize) -> Result<Merged, Frame> {
    let keys = args.iter().enumerate().skip(first).map(|(i, k)| (i, k.clone()));
    let groups = ctx::group_by_shard(coordinator.shard_count(), keys);
    let results = ctx::hop_per_shard(coordinator, groups, |ctx: &mut Ctx, keys: Vec<Bytes>| {
        let now = ctx.now_ms;
        op_merge(ctx.db(), &keys, now)
    })
    .await;
    let mut merged = Merged::new();
    let mut first_error: Option<(usize, Frame)> = None;
    for (indexes, result) in results {
        match result {
            Ok(part) => merged.absorb(part),
            Err((position, e)) => {
                let index = indexes[position];
                if first_error.as_ref().is_none_or(|(earliest, _)| index < *earliest) {
                    first_error = Some((index, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(merged),
    }
}

fn pfcount_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        match merge_across_cores(coordinator, &args, 1).await {
            Ok(merged) => count_reply(hll::count_registers(merged.registers.as_slice().try_into().expect("one byte per register"))),
            Err(e) => e,
        }
    }
    .boxed_local()
}

/// Writes merged registers into the HyperLogLog at `key`, creating it (PFMERGE's second
/// half). The key was checked while merging, under the same lock.
pub fn op_merge_store(db: &mut Db, key: &[u8], merged: &Merged, sparse_len_max: u64, now_ms: u64) -> Result<(), Frame> {
    if db.lookup_write(key, now_ms).is_none() {
        db.set(key, Value::Str(Str::from_vec(hll::new_sparse())), now_ms);
    }
    let entry = db.lookup_write(key, now_ms).expect("the destination exists now");
    let buffer = hll_mut(&mut entry.value)?;
    if merged.any_dense {
        hll::to_dense(buffer).map_err(|_| corrupt())?;
    }
    for (index, &count) in merged.registers.iter().enumerate() {
        if count != 0 {
            // Redis ignores a failure here: the destination was validated while merging.
            let _ = hll::raise(buffer, index, count, sparse_len_max);
        }
    }
    hll::invalidate_cache(buffer);
    db.add_changes(1);
    Ok(())
}

/// PFMERGE destkey [sourcekey [sourcekey ...]]
fn pfmerge(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, sparse_len_max) = (ctx.now_ms, ctx.settings.hll_sparse_max_bytes);
    let db = ctx.db();
    let merged = match op_merge(db, &args[1..], now) {
        Ok(merged) => merged,
        Err((_, e)) => return e,
    };
    let stored = op_merge_store(db, &args[1], &merged, sparse_len_max, now);
    if stored.is_ok() {
        ctx.notify(notify::STRING, "pfadd", &args[1]);
    }
    ctx::reply(stored, |_| args::ok())
}

fn pfmerge_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let merged = match merge_across_cores(coordinator, &args, 1).await {
            Ok(merged) => merged,
            Err(e) => return e,
        };
        let destination = args[1].clone();
        let shard = slot::key_shard(&destination, coordinator.shard_count());
        let stored = ctx::hop_one(coordinator, shard, move |ctx: &mut Ctx| {
            let (now, sparse_len_max) = (ctx.now_ms, ctx.settings.hll_sparse_max_bytes);
            let stored = op_merge_store(ctx.db(), &destination, &merged, sparse_len_max, now);
            if stored.is_ok() {
                ctx.notify(notify::STRING, "pfadd", &destination);
            }
            stored
        })
        .await;
        ctx::reply(stored, |_| args::ok())
    }
    .boxed_local()
}

// ---- PFDEBUG, PFSELFTEST ---------------------------------------------------------------

/// PFDEBUG subcommand key
fn pfdebug(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let (subcommand, key) = (&args[1], &args[2]);
    let Some(entry) = ctx.db().lookup_write(key, now) else {
        return errors::error(DEBUG_NO_SUCH_KEY);
    };
    let buffer = match hll_mut(&mut entry.value) {
        Ok(buffer) => buffer,
        Err(e) => return e,
    };
    // Redis counts a conversion to dense (GETREG's and TODENSE's) as a change.
    if is(subcommand, "getreg") {
        let converted = hll::encoding(buffer) == hll::SPARSE;
        if hll::to_dense(buffer).is_err() {
            return corrupt();
        }
        let registers = Frame::Array(hll::dense_registers(buffer).into_iter().map(|r| Frame::Integer(r as i64)).collect());
        ctx.db().add_changes(converted as u64);
        registers
    } else if is(subcommand, "decode") {
        if hll::encoding(buffer) != hll::SPARSE {
            return errors::error(DEBUG_NOT_SPARSE);
        }
        args::bulk(hll::decode_sparse(buffer))
    } else if is(subcommand, "encoding") {
        Frame::Simple(Bytes::from_static(if hll::encoding(buffer) == hll::DENSE { b"dense" } else { b"sparse" }))
    } else if is(subcommand, "todense") {
        let converted = hll::encoding(buffer) == hll::SPARSE;
        if hll::to_dense(buffer).is_err() {
            return corrupt();
        }
        ctx.db().add_changes(converted as u64);
        args::int(converted)
    } else {
        errors::error(&format!("ERR Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(subcommand)))
    }
}

/// Register cycles and elements of PFSELFTEST (Redis: 1000 and ten million).
const SELF_TEST_CYCLES: usize = 100;
const SELF_TEST_ELEMENTS: u64 = 1_000_000;

/// PFSELFTEST
fn pfselftest(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(ctx.now_ms);
    let seed = rand::Rng::random::<u64>(&mut rng);
    let result = hll::self_test_registers(&mut rng, SELF_TEST_CYCLES)
        .and_then(|()| hll::self_test_estimates(seed, SELF_TEST_ELEMENTS, ctx.settings.hll_sparse_max_bytes));
    match result {
        Ok(()) => args::ok(),
        Err(text) => errors::error(&text),
    }
}

#[cfg(test)]
mod tests {
    use shoal_resp::Frame;

    use crate::testing::replies::*;
    use crate::testing::{check, Harness, SHARDS};

    fn shard(key: &str) -> usize {
        shoal_store::slot::key_shard(key.as_bytes(), SHARDS)
    }

    /// Three keys on three different shards.
    fn spread_keys() -> [&'static str; 3] {
        let keys = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];
        let mut found: Vec<&str> = Vec::new();
        for k in keys {
            if found.iter().all(|f| shard(f) != shard(k)) {
                found.push(k);
            }
        }
        [found[0], found[1], found[2]]
    }

    fn put_list(harness: &Harness, key: &str) {
        let mut shards = harness.shards.borrow_mut();
        let value = shoal_store::Value::List(Box::default());
        shards[shard(key)].dbs[0].set(key.as_bytes(), value, harness.now_ms);
    }

    fn put_bytes(harness: &Harness, key: &str, bytes: &[u8]) {
        let mut shards = harness.shards.borrow_mut();
        let value = shoal_store::Value::Str(shoal_store::Str::from_bytes(bytes));
        shards[shard(key)].dbs[0].set(key.as_bytes(), value, harness.now_ms);
    }

    const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

    #[test]
    fn pfadd_creates_a_sparse_value_and_reports_changes() {
        check(
            &[
                &["PFADD", "h"],
                &["GET", "h"],
                &["PFADD", "h", "a", "b", "c"],
                &["PFADD", "h", "a"],
                &["PFCOUNT", "h"],
                &["PFDEBUG", "ENCODING", "h"],
                &["OBJECT", "ENCODING", "h"],
                &["PFADD", "h"],
            ],
            &[
                int(1),
                Frame::Bulk(bytes::Bytes::from_static(b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff")),
                int(1),
                int(0),
                int(3),
                simple("sparse"),
                bulk("raw"),
                int(0),
            ],
        );
    }

    #[test]
    fn pfcount_caches_the_cardinality_in_the_header() {
        let harness = Harness::default();
        harness.run(&["PFADD", "h", "x", "y"]);
        assert_eq!(harness.run(&["PFCOUNT", "h"]), int(2));
        let Frame::Bulk(bytes) = harness.run(&["GET", "h"]) else { panic!("a bulk reply") };
        assert_eq!(&bytes[8..16], &[2, 0, 0, 0, 0, 0, 0, 0], "the cache holds 2 and is valid");
    }

    #[test]
    fn foreign_strings_and_other_types_are_refused() {
        let harness = Harness::default();
        put_list(&harness, "l");
        for (command, want) in [
            (&["SET", "s", "hello"][..], ok()),
            (&["PFADD", "s", "a"], err(NOT_HLL)),
            (&["PFCOUNT", "s"], err(NOT_HLL)),
            (&["SET", "i", "12345678901234567"], ok()),
            (&["PFADD", "i"], err(NOT_HLL)),
            (&["PFADD", "l", "a"], err(WRONGTYPE)),
            (&["PFCOUNT", "l"], err(WRONGTYPE)),
            (&["PFMERGE", "d", "s"], err(NOT_HLL)),
            (&["EXISTS", "d"], int(0)),
            (&["PFDEBUG", "GETREG", "missing"], err("ERR The specified key does not exist")),
            (&["PFDEBUG", "GETREG", "s"], err(NOT_HLL)),
            (&["PFDEBUG", "GETREG", "l"], err(WRONGTYPE)),
        ] {
            assert_eq!(harness.run(command), want, "{command:?}");
        }
    }

    #[test]
    fn a_corrupt_sparse_value_is_detected() {
        let harness = Harness::default();
        // An XZERO of 16383 registers: one short.
        put_bytes(&harness, "c", b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xfe");
        assert_eq!(harness.run(&["PFCOUNT", "c"]), err(CORRUPT));
        assert_eq!(harness.run(&["PFCOUNT", "c", "other"]), err(CORRUPT));
        assert_eq!(harness.run(&["PFDEBUG", "TODENSE", "c"]), err(CORRUPT));
        // Redis only notices while adding when the register is not covered.
        assert_eq!(harness.run(&["PFADD", "c", "a"]), int(1));
        put_bytes(&harness, "e", b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80");
        assert_eq!(harness.run(&["PFADD", "e", "a"]), err(CORRUPT));
        assert_eq!(harness.run(&["PFCOUNT", "e", "c"]), err(CORRUPT));
    }

    #[test]
    fn pfdebug_decodes_and_converts() {
        check(
            &[
                &["PFADD", "h", "a"],
                &["PFDEBUG", "DECODE", "h"],
                &["PFDEBUG", "TODENSE", "h"],
                &["PFDEBUG", "TODENSE", "h"],
                &["PFDEBUG", "ENCODING", "h"],
                &["PFDEBUG", "DECODE", "h"],
                &["PFDEBUG", "nope", "h"],
                &["PFCOUNT", "h"],
                &["STRLEN", "h"],
            ],
            &[
                int(1),
                bulk("Z:12711 v:2,1 Z:3672"),
                int(1),
                int(0),
                simple("dense"),
                err("ERR HLL encoding is not sparse"),
                err("ERR Unknown PFDEBUG subcommand 'nope'"),
                int(1),
                int(12304),
            ],
        );
    }

    #[test]
    fn pfdebug_getreg_lists_every_register() {
        let harness = Harness::default();
        harness.run(&["PFADD", "h", "a"]);
        let Frame::Array(registers) = harness.run(&["PFDEBUG", "GETREG", "h"]) else { panic!("an array") };
        assert_eq!(registers.len(), 16384);
        assert_eq!(registers[12711], int(2));
        assert_eq!(registers.iter().filter(|r| **r != int(0)).count(), 1);
        assert_eq!(harness.run(&["PFDEBUG", "ENCODING", "h"]), simple("dense"));
    }

    #[test]
    fn pfcount_and_pfmerge_union_across_shards() {
        let [a, b, c] = spread_keys();
        check(
            &[
                &["PFADD", a, "1", "2", "3"],
                &["PFADD", b, "3", "4"],
                &["PFCOUNT", a, b],
                &["PFCOUNT", a, b, "missing"],
                &["PFMERGE", c, a, b],
                &["PFCOUNT", c],
                &["PFMERGE", c],
                &["PFCOUNT", c],
                &["PFMERGE", "fresh"],
                &["PFCOUNT", "fresh"],
                &["PFDEBUG", "ENCODING", c],
            ],
            &[int(1), int(1), int(4), int(4), ok(), int(4), ok(), int(4), ok(), int(0), simple("sparse")],
        );
    }

    #[test]
    fn pfmerge_with_a_dense_source_writes_a_dense_destination() {
        let [a, b, c] = spread_keys();
        check(
            &[&["PFADD", a, "x"], &["PFDEBUG", "TODENSE", a], &["PFADD", b, "y"], &["PFMERGE", c, b, a], &["PFDEBUG", "ENCODING", c], &["PFCOUNT", c]],
            &[int(1), int(1), int(1), ok(), simple("dense"), int(2)],
        );
    }

    #[test]
    fn cross_shard_errors_come_from_the_first_bad_argument() {
        let [a, b, c] = spread_keys();
        let harness = Harness::default();
        put_list(&harness, b);
        harness.run(&["SET", c, "not an hll"]);
        assert_eq!(harness.run(&["PFCOUNT", a, c, b]), err(NOT_HLL));
        assert_eq!(harness.run(&["PFCOUNT", a, b, c]), err(WRONGTYPE));
        assert_eq!(harness.run(&["PFMERGE", a, b, c]), err(WRONGTYPE));
        assert_eq!(harness.run(&["EXISTS", a]), int(0));
    }

    #[test]
    fn pfcount_of_several_keys_does_not_modify_them() {
        let [a, b, _] = spread_keys();
        let harness = Harness::default();
        harness.run(&["PFADD", a, "x"]);
        harness.run(&["PFADD", b, "y"]);
        let before = harness.run(&["GET", a]);
        assert_eq!(harness.run(&["PFCOUNT", a, b]), int(2));
        assert_eq!(harness.run(&["GET", a]), before);
    }

    #[test]
    fn pfselftest_passes() {
        check(&[&["PFSELFTEST"]], &[ok()]);
    }

    #[test]
    fn small_sparse_limit_promotes_early() {
        let mut harness = Harness::default();
        harness.settings.hll_sparse_max_bytes = 30;
        harness.run(&["PFADD", "h", "a", "b", "c", "d", "e", "f", "g", "h"]);
        assert_eq!(harness.run(&["PFDEBUG", "ENCODING", "h"]), simple("dense"));
        assert_eq!(harness.run(&["PFCOUNT", "h"]), int(8));
    }
}

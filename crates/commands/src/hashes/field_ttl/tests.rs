use shoal_resp::Frame;

use crate::testing::replies::*;
use crate::testing::{check, check_at, Harness};

/// The harness's clock (Unix ms).
const NOW: i64 = 1_700_000_000_000;

fn ints(values: &[i64]) -> Frame {
    arr(values.iter().map(|&n| int(n)).collect())
}

fn values(items: &[Option<&str>]) -> Frame {
    arr(items.iter().map(|v| v.map_or(Frame::Null, bulk)).collect())
}

const FIELDS_MISSING: &str = "ERR Mandatory argument FIELDS is missing or not at the right position";
const FIELDS_MISMATCH: &str = "ERR The `numfields` parameter must match the number of arguments";
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn hexpire_sets_ttls_that_httl_and_friends_report() {
    check(
        &[
            &["HSET", "h", "f1", "v1", "f2", "v2", "f3", "v3"],
            &["HEXPIRE", "h", "10", "FIELDS", "2", "f2", "f3"],
            &["HTTL", "h", "FIELDS", "4", "f1", "f2", "f3", "nope"],
            &["HPTTL", "h", "FIELDS", "2", "f1", "f2"],
            &["HEXPIRETIME", "h", "FIELDS", "1", "f2"],
            &["HPEXPIRETIME", "h", "FIELDS", "1", "f2"],
            &["HPEXPIRE", "h", "1500", "FIELDS", "1", "f1"],
            &["HTTL", "h", "FIELDS", "1", "f1"],
            &["HEXPIREAT", "h", "1800000000", "FIELDS", "1", "f1"],
            &["HPEXPIRETIME", "h", "FIELDS", "1", "f1"],
            &["HPEXPIREAT", "h", "1800000000123", "FIELDS", "1", "f1"],
            &["HEXPIRETIME", "h", "FIELDS", "1", "f1"],
            &["HTTL", "missing", "FIELDS", "2", "a", "b"],
            &["HEXPIRE", "missing", "10", "FIELDS", "2", "a", "b"],
            &["HEXPIRE", "h", "10", "FIELDS", "1", "nope"],
            &["OBJECT", "ENCODING", "h"],
        ],
        &[
            int(3),
            ints(&[1, 1]),
            ints(&[-1, 10, 10, -2]),
            ints(&[-1, 10_000]),
            ints(&[NOW / 1000 + 10]),
            ints(&[NOW + 10_000]),
            ints(&[1]),
            ints(&[2]),
            ints(&[1]),
            ints(&[1_800_000_000_000]),
            ints(&[1]),
            ints(&[1_800_000_001]),
            ints(&[-2, -2]),
            ints(&[-2, -2]),
            ints(&[-2]),
            bulk("listpackex"),
        ],
    );
}

#[test]
fn conditions_treat_no_ttl_as_an_infinite_one() {
    check(
        &[
            &["HSET", "h", "a", "1", "b", "2"],
            // Without a TTL: XX and GT refuse, NX and LT set.
            &["HEXPIRE", "h", "100", "XX", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "100", "GT", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "100", "NX", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "100", "LT", "FIELDS", "1", "b"],
            // With one: NX refuses, XX sets, GT and LT compare strictly.
            &["HEXPIRE", "h", "200", "nx", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "100", "gt", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "200", "GT", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "200", "LT", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "50", "LT", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "60", "XX", "FIELDS", "2", "a", "nope"],
            &["HTTL", "h", "FIELDS", "2", "a", "b"],
        ],
        &[int(2), ints(&[0]), ints(&[0]), ints(&[1]), ints(&[1]), ints(&[0]), ints(&[0]), ints(&[1]), ints(&[0]), ints(&[1]), ints(&[1, -2]), ints(&[60, 100])],
    );
}

#[test]
fn an_expiry_not_in_the_future_deletes_the_field_and_the_emptied_hash() {
    check(
        &[
            &["HSET", "h", "a", "1", "b", "2"],
            &["HEXPIRE", "h", "0", "FIELDS", "1", "a"],
            &["HGETALL", "h"],
            &["HPEXPIREAT", "h", "1000", "GT", "FIELDS", "1", "b"],
            &["HPEXPIREAT", "h", "1000", "FIELDS", "1", "b"],
            &["EXISTS", "h"],
        ],
        &[int(2), ints(&[2]), Frame::Map(vec![(bulk("b"), bulk("2"))]), ints(&[0]), ints(&[2]), int(0)],
    );
}

#[test]
fn fields_expire_when_their_time_passes_and_the_last_takes_the_key() {
    check_at(
        &[
            (0, &["HSET", "h", "a", "1", "b", "2", "c", "3"]),
            (0, &["HPEXPIRE", "h", "100", "FIELDS", "1", "a"]),
            (0, &["HPEXPIRE", "h", "200", "FIELDS", "1", "b"]),
            (100, &["HGET", "h", "a"]),
            (101, &["HGET", "h", "a"]),
            (101, &["HLEN", "h"]),
            (101, &["HTTL", "h", "FIELDS", "1", "a"]),
            (150, &["HPERSIST", "h", "FIELDS", "3", "a", "b", "c"]),
            (150, &["HPEXPIRE", "h", "10", "FIELDS", "2", "b", "c"]),
            (161, &["HKEYS", "h"]),
            (161, &["EXISTS", "h"]),
        ],
        &[int(3), ints(&[1]), ints(&[1]), bulk("1"), Frame::Null, int(2), ints(&[-2]), ints(&[-2, 1, -1]), ints(&[1, 1]), arr(vec![]), int(0)],
    );
}

#[test]
fn writes_keep_or_drop_a_field_ttl_as_redis_does() {
    check(
        &[
            &["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"],
            &["HEXPIRE", "h", "100", "FIELDS", "4", "a", "b", "c", "d"],
            // HSET and HSETNX-after-HDEL drop it; HINCRBY and HINCRBYFLOAT keep it.
            &["HSET", "h", "a", "9"],
            &["HINCRBY", "h", "b", "1"],
            &["HINCRBYFLOAT", "h", "c", "1.5"],
            &["HDEL", "h", "d"],
            &["HSETNX", "h", "d", "5"],
            &["HTTL", "h", "FIELDS", "4", "a", "b", "c", "d"],
            // COPY and RENAME take the TTLs along.
            &["COPY", "h", "h2"],
            &["RENAME", "h2", "h3"],
            &["HTTL", "h3", "FIELDS", "2", "a", "b"],
        ],
        &[int(4), ints(&[1, 1, 1, 1]), int(0), int(3), bulk("4.5"), int(1), int(1), ints(&[-1, 100, 100, -1]), int(1), ok(), ints(&[-1, 100])],
    );
}

#[test]
fn hpersist_removes_ttls() {
    check(
        &[
            &["HSET", "h", "a", "1", "b", "2"],
            &["HEXPIRE", "h", "100", "FIELDS", "1", "a"],
            &["HPERSIST", "h", "FIELDS", "3", "a", "b", "nope"],
            &["HTTL", "h", "FIELDS", "1", "a"],
            &["HPERSIST", "missing", "FIELDS", "1", "a"],
        ],
        &[int(2), ints(&[1]), ints(&[1, -1, -2]), ints(&[-1]), ints(&[-2])],
    );
}

#[test]
fn bad_arguments_get_redis_errors_after_the_type_check() {
    check(
        &[
            &["HSET", "h", "a", "1"],
            &["SET", "s", "x"],
            &["HEXPIRE", "h", "10", "FIELD", "1", "a"],
            &["HEXPIRE", "h", "10", "NX", "1", "a"],
            &["HEXPIRE", "h", "10", "FIELDS", "0", "a"],
            &["HEXPIRE", "h", "10", "FIELDS", "abc", "a"],
            &["HEXPIRE", "h", "10", "FIELDS", "2", "a"],
            &["HEXPIRE", "h", "-1", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "x", "FIELDS", "1", "a"],
            &["HEXPIRE", "h", "70368744178", "FIELDS", "1", "a"],
            &["HPEXPIREAT", "h", "70368744177664", "FIELDS", "1", "a"],
            &["HPEXPIREAT", "h", "70368744177663", "FIELDS", "1", "a"],
            &["HEXPIRE", "s", "-1", "FIELD", "1", "a"],
            &["HTTL", "h", "FIELDS", "0", "a"],
            &["HTTL", "h", "FIELDS", "2", "a"],
            &["HTTL", "s", "FIELDS", "0", "a"],
            &["HPERSIST", "h", "NOTFIELDS", "1", "a"],
            &["HEXPIRE", "h", "10", "FIELDS", "1"],
        ],
        &[
            int(1),
            ok(),
            err(FIELDS_MISSING),
            err(FIELDS_MISSING),
            err("ERR Parameter `numFields` should be greater than 0"),
            err("ERR Parameter `numFields` should be greater than 0"),
            err(FIELDS_MISMATCH),
            err("ERR invalid expire time, must be >= 0"),
            err("ERR value is not an integer or out of range"),
            err("ERR invalid expire time in 'hexpire' command"),
            err("ERR invalid expire time in 'hpexpireat' command"),
            ints(&[1]),
            err(WRONGTYPE),
            err("ERR Number of fields must be a positive integer"),
            err(FIELDS_MISMATCH),
            err(WRONGTYPE),
            err(FIELDS_MISSING),
            err("ERR wrong number of arguments for 'hexpire' command"),
        ],
    );
}

#[test]
fn hgetdel_returns_and_removes() {
    check(
        &[
            &["HSET", "h", "a", "1", "b", "2", "c", "3"],
            &["HGETDEL", "h", "FIELDS", "2", "a", "nope"],
            &["HGETALL", "h"],
            &["HGETDEL", "h", "FIELDS", "2", "b", "c"],
            &["EXISTS", "h"],
            &["HGETDEL", "h", "FIELDS", "1", "a"],
            &["HGETDEL", "h", "FIELD", "1", "a"],
            &["HGETDEL", "h", "FIELDS", "0", "a"],
            &["HGETDEL", "h", "FIELDS", "2", "a"],
        ],
        &[
            int(3),
            values(&[Some("1"), None]),
            Frame::Map(vec![(bulk("b"), bulk("2")), (bulk("c"), bulk("3"))]),
            values(&[Some("2"), Some("3")]),
            int(0),
            values(&[None]),
            err(FIELDS_MISSING),
            err("ERR Number of fields must be a positive integer"),
            err(FIELDS_MISMATCH),
        ],
    );
}

#[test]
fn hgetex_reads_and_sets_or_clears_ttls() {
    check(
        &[
            &["HSET", "h", "a", "1", "b", "2"],
            &["HGETEX", "h", "FIELDS", "2", "a", "nope"],
            &["HGETEX", "h", "EX", "100", "FIELDS", "2", "a", "nope"],
            &["HTTL", "h", "FIELDS", "2", "a", "b"],
            &["HGETEX", "h", "PX", "5000", "FIELDS", "1", "b"],
            &["HGETEX", "h", "PERSIST", "FIELDS", "1", "a"],
            &["HTTL", "h", "FIELDS", "2", "a", "b"],
            &["HGETEX", "h", "EXAT", "1", "FIELDS", "2", "a", "b"],
            &["EXISTS", "h"],
            &["HGETEX", "h", "FIELDS", "1", "a"],
            &["HSET", "h", "a", "1"],
            &["HGETEX", "h", "EX", "-1", "FIELDS", "1", "a"],
            &["HGETEX", "h", "EX", "x", "FIELDS", "1", "a"],
            &["HGETEX", "h", "EX", "70368744178", "FIELDS", "1", "a"],
            &["HGETEX", "h", "KEEPTTL", "FIELDS", "1", "a"],
            &["HGETEX", "h", "FIELDS", "0", "a"],
            &["HGETEX", "h", "EX", "10", "FIELDS"],
        ],
        &[
            int(2),
            values(&[Some("1"), None]),
            values(&[Some("1"), None]),
            ints(&[100, -1]),
            values(&[Some("2")]),
            values(&[Some("1")]),
            ints(&[-1, 5]),
            values(&[Some("1"), Some("2")]),
            int(0),
            values(&[None]),
            int(1),
            err("ERR invalid expire time, must be >= 0"),
            err("ERR value is not an integer or out of range"),
            err("ERR invalid expire time in 'hgetex' command"),
            err(FIELDS_MISSING),
            err("ERR Number of fields must be a positive integer"),
            err("ERR wrong number of arguments for 'hgetex' command"),
        ],
    );
}

#[test]
fn hsetex_sets_values_with_conditions_and_ttls() {
    check(
        &[
            &["HSETEX", "h", "FXX", "FIELDS", "1", "a", "1"],
            &["EXISTS", "h"],
            &["HSETEX", "h", "FNX", "EX", "100", "FIELDS", "2", "a", "1", "b", "2"],
            &["HTTL", "h", "FIELDS", "2", "a", "b"],
            &["HSETEX", "h", "FNX", "FIELDS", "2", "b", "3", "c", "4"],
            &["HSETEX", "h", "FXX", "FIELDS", "2", "a", "5", "c", "4"],
            &["HSETEX", "h", "FXX", "KEEPTTL", "FIELDS", "1", "a", "6"],
            &["HSETEX", "h", "FIELDS", "1", "b", "7"],
            &["HTTL", "h", "FIELDS", "2", "a", "b"],
            &["HGETALL", "h"],
            &["HSETEX", "h", "PXAT", "1", "FIELDS", "2", "a", "8", "b", "9"],
            &["EXISTS", "h"],
        ],
        &[
            int(0),
            int(0),
            int(1),
            ints(&[100, 100]),
            int(0),
            int(0),
            int(1),
            int(1),
            ints(&[100, -1]),
            Frame::Map(vec![(bulk("a"), bulk("6")), (bulk("b"), bulk("7"))]),
            int(1),
            int(0),
        ],
    );
}

#[test]
fn hsetex_parses_its_options_before_the_key_type() {
    check(
        &[
            &["SET", "s", "x"],
            &["HSETEX", "s", "FIELDS", "1", "a", "1"],
            &["HSETEX", "s", "EX", "1", "PX", "1", "FIELDS", "1", "a", "1"],
            &["HSETEX", "s", "KEEPTTL", "EX", "1", "FIELDS", "1", "a", "1"],
            &["HSETEX", "s", "FXX", "FNX", "FIELDS", "1", "a", "1"],
            &["HSETEX", "s", "BOGUS", "FIELDS", "1", "a", "1"],
            &["HSETEX", "s", "FIELDS", "0", "a", "1"],
            &["HSETEX", "s", "FIELDS", "2", "a", "1"],
            &["HSETEX", "s", "FIELDS", "1", "a", "1", "b"],
            &["HSETEX", "s", "EX", "-5", "FIELDS", "1", "a", "1"],
            &["HSETEX", "s", "FIELDS", "1", "a"],
            &["HSETEX", "s", "FNX", "FXX", "EX", "1"],
        ],
        &[
            ok(),
            err(WRONGTYPE),
            err("ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified"),
            err("ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified"),
            err("ERR Only one of FXX or FNX arguments can be specified"),
            err("ERR unknown argument: BOGUS"),
            err("ERR invalid number of fields"),
            err("ERR wrong number of arguments for 'hsetex' command"),
            err("ERR wrong number of arguments for 'hsetex' command"),
            err("ERR invalid expire time, must be >= 0"),
            err("ERR wrong number of arguments for 'hsetex' command"),
            err("ERR Only one of FXX or FNX arguments can be specified"),
        ],
    );
}

#[test]
fn events_name_what_happened_to_the_fields() {
    let mut harness = Harness::notifying();
    harness.run(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    harness.run(&["HPEXPIRE", "h", "100", "FIELDS", "2", "a", "b"]);
    harness.run(&["HPERSIST", "h", "FIELDS", "1", "b"]);
    harness.run(&["HPEXPIRE", "h", "0", "FIELDS", "1", "c"]);
    let events = harness.take_events();
    assert_eq!(events, [("new", "h"), ("hset", "h"), ("hexpire", "h"), ("hpersist", "h"), ("hdel", "h")].map(|(e, k)| (e, k.to_owned())));
    // Fields expire lazily: `hexpired`, and `del` with the last, before the command's own.
    harness.now_ms += 101;
    assert_eq!(harness.run(&["HGET", "h", "a"]), Frame::Null);
    harness.run(&["HPEXPIRE", "h", "10", "FIELDS", "1", "b"]);
    harness.now_ms += 11;
    assert_eq!(harness.run(&["HLEN", "h"]), int(0));
    harness.run(&["HSET", "h", "x", "1"]);
    let events = harness.take_events();
    assert_eq!(
        events,
        [("hexpired", "h"), ("hexpire", "h"), ("hexpired", "h"), ("del", "h"), ("keymiss", "h"), ("new", "h"), ("hset", "h")].map(|(e, k)| (e, k.to_owned()))
    );
}

/// Every write that takes a field's TTL away (HDEL, HSET over it, HGETDEL, HPERSIST) keeps
/// the database's listing of hashes with field TTLs exact (`Db::check_invariants`), so INFO's
/// `subexpiry` counts right away.
#[test]
fn writes_keep_the_listing_of_hashes_with_field_ttls_exact() {
    let harness = Harness::default();
    let volatile = |harness: &Harness| -> usize {
        let shards = harness.shards.borrow();
        shards.iter().for_each(|shard| shard.dbs[0].check_invariants());
        shards.iter().map(|shard| shard.dbs[0].volatile_hashes()).sum()
    };
    for key in ["a", "b", "c", "d", "e"] {
        harness.run(&["HSET", key, "f", "1", "g", "2"]);
        harness.run(&["HEXPIRE", key, "100", "FIELDS", "1", "f"]);
    }
    assert_eq!(volatile(&harness), 5);
    harness.run(&["HDEL", "a", "f"]);
    harness.run(&["HSET", "b", "f", "9"]);
    harness.run(&["HGETDEL", "c", "FIELDS", "1", "f"]);
    harness.run(&["HPERSIST", "d", "FIELDS", "1", "f"]);
    assert_eq!(volatile(&harness), 1);
    harness.run(&["HINCRBY", "e", "f", "1"]);
    harness.run(&["HEXPIRE", "e", "50", "FIELDS", "1", "g"]);
    assert_eq!(volatile(&harness), 1);
    harness.run(&["RENAME", "e", "{x}e"]);
    harness.run(&["COPY", "{x}e", "{x}f"]);
    assert_eq!(volatile(&harness), 2);
    harness.run(&["DEL", "{x}e"]);
    harness.run(&["SET", "{x}f", "string"]);
    assert_eq!(volatile(&harness), 0);
}

//! Tests of the bitmap family through the dispatcher, on the three-shard harness. Expected
//! replies were read from redis-server 7.0 except where a comment says otherwise.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::testing::replies::*;
use crate::testing::{check, Harness, SHARDS};

const OFFSET_INVALID: &str = "ERR bit offset is not an integer or out of range";
const BIT_INVALID: &str = "ERR bit is not an integer or out of range";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const TYPE_INVALID: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

fn raw(bytes: &'static [u8]) -> Frame {
    Frame::Bulk(Bytes::from_static(bytes))
}

fn shard(key: &str) -> usize {
    shoal_store::slot::key_shard(key.as_bytes(), SHARDS)
}

/// Three keys on three different shards.
fn spread_keys() -> [&'static str; 3] {
    let mut found: Vec<&str> = Vec::new();
    for k in ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"] {
        if found.iter().all(|f| shard(f) != shard(k)) {
            found.push(k);
        }
    }
    [found[0], found[1], found[2]]
}

fn put_list(harness: &Harness, key: &str) {
    let mut shards = harness.shards.borrow_mut();
    shards[shard(key)].dbs[0].set(key.as_bytes(), shoal_store::Value::List(Box::default()), harness.now_ms);
}

fn put_bytes(harness: &Harness, key: &str, bytes: &[u8]) {
    let mut shards = harness.shards.borrow_mut();
    shards[shard(key)].dbs[0].set(key.as_bytes(), shoal_store::Value::Str(shoal_store::Str::from_bytes(bytes)), harness.now_ms);
}

#[test]
fn setbit_returns_the_old_bit_grows_the_string_and_makes_it_raw() {
    check(
        &[
            &["SETBIT", "b", "7", "1"],
            &["SETBIT", "b", "7", "0"],
            &["SETBIT", "b", "7", "1"],
            &["GET", "b"],
            &["OBJECT", "ENCODING", "b"],
            &["SETBIT", "b", "17", "1"],
            &["GET", "b"],
            &["SET", "i", "1"],
            &["SETBIT", "i", "7", "0"],
            &["GET", "i"],
            &["OBJECT", "ENCODING", "i"],
        ],
        &[int(0), int(1), int(0), raw(b"\x01"), bulk("raw"), int(0), raw(b"\x01\x00\x40"), ok(), int(1), bulk("0"), bulk("raw")],
    );
}

#[test]
fn setbit_keeps_the_ttl() {
    check(&[&["SETEX", "b", "100", "a"], &["SETBIT", "b", "0", "1"], &["TTL", "b"]], &[ok(), int(0), int(100)]);
}

#[test]
fn setbit_and_getbit_check_offset_then_value() {
    check(
        &[
            &["SETBIT", "b", "-1", "1"],
            &["SETBIT", "b", "x", "x"],
            &["SETBIT", "b", "1", "2"],
            &["SETBIT", "b", "1", "-1"],
            &["SETBIT", "b", "4294967296", "1"],
            &["SETBIT", "b", "4294967295", "x"],
            &["GETBIT", "b", "x"],
            &["GETBIT", "b", "4294967296"],
            &["EXISTS", "b"],
        ],
        &[
            err(OFFSET_INVALID),
            err(OFFSET_INVALID),
            err(BIT_INVALID),
            err(BIT_INVALID),
            err(OFFSET_INVALID),
            err(BIT_INVALID),
            err(OFFSET_INVALID),
            err(OFFSET_INVALID),
            int(0),
        ],
    );
}

#[test]
fn offsets_are_bounded_by_proto_max_bulk_len() {
    let mut harness = Harness::default();
    harness.settings.proto_max_bulk_len = 4;
    assert_eq!(harness.run(&["SETBIT", "b", "32", "1"]), err(OFFSET_INVALID));
    assert_eq!(harness.run(&["SETBIT", "b", "31", "1"]), int(0));
    assert_eq!(harness.run(&["STRLEN", "b"]), int(4));
    assert_eq!(harness.run(&["BITFIELD", "b", "GET", "u8", "#4"]), err(OFFSET_INVALID));
}

#[test]
fn getbit_reads_integers_as_their_digits_and_missing_bits_as_zero() {
    check(
        &[&["SET", "i", "255"], &["GETBIT", "i", "2"], &["GETBIT", "i", "0"], &["GETBIT", "i", "100000"], &["GETBIT", "missing", "3"]],
        &[ok(), int(1), int(0), int(0), int(0)],
    );
}

#[test]
fn bitcount_counts_bytes_or_bits() {
    check(
        &[
            &["SET", "s", "foobar"],
            &["BITCOUNT", "s"],
            &["BITCOUNT", "s", "0", "0"],
            &["BITCOUNT", "s", "1", "1"],
            &["BITCOUNT", "s", "1", "1", "BYTE"],
            &["BITCOUNT", "s", "5", "30", "BIT"],
            &["BITCOUNT", "s", "-2", "-1"],
            &["BITCOUNT", "s", "-1", "-2"],
            &["BITCOUNT", "s", "-100", "100"],
            &["BITCOUNT", "s", "10", "5"],
            &["SET", "i", "255"],
            &["BITCOUNT", "i", "1", "10", "bit"],
            &["BITCOUNT", "missing"],
        ],
        &[ok(), int(26), int(4), int(6), int(6), int(17), int(7), int(0), int(26), int(0), ok(), int(4), int(0)],
    );
}

#[test]
fn bitcount_checks_arguments_even_for_a_missing_key() {
    // Redis 7.2 and later; 7.0 answered 0 for a missing key.
    check(
        &[
            &["BITCOUNT", "missing", "0"],
            &["BITCOUNT", "missing", "a", "1"],
            &["BITCOUNT", "missing", "0", "1", "FOO"],
            &["BITCOUNT", "missing", "0", "1", "BIT", "x"],
        ],
        &[err(SYNTAX), err(NOT_INTEGER), err(SYNTAX), err(SYNTAX)],
    );
}

#[test]
fn bitpos_finds_set_and_clear_bits() {
    let harness = Harness::default();
    put_bytes(&harness, "ones", b"\xff\xff\xff");
    put_bytes(&harness, "z", b"\x00\x0f\x00");
    for (command, want) in [
        (&["BITPOS", "ones", "0"][..], int(24)),
        (&["BITPOS", "ones", "0", "1"], int(24)),
        (&["BITPOS", "ones", "0", "0", "-1"], int(-1)),
        (&["BITPOS", "ones", "0", "3", "12", "BIT"], int(-1)),
        (&["BITPOS", "ones", "0", "3", "BIT"], err(NOT_INTEGER)),
        (&["BITPOS", "ones", "1", "3", "12", "BIT"], int(3)),
        (&["BITPOS", "ones", "0", "5", "-1", "BIT"], int(-1)),
        (&["BITPOS", "z", "1"], int(12)),
        (&["BITPOS", "z", "1", "2"], int(-1)),
        (&["BITPOS", "z", "0", "1"], int(8)),
        (&["BITPOS", "z", "1", "13", "14", "bit"], int(13)),
        (&["BITPOS", "z", "1", "16", "-1", "bit"], int(-1)),
        (&["BITPOS", "z", "0", "-1"], int(16)),
        (&["BITPOS", "z", "1", "3", "1"], int(-1)),
        (&["BITPOS", "missing", "0"], int(0)),
        (&["BITPOS", "missing", "1"], int(-1)),
        (&["BITPOS", "z", "2"], err("ERR The bit argument must be 1 or 0.")),
        (&["BITPOS", "z", "1", "0", "-1", "BYTE", "x"], err(SYNTAX)),
        // Redis 7.2 and later check the arguments before the key.
        (&["BITPOS", "missing", "1", "0", "-1", "FOO"], err(SYNTAX)),
    ] {
        assert_eq!(harness.run(command), want, "{command:?}");
    }
}

#[test]
fn bitpos_on_an_empty_string_finds_nothing() {
    check(&[&["SET", "e", ""], &["BITPOS", "e", "0"], &["BITPOS", "e", "1"]], &[ok(), int(-1), int(-1)]);
}

#[test]
fn bitop_combines_pads_and_stores_raw_without_ttl() {
    let harness = Harness::default();
    put_bytes(&harness, "a", b"\x0f\xf0\xaa");
    put_bytes(&harness, "b", b"\xff\x01");
    for (command, want) in [
        (&["SETEX", "d", "100", "x"][..], ok()),
        (&["BITOP", "AND", "d", "a", "b"], int(3)),
        (&["GET", "d"], raw(b"\x0f\x00\x00")),
        (&["TTL", "d"], int(-1)),
        (&["OBJECT", "ENCODING", "d"], bulk("raw")),
        (&["BITOP", "or", "d", "a", "b", "missing"], int(3)),
        (&["GET", "d"], raw(b"\xff\xf1\xaa")),
        (&["BITOP", "XOR", "d", "a", "b"], int(3)),
        (&["GET", "d"], raw(b"\xf0\xf1\xaa")),
        (&["BITOP", "NOT", "d", "b"], int(2)),
        (&["GET", "d"], raw(b"\x00\xfe")),
        (&["BITOP", "NOT", "d", "a", "b"], err("ERR BITOP NOT must be called with a single source key.")),
        (&["BITOP", "NAND", "d", "a"], err(SYNTAX)),
        (&["BITOP", "AND", "d", "missing", "other"], int(0)),
        (&["EXISTS", "d"], int(0)),
    ] {
        assert_eq!(harness.run(command), want, "{command:?}");
    }
}

#[test]
fn bitop_across_shards_reads_every_source_and_writes_the_destination() {
    let [a, b, d] = spread_keys();
    let harness = Harness::default();
    put_bytes(&harness, a, b"\x0f\xf0");
    put_bytes(&harness, b, b"\xff");
    assert_eq!(harness.run(&["BITOP", "AND", d, a, b]), int(2));
    assert_eq!(harness.run(&["GET", d]), raw(b"\x0f\x00"));
    assert_eq!(harness.run(&["BITOP", "OR", a, a, b]), int(2));
    assert_eq!(harness.run(&["GET", a]), raw(b"\xff\xf0"));
    assert_eq!(harness.run(&["BITOP", "AND", d, "missing-x", "missing-y", "missing-z"]), int(0));
    assert_eq!(harness.run(&["EXISTS", d]), int(0));
    put_list(&harness, b);
    assert_eq!(harness.run(&["BITOP", "XOR", d, a, b]), err(WRONGTYPE));
    assert_eq!(harness.run(&["EXISTS", d]), int(0));
}

#[test]
fn bit_commands_on_other_types_are_wrongtype() {
    let harness = Harness::default();
    put_list(&harness, "l");
    for command in [
        &["SETBIT", "l", "1", "1"][..],
        &["GETBIT", "l", "1"],
        &["BITCOUNT", "l"],
        &["BITPOS", "l", "1"],
        &["BITOP", "AND", "d", "l"],
        &["BITFIELD", "l"],
        &["BITFIELD", "l", "SET", "u8", "0", "1"],
        &["BITFIELD_RO", "l", "GET", "u8", "0"],
    ] {
        assert_eq!(harness.run(command), err(WRONGTYPE), "{command:?}");
    }
}

#[test]
fn bitfield_gets_sets_and_increments() {
    check(
        &[
            &["BITFIELD", "bf", "SET", "i8", "0", "200"],
            &["BITFIELD", "bf", "GET", "u8", "0", "GET", "i8", "#0", "INCRBY", "u4", "4", "20", "GET", "u8", "0"],
            &["BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "-500", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "1000"],
            &["BITFIELD", "bf", "SET", "i64", "0", "-1", "GET", "u63", "0", "INCRBY", "i64", "0", "-9223372036854775808"],
            &["BITFIELD", "missing", "GET", "u8", "0"],
            &["EXISTS", "missing"],
            &["BITFIELD", "bf"],
            &["BITFIELD_RO", "bf", "GET", "u8", "0", "OVERFLOW", "FAIL"],
        ],
        &[
            arr(vec![int(0)]),
            arr(vec![int(200), int(-56), int(12), int(204)]),
            arr(vec![int(-128), Frame::Null]),
            arr(vec![int(i64::MIN), int(i64::MAX), int(i64::MAX)]),
            arr(vec![int(0)]),
            int(0),
            arr(vec![]),
            arr(vec![int(127)]),
        ],
    );
}

#[test]
fn bitfield_creates_and_grows_the_key_even_when_every_write_fails() {
    check(
        &[&["BITFIELD", "k", "OVERFLOW", "FAIL", "SET", "u2", "100", "7"], &["STRLEN", "k"], &["OBJECT", "ENCODING", "k"]],
        &[arr(vec![Frame::Null]), int(13), bulk("raw")],
    );
}

#[test]
fn bitfield_errors_in_argument_order() {
    check(
        &[
            &["BITFIELD", "bf", "OVERFLOW", "foo"],
            &["BITFIELD", "bf", "GET"],
            &["BITFIELD", "bf", "GET", "u8"],
            &["BITFIELD", "bf", "SET", "u8", "0"],
            &["BITFIELD", "bf", "foo"],
            &["BITFIELD", "bf", "GET", "i65", "0"],
            &["BITFIELD", "bf", "GET", "u64", "x"],
            &["BITFIELD", "bf", "GET", "u8", "-1"],
            &["BITFIELD", "bf", "SET", "u8", "0", "x"],
            &["BITFIELD", "bf", "GET", "u8", "0", "SET", "i8", "x", "1"],
            &["BITFIELD_RO", "bf", "GET", "u8", "0", "SET", "u8", "0", "1"],
            &["BITFIELD_RO", "bf", "INCRBY", "u8", "x", "1"],
            &["EXISTS", "bf"],
        ],
        &[
            err("ERR Invalid OVERFLOW type specified"),
            err(SYNTAX),
            err(SYNTAX),
            err(SYNTAX),
            err(SYNTAX),
            err(TYPE_INVALID),
            err(TYPE_INVALID),
            err(OFFSET_INVALID),
            err(NOT_INTEGER),
            err(OFFSET_INVALID),
            err("ERR BITFIELD_RO only supports the GET subcommand"),
            err(OFFSET_INVALID),
            int(0),
        ],
    );
}

#[test]
fn bitfield_hash_offsets_count_in_field_widths() {
    check(
        &[&["BITFIELD", "k", "SET", "u8", "#1", "255", "SET", "u4", "#1", "3"], &["GET", "k"], &["BITFIELD", "k", "GET", "u4", "#3"]],
        &[arr(vec![int(0), int(0)]), raw(b"\x03\xff"), arr(vec![int(15)])],
    );
}

#[test]
fn bitop_has_the_operations_of_redis_8_2() {
    // Expected values worked out by hand from Redis 8.2's definitions (the oracle is 7.0).
    let harness = Harness::default();
    put_bytes(&harness, "a", b"\x0f\xf0\xaa");
    put_bytes(&harness, "b", b"\xff\x01");
    put_bytes(&harness, "c", b"\x3c");
    for (command, want) in [
        (&["BITOP", "DIFF", "d", "a", "b", "c"][..], int(3)),
        (&["GET", "d"], raw(b"\x00\xf0\xaa")),
        (&["BITOP", "diff1", "d", "a", "b", "c"], int(3)),
        (&["GET", "d"], raw(b"\xf0\x01\x00")),
        (&["BITOP", "AndOr", "d", "a", "b", "c"], int(3)),
        (&["GET", "d"], raw(b"\x0f\x00\x00")),
        (&["BITOP", "ONE", "d", "a", "b", "c"], int(3)),
        (&["GET", "d"], raw(b"\xc0\xf1\xaa")),
        (&["BITOP", "ONE", "d", "b"], int(2)),
        (&["GET", "d"], raw(b"\xff\x01")),
        (&["BITOP", "diff", "d", "a"], err("ERR BITOP DIFF must be called with at least two source keys.")),
        (&["BITOP", "Diff1", "d", "a"], err("ERR BITOP DIFF1 must be called with at least two source keys.")),
        (&["BITOP", "ANDOR", "d", "a"], err("ERR BITOP ANDOR must be called with at least two source keys.")),
        (&["BITOP", "DIFF2", "d", "a", "b"], err(SYNTAX)),
    ] {
        assert_eq!(harness.run(command), want, "{command:?}");
    }
}

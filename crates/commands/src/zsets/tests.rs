//! Harness tests of the sorted set family, including the cross-core forms.

use shoal_resp::Frame;

use crate::testing::replies::*;
use crate::testing::{check, Harness, SHARDS};

fn double(v: f64) -> Frame {
    Frame::Double(v)
}

/// A RESP2 WITHSCORES reply: member, score, member, score...
fn scored(items: &[(&str, f64)]) -> Frame {
    arr(items.iter().flat_map(|(m, s)| [bulk(m), double(*s)]).collect())
}

/// Three keys owned by three different cores.
fn keys_on_three_cores() -> [String; 3] {
    let mut found: [Option<String>; 3] = [None, None, None];
    for i in 0.. {
        let key = format!("k{i}");
        let shard = shoal_store::slot::key_shard(key.as_bytes(), SHARDS);
        if found[shard].is_none() {
            found[shard] = Some(key);
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found.map(|k| k.expect("found"))
}

#[test]
fn zadd_adds_updates_and_counts_with_ch() {
    check(
        &[
            &["ZADD", "z", "1", "a", "2", "b"],
            &["ZADD", "z", "CH", "3", "a", "2", "b", "1", "c"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["ZADD", "z", "XX", "NX", "1", "a"],
            &["ZADD", "z", "GT", "LT", "1", "a"],
            &["ZADD", "z", "INCR", "1", "a", "1", "b"],
            &["ZADD", "z", "1", "a", "2"],
            &["ZADD", "z", "x", "a"],
            &["ZADD", "z", "NX", "INCR", "5", "a"],
            &["ZADD", "z", "GT", "CH", "1", "a", "9", "b"],
            &["ZINCRBY", "z", "inf", "a"],
            &["ZINCRBY", "z", "-inf", "a"],
            &["ZADD", "z", "XX", "1", "new"],
            &["ZCARD", "z"],
        ],
        &[
            int(2),
            int(2),
            scored(&[("c", 1.0), ("b", 2.0), ("a", 3.0)]),
            err("ERR XX and NX options at the same time are not compatible"),
            err("ERR GT, LT, and/or NX options at the same time are not compatible"),
            err("ERR INCR option supports a single increment-element pair"),
            err("ERR syntax error"),
            err("ERR value is not a valid float"),
            Frame::Null,
            int(1),
            double(f64::INFINITY),
            err("ERR resulting score is not a number (NaN)"),
            int(0),
            int(3),
        ],
    );
}

#[test]
fn range_replies_are_encoded_in_one_buffer_not_a_frame_per_member() {
    let harness = Harness::default();
    harness.run(&["ZADD", "z", "1", "a", "2", "b"]);
    for command in
        [&["ZRANGE", "z", "0", "-1"][..], &["ZRANGE", "z", "0", "-1", "WITHSCORES"], &["ZRANGEBYSCORE", "z", "-inf", "+inf"], &["ZRANGEBYLEX", "z", "-", "+"]]
    {
        let args = command.iter().map(|arg| bytes::Bytes::copy_from_slice(arg.as_bytes())).collect();
        let reply = harness.run_bytes_as_built(args);
        assert!(matches!(reply, Frame::Encoded(_)), "{command:?} gives {reply:?}");
    }
}

#[test]
fn ranges_by_rank_score_and_lex_with_limits() {
    check(
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
            &["ZRANGE", "z", "1", "-2"],
            &["ZRANGE", "z", "0", "1", "REV"],
            &["ZREVRANGE", "z", "0", "0", "WITHSCORES"],
            &["ZRANGE", "z", "(1", "+inf", "BYSCORE", "LIMIT", "1", "1"],
            &["ZRANGE", "z", "+inf", "(1", "BYSCORE", "REV", "LIMIT", "0", "2"],
            &["ZRANGEBYSCORE", "z", "-inf", "2", "WITHSCORES"],
            &["ZREVRANGEBYSCORE", "z", "3", "2"],
            &["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"],
            &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"],
            &["ZRANGEBYLEX", "z", "[b", "(d"],
            &["ZREVRANGEBYLEX", "z", "+", "[c"],
            &["ZRANGEBYLEX", "z", "b", "d"],
            &["ZRANGEBYSCORE", "z", "x", "1"],
            &["ZRANGE", "z", "0", "-1", "REV", "REV"],
            &["ZRANGE", "z", "(2", "(1", "BYSCORE"],
            &["ZRANGE", "z", "0", "-1", "BYSCORE", "LIMIT", "-1", "5"],
            &["ZCOUNT", "z", "(1", "3"],
            &["ZLEXCOUNT", "z", "-", "(c"],
            &["ZRANGE", "missing", "0", "-1"],
        ],
        &[
            int(4),
            strings(&["b", "c"]),
            strings(&["d", "c"]),
            scored(&[("d", 4.0)]),
            strings(&["c"]),
            strings(&["d", "c"]),
            scored(&[("a", 1.0), ("b", 2.0)]),
            strings(&["c", "b"]),
            err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"),
            err("ERR syntax error, WITHSCORES not supported in combination with BYLEX"),
            strings(&["b", "c"]),
            strings(&["d", "c"]),
            err("ERR min or max not valid string range item"),
            err("ERR min or max is not a float"),
            err("ERR syntax error"),
            strings(&[]),
            strings(&[]),
            int(2),
            int(2),
            strings(&[]),
        ],
    );
}

#[test]
fn ranks_scores_and_removals() {
    check(
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"],
            &["ZRANK", "z", "c"],
            &["ZREVRANK", "z", "c", "WITHSCORE"],
            &["ZRANK", "z", "nope", "WITHSCORE"],
            &["ZRANK", "z", "c", "x"],
            &["ZRANK", "z", "c", "WITHSCORE", "x"],
            &["ZSCORE", "z", "e"],
            &["ZMSCORE", "z", "a", "nope"],
            &["ZREMRANGEBYRANK", "z", "0", "0"],
            &["ZREMRANGEBYSCORE", "z", "(4", "+inf"],
            &["ZREMRANGEBYLEX", "z", "[b", "[b"],
            &["ZREM", "z", "c", "d", "x"],
            &["EXISTS", "z"],
            &["SET", "s", "v"],
            &["ZADD", "s", "1", "a"],
            &["ZRANGE", "s", "0", "-1"],
            &["ZRANGE", "s", "x", "-1"],
        ],
        &[
            int(5),
            int(2),
            arr(vec![int(2), double(3.0)]),
            Frame::NullArray,
            err("ERR syntax error"),
            err("ERR wrong number of arguments for 'zrank' command"),
            double(5.0),
            arr(vec![double(1.0), Frame::Null]),
            int(1),
            int(1),
            int(1),
            int(2),
            int(0),
            ok(),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            err("ERR value is not an integer or out of range"),
        ],
    );
}

#[test]
fn pops_take_from_either_end_and_delete_the_emptied_key() {
    check(
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
            &["ZPOPMIN", "z"],
            &["ZPOPMAX", "z", "5"],
            &["EXISTS", "z"],
            &["ZPOPMIN", "z", "-1"],
            &["ZPOPMIN", "z", "1", "2"],
            &["ZMPOP", "0", "z", "MIN"],
            &["ZMPOP", "1", "z", "MIN"],
        ],
        &[
            int(3),
            scored(&[("a", 1.0)]),
            scored(&[("c", 3.0), ("b", 2.0)]),
            int(0),
            err("ERR value is out of range, must be positive"),
            err("ERR syntax error"),
            err("ERR numkeys should be greater than 0"),
            Frame::NullArray,
        ],
    );
}

#[test]
fn zmpop_across_cores_pops_the_first_non_empty_key() {
    let [a, b, c] = keys_on_three_cores();
    check(
        &[
            &["ZADD", &b, "1", "x", "2", "y"],
            &["ZADD", &c, "1", "q"],
            &["ZMPOP", "3", &a, &b, &c, "MAX", "COUNT", "5"],
            &["SET", &a, "s"],
            &["ZMPOP", "3", &a, &b, &c, "MIN"],
            &["ZMPOP", "2", &b, &c, "MIN"],
        ],
        &[
            int(2),
            int(1),
            arr(vec![bulk(&b), arr(vec![arr(vec![bulk("y"), double(2.0)]), arr(vec![bulk("x"), double(1.0)])])]),
            ok(),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            arr(vec![bulk(&c), arr(vec![arr(vec![bulk("q"), double(1.0)])])]),
        ],
    );
}

#[test]
fn set_operations_across_cores_store_atomically_and_delete_an_empty_result() {
    let [a, b, c] = keys_on_three_cores();
    check(
        &[
            &["ZADD", &a, "1", "x", "2", "y"],
            &["ZADD", &b, "10", "y", "20", "z"],
            &["ZUNIONSTORE", &c, "2", &a, &b, "WEIGHTS", "1", "2"],
            &["ZRANGE", &c, "0", "-1", "WITHSCORES"],
            &["ZINTER", "2", &a, &b, "AGGREGATE", "MAX", "WITHSCORES"],
            &["ZDIFF", "2", &a, &b],
            &["ZINTERCARD", "2", &a, &b, "LIMIT", "0"],
            &["ZINTERSTORE", &c, "2", &a, "nokey"],
            &["EXISTS", &c],
            &["ZDIFFSTORE", &c, "2", &a, &b],
            &["ZRANGE", &c, "0", "-1"],
            &["ZUNION", "2", &a, &b, "WEIGHTS", "1"],
            &["ZUNION", "0", &a],
            &["ZUNION", "3", &a, &b],
            &["SET", "str", "v"],
            &["ZUNION", "2", &a, "str", "WEIGHTS", "x"],
            &["ZUNION", "1", &a, "WEIGHTS", "x"],
            &["ZINTERCARD", "1", &a, "LIMIT", "-1"],
            &["ZRANGESTORE", &c, &b, "0", "0", "REV"],
            &["ZRANGE", &c, "0", "-1", "WITHSCORES"],
            &["ZRANGESTORE", &c, "nokey", "0", "-1"],
            &["EXISTS", &c],
        ],
        &[
            int(2),
            int(2),
            int(3),
            scored(&[("x", 1.0), ("y", 22.0), ("z", 40.0)]),
            scored(&[("y", 10.0)]),
            strings(&["x"]),
            int(1),
            int(0),
            int(0),
            int(1),
            strings(&["x"]),
            err("ERR syntax error"),
            err("ERR at least 1 input key is needed for 'zunion' command"),
            err("ERR syntax error"),
            ok(),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            err("ERR weight value is not a float"),
            err("ERR LIMIT can't be negative"),
            int(1),
            scored(&[("z", 20.0)]),
            int(0),
            int(0),
        ],
    );
}

#[test]
fn zrandmember_and_zscan_shapes() {
    let harness = Harness::default();
    harness.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(harness.run(&["ZRANDMEMBER", "z", "10"]), strings(&["a", "b", "c"]));
    match harness.run(&["ZRANDMEMBER", "z", "-7", "WITHSCORES"]) {
        Frame::Array(items) => assert_eq!(items.len(), 14),
        other => panic!("{other:?}"),
    }
    match harness.run(&["ZRANDMEMBER", "z", "2"]) {
        Frame::Array(items) => {
            assert_eq!(items.len(), 2);
            assert_ne!(items[0], items[1], "distinct members");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(harness.run(&["ZRANDMEMBER", "z", "1", "x"]), err("ERR syntax error"));
    assert_eq!(harness.run(&["ZRANDMEMBER", "nokey"]), Frame::Null);
    assert_eq!(harness.run(&["ZSCAN", "z", "0", "MATCH", "[ab]"]), arr(vec![bulk("0"), strings(&["a", "1", "b", "2"])]));
    assert_eq!(harness.run(&["ZSCAN", "z", "0", "COUNT", "0"]), err("ERR syntax error"));
}

#[test]
fn a_big_set_scans_whole_through_its_cursor() {
    let harness = Harness::default();
    for i in 0..300 {
        harness.run(&["ZADD", "z", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(harness.run(&["OBJECT", "ENCODING", "z"]), bulk("skiplist"));
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let Frame::Array(reply) = harness.run(&["ZSCAN", "z", &cursor]) else { panic!() };
        let Frame::Bulk(next) = &reply[0] else { panic!() };
        let Frame::Array(items) = &reply[1] else { panic!() };
        for pair in items.chunks(2) {
            let Frame::Bulk(m) = &pair[0] else { panic!() };
            seen.insert(m.clone());
        }
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
    assert_eq!(harness.run(&["ZRANK", "z", "m150"]), int(150));
    assert_eq!(harness.run(&["ZRANGE", "z", "100", "101"]), strings(&["m100", "m101"]));
}

/// Redis 8.8's AGGREGATE COUNT: the input scores are ignored, each input counts its weight
/// for every member it holds (plain sets too), on one core and across cores.
#[test]
fn aggregate_count_counts_the_inputs_that_hold_each_member() {
    let [a, b, c] = keys_on_three_cores();
    check(
        &[
            &["ZADD", &a, "1", "foo", "1", "bar"],
            &["ZADD", &b, "2", "foo", "2", "bar"],
            &["SADD", &c, "foo"],
            &["ZUNION", "3", &a, &b, &c, "AGGREGATE", "COUNT", "WITHSCORES"],
            &["ZUNION", "3", &a, &b, &c, "WEIGHTS", "1", "10", "100", "AGGREGATE", "count", "WITHSCORES"],
            &["ZINTER", "3", &a, &b, &c, "AGGREGATE", "COUNT", "WITHSCORES"],
            &["ZUNIONSTORE", "{o}out", "2", "{o}x", "{o}y", "AGGREGATE", "COUNT"],
            &["ZADD", "{o}x", "5", "m", "7", "n"],
            &["ZADD", "{o}y", "9", "m"],
            &["ZINTERSTORE", "{o}out", "2", "{o}x", "{o}y", "WEIGHTS", "2", "3", "AGGREGATE", "COUNT"],
            &["ZRANGE", "{o}out", "0", "-1", "WITHSCORES"],
            &["ZUNION", "1", &a, "AGGREGATE", "AVG"],
        ],
        &[
            int(2),
            int(2),
            int(1),
            scored(&[("bar", 2.0), ("foo", 3.0)]),
            scored(&[("bar", 11.0), ("foo", 111.0)]),
            scored(&[("foo", 3.0)]),
            int(0),
            int(2),
            int(1),
            int(1),
            scored(&[("m", 5.0)]),
            err("ERR syntax error"),
        ],
    );
}

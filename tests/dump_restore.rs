//! DUMP and RESTORE against the real binary with four cores, and against Debian's
//! redis-server 7.0 (the oracle): payloads cross between the two servers in both directions
//! for every type and encoding, every error reply is compared byte for byte, and TTLs,
//! REPLACE, IDLETIME, FREQ, corrupted payloads, keys on every core and a blocked BLPOP woken
//! by a RESTORE are checked on both.
//!
//! Where Shoal's encodings follow Redis 7.2 (small sets of strings are listpacks; Redis 7.0
//! has no listpack sets) each fixture names the encoding each server reports.

use std::time::{Duration, Instant};

use shoal_testkit::{keys_on_distinct_cores, Raw, Server};
use shoal_tests::{shoal_and_redis, THREADS};

// ---- A small RESP reader for the replies these tests pick apart -------------------------

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

fn parse(bytes: &[u8]) -> Reply {
    let (reply, rest) = parse_one(bytes);
    assert!(rest.is_empty(), "one reply in {:?}", String::from_utf8_lossy(bytes));
    reply
}

fn parse_one(bytes: &[u8]) -> (Reply, &[u8]) {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n").expect("a reply line ends in CRLF");
    let line = std::str::from_utf8(&bytes[1..line_end]).expect("a header is text");
    let rest = &bytes[line_end + 2..];
    match bytes[0] {
        b'+' => (Reply::Simple(line.to_owned()), rest),
        b'-' => (Reply::Error(line.to_owned()), rest),
        b':' => (Reply::Int(line.parse().expect("an integer")), rest),
        b'$' => match line.parse::<i64>().expect("a length") {
            -1 => (Reply::Nil, rest),
            n => (Reply::Bulk(rest[..n as usize].to_vec()), &rest[n as usize + 2..]),
        },
        b'*' if line == "-1" => (Reply::Nil, rest),
        b'*' => {
            let mut items = Vec::new();
            let mut rest = rest;
            for _ in 0..line.parse::<usize>().expect("a count") {
                let (item, after) = parse_one(rest);
                items.push(item);
                rest = after;
            }
            (Reply::Array(items), rest)
        }
        other => panic!("unexpected reply type {:?}", other as char),
    }
}

/// Sends binary-safe `args` and parses the reply.
fn call(raw: &mut Raw, args: &[&[u8]]) -> Reply {
    parse(&raw.command_bytes(args).unwrap())
}

/// Sends text `args` and parses the reply.
fn cmd(raw: &mut Raw, args: &[&str]) -> Reply {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    call(raw, &args)
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

/// DUMP `key`: its payload.
fn dump(raw: &mut Raw, key: &str) -> Vec<u8> {
    match cmd(raw, &["DUMP", key]) {
        Reply::Bulk(payload) => payload,
        other => panic!("DUMP {key} gives a payload: {other:?}"),
    }
}

/// RESTORE `key` `ttl` `payload` `options...`.
fn restore(raw: &mut Raw, key: &str, ttl: &str, payload: &[u8], options: &[&str]) -> Reply {
    let mut args: Vec<&[u8]> = vec![b"RESTORE", key.as_bytes(), ttl.as_bytes(), payload];
    args.extend(options.iter().map(|o| o.as_bytes()));
    call(raw, &args)
}

/// The redis-server oracle, or None (with a note) when it is not installed; a panic under
/// SHOAL_REQUIRE_ALL=1.
fn redis() -> Option<Server> {
    let redis = Server::start_redis();
    if redis.is_none() {
        eprintln!("skipping the comparison with redis-server: not installed");
    }
    redis
}

// ---- Fixtures: one key of every type and encoding ------------------------------------------

/// A key built by `setup`, with the encoding each server gives it.
struct Fixture {
    name: &'static str,
    setup: Vec<Vec<String>>,
    shoal_encoding: &'static str,
    redis_encoding: &'static str,
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `command key` followed by `items`.
fn with_items(command: &str, key: &str, items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = words(&[command, key]);
    out.extend(items);
    out
}

/// Deterministic bytes that LZF cannot shrink (so DUMP stores them plain).
fn noise(len: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (b'!' + (state % 90) as u8) as char
        })
        .collect()
}

fn fixtures() -> Vec<Fixture> {
    let key = "src";
    let same = |name, setup, encoding| Fixture { name, setup, shoal_encoding: encoding, redis_encoding: encoding };
    vec![
        same("small int string", vec![words(&["SET", key, "12345"])], "int"),
        same("negative int string", vec![words(&["SET", key, "-9223372036854775808"])], "int"),
        same("embstr", vec![words(&["SET", key, "hello world"])], "embstr"),
        same("raw string", vec![words(&["SET", key, &"r".repeat(45)])], "raw"),
        same("long compressible string", vec![words(&["SET", key, &"abcdefgh".repeat(2000)])], "raw"),
        same("long incompressible string", vec![words(&["SET", key, &noise(300)])], "raw"),
        same("empty string", vec![words(&["SET", key, ""])], "embstr"),
        same("sparse hyperloglog", vec![words(&["PFADD", key, "a", "b", "c"])], "raw"),
        same("dense hyperloglog", vec![with_items("PFADD", key, (0..5000).map(|i| format!("e{i}")))], "raw"),
        Fixture {
            name: "small list",
            setup: vec![words(&["RPUSH", key, "a", "1", "-7", "bcd", &"x".repeat(70)])],
            // Redis 7.0 keeps every list in a quicklist; 7.2 (and Shoal) start with a listpack.
            shoal_encoding: "listpack",
            redis_encoding: "quicklist",
        },
        same("big list", vec![with_items("RPUSH", key, (0..3000).map(|i| format!("element-{i}")))], "quicklist"),
        same("list of repetitive long elements", vec![with_items("RPUSH", key, (0..40).map(|i| format!("{i}{}", "z".repeat(900))))], "quicklist"),
        same("small hash", vec![words(&["HSET", key, "f1", "v1", "f2", "22", "f3", ""])], "listpack"),
        same("big hash", vec![with_items("HSET", key, (0..600).flat_map(|i| [format!("field-{i}"), format!("value-{i}")]))], "hashtable"),
        same("hash with a long value", vec![words(&["HSET", key, "f", &"v".repeat(100)])], "hashtable"),
        same("intset", vec![words(&["SADD", key, "1", "-5", "300", "70000", "-9223372036854775808"])], "intset"),
        same("big intset", vec![with_items("SADD", key, (0..400).map(|i| (i * 7).to_string()))], "intset"),
        same("integers past the intset limit", vec![with_items("SADD", key, (0..600).map(|i| i.to_string()))], "hashtable"),
        Fixture { name: "small set of strings", setup: vec![words(&["SADD", key, "a", "bb", "ccc"])], shoal_encoding: "listpack", redis_encoding: "hashtable" },
        same("big set of strings", vec![with_items("SADD", key, (0..700).map(|i| format!("member-{i}")))], "hashtable"),
        same("small zset", vec![words(&["ZADD", key, "1.5", "a", "-2", "b", "inf", "c", "3", "d"])], "listpack"),
        same("big zset", vec![with_items("ZADD", key, (0..300).flat_map(|i| [format!("{}.25", i % 17), format!("member-{i}")]))], "skiplist"),
        same("zset with a long member", vec![words(&["ZADD", key, "1", &"m".repeat(100), "2", "short"])], "skiplist"),
    ]
}

/// The contents of `key` through the commands of its type, in an order both servers agree
/// on (sorted where Redis leaves the order unspecified).
fn contents(raw: &mut Raw, key: &str) -> Reply {
    let kind = cmd(raw, &["TYPE", key]);
    let Reply::Simple(kind) = kind else { panic!("TYPE {key}: {kind:?}") };
    match kind.as_str() {
        "string" => Reply::Array(vec![cmd(raw, &["GET", key]), cmd(raw, &["PFCOUNT", key])]),
        "list" => cmd(raw, &["LRANGE", key, "0", "-1"]),
        "hash" => {
            let Reply::Array(flat) = cmd(raw, &["HGETALL", key]) else { panic!("HGETALL is an array") };
            let mut pairs: Vec<Reply> = flat.chunks(2).map(|pair| Reply::Array(pair.to_vec())).collect();
            pairs.sort();
            Reply::Array(pairs)
        }
        "set" => {
            let Reply::Array(mut members) = cmd(raw, &["SMEMBERS", key]) else { panic!("SMEMBERS is an array") };
            members.sort();
            Reply::Array(members)
        }
        "zset" => cmd(raw, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        other => panic!("unexpected type {other}"),
    }
}

fn encoding(raw: &mut Raw, key: &str) -> Reply {
    cmd(raw, &["OBJECT", "ENCODING", key])
}

fn setup(raw: &mut Raw, fixture: &Fixture) {
    assert!(matches!(cmd(raw, &["DEL", "src", "dst"]), Reply::Int(_)));
    for command in &fixture.setup {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let reply = cmd(raw, &args);
        assert!(!matches!(reply, Reply::Error(_)), "{}: setup gives {reply:?}", fixture.name);
    }
}

/// Builds every fixture in `from`, moves it to `to` with DUMP and RESTORE, and checks that
/// the copy has the same contents and the encoding `to` gives such a value.
fn copy_every_fixture(from: &Server, to: &Server, from_is_shoal: bool) {
    let (mut from_raw, mut to_raw) = (from.raw(), to.raw());
    for fixture in fixtures() {
        setup(&mut from_raw, &fixture);
        let (from_encoding, to_encoding) =
            if from_is_shoal { (fixture.shoal_encoding, fixture.redis_encoding) } else { (fixture.redis_encoding, fixture.shoal_encoding) };
        assert_eq!(encoding(&mut from_raw, "src"), bulk(from_encoding), "{}: the source's encoding", fixture.name);
        let payload = dump(&mut from_raw, "src");
        assert!(matches!(cmd(&mut to_raw, &["DEL", "dst"]), Reply::Int(_)));
        assert_eq!(restore(&mut to_raw, "dst", "0", &payload, &[]), ok(), "{}: RESTORE", fixture.name);
        assert_eq!(contents(&mut to_raw, "dst"), contents(&mut from_raw, "src"), "{}: the copy's contents", fixture.name);
        assert_eq!(encoding(&mut to_raw, "dst"), bulk(to_encoding), "{}: the copy's encoding", fixture.name);
        assert_eq!(cmd(&mut to_raw, &["TTL", "dst"]), Reply::Int(-1), "{}: no TTL", fixture.name);
        // And back again: the payload the copy gives restores the same value where it came from.
        let back = dump(&mut to_raw, "dst");
        assert_eq!(restore(&mut from_raw, "back", "0", &back, &["REPLACE"]), ok(), "{}: RESTORE back", fixture.name);
        assert_eq!(contents(&mut from_raw, "back"), contents(&mut from_raw, "src"), "{}: the round trip's contents", fixture.name);
        assert_eq!(encoding(&mut from_raw, "back"), bulk(from_encoding), "{}: the round trip's encoding", fixture.name);
    }
}

#[test]
fn redis_payloads_of_every_type_and_encoding_restore_into_shoal() {
    let Some(redis) = redis() else { return };
    let shoal = Server::start(THREADS, &[]);
    copy_every_fixture(&redis, &shoal, false);
}

#[test]
fn shoal_payloads_of_every_type_and_encoding_restore_into_redis() {
    let Some(redis) = redis() else { return };
    let shoal = Server::start(THREADS, &[]);
    copy_every_fixture(&shoal, &redis, true);
}

/// Strings that DUMP stores uncompressed give the same payload bytes as Redis's. (Strings
/// that LZF shrinks are compressed differently, both valid: see the fixtures' round trips.)
#[test]
fn uncompressed_string_payloads_are_the_same_bytes_as_redis_s() {
    let Some(redis) = redis() else { return };
    let shoal = Server::start(THREADS, &[]);
    let (mut shoal_raw, mut redis_raw) = (shoal.raw(), redis.raw());
    let mut differ = Vec::new();
    let compressed = ["raw string", "long compressible string"];
    for fixture in fixtures().iter().filter(|f| f.setup[0][0] == "SET" && !compressed.contains(&f.name)) {
        setup(&mut shoal_raw, fixture);
        setup(&mut redis_raw, fixture);
        if dump(&mut shoal_raw, "src") != dump(&mut redis_raw, "src") {
            differ.push(fixture.name);
        }
    }
    assert!(differ.is_empty(), "DUMP's bytes differ for {differ:?}");
}

#[test]
fn restore_follows_the_configured_encoding_thresholds() {
    let Some(redis) = redis() else { return };
    let shoal = Server::start(THREADS, &[]);
    let mut redis_raw = redis.raw();
    assert_eq!(cmd(&mut redis_raw, &["RPUSH", "l", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(cmd(&mut redis_raw, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]), Reply::Int(3));
    let (list, zset) = (dump(&mut redis_raw, "l"), dump(&mut redis_raw, "z"));
    for server in [&shoal, &redis] {
        let mut raw = server.raw();
        assert_eq!(cmd(&mut raw, &["CONFIG", "SET", "zset-max-listpack-entries", "2"]), ok());
        assert_eq!(restore(&mut raw, "z2", "0", &zset, &[]), ok());
        assert_eq!(encoding(&mut raw, "z2"), bulk("skiplist"), "three members are past a limit of two (port {})", server.port);
        assert_eq!(cmd(&mut raw, &["CONFIG", "SET", "list-max-listpack-size", "2"]), ok());
        assert_eq!(restore(&mut raw, "l2", "0", &list, &[]), ok());
        assert_eq!(encoding(&mut raw, "l2"), bulk("quicklist"), "three elements are past a limit of two (port {})", server.port);
        assert_eq!(cmd(&mut raw, &["LRANGE", "l2", "0", "-1"]), Reply::Array(vec![bulk("a"), bulk("b"), bulk("c")]));
    }
}

// ---- Errors ------------------------------------------------------------------------------

#[test]
fn every_error_reply_is_redis_s_byte_for_byte() {
    let servers = shoal_and_redis(&[]);
    for server in &servers {
        let mut raw = server.raw();
        assert_eq!(cmd(&mut raw, &["SET", "k", "v"]), ok());
        let payload = dump(&mut raw, "k");
        let mut corrupt = payload.clone();
        corrupt[2] ^= 0x20;
        let mut bad_footer = payload.clone();
        let version_at = bad_footer.len() - 10;
        bad_footer[version_at] = 99;
        // A string whose length claims more bytes than the whole payload holds, with a valid
        // footer (CRC-64/Jones over everything before the checksum, as Redis computes it).
        let mut truncated = vec![0u8, 60, b'a', 10, 0];
        truncated.extend_from_slice(&crc64_jones(&truncated).to_le_bytes());
        // Redis decodes from the start of the whole payload: a string may run into the footer
        // (here it takes the version's two bytes), and bytes after a value are ignored.
        let mut into_footer = vec![0u8, 3, b'a', 10, 0];
        into_footer.extend_from_slice(&crc64_jones(&into_footer).to_le_bytes());
        let mut trailing = vec![0u8, 1, b'a', b'x', b'y', 10, 0];
        trailing.extend_from_slice(&crc64_jones(&trailing).to_le_bytes());
        let mut unknown_type = vec![99u8, 0, 10, 0];
        unknown_type.extend_from_slice(&crc64_jones(&unknown_type).to_le_bytes());
        let p: &[u8] = &payload;
        let cases: &[(&[&[u8]], &str)] = &[
            (&[b"RESTORE", b"k", b"0"], "-ERR wrong number of arguments for 'restore' command\r\n"),
            (&[b"DUMP"], "-ERR wrong number of arguments for 'dump' command\r\n"),
            (&[b"DUMP", b"k", b"x"], "-ERR wrong number of arguments for 'dump' command\r\n"),
            (&[b"RESTORE", b"k", b"0", p], "-BUSYKEY Target key name already exists.\r\n"),
            (&[b"RESTORE", b"k", b"-1", b"x"], "-BUSYKEY Target key name already exists.\r\n"),
            (&[b"RESTORE", b"k", b"x", b"x", b"NOPE"], "-ERR syntax error\r\n"),
            (&[b"RESTORE", b"n", b"0", p, b"REPLACE", b"IDLETIME"], "-ERR syntax error\r\n"),
            (&[b"RESTORE", b"n", b"0", p, b"FREQ"], "-ERR syntax error\r\n"),
            (&[b"RESTORE", b"n", b"0", p, b"IDLETIME", b"1", b"FREQ", b"1"], "-ERR syntax error\r\n"),
            (&[b"RESTORE", b"n", b"0", p, b"FREQ", b"1", b"IDLETIME", b"1"], "-ERR syntax error\r\n"),
            (&[b"RESTORE", b"k", b"0", p, b"IDLETIME", b"abc"], "-ERR value is not an integer or out of range\r\n"),
            (&[b"RESTORE", b"k", b"0", p, b"IDLETIME", b"-1"], "-ERR Invalid IDLETIME value, must be >= 0\r\n"),
            (&[b"RESTORE", b"k", b"0", p, b"FREQ", b"1.5"], "-ERR value is not an integer or out of range\r\n"),
            (&[b"RESTORE", b"k", b"0", p, b"FREQ", b"256"], "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n"),
            (&[b"RESTORE", b"k", b"0", p, b"FREQ", b"-1"], "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n"),
            (&[b"RESTORE", b"n", b"abc", p], "-ERR value is not an integer or out of range\r\n"),
            (&[b"RESTORE", b"k", b"abc", p, b"REPLACE"], "-ERR value is not an integer or out of range\r\n"),
            (&[b"RESTORE", b"n", b"-1", p], "-ERR Invalid TTL value, must be >= 0\r\n"),
            (&[b"RESTORE", b"n", b"0", b"x"], "-ERR DUMP payload version or checksum are wrong\r\n"),
            (&[b"RESTORE", b"n", b"0", b""], "-ERR DUMP payload version or checksum are wrong\r\n"),
            (&[b"RESTORE", b"n", b"0", &corrupt], "-ERR DUMP payload version or checksum are wrong\r\n"),
            (&[b"RESTORE", b"n", b"0", &bad_footer], "-ERR DUMP payload version or checksum are wrong\r\n"),
            (&[b"RESTORE", b"k", b"0", &corrupt, b"REPLACE"], "-ERR DUMP payload version or checksum are wrong\r\n"),
            (&[b"RESTORE", b"n", b"0", &truncated], "-ERR Bad data format\r\n"),
            (&[b"RESTORE", b"k", b"0", &unknown_type, b"REPLACE"], "-ERR Bad data format\r\n"),
            (&[b"RESTORE", b"f", b"0", &into_footer], "+OK\r\n"),
            (&[b"GET", b"f"], "$3\r\na\n\0\r\n"),
            (&[b"RESTORE", b"t", b"0", &trailing], "+OK\r\n"),
            (&[b"GET", b"t"], "$1\r\na\r\n"),
            (&[b"DUMP", b"missing"], "$-1\r\n"),
            (&[b"GET", b"k"], "$1\r\nv\r\n"),
            (&[b"EXISTS", b"n"], ":0\r\n"),
        ];
        for (request, expected) in cases {
            let reply = raw.command_bytes(request).unwrap();
            let shown: Vec<String> = request.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            assert_eq!(String::from_utf8_lossy(&reply), *expected, "{shown:?} on port {}", server.port);
        }
    }
}

/// CRC-64/Jones (reflected, polynomial 0xad93d23594c935a9), as Redis checks DUMP payloads.
fn crc64_jones(bytes: &[u8]) -> u64 {
    const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut crc: u64 = 0;
    for &byte in bytes {
        crc ^= byte as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY_REFLECTED } else { crc >> 1 };
        }
    }
    crc
}

#[test]
fn the_test_s_checksum_agrees_with_redis_payloads() {
    // DUMP of "v" in redis-server 7.0: type, value, version 10, then the CRC-64 of those.
    let payload = b"\x00\x01v\x0a\x00\x91\x08\xce\xb2\x19\x38\x8a\xce";
    let (body, crc) = payload.split_at(payload.len() - 8);
    assert_eq!(crc64_jones(body).to_le_bytes(), crc);
}

// ---- TTLs, REPLACE, IDLETIME, FREQ ---------------------------------------------------------

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

fn int(reply: Reply) -> i64 {
    match reply {
        Reply::Int(n) => n,
        other => panic!("an integer: {other:?}"),
    }
}

#[test]
fn ttls_relative_absolute_and_past_behave_as_in_redis() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut raw, &["SET", "k", "v"]), ok());
        let payload = dump(&mut raw, "k");

        assert_eq!(restore(&mut raw, "rel", "100000", &payload, &[]), ok());
        let pttl = int(cmd(&mut raw, &["PTTL", "rel"]));
        assert!((90_000..=100_000).contains(&pttl), "PTTL {pttl} after RESTORE with 100000 (port {port})");

        let at = (now_ms() + 3_600_000).to_string();
        assert_eq!(restore(&mut raw, "abs", &at, &payload, &["ABSTTL"]), ok());
        assert_eq!(cmd(&mut raw, &["PEXPIRETIME", "abs"]), Reply::Int(at.parse().unwrap()), "port {port}");

        let past = (now_ms() - 10_000).to_string();
        assert_eq!(restore(&mut raw, "past", &past, &payload, &["ABSTTL"]), ok(), "port {port}");
        assert_eq!(cmd(&mut raw, &["EXISTS", "past"]), Reply::Int(0), "an expiry in the past creates nothing (port {port})");
        assert_eq!(restore(&mut raw, "past", "1", &payload, &["ABSTTL"]), ok());
        assert_eq!(cmd(&mut raw, &["EXISTS", "past"]), Reply::Int(0), "port {port}");
        assert_eq!(restore(&mut raw, "huge", "9223372036854775807", &payload, &[]), ok());
        assert_eq!(cmd(&mut raw, &["EXISTS", "huge"]), Reply::Int(0), "now + i64::MAX wraps into the past (port {port})");
        assert_eq!(restore(&mut raw, "far", "9223372036854775807", &payload, &["ABSTTL"]), ok());
        assert_eq!(cmd(&mut raw, &["PEXPIRETIME", "far"]), Reply::Int(i64::MAX), "port {port}");

        assert_eq!(restore(&mut raw, "k", &past, &payload, &["ABSTTL", "REPLACE"]), ok());
        assert_eq!(cmd(&mut raw, &["EXISTS", "k"]), Reply::Int(0), "REPLACE with a past expiry deletes the key (port {port})");

        assert_eq!(restore(&mut raw, "zero", "0", &payload, &["ABSTTL"]), ok());
        assert_eq!(cmd(&mut raw, &["TTL", "zero"]), Reply::Int(-1), "TTL 0 is no TTL, even with ABSTTL (port {port})");
    }
}

#[test]
fn replace_overwrites_a_key_of_another_type_and_its_ttl() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut raw, &["HSET", "h", "f", "v"]), Reply::Int(1));
        let payload = dump(&mut raw, "h");
        assert_eq!(cmd(&mut raw, &["SADD", "target", "a", "b"]), Reply::Int(2));
        assert_eq!(cmd(&mut raw, &["EXPIRE", "target", "1000"]), Reply::Int(1));
        assert_eq!(restore(&mut raw, "target", "0", &payload, &[]), Reply::Error("BUSYKEY Target key name already exists.".into()));
        assert_eq!(cmd(&mut raw, &["TYPE", "target"]), Reply::Simple("set".into()), "a refused RESTORE changes nothing (port {port})");
        assert_eq!(restore(&mut raw, "target", "0", &payload, &["REPLACE"]), ok());
        assert_eq!(cmd(&mut raw, &["TYPE", "target"]), Reply::Simple("hash".into()), "port {port}");
        assert_eq!(cmd(&mut raw, &["HGETALL", "target"]), Reply::Array(vec![bulk("f"), bulk("v")]), "port {port}");
        assert_eq!(cmd(&mut raw, &["TTL", "target"]), Reply::Int(-1), "the old TTL went with the old value (port {port})");
        assert_eq!(restore(&mut raw, "target", "5000", &payload, &["replace"]), ok());
        assert!((1..=5).contains(&int(cmd(&mut raw, &["TTL", "target"]))), "port {port}");
    }
}

#[test]
fn idletime_shows_in_object_idletime() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut raw, &["SET", "k", "v"]), ok());
        let payload = dump(&mut raw, "k");
        assert_eq!(restore(&mut raw, "idle", "0", &payload, &["IDLETIME", "1000"]), ok());
        let idle = int(cmd(&mut raw, &["OBJECT", "IDLETIME", "idle"]));
        assert!((1000..=1001).contains(&idle), "OBJECT IDLETIME {idle} (port {port})");
        assert_eq!(restore(&mut raw, "twice", "0", &payload, &["IDLETIME", "5", "idletime", "70"]), ok());
        let idle = int(cmd(&mut raw, &["OBJECT", "IDLETIME", "twice"]));
        assert!((70..=71).contains(&idle), "the last IDLETIME wins: {idle} (port {port})");
        assert_eq!(restore(&mut raw, "fresh", "0", &payload, &["FREQ", "100"]), ok());
        assert!(int(cmd(&mut raw, &["OBJECT", "IDLETIME", "fresh"])) <= 1, "FREQ does not age a key under LRU (port {port})");
        // Beyond the 24-bit clock: both keep (clock - idle + 2^24 - 1) cut to 24 bits.
        assert_eq!(restore(&mut raw, "ancient", "0", &payload, &["IDLETIME", "99999999999"]), ok());
        let clock = (now_ms() / 1000) & ((1 << 24) - 1);
        let stored = (clock - 99_999_999_999 + (1 << 24) - 1).rem_euclid(1 << 24);
        let expected = if clock >= stored { clock - stored } else { (1 << 24) - 1 - stored + clock };
        let idle = int(cmd(&mut raw, &["OBJECT", "IDLETIME", "ancient"]));
        assert!((idle - expected).abs() <= 2, "OBJECT IDLETIME {idle}, expected about {expected} (port {port})");
    }
}

#[test]
fn freq_shows_in_object_freq_under_an_lfu_policy() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut raw, &["SET", "k", "v"]), ok());
        let payload = dump(&mut raw, "k");
        assert_eq!(cmd(&mut raw, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]), ok());
        // Shoal keeps no LFU counter: OBJECT FREQ derives one from the access time, so
        // counters up to LFU_INIT_VAL (5) are what it can show.
        for freq in 0..=5 {
            let key = format!("f{freq}");
            assert_eq!(restore(&mut raw, &key, "0", &payload, &["FREQ", &freq.to_string()]), ok());
            assert_eq!(cmd(&mut raw, &["OBJECT", "FREQ", &key]), Reply::Int(freq), "RESTORE ... FREQ {freq} (port {port})");
        }
        assert_eq!(restore(&mut raw, "plain", "0", &payload, &[]), ok());
        assert_eq!(cmd(&mut raw, &["OBJECT", "FREQ", "plain"]), Reply::Int(5), "a restored key starts at LFU_INIT_VAL (port {port})");
        assert_eq!(restore(&mut raw, "idle", "0", &payload, &["IDLETIME", "100000"]), ok());
        assert_eq!(cmd(&mut raw, &["OBJECT", "FREQ", "idle"]), Reply::Int(5), "IDLETIME is ignored under LFU (port {port})");
    }
}

// ---- Cores, corruption, blocked clients, the table -------------------------------------------

#[test]
fn keys_on_every_core_dump_and_restore_onto_other_cores() {
    let shoal = Server::start(THREADS, &[]);
    let mut raw = shoal.raw();
    let keys = keys_on_distinct_cores("dr", THREADS, THREADS);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(cmd(&mut raw, &["RPUSH", key, key, &i.to_string()]), Reply::Int(2));
    }
    for (i, key) in keys.iter().enumerate() {
        let payload = dump(&mut raw, key);
        // Onto the next core's key, replacing its list.
        let target = &keys[(i + 1) % keys.len()];
        assert_eq!(restore(&mut raw, &format!("{target}:copy"), "0", &payload, &[]), ok());
        assert_eq!(restore(&mut raw, target, "0", &payload, &[]), Reply::Error("BUSYKEY Target key name already exists.".into()));
    }
    for (i, key) in keys.iter().enumerate() {
        let source = &keys[(i + keys.len() - 1) % keys.len()];
        let expected = Reply::Array(vec![bulk(source), bulk(&((i + keys.len() - 1) % keys.len()).to_string())]);
        assert_eq!(cmd(&mut raw, &["LRANGE", &format!("{key}:copy"), "0", "-1"]), expected, "{key}:copy holds {source}'s list");
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused_and_changes_nothing() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut raw, &["HSET", "h", "a", "1", "b", "2"]), Reply::Int(2));
        let payload = dump(&mut raw, "h");
        for at in 0..payload.len() {
            let mut corrupt = payload.clone();
            corrupt[at] ^= 0x01;
            assert_eq!(
                restore(&mut raw, "h", "0", &corrupt, &["REPLACE"]),
                Reply::Error("ERR DUMP payload version or checksum are wrong".into()),
                "byte {at} flipped (port {port})"
            );
        }
        assert_eq!(cmd(&mut raw, &["HGETALL", "h"]), Reply::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]), "port {port}");
    }
}

/// The `blocked_clients` field of INFO clients.
fn blocked_clients(raw: &mut Raw) -> String {
    let Reply::Bulk(info) = cmd(raw, &["INFO", "clients"]) else { panic!("INFO is a bulk string") };
    let info = String::from_utf8(info).expect("INFO is text");
    info.lines().find_map(|line| line.strip_prefix("blocked_clients:")).unwrap_or_default().to_owned()
}

#[test]
fn a_restored_list_wakes_a_client_blocked_on_it() {
    for server in shoal_and_redis(&[]) {
        let mut control = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut control, &["RPUSH", "src", "first", "second"]), Reply::Int(2));
        let payload = dump(&mut control, "src");
        let keys = keys_on_distinct_cores("wake", THREADS, THREADS);
        let mut waiters = Vec::new();
        for key in &keys {
            let mut waiter = server.raw();
            waiter.set_read_timeout(Duration::from_secs(20));
            waiter.send(&Raw::encode(&["BLPOP", key, "0"]));
            waiters.push(waiter);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while blocked_clients(&mut control) != keys.len().to_string() {
            assert!(Instant::now() < deadline, "{} clients blocked in time (port {port})", keys.len());
            std::thread::sleep(Duration::from_millis(5));
        }
        for (key, waiter) in keys.iter().zip(&mut waiters) {
            assert_eq!(restore(&mut control, key, "0", &payload, &[]), ok());
            let reply = parse(&waiter.read_reply_bytes().unwrap());
            assert_eq!(reply, Reply::Array(vec![bulk(key), bulk("first")]), "BLPOP {key} (port {port})");
            assert_eq!(cmd(&mut control, &["LRANGE", key, "0", "-1"]), Reply::Array(vec![bulk("second")]), "port {port}");
        }
    }
}

#[test]
fn command_info_matches_redis_s_shape() {
    let Some(redis) = redis() else { return };
    let shoal = Server::start(THREADS, &[]);
    for name in ["dump", "restore", "migrate"] {
        let info = |server: &Server| {
            let Reply::Array(mut commands) = cmd(&mut server.raw(), &["COMMAND", "INFO", name]) else { panic!("COMMAND INFO is an array") };
            let Reply::Array(mut fields) = commands.remove(0) else { panic!("{name} is in the table of port {}", server.port) };
            // Name, arity, flags, first key, last key, step, ACL categories; key specs and
            // tips are described elsewhere (see the server's command_docs).
            fields.truncate(7);
            fields
        };
        assert_eq!(info(&shoal), info(&redis), "COMMAND INFO {name}");
    }
}

#[test]
fn restore_fails_a_watch_only_when_it_changes_the_key() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        let mut other = server.raw();
        let port = server.port;
        assert_eq!(cmd(&mut raw, &["SET", "k", "v"]), ok());
        let payload = dump(&mut raw, "k");
        let exec_after = |raw: &mut Raw, other: &mut Raw, key: &str, ttl: &str, options: &[&str]| {
            assert_eq!(cmd(raw, &["WATCH", key]), ok());
            let restored = restore(other, key, ttl, &payload, options);
            assert_eq!(cmd(raw, &["MULTI"]), ok());
            assert_eq!(cmd(raw, &["PING"]), Reply::Simple("QUEUED".into()));
            (restored, cmd(raw, &["EXEC"]))
        };
        let pong = Reply::Array(vec![Reply::Simple("PONG".into())]);
        assert_eq!(exec_after(&mut raw, &mut other, "new", "0", &[]), (ok(), Reply::Nil), "a created key fails the EXEC (port {port})");
        assert_eq!(exec_after(&mut raw, &mut other, "gone", "1", &["ABSTTL"]), (ok(), pong.clone()), "a key never created leaves the EXEC alone (port {port})");
        assert_eq!(
            exec_after(&mut raw, &mut other, "k", "0", &[]),
            (Reply::Error("BUSYKEY Target key name already exists.".into()), pong),
            "a refused RESTORE leaves the EXEC alone (port {port})"
        );
        assert_eq!(exec_after(&mut raw, &mut other, "k", "1", &["ABSTTL", "REPLACE"]), (ok(), Reply::Nil), "a deleted key fails the EXEC (port {port})");
    }
}

#[test]
fn mutated_payloads_with_valid_checksums_are_restored_or_refused_never_crash() {
    use rand::{Rng, SeedableRng};
    let shoal = Server::start(THREADS, &[]);
    let mut raw = shoal.raw();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for fixture in fixtures() {
        setup(&mut raw, &fixture);
        let payload = dump(&mut raw, "src");
        let body = &payload[..payload.len() - 10];
        for _ in 0..40 {
            let mut mutated = body.to_vec();
            for _ in 0..rng.random_range(1..=3) {
                let at = rng.random_range(0..mutated.len());
                mutated[at] = if rng.random_bool(0.5) { rng.random() } else { mutated[at] ^ (1 << rng.random_range(0..8)) };
            }
            if rng.random_bool(0.2) {
                mutated.truncate(rng.random_range(1..=mutated.len()));
            }
            mutated.extend_from_slice(&10u16.to_le_bytes());
            let crc = crc64_jones(&mutated);
            mutated.extend_from_slice(&crc.to_le_bytes());
            match restore(&mut raw, "m", "0", &mutated, &["REPLACE"]) {
                Reply::Simple(reply) if reply == "OK" => {
                    // Whatever was accepted reads back, and dumps to a payload that restores.
                    let copy = dump(&mut raw, "m");
                    assert_eq!(restore(&mut raw, "m2", "0", &copy, &["REPLACE"]), ok(), "{}: {mutated:?}", fixture.name);
                    assert_eq!(contents(&mut raw, "m2"), contents(&mut raw, "m"), "{}: {mutated:?}", fixture.name);
                }
                Reply::Error(error) => assert_eq!(error, "ERR Bad data format", "{}: {mutated:?}", fixture.name),
                other => panic!("{}: RESTORE gives {other:?} for {mutated:?}", fixture.name),
            }
        }
    }
    assert_eq!(cmd(&mut raw, &["PING"]), Reply::Simple("PONG".into()));
}

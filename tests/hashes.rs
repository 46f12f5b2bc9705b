//! Integration and differential tests of the hash commands against the real shoal-server.
//!
//! The differential test sends seeded random hash commands (valid and not) to Debian's
//! redis-server and to Shoal and compares every reply byte for byte. Two kinds of keys keep
//! the comparison exact where Redis's order is determined: "small" keys (`s1`, `s2`, `{t}s3`)
//! only ever get a few short fields, so they stay listpack-encoded and every reply, HGETALL
//! and HSCAN included, must match in order; "big" keys (`b1`, `{t}b2`) get many fields and
//! long values, so they convert to hashtables, and the replies whose order Redis leaves
//! unspecified are sorted before comparing. HRANDFIELD is compared where it is determined:
//! a count at least the size returns every field; otherwise only the reply's shape, and for a
//! positive count that its fields are distinct.
//!
//! Replay one sequence with `SHOAL_DIFF_SEED=7 SHOAL_DIFF_LEN=300 cargo test -p shoal-tests
//! --test hashes -- --nocapture`; SHOAL_DIFF_VERBOSE=1 prints every command and reply.
//!
//! Not covered by the differential test: NOVALUES (Redis 7.4; the oracle is 7.0, so the
//! handler tests cover it) and negative HRANDFIELD counts so large that Redis would run out
//! of memory building the reply.

use std::time::Duration;

use rand::Rng;
use shoal_testkit::Server;
use shoal_tests::diff::{self, bytes, Gen, Generated};
use shoal_tests::{assert_replies, encoding, shoal_and_redis, THREADS};

/// The hash commands, with Redis's arity and a relative weight; then key-space commands that
/// interact with hashes.
const COMMANDS: &[(&str, i32, u32)] = &[
    ("HSET", -4, 5),
    ("HSETNX", 4, 1),
    ("HMSET", -4, 1),
    ("HGET", 3, 2),
    ("HMGET", -3, 1),
    ("HDEL", -3, 2),
    ("HLEN", 2, 1),
    ("HSTRLEN", 3, 1),
    ("HEXISTS", 3, 1),
    ("HKEYS", 2, 1),
    ("HVALS", 2, 1),
    ("HGETALL", 2, 2),
    ("HINCRBY", 4, 2),
    ("HINCRBYFLOAT", 4, 2),
    ("HRANDFIELD", -2, 2),
    ("HSCAN", -3, 2),
    ("DEL", -2, 1),
    ("SET", -3, 1),
    ("TYPE", 2, 1),
    ("OBJECT ENCODING", 3, 1),
];

/// Directives both servers run with: few entries, so big keys convert often.
const DIRECTIVES: &[&str] = &["--hash-max-listpack-entries", "8"];

/// Keys that stay listpack-encoded (at most 6 short fields), keys that grow, a string key for
/// WRONGTYPE, and one never written. `{t}` keys share a core; the rest spread out.
const SMALL_KEYS: &[&str] = &["s1", "s2", "{t}s3"];
const BIG_KEYS: &[&str] = &["b1", "{t}b2"];
const OTHER_KEYS: &[&str] = &["str", "missing"];

const SMALL_FIELDS: &[&str] = &["a", "b", "c", "d", "e", ""];

/// Values of at most 19 bytes (so small keys stay listpack-encoded): numbers, text, empty.
const VALUES: &[&str] =
    &["0", "1", "-1", "42", "10.5", "9223372036854775807", "-9223372036854775808", "abc", "", "hello world", "3.0", "1e5", " 1", "inf", "0x10", "00", "-0"];

const INTEGERS: &[&str] =
    &["0", "1", "-1", "7", "-100", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "abc", "", "1.5", " 1", "+1", "01", "-0"];

/// Increments whose sums stay short (for small keys).
const SHORT_FLOATS: &[&str] = &["1.5", "-0.25", "0.1", "10", "abc", "", "inf", "-inf", "nan", "+inf", "0x10", " 1", "1.", ".5", "5e", "-0", "3.0e-2", "7"];
/// Increments with long sums, for big keys only.
const LONG_FLOATS: &[&str] = &["1e308", "-1e308", "1e-320", "17179869184.5", "1e50"];

const SEEDS: std::ops::RangeInclusive<u64> = 1..=12;
const LEN_DEFAULT: usize = 300;

struct Generator {
    base: Gen,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator { base: Gen::new(seed) }
    }

    /// A key: mostly hashes, small more often than big.
    fn key(&mut self) -> Vec<u8> {
        bytes(match self.base.rng.random_range(0..10) {
            0..=4 => self.base.pick(SMALL_KEYS),
            5..=7 => self.base.pick(BIG_KEYS),
            _ => self.base.pick(OTHER_KEYS),
        })
    }

    fn is_big(key: &[u8]) -> bool {
        BIG_KEYS.iter().any(|k| k.as_bytes() == key)
    }

    fn field(&mut self, key: &[u8]) -> Vec<u8> {
        if !Self::is_big(key) {
            return self.base.pick_bytes(SMALL_FIELDS);
        }
        match self.base.rng.random_range(0..30) {
            0 => vec![b'F'; 65],
            1 => self.base.pick_bytes(SMALL_FIELDS),
            n => format!("f{}", n % 14).into_bytes(),
        }
    }

    fn value(&mut self, key: &[u8]) -> Vec<u8> {
        if Self::is_big(key) && self.base.chance(10) {
            return vec![b'v'; self.base.rng.random_range(60..70)];
        }
        match self.base.rng.random_range(0..10) {
            0..=6 => self.base.pick_bytes(VALUES),
            7 => self.base.rng.random_range(-1000i64..1000).to_string().into_bytes(),
            _ => {
                let len = self.base.rng.random_range(0..12);
                (0..len).map(|_| b"abcxyz019 -*?"[self.base.rng.random_range(0..13)]).collect()
            }
        }
    }

    fn pairs(&mut self, key: &[u8], args: &mut Vec<Vec<u8>>) {
        let max = if Self::is_big(key) { 10 } else { 3 };
        for _ in 0..self.base.rng.random_range(1..=max) {
            args.push(self.field(key));
            args.push(self.value(key));
        }
        // An odd count passes the table's arity but not the command's.
        if self.base.chance(5) {
            args.pop();
        }
    }

    fn generate(&mut self) -> Generated {
        let (name, arity) = self.base.command(COMMANDS);
        if self.base.chance(4) {
            return self.base.wrong_arity(name, arity, &[SMALL_KEYS, BIG_KEYS, OTHER_KEYS].concat());
        }
        let key = self.key();
        let mut args: Vec<Vec<u8>> = self.base.name(name);
        match name {
            "HSET" | "HMSET" => {
                args.push(key.clone());
                self.pairs(&key, &mut args);
            }
            "HSETNX" => {
                args.push(key.clone());
                args.push(self.field(&key));
                args.push(self.value(&key));
            }
            "HGET" | "HSTRLEN" | "HEXISTS" => {
                args.push(key.clone());
                args.push(self.field(&key));
            }
            "HMGET" | "HDEL" => {
                args.push(key.clone());
                for _ in 0..self.base.rng.random_range(1..=4) {
                    args.push(self.field(&key));
                }
            }
            "HLEN" | "HKEYS" | "HVALS" | "HGETALL" | "TYPE" | "OBJECT ENCODING" => args.push(key),
            "DEL" => {
                // Deleting hashes too often keeps them small; delete mostly other keys.
                let key = if self.base.chance(30) { key } else { self.base.pick_bytes(OTHER_KEYS) };
                args.push(key);
            }
            "SET" => {
                args.push(b"str".to_vec());
                args.push(self.value(b"str"));
            }
            "HINCRBY" => {
                args.push(key.clone());
                args.push(self.field(&key));
                args.push(self.base.integer(60, -50, 49, INTEGERS));
            }
            "HINCRBYFLOAT" => {
                args.push(key.clone());
                args.push(self.field(&key));
                let increment = if Self::is_big(&key) && self.base.chance(20) { self.base.pick(LONG_FLOATS) } else { self.base.pick(SHORT_FLOATS) };
                args.push(bytes(increment));
            }
            "HRANDFIELD" => {
                args.push(key);
                if self.base.chance(80) {
                    let count = if self.base.chance(80) {
                        self.base.rng.random_range(-6i64..=25).to_string()
                    } else {
                        // Never a huge negative count Redis would honour: it would run out of memory.
                        self.base.pick(&["abc", "", "-9223372036854775808", "9223372036854775807", "4611686018427387904", "1.5"]).to_string()
                    };
                    args.push(count.into_bytes());
                    match self.base.rng.random_range(0..10) {
                        0..=4 => {}
                        5..=8 => args.push(self.base.case("WITHVALUES")),
                        _ => args.push(self.base.pick_bytes(&["FOO", "WITHVALUE"])),
                    }
                    if self.base.chance(3) {
                        args.push(self.base.case("WITHVALUES"));
                    }
                }
            }
            "HSCAN" => {
                args.push(key.clone());
                // Where a hashtable's walk goes from a cursor other than 0 is Shoal's own.
                let cursors: &[&str] = if Self::is_big(&key) { &["abc", "", "18446744073709551616"] } else { &["abc", "-1", "", "18446744073709551616", "7"] };
                args.push(bytes(if self.base.chance(90) { "0" } else { self.base.pick(cursors) }));
                self.scan_options(&key, &mut args);
            }
            other => unreachable!("no arguments for {other}"),
        }
        Generated { label: name, args }
    }

    /// HSCAN's options: a big key always gets a COUNT that completes the scan in one call, so
    /// the reply is determined but for its order.
    fn scan_options(&mut self, key: &[u8], args: &mut Vec<Vec<u8>>) {
        for _ in 0..self.base.rng.random_range(0..3) {
            match self.base.rng.random_range(0..10) {
                0..=3 => {
                    args.push(self.base.case("MATCH"));
                    args.push(bytes(self.base.pick(&["*", "a*", "f1*", "*[bc]", "?", "", "f\\1"])));
                }
                4..=6 => {
                    args.push(self.base.case("COUNT"));
                    args.push(self.base.pick_bytes(&["1", "2", "5", "0", "-1", "abc"]));
                }
                7 => args.push(self.base.case("COUNT")),
                8 => args.push(self.base.pick_bytes(&["TYPE", "FOO"])),
                _ => {
                    args.push(bytes("TYPE"));
                    args.push(bytes("hash"));
                }
            }
        }
        if Self::is_big(key) {
            args.push(self.base.case("COUNT"));
            args.push(bytes("1000"));
        }
    }
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }

    fn normalise(&self, generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
        if reply.first() == Some(&b'-') || generated.args.len() < 2 {
            return reply;
        }
        let big = Self::is_big(&generated.args[1]);
        match generated.label {
            "HKEYS" | "HVALS" if big => diff::sorted(reply),
            "HGETALL" if big => diff::sorted_in_groups(reply, 2),
            "HSCAN" => normalise_hscan(reply),
            "HRANDFIELD" => normalise_hrandfield(&generated.args, reply),
            _ => reply,
        }
    }
}

/// Sorts HSCAN's (field, value) pairs; the cursor stays as it is (big keys are scanned in
/// one call, so it is 0 on both servers).
fn normalise_hscan(reply: Vec<u8>) -> Vec<u8> {
    let Some((header, parts)) = diff::elements(&reply) else {
        return reply;
    };
    let [cursor, items] = parts.as_slice() else {
        return reply;
    };
    let mut out = header;
    out.extend_from_slice(cursor);
    out.extend(diff::sorted_in_groups(items.clone(), 2));
    out
}

/// HRANDFIELD: without a count, only whether a field came back; with a count that returned
/// fewer than asked (the whole hash), the sorted reply; otherwise the reply's shape, and for a
/// positive count whether the fields are distinct.
fn normalise_hrandfield(args: &[Vec<u8>], reply: Vec<u8>) -> Vec<u8> {
    let Some(count) = args.get(2).and_then(|c| std::str::from_utf8(c).ok()).and_then(|c| c.parse::<i64>().ok()) else {
        return match reply.first() {
            Some(b'$') => b"(a field)".to_vec(),
            _ => reply,
        };
    };
    let with_values = args.len() == 4;
    let Some((header, elements)) = diff::elements(&reply) else {
        return reply;
    };
    // RESP2 WITHVALUES is flat (field, value, ...); RESP3 nests each pair.
    let flat_pairs = with_values && elements.first().is_some_and(|e| e[0] == b'$');
    let group = if flat_pairs { 2 } else { 1 };
    let picked = elements.len() / group;
    if count >= 0 && (picked as i64) < count {
        return diff::sorted_in_groups(reply, group);
    }
    let fields: Vec<&Vec<u8>> = elements.iter().step_by(group).collect();
    let distinct = fields.iter().collect::<std::collections::BTreeSet<_>>().len() == fields.len();
    let shape: Vec<u8> = elements.iter().map(|e| e[0]).collect();
    let mut out = header;
    out.extend_from_slice(format!("shape {} distinct {}", diff::show(&shape), if count >= 0 { distinct } else { true }).as_bytes());
    out
}

fn differential(threads: usize) {
    let must: Vec<&str> = COMMANDS.iter().map(|(name, _, _)| *name).collect();
    diff::run("hashes", threads, DIRECTIVES, SEEDS, LEN_DEFAULT, &must, Generator::new);
}

#[test]
fn random_hash_commands_reply_like_redis_with_four_threads() {
    differential(THREADS);
}

#[test]
fn random_hash_commands_reply_like_redis_with_two_threads() {
    differential(2);
}

// ---- Encodings ---------------------------------------------------------------------------

/// `HSET key f0 v f1 v ...` with `n` fields, as one request.
fn hset_fields(key: &str, n: usize, from: usize) -> Vec<String> {
    let mut args = vec!["HSET".to_string(), key.to_string()];
    for i in from..from + n {
        args.push(format!("field{i}"));
        args.push("v".to_string());
    }
    args
}

fn command(raw: &mut shoal_testkit::Raw, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    raw.command(&args).unwrap()
}

const LISTPACK: &str = "$8\r\nlistpack\r\n";
const HASHTABLE: &str = "$9\r\nhashtable\r\n";

#[test]
fn a_hash_converts_past_512_fields_and_never_back() {
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        assert_eq!(command(&mut raw, &hset_fields("h", 512, 0)), ":512\r\n");
        assert_eq!(encoding(&mut raw, "h"), LISTPACK, "512 fields on port {}", server.port);
        assert_eq!(command(&mut raw, &hset_fields("h", 1, 512)), ":1\r\n");
        assert_eq!(encoding(&mut raw, "h"), HASHTABLE, "513 fields on port {}", server.port);
        assert_eq!(raw.command(&["HDEL", "h", "field0", "field1", "field512"]).unwrap(), ":3\r\n");
        assert_eq!(encoding(&mut raw, "h"), HASHTABLE, "never back, on port {}", server.port);
        assert_eq!(raw.command(&["HLEN", "h"]).unwrap(), ":510\r\n");
        assert_eq!(raw.command(&["HGET", "h", "field511"]).unwrap(), "$1\r\nv\r\n");
        // 513 fields in one HSET convert too.
        assert_eq!(command(&mut raw, &hset_fields("one", 513, 0)), ":513\r\n");
        assert_eq!(encoding(&mut raw, "one"), HASHTABLE);
    }
}

#[test]
fn a_field_or_value_over_64_bytes_converts() {
    let (at, over) = ("x".repeat(64), "x".repeat(65));
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["HSET", "v", "f", &at], ":1\r\n"),
            (&["HSET", "v", &at, "1"], ":1\r\n"),
            (&["OBJECT", "ENCODING", "v"], LISTPACK),
            (&["HSET", "v", "f", &over], ":0\r\n"),
            (&["OBJECT", "ENCODING", "v"], HASHTABLE),
            (&["HSET", "k", &over, "1"], ":1\r\n"),
            (&["OBJECT", "ENCODING", "k"], HASHTABLE),
            // HSETNX of an existing field writes nothing and so converts nothing.
            (&["HSET", "n", "f", "1"], ":1\r\n"),
            (&["HSETNX", "n", "f", &over], ":0\r\n"),
            (&["OBJECT", "ENCODING", "n"], LISTPACK),
            (&["HSETNX", "n", "g", &over], ":1\r\n"),
            (&["OBJECT", "ENCODING", "n"], HASHTABLE),
            // HINCRBY checks the field's length when it writes.
            (&["HINCRBY", "i", &over, "1"], ":1\r\n"),
            (&["OBJECT", "ENCODING", "i"], HASHTABLE),
            // An HSET that only updates still converts when one of its arguments is long.
            (&["HSET", "u", "f", "1"], ":1\r\n"),
            (&["HMSET", "u", "f", "2", "g", &over], "+OK\r\n"),
            (&["OBJECT", "ENCODING", "u"], HASHTABLE),
            (&["HGET", "v", "f"], &format!("$65\r\n{over}\r\n")),
            (&["HGET", "v", &at], "$1\r\n1\r\n"),
        ],
    );
}

#[test]
fn config_set_of_the_thresholds_applies_to_later_writes() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["HSET", "old", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"], ":5\r\n"),
            (&["CONFIG", "SET", "hash-max-listpack-entries", "4"], "+OK\r\n"),
            (&["HSET", "new", "a", "1", "b", "2", "c", "3", "d", "4"], ":4\r\n"),
            (&["OBJECT", "ENCODING", "new"], LISTPACK),
            (&["HSET", "new", "e", "5"], ":1\r\n"),
            (&["OBJECT", "ENCODING", "new"], HASHTABLE),
            // An existing hash over the new limit converts on its next write, even an update.
            (&["OBJECT", "ENCODING", "old"], LISTPACK),
            (&["HSETNX", "old", "a", "9"], ":0\r\n"),
            (&["OBJECT", "ENCODING", "old"], LISTPACK),
            (&["HINCRBY", "old", "a", "1"], ":2\r\n"),
            (&["OBJECT", "ENCODING", "old"], HASHTABLE),
            (&["CONFIG", "SET", "hash-max-ziplist-entries", "0"], "+OK\r\n"),
            (&["HSET", "zero", "a", "1"], ":1\r\n"),
            (&["OBJECT", "ENCODING", "zero"], HASHTABLE),
            (&["CONFIG", "SET", "hash-max-listpack-entries", "128", "hash-max-listpack-value", "3"], "+OK\r\n"),
            (&["HSET", "short", "abc", "123"], ":1\r\n"),
            (&["OBJECT", "ENCODING", "short"], LISTPACK),
            (&["HINCRBYFLOAT", "short", "abc", "0.5"], "$5\r\n123.5\r\n"),
            (&["OBJECT", "ENCODING", "short"], HASHTABLE),
        ],
    );
}

// ---- Random commands on hashtables ---------------------------------------------------------

#[test]
fn hrandfield_and_hscan_of_a_hashtable_return_real_pairs() {
    let server = Server::start(THREADS, &[]);
    let mut client = server.client();
    let pairs: Vec<(String, String)> = (0..600).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    let _: () = redis::cmd("HSET").arg("h").arg(&pairs).query(&mut client).unwrap();
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("h").query(&mut client).unwrap();
    assert_eq!(encoding, "hashtable");
    let value_of = |field: &str| format!("v{}", &field[1..]);

    let fields: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(50).query(&mut client).unwrap();
    assert_eq!(fields.len(), 50);
    assert_eq!(fields.iter().collect::<std::collections::BTreeSet<_>>().len(), 50, "distinct");
    let fields: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(500).query(&mut client).unwrap();
    assert_eq!(fields.iter().collect::<std::collections::BTreeSet<_>>().len(), 500, "distinct when most are asked for");
    let flat: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(-2000).arg("WITHVALUES").query(&mut client).unwrap();
    assert_eq!(flat.len(), 4000);
    for pair in flat.chunks(2) {
        assert_eq!(pair[1], value_of(&pair[0]), "a value comes with its own field");
    }
    let distinct = flat.iter().step_by(2).collect::<std::collections::BTreeSet<_>>().len();
    assert!(distinct > 400, "2000 picks of 600 fields spread out ({distinct} distinct)");
    let all: Vec<String> = redis::cmd("HRANDFIELD").arg("h").arg(601).query(&mut client).unwrap();
    assert_eq!(all.len(), 600);

    let mut seen = std::collections::BTreeMap::new();
    let mut cursor = 0u64;
    let mut calls = 0;
    loop {
        let (next, items): (u64, Vec<String>) = redis::cmd("HSCAN").arg("h").arg(cursor).arg("COUNT").arg(30).query(&mut client).unwrap();
        for pair in items.chunks(2) {
            assert_eq!(pair[1], value_of(&pair[0]));
            seen.insert(pair[0].clone(), pair[1].clone());
        }
        calls += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(calls < 1000, "the scan ends");
    }
    assert_eq!(seen.len(), 600, "a full scan returns every field");
    assert!(calls > 5, "COUNT bounds each call ({calls} calls)");

    let (next, fields): (u64, Vec<String>) =
        redis::cmd("HSCAN").arg("h").arg(0).arg("MATCH").arg("f1?").arg("COUNT").arg(10000).arg("NOVALUES").query(&mut client).unwrap();
    assert_eq!(next, 0);
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, (10..20).map(|i| format!("f1{}", i % 10)).collect::<Vec<_>>());
}

#[test]
fn hgetall_is_a_map_and_hrandfield_gives_pairs_in_resp3() {
    let exchanges: &[(&[&str], &str)] = &[
        (&["HSET", "h", "a", "1", "b", "2"], ":2\r\n"),
        (&["HGETALL", "h"], "%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"),
        (&["HGETALL", "missing"], "%0\r\n"),
        (&["HKEYS", "missing"], "*0\r\n"),
        (&["HRANDFIELD", "h", "5", "WITHVALUES"], "*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"),
        (&["HRANDFIELD", "h", "5"], "*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
        (&["HRANDFIELD", "missing"], "_\r\n"),
        (&["HRANDFIELD", "missing", "-2", "WITHVALUES"], "*0\r\n"),
        (&["HGET", "h", "x"], "_\r\n"),
        (&["HMGET", "h", "a", "x"], "*2\r\n$1\r\n1\r\n_\r\n"),
    ];
    for server in shoal_and_redis(&[]) {
        let mut raw = server.raw();
        assert!(raw.command(&["HELLO", "3"]).unwrap().starts_with('%'));
        for (request, expected) in exchanges {
            assert_eq!(&raw.command(request).unwrap(), expected, "{request:?} on port {}", server.port);
        }
    }
}

#[test]
fn hashes_keep_their_ttl_and_move_between_cores_whole() {
    let servers = shoal_and_redis(&[]);
    let keys = shoal_testkit::keys_on_distinct_cores("h", 3, THREADS);
    let (a, b, c) = (keys[0].as_str(), keys[1].as_str(), keys[2].as_str());
    assert_replies(
        &servers,
        &[
            (&["HSET", a, "z", "1", "y", "2", "x", "3"], ":3\r\n"),
            (&["EXPIRE", a, "1000"], ":1\r\n"),
            (&["HSET", a, "w", "4"], ":1\r\n"),
            (&["HINCRBY", a, "z", "10"], ":11\r\n"),
            (&["HDEL", a, "y"], ":1\r\n"),
            (&["TTL", a], ":1000\r\n"),
            (&["RENAME", a, b], "+OK\r\n"),
            (&["HGETALL", b], "*6\r\n$1\r\nz\r\n$2\r\n11\r\n$1\r\nx\r\n$1\r\n3\r\n$1\r\nw\r\n$1\r\n4\r\n"),
            (&["TTL", b], ":1000\r\n"),
            (&["COPY", b, c], ":1\r\n"),
            (&["HDEL", b, "z", "x", "w"], ":3\r\n"),
            (&["EXISTS", b], ":0\r\n"),
            (&["TTL", b], ":-2\r\n"),
            (&["HKEYS", c], "*3\r\n$1\r\nz\r\n$1\r\nx\r\n$1\r\nw\r\n"),
            (&["OBJECT", "ENCODING", c], LISTPACK),
            (&["TYPE", c], "+hash\r\n"),
        ],
    );
    for server in &servers {
        let mut raw = server.raw();
        assert_eq!(command(&mut raw, &hset_fields(a, 600, 0)), ":600\r\n");
        assert_eq!(raw.command(&["COPY", a, b]).unwrap(), ":1\r\n");
        assert_eq!(encoding(&mut raw, b), HASHTABLE, "a copy keeps the encoding, on port {}", server.port);
        assert_eq!(raw.command(&["HLEN", b]).unwrap(), ":600\r\n");
        assert_eq!(raw.command(&["HGET", b, "field599"]).unwrap(), "$1\r\nv\r\n");
    }
}

/// HGETALL, HKEYS and HVALS replies are encoded straight from the hash (no frame per field):
/// in both protocols, inside MULTI/EXEC and through scripts, from a listpack (whose order Redis
/// fixes), they are Redis's.
#[test]
fn whole_hash_replies_are_redis_bytes_in_both_protocols_in_transactions_and_scripts() {
    let setup: &[&[&str]] = &[&["HSET", "h", "f", "v", "empty", "", "n", "12", "x y", "1.5"]];
    let requests: &[&[&str]] = &[&["HGETALL", "nokey"], &["HKEYS", "nokey"], &["HVALS", "nokey"], &["HGETALL", "h"], &["HKEYS", "h"], &["HVALS", "h"]];
    shoal_tests::assert_replies_like_redis(&[], setup, requests);
}

/// Hash field TTLs (Redis 7.4) on a 4-core server: fields expire on their own (the active
/// cycle), with no command touching the hash; a subscriber hears `hexpired`, then `del` when
/// the last field goes; INFO counts them (`expired_subkeys`, keyspace `subexpiry`).
#[test]
fn hash_fields_expire_on_their_own_and_say_so() {
    let server = Server::start(THREADS, &["--notify-keyspace-events", "KEA"]);
    let mut watcher = server.raw();
    watcher.command(&["SUBSCRIBE", "__keyevent@0__:hexpired"]).unwrap();
    watcher.command(&["SUBSCRIBE", "__keyevent@0__:del"]).unwrap();
    let mut raw = server.raw();
    assert_eq!(raw.command(&["HSET", "h", "a", "1", "b", "2"]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["HPEXPIRE", "h", "100", "FIELDS", "1", "a"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["HPEXPIRE", "h", "300", "FIELDS", "1", "b"]).unwrap(), "*1\r\n:1\r\n");
    assert!(raw.command(&["INFO", "keyspace"]).unwrap().contains("db0:keys=1,expires=0,avg_ttl=0,subexpiry=1\r\n"));
    watcher.set_read_timeout(Duration::from_secs(5));
    let expected = ["__keyevent@0__:hexpired", "__keyevent@0__:hexpired", "__keyevent@0__:del"];
    for channel in expected {
        let message = watcher.read_reply().unwrap();
        assert_eq!(message, format!("*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n$1\r\nh\r\n", channel.len()));
    }
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":0\r\n");
    let stats = raw.command(&["INFO", "stats"]).unwrap();
    assert!(stats.contains("expired_subkeys:2\r\n"), "{stats}");
}

/// A watched hash whose field expires fails the EXEC, as Redis signals the key when a field
/// expires; a field TTL that has not passed leaves the EXEC alone.
#[test]
fn a_field_expiring_fails_the_exec_of_a_client_watching_its_hash() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["HSET", "h", "a", "1", "b", "2"]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["HSET", "far", "a", "1"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HPEXPIRE", "h", "100", "FIELDS", "1", "a"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["HEXPIRE", "far", "600", "FIELDS", "1", "a"]).unwrap(), "*1\r\n:1\r\n");
    let exec = |raw: &mut shoal_testkit::Raw, watched: &str| {
        assert_eq!(raw.command(&["WATCH", watched]).unwrap(), "+OK\r\n");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(raw.command(&["MULTI"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "x", "1"]).unwrap(), "+QUEUED\r\n");
        raw.command(&["EXEC"]).unwrap()
    };
    assert_eq!(exec(&mut raw, "h"), "*-1\r\n", "field a expired after the WATCH");
    assert_eq!(exec(&mut raw, "far"), "*1\r\n+OK\r\n");
    assert_eq!(exec(&mut raw, "h"), "*1\r\n+OK\r\n", "no field of h has a TTL any more");
}

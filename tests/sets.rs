//! Integration and differential tests of the set commands, against the real shoal-server.
//!
//! - A differential test: seeded random sequences of every set command (valid and invalid
//!   arguments, keys on one core and on several) go to Debian's redis-server and to Shoal,
//!   and every reply is compared byte for byte after normalisation: member order is sorted
//!   away, random replies (SPOP, SRANDMEMBER) are compared only where Redis determines them
//!   (their length, or the whole set when the count covers it), and a random SPOP is
//!   followed by a DEL of its key so that the two keyspaces stay equal. SSCAN is compared
//!   exactly only when one call must return everything (cursor 0, COUNT 1000): otherwise the
//!   cursor depends on each server's hash function. OBJECT ENCODING is not compared: Debian's
//!   oracle is Redis 7.0, which has no listpack sets.
//! - Atomicity: SMOVE ping-pong between two cores under several clients, while readers check
//!   that SUNION always sees every member exactly once.
//! - Encodings: OBJECT ENCODING at Redis 7.2's thresholds, also after CONFIG SET.
//!
//! Replay one differential sequence with `SHOAL_DIFF_SEED=7 SHOAL_DIFF_LEN=300 cargo test -p
//! shoal-tests --test sets -- --nocapture` (SHOAL_DIFF_VERBOSE=1 prints every command).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shoal_testkit::{key_core, keys_on_distinct_cores, Server};
use shoal_tests::diff::{self, Gen, Generated};
use shoal_tests::{assert_replies, connect, encoding, THREADS};

// ---- the differential test ----------------------------------------------------------------

/// Every command the generator knows, with Redis's arity and its weight.
const COMMANDS: &[(&str, i32, u32)] = &[
    ("SADD", -3, 8),
    ("SREM", -3, 3),
    ("SCARD", 2, 1),
    ("SISMEMBER", 3, 2),
    ("SMISMEMBER", -3, 2),
    ("SMEMBERS", 2, 2),
    ("SRANDMEMBER", -2, 2),
    ("SPOP", -2, 2),
    ("SMOVE", 4, 3),
    ("SINTER", -2, 2),
    ("SINTERCARD", -3, 2),
    ("SINTERSTORE", -3, 2),
    ("SUNION", -2, 2),
    ("SUNIONSTORE", -3, 2),
    ("SDIFF", -2, 2),
    ("SDIFFSTORE", -3, 2),
    ("SSCAN", -3, 2),
    ("SET", -3, 1),
    ("DEL", -2, 1),
    ("TYPE", 2, 1),
];

/// Keys: three share the hash tag `{t}` (one core), the rest spread over the cores.
const KEYS: &[&str] = &["{t}a", "{t}b", "{t}c", "s1", "s2", "s3", "s4", "x", ""];

/// Members: integers (intsets), their non-canonical look-alikes, and strings.
const MEMBERS: &[&str] = &[
    "a",
    "b",
    "c",
    "d",
    "hello world",
    "",
    "0",
    "1",
    "2",
    "3",
    "10",
    "-5",
    "007",
    "-0",
    "+1",
    "1.5",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "70000",
    "3000000000",
];

/// SPOP and SRANDMEMBER counts. No count below -1000: Redis would build any negative count's
/// reply however large (Shoal refuses past a bound; see the sets module).
const COUNTS: &[&str] = &["0", "1", "2", "3", "5", "1000", "-1", "-3", "-20", "abc", "", "1.5", "9223372036854775808", "-9223372036854775808"];

const SEEDS: std::ops::RangeInclusive<u64> = 1..=12;
const LEN: usize = 300;

struct Generator {
    base: Gen,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator { base: Gen::new(seed) }
    }

    fn key(&mut self) -> Vec<u8> {
        self.base.pick_bytes(KEYS)
    }

    fn keys(&mut self, max: usize) -> Vec<Vec<u8>> {
        let n = self.base.rng.random_range(1..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn member(&mut self) -> Vec<u8> {
        match self.base.rng.random_range(0..20) {
            0..=11 => self.base.pick_bytes(MEMBERS),
            12..=17 => self.base.rng.random_range(-20i64..40).to_string().into_bytes(),
            // Longer than set-max-listpack-value.
            18 => format!("long-{}", "y".repeat(self.base.rng.random_range(60..70))).into_bytes(),
            _ => format!("m{}", self.base.rng.random_range(0..200)).into_bytes(),
        }
    }

    fn members(&mut self, max: usize) -> Vec<Vec<u8>> {
        let n = self.base.rng.random_range(1..=max);
        (0..n).map(|_| self.member()).collect()
    }

    fn generate(&mut self) -> Generated {
        if let Some(queued) = self.base.queued() {
            return queued;
        }
        if self.base.chance(4) {
            return self.wrong_arity();
        }
        let (name, _) = self.base.command(COMMANDS);
        let args = self.arguments(name);
        if name == "SPOP" && !deterministic_spop(&args) {
            // The servers popped different members: drop the key on both.
            self.base.then(Generated { label: "DEL", args: vec![b"DEL".to_vec(), args[0].clone()] });
        }
        let mut full = vec![self.base.case(name)];
        full.extend(args);
        Generated { label: name, args: full }
    }

    fn wrong_arity(&mut self) -> Generated {
        let (name, arity) = self.base.command(COMMANDS);
        self.base.wrong_arity(name, arity, KEYS)
    }

    fn arguments(&mut self, name: &str) -> Vec<Vec<u8>> {
        let mut args = Vec::new();
        match name {
            "SADD" => {
                args.push(self.key());
                if self.base.chance(5) {
                    // Enough at once to pass set-max-listpack-entries.
                    args.extend((0..self.base.rng.random_range(120..140)).map(|i| format!("bulk{i}").into_bytes()));
                } else {
                    args.extend(self.members(6));
                }
            }
            "SREM" | "SMISMEMBER" => {
                args.push(self.key());
                args.extend(self.members(4));
            }
            "SCARD" | "SMEMBERS" | "TYPE" => args.push(self.key()),
            "SISMEMBER" => {
                args.push(self.key());
                args.push(self.member());
            }
            "SRANDMEMBER" | "SPOP" => {
                args.push(self.key());
                match self.base.rng.random_range(0..10) {
                    0..=2 => {}
                    3 => {
                        args.push(self.base.pick_bytes(COUNTS));
                        args.push(self.base.pick_bytes(COUNTS));
                    }
                    _ => args.push(self.base.pick_bytes(COUNTS)),
                }
            }
            "SMOVE" => {
                args.push(self.key());
                args.push(self.key());
                args.push(self.member());
            }
            "SINTER" | "SUNION" | "SDIFF" | "DEL" => args.extend(self.keys(4)),
            "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" => {
                args.push(self.key());
                args.extend(self.keys(4));
            }
            "SINTERCARD" => {
                let keys = self.keys(3);
                let numkeys = match self.base.rng.random_range(0..10) {
                    0 => self.base.pick_bytes(&["0", "-1", "abc", "", "9223372036854775808"]),
                    1 => (keys.len() + 1).to_string().into_bytes(),
                    _ => keys.len().to_string().into_bytes(),
                };
                args.push(numkeys);
                args.extend(keys);
                match self.base.rng.random_range(0..8) {
                    0..=3 => {}
                    4 | 5 => {
                        args.push(self.base.pick_bytes(&["LIMIT", "limit"]));
                        args.push(self.base.pick_bytes(&["0", "1", "2", "5", "-1", "abc"]));
                    }
                    6 => args.push(b"LIMIT".to_vec()),
                    _ => args.push(b"FOO".to_vec()),
                }
            }
            "SSCAN" => {
                args.push(self.key());
                args.push(self.base.pick_bytes(&["0", "0", "0", "0", "1", "x", "-1", "18446744073709551616", ""]));
                for _ in 0..self.base.rng.random_range(0..3) {
                    match self.base.rng.random_range(0..8) {
                        0..=2 => {
                            args.push(self.base.pick_bytes(&["MATCH", "match"]));
                            args.push(self.base.pick_bytes(&["*", "a*", "1*", "*[0-9]", "?", "m1*", "[ab]"]));
                        }
                        3..=5 => {
                            args.push(self.base.pick_bytes(&["COUNT", "count"]));
                            args.push(self.base.pick_bytes(&["1000", "1000", "1", "5", "0", "-1", "x"]));
                        }
                        6 => args.push(self.base.pick_bytes(&["COUNT", "MATCH"])),
                        _ => {
                            args.push(b"TYPE".to_vec());
                            args.push(b"set".to_vec());
                        }
                    }
                }
            }
            "SET" => {
                args.push(self.key());
                args.push(b"a string".to_vec());
            }
            other => unreachable!("no arguments for {other}"),
        }
        args
    }
}

/// Whether an SPOP (its arguments after the name) leaves the same keyspace on both servers:
/// without a count or with a small one, each pops its own random members.
fn deterministic_spop(args: &[Vec<u8>]) -> bool {
    match args.len() {
        2 => std::str::from_utf8(&args[1]).ok().and_then(|c| c.parse::<i64>().ok()).is_none_or(|c| c <= 0 || c >= 1000),
        // A syntax error.
        3 => true,
        _ => false,
    }
}

/// The count argument of SPOP or SRANDMEMBER, when it is a plain number.
fn count_of(generated: &Generated) -> Option<i64> {
    std::str::from_utf8(generated.args.get(2)?).ok()?.parse().ok()
}

/// A reply's element count as text, for replies of which only the size is determined.
fn size_only(reply: &[u8], what: &str) -> Vec<u8> {
    match diff::elements(reply) {
        Some((header, items)) => format!("({what}: {} members in a {})", items.len(), diff::show(&header[..1])).into_bytes(),
        None => reply.to_vec(),
    }
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }

    fn normalise(&self, generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
        if reply.first() == Some(&b'-') {
            return reply;
        }
        match generated.label {
            "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF" => diff::sorted(reply),
            "SRANDMEMBER" | "SPOP" if generated.args.len() == 2 => {
                // One member or nil.
                if matches!(reply.first(), Some(b'$')) && !reply.starts_with(b"$-1") {
                    b"(one member)".to_vec()
                } else {
                    reply
                }
            }
            "SRANDMEMBER" | "SPOP" => match count_of(generated) {
                // The whole set.
                Some(count) if count >= 1000 => diff::sorted(reply),
                _ => size_only(&reply, generated.label),
            },
            "SSCAN" => {
                // The last COUNT is the one that counts ("COUNT 1000 COUNT 1" is a partial scan).
                let count = generated.args[3..].windows(2).rev().find(|w| w[0].eq_ignore_ascii_case(b"count")).map(|w| &w[1][..]);
                let whole = generated.args[2] == b"0" && count == Some(b"1000");
                match diff::elements(&reply) {
                    Some((header, items)) if whole && items.len() == 2 => {
                        let mut out = header;
                        out.extend_from_slice(&items[0]);
                        out.extend_from_slice(&diff::sorted(items[1].clone()));
                        out
                    }
                    Some(_) => b"(a partial scan)".to_vec(),
                    None => reply,
                }
            }
            _ => reply,
        }
    }
}

fn differential(threads: usize) {
    let must: Vec<&str> = COMMANDS.iter().map(|(name, _, _)| *name).collect();
    diff::run("sets", threads, &[], SEEDS, LEN, &must, Generator::new);
}

#[test]
fn random_set_commands_reply_like_redis_with_four_threads() {
    differential(4);
}

#[test]
fn random_set_commands_reply_like_redis_with_two_threads() {
    differential(2);
}

// ---- atomicity ----------------------------------------------------------------------------

#[test]
fn smove_across_cores_never_shows_a_member_twice_or_nowhere() {
    const MEMBERS_TOTAL: usize = 20;
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("pingpong", 2, THREADS);
    assert_ne!(key_core(keys[0].as_bytes(), THREADS), key_core(keys[1].as_bytes(), THREADS));
    let members: Vec<String> = (0..MEMBERS_TOTAL).map(|i| format!("member{i}")).collect();
    let mut setup = connect(&server);
    let added: usize = redis::cmd("SADD").arg(&keys[0]).arg(&members).query(&mut setup).unwrap();
    assert_eq!(added, MEMBERS_TOTAL);

    let deadline = Instant::now() + Duration::from_secs(2);
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..3u64)
        .map(|mover| {
            let (mut connection, keys, members) = (connect(&server), keys.clone(), members.clone());
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(mover);
                let (mut moved, mut calls) = (0u64, 0u64);
                while calls < 20_000 && Instant::now() < deadline {
                    let member = &members[rng.random_range(0..members.len())];
                    let (from, to) = if rng.random_bool(0.5) { (&keys[0], &keys[1]) } else { (&keys[1], &keys[0]) };
                    let done: i64 = redis::cmd("SMOVE").arg(from).arg(to).arg(member).query(&mut connection).unwrap();
                    moved += done as u64;
                    calls += 1;
                }
                moved
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (mut connection, keys, stop) = (connect(&server), keys.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let mut union: Vec<String> = redis::cmd("SUNION").arg(&keys).query(&mut connection).unwrap();
                    union.sort();
                    assert_eq!(union.len(), MEMBERS_TOTAL, "reader {reader} saw a member missing: {union:?}");
                    let both: i64 = redis::cmd("SINTERCARD").arg(2).arg(&keys).query(&mut connection).unwrap();
                    assert_eq!(both, 0, "reader {reader} saw a member in both sets");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let moved: u64 = movers.into_iter().map(|m| m.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(moved >= 100, "enough moves to contend: {moved}");
    assert!(reads >= 20, "enough reads while moving: {reads}");
    let cards: Vec<usize> = keys.iter().map(|k| redis::cmd("SCARD").arg(k).query(&mut setup).unwrap()).collect();
    assert_eq!(cards.iter().sum::<usize>(), MEMBERS_TOTAL);
}

#[test]
fn store_commands_across_cores_write_the_destination_atomically() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("src", 4, THREADS);
    let (a, b, c, destination) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    let mut raw = server.raw();
    for (key, members) in [(a, &["1", "2", "x"][..]), (b, &["2", "3", "x"]), (c, &["x", "9"])] {
        let mut command = vec!["SADD", key.as_str()];
        command.extend_from_slice(members);
        raw.command(&command).unwrap();
    }
    raw.command(&["SET", destination, "a string"]).unwrap();
    raw.command(&["EXPIRE", destination, "1000"]).unwrap();
    assert_eq!(raw.command(&["SUNIONSTORE", destination, a, b, c]).unwrap(), ":5\r\n");
    assert_eq!(raw.command(&["TTL", destination]).unwrap(), ":-1\r\n", "the store replaced the key and its TTL");
    assert_eq!(raw.command(&["SINTERSTORE", destination, a, b]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["SISMEMBER", destination, "x"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["SDIFFSTORE", destination, a, b, c]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["SMEMBERS", destination]).unwrap(), "*1\r\n$1\r\n1\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", destination]).unwrap(), "$6\r\nintset\r\n");
    assert_eq!(raw.command(&["SINTERSTORE", destination, a, "nokey"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["EXISTS", destination]).unwrap(), ":0\r\n");
    raw.command(&["SET", c, "string"]).unwrap();
    assert_eq!(raw.command(&["SUNIONSTORE", destination, a, b, c]).unwrap(), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert_eq!(raw.command(&["EXISTS", destination]).unwrap(), ":0\r\n", "an error writes nothing");
    assert_eq!(raw.command(&["SMOVE", a, c, "1"]).unwrap(), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert_eq!(raw.command(&["SISMEMBER", a, "1"]).unwrap(), ":1\r\n", "SMOVE checks the destination first");
}

// ---- encodings ----------------------------------------------------------------------------

fn sadd_range(raw: &mut shoal_testkit::Raw, key: &str, members: impl Iterator<Item = String>) {
    let members: Vec<String> = members.collect();
    let mut command = vec!["SADD", key];
    command.extend(members.iter().map(|m| m.as_str()));
    raw.command(&command).unwrap();
}

#[test]
fn encodings_convert_at_redis_7_2_thresholds() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    sadd_range(&mut raw, "ints", (0..512).map(|i| i.to_string()));
    assert_eq!(encoding(&mut raw, "ints"), "$6\r\nintset\r\n", "512 integers fit an intset");
    raw.command(&["SADD", "ints", "512"]).unwrap();
    assert_eq!(encoding(&mut raw, "ints"), "$9\r\nhashtable\r\n", "the 513th does not");
    sadd_range(&mut raw, "strings", (0..128).map(|i| format!("s{i}")));
    assert_eq!(encoding(&mut raw, "strings"), "$8\r\nlistpack\r\n", "128 strings fit a listpack");
    raw.command(&["SADD", "strings", "s128"]).unwrap();
    assert_eq!(encoding(&mut raw, "strings"), "$9\r\nhashtable\r\n", "the 129th does not");
    raw.command(&["SADD", "value", &"v".repeat(64)]).unwrap();
    assert_eq!(encoding(&mut raw, "value"), "$8\r\nlistpack\r\n", "64 bytes fit a listpack");
    raw.command(&["SADD", "value", &"v".repeat(65)]).unwrap();
    assert_eq!(encoding(&mut raw, "value"), "$9\r\nhashtable\r\n", "65 bytes do not");
    raw.command(&["SADD", "mixed", "1", "2"]).unwrap();
    assert_eq!(encoding(&mut raw, "mixed"), "$6\r\nintset\r\n");
    raw.command(&["SADD", "mixed", "three"]).unwrap();
    assert_eq!(encoding(&mut raw, "mixed"), "$8\r\nlistpack\r\n", "an intset takes a string by becoming a listpack");
    // Removing members never converts back.
    raw.command(&["SREM", "strings", "s0", "s1", "s2"]).unwrap();
    assert_eq!(encoding(&mut raw, "strings"), "$9\r\nhashtable\r\n");
    // COPY keeps the encoding.
    raw.command(&["COPY", "mixed", "mixed-copy"]).unwrap();
    assert_eq!(encoding(&mut raw, "mixed-copy"), "$8\r\nlistpack\r\n");
}

#[test]
fn encodings_follow_config_set_of_the_thresholds() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    for (directive, value) in [("set-max-intset-entries", "2"), ("set-max-listpack-entries", "3"), ("set-max-listpack-value", "4")] {
        assert_eq!(raw.command(&["CONFIG", "SET", directive, value]).unwrap(), "+OK\r\n");
    }
    // Every core applies the new thresholds: keys on four cores.
    for key in keys_on_distinct_cores("enc", 4, THREADS) {
        raw.command(&["SADD", &key, "1", "2"]).unwrap();
        assert_eq!(encoding(&mut raw, &key), "$6\r\nintset\r\n", "{key}");
        raw.command(&["SADD", &key, "3"]).unwrap();
        assert_eq!(encoding(&mut raw, &key), "$9\r\nhashtable\r\n", "{key}: past set-max-intset-entries");
        let strings = format!("{key}:s");
        raw.command(&["SADD", &strings, "a", "b", "c"]).unwrap();
        assert_eq!(encoding(&mut raw, &strings), "$8\r\nlistpack\r\n", "{strings}");
        raw.command(&["SADD", &strings, "d"]).unwrap();
        assert_eq!(encoding(&mut raw, &strings), "$9\r\nhashtable\r\n", "{strings}: past set-max-listpack-entries");
        let long = format!("{key}:v");
        raw.command(&["SADD", &long, "abcde"]).unwrap();
        assert_eq!(encoding(&mut raw, &long), "$9\r\nhashtable\r\n", "{long}: past set-max-listpack-value");
    }
    // A store across cores builds its destination with the destination core's thresholds.
    let keys = keys_on_distinct_cores("store", 3, THREADS);
    raw.command(&["SADD", &keys[0], "a", "b"]).unwrap();
    raw.command(&["SADD", &keys[1], "c"]).unwrap();
    assert_eq!(raw.command(&["SUNIONSTORE", &keys[2], &keys[0], &keys[1]]).unwrap(), ":3\r\n");
    assert_eq!(encoding(&mut raw, &keys[2]), "$8\r\nlistpack\r\n");
    raw.command(&["SADD", &keys[1], "d"]).unwrap();
    assert_eq!(raw.command(&["SUNIONSTORE", &keys[2], &keys[0], &keys[1]]).unwrap(), ":4\r\n");
    assert_eq!(encoding(&mut raw, &keys[2]), "$9\r\nhashtable\r\n");
    assert_eq!(raw.command(&["SINTERSTORE", &keys[2], &keys[2], &keys[0]]).unwrap(), ":2\r\n");
    assert_eq!(encoding(&mut raw, &keys[2]), "$8\r\nlistpack\r\n", "a stored intersection starts small");
}

#[test]
fn replies_match_redis_in_both_protocols() {
    let servers = shoal_tests::shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["SADD", "s", "1", "2", "2"], ":2\r\n"),
            (&["SMEMBERS", "s"], "*2\r\n$1\r\n1\r\n$1\r\n2\r\n"),
            (&["SPOP", "nokey", "2"], "*0\r\n"),
            (&["SINTER", "s", "nokey"], "*0\r\n"),
            (&["SSCAN", "nokey", "0"], "*2\r\n$1\r\n0\r\n*0\r\n"),
        ],
    );
    for server in &servers {
        let mut raw = server.raw();
        raw.command(&["HELLO", "3"]).unwrap();
        for (request, expected) in [
            (&["SADD", "r3", "7"][..], ":1\r\n"),
            (&["SMEMBERS", "r3"], "~1\r\n$1\r\n7\r\n"),
            (&["SPOP", "nokey", "2"], "~0\r\n"),
            (&["SRANDMEMBER", "nokey", "2"], "*0\r\n"),
            (&["SPOP", "nokey"], "_\r\n"),
            (&["SINTER", "r3"], "~1\r\n$1\r\n7\r\n"),
            (&["SRANDMEMBER", "r3", "-2"], "*2\r\n$1\r\n7\r\n$1\r\n7\r\n"),
            (&["SPOP", "r3", "5"], "~1\r\n$1\r\n7\r\n"),
        ] {
            assert_eq!(raw.command(request).unwrap(), expected, "{request:?} on port {}", server.port);
        }
    }
}

/// SMEMBERS replies are encoded straight from the set (no frame per member): in both
/// protocols, inside MULTI/EXEC and through scripts, they are Redis's. Redis 7.0 keeps strings
/// in a hashtable, whose order it leaves unspecified: the string set has one member.
#[test]
fn smembers_replies_are_redis_bytes_in_both_protocols_in_transactions_and_scripts() {
    let setup: &[&[&str]] = &[&["SADD", "ints", "5", "-3", "100000000000", "0"], &["SADD", "strings", "x y"]];
    let requests: &[&[&str]] = &[&["SMEMBERS", "nokey"], &["SMEMBERS", "ints"], &["SMEMBERS", "strings"]];
    shoal_tests::assert_replies_like_redis(&[], setup, requests);
}

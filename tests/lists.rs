//! Integration and differential tests of the list commands.
//!
//! - A differential test: seeded random sequences of every non-blocking list command, with
//!   valid and invalid arguments, keys on several cores (and a hash tag that keeps three keys
//!   on one), against Debian's redis-server; once with the default node size and once with
//!   `list-max-listpack-size 3`, so that long lists go through quicklist node splits and
//!   merges on both servers. OBJECT ENCODING is not compared: Redis 7.0 reports `quicklist`
//!   for every list, and Shoal follows Redis 7.2+, whose small lists are `listpack`.
//! - Atomicity: LMOVE and RPOPLPUSH between lists on two cores, from several clients at once,
//!   never lose or duplicate an element.
//! - Encodings: the conversions at the thresholds, Redis 7.2's rules, also after CONFIG SET.
//!
//! Replay one differential sequence with `SHOAL_DIFF_SEED=7 SHOAL_DIFF_LEN=1000 cargo test
//! -p shoal-tests --test lists -- --nocapture`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use shoal_testkit::{key_core, keys_on_distinct_cores, Server};
use shoal_tests::diff::{self, Gen, Generated};
use shoal_tests::{connect, encoding, THREADS};

/// Every command the generator knows, with Redis's arity and its weight.
const COMMANDS: &[(&str, i32, u32)] = &[
    ("LPUSH", -3, 4),
    ("RPUSH", -3, 4),
    ("LPUSHX", -3, 1),
    ("RPUSHX", -3, 1),
    ("LPOP", -2, 2),
    ("RPOP", -2, 2),
    ("LLEN", 2, 1),
    ("LRANGE", 4, 2),
    ("LINDEX", 3, 2),
    ("LSET", 4, 1),
    ("LINSERT", 5, 2),
    ("LREM", 4, 1),
    ("LTRIM", 4, 1),
    ("LPOS", -3, 2),
    ("LMOVE", 5, 2),
    ("RPOPLPUSH", 3, 1),
    ("LMPOP", -4, 2),
    ("SET", -3, 1),
    ("DEL", -2, 1),
];

/// Three keys share the hash tag `{t}` (one core), the rest spread over the cores.
const KEYS: &[&str] = &["{t}a", "{t}b", "{t}c", "a", "b", "c", "list", "queue", "x:1", ""];

/// Elements: repeats (so LREM, LPOS and LINSERT find them), integers and other strings.
const ELEMENTS: &[&str] = &["a", "b", "c", "a", "b", "1", "2", "10", "-1", "", "hello world", "foo", "007"];

/// Indexes and counts: small ones, edges of i64, and what is not an integer.
const INTEGERS: &[&str] = &["abc", "", "1.5", " 1", "01", "+1", "-0", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "100", "-100"];

const SEEDS: std::ops::RangeInclusive<u64> = 1..=12;

/// The tests here each start servers and keep them busy; one at a time, so that on a small
/// machine a server never misses its startup deadline because its siblings hog the cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
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

    fn element(&mut self) -> Vec<u8> {
        match self.base.rng.random_range(0..60) {
            // Past a node's size: Shoal (as Redis 7.2+) gives it a node of its own.
            0 => vec![b'p'; 9000],
            1..=3 => vec![b'x'; self.base.rng.random_range(60..80)],
            4..=6 => self.base.rng.random_range(-5000i64..70000).to_string().into_bytes(),
            _ => self.base.pick_bytes(ELEMENTS),
        }
    }

    fn elements(&mut self, max: usize) -> Vec<Vec<u8>> {
        (0..self.base.rng.random_range(1..=max)).map(|_| self.element()).collect()
    }

    /// An index or count: mostly small, sometimes an edge or not an integer.
    fn integer(&mut self, low: i64, high: i64) -> Vec<u8> {
        self.base.integer(88, low, high, INTEGERS)
    }

    fn side(&mut self) -> Vec<u8> {
        if self.base.chance(4) {
            return self.base.pick_bytes(&["UP", "", "LEFTX"]);
        }
        let side = if self.base.chance(50) { "LEFT" } else { "RIGHT" };
        self.base.case(side)
    }

    fn generate(&mut self) -> Generated {
        if self.base.chance(4) {
            return self.wrong_arity();
        }
        let (name, _) = self.base.command(COMMANDS);
        let mut args = vec![self.base.case(name)];
        args.extend(self.arguments(name));
        Generated { label: name, args }
    }

    fn wrong_arity(&mut self) -> Generated {
        let (name, arity) = self.base.command(COMMANDS);
        self.base.wrong_arity(name, arity, KEYS)
    }

    fn arguments(&mut self, name: &str) -> Vec<Vec<u8>> {
        let mut args = vec![self.key()];
        match name {
            "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" => args.extend(self.elements(6)),
            "LPOP" | "RPOP" => {
                if self.base.chance(50) {
                    let count = self.integer(-1, 5);
                    args.push(count);
                }
                if self.base.chance(3) {
                    args.push(b"1".to_vec());
                }
            }
            "LLEN" | "DEL" => {}
            "LRANGE" | "LTRIM" => {
                args.push(self.integer(-8, 8));
                args.push(self.integer(-8, 8));
            }
            "LINDEX" => args.push(self.integer(-8, 8)),
            "LSET" => {
                args.push(self.integer(-8, 8));
                args.push(self.element());
            }
            "LINSERT" => {
                let place = match self.base.rng.random_range(0..20) {
                    0 => b"MIDDLE".to_vec(),
                    n if n % 2 == 0 => self.base.case("BEFORE"),
                    _ => self.base.case("AFTER"),
                };
                args.push(place);
                args.push(self.element());
                args.push(self.element());
            }
            "LREM" => {
                args.push(self.integer(-3, 3));
                args.push(self.element());
            }
            "LPOS" => {
                args.push(self.element());
                for _ in 0..[0, 1, 1, 2, 3][self.base.rng.random_range(0..5)] {
                    match self.base.rng.random_range(0..10) {
                        0..=2 => {
                            args.push(self.base.case("RANK"));
                            // Not i64::MIN: Redis 7.0 misreads it, 7.2 refuses it (as Shoal does).
                            let rank = if self.base.chance(90) {
                                self.base.rng.random_range(-3i64..=3).to_string().into_bytes()
                            } else {
                                self.base.pick_bytes(&["abc", "9223372036854775807", "-9223372036854775807", ""])
                            };
                            args.push(rank);
                        }
                        3..=5 => {
                            args.push(self.base.case("COUNT"));
                            args.push(self.integer(-1, 3));
                        }
                        6..=8 => {
                            args.push(self.base.case("MAXLEN"));
                            args.push(self.integer(-1, 6));
                        }
                        _ => args.push(self.base.pick_bytes(&["RANK", "COUNT", "FOO"])),
                    }
                }
            }
            "LMOVE" => {
                args.push(self.key());
                args.push(self.side());
                args.push(self.side());
            }
            "RPOPLPUSH" => args.push(self.key()),
            "LMPOP" => {
                args.clear();
                let keys = self.base.rng.random_range(1..=3);
                let numkeys = match self.base.rng.random_range(0..20) {
                    0 => "0".to_string(),
                    1 => "-1".to_string(),
                    2 => "abc".to_string(),
                    3 => (keys + 2).to_string(),
                    _ => keys.to_string(),
                };
                args.push(numkeys.into_bytes());
                for _ in 0..keys {
                    args.push(self.key());
                }
                args.push(self.side());
                if self.base.chance(50) {
                    args.push(self.base.case("COUNT"));
                    args.push(self.integer(-1, 4));
                }
                if self.base.chance(4) {
                    args.push(self.base.pick_bytes(&["COUNT", "FOO"]));
                }
            }
            "SET" => {
                // Two keys only turn into strings, so most keys stay lists for long runs.
                args[0] = self.base.pick_bytes(&["x:1", "{t}c"]);
                args.push(b"str".to_vec());
            }
            other => unreachable!("the generator has no arguments for {other}"),
        }
        args
    }
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }
}

fn differential(threads: usize, extra: &[&str]) {
    let must: Vec<&str> = COMMANDS.iter().map(|(name, _, _)| *name).collect();
    diff::run("lists", threads, extra, SEEDS, LEN, &must, Generator::new);
}

#[test]
fn random_list_commands_reply_like_redis_with_four_threads() {
    let _serial = one_at_a_time();
    differential(THREADS, &[]);
}

#[test]
fn random_list_commands_reply_like_redis_with_two_threads_and_small_nodes() {
    let _serial = one_at_a_time();
    differential(2, &["--list-max-listpack-size", "3"]);
}

// ---- Atomicity -------------------------------------------------------------------------

#[test]
fn lmove_between_cores_never_loses_or_duplicates_an_element() {
    let _serial = one_at_a_time();
    const ELEMENTS: usize = 200;
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("rotate", 2, THREADS);
    assert_ne!(key_core(keys[0].as_bytes(), THREADS), key_core(keys[1].as_bytes(), THREADS));
    let mut setup = connect(&server);
    let elements: Vec<String> = (0..ELEMENTS).map(|i| format!("e{i}")).collect();
    redis::cmd("RPUSH").arg(&keys[0]).arg(&elements[..ELEMENTS / 2]).query::<()>(&mut setup).unwrap();
    redis::cmd("RPUSH").arg(&keys[1]).arg(&elements[ELEMENTS / 2..]).query::<()>(&mut setup).unwrap();

    let deadline = Instant::now() + Duration::from_secs(2);
    let movers: Vec<_> = (0..6)
        .map(|mover| {
            let mut connection = connect(&server);
            let (from, to) = if mover % 2 == 0 { (keys[0].clone(), keys[1].clone()) } else { (keys[1].clone(), keys[0].clone()) };
            std::thread::spawn(move || {
                let mut moved = 0u64;
                let mut calls = 0u64;
                while calls < 20_000 && Instant::now() < deadline {
                    let reply: Option<String> = if mover % 3 == 0 {
                        redis::cmd("RPOPLPUSH").arg(&from).arg(&to).query(&mut connection).unwrap()
                    } else {
                        let (a, b) = if mover % 3 == 1 { ("LEFT", "RIGHT") } else { ("RIGHT", "LEFT") };
                        redis::cmd("LMOVE").arg(&from).arg(&to).arg(a).arg(b).query(&mut connection).unwrap()
                    };
                    calls += 1;
                    if reply.is_some() {
                        moved += 1;
                    }
                }
                moved
            })
        })
        .collect();
    let moved: u64 = movers.into_iter().map(|m| m.join().expect("mover")).sum();
    assert!(moved > 500, "the movers really moved elements across cores ({moved})");

    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for key in &keys {
        let items: Vec<String> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(&mut setup).unwrap();
        for item in items {
            *found.entry(item).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = elements.iter().map(|e| (e.clone(), 1)).collect();
    assert_eq!(found, expected, "every element is in exactly one of the lists after {moved} moves");
}

#[test]
fn lmpop_across_cores_pops_the_first_non_empty_list_in_argument_order() {
    let _serial = one_at_a_time();
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("mpop", 3, THREADS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["RPUSH", &keys[2], "x", "y", "z"]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["RPUSH", &keys[1], "a"]).unwrap(), ":1\r\n");
    let reply = raw.command(&["LMPOP", "3", &keys[0], &keys[1], &keys[2], "RIGHT", "COUNT", "2"]).unwrap();
    assert_eq!(reply, format!("*2\r\n${}\r\n{}\r\n*1\r\n$1\r\na\r\n", keys[1].len(), keys[1]));
    assert_eq!(raw.command(&["EXISTS", &keys[1]]).unwrap(), ":0\r\n");
    let reply = raw.command(&["LMPOP", "3", &keys[0], &keys[1], &keys[2], "LEFT", "COUNT", "2"]).unwrap();
    assert_eq!(reply, format!("*2\r\n${}\r\n{}\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n", keys[2].len(), keys[2]));
    assert_eq!(raw.command(&["SET", &keys[0], "s"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["LMPOP", "2", &keys[0], &keys[2], "LEFT"]).unwrap(), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert_eq!(raw.command(&["LLEN", &keys[2]]).unwrap(), ":1\r\n", "nothing popped after the error");
    assert_eq!(raw.command(&["COMMAND", "GETKEYS", "LMPOP", "2", "a", "b", "LEFT"]).unwrap(), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
}

// ---- Encodings -------------------------------------------------------------------------

const LISTPACK: &str = "$8\r\nlistpack\r\n";
const QUICKLIST: &str = "$9\r\nquicklist\r\n";

#[test]
fn a_list_becomes_a_quicklist_past_the_default_node_size_and_back_below_half_of_it() {
    let _serial = one_at_a_time();
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    // Each element takes 103 bytes in a Redis listpack (2 of header, 100, 1 of back-length),
    // the listpack 7 more. Redis converts before a push when the listpack's bytes plus the
    // new element's length pass 8192 (list-max-listpack-size -2): 79 elements fit.
    let element = "x".repeat(100);
    for n in 1..=79 {
        assert_eq!(raw.command(&["RPUSH", "l", &element]).unwrap(), format!(":{n}\r\n"));
    }
    assert_eq!(encoding(&mut raw, "l"), LISTPACK, "7 + 79 * 103 = 8144 bytes");
    assert_eq!(raw.command(&["RPUSH", "l", &element]).unwrap(), ":80\r\n");
    assert_eq!(encoding(&mut raw, "l"), QUICKLIST, "8144 + 100 passes 8192");
    // Two nodes now (79 and 1). Back to one node of 79: still above half of 8192.
    assert_eq!(raw.command(&["RPOP", "l"]).unwrap(), format!("$100\r\n{element}\r\n"));
    assert_eq!(encoding(&mut raw, "l"), QUICKLIST);
    // 40 elements take 4127 bytes, over 4096; 39 take 4024.
    raw.command(&["LPOP", "l", "39"]).unwrap();
    assert_eq!(raw.command(&["LLEN", "l"]).unwrap(), ":40\r\n");
    assert_eq!(encoding(&mut raw, "l"), QUICKLIST);
    raw.command(&["LPOP", "l"]).unwrap();
    assert_eq!(encoding(&mut raw, "l"), LISTPACK);
    // One element bigger than a node converts a new list at once.
    let big = "y".repeat(9000);
    assert_eq!(raw.command(&["LPUSH", "big", &big]).unwrap(), ":1\r\n");
    assert_eq!(encoding(&mut raw, "big"), QUICKLIST);
}

#[test]
fn a_count_limit_set_at_runtime_moves_the_conversions() {
    let _serial = one_at_a_time();
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["CONFIG", "SET", "list-max-listpack-size", "5"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["RPUSH", "l", "1", "2", "3", "4", "5"]).unwrap(), ":5\r\n");
    assert_eq!(encoding(&mut raw, "l"), LISTPACK);
    assert_eq!(raw.command(&["RPUSH", "l", "6"]).unwrap(), ":6\r\n");
    assert_eq!(encoding(&mut raw, "l"), QUICKLIST);
    // One node of 5 after the pop: more than half of 5.
    assert_eq!(raw.command(&["RPOP", "l"]).unwrap(), "$1\r\n6\r\n");
    assert_eq!(encoding(&mut raw, "l"), QUICKLIST);
    assert_eq!(raw.command(&["LREM", "l", "0", "1"]).unwrap(), ":1\r\n");
    assert_eq!(encoding(&mut raw, "l"), QUICKLIST, "4 is more than 5 / 2");
    assert_eq!(raw.command(&["LTRIM", "l", "0", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(encoding(&mut raw, "l"), LISTPACK, "2 is at most 5 / 2");
    // LINSERT converts for its element before it looks for the pivot, as Redis does.
    assert_eq!(raw.command(&["RPUSH", "m", "a", "b", "c", "d", "e"]).unwrap(), ":5\r\n");
    assert_eq!(raw.command(&["LINSERT", "m", "BEFORE", "nothere", "x"]).unwrap(), ":-1\r\n");
    assert_eq!(encoding(&mut raw, "m"), QUICKLIST);
    // A larger limit at runtime: the next shrink of an existing quicklist uses it.
    assert_eq!(raw.command(&["CONFIG", "SET", "list-max-listpack-size", "100"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["RPOP", "m"]).unwrap(), "$1\r\ne\r\n");
    assert_eq!(encoding(&mut raw, "m"), LISTPACK);
    // A size limit again: 4 KiB nodes.
    assert_eq!(raw.command(&["CONFIG", "SET", "list-max-listpack-size", "-1"]).unwrap(), "+OK\r\n");
    let element = "z".repeat(2000);
    assert_eq!(raw.command(&["RPUSH", "n", &element, &element]).unwrap(), ":2\r\n");
    assert_eq!(encoding(&mut raw, "n"), LISTPACK, "7 + 2 * 2003 = 4013 bytes");
    assert_eq!(raw.command(&["RPUSH", "n", "a"]).unwrap(), ":3\r\n");
    assert_eq!(encoding(&mut raw, "n"), LISTPACK, "4013 + 1 is within 4096");
    assert_eq!(raw.command(&["RPUSH", "n", &"w".repeat(90)]).unwrap(), ":4\r\n");
    assert_eq!(encoding(&mut raw, "n"), QUICKLIST, "4016 + 90 passes 4096");
}

/// LRANGE replies are encoded straight from the list (no frame per element): in both
/// protocols, inside MULTI/EXEC and through scripts, from a listpack and from a quicklist,
/// they are Redis's.
#[test]
fn lrange_replies_are_redis_bytes_in_both_protocols_in_transactions_and_scripts() {
    let mut big = vec!["RPUSH".to_string(), "big".to_string()];
    big.extend((0..300).map(|i| format!("element:{i}")));
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let setup: &[&[&str]] = &[&["RPUSH", "small", "a", "", "12345", "-7", "x y"], &big];
    let requests: &[&[&str]] = &[
        &["LRANGE", "nokey", "0", "-1"],
        &["LRANGE", "small", "0", "-1"],
        &["LRANGE", "small", "-2", "100"],
        &["LRANGE", "small", "5", "9"],
        &["LRANGE", "big", "0", "-1"],
        &["LRANGE", "big", "100", "199"],
        &["LRANGE", "big", "-10", "-1"],
    ];
    shoal_tests::assert_replies_like_redis(&[], setup, requests);
}

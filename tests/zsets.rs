//! Integration and differential tests of the sorted set commands.
//!
//! The differential generator sends every sorted set command, with valid and invalid
//! arguments, to Debian's redis-server and to Shoal, over keys spread across cores (a few share
//! the hash tag `{t}`, the rest do not, so multi-key commands span cores). Lex-range commands
//! only read the `lex*` keys, whose members all have score 0: Redis leaves lex ranges over
//! mixed scores unspecified. ZRANDMEMBER replies are compared by shape (they are random), and
//! ZSCAN asks for everything in one call and is compared with its pairs sorted (the skiplist
//! encoding scans in hash order).
//!
//! Replay a sequence with `SHOAL_DIFF_SEED=7 SHOAL_DIFF_LEN=1000 cargo test -p shoal-tests
//! --test zsets -- --nocapture`; SHOAL_DIFF_VERBOSE=1 prints every command.

use rand::Rng;
use shoal_testkit::Server;
use shoal_tests::diff::{self, bytes, Gen, Generated};
use shoal_tests::THREADS;

/// Every command the generator knows, with Redis's arity and a weight.
const COMMANDS: &[(&str, i32, u32)] = &[
    ("ZADD", -4, 8),
    ("ZINCRBY", 4, 2),
    ("ZREM", -3, 2),
    ("ZCARD", 2, 1),
    ("ZCOUNT", 4, 1),
    ("ZLEXCOUNT", 4, 1),
    ("ZSCORE", 3, 1),
    ("ZMSCORE", -3, 1),
    ("ZRANK", -3, 1),
    ("ZREVRANK", -3, 1),
    ("ZRANGE", -4, 4),
    ("ZRANGESTORE", -5, 2),
    ("ZRANGEBYSCORE", -4, 2),
    ("ZREVRANGEBYSCORE", -4, 1),
    ("ZRANGEBYLEX", -4, 1),
    ("ZREVRANGEBYLEX", -4, 1),
    ("ZREVRANGE", -4, 1),
    ("ZREMRANGEBYRANK", 4, 1),
    ("ZREMRANGEBYSCORE", 4, 1),
    ("ZREMRANGEBYLEX", 4, 1),
    ("ZPOPMIN", -2, 1),
    ("ZPOPMAX", -2, 1),
    ("ZMPOP", -4, 1),
    ("ZRANDMEMBER", -2, 1),
    ("ZUNION", -3, 1),
    ("ZUNIONSTORE", -4, 2),
    ("ZINTER", -3, 1),
    ("ZINTERSTORE", -4, 2),
    ("ZINTERCARD", -3, 1),
    ("ZDIFF", -3, 1),
    ("ZDIFFSTORE", -4, 1),
    ("ZSCAN", -3, 1),
    ("OBJECT ENCODING", 3, 1),
    ("SET", 3, 1),
    ("DEL", -2, 1),
];

/// Keys with any scores: two share a hash tag, the others spread over the cores.
const KEYS: &[&str] = &["{t}a", "{t}b", "za", "zb", "zc", "zd"];
/// The one string key: set by the first command of every sequence and never written by a
/// sorted set command (only refused with WRONGTYPE).
const STRING_KEY: &str = "str";
/// Keys whose members all have score 0 (written only by ZADD with score 0 and by removals).
const LEX_KEYS: &[&str] = &["lex1", "lex2", "{t}lex"];

const MEMBERS: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h", "", "m-long-enough-to-pass-a-small-value-limit"];

const SCORES: &[&str] = &["1", "2", "-1", "0", "1.5", "-2.5", "3", "10", "inf", "-inf", "+inf", "-0", "0x10", "1e-320"];
const BAD_SCORES: &[&str] = &["abc", "", "nan", " 1", "1 ", "1e400", "(1", "--1"];
const SCORE_BOUNDS: &[&str] = &["-inf", "+inf", "(1", "1", "2.5", "(3", "-2", "5", "(0", "0", "abc", "(", "nan", "", "(inf", " 2", "1e400"];
const LEX_BOUNDS: &[&str] = &["-", "+", "[a", "(a", "[c", "(d", "[h", "(", "[", "a", "", "+x", "-x"];
const RANKS: &[&str] = &["0", "1", "2", "-1", "-2", "-3", "5", "-10", "10", "abc", "9223372036854775807", "-9223372036854775808", ""];

const SEEDS: std::ops::RangeInclusive<u64> = 1..=12;
const LEN: usize = 300;

struct Generator {
    base: Gen,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let mut base = Gen::new(seed);
        base.then(Generated { label: "SET", args: vec![bytes("SET"), bytes(STRING_KEY), bytes("v")] });
        Generator { base }
    }

    /// Any key, lex keys now and then, a missing key rarely.
    fn key(&mut self) -> Vec<u8> {
        match self.base.rng.random_range(0..20) {
            0 => bytes("missing"),
            1 => bytes(STRING_KEY),
            2..=4 => self.base.pick_bytes(LEX_KEYS),
            _ => self.base.pick_bytes(KEYS),
        }
    }

    /// A key that may be written with any scores (never "missing", which stays missing).
    fn scored_key(&mut self) -> Vec<u8> {
        self.base.pick_bytes(KEYS)
    }

    /// A key for lex-range commands.
    fn lex_key(&mut self) -> Vec<u8> {
        match self.base.rng.random_range(0..20) {
            0 => bytes(STRING_KEY),
            1 => bytes("missing"),
            _ => self.base.pick_bytes(LEX_KEYS),
        }
    }

    /// A member: mostly from a small pool (so commands meet), sometimes from a wider one (so
    /// sets grow past small listpack limits into real skiplists).
    fn member(&mut self) -> Vec<u8> {
        if self.base.chance(30) {
            format!("w{:02}", self.base.rng.random_range(0..40)).into_bytes()
        } else {
            self.base.pick_bytes(MEMBERS)
        }
    }

    fn score(&mut self) -> Vec<u8> {
        if self.base.chance(6) {
            self.base.pick_bytes(BAD_SCORES)
        } else if self.base.chance(60) {
            self.base.rng.random_range(-6i64..6).to_string().into_bytes()
        } else {
            self.base.pick_bytes(SCORES)
        }
    }

    fn rank(&mut self) -> Vec<u8> {
        self.base.integer(70, -6, 5, RANKS)
    }

    fn generate(&mut self) -> Generated {
        if let Some(queued) = self.base.queued() {
            return queued;
        }
        if self.base.chance(3) {
            let (name, arity) = self.base.command(COMMANDS);
            return self.base.wrong_arity(name, arity, KEYS);
        }
        let (name, _) = self.base.command(COMMANDS);
        let mut args: Vec<Vec<u8>> = self.base.name(name);
        self.arguments(name, &mut args);
        Generated { label: name, args }
    }

    fn limit(&mut self, args: &mut Vec<Vec<u8>>) {
        args.push(self.base.case("LIMIT"));
        let offset =
            if self.base.chance(80) { self.base.rng.random_range(-1i64..4).to_string() } else { self.base.pick(&["abc", "9223372036854775807"]).to_string() };
        args.push(offset.into_bytes());
        if self.base.chance(95) {
            let count = if self.base.chance(85) { self.base.rng.random_range(-2i64..5).to_string() } else { "x".to_string() };
            args.push(count.into_bytes());
        }
    }

    fn setop_keys(&mut self, args: &mut Vec<Vec<u8>>) -> usize {
        let n = self.base.rng.random_range(1..=3usize);
        let numkeys = match self.base.rng.random_range(0..25) {
            0 => "0".to_string(),
            1 => "abc".to_string(),
            2 => (n + 2).to_string(),
            3 => "-1".to_string(),
            _ => n.to_string(),
        };
        args.push(numkeys.into_bytes());
        for _ in 0..n {
            let k = self.key();
            args.push(k);
        }
        n
    }

    fn arguments(&mut self, name: &str, args: &mut Vec<Vec<u8>>) {
        match name {
            "ZADD" => {
                let lex = self.base.chance(25);
                let key = if lex {
                    self.base.pick_bytes(LEX_KEYS)
                } else if self.base.chance(5) {
                    bytes(STRING_KEY)
                } else {
                    self.scored_key()
                };
                args.push(key);
                for _ in 0..[0, 0, 0, 1, 1, 2][self.base.rng.random_range(0..6)] {
                    let opt = self.base.pick(&["NX", "XX", "GT", "LT", "CH", "INCR", "CH", "XX"]);
                    args.push(self.base.case(opt));
                }
                let pairs = [1, 1, 2, 3, 4, 6][self.base.rng.random_range(0..6)];
                for _ in 0..pairs {
                    args.push(if lex { bytes("0") } else { self.score() });
                    args.push(self.member());
                }
                if self.base.chance(3) {
                    args.pop();
                }
            }
            "ZINCRBY" => {
                args.push(self.scored_key());
                args.push(self.score());
                args.push(self.member());
            }
            "ZREM" | "ZMSCORE" => {
                args.push(self.key());
                for _ in 0..self.base.rng.random_range(1..4) {
                    args.push(self.member());
                }
            }
            "ZCARD" | "OBJECT ENCODING" => args.push(self.key()),
            "SET" => {
                args.push(bytes(STRING_KEY));
                args.push(bytes("v"));
            }
            "DEL" => {
                for _ in 0..self.base.rng.random_range(1..3) {
                    let key = if self.base.chance(80) { self.scored_key() } else { self.base.pick_bytes(LEX_KEYS) };
                    args.push(key);
                }
            }
            "ZCOUNT" | "ZREMRANGEBYSCORE" => {
                args.push(self.key());
                args.push(self.base.pick_bytes(SCORE_BOUNDS));
                args.push(self.base.pick_bytes(SCORE_BOUNDS));
            }
            "ZLEXCOUNT" | "ZREMRANGEBYLEX" => {
                args.push(self.lex_key());
                args.push(self.base.pick_bytes(LEX_BOUNDS));
                args.push(self.base.pick_bytes(LEX_BOUNDS));
            }
            "ZSCORE" => {
                args.push(self.key());
                args.push(self.member());
            }
            "ZRANK" | "ZREVRANK" => {
                // WITHSCORE is Redis 7.2's: the 7.0 oracle does not know it (unit tests cover it).
                args.push(self.key());
                args.push(self.member());
            }
            "ZREMRANGEBYRANK" => {
                args.push(self.key());
                args.push(self.rank());
                args.push(self.rank());
            }
            "ZRANGE" | "ZRANGESTORE" => {
                if name == "ZRANGESTORE" {
                    args.push(self.scored_key());
                }
                let by = self.base.rng.random_range(0..3);
                args.push(if by == 2 { self.lex_key() } else { self.key() });
                let (a, b) = match by {
                    0 => (self.rank(), self.rank()),
                    1 => (self.base.pick_bytes(SCORE_BOUNDS), self.base.pick_bytes(SCORE_BOUNDS)),
                    _ => (self.base.pick_bytes(LEX_BOUNDS), self.base.pick_bytes(LEX_BOUNDS)),
                };
                args.push(a);
                args.push(b);
                let mut options: Vec<u8> = Vec::new();
                if by == 1 {
                    options.push(0);
                }
                if by == 2 {
                    options.push(1);
                }
                for _ in 0..self.base.rng.random_range(0..3) {
                    options.push(self.base.rng.random_range(0..6));
                }
                for o in options {
                    match o {
                        0 => args.push(self.base.case("BYSCORE")),
                        1 => args.push(self.base.case("BYLEX")),
                        2 => args.push(self.base.case("REV")),
                        3 => self.limit(args),
                        4 => args.push(self.base.case("WITHSCORES")),
                        _ => {
                            let word = if self.base.chance(50) { "REV" } else { "FOO" };
                            args.push(self.base.case(word));
                        }
                    }
                }
            }
            "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" => {
                args.push(self.key());
                args.push(self.base.pick_bytes(SCORE_BOUNDS));
                args.push(self.base.pick_bytes(SCORE_BOUNDS));
                for _ in 0..self.base.rng.random_range(0..3) {
                    match self.base.rng.random_range(0..5) {
                        0 | 1 => args.push(self.base.case("WITHSCORES")),
                        2 | 3 => self.limit(args),
                        _ => args.push(self.base.case("REV")),
                    }
                }
            }
            "ZRANGEBYLEX" | "ZREVRANGEBYLEX" => {
                args.push(self.lex_key());
                args.push(self.base.pick_bytes(LEX_BOUNDS));
                args.push(self.base.pick_bytes(LEX_BOUNDS));
                if self.base.chance(40) {
                    self.limit(args);
                }
                if self.base.chance(5) {
                    args.push(self.base.case("WITHSCORES"));
                }
            }
            "ZREVRANGE" => {
                args.push(self.key());
                args.push(self.rank());
                args.push(self.rank());
                if self.base.chance(50) {
                    args.push(self.base.case("WITHSCORES"));
                }
                if self.base.chance(5) {
                    self.limit(args);
                }
            }
            "ZPOPMIN" | "ZPOPMAX" => {
                args.push(self.key());
                if self.base.chance(60) {
                    let count =
                        if self.base.chance(80) { self.base.rng.random_range(0..4).to_string() } else { self.base.pick(&["-1", "abc", "1 2"]).to_string() };
                    for word in count.split(' ') {
                        args.push(bytes(word));
                    }
                }
            }
            "ZMPOP" => {
                self.setop_keys(args);
                let direction = self.base.pick(&["MIN", "MAX", "MIN", "MAX", "FOO"]);
                args.push(self.base.case(direction));
                if self.base.chance(50) {
                    args.push(self.base.case("COUNT"));
                    let count =
                        if self.base.chance(80) { self.base.rng.random_range(1..5).to_string() } else { self.base.pick(&["0", "-1", "abc"]).to_string() };
                    args.push(count.into_bytes());
                }
                if self.base.chance(5) {
                    args.push(self.base.case("COUNT"));
                }
            }
            "ZRANDMEMBER" => {
                args.push(self.key());
                if self.base.chance(70) {
                    let count = if self.base.chance(85) {
                        self.base.rng.random_range(-5i64..6).to_string()
                    } else {
                        self.base.pick(&["abc", "-9223372036854775808", "9223372036854775807"]).to_string()
                    };
                    args.push(count.into_bytes());
                    if self.base.chance(50) {
                        let w = self.base.pick(&["WITHSCORES", "WITHSCORES", "FOO"]);
                        args.push(self.base.case(w));
                    }
                }
            }
            "ZUNION" | "ZINTER" | "ZDIFF" | "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" | "ZINTERCARD" => {
                let store = name.ends_with("STORE");
                if store {
                    args.push(self.scored_key());
                }
                let n = self.setop_keys(args);
                for _ in 0..self.base.rng.random_range(0..3) {
                    match self.base.rng.random_range(0..8) {
                        0 | 1 => {
                            args.push(self.base.case("WEIGHTS"));
                            let count = if self.base.chance(90) { n } else { n + 1 };
                            for _ in 0..count {
                                let w = self.base.pick(&["1", "2", "0", "-1", "0.5", "3", "x", "inf"]);
                                args.push(bytes(w));
                            }
                        }
                        2 | 3 => {
                            args.push(self.base.case("AGGREGATE"));
                            let a = self.base.pick(&["SUM", "MIN", "MAX", "max", "AVG"]);
                            args.push(self.base.case(a));
                        }
                        4 | 5 => args.push(self.base.case("WITHSCORES")),
                        6 => {
                            args.push(self.base.case("LIMIT"));
                            let l = self.base.pick(&["0", "1", "2", "-1", "x"]);
                            args.push(bytes(l));
                        }
                        _ => args.push(self.base.case("FOO")),
                    }
                }
            }
            "ZSCAN" => {
                args.push(self.key());
                // Only cursor 0 (or a bad one): a skiplist's later cursors depend on the hash function.
                args.push(bytes(if self.base.chance(90) { "0" } else { self.base.pick(&["abc", "1x", ""]) }));
                if self.base.chance(30) {
                    args.push(self.base.case("MATCH"));
                    let p = self.base.pick(&["*", "[a-c]", "m*", "?", ""]);
                    args.push(bytes(p));
                }
                args.push(self.base.case("COUNT"));
                args.push(bytes(if self.base.chance(95) { "1000" } else { self.base.pick(&["0", "abc"]) }));
                if self.base.chance(3) {
                    args.push(self.base.case("TYPE"));
                }
            }
            other => unreachable!("no arguments for {other}"),
        }
    }
}

/// A reply as its type and element count only (ZRANDMEMBER is random).
fn shape(reply: Vec<u8>) -> Vec<u8> {
    match reply.first() {
        Some(b'$') if reply != b"$-1\r\n" => b"(a bulk string)".to_vec(),
        Some(b'*') | Some(b'~') => match reply.windows(2).position(|w| w == b"\r\n") {
            Some(end) => reply[..end].to_vec(),
            None => reply,
        },
        _ => reply,
    }
}

/// A ZSCAN reply with its member-score pairs sorted.
fn scan_sorted(reply: Vec<u8>) -> Vec<u8> {
    let Some((header, items)) = diff::elements(&reply) else { return reply };
    if items.len() != 2 {
        return reply;
    }
    let mut out = header;
    out.extend_from_slice(&items[0]);
    out.extend_from_slice(&diff::sorted_in_groups(items[1].clone(), 2));
    out
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }

    fn normalise(&self, generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
        match generated.label {
            "ZRANDMEMBER" => shape(reply),
            "ZSCAN" => scan_sorted(reply),
            _ => reply,
        }
    }
}

fn differential(threads: usize, extra: &[&str]) {
    let must: Vec<&str> = COMMANDS.iter().map(|(name, _, _)| *name).collect();
    diff::run("zsets", threads, extra, SEEDS, LEN, &must, Generator::new);
}

#[test]
fn random_zset_commands_reply_like_redis_with_four_threads() {
    differential(4, &[]);
}

#[test]
fn random_zset_commands_reply_like_redis_with_two_threads_and_small_listpacks() {
    differential(2, &["--zset-max-listpack-entries", "4", "--zset-max-listpack-value", "8"]);
}

/// Both servers, for exact exchanges.
fn servers(extra: &[&str]) -> Vec<Server> {
    let mut servers = vec![Server::start(THREADS, extra)];
    servers.extend(Server::start_redis_with(extra));
    servers
}

#[test]
fn encodings_convert_at_the_thresholds_and_after_config_set() {
    for server in servers(&[]) {
        let mut raw = server.raw();
        let mut cmd = |args: &[&str]| raw.command(args).unwrap();
        for i in 0..128 {
            cmd(&["ZADD", "z", &i.to_string(), &format!("m{i}")]);
        }
        assert_eq!(cmd(&["OBJECT", "ENCODING", "z"]), "$8\r\nlistpack\r\n", "128 members stay a listpack");
        cmd(&["ZADD", "z", "200", "m200"]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "z"]), "$8\r\nskiplist\r\n", "the 129th member converts");
        cmd(&["ZREMRANGEBYRANK", "z", "0", "-3"]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "z"]), "$8\r\nskiplist\r\n", "removals never convert back");
        // A member longer than zset-max-listpack-value converts a small set.
        cmd(&["ZADD", "v", "1", &"x".repeat(64)]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "v"]), "$8\r\nlistpack\r\n");
        cmd(&["ZADD", "v", "1", &"y".repeat(65)]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "v"]), "$8\r\nskiplist\r\n");
        // A store picks the encoding of its result: two members fit a listpack.
        assert_eq!(cmd(&["ZRANGESTORE", "small", "z", "0", "-1"]), ":2\r\n");
        assert_eq!(cmd(&["OBJECT", "ENCODING", "small"]), "$8\r\nlistpack\r\n");
        // CONFIG SET applies to the next change, not to existing keys.
        assert_eq!(cmd(&["CONFIG", "SET", "zset-max-listpack-entries", "2"]), "+OK\r\n");
        assert_eq!(cmd(&["OBJECT", "ENCODING", "small"]), "$8\r\nlistpack\r\n");
        cmd(&["ZADD", "small", "5", "third"]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "small"]), "$8\r\nskiplist\r\n", "port {}", server.port);
        assert_eq!(cmd(&["ZUNIONSTORE", "u", "1", "small"]), ":3\r\n");
        assert_eq!(cmd(&["OBJECT", "ENCODING", "u"]), "$8\r\nskiplist\r\n");
        assert_eq!(cmd(&["CONFIG", "SET", "zset-max-listpack-value", "3"]), "+OK\r\n");
        assert_eq!(cmd(&["CONFIG", "SET", "zset-max-listpack-entries", "128"]), "+OK\r\n");
        assert_eq!(cmd(&["ZUNIONSTORE", "u", "1", "small"]), ":3\r\n");
        assert_eq!(cmd(&["OBJECT", "ENCODING", "u"]), "$8\r\nskiplist\r\n", "a member longer than 3 bytes");
        cmd(&["ZADD", "w", "1", "abc"]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "w"]), "$8\r\nlistpack\r\n");
        cmd(&["ZADD", "w", "1", "abcd"]);
        assert_eq!(cmd(&["OBJECT", "ENCODING", "w"]), "$8\r\nskiplist\r\n");
        // The reads agree across the conversion.
        assert_eq!(cmd(&["ZRANGE", "w", "0", "-1", "WITHSCORES"]), "*4\r\n$3\r\nabc\r\n$1\r\n1\r\n$4\r\nabcd\r\n$1\r\n1\r\n");
    }
}

/// Pairs of keys with different hash tags: with 4 cores, most pairs live on two cores.
const PAIRS: [(&str, &str); 6] = [("{a}x", "{b}y"), ("{c}x", "{d}y"), ("{e}x", "{f}y"), ("{g}x", "{h}y"), ("{i}x", "{j}y"), ("{k}x", "{l}y")];

#[test]
fn cross_core_set_operations_see_a_concurrent_cross_core_move_atomically() {
    let server = Server::start(THREADS, &[]);
    let mut setup = server.raw();
    for (x, _) in PAIRS {
        assert_eq!(setup.command(&["ZADD", x, "1", "m"]).unwrap(), ":1\r\n");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The writer moves each set back and forth between the two keys of its pair with RENAME,
    // one atomic cross-core transaction: exactly one of the two keys holds it at any time.
    let writer = {
        let stop = stop.clone();
        let mut raw = server.raw();
        std::thread::spawn(move || {
            let mut moves = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (x, y) in PAIRS {
                    assert_eq!(raw.command(&["RENAME", x, y]).unwrap(), "+OK\r\n");
                    assert_eq!(raw.command(&["RENAME", y, x]).unwrap(), "+OK\r\n");
                    moves += 2;
                }
            }
            moves
        })
    };
    let mut reader = server.raw();
    for round in 0..300 {
        let (x, y) = PAIRS[round % PAIRS.len()];
        // A gather that read the two keys at different instants could see the set twice
        // (score 2) or not at all (0 members).
        let dst = format!("{{dst}}{round}");
        assert_eq!(reader.command(&["ZUNIONSTORE", &dst, "2", x, y]).unwrap(), ":1\r\n", "union of {x} and {y}");
        assert_eq!(reader.command(&["ZSCORE", &dst, "m"]).unwrap(), "$1\r\n1\r\n");
        assert_eq!(reader.command(&["ZINTERSTORE", &dst, "2", x, y]).unwrap(), ":0\r\n", "intersection of {x} and {y}");
        assert_eq!(reader.command(&["EXISTS", &dst]).unwrap(), ":0\r\n", "an empty result deletes the destination");
        assert_eq!(reader.command(&["ZUNION", "2", x, y, "WITHSCORES"]).unwrap(), "*2\r\n$1\r\nm\r\n$1\r\n1\r\n");
        assert_eq!(reader.command(&["ZDIFFSTORE", &dst, "2", x, y]).unwrap().len(), 4, "ZDIFFSTORE replies :0 or :1");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0, "the writer ran");
}

/// Plain sets are inputs with score 1 to ZUNION, ZINTER, ZDIFF and their STORE forms.
#[test]
fn plain_sets_count_as_sorted_sets_with_score_one() {
    let servers = shoal_tests::shoal_and_redis(&[]);
    shoal_tests::assert_replies(
        &servers,
        &[
            (&["SADD", "{u}s", "a", "b", "7"], ":3\r\n"),
            (&["ZADD", "{u}z", "2", "a", "5", "c"], ":2\r\n"),
            (&["ZUNION", "2", "{u}s", "{u}z", "WITHSCORES"], "*8\r\n$1\r\n7\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nc\r\n$1\r\n5\r\n"),
            (&["ZINTER", "2", "{u}s", "{u}z", "WEIGHTS", "3", "1", "WITHSCORES"], "*2\r\n$1\r\na\r\n$1\r\n5\r\n"),
            (&["ZDIFFSTORE", "{u}d", "2", "{u}s", "{u}z"], ":2\r\n"),
            (&["ZRANGE", "{u}d", "0", "-1", "WITHSCORES"], "*4\r\n$1\r\n7\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n1\r\n"),
        ],
    );
}

/// Range replies are encoded straight from the set (no frame per member): in both protocols,
/// inside MULTI/EXEC and through scripts, from a listpack and from a skiplist, they are Redis's.
#[test]
fn range_replies_are_redis_bytes_in_both_protocols_in_transactions_and_scripts() {
    let mut big = vec!["ZADD".to_string(), "big".to_string()];
    for i in 0..200 {
        big.extend([format!("{}", f64::from(i) / 7.0), format!("member:{i}")]);
    }
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let setup: &[&[&str]] =
        &[&["ZADD", "small", "1", "a", "2.5", "b", "0.1", "c", "-inf", "d", "1e300", "e"], &big, &["ZADD", "lex", "0", "x", "0", "y", "0", "z"]];
    // Lex ranges only over equal scores: Redis leaves them unspecified otherwise.
    let mut requests: Vec<Vec<&str>> = vec![
        vec!["ZRANGE", "nokey", "0", "-1"],
        vec!["ZRANGE", "small", "5", "9"],
        vec!["ZRANGEBYLEX", "lex", "-", "[y"],
        vec!["ZREVRANGEBYLEX", "lex", "+", "-", "LIMIT", "1", "5"],
    ];
    for key in ["small", "big"] {
        requests.extend([
            vec!["ZRANGE", key, "0", "-1"],
            vec!["ZRANGE", key, "0", "-1", "WITHSCORES"],
            vec!["ZRANGE", key, "1", "-2", "REV", "WITHSCORES"],
            vec!["ZRANGEBYSCORE", key, "-inf", "(2", "WITHSCORES", "LIMIT", "1", "30"],
            vec!["ZREVRANGEBYSCORE", key, "+inf", "1"],
            vec!["ZRANGE", key, "(1", "+inf", "BYSCORE", "REV", "LIMIT", "0", "5"],
            vec!["ZREVRANGE", key, "0", "3", "WITHSCORES"],
        ]);
    }
    let requests: Vec<&[&str]> = requests.iter().map(Vec::as_slice).collect();
    shoal_tests::assert_replies_like_redis(&[], setup, &requests);
}

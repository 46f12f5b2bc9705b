//! SORT and SORT_RO against Debian's redis-server, and the snapshot a SORT whose patterns
//! read keys on every core sees while other clients write them.
//!
//! The differential generator sorts lists, sets and sorted sets (with keys on several cores,
//! and a destination that shares its core with one list through a hash tag) with every
//! option in random combinations and orders, valid and not, BY and GET patterns over
//! strings and hash fields, and STORE. Redis leaves two orders unspecified, and the
//! generator stays clear of both: the order of a set that is not sorted (such replies are
//! compared sorted, or by length when a LIMIT picks an unspecified part of them), and ties
//! between equal ALPHA BY values. For the second, every element of the pools always has a
//! `w_` string and an `f` field in its `h_` hash, each with a value no other element has;
//! ALPHA sorts BY only those (and only BY `w_` where the extra members, which have no `h_`
//! hash, may be). Numeric sorts break ties by the elements, so any pattern goes.
//!
//! Replay one sequence with `SHOAL_DIFF_SEED=7 SHOAL_DIFF_LEN=300 cargo test -p
//! shoal-tests --test sort -- --nocapture`; add SHOAL_DIFF_VERBOSE=1 to see every reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shoal_testkit::{key_core, keys_on_distinct_cores, Server};
use shoal_tests::diff::{self, Gen, Generated};
use shoal_tests::{assert_replies, connect, shoal_and_redis};

/// Elements that read as numbers (one with a leading space, which strtod accepts).
const NUMBERS: &[&str] = &["1", "2", "3", "10", "-5", "2.5", "0", "1e2", "100", "7", "-0.5", " 4", "0x10", "inf", "99999999999999999999"];
/// Elements that do not, or only some of the time.
const WORDS: &[&str] = &["a", "b", "abc", "", "x y", "B", "nan", "1 ", "-"];

/// Keys that are sorted: `l1`, `s1` and `z1` hold numbers only, the others anything.
const LISTS: &[&str] = &["l1", "l2", "{k}l"];
const SETS: &[&str] = &["s1", "s2"];
const ZSETS: &[&str] = &["z1", "z2"];
/// Keys of other types, and one that never exists.
const OTHERS: &[&str] = &["str", "hsh", "none"];
/// STORE destinations: `{k}d` shares a core with `{k}l`. A list is also stored onto itself,
/// without GET (so that it keeps elements of the pools only).
const DESTINATIONS: &[&str] = &["d1", "d2", "{k}d"];

/// BY patterns that never tie for ALPHA (see the module comment), or sort nothing.
const ALPHA_BY: &[&str] = &["w_*", "h_*->f", "nosort", "#"];
/// The same for `s2` and `z2`, which also hold [`EXTRA`] members: they have no `h_` hash.
const ALPHA_BY_EXTRA: &[&str] = &["w_*", "nosort", "#"];
/// Members that only `s2` and `z2` get, hundreds at once, so that they grow into a hash
/// table and a skiplist: numbers, each with a `w_` weight no other element has.
const EXTRA: std::ops::Range<u32> = 1000..1400;
/// BY patterns for numeric sorts: missing keys, fields and wrong types too.
const NUMERIC_BY: &[&str] = &["w_*", "h_*->f", "h_*->g", "m_*", "w_*->f", "h_*->", "*", "nosort", "m_*->f"];
const GETS: &[&str] = &["#", "w_*", "h_*->f", "h_*->g", "m_*", "nostar", "h_*->", "w_*->f", "*", "h_*->nofield"];
const LIMITS: &[&str] = &["0", "1", "2", "3", "5", "100", "-1", "-2", "9223372036854775807", "-9223372036854775808"];
const BAD_INTEGERS: &[&str] = &["x", "", "1.5", "9223372036854775808", " 1"];
const MAYBE_VALUES: &[&str] = &["1", "2", "-3", "2.5", "abc", "", "10", "1e3", "x"];

const SEEDS: std::ops::RangeInclusive<u64> = 1..=16;
const LEN_DEFAULT: usize = 250;

struct Generator {
    base: Gen,
    /// The last unique number handed out (see [`Generator::unique`]).
    unique: u64,
}

fn args(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|a| a.as_bytes().to_vec()).collect()
}

fn every_element() -> impl Iterator<Item = &'static str> {
    NUMBERS.iter().chain(WORDS).copied()
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let mut generator = Generator { base: Gen::new(seed), unique: 0 };
        let mut mset = vec!["MSET".to_string()];
        for element in every_element() {
            mset.push(format!("w_{element}"));
            mset.push(generator.unique_value(false));
            let f = generator.unique_value(false);
            let g = generator.base.pick(MAYBE_VALUES).to_string();
            generator.base.then(Generated { label: "setup", args: args(&["HSET", &format!("h_{element}"), "f", &f, "g", &g]) });
        }
        for extra in EXTRA {
            mset.push(format!("w_{extra}"));
            mset.push(generator.unique_value(false));
        }
        generator.base.then(Generated { label: "setup", args: mset.iter().map(|a| a.as_bytes().to_vec()).collect() });
        generator.base.then(Generated { label: "setup", args: args(&["SET", "str", "x"]) });
        generator.base.then(Generated { label: "setup", args: args(&["HSET", "hsh", "a", "b"]) });
        generator
    }

    /// A value no other weight has, as a number or as text: a number, or now and then
    /// (`rarely_text`) something that is not one.
    fn unique_value(&mut self, rarely_text: bool) -> String {
        self.unique += self.base.rng.random_range(1..4);
        let n = self.unique;
        match self.base.rng.random_range(0..50) {
            0 if rarely_text => format!("x{n}"),
            0..=24 => n.to_string(),
            25..=34 => format!("-{n}"),
            35..=44 => format!("{n}.5"),
            _ => format!("{n}e1"),
        }
    }

    fn element(&mut self, numbers_only: bool) -> &'static str {
        if numbers_only || self.base.chance(80) {
            self.base.pick(NUMBERS)
        } else {
            self.base.pick(WORDS)
        }
    }

    fn elements(&mut self, numbers_only: bool, max: usize) -> Vec<&'static str> {
        let n = self.base.rng.random_range(1..=max);
        (0..n).map(|_| self.element(numbers_only)).collect()
    }

    fn sort_key(&mut self) -> &'static str {
        match self.base.rng.random_range(0..20) {
            0..=7 => self.base.pick(LISTS),
            8..=12 => self.base.pick(SETS),
            13..=17 => self.base.pick(ZSETS),
            _ => self.base.pick(OTHERS),
        }
    }

    fn generate(&mut self) -> Generated {
        if let Some(setup) = self.base.queued() {
            return setup;
        }
        match self.base.rng.random_range(0..100) {
            0..=29 => self.sort(false),
            30..=39 => self.sort(true),
            40..=47 => {
                let key = self.base.pick(LISTS);
                let mut command = vec![if self.base.chance(50) { "RPUSH" } else { "LPUSH" }, key];
                command.extend(self.elements(key == "l1", 6));
                Generated { label: "RPUSH", args: args(&command) }
            }
            48..=53 => {
                let key = self.base.pick(SETS);
                let mut command = vec!["SADD", key];
                command.extend(self.elements(key == "s1", 6));
                Generated { label: "SADD", args: args(&command) }
            }
            54..=59 => {
                let key = self.base.pick(ZSETS);
                let mut command = vec!["ZADD".to_string(), key.to_string()];
                for element in self.elements(key == "z1", 5) {
                    command.push(self.base.rng.random_range(-3..4).to_string());
                    command.push(element.to_string());
                }
                Generated { label: "ZADD", args: command.into_iter().map(String::into_bytes).collect() }
            }
            60..=62 => {
                let key = self.base.pick(&["l1", "l2", "{k}l", "s1", "s2", "z1", "z2"]);
                let element = self.element(false);
                let command = match key.as_bytes()[0] {
                    b's' => vec!["SREM", key, element],
                    b'z' => vec!["ZREM", key, element],
                    _ => vec!["LREM", key, "0", element],
                };
                Generated { label: "remove", args: args(&command) }
            }
            63 | 64 => {
                let key = self.base.pick(&["l1", "l2", "{k}l", "s1", "s2", "z1", "z2", "d1", "d2", "{k}d"]);
                Generated { label: "DEL", args: args(&["DEL", key]) }
            }
            65..=71 => {
                let element = self.element(false);
                let value = self.unique_value(true);
                Generated { label: "SET w_", args: args(&["SET", &format!("w_{element}"), &value]) }
            }
            72..=76 => {
                let element = self.element(false);
                let (field, value) = if self.base.chance(50) { ("f", self.unique_value(true)) } else { ("g", self.base.pick(MAYBE_VALUES).to_string()) };
                Generated { label: "HSET h_", args: args(&["HSET", &format!("h_{element}"), field, &value]) }
            }
            77..=81 => {
                let element = self.element(false);
                if self.base.chance(25) {
                    Generated { label: "DEL m_", args: args(&["DEL", &format!("m_{element}")]) }
                } else {
                    let value = self.base.pick(MAYBE_VALUES);
                    Generated { label: "SET m_", args: args(&["SET", &format!("m_{element}"), value]) }
                }
            }
            82..=87 => {
                let key = self.base.pick(&["d1", "d2", "{k}d", "l1"]);
                Generated { label: "LRANGE", args: args(&["LRANGE", key, "0", "-1"]) }
            }
            88..=89 => {
                let key = self.base.pick(DESTINATIONS);
                Generated { label: "EXPIRE", args: args(&["EXPIRE", key, "100000"]) }
            }
            90..=92 => {
                let key = self.base.pick(DESTINATIONS);
                Generated { label: "TTL", args: args(&["TTL", key]) }
            }
            93 | 94 => {
                let key = self.base.pick(&["d1", "d2", "{k}d", "z1", "z2", "s1", "str", "none"]);
                Generated { label: "TYPE", args: args(&["TYPE", key]) }
            }
            95 => {
                let key = self.base.pick(ZSETS);
                Generated { label: "OBJECT ENCODING", args: args(&["OBJECT", "ENCODING", key]) }
            }
            96 => self.many(),
            _ => {
                let name = self.base.pick(&["SORT", "SORT_RO", "sort"]);
                Generated { label: "(wrong arity)", args: args(&[name]) }
            }
        }
    }

    /// Many elements at once, so that lists grow into quicklists, sets into hash tables and
    /// sorted sets into skiplists.
    fn many(&mut self) -> Generated {
        let n = self.base.rng.random_range(100..400);
        let command = match self.base.rng.random_range(0..3) {
            0 => {
                let key = self.base.pick(LISTS);
                let mut command = vec!["RPUSH".to_string(), key.to_string()];
                command.extend((0..n).map(|_| self.element(key == "l1").to_string()));
                command
            }
            1 => {
                let mut command = vec!["SADD".to_string(), "s2".to_string()];
                command.extend((0..n).map(|_| self.base.rng.random_range(EXTRA).to_string()));
                command
            }
            _ => {
                let mut command = vec!["ZADD".to_string(), "z2".to_string()];
                for _ in 0..n {
                    command.push(self.base.rng.random_range(-100..100).to_string());
                    command.push(self.base.rng.random_range(EXTRA).to_string());
                }
                command
            }
        };
        Generated { label: "many", args: command.into_iter().map(String::into_bytes).collect() }
    }

    /// A SORT or SORT_RO with random options in a random order. The label says what Redis
    /// leaves unspecified in its reply (see [`normalise`]).
    fn sort(&mut self, readonly: bool) -> Generated {
        let key = self.sort_key();
        let alpha = self.base.chance(40);
        let mut options: Vec<Vec<String>> = Vec::new();
        let mut dontsort = false;
        let mut limited = false;
        let mut gets = 0;
        let mut store = false;
        if self.base.chance(55) {
            let by = match (alpha, key) {
                (true, "s2" | "z2") => self.base.pick(ALPHA_BY_EXTRA),
                (true, _) => self.base.pick(ALPHA_BY),
                (false, _) => self.base.pick(NUMERIC_BY),
            };
            dontsort |= !by.contains('*');
            options.push(vec![self.base.case_string("BY"), by.to_string()]);
        }
        if alpha {
            options.push(vec![self.base.case_string("ALPHA")]);
        }
        if self.base.chance(30) {
            let (offset, count) = (self.base.pick(LIMITS).to_string(), self.base.pick(LIMITS).to_string());
            options.push(vec![self.base.case_string("LIMIT"), offset, count]);
            limited = true;
        }
        for _ in 0..[0, 0, 1, 1, 2, 3][self.base.rng.random_range(0..6)] {
            let get = self.base.pick(GETS).to_string();
            options.push(vec![self.base.case_string("GET"), get]);
            gets += 1;
        }
        if self.base.chance(40) {
            let order = self.base.pick(&["ASC", "DESC", "DESC"]);
            options.push(vec![self.base.case_string(order)]);
        }
        if !readonly && self.base.chance(30) {
            let destination =
                if gets == 0 && LISTS.contains(&key) && self.base.chance(20) { key.to_string() } else { self.base.pick(DESTINATIONS).to_string() };
            options.push(vec![self.base.case_string("STORE"), destination]);
            store = true;
        }
        options.shuffle(&mut self.base.rng);
        // A broken option goes last: in the middle, an option missing its argument would take
        // the next one's name as its argument.
        let mut invalid = false;
        if self.base.chance(6) {
            invalid = true;
            let bad = match self.base.rng.random_range(0..7) {
                0 => vec![self.base.case_string("LIMIT"), self.base.pick(LIMITS).to_string()],
                1 => vec![self.base.case_string("LIMIT"), self.base.pick(BAD_INTEGERS).to_string(), self.base.pick(LIMITS).to_string()],
                2 => vec![self.base.case_string("LIMIT"), self.base.pick(LIMITS).to_string(), self.base.pick(BAD_INTEGERS).to_string()],
                3 => vec!["FOO".to_string()],
                4 => vec![self.base.case_string("STORE"), "d1".to_string()],
                _ => {
                    let option = self.base.pick(&["BY", "GET", "STORE", "LIMIT"]);
                    vec![self.base.case_string(option)]
                }
            };
            options.push(bad);
        }
        let name = if readonly { "SORT_RO" } else { "SORT" };
        let mut command = vec![self.base.case_string(name), key.to_string()];
        command.extend(options.into_iter().flatten());
        let label = if invalid {
            "SORT (invalid)"
        } else if SETS.contains(&key) && dontsort && !store {
            if limited {
                "SORT (set, no order, LIMIT)"
            } else {
                "SORT (set, no order)"
            }
        } else if store {
            "SORT STORE"
        } else if readonly {
            "SORT_RO"
        } else {
            "SORT"
        };
        Generated { label, args: command.into_iter().map(String::into_bytes).collect() }
    }
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }

    fn normalise(&self, generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
        normalise(generated, reply)
    }
}

/// The number of GET options of a generated SORT (its arguments are well formed).
fn get_count(generated: &Generated) -> usize {
    generated.args.windows(2).filter(|w| w[0].eq_ignore_ascii_case(b"GET")).count()
}

/// Makes what Redis leaves unspecified compare equal: the order of a set that is not sorted
/// (each element keeps its GET values together), the part of it a LIMIT picks (only the
/// length is compared), and positive TTLs.
fn normalise(generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
    match generated.label {
        "SORT (set, no order)" => diff::sorted_in_groups(reply, get_count(generated).max(1)),
        "SORT (set, no order, LIMIT)" => match diff::elements(&reply) {
            Some((header, _)) => header,
            None => reply,
        },
        "TTL" => match reply.strip_prefix(b":").and_then(|r| std::str::from_utf8(r).ok()).and_then(|r| r.trim_end().parse::<i64>().ok()) {
            Some(n) if n > 0 => b":(positive)\r\n".to_vec(),
            _ => reply,
        },
        _ => reply,
    }
}

fn differential(threads: usize, extra: &[&str]) {
    let must =
        ["SORT", "SORT_RO", "SORT STORE", "SORT (invalid)", "SORT (set, no order)", "SORT (set, no order, LIMIT)", "LRANGE", "TTL", "OBJECT ENCODING", "many"];
    diff::run("sort", threads, extra, SEEDS, LEN_DEFAULT, &must, Generator::new);
}

#[test]
fn random_sorts_reply_like_redis_with_four_threads() {
    differential(4, &[]);
}

/// Small encodings, so that lists are quicklists of many nodes and sets and sorted sets
/// convert early: every way of walking a value gets its turn.
#[test]
fn random_sorts_of_small_encodings_reply_like_redis_with_two_threads() {
    differential(2, &["--list-max-listpack-size", "3", "--set-max-intset-entries", "4", "--zset-max-listpack-entries", "4"]);
}

#[test]
fn command_info_matches_redis_up_to_the_key_specs() {
    let servers = shoal_and_redis(&[]);
    if servers.len() < 2 {
        return;
    }
    for name in ["sort", "sort_ro"] {
        let infos: Vec<Vec<Vec<u8>>> = servers
            .iter()
            .map(|server| {
                let reply = server.raw().command_bytes(&[b"COMMAND", b"INFO", name.as_bytes()]).unwrap();
                let (_, commands) = diff::elements(&reply).expect("an array of commands");
                let (_, fields) = diff::elements(&commands[0]).expect("an array of fields");
                // Name, arity, flags, first key, last key, step, ACL categories: Shoal's key
                // specs are its own.
                fields[..7].to_vec()
            })
            .collect();
        assert_eq!(infos[0], infos[1], "COMMAND INFO {name}: {:?} against {:?}", show_all(&infos[0]), show_all(&infos[1]));
    }
}

fn show_all(fields: &[Vec<u8>]) -> Vec<String> {
    fields.iter().map(|f| diff::show(f)).collect()
}

#[test]
fn nil_get_values_are_resp3_nulls_and_getkeys_names_the_destination() {
    let servers = shoal_and_redis(&[]);
    for server in &servers {
        let mut raw = server.raw();
        assert_eq!(raw.command(&["RPUSH", "l", "2", "1"]).unwrap(), ":2\r\n");
        assert_eq!(raw.command(&["SET", "w_1", "x"]).unwrap(), "+OK\r\n");
        assert!(raw.command(&["HELLO", "3"]).unwrap().starts_with('%'));
        assert_eq!(raw.command(&["SORT", "l", "GET", "w_*", "GET", "#"]).unwrap(), "*4\r\n$1\r\nx\r\n$1\r\n1\r\n_\r\n$1\r\n2\r\n", "port {}", server.port);
        assert_eq!(
            raw.command(&["COMMAND", "GETKEYS", "SORT", "l", "BY", "w_*", "STORE", "a", "STORE", "d"]).unwrap(),
            "*2\r\n$1\r\nl\r\n$1\r\nd\r\n",
            "port {}",
            server.port
        );
    }
    assert_replies(&servers, &[(&["SORT_RO", "l", "STORE", "d"], "-ERR syntax error\r\n")]);
}

/// A `redis` crate connection that fails instead of hanging when the server stops answering.
#[test]
fn sort_by_weights_on_every_core_sees_one_snapshot_of_concurrent_msets() {
    const THREADS: usize = 4;
    const PAIR_SUM: i64 = 200;
    let server = Server::start(THREADS, &[]);
    // Elements whose weights live on every core, paired across cores: each writer moves
    // weight within its pair, so the weights always add up to the same total.
    let mut elements: Vec<String> = keys_on_distinct_cores("w_e", THREADS, THREADS).iter().map(|k| k["w_".len()..].to_string()).collect();
    elements.extend((0..4).map(|n| format!("x{n}")));
    let pairs: Vec<(String, String)> = elements.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    for (a, b) in &pairs[..2] {
        assert_ne!(key_core(format!("w_{a}").as_bytes(), THREADS), key_core(format!("w_{b}").as_bytes(), THREADS), "a pair spans cores");
    }
    let total = PAIR_SUM * pairs.len() as i64;
    let mut setup = connect(&server);
    redis::cmd("RPUSH").arg("items").arg(&elements).query::<()>(&mut setup).unwrap();
    for (a, b) in &pairs {
        redis::cmd("MSET").arg(format!("w_{a}")).arg(PAIR_SUM / 2).arg(format!("w_{b}")).arg(PAIR_SUM / 2).query::<()>(&mut setup).unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(2);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = pairs
        .iter()
        .cloned()
        .enumerate()
        .map(|(writer, (a, b))| {
            let mut connection = connect(&server);
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(writer as u64);
                let mut writes = 0u64;
                while writes < 20_000 && Instant::now() < deadline {
                    let x: i64 = rng.random_range(0..=PAIR_SUM);
                    redis::cmd("MSET").arg(format!("w_{a}")).arg(x).arg(format!("w_{b}")).arg(PAIR_SUM - x).query::<()>(&mut connection).unwrap();
                    writes += 1;
                }
                writes
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (mut connection, stop) = (connect(&server), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut snapshots = std::collections::HashSet::new();
                while !stop.load(Ordering::SeqCst) {
                    let command = if reads.is_multiple_of(2) { "SORT" } else { "SORT_RO" };
                    let reply: Vec<String> =
                        redis::cmd(command).arg("items").arg("BY").arg("w_*").arg("GET").arg("#").arg("GET").arg("w_*").query(&mut connection).unwrap();
                    let weights: Vec<(i64, &str)> = reply.chunks(2).map(|p| (p[1].parse().unwrap(), p[0].as_str())).collect();
                    let sum: i64 = weights.iter().map(|(w, _)| w).sum();
                    assert_eq!(sum, total, "reader {reader} saw the weights of no single moment: {reply:?}");
                    assert!(weights.windows(2).all(|w| w[0] <= w[1]), "reader {reader} got them out of order: {reply:?}");
                    snapshots.insert(reply);
                    reads += 1;
                }
                (reads, snapshots.len())
            })
        })
        .collect();
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        let (reads, snapshots) = reader.join().unwrap();
        assert!(reads >= 20, "a reader managed only {reads} sorts");
        assert!(snapshots > 1, "a reader saw the weights change ({snapshots} snapshots in {reads} sorts)");
    }
    assert!(writes >= 100, "the writers managed only {writes} MSETs");
    // A sort that stores while the weights move: the count is always the whole list.
    let stored: i64 = redis::cmd("SORT").arg("items").arg("BY").arg("w_*").arg("STORE").arg("sorted").query(&mut setup).unwrap();
    assert_eq!(stored, elements.len() as i64);
}

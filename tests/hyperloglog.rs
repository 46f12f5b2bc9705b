//! Integration and differential tests of the HyperLogLog family against redis-server.
//!
//! The representation is Redis's own, so the strongest test is the bytes: after the same
//! PFADDs both servers hold byte-identical values, and a value GET from one and SET into the
//! other counts the same there, sparse or dense, with the cache valid or not. The
//! differential generator then drives PFADD, PFCOUNT (one and several keys, so several
//! cores), PFMERGE, PFDEBUG, GET and SET with valid and invalid arguments, in RESP2 and RESP3.
//!
//! What this does not cover: corrupt HyperLogLogs that make Redis 7.0 itself misbehave, and
//! PFSELFTEST's timing (it only checks the reply).

use rand::Rng;
use shoal_testkit::{Raw, Server};
use shoal_tests::diff::{self, Gen, Generated};
use shoal_tests::THREADS;

/// The payload of a bulk-string reply.
fn bulk_payload(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply.first(), Some(&b'$'), "a bulk reply: {}", diff::show(reply));
    let header_end = reply.windows(2).position(|w| w == b"\r\n").expect("a header") + 2;
    reply[header_end..reply.len() - 2].to_vec()
}

fn command(raw: &mut Raw, args: &[&[u8]]) -> Vec<u8> {
    raw.command_bytes(args).expect("a reply")
}

/// Adds elements `from..to` (as text) to `key` in batches.
fn add_range(raw: &mut Raw, key: &str, from: u64, to: u64) {
    let mut start = from;
    while start < to {
        let end = (start + 500).min(to);
        let elements: Vec<Vec<u8>> = (start..end).map(|n| format!("element:{n}").into_bytes()).collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
        args.extend(elements.iter().map(|e| e.as_slice()));
        let reply = command(raw, &args);
        assert!(reply == b":1\r\n" || reply == b":0\r\n", "PFADD replied {}", diff::show(&reply));
        start = end;
    }
}

fn get(raw: &mut Raw, key: &str) -> Vec<u8> {
    bulk_payload(&command(raw, &[b"GET", key.as_bytes()]))
}

#[test]
fn the_same_pfadds_leave_the_same_bytes_and_counts() {
    let Some(redis_server) = Server::start_redis() else {
        return;
    };
    let shoal_server = Server::start(THREADS, &[]);
    let (mut shoal, mut redis) = (shoal_server.raw(), redis_server.raw());
    let mut added = 0;
    // Small steps first (sparse, many opcodes merged and split), larger ones past promotion.
    let checkpoints = (1..40).chain((50..2000).step_by(97)).chain((2000..60_000).step_by(2311));
    for checkpoint in checkpoints {
        add_range(&mut shoal, "h", added, checkpoint);
        add_range(&mut redis, "h", added, checkpoint);
        added = checkpoint;
        let bytes = get(&mut redis, "h");
        assert_eq!(get(&mut shoal, "h"), bytes, "the values after {added} elements");
        let count = command(&mut redis, &[b"PFCOUNT", b"h"]);
        assert_eq!(command(&mut shoal, &[b"PFCOUNT", b"h"]), count, "PFCOUNT after {added} elements");
        assert_eq!(get(&mut shoal, "h"), get(&mut redis, "h"), "the cached count after {added} elements");
    }
    assert_eq!(command(&mut shoal, &[b"PFDEBUG", b"ENCODING", b"h"]), b"+dense\r\n");
}

#[test]
fn hyperloglogs_move_between_redis_and_shoal_and_count_the_same() {
    let Some(redis_server) = Server::start_redis() else {
        return;
    };
    let shoal_server = Server::start(THREADS, &[]);
    let (mut shoal, mut redis) = (shoal_server.raw(), redis_server.raw());
    for (name, elements, encoding) in [("sparse", 300, &b"+sparse\r\n"[..]), ("dense", 30_000, b"+dense\r\n")] {
        // Written by Redis, counted by Shoal, with the cache invalid and then valid.
        let from_redis = format!("{name}:from-redis");
        add_range(&mut redis, &from_redis, 0, elements);
        assert_eq!(command(&mut redis, &[b"PFDEBUG", b"ENCODING", from_redis.as_bytes()]), encoding);
        let bytes = get(&mut redis, &from_redis);
        assert_eq!(command(&mut shoal, &[b"SET", from_redis.as_bytes(), &bytes]), b"+OK\r\n");
        let count = command(&mut redis, &[b"PFCOUNT", from_redis.as_bytes()]);
        assert_eq!(command(&mut shoal, &[b"PFCOUNT", from_redis.as_bytes()]), count, "{name}: Shoal counts Redis's value");
        assert_eq!(get(&mut shoal, &from_redis), get(&mut redis, &from_redis), "{name}: the same cache");
        // Both keep adding to the transferred value identically.
        add_range(&mut redis, &from_redis, elements, elements + 100);
        add_range(&mut shoal, &from_redis, elements, elements + 100);
        assert_eq!(get(&mut shoal, &from_redis), get(&mut redis, &from_redis), "{name}: adding to a transferred value");

        // Written by Shoal, counted by Redis.
        let from_shoal = format!("{name}:from-shoal");
        add_range(&mut shoal, &from_shoal, 1_000_000, 1_000_000 + elements);
        assert_eq!(command(&mut shoal, &[b"PFDEBUG", b"ENCODING", from_shoal.as_bytes()]), encoding);
        let bytes = get(&mut shoal, &from_shoal);
        assert_eq!(command(&mut redis, &[b"SET", from_shoal.as_bytes(), &bytes]), b"+OK\r\n");
        let count = command(&mut shoal, &[b"PFCOUNT", from_shoal.as_bytes()]);
        assert_eq!(command(&mut redis, &[b"PFCOUNT", from_shoal.as_bytes()]), count, "{name}: Redis counts Shoal's value");

        // The union of the two, across cores on Shoal.
        let union: &[&[u8]] = &[b"PFCOUNT", from_redis.as_bytes(), from_shoal.as_bytes(), b"missing"];
        assert_eq!(command(&mut shoal, union), command(&mut redis, union), "{name}: PFCOUNT of several keys");
        let merge: &[&[u8]] = &[b"PFMERGE", b"merged", from_redis.as_bytes(), from_shoal.as_bytes()];
        assert_eq!(command(&mut shoal, merge), command(&mut redis, merge));
        assert_eq!(get(&mut shoal, "merged"), get(&mut redis, "merged"), "{name}: PFMERGE writes the same bytes");
        assert_eq!(command(&mut shoal, &[b"DEL", b"merged"]), b":1\r\n");
        assert_eq!(command(&mut redis, &[b"DEL", b"merged"]), b":1\r\n");
    }
}

#[test]
fn pfselftest_and_errors_reply_like_redis() {
    let servers = shoal_tests::shoal_and_redis(&[]);
    shoal_tests::assert_replies(
        &servers,
        &[
            (&["PFSELFTEST"], "+OK\r\n"),
            (&["PFSELFTEST", "x"], "-ERR wrong number of arguments for 'pfselftest' command\r\n"),
            (&["PFADD"], "-ERR wrong number of arguments for 'pfadd' command\r\n"),
            (&["PFDEBUG", "GETREG"], "-ERR wrong number of arguments for 'pfdebug' command\r\n"),
            (&["PFDEBUG", "GETREG", "k", "x"], "-ERR wrong number of arguments for 'pfdebug' command\r\n"),
            (&["PFDEBUG", "DECODE", "nokey"], "-ERR The specified key does not exist\r\n"),
            (&["SET", "s", "HYLL"], "+OK\r\n"),
            (&["PFADD", "s", "a"], "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"),
            (&["PFCOUNT", "s", "t"], "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"),
            (&["SET", "d", "HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"], "+OK\r\n"),
            (&["PFCOUNT", "d"], "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"),
            // A sparse header with no opcodes at all.
            (&["SET", "e", "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"], "+OK\r\n"),
            // Its cached count is valid, so only a count of several keys reads the registers.
            (&["PFCOUNT", "e"], ":0\r\n"),
            (&["PFCOUNT", "e", "e"], "-INVALIDOBJ Corrupted HLL object detected\r\n"),
            (&["PFADD", "e", "x"], "-INVALIDOBJ Corrupted HLL object detected\r\n"),
            (&["PFMERGE", "f", "e"], "-INVALIDOBJ Corrupted HLL object detected\r\n"),
            (&["EXISTS", "f"], ":0\r\n"),
            (&["PFADD", "h", "a"], ":1\r\n"),
            (&["PFDEBUG", "nope", "h"], "-ERR Unknown PFDEBUG subcommand 'nope'\r\n"),
            (&["PFDEBUG", "decode", "h"], "$20\r\nZ:12711 v:2,1 Z:3672\r\n"),
            (&["PFDEBUG", "TODENSE", "h"], ":1\r\n"),
            (&["PFDEBUG", "DECODE", "h"], "-ERR HLL encoding is not sparse\r\n"),
        ],
    );
}

// ---- Differential ----------------------------------------------------------------------

/// Keys: a few share the hash tag `{h}` (one core), the rest spread over the cores.
const KEYS: &[&str] = &["{h}a", "{h}b", "a", "b", "c", "hll:1", "hll:2", ""];

const COMMANDS: &[(&str, u32)] = &[("PFADD", 6), ("PFCOUNT", 4), ("PFMERGE", 3), ("PFDEBUG", 1), ("GET", 2), ("SET", 1), ("DEL", 1)];

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

    fn keys(&mut self, min: usize, max: usize) -> Vec<Vec<u8>> {
        let n = self.base.rng.random_range(min..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn element(&mut self, range: u32) -> Vec<u8> {
        match self.base.rng.random_range(0..20) {
            0 => Vec::new(),
            1 => vec![0, 255, 13, 10],
            _ => format!("e{}", self.base.rng.random_range(0..range)).into_bytes(),
        }
    }

    fn generate(&mut self) -> Generated {
        let name = self.base.weighted(COMMANDS);
        let mut args = vec![self.base.case(name)];
        match name {
            "PFADD" => {
                args.push(self.key());
                // Mostly a few elements; sometimes hundreds, so values turn dense.
                let (count, range) = if self.base.rng.random_range(0..8) == 0 {
                    (self.base.rng.random_range(100..600), 100_000)
                } else {
                    (self.base.rng.random_range(0..6), 3000)
                };
                for _ in 0..count {
                    let element = self.element(range);
                    args.push(element);
                }
            }
            "PFCOUNT" => args.extend(self.keys(0, 4)),
            "PFMERGE" => args.extend(self.keys(0, 4)),
            "PFDEBUG" => {
                let sub = self.base.pick(&["ENCODING", "encoding", "DECODE", "TODENSE", "GETREG", "FOO"]);
                args.push(sub.as_bytes().to_vec());
                if self.base.rng.random_range(0..10) > 0 {
                    args.push(self.key());
                }
            }
            "GET" | "DEL" => args.push(self.key()),
            "SET" => {
                args.push(self.key());
                let value: &[u8] = match self.base.rng.random_range(0..5) {
                    0 => b"hello",
                    1 => b"HYLL",
                    2 => b"12345",
                    3 => b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff",
                    _ => b"HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff",
                };
                args.push(value.to_vec());
            }
            other => unreachable!("no arguments for {other}"),
        }
        Generated { label: name, args }
    }
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }
}

fn differential(threads: usize, extra: &[&str]) {
    let must: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
    diff::run("hyperloglog", threads, extra, 1..=24, 250, &must, Generator::new);
}

#[test]
fn random_hyperloglog_commands_reply_like_redis_with_four_threads() {
    differential(4, &[]);
}

#[test]
fn random_hyperloglog_commands_reply_like_redis_with_two_threads_and_a_small_sparse_limit() {
    differential(2, &["--hll-sparse-max-bytes", "300"]);
}

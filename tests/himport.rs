//! HIMPORT (Redis 8.10) against the real shoal-server: fieldsets belong to one connection
//! (or one script run), HIMPORT SET makes hashes on shared field-name templates on whichever
//! core owns the key, and the log and replicas get a RESTORE of each hash.
//!
//! Debian's redis-server (7.0) has no HIMPORT, so the expected replies follow Redis's
//! documentation and its tests (tests/unit/type/hash-templates.tcl); where Redis 7.0 can
//! judge, it does: it loads the log and follows as a replica.

use std::time::{Duration, Instant};

use shoal_testkit::{keys_on_distinct_cores, need, Raw, Server};
use shoal_tests::THREADS;

const OK: &str = "+OK\r\n";
const NO_SUCH: &str = "-ERR no such fieldset\r\n";
const COUNT: &str = "-ERR value count does not match fieldset field count\r\n";

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn strings(items: &[&str]) -> String {
    format!("*{}\r\n", items.len()) + &items.iter().map(|s| bulk(s)).collect::<String>()
}

fn info_field(raw: &mut Raw, name: &str) -> i64 {
    let info = raw.command(&["INFO", "stats"]).unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("{name} in {info}"));
    line[name.len() + 1..].trim().parse().unwrap()
}

#[test]
fn fieldsets_belong_to_their_connection_and_make_hashes_on_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let keys = keys_on_distinct_cores("user:", THREADS, THREADS);
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "u", "name", "email", "age"]).unwrap(), OK);
    for (i, key) in keys.iter().enumerate() {
        let name = format!("n{i}");
        assert_eq!(raw.command(&["HIMPORT", "SET", key, "u", &name, "e@x", "30"]).unwrap(), OK);
        // Template order: the shortest name first, then bytewise.
        assert_eq!(raw.command(&["HGETALL", key]).unwrap(), strings(&["age", "30", "name", &name, "email", "e@x"]));
        assert_eq!(raw.command(&["OBJECT", "ENCODING", key]).unwrap(), bulk("template-listpack"));
    }
    let key = keys[0].as_str();
    assert_eq!(raw.command(&["HIMPORT", "SET", key, "u", "a", "b"]).unwrap(), COUNT);
    assert_eq!(raw.command(&["HIMPORT", "SET", key, "u", "a", "b", "c", "d"]).unwrap(), COUNT);
    assert_eq!(raw.command(&["HIMPORT", "SET", key, "v", "a"]).unwrap(), NO_SUCH);
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "d", "a", "b", "a"]).unwrap(), "-ERR duplicate field name in fieldset\r\n");
    assert_eq!(raw.command(&["HIMPORT", "SET", key, "d", "1", "2", "3"]).unwrap(), NO_SUCH, "a refused PREPARE keeps nothing");
    assert_eq!(raw.command(&["HIMPORT"]).unwrap(), "-ERR wrong number of arguments for 'himport' command\r\n");
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "x"]).unwrap(), "-ERR wrong number of arguments for 'himport|prepare' command\r\n");
    assert_eq!(raw.command(&["HIMPORT", "SET", "k", "x"]).unwrap(), "-ERR wrong number of arguments for 'himport|set' command\r\n");
    assert_eq!(raw.command(&["HIMPORT", "DISCARD", "a", "b"]).unwrap(), "-ERR wrong number of arguments for 'himport|discard' command\r\n");
    assert!(raw.command(&["HIMPORT", "foobar"]).unwrap().starts_with("-ERR unknown subcommand 'foobar'"));
    // Empty names are names.
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "", "", "b"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "SET", "e", "", "va", "vb"]).unwrap(), OK);
    assert_eq!(raw.command(&["HGET", "e", ""]).unwrap(), bulk("va"));

    // Another connection sees none of them, and has its own.
    let mut other = server.raw();
    assert_eq!(other.command(&["HIMPORT", "SET", key, "u", "a", "b", "c"]).unwrap(), NO_SUCH);
    assert_eq!(other.command(&["HIMPORT", "PREPARE", "u", "x"]).unwrap(), OK);
    assert_eq!(other.command(&["HIMPORT", "SET", "o", "u", "1"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "SET", "o", "u", "1", "2", "3"]).unwrap(), OK);
    assert_eq!(raw.command(&["HGETALL", "o"]).unwrap(), strings(&["age", "3", "name", "1", "email", "2"]));

    // SET replaces a hash, TTL and all, and refuses another type.
    assert_eq!(raw.command(&["EXPIRE", "o", "100"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "c", "city"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "SET", "o", "c", "Paris"]).unwrap(), OK);
    assert_eq!(raw.command(&["HGETALL", "o"]).unwrap(), strings(&["city", "Paris"]));
    assert_eq!(raw.command(&["TTL", "o"]).unwrap(), ":-1\r\n");
    assert_eq!(raw.command(&["SET", "s", "v"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "SET", "s", "c", "x"]).unwrap(), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert_eq!(raw.command(&["GET", "s"]).unwrap(), bulk("v"));

    // DISCARD, DISCARDALL and RESET drop fieldsets, not the hashes made from them.
    assert_eq!(raw.command(&["HIMPORT", "DISCARD", "u"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HIMPORT", "DISCARD", "u"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["HIMPORT", "SET", key, "u", "a", "b", "c"]).unwrap(), NO_SUCH);
    assert_eq!(raw.command(&["HGET", key, "name"]).unwrap(), bulk("n0"));
    assert_eq!(raw.command(&["HIMPORT", "DISCARDALL"]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["HIMPORT", "DISCARDALL"]).unwrap(), ":0\r\n");
    assert_eq!(other.command(&["RESET"]).unwrap(), "+RESET\r\n");
    assert_eq!(other.command(&["HIMPORT", "SET", "o", "u", "1"]).unwrap(), NO_SUCH);

    // A fieldset is counted in the client's memory.
    let tot_mem = |raw: &mut Raw| -> i64 {
        let info = raw.command(&["CLIENT", "INFO"]).unwrap();
        info.split(' ').find_map(|f| f.strip_prefix("tot-mem=")).unwrap().parse().unwrap()
    };
    let before = tot_mem(&mut raw);
    let fields: Vec<String> = (0..2000).map(|i| format!("a-rather-long-field-name-{i}")).collect();
    let mut prepare = vec!["HIMPORT", "PREPARE", "big"];
    prepare.extend(fields.iter().map(String::as_str));
    assert_eq!(raw.command(&prepare).unwrap(), OK);
    assert!(tot_mem(&mut raw) >= before + 50_000, "{before} -> {}", tot_mem(&mut raw));
    assert_eq!(raw.command(&["HIMPORT", "DISCARD", "big"]).unwrap(), ":1\r\n");
    assert!(tot_mem(&mut raw) < before + 50_000);
}

#[test]
fn transactions_and_scripts_use_the_fieldsets_they_will_have_when_they_run() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let keys = keys_on_distinct_cores("m", 2, THREADS);
    let (a, b) = (keys[0].as_str(), keys[1].as_str());
    // PREPARE queued before SET counts for it; one queued after does not.
    assert_eq!(raw.command(&["MULTI"]).unwrap(), OK);
    for command in [
        &["HIMPORT", "SET", a, "late", "1"][..],
        &["HIMPORT", "PREPARE", "f", "x", "y"],
        &["HIMPORT", "SET", a, "f", "1", "2"],
        &["HIMPORT", "SET", b, "f", "3", "4"],
        &["HIMPORT", "PREPARE", "late", "z"],
    ] {
        assert_eq!(raw.command(command).unwrap(), "+QUEUED\r\n");
    }
    assert_eq!(raw.command(&["EXEC"]).unwrap(), format!("*5\r\n{NO_SUCH}{OK}{OK}{OK}{OK}"));
    assert_eq!(raw.command(&["HGETALL", b]).unwrap(), strings(&["x", "3", "y", "4"]));
    assert_eq!(raw.command(&["HIMPORT", "SET", a, "late", "9"]).unwrap(), OK, "the queue's PREPAREs ran");
    // A discarded transaction prepares nothing.
    assert_eq!(raw.command(&["MULTI"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "DISCARDALL"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(raw.command(&["DISCARD"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "SET", a, "f", "5", "6"]).unwrap(), OK);

    // A script run has fieldsets of its own: none of the connection's, none of another run's.
    let prepare_only = "redis.call('HIMPORT','PREPARE','s','a'); return 'OK'";
    let set_only = "return redis.call('HIMPORT','SET',KEYS[1],'s','1')";
    let both = "redis.call('HIMPORT','PREPARE','s','a','b'); return redis.call('HIMPORT','SET',KEYS[1],'s','1','2')";
    assert_eq!(raw.command(&["EVAL", prepare_only, "0"]).unwrap(), bulk("OK"));
    assert!(raw.command(&["EVAL", set_only, "1", a]).unwrap().starts_with("-ERR no such fieldset"));
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "s", "q"]).unwrap(), OK);
    assert!(raw.command(&["EVAL", set_only, "1", a]).unwrap().starts_with("-ERR no such fieldset"));
    assert_eq!(raw.command(&["EVAL", both, "1", b]).unwrap(), OK);
    assert_eq!(raw.command(&["HGETALL", b]).unwrap(), strings(&["a", "1", "b", "2"]));
    let library = "#!lua name=himporttest\nredis.register_function('prepare_and_set', function(keys, args) redis.call('HIMPORT','PREPARE','fs','a'); return redis.call('HIMPORT','SET',keys[1],'fs',args[1]) end)";
    assert!(raw.command(&["FUNCTION", "LOAD", library]).unwrap().contains("himporttest"));
    assert_eq!(raw.command(&["FCALL", "prepare_and_set", "1", a, "v"]).unwrap(), OK);
    assert_eq!(raw.command(&["HGETALL", a]).unwrap(), strings(&["a", "v"]));
}

#[test]
fn templated_hashes_share_names_move_between_templates_and_answer_as_hashes() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "o1", "a", "b", "c"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "o2", "c", "b", "a"]).unwrap(), OK);
    let keys = keys_on_distinct_cores("t", 4, THREADS);
    for (i, key) in keys.iter().enumerate() {
        let set = if i % 2 == 0 { "o1" } else { "o2" };
        assert_eq!(raw.command(&["HIMPORT", "SET", key, set, "1", "2", "3"]).unwrap(), OK);
    }
    // One template per core that has such keys; every key counted.
    let templates = info_field(&mut raw, "hash_templates");
    assert!((1..=THREADS as i64).contains(&templates), "{templates}");
    assert_eq!(info_field(&mut raw, "hash_template_keys"), 4);
    let (k0, k1) = (keys[0].as_str(), keys[1].as_str());
    assert_eq!(raw.command(&["HGETALL", k1]).unwrap(), strings(&["a", "3", "b", "2", "c", "1"]));
    // Every hash command works on them; field changes keep the template encoding.
    assert_eq!(raw.command(&["HINCRBY", k0, "a", "5"]).unwrap(), ":6\r\n");
    assert_eq!(raw.command(&["HSET", k0, "d", "4"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HDEL", k0, "b"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HGETALL", k0]).unwrap(), strings(&["a", "6", "c", "3", "d", "4"]));
    assert_eq!(raw.command(&["OBJECT", "ENCODING", k0]).unwrap(), bulk("template-listpack"));
    assert_eq!(raw.command(&["HSCAN", k0, "0", "MATCH", "[ab]"]).unwrap(), "*2\r\n$1\r\n0\r\n".to_owned() + &strings(&["a", "6"]));
    assert_eq!(raw.command(&["HLEN", k0]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["HMGET", k0, "a", "zz", "d"]).unwrap(), "*3\r\n$1\r\n6\r\n$-1\r\n$1\r\n4\r\n");
    assert_eq!(raw.command(&["HRANDFIELD", k0, "-5"]).unwrap().matches("\r\n$1\r\n").count(), 5);
    // A long value: an array of values; a field TTL: off templates.
    let long = "x".repeat(100);
    assert_eq!(raw.command(&["HSET", k1, "b", &long]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", k1]).unwrap(), bulk("template-array"));
    assert_eq!(raw.command(&["HGET", k1, "b"]).unwrap(), bulk(&long));
    assert_eq!(raw.command(&["HEXPIRE", k0, "100", "FIELDS", "1", "a"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", k0]).unwrap(), bulk("listpackex"));
    assert_eq!(info_field(&mut raw, "hash_template_keys"), 3);
    // Copied, renamed and dumped whole.
    let dump = raw.command_bytes(&[b"DUMP", k1.as_bytes()]).unwrap();
    assert_eq!(raw.command(&["COPY", k1, "{t}copy"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["RENAME", "{t}copy", keys[2].as_str()]).unwrap(), OK);
    assert_eq!(raw.command(&["HGET", keys[2].as_str(), "b"]).unwrap(), bulk(&long));
    let payload = &dump[dump.iter().position(|&b| b == b'\n').unwrap() + 1..dump.len() - 2];
    assert_eq!(raw.command_bytes(&[b"RESTORE", b"restored", b"0", payload]).unwrap(), OK.as_bytes());
    // A plain hash again (Redis 8.10's own DUMP keeps the template; Shoal's is Redis 7's).
    assert_eq!(raw.command(&["HMGET", "restored", "a", "b", "c"]).unwrap(), strings(&["3", &long, "1"]));
    // Deleting the keys releases the templates.
    assert_eq!(raw.command(&["FLUSHALL", "SYNC"]).unwrap(), OK);
    assert_eq!(info_field(&mut raw, "hash_template_keys"), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut raw, "hash_templates") != 0 {
        assert!(Instant::now() < deadline, "templates not released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 1,000 hashes of 10 fields with 20-byte names: on a template they cost their values, not
/// their names, so MEMORY USAGE says under 0.6 times as much as for the same hashes made by
/// HSET (about half, key and entry included).
#[test]
fn a_templated_hash_costs_less_than_the_same_hash_made_by_hset() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let fields: Vec<String> = (0..10).map(|i| format!("field-name-number-{i:02}")).collect();
    let mut prepare = vec!["HIMPORT", "PREPARE", "f"];
    prepare.extend(fields.iter().map(String::as_str));
    assert_eq!(raw.command(&prepare).unwrap(), OK);
    let usage = |raw: &mut Raw, key: &str| -> i64 { raw.command(&["MEMORY", "USAGE", key]).unwrap().trim_start_matches(':').trim().parse().unwrap() };
    let (mut templated, mut plain) = (0, 0);
    for i in 0..1000 {
        let values: Vec<String> = (0..10).map(|j| format!("v{i}-{j}")).collect();
        let (t, p) = (format!("t{i}"), format!("p{i}"));
        let mut set = vec!["HIMPORT", "SET", &t, "f"];
        set.extend(values.iter().map(String::as_str));
        assert_eq!(raw.command(&set).unwrap(), OK);
        let mut hset = vec!["HSET", &p];
        for (field, value) in fields.iter().zip(&values) {
            hset.push(field);
            hset.push(value);
        }
        assert_eq!(raw.command(&hset).unwrap(), ":10\r\n");
        templated += usage(&mut raw, &t);
        plain += usage(&mut raw, &p);
    }
    eprintln!("MEMORY USAGE of 1,000 hashes: templated {templated}, HSET {plain}");
    assert!(templated * 10 < plain * 6, "templated {templated}, HSET {plain}");
}

/// Under `appendfsync always` a HIMPORT SET is in the log as a RESTORE before it is
/// acknowledged: it survives kill -9, the log passes redis-check-aof, and Redis 7 loads it.
/// A Redis replica follows it too.
#[test]
fn hashes_made_by_himport_survive_kill_9_and_reach_redis() {
    let always = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"];
    let dir = Server::scratch("himport-aof");
    let server = Server::start_in(&dir, THREADS, &always);
    let mut raw = server.raw();
    let replica = if need("redis-server") {
        let port = server.port.to_string();
        let replica = Server::start_redis_with(&["--replicaof", "127.0.0.1", &port]).expect("redis-server");
        let mut r = replica.raw();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !r.command(&["INFO", "replication"]).unwrap().contains("master_link_status:up") {
            assert!(Instant::now() < deadline, "the Redis replica did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(replica)
    } else {
        None
    };
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "u", "name", "age"]).unwrap(), OK);
    let keys = keys_on_distinct_cores("k", THREADS, THREADS);
    for key in &keys {
        assert_eq!(raw.command(&["HIMPORT", "SET", key, "u", key, "7"]).unwrap(), OK);
    }
    assert_eq!(raw.command(&["HIMPORT", "SET", "gone", "u", "x"]).unwrap(), COUNT);
    if let Some(replica) = &replica {
        let mut r = replica.raw();
        let last = keys.last().unwrap().as_str();
        let deadline = Instant::now() + Duration::from_secs(20);
        while r.command(&["EXISTS", last]).unwrap() != ":1\r\n" {
            assert!(Instant::now() < deadline, "the Redis replica did not get the hashes");
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in &keys {
            assert_eq!(r.command(&["HGETALL", key]).unwrap(), strings(&["age", "7", "name", key]), "on the Redis replica");
        }
    }
    drop(raw);
    server.signal("KILL");
    drop(server);
    drop(replica);
    if need("redis-check-aof") {
        let manifest = dir.join("appendonlydir").join("appendonly.aof.manifest");
        let output = std::process::Command::new("redis-check-aof").arg(&manifest).output().expect("run redis-check-aof");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    }
    let restarted = Server::start_in(&dir, THREADS, &always);
    let mut raw = restarted.raw();
    for key in &keys {
        assert_eq!(raw.command(&["HGETALL", key]).unwrap(), strings(&["age", "7", "name", key]));
    }
    assert_eq!(raw.command(&["EXISTS", "gone"]).unwrap(), ":0\r\n");
    drop(raw);
    drop(restarted);
    if let Some(redis) = Server::start_redis_in(&dir, &["--appendonly", "yes"]) {
        let mut r = redis.raw();
        for key in &keys {
            assert_eq!(r.command(&["HGETALL", key]).unwrap(), strings(&["age", "7", "name", key]), "Redis loading our log");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hash-min-template-entries` and `hash-max-template-entries` (Redis 8.10, both 0 by
/// default: off) move hashes written by plain commands to templates.
#[test]
fn hashes_written_by_hset_move_to_templates_within_the_configured_sizes() {
    let server = Server::start(THREADS, &["--hash-min-template-entries", "3"]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["CONFIG", "GET", "hash-min-template-entries"]).unwrap(), strings(&["hash-min-template-entries", "3"]));
    assert_eq!(raw.command(&["CONFIG", "GET", "hash-max-template-entries"]).unwrap(), strings(&["hash-max-template-entries", "0"]));
    assert_eq!(raw.command(&["HSET", "small", "a", "1", "b", "2"]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "small"]).unwrap(), bulk("listpack"));
    assert_eq!(raw.command(&["HSET", "small", "c", "3"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "small"]).unwrap(), bulk("template-listpack"));
    assert_eq!(raw.command(&["HGETALL", "small"]).unwrap(), strings(&["a", "1", "b", "2", "c", "3"]));
    assert_eq!(raw.command(&["HINCRBY", "n", "x", "1"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "n"]).unwrap(), bulk("listpack"));
    // A hash with field TTLs stays as it is.
    assert_eq!(raw.command(&["HSET", "ttl", "a", "1"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HEXPIRE", "ttl", "100", "FIELDS", "1", "a"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["HSET", "ttl", "b", "2", "c", "3"]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "ttl"]).unwrap(), bulk("listpackex"));
    // Wider than the maximum: left plain; a change applies to the next write.
    assert_eq!(raw.command(&["CONFIG", "SET", "hash-max-template-entries", "4"]).unwrap(), OK);
    assert_eq!(raw.command(&["HSET", "wide", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"]).unwrap(), ":5\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "wide"]).unwrap(), bulk("listpack"));
    assert_eq!(raw.command(&["CONFIG", "SET", "hash-max-template-entries", "0"]).unwrap(), OK);
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "wide"]).unwrap(), bulk("listpack"));
    assert_eq!(raw.command(&["HSET", "wide", "a", "0"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "wide"]).unwrap(), bulk("template-listpack"));
    // Once on a template, it stays on one, whatever its size.
    assert_eq!(raw.command(&["HDEL", "wide", "a", "b", "c"]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "wide"]).unwrap(), bulk("template-listpack"));
    assert_eq!(info_field(&mut raw, "hash_template_keys"), 2);
}

/// Shoal's files hold plain hashes; `hash-rdb-load-min-template-entries` (Redis 8.10, 0 by
/// default) moves those of a loading file to templates, so a restart keeps them compact.
#[test]
fn hashes_of_a_loading_file_move_to_templates_when_configured() {
    let server = Server::start(THREADS, &["--hash-rdb-load-min-template-entries", "2", "--hash-rdb-load-max-template-entries", "3"]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["HIMPORT", "PREPARE", "u", "name", "age"]).unwrap(), OK);
    assert_eq!(raw.command(&["HIMPORT", "SET", "imported", "u", "ann", "7"]).unwrap(), OK);
    assert_eq!(raw.command(&["HSET", "two", "b", "2", "a", "1"]).unwrap(), ":2\r\n");
    assert_eq!(raw.command(&["HSET", "one", "a", "1"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HSET", "four", "a", "1", "b", "2", "c", "3", "d", "4"]).unwrap(), ":4\r\n");
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "two"]).unwrap(), bulk("listpack"));
    assert_eq!(raw.command(&["DEBUG", "RELOAD"]).unwrap(), OK);
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "imported"]).unwrap(), bulk("template-listpack"));
    assert_eq!(raw.command(&["HGETALL", "imported"]).unwrap(), strings(&["age", "7", "name", "ann"]));
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "two"]).unwrap(), bulk("template-listpack"));
    assert_eq!(raw.command(&["HGETALL", "two"]).unwrap(), strings(&["a", "1", "b", "2"]));
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "one"]).unwrap(), bulk("listpack"));
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "four"]).unwrap(), bulk("listpack"));
    assert_eq!(info_field(&mut raw, "hash_template_keys"), 2);
}

/// `hash-rdb-load-template-disassembly-threshold`: after a load, a template fewer hashes
/// than that share is given up, its hashes plain again.
#[test]
fn a_template_few_loaded_hashes_share_is_given_up_after_the_load() {
    let server = Server::start(THREADS, &["--hash-rdb-load-min-template-entries", "1", "--hash-rdb-load-template-disassembly-threshold", "3"]);
    let mut raw = server.raw();
    let shared = keys_on_distinct_cores("{s}", 1, THREADS).pop().unwrap();
    // Three hashes of one core share {a, b}; two of another core share {x}.
    for i in 0..3 {
        assert_eq!(raw.command(&["HSET", &format!("{shared}{i}"), "a", "1", "b", "2"]).unwrap(), ":2\r\n");
    }
    for i in 0..2 {
        assert_eq!(raw.command(&["HSET", &format!("{shared}x{i}"), "x", "1"]).unwrap(), ":1\r\n");
    }
    assert_eq!(raw.command(&["DEBUG", "RELOAD"]).unwrap(), OK);
    for i in 0..3 {
        assert_eq!(raw.command(&["OBJECT", "ENCODING", &format!("{shared}{i}")]).unwrap(), bulk("template-listpack"), "kept: three share it");
    }
    for i in 0..2 {
        assert_eq!(raw.command(&["OBJECT", "ENCODING", &format!("{shared}x{i}")]).unwrap(), bulk("listpack"), "given up: two share it");
        assert_eq!(raw.command(&["HGET", &format!("{shared}x{i}"), "x"]).unwrap(), bulk("1"));
    }
    assert_eq!(info_field(&mut raw, "hash_template_keys"), 3);
}

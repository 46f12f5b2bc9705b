//! MULTI, EXEC, DISCARD, WATCH and UNWATCH: replies compared with Debian's redis-server
//! (fixed two-client scripts and seeded random ones), and atomicity under contention across
//! cores (bank transfers whose total never changes, transactions that take the same keys in
//! different orders and all finish).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shoal_testkit::{keys_on_distinct_cores, Raw, Server};
use shoal_tests::{connect, shoal_and_redis, THREADS};

/// One step of a two-client script: which client sends what, or a pause.
#[derive(Clone, Debug)]
enum Step {
    Send(usize, Vec<String>),
    /// Sent, but its reply is not compared (HELLO names the server and its version).
    Unchecked(usize, Vec<String>),
    Sleep(u64),
}

fn send(client: usize, command: &str) -> Step {
    Step::Send(client, command.split(' ').map(str::to_string).collect())
}

/// Runs `steps` on a server with two fresh connections; returns every reply in order.
fn play(server: &Server, steps: &[Step]) -> Vec<String> {
    let mut clients: Vec<Raw> = (0..2).map(|_| server.raw()).collect();
    let mut replies = Vec::new();
    for step in steps {
        match step {
            Step::Send(client, args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let reply = clients[*client].command(&args).unwrap_or_else(|e| panic!("{args:?} on port {}: {e}", server.port));
                replies.push(format!("{client}> {} -> {reply:?}", args.join(" ")));
            }
            Step::Unchecked(client, args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                clients[*client].command(&args).unwrap_or_else(|e| panic!("{args:?} on port {}: {e}", server.port));
            }
            Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
    replies
}

/// Plays `steps` on Shoal and redis-server (each flushed first) and asserts equal replies.
fn assert_same(servers: &[Server], name: &str, steps: &[Step]) {
    let [shoal, redis] = servers else {
        eprintln!("redis-server is not installed: {name} only checks that Shoal answers");
        play(&servers[0], steps);
        return;
    };
    let mut flush = vec![send(0, "FLUSHALL")];
    flush.extend_from_slice(steps);
    let (ours, theirs) = (play(shoal, &flush), play(redis, &flush));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "{name}: step {i} differs\nshoal: {ours:#?}\nredis: {theirs:#?}");
    }
    assert_eq!(ours.len(), theirs.len());
}

#[test]
fn scripted_transactions_answer_as_redis_does() {
    let servers = shoal_and_redis(&[]);
    // Keys on four different cores of Shoal.
    let k = keys_on_distinct_cores("k", 4, THREADS);
    let (a, b, c, d) = (&k[0], &k[1], &k[2], &k[3]);
    let scripts: Vec<(&str, Vec<Step>)> = vec![
        (
            // A write that only reads some of its keys leaves their watchers alone (hash tags:
            // one core, so these run as plain commands).
            "sources a write only reads",
            vec![
                send(1, "SET {s}src v"),
                send(1, "SADD {s}set1 a b"),
                send(1, "SADD {s}set2 b c"),
                send(1, "RPUSH {s}list 3 1 2"),
                send(0, "WATCH {s}src {s}set1 {s}list"),
                send(1, "COPY {s}src {s}copy"),
                send(1, "SINTERSTORE {s}inter {s}set1 {s}set2"),
                send(1, "SORT {s}list STORE {s}sorted"),
                send(0, "MULTI"),
                send(0, "GET {s}copy"),
                send(0, "EXEC"),
                send(0, "WATCH {s}copy"),
                send(1, "COPY {s}src {s}copy REPLACE"),
                send(0, "MULTI"),
                send(0, "GET {s}copy"),
                send(0, "EXEC"),
            ],
        ),
        (
            "basics and queueing errors",
            vec![
                send(0, "EXEC"),
                send(0, "DISCARD"),
                send(0, "MULTI"),
                send(0, "MULTI"),
                send(0, &format!("WATCH {a}")),
                send(0, &format!("SET {a} 1")),
                send(0, &format!("INCR {b}")),
                send(0, &format!("MSET {c} x {d} y")),
                send(0, &format!("MGET {a} {b} {c} {d}")),
                send(0, &format!("INCR {c}")),
                send(0, "PING"),
                send(0, "ECHO hi"),
                send(0, "EXEC"),
                send(0, "EXEC"),
                send(0, "MULTI"),
                send(0, &format!("SET {a} 2")),
                send(0, "NOSUCHCOMMAND x"),
                send(0, &format!("GET {a} {b}")),
                send(0, "EXEC"),
                send(0, &format!("GET {a}")),
                send(0, "MULTI"),
                send(0, &format!("SET {a} 3")),
                send(0, "DISCARD"),
                send(0, &format!("GET {a}")),
                send(0, "MULTI"),
                send(0, "EXEC"),
            ],
        ),
        (
            "cross-core commands, databases and blocking commands inside EXEC",
            vec![
                send(0, &format!("RPUSH {a} 1 2")),
                send(0, "MULTI"),
                send(0, &format!("RENAME {a} {b}")),
                send(0, &format!("LMOVE {b} {c} LEFT RIGHT")),
                send(0, &format!("BLPOP {d} 0")),
                send(0, &format!("BLPOP {d} {b} 0")),
                send(0, &format!("EXISTS {a} {b} {c}")),
                send(0, "SELECT 3"),
                send(0, &format!("SET {a} in3")),
                send(0, &format!("MOVE {a} 0")),
                send(0, "DBSIZE"),
                send(0, "EXEC"),
                send(0, &format!("GET {a}")),
                send(0, "SELECT 0"),
                send(0, &format!("GET {a}")),
                send(0, "MULTI"),
                send(0, "DBSIZE"),
                send(0, "FLUSHDB"),
                send(0, "DBSIZE"),
                send(0, &format!("SET {d} after")),
                send(0, "EXEC"),
                send(0, "DBSIZE"),
            ],
        ),
        (
            "WATCH: changes by others, by oneself, and none",
            vec![
                send(0, &format!("SET {a} 1")),
                send(0, &format!("WATCH {a} {b}")),
                send(1, &format!("SET {a} 2")),
                send(0, "MULTI"),
                send(0, &format!("SET {b} mine")),
                send(0, "EXEC"),
                send(0, &format!("GET {b}")),
                send(0, &format!("WATCH {a} {b}")),
                send(1, &format!("GET {a}")),
                send(0, "MULTI"),
                send(0, &format!("SET {b} mine")),
                send(0, "EXEC"),
                send(0, &format!("WATCH {c}")),
                send(0, &format!("SET {c} self")),
                send(0, "MULTI"),
                send(0, &format!("GET {c}")),
                send(0, "EXEC"),
                send(0, &format!("WATCH {c}")),
                send(0, "UNWATCH"),
                send(1, &format!("SET {c} other")),
                send(0, "MULTI"),
                send(0, &format!("GET {c}")),
                send(0, "EXEC"),
                send(0, &format!("WATCH {d}")),
                send(1, &format!("DEL {d}")),
                send(0, "MULTI"),
                send(0, &format!("SET {d} 1")),
                send(0, "EXEC"),
                send(0, &format!("WATCH {d}")),
                send(1, &format!("EXPIRE {d} 1000")),
                send(0, "MULTI"),
                send(0, &format!("TTL {d}")),
                send(0, "EXEC"),
                send(0, &format!("WATCH {a}")),
                send(1, "FLUSHALL"),
                send(0, "MULTI"),
                send(0, "PING"),
                send(0, "EXEC"),
                send(0, &format!("WATCH {a}")),
                send(0, "MULTI"),
                send(0, "DISCARD"),
                send(1, &format!("SET {a} 1")),
                send(0, "MULTI"),
                send(0, "PING"),
                send(0, "EXEC"),
            ],
        ),
        (
            "WATCH: RENAME onto a watched key, FLUSHDB, SWAPDB",
            vec![
                send(0, &format!("SET {a} 1")),
                send(0, &format!("SET {b} 2")),
                send(0, &format!("WATCH {b}")),
                send(1, &format!("RENAME {a} {b}")),
                send(0, "MULTI"),
                send(0, &format!("GET {b}")),
                send(0, "EXEC"),
                send(0, &format!("WATCH {b}")),
                send(1, "FLUSHDB"),
                send(0, "MULTI"),
                send(0, &format!("GET {b}")),
                send(0, "EXEC"),
                send(0, &format!("SET {c} 3")),
                send(0, &format!("WATCH {c}")),
                send(1, "SWAPDB 0 1"),
                send(0, "MULTI"),
                send(0, &format!("GET {c}")),
                send(0, "EXEC"),
                send(0, "SELECT 1"),
                send(0, &format!("GET {c}")),
                send(0, "SELECT 0"),
            ],
        ),
        (
            "hash-tagged keys on one core (the EXEC runs there, from any connection)",
            vec![
                send(0, "SET {t}a 1"),
                send(0, "WATCH {t}a {t}b"),
                send(1, "SET {t}a 2"),
                send(0, "MULTI"),
                send(0, "INCR {t}a"),
                send(0, "LPUSH {t}b x"),
                send(0, "EXEC"),
                send(0, "WATCH {t}a {t}b"),
                send(0, "MULTI"),
                send(0, "INCR {t}a"),
                send(0, "LPUSH {t}b x"),
                send(0, "PING"),
                send(0, "LRANGE {t}b 0 -1"),
                send(0, "EXEC"),
                send(1, "MULTI"),
                send(1, "MGET {t}a {t}b {t}c"),
                send(1, "INCR {t}b"),
                send(1, "EXEC"),
            ],
        ),
        (
            "WATCH of a key that expires",
            vec![
                send(0, &format!("SET {a} 1 PX 100")),
                send(0, &format!("WATCH {a}")),
                Step::Sleep(250),
                send(0, "MULTI"),
                send(0, "PING"),
                send(0, "EXEC"),
                send(0, &format!("SET {b} 1 PX 1")),
                Step::Sleep(50),
                send(0, &format!("WATCH {b}")),
                send(0, "MULTI"),
                send(0, "PING"),
                send(0, "EXEC"),
            ],
        ),
        (
            "RESP3 and RESET",
            vec![
                Step::Unchecked(0, vec!["HELLO".into(), "3".into()]),
                send(0, &format!("WATCH {a}")),
                send(1, &format!("SET {a} x")),
                send(0, "MULTI"),
                send(0, &format!("HSET {b} f v")),
                send(0, "EXEC"),
                send(0, "MULTI"),
                send(0, &format!("HSET {b} f v")),
                send(0, &format!("HGETALL {b}")),
                send(0, "EXEC"),
                send(0, "MULTI"),
                send(0, &format!("SET {c} 1")),
                send(0, "RESET"),
                send(0, "EXEC"),
                send(0, &format!("GET {c}")),
            ],
        ),
    ];
    for (name, steps) in &scripts {
        assert_same(&servers, name, steps);
    }
}

/// Random two-client scripts: client 0 watches, queues and executes; client 1 writes in
/// between, including writes that change nothing (SET NX on an existing key, EXPIRE GT on a
/// key without a TTL, PERSIST of a key without one, DEL of missing keys across cores, a
/// refused MSETNX, a RENAME of a missing key, FLUSHALL of absent keys, its own EXEC of such
/// writes, a script's SET NX), which fail no WATCH in Redis either.
/// DEBUG RELOAD replaces every key: a watched key that existed fails the EXEC, a watched key
/// that exists in neither the old nor the new data does not (Redis's emptyData).
#[test]
fn debug_reload_fails_the_watch_of_existing_keys_as_redis_does() {
    let mut servers = vec![Server::start(THREADS, &[])];
    servers.extend(Server::start_redis_with(&["--enable-debug-command", "yes"]));
    let steps = [
        send(1, "SET k 1"),
        send(0, "WATCH k nokey"),
        send(1, "DEBUG RELOAD"),
        send(0, "MULTI"),
        send(0, "GET k"),
        send(0, "EXEC"),
        send(0, "WATCH nokey"),
        send(1, "DEBUG RELOAD"),
        send(0, "MULTI"),
        send(0, "GET k"),
        send(0, "EXEC"),
    ];
    assert_same(&servers, "debug reload", &steps);
}

#[test]
fn random_watch_and_multi_sequences_answer_as_redis_does() {
    random_watch_and_multi_sequences(shoal_and_redis(&[]), keys_on_distinct_cores("r", 4, THREADS));
}

/// With two cores, every EXEC of keyed single-core commands over both cores, and every MSET,
/// MGET, DEL and EXISTS over both, takes the one-round-trip path (`Core::exec_with_one_peer`,
/// `runtime::pair`), WATCH included.
#[test]
fn random_watch_and_multi_sequences_over_two_cores_answer_as_redis_does() {
    let mut servers = vec![Server::start(2, &[])];
    servers.extend(Server::start_redis_with(&[]));
    let mut keys = keys_on_distinct_cores("r", 2, 2);
    keys.extend(keys_on_distinct_cores("s", 2, 2));
    random_watch_and_multi_sequences(servers, keys);
}

fn random_watch_and_multi_sequences(servers: Vec<Server>, keys: Vec<String>) {
    let seeds: u64 = std::env::var("SHOAL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for seed in 1..=seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut steps = Vec::new();
        for _ in 0..30 {
            if rng.random_bool(0.5) {
                let watched: Vec<String> = (0..rng.random_range(1..=3)).map(|_| keys[rng.random_range(0..keys.len())].clone()).collect();
                steps.push(send(0, &format!("WATCH {}", watched.join(" "))));
            }
            for _ in 0..rng.random_range(0..3) {
                let target = keys[rng.random_range(0..keys.len())].clone();
                let other = keys[rng.random_range(0..keys.len())].clone();
                let write = match rng.random_range(0..14) {
                    0 => format!("SET {target} v{}", rng.random_range(0..3)),
                    1 => format!("INCR {target}"),
                    2 => format!("DEL {target}"),
                    3 => format!("LPUSH {target} e"),
                    4 => format!("SET {target} nx NX"),
                    5 => format!("EXPIRE {target} 1000 GT"),
                    6 => format!("PERSIST {target}"),
                    // Across cores, through the transaction layer: a missing key of a DEL, a
                    // refused MSETNX and FLUSHALL of keys that do not exist change nothing.
                    7 => format!("DEL {target} {other}"),
                    8 if rng.random_bool(0.5) => format!("MSET {target} m {other} m"),
                    8 => format!("MSETNX {target} m {other} m"),
                    9 if rng.random_bool(0.3) => "FLUSHALL".to_string(),
                    // The other client's own transaction of writes that may change nothing.
                    10 => {
                        steps.push(send(1, "MULTI"));
                        steps.push(send(1, &format!("SET {target} nx NX")));
                        steps.push(send(1, &format!("SET {other} nx NX")));
                        "EXEC".to_string()
                    }
                    11 => format!("RENAME {target} {other}"),
                    // A script's write that changes nothing, or a real one.
                    12 => {
                        let script = if rng.random_bool(0.5) { "return redis.call('set',KEYS[1],'s','NX')" } else { "return redis.call('incr',KEYS[1])" };
                        steps.push(Step::Send(1, ["EVAL", script, "1", &target].map(str::to_string).to_vec()));
                        continue;
                    }
                    _ => format!("GET {target}"),
                };
                steps.push(send(1, &write));
            }
            steps.push(send(0, "MULTI"));
            for _ in 0..rng.random_range(0..5) {
                let (x, y) = (keys[rng.random_range(0..keys.len())].clone(), keys[rng.random_range(0..keys.len())].clone());
                let command = match rng.random_range(0..10) {
                    0 => format!("SET {x} q"),
                    1 => format!("INCR {x}"),
                    2 => format!("GET {x}"),
                    3 => format!("MSET {x} 1 {y} 2"),
                    4 => format!("MGET {x} {y}"),
                    5 => format!("DEL {x} {y}"),
                    6 => format!("LPUSH {x} z"),
                    7 => format!("EXISTS {x} {y}"),
                    8 => format!("RPOPLPUSH {x} {y}"),
                    _ => "INCR".to_string(),
                };
                steps.push(send(0, &command));
            }
            steps.push(send(0, if rng.random_bool(0.85) { "EXEC" } else { "DISCARD" }));
        }
        assert_same(&servers, &format!("seed {seed}"), &steps);
    }
}

#[test]
fn commands_over_the_whole_server_run_inside_exec() {
    let server = Server::start(THREADS, &[]);
    let mut client = server.raw();
    let keys = keys_on_distinct_cores("w", 4, THREADS);
    for key in &keys {
        assert_eq!(client.command(&["SET", key, "1"]).unwrap(), "+OK\r\n");
    }
    for request in [vec!["MULTI"], vec!["INFO", "keyspace"], vec!["DBSIZE"], vec!["CONFIG", "GET", "maxclients"], vec!["FLUSHALL"], vec!["DBSIZE"]] {
        client.command(&request).unwrap();
    }
    let reply = client.command(&["EXEC"]).unwrap();
    assert!(reply.starts_with("*5\r\n$"), "{reply:?}");
    assert!(reply.contains("db0:keys=4,expires=0"), "INFO saw the keys before FLUSHALL: {reply:?}");
    assert!(reply.ends_with(":4\r\n*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n+OK\r\n:0\r\n"), "{reply:?}");
}

/// BGSAVE, BGREWRITEAOF and CONFIG SET appendonly yes inside EXEC only schedule their work,
/// as in Redis: a background save's cut waits for transactions holding locks, and this one
/// would have waited on itself (it hung the EXEC and, with its locks held, every command over
/// the whole server; found by tests/robustness.rs).
#[test]
fn background_saves_inside_exec_are_scheduled_as_in_redis() {
    let servers = shoal_and_redis(&[]);
    let transcripts: Vec<Vec<String>> = servers
        .iter()
        .map(|server| {
            let mut raw = server.raw();
            let mut out = vec![raw.command(&["SET", "a", "1"]).unwrap()];
            // Waits for what was scheduled to run (the cron starts it) and end.
            let settle = |raw: &mut Raw, done: &[&str]| {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let info = raw.command(&["INFO", "persistence"]).unwrap();
                    if done.iter().all(|field| info.contains(field)) {
                        break;
                    }
                    assert!(Instant::now() < deadline, "still not {done:?}: {info}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            };
            for queued in [["BGSAVE", "", ""], ["BGREWRITEAOF", "", ""], ["CONFIG", "SET", "appendonly"]] {
                let mut command: Vec<&str> = queued.iter().copied().filter(|arg| !arg.is_empty()).collect();
                if command[0] == "CONFIG" {
                    command.push("yes");
                }
                for request in [vec!["MULTI"], command, vec!["GET", "a"], vec!["EXEC"]] {
                    out.push(raw.command(&request).unwrap());
                }
                settle(&mut raw, &["rdb_bgsave_in_progress:0", "aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0"]);
            }
            settle(&mut raw, &["rdb_changes_since_last_save:0", "aof_enabled:1"]);
            out.push(raw.command(&["DBSIZE"]).unwrap());
            out
        })
        .collect();
    assert_eq!(transcripts[0].last().map(String::as_str), Some(":1\r\n"), "{:?}", transcripts[0]);
    assert!(transcripts[0].contains(&"*2\r\n+Background saving scheduled\r\n$1\r\n1\r\n".to_string()), "{:?}", transcripts[0]);
    if let Some(redis) = transcripts.get(1) {
        assert_eq!(&transcripts[0], redis);
    }
}

/// DEBUG RELOAD locks every core, and inside EXEC the transaction holds some already: it is
/// refused there (Redis runs it) instead of waiting on itself with the server wedged.
#[test]
fn debug_reload_inside_exec_is_refused_and_the_server_goes_on() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    for (request, reply) in [
        (&["SET", "a", "1"][..], "+OK\r\n"),
        (&["MULTI"], "+OK\r\n"),
        (&["DEBUG", "RELOAD"], "+QUEUED\r\n"),
        (&["GET", "a"], "+QUEUED\r\n"),
        (&["EXEC"], "*2\r\n-ERR DEBUG RELOAD is not supported inside MULTI/EXEC\r\n$1\r\n1\r\n"),
        (&["DBSIZE"], ":1\r\n"),
        (&["DEBUG", "RELOAD"], "+OK\r\n"),
        (&["GET", "a"], "$1\r\n1\r\n"),
    ] {
        assert_eq!(raw.command(request).unwrap(), reply, "{request:?}");
    }
}

/// An EXEC of nothing (no command, no WATCH) while other clients' cross-core commands hold
/// locks on its core: it answers an empty array (it once took the chain path with no core to
/// visit and crashed the server; found by tests/robustness.rs).
#[test]
fn an_empty_exec_beside_cross_core_commands_answers_an_empty_array() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("busy", THREADS, THREADS);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let (mut raw, keys, stop) = (server.raw(), keys.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut request = vec!["MSET"];
                    for key in &keys {
                        request.extend([key.as_str(), "v"]);
                    }
                    assert_eq!(raw.command(&request).unwrap(), "+OK\r\n");
                }
            })
        })
        .collect();
    let mut raw = server.raw();
    for _ in 0..3000 {
        assert_eq!(raw.command(&["MULTI"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["EXEC"]).unwrap(), "*0\r\n");
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
}

/// Reads a transaction's EXEC: `None` when a WATCH failed it.
fn exec(connection: &mut redis::Connection) -> Option<Vec<redis::Value>> {
    match redis::cmd("EXEC").query::<redis::Value>(connection).unwrap() {
        redis::Value::Nil => None,
        redis::Value::Array(replies) => Some(replies),
        other => panic!("EXEC answered {other:?}"),
    }
}

#[test]
fn bank_transfers_across_cores_never_change_the_total() {
    let server = Server::start(THREADS, &[]);
    // Two accounts per core.
    let accounts: Arc<Vec<String>> =
        Arc::new(keys_on_distinct_cores("acct", 4, THREADS).into_iter().chain(keys_on_distinct_cores("acct2", 4, THREADS)).collect());
    const INITIAL: i64 = 1000;
    let mut setup = connect(&server);
    for account in accounts.iter() {
        redis::cmd("SET").arg(account).arg(INITIAL).query::<()>(&mut setup).unwrap();
    }
    let total = INITIAL * accounts.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(2);
    let stop = Arc::new(AtomicBool::new(false));
    // Transfer clients: half with WATCH (optimistic, retried), half with plain MULTI.
    let movers: Vec<_> = (0..4)
        .map(|mover| {
            let (mut connection, accounts) = (connect(&server), accounts.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(mover);
                let mut net = vec![0i64; accounts.len()];
                let (mut done, mut retried) = (0u64, 0u64);
                while done < 3000 && Instant::now() < deadline {
                    let (from, to) = (rng.random_range(0..accounts.len()), rng.random_range(0..accounts.len()));
                    let amount: i64 = rng.random_range(1..50);
                    if mover % 2 == 0 {
                        redis::cmd("WATCH").arg(&accounts[from]).arg(&accounts[to]).query::<()>(&mut connection).unwrap();
                        let balance: i64 = redis::cmd("GET").arg(&accounts[from]).query(&mut connection).unwrap();
                        if balance < amount {
                            redis::cmd("UNWATCH").query::<()>(&mut connection).unwrap();
                            continue;
                        }
                    }
                    redis::cmd("MULTI").query::<()>(&mut connection).unwrap();
                    redis::cmd("DECRBY").arg(&accounts[from]).arg(amount).query::<()>(&mut connection).unwrap();
                    redis::cmd("INCRBY").arg(&accounts[to]).arg(amount).query::<()>(&mut connection).unwrap();
                    match exec(&mut connection) {
                        Some(replies) => {
                            assert_eq!(replies.len(), 2);
                            net[from] -= amount;
                            net[to] += amount;
                            done += 1;
                        }
                        None => retried += 1,
                    }
                }
                (net, done, retried)
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (mut connection, accounts, stop) = (connect(&server), accounts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let balances: Vec<i64> = if reader == 0 {
                        redis::cmd("MULTI").query::<()>(&mut connection).unwrap();
                        for account in accounts.iter() {
                            redis::cmd("GET").arg(account).query::<()>(&mut connection).unwrap();
                        }
                        let replies = exec(&mut connection).expect("no WATCH, no abort");
                        replies.iter().map(|v| redis::from_redis_value(v.clone()).unwrap()).collect()
                    } else {
                        redis::cmd("MGET").arg(&*accounts).query(&mut connection).unwrap()
                    };
                    assert_eq!(balances.iter().sum::<i64>(), total, "reader {reader} saw money appear or vanish: {balances:?}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut net = vec![0i64; accounts.len()];
    let (mut transfers, mut retries) = (0, 0);
    for mover in movers {
        let (moved, done, retried) = mover.join().unwrap();
        for (sum, delta) in net.iter_mut().zip(moved) {
            *sum += delta;
        }
        transfers += done;
        retries += retried;
    }
    stop.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(transfers > 200, "enough transfers ran to test anything: {transfers}");
    assert!(reads > 50, "enough reads ran to test anything: {reads}");
    eprintln!("{transfers} transfers ({retries} EXECs failed by WATCH and retried), {reads} atomic reads");
    // No transfer lost or applied twice: each balance is exactly what the clients did.
    let balances: Vec<i64> = redis::cmd("MGET").arg(&*accounts).query(&mut setup).unwrap();
    for ((account, balance), delta) in accounts.iter().zip(&balances).zip(&net) {
        assert_eq!(*balance, INITIAL + delta, "{account}");
    }
}

#[test]
fn transactions_taking_keys_in_different_orders_all_finish() {
    let server = Server::start(THREADS, &[]);
    let keys: Arc<Vec<String>> = Arc::new(keys_on_distinct_cores("order", 4, THREADS));
    const ROUNDS: u64 = 300;
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (mut connection, keys) = (connect(&server), keys.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + client);
                for _ in 0..ROUNDS {
                    let mut order: Vec<&String> = keys.iter().collect();
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.random_range(0..=i));
                    }
                    if client % 2 == 0 {
                        redis::cmd("WATCH").arg(order[0]).query::<()>(&mut connection).unwrap();
                    }
                    redis::cmd("MULTI").query::<()>(&mut connection).unwrap();
                    for key in &order {
                        redis::cmd("INCR").arg(*key).query::<()>(&mut connection).unwrap();
                    }
                    redis::cmd("MSET").arg(order[3]).arg("x").arg(order[0]).arg("y").query::<()>(&mut connection).unwrap();
                    redis::cmd("DEL").arg(order[3]).arg(order[0]).query::<()>(&mut connection).unwrap();
                    // A read timeout (10 s) fails the test if a transaction never finishes.
                    exec(&mut connection);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every client finished all its transactions");
    }
}

/// Every EXEC increments the same keys on three cores, so any atomic read of them that sees
/// different values saw a transaction half done, and plain GETs one after another must never
/// see a key behind one read before it (an EXEC seen on one core is complete on every core by
/// then). Contention keeps each key's lock queue full, so a core that let waiting commands in
/// before the transaction's step there ran (or before every core had granted its locks) is
/// caught.
#[test]
fn nobody_sees_an_exec_half_done_on_contended_keys() {
    exec_never_seen_half_done(THREADS, 3);
}

/// With two cores every EXEC over both is a pair: this core and one other (the path that
/// runs the other core's commands with its lock, see `Core::exec_with_one_peer`).
#[test]
fn nobody_sees_an_exec_over_two_cores_half_done() {
    exec_never_seen_half_done(2, 2);
}

fn exec_never_seen_half_done(threads: usize, cores: usize) {
    let server = Server::start(threads, &[]);
    let keys: Arc<Vec<String>> = Arc::new(keys_on_distinct_cores("half", cores, threads));
    let deadline = Instant::now() + Duration::from_millis(1500);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (mut connection, keys) = (connect(&server), keys.clone());
            std::thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for key in keys.iter() {
                        pipe.cmd("INCR").arg(key);
                    }
                    let values: Vec<i64> = pipe.query(&mut connection).unwrap();
                    assert_eq!(values.len(), keys.len());
                    done += 1;
                }
                done
            })
        })
        .collect();
    let readers: Vec<_> = (0..5)
        .map(|reader| {
            let (mut connection, keys, stop) = (connect(&server), keys.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    if reader >= 3 {
                        // One GET at a time, starting from a different key each round.
                        let mut seen: Vec<i64> = Vec::with_capacity(keys.len());
                        for step in 0..keys.len() {
                            let key = &keys[(reads as usize + step) % keys.len()];
                            let value: Option<i64> = redis::cmd("GET").arg(key).query(&mut connection).unwrap();
                            seen.push(value.unwrap_or(0));
                        }
                        assert!(seen.windows(2).all(|pair| pair[1] >= pair[0]), "reader {reader} saw a key fall behind an earlier read: {seen:?}");
                        reads += 1;
                        continue;
                    }
                    let values: Vec<Option<i64>> = if reader == 0 {
                        redis::cmd("MGET").arg(&*keys).query(&mut connection).unwrap()
                    } else {
                        let mut pipe = redis::pipe();
                        pipe.atomic();
                        for key in keys.iter() {
                            pipe.cmd("GET").arg(key);
                        }
                        pipe.query(&mut connection).unwrap()
                    };
                    assert!(values.windows(2).all(|pair| pair[0] == pair[1]), "reader {reader} saw an EXEC half done: {values:?}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let transactions: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(transactions > 200 && reads > 200, "enough ran to test anything: {transactions} EXECs, {reads} reads");
    let values: Vec<i64> = redis::cmd("MGET").arg(&*keys).query(&mut connect(&server)).unwrap();
    assert_eq!(values, vec![transactions as i64; keys.len()], "every EXEC incremented every key once");
}

/// MSET, MGET and DEL over four cores take one chain from core to core (see
/// `runtime::chain`): a write of a watched key there fails the EXEC, a read of it or a DEL
/// that deleted nothing does not, and the values are all there or none.
#[test]
fn one_hop_commands_over_four_cores_tell_the_watchers_of_what_they_changed() {
    let server = Server::start(4, &[]);
    let keys = keys_on_distinct_cores("w", 4, 4);
    let mut watcher = connect(&server);
    let mut other = connect(&server);
    let watched = &keys[2];
    let watch_then_exec = |watcher: &mut redis::Connection, other: &mut redis::Connection, between: &redis::Cmd| {
        redis::cmd("WATCH").arg(watched).query::<()>(watcher).unwrap();
        between.query::<redis::Value>(other).unwrap();
        redis::cmd("MULTI").query::<()>(watcher).unwrap();
        redis::cmd("SET").arg(watched).arg("mine").query::<()>(watcher).unwrap();
        exec(watcher).is_some()
    };
    let mut mset = redis::cmd("MSET");
    for key in &keys {
        mset.arg(key).arg("1");
    }
    assert!(!watch_then_exec(&mut watcher, &mut other, &mset), "an MSET over four cores wrote the watched key");
    let mut mget = redis::cmd("MGET");
    mget.arg(&keys);
    assert!(watch_then_exec(&mut watcher, &mut other, &mget), "an MGET changes nothing");
    let mut del_missing = redis::cmd("DEL");
    for key in &keys {
        del_missing.arg(format!("{key}:missing"));
    }
    assert!(watch_then_exec(&mut watcher, &mut other, &del_missing), "a DEL of missing keys changes nothing");
    let values: Vec<Option<String>> = mget.query(&mut other).unwrap();
    assert_eq!(values, vec![Some("1".to_owned()), Some("1".to_owned()), Some("mine".to_owned()), Some("1".to_owned())]);
    let mut del = redis::cmd("DEL");
    del.arg(&keys);
    assert!(!watch_then_exec(&mut watcher, &mut other, &del), "a DEL over four cores deleted the watched key");
    let mut exists = redis::cmd("EXISTS");
    exists.arg(&keys);
    assert_eq!(exists.query::<i64>(&mut other).unwrap(), 0);
}

/// An EXEC over four cores with a WATCH takes every lock on its way forward, checks at the
/// last core and runs on its way back (see `runtime::chain`): it runs when nothing touched
/// the watched keys, and answers nil without running anything when a write or an expiry
/// did, whichever core the watched key lives on.
#[test]
fn a_watched_exec_over_four_cores_runs_all_or_nothing() {
    let server = Server::start(4, &[]);
    let keys = keys_on_distinct_cores("x", 4, 4);
    let mut client = connect(&server);
    let mut other = connect(&server);
    let incr_all = |client: &mut redis::Connection| {
        redis::cmd("MULTI").query::<()>(client).unwrap();
        for key in &keys {
            redis::cmd("INCR").arg(key).query::<()>(client).unwrap();
        }
        exec(client)
    };
    let values = |other: &mut redis::Connection| -> Vec<Option<i64>> { redis::cmd("MGET").arg(&keys).query(other).unwrap() };
    for watched in &keys {
        redis::cmd("WATCH").arg(watched).arg(&keys[0]).query::<()>(&mut client).unwrap();
        assert!(incr_all(&mut client).is_some(), "nothing touched {watched}");
    }
    assert_eq!(values(&mut other), vec![Some(4); 4]);
    for watched in &keys {
        redis::cmd("WATCH").arg(watched).query::<()>(&mut client).unwrap();
        redis::cmd("SET").arg(watched).arg(10).query::<()>(&mut other).unwrap();
        assert_eq!(incr_all(&mut client), None, "{watched} was written after the WATCH");
    }
    assert_eq!(values(&mut other), vec![Some(10); 4], "a failed EXEC ran nothing");
    redis::cmd("PEXPIRE").arg(&keys[3]).arg(50).query::<()>(&mut other).unwrap();
    redis::cmd("WATCH").arg(&keys[3]).query::<()>(&mut client).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(incr_all(&mut client), None, "the watched key expired");
    assert_eq!(values(&mut other), vec![Some(10), Some(10), Some(10), None]);
}

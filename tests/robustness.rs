//! Every command the server lists, with random arguments, alone, inside MULTI/EXEC and called
//! from a script: each request gets an answer, no listed command or subcommand is called
//! unknown, and the server (every core of it) is still alive at the end.
//!
//! The differential tests compare replies byte for byte, but each of them draws from its own
//! family's commands and well-formed arguments. This test draws from `COMMAND LIST` itself and
//! from a pool of arguments made to hurt (keys of every type, extreme and malformed numbers,
//! option words in the wrong places, binary garbage, long strings), so that a command nobody
//! thought to fuzz still meets bad input. It checks no reply's content; a panic, a hang, a
//! dead core or a lost connection fails it, with the seed, the command and the ones before.
//!
//! Odd seeds speak RESP3. `SHOAL_FUZZ_SEED` runs one seed, `SHOAL_FUZZ_LEN` sets the commands
//! per seed, `SHOAL_FUZZ_VERBOSE=1` prints every command and the start of its reply.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shoal_testkit::{Raw, Server};

/// Commands left out, and why: they end or take over the connection (QUIT, HELLO's protocol
/// switch, MONITOR, SUBSCRIBE's pushes, UNSUBSCRIBE's one reply per channel, CLIENT REPLY OFF, tracking's pushes), block for a
/// while or for ever on purpose (blocking pops, WAIT, CLIENT PAUSE), stop or reconfigure
/// the server in ways the rest of the run cannot survive (SHUTDOWN, DEBUG, REPLICAOF,
/// FAILOVER, ACL users, CLIENT KILL), or talk to other servers (MIGRATE, SYNC).
const SKIPPED: &[&str] = &[
    "quit",
    "hello",
    "monitor",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "client|reply",
    "client|tracking",
    "client|caching",
    "client|kill",
    "client|pause",
    "blpop",
    "brpop",
    "blmove",
    "blmovem",
    "brpoplpush",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "wait",
    "waitaof",
    "shutdown",
    "debug",
    "replicaof",
    "slaveof",
    "failover",
    "sync",
    "psync",
    "replconf",
    "migrate",
    "acl|setuser",
    "acl|deluser",
    "acl|load",
    "module|load",
    "module|loadex",
    // Redis's Lua debugger takes over the connection (and ends it) at the next script.
    "script|debug",
];

/// Keys the setup fills, one or more of each type and encoding, and one that never exists.
const KEYS: &[&str] = &["s", "n", "l", "bl", "h", "bh", "st", "is", "bst", "z", "bz", "x", "p", "g", "nokey", "{t}a", "{t}b"];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "5",
    "10",
    "100",
    "-100",
    "1000",
    "100000",
    "-100000",
    "1000000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "1.5",
    "-2.5",
    "0.0001",
    "1e308",
    "-1e308",
    "1e400",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "-0",
    "010",
    "0x10",
    " 1",
    "1 ",
    "",
    "(1",
    "(-inf",
    "[a",
    "(a",
    "-",
    "+",
    "*",
    "$",
    ">",
    "0-0",
    "1-1",
    "0-*",
    "5-",
    "18446744073709551615-18446744073709551615",
];

/// Option words of many commands, to land in the wrong places. Not BLOCK (XREAD would wait)
/// and no configuration parameter names (CONFIG SET could then change the server's port,
/// password or persistence under the test).
const WORDS: &[&str] = &[
    "COUNT",
    "LIMIT",
    "MATCH",
    "TYPE",
    "WITHSCORES",
    "WITHSCORE",
    "BYSCORE",
    "BYLEX",
    "REV",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "GET",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "KEEPTTL",
    "PERSIST",
    "ASYNC",
    "SYNC",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "MAXLEN",
    "MINID",
    "~",
    "=",
    "STORE",
    "BY",
    "ALPHA",
    "ASC",
    "DESC",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "MIN",
    "MAX",
    "IDLE",
    "TIME",
    "RETRYCOUNT",
    "FORCE",
    "JUSTID",
    "ID",
    "STREAMS",
    "GROUP",
    "CONSUMER",
    "MKSTREAM",
    "ENTRIESREAD",
    "FIELDS",
    "FNX",
    "FXX",
    "WITHCODE",
    "LIBRARYNAME",
    "REPLACE",
    "ABSTTL",
    "IDLETIME",
    "FREQ",
    "RANK",
    "BIT",
    "BYTE",
    "OVERFLOW",
    "WRAP",
    "SAT",
    "FAIL",
    "u8",
    "i64",
    "u63",
    "i1",
    "#1",
    "#100000",
    "AND",
    "OR",
    "XOR",
    "NOT",
    "DIFF",
    "DIFF1",
    "ANDOR",
    "ONE",
    "m",
    "km",
    "ft",
    "mi",
    "FROMMEMBER",
    "FROMLONLAT",
    "BYRADIUS",
    "BYBOX",
    "WITHCOORD",
    "WITHDIST",
    "WITHHASH",
    "ANY",
    "STOREDIST",
    "WITHVALUES",
    "NOMKSTREAM",
    "KEEPREF",
    "DELREF",
    "ACKED",
    "LEN",
    "IDX",
    "MINMATCHLEN",
    "WITHMATCHLEN",
    "DB",
    "COPY",
    "AUTH",
    "KEYS",
    "FLUSH",
    "APPEND",
    "FILTERBY",
    "PATTERN",
    "ACLCAT",
    "MODULE",
    "default",
    "a",
    "b",
    "c",
    "f",
    "g",
    "v",
    "Palermo",
    "Catania",
    "return 1",
    "return redis.call('get', KEYS[1])",
    "#!lua name=lib\nredis.register_function('f', function() return 1 end)",
    "__keyspace@0__:s",
];

struct Fuzzer {
    rng: SmallRng,
}

impl Fuzzer {
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.random_range(0..from.len())]
    }

    /// One argument from the pool: a key (more often in the first place, where most
    /// commands take theirs), a number, an option word, or garbage.
    fn argument(&mut self, first: bool) -> Vec<u8> {
        let key_share = if first { 70 } else { 25 };
        let roll = self.rng.random_range(0..100);
        if roll < key_share {
            return self.pick(KEYS).as_bytes().to_vec();
        }
        match self.rng.random_range(0..20) {
            0..=8 => self.pick(NUMBERS).as_bytes().to_vec(),
            9..=17 => {
                let word = self.pick(WORDS);
                if self.rng.random_bool(0.3) {
                    word.to_lowercase().into_bytes()
                } else {
                    word.as_bytes().to_vec()
                }
            }
            18 => (0..self.rng.random_range(0..20)).map(|_| self.rng.random()).collect(),
            _ => vec![b'x'; self.rng.random_range(1..20_000)],
        }
    }

    /// A request for `name` (`container|sub` for a subcommand) of Redis's `arity`: mostly of
    /// a right length, sometimes of any.
    fn request(&mut self, name: &str, arity: i64) -> Vec<Vec<u8>> {
        let mut args: Vec<Vec<u8>> = name.split('|').map(|part| part.as_bytes().to_vec()).collect();
        let named = args.len() as i64;
        let count = if self.rng.random_bool(0.05) {
            self.rng.random_range(0..6)
        } else if arity > 0 {
            (arity - named).max(0)
        } else {
            (-arity - named).max(0) + self.rng.random_range(0..5)
        };
        for index in 0..count {
            args.push(self.argument(index == 0));
        }
        args
    }
}

/// Every name `COMMAND LIST` gives (subcommands as `container|sub`) with its arity from
/// `COMMAND INFO`, less [`SKIPPED`] and containers (their subcommands are drawn instead).
fn listed_commands(raw: &mut Raw) -> Vec<(String, i64)> {
    let list = raw.command(&["COMMAND", "LIST"]).unwrap();
    let names: Vec<String> = list.split("\r\n").filter(|line| !line.is_empty() && !line.starts_with(['*', '$'])).map(str::to_string).collect();
    assert!(names.len() > 300, "COMMAND LIST gave {} names", names.len());
    let mut out = Vec::new();
    for name in &names {
        if SKIPPED.contains(&name.as_str()) || names.iter().any(|other| other.starts_with(&format!("{name}|"))) {
            continue;
        }
        let info = raw.command(&["COMMAND", "INFO", name]).unwrap();
        // *1, *10, $len, the name, then the arity as an integer line.
        let arity = info.split("\r\n").find_map(|line| line.strip_prefix(':')).and_then(|n| n.parse().ok());
        let arity = arity.unwrap_or_else(|| panic!("COMMAND INFO {name} has no arity: {info:?}"));
        out.push((name.clone(), arity));
    }
    out
}

/// Fills [`KEYS`] afresh in database 0 (out of any MULTI a random command left open).
fn setup(raw: &mut Raw) {
    let many = |prefix: &str| (0..200).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    let big_list = many("e");
    let big_hash: Vec<String> = many("f").into_iter().flat_map(|f| [f, "v".to_string()]).collect();
    let big_set: Vec<String> = many("m");
    let big_zset: Vec<String> = (0..200).flat_map(|i| [i.to_string(), format!("m{i}")]).collect();
    // SELECT is refused on a cluster node, and ADDSLOTSRANGE anywhere else: harmless.
    let mut commands: Vec<Vec<String>> =
        ["DISCARD", "SELECT 0", "FLUSHDB", "CLUSTER ADDSLOTSRANGE 0 16383"].iter().map(|command| command.split(' ').map(str::to_string).collect()).collect();
    let plain: &[&[&str]] = &[
        &["SET", "s", "hello"],
        &["SET", "n", "42"],
        &["RPUSH", "l", "a", "b", "c", "1", "2", "3"],
        &["HSET", "h", "f", "v", "g", "1"],
        &["SADD", "st", "a", "b", "c"],
        &["SADD", "is", "1", "2", "3"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["XADD", "x", "1-1", "f", "v"],
        &["XADD", "x", "2-1", "f", "v"],
        &["XGROUP", "CREATE", "x", "g", "0"],
        &["PFADD", "p", "a", "b", "c"],
        &["GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"],
        &["SET", "{t}a", "1"],
    ];
    commands.extend(plain.iter().map(|c| c.iter().map(|s| s.to_string()).collect()));
    commands.push(["RPUSH", "bl"].iter().map(|s| s.to_string()).chain(big_list).collect());
    commands.push(["HSET", "bh"].iter().map(|s| s.to_string()).chain(big_hash).collect());
    commands.push(["SADD", "bst"].iter().map(|s| s.to_string()).chain(big_set).collect());
    commands.push(["ZADD", "bz"].iter().map(|s| s.to_string()).chain(big_zset).collect());
    for command in commands {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        raw.command(&args).unwrap_or_else(|e| panic!("setup {args:?}: {e}"));
    }
}

/// DBSIZE runs on every core: an answer means none of them died.
fn assert_every_core_answers(server: &Server, context: &str) {
    let mut fresh = server.raw_result().unwrap_or_else(|e| panic!("no new connection {context}: {e}"));
    fresh.set_read_timeout(Duration::from_secs(10));
    let reply = fresh.command(&["DBSIZE"]).unwrap_or_else(|e| panic!("DBSIZE {context}: {e}"));
    assert!(reply.starts_with(':'), "DBSIZE {context}: {reply:?}");
}

/// The next unit of work: one command, mostly; now and then a transaction of a few (EXEC or
/// DISCARD), or one command called from a script with its first argument declared as the
/// key (commands a script may not call, or keys it did not declare, get their errors).
fn unit(fuzzer: &mut Fuzzer, commands: &[(String, i64)]) -> Vec<Vec<Vec<u8>>> {
    let draw = |fuzzer: &mut Fuzzer| {
        let (name, arity) = &commands[fuzzer.rng.random_range(0..commands.len())];
        fuzzer.request(name, *arity)
    };
    match fuzzer.rng.random_range(0..100) {
        0..=87 => vec![draw(fuzzer)],
        88..=95 => {
            let mut out = vec![vec![b"MULTI".to_vec()]];
            for _ in 0..fuzzer.rng.random_range(1..=5) {
                out.push(draw(fuzzer));
            }
            out.push(vec![if fuzzer.rng.random_bool(0.9) { b"EXEC".to_vec() } else { b"DISCARD".to_vec() }]);
            out
        }
        _ => {
            let called = draw(fuzzer);
            let key = called.get(1).cloned().unwrap_or_else(|| b"s".to_vec());
            let mut eval = vec![b"EVAL".to_vec(), b"return redis.pcall(unpack(ARGV))".to_vec(), b"1".to_vec(), key];
            eval.extend(called);
            vec![eval]
        }
    }
}

fn run_seed(server: &Server, commands: &[(String, i64)], seed: u64, len: usize) {
    let mut fuzzer = Fuzzer { rng: SmallRng::seed_from_u64(seed) };
    let mut raw = server.raw();
    raw.set_read_timeout(Duration::from_secs(10));
    let mut history: Vec<String> = Vec::new();
    let (mut index, mut next_setup) = (0, 0);
    while index < len {
        if index >= next_setup {
            setup(&mut raw);
            // Odd seeds speak RESP3 (a random RESET may take the connection back to RESP2).
            if seed % 2 == 1 {
                assert!(raw.command(&["HELLO", "3"]).unwrap().starts_with('%'), "HELLO 3");
            }
            next_setup += 250;
        }
        for args in unit(&mut fuzzer, commands) {
            let shown = args.iter().map(|a| format!("\"{}\"", a.escape_ascii())).collect::<Vec<_>>().join(" ");
            let shown = if shown.len() > 300 { format!("{}...", &shown[..300]) } else { shown };
            let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let context = || {
                format!(
                    "seed {seed}, command #{index}: {shown}\nthe commands before it:\n  {}",
                    history.iter().rev().take(8).rev().cloned().collect::<Vec<_>>().join("\n  ")
                )
            };
            let reply = match raw.command_bytes(&argv) {
                Ok(reply) => reply,
                Err(e) => panic!("no answer ({e}) at {}\nreplay with SHOAL_FUZZ_SEED={seed} SHOAL_FUZZ_LEN={}", context(), index + 1),
            };
            let text = String::from_utf8_lossy(&reply[..reply.len().min(200)]).into_owned();
            // Not "unknown subcommand or wrong number of arguments": Redis answers PUBSUB
            // CHANNELS with two patterns so, though COMMAND INFO gives it no upper bound.
            assert!(
                !text.starts_with("-ERR unknown command") && !text.starts_with("-ERR unknown subcommand '"),
                "a listed command was refused as unknown: {text:?} at {}",
                context()
            );
            if std::env::var("SHOAL_FUZZ_VERBOSE").is_ok_and(|v| v == "1") {
                eprintln!("seed {seed} #{index}: {shown} -> {}", text.escape_debug());
            }
            history.push(format!("#{index}: {shown} -> {}", text.escape_debug()));
            if index % 500 == 499 {
                assert_every_core_answers(server, &format!("after seed {seed}, command #{index}"));
            }
            index += 1;
        }
    }
    assert_every_core_answers(server, &format!("at the end of seed {seed}"));
}

/// The number in the environment variable `name`, or `default` when it is not set.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
}

/// Runs the planned seeds (`SHOAL_FUZZ_SEED`, or `seeds`) against `server`.
fn fuzz(server: &Server, seeds: std::ops::RangeInclusive<u64>) {
    let commands = listed_commands(&mut server.raw());
    let len = env_number("SHOAL_FUZZ_LEN", 3000) as usize;
    let seeds: Vec<u64> = match std::env::var("SHOAL_FUZZ_SEED") {
        Ok(_) => vec![env_number("SHOAL_FUZZ_SEED", 0)],
        Err(_) => seeds.collect(),
    };
    for seed in seeds {
        run_seed(server, &commands, seed, len);
    }
}

#[test]
fn every_listed_command_with_random_arguments_gets_an_answer_and_every_core_lives() {
    fuzz(&Server::start(4, &[]), 1..=3);
}

/// The same on a cluster node that serves every slot (the setup assigns them again after a
/// random CLUSTER DELSLOTS or RESET): CLUSTER's subcommands meet random arguments too, and
/// every key command passes the slot checks.
#[test]
fn every_listed_command_with_random_arguments_on_a_cluster_node() {
    let dir = Server::scratch("robustness-cluster");
    let bus = shoal_testkit::free_port().to_string();
    fuzz(&Server::start_in(&dir, 2, &["--cluster-enabled", "yes", "--cluster-port", &bus]), 4..=4);
}

/// Four clients at once, each with its own seed, over the same keys (`SHOAL_FUZZ_SEED` is
/// the first seed, `first` without it).
fn fuzz_concurrently(server: &Server, first: u64) {
    let commands = listed_commands(&mut server.raw());
    let len = env_number("SHOAL_FUZZ_LEN", 1500) as usize;
    let first = env_number("SHOAL_FUZZ_SEED", first);
    std::thread::scope(|scope| {
        for seed in first..first + 4 {
            let commands = &commands;
            scope.spawn(move || run_seed(server, commands, seed, len));
        }
    });
}

/// Four clients sending random commands at once: transactions, scripts, cross-core
/// commands, FLUSHALL, SWAPDB and background saves meet each other's locks. Every request
/// still gets an answer within the read timeout (a deadlock fails it) and every core lives.
#[test]
fn four_clients_sending_random_commands_at_once_never_deadlock() {
    fuzz_concurrently(&Server::start(4, &[]), 10);
}

/// The same with every keyspace event on, a subscriber to all of them (so the events of
/// commands over several cores go out between their fences), and small encodings that
/// random commands convert back and forth. The subscriber must get messages throughout and
/// stay connected.
#[test]
fn four_clients_with_keyspace_events_a_subscriber_and_small_encodings_never_deadlock() {
    let small = ["--hash-max-listpack-entries", "4", "--zset-max-listpack-entries", "4", "--set-max-intset-entries", "4"];
    let mut args = vec!["--notify-keyspace-events", "KEA", "--set-max-listpack-entries", "4", "--list-max-listpack-size", "4"];
    args.extend(small);
    let server = Server::start(4, &args);
    let mut subscriber = server.raw();
    assert!(subscriber.command(&["PSUBSCRIBE", "*"]).unwrap().contains("psubscribe"));
    std::thread::scope(|scope| {
        // Reads until the message on `stop` that the end of the run publishes.
        let reader = scope.spawn(|| {
            let mut received = 0u64;
            loop {
                let message = subscriber.read_reply().unwrap_or_else(|e| panic!("the subscriber lost its connection after {received} messages: {e}"));
                assert!(message.starts_with("*4\r\n$8\r\npmessage\r\n"), "{message:?}");
                if message.ends_with("$4\r\nstop\r\n$3\r\nnow\r\n") {
                    return received;
                }
                received += 1;
            }
        });
        fuzz_concurrently(&server, 20);
        assert_eq!(server.raw().command(&["PUBLISH", "stop", "now"]).unwrap(), ":1\r\n");
        assert!(reader.join().unwrap() > 1000, "the subscriber got the events");
    });
}

/// Deletes the keys that would expire soon (a random EXPIRE gives many short TTLs), and
/// hashes with a field that would, so a copy taken now still holds after a restart.
fn drop_keys_about_to_expire(server: &Server) {
    let mut raw = server.raw();
    let soon =
        |reply: &str| reply.split("\r\n").filter_map(|line| line.strip_prefix(':')).any(|ttl| ttl.parse::<i64>().is_ok_and(|ms| (0..120_000).contains(&ms)));
    for db in 0..16 {
        raw.command(&["SELECT", &db.to_string()]).unwrap();
        let keys = raw.command(&["KEYS", "*"]).unwrap();
        let keys: Vec<&str> = keys.split("\r\n").skip(1).filter(|line| !line.starts_with('$') && !line.is_empty()).collect();
        for key in keys {
            let mut doomed = soon(&raw.command(&["PTTL", key]).unwrap());
            if raw.command(&["TYPE", key]).unwrap() == "+hash\r\n" {
                let fields = raw.command(&["HKEYS", key]).unwrap();
                let fields: Vec<&str> = fields.split("\r\n").skip(1).filter(|line| !line.starts_with('$') && !line.is_empty()).collect();
                let count = fields.len().to_string();
                let mut request = vec!["HPTTL", key, "FIELDS", &count];
                request.extend(&fields);
                doomed |= soon(&raw.command(&request).unwrap());
            }
            if doomed {
                raw.command(&["DEL", key]).unwrap();
            }
        }
    }
}

/// Random commands under `appendfsync always`, then `kill -9`: the restarted server loads its
/// log and holds exactly what the killed one held (every type, every database, TTLs, streams'
/// groups), whatever the random commands logged (scripts' effects, rewrites, MOVE, SWAPDB).
#[test]
fn a_server_killed_after_random_commands_under_appendfsync_always_restarts_with_the_same_data() {
    let dir = Server::scratch("robustness-aof");
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let server = Server::start_in(&dir, 4, &args);
    fuzz(&server, 5..=5);
    drop_keys_about_to_expire(&server);
    let before = shoal_tests::contents(&server);
    eprintln!("{} keys to compare after the restart", before.len());
    server.signal("KILL");
    drop(server);
    let restarted = Server::start_in(&dir, 4, &args);
    shoal_tests::assert_same(&shoal_tests::contents(&restarted), &before, "after kill -9 and a restart from the log");
}

/// Random commands (seed `seed`, drawn from `commands`) on `master`, which `replica`
/// follows: once WAIT says the replica has every write, it holds what the master holds.
fn replica_holds_what_the_master_holds(master: &Server, replica: &Server, commands: &[(String, i64)], seed: u64, what: &str) {
    let mut raw = replica.raw();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !raw.command(&["INFO", "replication"]).unwrap().contains("master_link_status:up") {
        assert!(std::time::Instant::now() < deadline, "the replica's link never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let len = env_number("SHOAL_FUZZ_LEN", 3000) as usize;
    let seed = env_number("SHOAL_FUZZ_SEED", seed);
    run_seed(master, commands, seed, len);
    drop_keys_about_to_expire(master);
    let mut raw = master.raw();
    assert_eq!(raw.command(&["SET", "last", "write"]).unwrap(), "+OK\r\n");
    let waited = raw.command(&["WAIT", "1", "10000"]).unwrap();
    let info = |server: &Server| server.raw().command(&["INFO", "replication"]).unwrap();
    assert_eq!(waited, ":1\r\n", "WAIT; the master: {}\nthe replica: {}", info(master), info(replica));
    shoal_tests::assert_same(&shoal_tests::contents(replica), &shoal_tests::contents(master), what);
}

/// A Shoal replica of `master` over four cores.
fn shoal_replica_of(master: &Server) -> Server {
    Server::start(4, &["--replicaof", "127.0.0.1", &master.port.to_string()])
}

/// A Shoal master and replica, both over four cores, whatever the random commands
/// propagated (scripts' effects, transactions, MOVE, SWAPDB, FLUSHALL, expiries).
#[test]
fn a_replica_of_a_master_under_random_commands_holds_what_the_master_holds() {
    let master = Server::start(4, &[]);
    let commands = listed_commands(&mut master.raw());
    replica_holds_what_the_master_holds(&master, &shoal_replica_of(&master), &commands, 6, "a Shoal replica of Shoal");
}

/// Shoal as the replica of Debian's redis-server under random commands (Redis's own
/// `COMMAND LIST`): Redis's stream of effects (SPOP as SREM, scripts' writes, expiries,
/// MULTI blocks) applied by Shoal leaves the same data as Redis holds.
#[test]
fn a_shoal_replica_of_redis_under_random_commands_holds_what_redis_holds() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    let commands = listed_commands(&mut master.raw());
    replica_holds_what_the_master_holds(&master, &shoal_replica_of(&master), &commands, 7, "a Shoal replica of redis-server");
}

/// Debian's redis-server as the replica of Shoal, under the random commands both servers
/// know: what Shoal propagates (its rewrites of expiries, SPOP, scripts, transactions over
/// several cores) is understood by Redis 7.0 and leaves the same data.
#[test]
fn a_redis_replica_of_shoal_under_random_commands_holds_what_shoal_holds() {
    let master = Server::start(4, &[]);
    let Some(replica) = Server::start_redis_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]) else { return };
    let known: Vec<String> = listed_commands(&mut replica.raw()).into_iter().map(|(name, _)| name).collect();
    let commands: Vec<(String, i64)> = listed_commands(&mut master.raw()).into_iter().filter(|(name, _)| known.contains(name)).collect();
    replica_holds_what_the_master_holds(&master, &replica, &commands, 8, "a redis-server replica of Shoal");
}

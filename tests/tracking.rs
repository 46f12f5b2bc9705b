//! Client-side caching (CLIENT TRACKING) against the real binary: the replies and
//! invalidation messages of a scripted session compared byte for byte with redis-server, and
//! caches kept by tracking clients over four cores that must never hold a stale value
//! while writers change the keys every way there is (plain and cross-core writes, EXEC,
//! scripts, expiry, FLUSHDB).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shoal_testkit::Server;
use shoal_tests::THREADS;

/// A connection that sends commands and collects whatever arrives (replies and pushes).
struct Peer {
    stream: TcpStream,
}

impl Peer {
    fn new(server: &Server) -> Peer {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        Peer { stream }
    }

    fn send(&mut self, args: &[&str]) {
        self.stream.write_all(&shoal_testkit::Raw::encode(args)).expect("write");
    }

    /// Everything that arrives within `wait` of the last byte.
    fn drain(&mut self, wait: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(_) => return out,
            }
        }
    }
}

/// A session of several connections, each line `name command...`; `@name` stands for that
/// connection's id. Every step's sender waits for its reply and every connection's
/// arrivals are recorded, with ids replaced by names, so two servers' transcripts compare.
const SESSION: &str = "
a HELLO 3
b SET k1 v
b SET k2 v
a CLIENT TRACKING on
a GET k1
a MGET k1 k2
b SET k1 x
b DEL k2
b SET k2 y
a GET k2
a SET k2 z
a CLIENT TRACKINGINFO
a CLIENT GETREDIR
a CLIENT TRACKING on bcast
a CLIENT TRACKING on optin optout
a CLIENT TRACKING on prefix x
a CLIENT TRACKING foo
a CLIENT TRACKING on redirect 99999
a CLIENT TRACKING on redirect abc
a CLIENT TRACKING on redirect @b redirect @b
a CLIENT TRACKING on noloop
a GET k1
a SET k1 self
a CLIENT TRACKINGINFO
a CLIENT CACHING yes
a CLIENT CACHING no
a CLIENT TRACKING off
a CLIENT CACHING yes
a CLIENT TRACKING on optin
a CLIENT TRACKING on optout
a GET k1
b SET k1 1
a CLIENT CACHING yes
a GET k1
a GET k2
b SET k1 2
b SET k2 2
a CLIENT TRACKINGINFO
a CLIENT TRACKING off
a CLIENT TRACKING on optout
a CLIENT CACHING no
a CLIENT TRACKINGINFO
a GET k1
a GET k2
b SET k1 3
b SET k2 3
a CLIENT TRACKING off
a CLIENT TRACKING on bcast prefix k prefix kk
a CLIENT TRACKING on bcast prefix a prefix b
a CLIENT TRACKING on bcast prefix ab
a CLIENT TRACKINGINFO
b SET a1 1
b SET b3 3
b SET c4 4
a SET a5 5
a CLIENT TRACKING on bcast prefix c noloop
a CLIENT TRACKINGINFO
a SET c1 1
b SET c2 2
a CLIENT TRACKING off
a CLIENT TRACKING on
a GET k1
b FLUSHALL
a GET k1
b SET k1 v
b EXPIRE k1 0
a CLIENT TRACKING on
a RESET
r SUBSCRIBE __redis__:invalidate
c CLIENT TRACKING on redirect @r
c CLIENT TRACKINGINFO
c CLIENT GETREDIR
b SET k1 v
c GET k1
b SET k1 w
c GET k1
c MULTI
c GET k1
c GET k2
c EXEC
b MSET k1 1 k2 2
c EVAL return\\ redis.call('get',KEYS[1]) 1 k1
b SET k1 3
c GET k1
b FLUSHDB
c GET k1
c CLIENT TRACKING off
d HELLO 3
d CLIENT TRACKING on redirect @r
d GET k1
r UNSUBSCRIBE
b SET k1 z
d GET k1
r QUIT
b SET k1 zz
d CLIENT TRACKINGINFO
d GET k1
b SET k1 zzz
d CLIENT TRACKINGINFO
e HELLO 3
e CLIENT TRACKING on bcast redirect @e noloop prefix q
e SET q1 1
b SET q2 2
b FLUSHALL
e CLIENT TRACKING on bcast prefix qq
e CLIENT TRACKING on bcast prefix w
e CLIENT TRACKINGINFO
";

fn transcript(server: &Server, session: &str) -> Vec<String> {
    let mut peers: Vec<(String, Peer, String)> = Vec::new();
    let mut out = Vec::new();
    for line in session.lines().filter(|line| !line.trim().is_empty()) {
        let (name, rest) = line.split_once(' ').expect("name command");
        if !peers.iter().any(|(n, _, _)| n == name) {
            let mut peer = Peer::new(server);
            peer.send(&["CLIENT", "ID"]);
            let reply = String::from_utf8(peer.drain(Duration::from_millis(200))).expect("utf-8");
            let id = reply.trim_start_matches(':').trim().to_owned();
            peers.push((name.to_owned(), peer, id));
        }
        // Arguments are separated by spaces; `\ ` keeps a space inside one.
        let words: Vec<String> = rest.replace("\\ ", "\u{1}").split(' ').map(|w| w.replace('\u{1}', " ")).collect();
        let args: Vec<String> = words
            .iter()
            .map(|w| match w.strip_prefix('@') {
                Some(other) => peers.iter().find(|(n, _, _)| n == other).map_or(w.clone(), |(_, _, id)| id.clone()),
                None => w.clone(),
            })
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let sender = peers.iter_mut().find(|(n, _, _)| n == name).expect("sender");
        sender.1.send(&refs);
        // Long enough for the reply and any push on loopback; then what each peer has.
        std::thread::sleep(Duration::from_millis(30));
        for (peer_name, peer, _) in &mut peers {
            let arrived = peer.drain(Duration::from_millis(5));
            if arrived.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(&arrived).into_owned();
            out.push(format!("{line} -> {peer_name}: {text:?}"));
        }
        // Ids in the replies that carry them (GETREDIR, TRACKINGINFO's redirect, CLIENT LIST,
        // tracking-redir-broken), which differ between servers.
        let ids: Vec<(String, String)> = peers.iter().map(|(n, _, id)| (n.clone(), id.clone())).collect();
        for entry in out.iter_mut().filter(|e| ["GETREDIR", "TRACKINGINFO", "redir-broken"].iter().any(|w| e.contains(w))) {
            for (n, id) in &ids {
                *entry = entry.replace(&format!(":{id}\\r\\n"), &format!(":<{n}>\\r\\n"));
            }
        }
    }
    out
}

#[test]
fn tracking_replies_and_invalidations_match_redis() {
    let Some(redis) = Server::start_redis() else { return };
    // One core: every invalidation then comes in the order Redis sends it.
    let shoal = Server::start(1, &[]);
    let (expected, got) = (transcript(&redis, SESSION), transcript(&shoal, SESSION));
    // HELLO's reply names the version each emulates.
    let differs: Vec<(&String, &String)> = expected.iter().zip(&got).filter(|(e, g)| e != g && !e.contains("HELLO 3 -> ")).collect();
    assert!(differs.is_empty() && expected.len() == got.len(), "redis: {expected:#?}\nshoal: {got:#?}\nfirst differences: {differs:#?}");
}

/// Random sessions: a default-mode reader, an OPTIN reader that asks for some reads, a BCAST
/// reader of one prefix and a NOLOOP reader that also writes, while a writer changes the keys
/// with commands that change something or nothing; every reply and push compared with
/// redis-server's, one core (so Redis's order is Shoal's).
#[test]
fn random_tracking_sessions_match_redis() {
    let Some(redis) = Server::start_redis() else { return };
    let shoal = Server::start(1, &[]);
    let reads: &[&str] =
        &["GET k1", "GET k2", "MGET k1 k3", "EXISTS k4", "TYPE k2", "STRLEN k3", "LRANGE k4 0 -1", "SMEMBERS k1", "HGETALL k2", "TTL k3", "GET x1"];
    let writes: &[&str] = &[
        "SET k1 a",
        "SET k2 b NX",
        "SET k3 c XX",
        "SETNX k4 d",
        "DEL k1",
        "DEL k2 k3",
        "UNLINK k4",
        "EXPIRE k1 100",
        "PERSIST k1",
        "EXPIRE k2 0",
        "INCR k3",
        "APPEND k4 z",
        "LPUSH k4 e",
        "LPOP k4",
        "RPOPLPUSH k4 k1",
        "RENAME k1 k2",
        "RENAMENX k3 k4",
        "SADD k1 m",
        "SREM k1 m",
        "HSET k2 f v",
        "HDEL k2 f",
        "ZADD k3 1 m",
        "ZREM k3 m",
        "MSET k1 x k3 y",
        "GETDEL k2",
        "GETEX k3 PX 100000",
        "COPY k1 k4 REPLACE",
        "SINTERSTORE k2 k1 k3",
        "SORT k4 STORE k3",
        "SET x1 p",
        "FLUSHDB",
        "SET k2 q GET",
    ];
    let setup = "a HELLO 3\na CLIENT TRACKING on\nb HELLO 3\nb CLIENT TRACKING on optin\nc HELLO 3\nc CLIENT TRACKING on bcast prefix k\nd HELLO 3\nd CLIENT TRACKING on noloop\n";
    // SHOAL_DIFF_SEED and SHOAL_DIFF_LEN run other seeds and lengths by hand.
    let (seeds, len) = shoal_tests::diff::plan(0..=1, 100);
    for seed in seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut session = String::from(setup);
        for _ in 0..len {
            let line = match rng.random_range(0..10) {
                0..=2 => format!("a {}", reads[rng.random_range(0..reads.len())]),
                3 => {
                    let caching = if rng.random_range(0..2) == 0 { "b CLIENT CACHING yes\n" } else { "" };
                    format!("{caching}b {}", reads[rng.random_range(0..reads.len())])
                }
                4 => format!(
                    "d {}",
                    if rng.random_range(0..2) == 0 { reads[rng.random_range(0..reads.len())] } else { writes[rng.random_range(0..writes.len())] }
                ),
                _ => format!("w {}", writes[rng.random_range(0..writes.len())]),
            };
            session.push_str(&line);
            session.push('\n');
        }
        let (expected, got) = (transcript(&redis, &session), transcript(&shoal, &session));
        let differs: Vec<(&String, &String)> = expected.iter().zip(&got).filter(|(e, g)| e != g && !e.contains("HELLO 3 -> ")).collect();
        assert!(differs.is_empty() && expected.len() == got.len(), "seed {seed}: first differences: {:#?}", &differs[..differs.len().min(5)]);
        for server in [&redis, &shoal] {
            server.raw().command(&["FLUSHALL"]).expect("FLUSHALL");
        }
    }
}

/// Reads RESP frames, splitting RESP3 push frames off to `pushes`.
struct Frames {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Nil,
    Text(String),
    Int(i64),
    List(Vec<Value>),
    Push(Vec<Value>),
    Error(String),
}

impl Frames {
    fn new(server: &Server) -> Frames {
        Frames::connect(server.port)
    }

    fn connect(port: u16) -> Frames {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Frames { reader: BufReader::new(stream.try_clone().expect("clone")), writer: stream }
    }

    fn send(&mut self, args: &[&str]) {
        self.writer.write_all(&shoal_testkit::Raw::encode(args)).expect("write");
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a frame");
        let (kind, rest) = line.split_at(1);
        let rest = rest.trim_end();
        match kind {
            "+" => Value::Text(rest.to_owned()),
            "-" => Value::Error(rest.to_owned()),
            ":" => Value::Int(rest.parse().expect("integer")),
            "_" => Value::Nil,
            "$" if rest == "-1" => Value::Nil,
            "$" => {
                let mut body = vec![0u8; rest.parse::<usize>().expect("length") + 2];
                self.reader.read_exact(&mut body).expect("bulk");
                body.truncate(body.len() - 2);
                Value::Text(String::from_utf8(body).expect("utf-8"))
            }
            "*" if rest == "-1" => Value::Nil,
            "*" | ">" | "~" | "%" => {
                let n: usize = rest.parse().expect("count");
                let n = if kind == "%" { n * 2 } else { n };
                let items = (0..n).map(|_| self.read()).collect();
                if kind == ">" {
                    Value::Push(items)
                } else {
                    Value::List(items)
                }
            }
            other => panic!("unexpected frame {other}{rest}"),
        }
    }
}

/// A client-side cache: values read from the server, dropped on invalidation.
struct Cache {
    frames: Frames,
    values: HashMap<String, Option<String>>,
    invalidations: usize,
}

impl Cache {
    fn apply(&mut self, push: &[Value]) {
        assert_eq!(push.first(), Some(&Value::Text("invalidate".to_owned())), "a push other than invalidate: {push:?}");
        self.invalidations += 1;
        match &push[1] {
            Value::Nil => self.values.clear(),
            Value::List(keys) => {
                for key in keys {
                    let Value::Text(key) = key else { panic!("a key: {key:?}") };
                    self.values.remove(key);
                }
            }
            other => panic!("invalidate of {other:?}"),
        }
    }

    /// Sends a command and returns its reply, applying the invalidations that come first.
    fn call(&mut self, args: &[&str]) -> Value {
        self.frames.send(args);
        loop {
            match self.frames.read() {
                Value::Push(push) => self.apply(&push),
                reply => return reply,
            }
        }
    }

    /// Reads `key` through the cache, filling it from the server by one of several paths.
    fn read(&mut self, key: &str, keys: &[String], rng: &mut impl Rng) {
        if self.values.contains_key(key) {
            return;
        }
        let value = match rng.random_range(0..4) {
            0 => self.call(&["GET", key]),
            1 => {
                // A cross-core read: MGET with another key, both cached.
                let other = keys[rng.random_range(0..keys.len())].clone();
                match self.call(&["MGET", key, &other]) {
                    Value::List(values) => {
                        let second = to_cached(&values[1]);
                        if let Some(second) = second {
                            self.values.insert(other, second);
                        }
                        values[0].clone()
                    }
                    other => panic!("MGET answered {other:?}"),
                }
            }
            2 => {
                assert_eq!(self.call(&["MULTI"]), Value::Text("OK".to_owned()));
                assert_eq!(self.call(&["GET", key]), Value::Text("QUEUED".to_owned()));
                match self.call(&["EXEC"]) {
                    Value::List(mut values) => values.remove(0),
                    other => panic!("EXEC answered {other:?}"),
                }
            }
            _ => self.call(&["EVAL", "return redis.call('GET', KEYS[1])", "1", key]),
        };
        if let Some(value) = to_cached(&value) {
            self.values.insert(key.to_owned(), value);
        }
    }
}

/// What a read's reply caches: a value or nil; errors (a key of another type) are not cached.
fn to_cached(value: &Value) -> Option<Option<String>> {
    match value {
        Value::Nil => Some(None),
        Value::Text(text) => Some(Some(text.clone())),
        Value::Int(n) => Some(Some(n.to_string())),
        _ => None,
    }
}

/// Changes `keys` every way there is until `stop`.
fn write_until(port: u16, keys: &[String], seed: u64, stop: &AtomicBool) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut client = Frames::connect(port);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = keys[rng.random_range(0..keys.len())].clone();
        write(&mut client, &mut rng, &key, keys, &format!("v{seed}-{n}"), true);
    }
}

/// One write of `key` (and maybe another key) by one of many paths.
fn write(client: &mut Frames, rng: &mut impl Rng, key: &str, keys: &[String], value: &str, flushes: bool) {
    let other = keys[rng.random_range(0..keys.len())].as_str();
    let mut call = |args: &[&str]| {
        client.send(args);
        client.read()
    };
    {
        let value = value.to_owned();
        match rng.random_range(0..100) {
            0..=29 => call(&["SET", key, &value]),
            30..=44 => call(&["INCR", key]),
            45..=54 => call(&["MSET", key, &value, other, &value]),
            55..=62 => call(&["DEL", key, other]),
            63..=70 => call(&["SET", key, &value, "PX", "15"]),
            71..=76 => call(&["RENAME", key, other]),
            77..=84 => {
                call(&["MULTI"]);
                call(&["SET", key, &value]);
                call(&["APPEND", other, "x"]);
                call(&["EXEC"])
            }
            85..=92 => call(&["EVAL", "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('APPEND', KEYS[2], 'y')", "2", key, other, &value]),
            93..=98 => call(&["PEXPIRE", key, "5"]),
            // Rare: a flush empties every cache, which would hide what else was missed.
            _ if flushes && rng.random_range(0..500) == 0 => call(&["FLUSHDB"]),
            _ => call(&["SET", other, &value]),
        };
    }
}

/// Tracking readers (default mode over every read path, and BCAST) cache what they read
/// while writers change the keys from other connections over four cores. Once the writers
/// stop and every invalidation has arrived, each cached value must be the server's value: a
/// missed invalidation is a stale cache, which is what this catches.
#[test]
fn tracking_caches_never_hold_stale_values() {
    let server = Server::start(THREADS, &["--hz", "50"]);
    let keys: Vec<String> =
        shoal_testkit::keys_on_distinct_cores("cache:", THREADS, THREADS).into_iter().chain((0..12).map(|i| format!("cache:{i}"))).collect();
    // The readers keep their caches from round to round: a stale entry stays until checked.
    let mut readers = Vec::new();
    for mode in [&["CLIENT", "TRACKING", "on"][..], &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "cache:"][..]] {
        let mut cache = Cache { frames: Frames::new(&server), values: HashMap::new(), invalidations: 0 };
        assert!(matches!(cache.call(&["HELLO", "3"]), Value::List(_)));
        assert_eq!(cache.call(mode), Value::Text("OK".to_owned()));
        readers.push(cache);
    }
    let mut reads = 0;
    for round in 0..12u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (stop, keys) = (stop.clone(), keys.clone());
                let port = server.port;
                std::thread::spawn(move || write_until(port, &keys, round * 10 + w, &stop))
            })
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(round);
        let deadline = Instant::now() + Duration::from_millis(250);
        while Instant::now() < deadline {
            for cache in &mut readers {
                let key = keys[rng.random_range(0..keys.len())].clone();
                cache.read(&key, &keys, &mut rng);
                reads += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().expect("writer");
        }
        // Quiet: every reader caches every key (by any path), then each key is written once
        // more by one path. Each such write must reach every cache that holds the key.
        std::thread::sleep(Duration::from_millis(50));
        for cache in &mut readers {
            assert_eq!(cache.call(&["PING"]), Value::Text("PONG".to_owned()));
            for key in &keys {
                cache.read(key, &keys, &mut rng);
            }
        }
        let mut last = Frames::connect(server.port);
        for (i, key) in keys.iter().enumerate() {
            write(&mut last, &mut rng, key, &keys, &format!("last{round}-{i}"), false);
        }
        std::thread::sleep(Duration::from_millis(100));
        // Expired keys go (lazily here, or by the active cycle), and their invalidations
        // travel; then each reader takes what arrived (PING answers after it).
        let mut checker = server.raw();
        let current: HashMap<String, Option<String>> = keys
            .iter()
            .map(|key| {
                let reply = checker.command(&["GET", key]).expect("GET");
                let value = if reply.starts_with("$-1") { None } else { reply.split("\r\n").nth(1).map(str::to_owned) };
                (key.clone(), value)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        for (index, cache) in readers.iter_mut().enumerate() {
            assert_eq!(cache.call(&["PING"]), Value::Text("PONG".to_owned()));
            assert!(cache.invalidations > 0, "reader {index} got no invalidation in {reads} reads");
            eprintln!("round {round} reader {index}: {} cached, {} invalidations, {reads} reads", cache.values.len(), cache.invalidations);
            for (key, cached) in &cache.values {
                if let Some(now) = current.get(key) {
                    assert_eq!(cached, now, "round {round}: reader {index} holds a stale {key}");
                }
            }
        }
    }
}

/// Each way a key can change, on four cores: a reader that cached the keys (by GET) hears of
/// each changed key, whichever core ran the change.
#[test]
fn every_kind_of_change_invalidates() {
    let server = Server::start(THREADS, &["--hz", "50"]);
    // Keys on distinct cores, and a hash-tagged pair on one.
    let k = shoal_testkit::keys_on_distinct_cores("inv:", 3, THREADS);
    let (a, b, c) = (k[0].as_str(), k[1].as_str(), k[2].as_str());
    // (setup, keys the reader caches, the change, keys that must be invalidated)
    type Case<'a> = (Vec<Vec<&'a str>>, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![vec!["SET", a, "1"]], vec![a], vec!["SET", a, "2"], vec![a]),
        (vec![vec!["SET", a, "1"]], vec![a], vec!["INCR", a], vec![a]),
        (vec![], vec![a, b, c], vec!["MSET", a, "1", b, "2", c, "3"], vec![a, b, c]),
        (vec![vec!["MSET", a, "1", b, "2"]], vec![a, b], vec!["DEL", a, b], vec![a, b]),
        (vec![vec!["MSET", a, "1", b, "2"]], vec![a, b], vec!["RENAME", a, b], vec![a, b]),
        (vec![vec!["SET", a, "1"]], vec![a, c], vec!["COPY", a, c], vec![c]),
        (vec![vec!["RPUSH", a, "x"]], vec![a, b], vec!["LMOVE", a, b, "LEFT", "RIGHT"], vec![a, b]),
        (vec![vec!["SADD", a, "x"], vec!["SADD", b, "x"]], vec![c], vec!["SINTERSTORE", c, a, b], vec![c]),
        (vec![vec!["SET", a, "1"]], vec![a], vec!["EVAL", "return redis.call('SET', KEYS[1], 'e')", "1", a], vec![a]),
        (
            vec![vec!["MSET", a, "1", b, "2"]],
            vec![a, b],
            vec!["EVAL", "redis.call('DEL', KEYS[1]) return redis.call('SET', KEYS[2], 'e')", "2", a, b],
            vec![a, b],
        ),
        (vec![vec!["SET", a, "1"]], vec![a], vec!["SET", a, "2", "PX", "30"], vec![a]),
        // Expired by the active cycle: nobody touches the key.
        (vec![vec!["SET", a, "1", "PX", "200"]], vec![a], vec!["PING"], vec![a]),
        (vec![vec!["SET", a, "1"]], vec![a], vec!["MOVE", a, "1"], vec![a]),
        (vec![vec!["SET", a, "1"]], vec![a], vec!["EXPIRE", a, "0"], vec![a]),
        (vec![vec!["HSET", a, "f", "v"]], vec![a], vec!["HDEL", a, "f"], vec![a]),
        (vec![vec!["RPUSH", a, "3", "1"]], vec![b], vec!["SORT", a, "STORE", b], vec![b]),
        (vec![vec!["MSET", a, "1", b, "2"]], vec![a, b], vec!["FLUSHDB"], vec![a, b]),
        (vec![vec!["MSET", a, "1", b, "2"]], vec![a, b], vec!["SWAPDB", "0", "1"], vec![a, b]),
        // Every core's data replaced: a flush, as Redis's emptyData signals.
        (vec![vec!["MSET", a, "1", b, "2"]], vec![a, b], vec!["DEBUG", "RELOAD"], vec![a, b]),
    ];
    for (index, (setup, cached, change, expected)) in cases.iter().enumerate() {
        let mut writer = server.raw();
        writer.command(&["FLUSHALL"]).expect("FLUSHALL");
        for command in setup {
            writer.command(command).expect("setup");
        }
        let mut reader = Cache { frames: Frames::new(&server), values: HashMap::new(), invalidations: 0 };
        reader.call(&["HELLO", "3"]);
        assert_eq!(reader.call(&["CLIENT", "TRACKING", "on"]), Value::Text("OK".to_owned()));
        for key in cached {
            reader.call(&["TYPE", key]);
            reader.call(&["EXISTS", key]);
            reader.values.insert(key.to_string(), None);
        }
        let reply = writer.command(change).expect("change");
        assert!(!reply.starts_with('-'), "case {index}: {change:?} answered {reply}");
        // Invalidations arrive as pushes: read them until every expected key was named.
        reader.frames.reader.get_ref().set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        let deadline = Instant::now() + Duration::from_secs(3);
        while expected.iter().any(|key| reader.values.contains_key(*key)) {
            assert!(Instant::now() < deadline, "case {index}: {change:?} left {:?} cached", reader.values.keys().collect::<Vec<_>>());
            match reader.frames.read() {
                Value::Push(push) => reader.apply(&push),
                other => panic!("case {index}: a reply without a request: {other:?}"),
            }
        }
    }
}

/// `tracking-table-max-keys` bounds what the cores remember: past it they forget keys and
/// tell their readers, so nothing cached is left unwatched.
#[test]
fn the_tracking_table_is_bounded_and_forgotten_keys_are_invalidated() {
    let server = Server::start(THREADS, &["--tracking-table-max-keys", "8"]);
    let mut reader = Cache { frames: Frames::new(&server), values: HashMap::new(), invalidations: 0 };
    reader.call(&["HELLO", "3"]);
    assert_eq!(reader.call(&["CLIENT", "TRACKING", "on"]), Value::Text("OK".to_owned()));
    let keys: Vec<String> = (0..40).map(|i| format!("bounded:{i}")).collect();
    for key in &keys {
        reader.call(&["GET", key]);
        reader.values.insert(key.clone(), None);
    }
    // What each core forgot arrives as invalidations; what stays remembered is at most the
    // bound (8, two per core).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(reader.call(&["PING"]), Value::Text("PONG".to_owned()));
    let info = server.raw().command(&["INFO", "stats"]).expect("INFO");
    let remembered: usize = info.lines().find_map(|l| l.strip_prefix("tracking_total_keys:")).expect("tracking_total_keys").trim().parse().expect("a count");
    assert!(remembered <= 8, "{remembered} keys remembered");
    assert_eq!(reader.values.len(), remembered, "every key forgotten was invalidated, and only those");
    // The ones still remembered are still watched.
    let mut writer = server.raw();
    for key in reader.values.keys().cloned().collect::<Vec<_>>() {
        writer.command(&["SET", &key, "changed"]).expect("SET");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(reader.call(&["PING"]), Value::Text("PONG".to_owned()));
    assert!(reader.values.is_empty(), "still cached after writes: {:?}", reader.values.keys().collect::<Vec<_>>());
}

/// NOLOOP spares a client its own changes only: a change another client makes later through
/// a transaction (a cross-core MSET), on the core where the NOLOOP client last ran a command,
/// still reaches it.
#[test]
fn noloop_spares_only_the_clients_own_changes() {
    let server = Server::start(THREADS, &[]);
    let k = shoal_testkit::keys_on_distinct_cores("noloop:", 2, THREADS);
    let mut reader = Cache { frames: Frames::new(&server), values: HashMap::new(), invalidations: 0 };
    reader.call(&["HELLO", "3"]);
    assert_eq!(reader.call(&["CLIENT", "TRACKING", "on", "NOLOOP"]), Value::Text("OK".to_owned()));
    let mut writer = server.raw();
    for round in 0..20 {
        // Its own write of the key: no invalidation; then a read, remembered.
        reader.call(&["SET", &k[0], "mine"]);
        assert_eq!(reader.call(&["GET", &k[0]]), Value::Text("mine".to_owned()));
        reader.values.insert(k[0].clone(), Some("mine".to_owned()));
        writer.command(&["MSET", &k[0], &round.to_string(), &k[1], "x"]).expect("MSET");
        reader.frames.reader.get_ref().set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        match reader.frames.read() {
            Value::Push(push) => reader.apply(&push),
            other => panic!("round {round}: {other:?} instead of the invalidation of another client's MSET"),
        }
        assert!(reader.values.is_empty(), "round {round}");
    }
}

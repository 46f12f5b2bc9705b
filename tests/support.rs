//! Shared helpers for the integration tests in this folder (the tests themselves are the
//! `[[test]]` targets listed in Cargo.toml). Everything reusable lives in `shoal-testkit`.

use std::collections::BTreeMap;

use shoal_testkit::Server;

/// Threads the integration tests start Shoal with, so keys spread over several cores.
pub const THREADS: usize = 4;

/// Shoal, then redis-server when installed, each started with the same extra directives.
pub fn shoal_and_redis(extra: &[&str]) -> Vec<Server> {
    let mut servers = vec![Server::start(THREADS, extra)];
    servers.extend(Server::start_redis_with(extra));
    servers
}

/// A client connection whose reads give up after 10 seconds (so a hung server fails the test
/// instead of hanging it).
pub fn connect(server: &Server) -> redis::Connection {
    let connection = server.client();
    connection.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("set the read timeout");
    connection
}

/// A small tmpfs mounted for one test (a disk that fills up), unmounted when dropped.
pub struct Tmpfs(pub std::path::PathBuf);

impl Tmpfs {
    /// None when mounting is not permitted here (not root): the caller skips, or fails under
    /// SHOAL_REQUIRE_ALL=1.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = Server::scratch("tmpfs");
        let ok =
            std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).status().is_ok_and(|s| s.success());
        if !ok {
            assert!(!shoal_testkit::require_all(), "mounting a tmpfs needs root (SHOAL_REQUIRE_ALL=1)");
            eprintln!("skipping: cannot mount a tmpfs here");
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The reply to OBJECT ENCODING of `key`.
pub fn encoding(raw: &mut shoal_testkit::Raw, key: &str) -> String {
    raw.command(&["OBJECT", "ENCODING", key]).unwrap()
}

/// Asserts that each request gets exactly its reply, on one connection, from every server.
pub fn assert_replies(servers: &[Server], exchanges: &[(&[&str], &str)]) {
    for server in servers {
        let mut raw = server.raw();
        for (request, expected) in exchanges {
            assert_eq!(&raw.command(request).unwrap(), expected, "{request:?} on port {}", server.port);
        }
    }
}

/// Sends `setup` on one connection, then each of `requests` in RESP2 and in RESP3: alone,
/// inside MULTI/EXEC, and through EVAL's `redis.call` (the script in either protocol;
/// `requests[i][1]` is its one key), to Shoal and to redis-server started with `extra`, and asserts that every reply
/// is byte for byte the same. For replies Shoal builds pre-encoded. Skips without redis-server.
pub fn assert_replies_like_redis(extra: &[&str], setup: &[&[&str]], requests: &[&[&str]]) {
    if !shoal_testkit::need("redis-server") {
        return;
    }
    let servers = shoal_and_redis(extra);
    let transcripts: Vec<Vec<(String, Vec<u8>)>> = servers.iter().map(|server| transcript(server, setup, requests)).collect();
    let (shoal, redis) = (&transcripts[0], &transcripts[1]);
    assert_eq!(shoal.len(), redis.len(), "one reply per request");
    for ((sent, got), (_, want)) in shoal.iter().zip(redis) {
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(want), "reply to {sent}");
    }
}

/// Every request and its reply, in order, as `assert_replies_like_redis` sends them.
fn transcript(server: &Server, setup: &[&[&str]], requests: &[&[&str]]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut raw = server.raw();
    for command in setup {
        out.push((format!("{command:?}"), raw.command(command).unwrap().into_bytes()));
    }
    for proto in ["2", "3"] {
        raw.command(&["HELLO", proto]).unwrap();
        let mut send = |command: &[&str]| {
            let reply = raw.command_bytes(&command.iter().map(|arg| arg.as_bytes()).collect::<Vec<_>>()).unwrap();
            out.push((format!("RESP{proto} {command:?}"), reply));
        };
        for request in requests {
            send(request);
            send(&["MULTI"]);
            send(request);
            send(&["PING"]);
            send(request);
            send(&["EXEC"]);
            let quoted: Vec<String> = request.iter().map(|arg| format!("'{}'", arg.replace('\\', "\\\\").replace('\'', "\\'"))).collect();
            for script_proto in ["2", "3"] {
                let script = format!("redis.setresp({script_proto}); return redis.call({})", quoted.join(", "));
                // The key is declared, as a thread-per-core server needs to route the script.
                send(&["EVAL", &script, "1", request[1]]);
            }
        }
    }
    out
}

/// The machinery of the differential tests: one seeded generator per data-type family sends
/// commands to Debian's redis-server (the oracle) and to Shoal, and every reply is compared
/// byte for byte after the family's normalisation (for replies whose order Redis leaves
/// unspecified, such as SMEMBERS or HGETALL).
pub mod diff {
    use std::collections::{BTreeMap, VecDeque};

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use shoal_testkit::{Raw, Server};

    /// One generated command: its name for the report, and its arguments (the name first).
    pub struct Generated {
        pub label: &'static str,
        pub args: Vec<Vec<u8>>,
    }

    /// A family's command generator for one seed.
    pub trait Generator {
        fn next(&mut self) -> Generated;

        /// Rewrites a reply so that differences Redis leaves unspecified compare equal.
        fn normalise(&self, _generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
            reply
        }
    }

    /// The common part of every family's generator: the seeded random numbers and the
    /// helpers each family draws its commands with. A family's generator holds one as `base`.
    pub struct Gen {
        pub rng: SmallRng,
        /// Commands that must come next, before any drawn one (a setup, or a clean-up after
        /// a command whose effect differs between the servers).
        queue: VecDeque<Generated>,
    }

    /// A command table: each command's name (words separated by a space for subcommands),
    /// Redis's arity (negative: at least that many) and its weight in the draw.
    pub type Commands = [(&'static str, i32, u32)];

    /// The text as bytes.
    pub fn bytes(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    impl Gen {
        pub fn new(seed: u64) -> Gen {
            Gen { rng: SmallRng::seed_from_u64(seed), queue: VecDeque::new() }
        }

        /// Queues `generated` to be sent after those already queued.
        pub fn then(&mut self, generated: Generated) {
            self.queue.push_back(generated);
        }

        /// The next queued command, if any: a generator returns it before drawing a new one.
        pub fn queued(&mut self) -> Option<Generated> {
            self.queue.pop_front()
        }

        pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.rng.random_range(0..from.len())]
        }

        /// One of `from`, as bytes.
        pub fn pick_bytes(&mut self, from: &[&str]) -> Vec<u8> {
            bytes(self.pick(from))
        }

        pub fn chance(&mut self, percent: u32) -> bool {
            self.rng.random_range(0..100) < percent
        }

        /// A command name or token in a random case, as clients may send it: as written,
        /// in lower case, or in mixed case.
        pub fn case(&mut self, word: &str) -> Vec<u8> {
            self.case_string(word).into_bytes()
        }

        /// [`Gen::case`] as a string.
        pub fn case_string(&mut self, word: &str) -> String {
            match self.rng.random_range(0..4) {
                0 => word.to_ascii_lowercase(),
                1 => word.chars().enumerate().map(|(i, c)| if i % 2 == 0 { c.to_ascii_lowercase() } else { c }).collect(),
                _ => word.to_string(),
            }
        }

        /// The words of a (possibly two-word) command name, each in a random case.
        pub fn name(&mut self, name: &str) -> Vec<Vec<u8>> {
            name.split(' ').map(|word| self.case(word)).collect()
        }

        /// One of `items`, drawn by `weight`.
        pub fn draw<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
            let total: u32 = items.iter().map(&weight).sum();
            let mut draw = self.rng.random_range(0..total);
            for item in items {
                if draw < weight(item) {
                    return item;
                }
                draw -= weight(item);
            }
            unreachable!("a draw under the total weight lands on an item")
        }

        /// A command from the table, drawn by weight: its name and arity.
        pub fn command(&mut self, commands: &Commands) -> (&'static str, i32) {
            let &(name, arity, _) = self.draw(commands, |&(_, _, weight)| weight);
            (name, arity)
        }

        /// A command name from a table of names and weights (for families that never send
        /// a wrong number of arguments, whose table has no arity).
        pub fn weighted(&mut self, commands: &[(&'static str, u32)]) -> &'static str {
            self.draw(commands, |&(_, weight)| weight).0
        }

        /// `name` with an argument count its arity refuses (too few, or too many for a fixed
        /// arity), the arguments drawn from `fill`.
        pub fn wrong_arity(&mut self, name: &str, arity: i32, fill: &[&str]) -> Generated {
            let mut args = self.name(name);
            let fixed = args.len();
            let argc = if arity > 0 {
                let argc = self.rng.random_range(fixed..=arity as usize + 2);
                if argc == arity as usize {
                    argc + 1
                } else {
                    argc
                }
            } else {
                self.rng.random_range(fixed..(-arity) as usize)
            };
            while args.len() < argc {
                args.push(self.pick_bytes(fill));
            }
            Generated { label: "(wrong arity)", args }
        }

        /// A command no server knows, with a few arguments from `fill`.
        pub fn unknown_command(&mut self, fill: &[&str]) -> Generated {
            let mut args = vec![self.pick_bytes(&["FOOBAR", "getx", "SETT", "", "mget2"])];
            for _ in 0..self.rng.random_range(0..4) {
                args.push(self.pick_bytes(fill));
            }
            Generated { label: "(unknown command)", args }
        }

        /// An integer argument: `percent` of the time one in `low..=high`, otherwise one from
        /// `odd` (edges of i64, what is not an integer, ...).
        pub fn integer(&mut self, percent: u32, low: i64, high: i64, odd: &[&str]) -> Vec<u8> {
            if self.chance(percent) {
                self.rng.random_range(low..=high).to_string().into_bytes()
            } else {
                self.pick_bytes(odd)
            }
        }
    }

    /// What stands in for a reply when the connection broke (a crashed server, most likely).
    fn connection_lost(error: &std::io::Error) -> Vec<u8> {
        match error.kind() {
            std::io::ErrorKind::UnexpectedEof => b"(no reply: the server closed the connection)".to_vec(),
            _ => format!("(no reply: {error})").into_bytes(),
        }
    }

    /// A command or reply as readable text: printable ASCII as it is, the rest escaped.
    pub fn show(bytes: &[u8]) -> String {
        bytes.escape_ascii().to_string()
    }

    pub fn show_command(args: &[Vec<u8>]) -> String {
        args.iter().map(|a| format!("\"{}\"", show(a))).collect::<Vec<_>>().join(" ")
    }

    /// SHOAL_DIFF_VERBOSE=1 prints every command and its reply (run with `--nocapture`).
    fn verbose() -> bool {
        std::env::var("SHOAL_DIFF_VERBOSE").is_ok_and(|v| v == "1")
    }

    /// Runs one seeded sequence against both servers; panics at the first reply that differs.
    /// Every fourth seed speaks RESP3.
    pub fn run_sequence<G: Generator>(
        seed: u64,
        len: usize,
        generator: &mut G,
        shoal: &mut Raw,
        redis: &mut Raw,
        exercised: &mut BTreeMap<&'static str, usize>,
    ) {
        for raw in [&mut *shoal, &mut *redis] {
            assert_eq!(raw.command(&["FLUSHALL"]).unwrap(), "+OK\r\n", "FLUSHALL before seed {seed}");
        }
        let resp3 = seed % 4 == 3;
        for raw in [&mut *shoal, &mut *redis] {
            let hello = raw.command(&["HELLO", if resp3 { "3" } else { "2" }]).unwrap();
            assert!(hello.starts_with(if resp3 { "%" } else { "*" }), "HELLO before seed {seed}: {hello:?}");
        }
        let mut history: Vec<String> = Vec::new();
        for index in 0..len {
            let generated = generator.next();
            let argv: Vec<&[u8]> = generated.args.iter().map(|a| a.as_slice()).collect();
            let expected = generator.normalise(&generated, redis.command_bytes(&argv).unwrap_or_else(|e| connection_lost(&e)));
            let got = generator.normalise(&generated, shoal.command_bytes(&argv).unwrap_or_else(|e| connection_lost(&e)));
            if got != expected {
                let context = history.iter().rev().take(10).rev().cloned().collect::<Vec<_>>().join("\n  ");
                panic!(
                    "reply differs from redis-server: seed {seed}, command #{index} ({}), RESP{}\n\
                     command: {}\n\
                     redis:   {}\n\
                     shoal:   {}\n\
                     the commands before it:\n  {context}\n\
                     replay with SHOAL_DIFF_SEED={seed} SHOAL_DIFF_LEN={}",
                    generated.label,
                    if resp3 { 3 } else { 2 },
                    show_command(&generated.args),
                    show(&expected),
                    show(&got),
                    index + 1,
                );
            }
            if verbose() {
                eprintln!("seed {seed} #{index}: {} -> {}", show_command(&generated.args), show(&expected));
            }
            *exercised.entry(generated.label).or_default() += 1;
            history.push(format!("#{index}: {} -> {}", show_command(&generated.args), show(&expected)));
        }
    }

    /// The seeds and length to run: SHOAL_DIFF_SEED (one seed) and SHOAL_DIFF_LEN when set,
    /// `seeds` and `len` otherwise.
    pub fn plan(seeds: std::ops::RangeInclusive<u64>, len: usize) -> (Vec<u64>, usize) {
        let len = std::env::var("SHOAL_DIFF_LEN").map(|v| v.parse().expect("SHOAL_DIFF_LEN is a number")).unwrap_or(len);
        match std::env::var("SHOAL_DIFF_SEED") {
            Ok(seed) => (vec![seed.parse().expect("SHOAL_DIFF_SEED is a number")], len),
            Err(_) => (seeds.collect(), len),
        }
    }

    /// Runs every planned seed of one family against a fresh Shoal with `threads` and a fresh
    /// redis-server (both started with `extra` directives); with the fixed seeds, asserts that
    /// every name in `must_exercise` was generated. Returns without running when redis-server
    /// is missing (and SHOAL_REQUIRE_ALL is not set).
    pub fn run<G: Generator>(
        family: &str,
        threads: usize,
        extra: &[&str],
        seeds: std::ops::RangeInclusive<u64>,
        len: usize,
        must_exercise: &[&str],
        new: impl Fn(u64) -> G,
    ) {
        let Some(redis_server) = Server::start_redis_with(extra) else {
            return;
        };
        let shoal_server = Server::start(threads, extra);
        let (mut shoal, mut redis) = (shoal_server.raw(), redis_server.raw());
        let (seeds, len) = plan(seeds, len);
        let mut exercised = BTreeMap::new();
        for &seed in &seeds {
            run_sequence(seed, len, &mut new(seed), &mut shoal, &mut redis, &mut exercised);
        }
        let report = exercised.iter().map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ");
        eprintln!("differential {family}, {threads} threads, seeds {seeds:?} x {len} commands: exercised {report}");
        if seeds.len() > 1 {
            for name in must_exercise {
                assert!(exercised.contains_key(name), "the fixed seeds never generated {name}");
            }
        }
    }

    /// The raw bytes of each element of a top-level RESP aggregate reply, with the header;
    /// `None` for a reply that is not an aggregate.
    pub fn elements(reply: &[u8]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
        let kind = *reply.first()?;
        if !matches!(kind, b'*' | b'~' | b'%' | b'>' | b'|') {
            return None;
        }
        let header_end = reply.windows(2).position(|w| w == b"\r\n")? + 2;
        let count: i64 = std::str::from_utf8(&reply[1..header_end - 2]).ok()?.parse().ok()?;
        let count = if matches!(kind, b'%' | b'|') { count * 2 } else { count };
        let mut at = header_end;
        let mut out = Vec::new();
        for _ in 0..count.max(0) {
            let len = frame_len(&reply[at..])?;
            out.push(reply[at..at + len].to_vec());
            at += len;
        }
        (at == reply.len()).then(|| (reply[..header_end].to_vec(), out))
    }

    /// The length of the first complete RESP frame in `bytes`.
    fn frame_len(bytes: &[u8]) -> Option<usize> {
        let kind = *bytes.first()?;
        let header_end = bytes.windows(2).position(|w| w == b"\r\n")? + 2;
        let count = || std::str::from_utf8(&bytes[1..header_end - 2]).ok()?.parse::<i64>().ok();
        match kind {
            b'$' | b'=' | b'!' => {
                let n = count()?;
                Some(if n < 0 { header_end } else { header_end + n as usize + 2 })
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = count()?;
                let n = if matches!(kind, b'%' | b'|') { n * 2 } else { n };
                let mut at = header_end;
                for _ in 0..n.max(0) {
                    at += frame_len(&bytes[at..])?;
                }
                Some(at)
            }
            _ => Some(header_end),
        }
    }

    /// The reply with its top-level elements sorted (for SMEMBERS, HKEYS, SINTER, ...).
    pub fn sorted(reply: Vec<u8>) -> Vec<u8> {
        sorted_in_groups(reply, 1)
    }

    /// The reply with its top-level elements sorted in groups of `n` that stay together (2
    /// for HGETALL's field-value pairs in RESP2 and maps in RESP3).
    pub fn sorted_in_groups(reply: Vec<u8>, n: usize) -> Vec<u8> {
        let Some((header, items)) = elements(&reply) else {
            return reply;
        };
        let mut groups: Vec<Vec<u8>> = items.chunks(n).map(|c| c.concat()).collect();
        groups.sort();
        let mut out = header;
        for g in groups {
            out.extend_from_slice(&g);
        }
        out
    }
}

/// `client-output-buffer-limit normal 0 64kb 1` on `server`: a client that pipelines 64 MiB
/// of replies and reads none of them is disconnected once a write has stalled for the soft
/// limit's second. The client waits for the disconnect without reading (it watches
/// `connected_clients` from another connection), so a slow machine that fills the socket
/// buffers late cannot make it read early and let the write finish.
pub fn a_client_that_reads_nothing_is_disconnected_by_the_soft_limit(server: &Server) {
    use std::time::{Duration, Instant};
    let value = "v".repeat(1 << 20);
    let mut setter = server.raw();
    assert_eq!(setter.command(&["SET", "big", &value]).unwrap(), "+OK\r\n");
    let connected = |raw: &mut shoal_testkit::Raw| {
        let info = raw.command(&["INFO", "clients"]).unwrap();
        info.split("\r\n").find_map(|line| line.strip_prefix("connected_clients:").map(str::to_owned)).unwrap_or_default()
    };
    let mut raw = server.raw();
    raw.set_read_timeout(Duration::from_secs(10));
    assert_eq!(connected(&mut setter), "2");
    let mut request = Vec::new();
    for _ in 0..64 {
        request.extend_from_slice(&shoal_testkit::Raw::encode(&["GET", "big"]));
    }
    raw.send(&request);
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected(&mut setter) != "1" {
        assert!(Instant::now() < deadline, "the client that reads nothing is disconnected in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    let received = raw.read_until_closed().expect("the server closed the connection");
    assert!(received.len() < 64 << 20, "closed before every reply was sent (got {} bytes)", received.len());
    assert_eq!(setter.command(&["PING"]).unwrap(), "+PONG\r\n");
}

/// One key's logical contents, comparable across servers whatever the encodings.
#[derive(Debug, Clone)]
pub struct Key {
    pub kind: String,
    pub contents: Vec<Vec<u8>>,
    /// The TTL in seconds, if any.
    pub ttl: Option<i64>,
}

/// Asserts two servers' contents are the same: the same keys with the same contents, and the
/// same TTLs give or take `slack_s` seconds (saves, restarts and loaded machines take time).
pub fn assert_same(got: &BTreeMap<(i64, Vec<u8>), Key>, expected: &BTreeMap<(i64, Vec<u8>), Key>, what: &str) {
    let slack_s = 60;
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).map(|(db, k)| (db, String::from_utf8_lossy(k))).take(20).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).map(|(db, k)| (db, String::from_utf8_lossy(k))).take(20).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what}: keys missing {missing:?}, keys not expected {extra:?}");
    for (name, key) in expected {
        let other = &got[name];
        assert_eq!((&other.kind, &other.contents), (&key.kind, &key.contents), "{what}: {name:?}");
        match (other.ttl, key.ttl) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!((a - b).abs() <= slack_s, "{what}: {name:?} TTL {a} s, expected {b} s"),
            (a, b) => panic!("{what}: {name:?} TTL {a:?}, expected {b:?}"),
        }
    }
}

/// Every key of every database: (db, key) -> contents.
pub fn contents(server: &Server) -> BTreeMap<(i64, Vec<u8>), Key> {
    let mut con = connect(server);
    let mut all = BTreeMap::new();
    for db in 0..16 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut con).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
            let mut contents: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut con).unwrap()],
                "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(&mut con).unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut con).unwrap(),
                "hash" => {
                    let pairs: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
                    pairs.into_iter().map(|(f, v)| [f, b"=".to_vec(), v].concat()).collect()
                }
                "zset" => {
                    let pairs: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query(&mut con).unwrap();
                    pairs.into_iter().map(|(m, s)| [m, b"@".to_vec(), s.into_bytes()].concat()).collect()
                }
                "stream" => stream_contents(&mut con, &key),
                other => panic!("unexpected type {other}"),
            };
            if kind == "set" || kind == "hash" {
                contents.sort();
            }
            let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
            let ttl = (pttl >= 0).then_some(pttl / 1000);
            all.insert((db, key), Key { kind, contents, ttl });
        }
    }
    all
}

/// A stream's entries, its consumer groups (with their pending counts and positions) and the
/// IDs and counters XINFO STREAM shows that do not depend on the encoding.
fn stream_contents(con: &mut redis::Connection, key: &[u8]) -> Vec<Vec<u8>> {
    let entries: redis::Value = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query(con).unwrap();
    let groups: redis::Value = redis::cmd("XINFO").arg("GROUPS").arg(key).query(con).unwrap();
    let mut out = vec![format!("{entries:?}").into_bytes(), format!("{groups:?}").into_bytes()];
    let info: Vec<redis::Value> = redis::cmd("XINFO").arg("STREAM").arg(key).query(con).unwrap();
    for pair in info.chunks(2) {
        if let [redis::Value::BulkString(name), value] = pair {
            if matches!(name.as_slice(), b"last-generated-id" | b"max-deleted-entry-id" | b"entries-added") {
                out.push(format!("{}={value:?}", String::from_utf8_lossy(name)).into_bytes());
            }
        }
    }
    out
}

/// Fills a server with every type in every encoding, over several databases, with TTLs.
pub fn fill(server: &Server) {
    let mut con = connect(server);
    let mut q = |args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut con).unwrap()
    };
    for db in ["0", "2", "15"] {
        q(&["SELECT", db]);
        q(&["SET", "int", "12345"]);
        q(&["SET", "negative", "-9223372036854775808"]);
        q(&["SET", "embstr", "hello"]);
        q(&["SET", "empty", ""]);
        let long = "abcdefghij".repeat(200);
        q(&["SET", "compressible", &long]);
        q(&["SET", "binary\u{1}key", "\u{0}\u{ff}bytes"]);
        q(&["SET", "ttl", "expiring", "EX", "10000"]);
        q(&["RPUSH", "small-list", "a", "1", "-2", "bb"]);
        for i in 0..300 {
            q(&["RPUSH", "big-list", &format!("element-{i}-{}", "x".repeat(i % 70))]);
        }
        q(&["HSET", "small-hash", "f1", "v1", "f2", "2"]);
        for i in 0..600 {
            q(&["HSET", "big-hash", &format!("field{i}"), &format!("value{i}")]);
        }
        q(&["SADD", "intset", "1", "2", "3", "-100", "100000"]);
        q(&["SADD", "small-set", "a", "b", "c"]);
        for i in 0..700 {
            q(&["SADD", "big-set", &format!("member{i}")]);
            q(&["SADD", "big-intset", &i.to_string()]);
        }
        q(&["ZADD", "small-zset", "1", "one", "2.5", "two", "-inf", "low", "inf", "high"]);
        for i in 0..300 {
            q(&["ZADD", "big-zset", &format!("{}", i as f64 / 3.0), &format!("m{i}")]);
        }
        q(&["PFADD", "hll", "a", "b", "c"]);
        q(&["EXPIRE", "big-hash", "50000"]);
    }
}

/// The number on a process's line `name:` of /proc/PID/`file` (kB for the memory lines of
/// `status` and `smaps_rollup`).
pub fn proc_field(pid: u32, file: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} in /proc/{pid}/{file}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// A server's peak and resident memory (kB) once it settled: its cores give freed pages
/// back after a quiet second, so what stays resident is the dataset.
pub fn settled_peak_and_resident(pid: u32) -> (u64, u64) {
    std::thread::sleep(std::time::Duration::from_millis(2500));
    (proc_field(pid, "status", "VmHWM:"), proc_field(pid, "status", "VmRSS:"))
}

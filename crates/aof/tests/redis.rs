//! Differential tests against Debian's `redis-server` 7.0: Redis writes an AOF directory and
//! we load it; we write one and Redis loads it (and `redis-check-aof` accepts it); both trim
//! the same truncated tails.
//!
//! Without `redis-server` on PATH the tests print a note and pass, unless
//! `SHOAL_REQUIRE_ALL=1` is set, which makes them fail.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{cmd, TempDir};
use shoal_aof::{encode_timestamp, AofDir, AofState, CommandEncoder, Item, LoadPolicy, Loader};

/// Whether the Redis binaries are here; `false` (after a note) means skip.
fn redis_available(test: &str) -> bool {
    let found = Process::new("redis-server").arg("--version").output().is_ok_and(|output| output.status.success());
    if !found {
        assert!(std::env::var("SHOAL_REQUIRE_ALL").as_deref() != Ok("1"), "{test}: redis-server is not on PATH and SHOAL_REQUIRE_ALL=1");
        eprintln!("note: {test} skipped: redis-server is not on PATH");
    }
    found
}

/// A `redis-server` child on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// What starting Redis led to.
enum Started {
    Ready(Redis),
    /// The server exited during startup (with its log).
    Exited(String),
}

impl Redis {
    fn start(dir: &Path, extra: &[&str]) -> Started {
        let port = shoal_testkit::free_port();
        let log = dir.join("redis.log");
        // Redis appends to its log: start each run with an empty one.
        let _ = fs::remove_file(&log);
        let mut args: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir", dir.to_str().unwrap(), "--save", "", "--logfile", log.to_str().unwrap()]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Process::new("redis-server").args(&args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut redis = Redis { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if redis.child.try_wait().unwrap().is_some() {
                return Started::Exited(fs::read_to_string(&redis.log).unwrap_or_default());
            }
            // During loading Redis answers -LOADING; wait for PONG.
            if shoal_testkit::answers_ping(port) {
                return Started::Ready(redis);
            }
            assert!(Instant::now() < deadline, "redis-server did not start: {}", fs::read_to_string(&redis.log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_ready(dir: &Path, extra: &[&str]) -> Redis {
        match Redis::start(dir, extra) {
            Started::Ready(redis) => redis,
            Started::Exited(log) => panic!("redis-server exited during startup:\n{log}"),
        }
    }

    fn client(&self) -> Client {
        Client::new(TcpStream::connect(("127.0.0.1", self.port)).unwrap())
    }

    /// `SHUTDOWN NOSAVE`, then waits for the process to exit.
    fn stop(mut self) {
        let mut client = self.client();
        client.send(&["SHUTDOWN", "NOSAVE"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "redis-server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls `INFO persistence` until no rewrite is scheduled or running.
    fn wait_rewrite_done(&self) {
        let mut client = self.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let Reply::Bulk(Some(info)) = client.call(&["INFO", "persistence"]) else { panic!("INFO failed") };
            let info = String::from_utf8(info).unwrap();
            if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") && info.contains("aof_last_bgrewrite_status:ok") {
                return;
            }
            assert!(Instant::now() < deadline, "rewrite did not finish: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// A minimal RESP2 client on one connection (so MULTI/EXEC and SELECT work).
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { reader: BufReader::new(stream) }
    }

    fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut bytes = Vec::new();
        shoal_aof::encode_command(args, &mut bytes);
        self.reader.get_mut().write_all(&bytes).unwrap();
    }

    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        self.send(args);
        self.read_reply()
    }

    fn read_reply(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let body = line.trim_end_matches("\r\n").to_string();
        let (kind, rest) = body.split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(rest.parse().unwrap()),
            "$" => {
                let len: i64 = rest.parse().unwrap();
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut data = vec![0; len as usize + 2];
                self.reader.read_exact(&mut data).unwrap();
                data.truncate(len as usize);
                Reply::Bulk(Some(data))
            }
            "*" => {
                let len: i64 = rest.parse().unwrap();
                if len < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..len).map(|_| self.read_reply()).collect()))
            }
            _ => panic!("unexpected reply line {line:?}"),
        }
    }

    fn get(&mut self, db: usize, key: &str) -> Option<Vec<u8>> {
        assert_eq!(self.call(&["SELECT", &db.to_string()]), Reply::Status("OK".into()));
        match self.call(&["GET", key]) {
            Reply::Bulk(value) => value,
            other => panic!("GET {key}: {other:?}"),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A loaded item with absolute millisecond times (Redis's rewritten expiries) replaced by
/// `<ms>`, after checking they fall in `[since_ms, since_ms + 1 day]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Command(usize, Vec<String>),
    Transaction(Vec<(usize, Vec<String>)>),
    Rdb(String),
}

fn shape(items: &[Item], since_ms: u64) -> Vec<Shape> {
    let mask = |args: &[bytes::Bytes]| -> Vec<String> {
        args.iter()
            .map(|arg| {
                let text = String::from_utf8(arg.to_vec()).unwrap();
                match text.parse::<u64>() {
                    Ok(ms) if ms >= 1_000_000_000_000 => {
                        assert!((since_ms..since_ms + 86_400_000).contains(&ms), "timestamp {ms} not near {since_ms}");
                        "<ms>".to_string()
                    }
                    _ => text,
                }
            })
            .collect()
    };
    items
        .iter()
        .map(|item| match item {
            Item::Command(command) => Shape::Command(command.db, mask(&command.args)),
            Item::Transaction(commands) => Shape::Transaction(commands.iter().map(|command| (command.db, mask(&command.args))).collect()),
            Item::Rdb { path, .. } => Shape::Rdb(path.file_name().unwrap().to_str().unwrap().to_string()),
            Item::Timestamp(_) => panic!("no timestamps expected"),
        })
        .collect()
}

fn c(db: usize, args: &[&str]) -> Shape {
    Shape::Command(db, args.iter().map(|s| s.to_string()).collect())
}

/// Loads everything the directory holds; an RDB is taken whole (a `.base.rdb` file).
fn load_dir(aof: &AofDir) -> Vec<Item> {
    let state = aof.open().unwrap();
    assert!(matches!(state, AofState::Manifest(_)), "{state:?}");
    let mut loader = aof.loader(&state, LoadPolicy::default()).unwrap();
    let mut items = Vec::new();
    while let Some(item) = loader.next_item().unwrap() {
        if let Item::Rdb { path, .. } = &item {
            let len = fs::metadata(path).unwrap().len();
            loader.rdb_consumed(len).unwrap();
        }
        items.push(item);
    }
    assert_eq!(loader.report().truncated, None);
    items
}

fn manifest_text(aof: &AofDir) -> String {
    fs::read_to_string(aof.manifest_path()).unwrap()
}

#[test]
fn redis_written_aof_loads_as_the_commands_sent_and_after_rewrites() {
    if !redis_available("redis_written_aof_loads_as_the_commands_sent_and_after_rewrites") {
        return;
    }
    let dir = TempDir::new("redis-writes");
    let aof = AofDir::new(dir.path(), "appendonlydir", "appendonly.aof");
    let since_ms = now_ms();
    let options = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"];
    let redis = Redis::start_ready(dir.path(), &options);
    let mut client = redis.client();
    let script: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["INCR", "n"],
        &["INCR", "n"],
        &["MULTI"],
        &["SET", "b", "2"],
        &["INCR", "n"],
        &["EXEC"],
        &["SELECT", "3"],
        &["SET", "c", "3"],
        &["EXPIRE", "c", "1000"],
        &["SET", "d", "v", "EX", "100"],
        &["SELECT", "0"],
        &["DEL", "a"],
        &["LPUSH", "l", "x", "y"],
        &["MULTI"],
        &["SET", "f", "1"],
        &["SELECT", "6"],
        &["SET", "g", "1"],
        &["EXEC"],
        &["SET", "h", "with space\r\nand newline"],
    ];
    for command in script {
        let reply = client.call(command);
        assert!(!matches!(reply, Reply::Error(_)), "{command:?}: {reply:?}");
    }
    redis.stop();

    assert_eq!(manifest_text(&aof), "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    let expected = vec![
        c(0, &["SET", "a", "1"]),
        c(0, &["INCR", "n"]),
        c(0, &["INCR", "n"]),
        Shape::Transaction(vec![(0, vec!["SET".into(), "b".into(), "2".into()]), (0, vec!["INCR".into(), "n".into()])]),
        c(3, &["SET", "c", "3"]),
        // Redis 7.0 logs relative expiries as absolute ones.
        c(3, &["PEXPIREAT", "c", "<ms>"]),
        c(3, &["SET", "d", "v", "PXAT", "<ms>"]),
        c(0, &["DEL", "a"]),
        c(0, &["LPUSH", "l", "x", "y"]),
        Shape::Transaction(vec![(0, vec!["SET".into(), "f".into(), "1".into()]), (6, vec!["SET".into(), "g".into(), "1".into()])]),
        c(6, &["SET", "h", "with space\r\nand newline"]),
    ];
    assert_eq!(shape(&load_dir(&aof), since_ms), expected);

    // BGREWRITEAOF without preamble: the base is the dataset in RESP form.
    let redis = Redis::start_ready(dir.path(), &options);
    let mut client = redis.client();
    assert_eq!(client.call(&["BGREWRITEAOF"]), Reply::Status("Background append only file rewriting started".into()));
    redis.wait_rewrite_done();
    assert_eq!(client.call(&["SET", "after", "1"]), Reply::Status("OK".into()));
    redis.stop();
    let text = manifest_text(&aof);
    assert!(text.starts_with("file appendonly.aof.2.base.aof seq 2 type b\n"), "{text}");
    assert!(text.ends_with("file appendonly.aof.2.incr.aof seq 2 type i\n"), "{text}");
    let mut loaded = shape(&load_dir(&aof), since_ms);
    assert_eq!(loaded.pop(), Some(c(0, &["SET", "after", "1"])));
    // The rewrite writes keys in hash-table order: compare as sets.
    let base: BTreeSet<Shape> = loaded.into_iter().collect();
    let expected: BTreeSet<Shape> = [
        c(0, &["SET", "n", "3"]),
        c(0, &["SET", "b", "2"]),
        c(0, &["RPUSH", "l", "y", "x"]),
        c(0, &["SET", "f", "1"]),
        c(3, &["SET", "c", "3"]),
        c(3, &["PEXPIREAT", "c", "<ms>"]),
        c(3, &["SET", "d", "v"]),
        c(3, &["PEXPIREAT", "d", "<ms>"]),
        c(6, &["SET", "g", "1"]),
        c(6, &["SET", "h", "with space\r\nand newline"]),
    ]
    .into_iter()
    .collect();
    assert_eq!(base, expected);

    // BGREWRITEAOF with preamble: the base is an RDB file, handed to the caller.
    let options = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "yes"];
    let redis = Redis::start_ready(dir.path(), &options);
    let mut client = redis.client();
    assert_eq!(client.call(&["BGREWRITEAOF"]), Reply::Status("Background append only file rewriting started".into()));
    redis.wait_rewrite_done();
    assert_eq!(client.call(&["SET", "more", "1"]), Reply::Status("OK".into()));
    redis.stop();
    let text = manifest_text(&aof);
    assert!(text.starts_with("file appendonly.aof.3.base.rdb seq 3 type b\n"), "{text}");
    assert!(fs::read(aof.path_of("appendonly.aof.3.base.rdb")).unwrap().starts_with(b"REDIS"));
    assert_eq!(shape(&load_dir(&aof), since_ms), vec![Shape::Rdb("appendonly.aof.3.base.rdb".into()), c(0, &["SET", "more", "1"])]);
}

/// Writes a directory with our code: a RESP base, two incremental files with SELECT,
/// MULTI/EXEC, a binary value and a timestamp annotation.
fn write_our_dir(aof: &AofDir) {
    let mut manifest = aof.create_initial().unwrap();
    let base = manifest.set_new_base(aof.appendfilename(), false);
    let mut bytes = Vec::new();
    let mut encoder = CommandEncoder::new();
    encoder.encode(0, &["SET", "k1", "v1"], &mut bytes);
    encoder.encode(0, &["RPUSH", "list", "a", "b"], &mut bytes);
    encoder.encode(2, &["SET", "k2", "v2"], &mut bytes);
    fs::write(aof.path_of(&base), &bytes).unwrap();
    aof.persist_manifest(&manifest).unwrap();

    bytes.clear();
    let mut encoder = CommandEncoder::new();
    encode_timestamp(1_700_000_000, &mut bytes);
    encoder.encode(0, &["SET", "k3", "v3"], &mut bytes);
    encoder.encode(0, &["MULTI"], &mut bytes);
    encoder.encode(0, &["INCR", "cnt"], &mut bytes);
    encoder.encode(1, &["INCR", "cnt"], &mut bytes);
    encoder.encode(1, &["EXEC"], &mut bytes);
    encoder.encode(5, &["SET", "k5", "with space\r\n\x00bin"], &mut bytes);
    fs::write(aof.path_of(&manifest.incrs[0].name), &bytes).unwrap();

    let (_, second) = aof.open_new_incr(&mut manifest).unwrap();
    bytes.clear();
    CommandEncoder::new().encode(0, &["SET", "k6", "v6"], &mut bytes);
    fs::write(aof.path_of(&second), &bytes).unwrap();
}

#[test]
fn redis_loads_the_aof_we_write_and_redis_check_aof_accepts_it() {
    if !redis_available("redis_loads_the_aof_we_write_and_redis_check_aof_accepts_it") {
        return;
    }
    let dir = TempDir::new("we-write");
    let aof = AofDir::new(dir.path(), "appendonlydir", "appendonly.aof");
    write_our_dir(&aof);
    // Our own loader reads it back.
    let items = load_dir(&aof);
    assert_eq!(items.len(), 8);
    assert_eq!(items[5], Item::Transaction(vec![cmd(0, &["INCR", "cnt"]), cmd(1, &["INCR", "cnt"])]));

    let check = Process::new("redis-check-aof").arg(aof.manifest_path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "redis-check-aof failed: {stdout}");
    assert!(stdout.contains("All AOF files and manifest are valid"), "{stdout}");

    let redis = Redis::start_ready(dir.path(), &["--appendonly", "yes"]);
    let mut client = redis.client();
    assert_eq!(client.get(0, "k1").as_deref(), Some(&b"v1"[..]));
    assert_eq!(client.get(2, "k2").as_deref(), Some(&b"v2"[..]));
    assert_eq!(client.get(0, "k3").as_deref(), Some(&b"v3"[..]));
    assert_eq!(client.get(0, "cnt").as_deref(), Some(&b"1"[..]));
    assert_eq!(client.get(1, "cnt").as_deref(), Some(&b"1"[..]));
    assert_eq!(client.get(5, "k5").as_deref(), Some(&b"with space\r\n\x00bin"[..]));
    assert_eq!(client.get(0, "k6").as_deref(), Some(&b"v6"[..]));
    assert_eq!(client.call(&["SELECT", "0"]), Reply::Status("OK".into()));
    assert_eq!(client.call(&["LRANGE", "list", "0", "-1"]), Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Bulk(Some(b"b".to_vec()))])));
    redis.stop();
    // Redis kept our manifest as it was.
    assert_eq!(
        manifest_text(&aof),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
}

#[test]
fn redis_and_we_trim_a_truncated_tail_to_the_same_length() {
    if !redis_available("redis_and_we_trim_a_truncated_tail_to_the_same_length") {
        return;
    }
    let template = TempDir::new("trim-template");
    let template_aof = AofDir::new(template.path(), "appendonlydir", "appendonly.aof");
    write_our_dir(&template_aof);
    let incr_name = "appendonly.aof.1.incr.aof";
    let incr = fs::read(template_aof.path_of(incr_name)).unwrap();
    let find = |needle: &[u8]| incr.windows(needle.len()).position(|w| w == needle).unwrap();
    let timestamp_end = find(b"*2\r\n$6\r\nSELECT");
    let multi_start = find(b"*1\r\n$5\r\nMULTI");
    let exec_start = find(b"*1\r\n$4\r\nEXEC");
    let last_start = incr.windows(11).rposition(|w| w == b"*3\r\n$3\r\nSET").unwrap();
    // (cut, our length after trimming, Redis's). The first incremental file is made the last
    // by dropping the second. Two cuts show where we deliberately differ (see the loader's
    // module docs): Redis trims a complete annotation before the cut command, we keep it;
    // Redis cut inside a transaction's EXEC keeps the open MULTI and its queued commands
    // (commands appended later would then join the transaction and be reverted on the next
    // load), we trim the whole transaction.
    let cuts = [
        (timestamp_end + 9, timestamp_end, 0),
        (multi_start + 12, multi_start, multi_start),
        (exec_start + 4, multi_start, exec_start),
        (incr.len() - 5, last_start, last_start),
    ];
    let mut results = Vec::new();
    for (cut, _, _) in cuts {
        let mut ours = None;
        for side in ["ours", "redis"] {
            let dir = TempDir::new("trim");
            let aof = AofDir::new(dir.path(), "appendonlydir", "appendonly.aof");
            fs::create_dir_all(aof.aof_dir()).unwrap();
            for entry in fs::read_dir(template_aof.aof_dir()).unwrap() {
                let entry = entry.unwrap();
                fs::copy(entry.path(), aof.aof_dir().join(entry.file_name())).unwrap();
            }
            let mut manifest = template_aof.read_manifest().unwrap().unwrap();
            fs::remove_file(aof.path_of(&manifest.incrs.pop().unwrap().name)).unwrap();
            aof.persist_manifest(&manifest).unwrap();
            fs::write(aof.path_of(incr_name), &incr[..cut]).unwrap();
            if side == "ours" {
                let paths: Vec<PathBuf> = manifest.files_to_load().map(|info| aof.path_of(&info.name)).collect();
                let mut loader = Loader::new(paths, LoadPolicy { load_truncated: true, ..LoadPolicy::default() });
                while loader.next_item().unwrap().is_some() {}
                assert!(loader.report().truncated.is_some(), "cut {cut}");
                ours = Some(fs::metadata(aof.path_of(incr_name)).unwrap().len());
            } else {
                // Refused when truncated files may not be loaded...
                match Redis::start(dir.path(), &["--appendonly", "yes", "--aof-load-truncated", "no"]) {
                    Started::Exited(log) => assert!(log.contains("Unexpected end of file"), "{log}"),
                    Started::Ready(_) => panic!("cut {cut}: Redis loaded a truncated AOF with aof-load-truncated no"),
                }
                // ...and trimmed to the same length as ours when they may.
                Redis::start_ready(dir.path(), &["--appendonly", "yes", "--aof-load-truncated", "yes"]).stop();
                results.push((cut, ours.unwrap(), fs::metadata(aof.path_of(incr_name)).unwrap().len()));
            }
        }
    }
    let expected: Vec<(usize, u64, u64)> = cuts.iter().map(|&(cut, ours, redis)| (cut, ours as u64, redis as u64)).collect();
    assert_eq!(results, expected, "(cut, ours, redis)");
}

/// Redis's verdict on a manifest: whether `redis-server` starts with it, or the error
/// message and the line it names from its log.
fn redis_verdict_on_manifest(dir: &Path, text: &str) -> Result<(), (String, Option<usize>)> {
    let aof = AofDir::new(dir, "appendonlydir", "appendonly.aof");
    fs::write(aof.manifest_path(), text).unwrap();
    let log = match Redis::start(dir, &["--appendonly", "yes"]) {
        Started::Ready(redis) => {
            redis.stop();
            return Ok(());
        }
        Started::Exited(log) => log,
    };
    let (_, error) = log.split_once("FATAL AOF MANIFEST FILE ERROR").unwrap_or_else(|| panic!("{log}"));
    let line = error.split("Reading the manifest file, at line ").nth(1).map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap());
    let message = error.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    let message = message.split(" # ").nth(1).unwrap_or(message).trim().to_string();
    Err((message, line))
}

#[test]
fn manifests_are_accepted_and_refused_as_redis_server_does() {
    if !redis_available("manifests_are_accepted_and_refused_as_redis_server_does") {
        return;
    }
    let dir = TempDir::new("manifests");
    let aof_dir = dir.path().join("appendonlydir");
    fs::create_dir_all(&aof_dir).unwrap();
    for name in ["a.1.base.aof", "a.1.incr.aof", "a.2.incr.aof", "a b.aof"] {
        fs::write(aof_dir.join(name), b"").unwrap();
    }
    let padded = |len: usize| {
        let line = "file a.1.incr.aof seq 1 type i pad \n";
        format!("file a.1.incr.aof seq 1 type i pad {}\n", "x".repeat(len - line.len()))
    };
    let cases: Vec<String> = vec![
        "file a.1.base.aof seq 1 type b\nfile a.1.incr.aof seq 1 type i\n".into(),
        "# comment\nseq 1 type i file \"a b.aof\" extra x\n".into(),
        "file a.1.base.aof seq 1 type base\n".into(),
        "file a.1.incr.aof seq 1x type i\r\n".into(),
        "file a.1.incr.aof seq 1 type i\nfile a.2.incr.aof seq 5 type i\n".into(),
        "file 'a b.aof' seq 1 type i\n".into(),
        "file a.1.incr.aof seq 1 type i".into(),
        "file a.1.incr.aof seq 1 type i\n\n".into(),
        "file a.1.incr.aof seq 1 type i\n \t \n".into(),
        "file a.1.incr.aof seq 1 type\n".into(),
        "file a.1.incr.aof seq 1 type i x\n".into(),
        "file a.1.incr.aof seq 1 typo i\n".into(),
        "file a.1.incr.aof seq 0 type i\n".into(),
        "file a.1.incr.aof seq -1 type i\n".into(),
        "file \"a.1.incr.aof seq 1 type i\n".into(),
        "file \"a.1.incr.aof\"x seq 1 type i\n".into(),
        "file dir/a.1.incr.aof seq 1 type i\n".into(),
        "file a.1.base.aof seq 1 type b\nfile a.1.base.aof seq 2 type b\n".into(),
        "file a.2.incr.aof seq 2 type i\nfile a.1.incr.aof seq 2 type i\n".into(),
        "file a.1.incr.aof seq 1 type x\n".into(),
        padded(1024),
        padded(1025),
        format!("{}\nfile a.1.incr.aof seq 1 type i\n", "#".repeat(1500)),
    ];
    for text in cases {
        let ours = shoal_aof::Manifest::parse(text.as_bytes()).map(|_| ()).map_err(|error| {
            let message = error.to_string();
            (message.split(" (line").next().unwrap().to_string(), error.line())
        });
        let mut redis = redis_verdict_on_manifest(dir.path(), &text);
        // Redis names no line for a too long one.
        if let (Err((_, our_line)), Err((message, line @ None))) = (&ours, &mut redis) {
            if message.contains("too long line") {
                *line = *our_line;
            }
        }
        assert_eq!(ours, redis, "manifest {text:?}");
    }
}

#[test]
fn we_upgrade_an_old_single_file_aof_as_redis_does() {
    if !redis_available("we_upgrade_an_old_single_file_aof_as_redis_does") {
        return;
    }
    let mut bytes = Vec::new();
    CommandEncoder::new().encode(1, &["SET", "old", "1"], &mut bytes);
    let mut manifests = Vec::new();
    for side in ["ours", "redis"] {
        let dir = TempDir::new("upgrade");
        let aof = AofDir::new(dir.path(), "appendonlydir", "appendonly.aof");
        fs::write(aof.legacy_path(), &bytes).unwrap();
        if side == "ours" {
            aof.upgrade_legacy().unwrap();
        } else {
            let redis = Redis::start_ready(dir.path(), &["--appendonly", "yes"]);
            assert_eq!(redis.client().get(1, "old").as_deref(), Some(&b"1"[..]));
            redis.stop();
        }
        assert!(!aof.legacy_path().exists(), "{side}: the old file moved");
        assert_eq!(fs::read(aof.path_of("appendonly.aof")).unwrap(), bytes, "{side}");
        let text = manifest_text(&aof);
        // Redis also opens a first incremental file once upgraded.
        manifests.push(text.lines().next().unwrap().to_string());
        assert_eq!(shape(&load_dir(&aof), 0).first(), Some(&c(1, &["SET", "old", "1"])));
    }
    assert_eq!(manifests[0], manifests[1]);
}

#[test]
fn redis_timestamp_annotations_are_handed_out() {
    if !redis_available("redis_timestamp_annotations_are_handed_out") {
        return;
    }
    let dir = TempDir::new("timestamps");
    let aof = AofDir::new(dir.path(), "appendonlydir", "appendonly.aof");
    let since_secs = now_ms() / 1000;
    let redis = Redis::start_ready(dir.path(), &["--appendonly", "yes", "--appendfsync", "always", "--aof-timestamp-enabled", "yes"]);
    let mut client = redis.client();
    assert_eq!(client.call(&["SET", "a", "1"]), Reply::Status("OK".into()));
    // Redis annotates when the second changes: wait for the next one.
    let first_secs = now_ms() / 1000;
    let deadline = Instant::now() + Duration::from_secs(5);
    while now_ms() / 1000 == first_secs {
        assert!(Instant::now() < deadline, "the clock did not move");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client.call(&["SET", "b", "2"]), Reply::Status("OK".into()));
    redis.stop();
    let items = load_dir(&aof);
    let timestamps: Vec<u64> = items.iter().filter_map(|item| if let Item::Timestamp(secs) = item { Some(*secs) } else { None }).collect();
    assert!(timestamps.len() >= 2, "{items:?}");
    assert!(timestamps.windows(2).all(|pair| pair[0] < pair[1]), "{timestamps:?}");
    assert!(timestamps.iter().all(|&secs| (since_secs..since_secs + 60).contains(&secs)), "{timestamps:?}");
    let commands: Vec<&Item> = items.iter().filter(|item| matches!(item, Item::Command(_))).collect();
    assert_eq!(commands, vec![&Item::Command(cmd(0, &["SET", "a", "1"])), &Item::Command(cmd(0, &["SET", "b", "2"]))]);
    // Each command follows its annotation.
    let b_at = items.iter().position(|item| item == &Item::Command(cmd(0, &["SET", "b", "2"]))).unwrap();
    assert_eq!(items[b_at - 1], Item::Timestamp(*timestamps.last().unwrap()));

    // redis-check-aof cuts the log before the first annotation later than the given time;
    // the loader then finds only what came before.
    let keep_up_to = timestamps[timestamps.len() - 2];
    let check = Process::new("redis-check-aof").arg("--truncate-to-timestamp").arg(keep_up_to.to_string()).arg(aof.manifest_path()).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let items = load_dir(&aof);
    assert_eq!(items.iter().filter_map(|item| if let Item::Timestamp(secs) = item { Some(*secs) } else { None }).max(), Some(keep_up_to));
    let commands: Vec<&Item> = items.iter().filter(|item| matches!(item, Item::Command(_))).collect();
    assert_eq!(commands, vec![&Item::Command(cmd(0, &["SET", "a", "1"]))]);
}

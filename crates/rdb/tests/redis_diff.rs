//! Differential tests against Debian's real `redis-server` 7.0: files and DUMP payloads Redis
//! writes read back with the same contents here, and files and payloads written here load in
//! Redis with the same contents. Skipped with a note when `redis-server` is not installed,
//! unless `SHOAL_REQUIRE_ALL=1`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use shoal_rdb::{dump, restore, EntryMeta, Event, Reader, ReaderOptions, Writer, WriterOptions};
use shoal_store::types::set::Enc as SetEnc;
use shoal_store::types::Limits;
use shoal_store::Value;

// ---- a tiny RESP client, binary safe ----

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn bytes(self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b,
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }

    fn array(self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(items)) => items,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    fn int(self) -> i64 {
        match self {
            Reply::Int(n) => n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
        self.read_reply()
    }

    fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        match self.cmd(args) {
            Reply::Status(_) | Reply::Int(_) => {}
            other => panic!("{:?}: {other:?}", args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect::<Vec<_>>()),
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches("\r\n").to_string()
    }

    fn read_reply(&mut self) -> Reply {
        let line = self.read_line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0; n as usize + 2];
                self.reader.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read_reply()).collect()))
            }
            _ => panic!("bad reply line {line:?}"),
        }
    }
}

// ---- a redis-server on a free port in a temporary directory ----

fn redis_available() -> bool {
    let found = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("redis-check-rdb").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        if std::env::var("SHOAL_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("redis-server / redis-check-rdb not found and SHOAL_REQUIRE_ALL=1");
        }
        eprintln!("note: redis-server not found; skipping the differential test");
    }
    found
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("shoal-rdb-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Debian's redis-server in `dir`, started (and killed on drop) by the testkit, whose
/// startup probe retries until PING answers PONG.
struct Server {
    redis: shoal_testkit::Server,
}

impl Server {
    fn start(dir: PathBuf, dbfilename: &str) -> Server {
        Self::start_with(dir, dbfilename, &[])
    }

    fn start_with(dir: PathBuf, dbfilename: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--enable-debug-command", "yes", "--dbfilename", dbfilename, "--databases", "16"];
        args.extend_from_slice(extra);
        let redis = shoal_testkit::Server::start_redis_in(&dir, &args).expect("redis-server is installed");
        Server { redis }
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.redis.port).unwrap()
    }
}

// ---- contents, compared whatever the encoding ----

#[derive(Debug, Clone, PartialEq)]
enum Contents {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Set(Vec<Vec<u8>>),
    ZSet(Vec<(Vec<u8>, f64)>),
}

fn of_value(value: &Value) -> Contents {
    match value {
        Value::Str(s) => Contents::Str(s.to_bytes().to_vec()),
        Value::List(l) => Contents::List(l.iter().map(|e| e.to_vec()).collect()),
        Value::Hash(h) => {
            let mut pairs: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            pairs.sort();
            Contents::Hash(pairs)
        }
        Value::Set(s) => {
            let mut members: Vec<_> = s.iter().map(|m| m.to_bytes().to_vec()).collect();
            members.sort();
            Contents::Set(members)
        }
        Value::ZSet(z) => Contents::ZSet(z.iter().map(|(m, s)| (m.to_vec(), s)).collect()),
        Value::Stream(_) => unreachable!("the corpus has no streams (tests/streams.rs has them)"),
    }
}

fn of_redis(c: &mut Conn, key: &[u8]) -> Contents {
    let kind = match c.cmd(&[&b"TYPE"[..], key]) {
        Reply::Status(s) => s,
        other => panic!("TYPE: {other:?}"),
    };
    match kind.as_str() {
        "string" => Contents::Str(c.cmd(&[&b"GET"[..], key]).bytes()),
        "list" => Contents::List(c.cmd(&[&b"LRANGE"[..], key, b"0", b"-1"]).array().into_iter().map(Reply::bytes).collect()),
        "hash" => {
            let flat: Vec<Vec<u8>> = c.cmd(&[&b"HGETALL"[..], key]).array().into_iter().map(Reply::bytes).collect();
            let mut pairs: Vec<_> = flat.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            pairs.sort();
            Contents::Hash(pairs)
        }
        "set" => {
            let mut members: Vec<Vec<u8>> = c.cmd(&[&b"SMEMBERS"[..], key]).array().into_iter().map(Reply::bytes).collect();
            members.sort();
            Contents::Set(members)
        }
        "zset" => {
            let flat: Vec<Vec<u8>> = c.cmd(&[&b"ZRANGE"[..], key, b"0", b"-1", b"WITHSCORES"]).array().into_iter().map(Reply::bytes).collect();
            Contents::ZSet(flat.chunks(2).map(|p| (p[0].clone(), std::str::from_utf8(&p[1]).unwrap().parse::<f64>().unwrap())).collect())
        }
        other => panic!("unexpected type {other} for {key:?}"),
    }
}

/// Creates `value` under `key` in Redis with ordinary commands.
fn insert(c: &mut Conn, key: &[u8], value: &Value) {
    let mut args: Vec<Vec<u8>> = Vec::new();
    match of_value(value) {
        Contents::Str(s) => args.extend([b"SET".to_vec(), key.to_vec(), s]),
        Contents::List(items) => {
            // Insertion in batches keeps the commands small.
            for batch in items.chunks(500) {
                let mut a = vec![b"RPUSH".to_vec(), key.to_vec()];
                a.extend(batch.iter().cloned());
                c.ok(&a);
            }
            return;
        }
        Contents::Hash(pairs) => {
            // Listpack hashes keep insertion order; insert in the value's own order.
            let Value::Hash(h) = value else { unreachable!() };
            args.extend([b"HSET".to_vec(), key.to_vec()]);
            for (f, v) in h.iter() {
                args.push(f.to_vec());
                args.push(v.to_vec());
            }
            assert_eq!(args.len(), 2 + pairs.len() * 2);
        }
        Contents::Set(members) => {
            args.extend([b"SADD".to_vec(), key.to_vec()]);
            args.extend(members);
        }
        Contents::ZSet(items) => {
            args.extend([b"ZADD".to_vec(), key.to_vec()]);
            for (m, s) in items {
                args.push(codec_score(s).into_bytes());
                args.push(m);
            }
        }
    }
    c.ok(&args);
}

fn codec_score(s: f64) -> String {
    if s == f64::INFINITY {
        "+inf".into()
    } else if s == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{s:e}")
    }
}

/// The keys of the Redis-side fixture: (db, key, value, expire_ms).
fn fixture() -> Vec<(u64, Vec<u8>, Value, Option<i64>)> {
    let mut out = Vec::new();
    for (i, (name, value, _)) in common::corpus().into_iter().enumerate() {
        let db = [0, 0, 1, 5][i % 4];
        let expire = (i % 5 == 0).then_some(4_102_444_800_000 + i as i64);
        out.push((db, format!("k:{name}").into_bytes(), value, expire));
    }
    out.push((0, b"\x00binary\xffkey".to_vec(), common::string(b"v"), None));
    out.push((2, b"".to_vec(), common::string(b"empty key"), None));
    out
}

fn select(c: &mut Conn, db: u64) {
    c.ok(&["SELECT", &db.to_string()]);
}

/// Reads a file Redis saved: (db, key) -> (value, expiry), checking its aux fields.
fn read_redis_file(bytes: &[u8]) -> BTreeMap<(u64, Vec<u8>), (Value, Option<i64>)> {
    let reader = Reader::new(bytes, ReaderOptions { limits: Limits::default(), now_ms: 0 }).unwrap();
    assert_eq!(reader.version(), 10);
    let mut loaded = BTreeMap::new();
    let mut aux = BTreeMap::new();
    for event in reader {
        match event.unwrap() {
            Event::Entry(e) => {
                assert!(loaded.insert((e.db, e.key.clone()), (e.value, e.expire_ms)).is_none(), "key {:?} twice", e.key);
            }
            Event::Aux { key, value } => {
                aux.insert(key, value);
            }
            _ => {}
        }
    }
    assert_eq!(aux.get(b"redis-ver".as_slice()).map(|v| v.as_slice()), Some(&b"7.0.15"[..]));
    loaded
}

#[test]
fn files_and_payloads_written_by_redis_read_back_with_the_same_contents() {
    if !redis_available() {
        return;
    }
    let dir = temp_dir("from-redis");
    let server = Server::start(dir.clone(), "dump.rdb");
    let mut c = server.conn();
    let fixture = fixture();
    for (db, key, value, expire) in &fixture {
        select(&mut c, *db);
        insert(&mut c, key, value);
        if let Some(ms) = expire {
            c.ok(&[&b"PEXPIREAT"[..], key, ms.to_string().as_bytes()]);
        }
    }
    // A quicklist whose inner nodes Redis stores LZF-compressed in the file.
    c.ok(&["CONFIG", "SET", "list-compress-depth", "1"]);
    select(&mut c, 0);
    let compressed_items: Vec<String> = (0..4000).map(|i| format!("compressible-element-{}", i % 10)).collect();
    let compressed = common::list(&compressed_items);
    insert(&mut c, b"k:list-lzf-nodes", &compressed);
    let mut expected = fixture.clone();
    expected.push((0, b"k:list-lzf-nodes".to_vec(), compressed, None));

    // Every key, as Redis has it, matches what was inserted.
    for (db, key, value, _) in &expected {
        select(&mut c, *db);
        assert_eq!(of_redis(&mut c, key), of_value(value), "redis has {key:?}");
    }

    // Redis's file, with and without LZF.
    for compression in ["yes", "no"] {
        c.ok(&["CONFIG", "SET", "rdbcompression", compression]);
        assert_eq!(c.cmd(&["SAVE"]), Reply::Status("OK".into()));
        let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();
        let loaded = read_redis_file(&bytes);
        assert_eq!(loaded.len(), expected.len());
        for (db, key, value, expire) in &expected {
            let (got, got_expire) = loaded.get(&(*db, key.clone())).unwrap_or_else(|| panic!("{key:?} missing from the file"));
            assert_eq!(of_value(got), of_value(value), "{key:?} from the file");
            assert_eq!(got_expire, expire, "{key:?} expiry");
            // Encodings follow the same thresholds (lists aside: Redis 7.0 has no listpack
            // lists, and sets of strings: 7.0 has no listpack sets).
            if !matches!(value, Value::List(_)) && !matches!(value, Value::Set(s) if !matches!(s.enc(), SetEnc::Intset(_))) {
                assert_eq!(got.encoding_name(), value.encoding_name(), "{key:?} encoding");
            }
        }
        eprintln!("read {} keys from Redis's dump.rdb (rdbcompression {compression})", loaded.len());
    }
    c.ok(&["CONFIG", "SET", "rdbcompression", "yes"]);
    // DUMP payloads from Redis restore here; our DUMP of the result restores in Redis.
    let mut identical = 0;
    for (db, key, value, _) in &expected {
        select(&mut c, *db);
        let payload = c.cmd(&[&b"DUMP"[..], key]).bytes();
        let restored = restore(&payload, &Limits::default()).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!(of_value(&restored), of_value(value), "{key:?} restored from Redis's DUMP");
        // Where nothing is LZF-compressed (our compressor's bytes differ from liblzf's) and
        // the value is one listpack, intset or string, our payload is Redis's, byte for byte.
        let single_blob = match &restored {
            Value::List(l) => l.len() < 100,
            Value::Str(_) => true,
            other => matches!(other.encoding_name(), "listpack" | "intset"),
        };
        if single_blob && dump(&restored, true) == dump(&restored, false) {
            assert_eq!(dump(&restored, true), payload, "{key:?}: our DUMP differs from Redis's");
            identical += 1;
        }
        for compress in [true, false] {
            let ours = dump(&restored, compress);
            let mut copy = b"copy:".to_vec();
            copy.extend_from_slice(key);
            match c.cmd(&[&b"RESTORE"[..], &copy, b"0", &ours, b"REPLACE"]) {
                Reply::Status(s) if s == "OK" => {}
                other => panic!("Redis refused our DUMP of {key:?}: {other:?}"),
            }
            assert_eq!(of_redis(&mut c, &copy), of_value(value), "{key:?} after RESTORE of our payload");
        }
    }
    eprintln!("{identical} payloads byte-identical to Redis's DUMP");
    assert!(identical >= 15, "only {identical} payloads compared byte for byte");
    // Redis refuses a payload whose checksum is wrong with the same text we use.
    select(&mut c, 0);
    let mut bad = dump(&common::string(b"x"), true);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    let Reply::Error(redis_text) = c.cmd(&[&b"RESTORE"[..], b"bad", b"0", &bad]) else { panic!("Redis accepted a bad payload") };
    assert_eq!(redis_text, restore(&bad, &Limits::default()).unwrap_err().to_string());
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn files_written_here_pass_redis_check_rdb_and_load_in_redis() {
    if !redis_available() {
        return;
    }
    let dir = temp_dir("to-redis");
    let fixture = fixture();
    let library = b"#!lua name=shoallib\nredis.register_function('shoalfn', function(keys, args) return 42 end)";
    for compress in [true, false] {
        let path = dir.join(format!("ours-{compress}.rdb"));
        let mut w = Writer::new(std::fs::File::create(&path).unwrap(), &WriterOptions { compress, ..WriterOptions::default() }).unwrap();
        w.function(library).unwrap();
        // Each db's keys in two sections, as two cores would write them: SELECTDB repeats.
        for half in 0..2 {
            for db in [0, 1, 2, 5] {
                let mut chunk = shoal_rdb::Chunk::new(compress);
                chunk.select_db(db);
                for (i, (_, key, value, expire)) in fixture.iter().enumerate().filter(|(i, f)| f.0 == db && i % 2 == half) {
                    chunk.entry(key, value, &EntryMeta { expire_ms: *expire, lru_idle_s: Some(i as u64), lfu_freq: None });
                }
                w.append_chunk(&chunk.finish()).unwrap();
            }
        }
        w.finish().unwrap();

        let check = Command::new("redis-check-rdb").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success() && text.contains("RDB looks OK"), "redis-check-rdb says:\n{text}");

        let server = Server::start(dir.clone(), path.file_name().unwrap().to_str().unwrap());
        let mut c = server.conn();
        for db in [0u64, 1, 2, 5] {
            select(&mut c, db);
            let count = fixture.iter().filter(|f| f.0 == db).count() as i64;
            assert_eq!(c.cmd(&["DBSIZE"]).int(), count, "db {db} size");
        }
        for (db, key, value, expire) in &fixture {
            select(&mut c, *db);
            assert_eq!(of_redis(&mut c, key), of_value(value), "{key:?} loaded by Redis");
            let expire_time = c.cmd(&[&b"PEXPIRETIME"[..], key]).int();
            assert_eq!(expire_time, expire.unwrap_or(-1), "{key:?} expiry in Redis");
        }
        assert_eq!(c.cmd(&["FCALL", "shoalfn", "0"]), Reply::Int(42));
        eprintln!("Redis loaded {} keys from {}", fixture.len(), path.display());
        drop(server);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_file_redis_saved_without_a_checksum_reads_back() {
    if !redis_available() {
        return;
    }
    let dir = temp_dir("no-checksum");
    let server = Server::start_with(dir.clone(), "dump.rdb", &["--rdbchecksum", "no"]);
    let mut c = server.conn();
    c.ok(&["SET", "k", "v"]);
    c.ok(&["RPUSH", "l", "a", "b"]);
    assert_eq!(c.cmd(&["SAVE"]), Reply::Status("OK".into()));
    let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();
    assert_eq!(&bytes[bytes.len() - 8..], &[0; 8], "Redis wrote no checksum");
    let loaded = read_redis_file(&bytes);
    assert_eq!(loaded.get(&(0, b"k".to_vec())).map(|(v, _)| of_value(v)), Some(Contents::Str(b"v".to_vec())));
    assert_eq!(loaded.get(&(0, b"l".to_vec())).map(|(v, _)| of_value(v)), Some(Contents::List(vec![b"a".to_vec(), b"b".to_vec()])));
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

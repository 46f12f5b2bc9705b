//! DEBUG: the subcommands useful for testing a server (SLEEP, OBJECT, SET-ACTIVE-EXPIRE,
//! PROTOCOL, ERROR, LOG, HELP). Like Redis, DEBUG is one table entry that parses its own
//! subcommand. Subcommands that crash or poke allocator internals are not here. RELOAD saves
//! the RDB file, empties the keyspace and loads the file back (`crate::rdb_load`); unlike
//! Redis, not inside MULTI/EXEC.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use shoal_commands::args::{self};
use shoal_commands::errors;
use shoal_resp::Frame;
use shoal_store::value::{parse_canonical_i64, Str};
use shoal_store::{Entry, Value};

use crate::connection::Conn;
use crate::node::{self, Node};
use crate::server_commands::{bulk, help, subcommand_syntax_error};

/// Redis's OBJ_SHARED_INTEGERS: integers below this share one object (refcount INT_MAX).
const SHARED_INTEGERS: i64 = 10_000;
/// Redis's OBJ_SHARED_REFCOUNT.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
/// The longest DEBUG SLEEP we do (a day); Redis has no limit but nobody needs more.
const SLEEP_MAX: Duration = Duration::from_secs(86_400);

const HELP: &[&str] = &[
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, verbatim, true, false.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cache-friendly values are used if <size> is given.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
];

/// DEBUG subcommand [argument ...]
pub async fn debug(node: &Rc<Node>, conn: &Conn, args: &[Bytes]) -> Frame {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("help", 2) => help("DEBUG", HELP),
        ("sleep", 3) => {
            // Only this connection waits: the core goes on serving everyone else.
            glommio::timer::sleep(sleep_duration(&args[2])).await;
            args::ok()
        }
        ("object", 3) => object(node, conn.db, args[2].clone()).await,
        ("populate", 3..=5) => populate(node, conn.db, args).await,
        ("set-active-expire", 3) => {
            let enabled = atoi(&args[2]) != 0;
            node.core.call_all(move |_| node::current().active_expire_enabled.set(enabled)).await;
            args::ok()
        }
        ("protocol", 3) => protocol(&args[2]),
        // The message is the whole error line, as given (Redis's addReplyError).
        ("error", 3) => Frame::Error(args[2].clone()),
        ("log", 3) => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(&args[2]));
            args::ok()
        }
        // RELOAD locks every core; inside EXEC the transaction holds some of them already,
        // so it would wait on itself. Redis runs it there; we refuse it.
        ("reload", _) if conn.in_exec => errors::error("ERR DEBUG RELOAD is not supported inside MULTI/EXEC"),
        ("reload", _) => reload(node, &args[2..]).await,
        _ => subcommand_syntax_error(args),
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves (unless NOSAVE), empties every database
/// (unless NOFLUSH) and loads the file back, with every shard locked meanwhile. The file is
/// the RDB file even under `appendonly yes`, as in Redis. MERGE loads
/// over what is there (a key in the file replaces the one in memory).
async fn reload(node: &Rc<Node>, options: &[Bytes]) -> Frame {
    let (mut save, mut flush) = (true, true);
    for option in options {
        match option.to_ascii_lowercase().as_slice() {
            b"merge" => flush = false,
            b"noflush" => flush = false,
            b"nosave" => save = false,
            _ => return errors::error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options."),
        }
    }
    if save && crate::save::save(node).await.is_err() {
        return errors::error("ERR Error trying to save the RDB file, check server logs.");
    }
    let config = node.config.borrow().clone();
    let mut lock = node.core.lock_everything().await;
    if flush {
        node.core
            .call_all(|core| {
                core.with_shard(|shard| {
                    for db in &mut shard.dbs {
                        drop(db.clear());
                    }
                });
                crate::scripting::flush_libraries();
            })
            .await;
    }
    // The keys go in as a thread reads them: the load holds the dataset and a few MB.
    let startup = crate::rdb_load::start_for_reload(&config, node.core.shard_count);
    let result = crate::rdb_load::install_all(&node.core, startup, false).await;
    // Every key may have changed: WATCH fails and tracking clients flush, as after FLUSHALL
    // (Redis's emptyData signals the flush).
    lock.mark_written();
    lock.end();
    match result {
        Err(e) => {
            tracing::warn!("{e}");
            errors::error("ERR Error trying to load the RDB dump, check server logs.")
        }
        Ok(()) => args::ok(),
    }
}

/// DEBUG POPULATE count [prefix] [size]: creates `prefix:N` = `value:N` (cut or zero-padded
/// to `size` bytes) for N below count, skipping keys that exist, as Redis does. Each core
/// creates the keys it owns. Like every DEBUG subcommand it does not take the transaction
/// layer's locks: it is a tool for tests and benchmarks, not for a live dataset.
async fn populate(node: &Rc<Node>, db: usize, args: &[Bytes]) -> Frame {
    let count = match args::parse_i64(&args[2]) {
        Ok(n) if n >= 0 => n as u64,
        Ok(_) => return errors::error("ERR value is out of range, must be positive"),
        Err(e) => return e,
    };
    let prefix = args.get(3).cloned().unwrap_or_else(|| Bytes::from_static(b"key"));
    let size = match args.get(4).map(|a| args::parse_i64(a)) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(Ok(_)) => return errors::error("ERR value is out of range, must be positive"),
        Some(Err(e)) => return e,
    };
    let now_ms = shoal_runtime::now_ms();
    node.core
        .call_all(move |core| {
            let shard_count = core.shard_count;
            let id = core.id;
            core.with_shard(|shard| {
                let db = &mut shard.dbs[db];
                let mut key = Vec::with_capacity(prefix.len() + 21);
                for n in 0..count {
                    key.clear();
                    key.extend_from_slice(&prefix);
                    key.extend_from_slice(format!(":{n}").as_bytes());
                    if shoal_store::slot::key_shard(&key, shard_count) != id || db.contains(&key, now_ms) {
                        continue;
                    }
                    let mut value = format!("value:{n}").into_bytes();
                    if let Some(size) = size {
                        value.resize(size, 0);
                    }
                    db.set(&key, Value::Str(Str::from_bytes(&value)), now_ms);
                }
            })
        })
        .await;
    args::ok()
}

/// DEBUG SLEEP's argument read as C's `strtod` would: the longest number at the start,
/// 0 when there is none.
fn sleep_duration(arg: &[u8]) -> Duration {
    let text = String::from_utf8_lossy(arg);
    let text = text.trim_start();
    let seconds = (1..=text.len()).rev().filter(|&end| text.is_char_boundary(end)).find_map(|end| text[..end].parse::<f64>().ok()).unwrap_or(0.0);
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).unwrap_or(SLEEP_MAX).min(SLEEP_MAX)
}

/// C's `atoi`: optional spaces and sign, then digits; anything else ends it.
fn atoi(arg: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(arg);
    let text = text.trim_start();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let value = digits.bytes().take_while(u8::is_ascii_digit).fold(0i64, |n, d| n.wrapping_mul(10).wrapping_add((d - b'0') as i64));
    sign * value
}

/// DEBUG OBJECT key: runs on the core that owns the key.
async fn object(node: &Rc<Node>, db: usize, key: Bytes) -> Frame {
    let owner = shoal_store::slot::key_shard(&key, node.core.shard_count);
    let shared_integers = {
        let config = node.config.borrow();
        // Redis stops sharing integers when an LRU or LFU policy needs per-object metadata.
        let policy = config.maxmemory_policy.as_str();
        config.maxmemory == 0 || !(policy.contains("lru") || policy.contains("lfu"))
    };
    let now_ms = shoal_runtime::now_ms();
    let answers = node
        .core
        .call_all(move |core| {
            if core.id != owner {
                return None;
            }
            core.with_shard(|shard| {
                let db = &mut shard.dbs[db];
                db.lookup_quiet(&key, now_ms)?;
                let lru = db.lru(&key).unwrap_or(0);
                db.lookup_quiet(&key, now_ms).map(|entry| describe(entry, lru, now_ms, shared_integers))
            })
        })
        .await;
    match answers.into_iter().flatten().next() {
        Some(line) => Frame::Simple(Bytes::from(line)),
        None => errors::error(errors::NO_SUCH_KEY),
    }
}

/// DEBUG OBJECT's line for one entry, in Redis's format.
fn describe(entry: &Entry, lru: u32, now_ms: u64, shared_integers: bool) -> String {
    let refcount = match &entry.value {
        Value::Str(Str::Int(n)) if shared_integers && (0..SHARED_INTEGERS).contains(n) => SHARED_REFCOUNT,
        _ => 1,
    };
    format!(
        "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
        entry as *const Entry,
        entry.value.encoding_name(),
        serialized_length(&entry.value),
        lru,
        shoal_store::db::idle_seconds(lru, now_ms),
    )
}

/// The bytes the value takes in an RDB file (Redis's `rdbSavedObjectLen`). LZF compression
/// (strings over 20 bytes with `rdbcompression yes`) is not modelled: such strings report
/// their uncompressed size.
fn serialized_length(value: &Value) -> usize {
    match value {
        Value::Str(Str::Int(n)) => rdb_int_length(*n).unwrap_or_else(|| string_length(n.to_string().as_bytes())),
        Value::Str(s) => s.with_bytes(string_length),
        // The RDB encodings of collections come with the RDB writer (issue 5); until then
        // DEBUG OBJECT reports 0 for them.
        Value::List(_) | Value::Hash(_) | Value::Set(_) | Value::ZSet(_) | Value::Stream(_) => 0,
    }
}

/// An RDB string: an integer encoding when it is a short canonical integer that fits 32
/// bits, else its length then its bytes.
fn string_length(bytes: &[u8]) -> usize {
    if bytes.len() <= 11 {
        if let Some(length) = parse_canonical_i64(bytes).and_then(rdb_int_length) {
            return length;
        }
    }
    rdb_length_length(bytes.len() as u64) + bytes.len()
}

/// The RDB integer encodings: a type byte then 1, 2 or 4 bytes.
fn rdb_int_length(n: i64) -> Option<usize> {
    if (-(1 << 7)..1 << 7).contains(&n) {
        Some(2)
    } else if (-(1 << 15)..1 << 15).contains(&n) {
        Some(3)
    } else if (-(1 << 31)..1 << 31).contains(&n) {
        Some(5)
    } else {
        None
    }
}

/// The bytes of an RDB length prefix.
fn rdb_length_length(len: u64) -> usize {
    if len < 1 << 6 {
        1
    } else if len < 1 << 14 {
        2
    } else if len <= u32::MAX as u64 {
        5
    } else {
        9
    }
}

/// DEBUG PROTOCOL type: a sample reply of each RESP type, as Redis sends them.
#[allow(clippy::approx_constant, reason = "Redis sends 3.141, not pi")]
fn protocol(kind: &[u8]) -> Frame {
    let kind = String::from_utf8_lossy(kind).to_ascii_lowercase();
    match kind.as_str() {
        "string" => bulk("Hello World"),
        "integer" => Frame::Integer(12345),
        "double" => Frame::Double(3.141),
        "bignum" => Frame::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999")),
        "null" => Frame::Null,
        "array" => Frame::Array((0..3).map(Frame::Integer).collect()),
        "set" => Frame::Set((0..3).map(Frame::Integer).collect()),
        "map" => Frame::Map((0..3).map(|j| (Frame::Integer(j), Frame::Boolean(j == 1))).collect()),
        "verbatim" => Frame::Verbatim { format: *b"txt", text: Bytes::from_static(b"This is a verbatim\nstring") },
        "true" => Frame::Boolean(true),
        "false" => Frame::Boolean(false),
        // Shoal's replies cannot carry RESP3 attributes or out-of-band pushes yet.
        "attrib" | "push" => errors::error(&format!("ERR DEBUG PROTOCOL {kind} is not supported yet")),
        _ => errors::error(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_resp::{encode, Protocol};

    fn resp2(frame: &Frame) -> String {
        let mut out = bytes::BytesMut::new();
        encode(frame, Protocol::Resp2, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn serialized_length_matches_redis_for_strings() {
        let length = |s: &str| serialized_length(&Value::Str(Str::from_bytes(s.as_bytes())));
        assert_eq!(length("5"), 2);
        assert_eq!(length("50000"), 5);
        assert_eq!(length("hello"), 6);
        assert_eq!(length("-129"), 3);
        assert_eq!(length("12345678901"), 12, "beyond 32 bits: a plain string");
        assert_eq!(length(&"x".repeat(64)), 66);
    }

    #[test]
    fn describe_prints_redis_s_fields() {
        let entry = Entry::new(Value::Str(Str::from_bytes(b"5")));
        let line = describe(&entry, 1_000, 1_003_500, true);
        assert!(line.starts_with("Value at:0x"), "{line}");
        assert!(line.ends_with(" refcount:2147483647 encoding:int serializedlength:2 lru:1000 lru_seconds_idle:3"), "{line}");
        let line = describe(&entry, 1_000, 1_003_500, false);
        assert!(line.contains(" refcount:1 "), "{line}");
        let entry = Entry::new(Value::Str(Str::from_bytes(b"hello")));
        assert!(describe(&entry, 0, 0, true).contains(" refcount:1 encoding:embstr serializedlength:6 "));
    }

    #[test]
    fn protocol_samples_downgrade_like_redis_in_resp2() {
        assert_eq!(resp2(&protocol(b"map")), "*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n");
        assert_eq!(resp2(&protocol(b"STRING")), "$11\r\nHello World\r\n");
        assert_eq!(resp2(&protocol(b"true")), ":1\r\n");
        assert_eq!(
            resp2(&protocol(b"foo")),
            "-ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false\r\n"
        );
    }

    #[test]
    fn sleep_and_set_active_expire_read_numbers_like_c() {
        assert_eq!(sleep_duration(b"0"), Duration::ZERO);
        assert_eq!(sleep_duration(b"abc"), Duration::ZERO);
        assert_eq!(sleep_duration(b"0.25"), Duration::from_millis(250));
        assert_eq!(sleep_duration(b"1.5s"), Duration::from_millis(1500));
        assert_eq!(sleep_duration(b"-3"), Duration::ZERO);
        assert_eq!(sleep_duration(b"1e30"), SLEEP_MAX);
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"0"), 0);
        assert_eq!(atoi(b"yes"), 0);
        assert_eq!(atoi(b" 12x"), 12);
        assert_eq!(atoi(b"-2"), -2);
    }
}

//! The append-only file against the real binaries: every write acknowledged under
//! `appendfsync always` survives `kill -9` (several seeds, writers on every core, cross-core
//! commands, transactions and scripts); `everysec` loses at most about a second; the files
//! pass `redis-check-aof` and load into redis-server with the same contents, and Redis's own
//! AOF loads into Shoal; a truncated tail is trimmed or refused per `aof-load-truncated`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shoal_testkit::{need, Raw, Server};
use shoal_tests::{connect, Tmpfs, THREADS};

const ALWAYS: &[&str] = &["--save", "", "--appendonly", "yes", "--appendfsync", "always"];

fn check_aof(dir: &Path) {
    if !need("redis-check-aof") {
        return;
    }
    let manifest = dir.join("appendonlydir").join("appendonly.aof.manifest");
    let output = Command::new("redis-check-aof").arg(&manifest).output().expect("run redis-check-aof");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && text.contains("are valid"), "redis-check-aof refused {manifest:?}:\n{text}");
}

/// What writers had acknowledged when the server was killed.
#[derive(Default)]
struct Acked {
    /// (key, value) of SETs acknowledged; later ones for the same key win.
    sets: Vec<(String, String)>,
    /// Counter key -> INCRs acknowledged.
    incrs: std::collections::HashMap<String, i64>,
    /// Groups written by one MSET or one EXEC: all present or none.
    groups: Vec<Vec<(String, String)>>,
}

fn run_writers(server: &Server, seed: u64, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Acked>> {
    (0..4)
        .map(|w| {
            let url = server.url();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Acked::default();
                let Ok(client) = redis::Client::open(url) else { return acked };
                let Ok(mut con) = client.get_connection() else { return acked };
                let _ = con.set_read_timeout(Some(Duration::from_secs(5)));
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed * 10 + w);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let result: redis::RedisResult<()> = match rng.random_range(0..4) {
                        0 => {
                            let (key, value) = (format!("set:{w}:{}", rng.random_range(0..200)), format!("{n}"));
                            redis::cmd("SET").arg(&key).arg(&value).query(&mut con).map(|()| acked.sets.push((key, value)))
                        }
                        1 => {
                            let key = format!("counter:{}", rng.random_range(0..16));
                            redis::cmd("INCR").arg(&key).query::<i64>(&mut con).map(|_| *acked.incrs.entry(key).or_default() += 1)
                        }
                        2 => {
                            // Keys on different cores: one cross-core MSET.
                            let group: Vec<(String, String)> = (0..4).map(|i| (format!("mset:{w}:{n}:{i}"), format!("{n}"))).collect();
                            let mut cmd = redis::cmd("MSET");
                            for (k, v) in &group {
                                cmd.arg(k).arg(v);
                            }
                            cmd.query(&mut con).map(|()| acked.groups.push(group))
                        }
                        _ => {
                            let group: Vec<(String, String)> = (0..3).map(|i| (format!("exec:{w}:{n}:{i}"), format!("{n}"))).collect();
                            let mut pipe = redis::pipe();
                            pipe.atomic();
                            for (k, v) in &group {
                                pipe.cmd("SET").arg(k).arg(v).ignore();
                            }
                            pipe.query::<()>(&mut con).map(|()| acked.groups.push(group))
                        }
                    };
                    if let Err(e) = result {
                        eprintln!("writer {w} stops after {n} requests: {e}");
                        break;
                    }
                }
                acked
            })
        })
        .collect()
}

/// Asserts every acknowledged SET (its value, or a later one sent but not answered) and every
/// acknowledged group is there; returns how many keys it checked.
fn assert_acknowledged_present(con: &mut redis::Connection, acked: &[Acked], seed: u64) -> usize {
    let mut checked = 0;
    for acked in acked {
        let mut last = std::collections::HashMap::new();
        for (key, value) in &acked.sets {
            last.insert(key.clone(), value.parse::<u64>().unwrap());
        }
        for (key, value) in last {
            let got: Option<u64> = redis::cmd("GET").arg(&key).query(con).unwrap();
            assert!(got.is_some_and(|got| got >= value), "seed {seed}: {key} = {got:?}, acknowledged {value}");
            checked += 1;
        }
        for group in &acked.groups {
            for (key, value) in group {
                let got: Option<String> = redis::cmd("GET").arg(key).query(con).unwrap();
                assert_eq!(got.as_deref(), Some(value.as_str()), "seed {seed}: {key} of an acknowledged group");
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn every_write_acknowledged_under_always_survives_kill_9() {
    for seed in 1..=5u64 {
        // Even seeds run one core, whose writer writes and fsyncs with blocking calls.
        let threads = if seed % 2 == 0 { 1 } else { THREADS };
        let dir = Server::scratch("aof-kill");
        let server = Server::start_in(&dir, threads, ALWAYS);
        let stop = Arc::new(AtomicBool::new(false));
        let writers = run_writers(&server, seed, stop.clone());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
        server.signal("KILL");
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        drop(server);
        check_aof(&dir);

        let restarted = Server::start_in(&dir, threads, ALWAYS);
        let mut con = connect(&restarted);
        let checked = assert_acknowledged_present(&mut con, &acked, seed);
        for key in (0..16).map(|i| format!("counter:{i}")) {
            let sum: i64 = acked.iter().map(|a| a.incrs.get(&key).copied().unwrap_or(0)).sum();
            let got: Option<i64> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
            // At most one unanswered INCR per writer may have landed too.
            assert!((sum..=sum + 4).contains(&got.unwrap_or(0)), "seed {seed}: {key} = {got:?}, acknowledged {sum}");
        }
        assert!(checked > 50, "seed {seed}: the writers got going ({checked} checks)");
        // No group is half there, acknowledged or not.
        let keys: Vec<String> = redis::cmd("KEYS").arg("mset:*").query(&mut con).unwrap();
        let mut groups = std::collections::HashMap::<String, usize>::new();
        for key in keys {
            let prefix = key.rsplit_once(':').unwrap().0.to_owned();
            *groups.entry(prefix).or_default() += 1;
        }
        assert!(groups.values().all(|&n| n == 4), "seed {seed}: every MSET all or nothing: {groups:?}");
        drop(con);
        drop(restarted);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn everysec_loses_at_most_about_a_second_of_writes() {
    let dir = Server::scratch("aof-everysec");
    let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut con = connect(&server);
    let started = Instant::now();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut i = 0u64;
    while started.elapsed() < Duration::from_millis(2500) {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut con).unwrap();
        acked.lock().unwrap().push((i, started.elapsed()));
        i += 1;
    }
    server.signal("KILL");
    let killed_at = started.elapsed();
    drop(con);
    drop(server);
    let restarted = Server::start_in(&dir, THREADS, &["--save", "", "--appendonly", "yes"]);
    let mut con = connect(&restarted);
    let acked = acked.lock().unwrap();
    // Every write acknowledged more than two seconds before the kill is there.
    let mut missing = 0;
    for (i, at) in acked.iter() {
        let there: bool = redis::cmd("EXISTS").arg(format!("k{i}")).query(&mut con).unwrap();
        if !there {
            missing += 1;
            assert!(killed_at.saturating_sub(*at) < Duration::from_secs(2), "k{i}, acknowledged {:?} before the kill, was lost", killed_at - *at);
        }
    }
    eprintln!("everysec: {missing} of {} acknowledged writes lost to kill -9", acked.len());
    drop(con);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_loads_our_aof_and_we_load_redis_aof_with_the_same_contents() {
    let dir = Server::scratch("aof-interop");
    let shoal = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = connect(&shoal);
    let commands: &[&[&str]] = &[
        &["SET", "s", "v", "EX", "10000"],
        &["MSET", "a", "1", "b", "2", "c", "3"],
        &["INCRBYFLOAT", "f", "1.25"],
        &["RPUSH", "l", "x", "y", "z"],
        &["LPOP", "l"],
        &["SADD", "set", "1", "2", "3", "4"],
        &["SPOP", "set", "2"],
        &["HSET", "h", "f1", "v1", "f2", "v2"],
        &["HINCRBYFLOAT", "h", "n", "0.5"],
        &["ZADD", "z", "1", "m1", "2", "m2"],
        &["SELECT", "5"],
        &["SET", "in5", "yes"],
        &["RENAME", "in5", "moved"],
        &["SELECT", "0"],
        &["EXPIRE", "a", "5000"],
        &["DEL", "c"],
    ];
    for command in commands {
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd.query(&mut con).unwrap();
    }
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let snapshot = |con: &mut redis::Connection| -> Vec<String> {
        let mut out = Vec::new();
        for db in [0, 5] {
            let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
            let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
            keys.sort();
            for key in keys {
                let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(con).unwrap();
                let ttl: i64 = redis::cmd("TTL").arg(&key).query(con).unwrap();
                let kind: String = redis::cmd("TYPE").arg(&key).query(con).unwrap();
                let value: String = match kind.as_str() {
                    "string" => redis::cmd("GET").arg(&key).query(con).unwrap(),
                    "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query::<Vec<String>>(con).unwrap().join(","),
                    "set" => {
                        let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query(con).unwrap();
                        m.sort();
                        m.join(",")
                    }
                    "hash" => {
                        let mut m: Vec<String> = redis::cmd("HGETALL").arg(&key).query::<Vec<String>>(con).unwrap();
                        m.sort();
                        m.join(",")
                    }
                    _ => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query::<Vec<String>>(con).unwrap().join(","),
                };
                let _ = dump;
                out.push(format!("{db} {key} {kind} {value} ttl:{}", ttl > 0));
            }
        }
        out
    };
    let ours = snapshot(&mut con);
    drop(con);
    drop(shoal);
    check_aof(&dir);
    if let Some(redis) = Server::start_redis_in(&dir, &["--appendonly", "yes"]) {
        let mut con = connect(&redis);
        assert_eq!(snapshot(&mut con), ours, "redis-server replays our AOF to the same data");
        // And the other way: Redis writes on top (its own incr file after ours), we load it.
        let _: () = redis::cmd("SET").arg("from-redis").arg("1").query(&mut con).unwrap();
        let _: () = redis::cmd("BGREWRITEAOF").query::<String>(&mut con).map(|_| ()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let theirs = snapshot(&mut con);
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut con);
        drop(redis);
        let shoal = Server::start_in(&dir, THREADS, ALWAYS);
        let mut con = connect(&shoal);
        assert_eq!(snapshot(&mut con), theirs, "Shoal loads Redis's rewritten AOF (RDB base and incr)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_tail_is_trimmed_when_allowed_and_refused_otherwise() {
    let dir = Server::scratch("aof-truncated");
    let shoal = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["SET", "kept", "1"]).unwrap(), "+OK\r\n");
    drop(raw);
    shoal.signal("KILL");
    drop(shoal);
    let incr = dir.join("appendonlydir").join("appendonly.aof.1.incr.aof");
    let mut bytes = std::fs::read(&incr).unwrap();
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1");
    std::fs::write(&incr, &bytes).unwrap();
    // Refused without aof-load-truncated.
    let output = Command::new(shoal_testkit::server_binary())
        .args([
            "--port",
            &shoal_testkit::free_port().to_string(),
            "--threads",
            "2",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--aof-load-truncated",
            "no",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."),
        "Redis's message: {log}"
    );
    // Trimmed with it (the default).
    let shoal = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["GET", "kept"]).unwrap(), "$1\r\n1\r\n");
    assert_eq!(raw.command(&["EXISTS", "lost"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["SET", "after", "1"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(shoal);
    check_aof(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scripts_and_transactions_replay_from_the_log() {
    let dir = Server::scratch("aof-scripts");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = connect(&server);
    // A script over keys of several cores, and one over a single key.
    let script = "for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1]) redis.call('INCR', key .. ':n') end return #KEYS";
    let n: i64 = redis::cmd("EVAL").arg(script).arg(4).arg("s1").arg("s2").arg("s3").arg("s4").arg("v").query(&mut con).unwrap();
    assert_eq!(n, 4);
    let n: i64 = redis::cmd("EVAL").arg(script).arg(1).arg("{t}one").arg("w").query(&mut con).unwrap();
    assert_eq!(n, 1);
    // A transaction mixing cores and databases, with a failing command inside.
    let replies: Vec<redis::Value> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("m1")
        .arg("a")
        .cmd("INCR")
        .arg("m1")
        .cmd("RPUSH")
        .arg("m2")
        .arg("x")
        .cmd("SELECT")
        .arg(2)
        .cmd("SET")
        .arg("m3")
        .arg("in2")
        .query(&mut con)
        .unwrap_or_default();
    let _ = replies;
    drop(con);
    server.signal("KILL");
    drop(server);
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    for key in ["s1", "s2", "s3", "s4"] {
        assert_eq!(raw.command(&["GET", key]).unwrap(), "$1\r\nv\r\n", "{key}");
        assert_eq!(raw.command(&["GET", &format!("{key}:n")]).unwrap(), "$1\r\n1\r\n");
    }
    assert_eq!(raw.command(&["GET", "{t}one"]).unwrap(), "$1\r\nw\r\n");
    assert_eq!(raw.command(&["GET", "m1"]).unwrap(), "$1\r\na\r\n", "the INCR failed, the SET stayed");
    assert_eq!(raw.command(&["LRANGE", "m2", "0", "-1"]).unwrap(), "*1\r\n$1\r\nx\r\n");
    assert_eq!(raw.command(&["SELECT", "2"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["GET", "m3"]).unwrap(), "$3\r\nin2\r\n");
    drop(raw);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_and_set_and_delete_replay_from_the_log_as_plain_set_and_del() {
    let dir = Server::scratch("aof-compare");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = connect(&server);
    let values = ["plain", "12345", "", "with \r\n and \0 bytes"];
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        let _: () = redis::cmd("SET").arg(&key).arg(*value).query(&mut con).unwrap();
        // DIGEST is the digest clients compute (XXH3, as the redis crate's helper).
        let digest: String = redis::cmd("DIGEST").arg(&key).query(&mut con).unwrap();
        assert_eq!(digest, redis::calculate_value_digest(*value), "{value:?}");
        let set: Option<String> = redis::cmd("SET").arg(&key).arg("next").arg("IFDEQ").arg(digest.to_uppercase()).query(&mut con).unwrap();
        assert_eq!(set.as_deref(), Some("OK"));
    }
    // Written only where the condition held; the value "ex" is no expiry.
    let set: Option<String> = redis::cmd("SET").arg("k0").arg("third").arg("IFEQ").arg("ex").arg("EX").arg(100).query(&mut con).unwrap();
    assert_eq!(set, None);
    let set: Option<String> = redis::cmd("SET").arg("k0").arg("third").arg("IFNE").arg("ex").arg("EX").arg(100).query(&mut con).unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let removed: Vec<i64> = ["IFEQ", "IFNE"].iter().map(|test| redis::cmd("DELEX").arg("k1").arg(*test).arg("next").query(&mut con).unwrap()).collect();
    assert_eq!(removed, [1, 0]);
    let removed: i64 = redis::cmd("DELEX").arg("k2").query(&mut con).unwrap();
    assert_eq!(removed, 1);
    drop(con);
    server.signal("KILL");
    drop(server);
    // The log holds SET and DEL, which redis-check-aof and Redis 7 know.
    let log = incr_file(&dir);
    assert!(!log.contains("IFEQ") && !log.contains("IFDEQ") && !log.contains("DELEX"), "{log}");
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    assert_eq!(raw.command(&["GET", "k0"]).unwrap(), "$5\r\nthird\r\n");
    let ttl: i64 = raw.command(&["TTL", "k0"]).unwrap().trim_start_matches(':').trim().parse().unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    assert_eq!(raw.command(&["EXISTS", "k1", "k2"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["GET", "k3"]).unwrap(), "$4\r\nnext\r\n");
    drop(raw);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The incremental file's contents.
fn incr_file(dir: &Path) -> String {
    let aof_dir = dir.join("appendonlydir");
    let incr =
        std::fs::read_dir(&aof_dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(".incr.aof")).expect("an incremental file");
    String::from_utf8_lossy(&std::fs::read(incr).unwrap()).into_owned()
}

#[test]
fn a_script_inside_exec_is_logged_inside_the_exec_body_as_redis_logs_it() {
    // Keys of different cores around a script over keys of two more (one tag each).
    let requests: &[&[&str]] = &[
        &["MULTI"],
        &["SET", "{a}x", "1"],
        &["EVAL", "redis.call('SET', KEYS[1], 'l1') redis.call('INCR', KEYS[2]) return 1", "2", "{b}y", "{c}z"],
        &["SET", "{d}w", "2"],
        &["EXEC"],
    ];
    let run = |server: &Server| {
        let mut raw = server.raw();
        for request in requests {
            raw.command(request).unwrap();
        }
        assert_eq!(raw.command(&["GET", "{c}z"]).unwrap(), "$1\r\n1\r\n");
    };
    let dir = Server::scratch("aof-script-in-exec");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    run(&server);
    server.signal("KILL");
    drop(server);
    let ours = incr_file(&dir);
    let body = "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$4\r\n{a}x\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$4\r\n{b}y\r\n$2\r\nl1\r\n\
                *2\r\n$4\r\nINCR\r\n$4\r\n{c}z\r\n*3\r\n$3\r\nSET\r\n$4\r\n{d}w\r\n$1\r\n2\r\n*1\r\n$4\r\nEXEC\r\n";
    assert!(ours.ends_with(body), "the script's writes are inside the EXEC body, in order: {ours:?}");
    assert_eq!(ours.matches("MULTI").count(), 1, "one body: {ours:?}");
    // The replay restores every write.
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    for (key, value) in [("{a}x", "1"), ("{b}y", "l1"), ("{c}z", "1"), ("{d}w", "2")] {
        assert_eq!(raw.command(&["GET", key]).unwrap(), format!("${}\r\n{value}\r\n", value.len()), "{key}");
    }
    drop(raw);
    drop(restarted);
    // Redis logs the same body.
    let redis_dir = Server::scratch("aof-script-in-exec-redis");
    if let Some(redis) = Server::start_redis_in(&redis_dir, &["--appendonly", "yes", "--appendfsync", "always"]) {
        run(&redis);
        drop(redis);
        let theirs = incr_file(&redis_dir);
        assert!(theirs.ends_with(body), "redis-server's body: {theirs:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&redis_dir);
}

#[test]
fn served_blocking_pops_and_functions_replay_from_the_log() {
    let dir = Server::scratch("aof-blocking");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    // Served at once, from a list that has elements.
    assert_eq!(raw.command(&["RPUSH", "q", "a", "b", "c"]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["BLPOP", "q", "0"]).unwrap(), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(raw.command(&["BLMPOP", "0", "2", "none", "q", "RIGHT", "COUNT", "5"]).unwrap(), "*2\r\n$1\r\nq\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
    // Served after waiting, by a push from another client.
    let mut waiter = server.raw();
    waiter.send(&shoal_testkit::Raw::encode(&["BZPOPMIN", "z", "0"]));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(raw.command(&["ZADD", "z", "1", "one", "2", "two"]).unwrap(), ":2\r\n");
    assert_eq!(waiter.read_reply().unwrap(), "*3\r\n$1\r\nz\r\n$3\r\none\r\n$1\r\n1\r\n");
    let library = "#!lua name=lib\nredis.register_function('f', function(keys, args) return 7 end)";
    assert_eq!(raw.command(&["FUNCTION", "LOAD", library]).unwrap(), "$3\r\nlib\r\n");
    drop(waiter);
    drop(raw);
    server.signal("KILL");
    drop(server);
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    assert_eq!(raw.command(&["EXISTS", "q"]).unwrap(), ":0\r\n", "the popped elements stay popped");
    assert_eq!(raw.command(&["ZRANGE", "z", "0", "-1"]).unwrap(), "*1\r\n$3\r\ntwo\r\n");
    assert_eq!(raw.command(&["FCALL", "f", "0"]).unwrap(), ":7\r\n", "functions survive a restart");
    drop(raw);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn increx_replays_from_the_log_with_its_value_and_ttl() {
    let dir = Server::scratch("aof-increx");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    let requests: &[&[&str]] = &[
        &["INCREX", "counter", "BYINT", "5", "EX", "100", "ENX"],
        &["INCREX", "counter", "BYINT", "5", "EX", "1", "ENX"],
        &["INCREX", "capped", "BYINT", "50", "UBOUND", "20", "SATURATE"],
        &["SET", "f", "10.5", "EX", "100"],
        &["INCREX", "f", "BYFLOAT", "0.1"],
        &["INCREX", "gone", "EXAT", "1"],
        &["SET", "kept", "1", "EX", "100"],
        &["INCREX", "kept", "PERSIST"],
    ];
    for request in requests {
        raw.command(request).unwrap();
    }
    // A RESP3 client's float reply is a double; the log must still hold the exact value.
    let mut resp3 = server.raw();
    resp3.command(&["HELLO", "3"]).unwrap();
    assert_eq!(resp3.command(&["INCREX", "g", "BYFLOAT", "10.5"]).unwrap(), "*2\r\n,10.5\r\n,10.5\r\n");
    // (The increment prints as the double nearest 0.1, `%.17g` as Shoal prints doubles.)
    assert!(resp3.command(&["INCREX", "g", "BYFLOAT", "0.1", "PX", "100000"]).unwrap().starts_with("*2\r\n,10.6\r\n,0.1"));
    let state = |raw: &mut Raw| -> Vec<String> {
        ["counter", "capped", "f", "g", "gone", "kept"]
            .iter()
            .flat_map(|key| {
                let ttl = raw.command(&["TTL", key]).unwrap();
                let ttl = if ttl.starts_with(":-") { ttl } else { "ttl".to_string() };
                [raw.command(&["GET", key]).unwrap(), ttl]
            })
            .collect()
    };
    let before = state(&mut raw);
    assert_eq!(before[..4], ["$2\r\n10\r\n", "ttl", "$2\r\n20\r\n", ":-1\r\n"]);
    drop(raw);
    drop(resp3);
    server.signal("KILL");
    drop(server);
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    assert_eq!(state(&mut raw), before);
    drop(raw);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lmovem_and_served_blmovem_replay_from_the_log() {
    let dir = Server::scratch("aof-lmovem");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let (a, b) = keys_on_two_cores("movem");
    let mut raw = server.raw();
    assert_eq!(raw.command(&["RPUSH", &a, "1", "2", "3", "4", "5"]).unwrap(), ":5\r\n");
    // Across cores, and served at once with COUNT (logged as EXACTLY what it moved).
    raw.command(&["LMOVEM", &a, &b, "LEFT", "LEFT", "COUNT", "2", "OBO"]).unwrap();
    raw.command(&["BLMOVEM", &a, &b, "RIGHT", "RIGHT", "0", "COUNT", "9", "BULK"]).unwrap();
    // Served after waiting.
    let mut waiter = server.raw();
    waiter.send(&shoal_testkit::Raw::encode(&["BLMOVEM", &a, &b, "LEFT", "LEFT", "0", "EXACTLY", "2", "BULK"]));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(raw.command(&["RPUSH", &a, "x"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["RPUSH", &a, "y", "z"]).unwrap(), ":3\r\n");
    assert_eq!(waiter.read_reply().unwrap(), "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
    let before = raw.command(&["LRANGE", &b, "0", "-1"]).unwrap();
    assert_eq!(before, "*7\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n");
    drop(waiter);
    drop(raw);
    server.signal("KILL");
    drop(server);
    let log = incr_file(&dir);
    assert!(!log.contains("BLMOVEM") && log.matches("EXACTLY").count() == 2, "{log}");
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    assert_eq!(raw.command(&["LRANGE", &b, "0", "-1"]).unwrap(), before);
    assert_eq!(raw.command(&["LRANGE", &a, "0", "-1"]).unwrap(), "*1\r\n$1\r\nz\r\n");
    drop(raw);
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgrewriteaof_makes_a_new_base_while_writes_go_on_and_the_result_loads_everywhere() {
    let dir = Server::scratch("aof-rewrite");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = connect(&server);
    let _: () = redis::cmd("DEBUG").arg("POPULATE").arg(20_000).arg("key").arg(50).query(&mut con).unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("SET").arg(format!("before:{i}")).arg(i).query(&mut con).unwrap();
    }
    let reply: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    assert_eq!(reply, "Background append only file rewriting started");
    // Writes during the rewrite land in the new incremental file.
    for i in 0..200 {
        let _: () = redis::cmd("SET").arg(format!("during:{i}")).arg(i).query(&mut con).unwrap();
        let _: () = redis::cmd("DEL").arg(format!("before:{i}")).query::<i64>(&mut con).map(|_| ()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut con).unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1") {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            break;
        }
        assert!(Instant::now() < deadline, "the rewrite did not finish: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _: () = redis::cmd("SET").arg("after").arg("1").query(&mut con).unwrap();
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    drop(con);
    server.signal("KILL");
    drop(server);
    let manifest = std::fs::read_to_string(dir.join("appendonlydir").join("appendonly.aof.manifest")).unwrap();
    assert!(manifest.contains("appendonly.aof.2.base.rdb seq 2 type b") || manifest.contains(".base.rdb"), "{manifest}");
    assert_eq!(manifest.lines().filter(|l| l.contains("type i")).count(), 1, "the old incremental file is gone: {manifest}");
    assert!(!dir.join("appendonlydir").join("appendonly.aof.1.incr.aof").exists(), "history deleted");
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = connect(&restarted);
    let got: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(got, size);
    let during: Option<String> = redis::cmd("GET").arg("during:199").query(&mut con).unwrap();
    assert_eq!(during.as_deref(), Some("199"));
    let before: bool = redis::cmd("EXISTS").arg("before:0").query(&mut con).unwrap();
    assert!(!before, "deleted during the rewrite");
    drop(con);
    drop(restarted);
    if let Some(redis) = Server::start_redis_in(&dir, &["--appendonly", "yes"]) {
        let mut con = connect(&redis);
        let got: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(got, size, "redis-server loads the rewritten AOF");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_set_appendonly_at_run_time_rewrites_the_data_there_and_logs_from_then_on() {
    let dir = Server::scratch("aof-config-set");
    let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendfsync", "always"]);
    let mut raw = server.raw();
    for i in 0..50 {
        assert_eq!(raw.command(&["SET", &format!("old:{i}"), "1"]).unwrap(), "+OK\r\n");
    }
    assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "yes"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["MSET", "new:a", "1", "new:b", "2", "new:c", "3"]).unwrap(), "+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !raw.command(&["INFO", "persistence"]).unwrap().contains("aof_rewrites:1") {
        assert!(Instant::now() < deadline, "the rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("aof_enabled:1"));
    assert_eq!(raw.command(&["SET", "last", "1"]).unwrap(), "+OK\r\n");
    drop(raw);
    server.signal("KILL");
    drop(server);
    check_aof(&dir);
    let restarted = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = restarted.raw();
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":54\r\n", "the data from before, the MSET and the last SET");
    // Off: writes are no longer logged.
    assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "no"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SET", "unlogged", "1"]).unwrap(), "+OK\r\n");
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("aof_enabled:0"));
    drop(raw);
    restarted.signal("KILL");
    drop(restarted);
    let again = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = again.raw();
    assert_eq!(raw.command(&["EXISTS", "unlogged"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":54\r\n");
    drop(raw);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CONFIG SET appendonly yes while writers run on every core (cross-core MSETs and EXECs
/// among them): once its rewrite is done, every write acknowledged before or after it
/// survives a kill -9, each group whole. A write that ran before the rewrite's cut is in the
/// base; one after it must be in the log, including a cross-core one that was on its way
/// when the log turned on (see `Core::acquire_write`).
#[test]
fn writes_acknowledged_while_the_log_turns_on_survive_kill_9() {
    for seed in 1..=3u64 {
        let dir = Server::scratch("aof-turn-on");
        let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendonly", "no", "--appendfsync", "always"]);
        let stop = Arc::new(AtomicBool::new(false));
        let writers = run_writers(&server, seed, stop.clone());
        std::thread::sleep(Duration::from_millis(150));
        let mut raw = server.raw();
        assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "yes"]).unwrap(), "+OK\r\n");
        wait_for_rewrites(&mut raw, 1);
        std::thread::sleep(Duration::from_millis(150));
        server.signal("KILL");
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        drop(raw);
        drop(server);
        check_aof(&dir);
        let restarted = Server::start_in(&dir, THREADS, ALWAYS);
        let mut con = connect(&restarted);
        let checked = assert_acknowledged_present(&mut con, &acked, seed);
        assert!(checked > 50, "seed {seed}: the writers got going ({checked} checks)");
        drop(con);
        drop(restarted);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The log turned off and on again under `appendfsync always`: the second writer goes on
/// from where the first one's counts stopped, so CONFIG SET and the writes after it answer
/// (they waited for ever when a new writer counted from zero), and those writes survive a
/// kill -9 wherever the rewrite that CONFIG SET started stands (the write made while the log
/// was off is in the files only once that rewrite is done). The last round slows the
/// writer's open of its file, so the rewrite that CONFIG SET starts would finish and delete
/// that file first unless the rewrite waits for the open (CONFIG SET hung so under load).
#[test]
fn the_log_turned_off_and_on_again_under_always_keeps_answering_and_logging() {
    for (wait_ms, open_delay) in [(0, "0"), (5, "0"), (30, "0"), (0, "300")] {
        let dir = Server::scratch("aof-off-on");
        let server = Server::start_in_with_env(&dir, THREADS, ALWAYS, &[("SHOAL_TEST_AOF_OPEN_DELAY_MS", open_delay)]);
        let mut raw = server.raw();
        raw.set_read_timeout(Duration::from_secs(20));
        for key in ["a", "b", "c", "d"] {
            assert_eq!(raw.command(&["SET", key, "1"]).unwrap(), "+OK\r\n");
        }
        assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "no"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "while-off", "1"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "yes"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["MSET", "after:a", "1", "after:b", "2", "after:c", "3"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "last", "1"]).unwrap(), "+OK\r\n");
        std::thread::sleep(Duration::from_millis(wait_ms));
        drop(raw);
        server.signal("KILL");
        drop(server);
        check_aof(&dir);
        let restarted = Server::start_in(&dir, THREADS, ALWAYS);
        let mut raw = restarted.raw();
        let reply = raw.command(&["MGET", "a", "b", "c", "d", "after:a", "after:b", "after:c", "last"]).unwrap();
        assert_eq!(
            reply, "*8\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n1\r\n",
            "killed {wait_ms} ms after the writes, open delayed {open_delay} ms"
        );
        drop(raw);
        drop(restarted);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_full_disk_refuses_writes_with_misconf_keeps_reads_and_recovers_when_space_returns() {
    let Some(disk) = Tmpfs::mount("4m") else { return };
    // Most of the space taken, so the log fills the rest soon.
    std::fs::write(disk.0.join("filler"), vec![0u8; 3 << 20]).unwrap();
    let server = Server::start_in(&disk.0, THREADS, &["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut raw = server.raw();
    let value = "x".repeat(8192);
    let mut refused = None;
    for i in 0..2000 {
        let reply = raw.command(&["SET", &format!("k{i}"), &value]).unwrap();
        if reply != "+OK\r\n" {
            refused = Some(reply);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let refused = refused.expect("the disk filled up");
    assert_eq!(refused, "-MISCONF Errors writing to the AOF file: No space left on device\r\n");
    assert_eq!(raw.command(&["GET", "k0"]).unwrap().len(), 8192 + 9, "reads still work");
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("aof_last_write_status:err"));
    // Space comes back: the writer's retry succeeds and writes are accepted again.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw.command(&["SET", "after", "1"]).unwrap() != "+OK\r\n" {
        assert!(Instant::now() < deadline, "writes never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("aof_last_write_status:ok"));
    drop(raw);
    drop(server);
}

#[test]
fn kill_9_during_a_rewrite_loses_no_acknowledged_write() {
    for seed in 1..=2u64 {
        let dir = Server::scratch("aof-kill-rewrite");
        let server = Server::start_in(&dir, THREADS, ALWAYS);
        {
            let mut con = connect(&server);
            // DEBUG POPULATE is not logged: these keys reach the log only through the base.
            let _: () = redis::cmd("DEBUG").arg("POPULATE").arg(100_000).arg("bulk").arg(32).query(&mut con).unwrap();
            let reply: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
            assert_eq!(reply, "Background append only file rewriting started");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers = run_writers(&server, seed, stop.clone());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        server.signal("KILL");
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        drop(server);
        let restarted = Server::start_in(&dir, THREADS, ALWAYS);
        let mut con = connect(&restarted);
        let populated: usize = redis::cmd("KEYS").arg("bulk:*").query::<Vec<String>>(&mut con).unwrap().len();
        // Either the rewrite finished (the base holds them) or not (then they were never in
        // the log: DEBUG POPULATE is not a logged write, as in Redis).
        assert!(populated == 0 || populated == 100_000, "seed {seed}: the base is whole or absent ({populated} keys)");
        assert_acknowledged_present(&mut con, &acked, seed);
        drop(con);
        drop(restarted);
        check_aof(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn debug_reload_under_appendonly_reloads_the_rdb_it_saved() {
    // As Redis: DEBUG RELOAD saves dump.rdb and loads it back, whatever appendonly says.
    let server = Server::start(THREADS, &["--save", "", "--appendonly", "yes"]);
    let mut raw = server.raw();
    for i in 0..50 {
        raw.command(&["SET", &format!("key:{i}"), &i.to_string()]).unwrap();
    }
    assert_eq!(raw.command(&["DEBUG", "RELOAD"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":50\r\n");
    assert_eq!(raw.command(&["GET", "key:7"]).unwrap(), "$1\r\n7\r\n");
}

#[test]
fn with_appendonly_the_aof_is_loaded_and_dump_rdb_is_not() {
    let dir = Server::scratch("aof-vs-rdb");
    let server = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["SET", "in-rdb", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(server);
    // As Redis 7: with appendonly yes the AOF is the source, even when it does not exist yet.
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["EXISTS", "in-rdb"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["SET", "in-aof", "1"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["MGET", "in-rdb", "in-aof"]).unwrap(), "*2\r\n$-1\r\n$1\r\n1\r\n");
    drop(raw);
    drop(server);
    // And without it, dump.rdb again.
    let server = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["MGET", "in-rdb", "in-aof"]).unwrap(), "*2\r\n$1\r\n1\r\n$-1\r\n");
    drop(raw);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys that expired between a write and the restart stay expired. The log holds the
/// absolute expiry (SET ... PXAT) and then commands that ran on the live key (INCR, LPUSH);
/// replayed after the expiry, the first would delete the key at once and the next would
/// create a new one without a TTL. As Redis's `server.loading`, nothing expires during the
/// replay, so the commands find what they found and the key expires after the load, both
/// for keys in the log and for keys of a rewritten base with commands after it.
#[test]
fn keys_that_expired_before_a_restart_are_not_brought_back_by_the_replay() {
    let dir = Server::scratch("aof-expired-replay");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    let write = |raw: &mut shoal_testkit::Raw, prefix: &str, ttl_ms: &str| {
        assert_eq!(raw.command(&["SET", &format!("{prefix}str"), "1", "PX", ttl_ms]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["INCR", &format!("{prefix}str")]).unwrap(), ":2\r\n");
        assert_eq!(raw.command(&["RPUSH", &format!("{prefix}list"), "a"]).unwrap(), ":1\r\n");
        assert_eq!(raw.command(&["PEXPIRE", &format!("{prefix}list"), ttl_ms]).unwrap(), ":1\r\n");
        assert_eq!(raw.command(&["RPUSH", &format!("{prefix}list"), "b"]).unwrap(), ":2\r\n");
        assert_eq!(raw.command(&["SET", &format!("{prefix}live"), "1", "PX", "600000"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["INCR", &format!("{prefix}live")]).unwrap(), ":2\r\n");
    };
    write(&mut raw, "log:", "700");
    std::thread::sleep(Duration::from_millis(900));
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    let keys = |server: &Server| {
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut server.client()).unwrap();
        keys.sort();
        keys
    };
    assert_eq!(keys(&server), ["log:live"]);
    assert_eq!(raw.command(&["GET", "log:live"]).unwrap(), "$1\r\n2\r\n");
    // The same through a rewritten base: keys with a TTL in the base, commands after it.
    wait_for_rewrites(&mut raw, 0);
    assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
    wait_for_rewrites(&mut raw, 1);
    write(&mut raw, "base:", "2000");
    assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
    wait_for_rewrites(&mut raw, 2);
    assert_eq!(raw.command(&["INCR", "base:str"]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["RPUSH", "base:list", "c"]).unwrap(), ":3\r\n");
    std::thread::sleep(Duration::from_millis(2200));
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    assert_eq!(keys(&server), ["base:live", "log:live"]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two keys of `prefix` owned by different cores of a `THREADS`-core server.
fn keys_on_two_cores(prefix: &str) -> (String, String) {
    let core = |key: &str| shoal_testkit::key_slot(key.as_bytes()) as usize % THREADS;
    let first = format!("{prefix}0");
    let second = (1..).map(|i| format!("{prefix}{i}")).find(|key| core(key) != core(&first)).expect("a key on another core");
    (first, second)
}

/// A write acknowledged after a key expired survives a restart, whatever noticed the expiry
/// first: a command that found the key expired (plain, in a cross-core command, in an EXEC
/// over two cores, in a script) or the active cycle. As Redis propagates a DEL for every key
/// it expires, the log records one where the expiry happened, so the replay finds the key
/// gone before the write, as the write did; without it the write replayed onto the old key,
/// which then expired after the load.
#[test]
fn writes_after_an_expiry_survive_a_restart_under_always() {
    let dir = Server::scratch("aof-expiry-dels");
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    let (mset_a, mset_b) = keys_on_two_cores("mset:");
    let (exec_a, exec_b) = keys_on_two_cores("exec:");
    let keys = ["plain", "active", &mset_a, &mset_b, &exec_a, &exec_b, "script"];
    for key in keys {
        assert_eq!(raw.command(&["SET", key, "10", "PX", "300"]).unwrap(), "+OK\r\n");
    }
    // The active cycle (hz 10) reclaims them all without any command touching them; a write
    // follows on one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raw.command(&["INFO", "stats"]).unwrap().contains(&format!("expired_keys:{}\r\n", keys.len())) {
        assert!(Instant::now() < deadline, "the keys expire");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw.command(&["SET", "active", "1", "NX"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(server);
    // Now commands find the keys expired before the active cycle (hz 1) does.
    let server = Server::start_in(&dir, THREADS, &[ALWAYS, &["--hz", "1"][..]].concat());
    let mut raw = server.raw();
    for key in keys.iter().filter(|key| **key != "active") {
        assert_eq!(raw.command(&["SET", key, "10", "PX", "300"]).unwrap(), "+OK\r\n");
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(raw.command(&["INCR", "plain"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["MSET", &mset_a, "1", &mset_b, "2"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["INCR", &exec_a]).unwrap(), "+QUEUED\r\n");
    assert_eq!(raw.command(&["INCR", &exec_b]).unwrap(), "+QUEUED\r\n");
    assert_eq!(raw.command(&["EXEC"]).unwrap(), "*2\r\n:1\r\n:1\r\n");
    assert_eq!(raw.command(&["EVAL", "return redis.call('INCR', KEYS[1])", "1", "script"]).unwrap(), ":1\r\n");
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = server.client();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys[..]).query(&mut con).unwrap();
    assert_eq!(values, ["1", "1", "1", "2", "1", "1", "1"].map(|v| Some(v.to_owned())));
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
        assert_eq!(ttl, -1, "{key} was written without a TTL after it expired");
    }
    drop(server);
    // Many transactions over two cores at once (EXEC, MSETNX, scripts), each finding its keys
    // expired: the DELs must reach the file before each transaction's body, whichever
    // core's barrier the merge meets first.
    let server = Server::start_in(&dir, THREADS, &[ALWAYS, &["--hz", "1"][..]].concat());
    let pairs: Vec<(String, String)> = (0..40).map(|i| keys_on_two_cores(&format!("many{i}:"))).collect();
    let mut raw = server.raw();
    for (a, b) in &pairs {
        raw.send(&[Raw::encode(&["SET", a, "10", "PX", "300"]), Raw::encode(&["SET", b, "10", "PX", "300"])].concat());
    }
    for _ in 0..2 * pairs.len() {
        assert_eq!(raw.read_reply().unwrap(), "+OK\r\n");
    }
    std::thread::sleep(Duration::from_millis(400));
    let clients: Vec<_> = pairs
        .chunks(10)
        .map(|chunk| {
            let (chunk, port_server) = (chunk.to_vec(), server.client());
            std::thread::spawn(move || {
                let mut con = port_server;
                for (i, (a, b)) in chunk.iter().enumerate() {
                    match i % 3 {
                        0 => {
                            let replies: Vec<i64> = redis::pipe().atomic().incr(a, 1).incr(b, 1).query(&mut con).unwrap();
                            assert_eq!(replies, [1, 1]);
                        }
                        1 => {
                            let set: bool = redis::cmd("MSETNX").arg(a).arg("1").arg(b).arg("1").query(&mut con).unwrap();
                            assert!(set, "MSETNX finds both expired");
                        }
                        _ => {
                            let script = "return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])";
                            let sum: i64 = redis::cmd("EVAL").arg(script).arg(2).arg(a).arg(b).query(&mut con).unwrap();
                            assert_eq!(sum, 2);
                        }
                    }
                }
            })
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut con = server.client();
    for (a, b) in &pairs {
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(a).arg(b).query(&mut con).unwrap();
        assert_eq!(values, [Some("1".to_owned()), Some("1".to_owned())], "{a} {b}");
    }
    drop(server);
    check_aof(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hash field TTLs (Redis 7.4) survive restarts: from dump.rdb (a field already expired is
/// not loaded), and from the append-only log after kill -9, with what happened after a field
/// expired (HSET of it again: no TTL) and HINCRBYFLOAT keeping a TTL; then through rewrites
/// with and without the RDB preamble.
#[test]
fn hash_field_ttls_survive_restarts_by_rdb_and_aof() {
    let dir = Server::scratch("aof-field-ttls");
    let ttls = |server: &Server, key: &str, fields: &[&str]| -> Vec<i64> {
        let mut args = vec!["HTTL", key, "FIELDS"];
        let count = fields.len().to_string();
        args.push(&count);
        args.extend(fields);
        redis::cmd(args[0]).arg(&args[1..]).query(&mut server.client()).unwrap()
    };
    // dump.rdb.
    let server = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["HSET", "h", "a", "1", "b", "2", "c", "3"]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["HEXPIRE", "h", "600", "FIELDS", "1", "a"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["HPEXPIRE", "h", "300", "FIELDS", "1", "b"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(400));
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, &["--save", ""]);
    // 600 seconds, less what a loaded machine took since HEXPIRE (seconds, rounded).
    let got = ttls(&server, "h", &["a", "b", "c"]);
    assert!((595..=600).contains(&got[0]) && got[1..] == [-2, -1], "{got:?}");
    assert_eq!(server.raw().command(&["OBJECT", "ENCODING", "h"]).unwrap(), "$10\r\nlistpackex\r\n");
    drop(server);
    // The log, killed.
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["HSET", "g", "x", "1", "y", "2", "z", "3"]).unwrap(), ":3\r\n");
    assert_eq!(raw.command(&["HEXPIRE", "g", "600", "FIELDS", "1", "x"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["HPEXPIRE", "g", "300", "FIELDS", "1", "y"]).unwrap(), "*1\r\n:1\r\n");
    assert_eq!(raw.command(&["HINCRBYFLOAT", "g", "x", "1.5"]).unwrap(), "$3\r\n2.5\r\n");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(raw.command(&["HSETNX", "g", "y", "9"]).unwrap(), ":1\r\n", "y expired");
    assert_eq!(raw.command(&["HSETEX", "g", "PX", "600000", "FIELDS", "1", "w", "5"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["HGETDEL", "g", "FIELDS", "1", "z"]).unwrap(), "*1\r\n$1\r\n3\r\n");
    assert_eq!(raw.command(&["HGETEX", "g", "PERSIST", "FIELDS", "1", "w"]).unwrap(), "*1\r\n$1\r\n5\r\n");
    drop(raw);
    drop(server);
    let expect = |server: &Server| {
        let mut all: Vec<String> = redis::cmd("HGETALL").arg("g").query(&mut server.client()).unwrap();
        let mut pairs: Vec<(String, String)> = all.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        pairs.sort();
        all.clear();
        assert_eq!(pairs, [("w", "5"), ("x", "2.5"), ("y", "9")].map(|(f, v)| (f.to_owned(), v.to_owned())));
        let got = ttls(server, "g", &["x", "y", "w"]);
        assert!((599..=600).contains(&got[0]) && got[1..] == [-1, -1], "{got:?}");
    };
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    expect(&server);
    // Rewritten with the RDB preamble, then as commands.
    let mut raw = server.raw();
    for (rewrites, preamble) in [(1, "yes"), (2, "no")] {
        assert_eq!(raw.command(&["CONFIG", "SET", "aof-use-rdb-preamble", preamble]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
        wait_for_rewrites(&mut raw, rewrites);
    }
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    expect(&server);
    drop(server);
    // The base is commands now (HPEXPIREAT among them): Redis's checker reads it.
    check_aof(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (polling the clock) until a new Unix second has just begun, so that the commands
/// sent next fall in that second; returns it.
fn at_the_start_of_a_new_second() -> u64 {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let first = now().as_secs();
    loop {
        let t = now();
        if t.as_secs() > first && t.subsec_millis() < 300 {
            return t.as_secs();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `#TS:` values of an AOF file, and the file with them blanked (`#TS:`).
fn timestamps_of(bytes: &[u8]) -> (Vec<u64>, String) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut stamps = Vec::new();
    let mut blanked = String::new();
    for line in text.split_inclusive("\r\n") {
        match line.strip_prefix("#TS:") {
            Some(rest) => {
                stamps.push(rest.trim_end().parse().unwrap());
                blanked.push_str("#TS:\r\n");
            }
            None => blanked.push_str(line),
        }
    }
    (stamps, blanked)
}

#[test]
fn aof_timestamp_enabled_writes_ts_annotations_as_redis_does_and_truncate_to_timestamp_works() {
    // The same commands, in three seconds, to Shoal and to redis-server.
    let run = |raw: &mut shoal_testkit::Raw| -> Vec<u64> {
        let mut seconds = Vec::new();
        seconds.push(at_the_start_of_a_new_second());
        assert_eq!(raw.command(&["SET", "a", "1"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "b", "2"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["MSET", "x", "1", "y", "2", "z", "3"]).unwrap(), "+OK\r\n");
        seconds.push(at_the_start_of_a_new_second());
        assert_eq!(raw.command(&["SET", "c", "3"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SELECT", "2"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "e", "5"]).unwrap(), "+OK\r\n");
        seconds.push(at_the_start_of_a_new_second());
        assert_eq!(raw.command(&["SELECT", "0"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "f", "6"]).unwrap(), "+OK\r\n");
        seconds
    };
    let dir = Server::scratch("aof-timestamps");
    let incr = dir.join("appendonlydir").join("appendonly.aof.1.incr.aof");
    let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--aof-timestamp-enabled", "yes"]);
    let mut raw = server.raw();
    let seconds = run(&mut raw);
    drop(raw);
    drop(server);
    let ours = std::fs::read(&incr).unwrap();
    let (stamps, blanked) = timestamps_of(&ours);
    assert_eq!(stamps, seconds, "one annotation per second in which commands were appended:\n{blanked}");
    assert!(blanked.starts_with("#TS:\r\n*2\r\n$6\r\nSELECT\r\n"), "the annotation comes before the SELECT:\n{blanked}");
    check_aof(&dir);
    // Loaded back: the annotations are skipped.
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["MGET", "a", "x", "c", "f"]).unwrap(), "*4\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n3\r\n$1\r\n6\r\n");
    drop(raw);
    drop(server);
    // redis-check-aof --truncate-to-timestamp cuts our file before the third second.
    if need("redis-check-aof") {
        let manifest = dir.join("appendonlydir").join("appendonly.aof.manifest");
        let output = Command::new("redis-check-aof").arg("--truncate-to-timestamp").arg(seconds[1].to_string()).arg(&manifest).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success() && text.contains("Successfully truncated AOF"), "{text}");
        let server = Server::start_in(&dir, THREADS, ALWAYS);
        let mut raw = server.raw();
        assert_eq!(raw.command(&["MGET", "a", "c", "f"]).unwrap(), "*3\r\n$1\r\n1\r\n$1\r\n3\r\n$-1\r\n", "the third second is cut off");
        assert_eq!(raw.command(&["SELECT", "2"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["GET", "e"]).unwrap(), "$1\r\n5\r\n");
        drop(raw);
        drop(server);
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Redis writes the same file, timestamps aside.
    let redis_dir = Server::scratch("aof-timestamps-redis");
    if let Some(redis) = Server::start_redis_in(&redis_dir, &["--appendonly", "yes", "--appendfsync", "always", "--aof-timestamp-enabled", "yes"]) {
        let mut raw = redis.raw();
        run(&mut raw);
        drop(raw);
        let theirs = std::fs::read(redis_dir.join("appendonlydir").join("appendonly.aof.1.incr.aof")).unwrap();
        assert_eq!(timestamps_of(&theirs).1, blanked, "Redis's file, timestamps blanked");
    }
    let _ = std::fs::remove_dir_all(&redis_dir);
}

/// Polls INFO until `aof_rewrites:<count>` with no rewrite in progress; asserts it went well.
fn wait_for_rewrites(raw: &mut shoal_testkit::Raw, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = raw.command(&["INFO", "persistence"]).unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains(&format!("aof_rewrites:{count}\r\n")) {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            return;
        }
        assert!(Instant::now() < deadline, "rewrite {count} did not finish: {info}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The AOF directory's file names, sorted, and its manifest.
fn aof_dir_listing(dir: &Path) -> (Vec<String>, String) {
    let aof_dir = dir.join("appendonlydir");
    let mut names: Vec<String> = std::fs::read_dir(&aof_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    (names, std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).unwrap())
}

#[test]
fn bgrewriteaof_under_appendonly_no_writes_a_base_and_a_manifest_naming_only_it_as_redis_does() {
    // On a server that never had the log on, then on one that turned it off: the files each
    // rewrite leaves, on Shoal and on redis-server.
    let scenario = |raw: &mut shoal_testkit::Raw, dir: &Path| -> Vec<(Vec<String>, String)> {
        let mut seen = Vec::new();
        assert_eq!(raw.command(&["SET", "a", "1"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["RPUSH", "l", "x", "y"]).unwrap(), ":2\r\n");
        assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
        wait_for_rewrites(raw, 1);
        seen.push(aof_dir_listing(dir));
        assert_eq!(raw.command(&["SET", "b", "2"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
        wait_for_rewrites(raw, 2);
        seen.push(aof_dir_listing(dir));
        // On, then off again: the incremental files become history and are deleted.
        assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "yes"]).unwrap(), "+OK\r\n");
        wait_for_rewrites(raw, 3);
        assert_eq!(raw.command(&["SET", "c", "3"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["CONFIG", "SET", "appendonly", "no"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "d", "4"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
        wait_for_rewrites(raw, 4);
        seen.push(aof_dir_listing(dir));
        seen
    };
    let dir = Server::scratch("aof-rewrite-off");
    let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendfsync", "always"]);
    let mut raw = server.raw();
    let ours = scenario(&mut raw, &dir);
    let files = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(ours[0], (files(&["appendonly.aof.1.base.rdb", "appendonly.aof.manifest"]), "file appendonly.aof.1.base.rdb seq 1 type b\n".to_string()));
    assert_eq!(ours[1], (files(&["appendonly.aof.2.base.rdb", "appendonly.aof.manifest"]), "file appendonly.aof.2.base.rdb seq 2 type b\n".to_string()));
    assert_eq!(ours[2], (files(&["appendonly.aof.4.base.rdb", "appendonly.aof.manifest"]), "file appendonly.aof.4.base.rdb seq 4 type b\n".to_string()));
    drop(raw);
    drop(server);
    check_aof(&dir);
    // The base holds everything there was, and loads.
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["MGET", "a", "b", "c", "d"]).unwrap(), "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n");
    assert_eq!(raw.command(&["LRANGE", "l", "0", "-1"]).unwrap(), "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
    drop(raw);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let redis_dir = Server::scratch("aof-rewrite-off-redis");
    if let Some(redis) = Server::start_redis_in(&redis_dir, &["--appendfsync", "always"]) {
        let mut raw = redis.raw();
        assert_eq!(scenario(&mut raw, &redis_dir), ours, "redis-server leaves the same files");
    }
    let _ = std::fs::remove_dir_all(&redis_dir);
}

#[test]
fn aof_use_rdb_preamble_no_makes_a_command_base_as_redis_does_that_both_servers_load() {
    // Keys of one hash slot (one core, walked in database order), one per database, in
    // encodings whose order both servers agree on; a list long enough for three RPUSHes.
    let elements: Vec<String> = (0..150).map(|i| format!("e{i}")).collect();
    let mut rpush = vec!["RPUSH", "{t}list"];
    rpush.extend(elements.iter().map(String::as_str));
    let library = "#!lua name=lib\nredis.register_function('f', function(keys, args) return 7 end)";
    let setup: Vec<Vec<&str>> = vec![
        vec!["FUNCTION", "LOAD", library],
        rpush,
        vec!["SELECT", "1"],
        vec!["SET", "{t}string", "hello"],
        vec!["PEXPIREAT", "{t}string", "33000000000000"],
        vec!["SELECT", "2"],
        vec!["ZADD", "{t}zset", "0.1", "a", "2", "b", "inf", "c", "-1.5e300", "d"],
        vec!["SELECT", "3"],
        vec!["SET", "{t}int", "12345"],
        vec!["SELECT", "4"],
        vec!["HSET", "{t}hash", "f1", "v1", "f2", "22"],
        vec!["SELECT", "5"],
        vec!["SADD", "{t}set", "3", "1", "2"],
        vec!["SELECT", "0"],
    ];
    let run = |raw: &mut shoal_testkit::Raw| {
        for command in &setup {
            let reply = raw.command(command).unwrap();
            assert!(!reply.starts_with('-'), "{command:?}: {reply}");
        }
        assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting started\r\n");
    };
    let extra = ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no", "--aof-timestamp-enabled", "yes"];
    let dir = Server::scratch("aof-command-base");
    let server = Server::start_in(&dir, THREADS, &extra);
    let mut raw = server.raw();
    run(&mut raw);
    wait_for_rewrites(&mut raw, 1);
    assert_eq!(raw.command(&["SET", "after", "1"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(server);
    let (names, manifest) = aof_dir_listing(&dir);
    assert_eq!(names, ["appendonly.aof.1.base.aof", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"], "{manifest}");
    assert_eq!(manifest, "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n");
    let base = std::fs::read(dir.join("appendonlydir").join("appendonly.aof.1.base.aof")).unwrap();
    let (stamps, ours) = timestamps_of(&base);
    assert_eq!(stamps.len(), 1, "one annotation, first: {ours}");
    assert!(ours.starts_with("#TS:\r\n*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"), "{ours}");
    assert_eq!(ours.matches("RPUSH").count(), 3, "at most 64 elements a command: {ours}");
    check_aof(&dir);
    // Shoal loads it back (base commands, then the incremental file).
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    let check = |raw: &mut shoal_testkit::Raw, who: &str| {
        assert_eq!(raw.command(&["LLEN", "{t}list"]).unwrap(), ":150\r\n", "{who}");
        assert_eq!(raw.command(&["LINDEX", "{t}list", "149"]).unwrap(), "$4\r\ne149\r\n", "{who}");
        assert_eq!(raw.command(&["GET", "after"]).unwrap(), "$1\r\n1\r\n", "{who}");
        assert_eq!(raw.command(&["FCALL", "f", "0"]).unwrap(), ":7\r\n", "{who}");
        assert_eq!(raw.command(&["SELECT", "1"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["PEXPIRETIME", "{t}string"]).unwrap(), ":33000000000000\r\n", "{who}");
        assert_eq!(raw.command(&["SELECT", "2"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["ZSCORE", "{t}zset", "a"]).unwrap(), "$19\r\n0.10000000000000001\r\n", "{who}");
        assert_eq!(raw.command(&["ZSCORE", "{t}zset", "c"]).unwrap(), "$3\r\ninf\r\n", "{who}");
        assert_eq!(raw.command(&["SELECT", "4"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["HGET", "{t}hash", "f2"]).unwrap(), "$2\r\n22\r\n", "{who}");
        assert_eq!(raw.command(&["SELECT", "5"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SCARD", "{t}set"]).unwrap(), ":3\r\n", "{who}");
    };
    check(&mut raw, "Shoal");
    drop(raw);
    drop(server);
    // redis-server loads ours, and writes the same base from the same data.
    if let Some(redis) = Server::start_redis_in(&dir, &["--appendonly", "yes"]) {
        let mut raw = redis.raw();
        check(&mut raw, "redis-server loading ours");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let redis_dir = Server::scratch("aof-command-base-redis");
    if let Some(redis) = Server::start_redis_in(&redis_dir, &extra[2..]) {
        let mut raw = redis.raw();
        run(&mut raw);
        wait_for_rewrites(&mut raw, 1);
        drop(raw);
        let (names, _) = aof_dir_listing(&redis_dir);
        let base = names.iter().find(|n| n.ends_with(".base.aof")).expect("a command base");
        let theirs = std::fs::read(redis_dir.join("appendonlydir").join(base)).unwrap();
        assert_eq!(timestamps_of(&theirs).1, ours, "Redis's base, timestamps blanked");
    }
    let _ = std::fs::remove_dir_all(&redis_dir);
}

/// Writes an AOF directory holding one incremental file with `bytes`.
fn write_incr_only(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let aof_dir = dir.join("appendonlydir");
    std::fs::create_dir_all(&aof_dir).unwrap();
    std::fs::write(aof_dir.join("appendonly.aof.manifest"), "file appendonly.aof.1.incr.aof seq 1 type i\n").unwrap();
    let incr = aof_dir.join("appendonly.aof.1.incr.aof");
    std::fs::write(&incr, bytes).unwrap();
    incr
}

fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The server's peak resident memory, in KiB (Linux's VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_aof_loads_in_bounded_memory_whatever_its_size() {
    // 192 MiB of log that leaves 1 MiB of data: the same key set over and over.
    let dir = Server::scratch("aof-streaming");
    let value = vec![b'v'; 1 << 20];
    let mut bytes = Vec::with_capacity(193 << 20);
    encode_command(&[b"SELECT", b"0"], &mut bytes);
    for i in 0..192 {
        encode_command(&[b"SET", b"big", &value], &mut bytes);
        encode_command(&[b"SET", b"count", i.to_string().as_bytes()], &mut bytes);
    }
    write_incr_only(&dir, &bytes);
    drop(bytes);
    let server = Server::start_in(&dir, THREADS, ALWAYS);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["GET", "count"]).unwrap(), "$3\r\n191\r\n");
    assert_eq!(raw.command(&["STRLEN", "big"]).unwrap(), ":1048576\r\n");
    let peak_mib = peak_rss_kib(server.pid()) / 1024;
    // Holding the log's commands in memory would take more than 192 MiB.
    eprintln!("peak RSS {peak_mib} MiB while loading a 192 MiB log");
    assert!(peak_mib < 96, "peak RSS {peak_mib} MiB while loading a 192 MiB log");
    drop(raw);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_log_streamed_in_batches_keeps_the_truncation_and_corruption_rules() {
    // Enough commands for many batches, then what each case puts at the end.
    let value = vec![b'x'; 4096];
    let mut body = Vec::new();
    encode_command(&[b"SELECT", b"0"], &mut body);
    for i in 0..2000 {
        encode_command(&[b"SET", format!("k{i}").as_bytes(), &value], &mut body);
    }
    let start = |dir: &Path, extra: &[&str]| {
        let mut command = Command::new(shoal_testkit::server_binary());
        command
            .args(["--port", &shoal_testkit::free_port().to_string(), "--threads", "2", "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(extra)
            .current_dir(dir);
        command
    };
    let refused = |dir: &Path, extra: &[&str]| -> String {
        let output = start(dir, extra).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{text}");
        text
    };

    // A damaged command after the first 8 MiB: refused, naming the file and the offset, and
    // the files are left as they were.
    let dir = Server::scratch("aof-stream-corrupt");
    let mut bytes = body.clone();
    let offset = bytes.len();
    bytes.extend_from_slice(b"*2\r\n$3\r\nGET\r\n!oops\r\n");
    encode_command(&[b"SET", b"after", b"1"], &mut bytes);
    let incr = write_incr_only(&dir, &bytes);
    let text = refused(&dir, &[]);
    assert!(text.contains("bad file format reading the append only file"), "{text}");
    assert!(text.contains(&format!("at offset {}", offset + "*2\r\n$3\r\nGET\r\n".len())), "the offset of the bad line: {text}");
    assert!(text.contains("appendonly.aof.1.incr.aof"), "the file is named: {text}");
    assert_eq!(std::fs::read(&incr).unwrap(), bytes, "nothing written");
    let _ = std::fs::remove_dir_all(&dir);

    // A transaction cut short at the end: refused without aof-load-truncated...
    let dir = Server::scratch("aof-stream-truncated");
    let mut bytes = body.clone();
    let valid = bytes.len();
    encode_command(&[b"MULTI"], &mut bytes);
    encode_command(&[b"SET", b"in-tx", b"1"], &mut bytes);
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$5\r\nin-tx");
    let incr = write_incr_only(&dir, &bytes);
    let text = refused(&dir, &["--aof-load-truncated", "no"]);
    assert!(text.contains(&format!("valid up to offset {valid} of {}", bytes.len())), "{text}");
    assert_eq!(std::fs::read(&incr).unwrap(), bytes, "nothing trimmed");
    // ... trimmed whole with it, saying how much.
    let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendonly", "yes", "--logfile", "log.txt"]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":2000\r\n");
    assert_eq!(raw.command(&["EXISTS", "in-tx"]).unwrap(), ":0\r\n");
    assert_eq!(raw.command(&["STRLEN", "k1999"]).unwrap(), ":4096\r\n");
    drop(raw);
    drop(server);
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), valid as u64, "cut before the MULTI");
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(log.contains("!!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!"), "{log}");
    assert!(log.contains(&format!("!!! Truncating the AOF appendonly.aof.1.incr.aof at offset {valid} !!!")), "{log}");
    assert!(log.contains(&format!("Trimmed {} bytes", bytes.len() - valid)), "{log}");
    check_aof(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgrewriteaof_scheduled_behind_a_bgsave_under_appendonly_no_runs_when_the_save_ends() {
    let dir = Server::scratch("aof-rewrite-scheduled-off");
    let server = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut raw = server.raw();
    // Enough keys that the save is still running when BGREWRITEAOF arrives.
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "500000"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["BGSAVE"]).unwrap(), "+Background saving started\r\n");
    assert_eq!(raw.command(&["BGREWRITEAOF"]).unwrap(), "+Background append only file rewriting scheduled\r\n");
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("aof_rewrite_scheduled:1"));
    wait_for_rewrites(&mut raw, 1);
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("aof_rewrite_scheduled:0"));
    drop(raw);
    drop(server);
    assert_eq!(aof_dir_listing(&dir).1, "file appendonly.aof.1.base.rdb seq 1 type b\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// WAITAOF's reply to `raw` as (local, replicas).
fn waitaof(raw: &mut shoal_testkit::Raw, args: &[&str]) -> String {
    let mut request = vec!["WAITAOF"];
    request.extend_from_slice(args);
    raw.command(&request).unwrap()
}

#[test]
fn waitaof_answers_once_the_connections_writes_are_in_the_file() {
    for policy in ["everysec", "no", "always"] {
        let dir = Server::scratch("aof-waitaof");
        let server = Server::start_in(&dir, THREADS, &["--save", "", "--appendonly", "yes", "--appendfsync", policy]);
        let mut raw = server.raw();
        // Nothing written yet: fsynced already.
        assert_eq!(waitaof(&mut raw, &["1", "0", "0"]), "*2\r\n:1\r\n:0\r\n", "{policy}");
        // Writes on every core, then WAITAOF: answered once they are in the file.
        for i in 0..16 {
            raw.command(&["SET", &format!("waited:{i}"), "yes"]).unwrap();
        }
        assert_eq!(waitaof(&mut raw, &["1", "0", "0"]), "*2\r\n:1\r\n:0\r\n", "{policy}");
        let file = incr_file(&dir);
        for i in 0..16 {
            assert!(file.contains(&format!("waited:{i}")), "{policy}: waited:{i} in the file");
        }
        // Replicas are never there: their count waits out the timeout.
        let started = Instant::now();
        assert_eq!(waitaof(&mut raw, &["1", "1", "100"]), "*2\r\n:1\r\n:0\r\n", "{policy}");
        assert!(started.elapsed() >= Duration::from_millis(90), "{policy}");
        // Inside MULTI it never waits, and an EXEC's writes are logged only when it ends.
        raw.command(&["MULTI"]).unwrap();
        raw.command(&["SET", "in", "exec"]).unwrap();
        raw.command(&["WAITAOF", "1", "0", "0"]).unwrap();
        assert_eq!(raw.command(&["EXEC"]).unwrap(), "*2\r\n+OK\r\n*2\r\n:0\r\n:0\r\n", "{policy}");
        assert_eq!(waitaof(&mut raw, &["1", "0", "0"]), "*2\r\n:1\r\n:0\r\n", "{policy}");
        let file = incr_file(&dir);
        assert!(file.contains("exec"), "{policy}: {file:?}");
    }
}

#[test]
fn waitaof_checks_its_arguments_and_the_log() {
    let server = Server::start(THREADS, &["--save", ""]);
    let mut raw = server.raw();
    for (args, reply) in [
        (&["-1", "0", "0"][..], "-ERR value is out of range, must be positive\r\n"),
        (&["x", "0", "0"], "-ERR value is not an integer or out of range\r\n"),
        (&["0", "-2", "0"], "-ERR value is out of range, must be positive\r\n"),
        (&["0", "0", "-1"], "-ERR timeout is negative\r\n"),
        (&["0", "0", "1.5"], "-ERR timeout is not an integer or out of range\r\n"),
        (&["1", "0", "0"], "-ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.\r\n"),
        (&["0", "0", "0"], "*2\r\n:0\r\n:0\r\n"),
    ] {
        assert_eq!(waitaof(&mut raw, args), reply, "{args:?}");
    }
    assert_eq!(raw.command(&["WAITAOF", "0", "0"]).unwrap(), "-ERR wrong number of arguments for 'waitaof' command\r\n");
}

//! Replication with Shoal as the master and Debian's redis-server as its replica: the replica
//! loads Shoal's snapshot and applies Shoal's replication stream, so every write Shoal made
//! on any of its cores (cross-core commands and transactions included) must reach it, in an
//! order that gives the same data. A reconnecting replica continues from the backlog
//! (partial resynchronisation); WAIT counts the replicas that acknowledged a write.

use std::time::{Duration, Instant};

use shoal_testkit::{Raw, Server};
use shoal_tests::{assert_same, connect, contents, fill, settled_peak_and_resident, THREADS};

fn info_field(raw: &mut Raw, section: &str, field: &str) -> String {
    let info = raw.command(&["INFO", section]).unwrap();
    let prefix = format!("{field}:");
    info.lines().find_map(|line| line.strip_prefix(&prefix)).unwrap_or_default().trim().to_owned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts redis-server as a replica of `master`, and waits until its link is up.
fn redis_replica_of(master: &Server) -> Option<(Server, std::path::PathBuf)> {
    redis_replica_with(master, &[])
}

fn redis_replica_with(master: &Server, extra: &[&str]) -> Option<(Server, std::path::PathBuf)> {
    let dir = Server::scratch("replica");
    let port = master.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    let replica = Server::start_redis_in(&dir, &args)?;
    let mut raw = replica.raw();
    wait_until("the replica's link is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
    Some((replica, dir))
}

/// Writes of every kind after the snapshot: plain ones on every core, cross-core commands,
/// transactions over several cores, scripts, expiries, deletes, and commands Redis
/// propagates as something else (INCRBYFLOAT, SPOP, EXPIRE).
fn write_after_sync(master: &Server) {
    let mut con = connect(master);
    let mut q = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query::<redis::Value>(&mut con).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    };
    q(&["SELECT", "0"]);
    for i in 0..200 {
        q(&["SET", &format!("after:{i}"), &i.to_string()]);
    }
    q(&["MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"]);
    q(&["RENAME", "a", "renamed"]);
    q(&["INCRBYFLOAT", "float", "1.25"]);
    q(&["INCRBYFLOAT", "float", "0.1"]);
    q(&["SADD", "popped", "m1", "m2", "m3", "m4"]);
    q(&["SPOP", "popped"]);
    q(&["EXPIRE", "b", "5000"]);
    q(&["DEL", "c", "d", "big-list"]);
    q(&["LPUSH", "fresh-list", "x", "y"]);
    q(&["LMOVE", "fresh-list", "other-list", "LEFT", "RIGHT"]);
    q(&["MULTI"]);
    q(&["INCR", "tx:1"]);
    q(&["INCR", "tx:2"]);
    q(&["HSET", "tx:h", "f", "v"]);
    q(&["ZADD", "tx:z", "3", "three"]);
    q(&["EXEC"]);
    q(&["EVAL", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", "2", "script:a", "script:b", "from-a-script"]);
    q(&["SET", "short-lived", "x", "PX", "1"]);
    q(&["SELECT", "7"]);
    q(&["SET", "in-db-7", "seven"]);
    q(&["SWAPDB", "7", "8"]);
    q(&["SELECT", "2"]);
    q(&["FLUSHDB"]);
    q(&["SET", "after-flush", "1"]);
    std::thread::sleep(Duration::from_millis(5));
    // The expired key is deleted on access, which the stream carries as a DEL.
    q(&["GET", "short-lived"]);
}

/// [`write_after_sync`], then a last write and WAIT: once WAIT says the replica has it, the
/// replica holds what the master holds.
fn write_and_compare(master: &Server, replica: &Server, what: &str) {
    write_after_sync(master);
    let mut raw = master.raw();
    assert_eq!(raw.command(&["SET", "last", "write"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_same(&contents(replica), &contents(master), what);
}

#[test]
fn a_redis_replica_of_shoal_gets_the_snapshot_and_every_write_after_it() {
    let master = Server::start(THREADS, &[]);
    fill(&master);
    let Some((replica, dir)) = redis_replica_of(&master) else { return };
    write_and_compare(&master, &replica, "redis-server replicating shoal");
    let mut raw = master.raw();
    assert_eq!(info_field(&mut raw, "replication", "connected_slaves"), "1");
    let slave0 = info_field(&mut raw, "replication", "slave0");
    assert!(slave0.starts_with("ip=127.0.0.1,port=") && slave0.contains(",state=online,"), "{slave0}");
    assert_eq!(info_field(&mut raw, "stats", "sync_full"), "1");
    let offset = info_field(&mut raw, "replication", "master_repl_offset");
    let mut replica_raw = replica.raw();
    assert_eq!(info_field(&mut replica_raw, "replication", "master_replid"), info_field(&mut raw, "replication", "master_replid"));
    wait_until("the replica's offset reaches the master's", || info_field(&mut replica_raw, "replication", "slave_repl_offset") == offset);
    // ROLE lists it with what it acknowledged.
    let role = raw.command(&["ROLE"]).unwrap();
    assert!(role.starts_with(&format!("*3\r\n$6\r\nmaster\r\n:{offset}\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n")), "{role:?}");
    // A client that wrote nothing waits for nothing.
    assert_eq!(master.raw().command(&["WAIT", "1", "0"]).unwrap(), ":1\r\n");
    // More replicas than there are: the timeout, and the count.
    assert_eq!(raw.command(&["WAIT", "2", "100"]).unwrap(), ":1\r\n");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `repl-diskless-sync` (Redis 7's default, and Shoal's) streams the snapshot framed by
/// `$EOF:<mark>` to a replica that said `capa eof`; with `no` it goes through a file and
/// `$<length>`: both reach redis-server and Shoal replicas whole, and no file stays behind.
#[test]
fn full_syncs_stream_the_snapshot_or_send_a_file_as_repl_diskless_sync_says() {
    for diskless in ["yes", "no"] {
        let master = Server::start(THREADS, &["--repl-diskless-sync", diskless]);
        fill(&master);
        let mut raw = master.raw();
        assert_eq!(
            raw.command(&["CONFIG", "GET", "repl-diskless-sync"]).unwrap(),
            format!("*2\r\n$18\r\nrepl-diskless-sync\r\n${}\r\n{diskless}\r\n", diskless.len())
        );
        let Some((redis_replica, dir)) = redis_replica_of(&master) else { return };
        let replica = shoal_replica_of(&master, &[]);
        write_after_sync(&master);
        assert_eq!(raw.command(&["SET", "last", "write"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["WAIT", "2", "10000"]).unwrap(), ":2\r\n");
        assert_same(&contents(&redis_replica), &contents(&master), &format!("redis-server, repl-diskless-sync {diskless}"));
        assert_same(&contents(&replica), &contents(&master), &format!("shoal, repl-diskless-sync {diskless}"));
        assert_eq!(info_field(&mut raw, "stats", "sync_full"), "2");
        let leftovers: Vec<_> =
            std::fs::read_dir(&master.dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("temp-")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // The framing, as a replica that can take either sees it.
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", master.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Write::write_all(&mut stream, b"REPLCONF capa eof\r\nPSYNC ? -1\r\n").unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert_eq!(line, "+OK\r\n");
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(line.starts_with("+FULLRESYNC "), "{line}");
        line.clear();
        while line.trim().is_empty() {
            line.clear();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        }
        let framed = if diskless == "yes" { line.starts_with("$EOF:") && line.len() == 47 } else { line[1..].trim().parse::<u64>().is_ok() };
        assert!(framed, "repl-diskless-sync {diskless}: {line:?}");
        drop(redis_replica);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Writes, drops the replica's link (CLIENT KILL TYPE master on the replica), writes while
/// it is away, and waits until it is back: it must continue from the master's backlog.
fn drop_the_link_and_continue(master: &Server, replica: &Server) {
    let mut raw = master.raw();
    for i in 0..50 {
        raw.command(&["SET", &format!("before:{i}"), "1"]).unwrap();
    }
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_eq!(replica.raw().command(&["CLIENT", "KILL", "TYPE", "master"]).unwrap(), ":1\r\n");
    for i in 0..50 {
        raw.command(&["RPUSH", "while-away", &i.to_string()]).unwrap();
    }
    wait_until("the replica is back", || raw.command(&["WAIT", "1", "100"]).unwrap() == ":1\r\n");
    assert_eq!(info_field(&mut raw, "stats", "sync_full"), "1");
    assert_eq!(info_field(&mut raw, "stats", "sync_partial_ok"), "1");
    assert_same(&contents(replica), &contents(master), "after a partial resynchronisation");
}

#[test]
fn a_replica_that_reconnects_continues_from_the_backlog() {
    let master = Server::start(THREADS, &[]);
    let Some((replica, dir)) = redis_replica_of(&master) else { return };
    drop_the_link_and_continue(&master, &replica);
    // Killed from the master's side (CLIENT KILL TYPE replica), it comes back the same way.
    let mut raw = master.raw();
    assert_eq!(raw.command(&["CLIENT", "KILL", "TYPE", "replica"]).unwrap(), ":1\r\n");
    raw.command(&["SET", "after-the-kill", "1"]).unwrap();
    wait_until("the replica is back", || raw.command(&["WAIT", "1", "100"]).unwrap() == ":1\r\n");
    assert_eq!(info_field(&mut raw, "stats", "sync_partial_ok"), "2");
    assert_same(&contents(&replica), &contents(&master), "after CLIENT KILL TYPE replica");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replica that asks for an offset the backlog no longer holds gets a full
/// resynchronisation, and the data is the same after it.
#[test]
fn a_replica_too_far_behind_gets_a_full_resync() {
    let master = Server::start(THREADS, &["--repl-backlog-size", "16kb"]);
    let Some((replica, dir)) = redis_replica_of(&master) else { return };
    let mut raw = master.raw();
    let mut replica_raw = replica.raw();
    // The replica drops its link and cannot come back while its AUTH fails (Shoal has no
    // password); meanwhile more is written than the backlog holds.
    assert_eq!(replica_raw.command(&["CONFIG", "SET", "masterauth", "wrong"]).unwrap(), "+OK\r\n");
    assert_eq!(replica_raw.command(&["CLIENT", "KILL", "TYPE", "master"]).unwrap(), ":1\r\n");
    let value = "v".repeat(1000);
    for i in 0..100 {
        raw.command(&["SET", &format!("big:{i}"), &value]).unwrap();
    }
    assert_eq!(replica_raw.command(&["CONFIG", "SET", "masterauth", ""]).unwrap(), "+OK\r\n");
    wait_until("the replica is back", || raw.command(&["WAIT", "1", "100"]).unwrap() == ":1\r\n");
    assert_eq!(info_field(&mut raw, "stats", "sync_full"), "2");
    assert_eq!(info_field(&mut raw, "stats", "sync_partial_err"), "1");
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_same(&contents(&replica), &contents(&master), "after the backlog was outgrown");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writers on every core keep incrementing counters, moving list items across cores and
/// running transactions while the replica takes its snapshot: each write must reach the
/// replica exactly once, either in the snapshot or in the stream after its cut. (It once
/// caught a cross-core command made unlogged before the first replica turned the log on and
/// granted its locks after the cut: see `Core::acquire_write`.)
#[test]
fn writes_during_the_full_sync_reach_the_replica_exactly_once() {
    let master = Server::start(THREADS, &[]);
    {
        let mut con = connect(&master);
        for i in 0..2000 {
            redis::cmd("SET").arg(format!("pad:{i}")).arg("x".repeat(100)).query::<()>(&mut con).unwrap();
        }
        redis::cmd("RPUSH").arg("queue:a").arg((0..500).collect::<Vec<i32>>()).query::<()>(&mut con).unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, mut con) = (stop.clone(), connect(&master));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("counter:{}", n % 64);
                    redis::cmd("INCR").arg(&key).query::<i64>(&mut con).unwrap();
                    if w == 0 {
                        redis::cmd("LMOVE").arg("queue:a").arg("queue:b").arg("LEFT").arg("RIGHT").query::<redis::Value>(&mut con).unwrap();
                    } else if w == 1 {
                        redis::pipe().atomic().cmd("INCR").arg("tx:x").cmd("INCR").arg("tx:y").cmd("INCR").arg(&key).query::<redis::Value>(&mut con).unwrap();
                    } else {
                        redis::cmd("MSET").arg(format!("m:{}", n % 7)).arg(n).arg(format!("n:{}", n % 5)).arg(n).query::<()>(&mut con).unwrap();
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let Some((replica, dir)) = redis_replica_of(&master) else {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        return;
    };
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let mut raw = master.raw();
    raw.command(&["SET", "done", "1"]).unwrap();
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_same(&contents(&replica), &contents(&master), "writes during the full sync");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts Shoal as a replica of `master` (`--replicaof`), and waits until its link is up.
fn shoal_replica_of(master: &Server, extra: &[&str]) -> Server {
    let port = master.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    let replica = Server::start(THREADS, &args);
    let mut raw = replica.raw();
    wait_until("Shoal's link to its master is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
    replica
}

/// Shoal follows Debian's redis-server: the snapshot (sent diskless, as Redis 7 does by
/// default) replaces its data, every write after it arrives, the master's MULTI/EXEC
/// included, and its own clients may read but not write.
#[test]
fn shoal_replicates_redis_and_refuses_writes_from_its_own_clients() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    fill(&master);
    let replica = shoal_replica_of(&master, &[]);
    write_and_compare(&master, &replica, "shoal replicating redis-server");
    let mut master_raw = master.raw();
    let mut raw = replica.raw();
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "-READONLY You can't write against a read only replica.\r\n");
    assert_eq!(raw.command(&["GET", "last"]).unwrap(), "$5\r\nwrite\r\n");
    assert_eq!(info_field(&mut raw, "replication", "role"), "slave");
    assert_eq!(info_field(&mut raw, "replication", "master_replid"), info_field(&mut master_raw, "replication", "master_replid"));
    let offset = info_field(&mut master_raw, "replication", "master_repl_offset");
    assert_eq!(info_field(&mut raw, "replication", "slave_repl_offset"), offset);
    assert_eq!(raw.command(&["ROLE"]).unwrap(), format!("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:{}\r\n$9\r\nconnected\r\n:{offset}\r\n", master.port));
    // The link is a client of type master.
    assert!(raw.command(&["CLIENT", "LIST", "TYPE", "master"]).unwrap().contains(" flags=M "));
    // REPLICAOF NO ONE: a master again, with the data it had.
    assert_eq!(raw.command(&["REPLICAOF", "NO", "ONE"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["GET", "last"]).unwrap(), "$5\r\nwrite\r\n");
    assert_eq!(info_field(&mut raw, "replication", "role"), "master");
}

/// The link drops: Shoal asks to continue from its offset and redis-server's backlog serves
/// it (disk-based transfer this time).
#[test]
fn shoal_continues_from_redis_s_backlog_after_its_link_drops() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync", "no"]) else { return };
    let replica = shoal_replica_of(&master, &[]);
    drop_the_link_and_continue(&master, &replica);
}

/// Shoal replicating Shoal, both over four cores: cross-core commands and transactions of
/// the master run atomically on the replica's cores too.
#[test]
fn shoal_replicates_shoal() {
    let master = Server::start(THREADS, &[]);
    fill(&master);
    let replica = shoal_replica_of(&master, &[]);
    write_and_compare(&master, &replica, "shoal replicating shoal");
    let mut master_raw = master.raw();
    let mut raw = replica.raw();
    let offset = info_field(&mut master_raw, "replication", "master_repl_offset");
    wait_until("the offsets agree", || info_field(&mut raw, "replication", "slave_repl_offset") == offset);
    // And a replica of that replica gets the same stream.
    let chained = shoal_replica_of(&replica, &[]);
    write_after_sync(&master);
    caught_up(&master, &chained, "shoal replicating a shoal replica of shoal");
}

/// An expiry command whose time has passed deletes the key on the master, which propagates
/// DEL as Redis does: a replica (Shoal's or Redis's) keeps a key its master's PEXPIREAT
/// times out until the master's DEL, so the key written again after it was there still and
/// SETNX failed on the replica (found by tests/robustness.rs).
#[test]
fn expiries_already_past_reach_replicas_as_deletes() {
    let master = Server::start(THREADS, &[]);
    let shoal = shoal_replica_of(&master, &[]);
    let redis = redis_replica_of(&master);
    let mut raw = master.raw();
    for request in [
        &["XADD", "x", "1-1", "f", "v"][..],
        &["PEXPIRE", "x", "0"],
        &["SETNX", "x", "100"],
        &["SET", "c", "1"],
        &["GETEX", "c", "EXAT", "1"],
        &["SETNX", "c", "5"],
        &["SET", "e", "1"],
        &["EXPIREAT", "e", "1", "NX"],
        &["HSET", "e", "f", "v"],
    ] {
        raw.command(request).unwrap();
    }
    let replicas = 1 + redis.is_some() as usize;
    assert_eq!(raw.command(&["WAIT", &replicas.to_string(), "10000"]).unwrap(), format!(":{replicas}\r\n"));
    assert_eq!(raw.command(&["MGET", "x", "c"]).unwrap(), "*2\r\n$3\r\n100\r\n$1\r\n5\r\n");
    assert_same(&contents(&shoal), &contents(&master), "a Shoal replica");
    if let Some((redis, _dir)) = redis {
        assert_same(&contents(&redis), &contents(&master), "a Redis replica");
    }
}

/// The master's FLUSHALL reaches a replica with save points set, which saves after it as
/// Redis does: its link runs on (it once asked itself to pause for that save's cut and
/// waited for ever; found by tests/robustness.rs).
#[test]
fn a_replica_with_save_points_applies_its_master_s_flushall_and_goes_on() {
    let master = Server::start(THREADS, &[]);
    let replica = shoal_replica_of(&master, &["--save", "3600 1"]);
    let mut raw = master.raw();
    for (request, reply) in [(&["SET", "a", "1"][..], "+OK\r\n"), (&["FLUSHALL"], "+OK\r\n"), (&["INCR", "c"], ":1\r\n"), (&["WAIT", "1", "10000"], ":1\r\n")] {
        assert_eq!(raw.command(request).unwrap(), reply, "{request:?}");
    }
    let mut raw = replica.raw();
    assert_eq!(raw.command(&["GET", "c"]).unwrap(), "$1\r\n1\r\n");
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":1\r\n");
    assert_eq!(info_field(&mut raw, "persistence", "rdb_saves"), "1");
}

/// A replica that reads nothing is disconnected once its lag passes the hard limit of
/// `client-output-buffer-limit replica`, and the backlog lets go of what it held for it.
#[test]
fn a_replica_that_reads_nothing_is_dropped_at_its_output_limit() {
    let master = Server::start(THREADS, &["--client-output-buffer-limit", "replica 256kb 0 0"]);
    let mut replica = master.raw();
    replica.send(&Raw::encode(&["PSYNC", "?", "-1"]));
    let mut raw = master.raw();
    wait_until("the replica is online", || info_field(&mut raw, "replication", "slave0").contains("state=online"));
    // Much more than the socket buffers and the limit hold.
    let value = "x".repeat(10_000);
    for i in 0..2000 {
        raw.command(&["SET", &format!("k{}", i % 100), &value]).unwrap();
    }
    wait_until("the replica is dropped", || info_field(&mut raw, "replication", "connected_slaves") == "0");
    let histlen: u64 = info_field(&mut raw, "replication", "repl_backlog_histlen").parse().unwrap();
    assert!(histlen <= 2 * 1024 * 1024, "the backlog keeps {histlen} bytes");
    // Its connection is closed, its stalled write abandoned, while it still reads nothing.
    wait_until("the replica's connection is gone", || info_field(&mut raw, "clients", "connected_clients") == "1");
    drop(replica);
}

/// A read-only replica answers its clients' writes, MULTI and scripts as a Redis replica of
/// the same master does, byte for byte.
#[test]
fn a_read_only_replica_refuses_writes_and_write_scripts_as_redis_does() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    master.raw().command(&["SET", "x", "1"]).unwrap();
    let shoal = shoal_replica_of(&master, &[]);
    let dir = Server::scratch("redis-replica");
    let Some(redis) = Server::start_redis_in(&dir, &["--replicaof", "127.0.0.1", &master.port.to_string()]) else { return };
    let mut raw = redis.raw();
    wait_until("redis's link is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
    let requests: &[&[&str]] = &[
        &["SET", "x", "2"],
        &["GET", "x"],
        &["INCR", "x"],
        &["DEL", "x"],
        &["MULTI"],
        &["SET", "x", "3"],
        &["GET", "x"],
        &["EXEC"],
        &["EVAL", "return redis.call('SET', KEYS[1], '4')", "1", "x"],
        &["EVAL", "return redis.pcall('SET', KEYS[1], '4')", "1", "x"],
        &["EVAL", "return redis.call('GET', KEYS[1])", "1", "x"],
        &["EVAL", "#!lua\nreturn redis.call('GET', KEYS[1])", "1", "x"],
        &["EVAL", "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])", "1", "x"],
        &["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "x"],
        &["GET", "x"],
    ];
    let mut shoal_raw = shoal.raw();
    for request in requests {
        assert_eq!(shoal_raw.command(request).unwrap(), raw.command(request).unwrap(), "{request:?}");
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replica with `appendonly yes`: after the full sync its append-only file is rewritten
/// with the master's data as its base, and the stream goes after it, so a replica killed
/// with -9 and restarted on its own has what its master had.
#[test]
fn a_replica_s_append_only_file_holds_the_master_s_data_after_a_kill_9() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    fill(&master);
    let dir = Server::scratch("replica-aof");
    let port = master.port.to_string();
    let replica = Server::start_in(&dir, THREADS, &["--replicaof", "127.0.0.1", &port, "--appendonly", "yes", "--appendfsync", "always"]);
    let mut raw = replica.raw();
    wait_until("the link is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
    write_and_compare(&master, &replica, "the replica before the kill");
    wait_until("the rewrite is over", || {
        info_field(&mut raw, "persistence", "aof_rewrite_in_progress") == "0" && info_field(&mut raw, "persistence", "aof_rewrite_scheduled") == "0"
    });
    replica.signal("KILL");
    drop(replica);
    let restarted = Server::start_in(&dir, THREADS, &["--appendonly", "yes"]);
    assert_same(&contents(&restarted), &contents(&master), "the replica restarted from its append-only file");
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends each request to Shoal and to redis-server, both started with `extra`, and asserts
/// the same replies.
fn same_replies_as_redis(extra: &[&str], requests: &[&[&str]]) {
    let Some(redis) = Server::start_redis_with(extra) else { return };
    let shoal = Server::start(THREADS, extra);
    let (mut shoal_raw, mut redis_raw) = (shoal.raw(), redis.raw());
    for request in requests {
        assert_eq!(shoal_raw.command(request).unwrap(), redis_raw.command(request).unwrap(), "{request:?} with {extra:?}");
    }
}

/// `min-replicas-to-write` without replicas refuses writes (commands, queued commands, write
/// scripts) with NOREPLICAS; `replica-serve-stale-data no` on a replica whose master is
/// unreachable answers MASTERDOWN but to `stale` commands. As Redis does, byte for byte.
#[test]
fn noreplicas_and_masterdown_refusals_match_redis() {
    same_replies_as_redis(
        &["--min-replicas-to-write", "1"],
        &[
            &["SET", "k", "v"],
            &["GET", "k"],
            &["MULTI"],
            &["SET", "k", "v"],
            &["EXEC"],
            &["EVAL", "return redis.call('SET', KEYS[1], '1')", "1", "k"],
            &["EVAL", "#!lua\nreturn redis.call('SET', KEYS[1], '1')", "1", "k"],
            &["EVAL", "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])", "1", "k"],
            &["CONFIG", "SET", "min-replicas-to-write", "0"],
            &["SET", "k", "v"],
        ],
    );
    let nobody = shoal_testkit::free_port().to_string();
    same_replies_as_redis(
        &["--replicaof", "127.0.0.1", &nobody],
        &[
            &["GET", "k"],
            &["CONFIG", "SET", "replica-serve-stale-data", "no"],
            &["GET", "k"],
            &["SET", "k", "v"],
            &["PING"],
            &["DBSIZE"],
            &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
            &["GET", "k"],
            &["WAIT", "0", "0"],
            &["PSYNC", "?", "-1"],
        ],
    );
}

/// PUBLISH and SPUBLISH on a master reach the subscribers of its replicas, in order, and stay
/// out of the master's append-only file (as in Redis).
#[test]
fn published_messages_reach_subscribers_on_replicas_but_not_the_aof() {
    let dir = Server::scratch("publish-master");
    let master = Server::start_in(&dir, THREADS, &["--appendonly", "yes"]);
    let replica = shoal_replica_of(&master, &[]);
    let mut subscriber = replica.raw();
    subscriber.command(&["SUBSCRIBE", "news"]).unwrap();
    subscriber.command(&["SSUBSCRIBE", "shard-news"]).unwrap();
    let mut raw = master.raw();
    for i in 0..20 {
        raw.command(&["PUBLISH", "news", &format!("m{i}")]).unwrap();
    }
    raw.command(&["SPUBLISH", "shard-news", "s"]).unwrap();
    for i in 0..20 {
        assert_eq!(subscriber.read_reply().unwrap(), format!("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n${}\r\nm{i}\r\n", format!("m{i}").len()));
    }
    assert_eq!(subscriber.read_reply().unwrap(), "*3\r\n$8\r\nsmessage\r\n$10\r\nshard-news\r\n$1\r\ns\r\n");
    // A write after them reaches the file; they do not.
    raw.command(&["SET", "after", "1"]).unwrap();
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    let mut log = Vec::new();
    for entry in std::fs::read_dir(dir.join("appendonlydir")).unwrap() {
        log.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("after") && !log.contains("PUBLISH") && !log.contains("news"), "{log}");
    drop(replica);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SHUTDOWN right behind a burst of writes while the replica is busy (DEBUG SLEEP): more
/// than the sockets hold is still unsent when SHUTDOWN runs, so the master pauses writes and
/// waits for its replica to acknowledge everything before it exits.
#[test]
fn shutdown_waits_until_the_replica_has_every_write() {
    let mut master = Server::start(THREADS, &[]);
    let Some((replica, dir)) = redis_replica_with(&master, &["--enable-debug-command", "yes"]) else { return };
    let mut sleeper = replica.raw();
    sleeper.send(&Raw::encode(&["DEBUG", "SLEEP", "2"]));
    std::thread::sleep(Duration::from_millis(100));
    let mut raw = master.raw();
    let value = "v".repeat(500);
    let mut burst = Vec::new();
    for i in 0..100_000 {
        burst.extend(Raw::encode(&["SET", &format!("burst:{i}"), &value]));
    }
    burst.extend(Raw::encode(&["SHUTDOWN", "NOSAVE"]));
    raw.send(&burst);
    assert!(master.wait_exit(Duration::from_secs(60)).is_some(), "the master exits");
    assert_eq!(sleeper.read_reply().unwrap(), "+OK\r\n");
    assert_eq!(replica.raw().command(&["DBSIZE"]).unwrap(), ":100000\r\n");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads one command (a RESP array of bulk strings) from a replica.
fn read_command(reader: &mut impl std::io::BufRead) -> Vec<String> {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let count: usize = line.trim().strip_prefix('*').unwrap_or_else(|| panic!("an array, not {line:?}")).parse().unwrap();
    (0..count)
        .map(|_| {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let len: usize = line.trim().strip_prefix('$').unwrap().parse().unwrap();
            let mut bytes = vec![0; len + 2];
            std::io::Read::read_exact(reader, &mut bytes).unwrap();
            String::from_utf8_lossy(&bytes[..len]).into_owned()
        })
        .collect()
}

/// A master of our own (a socket in this test) drops the link in the middle of a
/// MULTI: Shoal asks to continue from before the MULTI, so the whole transaction comes
/// again and is applied once, as a Redis replica does.
#[test]
fn a_link_lost_inside_the_master_s_multi_resumes_before_it() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let replica = Server::start(THREADS, &["--replicaof", "127.0.0.1", &port]);
    let replid = "0123456789abcdef0123456789abcdef01234567";
    let handshake = |reader: &mut BufReader<std::net::TcpStream>, writer: &mut std::net::TcpStream| -> Vec<String> {
        loop {
            let command = read_command(reader);
            match command[0].to_ascii_uppercase().as_str() {
                "PING" => writer.write_all(b"+PONG\r\n").unwrap(),
                "REPLCONF" => writer.write_all(b"+OK\r\n").unwrap(),
                "PSYNC" => return command,
                other => panic!("unexpected {other}"),
            }
        }
    };
    let encode = |args: &[&str]| Raw::encode(args);
    // First link: a full sync of an empty dataset, then MULTI and a write, then the link drops.
    let (stream, _) = listener.accept().unwrap();
    let (mut reader, mut writer) = (BufReader::new(stream.try_clone().unwrap()), stream);
    assert_eq!(handshake(&mut reader, &mut writer), ["PSYNC", "?", "-1"]);
    let mut rdb = b"REDIS0009".to_vec();
    rdb.push(0xff);
    rdb.extend([0u8; 8]);
    writer.write_all(format!("+FULLRESYNC {replid} 0\r\n${}\r\n", rdb.len()).as_bytes()).unwrap();
    writer.write_all(&rdb).unwrap();
    assert_eq!(read_command(&mut reader), ["REPLCONF", "ACK", "0"]);
    let mut stream_bytes = encode(&["SELECT", "0"]);
    let before_multi = stream_bytes.len();
    stream_bytes.extend(encode(&["MULTI"]));
    stream_bytes.extend(encode(&["INCR", "counter"]));
    writer.write_all(&stream_bytes).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop((reader, writer));
    // Second link: the replica asks for the byte after the SELECT, before the MULTI.
    let (stream, _) = listener.accept().unwrap();
    let (mut reader, mut writer) = (BufReader::new(stream.try_clone().unwrap()), stream);
    assert_eq!(handshake(&mut reader, &mut writer), ["PSYNC", replid, &(before_multi + 1).to_string()]);
    writer.write_all(format!("+CONTINUE {replid}\r\n").as_bytes()).unwrap();
    let mut again = encode(&["MULTI"]);
    again.extend(encode(&["INCR", "counter"]));
    again.extend(encode(&["EXEC"]));
    writer.write_all(&again).unwrap();
    let mut raw = replica.raw();
    wait_until("the transaction is applied", || raw.command(&["GET", "counter"]).unwrap() == "$1\r\n1\r\n");
    let _ = reader.fill_buf();
}

/// `repl-backlog-ttl`: alone for that long, a master frees its backlog and starts a new
/// history; a replica that comes later gets a full sync and the same data.
#[test]
fn the_backlog_is_freed_after_repl_backlog_ttl_without_replicas() {
    let master = Server::start(THREADS, &["--repl-backlog-ttl", "1"]);
    let mut raw = master.raw();
    let Some((replica, dir)) = redis_replica_of(&master) else { return };
    raw.command(&["SET", "a", "1"]).unwrap();
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    let first_id = info_field(&mut raw, "replication", "master_replid");
    assert_eq!(info_field(&mut raw, "replication", "repl_backlog_active"), "1");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
    wait_until("the backlog is freed", || info_field(&mut raw, "replication", "repl_backlog_active") == "0");
    assert_ne!(info_field(&mut raw, "replication", "master_replid"), first_id);
    assert_eq!(info_field(&mut raw, "replication", "repl_backlog_histlen"), "0");
    raw.command(&["SET", "b", "2"]).unwrap();
    let Some((replica, dir)) = redis_replica_of(&master) else { return };
    write_and_compare(&master, &replica, "a replica after the backlog was freed");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An idle master still hears from a Shoal replica every second (REPLCONF ACK), so a Redis
/// master's `min-replicas-max-lag` counts it as good and takes writes.
#[test]
fn an_idle_replica_acknowledges_every_second() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0", "--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"]) else {
        return;
    };
    let _replica = shoal_replica_of(&master, &[]);
    let mut raw = master.raw();
    wait_until("the replica counts as good", || raw.command(&["SET", "k", "v"]).unwrap() == "+OK\r\n");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    let slave0 = info_field(&mut raw, "replication", "slave0");
    assert!(slave0.ends_with(",lag=0") || slave0.ends_with(",lag=1"), "{slave0}");
}

/// INFO replication of a replica whose master does not answer lists the fields Redis lists,
/// in Redis's order.
#[test]
fn a_replica_s_info_lists_redis_s_fields() {
    let nobody = shoal_testkit::free_port().to_string();
    let extra = ["--replicaof", "127.0.0.1", nobody.as_str()];
    let Some(redis) = Server::start_redis_with(&extra) else { return };
    let shoal = Server::start(THREADS, &extra);
    let names = |server: &Server| -> Vec<String> {
        let info = server.raw().command(&["INFO", "replication"]).unwrap();
        info.lines().filter_map(|line| line.split_once(':')).map(|(name, _)| name.to_owned()).collect()
    };
    assert_eq!(names(&shoal), names(&redis));
    // And of a master with one replica, min-replicas-to-write on.
    let Some(redis) = Server::start_redis_with(&["--min-replicas-to-write", "1", "--repl-diskless-sync-delay", "0"]) else { return };
    let shoal = Server::start(THREADS, &["--min-replicas-to-write", "1"]);
    let (Some((redis_replica, redis_dir)), Some((shoal_replica, shoal_dir))) = (redis_replica_of(&redis), redis_replica_of(&shoal)) else { return };
    assert_eq!(names(&shoal), names(&redis));
    drop((redis_replica, shoal_replica));
    let _ = std::fs::remove_dir_all(redis_dir);
    let _ = std::fs::remove_dir_all(shoal_dir);
}

/// Keys whose time has passed on a master that has not deleted them yet (its active expiry
/// off, nobody touching them): a Shoal replica's clients see them missing, in every kind of
/// read (single-key, cross-core, KEYS and SCAN, read-only scripts, MULTI), and DBSIZE still
/// counts them, byte for byte as a redis-server replica of the same master answers; once the
/// master deletes them, both replicas drop them.
#[test]
fn a_replica_hides_keys_whose_time_has_passed_until_the_master_deletes_them() {
    let Some(master) = Server::start_redis_with(&["--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0"]) else { return };
    let Some((redis_replica, dir)) = redis_replica_of(&master) else { return };
    let replica = shoal_replica_of(&master, &[]);
    let mut raw = master.raw();
    assert_eq!(raw.command(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap(), "+OK\r\n");
    for args in [
        &["SET", "gone", "v", "PX", "300"][..],
        &["SET", "kept", "v"],
        &["RPUSH", "list", "a", "b"],
        &["PEXPIRE", "list", "300"],
        &["SADD", "set:a", "x", "y"],
        &["PEXPIRE", "set:a", "300"],
        &["SADD", "set:b", "y", "z"],
        &["HSET", "hash", "f", "v"],
        &["PEXPIRE", "hash", "300"],
    ] {
        assert!(!raw.command(args).unwrap().starts_with('-'), "{args:?}");
    }
    assert_eq!(raw.command(&["WAIT", "2", "5000"]).unwrap(), ":2\r\n");
    std::thread::sleep(Duration::from_millis(400));
    let reads: &[&[&str]] = &[
        &["GET", "gone"],
        &["GET", "kept"],
        &["EXISTS", "gone", "kept", "list", "hash"],
        &["TTL", "gone"],
        &["PTTL", "list"],
        &["TYPE", "hash"],
        &["LRANGE", "list", "0", "-1"],
        &["HGETALL", "hash"],
        &["MGET", "gone", "kept", "list"],
        &["SUNION", "set:a", "set:b"],
        &["SINTERCARD", "2", "set:a", "set:b"],
        &["KEYS", "*"],
        &["SCAN", "0", "COUNT", "1000"],
        &["DBSIZE"],
        &["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "gone"],
        &["EVAL_RO", "return redis.call('EXISTS', KEYS[1], KEYS[2])", "2", "list", "kept"],
        &["OBJECT", "ENCODING", "gone"],
        &["DUMP", "gone"],
        &["STRLEN", "gone"],
    ];
    let answers = |server: &Server| -> Vec<String> {
        let mut raw = server.raw();
        let mut out: Vec<String> = reads.iter().map(|args| raw.command(args).unwrap()).collect();
        for args in [&["MULTI"][..], &["GET", "gone"], &["EXISTS", "list"], &["GET", "kept"]] {
            raw.command(args).unwrap();
        }
        out.push(raw.command(&["EXEC"]).unwrap());
        out
    };
    let sorted = |reply: &str| {
        // KEYS and SCAN list keys in an order of their own.
        let mut lines: Vec<&str> = reply.split("\r\n").collect();
        lines.sort_unstable();
        lines.join("\r\n")
    };
    let (ours, theirs) = (answers(&replica), answers(&redis_replica));
    for ((args, ours), theirs) in reads.iter().chain([&["MULTI ... EXEC"][..]].iter()).zip(&ours).zip(&theirs) {
        assert_eq!(sorted(ours), sorted(theirs), "{args:?} on the replicas, before the master's DELs");
    }
    assert_eq!(ours[13], ":6\r\n", "DBSIZE counts the keys not deleted yet");
    // The master deletes them (a read there expires each), and the replicas follow.
    for key in ["gone", "list", "set:a", "hash"] {
        raw.command(&["EXISTS", key]).unwrap();
    }
    assert_eq!(raw.command(&["WAIT", "2", "5000"]).unwrap(), ":2\r\n");
    let mut ours = replica.raw();
    wait_until("the master's DELs reach Shoal", || ours.command(&["DBSIZE"]).unwrap() == ":2\r\n");
    assert_eq!(ours.command(&["EXISTS", "gone"]).unwrap(), ":0\r\n");
    drop(redis_replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until `replica`'s offset reaches `master`'s, then compares their contents.
fn caught_up(master: &Server, replica: &Server, what: &str) {
    // (The master's PINGs may take the replica past the offset read here.)
    let offset: u64 = info_field(&mut master.raw(), "replication", "master_repl_offset").parse().unwrap();
    let mut raw = replica.raw();
    wait_until(what, || info_field(&mut raw, "replication", "master_repl_offset").parse::<u64>().unwrap() >= offset);
    assert_same(&contents(replica), &contents(master), what);
}

/// Chained replication: a Shoal replica of redis-server serves replicas of its own (a Shoal
/// one and a redis-server one), passing the master's stream on as it came: the same
/// replication id and offsets, the same data, writes made while they take their snapshot
/// included. Promoted (REPLICAOF NO ONE), it is their master: they continue from the
/// backlog under its new id and get its writes.
#[test]
fn a_replica_serves_replicas_of_its_own_and_they_follow_it_when_it_is_promoted() {
    let Some(top) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    fill(&top);
    let middle = shoal_replica_of(&top, &[]);
    // Writers on the top master while the chained replicas take their snapshots from the
    // middle one.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, mut con) = (stop.clone(), connect(&top));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                redis::cmd("INCR").arg(format!("during:{}", n % 50)).query::<i64>(&mut con).unwrap();
                redis::pipe().atomic().cmd("INCR").arg("tx:x").cmd("INCR").arg("tx:y").query::<redis::Value>(&mut con).unwrap();
                n += 1;
            }
        })
    };
    let bottom = shoal_replica_of(&middle, &[]);
    let Some((redis_bottom, dir)) = redis_replica_of(&middle) else { return };
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    write_after_sync(&top);
    assert_eq!(top.raw().command(&["SET", "last", "write"]).unwrap(), "+OK\r\n");
    caught_up(&top, &middle, "the middle replica");
    caught_up(&top, &bottom, "shoal replicating a shoal replica");
    caught_up(&top, &redis_bottom, "redis-server replicating a shoal replica");
    let top_id = info_field(&mut top.raw(), "replication", "master_replid");
    for replica in [&middle, &bottom, &redis_bottom] {
        assert_eq!(info_field(&mut replica.raw(), "replication", "master_replid"), top_id, "one history down the chain");
    }
    // The middle one promoted: its replicas continue under its new id.
    let mut raw = middle.raw();
    let partial_before: u64 = info_field(&mut raw, "stats", "sync_partial_ok").parse().unwrap();
    assert_eq!(raw.command(&["REPLICAOF", "NO", "ONE"]).unwrap(), "+OK\r\n");
    let new_id = info_field(&mut raw, "replication", "master_replid");
    assert_ne!(new_id, top_id);
    assert_eq!(info_field(&mut raw, "replication", "master_replid2"), top_id);
    for replica in [&bottom, &redis_bottom] {
        let mut replica_raw = replica.raw();
        wait_until("the chained replica follows the promoted one", || info_field(&mut replica_raw, "replication", "master_replid") == new_id);
    }
    assert_eq!(raw.command(&["SET", "after-promotion", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["WAIT", "2", "10000"]).unwrap(), ":2\r\n");
    let partial_after: u64 = info_field(&mut raw, "stats", "sync_partial_ok").parse().unwrap();
    assert_eq!(partial_after, partial_before + 2, "both continued from the backlog");
    assert_same(&contents(&bottom), &contents(&middle), "after the promotion (shoal)");
    assert_same(&contents(&redis_bottom), &contents(&middle), "after the promotion (redis-server)");
    drop(redis_bottom);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A manual failover: the replica is promoted, then the old master is made its replica at
/// run time; it asks to continue its own history, which the promoted one knows as its second
/// id, so it gets a partial resynchronisation and then the new master's writes.
#[test]
fn an_old_master_made_replica_of_its_promoted_replica_continues_from_the_backlog() {
    let old = Server::start(THREADS, &[]);
    fill(&old);
    let new = shoal_replica_of(&old, &[]);
    write_and_compare(&old, &new, "before the failover");
    caught_up(&old, &new, "the replica has everything");
    let mut new_raw = new.raw();
    assert_eq!(new_raw.command(&["REPLICAOF", "NO", "ONE"]).unwrap(), "+OK\r\n");
    let mut old_raw = old.raw();
    let port = new.port.to_string();
    assert_eq!(old_raw.command(&["REPLICAOF", "127.0.0.1", &port]).unwrap(), "+OK\r\n");
    wait_until("the old master's link is up", || info_field(&mut old_raw, "replication", "master_link_status") == "up");
    assert_eq!(info_field(&mut new_raw, "stats", "sync_partial_ok"), "1", "continued, not resynchronised");
    assert_eq!(info_field(&mut new_raw, "stats", "sync_full"), "0");
    assert_eq!(new_raw.command(&["SET", "after-failover", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(new_raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_same(&contents(&old), &contents(&new), "after the failover");
}

/// WAITAOF counts the replicas whose append-only file holds the connection's writes
/// (`REPLCONF ACK <offset> FACK <offset>`): one with `appendonly yes` counts, and after a
/// kill -9 and a restart from its own files it has the writes; one without an append-only
/// file never counts. On a replica WAITAOF is refused with Redis's text.
#[test]
fn waitaof_counts_the_replicas_whose_append_only_file_holds_the_writes() {
    for fsync in ["everysec", "always"] {
        let master = Server::start(THREADS, &["--appendonly", "yes"]);
        let dir = Server::scratch("replica-waitaof");
        let port = master.port.to_string();
        let durable = Server::start_in(&dir, THREADS, &["--replicaof", "127.0.0.1", &port, "--appendonly", "yes", "--appendfsync", fsync]);
        let volatile = shoal_replica_of(&master, &[]);
        let mut raw = durable.raw();
        wait_until("the replica's link is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
        assert!(raw.command(&["WAITAOF", "0", "0", "0"]).unwrap().starts_with("-ERR WAITAOF cannot be used with replica instances."));
        let mut master_raw = master.raw();
        for i in 0..50 {
            assert_eq!(master_raw.command(&["SET", &format!("k{i}"), "v"]).unwrap(), "+OK\r\n");
        }
        assert_eq!(master_raw.command(&["MSET", "m:a", "1", "m:b", "2", "m:c", "3"]).unwrap(), "+OK\r\n");
        assert_eq!(master_raw.command(&["WAITAOF", "1", "1", "10000"]).unwrap(), "*2\r\n:1\r\n:1\r\n", "appendfsync {fsync}");
        // Asking for both replicas: only the one with a file ever counts.
        let started = std::time::Instant::now();
        assert_eq!(master_raw.command(&["WAITAOF", "0", "2", "300"]).unwrap(), "*2\r\n:1\r\n:1\r\n");
        assert!(started.elapsed() >= Duration::from_millis(300), "it waited out its timeout");
        drop(volatile);
        durable.signal("KILL");
        drop(durable);
        let restarted = Server::start_in(&dir, THREADS, &["--appendonly", "yes"]);
        let mut raw = restarted.raw();
        assert_eq!(raw.command(&["MGET", "k0", "k49", "m:a", "m:c"]).unwrap(), "*4\r\n$1\r\nv\r\n$1\r\nv\r\n$1\r\n1\r\n$1\r\n3\r\n");
        drop(raw);
        drop(restarted);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Runs FAILOVER on `master` (followed by `replica`) and waits until the roles swapped.
fn fail_over(master: &Server, replica: &Server) {
    let mut raw = master.raw();
    assert_eq!(raw.command(&["FAILOVER"]).unwrap(), "+OK\r\n");
    let mut replica_raw = replica.raw();
    wait_until("the replica took over", || info_field(&mut replica_raw, "replication", "role") == "master");
    wait_until("the old master follows it", || {
        info_field(&mut raw, "replication", "master_link_status") == "up" && info_field(&mut raw, "replication", "master_failover_state") == "no-failover"
    });
    assert_eq!(info_field(&mut raw, "replication", "master_port"), replica.port.to_string());
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "-READONLY You can't write against a read only replica.\r\n");
    assert_eq!(replica_raw.command(&["SET", "after-failover", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(replica_raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_same(&contents(master), &contents(replica), "after FAILOVER");
}

/// FAILOVER, as Redis runs it: writes pause, the replica catches up, the master follows it
/// and asks it to take over (`PSYNC <replid> <offset> FAILOVER`); the replica continues the
/// same history. Shoal to Shoal, Shoal to redis-server, and redis-server to Shoal.
#[test]
fn failover_swaps_master_and_replica_without_losing_a_write() {
    let master = Server::start(THREADS, &[]);
    fill(&master);
    let replica = shoal_replica_of(&master, &[]);
    write_after_sync(&master);
    fail_over(&master, &replica);
    // A replica of redis-server takes over from a Shoal master...
    let Some((redis_replica, dir)) = redis_replica_of(&replica) else { return };
    drop(master);
    write_after_sync(&replica);
    fail_over(&replica, &redis_replica);
    // ...and a Shoal replica from a redis-server master.
    fail_over(&redis_replica, &replica);
    drop(redis_replica);
    let _ = std::fs::remove_dir_all(&dir);
}

/// FAILOVER's refusals, byte for byte as redis-server's, on a master with one replica, on
/// the replica, and on a master without replicas.
#[test]
fn failover_refusals_match_redis() {
    let Some(redis_master) = Server::start_redis_with(&[]) else { return };
    let Some((redis_replica, dir)) = redis_replica_of(&redis_master) else { return };
    let master = Server::start(THREADS, &[]);
    let replica = shoal_replica_of(&master, &[]);
    for request in [
        &["FAILOVER", "TIMEOUT", "0"][..],
        &["FAILOVER", "TIMEOUT", "abc"],
        &["FAILOVER", "FORCE"],
        &["FAILOVER", "TIMEOUT", "100", "FORCE"],
        &["FAILOVER", "TO", "127.0.0.1", "1"],
        &["FAILOVER", "TO", "127.0.0.1", "port"],
        &["FAILOVER", "TO", "127.0.0.1"],
        &["FAILOVER", "ABORT"],
        &["FAILOVER", "ABORT", "FORCE"],
        &["FAILOVER", "FORCE", "FORCE"],
        &["FAILOVER", "BOGUS"],
    ] {
        assert_eq!(master.raw().command(request).unwrap(), redis_master.raw().command(request).unwrap(), "{request:?} on a master");
    }
    for request in [&["FAILOVER"][..], &["FAILOVER", "ABORT"]] {
        assert_eq!(replica.raw().command(request).unwrap(), redis_replica.raw().command(request).unwrap(), "{request:?} on a replica");
    }
    drop(replica);
    drop(redis_replica);
    let _ = std::fs::remove_dir_all(&dir);
    let mut raw = master.raw();
    wait_until("the replica is gone", || info_field(&mut raw, "replication", "connected_slaves") == "0");
    assert_eq!(raw.command(&["FAILOVER"]).unwrap(), redis_master.raw().command(&["FAILOVER"]).unwrap());
}

/// A replica that does not catch up (its link paused by CLIENT PAUSE WRITE): FAILOVER waits
/// with writes paused, ABORT ends it, and a TIMEOUT without FORCE ends it too.
#[test]
fn a_failover_that_cannot_complete_is_aborted_and_writes_go_on() {
    let master = Server::start(THREADS, &[]);
    let replica = shoal_replica_of(&master, &[]);
    let mut raw = master.raw();
    assert_eq!(replica.raw().command(&["CLIENT", "PAUSE", "100000", "WRITE"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SET", "k", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["FAILOVER"]).unwrap(), "+OK\r\n");
    assert_eq!(info_field(&mut raw, "replication", "master_failover_state"), "waiting-for-sync");
    assert_eq!(raw.command(&["FAILOVER"]).unwrap(), "-ERR FAILOVER already in progress.\r\n");
    assert_eq!(raw.command(&["REPLICAOF", "127.0.0.1", "1"]).unwrap(), "-ERR REPLICAOF not allowed while failing over.\r\n");
    assert_eq!(raw.command(&["FAILOVER", "ABORT"]).unwrap(), "+OK\r\n");
    assert_eq!(info_field(&mut raw, "replication", "master_failover_state"), "no-failover");
    assert_eq!(raw.command(&["SET", "k", "2"]).unwrap(), "+OK\r\n");
    let port = replica.port.to_string();
    assert_eq!(raw.command(&["FAILOVER", "TO", "127.0.0.1", &port, "TIMEOUT", "300"]).unwrap(), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(info_field(&mut raw, "replication", "master_failover_state"), "no-failover");
    assert_eq!(info_field(&mut raw, "replication", "role"), "master");
    assert_eq!(raw.command(&["SET", "k", "3"]).unwrap(), "+OK\r\n");
    assert_eq!(replica.raw().command(&["CLIENT", "UNPAUSE"]).unwrap(), "+OK\r\n");
}

/// A stream continued after `+CONTINUE` selects a database again only when it changes one:
/// the replica goes on in the database it had (it once went back to 0 after every link
/// drop). With Redis as the master, and with a promoted Shoal replica (append-only file on)
/// feeding a replica of its own, whose next write must go once and where it belongs.
#[test]
fn a_continued_stream_goes_on_in_the_database_it_had_selected() {
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    let middle = shoal_replica_of(&master, &["--appendonly", "yes"]);
    let bottom = shoal_replica_of(&middle, &[]);
    let mut con = master.raw();
    assert_eq!(con.command(&["SELECT", "5"]).unwrap(), "+OK\r\n");
    assert_eq!(con.command(&["SET", "x", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(con.command(&["WAIT", "1", "5000"]).unwrap(), ":1\r\n");
    let mut middle_raw = middle.raw();
    let partial_before = info_field(&mut master.raw(), "stats", "sync_partial_ok");
    assert_eq!(middle_raw.command(&["CLIENT", "KILL", "TYPE", "master"]).unwrap(), ":1\r\n");
    assert_eq!(con.command(&["SET", "y", "2"]).unwrap(), "+OK\r\n");
    wait_until("the middle replica continued", || info_field(&mut master.raw(), "stats", "sync_partial_ok") != partial_before);
    assert_eq!(con.command(&["INCR", "z"]).unwrap(), ":1\r\n");
    caught_up(&master, &middle, "after the link dropped (middle)");
    caught_up(&master, &bottom, "after the link dropped (bottom)");
    // Promoted: its replica continues, and its own next write in db 5 lands in db 5 once.
    assert_eq!(middle_raw.command(&["REPLICAOF", "NO", "ONE"]).unwrap(), "+OK\r\n");
    assert_eq!(middle_raw.command(&["SELECT", "5"]).unwrap(), "+OK\r\n");
    assert_eq!(middle_raw.command(&["INCR", "z"]).unwrap(), ":2\r\n");
    assert_eq!(middle_raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    let mut bottom_raw = bottom.raw();
    assert_eq!(bottom_raw.command(&["SELECT", "5"]).unwrap(), "+OK\r\n");
    assert_eq!(bottom_raw.command(&["MGET", "x", "y", "z"]).unwrap(), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n2\r\n");
    assert_same(&contents(&bottom), &contents(&middle), "after the promotion");
}

/// The RDB file keeps where it stands in the replication stream (`repl-id`, `repl-offset`,
/// `repl-stream-db`, as Redis saves them): a replica restarted from it continues from its
/// master's backlog instead of a full resynchronisation, and so do the replicas of a master
/// restarted from its file (its old id is its second one then). Both with redis-server on
/// the other side.
#[test]
fn restarts_from_the_rdb_file_continue_the_replication_history() {
    // A Shoal replica restarted.
    let Some(master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    fill(&master);
    let dir = Server::scratch("replica-restart");
    let port = master.port.to_string();
    let args = ["--replicaof", "127.0.0.1", port.as_str(), "--save", ""];
    let replica = Server::start_in(&dir, THREADS, &args);
    let mut raw = replica.raw();
    wait_until("the replica's link is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
    let mut master_raw = master.raw();
    assert_eq!(master_raw.command(&["SELECT", "3"]).unwrap(), "+OK\r\n");
    assert_eq!(master_raw.command(&["SET", "before", "1"]).unwrap(), "+OK\r\n");
    caught_up(&master, &replica, "before the restart");
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(replica);
    // Written while it was away, in the database the stream had selected.
    assert_eq!(master_raw.command(&["SET", "while-away", "1"]).unwrap(), "+OK\r\n");
    let replica = Server::start_in(&dir, THREADS, &args);
    let mut raw = replica.raw();
    wait_until("the replica's link is up again", || info_field(&mut raw, "replication", "master_link_status") == "up");
    assert_eq!(info_field(&mut master_raw, "stats", "sync_partial_ok"), "1", "continued after the restart");
    assert_eq!(info_field(&mut master_raw, "stats", "sync_full"), "1");
    caught_up(&master, &replica, "after the restart");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);

    // A Shoal master restarted (SHUTDOWN saves): its redis-server replica continues.
    let dir = Server::scratch("master-restart");
    let shoal = Server::start_in(&dir, THREADS, &["--save", "3600 1"]);
    fill(&shoal);
    let Some((redis_replica, replica_dir)) = redis_replica_of(&shoal) else { return };
    write_after_sync(&shoal);
    caught_up(&shoal, &redis_replica, "before the master's restart");
    let port = shoal.port;
    let mut shoal = shoal;
    let _ = shoal.raw().command(&["SHUTDOWN"]);
    assert_eq!(shoal.wait_exit(Duration::from_secs(30)), Some(0));
    drop(shoal);
    let shoal = Server::start_in_on(&dir, port, THREADS, &["--save", "3600 1"]);
    let mut raw = shoal.raw();
    let mut replica_raw = redis_replica.raw();
    wait_until("the replica is back", || {
        info_field(&mut raw, "replication", "connected_slaves") == "1" && info_field(&mut replica_raw, "replication", "master_link_status") == "up"
    });
    assert_eq!(info_field(&mut raw, "stats", "sync_partial_ok"), "1", "continued after the master's restart");
    assert_eq!(info_field(&mut raw, "stats", "sync_full"), "0");
    assert_eq!(raw.command(&["SET", "after-restart", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["WAIT", "1", "10000"]).unwrap(), ":1\r\n");
    assert_same(&contents(&redis_replica), &contents(&shoal), "after the master's restart");
    drop(redis_replica);
    drop(shoal);
    let _ = std::fs::remove_dir_all(&replica_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `replica-announce-ip` and `replica-announce-port`: what a replica tells its master
/// (REPLCONF ip-address and listening-port), which the master shows in INFO and ROLE; both
/// ways between Shoal and redis-server.
#[test]
fn a_replica_announces_the_address_its_master_shows() {
    let announce = ["--replica-announce-ip", "10.1.2.3", "--replica-announce-port", "7777"];
    let Some(redis_master) = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]) else { return };
    let _replica = shoal_replica_of(&redis_master, &announce);
    let mut raw = redis_master.raw();
    wait_until("redis-server lists the replica", || info_field(&mut raw, "replication", "slave0").starts_with("ip=10.1.2.3,port=7777,"));
    let master = Server::start(THREADS, &[]);
    let Some((_redis_replica, dir)) = redis_replica_with(&master, &announce) else { return };
    let mut raw = master.raw();
    wait_until("shoal lists the replica", || info_field(&mut raw, "replication", "slave0").starts_with("ip=10.1.2.3,port=7777,"));
    assert!(raw.command(&["ROLE"]).unwrap().contains("$8\r\n10.1.2.3\r\n$4\r\n7777\r\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// FAILOVER while clients write on every core: every write the old master acknowledged is
/// on the new one, and the writes held by the failover's pause meet READONLY afterwards
/// (never an acknowledgement that is then lost).
#[test]
fn a_failover_under_writes_loses_no_acknowledged_write() {
    let master = Server::start(THREADS, &[]);
    let replica = shoal_replica_of(&master, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, mut raw) = (stop.clone(), master.raw());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut readonly = 0;
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && readonly < 3 {
                    let key = format!("w{w}:{n}");
                    let reply = if n.is_multiple_of(2) {
                        raw.command(&["SET", &key, "1"]).unwrap()
                    } else {
                        raw.command(&["MSET", &key, "1", &format!("{key}:other"), "2"]).unwrap()
                    };
                    match reply.as_str() {
                        "+OK\r\n" => acked.push(key),
                        r if r.starts_with("-READONLY") => readonly += 1,
                        r => panic!("unexpected reply {r:?}"),
                    }
                    n += 1;
                }
                (acked, readonly)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut raw = master.raw();
    assert_eq!(raw.command(&["FAILOVER"]).unwrap(), "+OK\r\n");
    let mut replica_raw = replica.raw();
    wait_until("the replica took over", || info_field(&mut replica_raw, "replication", "role") == "master");
    wait_until("the failover ended", || info_field(&mut raw, "replication", "master_failover_state") == "no-failover");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for writer in writers {
        let (acked, readonly) = writer.join().unwrap();
        assert!(readonly > 0, "the writer met the replica the old master became");
        for key in acked {
            let here = replica_raw.command(&["EXISTS", &key]).unwrap();
            if here != ":1\r\n" {
                let old = raw.command(&["EXISTS", &key]).unwrap();
                let dbsize = (raw.command(&["DBSIZE"]).unwrap(), replica_raw.command(&["DBSIZE"]).unwrap());
                panic!("{key} was acknowledged: new master {here:?}, old master {old:?}, dbsize old/new {dbsize:?}, readonly {readonly}");
            }
            total += 1;
        }
    }
    assert!(total > 100, "the writers got going ({total})");
}

#[test]
fn a_full_sync_holds_little_more_than_the_dataset_it_loads() {
    const KEYS: usize = 300_000;
    let master = Server::start(THREADS, &[]);
    let mut master_raw = master.raw();
    assert_eq!(master_raw.command(&["DEBUG", "POPULATE", &KEYS.to_string(), "key", "100"]).unwrap(), "+OK\r\n");
    let dir = Server::scratch("replica-load-peak");
    let port = master.port.to_string();
    let replica = Server::start_in(&dir, THREADS, &["--replicaof", "127.0.0.1", port.as_str(), "--save", ""]);
    let mut raw = replica.raw();
    wait_until("the replica's link is up", || info_field(&mut raw, "replication", "master_link_status") == "up");
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), format!(":{KEYS}\r\n"));
    let (peak, resident) = settled_peak_and_resident(replica.pid());
    // Reading the whole snapshot before installing it peaked at about 1.4x here.
    assert!((peak as f64) < 1.3 * resident as f64, "the sync peaked at {peak} kB for {resident} kB resident after it");
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

//! EVAL, EVALSHA, FCALL and friends on a multi-core server: replies compared with Debian's
//! redis-server, scripts over keys of several cores, the script cache and function
//! libraries seen from every core, scripts inside MULTI, and atomicity under contention.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shoal_testkit::{key_core, keys_on_distinct_cores, Raw, Server};
use shoal_tests::{connect, shoal_and_redis, THREADS};

/// Sends `requests` on one fresh connection per server and asserts Shoal's replies equal
/// redis-server's (or, without redis-server, that Shoal answered them all).
fn assert_same_replies(servers: &[Server], requests: &[Vec<&str>]) {
    let replies: Vec<Vec<String>> = servers
        .iter()
        .map(|server| {
            let mut raw = server.raw();
            assert_eq!(raw.command(&["FLUSHALL"]).unwrap(), "+OK\r\n");
            assert_eq!(raw.command(&["SCRIPT", "FLUSH"]).unwrap(), "+OK\r\n");
            assert_eq!(raw.command(&["FUNCTION", "FLUSH"]).unwrap(), "+OK\r\n");
            requests.iter().map(|request| raw.command(request).unwrap_or_else(|e| panic!("{request:?}: {e}"))).collect()
        })
        .collect();
    if let [ours, theirs] = &replies[..] {
        for ((request, a), b) in requests.iter().zip(ours).zip(theirs) {
            assert_eq!(a, b, "{request:?}");
        }
    }
}

#[test]
fn scripts_over_keys_of_several_cores_answer_as_redis_does() {
    let servers = shoal_and_redis(&[]);
    let k = keys_on_distinct_cores("s", 4, THREADS);
    let (a, b, c, d) = (k[0].as_str(), k[1].as_str(), k[2].as_str(), k[3].as_str());
    let transfer = "local from = tonumber(redis.call('GET', KEYS[1]) or '0') \
                    if from < tonumber(ARGV[1]) then return redis.error_reply('ERR insufficient funds') end \
                    redis.call('DECRBY', KEYS[1], ARGV[1]) return redis.call('INCRBY', KEYS[2], ARGV[1])";
    let requests: Vec<Vec<&str>> = vec![
        vec!["SET", a, "100"],
        vec!["EVAL", transfer, "2", a, b, "30"],
        vec!["EVAL", transfer, "2", a, b, "300"],
        vec!["MGET", a, b],
        vec!["EVAL", "return redis.call('MSET', KEYS[1], ARGV[1], KEYS[2], ARGV[2], KEYS[3], ARGV[3])", "3", b, c, d, "x", "y", "z"],
        vec!["EVAL", "return redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4])", "4", a, b, c, d],
        vec!["EVAL", "return redis.call('DEL', KEYS[1], KEYS[2])", "2", c, d],
        vec!["EVAL", "redis.call('RPUSH', KEYS[1], 1, 2, 3) return redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')", "2", c, d],
        vec!["EVAL", "return redis.call('BLPOP', KEYS[1], 0)", "1", c],
        vec!["EVAL", "return redis.call('BLPOP', KEYS[1], 0)", "1", a],
        vec!["EVAL", "return redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3])", "3", a, c, d],
        vec!["EVAL", "return {KEYS[1], ARGV[1], 3, 3.9, true, false, {ok='fine'}}", "1", a, "arg"],
        vec!["EVAL", "return redis.pcall('INCR', KEYS[1])", "1", d],
        vec!["EVAL", "return redis.call('NOSUCH')", "0"],
        vec!["EVAL", "return redis.pcall('GET')", "0"],
        vec!["EVAL", "return redis.call('MULTI')", "0"],
        vec!["EVAL_RO", "return redis.call('SET', KEYS[1], 'no')", "1", a],
        vec!["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", a],
        vec!["EVAL", "#!lua flags=no-writes\nreturn redis.call('DEL', KEYS[1])", "1", a],
        vec!["EVAL", "redis.call('SELECT', 5) redis.call('SET', KEYS[1], 'five') return redis.call('EXISTS', KEYS[1])", "1", a],
        vec!["GET", a],
        vec!["SELECT", "5"],
        vec!["GET", a],
        vec!["SELECT", "0"],
        vec!["SCRIPT", "LOAD", "return redis.call('INCRBY', KEYS[1], ARGV[1])"],
        vec!["EVALSHA", "0000000000000000000000000000000000000000", "0"],
        vec!["EVAL", "return 1", "-1"],
        vec!["EVAL", "return 1", "3", a],
        vec!["EVAL", "return 1", "x"],
        vec!["FUNCTION", "LOAD", "#!lua name=bank\nredis.register_function('move', function(keys, args) redis.call('DECRBY', keys[1], args[1]) return redis.call('INCRBY', keys[2], args[1]) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('MGET', keys[1], keys[2]) end, flags={'no-writes'}}"],
        vec!["SET", c, "10"],
        vec!["FCALL", "move", "2", c, d, "4"],
        vec!["FCALL_RO", "peek", "2", c, d],
        vec!["FCALL_RO", "move", "2", c, d, "4"],
        vec!["FCALL", "nosuch", "0"],
        vec!["FUNCTION", "DELETE", "bank"],
        vec!["FCALL", "move", "2", c, d, "1"],
    ];
    assert_same_replies(&servers, &requests);
}

#[test]
fn time_stands_still_during_a_script_as_in_redis() {
    // A key set to expire in 1 ms is still there 20 ms later, within the same script: both
    // servers look keys up at the script's start time. (PTTL is left out: Redis 7.0 computes
    // it from the clock, 7.2 and later from the script's time as Shoal does.)
    let servers = shoal_and_redis(&[]);
    let k = keys_on_distinct_cores("frozen", 2, THREADS);
    let script = "redis.call('SET', KEYS[1], 'v', 'PX', 1) redis.call('SET', KEYS[2], 'w', 'PX', 1) \
                  local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
                  repeat local u = redis.call('TIME') until u[1] * 1000000 + u[2] - start > 20000 \
                  return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2]), redis.call('GET', KEYS[2])}";
    assert_same_replies(&servers, &[vec!["EVAL", script, "2", &k[0], &k[1]], vec!["EXISTS", &k[0], &k[1]]]);
    let mut raw = servers[0].raw();
    assert_eq!(raw.command(&["EVAL", script, "2", &k[0], &k[1]]).unwrap(), "*3\r\n$1\r\nv\r\n:1\r\n$1\r\nw\r\n");
}

#[test]
fn the_script_cache_and_functions_are_seen_from_every_core() {
    let server = Server::start(THREADS, &[]);
    // Connections land on cores by the kernel's choice: open enough that several cores
    // host one, and check every one of them.
    let mut clients: Vec<Raw> = (0..12).map(|_| server.raw()).collect();
    let body = "return redis.call('INCR', KEYS[1])";
    let sha = clients[0].command(&["SCRIPT", "LOAD", body]).unwrap();
    let sha = sha.lines().nth(1).expect("a bulk reply").to_string();
    let fresh = "return 'fresh'";
    let fresh_sha = {
        let reply = clients[1].command(&["EVAL", fresh, "0"]).unwrap();
        assert_eq!(reply, "$5\r\nfresh\r\n");
        clients[1].command(&["SCRIPT", "LOAD", fresh]).unwrap().lines().nth(1).unwrap().to_string()
    };
    assert_eq!(
        clients[0].command(&["FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('hello', function() return 'hi' end)"]).unwrap(),
        "$3\r\nlib\r\n"
    );
    for (i, client) in clients.iter_mut().enumerate() {
        let key = format!("counter{i}");
        assert_eq!(client.command(&["EVALSHA", &sha, "1", &key]).unwrap(), ":1\r\n", "connection {i}");
        assert_eq!(client.command(&["EVALSHA", &fresh_sha, "0"]).unwrap(), "$5\r\nfresh\r\n", "connection {i}: EVAL cached it everywhere");
        assert_eq!(client.command(&["FCALL", "hello", "0"]).unwrap(), "$2\r\nhi\r\n", "connection {i}");
    }
    assert_eq!(clients[2].command(&["SCRIPT", "FLUSH"]).unwrap(), "+OK\r\n");
    for client in &mut clients {
        assert!(client.command(&["EVALSHA", &sha, "1", "k"]).unwrap().starts_with("-NOSCRIPT"));
    }
}

#[test]
fn undeclared_keys_on_other_cores_are_refused_unless_allowed() {
    let script = "return redis.call('SET', ARGV[1], 'v')";
    let server = Server::start(THREADS, &[]);
    let mut client = server.raw();
    // Some key on a core other than this connection's: try them all, one must be refused.
    let keys = keys_on_distinct_cores("u", THREADS, THREADS);
    let refused = keys.iter().filter(|key| client.command(&["EVAL", script, "0", key]).unwrap().contains("script-undeclared-keys")).count();
    assert_eq!(refused, THREADS - 1, "every core but the connection's refuses an undeclared key");
    // Declared, any core works.
    for key in &keys {
        assert_eq!(client.command(&["EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", key]).unwrap(), "+OK\r\n");
    }
    // Commands over every core (DBSIZE, KEYS, FLUSHDB) need every core too.
    assert!(client.command(&["EVAL", "return redis.call('DBSIZE')", "0"]).unwrap().contains("script-undeclared-keys"));
    let allowing = Server::start(THREADS, &["--script-undeclared-keys", "yes"]);
    let mut client = allowing.raw();
    for key in &keys {
        assert_eq!(client.command(&["EVAL", script, "0", key]).unwrap(), "+OK\r\n", "{key} on core {}", key_core(key.as_bytes(), THREADS));
    }
    assert_eq!(client.command(&["EVAL", "return redis.call('DBSIZE')", "0"]).unwrap(), format!(":{THREADS}\r\n"));
}

#[test]
fn scripts_inside_multi_and_watch() {
    let servers = shoal_and_redis(&[]);
    let k = keys_on_distinct_cores("m", 4, THREADS);
    for server in &servers {
        let (mut a, mut b) = (server.raw(), server.raw());
        assert_eq!(a.command(&["SET", &k[0], "1"]).unwrap(), "+OK\r\n");
        assert_eq!(a.command(&["MULTI"]).unwrap(), "+OK\r\n");
        assert_eq!(a.command(&["INCR", &k[0]]).unwrap(), "+QUEUED\r\n");
        assert_eq!(a.command(&["EVAL", "return redis.call('INCRBY', KEYS[1], 10) + redis.call('INCR', KEYS[2])", "2", &k[0], &k[1]]).unwrap(), "+QUEUED\r\n");
        assert_eq!(a.command(&["GET", &k[0]]).unwrap(), "+QUEUED\r\n");
        assert_eq!(a.command(&["EXEC"]).unwrap(), "*3\r\n:2\r\n:13\r\n$2\r\n12\r\n", "port {}", server.port);
        // A script's write fails another client's WATCH.
        assert_eq!(a.command(&["WATCH", &k[2]]).unwrap(), "+OK\r\n");
        assert_eq!(b.command(&["EVAL", "return redis.call('SET', KEYS[1], 'changed')", "1", &k[2]]).unwrap(), "+OK\r\n");
        assert_eq!(a.command(&["MULTI"]).unwrap(), "+OK\r\n");
        assert_eq!(a.command(&["GET", &k[2]]).unwrap(), "+QUEUED\r\n");
        assert_eq!(a.command(&["EXEC"]).unwrap(), "*-1\r\n", "port {}", server.port);
    }
}

#[test]
fn transfers_by_script_across_cores_never_change_the_total() {
    let server = Server::start(THREADS, &[]);
    let accounts: Arc<Vec<String>> = Arc::new(keys_on_distinct_cores("sacct", 4, THREADS));
    const INITIAL: i64 = 1000;
    let mut setup = connect(&server);
    for account in accounts.iter() {
        redis::cmd("SET").arg(account).arg(INITIAL).query::<()>(&mut setup).unwrap();
    }
    let transfer = redis::Script::new(
        "local from = tonumber(redis.call('GET', KEYS[1])) \
         if from < tonumber(ARGV[1]) then return 0 end \
         redis.call('DECRBY', KEYS[1], ARGV[1]) redis.call('INCRBY', KEYS[2], ARGV[1]) return 1",
    );
    let total_script = redis::Script::new("local t = 0 for _, k in ipairs(KEYS) do t = t + tonumber(redis.call('GET', k)) end return t");
    let deadline = Instant::now() + Duration::from_secs(2);
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..4)
        .map(|mover| {
            let (mut connection, accounts, transfer) = (connect(&server), accounts.clone(), transfer.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(mover);
                let mut net = vec![0i64; accounts.len()];
                let mut done = 0u64;
                while done < 3000 && Instant::now() < deadline {
                    let (from, to) = (rng.random_range(0..accounts.len()), rng.random_range(0..accounts.len()));
                    let amount: i64 = rng.random_range(1..50);
                    let moved: i64 = transfer.key(&accounts[from]).key(&accounts[to]).arg(amount).invoke(&mut connection).unwrap();
                    if moved == 1 {
                        net[from] -= amount;
                        net[to] += amount;
                        done += 1;
                    }
                }
                (net, done)
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (mut connection, accounts, stop, total_script) = (connect(&server), accounts.clone(), stop.clone(), total_script.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let mut invocation = total_script.prepare_invoke();
                    for account in accounts.iter() {
                        invocation.key(account);
                    }
                    let total: i64 = invocation.invoke(&mut connection).unwrap();
                    assert_eq!(total, INITIAL * accounts.len() as i64, "a script saw money appear or vanish");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut net = vec![0i64; accounts.len()];
    let mut transfers = 0;
    for mover in movers {
        let (moved, done) = mover.join().unwrap();
        for (sum, delta) in net.iter_mut().zip(moved) {
            *sum += delta;
        }
        transfers += done;
    }
    stop.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(transfers > 200 && reads > 50, "enough ran to test anything: {transfers} transfers, {reads} reads");
    let balances: Vec<i64> = redis::cmd("MGET").arg(&*accounts).query(&mut setup).unwrap();
    for ((account, balance), delta) in accounts.iter().zip(&balances).zip(&net) {
        assert_eq!(*balance, INITIAL + delta, "{account}: no transfer lost or applied twice");
    }
}

#[test]
fn scripts_and_transactions_taking_keys_in_different_orders_all_finish() {
    let server = Server::start(THREADS, &[]);
    let keys: Arc<Vec<String>> = Arc::new(keys_on_distinct_cores("both", 4, THREADS));
    const ROUNDS: usize = 200;
    let script = redis::Script::new("for _, k in ipairs(KEYS) do redis.call('INCR', k) end return #KEYS");
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (mut connection, keys, script) = (connect(&server), keys.clone(), script.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(200 + client);
                for _ in 0..ROUNDS {
                    let mut order: Vec<&String> = keys.iter().collect();
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.random_range(0..=i));
                    }
                    // A read timeout (10 s) fails the test if anything never finishes.
                    if rng.random_bool(0.5) {
                        let mut invocation = script.prepare_invoke();
                        for key in &order {
                            invocation.key(*key);
                        }
                        let n: i64 = invocation.invoke(&mut connection).unwrap();
                        assert_eq!(n, 4);
                    } else {
                        redis::cmd("MULTI").query::<()>(&mut connection).unwrap();
                        for key in &order {
                            redis::cmd("INCR").arg(*key).query::<()>(&mut connection).unwrap();
                        }
                        let replies: Vec<i64> = redis::cmd("EXEC").query(&mut connection).unwrap();
                        assert_eq!(replies.len(), 4);
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every client finished");
    }
    let mut check = connect(&server);
    let counts: Vec<i64> = redis::cmd("MGET").arg(&*keys).query(&mut check).unwrap();
    assert!(counts.iter().all(|&n| n == 8 * ROUNDS as i64), "every increment applied exactly once: {counts:?}");
}

#[test]
fn resp3_clients_get_resp3_replies_from_scripts() {
    let servers = shoal_and_redis(&[]);
    let k = keys_on_distinct_cores("r3", 2, THREADS);
    let requests: Vec<Vec<&str>> = vec![
        vec!["HSET", &k[0], "f", "v"],
        vec!["EVAL", "redis.setresp(3) return redis.call('HGETALL', KEYS[1])", "1", &k[0]],
        vec!["EVAL", "return redis.call('HGETALL', KEYS[1])", "1", &k[0]],
        vec!["EVAL", "return {double=3.5}", "0"],
        vec!["EVAL", "return {map={a=1}}", "0"],
        vec!["EVAL", "return {set={x=true}}", "0"],
        vec!["EVAL", "return {big_number='123456789012345678901234567890'}", "0"],
        vec!["EVAL", "return true", "0"],
        vec!["EVAL", "return nil", "0"],
        vec!["EVAL", "redis.setresp(3) return redis.call('GET', KEYS[1])", "1", &k[1]],
        vec!["EVAL", "redis.setresp(3) local r = redis.call('GET', KEYS[1]) return type(r)", "1", &k[1]],
    ];
    for proto in ["2", "3"] {
        let replies: Vec<Vec<String>> = servers
            .iter()
            .map(|server| {
                let mut raw = server.raw();
                raw.command(&["HELLO", proto]).unwrap();
                assert_eq!(raw.command(&["FLUSHALL"]).unwrap(), "+OK\r\n");
                requests.iter().map(|request| raw.command(request).unwrap()).collect()
            })
            .collect();
        if let [ours, theirs] = &replies[..] {
            for ((request, a), b) in requests.iter().zip(ours).zip(theirs) {
                assert_eq!(a, b, "RESP{proto}: {request:?}");
            }
        }
    }
}

/// A connection on a core other than `busy`'s: with two threads, one of a few connections
/// lands on the other core; the others would wait for the script, so reads time out fast.
fn other_core_reply(server: &Server, request: &[&str]) -> String {
    for _ in 0..16 {
        let mut raw = server.raw();
        raw.set_read_timeout(Duration::from_millis(300));
        raw.send(&Raw::encode(request));
        if let Ok(reply) = raw.read_reply() {
            return reply;
        }
    }
    panic!("no connection reached a core that is not running the script");
}

#[test]
fn script_kill_and_busy_replies_from_another_core() {
    let server = Server::start(2, &["--busy-reply-threshold", "100"]);
    let mut busy = server.raw();
    busy.set_read_timeout(Duration::from_secs(10));
    // A key of the busy connection's core (found by trying an undeclared key of each core).
    let candidates = keys_on_distinct_cores("k", 2, 2);
    let own = candidates
        .iter()
        .find(|key| busy.command(&["EVAL", "return redis.call('SET', ARGV[1], 'x')", "0", key]).unwrap() == "+OK\r\n")
        .expect("one key is on the connection's core");
    assert_eq!(other_core_reply(&server, &["SCRIPT", "KILL"]), "-NOTBUSY No scripts in execution right now.\r\n");
    busy.send(&Raw::encode(&["EVAL", "local i = 0 while true do i = i + 1 end", "0"]));
    std::thread::sleep(Duration::from_millis(200));
    // Past busy-reply-threshold, commands for the busy core get BUSY.
    assert_eq!(other_core_reply(&server, &["GET", own]), "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n");
    assert_eq!(other_core_reply(&server, &["FUNCTION", "KILL"]), "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n");
    assert_eq!(other_core_reply(&server, &["SCRIPT", "KILL"]), "+OK\r\n");
    let killed = busy.read_reply().unwrap();
    assert!(killed.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{killed:?}");
    // The core serves again.
    assert_eq!(busy.command(&["PING"]).unwrap(), "+PONG\r\n");
    assert_eq!(other_core_reply(&server, &["GET", own]), "$1\r\nx\r\n", "no BUSY once the script ended");
    // A script that wrote cannot be killed. It writes a key of its own core, so it parks no
    // other core.
    busy.send(&Raw::encode(&["EVAL", "redis.call('SET', ARGV[1], 'x') local i = 0 while true do i = i + 1 end", "0", own]));
    std::thread::sleep(Duration::from_millis(200));
    assert!(other_core_reply(&server, &["SCRIPT", "KILL"]).starts_with("-UNKILLABLE Sorry the script already executed write commands"));
    // SHUTDOWN NOSAVE still stops the server (it closes the connection without a reply; the
    // connections that land on the busy core are never read, and the kernel picks the core,
    // so new ones are sent until one lands on the other core).
    let mut server = server;
    let mut shutdowns = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Ok(mut raw) = server.raw_result() {
            raw.send(&Raw::encode(&["SHUTDOWN", "NOSAVE"]));
            shutdowns.push(raw);
        }
        if let Some(code) = server.wait_exit(Duration::from_millis(200)) {
            break Some(code);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
    };
    assert_eq!(code, Some(0));
}

#[test]
fn a_script_write_fails_the_watches_of_its_keys_on_one_core_or_four() {
    for threads in [1, THREADS] {
        let server = Server::start(threads, &[]);
        let (mut watcher, mut writer) = (server.raw(), server.raw());
        for key in keys_on_distinct_cores("watched", threads.min(2), threads) {
            assert_eq!(watcher.command(&["WATCH", &key]).unwrap(), "+OK\r\n");
            assert_eq!(writer.command(&["EVAL", "return redis.call('INCR', KEYS[1])", "1", &key]).unwrap(), ":1\r\n");
            assert_eq!(watcher.command(&["MULTI"]).unwrap(), "+OK\r\n");
            assert_eq!(watcher.command(&["GET", &key]).unwrap(), "+QUEUED\r\n");
            assert_eq!(watcher.command(&["EXEC"]).unwrap(), "*-1\r\n", "{key}, {threads} threads");
        }
    }
}

#[test]
fn redis_call_pcall_and_acl_check_answer_as_redis_does_at_their_edges() {
    // The host functions are raw Lua C functions (crates/script, `host_function`): their
    // argument rules, error values, raising and error locations against the oracle.
    let servers = shoal_and_redis(&[]);
    let k = keys_on_distinct_cores("h", 2, THREADS);
    let (a, b) = (k[0].as_str(), k[1].as_str());
    let requests: Vec<Vec<&str>> = vec![
        vec!["SET", b, "text"],
        vec!["EVAL", "return redis.call()", "0"],
        vec!["EVAL", "return redis.pcall()", "0"],
        vec!["EVAL", "return redis.call('set', KEYS[1], {})", "1", a],
        vec!["EVAL", "return redis.pcall('set', KEYS[1], true)", "1", a],
        vec!["EVAL", "redis.call('set', KEYS[1], 3.5) return redis.call('get', KEYS[1])", "1", a],
        vec!["EVAL", "redis.call('set', KEYS[1], 1e20) return redis.call('get', KEYS[1])", "1", a],
        vec!["EVAL", "redis.call('set', KEYS[1], -0.1) return redis.call('get', KEYS[1])", "1", a],
        vec!["EVAL", "return redis.call('nosuchcommand', KEYS[1])", "1", a],
        vec!["EVAL", "return redis.call('incr', KEYS[1])", "1", b],
        vec!["EVAL", "\n\nlocal x = 1\nreturn redis.call('incr', KEYS[1])", "1", b],
        vec!["EVAL", "local function f() return redis.call('incr', KEYS[1]) end\nlocal ok, e = pcall(f)\nreturn {tostring(ok), e}", "1", b],
        vec!["EVAL", "local ok, e = pcall(redis.call, 'incr', KEYS[1]) return {tostring(ok), e}", "1", b],
        vec!["EVAL", "local r = redis.pcall('incr', KEYS[1]) return {type(r), r.err}", "1", b],
        vec!["EVAL", "return redis.pcall('incr', KEYS[1])", "1", b],
        vec!["EVAL", "local r = redis.call('get', 'nosuchkey') return {type(r), tostring(r)}", "1", "nosuchkey"],
        vec!["EVAL", "return redis.call('ping')", "0"],
        vec!["EVAL", "return {redis.call('ping', 'x'), redis.call('echo', 'y')}", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('get', KEYS[1])", "1", a],
        vec!["EVAL", "return redis.acl_check_cmd('nosuchcommand')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd()", "0"],
        vec!["EVAL", "return type(redis.acl_check_cmd('set', KEYS[1], 'v'))", "1", a],
        vec!["EVAL", "return redis.acl_check_cmd('client', 'nosuchsubcommand')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('CLIENT')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('Config', 'GET', 'maxmemory')", "0"],
        vec!["EVAL", "return redis.acl_check_cmd('get')", "0"],
        vec!["EVAL", "redis.setresp(3) return redis.call('hgetall', 'nosuchhash')", "1", "nosuchhash"],
        vec!["EVAL", "redis.setresp(3) local r = redis.call('get', 'nosuchkey') return type(r)", "1", "nosuchkey"],
    ];
    assert_same_replies(&servers, &requests);
}

#[test]
fn script_return_values_and_library_edges_answer_as_redis_does() {
    let servers = shoal_and_redis(&[]);
    let scripts = [
        "return {1, 2, nil, 4}",
        "return {1.9, -1.9, 2^53, -0.0, 1e300}",
        "return {true, false, {ok='fine'}, {err='ERR bad'}}",
        "return {err='custom failure'}",
        "return redis.error_reply('MYERR something')",
        "return redis.error_reply('-MYERR dash')",
        "return redis.error_reply('noprefix')",
        "return redis.status_reply('DONE')",
        "return redis.status_reply(42)",
        "return {{{1}}, {}, {{}}}",
        "return 'a\\0b'",
        "return tostring(1/0)",
        "return 3.99",
        "return -3.99",
        "return nil",
        "return {1, {2, {3, {4}}}}",
        "return redis.sha1hex('')",
        "return redis.sha1hex(42)",
        "return redis.sha1hex()",
        "return cjson.encode({1, 2, 3})",
        "return cjson.encode({a = {b = 'c'}})",
        "return cjson.decode('[1,2,{\"x\":true}]')[3].x and 1 or 0",
        "return cjson.decode('not json')",
        "return cmsgpack.unpack(cmsgpack.pack({1, 'two', 3.5}))",
        "return bit.band(0xff, 0x0f)",
        "return bit.tohex(255)",
        "return struct.pack('>I2', 258)",
        "return string.format('%5.2f|%d|%s', 3.14159, 42, 'x')",
        "return redis.log(redis.LOG_WARNING)",
        "return redis.log('notanumber', 'x')",
        "return redis.setresp(4)",
        "redis.setresp(3) return {true, false}",
        "redis.setresp(3) return {double = 1.5}",
        "redis.setresp(3) return {map = {a = 1}}",
        "redis.setresp(3) return {set = {x = true}}",
        "redis.setresp(3) return {big_number = '123456789012345678901234567890'}",
        "return table.concat({'a', 'b', 'c'}, '-')",
        "return #KEYS + #ARGV",
        "error('plain string error')",
        "error({err = 'ERR table error'})",
        "error()",
        "local t = setmetatable({}, {__index = function() return 7 end}) return t.anything",
        "return unpack({1, 2, 3})",
        "return select('#', 1, 2, 3)",
        "return type(_G)",
        "x = 1",
        "return loadstring('return 1')()",
        "return math.huge",
        "return string.rep('ab', 3)",
        "return tonumber('0x10')",
    ];
    let requests: Vec<Vec<&str>> = scripts.iter().map(|script| vec!["EVAL", *script, "0"]).collect();
    assert_same_replies(&servers, &requests);
}

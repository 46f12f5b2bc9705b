//! Blocking commands against the real binary with four cores: clients blocked on keys of any
//! core, served in the order they blocked, by plain pushes, cross-core transactions, RENAME
//! and MOVE; timeouts; disconnects and CLIENT UNBLOCK; exactly-once delivery under load; and
//! the immediate replies and errors compared with redis-server.

use std::time::{Duration, Instant};

use shoal_testkit::{keys_on_distinct_cores, Raw, Server};
use shoal_tests::{assert_replies, shoal_and_redis, THREADS};

fn info_field(raw: &mut Raw, section: &str, field: &str) -> String {
    let info = raw.command(&["INFO", section]).unwrap();
    info.split("\r\n").find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')).map(str::to_owned)).unwrap_or_default()
}

/// Waits until INFO says `n` clients are blocked (so tests can order who blocks first).
fn wait_blocked(raw: &mut Raw, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if info_field(raw, "clients", "blocked_clients") == n.to_string() {
            return;
        }
        assert!(Instant::now() < deadline, "{n} clients blocked in time (now {})", info_field(raw, "clients", "blocked_clients"));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a blocking command on a new connection without reading its reply.
fn block(server: &Server, args: &[&str]) -> Raw {
    let mut raw = server.raw();
    raw.set_read_timeout(Duration::from_secs(20));
    raw.send(&Raw::encode(args));
    raw
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn pair(key: &str, value: &str) -> String {
    format!("*2\r\n{}{}", bulk(key), bulk(value))
}

#[test]
fn waiters_on_one_key_are_served_in_the_order_they_blocked() {
    let server = Server::start(THREADS, &[]);
    let mut control = server.raw();
    let mut waiters = Vec::new();
    for n in 0..4 {
        waiters.push(block(&server, &["BLPOP", "queue", "0"]));
        wait_blocked(&mut control, n + 1);
    }
    assert_eq!(control.command(&["RPUSH", "queue", "a", "b", "c", "d", "e"]).unwrap(), ":5\r\n");
    for (waiter, element) in waiters.iter_mut().zip(["a", "b", "c", "d"]) {
        assert_eq!(waiter.read_reply().unwrap(), pair("queue", element));
    }
    assert_eq!(control.command(&["LRANGE", "queue", "0", "-1"]).unwrap(), format!("*1\r\n{}", bulk("e")));
    wait_blocked(&mut control, 0);
    assert_eq!(info_field(&mut control, "clients", "total_blocking_keys"), "0");
}

#[test]
fn a_client_blocked_on_keys_of_several_cores_is_served_once_by_the_first_push() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("multi", 4, THREADS);
    let mut control = server.raw();
    let mut args = vec!["BRPOP"];
    args.extend(keys.iter().map(String::as_str));
    args.push("0");
    let mut waiter = block(&server, &args);
    wait_blocked(&mut control, 1);
    assert_eq!(info_field(&mut control, "clients", "total_blocking_keys"), "4");
    control.command(&["RPUSH", &keys[2], "x", "y"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), pair(&keys[2], "y"));
    // The other cores forget the waiter: a later push stays where it is.
    wait_blocked(&mut control, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut control, "clients", "total_blocking_keys") != "0" {
        assert!(Instant::now() < deadline, "every core forgets the served waiter");
        std::thread::sleep(Duration::from_millis(5));
    }
    control.command(&["RPUSH", &keys[0], "z"]).unwrap();
    assert_eq!(control.command(&["LLEN", &keys[0]]).unwrap(), ":1\r\n");
    // The first key in argument order that has elements wins at once.
    control.command(&["RPUSH", &keys[3], "w"]).unwrap();
    assert_eq!(control.command(&args).unwrap(), pair(&keys[0], "z"));
}

#[test]
fn timeouts_answer_nil_in_the_protocol_of_the_client() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let started = Instant::now();
    assert_eq!(raw.command(&["BLPOP", "nothing", "0.2"]).unwrap(), "*-1\r\n");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(raw.command(&["BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.05"]).unwrap(), "$-1\r\n");
    raw.command(&["HELLO", "3"]).unwrap();
    assert_eq!(raw.command(&["BZPOPMIN", "nothing", "0.05"]).unwrap(), "_\r\n");
    assert_eq!(raw.command(&["BLMOVE", "nothing", "dst", "LEFT", "RIGHT", "0.05"]).unwrap(), "_\r\n");
}

#[test]
fn a_disconnected_waiter_is_forgotten_and_loses_nothing() {
    let server = Server::start(THREADS, &[]);
    let mut control = server.raw();
    let waiter = block(&server, &["BLPOP", "gone", "0"]);
    wait_blocked(&mut control, 1);
    drop(waiter);
    wait_blocked(&mut control, 0);
    control.command(&["RPUSH", "gone", "kept"]).unwrap();
    assert_eq!(control.command(&["LRANGE", "gone", "0", "-1"]).unwrap(), format!("*1\r\n{}", bulk("kept")));
}

#[test]
fn blmove_moves_between_cores_for_a_waiter() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("move", 2, THREADS);
    let (source, destination) = (&keys[0], &keys[1]);
    let mut control = server.raw();
    let mut waiter = block(&server, &["BLMOVE", source, destination, "RIGHT", "LEFT", "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", source, "one", "two"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), bulk("two"));
    assert_eq!(control.command(&["LRANGE", source, "0", "-1"]).unwrap(), format!("*1\r\n{}", bulk("one")));
    assert_eq!(control.command(&["LRANGE", destination, "0", "-1"]).unwrap(), format!("*1\r\n{}", bulk("two")));
    // BRPOPLPUSH whose destination holds a string: the waiter gets WRONGTYPE, nothing moves.
    control.command(&["DEL", source]).unwrap();
    control.command(&["SET", destination, "string"]).unwrap();
    let mut waiter = block(&server, &["BRPOPLPUSH", source, destination, "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", source, "x"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert_eq!(control.command(&["LLEN", source]).unwrap(), ":1\r\n");
}

/// An array of bulk strings, as a reply reads.
fn strings(items: &[&str]) -> String {
    format!("*{}\r\n{}", items.len(), items.iter().map(|s| bulk(s)).collect::<String>())
}

#[test]
fn blmovem_count_wakes_on_the_first_push_and_exactly_waits_for_enough() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("movem", 2, THREADS);
    let mut control = server.raw();
    // Source and destination on one core ({t}), and on two.
    for (source, destination) in [("{t}src", "{t}dst"), (keys[0].as_str(), keys[1].as_str())] {
        control.command(&["DEL", source, destination]).unwrap();
        let mut waiter = block(&server, &["BLMOVEM", source, destination, "LEFT", "RIGHT", "0", "COUNT", "5", "BULK"]);
        wait_blocked(&mut control, 1);
        control.command(&["RPUSH", source, "a", "b"]).unwrap();
        assert_eq!(waiter.read_reply().unwrap(), strings(&["a", "b"]));
        assert_eq!(control.command(&["LRANGE", destination, "0", "-1"]).unwrap(), strings(&["a", "b"]));

        // EXACTLY 3: two elements are not enough; a third (by LINSERT) is.
        control.command(&["DEL", source, destination]).unwrap();
        let mut waiter = block(&server, &["BLMOVEM", source, destination, "LEFT", "LEFT", "0", "EXACTLY", "3", "OBO"]);
        wait_blocked(&mut control, 1);
        control.command(&["RPUSH", source, "1", "2"]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        wait_blocked(&mut control, 1);
        assert_eq!(control.command(&["EXISTS", destination]).unwrap(), ":0\r\n");
        control.command(&["LINSERT", source, "BEFORE", "1", "0"]).unwrap();
        assert_eq!(waiter.read_reply().unwrap(), strings(&["2", "1", "0"]));
        assert_eq!(control.command(&["EXISTS", source]).unwrap(), ":0\r\n");
        assert_eq!(control.command(&["LRANGE", destination, "0", "-1"]).unwrap(), strings(&["2", "1", "0"]));
    }
}

#[test]
fn blmovem_exactly_keeps_its_turn_while_a_blpop_behind_it_is_served() {
    let server = Server::start(THREADS, &[]);
    let mut control = server.raw();
    let mut movem = block(&server, &["BLMOVEM", "{q}src", "{q}dst", "LEFT", "RIGHT", "0", "EXACTLY", "2", "BULK"]);
    wait_blocked(&mut control, 1);
    let mut first = block(&server, &["BLPOP", "{q}src", "0"]);
    wait_blocked(&mut control, 2);
    let mut second = block(&server, &["BLPOP", "{q}src", "0"]);
    wait_blocked(&mut control, 3);
    // One element: too few for BLMOVEM, so the first BLPOP takes it.
    control.command(&["RPUSH", "{q}src", "a"]).unwrap();
    assert_eq!(first.read_reply().unwrap(), pair("{q}src", "a"));
    // Two: BLMOVEM is ahead of the second BLPOP.
    control.command(&["RPUSH", "{q}src", "b", "c"]).unwrap();
    assert_eq!(movem.read_reply().unwrap(), strings(&["b", "c"]));
    control.command(&["RPUSH", "{q}src", "d"]).unwrap();
    assert_eq!(second.read_reply().unwrap(), pair("{q}src", "d"));
}

#[test]
fn blmovem_times_out_with_a_null_array_and_does_not_wait_inside_multi() {
    let server = Server::start(THREADS, &[]);
    let mut control = server.raw();
    let mut waiter = block(&server, &["BLMOVEM", "src", "dst", "LEFT", "RIGHT", "0.05", "EXACTLY", "3", "BULK"]);
    assert_eq!(waiter.read_reply().unwrap(), "*-1\r\n");
    control.command(&["RPUSH", "src", "x"]).unwrap();
    assert_eq!(control.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(control.command(&["BLMOVEM", "src", "dst", "LEFT", "RIGHT", "0", "EXACTLY", "3", "BULK"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(control.command(&["BLMOVEM", "src", "dst", "LEFT", "RIGHT", "0"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(control.command(&["EXEC"]).unwrap(), format!("*2\r\n*-1\r\n{}", strings(&["x"])));
    // Errors before any wait.
    assert_eq!(control.command(&["BLMOVEM", "src", "dst", "LEFT", "RIGHT", "0", "COUNT", "0", "OBO"]).unwrap(), "-ERR count should be greater than 0\r\n");
    assert_eq!(control.command(&["BLMOVEM", "src", "dst", "LEFT", "RIGHT", "-1"]).unwrap(), "-ERR timeout is negative\r\n");
    assert_eq!(control.command(&["BLMOVEM", "src", "dst", "UP", "RIGHT", "0"]).unwrap(), "-ERR syntax error\r\n");
}

#[test]
fn keys_created_by_rename_move_and_cross_core_commands_wake_waiters() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("wake", 3, THREADS);
    let mut control = server.raw();

    let mut waiter = block(&server, &["BLPOP", &keys[0], "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", &keys[1], "renamed"]).unwrap();
    assert_eq!(control.command(&["RENAME", &keys[1], &keys[0]]).unwrap(), "+OK\r\n");
    assert_eq!(waiter.read_reply().unwrap(), pair(&keys[0], "renamed"));

    let mut waiter = block(&server, &["BLPOP", &keys[0], "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["SELECT", "1"]).unwrap();
    control.command(&["RPUSH", &keys[0], "moved"]).unwrap();
    assert_eq!(control.command(&["MOVE", &keys[0], "0"]).unwrap(), ":1\r\n");
    control.command(&["SELECT", "0"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), pair(&keys[0], "moved"));

    // LMOVE from another core is a transaction: its push wakes the waiter when it releases.
    let mut waiter = block(&server, &["BLPOP", &keys[0], "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", &keys[2], "lmoved"]).unwrap();
    control.command(&["LMOVE", &keys[2], &keys[0], "LEFT", "LEFT"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), pair(&keys[0], "lmoved"));

    let mut waiter = block(&server, &["BZPOPMIN", &keys[1], &keys[2], "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["ZADD", &keys[2], "2", "b", "1", "a"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), format!("*3\r\n{}{}{}", bulk(&keys[2]), bulk("a"), bulk("1")));

    assert_eq!(control.command(&["DEL", &keys[2]]).unwrap(), ":1\r\n", "b is left");
    let mut waiter = block(&server, &["BZMPOP", "0", "2", &keys[1], &keys[2], "MAX", "COUNT", "5"]);
    wait_blocked(&mut control, 1);
    control.command(&["ZADD", &keys[1], "3", "c", "4", "d"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), format!("*2\r\n{}*2\r\n*2\r\n{}{}*2\r\n{}{}", bulk(&keys[1]), bulk("d"), bulk("4"), bulk("c"), bulk("3")));

    let mut waiter = block(&server, &["BLMPOP", "0", "2", &keys[1], &keys[2], "RIGHT", "COUNT", "2"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", &keys[1], "p", "q", "r"]).unwrap();
    assert_eq!(waiter.read_reply().unwrap(), format!("*2\r\n{}*2\r\n{}{}", bulk(&keys[1]), bulk("r"), bulk("q")));
}

#[test]
fn client_unblock_ends_a_wait_as_a_timeout_or_an_error() {
    let server = Server::start(THREADS, &[]);
    let mut control = server.raw();
    for (reason, expected) in [("TIMEOUT", "*-1\r\n"), ("ERROR", "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")] {
        let mut waiter = server.raw();
        let id = waiter.command(&["CLIENT", "ID"]).unwrap().trim_start_matches(':').trim_end().to_owned();
        waiter.send(&Raw::encode(&["BLPOP", "never", "0"]));
        wait_blocked(&mut control, 1);
        let list = control.command(&["CLIENT", "LIST", "ID", &id]).unwrap();
        assert!(list.contains("flags=b"), "a blocked client shows flag b: {list}");
        assert_eq!(control.command(&["CLIENT", "UNBLOCK", &id, reason]).unwrap(), ":1\r\n");
        assert_eq!(waiter.read_reply().unwrap(), expected);
        assert_eq!(control.command(&["CLIENT", "UNBLOCK", &id]).unwrap(), ":0\r\n", "no longer blocked");
        assert_eq!(waiter.command(&["PING"]).unwrap(), "+PONG\r\n", "the connection stays usable");
    }
}

#[test]
fn every_pushed_element_reaches_exactly_one_waiter() {
    let server = Server::start(THREADS, &[]);
    let keys = keys_on_distinct_cores("load", 4, THREADS);
    const CONSUMERS: usize = 8;
    const ELEMENTS: usize = 400;
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let mut raw = server.raw();
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let mut args = vec!["BLPOP"];
                    args.extend(keys.iter().map(String::as_str));
                    // Short timeouts race with the pushes on purpose.
                    args.push("0.05");
                    let reply = raw.command(&args).unwrap();
                    if reply == "*-1\r\n" {
                        let done = raw.command(&["EXISTS", "done"]).unwrap() == ":1\r\n";
                        if done {
                            return got;
                        }
                        continue;
                    }
                    let element = reply.rsplit("\r\n").nth(1).unwrap().to_owned();
                    got.push(element);
                }
            })
        })
        .collect();
    let mut producer = server.raw();
    for n in 0..ELEMENTS {
        let key = &keys[n % keys.len()];
        producer.command(&["RPUSH", key, &format!("e{n}")]).unwrap();
    }
    // Wait until every list is drained, then tell the consumers to stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: usize = keys.iter().map(|k| producer.command(&["LLEN", k]).unwrap().trim_start_matches(':').trim_end().parse::<usize>().unwrap()).sum();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "consumers drain the lists ({left} left)");
        std::thread::sleep(Duration::from_millis(10));
    }
    producer.command(&["SET", "done", "1"]).unwrap();
    let mut all: Vec<String> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    all.sort();
    let mut expected: Vec<String> = (0..ELEMENTS).map(|n| format!("e{n}")).collect();
    expected.sort();
    assert_eq!(all, expected, "every element delivered exactly once");
}

/// Redis 7.2 changed huge and tiny timeouts (7.0 truncated them): Shoal follows 7.2.
#[test]
fn timeouts_beyond_the_clock_are_out_of_range_as_in_redis_7_2() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    for timeout in ["inf", "1e400", "1e16"] {
        assert_eq!(raw.command(&["BLPOP", "k", timeout]).unwrap(), "-ERR timeout is out of range\r\n", "{timeout}");
    }
    assert_eq!(raw.command(&["BLPOP", "k", "-inf"]).unwrap(), "-ERR timeout is negative\r\n");
    let started = Instant::now();
    assert_eq!(raw.command(&["BLPOP", "k", "0.0001"]).unwrap(), "*-1\r\n", "a tiny timeout is 1 ms, not forever");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn immediate_replies_and_errors_match_redis() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["RPUSH", "{b}l", "a", "b", "c"], ":3\r\n"),
            (&["BLPOP", "{b}none", "{b}l", "0"], "*2\r\n$4\r\n{b}l\r\n$1\r\na\r\n"),
            (&["BRPOP", "{b}l", "1"], "*2\r\n$4\r\n{b}l\r\n$1\r\nc\r\n"),
            (&["BLMPOP", "0", "1", "{b}l", "LEFT", "COUNT", "5"], "*2\r\n$4\r\n{b}l\r\n*1\r\n$1\r\nb\r\n"),
            (&["BLPOP", "{b}l", "-1"], "-ERR timeout is negative\r\n"),
            (&["BLPOP", "{b}l", "abc"], "-ERR timeout is not a float or out of range\r\n"),
            (&["BLPOP", "{b}l"], "-ERR wrong number of arguments for 'blpop' command\r\n"),
            (&["BLMPOP", "0", "0", "{b}l", "LEFT"], "-ERR numkeys should be greater than 0\r\n"),
            (&["BLMPOP", "0", "1", "{b}l", "UP"], "-ERR syntax error\r\n"),
            (&["BLMPOP", "0", "1", "{b}l", "LEFT", "COUNT", "0"], "-ERR count should be greater than 0\r\n"),
            (&["BLMPOP", "0", "1", "{b}l", "LEFT", "COUNT"], "-ERR syntax error\r\n"),
            (&["BLMPOP", "0", "2", "{b}l"], "-ERR wrong number of arguments for 'blmpop' command\r\n"),
            (&["BLMPOP", "0", "2", "{b}l", "LEFT"], "-ERR syntax error\r\n"),
            (&["BLMPOP", "x", "1", "{b}l", "LEFT"], "-ERR timeout is not a float or out of range\r\n"),
            (&["BLMOVE", "{b}l", "{b}m", "UP", "LEFT", "0"], "-ERR syntax error\r\n"),
            (&["SET", "{b}s", "x"], "+OK\r\n"),
            (&["BLPOP", "{b}none", "{b}s", "0"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            (&["BZPOPMIN", "{b}s", "0"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            (&["BLMOVE", "{b}s", "{b}m", "LEFT", "LEFT", "0"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            (&["RPUSH", "{b}l", "z"], ":1\r\n"),
            (&["BLMOVE", "{b}l", "{b}s", "LEFT", "LEFT", "0"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            (&["BRPOPLPUSH", "{b}l", "{b}m", "0"], "$1\r\nz\r\n"),
            (&["ZADD", "{b}z", "1.5", "m", "-2", "n"], ":2\r\n"),
            (&["BZPOPMAX", "{b}z", "0"], "*3\r\n$4\r\n{b}z\r\n$1\r\nm\r\n$3\r\n1.5\r\n"),
            (&["BZMPOP", "0", "1", "{b}z", "MIN"], "*2\r\n$4\r\n{b}z\r\n*1\r\n*2\r\n$1\r\nn\r\n$2\r\n-2\r\n"),
            (&["BZMPOP", "0", "1", "{b}z", "MIDDLE"], "-ERR syntax error\r\n"),
        ],
    );
}

#[test]
fn a_script_that_pushes_serves_clients_blocked_on_its_key() {
    // One core (the script runs in place beside the waiter) and four (it may run elsewhere).
    for threads in [1, THREADS] {
        let server = Server::start(threads, &[]);
        let mut control = server.raw();
        for (n, key) in keys_on_distinct_cores("scripted", threads.min(2), threads).iter().enumerate() {
            let mut waiter = block(&server, &["BLPOP", key, "0"]);
            wait_blocked(&mut control, 1);
            let pushed = control.command(&["EVAL", "return redis.call('RPUSH', KEYS[1], ARGV[1], 'rest')", "1", key, &n.to_string()]).unwrap();
            assert_eq!(pushed, ":2\r\n", "{threads} threads");
            assert_eq!(waiter.read_reply().unwrap(), pair(key, &n.to_string()), "{threads} threads");
            assert_eq!(control.command(&["LRANGE", key, "0", "-1"]).unwrap(), format!("*1\r\n{}", bulk("rest")));
            wait_blocked(&mut control, 0);
        }
    }
}

//! MIGRATE, against Debian's redis-server 7.0 as the oracle: the same requests sent by a
//! Shoal source (four cores) and a Redis source to the same kind of target give the same
//! replies, byte for byte, and leave the same data on both sides; Shoal and Redis take
//! each other's keys.

use shoal_testkit::Server;
use shoal_tests::{assert_same, contents, fill, THREADS};

/// Loads the same keys into `server`: every type, one with a TTL, spread over the cores.
fn load(server: &Server) {
    let mut raw = server.raw();
    for args in [
        &["SET", "s", "string"][..],
        &["SET", "ttl", "v", "PX", "600000"],
        &["RPUSH", "list", "a", "b", "c"],
        &["HSET", "hash", "f", "v", "g", "w"],
        &["SADD", "set", "x", "y"],
        &["ZADD", "zset", "1", "one", "2", "two"],
        &["SET", "busy", "here"],
        &["SET", "{t}a", "1"],
        &["SET", "{t}b", "2"],
        &["SET", "in-exec", "1"],
    ] {
        assert!(!raw.command(args).unwrap().starts_with('-'), "{args:?}");
    }
}

/// The requests, with `{port}` for the target's port.
const REQUESTS: &[&[&str]] = &[
    &["MIGRATE", "127.0.0.1", "{port}", "s", "0", "5000"],
    &["MIGRATE", "127.0.0.1", "{port}", "nosuch", "0", "5000"],
    &["MIGRATE", "127.0.0.1", "{port}", "", "0", "5000", "KEYS", "list", "hash", "nosuch", "set"],
    &["MIGRATE", "127.0.0.1", "{port}", "zset", "3", "5000", "COPY"],
    &["MIGRATE", "127.0.0.1", "{port}", "ttl", "0", "5000"],
    &["MIGRATE", "127.0.0.1", "{port}", "busy", "0", "5000"],
    &["MIGRATE", "127.0.0.1", "{port}", "busy", "0", "5000", "COPY", "REPLACE"],
    &["MIGRATE", "127.0.0.1", "{port}", "", "0", "5000", "KEYS", "{t}a", "busy", "{t}b"],
    &["MIGRATE", "127.0.0.1", "{port}", "s", "0", "5000", "KEYS", "x"],
    &["MIGRATE", "127.0.0.1", "{port}", "s", "0", "5000", "BOGUS"],
    &["MIGRATE", "127.0.0.1", "{port}", "s", "0", "5000", "AUTH"],
    &["MIGRATE", "127.0.0.1", "{port}", "s", "0", "soon"],
    &["MIGRATE", "127.0.0.1", "{port}", "s", "db", "5000"],
    &["MIGRATE", "127.0.0.1", "{port}", "", "0", "5000", "KEYS"],
    &["MIGRATE", "127.0.0.1", "{port}", "s", "0"],
];

/// Runs [`REQUESTS`] from `source` to `target` (which holds `busy` already), then one
/// inside MULTI/EXEC.
fn run(source: &Server, target: &Server) -> Vec<String> {
    let port = target.port.to_string();
    let mut raw = source.raw();
    let mut replies: Vec<String> = REQUESTS
        .iter()
        .map(|request| {
            let request: Vec<&str> = request.iter().map(|arg| if *arg == "{port}" { port.as_str() } else { arg }).collect();
            raw.command(&request).unwrap()
        })
        .collect();
    for request in [&["MULTI"][..], &["INCR", "in-exec"], &["MIGRATE", "127.0.0.1", &port, "in-exec", "0", "5000"], &["EXEC"]] {
        replies.push(raw.command(request).unwrap());
    }
    replies
}

#[test]
fn migrate_replies_and_moves_keys_as_redis_does() {
    let Some(redis_source) = Server::start_redis_with(&[]) else { return };
    let Some(redis_target) = Server::start_redis_with(&[]) else { return };
    let shoal_source = Server::start(THREADS, &[]);
    let shoal_target = Server::start(THREADS, &[]);
    for server in [&redis_source, &shoal_source] {
        load(server);
    }
    for target in [&redis_target, &shoal_target] {
        assert_eq!(target.raw().command(&["SET", "busy", "there"]).unwrap(), "+OK\r\n");
    }
    // Shoal to Shoal: the same answers as Redis to Redis...
    let expected = run(&redis_source, &redis_target);
    let redis_after = (contents(&redis_source), contents(&redis_target));
    let got = run(&shoal_source, &shoal_target);
    assert_eq!(got.len(), expected.len());
    for (index, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "{:?}", REQUESTS.get(index));
    }
    // ...and the same data on both sides.
    assert_same(&contents(&shoal_source), &redis_after.0, "the source after the MIGRATEs");
    assert_same(&contents(&shoal_target), &redis_after.1, "the target after the MIGRATEs");
    // The key with a TTL kept it.
    let pttl: i64 = shoal_target.raw().command(&["PTTL", "ttl"]).unwrap()[1..].trim().parse().unwrap();
    assert!((590_000..=600_000).contains(&pttl), "{pttl}");
}

#[test]
fn migrate_between_shoal_and_redis_both_ways_and_through_auth() {
    let Some(redis) = Server::start_redis_with(&[]) else { return };
    assert_eq!(redis.raw().command(&["CONFIG", "SET", "requirepass", "secret"]).unwrap(), "+OK\r\n");
    let shoal = Server::start(THREADS, &[]);
    fill(&shoal);
    let keys: Vec<String> = {
        let mut raw = shoal.raw();
        let reply = raw.command(&["KEYS", "*"]).unwrap();
        reply.split("\r\n").filter(|line| !line.is_empty() && !line.starts_with('*') && !line.starts_with('$')).map(str::to_owned).collect()
    };
    let before = contents(&shoal);
    let port = redis.port.to_string();
    let mut request: Vec<&str> = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "AUTH", "wrong", "KEYS"];
    request.extend(keys.iter().map(String::as_str));
    let refused = shoal.raw().command(&request).unwrap();
    assert!(refused.starts_with("-ERR Target instance replied with error: WRONGPASS"), "{refused}");
    assert_same(&contents(&shoal), &before, "nothing moved after a refused AUTH");
    request[7] = "secret";
    assert_eq!(shoal.raw().command(&request).unwrap(), "+OK\r\n");
    assert_eq!(shoal.raw().command(&["DBSIZE"]).unwrap(), ":0\r\n");
    let mut redis_raw = redis.raw();
    assert_eq!(redis_raw.command(&["AUTH", "secret"]).unwrap(), "+OK\r\n");
    // And back, Redis to Shoal.
    let port = shoal.port.to_string();
    let mut back: Vec<&str> = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    back.extend(keys.iter().map(String::as_str));
    assert_eq!(redis_raw.command(&back).unwrap(), "+OK\r\n");
    assert_same(&contents(&shoal), &before, "the keys back from redis-server");
    // Nobody listening: Redis's IOERR, and the key stays.
    let nobody = shoal_testkit::free_port().to_string();
    assert_eq!(shoal.raw().command(&["MIGRATE", "127.0.0.1", &nobody, &keys[0], "0", "100"]).unwrap(), "-IOERR error or timeout connecting to the client\r\n");
    assert_same(&contents(&shoal), &before, "nothing moved to nobody");
}

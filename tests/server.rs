//! The server as a process and as clients see it: databases, HELLO and RESP3, client names,
//! shutdown by command and by signal, the limits (maxclients, client-query-buffer-limit,
//! proto-max-bulk-len), startup failures, and the real `redis-cli`.
//!
//! Where an expectation is Redis's exact text, the same check runs against Debian's
//! redis-server too when it is installed, so the expected bytes are Redis's, not our guess.

use std::process::Command;
use std::time::{Duration, Instant};

use shoal_testkit::{need, run_to_exit, run_with_input, server_command, Raw, Server};

use shoal_tests::{assert_replies, proc_field, shoal_and_redis, THREADS};

fn connect_db(server: &Server, db: usize) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/{db}", server.port)).expect("client");
    let connection = client.get_connection().expect("connect");
    connection.set_read_timeout(Some(Duration::from_secs(10))).expect("set the read timeout");
    connection
}

fn get(connection: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(connection).unwrap()
}

#[test]
fn select_switches_between_isolated_databases() {
    let server = Server::start(THREADS, &[]);
    let (mut zero, mut one) = (connect_db(&server, 0), connect_db(&server, 1));
    redis::cmd("SET").arg("k").arg("zero").query::<()>(&mut zero).unwrap();
    assert_eq!(get(&mut one, "k"), None, "database 1 does not see database 0's key");
    redis::cmd("SET").arg("k").arg("one").query::<()>(&mut one).unwrap();
    assert_eq!(get(&mut zero, "k").as_deref(), Some("zero"));
    assert_eq!(get(&mut one, "k").as_deref(), Some("one"));

    // Keys on several cores, in database 1 only.
    let keys = shoal_testkit::keys_on_distinct_cores("db", THREADS, THREADS);
    redis::cmd("MSET").arg(keys.iter().flat_map(|k| [k.as_str(), "v"]).collect::<Vec<_>>()).query::<()>(&mut one).unwrap();
    let in_zero: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut zero).unwrap();
    assert_eq!(in_zero, vec![None; keys.len()], "MGET in database 0 sees none of database 1's keys");
    let dbsize: (i64, i64) = (redis::cmd("DBSIZE").query(&mut zero).unwrap(), redis::cmd("DBSIZE").query(&mut one).unwrap());
    assert_eq!(dbsize, (1, 1 + keys.len() as i64));

    // FLUSHDB empties the selected database only.
    redis::cmd("FLUSHDB").query::<()>(&mut one).unwrap();
    assert_eq!(get(&mut one, "k"), None);
    assert_eq!(get(&mut zero, "k").as_deref(), Some("zero"));

    // SELECT on a connection changes the database for its later commands.
    redis::cmd("SELECT").arg(1).query::<()>(&mut zero).unwrap();
    assert_eq!(get(&mut zero, "k"), None);
    redis::cmd("SELECT").arg(0).query::<()>(&mut zero).unwrap();
    assert_eq!(get(&mut zero, "k").as_deref(), Some("zero"));
}

#[test]
fn select_of_a_database_that_does_not_exist_is_an_error() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["SELECT", "16"], "-ERR DB index is out of range\r\n"),
            (&["SELECT", "-1"], "-ERR DB index is out of range\r\n"),
            (&["SELECT", "x"], "-ERR value is not an integer or out of range\r\n"),
            (&["SELECT", "15"], "+OK\r\n"),
            (&["SELECT"], "-ERR wrong number of arguments for 'select' command\r\n"),
        ],
    );
}

#[test]
fn hello_3_answers_a_map_and_switches_the_connection_to_resp3() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let hello = raw.command(&["HELLO", "3"]).unwrap();
    assert!(hello.starts_with("%7\r\n"), "HELLO 3 answers a map of seven fields: {hello:?}");
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"), "HELLO 3 says proto 3: {hello:?}");
    // RESP3 encodings: null, and a null inside an array.
    assert_eq!(raw.command(&["GET", "missing"]).unwrap(), "_\r\n");
    assert_eq!(raw.command(&["MGET", "missing", "other"]).unwrap(), "*2\r\n_\r\n_\r\n");
    // HELLO 2 switches back.
    assert!(raw.command(&["HELLO", "2"]).unwrap().starts_with("*14\r\n"));
    assert_eq!(raw.command(&["GET", "missing"]).unwrap(), "$-1\r\n");

    // The redis crate speaking RESP3 (it sends HELLO 3 itself) reads the same map.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", server.port)).unwrap();
    let mut connection = client.get_connection().unwrap();
    let hello: redis::Value = redis::cmd("HELLO").arg(3).query(&mut connection).unwrap();
    let redis::Value::Map(fields) = hello else { panic!("HELLO 3 is a map: {hello:?}") };
    let names: Vec<String> = fields.iter().map(|(k, _)| redis::from_redis_value_ref(k).unwrap()).collect();
    assert_eq!(names, ["server", "version", "proto", "id", "mode", "role", "modules"]);
    let proto = fields.iter().find(|(k, _)| redis::from_redis_value_ref::<String>(k).unwrap() == "proto").map(|(_, v)| v.clone());
    assert_eq!(proto, Some(redis::Value::Int(3)));
    let missing: redis::Value = redis::cmd("GET").arg("missing").query(&mut connection).unwrap();
    assert_eq!(missing, redis::Value::Nil);
}

#[test]
fn hello_with_an_unsupported_protocol_version_is_noproto() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["HELLO", "4"], "-NOPROTO unsupported protocol version\r\n"),
            (&["HELLO", "1"], "-NOPROTO unsupported protocol version\r\n"),
            (&["HELLO", "x"], "-ERR Protocol version is not an integer or out of range\r\n"),
        ],
    );
}

#[test]
fn client_setname_names_the_connection_for_getname() {
    let server = Server::start(THREADS, &[]);
    let mut named = server.client();
    let mut other = server.client();
    let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut named).unwrap();
    assert_eq!(name, None, "a new connection has no name");
    redis::cmd("CLIENT").arg("SETNAME").arg("shoal-test").query::<()>(&mut named).unwrap();
    let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut named).unwrap();
    assert_eq!(name.as_deref(), Some("shoal-test"));
    let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut other).unwrap();
    assert_eq!(name, None, "the name belongs to one connection");
    // An empty name removes it.
    redis::cmd("CLIENT").arg("SETNAME").arg("").query::<()>(&mut named).unwrap();
    let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut named).unwrap();
    assert_eq!(name, None);
}

#[test]
fn client_setname_refuses_names_with_spaces() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["CLIENT", "SETNAME", "a b"], "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
            (&["CLIENT", "SETNAME", "a\nb"], "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
            (&["CLIENT", "GETNAME"], "$-1\r\n"),
            (&["CLIENT", "SETNAME", "ok-name"], "+OK\r\n"),
            (&["CLIENT", "GETNAME"], "$7\r\nok-name\r\n"),
        ],
    );
}

#[test]
fn shutdown_makes_the_process_exit_with_status_zero() {
    let mut server = Server::start(THREADS, &[]);
    let mut bystander = server.raw();
    assert_eq!(bystander.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    let mut raw = server.raw();
    raw.send(&Raw::encode(&["SHUTDOWN"]));
    // On success Redis closes the connection without a reply.
    assert_eq!(raw.read_until_closed().unwrap(), b"");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0), "exit status after SHUTDOWN");
    assert_eq!(bystander.read_until_closed().unwrap(), b"", "other clients are disconnected");
}

#[test]
fn a_restarted_server_binds_while_old_connections_sit_in_time_wait() {
    let mut server = Server::start(THREADS, &[]);
    let port = server.port;
    let mut clients: Vec<_> = (0..4).map(|_| server.raw()).collect();
    for client in &mut clients {
        assert_eq!(client.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    // The server closed first, so its side of each connection is in TIME_WAIT now. Redis
    // binds anyway (SO_REUSEADDR); so must we, or a restart fails for a minute.
    for client in &mut clients {
        assert_eq!(client.read_until_closed().unwrap(), b"");
    }
    let restarted = Server::start_on(port, THREADS, &[]);
    assert_eq!(restarted.raw().command(&["PING"]).unwrap(), "+PONG\r\n");
}

#[test]
fn sigterm_makes_the_process_exit_with_status_zero() {
    let mut server = Server::start(THREADS, &[]);
    let mut client = server.raw();
    assert_eq!(client.command(&["PING"]).unwrap(), "+PONG\r\n");
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0), "exit status after SIGTERM");
    assert_eq!(client.read_until_closed().unwrap(), b"", "clients are disconnected");
}

#[test]
fn sigint_makes_the_process_exit_with_status_zero() {
    let mut server = Server::start(THREADS, &[]);
    server.signal("INT");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0), "exit status after SIGINT");
}

#[test]
fn a_client_past_maxclients_is_refused_with_an_error() {
    for server in shoal_and_redis(&["--maxclients", "2"]) {
        // The startup probe's connection may still count for a moment after it closed: keep
        // trying until two clients are in.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut admitted = Vec::new();
        while admitted.len() < 2 {
            assert!(Instant::now() < deadline, "two clients could not connect under maxclients 2 (port {})", server.port);
            let Ok(mut raw) = server.raw_result() else {
                continue;
            };
            if raw.command(&["PING"]).is_ok_and(|r| r == "+PONG\r\n") {
                admitted.push(raw);
            }
        }
        // The third is told why, then closed. It sends nothing: data sent to a socket the server
        // already closed could reset the connection and lose the error reply.
        let mut third = server.raw();
        assert_eq!(third.read_until_closed().unwrap(), b"-ERR max number of clients reached\r\n", "port {}", server.port);
        // The two admitted clients are unaffected, and when one leaves, a new client gets in.
        for raw in &mut admitted {
            assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
        }
        drop(admitted.pop());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(mut raw) = server.raw_result() else {
                continue;
            };
            if raw.command(&["PING"]).is_ok_and(|r| r == "+PONG\r\n") {
                break;
            }
            assert!(Instant::now() < deadline, "no client got in after one left (port {})", server.port);
        }
    }
}

#[test]
fn a_query_buffer_past_its_limit_closes_only_that_connection() {
    for server in shoal_and_redis(&["--client-query-buffer-limit", "1mb"]) {
        let mut bystander = server.raw();
        assert_eq!(bystander.command(&["PING"]).unwrap(), "+PONG\r\n");
        let mut raw = server.raw();
        raw.set_write_timeout(Duration::from_secs(10));
        raw.set_read_timeout(Duration::from_secs(10));
        // A bulk of 100 MB (under proto-max-bulk-len) that never ends: the buffer passes 1 MB.
        raw.send(b"*2\r\n$4\r\nECHO\r\n$100000000\r\n");
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < 8 << 20 {
            if raw.try_send(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        assert_eq!(raw.read_until_closed().unwrap(), b"", "the connection closes without a reply (port {})", server.port);
        assert_eq!(bystander.command(&["PING"]).unwrap(), "+PONG\r\n", "other clients are served (port {})", server.port);
        assert_eq!(server.raw().command(&["PING"]).unwrap(), "+PONG\r\n", "new clients are served (port {})", server.port);
    }
}

#[test]
fn a_bulk_longer_than_proto_max_bulk_len_is_a_protocol_error() {
    // Redis (and Shoal, to match) refuses a proto-max-bulk-len under 1 MB, so the limit is 1 MB.
    for server in shoal_and_redis(&["--proto-max-bulk-len", "1mb"]) {
        let mut raw = server.raw();
        let at_limit = "y".repeat(1 << 20);
        let expected = format!("${}\r\n{at_limit}\r\n", at_limit.len());
        assert_eq!(raw.command(&["ECHO", &at_limit]).unwrap(), expected, "a bulk of exactly the limit is fine (port {})", server.port);
        raw.send(b"*2\r\n$4\r\nECHO\r\n$1048577\r\n");
        assert_eq!(String::from_utf8_lossy(&raw.read_until_closed().unwrap()), "-ERR Protocol error: invalid bulk length\r\n", "port {}", server.port);
    }
}

#[test]
fn a_bad_directive_stops_startup_with_status_one_and_names_it() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--port", "notanumber"], &[">>> 'port \"notanumber\"'", "argument couldn't be parsed into an integer"]),
        (&["--no-such-directive", "1"], &[">>> 'no-such-directive \"1\"'", "Bad directive or wrong number of arguments"]),
        (&["--proto-max-bulk-len", "1000"], &[">>> 'proto-max-bulk-len \"1000\"'", "argument must be between 1048576 and 9223372036854775807 inclusive"]),
    ];
    for (args, lines) in cases {
        let mut full = args.to_vec();
        full.extend(["--threads", "1"]);
        let exit = run_to_exit(server_command(&full), Duration::from_secs(10));
        assert_eq!(exit.code, Some(1), "shoal-server {args:?}: {exit:?}");
        assert!(exit.elapsed < Duration::from_secs(5), "shoal-server {args:?} took {:?} to fail", exit.elapsed);
        for line in *lines {
            assert!(exit.stderr.contains(line), "shoal-server {args:?}: stderr names the problem with {line:?}: {:?}", exit.stderr);
        }
        // Redis says the same.
        if need("redis-server") {
            let mut command = Command::new("redis-server");
            command.args(*args);
            let exit = run_to_exit(command, Duration::from_secs(10));
            assert_eq!(exit.code, Some(1), "redis-server {args:?}: {exit:?}");
            for line in *lines {
                assert!(exit.stderr.contains(line), "redis-server {args:?}: {line:?} in {:?}", exit.stderr);
            }
        }
    }
}

#[test]
fn a_port_already_in_use_stops_startup_with_status_one() {
    let first = Server::start(THREADS, &[]);
    let port = first.port.to_string();
    let second = run_to_exit(server_command(&["--port", &port, "--bind", "127.0.0.1", "--threads", "2"]), Duration::from_secs(5));
    assert_eq!(second.code, Some(1), "a second shoal-server on port {port} must not start: {second:?}");
    let output = format!("{}{}", second.stdout, second.stderr);
    assert!(output.contains("Address already in use"), "it says why: {output:?}");
    assert_eq!(first.raw().command(&["PING"]).unwrap(), "+PONG\r\n");

    // Redis does the same (its log, with the reason, goes to stdout).
    if let Some(redis) = Server::start_redis() {
        let mut command = Command::new("redis-server");
        command.args(["--port", &redis.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        let second = run_to_exit(command, Duration::from_secs(10));
        assert_eq!(second.code, Some(1), "{second:?}");
        assert!(second.stdout.contains("Address already in use"), "{second:?}");
    }
}

/// Two servers started at the same moment on one port: each passes the plain-bind probe
/// before the other's cores bind with SO_REUSEPORT, which would let both listen and split the
/// clients (and their data) between them. At most one may stay.
#[test]
fn two_servers_started_together_on_one_port_never_both_serve() {
    for _ in 0..5 {
        let port = shoal_testkit::free_port();
        let dirs = [Server::scratch("twin"), Server::scratch("twin")];
        let mut children: Vec<std::process::Child> = dirs
            .iter()
            .map(|dir| {
                server_command(&["--port", &port.to_string(), "--bind", "127.0.0.1", "--threads", "2", "--save", ""])
                    .current_dir(dir)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("start shoal-server")
            })
            .collect();
        // Once one serves, the other (if it bound too) has seen it, or is about to.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !shoal_testkit::answers_ping(port) && children.iter_mut().any(|child| child.try_wait().unwrap().is_none()) {
            assert!(std::time::Instant::now() < deadline, "neither server answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        let settle = std::time::Instant::now() + Duration::from_secs(10);
        let alive = |children: &mut Vec<std::process::Child>| children.iter_mut().map(|child| child.try_wait().unwrap().is_none() as usize).sum::<usize>();
        while alive(&mut children) == 2 && std::time::Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(alive(&mut children) <= 1, "both servers listen on port {port}");
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// CONFIG SET port on two servers at once, to the same free port: at most one moves there
/// (the probe before binding is check-then-act, and SO_REUSEPORT would let both listen);
/// one that did answers there as itself, one that did not keeps its old port.
#[test]
fn two_servers_moved_to_one_port_at_once_never_both_listen_there() {
    let servers = [Server::start(2, &[]), Server::start(2, &[])];
    let mut moved_ever = 0;
    for round in 0..8 {
        let port = shoal_testkit::free_port().to_string();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let replies: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .map(|server| {
                    let mut raw = shoal_testkit::Raw::connect(server.port).unwrap();
                    let (barrier, port) = (barrier.clone(), port.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        raw.command(&["CONFIG", "SET", "port", &port]).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let moved: Vec<usize> = replies.iter().enumerate().filter(|(_, r)| r.as_str() == "+OK\r\n").map(|(i, _)| i).collect();
        assert!(moved.len() <= 1, "round {round}: both moved to {port}: {replies:?}");
        for (i, reply) in replies.iter().enumerate() {
            assert!(reply == "+OK\r\n" || reply.contains("Unable to listen on this port"), "{reply}");
            // One that moved answers on the new port as itself; one that did not, on its old.
            let pid = format!("process_id:{}", servers[i].pid());
            if reply != "+OK\r\n" {
                let mut raw = shoal_testkit::Raw::connect(servers[i].port).unwrap();
                assert!(raw.command(&["INFO", "server"]).unwrap().contains(&pid));
            } else {
                let mut raw = shoal_testkit::Raw::connect(port.parse().unwrap()).unwrap();
                assert!(raw.command(&["INFO", "server"]).unwrap().contains(&pid));
                // Back where the test can find it next round.
                assert_eq!(raw.command(&["CONFIG", "SET", "port", &servers[i].port.to_string()]).unwrap(), "+OK\r\n");
            }
        }
        moved_ever += moved.len();
    }
    eprintln!("{moved_ever} of 8 rounds moved one server");
}

#[test]
fn a_memlock_limit_too_low_for_glommio_stops_startup_with_advice() {
    if !need("prlimit") {
        return;
    }
    let port = shoal_testkit::free_port().to_string();
    let mut command = Command::new("prlimit");
    command.arg("--memlock=262144:262144").arg(shoal_testkit::server_binary()).args(["--port", &port, "--threads", "2", "--bind", "127.0.0.1"]);
    let exit = run_to_exit(command, Duration::from_secs(20));
    assert!(!exit.timed_out, "shoal-server kept running under a 256 KiB memlock limit: {exit:?}");
    assert_ne!(exit.code, Some(0), "{exit:?}");
    assert!(exit.elapsed < Duration::from_secs(5), "it took {:?} to fail", exit.elapsed);
    assert!(exit.stderr.contains("RLIMIT_MEMLOCK"), "stderr names the limit: {:?}", exit.stderr);
    assert!(exit.stderr.contains("ulimit -l"), "stderr says how to raise it: {:?}", exit.stderr);
}

/// Runs redis-cli against `server` with `script` on its stdin; returns its stdout.
fn redis_cli(server: &Server, args: &[&str], script: &str) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &server.port.to_string()]).args(args);
    let exit = run_with_input(command, script.as_bytes(), Duration::from_secs(10));
    assert_eq!(exit.code, Some(0), "redis-cli {args:?}: {exit:?}");
    exit.stdout
}

#[test]
fn redis_cli_prints_what_it_prints_for_redis() {
    if !need("redis-cli") {
        return;
    }
    let script = "SET a 1\nINCR a\nGET a\nGET missing\nMGET a missing\nINCR a b c\nINCR\nSELECT 1\nGET a\nDBSIZE\n\
                  PING\nECHO \"x y\"\nSET b \"q\\\"z\"\nGET b\nCLIENT SETNAME cli\nCLIENT GETNAME\nSELECT 99\nNOSUCHCOMMAND x\n";
    let expected = "OK\n2\n2\n\n2\n\nERR wrong number of arguments for 'incr' command\n\n\
                    ERR wrong number of arguments for 'incr' command\n\nOK\n\n0\nPONG\nx y\nOK\nq\"z\nOK\ncli\n\
                    ERR DB index is out of range\n\nERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' \n\n";
    for server in shoal_and_redis(&[]) {
        assert_eq!(redis_cli(&server, &[], script), expected, "redis-cli script on port {}", server.port);
        // Arguments instead of a script, and -n to pick the database.
        assert_eq!(redis_cli(&server, &["-n", "2", "SET", "k", "in two"], ""), "OK\n");
        assert_eq!(redis_cli(&server, &["-n", "2", "GET", "k"], ""), "in two\n");
        assert_eq!(redis_cli(&server, &["GET", "k"], ""), "\n", "database 0 does not have it");
        assert_eq!(redis_cli(&server, &["-n", "2", "DBSIZE"], ""), "1\n");
    }
}

#[test]
fn a_client_that_does_not_read_its_replies_is_disconnected_at_the_output_buffer_hard_limit() {
    for server in shoal_and_redis(&["--client-output-buffer-limit", "normal 1mb 0 0"]) {
        let value = "v".repeat(256 * 1024);
        let mut setter = server.raw();
        assert_eq!(setter.command(&["SET", "big", &value]).unwrap(), "+OK\r\n");
        let mut raw = server.raw();
        raw.set_write_timeout(Duration::from_secs(10));
        raw.set_read_timeout(Duration::from_secs(10));
        // 400 GETs of 256 KiB is 100 MiB of replies, which the client never reads while sending.
        let mut request = Vec::new();
        for _ in 0..400 {
            request.extend_from_slice(&Raw::encode(&["GET", "big"]));
        }
        let _ = raw.try_send(&request);
        let received = raw.read_until_closed().expect("the server closes the connection");
        assert!(received.len() < 50 << 20, "closed long before 100 MiB of replies (got {} bytes, port {})", received.len(), server.port);
        assert_eq!(setter.command(&["PING"]).unwrap(), "+PONG\r\n", "other clients are served (port {})", server.port);
    }
}

#[test]
fn a_client_over_the_output_soft_limit_for_too_long_is_disconnected() {
    let server = Server::start(THREADS, &["--client-output-buffer-limit", "normal 0 64kb 1"]);
    shoal_tests::a_client_that_reads_nothing_is_disconnected_by_the_soft_limit(&server);
}

#[test]
fn config_set_port_moves_the_listeners_of_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    let new_port = shoal_testkit::free_port();
    assert_eq!(raw.command(&["CONFIG", "SET", "port", &new_port.to_string()]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n", "the existing connection stays");
    // Every core accepts on the new port: several connections land on several cores.
    for _ in 0..8 {
        let stream = std::net::TcpStream::connect(("127.0.0.1", new_port)).expect("the new port accepts");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut stream = std::io::BufReader::new(stream);
        std::io::Write::write_all(stream.get_mut(), b"GET k\r\n").unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stream, &mut line).unwrap();
        assert_eq!(line, "$1\r\n");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err(), "the old port no longer accepts");
}

#[test]
fn config_set_port_to_a_port_in_use_is_refused_and_changes_nothing() {
    let server = Server::start(THREADS, &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let mut raw = server.raw();
    assert_eq!(
        raw.command(&["CONFIG", "SET", "port", &taken_port]).unwrap(),
        "-ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port. Check server logs.\r\n"
    );
    assert_eq!(raw.command(&["CONFIG", "GET", "port"]).unwrap(), format!("*2\r\n$4\r\nport\r\n${}\r\n{}\r\n", server.port.to_string().len(), server.port));
    assert_eq!(server.raw().command(&["PING"]).unwrap(), "+PONG\r\n", "the old port still accepts");
}

/// Startup never hangs. glommio's channel-mesh join can lose the wakeup that tells a waiting
/// executor its peers are ready; under load about one start in fifty hung for good, every
/// executor asleep, before the join got a ticking timer. Sixteen four-core starts, four at a
/// time, must each answer (`Server::start` fails after 60 s without a PONG).
#[test]
fn servers_starting_four_at_a_time_all_become_ready() {
    for _ in 0..4 {
        let starting: Vec<_> = (0..4).map(|_| std::thread::spawn(|| Server::start(4, &[]))).collect();
        for start in starting {
            let server = start.join().expect("the server started");
            assert_eq!(server.raw().command(&["PING"]).unwrap(), "+PONG\r\n");
        }
    }
}

#[test]
fn msetex_sets_every_key_with_one_ttl_across_cores_or_none() {
    // Redis 8.4's MSETEX, newer than Debian's redis-server: the cases of Redis's own tests
    // (tests/unit/type/string.tcl), on keys spread over the cores.
    let dir = Server::scratch("msetex");
    let server = Server::start_in(&dir, 4, &["--save", "", "--appendonly", "yes", "--appendfsync", "always"]);
    let mut raw = server.raw();
    let keys = shoal_testkit::keys_on_distinct_cores("msetex", 3, 4);
    let (a, b, c) = (keys[0].as_str(), keys[1].as_str(), keys[2].as_str());
    let mut run = |args: &[&str]| raw.command(args).unwrap();
    assert_eq!(run(&["MSETEX", a, "v", "ex", "10"]), "-ERR invalid numkeys value\r\n");
    assert_eq!(run(&["MSETEX", "2147483648", a, "v", "ex", "10"]), "-ERR invalid numkeys value\r\n");
    assert_eq!(run(&["MSETEX", "2147483647", a, "v", "ex", "10"]), "-ERR wrong number of key-value pairs\r\n");
    assert_eq!(run(&["MSETEX", "2", a, "v", b]), "-ERR wrong number of key-value pairs\r\n");
    for options in [&["nx", "xx", "ex", "10"][..], &["ex", "10", "px", "5000"], &["keepttl", "ex", "10"], &["get"], &["invalid_flag"]] {
        let mut args = vec!["MSETEX", "2", a, "v", b, "v"];
        args.extend(options);
        assert_eq!(run(&args), "-ERR syntax error\r\n", "{options:?}");
    }
    assert_eq!(run(&["MSETEX", "1", a, "v", "ex", "0"]), "-ERR invalid expire time in 'msetex' command\r\n");
    // NX: none may exist; XX: all must.
    assert_eq!(run(&["MSETEX", "2", a, "1", b, "2", "nx", "ex", "100"]), ":1\r\n");
    assert_eq!(run(&["MSETEX", "2", a, "x", c, "y", "nx", "ex", "100"]), ":0\r\n");
    assert_eq!(run(&["EXISTS", c]), ":0\r\n");
    assert_eq!(run(&["MSETEX", "2", a, "x", c, "y", "xx"]), ":0\r\n");
    assert_eq!(run(&["MSETEX", "2", a, "x", b, "y", "xx", "px", "50000"]), ":1\r\n");
    assert_eq!(run(&["MGET", a, b]), "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
    let ttl: i64 = run(&["PTTL", b]).trim_start_matches(':').trim().parse().unwrap();
    assert!((40_000..=50_000).contains(&ttl), "{ttl}");
    // KEEPTTL keeps each key's own; no option clears it, as MSET.
    run(&["SETEX", c, "100", "old"]);
    assert_eq!(run(&["MSETEX", "2", a, "k", c, "k", "keepttl"]), ":1\r\n");
    assert_eq!(run(&["TTL", c]), ":100\r\n");
    assert_eq!(run(&["MSETEX", "1", c, "n"]), ":1\r\n");
    assert_eq!(run(&["TTL", c]), ":-1\r\n");
    // The log keeps an absolute expiry: after kill -9 the TTL is where it was.
    assert_eq!(run(&["MSETEX", "2", a, "last", b, "last", "ex", "3600"]), ":1\r\n");
    drop(raw);
    drop(server);
    let server = Server::start_in(&dir, 4, &["--save", "", "--appendonly", "yes"]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["MGET", a, b]).unwrap(), "*2\r\n$4\r\nlast\r\n$4\r\nlast\r\n");
    let ttl: i64 = raw.command(&["TTL", b]).unwrap().trim_start_matches(':').trim().parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    drop(raw);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Debian's own `/etc/redis/redis.conf` (installed with redis-server) starts Shoal: every
/// directive in it is one Shoal takes. Only what would make it a daemon writing to system
/// paths is overridden on the command line, as a test must.
#[test]
fn debian_s_redis_conf_starts_shoal() {
    let path = std::path::Path::new("/etc/redis/redis.conf");
    if !need("redis-server") {
        return;
    }
    assert!(path.exists(), "redis-server is installed but {path:?} is not there");
    let dir = Server::scratch("debian-conf");
    let port = shoal_testkit::free_port().to_string();
    let pidfile = dir.join("shoal.pid");
    let mut command = server_command(&[path.to_str().unwrap(), "--port", &port, "--daemonize", "no", "--logfile", "", "--dir", dir.to_str().unwrap()]);
    command.args(["--pidfile", pidfile.to_str().unwrap(), "--threads", "2", "--save", ""]);
    let mut child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().expect("start shoal-server");
    let port: u16 = port.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shoal_testkit::answers_ping(port) {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("shoal-server refused Debian's redis.conf ({status}):\n{stderr}");
        }
        assert!(Instant::now() < deadline, "no PONG");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut raw = Raw::connect(port).unwrap();
    assert_eq!(raw.command(&["CONFIG", "GET", "repl-diskless-sync"]).unwrap(), "*2\r\n$18\r\nrepl-diskless-sync\r\n$3\r\nyes\r\n");
    let _ = raw.command(&["SHUTDOWN", "NOSAVE"]);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `supervised systemd`: READY=1 reaches $NOTIFY_SOCKET once the server serves, and
/// STOPPING=1 when it shuts down, as a Type=notify unit (Debian's) waits for.
#[test]
fn supervised_systemd_tells_notify_socket_ready_and_stopping() {
    let dir = Server::scratch("notify");
    let path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut server = Server::start_with_env(THREADS, &["--supervised", "systemd"], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut message = [0u8; 256];
    let n = socket.recv(&mut message).unwrap();
    assert_eq!(std::str::from_utf8(&message[..n]).unwrap(), "STATUS=Ready to accept connections\nREADY=1\n");
    let _ = server.raw().command(&["SHUTDOWN", "NOSAVE"]);
    let n = socket.recv(&mut message).unwrap();
    assert_eq!(std::str::from_utf8(&message[..n]).unwrap(), "STOPPING=1\n");
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `request` on a Unix socket connection and reads one reply line (or bulk).
fn unix_command(stream: &mut std::os::unix::net::UnixStream, request: &[&str]) -> String {
    use std::io::{Read, Write};
    stream.write_all(&shoal_testkit::Raw::encode(request)).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        let n = stream.read(&mut byte).unwrap();
        reply.extend_from_slice(&byte[..n]);
        if n == 0 || reply.ends_with(b"\r\n") {
            return String::from_utf8_lossy(&reply).into_owned();
        }
    }
}

/// `unixsocket` and `unixsocketperm`, as Redis takes them: the socket file with those
/// permissions, commands served on it (connections spread over the cores), CLIENT LIST's
/// address and `U` flag as redis-server's, and the file gone after SHUTDOWN.
#[test]
fn a_unix_socket_serves_clients_as_redis_does() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Server::scratch("unixsocket");
    let path = dir.join("shoal.sock");
    let path_text = path.to_str().unwrap().to_owned();
    let mut shoal = Server::start_in(&dir, THREADS, &["--unixsocket", &path_text, "--unixsocketperm", "700"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["CONFIG", "GET", "unixsocketperm"]).unwrap(), "*2\r\n$14\r\nunixsocketperm\r\n$3\r\n700\r\n");
    // Keys on every core, through several connections (each handed to a core in turn).
    let mut streams: Vec<_> = (0..THREADS).map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap()).collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        for key in 0..8 {
            assert_eq!(unix_command(stream, &["SET", &format!("k{i}:{key}"), "v"]), "+OK\r\n");
        }
    }
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), format!(":{}\r\n", THREADS * 8));
    let id = unix_command(&mut streams[0], &["CLIENT", "ID"])[1..].trim().to_owned();
    let list = unix_command(&mut streams[0], &["CLIENT", "LIST", "ID", &id]);
    assert!(list.contains(&format!(" addr={path_text}:0 laddr={path_text}:0 ")) && list.contains(" flags=U "), "{list}");
    // The same address and flags from redis-server.
    if let Some(redis) = Server::start_redis_in(&dir, &["--unixsocket", dir.join("redis.sock").to_str().unwrap(), "--unixsocketperm", "700"]) {
        let redis_path = dir.join("redis.sock");
        let mut stream = std::os::unix::net::UnixStream::connect(&redis_path).unwrap();
        let id = unix_command(&mut stream, &["CLIENT", "ID"])[1..].trim().to_owned();
        let list = unix_command(&mut stream, &["CLIENT", "LIST", "ID", &id]);
        let redis_text = redis_path.to_str().unwrap();
        assert!(list.contains(&format!(" addr={redis_text}:0 laddr={redis_text}:0 ")) && list.contains(" flags=U "), "{list}");
        assert_eq!(redis.raw().command(&["CONFIG", "GET", "unixsocketperm"]).unwrap(), "*2\r\n$14\r\nunixsocketperm\r\n$3\r\n700\r\n");
    }
    drop(streams);
    let _ = raw.command(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(shoal.wait_exit(std::time::Duration::from_secs(20)), Some(0));
    assert!(!path.exists(), "the socket file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `maxmemory-clients`: a client whose buffers push the clients' total over the limit is
/// disconnected (INFO `evicted_clients`), one that said CLIENT NO-EVICT ON (flag `e`) is
/// not, as on redis-server.
#[test]
fn maxmemory_clients_evicts_the_biggest_client_unless_it_said_no_evict() {
    use std::io::{Read, Write};
    let shoal = Server::start(THREADS, &["--maxmemory-clients", "1mb"]);
    let redis = Server::start_redis_with(&["--maxmemory-clients", "1mb"]);
    for server in std::iter::once(&shoal).chain(redis.as_ref()) {
        let mut kept = server.raw();
        assert_eq!(kept.command(&["CLIENT", "NO-EVICT", "on"]).unwrap(), "+OK\r\n");
        let kept_id = kept.command(&["CLIENT", "ID"]).unwrap()[1..].trim().to_owned();
        assert!(kept.command(&["CLIENT", "LIST", "ID", &kept_id]).unwrap().contains(" flags=e "));
        // Half of a 3 MB SET: 1.5 MB waiting in each query buffer.
        let big = |stream: &mut std::net::TcpStream| -> std::io::Result<()> {
            stream.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n")?;
            stream.write_all(&vec![b'x'; 1_500_000])
        };
        let mut kept_stream = kept.writer();
        big(&mut kept_stream).unwrap();
        let mut evicted = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        evicted.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let gone = |e: &std::io::Error| matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe);
        // The server may close it before the last bytes are written: a broken pipe.
        let written = big(&mut evicted);
        assert!(written.as_ref().err().is_none_or(gone), "{written:?}");
        let mut byte = [0u8; 1];
        // Closed: end of stream (or a reset); a timeout means it is still connected.
        let closed = written.is_err()
            || match evicted.read(&mut byte) {
                Ok(n) => n == 0,
                Err(e) => gone(&e),
            };
        assert!(closed, "port {}: the big client was disconnected", server.port);
        let mut other = server.raw();
        let info = other.command(&["INFO", "stats"]).unwrap();
        assert!(info.contains("evicted_clients:1\r\n"), "port {}: {info}", server.port);
        assert!(
            other.command(&["CLIENT", "LIST", "ID", &kept_id]).unwrap().contains(&format!("id={kept_id} ")),
            "port {}: the NO-EVICT client stays",
            server.port
        );
    }
}

/// The spinning switches (crates/runtime/src/spin.rs): cores that spin before they sleep, and
/// spin longer while they wait for another core's answer, still answer commands that cross
/// cores, and go quiet once the load stops (the spin bounds each idle moment, it does not
/// replace sleeping).
#[test]
fn cores_that_spin_before_they_sleep_serve_and_then_go_quiet() {
    let server = Server::start_with_env(THREADS, &[], &[("SHOAL_SPIN_US", "20"), ("SHOAL_SPIN_WAIT_US", "200")]);
    let mut raw = server.raw();
    for round in 0..200 {
        let (a, b, c) = (format!("a{round}"), format!("b{round}"), format!("c{round}"));
        assert_eq!(raw.command(&["MSET", &a, "1", &b, "2", &c, "3"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["MGET", &a, &b, &c]).unwrap(), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
        assert_eq!(raw.command(&["MULTI"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["INCR", &a]).unwrap(), "+QUEUED\r\n");
        assert_eq!(raw.command(&["INCR", &c]).unwrap(), "+QUEUED\r\n");
        assert_eq!(raw.command(&["EXEC"]).unwrap(), "*2\r\n:2\r\n:4\r\n");
    }
    let cpu_ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap();
        let fields: Vec<u64> = stat.rsplit(')').next().unwrap().split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
        fields[0] + fields[1]
    };
    std::thread::sleep(Duration::from_millis(300));
    let (before, started) = (cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let busy = (cpu_ticks() - before) as f64 / 100.0 / started.elapsed().as_secs_f64();
    // Idle, the cores wake for their cron (hz) and spin at most 200 us each time.
    assert!(busy < 0.25, "an idle server spinning before sleeps used {:.0}% of a CPU", busy * 100.0);
}

#[test]
fn disable_thp_keeps_every_page_small_from_the_first_allocation() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let value = "v".repeat(100);
    for i in 0..2000 {
        assert_eq!(raw.command(&["SET", &format!("key:{i}"), &value]).unwrap(), "+OK\r\n");
    }
    assert_eq!(proc_field(server.pid(), "status", "THP_enabled:"), 0);
    // Not one huge page, not even those of what was allocated before the configuration was read.
    assert_eq!(proc_field(server.pid(), "smaps_rollup", "AnonHugePages:"), 0, "kB in huge pages");
    drop(raw);
    drop(server);

    let server = Server::start(THREADS, &["--disable-thp", "no"]);
    assert_eq!(proc_field(server.pid(), "status", "THP_enabled:"), 1, "disable-thp no leaves them on");
}

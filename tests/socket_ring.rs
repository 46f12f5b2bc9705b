//! The socket path through each core's own io_uring ring (crates/server/src/socket.rs: multishot
//! receives, SEND entries), against the real binary: big pipelined requests spanning many
//! provided buffers, few buffers for many connections sending at once (the multishot receive
//! ends with ENOBUFS and must be re-armed without losing bytes), a blocked client's close, a
//! kill while a connection waits for input, output back-pressure, replies through glommio
//! (`SHOAL_SOCKET_RING_SEND=0`), and glommio's path when the ring is off
//! (`SHOAL_SOCKET_RING=0`). The rest of the suite runs on either path by the same variable.

use std::io::Write;
use std::time::{Duration, Instant};

use shoal_testkit::{Raw, Server};
use shoal_tests::THREADS;

fn ring_server(extra: &[&str], buffers: Option<&str>) -> Server {
    ring_server_with(extra, buffers, &[])
}

fn ring_server_with(extra: &[&str], buffers: Option<&str>, more: &[(&str, &str)]) -> Server {
    let mut env = vec![("SHOAL_SOCKET_RING", "1")];
    env.extend_from_slice(more);
    if let Some(buffers) = buffers {
        env.push(("SHOAL_SOCKET_RING_BUFFERS", buffers));
    }
    let server = Server::start_with_env(THREADS, extra, &env);
    assert_eq!(socket_io(&server), "io_uring", "every core reads through its ring");
    server
}

fn socket_io(server: &Server) -> String {
    info_field(&mut server.raw(), "server", "shoal_socket_io")
}

fn info_field(raw: &mut Raw, section: &str, field: &str) -> String {
    let info = raw.command(&["INFO", section]).unwrap();
    info.split("\r\n").find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')).map(str::to_owned)).unwrap_or_default()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

#[test]
fn the_ring_can_be_turned_off_and_glommio_reads_instead() {
    let server = Server::start_with_env(THREADS, &[], &[("SHOAL_SOCKET_RING", "0")]);
    assert_eq!(socket_io(&server), "glommio");
    let mut raw = server.raw();
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["GET", "k"]).unwrap(), bulk("v"));
}

#[test]
fn a_big_pipelined_request_spans_many_provided_buffers() {
    // Four buffers of 16 KiB: a 3 MiB value and a thousand commands behind it pass through
    // them many times over, in many receives.
    let server = ring_server(&[], Some("4"));
    let value: String = (0..3 << 20).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut raw = server.raw();
    raw.set_read_timeout(Duration::from_secs(20));
    let mut request = Raw::encode(&["SET", "big", &value]);
    for i in 0..1000 {
        request.extend_from_slice(&Raw::encode(&["RPUSH", "list", &i.to_string()]));
    }
    request.extend_from_slice(&Raw::encode(&["STRLEN", "big"]));
    raw.send(&request);
    assert_eq!(raw.read_reply().unwrap(), "+OK\r\n");
    for i in 0..1000 {
        assert_eq!(raw.read_reply().unwrap(), format!(":{}\r\n", i + 1));
    }
    assert_eq!(raw.read_reply().unwrap(), format!(":{}\r\n", value.len()));
    assert_eq!(raw.command(&["GET", "big"]).unwrap(), bulk(&value), "every byte arrived in order");
}

#[test]
fn input_through_the_ring_with_replies_through_glommio() {
    // SHOAL_SOCKET_RING_SEND=0: the ring receives, glommio's write_all sends.
    let server = ring_server_with(&[], Some("4"), &[("SHOAL_SOCKET_RING_SEND", "0")]);
    let value = "w".repeat(1 << 20);
    let mut raw = server.raw();
    let mut request = Raw::encode(&["SET", "big", &value]);
    for _ in 0..4 {
        request.extend_from_slice(&Raw::encode(&["GET", "big"]));
    }
    raw.send(&request);
    assert_eq!(raw.read_reply().unwrap(), "+OK\r\n");
    for _ in 0..4 {
        assert_eq!(raw.read_reply().unwrap(), bulk(&value));
    }
}

#[test]
fn many_connections_sending_at_once_through_two_buffers_lose_nothing() {
    // Two buffers per core for 64 connections that each send a pipeline at the same moment:
    // most receives find no buffer (ENOBUFS ends their multishot receive) and are re-armed.
    let server = ring_server(&[], Some("2"));
    let barrier = std::sync::Barrier::new(64);
    std::thread::scope(|scope| {
        for c in 0..64 {
            let (server, barrier) = (&server, &barrier);
            scope.spawn(move || {
                let mut raw = server.raw();
                raw.set_read_timeout(Duration::from_secs(20));
                let mut request = Vec::new();
                for i in 0..200 {
                    request.extend_from_slice(&Raw::encode(&["INCRBY", &format!("counter:{c}"), &i.to_string()]));
                }
                barrier.wait();
                raw.send(&request);
                let mut total = 0;
                for i in 0..200 {
                    total += i;
                    assert_eq!(raw.read_reply().unwrap(), format!(":{total}\r\n"), "client {c}, reply {i}");
                }
            });
        }
    });
    let mut raw = server.raw();
    for c in 0..64 {
        assert_eq!(raw.command(&["GET", &format!("counter:{c}")]).unwrap(), bulk(&(0..200).sum::<u32>().to_string()));
    }
}

#[test]
fn a_blocked_client_that_closes_its_connection_stops_waiting() {
    let server = ring_server(&[], None);
    let mut watcher = server.raw();
    let mut blocked = server.raw();
    blocked.send(&Raw::encode(&["BLPOP", "nothing", "0"]));
    wait_for("one client blocked", || info_field(&mut watcher, "clients", "blocked_clients") == "1");
    drop(blocked);
    wait_for("the closed client no longer blocked", || info_field(&mut watcher, "clients", "blocked_clients") == "0");
    wait_for("the closed client gone", || info_field(&mut watcher, "clients", "connected_clients") == "1");
}

#[test]
fn a_kill_ends_a_connection_waiting_for_input() {
    let server = ring_server(&[], None);
    let mut idle = server.raw();
    idle.set_read_timeout(Duration::from_secs(10));
    let id = idle.command(&["CLIENT", "ID"]).unwrap();
    let id = id.trim_start_matches(':').trim();
    let mut killer = server.raw();
    assert_eq!(killer.command(&["CLIENT", "KILL", "ID", id]).unwrap(), ":1\r\n");
    let rest = idle.read_until_closed().expect("the killed connection closes");
    assert!(rest.is_empty(), "nothing more was sent: {:?}", String::from_utf8_lossy(&rest));
    wait_for("the killed client gone", || info_field(&mut killer, "clients", "connected_clients") == "1");
}

#[test]
fn a_client_that_reads_nothing_is_held_back_then_disconnected_by_the_soft_limit() {
    let server = ring_server(&["--client-output-buffer-limit", "normal 0 64kb 1"], None);
    shoal_tests::a_client_that_reads_nothing_is_disconnected_by_the_soft_limit(&server);
}

#[test]
fn input_beyond_the_pending_bound_waits_in_the_socket_and_all_arrives() {
    // A client blocked in BLPOP with 8 MiB pipelined behind it: the ring stops receiving for
    // it (the bound on pending input), and everything is read once it is served.
    let server = ring_server(&[], None);
    let mut blocked = server.raw();
    blocked.set_read_timeout(Duration::from_secs(20));
    let mut request = Raw::encode(&["BLPOP", "wake", "0"]);
    let chunk = "x".repeat(1 << 20);
    for _ in 0..8 {
        request.extend_from_slice(&Raw::encode(&["APPEND", "grown", &chunk]));
    }
    let mut writer = blocked.writer();
    let sender = std::thread::spawn(move || writer.write_all(&request));
    let mut pusher = server.raw();
    wait_for("one client blocked", || info_field(&mut pusher, "clients", "blocked_clients") == "1");
    assert_eq!(pusher.command(&["RPUSH", "wake", "up"]).unwrap(), ":1\r\n");
    sender.join().unwrap().expect("the whole pipeline was sent");
    assert_eq!(blocked.read_reply().unwrap(), "*2\r\n$4\r\nwake\r\n$2\r\nup\r\n");
    for i in 1..=8 {
        assert_eq!(blocked.read_reply().unwrap(), format!(":{}\r\n", i << 20));
    }
}

#[test]
fn a_subscriber_gets_messages_and_its_next_command_is_noticed() {
    let server = ring_server(&[], None);
    let mut subscriber = server.raw();
    subscriber.set_read_timeout(Duration::from_secs(10));
    assert_eq!(subscriber.command(&["SUBSCRIBE", "news"]).unwrap(), "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    let mut publisher = server.raw();
    assert_eq!(publisher.command(&["PUBLISH", "news", "hello"]).unwrap(), ":1\r\n");
    assert_eq!(subscriber.read_reply().unwrap(), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    assert_eq!(subscriber.command(&["UNSUBSCRIBE", "news"]).unwrap(), "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n");
    assert_eq!(subscriber.command(&["PING"]).unwrap(), "+PONG\r\n");
}

#[test]
fn shutdown_ends_connections_waiting_for_input() {
    let mut server = ring_server(&[], None);
    let mut idle = server.raw();
    idle.set_read_timeout(Duration::from_secs(10));
    assert_eq!(idle.command(&["PING"]).unwrap(), "+PONG\r\n");
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0), "the server exits while a client waits");
    assert!(idle.read_until_closed().expect("the connection closes").is_empty());
}

/// A quiet core gives its socket buffers' pages back (`socket::release_buffer_pages`, beside
/// the allocator's purge): it takes the buffer ring away from the kernel meanwhile. A request
/// trickled in while no command runs (so the core counts as quiet) keeps arriving during the
/// give-backs, and must be read whole, in order.
#[test]
fn input_arriving_while_quiet_cores_give_their_buffers_back_is_read_whole() {
    let server = ring_server(&[], None);
    let mut raw = server.raw();
    let givebacks = |raw: &mut Raw| info_field(raw, "server", "shoal_socket_buffer_givebacks").parse::<u64>().unwrap();
    // Every core gives back once in its first quiet second, and then not again until it runs
    // a command: after this, only this connection's core does, once per trickle.
    std::thread::sleep(Duration::from_millis(2500));
    let before = givebacks(&mut raw);
    for round in 0..3u8 {
        let value: Vec<u8> = (0..200_000u32).map(|i| b'a' + ((i * 7 + round as u32) % 26) as u8).collect();
        let key = format!("trickled:{round}");
        let mut request = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n", key.len(), value.len()).into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        // About 2.5 s of input and not one whole command: every core stays quiet.
        for chunk in request.chunks(request.len() / 25 + 1) {
            raw.send(chunk);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(raw.read_reply().unwrap(), "+OK\r\n", "round {round}");
        let mut expected = format!("${}\r\n", value.len()).into_bytes();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\n");
        raw.send(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes());
        assert!(raw.read_reply_bytes().unwrap() == expected, "round {round}: the value read back is the value sent");
    }
    // The only quiet seconds since `before` were the trickles' (each round ends with
    // commands): a give-back counted now happened while input was arriving. One a round is
    // usual; a loaded machine's late cron may skip one, so at least one is asked for.
    let after = givebacks(&mut raw);
    assert!(after > before, "a quiet core gave its buffers back during the trickles ({before} -> {after})");
}

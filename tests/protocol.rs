//! The protocol's edges, in raw bytes, against the real binary with several cores.

use shoal_testkit::{Raw, Server};

#[test]
fn ping_answers_pong_inline_and_multibulk() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    raw.send(b"PING\r\n");
    assert_eq!(raw.read_reply().unwrap(), "+PONG\r\n");
    assert_eq!(raw.command(&["PING", "hi"]).unwrap(), "$2\r\nhi\r\n");
}

#[test]
fn invalid_multibulk_length_is_reported_then_the_connection_closes() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    raw.send(b"*x\r\n");
    assert_eq!(raw.read_to_close(), "-ERR Protocol error: invalid multibulk length\r\n");
}

#[test]
fn pipelined_replies_come_back_in_request_order_across_cores() {
    let server = Server::start(4, &[]);
    let mut raw = server.raw();
    let mut request = Vec::new();
    let mut expected = String::new();
    for i in 0..200 {
        request.extend_from_slice(&Raw::encode(&["SET", &format!("key:{i}"), &i.to_string()]));
        expected.push_str("+OK\r\n");
    }
    for i in 0..200 {
        request.extend_from_slice(&Raw::encode(&["GET", &format!("key:{i}")]));
        expected.push_str(&format!("${}\r\n{}\r\n", i.to_string().len(), i));
    }
    raw.send(&request);
    let mut got = String::new();
    for _ in 0..400 {
        got.push_str(&raw.read_reply().unwrap());
    }
    assert_eq!(got, expected);
}

/// Shoal with four cores, and Debian's redis-server when installed: every expectation below is
/// checked against redis-server too, so the expected bytes are Redis's, not our guess.
fn servers() -> (Server, Option<Server>) {
    (Server::start(4, &[]), Server::start_redis())
}

/// Sends `request`, then `ECHO end-of-case` on the same connection, and asserts that the replies
/// are `expected` followed by the marker: the connection stayed open and nothing else arrived.
fn assert_replies(server: &Server, request: &[u8], expected: &str) {
    let mut raw = server.raw();
    raw.send(request);
    raw.send(b"ECHO end-of-case\r\n");
    let mut got = String::new();
    loop {
        let reply = raw.read_reply().unwrap_or_else(|e| panic!("reading replies to {request:?} after {got:?}: {e}"));
        if reply == "$11\r\nend-of-case\r\n" {
            break;
        }
        got.push_str(&reply);
        assert!(got.len() <= expected.len() + 1024, "replies to {request:?} run past the expected {expected:?}: {got:?}");
    }
    assert_eq!(got, expected, "replies to {:?} on port {}", String::from_utf8_lossy(request), server.port);
}

/// Sends `request` and asserts that the server answers exactly `expected` and then closes.
fn assert_replies_then_close(server: &Server, request: &[u8], expected: &str) {
    let mut raw = server.raw();
    raw.send(request);
    assert_eq!(raw.read_to_close(), expected, "replies to {:?} on port {}", String::from_utf8_lossy(request), server.port);
}

fn check(servers: &(Server, Option<Server>), request: &[u8], expected: &str) {
    if let Some(redis) = &servers.1 {
        assert_replies(redis, request, expected);
    }
    assert_replies(&servers.0, request, expected);
}

fn check_closes(servers: &(Server, Option<Server>), request: &[u8], expected: &str) {
    if let Some(redis) = &servers.1 {
        assert_replies_then_close(redis, request, expected);
    }
    assert_replies_then_close(&servers.0, request, expected);
}

#[test]
fn inline_commands_understand_double_and_single_quotes() {
    let servers = servers();
    check(&servers, b"SET q \"hello world\"\r\nGET q\r\n", "+OK\r\n$11\r\nhello world\r\n");
    check(&servers, b"SET q \"x\\ny\\x41\\t\"\r\nGET q\r\n", "+OK\r\n$5\r\nx\nyA\t\r\n");
    check(&servers, b"SET q 'a\\'b'\r\nGET q\r\n", "+OK\r\n$3\r\na'b\r\n");
    // Single quotes keep backslashes other than \' as they are.
    check(&servers, b"ECHO '\\n'\r\n", "$2\r\n\\n\r\n");
    // An unknown or short \x escape is the letter itself.
    check(&servers, b"ECHO \"\\x4\"\r\n", "$2\r\nx4\r\n");
    check(&servers, b"ECHO \"\"\r\n", "$0\r\n\r\n");
    check(&servers, b"\"PING\"\r\n", "+PONG\r\n");
    check(&servers, b"  ECHO   a    b  \r\n", "-ERR wrong number of arguments for 'echo' command\r\n");
}

#[test]
fn inline_commands_accept_a_bare_newline_as_terminator() {
    let servers = servers();
    check(&servers, b"PING\nPING\r\nECHO x\n", "+PONG\r\n+PONG\r\n$1\r\nx\r\n");
}

#[test]
fn unbalanced_quotes_are_a_protocol_error_that_closes_the_connection() {
    let servers = servers();
    let expected = "-ERR Protocol error: unbalanced quotes in request\r\n";
    check_closes(&servers, b"SET d \"unbalanced\r\nPING\r\n", expected);
    check_closes(&servers, b"SET d 'unbalanced\r\nPING\r\n", expected);
    // A closing quote must be followed by a space or the end of the line.
    check_closes(&servers, b"SET e \"abc\"def\r\nPING\r\n", expected);
    check_closes(&servers, b"SET c 'it''s'\r\nPING\r\n", expected);
}

#[test]
fn empty_inline_lines_are_ignored() {
    let servers = servers();
    check(&servers, b"\r\n\r\nPING\r\n", "+PONG\r\n");
    check(&servers, b"   \r\n\n\t\r\nPING\r\n", "+PONG\r\n");
}

#[test]
fn empty_and_negative_multibulks_are_skipped() {
    let servers = servers();
    check(&servers, b"*0\r\nPING\r\n", "+PONG\r\n");
    check(&servers, b"*-1\r\n*0\r\n*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
}

#[test]
fn a_multibulk_element_that_is_not_a_bulk_string_is_a_protocol_error() {
    let servers = servers();
    check_closes(&servers, b"*1\r\nPING\r\n", "-ERR Protocol error: expected '$', got 'P'\r\n");
    check_closes(&servers, b"*2\r\n$4\r\nECHO\r\n:4\r\n", "-ERR Protocol error: expected '$', got ':'\r\n");
}

#[test]
fn malformed_bulk_lengths_are_protocol_errors() {
    let servers = servers();
    let expected = "-ERR Protocol error: invalid bulk length\r\n";
    for header in ["$x", "$-1", "$-2", "$", "$4x", "$ 4", "$+4", "$2147483648", "$536870913", "$99999999999999999999"] {
        let request = format!("*1\r\n{header}\r\nPING\r\n");
        check_closes(&servers, request.as_bytes(), expected);
    }
}

#[test]
fn malformed_multibulk_lengths_are_protocol_errors() {
    let servers = servers();
    let expected = "-ERR Protocol error: invalid multibulk length\r\n";
    for header in ["*", "*1x", "*+1", "*01", "*3000000000"] {
        let request = format!("{header}\r\n$4\r\nPING\r\n");
        check_closes(&servers, request.as_bytes(), expected);
    }
}

#[test]
fn a_request_split_byte_by_byte_is_reassembled() {
    let servers = servers();
    let mut request = Raw::encode(&["SET", "{a}split", "a value with spaces"]);
    request.extend_from_slice(b"GET {a}split\r\n");
    request.extend_from_slice(&Raw::encode(&["MSET", "k1", "v1", "k2", "v2", "k3", "v3"]));
    request.extend_from_slice(&Raw::encode(&["MGET", "k1", "k2", "k3", "{a}split"]));
    let expected = "+OK\r\n$19\r\na value with spaces\r\n+OK\r\n*4\r\n$2\r\nv1\r\n$2\r\nv2\r\n$2\r\nv3\r\n$19\r\na value with spaces\r\n";
    for server in std::iter::once(&servers.0).chain(servers.1.as_ref()) {
        let mut raw = server.raw();
        for byte in &request {
            raw.send(std::slice::from_ref(byte));
        }
        let mut got = String::new();
        for _ in 0..4 {
            got.push_str(&raw.read_reply().unwrap());
        }
        assert_eq!(got, expected, "port {}", server.port);
    }
}

#[test]
fn a_ten_thousand_command_pipeline_across_cores_answers_in_order() {
    let server = Server::start(4, &[]);
    let mut raw = server.raw();
    // A model of the keyspace gives the expected replies: counters on many cores, and MGET
    // and MSET that span cores.
    let mut counters = vec![0u64; 64];
    let mut request = Vec::new();
    let mut expected = String::new();
    for i in 0..10_000usize {
        let key = i * 7 % counters.len();
        match i % 5 {
            0 | 1 => {
                counters[key] += 1;
                request.extend_from_slice(&Raw::encode(&["INCR", &format!("c:{key}")]));
                expected.push_str(&format!(":{}\r\n", counters[key]));
            }
            2 => {
                let other = (key + 13) % counters.len();
                request.extend_from_slice(&Raw::encode(&["MGET", &format!("c:{key}"), &format!("c:{other}")]));
                expected.push_str("*2\r\n");
                for n in [counters[key], counters[other]] {
                    if n == 0 {
                        expected.push_str("$-1\r\n");
                    } else {
                        expected.push_str(&format!("${}\r\n{n}\r\n", n.to_string().len()));
                    }
                }
            }
            3 => {
                let other = (key + 29) % counters.len();
                if key != other {
                    counters[key] += 10;
                    counters[other] += 10;
                }
                let (a, b) = (counters[key].to_string(), counters[other].to_string());
                request.extend_from_slice(&Raw::encode(&["MSET", &format!("c:{key}"), &a, &format!("c:{other}"), &b]));
                expected.push_str("+OK\r\n");
            }
            _ => {
                request.extend_from_slice(b"PING\r\n");
                expected.push_str("+PONG\r\n");
            }
        }
    }
    let mut writer = raw.writer();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&request).expect("write the pipeline");
    });
    let mut got = String::with_capacity(expected.len());
    for _ in 0..10_000 {
        got.push_str(&raw.read_reply().unwrap());
    }
    sender.join().unwrap();
    if got != expected {
        let at = got.bytes().zip(expected.bytes()).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
        let from = at.saturating_sub(80);
        panic!(
            "pipeline replies differ at byte {at}: got {:?}, expected {:?}",
            &got[from..(at + 80).min(got.len())],
            &expected[from..(at + 80).min(expected.len())]
        );
    }
}

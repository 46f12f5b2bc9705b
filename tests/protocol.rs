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

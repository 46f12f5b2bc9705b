//! Pub/Sub against the real binary with four cores: delivery and order across cores, exact
//! counts, pattern matching, RESP2's subscribed mode and RESP3's push frames, leaving on
//! UNSUBSCRIBE, RESET, QUIT and disconnect, shard channels, the pubsub output-buffer limit, and
//! the reply shapes compared byte for byte with redis-server.
//!
//! The kernel spreads connections over the cores (SO_REUSEPORT), so tests that need several
//! cores open many connections: with a dozen, every core has some.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use shoal_testkit::{Raw, Server};
use shoal_tests::THREADS;

/// The items of a flat reply (an array or push frame of bulk strings, nulls and integers), as
/// text: nulls as "(nil)", integers as their digits.
fn items(reply: &str) -> Vec<String> {
    let mut lines = reply.split("\r\n");
    let header = lines.next().expect("a header");
    assert!(header.starts_with('*') || header.starts_with('>'), "an array or push frame: {reply:?}");
    let count: usize = header[1..].parse().expect("a count");
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let line = lines.next().expect("an item");
        match line.as_bytes()[0] {
            b'$' if line == "$-1" => out.push("(nil)".to_owned()),
            b'$' => out.push(lines.next().expect("a bulk's data").to_owned()),
            b'_' => out.push("(nil)".to_owned()),
            b':' => out.push(line[1..].to_owned()),
            _ => panic!("unexpected item {line:?} in {reply:?}"),
        }
    }
    out
}

fn command(raw: &mut Raw, args: &[&str]) -> String {
    raw.command(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Sends one command and reads `n` replies (an (un)subscription answers once per name).
fn command_n(raw: &mut Raw, args: &[&str], n: usize) -> String {
    raw.send(&Raw::encode(args));
    (0..n).map(|_| raw.read_reply().unwrap_or_else(|e| panic!("{args:?}: {e}"))).collect()
}

/// Subscribes with `verb` to each of `names` and checks each confirmation's name.
fn subscribe(raw: &mut Raw, verb: &str, names: &[&str]) {
    let mut request = vec![verb];
    request.extend_from_slice(names);
    raw.send(&Raw::encode(&request));
    for name in names {
        let confirmation = items(&raw.read_reply().unwrap());
        assert_eq!(confirmation[0], verb.to_ascii_lowercase());
        assert_eq!(confirmation[1], *name);
    }
}

fn resp3(server: &Server) -> Raw {
    let mut raw = server.raw();
    assert!(command(&mut raw, &["HELLO", "3"]).starts_with('%'));
    raw
}

fn integer(reply: &str) -> i64 {
    reply.strip_prefix(':').and_then(|r| r.strip_suffix("\r\n")).and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("an integer: {reply:?}"))
}

/// Polls `read` until it returns `want`, for up to ten seconds.
fn eventually(what: &str, want: i64, mut read: impl FnMut() -> i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = read();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {got}, want {want}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_subscriber_gets_each_publishers_messages_in_publish_order() {
    let server = Server::start(THREADS, &[]);
    const PUBLISHERS: usize = 6;
    const MESSAGES: usize = 400;
    let mut subscribers = Vec::new();
    for i in 0..12 {
        let mut raw = if i % 2 == 0 { server.raw() } else { resp3(&server) };
        if i % 3 == 0 {
            subscribe(&mut raw, "PSUBSCRIBE", &["n?ws"]);
        } else {
            subscribe(&mut raw, "SUBSCRIBE", &["news"]);
        }
        subscribers.push(raw);
    }
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let mut raw = server.raw();
            std::thread::spawn(move || {
                if p % 2 == 0 {
                    for seq in 0..MESSAGES {
                        assert_eq!(raw.command(&["PUBLISH", "news", &format!("{p}:{seq}")]).unwrap(), ":12\r\n", "every subscriber counted");
                    }
                } else {
                    // Pipelined: the whole run in one write.
                    let mut request = Vec::new();
                    for seq in 0..MESSAGES {
                        request.extend_from_slice(&Raw::encode(&["PUBLISH", "news", &format!("{p}:{seq}")]));
                    }
                    raw.send(&request);
                    for _ in 0..MESSAGES {
                        assert_eq!(raw.read_reply().unwrap(), ":12\r\n", "every subscriber counted");
                    }
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("publisher");
    }
    assert_each_publishers_order(&mut subscribers, PUBLISHERS, MESSAGES);
}

/// Reads `publishers * messages` messages (payloads `publisher:seq`) from each subscriber and
/// asserts that each publisher's arrive in the order it sent them.
fn assert_each_publishers_order(subscribers: &mut [Raw], publishers: usize, messages: usize) {
    for (i, raw) in subscribers.iter_mut().enumerate() {
        let mut next = vec![0usize; publishers];
        for _ in 0..publishers * messages {
            let message = items(&raw.read_reply().unwrap());
            let (p, seq) = message.last().expect("a payload").split_once(':').expect("publisher:seq");
            let (p, seq): (usize, usize) = (p.parse().unwrap(), seq.parse().unwrap());
            assert_eq!(seq, next[p], "subscriber {i}: publisher {p}'s messages in order ({message:?})");
            next[p] += 1;
        }
    }
}

#[test]
fn a_publish_right_after_a_confirmation_counts_and_reaches_the_new_subscriber() {
    let server = Server::start(THREADS, &[]);
    let mut subscribers = Vec::new();
    for n in 1..=16 {
        let mut raw = server.raw();
        assert_eq!(command(&mut raw, &["SUBSCRIBE", "fresh"]), "*3\r\n$9\r\nsubscribe\r\n$5\r\nfresh\r\n:1\r\n");
        subscribers.push(raw);
        // A new connection each time, so the publisher is on any core.
        let mut publisher = server.raw();
        assert_eq!(integer(&command(&mut publisher, &["PUBSUB", "NUMSUB", "fresh"]).replace("*2\r\n$5\r\nfresh\r\n", "")), n);
        assert_eq!(command(&mut publisher, &["PUBLISH", "fresh", &n.to_string()]), format!(":{n}\r\n"));
    }
    for (i, raw) in subscribers.iter_mut().enumerate() {
        for n in i + 1..=16 {
            assert_eq!(items(&raw.read_reply().unwrap()), ["message", "fresh", &n.to_string()]);
        }
    }
    // Leaving is exact the same way: after each confirmation the count is one less.
    for (i, raw) in subscribers.iter_mut().enumerate() {
        raw.send(&Raw::encode(&["UNSUBSCRIBE", "fresh"]));
        // The messages published while the earlier subscribers left come first.
        for _ in 0..i {
            assert_eq!(items(&raw.read_reply().unwrap()), ["message", "fresh", "x"]);
        }
        assert_eq!(raw.read_reply().unwrap(), "*3\r\n$11\r\nunsubscribe\r\n$5\r\nfresh\r\n:0\r\n");
        let mut publisher = server.raw();
        assert_eq!(command(&mut publisher, &["PUBLISH", "fresh", "x"]), format!(":{}\r\n", 15 - i));
    }
}

#[test]
fn publish_counts_equal_deliveries_while_subscribers_come_and_go() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;
    let server = Server::start(THREADS, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicI64::new(0));
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let (stop, counted, mut raw) = (stop.clone(), counted.clone(), server.raw());
            std::thread::spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::SeqCst) {
                    let (verb, channel) = if p == 2 { ("SPUBLISH", "churn-shard") } else { ("PUBLISH", "churn") };
                    counted.fetch_add(integer(&raw.command(&[verb, channel, &format!("{p}:{seq}")]).unwrap()), Ordering::SeqCst);
                    seq += 1;
                }
            })
        })
        .collect();
    // Each cycle subscribes, then unsubscribes and counts what arrived in between: everything
    // a PUBLISH counted for it arrives before the unsubscription's confirmation.
    let churners: Vec<_> = (0..8)
        .map(|c| {
            let mut raw = if c % 2 == 0 { server.raw() } else { resp3(&server) };
            std::thread::spawn(move || {
                let (verb, name, unverb) = match c % 4 {
                    0 | 1 => ("SUBSCRIBE", "churn", "UNSUBSCRIBE"),
                    2 => ("PSUBSCRIBE", "ch?rn", "PUNSUBSCRIBE"),
                    _ => ("SSUBSCRIBE", "churn-shard", "SUNSUBSCRIBE"),
                };
                let mut delivered = 0;
                for _ in 0..60 {
                    assert_eq!(items(&raw.command(&[verb, name]).unwrap())[0], verb.to_ascii_lowercase());
                    raw.send(&Raw::encode(&[unverb, name]));
                    loop {
                        let reply = items(&raw.read_reply().unwrap());
                        if reply[0] == unverb.to_ascii_lowercase() {
                            break;
                        }
                        delivered += 1;
                    }
                }
                delivered
            })
        })
        .collect();
    let delivered: i64 = churners.into_iter().map(|c| c.join().expect("churner")).sum();
    stop.store(true, Ordering::SeqCst);
    for publisher in publishers {
        publisher.join().expect("publisher");
    }
    assert!(delivered > 0, "messages were published while subscribed");
    assert_eq!(counted.load(Ordering::SeqCst), delivered, "PUBLISH counted exactly the messages delivered");
}

#[test]
fn publish_counts_channel_and_pattern_subscribers_on_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut clients = Vec::new();
    for i in 0..10 {
        let mut raw = server.raw();
        subscribe(&mut raw, "SUBSCRIBE", &["c"]);
        if i < 3 {
            subscribe(&mut raw, "PSUBSCRIBE", &["c*"]);
        }
        if i == 9 {
            subscribe(&mut raw, "PSUBSCRIBE", &["*", "[c]"]);
        }
        clients.push(raw);
    }
    for _ in 0..4 {
        let mut publisher = server.raw();
        assert_eq!(command(&mut publisher, &["PUBLISH", "c", "m"]), ":15\r\n");
        assert_eq!(command(&mut publisher, &["PUBLISH", "cc", "m"]), ":4\r\n");
        assert_eq!(command(&mut publisher, &["PUBLISH", "d", "m"]), ":1\r\n");
        assert_eq!(command(&mut publisher, &["PUBSUB", "NUMSUB", "c", "cc"]), "*4\r\n$1\r\nc\r\n:10\r\n$2\r\ncc\r\n:0\r\n");
        assert_eq!(command(&mut publisher, &["PUBSUB", "NUMPAT"]), ":3\r\n");
        assert_eq!(command(&mut publisher, &["PUBSUB", "CHANNELS"]), "*1\r\n$1\r\nc\r\n");
        assert_eq!(command(&mut publisher, &["PUBSUB", "CHANNELS", "x*"]), "*0\r\n");
    }
    // The last client got its channel's message, then one per matching pattern.
    let last = &mut clients[9];
    let first = items(&last.read_reply().unwrap());
    assert_eq!(first, ["message", "c", "m"]);
    let patterns: BTreeSet<String> = (0..2).map(|_| items(&last.read_reply().unwrap())[1].clone()).collect();
    assert_eq!(patterns, BTreeSet::from(["*".to_owned(), "[c]".to_owned()]));
}

/// Channel -> the patterns of `PATTERNS` that match it, as redis-server 7.0 matches them.
const MATCHES: &[(&str, &[&str])] = &[
    ("hello", &["*", "h*llo", "h?llo", "h[ae]llo"]),
    ("hallo", &["*", "h*llo", "h?llo", "h[^e]llo", "h[a-b]llo", "h[ae]llo"]),
    ("hllo", &["*", "h*llo"]),
    ("heeello", &["*", "h*llo"]),
    ("hillo", &["*", "h*llo", "h?llo", "h[^e]llo"]),
    ("hbllo", &["*", "h*llo", "h?llo", "h[^e]llo", "h[a-b]llo"]),
    ("*", &["*", "\\*"]),
    // `*` never matches the empty channel (Redis's stringmatchlen).
    ("", &[]),
    ("a[", &["*", "a[^"]),
    ("ab", &["*", "a[^", "a[b"]),
    ("]x", &["*"]),
    ("x\\", &["*", "x\\"]),
    ("foo", &["*", "*o*o*"]),
];

const PATTERNS: &[&str] = &["h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "\\*", "*", "a[", "a[b", "[]]x", "x\\", "a[^", "*o*o*"];

/// The patterns whose pmessage `subscriber` gets for each channel of [`MATCHES`] published on
/// `server`.
fn matched_patterns(server: &Server) -> Vec<(String, BTreeSet<String>)> {
    let mut subscriber = server.raw();
    subscribe(&mut subscriber, "PSUBSCRIBE", PATTERNS);
    let mut publisher = server.raw();
    MATCHES
        .iter()
        .map(|(channel, _)| {
            let count = integer(&command(&mut publisher, &["PUBLISH", channel, "m"]));
            let patterns = (0..count)
                .map(|_| {
                    let message = items(&subscriber.read_reply().unwrap());
                    assert_eq!(&message[2], channel);
                    message[1].clone()
                })
                .collect();
            (channel.to_string(), patterns)
        })
        .collect()
}

#[test]
fn patterns_match_as_redis_globs_do() {
    let expected: Vec<(String, BTreeSet<String>)> =
        MATCHES.iter().map(|(channel, patterns)| (channel.to_string(), patterns.iter().map(|p| p.to_string()).collect())).collect();
    assert_eq!(matched_patterns(&Server::start(THREADS, &[])), expected);
    if let Some(redis) = Server::start_redis() {
        assert_eq!(matched_patterns(&redis), expected, "the table is what redis-server does");
    }
}

#[test]
fn a_subscribed_resp2_client_may_only_subscribe_ping_quit_and_reset() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    subscribe(&mut raw, "SUBSCRIBE", &["c"]);
    let refused =
        |name: &str| format!("-ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
    assert_eq!(command(&mut raw, &["GET", "x"]), refused("get"));
    assert_eq!(command(&mut raw, &["CLIENT", "LIST"]), refused("client|list"));
    assert_eq!(command(&mut raw, &["MULTI"]), refused("multi"));
    assert_eq!(command(&mut raw, &["HELLO", "3"]), refused("hello"));
    assert_eq!(command(&mut raw, &["PUBLISH", "c", "m"]), refused("publish"));
    assert_eq!(command(&mut raw, &["NOSUCH"]), "-ERR unknown command 'NOSUCH', with args beginning with: \r\n");
    assert_eq!(command(&mut raw, &["PING"]), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(command(&mut raw, &["PING", "hi"]), "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
    assert_eq!(command(&mut raw, &["PING", "a", "b"]), "-ERR wrong number of arguments for 'ping' command\r\n");
    // Shard subscriptions keep the client in Pub/Sub mode too.
    assert_eq!(command(&mut raw, &["SSUBSCRIBE", "s"]), "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n");
    assert_eq!(command(&mut raw, &["UNSUBSCRIBE"]), "*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n");
    assert_eq!(command(&mut raw, &["GET", "x"]), refused("get"));
    assert_eq!(command(&mut raw, &["SUNSUBSCRIBE"]), "*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n");
    assert_eq!(command(&mut raw, &["GET", "x"]), "$-1\r\n");
    assert_eq!(command(&mut raw, &["PING"]), "+PONG\r\n");
    subscribe(&mut raw, "PSUBSCRIBE", &["p*"]);
    assert_eq!(command(&mut raw, &["QUIT"]), "+OK\r\n");
    assert_eq!(raw.read_until_closed().unwrap(), b"");
}

#[test]
fn a_resp3_subscriber_gets_push_frames_and_may_run_any_command() {
    let server = Server::start(THREADS, &[]);
    let mut raw = resp3(&server);
    assert_eq!(command(&mut raw, &["SUBSCRIBE", "c1"]), ">3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n");
    assert_eq!(command(&mut raw, &["PSUBSCRIBE", "c*"]), ">3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:2\r\n");
    assert_eq!(command(&mut raw, &["GET", "x"]), "_\r\n");
    assert_eq!(command(&mut raw, &["PING"]), "+PONG\r\n");
    assert_eq!(command(&mut raw, &["SET", "x", "1"]), "+OK\r\n");
    let mut publisher = server.raw();
    assert_eq!(command(&mut publisher, &["PUBLISH", "c1", "hello"]), ":2\r\n");
    assert_eq!(raw.read_reply().unwrap(), ">3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$5\r\nhello\r\n");
    assert_eq!(raw.read_reply().unwrap(), ">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nc1\r\n$5\r\nhello\r\n");
    // Messages interleave with replies; GET's reply is still there after them.
    assert_eq!(command(&mut publisher, &["PUBLISH", "c2", "again"]), ":1\r\n");
    raw.send(&Raw::encode(&["GET", "x"]));
    let mut got = vec![raw.read_reply().unwrap(), raw.read_reply().unwrap()];
    got.sort();
    assert_eq!(got, ["$1\r\n1\r\n", ">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nc2\r\n$5\r\nagain\r\n"]);
    assert_eq!(
        command_n(&mut raw, &["UNSUBSCRIBE", "c1", "c1"], 2),
        ">3\r\n$11\r\nunsubscribe\r\n$2\r\nc1\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n$2\r\nc1\r\n:1\r\n"
    );
    assert_eq!(command(&mut raw, &["PUNSUBSCRIBE"]), ">3\r\n$12\r\npunsubscribe\r\n$2\r\nc*\r\n:0\r\n");
    assert_eq!(command(&mut publisher, &["PUBLISH", "c1", "gone"]), ":0\r\n");
    // Publishing to itself: the message comes before PUBLISH's reply, as in Redis.
    subscribe(&mut raw, "SUBSCRIBE", &["c2"]);
    assert_eq!(command_n(&mut raw, &["PUBLISH", "c2", "self"], 2), ">3\r\n$7\r\nmessage\r\n$2\r\nc2\r\n$4\r\nself\r\n:1\r\n");
}

#[test]
fn unsubscribing_from_nothing_answers_nil_and_zero() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    for verb in ["unsubscribe", "punsubscribe", "sunsubscribe"] {
        let head = format!("*3\r\n${}\r\n{verb}\r\n", verb.len());
        assert_eq!(command(&mut raw, &[verb]), format!("{head}$-1\r\n:0\r\n"));
        assert_eq!(command_n(&mut raw, &[verb, "x", "y"], 2), format!("{head}$1\r\nx\r\n:0\r\n{head}$1\r\ny\r\n:0\r\n"));
    }
    let mut raw = resp3(&server);
    for verb in ["unsubscribe", "punsubscribe", "sunsubscribe"] {
        assert_eq!(command(&mut raw, &[verb]), format!(">3\r\n${}\r\n{verb}\r\n_\r\n:0\r\n", verb.len()));
    }
    // After the last subscription goes, unsubscribing everything again is the same reply.
    subscribe(&mut raw, "SUBSCRIBE", &["a"]);
    assert_eq!(command(&mut raw, &["UNSUBSCRIBE"]), ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
    assert_eq!(command(&mut raw, &["UNSUBSCRIBE"]), ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n");
}

#[test]
fn subscription_counts_follow_redis() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(
        command_n(&mut raw, &["SUBSCRIBE", "c1", "c2", "c1"], 3),
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nc2\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:2\r\n"
    );
    assert_eq!(command(&mut raw, &["PSUBSCRIBE", "p*"]), "*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n");
    // Shard subscriptions count on their own.
    assert_eq!(
        command_n(&mut raw, &["SSUBSCRIBE", "s1", "s2"], 2),
        "*3\r\n$10\r\nssubscribe\r\n$2\r\ns1\r\n:1\r\n*3\r\n$10\r\nssubscribe\r\n$2\r\ns2\r\n:2\r\n"
    );
    assert_eq!(
        command_n(&mut raw, &["UNSUBSCRIBE", "c2", "zz"], 2),
        "*3\r\n$11\r\nunsubscribe\r\n$2\r\nc2\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$2\r\nzz\r\n:2\r\n"
    );
    assert_eq!(command(&mut raw, &["PUNSUBSCRIBE"]), "*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:1\r\n");
    assert_eq!(command(&mut raw, &["SUNSUBSCRIBE", "s2"]), "*3\r\n$12\r\nsunsubscribe\r\n$2\r\ns2\r\n:1\r\n");
    let mut other = server.raw();
    let line = command(&mut other, &["CLIENT", "LIST", "TYPE", "PUBSUB"]);
    assert!(line.contains(" flags=P db=0 sub=1 psub=0 ssub=1 "), "{line}");
    assert!(!command(&mut other, &["CLIENT", "LIST", "TYPE", "NORMAL"]).contains("flags=P"));
    let info = command(&mut other, &["INFO", "stats"]);
    for field in ["pubsub_channels:1\r\n", "pubsub_patterns:0\r\n", "pubsubshard_channels:1\r\n"] {
        assert!(info.contains(field), "{field:?} in {info}");
    }
    // CLIENT KILL TYPE PUBSUB closes the subscriber only.
    assert_eq!(command(&mut other, &["CLIENT", "KILL", "TYPE", "PUBSUB"]), ":1\r\n");
    assert_eq!(raw.read_until_closed().unwrap(), b"");
    assert_eq!(command(&mut other, &["PING"]), "+PONG\r\n");
}

#[test]
fn reset_leaves_every_subscription_after_the_messages_it_counted() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    subscribe(&mut raw, "SUBSCRIBE", &["r"]);
    subscribe(&mut raw, "PSUBSCRIBE", &["r*"]);
    subscribe(&mut raw, "SSUBSCRIBE", &["rs"]);
    let mut publisher = server.raw();
    assert_eq!(command(&mut publisher, &["PUBLISH", "r", "before"]), ":2\r\n");
    // RESET's reply comes after the messages already counted, and nothing follows it.
    raw.send(&Raw::encode(&["RESET"]));
    assert_eq!(items(&raw.read_reply().unwrap()), ["message", "r", "before"]);
    assert_eq!(items(&raw.read_reply().unwrap()), ["pmessage", "r*", "r", "before"]);
    assert_eq!(raw.read_reply().unwrap(), "+RESET\r\n");
    assert_eq!(command(&mut publisher, &["PUBLISH", "r", "after"]), ":0\r\n");
    assert_eq!(command(&mut publisher, &["SPUBLISH", "rs", "after"]), ":0\r\n");
    assert_eq!(command(&mut publisher, &["PUBSUB", "NUMPAT"]), ":0\r\n");
    assert_eq!(command(&mut raw, &["GET", "x"]), "$-1\r\n");
}

#[test]
fn a_disconnect_removes_every_subscription_on_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut stay = Vec::new();
    let mut leave = Vec::new();
    for i in 0..16 {
        let mut raw = server.raw();
        subscribe(&mut raw, "SUBSCRIBE", &["d1", "d2"]);
        subscribe(&mut raw, "PSUBSCRIBE", &[&format!("d{i}*")]);
        subscribe(&mut raw, "SSUBSCRIBE", &["{a}s", "{b}s", "{c}s"]);
        if i % 2 == 0 {
            stay.push(raw);
        } else {
            leave.push(raw);
        }
    }
    let mut probe = server.raw();
    assert_eq!(command(&mut probe, &["PUBSUB", "NUMSUB", "d1"]), "*2\r\n$2\r\nd1\r\n:16\r\n");
    drop(leave);
    let numsub = |probe: &mut Raw, what: &str, channel: &str| {
        integer(&command(probe, &["PUBSUB", what, channel]).replace(&format!("*2\r\n${}\r\n{channel}\r\n", channel.len()), ""))
    };
    eventually("NUMSUB d1", 8, || numsub(&mut probe, "NUMSUB", "d1"));
    eventually("NUMSUB d2", 8, || numsub(&mut probe, "NUMSUB", "d2"));
    eventually("NUMPAT", 8, || integer(&command(&mut probe, &["PUBSUB", "NUMPAT"])));
    for shard in ["{a}s", "{b}s", "{c}s"] {
        eventually("SHARDNUMSUB", 8, || numsub(&mut probe, "SHARDNUMSUB", shard));
    }
    // Every core forgot them: a publish from anywhere counts only those left.
    for _ in 0..8 {
        let mut publisher = server.raw();
        eventually("PUBLISH d1", 8, || integer(&command(&mut publisher, &["PUBLISH", "d1", "m"])));
        assert_eq!(command(&mut publisher, &["SPUBLISH", "{b}s", "m"]), ":8\r\n");
    }
    drop(stay);
    eventually("NUMSUB d1", 0, || numsub(&mut probe, "NUMSUB", "d1"));
    eventually("NUMPAT", 0, || integer(&command(&mut probe, &["PUBSUB", "NUMPAT"])));
    assert_eq!(command(&mut probe, &["PUBSUB", "CHANNELS"]), "*0\r\n");
    eventually("SHARDCHANNELS", 0, || items(&command(&mut probe, &["PUBSUB", "SHARDCHANNELS"])).len() as i64);
}

#[test]
fn shard_channels_deliver_from_their_owning_core_to_subscribers_on_every_core() {
    let server = Server::start(THREADS, &[]);
    // Channels owned by each of the four cores.
    let channels = shoal_testkit::keys_on_distinct_cores("sc", THREADS, THREADS);
    let names: Vec<&str> = channels.iter().map(String::as_str).collect();
    let mut subscribers: Vec<Raw> = (0..8)
        .map(|i| {
            let mut raw = if i % 2 == 0 { server.raw() } else { resp3(&server) };
            subscribe(&mut raw, "SSUBSCRIBE", &names);
            raw
        })
        .collect();
    let mut publishers: Vec<Raw> = (0..6).map(|_| server.raw()).collect();
    for (p, publisher) in publishers.iter_mut().enumerate() {
        for channel in &names {
            assert_eq!(command(publisher, &["SPUBLISH", channel, &p.to_string()]), ":8\r\n");
        }
    }
    for (i, raw) in subscribers.iter_mut().enumerate() {
        for p in 0..6 {
            for channel in &names {
                let message = items(&raw.read_reply().unwrap());
                assert_eq!(message, ["smessage", channel, &p.to_string()], "subscriber {i}");
            }
        }
    }
    let mut probe = server.raw();
    let mut listed = items(&command(&mut probe, &["PUBSUB", "SHARDCHANNELS"]));
    listed.sort();
    let mut want = channels.clone();
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(items(&command(&mut probe, &["PUBSUB", "SHARDCHANNELS", "sc:*"])).len(), 4);
    let mut request = vec!["PUBSUB", "SHARDNUMSUB"];
    request.extend_from_slice(&names);
    request.push("none");
    let counts = items(&command(&mut probe, &request));
    for (at, channel) in names.iter().enumerate() {
        assert_eq!([counts[2 * at].as_str(), counts[2 * at + 1].as_str()], [*channel, "8"]);
    }
    assert_eq!(&counts[counts.len() - 2..], ["none", "0"]);
    let info = command(&mut probe, &["INFO", "stats"]);
    assert!(info.contains("pubsubshard_channels:4\r\n"), "{info}");
    // A plain PUBLISH on a shard channel's name reaches nobody.
    assert_eq!(command(&mut probe, &["PUBLISH", names[0], "m"]), ":0\r\n");
}

#[test]
fn one_publishers_publish_and_spublish_messages_arrive_in_order() {
    let server = Server::start(THREADS, &[]);
    // Shard channels owned by each of the four cores: an SPUBLISH travels through the owner,
    // a PUBLISH straight from the publisher's core.
    let channels = shoal_testkit::keys_on_distinct_cores("ord", THREADS, THREADS);
    let names: Vec<&str> = channels.iter().map(String::as_str).collect();
    const SUBSCRIBERS: usize = 8;
    const PUBLISHERS: usize = 4;
    const MESSAGES: usize = 300;
    let mut subscribers: Vec<Raw> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut raw = if i % 2 == 0 { server.raw() } else { resp3(&server) };
            subscribe(&mut raw, "SUBSCRIBE", &["plain"]);
            subscribe(&mut raw, "SSUBSCRIBE", &names);
            raw
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let mut raw = server.raw();
            let names: Vec<String> = channels.clone();
            std::thread::spawn(move || {
                // Pipelined, so the PUBLISH and the SPUBLISH after it leave together.
                let mut request = Vec::new();
                for seq in 0..MESSAGES {
                    let payload = format!("{p}:{seq}");
                    if seq % 2 == 0 {
                        request.extend_from_slice(&Raw::encode(&["PUBLISH", "plain", &payload]));
                    } else {
                        request.extend_from_slice(&Raw::encode(&["SPUBLISH", &names[seq / 2 % names.len()], &payload]));
                    }
                }
                raw_send_and_count(&mut raw, &request, MESSAGES, SUBSCRIBERS);
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("publisher");
    }
    assert_each_publishers_order(&mut subscribers, PUBLISHERS, MESSAGES);
}

/// The core that parses PUBLISH does less work per message than a core writing it to many
/// subscribers: without flow control between cores the publisher's core runs ahead, the
/// messages pile up in the buffers of subscribers that read all they can, and the output
/// limit cuts them off. Every subscriber here reads continuously and must get everything.
#[test]
fn subscribers_that_keep_reading_get_every_message_of_a_publisher_far_ahead() {
    let server = Server::start(THREADS, &["--client-output-buffer-limit", "pubsub 2mb 1mb 1"]);
    const SUBSCRIBERS: usize = 48;
    const MESSAGES: usize = 6000;
    let payload = "f".repeat(1000);
    let readers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut raw = server.raw();
            subscribe(&mut raw, "SUBSCRIBE", &["fan"]);
            std::thread::spawn(move || {
                raw.set_read_timeout(Duration::from_secs(60));
                let mut got = 0;
                while got < MESSAGES {
                    match raw.read_reply() {
                        Ok(_) => got += 1,
                        Err(_) => break,
                    }
                }
                got
            })
        })
        .collect();
    let mut publisher = server.raw();
    let mut request = Vec::new();
    for _ in 0..MESSAGES {
        request.extend_from_slice(&Raw::encode(&["PUBLISH", "fan", &payload]));
    }
    raw_send_and_count(&mut publisher, &request, MESSAGES, SUBSCRIBERS);
    for reader in readers {
        assert_eq!(reader.join().expect("reader"), MESSAGES, "a subscriber that kept reading got every message");
    }
}

/// Sends a pipeline of `count` PUBLISH and checks that each reached `receivers`.
fn raw_send_and_count(publisher: &mut Raw, request: &[u8], count: usize, receivers: usize) {
    publisher.send(request);
    for at in 0..count {
        assert_eq!(publisher.read_reply().unwrap(), format!(":{receivers}\r\n"), "PUBLISH {at} reached every subscriber");
    }
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_the_pubsub_hard_limit() {
    let server = Server::start(THREADS, &[]);
    let mut stalled = server.raw();
    subscribe(&mut stalled, "SUBSCRIBE", &["flood"]);
    let mut reader = server.raw();
    subscribe(&mut reader, "SUBSCRIBE", &["flood"]);
    // Set after they subscribed: every core's subscribers get the new limit.
    assert_eq!(command(&mut server.raw(), &["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 0 0"]), "+OK\r\n");
    const MESSAGES: usize = 640;
    let payload = "p".repeat(100 * 1024);
    // The reading subscriber reads in its own thread and must get every message; the
    // publisher waits for it after each one, so its buffer never holds more than one.
    let (read, was_read) = std::sync::mpsc::channel();
    let reading = std::thread::spawn(move || {
        for _ in 0..MESSAGES {
            let message = items(&reader.read_reply().unwrap());
            assert_eq!(message[2].len(), 100 * 1024);
            read.send(()).unwrap();
        }
        reader
    });
    let mut publisher = server.raw();
    let started = Instant::now();
    // 64 MB for a subscriber that reads nothing: far past what the sockets hold.
    let mut stalled_counted = 0;
    for _ in 0..MESSAGES {
        let count = integer(&command(&mut publisher, &["PUBLISH", "flood", &payload]));
        assert!((1..=2).contains(&count), "the reader and maybe the stalled one: {count}");
        if count == 2 {
            stalled_counted += 1;
        }
        was_read.recv_timeout(Duration::from_secs(10)).expect("the reading subscriber got it");
    }
    // Gone after about 1 MB plus what the sockets hold (a few MB), not after the default 32 MB.
    assert!(stalled_counted < 250, "the stalled subscriber was counted for {stalled_counted} messages of 100 KB");
    assert!(started.elapsed() < Duration::from_secs(60), "the publisher never waited for the stalled subscriber");
    let _reader = reading.join().expect("the reading subscriber got every message");
    let received = stalled.read_until_closed().expect("the server closes the stalled subscriber");
    assert!(received.len() < 20 << 20, "closed at the 1 MB limit, long before 64 MB (or the 32 MB default) arrived (got {} bytes)", received.len());
    let mut probe = server.raw();
    eventually("NUMSUB flood", 1, || integer(&command(&mut probe, &["PUBSUB", "NUMSUB", "flood"]).replace("*2\r\n$5\r\nflood\r\n", "")));
    assert_eq!(command(&mut publisher, &["PUBLISH", "flood", "x"]), ":1\r\n");
}

#[test]
fn client_kill_closes_a_subscriber_whose_writes_are_stalled() {
    let server = Server::start(THREADS, &[]);
    let mut stalled = server.raw();
    let id = integer(&command(&mut stalled, &["CLIENT", "ID"]));
    subscribe(&mut stalled, "SUBSCRIBE", &["stall"]);
    let mut publisher = server.raw();
    let payload = "p".repeat(100 * 1024);
    // 20 MB, under the default 32 MB limit but far more than the sockets hold: the server's
    // write to it is stuck.
    for _ in 0..200 {
        assert_eq!(command(&mut publisher, &["PUBLISH", "stall", &payload]), ":1\r\n");
    }
    assert_eq!(command(&mut publisher, &["CLIENT", "KILL", "ID", &id.to_string()]), ":1\r\n");
    let mut probe = server.raw();
    eventually("NUMSUB stall", 0, || integer(&command(&mut probe, &["PUBSUB", "NUMSUB", "stall"]).replace("*2\r\n$5\r\nstall\r\n", "")));
    let received = stalled.read_until_closed().expect("the server closed the killed subscriber");
    assert!(received.len() < 20 << 20, "closed before everything arrived (got {} bytes)", received.len());
}

#[test]
fn a_subscriber_over_the_pubsub_soft_limit_for_too_long_is_disconnected() {
    // Three seconds, so that even a loaded machine publishes the 32 MB below within them.
    let server = Server::start(THREADS, &["--client-output-buffer-limit", "pubsub 0 256kb 3"]);
    let mut stalled = server.raw();
    subscribe(&mut stalled, "SUBSCRIBE", &["slow"]);
    let mut publisher = server.raw();
    let payload = "p".repeat(100 * 1024);
    for _ in 0..320 {
        assert_eq!(command(&mut publisher, &["PUBLISH", "slow", &payload]), ":1\r\n");
    }
    // The subscriber's misbehaviour, not a wait for a condition: it reads nothing for longer
    // than the soft limit's seconds, while the buffer stays over it.
    std::thread::sleep(Duration::from_millis(3500));
    command(&mut publisher, &["PUBLISH", "slow", "x"]);
    let received = stalled.read_until_closed().expect("the server closes the subscriber");
    assert!(received.len() < 32 << 20, "closed before every message arrived (got {} bytes)", received.len());
    let mut probe = server.raw();
    eventually("NUMSUB slow", 0, || integer(&command(&mut probe, &["PUBSUB", "NUMSUB", "slow"]).replace("*2\r\n$4\r\nslow\r\n", "")));
}

#[test]
fn publish_and_subscribe_inside_multi_run_at_exec() {
    let server = Server::start(THREADS, &[]);
    let mut subscriber = server.raw();
    subscribe(&mut subscriber, "SUBSCRIBE", &["tx"]);
    let mut raw = server.raw();
    assert_eq!(command(&mut raw, &["MULTI"]), "+OK\r\n");
    assert_eq!(command(&mut raw, &["PUBLISH", "tx", "m"]), "+QUEUED\r\n");
    assert_eq!(command(&mut raw, &["SUBSCRIBE", "x"]), "+QUEUED\r\n");
    assert_eq!(command(&mut raw, &["PING"]), "+QUEUED\r\n");
    // As redis-server 7.0: the PING after the SUBSCRIBE answers in Pub/Sub form.
    assert_eq!(command(&mut raw, &["EXEC"]), "*3\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        command(&mut raw, &["GET", "k"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(items(&subscriber.read_reply().unwrap()), ["message", "tx", "m"]);
}

#[test]
fn a_script_may_publish_and_count_subscribers() {
    let server = Server::start(THREADS, &[]);
    let mut subscribers: Vec<Raw> = (0..6)
        .map(|_| {
            let mut raw = server.raw();
            subscribe(&mut raw, "SUBSCRIBE", &["from-lua"]);
            raw
        })
        .collect();
    let mut raw = server.raw();
    assert_eq!(command(&mut raw, &["EVAL", "return redis.call('PUBLISH', 'from-lua', 'hi')", "0"]), ":6\r\n");
    assert_eq!(command(&mut raw, &["EVAL", "return redis.call('PUBSUB', 'NUMSUB', 'from-lua')", "0"]), "*2\r\n$8\r\nfrom-lua\r\n:6\r\n");
    assert_eq!(command(&mut raw, &["EVAL", "return redis.call('PUBSUB', 'NUMPAT')", "0"]), ":0\r\n");
    // A script holding keys of other cores parks them; its messages reach them afterwards.
    let keys = shoal_testkit::keys_on_distinct_cores("lua", THREADS, THREADS);
    let mut request = vec!["EVAL", "return redis.call('PUBLISH', 'from-lua', 'parked')", "4"];
    request.extend(keys.iter().map(String::as_str));
    assert_eq!(command(&mut raw, &request), ":6\r\n");
    for subscriber in &mut subscribers {
        assert_eq!(items(&subscriber.read_reply().unwrap()), ["message", "from-lua", "hi"]);
        assert_eq!(items(&subscriber.read_reply().unwrap()), ["message", "from-lua", "parked"]);
    }
}

/// One connection's transcript of the exchanges whose bytes Redis fixes (no unordered lists).
fn transcript(server: &Server) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut raw = server.raw();
    let mut publisher = server.raw();
    fn log(out: &mut Vec<(String, String)>, raw: &mut Raw, args: &[&str]) {
        // (Un)subscriptions answer once per name (or once, for all of them).
        let replies = match args[0] {
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => (args.len() - 1).max(1),
            _ => 1,
        };
        out.push((format!("{args:?}"), command_n(raw, args, replies)));
    }
    for proto in ["2", "3"] {
        log(&mut out, &mut raw, &["HELLO", proto]);
        log(&mut out, &mut raw, &["UNSUBSCRIBE"]);
        log(&mut out, &mut raw, &["PUNSUBSCRIBE"]);
        log(&mut out, &mut raw, &["SUNSUBSCRIBE"]);
        log(&mut out, &mut raw, &["UNSUBSCRIBE", "a", "b"]);
        log(&mut out, &mut raw, &["SUBSCRIBE", "c1", "c2", "c1"]);
        log(&mut out, &mut raw, &["PSUBSCRIBE", "c*"]);
        log(&mut out, &mut raw, &["SSUBSCRIBE", "s1"]);
        log(&mut out, &mut raw, &["GET", "x"]);
        log(&mut out, &mut raw, &["CLIENT", "ID"]);
        log(&mut out, &mut raw, &["PING"]);
        log(&mut out, &mut raw, &["PING", "hi"]);
        log(&mut out, &mut raw, &["PING", "a", "b"]);
        log(&mut out, &mut raw, &["SUBSCRIBE"]);
        log(&mut out, &mut raw, &["SSUBSCRIBE"]);
        log(&mut out, &mut raw, &["PUBLISH", "c1"]);
        log(&mut out, &mut publisher, &["PUBLISH", "c2", "hello"]);
        // The message, then the pattern's.
        out.push(("message".into(), raw.read_reply().unwrap()));
        out.push(("pmessage".into(), raw.read_reply().unwrap()));
        log(&mut out, &mut publisher, &["SPUBLISH", "s1", "shard"]);
        out.push(("smessage".into(), raw.read_reply().unwrap()));
        log(&mut out, &mut publisher, &["PUBSUB", "NUMSUB", "c1", "zz"]);
        log(&mut out, &mut publisher, &["PUBSUB", "NUMSUB"]);
        log(&mut out, &mut publisher, &["PUBSUB", "NUMPAT"]);
        log(&mut out, &mut publisher, &["PUBSUB", "SHARDNUMSUB", "s1", "zz"]);
        log(&mut out, &mut publisher, &["PUBSUB", "SHARDCHANNELS"]);
        log(&mut out, &mut publisher, &["PUBSUB", "CHANNELS", "c1"]);
        log(&mut out, &mut publisher, &["PUBSUB", "CHANNELS", "a", "b"]);
        log(&mut out, &mut publisher, &["PUBSUB", "NUMPAT", "x"]);
        log(&mut out, &mut publisher, &["PUBSUB", "FOO"]);
        log(&mut out, &mut publisher, &["PUBSUB"]);
        log(&mut out, &mut publisher, &["PUBSUB", "HELP"]);
        log(&mut out, &mut raw, &["UNSUBSCRIBE", "c2", "zz"]);
        log(&mut out, &mut raw, &["UNSUBSCRIBE"]);
        log(&mut out, &mut raw, &["PUNSUBSCRIBE", "x", "c*"]);
        log(&mut out, &mut raw, &["SUNSUBSCRIBE"]);
        log(&mut out, &mut raw, &["GET", "x"]);
        log(&mut out, &mut raw, &["SUBSCRIBE", "r"]);
        log(&mut out, &mut raw, &["RESET"]);
        log(&mut out, &mut publisher, &["PUBLISH", "r", "m"]);
    }
    // HELLO 2 while subscribed in RESP3: Pub/Sub mode's RESP2 rules and message shape apply.
    log(&mut out, &mut raw, &["HELLO", "3"]);
    log(&mut out, &mut raw, &["SUBSCRIBE", "h"]);
    log(&mut out, &mut raw, &["HELLO", "2"]);
    log(&mut out, &mut raw, &["GET", "x"]);
    log(&mut out, &mut publisher, &["PUBLISH", "h", "m"]);
    out.push(("message after HELLO 2".into(), raw.read_reply().unwrap()));
    log(&mut out, &mut raw, &["PING"]);
    log(&mut out, &mut raw, &["RESET"]);
    out
}

#[test]
fn reply_shapes_match_redis_byte_for_byte() {
    let Some(redis) = Server::start_redis() else { return };
    let shoal = Server::start(THREADS, &[]);
    let (ours, theirs) = (transcript(&shoal), transcript(&redis));
    assert_eq!(ours.len(), theirs.len());
    for ((sent, got), (_, want)) in ours.iter().zip(&theirs) {
        // HELLO's map names the server's version and the client's id.
        if sent.starts_with("[\"HELLO\"") || sent.starts_with("[\"CLIENT\"") && want.starts_with(':') {
            continue;
        }
        assert_eq!(got, want, "reply to {sent}");
    }
}

/// A RESP3 subscriber blocked in BLPOP gets its messages while it waits, as from Redis, and
/// the BLPOP's reply when the list is pushed. (On glommio's socket path, `SHOAL_SOCKET_RING=0`,
/// the message waits for the BLPOP to end and goes before its reply.)
#[test]
fn a_resp3_subscriber_blocked_in_blpop_gets_messages_while_it_waits() {
    for server in shoal_tests::shoal_and_redis(&[]) {
        let mut blocked = resp3(&server);
        blocked.set_read_timeout(Duration::from_secs(10));
        subscribe(&mut blocked, "SUBSCRIBE", &["news"]);
        blocked.send(&Raw::encode(&["BLPOP", "inbox", "0"]));
        let mut other = server.raw();
        eventually("blocked clients", 1, || {
            let info = command(&mut other, &["INFO", "clients"]);
            info.split("\r\n").find_map(|line| line.strip_prefix("blocked_clients:")).and_then(|n| n.parse().ok()).unwrap_or(-1)
        });
        assert_eq!(command(&mut other, &["PUBLISH", "news", "hello"]), ":1\r\n");
        let message = ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
        let on_glommio = command(&mut other, &["INFO", "server"]).contains("shoal_socket_io:glommio");
        if !on_glommio {
            assert_eq!(blocked.read_reply().unwrap(), message, "the push arrives while BLPOP waits");
        }
        assert_eq!(command(&mut other, &["RPUSH", "inbox", "letter"]), ":1\r\n");
        if on_glommio {
            assert_eq!(blocked.read_reply().unwrap(), message);
        }
        assert_eq!(blocked.read_reply().unwrap(), "*2\r\n$5\r\ninbox\r\n$6\r\nletter\r\n");
        assert_eq!(command(&mut blocked, &["PING"]), "+PONG\r\n");
    }
}

//! Streams in RDB files and DUMP payloads: round trips of streams built here, files and
//! payloads Debian's `redis-server` 7.0 writes read back as Redis reports them (XRANGE, XINFO,
//! XPENDING), files and payloads written here checked by `redis-check-rdb` and loaded by
//! Redis, handwritten type 15 and 21 bodies (which 7.0 cannot produce), and corrupt bodies,
//! which are errors and never panics. The Redis tests skip with a note when `redis-server`
//! is missing, unless `SHOAL_REQUIRE_ALL=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use shoal_rdb::blobs::ListpackBuilder;
use shoal_rdb::crc64::crc64;
use shoal_rdb::{dump, restore, EntryMeta, Error, Event, Reader, ReaderOptions, Writer, WriterOptions};
use shoal_store::types::stream::{Consumer, Fields, Group, NodeLimits, Pending, StreamId, Trim};
use shoal_store::types::{Limits, Stream};
use shoal_store::Value;

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    Fields::new(pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---- what a stream holds, whatever its node layout ----

#[derive(Debug, Clone, PartialEq)]
struct Contents {
    /// Each entry's id and pairs, escaped so a failure reads well.
    entries: Vec<(StreamId, Vec<(String, String)>)>,
    first_id: StreamId,
    last_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
    groups: BTreeMap<Box<[u8]>, Group>,
}

fn contents(stream: &Stream) -> Contents {
    Contents {
        entries: stream
            .range(StreamId::MIN, StreamId::MAX, false)
            .map(|(id, f)| (id, f.iter().map(|(f, v)| (f.escape_ascii().to_string(), v.escape_ascii().to_string())).collect()))
            .collect(),
        first_id: stream.first_id(),
        last_id: stream.last_id,
        max_deleted_id: stream.max_deleted_id,
        entries_added: stream.entries_added,
        groups: stream.groups.clone(),
    }
}

/// The contents after a write as type 19 and a read: type 19 has no active times, and a
/// consumer read from it gets its seen time as active time (as Redis 7.2 does).
fn as_written(stream: &Stream) -> Contents {
    let mut c = contents(stream);
    for group in c.groups.values_mut() {
        for consumer in group.consumers.values_mut() {
            consumer.active_time_ms = Some(consumer.seen_time_ms);
        }
    }
    c
}

/// The live entry count of each node holding live entries: the node layout a writer keeps.
fn live_nodes(stream: &Stream) -> Vec<u64> {
    stream.nodes().map(|(_, _, live)| live).filter(|&live| live > 0).collect()
}

fn unwrap_stream(value: Value) -> Stream {
    match value {
        Value::Stream(stream) => *stream,
        other => panic!("expected a stream, got {other:?}"),
    }
}

// ---- streams built here ----

/// Adds a group whose consumers hold `pending` (consumer, ids); `idle` consumers hold none.
fn add_group(stream: &mut Stream, name: &str, last_id: StreamId, entries_read: Option<u64>, pending: &[(&str, &[StreamId])], idle: &[&str], now_ms: u64) {
    let mut group = Group { last_id, entries_read, ..Group::default() };
    for (n, (consumer, ids)) in pending.iter().enumerate() {
        let mut c = Consumer { seen_time_ms: now_ms - 60_000, active_time_ms: Some(now_ms - 70_000), pending: BTreeSet::new() };
        for (i, id) in ids.iter().enumerate() {
            c.pending.insert(*id);
            let p = Pending { delivery_time_ms: now_ms - 30_000 - 1000 * i as u64, delivery_count: 1 + (n + i) as u64, consumer: consumer.as_bytes().into() };
            group.pending.insert(*id, p);
        }
        group.consumers.insert(consumer.as_bytes().into(), c);
    }
    for consumer in idle {
        group.consumers.insert(consumer.as_bytes().into(), Consumer { seen_time_ms: now_ms - 90_000, active_time_ms: None, pending: BTreeSet::new() });
    }
    stream.groups.insert(name.as_bytes().into(), group);
}

/// Streams covering the format: many nodes with differing fields, deleted and trimmed
/// entries, integer-looking strings, ids whose deltas wrap, empty streams, groups.
fn corpus(now_ms: u64) -> Vec<(&'static str, Stream)> {
    let small_nodes = NodeLimits { max_bytes: 4096, max_entries: 10 };
    let mut many = Stream::new();
    let base = 1_700_000_000_000;
    for i in 0..137u64 {
        let n = i.to_string();
        let name = format!("name-{i}");
        let long = "v".repeat(200);
        let f = if i % 11 == 0 {
            fields(&[("other", &n), ("x", "")])
        } else if i % 5 == 0 {
            Fields::new([(&b"name"[..], name.as_bytes()), (b"value", n.as_bytes()), (b"extra", b"\x00\xff\r\n")].into_iter())
        } else if i % 13 == 0 {
            fields(&[("name", &long), ("value", "-9223372036854775808")])
        } else {
            fields(&[("name", &name), ("value", &n)])
        };
        many.append(id(base + i / 3, i % 3), f, small_nodes).unwrap();
    }
    for i in [3u64, 4, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 99] {
        assert!(many.delete(id(base + i / 3, i % 3)));
    }
    // Exact trimming leaves a node whose first entries are deleted.
    assert_eq!(many.trim(Trim::MaxLen(110), false, 10, 0), 14);
    let live: Vec<StreamId> = many.range(StreamId::MIN, StreamId::MAX, false).map(|(id, _)| id).collect();
    let deleted_id = id(base + 99 / 3, 0);
    add_group(&mut many, "g1", live[20], Some(40), &[("alice", &[live[0], live[5], deleted_id]), ("bob", &[live[7]])], &["carol"], now_ms);
    add_group(&mut many, "g2", StreamId::MIN, None, &[], &[], now_ms);
    let (last_id, added) = (many.last_id, many.entries_added);
    add_group(&mut many, "g3", last_id, Some(added), &[("\u{e9}t\u{e9}", &live[50..60])], &["", "42"], now_ms);
    many.check_invariants();

    let mut empty = Stream::new();
    empty.set_id(id(5, 3), Some(7), Some(id(5, 1)));

    let mut emptied = Stream::new();
    for ms in 1..=3 {
        emptied.append(id(ms, 0), fields(&[("f", "v")]), NodeLimits::default()).unwrap();
    }
    for ms in 1..=3 {
        emptied.delete(id(ms, 0));
    }
    add_group(&mut emptied, "g", id(3, 0), Some(3), &[], &["c"], now_ms);

    let mut wide = Stream::new();
    wide.append(id(1, 5), fields(&[("f", "1")]), NodeLimits::default()).unwrap();
    wide.append(id(2, 0), fields(&[("f", "2")]), NodeLimits::default()).unwrap();
    wide.append(id(u64::MAX - 1, u64::MAX), fields(&[("f", "3")]), NodeLimits::default()).unwrap();
    wide.append(StreamId::MAX, fields(&[("g", "4")]), NodeLimits::default()).unwrap();

    let mut ints = Stream::new();
    let names: [&[u8]; 7] = [b"1", b"-5", b"9223372036854775807", b"-9223372036854775808", b"007", b"-0", b"12345678901"];
    for (i, name) in names.iter().enumerate() {
        ints.append(id(10, i as u64), Fields::new([(*name, *name), (&b"0"[..], &b"4096"[..])].into_iter()), NodeLimits::default()).unwrap();
    }

    vec![("many", many), ("empty", empty), ("emptied", emptied), ("wide", wide), ("ints", ints)]
}

fn restore_stream(payload: &[u8], limits: &Limits) -> Stream {
    unwrap_stream(restore(payload, limits).unwrap())
}

#[test]
fn streams_survive_dump_and_restore_with_their_node_layout() {
    let now = now_ms();
    for (name, stream) in corpus(now) {
        for compress in [true, false] {
            let value = Value::Stream(Box::new(stream.clone()));
            let payload = dump(&value, compress);
            assert_eq!(payload[0], 19, "{name}: written as type 19");
            // Other node limits do not change the layout: it comes from the payload.
            for limits in [Limits::default(), Limits { stream_node_max_entries: 3, ..Limits::default() }] {
                let back = restore_stream(&payload, &limits);
                back.check_invariants();
                assert_eq!(contents(&back), as_written(&stream), "{name} (compress {compress})");
                assert_eq!(live_nodes(&back), live_nodes(&stream), "{name}: node layout");
                // Written again, it reads back the same.
                let again = restore_stream(&dump(&Value::Stream(Box::new(back)), compress), &limits);
                assert_eq!(contents(&again), as_written(&stream), "{name} twice");
            }
        }
    }
}

#[test]
fn streams_survive_files() {
    let now = now_ms();
    let corpus = corpus(now);
    let mut bytes = Vec::new();
    let mut w = Writer::new(&mut bytes, &WriterOptions::default()).unwrap();
    w.select_db(0).unwrap();
    for (name, stream) in &corpus {
        w.entry(name.as_bytes(), &Value::Stream(Box::new(stream.clone())), &EntryMeta::default()).unwrap();
    }
    w.finish().unwrap();
    let loaded = read_file(&bytes);
    assert_eq!(loaded.len(), corpus.len(), "empty streams are keys too");
    for (name, stream) in &corpus {
        let back = &loaded[name.as_bytes()];
        back.check_invariants();
        assert_eq!(contents(back), as_written(stream), "{name}");
    }
}

#[test]
fn random_streams_survive_dump_and_restore() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5ea1);
    for round in 0..60 {
        let limits = NodeLimits { max_bytes: rng.random_range(0..3000), max_entries: rng.random_range(0..20) };
        let mut stream = Stream::new();
        let mut ms = rng.random_range(0..1u64 << 50);
        let field_names: [&[u8]; 4] = [b"a", b"b", b"17", b""];
        for _ in 0..rng.random_range(0..300) {
            if rng.random_bool(0.3) {
                ms += rng.random_range(1..1000);
            }
            let next = stream.next_id_in(ms).unwrap();
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.random_range(1..4))
                .map(|_| (field_names[rng.random_range(0..4)].to_vec(), rng.random_range(-300i64..300).to_string().into_bytes()))
                .collect();
            stream.append(next, Fields::new(pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice()))), limits).unwrap();
            if rng.random_bool(0.1) {
                let ids: Vec<StreamId> = stream.range(StreamId::MIN, StreamId::MAX, false).map(|(id, _)| id).collect();
                stream.delete(ids[rng.random_range(0..ids.len())]);
            }
            if rng.random_bool(0.02) {
                stream.trim(Trim::MaxLen(rng.random_range(0..50)), rng.random_bool(0.5), 10, 0);
            }
        }
        let live: Vec<StreamId> = stream.range(StreamId::MIN, StreamId::MAX, false).map(|(id, _)| id).collect();
        let mine: Vec<StreamId> = live.iter().copied().filter(|_| rng.random_bool(0.2)).collect();
        let last_id = stream.last_id;
        add_group(&mut stream, "g", last_id, Some(live.len() as u64), &[("c1", &mine)], &["c2"], 1 << 40);
        stream.check_invariants();
        let back = restore_stream(&dump(&Value::Stream(Box::new(stream.clone())), round % 2 == 0), &Limits::default());
        back.check_invariants();
        assert_eq!(contents(&back), as_written(&stream), "round {round}");
        assert_eq!(live_nodes(&back), live_nodes(&stream), "round {round}: node layout");
    }
}

// ---- handwritten bodies ----

enum Item<'a> {
    I(i64),
    S(&'a [u8]),
}
use Item::{I, S};

fn lp(items: &[Item]) -> Vec<u8> {
    let mut b = ListpackBuilder::new();
    for item in items {
        match item {
            I(n) => b.push_int(*n),
            S(s) => b.push(s),
        }
    }
    b.finish()
}

fn len(n: u64) -> Vec<u8> {
    if n < 64 {
        vec![n as u8]
    } else if n < 16384 {
        vec![0x40 | (n >> 8) as u8, n as u8]
    } else if n <= u32::MAX as u64 {
        [&[0x80][..], &(n as u32).to_be_bytes()].concat()
    } else {
        [&[0x81][..], &n.to_be_bytes()].concat()
    }
}

fn s(bytes: &[u8]) -> Vec<u8> {
    [len(bytes.len() as u64), bytes.to_vec()].concat()
}

fn ids(pairs: &[StreamId]) -> Vec<u8> {
    pairs.iter().flat_map(|id| [len(id.ms), len(id.seq)].concat()).collect()
}

/// A node: its master id and listpack.
fn node(master: StreamId, items: &[Item]) -> Vec<u8> {
    [s(&master.to_be_bytes()), s(&lp(items))].concat()
}

/// One node at 1-0 holding 1-0 {f: v} and 1-1 {f: w, g: x}.
fn good_node() -> Vec<u8> {
    node(id(1, 0), &[I(2), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(4), I(0), I(0), I(1), I(2), S(b"f"), S(b"w"), S(b"g"), S(b"x"), I(8)])
}

/// A type 19 body: the nodes, then length, last id, first id, greatest deleted id, entries
/// added, then `groups` (its count included).
fn body19(nodes: &[Vec<u8>], length: u64, last: StreamId, groups: &[u8]) -> Vec<u8> {
    let mut b = len(nodes.len() as u64);
    nodes.iter().for_each(|n| b.extend_from_slice(n));
    b.extend(len(length));
    b.extend(ids(&[last, id(1, 0), id(0, 0)]));
    b.extend(len(length));
    b.extend_from_slice(groups);
    b
}

/// A group with one PEL entry 1-0 delivered at `time`, owned by consumer "c".
fn one_group(name: &[u8], time: u64) -> Vec<u8> {
    let mut g = s(name);
    g.extend(ids(&[id(1, 0)]));
    g.extend(len(2));
    g.extend(len(1));
    g.extend_from_slice(&id(1, 0).to_be_bytes());
    g.extend_from_slice(&time.to_le_bytes());
    g.extend(len(3));
    g.extend(len(1));
    g.extend(s(b"c"));
    g.extend_from_slice(&(time + 5).to_le_bytes());
    g.extend(len(1));
    g.extend_from_slice(&id(1, 0).to_be_bytes());
    g
}

/// A file holding key "k" of type `t` with `body`.
fn file(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = b"REDIS0010".to_vec();
    v.push(t);
    v.extend(s(b"k"));
    v.extend_from_slice(body);
    v.push(0xff);
    let crc = crc64(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

fn load(t: u8, body: &[u8]) -> Result<Stream, Error> {
    let bytes = file(t, body);
    let reader = Reader::new(&bytes[..], ReaderOptions { limits: Limits::default(), now_ms: 0 }).unwrap();
    for event in reader {
        if let Event::Entry(e) = event? {
            return Ok(unwrap_stream(e.value));
        }
    }
    panic!("no key in the file");
}

/// The error of loading `body` as type 19, which must be a corruption report.
fn corrupt(body: &[u8]) -> String {
    match load(19, body) {
        Err(e @ (Error::Corrupt { .. } | Error::Truncated { .. })) => e.to_string(),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_handwritten_type_19_body_loads() {
    let stream = load(19, &body19(&[good_node()], 2, id(1, 1), &[&len(1)[..], &one_group(b"g", 1000)].concat())).unwrap();
    stream.check_invariants();
    let entries: Vec<(StreamId, Vec<_>)> = stream.range(StreamId::MIN, StreamId::MAX, false).map(|(id, f)| (id, f.iter().collect())).collect();
    assert_eq!(entries, vec![(id(1, 0), vec![(&b"f"[..], &b"v"[..])]), (id(1, 1), vec![(&b"f"[..], &b"w"[..]), (&b"g"[..], &b"x"[..])])]);
    assert_eq!((stream.last_id, stream.entries_added, stream.max_deleted_id), (id(1, 1), 2, id(0, 0)));
    let group = &stream.groups[&b"g"[..]];
    assert_eq!((group.last_id, group.entries_read), (id(1, 0), Some(2)));
    assert_eq!(group.pending[&id(1, 0)], Pending { delivery_time_ms: 1000, delivery_count: 3, consumer: b"c".as_slice().into() });
    let consumer = &group.consumers[&b"c"[..]];
    assert_eq!((consumer.seen_time_ms, consumer.active_time_ms), (1005, Some(1005)), "type 19: active time is the seen time");
    assert_eq!(consumer.pending, BTreeSet::from([id(1, 0)]));
}

#[test]
fn type_15_bodies_load_without_counters() {
    // Redis 5 and 6: no first id, greatest deleted id, entries added or group read counter.
    let mut body = len(1);
    body.extend(good_node());
    body.extend(len(2));
    body.extend(ids(&[id(7, 7)]));
    body.extend(len(1));
    body.extend(s(b"g"));
    body.extend(ids(&[id(1, 1)]));
    body.extend(len(0));
    body.extend(len(0));
    let stream = load(15, &body).unwrap();
    assert_eq!(stream.len(), 2);
    assert_eq!((stream.last_id, stream.entries_added, stream.max_deleted_id), (id(7, 7), 2, StreamId::MIN));
    let group = &stream.groups[&b"g"[..]];
    assert_eq!((group.last_id, group.entries_read), (id(1, 1), None));
}

#[test]
fn type_21_bodies_load_active_times() {
    // Redis 7.2: each consumer's active time follows its seen time; -1 is never.
    let mut groups = len(1);
    groups.extend(s(b"g"));
    groups.extend(ids(&[id(1, 1)]));
    groups.extend(len(u64::MAX));
    groups.extend(len(0));
    groups.extend(len(2));
    for (name, active) in [(&b"a"[..], 77u64), (b"b", u64::MAX)] {
        groups.extend(s(name));
        groups.extend_from_slice(&50u64.to_le_bytes());
        groups.extend_from_slice(&active.to_le_bytes());
        groups.extend(len(0));
    }
    let stream = load(21, &body19(&[good_node()], 2, id(1, 1), &groups)).unwrap();
    let group = &stream.groups[&b"g"[..]];
    assert_eq!(group.entries_read, None, "u64::MAX is an unknown read counter");
    assert_eq!(group.consumers[&b"a"[..]].active_time_ms, Some(77));
    assert_eq!(group.consumers[&b"b"[..]].active_time_ms, None);
    assert_eq!(group.consumers[&b"b"[..]].seen_time_ms, 50);
}

#[test]
fn an_empty_stream_is_a_value() {
    let stream = load(19, &body19(&[], 0, id(9, 9), &len(0))).unwrap();
    assert!(stream.is_empty());
    assert_eq!(stream.last_id, id(9, 9));
    // And a DUMP payload of it restores.
    let payload = dump(&Value::Stream(Box::new(stream.clone())), true);
    assert_eq!(contents(&restore_stream(&payload, &Limits::default())), contents(&stream));
}

#[test]
fn deleted_entries_are_skipped_and_counted() {
    // 1-0 deleted, 1-1 live: the master entry says 1 live, 1 deleted.
    let n = node(id(1, 0), &[I(1), I(1), I(1), S(b"f"), I(0), I(3), I(0), I(0), S(b"v"), I(4), I(2), I(0), I(1), S(b"w"), I(4)]);
    let stream = load(19, &body19(&[n], 1, id(1, 1), &len(0))).unwrap();
    stream.check_invariants();
    assert_eq!(stream.range(StreamId::MIN, StreamId::MAX, false).map(|(id, _)| id).collect::<Vec<_>>(), vec![id(1, 1)]);
    // The node model counts the deleted entry, as Redis's listpack does.
    assert_eq!(stream.nodes().collect::<Vec<_>>(), vec![(id(1, 0), 2, 1)]);
    assert_eq!(stream.max_deleted_id, StreamId::MIN, "the file's greatest deleted id is kept");
}

#[test]
fn corrupt_bodies_are_errors() {
    let group = |g: Vec<u8>| [len(1), g].concat();
    let lp_cases: Vec<(&str, Vec<Item>)> = vec![
        ("deleted entries", vec![I(2), I(1), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(4), I(2), I(0), I(1), S(b"w"), I(4)]),
        ("live and", vec![I(3), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(4), I(2), I(0), I(1), S(b"w"), I(4)]),
        ("elements, not", vec![I(2), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(5), I(2), I(0), I(1), S(b"w"), I(4)]),
        ("does not end with 0", vec![I(2), I(0), I(1), S(b"f"), I(1), I(2), I(0), I(0), S(b"v"), I(4)]),
        ("does not follow", vec![I(2), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(4), I(2), I(0), I(0), S(b"w"), I(4)]),
        ("below the node's master", vec![I(1), I(0), I(1), S(b"f"), I(0), I(2), I(-1), I(0), S(b"v"), I(4)]),
        ("unknown entry flags", vec![I(1), I(0), I(1), S(b"f"), I(0), I(6), I(0), I(0), S(b"v"), I(4)]),
        ("not an integer", vec![I(1), I(0), I(1), S(b"f"), I(0), S(b"x"), I(0), I(0), S(b"v"), I(4)]),
        ("left", vec![I(1), I(0), I(1), S(b"f"), I(0), I(0), I(0), I(0), I(5), S(b"f"), S(b"v"), I(14)]),
        ("left", vec![I(1), I(0), I(-1), I(0)]),
        ("left", vec![I(1), I(0), I(1), S(b"f"), I(0), I(2), I(0)]),
        ("empty listpack", vec![]),
    ];
    for (text, items) in lp_cases {
        let err = corrupt(&body19(&[node(id(1, 0), &items)], 2, id(1, 1), &len(0)));
        assert!(err.contains(text), "{text}: {err}");
    }
    let mut bad_lp = good_node();
    let n = bad_lp.len();
    bad_lp[n - 2] ^= 0x40;
    assert!(corrupt(&body19(&[bad_lp], 2, id(1, 1), &len(0))).contains("back-length"));
    let short_key = [s(&[0; 15]), s(&lp(&[I(1), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(4)]))].concat();
    assert!(corrupt(&body19(&[short_key], 1, id(1, 1), &len(0))).contains("not 16"));
    // A second node whose master is not above the first node's entries.
    let again = node(id(1, 1), &[I(1), I(0), I(1), S(b"f"), I(0), I(2), I(0), I(0), S(b"v"), I(4)]);
    assert!(corrupt(&body19(&[good_node(), again], 3, id(1, 1), &len(0))).contains("does not follow"));
    // Lengths and ids that disagree with the entries.
    assert!(corrupt(&body19(&[good_node()], 3, id(1, 1), &len(0))).contains("live entries"));
    assert!(corrupt(&body19(&[good_node()], 2, id(1, 0), &len(0))).contains("above the last id"));
    let mut few_added = body19(&[good_node()], 2, id(1, 1), &len(0));
    let at = few_added.len() - 2;
    few_added[at] = 1;
    assert!(corrupt(&few_added).contains("entries added"));
    // Groups: duplicates, a consumer's id missing from the PEL, a PEL entry without consumer.
    assert!(
        corrupt(&body19(&[good_node()], 2, id(1, 1), &[len(2), one_group(b"g", 1), one_group(b"g", 1)].concat())).contains("duplicate stream consumer group")
    );
    let mut missing = one_group(b"g", 1);
    let n = missing.len();
    missing[n - 1] = 9;
    assert!(corrupt(&body19(&[good_node()], 2, id(1, 1), &group(missing))).contains("not in its group's PEL"));
    let mut orphan = one_group(b"g", 1);
    let n = orphan.len();
    orphan.truncate(n - 17);
    orphan.extend(len(0));
    assert!(corrupt(&body19(&[good_node()], 2, id(1, 1), &group(orphan))).contains("has no consumer"));
    let mut twice = one_group(b"g", 1);
    let consumer = twice[twice.len() - 27..].to_vec();
    let at = twice.len() - 28;
    twice[at] = 2;
    twice.extend(consumer);
    assert!(corrupt(&body19(&[good_node()], 2, id(1, 1), &group(twice))).contains("two consumers"));
}

#[test]
fn truncated_and_flipped_bodies_never_panic() {
    let now = now_ms();
    let (_, stream) = corpus(now).into_iter().next().unwrap();
    let payload = dump(&Value::Stream(Box::new(stream)), false);
    let body = &payload[..payload.len() - 10];
    let with_footer = |body: &[u8]| {
        let mut p = body.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    for cut in (0..body.len()).step_by(7) {
        assert!(restore(&with_footer(&body[..cut]), &Limits::default()).is_err(), "cut at {cut}");
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for _ in 0..2000 {
        let mut b = body.to_vec();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(1..b.len());
            b[at] ^= 1 << rng.random_range(0..8);
        }
        // Either outcome is fine; a panic is not.
        let _ = restore(&with_footer(&b), &Limits::default());
    }
}

// ---- against Debian's redis-server 7.0 ----

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
    Nil,
}

impl Reply {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }

    fn text(&self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }

    fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    /// An array of name/value pairs (XINFO's replies) as a map.
    fn map(&self) -> BTreeMap<String, Reply> {
        self.array().chunks(2).map(|p| (p[0].text(), p[1].clone())).collect()
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn new(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.as_ref().len()).as_bytes());
            out.extend_from_slice(a.as_ref());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
        let reply = self.reply();
        if let Reply::Error(e) = &reply {
            panic!("{:?}: {e}", args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect::<Vec<_>>());
        }
        reply
    }

    fn reply(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        let n = || rest.parse::<i64>().unwrap();
        match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(n()),
            "$" if n() < 0 => Reply::Nil,
            "$" => {
                let mut buf = vec![0; n() as usize + 2];
                self.reader.read_exact(&mut buf).unwrap();
                buf.truncate(n() as usize);
                Reply::Bulk(Some(buf))
            }
            "*" if n() < 0 => Reply::Nil,
            "*" => Reply::Array((0..n()).map(|_| self.reply()).collect()),
            _ => panic!("bad reply line {line:?}"),
        }
    }
}

/// What Redis reports of a stream (and what the same commands would report of ours).
#[derive(Debug, PartialEq)]
struct Report {
    entries: Vec<(String, Vec<Vec<u8>>)>,
    length: i64,
    last_generated_id: String,
    max_deleted_entry_id: String,
    entries_added: i64,
    recorded_first_entry_id: String,
    radix_tree_keys: i64,
    /// Per group: name, consumers, pending, last delivered id, entries read.
    groups: Vec<(String, i64, i64, String, Option<i64>)>,
    /// Per group: its consumers' names and pending counts.
    consumers: Vec<Vec<(String, i64)>>,
    /// Per group: its PEL as (id, consumer, delivery count).
    pending: Vec<Vec<(String, String, i64)>>,
}

fn report_of_redis(c: &mut Conn, key: &str) -> Report {
    let entries =
        c.cmd(&["XRANGE", key, "-", "+"]).array().iter().map(|e| (e.array()[0].text(), e.array()[1].array().iter().map(Reply::bytes).collect())).collect();
    let info = c.cmd(&["XINFO", "STREAM", key]).map();
    let mut report = Report {
        entries,
        length: info["length"].int(),
        last_generated_id: info["last-generated-id"].text(),
        max_deleted_entry_id: info["max-deleted-entry-id"].text(),
        entries_added: info["entries-added"].int(),
        recorded_first_entry_id: info["recorded-first-entry-id"].text(),
        radix_tree_keys: info["radix-tree-keys"].int(),
        groups: Vec::new(),
        consumers: Vec::new(),
        pending: Vec::new(),
    };
    for group in c.cmd(&["XINFO", "GROUPS", key]).array() {
        let g = group.map();
        let name = g["name"].text();
        let entries_read = match &g["entries-read"] {
            Reply::Nil => None,
            n => Some(n.int()),
        };
        report.groups.push((name.clone(), g["consumers"].int(), g["pending"].int(), g["last-delivered-id"].text(), entries_read));
        let consumers = c.cmd(&["XINFO", "CONSUMERS", key, &name]);
        report.consumers.push(consumers.array().iter().map(|c| (c.map()["name"].text(), c.map()["pending"].int())).collect());
        let pending = c.cmd(&["XPENDING", key, &name, "-", "+", "1000"]);
        report.pending.push(pending.array().iter().map(|p| (p.array()[0].text(), p.array()[1].text(), p.array()[3].int())).collect());
    }
    report
}

fn report_of(stream: &Stream) -> Report {
    let groups = stream
        .groups
        .iter()
        .map(|(name, g)| {
            let name = String::from_utf8(name.to_vec()).unwrap();
            (name, g.consumers.len() as i64, g.pending.len() as i64, g.last_id.to_string(), g.entries_read.map(|n| n as i64))
        })
        .collect();
    Report {
        entries: stream
            .range(StreamId::MIN, StreamId::MAX, false)
            .map(|(id, f)| (id.to_string(), f.iter().flat_map(|(f, v)| [f.to_vec(), v.to_vec()]).collect()))
            .collect(),
        length: stream.len() as i64,
        last_generated_id: stream.last_id.to_string(),
        max_deleted_entry_id: stream.max_deleted_id.to_string(),
        entries_added: stream.entries_added as i64,
        recorded_first_entry_id: stream.first_id().to_string(),
        radix_tree_keys: live_nodes(stream).len() as i64,
        groups,
        consumers: stream
            .groups
            .values()
            .map(|g| g.consumers.iter().map(|(n, c)| (String::from_utf8(n.to_vec()).unwrap(), c.pending.len() as i64)).collect())
            .collect(),
        pending: stream
            .groups
            .values()
            .map(|g| g.pending.iter().map(|(id, p)| (id.to_string(), String::from_utf8(p.consumer.to_vec()).unwrap(), p.delivery_count as i64)).collect())
            .collect(),
    }
}

/// The idle times Redis reports, per group: its consumers' (XINFO CONSUMERS) and its PEL's
/// (XPENDING), in that order.
fn idles_of_redis(c: &mut Conn, key: &str) -> Vec<(Vec<i64>, Vec<i64>)> {
    let groups: Vec<String> = c.cmd(&["XINFO", "GROUPS", key]).array().iter().map(|g| g.map()["name"].text()).collect();
    groups
        .iter()
        .map(|g| {
            let consumers = c.cmd(&["XINFO", "CONSUMERS", key, g]).array().iter().map(|c| c.map()["idle"].int()).collect();
            let pending = c.cmd(&["XPENDING", key, g, "-", "+", "1000"]).array().iter().map(|p| p.array()[2].int()).collect();
            (consumers, pending)
        })
        .collect()
}

/// Whether every idle time Redis reported matches ours at `now_ms` (before the query), with
/// `slack_ms` for the time the queries took.
fn idles_match(redis: &[(Vec<i64>, Vec<i64>)], stream: &Stream, now_ms: u64, slack_ms: i64) -> bool {
    let ours: Vec<(Vec<i64>, Vec<i64>)> = stream
        .groups
        .values()
        .map(|g| {
            let idle = |t: u64| now_ms as i64 - t as i64;
            (g.consumers.values().map(|c| idle(c.seen_time_ms)).collect(), g.pending.values().map(|p| idle(p.delivery_time_ms)).collect())
        })
        .collect();
    let close = |a: &[i64], b: &[i64]| a.len() == b.len() && a.iter().zip(b).all(|(r, o)| (*o..=o + slack_ms).contains(r));
    ours.len() == redis.len() && ours.iter().zip(redis).all(|(o, r)| close(&r.0, &o.0) && close(&r.1, &o.1))
}

fn redis_check_rdb_available() -> bool {
    shoal_testkit::need("redis-server") && shoal_testkit::need("redis-check-rdb")
}

fn start_redis(dir: &Path, dbfilename: &str) -> shoal_testkit::Server {
    shoal_testkit::Server::start_redis_in(dir, &["--dbfilename", dbfilename]).expect("redis-server is installed")
}

fn read_file(bytes: &[u8]) -> BTreeMap<Vec<u8>, Stream> {
    let reader = Reader::new(bytes, ReaderOptions { limits: Limits::default(), now_ms: 0 }).unwrap();
    let mut out = BTreeMap::new();
    for event in reader {
        if let Event::Entry(e) = event.unwrap() {
            out.insert(e.key, unwrap_stream(e.value));
        }
    }
    out
}

/// Fills Redis with streams made by commands: many nodes (10 entries each), differing
/// fields, XDEL, exact and approximate XTRIM, groups with PELs, an XCLAIM, XSETID on an
/// empty stream, a stream emptied by XDEL, ids whose deltas wrap.
fn fill_redis(c: &mut Conn) -> Vec<&'static str> {
    c.cmd(&["CONFIG", "SET", "stream-node-max-entries", "10"]);
    for i in 0..260u64 {
        let id = format!("{}-{}", 1_700_000_000_000 + i / 4, i % 4);
        let n = i.to_string();
        let long = "L".repeat(100 + i as usize);
        let mut args: Vec<&str> = vec!["XADD", "s1", &id];
        match i % 7 {
            0 => args.extend(["name", "x", "value", &n, "extra", ""]),
            3 => args.extend(["other", &long]),
            5 => args.extend(["value", &n, "name", "-17"]),
            _ => args.extend(["name", "x", "value", &n]),
        }
        c.cmd(&args);
    }
    for i in [0u64, 1, 2, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 100] {
        c.cmd(&["XDEL", "s1", &format!("{}-{}", 1_700_000_000_000 + i / 4, i % 4)]);
    }
    // Approximate trimming takes whole nodes; exact trimming then leaves a node whose first
    // entries are flagged deleted.
    c.cmd(&["XTRIM", "s1", "MAXLEN", "~", "225"]);
    c.cmd(&["XTRIM", "s1", "MAXLEN", "215"]);
    c.cmd(&["XGROUP", "CREATE", "s1", "g1", "0"]);
    c.cmd(&["XGROUP", "CREATE", "s1", "g2", "$"]);
    c.cmd(&["XGROUP", "CREATE", "s1", "g3", "0", "ENTRIESREAD", "5"]);
    let first = c.cmd(&["XREADGROUP", "GROUP", "g1", "alice", "COUNT", "5", "STREAMS", "s1", ">"]);
    c.cmd(&["XREADGROUP", "GROUP", "g1", "bob", "COUNT", "3", "STREAMS", "s1", ">"]);
    c.cmd(&["XREADGROUP", "GROUP", "g3", "dave", "COUNT", "40", "STREAMS", "s1", ">"]);
    let ids: Vec<String> = first.array()[0].array()[1].array().iter().map(|e| e.array()[0].text()).collect();
    c.cmd(&["XACK", "s1", "g1", &ids[1]]);
    c.cmd(&["XCLAIM", "s1", "g1", "bob", "0", &ids[2]]);
    c.cmd(&["XGROUP", "CREATECONSUMER", "s1", "g1", "carol"]);
    // A pending entry that is then deleted stays in the PEL.
    c.cmd(&["XDEL", "s1", &ids[3]]);

    c.cmd(&["XGROUP", "CREATE", "s2", "g", "0", "MKSTREAM"]);
    c.cmd(&["XSETID", "s2", "100-5", "ENTRIESADDED", "20", "MAXDELETEDID", "50-0"]);

    c.cmd(&["XADD", "s3", "5-1", "f", "v"]);
    c.cmd(&["XADD", "s3", "6-1", "f", "v"]);
    c.cmd(&["XDEL", "s3", "5-1", "6-1"]);

    c.cmd(&["XADD", "s4", "1-5", "f", "1"]);
    c.cmd(&["XADD", "s4", "2-0", "f", "2"]);
    c.cmd(&["XADD", "s4", "18446744073709551614-18446744073709551615", "g", "3"]);
    c.cmd(&["XADD", "s4", "18446744073709551615-18446744073709551615", "g", "4"]);
    vec!["s1", "s2", "s3", "s4"]
}

#[test]
fn streams_redis_saves_and_dumps_load_here_as_redis_reports_them() {
    if !shoal_testkit::need("redis-server") {
        return;
    }
    let dir = shoal_testkit::Server::scratch("rdb-streams-from-redis");
    let server = start_redis(&dir, "dump.rdb");
    let mut c = Conn::new(server.port);
    let before_ms = now_ms();
    let keys = fill_redis(&mut c);
    let after_ms = now_ms();
    for compression in ["yes", "no"] {
        c.cmd(&["CONFIG", "SET", "rdbcompression", compression]);
        c.cmd(&["SAVE"]);
        let loaded = read_file(&std::fs::read(dir.join("dump.rdb")).unwrap());
        assert_eq!(loaded.keys().map(|k| String::from_utf8(k.clone()).unwrap()).collect::<Vec<_>>(), keys);
        for key in &keys {
            let stream = &loaded[key.as_bytes()];
            stream.check_invariants();
            assert_eq!(report_of(stream), report_of_redis(&mut c, key), "{key} (rdbcompression {compression})");
            // Times are Redis's clock's, read the right way round.
            for group in stream.groups.values() {
                let times = group.pending.values().map(|p| p.delivery_time_ms).chain(group.consumers.values().map(|c| c.seen_time_ms));
                for t in times {
                    assert!((before_ms..=after_ms).contains(&t), "{key}: time {t} outside [{before_ms}, {after_ms}]");
                }
            }
        }
    }
    let (s1, s2) = {
        let loaded = read_file(&std::fs::read(dir.join("dump.rdb")).unwrap());
        (loaded[&b"s1"[..]].clone(), loaded[&b"s2"[..]].clone())
    };
    assert!(s1.nodes().count() > 10 && s1.groups.len() == 3, "s1 has many nodes and groups");
    eprintln!("s1 from Redis's dump.rdb: {} entries in {} nodes, {} groups", s1.len(), s1.nodes().count(), s1.groups.len());
    assert_eq!((s2.last_id, s2.entries_added, s2.max_deleted_id), (id(100, 5), 20, id(50, 0)));

    // DUMP payloads load here with the same contents; ours RESTORE in Redis and report the
    // same (but for consumers' times, which RESTORE keeps: checked through their idle times).
    for key in &keys {
        let payload = c.cmd(&["DUMP", key]).bytes();
        assert_eq!(payload[0], 19, "Redis 7.0 dumps streams as type 19");
        let restored = restore_stream(&payload, &Limits::default());
        let from_file = &read_file(&std::fs::read(dir.join("dump.rdb")).unwrap())[key.as_bytes()];
        assert_eq!(contents(&restored), contents(from_file), "{key} from DUMP");
        assert_eq!(live_nodes(&restored), live_nodes(from_file), "{key}: node layout");
        for compress in [true, false] {
            let copy = format!("copy:{key}");
            let ours = dump(&Value::Stream(Box::new(restored.clone())), compress);
            c.cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", ours.as_slice(), b"REPLACE"]);
            let mut expected = report_of_redis(&mut c, key);
            expected.radix_tree_keys = live_nodes(&restored).len() as i64;
            assert_eq!(report_of_redis(&mut c, &copy), expected, "{key} after RESTORE of our payload");
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn streams_written_here_pass_redis_check_rdb_and_load_in_redis() {
    if !redis_check_rdb_available() {
        return;
    }
    let dir = shoal_testkit::Server::scratch("rdb-streams-to-redis");
    let now = now_ms();
    let corpus = corpus(now);
    for compress in [true, false] {
        let name = format!("ours-{compress}.rdb");
        let path = dir.join(&name);
        let mut w = Writer::new(std::fs::File::create(&path).unwrap(), &WriterOptions { compress, ..WriterOptions::default() }).unwrap();
        w.select_db(0).unwrap();
        for (key, stream) in &corpus {
            w.entry(key.as_bytes(), &Value::Stream(Box::new(stream.clone())), &EntryMeta::default()).unwrap();
        }
        w.finish().unwrap();

        let check = Command::new("redis-check-rdb").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success() && text.contains("RDB looks OK"), "redis-check-rdb says:\n{text}");

        let server = start_redis(&dir, &name);
        let mut c = Conn::new(server.port);
        assert_eq!(c.cmd(&["DBSIZE"]).int(), corpus.len() as i64, "empty streams load too");
        for (key, stream) in &corpus {
            assert_eq!(report_of_redis(&mut c, key), report_of(stream), "{key} loaded by Redis");
            let queried_ms = now_ms();
            let idles = idles_of_redis(&mut c, key);
            assert!(idles_match(&idles, stream, queried_ms, 10_000), "{key}: idle times {idles:?}");
        }
        eprintln!("Redis loaded {} streams from {name}", corpus.len());
        // Redis appends after our last node and keeps counting from our counters.
        c.cmd(&["XADD", "many", "*", "name", "new"]);
        let info = c.cmd(&["XINFO", "STREAM", "many"]).map();
        assert_eq!(info["entries-added"].int(), corpus[0].1.entries_added as i64 + 1);
        drop(server);
    }
    let _ = std::fs::remove_dir_all(dir);
}

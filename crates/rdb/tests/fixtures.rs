//! Handwritten files and payloads for what Redis 7.0 cannot produce here: the types of
//! Redis 7.2 and 7.4 (SET_LISTPACK, the hash-with-field-TTL types, version 12 headers,
//! SLOT_INFO), the encodings of Redis 2.x to 6.x (zipmap, ziplist, quicklist of ziplists,
//! ZSET with string scores, EXPIRETIME in seconds), and what is refused (modules). Streams
//! are in `streams.rs`.
//! Each is assembled byte by byte from the format described in Redis's rdb.c, listpack.c,
//! ziplist.c and zipmap.c.

mod common;

use shoal_rdb::blobs::ListpackBuilder;
use shoal_rdb::crc64::crc64;
use shoal_rdb::{Entry, Error, Event, FieldTtls, Reader, ReaderOptions};
use shoal_store::types::Limits;
use shoal_store::Value;

const NOW_MS: i64 = 1_700_000_000_000;
const PAST_MS: i64 = NOW_MS - 60_000;
const FUTURE_MS: i64 = NOW_MS + 3_600_000;

// ---- byte assembly ----

fn len(n: usize) -> Vec<u8> {
    if n < 64 {
        vec![n as u8]
    } else if n < 16384 {
        vec![0x40 | (n >> 8) as u8, n as u8]
    } else {
        let mut v = vec![0x80];
        v.extend_from_slice(&(n as u32).to_be_bytes());
        v
    }
}

fn s(bytes: &[u8]) -> Vec<u8> {
    let mut v = len(bytes.len());
    v.extend_from_slice(bytes);
    v
}

/// A whole file: header, body, EOF, and the checksum from version 5 on.
fn file(version: u16, body: &[u8]) -> Vec<u8> {
    let mut v = format!("REDIS{version:04}").into_bytes();
    v.extend_from_slice(body);
    v.push(0xff);
    if version >= 5 {
        let crc = crc64(&v);
        v.extend_from_slice(&crc.to_le_bytes());
    }
    v
}

/// A key record: type, key, value body.
fn key(type_byte: u8, name: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = vec![type_byte];
    v.extend(s(name));
    v.extend_from_slice(body);
    v
}

fn listpack(items: &[&[u8]]) -> Vec<u8> {
    let mut b = ListpackBuilder::new();
    items.iter().for_each(|i| b.push(i));
    b.finish()
}

/// A ziplist entry: prevlen, then the encoded element.
enum Z<'a> {
    S(&'a [u8]),
    I(i64),
}

fn ziplist(items: &[Z]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut last_at = 10;
    for item in items {
        let mut e = if prev < 254 { vec![prev as u8] } else { [vec![0xfe], (prev as u32).to_le_bytes().to_vec()].concat() };
        match item {
            Z::S(b) if b.len() < 64 => e.push(b.len() as u8),
            Z::S(b) if b.len() < 16384 => e.extend_from_slice(&[0x40 | (b.len() >> 8) as u8, b.len() as u8]),
            Z::S(b) => {
                e.push(0x80);
                e.extend_from_slice(&(b.len() as u32).to_be_bytes());
            }
            Z::I(n) if (0..=12).contains(n) => e.push(0xf1 + *n as u8),
            Z::I(n) if i8::try_from(*n).is_ok() => e.extend_from_slice(&[0xfe, *n as i8 as u8]),
            Z::I(n) if i16::try_from(*n).is_ok() => {
                e.push(0xc0);
                e.extend_from_slice(&(*n as i16).to_le_bytes());
            }
            Z::I(n) if (-(1 << 23)..(1 << 23)).contains(n) => {
                e.push(0xf0);
                e.extend_from_slice(&(*n as i32).to_le_bytes()[..3]);
            }
            Z::I(n) if i32::try_from(*n).is_ok() => {
                e.push(0xd0);
                e.extend_from_slice(&(*n as i32).to_le_bytes());
            }
            Z::I(n) => {
                e.push(0xe0);
                e.extend_from_slice(&n.to_le_bytes());
            }
        }
        if let Z::S(b) = item {
            e.extend_from_slice(b);
        }
        last_at = 10 + body.len();
        prev = e.len();
        body.extend(e);
    }
    let total = 10 + body.len() + 1;
    let mut v = Vec::new();
    v.extend_from_slice(&(total as u32).to_le_bytes());
    v.extend_from_slice(&(last_at as u32).to_le_bytes());
    v.extend_from_slice(&(items.len() as u16).to_le_bytes());
    v.extend(body);
    v.push(0xff);
    v
}

fn zipmap(pairs: &[(&[u8], &[u8], u8)]) -> Vec<u8> {
    let zlen = |n: usize| if n < 254 { vec![n as u8] } else { [vec![0xfe], (n as u32).to_le_bytes().to_vec()].concat() };
    let mut v = vec![pairs.len() as u8];
    for (f, val, free) in pairs {
        v.extend(zlen(f.len()));
        v.extend_from_slice(f);
        v.extend(zlen(val.len()));
        v.push(*free);
        v.extend_from_slice(val);
        v.extend(std::iter::repeat_n(b'?', *free as usize));
    }
    v.push(0xff);
    v
}

fn read(bytes: &[u8]) -> Result<(Vec<Event>, Reader<&[u8]>), Error> {
    let mut reader = Reader::new(bytes, ReaderOptions { limits: Limits::default(), now_ms: NOW_MS })?;
    let mut events = Vec::new();
    while let Some(e) = reader.next_event()? {
        events.push(e);
    }
    Ok((events, reader))
}

fn entries(bytes: &[u8]) -> Vec<Entry> {
    read(bytes).unwrap().0.into_iter().filter_map(|e| if let Event::Entry(e) = e { Some(e) } else { None }).collect()
}

fn only(bytes: &[u8]) -> Entry {
    let mut all = entries(bytes);
    assert_eq!(all.len(), 1);
    all.pop().unwrap()
}

fn read_err(bytes: &[u8]) -> String {
    read(bytes).err().expect("an error").to_string()
}

// ---- Redis 7.2 and 7.4 types ----

#[test]
fn set_listpack_loads_as_a_listpack_set_or_a_hashtable_past_the_limit() {
    let small = only(&file(11, &key(20, b"s", &s(&listpack(&[b"a", b"b", b"3"])))));
    assert_eq!(small.value, common::set(&["a", "b", "3"]));
    assert_eq!(small.value.encoding_name(), "listpack");
    let members: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let refs: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
    let big = only(&file(11, &key(20, b"s", &s(&listpack(&refs)))));
    assert_eq!(big.value, common::set(&members));
    assert_eq!(big.value.encoding_name(), "hashtable");
    let err = read_err(&file(11, &key(20, b"s", &s(&listpack(&[b"a", b"a"])))));
    assert!(err.contains("duplicate"), "{err}");
}

/// The hash fields used by the TTL fixtures: (field, value, absolute TTL ms or 0).
const TTL_FIELDS: [(&[u8], &[u8], i64); 4] = [(b"plain", b"v1", 0), (b"gone", b"v2", PAST_MS), (b"live", b"v3", FUTURE_MS), (b"n", b"42", 0)];

fn expect_ttl_hash(entry: &Entry) {
    let Value::Hash(hash) = &entry.value else { panic!("a hash: {:?}", entry.value) };
    let mut expected = common::hash(&[("plain", "v1"), ("live", "v3"), ("n", "42")]);
    if let Value::Hash(expected) = &mut expected {
        expected.set_field_ttl(b"live", FUTURE_MS as u64);
    }
    assert_eq!(entry.value, expected, "the live field keeps its TTL");
    assert_eq!(hash.field_ttl(b"live"), Some(FUTURE_MS as u64));
    assert_eq!(entry.value.encoding_name(), "listpackex");
    assert_eq!(entry.field_ttls, FieldTtls { expired_dropped: 1, live: 1 });
    assert!(entry.field_ttls.any());
}

fn ttl_listpack(fields: &[(&[u8], &[u8], i64)]) -> Vec<u8> {
    let mut b = ListpackBuilder::new();
    for (f, v, ttl) in fields {
        b.push(f);
        b.push(v);
        b.push_int(*ttl);
    }
    b.finish()
}

#[test]
fn hash_listpack_ex_drops_expired_fields_and_reports_ttls() {
    let min_expire = PAST_MS;
    let mut body = min_expire.to_le_bytes().to_vec();
    body.extend(s(&ttl_listpack(&TTL_FIELDS)));
    expect_ttl_hash(&only(&file(12, &key(25, b"h", &body))));
    // The release-candidate form has no min-expire prefix.
    expect_ttl_hash(&only(&file(12, &key(23, b"h", &s(&ttl_listpack(&TTL_FIELDS))))));
}

#[test]
fn hash_metadata_drops_expired_fields_with_relative_and_absolute_ttls() {
    let min_expire = PAST_MS as u64;
    let mut ga = min_expire.to_le_bytes().to_vec();
    let mut pre_ga = Vec::new();
    ga.extend(len(TTL_FIELDS.len()));
    pre_ga.extend(len(TTL_FIELDS.len()));
    for (f, v, ttl) in TTL_FIELDS {
        let relative = if ttl == 0 { 0 } else { ttl as u64 - min_expire + 1 };
        for (body, t) in [(&mut ga, relative), (&mut pre_ga, ttl as u64)] {
            // TTLs are lengths: 8-byte ones use the 0x81 form.
            if t < 64 {
                body.push(t as u8);
            } else {
                body.push(0x81);
                body.extend_from_slice(&t.to_be_bytes());
            }
            body.extend(s(f));
            body.extend(s(v));
        }
    }
    expect_ttl_hash(&only(&file(12, &key(24, b"h", &ga))));
    expect_ttl_hash(&only(&file(12, &key(22, b"h", &pre_ga))));
}

#[test]
fn a_hash_whose_fields_all_expired_is_skipped() {
    let fields: [(&[u8], &[u8], i64); 2] = [(b"a", b"1", PAST_MS), (b"b", b"2", PAST_MS + 1)];
    let mut body = key(23, b"gone", &s(&ttl_listpack(&fields)));
    body.extend(key(0, b"kept", &s(b"x")));
    let bytes = file(12, &body);
    let (events, reader) = read(&bytes).unwrap();
    let keys: Vec<_> = events.iter().filter_map(|e| if let Event::Entry(e) = e { Some(e.key.clone()) } else { None }).collect();
    assert_eq!(keys, vec![b"kept".to_vec()]);
    assert_eq!(reader.stats().empty_keys_skipped, 1);
}

#[test]
fn version_12_files_with_slot_info_and_functions_load() {
    let mut body = vec![0xfa];
    body.extend(s(b"redis-ver"));
    body.extend(s(b"7.4.0"));
    body.push(245);
    body.extend(s(b"#!lua name=x\n"));
    body.extend([0xfe, 0]);
    body.extend([244, 5, 1, 0]); // SLOT_INFO: slot 5, 1 key, 0 expires
    body.push(0xfc);
    body.extend_from_slice(&FUTURE_MS.to_le_bytes());
    body.extend(key(0, b"k", &s(b"v")));
    let bytes = file(12, &body);
    let (events, reader) = read(&bytes).unwrap();
    assert_eq!(reader.version(), 12);
    assert_eq!(reader.stats().slot_info_skipped, 1);
    assert!(events.contains(&Event::Function(b"#!lua name=x\n".to_vec())));
    let entry = events.iter().find_map(|e| if let Event::Entry(e) = e { Some(e) } else { None }).unwrap();
    assert_eq!(entry.expire_ms, Some(FUTURE_MS));
    assert_eq!(entry.value, common::string(b"v"));
}

// ---- Redis 2.x to 6.x encodings ----

#[test]
fn zipmap_hashes_from_redis_2_load() {
    let long = vec![b'L'; 300];
    let zm = zipmap(&[(b"f1", b"v1", 0), (b"f2", &long, 3), (b"", b"12", 1)]);
    // Version 4: no checksum.
    let entry = only(&file(4, &key(9, b"h", &s(&zm))));
    assert_eq!(entry.value, common::hash(&[("f1".as_bytes(), "v1".as_bytes()), (b"f2", &long), (b"", b"12")]));
    assert_eq!(entry.value.encoding_name(), "hashtable", "a 300-byte value is past hash-max-listpack-value");
    let dup = zipmap(&[(b"f", b"1", 0), (b"f", b"2", 0)]);
    assert!(read_err(&file(4, &key(9, b"h", &s(&dup)))).contains("duplicate"));
    let mut short = zm.clone();
    short.truncate(zm.len() - 5);
    short.push(0xff);
    assert!(read(&file(4, &key(9, b"h", &s(&short)))).is_err());
}

#[test]
fn ziplist_lists_hashes_and_zsets_with_every_entry_encoding_load() {
    let big = vec![b'x'; 300];
    let huge = vec![b'y'; 17000];
    let items = [
        Z::S(b"a"),
        Z::I(0),
        Z::I(12),
        Z::I(-100),
        Z::I(1000),
        Z::I(-5_000_000),
        Z::I(2_000_000_000),
        Z::I(-9_000_000_000),
        Z::S(&big),
        Z::S(b"after-big"),
        Z::S(&huge),
        Z::S(b""),
    ];
    let expected: Vec<Vec<u8>> = ["a", "0", "12", "-100", "1000", "-5000000", "2000000000", "-9000000000"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([big.clone(), b"after-big".to_vec(), huge.clone(), Vec::new()])
        .collect();
    let entry = only(&file(6, &key(10, b"l", &s(&ziplist(&items)))));
    assert_eq!(entry.value, common::list(&expected));

    let hash = only(&file(7, &key(13, b"h", &s(&ziplist(&[Z::S(b"f"), Z::I(7), Z::S(b"g"), Z::S(b"x")])))));
    assert_eq!(hash.value, common::hash(&[("f", "7"), ("g", "x")]));
    assert_eq!(hash.value.encoding_name(), "listpack");

    let zset = only(&file(7, &key(12, b"z", &s(&ziplist(&[Z::S(b"b"), Z::S(b"1.5"), Z::S(b"a"), Z::I(3), Z::S(b"c"), Z::S(b"-inf")])))));
    assert_eq!(zset.value, common::zset(&[("c", f64::NEG_INFINITY), ("b", 1.5), ("a", 3.0)]));
    assert_eq!(zset.value.encoding_name(), "listpack");
}

#[test]
fn quicklists_of_ziplists_from_redis_3_to_6_load() {
    let a = ziplist(&[Z::S(b"one"), Z::I(2)]);
    let b = ziplist(&[Z::S(b"three")]);
    let mut body = len(2);
    body.extend(s(&a));
    body.extend(s(&b));
    let entry = only(&file(9, &key(14, b"l", &body)));
    assert_eq!(entry.value, common::list(&["one", "2", "three"]));
}

#[test]
fn ziplists_with_bad_prevlen_count_or_tail_are_rejected() {
    let good = ziplist(&[Z::S(b"ab"), Z::S(b"cd")]);
    let mut bad_prev = good.clone();
    bad_prev[10 + 4] = 9; // the second entry's prevlen
    assert!(read_err(&file(9, &key(10, b"l", &s(&bad_prev)))).contains("previous entry"));
    let mut bad_count = good.clone();
    bad_count[8] = 3;
    assert!(read(&file(9, &key(10, b"l", &s(&bad_count)))).is_err());
    let mut bad_tail = good.clone();
    bad_tail[4] = 10;
    assert!(read_err(&file(9, &key(10, b"l", &s(&bad_tail)))).contains("tail"));
}

#[test]
fn old_zsets_with_string_scores_load_and_nan_is_refused() {
    let mut body = len(3);
    for (m, score) in [(&b"a"[..], &[3u8, b'1', b'.', b'5'][..]), (b"b", &[254]), (b"c", &[255])] {
        body.extend(s(m));
        body.extend_from_slice(score);
    }
    let entry = only(&file(6, &key(3, b"z", &body)));
    assert_eq!(entry.value, common::zset(&[("c", f64::NEG_INFINITY), ("a", 1.5), ("b", f64::INFINITY)]));
    let mut nan = len(1);
    nan.extend(s(b"a"));
    nan.push(253);
    assert!(read_err(&file(6, &key(3, b"z", &nan))).contains("NaN"));
    let mut nan2 = len(1);
    nan2.extend(s(b"a"));
    nan2.extend_from_slice(&f64::NAN.to_le_bytes());
    assert!(read_err(&file(9, &key(5, b"z", &nan2))).contains("NaN"));
}

#[test]
fn expiretime_in_seconds_becomes_milliseconds() {
    let mut body = vec![0xfd];
    body.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    body.extend(key(0, b"k", &s(b"v")));
    assert_eq!(only(&file(6, &body)).expire_ms, Some(2_000_000_000_000));
}

#[test]
fn intsets_load_as_intsets_within_the_limit_and_hashtables_past_it() {
    let intset = |width: u32, members: &[i64]| {
        let mut v = width.to_le_bytes().to_vec();
        v.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for m in members {
            v.extend_from_slice(&m.to_le_bytes()[..width as usize]);
        }
        v
    };
    let small = only(&file(9, &key(11, b"s", &s(&intset(2, &[-3, 1, 7])))));
    assert_eq!(small.value, common::set(&["-3", "1", "7"]));
    assert_eq!(small.value.encoding_name(), "intset");
    let many: Vec<i64> = (0..600).collect();
    let big = only(&file(9, &key(11, b"s", &s(&intset(4, &many)))));
    assert_eq!(big.value.encoding_name(), "hashtable");
    if let Value::Set(set) = &big.value {
        assert_eq!(set.len(), 600);
    }
    assert!(read(&file(9, &key(11, b"s", &s(&intset(2, &[5, 1]))))).is_err());
}

#[test]
fn a_handwritten_listpack_matches_the_builder_and_loads() {
    // total 12 bytes, 2 entries: "a" (0x81 'a', back-length 2) and 5 (0x05, back-length 1).
    let lp = [12, 0, 0, 0, 2, 0, 0x81, b'a', 2, 5, 1, 0xff];
    assert_eq!(listpack(&[b"a", b"5"]), lp);
    let entry = only(&file(10, &key(16, b"h", &s(&lp))));
    assert_eq!(entry.value, common::hash(&[("a", "5")]));
}

#[test]
fn duplicate_hash_fields_are_refused() {
    let err = read_err(&file(10, &key(16, b"h", &s(&listpack(&[b"a", b"1", b"a", b"2"])))));
    assert!(err.contains("duplicate"), "{err}");
    let mut body = len(2);
    for _ in 0..2 {
        body.extend(s(b"f"));
        body.extend(s(b"v"));
    }
    assert!(read_err(&file(10, &key(4, b"h", &body))).contains("duplicate"));
}

// ---- refused ----

#[test]
fn modules_and_unknown_records_are_clear_errors() {
    for (t, text) in [(6u8, "module values"), (7, "module values")] {
        let err = read_err(&file(10, &key(t, b"k", &[0, 0, 0])));
        assert!(err.contains(text), "type {t}: {err}");
        assert!(err.contains("at byte"), "{err}");
    }
    assert!(read_err(&file(10, &[247, 1, 2, 3])).contains("module aux"));
    assert!(read_err(&file(10, &[246, 1, 2, 3])).contains("release candidates"));
    assert!(read_err(&file(10, &[200])).contains("unknown record type 200"));
}

#[test]
fn a_wrong_checksum_is_detected_and_a_zero_one_is_skipped() {
    let mut bytes = file(10, &key(0, b"k", &s(b"v")));
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let err = read_err(&bytes);
    assert!(err.contains("checksum mismatch"), "{err}");
    bytes[n - 8..].copy_from_slice(&[0; 8]);
    assert_eq!(only(&bytes).value, common::string(b"v"));
}

#[test]
fn errors_name_the_offset_of_the_problem() {
    // The header is 9 bytes; the bad length encoding 0x82 is the key's length, at byte 10.
    let bytes = file(10, &[0, 0x82]);
    let err = read(&bytes).err().unwrap();
    assert_eq!(err.offset(), 10, "{err}");
    assert!(err.to_string().contains("at byte 10: unknown length encoding 0x82"), "{err}");
}

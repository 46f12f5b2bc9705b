//! Values and files written by this crate read back equal, with the encodings they had.

mod common;

use shoal_rdb::file::opcodes;
use shoal_rdb::{dump, restore, Chunk, EntryMeta, Event, Reader, ReaderOptions, Writer, WriterOptions};
use shoal_store::types::Limits;
use shoal_store::Value;

#[test]
fn every_value_restores_from_its_dump_equal_and_in_the_same_encoding() {
    for compress in [true, false] {
        for (name, value, encoding) in common::corpus() {
            assert_eq!(value.encoding_name(), encoding, "{name}: the fixture itself");
            let payload = dump(&value, compress);
            let back = restore(&payload, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, value, "{name}");
            assert_eq!(back.encoding_name(), encoding, "{name}");
            if encoding != "hashtable" {
                // Hash tables iterate in an order of their own; everything else is ordered.
                assert_eq!(dump(&back, compress), payload, "{name}: dump is deterministic");
            }
        }
    }
}

#[test]
fn compression_shrinks_compressible_values_only_when_asked() {
    let value = common::string("abc".repeat(1000).as_bytes());
    assert!(dump(&value, true).len() < 200);
    assert!(dump(&value, false).len() > 3000);
}

#[test]
fn restore_follows_the_callers_limits() {
    let value = common::list(&(0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    let payload = dump(&value, true);
    let tight =
        Limits { list_max_listpack_size: 10, set_max_intset_entries: 2, hash_max_listpack_entries: 1, zset_max_listpack_entries: 1, ..Limits::default() };
    assert_eq!(restore(&payload, &tight).unwrap().encoding_name(), "quicklist");
    let set = common::set(&["1", "2", "3"]);
    assert_eq!(restore(&dump(&set, true), &tight).unwrap().encoding_name(), "hashtable");
    let hash = common::hash(&[("a", "1"), ("b", "2")]);
    assert_eq!(restore(&dump(&hash, true), &tight).unwrap().encoding_name(), "hashtable");
    let zset = common::zset(&[("a", 1.0), ("b", 2.0)]);
    assert_eq!(restore(&dump(&zset, true), &tight).unwrap().encoding_name(), "skiplist");
}

#[test]
fn restore_errors_carry_redis_texts() {
    let payload = dump(&common::string(b"x"), true);
    let mut bad = payload.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(restore(&bad, &Limits::default()).unwrap_err().to_string(), "ERR DUMP payload version or checksum are wrong");
    assert_eq!(restore(&payload[..5], &Limits::default()).unwrap_err().to_string(), "ERR DUMP payload version or checksum are wrong");
    // A newer version (13), checksum fixed up: still refused.
    let mut newer = payload[..n - 10].to_vec();
    newer.extend_from_slice(&13u16.to_le_bytes());
    let crc = shoal_rdb::crc64::crc64(&newer);
    newer.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(restore(&newer, &Limits::default()).unwrap_err().to_string(), "ERR DUMP payload version or checksum are wrong");
    // Version 12 with a good checksum is accepted.
    let mut v12 = payload[..n - 10].to_vec();
    v12.extend_from_slice(&12u16.to_le_bytes());
    let crc = shoal_rdb::crc64::crc64(&v12);
    v12.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(restore(&v12, &Limits::default()).unwrap(), common::string(b"x"));
    // A stream cut short after its node count, with a good checksum, is bad data.
    let mut stream = vec![15u8, 0];
    stream.extend_from_slice(&10u16.to_le_bytes());
    let crc = shoal_rdb::crc64::crc64(&stream);
    stream.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(restore(&stream, &Limits::default()).unwrap_err().to_string(), "ERR Bad data format");
}

/// Writes the corpus over two dbs, db 0 in two separate chunks (SELECTDB 0 twice).
/// A key as expected back: (db, key, value, expire_ms).
type Expected = (u64, Vec<u8>, Value, Option<i64>);

fn sample_file(options: &WriterOptions) -> (Vec<u8>, Vec<Expected>) {
    let mut expected = Vec::new();
    let mut w = Writer::new(Vec::new(), options).unwrap();
    w.function(b"#!lua name=mylib\nredis.register_function('f', function() return 1 end)").unwrap();
    w.select_db(0).unwrap();
    w.resize_db(10, 1).unwrap();
    let corpus = common::corpus();
    let mut chunk_a = Chunk::new(options.compress);
    let mut chunk_b = Chunk::new(options.compress);
    chunk_b.select_db(3);
    for (i, (name, value, _)) in corpus.into_iter().enumerate() {
        let key = format!("key:{name}").into_bytes();
        let expire = (i % 4 == 0).then_some(4_000_000_000_000 + i as i64);
        let meta = EntryMeta { expire_ms: expire, lru_idle_s: (i % 3 == 0).then_some(i as u64), lfu_freq: None };
        match i % 3 {
            0 => {
                w.entry(&key, &value, &meta).unwrap();
                expected.push((0, key, value, expire));
            }
            1 => {
                if chunk_a.bytes().is_empty() {
                    chunk_a.select_db(0);
                }
                chunk_a.entry(&key, &value, &meta);
                expected.push((0, key, value, expire));
            }
            _ => {
                chunk_b.entry(&key, &value, &EntryMeta { lfu_freq: Some(i as u8), ..meta });
                expected.push((3, key, value, expire));
            }
        }
    }
    w.append_chunk(&chunk_a.finish()).unwrap();
    let b = chunk_b.finish();
    w.append_from(&b.bytes[..], b.bytes.len() as u64, b.crc).unwrap();
    (w.finish().unwrap(), expected)
}

fn read_all(bytes: &[u8]) -> shoal_rdb::Result<Vec<Event>> {
    Reader::new(bytes, ReaderOptions::default())?.collect()
}

#[test]
fn a_written_file_reads_back_every_key_with_its_db_and_ttl() {
    for compress in [true, false] {
        let options = WriterOptions { compress, ctime_s: 1_700_000_000, extra_aux: vec![(b"shoal".to_vec(), b"yes".to_vec())], ..WriterOptions::default() };
        let (bytes, expected) = sample_file(&options);
        assert_eq!(&bytes[..9], b"REDIS0010");
        let events = read_all(&bytes).unwrap();
        let entries: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Entry(e) => Some((e.db, e.key.clone(), e.value.clone(), e.expire_ms)),
                _ => None,
            })
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_by(|a, b| a.1.cmp(&b.1));
        let mut entries_sorted = entries.clone();
        entries_sorted.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(entries_sorted, expected_sorted);
        let aux: Vec<_> = events.iter().filter_map(|e| if let Event::Aux { key, value } = e { Some((key.clone(), value.clone())) } else { None }).collect();
        assert!(aux.contains(&(b"redis-ver".to_vec(), b"7.0.15".to_vec())));
        assert!(aux.contains(&(b"ctime".to_vec(), b"1700000000".to_vec())));
        assert!(aux.contains(&(b"shoal".to_vec(), b"yes".to_vec())));
        assert!(events.iter().any(|e| matches!(e, Event::Function(src) if src.starts_with(b"#!lua"))));
        assert_eq!(events.iter().filter(|e| matches!(e, Event::SelectDb(0))).count(), 2);
        assert!(events.iter().any(|e| matches!(e, Event::Entry(en) if en.freq.is_some())));
        assert!(events.iter().any(|e| matches!(e, Event::Entry(en) if en.idle.is_some())));
    }
}

#[test]
fn the_checksum_covers_chunks_appended_from_elsewhere() {
    let (bytes, _) = sample_file(&WriterOptions::default());
    let n = bytes.len();
    let stored = u64::from_le_bytes(bytes[n - 8..].try_into().unwrap());
    assert_eq!(stored, shoal_rdb::crc64::crc64(&bytes[..n - 8]));
    assert_eq!(bytes[n - 9], opcodes::EOF);
}

#[test]
fn checksum_off_writes_zeros_and_reads_back() {
    let (bytes, expected) = sample_file(&WriterOptions { checksum: false, ..WriterOptions::default() });
    assert_eq!(&bytes[bytes.len() - 8..], &[0; 8]);
    let events = read_all(&bytes).unwrap();
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Entry(_))).count(), expected.len());
}

/// A file small enough to truncate and flip at every byte.
fn small_file() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &WriterOptions::default()).unwrap();
    w.function(b"#!lua name=l\n").unwrap();
    w.select_db(0).unwrap();
    for (name, value, _) in common::corpus().into_iter().filter(|(n, _, _)| n.ends_with("small") || n.starts_with("set-intset") || n == &"str-int") {
        w.entry(name.as_bytes(), &value, &EntryMeta { expire_ms: Some(1), ..EntryMeta::default() }).unwrap();
    }
    w.select_db(1).unwrap();
    w.entry(b"k", &common::string("abc".repeat(20).as_bytes()), &EntryMeta { lfu_freq: Some(3), ..EntryMeta::default() }).unwrap();
    w.finish().unwrap()
}

#[test]
fn every_truncation_of_a_file_is_an_error() {
    let bytes = small_file();
    for len in 0..bytes.len() {
        assert!(read_all(&bytes[..len]).is_err(), "truncated at {len} of {} read without error", bytes.len());
    }
}

#[test]
fn every_bit_flip_in_a_file_is_an_error_never_a_panic() {
    let bytes = small_file();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            let result = std::panic::catch_unwind(|| read_all(&bad));
            let result = result.unwrap_or_else(|_| panic!("panic on flip of bit {bit} at byte {i}"));
            assert!(result.is_err(), "flip of bit {bit} at byte {i} read without error");
        }
    }
}

#[test]
fn corrupt_value_bodies_with_valid_checksums_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let corpus = common::corpus();
    for (name, value, _) in &corpus {
        let payload = dump(value, true);
        let body_len = payload.len() - 10;
        let iterations = if body_len > 5000 { 50 } else { 400 };
        for _ in 0..iterations {
            let mut body = payload[..body_len].to_vec();
            match rng.random_range(0..3) {
                0 => {
                    let at = rng.random_range(0..body.len());
                    body[at] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    let at = rng.random_range(0..body.len());
                    body[at] = rng.random();
                }
                _ => body.truncate(rng.random_range(0..body.len())),
            }
            body.extend_from_slice(&10u16.to_le_bytes());
            let crc = shoal_rdb::crc64::crc64(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            let outcome = std::panic::catch_unwind(|| restore(&body, &Limits::default()));
            assert!(outcome.is_ok(), "{name}: panic on a corrupt body");
        }
    }
}

#[test]
fn newer_versions_and_bad_magic_are_refused_with_offsets() {
    let err = read_all(b"REDIS0013\xff").unwrap_err();
    assert!(err.to_string().contains("version 13"), "{err}");
    let err = read_all(b"RODIS0010\xff").unwrap_err();
    assert_eq!(err.offset(), 0);
    let err = read_all(b"REDIS00x0\xff").unwrap_err();
    assert!(err.to_string().contains("digits"), "{err}");
}

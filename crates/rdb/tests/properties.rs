//! Property tests: random values of every type survive DUMP and files, a reader fed one byte
//! at a time sees the same file, and the blob parsers never panic on arbitrary bytes.

mod common;

use std::io::Read;

use proptest::prelude::*;
use shoal_rdb::blobs;
use shoal_rdb::{dump, restore, EntryMeta, Event, Reader, ReaderOptions, Writer, WriterOptions};
use shoal_store::types::Limits;
use shoal_store::Value;

/// Short byte strings biased towards integers, so integer encodings come up often.
fn element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        (-200i64..200).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..80),
        "[a-c]{0,3}".prop_map(String::into_bytes),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        element().prop_map(|e| common::string(&e)),
        proptest::collection::vec(element(), 1..300).prop_map(|items| common::list(&items)),
        proptest::collection::btree_map(element(), element(), 1..200).prop_map(|m| common::hash(&m.into_iter().collect::<Vec<_>>())),
        // A hash some of whose fields have TTLs (Redis 7.4's HASH_METADATA).
        proptest::collection::btree_map(element(), (element(), proptest::option::of(1u64..(1 << 46))), 1..200).prop_map(|m| {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = m.iter().map(|(f, (v, _))| (f.clone(), v.clone())).collect();
            let mut value = common::hash(&pairs);
            if let Value::Hash(hash) = &mut value {
                for (field, (_, ttl)) in &m {
                    if let Some(at) = ttl {
                        hash.set_field_ttl(field, *at);
                    }
                }
            }
            value
        }),
        proptest::collection::btree_set(element(), 1..300).prop_map(|s| common::set(&s.into_iter().collect::<Vec<_>>())),
        proptest::collection::btree_map(element(), prop_oneof![any::<f64>().prop_filter("not NaN", |f| !f.is_nan()), (-5i32..5).prop_map(f64::from)], 1..200)
            .prop_map(|m| common::zset(&m.into_iter().map(|(k, v)| (k, if v == 0.0 { 0.0 } else { v })).collect::<Vec<_>>())),
    ]
}

/// A reader that hands out one byte per call.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[0];
        self.0 = &self.0[1..];
        Ok(1)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_values_round_trip_through_dump(v in value(), compress in any::<bool>()) {
        let back = restore(&dump(&v, compress), &Limits::default()).unwrap();
        prop_assert_eq!(back.encoding_name(), v.encoding_name());
        prop_assert_eq!(back, v);
    }

    #[test]
    fn random_values_round_trip_through_a_trickling_file(values in proptest::collection::vec(value(), 1..6)) {
        let mut w = Writer::new(Vec::new(), &WriterOptions::default()).unwrap();
        w.select_db(0).unwrap();
        for (i, v) in values.iter().enumerate() {
            w.entry(format!("k{i}").as_bytes(), v, &EntryMeta::default()).unwrap();
        }
        let bytes = w.finish().unwrap();
        let read: Vec<Value> = Reader::new(Trickle(&bytes), ReaderOptions::default())
            .unwrap()
            .map(|e| e.unwrap())
            .filter_map(|e| if let Event::Entry(e) = e { Some(e.value) } else { None })
            .collect();
        prop_assert_eq!(read, values);
    }

    #[test]
    fn blob_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = blobs::parse_listpack(&bytes);
        let _ = blobs::parse_ziplist(&bytes);
        let _ = blobs::parse_zipmap(&bytes);
        let _ = blobs::parse_intset(&bytes);
    }

    #[test]
    fn blob_parsers_never_panic_on_consistent_headers(mut bytes in proptest::collection::vec(any::<u8>(), 11..200)) {
        // Make the size fields and end markers right so parsing gets past the headers.
        let n = bytes.len();
        bytes[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        bytes[n - 1] = 0xff;
        let _ = blobs::parse_listpack(&bytes);
        let _ = blobs::parse_ziplist(&bytes);
    }
}

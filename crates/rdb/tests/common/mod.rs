//! Values of every type and encoding, shared by the integration tests.
#![allow(dead_code)]

use shoal_store::types::{Hash, Limits, List, Set, ZSet};
use shoal_store::{Str, Value};

pub fn string(bytes: &[u8]) -> Value {
    Value::Str(Str::from_bytes(bytes))
}

pub fn list<E: AsRef<[u8]>>(items: &[E]) -> Value {
    let mut l = List::new();
    l.push(items, false, Limits::default().list_max_listpack_size);
    Value::List(Box::new(l))
}

pub fn hash<F: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(F, V)]) -> Value {
    let mut h = Hash::new();
    for (f, v) in pairs {
        h.set(f.as_ref(), v.as_ref(), &Limits::default());
    }
    Value::Hash(h)
}

pub fn set<E: AsRef<[u8]>>(members: &[E]) -> Value {
    let limits = Limits::default();
    let mut s = Set::create(members[0].as_ref(), members.len(), &limits);
    for m in members {
        s.insert(m.as_ref(), &limits);
    }
    Value::Set(s)
}

pub fn zset<M: AsRef<[u8]>>(items: &[(M, f64)]) -> Value {
    let limits = Limits::default();
    let mut z = ZSet::new();
    for (m, score) in items {
        z.insert(m.as_ref(), *score, &limits);
    }
    Value::ZSet(z)
}

/// Named values covering every type and encoding, with the encoding each must have.
pub fn corpus() -> Vec<(&'static str, Value, &'static str)> {
    let big_list: Vec<String> = (0..3000).map(|i| if i % 3 == 0 { i.to_string() } else { format!("element-{i}") }).collect();
    let fat_list: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i as u8; 10_000]).collect();
    let big_hash: Vec<(String, String)> = (0..600).map(|i| (format!("field:{i}"), i.to_string())).collect();
    let long_value_hash = vec![("f".to_string(), "v".repeat(100)), ("n".to_string(), "12".to_string())];
    let big_intset: Vec<String> = (0..600).map(|i| (i * 7 - 2000).to_string()).collect();
    let big_set: Vec<String> = (0..300).map(|i| format!("member-{i}")).collect();
    let big_zset: Vec<(String, f64)> = (0..300).map(|i| (format!("m{i}"), i as f64 / 3.0)).collect();
    vec![
        ("str-empty", string(b""), "embstr"),
        ("str-int", string(b"12345"), "int"),
        ("str-neg", string(b"-1"), "int"),
        ("str-zero", string(b"0"), "int"),
        ("str-leading-zero", string(b"007"), "embstr"),
        ("str-i64-max", string(b"9223372036854775807"), "int"),
        ("str-i64-min", string(b"-9223372036854775808"), "int"),
        ("str-past-i64", string(b"9223372036854775808"), "embstr"),
        ("str-emb", string(b"hello world"), "embstr"),
        ("str-raw-compressible", string("abc".repeat(100).as_bytes()), "raw"),
        ("str-raw-random", string(&(0..500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect::<Vec<_>>()), "raw"),
        ("str-binary", string(b"\x00\xff\r\n\x00"), "embstr"),
        ("list-small", list(&["a", "1", "-5", "", "b"]), "listpack"),
        ("list-big", list(&big_list), "quicklist"),
        ("list-fat", list(&fat_list), "quicklist"),
        ("hash-small", hash(&[("a", "1"), ("b", "two"), ("", "")]), "listpack"),
        ("hash-big", hash(&big_hash), "hashtable"),
        ("hash-long-value", hash(&long_value_hash), "hashtable"),
        ("set-intset", set(&["1", "-3", "70000", "9223372036854775807"]), "intset"),
        ("set-intset-16", set(&["1", "2", "3"]), "intset"),
        ("set-listpack", set(&["a", "b", "1"]), "listpack"),
        ("set-big-ints", set(&big_intset), "hashtable"),
        ("set-big", set(&big_set), "hashtable"),
        (
            "zset-small",
            zset(&[("a", 1.0), ("b", 2.5), ("c", f64::INFINITY), ("d", f64::NEG_INFINITY), ("e", -0.125), ("f", 1e300), ("g", 1.0 / 3.0)]),
            "listpack",
        ),
        ("zset-tiny", zset(&[("a", 1.0), ("b", 2.5)]), "listpack"),
        ("hash-tiny", hash(&[("f", "-7")]), "listpack"),
        ("zset-big", zset(&big_zset), "skiplist"),
        ("zset-long-member", zset(&[("x".repeat(100), 1.0), ("y".to_string(), f64::INFINITY)]), "skiplist"),
    ]
}

//! Values: reading every value type of RDB versions 1 to 12 into Shoal's [`Value`], and
//! writing Shoal's values as RDB version 10 (Redis 7.0) writes them.
//!
//! Loaded values are built through `shoal-store`'s public API with the caller's [`Limits`],
//! so their encodings follow the thresholds as Redis's would after a load (a small list is a
//! listpack, a small set of integers an intset...). Duplicate fields or members, NaN scores
//! and malformed blobs are errors. An empty collection (or a hash whose every field has an
//! expired TTL) loads as `None`: Redis skips such keys. Streams are the exception: an empty
//! stream is a value (the `stream` module reads their types 15, 19 and 21).
//!
//! Written types: STRING; LIST_QUICKLIST_2 (listpack nodes of at most 8 KiB, Redis's default
//! `list-max-listpack-size -2`, or one PLAIN node for an element of 1 GiB or more);
//! HASH_LISTPACK or HASH; SET_INTSET or SET; ZSET_LISTPACK or ZSET_2; STREAM_LISTPACKS_2.
//!
//! Hashes with field TTLs (Redis 7.4: types 22 to 25): fields whose TTL is already past
//! (`ttl < now_ms`, Redis's rule) are dropped and counted in [`FieldTtls`]; the others load
//! with their TTL. A hash with field TTLs is written as type 24 (HASH_METADATA), which
//! Redis 7.4 and later read (and 7.0 does not: only such hashes use it). In the listpack
//! forms (23, 25) each field is a triple (field, value, absolute TTL in ms, 0 for none); in
//! the metadata forms (22, 24) each field is `ttl (length-encoded), field, value`, the TTL
//! absolute in 22 and in 24 relative to an 8-byte `min_expire` prefix (`ttl + min - 1`,
//! 0 for none). Types 24 and 25 start with that 8-byte little-endian `min_expire`.

use std::collections::HashSet;
use std::io::Read;

use shoal_store::listpack::Listpack;
use shoal_store::types::set::{Enc as SetEnc, Intset, Member};
use shoal_store::types::{Hash, Limits, List, Set, ZSet};
use shoal_store::{Str, Value};

use crate::blobs::{self, Element, ListpackBuilder};
use crate::codec::{self, read_len, read_string, write_blob, write_len, write_string};
use crate::error::{Error, Result};
use crate::input::Input;

/// The RDB value type bytes.
pub mod types {
    /// A string (plain, integer or LZF encoded).
    pub const STRING: u8 = 0;
    /// A list as a sequence of strings (Redis before 3.2).
    pub const LIST: u8 = 1;
    /// A set as a sequence of strings.
    pub const SET: u8 = 2;
    /// A sorted set with string-encoded scores (before RDB 8).
    pub const ZSET: u8 = 3;
    /// A hash as field/value string pairs.
    pub const HASH: u8 = 4;
    /// A sorted set with binary double scores.
    pub const ZSET_2: u8 = 5;
    /// A module value, old form (refused).
    pub const MODULE_PRE_GA: u8 = 6;
    /// A module value (refused).
    pub const MODULE_2: u8 = 7;
    /// A hash as a zipmap (Redis 2.x).
    pub const HASH_ZIPMAP: u8 = 9;
    /// A list as one ziplist (Redis 2.6 to 3.0).
    pub const LIST_ZIPLIST: u8 = 10;
    /// A set of integers as an intset.
    pub const SET_INTSET: u8 = 11;
    /// A sorted set as a ziplist of member/score pairs.
    pub const ZSET_ZIPLIST: u8 = 12;
    /// A hash as a ziplist of field/value pairs.
    pub const HASH_ZIPLIST: u8 = 13;
    /// A list as ziplist nodes (Redis 3.2 to 6.2).
    pub const LIST_QUICKLIST: u8 = 14;
    /// A stream (Redis 5 and 6).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// A hash as a listpack of field/value pairs.
    pub const HASH_LISTPACK: u8 = 16;
    /// A sorted set as a listpack of member/score pairs.
    pub const ZSET_LISTPACK: u8 = 17;
    /// A list as listpack or plain nodes (Redis 7).
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// A stream, Redis 7.0 form (with first id, greatest deleted id, entries added, group read
    /// counters).
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// A set as a listpack (Redis 7.2).
    pub const SET_LISTPACK: u8 = 20;
    /// A stream, Redis 7.2 form (with consumers' active times).
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// A hash with absolute field TTLs (Redis 7.4 release candidates).
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    /// A listpack hash with field TTLs, without the min-expire prefix (7.4 release candidates).
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    /// A hash with field TTLs relative to a min-expire prefix (Redis 7.4).
    pub const HASH_METADATA: u8 = 24;
    /// A listpack hash with field TTLs after a min-expire prefix (Redis 7.4).
    pub const HASH_LISTPACK_EX: u8 = 25;

    /// Whether `t` is a value type of RDB 12 (Redis's `rdbIsObjectType`).
    pub fn is_value_type(t: u8) -> bool {
        t <= 7 || (9..=25).contains(&t)
    }
}

/// What happened to hash field TTLs while loading one value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldTtls {
    /// Fields dropped because their TTL had passed.
    pub expired_dropped: u64,
    /// Fields loaded with their TTL.
    pub live: u64,
}

impl FieldTtls {
    /// Whether any field had a TTL.
    pub fn any(&self) -> bool {
        self.expired_dropped + self.live > 0
    }
}

/// A loaded value.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The value; `None` when it was empty (Redis skips such keys).
    pub value: Option<Value>,
    /// What happened to hash field TTLs.
    pub field_ttls: FieldTtls,
}

/// Quicklist node containers.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;
/// Redis's default node size for `list-max-listpack-size -2`.
const NODE_BYTES_MAX: usize = 8192;
/// Elements this long go in their own PLAIN node (Redis's `packed_threshold`).
const PLAIN_ELEMENT_MIN: usize = 1 << 30;
/// How many list elements are pushed into a [`List`] at once.
const LIST_BATCH: usize = 1024;

fn blob_error(offset: u64, what: &str, message: String) -> Error {
    Error::Corrupt { offset, what: format!("{what}: {message}") }
}

/// Reads a value of type `type_byte` (already consumed).
pub(crate) fn read_value<R: Read>(input: &mut Input<R>, type_byte: u8, limits: &Limits, now_ms: i64) -> Result<Loaded> {
    let mut field_ttls = FieldTtls::default();
    let start = input.offset();
    let value = match type_byte {
        types::STRING => Some(Value::Str(Str::from_bytes(&read_string(input)?))),
        types::LIST => {
            let len = read_len(input)?;
            let mut list = ListLoader::new(limits);
            for _ in 0..len {
                list.push(read_string(input)?);
            }
            list.finish()
        }
        types::LIST_ZIPLIST => {
            let blob = read_string(input)?;
            let elements = blobs::parse_ziplist(&blob).map_err(|e| blob_error(start, "list ziplist", e))?;
            let mut list = ListLoader::new(limits);
            elements.iter().for_each(|e| list.push(e.to_vec()));
            list.finish()
        }
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let nodes = read_len(input)?;
            let mut list = ListLoader::new(limits);
            for _ in 0..nodes {
                let container = if type_byte == types::LIST_QUICKLIST_2 { read_len(input)? } else { CONTAINER_PACKED };
                let at = input.offset();
                let blob = read_string(input)?;
                if blob.is_empty() {
                    return Err(blob_error(at, "quicklist", "empty node".into()));
                }
                match container {
                    CONTAINER_PLAIN => list.push(blob),
                    CONTAINER_PACKED => {
                        let elements = if type_byte == types::LIST_QUICKLIST_2 { blobs::parse_listpack(&blob) } else { blobs::parse_ziplist(&blob) }
                            .map_err(|e| blob_error(at, "quicklist node", e))?;
                        elements.iter().for_each(|e| list.push(e.to_vec()));
                    }
                    other => return Err(blob_error(at, "quicklist", format!("unknown container {other}"))),
                }
            }
            list.finish()
        }
        types::SET => {
            let len = read_len(input)?;
            let mut set: Option<Set> = None;
            for _ in 0..len {
                let at = input.offset();
                let member = read_string(input)?;
                let set = set.get_or_insert_with(|| Set::create(&member, len.min(usize::MAX as u64) as usize, limits));
                if !set.insert(&member, limits) {
                    return Err(blob_error(at, "set", "duplicate member".into()));
                }
            }
            set.map(Value::Set)
        }
        types::SET_INTSET => {
            let blob = read_string(input)?;
            let members = blobs::parse_intset(&blob).map_err(|e| blob_error(start, "intset", e))?;
            let set = if members.len() as u64 <= limits.set_max_intset_entries {
                let mut intset = Intset::default();
                members.iter().for_each(|&v| {
                    intset.insert(v);
                });
                Set::intset(intset)
            } else {
                let mut set = Set::create(b"0", members.len(), limits);
                set.convert_to_hashtable();
                members.iter().for_each(|&v| {
                    set.insert_member(Member::Int(v), limits);
                });
                set
            };
            Some(Value::Set(set))
        }
        types::SET_LISTPACK => {
            let blob = read_string(input)?;
            let elements = blobs::parse_listpack(&blob).map_err(|e| blob_error(start, "set listpack", e))?;
            let members: Vec<Vec<u8>> = elements.iter().map(Element::to_vec).collect();
            let mut seen = HashSet::with_capacity(members.len());
            if !members.iter().all(|m| seen.insert(m.as_slice())) {
                return Err(blob_error(start, "set listpack", "duplicate member".into()));
            }
            if members.is_empty() {
                None
            } else if members.len() as u64 <= limits.set_max_listpack_entries {
                let mut lp = Listpack::new();
                members.iter().for_each(|m| lp.push_back(m));
                Some(Value::Set(Set::listpack(lp)))
            } else {
                let mut set = Set::create(b"", members.len(), limits);
                set.convert_to_hashtable();
                members.iter().for_each(|m| {
                    set.insert(m, limits);
                });
                Some(Value::Set(set))
            }
        }
        types::ZSET | types::ZSET_2 => {
            let len = read_len(input)?;
            let mut items = Vec::with_capacity(len.min(4096) as usize);
            for _ in 0..len {
                let member = read_string(input)?;
                let score = if type_byte == types::ZSET_2 { codec::read_binary_double(input)? } else { codec::read_string_double(input)? };
                items.push((member, score));
            }
            build_zset(items, limits).map_err(|e| blob_error(start, "sorted set", e))?
        }
        types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
            let blob = read_string(input)?;
            let elements = if type_byte == types::ZSET_LISTPACK { blobs::parse_listpack(&blob) } else { blobs::parse_ziplist(&blob) }
                .map_err(|e| blob_error(start, "sorted set blob", e))?;
            if elements.len() % 2 != 0 {
                return Err(blob_error(start, "sorted set blob", "odd number of entries".into()));
            }
            let mut items = Vec::with_capacity(elements.len() / 2);
            for pair in elements.chunks_exact(2) {
                let score = match pair[1] {
                    Element::Int(n) => n as f64,
                    Element::Bytes(b) => codec::parse_double(b).ok_or_else(|| blob_error(start, "sorted set blob", "bad score".into()))?,
                };
                items.push((pair[0].to_vec(), score));
            }
            build_zset(items, limits).map_err(|e| blob_error(start, "sorted set", e))?
        }
        types::HASH => {
            let len = read_len(input)?;
            let mut hash = HashLoader::with_len(len, limits);
            for _ in 0..len {
                let at = input.offset();
                let field = read_string(input)?;
                let value = read_string(input)?;
                hash.set(&field, &value, limits).map_err(|e| blob_error(at, "hash", e))?;
            }
            hash.finish()
        }
        types::HASH_ZIPMAP => {
            let blob = read_string(input)?;
            let pairs = blobs::parse_zipmap(&blob).map_err(|e| blob_error(start, "hash zipmap", e))?;
            let mut hash = HashLoader::default();
            for (field, value) in pairs {
                hash.set(field, value, limits).map_err(|e| blob_error(start, "hash zipmap", e))?;
            }
            hash.finish()
        }
        types::HASH_ZIPLIST | types::HASH_LISTPACK | types::HASH_LISTPACK_EX_PRE_GA | types::HASH_LISTPACK_EX => {
            if type_byte == types::HASH_LISTPACK_EX {
                input.read_array::<8>("the hash minimum field expiry")?;
            }
            let at = input.offset();
            let blob = read_string(input)?;
            let elements = if type_byte == types::HASH_ZIPLIST { blobs::parse_ziplist(&blob) } else { blobs::parse_listpack(&blob) }
                .map_err(|e| blob_error(at, "hash blob", e))?;
            let tuple = if matches!(type_byte, types::HASH_ZIPLIST | types::HASH_LISTPACK) { 2 } else { 3 };
            if elements.len() % tuple != 0 {
                return Err(blob_error(at, "hash blob", format!("{} entries is not a multiple of {tuple}", elements.len())));
            }
            // The common case, a small hash that stays a listpack, is built in one pass.
            let small = if tuple == 2 { small_listpack_hash(&elements, limits).map_err(|e| blob_error(at, "hash blob", e))? } else { None };
            if let Some(value) = small {
                value
            } else {
                let mut hash = HashLoader::default();
                for t in elements.chunks_exact(tuple) {
                    if tuple == 3 {
                        let ttl = match t[2] {
                            Element::Int(n) => n,
                            Element::Bytes(_) => return Err(blob_error(at, "hash blob", "field TTL is not an integer".into())),
                        };
                        if ttl != 0 && ttl < now_ms {
                            field_ttls.expired_dropped += 1;
                            hash.seen(&t[0].to_vec()).map_err(|e| blob_error(at, "hash blob", e))?;
                            continue;
                        }
                        if ttl != 0 {
                            field_ttls.live += 1;
                        }
                    }
                    let field = t[0].to_vec();
                    hash.set(&field, &t[1].to_vec(), limits).map_err(|e| blob_error(at, "hash blob", e))?;
                    if tuple == 3 {
                        if let Element::Int(ttl @ 1..) = t[2] {
                            hash.hash.set_field_ttl(&field, ttl as u64);
                        }
                    }
                }
                hash.finish()
            }
        }
        types::HASH_METADATA_PRE_GA | types::HASH_METADATA => {
            let min_expire = if type_byte == types::HASH_METADATA { u64::from_le_bytes(input.read_array("the hash minimum field expiry")?) } else { 0 };
            let len = read_len(input)?;
            let mut hash = HashLoader::with_len(len, limits);
            for _ in 0..len {
                let at = input.offset();
                let ttl = read_len(input)?;
                let expire_at = if type_byte == types::HASH_METADATA && ttl != 0 { ttl.wrapping_add(min_expire).wrapping_sub(1) } else { ttl };
                if expire_at > 0x0000_ffff_ffff_ffff {
                    return Err(blob_error(at, "hash", format!("invalid field expiry {expire_at}")));
                }
                let field = read_string(input)?;
                let value = read_string(input)?;
                if expire_at != 0 && (expire_at as i64) < now_ms {
                    field_ttls.expired_dropped += 1;
                    hash.seen(&field).map_err(|e| blob_error(at, "hash", e))?;
                    continue;
                }
                hash.set(&field, &value, limits).map_err(|e| blob_error(at, "hash", e))?;
                if expire_at != 0 {
                    field_ttls.live += 1;
                    hash.hash.set_field_ttl(&field, expire_at);
                }
            }
            hash.finish()
        }
        // Streams may be empty (XGROUP CREATE MKSTREAM, XDEL of every entry): never `None`.
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            Some(Value::Stream(Box::new(crate::stream::read_stream(input, type_byte)?)))
        }
        types::MODULE_PRE_GA | types::MODULE_2 => {
            return Err(Error::Unsupported { offset: start, what: format!("module values are not supported (RDB type {type_byte})") })
        }
        other => return Err(Error::Unsupported { offset: start, what: format!("unknown value type {other}") }),
    };
    Ok(Loaded { value, field_ttls })
}

/// Builds a list in batches, so its encoding follows `list-max-listpack-size`.
struct ListLoader<'a> {
    list: List,
    batch: Vec<Vec<u8>>,
    limits: &'a Limits,
}

impl<'a> ListLoader<'a> {
    fn new(limits: &'a Limits) -> Self {
        ListLoader { list: List::new(), batch: Vec::new(), limits }
    }

    fn push(&mut self, element: Vec<u8>) {
        self.batch.push(element);
        if self.batch.len() >= LIST_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.list.push(&self.batch, false, self.limits.list_max_listpack_size);
        self.batch.clear();
    }

    fn finish(mut self) -> Option<Value> {
        self.flush();
        (!self.list.is_empty()).then(|| Value::List(Box::new(self.list)))
    }
}

/// Builds a hash, refusing duplicate fields (including fields dropped for their TTL).
#[derive(Default)]
struct HashLoader {
    hash: Hash,
    dropped: HashSet<Vec<u8>>,
}

impl HashLoader {
    /// A loader for a hash of `len` fields: a hashtable from the start when that is more
    /// than a listpack may hold.
    fn with_len(len: u64, limits: &Limits) -> HashLoader {
        if len > limits.hash_max_listpack_entries {
            HashLoader { hash: Hash::table_with_capacity(len.min(1 << 20) as usize), dropped: HashSet::new() }
        } else {
            HashLoader::default()
        }
    }

    fn set(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> Result<(), String> {
        if self.dropped.contains(field) || !self.hash.set(field, value, limits) {
            return Err("duplicate field".into());
        }
        Ok(())
    }

    /// Records a field that is dropped, so a duplicate of it is still caught.
    fn seen(&mut self, field: &[u8]) -> Result<(), String> {
        if self.hash.contains(field) || !self.dropped.insert(field.to_vec()) {
            return Err("duplicate field".into());
        }
        Ok(())
    }

    fn finish(self) -> Option<Value> {
        (!self.hash.is_empty()).then(|| Value::Hash(self.hash))
    }
}

/// A hash from a listpack or ziplist blob's field/value `elements` when it stays a listpack
/// (within both `hash-max-listpack-*` limits): built in one pass, its fields checked distinct
/// by sorting rather than by a search per field. `Ok(None)` when it does not fit.
fn small_listpack_hash(elements: &[Element<'_>], limits: &Limits) -> Result<Option<Option<Value>>, String> {
    let bytes: Vec<std::borrow::Cow<[u8]>> = elements.iter().map(Element::as_bytes).collect();
    let pairs = bytes.len() / 2;
    if pairs as u64 > limits.hash_max_listpack_entries || bytes.iter().any(|b| b.len() as u64 > limits.hash_max_listpack_value) {
        return Ok(None);
    }
    let mut fields: Vec<&[u8]> = bytes.iter().step_by(2).map(|f| f.as_ref()).collect();
    fields.sort_unstable();
    if fields.windows(2).any(|w| w[0] == w[1]) {
        return Err("duplicate field".into());
    }
    let hash = Hash::listpack_from_distinct(bytes.chunks_exact(2).map(|p| (p[0].as_ref(), p[1].as_ref())));
    Ok(Some((pairs > 0).then(|| Value::Hash(hash))))
}

/// Builds a sorted set from (member, score) pairs in any order, in the encoding Redis gives
/// it after a load: a listpack when within both `zset-max-listpack-*` limits.
fn build_zset(mut items: Vec<(Vec<u8>, f64)>, limits: &Limits) -> Result<Option<Value>, String> {
    if items.iter().any(|(_, score)| score.is_nan()) {
        return Err("NaN score".into());
    }
    items.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("no NaN").then_with(|| a.0.cmp(&b.0)));
    {
        let mut seen = HashSet::with_capacity(items.len());
        if !items.iter().all(|(m, _)| seen.insert(m.as_slice())) {
            return Err("duplicate member".into());
        }
    }
    if items.is_empty() {
        return Ok(None);
    }
    let len = items.len();
    let member_len_max = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    Ok(Some(Value::ZSet(ZSet::from_sorted(items, len, member_len_max, limits))))
}

/// The RDB type byte [`write_value`] uses for `value`.
pub fn value_type(value: &Value) -> u8 {
    match value {
        Value::Str(_) => types::STRING,
        Value::List(_) => types::LIST_QUICKLIST_2,
        Value::Hash(h) if h.has_field_ttls() => types::HASH_METADATA,
        Value::Hash(h) if h.is_listpack() => types::HASH_LISTPACK,
        Value::Hash(_) => types::HASH,
        Value::Set(s) if matches!(s.enc(), SetEnc::Intset(_)) => types::SET_INTSET,
        Value::Set(_) => types::SET,
        Value::ZSet(z) if z.encoding_name() == "listpack" => types::ZSET_LISTPACK,
        Value::ZSet(_) => types::ZSET_2,
        Value::Stream(_) => crate::stream::WRITTEN_TYPE,
    }
}

/// Appends `value`'s body (without the type byte) as RDB version 10 writes it.
pub fn write_value(out: &mut Vec<u8>, value: &Value, compress: bool) {
    match value {
        Value::Str(s) => s.with_bytes(|b| write_string(out, b, compress)),
        Value::List(list) => write_list(out, list, compress),
        Value::Stream(stream) => crate::stream::write_stream(out, stream, compress),
        Value::Hash(hash) if hash.has_field_ttls() => {
            // Redis 7.4's HASH_METADATA: the earliest expiry, then per field its TTL relative
            // to it (plus one; 0 for none), the field and the value.
            let min = hash.next_field_expiry().expect("a field has a TTL");
            out.extend_from_slice(&min.to_le_bytes());
            write_len(out, hash.len() as u64);
            for (field, value) in hash.iter() {
                write_len(out, hash.field_ttl(field).map_or(0, |at| at - min + 1));
                write_string(out, field, compress);
                write_string(out, value, compress);
            }
        }
        Value::Hash(hash) if hash.is_listpack() => {
            let mut lp = ListpackBuilder::new();
            for (field, value) in hash.iter() {
                lp.push(field);
                lp.push(value);
            }
            write_blob(out, &lp.finish(), compress);
        }
        Value::Hash(hash) => {
            write_len(out, hash.len() as u64);
            for (field, value) in hash.iter() {
                write_string(out, field, compress);
                write_string(out, value, compress);
            }
        }
        Value::Set(set) => match set.enc() {
            SetEnc::Intset(intset) => write_blob(out, &blobs::build_intset(intset.width(), intset.iter().collect::<Vec<_>>().into_iter()), compress),
            _ => {
                write_len(out, set.len() as u64);
                for member in set.iter() {
                    member.with_bytes(|b| write_string(out, b, compress));
                }
            }
        },
        Value::ZSet(zset) if zset.encoding_name() == "listpack" => {
            let mut lp = ListpackBuilder::new();
            for (member, score) in zset.iter() {
                lp.push(member);
                lp.push(codec::format_score(score).as_bytes());
            }
            write_blob(out, &lp.finish(), compress);
        }
        Value::ZSet(zset) => {
            write_len(out, zset.len() as u64);
            // Highest first, as Redis writes them, so a loader that inserts at the head of
            // its skiplist does so in O(1).
            let items: Vec<(&[u8], f64)> = zset.iter().collect();
            for (member, score) in items.into_iter().rev() {
                write_string(out, member, compress);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
    }
}

fn write_list(out: &mut Vec<u8>, list: &List, compress: bool) {
    enum Node {
        Packed(Vec<u8>),
        Plain(Vec<u8>),
    }
    let mut nodes = Vec::new();
    let mut lp = ListpackBuilder::new();
    for element in list.iter() {
        if element.len() >= PLAIN_ELEMENT_MIN {
            if !lp.is_empty() {
                nodes.push(Node::Packed(std::mem::take(&mut lp).finish()));
            }
            nodes.push(Node::Plain(element.to_vec()));
            continue;
        }
        if !lp.is_empty() && lp.bytes_len() + ListpackBuilder::entry_len(element) > NODE_BYTES_MAX {
            nodes.push(Node::Packed(std::mem::take(&mut lp).finish()));
        }
        lp.push(element);
    }
    if !lp.is_empty() {
        nodes.push(Node::Packed(lp.finish()));
    }
    write_len(out, nodes.len() as u64);
    for node in nodes {
        match node {
            Node::Packed(blob) => {
                write_len(out, CONTAINER_PACKED);
                write_blob(out, &blob, compress);
            }
            Node::Plain(element) => {
                write_len(out, CONTAINER_PLAIN);
                write_blob(out, &element, compress);
            }
        }
    }
}

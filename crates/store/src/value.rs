//! Values stored under keys, and their Redis encodings.
//!
//! Strings live here; the collection types live in [`crate::types`]: small hashes, sets and
//! sorted sets in the value itself (their listpack's twelve bytes), the others boxed, so a
//! [`Value`] stays as small as a string.

use std::alloc::Layout;
use std::ptr::NonNull;

use bytes::Bytes;

use crate::types::{Hash, List, Set, Stream, ZSet};

/// Strings at most this long are stored "embedded" (Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
pub const EMBSTR_LEN_MAX: usize = 44;

/// A value stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Str),
    List(Box<List>),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
    Stream(Box<Stream>),
}

impl Value {
    /// Prefetches what reading the value touches first (see [`crate::prefetch`]): a
    /// string's bytes, a small hash's or sorted set's listpack, or a collection's header.
    #[inline]
    pub fn prefetch(&self) {
        let at: *const u8 = match self {
            Value::Hash(hash) => return hash.prefetch(),
            Value::ZSet(zset) => return zset.prefetch(),
            Value::Set(set) => return set.prefetch(),
            Value::Str(Str::Int(_)) => return,
            Value::Str(Str::Emb(bytes) | Str::Raw(bytes)) => bytes.as_ptr(),
            Value::Str(Str::Grown(buffer)) => &**buffer as *const Vec<u8> as *const u8,
            Value::List(list) => &**list as *const List as *const u8,
            Value::Stream(stream) => &**stream as *const Stream as *const u8,
        };
        crate::prefetch::read(at);
    }

    /// Prefetches what a boxed collection's header points to, once [`Value::prefetch`] has
    /// brought the header: a big hash's table or template.
    #[inline]
    pub fn prefetch_inner(&self) {
        match self {
            Value::Hash(hash) => hash.prefetch_inner(),
            Value::Str(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_) | Value::Stream(_) => {}
        }
    }

    /// Prefetches what looking up `members` of a collection will touch: a hash's fields,
    /// a set's or a sorted set's members. Strings and lists have none.
    pub fn prefetch_members(&self, members: &[&[u8]]) {
        match self {
            Value::Hash(hash) => hash.prefetch_fields(members),
            Value::Set(set) => set.prefetch_members(members),
            Value::ZSet(zset) => zset.prefetch_members(members),
            Value::Str(_) | Value::List(_) | Value::Stream(_) => {}
        }
    }

    /// An estimate of the bytes this value uses, for MEMORY USAGE (Redis's
    /// `objectComputeSize`): the value's own representation (`size_of::<Value>()`: it lives
    /// in its key's dict node) plus every heap byte it owns. Strings are exact: an int is the
    /// enum alone, embstr and raw strings add their buffers' capacity. Compact encodings
    /// (listpack, intset) are exact: their one buffer's capacity. Big encodings (hashtable,
    /// skiplist, quicklist) count their arrays by capacity and their per-element allocations
    /// by sampling: with `samples` above 0 and fewer than the elements, the first `samples`
    /// elements (a quicklist's first `samples` nodes) are measured and their average scaled
    /// to the count, so the cost is O(samples); `samples == 0` measures every element.
    ///
    /// Sizes are what was asked of the allocator, from `size_of` of the real node and entry
    /// types and the capacities of the buffers; mimalloc's rounding up to its size classes
    /// (a 19-byte node takes 24) is not counted, so the true footprint is somewhat larger.
    /// What the key itself costs is [`crate::db::key_overhead`].
    pub fn memory_usage(&self, samples: usize) -> usize {
        let owned = match self {
            Value::Str(s) => s.heap_bytes(),
            Value::List(list) => list.memory_usage(samples),
            Value::Hash(hash) => hash.memory_usage(samples),
            Value::Set(set) => set.memory_usage(samples),
            Value::ZSet(zset) => zset.memory_usage(samples),
            Value::Stream(stream) => stream.memory_usage(samples),
        };
        std::mem::size_of::<Value>() + owned
    }

    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding_name(),
            Value::List(l) => l.encoding_name(),
            Value::Hash(h) => h.encoding_name(),
            Value::Set(s) => s.encoding_name(),
            Value::ZSet(z) => z.encoding_name(),
            Value::Stream(_) => "stream",
        }
    }
}

/// A string value in one of Redis's three encodings. Two words, so that a [`Value`] is two
/// words too: the bytes of an embstr or raw string are behind one pointer with their length
/// beside it ([`Exact`]), and only a string changed in place keeps a growable buffer, one
/// pointer further away.
#[derive(Debug, Clone, PartialEq)]
pub enum Str {
    /// A string that reads back as a canonical 64-bit integer.
    Int(i64),
    /// A short string stored as written (Redis's embstr).
    Emb(Exact),
    /// A long string stored as written (Redis's raw).
    Raw(Exact),
    /// A raw string that commands change in place (APPEND, SETRANGE, SETBIT, PFADD), with
    /// room to grow as Redis's `sdsMakeRoomFor` leaves; also any string of 4 GiB or more.
    Grown(Box<Vec<u8>>),
}

/// A string's bytes in an allocation of exactly their length, and that length: 12 bytes,
/// 4-aligned, so that an enum around it fits its tag in the same two words.
#[repr(C, packed(4))]
pub struct Exact {
    ptr: NonNull<u8>,
    len: u32,
}

// SAFETY: an `Exact` owns its allocation outright, as a `Box<[u8]>` does.
unsafe impl Send for Exact {}
// SAFETY: as above; `&Exact` only reads.
unsafe impl Sync for Exact {}

impl Exact {
    /// Lengths this form holds: up to 4 GiB less one byte.
    pub const LEN_MAX: usize = u32::MAX as usize;

    /// A copy of `bytes`, which must be at most [`Exact::LEN_MAX`] long.
    fn new(bytes: &[u8]) -> Exact {
        let len = u32::try_from(bytes.len()).expect("an exact string is under 4 GiB");
        if len == 0 {
            return Exact { ptr: NonNull::dangling(), len };
        }
        let layout = Layout::array::<u8>(bytes.len()).expect("a string layout fits");
        // SAFETY: the layout is non-zero; we fill all of it before anyone reads it.
        unsafe {
            let raw = std::alloc::alloc(layout);
            let Some(ptr) = NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), raw, bytes.len());
            Exact { ptr, len }
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        // Fields of a packed struct are read by value, never by reference.
        let (ptr, len) = (self.ptr, self.len);
        // SAFETY: `ptr` holds `len` initialized bytes we own (or dangles for none).
        unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len as usize) }
    }
}

impl Drop for Exact {
    fn drop(&mut self) {
        let (ptr, len) = (self.ptr, self.len as usize);
        if len > 0 {
            // SAFETY: allocated by `new` with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), Layout::array::<u8>(len).expect("it was allocated")) }
        }
    }
}

impl Clone for Exact {
    fn clone(&self) -> Exact {
        Exact::new(self.as_bytes())
    }
}

impl PartialEq for Exact {
    fn eq(&self, other: &Exact) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl std::fmt::Debug for Exact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())
    }
}

impl std::ops::Deref for Exact {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Str {
    /// Encodes `bytes` as Redis's `tryObjectEncoding` would: int when it is a canonical
    /// integer of at most 20 characters, embstr when short, raw otherwise.
    pub fn from_bytes(bytes: &[u8]) -> Str {
        if bytes.len() <= 20 {
            if let Some(n) = parse_canonical_i64(bytes) {
                return Str::Int(n);
            }
        }
        Str::from_text(bytes)
    }

    /// `bytes` as written, never int-encoded: embstr when short, raw otherwise (Redis's
    /// `createStringObject`).
    pub fn from_text(bytes: &[u8]) -> Str {
        if bytes.len() <= EMBSTR_LEN_MAX {
            Str::Emb(Exact::new(bytes))
        } else if bytes.len() <= Exact::LEN_MAX {
            Str::Raw(Exact::new(bytes))
        } else {
            Str::Grown(Box::new(bytes.to_vec()))
        }
    }

    /// A raw string that keeps `buffer` (and its spare capacity) for changes in place.
    pub fn from_vec(buffer: Vec<u8>) -> Str {
        Str::Grown(Box::new(buffer))
    }

    pub fn encoding_name(&self) -> &'static str {
        match self {
            Str::Int(_) => "int",
            Str::Emb(_) => "embstr",
            Str::Raw(_) | Str::Grown(_) => "raw",
        }
    }

    /// Heap bytes the string owns: none for an int, its bytes for embstr and raw, the
    /// growable buffer's header and capacity once grown.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Str::Int(_) => 0,
            Str::Emb(b) | Str::Raw(b) => b.len(),
            Str::Grown(v) => std::mem::size_of::<Vec<u8>>() + v.capacity(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Str::Int(n) => itoa::Buffer::new().format(*n).len(),
            Str::Emb(b) | Str::Raw(b) => b.len(),
            Str::Grown(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, where they are stored as bytes (not for an int).
    fn stored(&self) -> Option<&[u8]> {
        match self {
            Str::Int(_) => None,
            Str::Emb(b) | Str::Raw(b) => Some(b.as_bytes()),
            Str::Grown(v) => Some(v),
        }
    }

    /// A copy of the bytes, for a reply.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Str::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            _ => Bytes::copy_from_slice(self.stored().expect("not an int")),
        }
    }

    /// Calls `f` with the bytes without copying them where possible.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Str::Int(n) => f(itoa::Buffer::new().format(*n).as_bytes()),
            _ => f(self.stored().expect("not an int")),
        }
    }

    /// Converts to a growable raw string and returns its buffer for in-place changes
    /// (APPEND, SETRANGE), as Redis does.
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Str::Grown(_)) {
            let bytes = self.with_bytes(|b| b.to_vec());
            *self = Str::from_vec(bytes);
        }
        match self {
            Str::Grown(v) => v,
            _ => unreachable!("converted above"),
        }
    }

    /// The value as an integer, if it is one in Redis's strict sense.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Str::Int(n) => Some(*n),
            _ => parse_canonical_i64(self.stored().expect("not an int")),
        }
    }
}

/// Parses a canonical signed 64-bit integer the way Redis's `string2ll` does: an optional
/// `-`, no `+`, no leading zeros (but "0"), no spaces, no overflow.
pub fn parse_canonical_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            return None;
        }
        Some((value as i64).wrapping_neg())
    } else {
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_parse_like_string2ll() {
        assert_eq!(parse_canonical_i64(b"0"), Some(0));
        assert_eq!(parse_canonical_i64(b"-1"), Some(-1));
        assert_eq!(parse_canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"-0", b"01", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1a"] {
            assert_eq!(parse_canonical_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn encodings_follow_redis_thresholds() {
        assert_eq!(Str::from_bytes(b"123").encoding_name(), "int");
        assert_eq!(Str::from_bytes(b"0123").encoding_name(), "embstr");
        assert_eq!(Str::from_bytes(&[b'x'; 44]).encoding_name(), "embstr");
        assert_eq!(Str::from_bytes(&[b'x'; 45]).encoding_name(), "raw");
    }

    fn string(bytes: &[u8]) -> Value {
        Value::Str(Str::from_bytes(bytes))
    }

    #[test]
    fn a_strings_estimate_grows_with_its_length() {
        let sizes: Vec<usize> = [10, 40, 100, 1000].iter().map(|&len| string(&vec![b'x'; len]).memory_usage(0)).collect();
        assert!(sizes.windows(2).all(|pair| pair[0] < pair[1]), "sizes by length: {sizes:?}");
        // Exactly the enum and the bytes: embstr and raw allocations are the string's length.
        assert_eq!(sizes[0], std::mem::size_of::<Value>() + 10);
        assert_eq!(sizes[3], std::mem::size_of::<Value>() + 1000);
    }

    #[test]
    fn a_grown_strings_estimate_counts_its_buffer_and_spare_capacity() {
        let mut buffer = Vec::with_capacity(1000);
        buffer.extend_from_slice(b"short");
        let value = Value::Str(Str::from_vec(buffer));
        assert_eq!(value.encoding_name(), "raw");
        assert_eq!(value.memory_usage(0), std::mem::size_of::<Value>() + std::mem::size_of::<Vec<u8>>() + 1000);
    }

    #[test]
    fn an_int_encoded_string_is_small() {
        let value = string(b"-1234567890123");
        assert_eq!(value.encoding_name(), "int");
        assert!(value.memory_usage(0) < 32, "{} bytes", value.memory_usage(0));
        assert_eq!(value.memory_usage(0), std::mem::size_of::<Value>(), "no heap bytes");
    }

    #[test]
    fn a_collections_estimate_is_the_enum_plus_what_it_owns() {
        let limits = crate::Limits::default();
        let mut hash = crate::types::Hash::new();
        hash.set(b"field", b"value", &limits);
        // The hash is boxed: its struct and its listpack.
        let expected = std::mem::size_of::<Value>() + hash.memory_usage(0);
        assert!(hash.memory_usage(0) > std::mem::size_of::<crate::types::Hash>());
        assert_eq!(Value::Hash(hash).memory_usage(0), expected);
    }

    #[test]
    fn a_value_is_two_words() {
        // Every key's node holds one: the node of a 10-byte key is 40 bytes, not 48.
        assert_eq!(std::mem::size_of::<Str>(), 16);
        assert_eq!(std::mem::size_of::<Value>(), 16);
        // Small hashes, sets and sorted sets in it whole: their listpack's twelve bytes.
        assert_eq!(std::mem::size_of::<Hash>(), 12);
        assert_eq!(std::mem::size_of::<Set>(), 12);
        assert_eq!(std::mem::size_of::<ZSet>(), 12);
        // A list's box: its one listpack node, or the quicklist's box.
        assert_eq!(std::mem::size_of::<List>(), 16);
    }

    #[test]
    fn every_string_form_reads_back_its_bytes() {
        for bytes in [&b""[..], b"0", b"-17", b"0123", &[b'x'; 44], &[b'y'; 45], &[b'z'; 5000]] {
            let s = Str::from_bytes(bytes);
            assert_eq!(s.len(), bytes.len());
            assert_eq!(s.to_bytes(), Bytes::copy_from_slice(bytes));
            assert_eq!(s.clone(), s);
            let text = Str::from_text(bytes);
            assert_ne!(text.encoding_name(), "int");
            assert_eq!(text.with_bytes(|b| b.to_vec()), bytes);
            let mut grown = text.clone();
            grown.make_raw().push(b'!');
            assert_eq!(grown.len(), bytes.len() + 1);
            assert_eq!(grown.to_bytes().slice(..bytes.len()), Bytes::copy_from_slice(bytes));
        }
    }

    #[test]
    fn make_raw_keeps_the_bytes() {
        let mut s = Str::from_bytes(b"-42");
        s.make_raw().extend_from_slice(b"x");
        assert_eq!(s.to_bytes(), Bytes::from_static(b"-42x"));
        assert_eq!(s.encoding_name(), "raw");
    }
}

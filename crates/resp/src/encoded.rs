//! [`Encoded`]: an aggregate reply whose items are already encoded, for replies of many
//! elements (ZRANGE, LRANGE, SMEMBERS, HGETALL).
//!
//! A `Frame::Array` of n bulk strings costs n allocations (one `Bytes` each), a `Vec<Frame>`,
//! and a second walk to encode them. An `Encoded` is built straight from the data structure's
//! iteration into one buffer, in the protocol of the connection the reply goes to, and the
//! encoder copies it out with one `memcpy` after the aggregate's header.
//!
//! Its bytes are those [`encode`](crate::encode()) writes for the same items as frames, so the
//! reply is byte-for-byte the same either way. [`Encoded::to_frame`] gives the frames back
//! (for Lua, tests, and the rare encode in another protocol than it was built for).
//!
//! What it deliberately does not do: hold anything but bulk strings, doubles, and
//! member-score pairs; those are all that many-element replies need.

use bytes::Bytes;

use crate::encode::{put_bulk_vec, DoubleText};
use crate::{Frame, Protocol};

/// What aggregate the items form: its header is written by the encoder, in the protocol of
/// the connection (a RESP3 set is `~n`, a map `%n`; both are `*` arrays in RESP2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    Array,
    Set,
    Map,
}

/// An aggregate reply whose items are already encoded in one protocol.
///
/// Invariant (why the fields are private): `bytes` is exactly the encoding in `proto` of
/// `count` items (of `count` key-value pairs for a map), each a bulk string or a
/// `[member, double]` pair array; when `scored`, they are members and scores, alternately in
/// RESP2 (the scores bulk strings) and as pairs in RESP3.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    aggregate: AggregateKind,
    proto: Protocol,
    count: usize,
    scored: bool,
    bytes: Vec<u8>,
}

impl Encoded {
    /// An empty aggregate to fill, with room for about `items_hint` short items (a guess,
    /// capped so that a huge count does not reserve a huge buffer up front; the buffer grows
    /// as a `Vec` does past it).
    pub fn new(aggregate: AggregateKind, proto: Protocol, items_hint: usize) -> Encoded {
        const ITEM_BYTES_GUESS: usize = 32;
        const ITEMS_RESERVED_MAX: usize = 4096;
        Encoded { aggregate, proto, count: 0, scored: false, bytes: Vec::with_capacity(items_hint.min(ITEMS_RESERVED_MAX) * ITEM_BYTES_GUESS) }
    }

    /// Appends a bulk string item (not for a map).
    pub fn push_bulk(&mut self, data: &[u8]) {
        debug_assert!(self.aggregate != AggregateKind::Map, "a map takes pairs");
        debug_assert!(!self.scored, "members with scores have nothing else");
        put_bulk_vec(&mut self.bytes, data);
        self.count += 1;
    }

    /// Appends a key-value pair of bulk strings (a map only).
    pub fn push_bulk_pair(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(self.aggregate == AggregateKind::Map, "only a map takes pairs");
        put_bulk_vec(&mut self.bytes, key);
        put_bulk_vec(&mut self.bytes, value);
        self.count += 1;
    }

    /// Appends a member and its score as a sorted set's WITHSCORES reply has them (an array
    /// only): a `[member, double]` pair in RESP3, two items (the score a bulk string) in RESP2.
    pub fn push_member_score(&mut self, member: &[u8], score: f64) {
        debug_assert!(self.aggregate == AggregateKind::Array, "scores are in arrays");
        debug_assert!(self.scored || self.count == 0, "members with scores have nothing else");
        self.scored = true;
        let score = DoubleText::new(score);
        match self.proto {
            Protocol::Resp2 => {
                put_bulk_vec(&mut self.bytes, member);
                put_bulk_vec(&mut self.bytes, score.as_bytes());
                self.count += 2;
            }
            Protocol::Resp3 => {
                self.bytes.extend_from_slice(b"*2\r\n");
                put_bulk_vec(&mut self.bytes, member);
                self.bytes.push(b',');
                self.bytes.extend_from_slice(score.as_bytes());
                self.bytes.extend_from_slice(b"\r\n");
                self.count += 1;
            }
        }
    }

    pub fn aggregate(&self) -> AggregateKind {
        self.aggregate
    }

    /// The protocol the items are encoded in.
    pub fn proto(&self) -> Protocol {
        self.proto
    }

    /// The number of items (of pairs for a map).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded items, without the aggregate's header.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The same reply as ordinary frames, those a handler would build for the protocol: what
    /// `encode` turns into the same bytes. A score is a `Double` in either protocol (RESP2
    /// encodes it as the bulk string it was built as; `%.17g` text parses back exactly).
    pub fn to_frame(&self) -> Frame {
        let mut reader = Reader { bytes: &self.bytes, at: 0 };
        let frame = match self.aggregate {
            AggregateKind::Array if self.scored && self.proto == Protocol::Resp2 => {
                Frame::Array((0..self.count).map(|index| if index % 2 == 0 { reader.item() } else { reader.score() }).collect())
            }
            AggregateKind::Array => Frame::Array((0..self.count).map(|_| reader.item()).collect()),
            AggregateKind::Set => Frame::Set((0..self.count).map(|_| reader.item()).collect()),
            AggregateKind::Map => Frame::Map((0..self.count).map(|_| (reader.item(), reader.item())).collect()),
        };
        assert_eq!(reader.at, self.bytes.len(), "an Encoded holds exactly its items");
        frame
    }
}

/// Reads back the items `Encoded` writes. Its input is always well formed (the builder wrote
/// it), so a malformed byte is a programmer error and panics.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn line(&mut self) -> &[u8] {
        let rest = &self.bytes[self.at..];
        let end = memchr::memchr(b'\r', rest).expect("an encoded line ends in CRLF");
        self.at += end + 2;
        &rest[..end]
    }

    fn number(&mut self) -> usize {
        let line = self.line();
        std::str::from_utf8(line).ok().and_then(|text| text.parse().ok()).expect("an encoded length is a decimal number")
    }

    /// A score written as a RESP2 bulk string.
    fn score(&mut self) -> Frame {
        let Frame::Bulk(text) = self.item() else { panic!("a RESP2 score is a bulk string") };
        let text = std::str::from_utf8(&text).expect("an encoded double is ASCII");
        Frame::Double(text.parse().expect("an encoded double parses"))
    }

    fn item(&mut self) -> Frame {
        let kind = self.bytes[self.at];
        self.at += 1;
        match kind {
            b'$' => {
                let len = self.number();
                let data = Bytes::copy_from_slice(&self.bytes[self.at..self.at + len]);
                self.at += len + 2;
                Frame::Bulk(data)
            }
            b',' => {
                let line = self.line();
                let text = std::str::from_utf8(line).expect("an encoded double is ASCII");
                Frame::Double(text.parse().expect("an encoded double parses"))
            }
            b'*' => {
                let count = self.number();
                Frame::Array((0..count).map(|_| self.item()).collect())
            }
            other => panic!("an Encoded holds no item of type {:?}", char::from(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::{encode, encoded_len};

    /// The encoding of `encoded` must equal that of its frames, in both protocols.
    fn same_as_frames(encoded: &Encoded) {
        let frame = Frame::Encoded(encoded.clone());
        let plain = encoded.to_frame();
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let (mut fast, mut slow) = (BytesMut::new(), BytesMut::new());
            encode(&frame, proto, &mut fast);
            encode(&plain, proto, &mut slow);
            assert_eq!(fast, slow, "{proto:?} of {plain:?} built in {:?}", encoded.proto());
            assert_eq!(encoded_len(&frame, proto), fast.len());
        }
    }

    fn array(proto: Protocol) -> Encoded {
        let mut encoded = Encoded::new(AggregateKind::Array, proto, 0);
        encoded.push_bulk(b"a");
        encoded.push_bulk(b"");
        encoded.push_bulk(b"with\r\nnewline");
        encoded
    }

    #[test]
    fn an_array_of_bulks_reads_back_as_bulk_frames() {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let encoded = array(proto);
            assert_eq!(encoded.len(), 3);
            assert_eq!(encoded.to_frame(), Frame::bulks(["a", "", "with\r\nnewline"]));
            same_as_frames(&encoded);
        }
    }

    #[test]
    fn member_scores_are_flat_in_resp2_and_pairs_in_resp3() {
        let mut resp2 = Encoded::new(AggregateKind::Array, Protocol::Resp2, 0);
        let mut resp3 = Encoded::new(AggregateKind::Array, Protocol::Resp3, 0);
        for (member, score) in [(&b"a"[..], 0.1), (b"b", f64::NEG_INFINITY), (b"c", 100.0)] {
            resp2.push_member_score(member, score);
            resp3.push_member_score(member, score);
        }
        let flat = [Frame::bulk("a"), Frame::Double(0.1), Frame::bulk("b"), Frame::Double(f64::NEG_INFINITY), Frame::bulk("c"), Frame::Double(100.0)];
        assert_eq!(resp2.to_frame(), Frame::Array(flat.to_vec()));
        let mut out = BytesMut::new();
        encode(&Frame::Encoded(resp2.clone()), Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"*6\r\n$1\r\na\r\n$19\r\n0.10000000000000001\r\n$1\r\nb\r\n$4\r\n-inf\r\n$1\r\nc\r\n$3\r\n100\r\n");
        let pair = |member: &'static str, score| Frame::Array(vec![Frame::bulk(member), Frame::Double(score)]);
        assert_eq!(resp3.to_frame(), Frame::Array(vec![pair("a", 0.1), pair("b", f64::NEG_INFINITY), pair("c", 100.0)]));
        out.clear();
        encode(&Frame::Encoded(resp3.clone()), Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"*3\r\n*2\r\n$1\r\na\r\n,0.10000000000000001\r\n*2\r\n$1\r\nb\r\n,-inf\r\n*2\r\n$1\r\nc\r\n,100\r\n");
        same_as_frames(&resp2);
        same_as_frames(&resp3);
    }

    #[test]
    fn sets_and_maps_take_their_resp3_headers() {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let mut set = Encoded::new(AggregateKind::Set, proto, 0);
            set.push_bulk(b"x");
            assert_eq!(set.to_frame(), Frame::Set(vec![Frame::bulk("x")]));
            same_as_frames(&set);

            let mut map = Encoded::new(AggregateKind::Map, proto, 0);
            map.push_bulk_pair(b"f", b"v");
            map.push_bulk_pair(b"g", b"");
            assert_eq!(map.len(), 2);
            assert_eq!(map.to_frame(), Frame::Map(vec![(Frame::bulk("f"), Frame::bulk("v")), (Frame::bulk("g"), Frame::bulk(""))]));
            same_as_frames(&map);
        }
    }

    #[test]
    fn an_empty_aggregate_is_just_its_header() {
        let encoded = Encoded::new(AggregateKind::Array, Protocol::Resp2, 0);
        assert!(encoded.is_empty());
        assert_eq!(encoded.to_frame(), Frame::Array(vec![]));
        same_as_frames(&encoded);
    }

    #[test]
    fn into_plain_replaces_encoded_frames_at_any_depth() {
        let nested = Frame::Array(vec![Frame::Encoded(array(Protocol::Resp2)), Frame::Integer(1)]);
        assert_eq!(nested.into_plain(), Frame::Array(vec![Frame::bulks(["a", "", "with\r\nnewline"]), Frame::Integer(1)]));
    }
}

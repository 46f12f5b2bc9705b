//! Redis's compact encodings as they appear inside RDB strings: listpack, ziplist, zipmap and
//! intset. Parsers validate everything (header sizes, entry bounds, back-lengths, counts,
//! terminators, intset order) and return an error message instead of panicking; the
//! listpack and intset builders produce Redis's exact bytes.
//!
//! Listpack: `total_bytes: u32 LE`, `count: u16 LE` (65535 = unknown), entries, `0xFF`.
//! Each entry is an encoding + data, then a back-length (the size of encoding + data,
//! 7 bits per byte, most significant first, every byte but the first flagged with 0x80):
//! - `0xxxxxxx` 7-bit uint; `110xxxxx yyyyyyyy` 13-bit signed; `0xF1/F2/F3/F4` int16/24/32/64 LE;
//! - `10xxxxxx` string up to 63 bytes; `1110xxxx yyyyyyyy` up to 4095; `0xF0` + u32 LE length.
//!
//! Ziplist (Redis before 7): `zlbytes: u32`, `zltail: u32`, `zllen: u16`, entries, `0xFF`; each
//! entry is `prevlen` (1 byte, or 0xFE + u32), an encoding (`00` 6-bit string length, `01`
//! 14-bit big-endian, `0x80` + u32 big-endian; `0xC0` i16, `0xD0` i32, `0xE0` i64, `0xF0` i24,
//! `0xFE` i8, `0xF1..=0xFD` the immediate 0..12), then data.
//!
//! Zipmap (Redis 2.x hashes): a count byte, then `len key len free value [free bytes]` pairs
//! (lengths 1 byte, or 0xFE + u32 LE), then `0xFF`.
//!
//! Intset: `encoding: u32 LE` (2, 4 or 8 bytes per member), `length: u32 LE`, then the members
//! little-endian, strictly ascending, never empty.

use shoal_store::value::parse_canonical_i64;

/// One element of a listpack or ziplist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl<'a> Element<'a> {
    /// The element as bytes (integers in decimal).
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().into_owned()
    }

    /// The element as bytes, borrowed from the blob unless it is an integer.
    pub fn as_bytes(&self) -> std::borrow::Cow<'a, [u8]> {
        match self {
            Element::Int(n) => std::borrow::Cow::Owned(itoa::Buffer::new().format(*n).as_bytes().to_vec()),
            Element::Bytes(b) => std::borrow::Cow::Borrowed(b),
        }
    }
}

type Parsed<T> = Result<T, String>;

fn slice(blob: &[u8], at: usize, len: usize) -> Parsed<&[u8]> {
    at.checked_add(len).and_then(|end| blob.get(at..end)).ok_or_else(|| format!("entry at {at} runs past the end"))
}

fn byte(blob: &[u8], at: usize) -> Parsed<u8> {
    blob.get(at).copied().ok_or_else(|| format!("entry at {at} runs past the end"))
}

/// The back-length bytes of an entry of `len` bytes.
fn backlen(len: usize, buf: &mut [u8; 5]) -> &[u8] {
    let l = len as u64;
    let n = if l <= 127 {
        buf[0] = l as u8;
        1
    } else if l < 16383 {
        buf[0] = (l >> 7) as u8;
        buf[1] = (l & 127) as u8 | 128;
        2
    } else if l < 2097151 {
        buf[0] = (l >> 14) as u8;
        buf[1] = ((l >> 7) & 127) as u8 | 128;
        buf[2] = (l & 127) as u8 | 128;
        3
    } else if l < 268435455 {
        buf[0] = (l >> 21) as u8;
        buf[1] = ((l >> 14) & 127) as u8 | 128;
        buf[2] = ((l >> 7) & 127) as u8 | 128;
        buf[3] = (l & 127) as u8 | 128;
        4
    } else {
        buf[0] = (l >> 28) as u8;
        buf[1] = ((l >> 21) & 127) as u8 | 128;
        buf[2] = ((l >> 14) & 127) as u8 | 128;
        buf[3] = ((l >> 7) & 127) as u8 | 128;
        buf[4] = (l & 127) as u8 | 128;
        5
    };
    &buf[..n]
}

/// Parses and validates a Redis listpack.
pub fn parse_listpack(blob: &[u8]) -> Parsed<Vec<Element<'_>>> {
    if blob.len() < 7 {
        return Err(format!("listpack of {} bytes is shorter than its header", blob.len()));
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().expect("4 bytes")) as usize;
    if total != blob.len() {
        return Err(format!("listpack header says {total} bytes, blob has {}", blob.len()));
    }
    let count = u16::from_le_bytes(blob[4..6].try_into().expect("2 bytes"));
    let end = blob.len() - 1;
    if blob[end] != 0xff {
        return Err("listpack does not end with 0xFF".into());
    }
    let mut out = Vec::with_capacity((count as usize).min(4096));
    let mut p = 6;
    while p < end {
        let b = blob[p];
        let (element, enc_len) = match b {
            0x00..=0x7f => (Element::Int(b as i64), 1),
            0x80..=0xbf => {
                let len = (b & 0x3f) as usize;
                (Element::Bytes(slice(blob, p + 1, len)?), 1 + len)
            }
            0xc0..=0xdf => {
                let u = (((b & 0x1f) as i64) << 8) | byte(blob, p + 1)? as i64;
                (Element::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
            }
            0xe0..=0xef => {
                let len = (((b & 0x0f) as usize) << 8) | byte(blob, p + 1)? as usize;
                (Element::Bytes(slice(blob, p + 2, len)?), 2 + len)
            }
            0xf0 => {
                let len = u32::from_le_bytes(slice(blob, p + 1, 4)?.try_into().expect("4 bytes")) as usize;
                (Element::Bytes(slice(blob, p + 5, len)?), 5 + len)
            }
            0xf1 => (Element::Int(i16::from_le_bytes(slice(blob, p + 1, 2)?.try_into().expect("2")) as i64), 3),
            0xf2 => {
                let s = slice(blob, p + 1, 3)?;
                let v = ((s[0] as i32) | (s[1] as i32) << 8 | (s[2] as i32) << 16) << 8 >> 8;
                (Element::Int(v as i64), 4)
            }
            0xf3 => (Element::Int(i32::from_le_bytes(slice(blob, p + 1, 4)?.try_into().expect("4")) as i64), 5),
            0xf4 => (Element::Int(i64::from_le_bytes(slice(blob, p + 1, 8)?.try_into().expect("8"))), 9),
            0xff => return Err(format!("listpack end marker at {p} before the end")),
            _ => return Err(format!("invalid listpack encoding 0x{b:02x} at {p}")),
        };
        let mut buf = [0u8; 5];
        let back = backlen(enc_len, &mut buf);
        let back_at = p + enc_len;
        if back_at + back.len() > end || &blob[back_at..back_at + back.len()] != back {
            return Err(format!("listpack entry at {p} has a bad back-length"));
        }
        out.push(element);
        p = back_at + back.len();
    }
    if count != u16::MAX && count as usize != out.len() {
        return Err(format!("listpack header says {count} entries, found {}", out.len()));
    }
    Ok(out)
}

/// Builds a listpack in Redis's byte format, encoding canonical integers as integers as
/// `lpAppend` does.
#[derive(Debug)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    /// An empty listpack (header reserved).
    pub fn new() -> Self {
        ListpackBuilder { buf: vec![0; 6], count: 0 }
    }

    /// Entries appended so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing has been appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size the finished listpack would have.
    pub fn bytes_len(&self) -> usize {
        self.buf.len() + 1
    }

    /// The bytes one entry for `data` takes, back-length included.
    pub fn entry_len(data: &[u8]) -> usize {
        shoal_store::types::list::redis_entry_bytes(data)
    }

    /// Appends `data`, as an integer entry when it is a canonical integer.
    pub fn push(&mut self, data: &[u8]) {
        match parse_canonical_i64(data) {
            Some(n) => self.push_int(n),
            None => self.push_bytes(data),
        }
    }

    /// Appends an integer entry.
    pub fn push_int(&mut self, n: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&n) {
            self.buf.push(n as u8);
        } else if (-4096..=4095).contains(&n) {
            let u = (n as u16) & 0x1fff;
            self.buf.push(0xc0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if let Ok(v) = i16::try_from(n) {
            self.buf.push(0xf1);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&n) {
            self.buf.push(0xf2);
            self.buf.extend_from_slice(&(n as i32).to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(n) {
            self.buf.push(0xf3);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            self.buf.push(0xf4);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
        self.finish_entry(start);
    }

    /// Appends a string entry, never converting it to an integer.
    fn push_bytes(&mut self, data: &[u8]) {
        let start = self.buf.len();
        let len = data.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xe0 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(data);
        self.finish_entry(start);
    }

    fn finish_entry(&mut self, start: usize) {
        let mut buf = [0u8; 5];
        let back = backlen(self.buf.len() - start, &mut buf);
        self.buf.extend_from_slice(back);
        self.count += 1;
    }

    /// The finished listpack.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Parses and validates a ziplist (Redis 2.6 to 6.2).
pub fn parse_ziplist(blob: &[u8]) -> Parsed<Vec<Element<'_>>> {
    if blob.len() < 11 {
        return Err(format!("ziplist of {} bytes is shorter than its header", blob.len()));
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().expect("4")) as usize;
    if total != blob.len() {
        return Err(format!("ziplist header says {total} bytes, blob has {}", blob.len()));
    }
    let tail = u32::from_le_bytes(blob[4..8].try_into().expect("4")) as usize;
    let count = u16::from_le_bytes(blob[8..10].try_into().expect("2"));
    let end = blob.len() - 1;
    if blob[end] != 0xff {
        return Err("ziplist does not end with 0xFF".into());
    }
    let mut out = Vec::with_capacity((count as usize).min(4096));
    let mut p = 10;
    let mut prev_len = 0usize;
    let mut last_at = 10;
    while p < end {
        let (prev, prev_size) = match blob[p] {
            0xfe => (u32::from_le_bytes(slice(blob, p + 1, 4)?.try_into().expect("4")) as usize, 5),
            0xff => return Err(format!("ziplist entry at {p} has an invalid prevlen")),
            b => (b as usize, 1),
        };
        if prev != prev_len {
            return Err(format!("ziplist entry at {p} says the previous entry has {prev} bytes, it has {prev_len}"));
        }
        let e = p + prev_size;
        let b = byte(blob, e)?;
        let (element, size) = match b >> 6 {
            0 => {
                let len = (b & 0x3f) as usize;
                (Element::Bytes(slice(blob, e + 1, len)?), 1 + len)
            }
            1 => {
                let len = (((b & 0x3f) as usize) << 8) | byte(blob, e + 1)? as usize;
                (Element::Bytes(slice(blob, e + 2, len)?), 2 + len)
            }
            2 if b == 0x80 => {
                let len = u32::from_be_bytes(slice(blob, e + 1, 4)?.try_into().expect("4")) as usize;
                (Element::Bytes(slice(blob, e + 5, len)?), 5 + len)
            }
            _ => match b {
                0xc0 => (Element::Int(i16::from_le_bytes(slice(blob, e + 1, 2)?.try_into().expect("2")) as i64), 3),
                0xd0 => (Element::Int(i32::from_le_bytes(slice(blob, e + 1, 4)?.try_into().expect("4")) as i64), 5),
                0xe0 => (Element::Int(i64::from_le_bytes(slice(blob, e + 1, 8)?.try_into().expect("8"))), 9),
                0xf0 => {
                    let s = slice(blob, e + 1, 3)?;
                    (Element::Int((((s[0] as i32) | (s[1] as i32) << 8 | (s[2] as i32) << 16) << 8 >> 8) as i64), 4)
                }
                0xfe => (Element::Int(slice(blob, e + 1, 1)?[0] as i8 as i64), 2),
                0xf1..=0xfd => (Element::Int((b & 0x0f) as i64 - 1), 1),
                _ => return Err(format!("invalid ziplist encoding 0x{b:02x} at {e}")),
            },
        };
        let entry_len = prev_size + size;
        if p + entry_len > end {
            return Err(format!("ziplist entry at {p} runs past the end"));
        }
        out.push(element);
        last_at = p;
        prev_len = entry_len;
        p += entry_len;
    }
    if tail != last_at {
        return Err(format!("ziplist tail offset {tail} does not point at the last entry ({last_at})"));
    }
    if count != u16::MAX && count as usize != out.len() {
        return Err(format!("ziplist header says {count} entries, found {}", out.len()));
    }
    Ok(out)
}

/// Parses and validates a zipmap (Redis 2.x small hashes) into (field, value) pairs.
pub fn parse_zipmap(blob: &[u8]) -> Parsed<Vec<(&[u8], &[u8])>> {
    let declared = *blob.first().ok_or("empty zipmap")?;
    let mut p = 1;
    let mut out = Vec::new();
    let read_len = |p: &mut usize| -> Parsed<Option<usize>> {
        match byte(blob, *p)? {
            0xff => Ok(None),
            0xfe => {
                let n = u32::from_le_bytes(slice(blob, *p + 1, 4)?.try_into().expect("4")) as usize;
                *p += 5;
                Ok(Some(n))
            }
            n => {
                *p += 1;
                Ok(Some(n as usize))
            }
        }
    };
    while let Some(field_len) = read_len(&mut p)? {
        let field = slice(blob, p, field_len)?;
        p += field_len;
        let value_len = read_len(&mut p)?.ok_or("zipmap ends between a field and its value")?;
        let free = byte(blob, p)? as usize;
        p += 1;
        let value = slice(blob, p, value_len)?;
        p += value_len;
        slice(blob, p, free)?;
        p += free;
        out.push((field, value));
    }
    if p != blob.len() - 1 {
        return Err("zipmap has bytes after its end marker".into());
    }
    if declared < 254 && declared as usize != out.len() {
        return Err(format!("zipmap header says {declared} pairs, found {}", out.len()));
    }
    Ok(out)
}

/// Parses and validates an intset.
pub fn parse_intset(blob: &[u8]) -> Parsed<Vec<i64>> {
    if blob.len() < 8 {
        return Err("intset shorter than its header".into());
    }
    let width = u32::from_le_bytes(blob[0..4].try_into().expect("4")) as usize;
    let count = u32::from_le_bytes(blob[4..8].try_into().expect("4")) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset encoding {width} is not 2, 4 or 8"));
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(format!("intset of {count} members of {width} bytes does not fill {} bytes", blob.len()));
    }
    if count == 0 {
        return Err("intset is empty".into());
    }
    let mut out = Vec::with_capacity(count);
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i16::from_le_bytes(chunk.try_into().expect("2")) as i64,
            4 => i32::from_le_bytes(chunk.try_into().expect("4")) as i64,
            _ => i64::from_le_bytes(chunk.try_into().expect("8")),
        };
        if out.last().is_some_and(|&last| last >= v) {
            return Err("intset members are not strictly ascending".into());
        }
        out.push(v);
    }
    Ok(out)
}

/// Builds an intset of `members` (ascending) whose encoding is `width` bytes per member.
pub fn build_intset(width: usize, members: impl ExactSizeIterator<Item = i64>) -> Vec<u8> {
    assert!(matches!(width, 2 | 4 | 8), "intset width {width}");
    let mut out = Vec::with_capacity(8 + members.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for v in members {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trips_every_encoding() {
        let long_4k = vec![b'x'; 5000];
        let mid = vec![b'y'; 100];
        let items: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"0",
            b"127",
            b"128",
            b"-1",
            b"-4096",
            b"4095",
            b"4096",
            b"-32768",
            b"32767",
            b"8388607",
            b"-8388608",
            b"2147483647",
            b"-2147483648",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"9223372036854775808",
            b"007",
            &mid,
            &long_4k,
        ];
        let mut b = ListpackBuilder::new();
        for item in &items {
            b.push(item);
        }
        let blob = b.finish();
        let parsed = parse_listpack(&blob).unwrap();
        let back: Vec<Vec<u8>> = parsed.iter().map(Element::to_vec).collect();
        assert_eq!(back, items.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
        assert!(matches!(parsed[3], Element::Int(127)));
        assert!(matches!(parsed[18], Element::Bytes(b"007")));
    }

    #[test]
    fn listpack_entry_sizes_match_redis_estimate() {
        for item in [&b"1"[..], b"300", b"-70000", b"hello", &[b'z'; 200], &[b'q'; 5000]] {
            let mut b = ListpackBuilder::new();
            b.push(item);
            assert_eq!(b.finish().len(), 7 + ListpackBuilder::entry_len(item));
        }
    }

    #[test]
    fn listpack_with_wrong_count_or_backlen_is_rejected() {
        let mut b = ListpackBuilder::new();
        b.push(b"abc");
        b.push(b"12");
        let blob = b.finish();
        let mut bad = blob.clone();
        bad[4] = 3;
        assert!(parse_listpack(&bad).is_err());
        let mut bad = blob.clone();
        let len = bad.len();
        bad[len - 2] = 9; // last back-length
        assert!(parse_listpack(&bad).is_err());
        let mut unknown = blob.clone();
        unknown[4] = 0xff;
        unknown[5] = 0xff;
        assert_eq!(parse_listpack(&unknown).unwrap().len(), 2);
    }

    #[test]
    fn listpack_parser_survives_every_truncation_and_flip() {
        let mut b = ListpackBuilder::new();
        for i in 0..40 {
            b.push(format!("item{i}").as_bytes());
            b.push_int(i * 1000 - 7000);
        }
        let blob = b.finish();
        for len in 0..blob.len() {
            let mut cut = blob[..len].to_vec();
            if len >= 4 {
                cut[0..4].copy_from_slice(&(len as u32).to_le_bytes());
            }
            let _ = parse_listpack(&cut);
        }
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut bad = blob.clone();
                bad[i] ^= 1 << bit;
                let _ = parse_listpack(&bad);
            }
        }
    }

    #[test]
    fn intset_round_trips_and_rejects_disorder() {
        let blob = build_intset(4, [-70000i64, 1, 2, 70000].into_iter());
        assert_eq!(parse_intset(&blob).unwrap(), vec![-70000, 1, 2, 70000]);
        let blob = build_intset(2, [3i64, 1].into_iter());
        assert!(parse_intset(&blob).is_err());
        assert!(parse_intset(&build_intset(8, std::iter::empty())).is_err());
        let mut bad = build_intset(2, [1i64, 2].into_iter());
        bad[0] = 3;
        assert!(parse_intset(&bad).is_err());
    }
}

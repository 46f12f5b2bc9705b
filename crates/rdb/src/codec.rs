//! The RDB primitives: lengths, strings and doubles, read and written.
//!
//! Length encoding (the first byte's two high bits):
//! - `00xxxxxx`: a 6-bit length; `01xxxxxx xxxxxxxx`: 14 bits, big-endian;
//! - `0x80` + 4 bytes big-endian; `0x81` + 8 bytes big-endian;
//! - `11xxxxxx`: a special string encoding: 0 int8, 1 int16, 2 int32 (little-endian), 3 LZF
//!   (compressed length, uncompressed length, then the compressed bytes).
//!
//! Strings are written as Redis's `rdbSaveRawString` writes them: as an integer when they are
//! a canonical integer of at most 11 characters that fits 32 bits, LZF-compressed when
//! compression is on, the string is longer than 20 bytes and compression saves at least 4
//! bytes, raw otherwise.

use std::io::Read;

use shoal_store::value::parse_canonical_i64;

use crate::error::Result;
use crate::input::Input;
use crate::lzf;

/// A decoded length field: a plain length, or the number of a special string encoding.
pub(crate) enum Len {
    Plain(u64),
    Special(u8),
}

pub(crate) fn read_len_or_special<R: Read>(input: &mut Input<R>) -> Result<Len> {
    let at = input.offset();
    let first = input.read_u8("a length")?;
    Ok(match first >> 6 {
        0 => Len::Plain((first & 0x3f) as u64),
        1 => {
            let next = input.read_u8("a 14-bit length")?;
            Len::Plain((((first & 0x3f) as u64) << 8) | next as u64)
        }
        2 => match first {
            0x80 => Len::Plain(u32::from_be_bytes(input.read_array("a 32-bit length")?) as u64),
            0x81 => Len::Plain(u64::from_be_bytes(input.read_array("a 64-bit length")?)),
            _ => return Err(crate::Error::Corrupt { offset: at, what: format!("unknown length encoding 0x{first:02x}") }),
        },
        _ => Len::Special(first & 0x3f),
    })
}

/// Reads a plain length; a special encoding here is corruption.
pub(crate) fn read_len<R: Read>(input: &mut Input<R>) -> Result<u64> {
    let at = input.offset();
    match read_len_or_special(input)? {
        Len::Plain(n) => Ok(n),
        Len::Special(k) => Err(crate::Error::Corrupt { offset: at, what: format!("expected a length, found string encoding {k}") }),
    }
}

/// Reads a string in any of its encodings and returns its bytes.
pub(crate) fn read_string<R: Read>(input: &mut Input<R>) -> Result<Vec<u8>> {
    let at = input.offset();
    match read_len_or_special(input)? {
        Len::Plain(n) => input.read_vec(n, "a string"),
        Len::Special(0) => Ok(itoa::Buffer::new().format(input.read_array::<1>("an int8 string")?[0] as i8).as_bytes().to_vec()),
        Len::Special(1) => Ok(itoa::Buffer::new().format(i16::from_le_bytes(input.read_array("an int16 string")?)).as_bytes().to_vec()),
        Len::Special(2) => Ok(itoa::Buffer::new().format(i32::from_le_bytes(input.read_array("an int32 string")?)).as_bytes().to_vec()),
        Len::Special(3) => {
            let start = input.offset();
            let compressed_len = read_len(input)?;
            let len = read_len(input)?;
            // LZF expands at most 264 bytes per 2 (or 3) input bytes: refuse absurd claims
            // before allocating for them.
            if len > compressed_len.saturating_mul(133).saturating_add(64) {
                return Err(input.corrupt(format!("LZF string claims {len} bytes from {compressed_len} compressed")));
            }
            let packed = input.read_vec(compressed_len, "an LZF string")?;
            lzf::decompress(&packed, len as usize).map_err(|e| crate::Error::Corrupt { offset: start, what: e.to_string() })
        }
        Len::Special(k) => Err(crate::Error::Corrupt { offset: at, what: format!("unknown string encoding {k}") }),
    }
}

/// Reads a little-endian binary double (ZSET_2 scores).
pub(crate) fn read_binary_double<R: Read>(input: &mut Input<R>) -> Result<f64> {
    Ok(f64::from_le_bytes(input.read_array("a binary double")?))
}

/// Reads an old-style string double (ZSET scores before RDB 8): a length byte, where 253 is
/// NaN, 254 +inf and 255 -inf, then that many ASCII characters.
pub(crate) fn read_string_double<R: Read>(input: &mut Input<R>) -> Result<f64> {
    let len = input.read_u8("a string double")?;
    match len {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        _ => {
            let text = input.read_vec(len as u64, "a string double")?;
            parse_double(&text).ok_or_else(|| input.corrupt(format!("bad double {:?}", String::from_utf8_lossy(&text))))
        }
    }
}

/// Parses a double as `strtod` reads Redis's own output ("inf", "-inf", "nan", decimals and
/// exponents).
pub(crate) fn parse_double(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    match s {
        "inf" | "+inf" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    s.parse::<f64>().ok()
}

// ---- writing ----

pub(crate) fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Writes `n` in an integer string encoding if it fits 32 bits; returns whether it did.
fn write_int_string(out: &mut Vec<u8>, n: i64) -> bool {
    if let Ok(v) = i8::try_from(n) {
        out.extend_from_slice(&[0xc0, v as u8]);
    } else if let Ok(v) = i16::try_from(n) {
        out.push(0xc1);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(n) {
        out.push(0xc2);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Writes a string as `rdbSaveRawString` does (see the module docs).
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(n) = parse_canonical_i64(s) {
            if write_int_string(out, n) {
                return;
            }
        }
    }
    write_blob(out, s, compress);
}

/// Writes bytes that are never an integer (an encoded listpack or intset): LZF when it pays
/// and compression is on, raw otherwise.
pub(crate) fn write_blob(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if compress && s.len() > 20 {
        let packed = lzf::compress(s);
        if packed.len() + 4 <= s.len() {
            out.push(0xc3);
            write_len(out, packed.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&packed);
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Formats a score as Redis's `d2string` would for a listpack: integers without a fraction,
/// "inf"/"-inf", otherwise the shortest text that reads back exactly (under 128 characters,
/// which Redis's `zzlStrtod` requires).
pub(crate) fn format_score(score: f64) -> String {
    if score.is_infinite() {
        return if score > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if score == 0.0 {
        return if score.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if score.fract() == 0.0 && score.abs() < (1u64 << 52) as f64 {
        return itoa::Buffer::new().format(score as i64).to_string();
    }
    if (1e-5..1e17).contains(&score.abs()) {
        format!("{score}")
    } else {
        format!("{score:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(bytes: &[u8]) -> Vec<u8> {
        let mut input = Input::new(bytes);
        let s = read_string(&mut input).unwrap();
        assert_eq!(input.offset(), bytes.len() as u64, "consumed everything");
        s
    }

    #[test]
    fn lengths_use_the_shortest_encoding_and_read_back() {
        for (len, size) in [(0u64, 1), (63, 1), (64, 2), (16383, 2), (16384, 5), (u32::MAX as u64, 5), (u32::MAX as u64 + 1, 9)] {
            let mut out = Vec::new();
            write_len(&mut out, len);
            assert_eq!(out.len(), size, "length {len}");
            assert_eq!(read_len(&mut Input::new(&out[..])).unwrap(), len);
        }
    }

    #[test]
    fn integer_looking_strings_are_encoded_only_when_canonical_and_32_bit() {
        for (s, int_encoded) in [
            (&b"0"[..], true),
            (b"-1", true),
            (b"127", true),
            (b"-128", true),
            (b"32767", true),
            (b"2147483647", true),
            (b"-2147483648", true),
            (b"2147483648", false),
            (b"007", false),
            (b"-0", false),
            (b"+1", false),
            (b"9223372036854775807", false),
            (b"9223372036854775808", false),
            (b"", false),
        ] {
            let mut out = Vec::new();
            write_string(&mut out, s, true);
            assert_eq!(out[0] >> 6 == 3, int_encoded, "{:?}", String::from_utf8_lossy(s));
            assert_eq!(read_back(&out), s);
        }
    }

    #[test]
    fn long_compressible_strings_use_lzf_and_short_ones_do_not() {
        let long = b"abcabcabcabcabcabcabcabcabcabcabcabc".to_vec();
        let mut out = Vec::new();
        write_string(&mut out, &long, true);
        assert_eq!(out[0], 0xc3);
        assert_eq!(read_back(&out), long);
        let mut out = Vec::new();
        write_string(&mut out, &long, false);
        assert_eq!(out[0], long.len() as u8);
        let mut out = Vec::new();
        write_string(&mut out, b"aaaaaaaaaaaaaaaaaaaa", true);
        assert_eq!(out[0], 20, "20 bytes are never compressed");
    }

    #[test]
    fn lzf_length_claims_are_checked() {
        // Claims 1 MB from 2 compressed bytes.
        let bytes = [0xc3, 2, 0x80, 0, 0x10, 0, 0, 0, b'a'];
        assert!(read_string(&mut Input::new(&bytes[..])).is_err());
    }

    #[test]
    fn scores_format_so_they_parse_back_exactly() {
        for score in [1.0, -1.0, 0.5, 1.0 / 3.0, 1e300, -1e-300, 123456789012345680.0, 4503599627370496.0, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE]
        {
            let text = format_score(score);
            assert!(text.len() < 128, "{text}");
            assert_eq!(parse_double(text.as_bytes()), Some(score), "{text}");
        }
        assert_eq!(format_score(3.0), "3");
        assert_eq!(format_score(f64::INFINITY), "inf");
    }
}

//! Argument parsing shared by the families, with Redis's error replies.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::errors;

/// Parses a signed 64-bit integer argument (Redis's `getLongLongFromObjectOrReply`).
pub fn parse_i64(arg: &[u8]) -> Result<i64, Frame> {
    shoal_store::value::parse_canonical_i64(arg).ok_or_else(errors::not_integer)
}

/// Parses a 32-bit integer argument (Redis's `getIntFromObjectOrReply`): a non-integer is
/// NOT_INTEGER, an integer beyond 32 bits gets its own error.
pub fn parse_i32(arg: &[u8]) -> Result<i32, Frame> {
    i32::try_from(parse_i64(arg)?).map_err(|_| errors::error(errors::INT_OUT_OF_RANGE))
}

/// Parses a SCAN cursor as Redis's `parseScanCursorOrReply` does with `strtoul`: no leading
/// space, an optional sign, decimal digits up to the first NUL byte and nothing after them.
/// A minus sign negates modulo 2^64 and an empty argument is cursor 0, as in Redis.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, Frame> {
    let invalid = || errors::error(errors::INVALID_CURSOR);
    let text = arg.split(|&b| b == 0).next().unwrap_or_default();
    let Some(&first) = text.first() else {
        return Ok(0);
    };
    // C's isspace also takes the vertical tab, which Rust's ASCII whitespace does not.
    if first.is_ascii_whitespace() || first == 0x0b {
        return Err(invalid());
    }
    let (negative, digits) = match first {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(invalid());
        }
        value = value.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u64)).ok_or_else(invalid)?;
    }
    Ok(if negative { value.wrapping_neg() } else { value })
}

/// Parses a float argument as Redis's `getLongDoubleFromObject`: no spaces, no NaN.
pub fn parse_f64(arg: &[u8]) -> Result<f64, Frame> {
    let text = std::str::from_utf8(arg).map_err(|_| errors::error(errors::NOT_FLOAT))?;
    if text.is_empty() || text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(errors::error(errors::NOT_FLOAT));
    }
    let value: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse().map_err(|_| errors::error(errors::NOT_FLOAT))?,
    };
    if value.is_nan() {
        return Err(errors::error(errors::NOT_FLOAT));
    }
    Ok(value)
}

/// Whether `arg` equals `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// An integer reply.
pub fn int(n: impl TryInto<i64>) -> Frame {
    Frame::Integer(n.try_into().unwrap_or(i64::MAX))
}

pub fn ok() -> Frame {
    Frame::Simple(Bytes::from_static(b"OK"))
}

pub fn bulk(bytes: impl Into<Bytes>) -> Frame {
    Frame::Bulk(bytes.into())
}

pub fn bulk_str(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

//! Argument parsing shared by the families, with Redis's error replies.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::errors;

/// Parses a signed 64-bit integer argument (Redis's `getLongLongFromObjectOrReply`).
pub fn parse_i64(arg: &[u8]) -> Result<i64, Frame> {
    shoal_store::value::parse_canonical_i64(arg).ok_or_else(errors::not_integer)
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

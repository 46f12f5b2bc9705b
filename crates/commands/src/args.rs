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

/// What SCAN, SSCAN, HSCAN and ZSCAN take after the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// MATCH, None for every element ("*" is not even matched, as in Redis).
    pub pattern: Option<Bytes>,
    pub count: usize,
    /// SCAN's TYPE.
    pub type_name: Option<Bytes>,
    /// HSCAN's NOVALUES.
    pub no_values: bool,
}

/// Which options beyond MATCH and COUNT a scan command takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanExtras {
    pub type_name: bool,
    pub no_values: bool,
}

/// Parses a scan command's options after the cursor, as Redis's `scanGenericCommand`: COUNT
/// must be at least 1, a later option overrides an earlier one, anything else is a syntax
/// error.
pub fn parse_scan_options(options: &[Bytes], extras: ScanExtras) -> Result<ScanOptions, Frame> {
    let mut parsed = ScanOptions { pattern: None, count: 10, type_name: None, no_values: false };
    let mut i = 0;
    while i < options.len() {
        let has_value = i + 1 < options.len();
        if is(&options[i], "count") && has_value {
            let count = parse_i64(&options[i + 1])?;
            if count < 1 {
                return Err(errors::syntax());
            }
            parsed.count = usize::try_from(count).unwrap_or(usize::MAX);
            i += 2;
        } else if is(&options[i], "match") && has_value {
            parsed.pattern = (options[i + 1].as_ref() != b"*").then(|| options[i + 1].clone());
            i += 2;
        } else if extras.type_name && is(&options[i], "type") && has_value {
            parsed.type_name = Some(options[i + 1].clone());
            i += 2;
        } else if extras.no_values && is(&options[i], "novalues") {
            parsed.no_values = true;
            i += 1;
        } else {
            return Err(errors::syntax());
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod scan_option_tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn type_and_novalues_only_where_the_command_takes_them() {
        let all = ScanExtras { type_name: true, no_values: true };
        let parsed = parse_scan_options(&opts(&["MATCH", "*", "count", "5", "TYPE", "hash", "NOVALUES"]), all).unwrap();
        assert_eq!(parsed, ScanOptions { pattern: None, count: 5, type_name: Some(Bytes::from_static(b"hash")), no_values: true });
        assert_eq!(parse_scan_options(&opts(&["TYPE", "hash"]), ScanExtras::default()), Err(errors::syntax()));
        assert_eq!(parse_scan_options(&opts(&["NOVALUES"]), ScanExtras::default()), Err(errors::syntax()));
        assert_eq!(parse_scan_options(&opts(&["COUNT", "0"]), all), Err(errors::syntax()));
        assert_eq!(parse_scan_options(&opts(&["COUNT", "x"]), all), Err(errors::not_integer()));
        assert_eq!(parse_scan_options(&opts(&["MATCH"]), all), Err(errors::syntax()));
    }
}

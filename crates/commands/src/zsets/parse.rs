//! Number and range parsing with the exact acceptance rules of Redis's sorted set code, which
//! reads scores with C's `strtod` (hex floats, leading spaces in ranges, `inf`, and an empty
//! range bound that reads as 0).

use bytes::Bytes;

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn starts_with_ci(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// What glibc's `strtod` reads from the start of `s`: (value, bytes consumed, ERANGE set).
/// Consumed is 0 when no number was found.
pub fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &s[i..];
    if starts_with_ci(rest, b"infinity") {
        return (sign * f64::INFINITY, i + 8, false);
    }
    if starts_with_ci(rest, b"inf") {
        return (sign * f64::INFINITY, i + 3, false);
    }
    if starts_with_ci(rest, b"nan") {
        let mut end = i + 3;
        if s.get(end) == Some(&b'(') {
            let mut j = end + 1;
            while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                j += 1;
            }
            if s.get(j) == Some(&b')') {
                end = j + 1;
            }
        }
        return (f64::NAN, end, false);
    }
    if starts_with_ci(rest, b"0x") {
        if let Some((value, used)) = hex_float(&rest[2..]) {
            let value = sign * value;
            return (value, i + 2 + used, value.is_infinite());
        }
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut j = i;
    let mut digits = 0;
    let mut nonzero = false;
    while j < s.len() && s[j].is_ascii_digit() {
        nonzero |= s[j] != b'0';
        j += 1;
        digits += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            nonzero |= s[j] != b'0';
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0, false);
    }
    let mantissa_end = j;
    if j < s.len() && (s[j] == b'e' || s[j] == b'E') {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        let exp_start = k;
        while k < s.len() && s[k].is_ascii_digit() {
            k += 1;
        }
        if k > exp_start {
            j = k;
        }
    }
    let mut text = String::with_capacity(j - i + 2);
    if negative {
        text.push('-');
    }
    let mantissa = std::str::from_utf8(&s[i..mantissa_end]).expect("ASCII digits");
    if mantissa.starts_with('.') {
        text.push('0');
    }
    text.push_str(mantissa);
    if j > mantissa_end {
        text.push_str(std::str::from_utf8(&s[mantissa_end..j]).expect("ASCII exponent"));
    }
    let value: f64 = text.parse().unwrap_or(0.0);
    let range_error = value.is_infinite() || (value == 0.0 && nonzero);
    (value, j, range_error)
}

/// A hex float's mantissa and optional binary exponent: (value, bytes used), or None when
/// no hex digit follows (strtod then reads just the "0").
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut j = 0;
    let mut mantissa = 0f64;
    let mut digits = 0;
    let mut fraction_digits = 0i32;
    while j < s.len() && s[j].is_ascii_hexdigit() {
        mantissa = mantissa * 16.0 + (s[j] as char).to_digit(16).expect("hex digit") as f64;
        j += 1;
        digits += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_hexdigit() {
            mantissa = mantissa * 16.0 + (s[j] as char).to_digit(16).expect("hex digit") as f64;
            j += 1;
            digits += 1;
            fraction_digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    let mut exponent: i64 = 0;
    if j < s.len() && (s[j] == b'p' || s[j] == b'P') {
        let mut k = j + 1;
        let negative = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let start = k;
        let mut e: i64 = 0;
        while k < s.len() && s[k].is_ascii_digit() {
            e = (e * 10 + (s[k] - b'0') as i64).min(100_000);
            k += 1;
        }
        if k > start {
            exponent = if negative { -e } else { e };
            j = k;
        }
    }
    let exponent = (exponent - 4 * fraction_digits as i64).clamp(-5000, 5000) as i32;
    Some((mantissa * 2f64.powi(exponent / 2) * 2f64.powi(exponent - exponent / 2), j))
}

/// A score or weight argument, as Redis's `getDoubleFromObject`: the whole argument, no
/// leading space, no overflow, no underflow to zero, no NaN.
pub fn strict_f64(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || is_space(arg[0]) {
        return None;
    }
    let (value, used, range_error) = strtod(arg);
    if used != arg.len() || value.is_nan() || (range_error && (value.is_infinite() || value == 0.0)) {
        return None;
    }
    Some(value)
}

/// One end of a score range: `(` makes it exclusive; strtod reads the rest up to the end
/// (or a NUL byte), so "" and "(" are 0, as in Redis's `zslParseRange`.
fn score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    let (text, exclusive) = match arg.first() {
        Some(b'(') => (&arg[1..], true),
        _ => (arg, false),
    };
    let (value, used, _) = strtod(text);
    if (used < text.len() && text[used] != 0) || value.is_nan() {
        return None;
    }
    Some((value, exclusive))
}

/// A score range, `min` and `max` with their exclusivity.
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub min_exclusive: bool,
    pub max: f64,
    pub max_exclusive: bool,
}

impl ScoreRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let (min, min_exclusive) = score_bound(min)?;
        let (max, max_exclusive) = score_bound(max)?;
        Some(ScoreRange { min, min_exclusive, max, max_exclusive })
    }

    /// Whether `score` sorts before the range.
    pub fn below_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score <= self.min
        } else {
            score < self.min
        }
    }

    /// Whether `score` is not past the range's end.
    pub fn within_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }
}

/// One end of a lex range.
#[derive(Clone, Debug)]
pub enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    /// Redis's `zslParseLexRangeItem`.
    fn parse(arg: &Bytes) -> Option<LexBound> {
        let alone = matches!(arg.get(1), None | Some(0));
        match arg.first() {
            Some(b'+') if alone => Some(LexBound::Max),
            Some(b'-') if alone => Some(LexBound::Min),
            Some(b'(') => Some(LexBound::Exclusive(arg.slice(1..))),
            Some(b'[') => Some(LexBound::Inclusive(arg.slice(1..))),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    pub fn parse(min: &Bytes, max: &Bytes) -> Option<LexRange> {
        Some(LexRange { min: LexBound::parse(min)?, max: LexBound::parse(max)? })
    }

    /// Whether `member` sorts before the range.
    pub fn below_min(&self, member: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(v) => member < v.as_ref(),
            LexBound::Exclusive(v) => member <= v.as_ref(),
        }
    }

    /// Whether `member` is not past the range's end.
    pub fn within_max(&self, member: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(v) => member <= v.as_ref(),
            LexBound::Exclusive(v) => member < v.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_scores_follow_get_double_from_object() {
        assert_eq!(strict_f64(b"1.5"), Some(1.5));
        assert_eq!(strict_f64(b"0x10"), Some(16.0));
        assert_eq!(strict_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strict_f64(b"1e-320").map(|v| v > 0.0), Some(true));
        assert_eq!(strict_f64(b".5"), Some(0.5));
        assert_eq!(strict_f64(b"5."), Some(5.0));
        for bad in [&b""[..], b" 1", b"1 ", b"1e400", b"1e-400", b"nan", b"abc", b"1x", b"--1", b"e5"] {
            assert_eq!(strict_f64(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn range_bounds_follow_zsl_parse_range() {
        let r = ScoreRange::parse(b"", b"(").unwrap();
        assert_eq!((r.min, r.min_exclusive, r.max, r.max_exclusive), (0.0, false, 0.0, true));
        let r = ScoreRange::parse(b" 1", b"1e400").unwrap();
        assert_eq!((r.min, r.max), (1.0, f64::INFINITY));
        assert_eq!(ScoreRange::parse(b"0x1p-2", b"+inf").unwrap().min, 0.25);
        assert!(ScoreRange::parse(b"nan", b"1").is_none());
        assert!(ScoreRange::parse(b"1 ", b"1").is_none());
        assert!(ScoreRange::parse(b"a", b"1").is_none());
    }

    #[test]
    fn lex_items_need_a_prefix() {
        assert!(LexRange::parse(&Bytes::from_static(b"-"), &Bytes::from_static(b"+")).is_some());
        assert!(LexRange::parse(&Bytes::from_static(b"a"), &Bytes::from_static(b"+")).is_none());
        assert!(LexRange::parse(&Bytes::from_static(b"[a"), &Bytes::from_static(b"+x")).is_none());
        assert!(LexRange::parse(&Bytes::from_static(b""), &Bytes::from_static(b"+")).is_none());
    }
}

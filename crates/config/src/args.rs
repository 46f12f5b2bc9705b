//! Splitting a configuration line into arguments and quoting a value back,
//! with the exact rules of Redis's `sdssplitargs` and `sdscatrepr`.
//!
//! This module knows nothing about directives; it only turns bytes into
//! argument vectors and back.

/// A line's quotes are unbalanced, or a closing quote is glued to more text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnbalancedQuotes;

/// Splits `line` into arguments like Redis's `sdssplitargs`.
///
/// Arguments are separated by whitespace. Inside double quotes, `\n \r \t \b
/// \a`, `\\`, `\"` and `\xHH` are escapes (any other `\c` is `c`); inside
/// single quotes only `\'` is. A closing quote must be followed by whitespace
/// or the end of the line. A NUL byte ends the line, as in C.
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    // C sees the line up to its first NUL; reading 0 past the end mirrors the
    // terminator.
    let end = line.iter().position(|&b| b == 0).unwrap_or(line.len());
    let line = &line[..end];
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_c_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\' && at(p + 1) == b'x' && is_hex(at(p + 2)) && is_hex(at(p + 3)) {
                    current.push(hex_value(at(p + 2)) * 16 + hex_value(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    other => current.push(other),
                }
            }
            p += 1;
        }
        args.push(current);
    }
}

/// Quotes `bytes` like Redis's `sdscatrepr`: double quotes around, `\\`,
/// `\"`, `\n \r \t \a \b` escaped, other unprintable bytes as `\xHH`.
pub(crate) fn repr(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(line: &str, expected: &[&[u8]]) {
        let got = split_args(line.as_bytes()).expect("line should split");
        let expected: Vec<Vec<u8>> = expected.iter().map(|a| a.to_vec()).collect();
        assert_eq!(got, expected, "splitting {line:?}");
    }

    #[test]
    fn plain_words_split_on_whitespace() {
        check("port 6379", &[b"port", b"6379"]);
        check("  save   900\t1  ", &[b"save", b"900", b"1"]);
        check("", &[]);
        check("   ", &[]);
    }

    #[test]
    fn double_quotes_understand_escapes() {
        check(r#"a "b c""#, &[b"a", b"b c"]);
        check(r#""\n\r\t\b\a\\\"\q""#, &[b"\n\r\t\x08\x07\\\"q"]);
        check(r#""\x41\x4a\x4G""#, &[b"AJx4G"]);
        check(r#""""#, &[b""]);
    }

    #[test]
    fn single_quotes_only_escape_a_single_quote() {
        check(r"'a\'b'", &[b"a'b"]);
        check(r"'a\nb'", &[b"a\\nb"]);
    }

    #[test]
    fn quotes_can_start_in_the_middle_of_a_word() {
        check(r#"ab"c d""#, &[b"abc d"]);
    }

    #[test]
    fn unbalanced_or_glued_quotes_are_errors() {
        assert_eq!(split_args(br#"port "abc"#), Err(UnbalancedQuotes));
        assert_eq!(split_args(br#""a"b"#), Err(UnbalancedQuotes));
        assert_eq!(split_args(b"'a'b"), Err(UnbalancedQuotes));
        assert_eq!(split_args(b"'abc"), Err(UnbalancedQuotes));
    }

    #[test]
    fn a_nul_byte_ends_the_line() {
        check("a b\0c", &[b"a", b"b"]);
    }

    #[test]
    fn repr_quotes_and_escapes() {
        assert_eq!(repr(b"dump.rdb"), r#""dump.rdb""#);
        assert_eq!(repr(b"a b\"c"), r#""a b\"c""#);
        assert_eq!(repr(b"\n\\\x01\xff"), r#""\n\\\x01\xff""#);
        assert_eq!(repr(b""), r#""""#);
    }

    proptest! {
        #[test]
        fn repr_splits_back_to_the_same_bytes(value in proptest::collection::vec(1u8.., 0..32)) {
            let line = repr(&value);
            prop_assert_eq!(split_args(line.as_bytes()), Ok(vec![value]));
        }
    }
}

//! Splitting an inline request line into arguments, as Redis's `sdssplitargs` does.
//!
//! The rules, all from sds.c:
//! - Blanks between arguments are C `isspace` bytes: space, `\t`, `\n`, `\v`, `\f`, `\r`.
//!   An unquoted argument ends only at space, `\t`, `\n`, `\r` or the end, so `a\vb` is one
//!   argument while a leading `\v` is skipped.
//! - `"..."` understands `\n \r \t \b \a`, `\xHH` (two hex digits) and `\<any>` for that byte;
//!   `\x` without two hex digits is a plain `x`.
//! - `'...'` understands only `\'`.
//! - A quote may start in the middle of an argument (`a"b c"` is `ab c`), but a closing quote
//!   must be followed by a blank or the end, and an unterminated quote is an error.
//! - A NUL byte ends the line, as it ends a C string. (The decoder never passes one: Redis's
//!   `strchr` stops at NUL before it finds the newline.)
//!
//! It does not know about commands; an empty line gives no arguments.

use std::ops::Range;

/// Redis's `sdscatrepr`: `bytes` double-quoted, with `\\`, `\"`, `\n \r \t \a \b` escaped
/// and other unprintable bytes as `\xHH`, so that [`split_args`] reads it back.
pub fn quote(bytes: &[u8]) -> String {
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

/// Splits `line` (without its newline) like Redis's `sdssplitargs`.
///
/// `None` means unbalanced quotes: the request gets `ERR Protocol error: unbalanced quotes in
/// request`.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let tokens = split_tokens(line)?;
    Some(
        tokens
            .into_iter()
            .map(|token| match token {
                Token::Raw(range) => line[range].to_vec(),
                Token::Owned(bytes) => bytes,
            })
            .collect(),
    )
}

/// One argument: a plain range of the line when it had no quotes (so the decoder can slice
/// the buffer instead of copying), or the unescaped bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Token {
    Raw(Range<usize>),
    Owned(Vec<u8>),
}

/// C's `isspace` in the "C" locale, which is the one Redis runs `sdssplitargs` under.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn split_tokens(line: &[u8]) -> Option<Vec<Token>> {
    // The C code walks a NUL-terminated string: reading at or past the end yields 0.
    let end = memchr::memchr(0, line).unwrap_or(line.len());
    let line = &line[..end];
    let at = |index: usize| line.get(index).copied().unwrap_or(0);

    let mut tokens = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_c_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(tokens);
        }

        let start = p;
        // `None` while the argument is still a plain slice of the line.
        let mut owned: Option<Vec<u8>> = None;
        let mut in_double_quotes = false;
        let mut in_single_quotes = false;
        loop {
            let byte = at(p);
            if in_double_quotes {
                let buffer = owned.get_or_insert_with(Vec::new);
                if byte == b'\\' && at(p + 1) == b'x' {
                    if let (Some(high), Some(low)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        buffer.push(high * 16 + low);
                        p += 4;
                        continue;
                    }
                }
                if byte == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    buffer.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => b'\x08',
                        b'a' => b'\x07',
                        other => other,
                    });
                } else if byte == b'"' {
                    // The closing quote must be followed by a blank or the end.
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if byte == 0 {
                    return None;
                } else {
                    buffer.push(byte);
                }
                p += 1;
            } else if in_single_quotes {
                let buffer = owned.get_or_insert_with(Vec::new);
                if byte == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    buffer.push(b'\'');
                } else if byte == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if byte == 0 {
                    return None;
                } else {
                    buffer.push(byte);
                }
                p += 1;
            } else {
                match byte {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        let token = match owned {
                            Some(bytes) => Token::Owned(bytes),
                            None => Token::Raw(start..p),
                        };
                        tokens.push(token);
                        if byte != 0 {
                            p += 1;
                        }
                        owned = None;
                        break;
                    }
                    b'"' | b'\'' => {
                        // A quote in the middle of an argument continues it: copy what came
                        // before, since the result is no longer a slice of the line.
                        owned.get_or_insert_with(|| line[start..p].to_vec());
                        in_double_quotes = byte == b'"';
                        in_single_quotes = byte == b'\'';
                    }
                    other => {
                        if let Some(buffer) = owned.as_mut() {
                            buffer.push(other);
                        }
                    }
                }
                p += 1;
            }
        }
        // A quoted argument ends at its closing quote; an unquoted one was pushed above.
        if let Some(bytes) = owned {
            tokens.push(Token::Owned(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        split_args(line)
    }

    fn args(items: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
        Some(items.iter().map(|item| item.to_vec()).collect())
    }

    #[test]
    fn plain_words_split_on_blanks() {
        assert_eq!(split(b"SET  key\tvalue"), args(&[b"SET", b"key", b"value"]));
    }

    #[test]
    fn empty_and_blank_lines_give_no_arguments() {
        assert_eq!(split(b""), args(&[]));
        assert_eq!(split(b" \t\x0b\x0c\r "), args(&[]));
    }

    #[test]
    fn vertical_tab_is_skipped_between_arguments_but_not_inside_one() {
        assert_eq!(split(b"\x0b\x0cECHO a\x0bb"), args(&[b"ECHO", b"a\x0bb"]));
    }

    #[test]
    fn double_quotes_understand_escapes() {
        assert_eq!(split(br#"ECHO "\x41\x4g\n\q\r\t\b\a\\\"""#), args(&[b"ECHO", b"Ax4g\nq\r\t\x08\x07\\\""]));
    }

    #[test]
    fn single_quotes_understand_only_escaped_quote() {
        assert_eq!(split(br"ECHO 'a\'b\n'"), args(&[b"ECHO", br"a'b\n"]));
    }

    #[test]
    fn quote_inside_an_argument_continues_it() {
        assert_eq!(split(br#"ECHO a"b c""#), args(&[b"ECHO", b"ab c"]));
    }

    #[test]
    fn empty_quotes_are_an_empty_argument() {
        assert_eq!(split(br#"ECHO "" ''"#), args(&[b"ECHO", b"", b""]));
    }

    #[test]
    fn closing_quote_followed_by_a_letter_is_unbalanced() {
        assert_eq!(split(br#"ECHO "a"b"#), None);
        assert_eq!(split(br"ECHO 'a'b"), None);
        assert_eq!(split(br#"ECHO "a""b""#), None);
    }

    #[test]
    fn closing_quote_followed_by_vertical_tab_is_fine() {
        assert_eq!(split(b"ECHO \"a\"\x0b"), args(&[b"ECHO", b"a"]));
    }

    #[test]
    fn unterminated_quotes_are_unbalanced() {
        assert_eq!(split(br#"ECHO "a"#), None);
        assert_eq!(split(br"ECHO 'a"), None);
        assert_eq!(split(br#"ECHO "a\"#), None);
    }

    #[test]
    fn nul_ends_the_line_like_a_c_string() {
        assert_eq!(split(b"ECHO a\0b"), args(&[b"ECHO", b"a"]));
        assert_eq!(split(b"ECHO \"a\0\""), None);
    }

    #[test]
    fn unquoted_arguments_are_slices_of_the_line() {
        assert_eq!(split_tokens(b"GET key").unwrap(), vec![Token::Raw(0..3), Token::Raw(4..7)]);
        assert_eq!(split_tokens(b"GET k\"e\"").unwrap(), vec![Token::Raw(0..3), Token::Owned(b"ke".to_vec())]);
    }

    #[test]
    fn high_bytes_are_ordinary_characters() {
        assert_eq!(split(b"ECHO \xff\xa0\x85x"), args(&[b"ECHO", b"\xff\xa0\x85x"]));
    }
}

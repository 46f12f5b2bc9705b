//! Splitting a configuration line into arguments and quoting a value back,
//! with the exact rules of Redis's `sdssplitargs` and `sdscatrepr`.
//!
//! This module knows nothing about directives; it only turns bytes into
//! argument vectors and back.

/// A line's quotes are unbalanced, or a closing quote is glued to more text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnbalancedQuotes;

/// Splits `line` into arguments like Redis's `sdssplitargs`, with the splitter the protocol
/// uses for inline commands (`shoal_resp::split_args`): the same rules in both places.
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    shoal_resp::split_args(line).ok_or(UnbalancedQuotes)
}

/// Quotes a value so that [`split_args`] reads it back (Redis's `sdscatrepr`).
pub(crate) fn repr(bytes: &[u8]) -> String {
    shoal_resp::quote(bytes)
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

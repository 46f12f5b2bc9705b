//! Glob-style pattern matching with the exact semantics of Redis's
//! `stringmatchlen` (util.c, Redis 7.0), used by KEYS, SCAN MATCH, PSUBSCRIBE,
//! CONFIG GET and friends.
//!
//! Supported syntax:
//! - `*` matches any run of bytes (including none, except at the very start of
//!   an empty text: see below);
//! - `?` matches exactly one byte;
//! - `[abc]`, `[^abc]`, `[a-z]` (a reversed range like `[z-a]` works too) match
//!   one byte from (or, with `^`, not from) a class;
//! - `\x` matches `x` literally, outside and inside classes.
//!
//! Redis's quirks are reproduced on purpose, because replies must match Redis
//! byte for byte:
//! - The bytes of the pattern are read as C `char`, which is signed on x86-64,
//!   so in a range bytes `0x80..=0xff` sort *before* `0x00`: `[a-\xff]` is the
//!   range `\xff..=a`.
//! - An unterminated class (`[abc`) is closed by the end of the pattern, and
//!   `[^` alone matches any byte.
//! - A trailing `\` matches a literal backslash.
//! - Case folding (the `nocase` variants) is ASCII only, and does not apply to
//!   an escaped byte inside a class.
//! - A pattern never matches an empty text unless the pattern is empty too:
//!   `matches(b"*", b"")` is false. Redis's KEYS and SCAN special-case the
//!   pattern `*` (they skip matching altogether), so callers must do the same
//!   to see the empty key.
//! - Matching is protected against exponential blowup: once the part of the
//!   pattern after a `*` fails to match at every later offset, no earlier `*`
//!   retries longer matches, and recursion stops (as a non-match) beyond 1000
//!   nested `*`s.
//!
//! What this crate does not do: compile patterns ahead of time, or allocate.
//! Each call walks the pattern directly, as Redis does.

/// How many nested `*` (each one a level of recursion) are followed before a
/// match attempt is abandoned as a non-match (Redis 7.0.10+, CVE-2022-36021).
const NESTING_MAX: u32 = 1000;

/// Whether `text` matches the glob `pattern`, case-sensitively.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Matcher::new(false).run(pattern, text, 0)
}

/// Whether `text` matches the glob `pattern`, folding ASCII case.
pub fn matches_nocase(pattern: &[u8], text: &[u8]) -> bool {
    Matcher::new(true).run(pattern, text, 0)
}

/// The state shared by every level of one match attempt.
struct Matcher {
    nocase: bool,
    /// Set once the rest of the pattern after some `*` failed to match at
    /// every offset of the remaining text: then no earlier `*` can help by
    /// matching more, because that only moves the same attempt further right.
    skip_longer_matches: bool,
}

impl Matcher {
    fn new(nocase: bool) -> Self {
        Matcher { nocase, skip_longer_matches: false }
    }

    fn fold(&self, byte: u8) -> u8 {
        if self.nocase {
            byte.to_ascii_lowercase()
        } else {
            byte
        }
    }

    fn run(&mut self, pattern: &[u8], text: &[u8], nesting: u32) -> bool {
        if nesting > NESTING_MAX {
            return false;
        }
        // Redis walks a NUL-terminated string and sometimes looks one byte
        // past the end of the pattern; reading 0 there reproduces that.
        let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
        let mut p = 0;
        let mut t = 0;
        while p < pattern.len() && t < text.len() {
            match pattern[p] {
                b'*' => {
                    while at(p + 1) == b'*' {
                        p += 1;
                    }
                    if p + 1 == pattern.len() {
                        return true;
                    }
                    while t < text.len() {
                        if self.run(&pattern[p + 1..], &text[t..], nesting + 1) {
                            return true;
                        }
                        if self.skip_longer_matches {
                            return false;
                        }
                        t += 1;
                    }
                    self.skip_longer_matches = true;
                    return false;
                }
                b'?' => t += 1,
                b'[' => {
                    p += 1;
                    let negate = at(p) == b'^';
                    if negate {
                        p += 1;
                    }
                    let matched = self.class_matches(pattern, &mut p, text[t]);
                    if matched == negate {
                        return false;
                    }
                    t += 1;
                }
                byte => {
                    let mut literal = byte;
                    if byte == b'\\' && pattern.len() - p >= 2 {
                        p += 1;
                        literal = pattern[p];
                    }
                    if self.fold(literal) != self.fold(text[t]) {
                        return false;
                    }
                    t += 1;
                }
            }
            p += 1;
            if t == text.len() {
                while at(p) == b'*' {
                    p += 1;
                }
                break;
            }
        }
        p == pattern.len() && t == text.len()
    }

    /// Matches `byte` against the class whose body starts at `*p` (just after
    /// `[` or `[^`). Leaves `*p` on the closing `]`, or on the last byte of
    /// the pattern when the class is unterminated, so that the caller's
    /// advance steps past it.
    fn class_matches(&self, pattern: &[u8], p: &mut usize, byte: u8) -> bool {
        let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
        let mut matched = false;
        loop {
            let remaining = pattern.len() - *p;
            if at(*p) == b'\\' && remaining >= 2 {
                *p += 1;
                // Redis compares escaped class members exactly, even nocase.
                if pattern[*p] == byte {
                    matched = true;
                }
            } else if at(*p) == b']' {
                break;
            } else if remaining == 0 {
                *p -= 1;
                break;
            } else if remaining >= 3 && pattern[*p + 1] == b'-' {
                // C `char` is signed: compare as i8, then fold ASCII case
                // after ordering the ends, as Redis does.
                let mut start = i32::from(pattern[*p] as i8);
                let mut end = i32::from(pattern[*p + 2] as i8);
                let mut c = i32::from(byte as i8);
                if start > end {
                    std::mem::swap(&mut start, &mut end);
                }
                if self.nocase {
                    start = ascii_lower(start);
                    end = ascii_lower(end);
                    c = ascii_lower(c);
                }
                *p += 2;
                if c >= start && c <= end {
                    matched = true;
                }
            } else if self.fold(pattern[*p]) == self.fold(byte) {
                matched = true;
            }
            *p += 1;
        }
        matched
    }
}

/// C's `tolower` in the C locale, on a value from a signed `char`.
fn ascii_lower(c: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks one case-sensitive match, with a readable failure.
    fn check(pattern: &[u8], text: &[u8], expected: bool) {
        assert_eq!(matches(pattern, text), expected, "pattern {:?} against text {:?}", String::from_utf8_lossy(pattern), String::from_utf8_lossy(text));
    }

    fn check_nocase(pattern: &[u8], text: &[u8], expected: bool) {
        assert_eq!(
            matches_nocase(pattern, text),
            expected,
            "nocase pattern {:?} against text {:?}",
            String::from_utf8_lossy(pattern),
            String::from_utf8_lossy(text)
        );
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        check(b"hello", b"hello", true);
        check(b"hello", b"hell", false);
        check(b"hell", b"hello", false);
        check(b"hello", b"Hello", false);
        check(b"", b"", true);
        check(b"", b"a", false);
    }

    #[test]
    fn star_matches_any_run_of_bytes() {
        check(b"*", b"anything", true);
        check(b"h*o", b"hello", true);
        check(b"h*o", b"ho", true);
        check(b"h*o", b"hellx", false);
        check(b"*llo", b"hello", true);
        check(b"he*", b"he", true);
        check(b"a*b*c", b"aXXbYYc", true);
        check(b"a*b*c", b"aXXbYY", false);
        check(b"***a", b"xxa", true);
        check(b"a**", b"a", true);
    }

    #[test]
    fn nothing_but_an_empty_pattern_matches_an_empty_text() {
        check(b"*", b"", false);
        check(b"**", b"", false);
        check(b"?", b"", false);
        check(b"", b"", true);
    }

    #[test]
    fn question_mark_matches_exactly_one_byte() {
        check(b"h?llo", b"hello", true);
        check(b"h?llo", b"hllo", false);
        check(b"?", b"\xff", true);
        check(b"??", b"a", false);
    }

    #[test]
    fn classes_match_one_member() {
        check(b"h[ae]llo", b"hello", true);
        check(b"h[ae]llo", b"hallo", true);
        check(b"h[ae]llo", b"hillo", false);
        check(b"h[^e]llo", b"hallo", true);
        check(b"h[^e]llo", b"hello", false);
        check(b"h[a-b]llo", b"hbllo", true);
        check(b"h[a-b]llo", b"hcllo", false);
        check(b"[]", b"a", false);
        check(b"[]a]", b"]", false);
    }

    #[test]
    fn reversed_ranges_work_like_forward_ones() {
        check(b"[z-a]", b"m", true);
        check(b"[z-a]", b"A", false);
    }

    #[test]
    fn a_dash_at_the_end_of_a_class_ranges_to_the_closing_bracket() {
        // `[a-]` reads `a-]` as a range (']' is 0x5d, below 'a'), so the
        // class is left unterminated and ends with the pattern.
        check(b"[a-]", b"_", true);
        check(b"[a-]", b"-", false);
        check(b"[a-]x", b"_", true);
    }

    #[test]
    fn unterminated_classes_end_at_the_end_of_the_pattern() {
        check(b"[abc", b"b", true);
        check(b"[abc", b"d", false);
        check(b"[", b"a", false);
        check(b"[^", b"a", true);
        check(b"x[^", b"xz", true);
    }

    #[test]
    fn backslash_escapes_special_bytes() {
        check(b"\\*", b"*", true);
        check(b"\\*", b"a", false);
        check(b"\\?", b"?", true);
        check(b"\\[a]", b"[a]", true);
        check(b"[\\]]", b"]", true);
        check(b"[\\^a]", b"^", true);
        check(b"[a\\-z]", b"-", true);
        check(b"[a\\-z]", b"m", false);
    }

    #[test]
    fn a_trailing_backslash_matches_a_literal_backslash() {
        check(b"\\", b"\\", true);
        check(b"a\\", b"a\\", true);
        check(b"a\\", b"a", false);
        check(b"[\\", b"\\", true);
    }

    #[test]
    fn high_bytes_sort_below_ascii_in_ranges_as_signed_chars() {
        check(b"[a-\xff]", b"\xff", true);
        check(b"[a-\xff]", b"0", true);
        check(b"[a-\xff]", b"\x80", false);
        check(b"[a-\xff]", b"b", false);
        check(b"[\x80-\xff]", b"\x90", true);
        check(b"[\x80-\xff]", b"a", false);
    }

    #[test]
    fn nocase_folds_ascii_letters_only() {
        check_nocase(b"HeLLo", b"hello", true);
        check_nocase(b"h*O", b"HELLO", true);
        check_nocase(b"[A-C]", b"b", true);
        check_nocase(b"[a-c]", b"B", true);
        check_nocase(b"[^A]", b"a", false);
        check_nocase(b"\xc9", b"\xe9", false);
        check(b"HeLLo", b"hello", false);
    }

    #[test]
    fn nocase_does_not_fold_escaped_class_members() {
        check_nocase(b"[\\A]", b"a", false);
        check_nocase(b"[\\A]", b"A", true);
        check_nocase(b"\\A", b"a", true);
    }

    #[test]
    fn nocase_folds_range_ends_after_ordering_them() {
        // 'Z' < 'a', so the range is Z..=a, which folds to z..=a: empty.
        check_nocase(b"[Z-a]", b"z", false);
        check_nocase(b"[Z-a]", b"_", false);
        check(b"[Z-a]", b"_", true);
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = [b'a'; 4096];
        check(pattern, &text, false);
    }

    #[test]
    fn more_than_a_thousand_nested_stars_never_match() {
        let pattern = b"*a".repeat(1001);
        let text = b"a".repeat(1001);
        check(&pattern, &text, false);
        let pattern = b"*a".repeat(1000);
        check(&pattern, &text, true);
    }

    /// A textbook backtracking matcher for patterns without classes.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.first() {
            None => text.is_empty(),
            Some(b'*') => (0..=text.len()).any(|i| reference(&pattern[1..], &text[i..])),
            Some(b'?') => !text.is_empty() && reference(&pattern[1..], &text[1..]),
            Some(b'\\') if pattern.len() >= 2 => text.first() == Some(&pattern[1]) && reference(&pattern[2..], &text[1..]),
            Some(byte) => text.first() == Some(byte) && reference(&pattern[1..], &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn patterns_without_classes_agree_with_a_naive_matcher(
            pattern in proptest::collection::vec(
                prop_oneof![Just(b'*'), Just(b'?'), Just(b'\\'), Just(b'a'), Just(b'b')], 0..10),
            text in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'*')], 1..12),
        ) {
            // Redis never matches an empty text (see the crate docs), so the
            // texts here are non-empty.
            prop_assert_eq!(matches(&pattern, &text), reference(&pattern, &text));
        }

        #[test]
        fn nocase_is_matching_after_lowercasing_both_sides_without_classes(
            pattern in proptest::collection::vec(
                prop_oneof![Just(b'*'), Just(b'?'), Just(b'a'), Just(b'A'), Just(b'b')], 0..8),
            text in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'A'), Just(b'B')], 1..10),
        ) {
            let expected = matches(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase());
            prop_assert_eq!(matches_nocase(&pattern, &text), expected);
        }

        #[test]
        fn any_pattern_terminates_without_panicking(
            pattern in proptest::collection::vec(any::<u8>(), 0..24),
            text in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let _ = matches(&pattern, &text);
            let _ = matches_nocase(&pattern, &text);
        }
    }
}

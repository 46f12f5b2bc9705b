//! The reply encoder: a [`Frame`] to bytes, in RESP3 or downgraded to RESP2 as Redis does.
//!
//! The RESP2 downgrade (Redis's `addReplyMapLen`, `addReplyDouble`, `addReplyBool`, ...):
//!
//! | frame            | RESP3                      | RESP2                  |
//! |------------------|----------------------------|------------------------|
//! | `Map` of n pairs | `%n`                       | `*2n`, keys and values |
//! | `Set`            | `~n`                       | `*n`                   |
//! | `Push`           | `>n`                       | `*n`                   |
//! | `Double`         | `,1.5`, `,inf`, `,-inf`    | bulk `1.5`, `inf`      |
//! | `Boolean`        | `#t`, `#f`                 | `:1`, `:0`             |
//! | `BigNumber`      | `(123...`                  | bulk                   |
//! | `Verbatim`       | `=len`, `txt:text`         | bulk of the text only  |
//! | `Null`           | `_`                        | `$-1`                  |
//! | `NullArray`      | `_`                        | `*-1`                  |
//! | `Encoded` set    | `~n`, items as built       | `*n`                   |
//! | `Encoded` map    | `%n`, items as built       | `*2n`                  |
//!
//! An `Encoded` frame is copied as it is when the connection speaks the protocol it was built
//! for (its builder asked the connection), and re-encoded from its frames otherwise.
//!
//! It does not check that a `BigNumber` holds digits or that a `Verbatim` format is three
//! letters: the frame's builder knows what it meant.

use bytes::{BufMut, BytesMut};

use crate::encoded::{AggregateKind, Encoded};
use crate::{Frame, Protocol};

const CRLF: &[u8] = b"\r\n";

/// Appends the encoding of `frame` in `proto` to `out`.
pub fn encode(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    let start = out.len();
    encode_frame(frame, proto, out);
    debug_assert_eq!(out.len() - start, encoded_len(frame, proto), "encoded_len agrees with encode for {frame:?}");
}

/// The number of bytes [`encode`] appends for `frame` in `proto`, for reserving space and
/// for output-buffer accounting without encoding.
pub fn encoded_len(frame: &Frame, proto: Protocol) -> usize {
    match (frame, proto) {
        (Frame::Simple(text) | Frame::Error(text), _) => 1 + text.len() + 2,
        (Frame::Integer(value), _) => 1 + itoa::Buffer::new().format(*value).len() + 2,
        (Frame::Bulk(data) | Frame::BigNumber(data), Protocol::Resp2) | (Frame::Bulk(data), Protocol::Resp3) => bulk_len(data.len()),
        (Frame::Null | Frame::NullArray, Protocol::Resp3) => 3,
        (Frame::Null | Frame::NullArray, Protocol::Resp2) => 5,
        (Frame::Array(items) | Frame::Set(items) | Frame::Push(items), _) => {
            header_len(items.len()) + items.iter().map(|item| encoded_len(item, proto)).sum::<usize>()
        }
        (Frame::Map(pairs), _) => {
            let count = match proto {
                Protocol::Resp2 => pairs.len() * 2,
                Protocol::Resp3 => pairs.len(),
            };
            header_len(count) + pairs.iter().map(|(key, value)| encoded_len(key, proto) + encoded_len(value, proto)).sum::<usize>()
        }
        (Frame::Double(value), Protocol::Resp3) => 1 + DoubleText::new(*value).as_bytes().len() + 2,
        (Frame::Double(value), Protocol::Resp2) => bulk_len(DoubleText::new(*value).as_bytes().len()),
        (Frame::Boolean(_), _) => 4,
        (Frame::BigNumber(digits), Protocol::Resp3) => 1 + digits.len() + 2,
        (Frame::Verbatim { text, .. }, Protocol::Resp3) => bulk_len(text.len() + 4),
        (Frame::Verbatim { text, .. }, Protocol::Resp2) => bulk_len(text.len()),
        (Frame::Encoded(encoded), _) if encoded.proto() == proto => header_len(encoded_count(encoded, proto)) + encoded.bytes().len(),
        (Frame::Encoded(encoded), _) => encoded_len(&encoded.to_frame(), proto),
    }
}

/// The count in an `Encoded` frame's header: a RESP2 map is a flat array of keys and values.
fn encoded_count(encoded: &Encoded, proto: Protocol) -> usize {
    match (encoded.aggregate(), proto) {
        (AggregateKind::Map, Protocol::Resp2) => encoded.len() * 2,
        _ => encoded.len(),
    }
}

/// Appends a request, an array of bulk strings, as a client sends it.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    put_header(out, b'*', args.len());
    for arg in args {
        put_bulk(out, arg.as_ref());
    }
}

/// Formats a double as Redis 7.0's `addReplyDouble` does, for both `,` (RESP3) and the bulk
/// string of RESP2: `inf` and `-inf` spelled out, otherwise C's `%.17g`
/// (`0.1` is `0.10000000000000001`, `1e300` is `1.0000000000000001e+300`, `-0.0` is `-0`).
/// A NaN is `nan` or `-nan` by its sign bit, as glibc prints it; Redis never replies with one.
///
/// Not for `INCRBYFLOAT` and `HINCRBYFLOAT`: Redis computes those in `long double` and
/// replies with `%.17Lf` with trailing zeros removed (`ld2string` in human mode), which an
/// `f64` cannot reproduce.
pub fn format_double(value: f64) -> String {
    DoubleText::new(value).as_str().to_string()
}

/// [`format_double`]'s text in a buffer on the stack, for replies that format many scores.
pub struct DoubleText {
    buffer: [u8; DoubleText::LEN_MAX],
    len: usize,
}

impl DoubleText {
    /// The longest `%.17g` text: a sign, 17 digits, a point and `e-308`, or `-0.000` and 17
    /// digits; with room to spare.
    const LEN_MAX: usize = 32;

    pub fn new(value: f64) -> DoubleText {
        let mut text = DoubleText { buffer: [0; Self::LEN_MAX], len: 0 };
        if value.is_nan() {
            text.push_str(if value.is_sign_negative() { "-nan" } else { "nan" });
        } else if value.is_infinite() {
            text.push_str(if value > 0.0 { "inf" } else { "-inf" });
        } else if value == 0.0 {
            text.push_str(if value.is_sign_negative() { "-0" } else { "0" });
        } else if value.fract() == 0.0 && value.abs() < 1e17 {
            // An integer of at most 17 digits: `%.17g` prints it exactly, in `%f` style with
            // no fraction left after the zeros are removed. Scores are often integers.
            text.push_str(itoa::Buffer::new().format(value as i64));
        } else {
            text.format_g17(value);
        }
        text
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buffer[..self.len]).expect("a formatted double is ASCII")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    fn push(&mut self, byte: u8) {
        self.buffer[self.len] = byte;
        self.len += 1;
    }

    fn push_str(&mut self, text: &str) {
        self.buffer[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
        self.len += text.len();
    }

    /// C's `%.17g`: 17 significant digits, correctly rounded (Rust's `{:.16e}` rounds the exact
    /// binary value half to even, as glibc does), then `%e` style if the decimal exponent is
    /// below -4 or at least 17, else `%f` style, with trailing zeros and a bare point removed.
    fn format_g17(&mut self, value: f64) {
        use std::io::Write;
        let mut scratch = [0u8; Self::LEN_MAX];
        let written = {
            let mut cursor = std::io::Cursor::new(&mut scratch[..]);
            write!(cursor, "{value:.16e}").expect("a double's %e text fits the buffer");
            cursor.position() as usize
        };
        let scientific = std::str::from_utf8(&scratch[..written]).expect("formatted text is ASCII");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let mantissa = match mantissa.strip_prefix('-') {
            Some(rest) => {
                self.push(b'-');
                rest
            }
            None => mantissa,
        };
        self.push_g17_digits(mantissa, exponent);
    }

    /// The digits of an unsigned `d.dddd` mantissa laid out for `exponent`, as `%.17g` does.
    fn push_g17_digits(&mut self, mantissa: &str, exponent: i32) {
        const PRECISION: i32 = 17;
        let mut digits = [0u8; PRECISION as usize];
        let mut count = 0;
        for digit in mantissa.bytes().filter(u8::is_ascii_digit) {
            digits[count] = digit;
            count += 1;
        }
        debug_assert_eq!(count, PRECISION as usize, "{mantissa} has 17 significant digits");
        if !(-4..PRECISION).contains(&exponent) {
            self.push(digits[0]);
            self.push_fraction(&digits[1..]);
            self.push(b'e');
            self.push(if exponent < 0 { b'-' } else { b'+' });
            let magnitude = exponent.unsigned_abs();
            if magnitude < 10 {
                self.push(b'0');
            }
            self.push_str(itoa::Buffer::new().format(magnitude));
        } else if exponent >= 0 {
            let integer_len = exponent as usize + 1;
            digits[..integer_len].iter().for_each(|&digit| self.push(digit));
            self.push_fraction(&digits[integer_len..]);
        } else {
            // 0.000ddd: the leading zeros are part of the fraction.
            self.push(b'0');
            let kept = digits.iter().rposition(|&digit| digit != b'0').map_or(0, |last| last + 1);
            self.push(b'.');
            (0..-exponent - 1).for_each(|_| self.push(b'0'));
            digits[..kept].iter().for_each(|&digit| self.push(digit));
        }
    }

    /// Appends `.digits` without trailing zeros, or nothing if only zeros remain.
    fn push_fraction(&mut self, digits: &[u8]) {
        let kept = digits.iter().rposition(|&digit| digit != b'0').map_or(0, |last| last + 1);
        if kept > 0 {
            self.push(b'.');
            digits[..kept].iter().for_each(|&digit| self.push(digit));
        }
    }
}

fn decimal_len(value: usize) -> usize {
    itoa::Buffer::new().format(value).len()
}

/// `<type><count>\r\n`.
fn header_len(count: usize) -> usize {
    1 + decimal_len(count) + 2
}

fn bulk_len(data_len: usize) -> usize {
    header_len(data_len) + data_len + 2
}

fn put_header(out: &mut BytesMut, kind: u8, count: usize) {
    out.put_u8(kind);
    out.put_slice(itoa::Buffer::new().format(count).as_bytes());
    out.put_slice(CRLF);
}

/// A bulk string appended to a `Vec`, for [`Encoded`]'s builder.
pub(crate) fn put_bulk_vec(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(bulk_len(data.len()));
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(data);
    out.extend_from_slice(CRLF);
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(bulk_len(data.len()));
    put_header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(CRLF);
}

/// A simple string or error line. A CR or LF inside would end the line early and desync the
/// client, so each becomes a space, as Redis's `addReplyErrorFormat` does.
fn put_line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(1 + text.len() + 2);
    out.put_u8(kind);
    if memchr::memchr2(b'\r', b'\n', text).is_none() {
        out.put_slice(text);
    } else {
        out.extend(text.iter().map(|&byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }));
    }
    out.put_slice(CRLF);
}

fn encode_frame(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    match frame {
        Frame::Simple(text) => put_line(out, b'+', text),
        Frame::Error(text) => put_line(out, b'-', text),
        Frame::Integer(value) => {
            out.put_u8(b':');
            out.put_slice(itoa::Buffer::new().format(*value).as_bytes());
            out.put_slice(CRLF);
        }
        Frame::Bulk(data) => put_bulk(out, data),
        Frame::Null => match proto {
            Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
            Protocol::Resp3 => out.put_slice(b"_\r\n"),
        },
        Frame::NullArray => match proto {
            Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
            Protocol::Resp3 => out.put_slice(b"_\r\n"),
        },
        Frame::Array(items) => put_aggregate(out, b'*', items, proto),
        Frame::Set(items) => {
            let kind = match proto {
                Protocol::Resp2 => b'*',
                Protocol::Resp3 => b'~',
            };
            put_aggregate(out, kind, items, proto);
        }
        Frame::Push(items) => {
            let kind = match proto {
                Protocol::Resp2 => b'*',
                Protocol::Resp3 => b'>',
            };
            put_aggregate(out, kind, items, proto);
        }
        Frame::Map(pairs) => {
            match proto {
                Protocol::Resp2 => put_header(out, b'*', pairs.len() * 2),
                Protocol::Resp3 => put_header(out, b'%', pairs.len()),
            }
            for (key, value) in pairs {
                encode_frame(key, proto, out);
                encode_frame(value, proto, out);
            }
        }
        Frame::Double(value) => {
            let text = DoubleText::new(*value);
            match proto {
                Protocol::Resp2 => put_bulk(out, text.as_bytes()),
                Protocol::Resp3 => {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(CRLF);
                }
            }
        }
        Frame::Boolean(value) => match (proto, value) {
            (Protocol::Resp2, true) => out.put_slice(b":1\r\n"),
            (Protocol::Resp2, false) => out.put_slice(b":0\r\n"),
            (Protocol::Resp3, true) => out.put_slice(b"#t\r\n"),
            (Protocol::Resp3, false) => out.put_slice(b"#f\r\n"),
        },
        Frame::BigNumber(digits) => match proto {
            Protocol::Resp2 => put_bulk(out, digits),
            Protocol::Resp3 => {
                out.put_u8(b'(');
                out.put_slice(digits);
                out.put_slice(CRLF);
            }
        },
        Frame::Verbatim { format, text } => match proto {
            Protocol::Resp2 => put_bulk(out, text),
            Protocol::Resp3 => {
                put_header(out, b'=', text.len() + 4);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(CRLF);
            }
        },
        Frame::Encoded(encoded) if encoded.proto() == proto => {
            let kind = match (encoded.aggregate(), proto) {
                (AggregateKind::Array, _) | (_, Protocol::Resp2) => b'*',
                (AggregateKind::Set, Protocol::Resp3) => b'~',
                (AggregateKind::Map, Protocol::Resp3) => b'%',
            };
            out.reserve(header_len(encoded_count(encoded, proto)) + encoded.bytes().len());
            put_header(out, kind, encoded_count(encoded, proto));
            out.put_slice(encoded.bytes());
        }
        Frame::Encoded(encoded) => encode_frame(&encoded.to_frame(), proto, out),
    }
}

fn put_aggregate(out: &mut BytesMut, kind: u8, items: &[Frame], proto: Protocol) {
    put_header(out, kind, items.len());
    for item in items {
        encode_frame(item, proto, out);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn encoded(frame: &Frame, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(frame, proto, &mut out);
        assert_eq!(out.len(), encoded_len(frame, proto), "encoded_len of {frame:?}");
        out.to_vec()
    }

    fn both(frame: Frame, resp2: &[u8], resp3: &[u8]) {
        assert_eq!(encoded(&frame, Protocol::Resp2), resp2, "RESP2 of {frame:?}");
        assert_eq!(encoded(&frame, Protocol::Resp3), resp3, "RESP3 of {frame:?}");
    }

    #[test]
    fn scalar_frames_encode_as_in_redis() {
        both(Frame::ok(), b"+OK\r\n", b"+OK\r\n");
        both(Frame::error("ERR unknown command"), b"-ERR unknown command\r\n", b"-ERR unknown command\r\n");
        both(Frame::Integer(-42), b":-42\r\n", b":-42\r\n");
        both(Frame::Integer(i64::MIN), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n");
        both(Frame::bulk("foo"), b"$3\r\nfoo\r\n", b"$3\r\nfoo\r\n");
        both(Frame::bulk(""), b"$0\r\n\r\n", b"$0\r\n\r\n");
    }

    #[test]
    fn nulls_downgrade_to_minus_one_lengths() {
        both(Frame::Null, b"$-1\r\n", b"_\r\n");
        both(Frame::NullArray, b"*-1\r\n", b"_\r\n");
    }

    #[test]
    fn map_downgrades_to_flat_array() {
        let map = Frame::Map(vec![(Frame::bulk("maxmemory"), Frame::bulk("0")), (Frame::bulk("a"), Frame::Integer(1))]);
        both(map, b"*4\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$1\r\na\r\n:1\r\n", b"%2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn set_and_push_downgrade_to_array() {
        both(Frame::Set(vec![]), b"*0\r\n", b"~0\r\n");
        both(Frame::Push(vec![Frame::bulk("message"), Frame::Integer(1)]), b"*2\r\n$7\r\nmessage\r\n:1\r\n", b">2\r\n$7\r\nmessage\r\n:1\r\n");
    }

    #[test]
    fn double_downgrades_to_bulk_in_percent_17g() {
        both(Frame::Double(0.1), b"$19\r\n0.10000000000000001\r\n", b",0.10000000000000001\r\n");
        both(Frame::Double(2.5), b"$3\r\n2.5\r\n", b",2.5\r\n");
        both(Frame::Double(100.0), b"$3\r\n100\r\n", b",100\r\n");
        both(Frame::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
        both(Frame::Double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n", b",-inf\r\n");
        both(Frame::Double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
    }

    #[test]
    fn boolean_downgrades_to_integer() {
        both(Frame::Boolean(true), b":1\r\n", b"#t\r\n");
        both(Frame::Boolean(false), b":0\r\n", b"#f\r\n");
    }

    #[test]
    fn big_number_downgrades_to_bulk() {
        let digits = "1234567999999999999999999999999999999";
        both(Frame::BigNumber(Bytes::from_static(digits.as_bytes())), format!("$37\r\n{digits}\r\n").as_bytes(), format!("({digits}\r\n").as_bytes());
    }

    #[test]
    fn verbatim_downgrades_to_bulk_of_the_text() {
        let frame = Frame::Verbatim { format: *b"txt", text: Bytes::from_static(b"This is a verbatim\nstring") };
        both(frame, b"$25\r\nThis is a verbatim\nstring\r\n", b"=29\r\ntxt:This is a verbatim\nstring\r\n");
        let frame = Frame::Verbatim { format: *b"txt", text: Bytes::from_static(b"Some string") };
        both(frame, b"$11\r\nSome string\r\n", b"=15\r\ntxt:Some string\r\n");
    }

    #[test]
    fn nested_aggregates_encode_depth_first() {
        let frame = Frame::Array(vec![Frame::Array(vec![Frame::bulk("c"), Frame::Double(f64::NEG_INFINITY)]), Frame::NullArray]);
        both(frame, b"*2\r\n*2\r\n$1\r\nc\r\n$4\r\n-inf\r\n*-1\r\n", b"*2\r\n*2\r\n$1\r\nc\r\n,-inf\r\n_\r\n");
    }

    #[test]
    fn newlines_inside_simple_and_error_become_spaces() {
        both(Frame::error("ERR bad\r\nthing"), b"-ERR bad  thing\r\n", b"-ERR bad  thing\r\n");
        both(Frame::simple("a\nb"), b"+a b\r\n", b"+a b\r\n");
    }

    #[test]
    fn encode_appends_to_what_is_there() {
        let mut out = BytesMut::from(&b"+OK\r\n"[..]);
        encode(&Frame::Integer(1), Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"+OK\r\n:1\r\n");
    }

    #[test]
    fn encode_request_writes_an_array_of_bulks() {
        let mut out = BytesMut::new();
        encode_request(&["SET", "k", ""], &mut out);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn format_double_matches_redis_replies() {
        // Read from redis-server 7.0.15 (ZSCORE after ZADD), except -0.0, which ZADD turns
        // into 0; glibc prints it `-0`.
        for (value, text) in [
            (0.1, "0.10000000000000001"),
            (1e300, "1.0000000000000001e+300"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1.5e-7, "1.4999999999999999e-07"),
            (100.0, "100"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.3, "0.29999999999999999"),
            (2.5, "2.5"),
            (-7.0, "-7"),
            (99999999999999984.0, "99999999999999984"),
            (1e17, "1e+17"),
            (-1e17, "-1e+17"),
        ] {
            assert_eq!(format_double(value), text, "{value:e}");
        }
    }

    #[test]
    fn format_double_switches_to_exponent_form_at_17_digits_and_below_1e_minus_4() {
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(f64::MIN_POSITIVE * f64::EPSILON), "4.9406564584124654e-324");
        assert_eq!(format_double(f64::MAX), "1.7976931348623157e+308");
    }

    #[test]
    fn format_double_rounds_ties_to_even_like_glibc() {
        // Exactly 1000000000000000.25 and .75: the 18th significant digit is a tie.
        assert_eq!(format_double((4e15 + 1.0) / 4.0), "1000000000000000.2");
        assert_eq!(format_double((4e15 + 3.0) / 4.0), "1000000000000000.8");
    }

    /// glibc's own `%.17g`, the reference `format_double` must equal.
    fn libc_g17(value: f64) -> String {
        let mut buffer = [0u8; 64];
        // SAFETY: the buffer is large enough for any %.17g output and its size is passed;
        // the format takes exactly one double.
        let len = unsafe { libc::snprintf(buffer.as_mut_ptr().cast(), buffer.len(), c"%.17g".as_ptr(), value) };
        let len = usize::try_from(len).expect("snprintf succeeds");
        String::from_utf8(buffer[..len].to_vec()).expect("printf output is ASCII")
    }

    proptest::proptest! {
        #[test]
        fn format_double_equals_libc_for_any_bit_pattern(bits in proptest::prelude::any::<u64>()) {
            let value = f64::from_bits(bits);
            if value.is_finite() {
                proptest::prop_assert_eq!(format_double(value), libc_g17(value));
            }
        }

        #[test]
        fn format_double_equals_libc_for_integers(value in -200_000_000_000_000_000i64..200_000_000_000_000_000, shift in 0u32..50) {
            for value in [value as f64, (value >> shift) as f64, (value >> shift) as f64 + 0.5] {
                proptest::prop_assert_eq!(format_double(value), libc_g17(value));
            }
        }

        #[test]
        fn format_double_equals_libc_for_short_decimals(mantissa in -1_000_000i64..1_000_000, exponent in -30i32..30) {
            let value: f64 = format!("{mantissa}e{exponent}").parse().unwrap();
            proptest::prop_assert_eq!(format_double(value), libc_g17(value));
        }
    }
}

//! Property tests of the decoder and encoder: round trips, chunking, and arbitrary bytes.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use shoal_resp::fuzz_support::{check_chunking, decode_in_chunks, SMALL_LIMITS};
use shoal_resp::{encode, DecodeLimits, Frame, Protocol, RequestDecoder};

/// One request as a client may write it.
#[derive(Debug, Clone)]
enum Written {
    Multibulk(Vec<Vec<u8>>),
    /// Every argument double-quoted, bytes that need it escaped; `crlf` picks the line end.
    Inline {
        args: Vec<Vec<u8>>,
        crlf: bool,
    },
    /// `*0`, `*-1` or a blank line: skipped by the decoder.
    Empty(&'static [u8]),
}

impl Written {
    fn expected(&self) -> Option<Vec<Bytes>> {
        match self {
            Written::Multibulk(args) | Written::Inline { args, .. } => Some(args.iter().map(|arg| Bytes::copy_from_slice(arg)).collect()),
            Written::Empty(_) => None,
        }
    }

    fn write(&self, out: &mut BytesMut) {
        match self {
            Written::Multibulk(args) => shoal_resp::encode_request(args, out),
            Written::Inline { args, crlf } => {
                let mut line = Vec::new();
                for (index, arg) in args.iter().enumerate() {
                    if index > 0 {
                        line.push(b' ');
                    }
                    line.push(b'"');
                    for &byte in arg {
                        if byte.is_ascii_alphanumeric() || byte == b' ' {
                            line.push(byte);
                        } else if byte == b'"' || byte == b'\\' {
                            line.extend_from_slice(&[b'\\', byte]);
                        } else {
                            line.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
                        }
                    }
                    line.push(b'"');
                }
                line.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                out.extend_from_slice(&line);
            }
            Written::Empty(bytes) => out.extend_from_slice(bytes),
        }
    }
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..40)
}

fn written() -> impl Strategy<Value = Written> {
    prop_oneof![
        4 => vec(arg(), 1..6).prop_map(Written::Multibulk),
        2 => (vec(arg(), 1..6), any::<bool>()).prop_map(|(args, crlf)| Written::Inline { args, crlf }),
        1 => prop_oneof![Just(&b"*0\r\n"[..]), Just(&b"*-1\r\n"[..]), Just(&b"\r\n"[..]), Just(&b"  \t\n"[..])]
            .prop_map(Written::Empty),
    ]
}

fn decode_stream(input: &[u8], chunk_len: usize) -> Vec<Vec<Bytes>> {
    let outcome = decode_in_chunks(DecodeLimits::default(), input, std::iter::repeat(chunk_len));
    assert_eq!(outcome.error, None, "a valid stream has no protocol error");
    assert_eq!(outcome.leftover_len, 0, "a valid stream is consumed whole");
    assert!(!outcome.partial, "a valid stream ends between requests");
    outcome.requests
}

/// Bytes that steer the decoder: type bytes, terminators, quotes, escapes, digits, NUL.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b'*'),
        Just(b'$'),
        Just(b'\r'),
        Just(b'\n'),
        Just(b'\0'),
        Just(b'"'),
        Just(b'\''),
        Just(b'\\'),
        Just(b'x'),
        Just(b' '),
        Just(b'-'),
        b'0'..=b'9',
        any::<u8>(),
    ]
}

proptest! {
    #[test]
    fn encoded_array_of_bulks_decodes_to_the_same_arguments(args in vec(arg(), 1..10), resp3 in any::<bool>()) {
        let frame = Frame::Array(args.iter().map(|arg| Frame::bulk(arg.clone())).collect());
        let mut buf = BytesMut::new();
        encode(&frame, if resp3 { Protocol::Resp3 } else { Protocol::Resp2 }, &mut buf);
        let decoded = RequestDecoder::default().decode(&mut buf).unwrap();
        let expected: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(decoded, Some(expected));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn valid_stream_fed_byte_by_byte_gives_the_requests_fed_whole(requests in vec(written(), 0..12), chunk_len in 2usize..64) {
        let mut input = BytesMut::new();
        for request in &requests {
            request.write(&mut input);
        }
        let expected: Vec<Vec<Bytes>> = requests.iter().filter_map(Written::expected).collect();
        prop_assert_eq!(&decode_stream(&input, input.len().max(1)), &expected);
        prop_assert_eq!(&decode_stream(&input, 1), &expected);
        prop_assert_eq!(&decode_stream(&input, chunk_len), &expected);
    }

    /// Requests whose sizes cross the fast path's bounds (16 arguments, 256 bytes each) and
    /// the small limits (8 arguments, 64 bytes): whole requests in the buffer take the fast
    /// path where they can, byte-by-byte ones never do, and both must agree.
    #[test]
    fn requests_around_the_fast_paths_bounds_decode_as_the_general_path_does(
        requests in vec(vec(prop_oneof![8 => 0usize..4, 1 => 62usize..67, 1 => 254usize..259], 1..20), 1..4),
        small in any::<bool>(),
    ) {
        let mut input = BytesMut::new();
        for (index, lens) in requests.iter().enumerate() {
            let args: Vec<Vec<u8>> = lens.iter().map(|&len| vec![b'a' + index as u8; len]).collect();
            shoal_resp::encode_request(&args, &mut input);
        }
        check_chunking(if small { SMALL_LIMITS } else { DecodeLimits::default() }, &input, [input.len()]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_agrees(input in vec(any::<u8>(), 0..512), chunk_len in 1usize..32, small in any::<bool>()) {
        let limits = if small { SMALL_LIMITS } else { DecodeLimits::default() };
        check_chunking(limits, &input, std::iter::repeat(chunk_len));
    }

    #[test]
    fn protocol_shaped_bytes_never_panic_and_chunking_agrees(input in vec(interesting_byte(), 0..256), chunk_len in 1usize..16) {
        check_chunking(SMALL_LIMITS, &input, std::iter::repeat(chunk_len));
        check_chunking(DecodeLimits::default(), &input, std::iter::repeat(chunk_len));
    }

    #[test]
    fn corrupted_valid_stream_never_panics(
        requests in vec(written(), 1..6),
        flips in vec((any::<prop::sample::Index>(), interesting_byte()), 1..4),
        chunk_len in 1usize..16,
    ) {
        let mut input = BytesMut::new();
        for request in &requests {
            request.write(&mut input);
        }
        let mut input = input.to_vec();
        for (index, byte) in flips {
            let at = index.index(input.len());
            input[at] = byte;
        }
        check_chunking(SMALL_LIMITS, &input, std::iter::repeat(chunk_len));
        check_chunking(DecodeLimits::default(), &input, std::iter::repeat(chunk_len));
    }
}

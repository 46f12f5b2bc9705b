//! The decoder checks shared by the cargo-fuzz target (`fuzz/fuzz_targets/resp_decode.rs`),
//! the stable-Rust smoke run (`tests/fuzz_smoke.rs`) and the property tests.
//!
//! Not part of the API: hidden from the docs, and free to change with the tests.

use bytes::{Bytes, BytesMut};

use crate::{encode_request, DecodeLimits, ProtocolError, RequestDecoder};

/// Small limits, so that short inputs reach the "too big" and "invalid length" paths.
pub const SMALL_LIMITS: DecodeLimits = DecodeLimits { bulk_len_max: 64, inline_len_max: 32, multibulk_len_max: 8 };

/// What feeding one input produced.
#[derive(Debug)]
pub struct Outcome {
    pub requests: Vec<Vec<Bytes>>,
    pub error: Option<ProtocolError>,
    /// Bytes left in the buffer at the end.
    pub leftover_len: usize,
    /// Whether the decoder was inside a multibulk request at the end.
    pub partial: bool,
}

/// Feeds `input` to a fresh decoder in chunks of the given lengths (the last chunk takes the
/// rest), decoding after each chunk until it needs more bytes, and checks the decoder's
/// invariants on the way. Stops at the first protocol error, as a connection would.
pub fn decode_in_chunks(limits: DecodeLimits, input: &[u8], chunk_lens: impl IntoIterator<Item = usize>) -> Outcome {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    let mut chunk_lens = chunk_lens.into_iter();
    while fed < input.len() {
        let chunk_len = chunk_lens.next().unwrap_or(input.len()).clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + chunk_len]);
        fed += chunk_len;
        loop {
            let before_len = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "a request has at least one argument");
                    assert!(buf.len() < before_len, "a request consumes bytes");
                    requests.push(args);
                }
                Ok(None) => {
                    // What waits is a line not yet terminated (bounded by the inline limit
                    // before this chunk came), a line whose CR is the last byte, or part of a
                    // bulk argument (bounded by the bulk limit).
                    let bound = (limits.inline_len_max.saturating_add(chunk_len)).max(limits.bulk_len_max.saturating_add(2));
                    assert!(buf.len() <= bound, "{} bytes wait, more than {bound}", buf.len());
                    assert!(decoder.partial_request_len() <= fed, "held arguments came from the input");
                    break;
                }
                Err(error) => {
                    assert!(error.0.starts_with("ERR Protocol error: "), "unexpected error text {error:?}");
                    // Empty requests and a multibulk header may have been consumed on the
                    // way, but the failing step consumed nothing: it fails the same again.
                    let error_len = buf.len();
                    let again = decoder.decode(&mut buf);
                    assert_eq!(again.as_ref().err(), Some(&error), "an error repeats");
                    assert_eq!(buf.len(), error_len, "a repeated error consumes nothing");
                    return Outcome { requests, error: Some(error), leftover_len: buf.len(), partial: decoder.has_partial_request() };
                }
            }
        }
    }
    Outcome { requests, error: None, leftover_len: buf.len(), partial: decoder.has_partial_request() }
}

fn is_too_big(error: &ProtocolError) -> bool {
    error.0.starts_with("ERR Protocol error: too big")
}

/// Checks that decoding `input` in chunks gives what decoding it whole gives, and so does
/// decoding it a byte at a time: a whole request then never sits in the buffer, so the
/// decoder's fast path for whole requests is compared with its general path.
///
/// Feeding in chunks can only differ by an earlier "too big" error: the decoder judges a
/// missing terminator by what is in the buffer, as Redis does, and a smaller buffer can
/// cross the limit before the terminator arrives.
pub fn check_chunking(limits: DecodeLimits, input: &[u8], chunk_lens: impl IntoIterator<Item = usize>) {
    let whole = decode_in_chunks(limits, input, [input.len()]);
    check_same_as_whole(&whole, &decode_in_chunks(limits, input, chunk_lens));
    check_same_as_whole(&whole, &decode_in_chunks(limits, input, std::iter::repeat(1)));
    for args in &whole.requests {
        check_round_trip(args);
    }
}

fn check_same_as_whole(whole: &Outcome, chunked: &Outcome) {
    assert!(chunked.requests.len() <= whole.requests.len(), "chunked gave {} requests, whole {}", chunked.requests.len(), whole.requests.len());
    assert_eq!(chunked.requests[..], whole.requests[..chunked.requests.len()], "chunked requests are a prefix");
    match &chunked.error {
        Some(error) if is_too_big(error) => {}
        _ => {
            assert_eq!(chunked.requests, whole.requests, "same requests");
            assert_eq!(chunked.error, whole.error, "same error");
            // After an error the rest of the input may not have been fed yet.
            if chunked.error.is_none() {
                assert_eq!(chunked.leftover_len, whole.leftover_len, "same leftover");
                assert_eq!(chunked.partial, whole.partial, "same partial state");
            }
        }
    }
}

/// Encodes `args` as a request and checks that the default decoder gives them back.
pub fn check_round_trip(args: &[Bytes]) {
    let mut buf = BytesMut::new();
    encode_request(args, &mut buf);
    let decoded = RequestDecoder::default().decode(&mut buf);
    assert_eq!(decoded, Ok(Some(args.to_vec())), "round trip of {args:?}");
    assert!(buf.is_empty(), "the round trip consumes the whole request");
}

/// The fuzz entry point: the first byte picks the limits and the chunk lengths, the rest is
/// the client's bytes.
pub fn check_decoder(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let limits = if seed & 1 == 0 { SMALL_LIMITS } else { DecodeLimits::default() };
    let chunk_len_max = usize::from(seed >> 1) % 16 + 1;
    let mut state = u32::from(seed) | 1;
    let chunk_lens = std::iter::from_fn(move || {
        // A tiny LCG: deterministic, so a failing input replays.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        Some((state >> 16) as usize % chunk_len_max + 1)
    });
    check_chunking(limits, input, chunk_lens);
}

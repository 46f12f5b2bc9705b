//! LZF, the compression Redis uses for long strings in RDB files (liblzf's format).
//!
//! The stream is a sequence of runs, each opened by a control byte `c`:
//! - `c < 32`: a literal run of `c + 1` bytes follows;
//! - otherwise a back reference: length `c >> 5` (7 means "7 + the next byte"), plus 2; the
//!   distance is `((c & 0x1f) << 8) + next byte + 1` bytes back in the output. References may
//!   overlap the bytes they produce (a run of one byte repeated).
//!
//! [`decompress`] accepts every stream of that format and checks every bound: it never reads
//! past the input, never references before the output's start, and never writes more than
//! the expected length. [`compress`] produces valid streams with a small hash table; its ratio
//! is close to liblzf's but not byte-identical, which Redis does not need.

use std::fmt;

/// Why a stream does not decompress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LzfError {
    /// The input ends inside a run.
    Truncated,
    /// A back reference points before the start of the output.
    BadReference,
    /// The output would exceed the expected length.
    TooLong,
    /// The output ended shorter than the expected length.
    TooShort,
}

impl fmt::Display for LzfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LzfError::Truncated => "LZF stream is truncated",
            LzfError::BadReference => "LZF back reference points before the output",
            LzfError::TooLong => "LZF stream decompresses to more than its stated length",
            LzfError::TooShort => "LZF stream decompresses to less than its stated length",
        })
    }
}

impl std::error::Error for LzfError {}

/// Decompresses `input`, which must produce exactly `expected_len` bytes.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut out: Vec<u8> = Vec::with_capacity(expected_len);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let literal = input.get(ip..ip + run).ok_or(LzfError::Truncated)?;
            if out.len() + run > expected_len {
                return Err(LzfError::TooLong);
            }
            out.extend_from_slice(literal);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or(LzfError::Truncated)? as usize;
                ip += 1;
            }
            len += 2;
            let low = *input.get(ip).ok_or(LzfError::Truncated)? as usize;
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + low + 1;
            if distance > out.len() {
                return Err(LzfError::BadReference);
            }
            if out.len() + len > expected_len {
                return Err(LzfError::TooLong);
            }
            let start = out.len() - distance;
            if distance >= len {
                out.extend_from_within(start..start + len);
            } else {
                for i in 0..len {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(LzfError::TooShort);
    }
    Ok(out)
}

const HASH_BITS: u32 = 14;
const DISTANCE_MAX: usize = 1 << 13;
const MATCH_MAX: usize = 264;
const LITERAL_MAX: usize = 32;

fn hash3(b: &[u8]) -> usize {
    let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// Compresses `input` into a valid LZF stream. The result can be longer than the input (for
/// incompressible data, by at most one byte in 32, plus one); callers decide whether it pays.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 1);
    if input.is_empty() {
        return out;
    }
    // Positions + 1 of the last place each 3-byte hash was seen (0: never). Sized to the
    // input (a power of two, at most 2^HASH_BITS): zeroing a full table for every short
    // value made saving a million 64-byte strings spend most of its time in memset.
    let bits = (usize::BITS - input.len().leading_zeros()).clamp(4, HASH_BITS);
    let mut table = vec![0usize; 1 << bits];
    let hash = |b: &[u8]| hash3(b) >> (HASH_BITS - bits);
    let mut literal_at = out.len();
    out.push(0);
    let mut literal_len = 0usize;
    let mut ip = 0;
    while ip < input.len() {
        if ip + 3 <= input.len() {
            let h = hash(&input[ip..]);
            let candidate = table[h];
            table[h] = ip + 1;
            if candidate > 0 {
                let r = candidate - 1;
                let distance = ip - r;
                if distance <= DISTANCE_MAX && input[r] == input[ip] && input[r + 1] == input[ip + 1] && input[r + 2] == input[ip + 2] {
                    let limit = MATCH_MAX.min(input.len() - ip);
                    let mut len = 3;
                    while len < limit && input[r + len] == input[ip + len] {
                        len += 1;
                    }
                    if literal_len > 0 {
                        out[literal_at] = (literal_len - 1) as u8;
                    } else {
                        out.pop();
                    }
                    let encoded_len = len - 2;
                    let off = distance - 1;
                    if encoded_len < 7 {
                        out.push(((encoded_len << 5) | (off >> 8)) as u8);
                    } else {
                        out.push(((7 << 5) | (off >> 8)) as u8);
                        out.push((encoded_len - 7) as u8);
                    }
                    out.push((off & 0xff) as u8);
                    // Remember the last two positions inside the match, as liblzf's VERY_FAST
                    // mode does (every position cost a hash per byte of a long match).
                    for p in (ip + len).saturating_sub(2).max(ip + 1)..(ip + len).min(input.len().saturating_sub(2)) {
                        table[hash(&input[p..])] = p + 1;
                    }
                    ip += len;
                    literal_at = out.len();
                    out.push(0);
                    literal_len = 0;
                    continue;
                }
            }
        }
        out.push(input[ip]);
        literal_len += 1;
        ip += 1;
        if literal_len == LITERAL_MAX {
            out[literal_at] = (LITERAL_MAX - 1) as u8;
            literal_at = out.len();
            out.push(0);
            literal_len = 0;
        }
    }
    if literal_len > 0 {
        out[literal_at] = (literal_len - 1) as u8;
    } else {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decompresses_a_handwritten_stream_with_literal_and_overlapping_reference() {
        // "abc" literal, then a reference of length 7 at distance 3: "abcabcabca".
        let stream = [2, b'a', b'b', b'c', (5 << 5), 2];
        assert_eq!(decompress(&stream, 10).unwrap(), b"abcabcabca");
        // Long reference: 7 + 3 + 2 = 12 bytes of 'x' at distance 1.
        let stream = [0, b'x', (7 << 5), 3, 0];
        assert_eq!(decompress(&stream, 13).unwrap(), vec![b'x'; 13]);
    }

    #[test]
    fn decompress_rejects_bad_streams() {
        assert_eq!(decompress(&[2, b'a'], 3), Err(LzfError::Truncated));
        assert_eq!(decompress(&[0, b'a', (1 << 5), 5], 4), Err(LzfError::BadReference));
        assert_eq!(decompress(&[0, b'a', (1 << 5)], 4), Err(LzfError::Truncated));
        assert_eq!(decompress(&[1, b'a', b'b'], 1), Err(LzfError::TooLong));
        assert_eq!(decompress(&[1, b'a', b'b'], 3), Err(LzfError::TooShort));
        assert_eq!(decompress(&[0, b'a', (1 << 5), 0], 3), Err(LzfError::TooLong));
    }

    #[test]
    fn compresses_repetitive_data_well() {
        let data = b"hello world ".repeat(100);
        let packed = compress(&data);
        assert!(packed.len() < data.len() / 10, "{} bytes", packed.len());
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn long_runs_and_max_length_matches_round_trip() {
        for len in [0, 1, 2, 3, 4, 31, 32, 33, 263, 264, 265, 266, 8192, 8193, 8194, 20_000] {
            let data = vec![b'z'; len];
            assert_eq!(decompress(&compress(&data), len).unwrap(), data, "len {len}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let packed = compress(&data);
            prop_assert!(packed.len() <= data.len() + data.len() / 32 + 1);
            prop_assert_eq!(decompress(&packed, data.len()).unwrap(), data);
        }

        #[test]
        fn low_entropy_bytes_round_trip(data in proptest::collection::vec(0u8..4, 0..20000)) {
            prop_assert_eq!(decompress(&compress(&data), data.len()).unwrap(), data);
        }

        #[test]
        fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), len in 0usize..500) {
            let _ = decompress(&data, len);
        }
    }
}

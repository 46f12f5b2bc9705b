//! Redis's CRC-64: the Jones polynomial (0xad93d23594c935a9), reflected input and output,
//! initial value 0, no final xor. `crc64(0, b"123456789") == 0xe9c6d914c4b8d9ca`.
//!
//! [`update`] is slice-by-8 (eight 256-entry tables built at compile time). [`combine`]
//! computes the CRC of `a ++ b` from the CRCs of `a` and `b` and `b`'s length, so a file
//! assembled from chunks made elsewhere (one per core) gets its checksum without a second
//! pass over the bytes.

/// The Jones polynomial, bit-reversed for the reflected algorithm.
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const fn build_tables() -> [[u64; 256]; 8] {
    let mut tables = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY_REFLECTED } else { crc >> 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
}

static TABLES: [[u64; 256]; 8] = build_tables();

/// Continues `crc` over `data`. `update(0, data)` is the CRC of `data`, and
/// `update(update(0, a), b) == update(0, a ++ b)`.
pub fn update(mut crc: u64, data: &[u8]) -> u64 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        crc ^= u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        crc = t[7][(crc & 0xff) as usize]
            ^ t[6][((crc >> 8) & 0xff) as usize]
            ^ t[5][((crc >> 16) & 0xff) as usize]
            ^ t[4][((crc >> 24) & 0xff) as usize]
            ^ t[3][((crc >> 32) & 0xff) as usize]
            ^ t[2][((crc >> 40) & 0xff) as usize]
            ^ t[1][((crc >> 48) & 0xff) as usize]
            ^ t[0][(crc >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC of `data` (Redis's `crc64(0, data, len)`).
pub fn crc64(data: &[u8]) -> u64 {
    update(0, data)
}

/// Multiplies the GF(2) matrix `mat` by the vector `vec`.
fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 == 1 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_square(square: &mut [u64; 64], mat: &[u64; 64]) {
    for n in 0..64 {
        square[n] = gf2_times(mat, mat[n]);
    }
}

/// The operators that apply 2^k zero bytes to a CRC, for k in 0..64: built once (by
/// repeated squaring of the one-zero-bit operator), so that a combine is one matrix-vector
/// product per set bit of the length rather than a squaring per bit.
fn zero_byte_operators() -> &'static [[u64; 64]; 64] {
    static OPERATORS: std::sync::OnceLock<Box<[[u64; 64]; 64]>> = std::sync::OnceLock::new();
    OPERATORS.get_or_init(|| {
        let mut one_bit = [0u64; 64];
        one_bit[0] = POLY_REFLECTED;
        let mut row = 1u64;
        for slot in one_bit.iter_mut().skip(1) {
            *slot = row;
            row <<= 1;
        }
        let (mut two_bits, mut four_bits) = ([0u64; 64], [0u64; 64]);
        gf2_square(&mut two_bits, &one_bit);
        gf2_square(&mut four_bits, &two_bits);
        let mut operators = Box::new([[0u64; 64]; 64]);
        gf2_square(&mut operators[0], &four_bits);
        for k in 1..64 {
            let previous = operators[k - 1];
            gf2_square(&mut operators[k], &previous);
        }
        operators
    })
}

/// The CRC of `a ++ b`, given `crc_a = crc64(a)`, `crc_b = crc64(b)` and `len_b = b.len()`
/// (zlib's `crc32_combine` method: apply `len_b` zero bytes to `crc_a`), with the operators
/// for powers of two built once: one 64x64 matrix-vector product per set bit of `len_b`.
pub fn combine(mut crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    let operators = zero_byte_operators();
    let mut len = len_b;
    let mut k = 0;
    while len != 0 {
        if len & 1 == 1 {
            crc_a = gf2_times(&operators[k], crc_a);
        }
        len >>= 1;
        k += 1;
    }
    crc_a ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, straight from the definition.
    fn slow(data: &[u8]) -> u64 {
        let mut crc = 0u64;
        for &b in data {
            crc ^= b as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ POLY_REFLECTED } else { crc >> 1 };
            }
        }
        crc
    }

    #[test]
    fn check_value_matches_redis() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn slice_by_8_agrees_with_bitwise_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(update(0, &data[..len]), slow(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn incremental_update_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            assert_eq!(update(update(0, &data[..split]), &data[split..]), crc64(&data), "split {split}");
        }
    }

    #[test]
    fn combine_equals_crc_of_concatenation() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8).collect();
        for split in [0, 1, 2, 3, 63, 64, 65, 1000, 4999, 5000] {
            let (a, b) = data.split_at(split);
            assert_eq!(combine(crc64(a), crc64(b), b.len() as u64), crc64(&data), "split {split}");
        }
        // Chunk-sized lengths (a save combines chunks of about 64 KiB).
        let big: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for split in [1, 65_536, 131_071, 299_999] {
            let (a, b) = big.split_at(split);
            assert_eq!(combine(crc64(a), crc64(b), b.len() as u64), crc64(&big), "split {split}");
        }
    }
}

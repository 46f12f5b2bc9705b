//! Redis's HyperLogLog representation, byte for byte (Redis's `hyperloglog.c`).
//!
//! A HyperLogLog is a string: a 16-byte header (`HYLL`, the encoding, three unused bytes, and
//! the cached cardinality as 8 little-endian bytes whose top bit marks the cache invalid),
//! then either 16384 dense 6-bit registers (12288 bytes) or the sparse run-length opcodes
//! ZERO (`00xxxxxx`), XZERO (`01xxxxxx yyyyyyyy`) and VAL (`1vvvvvxx`). Elements are hashed
//! with MurmurHash64A and Redis's seed, sparse values split and merge exactly as Redis's
//! `hllSparseSet` does, and the cardinality is Redis 7's estimator (Ertl's improved
//! estimator with tau and sigma), so a value written by Redis counts the same here, and the
//! same PFADDs leave the same bytes on both.
//!
//! Everything here works on plain byte buffers: no keyspace, no replies. A buffer handed to
//! these functions must have passed [`is_hll`]; a sparse body that does not add up to 16384
//! registers is reported as [`Corrupt`], never trusted.

/// Bits of the hash that select a register.
const P: u32 = 14;
/// Bits of the hash left for the run of zeros.
const Q: usize = 64 - P as usize;
pub const REGISTERS: usize = 1 << P;
const P_MASK: u64 = REGISTERS as u64 - 1;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
pub const HEADER_LEN: usize = 16;
pub const DENSE_LEN: usize = HEADER_LEN + (REGISTERS * BITS).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const ENCODING_MAX: u8 = SPARSE;
const MAGIC: &[u8; 4] = b"HYLL";
const HASH_SEED: u64 = 0xadc8_3b19;
/// 1 / (2 ln 2), the estimator's constant for an infinite number of registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const SPARSE_VAL_VALUE_MAX: u8 = 32;
const SPARSE_VAL_LEN_MAX: usize = 4;
const SPARSE_ZERO_LEN_MAX: usize = 64;
const SPARSE_XZERO_LEN_MAX: usize = 16384;
/// Where the cached cardinality's validity bit lives.
const CACHE_FLAG_BYTE: usize = 15;
const CACHE_INVALID: u8 = 1 << 7;

/// A sparse HyperLogLog whose opcodes do not cover exactly 16384 registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Austin Appleby's MurmurHash64A as Redis uses it: little-endian words, whatever the host.
pub fn murmur_hash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("an 8-byte chunk"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in, and the length of its run of zeros plus one (1..=51).
pub fn pattern_len(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash64a(element, HASH_SEED);
    let index = (hash & P_MASK) as usize;
    // The sentinel bit at Q bounds the run, so the count is at most Q + 1.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A new, empty HyperLogLog: sparse, one XZERO opcode covering every register, and a valid
/// cached cardinality of zero (Redis's `createHLLObject`).
pub fn new_sparse() -> Vec<u8> {
    let mut hll = vec![0u8; HEADER_LEN];
    hll[..4].copy_from_slice(MAGIC);
    hll[4] = SPARSE;
    let mut left = REGISTERS;
    while left > 0 {
        let len = left.min(SPARSE_XZERO_LEN_MAX);
        push_xzero(&mut hll, len);
        left -= len;
    }
    hll
}

/// Whether `bytes` look like a HyperLogLog (Redis's `isHLLObjectOrReply`): the magic, a known
/// encoding, and the exact length when dense. A sparse body is only checked when used.
pub fn is_hll(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && &bytes[..4] == MAGIC && bytes[4] <= ENCODING_MAX && (bytes[4] != DENSE || bytes.len() == DENSE_LEN)
}

pub fn encoding(hll: &[u8]) -> u8 {
    hll[4]
}

/// The cached cardinality, if the cache is valid.
pub fn cached_count(hll: &[u8]) -> Option<u64> {
    (hll[CACHE_FLAG_BYTE] & CACHE_INVALID == 0).then(|| u64::from_le_bytes(hll[8..16].try_into().expect("8 header bytes")))
}

pub fn set_cached_count(hll: &mut [u8], count: u64) {
    hll[8..16].copy_from_slice(&count.to_le_bytes());
}

pub fn invalidate_cache(hll: &mut [u8]) {
    hll[CACHE_FLAG_BYTE] |= CACHE_INVALID;
}

// ---- Dense registers -------------------------------------------------------------------

/// Register `index` of dense `registers` (the bytes after the header). The last register's
/// second byte lies past the end; Redis reads the string's terminating zero there.
fn dense_get(registers: &[u8], index: usize) -> u8 {
    let byte = index * BITS / 8;
    let shift = (index * BITS) & 7;
    let b0 = registers[byte] as u32;
    let b1 = registers.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> shift) | (b1 << (8 - shift))) & REGISTER_MAX as u32) as u8
}

fn dense_put(registers: &mut [u8], index: usize, value: u8) {
    let byte = index * BITS / 8;
    let shift = (index * BITS) & 7;
    let value = value as u32;
    let max = REGISTER_MAX as u32;
    registers[byte] = ((registers[byte] as u32 & !(max << shift)) | (value << shift)) as u8;
    if let Some(next) = registers.get_mut(byte + 1) {
        *next = ((*next as u32 & !(max >> (8 - shift))) | (value >> (8 - shift))) as u8;
    }
}

/// Raises dense register `index` to `count`; returns whether it changed (`hllDenseSet`).
fn dense_raise(registers: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(registers, index) {
        dense_put(registers, index, count);
        true
    } else {
        false
    }
}

// ---- Sparse opcodes --------------------------------------------------------------------

fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}

fn is_xzero(op: u8) -> bool {
    op & 0xc0 == 0x40
}

fn is_val(op: u8) -> bool {
    op & 0x80 != 0
}

fn zero_len(op: u8) -> usize {
    (op & 0x3f) as usize + 1
}

/// An XZERO's length; a second byte missing at the end of the string reads as zero, as the
/// string terminator does in Redis.
fn xzero_len(body: &[u8], at: usize) -> usize {
    ((((body[at] & 0x3f) as usize) << 8) | body.get(at + 1).copied().unwrap_or(0) as usize) + 1
}

fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}

fn val_len(op: u8) -> usize {
    (op & 0x3) as usize + 1
}

fn val_op(value: u8, len: usize) -> u8 {
    debug_assert!((1..=SPARSE_VAL_VALUE_MAX).contains(&value), "a VAL value fits five bits");
    debug_assert!((1..=SPARSE_VAL_LEN_MAX).contains(&len), "a VAL run fits two bits");
    0x80 | ((value - 1) << 2) | (len - 1) as u8
}

fn push_xzero(out: &mut Vec<u8>, len: usize) {
    debug_assert!((1..=SPARSE_XZERO_LEN_MAX).contains(&len), "an XZERO run fits fourteen bits");
    let l = len - 1;
    out.push((l >> 8) as u8 | 0x40);
    out.push((l & 0xff) as u8);
}

/// A run of zero registers as ZERO or XZERO, as Redis picks between them.
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_LEN_MAX {
        push_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}

/// One decoded sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Zeros(usize),
    Val { value: u8, len: usize },
}

/// Walks the sparse opcodes of `body` (the bytes after the header): (offset, byte length, op).
fn sparse_ops(body: &[u8]) -> impl Iterator<Item = (usize, usize, Op)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= body.len() {
            return None;
        }
        let op = body[at];
        let item = if is_zero(op) {
            (at, 1, Op::Zeros(zero_len(op)))
        } else if is_xzero(op) {
            (at, 2, Op::Zeros(xzero_len(body, at)))
        } else {
            (at, 1, Op::Val { value: val_value(op), len: val_len(op) })
        };
        at += item.1;
        Some(item)
    })
}

/// Converts a sparse HyperLogLog to dense in place, keeping the header but the encoding
/// (Redis's `hllSparseToDense`). Does nothing to a dense one.
pub fn to_dense(hll: &mut Vec<u8>) -> Result<(), Corrupt> {
    if encoding(hll) == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER_LEN].copy_from_slice(&hll[..HEADER_LEN]);
    dense[4] = DENSE;
    let mut index = 0;
    for (_, _, op) in sparse_ops(&hll[HEADER_LEN..]) {
        match op {
            Op::Zeros(len) => index += len,
            Op::Val { value, len } => {
                if index + len > REGISTERS {
                    break;
                }
                for i in index..index + len {
                    dense_put(&mut dense[HEADER_LEN..], i, value);
                }
                index += len;
            }
        }
    }
    if index != REGISTERS {
        return Err(Corrupt);
    }
    *hll = dense;
    Ok(())
}

/// Raises register `index` of a sparse HyperLogLog to `count` (Redis's `hllSparseSet`):
/// splits the opcode that covers it, merges equal neighbours, and promotes to dense when the
/// value does not fit a VAL opcode or the string would pass `sparse_len_max` bytes. Returns
/// whether the register changed.
fn sparse_raise(hll: &mut Vec<u8>, index: usize, count: u8, sparse_len_max: u64) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_VALUE_MAX {
        return promote(hll, index, count);
    }
    // Step 1: find the opcode covering the register.
    let end = hll.len();
    let mut p = HEADER_LEN;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    while p < end {
        let op = hll[p];
        let oplen;
        (span, oplen) = if is_zero(op) {
            (zero_len(op), 1)
        } else if is_val(op) {
            (val_len(op), 1)
        } else {
            (xzero_len(&hll[HEADER_LEN..], p - HEADER_LEN), 2)
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let op = hll[p];
    let next_at = if is_xzero(op) { p + 2 } else { p + 1 };
    let has_next = next_at < end;
    let runlen = span;

    let mut write_sequence = true;
    if is_val(op) {
        let old = val_value(op);
        // Case A: the register already holds as much.
        if old >= count {
            return Ok(false);
        }
        // Case B: a VAL of one register is updated in place.
        if runlen == 1 {
            hll[p] = val_op(count, 1);
            write_sequence = false;
        }
    } else if is_zero(op) && runlen == 1 {
        // Case C: a ZERO of one register becomes a VAL.
        hll[p] = val_op(count, 1);
        write_sequence = false;
    }

    if write_sequence {
        // Case D: split the opcode into up to three (XZERO-VAL-XZERO at worst).
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        if is_val(op) {
            let current = val_value(op);
            if index != first {
                seq.push(val_op(current, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(current, last - index));
            }
        } else {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        let old_len = if is_xzero(op) { 2 } else { 1 };
        let delta = seq.len() as i64 - old_len as i64;
        if delta > 0 && (hll.len() as i64 + delta) as u64 > sparse_len_max {
            return promote(hll, index, count);
        }
        if has_next {
            hll.splice(p..p + old_len, seq);
        } else {
            // The opcode is the last one (possibly an XZERO cut short): the string takes the
            // new length and the sequence is written at the opcode, as Redis does.
            let new_len = (hll.len() as i64 + delta) as usize;
            hll.truncate(p);
            hll.extend_from_slice(&seq);
            hll.resize(new_len, 0);
        }
    }

    // Step 4: merge adjacent VAL opcodes of equal value, scanning up to five opcodes from the
    // one before the change.
    let mut end = hll.len();
    let mut p = prev.unwrap_or(HEADER_LEN);
    let mut scan_left = 5;
    while p < end && scan_left > 0 {
        scan_left -= 1;
        let op = hll[p];
        if is_xzero(op) {
            p += 2;
            continue;
        }
        if is_zero(op) {
            p += 1;
            continue;
        }
        if p + 1 < end && is_val(hll[p + 1]) {
            let (v1, v2) = (val_value(op), val_value(hll[p + 1]));
            let len = val_len(op) + val_len(hll[p + 1]);
            if v1 == v2 && len <= SPARSE_VAL_LEN_MAX {
                hll[p + 1] = val_op(v1, len);
                hll.remove(p);
                end -= 1;
                // Try the merged opcode against its right neighbour too.
                continue;
            }
        }
        p += 1;
    }
    invalidate_cache(hll);
    Ok(true)
}

/// Converts to dense and raises the register there.
fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(hll)?;
    let changed = dense_raise(&mut hll[HEADER_LEN..], index, count);
    debug_assert!(changed, "a promotion happens only for a register that changes");
    Ok(changed)
}

/// Raises register `index` to `count` in either encoding; returns whether it changed. Does not
/// touch the cached cardinality of a dense HyperLogLog (callers invalidate it once).
pub fn raise(hll: &mut Vec<u8>, index: usize, count: u8, sparse_len_max: u64) -> Result<bool, Corrupt> {
    match encoding(hll) {
        DENSE => Ok(dense_raise(&mut hll[HEADER_LEN..], index, count)),
        SPARSE => sparse_raise(hll, index, count, sparse_len_max),
        _ => Err(Corrupt),
    }
}

/// Adds an element; returns whether a register changed (Redis's `hllAdd`).
pub fn add(hll: &mut Vec<u8>, element: &[u8], sparse_len_max: u64) -> Result<bool, Corrupt> {
    let (index, count) = pattern_len(element);
    raise(hll, index, count, sparse_len_max)
}

/// Merges `hll` into `max` (one byte per register): max[i] = MAX(max[i], hll[i]).
pub fn merge_into(max: &mut [u8; REGISTERS], hll: &[u8]) -> Result<(), Corrupt> {
    if encoding(hll) == DENSE {
        let registers = &hll[HEADER_LEN..];
        for (i, slot) in max.iter_mut().enumerate() {
            *slot = (*slot).max(dense_get(registers, i));
        }
        return Ok(());
    }
    let mut index = 0;
    for (_, _, op) in sparse_ops(&hll[HEADER_LEN..]) {
        match op {
            Op::Zeros(len) => index += len,
            Op::Val { value, len } => {
                if index + len > REGISTERS {
                    break;
                }
                for slot in &mut max[index..index + len] {
                    *slot = (*slot).max(value);
                }
                index += len;
            }
        }
    }
    if index == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// The estimated cardinality of a HyperLogLog (Redis's `hllCount`), not using the cache.
pub fn count(hll: &[u8]) -> Result<u64, Corrupt> {
    let mut histogram = [0i64; 64];
    if encoding(hll) == DENSE {
        let registers = &hll[HEADER_LEN..];
        for i in 0..REGISTERS {
            histogram[dense_get(registers, i) as usize] += 1;
        }
    } else {
        let mut index = 0;
        for (_, _, op) in sparse_ops(&hll[HEADER_LEN..]) {
            match op {
                Op::Zeros(len) => {
                    index += len;
                    histogram[0] += len as i64;
                }
                Op::Val { value, len } => {
                    index += len;
                    histogram[value as usize] += len as i64;
                }
            }
        }
        if index != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histogram))
}

/// The estimated cardinality of registers held one per byte (PFCOUNT over several keys).
pub fn count_registers(registers: &[u8; REGISTERS]) -> u64 {
    let mut histogram = [0i64; 64];
    for &r in registers.iter() {
        histogram[(r & 63) as usize] += 1;
    }
    estimate(&histogram)
}

/// Ertl's improved estimator over the register histogram ("New cardinality estimation
/// algorithms for HyperLogLog sketches", arXiv:1702.01284), computed in the same order as
/// Redis so the rounding is the same.
fn estimate(histogram: &[i64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histogram[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histogram[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

/// The registers of a dense HyperLogLog, one per byte.
pub fn dense_registers(hll: &[u8]) -> Vec<u8> {
    debug_assert_eq!(encoding(hll), DENSE, "registers are read from a dense HyperLogLog");
    (0..REGISTERS).map(|i| dense_get(&hll[HEADER_LEN..], i)).collect()
}

/// PFDEBUG DECODE's text for a sparse HyperLogLog: `z:len`, `Z:len` and `v:value,len`.
pub fn decode_sparse(hll: &[u8]) -> String {
    let body = &hll[HEADER_LEN..];
    let mut out = Vec::new();
    for (at, _, op) in sparse_ops(body) {
        out.push(match op {
            Op::Zeros(len) if is_zero(body[at]) => format!("z:{len}"),
            Op::Zeros(len) => format!("Z:{len}"),
            Op::Val { value, len } => format!("v:{value},{len}"),
        });
    }
    out.join(" ")
}

/// Checks that dense registers read back what was written without disturbing their
/// neighbours (the first half of PFSELFTEST). Returns the first mismatch.
pub fn self_test_registers(rng: &mut impl rand::Rng, cycles: usize) -> Result<(), String> {
    let mut dense = vec![0u8; DENSE_LEN - HEADER_LEN];
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..cycles {
        for (i, slot) in expected.iter_mut().enumerate() {
            let r = rng.random::<u8>() & REGISTER_MAX;
            *slot = r;
            dense_put(&mut dense, i, r);
        }
        for (i, &want) in expected.iter().enumerate() {
            let got = dense_get(&dense, i);
            if got != want {
                return Err(format!("TESTFAILED Register {i} should be {want} but is {got}"));
            }
        }
    }
    Ok(())
}

/// Adds the same distinct elements to a dense and a sparse HyperLogLog and checks, at each
/// power of ten up to `elements`, that the sparse one stays sparse while small, that both
/// count the same, and that the error is within six standard errors (the second half of
/// PFSELFTEST).
pub fn self_test_estimates(seed: u64, elements: u64, sparse_len_max: u64) -> Result<(), String> {
    let mut dense = new_sparse();
    to_dense(&mut dense).map_err(|_| "TESTFAILED dense conversion".to_string())?;
    let mut sparse = new_sparse();
    let relative_error = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint = 1u64;
    for j in 1..=elements {
        let element = (j ^ seed).to_le_bytes();
        add(&mut dense, &element, sparse_len_max).map_err(|_| "TESTFAILED dense add".to_string())?;
        add(&mut sparse, &element, sparse_len_max).map_err(|_| "TESTFAILED sparse add".to_string())?;
        if j != checkpoint {
            continue;
        }
        if j < sparse_len_max / 2 && encoding(&sparse) != SPARSE {
            return Err("TESTFAILED sparse encoding not used".to_string());
        }
        let dense_count = count(&dense).map_err(|_| "TESTFAILED dense count".to_string())?;
        if count(&sparse) != Ok(dense_count) {
            return Err("TESTFAILED dense/sparse disagree".to_string());
        }
        let error = checkpoint.abs_diff(dense_count);
        let error_max = if j == 10 { 1 } else { (relative_error * 6.0 * checkpoint as f64).ceil() as u64 };
        if error > error_max {
            return Err(format!("TESTFAILED Too big error. card:{checkpoint} abserr:{error}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks a sparse body's invariants: the opcodes cover exactly every register and VAL
    /// values fit.
    fn check_sparse(hll: &[u8]) {
        assert_eq!(encoding(hll), SPARSE, "sparse");
        let total: usize = sparse_ops(&hll[HEADER_LEN..])
            .map(|(_, _, op)| match op {
                Op::Zeros(len) => len,
                Op::Val { len, .. } => len,
            })
            .sum();
        assert_eq!(total, REGISTERS, "the opcodes cover every register");
    }

    #[test]
    fn murmur_matches_known_values() {
        assert_eq!(murmur_hash64a(b"", 0), 0);
        let h = murmur_hash64a(b"hello", HASH_SEED);
        assert_eq!(h, murmur_hash64a(b"hello", HASH_SEED), "deterministic");
        assert_ne!(murmur_hash64a(b"hello", HASH_SEED), murmur_hash64a(b"hellp", HASH_SEED));
    }

    #[test]
    fn a_new_hyperloglog_is_one_xzero_with_a_valid_zero_cache() {
        let hll = new_sparse();
        assert_eq!(hll, b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff".to_vec());
        assert!(is_hll(&hll));
        assert_eq!(cached_count(&hll), Some(0));
        assert_eq!(count(&hll), Ok(0));
        assert_eq!(decode_sparse(&hll), "Z:16384");
    }

    #[test]
    fn dense_registers_do_not_disturb_their_neighbours() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        self_test_registers(&mut rng, 3).unwrap();
    }

    #[test]
    fn sparse_set_splits_and_merges_opcodes() {
        let mut hll = new_sparse();
        assert_eq!(raise(&mut hll, 100, 3, 3000), Ok(true));
        check_sparse(&hll);
        assert_eq!(decode_sparse(&hll), "Z:100 v:3,1 Z:16283");
        assert_eq!(raise(&mut hll, 100, 2, 3000), Ok(false));
        assert_eq!(raise(&mut hll, 101, 3, 3000), Ok(true));
        assert_eq!(decode_sparse(&hll), "Z:100 v:3,2 Z:16282");
        assert_eq!(raise(&mut hll, 0, 1, 3000), Ok(true));
        assert_eq!(decode_sparse(&hll), "v:1,1 Z:99 v:3,2 Z:16282");
        assert_eq!(raise(&mut hll, 16383, 5, 3000), Ok(true));
        assert_eq!(decode_sparse(&hll), "v:1,1 Z:99 v:3,2 Z:16281 v:5,1");
        assert_eq!(raise(&mut hll, 50, 1, 3000), Ok(true));
        assert_eq!(decode_sparse(&hll), "v:1,1 z:49 v:1,1 z:49 v:3,2 Z:16281 v:5,1");
        check_sparse(&hll);
        let mut max = [0u8; REGISTERS];
        merge_into(&mut max, &hll).unwrap();
        let mut dense = hll.clone();
        to_dense(&mut dense).unwrap();
        assert_eq!(dense_registers(&dense), max.to_vec());
        assert_eq!(count(&dense), count(&hll));
    }

    #[test]
    fn sparse_promotes_for_large_values_and_past_the_size_limit() {
        let mut hll = new_sparse();
        assert_eq!(raise(&mut hll, 7, 33, 3000), Ok(true));
        assert_eq!(encoding(&hll), DENSE);
        assert_eq!(hll.len(), DENSE_LEN);
        assert_eq!(dense_registers(&hll)[7], 33);
        let mut hll = new_sparse();
        for i in 0..40 {
            raise(&mut hll, i * 300, 2, 40).unwrap();
        }
        assert_eq!(encoding(&hll), DENSE);
    }

    #[test]
    fn corrupt_sparse_bodies_are_reported() {
        let mut hll = new_sparse();
        hll[HEADER_LEN + 1] = 0xfe; // XZERO of 16383 registers.
        assert_eq!(count(&hll), Err(Corrupt));
        assert_eq!(merge_into(&mut [0; REGISTERS], &hll), Err(Corrupt));
        assert_eq!(to_dense(&mut hll.clone()), Err(Corrupt));
        let mut empty = new_sparse();
        empty.truncate(HEADER_LEN);
        assert_eq!(raise(&mut empty, 3, 1, 3000), Err(Corrupt));
    }

    #[test]
    fn random_raises_keep_the_sparse_form_equal_to_a_model() {
        use rand::Rng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for round in 0..20 {
            let mut hll = new_sparse();
            let mut model = vec![0u8; REGISTERS];
            // Clustered indexes make neighbouring VAL opcodes split and merge often.
            let base = rng.random_range(0..REGISTERS - 64);
            for _ in 0..200 {
                let index = if rng.random_range(0..4) == 0 { rng.random_range(0..REGISTERS) } else { base + rng.random_range(0..64) };
                let count = rng.random_range(1..=if round % 5 == 0 { 40 } else { 32 });
                let changed = raise(&mut hll, index, count, 3000).unwrap();
                assert_eq!(changed, count > model[index], "raise reports a change exactly when the register grows");
                model[index] = model[index].max(count);
                if encoding(&hll) == SPARSE {
                    check_sparse(&hll);
                    let ops: Vec<Op> = sparse_ops(&hll[HEADER_LEN..]).map(|(_, _, op)| op).collect();
                    for pair in ops.windows(2) {
                        if let [Op::Val { value: a, len: la }, Op::Val { value: b, len: lb }] = pair {
                            assert!(a != b || la + lb > SPARSE_VAL_LEN_MAX, "equal neighbours near a change are merged");
                        }
                    }
                }
                let mut max = [0u8; REGISTERS];
                merge_into(&mut max, &hll).unwrap();
                assert_eq!(max.to_vec(), model, "the registers match the model");
            }
            let mut dense = hll.clone();
            to_dense(&mut dense).unwrap();
            assert_eq!(dense_registers(&dense), model);
            assert_eq!(count(&dense), count(&hll));
        }
    }

    #[test]
    fn estimates_stay_close_and_dense_and_sparse_agree() {
        self_test_estimates(12345, 100_000, 3000).unwrap();
    }

    use rand::SeedableRng;
}

//! LEB128 lengths and length-prefixed byte strings, as the store's compact layouts (listpack
//! entries, dict nodes, [`crate::thin::ThinBytes`]) write them: 7 bits per byte, low bits
//! first, the high bit set on every byte but the last.

/// Bytes `v` takes.
pub fn len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends `v`.
pub fn put(out: &mut Vec<u8>, v: usize) {
    let (bytes, used) = encode(v);
    out.extend_from_slice(&bytes[..used]);
}

/// `v` encoded: the bytes, and how many of them are used.
pub fn encode(mut v: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    (out, i + 1)
}

/// Reads a value at `at`; returns (value, bytes used).
pub fn get(buf: &[u8], at: usize) -> (usize, usize) {
    let (mut v, mut shift, mut i) = (0usize, 0, at);
    loop {
        let b = buf[i];
        v |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return (v, i - at);
        }
        shift += 7;
    }
}

/// Writes `bytes`' length, then `bytes`, at `at`.
///
/// # Safety
/// `at` must be valid for writing `len(bytes.len()) + bytes.len()` bytes.
pub unsafe fn write_prefixed(mut at: *mut u8, bytes: &[u8]) {
    let mut n = bytes.len();
    // SAFETY: the caller made room for the length and the bytes.
    unsafe {
        while n >= 0x80 {
            at.write((n as u8 & 0x7f) | 0x80);
            at = at.add(1);
            n >>= 7;
        }
        at.write(n as u8);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), at.add(1), bytes.len());
    }
}

/// The byte string [`write_prefixed`] wrote at `at`.
///
/// # Safety
/// `at` must point at what `write_prefixed` wrote, alive and unchanged for `'a`.
pub unsafe fn read_prefixed<'a>(mut at: *const u8) -> &'a [u8] {
    let (mut n, mut shift) = (0usize, 0);
    // SAFETY: the caller vouches that a length and that many bytes are there.
    unsafe {
        loop {
            let b = *at;
            at = at.add(1);
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        std::slice::from_raw_parts(at, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_prefixed_strings_round_trip() {
        for v in [0usize, 1, 127, 128, 16_383, 16_384, usize::MAX >> 1] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), len(v));
            assert_eq!(get(&out, 0), (v, out.len()));
        }
        for n in [0usize, 5, 127, 128, 300] {
            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut buf = vec![0u8; len(n) + n];
            // SAFETY: the buffer has room for the length and the bytes, and outlives the read.
            let read = unsafe {
                write_prefixed(buf.as_mut_ptr(), &bytes);
                read_prefixed(buf.as_ptr())
            };
            assert_eq!(read, &bytes[..]);
        }
    }
}

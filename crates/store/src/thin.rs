//! [`ThinBytes`]: a byte string in one machine word, for values stored by the million (hash
//! values in the hashtable encoding): up to 7 bytes inside the word, longer ones behind a
//! pointer to one allocation holding their length (LEB128) and bytes.

use std::alloc::{self, Layout};

use crate::varint;

// The inline form keeps its tag and length in the word's first byte in memory, which is the
// low byte of a pointer only on little-endian targets.
const _: () = assert!(cfg!(target_endian = "little"), "ThinBytes assumes a little-endian target");

/// Bytes that fit inside the word.
pub const INLINE_MAX: usize = 7;

/// Low bit 1: inline, length in bits 1..4 of the first byte, bytes in the next seven.
/// Low bit 0: a pointer (allocated with alignment 2, so its low bit is free).
/// Held as a pointer (not an integer) so the heap form keeps its provenance.
pub struct ThinBytes(*mut u8);

fn heap_layout(len: usize) -> Layout {
    Layout::from_size_align(varint::len(len) + len, 2).expect("a byte string layout fits")
}

impl ThinBytes {
    pub fn new(bytes: &[u8]) -> ThinBytes {
        if bytes.len() <= INLINE_MAX {
            let mut word = [0u8; 8];
            word[0] = 1 | (bytes.len() as u8) << 1;
            word[1..1 + bytes.len()].copy_from_slice(bytes);
            return ThinBytes(std::ptr::without_provenance_mut(usize::from_le_bytes(word)));
        }
        let layout = heap_layout(bytes.len());
        // SAFETY: the layout is non-zero (a length byte at least); we fill it completely.
        unsafe {
            let raw = alloc::alloc(layout);
            if raw.is_null() {
                alloc::handle_alloc_error(layout);
            }
            varint::write_prefixed(raw, bytes);
            ThinBytes(raw)
        }
    }

    fn is_inline(&self) -> bool {
        self.0.addr() & 1 == 1
    }

    /// Prefetches the heap form's bytes (see [`crate::prefetch`]); the inline form has none.
    #[inline]
    pub fn prefetch(&self) {
        if !self.is_inline() {
            crate::prefetch::read(self.0);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        if self.is_inline() {
            let len = (self.0.addr() as u8 >> 1) as usize;
            // SAFETY: the word is 8 bytes we own; on little-endian its bytes 1..=len are the
            // inline bytes.
            unsafe { std::slice::from_raw_parts((&self.0 as *const *mut u8 as *const u8).add(1), len) }
        } else {
            // SAFETY: a heap form points at the allocation `new` filled: a length, then bytes.
            unsafe { varint::read_prefixed(self.0) }
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held beyond the word itself.
    pub fn allocated(&self) -> usize {
        if self.is_inline() {
            0
        } else {
            heap_layout(self.len()).size()
        }
    }
}

impl Drop for ThinBytes {
    fn drop(&mut self) {
        if !self.is_inline() {
            let layout = heap_layout(self.len());
            // SAFETY: allocated by `new` with this layout, freed once.
            unsafe { alloc::dealloc(self.0, layout) };
        }
    }
}

impl Clone for ThinBytes {
    fn clone(&self) -> Self {
        ThinBytes::new(self.as_bytes())
    }
}

impl PartialEq for ThinBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ThinBytes {}

impl std::fmt::Debug for ThinBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_bytes().escape_ascii().to_string())
    }
}

// SAFETY: a ThinBytes owns its allocation exclusively and never mutates it after creation.
unsafe impl Send for ThinBytes {}
// SAFETY: shared access only reads.
unsafe impl Sync for ThinBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_inline_and_on_the_heap() {
        assert_eq!(std::mem::size_of::<ThinBytes>(), 8);
        for len in [0usize, 1, 6, 7, 8, 9, 127, 128, 129, 16_384, 100_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let thin = ThinBytes::new(&bytes);
            assert_eq!(thin.as_bytes(), &bytes[..], "length {len}");
            assert_eq!(thin.len(), len);
            assert_eq!(thin.allocated() == 0, len <= INLINE_MAX, "length {len}");
            let copy = thin.clone();
            assert_eq!(copy, thin);
        }
        // Bytes with the low bit set in the first position are still inline data, not tags.
        assert_eq!(ThinBytes::new(&[0xff; 7]).as_bytes(), &[0xff; 7]);
    }
}

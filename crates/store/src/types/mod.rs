//! The collection types: each keeps a compact encoding while small (bounded by the
//! `*-max-listpack-*` / `set-max-intset-entries` directives, passed in as [`Limits`]) and
//! converts to a full structure past them, as Redis does.
//!
//! Each type estimates its own memory for MEMORY USAGE (`memory_usage(samples)`): compact
//! encodings exactly, big ones from a sample of their elements ([`sampled_bytes`]).

pub mod hash;
pub mod list;
pub mod packed;
pub mod set;
pub mod stream;
pub mod template;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use packed::{Packed, PackedMut, PackedRef};
pub use set::Set;
pub use stream::Stream;
pub use zset::ZSet;

/// The encoding thresholds, Redis's directives of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `list-max-listpack-size`: positive, entries per node; negative, -1..-5 for 4..64 KiB.
    pub list_max_listpack_size: i32,
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    /// A hash of at least this many fields (0: none, the default) and at most
    /// `hash_max_template_entries` (0: no bound) moves to a field-name template when written.
    pub hash_min_template_entries: u64,
    pub hash_max_template_entries: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    pub set_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    pub stream_node_max_bytes: u64,
    pub stream_node_max_entries: u64,
}

impl Default for Limits {
    /// Redis 7's defaults (7.2's for `set-max-listpack-*`).
    fn default() -> Self {
        Limits {
            list_max_listpack_size: -2,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            hash_min_template_entries: 0,
            hash_max_template_entries: 0,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}

impl Limits {
    /// What streams need of the limits.
    pub fn stream_nodes(&self) -> stream::NodeLimits {
        stream::NodeLimits { max_bytes: self.stream_node_max_bytes, max_entries: self.stream_node_max_entries }
    }
}

/// The bytes of a collection of `len` elements whose sizes `sizes` yields in order, as Redis's
/// `objectComputeSize` estimates them: every element when `samples` is 0 or at least `len`,
/// otherwise the first `samples`, their average scaled to `len`. Only the elements measured
/// are ever pulled from `sizes`, so the cost is O(samples) however big the collection.
pub(crate) fn sampled_bytes(len: usize, samples: usize, sizes: impl Iterator<Item = usize>) -> usize {
    let wanted = if samples == 0 { len } else { samples.min(len) };
    let (mut measured, mut sum) = (0usize, 0usize);
    for size in sizes.take(wanted) {
        measured += 1;
        sum = sum.saturating_add(size);
    }
    if measured == 0 || measured >= len {
        return sum;
    }
    // In u128: a sum of gigabytes times a length of billions overflows 64 bits.
    usize::try_from(sum as u128 * len as u128 / measured as u128).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_bytes_measures_everything_when_samples_is_zero_or_enough() {
        let sizes = [1, 2, 3, 4];
        assert_eq!(sampled_bytes(4, 0, sizes.into_iter()), 10);
        assert_eq!(sampled_bytes(4, 4, sizes.into_iter()), 10);
        assert_eq!(sampled_bytes(4, 100, sizes.into_iter()), 10);
        assert_eq!(sampled_bytes(0, 5, std::iter::empty()), 0);
    }

    #[test]
    fn sampled_bytes_scales_the_first_samples_to_the_length() {
        // The first two average 1.5 bytes; scaled to 4 elements, 6.
        assert_eq!(sampled_bytes(4, 2, [1, 2, 3, 4].into_iter()), 6);
    }

    #[test]
    fn sampled_bytes_pulls_only_the_elements_it_measures() {
        let mut pulled = 0;
        let sizes = std::iter::repeat_with(|| {
            pulled += 1;
            10
        });
        assert_eq!(sampled_bytes(1_000_000, 5, sizes), 10_000_000);
        assert_eq!(pulled, 5);
    }
}

//! The collection types: each keeps a compact encoding while small (bounded by the
//! `*-max-listpack-*` / `set-max-intset-entries` directives, passed in as [`Limits`]) and
//! converts to a full structure past them, as Redis does.

pub mod hash;
pub mod list;
pub mod set;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use zset::ZSet;

/// The encoding thresholds, Redis's directives of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `list-max-listpack-size`: positive, entries per node; negative, -1..-5 for 4..64 KiB.
    pub list_max_listpack_size: i32,
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    pub set_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
}

impl Default for Limits {
    /// Redis 7's defaults (7.2's for `set-max-listpack-*`).
    fn default() -> Self {
        Limits {
            list_max_listpack_size: -2,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
        }
    }
}

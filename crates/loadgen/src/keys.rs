//! Key placement: which core of a shoal-server owns a key, and the choice of a transaction's
//! five keys so that they land on different cores.
//!
//! Shoal places a key as Redis Cluster does, then splits the slots over its threads: the hash
//! slot is CRC16-XMODEM of the key (or of its hash tag, the bytes between the first `{` and
//! the next `}` when that is non-empty) modulo 16384, and the core is the slot modulo the
//! thread count. The load generator computes this itself rather than depending on
//! `shoal-store`, so a placement bug in the server cannot hide behind shared code.
//!
//! Transaction keys are `tx:{N}:a` .. `tx:{N}:e` (the letter is the key's position in the
//! transaction), where each of the five has its own random tag `N` in `0..range`: the tag
//! alone decides the core.

use crate::rng::Rng;

/// Number of hash slots, as in Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// Keys in one `multi-incr5` transaction.
pub const TX_KEY_COUNT: usize = 5;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), Redis Cluster's `crc16`. Bitwise: it
/// runs only while the key tables are built, never per request.
pub fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash tag of `key`: the bytes between the first `{` and the first `}` after it, if non-empty.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    if close == 0 {
        return None;
    }
    Some(&key[open + 1..open + 1 + close])
}

/// The hash slot of `key`, as `CLUSTER KEYSLOT` computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key).unwrap_or(key)) % SLOT_COUNT
}

/// The core of a shoal-server with `cores` threads that owns `key`.
pub fn key_core(key: &[u8], cores: usize) -> usize {
    assert!(cores > 0, "at least one core");
    usize::from(key_slot(key)) % cores
}

/// Appends transaction key `position` (0-based) with hash tag `tag` to `out`: `tx:{tag}:a`.
pub fn push_tx_key(out: &mut Vec<u8>, tag: u64, position: usize) {
    assert!(position < TX_KEY_COUNT, "position {position} in a transaction of {TX_KEY_COUNT} keys");
    out.extend_from_slice(b"tx:{");
    out.extend_from_slice(itoa::Buffer::new().format(tag).as_bytes());
    out.extend_from_slice(b"}:");
    out.push(b'a' + position as u8);
}

/// The tags in `0..range`, grouped by the core that owns them.
#[derive(Debug)]
pub struct TxKeys {
    tags_by_core: Vec<Vec<u64>>,
    /// All five keys of a transaction on one (random) core, as hash-tagged keys would be.
    one_core: bool,
}

impl TxKeys {
    /// Groups the tags `0..range` by core for a server with `cores` threads. Fails when some
    /// core would get too few tags to give each transaction five distinct keys.
    pub fn new(range: u64, cores: usize, one_core: bool) -> Result<TxKeys, String> {
        if cores == 0 {
            return Err("--tx-cores must be at least 1".to_string());
        }
        let mut tags_by_core = vec![Vec::new(); cores];
        let mut key = Vec::new();
        for tag in 0..range {
            key.clear();
            push_tx_key(&mut key, tag, 0);
            tags_by_core[key_core(&key, cores)].push(tag);
        }
        // Core i of the rotation in `pick` serves positions i, i + cores, ...: at most this many.
        let per_core_max = if one_core { TX_KEY_COUNT } else { TX_KEY_COUNT.div_ceil(cores.min(TX_KEY_COUNT)) };
        for (core, tags) in tags_by_core.iter().enumerate() {
            if tags.len() < per_core_max {
                return Err(format!("key range {range} gives core {core} of {cores} only {} transaction tags; use a larger -r", tags.len()));
            }
        }
        Ok(TxKeys { tags_by_core, one_core })
    }

    /// Picks five distinct tags: consecutive positions go to consecutive cores from a random
    /// first core, so with 4 cores the five keys cover all 4 (one core gets two).
    pub fn pick(&self, rng: &mut Rng) -> [u64; TX_KEY_COUNT] {
        let cores = self.tags_by_core.len();
        let first = rng.below(cores as u64) as usize;
        let mut tags = [0; TX_KEY_COUNT];
        for position in 0..TX_KEY_COUNT {
            let core = if self.one_core { first } else { (first + position) % cores };
            let candidates = &self.tags_by_core[core];
            // `new` checked that each core has enough tags, so this ends.
            loop {
                let tag = candidates[rng.below(candidates.len() as u64) as usize];
                if !tags[..position].contains(&tag) {
                    tags[position] = tag;
                    break;
                }
            }
        }
        tags
    }

    pub fn cores(&self) -> usize {
        self.tags_by_core.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_core_transactions_keep_all_five_keys_on_one_core() {
        let keys = TxKeys::new(100_000, 4, true).unwrap();
        let mut rng = Rng::new(9);
        let mut cores_seen = [false; 4];
        for _ in 0..200 {
            let tags = keys.pick(&mut rng);
            let mut key = Vec::new();
            let cores: Vec<usize> = tags
                .iter()
                .enumerate()
                .map(|(position, &tag)| {
                    key.clear();
                    push_tx_key(&mut key, tag, position);
                    key_core(&key, 4)
                })
                .collect();
            assert!(cores.iter().all(|&c| c == cores[0]), "{cores:?}");
            cores_seen[cores[0]] = true;
        }
        assert!(cores_seen.iter().all(|&seen| seen), "every core gets transactions");
    }

    #[test]
    fn crc16_xmodem_matches_the_check_value() {
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(crc16_xmodem(b""), 0);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 0x31C3 % SLOT_COUNT);
    }

    #[test]
    fn hash_tag_selects_the_hashed_part() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"tx:{42}:c"), key_slot(b"42"));
    }

    #[test]
    fn empty_or_unclosed_hash_tag_hashes_the_whole_key() {
        assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{bar"), crc16_xmodem(b"foo{bar") % SLOT_COUNT);
        assert_eq!(key_slot(b"{}"), crc16_xmodem(b"{}") % SLOT_COUNT);
    }

    #[test]
    fn core_is_slot_modulo_threads() {
        // foo is slot 12182: 12182 % 4 == 2, 12182 % 3 == 2, 12182 % 5 == 2.
        assert_eq!(key_core(b"foo", 4), 2);
        assert_eq!(key_core(b"foo", 1), 0);
        assert_eq!(key_core(b"bar", 4), 5061 % 4);
    }

    #[test]
    fn tx_keys_are_named_by_tag_and_position() {
        let mut key = Vec::new();
        push_tx_key(&mut key, 1234, 4);
        assert_eq!(key, b"tx:{1234}:e");
    }

    #[test]
    fn a_transaction_covers_four_cores_with_five_distinct_keys() {
        let keys = TxKeys::new(100_000, 4, false).unwrap();
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let tags = keys.pick(&mut rng);
            let mut cores = Vec::new();
            for (position, &tag) in tags.iter().enumerate() {
                assert!(tag < 100_000, "tag {tag} in range");
                assert!(!tags[..position].contains(&tag), "tags {tags:?} distinct");
                let mut key = Vec::new();
                push_tx_key(&mut key, tag, position);
                cores.push(key_core(&key, 4));
            }
            cores.sort_unstable();
            cores.dedup();
            assert_eq!(cores, vec![0, 1, 2, 3], "tags {tags:?}");
        }
    }

    #[test]
    fn one_core_still_gives_distinct_keys() {
        let keys = TxKeys::new(10, 1, false).unwrap();
        let mut rng = Rng::new(1);
        let mut tags = keys.pick(&mut rng);
        tags.sort_unstable();
        assert!(tags.windows(2).all(|pair| pair[0] != pair[1]), "{tags:?}");
    }

    #[test]
    fn a_range_too_small_for_the_cores_is_refused() {
        assert!(TxKeys::new(3, 4, false).is_err());
        assert!(TxKeys::new(4, 1, false).is_err());
        assert!(TxKeys::new(100, 0, false).is_err());
    }
}

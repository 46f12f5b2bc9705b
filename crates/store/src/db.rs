//! One logical database (SELECT's index) as one core holds it: its keys, values and expiry.
//!
//! Time is always passed in (`now_ms`, milliseconds since the Unix epoch); nothing here reads
//! the clock, so tests control it. Expiry is lazy (checked on every lookup) and active
//! (an ordered index lets [`Db::active_expire`] reclaim keys nobody touches).
//!
//! For keyspace notifications a database lists, when asked ([`Db::set_reporting`]), the keys
//! it expired, the read lookups that missed and the keys it created, for its caller to take
//! and publish; it knows nothing of Pub/Sub.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dict::Dict;
use crate::snapshot::Snapshot;
use crate::value::Value;

/// Whether databases keep the keys they expire for the append-only log (on while it is
/// active): Redis propagates a DEL for every key it expires, lazily or actively, so that a
/// command logged after the expiry finds the key gone at replay, as it did when it ran.
/// Process-wide because the log is; read only when a key expires.
static LOG_EXPIRED: AtomicBool = AtomicBool::new(false);

/// What a database expired, for the log: a key (logged as DEL), or fields of a hash (HDEL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expired {
    Key(Box<[u8]>),
    Fields(Box<[u8]>, Vec<Box<[u8]>>),
}

/// Turns [`LOG_EXPIRED`] on or off (the append-only log starts or stops).
pub fn set_log_expired(on: bool) {
    LOG_EXPIRED.store(on, Ordering::Relaxed);
}

/// A key's value. Its metadata (the LRU clock and the TTL flag) lives in the dict node beside
/// it ([`Meta`]), and the TTL itself in the database's expiry maps: most keys have none. So
/// a key's node is the link, the value, 4 bytes of metadata and the key: 39 bytes for a
/// 10-byte key, one allocation in mimalloc's 40-byte class.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
}

impl Entry {
    pub fn new(value: Value) -> Self {
        Entry { value }
    }
}

/// What a key costs in its database besides its value, for MEMORY USAGE (with
/// [`Value::memory_usage`]): its dict node (the link, the [`Entry`], the metadata, the key's
/// length and bytes: one allocation) less the entry, which the value's estimate counts as
/// its own representation. So the two add up to the node and what the value owns, counted
/// once. Redis adds the key's sds and `sizeof(dictEntry)` the same way; like it, this leaves
/// out the key's share of the bucket array (half a pointer to a pointer, see
/// [`crate::dict`]) and the TTL maps' entries of a key with a TTL. The allocator's rounding
/// up is not counted either.
pub fn key_overhead(key_len: usize) -> usize {
    Dict::<Entry, Meta>::node_bytes(key_len) - std::mem::size_of::<Entry>()
}

/// Redis's LRU clock: seconds, 24 bits, wrapping about every 194 days.
pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

/// The LRU clock at `now_ms`.
pub fn lru_clock(now_ms: u64) -> u32 {
    (now_ms / 1000) as u32 & LRU_CLOCK_MAX
}

/// Seconds since `lru`, across one wrap of the clock (Redis's `estimateObjectIdleTime`).
pub fn idle_seconds(lru: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    if now >= lru {
        (now - lru) as u64
    } else {
        (LRU_CLOCK_MAX - lru + now) as u64
    }
}

/// Redis's `LFU_INIT_VAL`: the counter a new key starts with under an LFU policy.
pub const LFU_INIT_VAL: u8 = 5;

/// Redis's LFU clock: minutes, 16 bits (`LFUGetTimeInMinutes`).
pub fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

/// Under an LFU policy a key's 24 bits hold, as in Redis, the minute its counter last
/// decayed (high 16) and the counter itself (low 8).
pub fn lfu_bits(counter: u8, now_ms: u64) -> u32 {
    (lfu_minutes(now_ms) << 8) | counter as u32
}

/// The counter in `bits`, decayed by one per `decay_time_min` minutes since it was last
/// decremented (Redis's `LFUDecrAndReturn`; 0 minutes: no decay).
pub fn lfu_decayed(bits: u32, now_ms: u64, decay_time_min: u32) -> u8 {
    let then = bits >> 8;
    let counter = (bits & 0xff) as u8;
    let now = lfu_minutes(now_ms);
    let elapsed = if now >= then { now - then } else { 65535 - then + now };
    let periods = elapsed.checked_div(decay_time_min).unwrap_or(0);
    counter.saturating_sub(periods.min(255) as u8)
}

/// The `lfu-log-factor` and `lfu-decay-time` of an LFU policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lfu {
    pub log_factor: u32,
    pub decay_time_min: u32,
}

/// How accesses update a key's metadata: the LRU clock, or under an LFU policy Redis's
/// logarithmic counter (`updateLFU`), which needs a little randomness of its own.
#[derive(Debug, Clone, Copy)]
struct Access {
    lfu: Option<Lfu>,
    /// xorshift64 state for the counter's probabilistic increment.
    rng: u64,
}

impl Default for Access {
    fn default() -> Self {
        Access { lfu: None, rng: 0x9e37_79b9_7f4a_7c15 }
    }
}

impl Access {
    /// An access to a key (a lookup, a write).
    #[inline]
    fn touch(&mut self, meta: &mut Meta, now_ms: u64) {
        match self.lfu {
            None => meta.touch(now_ms),
            Some(lfu) => self.touch_lfu(meta, lfu, now_ms),
        }
    }

    /// The metadata of a key just created.
    #[inline]
    fn init(&self, meta: &mut Meta, now_ms: u64) {
        match self.lfu {
            None => meta.touch(now_ms),
            Some(_) => meta.set_lru(lfu_bits(LFU_INIT_VAL, now_ms)),
        }
    }

    #[cold]
    fn touch_lfu(&mut self, meta: &mut Meta, lfu: Lfu, now_ms: u64) {
        let mut counter = lfu_decayed(meta.lru(), now_ms, lfu.decay_time_min);
        // Redis's LFULogIncr: the higher the counter, the less likely it grows.
        if counter < 255 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let r = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
            let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
            if r < 1.0 / (base * lfu.log_factor as f64 + 1.0) {
                counter += 1;
            }
        }
        meta.set_lru(lfu_bits(counter, now_ms));
    }
}

/// A key's metadata, in its dict node: the LRU clock (low 24 bits) and whether the key has a
/// TTL (the top bit; then `Db::ttl` holds it). Only [`Db`] keeps the flag and the maps in step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta(u32);

impl Meta {
    const TTL: u32 = 1 << 31;

    fn lru(self) -> u32 {
        self.0 & LRU_CLOCK_MAX
    }

    fn touch(&mut self, now_ms: u64) {
        self.0 = (self.0 & Self::TTL) | lru_clock(now_ms);
    }

    fn set_lru(&mut self, lru: u32) {
        self.0 = (self.0 & Self::TTL) | (lru & LRU_CLOCK_MAX);
    }

    fn has_ttl(self) -> bool {
        self.0 & Self::TTL != 0
    }

    fn set_has_ttl(&mut self, has_ttl: bool) {
        self.0 = if has_ttl { self.0 | Self::TTL } else { self.0 & !Self::TTL };
    }
}

/// An entry taken out of a database with its TTL and LRU clock, to be put back elsewhere
/// (RENAME, MOVE).
#[derive(Debug, Clone, PartialEq)]
pub struct Detached {
    pub entry: Entry,
    pub expire_at_ms: Option<u64>,
    pub lru: u32,
}

/// Counters a database keeps; the shard sums them for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbStats {
    pub expired_keys: u64,
    /// Hash fields removed because their TTL passed (INFO's `expired_subkeys`).
    pub expired_fields: u64,
    /// Keys removed to stay under `maxmemory` (INFO's `evicted_keys`).
    pub evicted_keys: u64,
    /// Changes as Redis counts them in `server.dirty`: what save points and
    /// `rdb_changes_since_last_save` count, and what the AOF checks to log a write. The
    /// store never counts on its own (SET adds one, RPUSH one per element, a no-op write
    /// nothing, a key expired on access nothing): each command adds what it changed with
    /// [`Db::add_changes`].
    pub changes: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
}

/// What a database reports to its caller as it happens (keyspace notifications): the store
/// knows nothing of Pub/Sub, it only lists the keys, and the caller publishes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reporting {
    /// Keys removed because their TTL passed (lazily or by the active cycle).
    pub expired: bool,
    /// Read lookups that found no key.
    pub miss: bool,
    /// Keys created.
    pub new: bool,
    /// Keys evicted to stay under `maxmemory`.
    pub evicted: bool,
    /// Hashes some of whose fields expired (`hexpired`).
    pub fields_expired: bool,
    /// Hashes deleted because their last field expired (`del`).
    pub emptied: bool,
}

/// One thing a database reported about a key (see [`Reporting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Expired,
    Evicted,
    Miss,
    New,
    FieldsExpired,
    Emptied,
}

/// One database on one core.
#[derive(Default)]
pub struct Db {
    dict: Dict<Entry, Meta>,
    /// key -> absolute expiry in Unix milliseconds, for every key with a TTL.
    ttl: Dict<u64>,
    /// (expire_at_ms, key) for every key with a TTL, in expiry order.
    expires: BTreeSet<(u64, Box<[u8]>)>,
    /// The key bytes `expires` holds (memory figures, without a walk).
    expires_key_bytes: usize,
    pub stats: DbStats,
    /// How implicit deletes free their values (see [`crate::lazyfree::Policy`]).
    pub(crate) lazy: crate::lazyfree::Policy,
    /// A snapshot being taken (BGSAVE): every write saves the old entry first if the walk
    /// has not reached it. None almost always, so a write pays one branch.
    snapshot: Option<Box<Snapshot>>,
    /// What to report; all false by default, so each place that reports costs one branch.
    reporting: Reporting,
    /// Reports not yet taken by the caller, oldest first.
    reports: Vec<(Report, Box<[u8]>)>,
    /// Keys expired since the runtime last took them for the log (see [`LOG_EXPIRED`]).
    expired_log: Vec<Expired>,
    /// (earliest field expiry, key) of every hash whose fields have TTLs (Redis 7.4), for
    /// the active cycle and as the test that lets a hash command skip looking for expired
    /// fields: empty, no hash here has any. Each such hash records the expiry it is listed
    /// under ([`Hash::indexed_expiry`]); a hash that leaves its key (deleted, renamed,
    /// overwritten) takes its entry with it, so the index holds exactly the listed hashes.
    field_expires: BTreeSet<(u64, Box<[u8]>)>,
    /// How many hashes here are listed in `field_expires` (INFO's `subexpiry`).
    volatile_hashes: usize,
    /// LRU clocks or LFU counters (see [`Access`]).
    access: Access,
    /// The append-only log is being replayed (Redis's `server.loading`): no key expires, and
    /// an expiry already past is stored rather than deleting the key, so the log's commands
    /// find the keys they found when they ran; the keys expire once the load is over. A
    /// replica stays in this state while its master feeds it (Redis's replicas expire
    /// nothing themselves: the master's DELs do).
    loading: bool,
    /// On a replica (`loading`), while a client's read runs: a key whose time has passed is
    /// missing to it, though it stays until the master's DEL (Redis's `expireIfNeeded` on a
    /// replica). The master's own commands see it, as they did on the master.
    hide_expired: bool,
    /// Cluster mode (database 0): each hash slot's keys, kept on every insert and removal
    /// (see [`Db::track_slots`]); None otherwise, for one branch per change.
    slots: Option<Box<SlotIndex>>,
}

/// Each hash slot's keys: how many (always), and, while slots are being emptied, the top 32
/// bits of their SCAN positions ([`Dict::scan_position_high`]), from which
/// [`Dict::visit_position_high`] finds them again. GETKEYSINSLOT is then O(keys asked for),
/// where a walk of the core's keys was O(keys held) per call, and `redis-cli --cluster
/// reshard` of a big node took as many walks as it made calls (300 calls on a million keys:
/// 37 s, now 0.035 s). The positions cost about 10 bytes a key (Redis 7.0's per-slot lists
/// cost 16) and a quarter more time per new key (a SET of new keys at pipeline 16), so they
/// exist only from the first GETKEYSINSLOT (one walk builds them) until a minute passes
/// without one (see [`Db::forget_slot_keys_unused_since`]). Keys of one slot may share a
/// position: the entry stays until the last of them goes.
#[derive(Default)]
struct SlotIndex {
    counts: Box<[u32]>,
    positions: Option<Box<[PositionSet]>>,
    /// When GETKEYSINSLOT last used the positions (Unix ms).
    positions_used_ms: u64,
}

/// Positions are hashes already: they index the set as they are.
type PositionSet = std::collections::HashSet<u32, std::hash::BuildHasherDefault<AsIs>>;

#[derive(Default)]
struct AsIs(u64);

impl std::hash::Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("only u32 positions are hashed")
    }

    fn write_u32(&mut self, n: u32) {
        // hashbrown takes the bucket from the low bits and its tag from the top 7: both
        // random in a position's top half, spread over the whole word.
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl SlotIndex {
    fn empty() -> Box<SlotIndex> {
        Box::new(SlotIndex { counts: vec![0; crate::slot::SLOT_COUNT as usize].into_boxed_slice(), positions: None, positions_used_ms: 0 })
    }

    /// Every key's position in its slot's set.
    fn positions_of(dict: &Dict<Entry, Meta>) -> Box<[PositionSet]> {
        let mut positions: Box<[PositionSet]> = (0..crate::slot::SLOT_COUNT).map(|_| PositionSet::default()).collect();
        for (key, _) in dict.iter() {
            positions[crate::slot::key_slot(key) as usize].insert(dict.scan_position_high(key));
        }
        positions
    }
}

impl Db {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys, including expired ones not yet reclaimed (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Starts or ends a replay of the append-only log (see the `loading` field).
    pub fn set_loading(&mut self, loading: bool) {
        self.loading = loading;
    }

    /// Whether keys never expire here now (see the `loading` field): a load, or a replica.
    #[inline]
    pub fn loading(&self) -> bool {
        self.loading
    }

    /// Starts or ends a replica client's read (see the `hide_expired` field).
    #[inline]
    pub fn set_hide_expired(&mut self, hide: bool) {
        self.hide_expired = hide;
    }

    /// Whether `key` is to look missing although it is here (see `hide_expired`).
    #[inline]
    fn hidden(&self, key: &[u8], now_ms: u64) -> bool {
        self.hide_expired && self.ttl.get(key).is_some_and(|at| now_ms > *at)
    }

    /// Whether an expiry at `at_ms` has passed at `now_ms` for a command that sets one: then
    /// the command deletes instead of storing it (Redis's `checkAlreadyExpired`). Never
    /// while the log is replayed.
    pub fn expiry_passed(&self, at_ms: i64, now_ms: u64) -> bool {
        !self.loading && at_ms <= now_ms as i64
    }

    /// Chooses what this database reports (see [`Reporting`]).
    pub fn set_reporting(&mut self, reporting: Reporting) {
        self.reporting = reporting;
        if reporting == Reporting::default() {
            self.reports = Vec::new();
        }
    }

    /// What this database reports.
    pub fn reporting(&self) -> Reporting {
        self.reporting
    }

    /// The reports since the last call, oldest first.
    pub fn take_reports(&mut self) -> Vec<(Report, Box<[u8]>)> {
        std::mem::take(&mut self.reports)
    }

    /// The keys expired since the last call, oldest first, while the log wants them (see
    /// [`LOG_EXPIRED`]).
    pub fn take_expired_log(&mut self) -> Vec<Expired> {
        std::mem::take(&mut self.expired_log)
    }

    /// Whether keys expired since the last [`Db::take_expired_log`] wait to be logged.
    pub fn has_expired_log(&self) -> bool {
        !self.expired_log.is_empty()
    }

    /// Counts, reports and logs a key removed because its TTL passed.
    fn note_expired(&mut self, key: &[u8]) {
        self.stats.expired_keys += 1;
        if self.reporting.expired {
            self.report(Report::Expired, key);
        }
        if LOG_EXPIRED.load(Ordering::Relaxed) {
            self.expired_log.push(Expired::Key(key.into()));
        }
    }

    #[cold]
    fn report(&mut self, report: Report, key: &[u8]) {
        self.reports.push((report, key.into()));
    }

    /// A read lookup found nothing (fields apart: the caller holds a borrow of the dict).
    #[inline]
    fn missed(stats: &mut DbStats, reporting: Reporting, reports: &mut Vec<(Report, Box<[u8]>)>, key: &[u8]) {
        stats.keyspace_misses += 1;
        if reporting.miss {
            reports.push((Report::Miss, key.into()));
        }
    }

    /// Whether `entry`, stored under `key`, has expired at `now_ms`.
    fn is_expired(ttl: &Dict<u64>, key: &[u8], meta: Meta, now_ms: u64) -> bool {
        meta.has_ttl() && ttl.get(key).is_some_and(|at| now_ms > *at)
    }

    /// The absolute expiry of `key` in Unix milliseconds, if it exists and has a TTL. Does
    /// not expire the key: look it up first.
    pub fn expire_at(&self, key: &[u8]) -> Option<u64> {
        self.ttl.get(key).copied()
    }

    /// Removes `key` if it has expired; returns whether it did.
    fn expire_if_needed(&mut self, key: &[u8], now_ms: u64) -> bool {
        if self.expires.is_empty() || self.loading {
            return false;
        }
        match self.dict.get_with_meta(key) {
            Some((_, meta)) if Self::is_expired(&self.ttl, key, *meta, now_ms) => {
                self.remove_expired(key);
                true
            }
            _ => false,
        }
    }

    /// Warms the cache for commands about to look up `keys` (a pipelined batch): their
    /// nodes and values arrive in parallel rather than one miss after another.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        self.dict.prefetch_deep(keys, |entry| entry.value.prefetch(), |entry| entry.value.prefetch_inner());
    }

    /// Prefetches in two steps, for one key looked up after other work: first its bucket,
    /// then its chain's first node (see [`Dict::prefetch_bucket`]).
    pub fn prefetch_bucket(&self, key: &[u8]) {
        self.dict.prefetch_bucket(key);
    }

    /// The second step of [`Db::prefetch_bucket`].
    pub fn prefetch_head(&self, key: &[u8]) {
        self.dict.prefetch_head(key);
    }

    /// Warms the cache for commands about to look up `members` in the collection at `key`
    /// (a pipelined batch of HSET, SISMEMBER, ZSCORE ...; see [`Value::prefetch_members`]).
    /// Waits for the key's own lookup, so prefetch the key first.
    pub fn prefetch_members(&self, key: &[u8], members: &[&[u8]]) {
        if let Some(entry) = self.dict.get(key) {
            entry.value.prefetch_members(members);
        }
    }

    /// Looks a key up for reading: expires it if due, counts a hit or a miss, and updates
    /// its access time.
    pub fn lookup_read(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.expire_if_needed(key, now_ms);
        match self.dict.get_with_meta_mut(key) {
            Some((entry, meta)) if !(self.hide_expired && Self::is_expired(&self.ttl, key, *meta, now_ms)) => {
                self.stats.keyspace_hits += 1;
                self.access.touch(meta, now_ms);
                Some(&*entry)
            }
            _ => {
                Self::missed(&mut self.stats, self.reporting, &mut self.reports, key);
                None
            }
        }
    }

    /// [`Db::lookup_read`] for reads that change only a value's representation, never its
    /// contents: an encoding conversion, a cached count (PFCOUNT), a collection borrowed and
    /// put back within the same command. A snapshot in progress does not treat these as
    /// writes, so anything that changes what the value holds must use [`Db::lookup_write`].
    pub fn lookup_read_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        self.expire_if_needed(key, now_ms);
        match self.dict.get_with_meta_mut(key) {
            Some((entry, meta)) if !(self.hide_expired && Self::is_expired(&self.ttl, key, *meta, now_ms)) => {
                self.stats.keyspace_hits += 1;
                self.access.touch(meta, now_ms);
                Some(entry)
            }
            _ => {
                Self::missed(&mut self.stats, self.reporting, &mut self.reports, key);
                None
            }
        }
    }

    /// Looks a key up for reading without touching its access time (Redis's LOOKUP_NOTOUCH, as
    /// EXISTS, TYPE, TTL and OBJECT use it): expires it if due and counts a hit or a miss.
    pub fn lookup_read_notouch(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.expire_if_needed(key, now_ms);
        match self.dict.get(key) {
            Some(entry) if !self.hidden(key, now_ms) => {
                self.stats.keyspace_hits += 1;
                Some(entry)
            }
            _ => {
                Self::missed(&mut self.stats, self.reporting, &mut self.reports, key);
                None
            }
        }
    }

    /// [`Db::lookup_read_notouch`] that never reports a miss (Redis's LOOKUP_NONOTIFY, as
    /// OBJECT looks keys up): the miss is still counted.
    pub fn lookup_read_notouch_unreported(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let reporting = self.reporting;
        self.reporting.miss = false;
        let found = self.lookup_read_notouch(key, now_ms).is_some();
        self.reporting = reporting;
        if found {
            self.dict.get(key)
        } else {
            None
        }
    }

    /// Looks a key up for writing: expires it if due and updates its access time.
    pub fn lookup_write(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        self.expire_if_needed(key, now_ms);
        if self.hidden(key, now_ms) {
            return None;
        }
        self.before_write(key);
        let (entry, meta) = self.dict.get_with_meta_mut(key)?;
        self.access.touch(meta, now_ms);
        Some(entry)
    }

    /// Looks a key up without side effects on stats or access time (OBJECT, TYPE-like
    /// introspection still expires it, as Redis's lookupKeyReadWithFlags(NOTOUCH) does).
    pub fn lookup_quiet(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.expire_if_needed(key, now_ms);
        if self.hidden(key, now_ms) {
            return None;
        }
        self.dict.get(key)
    }

    /// [`Db::lookup_quiet`] for changes of representation only (see [`Db::lookup_read_mut`]).
    pub fn lookup_quiet_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        self.expire_if_needed(key, now_ms);
        if self.hidden(key, now_ms) {
            return None;
        }
        self.dict.get_mut(key)
    }

    /// The LRU clock of `key` (for OBJECT IDLETIME and DEBUG OBJECT), without touching it.
    /// Look the key up first: this does not expire it.
    pub fn lru(&self, key: &[u8]) -> Option<u32> {
        self.dict.get_with_meta(key).map(|(_, meta)| meta.lru())
    }

    /// Chooses how accesses update keys: LRU clocks, or LFU counters (`Some`). Keys keep
    /// their bits when the policy changes, read the other way, as in Redis.
    pub fn set_lfu(&mut self, lfu: Option<Lfu>) {
        self.access.lfu = lfu;
    }

    /// The LFU counter of `key`, decayed to now (OBJECT FREQ), without touching it.
    pub fn lfu_counter(&self, key: &[u8], now_ms: u64) -> Option<u8> {
        let decay = self.access.lfu.map_or(1, |lfu| lfu.decay_time_min);
        self.lru(key).map(|bits| lfu_decayed(bits, now_ms, decay))
    }

    /// Whether `key` is in the table, expired or not, without any side effect.
    pub fn holds(&self, key: &[u8]) -> bool {
        self.dict.contains_key(key)
    }

    /// Sets the LRU clock of an existing key (DEBUG and tests).
    pub fn set_lru(&mut self, key: &[u8], lru: u32) -> bool {
        self.dict.get_with_meta_mut(key).map(|(_, meta)| meta.set_lru(lru)).is_some()
    }

    /// Counts `n` changes (Redis's `server.dirty += n`), for the command that made them.
    #[inline]
    pub fn add_changes(&mut self, n: u64) {
        self.stats.changes += n;
    }

    /// Whether `key` exists (not expired).
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.lookup_quiet(key, now_ms).is_some()
    }

    /// Sets `key` to `value` and removes any TTL it had (SET's default).
    pub fn set(&mut self, key: &[u8], value: Value, now_ms: u64) {
        self.set_with_expire(key, value, None, now_ms);
    }

    /// Sets `key` to `value` with the given absolute expiry (None: no TTL).
    /// Makes room for `additional` more keys (a load), so the table does not grow on the way.
    pub fn reserve(&mut self, additional: usize) {
        self.dict.reserve(additional);
    }

    /// Prefetches what inserting or looking up `keys` will touch (see [`Dict::prefetch`]).
    pub fn prefetch_keys(&self, keys: &[&[u8]]) {
        self.dict.prefetch(keys, |_| {});
    }

    pub fn set_with_expire(&mut self, key: &[u8], mut value: Value, expire_at_ms: Option<u64>, now_ms: u64) {
        self.before_write(key);
        let volatile = Self::unindexed(&mut value);
        let entry = Entry::new(value);
        let had_ttl = match self.dict.get_with_meta_mut(key) {
            Some((old, meta)) => {
                // Keep the old TTL flag until set_expire below clears or replaces it.
                let previous = std::mem::replace(old, entry);
                self.access.touch(meta, now_ms);
                let had_ttl = meta.has_ttl();
                Self::forget_indexed(&mut self.field_expires, &mut self.volatile_hashes, key, &previous.value);
                self.lazy.dispose_overwritten(previous.value);
                had_ttl
            }
            None => {
                let mut meta = Meta::default();
                self.access.init(&mut meta, now_ms);
                self.dict.insert_new_with(key, entry, meta);
                self.slot_added(key);
                if self.reporting.new {
                    self.report(Report::New, key);
                }
                false
            }
        };
        // The common case, a plain SET over a key without a TTL, needs no second lookup.
        if had_ttl || expire_at_ms.is_some() {
            self.apply_expire(key, expire_at_ms);
        }
        if volatile {
            self.reindex_hash(key);
        }
    }

    /// Whether `value` is a hash with field TTLs, which must be listed under its new key:
    /// then it is marked as not listed yet (it may come from another key: RENAME, MOVE).
    #[inline]
    fn unindexed(value: &mut Value) -> bool {
        match value {
            Value::Hash(hash) if hash.has_field_ttls() || hash.indexed_expiry().is_some() => {
                hash.set_indexed_expiry(None);
                true
            }
            _ => false,
        }
    }

    /// A value leaves the database (deleted, overwritten, renamed away): a hash listed in the
    /// index of field expiries leaves it too, so the index never outlives its hashes.
    #[inline]
    fn forget_indexed(field_expires: &mut BTreeSet<(u64, Box<[u8]>)>, volatile_hashes: &mut usize, key: &[u8], value: &Value) {
        if let Value::Hash(hash) = value {
            if let Some(at) = hash.indexed_expiry() {
                *volatile_hashes -= 1;
                field_expires.remove(&(at, Box::from(key)));
            }
        }
    }

    /// Lists the hash at `key` under its earliest field expiry, after its TTLs changed (or it
    /// was stored here): commands that set, persist or remove fields with TTLs call this.
    pub fn reindex_hash(&mut self, key: &[u8]) {
        let Some(Entry { value: Value::Hash(hash), .. }) = self.dict.get_mut(key) else { return };
        let (listed, next) = (hash.indexed_expiry(), hash.next_field_expiry());
        if listed == next {
            return;
        }
        hash.set_indexed_expiry(next);
        match (listed, next) {
            (None, Some(_)) => self.volatile_hashes += 1,
            (Some(_), None) => self.volatile_hashes -= 1,
            _ => {}
        }
        if let Some(at) = listed {
            self.field_expires.remove(&(at, Box::from(key)));
        }
        if let Some(at) = next {
            self.field_expires.insert((at, key.into()));
        }
    }

    /// Bytes this database spends besides keys and values, as MEMORY STATS reports Redis's
    /// per database: the main table (its bucket array and each node's link, metadata and
    /// key length), and the TTLs (their table, nodes with the key copies, and index entries).
    pub fn overhead(&self) -> (usize, usize) {
        let pointer = std::mem::size_of::<usize>();
        let node_header = Dict::<Entry, Meta>::node_bytes(0) - std::mem::size_of::<Entry>();
        let main = self.dict.bucket_count() * pointer + self.dict.len() * node_header;
        let index_entry = std::mem::size_of::<(u64, Box<[u8]>)>() + 16;
        // Each TTL holds the key twice: in its table node and in the index.
        let ttl_keys = 2 * self.expires_key_bytes;
        let expires = self.ttl.bucket_count() * pointer + self.ttl.len() * Dict::<u64>::node_bytes(0) + self.expires.len() * index_entry + ttl_keys;
        (main, expires)
    }

    /// How many hashes here have fields with TTLs (INFO's `subexpiry`).
    pub fn volatile_hashes(&self) -> usize {
        self.volatile_hashes
    }

    /// Removes the fields of the hash at `key` whose TTL has passed, as Redis's hash commands
    /// do before they look at a field (lazy expiry): counted, reported (`hexpired`), logged
    /// (HDEL), and the key deleted (`del`) when no field is left. Returns how many it removed.
    /// Costs one branch while no hash here has field TTLs.
    #[inline]
    pub fn expire_hash_fields(&mut self, key: &[u8], now_ms: u64) -> usize {
        if self.field_expires.is_empty() || self.loading {
            return 0;
        }
        self.expire_hash_fields_due(key, now_ms)
    }

    #[cold]
    fn expire_hash_fields_due(&mut self, key: &[u8], now_ms: u64) -> usize {
        match self.dict.get(key) {
            Some(Entry { value: Value::Hash(hash), .. }) if hash.next_field_expiry().is_some_and(|at| at < now_ms) => {}
            _ => return 0,
        }
        self.before_write(key);
        let Some(Entry { value: Value::Hash(hash), .. }) = self.dict.get_mut(key) else { unreachable!("checked") };
        let fields = hash.expire_fields(now_ms);
        let emptied = hash.is_empty();
        let count = fields.len();
        self.stats.expired_fields += count as u64;
        if self.reporting.fields_expired {
            self.report(Report::FieldsExpired, key);
        }
        if LOG_EXPIRED.load(Ordering::Relaxed) {
            self.expired_log.push(Expired::Fields(key.into(), fields));
        }
        if emptied {
            if let Some(entry) = self.remove(key) {
                self.lazy.dispose_expired(entry.value);
            }
            if self.reporting.emptied {
                self.report(Report::Emptied, key);
            }
        } else {
            self.reindex_hash(key);
        }
        count
    }

    /// The active cycle for hash fields: expires the due fields of up to `hashes_max`
    /// hashes, earliest first; returns how many fields it removed.
    pub fn active_expire_fields(&mut self, now_ms: u64, hashes_max: usize) -> usize {
        let mut removed = 0;
        if self.loading {
            return 0;
        }
        for _ in 0..hashes_max {
            let Some((at, _)) = self.field_expires.first() else { break };
            if *at >= now_ms {
                break;
            }
            let (at, key) = self.field_expires.pop_first().expect("first exists");
            // The index holds exactly the listed hashes (see `forget_indexed`); the check is
            // a guard.
            match self.dict.get_mut(&key) {
                Some(Entry { value: Value::Hash(hash), .. }) if hash.indexed_expiry() == Some(at) => {
                    hash.set_indexed_expiry(None);
                    self.volatile_hashes -= 1;
                }
                _ => continue,
            }
            if self.expire_if_needed(&key, now_ms) {
                continue;
            }
            removed += self.expire_hash_fields_due(&key, now_ms);
            // Listed again under its next expiry (expire_hash_fields_due reindexes what it
            // left; this covers a hash whose due fields were already gone).
            self.reindex_hash(&key);
        }
        removed
    }

    /// Whether some hash has a field already due to expire.
    pub fn has_expired_fields(&self, now_ms: u64) -> bool {
        !self.loading && self.field_expires.first().is_some_and(|(at, _)| *at < now_ms)
    }

    /// Replaces the value of `key` keeping its TTL (KEEPTTL); inserts without TTL if absent.
    pub fn set_keep_ttl(&mut self, key: &[u8], mut value: Value, now_ms: u64) {
        self.expire_if_needed(key, now_ms);
        self.before_write(key);
        let volatile = Self::unindexed(&mut value);
        match self.dict.get_with_meta_mut(key) {
            Some((entry, meta)) => {
                let previous = std::mem::replace(&mut entry.value, value);
                self.access.touch(meta, now_ms);
                Self::forget_indexed(&mut self.field_expires, &mut self.volatile_hashes, key, &previous);
                self.lazy.dispose_overwritten(previous);
                if volatile {
                    self.reindex_hash(key);
                }
            }
            None => self.set(key, value, now_ms),
        }
    }

    /// Puts back an entry taken with [`Db::take`] (COPY, MOVE, RENAME), with its TTL and its
    /// access time.
    pub fn insert_detached(&mut self, key: &[u8], detached: Detached, now_ms: u64) {
        self.set_with_expire(key, detached.entry.value, detached.expire_at_ms, now_ms);
        self.set_lru(key, detached.lru);
    }

    /// Sets or clears the TTL of an existing key. Returns false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at_ms: Option<u64>) -> bool {
        if !self.dict.contains_key(key) {
            return false;
        }
        self.before_write(key);
        self.apply_expire(key, expire_at_ms)
    }

    /// [`Db::set_expire`] without the write hook (the caller ran it).
    fn apply_expire(&mut self, key: &[u8], expire_at_ms: Option<u64>) -> bool {
        let Some((_, meta)) = self.dict.get_with_meta_mut(key) else {
            return false;
        };
        let had_ttl = meta.has_ttl();
        meta.set_has_ttl(expire_at_ms.is_some());
        let old = match (had_ttl, expire_at_ms) {
            (_, Some(at)) => self.ttl.insert(key, at),
            (true, None) => self.ttl.remove(key),
            // The common case, SET without a TTL on a key without one: no map to touch.
            (false, None) => None,
        };
        if let Some(old) = old {
            let removed = self.expires.remove(&(old, Box::from(key)));
            debug_assert!(removed, "expiry index holds every TTL");
            self.expires_key_bytes -= key.len();
        }
        if let Some(at) = expire_at_ms {
            self.expires.insert((at, key.into()));
            self.expires_key_bytes += key.len();
        }
        true
    }

    /// Starts keeping each hash slot's keys (cluster mode), from what is here now.
    pub fn track_slots(&mut self) {
        let mut index = SlotIndex::empty();
        for (key, _) in self.dict.iter() {
            index.counts[crate::slot::key_slot(key) as usize] += 1;
        }
        self.slots = Some(index);
    }

    /// How many keys `slot` holds (expired ones not reclaimed yet included, as Redis's
    /// `countKeysInSlot`), when [`Db::track_slots`] is on.
    pub fn slot_len(&self, slot: u16) -> Option<usize> {
        self.slots.as_ref().map(|index| index.counts[slot as usize] as usize)
    }

    /// Up to `count` keys of `slot` (expired ones not reclaimed yet included, as Redis's
    /// `getKeysInSlot`), when [`Db::track_slots`] is on. The first call in a while walks
    /// every key once to index them by slot (see `SlotIndex`).
    pub fn slot_keys(&mut self, slot: u16, count: usize, now_ms: u64) -> Option<Vec<&[u8]>> {
        let index = self.slots.as_mut()?;
        index.positions_used_ms = now_ms;
        let positions = index.positions.get_or_insert_with(|| SlotIndex::positions_of(&self.dict));
        let mut keys = Vec::new();
        for &position in &positions[slot as usize] {
            if keys.len() >= count {
                break;
            }
            self.dict.visit_position_high(position, |key, _, _| {
                if keys.len() < count && crate::slot::key_slot(key) == slot {
                    keys.push(key);
                }
            });
        }
        Some(keys)
    }

    /// Drops the keys' positions if GETKEYSINSLOT has not used them since `cutoff_ms` (a
    /// reshard is over): writes no longer pay for them. True when dropped.
    pub fn forget_slot_keys_unused_since(&mut self, cutoff_ms: u64) -> bool {
        match self.slots.as_mut() {
            Some(index) if index.positions.is_some() && index.positions_used_ms < cutoff_ms => {
                index.positions = None;
                true
            }
            _ => false,
        }
    }

    /// `key` was just inserted.
    #[inline]
    fn slot_added(&mut self, key: &[u8]) {
        if let Some(index) = self.slots.as_mut() {
            let slot = crate::slot::key_slot(key) as usize;
            index.counts[slot] += 1;
            if let Some(positions) = index.positions.as_mut() {
                positions[slot].insert(self.dict.scan_position_high(key));
            }
        }
    }

    /// `key` was just removed. Its position stays if another key of its slot has it too.
    #[inline]
    fn slot_removed(&mut self, key: &[u8]) {
        if let Some(index) = self.slots.as_mut() {
            let slot = crate::slot::key_slot(key);
            index.counts[slot as usize] -= 1;
            if let Some(positions) = index.positions.as_mut() {
                let position = self.dict.scan_position_high(key);
                let mut shared = false;
                self.dict.visit_position_high(position, |other, _, _| shared |= crate::slot::key_slot(other) == slot);
                if !shared {
                    positions[slot as usize].remove(&position);
                }
            }
        }
    }

    /// Removes `key` (whether or not it has expired) and returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.take(key).map(|detached| detached.entry)
    }

    /// Removes `key` and returns its entry with its TTL.
    pub fn take(&mut self, key: &[u8]) -> Option<Detached> {
        self.before_write(key);
        let (entry, meta) = self.dict.remove_with_meta(key)?;
        self.slot_removed(key);
        Self::forget_indexed(&mut self.field_expires, &mut self.volatile_hashes, key, &entry.value);
        let mut expire_at_ms = None;
        if meta.has_ttl() {
            let at = self.ttl.remove(key).expect("a key with a TTL is in the TTL map");
            let removed = self.expires.remove(&(at, Box::from(key)));
            debug_assert!(removed, "expiry index holds every TTL");
            self.expires_key_bytes -= key.len();
            expire_at_ms = Some(at);
        }
        Some(Detached { entry, expire_at_ms, lru: meta.lru() })
    }

    /// A copy of `key`'s entry with its TTL, if it exists (not expired).
    pub fn copy_detached(&mut self, key: &[u8], now_ms: u64) -> Option<Detached> {
        self.expire_if_needed(key, now_ms);
        let (entry, meta) = self.dict.get_with_meta(key)?;
        Some(Detached { entry: entry.clone(), expire_at_ms: self.ttl.get(key).copied(), lru: meta.lru() })
    }

    /// Removes every key; returns the old contents so the caller may free them lazily.
    pub fn clear(&mut self) -> Db {
        let stats = self.stats;
        let lazy = self.lazy.clone();
        let mut old = std::mem::take(self);
        self.stats = stats;
        self.lazy = lazy;
        self.reporting = old.reporting;
        self.access = old.access;
        self.loading = old.loading;
        self.slots = old.slots.as_ref().map(|_| SlotIndex::empty());
        self.reports = std::mem::take(&mut old.reports);
        self.expired_log = std::mem::take(&mut old.expired_log);
        // A snapshot keeps what it has not saved yet: copies of every key ahead of its walk.
        if let Some(mut snapshot) = old.snapshot.take() {
            if !snapshot.walked {
                for (key, _, _) in old.dict.iter_with_meta() {
                    if !Self::behind_walk(&old.dict, &snapshot, key) {
                        let detached = old.detached(key).expect("the key is present");
                        snapshot.pending.push((key.into(), detached));
                    }
                }
                snapshot.walked = true;
                snapshot.handled = Default::default();
            }
            self.snapshot = Some(snapshot);
        }
        old
    }

    // ---- Snapshots (see crate::snapshot) ----------------------------------------------

    /// Starts a snapshot of this database, recorded as database `db_index`.
    pub fn snapshot_begin(&mut self, db_index: usize) {
        assert!(self.snapshot.is_none(), "one snapshot at a time");
        let mut snapshot = Snapshot::new(db_index);
        snapshot.walked = self.dict.is_empty();
        self.snapshot = Some(Box::new(snapshot));
    }

    /// The snapshot being taken, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_deref()
    }

    /// Walks up to `buckets` more buckets of the snapshot, calling `visit` with each key the
    /// snapshot holds there (its entry, absolute expiry and LRU clock). Returns whether the
    /// walk is complete. Entries saved early come out of [`Db::snapshot_drain`] instead.
    pub fn snapshot_step(&mut self, buckets: usize, mut visit: impl FnMut(&[u8], &Entry, Option<u64>, u32)) -> bool {
        let Some(snapshot) = self.snapshot.as_deref_mut() else {
            return true;
        };
        for _ in 0..buckets {
            if snapshot.walked {
                break;
            }
            let (dict, ttl) = (&self.dict, &self.ttl);
            let next = dict.scan_step_with_meta(snapshot.cursor, |key, entry, meta| {
                if Self::behind_walk(dict, snapshot, key) {
                    return;
                }
                let expire_at = if meta.has_ttl() { ttl.get(key).copied() } else { None };
                visit(key, entry, expire_at, meta.lru());
            });
            if next == 0 {
                snapshot.walked = true;
                snapshot.handled = Default::default();
            } else {
                snapshot.frontier = snapshot.frontier.max(dict.cursor_position(next));
                snapshot.cursor = next;
            }
        }
        snapshot.walked
    }

    /// Takes the entries saved early (a write was about to change them before the walk got
    /// there), to encode with the walk's.
    pub fn snapshot_drain(&mut self) -> Vec<(Box<[u8]>, Detached)> {
        self.snapshot.as_deref_mut().map(|s| std::mem::take(&mut s.pending)).unwrap_or_default()
    }

    /// Ends the snapshot (complete or abandoned) and returns its state.
    pub fn snapshot_end(&mut self) -> Option<Box<Snapshot>> {
        self.snapshot.take()
    }

    /// Whether the snapshot's walk has passed `key` or must skip it.
    fn behind_walk(dict: &Dict<Entry, Meta>, snapshot: &Snapshot, key: &[u8]) -> bool {
        snapshot.walked || Self::position_behind_walk(snapshot, dict.scan_position(key))
    }

    fn position_behind_walk(snapshot: &Snapshot, position: u64) -> bool {
        position < snapshot.frontier || (!snapshot.handled.is_empty() && snapshot.handled.contains(&position))
    }

    /// Before `key` changes (or appears, or goes): if a snapshot's walk has not reached it,
    /// save its current entry aside (none for a new key) and mark it handled.
    #[inline]
    fn before_write(&mut self, key: &[u8]) {
        if self.snapshot.is_some() {
            self.save_before_write(key);
        }
    }

    #[cold]
    fn save_before_write(&mut self, key: &[u8]) {
        let snapshot = self.snapshot.as_deref_mut().expect("a snapshot");
        let position = self.dict.scan_position(key);
        if snapshot.walked || Self::position_behind_walk(snapshot, position) {
            return;
        }
        // Every key of this exact hash is saved now, since the walk will skip the position.
        let ttl = &self.ttl;
        self.dict.visit_position(position, |key, entry, meta| snapshot.pending.push((key.into(), Self::copy_entry(ttl, key, entry, meta))));
        snapshot.handled.insert(position);
    }

    /// A copy of `key`'s entry with its TTL and LRU clock, expired or not.
    fn detached(&self, key: &[u8]) -> Option<Detached> {
        let (entry, meta) = self.dict.get_with_meta(key)?;
        Some(Self::copy_entry(&self.ttl, key, entry, meta))
    }

    fn copy_entry(ttl: &Dict<u64>, key: &[u8], entry: &Entry, meta: &Meta) -> Detached {
        let expire_at_ms = if meta.has_ttl() { ttl.get(key).copied() } else { None };
        Detached { entry: entry.clone(), expire_at_ms, lru: meta.lru() }
    }

    /// Removes a key found expired, counting it and freeing it per `lazyfree-lazy-expire`.
    fn remove_expired(&mut self, key: &[u8]) {
        if let Some(entry) = self.remove(key) {
            self.note_expired(key);
            self.lazy.dispose_expired(entry.value);
        }
    }

    /// Reclaims up to `keys_max` expired keys, earliest first; returns how many it removed.
    pub fn active_expire(&mut self, now_ms: u64, keys_max: usize) -> usize {
        let mut removed = 0;
        if self.loading {
            return 0;
        }
        while removed < keys_max {
            let Some((at, _)) = self.expires.first() else { break };
            if *at >= now_ms {
                break;
            }
            let (_, key) = self.expires.pop_first().expect("first exists");
            self.expires_key_bytes -= key.len();
            self.before_write(&key);
            self.ttl.remove(&key);
            let entry = self.dict.remove(&key);
            debug_assert!(entry.is_some(), "expiry index only holds present keys");
            self.slot_removed(&key);
            if let Some(entry) = &entry {
                Self::forget_indexed(&mut self.field_expires, &mut self.volatile_hashes, &key, &entry.value);
            }
            self.note_expired(&key);
            if let Some(entry) = entry {
                self.lazy.dispose_expired(entry.value);
            }
            removed += 1;
        }
        removed
    }

    /// Whether any key is already due to expire (so the active cycle should run again soon).
    pub fn has_expired_keys(&self, now_ms: u64) -> bool {
        !self.loading && self.expires.first().is_some_and(|(at, _)| *at < now_ms)
    }

    /// One SCAN step over the bucket at `cursor`: calls `visit` for each live key and returns
    /// the next cursor (0 when done).
    pub fn scan_step(&self, cursor: u64, now_ms: u64, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.dict.scan_step_with_meta(cursor, |key, entry, meta| {
            if !Self::is_expired(&self.ttl, key, *meta, now_ms) {
                visit(key, entry)
            }
        })
    }

    /// Like [`Db::scan_step`], and also removes the expired keys of the bucket (counted in
    /// `expired_keys`), as Redis's SCAN expires the keys it comes across.
    pub fn scan_step_reclaiming(&mut self, cursor: u64, now_ms: u64, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        let mut expired: Vec<Box<[u8]>> = Vec::new();
        let next = self.dict.scan_step_with_meta(cursor, |key, entry, meta| {
            if Self::is_expired(&self.ttl, key, *meta, now_ms) {
                expired.push(key.into());
            } else {
                visit(key, entry)
            }
        });
        // A replica leaves them for its master's DELs (see `loading`).
        if !self.loading {
            for key in expired {
                self.remove_expired(&key);
            }
        }
        next
    }

    /// Every live key with its entry.
    pub fn iter(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.dict.iter_with_meta().filter(move |(key, _, meta)| !Self::is_expired(&self.ttl, key, **meta, now_ms)).map(|(key, entry, _)| (key, entry))
    }

    /// A random live key (RANDOMKEY). Gives up after a bounded number of expired picks, as
    /// Redis does, and then returns an expired one rather than loop forever.
    pub fn random_key(&mut self, now_ms: u64, rng: &mut impl rand::Rng) -> Option<Box<[u8]>> {
        for _ in 0..100 {
            let (key, _, meta) = self.dict.random_entry_with_meta(rng)?;
            if !Self::is_expired(&self.ttl, key, *meta, now_ms) {
                return Some(key.into());
            }
            if !self.loading {
                let key: Box<[u8]> = key.into();
                self.remove_expired(&key);
            }
        }
        self.dict.random_entry(rng).map(|(k, _)| k.into())
    }

    /// Removes `key` to make room under `maxmemory` (Redis's eviction): counted in
    /// `evicted_keys` and reported as `evicted`. The value is freed here, at once, so the
    /// memory figure the caller watches drops before it decides whether to evict more.
    /// Returns whether the key existed.
    pub fn evict(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.remove(key) else { return false };
        self.stats.evicted_keys += 1;
        if self.reporting.evicted {
            self.report(Report::Evicted, key);
        }
        drop(entry);
        true
    }

    /// Calls `visit(key, lru, expire_at)` for up to `count` keys picked at random (among the
    /// keys with a TTL when `volatile`), for eviction's sampling. A key may come twice.
    pub fn sample(&self, rng: &mut impl rand::Rng, volatile: bool, count: usize, mut visit: impl FnMut(&[u8], u32, Option<u64>)) {
        for _ in 0..count {
            if volatile {
                let Some((key, at)) = self.ttl.random_entry(rng) else { return };
                let Some((_, meta)) = self.dict.get_with_meta(key) else { continue };
                visit(key, meta.lru(), Some(*at));
            } else {
                let Some((key, _, meta)) = self.dict.random_entry_with_meta(rng) else { return };
                let at = if meta.has_ttl() { self.ttl.get(key).copied() } else { None };
                visit(key, meta.lru(), at);
            }
        }
    }

    /// The key with the earliest expiry, and that expiry (volatile-ttl's exact choice).
    pub fn soonest_expiring(&self) -> Option<(u64, &[u8])> {
        self.expires.first().map(|(at, key)| (*at, &key[..]))
    }

    /// Asserts that the TTL flag, the TTL map and the expiry index agree.
    pub fn check_invariants(&self) {
        self.dict.check_invariants();
        self.ttl.check_invariants();
        if let Some(index) = &self.slots {
            let mut expected = vec![0u32; index.counts.len()];
            for (key, _) in self.dict.iter() {
                expected[crate::slot::key_slot(key) as usize] += 1;
            }
            assert_eq!(&expected[..], &index.counts[..], "each slot's count is its keys");
            if let Some(positions) = &index.positions {
                assert!(SlotIndex::positions_of(&self.dict)[..] == positions[..], "each slot's positions are its keys'");
            }
        }
        let with_ttl = self.dict.iter_with_meta().filter(|(_, _, meta)| meta.has_ttl()).count();
        assert_eq!(with_ttl, self.ttl.len(), "the TTL map holds one item per key with a TTL");
        assert_eq!(with_ttl, self.expires.len(), "the index holds one item per key with a TTL");
        assert_eq!(self.expires_key_bytes, self.expires.iter().map(|(_, key)| key.len()).sum::<usize>(), "the index's key bytes are counted");
        for (at, key) in &self.expires {
            let (_, meta) = self.dict.get_with_meta(key).expect("indexed key is present");
            assert!(meta.has_ttl(), "an indexed key is flagged");
            assert_eq!(self.ttl.get(key), Some(at), "index time matches the TTL map");
        }
        let mut listed = 0;
        for (key, entry) in self.dict.iter() {
            if let Value::Hash(hash) = &entry.value {
                hash.check_invariants();
                assert_eq!(hash.indexed_expiry(), hash.next_field_expiry(), "a hash with field TTLs is listed under the earliest");
                if let Some(at) = hash.indexed_expiry() {
                    assert!(self.field_expires.contains(&(at, Box::from(key))), "a listed hash is in the index");
                    listed += 1;
                }
            }
        }
        assert_eq!(listed, self.volatile_hashes, "the count of listed hashes");
        assert_eq!(self.field_expires.len(), listed, "the index holds exactly the listed hashes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Str;

    fn string(s: &str) -> Value {
        Value::Str(Str::from_bytes(s.as_bytes()))
    }

    #[test]
    fn a_key_costs_its_value_and_four_bytes_of_metadata() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(std::mem::size_of::<Meta>(), 4);
    }

    #[test]
    fn a_keys_overhead_is_its_node_less_the_value() {
        // The 39-byte node of a 10-byte key (see `Entry`): 16 of them are the value's.
        assert_eq!(key_overhead(10), 39 - 16);
        assert_eq!(key_overhead(11), key_overhead(10) + 1, "a byte more per key byte");
        // Past 127 bytes the key's length takes two bytes.
        assert_eq!(key_overhead(128), key_overhead(127) + 2);
    }

    #[test]
    fn lfu_counters_start_at_five_grow_logarithmically_and_decay_per_minute() {
        let mut db = Db::new();
        db.set_lfu(Some(Lfu { log_factor: 10, decay_time_min: 1 }));
        let now = 1_700_000_000_000;
        db.set(b"hot", string("v"), now);
        db.set(b"cold", string("v"), now);
        assert_eq!(db.lfu_counter(b"hot", now), Some(LFU_INIT_VAL));
        for _ in 0..1000 {
            db.lookup_read(b"hot", now);
        }
        let hot = db.lfu_counter(b"hot", now).unwrap();
        // Redis's table (redis.conf) for lfu-log-factor 10: 1K hits give about 18.
        assert!((14..=23).contains(&hot), "1K hits: counter {hot}");
        assert_eq!(db.lfu_counter(b"cold", now), Some(LFU_INIT_VAL), "reads of other keys do not count");
        assert_eq!(db.lfu_counter(b"hot", now + 3 * 60_000), Some(hot - 3), "one less per idle minute");
        assert_eq!(db.lfu_counter(b"cold", now + 60 * 60_000), Some(0));
    }

    #[test]
    fn the_lru_clock_wraps_as_redis_s() {
        let mut meta = Meta::default();
        meta.set_has_ttl(true);
        meta.touch(5_000);
        assert_eq!((meta.lru(), meta.has_ttl()), (5, true), "touching keeps the TTL flag");
        meta.set_has_ttl(false);
        assert_eq!((meta.lru(), meta.has_ttl()), (5, false));
        assert_eq!(idle_seconds(5, 12_000), 7);
        // The clock wrapped since: Redis counts through the wrap.
        let wrapped_now_ms = (LRU_CLOCK_MAX as u64 + 1 + 3) * 1000;
        assert_eq!(idle_seconds(LRU_CLOCK_MAX - 2, wrapped_now_ms), 2 + 3);
    }

    proptest::proptest! {
        /// The database against a map of key -> (value, expiry), with the invariants checked
        /// after every operation and time moving forward.
        #[test]
        fn db_with_ttls_behaves_like_a_map(ops in proptest::collection::vec((0u8..6, 0u8..8, 1u64..40), 0..300)) {
            use std::collections::BTreeMap;
            let mut db = Db::new();
            // Slot counts and positions on, so the invariants check them after every step too.
            db.track_slots();
            assert_eq!(db.slot_keys(0, 1, 1), Some(Vec::new()));
            let mut model: BTreeMap<Vec<u8>, (String, Option<u64>)> = BTreeMap::new();
            let mut now = 1u64;
            for (op, key, n) in ops {
                now += n % 3;
                let key = vec![b'k', key];
                // Drop what has expired from the model: the db may still hold it, but must
                // never show it.
                model.retain(|_, (_, at)| at.is_none_or(|at| now <= at));
                match op {
                    0 => {
                        db.set(&key, string(&n.to_string()), now);
                        model.insert(key.clone(), (n.to_string(), None));
                    }
                    1 => {
                        db.set_with_expire(&key, string(&n.to_string()), Some(now + n), now);
                        model.insert(key.clone(), (n.to_string(), Some(now + n)));
                    }
                    2 => {
                        let present = db.contains(&key, now);
                        proptest::prop_assert_eq!(present, model.contains_key(&key));
                        if present {
                            db.set_expire(&key, if n % 2 == 0 { None } else { Some(now + n) });
                            model.get_mut(&key).unwrap().1 = if n % 2 == 0 { None } else { Some(now + n) };
                        }
                    }
                    3 => {
                        db.lookup_quiet(&key, now);
                        proptest::prop_assert_eq!(db.remove(&key).is_some(), model.remove(&key).is_some());
                    }
                    4 => {
                        // A rename to another key, with the TTL.
                        let to = vec![b'k', (key[1] + 1) % 8];
                        if db.contains(&key, now) {
                            let detached = db.take(&key).unwrap();
                            db.insert_detached(&to, detached, now);
                            let moved = model.remove(&key).unwrap();
                            model.insert(to, moved);
                        }
                    }
                    _ => {
                        db.active_expire(now, n as usize);
                    }
                }
                db.check_invariants();
                for (k, (value, at)) in &model {
                    let entry = db.lookup_quiet(k, now).map(|e| e.value.clone());
                    proptest::prop_assert_eq!(entry, Some(string(value)));
                    proptest::prop_assert_eq!(db.expire_at(k), *at);
                }
                proptest::prop_assert_eq!(db.iter(now).count(), model.len());
            }
        }
    }

    #[test]
    fn keys_of_one_slot_that_share_a_position_are_found_until_the_last_goes() {
        let mut db = Db::new();
        db.track_slots();
        db.slot_keys(0, 1, 1);
        // Keys of one slot (one hash tag) until two share the top half of a position: about
        // 2^16 keys by the birthday bound.
        let mut seen = std::collections::HashMap::new();
        let (first, second) = (0..1_000_000u32)
            .find_map(|i| {
                let key = format!("{{t}}{i}").into_bytes();
                db.set(&key, string("v"), 1);
                seen.insert(db.dict.scan_position_high(&key), key.clone()).map(|other| (other, key))
            })
            .expect("a shared position among a million keys");
        let slot = crate::slot::key_slot(b"t");
        let all = db.slot_len(slot).unwrap();
        assert_eq!(db.slot_keys(slot, usize::MAX, 1).unwrap().len(), all, "every key, the two sharing one entry included");
        db.remove(&first);
        assert_eq!(db.slot_keys(slot, usize::MAX, 1).unwrap().len(), all - 1);
        assert!(db.slot_keys(slot, usize::MAX, 1).unwrap().contains(&&second[..]), "the other key of the position is still found");
        db.remove(&second);
        assert_eq!(db.slot_keys(slot, usize::MAX, 1).unwrap().len(), all - 2);
        db.check_invariants();
    }

    #[test]
    fn slot_counts_and_keys_start_from_the_keys_and_survive_a_flush() {
        let mut db = Db::new();
        db.set(b"{a}1", string("v"), 1);
        db.set(b"{a}2", string("v"), 1);
        db.set(b"b", string("v"), 1);
        let (a, b) = (crate::slot::key_slot(b"a"), crate::slot::key_slot(b"b"));
        assert_eq!(db.slot_len(a), None, "off until asked");
        assert_eq!(db.slot_keys(a, 10, 1), None);
        db.track_slots();
        assert_eq!(db.slot_len(a), Some(2));
        assert_eq!(db.slot_len(b), Some(1));
        let mut keys = db.slot_keys(a, 10, 1).unwrap();
        keys.sort();
        assert_eq!(keys, [&b"{a}1"[..], b"{a}2"]);
        assert_eq!(db.slot_keys(a, 1, 1).unwrap().len(), 1, "no more than asked");
        assert_eq!(db.slot_keys(b, 10, 1).unwrap(), [&b"b"[..]]);
        db.remove(b"{a}1");
        assert_eq!(db.slot_len(a), Some(1));
        assert_eq!(db.slot_keys(a, 10, 1).unwrap(), [&b"{a}2"[..]]);
        // Expired and not reclaimed yet: still in its slot, as in Redis.
        db.set_with_expire(b"{a}3", string("v"), Some(5), 1);
        assert_eq!(db.slot_keys(a, 10, 1).unwrap().len(), 2);
        drop(db.clear());
        assert_eq!(db.slot_len(a), Some(0), "still counting after FLUSHALL");
        assert_eq!(db.slot_keys(a, 10, 1).unwrap(), Vec::<&[u8]>::new());
        db.set(b"b", string("v"), 1);
        assert_eq!(db.slot_len(b), Some(1));
        assert_eq!(db.slot_keys(b, 10, 1).unwrap(), [&b"b"[..]]);
        // Unused for a while: the positions go (writes stop paying for them), the counts
        // stay, and the next call finds the keys again.
        assert!(!db.forget_slot_keys_unused_since(1), "used at 1");
        assert!(db.forget_slot_keys_unused_since(2));
        db.set(b"{b}2", string("v"), 1);
        db.check_invariants();
        assert_eq!(db.slot_len(b), Some(2));
        assert_eq!(db.slot_keys(b, 10, 3).unwrap().len(), 2);
        db.check_invariants();
    }

    #[test]
    fn expired_key_is_gone_on_read_and_counted() {
        let mut db = Db::new();
        db.set_with_expire(b"k", string("v"), Some(1_000), 0);
        assert!(db.lookup_read(b"k", 1_000).is_some(), "due at 1000 but not past it");
        assert!(db.lookup_read(b"k", 1_001).is_none());
        assert_eq!(db.stats.expired_keys, 1);
        assert_eq!(db.len(), 0);
        db.check_invariants();
    }

    #[test]
    fn set_clears_ttl_and_keep_ttl_keeps_it() {
        let mut db = Db::new();
        db.set_with_expire(b"k", string("v"), Some(5_000), 0);
        db.set_keep_ttl(b"k", string("w"), 0);
        assert_eq!(
            {
                db.lookup_quiet(b"k", 0);
                db.expire_at(b"k")
            },
            Some(5_000)
        );
        db.set(b"k", string("x"), 0);
        assert_eq!(
            {
                db.lookup_quiet(b"k", 0);
                db.expire_at(b"k")
            },
            None
        );
        db.check_invariants();
    }

    #[test]
    fn a_reclaiming_scan_removes_the_expired_keys_it_passes() {
        let mut db = Db::new();
        db.set_with_expire(b"old", string("v"), Some(100), 0);
        db.set(b"live", string("v"), 0);
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = db.scan_step_reclaiming(cursor, 200, |key, _| seen.push(key.to_vec()));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, vec![b"live".to_vec()]);
        assert_eq!(db.len(), 1, "the expired key is gone");
        assert_eq!(db.stats.expired_keys, 1);
        db.check_invariants();
    }

    #[test]
    fn active_expire_reclaims_untouched_keys_earliest_first() {
        let mut db = Db::new();
        for i in 0..10u64 {
            db.set_with_expire(format!("k{i}").as_bytes(), string("v"), Some(100 + i), 0);
        }
        db.set(b"forever", string("v"), 0);
        assert_eq!(db.active_expire(105, 3), 3);
        assert_eq!(db.active_expire(105, 100), 2, "k3 and k4 are due, k5 is not yet past");
        assert_eq!(db.len(), 6);
        assert_eq!(db.stats.expired_keys, 5);
        db.check_invariants();
    }

    #[test]
    fn a_replica_s_reads_do_not_see_keys_past_their_time_which_stay_for_the_master() {
        let mut db = Db::new();
        db.set_loading(true);
        db.set_with_expire(b"past", string("v"), Some(10), 0);
        db.set(b"live", string("v"), 0);
        db.set_hide_expired(true);
        assert!(db.lookup_read(b"past", 100).is_none());
        assert!(db.lookup_read_notouch(b"past", 100).is_none());
        assert!(db.lookup_quiet(b"past", 100).is_none());
        assert!(!db.contains(b"past", 100));
        assert!(db.lookup_read(b"live", 100).is_some());
        assert_eq!(db.stats.keyspace_misses, 2, "a hidden key is a miss, as on Redis's replica");
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            cursor = db.scan_step_reclaiming(cursor, 100, |key, _| seen.push(key.to_vec()));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, vec![b"live".to_vec()]);
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
        for _ in 0..20 {
            db.random_key(100, &mut rng);
        }
        db.set_hide_expired(false);
        assert_eq!(db.len(), 2, "nothing was removed: the master's DEL will");
        assert!(db.lookup_read(b"past", 100).is_some(), "the master's commands find it");
        assert_eq!(db.stats.expired_keys, 0);
        db.check_invariants();
    }

    #[test]
    fn nothing_expires_while_the_log_is_replayed() {
        let mut db = Db::new();
        db.set_loading(true);
        db.set_with_expire(b"past", string("v"), Some(10), 0);
        assert!(!db.expiry_passed(10, 100), "an expiry already past is stored while loading");
        assert!(db.lookup_write(b"past", 100).is_some(), "a key past its expiry is found while loading");
        assert_eq!(db.active_expire(100, 10), 0);
        assert!(!db.has_expired_keys(100));
        db.clear();
        db.set_with_expire(b"past", string("v"), Some(10), 0);
        assert!(db.lookup_read(b"past", 100).is_some(), "FLUSHALL in the log keeps the load going");
        db.set_loading(false);
        assert!(db.expiry_passed(10, 100));
        assert!(db.has_expired_keys(100));
        assert!(db.lookup_read(b"past", 100).is_none(), "it expires once the load is over");
        assert_eq!(db.stats.expired_keys, 1);
        db.check_invariants();
    }

    fn hash(pairs: &[(&str, Option<u64>)]) -> Value {
        let mut hash = crate::types::Hash::new();
        for (field, ttl) in pairs {
            hash.set(field.as_bytes(), b"v", &crate::types::Limits::default());
            if let Some(at) = ttl {
                hash.set_field_ttl(field.as_bytes(), *at);
            }
        }
        Value::Hash(hash)
    }

    fn fields(db: &mut Db, key: &str) -> Vec<String> {
        match db.lookup_quiet(key.as_bytes(), 0).map(|e| &e.value) {
            Some(Value::Hash(hash)) => hash.iter().map(|(f, _)| String::from_utf8(f.to_vec()).unwrap()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn hash_fields_expire_lazily_and_actively_and_the_index_follows_the_hash() {
        let mut db = Db::new();
        db.set_reporting(Reporting { fields_expired: true, emptied: true, ..Reporting::default() });
        set_log_expired(true);
        db.set(b"plain", hash(&[("a", None)]), 0);
        assert_eq!(db.volatile_hashes(), 0);
        db.set(b"h", hash(&[("a", Some(10)), ("b", Some(20)), ("c", None)]), 0);
        db.set(b"gone", hash(&[("x", Some(5))]), 0);
        assert_eq!(db.volatile_hashes(), 2);
        db.check_invariants();
        // Lazily, at a command's lookup.
        assert_eq!(db.expire_hash_fields(b"h", 10), 0, "10 is not past at 10");
        assert_eq!(db.expire_hash_fields(b"h", 11), 1);
        assert_eq!(fields(&mut db, "h"), ["b", "c"]);
        db.check_invariants();
        // RENAME moves the listing with the hash.
        let detached = db.take(b"h").unwrap();
        db.insert_detached(b"renamed", detached, 0);
        db.check_invariants();
        // Actively: `gone` empties and goes; `renamed` loses b (the rename took the listing
        // along).
        assert!(db.has_expired_fields(21));
        assert_eq!(db.active_expire_fields(21, 10), 2);
        assert!(!db.has_expired_fields(21));
        assert!(db.lookup_quiet(b"gone", 21).is_none());
        assert_eq!(fields(&mut db, "renamed"), ["c"]);
        assert_eq!(db.volatile_hashes(), 0);
        assert_eq!(db.stats.expired_fields, 3);
        let reports: Vec<_> = db.take_reports().into_iter().map(|(r, k)| (r, String::from_utf8(k.to_vec()).unwrap())).collect();
        assert_eq!(
            reports,
            [
                (Report::FieldsExpired, "h".to_owned()),
                (Report::FieldsExpired, "gone".to_owned()),
                (Report::Emptied, "gone".to_owned()),
                (Report::FieldsExpired, "renamed".to_owned())
            ]
        );
        let logged = db.take_expired_log();
        assert_eq!(logged.len(), 3);
        assert_eq!(logged[1], Expired::Fields(Box::from(&b"gone"[..]), vec![Box::from(&b"x"[..])]));
        set_log_expired(false);
        // Overwritten by a string: dropped from the count.
        db.set(b"h2", hash(&[("a", Some(100))]), 0);
        db.set(b"h2", string("s"), 0);
        assert_eq!(db.volatile_hashes(), 0);
        assert_eq!(db.active_expire_fields(200, 10), 0);
        db.check_invariants();
    }

    #[test]
    fn reports_expired_missed_and_new_keys_only_when_asked() {
        let mut db = Db::new();
        db.set(b"quiet", string("v"), 0);
        assert!(db.lookup_read(b"missing", 0).is_none());
        assert!(db.take_reports().is_empty(), "nothing is reported by default");
        db.set_reporting(Reporting { expired: true, miss: true, new: true, evicted: true, ..Reporting::default() });
        db.set_with_expire(b"a", string("v"), Some(10), 0);
        db.set(b"a", string("w"), 0);
        assert!(db.lookup_read(b"missing", 0).is_none());
        db.set_with_expire(b"b", string("v"), Some(10), 0);
        db.set_with_expire(b"c", string("v"), Some(10), 0);
        assert!(db.lookup_read(b"b", 20).is_none(), "expired on access, then missed");
        assert_eq!(db.active_expire(20, 10), 1);
        let reports: Vec<(Report, String)> = db.take_reports().into_iter().map(|(r, k)| (r, String::from_utf8_lossy(&k).into_owned())).collect();
        let expected = [
            (Report::New, "a"),
            (Report::Miss, "missing"),
            (Report::New, "b"),
            (Report::New, "c"),
            (Report::Expired, "b"),
            (Report::Miss, "b"),
            (Report::Expired, "c"),
        ];
        assert_eq!(reports, expected.map(|(r, k)| (r, k.to_owned())));
        db.set_reporting(Reporting::default());
        assert!(db.lookup_read(b"missing", 0).is_none());
        assert!(db.take_reports().is_empty());
        db.check_invariants();
    }
}

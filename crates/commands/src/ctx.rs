//! What a command sees while it runs: [`Ctx`] on the owning core, and [`Coordinator`] for a
//! command whose keys span cores.
//!
//! The runtime implements `Coordinator`; this crate only describes the contract, so command
//! families stay free of glommio and can be tested with a single-threaded fake.
//!
//! A command raises keyspace notifications with [`Ctx::notify`]; they stay in the context
//! until the runtime takes them ([`Ctx::take_events`]) and publishes them.

use std::any::Any;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use shoal_resp::{Frame, Protocol};
use shoal_store::{Db, Shard};

/// Settings an operation needs, copied from the configuration on every core.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `proto-max-bulk-len`: the largest string APPEND or SETRANGE may build.
    pub proto_max_bulk_len: u64,
    /// `maxmemory-policy` uses LFU (OBJECT FREQ is allowed).
    pub lfu_policy: bool,
    /// `lfu-log-factor` and `lfu-decay-time`, for the keys' counters under an LFU policy.
    pub lfu: shoal_store::db::Lfu,
    /// The collection encoding thresholds (`*-max-listpack-*`, `set-max-intset-entries`).
    pub limits: shoal_store::Limits,
    /// `hll-sparse-max-bytes`: past it a HyperLogLog converts from sparse to dense.
    pub hll_sparse_max_bytes: u64,
    /// `lazyfree-lazy-user-del`: DEL frees big values in the background, as UNLINK.
    pub lazyfree_lazy_user_del: bool,
    /// `lazyfree-lazy-user-flush`: FLUSHDB and FLUSHALL without SYNC free in the background.
    pub lazyfree_lazy_user_flush: bool,
    /// `lazyfree-lazy-expire`: expired big values are freed in the background.
    pub lazyfree_lazy_expire: bool,
    /// `lazyfree-lazy-server-del`: big values that SET and friends overwrite are freed in
    /// the background.
    pub lazyfree_lazy_server_del: bool,
    /// `notify-keyspace-events` as Redis's bit set ([`notify`]), or 0 when neither `K` nor `E`
    /// is set (nothing would be published): the one thing [`Ctx::notify`] tests.
    pub notify_keyspace_events: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            proto_max_bulk_len: 512 * 1024 * 1024,
            lfu_policy: false,
            lfu: shoal_store::db::Lfu { log_factor: 10, decay_time_min: 1 },
            limits: shoal_store::Limits::default(),
            hll_sparse_max_bytes: 3000,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            notify_keyspace_events: 0,
        }
    }
}

/// An operation's view of the core it runs on.
pub struct Ctx<'a> {
    pub shard: &'a mut Shard,
    /// The connection's selected database.
    pub db_index: usize,
    /// The command's time, in Unix milliseconds (one value for the whole command).
    pub now_ms: u64,
    /// The protocol of the connection the reply goes to.
    pub proto: Protocol,
    pub settings: &'a Settings,
    /// Keyspace events the command raised, in order, for the runtime to publish once it ran
    /// (empty, and never allocated, while notifications are off).
    pub events: Vec<notify::KeyEvent>,
}

impl<'a> Ctx<'a> {
    /// A context for commands in database `db_index` of `shard`.
    pub fn new(shard: &'a mut Shard, db_index: usize, now_ms: u64, proto: Protocol, settings: &'a Settings) -> Ctx<'a> {
        Ctx { shard, db_index, now_ms, proto, settings, events: Vec::new() }
    }

    /// The selected database.
    pub fn db(&mut self) -> &mut Db {
        &mut self.shard.dbs[self.db_index]
    }

    /// Raises keyspace event `event` of class `class` (a [`notify`] flag) on `key` of the
    /// selected database, as Redis's `notifyKeyspaceEvent`. One branch when it is off.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if self.settings.notify_keyspace_events & class != 0 {
            self.record(self.db_index, event, key);
        }
    }

    /// [`Ctx::notify`] for a key of database `db` (MOVE, COPY ... DB).
    #[inline]
    pub fn notify_db(&mut self, class: u32, event: &'static str, key: &[u8], db: usize) {
        if self.settings.notify_keyspace_events & class != 0 {
            self.record(db, event, key);
        }
    }

    /// Whether events of `class` are recorded (to skip work only notifications need).
    #[inline]
    pub fn notifying(&self, class: u32) -> bool {
        self.settings.notify_keyspace_events & class != 0
    }

    /// A generic `del` for `key` if it no longer exists (a collection a command emptied).
    #[inline]
    pub fn notify_del_if_gone(&mut self, key: &[u8]) {
        if self.notifying(notify::GENERIC) {
            let (db, now) = (self.db_index, self.now_ms);
            if self.shard.dbs[db].lookup_quiet(key, now).is_none() {
                self.record(db, "del", key);
            }
        }
    }

    #[cold]
    fn record(&mut self, db: usize, event: &'static str, key: &[u8]) {
        // What the store reported so far (a lazy expiry, a new key) happened first.
        self.collect_store_reports();
        self.events.push(notify::KeyEvent { db, event, key: Bytes::copy_from_slice(key) });
    }

    /// Moves what the store reported (expired, evicted, keymiss, new) into `events`, in order.
    fn collect_store_reports(&mut self) {
        for (index, db) in self.shard.dbs.iter_mut().enumerate() {
            for (report, key) in db.take_reports() {
                let event = match report {
                    shoal_store::db::Report::Expired => "expired",
                    shoal_store::db::Report::Evicted => "evicted",
                    shoal_store::db::Report::Miss => "keymiss",
                    shoal_store::db::Report::New => "new",
                    shoal_store::db::Report::FieldsExpired => "hexpired",
                    shoal_store::db::Report::Emptied => "del",
                };
                self.events.push(notify::KeyEvent { db: index, event, key: Bytes::from(Vec::from(key)) });
            }
        }
    }

    /// Every event the command raised, the store's reports included, oldest first.
    pub fn take_events(&mut self) -> Vec<notify::KeyEvent> {
        if self.settings.notify_keyspace_events == 0 {
            return Vec::new();
        }
        self.collect_store_reports();
        std::mem::take(&mut self.events)
    }
}

/// Keyspace notifications: Redis's event classes and what a command records.
pub mod notify {
    use bytes::Bytes;

    pub use shoal_config::keyspace_classes::*;

    /// The flags a command tests: `flags` as configured, or 0 when neither `K` nor `E` is
    /// set (Redis then publishes nothing).
    pub fn effective(flags: u32) -> u32 {
        if flags & (KEYSPACE | KEYEVENT) == 0 {
            0
        } else {
            flags
        }
    }

    /// What the store should report for `flags` ([`shoal_store::db::Db::set_reporting`]).
    pub fn store_reporting(flags: u32) -> shoal_store::db::Reporting {
        shoal_store::db::Reporting {
            expired: flags & EXPIRED != 0,
            miss: flags & KEY_MISS != 0,
            new: flags & NEW != 0,
            evicted: flags & EVICTED != 0,
            fields_expired: flags & HASH != 0,
            emptied: flags & GENERIC != 0,
        }
    }

    /// One event a command raised: published as `__keyspace@<db>__:<key>` with the event
    /// name, and `__keyevent@<db>__:<event>` with the key.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct KeyEvent {
        pub db: usize,
        pub event: &'static str,
        pub key: Bytes,
    }
}

/// What one hop of a transaction returns from one core.
pub type HopResult = Box<dyn Any + Send>;
/// One hop's work on one core.
pub type HopOp = Box<dyn FnOnce(&mut Ctx) -> HopResult + Send>;

/// A transaction in progress: its cores are locked for its keys, and it may run any number of
/// hops on them before it ends.
pub trait Coordinator {
    fn shard_count(&self) -> usize;
    fn db_index(&self) -> usize;
    fn proto(&self) -> Protocol;
    /// Runs each op on its core, all in parallel, and returns their results in the same order.
    fn hop(&self, ops: Vec<(usize, HopOp)>) -> LocalBoxFuture<'_, Vec<HopResult>>;
}

/// The cross-core form of a command: runs under a [`Coordinator`] with its arguments.
pub type MultiFn = for<'a> fn(&'a dyn Coordinator, Vec<Bytes>) -> LocalBoxFuture<'a, Frame>;

/// Keys grouped by owning shard: (shard, [(argument index, key)]), shards ascending.
pub fn group_by_shard(shard_count: usize, keys: impl IntoIterator<Item = (usize, Bytes)>) -> Vec<(usize, Vec<(usize, Bytes)>)> {
    let mut groups: Vec<(usize, Vec<(usize, Bytes)>)> = Vec::new();
    for (index, key) in keys {
        let shard = shoal_store::slot::key_shard(&key, shard_count);
        match groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, group)) => group.push((index, key)),
            None => groups.push((shard, vec![(index, key)])),
        }
    }
    groups.sort_by_key(|(shard, _)| *shard);
    groups
}

/// Runs `op` on every shard with that shard's keys and returns (shard, result) pairs.
pub async fn hop_per_shard<T, F>(coordinator: &dyn Coordinator, groups: Vec<(usize, Vec<(usize, Bytes)>)>, op: F) -> Vec<(Vec<usize>, T)>
where
    T: Send + 'static,
    F: Fn(&mut Ctx, Vec<Bytes>) -> T + Clone + Send + 'static,
{
    let mut indexes = Vec::with_capacity(groups.len());
    let mut ops: Vec<(usize, HopOp)> = Vec::with_capacity(groups.len());
    for (shard, group) in groups {
        let (idx, keys): (Vec<usize>, Vec<Bytes>) = group.into_iter().unzip();
        indexes.push(idx);
        let op = op.clone();
        ops.push((shard, Box::new(move |ctx: &mut Ctx| Box::new(op(ctx, keys)) as HopResult)));
    }
    let results = coordinator.hop(ops).await;
    indexes.into_iter().zip(results).map(|(idx, result)| (idx, take::<T>(result))).collect()
}

/// Runs `op` on every shard and returns the results in shard order.
pub async fn hop_all<T, F>(coordinator: &dyn Coordinator, op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(&mut Ctx) -> T + Clone + Send + 'static,
{
    let ops: Vec<(usize, HopOp)> = (0..coordinator.shard_count())
        .map(|shard| {
            let op = op.clone();
            (shard, Box::new(move |ctx: &mut Ctx| Box::new(op(ctx)) as HopResult) as HopOp)
        })
        .collect();
    coordinator.hop(ops).await.into_iter().map(take::<T>).collect()
}

/// Runs `op` on one shard.
pub async fn hop_one<T, F>(coordinator: &dyn Coordinator, shard: usize, op: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut Ctx) -> T + Send + 'static,
{
    let ops: Vec<(usize, HopOp)> = vec![(shard, Box::new(move |ctx: &mut Ctx| Box::new(op(ctx)) as HopResult))];
    take(coordinator.hop(ops).await.pop().expect("one result per op"))
}

/// Runs two ops at once, each on its own core, and returns both results.
pub async fn hop_two<A, B>(
    coordinator: &dyn Coordinator,
    (shard_a, op_a): (usize, impl FnOnce(&mut Ctx) -> A + Send + 'static),
    (shard_b, op_b): (usize, impl FnOnce(&mut Ctx) -> B + Send + 'static),
) -> (A, B)
where
    A: Send + 'static,
    B: Send + 'static,
{
    let ops: Vec<(usize, HopOp)> = vec![
        (shard_a, Box::new(move |ctx: &mut Ctx| Box::new(op_a(ctx)) as HopResult)),
        (shard_b, Box::new(move |ctx: &mut Ctx| Box::new(op_b(ctx)) as HopResult)),
    ];
    let mut results = coordinator.hop(ops).await.into_iter();
    let a = results.next().expect("one result per op").downcast::<A>().expect("the first op's type");
    let b = results.next().expect("one result per op").downcast::<B>().expect("the second op's type");
    (*a, *b)
}

pub(crate) fn take<T: 'static>(result: HopResult) -> T {
    *result.downcast::<T>().expect("a hop returns the type its op produced")
}

/// A reply for a result that may be an error.
pub fn reply<T>(result: Result<T, Frame>, ok: impl FnOnce(T) -> Frame) -> Frame {
    match result {
        Ok(value) => ok(value),
        Err(error) => error,
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Harness;

    fn events(harness: &Harness, command: &[&str]) -> Vec<(&'static str, String)> {
        harness.run(command);
        harness.take_events()
    }

    fn owned(expected: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        expected.iter().map(|(event, key)| (*event, key.to_string())).collect()
    }

    #[test]
    fn commands_raise_nothing_while_notifications_are_off() {
        let harness = Harness::default();
        assert_eq!(events(&harness, &["SET", "k", "v", "EX", "10"]), owned(&[]));
        assert_eq!(events(&harness, &["GET", "missing"]), owned(&[]));
        assert!(harness.events.borrow().capacity() == 0, "nothing was even allocated");
    }

    #[test]
    fn a_new_key_is_new_before_the_commands_own_events() {
        let harness = Harness::notifying();
        assert_eq!(events(&harness, &["SET", "k", "v", "EX", "10"]), owned(&[("new", "k"), ("set", "k"), ("expire", "k")]));
        assert_eq!(events(&harness, &["SET", "k", "w"]), owned(&[("set", "k")]));
    }

    #[test]
    fn a_pop_that_empties_a_list_raises_the_pop_then_del() {
        let harness = Harness::notifying();
        harness.run(&["RPUSH", "{l}a", "x"]);
        harness.take_events();
        assert_eq!(
            events(&harness, &["LMOVE", "{l}a", "{l}b", "LEFT", "RIGHT"]),
            owned(&[("new", "{l}b"), ("rpush", "{l}b"), ("lpop", "{l}a"), ("del", "{l}a")])
        );
    }

    #[test]
    fn a_read_of_a_missing_key_is_a_keymiss() {
        let harness = Harness::notifying();
        assert_eq!(events(&harness, &["GET", "missing"]), owned(&[("keymiss", "missing")]));
        assert_eq!(events(&harness, &["OBJECT", "ENCODING", "missing"]), owned(&[]), "OBJECT looks up without notifying");
    }

    #[test]
    fn a_key_expired_on_access_is_expired_before_anything_else() {
        let mut harness = Harness::notifying();
        harness.run(&["SET", "k", "v", "PX", "5"]);
        harness.take_events();
        harness.now_ms += 10;
        assert_eq!(events(&harness, &["LPUSH", "k", "a"]), owned(&[("expired", "k"), ("new", "k"), ("lpush", "k")]));
    }

    #[test]
    fn a_rename_across_cores_raises_both_events_in_order() {
        let harness = Harness::notifying();
        harness.run(&["SET", "a", "v"]);
        harness.take_events();
        let got = events(&harness, &["RENAME", "a", "b"]);
        assert_eq!(
            got.iter().filter(|(event, _)| event.starts_with("rename")).cloned().collect::<Vec<_>>(),
            owned(&[("rename_from", "a"), ("rename_to", "b")])
        );
    }
}

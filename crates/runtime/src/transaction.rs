//! MULTI/EXEC and WATCH on the transaction layer.
//!
//! EXEC takes, in one [`Transaction`], the intent locks of every key its queued commands
//! name and of every key the client watches, core by core in ascending order (as every
//! cross-core command does, which is what rules out deadlock). Holding them, it checks the
//! WATCH flag, then runs the queued commands one after another as hops on their cores, and
//! releases. Cores whose keys it does not name keep serving everyone meanwhile; on the cores
//! it locks, other clients' commands on other keys keep running too.
//!
//! A queued command that reads or writes a whole shard (FLUSHALL, DBSIZE, KEYS, SWAPDB, a
//! SORT with BY patterns) locks every shard whole; one without keys that runs on the
//! connection's core (RANDOMKEY on one shard) locks that shard whole.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use shoal_commands::ctx::notify::KeyEvent;
use shoal_commands::dispatch::{self, Route};
use shoal_commands::table::flags;
use shoal_commands::{CommandSpec, Ctx, Handler, HopOp, HopResult};
use shoal_resp::{Frame, Protocol};

use crate::core::{Core, TxCoordinator, TxId};
use crate::locks::{LockSet, Mode};
use crate::stats::Stopwatch;
use crate::watch::WatchFlag;

/// A command queued between MULTI and EXEC, with the database it runs in (a queued SELECT
/// changes it for the commands after it).
pub struct Planned<'a> {
    pub db: usize,
    pub spec: &'static CommandSpec,
    pub route: &'a Route,
    pub args: &'a [Bytes],
}

/// An EXEC in progress: it holds its locks until [`Transaction::end`] (or drop).
pub struct Transaction {
    core: Rc<Core>,
    tx: TxId,
    sets: Vec<(usize, LockSet)>,
    wrote: bool,
    ended: bool,
    /// The keyspace events of the commands run so far, in their order, and the cores that
    /// raised them, published before the locks go (see `Core::publish_in_order`).
    events: Vec<KeyEvent>,
    sources: Vec<usize>,
    /// Who sent the EXEC, for the slow log (see [`Transaction::for_client`]).
    client: u64,
    /// The time all its commands run at, on every core (Redis fixes an EXEC's time too).
    now_ms: u64,
}

impl Core {
    /// Runs `call` on core `shard` (this one included) and returns its result.
    pub async fn call_on<T: Send + 'static>(self: &Rc<Self>, shard: usize, call: impl FnOnce(&Rc<Core>) -> T + Send + 'static) -> T {
        if shard == self.id {
            return call(self);
        }
        let boxed: crate::core::CallFn = Box::new(move |core: &Rc<Core>| Box::new(call(core)) as Box<dyn std::any::Any + Send>);
        let rx = self.request(shard, |req| crate::core::Msg::Call { req, call: boxed });
        match rx.await.expect("a peer always answers a call") {
            crate::core::Payload::Call(result) => *result.downcast::<T>().expect("call result type"),
            _ => unreachable!("a call is answered with its result"),
        }
    }

    /// WATCH: registers `client`'s `flag` for `keys` of `db` on the cores that own them.
    /// Returns, per key, the time (Unix ms) at which it expires when it exists with a TTL:
    /// an EXEC after that time fails, as Redis fails it when a watched key expired.
    pub async fn watch(self: &Rc<Self>, client: u64, flag: &WatchFlag, db: usize, keys: &[Bytes]) -> Vec<Option<u64>> {
        // Registered under shared locks of the keys, like a read: a write already running on
        // one of them finishes first, and its release (which tells the watchers of the keys
        // it locked) comes before the registration, not after it. Otherwise the release of a
        // write that answered before the WATCH was sent could still fail the EXEC.
        let watched: Vec<(usize, Bytes)> = keys.iter().map(|key| (db, key.clone())).collect();
        let sets = self.exec_lock_sets(std::iter::empty(), &watched);
        let tx = self.new_tx();
        self.acquire_all(tx, sets.clone()).await;
        let locked = Transaction::granted(self, tx, sets);
        let mut deadlines = vec![None; keys.len()];
        let groups = shoal_commands::ctx::group_by_shard(self.shard_count, keys.iter().cloned().enumerate());
        for (shard, keys) in groups {
            let flag = flag.clone();
            let found = self
                .call_on(shard, move |core: &Rc<Core>| {
                    let now = crate::core::now_ms();
                    let mut watches = core.watches.borrow_mut();
                    core.with_shard(|shard| {
                        keys.into_iter()
                            .map(|(index, key)| {
                                let db_ = &mut shard.dbs[db];
                                // A hash's field expiring fails the EXEC too, as Redis
                                // signals the key then: the earliest field TTL counts like the
                                // key's (a field at `at` is gone from `at + 1`).
                                db_.expire_hash_fields(&key, now);
                                let fields = match db_.lookup_quiet(&key, now).map(|entry| &entry.value) {
                                    Some(shoal_store::Value::Hash(hash)) => hash.next_field_expiry().map(|at| at + 1),
                                    _ => None,
                                };
                                let key_deadline = if db_.contains(&key, now) { db_.expire_at(&key) } else { None };
                                let deadline = match (key_deadline, fields) {
                                    (Some(a), Some(b)) => Some(a.min(b)),
                                    (a, b) => a.or(b),
                                };
                                watches.register(client, &flag, db, key);
                                (index, deadline)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .await;
            for (index, deadline) in found {
                deadlines[index] = deadline;
            }
        }
        locked.end();
        deadlines
    }

    /// Forgets `client`'s watched keys (EXEC, DISCARD, UNWATCH, RESET, disconnect). Does not
    /// wait: the flag it leaves behind is no longer read.
    pub fn unwatch(self: &Rc<Self>, client: u64, keys: Vec<(usize, Bytes)>) {
        let mut per_core: Vec<(usize, Vec<(usize, Bytes)>)> = Vec::new();
        for (db, key) in keys {
            let shard = shoal_store::slot::key_shard(&key, self.shard_count);
            match per_core.iter_mut().find(|(s, _)| *s == shard) {
                Some((_, keys)) => keys.push((db, key)),
                None => per_core.push((shard, vec![(db, key)])),
            }
        }
        for (shard, keys) in per_core {
            let forget = move |core: &Rc<Core>| {
                let mut watches = core.watches.borrow_mut();
                for (db, key) in keys {
                    watches.unregister(client, db, key);
                }
            };
            if shard == self.id {
                forget(self);
            } else {
                let core = self.clone();
                glommio::spawn_local(async move { core.call_on(shard, forget).await }).detach();
            }
        }
    }

    /// Starts an EXEC: takes the locks `plan` and `watched` need, on every core concerned.
    pub async fn begin<'a>(self: &Rc<Self>, plan: impl IntoIterator<Item = Planned<'a>>, watched: &[(usize, Bytes)]) -> Transaction {
        let sets = self.exec_lock_sets(plan, watched);
        let tx = self.acquire_write(&sets).await;
        Transaction::granted(self, tx, sets)
    }

    /// Holds every shard whole, exclusively, until [`Transaction::end`]: a consistent cut
    /// across cores (BGSAVE starts its snapshots under it, so none sees half of a cross-core
    /// command). Commands already running finish first; new ones wait.
    pub async fn lock_everything(self: &Rc<Self>) -> Transaction {
        let sets: Vec<(usize, LockSet)> = (0..self.shard_count).map(|shard| (shard, LockSet { shard: Some(Mode::Exclusive), keys: Vec::new() })).collect();
        let tx = self.new_tx();
        self.acquire_all(tx, sets.clone()).await;
        Transaction::granted(self, tx, sets)
    }

    /// Per core (ascending), what an EXEC locks.
    fn exec_lock_sets<'a>(&self, plan: impl IntoIterator<Item = Planned<'a>>, watched: &[(usize, Bytes)]) -> Vec<(usize, LockSet)> {
        let mut sets: Vec<LockSet> = (0..self.shard_count).map(|_| LockSet::default()).collect();
        let strongest = |held: Option<Mode>, mode: Mode| match held {
            Some(Mode::Exclusive) => Some(Mode::Exclusive),
            _ => Some(mode),
        };
        for Planned { db, spec, route, args } in plan {
            let mode = if spec.may_write() { Mode::Exclusive } else { Mode::Shared };
            let whole = spec.has(flags::ALL_SHARDS) || spec.all_shards_when.is_some_and(|all| all(args).is_some());
            match route {
                // A script (EVAL, FCALL: the connection commands with keys) holds the cores
                // of its keys whole, and this one (see `crate::script`).
                Route::Connection if spec.movable_keys.is_some() => {
                    let cores = dispatch::keys(spec, args).map(|key| shoal_store::slot::key_shard(key, self.shard_count)).chain([self.id]);
                    for core in cores.collect::<Vec<_>>() {
                        sets[core].shard = Some(Mode::Exclusive);
                    }
                }
                Route::Connection => {}
                _ if whole => {
                    for set in &mut sets {
                        set.shard = strongest(set.shard, mode);
                    }
                }
                Route::Single(None) => sets[self.id].shard = strongest(sets[self.id].shard, mode),
                Route::Single(Some(_)) | Route::Multi(_) => {
                    for key in dispatch::keys(spec, args) {
                        sets[shoal_store::slot::key_shard(key, self.shard_count)].push(db, key.clone(), mode);
                    }
                    if let Some(other_db_keys) = spec.other_db_keys {
                        for (index, other_db) in other_db_keys(args) {
                            sets[shoal_store::slot::key_shard(&args[index], self.shard_count)].push(other_db, args[index].clone(), Mode::Exclusive);
                        }
                    }
                }
            }
        }
        for (db, key) in watched {
            sets[shoal_store::slot::key_shard(key, self.shard_count)].push(*db, key.clone(), Mode::Shared);
        }
        sets.into_iter()
            .enumerate()
            .filter(|(_, set)| !set.is_empty())
            .map(|(shard, mut set)| {
                set.normalize();
                (shard, set)
            })
            .collect()
    }
}

/// Whether a cross-core write's reply shows that it changed nothing, so its keys' watchers
/// keep their EXEC as in Redis: it failed (Redis checks before it writes), a blocking command
/// found nothing to take, or a conditional write declined (DEL of missing keys, a refused
/// MSETNX or RENAMENX, nothing copied or moved).
pub(crate) fn changed_nothing(spec: &CommandSpec, reply: &Frame) -> bool {
    match reply {
        Frame::Error(_) | Frame::Null | Frame::NullArray => true,
        Frame::Integer(0) => matches!(spec.name, "del" | "unlink" | "msetnx" | "renamenx" | "copy" | "smove" | "move"),
        _ => false,
    }
}

/// One core's commands run in order, each with its reply, its run time and its events.
type Timed = Vec<(Frame, std::time::Duration, Vec<KeyEvent>)>;

/// A WATCH check, run where the transaction holds all of its locks.
pub type WatchCheck = Box<dyn Fn() -> bool + Send>;

/// A hop that runs `batch` in order on the core that owns its keys, unless `check` says the
/// WATCH failed (then it runs nothing). Its result reads with [`timed_of`].
/// `client` sent the commands (for the slow log).
fn batch_op(batch: Vec<(&'static CommandSpec, Vec<Bytes>)>, check: Option<WatchCheck>, client: u64) -> HopOp {
    Box::new(move |ctx: &mut Ctx| {
        if check.is_some_and(|check| !check()) {
            return Box::new(None::<Timed>) as HopResult;
        }
        let core = Core::current();
        // The keys' cache misses overlap rather than come one command at a time.
        crate::core::prefetch_keys(&ctx.shard.dbs[ctx.db_index], &batch);
        // Each command's events with it, so they go out in the EXEC's order.
        let timed: Timed = batch
            .iter()
            .map(|(spec, args)| {
                let (reply, elapsed, _) = core.run_signalled(ctx, spec, args, false);
                core.note_slow(spec, args, elapsed, client);
                (reply, elapsed, ctx.take_events())
            })
            .collect();
        Box::new(Some(timed)) as HopResult
    })
}

/// What a [`batch_op`] returned: None when its WATCH check failed.
fn timed_of(result: HopResult) -> Option<Timed> {
    *result.downcast::<Option<Timed>>().expect("a batch hop returns its frames")
}

impl Core {
    /// EXEC of keyed single-core commands whose keys and watched keys are on this core and
    /// one other, while neither the append-only log nor keyspace events are on: one message
    /// and its reply instead of four. This core takes its locks if it can at once; then the
    /// other core takes its own if it can at once (`Msg::TryRun`) and, holding them, checks
    /// the WATCH, runs its commands and releases; then this core runs its commands and
    /// releases. Every lock is held before anything runs and nothing is released before
    /// that (two-phase locking), and neither core waits for a lock while holding one, so
    /// no cycle of waits can form.
    ///
    /// Returns None when this does not apply or a lock was not free (nothing ran, nothing is
    /// held: the caller takes the general path), Some(None) when the WATCH failed, else the
    /// replies in order.
    pub async fn exec_with_one_peer(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        cmds: &[(&'static CommandSpec, &Route, &[Bytes])],
        watched: &[(usize, Bytes)],
        check: Option<WatchCheck>,
        client: u64,
    ) -> Option<Option<Vec<Frame>>> {
        if !crate::pair::applies(self) || !cmds.iter().all(|(_, route, _)| matches!(route, Route::Single(Some(_)))) {
            return None;
        }
        let plan = cmds.iter().map(|(spec, route, args)| Planned { db, spec, route, args });
        let (local, peer, remote) = crate::pair::split(self.id, self.exec_lock_sets(plan, watched))?;
        let tx = self.new_tx();
        let hold = crate::pair::LocalHold::try_take(self, tx, local)?;
        let (mut here, mut there) = (Vec::new(), Vec::new());
        for (index, (spec, route, args)) in cmds.iter().enumerate() {
            let group = if **route == Route::Single(Some(peer)) { &mut there } else { &mut here };
            group.push((index, (*spec, args.to_vec())));
        }
        let (there_indexes, there_batch): (Vec<usize>, Vec<_>) = there.into_iter().unzip();
        let op = batch_op(there_batch, check, client);
        // This core's keys are fetched into the cache while the other core runs its part.
        let (here_indexes, here_batch): (Vec<usize>, Vec<_>) = here.into_iter().unzip();
        self.try_with_shard(|shard| crate::core::prefetch_keys(&shard.dbs[db], &here_batch));
        let Some(result) = self.try_run(peer, tx, remote, db, proto, op, false).await else {
            hold.release(false);
            return None;
        };
        let Some(there_timed) = timed_of(result) else {
            hold.release(false);
            return Some(None);
        };
        let (result, _) = self.run_hop(db, proto, batch_op(here_batch, None, client), crate::core::now_ms(), None);
        let here_timed = timed_of(result).expect("no check here");
        hold.release(false);
        let answered = there_indexes.into_iter().zip(there_timed).chain(here_indexes.into_iter().zip(here_timed));
        Some(Some(self.in_queue_order(cmds, answered)))
    }

    /// The replies of an EXEC's commands in their queue's order, from (index in `cmds`,
    /// what it ran to) in any order; each command's run goes into the stats.
    fn in_queue_order(
        &self,
        cmds: &[(&'static CommandSpec, &Route, &[Bytes])],
        answered: impl Iterator<Item = (usize, (Frame, std::time::Duration, Vec<KeyEvent>))>,
    ) -> Vec<Frame> {
        let mut replies: Vec<Option<Frame>> = (0..cmds.len()).map(|_| None).collect();
        let mut stats = self.stats.borrow_mut();
        for (index, (frame, elapsed, _)) in answered {
            stats.record(cmds[index].0.name, elapsed, &frame);
            replies[index] = Some(frame);
        }
        replies.into_iter().map(|r| r.expect("every command answered")).collect()
    }
}

impl Core {
    /// EXEC of keyed single-core commands, while neither the append-only log nor keyspace
    /// events are on, as one chain from core to core (see [`crate::chain`]): about two
    /// messages per core instead of four. With `check` (a WATCH, on `watched`), the chain
    /// locks on its way forward, checks at the last core and runs on its way back.
    ///
    /// None when this does not apply (nothing ran): the caller takes the general path;
    /// Some(None) when the WATCH failed; else the replies in order.
    pub async fn exec_chained(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        cmds: &[(&'static CommandSpec, &Route, &[Bytes])],
        watched: &[(usize, Bytes)],
        check: Option<WatchCheck>,
        client: u64,
    ) -> Option<Option<Vec<Frame>>> {
        // Nothing queued and nothing watched leaves no core to visit: the general path answers.
        if !crate::pair::applies(self) || (cmds.is_empty() && watched.is_empty()) {
            return None;
        }
        let mut shards = Vec::with_capacity(cmds.len());
        for (_, route, _) in cmds {
            let Route::Single(Some(shard)) = route else { return None };
            shards.push(*shard);
        }
        let plan = cmds.iter().map(|(spec, route, args)| Planned { db, spec, route, args });
        let mut sets = self.exec_lock_sets(plan, watched);
        // Every core a command runs on has a step, with its locks (none, for a command whose
        // keys the lock sets do not name).
        let mut cores = shards.clone();
        cores.extend(sets.iter().map(|(shard, _)| *shard));
        cores.sort_unstable();
        cores.dedup();
        let mut indexes = Vec::with_capacity(cores.len());
        let steps: VecDeque<(usize, LockSet, HopOp)> = cores
            .into_iter()
            .map(|core| {
                let set = sets.iter_mut().find(|(shard, _)| *shard == core).map(|(_, set)| std::mem::take(set)).unwrap_or_default();
                let (group, batch): (Vec<usize>, Vec<_>) =
                    cmds.iter().enumerate().filter(|(index, _)| shards[*index] == core).map(|(index, (spec, _, args))| (index, (*spec, args.to_vec()))).unzip();
                indexes.push(group);
                (core, set, batch_op(batch, None, client))
            })
            .collect();
        let tx = self.new_tx();
        let done = self.run_chain(tx, db, proto, crate::core::now_ms(), steps, false, check).await?;
        if done.is_empty() {
            return Some(None);
        }
        let answered =
            indexes.into_iter().zip(done).flat_map(|(group, (_, result))| group.into_iter().zip(timed_of(result).expect("a hop without a check always runs")));
        Some(Some(self.in_queue_order(cmds, answered)))
    }
}

impl Transaction {
    /// A transaction that holds `sets` under `tx` from now on (its time: see `now_ms`).
    fn granted(core: &Rc<Core>, tx: TxId, sets: Vec<(usize, LockSet)>) -> Transaction {
        Transaction {
            core: core.clone(),
            tx,
            sets,
            wrote: false,
            ended: false,
            events: Vec::new(),
            sources: Vec::new(),
            client: crate::slowlog::NO_CLIENT,
            now_ms: crate::core::now_ms(),
        }
    }

    /// Names the client whose EXEC this is, for the slow log.
    pub fn for_client(mut self, client: u64) -> Transaction {
        self.client = client;
        self
    }

    /// Runs one queued cross-core or blocking command (`Route::Multi`) under the
    /// transaction's locks and returns its reply; single-core commands go through
    /// [`Transaction::run_single`]. Blocking commands answer at once, as inside MULTI in Redis.
    pub async fn run(&mut self, db: usize, proto: Protocol, spec: &'static CommandSpec, route: Route, args: Vec<Bytes>) -> Frame {
        let coordinator = TxCoordinator::new(self.core.clone(), db, proto).at(self.now_ms).of(self.tx).reading(!spec.may_write());
        let started = Stopwatch::start();
        let kept = if self.core.settings.borrow().notify_keyspace_events != 0 || self.core.slowlog.on() { args.clone() } else { Vec::new() };
        let reply = match (route, spec.handler) {
            (Route::Connection, _) => unreachable!("{} runs in the connection layer", spec.name),
            (Route::Single(_), _) => unreachable!("{} runs through run_single", spec.name),
            (_, Handler::Blocking(ops)) => match (ops.parse)(&args) {
                Err(error) => error,
                Ok(_) => (ops.attempt)(&coordinator, args).await.unwrap_or_else(ops.timed_out),
            },
            (_, Handler::Keys { multi: Some(multi), .. }) | (_, Handler::Multi(multi)) => multi(&coordinator, args).await,
            (route, _) => unreachable!("{} has no form for route {route:?}", spec.name),
        };
        self.core.stats.borrow_mut().record(spec.name, started.elapsed(), &reply);
        self.core.note_slow(spec, &kept, started.elapsed(), self.client);
        let (events, sources) = coordinator.take_events(spec, &kept);
        self.raised(events, sources);
        self.wrote |= spec.may_write() && !changed_nothing(spec, &reply);
        reply
    }

    /// Runs single-core commands (`Route::Single`) under the transaction's locks: one hop per
    /// core, all cores at once, each core's commands in order. Their replies, in order.
    ///
    /// `last`: nothing runs after these, so a core that is done may release its locks with
    /// the hop (see [`crate::core::Msg::Hop`]) instead of waiting for a message of its own.
    /// That is safe because every lock was granted before anything ran (two-phase locking:
    /// what another client sees on a released core is the transaction's final state there,
    /// and each core still locked shows it once its hop ran). A logged transaction keeps
    /// its locks: its release goes through the log's streams.
    pub async fn run_single(&mut self, db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Route, Vec<Bytes>)>, last: bool) -> Vec<Frame> {
        let own = self.core.id;
        let names: Vec<&'static str> = cmds.iter().map(|(spec, _, _)| spec.name).collect();
        // Per core: the commands' indexes in `cmds`, and the commands.
        type Group = (usize, Vec<usize>, Vec<(&'static CommandSpec, Vec<Bytes>)>);
        let mut groups: Vec<Group> = Vec::new();
        for (index, (spec, route, args)) in cmds.into_iter().enumerate() {
            let Route::Single(shard) = route else { unreachable!("{} is not a single-core command", spec.name) };
            // Not `self.wrote`: each command tells the watchers and waiters of what it changed
            // as it runs (below), so the release need not guess from the locks.
            let shard = shard.unwrap_or(own);
            match groups.iter_mut().find(|(s, _, _)| *s == shard) {
                Some((_, indexes, batch)) => {
                    indexes.push(index);
                    batch.push((spec, args));
                }
                None => groups.push((shard, vec![index], vec![(spec, args)])),
            }
        }
        let count = groups.iter().map(|(_, indexes, _)| indexes.len()).sum();
        let mut indexes = Vec::with_capacity(groups.len());
        let ops: Vec<(usize, HopOp)> = groups
            .into_iter()
            .map(|(shard, group_indexes, batch)| {
                indexes.push((shard, group_indexes));
                (shard, batch_op(batch, None, self.client))
            })
            .collect();
        let coordinator = TxCoordinator::new(self.core.clone(), db, proto).at(self.now_ms).of(self.tx);
        let release = (last && !self.ended && !crate::aof::is_logged(self.tx)).then_some((self.tx, self.wrote));
        let results = coordinator.hop_releasing(ops, release).await;
        // The cores that released are done with this transaction.
        let released: Vec<usize> = indexes.iter().zip(&results).filter(|(_, (_, released))| *released).map(|((shard, _), _)| *shard).collect();
        if !released.is_empty() {
            self.sets.retain(|(shard, _)| !released.contains(shard));
        }
        let mut replies: Vec<Option<Frame>> = (0..count).map(|_| None).collect();
        // The commands that raised events, by their index (nothing allocated while
        // notifications are off).
        let mut events: Vec<(usize, Vec<KeyEvent>)> = Vec::new();
        let mut sources = Vec::new();
        let mut stats = self.core.stats.borrow_mut();
        for ((shard, group_indexes), (result, _)) in indexes.into_iter().zip(results) {
            let timed = timed_of(result).expect("a hop without a check always runs");
            for (index, (frame, elapsed, raised)) in group_indexes.into_iter().zip(timed) {
                stats.record(names[index], elapsed, &frame);
                replies[index] = Some(frame);
                if !raised.is_empty() {
                    sources.push(shard);
                    events.push((index, raised));
                }
            }
        }
        drop(stats);
        events.sort_by_key(|(index, _)| *index);
        self.raised(events.into_iter().flat_map(|(_, raised)| raised).collect(), sources);
        // What the store reported after a core's last command (nothing, as a rule) follows.
        let (rest, rest_sources) = coordinator.take_events(&CommandSpec::DEFAULT, &[]);
        self.raised(rest, rest_sources);
        replies.into_iter().map(|r| r.expect("every command answered")).collect()
    }

    /// Adds events the transaction's commands raised on `sources`, in order.
    fn raised(&mut self, events: Vec<KeyEvent>, sources: Vec<usize>) {
        self.events.extend(events);
        self.sources.extend(sources);
        self.sources.sort_unstable();
        self.sources.dedup();
    }

    /// Publishes the events of the commands run so far (in order, see
    /// `Core::publish_in_order`), before a command that publishes by itself runs: a script or
    /// PUBLISH inside EXEC sends its events and messages as it runs, and they must come after
    /// the events of the commands queued before it.
    pub async fn publish_raised(&mut self) {
        if !self.events.is_empty() {
            self.core.publish_in_order(std::mem::take(&mut self.events), &std::mem::take(&mut self.sources)).await;
        }
    }

    /// Releases the locks. Until then, the transaction's keys are its own.
    /// Marks the transaction as one that changed data it held without running commands
    /// (DEBUG RELOAD replaces every core's data): its release then tells the watchers and
    /// tracking clients, as a FLUSHALL's does.
    pub fn mark_written(&mut self) {
        self.wrote = true;
    }

    pub fn end(mut self) {
        debug_assert!(self.events.is_empty(), "a transaction that ran commands ends with end_logged, which publishes their events");
        self.release();
    }

    /// Releases the locks after logging the writes that ran, in order, as one MULTI/EXEC
    /// body (see [`crate::aof`]), and waits (under `appendfsync always`) until the body is
    /// durable. Failed writes and commands that are not writes are left out.
    pub async fn end_logged(mut self, writes: Vec<Logged>) {
        self.core.publish_in_order(std::mem::take(&mut self.events), &std::mem::take(&mut self.sources)).await;
        // One that holds its locks unlogged is before the cut that started the log (see
        // `Core::acquire_write`): its writes are in the snapshot, not the log.
        if self.ended || !crate::aof::LOG.is_active() || !crate::aof::is_logged(self.tx) {
            self.release();
            return;
        }
        let now = self.now_ms;
        let mut bytes = Vec::new();
        let mut first_db = None;
        let mut current = None;
        let mut count = 0;
        for write in &writes {
            let starts_in = match write {
                Logged::Command { db, spec, reply, .. } if spec.is_write() && !matches!(reply, Frame::Error(_)) => *db,
                Logged::Encoded { first_db, .. } => *first_db,
                Logged::Command { .. } => continue,
            };
            if first_db.is_none() {
                first_db = Some(starts_in);
            } else if current != Some(starts_in) {
                crate::aof::encode_select(starts_in, &mut bytes);
            }
            match write {
                Logged::Command { db, spec, args, reply } => {
                    crate::core::log_command(spec, args, reply, now, &mut bytes);
                    current = Some(*db);
                    count += 1;
                }
                Logged::Encoded { db, bytes: encoded, count: commands, .. } => {
                    bytes.extend_from_slice(encoded);
                    current = Some(*db);
                    count += commands;
                }
            }
        }
        let Some(db) = first_db else {
            self.release();
            return;
        };
        debug_assert!(crate::aof::is_logged(self.tx));
        if count > 1 {
            bytes = crate::aof::wrap_multi(bytes);
        }
        // The body ends in `current`; the writer selects again before the next command if
        // the body changed database.
        self.ended = true;
        self.core.aof_log_transaction(self.tx, db, bytes, &self.sets, true);
        self.core.aof_wait_tx(self.tx).await;
    }

    fn release(&mut self) {
        if !self.ended {
            self.ended = true;
            if crate::aof::is_logged(self.tx) {
                // Its grants are in the log's streams: an empty body closes them.
                self.core.aof_log_transaction(self.tx, 0, Vec::new(), &self.sets, self.wrote);
            } else {
                self.core.release_all_after(self.tx, &self.sets, self.wrote);
            }
        }
    }
}

/// A write of an EXEC, for its logged body.
pub enum Logged {
    /// A command that ran in database `db`, with its reply (a write whose reply is an error
    /// is not logged).
    Command { db: usize, spec: &'static CommandSpec, args: Vec<Bytes>, reply: Frame },
    /// The writes of a script run inside the EXEC, already encoded: `count` commands that
    /// start in `first_db` and end in `db`.
    Encoded { first_db: usize, db: usize, bytes: Vec<u8>, count: usize },
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // A connection that goes away in the middle of an EXEC must not keep its keys.
        self.release();
    }
}

/// Whether a WATCH still holds: no watched key was written, and none expired since.
pub fn watch_holds(flag: &WatchFlag, deadlines: &[Option<u64>], now_ms: u64) -> bool {
    !flag.load(Ordering::Acquire) && deadlines.iter().flatten().all(|&at| now_ms < at)
}

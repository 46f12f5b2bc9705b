//! Running a script (EVAL, FCALL) atomically over the cores of its keys.
//!
//! A Lua script is synchronous: `redis.call` must return before the script goes on, and Lua
//! 5.1 cannot suspend inside C calls, so a script cannot await a message from another core.
//! Instead the script's core takes, in ascending core order, the whole-shard lock of every
//! core whose keys the script declares (its own included), then *parks* the other ones: each
//! hands over a pointer to its shard and blocks its thread until the script ends. The
//! script's core then runs the script on its own thread with direct access to every shard it
//! holds, and resumes the parked cores, telling each which of its keys were written (for
//! WATCH and blocked clients).
//!
//! Why this cannot deadlock: a core is parked only by a transaction that holds its
//! whole-shard lock, and whole-shard locks are exclusive and taken in core order like every
//! other lock, so two scripts never park the same core, and a parked core is never waited
//! for by a lock holder (it holds nothing the script's transaction does not already own).
//! Cores outside the script keep serving; the parked cores stall for the script's duration,
//! as the whole server does for a script in Redis.
//!
//! With one core, or keys all on the connection's core and nothing locked there, none of
//! this happens: the script runs in place.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_commands::ctx::notify::KeyEvent;
use shoal_commands::dispatch::{self, Route};
use shoal_commands::{CommandSpec, Coordinator, Ctx, Handler, HopOp, HopResult};
use shoal_resp::{Frame, Protocol};
use shoal_store::Shard;

use crate::core::{now_ms, Core, Msg};
use crate::locks::{LockSet, Mode};
use crate::stats::Stopwatch;

/// A parked core's shard, lent to the core running a script.
pub struct ShardRef(*const RefCell<Shard>);

// SAFETY: the pointer is only dereferenced by the script's core while the owning core is
// blocked in `Core::park` (which holds no borrow of its shard), and the hand-over and the
// resume are synchronizing operations (a channel send, a mutex), so the two threads never
// touch the shard at the same time and each sees the other's writes. `Shard` is `Send`.
unsafe impl Send for ShardRef {}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Shard>();
};

/// How a parked core learns that the script is over, and which of its keys it wrote.
#[derive(Default)]
pub struct Resume {
    written: Mutex<Option<Vec<(usize, Bytes)>>>,
    done: Condvar,
}

impl Resume {
    fn wait(&self) -> Vec<(usize, Bytes)> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(keys) = written.take() {
                return keys;
            }
            written = self.done.wait(written).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn resume(&self, keys: Vec<(usize, Bytes)>) {
        *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(keys);
        self.done.notify_one();
    }
}

/// A command that needs a core the script does not hold.
#[derive(Debug)]
pub struct NotHeld;

/// What a running script may touch: the shards it holds, synchronously.
pub struct ScriptAccess<'a> {
    core: &'a Rc<Core>,
    /// Per core: its shard when the script holds it (this core's own shard is `None` here and
    /// reached through `core`). Empty when the script holds this core only.
    lent: Vec<Option<ShardRef>>,
    /// Per core: whether the script holds it. Empty when the script holds this core only
    /// (which it always holds).
    held: Vec<bool>,
    /// Per core: the (database, key) pairs the script wrote there; grown on the first write.
    written: RefCell<Vec<Vec<(usize, Bytes)>>>,
    /// Whether `written` is kept: not for a script in place on a core where no client
    /// watches a key or waits on one, as nobody is there to tell (and none can start to
    /// while the script runs).
    noting: bool,
    /// What the append-only log records of the script: its writes, in order.
    log: RefCell<ScriptLog>,
    /// The time every call of the script sees (Unix milliseconds), read once when it starts:
    /// as in Redis, time stands still during a script, so a key cannot expire between two of
    /// its calls, and a relative TTL is logged from the time it was computed with.
    now_ms: u64,
    /// The call running is not a write: on a replica it does not see keys whose time has
    /// passed (see `Db::set_hide_expired`).
    reading: std::cell::Cell<bool>,
}

/// A script's writes as the log records them (effects, as Redis 7 replicates scripts).
#[derive(Default)]
struct ScriptLog {
    bytes: Vec<u8>,
    count: usize,
    first_db: Option<usize>,
    db: Option<usize>,
}

impl ScriptLog {
    fn push(&mut self, db: usize, spec: &CommandSpec, args: &[Bytes], reply: &Frame, now_ms: u64) {
        if self.first_db.is_none() {
            self.first_db = Some(db);
        } else if self.db != Some(db) {
            crate::aof::encode_select(db, &mut self.bytes);
        }
        self.db = Some(db);
        crate::core::log_command(spec, args, reply, now_ms, &mut self.bytes);
        self.count += 1;
    }

    /// Adds DELs of keys a call found expired (see `aof::expired_records`), where the call
    /// ran: before its own write, after the script's earlier ones.
    fn push_expired(&mut self, records: Vec<crate::aof::Record>) {
        for record in records {
            if let crate::aof::Record::Cmds { db, bytes } = record {
                if self.first_db.is_none() {
                    self.first_db = Some(db);
                } else if self.db != Some(db) {
                    crate::aof::encode_select(db, &mut self.bytes);
                }
                self.db = Some(db);
                self.bytes.extend_from_slice(&bytes);
                // At least one command; more only make a MULTI/EXEC of what is one anyway.
                self.count += 1;
            }
        }
    }

    /// The bytes to log (in MULTI/EXEC when several commands) and their database.
    fn finish(self) -> Option<(usize, Vec<u8>)> {
        let db = self.first_db?;
        Some((db, if self.count > 1 { crate::aof::wrap_multi(self.bytes) } else { self.bytes }))
    }

    /// Logs the script's writes: in this core's stream, or, for a script inside EXEC, kept
    /// for the EXEC's body ([`take_exec_script_writes`]), where they belong between the
    /// commands queued around the script.
    fn log(self, core: &Rc<Core>, in_exec: bool) {
        let Some(first_db) = self.first_db else { return };
        if in_exec {
            let (db, count) = (self.db.expect("set with first_db"), self.count);
            EXEC_SCRIPT_WRITES.with(|w| w.borrow_mut().push(crate::transaction::Logged::Encoded { first_db, db, bytes: self.bytes, count }));
        } else if let Some((db, bytes)) = self.finish() {
            core.aof_append(crate::aof::Record::Cmds { db, bytes });
        }
    }
}

thread_local! {
    /// The writes of scripts run inside an EXEC on this core, not yet taken by it.
    static EXEC_SCRIPT_WRITES: RefCell<Vec<crate::transaction::Logged>> = const { RefCell::new(Vec::new()) };
}

/// The writes of the scripts an EXEC ran since its last call, for its logged body.
pub fn take_exec_script_writes() -> Vec<crate::transaction::Logged> {
    EXEC_SCRIPT_WRITES.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

impl ScriptAccess<'_> {
    /// Whether the script holds `shard`.
    pub fn holds(&self, shard: usize) -> bool {
        shard == self.core.id || self.held.get(shard).copied().unwrap_or(false)
    }

    /// The core `key` lives on.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        shoal_store::slot::key_shard(key, self.core.shard_count)
    }

    /// The shard of core `shard`, which the script holds: this core's, or one lent to it.
    fn shard_cell(&self, shard: usize) -> &RefCell<Shard> {
        assert!(self.holds(shard), "the script holds core {shard}");
        match self.lent.get(shard) {
            // SAFETY: see `ShardRef`: the owner is parked until this script resumes it.
            Some(Some(lent)) => unsafe { &*lent.0 },
            _ => self.core.shard_cell(),
        }
    }

    /// Runs `f` with database `db` of core `shard` (held), to look before the script runs.
    pub fn inspect<R>(&self, shard: usize, db: usize, f: impl FnOnce(&shoal_store::db::Db) -> R) -> R {
        f(&self.shard_cell(shard).borrow().dbs[db])
    }

    /// Runs `f` with shard `shard`'s context, then publishes the events it raised.
    fn with_ctx<R>(&self, shard: usize, db: usize, proto: Protocol, f: impl FnOnce(&mut Ctx) -> R) -> R {
        let (result, events) = self.with_ctx_raising(shard, db, proto, f);
        // Published from the script's core, in the order the script raised them.
        self.core.publish_key_events(events);
        result
    }

    /// Runs `f` with shard `shard`'s context; returns the events it raised, unpublished.
    fn with_ctx_raising<R>(&self, shard: usize, db: usize, proto: Protocol, f: impl FnOnce(&mut Ctx) -> R) -> (R, Vec<KeyEvent>) {
        let mut shard = self.shard_cell(shard).borrow_mut();
        let hiding = self.reading.get() && shard.dbs[db].loading();
        if hiding {
            shard.dbs[db].set_hide_expired(true);
        }
        // The script's core's settings, as a command run there without a script would see.
        let settings = self.core.settings.borrow();
        let mut ctx = Ctx::new(&mut shard, db, self.now_ms, proto, &settings);
        let result = f(&mut ctx);
        if hiding {
            ctx.shard.dbs[db].set_hide_expired(false);
        }
        let events = ctx.take_events();
        let expired = crate::aof::expired_records(ctx.shard);
        drop(ctx);
        drop((shard, settings));
        // In the script's own log, where they happened: that log is the script's record in
        // this core's stream, or the body of its transaction or of its EXEC, so the DELs
        // come before the writes that followed them wherever it goes.
        self.log.borrow_mut().push_expired(expired);
        (result, events)
    }

    /// The time the script's calls see (Unix milliseconds).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn note_writes(&self, db: usize, spec: &CommandSpec, args: &[Bytes]) {
        if !self.noting {
            return;
        }
        let mut written = self.written.borrow_mut();
        if written.is_empty() {
            written.resize_with(self.core.shard_count, Vec::new);
        }
        for key in dispatch::keys(spec, args) {
            written[self.shard_of(key)].push((db, key.clone()));
        }
        if let Some(other_db_keys) = spec.other_db_keys {
            for (index, other_db) in other_db_keys(args) {
                written[self.shard_of(&args[index])].push((other_db, args[index].clone()));
            }
        }
    }

    /// Runs one command for the script, synchronously, in `db`, with its reply in `proto`.
    /// Blocking commands answer at once. `Err(NotHeld)` when the command needs a core the
    /// script does not hold.
    pub fn run(&self, db: usize, proto: Protocol, spec: &'static CommandSpec, route: &Route, args: &[Bytes]) -> Result<Frame, NotHeld> {
        let held = match route {
            Route::Connection => false,
            Route::Single(shard) => self.holds(shard.unwrap_or(self.core.id)),
            Route::Multi(shards) => shards.iter().all(|&s| self.holds(s)),
        };
        if !held {
            return Err(NotHeld);
        }
        self.reading.set(!spec.may_write());
        let started = Stopwatch::start();
        // Whether the command changed anything, as far as its core's change counter tells
        // (a single-core command's changes are all counted there): a write that changed
        // nothing (SET NX on an existing key) is neither logged nor seen by watchers.
        let mut changed = true;
        let reply = match (route, spec.handler) {
            (Route::Single(shard), _) if spec.local().is_some() => self.with_ctx(shard.unwrap_or(self.core.id), db, proto, |ctx| {
                let local = spec.local().expect("checked");
                let before = crate::core::changes(ctx.shard);
                let reply = local(ctx, args);
                changed = !spec.is_write() || crate::core::changes(ctx.shard) != before;
                reply
            }),
            (_, Handler::Blocking(ops)) => match (ops.parse)(args) {
                Err(error) => error,
                Ok(_) => {
                    let coordinator = SyncCoordinator::new(self, db, proto);
                    let attempt = (ops.attempt)(&coordinator, args.to_vec()).now_or_never().expect("a script's hops complete at once");
                    coordinator.publish(spec, args);
                    attempt.unwrap_or_else(ops.timed_out)
                }
            },
            (_, Handler::Keys { multi: Some(multi), .. }) | (_, Handler::Multi(multi)) => {
                let coordinator = SyncCoordinator::new(self, db, proto);
                let reply = multi(&coordinator, args.to_vec()).now_or_never().expect("a script's hops complete at once");
                coordinator.publish(spec, args);
                reply
            }
            _ => return Err(NotHeld),
        };
        self.core.stats.borrow_mut().record(spec.name, started.elapsed(), &reply);
        self.core.note_slow(spec, args, started.elapsed(), crate::slowlog::NO_CLIENT);
        self.core.feed_monitors(db, "lua", spec, args);
        // A failed command changed nothing; a cross-core one says so in its reply.
        let changed = changed && !matches!(reply, Frame::Error(_)) && (matches!(route, Route::Single(_)) || !crate::transaction::changed_nothing(spec, &reply));
        if spec.may_write() && changed {
            self.note_writes(db, spec, args);
            if spec.is_write() && crate::aof::LOG.is_active() {
                self.log.borrow_mut().push(db, spec, args, &reply, self.now_ms);
            }
        }
        Ok(reply)
    }
}

/// Runs a cross-core command's hops directly on the shards a script holds.
struct SyncCoordinator<'a, 'b> {
    access: &'a ScriptAccess<'b>,
    db: usize,
    proto: Protocol,
    /// Each hop's events, published once the command is done (see `merge_events`).
    events: RefCell<Vec<Vec<KeyEvent>>>,
}

impl<'a, 'b> SyncCoordinator<'a, 'b> {
    fn new(access: &'a ScriptAccess<'b>, db: usize, proto: Protocol) -> Self {
        SyncCoordinator { access, db, proto, events: RefCell::new(Vec::new()) }
    }

    /// Publishes the events of the command that ran, from the script's core, in Redis's
    /// order, as the script's other events are published (without `publish_in_order`'s
    /// round trip: see ARCHITECTURE.md, Pub/Sub).
    fn publish(&self, spec: &CommandSpec, args: &[Bytes]) {
        self.access.core.publish_key_events(crate::core::merge_events(self.events.take(), spec, args));
    }
}

impl Coordinator for SyncCoordinator<'_, '_> {
    fn shard_count(&self) -> usize {
        self.access.core.shard_count
    }

    fn db_index(&self) -> usize {
        self.db
    }

    fn proto(&self) -> Protocol {
        self.proto
    }

    fn hop(&self, ops: Vec<(usize, HopOp)>) -> LocalBoxFuture<'_, Vec<HopResult>> {
        let results: Vec<HopResult> = ops
            .into_iter()
            .map(|(shard, op)| {
                let (result, events) = self.access.with_ctx_raising(shard, self.db, self.proto, op);
                if !events.is_empty() {
                    self.events.borrow_mut().push(events);
                }
                result
            })
            .collect();
        futures::future::ready(results).boxed_local()
    }
}

impl Core {
    /// Runs `script` here and now, holding only this core, when nothing is locked here:
    /// nothing else runs on this thread while it does, so it needs no lock, no parking and no
    /// per-core tables. The caller has checked that the script's keys are all on this core
    /// (or that its EXEC holds them). Gives the script back when something is locked here.
    pub fn run_script_here<R, F: FnOnce(&ScriptAccess) -> R>(self: &Rc<Self>, script: F) -> Result<R, F> {
        if !self.locks_idle() {
            return Err(script);
        }
        Ok(self.run_script_in_place(false, script))
    }

    fn run_script_in_place<R>(self: &Rc<Self>, in_exec: bool, script: impl FnOnce(&ScriptAccess) -> R) -> R {
        let noting = self.watched_or_waited_on();
        let access = ScriptAccess {
            core: self,
            lent: Vec::new(),
            held: Vec::new(),
            written: RefCell::new(Vec::new()),
            noting,
            log: Default::default(),
            now_ms: now_ms(),
            reading: Default::default(),
        };
        let result = script(&access);
        let mut written = access.written.take();
        if let Some(own) = written.get_mut(self.id) {
            self.signal_keys_written(own);
        }
        // Every key it touched is this core's: its stream holds the script's writes.
        access.log.take().log(self, in_exec);
        result
    }

    /// Runs `script` holding every core in `shards` and this one (see the module docs).
    /// `already_held` is for a script inside EXEC, whose transaction holds them already.
    pub async fn run_script<R>(self: &Rc<Self>, shards: &[usize], already_held: bool, script: impl FnOnce(&ScriptAccess) -> R) -> R {
        let only_here = shards.iter().all(|&shard| shard == self.id);
        if only_here && (already_held || self.locks_idle()) {
            // The script only touches this core and nothing is locked here (or its EXEC
            // holds the locks): it runs in place.
            return self.run_script_in_place(already_held, script);
        }
        let mut cores: Vec<usize> = shards.iter().copied().chain([self.id]).collect();
        cores.sort_unstable();
        cores.dedup();
        let locked = if already_held {
            None
        } else {
            let sets: Vec<(usize, LockSet)> = cores.iter().map(|&c| (c, LockSet { shard: Some(Mode::Exclusive), keys: Vec::new() })).collect();
            let tx = self.acquire_write(&sets).await;
            Some((tx, sets))
        };
        // The script publishes its keyspace events from this core as it runs. So that each
        // key's events stay in order, what the other cores published before reaches every
        // core first (here), and what the script published does before its locks go (below;
        // inside EXEC, before the EXEC's next command).
        let fenced = self.shard_count > 1 && self.events_listened();
        if fenced {
            futures::future::join_all(cores.iter().filter(|&&core| core != self.id).map(|&core| self.flushed_from(core))).await;
        }
        // Park the other cores.
        let mut lent: Vec<Option<ShardRef>> = (0..self.shard_count).map(|_| None).collect();
        let mut resumes: Vec<(usize, Arc<Resume>)> = Vec::new();
        for &core in cores.iter().filter(|&&c| c != self.id) {
            let (ack, parked) = oneshot::channel();
            let resume = Arc::new(Resume::default());
            self.send(core, Msg::Park { ack, resume: resume.clone() });
            resumes.push((core, resume));
            lent[core] = Some(parked.await.expect("a parked core always lends its shard"));
        }
        let mut held = vec![false; self.shard_count];
        for &core in &cores {
            held[core] = true;
        }
        let access = ScriptAccess {
            core: self,
            lent,
            held,
            written: RefCell::new(vec![Vec::new(); self.shard_count]),
            noting: true,
            log: Default::default(),
            now_ms: now_ms(),
            reading: Default::default(),
        };
        let result = {
            // Resume the parked cores even if the script panics, so they do not hang.
            let resume_all = Resumer { resumes, written: &access.written };
            let result = script(&access);
            drop(resume_all);
            result
        };
        let mut written = access.written.take();
        let own = std::mem::take(&mut written[self.id]);
        self.signal_keys_written(&own);
        if fenced {
            self.call_all(|_| ()).await;
        }
        let logged = access.log.take();
        let Some((tx, sets)) = locked else {
            // Inside EXEC, which holds the cores: logged in the EXEC's body.
            logged.log(self, true);
            return result;
        };
        match logged.finish() {
            // Logged whole, with a barrier on every core it held (see crate::aof).
            // (One that holds its cores unlogged is before the log's cut: see
            // `Core::acquire_write`.)
            Some((db, bytes)) if crate::aof::is_logged(tx) => {
                self.aof_log_transaction(tx, db, bytes, &sets, true);
                self.aof_wait_tx(tx).await;
            }
            _ => {
                let wrote = !own.is_empty() || written.iter().any(|w| !w.is_empty());
                if crate::aof::is_logged(tx) {
                    self.aof_log_transaction(tx, 0, Vec::new(), &sets, wrote);
                } else {
                    self.release_all_after(tx, &sets, wrote);
                }
            }
        }
        result
    }

    /// On a core asked to park: lends its shard and blocks until the script resumes it, then
    /// signals what the script wrote here.
    pub(crate) fn park(self: &Rc<Self>, ack: oneshot::Sender<ShardRef>, resume: Arc<Resume>) {
        if ack.send(ShardRef(self.shard_cell() as *const RefCell<Shard>)).is_err() {
            return;
        }
        let written = resume.wait();
        self.signal_keys_written(&written);
    }
}

/// Resumes parked cores when dropped, each with the keys written on it.
struct Resumer<'a> {
    resumes: Vec<(usize, Arc<Resume>)>,
    written: &'a RefCell<Vec<Vec<(usize, Bytes)>>>,
}

impl Drop for Resumer<'_> {
    fn drop(&mut self) {
        let mut written = self.written.borrow_mut();
        for (core, resume) in &self.resumes {
            resume.resume(std::mem::take(&mut written[*core]));
        }
    }
}

//! One core: its shard, its lock table, its ends of the channel mesh, and the code that runs
//! commands on it, for its own connections and on behalf of other cores.
//!
//! Everything here runs on the core's own executor thread. Other cores reach this core's data
//! only by sending it a [`Msg`]; the shard is never borrowed across an `.await`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use glommio::channels::channel_mesh::Senders;
use shoal_commands::dispatch::{self, Route};
use shoal_commands::{CommandSpec, Coordinator, Ctx, Handler, HopOp, HopResult, Settings};
use shoal_resp::{Frame, Protocol};
use shoal_store::Shard;

use crate::locks::{LockManager, LockSet, Mode};
use crate::stats::CoreStats;

/// State every core can see: atomics only, never on the data path.
#[derive(Default)]
pub struct Shared {
    /// Set once to stop the server (SIGTERM, SIGINT, SHUTDOWN).
    pub shutdown: AtomicBool,
    /// Exit code the process should end with once shut down.
    pub exit_code: AtomicUsize,
    /// Connected clients, across cores (for maxclients and INFO).
    pub clients: AtomicUsize,
    /// Cores that finished draining their connections during shutdown.
    pub cores_drained: AtomicUsize,
    /// Source of client ids (CLIENT ID), unique across cores.
    pub next_client_id: AtomicU64,
    /// Connections ever accepted, for INFO.
    pub connections_received: AtomicU64,
    /// Connections refused because of maxclients.
    pub rejected_connections: AtomicU64,
}

/// Plain commands bound for one core, in order.
type Batch = Vec<(&'static CommandSpec, Vec<Bytes>)>;

/// A command ready to run: its table entry, its route and its arguments.
pub struct Cmd {
    pub spec: &'static CommandSpec,
    pub route: Route,
    pub args: Vec<Bytes>,
}

/// Identifies a cross-core transaction: the coordinating core and a per-core counter.
pub type TxId = u64;

/// A closure run on another core, for server-wide commands (INFO, CONFIG SET, ...).
pub type CallFn = Box<dyn FnOnce(&Rc<Core>) -> Box<dyn Any + Send> + Send>;

/// A message between cores. Messages from one core to another arrive in the order sent.
pub enum Msg {
    /// Run plain commands in order and reply with their frames.
    Batch { req: u64, db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)> },
    /// Take intent locks for transaction `tx`; reply when granted.
    Acquire { req: u64, tx: TxId, locks: LockSet },
    /// Run one hop of a transaction that holds its locks here.
    Hop { req: u64, db: usize, proto: Protocol, op: HopOp },
    /// Release the locks of transaction `tx`; no reply.
    Release { tx: TxId },
    /// Run a closure on the core.
    Call { req: u64, call: CallFn },
    /// The answer to a request from this core.
    Reply { req: u64, payload: Payload },
}

pub enum Payload {
    Frames(Vec<Frame>),
    Granted,
    Hop(HopResult),
    Call(Box<dyn Any + Send>),
}

/// Who waits on a lock set.
enum Waiter {
    /// A batch of plain commands, run as soon as its keys are free.
    Batch { db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>, done: Done },
    /// A transaction coordinated by this core.
    LocalTx { tx: TxId, granted: oneshot::Sender<()> },
    /// A transaction coordinated by another core.
    RemoteTx { tx: TxId, from: usize, req: u64 },
}

/// Where a batch's replies go.
enum Done {
    Local(oneshot::Sender<Vec<Frame>>),
    Remote { from: usize, req: u64 },
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub struct Core {
    pub id: usize,
    pub shard_count: usize,
    pub shared: Arc<Shared>,
    shard: RefCell<Shard>,
    locks: RefCell<LockManager<Waiter>>,
    /// Locks held here by transactions, until they release.
    held: RefCell<HashMap<TxId, LockSet>>,
    senders: Senders<Vec<Msg>>,
    outboxes: RefCell<Vec<Vec<Msg>>>,
    pumping: RefCell<Vec<bool>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Payload>>>,
    next_req: Cell<u64>,
    next_tx: Cell<u64>,
    pub settings: RefCell<Settings>,
    pub stats: RefCell<CoreStats>,
}

/// Yields to the executor once, so that other ready tasks run before we continue.
pub struct YieldNow(bool);

/// Lets every other ready task on this core run once before the caller continues.
pub fn yield_now() -> YieldNow {
    YieldNow(false)
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Core {
    pub(crate) fn new(id: usize, shard_count: usize, databases: usize, settings: Settings, shared: Arc<Shared>, senders: Senders<Vec<Msg>>) -> Core {
        Core {
            id,
            shard_count,
            shared,
            shard: RefCell::new(Shard::new(id, shard_count, databases)),
            locks: RefCell::new(LockManager::default()),
            held: RefCell::new(HashMap::new()),
            senders,
            outboxes: RefCell::new((0..shard_count).map(|_| Vec::new()).collect()),
            pumping: RefCell::new(vec![false; shard_count]),
            pending: RefCell::new(HashMap::new()),
            next_req: Cell::new(1),
            next_tx: Cell::new(1),
            settings: RefCell::new(settings),
            stats: RefCell::new(CoreStats::default()),
        }
    }

    /// Runs `f` with this core's shard. Never call it across an `.await`.
    pub fn with_shard<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.shard.borrow_mut())
    }

    // ---- Messaging -------------------------------------------------------------------

    fn send(self: &Rc<Self>, to: usize, msg: Msg) {
        assert_ne!(to, self.id, "a core does not message itself");
        self.outboxes.borrow_mut()[to].push(msg);
        let mut pumping = self.pumping.borrow_mut();
        if !pumping[to] {
            pumping[to] = true;
            let core = self.clone();
            glommio::spawn_local(async move { core.pump(to).await }).detach();
        }
    }

    /// Sends what accumulated for `to` as one mesh message per turn, so that everything a
    /// core produces for a peer in one scheduling round travels together.
    async fn pump(self: Rc<Self>, to: usize) {
        loop {
            YieldNow(false).await;
            let batch = std::mem::take(&mut self.outboxes.borrow_mut()[to]);
            if batch.is_empty() {
                self.pumping.borrow_mut()[to] = false;
                return;
            }
            if self.senders.send_to(to, batch).await.is_err() {
                // The peer has shut down; nobody waits for these messages any more.
                self.pumping.borrow_mut()[to] = false;
                return;
            }
        }
    }

    fn request(self: &Rc<Self>, to: usize, make: impl FnOnce(u64) -> Msg) -> oneshot::Receiver<Payload> {
        let req = self.next_req.get();
        self.next_req.set(req + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(req, tx);
        self.send(to, make(req));
        rx
    }

    fn reply(self: &Rc<Self>, to: usize, req: u64, payload: Payload) {
        self.send(to, Msg::Reply { req, payload });
    }

    /// Handles one message from core `from`. Never waits: work that cannot run yet is queued.
    pub(crate) fn handle(self: &Rc<Self>, from: usize, msg: Msg) {
        match msg {
            Msg::Batch { req, db, proto, cmds } => self.submit_batch(db, proto, cmds, Done::Remote { from, req }),
            Msg::Acquire { req, tx, locks } => {
                let granted = self.locks.borrow_mut().acquire(locks, Waiter::RemoteTx { tx, from, req });
                if let Some(granted) = granted {
                    self.process_grants(vec![granted]);
                }
            }
            Msg::Hop { req, db, proto, op } => {
                let result = self.run_hop(db, proto, op);
                self.reply(from, req, Payload::Hop(result));
            }
            Msg::Release { tx } => self.release_local(tx),
            Msg::Call { req, call } => {
                let result = call(self);
                self.reply(from, req, Payload::Call(result));
            }
            Msg::Reply { req, payload } => {
                let waiter = self.pending.borrow_mut().remove(&req);
                // The requester may have gone away (a closed connection); drop the answer then.
                if let Some(waiter) = waiter {
                    let _ = waiter.send(payload);
                }
            }
        }
    }

    // ---- Running commands on this shard ----------------------------------------------

    fn run_now(&self, db: usize, proto: Protocol, cmds: &[(&'static CommandSpec, Vec<Bytes>)]) -> Vec<Frame> {
        let settings = self.settings.borrow();
        let mut shard = self.shard.borrow_mut();
        let mut stats = self.stats.borrow_mut();
        let now_ms = now_ms();
        let mut ctx = Ctx { shard: &mut shard, db_index: db, now_ms, proto, settings: &settings };
        cmds.iter()
            .map(|(spec, args)| {
                let Handler::Keys { local, .. } = spec.handler else { unreachable!("only Keys commands travel in batches, not {}", spec.name) };
                let started = std::time::Instant::now();
                let reply = local(&mut ctx, args);
                stats.record(spec.name, started.elapsed(), &reply);
                reply
            })
            .collect()
    }

    fn run_hop(&self, db: usize, proto: Protocol, op: HopOp) -> HopResult {
        let settings = self.settings.borrow();
        let mut shard = self.shard.borrow_mut();
        let mut ctx = Ctx { shard: &mut shard, db_index: db, now_ms: now_ms(), proto, settings: &settings };
        op(&mut ctx)
    }

    /// The locks a batch of plain commands needs while it runs.
    fn batch_locks(db: usize, cmds: &[(&'static CommandSpec, Vec<Bytes>)]) -> LockSet {
        let mut set = LockSet::default();
        for (spec, args) in cmds {
            let mode = if spec.is_write() { Mode::Exclusive } else { Mode::Shared };
            for key in dispatch::keys(spec, args) {
                set.push(db, key.clone(), mode);
            }
            if let Some(other_db_keys) = spec.other_db_keys {
                for (index, other_db) in other_db_keys(args) {
                    set.push(other_db, args[index].clone(), Mode::Exclusive);
                }
            }
        }
        set.normalize();
        set
    }

    fn submit_batch(self: &Rc<Self>, db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>, done: Done) {
        let runnable = {
            let locks = self.locks.borrow();
            locks.is_idle() || locks.can_run(&Self::batch_locks(db, &cmds))
        };
        if runnable {
            let frames = self.run_now(db, proto, &cmds);
            self.finish_batch(done, frames);
            return;
        }
        let set = Self::batch_locks(db, &cmds);
        let granted = self.locks.borrow_mut().acquire(set, Waiter::Batch { db, proto, cmds, done });
        if let Some(granted) = granted {
            self.process_grants(vec![granted]);
        }
    }

    fn finish_batch(self: &Rc<Self>, done: Done, frames: Vec<Frame>) {
        match done {
            Done::Local(tx) => {
                let _ = tx.send(frames);
            }
            Done::Remote { from, req } => self.reply(from, req, Payload::Frames(frames)),
        }
    }

    /// Acts on waiters whose locks were just granted. Batches run and release at once, which
    /// may grant more.
    fn process_grants(self: &Rc<Self>, mut granted: Vec<(LockSet, Waiter)>) {
        while let Some((set, waiter)) = granted.pop() {
            match waiter {
                Waiter::Batch { db, proto, cmds, done } => {
                    let frames = self.run_now(db, proto, &cmds);
                    self.finish_batch(done, frames);
                    let more = self.locks.borrow_mut().release(&set);
                    granted.extend(more.into_iter().rev());
                }
                Waiter::LocalTx { tx, granted: signal } => {
                    self.held.borrow_mut().insert(tx, set);
                    let _ = signal.send(());
                }
                Waiter::RemoteTx { tx, from, req } => {
                    self.held.borrow_mut().insert(tx, set);
                    self.reply(from, req, Payload::Granted);
                }
            }
        }
    }

    fn release_local(self: &Rc<Self>, tx: TxId) {
        let set = self.held.borrow_mut().remove(&tx).expect("a transaction releases the locks it holds");
        let granted = self.locks.borrow_mut().release(&set);
        self.process_grants(granted);
    }

    // ---- Coordinating ----------------------------------------------------------------

    /// Runs the commands of one read from a connection and returns their replies in order.
    /// Plain commands are grouped per owning core, one message per core, and run in
    /// parallel; a cross-core command waits for everything before it and runs alone.
    pub async fn execute(self: &Rc<Self>, db: usize, proto: Protocol, cmds: Vec<Cmd>) -> Vec<Frame> {
        // The fast path: everything on this core and nothing locked here, so the commands
        // run in place, with no message and no wait.
        let all_local = cmds.iter().all(|c| matches!(c.route, Route::Single(None)) || c.route == Route::Single(Some(self.id)));
        if all_local && self.locks.borrow().is_idle() {
            let batch: Vec<(&'static CommandSpec, Vec<Bytes>)> = cmds.into_iter().map(|c| (c.spec, c.args)).collect();
            return self.run_now(db, proto, &batch);
        }
        let mut replies: Vec<Option<Frame>> = (0..cmds.len()).map(|_| None).collect();
        let mut cmds = cmds.into_iter().enumerate().peekable();
        while cmds.peek().is_some() {
            if let Some((index, cmd)) = cmds.next_if(|(_, c)| matches!(c.route, Route::Multi(_))) {
                let Route::Multi(shards) = cmd.route else { unreachable!("matched Multi") };
                replies[index] = Some(self.run_multi(db, proto, cmd.spec, cmd.args, shards).await);
                continue;
            }
            // The run of plain commands up to the next cross-core one.
            let mut groups: Vec<(usize, Vec<usize>, Batch)> = Vec::new();
            while let Some((index, cmd)) = cmds.next_if(|(_, c)| !matches!(c.route, Route::Multi(_))) {
                let Route::Single(shard) = cmd.route else { unreachable!("Connection commands are handled by the caller") };
                let shard = shard.unwrap_or(self.id);
                match groups.iter_mut().find(|(s, _, _)| *s == shard) {
                    Some((_, indexes, batch)) => {
                        indexes.push(index);
                        batch.push((cmd.spec, cmd.args));
                    }
                    None => groups.push((shard, vec![index], vec![(cmd.spec, cmd.args)])),
                }
            }
            let mut waits = Vec::with_capacity(groups.len());
            let mut local = None;
            for (shard, indexes, batch) in groups {
                if shard == self.id {
                    local = Some((indexes, batch));
                } else {
                    let rx = self.request(shard, |req| Msg::Batch { req, db, proto, cmds: batch });
                    waits.push((indexes, BatchWait::Remote(rx)));
                }
            }
            if let Some((indexes, batch)) = local {
                let (tx, rx) = oneshot::channel();
                self.submit_batch(db, proto, batch, Done::Local(tx));
                waits.push((indexes, BatchWait::Local(rx)));
            }
            for (indexes, wait) in waits {
                let frames = match wait {
                    BatchWait::Local(rx) => rx.await.expect("a local batch always completes"),
                    BatchWait::Remote(rx) => match rx.await.expect("a peer always answers a batch") {
                        Payload::Frames(frames) => frames,
                        _ => unreachable!("a batch is answered with frames"),
                    },
                };
                for (index, frame) in indexes.into_iter().zip(frames) {
                    replies[index] = Some(frame);
                }
            }
        }
        replies.into_iter().map(|r| r.expect("every command got a reply")).collect()
    }

    /// Runs a command as a transaction over `shards`: takes the intent locks core by core in
    /// ascending order, runs the command's hops, then releases everywhere.
    async fn run_multi(self: &Rc<Self>, db: usize, proto: Protocol, spec: &'static CommandSpec, args: Vec<Bytes>, shards: Vec<usize>) -> Frame {
        let multi = match spec.handler {
            Handler::Keys { multi: Some(multi), .. } | Handler::Multi(multi) => multi,
            _ => unreachable!("{} has a cross-core form", spec.name),
        };
        let mode = if spec.is_write() { Mode::Exclusive } else { Mode::Shared };
        let mut sets: Vec<(usize, LockSet)> = shards.iter().map(|&s| (s, LockSet::default())).collect();
        if spec.has(shoal_commands::table::flags::ALL_SHARDS) {
            for (_, set) in &mut sets {
                set.shard = Some(mode);
            }
        } else {
            for key in dispatch::keys(spec, &args) {
                let shard = shoal_store::slot::key_shard(key, self.shard_count);
                let (_, set) = sets.iter_mut().find(|(s, _)| *s == shard).expect("the route lists every key's core");
                set.push(db, key.clone(), mode);
            }
            if let Some(other_db_keys) = spec.other_db_keys {
                for (index, other_db) in other_db_keys(&args) {
                    let shard = shoal_store::slot::key_shard(&args[index], self.shard_count);
                    let (_, set) = sets.iter_mut().find(|(s, _)| *s == shard).expect("the key is also in the selected database");
                    set.push(other_db, args[index].clone(), Mode::Exclusive);
                }
            }
            for (_, set) in &mut sets {
                set.normalize();
            }
        }
        let tx = self.new_tx();
        self.acquire_all(tx, sets.clone()).await;
        let coordinator = TxCoordinator { core: self.clone(), db, proto };
        let started = std::time::Instant::now();
        let reply = multi(&coordinator, args).await;
        self.stats.borrow_mut().record(spec.name, started.elapsed(), &reply);
        self.release_all(tx, &sets);
        reply
    }

    fn new_tx(&self) -> TxId {
        let n = self.next_tx.get();
        self.next_tx.set(n + 1);
        ((self.id as u64) << 48) | n
    }

    /// Takes the locks of `tx` on each core in ascending core order, waiting for each grant
    /// before asking the next core. The fixed order is what rules out deadlock.
    pub(crate) async fn acquire_all(self: &Rc<Self>, tx: TxId, sets: Vec<(usize, LockSet)>) {
        debug_assert!(sets.windows(2).all(|w| w[0].0 < w[1].0), "cores in ascending order");
        for (shard, set) in sets {
            if shard == self.id {
                let (signal, granted) = oneshot::channel();
                let now = self.locks.borrow_mut().acquire(set, Waiter::LocalTx { tx, granted: signal });
                if let Some(now) = now {
                    self.process_grants(vec![now]);
                }
                granted.await.expect("a local grant always arrives");
            } else {
                let rx = self.request(shard, |req| Msg::Acquire { req, tx, locks: set });
                match rx.await.expect("a peer always grants eventually") {
                    Payload::Granted => {}
                    _ => unreachable!("an acquire is answered with a grant"),
                }
            }
        }
    }

    pub(crate) fn release_all(self: &Rc<Self>, tx: TxId, sets: &[(usize, LockSet)]) {
        for (shard, _) in sets {
            if *shard == self.id {
                self.release_local(tx);
            } else {
                self.send(*shard, Msg::Release { tx });
            }
        }
    }

    /// Runs `call` on every core (this one included) and returns the results in core order.
    pub async fn call_all<T: Send + 'static>(self: &Rc<Self>, call: impl Fn(&Rc<Core>) -> T + Send + Clone + 'static) -> Vec<T> {
        let mut waits = Vec::new();
        for core in 0..self.shard_count {
            if core != self.id {
                let call = call.clone();
                let boxed: CallFn = Box::new(move |c: &Rc<Core>| Box::new(call(c)) as Box<dyn Any + Send>);
                waits.push(Some(self.request(core, |req| Msg::Call { req, call: boxed })));
            } else {
                waits.push(None);
            }
        }
        let mut results = Vec::with_capacity(self.shard_count);
        let mut own = Some(call(self));
        for wait in waits {
            match wait {
                None => results.push(own.take().expect("own result used once")),
                Some(rx) => match rx.await.expect("a peer always answers a call") {
                    Payload::Call(result) => results.push(*result.downcast::<T>().expect("call result type")),
                    _ => unreachable!("a call is answered with its result"),
                },
            }
        }
        results
    }
}

enum BatchWait {
    Local(oneshot::Receiver<Vec<Frame>>),
    Remote(oneshot::Receiver<Payload>),
}

/// The runtime's side of a cross-core command: runs hops on cores whose locks it holds.
struct TxCoordinator {
    core: Rc<Core>,
    db: usize,
    proto: Protocol,
}

impl Coordinator for TxCoordinator {
    fn shard_count(&self) -> usize {
        self.core.shard_count
    }

    fn db_index(&self) -> usize {
        self.db
    }

    fn proto(&self) -> Protocol {
        self.proto
    }

    fn hop(&self, ops: Vec<(usize, HopOp)>) -> LocalBoxFuture<'_, Vec<HopResult>> {
        async move {
            let mut waits = Vec::with_capacity(ops.len());
            let mut locals = Vec::new();
            for (index, (shard, op)) in ops.into_iter().enumerate() {
                if shard == self.core.id {
                    locals.push((index, op));
                    waits.push(None);
                } else {
                    let (db, proto) = (self.db, self.proto);
                    waits.push(Some(self.core.request(shard, |req| Msg::Hop { req, db, proto, op })));
                }
            }
            let mut results: Vec<Option<HopResult>> = (0..waits.len()).map(|_| None).collect();
            for (index, op) in locals {
                results[index] = Some(self.core.run_hop(self.db, self.proto, op));
            }
            for (index, wait) in waits.into_iter().enumerate() {
                if let Some(rx) = wait {
                    match rx.await.expect("a peer always answers a hop") {
                        Payload::Hop(result) => results[index] = Some(result),
                        _ => unreachable!("a hop is answered with its result"),
                    }
                }
            }
            results.into_iter().map(|r| r.expect("every hop has a result")).collect()
        }
        .boxed_local()
    }
}

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
use shoal_commands::ctx::notify::KeyEvent;
use shoal_commands::dispatch::{self, Route};
use shoal_commands::table::{BlockingOps, Served};
use shoal_commands::{CommandSpec, Coordinator, Ctx, Handler, HopOp, HopResult, Settings};
use shoal_resp::{Frame, Protocol};
use shoal_store::Shard;

use crate::blocking::{Blocked, Registry, Wake};
use crate::locks::{LockManager, LockSet, Mode};
use crate::stats::{CoreStats, Stopwatch};

/// State every core can see: atomics only, never on the data path.
#[derive(Default)]
pub struct Shared {
    /// Set once to stop the server (SHUTDOWN, or core 0 after a signal asked).
    pub shutdown: AtomicBool,
    /// Set by SIGTERM or SIGINT: core 0 saves if it should, then sets `shutdown`.
    pub shutdown_requested: AtomicBool,
    /// The signal that asked was SIGINT (`shutdown-on-sigint` applies, else
    /// `shutdown-on-sigterm`).
    pub shutdown_by_sigint: AtomicBool,
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
    /// Source of SLOWLOG entry ids, unique across cores.
    pub slowlog_next_id: AtomicU64,
    /// Clients in MONITOR mode, across cores (see [`crate::monitor`]).
    pub monitors: AtomicUsize,
}

/// The key changes a shard counted (every write passes `Db::before_write`): a write that
/// moved it changed something and is logged.
pub(crate) fn changes(shard: &Shard) -> u64 {
    shard.dbs.iter().map(|db| db.stats.changes).sum()
}

thread_local! {
    /// The core of this thread, for code that runs on it with no handle to it (a
    /// transaction's hop, see `Transaction::run_single`).
    static CURRENT: RefCell<std::rc::Weak<Core>> = const { RefCell::new(std::rc::Weak::new()) };
}

impl Core {
    /// Makes `core` this thread's core (see [`Core::current`]).
    pub(crate) fn make_current(core: &Rc<Core>) {
        CURRENT.with(|current| *current.borrow_mut() = Rc::downgrade(core));
    }

    /// This thread's core. Panics on a thread that runs none.
    pub(crate) fn current() -> Rc<Core> {
        CURRENT.with(|current| current.borrow().upgrade()).expect("a core runs on this thread")
    }
}

/// A transaction's locks on this core, with what its release needs to spare the watchers of
/// keys it did not change.
struct Held {
    set: LockSet,
    /// Watched keys the transaction may write that did not exist at the grant. Still absent
    /// at the release, they are taken as unchanged (DEL of a missing key; FLUSHALL and SWAPDB
    /// leave the watchers of keys in neither database alone, as Redis's
    /// touchAllWatchedKeysInDb). Redis would fail them if the transaction created the key and
    /// then deleted it again.
    absent: Vec<(usize, Bytes)>,
}

/// Appends what the log records for a write that ran (see `shoal_commands::propagate`).
pub(crate) fn log_command(spec: &CommandSpec, args: &[Bytes], reply: &Frame, now_ms: u64, out: &mut Vec<u8>) {
    match shoal_commands::propagate::rewrite(spec, args, reply, now_ms) {
        None => crate::aof::encode(args, out),
        Some(commands) => {
            for command in commands {
                crate::aof::encode(&command, out);
            }
        }
    }
}

/// The core's maps of transactions and requests in flight: numbers it chose, hashed by
/// foldhash (SipHash was 1% of a cross-core MULTI's samples).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Messages waiting in one outbox beyond which [`Core::outbox_room`] makes its caller wait.
pub const OUTBOX_BACKLOG_MAX: usize = 4096;

/// Plain commands bound for one core, in order.
type Batch = Vec<(&'static CommandSpec, Vec<Bytes>)>;

/// A command ready to run: its table entry, its route and its arguments.
pub struct Cmd {
    pub spec: &'static CommandSpec,
    pub route: Route,
    pub args: Vec<Bytes>,
    /// Non-zero: the registered [`Guard`] looks at the command on the core that runs it,
    /// just before it runs, with these flags (the server's to define). Zero: only when the
    /// guard's generation moved since the command was read (see [`Guarding`]).
    pub guard: u8,
}

/// A check run on the core that owns a command's keys, in the same step as the command and
/// just before it, that may answer in its place: cluster mode's redirection, which depends on
/// keys a MIGRATE may take away while the command waits for its locks or its turn. Called
/// with the command, its arguments, database 0 of the core's shard and the flags.
pub type Guard = fn(&'static CommandSpec, &[Bytes], &shoal_store::db::Db, u8) -> Option<Frame>;

/// What a blocked command that waits on keys is asked again whenever what the guard checks
/// against changes (see [`Core::guard_changed`]): an answer ends the wait with it (cluster
/// mode: its slot moved to another node, or the cluster went down).
/// Called with the command, its arguments and the read's [`Guarding::common`] flags.
pub type BlockedGuard = fn(&'static CommandSpec, &[Bytes], u8) -> Option<Frame>;

/// The registered guard, and the generation of what it checks against (bumped on every
/// change).
struct Registered {
    check: Guard,
    blocked: BlockedGuard,
    generation: &'static AtomicU64,
}

static GUARD: std::sync::OnceLock<Registered> = std::sync::OnceLock::new();

/// Registers the [`Guard`], the [`BlockedGuard`] and their generation (once per process;
/// cluster mode).
pub fn set_guard(check: Guard, blocked: BlockedGuard, generation: &'static AtomicU64) {
    let _ = GUARD.set(Registered { check, blocked, generation });
}

/// How the commands of one read are guarded where they run (see [`Guard`]).
#[derive(Clone, Copy, Default)]
pub struct Guarding {
    /// The guard's generation before the requests were checked when read; 0: none is.
    pub generation: u64,
    /// The flags a command without its own ([`Cmd::guard`] 0) is checked with when the
    /// generation has moved since.
    pub common: u8,
}

/// Who sent a batch, and what it asks besides its commands' replies.
pub struct Origin {
    /// The client, for the slow log.
    pub client: u64,
    /// Remember the keys its read-only commands read, for the client's invalidations
    /// (CLIENT TRACKING).
    pub track: bool,
    pub guards: Guards,
}

/// One batch's guarding: the read's, and each command's own flags when any has some.
#[derive(Default)]
pub struct Guards {
    pub read: Guarding,
    pub each: Vec<u8>,
}

impl Guards {
    /// The flags to check `cmds[index]` with now, if any (`moved`: see [`Guards::moved`]).
    fn flags(&self, index: usize, moved: bool) -> u8 {
        match self.each.get(index) {
            Some(&own) if own != 0 => own,
            _ if moved => self.read.common,
            _ => 0,
        }
    }

    /// Whether the guard's generation moved since the commands were read.
    fn moved(&self) -> bool {
        self.read.generation != 0 && GUARD.get().is_some_and(|g| g.generation.load(std::sync::atomic::Ordering::Acquire) != self.read.generation)
    }
}

/// The guard's answer for a command checked with `flags` (none when 0).
fn guarded(flags: u8, spec: &'static CommandSpec, args: &[Bytes], shard: &Shard) -> Option<Frame> {
    let guard = GUARD.get().filter(|_| flags != 0)?;
    (guard.check)(spec, args, &shard.dbs[0], flags)
}

/// Identifies a cross-core transaction: the coordinating core and a per-core counter.
pub type TxId = u64;

/// A closure run on another core, for server-wide commands (INFO, CONFIG SET, ...).
pub type CallFn = Box<dyn FnOnce(&Rc<Core>) -> Box<dyn Any + Send> + Send>;

/// A message between cores. Messages from one core to another arrive in the order sent.
pub enum Msg {
    /// Run plain commands in order and reply with their frames.
    Batch { req: u64, db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>, origin: Origin },
    /// Take intent locks for transaction `tx`; reply when granted.
    Acquire { req: u64, tx: TxId, locks: LockSet },
    /// Take intent locks for transaction `tx` only if they can be granted now; reply at once,
    /// granted or refused (see [`Core::acquire_all`]).
    TryAcquire { req: u64, tx: TxId, locks: LockSet },
    /// Take intent locks for transaction `tx` only if they can be granted now, then run `op`
    /// and release at once; reply [`Payload::Hop`] (released) or [`Payload::Refused`]
    /// (nothing held, nothing ran). For a command or EXEC whose other locks, all on the
    /// asking core, are already held (see `crate::pair` and `Core::exec_with_one_peer`).
    /// With `signal`, the release tells the watchers and waiters of the locked keys when the
    /// op changed anything (a cross-core command's part; an EXEC's commands tell them as
    /// they run).
    TryRun { req: u64, tx: TxId, locks: LockSet, db: usize, proto: Protocol, op: HopOp, signal: bool },
    /// Run one hop of a transaction that holds its locks here. With `release`, the hop is
    /// the transaction's last here: the core then releases its locks at once (as
    /// [`Msg::Release`] with `wrote`), which saves that message, unless keyspace events are
    /// on here (the coordinator publishes a transaction's events before its locks go). The
    /// reply says whether it released.
    Hop { req: u64, db: usize, proto: Protocol, op: HopOp, release: Option<(TxId, bool)>, now: u64, tx: Option<TxId> },
    /// An EXEC passed from core to core: take this core's locks, run its step, pass it on
    /// (see [`crate::chain`]).
    Chain(Box<crate::chain::Chain>),
    /// Release the locks of transaction `tx`; no reply. `wrote` is false when the
    /// transaction changed nothing (an EXEC that a WATCH aborted): its exclusive keys then
    /// neither fail other clients' WATCH nor wake blocked clients.
    Release { tx: TxId, wrote: bool, barrier: bool },
    /// Run a closure on the core.
    Call { req: u64, call: CallFn },
    /// The answer to a request from this core.
    Reply { req: u64, payload: Payload },
    /// Register a blocked client on these keys (sent while its transaction holds them).
    Block { waiter: Arc<Blocked>, keys: Vec<Bytes> },
    /// Forget a blocked client that is done (served elsewhere, timed out, gone).
    Unblock { db: usize, home: usize, id: u64, keys: Vec<Bytes> },
    /// To a blocked client's home core: how it ends.
    Woken { id: u64, wake: Wake },
    /// To core 0: records were appended to a stream of the append-only log while its writer
    /// slept (see [`crate::aof`]).
    AofRing,
    /// Records became durable: waiting replies may go.
    AofDurable,
    /// Lend the shard to a script's core and block until it resumes us (see
    /// [`crate::script`]); sent only by a transaction holding this whole shard.
    Park { ack: oneshot::Sender<crate::script::ShardRef>, resume: Arc<crate::script::Resume> },
    /// Pub/Sub: subscription counts and published messages (see [`crate::pubsub`]).
    Pubsub(crate::pubsub::Msg),
    /// A line for this core's monitors (see [`crate::monitor`]).
    MonitorLine(Bytes),
    /// A line past the output limit: this core's monitors are cut off.
    MonitorOverflow,
    /// Client-side caching (see [`crate::tracking`]).
    Tracking(crate::tracking::Msg),
}

pub enum Payload {
    /// A batch's replies, and the batch itself: its arguments were allocated by the core
    /// that asked, which frees them (a free by another thread costs the allocator more).
    Frames(Vec<Frame>, Vec<(&'static CommandSpec, Vec<Bytes>)>),
    Granted,
    /// A [`Msg::TryAcquire`] that could not be granted at once; nothing is held.
    Refused,
    /// A hop's result and the keyspace events it raised, which the coordinator publishes;
    /// and whether the core released the transaction's locks after it (see [`Msg::Hop`]).
    Hop(HopResult, Vec<KeyEvent>, bool),
    Call(Box<dyn Any + Send>),
    /// A chain's results, per core in its order (see [`crate::chain`]).
    Chain(Vec<(usize, HopResult)>),
    /// A request without a result was carried out.
    Done,
}

/// Who waits on a lock set.
pub(crate) enum Waiter {
    /// A batch of plain commands, run as soon as its keys are free.
    Batch { db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>, done: Done, origin: Origin },
    /// A transaction coordinated by this core.
    LocalTx { tx: TxId, granted: oneshot::Sender<()> },
    /// A transaction coordinated by another core.
    RemoteTx { tx: TxId, from: usize, req: u64 },
    /// A chained EXEC, whose step here runs once granted (see [`crate::chain`]).
    Chain(Box<crate::chain::Chain>),
}

/// Where a batch's replies go.
pub(crate) enum Done {
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
    pub(crate) locks: RefCell<LockManager<Waiter>>,
    /// Locks held here by transactions, until they release.
    held: RefCell<FastMap<TxId, Held>>,
    senders: Senders<Vec<Msg>>,
    outboxes: RefCell<Vec<Vec<Msg>>>,
    pumping: RefCell<Vec<bool>>,
    pending: RefCell<FastMap<u64, oneshot::Sender<Payload>>>,
    next_req: Cell<u64>,
    next_tx: Cell<u64>,
    pub settings: RefCell<Settings>,
    pub stats: RefCell<CoreStats>,
    /// Clients blocked on this core's keys.
    blocking: RefCell<Registry>,
    /// This core's blocked connections, by waiter id: where their wake goes.
    block_waits: RefCell<FastMap<u64, oneshot::Sender<Wake>>>,
    /// Set (and replaced) when what the guard checks against changed: the blocked commands
    /// here ask the [`BlockedGuard`] again.
    guard_changes: RefCell<Rc<crate::LocalEvent>>,
    next_block: Cell<u64>,
    /// Clients watching this core's keys (WATCH).
    pub(crate) watches: RefCell<crate::watch::Registry>,
    /// Core 0: the append-only log's writer, while it sleeps.
    pub(crate) aof_writer: RefCell<Option<std::task::Waker>>,
    /// Replies waiting for the log to be durable (`appendfsync always`).
    pub(crate) aof_waiters: RefCell<Vec<std::task::Waker>>,
    /// Pub/Sub: this core's subscribers and every core's subscriber counts.
    pub(crate) pubsub: RefCell<crate::pubsub::Registry>,
    /// Tasks waiting for the outboxes to shrink (see [`Core::outbox_room`]).
    pub(crate) outbox_waiters: RefCell<Vec<std::task::Waker>>,
    /// Per core: messages it published here that this core owes it an acknowledgement for
    /// (an acknowledgement is scheduled while this is not 0).
    pub(crate) publish_acks_due: RefCell<Vec<usize>>,
    /// Per core: messages published to it so far, and how many of them it acknowledged as
    /// handed to its subscribers' writers (both only grow). Their difference is Pub/Sub's
    /// flow control (see `crate::pubsub`); replies that wait until their events are delivered
    /// compare them too (see [`Core::delivered`]), and the tasks that wait are here.
    pub(crate) publish_sent: RefCell<Vec<u64>>,
    pub(crate) publish_acked: RefCell<Vec<u64>>,
    pub(crate) delivery_waiters: RefCell<Vec<std::task::Waker>>,
    /// The commands that ran here slowly (SLOWLOG).
    pub slowlog: crate::slowlog::SlowLog,
    /// Latency spikes seen here (LATENCY).
    pub latency: crate::latency::Monitor,
    /// The shorter of the two thresholds above (Duration::MAX when both are off).
    slow_floor: Cell<std::time::Duration>,
    /// This core's clients in MONITOR mode.
    pub(crate) monitors: crate::monitor::Monitors,
    /// Client-side caching: who read this core's keys, and this core's tracking clients.
    pub(crate) tracking: RefCell<crate::tracking::Table>,
}

/// What a connection offers the runtime for its blocking commands.
pub struct BlockCtx<'a> {
    /// False inside MULTI: blocking commands then answer at once, as Redis does.
    pub may_block: bool,
    /// A future that completes when the wait must end early: the client is gone, killed, or
    /// unblocked with CLIENT UNBLOCK (`Some(reply)` for CLIENT UNBLOCK ... ERROR).
    pub interrupted: &'a dyn Fn() -> LocalBoxFuture<'a, Option<Frame>>,
    /// The client's id, for the slow log ([`crate::slowlog::NOT_LOGGED`]: never logged).
    pub client: u64,
    /// CLIENT TRACKING: remember the keys the plain read-only commands read, for the
    /// client's invalidations (see [`crate::tracking`]).
    pub track: bool,
    /// How its commands are checked again where they run (cluster mode; see [`Guard`]).
    pub guarding: Guarding,
}

impl BlockCtx<'_> {
    /// For callers without a connection: blocking commands never wait.
    /// Its commands are not logged as slow (the append-only file's replay).
    pub const NEVER: BlockCtx<'static> = BlockCtx {
        may_block: false,
        interrupted: &never_interrupted,
        client: crate::slowlog::NOT_LOGGED,
        track: false,
        guarding: Guarding { generation: 0, common: 0 },
    };
}

fn never_interrupted() -> LocalBoxFuture<'static, Option<Frame>> {
    futures::future::pending().boxed_local()
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
            shard: RefCell::new(Self::new_shard(id, shard_count, databases, &settings)),
            locks: RefCell::new(LockManager::default()),
            held: RefCell::new(FastMap::default()),
            senders,
            outboxes: RefCell::new((0..shard_count).map(|_| Vec::new()).collect()),
            pumping: RefCell::new(vec![false; shard_count]),
            pending: RefCell::new(FastMap::default()),
            next_req: Cell::new(1),
            next_tx: Cell::new(1),
            settings: RefCell::new(settings),
            stats: RefCell::new(CoreStats::default()),
            blocking: RefCell::new(Registry::default()),
            block_waits: RefCell::new(FastMap::default()),
            guard_changes: RefCell::default(),
            next_block: Cell::new(1),
            watches: RefCell::new(crate::watch::Registry::default()),
            aof_writer: RefCell::new(None),
            aof_waiters: RefCell::new(Vec::new()),
            pubsub: RefCell::new(crate::pubsub::Registry::new(shard_count)),
            outbox_waiters: RefCell::new(Vec::new()),
            publish_acks_due: RefCell::new(vec![0; shard_count]),
            publish_sent: RefCell::new(vec![0; shard_count]),
            publish_acked: RefCell::new(vec![0; shard_count]),
            delivery_waiters: RefCell::new(Vec::new()),
            slowlog: crate::slowlog::SlowLog::default(),
            latency: crate::latency::Monitor::default(),
            // Until `configure_timing`: every command goes on to the two checks.
            slow_floor: Cell::new(std::time::Duration::ZERO),
            monitors: crate::monitor::Monitors::default(),
            tracking: RefCell::default(),
        }
    }

    fn new_shard(id: usize, shard_count: usize, databases: usize, settings: &Settings) -> Shard {
        let mut shard = Shard::new(id, shard_count, databases);
        let reporting = shoal_commands::ctx::notify::store_reporting(settings.notify_keyspace_events);
        shard.dbs.iter_mut().for_each(|db| db.set_reporting(reporting));
        shard.set_lfu(settings.lfu_policy.then_some(settings.lfu));
        shard
    }

    /// Installs new operation settings (CONFIG SET), with what the store reports for them.
    pub fn install_settings(&self, settings: Settings) {
        let reporting = shoal_commands::ctx::notify::store_reporting(settings.notify_keyspace_events);
        let mut shard = self.shard.borrow_mut();
        shard.dbs.iter_mut().for_each(|db| db.set_reporting(reporting));
        shard.set_lfu(settings.lfu_policy.then_some(settings.lfu));
        drop(shard);
        *self.settings.borrow_mut() = settings;
    }

    pub(crate) fn shard_cell(&self) -> &RefCell<Shard> {
        &self.shard
    }

    pub(crate) fn locks_idle(&self) -> bool {
        self.locks.borrow().is_idle()
    }

    /// Whether a shard-wide lock is held here (eviction then waits).
    pub(crate) fn shard_lock_held(&self) -> bool {
        self.locks.borrow().shard_held()
    }

    /// Whether a transaction holds `key` of database `db` here (eviction skips it).
    pub(crate) fn key_lock_held(&self, db: usize, key: &[u8]) -> bool {
        self.locks.borrow().key_held(db, key)
    }

    /// Runs `cmds` (commands of this core) here and now if nothing is locked here, without
    /// yielding: nothing else can run between them. `None` when something is locked. `check`
    /// runs first, against the shard, in the same step: when it answers, its answer stands
    /// for the whole run (`Err`) and nothing runs.
    pub fn run_local_now(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        cmds: &[(&'static CommandSpec, Vec<Bytes>)],
        client: u64,
        check: impl FnOnce(&Shard) -> Option<Frame>,
    ) -> Option<Result<Vec<Frame>, Frame>> {
        if !self.locks.borrow().is_idle() {
            return None;
        }
        if let Some(answer) = check(&self.shard.borrow()) {
            return Some(Err(answer));
        }
        let frames = self.run_now(db, proto, cmds, true, client, None, &Guards::default());
        self.serve_blocked();
        Some(Ok(frames))
    }

    /// Whether a client here watches a key, waits on one or tracks one: whether writes need
    /// signalling.
    pub(crate) fn watched_or_waited_on(&self) -> bool {
        !self.watches.borrow().is_empty() || !self.blocking.borrow().is_empty() || self.tracking_active()
    }

    /// Keys of this core written by a script: their watchers fail, their waiters may be
    /// served.
    pub(crate) fn signal_keys_written(self: &Rc<Self>, keys: &[(usize, Bytes)]) {
        if keys.is_empty() {
            return;
        }
        self.tracking_invalidate(keys.iter().map(|(_, key)| &key[..]));
        self.tracking_flush();
        {
            let watches = self.watches.borrow();
            for (db, key) in keys {
                watches.touch(*db, key);
            }
        }
        {
            let mut blocking = self.blocking.borrow_mut();
            if !blocking.is_empty() {
                for (db, key) in keys {
                    blocking.signal(*db, key);
                }
            }
        }
        self.serve_blocked();
    }

    /// [`Core::with_shard`] with the store's reports off (keyspace notifications): for loading
    /// a snapshot, whose keys are not new in Redis's sense and must not be published.
    pub fn with_shard_unreported<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut shard = self.shard.borrow_mut();
        let reporting: Vec<_> = shard.dbs.iter().map(|db| db.reporting()).collect();
        shard.dbs.iter_mut().for_each(|db| db.set_reporting(Default::default()));
        let result = f(&mut shard);
        for (db, reporting) in shard.dbs.iter_mut().zip(reporting) {
            db.set_reporting(reporting);
        }
        result
    }

    /// Runs `f` with this core's shard. Never call it across an `.await`.
    pub fn with_shard<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.shard.borrow_mut())
    }

    /// Runs `f` with this core's shard unless it is in use (then returns None): for hints
    /// that may come from anywhere, such as the socket reaper's prefetch.
    pub fn try_with_shard<R>(&self, f: impl FnOnce(&Shard) -> R) -> Option<R> {
        self.shard.try_borrow().ok().map(|shard| f(&shard))
    }

    /// Logs a command that ran for `elapsed` here if it was slow: in the slow log (see
    /// [`crate::slowlog`]) and as a latency spike (see [`crate::latency`]).
    pub fn note_slow(&self, spec: &CommandSpec, args: &[Bytes], elapsed: std::time::Duration, client: u64) {
        // One comparison for the common case: faster than both thresholds.
        if elapsed < self.slow_floor.get() {
            return;
        }
        let args = shoal_commands::hashes::himport::as_sent(spec, args);
        self.slowlog.note(spec, args, elapsed, client, &self.shared.slowlog_next_id);
        if client != crate::slowlog::NOT_LOGGED {
            let event = if spec.has(shoal_commands::table::flags::FAST) { "fast-command" } else { "command" };
            self.latency.note(event, elapsed.as_millis() as u64);
        }
    }

    /// `slowlog-log-slower-than` (microseconds, negative: off), `slowlog-max-len` and
    /// `latency-monitor-threshold` (milliseconds, 0: off).
    pub fn configure_timing(&self, slower_than: i64, max_len: u64, latency_ms: u64) {
        self.slowlog.configure(slower_than, max_len);
        self.latency.configure(latency_ms);
        let slowlog = u64::try_from(slower_than).map_or(std::time::Duration::MAX, std::time::Duration::from_micros);
        let latency = if latency_ms == 0 { std::time::Duration::MAX } else { std::time::Duration::from_millis(latency_ms) };
        self.slow_floor.set(slowlog.min(latency));
    }

    // ---- Messaging -------------------------------------------------------------------

    pub(crate) fn send(self: &Rc<Self>, to: usize, msg: Msg) {
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
            for waker in self.outbox_waiters.borrow_mut().drain(..) {
                waker.wake();
            }
            if batch.is_empty() {
                self.pumping.borrow_mut()[to] = false;
                return;
            }
            if self.senders.send_to(to, batch).await.is_err() {
                // The peer has shut down; nobody waits for these messages any more, and no
                // acknowledgement of what was published to it will come.
                self.pumping.borrow_mut()[to] = false;
                self.publish_acked.borrow_mut()[to] = self.publish_sent.borrow()[to];
                for waker in self.outbox_waiters.borrow_mut().drain(..).chain(self.delivery_waiters.borrow_mut().drain(..)) {
                    waker.wake();
                }
                return;
            }
        }
    }

    /// Completes once no outbox holds more than [`OUTBOX_BACKLOG_MAX`] messages and no core
    /// is more than [`crate::pubsub::PUBLISH_UNACKED_MAX`] published messages behind: a
    /// client that makes messages for other cores without waiting for them (PUBLISH) waits
    /// here, so what it sends stays bounded when a peer falls behind.
    pub async fn outbox_room(&self) {
        std::future::poll_fn(|cx| {
            if self.outbox_has_room() {
                Poll::Ready(())
            } else {
                self.outbox_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Whether no outbox holds more than [`OUTBOX_BACKLOG_MAX`] messages and every core has
    /// kept up with what was published to it (see [`Core::outbox_room`]).
    pub fn outbox_has_room(&self) -> bool {
        self.outboxes.borrow().iter().all(|outbox| outbox.len() <= OUTBOX_BACKLOG_MAX)
            && self
                .publish_sent
                .borrow()
                .iter()
                .zip(self.publish_acked.borrow().iter())
                .all(|(sent, acked)| sent.saturating_sub(*acked) <= crate::pubsub::PUBLISH_UNACKED_MAX)
    }

    pub(crate) fn request(self: &Rc<Self>, to: usize, make: impl FnOnce(u64) -> Msg) -> oneshot::Receiver<Payload> {
        let (req, rx) = self.expect_reply();
        self.send(to, make(req));
        rx
    }

    /// A new request id and where its answer arrives, for a request that may be answered
    /// by this core itself (see [`Core::answer`]).
    pub(crate) fn expect_reply(&self) -> (u64, oneshot::Receiver<Payload>) {
        let req = self.next_req.get();
        self.next_req.set(req + 1);
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.borrow_mut();
        pending.insert(req, tx);
        if pending.len() == 1 {
            crate::spin::waiting(true);
        }
        (req, rx)
    }

    /// Answers request `req` of core `to`, this one included.
    pub(crate) fn answer(self: &Rc<Self>, to: usize, req: u64, payload: Payload) {
        if to != self.id {
            return self.reply(to, req, payload);
        }
        if let Some(waiter) = self.take_pending(req) {
            let _ = waiter.send(payload);
        }
    }

    /// The answer channel of request `req`, if its requester still waits.
    fn take_pending(&self, req: u64) -> Option<oneshot::Sender<Payload>> {
        let mut pending = self.pending.borrow_mut();
        let waiter = pending.remove(&req);
        if waiter.is_some() && pending.is_empty() {
            crate::spin::waiting(false);
        }
        waiter
    }

    pub(crate) fn reply(self: &Rc<Self>, to: usize, req: u64, payload: Payload) {
        self.send(to, Msg::Reply { req, payload });
    }

    /// Handles one message from core `from`. Never waits: work that cannot run yet is queued.
    pub(crate) fn handle(self: &Rc<Self>, from: usize, msg: Msg) {
        match msg {
            Msg::Batch { req, db, proto, cmds, origin } => self.submit_batch(db, proto, cmds, Done::Remote { from, req }, origin),
            Msg::Acquire { req, tx, locks } => {
                let granted = self.locks.borrow_mut().acquire(locks, Waiter::RemoteTx { tx, from, req });
                if let Some(granted) = granted {
                    self.process_grants(vec![granted]);
                }
            }
            Msg::TryAcquire { req, tx, locks } => {
                let payload = if self.try_hold(tx, locks) { Payload::Granted } else { Payload::Refused };
                self.reply(from, req, payload);
            }
            Msg::TryRun { req, tx, locks, db, proto, op, signal } => {
                // With notifications on, the events would have to be published before the
                // locks go: the asking core then takes the general path.
                if self.settings.borrow().notify_keyspace_events != 0 || !self.try_hold(tx, locks) {
                    self.reply(from, req, Payload::Refused);
                    return;
                }
                let ((result, events), changed) = self.run_hop_counting(db, proto, op);
                self.release_local(tx, signal && changed);
                self.reply(from, req, Payload::Hop(result, events, true));
            }
            Msg::Hop { req, db, proto, op, release, now, tx } => {
                // Notifications off here: the hop raises no event, so nothing needs the locks
                // until the coordinator has published.
                let release = release.filter(|_| self.settings.borrow().notify_keyspace_events == 0);
                let (result, events) = self.run_hop(db, proto, op, now, tx);
                if let Some((tx, wrote)) = release {
                    self.release_local(tx, wrote);
                }
                self.reply(from, req, Payload::Hop(result, events, release.is_some()));
            }
            Msg::Chain(chain) => self.chain_arrived(chain),
            Msg::Release { tx, wrote, barrier } => {
                if barrier {
                    self.aof_append(crate::aof::Record::Barrier(tx));
                }
                self.release_local(tx, wrote)
            }
            Msg::AofRing => self.ring_aof_writer(),
            Msg::AofDurable => self.wake_aof_waiters(),
            Msg::Call { req, call } => {
                let result = call(self);
                self.reply(from, req, Payload::Call(result));
            }
            Msg::Reply { req, payload } => {
                // The requester may have gone away (a closed connection); drop the answer then.
                if let Some(waiter) = self.take_pending(req) {
                    let _ = waiter.send(payload);
                }
            }
            Msg::Block { waiter, keys } => self.blocking.borrow_mut().register(&waiter, &keys),
            Msg::Unblock { db, home, id, keys } => self.blocking.borrow_mut().unregister(db, home, id, &keys),
            Msg::Woken { id, wake } => self.wake_local(id, wake),
            Msg::Park { ack, resume } => self.park(ack, resume),
            Msg::Pubsub(msg) => self.handle_pubsub(from, msg),
            Msg::MonitorLine(line) => self.deliver_monitor_line(&line),
            Msg::MonitorOverflow => self.overflow_monitors(),
            Msg::Tracking(msg) => self.handle_tracking(from, msg),
        }
        // Invalidations the message's commands raised leave with the next turn's messages.
        self.tracking_flush();
    }

    // ---- Running commands on this shard ----------------------------------------------

    /// Runs plain commands of this core in order. `atomic` (EXEC's commands): the log wraps
    /// them in MULTI/EXEC, so a replay applies all of them or none.
    /// `client` sent them (for the slow log).
    /// With `track` (the client's home core), the keys of read-only commands are remembered
    /// for the client's invalidations as they run.
    #[allow(clippy::too_many_arguments)]
    fn run_now(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        cmds: &[(&'static CommandSpec, Vec<Bytes>)],
        atomic: bool,
        client: u64,
        track: Option<usize>,
        guards: &Guards,
    ) -> Vec<Frame> {
        self.tracking.borrow_mut().writer = client;
        let settings = self.settings.borrow();
        let mut shard = self.shard.borrow_mut();
        let mut stats = self.stats.borrow_mut();
        let now_ms = now_ms();
        let mut ctx = Ctx::new(&mut shard, db, now_ms, proto, &settings);
        let mut replies = Vec::with_capacity(cmds.len());
        let logging = crate::aof::LOG.is_active();
        let mut logged = Vec::new();
        let mut logged_count = 0;
        let moved = guards.moved();
        let guarding = moved || !guards.each.is_empty();
        for (first, group) in cmds.chunks(PREFETCH_GROUP).enumerate().map(|(n, group)| (n * PREFETCH_GROUP, group)) {
            prefetch_keys(&ctx.shard.dbs[db], group);
            for (index, (spec, args)) in (first..).zip(group) {
                if guarding {
                    let flags = guards.flags(index, moved);
                    if let Some(refusal) = guarded(flags, spec, args, ctx.shard) {
                        stats.record_rejected(Some(spec.name), &refusal);
                        replies.push(refusal);
                        continue;
                    }
                }
                let (reply, elapsed, changed) = self.run_signalled(&mut ctx, spec, args, logging);
                // Remembered right after the read, before anything else can run here: a
                // later write of the key is always announced.
                if let Some(home) = track.filter(|_| spec.has(shoal_commands::table::flags::READONLY)) {
                    self.tracking_remember(client, home, dispatch::keys(spec, args));
                }
                stats.record(spec.name, elapsed, &reply);
                self.note_slow(spec, args, elapsed, client);
                if logging && changed {
                    log_command(spec, args, &reply, now_ms, &mut logged);
                    logged_count += 1;
                }
                replies.push(reply);
            }
        }
        let events = ctx.take_events();
        let expired = crate::aof::expired_records(ctx.shard);
        drop(ctx);
        drop((stats, shard, settings));
        self.publish_key_events(events);
        self.aof_append_all(expired);
        if !logged.is_empty() {
            if atomic && logged_count > 1 {
                logged = crate::aof::wrap_multi(logged);
            }
            self.aof_append(crate::aof::Record::Cmds { db, bytes: logged });
        }
        self.tracking_flush();
        // Only these commands' changes are the client's own (NOLOOP): a change made later
        // by a transaction's release or the cron must reach it.
        self.tracking.borrow_mut().writer = 0;
        replies
    }

    /// Runs one single-core command on this core's shard (`ctx`), and tells the watchers and
    /// waiters of the keys it changed. Returns its reply, its run time, and whether it was a
    /// write that changed something (which the log records); `counting` asks for that last
    /// answer even when nobody watches.
    pub(crate) fn run_signalled(&self, ctx: &mut Ctx, spec: &'static CommandSpec, args: &[Bytes], counting: bool) -> (Frame, std::time::Duration, bool) {
        let local = spec.local().unwrap_or_else(|| unreachable!("{} runs on one core", spec.name));
        let db = ctx.db_index;
        let absent = if spec.is_write() { self.watched_absent(ctx, spec, args) } else { Vec::new() };
        // Whether the write changed anything: the change counter moves by what Redis adds to
        // `server.dirty`, so a write that changed nothing (SET NX on an existing key, SADD of
        // a present member) is neither logged nor seen by watchers, as in Redis.
        let counted = spec.is_write() && (counting || !self.watches.borrow().is_empty() || self.tracking_active());
        let changes_before = if counted { changes(ctx.shard) } else { 0 };
        // On a replica, a client's read does not see keys whose time has passed (see
        // `Db::set_hide_expired`); the master's writes do.
        let hiding = !spec.is_write() && ctx.shard.dbs[db].loading();
        if hiding {
            ctx.shard.dbs[db].set_hide_expired(true);
        }
        let started = Stopwatch::start();
        let reply = local(ctx, args);
        let elapsed = started.elapsed();
        if hiding {
            ctx.shard.dbs[db].set_hide_expired(false);
        }
        // A write that failed changed nothing (Redis checks before it writes).
        let changed = spec.is_write() && !matches!(reply, Frame::Error(_)) && (!counted || changes(ctx.shard) != changes_before);
        if changed {
            // A watched key that did not exist before and still does not was not changed
            // (DEL of a missing key): its watchers keep their EXEC.
            let now_ms = ctx.now_ms;
            let unchanged: Vec<&Bytes> = absent.into_iter().filter(|key| !ctx.shard.dbs[db].contains(key, now_ms)).collect();
            self.signal_writes_except(db, spec, args, &unchanged);
        }
        (reply, elapsed, changed)
    }

    // ---- Blocked clients ---------------------------------------------------------------

    /// The keys of a write about to run that someone watches (or, while tracking clients
    /// remember keys here, any of its keys) and that do not exist now: if they still do not
    /// after it, it did not change them (DEL of a missing key), and nobody hears of them.
    fn watched_absent<'a>(&self, ctx: &mut Ctx, spec: &CommandSpec, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        let tracking = self.tracking_active();
        let watches = self.watches.borrow();
        if watches.is_empty() && !tracking {
            return Vec::new();
        }
        let (db, now) = (ctx.db_index, ctx.now_ms);
        dispatch::keys(spec, args).filter(|key| (tracking || watches.is_watched(db, key)) && !ctx.shard.dbs[db].contains(key, now)).collect()
    }

    /// A write command ran here: the keys it names that someone waits on become candidates,
    /// and their watchers' EXEC will fail.
    fn signal_writes(&self, db: usize, spec: &CommandSpec, args: &[Bytes]) {
        self.signal_writes_except(db, spec, args, &[]);
    }

    /// As [`Core::signal_writes`], leaving the watchers of `unchanged` keys alone.
    fn signal_writes_except(&self, db: usize, spec: &CommandSpec, args: &[Bytes], unchanged: &[&Bytes]) {
        // Nobody to tell (the common case): nothing to work out.
        if !self.watched_or_waited_on() {
            return;
        }
        let written = dispatch::written_keys(spec, args);
        if self.tracking_active() {
            // By name, whatever the database, as Redis (MOVE's and COPY's keys in another
            // database have these names too).
            self.tracking_invalidate(written.iter().filter(|key| !unchanged.contains(key)).map(|key| &key[..]));
        }
        {
            let watches = self.watches.borrow();
            if !watches.is_empty() {
                for &key in &written {
                    if !unchanged.contains(&key) {
                        watches.touch(db, key);
                    }
                }
                if let Some(other_db_keys) = spec.other_db_keys {
                    for (index, other_db) in other_db_keys(args) {
                        watches.touch(other_db, &args[index]);
                    }
                }
            }
        }
        let mut blocking = self.blocking.borrow_mut();
        if blocking.is_empty() {
            return;
        }
        for key in written {
            blocking.signal(db, key);
        }
        if let Some(other_db_keys) = spec.other_db_keys {
            for (index, other_db) in other_db_keys(args) {
                blocking.signal(other_db, &args[index]);
            }
        }
    }

    /// A transaction released its locks here: what it may have written are candidates.
    fn signal_released(&self, tx: TxId, held: &Held) {
        let set = &held.set;
        if self.tracking_active() || (set.shard == Some(Mode::Exclusive) && crate::tracking::clients() > 0) {
            if set.shard == Some(Mode::Exclusive) {
                self.tracking_invalidate_all(tx);
            } else {
                self.tracking_invalidate(set.keys.iter().filter(|(_, _, mode)| *mode == Mode::Exclusive).map(|(_, key, _)| &key[..]));
            }
            self.tracking_flush();
        }
        {
            let watches = self.watches.borrow();
            let mut shard = self.shard.borrow_mut();
            if !watches.is_empty() {
                let now = now_ms();
                let mut unchanged = |db: usize, key: &[u8]| {
                    held.absent.iter().any(|(d, k)| *d == db && k == key) && shard.dbs.get_mut(db).is_some_and(|d| !d.contains(key, now))
                };
                if set.shard == Some(Mode::Exclusive) {
                    for (db, key) in watches.keys() {
                        if !unchanged(db, key) {
                            watches.touch(db, key);
                        }
                    }
                } else {
                    for (db, key, mode) in &set.keys {
                        if *mode == Mode::Exclusive && !unchanged(*db, key) {
                            watches.touch(*db, key);
                        }
                    }
                }
            }
        }
        let mut blocking = self.blocking.borrow_mut();
        if blocking.is_empty() {
            return;
        }
        if set.shard == Some(Mode::Exclusive) {
            blocking.signal_all();
        }
        for (db, key, mode) in &set.keys {
            if *mode == Mode::Exclusive {
                blocking.signal(*db, key);
            }
        }
    }

    /// Serves the waiters of every candidate key that is not locked, oldest first. Serving
    /// writes (BLMOVE pushes), which may make more candidates: loops until none are left.
    fn serve_blocked(self: &Rc<Self>) {
        loop {
            let candidates = self.blocking.borrow_mut().take_candidates();
            if candidates.is_empty() {
                return;
            }
            let mut deferred = Vec::new();
            for (db, key) in candidates {
                let locked = {
                    let locks = self.locks.borrow();
                    let mut set = LockSet::default();
                    set.push(db, key.clone(), Mode::Exclusive);
                    !locks.is_idle() && !locks.can_run(&set)
                };
                if locked {
                    deferred.push((db, key));
                    continue;
                }
                self.serve_key(db, &key);
            }
            if !deferred.is_empty() {
                // Retried when the lock holder releases (which signals again).
                self.blocking.borrow_mut().defer(deferred);
                return;
            }
        }
    }

    /// Serves the waiters of one ready key, oldest first, while the key can serve them.
    fn serve_key(self: &Rc<Self>, db: usize, key: &Bytes) {
        let waiters = self.blocking.borrow().waiters(db, key);
        for waiter in waiters {
            if waiter.is_claimed() {
                self.blocking.borrow_mut().remove(db, key, &waiter);
                continue;
            }
            let Handler::Blocking(ops) = waiter.spec.handler else { unreachable!("only blocking commands wait") };
            let served = {
                let settings = self.settings.borrow();
                let mut shard = self.shard.borrow_mut();
                let mut ctx = Ctx::new(&mut shard, db, now_ms(), waiter.proto, &settings);
                let started = Stopwatch::start();
                let served = (ops.serve)(&mut ctx, key, &waiter.args, &mut || waiter.claim());
                if let Served::Done(reply) = &served {
                    self.stats.borrow_mut().record(waiter.spec.name, started.elapsed(), reply);
                    self.note_slow(waiter.spec, &waiter.args, started.elapsed(), waiter.client);
                }
                (served, ctx.take_events(), crate::aof::expired_records(ctx.shard))
            };
            let (served, events, expired) = served;
            self.publish_key_events(events);
            self.aof_append_all(expired);
            match served {
                Served::NotReady => continue,
                Served::Gone => self.blocking.borrow_mut().remove(db, key, &waiter),
                Served::Done(reply) => {
                    self.blocking.borrow_mut().remove(db, key, &waiter);
                    if crate::aof::LOG.is_active() {
                        if let Some(commands) = shoal_commands::propagate::served_all(waiter.spec, &waiter.args, &reply) {
                            let mut bytes = Vec::new();
                            commands.iter().for_each(|command| crate::aof::encode(command, &mut bytes));
                            if !bytes.is_empty() {
                                self.aof_append(crate::aof::Record::Cmds { db, bytes });
                            }
                        }
                    }
                    // What it wrote (BLMOVE's destination) may serve others in turn.
                    if waiter.spec.may_write() {
                        self.signal_writes(db, waiter.spec, &waiter.args);
                    }
                    self.wake(waiter.home, waiter.id, Wake::Served(reply));
                }
                Served::Elsewhere => {
                    self.blocking.borrow_mut().remove(db, key, &waiter);
                    self.wake(waiter.home, waiter.id, Wake::Retry);
                }
            }
        }
    }

    /// Releases a blocking command's attempt that served nothing (an empty body when the log
    /// marked it).
    fn release_blocking_attempt(self: &Rc<Self>, tx: TxId, sets: &[(usize, LockSet)]) {
        if crate::aof::is_logged(tx) {
            self.aof_log_transaction(tx, 0, Vec::new(), sets, true);
        } else {
            self.release_all(tx, sets);
        }
    }

    fn wake(self: &Rc<Self>, home: usize, id: u64, wake: Wake) {
        if home == self.id {
            self.wake_local(id, wake);
        } else {
            self.send(home, Msg::Woken { id, wake });
        }
    }

    fn wake_local(&self, id: u64, wake: Wake) {
        if let Some(sender) = self.block_waits.borrow_mut().remove(&id) {
            let _ = sender.send(wake);
        }
    }

    /// Clients blocked here, for INFO (`blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.block_waits.borrow().len()
    }

    /// Keys with waiters on this core, for INFO (`total_blocking_keys`).
    pub fn blocking_keys(&self) -> usize {
        self.blocking.borrow().blocked_keys()
    }

    /// Runs a blocking command: an attempt as a transaction over its keys; if it serves
    /// nothing, registers the client on its keys' cores (still in the transaction, so no
    /// write can slip in between) and waits for a serve, the timeout, or an interruption.
    async fn run_blocking(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        spec: &'static CommandSpec,
        ops: &'static BlockingOps,
        mut args: Vec<Bytes>,
        block: &BlockCtx<'_>,
    ) -> Frame {
        let timeout = match (ops.parse)(&args) {
            Ok(timeout) => timeout,
            Err(error) => {
                self.stats.borrow_mut().record(spec.name, std::time::Duration::ZERO, &error);
                self.note_slow(spec, &args, std::time::Duration::ZERO, block.client);
                return error;
            }
        };
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let shards = dispatch::shards_of(spec, &args, self.shard_count);
            // A read-only one (XREAD) shares its keys: its release must not look like a write.
            let mode = if spec.may_write() { Mode::Exclusive } else { Mode::Shared };
            let sets = self.key_lock_sets(db, spec, &args, &shards, mode);
            let tx = self.acquire_write(&sets).await;
            let coordinator = TxCoordinator::new(self.clone(), db, proto).of(tx).reading(!spec.may_write());
            let started = Stopwatch::start();
            let attempt = (ops.attempt)(&coordinator, args.clone()).await;
            let (events, sources) = coordinator.take_events(spec, &args);
            self.publish_in_order(events, &sources).await;
            if let Some(reply) = attempt {
                self.stats.borrow_mut().record(spec.name, started.elapsed(), &reply);
                self.note_slow(spec, &args, started.elapsed(), block.client);
                if crate::aof::is_logged(tx) {
                    // Logged as the non-blocking command with the same effect.
                    let mut bytes = Vec::new();
                    for command in shoal_commands::propagate::served_all(spec, &args, &reply).unwrap_or_default() {
                        crate::aof::encode(&command, &mut bytes);
                    }
                    self.aof_log_transaction(tx, db, bytes, &sets, spec.may_write());
                    self.aof_wait_tx(tx).await;
                } else {
                    self.release_all(tx, &sets);
                }
                return reply;
            }
            let expired = deadline.is_some_and(|d| std::time::Instant::now() >= d);
            if !block.may_block || expired {
                self.release_blocking_attempt(tx, &sets);
                return (ops.timed_out)();
            }
            if let Some(resolve) = ops.resolve {
                args = resolve(&coordinator, args).await;
            }
            // Time alone may make it servable (XREADGROUP CLAIM): run it again then.
            let recheck = match ops.recheck {
                Some(recheck) => recheck(&coordinator, args.clone())
                    .await
                    .map(|at_ms| std::time::Instant::now() + std::time::Duration::from_millis(at_ms.saturating_sub(now_ms()).max(1))),
                None => None,
            };
            // Register on every core that owns a key we wait on, before releasing.
            let id = self.next_block.get();
            self.next_block.set(id + 1);
            let waiter = Arc::new(Blocked::new(self.id, id, db, proto, spec, args.clone(), block.client));
            let (sender, woken) = oneshot::channel();
            self.block_waits.borrow_mut().insert(id, sender);
            let mut per_core: Vec<(usize, Vec<Bytes>)> = Vec::new();
            for index in (ops.wait_keys)(&args) {
                let key = args[index].clone();
                let core = shoal_store::slot::key_shard(&key, self.shard_count);
                match per_core.iter_mut().find(|(c, _)| *c == core) {
                    Some((_, keys)) => keys.push(key),
                    None => per_core.push((core, vec![key])),
                }
            }
            for (core, keys) in &per_core {
                if *core == self.id {
                    self.blocking.borrow_mut().register(&waiter, keys);
                } else {
                    self.send(*core, Msg::Block { waiter: waiter.clone(), keys: keys.clone() });
                }
            }
            self.release_blocking_attempt(tx, &sets);
            let outcome = self.wait_blocked(&waiter, woken, deadline, recheck, block).await;
            // Tell the other cores to forget it (the serving core already has).
            for (core, keys) in per_core {
                if core == self.id {
                    self.blocking.borrow_mut().unregister(db, self.id, id, &keys);
                } else {
                    self.send(core, Msg::Unblock { db, home: self.id, id, keys });
                }
            }
            match outcome {
                Wake::Served(reply) => return reply,
                Wake::Retry => continue,
            }
        }
    }

    /// What the guard checks against changed (the server's cron sees a new generation): the
    /// commands blocked here ask the [`BlockedGuard`] again.
    pub fn guard_changed(&self) {
        let changed = std::mem::take(&mut *self.guard_changes.borrow_mut());
        changed.set();
    }

    /// Completes with the [`BlockedGuard`]'s answer for a blocked command once it has one;
    /// never without a guard.
    async fn redirected_while_blocked(&self, spec: &'static CommandSpec, args: &[Bytes], guarding: Guarding) -> Option<Frame> {
        let Some(guard) = GUARD.get().filter(|_| guarding.generation != 0) else { return futures::future::pending().await };
        loop {
            // Asked once now: what changed between the check when read and the wait counts.
            if let Some(answer) = (guard.blocked)(spec, args, guarding.common) {
                return Some(answer);
            }
            let changed = self.guard_changes.borrow().clone();
            changed.wait().await;
        }
    }

    /// Waits for a blocked client's wake, its deadline, its `recheck` moment (then it runs
    /// again, see `BlockingOps::recheck`), or an interruption. A waiter that times out, is
    /// interrupted or rechecks claims itself first; when that fails a core is serving it
    /// right now, and its reply is on the way.
    async fn wait_blocked(
        self: &Rc<Self>,
        waiter: &Arc<Blocked>,
        mut woken: oneshot::Receiver<Wake>,
        deadline: Option<std::time::Instant>,
        recheck: Option<std::time::Instant>,
        block: &BlockCtx<'_>,
    ) -> Wake {
        let Handler::Blocking(ops) = waiter.spec.handler else { unreachable!("only blocking commands wait") };
        let timer = async {
            match deadline {
                Some(deadline) => glommio::timer::sleep(deadline.saturating_duration_since(std::time::Instant::now())).await,
                None => futures::future::pending::<()>().await,
            }
            None
        };
        // Outside cluster mode no guard can end the wait: nothing more to poll.
        let interrupted = if block.guarding.generation == 0 {
            (block.interrupted)()
        } else {
            let redirected = self.redirected_while_blocked(waiter.spec, &waiter.args, block.guarding);
            futures::future::select((block.interrupted)(), redirected.boxed_local()).map(|either| either.factor_first().0).boxed_local()
        };
        let stop = futures::future::select(timer.boxed_local(), interrupted);
        let again = async {
            match recheck {
                Some(at) if deadline.is_none_or(|deadline| at < deadline) => {
                    glommio::timer::sleep(at.saturating_duration_since(std::time::Instant::now())).await
                }
                _ => futures::future::pending::<()>().await,
            }
        };
        let early_reply = match futures::future::select(&mut woken, futures::future::select(stop, again.boxed_local())).await {
            futures::future::Either::Left((wake, _)) => return wake.expect("a blocked client's wake is sent before its sender drops"),
            futures::future::Either::Right((futures::future::Either::Left((stopped, _)), _)) => stopped.factor_first().0,
            futures::future::Either::Right((futures::future::Either::Right(_), _)) => {
                if waiter.claim() {
                    self.block_waits.borrow_mut().remove(&waiter.id);
                    return Wake::Retry;
                }
                return woken.await.expect("a claimed waiter is always woken");
            }
        };
        if waiter.claim() {
            self.block_waits.borrow_mut().remove(&waiter.id);
            return Wake::Served(early_reply.unwrap_or_else(ops.timed_out));
        }
        woken.await.expect("a claimed waiter is always woken")
    }

    /// Lock sets for a command's keys on `shards`, in `mode`.
    fn key_lock_sets(&self, db: usize, spec: &CommandSpec, args: &[Bytes], shards: &[usize], mode: Mode) -> Vec<(usize, LockSet)> {
        let mut sets: Vec<(usize, LockSet)> = shards.iter().map(|&s| (s, LockSet::default())).collect();
        for key in dispatch::keys(spec, args) {
            let shard = shoal_store::slot::key_shard(key, self.shard_count);
            let (_, set) = sets.iter_mut().find(|(s, _)| *s == shard).expect("the route lists every key's core");
            set.push(db, key.clone(), mode);
        }
        if let Some(other_db_keys) = spec.other_db_keys {
            for (index, other_db) in other_db_keys(args) {
                let shard = shoal_store::slot::key_shard(&args[index], self.shard_count);
                let (_, set) = sets.iter_mut().find(|(s, _)| *s == shard).expect("the key is also in the selected database");
                set.push(other_db, args[index].clone(), Mode::Exclusive);
            }
        }
        for (_, set) in &mut sets {
            set.normalize();
        }
        sets
    }

    /// Runs a hop of a transaction. Its keyspace events are returned, not published: the
    /// coordinator publishes every hop's events in the command's order (see
    /// [`Core::publish_in_order`]).
    /// [`Core::run_hop`], and whether it changed anything (the change counter moved).
    pub(crate) fn run_hop_counting(self: &Rc<Self>, db: usize, proto: Protocol, op: HopOp) -> (Hopped, bool) {
        let before = self.with_shard(|shard| changes(shard));
        let hopped = self.run_hop(db, proto, op, now_ms(), None);
        (hopped, self.with_shard(|shard| changes(shard)) != before)
    }

    /// Runs a hop at time `now`: the transaction's, the same for all its hops (as Redis fixes
    /// the time of an EXEC or a script), so that a key expired for one hop is expired for
    /// all. The DELs of the keys it expires go before the body of `tx` when that is a logged
    /// transaction (see [`crate::aof::Log::add_prefix`]), else in this core's stream.
    pub(crate) fn run_hop(self: &Rc<Self>, db: usize, proto: Protocol, op: HopOp, now: u64, tx: Option<TxId>) -> Hopped {
        let settings = self.settings.borrow();
        let mut shard = self.shard.borrow_mut();
        let mut ctx = Ctx::new(&mut shard, db, now, proto, &settings);
        let result = op(&mut ctx);
        let events = ctx.take_events();
        let expired = crate::aof::expired_records(ctx.shard);
        drop(ctx);
        drop((shard, settings));
        match tx {
            Some(tx) if crate::aof::is_logged(tx) => crate::aof::LOG.add_prefix(tx, expired),
            _ => self.aof_append_all(expired),
        }
        (result, events)
    }

    /// What this core has published to each core so far, when keyspace events are on and
    /// someone listens, or a tracking client may hear of this core's writes (otherwise a
    /// command sends nothing to wait for). See [`Core::delivered`].
    pub(crate) fn publish_mark(&self) -> Option<Vec<u64>> {
        (self.shard_count > 1 && (self.events_listened() || self.tracking_active())).then(|| self.publish_sent.borrow().clone())
    }

    /// The counts to wait for (see [`Core::delivered`]) when this core published anything
    /// to another core since `mark`.
    pub(crate) fn undelivered_since(&self, mark: &[u64]) -> Option<Vec<u64>> {
        let sent = self.publish_sent.borrow();
        (sent.as_slice() != mark).then(|| sent.clone())
    }

    /// Completes once every core has acknowledged the messages this core published to it,
    /// up to the counts `wanted`: they are in its subscribers' buffers. A command's reply
    /// waits for this when it published keyspace events to other cores, so that the events
    /// of the client's next command, raised perhaps on another core, cannot overtake them
    /// (Redis, with one thread, delivers events in execution order). The acknowledgements
    /// are the Pub/Sub flow control's own (`Msg::PublishAck`): no message is added.
    pub(crate) async fn delivered(&self, wanted: Vec<u64>) {
        std::future::poll_fn(|cx| {
            let acked = self.publish_acked.borrow();
            if acked.iter().zip(&wanted).all(|(acked, wanted)| acked >= wanted) {
                return std::task::Poll::Ready(());
            }
            self.delivery_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Whether keyspace events are on and someone subscribes: the fences that keep one key's
    /// events in order are paid only then.
    pub(crate) fn events_listened(&self) -> bool {
        self.settings.borrow().notify_keyspace_events != 0 && self.pubsub.borrow().has_listeners()
    }

    /// Publishes the keyspace events of a transaction's hops from this core (the
    /// coordinator's), in the order Redis raises them ([`merge_events`] restored it), without
    /// letting any event of the same keys overtake another:
    /// - first, each other core in `sources` (whose hops raised them) makes sure that every
    ///   core has what it published before ([`Core::flushed_from`]): an earlier command's
    ///   events on these keys went out from there;
    /// - then, after publishing, this core makes a round trip to every core (the mesh keeps
    ///   each pair of cores in order), so an event a core raises after the transaction
    ///   releases the keys cannot arrive first.
    ///
    /// All of it only when someone listens.
    pub(crate) async fn publish_in_order(self: &Rc<Self>, events: Vec<KeyEvent>, sources: &[usize]) {
        if events.is_empty() || !self.pubsub.borrow().has_listeners() {
            return;
        }
        futures::future::join_all(sources.iter().filter(|&&source| source != self.id).map(|&source| self.flushed_from(source))).await;
        self.publish_key_events(events);
        if self.shard_count > 1 {
            self.call_all(|_| ()).await;
        }
    }

    /// Completes once every core has processed what core `source` sent it before now:
    /// `source` makes a round trip to every core, then answers.
    pub(crate) async fn flushed_from(self: &Rc<Self>, source: usize) {
        let flushed: oneshot::Receiver<()> = self
            .call_on(source, |peer| {
                let (done, flushed) = oneshot::channel();
                let peer = peer.clone();
                glommio::spawn_local(async move {
                    peer.call_all(|_| ()).await;
                    let _ = done.send(());
                })
                .detach();
                flushed
            })
            .await;
        let _ = flushed.await;
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

    fn submit_batch(self: &Rc<Self>, db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>, done: Done, origin: Origin) {
        let runnable = {
            let locks = self.locks.borrow();
            locks.is_idle() || locks.can_run(&Self::batch_locks(db, &cmds))
        };
        if runnable {
            self.run_batch(db, proto, cmds, done, &origin);
            self.serve_blocked();
            return;
        }
        let set = Self::batch_locks(db, &cmds);
        let granted = self.locks.borrow_mut().acquire(set, Waiter::Batch { db, proto, cmds, done, origin });
        if let Some(granted) = granted {
            self.process_grants(vec![granted]);
        }
    }

    /// Runs a batch of plain commands here and sends their replies where they go: at once, or,
    /// when they published keyspace events to other cores, once those cores have handed the
    /// events to their subscribers (see [`Core::delivered`]).
    fn run_batch(self: &Rc<Self>, db: usize, proto: Protocol, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>, done: Done, origin: &Origin) {
        let mark = self.publish_mark();
        let home = match done {
            Done::Local(_) => self.id,
            Done::Remote { from, .. } => from,
        };
        let frames = self.run_now(db, proto, &cmds, false, origin.client, origin.track.then_some(home), &origin.guards);
        match mark.and_then(|mark| self.undelivered_since(&mark)) {
            None => self.finish_batch(done, frames, cmds),
            Some(wanted) => {
                // Message handling never waits: a task holds the replies until then.
                let core = self.clone();
                glommio::spawn_local(async move {
                    core.delivered(wanted).await;
                    core.finish_batch(done, frames, cmds);
                })
                .detach();
            }
        }
    }

    fn finish_batch(self: &Rc<Self>, done: Done, frames: Vec<Frame>, cmds: Vec<(&'static CommandSpec, Vec<Bytes>)>) {
        match done {
            Done::Local(tx) => {
                let _ = tx.send(frames);
            }
            // The batch goes back with the replies, to be freed where it was allocated.
            Done::Remote { from, req } => self.reply(from, req, Payload::Frames(frames, cmds)),
        }
    }

    /// Acts on waiters whose locks were just granted. Batches run and release at once, which
    /// may grant more.
    pub(crate) fn process_grants(self: &Rc<Self>, mut granted: Vec<(LockSet, Waiter)>) {
        while let Some((set, waiter)) = granted.pop() {
            match waiter {
                Waiter::Batch { db, proto, cmds, done, origin } => {
                    self.run_batch(db, proto, cmds, done, &origin);
                    let more = self.locks.borrow_mut().release(&set);
                    granted.extend(more.into_iter().rev());
                    self.serve_blocked();
                }
                Waiter::LocalTx { tx, granted: signal } => {
                    self.hold(tx, set);
                    if crate::aof::is_logged(tx) {
                        self.aof_append(crate::aof::Record::Grant(tx));
                    }
                    let _ = signal.send(());
                }
                Waiter::RemoteTx { tx, from, req } => {
                    self.hold(tx, set);
                    if crate::aof::is_logged(tx) {
                        self.aof_append(crate::aof::Record::Grant(tx));
                    }
                    self.reply(from, req, Payload::Granted);
                }
                Waiter::Chain(chain) => self.chain_step(set, chain),
            }
        }
    }

    /// Records the locks granted to `tx`, and what its release will need to know.
    pub(crate) fn hold(&self, tx: TxId, set: LockSet) {
        let absent = {
            let watches = self.watches.borrow();
            if watches.is_empty() {
                Vec::new()
            } else {
                let now = now_ms();
                let mut shard = self.shard.borrow_mut();
                let written: Vec<(usize, Bytes)> = if set.shard == Some(Mode::Exclusive) {
                    watches.keys().map(|(db, key)| (db, key.clone())).collect()
                } else {
                    set.keys
                        .iter()
                        .filter(|(db, key, mode)| *mode == Mode::Exclusive && watches.is_watched(*db, key))
                        .map(|(db, key, _)| (*db, key.clone()))
                        .collect()
                };
                written.into_iter().filter(|(db, key)| shard.dbs.get_mut(*db).is_some_and(|d| !d.contains(key, now))).collect()
            }
        };
        self.held.borrow_mut().insert(tx, Held { set, absent });
    }

    pub(crate) fn release_local(self: &Rc<Self>, tx: TxId, wrote: bool) {
        let held = self.held.borrow_mut().remove(&tx).expect("a transaction releases the locks it holds");
        if wrote {
            self.signal_released(tx, &held);
        }
        let set = held.set;
        let granted = self.locks.borrow_mut().release(&set);
        self.process_grants(granted);
        self.serve_blocked();
    }

    // ---- Coordinating ----------------------------------------------------------------

    /// Runs the commands of one read from a connection and returns their replies in order.
    /// Plain commands are grouped per owning core, one message per core, and run in
    /// parallel; a cross-core command waits for everything before it and runs alone.
    pub async fn execute(self: &Rc<Self>, db: usize, proto: Protocol, cmds: Vec<Cmd>, block: &BlockCtx<'_>) -> Vec<Frame> {
        // The fast path: everything on this core and nothing locked here, so the commands
        // run in place, with no message and no wait.
        let all_local = cmds.iter().all(|c| matches!(c.route, Route::Single(None)) || c.route == Route::Single(Some(self.id)));
        // Commands with guard flags of their own are rare (cluster mode, a slot on the move):
        // without any, no per-command flags travel.
        let own_guards = cmds.iter().any(|c| c.guard != 0);
        if all_local && self.locks.borrow().is_idle() {
            let guards = Guards { read: block.guarding, each: if own_guards { cmds.iter().map(|c| c.guard).collect() } else { Vec::new() } };
            let batch: Vec<(&'static CommandSpec, Vec<Bytes>)> = cmds.into_iter().map(|c| (c.spec, c.args)).collect();
            let mark = self.publish_mark();
            let frames = self.run_now(db, proto, &batch, false, block.client, block.track.then_some(self.id), &guards);
            self.serve_blocked();
            if let Some(wanted) = mark.and_then(|mark| self.undelivered_since(&mark)) {
                self.delivered(wanted).await;
            }
            return frames;
        }
        let mut replies: Vec<Option<Frame>> = (0..cmds.len()).map(|_| None).collect();
        let mut cmds = cmds.into_iter().enumerate().peekable();
        while cmds.peek().is_some() {
            if let Some((index, cmd)) = cmds.next_if(|(_, c)| matches!(c.route, Route::Multi(_))) {
                let Route::Multi(shards) = cmd.route else { unreachable!("matched Multi") };
                replies[index] = Some(match cmd.spec.handler {
                    Handler::Blocking(ops) => self.run_blocking(db, proto, cmd.spec, ops, cmd.args, block).await,
                    _ => self.run_multi(db, proto, cmd.spec, cmd.args, shards, block.client).await,
                });
                continue;
            }
            // The run of plain commands up to the next cross-core one.
            let mut groups: Vec<(usize, Vec<usize>, Batch, Guards)> = Vec::new();
            while let Some((index, cmd)) = cmds.next_if(|(_, c)| !matches!(c.route, Route::Multi(_))) {
                let Route::Single(shard) = cmd.route else { unreachable!("Connection commands are handled by the caller") };
                let shard = shard.unwrap_or(self.id);
                let group = match groups.iter().position(|(s, ..)| *s == shard) {
                    Some(group) => group,
                    None => {
                        groups.push((shard, Vec::new(), Vec::new(), Guards { read: block.guarding, each: Vec::new() }));
                        groups.len() - 1
                    }
                };
                let (_, indexes, batch, guards) = &mut groups[group];
                indexes.push(index);
                batch.push((cmd.spec, cmd.args));
                if own_guards {
                    guards.each.push(cmd.guard);
                }
            }
            let mut waits = Vec::with_capacity(groups.len());
            let mut local = None;
            for (shard, indexes, batch, guards) in groups {
                if shard == self.id {
                    local = Some((indexes, batch, guards));
                } else {
                    let origin = Origin { client: block.client, track: block.track, guards };
                    let rx = self.request(shard, |req| Msg::Batch { req, db, proto, cmds: batch, origin });
                    waits.push((indexes, BatchWait::Remote(rx)));
                }
            }
            if let Some((indexes, batch, guards)) = local {
                let (tx, rx) = oneshot::channel();
                self.submit_batch(db, proto, batch, Done::Local(tx), Origin { client: block.client, track: block.track, guards });
                waits.push((indexes, BatchWait::Local(rx)));
            }
            for (indexes, wait) in waits {
                let frames = match wait {
                    BatchWait::Local(rx) => rx.await.expect("a local batch always completes"),
                    BatchWait::Remote(rx) => match rx.await.expect("a peer always answers a batch") {
                        Payload::Frames(frames, spent) => {
                            drop(spent);
                            frames
                        }
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
    async fn run_multi(self: &Rc<Self>, db: usize, proto: Protocol, spec: &'static CommandSpec, args: Vec<Bytes>, shards: Vec<usize>, client: u64) -> Frame {
        let multi = match spec.handler {
            Handler::Keys { multi: Some(multi), .. } | Handler::Multi(multi) => multi,
            _ => unreachable!("{} has a cross-core form", spec.name),
        };
        let mode = if spec.is_write() { Mode::Exclusive } else { Mode::Shared };
        // Keys on this core and one other: one round trip (see `crate::pair`). Over other
        // cores, or when a lock of the pair was not free: one chain (see `crate::chain`).
        if shards.len() >= 2 && crate::pair::ONE_HOP.contains(&spec.name) && crate::pair::applies(self) {
            let started = Stopwatch::start();
            // Boxed: their state stays out of every cross-core command's future. Each path
            // takes its own lock sets (a refused pair, rare, computes them twice).
            let mut reply = None;
            if shards.len() == 2 && shards.contains(&self.id) {
                let sets = self.key_lock_sets(db, spec, &args, &shards, mode);
                reply = Box::pin(self.run_multi_pair(db, proto, multi, &args, sets, !spec.is_write())).await;
            }
            if reply.is_none() {
                let sets = self.key_lock_sets(db, spec, &args, &shards, mode);
                reply = Box::pin(self.run_multi_chain(db, proto, multi, &args, sets, !spec.is_write())).await;
            }
            if let Some(reply) = reply {
                self.stats.borrow_mut().record(spec.name, started.elapsed(), &reply);
                self.note_slow(spec, &args, started.elapsed(), client);
                return reply;
            }
        }
        let sets = if spec.has(shoal_commands::table::flags::ALL_SHARDS) {
            shards.iter().map(|&s| (s, LockSet { shard: Some(mode), keys: Vec::new() })).collect()
        } else if let Some(exclusive) = spec.all_shards_when.and_then(|all_shards| all_shards(&args)) {
            // The request may read any key of any core (the dispatcher routed it to all of
            // them): each core's shard-wide lock, shared unless it also writes.
            let mode = if exclusive { Mode::Exclusive } else { Mode::Shared };
            shards.iter().map(|&s| (s, LockSet { shard: Some(mode), keys: Vec::new() })).collect()
        } else {
            self.key_lock_sets(db, spec, &args, &shards, mode)
        };
        let tx = if spec.is_write() {
            self.acquire_write(&sets).await
        } else {
            let tx = self.new_tx();
            self.acquire_all(tx, sets.clone()).await;
            tx
        };
        let coordinator = TxCoordinator::new(self.clone(), db, proto).of(tx).reading(!spec.is_write());
        let started = Stopwatch::start();
        let now = coordinator.now_ms();
        let logged = crate::aof::is_logged(tx);
        // The arguments outlive the command only when something needs them after it.
        let kept = if logged || self.settings.borrow().notify_keyspace_events != 0 || self.slowlog.on() { args.clone() } else { Vec::new() };
        let reply = multi(&coordinator, args).await;
        let args = kept;
        let elapsed = started.elapsed();
        self.note_slow(spec, &args, elapsed, client);
        let (events, sources) = coordinator.take_events(spec, &args);
        self.publish_in_order(events, &sources).await;
        self.stats.borrow_mut().record(spec.name, elapsed, &reply);
        // The release tells the watchers and waiters of the keys it locked for writing, unless
        // the reply shows that nothing changed.
        let wrote = spec.is_write() && !crate::transaction::changed_nothing(spec, &reply);
        if logged {
            // Logged whole, while the locks are held (see crate::aof); a write that changed
            // nothing logs an empty body.
            let mut bytes = Vec::new();
            if wrote {
                log_command(spec, &args, &reply, now, &mut bytes);
            }
            self.aof_log_transaction(tx, db, bytes, &sets, wrote);
            self.aof_wait_tx(tx).await;
            return reply;
        }
        self.release_all_after(tx, &sets, wrote);
        reply
    }

    /// Releases a logged transaction's locks (see [`crate::aof`]): logs its `bytes` (maybe
    /// none) as one body, leaving a barrier in the stream of every core it held.
    pub(crate) fn aof_log_transaction(self: &Rc<Self>, tx: TxId, db: usize, bytes: Vec<u8>, sets: &[(usize, LockSet)], wrote: bool) {
        debug_assert!(crate::aof::is_logged(tx), "only a logged transaction has a body");
        let participants: Vec<usize> = sets.iter().map(|(shard, _)| *shard).collect();
        crate::aof::LOG.add_body(tx, crate::aof::Body { db, bytes, participants });
        for (shard, _) in sets {
            if *shard == self.id {
                self.aof_append(crate::aof::Record::Barrier(tx));
                self.release_local(tx, wrote);
            } else {
                self.send(*shard, Msg::Release { tx, wrote, barrier: true });
            }
        }
    }

    /// A write's transaction: a new id, marked for the log when the log is on (see
    /// [`crate::aof`]), holding its locks `sets`.
    ///
    /// Whether the log is on is read when the id is made, but what decides whether the
    /// transaction belongs in the log is where its locks fall against the cut that starts the
    /// log (a rewrite's switch, a replica's mark), which comes after the log turns on. Once
    /// every lock is held no cut can run until they go: one that began unlogged and still
    /// finds the log off is before any cut to come. One that finds the log on may have queued
    /// behind such a cut, and its writes would be in neither the snapshot nor the log: it
    /// gives its locks back, having run nothing, and starts over logged.
    pub(crate) async fn acquire_write(self: &Rc<Self>, sets: &[(usize, LockSet)]) -> TxId {
        loop {
            let tx = self.new_logged_tx();
            self.acquire_all(tx, sets.to_vec()).await;
            if crate::aof::is_logged(tx) || !crate::aof::LOG.is_active() {
                return tx;
            }
            self.release_all_after(tx, sets, false);
        }
    }

    /// A new transaction id, marked for the log when the log is on (see [`crate::aof`]).
    fn new_logged_tx(&self) -> TxId {
        let tx = self.new_tx();
        if crate::aof::LOG.is_active() {
            tx | crate::aof::LOGGED
        } else {
            tx
        }
    }

    pub(crate) fn new_tx(&self) -> TxId {
        let n = self.next_tx.get();
        self.next_tx.set(n + 1);
        ((self.id as u64) << 48) | n
    }

    /// Takes the locks of `tx` on each core in ascending core order, waiting for each grant
    /// before asking the next core. The fixed order is what rules out deadlock.
    ///
    /// First, over several cores, it asks every core at once to grant them only if it can
    /// do so now ([`Core::try_acquire_all`]): one round trip instead of one per core when
    /// nothing conflicts. A transaction logged to the append-only file skips that step (its
    /// grants are records of the log, which a refused attempt would leave behind).
    pub(crate) async fn acquire_all(self: &Rc<Self>, tx: TxId, sets: Vec<(usize, LockSet)>) {
        debug_assert!(sets.windows(2).all(|w| w[0].0 < w[1].0), "cores in ascending order");
        if sets.len() > 1 && !crate::aof::is_logged(tx) && self.try_acquire_all(tx, &sets).await {
            return;
        }
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

    /// Asks every core of `sets` at once to grant `tx` its locks if it can now, without
    /// queueing. Returns true when every core granted; otherwise gives back what was granted
    /// and returns false, and the caller takes the ordered path. A try never waits on
    /// anyone (each core answers at once), so holding tentative grants while the answers
    /// come cannot close a cycle of waits.
    async fn try_acquire_all(self: &Rc<Self>, tx: TxId, sets: &[(usize, LockSet)]) -> bool {
        // This core first: a refusal here costs no message.
        let local = sets.iter().find(|(shard, _)| *shard == self.id);
        if let Some((_, set)) = local {
            if !self.try_hold(tx, set.clone()) {
                return false;
            }
        }
        let waits: Vec<(usize, oneshot::Receiver<Payload>)> = sets
            .iter()
            .filter(|(shard, _)| *shard != self.id)
            .map(|(shard, set)| (*shard, self.request(*shard, |req| Msg::TryAcquire { req, tx, locks: set.clone() })))
            .collect();
        let mut granted = Vec::with_capacity(waits.len());
        let mut refused = false;
        for (shard, rx) in waits {
            match rx.await.expect("a peer always answers a try") {
                Payload::Granted => granted.push(shard),
                Payload::Refused => refused = true,
                _ => unreachable!("a try is answered with a grant or a refusal"),
            }
        }
        if !refused {
            return true;
        }
        for shard in granted {
            self.send(shard, Msg::Release { tx, wrote: false, barrier: false });
        }
        if local.is_some() {
            self.release_local(tx, false);
        }
        false
    }

    /// Grants `set` to `tx` if this core can now, without queueing.
    pub(crate) fn try_hold(&self, tx: TxId, set: LockSet) -> bool {
        if !self.locks.borrow_mut().try_acquire(&set) {
            return false;
        }
        self.hold(tx, set);
        true
    }

    pub(crate) fn release_all(self: &Rc<Self>, tx: TxId, sets: &[(usize, LockSet)]) {
        self.release_all_after(tx, sets, true);
    }

    /// Releases `tx` everywhere; `wrote` as in [`Msg::Release`].
    pub(crate) fn release_all_after(self: &Rc<Self>, tx: TxId, sets: &[(usize, LockSet)], wrote: bool) {
        for (shard, _) in sets {
            if *shard == self.id {
                self.release_local(tx, wrote);
            } else {
                self.send(*shard, Msg::Release { tx, wrote, barrier: false });
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

/// `op`, run as a replica client's read: keys whose time has passed look missing to it (see
/// `Db::set_hide_expired`). Only for a replica, whose every shard keeps expired keys.
pub(crate) fn hiding_expired(op: HopOp) -> HopOp {
    Box::new(move |ctx: &mut Ctx| {
        let db = ctx.db_index;
        ctx.shard.dbs[db].set_hide_expired(true);
        let result = op(ctx);
        ctx.shard.dbs[db].set_hide_expired(false);
        result
    })
}

/// The runtime's side of a cross-core command: runs hops on cores whose locks it holds.
pub(crate) struct TxCoordinator {
    pub(crate) core: Rc<Core>,
    pub(crate) db: usize,
    pub(crate) proto: Protocol,
    /// The keyspace events of the hops run so far: the core and events of each hop that
    /// raised any, in hop order (nothing is allocated while notifications are off).
    events: RefCell<Vec<(usize, Vec<KeyEvent>)>>,
    /// The time every hop runs at (see [`Core::run_hop`]).
    now_ms: u64,
    /// The transaction the hops belong to, when it is logged (see [`Core::run_hop`]).
    tx: Option<TxId>,
    /// The hops are a read's: on a replica they do not see keys whose time has passed (see
    /// [`hiding_expired`]).
    reading: bool,
}

impl TxCoordinator {
    /// A coordinator whose hops run at the time of its creation.
    pub(crate) fn new(core: Rc<Core>, db: usize, proto: Protocol) -> TxCoordinator {
        TxCoordinator { core, db, proto, events: RefCell::new(Vec::new()), now_ms: now_ms(), tx: None, reading: false }
    }

    /// Hops of a command that writes nothing (`!spec.is_write()`).
    pub(crate) fn reading(mut self, reading: bool) -> TxCoordinator {
        self.reading = reading;
        self
    }

    /// Hops of transaction `tx`: the DELs of keys they expire go before its body when it is
    /// logged.
    pub(crate) fn of(mut self, tx: TxId) -> TxCoordinator {
        self.tx = Some(tx);
        self
    }

    /// Runs the hops at `now_ms` instead: an EXEC's time, for every step of it.
    pub(crate) fn at(mut self, now_ms: u64) -> TxCoordinator {
        self.now_ms = now_ms;
        self
    }

    /// The time the hops run at.
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Runs `ops` (one per core, at once), keeps their events, and returns their results in
    /// order, each with whether its core released transaction `release` after it (see
    /// [`Msg::Hop`]; this core's own hop never does, its release costs no message).
    pub(crate) async fn hop_releasing(&self, ops: Vec<(usize, HopOp)>, release: Option<(TxId, bool)>) -> Vec<(HopResult, bool)> {
        // Per hop: its core and, once known, its result, events and release.
        let mut results: Vec<(usize, Option<(Hopped, bool)>)> = Vec::with_capacity(ops.len());
        let mut waits = Vec::with_capacity(ops.len());
        let mut locals = Vec::new();
        let hiding = self.reading && self.core.with_shard(|shard| shard.dbs[self.db].loading());
        for (index, (shard, op)) in ops.into_iter().enumerate() {
            let op = if hiding { hiding_expired(op) } else { op };
            results.push((shard, None));
            if shard == self.core.id {
                locals.push((index, op));
                waits.push(None);
            } else {
                let (db, proto) = (self.db, self.proto);
                let (now, tx) = (self.now_ms, self.tx);
                waits.push(Some(self.core.request(shard, |req| Msg::Hop { req, db, proto, op, release, now, tx })));
            }
        }
        for (index, op) in locals {
            results[index].1 = Some((self.core.run_hop(self.db, self.proto, op, self.now_ms, self.tx), false));
        }
        for (index, wait) in waits.into_iter().enumerate() {
            if let Some(rx) = wait {
                match rx.await.expect("a peer always answers a hop") {
                    Payload::Hop(result, events, released) => results[index].1 = Some(((result, events), released)),
                    _ => unreachable!("a hop is answered with its result"),
                }
            }
        }
        let mut events = self.events.borrow_mut();
        results
            .into_iter()
            .map(|(shard, r)| {
                let ((result, hop_events), released) = r.expect("every hop has a result");
                if !hop_events.is_empty() {
                    events.push((shard, hop_events));
                }
                (result, released)
            })
            .collect()
    }

    /// The events of the command that ran under this coordinator, in Redis's order (see
    /// [`merge_events`]), and the cores that raised them.
    pub(crate) fn take_events(&self, spec: &CommandSpec, args: &[Bytes]) -> (Vec<KeyEvent>, Vec<usize>) {
        let hops = self.events.take();
        let mut sources: Vec<usize> = hops.iter().map(|(shard, _)| *shard).collect();
        sources.sort_unstable();
        sources.dedup();
        (merge_events(hops.into_iter().map(|(_, events)| events).collect(), spec, args), sources)
    }
}

/// Merges the events one command's hops raised on their cores into the order Redis raises
/// them. Each hop's events keep their order (a core runs its keys in argument order, and
/// RENAME or LMOVE raise all theirs on one core, in Redis's order); between hops, the next
/// event is the one whose key comes first among the command's keys (MSET a b c with a and
/// c on one core: a, b, c; SMOVE: the source's events, then the destination's). An event
/// whose key the command does not name sorts last.
pub(crate) fn merge_events(mut hops: Vec<Vec<KeyEvent>>, spec: &CommandSpec, args: &[Bytes]) -> Vec<KeyEvent> {
    hops.retain(|events| !events.is_empty());
    if hops.len() < 2 {
        return hops.pop().unwrap_or_default();
    }
    let keys: Vec<&Bytes> = dispatch::keys(spec, args).collect();
    let position = |event: &KeyEvent| keys.iter().position(|key| **key == event.key).unwrap_or(usize::MAX);
    let mut merged = Vec::with_capacity(hops.iter().map(Vec::len).sum());
    let mut hops: Vec<std::iter::Peekable<std::vec::IntoIter<KeyEvent>>> = hops.into_iter().map(|events| events.into_iter().peekable()).collect();
    // Few hops and few events: a scan of the heads per event is cheaper than a heap.
    while let Some(next) = hops.iter_mut().filter_map(|hop| hop.peek().map(position).map(|at| (at, hop))).min_by_key(|(at, _)| *at).map(|(_, hop)| hop) {
        merged.extend(next.next());
    }
    merged
}

/// A hop's result and the keyspace events it raised.
type Hopped = (HopResult, Vec<KeyEvent>);

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
        async move { self.hop_releasing(ops, None).await.into_iter().map(|(result, _)| result).collect() }.boxed_local()
    }
}

/// Commands of a batch whose keys are prefetched together before they run.
const PREFETCH_GROUP: usize = 16;

/// Prefetches the keys `cmds` will look up, when there are several: their cache misses then
/// overlap (see `shoal_store::prefetch`). Keys of commands that find them by parsing
/// (`movable_keys`) are left out.
pub(crate) fn prefetch_keys(db: &shoal_store::Db, cmds: &[(&'static CommandSpec, Vec<Bytes>)]) {
    const KEYS_MAX: usize = 32;
    let mut keys: [&[u8]; KEYS_MAX] = [&[]; KEYS_MAX];
    let mut count = 0;
    'cmds: for (spec, args) in cmds {
        if spec.movable_keys.is_some() {
            continue;
        }
        for at in spec.keys.positions(args.len()) {
            if count == KEYS_MAX {
                break 'cmds;
            }
            // A pipeline on one key (LPUSH mylist ...) needs one prefetch, not sixteen.
            if count > 0 && keys[count - 1] == &args[at][..] {
                continue;
            }
            keys[count] = &args[at];
            count += 1;
        }
    }
    if count > 1 {
        db.prefetch(&keys[..count]);
    }
    prefetch_members(db, cmds);
}

/// Prefetches the members that `cmds` look up in their key's collection (HSET's fields,
/// SISMEMBER's member: `CommandSpec::members`), one call per run of commands on the same
/// key, when a run looks up several: one lookup has nothing to overlap with.
fn prefetch_members(db: &shoal_store::Db, cmds: &[(&'static CommandSpec, Vec<Bytes>)]) {
    const MEMBERS_MAX: usize = 32;
    let mut members: [&[u8]; MEMBERS_MAX] = [&[]; MEMBERS_MAX];
    let mut count = 0;
    let mut key: &[u8] = &[];
    let flush = |key: &[u8], members: &[&[u8]]| {
        if members.len() > 1 {
            db.prefetch_members(key, members);
        }
    };
    for (spec, args) in cmds {
        // Every command with members has its one key first.
        if spec.members.first <= 0 || args.len() < 2 {
            continue;
        }
        if args[1] != key {
            flush(key, &members[..count]);
            count = 0;
            key = &args[1];
        }
        for at in spec.members.positions(args.len()) {
            if count == MEMBERS_MAX {
                flush(key, &members[..count]);
                count = 0;
            }
            members[count] = &args[at];
            count += 1;
        }
    }
    flush(key, &members[..count]);
}

//! The append-only log: every core appends the writes it runs to its own stream; one writer
//! task (on core 0) merges the streams into the single incremental file, in an order every
//! key agrees with, and makes them durable by the `appendfsync` policy.
//!
//! - **Streams.** A core appends records to its stream while it runs a command, before the
//!   reply leaves: plain commands as encoded RESP (`Record::Cmds`). Commands on one core
//!   touch only that core's keys, so streams need no order between them, except where a
//!   transaction spans cores.
//! - **Cross-core transactions** (a cross-core command, an EXEC, a script) are logged once,
//!   whole, as a `Body` (wrapped in MULTI/EXEC when it has several commands), by the core that
//!   coordinated them, while the transaction still holds its locks. Each core it locked
//!   appends a `Barrier` to its stream at release. The writer
//!   writes a body once every participant's stream has that barrier at its front, so
//!   everything a participant logged before the transaction comes before it in the file, and
//!   everything after comes after. Strict two-phase locking (locks held until the body and
//!   barriers are logged, taken in ascending core order) means conflicting transactions meet
//!   their barriers in the same order on every core, so the merge never waits on itself.
//! - **Timestamps** (`aof-timestamp-enabled`). A core appends `Time(second)` before the
//!   first record of each new second; the writer writes `#TS:<second>` before a command
//!   whose stream entered a second later than the last annotation written (Redis's
//!   `genAofTimestampAnnotationIfNeeded`), so `redis-check-aof --truncate-to-timestamp` works.
//! - **Durability.** After the writer writes (and, per policy, fsyncs) a batch it publishes,
//!   per stream, how many records are durable, and tells every core. Under `appendfsync
//!   always` a connection sends its replies only once every stream is durable up to where it
//!   stood when the commands finished ([`Core::aof_wait`]), and a transaction's coordinator
//!   until its body is durable ([`Core::aof_wait_tx`]): one fsync covers every client whose
//!   commands finished meanwhile (group commit). (The coordinator cannot mark its own stream
//!   instead: it may not hold a lock on its own core, so such a mark could come before a
//!   barrier of an earlier transaction there and make the merge wait on itself.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

use crate::core::{Core, Msg, TxId};

/// One record of a core's stream.
#[derive(Debug)]
pub enum Record {
    /// Commands of database `db`, encoded as RESP arrays.
    Cmds { db: usize, bytes: Vec<u8> },
    /// A logged cross-core transaction took its locks here: what came before may conflict
    /// with it and is written first.
    Grant(TxId),
    /// It released them, after logging its body: what comes after is written after it.
    Barrier(TxId),
    /// A rewrite's cut (every shard locked, so every stream gets it at the same point):
    /// what comes after goes to the next incremental file.
    Switch(u64),
    /// A command for the replicas alone (PUBLISH: Redis passes it on to replicas, not to the
    /// append-only file).
    Repl(Vec<u8>),
    /// A cut for a replica's full resynchronisation (every shard locked, so every stream gets
    /// it at the same point): the writer notes where the replication stream stands there.
    Mark(u64),
    /// `aof-timestamp-enabled`: the records that follow were appended in this Unix second
    /// (appended before the first record of each new second, as Redis's
    /// `genAofTimestampAnnotationIfNeeded` does).
    Time(u64),
}

/// The bit of a transaction id that marks it as logged: every core it locks appends a
/// `Grant` and, at release, a `Barrier`, and it always logs a body (maybe empty).
pub const LOGGED: TxId = 1 << 47;

#[inline]
pub fn is_logged(tx: TxId) -> bool {
    tx & LOGGED != 0
}

/// A cross-core transaction, logged whole.
#[derive(Debug)]
pub struct Body {
    /// The database its first command runs in (the bytes SELECT any other).
    pub db: usize,
    pub bytes: Vec<u8>,
    /// The cores whose streams hold a barrier for it.
    pub participants: Vec<usize>,
}

struct Stream {
    records: Mutex<VecDeque<Record>>,
    /// Records ever appended.
    appended: AtomicU64,
    /// Records written and durable as the policy defines it.
    durable: AtomicU64,
    /// Records fsynced (under `appendfsync no`, written: the kernel decides): what WAITAOF
    /// waits for whatever the policy.
    synced: AtomicU64,
    /// Records handed to the replication stream (what WAIT waits for before it asks the
    /// replicas).
    fed: AtomicU64,
    /// The Unix second of the last [`Record::Time`] appended (0: none yet).
    stamped_s: AtomicU64,
}

/// The log, process-wide ([`LOG`]). Inactive (appends are dropped) unless `appendonly yes` or
/// replicas are fed: what the writer merges goes to the append-only file, to the replication
/// stream, or to both.
pub struct Log {
    /// Appends are kept: `file` or `feeding`.
    active: AtomicBool,
    /// `appendonly yes`: the writer writes the merge to the append-only file.
    file: AtomicBool,
    /// Replicas are fed: the writer hands the merge to the replication stream.
    feeding: AtomicBool,
    /// `appendfsync always`: replies wait for durability.
    always: AtomicBool,
    streams: OnceLock<Box<[Stream]>>,
    bodies: Mutex<Option<HashMap<TxId, Body>>>,
    /// Per logged transaction, the DELs (with their SELECTs) of keys its hops found expired:
    /// written right before its body (see [`Log::add_prefix`]).
    prefixes: Mutex<Option<HashMap<TxId, Vec<u8>>>>,
    /// Under `always`: transactions whose body is durable, until their coordinator looks.
    durable_txs: Mutex<Option<HashSet<TxId>>>,
    /// The writer found nothing to do and waits: the next append must ring it.
    writer_idle: AtomicBool,
    /// `aof-timestamp-enabled`.
    timestamps: AtomicBool,
}

/// Set once the store first records expired keys (for the log or for tracking clients), and
/// never cleared: from then on [`expired_records`] takes what it recorded on every call.
pub(crate) static EXPIRED_RECORDED: AtomicBool = AtomicBool::new(false);

pub static LOG: Log = Log {
    active: AtomicBool::new(false),
    file: AtomicBool::new(false),
    feeding: AtomicBool::new(false),
    always: AtomicBool::new(false),
    streams: OnceLock::new(),
    bodies: Mutex::new(None),
    prefixes: Mutex::new(None),
    durable_txs: Mutex::new(None),
    writer_idle: AtomicBool::new(false),
    timestamps: AtomicBool::new(false),
};

impl Log {
    /// Prepares one stream per core. Call once, before the cores start.
    pub fn init(&self, cores: usize) {
        let _ = self.streams.set(
            (0..cores)
                .map(|_| Stream {
                    records: Mutex::new(VecDeque::new()),
                    appended: AtomicU64::new(0),
                    durable: AtomicU64::new(0),
                    synced: AtomicU64::new(0),
                    fed: AtomicU64::new(0),
                    stamped_s: AtomicU64::new(0),
                })
                .collect(),
        );
    }

    /// Starts logging to the append-only file (after the files are loaded: replayed commands
    /// are not logged again).
    pub fn activate(&self, always: bool) {
        self.always.store(always, Ordering::SeqCst);
        self.file.store(true, Ordering::SeqCst);
        self.refresh_active();
    }

    /// Stops logging to the file (CONFIG SET appendonly no): unless replicas are fed, appends
    /// are dropped from now on; the writer drains what the streams hold and closes the file.
    pub fn deactivate(&self) {
        self.file.store(false, Ordering::SeqCst);
        self.refresh_active();
    }

    /// Starts (or stops) feeding the replication stream: appends are kept from now on.
    pub fn set_feeding(&self, feeding: bool) {
        self.feeding.store(feeding, Ordering::SeqCst);
        self.refresh_active();
    }

    fn refresh_active(&self) {
        let active = self.file.load(Ordering::SeqCst) || self.feeding.load(Ordering::SeqCst);
        self.active.store(active, Ordering::SeqCst);
        crate::tracking::refresh_log_expired();
    }

    /// `appendonly yes`: the merge goes to the append-only file.
    #[inline]
    pub fn file_on(&self) -> bool {
        self.file.load(Ordering::Relaxed)
    }

    /// The merge goes to the replication stream.
    #[inline]
    pub fn feeding(&self) -> bool {
        self.feeding.load(Ordering::Relaxed)
    }

    /// Changes the fsync policy's effect on replies (CONFIG SET appendfsync).
    pub fn set_always(&self, always: bool) {
        self.always.store(always, Ordering::SeqCst);
    }

    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn waits_for_fsync(&self) -> bool {
        self.always.load(Ordering::Relaxed) && self.file_on()
    }

    fn streams(&self) -> &[Stream] {
        self.streams.get().expect("Log::init ran")
    }

    /// `aof-timestamp-enabled`: whether appends are stamped with their second.
    pub fn set_timestamps(&self, enabled: bool) {
        self.timestamps.store(enabled, Ordering::Relaxed);
    }

    /// Appends a record to `core`'s stream (preceded by a [`Record::Time`] when timestamps
    /// are on and the second changed since the stream's last one); true when the writer
    /// must be rung.
    pub(crate) fn append(&self, core: usize, record: Record) -> bool {
        let stream = &self.streams()[core];
        let mut added = 1;
        {
            let mut records = stream.records.lock().expect("not poisoned");
            if self.timestamps.load(Ordering::Relaxed) && matches!(record, Record::Cmds { .. } | Record::Grant(_)) {
                let now_s = crate::now_ms() / 1000;
                if now_s > stream.stamped_s.load(Ordering::Relaxed) {
                    stream.stamped_s.store(now_s, Ordering::Relaxed);
                    records.push_back(Record::Time(now_s));
                    added += 1;
                }
            }
            records.push_back(record);
            // Counted under the lock: a writer that starts reads both at one instant (see
            // `Merger::new`).
            stream.appended.fetch_add(added, Ordering::Release);
        }
        self.writer_idle.load(Ordering::Acquire) && self.writer_idle.swap(false, Ordering::AcqRel)
    }

    /// Logs `records` (see [`expired_records`]), from a hop of logged transaction `tx`, right
    /// before its body. In the hop's own stream they would fall between the transaction's
    /// grant and barrier there, which the merge takes for records that do not conflict with
    /// it and may write after the body (when another participant's barrier comes first); a
    /// DEL of a key the transaction then wrote must come before. All the hops of a
    /// transaction run at one time, so a key one of them found expired was expired for all:
    /// before the whole body is right.
    pub(crate) fn add_prefix(&self, tx: TxId, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let mut prefixes = self.prefixes.lock().expect("not poisoned");
        let prefix = prefixes.get_or_insert_with(HashMap::new).entry(tx).or_default();
        for record in records {
            if let Record::Cmds { db, bytes } = record {
                encode_select(db, prefix);
                prefix.extend_from_slice(&bytes);
            }
        }
    }

    pub(crate) fn add_body(&self, tx: TxId, body: Body) {
        self.bodies.lock().expect("not poisoned").get_or_insert_with(HashMap::new).insert(tx, body);
    }

    /// Where every stream stands now (what a reply must wait for under `always`).
    pub fn appended(&self) -> Vec<u64> {
        self.streams().iter().map(|s| s.appended.load(Ordering::Acquire)).collect()
    }

    /// Takes `tx` out of the durable set: true once its body is durable.
    fn take_durable_tx(&self, tx: TxId) -> bool {
        self.durable_txs.lock().expect("not poisoned").as_mut().is_some_and(|txs| txs.remove(&tx))
    }

    /// Whether every stream is durable up to `marks`.
    pub fn durable_up_to(&self, marks: &[u64]) -> bool {
        self.streams().iter().zip(marks).all(|(s, &mark)| s.durable.load(Ordering::Acquire) >= mark)
    }

    /// Whether every stream is fsynced up to `marks` (see [`Stream::synced`]).
    pub fn synced_up_to(&self, marks: &[u64]) -> bool {
        self.streams().iter().zip(marks).all(|(s, &mark)| s.synced.load(Ordering::Acquire) >= mark)
    }

    /// Whether every stream is in the replication stream up to `marks` (see [`Stream::fed`]).
    pub fn fed_up_to(&self, marks: &[u64]) -> bool {
        self.streams().iter().zip(marks).all(|(s, &mark)| s.fed.load(Ordering::Acquire) >= mark)
    }
}

/// Encodes a command as Redis's AOF does (a RESP array of bulk strings).
pub fn encode(args: &[Bytes], out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// `commands` between MULTI and EXEC.
pub fn wrap_multi(commands: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(commands.len() + 32);
    encode(&[Bytes::from_static(b"MULTI")], &mut out);
    out.extend_from_slice(&commands);
    encode(&[Bytes::from_static(b"EXEC")], &mut out);
    out
}

pub(crate) fn encode_select(db: usize, out: &mut Vec<u8>) {
    encode(&[Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())], out);
}

#[derive(Default, Debug)]
struct TxProgress {
    grants_passed: usize,
    /// Barriers still in the queues once the body is written (None: not written yet).
    barriers_left: Option<usize>,
}

/// The writer's side of the merge: records taken from the streams but not yet written.
#[derive(Default)]
pub struct Merger {
    queues: Vec<VecDeque<Record>>,
    /// Records taken off each stream and written, ever.
    consumed: Vec<u64>,
    /// Bodies written since the last [`publish_durable`].
    written_txs: Vec<TxId>,
    /// A switch every stream reached: the writer moves to the next file before writing more.
    switched: Option<u64>,
    /// Per logged transaction: grants passed (its body may be written once every participant's
    /// grant is behind), then, once written, barriers still to pass.
    progress: HashMap<TxId, TxProgress>,
    /// The database the file's last SELECT chose (None: none yet in this file).
    pub db: Option<usize>,
    /// Per stream, the second of its last [`Record::Time`] taken.
    stream_s: Vec<u64>,
    /// The second of the last `#TS:` annotation written (Redis's `aof_cur_timestamp`: kept
    /// across incremental files).
    written_s: u64,
    /// Where in the output of [`Merger::collect`] the `#TS:` annotations lie (the file's
    /// alone: replicas do not get them), since the last [`Merger::take_annotations`].
    stamps: Vec<std::ops::Range<usize>>,
    /// The replication marks passed, and where in the output each lies.
    marks: Vec<(u64, usize)>,
    /// Where in the output the replicas' own commands ([`Record::Repl`]) lie: the file
    /// leaves them out.
    repl_only: Vec<std::ops::Range<usize>>,
}

/// What [`Merger::collect`]'s output holds besides commands for everyone (see
/// [`Merger::take_annotations`]): ranges and positions in it.
#[derive(Default, Debug)]
pub struct Annotations {
    /// `#TS:` lines: the file's alone.
    pub stamps: Vec<std::ops::Range<usize>>,
    /// Replication marks passed, and where.
    pub marks: Vec<(u64, usize)>,
    /// Commands for the replicas alone.
    pub repl_only: Vec<std::ops::Range<usize>>,
}

impl Merger {
    /// A merge that starts where the streams stand: what a previous writer took counts as
    /// consumed, so the counts it publishes (durable, fsynced, fed) go on from where that
    /// writer's stopped, and marks taken before still compare (a log turned off and on
    /// again, replicas fed again after `repl-backlog-ttl`).
    pub fn new(cores: usize) -> Self {
        let consumed = LOG
            .streams()
            .iter()
            .take(cores)
            .map(|stream| {
                let records = stream.records.lock().expect("not poisoned");
                stream.appended.load(Ordering::Acquire) - records.len() as u64
            })
            .collect();
        Merger { queues: (0..cores).map(|_| VecDeque::new()).collect(), consumed, stream_s: vec![0; cores], ..Default::default() }
    }

    /// Takes what the streams hold and appends what can be written, in a valid order, to
    /// `out`. Returns, per stream, how many records are then written in total.
    pub fn collect(&mut self, out: &mut Vec<u8>) -> Vec<u64> {
        for (queue, stream) in self.queues.iter_mut().zip(LOG.streams()) {
            queue.extend(stream.records.lock().expect("not poisoned").drain(..));
        }
        if self.switched.is_some() {
            // Nothing more until the writer has moved to the next file.
            return self.consumed.clone();
        }
        loop {
            let mut progress = false;
            for core in 0..self.queues.len() {
                while let Some(front) = self.queues[core].front() {
                    match front {
                        Record::Cmds { db, .. } => {
                            let db = *db;
                            let Some(Record::Cmds { bytes, .. }) = self.queues[core].pop_front() else { unreachable!("the front is Cmds") };
                            stamp(&mut self.written_s, self.stream_s[core], out, &mut self.stamps);
                            self.select(db, out);
                            out.extend_from_slice(&bytes);
                            self.consumed[core] += 1;
                        }
                        Record::Switch(id) => {
                            let id = *id;
                            if !self.pop_cut(|r| matches!(r, Record::Switch(s) if *s == id)) {
                                break;
                            }
                            self.switched = Some(id);
                            // The next file starts without a SELECT: the next command selects.
                            self.db = None;
                            return self.consumed.clone();
                        }
                        Record::Repl(_) => {
                            let Some(Record::Repl(bytes)) = self.queues[core].pop_front() else { unreachable!("the front is Repl") };
                            let start = out.len();
                            out.extend_from_slice(&bytes);
                            self.repl_only.push(start..out.len());
                            self.consumed[core] += 1;
                        }
                        Record::Mark(id) => {
                            let id = *id;
                            if !self.pop_cut(|r| matches!(r, Record::Mark(m) if *m == id)) {
                                break;
                            }
                            self.marks.push((id, out.len()));
                            // A replica that starts here gets a SELECT before its first command.
                            self.db = None;
                        }
                        Record::Time(second) => {
                            self.stream_s[core] = self.stream_s[core].max(*second);
                            self.queues[core].pop_front();
                            self.consumed[core] += 1;
                        }
                        Record::Grant(tx) => {
                            let tx = *tx;
                            self.queues[core].pop_front();
                            self.consumed[core] += 1;
                            self.progress.entry(tx).or_default().grants_passed += 1;
                        }
                        Record::Barrier(tx) => {
                            let tx = *tx;
                            let state = self.progress.entry(tx).or_default();
                            if state.barriers_left.is_none() {
                                // Written once every participant passed its grant: what a
                                // participant logged before the grant conflicts maybe and is
                                // written; what it logged between grant and barrier does not.
                                let mut bodies = LOG.bodies.lock().expect("not poisoned");
                                let bodies = bodies.get_or_insert_with(HashMap::new);
                                let ready = bodies.get(&tx).is_some_and(|body| state.grants_passed == body.participants.len());
                                if !ready {
                                    break;
                                }
                                let body = bodies.remove(&tx).expect("checked");
                                let prefix = LOG.prefixes.lock().expect("not poisoned").as_mut().and_then(|prefixes| prefixes.remove(&tx));
                                if let Some(prefix) = prefix {
                                    let second = body.participants.iter().map(|&p| self.stream_s[p]).max().unwrap_or(0);
                                    stamp(&mut self.written_s, second, out, &mut self.stamps);
                                    out.extend_from_slice(&prefix);
                                    // It selected its own databases.
                                    self.db = None;
                                }
                                if !body.bytes.is_empty() {
                                    let second = body.participants.iter().map(|&p| self.stream_s[p]).max().unwrap_or(0);
                                    stamp(&mut self.written_s, second, out, &mut self.stamps);
                                    if self.db != Some(body.db) {
                                        encode_select(body.db, out);
                                        self.db = Some(body.db);
                                    }
                                    out.extend_from_slice(&body.bytes);
                                    // A body may SELECT other databases: the file's current one is
                                    // then unknown, so the next command selects again.
                                    if body.bytes.windows(8).any(|w| w.eq_ignore_ascii_case(b"\r\nSELECT")) {
                                        self.db = None;
                                    }
                                }
                                state.barriers_left = Some(body.participants.len());
                                self.written_txs.push(tx);
                            }
                            self.queues[core].pop_front();
                            self.consumed[core] += 1;
                            let left = state.barriers_left.as_mut().expect("written");
                            *left -= 1;
                            if *left == 0 {
                                self.progress.remove(&tx);
                            }
                        }
                    }
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        self.consumed.clone()
    }

    /// A cut's record (a rewrite's switch, a replica's mark) is passed once it is at the front
    /// of every stream (every shard was locked when the streams got it): then it is taken off
    /// all of them. False while some stream has not reached it.
    fn pop_cut(&mut self, is_it: impl Fn(&Record) -> bool) -> bool {
        if !self.queues.iter().all(|q| q.front().is_some_and(&is_it)) {
            return false;
        }
        for (queue, consumed) in self.queues.iter_mut().zip(&mut self.consumed) {
            queue.pop_front();
            *consumed += 1;
        }
        true
    }

    fn select(&mut self, db: usize, out: &mut Vec<u8>) {
        if self.db != Some(db) {
            encode_select(db, out);
            self.db = Some(db);
        }
    }

    /// What the output holds since the last call besides commands for everyone.
    pub fn take_annotations(&mut self) -> Annotations {
        Annotations { stamps: std::mem::take(&mut self.stamps), marks: std::mem::take(&mut self.marks), repl_only: std::mem::take(&mut self.repl_only) }
    }

    /// The switch every stream reached, if any: the writer opens the next file, then
    /// collects again.
    pub fn take_switch(&mut self) -> Option<u64> {
        self.switched.take()
    }

    /// The front record of each queue (to diagnose a merge that waits).
    pub fn fronts(&self) -> String {
        let bodies = LOG.bodies.lock().expect("not poisoned");
        let known: Vec<TxId> = bodies.as_ref().map(|b| b.keys().copied().collect()).unwrap_or_default();
        format!(
            "fronts {:?}, bodies {:?}, written {:?}",
            self.queues.iter().map(|q| q.front().map(|r| format!("{r:?}").chars().take(40).collect::<String>())).collect::<Vec<_>>(),
            known,
            self.written_txs
        )
    }

    /// Whether records wait in the writer's queues (behind a barrier).
    pub fn holds_records(&self) -> bool {
        self.queues.iter().any(|q| !q.is_empty())
    }

    /// Whether a transaction is half way through the merge (grants passed, barriers not):
    /// a writer that stopped now would leave its barriers to a merge that never saw its
    /// grants.
    pub fn mid_transaction(&self) -> bool {
        !self.progress.is_empty()
    }
}

/// Writes `#TS:<second>` before the next command when its stream entered a second later
/// than the last annotation written (`written_s`), before its SELECT, as Redis does.
fn stamp(written_s: &mut u64, second: u64, out: &mut Vec<u8>, stamps: &mut Vec<std::ops::Range<usize>>) {
    if second > *written_s {
        *written_s = second;
        let start = out.len();
        out.extend_from_slice(b"#TS:");
        out.extend_from_slice(itoa::Buffer::new().format(second).as_bytes());
        out.extend_from_slice(b"\r\n");
        stamps.push(start..out.len());
    }
}

/// After the writer made `consumed` records of each stream, and the bodies it wrote,
/// durable: publishes it (tell the cores with [`Core::aof_announce_durable`]).
pub fn publish_durable(merger: &mut Merger, consumed: &[u64]) {
    for (stream, &count) in LOG.streams().iter().zip(consumed) {
        stream.durable.store(count, Ordering::Release);
    }
    let txs = std::mem::take(&mut merger.written_txs);
    if LOG.waits_for_fsync() && !txs.is_empty() {
        LOG.durable_txs.lock().expect("not poisoned").get_or_insert_with(HashSet::new).extend(txs);
    }
}

/// After the writer fsynced (or, under `appendfsync no`, wrote) `consumed` records of each
/// stream: publishes it for WAITAOF (tell the cores with [`Core::aof_announce_durable`]).
pub fn publish_synced(consumed: &[u64]) {
    for (stream, &count) in LOG.streams().iter().zip(consumed) {
        stream.synced.store(count, Ordering::Release);
    }
}

/// After the writer handed `consumed` records of each stream to the replication stream:
/// publishes it for WAIT (tell the cores with [`Core::aof_announce_durable`]).
pub fn publish_fed(consumed: &[u64]) {
    for (stream, &count) in LOG.streams().iter().zip(consumed) {
        stream.fed.store(count, Ordering::Release);
    }
}

/// Whether any stream holds records the writer has not taken.
pub fn streams_hold_records() -> bool {
    LOG.streams().iter().any(|s| !s.records.lock().expect("not poisoned").is_empty())
}

/// Marks the writer idle; false when records arrived meanwhile (then it must not sleep).
pub fn writer_going_idle() -> bool {
    LOG.writer_idle.store(true, Ordering::SeqCst);
    let pending = LOG.streams().iter().any(|s| !s.records.lock().expect("not poisoned").is_empty());
    if pending && LOG.writer_idle.swap(false, Ordering::SeqCst) {
        return false;
    }
    true
}

/// The DEL records of the keys `shard` expired since the last call (lazily or by the active
/// cycle), and HDEL records of the hash fields it expired, one record per database, for the shard's own stream. Each place that runs
/// commands appends them before its own records: the expiry happened while they ran (their
/// time is fixed, so a key expired for one of them is expired for all), and a write logged
/// after the DEL then finds the key gone at replay, as it did when it ran. Between a logged
/// transaction's grant and barrier they are written before its body.
/// Tracking clients hear of the expired keys too (see `crate::tracking`). Once the store ever
/// recorded expired keys, every call takes what it recorded, so nothing recorded for a
/// reader that left is logged by a log started later (a DEL of a key made again since).
pub(crate) fn expired_records(shard: &mut shoal_store::Shard) -> Vec<Record> {
    if !EXPIRED_RECORDED.load(Ordering::Relaxed) {
        return Vec::new();
    }
    let taken = shard.take_expired_log();
    if taken.is_empty() {
        return Vec::new();
    }
    if crate::tracking::clients() > 0 {
        crate::core::Core::current().tracking_expired(taken.clone());
    }
    if !LOG.is_active() {
        return Vec::new();
    }
    taken
        .into_iter()
        .map(|(db, expired)| {
            let mut bytes = Vec::new();
            for item in expired {
                match item {
                    shoal_store::db::Expired::Key(key) => encode(&[Bytes::from_static(b"DEL"), Bytes::from(Vec::from(key))], &mut bytes),
                    shoal_store::db::Expired::Fields(key, fields) => {
                        let mut args = vec![Bytes::from_static(b"HDEL"), Bytes::from(Vec::from(key))];
                        args.extend(fields.into_iter().map(|field| Bytes::from(Vec::from(field))));
                        encode(&args, &mut bytes);
                    }
                }
            }
            Record::Cmds { db, bytes }
        })
        .collect()
}

impl Core {
    /// Appends `record` to this core's stream and rings the writer if it sleeps.
    pub(crate) fn aof_append(self: &Rc<Self>, record: Record) {
        if LOG.append(self.id, record) {
            self.ring_aof_writer();
        }
    }

    /// Appends `records` (see [`expired_records`]) to this core's stream.
    pub(crate) fn aof_append_all(self: &Rc<Self>, records: Vec<Record>) {
        for record in records {
            self.aof_append(record);
        }
    }

    /// At a rewrite's cut (every shard locked): marks this core's stream, so the writer moves
    /// to the next incremental file at the same point in every stream.
    /// Id 0: no switch (the log is off).
    pub fn aof_switch(self: &Rc<Self>, id: u64) {
        if id == 0 {
            return;
        }
        self.aof_append(Record::Switch(id));
    }

    /// Logs a command that touches no key (FUNCTION LOAD, ...): always in core 0's stream,
    /// so such commands keep their order whichever core ran them.
    pub fn aof_log_keyless(self: &Rc<Self>, args: &[Bytes]) {
        if !LOG.is_active() {
            return;
        }
        let mut bytes = Vec::new();
        encode(args, &mut bytes);
        if LOG.append(0, Record::Cmds { db: 0, bytes }) {
            self.ring_aof_writer();
        }
    }

    /// Wakes the writer task (on core 0).
    pub fn ring_aof_writer(self: &Rc<Self>) {
        if self.id == 0 {
            if let Some(waker) = self.aof_writer.borrow_mut().take() {
                waker.wake();
            }
        } else {
            self.send(0, Msg::AofRing);
        }
    }

    /// The writer (on core 0) waits here until rung.
    pub fn aof_writer_wait(self: &Rc<Self>) -> impl std::future::Future<Output = ()> + '_ {
        let mut registered = false;
        std::future::poll_fn(move |cx| {
            if registered && self.aof_writer.borrow().is_none() {
                return std::task::Poll::Ready(());
            }
            registered = true;
            *self.aof_writer.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
    }

    /// Tells every core that records became durable (their waiting replies may go).
    pub fn aof_announce_durable(self: &Rc<Self>) {
        for core in 0..self.shard_count {
            if core == self.id {
                self.wake_aof_waiters();
            } else {
                self.send(core, Msg::AofDurable);
            }
        }
    }

    pub(crate) fn wake_aof_waiters(&self) {
        for waker in self.aof_waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Under `appendfsync always`: completes once the body of transaction `tx`, which this
    /// core coordinated and logged, is durable. Otherwise at once.
    pub async fn aof_wait_tx(self: &Rc<Self>, tx: TxId) {
        if !LOG.waits_for_fsync() {
            return;
        }
        self.aof_wait_until(|| LOG.take_durable_tx(tx) || !LOG.waits_for_fsync()).await
    }

    /// Completes once every stream is fsynced up to `marks` (WAITAOF), or the log stops.
    pub async fn aof_synced(self: &Rc<Self>, marks: &[u64]) {
        self.aof_wait_until(|| LOG.synced_up_to(marks) || !LOG.file_on()).await
    }

    /// Passes a command on to the replicas alone (PUBLISH), in this core's stream, when
    /// replicas are fed (and not in cluster mode: see [`publish_through_replication`]).
    pub fn log_for_replicas(self: &Rc<Self>, args: &[&[u8]]) {
        if !LOG.feeding() || !PUBLISH_TO_REPLICAS.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let args: Vec<Bytes> = args.iter().map(|arg| Bytes::copy_from_slice(arg)).collect();
        let mut bytes = Vec::new();
        encode(&args, &mut bytes);
        self.aof_append(Record::Repl(bytes));
    }

    /// At a replica's cut (every shard locked): marks this core's stream, so the writer
    /// knows where the replication stream stood at the cut.
    pub fn aof_mark(self: &Rc<Self>, id: u64) {
        self.aof_append(Record::Mark(id));
    }

    /// Completes once `done` holds, checked again each time the writer announces progress
    /// ([`Core::aof_announce_durable`]).
    pub async fn aof_wait_until(&self, mut done: impl FnMut() -> bool) {
        std::future::poll_fn(|cx| {
            if done() {
                return std::task::Poll::Ready(());
            }
            self.aof_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Under `appendfsync always`: completes once everything logged so far, on every core,
    /// is durable. Otherwise at once.
    pub async fn aof_wait(self: &Rc<Self>) {
        if !LOG.waits_for_fsync() {
            return;
        }
        let marks = LOG.appended();
        self.aof_wait_until(|| LOG.durable_up_to(&marks)).await
    }
}

/// Whether PUBLISH and SPUBLISH reach replicas through the replication stream (Redis's way
/// outside cluster mode). In cluster mode the cluster bus carries them instead, as in
/// Redis, and the stream must not: a replica would deliver each message twice.
static PUBLISH_TO_REPLICAS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// See [`PUBLISH_TO_REPLICAS`].
pub fn publish_through_replication(on: bool) {
    PUBLISH_TO_REPLICAS.store(on, std::sync::atomic::Ordering::Relaxed);
}

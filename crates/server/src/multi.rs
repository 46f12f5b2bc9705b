//! MULTI, EXEC, DISCARD, WATCH and UNWATCH: the connection's queue and watched keys, run
//! on the runtime's transaction layer (`shoal_runtime::transaction`).

use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::dispatch::Route;
use shoal_commands::{args, errors, CommandSpec};
use shoal_resp::Frame;
use shoal_runtime::transaction::{watch_holds, Logged, Planned};
use shoal_runtime::watch::WatchFlag;

use crate::connection::Conn;
use crate::node::Node;
use crate::server_commands::{self, After};

/// Commands that run at once inside MULTI instead of being queued.
pub const NOT_QUEUED: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];

/// A command queued between MULTI and EXEC.
pub struct Queued {
    pub spec: &'static CommandSpec,
    pub route: Route,
    pub args: Vec<Bytes>,
}

/// A connection inside MULTI.
#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<Queued>,
    /// Bytes of arguments queued, bounded by `client-query-buffer-limit`.
    pub queued_bytes: usize,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub errored: bool,
}

/// A connection's watched keys.
pub struct WatchState {
    flag: WatchFlag,
    keys: Vec<(usize, Bytes)>,
    /// Per key, when it expires (it existed with a TTL when watched).
    deadlines: Vec<Option<u64>>,
}

impl MultiState {
    /// Queues a command; false when the queue would pass `limit` bytes.
    pub fn queue(&mut self, spec: &'static CommandSpec, route: Route, args: Vec<Bytes>, limit: usize) -> bool {
        self.queued_bytes += args.iter().map(|a| a.len()).sum::<usize>();
        self.queued.push(Queued { spec, route, args });
        self.queued_bytes <= limit
    }
}

pub fn multi(conn: &mut Conn) -> Frame {
    if conn.multi.is_some() {
        return errors::error("ERR MULTI calls can not be nested");
    }
    conn.multi = Some(MultiState::default());
    conn.client.multi.set(0);
    conn.client.note_queued(0);
    args::ok()
}

pub fn discard(node: &Rc<Node>, conn: &mut Conn) -> Frame {
    if conn.multi.is_none() {
        return errors::error("ERR DISCARD without MULTI");
    }
    leave(node, conn);
    args::ok()
}

pub async fn watch(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    if conn.multi.is_some() {
        return errors::error("ERR WATCH inside MULTI is not allowed");
    }
    let db = conn.db;
    let state = conn.watch.get_or_insert_with(|| WatchState { flag: WatchFlag::default(), keys: Vec::new(), deadlines: Vec::new() });
    let fresh: Vec<Bytes> = {
        let mut fresh: Vec<Bytes> = Vec::new();
        for key in &args[1..] {
            if !state.keys.iter().any(|(d, k)| *d == db && k == key) && !fresh.contains(key) {
                fresh.push(key.clone());
            }
        }
        fresh
    };
    let deadlines = node.core.watch(conn.client.id, &state.flag, db, &fresh).await;
    state.keys.extend(fresh.into_iter().map(|key| (db, key)));
    state.deadlines.extend(deadlines);
    args::ok()
}

pub fn unwatch(node: &Rc<Node>, conn: &mut Conn) -> Frame {
    forget_watch(node, conn);
    args::ok()
}

/// Leaves MULTI (if in it) and forgets the watched keys: DISCARD, RESET, disconnect.
pub fn leave(node: &Rc<Node>, conn: &mut Conn) {
    conn.multi = None;
    conn.client.multi.set(-1);
    conn.client.note_queued(0);
    forget_watch(node, conn);
}

fn forget_watch(node: &Rc<Node>, conn: &mut Conn) {
    if let Some(state) = conn.watch.take() {
        node.core.unwatch(conn.client.id, state.keys);
    }
}

/// The one core that owns every queued command's keys and every watched key, if there is
/// one and every queued command is a single-core one.
fn one_core(node: &Rc<Node>, queued: &[Queued], watched: &[(usize, Bytes)]) -> Option<usize> {
    let mut target = None;
    let mut agree = |core: usize| match target {
        None => {
            target = Some(core);
            true
        }
        Some(t) => t == core,
    };
    for q in queued {
        match q.route {
            Route::Single(None) => {}
            Route::Single(Some(core)) if agree(core) => {}
            _ => return None,
        }
    }
    for (_, key) in watched {
        if !agree(shoal_store::slot::key_shard(key, node.core.shard_count)) {
            return None;
        }
    }
    Some(target.unwrap_or(node.core.id))
}

/// Whether every queued command names keys and the keys and watched keys are on this core
/// and exactly one other (a cheap look before `exec_with_one_peer` plans anything).
fn one_peer(node: &Rc<Node>, queued: &[Queued], watched: &[(usize, Bytes)]) -> bool {
    let own = node.core.id;
    let (mut here, mut peer) = (false, None);
    let routes = queued.iter().map(|q| match q.route {
        Route::Single(Some(core)) => Some(core),
        _ => None,
    });
    let watched = watched.iter().map(|(_, key)| Some(shoal_store::slot::key_shard(key, node.core.shard_count)));
    for core in routes.chain(watched) {
        match core {
            None => return false,
            Some(core) if core == own => here = true,
            Some(core) if peer.is_none_or(|peer| peer == core) => peer = Some(core),
            Some(_) => return false,
        }
    }
    here && peer.is_some()
}

/// Shows MONITOR the commands an EXEC ran, as they ran (EXEC itself follows them, fed as
/// the connection command it is).
fn feed_monitors<'a>(node: &Rc<Node>, conn: &Conn, cmds: impl IntoIterator<Item = (&'static CommandSpec, &'a [Bytes])>) {
    if node.core.monitored() {
        for (spec, args) in cmds {
            node.core.feed_monitors(conn.db, &conn.client.addr, spec, args);
        }
    }
}

/// Cluster mode: EXEC's redirection again on the core of its keys, which the transaction
/// holds now (see `cluster::guard`).
async fn exec_guard_held(node: &Rc<Node>, flags: Option<u8>, queued: &[Queued]) -> Option<Frame> {
    let flags = flags?;
    let first = queued.iter().find_map(|q| crate::cluster::query_keys(q.spec, &q.args).0.first().map(|key| Bytes::copy_from_slice(key)))?;
    let cmds: Vec<(&'static CommandSpec, Vec<Bytes>)> = queued.iter().map(|q| (q.spec, q.args.clone())).collect();
    let core = shoal_store::slot::key_shard(&first, node.core.shard_count);
    node.core.call_on(core, move |core| core.with_shard(|shard| crate::cluster::exec_guard(&cmds, &shard.dbs[0], flags))).await
}

/// The WATCH check of a transaction path that runs it where every lock is held.
fn watch_check(watch: &Option<WatchState>) -> Option<shoal_runtime::transaction::WatchCheck> {
    watch.as_ref().map(|state| {
        let (flag, deadlines) = (state.flag.clone(), state.deadlines.clone());
        Box::new(move || watch_holds(&flag, &deadlines, shoal_runtime::now_ms())) as shoal_runtime::transaction::WatchCheck
    })
}

/// EXEC: runs the queued commands as one transaction, or answers why not.
pub async fn exec(node: &Rc<Node>, conn: &mut Conn) -> (Frame, After) {
    let Some(multi) = conn.multi.take() else {
        return (errors::error("ERR EXEC without MULTI"), After::Continue);
    };
    conn.client.multi.set(-1);
    conn.client.note_queued(0);
    let watch = conn.watch.take();
    let forget = |conn: &Conn, watch: Option<WatchState>| {
        if let Some(state) = watch {
            node.core.unwatch(conn.client.id, state.keys);
        }
    };
    // Cluster mode: the queue's keys must be one slot this node serves (Redis checks EXEC's
    // queue as one request, and discards the transaction when it redirects).
    // The same check again where the queue runs, in the same step (see `cluster::guard`).
    let mut cluster_guard = None;
    if crate::cluster::enabled() && conn.master_link.is_none() {
        let asking = if conn.asking { crate::cluster::ASKING } else { 0 };
        let readonly = if conn.cluster_readonly { crate::cluster::READONLY } else { 0 };
        cluster_guard = Some(crate::cluster::GUARDED | asking | readonly);
        if let Some(refusal) = crate::connection::cluster_exec_refusal(node, conn, &multi.queued).await {
            forget(conn, watch);
            node.core.stats.borrow_mut().record_rejected(Some("exec"), &refusal);
            return (refusal, After::Continue);
        }
    }
    // As Redis's processCommand: EXEC of a queue that may grow memory is refused while memory
    // is over `maxmemory` and nothing can be evicted, and the transaction is discarded.
    if crate::evict::limited()
        && multi.queued.iter().any(|q| crate::evict::denies_oom(q.spec, &q.args))
        && crate::evict::perform_evictions(node) == crate::evict::State::Fail
    {
        forget(conn, watch);
        let refusal = errors::error(&format!("EXECABORT Transaction discarded because of: {}", crate::evict::OOM));
        node.core.stats.borrow_mut().record_rejected(Some("exec"), &refusal);
        return (refusal, After::Continue);
    }
    if multi.errored {
        forget(conn, watch);
        return (errors::error("EXECABORT Transaction discarded because of previous errors."), After::Continue);
    }
    let mut multi = multi;
    // HIMPORT SETs get their fields for the fieldsets as the queue before them leaves them.
    conn.fieldsets.rewrite_queue(multi.queued.iter_mut().map(|q| (q.spec, &mut q.args)));
    let watched = watch.as_ref().map(|state| state.keys.clone()).unwrap_or_default();
    // A tracking client's reads are remembered before they run, confirmed after.
    let _reads = if crate::tracking::reads_tracked(conn) {
        crate::tracking::PendingReads::register(node, conn.client.id, crate::tracking::reads(multi.queued.iter().map(|q| (q.spec, &q.args[..]))))
    } else {
        None
    };
    // The fast path: every command and watched key on one core (keyless commands such as
    // PING run anywhere), nothing locked there. On that core the WATCH check and the
    // commands run without yielding, so nothing can come between; from another core the
    // whole EXEC travels there as one message (hash-tagged keys make this the common case).
    if let Some(target) = one_core(node, &multi.queued, &watched) {
        let cmds: Vec<(&'static CommandSpec, Vec<Bytes>)> = multi.queued.iter().map(|queued| (queued.spec, queued.args.clone())).collect();
        let check = watch.as_ref().map(|state| (state.flag.clone(), state.deadlines.clone()));
        let (db, proto, client) = (conn.db, conn.proto, conn.client.id);
        // Redirected (a Frame::Error) or a watched key changed (nil) answers for the run.
        let run = move |core: &Rc<shoal_runtime::Core>| -> Option<Result<Vec<Frame>, Frame>> {
            core.run_local_now(db, proto, &cmds, client, |shard| {
                if let Some(refusal) = cluster_guard.and_then(|flags| crate::cluster::exec_guard(&cmds, &shard.dbs[0], flags)) {
                    return Some(refusal);
                }
                let (flag, deadlines) = check.as_ref()?;
                (!watch_holds(flag, deadlines, shoal_runtime::now_ms())).then_some(Frame::NullArray)
            })
        };
        let outcome = if target == node.core.id { run(&node.core) } else { node.core.call_on(target, run).await };
        if let Some(outcome) = outcome {
            forget(conn, watch);
            return match outcome {
                Ok(replies) => {
                    feed_monitors(node, conn, multi.queued.iter().map(|q| (q.spec, q.args.as_slice())));
                    (Frame::Array(replies), After::Continue)
                }
                Err(answer) => {
                    if matches!(answer, Frame::Error(_)) {
                        node.core.stats.borrow_mut().record_rejected(Some("exec"), &answer);
                    }
                    (answer, After::Continue)
                }
            };
        }
    }
    // Keys on this core and one other: one message and its reply (see `exec_with_one_peer`).
    // Keyed single-core commands over more cores: passed from core to core (see
    // `exec_chained`). Never in cluster mode, where a transaction's keys are one slot's
    // (WATCH aside): the general path below checks the slot again once it holds the keys.
    if cluster_guard.is_none() {
        let cmds: Vec<_> = multi.queued.iter().map(|q| (q.spec, &q.route, q.args.as_slice())).collect();
        // Boxed: their state stays out of every EXEC's future.
        let mut outcome = None;
        if one_peer(node, &multi.queued, &watched) {
            outcome = Box::pin(node.core.exec_with_one_peer(conn.db, conn.proto, &cmds, &watched, watch_check(&watch), conn.client.id)).await;
        }
        if outcome.is_none() {
            outcome = Box::pin(node.core.exec_chained(conn.db, conn.proto, &cmds, &watched, watch_check(&watch), conn.client.id)).await;
        }
        if let Some(outcome) = outcome {
            if outcome.is_some() {
                feed_monitors(node, conn, multi.queued.iter().map(|q| (q.spec, q.args.as_slice())));
            }
            forget(conn, watch);
            return (outcome.map_or(Frame::NullArray, Frame::Array), After::Continue);
        }
    }
    // The database of each command: a queued SELECT changes it for the ones after it.
    let databases = node.config.borrow().databases as i64;
    let mut db = conn.db;
    let mut dbs = Vec::with_capacity(multi.queued.len());
    for queued in &multi.queued {
        dbs.push(db);
        if queued.spec.name == "select" {
            if let Ok(index) = args::parse_i64(&queued.args[1]) {
                if (0..databases).contains(&index) {
                    db = index as usize;
                }
            }
        }
    }
    let plan = multi.queued.iter().zip(&dbs).map(|(queued, &db)| Planned { db, spec: queued.spec, route: &queued.route, args: &queued.args });
    let mut tx = node.core.begin(plan, &watched).await.for_client(conn.client.id);
    if let Some(refusal) = exec_guard_held(node, cluster_guard, &multi.queued).await {
        tx.end();
        forget(conn, watch);
        node.core.stats.borrow_mut().record_rejected(Some("exec"), &refusal);
        return (refusal, After::Continue);
    }
    if let Some(state) = &watch {
        if !watch_holds(&state.flag, &state.deadlines, shoal_runtime::now_ms()) {
            tx.end();
            forget(conn, watch);
            return (Frame::NullArray, After::Continue);
        }
    }
    let mut replies = Vec::with_capacity(multi.queued.len());
    let mut after = After::Continue;
    // What the append-only log records of this EXEC: its writes, as one body.
    let logging = shoal_runtime::aof::LOG.is_active();
    let mut writes = Vec::new();
    conn.in_exec = true;
    let mut queued = multi.queued.into_iter().peekable();
    while let Some(Queued { spec, route, args }) = queued.next() {
        match route {
            // MIGRATE holds its keys: here the EXEC holds them already.
            Route::Connection if spec.name == "migrate" => {
                tx.publish_raised().await;
                let (frame, logged) = crate::migrate::migrate_in(node, conn, &mut tx, &args).await;
                writes.extend(logged);
                feed_monitors(node, conn, [(spec, args.as_slice())]);
                replies.push(frame);
            }
            Route::Connection => {
                // A script or PUBLISH sends as it runs: the events before it go first.
                tx.publish_raised().await;
                // Boxed: EXEC is itself a connection command.
                let (frame, then) = Box::pin(server_commands::run(node, conn, spec, args)).await;
                if matches!(then, After::Close) {
                    after = After::Close;
                }
                // A script's writes belong in the body, between the commands around it.
                writes.extend(shoal_runtime::script::take_exec_script_writes());
                replies.push(frame.unwrap_or_else(args::ok));
            }
            // PING after a SUBSCRIBE of this EXEC answers in Pub/Sub form, as Redis's PING
            // looks at the client's mode when it runs.
            Route::Single(_) if spec.name == "ping" && crate::pubsub::subscribed_ping(conn, &args).is_some() => {
                replies.push(crate::pubsub::subscribed_ping(conn, &args).expect("checked"));
                feed_monitors(node, conn, [(spec, args.as_slice())]);
            }
            Route::Single(shard) => {
                // A run of single-core commands goes out as one hop per core.
                let mut run = vec![(spec, Route::Single(shard), args)];
                while let Some(next) = queued.next_if(|q| matches!(q.route, Route::Single(_)) && !(q.spec.name == "ping" && crate::pubsub::subscribed(conn))) {
                    run.push((next.spec, next.route, next.args));
                }
                let kept: Vec<_> =
                    if logging || node.core.monitored() { run.iter().map(|(spec, _, args)| (*spec, args.clone())).collect() } else { Vec::new() };
                let last = queued.peek().is_none();
                let frames = tx.run_single(conn.db, conn.proto, run, last).await;
                feed_monitors(node, conn, kept.iter().map(|(spec, args)| (*spec, args.as_slice())));
                let kept = if logging { kept } else { Vec::new() };
                for ((spec, args), frame) in kept.into_iter().zip(&frames) {
                    writes.push(Logged::Command { db: conn.db, spec, args, reply: frame.clone() });
                }
                replies.extend(frames);
            }
            route => {
                let kept = (logging || node.core.monitored()).then(|| args.clone());
                let frame = tx.run(conn.db, conn.proto, spec, route, args).await;
                feed_monitors(node, conn, kept.iter().map(|args| (spec, args.as_slice())));
                let kept = kept.filter(|_| logging);
                if let Some(args) = kept {
                    writes.push(Logged::Command { db: conn.db, spec, args, reply: frame.clone() });
                }
                replies.push(frame);
            }
        }
    }
    conn.in_exec = false;
    tx.end_logged(writes).await;
    forget(conn, watch);
    (Frame::Array(replies), after)
}

//! Cluster mode (`cluster-enabled yes`): the node speaks Redis Cluster.
//!
//! - [`state`]: what the node knows (nodes, slot owners, epochs) and `nodes.conf`.
//! - [`command`]: CLUSTER and its subcommands, READONLY, READWRITE, ASKING.
//! - [`bus`]: the cluster bus (core 0): MEET, PING/PONG with gossip, FAIL, PUBLISH.
//! - Here: the process-wide state, the per-core views and the redirection every command
//!   with keys goes through ([`refusal`], Redis's `getNodeByQuery`).
//!
//! Slots and cores are two levels: the cluster gives this node some of the 16384 slots,
//! and inside the node every slot still lives on core `slot mod N`. A key this node does
//! not serve is answered with MOVED (or ASK, CLUSTERDOWN, CROSSSLOT, TRYAGAIN) before it
//! is routed to any core.

pub mod bus;
pub mod command;
pub mod state;

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use shoal_resp::Frame;

use state::{SharedView, State, View, NO_OWNER};

/// The cluster of this process, once cluster mode starts.
struct Cluster {
    state: Mutex<State>,
    /// Bumped with every published view.
    generation: AtomicU64,
    view: Mutex<SharedView>,
    path: PathBuf,
    /// `cluster-require-full-coverage`, kept beside the state for `update_state`.
    full_coverage: std::sync::atomic::AtomicBool,
    /// The nodes.conf lock: held for the life of the process.
    _lock: std::fs::File,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

thread_local! {
    /// This core's copy of the newest view it has seen.
    static VIEW: RefCell<Option<SharedView>> = const { RefCell::new(None) };
}

/// Whether cluster mode is on.
pub fn enabled() -> bool {
    CLUSTER.get().is_some()
}

/// Starts cluster mode: reads (or creates) `cluster-config-file` in the working directory,
/// locked against a second server using it. Before the cores start.
pub fn init(config: &shoal_config::Config) -> Result<(), String> {
    if config.cluster_port == 0 && config.port > 55535 {
        return Err("Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less.".to_owned());
    }
    let path = PathBuf::from(&config.cluster_config_file);
    let now = shoal_runtime::now_ms();
    let lock = lock_file(&path)?;
    let mut state = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => State::parse(&text, now)?,
        Ok(_) => State::fresh(now),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::fresh(now),
        Err(e) => return Err(format!("Can't read the cluster config file {}: {e}", path.display())),
    };
    let me = state.me_mut();
    me.port = announced_port(config);
    me.cport = announced_bus_port(config);
    if !config.cluster_announce_ip.is_empty() {
        me.ip = config.cluster_announce_ip.clone();
    }
    state.update_state(config.cluster_require_full_coverage);
    state.save(&path).map_err(|e| format!("Can't save the cluster config file {}: {e}", path.display()))?;
    tracing::info!("Node configuration loaded, I'm {}", state.myself);
    let view = Arc::new(state.view(1));
    let cluster = Cluster {
        state: Mutex::new(state),
        generation: AtomicU64::new(1),
        view: Mutex::new(view),
        path,
        full_coverage: config.cluster_require_full_coverage.into(),
        _lock: lock,
    };
    // Messages travel over the bus (to every node, or a shard's nodes), not the stream.
    shoal_runtime::aof::publish_through_replication(false);
    CLUSTER.set(cluster).map_err(|_| "cluster mode started twice".to_owned())?;
    shoal_runtime::set_guard(guard, blocked_redirect, &self::cluster().generation);
    Ok(())
}

/// Redis refuses a config file another node holds (`clusterLockConfig`).
fn lock_file(path: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("Can't open {} in order to acquire a lock: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "Sorry, the cluster configuration file {} is already used by a different Redis Cluster node. Please make sure that different nodes use different cluster configuration files.",
            path.display()
        ));
    }
    Ok(file)
}

/// The client port the node announces.
pub fn announced_port(config: &shoal_config::Config) -> u16 {
    if config.cluster_announce_port != 0 {
        config.cluster_announce_port as u16
    } else {
        config.port
    }
}

/// The port the bus listens on (`cluster-port`, or the client port + 10000).
pub fn bus_port(config: &shoal_config::Config) -> u16 {
    if config.cluster_port != 0 {
        config.cluster_port as u16
    } else {
        config.port.wrapping_add(10000)
    }
}

/// The port the node announces for its bus.
pub fn announced_bus_port(config: &shoal_config::Config) -> u16 {
    if config.cluster_announce_bus_port != 0 {
        config.cluster_announce_bus_port as u16
    } else {
        bus_port(config)
    }
}

fn cluster() -> &'static Cluster {
    CLUSTER.get().expect("cluster mode is on")
}

/// Runs `change` on the state, then publishes the new view and, if the change asks
/// (`State::dirty`), saves the file.
pub fn with_state<T>(change: impl FnOnce(&mut State) -> T) -> T {
    let cluster = cluster();
    let mut state = lock(cluster);
    let result = change(&mut state);
    // Most changes (a PING's timings) leave slots, roles and failures alone: only the others
    // recompute the state and the view (16384 slots each).
    if state.dirty || std::mem::take(&mut state.recheck) {
        state.update_state(cluster.full_coverage.load(Ordering::Relaxed));
        publish(cluster, &state);
    }
    if state.dirty {
        if let Err(e) = state.save(&cluster.path) {
            tracing::warn!("Could not save the cluster config file {}: {e}", cluster.path.display());
        }
    }
    result
}

/// Reads the state without changing it.
pub fn read_state<T>(read: impl FnOnce(&State) -> T) -> T {
    read(&lock(cluster()))
}

fn lock(cluster: &Cluster) -> MutexGuard<'_, State> {
    cluster.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `cluster-require-full-coverage` changed (CONFIG SET).
pub fn set_full_coverage(on: bool) {
    if let Some(cluster) = CLUSTER.get() {
        cluster.full_coverage.store(on, Ordering::Relaxed);
        with_state(|s| s.recheck = true);
    }
}

/// Publishes a view of `state` if what the data path reads changed.
fn publish(cluster: &Cluster, state: &State) {
    let mut current = cluster.view.lock().unwrap_or_else(|p| p.into_inner());
    let next = state.view(current.generation + 1);
    if same_view(&current, &next) {
        return;
    }
    *current = Arc::new(next);
    cluster.generation.store(current.generation, Ordering::Release);
}

fn same_view(a: &View, b: &View) -> bool {
    a.owners == b.owners
        && a.endpoints == b.endpoints
        && a.myself == b.myself
        && a.my_master == b.my_master
        && a.migrating == b.migrating
        && a.importing == b.importing
        && a.ok == b.ok
}

/// This core's view, refreshed if a newer one was published.
pub fn view() -> SharedView {
    let cluster = cluster();
    let generation = cluster.generation.load(Ordering::Acquire);
    VIEW.with(|cached| {
        let mut cached = cached.borrow_mut();
        match cached.as_ref() {
            Some(view) if view.generation == generation => view.clone(),
            _ => {
                let view = cluster.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
                *cached = Some(view.clone());
                view
            }
        }
    })
}

/// The common case, checked without allocating: every key in one slot this node serves,
/// that slot not open, the cluster up. False means "ask [`refusal`]", not "refused".
pub fn served_here<'a>(mut keys: impl Iterator<Item = &'a [u8]>) -> bool {
    let Some(first) = keys.next() else { return true };
    let slot = shoal_store::slot::key_slot(first);
    if !keys.all(|key| shoal_store::slot::key_slot(key) == slot) {
        return false;
    }
    let generation = cluster().generation.load(Ordering::Acquire);
    VIEW.with(|cached| {
        let cached = cached.borrow();
        let Some(view) = cached.as_ref().filter(|view| view.generation == generation) else { return false };
        view.ok
            && view.owners[slot as usize] == view.myself
            && (view.migrating.is_empty() || !view.migrating.contains_key(&slot))
            && (view.importing.is_empty() || !view.importing.contains_key(&slot))
    })
}

/// [`shoal_runtime::Cmd::guard`]'s flags in cluster mode: checked again where it runs
/// ([`guard`]), with the connection's ASKING (for this command) and READONLY.
pub const GUARDED: u8 = 1;
pub const ASKING: u8 = 2;
pub const READONLY: u8 = 4;
/// The command's slot was open when it was read: its answer depends on which keys exist,
/// so it is checked again in any case, not only when the view changed since.
pub const OPEN: u8 = 8;

/// The generation of the published view (0 outside cluster mode): a command read under one
/// generation and run under the same needs no second look unless its slot was open.
pub fn generation() -> u64 {
    CLUSTER.get().map_or(0, |cluster| cluster.generation.load(Ordering::Acquire))
}

/// The redirection again, on the core that owns the command's keys and in the same step as
/// the command (the runtime's [`shoal_runtime::Guard`]). The check when the request was read
/// may be stale by then: the command may have waited for the locks of a MIGRATE that took
/// its key to the target, or behind the commands before it in its pipeline. Run anyway, it
/// would create the key again here, in a slot that is leaving: a write acknowledged and
/// lost. Redis, single-threaded, checks and runs in one step; so does this. All of a
/// command's keys are in one slot, so on this core: their presence is known here.
pub fn guard(spec: &'static shoal_commands::CommandSpec, args: &[Bytes], db: &shoal_store::db::Db, flags: u8) -> Option<Frame> {
    if spec.movable_keys.is_none() && served_here(spec.keys.positions(args.len()).map(|i| &args[i][..])) {
        return None;
    }
    let (keys, shard_pubsub) = query_keys(spec, args);
    recheck(keys, spec.is_write(), shard_pubsub, db, flags)
}

/// Redis's `clusterRedirectBlockedClientIfNeeded`: a client blocked on keys (BLPOP, XREAD
/// BLOCK, ...) whose slot this node no longer serves, nor imports, is unblocked with MOVED
/// (CLUSTERDOWN when the slot has no owner, or the cluster is down: a write that would wake
/// it may never come). Asked when the client blocks and whenever the view changes
/// (`shoal_runtime::Core::guard_changed`, from each core's cron).
pub fn blocked_redirect(spec: &'static shoal_commands::CommandSpec, args: &[Bytes], flags: u8) -> Option<Frame> {
    let view = view();
    if !view.ok {
        return Some(error("CLUSTERDOWN The cluster is down"));
    }
    // Every key is in one slot: the first tells.
    let first = shoal_commands::dispatch::keys(spec, args).next()?;
    let slot = shoal_store::slot::key_slot(first);
    let owner = view.owners[slot as usize];
    let replica_read = flags & READONLY != 0 && !spec.is_write() && view.my_master.is_some_and(|master| master == owner);
    if owner == view.myself || replica_read || view.importing.contains_key(&slot) {
        return None;
    }
    if owner == NO_OWNER {
        return Some(error("CLUSTERDOWN Hash slot not served"));
    }
    Some(redirect("MOVED", slot, &view.endpoints[owner as usize]))
}

/// EXEC's redirection again, on the core of its keys, with nothing else running there
/// (see [`guard`]).
pub fn exec_guard(cmds: &[(&'static shoal_commands::CommandSpec, Vec<Bytes>)], db: &shoal_store::db::Db, flags: u8) -> Option<Frame> {
    let (keys, shard_pubsub, write) = queue_keys(cmds.iter().map(|(spec, args)| (*spec, &args[..])));
    recheck(keys, write, shard_pubsub, db, flags)
}

/// The keys EXEC's queue is checked on, as one request: every command's (see
/// [`query_keys`]), whether any are shard channels, and whether any command writes.
pub fn queue_keys<'a>(cmds: impl Iterator<Item = (&'static shoal_commands::CommandSpec, &'a [Bytes])>) -> (Vec<&'a [u8]>, bool, bool) {
    let (mut keys, mut shard_pubsub, mut write) = (Vec::new(), false, false);
    for (spec, args) in cmds {
        let (more, pubsub) = query_keys(spec, args);
        keys.extend(more);
        shard_pubsub |= pubsub;
        write |= spec.is_write();
    }
    (keys, shard_pubsub, write)
}

fn recheck(keys: Vec<&[u8]>, write: bool, shard_pubsub: bool, db: &shoal_store::db::Db, flags: u8) -> Option<Frame> {
    let query = Query { keys, write, shard_pubsub, migrate: false, asking: flags & ASKING != 0, readonly: flags & READONLY != 0 };
    let (reads_when_down, pubsub_when_down) = {
        let node = crate::node::current();
        let config = node.config.borrow();
        (config.cluster_allow_reads_when_down, config.cluster_allow_pubsubshard_when_down)
    };
    refusal(&query, reads_when_down, pubsub_when_down, &mut |key| holds(db, key))
}

/// What a request asks of the cluster check.
pub struct Query<'a> {
    /// Its keys (and, for sharded Pub/Sub, its channels), in order.
    pub keys: Vec<&'a [u8]>,
    pub write: bool,
    /// SSUBSCRIBE, SPUBLISH, ...: served by replicas and when the cluster is down (see
    /// `cluster-allow-pubsubshard-when-down`).
    pub shard_pubsub: bool,
    /// MIGRATE works on this node's keys while a slot is open.
    pub migrate: bool,
    /// The connection sent ASKING before this command.
    pub asking: bool,
    /// The connection sent READONLY.
    pub readonly: bool,
}

/// Redis's `getNodeByQuery` and `clusterRedirectClient`: None when this node serves the
/// request, else the error (MOVED, ASK, CROSSSLOT, CLUSTERDOWN, TRYAGAIN). `exists` says
/// whether a key is here, asked only while its slot is migrating or importing.
pub fn refusal(query: &Query, allow_reads_when_down: bool, allow_pubsub_when_down: bool, exists: &mut dyn FnMut(&[u8]) -> bool) -> Option<Frame> {
    let first = query.keys.first()?;
    let view = view();
    let slot = shoal_store::slot::key_slot(first);
    let mut multiple_keys = false;
    for key in &query.keys[1..] {
        if key != first {
            if shoal_store::slot::key_slot(key) != slot {
                return Some(error("CROSSSLOT Keys in request don't hash to the same slot"));
            }
            multiple_keys = true;
        }
    }
    let owner = view.owners[slot as usize];
    if owner == NO_OWNER {
        return Some(error("CLUSTERDOWN Hash slot not served"));
    }
    let migrating = if owner == view.myself { view.migrating.get(&slot).copied() } else { None };
    let importing = if migrating.is_none() { view.importing.contains_key(&slot) } else { false };
    if !view.ok {
        if query.shard_pubsub {
            if !allow_pubsub_when_down {
                return Some(error("CLUSTERDOWN The cluster is down"));
            }
        } else if !allow_reads_when_down {
            return Some(error("CLUSTERDOWN The cluster is down"));
        } else if query.write {
            return Some(error("CLUSTERDOWN The cluster is down and only accepts read commands"));
        }
    }
    if (migrating.is_some() || importing) && query.migrate {
        return None;
    }
    if migrating.is_some() || importing {
        let missing = query.keys.iter().any(|key| !exists(key));
        if let Some(target) = migrating {
            if missing {
                if multiple_keys {
                    return Some(error("TRYAGAIN Multiple keys request during rehashing of slot"));
                }
                return Some(redirect("ASK", slot, &view.endpoints[target as usize]));
            }
        } else if query.asking {
            if multiple_keys && missing {
                return Some(error("TRYAGAIN Multiple keys request during rehashing of slot"));
            }
            return None;
        }
    }
    if owner == view.myself {
        return None;
    }
    // A replica answers reads for its master's slots to READONLY clients.
    if (query.readonly || query.shard_pubsub) && !query.write && view.my_master == Some(owner) {
        return None;
    }
    Some(redirect("MOVED", slot, &view.endpoints[owner as usize]))
}

fn error(text: &str) -> Frame {
    Frame::Error(Bytes::copy_from_slice(text.as_bytes()))
}

fn redirect(kind: &str, slot: u16, endpoint: &[u8]) -> Frame {
    let mut text = format!("{kind} {slot} ").into_bytes();
    text.extend_from_slice(endpoint);
    Frame::Error(Bytes::from(text))
}

/// The keys the cluster check looks at: the command's keys, or the shard channels of
/// SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH (with whether they are those).
pub fn query_keys<'a>(spec: &shoal_commands::CommandSpec, args: &'a [Bytes]) -> (Vec<&'a [u8]>, bool) {
    match spec.name {
        "ssubscribe" | "sunsubscribe" => (args[1..].iter().map(|a| a.as_ref()).collect(), true),
        "spublish" => (args.get(1).map(|a| a.as_ref()).into_iter().collect(), true),
        _ => (shoal_commands::dispatch::keys(spec, args).map(|a| a.as_ref()).collect(), false),
    }
}

/// Whether the slot of `key` is open here (migrating from this node, or importing): only
/// then does the redirection depend on which keys exist.
pub fn slot_is_open(key: &[u8]) -> bool {
    let view = view();
    let slot = shoal_store::slot::key_slot(key);
    (view.owners[slot as usize] == view.myself && view.migrating.contains_key(&slot)) || view.importing.contains_key(&slot)
}

/// Whether each key is in database 0 (and not expired), asked of the cores that own them.
pub async fn presence(node: &std::rc::Rc<crate::node::Node>, keys: Vec<Bytes>) -> Vec<bool> {
    let mut present = Vec::with_capacity(keys.len());
    for key in keys {
        let core = shoal_store::slot::key_shard(&key, node.core.shard_count);
        present.push(node.core.call_on(core, move |core| core.with_shard(|shard| holds(&shard.dbs[0], &key))).await);
    }
    present
}

/// Whether `db` holds `key`, not expired.
pub fn holds(db: &shoal_store::db::Db, key: &[u8]) -> bool {
    let now = shoal_runtime::now_ms();
    db.holds(key) && db.expire_at(key).is_none_or(|at| at > now)
}

/// What Redis refuses in cluster mode because there is one database: MOVE, SWAPDB, and
/// COPY to another database.
pub fn mode_refusal(spec: &shoal_commands::CommandSpec, args: &[Bytes]) -> Option<Frame> {
    match spec.name {
        "move" => Some(error("ERR MOVE is not allowed in cluster mode")),
        "swapdb" => Some(error("ERR SWAPDB is not allowed in cluster mode")),
        "copy" => {
            let db = args.iter().position(|a| a.eq_ignore_ascii_case(b"db")).and_then(|i| args.get(i + 1))?;
            let other = std::str::from_utf8(db).ok().and_then(|d| d.parse::<i64>().ok()).is_some_and(|d| d != 0);
            other.then(|| error("ERR Copying to another database is not allowed in cluster mode"))
        }
        _ => None,
    }
}

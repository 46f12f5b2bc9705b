//! What the server keeps on each core: its configuration copy, its clients, its listeners,
//! and the per-core main that accepts connections until shutdown.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use shoal_commands::Settings;
use shoal_config::Config;
use shoal_runtime::{Core, LocalEvent};

use crate::client::ClientInfo;

/// The server's state on one core.
pub struct Node {
    pub core: Rc<Core>,
    pub config: RefCell<Config>,
    /// Set when this core stops accepting and its connections should finish.
    pub shutdown: LocalEvent,
    /// This core's connections by client id.
    pub clients: RefCell<BTreeMap<u64, Rc<ClientInfo>>>,
    pub started: Instant,
    /// DEBUG SET-ACTIVE-EXPIRE: whether the cron reclaims expired keys.
    pub active_expire_enabled: Cell<bool>,
    /// CLIENT PAUSE: whether, and until when, this core's connections hold their commands.
    pub pause: crate::pause::Pause,
    /// Set to stop the current listeners (CONFIG SET port or bind replaces them).
    listeners_stop: RefCell<Rc<LocalEvent>>,
    /// CONFIG SET port/bind: this core's listeners on the new addresses, bound but not yet
    /// accepting (see [`bind_pending`]).
    pending_listeners: RefCell<Vec<TcpListener>>,
    /// Core 0 under `appendonly yes`: the append-only file's writer, awaited at shutdown so
    /// the last writes reach the disk.
    pub aof_writer: RefCell<Option<glommio::Task<()>>>,
    /// The clients that left this core lately, for SLOWLOG GET.
    pub departed: crate::slowlog_cmd::Departed,
    /// Core 0: the failed authentications (ACL LOG).
    pub acl_log: crate::acl_log::AclLog,
}

/// How long the index of keys by slot lives without a GETKEYSINSLOT.
const SLOT_KEYS_IDLE_MS: u64 = 60_000;

/// Cores whose node is installed (one server per process).
static CORES_WITH_NODE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static NODE: RefCell<Option<Rc<Node>>> = const { RefCell::new(None) };
}

/// The node of the calling core's thread.
pub fn current() -> Rc<Node> {
    NODE.with(|n| n.borrow().clone().expect("called on a core thread"))
}

/// The settings operations need, from the configuration.
pub fn settings_of(config: &Config) -> Settings {
    let limits = shoal_store::Limits {
        list_max_listpack_size: config.list_max_listpack_size,
        hash_max_listpack_entries: config.hash_max_listpack_entries,
        hash_max_listpack_value: config.hash_max_listpack_value,
        hash_min_template_entries: config.hash_min_template_entries,
        hash_max_template_entries: config.hash_max_template_entries,
        set_max_intset_entries: config.set_max_intset_entries,
        set_max_listpack_entries: config.set_max_listpack_entries,
        set_max_listpack_value: config.set_max_listpack_value,
        zset_max_listpack_entries: config.zset_max_listpack_entries,
        zset_max_listpack_value: config.zset_max_listpack_value,
        stream_node_max_bytes: config.stream_node_max_bytes,
        stream_node_max_entries: config.stream_node_max_entries,
    };
    Settings {
        proto_max_bulk_len: config.proto_max_bulk_len,
        lfu_policy: config.maxmemory_policy.as_str().contains("lfu"),
        lfu: shoal_store::db::Lfu { log_factor: config.lfu_log_factor, decay_time_min: config.lfu_decay_time },
        limits,
        hll_sparse_max_bytes: config.hll_sparse_max_bytes,
        lazyfree_lazy_user_del: config.lazyfree_lazy_user_del,
        lazyfree_lazy_user_flush: config.lazyfree_lazy_user_flush,
        lazyfree_lazy_expire: config.lazyfree_lazy_expire,
        lazyfree_lazy_server_del: config.lazyfree_lazy_server_del,
        notify_keyspace_events: shoal_commands::ctx::notify::effective(config.notify_keyspace_events.bits()),
    }
}

/// Installs `slowlog-log-slower-than` and `slowlog-max-len` in the core's slow log, and
/// `latency-monitor-threshold` in its latency monitor.
pub fn configure_slowlog(core: &Core, config: &Config) {
    core.configure_timing(config.slowlog_log_slower_than, config.slowlog_max_len, config.latency_monitor_threshold);
}

/// The per-core main: listen, accept, serve, and on shutdown drain and return.
pub async fn run_core(core: Rc<Core>, config: Config, startup: std::sync::Arc<crate::rdb_load::Startup>) {
    let node = Rc::new(Node {
        core: core.clone(),
        config: RefCell::new(config),
        shutdown: LocalEvent::default(),
        clients: RefCell::new(BTreeMap::new()),
        started: Instant::now(),
        active_expire_enabled: Cell::new(true),
        pause: crate::pause::Pause::default(),
        listeners_stop: RefCell::new(Rc::new(LocalEvent::default())),
        pending_listeners: RefCell::new(Vec::new()),
        aof_writer: RefCell::new(None),
        departed: Default::default(),
        acl_log: Default::default(),
    });
    // The socket ring first: once every core counts itself below, any core may accept.
    crate::socket::init(core.id);
    if core.shard_count == 1 {
        // With one core every key is this core's: start fetching each new request's key
        // while the reaper takes the other connections' input (database 0, where most
        // clients live; elsewhere the hint only costs a wasted fetch).
        let hinted = core.clone();
        crate::socket::set_input_prefetch(Box::new(move |input, step| {
            if let Some(key) = shoal_resp::decode::first_key(input) {
                hinted.try_with_shard(|shard| match step {
                    crate::socket::PrefetchStep::First => shard.dbs[0].prefetch_bucket(key),
                    crate::socket::PrefetchStep::Second => shard.dbs[0].prefetch_head(key),
                });
            }
        }));
    }
    NODE.with(|n| *n.borrow_mut() = Some(node.clone()));
    // Cluster mode: keys counted per slot (COUNTKEYSINSLOT, GETKEYSINSLOT), before any load.
    if crate::cluster::enabled() {
        core.with_shard(|shard| shard.dbs[0].track_slots());
    }
    crate::evict::configure(&node.config.borrow());
    configure_slowlog(&core, &node.config.borrow());
    core.tracking_set_max_keys(node.config.borrow().tracking_table_max_keys as usize);
    // `replicaof` in the configuration: a replica from its first client on.
    if let (0, Some((host, port))) = (core.id, node.config.borrow().replicaof.clone()) {
        crate::replica::become_replica_of(host, port);
    }
    // Accept nothing until every core has its node: a command may reach every core (with
    // `call_all`) as soon as any core accepts a client.
    CORES_WITH_NODE.fetch_add(1, Ordering::SeqCst);
    while CORES_WITH_NODE.load(Ordering::SeqCst) < core.shard_count {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }

    // Bind on every core, then make sure no other server shares the port before accepting.
    let bound = bind_all(&node.config.borrow());
    let bound = match bound {
        Ok(listeners) => port_alone(&core).await.map(|()| listeners),
        Err(e) => Err(e),
    };
    let listening = match bound {
        Ok(listeners) => {
            accept_on(&node, listeners);
            if core.id == 0 {
                listen_unix(&node)
            } else {
                Ok(())
            }
        }
        Err(e) => Err(e),
    };
    let listening = match listening {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("{e}");
            core.shared.exit_code.store(1, Ordering::SeqCst);
            core.shared.shutdown.store(true, Ordering::SeqCst);
            false
        }
    };
    if core.id == 0 && listening && crate::cluster::enabled() {
        if let Err(e) = crate::cluster::bus::start(&node) {
            tracing::error!("{e}");
            core.shared.exit_code.store(1, Ordering::SeqCst);
            core.shared.shutdown.store(true, Ordering::SeqCst);
        }
    }
    if core.id == 0 && listening {
        let config = node.config.borrow();
        tracing::info!(
            "Shoal {} ready to accept connections on {}:{} with {} threads",
            env!("CARGO_PKG_VERSION"),
            config.bind.join(" "),
            config.port,
            core.shard_count
        );
    }

    crate::scripting::init();
    crate::memory_stats::note_core_ready();
    // The RDB file loads while we accept: clients get LOADING meanwhile.
    if let Err(e) = crate::rdb_load::install_when_read(&core, &startup).await {
        tracing::error!("{e}");
        if core.id == 0 {
            eprintln!("{e}");
        }
        core.shared.exit_code.store(1, Ordering::SeqCst);
        core.shared.shutdown.store(true, Ordering::SeqCst);
    }
    drop(startup);
    // Loaded and accepting: a service manager may count on us now.
    if core.id == 0 && !core.shared.shutdown.load(Ordering::SeqCst) {
        crate::supervise::ready(&node.config.borrow());
    }
    // `replicaof` in the configuration: follow the master once the local data is loaded (a
    // full resynchronisation replaces it anyway).
    let replicaof = node.config.borrow().replicaof.clone();
    if let (0, Some((host, port))) = (core.id, replicaof) {
        let node = node.clone();
        glommio::spawn_local(async move {
            // Every core's keys first, and the history the file was saved at: the last core
            // to install restores it, and a PSYNC sent before would ask for a full sync.
            while crate::rdb_load::loading() && !node.shutdown.is_set() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            crate::replica::follow(&node, host, port, false).await
        })
        .detach();
    }

    // The cron: active expiry, and watching for shutdown.
    let cron_node = node.clone();
    let cron = glommio::spawn_local(async move {
        let node = cron_node;
        let core = node.core.clone();
        let mut seen_generation = 0;
        loop {
            let hz = node.config.borrow().hz.clamp(1, 500);
            let period = Duration::from_millis(1000 / hz as u64);
            glommio::timer::sleep(period).await;
            // A signal asked to stop: core 0 shuts down as `shutdown-on-sigterm` (or
            // `-sigint`) says, as SHUTDOWN with those words would, while every core serves.
            if core.id == 0 && core.shared.shutdown_requested.swap(false, Ordering::SeqCst) {
                let directive = if core.shared.shutdown_by_sigint.load(Ordering::SeqCst) { "shutdown-on-sigint" } else { "shutdown-on-sigterm" };
                let words = node.config.borrow().compat_value(directive).to_owned();
                let has = |word: &str| words.split(' ').any(|w| w == word);
                if crate::server_commands::shut_down(&node, &has).await.is_err() {
                    tracing::warn!("Error trying to save the DB, can't exit.");
                }
            }
            if core.shared.shutdown.load(Ordering::SeqCst) {
                if core.id == 0 {
                    crate::supervise::stopping(&node.config.borrow());
                }
                node.shutdown.set();
                // Connections waiting for a request wake up (see ClientInfo::kill); those in
                // the middle of one finish it first.
                for client in node.clients.borrow().values() {
                    client.kill();
                }
                return;
            }
            // As Redis, no active expiry while disabled by DEBUG or while writes are paused.
            if node.active_expire_enabled.get() && !node.pause.holds_writes() {
                shoal_runtime::cron::active_expire_cycle(&core, period / 4);
            }
            // Cluster mode: a reshard that stopped asking for keys for a minute is over;
            // the slots' key index goes, and new keys stop paying for it.
            if crate::cluster::enabled() {
                // The view changed: clients blocked here ask whether their slot is still ours.
                let generation = crate::cluster::generation();
                if generation != seen_generation {
                    seen_generation = generation;
                    core.guard_changed();
                }
                let cutoff = shoal_runtime::now_ms().saturating_sub(SLOT_KEYS_IDLE_MS);
                if core.with_shard(|shard| shard.dbs[0].forget_slot_keys_unused_since(cutoff)) {
                    tracing::debug!("Dropped the index of keys by slot (no GETKEYSINSLOT for a minute)");
                }
            }
            crate::client::enforce_idle_timeout(&node);
            crate::client::enforce_client_memory(&node);
            crate::save::cron(&node);
            crate::evict::cron(&node);
            let mut stats = core.stats.borrow_mut();
            let processed = stats.commands_processed;
            crate::alloc::return_freed_pages(processed);
            stats.ops_rate.sample(shoal_runtime::now_ms(), processed);
        }
    });

    // The cron ends at shutdown; the accept loops stop with it.
    cron.await;
    node.listeners_stop.borrow().set();
    // Let the connections finish their in-flight replies; each leaves `clients` as it ends.
    while !node.clients.borrow().is_empty() {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }

    // Drained: our connections are gone. Stay up (serving other cores' messages) until every
    // core has drained, because their last commands may still need this core's shard.
    core.shared.cores_drained.fetch_add(1, Ordering::SeqCst);
    while core.shared.cores_drained.load(Ordering::SeqCst) < core.shard_count {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // The append-only file's last writes reach the disk before the process exits.
    let writer = node.aof_writer.borrow_mut().take();
    if let Some(writer) = writer {
        writer.await;
    }
    NODE.with(|n| *n.borrow_mut() = None);
}

/// The addresses of the `bind` directive, each with whether it is optional. As in Redis, `*`
/// is every IPv4 address, `::*` every IPv6 address, and a leading `-` makes an address
/// optional: failing to bind it is not an error.
pub fn bind_addresses(config: &Config) -> std::io::Result<Vec<(std::net::SocketAddr, bool)>> {
    config
        .bind
        .iter()
        .map(|address| {
            let (optional, address) = match address.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, address.as_str()),
            };
            let ip: std::net::IpAddr = match address {
                "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
                "::*" => std::net::Ipv6Addr::UNSPECIFIED.into(),
                other => other.parse().map_err(|_| std::io::Error::other(format!("Invalid bind address '{other}'")))?,
            };
            Ok((std::net::SocketAddr::new(ip, config.port), optional))
        })
        .collect()
}

/// Checks that no other process listens on the addresses of `config` that `current` does not
/// already listen on (CONFIG SET port or bind).
pub fn probe_new_addresses(config: &Config, current: &Config) -> std::io::Result<()> {
    let existing = bind_addresses(current)?;
    for (addr, optional) in bind_addresses(config)? {
        if existing.iter().any(|(a, _)| *a == addr) {
            continue;
        }
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => drop(listener),
            Err(e) if optional && e.kind() != std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Checks, before any core starts, that no other process listens on our addresses. Every core
/// binds with SO_REUSEPORT, which would otherwise let a second server share the port
/// silently; a plain bind fails with "Address already in use" as redis-server does.
pub fn probe_bind(config: &Config) -> std::io::Result<()> {
    for (addr, optional) in bind_addresses(config)? {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => drop(listener),
            Err(e) if optional && e.kind() != std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("Could not create server TCP listening socket {addr}: {e}"))),
        }
    }
    Ok(())
}

/// Binds every `bind` address on this core (SO_REUSEPORT lets every core bind the same port).
fn bind_all(config: &Config) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for (addr, optional) in bind_addresses(config)? {
        match bind_one(addr, config.tcp_backlog) {
            Ok(listener) => listeners.push(listener),
            Err(e) if optional => tracing::debug!("skipping optional bind address {addr}: {e}"),
            Err(e) => return Err(std::io::Error::other(format!("Could not create server TCP listening socket {addr}: {e}"))),
        }
    }
    Ok(listeners)
}

/// A listening socket on `addr` for this core. SO_REUSEPORT lets every core bind the same
/// port; SO_REUSEADDR, as Redis sets it, lets a restarted server bind while connections of
/// the one before still sit in TIME_WAIT (they inherit it from this socket).
fn bind_one(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // As Redis: `::` means IPv6 only, so it does not collide with a `0.0.0.0` bind.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    // SAFETY: the descriptor is a listening TCP socket we own and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Once every core has bound the port (see [`bind_all`]): Ok when no other process listens
/// on it too (see `port_owner`). Core 0 looks, the others wait for its verdict; a core whose
/// bind failed still counts, and shuts the server down itself.
async fn port_alone(core: &Rc<Core>) -> std::io::Result<()> {
    static BOUND: AtomicUsize = AtomicUsize::new(0);
    /// 0: not looked yet; 1: alone; 2: shared, or the look failed.
    static VERDICT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    BOUND.fetch_add(1, Ordering::SeqCst);
    if core.id == 0 {
        while BOUND.load(Ordering::SeqCst) < core.shard_count && !core.shared.shutdown.load(Ordering::SeqCst) {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let config = current().config.borrow().clone();
        let addrs: Vec<std::net::SocketAddr> = if config.port == 0 { Vec::new() } else { bind_addresses(&config)?.into_iter().map(|(addr, _)| addr).collect() };
        let foreign = crate::port_owner::own_socket_inodes().and_then(|ours| crate::port_owner::foreign_listener(&addrs, &ours));
        VERDICT.store(if matches!(foreign, Ok(None)) { 1 } else { 2 }, Ordering::SeqCst);
        return match foreign {
            Ok(None) => Ok(()),
            Ok(Some(addr)) => Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("Could not create server TCP listening socket {addr}: bind: Address already in use (another server bound it at the same moment)"),
            )),
            Err(e) => Err(std::io::Error::other(format!("Could not check who else listens on port {}: {e}", config.port))),
        };
    }
    loop {
        match VERDICT.load(Ordering::SeqCst) {
            0 if !core.shared.shutdown.load(Ordering::SeqCst) => glommio::timer::sleep(Duration::from_millis(1)).await,
            1 => return Ok(()),
            _ => return Err(std::io::Error::other("not accepting: the port is shared")),
        }
    }
}

/// CONFIG SET port/bind, first step on every core: binds listeners for `config`'s addresses
/// and keeps them, not accepting yet, until [`accept_pending`] or [`drop_pending`]. Between
/// the two, the CONFIG SET looks for another server that bound the same port at the same
/// moment (SO_REUSEPORT would let both listen), as startup does (see `port_alone`).
pub fn bind_pending(node: &Rc<Node>, config: &Config) -> std::io::Result<()> {
    *node.pending_listeners.borrow_mut() = bind_all(config)?;
    Ok(())
}

/// Starts accepting on the listeners [`bind_pending`] kept; the ones from before stop.
/// Connections already accepted stay.
pub fn accept_pending(node: &Rc<Node>) {
    let listeners = std::mem::take(&mut *node.pending_listeners.borrow_mut());
    accept_on(node, listeners);
}

/// Closes the listeners [`bind_pending`] kept.
pub fn drop_pending(node: &Rc<Node>) {
    node.pending_listeners.borrow_mut().clear();
}

/// Ok when no other process listens on `config`'s addresses that `current`'s do not have
/// (run once every core holds its pending listeners: ours are told apart by inode).
pub fn new_addresses_alone(config: &Config, current: &Config) -> std::io::Result<()> {
    let existing = bind_addresses(current)?;
    let new: Vec<std::net::SocketAddr> =
        bind_addresses(config)?.into_iter().map(|(addr, _)| addr).filter(|addr| !existing.iter().any(|(a, _)| a == addr)).collect();
    match crate::port_owner::own_socket_inodes().and_then(|ours| crate::port_owner::foreign_listener(&new, &ours))? {
        None => Ok(()),
        Some(addr) => Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("another process listens on {addr} too"))),
    }
}

/// Starts accepting on `listeners`; this core's listeners from before stop accepting.
fn accept_on(node: &Rc<Node>, listeners: Vec<TcpListener>) {
    let stop = Rc::new(LocalEvent::default());
    let previous = std::mem::replace(&mut *node.listeners_stop.borrow_mut(), stop.clone());
    previous.set();
    for listener in listeners {
        glommio::spawn_local(accept_loop(node.clone(), listener, stop.clone())).detach();
    }
}

/// `unixsocket`, on core 0: replaces the file, binds, applies `unixsocketperm`, and hands
/// the connections accepted there to the cores in turn (a Unix socket cannot be bound once
/// per core as SO_REUSEPORT lets a TCP port be).
fn listen_unix(node: &Rc<Node>) -> std::io::Result<()> {
    let (path, perm) = {
        let config = node.config.borrow();
        (config.unixsocket.clone(), u32::from_str_radix(config.compat_value("unixsocketperm"), 8).unwrap_or(0))
    };
    if path.is_empty() {
        return Ok(());
    }
    let fail = |e: std::io::Error| std::io::Error::new(e.kind(), format!("Failed opening Unix socket: {e}"));
    let _ = std::fs::remove_file(&path);
    let listener = glommio::net::UnixListener::bind(&path).map_err(|e| fail(e.into()))?;
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(perm)).map_err(fail)?;
    }
    tracing::info!("The server is now ready to accept connections at {path}");
    let node = node.clone();
    glommio::spawn_local(async move {
        use futures::future::{select, Either};
        let mut next = 0;
        loop {
            let accepted = {
                let accept = std::pin::pin!(listener.shared_accept());
                match select(accept, node.shutdown.wait()).await {
                    Either::Left((accepted, _)) => accepted,
                    Either::Right(_) => break,
                }
            };
            let Ok(accepted) = accepted else { continue };
            let fd = std::os::unix::io::IntoRawFd::into_raw_fd(accepted);
            let core = next % node.core.shard_count;
            next += 1;
            let path = path.clone();
            node.core
                .call_on(core, move |_| {
                    // SAFETY: `fd` is a connected stream socket accepted above, whose only
                    // owner this becomes.
                    let stream = unsafe { <glommio::net::TcpStream as std::os::unix::io::FromRawFd>::from_raw_fd(fd) };
                    glommio::spawn_local(crate::connection::serve_unix(current(), stream, path)).detach();
                })
                .await;
        }
        // Redis removes the file as it exits.
        let _ = std::fs::remove_file(&path);
    })
    .detach();
    Ok(())
}

async fn accept_loop(node: Rc<Node>, listener: TcpListener, stop: Rc<LocalEvent>) {
    use futures::future::{select, Either};
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            let stopped = select(stop.wait(), node.shutdown.wait());
            match select(accept, stopped).await {
                Either::Left((accepted, _)) => accepted,
                Either::Right(_) => break,
            }
        };
        match accepted {
            Ok(stream) => glommio::spawn_local(crate::connection::serve(node.clone(), stream)).detach(),
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                continue;
            }
        };
    }
}

//! What the server knows about each connected client: the fields CLIENT LIST shows, and the
//! switches other clients flip (CLIENT KILL, the idle timeout).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use shoal_runtime::LocalEvent;

use crate::node::Node;

/// A connected client, shared between its connection task and the core's registry.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub name: RefCell<String>,
    pub lib_name: RefCell<String>,
    pub lib_ver: RefCell<String>,
    pub db: Cell<usize>,
    pub resp: Cell<u8>,
    pub created: Instant,
    /// When the client last sent something, in [`coarse_ms`] (read once per socket read, so
    /// it uses the cheap coarse clock).
    pub last_interaction: Cell<u64>,
    /// The last command's name, as CLIENT LIST's `cmd=` shows it.
    pub last_command: Cell<&'static str>,
    /// Set to make the connection close (CLIENT KILL, idle timeout, shutdown).
    pub kill: LocalEvent,
    /// Whether the client waits in a blocking command (flag `b`, CLIENT UNBLOCK).
    pub blocked: Cell<bool>,
    /// Whether the round of commands the client runs now may write (see
    /// `replication::writes_drained`).
    pub writing: Cell<bool>,
    /// CLIENT NO-EVICT ON: never evicted for `maxmemory-clients` (flag `e`).
    pub no_evict: Cell<bool>,
    /// Whether the client is in MONITOR mode (flag `O`).
    pub monitor: Cell<bool>,
    /// Its buffers, as the connection last saw them (CLIENT LIST, INFO clients).
    pub buffers: Cell<Buffers>,
    /// Commands queued since MULTI, or -1 outside MULTI (CLIENT LIST's `multi`).
    pub multi: Cell<i64>,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST's `sub`, `psub`,
    /// `ssub`; flag `P` while any).
    pub subscriptions: Cell<[usize; 3]>,
    /// Where its invalidation pushes wait, and its tracking mode (CLIENT TRACKING; flags
    /// `t`, `R`, `B`, `redir=`).
    pub outlet: RefCell<Option<Rc<shoal_runtime::tracking::Outlet>>>,
    /// Its Pub/Sub subscriber, once subscribed: a RESP2 client named as another's REDIRECT
    /// gets its invalidations there, as messages.
    pub subscriber: RefCell<Option<Rc<shoal_runtime::pubsub::Subscriber>>>,
    /// CLIENT UNBLOCK's request to the blocked client: `Some(true)` for ERROR.
    unblock: Cell<Option<bool>>,
    unblock_waker: RefCell<Option<Waker>>,
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32) -> Self {
        let now = Instant::now();
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            name: RefCell::new(String::new()),
            lib_name: RefCell::new(String::new()),
            lib_ver: RefCell::new(String::new()),
            db: Cell::new(0),
            resp: Cell::new(2),
            outlet: RefCell::new(None),
            subscriber: RefCell::new(None),
            created: now,
            last_interaction: Cell::new(coarse_ms()),
            last_command: Cell::new("NULL"),
            kill: LocalEvent::default(),
            blocked: Cell::new(false),
            writing: Cell::new(false),
            no_evict: Cell::new(false),
            monitor: Cell::new(false),
            buffers: Cell::new(Buffers::default()),
            multi: Cell::new(-1),
            subscriptions: Cell::new([0; 3]),
            unblock: Cell::new(None),
            unblock_waker: RefCell::new(None),
        }
    }

    /// Makes the connection close (CLIENT KILL, idle timeout, shutdown): sets `kill`, and shuts
    /// the socket's read side, so a connection waiting in a read wakes up with end-of-file.
    /// The connection only waits on the socket while it reads, not on `kill`, which would cost
    /// a waker registration per request. Replies still go out: the write side stays open.
    /// Call it on the client's own core, while the client is registered there (its descriptor
    /// is open until it leaves the registry).
    pub fn kill(&self) {
        self.kill.set();
        // SAFETY: shutdown takes a descriptor and a flag; the descriptor is this client's
        // socket, still open (see above).
        unsafe { libc::shutdown(self.fd, libc::SHUT_RD) };
    }

    /// CLIENT UNBLOCK: ends the client's wait early. False when it is not blocked.
    pub fn request_unblock(&self, error: bool) -> bool {
        if !self.blocked.get() || self.unblock.get().is_some() {
            return false;
        }
        self.unblock.set(Some(error));
        if let Some(waker) = self.unblock_waker.borrow_mut().take() {
            waker.wake();
        }
        true
    }

    /// While blocked: completes with `error` once CLIENT UNBLOCK asks (ERROR: true).
    pub fn unblocked(&self) -> impl std::future::Future<Output = bool> + '_ {
        std::future::poll_fn(move |cx| match self.unblock.get() {
            Some(error) => Poll::Ready(error),
            None => {
                *self.unblock_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Marks the start (true) or end (false) of a blocking wait.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.set(blocked);
        self.unblock.set(None);
        self.unblock_waker.borrow_mut().take();
    }

    /// Whether the client subscribes to anything (Redis's client type PUBSUB).
    pub fn is_subscriber(&self) -> bool {
        self.subscriptions.get().iter().any(|&n| n > 0)
    }

    /// The client its invalidations go to while tracking (0: itself), or -1.
    pub fn redirect(&self) -> i64 {
        match self.outlet.borrow().as_ref().and_then(|outlet| outlet.mode()) {
            Some(mode) => mode.redirect.map_or(0, |(id, _)| id as i64),
            None => -1,
        }
    }

    /// CLIENT LIST's flags, in Redis's order: `O` monitor, `S` replica, `M` master, `P`
    /// subscribed, `x` in MULTI, `b` blocked, `t` tracking, `R` its redirection is gone, `B`
    /// broadcasting, `U` on the Unix socket, `e` not evicted, `N` none.
    fn flags(&self) -> String {
        let mut flags = String::new();
        if self.monitor.get() {
            flags.push('O');
        } else if crate::replication::is_replica(self.id) {
            flags.push('S');
        }
        if crate::replica::is_link(self.id) {
            flags.push('M');
        }
        if self.is_subscriber() {
            flags.push('P');
        }
        if self.multi.get() >= 0 {
            flags.push('x');
        }
        if self.blocked.get() {
            flags.push('b');
        }
        if let Some(outlet) = self.outlet.borrow().as_ref() {
            if let Some(mode) = outlet.mode() {
                flags.push('t');
                if outlet.broken() {
                    flags.push('R');
                }
                if mode.bcast {
                    flags.push('B');
                }
            }
        }
        // Connected through `unixsocket` (its address is the socket's path).
        if self.addr.starts_with('/') {
            flags.push('U');
        }
        if self.no_evict.get() {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }

    /// Records the query buffer: `unread` bytes not yet run (a half-read request included)
    /// in a buffer of `capacity`.
    pub fn note_input(&self, unread: usize, capacity: usize) {
        let mut buffers = self.buffers.get();
        buffers.query = unread;
        buffers.query_capacity = capacity;
        buffers.note_peak();
        self.buffers.set(buffers);
    }

    /// Records the replies waiting to be written (`pending` bytes in a buffer of `capacity`).
    pub fn note_output(&self, pending: usize, capacity: usize) {
        let mut buffers = self.buffers.get();
        buffers.output = pending;
        buffers.output_capacity = capacity;
        buffers.note_peak();
        self.buffers.set(buffers);
    }

    /// Records the bytes of the commands queued since MULTI.
    pub fn note_queued(&self, bytes: usize) {
        let mut buffers = self.buffers.get();
        buffers.queued = bytes;
        self.buffers.set(buffers);
    }

    /// The bytes of the connection's HIMPORT fieldsets now.
    pub fn note_fieldsets(&self, bytes: usize) {
        let mut buffers = self.buffers.get();
        buffers.fieldsets = bytes;
        self.buffers.set(buffers);
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order.
    pub fn describe(&self) -> String {
        let now = Instant::now();
        let idle_ms = coarse_ms().saturating_sub(self.last_interaction.get());
        let b = self.buffers.get();
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem={} rbs={} rbp={} obl=0 oll={} omem={} tot-mem={} events=r cmd={} user=default redir={} resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.borrow(),
            now.duration_since(self.created).as_secs(),
            idle_ms / 1000,
            self.flags(),
            self.db.get(),
            self.subscriptions.get()[0],
            self.subscriptions.get()[1],
            self.subscriptions.get()[2],
            self.multi.get(),
            b.query,
            b.query_capacity.saturating_sub(b.query),
            b.queued,
            b.query_capacity,
            b.peak_query,
            usize::from(b.output > 0),
            b.output,
            b.total(),
            self.last_command.get(),
            self.redirect(),
            self.resp.get(),
            self.lib_name.borrow(),
            self.lib_ver.borrow(),
        )
    }
}

/// Closes clients idle for longer than `timeout` seconds (0: never), as Redis's
/// clientsCronHandleTimeout does.
/// Per core: the memory of its evictable clients' buffers, and its biggest such client
/// (size, id); see [`enforce_client_memory`].
static CLIENT_MEMORY: std::sync::Mutex<Vec<(u64, u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Clients evicted for `maxmemory-clients` (INFO's `evicted_clients`).
pub static EVICTED_CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `maxmemory-clients` in bytes (a percentage is of `maxmemory`); 0: no limit.
fn client_memory_limit(config: &shoal_config::Config) -> u64 {
    let value = config.compat_value("maxmemory-clients");
    match value.strip_suffix('%') {
        Some(percent) => config.maxmemory / 100 * percent.parse::<u64>().unwrap_or(0),
        None => value.parse().unwrap_or(0),
    }
}

/// `maxmemory-clients`, from each core's cron: while the buffers of all evictable clients
/// (not CLIENT NO-EVICT, not a replica or the master link) hold more than the limit, the
/// biggest of them is disconnected (Redis's client eviction), counted in
/// `evicted_clients`. Each core publishes its total and its biggest client; the core that
/// has the biggest one evicts it, and the next tick of each core goes on.
pub fn enforce_client_memory(node: &Rc<Node>) {
    let limit = client_memory_limit(&node.config.borrow());
    if limit == 0 {
        return;
    }
    let evictable = |c: &ClientInfo| !c.no_evict.get() && !c.kill.is_set() && !crate::replica::is_link(c.id) && !crate::replication::is_replica(c.id);
    let clients = node.clients.borrow();
    let mut sizes: Vec<(u64, u64)> = clients.values().filter(|c| evictable(c)).map(|c| (c.buffers.get().total() as u64, c.id)).collect();
    sizes.sort_unstable();
    let core = node.core.id;
    loop {
        let local = (sizes.iter().map(|(size, _)| size).sum::<u64>(), sizes.last().copied().unwrap_or((0, 0)));
        let (total, biggest) = {
            let mut all = CLIENT_MEMORY.lock().expect("not poisoned");
            if all.len() < node.core.shard_count {
                all.resize(node.core.shard_count, (0, 0, 0));
            }
            all[core] = (local.0, local.1 .0, local.1 .1);
            let total: u64 = all.iter().map(|(total, _, _)| total).sum();
            // Ties go to the lowest core, so two cores never evict for the same overshoot.
            let biggest = all.iter().enumerate().max_by_key(|(i, (_, size, _))| (*size, std::cmp::Reverse(*i))).map(|(i, _)| i);
            (total, biggest)
        };
        if total <= limit || biggest != Some(core) {
            return;
        }
        let Some((size, id)) = sizes.pop() else { return };
        if let Some(client) = clients.get(&id) {
            tracing::info!("Evicting client: id={id} addr={} tot-mem={size}", client.addr);
            client.kill();
            EVICTED_CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

pub fn enforce_idle_timeout(node: &Rc<Node>) {
    let (timeout_s, repl_timeout_s) = {
        let config = node.config.borrow();
        (config.timeout as u64, config.repl_timeout)
    };
    let now = coarse_ms();
    // A master link that has heard nothing for `repl-timeout` is dead (the master PINGs).
    for client in node.clients.borrow().values().filter(|c| crate::replica::is_link(c.id)) {
        if now.saturating_sub(client.last_interaction.get()) / 1000 > repl_timeout_s {
            tracing::warn!("MASTER timeout: no data nor PING received...");
            client.kill();
        }
    }
    if timeout_s == 0 {
        return;
    }
    // As Redis, a blocked client is not idle (its own timeout governs it), nor is a subscriber
    // (it waits for messages).
    let exempt = |c: &ClientInfo| c.blocked.get() || c.is_subscriber() || crate::replica::is_link(c.id) || crate::replication::is_replica(c.id);
    for client in node.clients.borrow().values().filter(|c| !exempt(c)) {
        if now.saturating_sub(client.last_interaction.get()) / 1000 > timeout_s {
            tracing::debug!("Closing idle client {}", client.id);
            client.kill();
        }
    }
}

/// Milliseconds of the coarse monotonic clock (updated every kernel tick, a few ms): cheap
/// enough to read for every request, unlike the precise clock, and exact enough for idle
/// times counted in seconds.
pub fn coarse_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass; CLOCK_MONOTONIC_COARSE always exists
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A client's buffers in bytes, as CLIENT LIST shows them: the query buffer (`qbuf`, its
/// size `rbs` and recent peak `rbp`), the replies not yet written (`omem`, one block when
/// any: `oll`), and the commands queued since MULTI (`multi-mem`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Buffers {
    pub query: usize,
    pub query_capacity: usize,
    pub output: usize,
    pub output_capacity: usize,
    pub queued: usize,
    /// HIMPORT's fieldsets (see `shoal_commands::hashes::himport`).
    pub fieldsets: usize,
    /// The largest query buffer and pending output seen in the current window (INFO's
    /// `client_recent_max_*`), and when that window began (coarse milliseconds).
    pub peak_query: usize,
    pub peak_output: usize,
    peak_since_ms: u64,
}

/// How long a peak counts as recent (Redis keeps eight seconds of them).
pub const PEAK_WINDOW_MS: u64 = 8_000;

impl Buffers {
    /// What the client holds in memory for its buffers (CLIENT LIST's `tot-mem`).
    pub fn total(&self) -> usize {
        self.query_capacity + self.output_capacity + self.queued + self.fieldsets
    }

    /// Raises the peaks. The clock is read only for a new peak: a window that ended without
    /// one is seen by [`Buffers::recent_peaks`], which then reports the present.
    fn note_peak(&mut self) {
        if self.query_capacity <= self.peak_query && self.output <= self.peak_output {
            return;
        }
        let now_ms = coarse_ms();
        if now_ms.saturating_sub(self.peak_since_ms) > PEAK_WINDOW_MS {
            (self.peak_query, self.peak_output, self.peak_since_ms) = (0, 0, now_ms);
        }
        self.peak_query = self.peak_query.max(self.query_capacity);
        self.peak_output = self.peak_output.max(self.output);
    }

    /// The recent peaks (input, output), or zeros when the window is over.
    pub fn recent_peaks(&self, now_ms: u64) -> (usize, usize) {
        if now_ms.saturating_sub(self.peak_since_ms) > PEAK_WINDOW_MS {
            (self.query_capacity, self.output)
        } else {
            (self.peak_query, self.peak_output)
        }
    }
}

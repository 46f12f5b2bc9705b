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
    /// Whether the client is in MONITOR mode (flag `O`).
    pub monitor: Cell<bool>,
    /// Commands queued since MULTI, or -1 outside MULTI (CLIENT LIST's `multi`).
    pub multi: Cell<i64>,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST's `sub`, `psub`,
    /// `ssub`; flag `P` while any).
    pub subscriptions: Cell<[usize; 3]>,
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
            created: now,
            last_interaction: Cell::new(coarse_ms()),
            last_command: Cell::new("NULL"),
            kill: LocalEvent::default(),
            blocked: Cell::new(false),
            monitor: Cell::new(false),
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

    /// CLIENT LIST's flags, in Redis's order: `O` monitor, `b` blocked, `P` subscribed, `x`
    /// in MULTI, `N` none.
    fn flags(&self) -> String {
        let mut flags = String::new();
        if self.monitor.get() {
            flags.push('O');
        }
        if self.blocked.get() {
            flags.push('b');
        }
        if self.is_subscriber() {
            flags.push('P');
        }
        if self.multi.get() >= 0 {
            flags.push('x');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order.
    pub fn describe(&self) -> String {
        let now = Instant::now();
        let idle_ms = coarse_ms().saturating_sub(self.last_interaction.get());
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
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
            self.last_command.get(),
            self.resp.get(),
            self.lib_name.borrow(),
            self.lib_ver.borrow(),
        )
    }
}

/// Closes clients idle for longer than `timeout` seconds (0: never), as Redis's
/// clientsCronHandleTimeout does.
pub fn enforce_idle_timeout(node: &Rc<Node>) {
    let timeout_s = node.config.borrow().timeout as u64;
    if timeout_s == 0 {
        return;
    }
    let now = coarse_ms();
    // As Redis, a blocked client is not idle (its own timeout governs it), nor is a subscriber
    // (it waits for messages).
    for client in node.clients.borrow().values().filter(|c| !c.blocked.get() && !c.is_subscriber()) {
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

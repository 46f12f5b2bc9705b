//! Replication, the replica's side: `REPLICAOF <host> <port>` (or `replicaof` in the
//! configuration) makes this server follow a master, Shoal or Redis.
//!
//! - **The link** is a task on core 0 ([`link_loop`]): it connects, does Redis's handshake
//!   (PING, AUTH with `masterauth`, REPLCONF listening-port and capa, PSYNC), and on
//!   `+FULLRESYNC` receives the snapshot (`$<length>` or the diskless `$EOF:<mark>` form) into
//!   a file, then replaces the whole dataset with it: every shard locked, every database
//!   emptied, the keys installed on their cores (as DEBUG RELOAD does). On `+CONTINUE` it keeps
//!   the data and goes on from its offset. It tries again every second while the link is
//!   down.
//! - **The stream** is then served as a client of its own (`connection::serve_master`): the
//!   master's commands run through the ordinary command path, so MULTI/EXEC from the master
//!   is atomic across cores as any transaction is. Replies are not sent, but `REPLCONF
//!   GETACK` is answered with `REPLCONF ACK <offset>`, and an ACK goes every second. The
//!   offset counts the bytes of the commands run ([`MasterLink`]).
//! - **Expiry.** A replica does not expire keys itself, as in Redis: every database stays in
//!   the "loading" mode (no key expires), and the master's DELs remove them. Meanwhile its
//!   clients' reads do not see a key whose time has passed (`Db::set_hide_expired`).
//! - **Writes** from the replica's own clients are refused with READONLY while
//!   `replica-read-only yes`.
//! - **Replicas of this replica** (chained replication), as Redis serves them: the bytes of
//!   the master's stream go, once run, into this server's backlog as they came
//!   (`crate::replication::proxy`), under the master's replication id and offsets, so a
//!   replica here continues from the same offsets after a reconnection, and after this server
//!   is promoted. A full resynchronisation here pauses the link between two rounds of the
//!   master's commands ([`pause_link`]) while the snapshot's cut is taken, so its offset is
//!   exact.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use shoal_commands::errors;
use shoal_commands::CommandSpec;
use shoal_resp::Frame;

use crate::node::Node;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LinkState {
    Connect,
    Connecting,
    Sync,
    Connected,
}

impl LinkState {
    /// ROLE's name for it.
    fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

struct Following {
    host: String,
    port: u16,
    state: LinkState,
    /// Unix ms of the last bytes from the master.
    last_io_ms: u64,
    /// Unix ms when the link last went down (0: it was never up).
    down_since_ms: u64,
}

/// What the replica knows of its master's stream: its id, how far it got, and the database
/// the stream had selected there (a stream continued after `+CONTINUE` selects again only
/// when it changes database, as Redis's replica keeps its cached master's). Kept when the
/// link drops (a PSYNC continues from it) and when the master changes.
struct History {
    replid: Option<String>,
    offset: u64,
    db: usize,
}

static FOLLOWING: Mutex<Option<Following>> = Mutex::new(None);
static HISTORY: Mutex<History> = Mutex::new(History { replid: None, offset: 0, db: 0 });
static REPLICATING: AtomicBool = AtomicBool::new(false);
/// Bumped by every REPLICAOF: a link task of an earlier one stops.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// The master link's client id on core 0 (0: none).
static LINK_CLIENT: AtomicU64 = AtomicU64::new(0);
/// The link serves the master's stream (from `+CONTINUE` or the loaded snapshot until the
/// connection ends).
static STREAMING: AtomicBool = AtomicBool::new(false);
/// Full resynchronisations of this server's own replicas that wait for the link to pause.
static PAUSES: Mutex<Vec<futures::channel::oneshot::Sender<Paused>>> = Mutex::new(Vec::new());
static PAUSE_ASKED: AtomicBool = AtomicBool::new(false);

/// The link, stopped between two rounds of the master's commands at `offset`, until this is
/// dropped.
pub struct Paused {
    pub offset: u64,
    _resume: futures::channel::oneshot::Sender<()>,
}

/// Stops the master link between two rounds (for a replica's full resynchronisation here:
/// its cut must fall at a known offset). None when the link is not streaming or stops first.
pub async fn pause_link() -> Option<Paused> {
    let (ask, answer) = futures::channel::oneshot::channel();
    PAUSES.lock().expect("not poisoned").push(ask);
    PAUSE_ASKED.store(true, Ordering::SeqCst);
    let mut answer = std::pin::pin!(answer);
    // The link looks after each round, and at least every second while the master is idle.
    loop {
        if !STREAMING.load(Ordering::SeqCst) {
            return None;
        }
        let tick = std::pin::pin!(glommio::timer::sleep(Duration::from_millis(100)));
        if let Either::Left((paused, _)) = select(answer.as_mut(), tick).await {
            return paused.ok();
        }
    }
}

/// The master's replication id, the offset reached and the stream's database, if this
/// replica has a history.
pub fn history() -> Option<(String, u64, usize)> {
    let history = HISTORY.lock().expect("not poisoned");
    history.replid.clone().map(|replid| (replid, history.offset, history.db))
}

/// At startup, from the RDB file: the history to continue (see `replication::restore`).
pub fn restore_history(replid: &str, offset: u64, db: usize) {
    *HISTORY.lock().expect("not poisoned") = History { replid: Some(replid.to_owned()), offset, db };
}

/// The database the master's stream has selected where this replica stands in it: the
/// master link starts there.
pub fn stream_db() -> usize {
    HISTORY.lock().expect("not poisoned").db
}

/// Whether the link is up and streaming (a replica here may then synchronise).
pub fn streaming() -> bool {
    STREAMING.load(Ordering::SeqCst)
}

/// Whether this server follows a master.
#[inline]
pub fn is_replica() -> bool {
    REPLICATING.load(Ordering::Relaxed)
}

/// Whether this server is a replica that refuses its clients' writes.
pub fn read_only(node: &Node) -> bool {
    is_replica() && node.config.borrow().replica_read_only
}

/// MASTERDOWN while the link is down and `replica-serve-stale-data no`, for commands not
/// flagged `stale`.
pub fn stale_refusal(node: &Node, spec: &CommandSpec) -> Option<Frame> {
    if !is_replica() || node.config.borrow().replica_serve_stale_data || spec.has(shoal_commands::table::flags::STALE) {
        return None;
    }
    let up = FOLLOWING.lock().expect("not poisoned").as_ref().is_some_and(|f| f.state == LinkState::Connected);
    (!up).then(|| errors::error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."))
}

/// READONLY for a client's write while this server is a read-only replica.
pub fn refusal(node: &Node, spec: &CommandSpec) -> Option<Frame> {
    (spec.is_write() && read_only(node)).then(|| errors::error("READONLY You can't write against a read only replica."))
}

/// The master link's position in the stream: bytes read from the master since the link
/// started (the snapshot excluded) and the offset they started at.
pub struct MasterLink {
    base: u64,
    read: Cell<u64>,
    /// The bytes read and not yet passed on to this server's backlog: those of commands not
    /// run yet, or of the master's MULTI still open.
    raw: RefCell<BytesMut>,
    /// The offset passed on so far.
    proxied: Cell<u64>,
    generation: u64,
    /// Under `appendonly yes`: offsets reached, each with where the log's streams stood once
    /// its commands were in them (see [`MasterLink::acknowledge`]).
    logged: RefCell<std::collections::VecDeque<(u64, Vec<u64>)>>,
    /// The offset whose commands are fsynced in this server's append-only file: the `FACK`
    /// of `REPLCONF ACK` (WAITAOF on the master counts it).
    fsynced: Cell<u64>,
    /// After a full resynchronisation under `appendonly yes`: the rewrites done before the
    /// one that makes the new data the file's base. Nothing counts as fsynced before it ends.
    base_rewrite: Cell<Option<u64>>,
    /// What arrived with the end of the snapshot: the stream's first bytes.
    pub leftover: RefCell<BytesMut>,
    last_ack_ms: Cell<u64>,
}

impl MasterLink {
    /// Counts `bytes`, just read from the master.
    pub fn note_read(&self, bytes: &[u8]) {
        self.read.set(self.read.get() + bytes.len() as u64);
        self.raw.borrow_mut().extend_from_slice(bytes);
        if let Some(following) = FOLLOWING.lock().expect("not poisoned").as_mut() {
            following.last_io_ms = shoal_runtime::now_ms();
        }
    }

    /// After a round of the master's commands ran, with `unrun` bytes read but not run yet:
    /// records the offset, and appends `REPLCONF ACK <offset>` to `output` when the master
    /// asked (GETACK) or a second passed since the last one. Inside the master's MULTI the
    /// offset stays before it, as Redis's does: a link lost before EXEC resumes with the
    /// whole transaction, not with an EXEC alone.
    pub async fn round_done(&self, node: &Node, unrun: usize, in_multi: bool, db: usize, asked: bool, output: &mut BytesMut) {
        let offset = {
            let mut history = HISTORY.lock().expect("not poisoned");
            if !in_multi {
                history.offset = self.base + self.read.get() - unrun as u64;
                history.db = db;
            }
            history.offset
        };
        // What ran goes on to this server's own replicas, byte for byte (unless another
        // REPLICAOF came meanwhile: the history it fed is over).
        if offset > self.proxied.get() && current(self.generation) {
            let ran = self.raw.borrow_mut().split_to((offset - self.proxied.get()) as usize);
            crate::replication::proxy(&ran);
            self.proxied.set(offset);
        }
        self.acknowledge(node, asked, output).await;
    }

    /// Appends `REPLCONF ACK <offset> [FACK <fsynced>]` to `output` when the master asked
    /// (GETACK), a second passed since the last one (a Redis replica acknowledges every
    /// second, whether the master sends or not: masters time replicas out, and count them
    /// for `min-replicas-max-lag`, by it), or more of the stream is fsynced here. Under
    /// `appendonly yes`, an acknowledgement notes where the log's streams stand once every
    /// core has handled what the master's commands so far left in them (the releases of
    /// cross-core transactions, as `admin_cmd::logged_so_far`): once they are fsynced up to
    /// there, so is the stream up to this offset.
    pub async fn acknowledge(&self, node: &Node, asked: bool, output: &mut BytesMut) {
        let due = asked || shoal_runtime::now_ms().saturating_sub(self.last_ack_ms.get()) >= 1000;
        let advanced = self.take_fsynced();
        if !due && !advanced {
            return;
        }
        let offset = HISTORY.lock().expect("not poisoned").offset;
        let logging = shoal_runtime::aof::LOG.file_on();
        if due && logging && self.logged.borrow().back().is_none_or(|(at, _)| *at < offset) {
            let marks = crate::admin_cmd::logged_so_far(node).await;
            self.logged.borrow_mut().push_back((offset, marks));
            self.take_fsynced();
        }
        self.last_ack_ms.set(shoal_runtime::now_ms());
        let offset = offset.to_string();
        if logging {
            let fsynced = self.fsynced.get().to_string();
            shoal_resp::encode_request(&[&b"REPLCONF"[..], b"ACK", offset.as_bytes(), b"FACK", fsynced.as_bytes()], output);
        } else {
            shoal_resp::encode_request(&[&b"REPLCONF"[..], b"ACK", offset.as_bytes()], output);
        }
    }

    /// Offsets noted as logged whose records are now fsynced advance [`MasterLink::fsynced`];
    /// returns whether it moved.
    fn take_fsynced(&self) -> bool {
        if let Some(before) = self.base_rewrite.get() {
            let (in_progress, scheduled, _, done, _) = crate::save::rewrite_info();
            if in_progress || scheduled || done <= before {
                return false;
            }
            self.base_rewrite.set(None);
        }
        let mut logged = self.logged.borrow_mut();
        let mut moved = false;
        while let Some((offset, marks)) = logged.front() {
            if !shoal_runtime::aof::LOG.synced_up_to(marks) {
                break;
            }
            self.fsynced.set(*offset);
            moved = true;
            logged.pop_front();
        }
        moved
    }

    /// Whether offsets noted as logged wait to be fsynced (the link then looks more often
    /// than once a second, to acknowledge them soon).
    pub fn fsync_pending(&self) -> bool {
        !self.logged.borrow().is_empty()
    }

    /// Between two rounds, outside the master's MULTI: waits while replicas here take their
    /// cut (see [`pause_link`]).
    pub async fn pause_if_asked(&self, in_multi: bool) {
        if in_multi || !PAUSE_ASKED.swap(false, Ordering::SeqCst) {
            return;
        }
        let asks = std::mem::take(&mut *PAUSES.lock().expect("not poisoned"));
        let offset = HISTORY.lock().expect("not poisoned").offset;
        let mut resumes = Vec::new();
        for ask in asks {
            let (resume, resumed) = futures::channel::oneshot::channel();
            if ask.send(Paused { offset, _resume: resume }).is_ok() {
                resumes.push(resumed);
            }
        }
        for resumed in resumes {
            // Dropped, not sent: the pause is over.
            let _ = resumed.await;
        }
    }
}

/// REPLICAOF (SLAVEOF) host port | NO ONE.
pub async fn replicaof(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    if crate::replication::failing_over() {
        return errors::error("ERR REPLICAOF not allowed while failing over.");
    }
    if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        if is_replica() {
            stop_following(node).await;
            tracing::info!("MASTER MODE enabled (user request)");
        }
        return shoal_commands::args::ok();
    }
    let Some(port) = std::str::from_utf8(&args[2]).ok().and_then(|p| p.parse::<u16>().ok()) else {
        return errors::error("ERR Invalid master port");
    };
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let same = FOLLOWING.lock().expect("not poisoned").as_ref().is_some_and(|f| f.host.eq_ignore_ascii_case(&host) && f.port == port);
    if same {
        return Frame::Simple(Bytes::from_static(b"OK Already connected to specified master"));
    }
    follow(node, host, port, !is_replica()).await;
    shoal_commands::args::ok()
}

/// Starts following `host:port` (dropping any earlier link). A server that `was_master`
/// (REPLICAOF at run time) asks to continue its own history, as Redis's
/// `replicationCacheMasterUsingMyself`: a replica promoted in its master's place knows that
/// history as its second id; one started with `replicaof` asks for a full one.
pub async fn follow(node: &Rc<Node>, host: String, port: u16, was_master: bool) {
    tracing::info!("Connecting to MASTER {host}:{port}");
    if was_master {
        let (replid, offset) = crate::replication::own_history();
        *HISTORY.lock().expect("not poisoned") = History { replid: Some(replid), offset, db: 0 };
    }
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    node.config.borrow_mut().replicaof = Some((host.clone(), port));
    become_replica_of(host, port);
    // A replica expires nothing by itself: its master's DELs do.
    node.core.call_all(|core| core.with_shard(|shard| shard.set_loading(true))).await;
    // Its own replicas reconnect: they continue from the new master's stream if this
    // server's history goes on there, and take a full resync otherwise.
    crate::replication::drop_all();
    node.core
        .call_on(0, move |_| {
            kill_link_client();
            let node = crate::node::current();
            glommio::spawn_local(link_loop(node, generation)).detach();
        })
        .await;
}

/// From now on this server is a replica of `host:port` in what it tells clients (ROLE, INFO,
/// read-only refusals), before its link exists. Startup calls it before any core accepts,
/// so no client of a server configured with `replicaof` ever sees it as a master.
pub fn become_replica_of(host: String, port: u16) {
    *FOLLOWING.lock().expect("not poisoned") = Some(Following { host, port, state: LinkState::Connect, last_io_ms: 0, down_since_ms: 0 });
    REPLICATING.store(true, Ordering::SeqCst);
    // Its own writes no longer go to replicas: the master's stream does (proxied).
    shoal_runtime::aof::LOG.set_feeding(false);
}

/// REPLICAOF NO ONE: stops following; the data stays, and keys expire again.
pub async fn stop_following(node: &Rc<Node>) {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    REPLICATING.store(false, Ordering::SeqCst);
    *FOLLOWING.lock().expect("not poisoned") = None;
    node.config.borrow_mut().replicaof = None;
    node.core.call_on(0, |_| kill_link_client()).await;
    // The link's last round ends before the history moves on.
    for _ in 0..1000 {
        if !STREAMING.load(Ordering::SeqCst) {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    node.core.call_all(|core| core.with_shard(|shard| shard.set_loading(false))).await;
    // A new history starts here, as Redis's shiftReplicationId; this server's replicas
    // reconnect and continue under the new id, and its writes feed them from now on.
    crate::replication::new_history();
    crate::replication::drop_all();
    if crate::replication::backlog_active() {
        // The master's commands this server logged for its own file went to the backlog
        // already (proxied): the writer takes them before it feeds, so they go once.
        if shoal_runtime::aof::LOG.file_on() {
            let marks = crate::admin_cmd::logged_so_far(node).await;
            let late = {
                let written = std::pin::pin!(node.core.aof_wait_until(|| shoal_runtime::aof::LOG.durable_up_to(&marks)));
                matches!(select(written, std::pin::pin!(glommio::timer::sleep(Duration::from_secs(5)))).await, Either::Right(_))
            };
            if late {
                tracing::warn!("The AOF writer is behind: this server's replicas may get the last commands of its master twice.");
            }
        }
        node.core.call_on(0, crate::aof::start_feeding).await;
    }
}

/// On core 0: closes the master link's connection, if any.
fn kill_link_client() {
    let id = LINK_CLIENT.swap(0, Ordering::SeqCst);
    if id == 0 {
        return;
    }
    if let Some(client) = crate::node::current().clients.borrow().get(&id) {
        client.kill();
    }
}

/// How old this replica's data may be (Redis's `data_age` in cluster failover): since the
/// master last sent something while the link is up, since the link went down otherwise;
/// None when not a replica, u64::MAX when the link was never up.
pub fn data_age_ms() -> Option<u64> {
    let following = FOLLOWING.lock().expect("not poisoned");
    let following = following.as_ref()?;
    let now = shoal_runtime::now_ms();
    Some(match (following.state, following.down_since_ms) {
        (LinkState::Connected, _) => now.saturating_sub(following.last_io_ms),
        (_, 0) => u64::MAX,
        (_, since) => now.saturating_sub(since),
    })
}

fn set_state(state: LinkState) {
    if let Some(following) = FOLLOWING.lock().expect("not poisoned").as_mut() {
        if following.state == LinkState::Connected && state != LinkState::Connected {
            following.down_since_ms = shoal_runtime::now_ms();
        }
        following.state = state;
    }
}

fn current(generation: u64) -> bool {
    GENERATION.load(Ordering::SeqCst) == generation
}

/// The link (on core 0): connect, synchronise, serve the stream; again after a second
/// whenever it ends, until another REPLICAOF.
async fn link_loop(node: Rc<Node>, generation: u64) {
    while current(generation) && !node.shutdown.is_set() {
        match connect_and_sync(&node, generation).await {
            Ok(Some((stream, leftover, base, base_rewrite))) if current(generation) => {
                set_state(LinkState::Connected);
                tracing::info!("MASTER <-> REPLICA sync: Master accepted, streaming from offset {base}");
                let link = Rc::new(MasterLink {
                    base,
                    read: Cell::new(leftover.len() as u64),
                    raw: RefCell::new(leftover.clone()),
                    proxied: Cell::new(base),
                    generation,
                    logged: Default::default(),
                    fsynced: Cell::new(base),
                    base_rewrite: Cell::new(base_rewrite),
                    leftover: RefCell::new(leftover),
                    last_ack_ms: Cell::new(0),
                });
                STREAMING.store(true, Ordering::SeqCst);
                crate::connection::serve_master(node.clone(), stream, link, |id| LINK_CLIENT.store(id, Ordering::SeqCst)).await;
                STREAMING.store(false, Ordering::SeqCst);
                // Pauses asked for now are never answered: their replicas try again.
                PAUSES.lock().expect("not poisoned").clear();
                LINK_CLIENT.store(0, Ordering::SeqCst);
                if current(generation) {
                    tracing::info!("Connection with master lost.");
                }
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!("MASTER <-> REPLICA sync failed: {e}");
                // A failover whose target cannot be reached: this server is the master again.
                if crate::replication::failover_in_progress() {
                    crate::replication::abort_failover(&node, "Failover target unreachable").await;
                    return;
                }
            }
        }
        if !current(generation) {
            return;
        }
        set_state(LinkState::Connect);
        glommio::timer::sleep(Duration::from_secs(1)).await;
    }
}

/// The stream, the bytes already read past the snapshot, the offset the stream continues
/// from, and after a full resynchronisation under `appendonly yes` the rewrites done before
/// the one it started.
type Synced = Option<(TcpStream, BytesMut, u64, Option<u64>)>;

/// Connects and synchronises: the stream, the bytes already read past the snapshot, and the
/// offset the stream continues from. `None` when another REPLICAOF came meanwhile.
async fn connect_and_sync(node: &Rc<Node>, generation: u64) -> std::io::Result<Synced> {
    let Some((host, port)) = FOLLOWING.lock().expect("not poisoned").as_ref().map(|f| (f.host.clone(), f.port)) else { return Ok(None) };
    set_state(LinkState::Connecting);
    let (timeout_s, listening_port, announce_ip, auth) = {
        let config = node.config.borrow();
        let auth = (!config.masterauth.is_empty()).then(|| (config.masteruser.clone(), config.masterauth.clone()));
        // `replica-announce-port` and `-ip`: what the master shows for this replica.
        let port = match config.compat_value("replica-announce-port").parse::<u16>() {
            Ok(announced) if announced != 0 => announced,
            _ => config.port,
        };
        (config.repl_timeout, port, config.compat_value("replica-announce-ip").to_owned(), auth)
    };
    let timeout = Duration::from_secs(timeout_s);
    let mut stream = with_timeout(timeout, async { TcpStream::connect(format!("{host}:{port}")).await.map_err(std::io::Error::from) }).await?;
    let _ = stream.set_nodelay(true);
    let mut input = BytesMut::new();
    let ask = async |stream: &mut TcpStream, input: &mut BytesMut, args: &[&[u8]]| -> std::io::Result<String> {
        let mut request = BytesMut::new();
        shoal_resp::encode_request(args, &mut request);
        stream.write_all(&request).await?;
        with_timeout(timeout, read_line(stream, input)).await
    };
    let pong = ask(&mut stream, &mut input, &[b"PING"]).await?;
    // A master that wants a password answers NOAUTH: AUTH comes next.
    if pong.starts_with('-') && !["-NOAUTH", "-NOPERM", "-ERR operation not permitted"].iter().any(|ok| pong.starts_with(ok)) {
        return Err(std::io::Error::other(format!("Error reply to PING from master: '{pong}'")));
    }
    if let Some((user, password)) = auth {
        let reply = if user.is_empty() {
            ask(&mut stream, &mut input, &[b"AUTH", password.as_bytes()]).await?
        } else {
            ask(&mut stream, &mut input, &[b"AUTH", user.as_bytes(), password.as_bytes()]).await?
        };
        if reply.starts_with('-') {
            return Err(std::io::Error::other(format!("Unable to AUTH to MASTER: {reply}")));
        }
    }
    // Refusals of these are logged by Redis and ignored.
    let _ = ask(&mut stream, &mut input, &[b"REPLCONF", b"listening-port", listening_port.to_string().as_bytes()]).await?;
    if !announce_ip.is_empty() {
        let _ = ask(&mut stream, &mut input, &[b"REPLCONF", b"ip-address", announce_ip.as_bytes()]).await?;
    }
    let _ = ask(&mut stream, &mut input, &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
    let (replid, offset) = {
        let history = HISTORY.lock().expect("not poisoned");
        (history.replid.clone(), history.offset)
    };
    // FAILOVER: the target takes over when asked with our id (Redis's `PSYNC ... FAILOVER`).
    let failover = crate::replication::failover_in_progress();
    let reply = match &replid {
        Some(replid) => {
            tracing::info!("Trying a partial resynchronization (request {replid}:{}).", offset + 1);
            let offset = (offset + 1).to_string();
            let mut request: Vec<&[u8]> = vec![b"PSYNC", replid.as_bytes(), offset.as_bytes()];
            if failover {
                request.push(b"FAILOVER");
            }
            ask(&mut stream, &mut input, &request).await?
        }
        None => ask(&mut stream, &mut input, &[b"PSYNC", b"?", b"-1"]).await?,
    };
    if !current(generation) {
        return Ok(None);
    }
    if failover {
        if reply.starts_with("+CONTINUE") || reply.starts_with("+FULLRESYNC") {
            crate::replication::end_failover(node).await;
        } else {
            crate::replication::abort_failover(node, "Failover target rejected psync request").await;
            return Err(std::io::Error::other(format!("the failover target refused: {reply}")));
        }
    }
    if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        if !new_id.is_empty() {
            HISTORY.lock().expect("not poisoned").replid = Some(new_id.to_owned());
            crate::replication::follow_history(new_id, offset, false);
        }
        tracing::info!("Successful partial resynchronization with master.");
        return Ok(Some((stream, input, offset, None)));
    }
    let Some(rest) = reply.strip_prefix("+FULLRESYNC ") else {
        return Err(std::io::Error::other(format!("Unexpected reply to PSYNC from master: {reply}")));
    };
    let mut parts = rest.split_whitespace();
    let (Some(new_id), Some(Ok(new_offset))) = (parts.next(), parts.next().map(str::parse::<u64>)) else {
        return Err(std::io::Error::other(format!("Master replied with wrong +FULLRESYNC syntax: {reply}")));
    };
    tracing::info!("Full resync from master: {new_id}:{new_offset}");
    set_state(LinkState::Sync);
    let path = format!("temp-{}.{}.rdb", std::process::id(), shoal_runtime::now_ms());
    let received = receive_snapshot(&mut stream, &mut input, &path, timeout).await;
    let loaded = match received {
        Ok(()) if current(generation) => load_snapshot(node, &path).await,
        Ok(()) => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    let _ = std::fs::remove_file(&path);
    let base_rewrite = loaded.map_err(std::io::Error::other)?;
    if !current(generation) {
        return Ok(None);
    }
    *HISTORY.lock().expect("not poisoned") = History { replid: Some(new_id.to_owned()), offset: new_offset, db: 0 };
    crate::replication::follow_history(new_id, new_offset, true);
    tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    // A master that sent the snapshot diskless starts the stream on the first ACK.
    let mut ack = BytesMut::new();
    shoal_resp::encode_request(&[&b"REPLCONF"[..], b"ACK", new_offset.to_string().as_bytes()], &mut ack);
    stream.write_all(&ack).await?;
    Ok(Some((stream, input, new_offset, base_rewrite)))
}

async fn with_timeout<T>(timeout: Duration, work: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    match select(std::pin::pin!(work), std::pin::pin!(glommio::timer::sleep(timeout))).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "Timeout connecting to the MASTER")),
    }
}

/// Reads more from the master into `input`; an error at end-of-file.
async fn fill(stream: &mut TcpStream, input: &mut BytesMut) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the master closed the connection"));
    }
    input.extend_from_slice(&chunk[..n]);
    if let Some(following) = FOLLOWING.lock().expect("not poisoned").as_mut() {
        following.last_io_ms = shoal_runtime::now_ms();
    }
    Ok(())
}

/// One reply line, without its CRLF; newlines alone (a master's keepalives) are skipped.
async fn read_line(stream: &mut TcpStream, input: &mut BytesMut) -> std::io::Result<String> {
    loop {
        while input.first() == Some(&b'\n') {
            let _ = input.split_to(1);
        }
        if let Some(end) = input.windows(2).position(|w| w == b"\r\n") {
            let line = input.split_to(end + 2);
            return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        if input.len() > 64 * 1024 {
            return Err(std::io::Error::other("a reply line from the master is too long"));
        }
        fill(stream, input).await?;
    }
}

/// Receives the snapshot into the file at `path`: `$<length>\r\n` and that many bytes, or
/// `$EOF:<40-byte mark>\r\n`, the bytes, and the mark again.
async fn receive_snapshot(stream: &mut TcpStream, input: &mut BytesMut, path: &str, timeout: Duration) -> std::io::Result<()> {
    use std::io::Write;
    let header = with_timeout(timeout, read_line(stream, input)).await?;
    let Some(size) = header.strip_prefix('$') else {
        return Err(std::io::Error::other(format!("Bad protocol from MASTER, the first byte is not '$' (we received '{header}')")));
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    if let Some(mark) = size.strip_prefix("EOF:") {
        let mark = mark.as_bytes().to_vec();
        loop {
            // Everything but what could be the start of the mark goes to the file.
            if input.len() > mark.len() {
                let keep = input.len() - mark.len();
                file.write_all(&input.split_to(keep))?;
            }
            if input.len() == mark.len() && input[..] == mark[..] {
                let _ = input.split_to(mark.len());
                break;
            }
            with_timeout(timeout, fill(stream, input)).await?;
        }
    } else {
        let mut left: usize = size.parse().map_err(|_| std::io::Error::other(format!("Bad snapshot length from MASTER: '{size}'")))?;
        while left > 0 {
            if input.is_empty() {
                with_timeout(timeout, fill(stream, input)).await?;
            }
            let n = left.min(input.len());
            file.write_all(&input.split_to(n))?;
            left -= n;
        }
    }
    file.flush()?;
    file.get_ref().sync_data()?;
    Ok(())
}

/// Replaces the dataset with the snapshot at `path`: with every shard locked, every database
/// emptied, then each core's keys installed as a thread of its own reads them (so the load
/// holds the new dataset and a bounded number of keys besides, and the old one is gone
/// first, as in Redis). A snapshot that cannot be read whole leaves the dataset empty, as
/// Redis's does. Under `appendonly yes` it starts a rewrite, and returns the count of
/// rewrites done before it.
async fn load_snapshot(node: &Rc<Node>, path: &str) -> Result<Option<u64>, String> {
    let config = node.config.borrow().clone();
    let threads = node.core.shard_count;
    tracing::info!("MASTER <-> REPLICA sync: Flushing old data, loading DB in memory");
    let mut lock = node.core.lock_everything().await;
    let clear = |core: &Rc<shoal_runtime::Core>| {
        core.with_shard(|shard| {
            for db in &mut shard.dbs {
                drop(db.clear());
            }
        });
        crate::scripting::flush_libraries();
    };
    node.core.call_all(clear).await;
    let startup = crate::rdb_load::start_for_replica(&config, path, threads);
    let failed = crate::rdb_load::install_all(&node.core, startup, true).await.err();
    if failed.is_some() {
        node.core.call_all(clear).await;
    }
    // Every key may have changed: WATCH fails and tracking clients flush.
    lock.mark_written();
    lock.end();
    failed.map_or(Ok(()), Err)?;
    // The append-only file knows nothing of the new data: a rewrite makes it its base (as
    // Redis restarts its AOF after a full sync). The master's stream, logged from now on,
    // goes after it.
    if shoal_runtime::aof::LOG.file_on() {
        let before = crate::save::rewrite_info().3;
        let _ = crate::save::bgrewriteaof(node, false).await;
        return Ok(Some(before));
    }
    Ok(None)
}

/// What INFO's replication section says of a replica (`None` when this is a master).
pub fn info(add: &mut dyn FnMut(&str, String)) -> bool {
    let following = FOLLOWING.lock().expect("not poisoned");
    let Some(following) = following.as_ref() else { return false };
    let history = HISTORY.lock().expect("not poisoned");
    let up = following.state == LinkState::Connected;
    add("role", "slave".to_owned());
    add("master_host", following.host.clone());
    add("master_port", following.port.to_string());
    add("master_link_status", if up { "up" } else { "down" }.to_owned());
    let last_io = if following.last_io_ms == 0 { -1 } else { (shoal_runtime::now_ms().saturating_sub(following.last_io_ms) / 1000) as i64 };
    add("master_last_io_seconds_ago", last_io.to_string());
    add("master_sync_in_progress", u8::from(following.state == LinkState::Sync).to_string());
    add("slave_read_repl_offset", history.offset.to_string());
    add("slave_repl_offset", history.offset.to_string());
    if !up {
        let down = if following.down_since_ms == 0 { -1 } else { (shoal_runtime::now_ms().saturating_sub(following.down_since_ms) / 1000) as i64 };
        add("master_link_down_since_seconds", down.to_string());
    }
    let config = crate::node::current().config.clone();
    let config = config.borrow();
    add("slave_priority", config.compat_value("replica-priority").to_owned());
    add("slave_read_only", u8::from(config.replica_read_only).to_string());
    add("replica_announced", u8::from(config.compat_value("replica-announced") == "yes").to_string());
    add("connected_slaves", "0".to_owned());
    add("master_failover_state", crate::replication::failover_state().to_owned());
    add("master_replid", history.replid.clone().unwrap_or_else(|| crate::info::ids().1.to_owned()));
    add("master_replid2", "0".repeat(40));
    add("master_repl_offset", history.offset.to_string());
    add("second_repl_offset", "-1".to_owned());
    // No backlog of its own: a replica serves no replicas yet.
    add("repl_backlog_active", "0".to_owned());
    add("repl_backlog_size", config.repl_backlog_size.max(16 * 1024).to_string());
    add("repl_backlog_first_byte_offset", "0".to_owned());
    add("repl_backlog_histlen", "0".to_owned());
    true
}

/// ROLE on a replica: ["slave", host, port, state, offset] (`None` on a master).
pub fn role() -> Option<Frame> {
    let following = FOLLOWING.lock().expect("not poisoned");
    let following = following.as_ref()?;
    let offset = if following.state == LinkState::Connected { HISTORY.lock().expect("not poisoned").offset as i64 } else { -1 };
    Some(Frame::Array(vec![
        Frame::Bulk(Bytes::from_static(b"slave")),
        Frame::Bulk(Bytes::from(following.host.clone())),
        Frame::Integer(following.port as i64),
        Frame::Bulk(Bytes::from_static(following.state.name().as_bytes())),
        Frame::Integer(offset),
    ]))
}

/// Whether client `id` is this replica's link to its master (CLIENT LIST's flag `M`).
pub fn is_link(id: u64) -> bool {
    id != 0 && LINK_CLIENT.load(Ordering::Relaxed) == id
}

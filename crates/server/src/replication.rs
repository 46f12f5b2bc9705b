//! Replication, the master's side: replicas that connect with PSYNC (or SYNC) get a snapshot
//! and then the replication stream, as Redis 7 sends them.
//!
//! - **The stream** is the append-only log's merge ([`shoal_runtime::aof`]): from the first
//!   replica on, every core keeps the writes it runs in its stream whatever `appendonly`
//!   says, and the log's writer (on core 0) hands each merged batch to [`feed`] as well as
//!   to the file. So the replicas see one order of the cores' writes, the same as the file,
//!   with cross-core transactions whole in MULTI/EXEC. The `#TS:` annotations are the file's
//!   alone.
//! - **The backlog** ([`MASTER`]) keeps the stream's newest `repl-backlog-size` bytes, and
//!   more while a replica still has to be sent them: a replica's lag is its output buffer,
//!   and past `client-output-buffer-limit replica` it is disconnected, as in Redis.
//! - **Full resynchronisation.** A snapshot is taken as BGSAVE takes one; at its cut (every
//!   shard locked) every core's stream gets a mark, and the writer notes the stream's offset
//!   there: that is the `+FULLRESYNC <replid> <offset>` the replica is told, and where its
//!   stream starts once the file is sent.
//! - **Partial resynchronisation.** `PSYNC <replid> <offset>` with our id and an offset the
//!   backlog still holds gets `+CONTINUE` and the stream from there.
//! - **Acknowledgements.** Replicas send `REPLCONF ACK <offset>` every second; WAIT sends
//!   `REPLCONF GETACK *` through the stream and counts the replicas that acknowledged the
//!   offset its connection's writes reached.
//!
//! - **On a replica** (chained replication) the stream is its master's, passed on byte for
//!   byte once run ([`proxy`]), under the master's id and offsets; a full resynchronisation
//!   here takes its cut with the master link paused between two rounds
//!   (`crate::replica::pause_link`), at the offset the link reached.
//!
//! A replica's connection stays on the core that accepted it; it waits for the writer's
//! announcements (`Core::aof_announce_durable`) and copies what it has not sent from the
//! backlog.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either, FutureExt};
use shoal_resp::Frame;

use crate::connection::{scopeguard, Conn};
use crate::node::Node;
use crate::socket::Socket;

/// Redis's floor for `repl-backlog-size`.
const BACKLOG_MIN: u64 = 16 * 1024;
/// Bytes a replica's connection copies out of the backlog per write.
const SEND_CHUNK: u64 = 256 * 1024;

/// A replica, as the master sees it.
#[derive(Debug)]
struct Replica {
    /// Its connection's client id.
    id: u64,
    ip: String,
    /// The port it listens on (`REPLCONF listening-port`).
    port: u16,
    /// The cut its full resynchronisation waits for, until the writer passes it.
    mark: Option<u64>,
    /// Offset of the next stream byte it is to be sent (None: still waiting for its cut).
    sent: Option<u64>,
    /// Whether its snapshot was sent (INFO: `online`, else `wait_bgsave`/`send_bulk`).
    online: bool,
    /// The offset it last acknowledged, and when (Unix ms).
    ack: u64,
    ack_ms: u64,
    /// The offset it last said is fsynced to its append-only file (`FACK`; 0: none).
    fack: u64,
    /// Since when its lag has been over the soft output limit (Unix ms).
    soft_since_ms: Option<u64>,
    /// Disconnected for its lag: its connection closes.
    dropped: bool,
    /// Its snapshot was streamed: nothing more is sent until it acknowledges (and is then
    /// online).
    until_ack: bool,
}

/// The master's replication state, process-wide.
pub struct Master {
    replid: String,
    replid2: String,
    second_offset: i64,
    /// Bytes of the stream ever produced (`master_repl_offset`).
    offset: u64,
    /// The newest bytes of the stream, from `start` to `offset`.
    backlog: VecDeque<u8>,
    start: u64,
    /// A backlog exists (from the first replica on).
    active: bool,
    /// Cuts passed by the writer: (mark id, offset).
    marks: Vec<(u64, u64)>,
    replicas: Vec<Replica>,
    /// When the writer last sent the replicas a PING.
    last_ping: Option<Instant>,
    /// Since when no replica has been connected (for `repl-backlog-ttl`).
    alone_since: Option<Instant>,
    /// `repl-backlog-size`, and the replica class's output limit, as last read by the writer.
    backlog_size: u64,
    limit: shoal_config::OutputBufferLimit,
}

pub static MASTER: Mutex<Option<Master>> = Mutex::new(None);

/// INFO stats: full resynchronisations, partial ones accepted, partial ones refused.
static SYNCS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// INFO's `sync_full`, `sync_partial_ok`, `sync_partial_err`.
pub fn sync_counts() -> [u64; 3] {
    [0, 1, 2].map(|i| SYNCS[i].load(Ordering::Relaxed))
}

/// Ids of the cuts of full resynchronisations.
static NEXT_MARK: AtomicU64 = AtomicU64::new(1);

fn with_master<T>(f: impl FnOnce(&mut Master) -> T) -> T {
    let mut master = MASTER.lock().expect("not poisoned");
    let master = master.get_or_insert_with(|| Master {
        replid: crate::info::ids().1.to_owned(),
        replid2: "0".repeat(40),
        second_offset: -1,
        offset: 0,
        backlog: VecDeque::new(),
        start: 0,
        active: false,
        marks: Vec::new(),
        replicas: Vec::new(),
        last_ping: None,
        alone_since: None,
        backlog_size: 1024 * 1024,
        limit: shoal_config::OutputBufferLimit { hard_bytes: 256 << 20, soft_bytes: 64 << 20, soft_seconds: 60 },
    });
    f(master)
}

impl Master {
    fn replica(&self, id: u64) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.id == id)
    }

    fn replica_mut(&mut self, id: u64) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.id == id)
    }

    /// Online replicas whose last acknowledgement is at most `max_lag` seconds old.
    fn good(&self, max_lag: u64) -> u64 {
        let now_ms = shoal_runtime::now_ms();
        self.replicas.iter().filter(|r| r.online && !r.dropped && now_ms.saturating_sub(r.ack_ms) / 1000 <= max_lag).count() as u64
    }

    /// Appends `bytes` to the stream, and trims the backlog to what it must keep.
    fn append(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.backlog.extend(bytes);
        self.offset += bytes.len() as u64;
        self.trim();
        debug_assert_eq!(self.backlog.len() as u64, self.offset - self.start, "the backlog holds the bytes from start to offset");
    }

    /// Keeps `repl-backlog-size` bytes, and what a replica within its output limit still needs;
    /// replicas past the limit are dropped.
    fn trim(&mut self) {
        let now_ms = shoal_runtime::now_ms();
        let limit = self.limit;
        for replica in &mut self.replicas {
            let Some(sent) = replica.sent else { continue };
            let lag = self.offset - sent;
            let soft = limit.soft_bytes > 0 && lag > limit.soft_bytes;
            if !soft {
                replica.soft_since_ms = None;
            }
            let soft_expired = soft && now_ms.saturating_sub(*replica.soft_since_ms.get_or_insert(now_ms)) >= limit.soft_seconds * 1000;
            if !replica.dropped && ((limit.hard_bytes > 0 && lag > limit.hard_bytes) || soft_expired) {
                tracing::warn!(
                    "Client id={} (replica {}:{}) scheduled to be closed ASAP for overcoming of output buffer limits.",
                    replica.id,
                    replica.ip,
                    replica.port
                );
                replica.dropped = true;
            }
        }
        let needed = self.replicas.iter().filter(|r| !r.dropped).filter_map(|r| r.sent).min().unwrap_or(self.offset);
        let keep_from = needed.min(self.offset.saturating_sub(self.backlog_size.max(BACKLOG_MIN)));
        if keep_from > self.start {
            let cut = (keep_from - self.start) as usize;
            self.backlog.drain(..cut);
            self.start = keep_from;
        }
    }
}

/// On a replica, from the master link: `bytes` of the master's stream ran here; they go on
/// to this server's replicas as they came.
pub fn proxy(bytes: &[u8]) {
    let listened = with_master(|master| {
        master.active = true;
        master.append(bytes);
        !master.replicas.is_empty()
    });
    if listened {
        crate::node::current().core.aof_announce_durable();
    }
}

/// On a replica: its master's history is now `replid` at `offset`, after a full
/// resynchronisation (`full`: the backlog starts again there) or a partial one under a new
/// id (the old one stays the second, as Redis's replica keeps it). Its own replicas go: they
/// reconnect, and continue or resynchronise as the new history allows.
pub fn follow_history(replid: &str, offset: u64, full: bool) {
    with_master(|master| {
        if full {
            master.replid2 = "0".repeat(40);
            master.second_offset = -1;
            master.backlog.clear();
            master.start = offset;
        } else if master.replid != replid {
            master.replid2 = std::mem::replace(&mut master.replid, replid.to_owned());
            master.second_offset = offset as i64 + 1;
        }
        master.replid = replid.to_owned();
        master.offset = offset;
        master.start = master.start.min(offset);
        master.active = true;
        let config = crate::node::current().config.clone();
        let config = config.borrow();
        (master.backlog_size, master.limit) = (config.repl_backlog_size, config.client_output_buffer_limit.replica);
        for replica in &mut master.replicas {
            replica.dropped = true;
        }
    });
}

/// This server's replication id and offset, as a master.
pub fn own_history() -> (String, u64) {
    with_master(|master| (master.replid.clone(), master.offset))
}

/// Whether a backlog exists (after the first replica, or while proxying a master's stream).
pub fn backlog_active() -> bool {
    with_master(|master| master.active)
}

/// The writer's part (core 0): `out[from..]` was just merged; `stamps` are the `#TS:`
/// annotations in it (left out), `marks` the cuts passed and where.
pub fn feed(out: &[u8], from: usize, stamps: &[std::ops::Range<usize>], marks: &[(u64, usize)]) {
    with_master(|master| {
        let mut position = from;
        let mut marks = marks.iter().peekable();
        let mut pass = |master: &mut Master, upto: usize, position: &mut usize| {
            while let Some(&&(id, at)) = marks.peek() {
                if at > upto {
                    break;
                }
                master.append(&out[*position..at]);
                *position = at;
                let offset = master.offset;
                // Marks of full resynchronisations whose replica went before looking.
                if master.marks.len() >= 64 {
                    master.marks.remove(0);
                }
                master.marks.push((id, offset));
                for replica in master.replicas.iter_mut().filter(|r| r.mark == Some(id)) {
                    replica.sent = Some(offset);
                }
                marks.next();
            }
            master.append(&out[*position..upto]);
            *position = upto;
        };
        for stamp in stamps.iter().filter(|s| s.start >= from) {
            pass(master, stamp.start, &mut position);
            position = stamp.end;
        }
        pass(master, out.len(), &mut position);
    });
}

/// The writer's part, on each of its turns: a PING into the stream every
/// `repl-ping-replica-period` while replicas are connected (they time the link out without
/// one), and the settings the backlog follows.
pub fn writer_tick() {
    if !shoal_runtime::aof::LOG.feeding() {
        return;
    }
    let (period, size, limit, ttl) = {
        let config = crate::node::current().config.clone();
        let config = config.borrow();
        (config.repl_ping_replica_period, config.repl_backlog_size, config.client_output_buffer_limit.replica, config.repl_backlog_ttl)
    };
    with_master(|master| {
        master.backlog_size = size;
        master.limit = limit;
        if master.replicas.is_empty() {
            // Alone for `repl-backlog-ttl`: the backlog goes, and so does the log's work for
            // replicas; a new history starts (Redis's `freeReplicationBacklog` and new id).
            let since = *master.alone_since.get_or_insert_with(Instant::now);
            if ttl > 0 && master.active && since.elapsed() >= Duration::from_secs(ttl) {
                tracing::info!("Replication backlog freed after {ttl} seconds without slaves.");
                master.active = false;
                master.backlog = VecDeque::new();
                master.start = master.offset;
                master.replid = crate::info::system::random_hex40();
                master.replid2 = "0".repeat(40);
                master.second_offset = -1;
                shoal_runtime::aof::LOG.set_feeding(false);
            }
            return;
        }
        master.alone_since = None;
        if master.last_ping.is_none_or(|at| at.elapsed() >= Duration::from_secs(period)) {
            master.last_ping = Some(Instant::now());
            let mut ping = Vec::new();
            shoal_runtime::aof::encode(&[Bytes::from_static(b"PING")], &mut ping);
            master.append(&ping);
        }
    });
}

/// Puts `args` into the replication stream now (REPLCONF GETACK), outside the log: it
/// touches no data, so its place among the cores' writes does not matter.
fn inject(args: &[&'static str]) {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::from_static(a.as_bytes())).collect();
    let mut bytes = Vec::new();
    shoal_runtime::aof::encode(&args, &mut bytes);
    with_master(|master| master.append(&bytes));
}

/// SYNC or PSYNC from a replica: full or partial resynchronisation, then the stream until the
/// connection ends.
pub async fn serve(node: &Rc<Node>, socket: &mut Socket, conn: &Conn, args: &[Bytes]) -> std::io::Result<()> {
    let psync = args.len() >= 3;
    let asked = psync.then(|| (String::from_utf8_lossy(&args[1]).into_owned(), String::from_utf8_lossy(&args[2]).parse::<u64>().ok()));
    // The address it announced, else the connection's.
    let ip = conn.replconf.ip_address.clone().unwrap_or_else(|| conn.client.addr.rsplit_once(':').map_or(String::new(), |(ip, _)| ip.to_owned()));
    let port = conn.replconf.listening_port;
    let id = conn.client.id;
    let mark = NEXT_MARK.fetch_add(1, Ordering::Relaxed);
    // A replica of this replica: the stream is the master's, passed on.
    let chained = crate::replica::is_replica();
    // Registered first, so the backlog is not freed for want of replicas (`repl-backlog-ttl`)
    // once the log keeps the writes for it.
    let continued = with_master(|master| {
        master.replicas.retain(|r| r.id != id);
        let mut replica = Replica {
            id,
            ip: ip.clone(),
            port,
            mark: (!chained).then_some(mark),
            sent: None,
            online: false,
            ack: 0,
            ack_ms: shoal_runtime::now_ms(),
            fack: 0,
            soft_since_ms: None,
            dropped: false,
            until_ack: false,
        };
        if !master.active {
            // What the writer fed before this (the log was just turned on) no replica needs:
            // the backlog starts here.
            master.active = true;
            master.backlog.clear();
            master.start = master.offset;
        }
        // Redis counts bytes from 1: the replica asks for the byte after those it has.
        let continue_at = asked.as_ref().and_then(|(replid, offset)| {
            let offset = offset.and_then(|o| o.checked_sub(1))?;
            let ours = *replid == master.replid || (*replid == master.replid2 && offset as i64 <= master.second_offset);
            (ours && offset >= master.start && offset <= master.offset).then_some(offset)
        });
        if let Some(offset) = continue_at {
            (replica.mark, replica.sent, replica.online, replica.ack) = (None, Some(offset), true, offset);
        }
        master.replicas.push(replica);
        continue_at.map(|_| master.replid.clone())
    });
    let _forget = scopeguard(move || with_master(|master| master.replicas.retain(|r| r.id != id)));
    // The log keeps every core's writes from now on; the writer runs.
    if !chained {
        node.core.call_on(0, crate::aof::start_feeding).await;
    }
    if let Some(replid) = continued {
        SYNCS[1].fetch_add(1, Ordering::Relaxed);
        tracing::info!("Partial resynchronization request from {ip}:{port} accepted.");
        socket.write_all(format!("+CONTINUE {replid}\r\n").as_bytes()).await?;
        return stream(node, socket, &conn.client).await;
    }
    // Redis counts a PSYNC that asked for an offset (not `? -1`) and got a full one.
    if asked.as_ref().is_some_and(|(replid, _)| replid != "?") {
        SYNCS[2].fetch_add(1, Ordering::Relaxed);
    }
    SYNCS[0].fetch_add(1, Ordering::Relaxed);
    tracing::info!("Replica {ip}:{port} asks for synchronization; full resync");
    let origin = if chained {
        // The link pauses for the cut; a save already running would hold it paused for its
        // whole length, so that one ends first.
        while crate::save::saving() {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let paused = crate::replica::pause_link().await.ok_or_else(|| std::io::Error::other("the link with the master went down"))?;
        with_master(|master| {
            debug_assert_eq!(master.offset, paused.offset, "the backlog holds what the link ran");
            if let Some(replica) = master.replica_mut(id) {
                // The backlog keeps the stream from the cut on for it.
                replica.sent = Some(paused.offset);
            }
        });
        Origin::Paused(paused)
    } else {
        Origin::Mark(mark)
    };
    let diskless = psync && conn.replconf.capa_eof && node.config.borrow().repl_diskless_sync;
    full_sync(node, socket, id, origin, psync, diskless).await?;
    stream(node, socket, &conn.client).await
}

/// Where a full resynchronisation's offset comes from.
enum Origin {
    /// A master's: the cut puts `mark` in every core's stream, and the writer notes the
    /// offset there.
    Mark(u64),
    /// A replica's: the master link paused at this offset until the cut is taken.
    Paused(crate::replica::Paused),
}

/// Sends a snapshot: the cut (see [`Origin`]), `+FULLRESYNC` with the offset there, then the
/// file. `diskless` (`repl-diskless-sync`, and a replica that said `capa eof`): the bytes
/// stream to the replica as they are made, framed `$EOF:<mark>\r\n ... <mark>`, and the
/// replica is online (the stream starts) once it acknowledges, as Redis does, since bytes
/// right after the mark would hide it; otherwise newlines while the file is written, then
/// `$<length>` and the file.
async fn full_sync(node: &Rc<Node>, socket: &mut Socket, id: u64, origin: Origin, psync: bool, diskless: bool) -> std::io::Result<()> {
    let (cut_taken, cut) = futures::channel::oneshot::channel::<()>();
    let (stream, mut streamed) = match diskless {
        true => {
            let (sender, receiver) = futures::channel::mpsc::channel::<Vec<u8>>(2);
            (Some(sender), Some(receiver))
        }
        false => (None, None),
    };
    let snapshot = match &origin {
        Origin::Mark(mark) => crate::save::snapshot_for_replica(node, *mark, cut_taken, stream).boxed_local(),
        Origin::Paused(_) => crate::save::snapshot_for_chained_replica(node, cut_taken, stream).boxed_local(),
    };
    let mut snapshot = std::pin::pin!(snapshot.fuse());
    // The cut comes first; until it does the snapshot waits for another save to end.
    let mut cut = cut.fuse();
    // Biased: a snapshot that already ended took its cut first.
    let failed = futures::select_biased! {
        _ = cut => None,
        result = snapshot => Some(result),
    };
    if let Some(result) = failed {
        let e = result.err().unwrap_or_else(|| std::io::Error::other("the snapshot ended before its cut"));
        tracing::warn!("the snapshot for a replica failed: {e}");
        return Err(e);
    }
    let (replid, offset) = match origin {
        Origin::Mark(mark) => mark_offset(node, mark).await,
        // The cut is taken: the link goes on.
        Origin::Paused(paused) => (with_master(|master| master.replid.clone()), paused.offset),
    };
    let line = if psync { format!("+FULLRESYNC {replid} {offset}\r\n") } else { String::new() };
    socket.write_all(line.as_bytes()).await?;
    let result = match streamed.as_mut() {
        Some(chunks) => {
            let eof = crate::info::system::random_hex40();
            socket.write_all(format!("$EOF:{eof}\r\n").as_bytes()).await?;
            // A replica that stops reading holds the snapshot (and every save after it):
            // past `repl-timeout` without progress it is dropped, as Redis drops it.
            let timeout = Duration::from_secs(node.config.borrow().repl_timeout.max(1));
            let mut result = None;
            loop {
                futures::select_biased! {
                    chunk = futures::StreamExt::next(chunks) => match chunk {
                        Some(bytes) => {
                            let write = std::pin::pin!(socket.write_all(&bytes));
                            match select(write, std::pin::pin!(glommio::timer::sleep(timeout))).await {
                                Either::Left((written, _)) => written?,
                                Either::Right(_) => return Err(std::io::Error::other("Disconnecting timedout replica (streaming sync)")),
                            }
                        }
                        // The snapshot ended (it held the sender).
                        None => break,
                    },
                    ended = snapshot => result = Some(ended),
                }
            }
            let result = match result {
                Some(result) => result,
                None => snapshot.await,
            };
            if result.is_ok() {
                socket.write_all(eof.as_bytes()).await?;
            }
            result
        }
        None => {
            // Newlines keep the replica's link alive while the file is written, as Redis's do.
            let result = loop {
                let tick = glommio::timer::sleep(Duration::from_secs(1));
                match select(snapshot.as_mut(), std::pin::pin!(tick)).await {
                    Either::Left((result, _)) => break result,
                    Either::Right(_) => socket.write_all(b"\n").await?,
                }
            };
            match result {
                Ok(path) => {
                    let sent = crate::sync_cmd::send_file(socket, &path).await;
                    let _ = std::fs::remove_file(&path);
                    sent.map(|()| path)
                }
                Err(e) => Err(e),
            }
        }
    };
    result.map_err(|e| {
        tracing::warn!("the snapshot for a replica failed: {e}");
        e
    })?;
    with_master(|master| {
        if let Some(replica) = master.replica_mut(id) {
            // Streamed: online at its first acknowledgement (see `take_acks`).
            replica.online = !diskless;
            replica.until_ack = diskless;
        }
    });
    tracing::info!("Synchronization with replica succeeded");
    Ok(())
}

/// The replication id and the stream's offset at cut `mark`, once the writer passed it.
async fn mark_offset(node: &Rc<Node>, mark: u64) -> (String, u64) {
    let found = || with_master(|master| master.marks.iter().find(|(id, _)| *id == mark).map(|&(_, offset)| (master.replid.clone(), offset)));
    node.core.aof_wait_until(|| found().is_some()).await;
    let at = found().expect("the writer passed the mark");
    with_master(|master| master.marks.retain(|(id, _)| *id != mark));
    at
}

/// Sends the replica the stream as it grows, and takes its acknowledgements, until it goes,
/// is dropped, or the server shuts down (after sending what was produced).
async fn stream(node: &Rc<Node>, socket: &mut Socket, client: &crate::client::ClientInfo) -> std::io::Result<()> {
    let id = client.id;
    let mut input = BytesMut::new();
    let mut scratch = vec![0u8; 4096];
    let mut decoder = shoal_resp::RequestDecoder::new(shoal_resp::DecodeLimits::default());
    let mut out = Vec::new();
    loop {
        // CLIENT KILL: the event stays set, so it must end the loop, not just a wait.
        if client.kill.is_set() {
            return Ok(());
        }
        out.clear();
        let gone = with_master(|master| {
            let Some(replica) = master.replica(id) else { return true };
            if replica.dropped {
                return true;
            }
            if replica.until_ack {
                return false;
            }
            let sent = replica.sent.expect("a streaming replica knows its offset");
            let end = master.offset.min(sent + SEND_CHUNK);
            if end > sent {
                let from = (sent - master.start) as usize;
                out.extend(master.backlog.range(from..from + (end - sent) as usize));
            }
            false
        });
        if gone {
            return Err(std::io::Error::other("replica dropped"));
        }
        if !out.is_empty() {
            // A replica that reads nothing stalls this write: being dropped for its lag, a
            // kill or the shutdown end it.
            let dropped = || with_master(|master| master.replica(id).is_none_or(|r| r.dropped));
            let write = std::pin::pin!(socket.write_all_now(&out));
            let dropped = std::pin::pin!(node.core.aof_wait_until(dropped));
            let stop = std::pin::pin!(select(dropped, select(client.kill.wait(), node.shutdown.wait())));
            if let Either::Left((written, _)) = select(write, stop).await {
                written?;
            } else {
                return Err(std::io::Error::other("replica dropped while written to"));
            }
            let len = out.len() as u64;
            with_master(|master| {
                if let Some(replica) = master.replica_mut(id) {
                    replica.sent = replica.sent.map(|sent| sent + len);
                }
            });
            continue;
        }
        if node.core.shared.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        let more = || with_master(|master| master.replica(id).is_none_or(|r| r.dropped || r.sent.is_some_and(|s| master.offset > s)));
        let fed = node.core.aof_wait_until(|| more() || node.core.shared.shutdown.load(Ordering::Relaxed));
        let tick = glommio::timer::sleep(Duration::from_millis(100));
        let woken = {
            let readable = std::pin::pin!(socket.readable());
            let killed = std::pin::pin!(select(node.shutdown.wait(), client.kill.wait()));
            matches!(select(readable, select(std::pin::pin!(fed), select(std::pin::pin!(tick), killed))).await, Either::Left(_))
        };
        if woken {
            if socket.read(&mut input, &mut scratch).await? == 0 {
                return Ok(());
            }
            take_acks(&mut decoder, &mut input, id)?;
        }
    }
}

/// Reads the replica's `REPLCONF ACK <offset> [FACK <offset>]` commands out of `input`.
fn take_acks(decoder: &mut shoal_resp::RequestDecoder, input: &mut BytesMut, id: u64) -> std::io::Result<()> {
    loop {
        match decoder.decode(input) {
            Ok(Some(args)) => {
                let ack = args.len() >= 3 && args[0].eq_ignore_ascii_case(b"replconf") && args[1].eq_ignore_ascii_case(b"ack");
                let number = |arg: &Bytes| std::str::from_utf8(arg).ok().and_then(|s| s.parse::<u64>().ok());
                if let Some(offset) = ack.then(|| number(&args[2])).flatten() {
                    let fack = (args.len() >= 5 && args[3].eq_ignore_ascii_case(b"fack")).then(|| number(&args[4])).flatten();
                    with_master(|master| {
                        if let Some(replica) = master.replica_mut(id) {
                            replica.ack = replica.ack.max(offset);
                            replica.ack_ms = shoal_runtime::now_ms();
                            replica.fack = replica.fack.max(fack.unwrap_or(0));
                            if replica.until_ack {
                                (replica.until_ack, replica.online) = (false, true);
                            }
                        }
                    });
                }
            }
            Ok(None) => return Ok(()),
            Err(_) => return Err(std::io::Error::other("protocol error from a replica")),
        }
    }
}

/// WAIT numreplicas timeout, once parsed: the replicas that acknowledged everything this
/// connection wrote (its writes are in the stream once the log's streams are fed up to
/// `marks`), once `wanted` did or `timeout` passed.
pub async fn wait(
    node: &Rc<Node>,
    marks: Option<Vec<u64>>,
    wanted: i64,
    timeout: Option<Duration>,
    interrupted: futures::future::LocalBoxFuture<'_, Option<Frame>>,
) -> Frame {
    fn acked(target: u64) -> i64 {
        with_master(|master| master.replicas.iter().filter(|r| r.online && r.ack >= target).count() as i64)
    }
    let work = async {
        // A connection that wrote nothing waits for no offset (Redis's `woff` of 0), but for
        // as many replicas as it asked.
        let target = offset_of(node, marks.as_deref()).await;
        if acked(target) < wanted && target > 0 {
            ask_for_acks(node).await;
        }
        // Acknowledgements arrive on the replicas' cores; look again every millisecond.
        while acked(target) < wanted {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        target
    };
    let timer = match timeout {
        Some(timeout) => glommio::timer::sleep(timeout).boxed_local(),
        None => futures::future::pending().boxed_local(),
    };
    let target = if marks.is_some() { with_master(|master| master.offset) } else { 0 };
    match select(interrupted, select(std::pin::pin!(work), timer)).await {
        Either::Left((Some(error), _)) => error,
        Either::Right((Either::Left((target, _)), _)) => Frame::Integer(acked(target)),
        _ => Frame::Integer(acked(target)),
    }
}

/// The offset in the stream where this connection's writes end (logged up to `marks`; None:
/// it wrote nothing, 0), once the log fed them to the stream.
pub async fn offset_of(node: &Rc<Node>, marks: Option<&[u64]>) -> u64 {
    let Some(marks) = marks else { return 0 };
    if shoal_runtime::aof::LOG.feeding() {
        node.core.aof_wait_until(|| shoal_runtime::aof::LOG.fed_up_to(marks) || !shoal_runtime::aof::LOG.feeding()).await;
    }
    with_master(|master| master.offset)
}

/// Online replicas that said their append-only file holds the stream up to `target` (FACK),
/// as Redis's `replicationCountAOFAcksByOffset` counts them.
pub fn fsynced_replicas(target: u64) -> i64 {
    with_master(|master| master.replicas.iter().filter(|r| r.online && !r.dropped && r.fack >= target).count() as i64)
}

/// Asks the replicas for an acknowledgement now (WAITAOF).
pub async fn ask_for_acks(node: &Rc<Node>) {
    inject(&["REPLCONF", "GETACK", "*"]);
    node.core.call_on(0, |core| core.aof_announce_durable()).await;
}

/// Before the server exits (SHUTDOWN without NOW, a signal): writes pause, and the online
/// replicas get up to `shutdown-timeout` seconds to acknowledge everything written, as
/// Redis does, so a write that was acknowledged is on the replicas too. Returns whether a
/// pause was set (to lift if the shutdown does not go ahead).
pub async fn wait_for_replicas(node: &Rc<Node>) -> bool {
    let timeout = node.config.borrow().shutdown_timeout;
    let online = || with_master(|master| master.replicas.iter().filter(|r| r.online && !r.dropped).count());
    if timeout == 0 || !shoal_runtime::aof::LOG.feeding() || online() == 0 {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    node.core.call_all(move |_| crate::node::current().pause.pause(crate::pause::PauseMode::Write, deadline)).await;
    tracing::info!("Waiting for replicas before shutting down.");
    let work = async {
        let target = paused_offset(node).await;
        ask_for_acks(node).await;
        let behind = || with_master(|master| master.replicas.iter().filter(|r| r.online && !r.dropped && r.ack < target).count());
        while behind() > 0 {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    };
    let late = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    if let Either::Right(_) = select(std::pin::pin!(work), std::pin::pin!(late)).await {
        tracing::warn!("Lagging replica(s) did not acknowledge everything within shutdown-timeout.");
    } else {
        tracing::info!("Replicas are in sync: shutting down.");
    }
    true
}

/// Lifts [`wait_for_replicas`]'s pause (the shutdown did not go ahead).
pub async fn resume_after_failed_shutdown(node: &Rc<Node>) {
    node.core.call_all(|_| crate::node::current().pause.unpause()).await;
}

/// What INFO's replication section says of the master.
pub fn info(add: &mut dyn FnMut(&str, String)) {
    with_master(|master| {
        let now_ms = shoal_runtime::now_ms();
        let online: Vec<&Replica> = master.replicas.iter().filter(|r| !r.dropped).collect();
        add("connected_slaves", online.len().to_string());
        // With min-replicas-to-write on, how many count as good (Redis's place for it).
        let config = crate::node::current().config.clone();
        let (wanted, max_lag) = (config.borrow().min_replicas_to_write, config.borrow().min_replicas_max_lag);
        if wanted > 0 && max_lag > 0 {
            add("min_slaves_good_slaves", master.good(max_lag).to_string());
        }
        for (i, replica) in online.iter().enumerate() {
            let state = if replica.online {
                "online"
            } else if replica.sent.is_some() {
                "send_bulk"
            } else {
                "wait_bgsave"
            };
            add(
                &format!("slave{i}"),
                format!("ip={},port={},state={state},offset={},lag={}", replica.ip, replica.port, replica.ack, now_ms.saturating_sub(replica.ack_ms) / 1000),
            );
        }
        add("master_failover_state", failover_state().to_owned());
        add("master_replid", master.replid.clone());
        add("master_replid2", master.replid2.clone());
        add("master_repl_offset", master.offset.to_string());
        add("second_repl_offset", master.second_offset.to_string());
        add("repl_backlog_active", u8::from(master.active).to_string());
        add("repl_backlog_size", master.backlog_size.max(BACKLOG_MIN).to_string());
        // Redis counts bytes from 1: the first byte the backlog holds.
        add("repl_backlog_first_byte_offset", if master.active { (master.start + 1).to_string() } else { "0".to_owned() });
        add("repl_backlog_histlen", master.backlog.len().to_string());
    });
}

/// ROLE on a master: ["master", offset, [[ip, port, acknowledged offset], ...]].
pub fn role() -> Frame {
    let bulk = |s: String| Frame::Bulk(Bytes::from(s));
    with_master(|master| {
        let replicas = master
            .replicas
            .iter()
            .filter(|r| r.online && !r.dropped)
            .map(|r| Frame::Array(vec![bulk(r.ip.clone()), bulk(r.port.to_string()), bulk(r.ack.to_string())]))
            .collect();
        Frame::Array(vec![bulk("master".to_owned()), Frame::Integer(master.offset as i64), Frame::Array(replicas)])
    })
}

/// `min-replicas-to-write`: whether writes are refused for want of replicas that
/// acknowledged within `min-replicas-max-lag` seconds.
pub fn too_few_replicas(node: &Node) -> bool {
    let (wanted, max_lag) = {
        let config = node.config.borrow();
        (config.min_replicas_to_write, config.min_replicas_max_lag)
    };
    wanted > 0 && good_replicas(max_lag) < wanted
}

/// Online replicas whose last acknowledgement is at most `max_lag` seconds old.
fn good_replicas(max_lag: u64) -> u64 {
    with_master(|master| master.good(max_lag))
}

/// NOREPLICAS for a write while [`too_few_replicas`].
pub fn refusal(node: &Node, spec: &shoal_commands::CommandSpec) -> Option<Frame> {
    (spec.is_write() && too_few_replicas(node)).then(|| shoal_commands::errors::error(NOREPLICAS))
}

pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// Disconnects every replica (this server now follows a master: its dataset will be
/// replaced).
pub fn drop_all() {
    if let Some(master) = MASTER.lock().expect("not poisoned").as_mut() {
        for replica in &mut master.replicas {
            replica.dropped = true;
        }
    }
}

/// A new replication history (REPLICAOF NO ONE): a new id, the old one kept as the second,
/// as Redis's `shiftReplicationId`.
pub fn new_history() {
    with_master(|master| {
        master.replid2 = std::mem::replace(&mut master.replid, crate::info::system::random_hex40());
        master.second_offset = master.offset as i64 + 1;
    });
}

/// Bytes the backlog holds (INFO memory's `mem_replication_backlog`).
pub fn backlog_bytes() -> usize {
    MASTER.lock().expect("not poisoned").as_ref().map_or(0, |master| master.backlog.len())
}

/// Whether client `id` is a replica (CLIENT LIST's flag `S`).
pub fn is_replica(id: u64) -> bool {
    MASTER.lock().expect("not poisoned").as_ref().is_some_and(|master| master.replicas.iter().any(|r| r.id == id))
}

/// FAILOVER's progress (Redis's `failover_state`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FailoverState {
    /// Writes are paused; waiting until the target replica acknowledged everything.
    WaitForSync,
    /// This server follows the target and has asked it (`PSYNC ... FAILOVER`) to take over.
    InProgress,
}

struct Failover {
    state: FailoverState,
    /// The replica chosen (`TO host port`, or the first one found in sync).
    target: Option<(String, u16)>,
    deadline: Option<Instant>,
    force: bool,
}

static FAILOVER: Mutex<Option<Failover>> = Mutex::new(None);

/// INFO's `master_failover_state`.
pub fn failover_state() -> &'static str {
    match FAILOVER.lock().expect("not poisoned").as_ref().map(|f| f.state) {
        None => "no-failover",
        Some(FailoverState::WaitForSync) => "waiting-for-sync",
        Some(FailoverState::InProgress) => "failover-in-progress",
    }
}

/// Whether a FAILOVER is under way (a replica's PSYNC is then refused).
pub fn failing_over() -> bool {
    FAILOVER.lock().expect("not poisoned").is_some()
}

/// Whether this server, following its failover target, is to ask it to take over.
pub fn failover_in_progress() -> bool {
    FAILOVER.lock().expect("not poisoned").as_ref().is_some_and(|f| f.state == FailoverState::InProgress)
}

/// FAILOVER [TO host port [FORCE]] [TIMEOUT ms] | FAILOVER ABORT, as Redis's
/// `failoverCommand`: checks, pauses writes on every core and starts [`run_failover`];
/// the reply comes at once.
pub async fn failover(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    use shoal_commands::{args as parse, errors};
    if args.len() == 2 && args[1].eq_ignore_ascii_case(b"abort") {
        if !failing_over() {
            return errors::error("ERR No failover in progress.");
        }
        abort_failover(node, "Failover manually aborted").await;
        return parse::ok();
    }
    let (mut timeout_ms, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < args.len() {
        let arg = &args[j];
        if arg.eq_ignore_ascii_case(b"timeout") && j + 1 < args.len() && timeout_ms == 0 {
            timeout_ms = match parse::parse_i64(&args[j + 1]) {
                Ok(ms) if ms <= 0 => return errors::error("ERR FAILOVER timeout must be greater than 0"),
                Ok(ms) => ms,
                Err(error) => return error,
            };
            j += 2;
        } else if arg.eq_ignore_ascii_case(b"to") && j + 2 < args.len() && target.is_none() {
            let port = match parse::parse_i64(&args[j + 2]) {
                Ok(port) => port,
                Err(error) => return error,
            };
            target = Some((String::from_utf8_lossy(&args[j + 1]).into_owned(), port));
            j += 3;
        } else if arg.eq_ignore_ascii_case(b"force") && !force {
            force = true;
            j += 1;
        } else {
            return errors::syntax();
        }
    }
    if failing_over() {
        return errors::error("ERR FAILOVER already in progress.");
    }
    if crate::replica::is_replica() {
        return errors::error("ERR FAILOVER is not valid when server is a replica.");
    }
    if with_master(|master| master.replicas.iter().all(|r| r.dropped)) {
        return errors::error("ERR FAILOVER requires connected replicas.");
    }
    if force && (timeout_ms == 0 || target.is_none()) {
        return errors::error("ERR FAILOVER with force option requires both a timeout and target HOST and IP.");
    }
    let target = match target {
        Some((host, port)) => {
            let online = with_master(|master| {
                master.replicas.iter().find(|r| !r.dropped && r.ip.eq_ignore_ascii_case(&host) && i64::from(r.port) == port).map(|r| r.online)
            });
            match online {
                None => return errors::error("ERR FAILOVER target HOST and PORT is not a replica."),
                Some(false) => return errors::error("ERR FAILOVER target replica is not online."),
                Some(true) => {}
            }
            tracing::info!("FAILOVER requested to {host}:{port}.");
            Some((host, port as u16))
        }
        None => {
            tracing::info!("FAILOVER requested to any replica.");
            None
        }
    };
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    *FAILOVER.lock().expect("not poisoned") = Some(Failover { state: FailoverState::WaitForSync, target, deadline, force });
    // Writes wait until the failover ends (and then meet a replica).
    let forever = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    node.core.call_all(move |_| crate::node::current().pause.pause(crate::pause::PauseMode::Write, forever)).await;
    let node = node.clone();
    glommio::spawn_local(async move { run_failover(&node).await }).detach();
    shoal_commands::args::ok()
}

/// Once writes are paused: waits until no client is still running a round of commands that
/// may write (it passed the pause before it began) unless it is blocked (a blocked write is
/// served only by a write, which the pause holds). Without this a write in flight when the
/// pause began could run after the offset the replicas must reach was taken, be
/// acknowledged, and be lost by a failover. Gives up after ten seconds (a long script).
pub async fn writes_drained(node: &Rc<Node>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let busy = node.core.call_all(|_| crate::node::current().clients.borrow().values().any(|client| client.writing.get() && !client.blocked.get())).await;
        if !busy.into_iter().any(|b| b) {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    tracing::warn!("Writes still running after ten seconds of pause: going on without them.");
}

/// Once writes are paused: the stream's offset after every write that ran, which replicas
/// must reach (the writes still running end first, then every core's records are in the
/// streams once each core answered, and the log feeds them).
pub async fn paused_offset(node: &Rc<Node>) -> u64 {
    writes_drained(node).await;
    let marks = crate::admin_cmd::logged_so_far(node).await;
    offset_of(node, Some(&marks)).await
}

/// Waits until the target replica (or any one, without TO) acknowledged the whole stream,
/// then follows it and asks it to take over (`crate::replica::follow` sends `PSYNC ...
/// FAILOVER`); past the timeout, FORCE fails over anyway, otherwise the failover is aborted.
async fn run_failover(node: &Rc<Node>) {
    let target_offset = paused_offset(node).await;
    let mut asked_at: Option<Instant> = None;
    loop {
        let Some((target, deadline, force)) = FAILOVER.lock().expect("not poisoned").as_ref().map(|f| (f.target.clone(), f.deadline, f.force)) else { return };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if !force {
                abort_failover(node, "Replica never caught up before timeout").await;
                return;
            }
            let (host, port) = target.expect("FORCE comes with a target");
            tracing::info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
            fail_over_to(node, host, port).await;
            return;
        }
        let synced = with_master(|master| {
            master
                .replicas
                .iter()
                .filter(|r| r.online && !r.dropped && r.ack >= target_offset)
                .find(|r| target.as_ref().is_none_or(|(host, port)| r.ip.eq_ignore_ascii_case(host) && r.port == *port))
                .map(|r| (r.ip.clone(), r.port))
        });
        if let Some((host, port)) = synced {
            tracing::info!("Failover target {host}:{port} is synced, failing over.");
            fail_over_to(node, host, port).await;
            return;
        }
        if asked_at.is_none_or(|at| at.elapsed() >= Duration::from_millis(100)) {
            asked_at = Some(Instant::now());
            ask_for_acks(node).await;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

async fn fail_over_to(node: &Rc<Node>, host: String, port: u16) {
    if let Some(failover) = FAILOVER.lock().expect("not poisoned").as_mut() {
        failover.state = FailoverState::InProgress;
        failover.target = Some((host.clone(), port));
    }
    crate::replica::follow(node, host, port, true).await;
}

/// The failover is over: writes go on (on a replica now, they meet READONLY).
pub async fn end_failover(node: &Rc<Node>) {
    if FAILOVER.lock().expect("not poisoned").take().is_some() {
        node.core.call_all(|_| crate::node::current().pause.unpause()).await;
    }
}

/// Redis's `abortFailover`: back to no failover; one already in progress becomes a master
/// again.
pub async fn abort_failover(node: &Rc<Node>, why: &str) {
    let Some((state, target)) = FAILOVER.lock().expect("not poisoned").as_ref().map(|f| (f.state, f.target.clone())) else { return };
    match target {
        Some((host, port)) => tracing::info!("FAILOVER to {host}:{port} aborted: {why}"),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if state == FailoverState::InProgress {
        crate::replica::stop_following(node).await;
    }
    end_failover(node).await;
}

/// Where a snapshot for the RDB file stands in the replication stream, so that after a
/// restart from it this server continues the same history (Redis's `rdbSaveInfo`: the
/// `repl-id`, `repl-offset` and `repl-stream-db` aux fields).
pub enum SavePoint {
    /// A replica whose link is paused until the cut is taken.
    Paused(crate::replica::Paused),
    /// A master feeding replicas: the cut puts this mark in every stream.
    Mark(u64),
    /// The stream does not move (a replica whose link is down, or the link itself saving:
    /// see `save::Purpose::RdbInLink`).
    Still(String, u64, usize),
}

/// Before a save's cut: how it will know its place in the stream (None: this server keeps
/// no replication history worth saving: a master without a backlog, as Redis saves none).
pub async fn save_point() -> Option<SavePoint> {
    if crate::replica::is_replica() {
        if crate::replica::streaming() {
            if let Some(paused) = crate::replica::pause_link().await {
                return Some(SavePoint::Paused(paused));
            }
        }
        let (replid, offset, db) = crate::replica::history()?;
        return Some(SavePoint::Still(replid, offset, db));
    }
    (with_master(|master| master.active) && shoal_runtime::aof::LOG.feeding()).then(|| SavePoint::Mark(NEXT_MARK.fetch_add(1, Ordering::Relaxed)))
}

/// After the cut (the link may go on): the replication id, offset and stream database the
/// snapshot holds. A mark the writer does not pass within a second (it is stopping) gives
/// none.
pub async fn saved_at(node: &Rc<Node>, point: SavePoint) -> Option<(String, u64, usize)> {
    match point {
        SavePoint::Paused(paused) => {
            let db = crate::replica::stream_db();
            Some((with_master(|master| master.replid.clone()), paused.offset, db))
        }
        SavePoint::Still(replid, offset, db) => Some((replid, offset, db)),
        // After a mark the stream selects its database again: any will do.
        SavePoint::Mark(mark) => {
            let found = std::pin::pin!(mark_offset(node, mark));
            match select(found, std::pin::pin!(glommio::timer::sleep(Duration::from_secs(1)))).await {
                Either::Left(((replid, offset), _)) => Some((replid, offset, 0)),
                Either::Right(_) => {
                    with_master(|master| master.marks.retain(|(id, _)| *id != mark));
                    None
                }
            }
        }
    }
}

/// At startup, from the RDB file's aux fields: a replica continues its master's history from
/// there (a partial resynchronisation when the master still has it); a master keeps it as
/// its second id, so its replicas continue (Redis's `loadDataFromDisk`); the caller starts
/// feeding the backlog before the first write.
pub fn restore(replid: &str, offset: u64, db: usize, replica: bool) {
    if replica {
        crate::replica::restore_history(replid, offset, db);
        follow_history(replid, offset, true);
        return;
    }
    with_master(|master| {
        master.replid2 = replid.to_owned();
        master.second_offset = offset as i64 + 1;
        master.offset = offset;
        master.start = offset;
        master.backlog.clear();
        master.active = true;
    });
}

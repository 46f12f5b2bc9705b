//! The connection loop: read bytes, decode requests, run them (grouped per owning core),
//! write the replies in request order.
//!
//! One task per connection, on the core that accepted it. Protocol errors get Redis's reply
//! and close the connection; I/O errors close it quietly (logged at debug level).

use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either, LocalBoxFuture};
use futures::AsyncWriteExt;
use futures::FutureExt;
use glommio::net::TcpStream;
use shoal_commands::dispatch::{self, Route};
use shoal_resp::{encode, Frame, Protocol, RequestDecoder};
use shoal_runtime::{BlockCtx, Cmd};

use crate::client::ClientInfo;
use crate::node::Node;
use crate::server_commands::{self, After};
use crate::socket::Socket;
use shoal_runtime::pubsub::Subscriber;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Commands run together from one read, at most; the rest wait for the next round. This
/// bounds the memory one pipelining client can make us hold.
const PIPELINE_DEPTH_MAX: usize = 1024;

/// Whether replies are sent (CLIENT REPLY).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
    /// SKIP was just given: its own reply is suppressed, then the mode becomes Skip.
    SkipArmed,
}

/// A connection's state between commands.
pub struct Conn {
    pub client: Rc<ClientInfo>,
    pub db: usize,
    pub proto: Protocol,
    pub reply_mode: ReplyMode,
    /// Whether the client may run commands other than AUTH, HELLO, QUIT and RESET. As in
    /// Redis, it starts true when no `requirepass` is set at connect time.
    pub authenticated: bool,
    /// Inside MULTI: the queued commands.
    pub multi: Option<crate::multi::MultiState>,
    /// Keys under WATCH.
    pub watch: Option<crate::multi::WatchState>,
    /// While EXEC runs its queue: a script then runs under EXEC's locks.
    pub in_exec: bool,
    /// Once subscribed: the subscriptions and the messages waiting to be written (see
    /// `crate::pubsub`).
    pub pubsub: Option<Rc<shoal_runtime::pubsub::Subscriber>>,
    /// After MONITOR: the lines waiting to be written (see `shoal_runtime::monitor`).
    pub monitor: Option<Rc<shoal_runtime::pubsub::Subscriber>>,
    /// Under `appendonly yes`: whether this connection ran commands that may have written
    /// (WAITAOF then waits for the file; see `admin_cmd::waitaof`).
    pub aof_wrote: bool,
    /// Messages this connection PUBLISHed may still be on their way to other cores: an
    /// SPUBLISH, which travels through its channel's owner, waits for them first.
    pub published: bool,
    /// CLIENT TRACKING's options while tracking is on (see `crate::tracking`).
    pub tracking: Option<crate::tracking::Options>,
    /// Where this connection's invalidation pushes wait (its own tracking, or another
    /// client's REDIRECT to it); written after each round's replies.
    pub outlet: Option<Rc<shoal_runtime::tracking::Outlet>>,
    /// What REPLCONF set (see `crate::sync_cmd`).
    pub replconf: crate::sync_cmd::ReplConf,
    /// This connection is the link to this replica's master: its commands come from the
    /// master, run whatever limits say, and get no replies (see `crate::replica`).
    pub master_link: Option<Rc<crate::replica::MasterLink>>,
    /// Cluster mode: READONLY (reads of the master's slots on its replica).
    pub cluster_readonly: bool,
    /// Cluster mode: ASKING came before this command (or this transaction).
    pub asking: bool,
    /// Cluster mode: a request whose keys' presence on other cores must be looked up before
    /// its redirection is known (its slot is open), taken again by the next decode round...
    pub cluster_stash: Option<Vec<Bytes>>,
    /// ...with that presence, key by key.
    pub cluster_presence: Option<Vec<bool>>,
    /// Cluster mode: the guard flags of the connection command about to run (see
    /// `crate::cluster::guard`), for the scripts that check their keys again where they run.
    pub cluster_guard: u8,
    /// HIMPORT PREPARE's fieldsets: HIMPORT SET gets its fields from here before it leaves
    /// the connection.
    pub fieldsets: shoal_commands::hashes::himport::Fieldsets,
}

/// A reply slot: either computed already, or the i-th command of the pending batch.
enum Slot {
    Ready(Frame),
    Pending(usize),
}

impl Conn {
    /// A new connection's state: RESP2, database 0. A master link gets no replies.
    fn new(client: Rc<ClientInfo>, authenticated: bool, master_link: Option<Rc<crate::replica::MasterLink>>) -> Conn {
        Conn {
            client,
            db: 0,
            proto: Protocol::Resp2,
            reply_mode: if master_link.is_some() { ReplyMode::Off } else { ReplyMode::On },
            authenticated,
            multi: None,
            watch: None,
            in_exec: false,
            pubsub: None,
            monitor: None,
            aof_wrote: false,
            published: false,
            tracking: None,
            outlet: None,
            replconf: Default::default(),
            master_link,
            cluster_readonly: false,
            asking: false,
            cluster_stash: None,
            cluster_presence: None,
            cluster_guard: 0,
            fieldsets: Default::default(),
        }
    }
}

fn set_keepalive(fd: i32, seconds: u32) {
    if seconds == 0 {
        return;
    }
    let on: libc::c_int = 1;
    let idle = seconds as libc::c_int;
    let interval = (seconds / 3).max(1) as libc::c_int;
    let count: libc::c_int = 3;
    // SAFETY: setsockopt reads the option values we pass by pointer and length only.
    unsafe {
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, &on as *const _ as *const libc::c_void, size);
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &idle as *const _ as *const libc::c_void, size);
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, &interval as *const _ as *const libc::c_void, size);
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, &count as *const _ as *const libc::c_void, size);
    }
}

pub async fn serve(node: Rc<Node>, stream: TcpStream) {
    serve_from(node, stream, None).await;
}

/// A connection accepted on `unixsocket` (at `path`): as [`serve`]; its address is the
/// socket's path, as Redis shows it (`/path:0`).
pub async fn serve_unix(node: Rc<Node>, stream: TcpStream, path: String) {
    serve_from(node, stream, Some(path)).await;
}

async fn serve_from(node: Rc<Node>, mut stream: TcpStream, unix_path: Option<String>) {
    use std::os::unix::io::AsRawFd;
    let shared = node.core.shared.clone();
    shared.connections_received.fetch_add(1, Ordering::Relaxed);
    let (maxclients, keepalive) = {
        let config = node.config.borrow();
        (config.maxclients as usize, config.tcp_keepalive)
    };
    // Count ourselves first, so two cores accepting at once cannot both squeeze under the cap.
    if shared.clients.fetch_add(1, Ordering::SeqCst) >= maxclients {
        shared.clients.fetch_sub(1, Ordering::SeqCst);
        shared.rejected_connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        return;
    }
    let fd = stream.as_raw_fd();
    if unix_path.is_none() {
        let _ = stream.set_nodelay(true);
        set_keepalive(fd, keepalive);
    }
    let id = shared.next_client_id.fetch_add(1, Ordering::SeqCst) + 1;
    let (addr, laddr) = match &unix_path {
        Some(path) => (format!("{path}:0"), format!("{path}:0")),
        None => (stream.peer_addr().map(|a| a.to_string()).unwrap_or_default(), stream.local_addr().map(|a| a.to_string()).unwrap_or_default()),
    };
    let client = Rc::new(ClientInfo::new(id, addr, laddr, fd));
    let mut socket = Socket::new(stream);
    node.clients.borrow_mut().insert(id, client.clone());
    let authenticated = node.config.borrow().requirepass.is_empty();
    let mut conn = Conn::new(client.clone(), authenticated, None);
    if let Err(e) = serve_loop(&node, &mut socket, &mut conn).await {
        tracing::debug!("client {id} closed: {e}");
    }
    leave(&node, conn, socket).await;
    shared.clients.fetch_sub(1, Ordering::SeqCst);
}

/// Serves the stream of this replica's master (connected by `crate::replica`) as a client
/// of its own: its commands run as any client's, without replies. `registered` learns its
/// client id.
pub async fn serve_master(node: Rc<Node>, stream: TcpStream, link: Rc<crate::replica::MasterLink>, registered: impl FnOnce(u64)) {
    use std::os::unix::io::AsRawFd;
    let id = node.core.shared.next_client_id.fetch_add(1, Ordering::SeqCst) + 1;
    let addr = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let laddr = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let client = Rc::new(ClientInfo::new(id, addr, laddr, stream.as_raw_fd()));
    let mut socket = Socket::new(stream);
    node.clients.borrow_mut().insert(id, client.clone());
    registered(id);
    let mut conn = Conn::new(client, true, Some(link));
    // A continued stream goes on in the database it had selected.
    conn.db = crate::replica::stream_db();
    if let Err(e) = serve_loop(&node, &mut socket, &mut conn).await {
        tracing::debug!("master link {id} closed: {e}");
    }
    leave(&node, conn, socket).await;
}

/// A connection that ends: it leaves its transaction, subscriptions and registrations.
async fn leave(node: &Rc<Node>, mut conn: Conn, mut socket: Socket) {
    let (id, client) = (conn.client.id, conn.client.clone());
    crate::multi::leave(node, &mut conn);
    crate::pubsub::disconnect(node, &mut conn);
    crate::admin_cmd::leave_monitor(node, &mut conn);
    // Its outlet goes even if it never picked it up (named as a REDIRECT, then gone).
    conn.outlet = None;
    node.core.tracking_forget(id);
    *client.outlet.borrow_mut() = None;
    // Out of the registry before the descriptor closes: a CLIENT KILL must never shut down a
    // newer connection that reuses the number.
    node.clients.borrow_mut().remove(&id);
    crate::slowlog_cmd::remember_departed(node, id, &client.addr, &client.name.borrow());
    let _ = socket.stream.close().await;
}

async fn serve_loop(node: &Rc<Node>, socket: &mut Socket, conn: &mut Conn) -> std::io::Result<()> {
    let mut decoder = RequestDecoder::new(Default::default());
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    // A master link starts with the stream's bytes that came with the snapshot.
    let link = conn.master_link.clone();
    if let Some(link) = &link {
        input = std::mem::take(&mut *link.leftover.borrow_mut());
    }
    let mut unread_input = !input.is_empty();
    loop {
        // Read, unless killed or shutting down. A kill or shutdown while we wait in the read
        // shuts the socket's read side, which ends the read (ClientInfo::kill).
        if conn.client.kill.is_set() || node.shutdown.is_set() {
            return Ok(());
        }
        crate::tracking::refresh(node, conn);
        // A subscriber writes its messages as they come, until it sends something.
        if conn.pubsub.is_some() || conn.monitor.is_some() || conn.outlet.is_some() {
            deliver_until_readable(node, socket, conn, &mut output).await?;
            if conn.client.kill.is_set() || node.shutdown.is_set() {
                return Ok(());
            }
        }
        let leftover = std::mem::take(&mut unread_input);
        let read = if leftover {
            input.len()
        } else if let Some(link) = &link {
            // A master link acknowledges every second, whether the master sends or not.
            // (More often while what it ran waits to be fsynced here, to acknowledge that.)
            let wait = std::time::Duration::from_millis(if link.fsync_pending() { 20 } else { 1000 });
            let read = {
                let read = std::pin::pin!(socket.read(&mut input, &mut chunk));
                match select(read, std::pin::pin!(glommio::timer::sleep(wait))).await {
                    Either::Left((read, _)) => Some(read?),
                    Either::Right(_) => None,
                }
            };
            let Some(read) = read else {
                link.pause_if_asked(conn.multi.is_some()).await;
                let mut ack = BytesMut::new();
                // A second without a byte from the master: an acknowledgement is due.
                link.acknowledge(node, wait.as_secs() >= 1, &mut ack).await;
                if !ack.is_empty() {
                    socket.write_all(&ack).await?;
                }
                continue;
            };
            read
        } else {
            socket.read(&mut input, &mut chunk).await?
        };
        if read == 0 || conn.client.kill.is_set() {
            return Ok(());
        }
        if let (Some(link), false) = (&link, leftover) {
            link.note_read(&input[input.len() - read..]);
        }
        conn.client.note_input(input.len() + decoder.partial_request_len(), input.capacity());
        conn.client.last_interaction.set(crate::client::coarse_ms());
        {
            let config = node.config.borrow();
            decoder.limits.bulk_len_max = config.proto_max_bulk_len as usize;
        }
        let mut close = false;
        // The master asked for an acknowledgement (REPLCONF GETACK).
        let mut getack = false;
        // Commands answered in this read, to decide whether to batch the write.
        let mut answered = 0;
        while !close {
            // Cluster mode: the view the round's requests are checked against, before they
            // are; each core checks its commands again if it changed by the time they run.
            let guarding = match crate::cluster::generation() {
                generation if generation != 0 && conn.master_link.is_none() => {
                    let readonly = if conn.cluster_readonly { crate::cluster::READONLY } else { 0 };
                    shoal_runtime::Guarding { generation, common: crate::cluster::GUARDED | readonly }
                }
                _ => shoal_runtime::Guarding::default(),
            };
            let (slots, batch, after, protocol_error) = decode_round(node, conn, &mut decoder, &mut input);
            answered += slots.len();
            // CLIENT PAUSE: hold the round while the pause covers its commands.
            let connection_writes = match &after {
                RoundEnd::Connection(spec, _) => Some(crate::pause::connection_command_writes(spec, conn)),
                _ => None,
            };
            let Some(held) = crate::pause::wait_for_round(node, &conn.client, &batch, connection_writes).await else {
                return Ok(());
            };
            // Held by a FAILOVER's pause, the round may now be on a replica: its writes meet
            // READONLY, as Redis checks a paused command again when it runs.
            let mut batch = batch;
            let refused: Vec<Option<Frame>> = if held { batch.iter().map(|cmd| crate::replica::refusal(node, cmd.spec)).collect() } else { Vec::new() };
            let mut connection_refused = match (&after, held) {
                (RoundEnd::Connection(spec, _), true) if connection_writes == Some(true) => crate::replica::refusal(node, spec),
                _ => None,
            };
            if refused.iter().any(Option::is_some) {
                batch = batch.into_iter().zip(&refused).filter(|(_, refusal)| refusal.is_none()).map(|(cmd, _)| cmd).collect();
            }
            // Past the pause: a write of this round may still run after a pause starts, and
            // a FAILOVER or a shutdown waits for it (`replication::writes_drained`).
            conn.client.writing.set(connection_writes == Some(true) || batch.iter().any(|cmd| crate::pause::writes_or_replicates(cmd.spec)));
            // FLUSHALL with save points set also saves (after its reply is known, before it
            // leaves), as Redis does.
            let save_after = batch.iter().any(|cmd| cmd.spec.name == "flushall") && !node.config.borrow().save.is_empty();
            let track = crate::tracking::reads_tracked(conn);
            if !batch.is_empty() {
                // CLIENT CACHING's choice is spent by the command it was for.
                crate::tracking::command_done(conn, "");
            }
            let frames = if batch.is_empty() {
                Vec::new()
            } else {
                // A RESP3 subscriber gets its messages while it waits, as from Redis.
                let pushes = conn.pubsub.clone().filter(|_| conn.proto == Protocol::Resp3);
                let interrupted = || blocked_wait_interrupted(node, &conn.client, &*socket, pushes.clone());
                let block = BlockCtx { may_block: true, interrupted: &interrupted, client: conn.client.id, track, guarding };
                // Reads that run as transactions are remembered before they run (see
                // `shoal_runtime::tracking`).
                let pending_reads = if track {
                    let multi = batch.iter().filter(|cmd| matches!(cmd.route, Route::Multi(_))).map(|cmd| (cmd.spec, &cmd.args[..]));
                    crate::tracking::PendingReads::register(node, conn.client.id, crate::tracking::reads(multi))
                } else {
                    None
                };
                // MONITOR shows each command once it ran, so it keeps their arguments.
                let fed: Option<Vec<_>> = node.core.monitored().then(|| batch.iter().map(|cmd| (cmd.spec, cmd.args.clone())).collect());
                let frames = node.core.execute(conn.db, conn.proto, batch, &block).await;
                drop(pending_reads);
                note_aof_write(conn);
                for (spec, args) in fed.into_iter().flatten() {
                    node.core.feed_monitors(conn.db, &conn.client.addr, spec, &args);
                }
                frames
            };
            // The refused commands' errors where their replies go.
            let frames = if refused.iter().any(Option::is_some) {
                let mut ran = frames.into_iter();
                refused.into_iter().map(|refusal| refusal.unwrap_or_else(|| ran.next().expect("a reply per command run"))).collect()
            } else {
                frames
            };
            if save_after {
                crate::save::save_after_flushall(node, conn.master_link.is_some()).await;
            }
            let mut frames = frames.into_iter().map(Some).collect::<Vec<_>>();
            // A RESP3 subscriber's messages published while its commands ran (its own writes'
            // keyspace events) go before their replies, as Redis writes them.
            if conn.pubsub.is_some() {
                crate::pubsub::drain(conn, &mut output);
            }
            for slot in slots {
                let frame = match slot {
                    Slot::Ready(frame) => frame,
                    Slot::Pending(i) => frames[i].take().expect("each batch reply used once"),
                };
                write_reply(conn, &frame, &mut output);
                // Check after every reply, so the buffer never grows past the limit by more
                // than one reply.
                enforce_output_limit(node, &output)?;
            }
            let mut more = false;
            match after {
                RoundEnd::Drained => {}
                RoundEnd::Full => more = true,
                RoundEnd::Lookup(spec) => {
                    let args = conn.cluster_stash.as_deref().unwrap_or_default();
                    let keys = crate::cluster::query_keys(spec, args).0.into_iter().map(Bytes::copy_from_slice).collect();
                    conn.cluster_presence = Some(crate::cluster::presence(node, keys).await);
                    more = true;
                }
                RoundEnd::Connection(..) if connection_refused.is_some() => {
                    let refusal = connection_refused.take().expect("checked");
                    write_reply(conn, &refusal, &mut output);
                    more = true;
                }
                RoundEnd::Connection(spec, args) if crate::pubsub::subscription(spec.name).is_some() => {
                    crate::pubsub::run_subscription(node, conn, spec, &args, &mut output).await;
                    more = true;
                }
                RoundEnd::Connection(spec, args) => {
                    getack |= link.is_some() && spec.name == "replconf" && args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"getack"));
                    let writes = spec.is_write() || matches!(spec.name, "exec" | "eval" | "evalsha" | "fcall") || spec.name.starts_with("function|");
                    let (frame, after) = if spec.name == "wait" || spec.name == "waitaof" {
                        (Some(wait_for_acks(node, socket, conn, spec, &args).await), After::Continue)
                    } else if spec.name == "sync" || spec.name == "psync" {
                        // The file goes straight to the socket, after the replies before it.
                        write_out(node, socket, conn, &mut output).await?;
                        output.clear();
                        match crate::sync_cmd::sync(node, socket, conn, &args).await? {
                            Some(refusal) => (Some(refusal), After::Continue),
                            None => (None, After::Close),
                        }
                    } else {
                        server_commands::run(node, conn, spec, args).await
                    };
                    if writes {
                        note_aof_write(conn);
                    }
                    crate::tracking::command_done(conn, spec.name);
                    // Messages that arrived before the reply go before it (RESET's reply must
                    // follow every message of the subscriptions it left).
                    crate::pubsub::drain(conn, &mut output);
                    if let Some(subscriber) = &conn.pubsub {
                        subscriber.set_proto(conn.proto);
                    }
                    if let Some(frame) = frame {
                        write_reply(conn, &frame, &mut output);
                    }
                    match after {
                        After::Continue => more = true,
                        After::Close => close = true,
                    }
                }
            }
            conn.client.writing.set(false);
            if let Some(error) = protocol_error {
                encode(&error.to_frame(), conn.proto, &mut output);
                close = true;
            }
            if let Some(link) = &link {
                link.round_done(node, input.len() + decoder.partial_request_len(), conn.multi.is_some(), conn.db, std::mem::take(&mut getack), &mut output)
                    .await;
                link.pause_if_asked(conn.multi.is_some()).await;
            }
            enforce_output_limit(node, &output)?;
            // A master link's output is its ACKs alone: they go at once, however much of the
            // stream is still to run.
            if !output.is_empty() && (!more || output.len() >= READ_CHUNK || link.is_some()) {
                // For a pipelined read, let the other connections that are ready run their
                // commands first, so the core sends its replies in a burst (as Redis does
                // before it sleeps) and clients wake once for many replies. A single command
                // is answered at once: there the delay costs more than the burst saves
                // (measured: +15-20% at pipeline 16, -20% at pipeline 1 if always done).
                if answered > 1 {
                    shoal_runtime::yield_now().await;
                }
                // `appendfsync always`: replies leave once the writes are on disk.
                node.core.aof_wait().await;
                crate::pubsub::drain(conn, &mut output);
                // Invalidations go after the replies: one for a write that followed a read
                // must reach the client after that read's reply.
                if let Some(outlet) = &conn.outlet {
                    outlet.sink.take_pending(&mut output);
                }
                write_out(node, socket, conn, &mut output).await?;
                output.clear();
            }
            if !more {
                break;
            }
        }
        if close {
            return Ok(());
        }
        let query_limit = node.config.borrow().client_query_buffer_limit as usize;
        // The decoder has already taken the finished arguments of a half-read request out of
        // the buffer: they count too.
        let query_len = input.len() + decoder.partial_request_len();
        conn.client.note_input(query_len, input.capacity());
        if query_len > query_limit {
            tracing::warn!("Closing client {} that reached max query buffer length ({query_len} bytes)", conn.client.id);
            return Ok(());
        }
    }
}

/// While the client waits in a blocking command: completes when the wait must end early.
/// The client is marked blocked meanwhile. `Some(reply)` for CLIENT UNBLOCK ... ERROR;
/// `None` when the client closed its connection, was killed, was unblocked with TIMEOUT, or
/// the server shuts down.
fn blocked_wait_interrupted<'a>(
    node: &'a Rc<Node>,
    client: &'a Rc<ClientInfo>,
    socket: &'a Socket,
    pushes: Option<Rc<Subscriber>>,
) -> LocalBoxFuture<'a, Option<Frame>> {
    async move {
        client.set_blocked(true);
        let _unmark = scopeguard(|| client.set_blocked(false));
        // A blocked client that closes its connection stops waiting. Peeking cannot see a
        // close behind commands it pipelined after the blocking one; those wait their turn.
        let peer_closed = std::pin::pin!(socket.closed());
        let gone = std::pin::pin!(select(client.kill.wait(), node.shutdown.wait()));
        let pushes_failed = std::pin::pin!(deliver_while_blocked(socket, pushes));
        let peer_closed = select(peer_closed, pushes_failed);
        let unblocked = std::pin::pin!(client.unblocked());
        match select(unblocked, select(gone, peer_closed)).await {
            Either::Left((true, _)) => Some(Frame::Error(Bytes::from_static(b"UNBLOCKED client unblocked via CLIENT UNBLOCK"))),
            _ => None,
        }
    }
    .boxed_local()
}

/// Writes a blocked RESP3 subscriber's messages as they arrive; completes only when it cannot
/// go on (a failed write, an overflow), which ends the wait like a closed connection. On
/// glommio's socket path (no writes through a shared socket) the messages wait for the
/// command's end instead.
async fn deliver_while_blocked(socket: &Socket, pushes: Option<Rc<Subscriber>>) {
    let Some(subscriber) = pushes.filter(|_| socket.writes_shared()) else { return futures::future::pending().await };
    let mut output = BytesMut::new();
    loop {
        subscriber.ready().await;
        if subscriber.overflowed() {
            return;
        }
        // As in `deliver_until_readable`: the publisher's reply first.
        shoal_runtime::yield_now().await;
        socket.queued_sends_left().await;
        subscriber.take_pending(&mut output);
        subscriber.set_in_flight(output.len());
        let Some(write) = socket.write_all_now_shared(&output) else { return };
        let written = write.await;
        subscriber.set_in_flight(0);
        output.clear();
        if written.is_err() {
            return;
        }
    }
}

/// Runs `f` when dropped.
pub(crate) fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// How a decode round stopped.
enum RoundEnd {
    /// No complete request is left in the buffer.
    Drained,
    /// The batch reached its depth limit; decode again after running it.
    Full,
    /// A connection-level command is next: run the batch, then it.
    Connection(&'static shoal_commands::CommandSpec, Vec<Bytes>),
    /// Cluster mode: the next request (in `Conn::cluster_stash`) needs its keys' presence
    /// looked up on their cores before its redirection is known.
    Lookup(&'static shoal_commands::CommandSpec),
}

/// Decodes requests until the buffer is drained, the batch is full, or a connection-level
/// command needs the batch run first.
fn decode_round(
    node: &Rc<Node>,
    conn: &mut Conn,
    decoder: &mut RequestDecoder,
    input: &mut BytesMut,
) -> (Vec<Slot>, Vec<Cmd>, RoundEnd, Option<shoal_resp::ProtocolError>) {
    let shard_count = node.core.shard_count;
    let mut slots = Vec::new();
    let mut batch = Vec::new();
    loop {
        // CLIENT CACHING applies to one command: it runs in a round of its own.
        if slots.len() >= PIPELINE_DEPTH_MAX || (!batch.is_empty() && crate::tracking::caching_pending(conn)) {
            return (slots, batch, RoundEnd::Full, None);
        }
        let stashed = conn.cluster_stash.take();
        let mut args = match stashed.map_or_else(|| decoder.decode(input), |args| Ok(Some(args))) {
            Ok(Some(args)) => args,
            Ok(None) => return (slots, batch, RoundEnd::Drained, None),
            Err(error) => return (slots, batch, RoundEnd::Drained, Some(error)),
        };
        if args.is_empty() {
            continue;
        }
        match dispatch::resolve(&args, shard_count) {
            Err(frame) => refuse_queueing(node, conn, shoal_commands::table::lookup(&args[0]).map(|s| s.name), frame, &mut slots),
            Ok(resolved) => {
                conn.client.last_command.set(resolved.spec.name);
                // requirepass: until AUTH succeeds only NO_AUTH commands run.
                if let Some(refusal) = server_commands::auth_refusal(node, conn, resolved.spec) {
                    refuse_queueing(node, conn, Some(resolved.spec.name), refusal, &mut slots);
                    continue;
                }
                let from_master = conn.master_link.is_some();
                // Cluster mode: a key this node does not serve gets MOVED, ASK, CROSSSLOT...
                // A served command is checked again where and when it runs if the cluster's
                // view changed by then, or in any case if its slot is open (its guard).
                let mut guard = 0;
                if crate::cluster::enabled() && !from_master {
                    match cluster_refusal(node, conn, resolved.spec, &args) {
                        ClusterVerdict::Serve(flags) => guard = flags,
                        ClusterVerdict::Refuse(refusal) => {
                            refuse_queueing(node, conn, Some(resolved.spec.name), refusal, &mut slots);
                            continue;
                        }
                        ClusterVerdict::Lookup => {
                            conn.cluster_stash = Some(args);
                            return (slots, batch, RoundEnd::Lookup(resolved.spec), None);
                        }
                    }
                }
                // Over `maxmemory` with nothing to evict: OOM (before the Pub/Sub and MULTI
                // rules, as Redis's processCommand checks; see `crate::evict`).
                if let Some(refusal) = crate::evict::refusal(node, conn, resolved.spec, &args).filter(|_| !from_master) {
                    refuse_queueing(node, conn, Some(resolved.spec.name), refusal, &mut slots);
                    continue;
                }
                // `min-replicas-to-write` on a master; a read-only replica takes writes from its
                // master alone; a replica without its master may refuse everything.
                let refusal = crate::replication::refusal(node, resolved.spec)
                    .or_else(|| crate::replica::refusal(node, resolved.spec))
                    .or_else(|| crate::replica::stale_refusal(node, resolved.spec));
                if let Some(refusal) = refusal.filter(|_| !from_master) {
                    refuse_queueing(node, conn, Some(resolved.spec.name), refusal, &mut slots);
                    continue;
                }
                // A subscribed RESP2 client may only (un)subscribe, PING, QUIT and RESET.
                if conn.pubsub.is_some() {
                    if let Some(refusal) = crate::pubsub::refusal(conn, resolved.spec) {
                        node.core.stats.borrow_mut().record_rejected(Some(resolved.spec.name), &refusal);
                        slots.push(Slot::Ready(refusal));
                        continue;
                    }
                    if resolved.spec.name == "ping" && conn.multi.is_none() {
                        if let Some(pong) = crate::pubsub::subscribed_ping(conn, &args) {
                            server_commands::account(node, conn, resolved.spec, &args, std::time::Duration::ZERO, &pong);
                            slots.push(Slot::Ready(pong));
                            continue;
                        }
                    }
                }
                // PUBLISH needs only this core and never waits, so it is answered here, in
                // the pipeline, unless commands before it in this round have not run yet (they
                // take effect first), CLIENT PAUSE may hold it, or an outbox to another core
                // is full (then it waits for room as a connection command).
                if resolved.spec.name == "publish"
                    && !crate::cluster::enabled()
                    && batch.is_empty()
                    && conn.multi.is_none()
                    && conn.pubsub.is_none()
                    && !node.pause.is_set()
                    && node.core.outbox_has_room()
                {
                    let started = shoal_runtime::stats::Stopwatch::start();
                    let reply = Frame::Integer(node.core.publish(&args[1], &args[2]) as i64);
                    conn.published = true;
                    server_commands::account(node, conn, resolved.spec, &args, started.elapsed(), &reply);
                    slots.push(Slot::Ready(reply));
                    continue;
                }
                // Inside MULTI everything but a few connection commands is queued.
                if let Some(multi) = conn.multi.as_mut() {
                    if !crate::multi::NOT_QUEUED.contains(&resolved.spec.name) {
                        if resolved.spec.has(shoal_commands::table::flags::NO_MULTI) {
                            multi.errored = true;
                            slots.push(Slot::Ready(shoal_commands::errors::error("ERR Command not allowed inside a transaction")));
                            continue;
                        }
                        let limit = node.config.borrow().client_query_buffer_limit as usize;
                        if !multi.queue(resolved.spec, resolved.route, args, limit) {
                            // The queue's memory is bounded: drop it, and EXEC will abort.
                            *multi = crate::multi::MultiState { errored: true, ..Default::default() };
                            conn.client.multi.set(0);
                            conn.client.note_queued(0);
                            slots.push(Slot::Ready(shoal_commands::errors::error(
                                "ERR Transaction discarded: its queued commands exceed client-query-buffer-limit",
                            )));
                            continue;
                        }
                        conn.client.multi.set(multi.queued.len() as i64);
                        conn.client.note_queued(multi.queued_bytes);
                        slots.push(Slot::Ready(Frame::Simple(Bytes::from_static(b"QUEUED"))));
                        continue;
                    }
                }
                // The dataset is still loading: only commands flagged `loading` run.
                if crate::rdb_load::loading() && !resolved.spec.has(shoal_commands::table::flags::LOADING) {
                    let refusal = shoal_commands::errors::error(crate::rdb_load::LOADING_ERROR);
                    node.core.stats.borrow_mut().record_rejected(Some(resolved.spec.name), &refusal);
                    slots.push(Slot::Ready(refusal));
                    continue;
                }
                // The last background save failed and the server is told to stop writes then.
                if resolved.spec.is_write() && conn.master_link.is_none() && crate::save::writes_refused(node) {
                    let refusal = shoal_commands::errors::error(&crate::aof::write_error_refusal().unwrap_or_else(|| crate::save::MISCONF.to_owned()));
                    node.core.stats.borrow_mut().record_rejected(Some(resolved.spec.name), &refusal);
                    slots.push(Slot::Ready(refusal));
                    continue;
                }
                // A core busy with a long script: Redis's BUSY rather than a wait.
                if let Some(busy) = busy_refusal(node, resolved.spec, &resolved.route) {
                    node.core.stats.borrow_mut().record_rejected(Some(resolved.spec.name), &busy);
                    slots.push(Slot::Ready(busy));
                    continue;
                }
                // HIMPORT SET takes its fields from the connection to the key's core.
                if resolved.spec.name == "himport|set" {
                    if let Err(refusal) = conn.fieldsets.fields_for(&args) {
                        let refusal = shoal_commands::errors::error(refusal);
                        server_commands::account(node, conn, resolved.spec, &args, std::time::Duration::ZERO, &refusal);
                        slots.push(Slot::Ready(refusal));
                        continue;
                    }
                    args = conn.fieldsets.rewrite_set(args);
                }
                match resolved.route {
                    Route::Connection => {
                        // A script checks its keys where it runs, always (see `scripting`).
                        conn.cluster_guard = guard;
                        return (slots, batch, RoundEnd::Connection(resolved.spec, args), None);
                    }
                    route => {
                        slots.push(Slot::Pending(batch.len()));
                        let guard = if guard & crate::cluster::OPEN != 0 { guard } else { 0 };
                        batch.push(Cmd { spec: resolved.spec, route, args, guard });
                    }
                }
            }
        }
    }
}

/// What the cluster check says of a request.
enum ClusterVerdict {
    /// With the flags of its guard (see `crate::cluster::guard`).
    Serve(u8),
    Refuse(Frame),
    /// Its slot is open and some of its keys live on other cores: look them up first.
    Lookup,
}

/// The cluster's redirection for a command (see `crate::cluster::refusal`). ASKING counts
/// for the next command only (the whole transaction, inside MULTI).
fn cluster_refusal(node: &Rc<Node>, conn: &mut Conn, spec: &'static shoal_commands::CommandSpec, args: &[Bytes]) -> ClusterVerdict {
    // Most requests: keys of one slot served here (see `cluster::served_here`).
    let plain =
        spec.movable_keys.is_none() && !matches!(spec.name, "ssubscribe" | "sunsubscribe" | "spublish" | "exec" | "asking" | "move" | "swapdb" | "copy");
    let readonly = if conn.cluster_readonly { crate::cluster::READONLY } else { 0 };
    if plain && conn.cluster_presence.is_none() && crate::cluster::served_here(spec.keys.positions(args.len()).map(|i| &args[i][..])) {
        if conn.multi.is_none() {
            conn.asking = false;
        }
        return ClusterVerdict::Serve(crate::cluster::GUARDED | readonly);
    }
    let (keys, shard_pubsub) = crate::cluster::query_keys(spec, args);
    let presence = conn.cluster_presence.take();
    if presence.is_none() && needs_lookup(node, &keys) && spec.name != "exec" {
        return ClusterVerdict::Lookup;
    }
    let asking = conn.asking || spec.name == "restore-asking";
    if spec.name != "asking" && conn.multi.is_none() {
        conn.asking = false;
    }
    if spec.name == "exec" {
        return ClusterVerdict::Serve(0);
    }
    let open = keys.first().is_some_and(|first| crate::cluster::slot_is_open(first));
    let query = crate::cluster::Query { keys, write: spec.is_write(), shard_pubsub, migrate: spec.name == "migrate", asking, readonly: conn.cluster_readonly };
    match cluster_check(node, &query, presence.as_deref()).or_else(|| crate::cluster::mode_refusal(spec, args)) {
        Some(refusal) => ClusterVerdict::Refuse(refusal),
        None => {
            let asking = if asking { crate::cluster::ASKING } else { 0 };
            let open = if open { crate::cluster::OPEN } else { 0 };
            ClusterVerdict::Serve(crate::cluster::GUARDED | readonly | asking | open)
        }
    }
}

/// Whether the redirection of a request with these keys depends on keys of other cores.
fn needs_lookup(node: &Rc<Node>, keys: &[&[u8]]) -> bool {
    keys.first().is_some_and(|first| crate::cluster::slot_is_open(first))
        && keys.iter().any(|key| shoal_store::slot::key_shard(key, node.core.shard_count) != node.core.id)
}

/// EXEC's redirection: all the queued commands' keys together, looked up on their cores
/// when their slot is open.
pub async fn cluster_exec_refusal(node: &Rc<Node>, conn: &mut Conn, queued: &[crate::multi::Queued]) -> Option<Frame> {
    let asking = std::mem::take(&mut conn.asking);
    let (keys, shard_pubsub, write) = crate::cluster::queue_keys(queued.iter().map(|q| (q.spec, &q.args[..])));
    let presence =
        if needs_lookup(node, &keys) { Some(crate::cluster::presence(node, keys.iter().map(|k| Bytes::copy_from_slice(k)).collect()).await) } else { None };
    let query = crate::cluster::Query { keys, write, shard_pubsub, migrate: false, asking, readonly: conn.cluster_readonly };
    cluster_check(node, &query, presence.as_deref())
}

/// The redirection of `query`; `presence` (per key, in order) answers whether a key is
/// here when it was looked up, else only keys of this core are asked (none other can be in
/// an open slot's check without a lookup: see [`needs_lookup`]).
fn cluster_check(node: &Rc<Node>, query: &crate::cluster::Query, presence: Option<&[bool]>) -> Option<Frame> {
    if query.keys.is_empty() {
        return None;
    }
    let (reads_when_down, pubsub_when_down) = {
        let config = node.config.borrow();
        (config.cluster_allow_reads_when_down, config.cluster_allow_pubsubshard_when_down)
    };
    let looked_up: Option<std::collections::HashMap<&[u8], bool>> = presence.map(|p| query.keys.iter().copied().zip(p.iter().copied()).collect());
    let mut exists = |key: &[u8]| match &looked_up {
        Some(present) => present.get(key).copied().unwrap_or(false),
        None => node.core.try_with_shard(|shard| crate::cluster::holds(&shard.dbs[0], key)).unwrap_or(true),
    };
    crate::cluster::refusal(query, reads_when_down, pubsub_when_down, &mut exists)
}

/// Answers a command with `refusal` in its place, counted as rejected; inside MULTI the
/// refusal also makes EXEC fail (EXECABORT), as a command refused while queueing does.
fn refuse_queueing(node: &Rc<Node>, conn: &mut Conn, name: Option<&'static str>, refusal: Frame, slots: &mut Vec<Slot>) {
    node.core.stats.borrow_mut().record_rejected(name, &refusal);
    if let Some(multi) = conn.multi.as_mut() {
        multi.errored = true;
    }
    slots.push(Slot::Ready(refusal));
}

/// BUSY for a command that needs another core while that core has run a script for longer
/// than `busy-reply-threshold` (commands flagged `allow_busy`, such as SCRIPT KILL, excepted).
fn busy_refusal(node: &Rc<Node>, spec: &shoal_commands::CommandSpec, route: &Route) -> Option<Frame> {
    let shards = match route {
        Route::Single(Some(shard)) if *shard != node.core.id => std::slice::from_ref(shard),
        Route::Multi(shards) => shards,
        _ => return None,
    };
    if spec.has(shoal_commands::table::flags::ALLOW_BUSY) {
        return None;
    }
    crate::busy::busy_reply(shards, || node.config.borrow().busy_reply_threshold)
}

/// Encodes a reply unless CLIENT REPLY suppresses it.
fn write_reply(conn: &mut Conn, frame: &Frame, output: &mut BytesMut) {
    match conn.reply_mode {
        ReplyMode::On => encode(frame, conn.proto, output),
        ReplyMode::Off => {}
        ReplyMode::Skip => conn.reply_mode = ReplyMode::On,
        ReplyMode::SkipArmed => conn.reply_mode = ReplyMode::Skip,
    }
}

/// Writes `output`: for a subscriber, so that the bytes in flight count against its
/// `client-output-buffer-limit pubsub` and an overflow stops the write; for others, within
/// the normal class's soft limit.
async fn write_out(node: &Rc<Node>, socket: &mut Socket, conn: &Conn, output: &mut BytesMut) -> std::io::Result<()> {
    conn.client.note_output(output.len(), output.capacity());
    let written = write_held(node, socket, conn, output).await;
    conn.client.note_output(0, output.capacity());
    written
}

/// [`write_out`]'s write, held to the client's output limit.
async fn write_held(node: &Rc<Node>, socket: &mut Socket, conn: &Conn, output: &mut BytesMut) -> std::io::Result<()> {
    // A monitor's lines are held to the same limit as a subscriber's messages (a client that
    // does both counts against its subscriptions' buffer).
    match conn.pubsub.as_ref().or(conn.monitor.as_ref()) {
        None => write_within_soft_limit(node, socket, output).await,
        Some(subscriber) => {
            subscriber.set_in_flight(output.len());
            // A subscriber that reads nothing may stall this write for good: an overflow, a
            // kill or the shutdown ends it.
            let write = std::pin::pin!(socket.write_all_now(output));
            let overflow = std::pin::pin!(subscriber.overflow());
            let gone = std::pin::pin!(select(conn.client.kill.wait(), node.shutdown.wait()));
            let written = match select(write, select(overflow, gone)).await {
                Either::Left((written, _)) => written,
                Either::Right((Either::Left(_), _)) => Err(overflowed(conn)),
                Either::Right((Either::Right(_), _)) => Err(std::io::Error::other("killed while writing to a subscriber")),
            };
            subscriber.set_in_flight(0);
            written
        }
    }
}

fn overflowed(conn: &Conn) -> std::io::Error {
    tracing::warn!("Client id={} scheduled to be closed ASAP for overcoming of output buffer limits.", conn.client.id);
    std::io::Error::other("client-output-buffer-limit pubsub reached")
}

/// WAIT or WAITAOF, which may block: they end early as a blocking command does (CLIENT
/// UNBLOCK, kill, close).
async fn wait_for_acks(node: &Rc<Node>, socket: &Socket, conn: &Conn, spec: &'static shoal_commands::CommandSpec, args: &[Bytes]) -> Frame {
    let started = shoal_runtime::stats::Stopwatch::start();
    let interrupted = blocked_wait_interrupted(node, &conn.client, socket, None);
    let frame = if spec.name == "wait" {
        let marks = if conn.aof_wrote { Some(crate::admin_cmd::logged_so_far(node).await) } else { None };
        crate::admin_cmd::wait(node, marks, args, interrupted).await
    } else {
        let marks = if conn.aof_wrote { Some(crate::admin_cmd::logged_so_far(node).await) } else { None };
        let written = marks.as_deref().map_or(crate::admin_cmd::Written::Nothing, crate::admin_cmd::Written::UpTo);
        crate::admin_cmd::waitaof(node, written, args, Some(interrupted)).await
    };
    server_commands::account(node, conn, spec, args, started.elapsed(), &frame);
    frame
}

/// Under `appendonly yes`, after commands that may have written: a WAITAOF must wait.
fn note_aof_write(conn: &mut Conn) {
    if shoal_runtime::aof::LOG.is_active() {
        conn.aof_wrote = true;
    }
}

/// Completes when `sink` has something to write (never without a sink).
async fn ready(sink: Option<&shoal_runtime::pubsub::Subscriber>) {
    match sink {
        Some(sink) => sink.ready().await,
        None => std::future::pending().await,
    }
}

/// While the client sends nothing: writes the messages (and MONITOR lines) that arrive for
/// it. Returns when it has sent something (or closed), or its subscriptions are all gone and
/// written and it does not monitor.
async fn deliver_until_readable(node: &Rc<Node>, socket: &mut Socket, conn: &mut Conn, output: &mut BytesMut) -> std::io::Result<()> {
    loop {
        let (subscriber, monitor) = (conn.pubsub.clone(), conn.monitor.clone());
        let pushes = conn.outlet.as_ref().map(|outlet| outlet.sink.clone());
        if subscriber.is_none() && monitor.is_none() && pushes.is_none() {
            return Ok(());
        }
        if [&subscriber, &monitor, &pushes].into_iter().flatten().any(|sink| sink.overflowed()) {
            return Err(overflowed(conn));
        }
        crate::pubsub::drain(conn, output);
        for sink in [&monitor, &pushes].into_iter().flatten() {
            sink.take_pending(output);
        }
        if !output.is_empty() {
            write_out(node, socket, conn, output).await?;
            output.clear();
            continue;
        }
        if conn.pubsub.is_none() && conn.monitor.is_none() && pushes.is_none() {
            return Ok(());
        }
        if conn.client.kill.is_set() || node.shutdown.is_set() {
            return Ok(());
        }
        // Waiting takes nothing from the socket, so dropping it for a message loses nothing.
        let readable = std::pin::pin!(socket.readable());
        let message = std::pin::pin!(ready(subscriber.as_deref()));
        let line = std::pin::pin!(ready(monitor.as_deref()));
        let push = std::pin::pin!(ready(pushes.as_deref()));
        if let Either::Left(_) = select(readable, select(message, select(line, push))).await {
            return Ok(());
        }
        // Let the publisher that woke us send its reply first (it yields before writing, to
        // batch its own replies): its client then sends the next batch while this one is
        // written, as Redis writes the publisher's reply before the subscribers' messages.
        // Messages published meanwhile ride in the same write. On the socket ring the reply
        // is only queued by then: wait for the turn's sends to be submitted.
        shoal_runtime::yield_now().await;
        socket.queued_sends_left().await;
    }
}

/// Writes `output`. Under `client-output-buffer-limit normal`'s soft limit, a write of more
/// than the soft bytes that the client does not take within the soft seconds disconnects it,
/// as Redis disconnects a client whose output buffer stays over the soft limit that long.
async fn write_within_soft_limit(node: &Rc<Node>, socket: &mut Socket, output: &mut BytesMut) -> std::io::Result<()> {
    let limit = node.config.borrow().client_output_buffer_limit.normal;
    if limit.soft_bytes == 0 || limit.soft_seconds == 0 || output.len() as u64 <= limit.soft_bytes {
        return socket.write_all_taking(output).await;
    }
    let write = std::pin::pin!(socket.write_all_taking(output));
    let deadline = std::pin::pin!(glommio::timer::sleep(std::time::Duration::from_secs(limit.soft_seconds)));
    match select(write, deadline).await {
        Either::Left((written, _)) => written,
        Either::Right(_) => Err(std::io::Error::other("client-output-buffer-limit normal soft limit reached")),
    }
}

/// `client-output-buffer-limit normal`: a client whose pending replies pass the hard limit
/// is disconnected rather than allowed to hold the memory.
fn enforce_output_limit(node: &Rc<Node>, output: &BytesMut) -> std::io::Result<()> {
    let hard = node.config.borrow().client_output_buffer_limit.normal.hard_bytes;
    if hard > 0 && output.len() as u64 > hard {
        return Err(std::io::Error::other("client-output-buffer-limit normal reached"));
    }
    Ok(())
}

//! The cluster bus: how Shoal nodes find each other, agree on who owns each slot, and notice
//! failures. It runs on core 0 and listens on `cluster-port` (the client port + 10000).
//!
//! The mechanisms are Redis Cluster's (MEET to introduce a node, PING/PONG carrying the
//! sender's view of itself and gossip about a few others, slot ownership settled by config
//! epochs, PFAIL after `cluster-node-timeout` without an answer, FAIL once a majority of
//! the masters with slots says so), the wire format is Shoal's own (below): nodes of a
//! Shoal cluster are all Shoal nodes, while clients see Redis Cluster exactly.
//!
//! One message: `SHB1`, its total length (u32), its type (u8), the sender's id (40 bytes),
//! current epoch, config epoch and replication offset (u64 each), its flags (u16), its
//! master's id (40 bytes, zeros for none), its client and bus ports (u16 each), its
//! announced ip (u8 length, bytes), its slots (a 2048-byte bitmap), whether it thinks the
//! cluster is ok (u8); then, for PING, PONG and MEET, a count (u16) of gossip entries (id,
//! flags, port, cport, ip, and when it last heard from that node); for FAIL, the failed
//! node's id; for PUBLISH, the channel and the message (u32 length, bytes each). Integers
//! are big-endian.
//!
//! Each node keeps one outgoing link to every node it knows (it sends PING, or MEET, and
//! reads the PONGs) and answers the links of the others (PONG for each PING or MEET).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::net::{TcpListener, TcpStream};

use super::state::{ClusterNode, Election, Flags, State, MESSAGE_TYPES, SLOTS};
use super::with_state;
use crate::node::Node;

const MAGIC: &[u8; 4] = b"SHB1";
/// The most a message may claim to be (a PUBLISH carries a whole message).
const MESSAGE_MAX: usize = 600 << 20;
/// Gossip entries per message at most.
const GOSSIP_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Ping = 0,
    Pong = 1,
    Meet = 2,
    Fail = 3,
    Publish = 4,
    /// A replica asks the masters for their vote to take its failed master's place.
    AuthRequest = 5,
    /// A master's vote.
    AuthAck = 6,
    /// A replica asks its master to pause for a manual failover (CLUSTER FAILOVER).
    MfStart = 7,
    /// The paused master's replication offset (in the header), for that replica.
    MfOffset = 8,
    /// SPUBLISH, to the other nodes of the shard (its master and replicas).
    PublishShard = 9,
}

impl Type {
    fn from_u8(b: u8) -> Option<Type> {
        Some(match b {
            0 => Type::Ping,
            1 => Type::Pong,
            2 => Type::Meet,
            3 => Type::Fail,
            4 => Type::Publish,
            5 => Type::AuthRequest,
            6 => Type::AuthAck,
            7 => Type::MfStart,
            8 => Type::MfOffset,
            9 => Type::PublishShard,
            _ => return None,
        })
    }
}

/// What a sender says of itself.
#[derive(Debug, Clone)]
pub struct Header {
    pub kind: Type,
    pub id: String,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub repl_offset: u64,
    pub flags: Flags,
    pub master: Option<String>,
    pub port: u16,
    pub cport: u16,
    pub ip: String,
    pub slots: Vec<u8>,
    pub ok: bool,
    /// An AUTH_REQUEST of a manual failover (CLUSTER FAILOVER FORCE): masters vote though
    /// the master is not failed.
    pub force: bool,
}

#[derive(Debug, Clone)]
pub struct Gossip {
    pub id: String,
    pub flags: Flags,
    pub port: u16,
    pub cport: u16,
    pub ip: String,
}

#[derive(Debug, Clone)]
pub enum Body {
    Gossip(Vec<Gossip>),
    Fail(String),
    Publish(Bytes, Bytes),
}

#[derive(Debug, Clone)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

fn put_id(out: &mut BytesMut, id: Option<&str>) {
    let mut bytes = [0u8; 40];
    if let Some(id) = id {
        let n = id.len().min(40);
        bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    }
    out.put_slice(&bytes);
}

fn put_ip(out: &mut BytesMut, ip: &str) {
    let n = ip.len().min(255);
    out.put_u8(n as u8);
    out.put_slice(&ip.as_bytes()[..n]);
}

impl Message {
    pub fn encode(&self) -> Bytes {
        let h = &self.header;
        let mut out = BytesMut::with_capacity(2300);
        out.put_slice(MAGIC);
        out.put_u32(0);
        out.put_u8(h.kind as u8);
        put_id(&mut out, Some(&h.id));
        out.put_u64(h.current_epoch);
        out.put_u64(h.config_epoch);
        out.put_u64(h.repl_offset);
        out.put_u16(h.flags.bits());
        put_id(&mut out, h.master.as_deref());
        out.put_u16(h.port);
        out.put_u16(h.cport);
        put_ip(&mut out, &h.ip);
        out.put_slice(&h.slots);
        out.put_u8(h.ok as u8 | (h.force as u8) << 1);
        match &self.body {
            Body::Gossip(entries) => {
                out.put_u16(entries.len() as u16);
                for g in entries {
                    put_id(&mut out, Some(&g.id));
                    out.put_u16(g.flags.bits());
                    out.put_u16(g.port);
                    out.put_u16(g.cport);
                    put_ip(&mut out, &g.ip);
                }
            }
            Body::Fail(id) => put_id(&mut out, Some(id)),
            Body::Publish(channel, message) => {
                out.put_u32(channel.len() as u32);
                out.put_slice(channel);
                out.put_u32(message.len() as u32);
                out.put_slice(message);
            }
        }
        let len = out.len() as u32;
        out[4..8].copy_from_slice(&len.to_be_bytes());
        out.freeze()
    }

    /// Takes one message off the front of `input`: Ok(None) until it is all there, an
    /// error for anything malformed (the link is then closed).
    pub fn decode(input: &mut BytesMut) -> Result<Option<Message>, &'static str> {
        if input.len() < 8 {
            return Ok(None);
        }
        if &input[..4] != MAGIC {
            return Err("bad magic");
        }
        let len = u32::from_be_bytes(input[4..8].try_into().expect("4 bytes")) as usize;
        if !(8..=MESSAGE_MAX).contains(&len) {
            return Err("bad length");
        }
        if input.len() < len {
            return Ok(None);
        }
        let mut buf = input.split_to(len).freeze();
        buf.advance(8);
        parse(&mut buf).ok_or("truncated message").map(Some)
    }
}

fn take_id(buf: &mut Bytes) -> Option<Option<String>> {
    if buf.remaining() < 40 {
        return None;
    }
    let raw = buf.split_to(40);
    if raw.iter().all(|&b| b == 0) {
        return Some(None);
    }
    Some(Some(String::from_utf8_lossy(&raw).into_owned()))
}

fn take_ip(buf: &mut Bytes) -> Option<String> {
    let n = *buf.first()? as usize;
    buf.advance(1);
    (buf.remaining() >= n).then(|| String::from_utf8_lossy(&buf.split_to(n)).into_owned())
}

fn take_u16(buf: &mut Bytes) -> Option<u16> {
    (buf.remaining() >= 2).then(|| buf.get_u16())
}

fn take_u64(buf: &mut Bytes) -> Option<u64> {
    (buf.remaining() >= 8).then(|| buf.get_u64())
}

fn take_blob(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let n = buf.get_u32() as usize;
    (buf.remaining() >= n).then(|| buf.split_to(n))
}

fn parse(buf: &mut Bytes) -> Option<Message> {
    let kind = Type::from_u8(*buf.first()?)?;
    buf.advance(1);
    let id = take_id(buf)??;
    let current_epoch = take_u64(buf)?;
    let config_epoch = take_u64(buf)?;
    let repl_offset = take_u64(buf)?;
    let flags = Flags::from_bits(take_u16(buf)?);
    let master = take_id(buf)?;
    let port = take_u16(buf)?;
    let cport = take_u16(buf)?;
    let ip = take_ip(buf)?;
    if buf.remaining() < SLOTS / 8 + 1 {
        return None;
    }
    let slots = buf.split_to(SLOTS / 8).to_vec();
    let state = buf.get_u8();
    let (ok, force) = (state & 1 != 0, state & 2 != 0);
    let header = Header { kind, id, current_epoch, config_epoch, repl_offset, flags, master, port, cport, ip, slots, ok, force };
    let body = match kind {
        Type::Ping | Type::Pong | Type::Meet | Type::AuthRequest | Type::AuthAck | Type::MfStart | Type::MfOffset => {
            let count = take_u16(buf)? as usize;
            let mut entries = Vec::with_capacity(count.min(GOSSIP_MAX));
            for _ in 0..count {
                let id = take_id(buf)??;
                let flags = Flags::from_bits(take_u16(buf)?);
                let port = take_u16(buf)?;
                let cport = take_u16(buf)?;
                let ip = take_ip(buf)?;
                entries.push(Gossip { id, flags, port, cport, ip });
            }
            Body::Gossip(entries)
        }
        Type::Fail => Body::Fail(take_id(buf)??),
        Type::Publish | Type::PublishShard => {
            let channel = take_blob(buf)?;
            let message = take_blob(buf)?;
            Body::Publish(channel, message)
        }
    };
    Some(Message { header, body })
}

/// This node's header, from the state.
fn header(s: &State, kind: Type) -> Header {
    let me = s.me();
    let mut slots = vec![0u8; SLOTS / 8];
    for slot in s.slots_of(&s.myself) {
        slots[slot as usize / 8] |= 1 << (slot % 8);
    }
    // A replica announces its master's slots and epoch, as Redis's replicas do.
    let (config_epoch, slots) = match me.master.as_ref().and_then(|m| s.nodes.get(m)) {
        Some(master) => {
            let mut theirs = vec![0u8; SLOTS / 8];
            for slot in s.slots_of(&master.id) {
                theirs[slot as usize / 8] |= 1 << (slot % 8);
            }
            (master.config_epoch, theirs)
        }
        None => (me.config_epoch, slots),
    };
    let mut flags = me.flags;
    flags.myself = false;
    Header {
        kind,
        id: s.myself.clone(),
        current_epoch: s.current_epoch,
        config_epoch,
        repl_offset: match me.master {
            Some(_) => crate::replica::history().map_or(0, |(_, offset, _)| offset),
            None => crate::replication::own_history().1,
        },
        flags,
        master: me.master.clone(),
        port: me.port,
        cport: me.cport,
        ip: ANNOUNCED_IP.with(|ip| ip.borrow().clone()),
        slots,
        ok: s.ok,
        force: false,
    }
}

/// A PING, PONG or MEET with gossip about the other nodes.
fn gossip_message(s: &State, kind: Type, to: &str) -> Message {
    let entries = s
        .nodes
        .values()
        .filter(|n| n.id != s.myself && n.id != to && !n.flags.handshake && !n.flags.noaddr)
        .take(GOSSIP_MAX)
        .map(|n| Gossip { id: n.id.clone(), flags: n.flags, port: n.port, cport: n.cport, ip: n.ip.clone() })
        .collect();
    s_count(kind);
    Message { header: header(s, kind), body: Body::Gossip(entries) }
}

thread_local! {
    /// `cluster-announce-ip` (core 0).
    static ANNOUNCED_IP: RefCell<String> = const { RefCell::new(String::new()) };
    /// Our links, by the id of the node at the other end (core 0).
    static LINKS: RefCell<HashMap<String, Link>> = RefCell::new(HashMap::new());
    /// Messages sent by type since the last time the state counted them.
    static SENT: RefCell<[u64; MESSAGE_TYPES.len()]> = const { RefCell::new([0; MESSAGE_TYPES.len()]) };
}

fn s_count(kind: Type) {
    SENT.with(|sent| sent.borrow_mut()[kind as usize] += 1);
}

/// Our end of an outgoing link: messages for it to send.
struct Link {
    outbox: mpsc::UnboundedSender<Bytes>,
}

/// Adds a node we are to meet (CLUSTER MEET) or heard of (gossip), under a random name
/// until it answers with its own.
pub fn start_handshake(s: &mut State, ip: &str, port: u16, cport: u16, meet: bool, now: u64) {
    let known = s.nodes.values().any(|n| n.ip == ip && n.port == port && n.cport == cport && (n.flags.handshake || !n.flags.myself));
    if known {
        return;
    }
    let id = crate::info::system::random_hex40();
    let flags = Flags { handshake: true, master: true, ..Flags::default() };
    let mut node = ClusterNode::new(id.clone(), ip.to_owned(), port, cport, flags, now);
    node.meet = meet;
    s.nodes.insert(id, node);
}

/// Starts the bus on core 0: the listener and the cron that keeps the links.
pub fn start(node: &Rc<Node>) -> std::io::Result<()> {
    let config = node.config.borrow();
    ANNOUNCED_IP.with(|ip| *ip.borrow_mut() = config.cluster_announce_ip.clone());
    let port = super::bus_port(&config);
    let mut listeners = Vec::new();
    for (addr, optional) in crate::node::bind_addresses(&config)? {
        let addr = std::net::SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) if optional => tracing::warn!("Could not bind the cluster bus to {addr}: {e}"),
            Err(e) => return Err(std::io::Error::other(format!("Could not bind the cluster bus to {addr}: {e}"))),
        }
    }
    drop(config);
    for listener in listeners {
        let node = node.clone();
        glommio::spawn_local(async move {
            loop {
                let accepted = match select(std::pin::pin!(listener.accept()), std::pin::pin!(node.shutdown.wait())).await {
                    Either::Left((accepted, _)) => accepted,
                    Either::Right(_) => return,
                };
                match accepted {
                    Ok(stream) => {
                        glommio::spawn_local(serve_inbound(node.clone(), stream)).detach();
                    }
                    Err(e) => {
                        tracing::warn!("Cluster bus accept: {e}");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
        .detach();
    }
    let node = node.clone();
    glommio::spawn_local(async move {
        while !node.shutdown.is_set() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            cron(&node);
        }
    })
    .detach();
    Ok(())
}

fn node_timeout(node: &Node) -> u64 {
    node.config.borrow().cluster_node_timeout.max(1)
}

/// Every 100 ms: links to new nodes, handshakes that never finished, failure detection.
fn cron(node: &Rc<Node>) {
    let timeout = node_timeout(node);
    let now = shoal_runtime::now_ms();
    let mut fails = Vec::new();
    let mut elected = None;
    let no_failover = node.config.borrow().compat_value("cluster-replica-no-failover") == "yes";
    let my_offset = crate::replica::history().map_or(0, |(_, offset, _)| offset);
    let master_offset = crate::replication::own_history().1;
    // Redis's data age check: a replica cut off from its master for longer than
    // `repl-ping-replica-period` + `cluster-node-timeout` * `cluster-replica-validity-factor`
    // (beyond the node timeout itself), or never synced, may not stand in an election.
    let eligible = {
        let config = node.config.borrow();
        let factor: u64 = config.compat_value("cluster-replica-validity-factor").parse().unwrap_or(10);
        let limit = config.repl_ping_replica_period * 1000 + timeout * factor;
        let age = crate::replica::data_age_ms().unwrap_or(u64::MAX);
        let age = if age > timeout { age - timeout } else { age };
        factor == 0 || age <= limit
    };
    let mut unpause_now = false;
    let wanted: Vec<String> = with_state(|s| {
        SENT.with(|sent| {
            for (total, n) in s.sent.iter_mut().zip(std::mem::take(&mut *sent.borrow_mut())) {
                *total += n;
            }
        });
        // Handshakes that got no answer in time are dropped.
        let stale: Vec<String> =
            s.nodes.values().filter(|n| n.flags.handshake && now.saturating_sub(n.created) > timeout.max(1000)).map(|n| n.id.clone()).collect();
        for id in stale {
            s.nodes.remove(&id);
            s.recheck = true;
        }
        s.forgotten.retain(|_, until| *until > now);
        let size = s.size;
        let i_am_master = s.me().is_master();
        let mut recheck = false;
        let myself = s.myself.clone();
        for n in s.nodes.values_mut().filter(|n| n.id != myself && !n.flags.handshake) {
            if n.ping_sent != 0 && now.saturating_sub(n.ping_sent) > timeout && !n.flags.pfail && !n.flags.fail {
                tracing::debug!("*** NODE {} possibly failing", n.id);
                n.flags.pfail = true;
                recheck = true;
            }
            n.fail_reports.retain(|_, at| now.saturating_sub(*at) <= timeout * 2);
            let votes = n.fail_reports.len() + i_am_master as usize;
            if n.flags.pfail && !n.flags.fail && votes > size / 2 {
                tracing::info!("Marking node {} as failing (quorum reached).", n.id);
                n.flags.fail = true;
                n.flags.pfail = false;
                n.fail_time = now;
                fails.push(n.id.clone());
            }
        }
        if !fails.is_empty() {
            s.dirty = true;
        }
        s.recheck |= recheck;
        let me = s.me_mut();
        me.repl_offset = if me.master.is_some() { my_offset } else { master_offset };
        elected = election_step(s, now, timeout, no_failover, my_offset, eligible);
        // A pause for a replica's manual failover that did not end in one.
        if s.paused_until.is_some_and(|until| now >= until) {
            s.paused_until = None;
            unpause_now = true;
        }
        s.nodes.values().filter(|n| n.id != myself && !n.flags.noaddr && n.cport != 0).map(|n| n.id.clone()).collect()
    });
    if unpause_now {
        let node = node.clone();
        glommio::spawn_local(async move { unpause(&node).await }).detach();
    }
    match elected {
        Some(Elected::Ask(request)) => LINKS.with(|links| {
            for link in links.borrow().values() {
                let _ = link.outbox.unbounded_send(request.clone());
            }
        }),
        Some(Elected::Promoted) => {
            let promoted = node.clone();
            glommio::spawn_local(async move { announce_promotion(&promoted).await }).detach();
        }
        None => {}
    }
    for failed in fails {
        broadcast(|s| {
            s_count(Type::Fail);
            Message { header: header(s, Type::Fail), body: Body::Fail(failed.clone()) }
        });
    }
    LINKS.with(|links| {
        let mut links = links.borrow_mut();
        links.retain(|id, link| wanted.contains(id) && !link.outbox.is_closed());
        for id in wanted {
            if !links.contains_key(&id) {
                let (outbox, queue) = mpsc::unbounded();
                links.insert(id.clone(), Link { outbox });
                glommio::spawn_local(outbound(node.clone(), id, queue)).detach();
            }
        }
    });
}

/// Sends a message built from the state to every linked node.
pub fn broadcast(build: impl Fn(&State) -> Message) {
    let bytes = super::read_state(|s| build(s).encode());
    LINKS.with(|links| {
        for link in links.borrow().values() {
            let _ = link.outbox.unbounded_send(bytes.clone());
        }
    });
}

/// How long a manual failover may take (Redis's `CLUSTER_MF_TIMEOUT`); the master pauses
/// its writes for twice that at most.
pub const MANUAL_FAILOVER_MS: u64 = 5000;

/// The master's side of CLUSTER FAILOVER: writes pause on every core, and once those in
/// flight are done the replica is told the offset it must reach. The pause ends when the
/// replica took over (this node then follows it), or after `2 * MANUAL_FAILOVER_MS`.
async fn pause_for_replica(node: Rc<Node>, replica: String) {
    let deadline = std::time::Instant::now() + Duration::from_millis(MANUAL_FAILOVER_MS * 2);
    node.core.call_all(move |_| crate::node::current().pause.pause(crate::pause::PauseMode::Write, deadline)).await;
    let offset = crate::replication::paused_offset(&node).await;
    node.core
        .call_on(0, move |_| {
            let message = super::read_state(|s| {
                s_count(Type::MfOffset);
                let mut h = header(s, Type::MfOffset);
                h.repl_offset = offset;
                Message { header: h, body: Body::Gossip(Vec::new()) }.encode()
            });
            send_to(vec![(replica, message)]);
        })
        .await;
}

/// Ends a manual failover's pause of writes.
async fn unpause(node: &Rc<Node>) {
    node.core.call_all(|_| crate::node::current().pause.unpause()).await;
}

/// The replica's side of CLUSTER FAILOVER: ask the master to pause.
pub async fn start_manual_failover(node: &Rc<Node>) {
    node.core
        .call_on(0, |_| {
            let request = super::read_state(|s| {
                s_count(Type::MfStart);
                let master = s.me().master.clone().unwrap_or_default();
                (master, Message { header: header(s, Type::MfStart), body: Body::Gossip(Vec::new()) }.encode())
            });
            send_to(vec![request]);
        })
        .await;
}

/// A replica became a master: it stops replicating and tells every node at once.
pub async fn announce_promotion(node: &Rc<Node>) {
    super::command::follow(node, None).await;
    node.core.call_on(0, |_| broadcast(|s| gossip_message(s, Type::Pong, ""))).await;
}

/// PUBLISH in cluster mode reaches the subscribers of every node (core 0 sends it).
pub async fn propagate_publish(node: &Rc<Node>, channel: Bytes, message: Bytes) {
    node.core
        .call_on(0, move |_| {
            broadcast(|s| {
                s_count(Type::Publish);
                Message { header: header(s, Type::Publish), body: Body::Publish(channel.clone(), message.clone()) }
            })
        })
        .await;
}

/// SPUBLISH in cluster mode reaches the subscribers of the other nodes of this node's shard
/// (its master and replicas), as Redis's `clusterPropagatePublishShard`.
pub async fn propagate_spublish(node: &Rc<Node>, channel: Bytes, message: Bytes) {
    node.core
        .call_on(0, move |_| {
            let messages = super::read_state(|s| {
                let shard = s.me().master.clone().unwrap_or_else(|| s.myself.clone());
                let members: Vec<String> = s
                    .nodes
                    .values()
                    .filter(|n| n.id != s.myself && (n.id == shard || n.master.as_deref() == Some(shard.as_str())))
                    .map(|n| n.id.clone())
                    .collect();
                if members.is_empty() {
                    return Vec::new();
                }
                s_count(Type::PublishShard);
                let bytes = Message { header: header(s, Type::PublishShard), body: Body::Publish(channel.clone(), message.clone()) }.encode();
                members.into_iter().map(|id| (id, bytes.clone())).collect()
            });
            send_to(messages);
        })
        .await;
}

/// Our link to node `id`: connects, sends MEET or PING, reads the PONGs, reconnects while
/// the node is known.
async fn outbound(node: Rc<Node>, mut id: String, mut queue: mpsc::UnboundedReceiver<Bytes>) {
    loop {
        let Some(target) = super::read_state(|s| s.nodes.get(&id).cloned()) else { return };
        let now = shoal_runtime::now_ms();
        with_state(|s| {
            if let Some(n) = s.nodes.get_mut(&id) {
                if n.ping_sent == 0 {
                    n.ping_sent = now;
                }
            }
        });
        let timeout = Duration::from_millis(node_timeout(&node).clamp(100, 1000));
        let addr = format!("{}:{}", target.ip, target.cport);
        let stream = match TcpStream::connect_timeout(&addr, timeout).await {
            Ok(stream) => stream,
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(100)).await;
                if node.shutdown.is_set() {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        with_state(|s| {
            if let Some(n) = s.nodes.get_mut(&id) {
                n.link_up = true;
            }
        });
        let ended = run_link(&node, &mut id, stream, &mut queue).await;
        with_state(|s| {
            if let Some(n) = s.nodes.get_mut(&id) {
                n.link_up = false;
            }
        });
        if ended || node.shutdown.is_set() {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection of an outgoing link; true when the link should end for good (the node
/// was renamed into one we already know, or forgotten).
async fn run_link(node: &Rc<Node>, id: &mut String, stream: TcpStream, queue: &mut mpsc::UnboundedReceiver<Bytes>) -> bool {
    let (mut reader, mut writer) = stream.split();
    let first = super::read_state(|s| {
        let meet = s.nodes.get(id.as_str()).is_some_and(|n| n.meet);
        gossip_message(s, if meet { Type::Meet } else { Type::Ping }, id).encode()
    });
    if writer.write_all(&first).await.is_err() {
        return false;
    }
    let sent_at = shoal_runtime::now_ms();
    with_state(|s| {
        if let Some(n) = s.nodes.get_mut(id.as_str()) {
            if n.ping_sent == 0 {
                n.ping_sent = sent_at;
            }
        }
    });
    let interval = Duration::from_millis((node_timeout(node) / 10).clamp(100, 1000));
    let mut input = BytesMut::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut next_ping = std::time::Instant::now() + interval;
    loop {
        if node.shutdown.is_set() {
            return true;
        }
        let wait = next_ping.saturating_duration_since(std::time::Instant::now());
        let event = {
            let read = std::pin::pin!(reader.read(&mut chunk));
            let queued = std::pin::pin!(queue.next());
            let tick = std::pin::pin!(glommio::timer::sleep(wait));
            match select(read, select(queued, tick)).await {
                Either::Left((read, _)) => Either::Left(read),
                Either::Right((Either::Left((queued, _)), _)) => Either::Right(Some(queued)),
                Either::Right((Either::Right(_), _)) => Either::Right(None),
            }
        };
        match event {
            Either::Left(Ok(0)) | Either::Left(Err(_)) => return false,
            Either::Left(Ok(n)) => {
                input.extend_from_slice(&chunk[..n]);
                loop {
                    match Message::decode(&mut input) {
                        Ok(Some(message)) => {
                            if let Some(renamed) = handle(node, message, Some(id.as_str()), None, None) {
                                match renamed {
                                    Rename::To(new) => {
                                        LINKS.with(|links| {
                                            let mut links = links.borrow_mut();
                                            if let Some(link) = links.remove(id.as_str()) {
                                                links.insert(new.clone(), link);
                                            }
                                        });
                                        *id = new;
                                    }
                                    Rename::Drop => return true,
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(_) => return false,
                    }
                }
            }
            Either::Right(Some(None)) => return true,
            Either::Right(Some(Some(bytes))) => {
                if writer.write_all(&bytes).await.is_err() {
                    return false;
                }
            }
            Either::Right(None) => {
                next_ping = std::time::Instant::now() + interval;
                let now = shoal_runtime::now_ms();
                let ping = with_state(|s| {
                    let known = s.nodes.get_mut(id.as_str())?;
                    if known.ping_sent == 0 {
                        known.ping_sent = now;
                    }
                    let meet = known.meet && known.flags.handshake;
                    Some(gossip_message(s, if meet { Type::Meet } else { Type::Ping }, id).encode())
                });
                let Some(ping) = ping else { return true };
                if writer.write_all(&ping).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Answers another node's link: PONG to each PING or MEET.
async fn serve_inbound(node: Rc<Node>, stream: TcpStream) {
    let peer = stream.peer_addr().ok().map(|a| a.ip().to_string());
    let local = stream.local_addr().ok().map(|a| a.ip().to_string());
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    let mut input = BytesMut::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match select(std::pin::pin!(reader.read(&mut chunk)), std::pin::pin!(node.shutdown.wait())).await {
            Either::Left((Ok(n), _)) if n > 0 => n,
            _ => return,
        };
        input.extend_from_slice(&chunk[..n]);
        loop {
            match Message::decode(&mut input) {
                Ok(Some(message)) => {
                    let kind = message.header.kind;
                    let to = message.header.id.clone();
                    handle(&node, message, None, peer.as_deref(), local.as_deref());
                    if matches!(kind, Type::Ping | Type::Meet) {
                        let pong = super::read_state(|s| gossip_message(s, Type::Pong, &to).encode());
                        if writer.write_all(&pong).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("Cluster bus: closing a link from {}: {e}", peer.as_deref().unwrap_or("?"));
                    return;
                }
            }
        }
    }
}

/// What an answer on an outgoing link did to the node's name.
enum Rename {
    To(String),
    Drop,
}

/// Processes one message (Redis's `clusterProcessPacket`). `link` is the id of the node
/// our outgoing link goes to, when it came on one; `peer` and `local` the addresses of an
/// incoming link.
fn handle(node: &Rc<Node>, message: Message, link: Option<&str>, peer: Option<&str>, local: Option<&str>) -> Option<Rename> {
    let now = shoal_runtime::now_ms();
    let timeout = node_timeout(node);
    let h = &message.header;
    let mut rename = None;
    let mut publish = None;
    // Messages for one node (a vote), and a master to follow, once the state is released.
    let mut replies: Vec<(String, Bytes)> = Vec::new();
    let mut follow = None;
    let mut pause_for = None;
    with_state(|s| {
        s.received[h.kind as usize] += 1;
        if h.id == s.myself {
            return;
        }
        if s.forgotten.contains_key(&h.id) {
            return;
        }
        // Our own address is the one others reach us at: from a MEET, or from any PING
        // while we know none (unless `cluster-announce-ip` says it).
        let learn = h.kind == Type::Meet || (h.kind == Type::Ping && s.me().ip.is_empty());
        if let Some(local) = local.filter(|local| learn && ANNOUNCED_IP.with(|ip| ip.borrow().is_empty()) && s.me().ip != *local) {
            s.me_mut().ip = local.to_owned();
            s.dirty = true;
            tracing::info!("IP address for this node updated to {local}");
        }
        // A MEET from a node we do not know: it joins.
        if h.kind == Type::Meet && !s.nodes.contains_key(&h.id) {
            let ip = if h.ip.is_empty() { peer.unwrap_or_default().to_owned() } else { h.ip.clone() };
            let flags = Flags { master: h.master.is_none(), replica: h.master.is_some(), ..Flags::default() };
            let n = ClusterNode::new(h.id.clone(), ip, h.port, h.cport, flags, now);
            s.nodes.insert(h.id.clone(), n);
            s.dirty = true;
        }
        // The answer to a handshake: the node's real name.
        if let Some(link_id) = link {
            if link_id != h.id && s.nodes.get(link_id).is_some_and(|n| n.flags.handshake) {
                let mut n = s.nodes.remove(link_id).expect("present");
                if s.nodes.contains_key(&h.id) {
                    rename = Some(Rename::Drop);
                    return;
                }
                n.id = h.id.clone();
                n.flags.handshake = false;
                n.meet = false;
                s.nodes.insert(h.id.clone(), n);
                s.dirty = true;
                rename = Some(Rename::To(h.id.clone()));
            }
        }
        if !s.nodes.contains_key(&h.id) {
            return;
        }
        s.current_epoch = s.current_epoch.max(h.current_epoch);
        {
            let sender = s.nodes.get_mut(&h.id).expect("known");
            sender.repl_offset = h.repl_offset;
            if link.is_some() && h.kind == Type::Pong {
                sender.pong_received = now;
                sender.ping_sent = 0;
                if std::mem::take(&mut sender.flags.pfail) {
                    s.recheck = true;
                }
                if sender.flags.fail {
                    tracing::info!("Clear FAIL state for node {}: is reachable again.", sender.id);
                    sender.flags.fail = false;
                    s.dirty = true;
                }
            }
            if h.port != sender.port || h.cport != sender.cport || (!h.ip.is_empty() && h.ip != sender.ip) {
                sender.port = h.port;
                sender.cport = h.cport;
                if !h.ip.is_empty() {
                    sender.ip = h.ip.clone();
                }
                s.dirty = true;
            }
        }
        update_role(s, h);
        let sender_is_master = s.nodes[&h.id].is_master();
        if sender_is_master {
            let sender = s.nodes.get_mut(&h.id).expect("known");
            if h.config_epoch > sender.config_epoch {
                sender.config_epoch = h.config_epoch;
                s.dirty = true;
            }
            if update_slots(s, &h.id, h.config_epoch, &h.slots) {
                follow = become_replica_of(s, &h.id);
            }
            handle_epoch_collision(s, h);
        }
        match h.kind {
            Type::AuthRequest => {
                if let Some(vote) = vote(s, h, now, timeout) {
                    replies.push((h.id.clone(), vote));
                }
            }
            Type::MfStart if s.me().is_master() && s.nodes[&h.id].master.as_deref() == Some(s.myself.as_str()) => {
                tracing::info!("Manual failover requested by replica {}.", h.id);
                s.paused_until = Some(now + MANUAL_FAILOVER_MS * 2);
                pause_for = Some(h.id.clone());
            }
            Type::MfOffset if s.me().master.as_deref() == Some(h.id.as_str()) => {
                if let Some((_, offset)) = s.manual.as_mut() {
                    tracing::info!("Received replication offset for paused master manual failover: {}", h.repl_offset);
                    *offset = Some(h.repl_offset);
                }
            }
            Type::AuthAck if sender_is_master => {
                let epoch = s.election.as_ref().and_then(|e| e.epoch);
                if let (Some(election), Some(epoch)) = (s.election.as_mut(), epoch) {
                    if h.current_epoch >= epoch {
                        election.votes.insert(h.id.clone());
                    }
                }
            }
            _ => {}
        }
        match &message.body {
            Body::Gossip(entries) => {
                for g in entries {
                    gossip(s, &h.id, sender_is_master, g, now);
                }
            }
            Body::Fail(failed) => {
                if let Some(n) = s.nodes.get_mut(failed) {
                    if !n.flags.myself && !n.flags.fail {
                        tracing::info!("FAIL message received from {} about {failed}", h.id);
                        n.flags.fail = true;
                        n.flags.pfail = false;
                        n.fail_time = now;
                        s.dirty = true;
                    }
                }
            }
            Body::Publish(channel, message) => publish = Some((channel.clone(), message.clone(), h.kind == Type::PublishShard)),
        }
    });
    match publish {
        Some((channel, message, false)) => {
            node.core.publish(&channel, &message);
        }
        Some((channel, message, true)) => {
            let node = node.clone();
            glommio::spawn_local(async move {
                node.core.spublish(&channel, &message).await;
            })
            .detach();
        }
        None => {}
    }
    send_to(replies);
    if let Some(replica) = pause_for {
        glommio::spawn_local(pause_for_replica(node.clone(), replica)).detach();
    }
    if let Some(master) = follow {
        let node = node.clone();
        let paused = super::with_state(|s| s.paused_until.take()).is_some();
        glommio::spawn_local(async move {
            super::command::follow(&node, Some(master)).await;
            if paused {
                unpause(&node).await;
            }
        })
        .detach();
    }
    rename
}

/// The sender's role as it says: a replica of its master, or a master.
fn update_role(s: &mut State, h: &Header) {
    let master = h.master.clone().filter(|m| *m != h.id);
    let sender = s.nodes.get_mut(&h.id).expect("known");
    if sender.master == master && sender.flags.replica == master.is_some() {
        return;
    }
    sender.master = master.clone();
    sender.flags.replica = master.is_some();
    sender.flags.master = master.is_none();
    if master.is_some() {
        // A master turned replica serves no slots.
        for owner in s.slots.iter_mut().filter(|o| o.as_deref() == Some(&h.id)) {
            *owner = None;
        }
    }
    s.dirty = true;
}

/// Redis's `clusterUpdateSlotsConfigWith`: every slot the sender claims with a newer config
/// epoch than its owner's becomes the sender's (not one we are importing). True when this
/// node's shard (itself if a master, else its master) lost its last slot to the sender: a
/// replica took over, and we follow it.
fn update_slots(s: &mut State, sender: &str, epoch: u64, claimed: &[u8]) -> bool {
    let shard = s.me().master.clone().unwrap_or_else(|| s.myself.clone());
    let mut before = 0;
    let mut taken = 0;
    for slot in 0..SLOTS {
        let owner = s.slots[slot].as_deref();
        let ours = owner == Some(shard.as_str());
        before += ours as usize;
        if claimed[slot / 8] & (1 << (slot % 8)) == 0 || owner == Some(sender) || s.importing.contains_key(&(slot as u16)) {
            continue;
        }
        let owner_epoch = owner.and_then(|o| s.nodes.get(o)).map(|n| n.config_epoch);
        if owner_epoch.is_none_or(|e| e < epoch) {
            if owner == Some(s.myself.as_str()) {
                tracing::warn!("Slot {slot} moved from this node to {sender} (config epoch {epoch})");
                s.migrating.remove(&(slot as u16));
            }
            taken += ours as usize;
            s.slots[slot] = Some(sender.to_owned());
            s.dirty = true;
        }
    }
    before > 0 && taken == before && sender != shard
}

/// This node follows `master` (a replica that took its shard's slots): its address, for
/// REPLICAOF.
pub(super) fn become_replica_of(s: &mut State, master: &str) -> Option<(String, u16)> {
    let target = s.nodes.get(master)?.clone();
    tracing::info!("Configuration change detected. Reconfiguring myself as a replica of {master}");
    let me = s.me_mut();
    me.flags.master = false;
    me.flags.replica = true;
    me.master = Some(master.to_owned());
    s.migrating.clear();
    s.importing.clear();
    s.election = None;
    s.manual = None;
    s.manual_until = None;
    s.dirty = true;
    Some((target.ip, target.port))
}

/// Redis's `clusterSendFailoverAuthIfNeeded`: a master with slots gives one vote per epoch,
/// to a replica of a failed master whose claim is not older than what it knows, and not
/// twice for one master within two node timeouts. The vote (AUTH_ACK), if given.
fn vote(s: &mut State, h: &Header, now: u64, timeout: u64) -> Option<Bytes> {
    let me = s.me();
    if !me.is_master() || s.slots_of(&s.myself).is_empty() {
        return None;
    }
    if h.current_epoch < s.current_epoch || s.last_vote_epoch == s.current_epoch {
        return None;
    }
    let master = h.master.as_ref()?;
    if !h.force && !s.nodes.get(master).is_some_and(|m| m.flags.fail) {
        return None;
    }
    if s.voted.get(master).is_some_and(|at| now.saturating_sub(*at) < timeout * 2) {
        return None;
    }
    // Every slot claimed must not belong to a newer configuration than the claim's.
    for slot in 0..SLOTS {
        if h.slots[slot / 8] & (1 << (slot % 8)) != 0 {
            let owner_epoch = s.slots[slot].as_ref().and_then(|o| s.nodes.get(o)).map_or(0, |n| n.config_epoch);
            if owner_epoch > h.config_epoch {
                return None;
            }
        }
    }
    s.last_vote_epoch = s.current_epoch;
    s.voted.insert(master.clone(), now);
    s.dirty = true;
    tracing::info!("Failover auth granted to {} for epoch {}", h.id, s.current_epoch);
    s_count(Type::AuthAck);
    Some(Message { header: header(s, Type::AuthAck), body: Body::Gossip(Vec::new()) }.encode())
}

/// Sends each message to its node's link.
fn send_to(messages: Vec<(String, Bytes)>) {
    if messages.is_empty() {
        return;
    }
    LINKS.with(|links| {
        let links = links.borrow();
        for (id, bytes) in messages {
            if let Some(link) = links.get(&id) {
                let _ = link.outbox.unbounded_send(bytes);
            }
        }
    });
}

/// What the election step decided.
enum Elected {
    /// Ask the masters for their votes.
    Ask(Bytes),
    /// Enough votes: this replica is now the master of its shard.
    Promoted,
}

/// Redis's `clusterHandleSlaveFailover`, run by the cron of a replica: once its master is
/// FAIL, wait (500 ms plus up to 500 ms at random, so the failure is known everywhere), ask
/// every master for its vote under a new epoch, and take the master's slots with a majority
/// of the masters' votes; retry after two node timeouts.
fn election_step(s: &mut State, now: u64, timeout: u64, no_failover: bool, my_offset: u64, eligible: bool) -> Option<Elected> {
    let me = s.me();
    let master = me.master.clone()?;
    // CLUSTER FAILOVER: once this replica has all the paused master wrote, the election
    // runs as for FORCE; past its time it is given up.
    if let Some((until, master_offset)) = s.manual {
        if now >= until {
            tracing::warn!("Manual failover timed out.");
            s.manual = None;
        } else if master_offset.is_some_and(|o| my_offset >= o) && s.manual_until.is_none() {
            tracing::info!("All master replication stream processed, manual failover can start.");
            s.manual_until = Some(until);
        }
    }
    if s.manual_until.is_some_and(|until| now >= until) {
        tracing::warn!("Manual failover timed out.");
        s.manual_until = None;
        s.election = None;
    }
    let manual = s.manual_until.is_some();
    let failed = s.nodes.get(&master).is_some_and(|m| m.flags.fail) && !s.slots_of(&master).is_empty();
    if !manual && (!failed || no_failover || !eligible) {
        s.election = None;
        return None;
    }
    let stale = s.election.as_ref().is_some_and(|e| now > e.at + timeout * 2);
    if s.election.is_none() || stale {
        // A manual failover asks at once; after a failure, wait for it to be known, and a
        // second more per replica of the same master with more of its data (Redis's rank).
        let jitter = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos() as u64 % 500;
        let rank = s.nodes.values().filter(|n| n.id != s.myself && n.master.as_deref() == Some(master.as_str()) && n.repl_offset > my_offset).count() as u64;
        let at = if manual { now } else { now + 500 + jitter + rank * 1000 };
        s.election = Some(Election { at, epoch: None, votes: Default::default() });
        if !manual {
            return None;
        }
    }
    let election = s.election.clone().expect("set above");
    if now < election.at {
        return None;
    }
    match election.epoch {
        None => {
            s.current_epoch += 1;
            let epoch = s.current_epoch;
            s.election.as_mut().expect("set").epoch = Some(epoch);
            s.dirty = true;
            tracing::info!("Starting a failover election for epoch {epoch}.");
            s_count(Type::AuthRequest);
            let mut request = header(s, Type::AuthRequest);
            request.force = manual;
            Some(Elected::Ask(Message { header: request, body: Body::Gossip(Vec::new()) }.encode()))
        }
        Some(epoch) => {
            let needed = s.size / 2 + 1;
            if election.votes.len() < needed {
                return None;
            }
            tracing::info!("Failover election won: I'm the new master (epoch {epoch}).");
            s.promote(epoch);
            Some(Elected::Promoted)
        }
    }
}

/// Redis's `clusterHandleConfigEpochCollision`: two masters with one config epoch; the one
/// with the greater id takes a new one.
fn handle_epoch_collision(s: &mut State, h: &Header) {
    let me = s.me();
    if !me.is_master() || h.config_epoch != me.config_epoch || h.id.as_str() > s.myself.as_str() {
        return;
    }
    s.current_epoch += 1;
    let epoch = s.current_epoch;
    s.me_mut().config_epoch = epoch;
    s.dirty = true;
    tracing::debug!("WARNING: configEpoch collision with node {}. configEpoch set to {epoch}", h.id);
}

/// One gossip entry from `sender`: a failure report, or a node to meet.
fn gossip(s: &mut State, sender: &str, sender_is_master: bool, g: &Gossip, now: u64) {
    if g.id == s.myself {
        return;
    }
    match s.nodes.get_mut(&g.id) {
        Some(n) => {
            if sender_is_master && !n.flags.myself {
                if g.flags.pfail || g.flags.fail {
                    n.fail_reports.insert(sender.to_owned(), now);
                } else {
                    n.fail_reports.remove(sender);
                }
            }
        }
        None => {
            if !g.flags.noaddr && !g.ip.is_empty() && !s.forgotten.contains_key(&g.id) {
                start_handshake(s, &g.ip, g.port, g.cport, false, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_what_was_written() {
        let mut state = State::fresh(0);
        let me = state.myself.clone();
        state.slots[5] = Some(me.clone());
        state.slots[16383] = Some(me.clone());
        state.me_mut().port = 7000;
        let other = "c".repeat(40);
        state
            .nodes
            .insert(other.clone(), ClusterNode::new(other.clone(), "10.0.0.2".into(), 7001, 17001, Flags { master: true, pfail: true, ..Flags::default() }, 0));
        let message = gossip_message(&state, Type::Ping, "nobody");
        let bytes = message.encode();
        let mut input = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert!(Message::decode(&mut input).unwrap().is_none(), "incomplete");
        input.extend_from_slice(&bytes[bytes.len() - 1..]);
        let back = Message::decode(&mut input).unwrap().unwrap();
        assert!(input.is_empty());
        assert_eq!(back.header.id, me);
        assert_eq!(back.header.port, 7000);
        assert_eq!(back.header.slots[0], 1 << 5);
        assert_eq!(back.header.slots[2047], 1 << 7);
        let Body::Gossip(entries) = back.body else { panic!("gossip") };
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, other);
        assert!(entries[0].flags.pfail);
        assert_eq!((entries[0].ip.as_str(), entries[0].port, entries[0].cport), ("10.0.0.2", 7001, 17001));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let message = Message { header: header(&State::fresh(0), Type::Publish), body: Body::Publish(Bytes::from_static(b"ch"), Bytes::from_static(b"hello")) };
        let bytes = message.encode();
        // Every truncation that claims the full length, and every length.
        for cut in 0..bytes.len() {
            let mut wrong = BytesMut::from(&bytes[..cut]);
            if cut >= 8 {
                wrong[4..8].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            let _ = Message::decode(&mut wrong);
        }
        let mut bad = BytesMut::from(&b"XXXX\0\0\0\x10aaaaaaaa"[..]);
        assert!(Message::decode(&mut bad).is_err());
        let mut huge = BytesMut::from(&b"SHB1\xff\xff\xff\xff"[..]);
        assert!(Message::decode(&mut huge).is_err());
    }
}

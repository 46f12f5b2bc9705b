//! Pub/Sub on one core: who subscribes to what, and how a published message reaches them.
//!
//! **Where subscriptions live.** A subscribed connection is a [`Subscriber`] on its own core
//! (its *home*): its subscriptions and a bounded buffer of messages already encoded for it.
//! Each core's [`Registry`] lists, per channel and per pattern, the subscribers of its own
//! connections (`local`) and how many subscribers every other core has (`remote`, a replica
//! kept up to date by [`Msg::Update`]). So every core knows every channel and pattern in use,
//! and a publisher's core knows, without asking, how many clients receive a message and which
//! cores to send it to. Shard channels (SSUBSCRIBE) are counted only on the core owning the
//! channel's hash slot: subscribers tell that core alone, and SPUBLISH runs there.
//!
//! **How a message crosses cores.** [`Core::publish`] delivers to its own subscribers, counts
//! the others from the replica, and sends one [`Msg::Publish`] to each core that has a
//! subscriber of the channel or of a matching pattern; that core delivers to its own. It never
//! waits, so a core can publish from inside a command (keyspace notifications) without a round
//! trip. Messages between two cores arrive in the order sent, so the messages of one publisher
//! reach each subscriber in publish order.
//!
//! **Exact counts.** A PUBLISH's count is exactly the clients that get the message. A
//! subscription is registered on its home core first, then announced to the other cores,
//! each of which acknowledges ([`Msg::Acknowledged`]); it takes a core's messages only once
//! that core acknowledged (before, that core did not count it), and its confirmation leaves
//! once every core has, so a PUBLISH after it, from any core, counts and reaches it. An
//! unsubscription is the mirror image: it takes a core's messages until that core
//! acknowledged (messages between two cores keep their order, so everything the core counted
//! arrived first), and is removed once every core has. A disconnect removes at once and
//! announces without waiting.
//!
//! **Bounded.** A subscriber's buffer is checked against `client-output-buffer-limit pubsub`
//! on every message; past the hard limit, or past the soft limit for longer than allowed, it
//! is emptied and marked overflowed, and its connection closes. Publishers never wait for
//! subscribers. What this module does not do: sockets (the server's connection writes the
//! buffer) and command parsing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use shoal_resp::Protocol;

use shoal_commands::Ctx;

use crate::core::{Core, Payload};

/// Hash maps keyed by client-chosen names: seeded per process, so names cannot be picked to
/// collide.
type Map<V> = HashMap<Bytes, V, foldhash::fast::RandomState>;

/// The three kinds of subscription.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// SUBSCRIBE: a channel, on every core.
    Channel,
    /// PSUBSCRIBE: a glob pattern over channel names, on every core.
    Pattern,
    /// SSUBSCRIBE: a shard channel, counted on the core owning its slot.
    Shard,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether this kind's count in confirmations is the client's shard subscriptions (as
    /// Redis, SSUBSCRIBE counts only those; SUBSCRIBE and PSUBSCRIBE count channels and
    /// patterns together).
    fn counts_shard(self) -> bool {
        self == Kind::Shard
    }
}

/// `client-output-buffer-limit pubsub`: 0 disables a bound.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Limit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_seconds: u64,
}

/// A subscription change sent to other cores: `delta` subscribers of `name` on the sender.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    pub name: Bytes,
    pub delta: i64,
}

/// How a core acknowledges an [`Msg::Update`].
#[derive(Debug)]
pub enum Ack {
    None,
    /// Answer with [`Msg::Acknowledged`]: the subscriptions of `token` take this core's
    /// messages from then on (joining) or no longer (leaving).
    Token(u64),
}

/// Pub/Sub messages between cores.
pub enum Msg {
    /// The sender's subscriber counts changed.
    Update { ack: Ack, changes: Vec<Change> },
    /// The sender applied the changes of the receiver's `token`: its messages from here on
    /// count the subscriptions joining and no longer count those leaving (what it sent
    /// before counted the opposite).
    Acknowledged { token: u64 },
    /// Deliver a message to this core's subscribers of the channel and of matching patterns.
    Publish { channel: Bytes, message: Bytes },
    /// Deliver a shard-channel message to this core's subscribers of it; answer `req` with
    /// `Payload::Done` once delivered.
    ShardPublish { req: u64, channel: Bytes, message: Bytes },
    /// On the channel's owner: SPUBLISH, answered with the receivers' count once every core
    /// delivered it.
    Spublish { req: u64, channel: Bytes, message: Bytes },
    /// The receiver handed `count` more of the sender's [`Msg::Publish`] messages to its
    /// subscribers' writers.
    PublishAck { count: usize },
}

/// How many PUBLISH messages a core may send another before that core acknowledges them.
/// A core delivering to many subscribers does more work per message than the core parsing
/// the PUBLISH: without a bound, the publisher's core would run ahead and the messages would
/// pile up in the subscribers' buffers until `client-output-buffer-limit pubsub` cut off
/// subscribers that read all they can. A core acknowledges once its subscribers' writers
/// have run, whether or not their sockets took everything: a subscriber that does not read
/// fills only its own buffer and is disconnected at its limit, slowing nobody.
pub const PUBLISH_UNACKED_MAX: u64 = 1024;

/// A client's subscriptions of one kind, remembering the order they were made in (Redis
/// unsubscribes patterns in that order).
#[derive(Default)]
struct Names {
    order: Map<u64>,
    next: u64,
}

impl Names {
    fn insert(&mut self, name: Bytes) -> bool {
        if self.order.contains_key(&name) {
            return false;
        }
        self.order.insert(name, self.next);
        self.next += 1;
        true
    }

    fn ordered(&self) -> Vec<Bytes> {
        let mut names: Vec<(&Bytes, &u64)> = self.order.iter().collect();
        names.sort_unstable_by_key(|(_, at)| **at);
        names.into_iter().map(|(name, _)| name.clone()).collect()
    }
}

/// A subscribed connection, on its home core: its subscriptions and the messages waiting to
/// be written to it. Only its own core touches it.
pub struct Subscriber {
    pub client_id: u64,
    proto: Cell<Protocol>,
    names: RefCell<[Names; 3]>,
    /// Messages encoded in the client's protocol, not yet taken by its connection.
    pending: RefCell<BytesMut>,
    /// Bytes the connection took and has not finished writing: they count against the limit.
    in_flight: Cell<usize>,
    overflowed: Cell<bool>,
    /// Since when the buffer has been over the soft limit without a break.
    over_soft_since: Cell<Option<Instant>>,
    waker: RefCell<Option<Waker>>,
}

impl Subscriber {
    pub fn new(client_id: u64, proto: Protocol) -> Rc<Subscriber> {
        Rc::new(Subscriber {
            client_id,
            proto: Cell::new(proto),
            names: RefCell::new(Default::default()),
            pending: RefCell::new(BytesMut::new()),
            in_flight: Cell::new(0),
            overflowed: Cell::new(false),
            over_soft_since: Cell::new(None),
            waker: RefCell::new(None),
        })
    }

    /// The protocol messages are encoded in.
    pub fn proto(&self) -> Protocol {
        self.proto.get()
    }

    /// The protocol messages are encoded in from now on (HELLO changes it).
    pub fn set_proto(&self, proto: Protocol) {
        self.proto.set(proto);
    }

    /// Subscriptions of one kind (CLIENT LIST's sub, psub, ssub).
    pub fn count(&self, kind: Kind) -> usize {
        self.names.borrow()[kind.index()].order.len()
    }

    /// All subscriptions: the client is in Pub/Sub mode while this is not zero.
    pub fn total(&self) -> usize {
        Kind::ALL.iter().map(|&kind| self.count(kind)).sum()
    }

    /// The count a (un)subscribe confirmation of `kind` reports.
    fn confirmation_count(&self, kind: Kind) -> usize {
        if kind.counts_shard() {
            self.count(Kind::Shard)
        } else {
            self.count(Kind::Channel) + self.count(Kind::Pattern)
        }
    }

    fn is_subscribed(&self, kind: Kind, name: &[u8]) -> bool {
        self.names.borrow()[kind.index()].order.contains_key(name)
    }

    /// Whether messages wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// Moves the waiting messages to the end of `out`.
    pub fn take_pending(&self, out: &mut BytesMut) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut *pending);
        } else {
            out.extend_from_slice(&pending);
            pending.clear();
        }
    }

    /// Records how many bytes the connection is writing now (0 once written). Taken bytes
    /// still count against the limit until written: a client that reads nothing keeps them
    /// in flight, and its soft-limit clock keeps running.
    pub fn set_in_flight(&self, bytes: usize) {
        self.in_flight.set(bytes);
        if bytes == 0 && self.pending.borrow().is_empty() {
            // Everything was written: the buffer is under any soft limit again.
            self.over_soft_since.set(None);
        }
    }

    /// Whether the buffer passed `client-output-buffer-limit pubsub`: the connection must close.
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    /// Completes when messages wait or the buffer overflowed.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.overflowed.get() || self.has_pending() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Completes when the buffer overflowed (a write in progress then stops).
    pub fn overflow(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.overflowed.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Marks the buffer overflowed (the connection must close) and frees it.
    pub(crate) fn overflow_now(&self) {
        self.overflowed.set(true);
        *self.pending.borrow_mut() = BytesMut::new();
        self.wake();
    }

    /// Appends an encoded message, then applies the output-buffer limit.
    pub(crate) fn push(&self, encoded: &[u8], limit: Limit) {
        if self.overflowed.get() {
            return;
        }
        let used = {
            let mut pending = self.pending.borrow_mut();
            pending.extend_from_slice(encoded);
            (pending.len() + self.in_flight.get()) as u64
        };
        let over_hard = limit.hard_bytes > 0 && used >= limit.hard_bytes;
        let over_soft = limit.soft_bytes > 0 && used >= limit.soft_bytes;
        let soft_expired = if over_soft {
            match self.over_soft_since.get() {
                None => {
                    self.over_soft_since.set(Some(Instant::now()));
                    false
                }
                Some(since) => since.elapsed() > Duration::from_secs(limit.soft_seconds),
            }
        } else {
            self.over_soft_since.set(None);
            false
        };
        if over_hard || soft_expired {
            // The memory goes now, not when the connection gets to run.
            self.overflow_now();
            return;
        }
        self.wake();
    }
}

/// Encodes a bulk string.
fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    out.put_u8(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Encodes a message frame: `message`/`smessage` (channel, payload) or `pmessage` (pattern,
/// channel, payload); an array in RESP2, a push frame in RESP3.
pub fn encode_message(kind: Kind, pattern: &[u8], channel: &[u8], message: &[u8], proto: Protocol, out: &mut BytesMut) {
    out.put_u8(if proto == Protocol::Resp3 { b'>' } else { b'*' });
    match kind {
        Kind::Channel => {
            out.extend_from_slice(b"3\r\n");
            put_bulk(out, b"message");
        }
        Kind::Pattern => {
            out.extend_from_slice(b"4\r\n");
            put_bulk(out, b"pmessage");
            put_bulk(out, pattern);
        }
        Kind::Shard => {
            out.extend_from_slice(b"3\r\n");
            put_bulk(out, b"smessage");
        }
    }
    put_bulk(out, channel);
    put_bulk(out, message);
}

/// One of this core's subscribers of a channel or pattern.
struct Entry {
    subscriber: Rc<Subscriber>,
    /// While other cores have not all acknowledged the subscription: the cores whose messages
    /// it takes (those that acknowledged; what the others send did not count it).
    accepts: Option<Box<[bool]>>,
}

impl Entry {
    fn takes_from(&self, from: Option<usize>) -> bool {
        match (from, &self.accepts) {
            (Some(core), Some(accepts)) => accepts[core],
            _ => true,
        }
    }
}

/// Subscriptions joining or leaving, waiting for other cores' acknowledgements.
struct Activation {
    subscriber: Rc<Subscriber>,
    kind: Kind,
    names: Vec<Bytes>,
    /// Joining (they take a core's messages once it acknowledged) or leaving (they take a
    /// core's messages until it acknowledged).
    joining: bool,
    waiting: usize,
    done: Option<futures::channel::oneshot::Sender<()>>,
}

/// The subscribers of one channel or pattern: this core's own, and the count on each other
/// core (for shard channels, only on the owning core).
#[derive(Default)]
struct Topic {
    local: Vec<Entry>,
    /// (core, subscribers there), each core at most once, counts above zero.
    remote: Vec<(usize, usize)>,
}

impl Topic {
    fn total(&self) -> usize {
        self.local.len() + self.remote.iter().map(|(_, n)| n).sum::<usize>()
    }

    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
    }

    fn apply_remote(&mut self, core: usize, delta: i64) {
        match self.remote.iter().position(|(c, _)| *c == core) {
            Some(at) => {
                let count = self.remote[at].1 as i64 + delta;
                debug_assert!(count >= 0, "a core never removes more subscribers than it added");
                if count <= 0 {
                    self.remote.swap_remove(at);
                } else {
                    self.remote[at].1 = count as usize;
                }
            }
            None => {
                debug_assert!(delta > 0, "a core removes only subscribers it announced");
                if delta > 0 {
                    self.remote.push((core, delta as usize));
                }
            }
        }
    }
}

/// One core's Pub/Sub state (see the module documentation).
#[derive(Default)]
pub struct Registry {
    /// How many cores there are.
    cores: usize,
    topics: [Map<Topic>; 3],
    pub(crate) limit: Limit,
    activations: HashMap<u64, Activation>,
    next_token: u64,
    /// Reused for encoding one message per protocol.
    scratch: [BytesMut; 2],
}

impl Registry {
    pub fn new(cores: usize) -> Registry {
        Registry { cores, ..Registry::default() }
    }

    /// Whether any client on any core subscribes to a channel or a pattern (shard channels
    /// aside): when none does, a publish has nothing to do.
    pub(crate) fn has_listeners(&self) -> bool {
        !self.topics[Kind::Channel.index()].is_empty() || !self.topics[Kind::Pattern.index()].is_empty()
    }

    /// Delivers to this core's subscribers of `channel` (and of matching patterns, unless
    /// `kind` is Shard). With `targets` (a publisher on this core), also counts the other
    /// cores' subscribers and marks their cores; without, the message came from core `from`,
    /// and only this core's subscribers that count on it take it. Returns the receivers
    /// counted.
    fn deliver(&mut self, kind: Kind, channel: &[u8], message: &[u8], mut targets: Option<&mut [bool]>, from: Option<usize>) -> usize {
        let mut count = 0;
        let limit = self.limit;
        let [channels, patterns, shards] = &mut self.topics;
        let scratch = &mut self.scratch;
        let direct = if kind == Kind::Shard { shards } else { channels };
        if let Some(topic) = direct.get(channel) {
            count += Self::deliver_topic(topic, kind, b"", channel, message, limit, scratch, targets.as_deref_mut(), from);
        }
        if kind == Kind::Channel {
            for (pattern, topic) in patterns.iter() {
                if targets.is_none() && topic.local.is_empty() {
                    continue;
                }
                if shoal_glob::matches(pattern, channel) {
                    count += Self::deliver_topic(topic, Kind::Pattern, pattern, channel, message, limit, scratch, targets.as_deref_mut(), from);
                }
            }
        }
        count
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_topic(
        topic: &Topic,
        kind: Kind,
        pattern: &[u8],
        channel: &[u8],
        message: &[u8],
        limit: Limit,
        scratch: &mut [BytesMut; 2],
        targets: Option<&mut [bool]>,
        from: Option<usize>,
    ) -> usize {
        let mut count = 0;
        if !topic.local.is_empty() {
            for buffer in scratch.iter_mut() {
                buffer.clear();
            }
            for entry in topic.local.iter().filter(|entry| entry.takes_from(from)) {
                count += 1;
                let subscriber = &entry.subscriber;
                let proto = subscriber.proto.get();
                let buffer = &mut scratch[(proto == Protocol::Resp3) as usize];
                if buffer.is_empty() {
                    encode_message(kind, pattern, channel, message, proto, buffer);
                }
                subscriber.push(buffer, limit);
            }
        }
        if let Some(targets) = targets {
            for &(core, n) in &topic.remote {
                count += n;
                targets[core] = true;
            }
        }
        count
    }

    fn apply(&mut self, from: usize, changes: Vec<Change>) {
        for change in changes {
            let topics = &mut self.topics[change.kind.index()];
            let topic = topics.entry(change.name.clone()).or_default();
            topic.apply_remote(from, change.delta);
            if topic.is_empty() {
                topics.remove(&change.name);
            }
        }
    }

    fn add_local(&mut self, kind: Kind, name: Bytes, subscriber: &Rc<Subscriber>, accepts: Option<Box<[bool]>>) {
        self.topics[kind.index()].entry(name).or_default().local.push(Entry { subscriber: subscriber.clone(), accepts });
    }

    /// Core `from` acknowledged the changes of `token`.
    fn acknowledge(&mut self, token: u64, from: usize) {
        let cores = self.cores;
        let Some(activation) = self.activations.get_mut(&token) else { return };
        activation.waiting -= 1;
        let finished = activation.waiting == 0;
        let topics = &mut self.topics[activation.kind.index()];
        for name in &activation.names {
            let Some(topic) = topics.get_mut(name) else { continue };
            for entry in topic.local.iter_mut().filter(|e| Rc::ptr_eq(&e.subscriber, &activation.subscriber)) {
                if !activation.joining {
                    entry.accepts.get_or_insert_with(|| vec![true; cores].into_boxed_slice())[from] = false;
                } else if finished {
                    entry.accepts = None;
                } else if let Some(accepts) = entry.accepts.as_mut() {
                    accepts[from] = true;
                }
            }
        }
        if finished {
            let mut activation = self.activations.remove(&token).expect("present");
            if let Some(done) = activation.done.take() {
                let _ = done.send(());
            }
        }
    }

    fn remove_local(&mut self, kind: Kind, name: &[u8], subscriber: &Rc<Subscriber>) {
        let topics = &mut self.topics[kind.index()];
        if let Some(topic) = topics.get_mut(name) {
            topic.local.retain(|e| !Rc::ptr_eq(&e.subscriber, subscriber));
            if topic.is_empty() {
                topics.remove(name);
            }
        }
    }
}

/// What PUBSUB and INFO report about one core.
impl Core {
    /// Sets the output-buffer limit of this core's subscribers.
    pub fn pubsub_set_limit(&self, limit: Limit) {
        self.pubsub.borrow_mut().limit = limit;
    }

    /// PUBLISH: delivers `message` on `channel` to the subscribers of the channel and of the
    /// patterns matching it on every core, and returns how many receive it. Never waits: the
    /// other cores get one message each (see the module documentation).
    pub fn publish(self: &Rc<Self>, channel: &[u8], message: &[u8]) -> usize {
        let mut targets = vec![false; self.shard_count];
        let count = self.pubsub.borrow_mut().deliver(Kind::Channel, channel, message, Some(&mut targets), None);
        // Replicas publish it to their own subscribers, as Redis's do.
        self.log_for_replicas(&[b"PUBLISH", channel, message]);
        if targets.iter().any(|&t| t) {
            // One copy for every core: the arguments are slices of the publisher's read
            // buffer, which must not stay pinned while the message travels.
            let (channel, message) = (Bytes::copy_from_slice(channel), Bytes::copy_from_slice(message));
            let mut sent = self.publish_sent.borrow_mut();
            for (core, _) in targets.iter().enumerate().filter(|(_, &t)| t) {
                sent[core] += 1;
                self.send(core, crate::core::Msg::Pubsub(Msg::Publish { channel: channel.clone(), message: message.clone() }));
            }
        }
        count
    }

    /// Publishes keyspace notifications raised on this core, in order: for each event the
    /// `__keyspace@<db>__:<key>` message, then the `__keyevent@<db>__:<event>` one, as
    /// Redis's `notifyKeyspaceEvent` (each only when `K`, or `E`, is set).
    pub fn publish_key_events(self: &Rc<Self>, events: Vec<shoal_commands::ctx::notify::KeyEvent>) {
        // Nobody listening anywhere (this core's registry counts every core's subscribers):
        // the events go nowhere, and building their channels would be wasted.
        if events.is_empty() || !self.pubsub.borrow().has_listeners() {
            return;
        }
        use shoal_commands::ctx::notify::{KEYEVENT, KEYSPACE};
        let flags = self.settings.borrow().notify_keyspace_events;
        let mut channel = Vec::new();
        for event in events {
            if flags & KEYSPACE != 0 {
                channel.clear();
                channel.extend_from_slice(b"__keyspace@");
                channel.extend_from_slice(itoa::Buffer::new().format(event.db).as_bytes());
                channel.extend_from_slice(b"__:");
                channel.extend_from_slice(&event.key);
                self.publish(&channel, event.event.as_bytes());
            }
            if flags & KEYEVENT != 0 {
                channel.clear();
                channel.extend_from_slice(b"__keyevent@");
                channel.extend_from_slice(itoa::Buffer::new().format(event.db).as_bytes());
                channel.extend_from_slice(b"__:");
                channel.extend_from_slice(event.event.as_bytes());
                self.publish(&channel, &event.key);
            }
        }
    }

    /// Publishes what the store reported outside any command (the active expiry cycle's
    /// `expired` keys), from every database of this core. Anything else the store reported
    /// outside a command (a lookup by DEBUG) goes out with it, or with the next command.
    pub fn publish_store_reports(self: &Rc<Self>) {
        let events = {
            let settings = self.settings.borrow();
            if settings.notify_keyspace_events == 0 {
                return;
            }
            let mut shard = self.shard_cell().borrow_mut();
            let mut ctx = Ctx::new(&mut shard, 0, 0, shoal_resp::Protocol::Resp2, &settings);
            ctx.take_events()
        };
        self.publish_key_events(events);
    }

    /// SPUBLISH on the core owning `channel`: delivers to its subscribers on every core and
    /// returns once each core has them in its subscribers' buffers, so that the next SPUBLISH
    /// of the same client, perhaps through another owner, cannot overtake it.
    async fn spublish_owned(self: &Rc<Self>, channel: Bytes, message: Bytes) -> usize {
        debug_assert_eq!(shoal_store::slot::key_shard(&channel, self.shard_count), self.id, "a shard channel publishes on its own core");
        let mut targets = vec![false; self.shard_count];
        let count = self.pubsub.borrow_mut().deliver(Kind::Shard, &channel, &message, Some(&mut targets), None);
        self.log_for_replicas(&[b"SPUBLISH", &channel, &message]);
        let delivered: Vec<_> = targets
            .iter()
            .enumerate()
            .filter(|(_, &t)| t)
            .map(|(core, _)| {
                let (channel, message) = (channel.clone(), message.clone());
                self.request(core, |req| crate::core::Msg::Pubsub(Msg::ShardPublish { req, channel, message }))
            })
            .collect();
        for done in delivered {
            let _ = done.await;
        }
        count
    }

    /// SPUBLISH from any core: runs on the channel's owner and returns its count.
    pub async fn spublish(self: &Rc<Self>, channel: &[u8], message: &[u8]) -> usize {
        let owner = shoal_store::slot::key_shard(channel, self.shard_count);
        let (channel, message) = (Bytes::copy_from_slice(channel), Bytes::copy_from_slice(message));
        if owner == self.id {
            return self.spublish_owned(channel, message).await;
        }
        match self.request(owner, |req| crate::core::Msg::Pubsub(Msg::Spublish { req, channel, message })).await.expect("a peer always answers") {
            Payload::Call(count) => *count.downcast::<usize>().expect("a count"),
            _ => unreachable!("SPUBLISH is answered with its count"),
        }
    }

    /// Handles a Pub/Sub message from core `from`. Never waits.
    pub(crate) fn handle_pubsub(self: &Rc<Self>, from: usize, msg: Msg) {
        match msg {
            Msg::Update { ack, changes } => {
                self.pubsub.borrow_mut().apply(from, changes);
                match ack {
                    Ack::None => {}
                    Ack::Token(token) => self.send(from, crate::core::Msg::Pubsub(Msg::Acknowledged { token })),
                }
            }
            Msg::Acknowledged { token } => self.pubsub.borrow_mut().acknowledge(token, from),
            Msg::Publish { channel, message } => {
                self.pubsub.borrow_mut().deliver(Kind::Channel, &channel, &message, None, Some(from));
                self.acknowledge_publish(from);
            }
            Msg::PublishAck { count } => {
                self.publish_acked.borrow_mut()[from] += count as u64;
                for waker in self.outbox_waiters.borrow_mut().drain(..).chain(self.delivery_waiters.borrow_mut().drain(..)) {
                    waker.wake();
                }
            }
            Msg::ShardPublish { req, channel, message } => {
                self.pubsub.borrow_mut().deliver(Kind::Shard, &channel, &message, None, Some(from));
                self.reply(from, req, Payload::Done);
            }
            Msg::Spublish { req, channel, message } => {
                // Waiting for the deliveries is a task's job: message handling never waits.
                let core = self.clone();
                glommio::spawn_local(async move {
                    let count = core.spublish_owned(channel, message).await;
                    core.reply(from, req, Payload::Call(Box::new(count)));
                })
                .detach();
            }
        }
    }

    /// Owes core `from` the acknowledgement of one more published message. It leaves after
    /// the subscriber tasks that the deliveries woke have run (they were scheduled first),
    /// with every other acknowledgement owed to `from` by then.
    pub(crate) fn acknowledge_publish(self: &Rc<Self>, from: usize) {
        let mut due = self.publish_acks_due.borrow_mut();
        due[from] += 1;
        if due[from] > 1 {
            return;
        }
        let core = self.clone();
        glommio::spawn_local(async move {
            crate::yield_now().await;
            let count = std::mem::take(&mut core.publish_acks_due.borrow_mut()[from]);
            core.send(from, crate::core::Msg::Pubsub(Msg::PublishAck { count }));
        })
        .detach();
    }

    /// The cores that must hear about a change of `kind` on `name`: every other core, or for a
    /// shard channel its owner (when that is another core).
    fn announce_cores(&self, kind: Kind, name: &[u8]) -> Vec<usize> {
        match kind {
            Kind::Shard => {
                let owner = shoal_store::slot::key_shard(name, self.shard_count);
                if owner == self.id {
                    Vec::new()
                } else {
                    vec![owner]
                }
            }
            _ => (0..self.shard_count).filter(|&c| c != self.id).collect(),
        }
    }

    /// The changes `delta` for each of `names` means for each core (empty for cores that
    /// need not hear of them).
    fn changes_per_core(&self, kind: Kind, names: &[Bytes], delta: i64) -> Vec<Vec<Change>> {
        let mut per_core: Vec<Vec<Change>> = (0..self.shard_count).map(|_| Vec::new()).collect();
        for name in names {
            for core in self.announce_cores(kind, name) {
                per_core[core].push(Change { kind, name: name.clone(), delta });
            }
        }
        per_core
    }

    /// Sends `delta` for each of `names` to the cores that count them, without waiting.
    fn send_changes(self: &Rc<Self>, kind: Kind, names: &[Bytes], delta: i64) {
        for (core, changes) in self.changes_per_core(kind, names, delta).into_iter().enumerate() {
            if !changes.is_empty() {
                self.send(core, crate::core::Msg::Pubsub(Msg::Update { ack: Ack::None, changes }));
            }
        }
    }

    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: subscribes to `names` in order and returns the count
    /// each confirmation reports. Registered here before the first await, so messages may
    /// arrive (in `subscriber`'s buffer) before this returns; the caller must place the
    /// confirmations before them.
    pub async fn pubsub_subscribe(self: &Rc<Self>, subscriber: &Rc<Subscriber>, kind: Kind, names: &[Bytes]) -> Vec<usize> {
        let (counts, acknowledged) = self.pubsub_register(subscriber, kind, names);
        if let Some(acknowledged) = acknowledged {
            // The registry keeps the sender until every acknowledgement arrived.
            let _ = acknowledged.await;
        }
        counts
    }

    /// SUBSCRIBE's synchronous part: registers here and announces; returns the confirmation
    /// counts and, when other cores must acknowledge, what completes once they all have.
    fn pubsub_register(
        self: &Rc<Self>,
        subscriber: &Rc<Subscriber>,
        kind: Kind,
        names: &[Bytes],
    ) -> (Vec<usize>, Option<futures::channel::oneshot::Receiver<()>>) {
        let mut counts = Vec::with_capacity(names.len());
        let mut added = Vec::new();
        let mut registry = self.pubsub.borrow_mut();
        for name in names {
            // Arguments are slices of the read buffer: keep a copy of our own.
            let name = Bytes::copy_from_slice(name);
            if subscriber.names.borrow_mut()[kind.index()].insert(name.clone()) {
                // Until a core acknowledges, its messages did not count the subscription.
                let accepts = (!self.announce_cores(kind, &name).is_empty()).then(|| vec![false; self.shard_count].into_boxed_slice());
                registry.add_local(kind, name.clone(), subscriber, accepts);
                added.push(name);
            }
            counts.push(subscriber.confirmation_count(kind));
        }
        let acknowledged = self.announce_tracked(&mut registry, subscriber, kind, added, 1);
        (counts, acknowledged)
    }

    /// Announces `delta` for `subscriber`'s `names` of `kind` to the cores that count them,
    /// tracking each core's acknowledgement (see [`Activation`]). Returns what completes once
    /// every one acknowledged, or None when no other core needs to hear.
    fn announce_tracked(
        self: &Rc<Self>,
        registry: &mut Registry,
        subscriber: &Rc<Subscriber>,
        kind: Kind,
        names: Vec<Bytes>,
        delta: i64,
    ) -> Option<futures::channel::oneshot::Receiver<()>> {
        let per_core = self.changes_per_core(kind, &names, delta);
        let waiting = per_core.iter().filter(|changes| !changes.is_empty()).count();
        if waiting == 0 {
            return None;
        }
        let token = registry.next_token;
        registry.next_token += 1;
        let (done, acknowledged) = futures::channel::oneshot::channel();
        registry.activations.insert(token, Activation { subscriber: subscriber.clone(), kind, names, joining: delta > 0, waiting, done: Some(done) });
        for (core, changes) in per_core.into_iter().enumerate() {
            if !changes.is_empty() {
                self.send(core, crate::core::Msg::Pubsub(Msg::Update { ack: Ack::Token(token), changes }));
            }
        }
        Some(acknowledged)
    }

    /// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE: unsubscribes from `names` (none: from every
    /// subscription of `kind`) and returns each confirmation's name and count; with nothing
    /// to unsubscribe from, one confirmation without a name. Removed here only at the end,
    /// after every core acknowledged: the caller places the confirmations after the messages
    /// already in `subscriber`'s buffer.
    pub async fn pubsub_unsubscribe(self: &Rc<Self>, subscriber: &Rc<Subscriber>, kind: Kind, names: &[Bytes]) -> Vec<(Option<Bytes>, usize)> {
        let names = if names.is_empty() { subscriber.names.borrow()[kind.index()].ordered() } else { names.to_vec() };
        if names.is_empty() {
            return vec![(None, subscriber.confirmation_count(kind))];
        }
        let mut removing: Vec<Bytes> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut confirmations = Vec::with_capacity(names.len());
        let before = subscriber.confirmation_count(kind);
        for name in names {
            if subscriber.is_subscribed(kind, &name) && seen.insert(name.clone()) {
                removing.push(Bytes::copy_from_slice(&name));
            }
            confirmations.push((Some(name), before - removing.len()));
        }
        // Until a core acknowledges, it still counts the subscriptions and they take its
        // messages; after, they take none of its messages.
        let acknowledged = self.announce_tracked(&mut self.pubsub.borrow_mut(), subscriber, kind, removing.clone(), -1);
        if let Some(acknowledged) = acknowledged {
            let _ = acknowledged.await;
        }
        let mut registry = self.pubsub.borrow_mut();
        for name in &removing {
            subscriber.names.borrow_mut()[kind.index()].order.remove(name);
            registry.remove_local(kind, name, subscriber);
        }
        confirmations
    }

    /// RESET: leaves every subscription, announced and acknowledged before it returns.
    pub async fn pubsub_leave(self: &Rc<Self>, subscriber: &Rc<Subscriber>) {
        for kind in Kind::ALL {
            if subscriber.count(kind) > 0 {
                self.pubsub_unsubscribe(subscriber, kind, &[]).await;
            }
        }
    }

    /// A disconnect: removes every subscription now and tells the other cores without waiting.
    pub fn pubsub_drop(self: &Rc<Self>, subscriber: &Rc<Subscriber>) {
        for kind in Kind::ALL {
            let names = std::mem::take(&mut subscriber.names.borrow_mut()[kind.index()]).ordered();
            if names.is_empty() {
                continue;
            }
            {
                let mut registry = self.pubsub.borrow_mut();
                for name in &names {
                    registry.remove_local(kind, name, subscriber);
                }
            }
            self.send_changes(kind, &names, -1);
        }
        *subscriber.pending.borrow_mut() = BytesMut::new();
    }

    /// PUBSUB CHANNELS: channels with a subscriber on any core, matching `pattern` if given.
    pub fn pubsub_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let registry = self.pubsub.borrow();
        registry.topics[Kind::Channel.index()].keys().filter(|name| pattern.is_none_or(|p| shoal_glob::matches(p, name))).cloned().collect()
    }

    /// PUBSUB NUMSUB: subscribers of `channel` on every core (patterns not counted).
    pub fn pubsub_numsub(&self, channel: &[u8]) -> usize {
        self.pubsub.borrow().topics[Kind::Channel.index()].get(channel).map_or(0, Topic::total)
    }

    /// PUBSUB NUMPAT: patterns with a subscriber on any core.
    pub fn pubsub_numpat(&self) -> usize {
        self.pubsub.borrow().topics[Kind::Pattern.index()].len()
    }

    /// Shard channels this core owns that have a subscriber, matching `pattern` if given.
    pub fn pubsub_shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let registry = self.pubsub.borrow();
        registry.topics[Kind::Shard.index()]
            .iter()
            .filter(|(name, _)| shoal_store::slot::key_shard(name, self.shard_count) == self.id)
            .filter(|(name, _)| pattern.is_none_or(|p| shoal_glob::matches(p, name)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Subscribers of a shard channel this core owns, on every core.
    pub fn pubsub_shard_numsub(&self, channel: &[u8]) -> usize {
        debug_assert_eq!(shoal_store::slot::key_shard(channel, self.shard_count), self.id, "counted on the owner");
        self.pubsub.borrow().topics[Kind::Shard.index()].get(channel).map_or(0, Topic::total)
    }

    /// INFO's pubsub_channels, pubsub_patterns and (for channels this core owns)
    /// pubsubshard_channels.
    pub fn pubsub_info(&self) -> (usize, usize, usize) {
        let registry = self.pubsub.borrow();
        let owned = registry.topics[Kind::Shard.index()].keys().filter(|name| shoal_store::slot::key_shard(name, self.shard_count) == self.id).count();
        (registry.topics[Kind::Channel.index()].len(), registry.topics[Kind::Pattern.index()].len(), owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(kind: Kind, pattern: &str, channel: &str, message: &str, proto: Protocol) -> String {
        let mut out = BytesMut::new();
        encode_message(kind, pattern.as_bytes(), channel.as_bytes(), message.as_bytes(), proto, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn messages_encode_as_redis_sends_them() {
        assert_eq!(encoded(Kind::Channel, "", "c1", "m1", Protocol::Resp2), "*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$2\r\nm1\r\n");
        assert_eq!(encoded(Kind::Channel, "", "c1", "hello", Protocol::Resp3), ">3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$5\r\nhello\r\n");
        assert_eq!(encoded(Kind::Pattern, "c*", "c1", "hello", Protocol::Resp3), ">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nc1\r\n$5\r\nhello\r\n");
        assert_eq!(encoded(Kind::Shard, "", "s1", "m2", Protocol::Resp2), "*3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$2\r\nm2\r\n");
        assert_eq!(encoded(Kind::Channel, "", "", "", Protocol::Resp2), "*3\r\n$7\r\nmessage\r\n$0\r\n\r\n$0\r\n\r\n");
    }

    fn subscriber(registry: &mut Registry, kind: Kind, names: &[&str], proto: Protocol) -> Rc<Subscriber> {
        let subscriber = Subscriber::new(1, proto);
        for name in names {
            let name = Bytes::copy_from_slice(name.as_bytes());
            subscriber.names.borrow_mut()[kind.index()].insert(name.clone());
            registry.add_local(kind, name, &subscriber, None);
        }
        subscriber
    }

    fn pending(subscriber: &Subscriber) -> String {
        let mut out = BytesMut::new();
        subscriber.take_pending(&mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn delivery_counts_local_and_remote_subscribers_and_marks_their_cores() {
        let mut registry = Registry::default();
        let local = subscriber(&mut registry, Kind::Channel, &["news"], Protocol::Resp2);
        let pattern = subscriber(&mut registry, Kind::Pattern, &["n*", "x*"], Protocol::Resp3);
        registry.apply(2, vec![Change { kind: Kind::Channel, name: Bytes::from_static(b"news"), delta: 3 }]);
        registry.apply(1, vec![Change { kind: Kind::Pattern, name: Bytes::from_static(b"*s"), delta: 1 }]);
        registry.apply(3, vec![Change { kind: Kind::Pattern, name: Bytes::from_static(b"z*"), delta: 1 }]);
        let mut targets = vec![false; 4];
        assert_eq!(registry.deliver(Kind::Channel, b"news", b"hi", Some(&mut targets), None), 1 + 3 + 1 + 1);
        assert_eq!(targets, vec![false, true, true, false]);
        assert_eq!(pending(&local), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        assert_eq!(pending(&pattern), ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        // A message from another core counts and reaches only this core's subscribers.
        assert_eq!(registry.deliver(Kind::Channel, b"news", b"hi", None, Some(2)), 2);
    }

    #[test]
    fn a_new_subscription_takes_a_cores_messages_only_once_that_core_acknowledged_it() {
        let mut registry = Registry::new(3);
        let subscriber = Subscriber::new(1, Protocol::Resp2);
        registry.add_local(Kind::Channel, Bytes::from_static(b"c"), &subscriber, Some(vec![false; 3].into_boxed_slice()));
        let (done, mut finished) = futures::channel::oneshot::channel();
        registry.activations.insert(
            7,
            Activation {
                subscriber: subscriber.clone(),
                kind: Kind::Channel,
                names: vec![Bytes::from_static(b"c")],
                joining: true,
                waiting: 2,
                done: Some(done),
            },
        );
        // Published on this core: counted and delivered at once.
        assert_eq!(registry.deliver(Kind::Channel, b"c", b"local", Some(&mut [false; 3]), None), 1);
        // From cores that did not count it yet: not delivered.
        assert_eq!(registry.deliver(Kind::Channel, b"c", b"early", None, Some(1)), 0);
        registry.acknowledge(7, 1);
        assert_eq!(registry.deliver(Kind::Channel, b"c", b"one", None, Some(1)), 1);
        assert_eq!(registry.deliver(Kind::Channel, b"c", b"early", None, Some(2)), 0);
        assert!(finished.try_recv().unwrap().is_none(), "still waiting for core 2");
        registry.acknowledge(7, 2);
        assert_eq!(finished.try_recv().unwrap(), Some(()));
        assert_eq!(registry.deliver(Kind::Channel, b"c", b"two", None, Some(2)), 1);
        assert!(registry.activations.is_empty());
        let got = pending(&subscriber);
        assert!(got.contains("local") && got.contains("one") && got.contains("two") && !got.contains("early"), "{got}");
    }

    #[test]
    fn a_leaving_subscription_stops_taking_a_cores_messages_once_that_core_acknowledged() {
        let mut registry = Registry::new(3);
        let subscriber = Subscriber::new(1, Protocol::Resp2);
        registry.add_local(Kind::Pattern, Bytes::from_static(b"c*"), &subscriber, None);
        let (done, mut finished) = futures::channel::oneshot::channel();
        registry.activations.insert(
            3,
            Activation {
                subscriber: subscriber.clone(),
                kind: Kind::Pattern,
                names: vec![Bytes::from_static(b"c*")],
                joining: false,
                waiting: 2,
                done: Some(done),
            },
        );
        registry.acknowledge(3, 2);
        assert_eq!(registry.deliver(Kind::Channel, b"cc", b"counted", None, Some(1)), 1, "core 1 still counts it");
        assert_eq!(registry.deliver(Kind::Channel, b"cc", b"uncounted", None, Some(2)), 0, "core 2 no longer does");
        assert_eq!(registry.deliver(Kind::Channel, b"cc", b"local", Some(&mut [false; 3]), None), 1, "this core counts it until removed");
        registry.acknowledge(3, 1);
        assert_eq!(finished.try_recv().unwrap(), Some(()));
        assert_eq!(registry.deliver(Kind::Channel, b"cc", b"uncounted", None, Some(1)), 0);
        let got = pending(&subscriber);
        assert!(got.contains("counted") && got.contains("local") && !got.contains("uncounted"), "{got}");
    }

    #[test]
    fn a_remote_count_that_drops_to_zero_forgets_the_channel() {
        let mut registry = Registry::default();
        let change = |delta| vec![Change { kind: Kind::Channel, name: Bytes::from_static(b"c"), delta }];
        registry.apply(1, change(1));
        registry.apply(1, change(1));
        registry.apply(1, change(-1));
        assert_eq!(registry.topics[0].get(&b"c"[..]).map(Topic::total), Some(1));
        registry.apply(1, change(-1));
        assert!(registry.topics[0].is_empty());
    }

    #[test]
    fn a_subscriber_past_the_hard_limit_overflows_and_drops_its_buffer() {
        let subscriber = Subscriber::new(1, Protocol::Resp2);
        let limit = Limit { hard_bytes: 100, soft_bytes: 0, soft_seconds: 0 };
        subscriber.push(&[b'x'; 60], limit);
        assert!(!subscriber.overflowed());
        subscriber.set_in_flight(30);
        subscriber.push(&[b'x'; 20], limit);
        assert!(subscriber.overflowed(), "in-flight bytes count too");
        assert!(!subscriber.has_pending());
        subscriber.push(&[b'x'; 1], limit);
        assert!(!subscriber.has_pending(), "nothing is kept once overflowed");
    }

    #[test]
    fn a_subscriber_over_the_soft_limit_overflows_only_after_the_soft_seconds() {
        let subscriber = Subscriber::new(1, Protocol::Resp2);
        let limit = Limit { hard_bytes: 0, soft_bytes: 10, soft_seconds: 3600 };
        subscriber.push(&[b'x'; 20], limit);
        // Taken by the connection but not yet written: still over the soft limit.
        subscriber.take_pending(&mut BytesMut::new());
        subscriber.set_in_flight(20);
        subscriber.push(&[b'x'; 20], limit);
        assert!(!subscriber.overflowed());
        assert!(subscriber.over_soft_since.get().is_some(), "the clock kept running");
        subscriber.over_soft_since.set(Some(Instant::now() - Duration::from_secs(3601)));
        subscriber.push(&[b'x'; 1], limit);
        assert!(subscriber.overflowed());
    }

    #[test]
    fn patterns_unsubscribe_in_the_order_they_were_made() {
        let mut names = Names::default();
        for name in ["b", "a", "c"] {
            assert!(names.insert(Bytes::copy_from_slice(name.as_bytes())));
        }
        assert!(!names.insert(Bytes::from_static(b"a")));
        assert_eq!(names.ordered(), vec![Bytes::from_static(b"b"), Bytes::from_static(b"a"), Bytes::from_static(b"c")]);
    }
}

//! Client-side caching: CLIENT TRACKING's invalidation messages (Redis's `tracking.c`).
//!
//! **Where the state lives.** A key's readers are remembered by the core that owns the key
//! ([`Table::keys`]: key name → the tracking clients that read it, with their home core), so
//! a write finds them without asking anyone. As in Redis the name alone counts, whatever the
//! database. A client's own state (on, BCAST, NOLOOP, its redirection) and the buffer its
//! pushes wait in live on its home core, in an [`Outlet`]; a client named as another's
//! REDIRECT gets one too. BCAST registrations (client, prefix) are copied to every core, since
//! any core may write a key under the prefix.
//!
//! **Reads.** A plain command of a tracking client remembers its keys on the owning core as
//! it runs (`Core::run_now`), so no write can come between the read and the registration.
//! Reads that run as transactions (a cross-core MGET, EXEC, a script) register their keys
//! *before* they run, as pending ([`Msg::Track`]), and confirm them after: a pending reader
//! survives the invalidations that come meanwhile, so the write that follows the read is
//! never missed (at worst the client hears of a write it already saw).
//!
//! **Writes.** Every path that tells WATCH a key changed (a single-core write, a
//! transaction's release, a script's writes, an eviction, an expiry) tells this table too.
//! The readers of the key are told once and forgotten (pending ones stay), as in Redis; the
//! BCAST clients whose prefix matches collect the key, and each gets one message per prefix
//! once the batch is done. A shard-wide write (FLUSHALL, FLUSHDB, SWAPDB) sends a null
//! invalidation (flush everything) to each reader of this core and every BCAST client
//! instead; each client gets one per transaction.
//!
//! **Delivery.** Invalidations travel to the reader's home core ([`Msg::Invalidate`]), which
//! drops them for a client that turned tracking off or switched mode, applies NOLOOP, and
//! pushes them into the client's outlet (RESP3), or into its redirection's (another core:
//! [`Msg::Push`]): a RESP3 push, or for a RESP2 client in Pub/Sub mode a message of channel
//! `__redis__:invalidate`, as Redis does. A redirection that is gone is reported back
//! ([`Msg::Broken`]): the client gets `tracking-redir-broken` (RESP3) and the flag
//! `broken_redirect`. The connection writes its outlet after its replies, so a write that
//! followed a read is always announced after that read's reply.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use shoal_resp::{encode, Frame, Protocol};

use crate::core::{Core, Msg as CoreMsg};
use crate::pubsub::Subscriber;

/// Clients with tracking on, across cores (INFO's tracking_clients). Process-wide, as the
/// store's log of expired keys it turns on is (see [`refresh_log_expired`]).
static TRACKING_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// Clients with tracking on, across cores.
pub fn clients() -> usize {
    TRACKING_CLIENTS.load(Ordering::Relaxed)
}

/// The store records the keys it expires while the append-only log or some tracking client
/// needs them.
pub(crate) fn refresh_log_expired() {
    let on = crate::aof::LOG.is_active() || clients() > 0;
    if on {
        crate::aof::EXPIRED_RECORDED.store(true, Ordering::Relaxed);
    }
    shoal_store::db::set_log_expired(on);
}

/// Messages of this module between cores.
pub enum Msg {
    /// To a client's home core: keys it read changed (`None`: flush everything). `bcast`
    /// says which registration produced it (a client that switched mode drops the other's).
    Invalidate { writer: u64, notes: Vec<Note> },
    /// To a redirection's core: push this to `target` on behalf of `client` (of core `home`).
    Push { target: u64, client: u64, home: usize, keys: Option<Vec<Bytes>> },
    /// To a client's home core: its redirection `target` is gone.
    Broken { client: u64, target: u64 },
    /// To a key's owner: remember (`pending`) or confirm the reads of a transaction.
    Track { client: u64, home: usize, keys: Vec<Bytes>, confirm: bool },
    /// To a key's owner: these keys changed (expired while a script held this core's shard).
    Changed { keys: Vec<Bytes> },
    /// BCAST registrations, copied to every core: add or remove a client's prefixes.
    Bcast { client: u64, home: usize, prefixes: Vec<Bytes>, noloop: bool, add: bool },
}

/// One invalidation for one client.
pub struct Note {
    pub client: u64,
    pub keys: Option<Vec<Bytes>>,
    pub bcast: bool,
    /// For a null invalidation: the shard-wide transaction that sent it (every core it held
    /// sends one; the client gets the first), or 0.
    pub flush: u64,
}

/// A client that read a key: who, where it lives, and how many transactions that read it
/// have not confirmed yet.
#[derive(Clone, Copy)]
struct Reader {
    client: u64,
    home: usize,
    pending: u32,
}

struct Bcast {
    client: u64,
    home: usize,
    prefix: Bytes,
    noloop: bool,
    /// Keys written under the prefix since the last flush.
    keys: Vec<Bytes>,
}

/// A tracking client's mode, on its home core.
#[derive(Clone, Debug, Default)]
pub struct Mode {
    pub bcast: bool,
    pub noloop: bool,
    /// REDIRECT: the client's id and its core.
    pub redirect: Option<(u64, usize)>,
}

/// Where a client's invalidation pushes wait for its connection (see the module docs).
pub struct Outlet {
    pub client: u64,
    /// Its buffer, which also knows the client's protocol.
    pub sink: Rc<Subscriber>,
    /// In Pub/Sub mode (a RESP2 redirection target then gets messages).
    subscribed: Cell<bool>,
    /// Tracking on, and how.
    mode: RefCell<Option<Mode>>,
    broken: Cell<bool>,
    /// The last shard-wide transaction whose null invalidation this client got.
    last_flush: Cell<u64>,
}

impl Outlet {
    /// The connection's protocol and Pub/Sub mode, which decide how pushes are encoded.
    pub fn set_state(&self, proto: Protocol, subscribed: bool) {
        self.subscribed.set(subscribed);
        self.sink.set_proto(proto);
    }

    pub fn mode(&self) -> Option<Mode> {
        self.mode.borrow().clone()
    }

    /// Whether a notification could not be delivered to the redirection (TRACKINGINFO's
    /// `broken_redirect`, CLIENT LIST's `R`).
    pub fn broken(&self) -> bool {
        self.broken.get()
    }
}

/// One core's tracking state.
#[derive(Default)]
pub struct Table {
    keys: HashMap<Bytes, Vec<Reader>>,
    /// (key, client) pairs in `keys` (INFO's tracking_total_items).
    items: usize,
    bcast: Vec<Bcast>,
    /// Invalidations to send once the current batch is done: (home core, note).
    outgoing: Vec<(usize, Note)>,
    /// The client whose command runs now (NOLOOP), or 0.
    pub(crate) writer: u64,
    /// This core's clients with an outlet.
    outlets: HashMap<u64, Rc<Outlet>>,
    /// The keys of `keys` in the order they were first remembered (with keys forgotten
    /// since), for `tracking-table-max-keys`: kept only while it is set.
    order: std::collections::VecDeque<Bytes>,
    /// Keys remembered at most on this core (`tracking-table-max-keys` shared out; 0: no
    /// bound).
    max_keys: usize,
}

impl Table {
    /// Whether any write here must be looked at.
    pub(crate) fn active(&self) -> bool {
        !self.keys.is_empty() || !self.bcast.is_empty()
    }

    fn remember(&mut self, key: &[u8], client: u64, home: usize, pending: bool) {
        let readers = match self.keys.get_mut(key) {
            Some(readers) => readers,
            None => {
                let key = Bytes::copy_from_slice(key);
                if self.max_keys > 0 {
                    self.order.push_back(key.clone());
                }
                self.keys.entry(key).or_default()
            }
        };
        match readers.iter_mut().find(|r| r.client == client) {
            Some(reader) => reader.pending += pending as u32,
            None => {
                readers.push(Reader { client, home, pending: pending as u32 });
                self.items += 1;
            }
        }
    }

    fn confirm(&mut self, key: &[u8], client: u64) {
        if let Some(reader) = self.keys.get_mut(key).and_then(|readers| readers.iter_mut().find(|r| r.client == client)) {
            reader.pending = reader.pending.saturating_sub(1);
        }
    }

    /// A key changed: its readers are told (and forgotten, unless a read is still pending),
    /// and the BCAST prefixes that match collect it.
    pub(crate) fn invalidate(&mut self, key: &[u8]) {
        if let Some(readers) = self.keys.remove(key) {
            let key = Bytes::copy_from_slice(key);
            let mut kept = Vec::new();
            self.items -= readers.len();
            for reader in readers {
                self.outgoing.push((reader.home, Note { client: reader.client, keys: Some(vec![key.clone()]), bcast: false, flush: 0 }));
                if reader.pending > 0 {
                    kept.push(reader);
                }
            }
            self.items += kept.len();
            if !kept.is_empty() {
                self.keys.insert(key, kept);
            }
        }
        let writer = self.writer;
        for bcast in &mut self.bcast {
            if key.starts_with(&bcast.prefix) && !(bcast.noloop && writer == bcast.client) {
                bcast.keys.push(Bytes::copy_from_slice(key));
            }
        }
    }

    /// A shard-wide write of transaction `tx`: every reader here and every BCAST client gets
    /// one null invalidation (each core the transaction held sends them; the home core
    /// passes on the first), and the readers are forgotten (pending reads stay).
    fn invalidate_all(&mut self, tx: u64, this_core: usize) {
        let mut told: Vec<u64> = Vec::new();
        let mut kept = HashMap::new();
        for (key, readers) in self.keys.drain() {
            let pending: Vec<Reader> = readers.iter().copied().filter(|r| r.pending > 0).collect();
            for reader in readers {
                if !told.contains(&reader.client) {
                    told.push(reader.client);
                    self.outgoing.push((reader.home, Note { client: reader.client, keys: None, bcast: false, flush: tx }));
                }
            }
            if !pending.is_empty() {
                kept.insert(key, pending);
            }
        }
        self.items = kept.values().map(Vec::len).sum();
        self.keys = kept;
        for bcast in &mut self.bcast {
            bcast.keys.clear();
            if !told.contains(&bcast.client) {
                told.push(bcast.client);
                self.outgoing.push((bcast.home, Note { client: bcast.client, keys: None, bcast: true, flush: tx }));
            }
        }
        // And every tracking client of this core, as Redis tells every tracking client of a
        // flush (those with nothing cached included).
        let local: Vec<(u64, bool)> = self.outlets.values().filter_map(|outlet| outlet.mode().map(|mode| (outlet.client, mode.bcast))).collect();
        for (client, bcast) in local {
            if !told.contains(&client) {
                told.push(client);
                self.outgoing.push((this_core, Note { client, keys: None, bcast, flush: tx }));
            }
        }
    }

    /// Past `max_keys`: forgets keys (telling their readers, as Redis's
    /// trackingLimitUsedSlots does) until back under it.
    fn enforce_limit(&mut self) {
        if self.max_keys == 0 {
            return;
        }
        // The oldest remembered keys go first. `order` also holds keys already forgotten
        // (invalidated): skipped here, and dropped when it grows to twice the table.
        if self.order.len() > 2 * self.keys.len() + 64 {
            let keys = &self.keys;
            self.order.retain(|key| keys.contains_key(key));
        }
        let mut skipped = 0;
        while self.keys.len() > self.max_keys && skipped <= self.order.len() {
            let Some(key) = self.order.pop_front() else { break };
            let Some(readers) = self.keys.get(&key) else { continue };
            // Not a key a transaction is reading now: its reader would cache a value nobody
            // remembers it read. It goes back to the end of the line.
            if readers.iter().any(|r| r.pending > 0) {
                self.order.push_back(key);
                skipped += 1;
                continue;
            }
            let readers = self.keys.remove(&key).unwrap_or_default();
            self.items -= readers.len();
            for reader in readers {
                self.outgoing.push((reader.home, Note { client: reader.client, keys: Some(vec![key.clone()]), bcast: false, flush: 0 }));
            }
        }
    }

    /// Moves the BCAST keys collected so far to `outgoing`, one message per prefix.
    fn collect_bcast(&mut self) {
        for bcast in &mut self.bcast {
            if !bcast.keys.is_empty() {
                let keys = std::mem::take(&mut bcast.keys);
                self.outgoing.push((bcast.home, Note { client: bcast.client, keys: Some(keys), bcast: true, flush: 0 }));
            }
        }
    }

    /// INFO: keys, (key, client) items and BCAST prefixes remembered here.
    pub fn totals(&self) -> (usize, usize, usize) {
        let mut prefixes: Vec<&Bytes> = self.bcast.iter().map(|b| &b.prefix).collect();
        prefixes.sort();
        prefixes.dedup();
        (self.keys.len(), self.items, prefixes.len())
    }
}

/// Encodes the push of an invalidation for a client in `proto`: a RESP3 push, or for a
/// RESP2 client in Pub/Sub mode that receives it as a redirection, a message of
/// `__redis__:invalidate`. `None` when the client can receive nothing.
fn encode_invalidation(proto: Protocol, subscribed: bool, redirected: bool, keys: &Option<Vec<Bytes>>) -> Option<BytesMut> {
    let value = match keys {
        Some(keys) => Frame::Array(keys.iter().cloned().map(Frame::Bulk).collect()),
        None => Frame::Null,
    };
    let frame = if proto == Protocol::Resp3 {
        Frame::Push(vec![Frame::bulk("invalidate"), value])
    } else if redirected && subscribed {
        Frame::Array(vec![Frame::bulk("message"), Frame::bulk("__redis__:invalidate"), value])
    } else {
        return None;
    };
    let mut out = BytesMut::new();
    encode(&frame, proto, &mut out);
    Some(out)
}

impl Core {
    /// The outlet of client `client` of this core, made if it has none: its pushes then go
    /// to `sink` (a subscribed client's own buffer), or to a new buffer. `proto` and
    /// `subscribed`: the client's state now.
    pub fn tracking_outlet(&self, client: u64, proto: Protocol, subscribed: bool, sink: Option<Rc<Subscriber>>) -> Rc<Outlet> {
        let mut table = self.tracking.borrow_mut();
        table
            .outlets
            .entry(client)
            .or_insert_with(|| {
                Rc::new(Outlet {
                    client,
                    sink: sink.unwrap_or_else(|| Subscriber::new(client, proto)),
                    subscribed: Cell::new(subscribed),
                    mode: RefCell::new(None),
                    broken: Cell::new(false),
                    last_flush: Cell::new(0),
                })
            })
            .clone()
    }

    /// The outlet of `client` if it has one (a connection named as a redirection picks its
    /// outlet up here).
    pub fn tracking_outlet_of(&self, client: u64) -> Option<Rc<Outlet>> {
        let table = self.tracking.borrow();
        if table.outlets.is_empty() {
            return None;
        }
        table.outlets.get(&client).cloned()
    }

    /// The connection of `client` closed: its outlet goes, and its BCAST prefixes on every
    /// core. Its remembered reads are dropped lazily, when their keys change.
    pub fn tracking_forget(self: &Rc<Self>, client: u64) {
        let outlet = self.tracking.borrow_mut().outlets.remove(&client);
        if let Some(mode) = outlet.as_ref().and_then(|outlet| outlet.mode()) {
            TRACKING_CLIENTS.fetch_sub(1, Ordering::Relaxed);
            if mode.bcast {
                self.tracking_bcast_everywhere(client, Vec::new(), false, false);
            }
            refresh_log_expired();
        }
    }

    /// Turns tracking on (`Some`) or off for `client`, whose outlet this core holds. BCAST
    /// prefixes are registered on every core before this returns (`prefixes`: for BCAST; an
    /// empty list tracks every key).
    pub async fn tracking_set(self: &Rc<Self>, outlet: &Outlet, mode: Option<Mode>, prefixes: Vec<Bytes>) {
        let client = outlet.client;
        let old = outlet.mode.replace(mode.clone());
        match (&old, &mode) {
            (None, Some(_)) => {
                TRACKING_CLIENTS.fetch_add(1, Ordering::Relaxed);
            }
            (Some(_), None) => {
                TRACKING_CLIENTS.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if mode.is_some() {
            outlet.broken.set(false);
        }
        refresh_log_expired();
        let was_bcast = old.as_ref().is_some_and(|m| m.bcast);
        let now_bcast = mode.as_ref().is_some_and(|m| m.bcast);
        if now_bcast {
            let noloop = mode.as_ref().is_some_and(|m| m.noloop);
            let prefixes = if prefixes.is_empty() && !was_bcast { vec![Bytes::new()] } else { prefixes };
            if !prefixes.is_empty() {
                self.tracking_bcast_everywhere(client, prefixes, noloop, true);
            }
        } else if was_bcast {
            self.tracking_bcast_everywhere(client, Vec::new(), false, false);
        }
        // The registrations reach every core before the reply: a round trip to each (the
        // mesh keeps each pair of cores in order).
        if now_bcast || was_bcast {
            self.call_all(|_| ()).await;
        }
    }

    /// The BCAST prefixes `client` registered (TRACKINGINFO), from this core's copy.
    pub fn tracking_prefixes(&self, client: u64) -> Vec<Bytes> {
        let mut prefixes: Vec<Bytes> = self.tracking.borrow().bcast.iter().filter(|b| b.client == client).map(|b| b.prefix.clone()).collect();
        prefixes.sort();
        prefixes
    }

    fn tracking_bcast_everywhere(self: &Rc<Self>, client: u64, prefixes: Vec<Bytes>, noloop: bool, add: bool) {
        for core in 0..self.shard_count {
            let msg = Msg::Bcast { client, home: self.id, prefixes: prefixes.clone(), noloop, add };
            if core == self.id {
                self.handle_tracking(self.id, msg);
            } else {
                self.send(core, CoreMsg::Tracking(msg));
            }
        }
    }

    /// `tracking-table-max-keys`, shared out between the cores.
    pub fn tracking_set_max_keys(&self, max_keys: usize) {
        let mut table = self.tracking.borrow_mut();
        table.max_keys = max_keys.div_ceil(self.shard_count);
        // The keys remembered while there was no bound join the line (in no particular
        // order); with none, the line is not kept.
        table.order = if max_keys == 0 { Default::default() } else { table.keys.keys().cloned().collect() };
        table.enforce_limit();
        drop(table);
        self.tracking_flush();
    }

    /// INFO's tracking totals of this core.
    pub fn tracking_totals(&self) -> (usize, usize, usize) {
        self.tracking.borrow().totals()
    }

    /// Registers (`confirm` false) or confirms the reads of a transaction of `client` (of
    /// this core) on the keys' owners: see the module docs.
    pub fn tracking_track(self: &Rc<Self>, client: u64, keys: Vec<Bytes>, confirm: bool) {
        let mut per_core: Vec<Vec<Bytes>> = vec![Vec::new(); self.shard_count];
        for key in keys {
            per_core[shoal_store::slot::key_shard(&key, self.shard_count)].push(key);
        }
        for (core, keys) in per_core.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            let msg = Msg::Track { client, home: self.id, keys, confirm };
            if core == self.id {
                self.handle_tracking(self.id, msg);
            } else {
                self.send(core, CoreMsg::Tracking(msg));
            }
        }
    }

    /// Remembers that `client` (of core `home`) read `keys` of this core, as the read runs.
    pub(crate) fn tracking_remember(&self, client: u64, home: usize, keys: impl Iterator<Item = impl AsRef<[u8]>>) {
        let mut table = self.tracking.borrow_mut();
        for key in keys {
            table.remember(key.as_ref(), client, home, false);
        }
        table.enforce_limit();
    }

    /// Whether writes here must tell the tracking table.
    pub(crate) fn tracking_active(&self) -> bool {
        self.tracking.borrow().active()
    }

    /// Keys of this core changed.
    pub(crate) fn tracking_invalidate<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        let mut table = self.tracking.borrow_mut();
        if !table.active() {
            return;
        }
        for key in keys {
            table.invalidate(key);
        }
    }

    /// Keys (or hash fields) expired: their readers hear of it, as of a write. A script
    /// running here may have expired keys of a core it parked: their owner is told.
    pub(crate) fn tracking_expired(self: &Rc<Self>, expired: Vec<(usize, Vec<shoal_store::db::Expired>)>) {
        let mut elsewhere: Vec<Vec<Bytes>> = vec![Vec::new(); self.shard_count];
        {
            let mut table = self.tracking.borrow_mut();
            for (_, items) in &expired {
                for item in items {
                    let (shoal_store::db::Expired::Key(key) | shoal_store::db::Expired::Fields(key, _)) = item;
                    let owner = shoal_store::slot::key_shard(key, self.shard_count);
                    if owner == self.id {
                        if table.active() {
                            table.invalidate(key);
                        }
                    } else {
                        elsewhere[owner].push(Bytes::copy_from_slice(key));
                    }
                }
            }
        }
        for (owner, keys) in elsewhere.into_iter().enumerate() {
            if !keys.is_empty() {
                self.send(owner, CoreMsg::Tracking(Msg::Changed { keys }));
            }
        }
        self.tracking_flush();
    }

    /// A shard-wide write ran here (FLUSHALL, FLUSHDB, SWAPDB).
    pub(crate) fn tracking_invalidate_all(&self, tx: u64) {
        self.tracking.borrow_mut().invalidate_all(tx, self.id);
    }

    /// Sends the invalidations collected so far to the readers' home cores.
    pub(crate) fn tracking_flush(&self) {
        let (outgoing, writer) = {
            let mut table = self.tracking.borrow_mut();
            if table.outgoing.is_empty() && table.bcast.iter().all(|b| b.keys.is_empty()) {
                return;
            }
            table.collect_bcast();
            (std::mem::take(&mut table.outgoing), table.writer)
        };
        // Sending needs this core's handle (`&self` may come from code without one).
        let this = Core::current();
        debug_assert_eq!(this.id, self.id);
        let mut per_core: Vec<Vec<Note>> = (0..self.shard_count).map(|_| Vec::new()).collect();
        for (home, note) in outgoing {
            per_core[home].push(note);
        }
        for (core, notes) in per_core.into_iter().enumerate() {
            if notes.is_empty() {
                continue;
            }
            if core == self.id {
                this.tracking_deliver(writer, notes);
            } else {
                // Counted as a published message: the core acknowledges it once the clients'
                // writers have it, and a batch whose writes sent it holds its replies until
                // then (`Core::delivered`), so a writer that has its reply knows the readers'
                // connections have the invalidation, as from Redis.
                this.publish_sent.borrow_mut()[core] += 1;
                this.send(core, CoreMsg::Tracking(Msg::Invalidate { writer, notes }));
            }
        }
    }

    pub(crate) fn handle_tracking(self: &Rc<Self>, from: usize, msg: Msg) {
        match msg {
            Msg::Invalidate { writer, notes } => {
                self.tracking_deliver(writer, notes);
                self.acknowledge_publish(from);
            }
            Msg::Push { target, client, home, keys } => self.tracking_push_redirected(target, client, home, keys),
            Msg::Broken { client, target } => self.tracking_broken(client, target),
            Msg::Track { client, home, keys, confirm } => {
                let mut table = self.tracking.borrow_mut();
                for key in &keys {
                    if confirm {
                        table.confirm(key, client);
                    } else {
                        table.remember(key, client, home, true);
                    }
                }
                table.enforce_limit();
                drop(table);
                self.tracking_flush();
            }
            Msg::Changed { keys } => self.tracking_invalidate(keys.iter().map(|key| &key[..])),
            Msg::Bcast { client, home, prefixes, noloop, add } => {
                let mut table = self.tracking.borrow_mut();
                if add {
                    for prefix in prefixes {
                        if !table.bcast.iter().any(|b| b.client == client && b.prefix == prefix) {
                            table.bcast.push(Bcast { client, home, prefix, noloop, keys: Vec::new() });
                        }
                    }
                    for bcast in table.bcast.iter_mut().filter(|b| b.client == client) {
                        bcast.noloop = noloop;
                    }
                } else {
                    table.bcast.retain(|b| b.client != client);
                }
            }
        }
    }

    /// On a client's home core: hands its invalidations to its outlet or its redirection.
    fn tracking_deliver(self: &Rc<Self>, writer: u64, notes: Vec<Note>) {
        let limit = self.pubsub.borrow().limit;
        for note in notes {
            let Some(outlet) = self.tracking_outlet_of(note.client) else { continue };
            let Some(mode) = outlet.mode() else { continue };
            // A client that switched mode drops what its old registrations send.
            if mode.bcast != note.bcast {
                continue;
            }
            // NOLOOP spares the client its own changes, not a flush (Redis tells every
            // tracking client of one).
            if mode.noloop && !note.bcast && note.keys.is_some() && writer == note.client {
                continue;
            }
            if note.flush != 0 {
                if outlet.last_flush.get() == note.flush {
                    continue;
                }
                outlet.last_flush.set(note.flush);
            }
            match mode.redirect {
                None => {
                    if let Some(bytes) = encode_invalidation(outlet.sink.proto(), outlet.subscribed.get(), false, &note.keys) {
                        outlet.sink.push(&bytes, limit);
                    }
                }
                Some((target, core)) if core == self.id => self.tracking_push_redirected(target, note.client, self.id, note.keys),
                Some((target, core)) => self.send(core, CoreMsg::Tracking(Msg::Push { target, client: note.client, home: self.id, keys: note.keys })),
            }
        }
    }

    /// On a redirection's core: pushes an invalidation of `client` (of core `home`).
    fn tracking_push_redirected(self: &Rc<Self>, target: u64, client: u64, home: usize, keys: Option<Vec<Bytes>>) {
        match self.tracking_outlet_of(target) {
            Some(outlet) => {
                if let Some(bytes) = encode_invalidation(outlet.sink.proto(), outlet.subscribed.get(), true, &keys) {
                    outlet.sink.push(&bytes, self.pubsub.borrow().limit);
                }
            }
            None if home == self.id => self.tracking_broken(client, target),
            None => self.send(home, CoreMsg::Tracking(Msg::Broken { client, target })),
        }
    }

    /// The redirection of `client` (of this core) is gone: a RESP3 client hears of it.
    fn tracking_broken(&self, client: u64, target: u64) {
        let Some(outlet) = self.tracking_outlet_of(client) else { return };
        if outlet.mode().is_none() {
            return;
        }
        outlet.broken.set(true);
        if outlet.sink.proto() == Protocol::Resp3 {
            let frame = Frame::Push(vec![Frame::bulk("tracking-redir-broken"), Frame::Integer(target as i64)]);
            let mut out = BytesMut::new();
            encode(&frame, Protocol::Resp3, &mut out);
            outlet.sink.push(&out, self.pubsub.borrow().limit);
        }
    }
}

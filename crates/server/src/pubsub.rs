//! The Pub/Sub commands on the connection's side: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their
//! UNSUBSCRIBE forms, PUBLISH, SPUBLISH and PUBSUB, Pub/Sub mode (what a subscribed RESP2
//! client may run), and leaving on RESET or a disconnect.
//!
//! The subscriptions themselves and the way messages cross cores are `shoal_runtime::pubsub`'s.
//! Here the connection keeps its [`Subscriber`] (created by its first subscription, dropped once
//! it has none and its messages are written) and places confirmations and messages in its
//! output in the order Redis would send them: a subscription's confirmation before any message
//! it brings, an unsubscription's after every message it counted.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use shoal_commands::{errors, CommandSpec};
use shoal_resp::{encode, Frame, Protocol};
use shoal_runtime::pubsub::{Kind, Limit, Subscriber};

use crate::connection::Conn;
use crate::node::Node;
use crate::server_commands::{bulk, help, subcommand_syntax_error};

/// What a RESP2 client may run while subscribed (Redis's `processCommand`).
const ALLOWED_WHILE_SUBSCRIBED: &[&str] = &["subscribe", "ssubscribe", "psubscribe", "unsubscribe", "sunsubscribe", "punsubscribe", "ping", "quit", "reset"];

/// The (un)subscription commands: their kind, and whether they subscribe.
pub fn subscription(name: &str) -> Option<(Kind, bool)> {
    Some(match name {
        "subscribe" => (Kind::Channel, true),
        "psubscribe" => (Kind::Pattern, true),
        "ssubscribe" => (Kind::Shard, true),
        "unsubscribe" => (Kind::Channel, false),
        "punsubscribe" => (Kind::Pattern, false),
        "sunsubscribe" => (Kind::Shard, false),
        _ => return None,
    })
}

/// Whether the client is in Pub/Sub mode (any subscription of any kind).
pub fn subscribed(conn: &Conn) -> bool {
    conn.pubsub.as_ref().is_some_and(|s| s.total() > 0)
}

/// In RESP2 Pub/Sub mode, Redis's refusal of any command but a few.
pub fn refusal(conn: &Conn, spec: &CommandSpec) -> Option<Frame> {
    if conn.proto != Protocol::Resp2 || !subscribed(conn) || ALLOWED_WHILE_SUBSCRIBED.contains(&spec.name) {
        return None;
    }
    Some(errors::error(&format!("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", spec.name)))
}

/// PING in RESP2 Pub/Sub mode: `pong` and the argument (empty without one), as an array.
pub fn subscribed_ping(conn: &Conn, args: &[Bytes]) -> Option<Frame> {
    // More than one argument is PING's own arity error.
    if conn.proto != Protocol::Resp2 || !subscribed(conn) || args.len() > 2 {
        return None;
    }
    let text = args.get(1).cloned().unwrap_or_default();
    Some(Frame::Array(vec![bulk("pong"), Frame::Bulk(text)]))
}

/// The output-buffer limit subscribers get, from the configuration.
pub fn limit(node: &Node) -> Limit {
    let limit = node.config.borrow().client_output_buffer_limit.pubsub;
    Limit { hard_bytes: limit.hard_bytes, soft_bytes: limit.soft_bytes, soft_seconds: limit.soft_seconds }
}

fn confirmation(word: &'static str, name: Option<Bytes>, count: usize) -> Frame {
    Frame::Push(vec![bulk(word), name.map_or(Frame::Null, Frame::Bulk), Frame::Integer(count as i64)])
}

fn word(kind: Kind, subscribe: bool) -> &'static str {
    match (kind, subscribe) {
        (Kind::Channel, true) => "subscribe",
        (Kind::Pattern, true) => "psubscribe",
        (Kind::Shard, true) => "ssubscribe",
        (Kind::Channel, false) => "unsubscribe",
        (Kind::Pattern, false) => "punsubscribe",
        (Kind::Shard, false) => "sunsubscribe",
    }
}

/// The connection's subscriber, created on first use.
fn subscriber(node: &Node, conn: &mut Conn) -> Rc<Subscriber> {
    if conn.pubsub.is_none() {
        node.core.pubsub_set_limit(limit(node));
    }
    let subscriber = conn.pubsub.get_or_insert_with(|| Subscriber::new(conn.client.id, conn.proto)).clone();
    *conn.client.subscriber.borrow_mut() = Some(subscriber.clone());
    subscriber
}

/// CLIENT LIST's sub, psub and ssub.
fn publish_counts(conn: &Conn) {
    let counts = conn.pubsub.as_ref().map_or([0; 3], |s| [s.count(Kind::Channel), s.count(Kind::Pattern), s.count(Kind::Shard)]);
    conn.client.subscriptions.set(counts);
}

/// Runs an (un)subscription command, writing its confirmations, and the messages that
/// arrive meanwhile, to `output` in order.
pub async fn run_subscription(node: &Rc<Node>, conn: &mut Conn, spec: &CommandSpec, args: &[Bytes], output: &mut BytesMut) {
    let started = std::time::Instant::now();
    let frames = subscribe_or_unsubscribe(node, conn, spec, args, Some(output)).await;
    for frame in &frames {
        encode(frame, conn.proto, output);
    }
    // Messages that arrived while the other cores acknowledged come after the confirmations.
    drain(conn, output);
    let ok = Frame::Integer(0);
    crate::server_commands::account(node, conn, spec, args, started.elapsed(), frames.last().unwrap_or(&ok));
}

/// An (un)subscription command inside EXEC, where its reply is one element of EXEC's array:
/// its confirmation, or several of them as an array (Redis writes them one after the other
/// there, which leaves EXEC's reply malformed).
pub async fn subscription_in_exec(node: &Rc<Node>, conn: &mut Conn, spec: &CommandSpec, args: &[Bytes]) -> Frame {
    let mut frames = subscribe_or_unsubscribe(node, conn, spec, args, None).await;
    if frames.len() == 1 {
        frames.pop().expect("one frame")
    } else {
        Frame::Array(frames)
    }
}

async fn subscribe_or_unsubscribe(node: &Rc<Node>, conn: &mut Conn, spec: &CommandSpec, args: &[Bytes], output: Option<&mut BytesMut>) -> Vec<Frame> {
    let (kind, subscribing) = subscription(spec.name).expect("an (un)subscription command");
    let word = word(kind, subscribing);
    let names = &args[1..];
    let frames = if subscribing {
        let subscriber = subscriber(node, conn);
        // Messages already here come before the confirmations; those the new subscriptions
        // bring, after them.
        if let Some(output) = output {
            subscriber.take_pending(output);
        }
        let counts = node.core.pubsub_subscribe(&subscriber, kind, names).await;
        names.iter().zip(counts).map(|(name, count)| confirmation(word, Some(name.clone()), count)).collect()
    } else {
        match conn.pubsub.clone() {
            Some(subscriber) => {
                let confirmations = node.core.pubsub_unsubscribe(&subscriber, kind, names).await;
                // Every message counted for the removed subscriptions is in the buffer now:
                // it goes before the confirmations.
                if let Some(output) = output {
                    subscriber.take_pending(output);
                }
                confirmations.into_iter().map(|(name, count)| confirmation(word, name, count)).collect()
            }
            None if names.is_empty() => vec![confirmation(word, None, 0)],
            None => names.iter().map(|name| confirmation(word, Some(name.clone()), 0)).collect(),
        }
    };
    publish_counts(conn);
    frames
}

/// Moves the messages waiting for the connection to `output`; once it has no subscription
/// left and nothing waits, the connection leaves Pub/Sub for good.
pub fn drain(conn: &mut Conn, output: &mut BytesMut) {
    if let Some(subscriber) = &conn.pubsub {
        subscriber.take_pending(output);
        if subscriber.total() == 0 {
            conn.pubsub = None;
            *conn.client.subscriber.borrow_mut() = None;
        }
    }
}

/// RESET: leaves every subscription (the messages already counted stay in the buffer, to be
/// written before RESET's reply).
pub async fn reset(node: &Rc<Node>, conn: &mut Conn) {
    if let Some(subscriber) = conn.pubsub.clone() {
        node.core.pubsub_leave(&subscriber).await;
        publish_counts(conn);
    }
}

/// The connection is closing: every subscription goes, on every core.
pub fn disconnect(node: &Rc<Node>, conn: &mut Conn) {
    *conn.client.subscriber.borrow_mut() = None;
    if let Some(subscriber) = conn.pubsub.take() {
        node.core.pubsub_drop(&subscriber);
    }
}

/// PUBLISH, SPUBLISH and PUBSUB's subcommands.
pub async fn command(node: &Rc<Node>, conn: &mut Conn, spec: &CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "publish" => {
            let count = node.core.publish(&args[1], &args[2]);
            conn.published = true;
            if crate::cluster::enabled() {
                crate::cluster::bus::propagate_publish(node, args[1].clone(), args[2].clone()).await;
            }
            // Bounded: a publisher far ahead of another core waits for it here.
            node.core.outbox_room().await;
            Frame::Integer(count as i64)
        }
        "spublish" => {
            // The PUBLISH messages sent before go straight to each core, this one through the
            // channel's owner: it could overtake them. A round trip to every core (the mesh
            // keeps each pair of cores in order) means they have all arrived.
            if std::mem::take(&mut conn.published) {
                node.core.call_all(|_| ()).await;
            }
            let count = node.core.spublish(&args[1], &args[2]).await;
            if crate::cluster::enabled() {
                crate::cluster::bus::propagate_spublish(node, args[1].clone(), args[2].clone()).await;
            }
            Frame::Integer(count as i64)
        }
        "pubsub|channels" | "pubsub|numsub" | "pubsub|numpat" => local_query(&node.core, spec, args),
        "pubsub|shardchannels" => {
            if args.len() > 3 {
                return subcommand_syntax_error(args);
            }
            let pattern = args.get(2).map(|p| Bytes::copy_from_slice(p));
            let names: Vec<Bytes> = node.core.call_all(move |core| core.pubsub_shard_channels(pattern.as_deref())).await.into_iter().flatten().collect();
            Frame::Array(names.into_iter().map(Frame::Bulk).collect())
        }
        "pubsub|shardnumsub" => {
            let channels: Vec<Bytes> = args[2..].iter().map(|c| Bytes::copy_from_slice(c)).collect();
            let shard_count = node.core.shard_count;
            let asked = channels.clone();
            let per_core = node
                .core
                .call_all(move |core| {
                    asked
                        .iter()
                        .map(|channel| (shoal_store::slot::key_shard(channel, shard_count) == core.id).then(|| core.pubsub_shard_numsub(channel)))
                        .collect::<Vec<_>>()
                })
                .await;
            let mut reply = Vec::with_capacity(channels.len() * 2);
            for (at, channel) in channels.into_iter().enumerate() {
                let count = per_core.iter().find_map(|counts| counts[at]).unwrap_or(0);
                reply.push(Frame::Bulk(channel));
                reply.push(Frame::Integer(count as i64));
            }
            Frame::Array(reply)
        }
        "pubsub|help" => help(
            "PUBSUB",
            &[
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
            ],
        ),
        name => errors::error(&format!("ERR '{name}' is not implemented yet")),
    }
}

/// PUBSUB CHANNELS, NUMSUB and NUMPAT: every core knows every channel and pattern, so this
/// core answers alone (scripts call it too).
pub fn local_query(core: &shoal_runtime::Core, spec: &CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "pubsub|channels" => {
            if args.len() > 3 {
                return subcommand_syntax_error(args);
            }
            Frame::Array(core.pubsub_channels(args.get(2).map(|p| &p[..])).into_iter().map(Frame::Bulk).collect())
        }
        "pubsub|numsub" => {
            let mut reply = Vec::with_capacity((args.len() - 2) * 2);
            for channel in &args[2..] {
                reply.push(Frame::Bulk(channel.clone()));
                reply.push(Frame::Integer(core.pubsub_numsub(channel) as i64));
            }
            Frame::Array(reply)
        }
        "pubsub|numpat" => Frame::Integer(core.pubsub_numpat() as i64),
        name => unreachable!("{name} is not answered locally"),
    }
}

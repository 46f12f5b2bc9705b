//! The connection's side of client-side caching: CLIENT TRACKING, CACHING, GETREDIR and
//! TRACKINGINFO, which reads a round remembers, and the reads of transactions (see
//! `shoal_runtime::tracking` for where the state lives and how invalidations travel).

use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::args::is;
use shoal_commands::table::flags;
use shoal_commands::{errors, CommandSpec};
use shoal_resp::Frame;
use shoal_runtime::tracking::Mode;
use shoal_runtime::Core;

use crate::connection::Conn;
use crate::node::{self, Node};

/// A tracking connection's options (CLIENT TRACKING ON ...).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// REDIRECT's client id, or 0.
    pub redirect: u64,
    /// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) was given for the next command.
    pub caching: bool,
}

/// Whether the reads of the next commands are remembered for this client.
pub fn reads_tracked(conn: &Conn) -> bool {
    conn.tracking.as_ref().is_some_and(|t| !t.bcast && (!t.optin || t.caching) && (!t.optout || !t.caching))
}

/// Whether CLIENT CACHING applies to the next command only: that command then runs in a
/// round of its own.
pub fn caching_pending(conn: &Conn) -> bool {
    conn.multi.is_none() && conn.tracking.as_ref().is_some_and(|t| t.caching)
}

/// After a command: CLIENT CACHING's choice is spent, as in Redis, except by CLIENT's own
/// subcommands and inside MULTI (EXEC's commands use it).
pub fn command_done(conn: &mut Conn, name: &str) {
    if conn.multi.is_some() || name.starts_with("client|") || name == "multi" {
        return;
    }
    if let Some(tracking) = conn.tracking.as_mut() {
        tracking.caching = false;
    }
}

/// The keys the read-only commands among `cmds` read (a transaction's reads, remembered
/// before it runs).
pub fn reads<'a>(cmds: impl Iterator<Item = (&'a CommandSpec, &'a [Bytes])>) -> Vec<Bytes> {
    let mut keys = Vec::new();
    for (spec, args) in cmds {
        if spec.has(flags::READONLY) {
            keys.extend(shoal_commands::dispatch::keys(spec, args).cloned());
        }
    }
    keys
}

/// Reads of a transaction remembered as pending on the keys' cores, and confirmed when this
/// is dropped (after the transaction ran, whatever happened to it).
pub struct PendingReads {
    core: Rc<Core>,
    client: u64,
    keys: Vec<Bytes>,
}

impl PendingReads {
    pub fn register(node: &Node, client: u64, keys: Vec<Bytes>) -> Option<PendingReads> {
        if keys.is_empty() {
            return None;
        }
        node.core.tracking_track(client, keys.clone(), false);
        Some(PendingReads { core: node.core.clone(), client, keys })
    }
}

impl Drop for PendingReads {
    fn drop(&mut self) {
        self.core.tracking_track(self.client, std::mem::take(&mut self.keys), true);
    }
}

/// Picks up the connection's outlet (made by its own CLIENT TRACKING, or by another client
/// naming it as REDIRECT) and keeps its protocol and Pub/Sub mode current there.
pub fn refresh(node: &Node, conn: &mut Conn) {
    if conn.outlet.is_none() {
        conn.outlet = node.core.tracking_outlet_of(conn.client.id);
    }
    if let Some(outlet) = &conn.outlet {
        outlet.set_state(conn.proto, crate::pubsub::subscribed(conn));
    }
}

/// CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO.
pub async fn command(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    let sub = &args[1];
    if is(sub, "tracking") {
        tracking(node, conn, args).await
    } else if is(sub, "caching") {
        caching(conn, &args[2])
    } else if is(sub, "getredir") {
        Frame::Integer(conn.client.redirect())
    } else {
        info(node, conn)
    }
}

const SWITCH_BCAST: &str = "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.";
const SWITCH_OPT: &str = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.";

async fn tracking(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    let mut options = Options::default();
    let mut redirect: Option<(u64, usize)> = None;
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let arg = &args[j];
        if is(arg, "redirect") && more {
            j += 1;
            if redirect.is_some() {
                return errors::error("ERR A client can only redirect to a single other client");
            }
            let Some(id) = std::str::from_utf8(&args[j]).ok().and_then(|s| s.parse::<i64>().ok()) else {
                return errors::not_integer();
            };
            // The client must exist now (it may leave later: then the notifications say so).
            match if id > 0 { find_client(node, id as u64, conn.client.id).await } else { None } {
                Some(core) => redirect = Some((id as u64, core)),
                None => return errors::error("ERR The client ID you want redirect to does not exist"),
            }
        } else if is(arg, "bcast") {
            options.bcast = true;
        } else if is(arg, "optin") {
            options.optin = true;
        } else if is(arg, "optout") {
            options.optout = true;
        } else if is(arg, "noloop") {
            options.noloop = true;
        } else if is(arg, "prefix") && more {
            j += 1;
            prefixes.push(args[j].clone());
        } else {
            return errors::syntax();
        }
        j += 1;
    }
    if is(&args[2], "on") {
        if !options.bcast && !prefixes.is_empty() {
            return errors::error("ERR PREFIX option requires BCAST mode to be enabled");
        }
        if let Some(current) = &conn.tracking {
            if current.bcast != options.bcast {
                return errors::error(SWITCH_BCAST);
            }
        }
        if options.bcast && (options.optin || options.optout) {
            return errors::error("ERR OPTIN and OPTOUT are not compatible with BCAST");
        }
        if options.optin && options.optout {
            return errors::error("ERR You can't specify both OPTIN mode and OPTOUT mode");
        }
        if let Some(current) = &conn.tracking {
            if (options.optin && current.optout) || (options.optout && current.optin) {
                return errors::error(SWITCH_OPT);
            }
        }
        if options.bcast {
            if let Some(refusal) = prefix_collision(&node.core.tracking_prefixes(conn.client.id), &prefixes) {
                return refusal;
            }
        }
        options.redirect = redirect.map_or(0, |(id, _)| id);
        let mode = Mode { bcast: options.bcast, noloop: options.noloop, redirect };
        let outlet = outlet(node, conn);
        node.core.tracking_set(&outlet, Some(mode), prefixes).await;
        conn.tracking = Some(options);
    } else if is(&args[2], "off") {
        disable(node, conn).await;
    } else {
        return errors::syntax();
    }
    shoal_commands::args::ok()
}

/// Tracking off (CLIENT TRACKING OFF, RESET).
pub async fn disable(node: &Rc<Node>, conn: &mut Conn) {
    if conn.tracking.take().is_some() {
        let outlet = outlet(node, conn);
        node.core.tracking_set(&outlet, None, Vec::new()).await;
    }
}

/// The connection's outlet, made now if it has none.
fn outlet(node: &Node, conn: &mut Conn) -> Rc<shoal_runtime::tracking::Outlet> {
    let subscribed = crate::pubsub::subscribed(conn);
    let outlet = conn.outlet.get_or_insert_with(|| node.core.tracking_outlet(conn.client.id, conn.proto, subscribed, None)).clone();
    *conn.client.outlet.borrow_mut() = Some(outlet.clone());
    outlet
}

/// The core of client `id`, whose outlet (where its pushes wait) it makes now if needed;
/// `None` if no such client is connected. A subscribed client's outlet is its Pub/Sub
/// buffer, unless it is the `asking` client itself: its own invalidations must follow its
/// replies, and a subscriber's messages may precede them.
async fn find_client(node: &Rc<Node>, id: u64, asking: u64) -> Option<usize> {
    let found = node
        .core
        .call_all(move |core| {
            let node = node::current();
            let client = node.clients.borrow().get(&id).cloned()?;
            let sink = client.subscriber.borrow().clone().filter(|_| id != asking);
            let proto = if client.resp.get() == 3 { shoal_resp::Protocol::Resp3 } else { shoal_resp::Protocol::Resp2 };
            let outlet = core.tracking_outlet(id, proto, client.is_subscriber(), sink);
            let mut known = client.outlet.borrow_mut();
            if known.is_none() {
                *known = Some(outlet);
            }
            Some(core.id)
        })
        .await;
    found.into_iter().flatten().next()
}

/// BCAST prefixes must not overlap, with the client's own or with each other (Redis's
/// checkPrefixCollisionsOrReply).
fn prefix_collision(existing: &[Bytes], new: &[Bytes]) -> Option<Frame> {
    let overlaps = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    for (i, prefix) in new.iter().enumerate() {
        for other in existing {
            if overlaps(prefix, other) {
                return Some(collision(prefix, "an existing", other));
            }
        }
        for other in &new[i + 1..] {
            if overlaps(prefix, other) {
                return Some(collision(prefix, "another provided", other));
            }
        }
    }
    None
}

fn collision(prefix: &[u8], which: &str, other: &[u8]) -> Frame {
    errors::error(&format!(
        "ERR Prefix '{}' overlaps with {which} prefix '{}'. Prefixes for a single client must not overlap.",
        String::from_utf8_lossy(prefix),
        String::from_utf8_lossy(other)
    ))
}

fn caching(conn: &mut Conn, choice: &[u8]) -> Frame {
    let Some(tracking) = conn.tracking.as_mut() else {
        return errors::error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    };
    if is(choice, "yes") {
        if !tracking.optin {
            return errors::error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
        }
    } else if is(choice, "no") {
        if !tracking.optout {
            return errors::error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
        }
    } else {
        return errors::syntax();
    }
    tracking.caching = true;
    shoal_commands::args::ok()
}

/// CLIENT TRACKINGINFO.
fn info(node: &Node, conn: &Conn) -> Frame {
    let bulk = |s: &str| Frame::bulk(s.to_owned());
    let flags: Vec<Frame> = match &conn.tracking {
        None => vec![bulk("off")],
        Some(t) => {
            let broken = conn.outlet.as_ref().is_some_and(|o| o.broken());
            // TRACKINGINFO's flags, in Redis's order.
            [
                (true, "on"),
                (t.bcast, "bcast"),
                (t.optin, "optin"),
                (t.optin && t.caching, "caching-yes"),
                (t.optout, "optout"),
                (t.optout && t.caching, "caching-no"),
                (t.noloop, "noloop"),
                (broken, "broken_redirect"),
            ]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| bulk(name))
            .collect()
        }
    };
    let prefixes = if conn.tracking.as_ref().is_some_and(|t| t.bcast) { node.core.tracking_prefixes(conn.client.id) } else { Vec::new() };
    Frame::Map(vec![
        (bulk("flags"), Frame::Set(flags)),
        (bulk("redirect"), Frame::Integer(conn.client.redirect())),
        (bulk("prefixes"), Frame::Array(prefixes.into_iter().map(Frame::Bulk).collect())),
    ])
}

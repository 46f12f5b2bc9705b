//! CLUSTER and its subcommands, with Redis 7.0's replies and error texts.

use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::args;
use shoal_commands::errors;
use shoal_commands::table::CommandSpec;
use shoal_resp::Frame;

use super::state::{ranges, ClusterNode, Flags, State, MESSAGE_TYPES, SLOTS};
use super::{read_state, with_state};
use crate::node::Node;
use crate::server_commands::{bulk, help, simple, text};

const HELP: &[&str] = &[
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
];

fn err(text: String) -> Frame {
    errors::error(&text)
}

fn now() -> u64 {
    shoal_runtime::now_ms()
}

/// A CLUSTER subcommand.
pub async fn cluster(node: &Rc<Node>, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    if !super::enabled() {
        return errors::error(crate::admin_cmd::CLUSTER_DISABLED);
    }
    match spec.name {
        "cluster|help" => help("CLUSTER", HELP),
        "cluster|info" => text(read_state(info)),
        "cluster|myid" => bulk(read_state(|s| s.myself.clone())),
        "cluster|nodes" => text(read_state(|s| s.nodes_text(now()))),
        "cluster|slots" => read_state(slots),
        "cluster|shards" => read_state(shards),
        "cluster|links" => read_state(links),
        "cluster|keyslot" => Frame::Integer(shoal_store::slot::key_slot(&args[2]) as i64),
        "cluster|countkeysinslot" => match args::parse_i64(&args[2]) {
            Err(e) => e,
            Ok(slot) if !(0..SLOTS as i64).contains(&slot) => errors::error("ERR Invalid slot"),
            Ok(slot) => Frame::Integer(keys_in_slot(node, slot as u16, 0).await.1 as i64),
        },
        "cluster|getkeysinslot" => {
            let (slot, count) = match (args::parse_i64(&args[2]), args::parse_i64(&args[3])) {
                (Err(e), _) | (_, Err(e)) => return e,
                (Ok(slot), Ok(count)) => (slot, count),
            };
            if !(0..SLOTS as i64).contains(&slot) || count < 0 {
                return errors::error("ERR Invalid slot or number of keys");
            }
            let keys = keys_in_slot(node, slot as u16, count as usize).await.0;
            Frame::Array(keys.into_iter().map(Frame::Bulk).collect())
        }
        "cluster|addslots" | "cluster|delslots" => match parse_slots(&args[2..]) {
            Ok(slots) => assign(slots, spec.name == "cluster|addslots"),
            Err(e) => e,
        },
        "cluster|addslotsrange" | "cluster|delslotsrange" => {
            if args.len() % 2 == 1 {
                return errors::wrong_arity(spec.name);
            }
            let mut slots = Vec::new();
            for pair in args[2..].chunks(2) {
                let (start, end) = match (slot_arg(&pair[0]), slot_arg(&pair[1])) {
                    (Err(e), _) | (_, Err(e)) => return e,
                    (Ok(start), Ok(end)) => (start, end),
                };
                if start > end {
                    return err(format!("ERR start slot number {start} is greater than end slot number {end}"));
                }
                slots.extend(start..=end);
            }
            assign(slots, spec.name == "cluster|addslotsrange")
        }
        "cluster|flushslots" => {
            if total_keys(node).await != 0 {
                return errors::error("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.");
            }
            with_state(|s| {
                let me = s.myself.clone();
                s.slots.iter_mut().filter(|o| o.as_deref() == Some(&me)).for_each(|o| *o = None);
                s.dirty = true;
            });
            args::ok()
        }
        "cluster|set-config-epoch" => match args::parse_i64(&args[2]) {
            Err(e) => e,
            Ok(epoch) if epoch < 0 => err(format!("ERR Invalid config epoch specified: {epoch}")),
            Ok(epoch) => with_state(|s| {
                if s.nodes.len() > 1 {
                    errors::error("ERR The user can assign a config epoch only when the node does not know any other node.")
                } else if s.me().config_epoch != 0 {
                    errors::error("ERR Node config epoch is already non-zero")
                } else {
                    s.me_mut().config_epoch = epoch as u64;
                    s.current_epoch = s.current_epoch.max(epoch as u64);
                    s.dirty = true;
                    args::ok()
                }
            }),
        },
        "cluster|bumpepoch" => with_state(|s| {
            let (bumped, epoch) = bump_epoch(s);
            simple(format!("{} {epoch}", if bumped { "BUMPED" } else { "STILL" }))
        }),
        "cluster|meet" => meet(args),
        "cluster|forget" => with_state(|s| forget(s, &args[2])),
        "cluster|count-failure-reports" => read_state(|s| match s.nodes.get(&lossy(&args[2])) {
            None => err(format!("ERR Unknown node {}", lossy(&args[2]))),
            Some(n) => Frame::Integer(n.fail_reports.len() as i64),
        }),
        "cluster|replicas" | "cluster|slaves" => read_state(|s| match s.nodes.get(&lossy(&args[2])) {
            None => err(format!("ERR Unknown node {}", lossy(&args[2]))),
            Some(n) if !n.is_master() => errors::error("ERR The specified node is not a master"),
            Some(n) => Frame::Array(s.nodes.values().filter(|r| r.master.as_deref() == Some(&n.id)).map(|r| bulk(s.describe(r, now()))).collect()),
        }),
        "cluster|replicate" => replicate(node, &args[2]).await,
        "cluster|reset" => reset(node, args).await,
        "cluster|saveconfig" => with_state(|s| {
            s.dirty = true;
            args::ok()
        }),
        "cluster|setslot" => setslot(node, args).await,
        "cluster|failover" => failover(node, args).await,
        _ => errors::subcommand_syntax(args),
    }
}

fn lossy(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Redis's `getSlotOrReply`.
fn slot_arg(arg: &[u8]) -> Result<u16, Frame> {
    match std::str::from_utf8(arg).ok().and_then(|s| s.parse::<i64>().ok()) {
        Some(slot) if (0..SLOTS as i64).contains(&slot) => Ok(slot as u16),
        _ => Err(errors::error("ERR Invalid or out of range slot")),
    }
}

fn parse_slots(args: &[Bytes]) -> Result<Vec<u16>, Frame> {
    args.iter().map(|a| slot_arg(a)).collect()
}

/// ADDSLOTS (or DELSLOTS) of these slots: all of them, or none with the first problem.
fn assign(slots: Vec<u16>, add: bool) -> Frame {
    with_state(|s| {
        let mut seen = vec![false; SLOTS];
        for &slot in &slots {
            if std::mem::replace(&mut seen[slot as usize], true) {
                return err(format!("ERR Slot {slot} specified multiple times"));
            }
            match (&s.slots[slot as usize], add) {
                (Some(_), true) => return err(format!("ERR Slot {slot} is already busy")),
                (None, false) => return err(format!("ERR Slot {slot} is already unassigned")),
                _ => {}
            }
        }
        let me = s.myself.clone();
        for slot in slots {
            // A slot being imported is ours once added here.
            if add {
                s.importing.remove(&slot);
            }
            s.slots[slot as usize] = add.then(|| me.clone());
        }
        s.dirty = true;
        args::ok()
    })
}

/// Redis's `clusterBumpConfigEpochWithoutConsensus`: (whether it bumped, my epoch).
pub fn bump_epoch(s: &mut State) -> (bool, u64) {
    let max = s.max_epoch();
    let mine = s.me().config_epoch;
    if mine == 0 || mine != max {
        s.current_epoch += 1;
        let epoch = s.current_epoch;
        s.me_mut().config_epoch = epoch;
        s.dirty = true;
        (true, epoch)
    } else {
        (false, mine)
    }
}

/// MEET ip port [bus-port]
fn meet(args: &[Bytes]) -> Frame {
    let port = match args::parse_i64(&args[3]) {
        Ok(p) if (0..=65535).contains(&p) => p as u16,
        _ => return err(format!("ERR Invalid TCP base port specified: {}", lossy(&args[3]))),
    };
    let cport = match args.get(4) {
        None => port.wrapping_add(10000),
        Some(arg) => match args::parse_i64(arg) {
            Ok(p) if (0..=65535).contains(&p) => p as u16,
            _ => return err(format!("ERR Invalid TCP bus port specified: {}", lossy(arg))),
        },
    };
    let ip = lossy(&args[2]);
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return err(format!("ERR Invalid node address specified: {ip}:{port}"));
    };
    with_state(|s| super::bus::start_handshake(s, &addr.to_string(), port, cport, true, now()));
    args::ok()
}

fn forget(s: &mut State, arg: &[u8]) -> Frame {
    let id = lossy(arg);
    if id == s.myself {
        return errors::error("ERR I tried hard but I can't forget myself...");
    }
    if !s.nodes.contains_key(&id) {
        return err(format!("ERR Unknown node {id}"));
    }
    if s.me().master.as_deref() == Some(&id) {
        return errors::error("ERR Can't forget my master!");
    }
    remove_node(s, &id);
    // Gossip may not bring it back for a minute.
    s.forgotten.insert(id, now() + 60_000);
    s.dirty = true;
    args::ok()
}

/// Drops a node: its slots become unassigned, its replicas masterless, its reports gone.
pub fn remove_node(s: &mut State, id: &str) {
    s.nodes.remove(id);
    for owner in s.slots.iter_mut().filter(|o| o.as_deref() == Some(id)) {
        *owner = None;
    }
    s.migrating.retain(|_, to| to != id);
    s.importing.retain(|_, from| from != id);
    for n in s.nodes.values_mut() {
        n.fail_reports.remove(id);
        if n.master.as_deref() == Some(id) {
            n.master = None;
        }
    }
}

/// REPLICATE node-id: this node follows that master (an empty master without slots only).
async fn replicate(node: &Rc<Node>, arg: &[u8]) -> Frame {
    let id = lossy(arg);
    let target = read_state(|s| s.nodes.get(&id).cloned().map(|t| (t, s.myself.clone(), s.slots_of(&s.myself).len(), s.me().is_master())));
    let Some((target, myself, my_slots, i_am_master)) = target else {
        return err(format!("ERR Unknown node {id}"));
    };
    if target.id == myself {
        return errors::error("ERR Can't replicate myself");
    }
    if !target.is_master() {
        return errors::error("ERR I can only replicate a master, not a replica.");
    }
    if i_am_master && (my_slots != 0 || total_keys(node).await != 0) {
        return errors::error("ERR To set a master the node must be empty and without assigned slots.");
    }
    with_state(|s| {
        let me = s.me_mut();
        me.flags.master = false;
        me.flags.replica = true;
        me.master = Some(target.id.clone());
        s.migrating.clear();
        s.importing.clear();
        s.dirty = true;
    });
    follow(node, Some((target.ip.clone(), target.port))).await;
    args::ok()
}

/// Starts (or stops, with None) replicating, as REPLICAOF would.
pub async fn follow(node: &Rc<Node>, master: Option<(String, u16)>) {
    let request: Vec<Bytes> = match master {
        Some((ip, port)) => vec![Bytes::from_static(b"replicaof"), Bytes::from(ip), Bytes::from(port.to_string())],
        None => vec![Bytes::from_static(b"replicaof"), Bytes::from_static(b"no"), Bytes::from_static(b"one")],
    };
    let reply = crate::replica::replicaof(node, &request).await;
    if let Frame::Error(e) = reply {
        tracing::warn!("Cluster: could not change the replication master: {}", String::from_utf8_lossy(&e));
    }
}

/// FAILOVER [FORCE|TAKEOVER]: this replica takes its master's place. Without an option the
/// master pauses its writes and tells the replica its offset, and the election runs once
/// the replica has everything (no write is lost); FORCE runs the election at once, with the
/// master alive or not; TAKEOVER takes the slots under a new epoch without asking anyone.
async fn failover(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let (force, takeover) = match args.get(2) {
        None => (false, false),
        Some(a) if args.len() == 3 && args::is(a, "force") => (true, false),
        Some(a) if args.len() == 3 && args::is(a, "takeover") => (false, true),
        Some(_) => return errors::syntax(),
    };
    let checked = read_state(|s| {
        let me = s.me();
        if me.is_master() {
            return Err(errors::error("ERR You should send CLUSTER FAILOVER to a replica"));
        }
        match me.master.as_ref().and_then(|m| s.nodes.get(m)) {
            None => Err(errors::error("ERR I'm a replica but my master is unknown to me")),
            Some(m) if !force && !takeover && (m.flags.fail || !m.link_up) => {
                Err(errors::error("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE"))
            }
            Some(_) => Ok(()),
        }
    });
    if let Err(refusal) = checked {
        return refusal;
    }
    if takeover {
        with_state(|s| {
            s.current_epoch += 1;
            let epoch = s.current_epoch;
            tracing::info!("Taking over the master (user request), config epoch {epoch}.");
            s.promote(epoch);
        });
        super::bus::announce_promotion(node).await;
        return args::ok();
    }
    let until = now() + super::bus::MANUAL_FAILOVER_MS;
    if force {
        with_state(|s| {
            s.manual_until = Some(until);
            s.election = None;
        });
    } else {
        with_state(|s| {
            s.manual = Some((until, None));
            s.election = None;
        });
        super::bus::start_manual_failover(node).await;
    }
    args::ok()
}

/// RESET [HARD|SOFT]
async fn reset(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let hard = match args.get(2) {
        None => false,
        Some(a) if args::is(a, "hard") => true,
        Some(a) if args::is(a, "soft") => false,
        Some(_) => return errors::syntax(),
    };
    let (master, replica) = read_state(|s| (s.me().is_master(), s.me().master.is_some()));
    if master && total_keys(node).await != 0 {
        return errors::error("ERR CLUSTER RESET can't be called with master nodes containing keys");
    }
    if replica {
        follow(node, None).await;
        node.core.call_all(|core| core.with_shard(|shard| shard.dbs.iter_mut().for_each(|db| drop(db.clear())))).await;
    }
    with_state(|s| {
        let myself = s.myself.clone();
        let ids: Vec<String> = s.nodes.keys().filter(|id| **id != myself).cloned().collect();
        for id in ids {
            remove_node(s, &id);
        }
        s.slots.iter_mut().for_each(|o| *o = None);
        s.migrating.clear();
        s.importing.clear();
        let me = s.me_mut();
        me.flags = Flags { myself: true, master: true, ..Flags::default() };
        me.master = None;
        if hard {
            me.config_epoch = 0;
            s.current_epoch = 0;
            s.last_vote_epoch = 0;
            let mut renamed = s.nodes.remove(&myself).expect("myself");
            renamed.id = crate::info::system::random_hex40();
            s.myself = renamed.id.clone();
            s.nodes.insert(renamed.id.clone(), renamed);
        }
        s.dirty = true;
    });
    args::ok()
}

/// SETSLOT slot IMPORTING id | MIGRATING id | STABLE | NODE id
async fn setslot(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    if read_state(|s| !s.me().is_master()) {
        return errors::error("ERR Please use SETSLOT only with masters.");
    }
    let slot = match slot_arg(&args[2]) {
        Ok(slot) => slot,
        Err(e) => return e,
    };
    let action = args[3].to_ascii_lowercase();
    let target = args.get(4).map(|a| lossy(a));
    let arity_ok = match action.as_slice() {
        b"stable" => args.len() == 4,
        b"importing" | b"migrating" | b"node" => args.len() == 5,
        _ => false,
    };
    if !arity_ok {
        return errors::error("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP");
    }
    // Keys still held for the slot stop NODE from giving it away.
    let holds_keys = keys_in_slot(node, slot, 0).await.1 > 0;
    let replica_migration = node.config.borrow().compat_value("cluster-allow-replica-migration") == "yes";
    let mut follow_new_owner = None;
    let reply = with_state(|s| {
        let unknown = |id: &str| err(format!("ERR I don't know about node {id}"));
        let owner_is_me = s.slots[slot as usize].as_deref() == Some(s.myself.as_str());
        match action.as_slice() {
            b"migrating" | b"importing" => {
                let id = target.expect("checked");
                let migrating = action.as_slice() == b"migrating";
                if migrating && !owner_is_me {
                    return err(format!("ERR I'm not the owner of hash slot {slot}"));
                }
                if !migrating && owner_is_me {
                    return err(format!("ERR I'm already the owner of hash slot {slot}"));
                }
                match s.nodes.get(&id) {
                    None => return unknown(&id),
                    Some(n) if !n.is_master() => return errors::error("ERR Target node is not a master"),
                    Some(_) => {}
                }
                if migrating {
                    s.migrating.insert(slot, id);
                } else {
                    s.importing.insert(slot, id);
                }
            }
            b"stable" => {
                s.migrating.remove(&slot);
                s.importing.remove(&slot);
            }
            _ => {
                let id = target.expect("checked");
                let Some(n) = s.nodes.get(&id) else { return err(format!("ERR Unknown node {id}")) };
                if !n.is_master() {
                    return errors::error("ERR Target node is not a master");
                }
                if owner_is_me && id != s.myself && holds_keys {
                    return err(format!("ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."));
                }
                // A migrating slot without keys left here is no longer open.
                if !holds_keys {
                    s.migrating.remove(&slot);
                }
                s.slots[slot as usize] = Some(id.clone());
                if id == s.myself && s.importing.remove(&slot).is_some() {
                    // Claim the slot with a new epoch, so the cluster takes our word for it.
                    bump_epoch(s);
                }
                // A master that gave its last slot away becomes the new owner's replica, as
                // Redis does under `cluster-allow-replica-migration yes`.
                if owner_is_me && id != s.myself && replica_migration && s.slots_of(&s.myself).is_empty() {
                    follow_new_owner = super::bus::become_replica_of(s, &id);
                }
            }
        }
        s.dirty = true;
        args::ok()
    });
    if let Some(master) = follow_new_owner {
        follow(node, Some(master)).await;
    }
    reply
}

/// The keys of `slot` (up to `count`) and how many there are (Redis's `countKeysInSlot`
/// and `getKeysInSlot`: expired keys not reclaimed yet included), from the core that holds
/// them, which counts each slot's keys and, from the first GETKEYSINSLOT of a reshard,
/// indexes them (`Db::track_slots`, `Db::slot_keys`).
async fn keys_in_slot(node: &Rc<Node>, slot: u16, count: usize) -> (Vec<Bytes>, usize) {
    let core = shoal_store::slot::slot_shard(slot, node.core.shard_count);
    node.core
        .call_on(core, move |core| {
            core.with_shard(|shard| {
                let db = &mut shard.dbs[0];
                let total = db.slot_len(slot).unwrap_or(0);
                let keys = if count == 0 { Vec::new() } else { db.slot_keys(slot, count, shoal_runtime::now_ms()).unwrap_or_default() };
                (keys.into_iter().map(Bytes::copy_from_slice).collect(), total)
            })
        })
        .await
}

/// Keys in every database of every core.
async fn total_keys(node: &Rc<Node>) -> usize {
    node.core.call_all(|core| core.with_shard(|shard| shard.dbs.iter().map(|db| db.len()).sum::<usize>())).await.into_iter().sum()
}

fn info(s: &State) -> String {
    let count = |test: &dyn Fn(&ClusterNode) -> bool| s.slots.iter().filter(|o| o.as_ref().is_some_and(|id| s.nodes.get(id).is_some_and(test))).count();
    let assigned = s.slots.iter().filter(|o| o.is_some()).count();
    let pfail = count(&|n| n.flags.pfail && !n.flags.fail);
    let fail = count(&|n| n.flags.fail);
    let mut text = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if s.ok { "ok" } else { "fail" },
        assigned - pfail - fail,
        s.nodes.len(),
        s.size,
        s.current_epoch,
        // A replica shows its master's epoch, as Redis does.
        s.me().master.as_ref().and_then(|m| s.nodes.get(m)).unwrap_or(s.me()).config_epoch,
    );
    for (i, name) in MESSAGE_TYPES.iter().enumerate() {
        if s.sent[i] > 0 {
            text.push_str(&format!("cluster_stats_messages_{name}_sent:{}\r\n", s.sent[i]));
        }
    }
    text.push_str(&format!("cluster_stats_messages_sent:{}\r\n", s.sent.iter().sum::<u64>()));
    for (i, name) in MESSAGE_TYPES.iter().enumerate() {
        if s.received[i] > 0 {
            text.push_str(&format!("cluster_stats_messages_{name}_received:{}\r\n", s.received[i]));
        }
    }
    text.push_str(&format!("cluster_stats_messages_received:{}\r\n", s.received.iter().sum::<u64>()));
    text.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
    text
}

/// A master, its slot ranges and its replicas.
type Shard<'a> = (&'a ClusterNode, Vec<(u16, u16)>, Vec<&'a ClusterNode>);

/// The masters, each with its ranges and its replicas.
fn shards_of(s: &State) -> Vec<Shard<'_>> {
    s.nodes
        .values()
        .filter(|n| n.is_master())
        .map(|m| (m, ranges(&s.slots_of(&m.id)), s.nodes.values().filter(|r| r.master.as_deref() == Some(&m.id)).collect()))
        .collect()
}

/// CLUSTER SLOTS: per range, start, end, then the master and its working replicas as
/// [ip, port, id, {}].
fn slots(s: &State) -> Frame {
    let describe = |n: &ClusterNode| Frame::Array(vec![bulk(&n.ip), Frame::Integer(n.port as i64), bulk(&n.id), Frame::Map(Vec::new())]);
    let mut reply = Vec::new();
    let mut all: Vec<(u16, u16, Frame)> = Vec::new();
    for (master, ranges, replicas) in shards_of(s) {
        for (start, end) in ranges {
            let mut entry = vec![Frame::Integer(start as i64), Frame::Integer(end as i64), describe(master)];
            entry.extend(replicas.iter().filter(|r| !r.flags.fail).map(|r| describe(r)));
            all.push((start, end, Frame::Array(entry)));
        }
    }
    all.sort_by_key(|(start, _, _)| *start);
    reply.extend(all.into_iter().map(|(_, _, f)| f));
    Frame::Array(reply)
}

/// CLUSTER SHARDS: per master, its slots and its nodes.
fn shards(s: &State) -> Frame {
    let describe = |n: &ClusterNode| {
        let health = if n.flags.fail {
            "fail"
        } else if n.repl_offset == 0 && n.flags.replica {
            "loading"
        } else {
            "online"
        };
        let health = if n.flags.replica && n.flags.pfail { "fail" } else { health };
        Frame::Map(vec![
            (bulk("id"), bulk(&n.id)),
            (bulk("port"), Frame::Integer(n.port as i64)),
            (bulk("ip"), bulk(&n.ip)),
            (bulk("endpoint"), bulk(&n.ip)),
            (bulk("role"), bulk(if n.is_master() { "master" } else { "replica" })),
            (bulk("replication-offset"), Frame::Integer(n.repl_offset as i64)),
            (bulk("health"), bulk(health)),
        ])
    };
    let shards = shards_of(s)
        .into_iter()
        .map(|(master, ranges, replicas)| {
            let slots = ranges.iter().flat_map(|(a, b)| [Frame::Integer(*a as i64), Frame::Integer(*b as i64)]).collect();
            let nodes = std::iter::once(master).chain(replicas).map(describe).collect();
            Frame::Map(vec![(bulk("slots"), Frame::Array(slots)), (bulk("nodes"), Frame::Array(nodes))])
        })
        .collect();
    Frame::Array(shards)
}

/// CLUSTER LINKS: our link to each node (Shoal keeps one per peer, "to").
fn links(s: &State) -> Frame {
    let links = s
        .nodes
        .values()
        .filter(|n| !n.flags.myself && n.link_up)
        .map(|n| {
            Frame::Map(vec![
                (bulk("direction"), bulk("to")),
                (bulk("node"), bulk(&n.id)),
                (bulk("create-time"), Frame::Integer(n.created as i64)),
                (bulk("events"), bulk("r")),
                (bulk("send-buffer-allocated"), Frame::Integer(0)),
                (bulk("send-buffer-used"), Frame::Integer(0)),
            ])
        })
        .collect();
    Frame::Array(links)
}

/// READONLY, READWRITE, ASKING: the connection's flags.
pub fn flag_command(name: &str, readonly: &mut bool, asking: &mut bool) -> Frame {
    if !super::enabled() {
        return errors::error(crate::admin_cmd::CLUSTER_DISABLED);
    }
    match name {
        "readonly" => *readonly = true,
        "readwrite" => *readonly = false,
        _ => *asking = true,
    }
    args::ok()
}

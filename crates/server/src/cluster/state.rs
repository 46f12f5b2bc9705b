//! What a node knows of its cluster: itself, the other nodes, who owns each of the 16384
//! slots, the epochs; kept in `cluster-config-file` in Redis's `nodes.conf` format.
//!
//! The state is the control plane: CLUSTER commands (on any core) and the bus (core 0)
//! change it under one mutex. The data path never takes that mutex: each change publishes
//! an immutable [`View`] (slot owners and addresses), and each core swaps in the new one
//! when it sees the generation move (one atomic load per command; see `super::view`).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;

/// Number of hash slots.
pub const SLOTS: usize = shoal_store::slot::SLOT_COUNT as usize;

/// A node's flags, as CLUSTER NODES lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub myself: bool,
    pub master: bool,
    pub replica: bool,
    pub pfail: bool,
    pub fail: bool,
    pub handshake: bool,
    pub noaddr: bool,
    pub nofailover: bool,
}

impl Flags {
    /// Redis's `representClusterNodeFlags`: comma separated, `noflags` when none.
    pub fn render(&self) -> String {
        let names = [
            (self.myself, "myself"),
            (self.master, "master"),
            (self.replica, "slave"),
            (self.pfail, "fail?"),
            (self.fail, "fail"),
            (self.handshake, "handshake"),
            (self.noaddr, "noaddr"),
            (self.nofailover, "nofailover"),
        ];
        let set: Vec<&str> = names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        if set.is_empty() {
            "noflags".to_owned()
        } else {
            set.join(",")
        }
    }

    pub fn parse(text: &str) -> Flags {
        let mut flags = Flags::default();
        for word in text.split(',') {
            match word {
                "myself" => flags.myself = true,
                "master" => flags.master = true,
                "slave" => flags.replica = true,
                "fail?" => flags.pfail = true,
                "fail" => flags.fail = true,
                "handshake" => flags.handshake = true,
                "noaddr" => flags.noaddr = true,
                "nofailover" => flags.nofailover = true,
                _ => {}
            }
        }
        flags
    }

    /// The bits the bus carries.
    pub fn bits(&self) -> u16 {
        [self.myself, self.master, self.replica, self.pfail, self.fail, self.handshake, self.noaddr, self.nofailover]
            .iter()
            .enumerate()
            .fold(0, |bits, (i, on)| bits | ((*on as u16) << i))
    }

    pub fn from_bits(bits: u16) -> Flags {
        let on = |i: u16| bits & (1 << i) != 0;
        Flags { myself: on(0), master: on(1), replica: on(2), pfail: on(3), fail: on(4), handshake: on(5), noaddr: on(6), nofailover: on(7) }
    }
}

/// One node of the cluster, this one included.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// 40 lowercase hex characters.
    pub id: String,
    /// Empty until known (this node learns its own from the first MEET it receives).
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: Flags,
    /// A replica's master.
    pub master: Option<String>,
    /// When we sent a PING not answered yet (ms since the epoch; 0: none outstanding).
    pub ping_sent: u64,
    /// When its last PONG arrived (ms).
    pub pong_received: u64,
    pub config_epoch: u64,
    /// Whether our outgoing link to it is up.
    pub link_up: bool,
    /// Masters that reported it failing, with when they last said so (ms).
    pub fail_reports: BTreeMap<String, u64>,
    /// When it was flagged FAIL (ms).
    pub fail_time: u64,
    /// When a handshake with it began (ms), to give up on a node that never answers.
    pub created: u64,
    /// The replication offset it last announced.
    pub repl_offset: u64,
    /// A MEET (rather than a PING) opens our link to it: CLUSTER MEET made it.
    pub meet: bool,
}

impl ClusterNode {
    pub fn new(id: String, ip: String, port: u16, cport: u16, flags: Flags, now: u64) -> ClusterNode {
        ClusterNode {
            id,
            ip,
            port,
            cport,
            flags,
            master: None,
            ping_sent: 0,
            pong_received: 0,
            config_epoch: 0,
            link_up: false,
            fail_reports: BTreeMap::new(),
            fail_time: 0,
            created: now,
            repl_offset: 0,
            meet: false,
        }
    }

    pub fn is_master(&self) -> bool {
        !self.flags.replica
    }

    pub fn failing(&self) -> bool {
        self.flags.fail || self.flags.pfail
    }
}

/// Message counts by bus message type, for CLUSTER INFO.
pub const MESSAGE_TYPES: [&str; 10] = ["ping", "pong", "meet", "fail", "publish", "auth-req", "auth-ack", "mfstart", "mfoffset", "publishshard"];

/// The cluster state of this node.
#[derive(Debug)]
pub struct State {
    pub myself: String,
    pub nodes: BTreeMap<String, ClusterNode>,
    /// The owner of each slot.
    pub slots: Vec<Option<String>>,
    /// Slots this node is moving to another node (CLUSTER SETSLOT ... MIGRATING).
    pub migrating: BTreeMap<u16, String>,
    /// Slots this node is taking from another node (CLUSTER SETSLOT ... IMPORTING).
    pub importing: BTreeMap<u16, String>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// `cluster_state:ok`.
    pub ok: bool,
    /// Masters serving at least one slot.
    pub size: usize,
    /// Nodes forgotten (CLUSTER FORGET), by id, until when (ms) gossip may not re-add them.
    pub forgotten: HashMap<String, u64>,
    pub sent: [u64; MESSAGE_TYPES.len()],
    pub received: [u64; MESSAGE_TYPES.len()],
    /// Something the file holds changed: save it (and recompute the state and the view).
    pub dirty: bool,
    /// Something the cluster state depends on changed that the file does not hold (a node
    /// suspected or answering again): recompute the state and the view.
    pub recheck: bool,
    /// A replica's election after its master failed (see `bus::failover_cron`).
    pub election: Option<Election>,
    /// When this master last voted for a replica of each failed master (ms).
    pub voted: HashMap<String, u64>,
    /// CLUSTER FAILOVER FORCE on this replica: until when (ms) its election may run with its
    /// master alive.
    pub manual_until: Option<u64>,
    /// CLUSTER FAILOVER (without FORCE) on this replica: until when (ms), and the offset its
    /// master reached once it paused its writes (the election waits for this replica to
    /// reach it).
    pub manual: Option<(u64, Option<u64>)>,
    /// A master paused for its replica's CLUSTER FAILOVER: until when (ms).
    pub paused_until: Option<u64>,
}

/// A replica asking the masters to let it take its failed master's place.
#[derive(Debug, Clone)]
pub struct Election {
    /// When to ask (ms): after a delay, so the failure is known everywhere first.
    pub at: u64,
    /// The epoch asked with, once asked.
    pub epoch: Option<u64>,
    /// The masters that granted their vote.
    pub votes: std::collections::BTreeSet<String>,
}

impl State {
    /// A node alone in its cluster, with a new id.
    pub fn fresh(now: u64) -> State {
        let id = crate::info::system::random_hex40();
        let flags = Flags { myself: true, master: true, ..Flags::default() };
        let mut nodes = BTreeMap::new();
        nodes.insert(id.clone(), ClusterNode::new(id.clone(), String::new(), 0, 0, flags, now));
        State {
            myself: id,
            nodes,
            slots: vec![None; SLOTS],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            ok: false,
            size: 1,
            forgotten: HashMap::new(),
            sent: [0; MESSAGE_TYPES.len()],
            received: [0; MESSAGE_TYPES.len()],
            dirty: true,
            recheck: true,
            election: None,
            voted: HashMap::new(),
            manual_until: None,
            manual: None,
            paused_until: None,
        }
    }

    pub fn me(&self) -> &ClusterNode {
        &self.nodes[&self.myself]
    }

    pub fn me_mut(&mut self) -> &mut ClusterNode {
        self.nodes.get_mut(&self.myself).expect("myself is a node")
    }

    /// The slots `id` owns, ascending.
    pub fn slots_of(&self, id: &str) -> Vec<u16> {
        (0..SLOTS).filter(|&slot| self.slots[slot].as_deref() == Some(id)).map(|slot| slot as u16).collect()
    }

    /// The largest config epoch of any node, or the current epoch if larger (Redis's
    /// `clusterGetMaxEpoch`).
    pub fn max_epoch(&self) -> u64 {
        self.nodes.values().map(|n| n.config_epoch).max().unwrap_or(0).max(self.current_epoch)
    }

    /// Redis's `clusterUpdateState`: ok when every slot has a working owner (if
    /// `full_coverage` asks for it) and a majority of the masters with slots is reachable.
    pub fn update_state(&mut self, full_coverage: bool) {
        let mut ok = true;
        if full_coverage {
            ok = self.slots.iter().all(|owner| owner.as_ref().is_some_and(|id| self.nodes.get(id).is_some_and(|n| !n.flags.fail)));
        }
        let masters: Vec<&ClusterNode> = self.nodes.values().filter(|n| n.is_master() && self.slots.iter().any(|o| o.as_deref() == Some(&n.id))).collect();
        self.size = masters.len();
        let reachable = masters.iter().filter(|n| !n.failing()).count();
        if reachable < self.size / 2 + 1 {
            ok = false;
        }
        self.ok = ok;
    }

    /// Redis's `clusterGenNodesDescription` line for one node (`nodes.conf` and CLUSTER
    /// NODES), without its newline. `open_slots` adds this node's migrating and importing
    /// slots, as CLUSTER NODES does for myself.
    pub fn describe(&self, node: &ClusterNode, now: u64) -> String {
        let mut line = format!("{} {}:{}@{} {} ", node.id, node.ip, node.port, node.cport, node.flags.render());
        line.push_str(node.master.as_deref().unwrap_or("-"));
        // Myself's ping and pong times are shown as 0 and now, as Redis does.
        let (ping, pong) = if node.flags.myself { (0, now) } else { (node.ping_sent, node.pong_received) };
        let link = if node.flags.myself || node.link_up { "connected" } else { "disconnected" };
        // A replica shows its master's epoch.
        let epoch = node.master.as_ref().and_then(|m| self.nodes.get(m)).map_or(node.config_epoch, |m| m.config_epoch);
        line.push_str(&format!(" {ping} {pong} {epoch} {link}"));
        for (start, end) in ranges(&self.slots_of(&node.id)) {
            if start == end {
                line.push_str(&format!(" {start}"));
            } else {
                line.push_str(&format!(" {start}-{end}"));
            }
        }
        if node.flags.myself {
            for (slot, to) in &self.migrating {
                line.push_str(&format!(" [{slot}->-{to}]"));
            }
            for (slot, from) in &self.importing {
                line.push_str(&format!(" [{slot}-<-{from}]"));
            }
        }
        line
    }

    /// CLUSTER NODES: every node, one line each.
    pub fn nodes_text(&self, now: u64) -> String {
        let mut text = String::new();
        for node in self.nodes.values() {
            text.push_str(&self.describe(node, now));
            text.push('\n');
        }
        text
    }

    /// The `nodes.conf` text.
    pub fn file_text(&self) -> String {
        let mut text = String::new();
        for node in self.nodes.values().filter(|n| !n.flags.handshake) {
            let mut node = node.clone();
            // Transient states are not saved.
            node.flags.pfail = false;
            node.link_up = node.flags.myself;
            let line = self.describe(&node, 0);
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!("vars currentEpoch {} lastVoteEpoch {}\n", self.current_epoch, self.last_vote_epoch));
        text
    }

    /// Reads a `nodes.conf` text; None: the file names no `myself`, or a line is not a node.
    pub fn parse(text: &str, now: u64) -> Result<State, String> {
        let mut state = State::fresh(now);
        state.nodes.clear();
        state.myself.clear();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
            if words[0] == "vars" {
                for pair in words[1..].chunks(2) {
                    if let [name, value] = pair {
                        let value = value.parse().map_err(|_| format!("Unrecoverable error: corrupted cluster config file \"{line}\"."))?;
                        match *name {
                            "currentEpoch" => state.current_epoch = value,
                            "lastVoteEpoch" => state.last_vote_epoch = value,
                            _ => {}
                        }
                    }
                }
                continue;
            }
            let corrupt = || format!("Unrecoverable error: corrupted cluster config file \"{line}\".");
            if words.len() < 8 || words[0].len() != 40 {
                return Err(corrupt());
            }
            let (address, cport) = words[1].split_once('@').ok_or_else(corrupt)?;
            let cport = cport.split(',').next().unwrap_or("0").parse().map_err(|_| corrupt())?;
            let (ip, port) = address.rsplit_once(':').ok_or_else(corrupt)?;
            let port = port.parse().map_err(|_| corrupt())?;
            let flags = Flags::parse(words[2]);
            let mut node = ClusterNode::new(words[0].to_owned(), ip.to_owned(), port, cport, flags, now);
            node.master = (words[3] != "-").then(|| words[3].to_owned());
            node.config_epoch = words[6].parse().map_err(|_| corrupt())?;
            if flags.myself {
                state.myself = node.id.clone();
            }
            for range in &words[8..] {
                if range.starts_with('[') {
                    // An open slot: `[slot->-id]` (migrating) or `[slot-<-id]` (importing).
                    let inner = range.trim_start_matches('[').trim_end_matches(']');
                    if let Some((slot, to)) = inner.split_once("->-") {
                        state.migrating.insert(slot.parse().map_err(|_| corrupt())?, to.to_owned());
                    } else if let Some((slot, from)) = inner.split_once("-<-") {
                        state.importing.insert(slot.parse().map_err(|_| corrupt())?, from.to_owned());
                    }
                    continue;
                }
                let (start, end) = match range.split_once('-') {
                    Some((start, end)) => (start.parse::<usize>().map_err(|_| corrupt())?, end.parse::<usize>().map_err(|_| corrupt())?),
                    None => {
                        let slot = range.parse::<usize>().map_err(|_| corrupt())?;
                        (slot, slot)
                    }
                };
                if start > end || end >= SLOTS {
                    return Err(corrupt());
                }
                for slot in start..=end {
                    state.slots[slot] = Some(node.id.clone());
                }
            }
            state.nodes.insert(node.id.clone(), node);
        }
        if state.myself.is_empty() {
            return Err("Unrecoverable error: the cluster config file names no node as myself.".to_owned());
        }
        state.dirty = false;
        Ok(state)
    }

    /// Writes the file: a new file beside it, fsynced, renamed over it.
    pub fn save(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        let temp = path.with_extension("tmp-shoal");
        {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(self.file_text().as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temp, path)?;
        self.dirty = false;
        Ok(())
    }

    /// This replica takes its master's slots under `epoch` and becomes a master (the end
    /// of an election, or CLUSTER FAILOVER TAKEOVER).
    pub fn promote(&mut self, epoch: u64) {
        let Some(master) = self.me().master.clone() else { return };
        let myself = self.myself.clone();
        for owner in self.slots.iter_mut().filter(|o| o.as_deref() == Some(master.as_str())) {
            *owner = Some(myself.clone());
        }
        let me = self.me_mut();
        me.flags.master = true;
        me.flags.replica = false;
        me.master = None;
        me.config_epoch = epoch;
        self.election = None;
        self.manual_until = None;
        self.manual = None;
        self.dirty = true;
    }

    /// The immutable view the data path reads.
    pub fn view(&self, generation: u64) -> View {
        let ids: Vec<&String> = self.nodes.keys().collect();
        let index = |id: &str| ids.iter().position(|i| i.as_str() == id).map(|i| i as u16);
        let mut owners = vec![NO_OWNER; SLOTS].into_boxed_slice();
        for (slot, owner) in self.slots.iter().enumerate() {
            if let Some(i) = owner.as_deref().and_then(index) {
                owners[slot] = i;
            }
        }
        let me = self.me();
        View {
            generation,
            owners,
            endpoints: self.nodes.values().map(|n| Bytes::from(format!("{}:{}", n.ip, n.port))).collect(),
            myself: index(&self.myself).unwrap_or(NO_OWNER),
            my_master: me.master.as_deref().and_then(index),
            migrating: self.migrating.iter().filter_map(|(slot, to)| Some((*slot, index(to)?))).collect(),
            importing: self.importing.iter().filter_map(|(slot, from)| Some((*slot, index(from)?))).collect(),
            ok: self.ok,
        }
    }
}

pub const NO_OWNER: u16 = u16::MAX;

/// What the data path needs of the cluster state, immutable.
#[derive(Debug)]
pub struct View {
    pub generation: u64,
    /// Each slot's owner: an index into `endpoints`, or [`NO_OWNER`].
    pub owners: Box<[u16]>,
    /// `ip:port` of each node, as MOVED and ASK name it.
    pub endpoints: Vec<Bytes>,
    pub myself: u16,
    pub my_master: Option<u16>,
    pub migrating: HashMap<u16, u16>,
    pub importing: HashMap<u16, u16>,
    pub ok: bool,
}

pub type SharedView = Arc<View>;

/// Sorted slots as inclusive ranges.
pub fn ranges(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for &slot in slots {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == slot => *end = slot,
            _ => ranges.push((slot, slot)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_reads_back_what_it_wrote() {
        let mut state = State::fresh(5);
        let me = state.myself.clone();
        state.me_mut().ip = "127.0.0.1".to_owned();
        state.me_mut().port = 7001;
        state.me_mut().cport = 17001;
        state.me_mut().config_epoch = 3;
        let other = "a".repeat(40);
        let mut node = ClusterNode::new(other.clone(), "127.0.0.1".to_owned(), 7002, 17002, Flags { master: true, ..Flags::default() }, 5);
        node.config_epoch = 2;
        state.nodes.insert(other.clone(), node);
        for slot in [0, 1, 2, 7, 100] {
            state.slots[slot] = Some(me.clone());
        }
        state.slots[16383] = Some(other.clone());
        state.migrating.insert(7, other.clone());
        state.current_epoch = 9;
        let text = state.file_text();
        assert!(text.contains(&format!("{me} 127.0.0.1:7001@17001 myself,master - 0 0 3 connected 0-2 7 100 [7->-{other}]\n")), "{text}");
        assert!(text.ends_with("vars currentEpoch 9 lastVoteEpoch 0\n"));
        let back = State::parse(&text, 6).unwrap();
        assert_eq!(back.myself, me);
        assert_eq!(back.slots, state.slots);
        assert_eq!(back.migrating, state.migrating);
        assert_eq!(back.current_epoch, 9);
        assert_eq!(back.nodes[&other].config_epoch, 2);
        assert_eq!(back.nodes[&other].port, 7002);
        assert_eq!(back.file_text(), text);
    }

    #[test]
    fn a_damaged_file_is_refused() {
        assert!(State::parse("vars currentEpoch 0 lastVoteEpoch 0\n", 0).is_err());
        assert!(State::parse(&format!("{} :0@0 myself,master - 0 0 0 connected 16384\n", "b".repeat(40)), 0).is_err());
        assert!(State::parse(&format!("{} 127.0.0.1 myself,master - 0 0 0 connected\n", "b".repeat(40)), 0).is_err());
        assert!(State::parse("short :0@0 myself,master - 0 0 0 connected\n", 0).is_err());
    }

    #[test]
    fn ranges_join_neighbours() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), vec![(0, 2), (5, 5), (7, 8)]);
        assert_eq!(ranges(&[]), vec![]);
    }

    #[test]
    fn the_state_is_ok_only_with_every_slot_served() {
        let mut state = State::fresh(0);
        state.update_state(true);
        assert!(!state.ok);
        let me = state.myself.clone();
        state.slots.iter_mut().for_each(|s| *s = Some(me.clone()));
        state.update_state(true);
        assert!(state.ok);
        assert_eq!(state.size, 1);
        state.slots[5] = None;
        state.update_state(true);
        assert!(!state.ok);
        state.update_state(false);
        assert!(state.ok);
    }
}

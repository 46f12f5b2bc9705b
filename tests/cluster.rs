//! Cluster mode: `redis-cli --cluster create` over Shoal nodes, redirections, failure
//! detection, restarts from nodes.conf, and the CLUSTER commands' replies against a
//! redis-server started with `cluster-enabled yes`.

use std::process::Command;
use std::time::{Duration, Instant};

use shoal_testkit::{free_port, key_slot, need, Raw, Server};

/// A Shoal cluster node in its own directory, with its bus on a port of its own.
fn start_node(threads: usize) -> (Server, u16) {
    let dir = Server::scratch("cluster");
    let bus = free_port();
    let server = Server::start_in(&dir, threads, &["--cluster-enabled", "yes", "--cluster-port", &bus.to_string(), "--cluster-node-timeout", "1500"]);
    (server, bus)
}

/// A node's id (CLUSTER MYID).
fn node_id(port: u16) -> String {
    let reply = command(port, &["CLUSTER", "MYID"]);
    reply[reply.len() - 40..].to_owned()
}

/// Six single-core nodes made a cluster of three masters with a replica each
/// (`redis-cli --cluster create --cluster-replicas 1`), all ok; with the master of slot 0
/// and its replica.
fn replicated_cluster() -> (Vec<(Server, u16)>, Vec<u16>, u16, u16) {
    let nodes: Vec<(Server, u16)> = (0..6).map(|_| start_node(1)).collect();
    let ports: Vec<u16> = nodes.iter().map(|(s, _)| s.port).collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let output = Command::new("timeout")
        .args(["90", "redis-cli", "--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("[OK] All 16384 slots covered."), "{text}");
    for &port in &ports {
        wait_for("cluster_state:ok", Duration::from_secs(30), || cluster_info(port, "cluster_state") == "ok");
    }
    let master = owner(ports[0], 0);
    let master_id = node_id(master);
    let replica = *ports
        .iter()
        .find(|&&p| command(p, &["CLUSTER", "NODES"]).lines().any(|l| l.contains("myself,slave") && l.contains(&master_id)))
        .expect("slot 0's master has a replica");
    (nodes, ports, master, replica)
}

fn survivors_of(ports: &[u16], without: &[u16]) -> Vec<u16> {
    ports.iter().copied().filter(|p| !without.contains(p)).collect()
}

fn command(port: u16, args: &[&str]) -> String {
    Raw::connect(port).expect("connect").command(args).expect("reply").trim_end_matches("\r\n").to_owned()
}

/// Sends `args` (nothing when empty: reads the next push) and returns the reply.
fn ask(raw: &mut Raw, args: &[&str]) -> String {
    let reply = if args.is_empty() { raw.read_reply() } else { raw.command(args) };
    reply.expect("reply").trim_end_matches("\r\n").to_owned()
}

fn cluster_info(port: u16, field: &str) -> String {
    let info = command(port, &["CLUSTER", "INFO"]);
    info.lines().find_map(|line| line.strip_prefix(&format!("{field}:"))).unwrap_or_default().trim().to_owned()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each node's view of the slot owners, as `redis-cli` compares them: "id:ranges" per
/// master with slots, sorted.
fn signature(port: u16) -> Vec<String> {
    let nodes = command(port, &["CLUSTER", "NODES"]);
    let mut signature: Vec<String> = nodes
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            (words.len() > 8).then(|| format!("{}:{}", words[0], words[8..].join(",")))
        })
        .collect();
    signature.sort();
    signature
}

/// The node (client port) CLUSTER SLOTS names for `slot`.
fn owner(port: u16, slot: u16) -> u16 {
    let nodes = command(port, &["CLUSTER", "NODES"]);
    for line in nodes.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        for range in words.iter().skip(8) {
            let (start, end) = match range.split_once('-') {
                Some((a, b)) => (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()),
                None => (range.parse().unwrap(), range.parse().unwrap()),
            };
            if (start..=end).contains(&slot) {
                let address = words[1].split('@').next().unwrap();
                return address.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
    }
    panic!("no owner for slot {slot}");
}

#[test]
fn redis_cli_creates_a_cluster_and_every_node_redirects_to_the_owner() {
    if !need("redis-cli") {
        return;
    }
    let mut nodes: Vec<(Server, u16)> = (0..3).map(|_| start_node(2)).collect();
    let ports: Vec<u16> = nodes.iter().map(|(s, _)| s.port).collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let output = Command::new("timeout")
        .arg("60")
        .arg("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addresses)
        .arg("--cluster-yes")
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "redis-cli --cluster create: {text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("[OK] All nodes agree about slots configuration."), "{text}");
    assert!(text.contains("[OK] All 16384 slots covered."), "{text}");
    for &port in &ports {
        wait_for("cluster_state:ok", Duration::from_secs(20), || cluster_info(port, "cluster_state") == "ok");
        assert_eq!(cluster_info(port, "cluster_known_nodes"), "3");
        assert_eq!(cluster_info(port, "cluster_size"), "3");
        assert_eq!(signature(port), signature(ports[0]), "nodes agree");
    }

    // Every key is served by its slot's owner and redirected by the others, exactly.
    for i in 0..60 {
        let key = format!("key:{i}");
        let slot = key_slot(key.as_bytes());
        let home = owner(ports[0], slot);
        for &port in &ports {
            let reply = command(port, &["SET", &key, &i.to_string()]);
            if port == home {
                assert_eq!(reply, "+OK", "{key} on its owner");
            } else {
                assert_eq!(reply, format!("-MOVED {slot} 127.0.0.1:{home}"), "{key} elsewhere");
            }
        }
        assert_eq!(command(home, &["GET", &key]), format!("${}\r\n{i}", i.to_string().len()));
    }
    // Keys of different slots in one command: CROSSSLOT; hash tags keep them together.
    assert_eq!(command(ports[0], &["MSET", "a", "1", "b", "2"]), "-CROSSSLOT Keys in request don't hash to the same slot");
    let tagged = owner(ports[0], key_slot(b"tag"));
    assert_eq!(command(tagged, &["MSET", "{tag}a", "1", "{tag}b", "2"]), "+OK");
    assert_eq!(command(tagged, &["SELECT", "1"]), "-ERR SELECT is not allowed in cluster mode");
    // A transaction whose keys leave the slot is discarded.
    let mut raw = Raw::connect(tagged).unwrap();
    assert_eq!(ask(&mut raw, &["MULTI"]), "+OK");
    assert_eq!(ask(&mut raw, &["SET", "{tag}c", "3"]), "+QUEUED");
    let moved = ask(&mut raw, &["SET", "elsewhere-key-1", "3"]);
    let other_slot = key_slot(b"elsewhere-key-1");
    if owner(ports[0], other_slot) != tagged {
        assert!(moved.starts_with(&format!("-MOVED {other_slot} ")), "{moved}");
        assert_eq!(ask(&mut raw, &["EXEC"]), "-EXECABORT Transaction discarded because of previous errors.");
    }
    // redis-cli -c follows the redirections.
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli").args(["-c", "-p", &ports[0].to_string()]).args(args).output().expect("redis-cli -c");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for i in 0..20 {
        assert_eq!(cli(&["SET", &format!("cli:{i}"), "v"]), "OK");
        assert_eq!(cli(&["GET", &format!("cli:{i}")]), "v");
    }
    // COUNTKEYSINSLOT and GETKEYSINSLOT on the owner.
    let slot = key_slot(b"{tag}a");
    assert_eq!(command(tagged, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]), ":2");
    let keys = command(tagged, &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "10"]);
    assert!(keys.contains("{tag}a") && keys.contains("{tag}b"), "{keys}");

    // A node that stops is suspected, then failed by the majority: the cluster is down.
    let (mut gone, gone_bus) = nodes.remove(2);
    let gone_port = gone.port;
    let gone_id = command(gone_port, &["CLUSTER", "MYID"]);
    let gone_dir = gone.dir.clone();
    gone.signal("KILL");
    gone.wait_exit(Duration::from_secs(10));
    drop(gone);
    for &port in &ports[..2] {
        wait_for("the stopped node to be failed", Duration::from_secs(30), || cluster_info(port, "cluster_state") == "fail");
        let nodes = command(port, &["CLUSTER", "NODES"]);
        let line = nodes.lines().find(|l| l.contains(&gone_id[gone_id.len() - 40..])).expect("still known").to_owned();
        assert!(line.contains("master,fail "), "{line}");
    }
    let key = (0..).map(|i| format!("k{i}")).find(|k| owner(ports[0], key_slot(k.as_bytes())) == ports[0]).unwrap();
    assert_eq!(command(ports[0], &["GET", &key]), "-CLUSTERDOWN The cluster is down");

    // Restarted from its nodes.conf, the node is itself again and the cluster recovers.
    let back =
        Server::start_in_on(&gone_dir, gone_port, 2, &["--cluster-enabled", "yes", "--cluster-port", &gone_bus.to_string(), "--cluster-node-timeout", "1500"]);
    assert_eq!(command(back.port, &["CLUSTER", "MYID"]), gone_id);
    for &port in &ports {
        wait_for("the cluster to recover", Duration::from_secs(30), || cluster_info(port, "cluster_state") == "ok");
    }
    assert_eq!(command(ports[0], &["GET", &key]), "$-1");
    assert_eq!(signature(back.port), signature(ports[0]));

    // A fourth node joins as the first one's replica (CLUSTER MEET, then REPLICATE) and
    // serves its master's keys to READONLY clients.
    let (replica, _) = start_node(2);
    let output = Command::new("timeout")
        .args(["60", "redis-cli", "--cluster", "add-node", &format!("127.0.0.1:{}", replica.port), &addresses[0], "--cluster-slave"])
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("[OK] New node added correctly."), "{text}");
    let master_id = command(ports[0], &["CLUSTER", "MYID"]);
    let master_id = &master_id[master_id.len() - 40..];
    wait_for("the replica to be known", Duration::from_secs(20), || {
        command(ports[1], &["CLUSTER", "NODES"]).lines().any(|l| l.contains(&format!("slave {master_id}")))
    });
    assert_eq!(command(ports[0], &["SET", &key, "replicated"]), "+OK");
    let mut reader = Raw::connect(replica.port).unwrap();
    assert_eq!(ask(&mut reader, &["GET", &key]), format!("-MOVED {} 127.0.0.1:{}", key_slot(key.as_bytes()), ports[0]));
    assert_eq!(ask(&mut reader, &["READONLY"]), "+OK");
    wait_for("the write to reach the replica", Duration::from_secs(20), || ask(&mut reader, &["GET", &key]) == "$10\r\nreplicated");
    assert!(ask(&mut reader, &["SET", &key, "x"]).starts_with("-MOVED "), "writes still go to the master");
}

/// The same requests to a fresh Shoal node and a fresh redis-server node, both in cluster
/// mode and alone: the same replies (node ids replaced by a placeholder).
#[test]
fn cluster_commands_answer_as_redis() {
    if !need("redis-server") {
        return;
    }
    let dir = Server::scratch("redis-cluster");
    let Some(redis) = Server::start_redis_in(&dir, &["--cluster-enabled", "yes", "--cluster-port", &free_port().to_string()]) else { return };
    let (shoal, _) = start_node(2);
    let requests: &[&[&str]] = &[
        &["CLUSTER", "KEYSLOT", "somekey"],
        &["CLUSTER", "KEYSLOT", "{user1000}.following"],
        &["CLUSTER", "ADDSLOTS", "16384"],
        &["CLUSTER", "ADDSLOTS", "abc"],
        &["CLUSTER", "ADDSLOTS", "1", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "5", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "3"],
        &["CLUSTER", "ADDSLOTS", "1", "2", "3"],
        &["CLUSTER", "ADDSLOTS", "2"],
        &["CLUSTER", "DELSLOTS", "100"],
        &["CLUSTER", "DELSLOTSRANGE", "3", "3"],
        &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "abc"],
        &["CLUSTER", "COUNTKEYSINSLOT", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "-1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "5"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "5"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "6"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "FORGET", "abc"],
        &["CLUSTER", "REPLICATE", "abc"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "abc"],
        &["CLUSTER", "REPLICAS", "abc"],
        &["CLUSTER", "SETSLOT", "1", "bogus"],
        &["CLUSTER", "SETSLOT", "1", "MIGRATING", "abc"],
        &["CLUSTER", "SETSLOT", "200", "MIGRATING", "abc"],
        &["CLUSTER", "SETSLOT", "1", "IMPORTING", "abc"],
        &["CLUSTER", "SETSLOT", "99999", "STABLE"],
        &["CLUSTER", "SETSLOT", "1", "NODE", "abc"],
        &["CLUSTER", "SETSLOT", "1", "STABLE", "extra"],
        &["CLUSTER", "MEET", "1.2.3", "5"],
        &["CLUSTER", "MEET", "127.0.0.1", "abc"],
        &["CLUSTER", "MEET", "127.0.0.1", "5", "abc"],
        &["CLUSTER", "FAILOVER"],
        &["CLUSTER", "RESET", "bogus"],
        &["CLUSTER", "NOSUCH"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "LINKS"],
        &["GET", "somekey"],
        &["SET", "{a}1", "x"],
        &["SELECT", "0"],
        &["SELECT", "1"],
        &["READONLY"],
        &["READWRITE"],
        &["ASKING"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["CLUSTER", "RESET", "HARD"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
        &["CLUSTER", "FLUSHSLOTS"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "8191", "8192", "16383"],
        &["CLUSTER", "HELP"],
    ];
    let redis_id = command(redis.port, &["CLUSTER", "MYID"]);
    let shoal_id = command(shoal.port, &["CLUSTER", "MYID"]);
    let mut redis_raw = Raw::connect(redis.port).unwrap();
    let mut shoal_raw = Raw::connect(shoal.port).unwrap();
    for request in requests {
        let expected =
            redis_raw.command(request).unwrap().replace(&redis_id[redis_id.len() - 40..], "<id>").replace(&format!(":{}\r\n", redis.port), ":<port>\r\n");
        let got = shoal_raw.command(request).unwrap().replace(&shoal_id[shoal_id.len() - 40..], "<id>").replace(&format!(":{}\r\n", shoal.port), ":<port>\r\n");
        assert_eq!(got, expected, "{request:?}");
    }
    // Once every slot is served, both serve keys.
    for port in [redis.port, shoal.port] {
        wait_for("cluster_state:ok", Duration::from_secs(20), || cluster_info(port, "cluster_state") == "ok");
    }
    for request in [
        &["SET", "k", "v"][..],
        &["GET", "k"],
        &["MOVE", "k", "1"],
        &["SWAPDB", "0", "1"],
        &["COPY", "k", "k2", "DB", "1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "7629"],
    ] {
        let expected = redis_raw.command(request).unwrap();
        assert_eq!(shoal_raw.command(request).unwrap(), expected, "{request:?}");
    }
    assert_eq!(cluster_info(shoal.port, "cluster_slots_assigned"), "16384");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two nodes by hand (ADDSLOTSRANGE, SET-CONFIG-EPOCH, MEET), waited for until both agree.
fn two_node_cluster() -> (Server, Server, String, String) {
    let (a, _) = start_node(2);
    let (b, b_bus) = start_node(2);
    assert_eq!(command(a.port, &["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]), "+OK");
    assert_eq!(command(b.port, &["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SET-CONFIG-EPOCH", "1"]), "+OK");
    assert_eq!(command(b.port, &["CLUSTER", "SET-CONFIG-EPOCH", "2"]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "MEET", "127.0.0.1", &b.port.to_string(), &b_bus.to_string()]), "+OK");
    for port in [a.port, b.port] {
        wait_for("both nodes to agree", Duration::from_secs(20), || {
            cluster_info(port, "cluster_state") == "ok" && cluster_info(port, "cluster_known_nodes") == "2"
        });
    }
    let (a_id, b_id) = (node_id(a.port), node_id(b.port));
    (a, b, a_id, b_id)
}

/// A slot on its way from one node to another: the source serves the keys it still has and
/// sends ASK for the others (TRYAGAIN for several), the target serves ASKING clients and
/// RESTORE-ASKING; MIGRATE and SETSLOT NODE finish the move. Keys on every core of the
/// source are checked from several connections, so some are on another core than theirs.
#[test]
fn a_migrating_slot_asks_for_missing_keys_and_the_move_completes() {
    let (a, b, a_id, b_id) = two_node_cluster();
    let slot = key_slot(b"{b}");
    assert!(slot < 8192, "{{b}} is node a's");
    let keys: Vec<String> = (0..20).map(|i| format!("{{b}}{i}")).collect();
    for key in &keys {
        assert_eq!(command(a.port, &["SET", key, "v"]), "+OK");
    }
    assert_eq!(command(b.port, &["CLUSTER", "SETSLOT", &slot.to_string(), "IMPORTING", &a_id]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SETSLOT", &slot.to_string(), "MIGRATING", &b_id]), "+OK");
    let asked = format!("-ASK {slot} 127.0.0.1:{}", b.port);
    for _ in 0..6 {
        let mut source = Raw::connect(a.port).unwrap();
        assert_eq!(ask(&mut source, &["GET", "{b}0"]), "$1\r\nv");
        assert_eq!(ask(&mut source, &["GET", "{b}absent"]), asked);
        assert_eq!(ask(&mut source, &["MGET", "{b}0", "{b}absent"]), "-TRYAGAIN Multiple keys request during rehashing of slot");
        assert_eq!(ask(&mut source, &["MGET", "{b}0", "{b}1"]), "*2\r\n$1\r\nv\r\n$1\r\nv");
        let mut target = Raw::connect(b.port).unwrap();
        assert_eq!(ask(&mut target, &["GET", "{b}absent"]), format!("-MOVED {slot} 127.0.0.1:{}", a.port));
        assert_eq!(ask(&mut target, &["ASKING"]), "+OK");
        assert_eq!(ask(&mut target, &["GET", "{b}absent"]), "$-1");
        assert_eq!(ask(&mut target, &["GET", "{b}absent"]), format!("-MOVED {slot} 127.0.0.1:{}", a.port), "ASKING is for one command");
    }
    // MIGRATE moves the keys (RESTORE-ASKING on the target); then they are asked for.
    let mut migrate = vec!["MIGRATE", "127.0.0.1"];
    let b_port = b.port.to_string();
    migrate.extend([b_port.as_str(), "", "0", "5000", "KEYS"]);
    migrate.extend(keys.iter().map(String::as_str));
    assert_eq!(command(a.port, &migrate), "+OK");
    assert_eq!(command(a.port, &["GET", "{b}3"]), asked);
    let mut target = Raw::connect(b.port).unwrap();
    assert_eq!(ask(&mut target, &["ASKING"]), "+OK");
    assert_eq!(ask(&mut target, &["GET", "{b}3"]), "$1\r\nv");
    assert_eq!(command(b.port, &["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &b_id]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &b_id]), "+OK");
    assert_eq!(command(a.port, &["GET", "{b}3"]), format!("-MOVED {slot} 127.0.0.1:{}", b.port));
    assert_eq!(command(b.port, &["GET", "{b}3"]), "$1\r\nv");
    for port in [a.port, b.port] {
        wait_for("both to agree on the move", Duration::from_secs(20), || signature(port) == signature(a.port) && signature(a.port) == signature(b.port));
    }
    assert_eq!(owner(a.port, slot), b.port);

    // redis-cli moves slots with their keys (SETSLOT, GETKEYSINSLOT, MIGRATE, SETSLOT NODE).
    if !need("redis-cli") {
        return;
    }
    let keys: Vec<String> = (0..400).map(|i| format!("spread:{i}")).collect();
    for key in &keys {
        let home = owner(a.port, key_slot(key.as_bytes()));
        assert_eq!(command(home, &["SET", key, key]), "+OK");
    }
    let output = Command::new("timeout")
        .args([
            "120",
            "redis-cli",
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", a.port),
            "--cluster-from",
            &a_id,
            "--cluster-to",
            &b_id,
            "--cluster-slots",
            "300",
            "--cluster-yes",
        ])
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "reshard: {text}{}", String::from_utf8_lossy(&output.stderr));
    for port in [a.port, b.port] {
        wait_for("both to agree after the reshard", Duration::from_secs(20), || signature(port) == signature(a.port) && signature(a.port) == signature(b.port));
    }
    let moved = keys.iter().filter(|k| key_slot(k.as_bytes()) < 300).count();
    assert!(moved > 0, "some keys were in the slots moved");
    for key in &keys {
        let slot = key_slot(key.as_bytes());
        let home = owner(a.port, slot);
        assert_eq!(home, if slot < 300 || (8192..).contains(&slot) || slot == key_slot(b"{b}") { b.port } else { a.port }, "{key}");
        assert_eq!(command(home, &["GET", key]), format!("${}\r\n{key}", key.len()));
    }
    let total: usize = [a.port, b.port].iter().map(|&p| command(p, &["DBSIZE"]).trim_start_matches(':').parse::<usize>().unwrap()).sum();
    assert_eq!(total, keys.len() + 20);
    let check = Command::new("redis-cli").args(["--cluster", "check", &format!("127.0.0.1:{}", b.port)]).output().expect("redis-cli --cluster check");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("[OK] All nodes agree about slots configuration.") && text.contains("[OK] All 16384 slots covered."), "{text}");
}

/// Three masters with a replica each (`--cluster-replicas 1`); a master that dies is
/// replaced by its replica (the masters vote), the cluster serves its keys again, and the
/// old master, restarted, follows its replacement.
#[test]
fn a_replica_takes_over_its_failed_master() {
    if !need("redis-cli") {
        return;
    }
    let (mut nodes, ports, master, replica) = replicated_cluster();
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).filter(|k| owner(ports[0], key_slot(k.as_bytes())) == master).collect();
    for key in &keys {
        assert_eq!(command(master, &["SET", key, key]), "+OK");
    }
    assert_eq!(command(master, &["WAIT", "1", "5000"]), ":1");

    // PUBLISH reaches every node's subscribers, SPUBLISH the shard's, each exactly once (in
    // cluster mode the bus carries them, not the replication stream).
    let other = *survivors_of(&ports, &[master, replica]).first().unwrap();
    let channel = keys[0].clone();
    let mut on_replica = Raw::connect(replica).unwrap();
    let mut on_other = Raw::connect(other).unwrap();
    assert!(ask(&mut on_replica, &["SUBSCRIBE", "news"]).starts_with("*3\r\n$9\r\nsubscribe"));
    assert!(ask(&mut on_other, &["SUBSCRIBE", "news"]).starts_with("*3\r\n$9\r\nsubscribe"));
    let mut shard_sub = Raw::connect(replica).unwrap();
    assert!(ask(&mut shard_sub, &["SSUBSCRIBE", &channel]).starts_with("*3\r\n$10\r\nssubscribe"), "a replica serves its shard's channels");
    assert!(command(other, &["SSUBSCRIBE", &channel]).starts_with("-MOVED "), "another shard's channel");
    assert_eq!(command(master, &["PUBLISH", "news", "hello"]), ":0", "no local subscriber on the master");
    assert_eq!(command(master, &["SPUBLISH", &channel, "shard-hello"]), ":0");
    for sub in [&mut on_replica, &mut on_other] {
        assert_eq!(ask(sub, &[]).trim_end(), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello".trim_end());
    }
    let expected = format!("*3\r\n$8\r\nsmessage\r\n${}\r\n{channel}\r\n$11\r\nshard-hello", channel.len());
    assert_eq!(ask(&mut shard_sub, &[]), expected);
    for sub in [&mut on_replica, &mut on_other, &mut shard_sub] {
        sub.set_read_timeout(Duration::from_millis(300));
        assert!(sub.read_reply().is_err(), "one copy of each message");
    }

    let index = ports.iter().position(|&p| p == master).unwrap();
    let (mut dead, dead_bus) = nodes.remove(index);
    let dead_dir = dead.dir.clone();
    dead.signal("KILL");
    dead.wait_exit(Duration::from_secs(10));
    drop(dead);
    let survivors: Vec<u16> = ports.iter().copied().filter(|&p| p != master).collect();
    for &port in &survivors {
        wait_for("the replica to take over", Duration::from_secs(40), || owner(port, 0) == replica && cluster_info(port, "cluster_state") == "ok");
    }
    for key in &keys {
        assert_eq!(command(replica, &["GET", key]), format!("${}\r\n{key}", key.len()), "{key} on the new master");
    }
    assert_eq!(command(replica, &["SET", &keys[0], "after"]), "+OK");

    // The old master comes back and follows the replica that replaced it.
    let back =
        Server::start_in_on(&dead_dir, master, 1, &["--cluster-enabled", "yes", "--cluster-port", &dead_bus.to_string(), "--cluster-node-timeout", "1500"]);
    let replica_id = node_id(replica);
    wait_for("the old master to follow", Duration::from_secs(40), || {
        command(back.port, &["CLUSTER", "NODES"]).lines().any(|l| l.contains("myself,slave") && l.contains(&replica_id))
    });
    wait_for("the old master to catch up", Duration::from_secs(30), || {
        let mut raw = Raw::connect(back.port).unwrap();
        ask(&mut raw, &["READONLY"]);
        ask(&mut raw, &["GET", &keys[0]]) == "$5\r\nafter"
    });
    assert_eq!(command(back.port, &["GET", &keys[0]]), format!("-MOVED {} 127.0.0.1:{replica}", key_slot(keys[0].as_bytes())));
}

/// CLUSTER FAILOVER on a replica while a client writes to its master: the master pauses its
/// writes, the replica catches up and is elected, and every write the old master
/// acknowledged is on the new one. Then TAKEOVER and FORCE move the slots back and forth.
#[test]
fn manual_failover_loses_no_acknowledged_write() {
    if !need("redis-cli") {
        return;
    }
    let (_nodes, ports, master, replica) = replicated_cluster();
    let master_id = node_id(master);
    assert_eq!(command(master, &["CLUSTER", "FAILOVER"]), "-ERR You should send CLUSTER FAILOVER to a replica");
    assert_eq!(command(replica, &["CLUSTER", "FAILOVER", "SOON"]), "-ERR syntax error");
    // A tag of the master's slots, so every key of the writer lands there.
    let tag = (0..).map(|i| format!("w{i}")).find(|t| owner(ports[0], key_slot(t.as_bytes())) == master).unwrap();
    let writer = {
        let tag = tag.clone();
        std::thread::spawn(move || {
            let mut raw = Raw::connect(master).unwrap();
            let mut acknowledged = Vec::new();
            for i in 0..100_000 {
                let key = format!("{{{tag}}}:{i}");
                if ask(&mut raw, &["SET", &key, "v"]) != "+OK" {
                    break;
                }
                acknowledged.push(key);
            }
            acknowledged
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(command(replica, &["CLUSTER", "FAILOVER"]), "+OK");
    for &port in &ports {
        wait_for("the replica to be elected", Duration::from_secs(30), || owner(port, 0) == replica);
    }
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged.len() > 10, "the writer wrote before the failover");
    for key in &acknowledged {
        assert_eq!(command(replica, &["GET", key]), "$1\r\nv", "{key}, acknowledged by the old master");
    }
    wait_for("the old master to follow", Duration::from_secs(30), || {
        command(master, &["CLUSTER", "NODES"]).lines().any(|l| l.contains("myself,slave") && l.contains(&node_id(replica)))
    });
    // TAKEOVER: no vote, at once.
    assert_eq!(command(master, &["CLUSTER", "FAILOVER", "TAKEOVER"]), "+OK");
    for &port in &ports {
        wait_for("the takeover to be known", Duration::from_secs(30), || owner(port, 0) == master);
    }
    // FORCE: an election with the master alive.
    wait_for("the replica to follow again", Duration::from_secs(30), || {
        command(replica, &["CLUSTER", "NODES"]).lines().any(|l| l.contains("myself,slave") && l.contains(&master_id))
    });
    assert_eq!(command(replica, &["CLUSTER", "FAILOVER", "FORCE"]), "+OK");
    for &port in &ports {
        wait_for("the forced election", Duration::from_secs(30), || owner(port, 0) == replica && cluster_info(port, "cluster_state") == "ok");
    }
    assert_eq!(command(replica, &["GET", &acknowledged[0]]), "$1\r\nv");
}

/// A new master gets slots (`--cluster reshard` to it), gives them back, and leaves
/// (`--cluster del-node`): every key stays reachable, and the node is forgotten.
/// (`--cluster rebalance`, which moves a quarter of all slots one by one, was run by hand.)
#[test]
fn a_node_added_then_emptied_and_deleted_keeps_every_key() {
    if !need("redis-cli") {
        return;
    }
    let nodes: Vec<(Server, u16)> = (0..4).map(|_| start_node(2)).collect();
    let ports: Vec<u16> = nodes.iter().map(|(s, _)| s.port).collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let cli = |args: &[&str]| {
        let output = Command::new("timeout").arg("120").arg("redis-cli").args(args).output().expect("run redis-cli");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "redis-cli {args:?}: {text}{}", String::from_utf8_lossy(&output.stderr));
        text
    };
    cli(&["--cluster", "create", &addresses[0], &addresses[1], &addresses[2], "--cluster-yes"]);
    for &port in &ports[..3] {
        wait_for("cluster_state:ok", Duration::from_secs(30), || cluster_info(port, "cluster_state") == "ok");
    }
    let keys: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    for key in &keys {
        assert_eq!(command(owner(ports[0], key_slot(key.as_bytes())), &["SET", key, key]), "+OK");
    }
    let all_readable = |via: u16| {
        for key in &keys {
            let home = owner(via, key_slot(key.as_bytes()));
            assert_eq!(command(home, &["GET", key]), format!("${}\r\n{key}", key.len()), "{key} on {home}");
        }
    };
    let (first_id, new_id) = (node_id(ports[0]), node_id(ports[3]));
    cli(&["--cluster", "add-node", &addresses[3], &addresses[0]]);
    for &port in &ports {
        wait_for("the new node to know the cluster", Duration::from_secs(20), || {
            cluster_info(port, "cluster_known_nodes") == "4" && signature(port) == signature(ports[0])
        });
    }
    cli(&["--cluster", "reshard", &addresses[0], "--cluster-from", &first_id, "--cluster-to", &new_id, "--cluster-slots", "200", "--cluster-yes"]);
    for &port in &ports {
        wait_for("every node to agree", Duration::from_secs(30), || signature(port) == signature(ports[0]));
    }
    assert_eq!(owner(ports[1], 0), ports[3], "the new master got slots");
    all_readable(ports[1]);
    cli(&["--cluster", "reshard", &addresses[0], "--cluster-from", &new_id, "--cluster-to", &first_id, "--cluster-slots", "200", "--cluster-yes"]);
    for &port in &ports {
        wait_for("every node to agree", Duration::from_secs(30), || signature(port) == signature(ports[0]));
    }
    assert!(!signature(ports[0]).iter().any(|line| line.starts_with(&new_id)), "the node was emptied");
    // Emptied, it became the replica of the node that took its last slot (Redis 7.0, with
    // cluster-allow-replica-migration yes).
    wait_for("the emptied master to follow", Duration::from_secs(20), || {
        command(ports[1], &["CLUSTER", "NODES"]).lines().any(|l| l.starts_with(&new_id) && l.contains(&format!("slave {first_id}")))
    });
    let text = cli(&["--cluster", "del-node", &addresses[0], &new_id]);
    assert!(text.contains("Sending CLUSTER RESET SOFT to the deleted node."), "{text}");
    for &port in &ports[..3] {
        assert_eq!(cluster_info(port, "cluster_known_nodes"), "3");
    }
    assert_eq!(cluster_info(ports[3], "cluster_known_nodes"), "1", "the deleted node forgot the cluster");
    all_readable(ports[2]);
    let check = cli(&["--cluster", "check", &addresses[0]]);
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
}

/// Clients that INCR keys of a slot while it moves, following ASK and MOVED as a cluster
/// client does: every acknowledged increment is in the target's count at the end, and the
/// source keeps no key of the slot. A command that passed the source's redirection check
/// while its key was still there, and ran after MIGRATE took the key away (it waited for
/// MIGRATE's locks, or sat behind other commands of its pipeline), would create the key
/// again on the source: an increment acknowledged and lost.
#[test]
fn increments_during_a_migration_are_never_lost() {
    let (a, b, a_id, b_id) = two_node_cluster();
    let slot = key_slot(b"{c}");
    assert!(slot < 8192, "{{c}} is node a's");
    let keys: Vec<String> = (0..8).map(|i| format!("{{c}}{i}")).collect();
    for key in &keys {
        assert_eq!(command(a.port, &["SET", key, "0"]), "+OK");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (keys, stop, a_port) = (keys.clone(), stop.clone(), a.port);
            std::thread::spawn(move || {
                let mut acknowledged = vec![0u64; keys.len()];
                let mut source = Raw::connect(a_port).unwrap();
                let mut others: std::collections::HashMap<u16, Raw> = std::collections::HashMap::new();
                let mut i = w;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let pair = [i % keys.len(), (i + 3) % keys.len()];
                    i += 1;
                    // Writers 1 and 4 send MULTI, INCR, INCR, EXEC (a redirection then moves
                    // the whole transaction); the others two INCRs at once (2 and 5 through
                    // EVAL), so that one may wait behind the other on the source.
                    let transaction = w % 3 == 1;
                    let incr = |key: &str| match w % 3 {
                        2 => Raw::encode(&["EVAL", "return redis.call('INCR', KEYS[1])", "1", key]),
                        _ => Raw::encode(&["INCR", key]),
                    };
                    let mut pending: Vec<usize> = pair.to_vec();
                    let (mut port, mut asking) = (a_port, false);
                    loop {
                        let raw = if port == a_port { &mut source } else { others.entry(port).or_insert_with(|| Raw::connect(port).unwrap()) };
                        if asking {
                            assert_eq!(ask(raw, &["ASKING"]), "+OK");
                        }
                        let mut redirect = None;
                        let incrs: Vec<Vec<u8>> = pending.iter().map(|&k| incr(&keys[k])).collect();
                        if transaction {
                            raw.send(&[Raw::encode(&["MULTI"]), incrs.concat(), Raw::encode(&["EXEC"])].concat());
                            assert_eq!(ask(raw, &[]), "+OK");
                            for _ in pair {
                                let queued = ask(raw, &[]);
                                if queued != "+QUEUED" {
                                    redirect = Some(queued);
                                }
                            }
                            let exec = ask(raw, &[]);
                            // Refused while queueing: EXEC aborts, or redirects itself first (as
                            // Redis checks EXEC's queue before it looks for errors).
                            match redirect {
                                Some(_) => assert!(!exec.starts_with('*'), "{exec}"),
                                None if exec.starts_with("*2") => pair.iter().for_each(|&k| acknowledged[k] += 1),
                                None => redirect = Some(exec),
                            }
                            if redirect.is_none() {
                                break;
                            }
                        } else {
                            raw.send(&incrs.concat());
                            let mut left = Vec::new();
                            for &k in &pending {
                                let reply = ask(raw, &[]);
                                if reply.starts_with(':') {
                                    acknowledged[k] += 1;
                                } else {
                                    redirect = Some(reply);
                                    left.push(k);
                                }
                            }
                            if redirect.is_none() {
                                break;
                            }
                            pending = left;
                        }
                        let reply = redirect.expect("redirected");
                        (port, asking) = match reply.split_once(' ') {
                            Some(("-ASK", to)) => (to.rsplit(':').next().unwrap().parse().unwrap(), true),
                            Some(("-MOVED", to)) => (to.rsplit(':').next().unwrap().parse().unwrap(), false),
                            Some(("-TRYAGAIN", _)) => (port, asking),
                            _ => panic!("{reply}"),
                        };
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let slot_text = slot.to_string();
    assert_eq!(command(b.port, &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &a_id]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &b_id]), "+OK");
    let b_port = b.port.to_string();
    for key in &keys {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(command(a.port, &["MIGRATE", "127.0.0.1", &b_port, key, "0", "5000"]), "+OK");
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(command(b.port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &b_id]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &b_id]), "+OK");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = vec![0u64; keys.len()];
    for writer in writers {
        for (total, count) in acknowledged.iter_mut().zip(writer.join().unwrap()) {
            *total += count;
        }
    }
    for (key, count) in keys.iter().zip(&acknowledged) {
        assert!(*count > 0, "{key} was incremented");
        assert_eq!(command(b.port, &["GET", key]), format!("${}\r\n{count}", count.to_string().len()), "{key}: every acknowledged INCR counted");
    }
    assert_eq!(command(a.port, &["CLUSTER", "COUNTKEYSINSLOT", &slot_text]), ":0", "the source keeps no key of the moved slot");
}

/// A client blocked on a key (BLPOP, timeout 0) whose slot moves to another node is
/// unblocked with MOVED, as Redis's `clusterRedirectBlockedClientIfNeeded` does; one blocked
/// on a slot that stays, or that is only migrating, goes on waiting and is served.
#[test]
fn clients_blocked_on_a_slot_that_moves_away_get_moved() {
    let (a, b, a_id, b_id) = two_node_cluster();
    let slot = key_slot(b"{c}");
    let stays = "{g}list";
    assert!(key_slot(stays.as_bytes()) < 8192, "{{g}} is node a's too");
    // Several connections, so that some wait on another core than their key's.
    let mut moving: Vec<Raw> = (0..4).map(|_| Raw::connect(a.port).unwrap()).collect();
    for raw in &mut moving {
        raw.send(&Raw::encode(&["BLPOP", "{c}list", "0"]));
    }
    let mut staying = Raw::connect(a.port).unwrap();
    staying.send(&Raw::encode(&["BLPOP", stays, "0"]));
    wait_for("five blocked clients", Duration::from_secs(10), || cluster_info_blocked(a.port) == 5);
    let slot_text = slot.to_string();
    assert_eq!(command(b.port, &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &a_id]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &b_id]), "+OK");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cluster_info_blocked(a.port), 5, "a migrating slot is still served here: they wait");
    assert_eq!(command(b.port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &b_id]), "+OK");
    assert_eq!(command(a.port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &b_id]), "+OK");
    for raw in &mut moving {
        raw.set_read_timeout(Duration::from_secs(10));
        assert_eq!(ask(raw, &[]), format!("-MOVED {slot} 127.0.0.1:{}", b.port));
    }
    assert_eq!(cluster_info_blocked(a.port), 1);
    assert_eq!(command(a.port, &["RPUSH", stays, "x"]), ":1");
    assert_eq!(ask(&mut staying, &[]), format!("*2\r\n${}\r\n{stays}\r\n$1\r\nx", stays.len()));
}

/// INFO's `blocked_clients`.
fn cluster_info_blocked(port: u16) -> usize {
    let info = command(port, &["INFO", "clients"]);
    info.lines().find_map(|line| line.strip_prefix("blocked_clients:")).and_then(|n| n.trim().parse().ok()).unwrap_or(usize::MAX)
}

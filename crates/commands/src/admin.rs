//! The table entries of administrative commands the server runs itself
//! (`Handler::Connection`): CLUSTER and its subcommands, READONLY, READWRITE and ASKING
//! (`shoal_server::cluster`), WAIT, WAITAOF, ACL (one user, `default`), SLOWLOG, LATENCY,
//! MEMORY, MONITOR, MODULE (none loaded, loading off as Redis's default
//! `enable-module-command no`), REPLICAOF, SLAVEOF and FAILOVER, SYNC, PSYNC and REPLCONF
//! (`shoal_server::admin_cmd` and the modules it names).

use bytes::Bytes;
use shoal_resp::Frame;

use crate::args;
use crate::ctx::Ctx;
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec::DEFAULT;

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "waitaof",
        arity: 4,
        flags: NOSCRIPT,
        acl: &["@connection"],
        summary: "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.",
        since: "7.2.0",
        group: "generic",
        ..BASE
    },
    CommandSpec {
        name: "monitor",
        arity: 1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Listen for all requests received by the server in real time",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "cluster",
        arity: -2,
        flags: 0,
        acl: &[],
        summary: "A container for cluster commands",
        since: "3.0.0",
        complexity: "Depends on subcommand.",
        group: "cluster",
        subcommands: CLUSTER_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "readonly",
        arity: 1,
        flags: LOADING | STALE | FAST,
        acl: &["@connection"],
        summary: "Enables read queries for a connection to a cluster replica node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "readwrite",
        arity: 1,
        flags: LOADING | STALE | FAST,
        acl: &["@connection"],
        summary: "Disables read queries for a connection to a cluster replica node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "asking",
        arity: 1,
        flags: FAST,
        acl: &["@connection"],
        summary: "Sent by cluster clients after an -ASK redirect",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "wait",
        arity: 3,
        flags: NOSCRIPT,
        acl: &["@connection"],
        summary: "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
        since: "3.0.0",
        group: "generic",
        ..BASE
    },
    CommandSpec {
        name: "acl",
        arity: -2,
        flags: 0,
        acl: &[],
        summary: "A container for Access List Control commands ",
        since: "6.0.0",
        complexity: "Depends on subcommand.",
        group: "server",
        subcommands: ACL_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "slowlog",
        arity: -2,
        flags: 0,
        acl: &[],
        summary: "A container for slow log commands",
        since: "2.2.12",
        complexity: "Depends on subcommand.",
        group: "server",
        subcommands: SLOWLOG_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "latency",
        arity: -2,
        flags: 0,
        acl: &[],
        summary: "A container for latency diagnostics commands",
        since: "2.8.13",
        complexity: "Depends on subcommand.",
        group: "server",
        subcommands: LATENCY_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "memory",
        arity: -2,
        flags: 0,
        acl: &[],
        summary: "A container for memory diagnostics commands",
        since: "4.0.0",
        complexity: "Depends on subcommand.",
        group: "server",
        subcommands: MEMORY_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "module",
        arity: -2,
        flags: 0,
        acl: &[],
        summary: "A container for module commands",
        since: "4.0.0",
        complexity: "Depends on subcommand.",
        group: "server",
        subcommands: MODULE_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "replicaof",
        arity: 3,
        flags: ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Make the server a replica of another instance, or promote it as master.",
        since: "5.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "slaveof",
        arity: 3,
        flags: ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Make the server a replica of another instance, or promote it as master.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "sync",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        acl: &[],
        summary: "An internal command used in replication.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "psync",
        arity: -3,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        acl: &[],
        summary: "An internal command used in replication.",
        since: "2.8.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "replconf",
        arity: -1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        acl: &[],
        summary: "An internal command for configuring the replication stream.",
        since: "3.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "failover",
        arity: -1,
        flags: ADMIN | NOSCRIPT | STALE,
        acl: &[],
        summary: "Start a coordinated failover between this server and one of its replicas.",
        since: "6.2.0",
        group: "server",
        ..BASE
    },
];

const CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "cluster|addslots",
        arity: -3,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Assign new hash slots to receiving node",
        since: "3.0.0",
        complexity: "O(N) where N is the total number of hash slot arguments",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|addslotsrange",
        arity: -4,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Assign new hash slots to receiving node",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of the slots between the start slot and end slot arguments.",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|bumpepoch",
        arity: 2,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Advance the cluster config epoch",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|count-failure-reports",
        arity: 3,
        flags: ADMIN | STALE,
        acl: &[],
        summary: "Return the number of failure reports active for a given node",
        since: "3.0.0",
        complexity: "O(N) where N is the number of failure reports",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|countkeysinslot",
        arity: 3,
        flags: STALE,
        acl: &[],
        summary: "Return the number of local keys in the specified hash slot",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|delslots",
        arity: -3,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Set hash slots as unbound in receiving node",
        since: "3.0.0",
        complexity: "O(N) where N is the total number of hash slot arguments",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|delslotsrange",
        arity: -4,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Set hash slots as unbound in receiving node",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of the slots between the start slot and end slot arguments.",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|failover",
        arity: -2,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Forces a replica to perform a manual failover of its master.",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|flushslots",
        arity: 2,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Delete a node's own slots information",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|forget",
        arity: 3,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Remove a node from the nodes table",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|getkeysinslot",
        arity: 4,
        flags: STALE,
        acl: &[],
        summary: "Return local key names in the specified hash slot",
        since: "3.0.0",
        complexity: "O(log(N)) where N is the number of requested keys",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &[],
        summary: "Show helpful text about the different subcommands",
        since: "5.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|info",
        arity: 2,
        flags: STALE,
        acl: &[],
        summary: "Provides info about Redis Cluster node state",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|keyslot",
        arity: 3,
        flags: STALE,
        acl: &[],
        summary: "Returns the hash slot of the specified key",
        since: "3.0.0",
        complexity: "O(N) where N is the number of bytes in the key",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|links",
        arity: 2,
        flags: STALE,
        acl: &[],
        summary: "Returns a list of all TCP links to and from peer nodes in cluster",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of Cluster nodes",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|meet",
        arity: -4,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Force a node cluster to handshake with another node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec { name: "cluster|myid", arity: 2, flags: STALE, acl: &[], summary: "Return the node id", since: "3.0.0", group: "cluster", ..BASE },
    CommandSpec {
        name: "cluster|nodes",
        arity: 2,
        flags: STALE,
        acl: &[],
        summary: "Get Cluster config for the node",
        since: "3.0.0",
        complexity: "O(N) where N is the total number of Cluster nodes",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|replicas",
        arity: 3,
        flags: ADMIN | STALE,
        acl: &[],
        summary: "List replica nodes of the specified master node",
        since: "5.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|replicate",
        arity: 3,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Reconfigure a node as a replica of the specified master node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|reset",
        arity: -2,
        flags: ADMIN | NOSCRIPT | STALE,
        acl: &[],
        summary: "Reset a Redis Cluster node",
        since: "3.0.0",
        complexity: "O(N) where N is the number of known nodes. The command may execute a FLUSHALL as a side effect.",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|saveconfig",
        arity: 2,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Forces the node to save cluster state on disk",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|set-config-epoch",
        arity: 3,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Set the configuration epoch in a new node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|setslot",
        arity: -4,
        flags: ADMIN | STALE | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Bind a hash slot to a specific node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|shards",
        arity: 2,
        flags: STALE,
        acl: &[],
        summary: "Get array of cluster slots to node mappings",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of cluster nodes",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|slaves",
        arity: 3,
        flags: ADMIN | STALE,
        acl: &[],
        summary: "List replica nodes of the specified master node",
        since: "3.0.0",
        group: "cluster",
        ..BASE
    },
    CommandSpec {
        name: "cluster|slots",
        arity: 2,
        flags: STALE,
        acl: &[],
        summary: "Get array of Cluster slot to node mappings",
        since: "3.0.0",
        complexity: "O(N) where N is the total number of Cluster nodes",
        group: "cluster",
        ..BASE
    },
];
const ACL_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "acl|cat",
        arity: -2,
        flags: NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "List the ACL categories or the commands inside a category",
        since: "6.0.0",
        complexity: "O(1) since the categories and commands are a fixed set.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|deluser",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Remove the specified ACL users and the associated rules",
        since: "6.0.0",
        complexity: "O(1) amortized time considering the typical user.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|dryrun",
        arity: -4,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Returns whether the user can execute the given command without executing the command.",
        since: "7.0.0",
        complexity: "O(1).",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|genpass",
        arity: -2,
        flags: NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Generate a pseudorandom secure password to use for ACL users",
        since: "6.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|getuser",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Get the rules for a specific ACL user",
        since: "6.0.0",
        complexity: "O(N). Where N is the number of password, command and pattern rules that the user has.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &[],
        summary: "Show helpful text about the different subcommands",
        since: "6.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|list",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "List the current ACL rules in ACL config file format",
        since: "6.0.0",
        complexity: "O(N). Where N is the number of configured users.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|load",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Reload the ACLs from the configured ACL file",
        since: "6.0.0",
        complexity: "O(N). Where N is the number of configured users.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|log",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "List latest events denied because of ACLs in place",
        since: "6.0.0",
        complexity: "O(N) with N being the number of entries shown.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|save",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Save the current ACL rules in the configured ACL file",
        since: "6.0.0",
        complexity: "O(N). Where N is the number of configured users.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|setuser",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Modify or create the rules for a specific ACL user",
        since: "6.0.0",
        complexity: "O(N). Where N is the number of rules provided.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|users",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "List the username of all the configured ACL rules",
        since: "6.0.0",
        complexity: "O(N). Where N is the number of configured users.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "acl|whoami",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Return the name of the user associated to the current connection",
        since: "6.0.0",
        group: "server",
        ..BASE
    },
];

const SLOWLOG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "slowlog|get",
        arity: -2,
        flags: ADMIN | LOADING | STALE,
        acl: &[],
        summary: "Get the slow log's entries",
        since: "2.2.12",
        complexity: "O(N) where N is the number of entries returned",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "slowlog|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &[],
        summary: "Show helpful text about the different subcommands",
        since: "6.2.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "slowlog|len",
        arity: 2,
        flags: ADMIN | LOADING | STALE,
        acl: &[],
        summary: "Get the slow log's length",
        since: "2.2.12",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "slowlog|reset",
        arity: 2,
        flags: ADMIN | LOADING | STALE,
        acl: &[],
        summary: "Clear all entries from the slow log",
        since: "2.2.12",
        complexity: "O(N) where N is the number of entries in the slowlog",
        group: "server",
        ..BASE
    },
];

const LATENCY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "latency|doctor",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Return a human readable latency analysis report.",
        since: "2.8.13",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "latency|graph",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Return a latency graph for the event.",
        since: "2.8.13",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "latency|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &[],
        summary: "Show helpful text about the different subcommands.",
        since: "2.8.13",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "latency|histogram",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Return the cumulative distribution of latencies of a subset of commands or all.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of commands with latency information being retrieved.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "latency|history",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Return timestamp-latency samples for the event.",
        since: "2.8.13",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "latency|latest",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Return the latest latency samples for all events.",
        since: "2.8.13",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "latency|reset",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        acl: &[],
        summary: "Reset latency data for one or more events.",
        since: "2.8.13",
        group: "server",
        ..BASE
    },
];

const MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "memory|doctor", arity: 2, flags: 0, acl: &[], summary: "Outputs memory problems report", since: "4.0.0", group: "server", ..BASE },
    CommandSpec {
        name: "memory|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &[],
        summary: "Show helpful text about the different subcommands",
        since: "4.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "memory|malloc-stats",
        arity: 2,
        flags: 0,
        acl: &[],
        summary: "Show allocator internal stats",
        since: "4.0.0",
        complexity: "Depends on how much memory is allocated, could be slow",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "memory|purge",
        arity: 2,
        flags: 0,
        acl: &[],
        summary: "Ask the allocator to release memory",
        since: "4.0.0",
        complexity: "Depends on how much memory is allocated, could be slow",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "memory|stats",
        arity: 2,
        flags: 0,
        acl: &[],
        summary: "Show memory usage details",
        since: "4.0.0",
        complexity: "O(1)",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "memory|usage",
        arity: -3,
        flags: READONLY,
        keys: KeySpec { first: 2, last: 2, step: 1 },
        handler: Handler::Keys { local: memory_usage, multi: None },
        acl: &[],
        summary: "Estimate the memory usage of a key",
        since: "4.0.0",
        complexity: "O(N) where N is the number of samples.",
        group: "server",
        ..BASE
    },
];

/// MEMORY USAGE key [SAMPLES count]: the bytes the key and its value use, estimated as
/// Redis does (collections sampled, `count` elements, 5 by default, 0 for all; see
/// `shoal_store::Value::memory_usage`). Nil for a missing key; the key is not touched.
fn memory_usage(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut samples = 5;
    let mut rest = args[3..].iter();
    while let Some(option) = rest.next() {
        let Some(count) = rest.next().filter(|_| option.eq_ignore_ascii_case(b"samples")) else { return errors::syntax() };
        match args::parse_i64(count) {
            Err(error) => return error,
            Ok(count) if count < 0 => return errors::syntax(),
            Ok(count) => samples = usize::try_from(count).unwrap_or(usize::MAX),
        }
    }
    let now = ctx.now_ms;
    match ctx.db().lookup_read_notouch_unreported(&args[2], now) {
        None => Frame::Null,
        Some(entry) => args::int(entry.value.memory_usage(samples) + shoal_store::db::key_overhead(args[2].len())),
    }
}

const MODULE_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "module|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &[],
        summary: "Show helpful text about the different subcommands",
        since: "5.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "module|list",
        arity: 2,
        flags: ADMIN | NOSCRIPT,
        acl: &[],
        summary: "List all modules loaded by the server",
        since: "4.0.0",
        complexity: "O(N) where N is the number of loaded modules.",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "module|load",
        arity: -3,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Load a module",
        since: "4.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "module|loadex",
        arity: -3,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Load a module with extended parameters",
        since: "7.0.0",
        group: "server",
        ..BASE
    },
    CommandSpec {
        name: "module|unload",
        arity: 3,
        flags: ADMIN | NOSCRIPT | NO_ASYNC_LOADING,
        acl: &[],
        summary: "Unload a module",
        since: "4.0.0",
        group: "server",
        ..BASE
    },
];

//! MULTI, EXEC, DISCARD, WATCH and UNWATCH. They need the connection (its queue and its
//! watched keys), so the server crate implements them on the runtime's transaction layer;
//! they are described here for COMMAND and routing.

use crate::table::{flags::*, CommandSpec, KeySpec};

const BASE: CommandSpec = CommandSpec { acl: &["@transaction"], group: "transactions", ..CommandSpec::DEFAULT };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "multi",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        summary: "Starts a transaction.",
        since: "1.2.0",
        complexity: "O(1)",
        ..BASE
    },
    CommandSpec {
        name: "exec",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        summary: "Executes all commands in a transaction.",
        since: "1.2.0",
        complexity: "Depends on commands in the transaction",
        ..BASE
    },
    CommandSpec {
        name: "discard",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        summary: "Discards a transaction.",
        since: "2.0.0",
        complexity: "O(N), when N is the number of queued commands",
        ..BASE
    },
    CommandSpec {
        name: "watch",
        arity: -2,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        keys: KeySpec::ALL,
        summary: "Monitors changes to keys to determine the execution of a transaction.",
        since: "2.2.0",
        complexity: "O(1) for every key.",
        ..BASE
    },
    CommandSpec {
        name: "unwatch",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        summary: "Forgets about watched keys of a transaction.",
        since: "2.2.0",
        complexity: "O(1)",
        ..BASE
    },
];

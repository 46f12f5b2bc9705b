//! Pub/Sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, their UNSUBSCRIBE forms, PUBLISH, SPUBLISH and
//! PUBSUB. They need the connection (its subscriptions, its output) or every core's
//! subscribers, so the server crate implements them on `shoal_runtime::pubsub`; they are
//! described here for COMMAND and routing.
//!
//! Shard channels are not keys here: Redis lists them as `not_key` key specs, which only cluster
//! routing reads, and our routing of SPUBLISH and SSUBSCRIBE to the channel's core is the
//! runtime's.

use crate::table::{flags::*, CommandSpec, KeySpec};

const BASE: CommandSpec = CommandSpec { group: "pubsub", since: "2.0.0", ..CommandSpec::DEFAULT };

/// The (un)subscription commands' flags.
const SUBSCRIPTION: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "subscribe",
        arity: -2,
        flags: SUBSCRIPTION,
        summary: "Listens for messages published to channels.",
        complexity: "O(N) where N is the number of channels to subscribe to.",
        ..BASE
    },
    CommandSpec {
        name: "psubscribe",
        arity: -2,
        flags: SUBSCRIPTION,
        summary: "Listens for messages published to channels that match one or more patterns.",
        complexity: "O(N) where N is the number of patterns to subscribe to.",
        ..BASE
    },
    CommandSpec {
        name: "ssubscribe",
        arity: -2,
        flags: SUBSCRIPTION,
        summary: "Listens for messages published to shard channels.",
        channels: KeySpec::ALL,
        since: "7.0.0",
        complexity: "O(N) where N is the number of shard channels to subscribe to.",
        ..BASE
    },
    CommandSpec {
        name: "unsubscribe",
        arity: -1,
        flags: SUBSCRIPTION,
        summary: "Stops listening to messages posted to channels.",
        complexity: "O(N) where N is the number of channels to unsubscribe.",
        ..BASE
    },
    CommandSpec {
        name: "punsubscribe",
        arity: -1,
        flags: SUBSCRIPTION,
        summary: "Stops listening to messages published to channels that match one or more patterns.",
        complexity: "O(N) where N is the number of patterns to unsubscribe.",
        ..BASE
    },
    CommandSpec {
        name: "sunsubscribe",
        arity: -1,
        flags: SUBSCRIPTION,
        summary: "Stops listening to messages posted to shard channels.",
        channels: KeySpec::ALL,
        since: "7.0.0",
        complexity: "O(N) where N is the number of shard channels to unsubscribe.",
        ..BASE
    },
    CommandSpec {
        name: "publish",
        arity: 3,
        flags: PUBSUB | LOADING | STALE | FAST,
        summary: "Posts a message to a channel.",
        complexity:
            "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
        ..BASE
    },
    CommandSpec {
        name: "spublish",
        arity: 3,
        flags: PUBSUB | LOADING | STALE | FAST,
        summary: "Post a message to a shard channel",
        channels: KeySpec::ONE,
        since: "7.0.0",
        complexity: "O(N) where N is the number of clients subscribed to the receiving shard channel.",
        ..BASE
    },
    CommandSpec {
        name: "pubsub",
        arity: -2,
        summary: "A container for Pub/Sub commands.",
        since: "2.8.0",
        complexity: "Depends on subcommand.",
        subcommands: PUBSUB_SUBCOMMANDS,
        ..BASE
    },
];

const PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "pubsub|channels",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns the active channels.",
        since: "2.8.0",
        complexity: "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
        ..BASE
    },
    CommandSpec {
        name: "pubsub|numpat",
        arity: 2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns a count of unique pattern subscriptions.",
        since: "2.8.0",
        complexity: "O(1)",
        ..BASE
    },
    CommandSpec {
        name: "pubsub|numsub",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns a count of subscribers to channels.",
        since: "2.8.0",
        complexity: "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
        ..BASE
    },
    CommandSpec {
        name: "pubsub|shardchannels",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns the active shard channels.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
        ..BASE
    },
    CommandSpec {
        name: "pubsub|shardnumsub",
        arity: -2,
        flags: PUBSUB | LOADING | STALE,
        summary: "Returns the count of subscribers of shard channels.",
        since: "7.0.0",
        complexity: "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
        ..BASE
    },
    CommandSpec {
        name: "pubsub|help",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns helpful text about the different subcommands.",
        since: "6.2.0",
        complexity: "O(1)",
        ..BASE
    },
];

//! Connection and server commands. Most need the connection or the server and are only
//! described here (`Handler::Connection`); the server crate implements them. PING and ECHO
//! need neither and run here.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::ctx::Ctx;
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler};

const BASE: CommandSpec = CommandSpec { acl: &["@connection"], group: "connection", ..CommandSpec::DEFAULT };

/// Entries for server-administration commands share this base.
const ADMIN_BASE: CommandSpec = CommandSpec { group: "server", acl: &[], ..BASE };

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ping",
        arity: -1,
        flags: FAST,
        summary: "Returns the server's liveliness response.",
        handler: Handler::Keys { local: ping, multi: None },
        ..BASE
    },
    CommandSpec { name: "echo", arity: 2, flags: FAST, summary: "Returns the given string.", handler: Handler::Keys { local: echo, multi: None }, ..BASE },
    CommandSpec { name: "select", arity: 2, flags: LOADING | STALE | FAST, summary: "Changes the selected database.", ..BASE },
    CommandSpec { name: "quit", arity: -1, flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, summary: "Closes the connection.", ..BASE },
    CommandSpec {
        name: "reset",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        summary: "Resets the connection.",
        since: "6.2.0",
        ..BASE
    },
    CommandSpec {
        name: "hello",
        arity: -1,
        flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        summary: "Handshakes with the Redis server.",
        since: "6.0.0",
        ..BASE
    },
    CommandSpec { name: "auth", arity: -2, flags: NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, summary: "Authenticates the connection.", ..BASE },
    CommandSpec {
        name: "client",
        arity: -2,
        acl: &[],
        summary: "A container for client connection commands.",
        since: "2.4.0",
        complexity: "Depends on subcommand.",
        subcommands: CLIENT_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "command",
        arity: -1,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Returns detailed information about all commands.",
        since: "2.8.13",
        complexity: "O(N) where N is the total number of Redis commands",
        subcommands: COMMAND_SUBCOMMANDS,
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "info",
        arity: -1,
        flags: LOADING | STALE,
        acl: &["@dangerous"],
        summary: "Returns information and statistics about the server.",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "config",
        arity: -2,
        summary: "A container for server configuration commands.",
        since: "2.0.0",
        complexity: "Depends on subcommand.",
        subcommands: CONFIG_SUBCOMMANDS,
        ..ADMIN_BASE
    },
    CommandSpec { name: "time", arity: 1, flags: LOADING | STALE | FAST, summary: "Returns the server time.", since: "2.6.0", ..ADMIN_BASE },
    CommandSpec {
        name: "save",
        arity: 1,
        flags: ADMIN | NOSCRIPT | NO_MULTI,
        summary: "Synchronously saves the database(s) to disk.",
        since: "1.0.0",
        ..ADMIN_BASE
    },
    CommandSpec { name: "bgsave", arity: -1, flags: ADMIN | NOSCRIPT, summary: "Asynchronously saves the database(s) to disk.", since: "1.0.0", ..ADMIN_BASE },
    CommandSpec {
        name: "bgrewriteaof",
        arity: 1,
        flags: ADMIN | NOSCRIPT,
        summary: "Asynchronously rewrites the append-only file to disk.",
        since: "1.0.0",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "role",
        arity: 1,
        flags: NOSCRIPT | LOADING | STALE | FAST,
        summary: "Return the role of the instance in the context of replication",
        since: "2.8.12",
        complexity: "O(1)",
        acl: &["@admin", "@dangerous"],
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "lastsave",
        arity: 1,
        flags: LOADING | STALE | FAST,
        summary: "Returns the Unix timestamp of the last successful save to disk.",
        since: "1.0.0",
        acl: &["@admin", "@dangerous"],
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "shutdown",
        arity: -1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        summary: "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "debug",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "A container for debugging commands.",
        complexity: "Depends on subcommand.",
        ..ADMIN_BASE
    },
];

/// CLIENT's subcommands. Each is an entry of its own, as in Redis, so that arity errors,
/// CLIENT LIST's `cmd=` and INFO commandstats name them `client|list`.
const CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "client|id",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns the unique client ID of the connection.",
        since: "5.0.0",
        ..BASE
    },
    CommandSpec { name: "client|setname", arity: 3, flags: NOSCRIPT | LOADING | STALE, summary: "Sets the connection name.", since: "2.6.9", ..BASE },
    CommandSpec { name: "client|getname", arity: 2, flags: NOSCRIPT | LOADING | STALE, summary: "Returns the name of the connection.", since: "2.6.9", ..BASE },
    CommandSpec {
        name: "client|info",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns information about the connection.",
        since: "6.2.0",
        ..BASE
    },
    CommandSpec {
        name: "client|list",
        arity: -2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Lists open connections.",
        since: "2.4.0",
        complexity: "O(N) where N is the number of client connections",
        ..BASE
    },
    CommandSpec {
        name: "client|kill",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Terminates open connections.",
        since: "2.4.0",
        complexity: "O(N) where N is the number of client connections",
        ..BASE
    },
    CommandSpec {
        name: "client|pause",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Suspends commands processing.",
        since: "3.0.0",
        ..BASE
    },
    CommandSpec {
        name: "client|unpause",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Resumes processing commands from paused clients.",
        since: "6.2.0",
        complexity: "O(N) Where N is the number of paused clients",
        ..BASE
    },
    CommandSpec {
        name: "client|reply",
        arity: 3,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Instructs the server whether to reply to commands.",
        since: "3.2.0",
        ..BASE
    },
    CommandSpec {
        name: "client|setinfo",
        arity: 4,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Sets information specific to the client or connection.",
        since: "7.2.0",
        ..BASE
    },
    CommandSpec {
        name: "client|no-evict",
        arity: 3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Sets the client eviction mode of the connection.",
        since: "7.0.0",
        ..BASE
    },
    CommandSpec {
        name: "client|tracking",
        arity: -3,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Controls server-assisted client-side caching for the connection.",
        since: "6.0.0",
        complexity: "O(1). Some options may introduce additional complexity.",
        ..BASE
    },
    CommandSpec {
        name: "client|trackinginfo",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns information about server-assisted client-side caching for the connection.",
        since: "6.2.0",
        ..BASE
    },
    CommandSpec {
        name: "client|caching",
        arity: 3,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Instructs the server whether to track the keys in the next request.",
        since: "6.0.0",
        ..BASE
    },
    CommandSpec {
        name: "client|getredir",
        arity: 2,
        flags: NOSCRIPT | LOADING | STALE,
        summary: "Returns the client ID to which the connection's tracking notifications are redirected.",
        since: "6.0.0",
        ..BASE
    },
    CommandSpec {
        name: "client|unblock",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Unblocks a client blocked by a blocking command from a different connection.",
        since: "5.0.0",
        complexity: "O(log N) where N is the number of client connections",
        ..BASE
    },
    CommandSpec {
        name: "client|help",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns helpful text about the different subcommands.",
        since: "5.0.0",
        ..BASE
    },
];

/// COMMAND's subcommands. All of them read this one table.
const COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "command|count",
        arity: 2,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Returns a count of commands.",
        since: "2.8.13",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "command|docs",
        arity: -2,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Returns documentary information about one, multiple or all commands.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of commands to look up",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "command|getkeys",
        arity: -4,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Extracts the key names from an arbitrary command.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of arguments to the command",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "command|getkeysandflags",
        arity: -4,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Extracts the key names and access flags for an arbitrary command.",
        since: "7.0.0",
        complexity: "O(N) where N is the number of arguments to the command",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "command|info",
        arity: -2,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Returns information about one, multiple or all commands.",
        since: "2.8.13",
        complexity: "O(N) where N is the number of commands to look up",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "command|list",
        arity: -2,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Returns a list of command names.",
        since: "7.0.0",
        complexity: "O(N) where N is the total number of Redis commands",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "command|help",
        arity: 2,
        flags: LOADING | STALE,
        acl: &["@connection"],
        summary: "Returns helpful text about the different subcommands.",
        since: "5.0.0",
        ..ADMIN_BASE
    },
];

/// CONFIG's subcommands.
const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "config|get",
        arity: -3,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Returns the effective values of configuration parameters.",
        since: "2.0.0",
        complexity: "O(N) when N is the number of configuration parameters provided",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "config|set",
        arity: -4,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Sets configuration parameters in-flight.",
        since: "2.0.0",
        complexity: "O(N) when N is the number of configuration parameters provided",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "config|resetstat",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Resets the server's statistics.",
        since: "2.0.0",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "config|rewrite",
        arity: 2,
        flags: ADMIN | NOSCRIPT | LOADING | STALE,
        summary: "Persists the effective configuration to file.",
        since: "2.8.0",
        ..ADMIN_BASE
    },
    CommandSpec {
        name: "config|help",
        arity: 2,
        flags: LOADING | STALE,
        summary: "Returns helpful text about the different subcommands.",
        since: "5.0.0",
        ..ADMIN_BASE
    },
];

/// PING [message]
fn ping(_ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match args.len() {
        1 => Frame::Simple(Bytes::from_static(b"PONG")),
        2 => Frame::Bulk(args[1].clone()),
        _ => errors::wrong_arity("ping"),
    }
}

/// ECHO message
fn echo(_ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Bulk(args[1].clone())
}

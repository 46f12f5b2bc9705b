//! Connection and server commands. Most need the connection or the server and are only
//! described here (`Handler::Connection`); the server crate implements them. PING and ECHO
//! need neither and run here.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::ctx::Ctx;
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 0,
    flags: 0,
    keys: KeySpec::NONE,
    acl: &["@connection"],
    group: "connection",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    handler: Handler::Connection,
    subcommands: &[],
};

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
    CommandSpec {
        name: "echo",
        arity: 2,
        flags: FAST,
        summary: "Returns the given string.",
        handler: Handler::Keys { local: echo, multi: None },
        ..BASE
    },
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
    CommandSpec { name: "client", arity: -2, flags: NOSCRIPT | LOADING | STALE, summary: "A container for client connection commands.", since: "2.4.0", ..BASE },
    CommandSpec { name: "command", arity: -1, flags: LOADING | STALE, summary: "Returns detailed information about all commands.", since: "2.8.13", ..ADMIN_BASE },
    CommandSpec { name: "info", arity: -1, flags: LOADING | STALE, summary: "Returns information and statistics about the server.", ..ADMIN_BASE },
    CommandSpec { name: "config", arity: -2, flags: ADMIN | NOSCRIPT | LOADING | STALE, summary: "A container for server configuration commands.", since: "2.0.0", ..ADMIN_BASE },
    CommandSpec { name: "time", arity: 1, flags: LOADING | STALE | FAST, summary: "Returns the server time.", since: "2.6.0", ..ADMIN_BASE },
    CommandSpec {
        name: "shutdown",
        arity: -1,
        flags: ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        summary: "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        ..ADMIN_BASE
    },
    CommandSpec { name: "debug", arity: -2, flags: ADMIN | NOSCRIPT | LOADING | STALE, summary: "A container for debugging commands.", ..ADMIN_BASE },
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
